package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/scripthost/scripthost/model"
)

var (
	soak    = flag.Bool("soak", false, "run TestSoak, a longer mixed load against one server (make soak)")
	soakFor = flag.Duration("soak-for", 3*time.Minute, "how long TestSoak runs")
)

// soakKinds add hostile scripts to the mixed load.
var soakKinds = []loadKind{
	{"memory hog", 3, func(int) (string, string) { return "/run/hog.py", "" },
		func(_, status int, _ http.Header, res model.Result, _ []byte) string {
			if status != 200 || !exitIs(res, 1) || !strings.Contains(res.Stderr, "MemoryError") {
				return "want 200, exit 1, MemoryError"
			}
			return ""
		}},
	{"output flood", 2, func(int) (string, string) { return "/run/flood.py", "" },
		func(_, status int, _ http.Header, res model.Result, _ []byte) string {
			if (status != 504 && status != 200) || !res.StdoutTruncated || len(res.Stdout) != 64<<10 {
				return "want the output capped"
			}
			return ""
		}},
	{"orphans", 3, func(int) (string, string) { return "/run/orphans.py", "" },
		func(_, status int, _ http.Header, res model.Result, _ []byte) string {
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
	// The memory hog zeroes some 200 MiB before its allocation fails
	// (RLIMIT_AS, with the run's cgroup charged for every page): about
	// 0.15 s of CPU on a quiet core, well over a second on two cores that
	// 64 requests and other builds share. The load's 1 s run timeout is
	// for hang.py; the hog must end by its MemoryError, not by a timeout.
	cfg.Timeout = 4 * time.Second
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
	kinds := append(append(append([]loadKind{}, loadKinds...), soakKinds...), jobKinds(ts.base)...)
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
			waitGoroutines(t, baseline, nil)
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

// jobKinds add durable jobs to the soak: runs that wait for their job,
// jobs followed to their end, and jobs cancelled while they run.
func jobKinds(base string) []loadKind {
	follow := func(body []byte) (model.Job, error) {
		var job model.Job
		if err := json.Unmarshal(body, &job); err != nil || job.ID == "" {
			return job, fmt.Errorf("not a job: %s", cut(body))
		}
		deadline := time.Now().Add(2 * time.Minute)
		for !job.Status.Ended() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			resp, err := http.Get(base + "/jobs/" + job.ID)
			if err != nil {
				return job, err
			}
			err = json.NewDecoder(resp.Body).Decode(&job)
			resp.Body.Close()
			if err != nil {
				return job, err
			}
		}
		return job, nil
	}
	return []loadKind{
		{"job wait", 5, func(i int) (string, string) { return "/run/fast.py?wait=2m", fmt.Sprintf(`{"data":%d}`, i) },
			func(i, status int, hdr http.Header, res model.Result, _ []byte) string {
				if status != 200 || res.Stdout != fmt.Sprint(i) || hdr.Get("X-Scripthost-Job") == "" {
					return "want 200 with its own data back, from a job"
				}
				return ""
			}},
		{"job", 5, func(i int) (string, string) { return "/jobs/fast.py", fmt.Sprintf(`{"data":"j%d"}`, i) },
			func(i, status int, _ http.Header, _ model.Result, body []byte) string {
				job, err := follow(body)
				if status != 202 || err != nil || job.Status != model.JobSucceeded || job.Result.Stdout != fmt.Sprintf(`"j%d"`, i) {
					return fmt.Sprintf("want 202, then succeeded with its own data back (%v)", err)
				}
				return ""
			}},
		{"job cancel", 2, func(i int) (string, string) { return "/jobs/hang.py", fmt.Sprintf(`{"data":%d}`, i) },
			func(i, status int, _ http.Header, _ model.Result, body []byte) string {
				var job model.Job
				if status != 202 || json.Unmarshal(body, &job) != nil {
					return "want 202 with the job"
				}
				req, _ := http.NewRequest("DELETE", base+"/jobs/"+job.ID, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return err.Error()
				}
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				if job, err = follow(body); resp.StatusCode != 202 || err != nil || job.Status != model.JobCancelled {
					return fmt.Sprintf("want the job cancelled: %d %s", resp.StatusCode, cut(body))
				}
				return ""
			}},
	}
}
