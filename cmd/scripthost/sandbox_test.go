package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scripthost/scripthost/client"
	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// The run sandbox, tried as an attacker would: each test runs hostile
// scripts through the real binary, in both modes, and checks from outside
// that the attack is contained. Processes are looked for by a marker of
// the test's own in their command lines, never by counting a user's.

// sandboxBinary is the real binary with the sandbox on.
type sandboxBinary struct {
	t        *testing.T
	p        *process
	base     string
	dir      string
	httpAddr string
	natsAddr string
	token    string
	api      *client.HTTP // a client of its HTTP API, with the token
}

// pythonForNobody is an interpreter that nobody may run, or "" if none.
var pythonForNobody = sync.OnceValue(func() string {
	tests, _ := testutil.PythonPath()
	for _, python := range []string{"/usr/bin/python3", "/usr/local/bin/python3", tests} {
		cmd := exec.Command(python, "-c", "import sys; print(sys.executable)")
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := cmd.Output(); err == nil {
			return strings.TrimSpace(string(out))
		}
	}
	return ""
})

// startSandboxed starts the binary in mode with the sandbox on, scripts in
// a folder nobody may read, run as runAs; extra flags follow.
func startSandboxed(t *testing.T, mode, runAs string, scripts map[string]string, extra ...string) *sandboxBinary {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root")
	}
	python := pythonForNobody()
	if python == "" {
		t.Skip("no interpreter that nobody may run")
	}
	dir, err := os.MkdirTemp("", "scripthost-sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, code := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sb := &sandboxBinary{t: t, dir: dir, httpAddr: freePort(t), natsAddr: freePort(t), token: fmt.Sprintf("srvtok%d", rand.Uint64())}
	args := append([]string{"serve", "--http", sb.httpAddr, "--nats-listen", sb.natsAddr, "--scripts", dir,
		"--python", python, "--mode", mode, "--sandbox", "on", "--cache-ttl", "0", "--run-as", runAs,
		"--token", sb.token, "--timeout", "30s"}, extra...)
	sb.p = startBinary(t, nil, args...)
	// Stopped, not killed, so that it removes its cgroups and folders.
	t.Cleanup(func() {
		_ = sb.p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-sb.p.done:
			sb.p.done <- err
		case <-time.After(20 * time.Second):
		}
	})
	sb.base = "http://" + sb.httpAddr
	sb.api = httpClient(t, sb.base, sb.token)
	waitHTTP(t, sb.base+"/healthz")
	return sb
}

// run runs a script with args and returns its result.
func (sb *sandboxBinary) run(name string, args ...string) model.Result {
	sb.t.Helper()
	res, err := sb.try(name, args...)
	if err != nil {
		sb.t.Fatal(err)
	}
	return res
}

// start runs name in a goroutine of its own, and returns what waits for
// its result and fails the test as run does, from the test's goroutine.
func (sb *sandboxBinary) start(name string, args ...string) (wait func() model.Result) {
	type answer struct {
		res model.Result
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := sb.try(name, args...)
		done <- answer{res, err}
	}()
	return func() model.Result {
		sb.t.Helper()
		a := <-done
		if a.err != nil {
			sb.t.Fatal(a.err)
		}
		return a.res
	}
}

// try is run for any goroutine: it returns what went wrong.
func (sb *sandboxBinary) try(name string, args ...string) (model.Result, error) {
	ans, err := sb.api.Run(context.Background(), name, model.RunRequest{Args: args}, client.RunOptions{})
	if err != nil || ans.Result.TimedOut {
		return model.Result{}, fmt.Errorf("run %s: %v %+v", name, err, ans.Result)
	}
	return ans.Result, nil
}

// jsonOut decodes the run's stdout as JSON, failing on a failed run.
func jsonOut(t *testing.T, res model.Result, v any) {
	t.Helper()
	if res.ExitCode == nil || *res.ExitCode != 0 {
		t.Fatalf("run failed: %+v", res)
	}
	if err := json.Unmarshal([]byte(res.Stdout), v); err != nil {
		t.Fatalf("stdout %q: %v (stderr %q)", res.Stdout, err, res.Stderr)
	}
}

func forEachMode(t *testing.T, f func(t *testing.T, mode string)) {
	for _, mode := range []string{"fork", "spawn"} {
		t.Run(mode, func(t *testing.T) { f(t, mode) })
	}
}

