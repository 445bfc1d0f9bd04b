package executor

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
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

func exitCode(res model.Result) string {
	if res.ExitCode == nil {
		return "signal " + res.Signal
	}
	return strconv.Itoa(*res.ExitCode)
}
