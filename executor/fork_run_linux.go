package executor

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scripthost/scripthost/model"
)

// Run runs job in a child of the warm interpreter. Its process group dies
// when the run times out, when ctx is done, when the runner closes, and
// when the script exits. If the warm interpreter dies during the run, the
// run fails with an error wrapping model.ErrUnavailable and the interpreter
// is restarted for the next runs.
func (r *ForkRunner) Run(ctx context.Context, job Job) (model.Result, error) {
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
	r.inRun.Add(1)
	defer r.inRun.Add(-1)

	limit := timeoutOf(job, r.cfg.Limits.Timeout)
	// Waiting for a (re)starting warm interpreter counts against the run;
	// wctx's deadline is also the run's.
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	pio, err := newProcIO(job.Stdin, r.cfg.Limits.MaxOutput, job.Output)
	if err != nil {
		return model.Result{}, err
	}
	dir, err := os.Stat(filepath.Dir(job.Path))
	if err != nil || !dir.IsDir() {
		pio.closeAll()
		return model.Result{}, model.Errorf(model.ErrUnavailable, "cannot start the run: no such folder: %s", filepath.Dir(job.Path))
	}
	run := &forkRun{msgs: make(chan forkMsg, 1), pidsFd: -1}
	var (
		w     *warm
		pid   int
		pidfd = -1
	)
	for attempt := 0; ; attempt++ {
		// A hot script's own warm parent, else the warm interpreter.
		p, pw := r.parentFor(job)
		if p != nil {
			w = pw
		} else if w, err = r.warm(wctx); err != nil {
			pio.closeAll()
			return model.Result{}, err
		}
		if w != nil {
			pid, pidfd, err = w.start(wctx, run, job, dir, pio)
		} else {
			err = errWarmDead // retired meanwhile
		}
		if p != nil {
			defer r.releaseParent(p)
		}
		if err == nil {
			break
		}
		if wctx.Err() != nil {
			// Cancelled, or out of time, waiting for a child to take it.
			pio.closeAll()
			return model.Result{}, err
		}
		// A warm interpreter that died before taking the job: the job never
		// started, so try once more with the next one.
		if !errors.Is(err, errWarmDead) || attempt > 0 {
			pio.closeAll()
			return model.Result{}, model.Errorf(model.ErrUnavailable, "cannot start the run: %v", err)
		}
	}
	pio.start()

	var (
		timedOut, killSent bool
		runErr             error
		status             syscall.WaitStatus
		// ended is wctx's end: the run's deadline, or ctx's end; after the
		// deadline, ctxDone is ctx's.
		ended   = wctx.Done()
		ctxDone <-chan struct{}
		closing = r.closing
		grace   <-chan time.Time
		// The end of the output: the run's process closes it as it
		// exits, and its status is then read from the kernel
		// (exitingStatus) rather than waited for from the warm process,
		// which learns it only once the process is gone.
		eof   <-chan struct{}
		early bool
	)
	if canReadExit() && (r.sb == nil || run.pidsFd >= 0) {
		eof = pio.eof
	}
	defer func() {
		if pidfd >= 0 {
			_ = unix.Close(pidfd)
		}
		if run.pidsFd >= 0 {
			_ = unix.Close(run.pidsFd)
		}
	}()
	kill := func() {
		if !killSent {
			killSent = true
			w.send(forkMsg{Op: "kill", Pid: pid}, nil)
			grace = time.After(r.killGrace)
		}
	}
wait:
	for {
		select {
		case m := <-run.msgs: // "exited"
			status = syscall.WaitStatus(m.Status)
			break wait
		case <-eof:
			eof = nil
			if !killSent && pid > 0 {
				// Only a process that exited of itself is answered
				// here (one killed by a signal may have died of its
				// warm process's death, its parent-death signal, which
				// the warm process's end tells apart), and under the
				// sandbox only when nothing else of the run is left (see
				// aloneInSlot). Others are answered on the warm
				// process's word, once the rest is killed.
				if ws, ok := exitingStatus(pid, pidfd); ok && ws.Exited() &&
					(r.sb == nil || aloneInSlot(run.pidsFd, pidfd)) {
					status, early = ws, true
					break wait
				}
			}
		case <-w.dead:
			// The warm interpreter's children die with it (a parent-death
			// signal); kill what they started too. Nothing can reap the
			// group's members but init, which a pid needs to wrap around
			// for the group id to name anything else.
			if pid > 0 {
				killGroup(pid)
				if pidfd >= 0 {
					_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
				}
				// Re-parented here, the run and its group are ours to reap.
				reapGroup(pid, true, r.cfg.DrainTimeout)
			}
			pio.finish(r.cfg.DrainTimeout)
			switch {
			case runErr != nil:
				return model.Result{}, runErr
			case timedOut:
				// Killed for its timeout, by the warm interpreter's end.
				return pio.result(syscall.WaitStatus(syscall.SIGKILL), true), nil
			}
			return model.Result{}, model.Errorf(model.ErrUnavailable, "the warm interpreter died during the run: %v", w.deadErr)
		case <-grace:
			// The warm interpreter did not carry out the kill: it is stuck.
			// Ending it ends its runs (see above) and starts a new one.
			grace = nil
			r.cfg.Log.Error("the warm interpreter does not answer; killing it", "pid", w.pid)
			w.kill()
		case <-ended:
			ended = nil
			if ctx.Err() != nil {
				runErr = cancelled(ctx)
			} else {
				timedOut = true
				ctxDone = ctx.Done()
			}
			kill()
		case <-ctxDone:
			ctxDone = nil
			runErr = cancelled(ctx)
			kill()
		case <-closing:
			closing = nil
			runErr = errClosed
			kill()
		}
	}
	if early {
		// The process is exiting, not reaped: its pid still names the
		// group. What is left of it dies now, before the answer; reaping
		// it waits for the warm process's word, after the answer.
		killGroup(pid)
		r.running.Add(1)
		w.reapLater(run, pid)
		pio.finish(r.cfg.DrainTimeout)
		return pio.result(status, false), nil
	}
	// The warm interpreter killed what was left of the run's group before
	// it reaped the run's process; the group's members come here as they
	// end, this process being the subreaper of runs.
	if pid > 0 {
		reapGroup(pid, false, r.cfg.DrainTimeout)
	}
	reapStrays()
	pio.finish(r.cfg.DrainTimeout)
	return pio.result(status, timedOut), runErr
}

