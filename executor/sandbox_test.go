package executor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// sandboxRunners starts a sandboxed runner of each mode with cfg, skipping
// the test where the sandbox cannot be had (not root).
func sandboxRunners(t *testing.T, cfg RunnerConfig) map[string]Runner {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root")
	}
	cfg.Sandbox = Sandbox{Mode: SandboxOn}
	if cfg.Log == nil {
		cfg.Log = testutil.Logger(t, slog.LevelDebug)
	}
	out := map[string]Runner{}
	sp, err := NewSpawnRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	out["spawn"] = sp
	fk, err := NewForkRunner(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fk.Close() })
	out["fork"] = fk
	return out
}

func runCode(t *testing.T, r Runner, dir, code string, args ...string) model.Result {
	t.Helper()
	path := filepath.Join(dir, "s.py")
	if err := os.WriteFile(path, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(context.Background(), Job{Path: path, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSandboxSmoke(t *testing.T) {
	cfg := RunnerConfig{Python: testutil.Python(t)}
	for mode, r := range sandboxRunners(t, cfg) {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			res := runCode(t, r, dir, "import os, sys\nprint(os.getpid(), os.getppid(), os.getpgid(0) == os.getpid(), sorted(os.listdir('/tmp')), os.environ['HOME'], os.getcwd() == os.path.dirname(os.path.abspath(sys.argv[0])))\nprint(sorted(p for p in os.listdir('/proc') if p.isdigit()))\n", "x")
			t.Logf("%+v", res)
			if !strings.HasPrefix(res.Stdout, "2 ") || !strings.Contains(res.Stdout, " True ") {
				t.Fatalf("%+v", res)
			}
		})
	}
}

// A hot script's warm parent runs its children in sandbox slots of its
// own: the same view as the warm interpreter's children.
func TestSandboxWarmParent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root")
	}
	cfg := RunnerConfig{Python: testutil.Python(t), Log: testutil.Logger(t, slog.LevelDebug), Sandbox: Sandbox{Mode: SandboxOn}, WarmParents: WarmParents{Hot: 1}}
	r, err := NewForkRunner(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	code := "import json, os\nprint(os.getpid(), os.getppid(), [p for p in os.listdir('/proc') if p.isdigit()], os.access('/tmp', os.W_OK), os.access('.', os.W_OK))\n"
	path := filepath.Join(t.TempDir(), "hot.py")
	if err := os.WriteFile(path, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	job := Job{Path: path, Version: model.Version([]byte(code))}
	check := func(i int) {
		res, err := r.Run(context.Background(), job)
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(res.Stdout)
		if len(f) != 5 || f[1] != "0" || f[2] != "['"+f[0]+"']" || f[3] != "True" || f[4] != "False" {
			t.Fatalf("run %d: %+v", i, res)
		}
	}
	check(0) // from the warm interpreter; the script is hot now
	testutil.WaitFor(t, 30*time.Second, "a warm parent to be made", func() bool { return r.WarmStats().Parents > 0 })
	for i := 1; i < 4; i++ {
		check(i)
	}
	if r.WarmStats().Runs == 0 {
		t.Fatal("no run went to the warm parent")
	}
}

// A slot whose init is killed from outside is dropped: later runs go on.
func TestSandboxSlotInitKilled(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root")
	}
	r, err := NewForkRunner(RunnerConfig{Python: testutil.Python(t), Log: testutil.Logger(t, slog.LevelDebug), Sandbox: Sandbox{Mode: SandboxOn}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dir := t.TempDir()
	if res := runCode(t, r, dir, "print('one')\n"); res.Stdout != "one\n" {
		t.Fatalf("%+v", res)
	}
	// The slots' inits: children of the warm interpreter that are pid 1 of
	// their namespace.
	r.mu.Lock()
	warmPid := r.cur.pid
	r.mu.Unlock()
	var inits []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		var ppid, nspid string
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				ppid = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				nspid = strings.TrimSpace(v)
			}
		}
		if f := strings.Fields(nspid); ppid == strconv.Itoa(warmPid) && len(f) == 2 && f[1] == "1" {
			pid, _ := strconv.Atoi(e.Name())
			inits = append(inits, pid)
		}
	}
	if len(inits) == 0 {
		t.Fatal("no slot init found")
	}
	for _, pid := range inits {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// (A run handed to the slot's waiting child while the kill is under
	// way would die with it: wait until the inits are gone.)
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("the slots' inits %v to be reaped", inits), func() bool {
		for _, pid := range inits {
			if syscall.Kill(pid, 0) == nil {
				return false
			}
		}
		return true
	})
	for i := 0; i < 3; i++ {
		if res := runCode(t, r, dir, "print('again')\n"); res.Stdout != "again\n" {
			t.Fatalf("after the slots' inits were killed: %+v", res)
		}
	}
}