const netScript = `import errno, json, socket, sys
out = {}
for name, port in zip(("listener", "http", "nats"), sys.argv[1:4]):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", int(port)))
        out[name] = "connected"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e))
    s.close()
# A route out: connecting a UDP socket sends nothing, it only looks one up.
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.connect(("192.0.2.1", 9))
    out["route"] = "found"
except OSError as e:
    out["route"] = errno.errorcode.get(e.errno, str(e))
out["interfaces"] = [n for _, n in socket.if_nameindex()]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
socket.create_connection(srv.getsockname(), timeout=5).close()
out["own_loopback"] = "ok"
print(json.dumps(out, sort_keys=True))
`

// No network but the run's own loopback: the test's own listener, the
// server's HTTP and NATS ports on 127.0.0.1 are refused, and there is no
// interface or route out. --network host gives the host's network back.
func TestSandboxNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	forEachMode(t, func(t *testing.T, mode string) {
		for _, network := range []string{"none", "host"} {
			t.Run(network, func(t *testing.T) {
				sb := startSandboxed(t, mode, "nobody", map[string]string{"net.py": netScript}, "--network", network)
				var out struct {
					Listener, HTTP, NATS, Route string
					OwnLoopback                 string `json:"own_loopback"`
					Interfaces                  []string
				}
				res := sb.run("net.py", port(ln.Addr().String()), port(sb.httpAddr), port(sb.natsAddr))
				jsonOut(t, res, &out)
				t.Logf("%s", res.Stdout)
				if out.OwnLoopback != "ok" {
					t.Fatalf("own loopback: %+v", out)
				}
				if network == "host" {
					if out.Listener != "connected" || out.HTTP != "connected" || out.NATS != "connected" {
						t.Fatalf("--network host: %+v", out)
					}
					return
				}
				if out.Listener != "ECONNREFUSED" || out.HTTP != "ECONNREFUSED" || out.NATS != "ECONNREFUSED" {
					t.Fatalf("reached the host's loopback: %+v", out)
				}
				if out.Route != "ENETUNREACH" || len(out.Interfaces) != 1 || out.Interfaces[0] != "lo" {
					t.Fatalf("a way out: %+v", out)
				}
			})
		}
	})
}

const peekScript = `import ctypes, errno, json, os, sys
victim = int(sys.argv[1])
secret = (sys.argv[2] + sys.argv[3]).encode()
token = (sys.argv[4] + sys.argv[5]).encode()
out = {"me": os.getpid()}
out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
seen = b""
for p in out["pids"]:
    for f in ("cmdline", "environ"):
        try:
            with open("/proc/%d/%s" % (p, f), "rb") as fh:
                seen += fh.read()
        except OSError:
            pass
out["secret_seen"] = secret in seen
out["token_seen"] = token in seen
def err(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
out["kill"] = err(lambda: os.kill(victim, 0))
out["mem"] = err(lambda: open("/proc/%d/mem" % victim, "rb").read(1))
out["environ"] = err(lambda: open("/proc/%d/environ" % victim, "rb").read())
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
out["ptrace"] = "ok" if libc.ptrace(16, victim, None, None) == 0 else errno.errorcode[ctypes.get_errno()]
print(json.dumps(out))
`

// A run sees no process outside itself: not another run (whose
// arguments hold a secret, and whose host pid it is given), nor the warm
// interpreter, nor the server (whose command line holds its token); it
// can neither signal, trace nor read another run.
func TestSandboxProcessesInvisible(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		sb := startSandboxed(t, mode, "nobody", map[string]string{
			// Its secret in a command line: the process's, which exec makes.
			"victim.py": "import os, sys\nos.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(8)', sys.argv[1]])\n",
			"peek.py":   peekScript,
		})
		secret := fmt.Sprintf("victimsecret%d", rand.Uint64())
		victimDone := sb.start("victim.py", secret)
		var victim int
		testutil.WaitFor(t, 20*time.Second, "the victim run", func() bool {
			if pids := testutil.MarkedPids(secret); len(pids) > 0 {
				victim = pids[0]
				return true
			}
			return false
		})
		var out struct {
			Me                         int
			Pids                       []int
			Secret                     bool `json:"secret_seen"`
			Token                      bool `json:"token_seen"`
			Kill, Mem, Environ, Ptrace string
		}
		res := sb.run("peek.py", strconv.Itoa(victim), secret[:6], secret[6:], sb.token[:3], sb.token[3:])
		jsonOut(t, res, &out)
		t.Logf("victim host pid %d: %s", victim, res.Stdout)
		if len(out.Pids) != 1 || out.Pids[0] != out.Me {
			t.Errorf("the run sees other processes: %v (it is %d)", out.Pids, out.Me)
		}
		if out.Secret || out.Token {
			t.Errorf("the run read another run's arguments (%v) or the server's command line (%v)", out.Secret, out.Token)
		}
		for what, got := range map[string]string{"kill": out.Kill, "mem": out.Mem, "environ": out.Environ, "ptrace": out.Ptrace} {
			if got != "ESRCH" && got != "ENOENT" {
				t.Errorf("%s of another run: %s", what, got)
			}
		}
		// The victim was not disturbed: it ends as it should.
		if r := victimDone(); r.ExitCode == nil || *r.ExitCode != 0 {
			t.Errorf("victim: %+v", r)
		}
	})
}

