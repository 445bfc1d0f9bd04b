package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/scripthost/scripthost/internal/testutil"
)

func TestNATSAPI(t *testing.T) {
	cfg := testConfig(t)
	cfg.Timeout = time.Second
	ts := startTest(t, cfg, map[string]string{
		"math.py": "import sys, json; data = json.load(sys.stdin); result = data[\"x\"] ** 2; print(json.dumps({\"square\": result}))\n",
		"loop.py": "while True: pass\n",
	})
	nc := ts.nats()
	req := func(subject, body string) *nats.Msg {
		t.Helper()
		m, err := nc.Request(subject, []byte(body), 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		return m
	}
	wantErr := func(m *nats.Msg, code, part string) {
		t.Helper()
		if got := m.Header.Get(micro.ErrorCodeHeader); got != code {
			t.Fatalf("%s: error code %q, want %s (body %s)", m.Subject, got, code, m.Data)
		}
		var body struct{ Error string }
		if err := json.Unmarshal(m.Data, &body); err != nil || !strings.Contains(body.Error, part) || !strings.Contains(m.Header.Get(micro.ErrorHeader), part) {
			t.Fatalf("error body %s, header %q: want %q", m.Data, m.Header.Get(micro.ErrorHeader), part)
		}
	}

	m := req("script.run.math.py", `{"data":{"x":7}}`)
	var res struct {
		Stdout   string `json:"stdout"`
		ExitCode *int   `json:"exit_code"`
	}
	if err := json.Unmarshal(m.Data, &res); err != nil || res.Stdout != "{\"square\": 49}\n" || *res.ExitCode != 0 {
		t.Fatalf("run over NATS: %s", m.Data)
	}
	if m.Header.Get("X-Scripthost-Node") != "test-node" || m.Header.Get(micro.ErrorCodeHeader) != "" {
		t.Fatalf("headers %v", m.Header)
	}
	wantErr(req("script.run.nope.py", ``), "404", "nope.py")
	wantErr(req("script.run.math.py", `{"args": 5}`), "400", "args")
	wantErr(req("script.run.run.sh", ``), "400", "invalid script name")
	m = req("script.run.loop.py", ``)
	wantErr(m, "504", "Script execution timed out")
	if !strings.Contains(string(m.Data), `"timed_out":true`) {
		t.Fatalf("timeout body %s", m.Data)
	}

	// The catalog.
	var names []string
	json.Unmarshal(req("script.list", "").Data, &names)
	if strings.Join(names, ",") != "loop.py,math.py" {
		t.Fatalf("list %s", names)
	}
	m = req("script.create", `{"name":"n.py","code":"print('n')"}`)
	if m.Header.Get(micro.ErrorCodeHeader) != "" {
		t.Fatalf("create: %s", m.Data)
	}
	wantErr(req("script.create", `{"name":"n.py","code":"x"}`), "409", "n.py")
	wantErr(req("script.create", `{"name":"../n.py","code":"x"}`), "400", "invalid script name")
	wantErr(req("script.create", `nonsense`), "400", "invalid JSON")
	var got struct{ Name, Code, Version string }
	json.Unmarshal(req("script.get.n.py", "").Data, &got)
	if got.Code != "print('n')" || got.Version == "" {
		t.Fatalf("get %+v", got)
	}
	req("script.update.n.py", `{"code":"print('m')"}`)
	m = req("script.run.n.py", "")
	if !strings.Contains(string(m.Data), `"stdout":"m\n"`) {
		t.Fatalf("run after update: %s", m.Data)
	}
	wantErr(req("script.update.zz.py", `{"code":"x"}`), "404", "zz.py")
	req("script.delete.n.py", "")
	wantErr(req("script.get.n.py", ""), "404", "n.py")
	wantErr(req("script.delete.n.py", ""), "404", "n.py")

	// Both services answer the micro discovery subjects.
	seen := map[string]bool{}
	sub, err := nc.SubscribeSync(nats.NewInbox())
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest("$SRV.PING", sub.Subject, nil); err != nil {
		t.Fatal(err)
	}
	for len(seen) < 3 {
		m, err := sub.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("PING answered by %v only: %v", seen, err)
		}
		var ping micro.Ping
		json.Unmarshal(m.Data, &ping)
		seen[ping.Name] = true
	}
	if !seen["scripthost-catalog"] || !seen["scripthost-executor"] || !seen["scripthost-jobs"] {
		t.Fatalf("PING answered by %v", seen)
	}
}

