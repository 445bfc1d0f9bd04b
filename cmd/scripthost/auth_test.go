package main

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/internal/testutil"
)

// The real binary takes its tokens from SCRIPTHOST_TOKEN and
// SCRIPTHOST_RUN_TOKEN, and enforces them.
func TestBinaryTokensFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "env.py"), []byte("import os\nprint(sorted(os.environ.values()))\n"), 0o644)
	httpAddr := freePort(t)
	p := startBinary(t, []string{"SCRIPTHOST_TOKEN=admin-tok3n", "SCRIPTHOST_RUN_TOKEN=run-tok3n"},
		"serve", "--http", httpAddr, "--nats-listen", freePort(t), "--scripts", dir, "--python", testutil.Python(t),
		"--nats-user", "svc", "--nats-password", "nats-pa55")
	base := "http://" + httpAddr
	waitHTTP(t, base+"/healthz")
	call := func(method, path, token, body string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data), resp.Header
	}
	tests := []struct {
		name, method, path, token, body string
		status                          int
	}{
		{"no token", "GET", "/scripts", "", "", 401},
		{"wrong token", "GET", "/scripts", "nope", "", 401},
		{"run token lists", "GET", "/scripts", "run-tok3n", "", 200},
		{"run token runs", "POST", "/run/env.py", "run-tok3n", "", 200},
		{"run token may not write", "POST", "/scripts", "run-tok3n", `{"name":"x.py","code":""}`, 403},
		{"admin writes", "POST", "/scripts", "admin-tok3n", `{"name":"x.py","code":""}`, 201},
		{"admin deletes", "DELETE", "/scripts/x.py", "admin-tok3n", "", 204},
		{"health is open", "GET", "/healthz", "", "", 200},
		{"which routes exist is not told without a token", "OPTIONS", "/scripts", "", "", 401},
		{"a run token may ask", "OPTIONS", "/scripts/env.py", "run-tok3n", "", 204},
	}
	for _, tt := range tests {
		status, body, hdr := call(tt.method, tt.path, tt.token, tt.body)
		if status != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, status, body, tt.status)
		}
		if status == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: no challenge", tt.name)
		}
		if (status == 401 || status == 403) && !strings.HasPrefix(body, `{"error":`) {
			t.Errorf("%s: body %s", tt.name, body)
		}
		if tt.path == "/run/env.py" && (strings.Contains(body, "tok3n") || strings.Contains(body, "pa55")) {
			t.Errorf("the script sees the secrets: %s", body)
		}
	}
	if !strings.Contains(p.log(), "Server listening") || strings.Contains(p.log(), "has no token") {
		t.Errorf("a warning about a missing token although one is set:\n%s", p.log())
	}
}

// Without a token on an address others can reach, the server warns.
func TestOpenServerWarns(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTP = "0.0.0.0:0"
	var logs strings.Builder
	cfg.warnOpen(slogTo(&logs))
	if !strings.Contains(logs.String(), "has no token") {
		t.Fatalf("no warning for %s: %q", cfg.HTTP, logs.String())
	}
	for _, addr := range []string{"127.0.0.1:3000", "[::1]:3000", "localhost:3000"} {
		logs.Reset()
		cfg.HTTP = addr
		cfg.warnOpen(slogTo(&logs))
		if logs.Len() != 0 {
			t.Errorf("%s: %s", addr, logs.String())
		}
	}
	logs.Reset()
	cfg.HTTP, cfg.securityConfig.Token = "0.0.0.0:3000", "x"
	cfg.warnOpen(slogTo(&logs))
	if logs.Len() != 0 {
		t.Errorf("with a token: %s", logs.String())
	}
}

