package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/scripthost/scripthost/model"
)

// maxWarmScript is the largest script whose imports are looked for.
const maxWarmScript = 4 << 20

// parent is the warm-parent state of one script (by path): counting its
// runs until it is hot, then its warm parent.
type parent struct {
	path, version string
	hits          int       // runs of this version served by the warm interpreter
	lastUsed      time.Time // last run started
	starting      bool
	refused       bool // this version cannot have one
	retired       bool // out of the table: ends once its runs have
	w             *warm
	active        int   // runs in progress on w
	mem           int64 // own memory of w, last measured
	imports       []string
}

// parents is the table of a ForkRunner's warm parents.
type parents struct {
	cfg     WarmParents
	mu      sync.Mutex
	byPath  map[string]*parent
	closed  bool
	stats   WarmStats
	stopped sync.WaitGroup // parents being made or stopped
}

// parentFor returns the warm parent a run of job uses and its process,
// holding one run on it, or nil when the run goes to the warm interpreter
// (counting it towards the script's being hot).
func (r *ForkRunner) parentFor(job Job) (*parent, *warm) {
	ps := &r.parents
	if !ps.cfg.enabled() || job.Version == "" {
		return nil, nil
	}
	now := time.Now()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return nil, nil
	}
	p := ps.byPath[job.Path]
	if p != nil && p.version != job.Version {
		// A new version (or a run of an older one): the old warm parent
		// serves no run of it.
		r.retireLocked(p)
		p = nil
	}
	if p == nil {
		p = &parent{path: job.Path, version: job.Version}
		ps.byPath[job.Path] = p
	}
	p.lastUsed = now
	if p.w != nil && !p.w.isDead() {
		p.active++
		ps.stats.Runs++
		return p, p.w
	}
	p.hits++
	if p.w == nil && !p.starting && !p.refused && p.hits >= ps.cfg.Hot && r.roomForParentLocked() {
		p.starting = true
		// Counted before ps.closed can be set, so that Close waits for it
		// and stops what it makes.
		ps.stopped.Add(1)
		go r.makeParent(p)
	}
	return nil, nil
}

// releaseParent ends one run on p.
func (r *ForkRunner) releaseParent(p *parent) {
	ps := &r.parents
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p.active--
	p.lastUsed = time.Now()
	if p.retired && p.active == 0 {
		r.stopParentLocked(p)
	}
}

// roomForParentLocked makes room for one more warm parent, evicting the
// least recently used idle one if the table is full; false if all are busy.
func (r *ForkRunner) roomForParentLocked() bool {
	ps := &r.parents
	n := 0
	for _, p := range ps.byPath {
		if p.w != nil || p.starting {
			n++
		}
	}
	if n < ps.cfg.Max {
		return true
	}
	if lru := ps.lruLocked(); lru != nil {
		r.retireLocked(lru)
		return true
	}
	return false
}

// lruLocked is the least recently used warm parent with no run, or nil.
func (ps *parents) lruLocked() *parent {
	var lru *parent
	for _, p := range ps.byPath {
		if p.w != nil && p.active == 0 && (lru == nil || p.lastUsed.Before(lru.lastUsed)) {
			lru = p
		}
	}
	return lru
}

// retireLocked takes p out of the table; its warm parent ends once its
// runs have.
func (r *ForkRunner) retireLocked(p *parent) {
	ps := &r.parents
	if ps.byPath[p.path] == p {
		delete(ps.byPath, p.path)
	}
	p.retired = true
	if p.active == 0 {
		r.stopParentLocked(p)
	}
}

func (r *ForkRunner) stopParentLocked(p *parent) {
	w := p.w
	if w == nil {
		return // a start in progress sees retired and stops it
	}
	p.w = nil
	r.parents.stats.Evicted++
	r.parents.stopped.Add(1)
	go func() {
		defer r.parents.stopped.Done()
		w.stop()
		r.cfg.Log.Debug("warm parent stopped", "script", p.path, "version", p.version, "pid", w.pid)
	}()
}

// makeParent starts the warm parent of p.
func (r *ForkRunner) makeParent(p *parent) {
	ps := &r.parents
	defer ps.stopped.Done()
	began := time.Now()
	w, refused, err := r.forkParent(p)
	took := time.Since(began).Round(time.Millisecond)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p.starting = false
	switch {
	case refused:
		p.refused = true
		ps.stats.Refused++
		r.cfg.Log.Info("no warm parent for this script", "script", p.path, "reason", err)
	case err != nil:
		p.hits = 0 // try again once it is hot again
		r.cfg.Log.Warn("cannot start a warm parent", "script", p.path, "after", took, "err", err)
	case p.retired || ps.closed:
		ps.stopped.Add(1)
		go func() {
			defer ps.stopped.Done()
			w.stop()
		}()
	default:
		// Idle from now: it may have taken longer to make than --warm-idle.
		p.w, p.mem, p.lastUsed = w, w.memory, time.Now()
		ps.stats.Created++
		r.cfg.Log.Info("warm parent ready", "script", p.path, "version", p.version, "pid", w.pid, "imports", w.imports, "took", took)
	}
}

