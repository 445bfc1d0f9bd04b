package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scripthost/scripthost/model"
)

// loadScripts are the scripts of the mixed load: each kind of request
// runs one of them.
var loadScripts = map[string]string{
	"fast.py":   "import sys\nsys.stdout.write(sys.stdin.read())\n",
	"slow.py":   "import sys, time\ntime.sleep(0.2)\nsys.stdout.write(sys.stdin.read())\n",
	"fail.py":   "import sys\nprint('bad', file=sys.stderr)\nsys.exit(3)\n",
	"hang.py":   "import time\nprint('hanging', flush=True)\ntime.sleep(60)\n",
	"cached.py": "import sys\nprint('cached', sys.stdin.read())\n",
}

// loadKind is one kind of request of the mixed load and how its answer
// is checked.
type loadKind struct {
	name   string
	weight int
	// request builds the i-th request of the kind: path and body.
	request func(i int) (path, body string)
	// check says what is wrong with an answer, or "".
	check func(i, status int, hdr http.Header, res model.Result, body []byte) string
}

var loadKinds = []loadKind{
	{"fast", 40, func(i int) (string, string) { return "/run/fast.py", fmt.Sprintf(`{"data":%d}`, i) },
		func(i, status int, _ http.Header, res model.Result, _ []byte) string {
			if status != 200 || res.Stdout != fmt.Sprint(i) || !exitIs(res, 0) {
				return "want 200 with its own data back"
			}
			return ""
		}},
	{"cached", 30, func(int) (string, string) { return "/run/cached.py", `{"data":7}` },
		func(_, status int, _ http.Header, res model.Result, _ []byte) string {
			if status != 200 || res.Stdout != "cached 7\n" || !exitIs(res, 0) {
				return "want 200 cached 7"
			}
			return ""
		}},
	{"failing", 15, func(i int) (string, string) { return "/run/fail.py", fmt.Sprintf(`{"data":%d}`, i) },
		func(_, status int, hdr http.Header, res model.Result, _ []byte) string {
			if status != 200 || !exitIs(res, 3) || res.Stderr != "bad\n" || hdr.Get("X-Cache") == "hit" {
				return "want 200, exit 3, not cached"
			}
			return ""
		}},
	{"slow", 10, func(i int) (string, string) { return "/run/slow.py", fmt.Sprintf(`{"data":"s%d"}`, i) },
		func(i, status int, _ http.Header, res model.Result, _ []byte) string {
			if status != 200 || res.Stdout != fmt.Sprintf(`"s%d"`, i) {
				return "want 200 with its own data back"
			}
			return ""
		}},
	{"timeout", 5, func(i int) (string, string) { return "/run/hang.py", fmt.Sprintf(`{"data":%d}`, i) },
		func(_, status int, _ http.Header, res model.Result, body []byte) string {
			var e model.TimeoutBody
			_ = json.Unmarshal(body, &e)
			if status != 504 || !res.TimedOut || res.Stdout != "hanging\n" || e.Error != model.MsgTimedOut {
				return "want 504, timed out, its output so far"
			}
			return ""
		}},
}

// loadReport counts the answers of one mixed load.
type loadReport struct {
	sent, answered, cacheHits int
	perKind                   map[string]int
	slowest                   time.Duration
}

