package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scripthost/scripthost/executor"
	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// runProcesses lists the live processes (not zombies) whose working
// directory is dir: the processes of runs of the scripts in dir.
func runProcesses(dir string) []string {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		real = dir
	}
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || cwd != real {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if i := bytes.LastIndexByte(stat, ')'); err == nil && i > 0 && i+2 < len(stat) && stat[i+2] != 'Z' && stat[i+2] != 'X' {
			found = append(found, e.Name())
		}
	}
	return found
}

// waitNoRunLeft waits until no process of a run of dir is alive.
func waitNoRunLeft(t *testing.T, dir string) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, "the runs' processes to be gone", func() bool {
		return len(runProcesses(dir)) == 0
	})
}

// Each hostile script is contained: the answer says what happened, the
// server keeps answering, and nothing of the run is left.
func TestHostileScriptsContained(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxMemory = 256 << 20
	cfg.MaxCPU = cpuSeconds(time.Second)
	cfg.MaxOpenFiles = 64
	cfg.MaxOutput = 64 << 10
	// The scripts that run into the timeout (closeall.py, the floods)
	// wait for it: it is short.
	cfg.Timeout = 8 * time.Second
	cfg.CacheTTL = 0
	scripts := map[string]string{
		"hog.py":        "b = bytearray(8 << 30)\n",
		"creep.py":      "chunks = []\nwhile True:\n    chunks.append(bytearray(32 << 20))\n",
		"spin.py":       "while True:\n    pass\n",
		"flood.py":      "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
		"errflood.py":   "import os\nwhile True:\n    os.write(2, b'e' * 65536)\n",
		"closeout.py":   "import os, sys, time\nprint('before', flush=True)\nos.close(1)\ntime.sleep(0.2)\nprint('after', file=sys.stderr)\n",
		"closeall.py":   "import os, time\nos.close(1)\nos.close(2)\ntime.sleep(60)\n",
		"files.py":      "import os\nfds = []\ntry:\n    while True:\n        fds.append(os.open(os.devnull, os.O_RDONLY))\nexcept OSError as e:\n    print(len(fds) < 64, e.strerror)\n",
		"orphans.py":    "import subprocess, sys\nfor _ in range(5):\n    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\nprint('left them')\n",
		"daemonize.py":  "import os, time\nif os.fork() == 0:\n    os.close(1)\n    os.close(2)\n    time.sleep(60)\n    os._exit(0)\nprint('parent done')\n",
		"recursion.py":  "import sys\nsys.setrecursionlimit(10**9)\ndef f(n):\n    return f(n + 1)\nf(0)\n",
		"bigstack.py":   "import threading\nthreading.stack_size(512 << 20)\nt = threading.Thread(target=print)\ntry:\n    t.start()\nexcept RuntimeError as e:\n    print('refused:', e)\n",
		"killself.py":   "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
		"stdinflood.py": "import time\ntime.sleep(0.5)\nprint('never read stdin')\n",
	}
	ts := startTest(t, cfg, scripts)
	// The scripts that must meet their end in the CPU limit (spin.py,
	// recursion.py) run on a server whose timeout no CPU second can
	// outlast: on two cores shared by twenty busy processes a spinning
	// script gets a tenth of a core, ten seconds of wall time for its CPU
	// second, more than the short timeout. The CPU limit, 1 s, is the
	// least RLIMIT_CPU can be.
	cpuCfg := cfg
	cpuCfg.Scripts = t.TempDir()
	cpuCfg.DataDir = t.TempDir()
	cpuCfg.Timeout = 3 * time.Minute
	cpuTS := startTest(t, cpuCfg, scripts)
	big := jsonBody(t, map[string]any{"data": strings.Repeat("y", 900<<10)})
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tests := []struct {
		name   string
		body   string
		status int
		check  func(res model.Result) bool
		cpu    bool // run on cpuTS, where only the CPU limit ends it
	}{
		{"hog.py", "", 200, func(r model.Result) bool { return exitIs(r, 1) && strings.Contains(r.Stderr, "MemoryError") }, false},
		{"creep.py", "", 200, func(r model.Result) bool { return exitIs(r, 1) && strings.Contains(r.Stderr, "MemoryError") }, false},
		{"spin.py", "", 200, func(r model.Result) bool { return r.ExitCode == nil && r.Signal == "SIGXCPU" && !r.TimedOut }, true},
		// Endless output runs into the timeout or, writing flat out,
		// the CPU limit first; either way the output is capped.
		{"flood.py", "", 0, func(r model.Result) bool {
			return r.StdoutTruncated && len(r.Stdout) == 64<<10 && (r.TimedOut && r.Signal == "SIGKILL" || r.Signal == "SIGXCPU")
		}, false},
		{"errflood.py", "", 0, func(r model.Result) bool {
			return r.StderrTruncated && len(r.Stderr) == 64<<10 && (r.TimedOut || r.Signal == "SIGXCPU")
		}, false},
		{"closeout.py", "", 200, func(r model.Result) bool { return exitIs(r, 0) && r.Stdout == "before\n" && r.Stderr == "after\n" }, false},
		{"closeall.py", "", 504, func(r model.Result) bool { return r.TimedOut && r.Stdout == "" }, false},
		{"files.py", "", 200, func(r model.Result) bool { return exitIs(r, 0) && r.Stdout == "True Too many open files\n" }, false},
		{"orphans.py", "", 200, func(r model.Result) bool { return exitIs(r, 0) && r.Stdout == "left them\n" }, false},
		{"daemonize.py", "", 200, func(r model.Result) bool { return exitIs(r, 0) && r.Stdout == "parent done\n" }, false},
		{"recursion.py", "", 200, func(r model.Result) bool {
			// CPython overflows its C stack (SIGSEGV), hits the address
			// space limit (MemoryError) or the CPU limit: the run ends.
			return !r.TimedOut && (r.Signal == "SIGSEGV" || r.Signal == "SIGXCPU" || (r.ExitCode != nil && *r.ExitCode != 0))
		}, true},
		{"bigstack.py", "", 200, func(r model.Result) bool { return exitIs(r, 0) && strings.HasPrefix(r.Stdout, "refused:") }, false},
		{"killself.py", "", 200, func(r model.Result) bool { return r.ExitCode == nil && r.Signal == "SIGKILL" && !r.TimedOut }, false},
		{"stdinflood.py", big, 200, func(r model.Result) bool { return exitIs(r, 0) && r.Stdout == "never read stdin\n" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ts
			if tt.cpu {
				srv = cpuTS
			}
			start := time.Now()
			resp := srv.do("POST", "/run/"+tt.name, tt.body)
			if resp.status != tt.status && (tt.status != 0 || resp.status != 200 && resp.status != 504) {
				t.Fatalf("status %d, want %d: %s", resp.status, tt.status, cut(resp.body))
			}
			if res := resp.result(t); !tt.check(res) {
				t.Fatalf("result not as expected: exit %v signal %q timed out %v truncated %v/%v stdout %q stderr %q",
					res.ExitCode, res.Signal, res.TimedOut, res.StdoutTruncated, res.StderrTruncated, cut([]byte(res.Stdout)), cut([]byte(res.Stderr)))
			}
			// The timeout ends a run, with room for the kill and the
			// answer on a busy machine.
			if d := time.Since(start); d > srv.cfg.Timeout+20*time.Second {
				t.Fatalf("the run took %v", d)
			}
			srv.do("GET", "/healthz", "").want(t, 200)
			waitNoRunLeft(t, srv.cfg.Scripts)
		})
	}
	// The server's own memory stayed bounded through gigabytes of output.
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 64<<20 {
		t.Errorf("the server's heap grew by %d MiB", grew>>20)
	}
	// And it still runs scripts.
	ts.write("ok.py", "print('ok')")
	testutil.WaitFor(t, 30*time.Second, "ok.py", func() bool { return ts.do("POST", "/run/ok.py", "").status == 200 })
}

