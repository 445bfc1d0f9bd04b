package executor

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Preflight checks, as a node starts and before its runner does, that the
// runs cfg describes can take place, and says who runs them: it logs the
// run user (a warning for root), checks the user against the interpreter
// and the scripts folder (checkRunUser), and warns when the user already
// has so many processes that --max-procs leaves its runs little room. Its
// error is that of a node that should not start.
func Preflight(cfg RunnerConfig, pc PreflightConfig) error {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cred := cfg.RunAs
	runUID := uint32(os.Geteuid())
	if cred != nil {
		runUID = cred.Uid
		log.Info("scripts run as user "+cred.String(), "run_as", cred.Name)
		if err := checkRunUser(cred, pc.DefaultUser, pc.Fork, cfg.Python, pc.ScriptsDir, log); err != nil {
			return err
		}
	} else if os.Geteuid() == 0 {
		log.Warn("scripts run as root (--run-as root): a script can do anything the server can")
	}
	switch maxProcs := cfg.Limits.MaxProcs; {
	case maxProcs == 0:
	case runUID == 0:
		log.Warn("--max-procs does not bind scripts that run as root")
	default:
		if n := userTasks(runUID); n > maxProcs/2 {
			log.Warn("the run user already has many processes and threads; --max-procs counts them all, so scripts may fail to start threads or processes: run them as a user of their own (--run-as, as root) or raise --max-procs",
				"uid", runUID, "tasks", n, "max_procs", maxProcs)
		}
	}
	return nil
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
func checkRunUser(cred *Credential, byDefault, fork bool, python, dir string, log *slog.Logger) error {
	execErr, folderOK := runUserAccess(cred, python, dir)
	fix := "make them accessible to that user (folders 0755, scripts 0644, an interpreter outside /root, e.g. --python /usr/bin/python3), or choose the user with --run-as"
	if execErr != nil {
		if alt := interpreterFor(cred, python); alt != "" {
			fix = "use --python " + alt + ", which the run user can run; or " + fix
		}
	}
	switch {
	case execErr != nil && !fork && byDefault:
		return fmt.Errorf("scripts run as %s (the default run user when the server is root), who cannot run the interpreter %s (%v): %s (--run-as root runs them as root)",
			cred.Name, python, execErr, fix)
	case execErr != nil && !fork:
		log.Warn("the run user "+cred.Name+" cannot run the interpreter: every run will fail; "+fix, "python", python, "err", execErr)
	case execErr != nil:
		log.Warn("the run user "+cred.Name+" cannot run the interpreter: scripts can only import the modules the warm interpreter loaded; "+fix, "python", python, "err", execErr)
	}
	switch {
	case folderOK:
	case !fork:
		log.Warn("the run user "+cred.Name+" cannot read the scripts folder: every run will fail; "+fix, "scripts", dir)
	default:
		log.Warn("the run user "+cred.Name+" cannot read the scripts folder: scripts run, but cannot read files beside them nor import each other; "+fix, "scripts", dir)
	}
	return nil
}

// interpreterFor returns a system interpreter other than python that
// cred can run, or "".
func interpreterFor(cred *Credential, python string) string {
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
func runUserAccess(cred *Credential, python, dir string) (execErr error, folderOK bool) {
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
func canEnter(cred *Credential, dir string, read bool) bool {
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
func permits(cred *Credential, fi os.FileInfo, need os.FileMode) bool {
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
