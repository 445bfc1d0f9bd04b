package executor

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// child holds the run's ends, as plain fds (-1: closed): stdin's read
	// end, stdout's and stderr's write ends. They are closed here once the
	// child has its copies.
	child [3]int
	// childF, once childFiles made them, holds them as files instead.
	childF [3]*os.File

	// stdinW is stdin's write end while what is left of stdin does not
	// fit in the pipe (nil: it is written and closed).
	stdinW     *os.File
	outR, errR *os.File
	stdin      []byte

	stdout, stderr cappedBuffer
	readDone       chan struct{} // one value from each of the two readers
	// eof is closed once both readers have seen the end of their pipe.
	eof     chan struct{}
	reading atomic.Int32
	fed     chan struct{}

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
		eof:      make(chan struct{}),
		fed:      make(chan struct{}),
	}
	p.reading.Store(2)
	p.child = [3]int{-1, -1, -1}
	var err error
	if p.child[0], err = p.stdinPipe(); err == nil {
		if p.child[1], p.outR, err = outPipe(); err == nil {
			p.child[2], p.errR, err = outPipe()
		}
	}
	if err != nil {
		p.closeAll()
		return nil, model.Errorf(model.ErrUnavailable, "cannot create the run's pipes: %v", err)
	}
	return p, nil
}

// The child's end of each pipe is a blocking fd that the runtime's poller
// never sees (os.Pipe would register both ends with the poller, and the
// child's end would be taken off it and made blocking again before it is
// passed on: six system calls a pipe for nothing).

// stdinPipe makes stdin's pipe and writes stdin into it at once: most
// stdin fits in the new, empty pipe, whose write end is then closed and
// never meets the poller (four system calls in all). What does not fit
// is left to feed, through the poller.
func (p *procIO) stdinPipe() (int, error) {
	var fds [2]int
	flags := unix.O_CLOEXEC
	if len(p.stdin) > 0 {
		flags |= unix.O_NONBLOCK
	}
	if err := unix.Pipe2(fds[:], flags); err != nil {
		return -1, err
	}
	r, w := fds[0], fds[1]
	for len(p.stdin) > 0 {
		n, err := unix.Write(w, p.stdin)
		if n > 0 {
			p.stdin = p.stdin[n:]
		}
		if err != nil && !errors.Is(err, unix.EINTR) || n <= 0 {
			break // EAGAIN: the pipe is full
		}
	}
	if flags&unix.O_NONBLOCK != 0 {
		// The child reads it blocking, as a spawned interpreter's stdin.
		if _, err := unix.FcntlInt(uintptr(r), unix.F_SETFL, 0); err != nil {
			_ = unix.Close(r)
			_ = unix.Close(w)
			return -1, err
		}
	}
	if len(p.stdin) > 0 {
		p.stdinW = os.NewFile(uintptr(w), "|1") // non-blocking: polled
		return r, nil
	}
	_ = unix.Close(w)
	close(p.fed)
	return r, nil
}

// outPipe makes stdout's or stderr's pipe: the child's write end, and
// our read end, polled.
func outPipe() (int, *os.File, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return -1, nil, err
	}
	// The access mode is not changed by F_SETFL: this only adds O_NONBLOCK.
	if _, err := unix.FcntlInt(uintptr(fds[0]), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
		_ = unix.Close(fds[0])
		_ = unix.Close(fds[1])
		return -1, nil, err
	}
	return fds[1], os.NewFile(uintptr(fds[0]), "|0"), nil
}

// childFiles hands the child's ends over as files, which the procIO
// keeps and closes (for exec.Cmd).
func (p *procIO) childFiles() [3]*os.File {
	for i, fd := range p.child {
		if fd >= 0 {
			p.childF[i] = os.NewFile(uintptr(fd), "|child")
			p.child[i] = -1
		}
	}
	return p.childF
}

// start closes our copies of the child's ends and starts feeding stdin and
// reading stdout and stderr. Call it once the child holds its ends.
func (p *procIO) start() {
	p.closeChild()
	go p.read(p.outR, 1, &p.stdout)
	go p.read(p.errR, 2, &p.stderr)
	if p.stdinW != nil {
		go p.feed()
	}
}

