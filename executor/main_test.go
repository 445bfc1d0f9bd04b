package executor

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestMain prepares the test process to run scripts, as main does.
func TestMain(m *testing.M) {
	if err := SetupProcess(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// SetupProcess makes this process the reaper of its runs' orphans and
// keeps the descriptors it inherited from its runs, in both modes.
func TestSetupProcess(t *testing.T) {
	sub := new(int32)
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(sub)), 0, 0, 0); err != nil || *sub != 1 {
		t.Fatalf("not the subreaper: %d %v", *sub, err)
	}
	// A descriptor without close-on-exec, as an inherited one can be.
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const fd = 100
	if err := unix.Dup2(int(f.Fd()), fd); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := SetupProcess(); err != nil {
		t.Fatal(err)
	}
	for _, k := range runnerKinds {
		t.Run(k.name, func(t *testing.T) {
			r := k.new(t, Limits{})
			path := writeScript(t, t.TempDir(), "fd.py", fmt.Sprintf("import os\ntry:\n    os.fstat(%d)\n    print('inherited')\nexcept OSError:\n    print('not inherited')\n", fd))
			if res := run(t, r, Job{Path: path}); res.Stdout != "not inherited\n" {
				t.Fatalf("stdout %q, stderr %q", res.Stdout, res.Stderr)
			}
		})
	}
}

// A runner refuses to start in a process that SetupProcess did not
// prepare, and says what to do.
func TestRunnersNeedSetupProcess(t *testing.T) {
	setUp.Store(false)
	defer setUp.Store(true)
	cfg := testConfig(t, Limits{})
	if _, err := NewSpawnRunner(cfg); !errors.Is(err, errNotSetUp) {
		t.Errorf("spawn runner: %v", err)
	}
	if _, err := NewForkRunner(cfg, nil); !errors.Is(err, errNotSetUp) {
		t.Errorf("fork runner: %v", err)
	}
}