// viewScript prints what a run sees of its own /tmp, /dev/shm and HOME
// (every folder's entries, mode and extended attributes, the folders
// leading to its scripts folder included) and the other processes it sees.
const viewScript = `import json, os
def walk(top, out):
    for root, dirs, files in os.walk(top):
        out[root] = [sorted(dirs), sorted(files), oct(os.lstat(root).st_mode), sorted(os.listxattr(root))]
out = {"processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid())}
for top in ("/tmp", "/dev/shm", os.environ["HOME"]):
    walk(top, out)
print(json.dumps(out, sort_keys=True))
`

// leaveScript leaves one thing (argv[1]) in its /tmp, /dev/shm or HOME,
// or in the folder above its scripts folder (and, last, a process too).
const leaveScript = `import os, sys, time
home = os.environ["HOME"]
what = sys.argv[1]
files = {"tmp": "/tmp/left", "shm": "/dev/shm/left", "home": os.path.join(home, "left"),
         "above": os.path.join(os.path.dirname(os.getcwd()), "left")}
if what in files:
    with open(files[what], "w") as f:
        f.write("x")
elif what == "dir":
    os.mkdir("/tmp/leftdir")
elif what == "chmod":
    os.chmod(home, 0o777)
elif what == "xattr":
    os.setxattr(home, "user.left", b"x")
elif what == "tmp+process":
    # A file, and a process that outlives the run's own.
    with open("/tmp/left", "w") as f:
        f.write("x")
    if os.fork() == 0:
        os.setsid()
        time.sleep(30)
        os._exit(0)
`

// A run finds its /tmp, /dev/shm and HOME as a first run does, and no
// process, whatever the run before it left there (in fork mode a slot is
// reused from run to run: every slot here takes a run after one that left
// something).
func TestSandboxNothingLeftForTheNextRun(t *testing.T) {
	cfg := RunnerConfig{Python: testutil.Python(t)}
	for mode, r := range sandboxRunners(t, cfg) {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "scripts")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			first := runCode(t, r, dir, viewScript)
			if first.ExitCode == nil || *first.ExitCode != 0 {
				t.Fatalf("%+v", first)
			}
			for _, what := range []string{"tmp", "shm", "home", "above", "dir", "chmod", "xattr", "tmp+process"} {
				if res := runCode(t, r, dir, leaveScript, what); res.ExitCode == nil || *res.ExitCode != 0 {
					t.Fatalf("leaving %s: %+v", what, res)
				}
				for j := 0; j < 3; j++ {
					if res := runCode(t, r, dir, viewScript); res.Stdout != first.Stdout {
						t.Fatalf("after a run that left %s, a run sees\n%s\nnot, as the first run,\n%s", what, res.Stdout, first.Stdout)
					}
				}
			}
		})
	}
}