// feed writes what is left of stdin, which did not fit in the pipe.
func (p *procIO) feed() {
	defer close(p.fed)
	// EPIPE (the script exited without reading) and ErrClosed (finish
	// gave up) are normal ends of a run's stdin.
	_, _ = p.stdinW.Write(p.stdin)
	_ = p.stdinW.Close()
}

// readBufs holds the output readers' buffers: two fresh ones a run were
// two thirds of all the bytes a fork-mode run allocated in the server.
var readBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (p *procIO) read(r *os.File, fd int, w *cappedBuffer) {
	b := readBufs.Get().(*[32 << 10]byte)
	defer func() {
		readBufs.Put(b)
		if p.reading.Add(-1) == 0 {
			close(p.eof)
		}
		p.readDone <- struct{}{}
	}()
	buf := b[:]
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
	if p.stdinW != nil {
		_ = p.stdinW.Close()
	}
	<-p.fed
	_ = p.outR.Close()
	_ = p.errR.Close()
}

func (p *procIO) closeChild() {
	for i, fd := range p.child {
		if fd >= 0 {
			_ = unix.Close(fd)
			p.child[i] = -1
		}
	}
	for i, f := range p.childF {
		if f != nil {
			_ = f.Close()
			p.childF[i] = nil
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

// pfExiting is the kernel's PF_EXITING, in the flags of /proc/<pid>/stat.
const pfExiting = 0x4

// exitingStatus reads the wait status of pid, a process that is not our
// child, from the kernel while it exits: once its address space is gone (or
// it is a zombie) and it is its only thread, the exit code in
// /proc/<pid>/stat is the one its parent's wait will report. pidfd, a
// pidfd of the same process, tells that the pid was not reaped (and so
// named nothing else) when it was read. It reports false when the process
// is not that far, or when the kernel would not show its exit code
// (canReadExit). A process that closed its output to exit has often not
// entered its exit yet when its readers wake (their wake-up took its
// CPU): it gets the CPU back a few times.
func exitingStatus(pid, pidfd int) (syscall.WaitStatus, bool) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	var buf [1024]byte
	for try := 0; ; try++ {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, false
		}
		n, err := unix.Read(fd, buf[:])
		_ = unix.Close(fd)
		if err != nil || n <= 0 || n == len(buf) {
			return 0, false
		}
		ws, st := parseExiting(buf[:n])
		switch {
		case st == exitKnown:
			return ws, unix.PidfdSendSignal(pidfd, 0, nil, 0) == nil
		case st == exitNotYet && try < exitTries:
			_, _, _ = unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		default:
			return 0, false
		}
	}
}

// exitTries bounds exitingStatus's waits for a process to enter its exit.
const exitTries = 8

// What parseExiting found.
const (
	exitNo     = iota // not exiting, or nothing to tell
	exitNotYet        // running, its exit not begun or not far enough
	exitKnown         // its exit code is final
)

// parseExiting is exitingStatus's reading of a /proc/<pid>/stat line.
func parseExiting(stat []byte) (syscall.WaitStatus, int) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, exitNo
	}
	// After the command, field 3 on: state, ..., flags (9), ...,
	// num_threads (20), ..., vsize (23), ..., exit_code (52).
	f := bytes.Fields(stat[i+1:])
	if len(f) < 50 || len(f[0]) != 1 {
		return 0, exitNo
	}
	num := func(b []byte) (uint64, bool) {
		v, err := strconv.ParseUint(string(b), 10, 64)
		return v, err == nil
	}
	flags, ok1 := num(f[6])
	threads, ok2 := num(f[17])
	vsize, ok3 := num(f[20])
	code, ok4 := num(f[49])
	if !ok1 || !ok2 || !ok3 || !ok4 || threads != 1 || code > 0xffff {
		return 0, exitNo
	}
	// The kernel sets the exit code before it lets go of the address space
	// (then vsize reads 0); a zombie has both done.
	state := f[0][0]
	if state == 'Z' || flags&pfExiting != 0 && vsize == 0 {
		return syscall.WaitStatus(code), exitKnown
	}
	if state == 'R' {
		return 0, exitNotYet
	}
	return 0, exitNo
}

// canReadExit reports whether /proc shows this process the exit code of
// a run's process, whichever user it runs as: with CAP_SYS_PTRACE (root's,
// normally). Without it the kernel shows 0.
var canReadExit = sync.OnceValue(func() bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_SYS_PTRACE) != 0
		}
	}
	return false
})