const daemonScript = `import os, sys
marker = sys.argv[1]
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(r)
        os.set_inheritable(w, True)
        os.execv(sys.executable, [sys.executable, "-c",
            "import os, sys, time\nos.write(int(sys.argv[1]), b'up')\ntime.sleep(120)", str(w), marker])
    os._exit(0)
os.close(w)
print(os.read(r, 2).decode(), flush=True)
`

// A setsid + double-fork daemon is gone when its run ends.
func TestSandboxDaemonGone(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		sb := startSandboxed(t, mode, "nobody", map[string]string{"daemon.py": daemonScript})
		marker := fmt.Sprintf("daemonmarker%d", rand.Uint64())
		res := sb.run("daemon.py", marker)
		if res.Stdout != "up\n" {
			t.Fatalf("the daemon did not start: %+v", res)
		}
		testutil.WaitFor(t, 10*time.Second, "the daemon to be gone", func() bool { return len(testutil.MarkedPids(marker)) == 0 })
	})
}

const memScript = `import subprocess, sys
code = "import sys, time\nb = b'x' * (120 << 20)\nsys.stdout.write('held\\n')\nsys.stdout.flush()\ntime.sleep(3)\n"
ps = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) for _ in range(int(sys.argv[1]))]
held = sum(1 for p in ps if p.stdout.readline() == b"held\n")
print(held, [p.wait() for p in ps])
`

const tmpfsScript = `import os
def fill(path, mib):
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(b"x" * (1 << 20))
try:
    fill("/tmp/a", 150)
    print("one held", flush=True)
    fill("/dev/shm/b", 150)
    print("both held", flush=True)
except OSError as e:
    print("refused", e.strerror, flush=True)
`

// --max-memory bounds the whole run: three children of 120 MiB cannot all
// hold their memory under 256 MiB (one alone can), nor can 150 MiB in
// /tmp and 150 MiB in /dev/shm.
func TestSandboxMemoryOfTheWholeRun(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		sb := startSandboxed(t, mode, "nobody", map[string]string{"mem.py": memScript, "tmpfs.py": tmpfsScript}, "--max-memory", "256MiB")
		if res := sb.run("mem.py", "1"); res.Stdout != "1 [0]\n" {
			t.Fatalf("one child of 120 MiB: %+v", res)
		}
		res := sb.run("mem.py", "3")
		t.Logf("three children: %+v", res)
		// One of them at least is killed (or fails to allocate): all three
		// cannot hold their memory at once.
		if strings.HasSuffix(res.Stdout, " [0, 0, 0]\n") || res.Stdout == "" && res.Signal == "" {
			t.Fatalf("three children of 120 MiB held under 256 MiB: %+v", res)
		}
		res = sb.run("tmpfs.py")
		t.Logf("tmpfs: %+v", res)
		if !strings.HasPrefix(res.Stdout, "one held\n") || strings.Contains(res.Stdout, "both held") {
			t.Fatalf("tmpfs beyond the run's memory: %+v", res)
		}
	})
}

const writerScript = `import os, sys
m = sys.argv[1]
paths = ["/tmp/" + m, "/dev/shm/" + m, os.path.join(os.environ["HOME"], m)]
for p in paths:
    with open(p, "w") as f:
        f.write("mine")
print(os.environ["HOME"], flush=True)
# Holding them, with a mark the test can see.
os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(3)", "written" + m])
`

const lookerScript = `import json, os, sys
m = sys.argv[1]
print(json.dumps({"seen": [p for p in ("/tmp/" + m, "/dev/shm/" + m, os.path.join(os.environ["HOME"], m)) if os.path.exists(p)],
                  "home": os.environ["HOME"], "home_writable": os.access(os.environ["HOME"], os.W_OK)}))
`

