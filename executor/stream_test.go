package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

func TestWholeUTF8(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want int
	}{
		{"empty", "", 0},
		{"ascii", "abc", 3},
		{"whole two-byte", "aé", 3},
		{"cut two-byte", "a\xc3", 1},
		{"cut three-byte after one", "a\xe2\x82", 1},
		{"whole three-byte", "a€", 4},
		{"cut four-byte after three", "a\xf0\x9f\x98", 1},
		{"invalid byte passes", "a\xff", 2},
		{"lone continuation passes", "a\x82", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := wholeUTF8([]byte(tc.in)); got != tc.want {
				t.Errorf("wholeUTF8(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

// chunk is one piece of output a run streamed, and when it came.
type chunk struct {
	fd   int
	data string
	at   time.Time
}

// recOutput records what a run streams.
type recOutput struct {
	mu     sync.Mutex
	chunks []chunk
}

func (r *recOutput) Chunk(fd int, p []byte) {
	r.mu.Lock()
	r.chunks = append(r.chunks, chunk{fd, string(p), time.Now()})
	r.mu.Unlock()
}

func (r *recOutput) joined(fd int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, c := range r.chunks {
		if c.fd == fd {
			b.WriteString(c.data)
		}
	}
	return b.String()
}

// A streamed run's output comes as the script writes it, unbuffered
// although the script never flushes, in order, and adds up to the result.
func TestRunnerStreamsOutput(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 30 * time.Second})
			path := writeScript(t, t.TempDir(), "tick.py", `
import os, sys, time
for i in range(3):
    print("out", i)
    time.sleep(0.2)
    print("err", i, file=sys.stderr)
    time.sleep(0.2)
print("unbuffered", os.environ.get("PYTHONUNBUFFERED"), sys.stdout.write_through)
`)
			out := &recOutput{}
			start := time.Now()
			res, err := r.Run(context.Background(), Job{Path: path, Output: out})
			end := time.Now()
			if err != nil {
				t.Fatal(err)
			}
			wantOut := "out 0\nout 1\nout 2\nunbuffered 1 True\n"
			if res.Stdout != wantOut || res.Stderr != "err 0\nerr 1\nerr 2\n" {
				t.Fatalf("result %+v", res)
			}
			if got := out.joined(1); got != res.Stdout {
				t.Errorf("streamed stdout %q, result %q", got, res.Stdout)
			}
			if got := out.joined(2); got != res.Stderr {
				t.Errorf("streamed stderr %q, result %q", got, res.Stderr)
			}
			out.mu.Lock()
			defer out.mu.Unlock()
			first := out.chunks[0]
			if first.fd != 1 || !strings.HasPrefix(first.data, "out") {
				t.Errorf("first chunk %+v", first)
			}
			if end.Sub(first.at) < 800*time.Millisecond {
				t.Errorf("first chunk %v after the start, %v before the end: not streamed", first.at.Sub(start), end.Sub(first.at))
			}
			// Each line was written 0.2 s after the one before: they come in
			// that order (an unbuffered print is several writes).
			var seq []string
			for i := 0; i < len(out.chunks); {
				fd, text := out.chunks[i].fd, ""
				for ; i < len(out.chunks) && out.chunks[i].fd == fd; i++ {
					text += out.chunks[i].data
				}
				for _, l := range strings.SplitAfter(text, "\n") {
					if l != "" {
						seq = append(seq, fmt.Sprintf("%d:%s", fd, strings.TrimSpace(l)))
					}
				}
			}
			want := "1:out 0,2:err 0,1:out 1,2:err 1,1:out 2,2:err 2,1:unbuffered 1 True"
			if got := strings.Join(seq, ","); got != want {
				t.Errorf("order %s\nwant  %s", got, want)
			}
		})
	}
}

