package executor

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scripthost/scripthost/model"
)

// forkserverSource is the warm interpreter's program; see its header for
// the protocol and for how a child comes to run frameless.
//
//go:embed forkserver.py
var forkserverSource string

// forkBootstrap runs the fork server under a module name of its own, so
// that nothing of it is __main__ and its warnings are not __main__'s. It
// notes what the interpreter loaded at its start (the modules and the path
// importer cache a script finds in a fresh interpreter) before importing
// anything, then the garbage collector's counts there (a child starts its
// script with them), and copies its thread state as a main module's top
// level has it (the fork server measures the recursion depth its children
// must start at) before starting the server. The three sources come in fd 4
// (see sourcesFile) and take their places in sys.argv.
const forkBootstrap = `import sys
_m = type(sys)("_scripthost_forkserver")
_m._STARTUP = (list(sys.modules), dict(sys.path_importer_cache), list(sys.path))
_m._GC_AT_TOP = __import__("gc").get_count()
with open(4, "rb") as _m._sources:
    sys.argv[1], sys.argv[5], sys.argv[9] = _m._sources.read().decode().split("\0")
exec(compile(sys.argv[1], "<scripthost forkserver>", "exec"), _m.__dict__)
_m._TSTATE_AT_TOP = (_m.ctypes.c_char * 256).from_address(_m._tstate_get()).raw
_m._main()
`

// warmStartTimeout bounds the start of a warm interpreter, preloads
// included.
const warmStartTimeout = 60 * time.Second

// defaultKillGrace bounds the wait for a run the warm interpreter was
// asked to kill; past it the warm interpreter is deemed stuck and killed.
const defaultKillGrace = 5 * time.Second

// ForkRunner runs every job in a child forked from a warm interpreter that
// has already imported the common standard library (and the preload
// modules): same results as SpawnRunner, at a fraction of the cost. Each
// run is still its own process, in its own process group, that exits when
// the run ends; the warm interpreter keeps a few children forked ahead,
// waiting for the next jobs, which (without the sandbox) are handed to
// them from here.
//
// What a script can tell from a fresh interpreter, and why it is
// acceptable:
//   - the hash seed is the same for all runs of one warm interpreter, so
//     the iteration order of sets of strings repeats between runs instead
//     of varying (nothing may rely on either; PYTHONHASHSEED pins it in
//     both modes);
//   - sys.modules already holds the preloaded modules (importing them
//     costs nothing; their import-time side effects happened once, in the
//     warm interpreter) and two entries of ours that end the run quickly;
//     the warm interpreter's objects are frozen for the garbage collector,
//     whose counts a script finds as at the top of `python -c` (the same
//     in every run to a few objects; the youngest a few dozen above a
//     script's top in a fresh interpreter, so its first automatic
//     collection comes that many allocations earlier);
//   - at exit, the preloaded modules are not torn down: an object a script
//     parks inside a preloaded module is not finalized (objects of
//     __main__ and of modules the script itself loaded are);
//   - os.getppid() is the warm interpreter, not the server;
//   - preloaded modules that start threads at import lose them in the
//     child (threads do not survive fork), and descriptors they hold are
//     closed in the child.
type ForkRunner struct {
	cfg       RunnerConfig
	preload   []string
	sb        *sandbox // nil: runs are not sandboxed
	killGrace time.Duration

	parents parents

	mu       sync.Mutex
	cur      *warm
	starting chan struct{} // closed when the start in progress ends
	startErr error
	closed   bool
	closing  chan struct{}
	running  sync.WaitGroup
	// inRun counts the runs between their start and their answer.
	inRun atomic.Int32
}

var _ Runner = (*ForkRunner)(nil)

// NewForkRunner starts the warm interpreter, which imports preload (module
// names, as for --preload) after the standard library; it fails if one of
// them cannot be imported.
func NewForkRunner(cfg RunnerConfig, preload []string) (*ForkRunner, error) {
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
	r := &ForkRunner{cfg: cfg, sb: sb, preload: preload, killGrace: defaultKillGrace, closing: make(chan struct{})}
	r.parents.cfg = cfg.WarmParents.withDefaults()
	r.parents.byPath = map[string]*parent{}
	w, err := r.launch()
	if err != nil {
		sb.close()
		return nil, err
	}
	r.cur = w
	if r.parents.cfg.enabled() {
		go r.janitor()
	}
	return r, nil
}

