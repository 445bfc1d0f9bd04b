package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
)

// The tests in this file hold every kind of runner to the run limits and
// the run's user.

func TestLimitsAreInPlaceWhenTheScriptStarts(t *testing.T) {
	limits := Limits{Timeout: 20 * time.Second, MaxMemory: 900 << 20, MaxCPU: 1500 * time.Millisecond, MaxProcs: 3000, MaxOpenFiles: 77}
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, limits)
			path := writeScript(t, t.TempDir(), "limits.py", `
import resource
for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_NOFILE"):
    print(name, *resource.getrlimit(getattr(resource, name)))
`)
			res := run(t, r, Job{Path: path})
			want := fmt.Sprintf("RLIMIT_AS %d %d\nRLIMIT_CPU 2 3\nRLIMIT_NPROC 3000 3000\nRLIMIT_NOFILE 77 77\n", 900<<20, 900<<20)
			if res.Stdout != want || exitCode(res) != "0" {
				t.Fatalf("limits seen by the script:\n%s\nwant:\n%s\nstderr: %s", res.Stdout, want, res.Stderr)
			}
		})
	}
}

func TestLimitsZeroLeavesTheServers(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 20 * time.Second})
			path := writeScript(t, t.TempDir(), "limits.py", `
import resource
print(resource.getrlimit(resource.RLIMIT_AS) == (resource.RLIM_INFINITY, resource.RLIM_INFINITY) or resource.getrlimit(resource.RLIMIT_AS))
print(resource.getrlimit(resource.RLIMIT_CPU)[0] == resource.RLIM_INFINITY)
`)
			if res := run(t, r, Job{Path: path}); res.Stdout != "True\nTrue\n" {
				t.Fatalf("stdout %q, stderr %s", res.Stdout, res.Stderr)
			}
		})
	}
}

func TestLimitMemory(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 20 * time.Second, MaxMemory: 512 << 20})
			dir := t.TempDir()
			tests := []struct {
				name, code, exit, stdout, stderr string
			}{
				{name: "small", code: "b = bytearray(64 << 20)\nprint(len(b))", exit: "0", stdout: fmt.Sprintln(64 << 20)},
				{name: "at once", code: "b = bytearray(2 << 30)\nprint('allocated')", exit: "1", stderr: "MemoryError"},
				{name: "growing", code: "chunks = []\nwhile True:\n    chunks.append(bytearray(16 << 20))", exit: "1", stderr: "MemoryError"},
			}
			for _, tc := range tests {
				res := run(t, r, Job{Path: writeScript(t, dir, strings.ReplaceAll(tc.name, " ", "_")+".py", tc.code)})
				if exitCode(res) != tc.exit || res.Stdout != tc.stdout || !strings.Contains(res.Stderr, tc.stderr) {
					t.Errorf("%s: exit %s, stdout %q, stderr %q; want exit %s, stdout %q, stderr with %q",
						tc.name, exitCode(res), res.Stdout, tail(res.Stderr), tc.exit, tc.stdout, tc.stderr)
				}
			}
		})
	}
}

func TestLimitCPU(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 30 * time.Second, MaxCPU: time.Second})
			dir := t.TempDir()
			start := time.Now()
			res := run(t, r, Job{Path: writeScript(t, dir, "spin.py", "print('spinning', flush=True)\nwhile True:\n    pass\n")})
			if res.Signal != "SIGXCPU" || res.TimedOut || res.Stdout != "spinning\n" {
				t.Fatalf("result %+v, want death by SIGXCPU", res)
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Fatalf("the CPU limit took %v", d)
			}
			// A script that ignores SIGXCPU dies of SIGKILL a second later.
			res = run(t, r, Job{Path: writeScript(t, dir, "stubborn.py", "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass\n")})
			if res.Signal != "SIGKILL" || res.TimedOut {
				t.Fatalf("result %+v, want death by SIGKILL at the hard limit", res)
			}
		})
	}
}

