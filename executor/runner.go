package executor

import (
	"context"
	"errors"
	"runtime"
	"time"

	"github.com/scripthost/scripthost/model"
)

// Job is one run of a script.
type Job struct {
	// Path is the absolute path of the script; the run's working directory
	// is the folder that holds it.
	Path string
	// Args follow Path in the script's argv.
	Args []string
	// Stdin is written to the script's stdin, which is then closed.
	Stdin []byte
	// Output, when not nil, receives the run's output as it is read, in
	// order of arrival, within the output caps. Such a run's stdout and
	// stderr are unbuffered (PYTHONUNBUFFERED=1), as a user watching it
	// expects; its result is the same.
	Output Output
	// Version is the script's version (model.Version of its code). In
	// fork mode, runs of a hot script with a version go to a warm parent
	// made for that version; without one they never do.
	Version string
	// Timeout, when positive, replaces the runner's Limits.Timeout for
	// this run (a job's own time limit).
	Timeout time.Duration
}

// Output receives the output of a run while it runs.
type Output interface {
	// Chunk is called with each piece of output as read: fd is 1 (stdout)
	// or 2 (stderr). p is only valid during the call. Calls do not
	// overlap.
	Chunk(fd int, p []byte)
}

// cancelled is the error of a run stopped by its context: ErrCancelled
// when the caller cancelled it, ErrUnavailable when a deadline passed.
func cancelled(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return model.Errorf(model.ErrCancelled, "run cancelled")
	}
	return model.Errorf(model.ErrUnavailable, "run cancelled: %v", ctx.Err())
}

// timeoutOf is the time limit of job on a runner whose limit is def.
func timeoutOf(job Job, def time.Duration) time.Duration {
	if job.Timeout > 0 {
		return job.Timeout
	}
	return def
}

// Limits bound every run of a runner.
type Limits struct {
	// Timeout bounds the whole run; the run's process group is killed
	// when it expires.
	Timeout time.Duration
	// MaxOutput caps stdout and stderr each, in bytes; the rest is
	// drained and dropped.
	MaxOutput int

	// The resource limits of every process of a run (see confine_linux.go);
	// zero leaves a limit as the server has it.

	// MaxMemory bounds the address space of each process, in bytes
	// (RLIMIT_AS): allocations beyond it fail (Python: MemoryError).
	MaxMemory int64
	// MaxCPU bounds the CPU time of each process, rounded up to whole
	// seconds (RLIMIT_CPU): SIGXCPU ends it, SIGKILL a second later.
	MaxCPU time.Duration
	// MaxProcs bounds the processes and threads of the run's user, all
	// its runs and other processes together (RLIMIT_NPROC); it does not
	// bind root.
	MaxProcs int
	// MaxOpenFiles bounds the open descriptors of each process
	// (RLIMIT_NOFILE).
	MaxOpenFiles int
}

// checkConfinement rejects limits that make no sense.
func (l Limits) checkConfinement() error {
	switch {
	case l.MaxMemory < 0:
		return errors.New("executor: negative memory limit")
	case l.MaxCPU < 0:
		return errors.New("executor: negative CPU time limit")
	case l.MaxProcs < 0:
		return errors.New("executor: negative process limit")
	case l.MaxOpenFiles < 0:
		return errors.New("executor: negative open files limit")
	}
	return nil
}

// ErrNeedsLinux is the error of SetupProcess, Preflight and the runners
// on systems other than Linux (runner_other.go).
var ErrNeedsLinux = errors.New("executor: scripts run only on Linux, not on " + runtime.GOOS +
	" (the runs are confined with Linux's process control, namespaces and cgroups); here serve runs without an executor (--max-concurrent 0), in front of executor nodes on Linux")

// Runner runs one job to completion. A script's own failure (non-zero
// exit, death by a signal, timeout) is a Result, not an error; an error
// means the run could not take place (it wraps model.ErrUnavailable or
// model.ErrInternal).
type Runner interface {
	Run(ctx context.Context, job Job) (model.Result, error)
	// Close stops the runner; runs in progress are killed.
	Close() error
}