// /tmp, /dev/shm and HOME are the run's own: another run does not see
// what it writes there, nor does the host, and nothing is left after it.
func TestSandboxPrivateTmp(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		sb := startSandboxed(t, mode, "nobody", map[string]string{"writer.py": writerScript, "looker.py": lookerScript})
		marker := fmt.Sprintf("tmpmarker%d", rand.Uint64())
		writerDone := sb.start("writer.py", marker)
		testutil.WaitFor(t, 20*time.Second, "the writer to hold its files", func() bool { return len(testutil.MarkedPids("written"+marker)) > 0 })
		var look struct {
			Seen         []string
			Home         string
			HomeWritable bool `json:"home_writable"`
		}
		jsonOut(t, sb.run("looker.py", marker), &look)
		if len(look.Seen) != 0 || !look.HomeWritable || look.Home == os.Getenv("HOME") {
			t.Errorf("another run: %+v", look)
		}
		for _, p := range []string{"/tmp/" + marker, "/dev/shm/" + marker, filepath.Join(look.Home, marker)} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("the host sees %s", p)
			}
		}
		res := writerDone()
		if res.ExitCode == nil || *res.ExitCode != 0 {
			t.Fatalf("writer: %+v", res)
		}
		if len(look.Seen) == 0 {
			// After the run, a new one does not find them either.
			jsonOut(t, sb.run("looker.py", marker), &look)
			if len(look.Seen) != 0 {
				t.Errorf("left after the run: %v", look.Seen)
			}
		}
	})
}

const roScript = `import ctypes, errno, json, os
out = {"uid": os.getuid()}
for p in ["mine.txt", "/etc/scripthost-test", "/usr/scripthost-test", "/var/tmp/scripthost-test", "/root/scripthost-test"]:
    try:
        open(p, "w").close()
        out[p] = "written"
        os.unlink(p)
    except OSError as e:
        out[p] = errno.errorcode[e.errno]
with open("data.txt") as f:
    out["beside"] = f.read()
import helper
out["sibling"] = helper.VALUE
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
out["remount"] = "ok" if libc.mount(None, b"/", None, 32 | 4096, None) == 0 else errno.errorcode[ctypes.get_errno()]
out["umount"] = "ok" if libc.umount2(b"/tmp", 2) == 0 else errno.errorcode[ctypes.get_errno()]
print(json.dumps(out))
`

// The scripts folder and the system are read-only, even to a run as root
// (which keeps no capability to undo it); files beside a script are still
// readable and sibling modules importable.
func TestSandboxReadOnly(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		sb := startSandboxed(t, mode, "root", map[string]string{"ro.py": roScript, "helper.py": "VALUE = 'imported'\n", "data.txt": "beside it"})
		var out map[string]any
		res := sb.run("ro.py")
		jsonOut(t, res, &out)
		t.Logf("%s", res.Stdout)
		want := map[string]any{"uid": float64(0), "beside": "beside it", "sibling": "imported", "remount": "EPERM", "umount": "EPERM",
			"mine.txt": "EROFS", "/etc/scripthost-test": "EROFS", "/usr/scripthost-test": "EROFS", "/var/tmp/scripthost-test": "EROFS", "/root/scripthost-test": "EROFS"}
		for k, v := range want {
			if out[k] != v {
				t.Errorf("%s: %v, want %v", k, out[k], v)
			}
		}
		if _, err := os.Stat(filepath.Join(sb.dir, "mine.txt")); err == nil {
			t.Error("the run wrote into the scripts folder")
		}
	})
}

const scanScript = `import sys
h1, h2, own = (a.encode() for a in sys.argv[1:4])
found = own_found = False
with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
    for line in maps:
        f = line.split()
        if f[1][0] != "r" or line.rstrip().endswith(("[vvar]", "[vsyscall]", "[vvar_vclock]")):
            continue
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        try:
            mem.seek(lo)
            data = mem.read(hi - lo)
        except (OSError, ValueError, OverflowError):
            continue
        own_found = own_found or own in data
        i = data.find(h1)
        while i >= 0 and not found:
            found = data[i + len(h1):i + len(h1) + len(h2)] == h2
            i = data.find(h1, i + 1)
print(found, own_found)
`

