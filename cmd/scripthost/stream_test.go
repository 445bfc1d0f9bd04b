package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
)

// streamScripts are the scripts of the streaming tests; long.py writes
// its pid and its child's into the file named by its first argument.
var streamScripts = map[string]string{
	"tick.py": `
import sys, time
for i in range(4):
    print("tick", i)
    time.sleep(0.4)
print("done", file=sys.stderr)
`,
	"long.py": `
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[1] + ".tmp", "w").write("%d %d\n" % (os.getpid(), child.pid))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
print("working", flush=True)
time.sleep(60)
`,
	"quick.py": `print("quick")`,
}

// `scripthost run` prints the output as it comes, and ^C cancels the run
// on the server: its processes are gone, its slot is free at once. Over
// NATS and over HTTP.
func TestCLIStreamsAndCancels(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	cfg := testConfig(t)
	cfg.MaxConcurrent = 1
	cfg.Timeout = 60 * time.Second
	ts := startTest(t, cfg, streamScripts)
	pidDir := t.TempDir()
	os.Chmod(pidDir, 0o777)
	for _, transport := range []struct{ name, flag, url string }{
		{"nats", "--nats", ts.s.natsURL},
		{"http", "--http", ts.base},
	} {
		t.Run(transport.name, func(t *testing.T) {
			// Streaming: the first line long before the end.
			cmd := exec.Command(bin, "run", "tick.py", "--no-cache", transport.flag, transport.url)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(out)
			var lines []string
			var first time.Time
			for sc.Scan() {
				if first.IsZero() {
					first = time.Now()
				}
				lines = append(lines, sc.Text())
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("run tick.py: %v; stderr %s", err, stderr.String())
			}
			if got := strings.Join(lines, ","); got != "tick 0,tick 1,tick 2,tick 3" || stderr.String() != "done\n" {
				t.Fatalf("stdout %q, stderr %q", got, stderr.String())
			}
			if ahead := time.Since(first); ahead < time.Second {
				t.Errorf("the first line came only %v before the end", ahead)
			}

			// ^C: the CLI exits 130 and the run is gone.
			pidFile := filepath.Join(pidDir, transport.name+".pid")
			cmd = exec.Command(bin, "run", "long.py", transport.flag, transport.url, "--arg", pidFile)
			stderr.Reset()
			cmd.Stderr = &stderr
			if out, err = cmd.StdoutPipe(); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil || line != "working\n" {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("first line %q, %v", line, err)
			}
			pids := testutil.ReadPids(t, pidFile)
			cmd.Process.Signal(os.Interrupt)
			sent := time.Now()
			err = cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 130 || !strings.Contains(stderr.String(), "cancelled") {
				t.Fatalf("after ^C: %v, stderr %q", err, stderr.String())
			}
			for _, pid := range pids {
				testutil.WaitFor(t, time.Second+time.Until(sent.Add(5*time.Second)), fmt.Sprintf("process %d of the run to end", pid), func() bool { return testutil.ProcessGone(pid) })
			}
			start := time.Now()
			r := ts.do("POST", "/run/quick.py", `{"data":"`+transport.name+`"}`).want(t, 200)
			if res := r.result(t); res.Stdout != "quick\n" {
				t.Fatalf("next run %+v", res)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("the next run waited %v for the only slot", took)
			}
		})
	}
}

// The README's streaming example with the real nats CLI: several replies
// to the caller's inbox, the result last; then a cancel by run id.
func TestNATSCLIStream(t *testing.T) {
	t.Parallel() // its own server; most of its time waits for scripts, timeouts or acks
	cli, err := exec.LookPath("nats")
	if err != nil {
		t.Skip("nats CLI not on PATH (.ci/run installs github.com/nats-io/natscli/nats@v0.5.0)")
	}
	ts := startTest(t, testConfig(t), streamScripts)
	out, err := exec.Command(cli, "--server", ts.s.natsURL, "req", "script.run.tick.py", "{}",
		"-H", "X-Scripthost-Stream:true", "--replies", "0", "--timeout", "8s").CombinedOutput()
	if err != nil {
		t.Fatalf("nats req: %v\n%s", err, out)
	}
	text := string(out)
	// The CLI prints a message's headers in no set order.
	if !strings.Contains(text, "X-Scripthost-Run-Id: ") {
		t.Fatalf("nats req printed no run id:\n%s", text)
	}
	for _, want := range []string{"X-Scripthost-Event: start", "tick 0", "tick 3", "X-Scripthost-Event: stderr", "X-Scripthost-Event: result", `"stdout":"tick 0\ntick 1\ntick 2\ntick 3\n"`} {
		i := strings.Index(text, want)
		if i < 0 {
			t.Fatalf("nats req printed no %q:\n%s", want, text)
		}
		text = text[i:] // in this order
	}
}

