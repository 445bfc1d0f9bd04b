package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// natsUser is a client of the bus that collects the server's permission
// errors.
type natsUser struct {
	nc   *nats.Conn
	errs chan error
}

// connectContext connects with a nats CLI context file, as another
// service given the generated credentials would.
func connectContext(t *testing.T, path string) *natsUser {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c natsContext
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	u := &natsUser{errs: make(chan error, 256)}
	u.nc, err = nats.Connect(c.URL, nats.UserInfo(c.User, c.Password), nats.CustomInboxPrefix(c.InboxPrefix),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case u.errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", c.User, err)
	}
	t.Cleanup(u.nc.Close)
	return u
}

// refused waits for the server to report a permissions violation.
func (u *natsUser) refused(t *testing.T, what string) {
	t.Helper()
	select {
	case err := <-u.errs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("%s: %v, want a permissions violation", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s: the server did not refuse it", what)
	}
}

// roundTrip waits until the requests published so far on u were handled:
// a request on the same connection comes back after them.
func (u *natsUser) roundTrip(t *testing.T) {
	t.Helper()
	if _, err := u.nc.Request(bus.ListSubject, nil, 10*time.Second); err != nil {
		t.Fatalf("list: %v", err)
	}
}

// httpCall sends one request with a bearer token.
func httpCall(t *testing.T, method, url, token, body string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), resp.Header
}