// The caps hold for what is streamed as for the result.
func TestRunnerStreamCap(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 30 * time.Second, MaxOutput: 10000})
			path := writeScript(t, t.TempDir(), "big.py", `
import sys
for i in range(2000):
    sys.stdout.write("x" * 99 + "\n")
sys.stderr.write("e" * 50000)
`)
			out := &recOutput{}
			res, err := r.Run(context.Background(), Job{Path: path, Output: out})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Stdout) != 10000 || !res.StdoutTruncated || len(res.Stderr) != 10000 || !res.StderrTruncated {
				t.Fatalf("result: %d bytes of stdout (truncated %v), %d of stderr (%v)", len(res.Stdout), res.StdoutTruncated, len(res.Stderr), res.StderrTruncated)
			}
			if got := out.joined(1); got != res.Stdout {
				t.Errorf("streamed %d bytes of stdout, result has %d", len(got), len(res.Stdout))
			}
			if got := out.joined(2); got != res.Stderr {
				t.Errorf("streamed %d bytes of stderr, result has %d", len(got), len(res.Stderr))
			}
		})
	}
}

// A cancelled run ends with ErrCancelled and what it wrote; its whole
// process group is gone at once.
func TestRunnerCancelKillsGroup(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 60 * time.Second})
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "child.pid")
			path := writeScript(t, dir, "sleep.py", fmt.Sprintf(`
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("started", flush=True)
open(%[1]q + ".tmp", "w").write(str(child.pid) + "\n")
os.rename(%[1]q + ".tmp", %[1]q)
time.sleep(60)
`, pidFile))
			ctx, cancel := context.WithCancel(context.Background())
			type answer struct {
				res model.Result
				err error
			}
			done := make(chan answer, 1)
			go func() {
				res, err := r.Run(ctx, Job{Path: path})
				done <- answer{res, err}
			}()
			child := testutil.ReadPids(t, pidFile)[0]
			cancel()
			start := time.Now()
			var a answer
			select {
			case a = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the run did not end 10 s after it was cancelled")
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("the run ended %v after it was cancelled", took)
			}
			if !errors.Is(a.err, model.ErrCancelled) || model.Code(a.err) != 499 {
				t.Errorf("err %v (code %d), want ErrCancelled (499)", a.err, model.Code(a.err))
			}
			if a.res.Stdout != "started\n" {
				t.Errorf("result %+v", a.res)
			}
			testutil.WaitFor(t, 30*time.Second, "the run's grandchild to die", func() bool { return testutil.ProcessGone(child) })
		})
	}
}

// dirScripts serves the scripts of a folder, the file's mtime as version.
type dirScripts string

func (d dirScripts) Locate(name string) (string, string, error) {
	path := filepath.Join(string(d), name)
	st, err := os.Stat(path)
	if err != nil {
		return "", "", model.Errorf(model.ErrNotFound, "script %q not found", name)
	}
	return path, st.ModTime().String(), nil
}

// startRealNode serves a node that runs scripts of dir with a real
// runner; it returns a client connection.
func startRealNode(t *testing.T, cfg Config, r Runner, dir string) (*Service, *nats.Conn) {
	t.Helper()
	ns := testutil.StartBus(t)
	nodeConn := testutil.Connect(t, ns)
	cfg.Log = testutil.Logger(t, slog.LevelDebug)
	svc, err := New(cfg, r, dirScripts(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Serve(nodeConn, "1.2.3"); err != nil {
		t.Fatal(err)
	}
	drainAtCleanup(t, svc, 20*time.Second)
	return svc, testutil.Dial(t, bus.ConnConfig{URL: ns.URL()})
}

// streamRun sends a streamed run request and returns the channel of the
// messages that come back.
func streamRun(t *testing.T, nc *nats.Conn, name, body string, hdr nats.Header) chan *nats.Msg {
	t.Helper()
	inbox := nc.NewInbox()
	ch := make(chan *nats.Msg, 1024)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	m := nats.NewMsg(bus.RunSubject(name))
	for k, v := range hdr {
		m.Header[k] = v
	}
	m.Header.Set(bus.HeaderStream, "true")
	m.Reply = inbox
	m.Data = []byte(body)
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	return ch
}

func next(t *testing.T, ch chan *nats.Msg, d time.Duration) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(d):
		t.Fatalf("no message within %v", d)
		return nil
	}
}

