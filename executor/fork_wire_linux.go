package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// controlMsgMax is the size of the largest message of the control
// protocol, in either direction: what a reader's buffer takes (the warm
// interpreter is told it). A job handed to a child that is larger travels
// in a memfd.
const controlMsgMax = 64 << 10

// forkMsg is one message of the control protocol (see forkserver.py).
type forkMsg struct {
	Op   string   `json:"op"`
	Path string   `json:"path,omitempty"`
	Dir  string   `json:"dir,omitempty"`
	Args []string `json:"args,omitempty"`
	// The same as bytes, when they are not all UTF-8 (JSON would change
	// them): the child decodes them as CPython decodes its command line.
	BPath  []byte   `json:"bpath,omitempty"`
	BDir   []byte   `json:"bdir,omitempty"`
	BArgs  [][]byte `json:"bargs,omitempty"`
	Pid    int      `json:"pid,omitempty"`
	Status int      `json:"status,omitempty"`
	Error  string   `json:"error,omitempty"`
	// Unbuffered runs the job with unbuffered stdout and stderr, as
	// PYTHONUNBUFFERED=1 does (a streamed run).
	Unbuffered bool `json:"unbuffered,omitempty"`
	// Imports are the modules a warm parent imported ("ready").
	Imports []string `json:"imports,omitempty"`
	// Memory is a warm parent's own memory once it has imported them.
	Memory int64 `json:"memory,omitempty"`
	// Ahead ("ready") is how much memory each child of the warm process
	// copies ahead when told (aheadMsg): what the warm interpreter found a
	// run writes, which its warm parents keep.
	Ahead int64 `json:"ahead,omitempty"`
	// Unseen ("ready", with the sandbox on) are the modules the warm
	// interpreter had loaded before the fork server's code ran that the
	// runs' view would find elsewhere, or not at all.
	Unseen []string `json:"unseen,omitempty"`
	// N ("fork") is how many children to fork.
	N int `json:"n,omitempty"`
	// Fid is the run's folder's device and inode, as found here, in a job
	// handed to a child in a sandbox slot: the slot has the folder in
	// place if it put that very folder there.
	Fid []uint64 `json:"fid,omitempty"`
	fd  int      // a pidfd that came with a warm parent's "forked"
	fds []int    // every fd that came ("idle": the child's channel, a pidfd, its slot's pids.current)
}

// read reads one message, with the pidfd it may carry.
func (w *warm) read() (forkMsg, error) {
	if w.rbuf == nil {
		w.rbuf, w.oob = make([]byte, controlMsgMax), make([]byte, unix.CmsgSpace(8*4))
	}
	buf, oob := w.rbuf, w.oob
	n, oobn, _, _, err := w.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return forkMsg{}, err
	}
	if n == 0 && oobn == 0 {
		return forkMsg{}, io.EOF
	}
	m := forkMsg{fd: -1}
	var fds []int
	if oobn > 0 {
		scms, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr == nil {
			for _, scm := range scms {
				if got, err := unix.ParseUnixRights(&scm); err == nil {
					fds = append(fds, got...)
				}
			}
		}
	}
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		closeFds(fds)
		return forkMsg{}, fmt.Errorf("bad message from the warm interpreter: %w", err)
	}
	if len(fds) > 0 {
		m.fd = fds[0]
		if m.Op == "idle" {
			m.fds = fds
		} else {
			closeFds(fds[1:])
		}
	}
	return m, nil
}

func (w *warm) readLoop() {
	var err error
	for {
		var m forkMsg
		if m, err = w.read(); err != nil {
			break
		}
		w.handle(m)
	}
	w.mu.Lock()
	w.deadErr = err
	if errors.Is(err, io.EOF) {
		w.deadErr = errWarmDead
	}
	close(w.dead)
	var reaps []func(bool)
	for _, run := range w.byPid {
		if f := run.takeReap(); f != nil {
			reaps = append(reaps, f)
		}
	}
	w.byPid = nil
	for _, c := range w.idle {
		c.close()
	}
	w.idle = nil
	w.mu.Unlock()
	// The runs answered as their process exited, and not reaped yet, are
	// re-parented here.
	for _, f := range reaps {
		go f(true)
	}
	_ = w.conn.Close()
	// Reap it now: it may be exiting, or be alive but unable to talk.
	select {
	case <-w.exited:
	case <-time.After(time.Second):
		w.kill()
	}
	if w.parent {
		w.r.parentDied(w)
		return
	}
	w.r.died(w)
}

// jobMsg is the job as the child reads it.
func jobMsg(job Job) forkMsg {
	msg := forkMsg{Op: "run", Path: job.Path, Dir: filepath.Dir(job.Path), Args: job.Args}
	if !allUTF8(job) {
		msg = forkMsg{Op: "run", BPath: []byte(msg.Path), BDir: []byte(msg.Dir)}
		for _, a := range job.Args {
			msg.BArgs = append(msg.BArgs, []byte(a))
		}
	}
	msg.Unbuffered = job.Output != nil
	return msg
}