// forkParent asks the warm interpreter for a warm parent of p's script;
// refused reports a script that cannot have one.
func (r *ForkRunner) forkParent(p *parent) (w *warm, refused bool, err error) {
	code, err := readScript(p.path)
	if err != nil {
		return nil, false, err
	}
	if model.Version(code) != p.version {
		return nil, false, errors.New("the script changed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), warmStartTimeout)
	defer cancel()
	base, err := r.warm(ctx)
	if err != nil {
		return nil, false, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, false, err
	}
	ours := os.NewFile(uintptr(fds[0]), "warm-parent-control")
	fc, err := net.FileConn(ours)
	_ = ours.Close()
	if err != nil {
		_ = unix.Close(fds[1])
		return nil, false, err
	}
	memfd, err := bigJob(code)
	if err != nil {
		_ = unix.Close(fds[1])
		_ = fc.Close()
		return nil, false, err
	}
	msg := forkMsg{Op: "parent", Dir: filepath.Dir(p.path)}
	if utf8.ValidString(p.path) {
		msg.Path = p.path // its runs' children open it ahead of their jobs
	}
	body, _ := json.Marshal(msg)
	err = base.sendRaw(body, []int{fds[1], memfd})
	_ = unix.Close(fds[1])
	_ = unix.Close(memfd)
	if err != nil {
		_ = fc.Close()
		return nil, false, err
	}
	w = &warm{
		r: r, conn: fc.(*net.UnixConn), pidfd: -1, parent: true,
		dead:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	// It says which process it is ("forked", with a pidfd of itself) at
	// once, then "ready" once it has imported what the script imports, or
	// "fatal". Whatever else happens, it is killed.
	_ = w.conn.SetReadDeadline(time.Now().Add(r.parents.cfg.StartTimeout))
	// Close, which waits for this start, ends it rather than waiting out
	// imports that may hang.
	// (conn, not w: the error returns below set w, a named result, to nil
	// while this may still run.)
	read, conn := make(chan struct{}), w.conn
	go func() {
		select {
		case <-r.closing:
			_ = conn.SetReadDeadline(time.Now())
		case <-read:
		}
	}()
	m, err := w.read()
	if err == nil && m.Op == "forked" && m.fd >= 0 {
		w.pid, w.pidfd = m.Pid, m.fd
		m, err = w.read()
	}
	close(read)
	_ = w.conn.SetReadDeadline(time.Time{})
	if err == nil && m.fd >= 0 && m.fd != w.pidfd {
		_ = unix.Close(m.fd) // a message with a pidfd not asked for
	}
	if err == nil && m.Op == "fatal" {
		w.abandon()
		return nil, true, errors.New(m.Error)
	}
	if err == nil && (m.Op != "ready" || w.pidfd < 0) {
		err = fmt.Errorf("unexpected message %q", m.Op)
	}
	if err != nil {
		if w.pidfd >= 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("%w (after %v its process %d was %s)", err, r.parents.cfg.StartTimeout, w.pid, procWait(w.pid))
		}
		w.abandon()
		return nil, false, fmt.Errorf("the warm parent did not start: %w", err)
	}
	w.imports, w.memory, w.ahead = m.Imports, m.Memory, m.Ahead
	w.handOver()
	go w.watchExit()
	go w.readLoop()
	return w, false, nil
}

// abandon ends a warm parent whose start failed, and its connection: its
// process is killed and waited for (the warm interpreter, its parent,
// reaps it; this process does if it came here, its parent gone). Reading
// is shut down first, so that a "forked" it sends from now on fails, and
// it exits, while one it has sent already is read here.
func (w *warm) abandon() {
	_ = w.conn.CloseRead()
	if w.pidfd < 0 {
		_ = w.conn.SetReadDeadline(time.Now().Add(time.Second))
		if m, err := w.read(); err == nil && m.fd >= 0 {
			if m.Op == "forked" {
				w.pid, w.pidfd = m.Pid, m.fd
			} else {
				_ = unix.Close(m.fd)
			}
		}
	}
	_ = w.conn.Close()
	if w.pidfd < 0 {
		return // it never said which process it is: there is none, or it dies on its first send
	}
	_ = unix.PidfdSendSignal(w.pidfd, unix.SIGKILL, nil, 0)
	fds := []unix.PollFd{{Fd: int32(w.pidfd), Events: unix.POLLIN}}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if n, err := unix.Poll(fds, 100); n > 0 || (err != nil && !errors.Is(err, unix.EINTR)) {
			break
		}
	}
	var info unix.Siginfo
	_ = unix.Waitid(unix.P_PIDFD, w.pidfd, &info, unix.WEXITED|unix.WNOHANG, nil)
	_ = unix.Close(w.pidfd)
	w.pidfd = -1
}

// procWait says what process pid is doing, for the error of a start that
// hung: its state and the kernel function it waits in.
func procWait(pid int) string {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	i := strings.LastIndexByte(string(stat), ')')
	if err != nil || i < 0 || i+2 >= len(stat) {
		return "gone"
	}
	state := "in state " + string(stat[i+2])
	if wchan, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/wchan"); err == nil && len(wchan) > 0 && string(wchan) != "0" {
		state += ", waiting in " + string(wchan)
	}
	return state
}