// A scripts folder replaced by another at the same path: the runs after
// it see the new one (a slot keeps the folder in place only while it is
// the same).
func TestSandboxFolderReplaced(t *testing.T) {
	cfg := RunnerConfig{Python: testutil.Python(t)}
	for mode, r := range sandboxRunners(t, cfg) {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "scripts")
			fill := func(data string) {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "data.txt"), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			const code = "print(open('data.txt').read())\n"
			fill("one")
			for i := 0; i < 4; i++ {
				if res := runCode(t, r, dir, code); res.Stdout != "one\n" {
					t.Fatalf("%+v", res)
				}
			}
			if err := os.Rename(dir, dir+".old"); err != nil {
				t.Fatal(err)
			}
			fill("two")
			for i := 0; i < 4; i++ {
				if res := runCode(t, r, dir, code); res.Stdout != "two\n" {
					t.Fatalf("run %d in the new folder: %+v", i, res)
				}
			}
		})
	}
}

// Runs of two scripts folders in turn each see their own folder and not
// the other.
func TestSandboxTwoFolders(t *testing.T) {
	cfg := RunnerConfig{Python: testutil.Python(t)}
	for mode, r := range sandboxRunners(t, cfg) {
		t.Run(mode, func(t *testing.T) {
			top := t.TempDir()
			a, b := filepath.Join(top, "a"), filepath.Join(top, "b")
			for _, d := range []string{a, b} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, "mine.txt"), []byte(filepath.Base(d)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			const code = "import os, sys\nprint(open('mine.txt').read(), os.path.exists(os.path.join(sys.argv[1], 'mine.txt')))\n"
			for i := 0; i < 6; i++ {
				dir, other := a, b
				if i%2 == 1 {
					dir, other = b, a
				}
				if res := runCode(t, r, dir, code, other); res.Stdout != filepath.Base(dir)+" False\n" {
					t.Fatalf("run %d in %s: %+v", i, filepath.Base(dir), res)
				}
			}
		})
	}
}

// leaveDaemonScript starts a process that leaves the run's group and its
// parent (a double fork and setsid) and holds none of the run's output,
// with argv[1] in its command line, and ends once that process is up.
const leaveDaemonScript = `import os, sys
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(r)
        os.set_inheritable(w, True)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.execv(sys.executable, [sys.executable, "-c",
            "import os, sys, time\nos.write(int(sys.argv[1]), b'up')\ntime.sleep(120)", str(w), sys.argv[1]])
    os._exit(0)
os.close(w)
print(os.read(r, 2).decode(), flush=True)
`