func exitIs(r model.Result, code int) bool { return r.ExitCode != nil && *r.ExitCode == code }

func cut(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// nobodyConfig is a test configuration whose scripts run as nobody: a
// folder nobody can read and an interpreter nobody can run. It skips the
// test unless the tests run as root and such an interpreter exists.
func nobodyConfig(t *testing.T) serveConfig {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	cfg := testConfig(t)
	dir, err := os.MkdirTemp("", "scripthost-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.Scripts = dir
	cfg.RunAs = "nobody"
	for _, python := range []string{testutil.Python(t), "/usr/bin/python3", "/usr/local/bin/python3"} {
		cmd := exec.Command(python, "-c", "import sys; print(sys.executable)")
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := cmd.Output(); err == nil {
			cfg.Python = strings.TrimSpace(string(out))
			return cfg
		}
	}
	t.Skip("no interpreter that nobody may run")
	return cfg
}

func TestRunAsUser(t *testing.T) {
	whoami := "import os\nprint(os.getuid(), os.getgid(), os.geteuid())\n"
	tests := []struct {
		name  string
		runAs string
		want  string
	}{
		{"default when root is nobody", "", "65534 65534 65534\n"},
		{"by name", "nobody", "65534 65534 65534\n"},
		{"by uid", "65534", "65534 65534 65534\n"},
		{"a uid without an entry", "4242", "4242 4242 4242\n"},
		{"root only when named", "root", "0 0 0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := nobodyConfig(t)
			cfg.RunAs = tt.runAs
			ts := startTest(t, cfg, map[string]string{"whoami.py": whoami, "write.py": "open('mine.txt', 'w').write('x')\nprint('wrote')\n"})
			if got := ts.do("POST", "/run/whoami.py", "").want(t, 200).result(t).Stdout; got != tt.want {
				t.Fatalf("uid, gid, euid: %q, want %q", got, tt.want)
			}
			// The scripts folder is the admin's: not writable unless made so.
			res := ts.do("POST", "/run/write.py", "").want(t, 200).result(t)
			if wrote := res.Stdout == "wrote\n"; wrote != (tt.runAs == "root") {
				t.Fatalf("write into the scripts folder: %+v", res)
			}
		})
	}
}

// A fork bomb is held by --max-procs, ends at the timeout, and leaves
// nothing behind: no process, no zombie. Its scripts run as a user of
// their own (a uid no other process on the machine has), so the process
// limit and the counts here are of this test's runs alone.
func TestForkBombContained(t *testing.T) {
	cfg := nobodyConfig(t)
	uid := freshUID()
	cfg.RunAs = strconv.FormatUint(uint64(uid), 10)
	cfg.Python = pythonFor(t, uid, cfg.Scripts)
	cfg.MaxProcs = 64
	cfg.Timeout = 2 * time.Second
	ts := startTest(t, cfg, map[string]string{
		"bomb.py":    "import os\nprint('boom', flush=True)\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
		"threads.py": "import threading\nstop = threading.Event()\nn = 0\ntry:\n    for n in range(10000):\n        threading.Thread(target=stop.wait, daemon=True).start()\nexcept RuntimeError:\n    pass\nstop.set()\nprint(0 < n < 10000)\n",
	})
	res := ts.do("POST", "/run/bomb.py", "").want(t, 504).result(t)
	if !res.TimedOut || !strings.HasPrefix(res.Stdout, "boom\n") {
		t.Fatalf("bomb: %+v", res)
	}
	ts.do("GET", "/healthz", "").want(t, 200)
	waitNoRunLeft(t, cfg.Scripts)
	testutil.WaitFor(t, 20*time.Second, "the bomb's processes to be gone", func() bool { return uidTasks(uid) == 0 })
	// Thousands of threads: held by the same limit, the script sees it.
	if res := ts.do("POST", "/run/threads.py", "").want(t, 200).result(t); res.Stdout != "True\n" {
		t.Fatalf("threads: %+v", res)
	}
	testutil.WaitFor(t, 20*time.Second, "the threads to be gone", func() bool { return uidTasks(uid) == 0 })
}

// uidTasks counts the processes and threads of uid, zombies included.
func uidTasks(uid uint32) int {
	live, zombies := testutil.UserTasks(uid)
	return live + zombies
}

// canRun tells whether cred can run the interpreter python, as the
// server's check of the run user asks it (executor.Preflight).
func canRun(cred *executor.Credential, python string) bool {
	cmd := exec.Command(python, "-S", "-c", "pass")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: cred.Uid, Gid: cred.Gid, Groups: cred.Groups}}
	return cmd.Run() == nil
}

