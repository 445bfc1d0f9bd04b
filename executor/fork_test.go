package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
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

func init() {
	runnerKinds = append(runnerKinds, struct {
		name string
		new  func(t testing.TB, limits Limits) Runner
	}{"fork", func(t testing.TB, limits Limits) Runner {
		return newFork(t, limits, nil)
	}})
}

func newFork(t testing.TB, limits Limits, preload []string) *ForkRunner {
	t.Helper()
	r, err := NewForkRunner(testConfig(t, limits), preload)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// warmPid is the pid of the runner's current warm interpreter, 0 if none.
func warmPid(r *ForkRunner) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil || r.cur.isDead() {
		return 0
	}
	return r.cur.pid
}

// When the warm interpreter dies, the run it was running fails with a
// clear error and dies too, and the next runs work.
func TestForkWarmDeath(t *testing.T) {
	t.Parallel()
	r := newFork(t, Limits{Timeout: 30 * time.Second}, nil)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "run.pid")
	sleeper := writeScript(t, dir, "sleep.py", `
import os, sys, time
open(sys.argv[1] + ".tmp", "w").write(str(os.getpid()) + "\n")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(60)`)
	hello := writeScript(t, dir, "hello.py", `print("hello")`)

	first := warmPid(r)
	if first == 0 {
		t.Fatal("no warm interpreter")
	}
	errc := make(chan error, 1)
	go func() {
		_, err := r.Run(context.Background(), Job{Path: sleeper, Args: []string{pidFile}})
		errc <- err
	}()
	runPid := testutil.ReadPids(t, pidFile)[0]
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, model.ErrUnavailable) || !strings.Contains(err.Error(), "warm interpreter") {
			t.Errorf("run in progress: err %v, want a warm-interpreter error wrapping ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the run did not end when its warm interpreter died")
	}
	testutil.WaitFor(t, 30*time.Second, "the orphaned run to die", func() bool { return testutil.ProcessGone(runPid) })

	res := run(t, r, Job{Path: hello})
	if res.Stdout != "hello\n" {
		t.Errorf("after restart: %+v", res)
	}
	second := warmPid(r)
	if second == 0 || second == first {
		t.Errorf("warm interpreter pid %d after restart, was %d", second, first)
	}

	// Dying while idle: the next run does not notice.
	if err := syscall.Kill(second, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "a new warm interpreter", func() bool {
		p := warmPid(r)
		return p != 0 && p != second
	})
	if res := run(t, r, Job{Path: hello}); res.Stdout != "hello\n" {
		t.Errorf("after an idle restart: %+v", res)
	}
}