func readScript(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if st.Size() > maxWarmScript {
		return nil, errors.New("too large to look for its imports")
	}
	return os.ReadFile(path)
}

// parentDied takes a warm parent that ended by itself out of the table;
// the script's next runs go to the warm interpreter until it is made again.
func (r *ForkRunner) parentDied(w *warm) {
	ps := &r.parents
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.byPath {
		if p.w == w {
			p.w, p.hits = nil, 0
			if !ps.closed {
				r.cfg.Log.Warn("a warm parent died", "script", p.path, "pid", w.pid, "err", w.deadErr)
			}
		}
	}
}

// janitor measures the warm parents and evicts those idle too long, then
// the least recently used while over the bounds.
func (r *ForkRunner) janitor() {
	every := min(2*time.Second, max(r.parents.cfg.Idle/4, 10*time.Millisecond))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.closing:
			return
		case <-t.C:
			r.sweep()
		}
	}
}

func (r *ForkRunner) sweep() {
	ps := &r.parents
	ps.mu.Lock()
	var live []*parent
	var pids []int // read under the lock: a parent may stop meanwhile
	for _, p := range ps.byPath {
		if p.w != nil {
			live = append(live, p)
			pids = append(pids, p.w.pid)
		}
	}
	ps.mu.Unlock()
	mems := make([]int64, len(live))
	for i := range live {
		mems[i] = ownMemory(pids[i])
	}
	now := time.Now()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i, p := range live {
		// Its children share its pages (one is always forked ahead), so
		// what is private to it now undercounts what it holds: its memory
		// once it was ready is the floor.
		if p.w != nil {
			p.mem = max(mems[i], p.w.memory)
		}
	}
	for path, p := range ps.byPath {
		idle := now.Sub(p.lastUsed) > ps.cfg.Idle
		switch {
		case p.w != nil && p.active == 0 && p.mem > ps.cfg.MaxMemory:
			// Alone over the bound: this version gets none again.
			r.cfg.Log.Info("a warm parent alone is over the memory bound: ending it", "script", p.path, "memory", p.mem)
			r.retireLocked(p)
			ps.byPath[path] = &parent{path: p.path, version: p.version, refused: true, lastUsed: now}
			ps.stats.Refused++
		case p.w != nil && p.active == 0 && idle:
			r.cfg.Log.Debug("warm parent idle: evicting it", "script", p.path)
			r.retireLocked(p)
		case p.w == nil && !p.starting && idle:
			delete(ps.byPath, path) // a cold script's count
		}
	}
	for {
		var total int64
		n := 0
		for _, p := range ps.byPath {
			if p.w != nil {
				total += p.mem
				n++
			}
		}
		if n <= ps.cfg.Max && total <= ps.cfg.MaxMemory {
			return
		}
		lru := ps.lruLocked()
		if lru == nil {
			return
		}
		r.cfg.Log.Debug("warm parents over their bounds: evicting one", "script", lru.path, "parents", n, "memory", total)
		r.retireLocked(lru)
	}
}

// WarmStats returns the counts of the warm parents.
func (r *ForkRunner) WarmStats() WarmStats {
	ps := &r.parents
	ps.mu.Lock()
	defer ps.mu.Unlock()
	st := ps.stats
	for _, p := range ps.byPath {
		if p.w != nil {
			st.Parents++
			st.MemoryBytes += p.mem
		}
	}
	return st
}

// closeParents stops every warm parent; runs on them are killed by then.
func (r *ForkRunner) closeParents() {
	ps := &r.parents
	ps.mu.Lock()
	ps.closed = true
	for _, p := range ps.byPath {
		r.retireLocked(p)
	}
	ps.mu.Unlock()
	ps.stopped.Wait()
}

// ownMemory is the memory of process pid that is its own, not shared with
// another (the private pages of /proc/PID/smaps_rollup), in bytes; 0 if it
// cannot be read.
func ownMemory(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0
	}
	var total int64
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "Private_Clean" && k != "Private_Dirty") {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			total += n << 10
		}
	}
	return total
}

// watchExit closes w.exited once the warm parent's process has ended.
func (w *warm) watchExit() {
	defer close(w.exited)
	fds := []unix.PollFd{{Fd: int32(w.pidfd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	w.mu.Lock()
	_ = unix.Close(w.pidfd)
	w.pidfd = -1
	w.mu.Unlock()
}

// kill ends the warm interpreter's or warm parent's process at once.
func (w *warm) kill() {
	if w.cmd != nil {
		_ = w.cmd.Process.Kill()
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pidfd >= 0 {
		_ = unix.PidfdSendSignal(w.pidfd, unix.SIGKILL, nil, 0)
	}
}
