package executor

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

func testConfig(t testing.TB, limits Limits) RunnerConfig {
	return RunnerConfig{
		Python:       testutil.Python(t),
		Limits:       limits,
		DrainTimeout: 300 * time.Millisecond,
		Log:          testutil.Logger(t, slog.LevelDebug),
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

// answersSoon runs job and checks it is answered well within its minute's
// timeout, either as want on stdout or with an error naming reason.
func answersSoon(t *testing.T, r Runner, job Job, want, reason string) {
	t.Helper()
	start := time.Now()
	res, err := r.Run(context.Background(), job)
	took := time.Since(start)
	t.Logf("%+v %v after %v", res, err, took)
	if took > 20*time.Second {
		t.Fatalf("the run answered after %v (its timeout is a minute)", took)
	}
	if err == nil && res.Stdout != want || err != nil && !strings.Contains(err.Error(), reason) {
		t.Fatalf("result %+v, err %v", res, err)
	}
}

func exitCode(res model.Result) string {
	if res.ExitCode == nil {
		return "signal " + res.Signal
	}
	return strconv.Itoa(*res.ExitCode)
}
