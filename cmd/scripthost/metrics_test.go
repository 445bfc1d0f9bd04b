package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
)

// scrape reads /metrics into a map from series ("name{labels}") to value.
func (ts *testServer) scrape() map[string]float64 {
	ts.t.Helper()
	r := ts.do("GET", "/metrics", "").want(ts.t, 200)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		ts.t.Fatalf("content type %q", ct)
	}
	series := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			ts.t.Fatalf("metrics line %q: %v", line, err)
		}
		series[line[:i]] = v
	}
	return series
}

func TestMetricsAfterRuns(t *testing.T) {
	ts := startTest(t, testConfig(t), map[string]string{
		"ok.py":   "print('ok')\n",
		"fail.py": "import sys\nsys.exit(3)\n",
		"kill.py": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
	})
	m := ts.scrape()
	for series, want := range map[string]float64{
		"scripthost_scripts":                  3,
		"scripthost_executor_slots":           4,
		"scripthost_runs_in_flight":           0,
		"scripthost_queue_wait_seconds_count": 0,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}

	ts.do("POST", "/run/ok.py", "").want(t, 200)
	ts.do("POST", "/run/ok.py", "").want(t, 200) // cache hit
	ts.do("POST", "/run/fail.py", "").want(t, 200)
	ts.do("POST", "/run/kill.py", "").want(t, 200)
	ts.do("POST", "/run/nope.py", "").want(t, 404)
	ts.do("POST", "/scripts", `{"name":"new.py","code":"print(1)"}`).want(t, 201)

	// A node counts a run after it answered: poll.
	runs := func(m map[string]float64) float64 {
		var n float64
		for k, v := range m {
			if strings.HasPrefix(k, "scripthost_runs_total{") {
				n += v
			}
		}
		return n
	}
	testutil.WaitFor(t, 30*time.Second, "5 runs counted", func() bool {
		m = ts.scrape()
		return runs(m) == 5
	})
	for series, want := range map[string]float64{
		`scripthost_runs_total{outcome="ok",script="ok.py"}`:                           2,
		`scripthost_runs_total{outcome="error",script="fail.py"}`:                      1,
		`scripthost_runs_total{outcome="signal",script="kill.py"}`:                     1,
		`scripthost_runs_total{outcome="not_found",script=""}`:                         1,
		`scripthost_cache_hits_total{script="ok.py"}`:                                  1,
		`scripthost_cache_misses_total{script="ok.py"}`:                                1,
		`scripthost_cache_misses_total{script="fail.py"}`:                              1,
		`scripthost_run_duration_seconds_count{script="ok.py"}`:                        1,
		`scripthost_run_duration_seconds_count{script="kill.py"}`:                      1,
		`scripthost_queue_wait_seconds_count`:                                          3,
		`scripthost_runs_in_flight`:                                                    0,
		`scripthost_scripts`:                                                           4,
		`scripthost_http_requests_total{code="404",method="POST",route="/run/{name}"}`: 1,
		`scripthost_http_requests_total{code="201",method="POST",route="/scripts"}`:    1,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if m[`scripthost_http_requests_total{code="200",method="POST",route="/run/{name}"}`] != 4 {
		t.Errorf("HTTP runs: %v", m)
	}
	for series := range m {
		if strings.Contains(series, "nope.py") {
			t.Errorf("an unknown name became a label: %s", series)
		}
	}
	if m["go_goroutines"] == 0 || m["process_cpu_seconds_total"] == 0 && m["process_resident_memory_bytes"] == 0 {
		t.Errorf("no runtime or process metrics")
	}
}

func TestReadyzAndOpenAPIServed(t *testing.T) {
	ts := startTest(t, testConfig(t), map[string]string{"a.py": "print(1)\n"})
	var ready struct {
		Status  string
		Scripts int
	}
	ts.do("GET", "/readyz", "").want(t, 200).json(t, &ready)
	if ready.Status != "ready" || ready.Scripts != 1 {
		t.Fatalf("readyz %+v", ready)
	}
	var doc struct {
		OpenAPI string
		Info    struct{ Version string }
		Paths   map[string]any
	}
	ts.do("GET", "/openapi.json", "").want(t, 200).json(t, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Info.Version != version || doc.Paths["/run/{name}"] == nil {
		t.Fatalf("openapi %+v", doc)
	}
}

// TestExecutorNodeMetrics: a node of its own serves its metrics on
// --metrics, and the serve node without an executor reports no slots.
func TestExecutorNodeMetrics(t *testing.T) {
	c := startCluster(t, 1)
	metricsAddr := freePort(t)
	startBinary(t, nil, "executor", "--nats", c.natsURL, "--name", "m1", "--max-concurrent", "2",
		"--dir", t.TempDir(), "--python", testutil.Python(t), "--mode", testMode(), "--metrics", metricsAddr)
	c.nodes["m1"] = nil
	c.put("a.py", "print('a')\n")
	c.waitNodes("a.py")

	get := func(url string) string {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	node := get("http://" + metricsAddr + "/metrics")
	for _, want := range []string{
		`scripthost_runs_total{outcome="ok",script="a.py"} `,
		`scripthost_executor_slots 2`,
		`scripthost_run_duration_seconds_count{script="a.py"} `,
	} {
		if !strings.Contains(node, want) {
			t.Errorf("node metrics have no %q:\n%s", want, node)
		}
	}
	serve := get(c.base + "/metrics")
	for _, want := range []string{`scripthost_executor_slots 0`, `scripthost_scripts 1`} {
		if !strings.Contains(serve, want) {
			t.Errorf("serve metrics have no %q", want)
		}
	}
	// A deleted script's series leave the node too.
	req, _ := http.NewRequest("DELETE", c.base+"/scripts/a.py", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("delete: %v %v", err, resp)
	}
	resp.Body.Close()
	testutil.WaitFor(t, 30*time.Second, "the node to forget a.py", func() bool {
		return !strings.Contains(get("http://"+metricsAddr+"/metrics"), `script="a.py"`)
	})
}

// Per-script series exist from the script's start, at zero, and go with
// the script; the build is named; OpenMetrics is served on request.
func TestMetricsFollowScripts(t *testing.T) {
	cfg := testConfig(t)
	ts := startTest(t, cfg, map[string]string{"a.py": "print('a')\n", "b.py": "print('b')\n"})
	m := ts.scrape()
	for _, series := range []string{
		`scripthost_runs_total{outcome="ok",script="a.py"}`,
		`scripthost_runs_total{outcome="error",script="b.py"}`,
		`scripthost_runs_total{outcome="timeout",script="b.py"}`,
		`scripthost_cache_hits_total{script="a.py"}`,
		`scripthost_cache_misses_total{script="b.py"}`,
		`scripthost_http_requests_total{code="200",method="POST",route="/run/{name}"}`,
		`scripthost_http_requests_total{code="201",method="POST",route="/scripts"}`,
		`scripthost_http_requests_total{code="204",method="DELETE",route="/scripts/{name}"}`,
	} {
		if v, ok := m[series]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0 from the start", series, v, ok)
		}
	}
	build := false
	for series, v := range m {
		if strings.HasPrefix(series, "scripthost_build_info{") && strings.Contains(series, `version="`+version+`"`) && strings.Contains(series, `goversion="go1.`) && v == 1 {
			build = true
		}
	}
	if !build {
		t.Errorf("no scripthost_build_info")
	}

	// A cache hit takes well under a millisecond: the buckets tell it
	// from a run.
	ts.do("POST", "/run/a.py", "").want(t, 200)
	m = ts.scrape()
	if _, ok := m[`scripthost_http_request_duration_seconds_bucket{method="POST",route="/run/{name}",le="0.0005"}`]; !ok {
		t.Errorf("no bucket below a millisecond")
	}

	// Deleted through the API, or by hand from the folder: the series go.
	ts.do("DELETE", "/scripts/a.py", "").want(t, 204)
	if err := os.Remove(filepath.Join(cfg.Scripts, "b.py")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "the series of deleted scripts to go", func() bool {
		for series := range ts.scrape() {
			if strings.Contains(series, `script="a.py"`) || strings.Contains(series, `script="b.py"`) {
				return false
			}
		}
		return true
	})

	r := ts.do("GET", "/metrics", "", "Accept", "application/openmetrics-text; version=1.0.0").want(t, 200)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") || !bytes.HasSuffix(r.body, []byte("# EOF\n")) {
		t.Errorf("OpenMetrics: %q, ends %q", ct, r.body[max(0, len(r.body)-20):])
	}
}
