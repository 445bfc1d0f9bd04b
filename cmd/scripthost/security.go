package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
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

// defaultRunAs is the user scripts run as when the server runs as root and
// --run-as is not given.
const defaultRunAs = "nobody"

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
	fs.StringVar(&c.RunAs, "run-as", "", "user (name or uid) the scripts run as when the server runs as root (default "+defaultRunAs+"; 'root' only if given)")
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

// validateSecurity checks the security flags, also against the others.
func (c *serveConfig) validateSecurity() error {
	if err := c.securityConfig.validate(); err != nil {
		return err
	}
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
func (c *serveConfig) runnerConfig(python, scriptsDir string, log *slog.Logger) (executor.RunnerConfig, error) {
	cred, err := resolveRunAs(c.RunAs)
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
	runUID := uint32(os.Geteuid())
	if cred != nil {
		runUID = cred.Uid
		log.Info("scripts run as user "+cred.String(), "run_as", cred.Name)
		if err := checkRunUser(cred, c.RunAs == "", c.Mode, python, scriptsDir, log); err != nil {
			return executor.RunnerConfig{}, err
		}
	} else if os.Geteuid() == 0 {
		log.Warn("scripts run as root (--run-as root): a script can do anything the server can")
	}
	switch {
	case rc.Limits.MaxProcs == 0:
	case runUID == 0:
		log.Warn("--max-procs does not bind scripts that run as root")
	default:
		if n := userTasks(runUID); n > rc.Limits.MaxProcs/2 {
			log.Warn("the run user already has many processes and threads; --max-procs counts them all, so scripts may fail to start threads or processes: run them as a user of their own (--run-as, as root) or raise --max-procs",
				"uid", runUID, "tasks", n, "max_procs", rc.Limits.MaxProcs)
		}
	}
	return rc, nil
}

// scriptsDirOf is the folder where a node finds its scripts, for the
// checks of the run user.
func scriptsDirOf(scripts executor.Scripts) string {
	if d, ok := scripts.(interface{ Dir() string }); ok {
		return d.Dir()
	}
	return ""
}

// resolveRunAs is the user scripts run as: nil for the server's own user.
// As root, the default is nobody and root only when asked for by name.
// Otherwise the server cannot switch users, and --run-as may only name
// the server's own.
func resolveRunAs(spec string) (*executor.Credential, error) {
	euid := os.Geteuid()
	if spec == "" {
		if euid != 0 {
			return nil, nil
		}
		spec = defaultRunAs
	}
	cred, err := lookupUser(spec)
	if err != nil {
		return nil, err
	}
	if int(cred.Uid) == euid {
		return nil, nil
	}
	if euid != 0 {
		return nil, fmt.Errorf("--run-as %s: the server runs as uid %d; only root can run scripts as another user", spec, euid)
	}
	return cred, nil
}

// lookupUser finds a user by name or uid. A uid that names no user is
// taken with a group of the same number (containers often run ids that
// have no entry); nobody without an entry is 65534.
func lookupUser(spec string) (*executor.Credential, error) {
	n, numErr := strconv.ParseUint(spec, 10, 32)
	var u *user.User
	var err error
	if numErr == nil {
		u, err = user.LookupId(spec)
	} else {
		u, err = user.Lookup(spec)
	}
	var unknownID user.UnknownUserIdError
	var unknown user.UnknownUserError
	switch {
	case err == nil:
	case numErr == nil && errors.As(err, &unknownID):
		return &executor.Credential{Name: spec, Uid: uint32(n), Gid: uint32(n), Groups: []uint32{uint32(n)}, Home: "/nonexistent"}, nil
	case spec == "nobody" && errors.As(err, &unknown):
		return &executor.Credential{Name: spec, Uid: 65534, Gid: 65534, Groups: []uint32{65534}, Home: "/nonexistent"}, nil
	default:
		return nil, fmt.Errorf("--run-as %s: %w", spec, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("--run-as %s: uid %q, gid %q are not numbers", spec, u.Uid, u.Gid)
	}
	cred := &executor.Credential{Name: u.Username, Uid: uint32(uid), Gid: uint32(gid), Home: u.HomeDir}
	ids, err := u.GroupIds()
	if err != nil {
		ids = []string{u.Gid}
	}
	for _, id := range ids {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil {
			cred.Groups = append(cred.Groups, uint32(g))
		}
	}
	return cred, nil
}

// checkRunUser checks that the run user can run scripts here. It never
// falls back to root: scripts run as root only when --run-as names it.
//   - Spawn mode execs the interpreter as the run user, who must be able to
//     run it: if the default user (nobody) cannot, the server refuses to
//     start rather than fail every run; a user given by --run-as gets a
//     warning. Nor can it open scripts in a folder it cannot read.
//   - Fork mode's warm interpreter runs as the server, and each run's child
//     enters the folder and opens the script before it switches users: it
//     runs, but cannot import modules the warm interpreter did not load
//     when the interpreter is out of reach, nor read beside the script when
//     the folder is.
func checkRunUser(cred *executor.Credential, byDefault bool, mode, python, dir string, log *slog.Logger) error {
	execErr, folderOK := runUserAccess(cred, python, dir)
	fix := "make them accessible to that user (folders 0755, scripts 0644, an interpreter outside /root, e.g. --python /usr/bin/python3), or choose the user with --run-as"
	if execErr != nil {
		if alt := interpreterFor(cred, python); alt != "" {
			fix = "--python " + alt + " is one that " + cred.Name + " can run; or " + fix
		}
	}
	switch {
	case execErr != nil && mode == "spawn" && byDefault:
		return fmt.Errorf("scripts run as %s (the default run user when the server is root), who cannot run the interpreter %s (%v): %s (--run-as root runs them as root)",
			cred.Name, python, execErr, fix)
	case execErr != nil && mode == "spawn":
		log.Warn("the run user "+cred.Name+" cannot run the interpreter: every run will fail; "+fix, "python", python, "err", execErr)
	case execErr != nil:
		log.Warn("the run user "+cred.Name+" cannot run the interpreter: scripts can only import the modules the warm interpreter loaded; "+fix, "python", python, "err", execErr)
	}
	switch {
	case folderOK:
	case mode == "spawn":
		log.Warn("the run user "+cred.Name+" cannot read the scripts folder: every run will fail; "+fix, "scripts", dir)
	default:
		log.Warn("the run user "+cred.Name+" cannot read the scripts folder: scripts run, but cannot read files beside them nor import each other; "+fix, "scripts", dir)
	}
	return nil
}

// interpreterFor returns a system interpreter other than python that
// cred can run, or "".
func interpreterFor(cred *executor.Credential, python string) string {
	for _, alt := range []string{"/usr/bin/python3", "/usr/local/bin/python3"} {
		real, err := filepath.EvalSymlinks(alt)
		if err != nil || real == python || alt == python {
			continue
		}
		if err, _ := runUserAccess(cred, alt, ""); err == nil {
			return alt
		}
	}
	return ""
}

// runUserAccess tells whether the run user can execute the interpreter
// (nil) and read the scripts folder. The folder is judged by its mode bits
// and those of the folders above it (ACLs are not looked at).
func runUserAccess(cred *executor.Credential, python, dir string) (execErr error, folderOK bool) {
	cmd := exec.Command(python, "-S", "-c", "pass")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: cred.Uid, Gid: cred.Gid, Groups: cred.Groups}}
	if out, err := cmd.CombinedOutput(); err != nil {
		execErr = err
		if msg := strings.TrimSpace(string(out)); msg != "" {
			execErr = fmt.Errorf("%w: %s", err, msg)
		}
	}
	return execErr, dir == "" || canEnter(cred, dir, true)
}

// canEnter tells whether cred may search every folder down to dir, and
// read dir itself when read is set, by the mode bits.
func canEnter(cred *executor.Credential, dir string, read bool) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return false
		}
		need := os.FileMode(1) // search
		if read && p == abs {
			need |= 4
		}
		if !permits(cred, fi, need) {
			return false
		}
		if p == filepath.Dir(p) {
			return true
		}
	}
}

// permits applies the owner, group or other bits of fi that apply to cred.
func permits(cred *executor.Credential, fi os.FileInfo, need os.FileMode) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == cred.Uid:
		perm >>= 6
	case st.Gid == cred.Gid || slices.Contains(cred.Groups, st.Gid):
		perm >>= 3
	}
	return perm&need == need
}

// userTasks counts the processes and threads of uid, as RLIMIT_NPROC does.
func userTasks(uid uint32) int {
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		var owner bool
		threads := 1
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) > 1 {
				switch f[0] {
				case "Uid:":
					owner = f[1] == strconv.FormatUint(uint64(uid), 10)
				case "Threads:":
					threads, _ = strconv.Atoi(f[1])
				}
			}
		}
		if owner {
			n += threads
		}
	}
	return n
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
