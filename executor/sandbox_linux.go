package executor

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The run sandbox. Each run gets Linux namespaces of its own, made by the
// run's first process, its init, from sandbox.py: a pid namespace (it sees
// only its own processes, and all of them die with the init), a mount
// namespace (everything read-only but a fresh /tmp, /dev/shm and HOME, a
// /proc of its own), an IPC namespace, and a network namespace with only a
// loopback interface (unless the host network is asked for); and cgroups of
// its own (cgroup.go) for its memory and its number of processes.
//
// Why namespaces and cgroups directly, rather than bubblewrap or a
// container runtime: in fork mode the per-run work is a few system calls in
// the forked child, with no program to exec; spawn mode uses the same code
// (sandbox.py as the run's init), so both modes have the same view.
// It needs root (CAP_SYS_ADMIN); mount_setattr(2) needs Linux 5.12.

//go:embed sandbox.py
var sandboxSource string

// sandbox is a runner's sandbox, once it is known to work.
type sandbox struct {
	python      string
	hostNetwork bool
	// home is the runs' HOME: a folder made at start (so that nobody can
	// take its name on the host), empty and private in each run.
	home    string
	cgroups *cgroupPool // nil: none usable
	// byCgroup tells which limits the cgroups carry: memory (the whole
	// run) and pids (RLIMIT_NPROC is then not set).
	memoryByCgroup, pidsByCgroup bool
	config                       string // sandbox.py's config, JSON
}

// newSandbox sets up the runner's sandbox as cfg asks: nil when it is off,
// or when it is auto and cannot be had here (a warning says why).
func newSandbox(cfg RunnerConfig) (*sandbox, error) {
	if cfg.Sandbox.Mode == SandboxOff {
		return nil, nil
	}
	s, err := setUpSandbox(cfg)
	if err == nil {
		return s, nil
	}
	if cfg.Sandbox.Mode == SandboxOn {
		return nil, fmt.Errorf("executor: %w: %v", ErrSandboxUnavailable, err)
	}
	cfg.Log.Warn("runs are NOT sandboxed (--sandbox auto): they can use the network, see other processes and write where their user may; --sandbox on makes this an error", "reason", err)
	return nil, nil
}

func setUpSandbox(cfg RunnerConfig) (_ *sandbox, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("it needs root (namespaces, mounts and cgroups); the server runs as uid " + strconv.Itoa(os.Geteuid()))
	}
	s := &sandbox{python: cfg.Python, hostNetwork: cfg.Sandbox.HostNetwork}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	removeStaleHomes()
	if s.home, err = os.MkdirTemp("", fmt.Sprintf("scripthost-home-%d-", os.Getpid())); err != nil {
		return nil, fmt.Errorf("the runs' HOME: %w", err)
	}
	pool, missing, cgErr := newCgroupPool(cfg.Limits.MaxMemory, cfg.Limits.MaxProcs)
	if pool != nil {
		s.cgroups = pool
	}
	s.memoryByCgroup = pool != nil && !contains(missing, "memory")
	s.pidsByCgroup = pool != nil && !contains(missing, "pids")
	switch {
	case cgErr != nil:
		cfg.Log.Warn("run cgroups are not available: --max-memory bounds each process (RLIMIT_AS), not the whole run, and --max-procs all processes of the run user (RLIMIT_NPROC)", "reason", cgErr)
	case len(missing) > 0:
		cfg.Log.Warn("some cgroup controllers are not available to this process: their limits fall back to rlimits", "missing", missing)
	}
	var uid, gid uint32
	if cfg.RunAs != nil {
		uid, gid = cfg.RunAs.Uid, cfg.RunAs.Gid
	}
	var slotLimits [][2]any
	if pool != nil {
		slotLimits = pool.slotLimits()
	}
	conf, _ := json.Marshal(map[string]any{
		"cgroup_limits": slotLimits,
		"host_network":  s.hostNetwork,
		"home":          s.home,
		"tmpfs_size":    max(cfg.Limits.MaxMemory, 0),
		"uid":           uid,
		"gid":           gid,
	})
	s.config = string(conf)
	if err := s.probe(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// removeStaleHomes removes the runs' HOME folders left by servers that
// were killed (scripthost-home-<pid>-*, whose pid is gone).
func removeStaleHomes() {
	entries, _ := os.ReadDir(os.TempDir())
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "scripthost-home-")
		pidStr, _, ok2 := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || !ok2 || err != nil || !e.IsDir() || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			_ = os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// probe runs a trivial sandboxed run, so that a sandbox the kernel does
// not allow is found at start, not at the first run.
func (s *sandbox) probe(cfg RunnerConfig) error {
	cg, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release(cg)
	var out strings.Builder
	cmd := &exec.Cmd{
		Path:        cfg.Python,
		Args:        []string{cfg.Python, "-I", "-S", "-c", "import os; assert os.getpid() == 2, os.getpid()"},
		Dir:         "/",
		Env:         cfg.Env,
		Stdout:      &out,
		Stderr:      &out,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
		WaitDelay:   time.Second,
	}
	status, err := s.startSpawn(cmd, confinement{}, cg)
	if err != nil {
		return fmt.Errorf("cannot start a sandboxed process: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		killGroup(cmd.Process.Pid)
		err = <-done
	}
	ws, ok := s.spawnStatus(status)
	switch {
	case err != nil && !ok:
		return fmt.Errorf("a sandboxed process failed: %v: %s", err, strings.TrimSpace(out.String()))
	case !ok || ws != 0:
		return fmt.Errorf("a sandboxed process failed (wait status %d): %s", ws, strings.TrimSpace(out.String()))
	}
	return nil
}

// env is the runs' environment under the sandbox: HOME is theirs.
func (s *sandbox) env(base []string) []string {
	return setEnv(base, "HOME", s.home)
}

// setEnv sets key in env, in its place if it is there.
func setEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	found := false
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			if !found {
				out = append(out, key+"="+value)
				found = true
			}
			continue
		}
		out = append(out, kv)
	}
	if !found {
		out = append(out, key+"="+value)
	}
	return out
}

