package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/scripthost/scripthost/model"
)

// Defaults of RunnerConfig, filled in by its defaults step.
const (
	DefaultTimeout   = 30 * time.Second
	DefaultMaxOutput = 1 << 20
	// DefaultDrainTimeout bounds how long a run's pipes are read after its
	// process group is gone, for processes that escaped the group.
	DefaultDrainTimeout = time.Second
)

// RunnerConfig configures a SpawnRunner or a ForkRunner.
type RunnerConfig struct {
	// Python is the absolute path of the interpreter, as ResolvePython
	// returns it. It is argv[0] of every run.
	Python string
	// Env is the environment of the scripts; nil means os.Environ(). PWD
	// is always set to the script's folder.
	Env []string
	// Limits bound every run; zero fields take DefaultTimeout and
	// DefaultMaxOutput.
	Limits Limits
	// RunAs, when set, is the user every run takes (the server must be
	// root to switch); nil runs scripts as the server's user.
	RunAs *Credential
	// Sandbox isolates each run (sandbox_linux.go); the zero value is off.
	Sandbox Sandbox
	// DrainTimeout bounds the reading of a run's output after its process
	// group died (zero: DefaultDrainTimeout).
	DrainTimeout time.Duration
	// Log receives the runner's own messages; nil discards them.
	Log *slog.Logger
	// WarmParents configures fork mode's per-script warm parents.
	WarmParents WarmParents
}

// withDefaults returns cfg with its zero fields filled in and checks it.
func (cfg RunnerConfig) withDefaults() (RunnerConfig, error) {
	if cfg.Limits.Timeout == 0 {
		cfg.Limits.Timeout = DefaultTimeout
	}
	if cfg.Limits.MaxOutput == 0 {
		cfg.Limits.MaxOutput = DefaultMaxOutput
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	switch {
	case cfg.Limits.Timeout < 0:
		return cfg, errors.New("executor: negative timeout")
	case cfg.Limits.MaxOutput < 0:
		return cfg, errors.New("executor: negative output limit")
	case cfg.DrainTimeout < 0:
		return cfg, errors.New("executor: negative drain timeout")
	case cfg.Limits.checkConfinement() != nil:
		return cfg, cfg.Limits.checkConfinement()
	case !filepath.IsAbs(cfg.Python):
		return cfg, fmt.Errorf("executor: interpreter path %q is not absolute (use ResolvePython)", cfg.Python)
	}
	if st, err := os.Stat(cfg.Python); err != nil {
		return cfg, fmt.Errorf("executor: interpreter: %w", err)
	} else if st.IsDir() || st.Mode()&0o111 == 0 {
		return cfg, fmt.Errorf("executor: interpreter %s is not an executable file", cfg.Python)
	}
	// PWD is set per run; keep the rest in order.
	env := make([]string, 0, len(cfg.Env))
	for _, kv := range cfg.Env {
		if !strings.HasPrefix(kv, "PWD=") {
			env = append(env, kv)
		}
	}
	cfg.Env = env
	return cfg, nil
}

// runEnv is the environment of one run: the configured one, then PWD,
// and PYTHONUNBUFFERED=1 for a streamed run.
func runEnv(base []string, dir string, unbuffered bool) []string {
	env := make([]string, len(base), len(base)+2)
	copy(env, base)
	if unbuffered {
		env = append(env, "PYTHONUNBUFFERED=1")
	}
	return append(env, "PWD="+dir)
}

// checkJob rejects a job that a command line cannot carry, in both modes
// alike: a relative path, or NUL bytes in the path or the arguments.
func checkJob(job Job) error {
	if !filepath.IsAbs(job.Path) {
		return model.Errorf(model.ErrInternal, "script path %q is not absolute", job.Path)
	}
	if strings.IndexByte(job.Path, 0) >= 0 {
		return model.Errorf(model.ErrBadRequest, "the script path contains a NUL byte")
	}
	for _, a := range job.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return model.Errorf(model.ErrBadRequest, "an argument contains a NUL byte, which a command line cannot carry")
		}
	}
	return nil
}

