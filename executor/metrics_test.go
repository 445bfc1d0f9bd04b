package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// fakeScripts knows a fixed set of scripts.
type fakeScripts map[string]string

func (f fakeScripts) Locate(name string) (string, string, error) {
	v, ok := f[name]
	if !ok {
		return "", "", model.Errorf(model.ErrNotFound, "script %q not found", name)
	}
	return "/scripts/" + name, v, nil
}

// fakeRunner answers by the first argument: "ok", "fail" (exit 3),
// "kill" (SIGKILL) or "slow" (times out).
type fakeRunner struct{}

func (fakeRunner) Run(_ context.Context, job Job) (model.Result, error) {
	code := func(n int) *int { return &n }
	switch job.Args[0] {
	case "fail":
		return model.Result{Stderr: "boom\n", ExitCode: code(3)}, nil
	case "kill":
		return model.Result{Signal: "SIGKILL"}, nil
	case "slow":
		return model.Result{Signal: "SIGKILL", TimedOut: true}, nil
	}
	return model.Result{Stdout: "ok\n", ExitCode: code(0)}, nil
}

func (fakeRunner) Close() error { return nil }

// recMetrics records the calls of the metrics hook.
type recMetrics struct {
	mu       sync.Mutex
	answered []string // script/outcome
	cache    []string // script/hit|miss
	waits    int
	inFlight int
	finished []string
}

func (m *recMetrics) Answered(script, outcome string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.answered = append(m.answered, script+"/"+outcome)
}

func (m *recMetrics) Cache(script string, hit bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cache = append(m.cache, script+"/"+cacheWord(hit))
}

func (m *recMetrics) QueueWaited(time.Duration) { m.mu.Lock(); m.waits++; m.mu.Unlock() }
func (m *recMetrics) RunStarted()               { m.mu.Lock(); m.inFlight++; m.mu.Unlock() }

func (m *recMetrics) RunFinished(script string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inFlight--
	m.finished = append(m.finished, script)
}

func sorted(s []string) string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return strings.Join(s, " ")
}

// startNode serves a node with the fake runner on an embedded server and
// returns a client connection of its own (Drain needs the node's
// connection to itself).
func startNode(t *testing.T, cfg Config, scripts Scripts) (*Service, *nats.Conn) {
	t.Helper()
	return startNodeWith(t, cfg, fakeRunner{}, scripts)
}

// startNodeWith is startNode with a runner of the test's own.
func startNodeWith(t *testing.T, cfg Config, runner Runner, scripts Scripts) (*Service, *nats.Conn) {
	t.Helper()
	ns := testutil.StartBus(t)
	nodeConn := testutil.Connect(t, ns)
	cfg.Log = testutil.Logger(t, slog.LevelDebug)
	svc, err := New(cfg, runner, scripts)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Serve(nodeConn, "1.2.3"); err != nil {
		t.Fatal(err)
	}
	// Requests on the other connection must find the subscriptions.
	if err := nodeConn.Flush(); err != nil {
		t.Fatal(err)
	}
	drainAtCleanup(t, svc, 10*time.Second)
	return svc, testutil.Connect(t, ns)
}

// drainAtCleanup drains svc when the test ends, within wait.
func drainAtCleanup(t *testing.T, svc *Service, wait time.Duration) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := svc.Drain(ctx); err != nil {
			t.Error(err)
		}
	})
}