func TestLimitOpenFiles(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 20 * time.Second, MaxOpenFiles: 40})
			res := run(t, r, Job{Path: writeScript(t, t.TempDir(), "files.py", `
import errno, os
fds = []
try:
    while True:
        fds.append(os.open(os.devnull, os.O_RDONLY))
except OSError as e:
    print(len(fds) < 40, errno.errorcode[e.errno])
`)})
			if res.Stdout != "True EMFILE\n" {
				t.Fatalf("stdout %q, stderr %s", res.Stdout, tail(res.Stderr))
			}
		})
	}
}

// A script that closes its stdout early, and one that closes it and then
// writes to it, end as they would under python3: nothing hangs.
func TestClosedStdout(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 20 * time.Second})
			dir := t.TempDir()
			res := run(t, r, Job{Path: writeScript(t, dir, "close.py", "import os, sys, time\nprint('before', flush=True)\nos.close(1)\ntime.sleep(0.2)\nprint('after', file=sys.stderr)\n")})
			if res.Stdout != "before\n" || !strings.Contains(res.Stderr, "after") || res.TimedOut {
				t.Fatalf("result %+v", res)
			}
			res = run(t, r, Job{Path: writeScript(t, dir, "closeall.py", "import os, time\nos.close(0)\nos.close(1)\nos.close(2)\ntime.sleep(0.2)\n")})
			if res.Stdout != "" || res.Stderr != "" || exitCode(res) != "0" {
				t.Fatalf("result %+v", res)
			}
			// Output to a closed stdout fails, as under python3: exit code
			// 1 when stdout is unbuffered (PYTHONUNBUFFERED), else 120 (the
			// flush at exit fails).
			script := writeScript(t, dir, "writeclosed.py", "import os\nos.close(1)\nprint('lost')\n")
			err := exec.Command(testutil.Python(t), script).Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("python3 %s: %v, want an exit code", script, err)
			}
			res = run(t, r, Job{Path: script})
			if want := strconv.Itoa(ee.ExitCode()); res.Stdout != "" || exitCode(res) != want || !strings.Contains(res.Stderr, "Bad file descriptor") {
				t.Fatalf("result %+v, want exit code %s as python3 gives", res, want)
			}
		})
	}
}

// runAsUser is a user that scripts can run as in these tests, with an
// interpreter it can run and a folder it can read.
type runAsUser struct {
	cred   *Credential
	python string
	dir    string
}

// nobody returns the nobody user, or skips the test when the tests do not
// run as root or no interpreter is executable by nobody.
func nobody(t testing.TB) runAsUser {
	t.Helper()
	return runAs(t, &Credential{Name: "nobody", Uid: 65534, Gid: 65534, Groups: []uint32{65534}})
}

// lastUID numbers the uids that freshUser hands out.
var lastUID atomic.Uint32

// freshUser returns a user that no other process on the machine runs as:
// its uid has no passwd entry and is made of this test process's pid, so
// the process limit (RLIMIT_NPROC counts every process of the uid) and
// the task counts of a test see only the processes that test started,
// whatever else runs as nobody on the machine.
func freshUser(t testing.TB) runAsUser {
	t.Helper()
	uid := 1<<30 + uint32(os.Getpid())<<6 + lastUID.Add(1)%64
	return runAs(t, &Credential{Name: strconv.FormatUint(uint64(uid), 10), Uid: uid, Gid: uid, Groups: []uint32{uid}})
}

// runAs returns cred with an interpreter it can run and a folder of its
// own, or skips the test when the tests do not run as root or there is
// no such interpreter.
func runAs(t testing.TB, cred *Credential) runAsUser {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	dir, err := os.MkdirTemp("", "scripthost-runas-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{testutil.Python(t), "/usr/bin/python3", "/usr/local/bin/python3"} {
		cmd := exec.Command(name, "-c", "import sys; print(sys.executable)")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: cred.Uid, Gid: cred.Gid, Groups: cred.Groups}}
		cmd.Dir = dir
		if out, err := cmd.Output(); err == nil {
			python, err := ResolvePython(strings.TrimSpace(string(out)))
			if err == nil {
				return runAsUser{cred: cred, python: python, dir: dir}
			}
		}
	}
	t.Skip("no interpreter that " + cred.Name + " may run")
	return runAsUser{}
}

