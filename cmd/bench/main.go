// Command bench measures scripthost on this machine and prints a table:
// the bare cost of starting the interpreter afresh for the seed's hello.py
// and for a script that imports numpy, runs of both over HTTP (and of
// hello.py over NATS) in spawn and fork mode at several concurrency levels,
// fork mode with the run sandbox on and off where the binary has one, cache
// hits over HTTP, hello.py's runs streamed (server-sent events over HTTP,
// streamed replies over NATS), and the ratios to the bare spawn. It starts
// the real binary for each mode and drives it from this process, through
// package client (the CLI's, over HTTP and NATS). Every
// request body is unique (identical runs in flight share one execution, and
// a benchmark of the same body would measure that instead). With
// --baseline REF it also builds the binary of that git revision and
// measures its plain runs in the same session, to compare.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
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

	"github.com/scripthost/scripthost/client"
	"github.com/scripthost/scripthost/model"
)

const helloPy = `import sys, json; data = json.load(sys.stdin); print(json.dumps({"greeting": f"Hello, {data['name']}"}))` + "\n"

// numpyPy is a small script whose cost is importing numpy (Debian's
// python3-numpy), as a real script's would be.
const numpyPy = `import sys, json
import numpy as np
data = json.load(sys.stdin)
a = np.arange(data["n"] % 1000 + 1, dtype=np.int64)
print(json.dumps({"n": data["n"], "sum": int(a.sum())}))
`

// workload is one script driven with unique bodies.
type workload struct {
	name string // file name in the scripts folder
	code string
	// body returns the i-th request's data and what its stdout must hold.
	body func(i int64) (data []byte, want []byte)
}

var workloads = []workload{
	{"hello.py", helloPy, func(i int64) ([]byte, []byte) {
		return fmt.Appendf(nil, `{"name": "Alice-%d"}`, i), fmt.Appendf(nil, `Hello, Alice-%d"`, i)
	}},
	{"numpy_sum.py", numpyPy, func(i int64) ([]byte, []byte) {
		return fmt.Appendf(nil, `{"n": %d}`, i), fmt.Appendf(nil, `{"n": %d, "sum": %d}`, i, sum(i%1000+1))
	}},
}

func sum(n int64) int64 { return n * (n - 1) / 2 }

// seq numbers the requests of the whole benchmark: every body is unique.
var seq atomic.Int64

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
	return fmt.Sprintf("| %-46s | %8.0f | %8s | %8s | %6d |", s.name, s.throughput, ms(s.p50), ms(s.p99), s.errors)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// measure calls op from c goroutines for d and collects latencies.
