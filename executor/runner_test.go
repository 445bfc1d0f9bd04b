package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// The tests in this file run against every kind of runner.

// pySleeper is a Python literal: a program that writes its pid to the
// file named by its first argument (atomically, so a reader never sees
// half of it), then sleeps.
const pySleeper = `"import os, sys, time\nopen(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()) + '\\n')\nos.rename(sys.argv[1] + '.tmp', sys.argv[1])\ntime.sleep(60)"`

func TestRunnerBasics(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 20 * time.Second})
			dir := t.TempDir()
			tests := []struct {
				name   string
				code   string
				args   []string
				stdin  string
				stdout string
				stderr string
				exit   string
			}{
				{name: "hello", code: "print('hello')", stdout: "hello\n", exit: "0"},
				{name: "args", code: "import sys; print(sys.argv[1:])", args: []string{"a b", "", "ü"}, stdout: "['a b', '', 'ü']\n", exit: "0"},
				{name: "stdin", code: "import sys; sys.stdout.write(sys.stdin.read().upper())", stdin: "abc\ndef", stdout: "ABC\nDEF", exit: "0"},
				{name: "exit3", code: "import sys; print('x', file=sys.stderr); sys.exit(3)", stderr: "x\n", exit: "3"},
				{name: "cwd", code: "import os; print(os.getcwd() == os.path.dirname(os.path.realpath(__file__)))", stdout: "True\n", exit: "0"},
				{name: "segv", code: "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", exit: "signal SIGSEGV"},
				{name: "term", code: "import os, signal; os.kill(os.getpid(), signal.SIGTERM)", exit: "signal SIGTERM"},
				{name: "sigint", code: "raise KeyboardInterrupt", exit: "signal SIGINT"},
			}
			for _, tc := range tests {
				path := writeScript(t, dir, tc.name+".py", tc.code)
				res := run(t, r, Job{Path: path, Args: tc.args, Stdin: []byte(tc.stdin)})
				if got := exitCode(res); got != tc.exit {
					t.Errorf("%s: exit %s, want %s (stderr %q)", tc.name, got, tc.exit, res.Stderr)
				}
				if res.Stdout != tc.stdout {
					t.Errorf("%s: stdout %q, want %q", tc.name, res.Stdout, tc.stdout)
				}
				if tc.stderr != "" && res.Stderr != tc.stderr {
					t.Errorf("%s: stderr %q, want %q", tc.name, res.Stderr, tc.stderr)
				}
				if res.TimedOut || res.StdoutTruncated || res.StderrTruncated {
					t.Errorf("%s: flags %+v", tc.name, res)
				}
			}
		})
	}
}

// A timeout kills the whole group, including a grandchild that holds the
// pipes open, and the run answers at once.
func TestRunnerTimeoutKillsGroup(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			// The timeout leaves room for two interpreters to start on a
			// busy machine: the script says "started" only once the
			// grandchild is up, so the timeout strikes a running group.
			const timeout = 6 * time.Second
			r := kind.new(t, Limits{Timeout: timeout})
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "grandchild.pid")
			path := writeScript(t, dir, "hang.py", `
import os, subprocess, sys, time
p = subprocess.Popen([sys.executable, "-c", `+pySleeper+`, sys.argv[1]])
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
print("started", flush=True)
p.wait()
`)
			start := time.Now()
			res := run(t, r, Job{Path: path, Args: []string{pidFile}})
			// At once: well before the grandchild's 60 s sleep ends.
			if took := time.Since(start); took > timeout+15*time.Second {
				t.Errorf("run took %v", took)
			}
			if !res.TimedOut || res.ExitCode != nil || res.Signal != "SIGKILL" {
				t.Errorf("result %+v, want a timed out run killed by SIGKILL", res)
			}
			if res.Stdout != "started\n" {
				t.Errorf("stdout %q", res.Stdout)
			}
			pid := testutil.ReadPids(t, pidFile)[0]
			testutil.WaitFor(t, 30*time.Second, "the grandchild to die", func() bool { return testutil.ProcessGone(pid) })
		})
	}
}