// ResolvePython looks the interpreter name up once (on PATH unless it is a
// path) and asks it for its real executable, so that runs do not pay for
// wrappers such as pyenv shims. It returns an absolute path.
func ResolvePython(name string) (string, error) {
	if name == "" {
		name = "python3"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("executor: find interpreter %q: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-c", "import sys; print(sys.version_info[0]); print(sys.executable)")
	var stderr bytes.Buffer
	cmd.Stdin = nil
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	said := bytes.TrimSpace(stderr.Bytes())
	if len(said) == 0 {
		said = []byte("and printed nothing")
	} else {
		said = append([]byte("saying: "), said...)
	}
	if err != nil {
		return "", fmt.Errorf("executor: interpreter %s is not a working Python 3: `%s -c ...` failed (%v) %s", path, path, err, said)
	}
	major, exe, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if major != "3" {
		return "", fmt.Errorf("executor: interpreter %s is not Python 3: asked for its version, it printed %q", path, cutText(string(out), 80))
	}
	exe = strings.TrimSpace(exe)
	if exe == "" {
		// sys.executable may be empty in odd installs; keep what PATH gave.
		exe = path
	}
	if !filepath.IsAbs(exe) {
		if exe, err = filepath.Abs(exe); err != nil {
			return "", fmt.Errorf("executor: interpreter path: %w", err)
		}
	}
	if _, err := os.Stat(exe); err != nil {
		return "", fmt.Errorf("executor: interpreter %s: %w", exe, err)
	}
	return exe, nil
}

// cutText shortens s to at most n bytes, for an error message.
func cutText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// SandboxMode says whether runs are sandboxed.
type SandboxMode int

const (
	// SandboxOff runs scripts without the sandbox (the zero value).
	SandboxOff SandboxMode = iota
	// SandboxAuto sandboxes runs where the kernel and permissions allow
	// it, and runs them without it, with a warning, elsewhere.
	SandboxAuto
	// SandboxOn sandboxes every run; a runner that cannot fails to start.
	SandboxOn
)

// ParseSandboxMode reads "auto", "on" or "off".
func ParseSandboxMode(s string) (SandboxMode, error) {
	switch s {
	case "auto":
		return SandboxAuto, nil
	case "on":
		return SandboxOn, nil
	case "off":
		return SandboxOff, nil
	}
	return SandboxOff, fmt.Errorf("sandbox mode %q: want auto, on or off", s)
}

// Sandbox configures the run sandbox.
type Sandbox struct {
	Mode SandboxMode
	// HostNetwork gives sandboxed runs the host's network instead of a
	// loopback interface of their own.
	HostNetwork bool
}

// ErrSandboxUnavailable is wrapped by the error of a runner asked for the
// sandbox (SandboxOn) where it cannot have it.
var ErrSandboxUnavailable = errors.New("the run sandbox is not available")

// Defaults of WarmParents.
const (
	DefaultMaxWarmParents   = 8
	DefaultWarmParentMemory = 1 << 30
	DefaultWarmParentIdle   = 5 * time.Minute
	DefaultWarmParentHot    = 2
	DefaultWarmParentStart  = 60 * time.Second
)

// WarmParents configures the per-script warm parents of fork mode: for a
// script that runs often (Hot runs of one version), a fork of the warm
// interpreter that has imported what the script imports, from which that
// script's runs then fork. A new version of the script gets a new warm
// parent; the old one serves no run of it.
type WarmParents struct {
	// Max bounds the warm parents alive at once (0: DefaultMaxWarmParents);
	// a negative Max disables them, and the warm interpreter then imports
	// the common standard library itself.
	Max int
	// MaxMemory bounds the memory of the warm parents together, in bytes:
	// what is their own (not shared with the warm interpreter), which
	// evicting them frees (0: DefaultWarmParentMemory).
	MaxMemory int64
	// Idle evicts a warm parent that served no run for that long
	// (0: DefaultWarmParentIdle).
	Idle time.Duration
	// Hot is the number of runs of one version of a script, served by the
	// warm interpreter, after which it gets a warm parent (0:
	// DefaultWarmParentHot).
	Hot int
	// StartTimeout bounds the start of a warm parent, its imports included
	// (0: DefaultWarmParentStart). One that takes longer is killed; the
	// script's runs go on from the warm interpreter meanwhile and after.
	StartTimeout time.Duration
}

func (p WarmParents) withDefaults() WarmParents {
	if p.Max == 0 {
		p.Max = DefaultMaxWarmParents
	}
	if p.MaxMemory == 0 {
		p.MaxMemory = DefaultWarmParentMemory
	}
	if p.Idle == 0 {
		p.Idle = DefaultWarmParentIdle
	}
	if p.Hot == 0 {
		p.Hot = DefaultWarmParentHot
	}
	if p.StartTimeout == 0 {
		p.StartTimeout = DefaultWarmParentStart
	}
	return p
}

func (p WarmParents) enabled() bool { return p.Max > 0 }

// WarmStats are the counts of a fork runner's warm parents.
type WarmStats struct {
	// Parents is the number of warm parents alive, and MemoryBytes their
	// own memory as last measured.
	Parents     int
	MemoryBytes int64
	// Created, Evicted and Refused count warm parents made, ended (idle,
	// over a bound, or replaced by a new version) and scripts refused one
	// (their imports write output).
	Created, Evicted, Refused uint64
	// Runs counts the runs served by a warm parent.
	Runs uint64
}
