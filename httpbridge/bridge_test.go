package httpbridge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/catalog"
	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// startBridge serves the bridge over a real embedded NATS server with a
// real catalog and no executor.
func startBridge(t *testing.T, cfg Config) (*httptest.Server, *nats.Conn) {
	t.Helper()
	nc := testutil.Connect(t, testutil.StartBus(t))
	cat, err := catalog.New(catalog.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := cat.Serve(nc, "0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	if _, err := cat.Create("a.py", "print(1)"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(cfg, nc))
	t.Cleanup(srv.Close)
	return srv, nc
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func TestNoExecutorIs503(t *testing.T) {
	srv, _ := startBridge(t, Config{})
	start := time.Now()
	code, body := post(t, srv.URL+"/run/a.py", "")
	if code != 503 || !strings.Contains(body, "no executor node is connected") || time.Since(start) > 10*time.Second {
		t.Fatalf("%d %s after %s", code, body, time.Since(start))
	}
	// In a multi-run, the entry says so and the answer is 200.
	code, body = post(t, srv.URL+"/run", "")
	if code != 200 || !strings.Contains(body, `"a.py":{"error":"no executor`) {
		t.Fatalf("%d %s", code, body)
	}
}

func TestSlowBusIs504(t *testing.T) {
	srv, nc := startBridge(t, Config{RunTimeout: 100 * time.Millisecond})
	// Something takes the run and never answers.
	sub, err := nc.Subscribe(bus.RunAll, func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	code, body := post(t, srv.URL+"/run/a.py", "")
	if code != 504 || !strings.Contains(body, `"error"`) {
		t.Fatalf("%d %s", code, body)
	}
}

func TestParseNames(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   string
		bad    bool
	}{
		{name: "absent", values: nil, want: "<nil>"},
		{name: "two", values: []string{"a.py,b.py"}, want: "a.py|b.py"},
		{name: "spaces and duplicates", values: []string{" a.py , a.py,,b.py"}, want: "a.py|b.py"},
		{name: "repeated parameter", values: []string{"a.py", "b.py"}, want: "a.py|b.py"},
		{name: "empty", values: []string{""}, bad: true},
		{name: "bad name", values: []string{"a.py,../b.py"}, bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseNames(tc.values)
			if tc.bad {
				if model.Code(err) != 400 {
					t.Fatalf("err %v", err)
				}
				return
			}
			s := strings.Join(got, "|")
			if got == nil {
				s = "<nil>"
			}
			if err != nil || s != tc.want {
				t.Fatalf("%q, %v; want %q", s, err, tc.want)
			}
		})
	}
}

func TestRunHeaders(t *testing.T) {
	for _, tc := range []struct {
		cc   []string
		want string
	}{
		{nil, ""},
		{[]string{"no-cache"}, "true"},
		{[]string{"max-age=0, No-Store"}, "true"},
		{[]string{"max-age=60"}, ""},
	} {
		r := httptest.NewRequest("POST", "/run/a.py", nil)
		for _, v := range tc.cc {
			r.Header.Add("Cache-Control", v)
		}
		if got := runHeaders(r).Get(bus.HeaderNoCache); got != tc.want {
			t.Errorf("Cache-Control %q: %q", tc.cc, got)
		}
	}
}
