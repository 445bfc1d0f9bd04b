package httpbridge

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func TestReadyz(t *testing.T) {
	t.Run("ready", func(t *testing.T) {
		srv, _ := startBridge(t, Config{})
		code, body := get(t, srv.URL+"/readyz")
		if code != 200 || strings.TrimSpace(body) != `{"status":"ready","scripts":1}` {
			t.Fatalf("%d %s", code, body)
		}
	})

	// A bus without a catalog, then a closed connection.
	nc := testutil.Connect(t, testutil.StartBus(t))
	srv := httptest.NewServer(New(Config{}, nc))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name, part string
		before     func()
	}{
		{name: "no catalog", part: "not ready: the catalog does not answer"},
		{name: "bus closed", part: "not ready: not connected to the NATS bus", before: nc.Close},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			start := time.Now()
			code, body := get(t, srv.URL+"/readyz")
			var e model.ErrorBody
			if code != 503 || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, tc.part) {
				t.Fatalf("%d %s; want 503 saying %q", code, body, tc.part)
			}
			if time.Since(start) > readyTimeout+5*time.Second {
				t.Fatalf("took %s", time.Since(start))
			}
		})
	}
}

// recHTTP records what the bridge reports of each request.
type recHTTP struct {
	mu   sync.Mutex
	seen []string
}

func (r *recHTTP) Served(method, route string, code int, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, method+" "+route+" "+http.StatusText(code))
}

func TestMetricsEndpointAndHTTPMetrics(t *testing.T) {
	rec := &recHTTP{}
	srv, _ := startBridge(t, Config{
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "scripthost_test 1\n")
		}),
		HTTPMetrics: rec,
	})
	if code, body := get(t, srv.URL+"/metrics"); code != 200 || body != "scripthost_test 1\n" {
		t.Fatalf("/metrics: %d %q", code, body)
	}
	get(t, srv.URL+"/scripts/a.py")
	get(t, srv.URL+"/scripts/zz.py")
	get(t, srv.URL+"/nope/x")
	req, _ := http.NewRequest("BREW", srv.URL+"/scripts", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	rec.mu.Lock()
	got := strings.Join(rec.seen, "|")
	rec.mu.Unlock()
	want := "GET /metrics OK|GET /scripts/{name} OK|GET /scripts/{name} Not Found|GET unmatched Not Found|OTHER unmatched Method Not Allowed"
	if got != want {
		t.Fatalf("reported\n%s\nwant\n%s", got, want)
	}

	// Without a handler, /metrics is a JSON 404.
	bare, _ := startBridge(t, Config{})
	if code, body := get(t, bare.URL+"/metrics"); code != 404 || !strings.Contains(body, `"error"`) {
		t.Fatalf("%d %s", code, body)
	}
}
