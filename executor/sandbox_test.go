package executor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scripthost/scripthost/bus"
)

// sandboxRunners starts a sandboxed runner of each mode with cfg, skipping
// the test where the sandbox cannot be had (not root).
func sandboxRunners(t *testing.T, cfg RunnerConfig) map[string]Runner {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root")
	}
	cfg.Sandbox = Sandbox{Mode: SandboxOn}
	if cfg.Log == nil {
		cfg.Log = testLogger(t)
	}
	out := map[string]Runner{}
	sp, err := NewSpawnRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	out["spawn"] = sp
	fk, err := NewForkRunner(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fk.Close() })
	out["fork"] = fk
	return out
}

func runCode(t *testing.T, r Runner, dir, code string, args ...string) bus.Result {
	t.Helper()
	path := filepath.Join(dir, "s.py")
	if err := os.WriteFile(path, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(context.Background(), Job{Path: path, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSandboxSmoke(t *testing.T) {
	cfg := RunnerConfig{Python: testPython(t)}
	for mode, r := range sandboxRunners(t, cfg) {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			res := runCode(t, r, dir, "import os, sys\nprint(os.getpid(), os.getppid(), os.getpgid(0) == os.getpid(), sorted(os.listdir('/tmp')), os.environ['HOME'], os.getcwd() == os.path.dirname(os.path.abspath(sys.argv[0])))\nprint(sorted(p for p in os.listdir('/proc') if p.isdigit()))\n", "x")
			t.Logf("%+v", res)
			if !strings.HasPrefix(res.Stdout, "2 ") || !strings.Contains(res.Stdout, " True ") {
				t.Fatalf("%+v", res)
			}
		})
	}
}