// sse runs a script as server-sent events and calls each for every event
// until it returns false.
func (c *cluster) sse(name string, each func(testutil.Event) bool) (int, error) {
	req, _ := http.NewRequest("POST", c.base+"/run/"+name, strings.NewReader(`{}`))
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, testutil.ReadEvents(resp.Body, each)
}

// Streams across nodes: a run handed over by a busy node streams from the
// node that takes it; a node lost mid-stream ends the stream with an
// error event that names it.
func TestScaleOutStreams(t *testing.T) {
	c := startCluster(t, 1, "node-a", "node-b")
	c.put("quick.py", "print('quick')\n")
	c.put("tick.py", "import time\nfor i in range(3):\n    print('tick', i)\n    time.sleep(0.1)\n")
	c.put("hold.py", "import os, time\nopen('held.' + str(os.getpid()), 'w').close()\ntime.sleep(4)\n")
	c.put("long.py", "import os, time\nopen('started.' + str(os.getpid()), 'w').close()\nprint('working', flush=True)\ntime.sleep(30)\n")
	c.waitNodes("quick.py")

	// One node busy: streamed runs that reach it go to the other.
	held := make(chan int, 1)
	go func() { code, _, _ := c.run("hold.py", ""); held <- code }()
	testutil.WaitFor(t, 10*time.Second, "hold.py to start", func() bool {
		for _, dir := range c.dirs {
			if m, _ := filepath.Glob(filepath.Join(dir, "held.*")); len(m) > 0 {
				return true
			}
		}
		return false
	})
	for i := range 4 {
		var out, result string
		code, err := c.sse("tick.py", func(ev testutil.Event) bool {
			switch ev.Name {
			case "stdout":
				var chunk string
				json.Unmarshal([]byte(ev.Data), &chunk)
				out += chunk
			case "result":
				result = ev.Data
			default:
				t.Errorf("run %d: event %s %s", i, ev.Name, ev.Data)
			}
			return true
		})
		if code != 200 || err != nil || out != "tick 0\ntick 1\ntick 2\n" || !strings.Contains(result, `"stdout":"tick 0\ntick 1\ntick 2\n"`) {
			t.Fatalf("streamed run %d: %d %v, streamed %q, result %s", i, code, err, out, result)
		}
	}
	if code := <-held; code != 200 {
		t.Fatalf("hold.py: %d", code)
	}

	// kill -9 of the node streaming a run.
	var last testutil.Event
	done := make(chan error, 1)
	working := make(chan struct{})
	go func() {
		_, err := c.sse("long.py", func(ev testutil.Event) bool {
			if last.Name == "" {
				close(working)
			}
			last = ev
			return ev.Name != "error"
		})
		done <- err
	}()
	select {
	case <-working: // the stream has begun
	case <-time.After(10 * time.Second):
		t.Fatal("no event from long.py")
	}
	var victim string
	testutil.WaitFor(t, 10*time.Second, "long.py to start", func() bool {
		for name, dir := range c.dirs {
			if m, _ := filepath.Glob(filepath.Join(dir, "started.*")); len(m) > 0 {
				victim = name
				return true
			}
		}
		return false
	})
	c.nodes[victim].cmd.Process.Signal(syscall.SIGKILL)
	select {
	case err := <-done:
		if err != nil || last.Name != "error" || !strings.Contains(last.Data, victim) {
			t.Fatalf("stream of the lost node ended with %+v, %v", last, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stream did not end after its node was killed")
	}
}