// With NATS credentials the embedded server refuses anonymous clients;
// the run-only user runs but cannot write; an executor on another machine
// joins with the credentials in its URL or in flags.
func TestNATSCredentials(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxConcurrent = 0 // runs go to the executor nodes started below
	cfg.NATSUser, cfg.NATSPassword = "svc", "svc-secret"
	cfg.NATSRunUser, cfg.NATSRunPassword = "caller", "caller-secret"
	// hi.py reads a data file beside it: the nodes get it from the files
	// bucket, which their user may read.
	ts := startTest(t, cfg, map[string]string{"hi.py": "import os\nprint('hi from', os.environ.get('NODE'), open('beside.txt').read())\n"})
	ts.write("beside.txt", "the data file")

	if nc, err := nats.Connect(ts.s.natsURL, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected")
	} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("anonymous: %v", err)
	}

	// Two executor nodes join: one with the credentials in the URL, one
	// with flags.
	host := strings.TrimPrefix(ts.s.natsURL, "nats://")
	// (Their folders are the test's: the test ends them with SIGKILL,
	// which leaves no time to remove a folder of their own.)
	byURL := startBinary(t, []string{"NODE=url"}, "executor", "--nats", "nats://svc:svc-secret@"+host, "--name", "by-url",
		"--max-concurrent", "1", "--dir", t.TempDir(), "--python", testutil.Python(t), "--mode", testMode())
	startBinary(t, []string{"NODE=flags"}, "executor", "--nats", ts.s.natsURL, "--nats-user", "svc", "--nats-password", "svc-secret",
		"--name", "by-flags", "--max-concurrent", "1", "--dir", t.TempDir(), "--python", testutil.Python(t), "--mode", testMode())
	seen := map[string]bool{}
	testutil.WaitFor(t, 60*time.Second, "both nodes to answer runs", func() bool {
		resp := ts.do("POST", "/run/hi.py", "", "Cache-Control", "no-cache")
		if resp.status == 200 && strings.Contains(resp.result(t).Stdout, "the data file") {
			seen[resp.header.Get(bus.HeaderNode)] = true
		}
		return seen["by-url"] && seen["by-flags"]
	})
	if logs := byURL.log(); strings.Contains(logs, "svc-secret") || !strings.Contains(logs, "svc:xxxxx@") {
		t.Errorf("the node's log shows the password, or not the redacted URL:\n%s", logs)
	}

	violations := make(chan error, 8)
	caller, err := nats.Connect(ts.s.natsURL, nats.UserInfo("caller", "caller-secret"), nats.CustomInboxPrefix(bus.InboxPrefix("caller")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case violations <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	reply, err := caller.Request(bus.RunSubject("hi.py"), nil, 30*time.Second)
	if err != nil || bus.ReplyError(reply) != nil || !strings.Contains(string(reply.Data), "hi from") {
		t.Fatalf("run-only user, run: %v %v", err, reply)
	}
	if reply, err := caller.Request(bus.ListSubject, nil, 10*time.Second); err != nil || string(reply.Data) != `["hi.py"]` {
		t.Fatalf("run-only user, list: %v %v", err, reply)
	}
	for _, subj := range []string{bus.CreateSubject, bus.UpdateSubject("hi.py"), bus.DeleteSubject("hi.py")} {
		if _, err := caller.Request(subj, []byte(`{"name":"evil.py","code":"import os"}`), 500*time.Millisecond); err == nil {
			t.Errorf("run-only user got an answer on %s", subj)
		}
	}
	if err := <-violations; !errors.Is(err, nats.ErrPermissionViolation) {
		t.Errorf("the run-only user's writes: %v, want a permissions violation", err)
	}
	// The CLI as the run-only user: put fails at once, saying why, not at
	// --wait (2 minutes).
	file := filepath.Join(t.TempDir(), "evil.py")
	if err := os.WriteFile(file, []byte("import os\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, _, stderr := cli(t, "", "put", "evil.py", file, "--nats", ts.s.natsURL, "--nats-user", "caller", "--nats-password", "caller-secret")
	if took := time.Since(start); code != 1 || took > 20*time.Second ||
		!strings.Contains(stderr, `the NATS user "caller" may not send on script.create: the bus refused it at once`) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("put as the run-only user: exit %d after %s, stderr %q", code, took, stderr)
	}
	// Nothing was written or deleted.
	if got := string(ts.do("GET", "/scripts", "").want(t, 200).body); got != "[\"hi.py\"]\n" {
		t.Fatalf("scripts after the run-only user's writes: %s", got)
	}
	if _, err := os.Stat(filepath.Join(cfg.Scripts, "evil.py")); err == nil {
		t.Fatal("evil.py was written")
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