// A fork-mode run under the sandbox may be answered as its process exits,
// but only when nothing else of it is left: a run that leaves a process is
// answered once that process is gone, and the next run in its slot never
// sees it.
func TestSandboxAnsweredWithNothingLeft(t *testing.T) {
	cfg := RunnerConfig{Python: testutil.Python(t)}
	r := sandboxRunners(t, cfg)["fork"]
	dir := filepath.Join(t.TempDir(), "scripts")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	daemon := filepath.Join(dir, "daemon.py")
	if err := os.WriteFile(daemon, []byte(leaveDaemonScript), 0o644); err != nil {
		t.Fatal(err)
	}
	view := filepath.Join(dir, "view.py")
	if err := os.WriteFile(view, []byte(viewScript), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		marker := fmt.Sprintf("leftmarker%d-%d", os.Getpid(), i)
		res, err := r.Run(context.Background(), Job{Path: daemon, Args: []string{marker}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Stdout != "up\n" || res.ExitCode == nil || *res.ExitCode != 0 {
			t.Fatalf("the process was not left running: %+v", res)
		}
		if left := testutil.MarkedPids(marker); len(left) > 0 {
			t.Fatalf("run %d answered while processes it left run: %v", i, left)
		}
		for range 2 {
			res, err := r.Run(context.Background(), Job{Path: view})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(res.Stdout, `"processes": []`) {
				t.Fatalf("a run after one that left a process sees other processes: %+v", res)
			}
		}
	}
}

// ipcScript, with "leave", makes a System V shared memory segment, message
// queue and semaphore set and a POSIX message queue, all left when it
// ends; with "look", prints which of them it finds.
const ipcScript = `import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mq_open.restype = ctypes.c_int
key, create = 0x5c41, 0o1666 if sys.argv[1] == "leave" else 0
found = [name for name, ok in (
    ("shm", libc.shmget(key, 4096, create) >= 0),
    ("msg", libc.msgget(key, create) >= 0),
    ("sem", libc.semget(key, 1, create) >= 0),
    ("mqueue", libc.mq_open(b"/scripthost-test", os.O_RDWR | (os.O_CREAT if create else 0), 0o600, None) >= 0),
) if ok]
with open("/proc/sysvipc/shm") as f:
    found += ["listed"] if len(f.readlines()) > 1 else []
print(" ".join(found))
`

// Under the sandbox, what a run leaves in its IPC namespace (System V
// objects, POSIX message queues) is never found by a later run, also when
// the runs of a fork-mode slot share one.
func TestSandboxIPCLeftNotSeen(t *testing.T) {
	u := nobody(t)
	nobodyTests.Lock()
	defer nobodyTests.Unlock()
	cfg := RunnerConfig{Python: u.python, RunAs: u.cred, Log: testutil.Logger(t, slog.LevelDebug)}
	for mode, r := range sandboxRunners(t, cfg) {
		t.Run(mode, func(t *testing.T) {
			path := u.script(t, "ipc.py", ipcScript)
			run := func(arg string) string {
				res, err := r.Run(context.Background(), Job{Path: path, Args: []string{arg}})
				if err != nil {
					t.Fatal(err)
				}
				if res.ExitCode == nil || *res.ExitCode != 0 {
					t.Fatalf("%s: %+v", arg, res)
				}
				return strings.TrimSpace(res.Stdout)
			}
			for range 3 {
				if got := run("leave"); got != "shm msg sem mqueue listed" {
					t.Fatalf("a run could not make its IPC objects: %q", got)
				}
				// More runs than a fork-mode warm process has slots.
				for range 8 {
					if got := run("look"); got != "" {
						t.Fatalf("a run finds what an earlier one left: %q", got)
					}
				}
			}
		})
	}
}

// A run that stays root (the server's user, no --run-as) keeps no
// capability, none in its bounding set (an exec gains none), and no exec
// may gain privileges.
func TestSandboxRootRunHasNoCapabilities(t *testing.T) {
	cfg := RunnerConfig{Python: testutil.Python(t)}
	code := "for l in open('/proc/self/status'):\n    k, v = l.split(':', 1)\n    if k.startswith('Cap') or k == 'NoNewPrivs':\n        print(k, v.strip())\n"
	want := "CapInh 0000000000000000\nCapPrm 0000000000000000\nCapEff 0000000000000000\nCapBnd 0000000000000000\nCapAmb 0000000000000000\nNoNewPrivs 1\n"
	for mode, r := range sandboxRunners(t, cfg) {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			for i := 0; i < 3; i++ { // and the runs after the first
				res := runCode(t, r, dir, code)
				if res.ExitCode == nil || *res.ExitCode != 0 || res.Stdout != want {
					t.Fatalf("run %d: %+v\nwant stdout %q", i, res, want)
				}
			}
		})
	}
}

// hiddenDir is a folder of the test's own that sandboxed runs do not see
// (under /tmp, which each run has fresh); it skips the test where the
// sandbox cannot be had or the test's folders are elsewhere.
func hiddenDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root")
	}
	dir := t.TempDir()
	if !strings.HasPrefix(dir, "/tmp/") {
		t.Skipf("the test's folders are not under /tmp (%s): nothing is hidden from the runs", dir)
	}
	return dir
}

