package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/internal/testutil"
)

// writeSecret writes a secret file as an operator would (with a newline).
func writeSecret(t *testing.T, dir, name, secret string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The real binary with its secrets in files: every request is bounded.
// A 3 MB body over NATS gets 413; runs beyond the queue get 503 at once
// (Retry-After on HTTP); a client trickling its body, and an idle
// keep-alive connection, are cut off.
func TestEdgeBounds(t *testing.T) {
	dir, secrets := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.py"), []byte("print('hello')\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "slow.py"), []byte("import sys, time\nprint('slow', sys.stdin.read())\nsys.stdout.flush()\ntime.sleep(3)\n"), 0o644)
	httpAddr := freePort(t)
	p := startBinary(t, nil,
		"serve", "--http", httpAddr, "--nats-listen", freePort(t), "--scripts", dir, "--python", testutil.Python(t),
		"--data-dir", filepath.Join(t.TempDir(), "data"),
		"--token-file", writeSecret(t, secrets, "token", "admin-from-file"),
		"--run-token-file", writeSecret(t, secrets, "run-token", "run-from-file"),
		"--nats-user", "svc", "--nats-password-file", writeSecret(t, secrets, "svc", "svc-from-file"),
		"--nats-run-user", "caller", "--nats-run-password-file", writeSecret(t, secrets, "caller", "caller-from-file"),
		"--max-concurrent", "1", "--max-queue", "1", "--queue-timeout", "30s",
		"--http-read-body-timeout", "1s", "--http-idle-timeout", "1s")
	base := "http://" + httpAddr
	waitHTTP(t, base+"/healthz")
	if strings.Contains(p.log(), "command line") {
		t.Errorf("a warning about secrets on the command line, with files:\n%s", p.log())
	}

	t.Run("secret files", func(t *testing.T) {
		for _, tc := range []struct {
			method, path, token string
			want                int
		}{
			{"GET", "/scripts", "run-from-file", 200}, // the file's newline is not part of it
			{"GET", "/scripts", "run-from-filex", 401},
			{"POST", "/scripts", "run-from-file", 403},
			{"DELETE", "/scripts/nope.py", "admin-from-file", 404},
		} {
			if code, body, _ := httpCall(t, tc.method, base+tc.path, tc.token, `{}`); code != tc.want {
				t.Errorf("%s %s with %q: %d %s, want %d", tc.method, tc.path, tc.token, code, body, tc.want)
			}
		}
	})

	var natsURL string
	for _, line := range strings.Split(p.log(), "\n") {
		if _, after, ok := strings.Cut(line, "NATS listening on "); ok {
			natsURL = strings.Trim(after, `"`)
		}
	}
	caller, err := nats.Connect(natsURL, nats.UserInfo("caller", "caller-from-file"), nats.CustomInboxPrefix(bus.InboxPrefix("caller")))
	if err != nil {
		t.Fatalf("the run-only user with the password from its file: %v", err)
	}
	defer caller.Close()

	t.Run("NATS body limit", func(t *testing.T) {
		big := bytes.Repeat([]byte("x"), 3<<20)
		big = append(append([]byte(`{"data":"`), big...), `"}`...)
		m, err := caller.Request(bus.RunSubject("hello.py"), big, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code := m.Header.Get(bus.HeaderErrorCode); code != "413" || !strings.Contains(string(m.Data), "larger than") {
			t.Fatalf("a 3 MB run request: code %q, body %.200s", code, m.Data)
		}
		// Well over the message limit: refused before it reaches anyone.
		if _, err := caller.Request(bus.RunSubject("hello.py"), make([]byte, 40<<20), 5*time.Second); err == nil {
			t.Fatal("a 40 MB message was accepted")
		}
		if m, err := caller.Request(bus.RunSubject("hello.py"), nil, 20*time.Second); err != nil || bus.ReplyError(m) != nil {
			t.Fatalf("after the big bodies: %v %v", err, m)
		}
	})

	t.Run("queue bound", func(t *testing.T) {
		type answer struct {
			code  int
			retry string
			took  time.Duration
		}
		answers := make(chan answer, 16)
		post := func(i int) {
			start := time.Now()
			req, _ := http.NewRequest("POST", base+"/run/slow.py", strings.NewReader(fmt.Sprintf(`{"data":%d}`, i)))
			req.Header.Set("Authorization", "Bearer run-from-file")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				answers <- answer{}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answers <- answer{resp.StatusCode, resp.Header.Get("Retry-After"), time.Since(start)}
		}
		go post(0)
		// Once the first run holds the slot, six more: one may wait, the
		// others are refused at once.
		testutil.WaitFor(t, 20*time.Second, "the first run to start", func() bool {
			m, err := caller.Request("$SRV.STATS.scripthost-executor", nil, 5*time.Second)
			return err == nil && strings.Contains(string(m.Data), `"in_use":1`)
		})
		for i := 1; i <= 6; i++ {
			go post(i)
		}
		var ok, refused int
		for range 7 {
			a := <-answers
			switch {
			case a.code == 200:
				ok++
			case a.code == 503:
				refused++
				if a.retry != bus.RetryAfter || a.took > 2500*time.Millisecond {
					t.Errorf("503 after %s with Retry-After %q", a.took, a.retry)
				}
			default:
				t.Errorf("status %d", a.code)
			}
		}
		if refused < 5 || ok < 1 {
			t.Fatalf("%d answered, %d refused: want at most 2 answered (the slot and the queue)", ok, refused)
		}
		// Over NATS, the same refusal.
		var wg sync.WaitGroup
		codes := make(chan string, 8)
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := nats.NewMsg(bus.RunSubject("slow.py"))
				m.Header.Set(bus.HeaderNoCache, "true")
				m.Data = fmt.Appendf(nil, `{"data":%d}`, 100+i)
				r, err := caller.RequestMsg(m, 30*time.Second)
				if err != nil {
					codes <- err.Error()
					return
				}
				codes <- r.Header.Get(bus.HeaderErrorCode)
			}()
		}
		wg.Wait()
		close(codes)
		n := 0
		for c := range codes {
			if c == "503" {
				n++
			}
		}
		if n < 4 {
			t.Fatalf("over NATS, %d of 6 runs refused with 503", n)
		}
	})

	t.Run("trickled body", func(t *testing.T) {
		conn, err := net.Dial("tcp", httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		io.WriteString(conn, "POST /run/hello.py HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer run-from-file\r\nContent-Length: 100\r\n\r\n{")
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
					if _, err := conn.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		}()
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestTimeout {
				t.Errorf("status %d, want 408", resp.StatusCode)
			}
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("the trickling client was held %s", took)
		}
	})

	t.Run("broken bodies", func(t *testing.T) {
		// raw sends a request as written, its writing side then closed
		// when end, and reads the first answer.
		raw := func(req string, end bool) (int, string) {
			t.Helper()
			conn, err := net.Dial("tcp", httpAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			io.WriteString(conn, req)
			if end {
				conn.(*net.TCPConn).CloseWrite()
			}
			conn.SetReadDeadline(time.Now().Add(15 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("%.40q: %v", req, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}
		const auth = "Host: x\r\nAuthorization: Bearer admin-from-file\r\n"
		if code, body := raw("POST /run/hello.py HTTP/1.1\r\n"+auth+"Content-Length: 100\r\n\r\n{\"data\":1}", true); code != 400 ||
			!strings.Contains(body, `"request body ended before it was whole (short of its Content-Length, or of its last chunk)"`) {
			t.Errorf("a body shorter than its length: %d %s", code, body)
		}
		if code, body := raw("PUT /scripts/hello.py HTTP/1.1\r\n"+auth+"Transfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n", false); code != 400 ||
			!strings.Contains(body, `"request body could not be read: `) {
			t.Errorf("a malformed chunked body: %d %s", code, body)
		}
		// Over the limit by its length: answered at once, not invited.
		start := time.Now()
		if code, body := raw("POST /run/hello.py HTTP/1.1\r\n"+auth+"Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n", false); code != 413 ||
			!strings.Contains(body, "larger than 1048576 bytes") {
			t.Errorf("a length over the limit: %d %s", code, body)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("a length over the limit was answered after %s", took)
		}
		if code, body, _ := httpCall(t, "GET", base+"/scripts/hello.py", "admin-from-file", ""); code != 200 || !strings.Contains(body, `"print('hello')\n"`) {
			t.Errorf("hello.py after the broken bodies: %d %s", code, body)
		}
		if strings.Contains(p.log(), "request failed") {
			t.Errorf("a broken body was logged as the server's failure:\n%s", p.log())
		}
	})

	t.Run("header limit", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"/scripts", nil)
		req.Header.Set("Authorization", "Bearer run-from-file")
		req.Header.Set("X-Big", strings.Repeat("h", 100<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("100 KiB of headers: %d, want 431", resp.StatusCode)
		}
	})

	t.Run("idle connection", func(t *testing.T) {
		conn, err := net.Dial("tcp", httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		rd := bufio.NewReader(conn)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(rd, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		start := time.Now()
		if _, err := rd.ReadByte(); err != io.EOF {
			t.Fatalf("an idle connection: %v, want the server to close it", err)
		}
		if took := time.Since(start); took > 8*time.Second {
			t.Fatalf("idle connection closed after %s", took)
		}
	})
}

// --http-max-conns: connections beyond the limit wait to be accepted, and
// are served once one closes.
func TestHTTPConnectionLimit(t *testing.T) {
	httpAddr := freePort(t)
	startBinary(t, nil, "serve", "--http", httpAddr, "--nats-listen", freePort(t), "--scripts", t.TempDir(),
		"--python", testutil.Python(t), "--http-max-conns", "2", "--http-read-header-timeout", "60s")
	base := "http://" + httpAddr
	waitHTTP(t, base+"/healthz")
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// Both are accepted (the server reads from them) before the next.
	client := &http.Client{Timeout: 1500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	testutil.WaitFor(t, 20*time.Second, "the third connection to wait", func() bool {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return true
		}
		resp.Body.Close()
		return false
	})
	held[0].Close()
	client.Timeout = 20 * time.Second
	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("after one connection closed: %v", err)
	}
	resp.Body.Close()
}

// Secrets on the command line work, with a warning; with a file too, the
// server refuses to guess.
func TestSecretsOnTheCommandLine(t *testing.T) {
	parse := func(args ...string) (serveConfig, error) {
		var cfg serveConfig
		return cfg, cfg.parse(newServeFlagSet(&cfg), args, "serve")
	}
	cfg, err := parse("--token", "on-the-line", "--nats", "nats://u:p@h:4222")
	if err != nil || cfg.Token != "on-the-line" {
		t.Fatalf("%+v %v", cfg.securityConfig, err)
	}
	var logs strings.Builder
	cfg.warnOnCommandLine(slogTo(&logs))
	if !strings.Contains(logs.String(), "every local user can read them") || !strings.Contains(logs.String(), "--token") ||
		!strings.Contains(logs.String(), "--nats") || strings.Contains(logs.String(), "on-the-line") {
		t.Fatalf("warning: %s", logs.String())
	}
	t.Setenv("SCRIPTHOST_RUN_TOKEN", "from-env")
	cfg, err = parse()
	logs.Reset()
	cfg.warnOnCommandLine(slogTo(&logs))
	if err != nil || cfg.RunToken != "from-env" || logs.Len() != 0 {
		t.Fatalf("from the environment: %q %v %s", cfg.RunToken, err, logs.String())
	}
	file := writeSecret(t, t.TempDir(), "tok", "from-file")
	if _, err := parse("--token", "x", "--token-file", file); err == nil {
		t.Fatal("--token and --token-file both accepted")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := parse("--token-file", empty); err == nil {
		t.Fatal("an empty secret file accepted")
	}
	if _, err := parse("--token-file", filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing secret file accepted")
	}
	t.Setenv("SCRIPTHOST_TOKEN_FILE", file)
	if cfg, err := parse(); err != nil || cfg.Token != "from-file" {
		t.Fatalf("SCRIPTHOST_TOKEN_FILE: %q %v", cfg.Token, err)
	}
}
