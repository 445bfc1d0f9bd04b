package executor

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scripthost/scripthost/model"
)

// cappedBuffer keeps the first max bytes written to it and drops the rest,
// so that a script's output is always drained and never held in full.
type cappedBuffer struct {
	buf       []byte
	max       int
	truncated bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	room := c.max - len(c.buf)
	if len(p) > room {
		c.truncated = true
		p = p[:max(room, 0)]
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// procIO is the three pipes of one run, whichever way its process starts:
// the child's ends become its fds 0, 1 and 2; ours are fed and read
// concurrently, so a script that never reads its stdin or fills stderr
// first cannot stall the run.
type procIO struct {
	// child holds the run's ends: stdin's read end, stdout's and stderr's
	// write ends. They are closed here once the child has its copies.
	child [3]*os.File

	stdinW     *os.File
	outR, errR *os.File
	stdin      []byte

	stdout, stderr cappedBuffer
	readDone       chan struct{} // one value from each of the two readers
	fed            chan struct{}

	// out, when not nil, is told of each piece of output kept.
	out   Output
	outMu sync.Mutex
}

func newProcIO(stdin []byte, maxOutput int, out Output) (*procIO, error) {
	p := &procIO{
		out:      out,
		stdin:    stdin,
		stdout:   cappedBuffer{max: maxOutput},
		stderr:   cappedBuffer{max: maxOutput},
		readDone: make(chan struct{}, 2),
		fed:      make(chan struct{}),
	}
	var err error
	if p.child[0], p.stdinW, err = runPipe(false); err != nil {
		return nil, model.Errorf(model.ErrUnavailable, "cannot create the run's pipes: %v", err)
	}
	if p.child[1], p.outR, err = runPipe(true); err != nil {
		p.closeAll()
		return nil, model.Errorf(model.ErrUnavailable, "cannot create the run's pipes: %v", err)
	}
	if p.child[2], p.errR, err = runPipe(true); err != nil {
		p.closeAll()
		return nil, model.Errorf(model.ErrUnavailable, "cannot create the run's pipes: %v", err)
	}
	return p, nil
}

// runPipe makes one of a run's pipes: the child's end (its stdin's read
// end, or its stdout's or stderr's write end when childWrites) as a
// blocking file that the runtime's poller never sees, and ours, which it
// does. (os.Pipe would register both ends with the poller, and the
// child's end would be taken off it and made blocking again before it is
// passed on: six system calls a pipe for nothing.)
func runPipe(childWrites bool) (child, ours *os.File, err error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, err
	}
	c, o := fds[0], fds[1]
	if childWrites {
		c, o = o, c
	}
	// The access mode is not changed by F_SETFL: this only adds O_NONBLOCK.
	if _, err := unix.FcntlInt(uintptr(o), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
		_ = unix.Close(c)
		_ = unix.Close(o)
		return nil, nil, err
	}
	return os.NewFile(uintptr(c), "|0"), os.NewFile(uintptr(o), "|1"), nil
}

// start closes our copies of the child's ends and starts feeding stdin and
// reading stdout and stderr. Call it once the child holds its ends.
func (p *procIO) start() {
	p.closeChild()
	go p.read(p.outR, 1, &p.stdout)
	go p.read(p.errR, 2, &p.stderr)
	// Most stdin fits in the new, empty pipe: written here at once, it
	// needs no goroutine of its own.
	if p.writeNow() {
		_ = p.stdinW.Close()
		close(p.fed)
		return
	}
	go p.feed()
}

// writeNow writes as much of stdin as the pipe takes without waiting,
// and reports whether that was all of it (or the child is gone already).
func (p *procIO) writeNow() bool {
	if len(p.stdin) == 0 {
		return true
	}
	rc, err := p.stdinW.SyscallConn()
	if err != nil {
		return false
	}
	done := false
	_ = rc.Write(func(fd uintptr) bool {
		n, err := unix.Write(int(fd), p.stdin)
		if n > 0 {
			p.stdin = p.stdin[n:]
		}
		// EPIPE: the script exited without reading, a normal end.
		done = len(p.stdin) == 0 || err != nil && !errors.Is(err, unix.EAGAIN)
		return true // one try: what is left goes to feed
	})
	return done
}

func (p *procIO) feed() {
	defer close(p.fed)
	if len(p.stdin) > 0 {
		// EPIPE (the script exited without reading) and ErrClosed (finish
		// gave up) are normal ends of a run's stdin.
		_, _ = p.stdinW.Write(p.stdin)
	}
	_ = p.stdinW.Close()
}

func (p *procIO) read(r *os.File, fd int, w *cappedBuffer) {
	defer func() { p.readDone <- struct{}{} }()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			kept, _ := w.Write(buf[:n])
			if p.out != nil && kept > 0 {
				p.outMu.Lock()
				p.out.Chunk(fd, buf[:kept])
				p.outMu.Unlock()
			}
		}
		if err != nil {
			return
		}
	}
}

// finish waits for the output to end, after the run's process group is
// gone. Processes that escaped the group may hold the pipes: after delay
// the pipes are closed under them.
func (p *procIO) finish(delay time.Duration) {
	t := time.NewTimer(delay)
	for range 2 {
		select {
		case <-p.readDone:
		case <-t.C:
			_ = p.outR.Close()
			_ = p.errR.Close()
			<-p.readDone
		}
	}
	t.Stop()
	_ = p.stdinW.Close()
	<-p.fed
	_ = p.outR.Close()
	_ = p.errR.Close()
}

func (p *procIO) closeChild() {
	for _, f := range p.child {
		if f != nil {
			_ = f.Close()
		}
	}
}

// closeAll releases every pipe of a run that never started.
func (p *procIO) closeAll() {
	p.closeChild()
	for _, f := range []*os.File{p.stdinW, p.outR, p.errR} {
		if f != nil {
			_ = f.Close()
		}
	}
}

// result is the run's output with its end as a wait status reports it.
func (p *procIO) result(ws syscall.WaitStatus, timedOut bool) model.Result {
	res := model.Result{
		Stdout:          string(p.stdout.buf),
		Stderr:          string(p.stderr.buf),
		TimedOut:        timedOut,
		StdoutTruncated: p.stdout.truncated,
		StderrTruncated: p.stderr.truncated,
	}
	switch {
	case ws.Signaled():
		res.Signal = signalName(ws.Signal())
	default:
		code := ws.ExitStatus()
		res.ExitCode = &code
	}
	return res
}

func signalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return "SIG" + sig.String()
}

// killGroup kills the process group led by pid. Call it only while the
// leader is not reaped: until then its pid, and so the group id, cannot
// name anything else.
func killGroup(pid int) {
	_ = unix.Kill(-pid, unix.SIGKILL) // ESRCH: the group is already gone
}

// waitExited blocks until the child pid has exited, without reaping it.
func waitExited(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
