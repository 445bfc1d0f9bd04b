package httpbridge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/catalog"
	"github.com/scripthost/scripthost/executor"
	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// execBridge is a bridge in front of a real executor node (fork mode, a
// real python3) and a real catalog on an embedded NATS server.
type execBridge struct {
	url  string
	dir  string
	node *executor.Service
	b    *Bridge
}

func startExecBridge(t *testing.T, limits executor.Limits, slots int, cfg Config, scripts map[string]string) *execBridge {
	t.Helper()
	py := testutil.Python(t)
	ns := testutil.StartBus(t)
	dir := t.TempDir()
	cat, err := catalog.New(catalog.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	catConn := testutil.Connect(t, ns)
	csvc, err := cat.Serve(catConn, "0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { csvc.Stop() })
	for name, code := range scripts {
		if _, err := cat.Create(name, code); err != nil {
			t.Fatal(err)
		}
	}
	runner, err := executor.NewForkRunner(executor.RunnerConfig{Python: py, Limits: limits, DrainTimeout: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node, err := executor.New(executor.Config{Node: "n1", MaxConcurrent: slots, QueueTimeout: 30 * time.Second,
		CacheTTL: time.Minute, CacheSize: 64 << 20}, runner, cat)
	if err != nil {
		t.Fatal(err)
	}
	nodeConn := testutil.Connect(t, ns)
	if err := node.Serve(nodeConn, "0.1.0"); err != nil {
		t.Fatal(err)
	}
	// The bridge's first request must find the node's subscriptions.
	if err := nodeConn.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		node.Drain(ctx)
		runner.Close()
	})
	b := New(cfg, testutil.Connect(t, ns))
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return &execBridge{url: srv.URL, dir: dir, node: node, b: b}
}

// readEvents reads an event stream, failing the test where it is not
// one.
func readEvents(t *testing.T, r io.Reader, each func(testutil.Event) bool) {
	t.Helper()
	if err := testutil.ReadEvents(r, each); err != nil {
		t.Error(err)
	}
}

func postEvents(t *testing.T, ctx context.Context, client *http.Client, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

const tickPy = `
import sys, time
for i in range(4):
    print("tick", i)
    time.sleep(0.2)
    print("warn", i, file=sys.stderr)
    time.sleep(0.2)
`

// The output comes as the script writes it, stdout and stderr in order,
// then the result; the same run again is a cache hit: only the result.
func TestRunEvents(t *testing.T) {
	eb := startExecBridge(t, executor.Limits{Timeout: 30 * time.Second}, 1, Config{}, map[string]string{"tick.py": tickPy})
	resp := postEvents(t, context.Background(), http.DefaultClient, eb.url+"/run/tick.py", `{}`)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get(bus.HeaderNode) != "n1" || resp.Header.Get(bus.HeaderCache) != "miss" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	var evs []testutil.Event
	readEvents(t, resp.Body, func(ev testutil.Event) bool { evs = append(evs, ev); return true })
	if len(evs) < 3 {
		t.Fatalf("events %+v", evs)
	}
	last := evs[len(evs)-1]
	if last.Name != "result" {
		t.Fatalf("last event %+v", last)
	}
	var res model.Result
	if err := json.Unmarshal([]byte(last.Data), &res); err != nil {
		t.Fatal(err)
	}
	var out, errs strings.Builder
	var order []string
	for _, ev := range evs[:len(evs)-1] {
		var chunk string
		if err := json.Unmarshal([]byte(ev.Data), &chunk); err != nil {
			t.Fatalf("event %+v: data is not a JSON string: %v", ev, err)
		}
		switch ev.Name {
		case "stdout":
			out.WriteString(chunk)
		case "stderr":
			errs.WriteString(chunk)
		default:
			t.Fatalf("event %+v", ev)
		}
		// One line may come as more than one chunk (print writes its
		// parts one by one, and a loaded machine can split them): what
		// holds is the order of the streams' lines.
		if n := len(order); n > 0 && strings.HasPrefix(order[n-1], ev.Name+":") && !strings.HasSuffix(order[n-1], "\n") {
			order[n-1] += chunk
		} else {
			order = append(order, ev.Name+":"+chunk)
		}
	}
	for i := range order {
		order[i] = strings.TrimSpace(order[i])
	}
	if evs[0].Name != "stdout" || last.At.Sub(evs[0].At) < time.Second {
		t.Errorf("first event %+v came %v before the result", evs[0], last.At.Sub(evs[0].At))
	}
	want := "stdout:tick 0,stderr:warn 0,stdout:tick 1,stderr:warn 1,stdout:tick 2,stderr:warn 2,stdout:tick 3,stderr:warn 3"
	if got := strings.Join(order, ","); got != want {
		t.Errorf("events %s\nwant   %s", got, want)
	}
	if res.Stdout != out.String() || res.Stderr != errs.String() || *res.ExitCode != 0 {
		t.Errorf("result %+v; streamed %q %q", res, out.String(), errs.String())
	}

	resp = postEvents(t, context.Background(), http.DefaultClient, eb.url+"/run/tick.py", `{}`)
	defer resp.Body.Close()
	evs = nil
	readEvents(t, resp.Body, func(ev testutil.Event) bool { evs = append(evs, ev); return true })
	if resp.Header.Get(bus.HeaderCache) != "hit" || len(evs) != 1 || evs[0].Name != "result" || evs[0].Data != last.Data {
		t.Fatalf("cache hit: %v %+v", resp.Header, evs)
	}

	// Errors before any output are the usual JSON answers.
	resp = postEvents(t, context.Background(), http.DefaultClient, eb.url+"/run/nope.py", `{}`)
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(data), `"error"`) {
		t.Fatalf("unknown script: %d %s", resp.StatusCode, data)
	}
}

// The caps hold while streaming; a timeout ends the stream with its 504
// body as the result.
func TestRunEventsCapsAndTimeout(t *testing.T) {
	eb := startExecBridge(t, executor.Limits{Timeout: 2 * time.Second, MaxOutput: 5000}, 2, Config{}, map[string]string{
		"big.py":  "import sys\nfor i in range(1000):\n    print('x' * 99)\nsys.stderr.write('e' * 9000)\n",
		"slow.py": "import time\nprint('before', flush=True)\ntime.sleep(30)\n",
	})
	for _, tc := range []struct {
		name, script string
		check        func(res model.TimeoutBody, out, errs string) string
	}{
		{"caps", "big.py", func(res model.TimeoutBody, out, errs string) string {
			if len(out) != 5000 || len(errs) != 5000 || out != res.Stdout || errs != res.Stderr || !res.StdoutTruncated || !res.StderrTruncated {
				return fmt.Sprintf("streamed %d+%d bytes; result %d+%d, truncated %v %v", len(out), len(errs), len(res.Stdout), len(res.Stderr), res.StdoutTruncated, res.StderrTruncated)
			}
			return ""
		}},
		{"timeout", "slow.py", func(res model.TimeoutBody, out, errs string) string {
			if out != "before\n" || !res.TimedOut || res.Error != model.MsgTimedOut || res.Stdout != out {
				return fmt.Sprintf("streamed %q; result %+v", out, res)
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := postEvents(t, context.Background(), http.DefaultClient, eb.url+"/run/"+tc.script, `{}`)
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			var out, errs strings.Builder
			var res model.TimeoutBody
			results := 0
			readEvents(t, resp.Body, func(ev testutil.Event) bool {
				var chunk string
				switch ev.Name {
				case "stdout", "stderr":
					json.Unmarshal([]byte(ev.Data), &chunk)
					if ev.Name == "stdout" {
						out.WriteString(chunk)
					} else {
						errs.WriteString(chunk)
					}
				case "result":
					results++
					json.Unmarshal([]byte(ev.Data), &res)
				default:
					t.Errorf("event %+v", ev)
				}
				return true
			})
			if results != 1 {
				t.Fatalf("%d result events", results)
			}
			if msg := tc.check(res, out.String(), errs.String()); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// A client that goes away mid-run cancels it: its processes are gone
// within a second, and the node's only slot serves the next caller at
// once. Streamed or not.
func TestClientGoneCancelsRun(t *testing.T) {
	script := func(pidFile string) string {
		return fmt.Sprintf(`
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(%[1]q + ".tmp", "w").write("%%d %%d\n" %% (os.getpid(), child.pid))
os.rename(%[1]q + ".tmp", %[1]q)
print("working", flush=True)
time.sleep(60)
`, pidFile)
	}
	pidDir := t.TempDir()
	os.Chmod(pidDir, 0o777) // scripts may run as nobody
	eb := startExecBridge(t, executor.Limits{Timeout: 60 * time.Second}, 1, Config{}, map[string]string{
		"long-sse.py":  script(filepath.Join(pidDir, "sse.pid")),
		"long-json.py": script(filepath.Join(pidDir, "json.pid")),
		"quick.py":     `print("quick")`,
	})
	for i, tc := range []struct {
		name, script string
		sse          bool
	}{
		{"sse", "long-sse.py", true},
		{"json", "long-json.py", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pidFile := filepath.Join(pidDir, tc.name+".pid")
			gone := make(chan struct{})
			if tc.sse {
				resp := postEvents(t, ctx, http.DefaultClient, eb.url+"/run/"+tc.script, `{}`)
				readEvents(t, resp.Body, func(ev testutil.Event) bool {
					if ev.Name != "stdout" || ev.Data != `"working\n"` {
						t.Errorf("first event %+v", ev)
					}
					return false
				})
				close(gone)
			} else {
				go func() {
					defer close(gone)
					req, _ := http.NewRequestWithContext(ctx, "POST", eb.url+"/run/"+tc.script, strings.NewReader(`{}`))
					if resp, err := http.DefaultClient.Do(req); err == nil {
						resp.Body.Close()
						t.Errorf("an answer %d to a request that was given up", resp.StatusCode)
					}
				}()
			}
			pids := testutil.ReadPids(t, pidFile)
			cancel() // the client goes away
			<-gone
			testutil.WaitFor(t, time.Second, fmt.Sprintf("the run's processes %v to end after the client left", pids), func() bool {
				for _, pid := range pids {
					if !testutil.ProcessGone(pid) {
						return false
					}
				}
				return true
			})
			start := time.Now()
			code, body := post(t, eb.url+"/run/quick.py", `{"data":`+strconv.Itoa(i)+`}`)
			if code != 200 || !strings.Contains(body, "quick") {
				t.Fatalf("next run: %d %s", code, body)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("the next caller waited %v for the only slot", took)
			}
		})
	}
	st := eb.node.Stats()
	if st.Cancelled != 2 || st.Errors != 0 {
		t.Errorf("node stats %+v", st)
	}
}

// A client that does not read cannot make the bridge hold the output:
// beyond StreamBuffer chunks are dropped and said so, the script runs to
// its end unhindered, and the result has all of it.
func TestSlowEventReader(t *testing.T) {
	const total = 16 << 20
	const buffer = 64 << 10
	eb := startExecBridge(t, executor.Limits{Timeout: 60 * time.Second, MaxOutput: 32 << 20}, 1, Config{StreamBuffer: buffer},
		map[string]string{"flood.py": fmt.Sprintf("import sys\nline = 'y' * 1023 + '\\n'\nfor i in range(%d):\n    sys.stdout.write(line)\n", total/1024)})
	// A client with a tiny receive buffer, which reads nothing at first.
	client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		Control: func(network, address string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		},
	}).DialContext}}
	resp := postEvents(t, context.Background(), client, eb.url+"/run/flood.py", `{}`)
	defer resp.Body.Close()
	// The run ends, and the node answers, while the client reads nothing.
	testutil.WaitFor(t, 60*time.Second, "the run to end while its client reads nothing", func() bool { return eb.node.Stats().Requests >= 1 })
	var streamed, skipped int
	var res model.Result
	var seen []string // every event but stdout, for the failure message
	readEvents(t, resp.Body, func(ev testutil.Event) bool {
		if ev.Name != "stdout" {
			seen = append(seen, fmt.Sprintf("%s: %.300s", ev.Name, ev.Data))
		}
		switch ev.Name {
		case "stdout":
			var chunk string
			json.Unmarshal([]byte(ev.Data), &chunk)
			streamed += len(chunk)
		case "skipped":
			var n map[string]int
			if err := json.Unmarshal([]byte(ev.Data), &n); err != nil {
				t.Errorf("skipped %s: %v", ev.Data, err)
			}
			skipped += n["stdout"]
		case "result":
			if err := json.Unmarshal([]byte(ev.Data), &res); err != nil {
				t.Errorf("result %.300s: %v", ev.Data, err)
			}
		default:
			t.Errorf("event %s: %.300s", ev.Name, ev.Data)
		}
		return true
	})
	if len(res.Stdout) != total {
		t.Fatalf("result has %d bytes of stdout, want %d (exit %v, signal %q, timed out %v, truncated %v, stderr %.300q); %d bytes streamed, %d skipped; the events but stdout: %q",
			len(res.Stdout), total, res.ExitCode, res.Signal, res.TimedOut, res.StdoutTruncated, res.Stderr, streamed, skipped, seen)
	}
	if skipped == 0 || streamed+skipped != total {
		t.Errorf("streamed %d + skipped %d bytes, want %d in all, some skipped", streamed, skipped, total)
	}
	if high := eb.b.streamHigh.Load(); high > buffer {
		t.Errorf("the bridge held %d bytes for the stream, more than its %d", high, buffer)
	}
	t.Logf("streamed %d bytes, skipped %d, the bridge held at most %d", streamed, skipped, eb.b.streamHigh.Load())
}

func TestWantsEvents(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                  false,
		"application/json":  false,
		"text/event-stream": true,
		"application/json, text/event-stream;q=0.5": true,
		"text/event-stream;q=0":                     false,
		"text/event-stream; q=0.0, */*":             false,
		"TEXT/Event-Stream":                         true,
	} {
		r, _ := http.NewRequest("POST", "/run/a.py", nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		if got := wantsEvents(r); got != want {
			t.Errorf("Accept %q: %v, want %v", accept, got, want)
		}
	}
}
