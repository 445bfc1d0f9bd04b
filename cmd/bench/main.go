// Command bench measures scripthost on this machine and prints a table:
// the bare cost of starting the interpreter, runs of the seed's hello.py
// over HTTP and over NATS in spawn and fork mode at several concurrency
// levels, the same runs streamed (server-sent events over HTTP, streamed
// replies over NATS), and cache hits over HTTP. It starts the real binary
// for each mode and drives it from this process. With --baseline REF it
// also builds the binary of that git revision and measures its plain runs
// in the same session, to compare.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

const helloPy = `import sys, json; data = json.load(sys.stdin); print(json.dumps({"greeting": f"Hello, {data['name']}"}))` + "\n"

var (
	stdin = []byte(`{"name": "Alice"}`)
	body  = []byte(`{"data": {"name": "Alice"}}`)
)

type config struct {
	python   string
	duration time.Duration
	levels   []int
	modes    []string
	baseline string
}

func main() {
	var cfg config
	var levels, modes string
	flag.StringVar(&cfg.python, "python", "/usr/bin/python3", "interpreter to measure")
	flag.DurationVar(&cfg.duration, "duration", 3*time.Second, "measuring time of each cell")
	flag.StringVar(&levels, "c", "1,4,16", "concurrency levels")
	flag.StringVar(&modes, "modes", "spawn,fork", "execution modes")
	flag.StringVar(&cfg.baseline, "baseline", "", "also measure the plain runs of the binary built from this git revision (e.g. main)")
	flag.Parse()
	for _, l := range strings.Split(levels, ",") {
		var n int
		fmt.Sscan(l, &n)
		if n > 0 {
			cfg.levels = append(cfg.levels, n)
		}
	}
	cfg.modes = strings.Split(modes, ",")
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// stats is one cell of the table.
type stats struct {
	name       string
	runs       int
	errors     int
	elapsed    time.Duration
	p50, p99   time.Duration
	throughput float64
}

func (s stats) row() string {
	return fmt.Sprintf("| %-34s | %8.0f | %8s | %8s | %6d |", s.name, s.throughput, ms(s.p50), ms(s.p99), s.errors)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// measure calls op from c goroutines for d and collects latencies.
func measure(name string, c int, d time.Duration, op func() error) stats {
	// A short warm-up, not counted.
	warm := time.Now().Add(d / 10)
	for time.Now().Before(warm) {
		op()
	}
	var (
		mu    sync.Mutex
		lat   []time.Duration
		errs  atomic.Int64
		wg    sync.WaitGroup
		start = time.Now()
		end   = start.Add(d)
	)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(end) {
				t0 := time.Now()
				if err := op(); err != nil {
					errs.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	s := stats{name: name, runs: len(lat), errors: int(errs.Load()), elapsed: elapsed}
	if len(lat) > 0 {
		s.p50 = lat[len(lat)/2]
		s.p99 = lat[len(lat)*99/100]
		s.throughput = float64(len(lat)) / elapsed.Seconds()
	}
	return s
}

func run(cfg config) error {
	work, err := os.MkdirTemp("", "scripthost-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// Run as root, the server runs scripts as nobody, who must read them.
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	scripts := filepath.Join(work, "scripts")
	os.Mkdir(scripts, 0o755)
	hello := filepath.Join(scripts, "hello.py")
	if err := os.WriteFile(hello, []byte(helloPy), 0o644); err != nil {
		return err
	}
	bin := filepath.Join(work, "scripthost")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/scripthost").CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	var baseBin string
	if cfg.baseline != "" {
		if baseBin, err = buildRevision(work, cfg.baseline); err != nil {
			return err
		}
	}
	version, _ := exec.Command(cfg.python, "--version").Output()
	fmt.Printf("machine: %s, %d cores, %s/%s; interpreter: %s (%s)\n", cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, cfg.python, strings.TrimSpace(string(version)))
	fmt.Printf("each cell: %s after a warm-up; client and server share the machine\n\n", cfg.duration)
	fmt.Println("| what | runs/s | p50 | p99 | errors |")
	fmt.Println("|---|---:|---:|---:|---:|")

	for _, c := range []int{1, 4} {
		s := measure(fmt.Sprintf("bare `python3 hello.py` spawn, c=%d", c), c, cfg.duration, func() error {
			cmd := exec.Command(cfg.python, hello)
			cmd.Stdin = bytes.NewReader(stdin)
			cmd.Dir = scripts
			out, err := cmd.Output()
			if err == nil && !bytes.Contains(out, []byte("Hello, Alice")) {
				err = errors.New("unexpected output")
			}
			return err
		})
		fmt.Println(s.row())
	}

	for _, mode := range cfg.modes {
		srv, err := startServer(bin, cfg.python, mode, scripts)
		if err != nil {
			return err
		}
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		nc, err := nats.Connect(srv.natsURL)
		if err != nil {
			srv.stop()
			return err
		}
		targets := []target{{"", client, srv, nc}}
		if baseBin != "" {
			// Both servers run; each cell measures one, then the other, so
			// that the machine's changing load falls on both alike.
			bsrv, err := startServer(baseBin, cfg.python, mode, scripts)
			if err != nil {
				return err
			}
			bnc, err := nats.Connect(bsrv.natsURL)
			if err != nil {
				bsrv.stop()
				return err
			}
			bclient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			targets = append([]target{{" (" + cfg.baseline + ")", bclient, bsrv, bnc}}, targets...)
		}
		plain(cfg, mode, targets)
		if baseBin != "" {
			targets[0].nc.Close()
			targets[0].srv.stop()
		}
		for _, c := range []int{1, 4} {
			s := measure(fmt.Sprintf("%s mode, HTTP SSE stream, c=%d", mode, c), c, cfg.duration, func() error {
				return sseRun(client, srv.base)
			})
			fmt.Println(s.row())
		}
		for _, c := range []int{1, 4} {
			s := measure(fmt.Sprintf("%s mode, NATS stream, c=%d", mode, c), c, cfg.duration, func() error {
				return natsStreamRun(nc)
			})
			fmt.Println(s.row())
		}
		if mode == cfg.modes[len(cfg.modes)-1] {
			if err := httpRun(client, srv.base, ""); err != nil { // fill the cache
				return err
			}
			s := measure("cache hits, HTTP, c=16", 16, cfg.duration, func() error {
				return httpRun(client, srv.base, "")
			})
			fmt.Println(s.row())
		}
		nc.Close()
		srv.stop()
	}
	return nil
}

// target is a server to measure, with its clients.
type target struct {
	label  string
	client *http.Client
	srv    *server
	nc     *nats.Conn
}

// plain measures runs that do not ask for streaming, over HTTP and NATS,
// on each target in turn.
func plain(cfg config, mode string, targets []target) {
	for _, c := range cfg.levels {
		for _, tg := range targets {
			s := measure(fmt.Sprintf("%s mode, HTTP, c=%d%s", mode, c, tg.label), c, cfg.duration, func() error {
				return httpRun(tg.client, tg.srv.base, "no-cache")
			})
			fmt.Println(s.row())
		}
	}
	for _, c := range cfg.levels {
		for _, tg := range targets {
			s := measure(fmt.Sprintf("%s mode, NATS, c=%d%s", mode, c, tg.label), c, cfg.duration, func() error {
				return natsRun(tg.nc)
			})
			fmt.Println(s.row())
		}
	}
}

// buildRevision builds the scripthost binary of a git revision.
func buildRevision(work, rev string) (string, error) {
	src := filepath.Join(work, "baseline-src")
	if err := os.Mkdir(src, 0o755); err != nil {
		return "", err
	}
	archive := exec.Command("git", "archive", "--format=tar", rev)
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err
	}
	untar.Stdin = pipe
	var errb bytes.Buffer
	archive.Stderr, untar.Stderr = &errb, &errb
	if err := untar.Start(); err != nil {
		return "", err
	}
	if err := archive.Run(); err != nil {
		untar.Wait()
		return "", fmt.Errorf("git archive %s: %v: %s", rev, err, errb.String())
	}
	if err := untar.Wait(); err != nil {
		return "", fmt.Errorf("unpack %s: %v: %s", rev, err, errb.String())
	}
	bin := filepath.Join(work, "scripthost-baseline")
	build := exec.Command("go", "build", "-o", bin, "./cmd/scripthost")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", rev, err, out)
	}
	return bin, nil
}

// sseRun is a run streamed as server-sent events.
func sseRun(client *http.Client, base string) error {
	req, _ := http.NewRequest("POST", base+"/run/hello.py", bytes.NewReader(body))
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(data, []byte("event: stdout\ndata: ")) || !bytes.Contains(data, []byte("event: result")) {
		return fmt.Errorf("status %d: %s", resp.StatusCode, data)
	}
	return nil
}

// natsStreamRun is a run streamed over NATS: chunks, then the result, to
// an inbox of the caller's.
func natsStreamRun(nc *nats.Conn) error {
	m := nats.NewMsg("script.run.hello.py")
	m.Data = body
	m.Header.Set("X-Scripthost-No-Cache", "true")
	m.Header.Set("X-Scripthost-Stream", "true")
	m.Reply = nc.NewInbox()
	sub, err := nc.SubscribeSync(m.Reply)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishMsg(m); err != nil {
		return err
	}
	chunks := 0
	for {
		r, err := sub.NextMsg(30 * time.Second)
		if err != nil {
			return err
		}
		switch r.Header.Get("X-Scripthost-Event") {
		case "stdout":
			chunks++
		case "result":
			if chunks == 0 || !bytes.Contains(r.Data, []byte("Hello, Alice")) {
				return fmt.Errorf("%d chunks, result %s", chunks, r.Data)
			}
			return nil
		}
	}
}

func httpRun(client *http.Client, base, cacheControl string) error {
	req, _ := http.NewRequest("POST", base+"/run/hello.py", bytes.NewReader(body))
	if cacheControl != "" {
		req.Header.Set("Cache-Control", cacheControl)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(data, []byte("Hello, Alice")) {
		return fmt.Errorf("status %d: %s", resp.StatusCode, data)
	}
	return nil
}

func natsRun(nc *nats.Conn) error {
	m := nats.NewMsg("script.run.hello.py")
	m.Data = body
	m.Header.Set("X-Scripthost-No-Cache", "true")
	reply, err := nc.RequestMsg(m, 30*time.Second)
	if err != nil {
		return err
	}
	if !bytes.Contains(reply.Data, []byte("Hello, Alice")) {
		return fmt.Errorf("reply %s", reply.Data)
	}
	return nil
}

type server struct {
	cmd     *exec.Cmd
	base    string
	natsURL string
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startServer(bin, python, mode, scripts string) (*server, error) {
	httpAddr, natsAddr := freeAddr(), freeAddr()
	cmd := exec.Command(bin, "serve", "--http", httpAddr, "--nats-listen", natsAddr,
		"--scripts", scripts, "--python", python, "--mode", mode, "--log-level", "warn",
		"--max-concurrent", "4", "--queue-timeout", "60s")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, base: "http://" + httpAddr, natsURL: "nats://" + natsAddr}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if resp, err := http.Get(s.base + "/healthz"); err == nil {
			resp.Body.Close()
			return s, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("%s mode server did not start", mode)
}

func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown cpu"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown cpu"
}