// runAsKinds builds each kind of runner for u.
func (u runAsUser) runner(t testing.TB, kind string, limits Limits) Runner {
	t.Helper()
	cfg := RunnerConfig{Python: u.python, RunAs: u.cred, Limits: limits, DrainTimeout: 300 * time.Millisecond, Log: testutil.Logger(t, slog.LevelDebug)}
	var r Runner
	var err error
	if kind == "fork" {
		r, err = NewForkRunner(cfg, nil)
	} else {
		r, err = NewSpawnRunner(cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func (u runAsUser) script(t testing.TB, name, code string) string {
	t.Helper()
	return writeScript(t, u.dir, name, code)
}

var nobodyTests sync.Mutex // the nobody user's process count is shared

func TestRunAs(t *testing.T) {
	u := nobody(t)
	nobodyTests.Lock()
	defer nobodyTests.Unlock()
	for _, kind := range []string{"spawn", "fork"} {
		t.Run(kind, func(t *testing.T) {
			r := u.runner(t, kind, Limits{Timeout: 20 * time.Second})
			path := u.script(t, "whoami.py", `
import os
print(os.getresuid(), os.getresgid(), os.getgroups())
print(open("/proc/self/status").read().count("\n") > 0)
try:
    open("written-by-nobody", "w")
except PermissionError:
    print("folder not writable")
`)
			res := run(t, r, Job{Path: path})
			want := "(65534, 65534, 65534) (65534, 65534, 65534) [65534]\nTrue\nfolder not writable\n"
			if res.Stdout != want {
				t.Fatalf("stdout %q, want %q; stderr %s", res.Stdout, want, tail(res.Stderr))
			}
			// A folder nobody cannot read: spawn mode's interpreter, run
			// as nobody, cannot open the script, and says so; fork mode's
			// child opens it before it drops to nobody, and the script
			// runs, unable to read beside itself.
			private := t.TempDir()
			if err := os.Chmod(private, 0o700); err != nil {
				t.Fatal(err)
			}
			res, err := r.Run(context.Background(), Job{Path: writeScript(t, private, "private.py", "import os\nprint('hi', os.getuid(), os.access('.', os.R_OK))")})
			switch {
			case kind == "fork" && (err != nil || res.Stdout != "hi 65534 False\n"):
				t.Fatalf("fork mode, a folder only root reads: %+v %v", res, err)
			case kind == "spawn" && err == nil && (exitCode(res) == "0" || res.Stdout != "" || !strings.Contains(res.Stderr, "ermission denied")):
				t.Fatalf("spawn mode, a folder only root reads: %+v", res)
			}
		})
	}
}

// A fork bomb is bounded by the process limit of the run's user and dies
// whole at the timeout: nothing of it is left, not even zombies. The run
// user is one of its own, so the counts are of the bomb alone.
func TestForkBombContained(t *testing.T) {
	for _, kind := range []string{"spawn", "fork"} {
		t.Run(kind, func(t *testing.T) {
			u := freshUser(t)
			r := u.runner(t, kind, Limits{Timeout: 2 * time.Second, MaxProcs: 64})
			path := u.script(t, "bomb.py", `
import os
print("boom", flush=True)
while True:
    try:
        os.fork()
    except OSError:
        pass
`)
			start := time.Now()
			res := run(t, r, Job{Path: path})
			if !res.TimedOut || !strings.HasPrefix(res.Stdout, "boom\n") {
				t.Fatalf("result %+v", res)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Fatalf("the bomb took %v to end", d)
			}
			testutil.WaitFor(t, 20*time.Second, "the bomb's processes to be gone", func() bool {
				live, _ := testutil.UserTasks(u.cred.Uid)
				return live == 0
			})
			testutil.WaitFor(t, 20*time.Second, "the bomb's zombies to be reaped", func() bool {
				_, zombies := testutil.UserTasks(u.cred.Uid)
				return zombies == 0
			})
			// The runner still works.
			if res := run(t, r, Job{Path: u.script(t, "ok.py", "print('ok')")}); res.Stdout != "ok\n" {
				t.Fatalf("after the bomb: %+v", res)
			}
		})
	}
}

// Thousands of threads: bounded by the process limit (and the address
// space), the script sees the error and the run ends.
func TestThreadsContained(t *testing.T) {
	for _, kind := range []string{"spawn", "fork"} {
		t.Run(kind, func(t *testing.T) {
			u := freshUser(t)
			r := u.runner(t, kind, Limits{Timeout: 20 * time.Second, MaxProcs: 200, MaxMemory: 1 << 30})
			path := u.script(t, "threads.py", `
import threading, time
stop = threading.Event()
n = 0
try:
    for n in range(5000):
        threading.Thread(target=stop.wait, daemon=True).start()
except RuntimeError as e:
    print("stopped at", n < 5000, e)
stop.set()
`)
			res := run(t, r, Job{Path: path})
			if !strings.HasPrefix(res.Stdout, "stopped at True") || exitCode(res) != "0" {
				t.Fatalf("result %+v", res)
			}
			testutil.WaitFor(t, 20*time.Second, "the threads to be gone", func() bool {
				live, _ := testutil.UserTasks(u.cred.Uid)
				return live == 0
			})
		})
	}
}

func tail(s string) string {
	if len(s) > 400 {
		return "..." + s[len(s)-400:]
	}
	return s
}

// A process that leaves its run's group (setsid) and ends later is reaped
// once it has ended: it leaves no zombie behind.
func TestEscapedProcessIsReaped(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			r := kind.new(t, Limits{Timeout: 20 * time.Second})
			dir := t.TempDir()
			res := run(t, r, Job{Path: writeScript(t, dir, "escape.py", `
import os, time
rd, wr = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(wr, b"%d" % os.getpid())
        os.close(wr)
        os.close(1)
        os.close(2)
        time.sleep(0.3)
        os._exit(0)
    os._exit(0)
os.close(wr)
print(os.read(rd, 32).decode())
`)})
			pid, err := strconv.Atoi(strings.TrimSpace(res.Stdout))
			if err != nil {
				t.Fatalf("result %+v", res)
			}
			testutil.WaitFor(t, 30*time.Second, "the escaped process to end", func() bool { return testutil.ProcessGone(pid) })
			// The next run's end reaps it.
			ok := writeScript(t, dir, "ok.py", "pass")
			testutil.WaitFor(t, 30*time.Second, "the escaped process to be reaped", func() bool {
				run(t, r, Job{Path: ok})
				_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
				return err != nil
			})
		})
	}
}