// Close kills the runs in progress, waits for them, and stops the warm
// interpreter. Later runs fail with an error wrapping model.ErrUnavailable.
func (r *ForkRunner) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.closing)
	starting := r.starting
	r.mu.Unlock()
	if starting != nil {
		<-starting
	}
	done := make(chan struct{})
	go func() {
		r.running.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		// The warm interpreter does not answer: stopping it ends the runs.
	}
	r.closeParents()
	r.mu.Lock()
	w := r.cur
	r.cur = nil
	r.mu.Unlock()
	if w != nil {
		w.stop()
	}
	<-done
	r.sb.close()
	return nil
}

// warm returns the live warm interpreter, starting one if needed.
func (r *ForkRunner) warm(ctx context.Context) (*warm, error) {
	for tries := 0; ; tries++ {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, errClosed
		}
		if w := r.cur; w != nil && !w.isDead() {
			r.mu.Unlock()
			return w, nil
		}
		if tries > 0 && r.starting == nil && r.startErr != nil {
			err := r.startErr
			r.mu.Unlock()
			return nil, model.Errorf(model.ErrUnavailable, "cannot start the warm interpreter: %v", err)
		}
		ch := r.restartLocked()
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, cancelled(ctx)
		}
	}
}

// restartLocked starts a warm interpreter unless one is starting; it
// returns a channel closed when that start ends. r.mu is held.
func (r *ForkRunner) restartLocked() chan struct{} {
	if r.starting != nil {
		return r.starting
	}
	ch := make(chan struct{})
	r.starting = ch
	go func() {
		w, err := r.launch()
		r.mu.Lock()
		if r.closed && w != nil {
			w.stop()
			w = nil
		}
		r.cur, r.startErr, r.starting = w, err, nil
		r.mu.Unlock()
		if err != nil {
			r.cfg.Log.Error("cannot start the warm interpreter", "err", err)
		}
		close(ch)
	}()
	return ch
}

// died is called once a warm interpreter is gone: the next one starts
// now, so that the next run does not wait for it.
func (r *ForkRunner) died(w *warm) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != w || r.closed {
		return
	}
	r.cur = nil
	r.cfg.Log.Warn("the warm interpreter died; restarting it", "pid", w.pid, "err", w.deadErr)
	r.restartLocked()
}

var errWarmDead = errors.New("the warm interpreter is gone")

// warm is one warm interpreter process, or one warm parent, and its
// control connection.
type warm struct {
	r    *ForkRunner
	cmd  *exec.Cmd // nil for a warm parent
	conn *net.UnixConn
	pid  int

	// A warm parent's: a pidfd of it (-1 once it ended) and what it
	// imported.
	parent  bool
	pidfd   int
	imports []string
	memory  int64 // its own memory when it was ready
	ahead   int64 // what its children copy ahead when told ("ready")

	mu      sync.Mutex
	dead    chan struct{} // closed when the connection ends
	deadErr error
	exited  chan struct{} // closed once the process is reaped

	// Once it is ready, the runs' children are handed their jobs from
	// here (see fork_wire_linux.go): the children waiting for one, those
	// asked for, and the runs by their child's pid.
	idle    []idleChild
	forking int
	forkErr string
	idleCh  chan struct{} // closed, and replaced, when a child comes or a fork fails
	byPid   map[int]*forkRun

	// Buffers of read, which one goroutine at a time calls.
	rbuf, oob []byte
}

// args is the warm interpreter's command line: the bootstrap runs the
// fork server, whose arguments are, in order, its own source, its control
// socket's fd, the preloads, its options, confine.py's source, the runs'
// confinement (confine.py's two words), and the sandbox's config and
// source (both empty without the sandbox). The sources are empty here: the
// bootstrap reads them from sourcesFile.
func (r *ForkRunner) args(preload, options string) []string {
	args := []string{r.cfg.Python, "-c", forkBootstrap, "", "3", preload, options, ""}
	args = append(args, r.cfg.runConfinement(r.sb).args()...)
	return append(args, r.sb.forkArgs()...)
}