// lastUID numbers the uids that freshUID hands out.
var lastUID atomic.Uint32

// freshUID returns a uid that no other process on the machine runs as: it
// has no passwd entry and is made of this test process's pid.
func freshUID() uint32 { return 1<<30 + uint32(os.Getpid())<<6 + lastUID.Add(1)%64 }

// pythonFor returns an interpreter that uid can run in dir, or skips.
func pythonFor(t *testing.T, uid uint32, dir string) string {
	t.Helper()
	for _, python := range []string{testutil.Python(t), "/usr/bin/python3", "/usr/local/bin/python3"} {
		cmd := exec.Command(python, "-c", "import sys; print(sys.executable)")
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		if out, err := cmd.Output(); err == nil {
			return strings.TrimSpace(string(out))
		}
	}
	t.Skipf("no interpreter that uid %d may run", uid)
	return ""
}

// Tokens and NATS credentials reach the server through SCRIPTHOST_*
// variables and flags; the scripts see none of them.
func TestSecretsNotInScriptEnvironment(t *testing.T) {
	t.Setenv("SCRIPTHOST_TOKEN", "tok-s3cret-admin")
	t.Setenv("SCRIPTHOST_RUN_TOKEN", "tok-s3cret-run")
	t.Setenv("SCRIPTHOST_NATS_PASSWORD", "nats-s3cret")
	cfg := testConfig(t)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var parsed serveConfig
	parsed.flags(fs)
	if err := parseFlags(fs, []string{"--nats-user", "admin"}); err != nil {
		t.Fatal(err)
	}
	cfg.securityConfig.Token, cfg.RunToken = parsed.Token, parsed.RunToken
	cfg.NATSUser, cfg.NATSPassword = parsed.NATSUser, parsed.NATSPassword
	if cfg.Token != "tok-s3cret-admin" || cfg.RunToken != "tok-s3cret-run" || cfg.NATSPassword != "nats-s3cret" {
		t.Fatalf("the environment did not set the flags: %+v", parsed.securityConfig)
	}
	ts := startTest(t, cfg, map[string]string{"env.py": "import os\nfor k, v in sorted(os.environ.items()):\n    print(k, v)\n"})
	res := ts.do("POST", "/run/env.py", "", "Authorization", "Bearer tok-s3cret-run").want(t, 200).result(t)
	if strings.Contains(res.Stdout, "s3cret") || strings.Contains(res.Stdout, "SCRIPTHOST_") {
		t.Fatalf("the script sees secrets:\n%s", res.Stdout)
	}
	if !strings.Contains(res.Stdout, "PATH ") {
		t.Fatalf("the script lost the rest of the environment:\n%s", res.Stdout)
	}
}

