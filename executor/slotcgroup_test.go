package executor

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
)

// The warm interpreter makes a slot's cgroups (sandbox.py's
// make_slot_cgroups, run by the real python3 against real cgroups) where
// a warm process that died left groups behind: slot-<pid> for the new
// init's pid, empty, is made anew with the run limits; one that still has
// a process in it is left alone with its process, and the slot's group is
// slot-<pid>-1; the empty group of a slot whose init is gone is removed,
// one of those that still has a process is left.
func TestSlotCgroupLeftBehind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making cgroups needs root")
	}
	found, _, err := findCgroupHierarchies([]string{"memory", "pids"})
	if err != nil || len(found) == 0 {
		t.Skipf("no cgroup hierarchy with memory or pids: %v", err)
	}
	// The pool under a group of this test's own, so that no other
	// runner of this process shares its parents.
	var hier []cgroupHierarchy
	for _, h := range found {
		base := filepath.Join(h.base, fmt.Sprintf("scripthost-test-slots-%d", os.Getpid()))
		if err := os.Mkdir(base, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Rmdir(base) })
		h.base = base
		hier = append(hier, h)
	}
	const maxMemory, maxProcs = 64 << 20, 32
	pool, err := newCgroupPoolOn(hier, maxMemory, maxProcs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // after the processes below are ended

	// Processes of the test's: pids taken by live processes (the slots'
	// new inits would be), some also in the groups left behind.
	var started []*exec.Cmd
	t.Cleanup(func() {
		for _, c := range started {
			c.Process.Kill()
			c.Wait()
		}
	})
	sleeper := func() int {
		c := exec.Command("sleep", "600")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		started = append(started, c)
		return c.Process.Pid
	}
	emptyPid, busyPid, inside := sleeper(), sleeper(), sleeper()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid := gone.Process.Pid

	// What a dead warm process left in each parent.
	stale := map[string]uint64{} // its empty slot-<emptyPid>: inode
	for _, parent := range pool.parents {
		for _, name := range []string{
			fmt.Sprintf("slot-%d", emptyPid), fmt.Sprintf("slot-%d", busyPid),
			fmt.Sprintf("slot-%d", deadPid), fmt.Sprintf("slot-%d-1", deadPid),
		} {
			if err := os.Mkdir(filepath.Join(parent, name), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := writeCgroup(filepath.Join(parent, fmt.Sprintf("slot-%d", busyPid)), "cgroup.procs", strconv.Itoa(busyPid)); err != nil {
			t.Fatal(err)
		}
		if err := writeCgroup(filepath.Join(parent, fmt.Sprintf("slot-%d-1", deadPid)), "cgroup.procs", strconv.Itoa(inside)); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(parent, fmt.Sprintf("slot-%d", emptyPid)), &st); err != nil {
			t.Fatal(err)
		}
		stale[parent] = st.Ino
	}

	// sandbox.py as the warm interpreter loads it, making two slots' groups.
	dir := t.TempDir()
	for name, src := range map[string]string{"confine.py": confineSource, "sandbox.py": sandboxSource} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := json.Marshal(map[string]any{"cgroup_limits": pool.slotLimits()})
	prog := `import json, sys, types
conf = types.ModuleType("confine")
exec(open(sys.argv[1]).read(), conf.__dict__)
sb = conf.load("sandbox", open(sys.argv[2]).read(), confine=conf)
cfg = json.loads(sys.argv[3])
print(json.dumps([sb.make_slot_cgroups(cfg, int(p)) for p in sys.argv[4:]]))
`
	out, err := exec.Command(testutil.Python(t), "-c", prog, filepath.Join(dir, "confine.py"), filepath.Join(dir, "sandbox.py"),
		string(cfg), strconv.Itoa(emptyPid), strconv.Itoa(busyPid)).CombinedOutput()
	if err != nil {
		t.Fatalf("make_slot_cgroups: %v\n%s", err, out)
	}
	var made [][]string
	if err := json.Unmarshal(out, &made); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var wantEmpty, wantBusy []string
	for _, parent := range pool.parents {
		wantEmpty = append(wantEmpty, filepath.Join(parent, fmt.Sprintf("slot-%d", emptyPid)))
		wantBusy = append(wantBusy, filepath.Join(parent, fmt.Sprintf("slot-%d-1", busyPid)))
	}
	if len(made) != 2 || !slices.Equal(made[0], wantEmpty) || !slices.Equal(made[1], wantBusy) {
		t.Fatalf("slots' cgroups %q, want %q and %q", made, wantEmpty, wantBusy)
	}

	for i, h := range hier {
		parent := pool.parents[i]
		var st syscall.Stat_t
		if err := syscall.Stat(made[0][i], &st); err != nil || st.Ino == stale[parent] {
			t.Errorf("%s: %v, inode %d: not made anew (the stale one's was %d)", made[0][i], err, st.Ino, stale[parent])
		}
		for _, d := range []string{made[0][i], made[1][i]} {
			for _, s := range pool.settings(h) {
				b, err := os.ReadFile(filepath.Join(d, s[0]))
				if err != nil && strings.Contains(s[0], "sw") && os.IsNotExist(err) {
					continue // no swap accounting
				}
				if got := strings.TrimSpace(string(b)); err != nil || got != s[1] {
					t.Errorf("%s: %s is %q (%v), want %q", d, s[0], got, err, s[1])
				}
			}
		}
		if pids := cgroupPids(filepath.Join(parent, fmt.Sprintf("slot-%d", busyPid))); !slices.Equal(pids, []int{busyPid}) {
			t.Errorf("the stale group with a process: processes %v, want %d", pids, busyPid)
		}
		if _, err := os.Stat(filepath.Join(parent, fmt.Sprintf("slot-%d", deadPid))); !os.IsNotExist(err) {
			t.Errorf("the empty group of a dead slot: %v, want it removed", err)
		}
		if pids := cgroupPids(filepath.Join(parent, fmt.Sprintf("slot-%d-1", deadPid))); !slices.Equal(pids, []int{inside}) {
			t.Errorf("the group of a dead slot with a process: processes %v, want %d", pids, inside)
		}
	}
	if err := started[1].Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the process in the stale group: %v", err)
	}
}

