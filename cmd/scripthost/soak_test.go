package main

import (
	"flag"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/scripthost/scripthost/bus"
)

var (
	soak    = flag.Bool("soak", false, "run TestSoak, a longer mixed load against one server (make soak)")
	soakFor = flag.Duration("soak-for", 3*time.Minute, "how long TestSoak runs")
)

// soakKinds add hostile scripts to the mixed load.
var soakKinds = []loadKind{
	{"memory hog", 3, func(int) (string, string) { return "/run/hog.py", "" },
		func(_, status int, _ http.Header, res bus.Result, _ []byte) string {
			if status != 200 || !exitIs(res, 1) || !strings.Contains(res.Stderr, "MemoryError") {
				return "want 200, exit 1, MemoryError"
			}
			return ""
		}},
	{"output flood", 2, func(int) (string, string) { return "/run/flood.py", "" },
		func(_, status int, _ http.Header, res bus.Result, _ []byte) string {
			if (status != 504 && status != 200) || !res.StdoutTruncated || len(res.Stdout) != 64<<10 {
				return "want the output capped"
			}
			return ""
		}},
	{"orphans", 3, func(int) (string, string) { return "/run/orphans.py", "" },
		func(_, status int, _ http.Header, res bus.Result, _ []byte) string {
			if status != 200 || res.Stdout != "left them\n" {
				return "want 200"
			}
			return ""
		}},
}

// TestSoak runs rounds of the mixed load, hostile scripts included, for
// -soak-for, and checks after each round that the server holds steady:
// every request answered right, its heap and goroutines bounded, no
// process of a run left.
func TestSoak(t *testing.T) {
	if !*soak {
		t.Skip("a longer mixed load: run it with -soak (make soak)")
	}
	cfg := loadConfig(t)
	cfg.MaxMemory = 256 << 20
	cfg.MaxOutput = 64 << 10
	scripts := map[string]string{
		"hog.py":     "chunks = []\nwhile True:\n    chunks.append(bytearray(32 << 20))\n",
		"flood.py":   "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
		"orphans.py": "import subprocess, sys\nfor _ in range(3):\n    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\nprint('left them')\n",
	}
	for name, code := range loadScripts {
		scripts[name] = code
	}
	ts := startTest(t, cfg, scripts)
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	client := &http.Client{Transport: transport}
	kinds := append(append([]loadKind{}, loadKinds...), soakKinds...)
	rng := rand.New(rand.NewPCG(3, 4))

	var firstHeap uint64
	baseline := 0
	deadline := time.Now().Add(*soakFor)
	total := 0
	for round := 1; time.Now().Before(deadline); round++ {
		start := time.Now()
		rep := mixedLoad(t, client, ts.base, kinds, 200, 64, rng)
		total += rep.answered
		if rep.answered != rep.sent || t.Failed() {
			t.Fatalf("round %d: %d of %d answered right", round, rep.answered, rep.sent)
		}
		waitNoRunLeft(t, cfg.Scripts)
		transport.CloseIdleConnections()
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		if round == 1 {
			firstHeap, baseline = m.HeapInuse, runtime.NumGoroutine()
		} else {
			waitGoroutines(t, baseline)
			if m.HeapInuse > firstHeap+64<<20 {
				t.Fatalf("round %d: heap %d MiB, %d MiB after the first round", round, m.HeapInuse>>20, firstHeap>>20)
			}
		}
		t.Logf("round %d: %d requests in %v (slowest %v), %v, heap %d MiB, %d goroutines",
			round, rep.sent, time.Since(start).Round(time.Millisecond), rep.slowest.Round(time.Millisecond),
			rep.perKind, m.HeapInuse>>20, runtime.NumGoroutine())
	}
	t.Logf("%d requests answered right", total)
	ts.do("GET", "/healthz", "").want(t, 200)
}
