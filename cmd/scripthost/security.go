package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/scripthost/scripthost/bus"
	"github.com/scripthost/scripthost/executor"
)

// securityConfig is what the limit, run-as and auth flags say.
type securityConfig struct {
	// Limits of every run (0: no limit).
	MaxMemory    byteSize
	MaxCPU       cpuSeconds
	MaxProcs     int
	MaxOpenFiles int
	// RunAs is the user scripts run as when the server runs as root.
	RunAs string
	// Sandbox (auto, on, off) and Network (none, host): the run sandbox.
	Sandbox, Network string

	// HTTP bearer tokens (serve only).
	Token, RunToken string

	// NATS credentials: of the embedded server's clients (serve), or for
	// joining a bus (executor, serve --nats).
	NATSUser, NATSPassword string
	// A run-only user of the embedded server (serve only).
	NATSRunUser, NATSRunPassword string
}

// Defaults of the run limits: generous, but finite.
const (
	defaultMaxMemory    = 1 << 30
	defaultMaxCPU       = 300 * time.Second
	defaultMaxProcs     = 1024
	defaultMaxOpenFiles = 1024
)

// nodeFlags are the flags of every executor node, in serve and in
// executor: the run limits, the run user and the NATS credentials.
func (c *securityConfig) nodeFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Sandbox, "sandbox", "auto", "run sandbox: on, off, or auto (on where the kernel and permissions allow it, else off with a warning); see docs/security.md")
	fs.StringVar(&c.Network, "network", "none", "network of sandboxed runs: none (a loopback interface of their own) or host")
	c.MaxMemory = defaultMaxMemory
	fs.Var(&c.MaxMemory, "max-memory", "memory of a run: under the sandbox all its processes and tmpfs files together (cgroup), and in any case the address space of each process (RLIMIT_AS; beyond it allocations fail: MemoryError); 0: no limit")
	c.MaxCPU = cpuSeconds(defaultMaxCPU)
	fs.Var(&c.MaxCPU, "max-cpu", "CPU time of each process of a run, in seconds or as a duration (RLIMIT_CPU): SIGXCPU, then SIGKILL a second later; 0: no limit")
	fs.IntVar(&c.MaxProcs, "max-procs", defaultMaxProcs, "processes and threads of a run (under the sandbox, a cgroup of its own; without it, RLIMIT_NPROC: of the run user, all its runs together, not binding root); 0: no limit")
	fs.IntVar(&c.MaxOpenFiles, "max-open-files", defaultMaxOpenFiles, "open files of each process of a run (RLIMIT_NOFILE); 0: no limit")
	fs.StringVar(&c.RunAs, "run-as", "", "user (name or uid) the scripts run as when the server runs as root (default "+executor.DefaultRunUser+"; 'root' only if given)")
	fs.StringVar(&c.NATSUser, "nats-user", "", "NATS user: the embedded server demands it of every client; an executor joins with it (or with nats://user:pass@host:port)")
	fs.StringVar(&c.NATSPassword, "nats-password", "", "password of --nats-user")
}

// serveFlags are the flags of serve alone: the HTTP tokens and the
// embedded server's run-only user.
func (c *securityConfig) serveFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Token, "token", "", "HTTP bearer token that may do everything; with a token set, requests without one get 401")
	fs.StringVar(&c.RunToken, "run-token", "", "HTTP bearer token that may only list, read and run scripts (writes: 403)")
	fs.StringVar(&c.NATSRunUser, "nats-run-user", "", "a second NATS user of the embedded server, that may only run, list and read scripts (needs --nats-user)")
	fs.StringVar(&c.NATSRunPassword, "nats-run-password", "", "password of --nats-run-user")
}

func (c *securityConfig) validate() error {
	if _, err := executor.ParseSandboxMode(c.Sandbox); err != nil {
		return fmt.Errorf("--sandbox %q: want auto, on or off", c.Sandbox)
	}
	switch {
	case c.Network != "none" && c.Network != "host":
		return fmt.Errorf("--network %q: want none or host", c.Network)
	case c.MaxProcs < 0:
		return errors.New("--max-procs must not be negative")
	case c.MaxOpenFiles < 0:
		return errors.New("--max-open-files must not be negative")
	case c.MaxOpenFiles > 0 && c.MaxOpenFiles < 16:
		return errors.New("--max-open-files below 16 leaves the interpreter unable to start")
	case c.MaxMemory > 0 && c.MaxMemory < 32<<20:
		return errors.New("--max-memory below 32MiB leaves the interpreter unable to start")
	case c.Token != "" && c.Token == c.RunToken:
		return errors.New("--token and --run-token must differ")
	case c.NATSPassword != "" && c.NATSUser == "":
		return errors.New("--nats-password needs --nats-user")
	case c.NATSUser != "" && c.NATSPassword == "":
		return errors.New("--nats-user needs --nats-password")
	case c.NATSRunUser != "" && c.NATSUser == "":
		return errors.New("--nats-run-user needs --nats-user, the user of the server's own connections")
	case c.NATSRunUser != "" && c.NATSRunPassword == "":
		return errors.New("--nats-run-user needs --nats-run-password")
	case c.NATSRunPassword != "" && c.NATSRunUser == "":
		return errors.New("--nats-run-password needs --nats-run-user")
	case c.NATSRunUser != "" && c.NATSRunUser == c.NATSUser:
		return errors.New("--nats-run-user must differ from --nats-user")
	}
	return nil
}