// When the script exits, what it left running in its group dies too, and
// a grandchild holding the pipes does not hold up the run.
func TestRunnerLeaderExitKillsGroup(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 20 * time.Second})
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "bg.pid")
			path := writeScript(t, dir, "bg.py", `
import subprocess, sys, time, os
subprocess.Popen([sys.executable, "-c", `+pySleeper+`, sys.argv[1]])
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
print("bye")
`)
			start := time.Now()
			res := run(t, r, Job{Path: path, Args: []string{pidFile}})
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("run took %v", took)
			}
			if exitCode(res) != "0" || res.Stdout != "bye\n" || res.TimedOut {
				t.Errorf("result %+v", res)
			}
			pid := testutil.ReadPids(t, pidFile)[0]
			testutil.WaitFor(t, 30*time.Second, "the background process to die", func() bool { return testutil.ProcessGone(pid) })
		})
	}
}

// A script that closes its stdout and stderr goes on to its end: the
// answer is the end it comes to later (fork mode tells a run's end from
// the end of its output and the exit under way), whichever way it ends.
func TestRunnerClosedOutputRunsToItsEnd(t *testing.T) {
	const closed = `import os, signal, sys, threading, time
print("out", flush=True)
print("err", file=sys.stderr, flush=True)
os.close(1)
os.close(2)
time.sleep(0.3)
`
	cases := []struct{ name, tail, want string }{
		{"exit", "sys.exit(3)\n", "3"},
		{"os._exit", "os._exit(4)\n", "4"},
		{"signal", "os.kill(os.getpid(), signal.SIGTERM)\n", "signal SIGTERM"},
		{"end", "pass\n", "0"},
		// The main thread's end while another thread goes on.
		{"thread", "threading.Thread(target=lambda: (time.sleep(0.3), os._exit(5))).start()\n", "5"},
	}
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 20 * time.Second})
			dir := t.TempDir()
			for _, c := range cases {
				path := writeScript(t, dir, "closed_"+strings.ReplaceAll(c.name, ".", "_")+".py", closed+c.tail)
				res := run(t, r, Job{Path: path})
				if got := exitCode(res); got != c.want || res.Stdout != "out\n" || res.Stderr != "err\n" || res.TimedOut {
					t.Errorf("%s: exit %s, result %+v; want exit %s", c.name, got, res, c.want)
				}
			}
		})
	}
}

// A process that left the group (setsid) cannot be killed with it; the
// run still ends once the drain bound passes.
func TestRunnerEscapedProcessDoesNotHang(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 20 * time.Second})
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "escaped.pid")
			path := writeScript(t, dir, "escape.py", `
import subprocess, sys, time, os
subprocess.Popen([sys.executable, "-c", `+pySleeper+`, sys.argv[1]], start_new_session=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
print("bye")
`)
			start := time.Now()
			res := run(t, r, Job{Path: path, Args: []string{pidFile}})
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("run took %v", took)
			}
			if exitCode(res) != "0" || res.Stdout != "bye\n" {
				t.Errorf("result %+v", res)
			}
			// Clean up what escaped: it is a test artefact, not a run.
			pid := testutil.ReadPids(t, pidFile)[0]
			killGroup(pid)
		})
	}
}

func TestRunnerOutputCap(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 20 * time.Second, MaxOutput: 1000})
			dir := t.TempDir()
			path := writeScript(t, dir, "big.py", `
import sys
sys.stdout.write("o" * 3_000_000)
sys.stderr.write("e" * 999)
print("done", file=sys.stderr)
`)
			res := run(t, r, Job{Path: path})
			if exitCode(res) != "0" {
				t.Fatalf("result exit %s stderr %q", exitCode(res), res.Stderr)
			}
			if res.Stdout != strings.Repeat("o", 1000) || !res.StdoutTruncated {
				t.Errorf("stdout %d bytes, truncated %v", len(res.Stdout), res.StdoutTruncated)
			}
			if res.Stderr != strings.Repeat("e", 999)+"d" || !res.StderrTruncated {
				t.Errorf("stderr %q, truncated %v", res.Stderr, res.StderrTruncated)
			}
			path = writeScript(t, dir, "exact.py", `print("x" * 999)`)
			res = run(t, r, Job{Path: path})
			if len(res.Stdout) != 1000 || res.StdoutTruncated {
				t.Errorf("exact fit: %d bytes, truncated %v", len(res.Stdout), res.StdoutTruncated)
			}
		})
	}
}

