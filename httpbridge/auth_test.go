package httpbridge

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/model"
)

// startAuthBridge serves the bridge with tokens, and an executor stand-in
// that answers every run.
func startAuthBridge(t *testing.T, admin, run string) string {
	t.Helper()
	srv, nc := startBridge(t, Config{Token: admin, RunToken: run})
	sub, err := nc.Subscribe(bus.RunAll, func(m *nats.Msg) {
		_ = m.Respond([]byte(`{"stdout":"ran\n","stderr":"","exit_code":0,"timed_out":false}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return srv.URL
}

func authDo(t *testing.T, method, url, auth, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(data)
}

func TestAuthRules(t *testing.T) {
	base := startAuthBridge(t, "admin-secret", "run-secret")
	const (
		admin = "Bearer admin-secret"
		run   = "Bearer run-secret"
	)
	tests := []struct {
		name, method, path, auth, body string
		status                         int
		challenge                      string // WWW-Authenticate, on 401
	}{
		{name: "health is open", method: "GET", path: "/healthz", status: 200},
		{name: "no token", method: "GET", path: "/scripts", status: 401, challenge: `Bearer realm="scripthost"`},
		{name: "no token, unknown path", method: "GET", path: "/nope", status: 401, challenge: `Bearer realm="scripthost"`},
		{name: "no token, run", method: "POST", path: "/run/a.py", status: 401, challenge: `Bearer realm="scripthost"`},
		{name: "wrong token", method: "GET", path: "/scripts", auth: "Bearer nope", status: 401, challenge: `Bearer realm="scripthost", error="invalid_token"`},
		{name: "prefix of the token", method: "GET", path: "/scripts", auth: "Bearer admin-secre", status: 401, challenge: `Bearer realm="scripthost", error="invalid_token"`},
		{name: "token and more", method: "GET", path: "/scripts", auth: "Bearer admin-secretx", status: 401, challenge: `Bearer realm="scripthost", error="invalid_token"`},
		{name: "other scheme", method: "GET", path: "/scripts", auth: "Basic YWRtaW46YWRtaW4tc2VjcmV0", status: 401, challenge: `Bearer realm="scripthost"`},
		{name: "scheme alone", method: "GET", path: "/scripts", auth: "Bearer", status: 401, challenge: `Bearer realm="scripthost"`},
		{name: "token without scheme", method: "GET", path: "/scripts", auth: "admin-secret", status: 401, challenge: `Bearer realm="scripthost"`},
		{name: "scheme in lower case", method: "GET", path: "/scripts", auth: "bearer run-secret", status: 200},

		{name: "run token lists", method: "GET", path: "/scripts", auth: run, status: 200},
		{name: "run token reads", method: "GET", path: "/scripts/a.py", auth: run, status: 200},
		{name: "run token runs", method: "POST", path: "/run/a.py", auth: run, status: 200},
		{name: "run token runs many", method: "POST", path: "/run?names=a.py", auth: run, status: 200},
		{name: "run token may not create", method: "POST", path: "/scripts", auth: run, body: `{"name":"b.py","code":"x"}`, status: 403},
		{name: "run token may not update", method: "PUT", path: "/scripts/a.py", auth: run, body: `{"code":"x"}`, status: 403},
		{name: "run token may not delete", method: "DELETE", path: "/scripts/a.py", auth: run, status: 403},

		{name: "admin runs", method: "POST", path: "/run/a.py", auth: admin, status: 200},
		{name: "admin creates", method: "POST", path: "/scripts", auth: admin, body: `{"name":"b.py","code":"print(2)"}`, status: 201},
		{name: "admin updates", method: "PUT", path: "/scripts/b.py", auth: admin, body: `{"code":"print(3)"}`, status: 200},
		{name: "admin deletes", method: "DELETE", path: "/scripts/b.py", auth: admin, status: 204},
		{name: "admin gets the usual errors", method: "GET", path: "/scripts/zzz.py", auth: admin, status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := authDo(t, tt.method, base+tt.path, tt.auth, tt.body)
			if status != tt.status {
				t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.path, status, body, tt.status)
			}
			if got := hdr.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.challenge)
			}
			if status == 401 || status == 403 {
				var e model.ErrorBody
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" || strings.Contains(body, "secret") {
					t.Errorf("body %q, want {\"error\": ...} without the tokens", body)
				}
			}
		})
	}
}

func TestAuthOneToken(t *testing.T) {
	t.Run("admin only", func(t *testing.T) {
		base := startAuthBridge(t, "admin-secret", "")
		if status, _, _ := authDo(t, "GET", base+"/scripts", "Bearer ", ""); status != 401 {
			t.Fatalf("an empty token: %d", status)
		}
		if status, _, _ := authDo(t, "POST", base+"/run/a.py", "Bearer admin-secret", ""); status != 200 {
			t.Fatalf("admin run: %d", status)
		}
	})
	t.Run("run token only: nobody writes over HTTP", func(t *testing.T) {
		base := startAuthBridge(t, "", "run-secret")
		if status, _, _ := authDo(t, "POST", base+"/run/a.py", "Bearer run-secret", ""); status != 200 {
			t.Fatalf("run: %d", status)
		}
		if status, _, _ := authDo(t, "POST", base+"/scripts", "Bearer run-secret", `{"name":"c.py","code":""}`); status != 403 {
			t.Fatalf("create: %d", status)
		}
		if status, _, _ := authDo(t, "GET", base+"/scripts", "", ""); status != 401 {
			t.Fatalf("no token: %d", status)
		}
	})
	t.Run("no token: open", func(t *testing.T) {
		base := startAuthBridge(t, "", "")
		if status, _, _ := authDo(t, "POST", base+"/scripts", "", `{"name":"c.py","code":""}`); status != 201 {
			t.Fatalf("create: %d", status)
		}
	})
}

func TestTokensRole(t *testing.T) {
	tk := newTokens("a", "r")
	for presented, want := range map[string]role{"a": adminRole, "r": runRole, "": noRole, "ar": noRole, "A": noRole} {
		if got := tk.roleOf(presented); got != want {
			t.Errorf("roleOf(%q) = %v, want %v", presented, got, want)
		}
	}
	if newTokens("", "").roleOf("") != noRole {
		t.Error("an empty token matched an unset one")
	}
}