// Over NATS: a start message with the run's id, the chunks as they come,
// then the result; a cache hit gets the result alone.
func TestServiceStreamsOverNATS(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "tick.py", `
import sys, time
for i in range(3):
    print("tick", i)
    print("warn", i, file=sys.stderr)
    time.sleep(0.4)
`)
	r := newFork(t, Limits{Timeout: 30 * time.Second}, nil)
	_, nc := startRealNode(t, Config{Node: "n1", MaxConcurrent: 1, QueueTimeout: 10 * time.Second,
		CacheTTL: time.Minute, CacheSize: 1 << 20}, r, dir)

	ch := streamRun(t, nc, "tick.py", `{}`, nil)
	start := next(t, ch, 10*time.Second)
	if start.Header.Get(bus.HeaderEvent) != bus.EventStart || !bus.ValidRunID(start.Header.Get(bus.HeaderRunID)) || start.Header.Get(bus.HeaderNode) != "n1" {
		t.Fatalf("first message: %v %q", start.Header, start.Data)
	}
	var stdout, stderr strings.Builder
	var firstOut, end time.Time
	var result *nats.Msg
	for result == nil {
		m := next(t, ch, 10*time.Second)
		switch ev := m.Header.Get(bus.HeaderEvent); ev {
		case bus.EventStdout:
			if firstOut.IsZero() {
				firstOut = time.Now()
			}
			stdout.Write(m.Data)
		case bus.EventStderr:
			stderr.Write(m.Data)
		case bus.EventResult:
			result, end = m, time.Now()
		default:
			t.Fatalf("message with event %q: %v %q", ev, m.Header, m.Data)
		}
	}
	if end.Sub(firstOut) < 600*time.Millisecond {
		t.Errorf("first stdout chunk only %v before the result", end.Sub(firstOut))
	}
	var res model.Result
	if err := json.Unmarshal(result.Data, &res); err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "tick 0\ntick 1\ntick 2\n" || res.Stderr != "warn 0\nwarn 1\nwarn 2\n" || res.Stdout != stdout.String() || res.Stderr != stderr.String() {
		t.Fatalf("result %+v; streamed %q, %q", res, stdout.String(), stderr.String())
	}
	if result.Header.Get(bus.HeaderCache) != "miss" {
		t.Errorf("result headers %v", result.Header)
	}

	// The same run again is a cache hit: only the result.
	ch = streamRun(t, nc, "tick.py", `{}`, nil)
	m := next(t, ch, 10*time.Second)
	if m.Header.Get(bus.HeaderEvent) != bus.EventResult || m.Header.Get(bus.HeaderCache) != "hit" || string(m.Data) != string(result.Data) {
		t.Fatalf("cache hit: %v %s", m.Header, m.Data)
	}
	select {
	case m := <-ch:
		t.Fatalf("a message after the result: %v %q", m.Header, m.Data)
	case <-time.After(200 * time.Millisecond):
	}
}