// With HTTP tokens set and no NATS credentials given, the real binary's
// NATS listener demands credentials it generated, kept 0600 under
// --data-dir; and none of the attacks a client of the bus could try with
// the run-only credentials (or none) does harm.
func TestBusLockedWhenTheAPIIs(t *testing.T) {
	dir, data := t.TempDir(), filepath.Join(t.TempDir(), "data")
	const victim = "print('victim, unchanged')\n"
	os.WriteFile(filepath.Join(dir, "victim.py"), []byte(victim), 0o644)
	os.WriteFile(filepath.Join(dir, "hello.py"), []byte("import sys\nprint('hello', sys.stdin.read())\n"), 0o644)
	httpAddr := freePort(t)
	p := startBinary(t, []string{"SCRIPTHOST_TOKEN=admin-tok3n", "SCRIPTHOST_RUN_TOKEN=run-tok3n"},
		"serve", "--http", httpAddr, "--nats-listen", freePort(t), "--scripts", dir, "--python", testutil.Python(t),
		"--data-dir", data, "--name", "real-node", "--max-concurrent", "2")
	base := "http://" + httpAddr
	waitHTTP(t, base+"/healthz")

	// The credentials: where the log says, readable by the owner alone.
	creds := filepath.Join(data, "nats")
	if !strings.Contains(p.log(), "NATS demands credentials") || !strings.Contains(p.log(), creds) {
		t.Fatalf("the log does not say where the credentials are:\n%s", p.log())
	}
	for _, f := range []string{"", "service.json", "service.password", "run.json", "run.password"} {
		fi, err := os.Stat(filepath.Join(creds, f))
		if err != nil {
			t.Fatal(err)
		}
		if want := os.FileMode(0o600); f == "" && fi.Mode().Perm() != 0o700 || f != "" && fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v", filepath.Join(creds, f), fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(data); fi.Mode().Perm() != 0o700 {
		t.Errorf("--data-dir created %v, want 0700", fi.Mode().Perm())
	}
	if strings.Contains(p.log(), mustRead(t, filepath.Join(creds, "run.password"))) {
		t.Error("the log shows a password")
	}

	// An anonymous client, a script included, is refused.
	var url string
	{
		var c natsContext
		json.Unmarshal([]byte(mustRead(t, filepath.Join(creds, "run.json"))), &c)
		url = c.URL
	}
	if nc, err := nats.Connect(url, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected to the bus")
	} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("anonymous client: %v", err)
	}

	caller := connectContext(t, filepath.Join(creds, "run.json"))
	// The run-only user runs, lists and reads.
	reply, err := caller.nc.Request(bus.RunSubject("hello.py"), []byte(`{"data":"x"}`), 30*time.Second)
	if err != nil || bus.ReplyError(reply) != nil || !strings.Contains(string(reply.Data), `hello \"x\"`) {
		t.Fatalf("run-only user, run: %v %v", err, reply)
	}

	// It cannot listen in: not on everything, not on other callers'
	// inboxes, not on the executors' subjects (to answer runs with forged
	// results).
	own, err := caller.nc.SubscribeSync(bus.InboxPrefix(generatedRunUser) + ".>")
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{">", "_INBOX.>", bus.InboxPrefix(generatedUser) + ".>", "script.>", "scripthost.>"} {
		if _, err := caller.nc.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		caller.refused(t, "subscribe "+subj)
	}
	if _, err := caller.nc.QueueSubscribe(bus.RunAll, bus.ExecutorQueue, func(m *nats.Msg) {
		m.Respond([]byte(`{"stdout":"forged","stderr":"","exit_code":0,"timed_out":false}`))
	}); err != nil {
		t.Fatal(err)
	}
	caller.refused(t, "queue subscribe "+bus.RunAll)
	for i := range 10 {
		code, body, hdr := httpCall(t, "POST", base+"/run/hello.py", "run-tok3n", `{"data":`+jsonBody(t, i)+`}`)
		if code != 200 || strings.Contains(body, "forged") || hdr.Get(bus.HeaderNode) != "real-node" {
			t.Fatalf("run %d: %d %s %v", i, code, body, hdr)
		}
	}
	// Its own inboxes saw nothing of those ten runs.
	if m, err := own.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("the caller's inboxes received %s %q", m.Subject, m.Data)
	}

	// It cannot write, nor publish on anyone's inbox (the bridge's acks).
	for _, subj := range []string{bus.CreateSubject, bus.UpdateSubject("victim.py"), bus.DeleteSubject("victim.py"),
		"$KV." + bus.ScriptsBucket + ".victim.py", "$JS.API.STREAM.DELETE.KV_" + bus.ScriptsBucket, "_INBOX.x.y"} {
		if err := caller.nc.Publish(subj, []byte(`{"name":"evil.py","code":"import os"}`)); err != nil {
			t.Fatal(err)
		}
		caller.refused(t, "publish "+subj)
	}

	// No reply subject and no header makes the server write for it.
	steer := []string{bus.DeleteSubject("victim.py"), bus.UpdateSubject("victim.py"), bus.CreateSubject,
		"$KV." + bus.ScriptsBucket + ".victim.py", "scripthost.spare.victim.py"}
	for _, target := range steer {
		for _, subj := range []string{bus.RunSubject("hello.py"), bus.GetSubject("hello.py"), bus.ListSubject, "$SRV.PING"} {
			m := nats.NewMsg(subj)
			m.Reply = target
			m.Data = []byte(`{"code":"print('overwritten')"}`)
			if err := caller.nc.PublishMsg(m); err != nil {
				t.Fatal(err)
			}
		}
		m := nats.NewMsg(bus.RunSubject("hello.py"))
		m.Header.Set(bus.HeaderAck, target)
		m.Header.Set(bus.HeaderNoCache, "true")
		if _, err := caller.nc.RequestMsg(m, 30*time.Second); err != nil {
			t.Fatalf("run with an ack header: %v", err)
		}
	}
	caller.roundTrip(t)
	code, body, _ := httpCall(t, "GET", base+"/scripts/victim.py", "run-tok3n", "")
	var got model.Script
	json.Unmarshal([]byte(body), &got)
	if code != 200 || got.Code != victim {
		t.Fatalf("victim.py after the attacks: %d %s", code, body)
	}
	if code, body, _ := httpCall(t, "GET", base+"/scripts", "run-tok3n", ""); body != "[\"hello.py\",\"victim.py\"]\n" {
		t.Fatalf("scripts after the attacks: %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(dir, "evil.py")); err == nil {
		t.Fatal("evil.py was written")
	}

	// The bucket, as an executor node reads it, still has victim.py.
	node := connectContext(t, filepath.Join(creds, "service.json"))
	js, err := jetstream.New(node.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bus.ScriptsBucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(ctx, "victim.py")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(entry.Value(), &got); err != nil || got.Code != victim {
		t.Fatalf("victim.py in the bucket: %s", entry.Value())
	}
	// The node's user cannot write either: not through the catalog, nor
	// by changing a stream (an update could route a subject it may
	// publish on into the scripts bucket), nor by purging or deleting
	// one, nor by making consumers of the jobs.
	if err := node.nc.Publish(bus.DeleteSubject("victim.py"), nil); err != nil {
		t.Fatal(err)
	}
	node.refused(t, "the service user publishes "+bus.DeleteSubject("victim.py"))
	for _, subj := range []string{
		"$JS.API.STREAM.UPDATE.KV_" + bus.ScriptsBucket, "$JS.API.STREAM.DELETE.KV_" + bus.ScriptsBucket,
		"$JS.API.STREAM.PURGE.KV_" + bus.FilesBucket, "$JS.API.STREAM.CREATE.EVIL",
		"$JS.API.STREAM.DELETE." + bus.JobsStream, "$JS.API.STREAM.PURGE." + bus.JobEventsStream,
		"$JS.API.CONSUMER.CREATE." + bus.JobsStream + ".evil", "$JS.API.CONSUMER.DELETE." + bus.JobsStream + "." + bus.JobsConsumer,
	} {
		if err := node.nc.Publish(subj, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		node.refused(t, "the service user publishes "+subj)
	}
	// A refused publish gets no answer: once the server has said it
	// refused the put, the put waits for nothing.
	putCtx, putCancel := context.WithCancel(ctx)
	putErr := make(chan error, 1)
	go func() {
		_, err := kv.Put(putCtx, "victim.py", []byte("x"))
		putErr <- err
	}()
	node.refused(t, "the service user writes the bucket")
	putCancel()
	if err := <-putErr; err == nil {
		t.Fatal("the service user wrote the bucket")
	}
	// And the API still serves.
	if code, body, _ := httpCall(t, "POST", base+"/run/victim.py", "run-tok3n", ""); code != 200 || !strings.Contains(body, "victim, unchanged") {
		t.Fatalf("run victim.py: %d %s", code, body)
	}

	// A job, followed by its events: the bridge's own user reads them
	// from JetStream with the bus locked.
	code, body, _ = httpCall(t, "POST", base+"/jobs/hello.py", "run-tok3n", `{"data":"job"}`)
	var job model.Job
	if err := json.Unmarshal([]byte(body), &job); err != nil || code != 202 || job.ID == "" {
		t.Fatalf("submit: %d %s", code, body)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/jobs/"+job.ID+"/events", nil)
	req.Header.Set("Authorization", "Bearer run-tok3n")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		data, _ := io.ReadAll(resp.Body)
		t.Fatalf("events of the job: %d %s", resp.StatusCode, data)
	}
	var last testutil.Event
	if err := testutil.ReadEvents(resp.Body, func(ev testutil.Event) bool { last = ev; return true }); err != nil {
		t.Fatal(err)
	}
	if last.Name != "result" || !strings.Contains(last.Data, `hello \"job\"`) {
		t.Fatalf("the events ended with %+v", last)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// Generated credentials are kept: a restart reads them back, so nodes
// that were given them keep working; a file others may read is replaced.
func TestGeneratedCredentialsKept(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	var logs strings.Builder
	first, err := loadOrCreateCreds(data, slogTo(&logs))
	if err != nil || !first.Created {
		t.Fatalf("first start: %+v %v", first, err)
	}
	again, err := loadOrCreateCreds(data, slogTo(&logs))
	if err != nil || again.Created || again.Password != first.Password || again.RunPassword != first.RunPassword {
		t.Fatalf("second start: %+v %v", again, err)
	}
	if first.Password == first.RunPassword || len(first.Password) < 32 {
		t.Fatalf("passwords %q %q", first.Password, first.RunPassword)
	}
	os.Chmod(first.RunPasswordFile, 0o644)
	third, err := loadOrCreateCreds(data, slogTo(&logs))
	if err != nil || !third.Created || third.RunPassword == first.RunPassword || third.Password != first.Password {
		t.Fatalf("after chmod 0644: %+v %v", third, err)
	}
	if !strings.Contains(logs.String(), "replacing NATS credentials") {
		t.Fatalf("no warning: %s", logs.String())
	}
	if fi, _ := os.Stat(third.RunPasswordFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("replaced file mode %v", fi.Mode().Perm())
	}
}

// --nats-listen none: no listener at all, the API works.
func TestNATSListenNone(t *testing.T) {
	cfg := testConfig(t)
	cfg.NATSListen = "none"
	cfg.Token = "t0ken"
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	ts := startTest(t, cfg, map[string]string{"hi.py": "print('hi')\n"})
	if ts.s.natsURL != "" {
		t.Fatalf("a NATS URL without a listener: %s", ts.s.natsURL)
	}
	if _, err := os.Stat(credsDir(cfg.DataDir)); err == nil {
		t.Error("credentials written although nothing listens")
	}
	resp := ts.do("POST", "/run/hi.py", "", "Authorization", "Bearer t0ken").want(t, 200)
	if resp.result(t).Stdout != "hi\n" {
		t.Fatalf("run: %s", resp.body)
	}
}

// An open NATS listener off loopback is warned of, unless the server
// demands credentials (given, generated) or does not listen.
func TestOpenNATSWarns(t *testing.T) {
	tests := []struct {
		name   string
		change func(*serveConfig)
		warns  bool
	}{
		{"open", func(*serveConfig) {}, true},
		{"an HTTP token: generated credentials", func(c *serveConfig) { c.Token = "t" }, false},
		{"a NATS user", func(c *serveConfig) { c.NATSUser, c.NATSPassword = "u", "p" }, false},
		{"no listener", func(c *serveConfig) { c.NATSListen = "none" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.HTTP, cfg.NATSListen = "127.0.0.1:0", "0.0.0.0:4222"
			tt.change(&cfg)
			var logs strings.Builder
			cfg.warnOpen(slogTo(&logs))
			if got := strings.Contains(logs.String(), "embedded NATS server has no credentials"); got != tt.warns {
				t.Fatalf("warned %v, want %v: %s", got, tt.warns, logs.String())
			}
		})
	}
}
