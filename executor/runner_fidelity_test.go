package executor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// corpusDir holds the fidelity corpus: scripts whose results must be the
// same, byte for byte, in spawn and in fork mode.
const corpusDir = "../tests/fidelity"

// The fixed input of every corpus run.
var (
	corpusStdin = []byte("{\"x\": 7, \"name\": \"Zo\u00eb\"}\nsecond line \u2713\nthird\n")
	corpusArgs  = []string{"alpha", "\u03b2 \u03b3", "--flag=1", ""}
)

// copyCorpus copies the corpus into the fresh folder dir, so that runs write
// nothing (__pycache__) into the repository.
func copyCorpus(t *testing.T, dir string) (string, []string) {
	t.Helper()
	var scripts []string
	entries, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(corpusDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(e.Name(), ".py") {
			scripts = append(scripts, e.Name())
		}
	}
	if len(scripts) == 0 {
		t.Fatal("empty corpus")
	}
	return dir, scripts
}

// TestFidelity runs the corpus in both modes, once with the test's own
// environment and once without any PYTHON* variable (the default buffered
// stdio, bytecode caches written), and requires identical results.
func TestFidelity(t *testing.T) {
	var clean []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYTHON") {
			clean = append(clean, kv)
		}
	}
	envs := []struct {
		name string
		env  []string
	}{
		{"inherited", os.Environ()},
		{"clean", clean},
	}
	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir, scripts := copyCorpus(t, t.TempDir())
			cfg := testConfig(t, Limits{Timeout: 20 * time.Second})
			cfg.Env = append(e.env, "SCRIPTHOST_FIDELITY_VALUE=\u00fc")
			testFidelity(t, cfg, dir, scripts)
		})
	}
	// Run as another user, as a server started by root runs them, with
	// what the server's environment may hold and a fresh interpreter
	// resolves for itself: a stale PWD, relative PYTHONPATH entries (against
	// the script's folder), and a user site-packages folder that the run
	// user cannot see (it is not on its sys.path).
	t.Run("nobody", func(t *testing.T) {
		u := nobody(t)
		nobodyTests.Lock()
		defer nobodyTests.Unlock()
		home := filepath.Join(t.TempDir(), "home")
		out, err := exec.Command(u.python, "-c", "import site; print(site.getusersitepackages())").Output()
		if err != nil {
			t.Fatal(err)
		}
		userSite := strings.Replace(strings.TrimSpace(string(out)), os.Getenv("HOME"), home, 1)
		if !strings.HasPrefix(userSite, home) {
			t.Fatalf("user site %q is not under HOME", userSite)
		}
		if err := os.MkdirAll(userSite, 0o700); err != nil {
			t.Fatal(err)
		}
		dir, scripts := copyCorpus(t, u.dir)
		cfg := RunnerConfig{Python: u.python, RunAs: u.cred, Limits: Limits{Timeout: 20 * time.Second},
			DrainTimeout: 300 * time.Millisecond, Log: testutil.Logger(t, slog.LevelDebug)}
		cfg.Env = append(clean, "PWD=/", "HOME="+home, "PYTHONPATH=lib:", "SCRIPTHOST_FIDELITY_VALUE=\u00fc")
		testFidelity(t, cfg, dir, scripts)
	})
}

func testFidelity(t *testing.T, cfg RunnerConfig, dir string, scripts []string) {
	spawn, err := NewSpawnRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer spawn.Close()
	fork, err := NewForkRunner(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fork.Close()

	// Beyond the corpus: a missing script, arguments that are not UTF-8,
	// and a path that is not clean.
	jobs := make([]Job, 0, len(scripts)+3)
	for _, name := range scripts {
		jobs = append(jobs, Job{Path: filepath.Join(dir, name), Args: corpusArgs, Stdin: corpusStdin})
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	jobs = append(jobs,
		Job{Path: filepath.Join(dir, "missing.py"), Stdin: corpusStdin},
		Job{Path: filepath.Join(dir, "argv.py"), Args: []string{"\xff\xfe", "ok", "\xed\xa0\x80"}},
		Job{Path: dir + "/sub/../dunder.py"},
	)
	scripts = append(scripts, "missing.py (no such file)", "argv.py (bytes)", "sub/../dunder.py")

	type pair struct{ spawn, fork model.Result }
	results := make([]pair, len(jobs))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, name := range scripts {
		job := jobs[i]
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			// Spawn first: it is the reference, and it compiles the
			// sibling modules' caches as a first run would.
			var err error
			if results[i].spawn, err = spawn.Run(context.Background(), job); err != nil {
				t.Errorf("%s: spawn: %v", name, err)
			}
			if results[i].fork, err = fork.Run(context.Background(), job); err != nil {
				t.Errorf("%s: fork: %v", name, err)
			}
		})
	}
	wg.Wait()

	// What the runs leave behind: nothing (finalize_excepthook.py's
	// NamedTemporaryFile is removed at its exit).
	if left, _ := filepath.Glob(filepath.Join(dir, "scripthost-fidelity-*")); len(left) > 0 {
		t.Errorf("runs left files behind: %q", left)
	}

	verbose := os.Getenv("SCRIPTHOST_FIDELITY_VERBOSE") != ""
	for i, name := range scripts {
		s, f := results[i].spawn, results[i].fork
		if verbose {
			t.Logf("%s: exit %s\nstdout %q\nstderr %q", name, exitCode(s), s.Stdout, s.Stderr)
		}
		if s.TimedOut {
			t.Errorf("%s: timed out", name)
		}
		if reflect.DeepEqual(s, f) {
			continue
		}
		t.Errorf("%s: results differ\n%s", name, describeDiff(s, f))
	}

	// A few results checked against what CPython does, so that the
	// comparison cannot pass with both modes broken alike.
	want := map[string]string{
		"hello.py":                  "0",
		"exc_simple.py":             "1",
		"syntax_error.py":           "1",
		"exit_int.py":               "3",
		"exit_str.py":               "1",
		"exit_negative.py":          "255",
		"os_exit.py":                "5",
		"keyboard_interrupt.py":     "signal SIGINT",
		"kill_segv.py":              "signal SIGSEGV",
		"kill_term.py":              "signal SIGTERM",
		"abort.py":                  "signal SIGABRT",
		"missing.py (no such file)": "2",
	}
	for i, name := range scripts {
		if w, ok := want[name]; ok {
			if got := exitCode(results[i].spawn); got != w {
				t.Errorf("%s: exit %s, want %s; stderr:\n%s", name, got, w, results[i].spawn.Stderr)
			}
		}
	}
}

func describeDiff(s, f model.Result) string {
	var b strings.Builder
	if exitCode(s) != exitCode(f) {
		fmt.Fprintf(&b, "exit: spawn %s, fork %s\n", exitCode(s), exitCode(f))
	}
	if s.Stdout != f.Stdout {
		fmt.Fprintf(&b, "stdout:\n  spawn %q\n  fork  %q\n", s.Stdout, f.Stdout)
	}
	if s.Stderr != f.Stderr {
		fmt.Fprintf(&b, "stderr:\n  spawn %q\n  fork  %q\n", s.Stderr, f.Stderr)
	}
	if s.TimedOut != f.TimedOut || s.StdoutTruncated != f.StdoutTruncated || s.StderrTruncated != f.StderrTruncated {
		fmt.Fprintf(&b, "flags: spawn %+v, fork %+v\n",
			[]bool{s.TimedOut, s.StdoutTruncated, s.StderrTruncated},
			[]bool{f.TimedOut, f.StdoutTruncated, f.StderrTruncated})
	}
	return b.String()
}
