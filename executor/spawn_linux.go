package executor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/scripthost/scripthost/model"
)

// SpawnRunner runs every job in a fresh interpreter: python script args,
// never through a shell, in its own process group.
type SpawnRunner struct {
	cfg     RunnerConfig
	confine *confinedStart
	sb      *sandbox    // nil: runs are not sandboxed
	sbConf  confinement // the confinement of sandboxed runs

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	running sync.WaitGroup
}

var _ Runner = (*SpawnRunner)(nil)

// NewSpawnRunner checks cfg, fills in its defaults and returns a runner.
func NewSpawnRunner(cfg RunnerConfig) (*SpawnRunner, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkSetUp(); err != nil {
		return nil, err
	}
	sb, err := prepareSandbox(&cfg)
	if err != nil {
		return nil, err
	}
	r := &SpawnRunner{cfg: cfg, sb: sb, closing: make(chan struct{})}
	if sb != nil {
		r.sbConf = cfg.runConfinement(sb)
		return r, nil
	}
	if r.confine, err = newConfinedStart(cfg.Python, cfg.runConfinement(nil), cfg.Log); err != nil {
		return nil, err
	}
	return r, nil
}

// Run runs job to completion. The whole process group dies when the run
// times out, when ctx is done, when the runner closes, and also when the
// script itself exits, so that nothing started by a run outlives it.
func (r *SpawnRunner) Run(ctx context.Context, job Job) (model.Result, error) {
	if err := checkJob(job); err != nil {
		return model.Result{}, err
	}
	if ctx.Err() != nil {
		return model.Result{}, cancelled(ctx)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return model.Result{}, errClosed
	}
	r.running.Add(1)
	r.mu.Unlock()
	defer r.running.Done()

	pio, err := newProcIO(job.Stdin, r.cfg.Limits.MaxOutput, job.Output)
	if err != nil {
		return model.Result{}, err
	}
	dir := filepath.Dir(job.Path)
	child := pio.childFiles()
	cmd := &exec.Cmd{
		Path:        r.cfg.Python,
		Args:        append([]string{r.cfg.Python, job.Path}, job.Args...),
		Dir:         dir,
		Env:         runEnv(r.cfg.Env, dir, job.Output != nil),
		Stdin:       child[0],
		Stdout:      child[1],
		Stderr:      child[2],
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	cg, err := r.sb.acquire()
	if err != nil {
		pio.closeAll()
		return model.Result{}, model.Errorf(model.ErrUnavailable, "cannot start the run: %v", err)
	}
	defer r.sb.release(cg)
	var sbStatus *os.File // the sandboxed run's own wait status
	if r.sb != nil {
		sbStatus, err = r.sb.startSpawn(cmd, r.sbConf, cg)
	} else {
		err = r.confine.start(cmd)
	}
	if err != nil {
		pio.closeAll()
		return model.Result{}, model.Errorf(model.ErrUnavailable, "cannot start the interpreter: %v", err)
	}
	pid := cmd.Process.Pid
	pio.start()

	exited := make(chan error, 1)
	go func() { exited <- waitExited(pid) }()
	timer := time.NewTimer(timeoutOf(job, r.cfg.Limits.Timeout))
	defer timer.Stop()
	var timedOut bool
	var runErr error
	select {
	case err = <-exited:
	case <-timer.C:
		timedOut = true
	case <-ctx.Done():
		runErr = cancelled(ctx)
	case <-r.closing:
		runErr = errClosed
	}
	if timedOut || runErr != nil {
		killGroup(pid)
		err = <-exited
	}
	if err != nil {
		// waitid failed: the leader's state is unknown, so its group id may
		// not be ours any more; reap it and leave the group alone.
		r.cfg.Log.Error("waiting for a run", "pid", pid, "err", err)
	} else {
		// The leader has exited but is not reaped yet: its group is still
		// ours to kill, grandchildren included.
		killGroup(pid)
	}
	waitErr := cmd.Wait()
	if err == nil {
		reapGroup(pid, false, r.cfg.DrainTimeout)
	}
	reapStrays()
	pio.finish(r.cfg.DrainTimeout)

	var ws syscall.WaitStatus
	var exitErr *exec.ExitError
	switch {
	case waitErr == nil:
		ws = cmd.ProcessState.Sys().(syscall.WaitStatus)
	case errors.As(waitErr, &exitErr):
		ws = exitErr.Sys().(syscall.WaitStatus)
	default:
		return model.Result{}, model.Errorf(model.ErrInternal, "waiting for the interpreter: %v", waitErr)
	}
	if sbStatus != nil {
		// The init exited 0 once the run's process ended, and said how.
		if runWS, ok := r.sb.spawnStatus(sbStatus); ok {
			ws = runWS
		}
	}
	res := pio.result(ws, timedOut)
	return res, runErr
}

// Close kills the runs in progress and waits for them to end. Later runs
// fail with an error wrapping model.ErrUnavailable.
func (r *SpawnRunner) Close() error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.closing)
	}
	r.mu.Unlock()
	r.running.Wait()
	r.sb.close()
	return nil
}

// errClosed is the error of a run on a closed runner.
var errClosed = model.Errorf(model.ErrUnavailable, "the script runner is shut down")
