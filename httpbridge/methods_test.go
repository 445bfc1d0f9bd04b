package httpbridge

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func do(t *testing.T, method, url, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

// HEAD answers on every GET route as GET does, without a body; OPTIONS
// and 405 say which methods a path allows.
func TestMethods(t *testing.T) {
	srv, _ := startBridge(t, Config{})
	for _, path := range []string{"/healthz", "/readyz", "/openapi.json", "/scripts", "/scripts/a.py"} {
		get, getBody := do(t, "GET", srv.URL+path, "")
		head, headBody := do(t, "HEAD", srv.URL+path, "")
		if head.StatusCode != get.StatusCode || headBody != "" || head.Header.Get("Content-Type") != get.Header.Get("Content-Type") || getBody == "" {
			t.Errorf("HEAD %s: %d %q %q; GET: %d %q", path, head.StatusCode, head.Header.Get("Content-Type"), headBody, get.StatusCode, get.Header.Get("Content-Type"))
		}
	}
	for _, tc := range []struct{ method, path, allow string }{
		{"OPTIONS", "/scripts", "GET, HEAD, POST, OPTIONS"},
		{"OPTIONS", "/scripts/a.py", "GET, HEAD, PUT, DELETE, OPTIONS"},
		{"OPTIONS", "/run/a.py", "POST, OPTIONS"},
		{"OPTIONS", "/healthz", "GET, HEAD, OPTIONS"},
	} {
		resp, body := do(t, tc.method, srv.URL+tc.path, "")
		if resp.StatusCode != 204 || resp.Header.Get("Allow") != tc.allow || body != "" {
			t.Errorf("%s %s: %d Allow %q %q, want 204 Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), body, tc.allow)
		}
	}
	for _, tc := range []struct{ method, path, allow string }{
		{"DELETE", "/scripts", "GET, HEAD, POST, OPTIONS"},
		{"POST", "/scripts/a.py", "GET, HEAD, PUT, DELETE, OPTIONS"},
		{"GET", "/run/a.py", "POST, OPTIONS"},
		{"HEAD", "/run", "POST, OPTIONS"},
		{"PATCH", "/healthz", "GET, HEAD, OPTIONS"},
	} {
		resp, body := do(t, tc.method, srv.URL+tc.path, "")
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.allow)
		}
		if tc.method != "HEAD" && !strings.Contains(body, `"error":"method `+tc.method+` not allowed on `+tc.path+`; allowed: `+tc.allow+`"`) {
			t.Errorf("%s %s: body %s", tc.method, tc.path, body)
		}
	}
	if resp, _ := do(t, "OPTIONS", srv.URL+"/nowhere", ""); resp.StatusCode != 404 {
		t.Errorf("OPTIONS of no route: %d", resp.StatusCode)
	}
}

// A field the API does not know is a 400 that names it: nothing runs,
// nothing is written.
func TestUnknownFields(t *testing.T) {
	srv, _ := startBridge(t, Config{})
	for _, tc := range []struct{ method, path, body, part string }{
		{"POST", "/run/a.py", `{"arg": ["x"]}`, `unknown field \"arg\"`},
		{"POST", "/run", `{"data": 1, "timeout": "1s"}`, `unknown field \"timeout\"`},
		{"POST", "/scripts", `{"name": "b.py", "code": "", "overwrite": true}`, `unknown field \"overwrite\"`},
		{"PUT", "/scripts/a.py", `{"name": "b.py", "code": "print(2)"}`, `unknown field \"name\"`},
	} {
		resp, body := do(t, tc.method, srv.URL+tc.path, tc.body)
		if resp.StatusCode != 400 || !strings.Contains(body, tc.part) {
			t.Errorf("%s %s %s: %d %s", tc.method, tc.path, tc.body, resp.StatusCode, body)
		}
	}
	if _, body := do(t, "GET", srv.URL+"/scripts/a.py", ""); !strings.Contains(body, `"code":"print(1)"`) {
		t.Errorf("a.py changed: %s", body)
	}
	if _, body := do(t, "GET", srv.URL+"/scripts", ""); strings.TrimSpace(body) != `["a.py"]` {
		t.Errorf("scripts: %s", body)
	}
}
