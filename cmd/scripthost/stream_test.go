package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
			pids := readPidFile(t, pidFile)
			cmd.Process.Signal(os.Interrupt)
			sent := time.Now()
			err = cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 130 || !strings.Contains(stderr.String(), "cancelled") {
				t.Fatalf("after ^C: %v, stderr %q", err, stderr.String())
			}
			for _, pid := range pids {
				waitFor(t, time.Second+time.Until(sent.Add(time.Second)), fmt.Sprintf("process %d of the run to end", pid), func() bool { return pidGone(pid) })
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

// readPidFile waits for a file of pids written by a test script.
func readPidFile(t *testing.T, path string) []int {
	t.Helper()
	var pids []int
	waitFor(t, 20*time.Second, "pid file "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		pids = pids[:0]
		for _, f := range strings.Fields(string(b)) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return false
			}
			pids = append(pids, n)
		}
		return true
	})
	return pids
}

// pidGone tells whether pid no longer runs (gone, or a zombie).
func pidGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}

// The README's streaming example with the real nats CLI: several replies
// to the caller's inbox, the result last; then a cancel by run id.
func TestNATSCLIStream(t *testing.T) {
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
	for _, want := range []string{"X-Scripthost-Event: start", "X-Scripthost-Run-Id: ", "tick 0", "tick 3", "X-Scripthost-Event: stderr", "X-Scripthost-Event: result", `"stdout":"tick 0\ntick 1\ntick 2\ntick 3\n"`} {
		i := strings.Index(text, want)
		if i < 0 {
			t.Fatalf("nats req printed no %q:\n%s", want, text)
		}
		text = text[i:] // in this order
	}
}