// rlimits are the limits a sandboxed run still takes as rlimits: those the
// cgroups do not carry. The memory limit is both: each process's address
// space (an allocation beyond it fails at once) and the whole run.
func (s *sandbox) rlimits(all []rlimit) []rlimit {
	var out []rlimit
	for _, l := range all {
		if l.resource == unix.RLIMIT_NPROC && s.pidsByCgroup {
			continue
		}
		out = append(out, l)
	}
	return out
}

// acquire gives a run its cgroups (nil when there are none).
func (s *sandbox) acquire() (*runCgroup, error) {
	if s == nil || s.cgroups == nil {
		return nil, nil
	}
	cg, err := s.cgroups.acquire()
	if err != nil {
		return nil, fmt.Errorf("the run's cgroup: %w", err)
	}
	return cg, nil
}

// release kills what is left of a run in its cgroups and frees them.
func (s *sandbox) release(cg *runCgroup) {
	if s != nil && s.cgroups != nil {
		s.cgroups.release(cg)
	}
}

// cgroupProcs are the cgroup.procs files of a run's cgroups.
func cgroupProcs(cg *runCgroup) []string {
	if cg == nil {
		return []string{}
	}
	return cg.procs()
}

// startSpawn starts cmd (python, script, args; Dir, Env, stdio and
// SysProcAttr set) as a sandboxed run: its trampoline (confine.py) is its
// init, pid 1 of a new pid namespace, which isolates the run (sandbox.py),
// forks, and confines the child as c says, which executes the command
// line. The returned file yields the wait status of the run's process
// (the init's own status is not the run's), to be read once cmd has
// exited.
func (s *sandbox) startSpawn(cmd *exec.Cmd, c confinement, cg *runCgroup) (*os.File, error) {
	spawn, _ := json.Marshal(struct {
		StatusFd int      `json:"status_fd"`
		Cgroups  []string `json:"cgroups"`
	}{3, cgroupProcs(cg)})
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Args = append(trampoline(s.python, c, cmd.Dir, sandboxSource, s.config, string(spawn)), cmd.Args...)
	cmd.Path = s.python
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr.Cloneflags |= unix.CLONE_NEWPID
	err = cmd.Start()
	_ = w.Close()
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

// spawnStatus reads the run's wait status that its init reported, and
// closes f; ok is false when the init reported none (it was killed, or
// could not start the run).
func (s *sandbox) spawnStatus(f *os.File) (ws syscall.WaitStatus, ok bool) {
	if f == nil {
		return 0, false
	}
	defer f.Close()
	buf := make([]byte, 32)
	n, _ := f.Read(buf)
	v, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		return 0, false
	}
	return syscall.WaitStatus(v), true
}

func (s *sandbox) close() {
	if s == nil {
		return
	}
	if s.cgroups != nil {
		s.cgroups.Close()
	}
	if s.home != "" {
		_ = os.RemoveAll(s.home)
	}
}

// describe is for the start log.
func (s *sandbox) describe(log *slog.Logger) {
	network := "none (a loopback of its own)"
	if s.hostNetwork {
		network = "host"
	}
	log.Info("runs are sandboxed", "network", network, "memory_limit", limitBy(s.memoryByCgroup), "process_limit", limitBy(s.pidsByCgroup), "home", s.home)
}

func limitBy(cgroup bool) string {
	if cgroup {
		return "cgroup (whole run)"
	}
	return "rlimit (per process or per user)"
}

// prepareSandbox sets up the sandbox a runner's configuration asks for
// and gives the runs their HOME: the sandbox's, or without the sandbox the
// run user's own home folder (never the server's).
func prepareSandbox(cfg *RunnerConfig) (*sandbox, error) {
	sb, err := newSandbox(*cfg)
	if err != nil {
		return nil, err
	}
	switch {
	case sb != nil:
		cfg.Env = sb.env(cfg.Env)
		sb.describe(cfg.Log)
	case cfg.RunAs != nil && cfg.RunAs.Home != "":
		cfg.Env = setEnv(cfg.Env, "HOME", cfg.RunAs.Home)
	}
	return sb, nil
}

// forkArgs are the warm interpreter's arguments for the sandbox: its
// config, empty when runs are not sandboxed, and the place of sandbox.py's
// source, which comes in the warm interpreter's sourcesFile.
func (s *sandbox) forkArgs() []string {
	if s == nil {
		return []string{"", ""}
	}
	return []string{s.config, ""}
}