func TestForkPreload(t *testing.T) {
	t.Parallel()
	// A module of the test's own, on PYTHONPATH, notes each import of it:
	// preloaded, it is imported once, by the warm interpreter, and the
	// runs that import it get that module without running it again. As in
	// a fresh interpreter, no preloaded module is in sys.modules before the
	// script imports it.
	lib := t.TempDir()
	notes := filepath.Join(lib, "imports.txt")
	writeScript(t, lib, "scripthost_probe.py", fmt.Sprintf(`
with open(%q, "a") as f:
    f.write("imported\n")
VALUE = 42
`, notes))
	cfg := testConfig(t, Limits{Timeout: 10 * time.Second})
	cfg.Env = append(os.Environ(), "PYTHONPATH="+lib)
	r, err := NewForkRunner(cfg, []string{"colorsys", "xml.dom.minidom", "scripthost_probe"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	dir := t.TempDir()
	path := writeScript(t, dir, "pre.py", `
import sys
print("colorsys" in sys.modules, "xml.dom.minidom" in sys.modules, "scripthost_probe" in sys.modules)
import colorsys, scripthost_probe, xml.dom.minidom
print(colorsys.rgb_to_hsv(1, 0, 0), scripthost_probe.VALUE, "xml.dom" in sys.modules)
`)
	for range 2 {
		res := run(t, r, Job{Path: path})
		if res.Stdout != "False False False\n(0.0, 1.0, 1) 42 True\n" {
			t.Errorf("result %+v", res)
		}
	}
	if b, err := os.ReadFile(notes); err != nil || string(b) != "imported\n" {
		t.Errorf("the preloaded module ran %q (%v), want once", b, err)
	}

	cfg = testConfig(t, Limits{})
	start := time.Now()
	_, err = NewForkRunner(cfg, []string{"no_such_module_for_scripthost"})
	if err == nil || !errors.Is(err, model.ErrUnavailable) || !strings.Contains(err.Error(), "no_such_module_for_scripthost") {
		t.Errorf("bad preload: err %v", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("a failed start took %v", time.Since(start))
	}
}

// An interpreter that is not Python fails fast and says so.
func TestForkBadInterpreter(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, Limits{})
	cfg.Python = "/bin/false"
	start := time.Now()
	if _, err := NewForkRunner(cfg, nil); !errors.Is(err, model.ErrUnavailable) {
		t.Errorf("err %v", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("a failed start took %v", time.Since(start))
	}
}

// Jobs too large for one control message travel in a memfd.
func TestForkLargeJob(t *testing.T) {
	t.Parallel()
	r := newFork(t, Limits{Timeout: 10 * time.Second}, nil)
	dir := t.TempDir()
	path := writeScript(t, dir, "args.py", `import sys; print(len(sys.argv) - 1, sum(map(len, sys.argv[1:])), sys.argv[-1][:3])`)
	args := make([]string, 100)
	for i := range args {
		args[i] = strings.Repeat(fmt.Sprint(i%10), 2000)
	}
	res := run(t, r, Job{Path: path, Args: args})
	if res.Stdout != "100 200000 999\n" {
		t.Errorf("result %+v", res)
	}
}

// Nothing a run changes reaches the next run, and one run's timeout does
// not touch the runs beside it.
func TestForkIsolation(t *testing.T) {
	t.Parallel()
	r := newFork(t, Limits{Timeout: 2 * time.Second}, nil)
	dir := t.TempDir()
	mutate := writeScript(t, dir, "mutate.py", `
import json, os, sys
print(getattr(json, "scripthost_mark", None), os.environ.get("SCRIPTHOST_MARK"), len(sys.path))
json.scripthost_mark = 1
os.environ["SCRIPTHOST_MARK"] = "1"
sys.path.append("/elsewhere")
`)
	want := fmt.Sprintf("None None %d\n", pathLen(t, r, dir))
	for range 3 {
		if res := run(t, r, Job{Path: mutate}); res.Stdout != want {
			t.Errorf("state leaked between runs: %q", res.Stdout)
		}
	}

	hang := writeScript(t, dir, "hang.py", `import time; time.sleep(60)`)
	quick := writeScript(t, dir, "quick.py", `import time; time.sleep(0.2); print("ok")`)
	var wg sync.WaitGroup
	wg.Go(func() {
		if res := run(t, r, Job{Path: hang}); !res.TimedOut {
			t.Errorf("hang: %+v", res)
		}
	})
	for range 8 {
		wg.Go(func() {
			if res := run(t, r, Job{Path: quick}); res.Stdout != "ok\n" || res.TimedOut {
				t.Errorf("quick: %+v", res)
			}
		})
	}
	wg.Wait()
}

// pathLen is len(sys.path) of a run in dir.
func pathLen(t *testing.T, r Runner, dir string) int {
	path := writeScript(t, dir, "pathlen.py", `import sys; print(len(sys.path))`)
	var n int
	if _, err := fmt.Sscan(run(t, r, Job{Path: path}).Stdout, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Many runs at once, more than the warm interpreter forks at a time.
func TestForkManyConcurrent(t *testing.T) {
	t.Parallel()
	r := newFork(t, Limits{Timeout: 30 * time.Second}, nil)
	dir := t.TempDir()
	path := writeScript(t, dir, "echo.py", `import sys; print(sys.argv[1], sys.stdin.read())`)
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			res, err := r.Run(context.Background(), Job{Path: path, Args: []string{fmt.Sprint(i)}, Stdin: []byte("x")})
			if err != nil || res.Stdout != fmt.Sprintf("%d x\n", i) {
				t.Errorf("run %d: %+v %v", i, res, err)
			}
		})
	}
	wg.Wait()
}

// A warm interpreter that stops answering (here: stopped) is killed once
// a run it was asked to kill overstays; that run still reports its
// timeout, and the next runs get a new warm interpreter.
func TestForkStuckWarm(t *testing.T) {
	t.Parallel()
	// The timeout also covers the start of the next warm interpreter for
	// the run after: room for a loaded machine.
	r := newFork(t, Limits{Timeout: 2 * time.Second}, nil)
	r.killGrace = 300 * time.Millisecond
	dir := t.TempDir()
	path := writeScript(t, dir, "sleep.py", `import time; time.sleep(60)`)
	hello := writeScript(t, dir, "hello.py", `print("hello")`)
	first := warmPid(r)
	type answer struct {
		res model.Result
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := r.Run(context.Background(), Job{Path: path})
		done <- answer{res, err}
	}()
	// Let the run start, then stop the warm interpreter.
	testutil.WaitFor(t, 30*time.Second, "the run to start", func() bool {
		r.cur.mu.Lock()
		defer r.cur.mu.Unlock()
		return len(r.cur.byPid) == 1
	})
	if err := syscall.Kill(first, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-done:
		if a.err != nil || !a.res.TimedOut || a.res.Signal != "SIGKILL" {
			t.Errorf("result %+v, err %v", a.res, a.err)
		}
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(first, syscall.SIGCONT)
		t.Fatal("the run did not end")
	}
	// The next run waits for the new warm interpreter within its own
	// time limit, short here: let the restart end first, however slow the
	// machine.
	testutil.WaitFor(t, 30*time.Second, "a new warm interpreter", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.starting == nil && r.cur != nil && !r.cur.isDead() && r.cur.pid != first
	})
	if got := run(t, r, Job{Path: hello}); got.Stdout != "hello\n" {
		t.Errorf("after the stuck interpreter: %+v", got)
	}
}

// A burst of forks the warm interpreter carries out only in part (here: a
// pids cgroup lets one of its forks through) costs no run its start: the
// runs after it get children of the next bursts, not a wait for the
// children that were never forked.
func TestForkBurstCutShort(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("moving the warm interpreter into a pids cgroup needs root")
	}
	root := "/sys/fs/cgroup/pids"
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		t.Skip("no cgroup v1 pids hierarchy")
	}
	r := newFork(t, Limits{Timeout: 20 * time.Second}, nil)
	dir := t.TempDir()
	path := writeScript(t, dir, "echo.py", `import sys; print(sys.argv[1])`)
	n := 0
	run := func() {
		t.Helper()
		n++
		res, err := r.Run(context.Background(), Job{Path: path, Args: []string{fmt.Sprint(n)}})
		if err != nil || res.Stdout != fmt.Sprintf("%d\n", n) {
			t.Fatalf("run %d: %+v %v", n, res, err)
		}
	}
	run()
	r.mu.Lock()
	w := r.cur
	r.mu.Unlock()
	settled := func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.forking == 0
	}
	testutil.WaitFor(t, 30*time.Second, "the first children to be forked", settled)

	cg := filepath.Join(root, fmt.Sprintf("scripthost-test-burst-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Empty once the warm interpreter and its children are gone.
		_ = r.Close()
		testutil.WaitFor(t, 30*time.Second, "the test's pids cgroup to be removed", func() bool {
			err := os.Remove(cg)
			return err == nil || os.IsNotExist(err)
		})
	})
	write := func(name, value string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(cg, name), []byte(value), 0o644); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	write("cgroup.procs", strconv.Itoa(w.pid))
	cur, err := os.ReadFile(filepath.Join(cg, "pids.current"))
	if err != nil {
		t.Fatal(err)
	}
	tasks, _ := strconv.Atoi(strings.TrimSpace(string(cur)))
	write("pids.max", strconv.Itoa(tasks+1))

	// Runs take the children forked ahead until the next burst is asked
	// for: its first fork goes through, the others fail.
	inCgroup := func() bool {
		procs, _ := os.ReadFile(filepath.Join(cg, "cgroup.procs"))
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, c := range w.idle {
			for _, f := range strings.Fields(string(procs)) {
				if f == strconv.Itoa(c.pid) {
					return true
				}
			}
		}
		return false
	}
	for !inCgroup() {
		if n > 2*idleMax {
			t.Fatal("no child was forked into the pids cgroup")
		}
		run()
		testutil.WaitFor(t, 30*time.Second, "the burst asked for to be over", func() bool { return inCgroup() || settled() })
	}
	write("pids.max", "max")
	for range 3 * idleMax {
		run()
	}
}