func TestSecurityFlags(t *testing.T) {
	parse := func(t *testing.T, env map[string]string, args ...string) (serveConfig, error) {
		t.Helper()
		for k, v := range env {
			t.Setenv(k, v)
		}
		var cfg serveConfig
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(testutil.LogWriter(t))
		cfg.flags(fs)
		if err := parseFlags(fs, args); err != nil {
			return cfg, err
		}
		return cfg, cfg.validate()
	}
	t.Run("defaults", func(t *testing.T) {
		cfg, err := parse(t, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := securityConfig{MaxMemory: 1 << 30, MaxCPU: cpuSeconds(300 * time.Second), MaxProcs: 1024, MaxOpenFiles: 1024,
			Sandbox: "auto", Network: "none"}
		if cfg.securityConfig != want {
			t.Fatalf("defaults %+v, want %+v", cfg.securityConfig, want)
		}
	})
	t.Run("flags", func(t *testing.T) {
		cfg, err := parse(t, nil, "--max-memory", "512MiB", "--max-cpu", "10", "--max-procs", "50", "--max-open-files", "100",
			"--run-as", "nobody", "--token", "a", "--run-token", "r", "--nats-user", "u", "--nats-password", "p",
			"--nats-run-user", "ru", "--nats-run-password", "rp", "--sandbox", "on", "--network", "host")
		if err != nil {
			t.Fatal(err)
		}
		want := securityConfig{MaxMemory: 512 << 20, MaxCPU: cpuSeconds(10 * time.Second), MaxProcs: 50, MaxOpenFiles: 100,
			RunAs: "nobody", Token: "a", RunToken: "r", NATSUser: "u", NATSPassword: "p", NATSRunUser: "ru", NATSRunPassword: "rp",
			Sandbox: "on", Network: "host"}
		if cfg.securityConfig != want {
			t.Fatalf("got %+v, want %+v", cfg.securityConfig, want)
		}
	})
	t.Run("environment", func(t *testing.T) {
		cfg, err := parse(t, map[string]string{
			"SCRIPTHOST_MAX_MEMORY": "0", "SCRIPTHOST_MAX_CPU": "1m30s", "SCRIPTHOST_MAX_PROCS": "0",
			"SCRIPTHOST_MAX_OPEN_FILES": "0", "SCRIPTHOST_RUN_AS": "root", "SCRIPTHOST_TOKEN": "t",
			"SCRIPTHOST_SANDBOX": "off",
		})
		if err != nil {
			t.Fatal(err)
		}
		want := securityConfig{MaxCPU: cpuSeconds(90 * time.Second), RunAs: "root", Token: "t", Sandbox: "off", Network: "none"}
		if cfg.securityConfig != want {
			t.Fatalf("got %+v, want %+v", cfg.securityConfig, want)
		}
	})
	for _, bad := range [][]string{
		{"--max-cpu", "-1"}, {"--max-cpu", "soon"}, {"--max-procs", "-1"}, {"--max-open-files", "-2"},
		{"--max-open-files", "3"}, {"--max-memory", "1MiB"}, {"--token", "x", "--run-token", "x"},
		{"--nats-password", "p"}, {"--nats-user", "u"}, {"--sandbox", "yes"}, {"--network", "bridge"}, {"--nats-run-user", "r", "--nats-run-password", "p"},
		{"--nats-user", "u", "--nats-password", "p", "--nats-run-user", "u", "--nats-run-password", "q"},
		{"--nats", "nats://h:4222", "--nats-user", "u", "--nats-password", "p", "--nats-run-user", "r", "--nats-run-password", "q"},
	} {
		t.Run(strings.Join(bad, " "), func(t *testing.T) {
			if _, err := parse(t, nil, bad...); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// As root, the default run user is nobody even where nobody cannot reach
// the interpreter or the folder (pyenv's python3 under /root, a 0700
// test folder): scripts never run as root unless asked for. Fork mode
// runs them (its child opens the script before it switches users); spawn
// mode refuses to start when nobody cannot run the interpreter.
func TestDefaultRunUserNeverRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the default run user is for a server that runs as root")
	}
	cfg := testConfig(t)
	cfg.RunAs = ""
	if err := os.WriteFile(filepath.Join(cfg.Scripts, "whoami.py"), []byte("import os\nprint(os.getuid(), os.access(__file__, os.R_OK))\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if cfg.Mode == "spawn" {
		python, err := executor.ResolvePython(cfg.Python)
		if err != nil {
			t.Fatal(err)
		}
		cred, _ := executor.ResolveRunUser("")
		if !canRun(cred, python) {
			s, err := startServer(cfg, slogTo(testutil.LogWriter(t)))
			if err == nil {
				s.shutdown()
				t.Fatal("spawn mode started with a default run user that cannot run the interpreter")
			}
			if !strings.Contains(err.Error(), "--run-as") {
				t.Fatalf("error %v does not say what to do", err)
			}
			return
		}
		ts := startTest(t, cfg, nil)
		res := ts.do("POST", "/run/whoami.py", "").want(t, 200).result(t)
		if !strings.Contains(res.Stderr, "ermission denied") {
			t.Fatalf("spawn mode, a folder nobody cannot read: %+v", res)
		}
		return
	}
	ts := startTest(t, cfg, nil)
	res := ts.do("POST", "/run/whoami.py", "").want(t, 200).result(t)
	if res.Stdout != "65534 False\n" {
		t.Fatalf("fork mode, default run user in a folder only root reads: %+v", res)
	}
}