// A sandboxed fork-mode run succeeds when the warm interpreter died and
// the slot's pid has a group left behind: the groups of the dead
// interpreter's slots are removed by the next one, and one left for the
// pid its slot gets (here: for each of the next pids the system gives) is
// made anew.
func TestSandboxSlotCgroupLeftBehind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root")
	}
	r, err := NewForkRunner(RunnerConfig{Python: testutil.Python(t), Log: testutil.Logger(t, slog.LevelDebug), Sandbox: Sandbox{Mode: SandboxOn}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.sb == nil || r.sb.cgroups == nil {
		t.Skip("no run cgroups here")
	}
	parents := r.sb.cgroups.parents
	dir := t.TempDir()
	slotRe := regexp.MustCompile(`/(slot-(\d+)(?:-\d+)?)\n`)
	slotOf := func() (string, int) {
		t.Helper()
		res := runCode(t, r, dir, "print(open('/proc/self/cgroup').read())\n")
		m := slotRe.FindStringSubmatch(res.Stdout)
		if res.ExitCode == nil || *res.ExitCode != 0 || m == nil {
			t.Fatalf("a run in a slot: %+v", res)
		}
		pid, _ := strconv.Atoi(m[2])
		return m[1], pid
	}
	first, firstInit := slotOf()
	for _, p := range parents {
		if _, err := os.Stat(filepath.Join(p, first)); err != nil {
			t.Fatalf("the run's slot group: %v", err)
		}
	}

	// Groups left for the next pids, as by warm processes that died,
	// then the warm interpreter killed: its slots' groups stay behind.
	b, err := os.ReadFile("/proc/sys/kernel/ns_last_pid")
	if err != nil {
		t.Fatal(err)
	}
	last, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	b, _ = os.ReadFile("/proc/sys/kernel/pid_max")
	pidMax, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	const window = 2000
	stale := map[string]uint64{} // slot name: its inode in parents[0]
	for i := 1; i <= window; i++ {
		pid := last + i
		if pidMax > 0 && pid >= pidMax {
			pid = 300 + pid - pidMax // the kernel's pids wrap to 300
		}
		name := fmt.Sprintf("slot-%d", pid)
		for _, p := range parents {
			if err := os.Mkdir(filepath.Join(p, name), 0o755); err != nil && !os.IsExist(err) {
				t.Fatal(err)
			}
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(parents[0], name), &st) == nil {
			stale[name] = st.Ino
		}
	}
	old := warmPid(r)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "the slot's init to end with the warm interpreter", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", firstInit))
		_, state, _ := strings.Cut(string(b), ") ")
		return err != nil || strings.HasPrefix(state, "Z") // this process reaps orphans, not at once
	})
	// A run started before the runner sees the warm interpreter gone may
	// be handed to one of its children, still exiting, and fail with it
	// (503, as documented): the next run is the one on the new warm
	// interpreter.
	testutil.WaitFor(t, 30*time.Second, "the runner to see the warm interpreter gone", func() bool {
		return warmPid(r) != old
	})

	second, _ := slotOf()
	ino, ok := stale[second]
	if !ok {
		t.Fatalf("the new slot %s is not one of the %d pids after %d given groups: the test proves nothing (the machine made more processes meanwhile)", second, window, last)
	}
	for i, p := range parents {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(p, second), &st); err != nil {
			t.Fatalf("the new slot's group: %v", err)
		}
		if i == 0 && st.Ino == ino {
			t.Errorf("%s: the stale group was used as it was, not made anew", filepath.Join(p, second))
		}
		if _, err := os.Stat(filepath.Join(p, first)); !os.IsNotExist(err) {
			t.Errorf("the dead interpreter's slot group %s: %v, want it removed", filepath.Join(p, first), err)
		}
	}
}
