package executor

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// The benchmarks print per-run figures; they assert nothing about time.
// Every run has its own stdin. They run the tests' interpreter
// (/usr/bin/python3 where there is one; SCRIPTHOST_TEST_PYTHON picks
// another):
//
//	go test -run '^$' -bench Runner -benchtime 200x ./executor/
//
// Each case also reports cpu-ms/run: the CPU time of this process and of
// every process of the runner (the warm interpreter, warm parents, runs;
// counted once they are reaped, which closing the runner ends), per run.
// It varies far less with the machine's load than ns/op.
//
// The fork runner's cases: "base" runs every job from the warm interpreter
// (jobs without a version never use a warm parent), "parent" from the
// script's warm parent, and "noparents" with warm parents off (the warm
// interpreter then preloads the common standard library).

const benchHello = `import sys, json; data = json.load(sys.stdin); print(json.dumps({"greeting": "Hello, " + data["name"]}))` + "\n"

const benchNumpy = `import sys, json
import numpy as np
data = json.load(sys.stdin)
print(json.dumps({"sum": int(np.arange(data["n"]).sum())}))
`

type benchScript struct {
	name, code string
	stdin      func(i int64) []byte
	want       func(i int64) string
}

var benchScripts = []benchScript{
	{"hello.py", benchHello,
		func(i int64) []byte { return fmt.Appendf(nil, `{"name": "A%d"}`, i) },
		func(i int64) string { return fmt.Sprintf(`{"greeting": "Hello, A%d"}`+"\n", i) }},
	{"numpy_sum.py", benchNumpy,
		func(i int64) []byte { return fmt.Appendf(nil, `{"n": %d}`, i%100) },
		func(i int64) string { n := i % 100; return fmt.Sprintf(`{"sum": %d}`+"\n", n*(n-1)/2) }},
}

// cpuTime is the CPU time of this process and of its reaped descendants.
func cpuTime() time.Duration {
	var self, children unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &self)
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &children)
	total := time.Duration(0)
	for _, tv := range []unix.Timeval{self.Utime, self.Stime, children.Utime, children.Stime} {
		total += time.Duration(tv.Nano())
	}
	return total
}

// benchRunner measures runs of s on the runner that newRunner makes for
// this case alone, closed at its end.
func benchRunner(b *testing.B, newRunner func() Runner, s benchScript, versioned, parallel bool) {
	r := newRunner()
	closed := false
	defer func() {
		if !closed {
			r.Close()
		}
	}()
	if s.name == "numpy_sum.py" {
		if err := exec.Command(testutil.Python(b), "-c", "import numpy").Run(); err != nil {
			b.Skipf("%s cannot import numpy (python3-numpy): %v", testutil.Python(b), err)
		}
	}
	dir := b.TempDir()
	path := writeScript(b, dir, s.name, s.code)
	job := Job{Path: path}
	if versioned {
		job.Version = model.Version([]byte(s.code))
	}
	var seq atomic.Int64
	one := func() error {
		i := seq.Add(1)
		j := job
		j.Stdin = s.stdin(i)
		res, err := r.Run(context.Background(), j)
		if err != nil || res.Stdout != s.want(i) {
			return fmt.Errorf("run: %+v %v", res, err)
		}
		return nil
	}
	// Warm caches, and let a versioned script get its warm parent.
	for range 3 {
		if err := one(); err != nil {
			b.Fatal(err)
		}
	}
	if fr, ok := r.(*ForkRunner); ok && versioned && fr.parents.cfg.enabled() {
		deadline := time.Now().Add(30 * time.Second)
		for fr.WarmStats().Parents == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if fr.WarmStats().Parents == 0 {
			b.Fatal("no warm parent")
		}
	}
	cpu0 := cpuTime()
	b.ResetTimer()
	if !parallel {
		for b.Loop() {
			if err := one(); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism(2) // 2 × GOMAXPROCS runs in flight
		// The body runs in goroutines of its own: a failed run is
		// reported, and that goroutine stops.
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := one(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	r.Close()
	closed = true
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/run")
}

func BenchmarkSpawnRunner(b *testing.B) {
	newRunner := func() Runner {
		r, err := NewSpawnRunner(testConfig(b, Limits{Timeout: 30 * time.Second}))
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	for _, s := range benchScripts {
		name := strings.TrimSuffix(s.name, ".py")
		b.Run(name+"/serial", func(b *testing.B) { benchRunner(b, newRunner, s, true, false) })
		b.Run(name+"/parallel", func(b *testing.B) { benchRunner(b, newRunner, s, true, true) })
	}
}

func BenchmarkForkRunner(b *testing.B) {
	for _, kind := range []struct {
		name      string
		parents   WarmParents
		versioned bool
	}{
		{"parent", WarmParents{}, true},
		{"base", WarmParents{}, false},
		{"noparents", WarmParents{Max: -1}, true},
	} {
		newRunner := func() Runner {
			cfg := testConfig(b, Limits{Timeout: 30 * time.Second})
			cfg.WarmParents = kind.parents
			r, err := NewForkRunner(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			return r
		}
		for _, s := range benchScripts {
			name := kind.name + "/" + strings.TrimSuffix(s.name, ".py")
			b.Run(name+"/serial", func(b *testing.B) { benchRunner(b, newRunner, s, kind.versioned, false) })
			b.Run(name+"/parallel", func(b *testing.B) { benchRunner(b, newRunner, s, kind.versioned, true) })
		}
	}
}

// The sandboxed cases run as this process's user (root), and under
// "nobody/" as nobody, as a server run as root does by default; under
// "off/" the same runners without the sandbox (same limits and user), the
// baseline of what the sandbox costs:
//
//	go test -run '^$' -bench 'ForkRunnerSandboxed/(off/)?nobody/hello/parallel' ./executor/
func BenchmarkForkRunnerSandboxed(b *testing.B) {
	for _, mode := range []string{"", "off/"} {
		for _, user := range []string{"", "nobody/"} {
			newRunner := func() Runner {
				cfg := testConfig(b, Limits{Timeout: 30 * time.Second, MaxMemory: 1 << 30, MaxProcs: 1024})
				cfg.Sandbox = Sandbox{Mode: SandboxOn}
				if mode == "off/" {
					cfg.Sandbox = Sandbox{Mode: SandboxOff}
				}
				if user != "" {
					u := nobody(b)
					cfg.Python, cfg.RunAs = u.python, u.cred
				}
				r, err := NewForkRunner(cfg, nil)
				if err != nil {
					b.Fatal(err)
				}
				return r
			}
			for _, s := range benchScripts {
				name := mode + user + strings.TrimSuffix(s.name, ".py")
				b.Run(name+"/serial", func(b *testing.B) { benchRunner(b, newRunner, s, true, false) })
				b.Run(name+"/parallel", func(b *testing.B) { benchRunner(b, newRunner, s, true, true) })
			}
		}
	}
}