// script.cancel.<id> stops a run: the caller gets 499 with the output so
// far, the processes are gone, the slot is free for the next request, and
// the node counts it as cancelled.
func TestServiceCancelOverNATS(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	writeScript(t, dir, "long.py", fmt.Sprintf(`
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(%[1]q + ".tmp", "w").write(str(child.pid) + "\n")
os.rename(%[1]q + ".tmp", %[1]q)
print("working")
time.sleep(60)
`, pidFile))
	writeScript(t, dir, "quick.py", `print("quick")`)
	rec := &recMetrics{}
	r := newFork(t, Limits{Timeout: 60 * time.Second}, nil)
	svc, nc := startRealNode(t, Config{Node: "n1", MaxConcurrent: 1, QueueTimeout: 30 * time.Second, Metrics: rec}, r, dir)

	ch := streamRun(t, nc, "long.py", `{}`, nil)
	start := next(t, ch, 10*time.Second)
	id := start.Header.Get(bus.HeaderRunID)
	if m := next(t, ch, 10*time.Second); string(m.Data) != "working\n" {
		t.Fatalf("chunk %v %q", m.Header, m.Data)
	}
	child := testutil.ReadPids(t, pidFile)[0]

	// An id of no run in progress: 404.
	m, err := nc.Request(bus.CancelSubject(id[:strings.IndexByte(id, '.')]+".NOSUCHRUN"), nil, 5*time.Second)
	if err != nil || m.Header.Get(bus.HeaderErrorCode) != "404" {
		t.Fatalf("cancel of an unknown run: %v %v %s", err, m.Header, m.Data)
	}

	cancelled := time.Now()
	m, err = nc.Request(bus.CancelSubject(id), nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var ca CancelAnswer
	if json.Unmarshal(m.Data, &ca) != nil || !ca.Cancelled || ca.ID != id {
		t.Fatalf("cancel answer %v %s", m.Header, m.Data)
	}
	final := next(t, ch, 5*time.Second)
	if final.Header.Get(bus.HeaderEvent) != bus.EventResult || final.Header.Get(bus.HeaderErrorCode) != "499" {
		t.Fatalf("final %v %s", final.Header, final.Data)
	}
	var tb model.TimeoutBody
	if json.Unmarshal(final.Data, &tb) != nil || tb.Error != "run cancelled" || tb.Stdout != "working\n" || tb.Signal != "SIGKILL" {
		t.Fatalf("final body %s", final.Data)
	}
	testutil.WaitFor(t, 30*time.Second, "the cancelled run's grandchild to die", func() bool { return testutil.ProcessGone(child) })

	// The only slot is free at once.
	m, err = nc.Request(bus.RunSubject("quick.py"), nil, 5*time.Second)
	if err != nil || string(m.Data) == "" || m.Header.Get(bus.HeaderErrorCode) != "" {
		t.Fatalf("next run: %v %v %s", err, m.Header, m.Data)
	}
	if took := time.Since(cancelled); took > 3*time.Second {
		t.Errorf("the next run answered %v after the cancel", took)
	}
	// A cancel of a run that ended: 404.
	m, err = nc.Request(bus.CancelSubject(id), nil, 5*time.Second)
	if err != nil || m.Header.Get(bus.HeaderErrorCode) != "404" {
		t.Fatalf("cancel of an ended run: %v %v %s", err, m.Header, m.Data)
	}
	testutil.WaitFor(t, 5*time.Second, "2 requests counted", func() bool { return svc.Stats().Requests == 2 })
	if st := svc.Stats(); st.Cancelled != 1 || st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if got := sorted(rec.answered); got != "long.py/cancelled quick.py/ok" {
		t.Errorf("answered %s", got)
	}
}

// Identical runs share one execution: one caller going away leaves the
// other its run; the last one going stops it.
func TestFlightCancel(t *testing.T) {
	var f flight
	started := make(chan struct{})
	var ended error
	fn := func(ctx context.Context) (Outcome, error) {
		close(started)
		<-ctx.Done()
		ended = cancelled(ctx)
		return Outcome{}, ended
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { _, _, err := f.do(ctx1, "k", fn); errs <- err }()
	<-started
	go func() { _, _, err := f.do(ctx2, "k", fn); errs <- err }()
	testutil.WaitFor(t, 5*time.Second, "the second caller to join", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.calls["k"] != nil && f.calls["k"].refs == 2
	})
	cancel1()
	if err := <-errs; !errors.Is(err, model.ErrCancelled) {
		t.Fatalf("first caller: %v", err)
	}
	select {
	case err := <-errs:
		t.Fatalf("the second caller returned %v while still waiting", err)
	case <-time.After(100 * time.Millisecond):
	}
	cancel2()
	if err := <-errs; !errors.Is(err, model.ErrCancelled) || !errors.Is(ended, model.ErrCancelled) {
		t.Fatalf("second caller: %v; the run: %v", err, ended)
	}
}

// The coalescer merges output that comes close together, keeps the order
// of stdout and stderr, and never cuts a character.
func TestCoalescer(t *testing.T) {
	out := &recOutput{}
	c := newCoalescer(out)
	c.Chunk(1, []byte("a"))
	c.Chunk(1, []byte("b"))
	c.Chunk(2, []byte("E"))
	c.Chunk(1, []byte("c\xc3"))
	testutil.WaitFor(t, 5*time.Second, "a flush", func() bool {
		out.mu.Lock()
		defer out.mu.Unlock()
		return len(out.chunks) == 3
	})
	c.Chunk(1, []byte("\xa9!"))
	c.Chunk(2, []byte("\xe2\x82"))
	c.close()
	c.Chunk(1, []byte("after the end"))
	var got []string
	for _, ch := range out.chunks {
		got = append(got, fmt.Sprintf("%d:%q", ch.fd, ch.data))
	}
	want := `1:"ab",2:"E",1:"c",1:"é!",2:"\xe2\x82"`
	if strings.Join(got, ",") != want {
		t.Errorf("chunks %s\nwant   %s", strings.Join(got, ","), want)
	}
}