// A memory limit below what every run starts with is refused at start,
// with a message that says so.
func TestMemoryLimitTooLow(t *testing.T) {
	for _, kind := range runnerKinds {
		t.Run(kind.name, func(t *testing.T) {
			cfg := testConfig(t, Limits{Timeout: 20 * time.Second, MaxMemory: 4 << 20})
			var err error
			if kind.name == "fork" {
				var r *ForkRunner
				if r, err = NewForkRunner(cfg, nil); err == nil {
					r.Close()
				}
			} else {
				var r *SpawnRunner
				if r, err = NewSpawnRunner(cfg); err == nil {
					r.Close()
				}
			}
			if err == nil || !strings.Contains(err.Error(), "memory") {
				t.Fatalf("a 4 MiB limit: %v", err)
			}
		})
	}
}

// Fork mode opens a run's script with the server's rights before it drops
// to the run user: never through a symbolic link in the script's place.
func TestForkRunAsDoesNotFollowSymlinks(t *testing.T) {
	u := nobody(t)
	nobodyTests.Lock()
	defer nobodyTests.Unlock()
	secret := filepath.Join(t.TempDir(), "secret.py")
	if err := os.WriteFile(secret, []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(u.dir, "link.py")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"spawn", "fork"} {
		t.Run(kind, func(t *testing.T) {
			r := u.runner(t, kind, Limits{Timeout: 20 * time.Second})
			res, err := r.Run(context.Background(), Job{Path: link})
			if err == nil && (strings.Contains(res.Stderr, "root only") || exitCode(res) == "0") {
				t.Fatalf("the run read a file only root may read: %+v", res)
			}
		})
	}
}
