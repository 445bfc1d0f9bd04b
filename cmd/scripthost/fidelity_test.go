package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scripthost/scripthost/executor"
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
	var names []string
	for _, f := range corpus {
		if name := filepath.Base(f); strings.HasSuffix(name, ".py") {
			names = append(names, name)
		}
	}
	// The scripts are independent: four at a time (a server's slots), each
	// through both servers, and each script's two answers compared.
	spawnOf := make([]response, len(names))
	eachOf(len(names), 4, func(i int) {
		spawn := servers["spawn"].call("POST", "/run/"+names[i], body)
		fork := servers["fork"].call("POST", "/run/"+names[i], body)
		if spawn.err != nil || fork.err != nil {
			t.Errorf("%s: %v; %v", names[i], spawn.err, fork.err)
			return
		}
		if spawn.status != fork.status || string(spawn.body) != string(fork.body) {
			t.Errorf("%s differs:\nspawn %d %s\nfork  %d %s", names[i], spawn.status, spawn.body, fork.status, fork.body)
		}
		spawnOf[i] = spawn
	})
	ran := len(names)
	// Nothing is left behind (finalize_excepthook.py's temporary file is
	// removed at its exit in both modes).
	if left, _ := filepath.Glob(filepath.Join(dir, "scripthost-fidelity-*")); len(left) > 0 {
		t.Errorf("runs left files behind: %q", left)
	}
	t.Logf("%d scripts gave identical answers in both modes", ran)

	// Every script has run once in fork mode; its next runs make it hot
	// and then come from its own warm parent, which must answer the same.
	// Four scripts at a time (their warm parents fit in the server's
	// eight), in rounds: a round runs each of the four once, at once, and
	// when the metric of the runs from warm parents rose by four, each of
	// those runs came from its script's warm parent (a run adds one at
	// the most): those answers are compared. A script's spawn answer is
	// the first pass's. The runs of the rounds before, from the warm
	// interpreter while the warm parents start, must not fail for it (the
	// status of their answers is the spawn one's); and the wait has room
	// for a start that times out (its script's runs go on meanwhile, and
	// make it hot again) and the next.
	const batch = 4
	wait := 2*executor.DefaultWarmParentStart + time.Minute
	forkServer := servers["fork"]
	fromParent := 0
	for lo := 0; lo < len(names); lo += batch {
		group := names[lo:min(lo+batch, len(names))]
		answers := make([]response, len(group))
		deadline := time.Now().Add(wait)
		for {
			before := warmParentRuns(t, forkServer)
			eachOf(len(group), len(group), func(j int) { answers[j] = forkServer.call("POST", "/run/"+group[j], body) })
			fromParents := warmParentRuns(t, forkServer)-before == len(group)
			for j, name := range group {
				spawn, fork := spawnOf[lo+j], answers[j]
				if fork.err != nil {
					t.Fatalf("%s: %v", name, fork.err)
				}
				if !fromParents {
					if spawn.status != fork.status {
						t.Fatalf("%s answered %d while the warm parents start, %d spawned: %s", name, fork.status, spawn.status, fork.body)
					}
					continue
				}
				if spawn.status != fork.status || string(spawn.body) != string(fork.body) {
					t.Errorf("%s differs from its warm parent:\nspawn %d %s\nfork  %d %s", name, spawn.status, spawn.body, fork.status, fork.body)
				}
			}
			if fromParents {
				fromParent += len(group)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v: not every run from a warm parent in %v", group, wait)
			}
			time.Sleep(5 * time.Millisecond)
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

// eachOf calls fn(0) .. fn(n-1), at most workers at a time, and returns
// when all have returned. fn runs in goroutines of its own: it reports
// with t.Error, never t.Fatal.
func eachOf(n, workers int, fn func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