// A child that reaches Go without its descriptors (the server is at its
// open files limit: the kernel drops those it cannot install) is a child
// that will not come: a run waiting for one answers at once, and the
// runs after it go on, instead of waiting their whole timeout.
func TestForkChildWithoutDescriptors(t *testing.T) {
	// Not parallel: the test lowers this process's open files limit.
	r := newFork(t, Limits{Timeout: time.Minute}, nil)
	path := writeScript(t, t.TempDir(), "echo.py", `import sys; print(sys.argv[1])`)
	n := 0
	runOK := func() {
		t.Helper()
		n++
		if got := run(t, r, Job{Path: path, Args: []string{strconv.Itoa(n)}}).Stdout; got != fmt.Sprintf("%d\n", n) {
			t.Fatalf("run %d: stdout %q", n, got)
		}
	}
	runOK()
	r.mu.Lock()
	w := r.cur
	r.mu.Unlock()
	ahead := 0
	testutil.WaitFor(t, 30*time.Second, "the children forked ahead", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		ahead = len(w.idle)
		return w.forking == 0
	})
	// With the warm interpreter stopped, the runs take the children forked
	// ahead, and those asked for meanwhile wait in its control socket.
	if err := syscall.Kill(w.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	cont := func() {
		if stopped {
			stopped = false
			_ = syscall.Kill(w.pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(cont)
	for range ahead {
		runOK()
	}
	w.mu.Lock()
	asked := w.forking
	w.mu.Unlock()
	if asked == 0 {
		t.Fatal("no child asked for")
	}
	// Its children, of each of its threads (read below without opening
	// a descriptor).
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", w.pid))
	if err != nil {
		t.Fatal(err)
	}
	var children []*os.File
	for _, task := range tasks {
		f, err := os.Open(fmt.Sprintf("/proc/%d/task/%s/children", w.pid, task.Name()))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		children = append(children, f)
	}
	// No descriptor can be opened here now: the children asked for come
	// without theirs.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	free, err := syscall.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	_ = syscall.Close(free)
	low := lim
	low.Cur = uint64(free)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(restore)
	cont()
	// Each child asked for comes without its channel: once it is gone
	// (killed, or ended by its channel's end), the warm interpreter has
	// no child left.
	buf := make([]byte, 4096)
	testutil.WaitFor(t, 30*time.Second, "the warm interpreter's children to end", func() bool {
		for _, f := range children {
			k, err := f.ReadAt(buf, 0)
			if err != nil && !errors.Is(err, io.EOF) || k > 0 {
				return false
			}
		}
		return true
	})
	restore()
	answersSoon(t, r, Job{Path: path, Args: []string{"after"}}, "after\n", "descriptors")
	for range 2 * idleMax {
		runOK()
	}
}
