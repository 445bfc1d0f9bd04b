package executor

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// privateDirty is the memory process pid has as its own, written
// (/proc/<pid>/smaps_rollup's Private_Dirty), in bytes.
func privateDirty(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("Private_Dirty:")); ok {
			kb, err := strconv.ParseInt(string(bytes.Fields(v)[0]), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no Private_Dirty in smaps_rollup of %d", pid)
	return 0
}

// A warm interpreter learns what a run writes of its memory; a child
// waiting for its job that is told to copy that ahead makes it its own
// then, and its run is a run like any other.
func TestForkCopiesAhead(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		testCopiesAhead(t, newFork(t, Limits{Timeout: time.Minute}, nil), false, false)
	})
	t.Run("sandbox", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("the sandbox needs root")
		}
		cfg := testConfig(t, Limits{Timeout: time.Minute})
		cfg.Sandbox = Sandbox{Mode: SandboxOn}
		r, err := NewForkRunner(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		testCopiesAhead(t, r, true, false)
	})
	// A script's warm parent has what the warm interpreter learned (it
	// learns nothing itself: see forkserver.py's _learn_written_pages).
	t.Run("warm parent", func(t *testing.T) {
		testCopiesAhead(t, newParentsFork(t, WarmParents{Hot: 1}, t.TempDir()), false, true)
	})
}

// testCopiesAhead tells the next child of r's warm interpreter (or of the
// script's warm parent, with parent) to copy ahead, and checks what it
// copied and its run.
func testCopiesAhead(t *testing.T, r *ForkRunner, sandboxed, parent bool) {
	job := versioned(writeScript(t, t.TempDir(), "pid.py", `import os, sys; print(os.getpid(), sys.argv[1])`))
	if !parent {
		job.Version = "" // never from a warm parent
	}
	runAs := func(arg string) model.Result {
		j := job
		j.Args = []string{arg}
		return run(t, r, j)
	}
	// As under load: no child is told until this test tells one.
	const load = 1 << 20
	r.inRun.Add(load)
	var w *warm
	testutil.WaitFor(t, 60*time.Second, "the warm process of the runs", func() bool {
		runAs("first")
		if !parent {
			r.mu.Lock()
			w = r.cur
			r.mu.Unlock()
			return true
		}
		r.parents.mu.Lock()
		defer r.parents.mu.Unlock()
		if p := r.parents.byPath[job.Path]; p != nil && p.w != nil {
			w = p.w
			return true
		}
		return false
	})
	if w.ahead < 64<<10 {
		t.Fatalf("the warm process has %d bytes a run writes to copy ahead", w.ahead)
	}
	// The next child in line.
	var next idleChild
	testutil.WaitFor(t, 30*time.Second, "a child forked ahead", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.idle) == 0 {
			return false
		}
		next = w.idle[0]
		return true
	})
	if next.told {
		t.Fatal("a child was told to copy ahead under load")
	}
	before := privateDirty(t, next.pid)
	r.inRun.Add(-load)
	w.mu.Lock()
	w.nudgeLocked()
	told := len(w.idle) > 0 && w.idle[0].pid == next.pid && w.idle[0].told
	w.mu.Unlock()
	if !told {
		t.Fatal("the next child was not told to copy ahead")
	}
	// Most of what it copies was shared with the warm process.
	var after int64
	testutil.WaitFor(t, 30*time.Second, "the child's copies", func() bool {
		after = privateDirty(t, next.pid)
		return after-before >= w.ahead/2
	})
	t.Logf("to copy %d KiB; the child's own memory %d -> %d KiB", w.ahead>>10, before>>10, after>>10)
	// The next run takes it (the first in line).
	res := runAs("second")
	want := fmt.Sprintf("%d second\n", next.pid)
	if sandboxed {
		// Its pid is the one in the run's pid namespace: the run is the
		// told child's if that child no longer waits.
		var pid int
		if _, err := fmt.Sscanf(res.Stdout, "%d second\n", &pid); err != nil || pid <= 0 {
			t.Fatalf("the told child's run: stdout %q", res.Stdout)
		}
		want = res.Stdout
		w.mu.Lock()
		for _, c := range w.idle {
			if c.pid == next.pid {
				t.Error("the told child still waits after the run")
			}
		}
		w.mu.Unlock()
	}
	if res.Stdout != want || res.Stderr != "" || res.ExitCode == nil || *res.ExitCode != 0 {
		t.Fatalf("the told child's run: %+v, want stdout %q", res, want)
	}
}