// A script that never reads a large stdin is not blocked by it.
func TestRunnerUnreadStdin(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 20 * time.Second})
			dir := t.TempDir()
			path := writeScript(t, dir, "ignore.py", `print("ignored")`)
			stdin := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
			res := run(t, r, Job{Path: path, Stdin: stdin})
			if exitCode(res) != "0" || res.Stdout != "ignored\n" || res.TimedOut {
				t.Errorf("result %+v", res)
			}
			path = writeScript(t, dir, "count.py", `import sys; print(len(sys.stdin.buffer.read()))`)
			res = run(t, r, Job{Path: path, Stdin: stdin})
			if res.Stdout != fmt.Sprintf("%d\n", len(stdin)) {
				t.Errorf("count: %q", res.Stdout)
			}
		})
	}
}

func TestRunnerConcurrent(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 30 * time.Second})
			dir := t.TempDir()
			path := writeScript(t, dir, "echo.py", `
import sys, random, time
data = sys.stdin.read()
time.sleep(random.random() / 20)
print(sys.argv[1], data, random.random())
`)
			const n = 16
			var wg sync.WaitGroup
			results := make([]model.Result, n)
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					results[i], errs[i] = r.Run(context.Background(), Job{
						Path: path, Args: []string{fmt.Sprint(i)}, Stdin: []byte(fmt.Sprintf("in%d", i)),
					})
				})
			}
			wg.Wait()
			seen := map[string]bool{}
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("run %d: %v", i, errs[i])
				}
				f := strings.Fields(results[i].Stdout)
				if len(f) != 3 || f[0] != fmt.Sprint(i) || f[1] != fmt.Sprintf("in%d", i) {
					t.Errorf("run %d: stdout %q stderr %q", i, results[i].Stdout, results[i].Stderr)
					continue
				}
				if seen[f[2]] {
					t.Errorf("run %d: random state %s repeated", i, f[2])
				}
				seen[f[2]] = true
			}
		})
	}
}

func TestRunnerContextCancel(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 30 * time.Second})
			dir := t.TempDir()
			path := writeScript(t, dir, "sleep.py", `import time; print("up", flush=True); time.sleep(60)`)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			res, err := r.Run(ctx, Job{Path: path})
			if !errors.Is(err, model.ErrUnavailable) {
				t.Errorf("err %v, want one wrapping ErrUnavailable", err)
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("cancel took %v", time.Since(start))
			}
			if res.Signal != "SIGKILL" {
				t.Errorf("result %+v", res)
			}
		})
	}
}

func TestRunnerClose(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 30 * time.Second})
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "run.pid")
			path := writeScript(t, dir, "sleep.py", fmt.Sprintf(`
import os, time
open(%q, "w").write(str(os.getpid()) + "\n")
time.sleep(60)`, pidFile))
			errc := make(chan error, 1)
			go func() {
				_, err := r.Run(context.Background(), Job{Path: path})
				errc <- err
			}()
			pid := testutil.ReadPids(t, pidFile)[0]
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-errc:
				if !errors.Is(err, model.ErrUnavailable) {
					t.Errorf("run in progress: err %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Close did not end the run in progress")
			}
			testutil.WaitFor(t, 30*time.Second, "the run to die", func() bool { return testutil.ProcessGone(pid) })
			if _, err := r.Run(context.Background(), Job{Path: path}); !errors.Is(err, model.ErrUnavailable) {
				t.Errorf("run after Close: err %v", err)
			}
		})
	}
}

// What a command line cannot carry is refused alike in both modes.
func TestRunnerRejectsNul(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 10 * time.Second})
			path := writeScript(t, t.TempDir(), "a.py", "print(1)")
			if _, err := r.Run(context.Background(), Job{Path: path, Args: []string{"a\x00b"}}); !errors.Is(err, model.ErrBadRequest) {
				t.Errorf("NUL in an argument: err %v", err)
			}
			if _, err := r.Run(context.Background(), Job{Path: "relative.py"}); !errors.Is(err, model.ErrInternal) {
				t.Errorf("relative path: err %v", err)
			}
		})
	}
}