// seenDir is a folder of the test's own that runs see, unlike the test's
// temporary folders under /tmp (which each run has fresh): under /var/tmp.
func seenDir(t *testing.T) string {
	t.Helper()
	if real, err := filepath.EvalSymlinks("/var/tmp"); err != nil || strings.HasPrefix(real+"/", "/tmp/") || strings.HasPrefix(real+"/", "/dev/shm/") {
		t.Skipf("no /var/tmp outside what runs have fresh here (%q, %v)", real, err)
	}
	dir, err := os.MkdirTemp("/var/tmp", "scripthost-seen-")
	if err != nil {
		t.Skipf("no folder of the test's own under /var/tmp: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A warm parent imports a script's imports seeing what its runs see: a
// module the run's view hides (here under /tmp, which each run has fresh)
// is not handed over to a run, and one it shadows there from a folder the
// run does see is the one a run gets, first run or hundredth, as with a
// fresh interpreter in the same sandbox.
func TestSandboxWarmParentImportsWhatRunsSee(t *testing.T) {
	hidden := hiddenDir(t)
	seen := seenDir(t)
	for dir, text := range map[string]string{hidden: "hidden", seen: "seen"} {
		writeScript(t, dir, "shadowed.py", "X = "+strconv.Quote(text)+"\n")
	}
	writeScript(t, hidden, "onlyhidden.py", "X = 1\n")
	// A module the warm interpreter imports for itself, shadowed there: the
	// standard library's code, marked.
	writeScript(t, hidden, "operator.py", "import os\n_p = os.path.join(os.path.dirname(os.__file__), 'operator.py')\nexec(compile(open(_p).read(), _p, 'exec'))\nSCRIPTHOST_SHADOW = 'hidden'\n")
	code := "import operator, shadowed\nprint(shadowed.X, getattr(operator, 'SCRIPTHOST_SHADOW', 'stdlib'))\ntry:\n    import onlyhidden\n    print('imported')\nexcept ImportError as e:\n    print(type(e).__name__, e.name)\n"
	const want = "seen stdlib\nModuleNotFoundError onlyhidden\n"
	cfg := RunnerConfig{Python: testutil.Python(t), Log: testutil.Logger(t, slog.LevelDebug),
		Env: append(os.Environ(), "PYTHONPATH="+hidden+":"+seen), WarmParents: WarmParents{Hot: 1}}
	path := writeScript(t, t.TempDir(), "view.py", code)
	job := Job{Path: path, Version: model.Version([]byte(code))}
	runners := sandboxRunners(t, cfg)
	if res := run(t, runners["spawn"], job); res.Stdout != want {
		t.Fatalf("spawn mode: %+v, want stdout %q", res, want)
	}
	r := runners["fork"].(*ForkRunner)
	if res := run(t, r, job); res.Stdout != want {
		t.Fatalf("first run: %+v, want stdout %q", res, want)
	}
	testutil.WaitFor(t, 30*time.Second, "a warm parent to be made", func() bool { return r.WarmStats().Parents > 0 })
	for i := 0; i < 3; i++ {
		if res := run(t, r, job); res.Stdout != want {
			t.Fatalf("run %d from the warm parent: %+v, want stdout %q", i, res, want)
		}
	}
	if r.WarmStats().Runs == 0 {
		t.Fatal("no run went to the warm parent")
	}
}

// With the sandbox on, a --preload module the runs could not import (under
// /tmp, which each run has fresh) stops the start instead of being handed
// to runs that could not have imported it.
func TestSandboxPreloadHiddenFromRuns(t *testing.T) {
	hidden := hiddenDir(t)
	writeScript(t, hidden, "onlyhidden.py", "X = 1\n")
	cfg := testConfig(t, Limits{})
	cfg.Env = append(os.Environ(), "PYTHONPATH="+hidden)
	cfg.Sandbox = Sandbox{Mode: SandboxOn}
	r, err := NewForkRunner(cfg, []string{"onlyhidden"})
	if err == nil {
		r.Close()
		t.Fatal("the runner started with a preload its runs cannot import")
	}
	if !strings.Contains(err.Error(), "ModuleNotFoundError") || !strings.Contains(err.Error(), "onlyhidden") {
		t.Fatalf("err %v, want the preload's ModuleNotFoundError", err)
	}
	cfg.Sandbox = Sandbox{Mode: SandboxOff}
	r, err = NewForkRunner(cfg, []string{"onlyhidden"})
	if err != nil {
		t.Fatalf("without the sandbox, the preload is seen: %v", err)
	}
	r.Close()
}

// A script whose imports start a Python thread gets no warm parent: its
// runs import them afresh, as the run user, and have the thread as under a
// fresh interpreter (in a warm parent the thread would not survive into the
// runs, and would go back to the server's ids with the warm parent).
func TestSandboxWarmParentImportStartsThread(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root")
	}
	lib := seenDir(t)
	writeScript(t, lib, "ticker.py", "import threading\nSTOP = threading.Event()\nthreading.Thread(target=STOP.wait, daemon=True).start()\n")
	code := "import threading, ticker\nprint(threading.active_count())\n"
	cfg := RunnerConfig{Python: testutil.Python(t), Log: testutil.Logger(t, slog.LevelDebug),
		Env: append(os.Environ(), "PYTHONPATH="+lib), WarmParents: WarmParents{Hot: 1}}
	path := writeScript(t, t.TempDir(), "threads.py", code)
	job := Job{Path: path, Version: model.Version([]byte(code))}
	runners := map[string]*ForkRunner{
		"sandbox":    sandboxRunners(t, cfg)["fork"].(*ForkRunner),
		"no sandbox": newParentsFork(t, WarmParents{Hot: 1}, lib),
	}
	for name, r := range runners {
		t.Run(name, func(t *testing.T) {
			for i := 0; i < 2; i++ {
				if res := run(t, r, job); res.Stdout != "2\n" {
					t.Fatalf("run %d: %+v, want the imported module's thread counted", i, res)
				}
			}
			testutil.WaitFor(t, 30*time.Second, "the script to be refused a warm parent", func() bool { return r.WarmStats().Refused > 0 })
			if res := run(t, r, job); res.Stdout != "2\n" {
				t.Fatalf("run after the refusal: %+v", res)
			}
			if s := r.WarmStats(); s.Parents != 0 || s.Runs != 0 {
				t.Fatalf("warm parents %+v, want none", s)
			}
		})
	}
}

// lockedBuffer collects a logger's records for a test to read.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// What the interpreter loads before the fork server's code (here a
// sitecustomize on a PYTHONPATH folder under /tmp) is in every fork-mode
// run, though the sandboxed runs' view does not have it: the start says so,
// and says nothing of the kind where all it loaded is in the runs' view.
func TestSandboxWarnsOfStartupModulesRunsCannotSee(t *testing.T) {
	hidden := hiddenDir(t)
	writeScript(t, hidden, "sitecustomize.py", "SCRIPTHOST_SITE = 1\n")
	for _, tc := range []struct {
		name string
		env  []string
		warn bool
	}{
		{"sitecustomize under /tmp", []string{"PYTHONPATH=" + hidden}, true},
		{"nothing hidden", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs lockedBuffer
			cfg := testConfig(t, Limits{})
			cfg.Log = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testutil.LogWriter(t)), &slog.HandlerOptions{Level: slog.LevelInfo}))
			cfg.Env = append(os.Environ(), tc.env...)
			cfg.Sandbox = Sandbox{Mode: SandboxOn}
			r, err := NewForkRunner(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			// (The first run waits for the warm interpreter's start. The run
			// has the hidden sitecustomize: what the warning is about.)
			res := runCode(t, r, t.TempDir(), "import sys\nprint(getattr(sys.modules.get('sitecustomize'), 'SCRIPTHOST_SITE', None))\n")
			warned := strings.Contains(logs.String(), "cannot see them") && strings.Contains(logs.String(), "sitecustomize")
			if warned != tc.warn || res.Stdout != map[bool]string{true: "1\n", false: "None\n"}[tc.warn] {
				t.Fatalf("warned %v (want %v), run %+v; logs:\n%s", warned, tc.warn, res, logs.String())
			}
		})
	}
}