type forkRun struct {
	msgs chan forkMsg // its "exited"
	// pidsFd is the pids.current of the run's sandbox slot, or -1.
	pidsFd int
	// A run answered as its process exited leaves reaping what is left
	// of it to its end's message (or the warm process's end, or its
	// timer): reap does it, once, for whichever takes it (takeReap).
	reap  func(leaderToo bool)
	timer *time.Timer
}

// takeReap takes the run's reap, if it has one left; w.mu is held.
func (run *forkRun) takeReap() func(bool) {
	f := run.reap
	if f != nil {
		run.reap = nil
		run.timer.Stop()
	}
	return f
}

// aloneInSlot reports whether a run's process, exiting, is all that is
// left of the run: its sandbox slot's pids cgroup (pidsFd), which every
// process of the run is in and none can leave, counts one process, and the
// run's process (pidfd) was not reaped when it was read, so that the one is
// that process. An exiting process forks nothing more.
func aloneInSlot(pidsFd, pidfd int) bool {
	var buf [32]byte
	n, err := unix.Pread(pidsFd, buf[:], 0)
	if err != nil || n <= 0 {
		return false
	}
	if string(bytes.TrimSpace(buf[:n])) != "1" {
		return false
	}
	return unix.PidfdSendSignal(pidfd, 0, nil, 0) == nil
}

// reapLater reaps what is left of a run answered as its process exited,
// once the warm process has reaped that process (its "exited", handled
// where it comes), or died, or after the drain timeout: no goroutine waits
// for it meanwhile.
func (w *warm) reapLater(run *forkRun, pid int) {
	r := w.r
	reap := func(leaderToo bool) { r.reapRun(pid, leaderToo) }
	w.mu.Lock()
	select {
	case <-run.msgs: // its end came already
		w.mu.Unlock()
		go reap(false)
		return
	default:
	}
	if w.byPid == nil {
		// Gone: re-parented here if it was not reaped yet.
		w.mu.Unlock()
		go reap(true)
		return
	}
	run.reap = reap
	run.timer = time.AfterFunc(r.cfg.DrainTimeout, func() {
		w.mu.Lock()
		f := run.takeReap()
		w.mu.Unlock()
		if f != nil {
			f(false)
		}
	})
	w.mu.Unlock()
}

// reapRun reaps what is left of the process group pid of a run answered
// early, and strays, and ends the run's count. It returns at once when
// nothing of the group is left (the common case, in the warm process's
// read loop); otherwise the wait goes on in a goroutine of its own.
func (r *ForkRunner) reapRun(pid int, leaderToo bool) {
	if reapGroupNow(pid, leaderToo) {
		reapStrays()
		r.running.Done()
		return
	}
	go func() {
		defer r.running.Done()
		reapGroup(pid, leaderToo, r.cfg.DrainTimeout)
		reapStrays()
	}()
}