func allUTF8(job Job) bool {
	if !utf8.ValidString(job.Path) {
		return false
	}
	for _, a := range job.Args {
		if !utf8.ValidString(a) {
			return false
		}
	}
	return true
}

func bigJob(body []byte) (int, error) {
	fd, err := unix.MemfdCreate("scripthost-job", unix.MFD_CLOEXEC)
	if err != nil {
		return -1, err
	}
	for rest := body; len(rest) > 0; {
		n, err := unix.Write(fd, rest)
		if err != nil {
			_ = unix.Close(fd)
			return -1, err
		}
		rest = rest[n:]
	}
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (w *warm) send(m forkMsg, fds []int) {
	body, _ := json.Marshal(m)
	if err := w.sendRaw(body, fds); err != nil && !w.isDead() {
		w.r.cfg.Log.Error("writing to the warm interpreter", "err", err)
	}
}

func (w *warm) sendRaw(body []byte, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_, _, err := w.conn.WriteMsgUnix(body, oob, nil)
	return err
}

func closeFds(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}

// Hand-over: the warm process (the warm interpreter or a warm
// parent) forks its children ahead, in bursts, and passes each to Go
// ("idle": its pid, its channel and a pidfd of it); a run takes one and
// sends it its job and its stdio itself. The warm process does nothing for
// a run but fork, reap and report the end ("exited", by pid): each of its
// writes to memory after a fork is a page the kernel copies, and its work
// is on every run's way. Under the sandbox each child is forked into a
// free slot of its own, which is the child's until its end; "idle" then
// also carries the slot's pids.current (when it has a pids cgroup), and
// the end comes once the slot is empty (see forkserver.py's clean_slot).

// Children forked ahead, per warm process: up to idleMax, asked for once
// fewer than idleLow wait or are coming.
const (
	idleMax = 4
	idleLow = 2
)

// idleChild is a child waiting for its job, with its channel and a pidfd
// (and its sandbox slot's pids.current, or -1).
type idleChild struct {
	pid, chanFd, pidfd, pidsFd int
	// told: the child was told to copy ahead (nudgeLocked).
	told bool
}

func (c idleChild) close() {
	_ = unix.Close(c.chanFd)
	_ = unix.Close(c.pidfd)
	if c.pidsFd >= 0 {
		_ = unix.Close(c.pidsFd)
	}
}

// aheadMsg tells a child waiting for its job to copy ahead the pages a
// run writes (see forkserver.py's _copy_ahead).
var aheadMsg = []byte(`{"op":"ahead"}`)

// nudgeLocked tells the next child in line to copy ahead what its run will
// write (as a run has handed its job to a child, or a child comes), while
// this process's runs leave half the CPUs (GOMAXPROCS, which follows a
// cgroup's CPU quota) or more idle: its
// copying is then off every run's path. Under more load it would take CPU
// from the runs, and the child copies as it goes instead. w.mu is held:
// a waiting child's channel is closed only as it leaves w.idle, under w.mu.
func (w *warm) nudgeLocked() {
	if w.byPid == nil || len(w.idle) == 0 || w.idle[0].told || int(w.r.inRun.Load())*2 > runtime.GOMAXPROCS(0) {
		return
	}
	w.idle[0].told = true
	_ = unix.Sendmsg(w.idle[0].chanFd, aheadMsg, nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
}

// handOver sets w up for the hand-over of jobs, once it is ready, and
// asks for its first children.
func (w *warm) handOver() {
	w.mu.Lock()
	w.byPid, w.idleCh = map[int]*forkRun{}, make(chan struct{})
	n := w.refillLocked()
	w.mu.Unlock()
	w.askFork(n)
}

// refillLocked counts the children to ask for; w.mu is held.
func (w *warm) refillLocked() int {
	have := len(w.idle) + w.forking
	if have >= idleLow || w.byPid == nil {
		return 0
	}
	w.forking += idleMax - have
	w.forkErr = ""
	return idleMax - have
}

func (w *warm) askFork(n int) {
	if n > 0 {
		w.sendRaw(fmt.Appendf(nil, `{"op":"fork","n":%d}`, n), nil)
	}
}

// handle handles a message of the warm process once it is ready.
func (w *warm) handle(m forkMsg) {
	switch m.Op {
	case "idle":
		if len(m.fds) != 2 && len(m.fds) != 3 {
			w.lostChild(m)
			return
		}
		c := idleChild{pid: m.Pid, chanFd: m.fds[0], pidfd: m.fds[1], pidsFd: -1}
		if len(m.fds) == 3 {
			c.pidsFd = m.fds[2]
		}
		w.mu.Lock()
		if w.byPid == nil {
			w.mu.Unlock()
			c.close()
			return
		}
		w.forking = max(w.forking-1, 0)
		w.idle = append(w.idle, c)
		w.nudgeLocked()
		close(w.idleCh)
		w.idleCh = make(chan struct{})
		w.mu.Unlock()
	case "forkfailed":
		// N of the children asked for will not come: a burst cut short
		// (all of them when N is not said).
		w.mu.Lock()
		if m.N > 0 {
			w.forking = max(w.forking-m.N, 0)
		} else {
			w.forking = 0
		}
		w.forkErr = m.Error
		close(w.idleCh)
		w.idleCh = make(chan struct{})
		w.mu.Unlock()
	case "exited":
		w.mu.Lock()
		run := w.byPid[m.Pid]
		delete(w.byPid, m.Pid)
		for i, c := range w.idle {
			if c.pid == m.Pid { // died waiting (killed from outside)
				c.close()
				w.idle = append(w.idle[:i], w.idle[i+1:]...)
				break
			}
		}
		var reap func(bool)
		if run != nil {
			if reap = run.takeReap(); reap == nil {
				select {
				case run.msgs <- m: // a run gets one
				default:
				}
			}
		}
		w.mu.Unlock()
		if reap != nil {
			reap(false)
		}
	default:
		if m.fd >= 0 {
			_ = unix.Close(m.fd)
		}
	}
}

// lostChild handles a child announced without its descriptors (the kernel
// drops those it cannot install here, at the open files limit): it will
// not come, as with "forkfailed", and it is killed (in a sandbox slot, the
// warm process holds its channel too: it would wait there for ever).
func (w *warm) lostChild(m forkMsg) {
	closeFds(m.fds)
	why := fmt.Sprintf("a child of the warm process came with %d descriptors, not 2 or 3 (at the open files limit?)", len(m.fds))
	w.r.cfg.Log.Error("lost a child of the warm process", "pid", m.Pid, "fds", len(m.fds), "err", why)
	w.mu.Lock()
	if w.byPid != nil {
		w.forking = max(w.forking-1, 0)
		w.forkErr = why
		close(w.idleCh)
		w.idleCh = make(chan struct{})
	}
	w.mu.Unlock()
	if m.Pid > 0 {
		w.send(forkMsg{Op: "kill", Pid: m.Pid}, nil)
	}
}

// takeIdle takes a waiting child for run, waiting for one if none is,
// and counts the children to ask for once the job is out (askFork): the
// warm process's forks then do not go ahead of the run's start.
func (w *warm) takeIdle(ctx context.Context, run *forkRun) (idleChild, int, error) {
	for {
		w.mu.Lock()
		if w.byPid == nil {
			w.mu.Unlock()
			return idleChild{}, 0, errWarmDead
		}
		if len(w.idle) > 0 {
			c := w.idle[0]
			w.idle = w.idle[1:]
			w.byPid[c.pid] = run
			n := w.refillLocked()
			w.mu.Unlock()
			return c, n, nil
		}
		if w.forkErr != "" && w.forking == 0 {
			err := errors.New(w.forkErr)
			w.forkErr = ""
			w.mu.Unlock()
			return idleChild{}, 0, err
		}
		n := w.refillLocked()
		ch := w.idleCh
		w.mu.Unlock()
		w.askFork(n)
		select {
		case <-ch:
		case <-w.dead:
			return idleChild{}, 0, errWarmDead
		case <-ctx.Done():
			return idleChild{}, 0, cancelled(ctx)
		}
	}
}

// start hands job to a waiting child, with the child's ends of pio (dir:
// the job's folder, as Run found it): its
// pid and pidfd, which the run closes (and its slot's pids.current, in
// run.pidsFd). The warm process never sees the job: no job's arguments
// ever sit in its memory, which later children inherit.
func (w *warm) start(ctx context.Context, run *forkRun, job Job, dir os.FileInfo, pio *procIO) (int, int, error) {
	msg := jobMsg(job)
	if st, ok := dir.Sys().(*syscall.Stat_t); ok && w.r.sb != nil {
		msg.Fid = []uint64{uint64(st.Dev), st.Ino}
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return 0, -1, err
	}
	fds := []int{pio.child[0], pio.child[1], pio.child[2]}
	if len(body) > controlMsgMax {
		memfd, err := bigJob(body)
		if err != nil {
			return 0, -1, err
		}
		defer unix.Close(memfd)
		fds, body = append(fds, memfd), []byte("{}")
	}
	oob := unix.UnixRights(fds...)
	for {
		c, n, err := w.takeIdle(ctx, run)
		if err != nil {
			return 0, -1, err
		}
		err = unix.Sendmsg(c.chanFd, body, oob, nil, 0)
		_ = unix.Close(c.chanFd)
		// The next child copies ahead once this one has its job (told
		// before, it took the CPU this one wakes on: the job's wait for
		// the child was twice as long, ~150 us against ~80).
		w.mu.Lock()
		w.nudgeLocked()
		w.mu.Unlock()
		w.askFork(n)
		if err == nil {
			run.pidsFd = c.pidsFd
			return c.pid, c.pidfd, nil
		}
		// It died waiting: its end comes, or came, and is nobody's now.
		_ = unix.Close(c.pidfd)
		if c.pidsFd >= 0 {
			_ = unix.Close(c.pidsFd)
		}
		w.mu.Lock()
		if w.byPid != nil {
			delete(w.byPid, c.pid)
		}
		w.mu.Unlock()
		select {
		case <-run.msgs:
		default:
		}
	}
}
