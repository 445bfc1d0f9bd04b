package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/client"
	"github.com/scripthost/scripthost/executor"
	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// testConfig is a serve configuration on free loopback ports with a fresh
// scripts folder.
func testConfig(t *testing.T) serveConfig {
	t.Helper()
	return serveConfig{
		HTTP:         "127.0.0.1:0",
		NATSListen:   "127.0.0.1:-1",
		Scripts:      t.TempDir(),
		ScanInterval: 100 * time.Millisecond,
		nodeConfig: nodeConfig{
			MaxConcurrent: 4,
			Timeout:       10 * time.Second,
			QueueTimeout:  10 * time.Second,
			CacheTTL:      time.Minute,
			CacheSize:     8 << 20,
			Python:        testutil.Python(t),
			Mode:          testMode(),
			MaxBody:       1 << 20,
			MaxOutput:     1 << 20,
			MaxQueue:      executor.DefaultMaxQueue,
			Node:          "test-node",
			WarmParents:   executor.DefaultMaxWarmParents,
			WarmMemory:    executor.DefaultWarmParentMemory,
			WarmIdle:      executor.DefaultWarmParentIdle,
			LogFormat:     "text",
			LogLevel:      "info",
			// Tests write into their scripts folders, which only root may
			// enter: scripts run as root, as asked for by name (limits_test.go
			// has the tests of other run users).
			securityConfig: securityConfig{RunAs: testRunAs(), Sandbox: testSandbox(), Network: "none",
				MaxMemory: defaultMaxMemory, MaxCPU: cpuSeconds(defaultMaxCPU),
				MaxProcs: defaultMaxProcs, MaxOpenFiles: defaultMaxOpenFiles},
		},
		edgeConfig: defaultEdge(),
		jobsConfig: jobsConfig{DataDir: t.TempDir(), JobMaxAttempts: 3, JobTTL: time.Hour,
			JobMaxTimeout: time.Hour, JobAckWait: 5 * time.Second, CallbackRetries: 5, JobReplicas: 1},
	}
}

// testSandbox is the sandbox mode of the tests' servers:
// SCRIPTHOST_TEST_SANDBOX, or off. Most tests look at a run from outside
// (marker files written into the scripts folder, pids); sandbox_test.go
// has the tests of the sandbox, which turn it on.
func testSandbox() string {
	if m := os.Getenv("SCRIPTHOST_TEST_SANDBOX"); m != "" {
		return m
	}
	return "off"
}

// testMode is the execution mode under test: SCRIPTHOST_TEST_MODE, or the
// default of `serve`.
func testMode() string {
	if m := os.Getenv("SCRIPTHOST_TEST_MODE"); m != "" {
		return m
	}
	var cfg serveConfig
	cfg.flags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	return cfg.Mode
}

// testServer is a `serve` running in the test process.
type testServer struct {
	t    *testing.T
	cfg  serveConfig
	s    *server
	base string
	api  *client.HTTP // a client of its HTTP API
}

// startTest starts serve with cfg, adjusted by the options, and stops it
// when the test ends.
func startTest(t *testing.T, cfg serveConfig, scripts map[string]string) *testServer {
	t.Helper()
	for name, code := range scripts {
		if err := os.WriteFile(filepath.Join(cfg.Scripts, name), []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := startServer(cfg, testutil.Logger(t, slog.LevelInfo))
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(s.shutdown)
	base := "http://" + s.httpAddr
	return &testServer{t: t, cfg: cfg, s: s, base: base, api: httpClient(t, base, "")}
}

// response is what an HTTP client saw, or the error that kept it from
// seeing an answer.
type response struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response %d %q: not JSON: %v", r.status, r.body, err)
	}
}

// result decodes the body as a run result.
func (r response) result(t *testing.T) model.Result {
	t.Helper()
	var res model.Result
	r.json(t, &res)
	return res
}

// errorText decodes the body as {"error": ...}.
func (r response) errorText(t *testing.T) string {
	t.Helper()
	var e model.ErrorBody
	r.json(t, &e)
	if e.Error == "" {
		t.Fatalf("status %d: no error message in %q", r.status, r.body)
	}
	return e.Error
}

// do sends one HTTP request; headers are name, value pairs. It fails the
// test if no answer comes: from the test's goroutine only.
func (ts *testServer) do(method, path, body string, headers ...string) response {
	ts.t.Helper()
	r := ts.call(method, path, body, headers...)
	if r.err != nil {
		ts.t.Fatal(r.err)
	}
	return r
}

// call is do for any goroutine: an error is in the response, for the
// test's goroutine to check (want does).
func (ts *testServer) call(method, path, body string, headers ...string) response {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.base+path, rd)
	if err != nil {
		return response{err: err}
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{err: fmt.Errorf("%s %s: %w", method, path, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{err: fmt.Errorf("%s %s: read the answer: %w", method, path, err)}
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// want fails the test unless the response has the status.
func (r response) want(t *testing.T, status int) response {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	return r
}

// httpClient is a client of the HTTP API at base, closed when the test
// ends.
func httpClient(t *testing.T, base, token string) *client.HTTP {
	t.Helper()
	c, err := client.NewHTTP(client.Config{URL: base, Token: token, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// nats connects a client to the server's NATS listener, as another
// service would.
func (ts *testServer) nats() *nats.Conn {
	ts.t.Helper()
	nc, err := nats.Connect(ts.s.natsURL)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(nc.Close)
	return nc
}

// write puts a file into the scripts folder by hand.
func (ts *testServer) write(name, code string) {
	ts.t.Helper()
	if err := os.WriteFile(filepath.Join(ts.cfg.Scripts, name), []byte(code), 0o644); err != nil {
		ts.t.Fatal(err)
	}
}

func intp(n int) *int { return &n }

// jsonBody encodes v.
func jsonBody(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
