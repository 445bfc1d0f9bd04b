package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestExecutorMetrics(t *testing.T) {
	reg := NewRegistry()
	m := NewExecutor(reg)
	RegisterScripts(reg, func() int { return 3 })
	RegisterSlots(reg, 4)
	NewHTTP(reg).Served("POST", "/run/{name}", 200, 10*time.Millisecond)

	m.Answered("a.py", "ok")
	m.Answered("a.py", "ok")
	m.Answered("", "not_found")
	m.Cache("a.py", true)
	m.Cache("a.py", false)
	m.QueueWaited(2 * time.Millisecond)
	m.RunStarted()
	m.RunStarted()
	m.RunFinished("a.py", 30*time.Millisecond)

	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"runs ok", testutil.ToFloat64(m.runs.WithLabelValues("a.py", "ok")), 2},
		{"runs not found", testutil.ToFloat64(m.runs.WithLabelValues("", "not_found")), 1},
		{"hits", testutil.ToFloat64(m.cacheHits.WithLabelValues("a.py")), 1},
		{"misses", testutil.ToFloat64(m.cacheMisses.WithLabelValues("a.py")), 1},
		{"in flight", testutil.ToFloat64(m.inFlight), 1},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}

	rec := httptest.NewRecorder()
	Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`scripthost_runs_total{outcome="ok",script="a.py"} 2`,
		`scripthost_run_duration_seconds_bucket{script="a.py",le="0.05"} 1`,
		`scripthost_run_duration_seconds_count{script="a.py"} 1`,
		`scripthost_queue_wait_seconds_count 1`,
		`scripthost_runs_in_flight 1`,
		`scripthost_scripts 3`,
		`scripthost_executor_slots 4`,
		`scripthost_http_requests_total{code="200",method="POST",route="/run/{name}"} 1`,
		`scripthost_http_request_duration_seconds_count{method="POST",route="/run/{name}"} 1`,
		`go_goroutines `,
		`process_cpu_seconds_total `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no %q in\n%s", want, body)
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(""), "scripthost_nothing"); err != nil {
		t.Error(err)
	}
}

func TestKnownAndForget(t *testing.T) {
	reg := NewRegistry()
	m := NewExecutor(reg)
	RegisterBuildInfo(reg, "1.2.3", "abc")
	m.Known("a.py")
	m.Known("b.py")
	m.Answered("a.py", "ok")
	m.RunFinished("a.py", 300*time.Microsecond)
	m.Forget("a.py")
	rec := httptest.NewRecorder()
	Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`scripthost_runs_total{outcome="ok",script="b.py"} 0`,
		`scripthost_runs_total{outcome="timeout",script="b.py"} 0`,
		`scripthost_cache_hits_total{script="b.py"} 0`,
		`scripthost_build_info{goversion="go`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %q in\n%s", want, body)
		}
	}
	if strings.Contains(body, `script="a.py"`) {
		t.Errorf("a forgotten script's series remain:\n%s", body)
	}
}