// TestNATSCLI runs the command the README shows, with the real nats CLI.
// .ci/run installs it; where it is missing the test says so and skips.
func TestNATSCLI(t *testing.T) {
	cli, err := exec.LookPath("nats")
	if err != nil {
		t.Skip("nats CLI not on PATH (.ci/run installs github.com/nats-io/natscli/nats@v0.5.0)")
	}
	ts := startTest(t, testConfig(t), map[string]string{
		"math.py": "import sys, json; data = json.load(sys.stdin); result = data[\"x\"] ** 2; print(json.dumps({\"square\": result}))\n",
	})
	out, err := exec.Command(cli, "--server", ts.s.natsURL, "req", "script.run.math.py", `{"data":{"x":7}}`).CombinedOutput()
	if err != nil {
		t.Fatalf("nats req: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"stdout":"{\"square\": 49}\n"`) {
		t.Fatalf("nats req printed:\n%s", out)
	}
	out, err = exec.Command(cli, "--server", ts.s.natsURL, "micro", "ls").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "scripthost-executor") || !strings.Contains(string(out), "scripthost-catalog") {
		t.Fatalf("nats micro ls: %v\n%s", err, out)
	}

	// nats micro stats shows the node's real errors and run time: a run
	// of 0.3 s and a request for a script that does not exist.
	ts.write("slow.py", "import time\ntime.sleep(0.3)\n")
	testutil.WaitFor(t, 30*time.Second, "slow.py", func() bool { return ts.do("POST", "/run/slow.py", "").status == 200 })
	ts.do("POST", "/run/nope.py", "").want(t, 404)
	var stats []micro.Stats
	testutil.WaitFor(t, 30*time.Second, "the requests in nats micro stats", func() bool {
		out, err = exec.Command(cli, "--server", ts.s.natsURL, "micro", "stats", "scripthost-executor", "--json").CombinedOutput()
		return err == nil && json.Unmarshal(out, &stats) == nil && len(stats) == 1 && len(stats[0].Endpoints) == 1 && stats[0].Endpoints[0].NumRequests >= 3
	})
	ep := stats[0].Endpoints[0]
	if ep.NumErrors < 1 || !strings.Contains(ep.LastError, "404:") || ep.ProcessingTime < 300*time.Millisecond {
		t.Fatalf("nats micro stats: %d errors (last %q), processing time %v; want the 404 and the 0.3 s run:\n%s", ep.NumErrors, ep.LastError, ep.ProcessingTime, out)
	}
	out, err = exec.Command(cli, "--server", ts.s.natsURL, "micro", "stats", "scripthost-executor").CombinedOutput()
	t.Logf("nats micro stats:\n%s", out)
	if err != nil || !strings.Contains(string(out), "run") {
		t.Fatalf("nats micro stats: %v\n%s", err, out)
	}
}

// TestNATSCLIWithGeneratedCredentials runs the docs' example: with an HTTP
// token set, the nats CLI reaches the bus with the context file the
// server generated for the run-only user.
func TestNATSCLIWithGeneratedCredentials(t *testing.T) {
	cli, err := exec.LookPath("nats")
	if err != nil {
		t.Skip("nats CLI not on PATH (.ci/run installs github.com/nats-io/natscli/nats@v0.5.0)")
	}
	cfg := testConfig(t)
	cfg.RunToken = "run-t0ken"
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	ts := startTest(t, cfg, map[string]string{
		"math.py": "import sys, json; data = json.load(sys.stdin); result = data[\"x\"] ** 2; print(json.dumps({\"square\": result}))\n",
	})
	run := filepath.Join(cfg.DataDir, "nats", "run.json")
	nats := func(args ...string) (string, error) {
		cmd := exec.Command(cli, args...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no contexts of the machine's own
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := nats("--context", run, "req", "script.run.math.py", `{"data":{"x":7}}`)
	if err != nil || !strings.Contains(out, `"stdout":"{\"square\": 49}\n"`) {
		t.Fatalf("nats --context %s req: %v\n%s", run, err, out)
	}
	out, err = nats("--context", run, "micro", "ls")
	if err != nil || !strings.Contains(out, "scripthost-executor") || !strings.Contains(out, "scripthost-catalog") {
		t.Fatalf("nats micro ls: %v\n%s", err, out)
	}
	// Without credentials, or without the run user's inbox prefix, nothing.
	if out, err := nats("--server", ts.s.natsURL, "req", "script.list", ""); err == nil {
		t.Fatalf("an anonymous nats req was answered:\n%s", out)
	}
	if out, _ := nats("--context", run, "--timeout", "1s", "req", "script.create", `{"name":"x.py","code":""}`); !strings.Contains(out, "Permissions Violation") || strings.Contains(out, `"name":"x.py"`) {
		t.Fatalf("the run-only user's create was not refused:\n%s", out)
	}
}
