package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scripthost/scripthost/executor"
	"github.com/scripthost/scripthost/internal/testutil"
)

// buildBinary builds the scripthost binary once per test run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "scripthost-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "scripthost")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
})

// TestMain prepares the test process to run scripts, as serve does
// before its node starts, and fails the run if a test left serve's
// default data folder in the package folder: every server a test starts
// keeps its jobs in a folder of the test's (startBinary, runMain and
// testConfig see to it).
func TestMain(m *testing.M) {
	if err := executor.SetupProcess(); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	_, err := os.Stat("data")
	existed := err == nil
	code := m.Run()
	if bin, err := buildBinary(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	if _, err := os.Stat("data"); err == nil && !existed {
		os.Stderr.WriteString("FAIL: a test started a server without a --data-dir of its own: it left ./data in the source tree\n")
		os.RemoveAll("data")
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// freePort returns a loopback address that was free a moment ago, for a
// server this test starts. It is taken below the kernel's ephemeral range
// (which bind to port 0 and every outgoing connection draw from, so a port
// taken there may be another connection's by the time the server binds
// it), and never twice in this process.
func freePort(t *testing.T) string {
	t.Helper()
	low := ephemeralLow()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := portsBase + rand.IntN(low-portsBase)
		if portsGiven[port] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		_ = ln.Close()
		portsGiven[port] = true
		return addr
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return ""
}

// portsBase is the lowest port freePort gives.
const portsBase = 20000

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// ephemeralLow is the first port of the kernel's ephemeral range (32768 if
// it cannot be read or leaves too little room below it).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > portsBase+1000 {
				return n
			}
		}
	}
	return 32768
}

// process is the real binary, started by a test and ended by it.
type process struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs strings.Builder
	done chan error
}

func (p *process) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// startBinary runs scripthost with args and env and ends it with the test.
func startBinary(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	p := &process{cmd: exec.Command(bin, args...), done: make(chan error, 1)}
	// Scripts run as the tests' user unless env says otherwise (see
	// testRunAs), nor are they sandboxed unless asked for (see
	// testSandbox); a serve keeps its jobs in a folder of the test's.
	p.cmd.Env = append(append(os.Environ(), "SCRIPTHOST_RUN_AS="+testRunAs(), "SCRIPTHOST_SANDBOX="+testSandbox(),
		"SCRIPTHOST_DATA_DIR="+t.TempDir()), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() {
		<-copied
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		t.Logf("scripthost log:\n%s", p.log())
	})
	return p
}

// waitHTTP polls url until it answers 200.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	testutil.WaitFor(t, 60*time.Second, url+" to answer", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func TestBinaryServeFromEnvAndGracefulStop(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "slow.py"), []byte("import time\nopen('started', 'w').close()\ntime.sleep(1)\nprint('finished')\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "env.py"), []byte("import os\nprint(sorted(k for k in os.environ if k.startswith('SCRIPTHOST')))\n"), 0o644)
	httpAddr := freePort(t)
	p := startBinary(t, []string{
		"SCRIPTHOST_HTTP=" + httpAddr,
		"SCRIPTHOST_NATS_LISTEN=" + freePort(t),
		"SCRIPTHOST_SCRIPTS=" + dir,
		"SCRIPTHOST_PYTHON=" + testutil.Python(t),
		"SCRIPTHOST_MAX_CONCURRENT=2",
	}, "serve", "--timeout", "20s")
	base := "http://" + httpAddr
	waitHTTP(t, base+"/healthz")
	// The log is read from the process's stderr as it comes.
	testutil.WaitFor(t, 30*time.Second, "the listening line", func() bool {
		return strings.Contains(p.log(), "Server listening on http://"+httpAddr)
	})
	logs := p.log()
	if !regexp.MustCompile(`Scanned scripts: found 2 scripts`).MatchString(logs) {
		t.Fatalf("no scan line in:\n%s", logs)
	}
	resp, err := http.Post(base+"/run/env.py", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"stdout":"[]\n"`) {
		t.Fatalf("scripts see the server's configuration: %s", body)
	}

	// SIGTERM while a run is in progress: the run finishes and answers,
	// new requests are refused, the process exits 0.
	type answer struct {
		code int
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Post(base+"/run/slow.py", "application/json", strings.NewReader(`{}`))
		if err != nil {
			got <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- answer{code: resp.StatusCode, body: string(b)}
	}()
	testutil.WaitFor(t, 30*time.Second, "the run to start", func() bool {
		_, err := os.Stat(filepath.Join(dir, "started"))
		return err == nil
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	a := <-got
	if a.err != nil || a.code != 200 || !strings.Contains(a.body, `"stdout":"finished\n"`) {
		t.Fatalf("run during shutdown: %+v", a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
		p.done <- nil
	case <-ctx.Done():
		t.Fatal("server did not exit after SIGTERM")
	}
}
