package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFidelityThroughServer runs the fidelity corpus (tests/fidelity)
// through two real servers on the same folder, one in spawn mode and one
// in fork mode, and requires byte-identical answers: status, body and the
// node-independent headers; then once more with each script's run in fork
// mode coming from its own warm parent.
func TestFidelityThroughServer(t *testing.T) {
	corpus, err := filepath.Glob("../../tests/fidelity/*")
	if err != nil || len(corpus) < 20 {
		t.Fatalf("fidelity corpus: %d files, %v", len(corpus), err)
	}
	dir := t.TempDir()
	for _, f := range corpus {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, sandbox := range []string{"off", "on"} {
		t.Run("sandbox "+sandbox, func(t *testing.T) {
			if sandbox == "on" && os.Geteuid() != 0 {
				t.Skip("the sandbox needs root")
			}
			fidelityRun(t, dir, corpus, sandbox)
		})
	}
}

// fidelityRun runs the corpus in dir through a spawn and a fork server.
func fidelityRun(t *testing.T, dir string, corpus []string, sandbox string) {
	servers := map[string]*testServer{}
	for _, mode := range []string{"spawn", "fork"} {
		cfg := testConfig(t)
		cfg.Scripts = dir
		cfg.Mode = mode
		cfg.CacheTTL = 0
		cfg.Sandbox = sandbox
		servers[mode] = startTest(t, cfg, nil)
	}
	body := `{"data": {"x": 7, "name": "Zo\u00eb"}, "args": ["alpha", "\u03b2 \u03b3", "--flag=1", ""]}`
	ran := 0
	for _, f := range corpus {
		name := filepath.Base(f)
		if !strings.HasSuffix(name, ".py") {
			continue
		}
		spawn := servers["spawn"].do("POST", "/run/"+name, body)
		fork := servers["fork"].do("POST", "/run/"+name, body)
		if spawn.status != fork.status || string(spawn.body) != string(fork.body) {
			t.Errorf("%s differs:\nspawn %d %s\nfork  %d %s", name, spawn.status, spawn.body, fork.status, fork.body)
		}
		ran++
	}
	// Nothing is left behind (finalize_excepthook.py's temporary file is
	// removed at its exit in both modes).
	if left, _ := filepath.Glob(filepath.Join(dir, "scripthost-fidelity-*")); len(left) > 0 {
		t.Errorf("runs left files behind: %q", left)
	}
	t.Logf("%d scripts gave identical answers in both modes", ran)

	// Every script has run once in fork mode; its next runs make it hot
	// and then come from its own warm parent, which must answer the same.
	fromParent := 0
	for _, f := range corpus {
		name := filepath.Base(f)
		if !strings.HasSuffix(name, ".py") {
			continue
		}
		spawn := servers["spawn"].do("POST", "/run/"+name, body)
		deadline := time.Now().Add(60 * time.Second)
		for {
			before := warmParentRuns(t, servers["fork"])
			fork := servers["fork"].do("POST", "/run/"+name, body)
			if warmParentRuns(t, servers["fork"]) == before {
				if time.Now().After(deadline) {
					t.Fatalf("%s: no run from a warm parent", name)
				}
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if spawn.status != fork.status || string(spawn.body) != string(fork.body) {
				t.Errorf("%s differs from its warm parent:\nspawn %d %s\nfork  %d %s", name, spawn.status, spawn.body, fork.status, fork.body)
			}
			fromParent++
			break
		}
	}
	t.Logf("%d scripts gave identical answers from their warm parents", fromParent)
}

// warmParentRuns reads scripthost_warm_parent_runs_total off the server's
// metrics.
func warmParentRuns(t *testing.T, ts *testServer) int {
	t.Helper()
	for _, line := range strings.Split(string(ts.do("GET", "/metrics", "").body), "\n") {
		if v, ok := strings.CutPrefix(line, "scripthost_warm_parent_runs_total "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("metric %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatal("no scripthost_warm_parent_runs_total in /metrics")
	return 0
}