// validateSecurity checks serve's security flags against the others.
func (c *serveConfig) validateSecurity() error {
	if c.NATS != "" && c.NATSRunUser != "" {
		return errors.New("--nats-run-user is a user of the embedded NATS server: with --nats, give the users and permissions in that server's configuration")
	}
	return nil
}

// limits are the run limits of the flags, on top of base (timeout and
// output cap).
func (c *securityConfig) limits(base executor.Limits) executor.Limits {
	base.MaxMemory = int64(c.MaxMemory)
	base.MaxCPU = time.Duration(c.MaxCPU)
	base.MaxProcs = c.MaxProcs
	base.MaxOpenFiles = c.MaxOpenFiles
	return base
}

// runnerConfig is the runner configuration of an executor node, in serve
// and in executor alike: the interpreter, the scripts' environment, the
// limits and the run user, checked against the folder of the scripts.
func (c *nodeConfig) runnerConfig(python, scriptsDir string, log *slog.Logger) (executor.RunnerConfig, error) {
	cred, err := executor.ResolveRunUser(c.RunAs)
	if err != nil {
		return executor.RunnerConfig{}, err
	}
	mode, _ := executor.ParseSandboxMode(c.Sandbox)
	rc := executor.RunnerConfig{
		Python:      python,
		Env:         scriptEnv(),
		Limits:      c.limits(executor.Limits{Timeout: c.Timeout, MaxOutput: int(c.MaxOutput)}),
		RunAs:       cred,
		Sandbox:     executor.Sandbox{Mode: mode, HostNetwork: c.Network == "host"},
		Log:         log,
		WarmParents: executor.WarmParents{Max: c.WarmParents, MaxMemory: int64(c.WarmMemory), Idle: c.WarmIdle},
	}
	if c.WarmParents == 0 {
		rc.WarmParents.Max = -1 // none
	}
	pc := executor.PreflightConfig{Fork: c.Mode == "fork", ScriptsDir: scriptsDir, DefaultUser: c.RunAs == ""}
	if err := executor.Preflight(rc, pc); err != nil {
		return executor.RunnerConfig{}, err
	}
	return rc, nil
}

// prepareNode readies this process to host an executor node, before
// anything starts: the executor's process-wide setup (which says so where
// scripts cannot run), and the run user, whose error is a bad command
// line.
func (c *securityConfig) prepareNode() error {
	if err := executor.SetupProcess(); err != nil {
		return err
	}
	_, err := executor.ResolveRunUser(c.RunAs)
	return err
}

// scriptsDirOf is the folder where a node finds its scripts, for the
// checks of the run user.
func scriptsDirOf(scripts executor.Scripts) string {
	if d, ok := scripts.(interface{ Dir() string }); ok {
		return d.Dir()
	}
	return ""
}

// warnOpen warns of an HTTP API that anyone who reaches it may use, and
// of a NATS listener open to the network without credentials.
func (c *serveConfig) warnOpen(log *slog.Logger) {
	if c.Token == "" && c.RunToken == "" && !loopback(c.HTTP) {
		log.Warn("the HTTP API has no token and listens on " + c.HTTP + ": anyone who can reach it can run code on this machine; set --token (SCRIPTHOST_TOKEN) or listen on 127.0.0.1")
	}
	if c.NATS == "" && c.NATSUser == "" && !c.needsGeneratedCreds() && c.NATSListen != bus.ListenNone && !loopback(c.NATSListen) {
		log.Warn("the embedded NATS server has no credentials and listens on " + c.NATSListen + ": anyone who can reach it can run and write scripts; set --nats-user and --nats-password")
	}
}

// loopback tells whether a listen address only accepts local connections.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// cpuSeconds is a CPU time flag: a number of seconds (60) or a duration
// (1m30s).
type cpuSeconds time.Duration

func (c *cpuSeconds) String() string {
	d := time.Duration(*c)
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10)
	}
	return d.String()
}

func (c *cpuSeconds) Set(s string) error {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || math.IsNaN(f) || f > math.MaxInt64/float64(time.Second) {
			return fmt.Errorf("invalid CPU time %q", s)
		}
		*c = cpuSeconds(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("invalid CPU time %q: want seconds (60) or a duration (1m30s)", s)
	}
	*c = cpuSeconds(d)
	return nil
}
