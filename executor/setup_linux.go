package executor

import (
	"errors"
	"os"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// SetupProcess prepares this process to run scripts; it changes the whole
// process, so it is main's to call (and a test binary's, in TestMain),
// once, before the first runner starts:
//   - the descriptors it inherited without close-on-exec are marked
//     close-on-exec, so that runs do not inherit them in turn: a run starts
//     with fds 0, 1 and 2 only, in both modes (the fork server closes the
//     others in its children). Go opens all of its own descriptors
//     close-on-exec already, and ExtraFiles of other commands are
//     unaffected;
//   - it becomes the reaper of its runs' orphans (PR_SET_CHILD_SUBREAPER):
//     a process of a run whose parent dies is re-parented here rather than
//     to init (which, in a container, may never reap it), so that
//     reapGroup can wait for it.
//
// NewSpawnRunner and NewForkRunner fail until it has been called. On
// systems other than Linux it returns ErrNeedsLinux.
func SetupProcess() error {
	closeInheritedOnExec()
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	setUp.Store(true)
	return nil
}

// setUp records that SetupProcess ran: a fact about the process.
var setUp atomic.Bool

// errNotSetUp is the error of a runner started in a process that
// SetupProcess did not prepare.
var errNotSetUp = errors.New("executor: the process is not prepared to run scripts: call executor.SetupProcess first (main does, before it starts a node)")

// checkSetUp fails unless SetupProcess ran.
func checkSetUp() error {
	if !setUp.Load() {
		return errNotSetUp
	}
	return nil
}

// closeInheritedOnExec marks the descriptors this process inherited
// without close-on-exec (see SetupProcess).
func closeInheritedOnExec() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags|unix.FD_CLOEXEC)
		}
	}
}