// mixedLoad sends n requests of the kinds, shuffled, from workers
// goroutines at once, and checks every answer.
func mixedLoad(t *testing.T, client *http.Client, base string, kinds []loadKind, n, workers int, rng *rand.Rand) loadReport {
	t.Helper()
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	type job struct {
		kind *loadKind
		i    int
	}
	jobs := make([]job, 0, n)
	for i := range n {
		w := rng.IntN(total)
		for k := range kinds {
			if w < kinds[k].weight {
				jobs = append(jobs, job{&kinds[k], i})
				break
			}
			w -= kinds[k].weight
		}
	}
	rep := loadReport{sent: n, perKind: map[string]int{}}
	var mu sync.Mutex
	queue := make(chan job)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				path, body := j.kind.request(j.i)
				start := time.Now()
				status, hdr, data, err := post(client, base+path, body)
				took := time.Since(start)
				if err != nil {
					t.Errorf("%s #%d: %v", j.kind.name, j.i, err)
					continue
				}
				var res model.Result
				if jerr := json.Unmarshal(data, &res); jerr != nil {
					t.Errorf("%s #%d: %d %q: %v", j.kind.name, j.i, status, cut(data), jerr)
					continue
				}
				if problem := j.kind.check(j.i, status, hdr, res, data); problem != "" {
					t.Errorf("%s #%d: %s; got %d %s", j.kind.name, j.i, problem, status, cut(data))
					continue
				}
				mu.Lock()
				rep.answered++
				rep.perKind[j.kind.name]++
				if hdr.Get("X-Cache") == "hit" {
					rep.cacheHits++
				}
				rep.slowest = max(rep.slowest, took)
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	wg.Wait()
	return rep
}

func post(client *http.Client, url, body string) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data, err
}

// loadConfig is a server with few slots and short run times, for loads.
func loadConfig(t *testing.T) serveConfig {
	cfg := testConfig(t)
	cfg.MaxConcurrent = 2
	cfg.Timeout = time.Second
	cfg.QueueTimeout = 10 * time.Minute // every request waits its turn: none is lost
	cfg.CacheTTL = time.Minute
	return cfg
}

// waitGoroutines waits until the goroutines are back near baseline, with
// room for those of more, if not nil: what the server keeps by now beyond
// what it had at the baseline, bounded, not taken by any request.
func waitGoroutines(t *testing.T, baseline int, more func() int) {
	t.Helper()
	limit := func() int {
		if more == nil {
			return baseline + 10
		}
		return baseline + 10 + more()
	}
	var n int
	deadline := time.Now().Add(30 * time.Second)
	for n = runtime.NumGoroutine(); n > limit(); n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before the load:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Hundreds of mixed requests over two slots, 64 at a time: every one is
// answered, and answered right; afterwards no process of a run and no
// goroutine of a request is left.
func TestLoadMixed(t *testing.T) {
	cfg := loadConfig(t)
	ts := startTest(t, cfg, loadScripts)
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	client := &http.Client{Transport: transport}
	// Baseline: the server up, one run done (the warm interpreter forked
	// ahead, the pools filled).
	if status, _, _, err := post(client, ts.base+"/run/fast.py", `{"data":0}`); err != nil || status != 200 {
		t.Fatalf("warm-up: %d %v", status, err)
	}
	transport.CloseIdleConnections()
	baseline := runtime.NumGoroutine()

	const n, workers = 300, 64
	start := time.Now()
	rep := mixedLoad(t, client, ts.base, loadKinds, n, workers, rand.New(rand.NewPCG(1, 2)))
	t.Logf("%d requests, %d answered in %v (slowest %v), per kind %v, %d cache hits",
		rep.sent, rep.answered, time.Since(start).Round(time.Millisecond), rep.slowest.Round(time.Millisecond), rep.perKind, rep.cacheHits)
	if rep.answered != n {
		t.Fatalf("%d of %d requests answered right", rep.answered, n)
	}
	if rep.perKind["cached"] > 2 && rep.cacheHits == 0 {
		t.Errorf("no cache hit in %d identical requests", rep.perKind["cached"])
	}
	ts.do("GET", "/healthz", "").want(t, 200)
	waitNoRunLeft(t, cfg.Scripts)
	transport.CloseIdleConnections()
	// The load makes its hot scripts' warm parents (at most
	// --warm-parents), each watched by two goroutines.
	waitGoroutines(t, baseline, func() int { return 2 * warmParentsAlive(t, ts) })
}

// warmParentsAlive reads the scripthost_warm_parents gauge from the
// server's registry (no request, which would hold goroutines of its own).
func warmParentsAlive(t *testing.T, ts *testServer) int {
	t.Helper()
	mfs, err := ts.s.obs.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "scripthost_warm_parents" && len(mf.GetMetric()) == 1 {
			return int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	t.Fatal("no scripthost_warm_parents in the server's metrics")
	return 0
}