// No run finds earlier callers' arguments in its own memory (in fork
// mode, the warm interpreter never holds a job). The scan does find its
// own arguments, which shows that it looks where it should.
func TestSandboxNoEarlierArgsInMemory(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		sb := startSandboxed(t, mode, "nobody", map[string]string{"echo.py": "import sys\nprint(len(sys.argv))\n", "scan.py": scanScript})
		secret := fmt.Sprintf("callersecret%d", rand.Uint64())
		for i := 0; i < 3; i++ {
			if res := sb.run("echo.py", secret, fmt.Sprint(i)); res.Stdout != "3\n" {
				t.Fatalf("echo: %+v", res)
			}
		}
		own := fmt.Sprintf("ownarg%d", rand.Uint64())
		if res := sb.run("scan.py", secret[:8], secret[8:], own); res.Stdout != "False True\n" {
			t.Fatalf("found an earlier caller's args (first), or not its own (second): %+v", res)
		}
	})
}

// Where the sandbox cannot be had (here: the server is not root), auto
// runs scripts without it and says so; on refuses to start.
func TestSandboxUnavailable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs the binary as nobody, which needs root")
	}
	python := pythonForNobody()
	if python == "" {
		t.Skip("no interpreter that nobody may run")
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "scripthost-nosandbox-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "scripthost")
	scripts := filepath.Join(dir, "scripts")
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(scripts, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	os.Chmod(scripts, 0o777)
	if err := os.WriteFile(filepath.Join(scripts, "hello.py"), []byte("print('hello')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	asNobody := func(sandbox string) *exec.Cmd {
		data, err := os.MkdirTemp(dir, "data-")
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(data, 0o777)
		cmd := exec.Command(exe, "serve", "--http", freePort(t), "--nats-listen", freePort(t), "--scripts", scripts,
			"--python", python, "--sandbox", sandbox, "--data-dir", data)
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		return cmd
	}
	out, err := asNobody("on").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "the run sandbox is not available: it needs root") {
		t.Fatalf("--sandbox on without root: %v\n%s", err, out)
	}
	cmd := asNobody("auto")
	var logs bytes.Buffer
	var mu sync.Mutex
	cmd.Stderr = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	testutil.WaitFor(t, 20*time.Second, "the server to listen", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "Server listening on")
	})
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "runs are NOT sandboxed (--sandbox auto)") {
		t.Fatalf("no warning:\n%s", logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

const procsScript = `import os, subprocess, sys, time
kids = []
try:
    for _ in range(int(sys.argv[1])):
        kids.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)", sys.argv[2]]))
except OSError as e:
    print("stopped at", len(kids), e.strerror, flush=True)
else:
    print("started", len(kids), flush=True)
if len(sys.argv) > 3:
    time.sleep(float(sys.argv[3]))
for k in kids:
    k.kill()
    k.wait()
`

// --max-procs bounds each run's own processes: a run that uses up its
// limit leaves a concurrent run its whole own.
func TestSandboxProcessLimitPerRun(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		sb := startSandboxed(t, mode, "nobody", map[string]string{"procs.py": procsScript}, "--max-procs", "16")
		marker := fmt.Sprintf("hogmarker%d", rand.Uint64())
		hogDone := sb.start("procs.py", "100", marker, "3")
		testutil.WaitFor(t, 20*time.Second, "the hog to hold its processes", func() bool { return len(testutil.MarkedPids(marker)) >= 5 })
		if res := sb.run("procs.py", "8", "other"+marker); res.Stdout != "started 8\n" {
			t.Errorf("a run next to one that used up its processes: %+v", res)
		}
		res := hogDone()
		if !strings.HasPrefix(res.Stdout, "stopped at ") {
			t.Fatalf("the hog was not stopped by --max-procs: %+v", res)
		}
		t.Logf("hog: %s", res.Stdout)
	})
}

// Without the sandbox, a run as another user has that user's HOME, never
// the server's.
func TestRunUserHome(t *testing.T) {
	cfg := nobodyConfig(t)
	cfg.Sandbox = "off"
	ts := startTest(t, cfg, map[string]string{"home.py": "import os\nprint(os.environ.get('HOME'))\n"})
	got := ts.do("POST", "/run/home.py", "").want(t, 200).result(t).Stdout
	want := "/nonexistent" // nobody without an entry
	if u, err := user.Lookup("nobody"); err == nil {
		want = u.HomeDir
	}
	if got != want+"\n" {
		t.Fatalf("nobody's HOME: %q, want %q (the server's is %q)", got, want, os.Getenv("HOME"))
	}
}