func measure(name string, c int, d time.Duration, op func() error) stats {
	// A warm-up, not counted: long enough for the server to learn what a
	// hot script imports.
	warm := time.Now().Add(max(d/10, time.Second))
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
	for _, w := range workloads {
		if err := os.WriteFile(filepath.Join(scripts, w.name), []byte(w.code), 0o644); err != nil {
			return err
		}
	}
	if err := exec.Command(cfg.python, "-c", "import numpy").Run(); err != nil {
		return fmt.Errorf("%s cannot import numpy (apt-get install python3-numpy): %v", cfg.python, err)
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
	help, _ := exec.Command(bin, "serve", "-h").CombinedOutput()
	hasSandbox := bytes.Contains(help, []byte("-sandbox"))
	version, _ := exec.Command(cfg.python, "--version").Output()
	fmt.Printf("machine: %s, %d cores, %s/%s; interpreter: %s (%s)\n", cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, cfg.python, strings.TrimSpace(string(version)))
	fmt.Printf("each cell: %s after a warm-up; client and server share the machine; every request body unique; load average at start: %s\n\n", cfg.duration, loadAverage())
	fmt.Println("| what | runs/s | p50 | p99 | errors |")
	fmt.Println("|---|---:|---:|---:|---:|")

	cells := map[string]stats{}
	print := func(key string, s stats) {
		cells[key] = s
		fmt.Println(s.row())
	}
	for _, w := range workloads {
		for _, c := range []int{1, 4} {
			s := measure(fmt.Sprintf("bare `python3 %s` spawn, c=%d", w.name, c), c, cfg.duration, func() error {
				data, want := w.body(seq.Add(1))
				cmd := exec.Command(cfg.python, filepath.Join(scripts, w.name))
				cmd.Stdin = bytes.NewReader(data)
				cmd.Dir = scripts
				out, err := cmd.Output()
				if err == nil && !bytes.Contains(out, want) {
					err = fmt.Errorf("unexpected output %q", out)
				}
				return err
			})
			print(fmt.Sprintf("bare %s %d", w.name, c), s)
		}
	}

	type variant struct {
		mode, label string
		flags       []string
	}
	variants := []variant{}
	for _, mode := range cfg.modes {
		v := variant{mode: mode, label: mode + " mode"}
		if hasSandbox {
			v.flags = []string{"--sandbox", "off"}
		}
		variants = append(variants, v)
	}
	for vi, v := range variants {
		srv, err := startServer(bin, cfg.python, v.mode, scripts, v.flags)
		if err != nil {
			return err
		}
		own, err := connect("", srv)
		if err != nil {
			srv.stop()
			return err
		}
		targets := []target{own}
		if v.mode == "fork" && hasSandbox {
			// The same with the sandbox on, measured cell by cell with the
			// other: the machine's changing load falls on both alike.
			ssrv, err := startServer(bin, cfg.python, v.mode, scripts, []string{"--sandbox", "on"})
			if err != nil {
				own.close()
				return err
			}
			tg, err := connect(", sandbox on", ssrv)
			if err != nil {
				ssrv.stop()
				return err
			}
			targets = append(targets, tg)
		}
		if baseBin != "" {
			// Both servers run; each cell measures one, then the other, so
			// that the machine's changing load falls on both alike.
			// With the sandbox as this binary's plain cells have it.
			var flags []string
			if baseHelp, _ := exec.Command(baseBin, "serve", "-h").CombinedOutput(); bytes.Contains(baseHelp, []byte("-sandbox")) {
				flags = v.flags
			}
			bsrv, err := startServer(baseBin, cfg.python, v.mode, scripts, flags)
			if err != nil {
				for _, tg := range targets {
					tg.close()
				}
				return err
			}
			tg, err := connect(" ("+cfg.baseline+")", bsrv)
			if err != nil {
				bsrv.stop()
				return err
			}
			targets = append([]target{tg}, targets...)
		}
		for _, w := range workloads {
			for _, c := range cfg.levels {
				for _, tg := range targets {
					s := measure(fmt.Sprintf("%s, %s, HTTP, c=%d%s", v.label, w.name, c, tg.label), c, cfg.duration, func() error {
						return runOnce(tg.http, w, true, false)
					})
					print(fmt.Sprintf("%s %s %d%s", v.label, w.name, c, tg.label), s)
				}
			}
		}
		for _, c := range cfg.levels {
			for _, tg := range targets {
				s := measure(fmt.Sprintf("%s, hello.py, NATS, c=%d%s", v.label, c, tg.label), c, cfg.duration, func() error {
					return runOnce(tg.nats, workloads[0], true, false)
				})
				print(fmt.Sprintf("%s nats %d%s", v.label, c, tg.label), s)
			}
		}
		for _, tg := range targets {
			if tg.srv != srv {
				tg.close()
			}
		}
		{
			for _, c := range []int{1, 4} {
				s := measure(fmt.Sprintf("%s, hello.py, HTTP SSE stream, c=%d", v.label, c), c, cfg.duration, func() error {
					return runOnce(own.http, workloads[0], true, true)
				})
				print(fmt.Sprintf("%s sse %d", v.label, c), s)
			}
			for _, c := range []int{1, 4} {
				s := measure(fmt.Sprintf("%s, hello.py, NATS stream, c=%d", v.label, c), c, cfg.duration, func() error {
					return runOnce(own.nats, workloads[0], true, true)
				})
				print(fmt.Sprintf("%s natsstream %d", v.label, c), s)
			}
		}
		if vi == len(variants)-1 {
			// The same body every time: all but the first are cache hits.
			data, want := workloads[0].body(0)
			hit := workload{name: workloads[0].name, body: func(int64) ([]byte, []byte) { return data, want }}
			if err := runOnce(own.http, hit, false, false); err != nil { // fill the cache
				return err
			}
			s := measure("cache hits, hello.py, HTTP, c=16", 16, cfg.duration, func() error {
				return runOnce(own.http, hit, false, false)
			})
			print("cache", s)
		}
		own.close()
	}

	fmt.Println()
	ratio := func(what, num, den string, p50 bool) {
		a, ok1 := cells[num]
		b, ok2 := cells[den]
		if !ok1 || !ok2 || b.throughput == 0 || a.p50 == 0 {
			return
		}
		if p50 {
			fmt.Printf("- %s: %.1fx (p50 %s vs %s)\n", what, float64(b.p50)/float64(a.p50), ms(a.p50), ms(b.p50))
			return
		}
		fmt.Printf("- %s: %.1fx (%.0f vs %.0f runs/s)\n", what, a.throughput/b.throughput, a.throughput, b.throughput)
	}
	fmt.Printf("load average at the end: %s\n", loadAverage())
	ratio("fork mode hello.py throughput at c=4 over bare spawn's", "fork mode hello.py 4", "bare hello.py 4", false)
	ratio("fork mode hello.py p50 at c=1, bare spawn's over it", "fork mode hello.py 1", "bare hello.py 1", true)
	ratio("fork mode numpy_sum.py throughput at c=4 over bare spawn's", "fork mode numpy_sum.py 4", "bare numpy_sum.py 4", false)
	ratio("fork mode numpy_sum.py p50 at c=1, bare spawn's over it", "fork mode numpy_sum.py 1", "bare numpy_sum.py 1", true)
	ratio("spawn mode hello.py throughput at c=4 over bare spawn's", "spawn mode hello.py 4", "bare hello.py 4", false)
	if hasSandbox {
		ratio("fork mode hello.py at c=4 over HTTP, sandbox on over off", "fork mode hello.py 4, sandbox on", "fork mode hello.py 4", false)
		ratio("fork mode hello.py at c=4 over NATS, sandbox on over off", "fork mode nats 4, sandbox on", "fork mode nats 4", false)
		ratio("fork mode numpy_sum.py at c=4 over HTTP, sandbox on over off", "fork mode numpy_sum.py 4, sandbox on", "fork mode numpy_sum.py 4", false)
	} else {
		fmt.Println("- sandbox: this binary has no --sandbox flag; no sandbox rows")
	}
	return nil
}

// target is a server to measure, with its clients.
type target struct {
	label string
	srv   *server
	http  client.Client
	nats  client.Client
}

// connect makes the clients of a server.
func connect(label string, srv *server) (target, error) {
	tg := target{label: label, srv: srv}
	cfg := client.Config{URL: srv.base, Timeout: 30 * time.Second}
	h, err := client.NewHTTP(cfg)
	if err != nil {
		return tg, err
	}
	cfg.URL = srv.natsURL
	n, err := client.NewNATS(cfg)
	if err != nil {
		return tg, err
	}
	tg.http, tg.nats = h, n
	return tg, nil
}

// close closes the clients and stops the server.
func (tg target) close() {
	tg.http.Close()
	tg.nats.Close()
	tg.srv.stop()
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

// runOnce runs w through c, without the cache when noCache, and checks
// its output; a streamed run (server-sent events over HTTP, streamed
// replies over NATS) must also have sent its output in chunks.
func runOnce(c client.Client, w workload, noCache, stream bool) error {
	data, want := w.body(seq.Add(1))
	var chunks chunkCount
	opts := client.RunOptions{NoCache: noCache}
	if stream {
		opts.Stdout = &chunks
	}
	ans, err := c.Run(context.Background(), w.name, model.RunRequest{Data: data}, opts)
	if err != nil {
		return err
	}
	if !strings.Contains(ans.Result.Stdout, string(want)) || stream && chunks == 0 {
		return fmt.Errorf("%d chunks, result %+v", chunks, ans.Result)
	}
	return nil
}

// chunkCount counts the chunks of a streamed run's output.
type chunkCount int

func (c *chunkCount) Write(p []byte) (int, error) {
	*c++
	return len(p), nil
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

func startServer(bin, python, mode, scripts string, extra []string) (*server, error) {
	httpAddr, natsAddr := freeAddr(), freeAddr()
	args := append([]string{"serve", "--http", httpAddr, "--nats-listen", natsAddr,
		"--scripts", scripts, "--python", python, "--mode", mode, "--log-level", "warn",
		"--max-concurrent", "4", "--queue-timeout", "60s"}, extra...)
	// Each server has a data folder of its own (one server at a time
	// may have one), under the bench's work folder, not ./data.
	if help, _ := exec.Command(bin, "serve", "-h").CombinedOutput(); bytes.Contains(help, []byte("-data-dir")) {
		dir, err := os.MkdirTemp(filepath.Dir(scripts), "data-")
		if err != nil {
			return nil, err
		}
		args = append(args, "--data-dir", dir)
	}
	cmd := exec.Command(bin, args...)
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

// loadAverage is the machine's 1, 5 and 15 minute load averages: the other
// work the figures shared the cores with.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
