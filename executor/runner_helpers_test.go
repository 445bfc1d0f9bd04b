package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scripthost/scripthost/model"
)

var (
	pythonOnce sync.Once
	pythonPath string
	pythonErr  error
)

// testPython is the interpreter of the tests: $SCRIPTHOST_TEST_PYTHON, or
// python3 resolved once.
func testPython(t testing.TB) string {
	t.Helper()
	pythonOnce.Do(func() {
		name := os.Getenv("SCRIPTHOST_TEST_PYTHON")
		if name == "" {
			name = "python3"
		}
		pythonPath, pythonErr = ResolvePython(name)
	})
	if pythonErr != nil {
		t.Skipf("no python interpreter: %v", pythonErr)
	}
	return pythonPath
}

// testLogger sends a runner's logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testConfig(t testing.TB, limits Limits) RunnerConfig {
	return RunnerConfig{
		Python:       testPython(t),
		Limits:       limits,
		DrainTimeout: 300 * time.Millisecond,
		Log:          testLogger(t),
	}
}

// runnerKinds builds each kind of runner for the shared tests; each
// runner's own test file adds itself.
var runnerKinds = []struct {
	name string
	new  func(t testing.TB, limits Limits) Runner
}{
	{"spawn", func(t testing.TB, limits Limits) Runner {
		r, err := NewSpawnRunner(testConfig(t, limits))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r
	}},
}

// writeScript writes a script into dir and returns its absolute path.
func writeScript(t testing.TB, dir, name, code string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func run(t testing.TB, r Runner, job Job) model.Result {
	t.Helper()
	res, err := r.Run(context.Background(), job)
	if err != nil {
		t.Fatalf("run %s: %v", filepath.Base(job.Path), err)
	}
	return res
}

func exitCode(res model.Result) string {
	if res.ExitCode == nil {
		return "signal " + res.Signal
	}
	return strconv.Itoa(*res.ExitCode)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// processGone tells whether pid no longer runs: it does not exist or it
// is a zombie waiting for whoever inherited it.
func processGone(pid int) bool {
	if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}

// readPid waits for a pid written to a file by a test script.
func readPid(t testing.TB, path string) int {
	t.Helper()
	var pid int
	waitFor(t, 30*time.Second, "pid file "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}
