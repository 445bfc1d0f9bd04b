package executor

import (
	"bytes"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Confinement: what a run may use (Limits' resource limits) and who it
// runs as (RunnerConfig.RunAs). The rule is confine.py's: the limits, then
// the user (then, under the sandbox, no way back to privileges), before
// the first instruction of the script. Go only gives it its parameters (a
// confinement), in every mode:
//   - fork mode: the forked child enters the folder, opens the script and
//     confines itself (forkserver.py, with confine.py);
//   - spawn mode, another user or the sandbox: confine.py is the run's
//     trampoline, run as the server; it confines itself and executes the
//     run's command line (under the sandbox as the child of the run's init,
//     sandbox.py);
//   - spawn mode, same user: there is nothing to change but the limits,
//     and they are set from here, with no interpreter started for them:
//     the interpreter starts traced, so the kernel stops it at its exec;
//     the limits are set on it with prlimit(2) and it goes on untraced.
// What is left of a run once it ends is reaped here, in both modes
// (reapGroup, reapStrays): SetupProcess made this process the subreaper of
// every run's orphans. Under the sandbox (sandbox_linux.go), the process
// limit is the run's pids cgroup rather than RLIMIT_NPROC, and whatever a
// run leaves dies with its pid namespace.

//go:embed confine.py
var confineSource string

// rlimit is one resource limit of a run.
type rlimit struct {
	// name is for messages: "RLIMIT_AS".
	name       string
	resource   int
	soft, hard uint64
}

// rlimits are the resource limits the run's processes get; a zero limit
// is not set (the run keeps the server's). None is higher than this
// process's own hard limit, which every run inherits: limits only
// restrict. Whoever sets them (setRlimits, confine.py) sets them as they
// are here.
func (l Limits) rlimits() []rlimit {
	var out []rlimit
	if l.MaxMemory > 0 {
		n := uint64(l.MaxMemory)
		out = append(out, rlimit{"RLIMIT_AS", unix.RLIMIT_AS, n, n})
	}
	if l.MaxCPU > 0 {
		// Whole seconds, rounded up. SIGXCPU at the soft limit (it ends
		// a process that does not handle it); SIGKILL a second later.
		secs := uint64(math.Ceil(l.MaxCPU.Seconds()))
		out = append(out, rlimit{"RLIMIT_CPU", unix.RLIMIT_CPU, secs, secs + 1})
	}
	if l.MaxProcs > 0 {
		n := uint64(l.MaxProcs)
		out = append(out, rlimit{"RLIMIT_NPROC", unix.RLIMIT_NPROC, n, n})
	}
	if l.MaxOpenFiles > 0 {
		n := uint64(l.MaxOpenFiles)
		out = append(out, rlimit{"RLIMIT_NOFILE", unix.RLIMIT_NOFILE, n, n})
	}
	for i, lim := range out {
		var cur unix.Rlimit
		if err := unix.Getrlimit(lim.resource, &cur); err == nil && cur.Max != unix.RLIM_INFINITY && lim.hard > cur.Max {
			out[i].hard = cur.Max
			out[i].soft = min(lim.soft, cur.Max)
		}
	}
	return out
}

// setRlimits sets lims (rlimits') on the process pid.
func setRlimits(pid int, lims []rlimit) error {
	for _, l := range lims {
		if err := unix.Prlimit(pid, l.resource, &unix.Rlimit{Cur: l.soft, Max: l.hard}, nil); err != nil {
			return fmt.Errorf("prlimit %s: %w", l.name, err)
		}
	}
	return nil
}

// confinement is what a run's processes take on as they start: their
// limits (rlimits'), then their user (nil: the server's).
type confinement struct {
	limits []rlimit
	cred   *Credential
}

// args are the confinement as confine.py reads it: the limits
// ("resource:soft:hard,...") and the user ("uid:gid:group,group,..."),
// either empty for none. Plain words rather than JSON: a trampoline that
// imported json would cost each spawned run more than all the rest of it.
func (c confinement) args() []string {
	lims := make([]string, 0, len(c.limits))
	for _, l := range c.limits {
		lims = append(lims, fmt.Sprintf("%d:%d:%d", l.resource, l.soft, l.hard))
	}
	user := ""
	if c.cred != nil {
		groups := make([]string, 0, len(c.cred.Groups))
		for _, g := range c.cred.Groups {
			groups = append(groups, strconv.FormatUint(uint64(g), 10))
		}
		user = fmt.Sprintf("%d:%d:%s", c.cred.Uid, c.cred.Gid, strings.Join(groups, ","))
	}
	return []string{strings.Join(lims, ","), user}
}

// trampoline is the command line that starts a spawned run through
// confine.py, before the run's own: run as the server, confine.py
// confines itself as c says, enters dir and executes the rest. sandbox is
// the sandbox's part (sandbox_linux.go's startSpawn), if any.
func trampoline(python string, c confinement, dir string, sandbox ...string) []string {
	args := append([]string{python, "-I", "-S", "-c", confineSource}, c.args()...)
	args = append(args, dir)
	args = append(args, sandbox...)
	return append(args, "--")
}

// confinedStart starts the spawned runs with their user and limits.
type confinedStart struct {
	python string
	confinement
	// untraced is set where the kernel does not let a child be traced (a
	// seccomp policy, Yama's ptrace_scope 3): the limits are then set
	// right after the start, which leaves the interpreter's first
	// instructions (its startup, before it reaches the script) unbounded.
	untraced bool
}

// runConfinement is the confinement of cfg's runs, under the sandbox sb
// when it is not nil.
func (cfg RunnerConfig) runConfinement(sb *sandbox) confinement {
	lims := cfg.Limits.rlimits()
	if sb != nil {
		lims = sb.rlimits(lims)
	}
	return confinement{lims, cfg.RunAs}
}

// newConfinedStart prepares the start of spawned runs. Without a change of
// user, limits are set on the interpreter stopped at its exec: it checks
// once that the kernel stops a traced child there.
func newConfinedStart(python string, conf confinement, log *slog.Logger) (*confinedStart, error) {
	c := &confinedStart{python: python, confinement: conf}
	if c.cred != nil || len(c.limits) == 0 {
		return c, nil
	}
	probe := &exec.Cmd{Path: python, Args: []string{python, "-S", "-c", "pass"}, SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	err := startStopped(probe, c.limits)
	if errors.Is(err, errTraceRefused) {
		c.untraced = true
		log.Warn("run limits are set just after the interpreter starts", "reason", err)
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("executor: cannot start the interpreter with the run limits: %w", err)
	}
	if err := probe.Wait(); err != nil {
		return nil, fmt.Errorf("executor: the interpreter fails under the run limits (memory limit too low?): %w", err)
	}
	return c, nil
}

// start starts cmd, whose SysProcAttr is set, as the run's user and
// limits say.
func (c *confinedStart) start(cmd *exec.Cmd) error {
	switch {
	case c.cred != nil:
		cmd.Args = append(trampoline(c.python, c.confinement, cmd.Dir), cmd.Args...)
		cmd.Path = c.python
		return cmd.Start()
	case len(c.limits) == 0:
		return cmd.Start()
	case !c.untraced:
		return startStopped(cmd, c.limits)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := setRlimits(cmd.Process.Pid, c.limits); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	return nil
}

// errTraceRefused reports that the kernel refused to let a child be
// traced.
var errTraceRefused = errors.New("the kernel does not let the interpreter be traced: run limits are set just after it starts")

// startStopped starts cmd traced, so that the kernel stops it at its exec,
// before the interpreter's first instruction; sets lims on it; and lets it
// run untraced. ptrace requests must come from the thread that started the
// child, hence the locked thread.
func startStopped(cmd *exec.Cmd, lims []rlimit) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd.SysProcAttr.Ptrace = true
	err := cmd.Start()
	cmd.SysProcAttr.Ptrace = false
	if err != nil {
		if errors.Is(err, syscall.EPERM) {
			return fmt.Errorf("%w (%v)", errTraceRefused, err)
		}
		return err
	}
	pid := cmd.Process.Pid
	var info unix.Siginfo
	for {
		err = unix.Waitid(unix.P_PID, pid, &info, unix.WSTOPPED|unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("waiting for the interpreter to stop at its start: %w", err)
	}
	ch := sigchldOf(&info)
	if ch.code != cldTrapped && ch.code != cldStopped {
		// It died before its first instruction (killed from outside):
		// Wait reports how.
		return nil
	}
	limErr := setRlimits(pid, lims)
	if err := unix.PtraceDetach(pid); err != nil && limErr == nil {
		limErr = fmt.Errorf("ptrace detach: %w", err)
	}
	if ch.status != int32(unix.SIGTRAP) {
		// Stopped for another signal than its exec's SIGTRAP: pass it on.
		_ = unix.Kill(pid, unix.Signal(ch.status))
	}
	if limErr != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return limErr
	}
	return nil
}

// si_code values of SIGCHLD for a stopped child.
const (
	cldTrapped = 4
	cldStopped = 5
)

type sigchld struct {
	code   int32
	pid    int
	status int32
}

// sigchldOf reads the SIGCHLD fields of a siginfo that waitid filled in:
// the union that holds them starts at the first pointer-aligned offset
// after three ints.
func sigchldOf(info *unix.Siginfo) sigchld {
	const ptr = unsafe.Sizeof(uintptr(0))
	const off = (12 + ptr - 1) / ptr * ptr
	raw := (*[unsafe.Sizeof(unix.Siginfo{})]byte)(unsafe.Pointer(info))
	return sigchld{
		code:   info.Code,
		pid:    int(int32(binary.NativeEndian.Uint32(raw[off:]))),
		status: int32(binary.NativeEndian.Uint32(raw[off+8:])),
	}
}

// reapGroup waits, at most wait, until nothing is left of the process
// group pgid (killed already), reaping the members re-parented to this
// process. Their zombies would otherwise hold pids, and count against the
// run user's process limit. The group's leader is reaped only when
// leaderToo is set (it is an orphan too); others are the caller's to wait
// for.
func reapGroup(pgid int, leaderToo bool, wait time.Duration) {
	deadline := time.Now().Add(wait)
	delay := 50 * time.Microsecond
	for !reapGroupNow(pgid, leaderToo) && time.Now().Before(deadline) {
		time.Sleep(delay)
		delay = min(2*delay, 20*time.Millisecond)
	}
}

// reapGroupNow reaps the members of the process group pgid that are
// zombies now (the leader only when leaderToo) and reports whether
// nothing is left of the group.
func reapGroupNow(pgid int, leaderToo bool) bool {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PGID, pgid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		pid := sigchldOf(&info).pid
		if err != nil || pid <= 0 || (pid == pgid && !leaderToo) {
			break
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err != nil {
			break
		}
	}
	return errors.Is(unix.Kill(-pgid, 0), unix.ESRCH)
}

// strayScope is what reapStrays needs of this process, which does not
// change: its main thread's children file and its session id.
type strayScope struct {
	children, sid string
	err           error
}

var ownSession = sync.OnceValue(func() (s strayScope) {
	pid := os.Getpid()
	s.children = fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)
	sid, err := unix.Getsid(0)
	s.sid, s.err = strconv.Itoa(sid), err
	return s
})

// readProc reads a small file of /proc into buf (grown if need be) with
// plain system calls: os.ReadFile would make it non-blocking and offer it
// to the runtime's poller first, and undo both, six calls more a read.
func readProc(path string, buf []byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(buf) {
			buf = append(buf, make([]byte, max(len(buf), 512))...)
		}
		m, err := unix.Read(fd, buf[n:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return nil, err
		case m == 0:
			return buf[:n], nil
		}
		n += m
	}
}

// reapStrays reaps the zombie children of this process that are in
// another session than its own: processes of runs that left their run's
// group with setsid, came back here when their parent died
// (SetupProcess) and have ended since; reapGroup cannot find them.
// This process starts no process in another session itself, so none of
// them is a child someone else waits for. Orphans come back to the main
// thread, whose children list is read.
func reapStrays() {
	self := ownSession()
	if self.err != nil {
		return
	}
	var buf [512]byte
	data, err := readProc(self.children, buf[:])
	if err != nil {
		return // no CONFIG_PROC_CHILDREN
	}
	ours := self.sid
	for _, f := range strings.Fields(string(data)) {
		child, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		var sbuf [512]byte
		stat, err := readProc("/proc/"+f+"/stat", sbuf[:])
		i := bytes.LastIndexByte(stat, ')')
		if err != nil || i < 0 {
			continue
		}
		// After the command: state, ppid, process group, session.
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 4 || fields[0] != "Z" || fields[3] == ours {
			continue
		}
		var ws unix.WaitStatus
		_, _ = unix.Wait4(child, &ws, unix.WNOHANG, nil)
	}
}