func TestStatsAndMetrics(t *testing.T) {
	rec := &recMetrics{}
	_, nc := startNode(t, Config{
		Node: "n1", MaxConcurrent: 2, QueueTimeout: time.Second,
		CacheTTL: time.Minute, CacheSize: 1 << 20, Metrics: rec,
	}, fakeScripts{"a.py": "v1"})

	for _, tc := range []struct{ subject, body, code string }{
		{"script.run.a.py", `{"args":["ok"]}`, ""},
		{"script.run.a.py", `{"args":["ok"]}`, ""}, // cache hit
		{"script.run.a.py", `{"args":["fail"]}`, ""},
		{"script.run.a.py", `{"args":["kill"]}`, ""},
		{"script.run.a.py", `{"args":["slow"]}`, "504"},
		{"script.run.nope.py", `{"args":["ok"]}`, "404"},
		{"script.run.made-up.py", `{"args":5}`, "400"},
	} {
		m, err := nc.Request(tc.subject, []byte(tc.body), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get(bus.HeaderErrorCode); got != tc.code {
			t.Fatalf("%s %s: code %q, want %q: %s", tc.subject, tc.body, got, tc.code, m.Data)
		}
	}

	// The node counts a request before it replies: a caller that has its
	// answer finds it counted, with no wait, and the last error is that of
	// the last request (a 400) whichever goroutine answered which.
	m, err := nc.Request("$SRV.STATS.scripthost-executor", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var stats micro.Stats
	if err := json.Unmarshal(m.Data, &stats); err != nil {
		t.Fatal(err)
	}
	if len(stats.Endpoints) != 1 || stats.Endpoints[0].Name != "run" {
		t.Fatalf("endpoints %s", m.Data)
	}
	var st RunStats
	if err := json.Unmarshal(stats.Endpoints[0].Data, &st); err != nil {
		t.Fatalf("data %s: %v", stats.Endpoints[0].Data, err)
	}
	ep := *stats.Endpoints[0]
	// micro's own figures are true too: every request and error counted
	// when it was answered, and the time to answer each, runs included.
	if ep.NumRequests != 7 || ep.NumErrors != 3 || !strings.HasPrefix(ep.LastError, "400:") {
		t.Errorf("micro stats: %d requests, %d errors, last %q; want 7, 3, the last request's 400", ep.NumRequests, ep.NumErrors, ep.LastError)
	}
	if ep.ProcessingTime.Seconds() < st.RunTimeSeconds || ep.AverageProcessingTime != ep.ProcessingTime/7 {
		t.Errorf("micro processing time %v (average %v), the runs took %.3fs", ep.ProcessingTime, ep.AverageProcessingTime, st.RunTimeSeconds)
	}
	want := RunStats{Requests: 7, Errors: 3, NonZeroExits: 2, Timeouts: 1, CacheHits: 1, CacheMisses: 4, Runs: 4, Slots: 2, LastError: strings.TrimPrefix(ep.LastError, "400:")}
	got := st
	got.RunTimeSeconds, got.AverageRunTimeSeconds = 0, 0
	if got != want {
		t.Fatalf("stats %+v\nwant  %+v", got, want)
	}
	if st.RunTimeSeconds <= 0 || st.AverageRunTimeSeconds <= 0 {
		t.Fatalf("run time %v, average %v", st.RunTimeSeconds, st.AverageRunTimeSeconds)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, c := range []struct{ what, got, want string }{
		{"answered", sorted(rec.answered), "/bad_request /not_found a.py/error a.py/ok a.py/ok a.py/signal a.py/timeout"},
		{"cache", sorted(rec.cache), "a.py/hit a.py/miss a.py/miss a.py/miss a.py/miss"},
		{"finished", sorted(rec.finished), "a.py a.py a.py a.py"},
		{"waits", fmt.Sprint(rec.waits), "4"},
		{"in flight", fmt.Sprint(rec.inFlight), "0"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s", c.what, c.got, c.want)
		}
	}
}

func TestServiceInfoMetadata(t *testing.T) {
	_, nc := startNode(t, Config{Node: "n1", MaxConcurrent: 1, QueueTimeout: time.Second}, fakeScripts{})
	m, err := nc.Request("$SRV.INFO.scripthost-executor", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(m.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Version != "1.2.3" || info.Metadata["node"] != "n1" || len(info.Endpoints) != 1 {
		t.Fatalf("info %s", m.Data)
	}
	for _, k := range []string{"description", "request", "response", "errors", "stats"} {
		if info.Endpoints[0].Metadata[k] == "" {
			t.Errorf("endpoint metadata has no %q: %v", k, info.Endpoints[0].Metadata)
		}
	}
}