// sourcesFile is a memfd holding the warm interpreter's three sources
// (forkserver.py's, confine.py's and sandbox.py's, or "" without the
// sandbox), NUL-separated: its fd 4. In its command line they would stay
// in its memory for good, four times over (the arguments on its stack and
// the interpreter's wide-character copies of them: ~1.4 MiB for
// forkserver.py alone), in the page tables that every fork copies and
// every run's exit tears down.
func (r *ForkRunner) sourcesFile() (*os.File, error) {
	fd, err := unix.MemfdCreate("scripthost-forkserver", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "forkserver-sources")
	sandbox := ""
	if r.sb != nil {
		sandbox = sandboxSource
	}
	// At offset 0, leaving the file's offset there for the reader.
	if _, err := f.WriteAt([]byte(forkserverSource+"\x00"+confineSource+"\x00"+sandbox), 0); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// launch starts a warm interpreter and waits until it is ready.
func (r *ForkRunner) launch() (*warm, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, model.Errorf(model.ErrUnavailable, "cannot create the control socket: %v", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "forkserver-control")
	theirs := os.NewFile(uintptr(fds[1]), "forkserver-control")
	fc, err := net.FileConn(ours)
	_ = ours.Close()
	if err != nil {
		_ = theirs.Close()
		return nil, model.Errorf(model.ErrUnavailable, "control socket: %v", err)
	}
	conn := fc.(*net.UnixConn)

	preload, _ := json.Marshal(append([]string{}, r.preload...))
	// With warm parents, the warm interpreter stays small: the standard
	// library a script imports goes to its own warm parent.
	options, _ := json.Marshal(map[string]any{"stdlib": !r.parents.cfg.enabled(), "msg_max": controlMsgMax})
	sources, err := r.sourcesFile()
	if err != nil {
		_ = conn.Close()
		_ = theirs.Close()
		return nil, model.Errorf(model.ErrUnavailable, "cannot hand the warm interpreter its sources: %v", err)
	}
	logw := &lineLogger{log: r.cfg.Log}
	cmd := &exec.Cmd{
		Path:       r.cfg.Python,
		Args:       r.args(string(preload), string(options)),
		Dir:        "/",
		Env:        r.cfg.Env,
		Stdout:     logw,
		Stderr:     logw,
		ExtraFiles: []*os.File{theirs, sources},
		// Its own group: a signal meant for the server's group (a ^C in a
		// terminal) must not hit the warm interpreter and its runs.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
		WaitDelay:   time.Second,
	}
	err = cmd.Start()
	// Only the warm interpreter may hold its end: its exit must end the
	// connection.
	_ = theirs.Close()
	_ = sources.Close()
	if err != nil {
		_ = conn.Close()
		return nil, model.Errorf(model.ErrUnavailable, "cannot start the warm interpreter: %v", err)
	}
	w := &warm{
		r: r, cmd: cmd, conn: conn, pid: cmd.Process.Pid, pidfd: -1,
		dead:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	go func() {
		err := cmd.Wait()
		r.cfg.Log.Debug("warm interpreter exited", "pid", w.pid, "status", err)
		close(w.exited)
	}()

	_ = conn.SetReadDeadline(time.Now().Add(warmStartTimeout))
	m, err := w.read()
	_ = conn.SetReadDeadline(time.Time{})
	if err == nil && m.Op != "ready" {
		err = errors.New(m.Error)
		if m.Op != "fatal" {
			err = fmt.Errorf("unexpected message %q", m.Op)
		}
	}
	if err != nil {
		w.stop()
		if tail := logw.tail(); tail != "" {
			err = fmt.Errorf("%w; it wrote: %s", err, tail)
		}
		return nil, model.Errorf(model.ErrUnavailable, "the warm interpreter did not start: %v", err)
	}
	w.ahead = m.Ahead
	r.cfg.Log.Info("warm interpreter ready", "pid", w.pid, "python", r.cfg.Python, "preload", r.preload, "copied_ahead", m.Ahead)
	if len(m.Unseen) > 0 {
		r.cfg.Log.Warn("the interpreter loaded modules at its start from where the sandboxed runs cannot see them (a PYTHONPATH folder under /tmp, say): fork-mode runs have them all the same, spawn-mode runs do not", "modules", m.Unseen)
	}
	w.handOver()
	go w.readLoop()
	return w, nil
}

func (w *warm) isDead() bool {
	select {
	case <-w.dead:
		return true
	default:
		return false
	}
}

// stop ends the warm interpreter: at the end of its control connection it
// kills its runs and exits; one that does not is killed.
func (w *warm) stop() {
	_ = w.conn.CloseWrite()
	select {
	case <-w.exited:
	case <-time.After(5 * time.Second):
		w.kill()
		<-w.exited
	}
	_ = w.conn.Close()
}

// lineLogger logs what the warm interpreter writes, one record a line,
// and keeps the last lines for the error of a failed start.
type lineLogger struct {
	log  *slog.Logger
	mu   sync.Mutex
	buf  []byte
	last []string
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 && len(l.buf) < 4096 {
			break
		}
		if i < 0 {
			i = len(l.buf)
		}
		line := string(l.buf[:i])
		l.buf = l.buf[min(i+1, len(l.buf)):]
		l.log.Warn("warm interpreter", "output", line)
		if l.last = append(l.last, line); len(l.last) > 8 {
			l.last = l.last[1:]
		}
	}
	return len(p), nil
}

func (l *lineLogger) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(append(l.last, string(l.buf)), "\n")
}
