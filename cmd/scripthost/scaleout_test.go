package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scripthost/scripthost/client"
	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

// cluster is a serve node without an executor and executor nodes in
// their own folders, each a real process on 127.0.0.1.
type cluster struct {
	t       *testing.T
	base    string
	natsURL string
	scripts string
	nodes   map[string]*process
	dirs    map[string]string
	metrics map[string]string // node name -> its /metrics URL
	api     *client.HTTP      // a client of serve's HTTP API
}

func startCluster(t *testing.T, slots int, names ...string) *cluster {
	t.Helper()
	return startClusterWith(t, nil, slots, names...)
}

// startClusterWith starts a cluster whose serve has the extra flags.
func startClusterWith(t *testing.T, serveFlags []string, slots int, names ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, scripts: t.TempDir(), nodes: map[string]*process{}, dirs: map[string]string{}, metrics: map[string]string{}}
	httpAddr, natsAddr := freePort(t), freePort(t)
	c.base, c.natsURL = "http://"+httpAddr, "nats://"+natsAddr
	c.api = httpClient(t, c.base, "")
	startBinary(t, nil, append([]string{"serve", "--http", httpAddr, "--nats-listen", natsAddr, "--scripts", c.scripts,
		"--max-concurrent", "0", "--python", testutil.Python(t)}, serveFlags...)...)
	waitHTTP(t, c.base+"/healthz")
	for _, name := range names {
		c.addNode(name, slots)
	}
	return c
}

func (c *cluster) addNode(name string, slots int) {
	c.t.Helper()
	dir := c.t.TempDir()
	c.dirs[name] = dir
	metrics := freePort(c.t)
	c.metrics[name] = "http://" + metrics + "/metrics"
	c.nodes[name] = startBinary(c.t, nil, "executor", "--nats", c.natsURL, "--name", name,
		"--max-concurrent", fmt.Sprint(slots), "--dir", dir, "--python", testutil.Python(c.t),
		"--mode", testMode(), "--timeout", "20s", "--metrics", metrics)
}

// queueWait is the time the runs of every node spent waiting in a node's
// queue for a slot, in seconds, as the nodes' metrics say.
func (c *cluster) queueWait() float64 {
	c.t.Helper()
	total := 0.0
	for name, url := range c.metrics {
		resp, err := http.Get(url)
		if err != nil {
			c.t.Fatalf("metrics of %s: %v", name, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		found := false
		for _, line := range strings.Split(string(data), "\n") {
			var v float64
			if _, err := fmt.Sscanf(line, "scripthost_queue_wait_seconds_sum %g", &v); err == nil {
				total += v
				found = true
			}
		}
		if !found {
			c.t.Fatalf("metrics of %s have no scripthost_queue_wait_seconds_sum:\n%s", name, data)
		}
	}
	return total
}

// put creates or replaces a script through the API.
func (c *cluster) put(name, code string) {
	c.t.Helper()
	ctx := context.Background()
	_, err := c.api.Create(ctx, name, code)
	if errors.Is(err, model.ErrExists) {
		_, err = c.api.Update(ctx, name, code)
	}
	if err != nil {
		c.t.Fatalf("put %s: %v", name, err)
	}
}

// run runs a script without the cache and returns status, node and body.
func (c *cluster) run(name, body string) (int, string, string) {
	req, _ := http.NewRequest("POST", c.base+"/run/"+name, strings.NewReader(body))
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err.Error()
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Scripthost-Node"), string(data)
}

// waitNodes waits until runs have been answered by every node.
func (c *cluster) waitNodes(script string) {
	c.t.Helper()
	seen := map[string]bool{}
	testutil.WaitFor(c.t, 20*time.Second, "every node to serve", func() bool {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if code, node, _ := c.run(script, ""); code == 200 {
					mu.Lock()
					seen[node] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return len(seen) == len(c.nodes)
	})
}

func TestScaleOutSpreadVersionsSiblings(t *testing.T) {
	c := startCluster(t, 2, "node-a", "node-b")
	c.put("quick.py", "print('quick')\n")
	c.waitNodes("quick.py")

	// Sibling imports work on nodes that do not share the folder.
	c.put("helper_mod.py", "def greet(n):\n    return 'hi ' + n\n")
	c.put("uses.py", fmt.Sprintf("import json, sys, os\nfrom helper_mod import greet\nprint(greet(json.load(sys.stdin)['n']), os.getcwd() != %q)\n", c.scripts))
	for range 6 {
		code, node, body := c.run("uses.py", `{"data": {"n": "ann"}}`)
		if code != 200 || !strings.Contains(body, `"stdout":"hi ann True\n"`) || c.dirs[node] == "" {
			t.Fatalf("uses.py on %q: %d %s", node, code, body)
		}
	}

	// Once an update is answered, no node runs the old version.
	for v := range 5 {
		c.put("ver.py", fmt.Sprintf("print('v%d')\n", v))
		var wg sync.WaitGroup
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, node, body := c.run("ver.py", "")
				if code != 200 || !strings.Contains(body, fmt.Sprintf(`"stdout":"v%d\n"`, v)) {
					t.Errorf("after update to v%d, %s answered %d %s", v, node, code, body)
				}
			}()
		}
		wg.Wait()
	}
	// A delete is seen at once too.
	req, _ := http.NewRequest("DELETE", c.base+"/scripts/ver.py", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("delete: %v %v", err, resp)
	}
	for range 4 {
		if code, node, body := c.run("ver.py", ""); code != 404 {
			t.Fatalf("deleted script on %s: %d %s", node, code, body)
		}
	}

	// A multi-run spreads over the nodes: of 8 runs of 1 s on 2 nodes x 2
	// slots, more than one node's 2 slots' worth run at once (their own
	// clocks say so, whatever the load on the machine).
	for i := range 8 {
		c.put(fmt.Sprintf("s%d.py", i), "import time\nt0 = time.time()\ntime.sleep(1)\nprint(t0, time.time())\n")
	}
	names := []string{}
	for i := range 8 {
		names = append(names, fmt.Sprintf("s%d.py", i))
	}
	resp, err = http.Post(c.base+"/run?names="+strings.Join(names, ","), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var multi struct {
		Results map[string]struct{ Stdout string }
	}
	err = json.NewDecoder(resp.Body).Decode(&multi)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || len(multi.Results) != 8 {
		t.Fatalf("fan-out of 8: %d %v %+v", resp.StatusCode, err, multi)
	}
	var spans [][2]float64
	for name, r := range multi.Results {
		var t0, t1 float64
		if _, err := fmt.Sscan(r.Stdout, &t0, &t1); err != nil {
			t.Fatalf("%s printed %q", name, r.Stdout)
		}
		spans = append(spans, [2]float64{t0, t1})
	}
	if n := maxOverlap(spans); n < 3 {
		t.Fatalf("at most %d of the 8 runs at once over 2 nodes x 2 slots: %v", n, spans)
	}
}

// maxOverlap is the largest number of spans that hold one instant.
func maxOverlap(spans [][2]float64) int {
	best := 0
	for _, a := range spans {
		n := 0
		for _, b := range spans {
			if b[0] <= a[0] && a[0] < b[1] {
				n++
			}
		}
		best = max(best, n)
	}
	return best
}

func TestScaleOutUtilisation(t *testing.T) {
	c := startCluster(t, 2, "node-a", "node-b")
	// Each run reports when its script started and ended.
	c.put("work.py", "import time\nt0 = time.time()\ntime.sleep(0.2)\nprint(t0, time.time())\n")
	c.waitNodes("work.py")

	// Four clients back to back on 2 nodes x 2 slots: there is always a
	// free slot for a client's next run, so no run should wait in a node's
	// queue. Without balancing by capacity, NATS's random pick makes about
	// one run in three wait for a busy node's slot (a fifth of the
	// window); the time between runs on a loaded machine does not count.
	waitBefore := c.queueWait()
	const clients, window = 4, 4 * time.Second
	var mu sync.Mutex
	var busyTime float64
	runs := 0
	per := map[string]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < window {
				code, node, body := c.run("work.py", "")
				var res struct{ Stdout string }
				var t0, t1 float64
				if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
					t.Errorf("%d %s", code, body)
					return
				}
				if _, err := fmt.Sscan(res.Stdout, &t0, &t1); err != nil {
					t.Errorf("work.py printed %q", res.Stdout)
					return
				}
				mu.Lock()
				runs++
				per[node]++
				busyTime += t1 - t0
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	busy := busyTime / (clients * elapsed.Seconds())
	waited := c.queueWait() - waitBefore
	t.Logf("%d runs in %s, per node %v: slots busy %.0f%%, runs waited %.3fs in queues", runs, elapsed, per, busy*100, waited)
	if share := waited / (clients * elapsed.Seconds()); share > 0.05 {
		t.Fatalf("runs waited %.2fs in the nodes' queues (%.0f%% of the clients' time) while slots were free", waited, share*100)
	}
}

func TestScaleOutNodeLossAndDrain(t *testing.T) {
	c := startCluster(t, 2, "node-a", "node-b")
	c.put("quick.py", "print('quick')\n")
	c.put("long.py", "import time, os\nopen('started.' + str(os.getpid()), 'w').close()\ntime.sleep(4)\nprint('done')\n")
	c.waitNodes("quick.py")

	// kill -9 of the node running a request: its caller gets 503 promptly.
	type answer struct {
		code int
		body string
	}
	got := make(chan answer, 1)
	go func() {
		code, _, body := c.run("long.py", "")
		got <- answer{code, body}
	}()
	var victim string
	testutil.WaitFor(t, 30*time.Second, "the long run to start", func() bool {
		for name, dir := range c.dirs {
			if m, _ := filepath.Glob(filepath.Join(dir, "started.*")); len(m) > 0 {
				victim = name
				return true
			}
		}
		return false
	})
	c.nodes[victim].cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	a := <-got
	// Without the watch the caller would wait for its request timeout.
	if took := time.Since(killed); a.code != 503 || took > 10*time.Second {
		t.Fatalf("caller of the lost node: %d after %s: %s", a.code, took, a.body)
	}
	if !strings.Contains(a.body, victim) {
		t.Fatalf("503 does not name the lost node %s: %s", victim, a.body)
	}
	// The other node keeps serving.
	for range 4 {
		if code, node, body := c.run("quick.py", ""); code != 200 || node == victim {
			t.Fatalf("after the loss: %d from %s: %s", code, node, body)
		}
	}
	// A node that joins serves within a second.
	c.addNode("node-c", 2)
	joined := time.Now()
	c.t.Helper()
	testutil.WaitFor(t, 30*time.Second, "node-c to serve", func() bool {
		_, node, _ := c.run("quick.py", "")
		return node == "node-c"
	})
	t.Logf("node-c served %s after its start", time.Since(joined))

	// SIGTERM on a node with runs in progress: every caller gets its answer.
	var other string
	for name := range c.dirs {
		if name != victim && name != "node-c" {
			other = name
		}
	}
	for _, m := range mustGlob(t, c.dirs[other], "started.*") {
		os.Remove(m)
	}
	c.put("short.py", "import time, os\nopen('started.' + str(os.getpid()), 'w').close()\ntime.sleep(1)\nprint('short')\n")
	answers := make(chan answer, 8)
	for range 8 {
		go func() {
			code, _, body := c.run("short.py", "")
			answers <- answer{code, body}
		}()
	}
	testutil.WaitFor(t, 30*time.Second, "runs on "+other, func() bool { return len(mustGlob(t, c.dirs[other], "started.*")) > 0 })
	c.nodes[other].cmd.Process.Signal(syscall.SIGTERM)
	for range 8 {
		if a := <-answers; a.code != 200 || !strings.Contains(a.body, `"stdout":"short\n"`) {
			t.Fatalf("caller during drain: %d %s", a.code, a.body)
		}
	}
	select {
	case err := <-c.nodes[other].done:
		if err != nil {
			t.Fatalf("drained node exit: %v", err)
		}
		c.nodes[other].done <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("drained node did not exit")
	}
}

func mustGlob(t *testing.T, dir, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Data files beside the scripts reach executor nodes on other machines:
// a file put in the serve node's folder by hand is there for a script on
// every node, and so are its edits and its removal.
func TestScaleOutDataFiles(t *testing.T) {
	// Data files follow the folder's rescans: a short interval, so that
	// each change is waited for a moment rather than the default 5 s.
	c := startClusterWith(t, []string{"--scan-interval", "200ms"}, 2, "node-a", "node-b")
	if err := os.WriteFile(filepath.Join(c.scripts, "data.csv"), []byte("x,y\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.put("reader.py", "import os\nprint(open('data.csv').read() if os.path.exists('data.csv') else 'no data.csv', end='')\n")
	c.waitNodes("reader.py")
	seenOn := func(want string) func() bool {
		return func() bool {
			seen := map[string]bool{}
			for range 8 {
				code, node, body := c.run("reader.py", "")
				var res struct{ Stdout string }
				if code != 200 || json.Unmarshal([]byte(body), &res) != nil || res.Stdout != want {
					return false
				}
				seen[node] = true
			}
			return len(seen) == 2
		}
	}
	testutil.WaitFor(t, 30*time.Second, "data.csv on both nodes", seenOn("x,y\n1,2\n"))
	if err := os.WriteFile(filepath.Join(c.scripts, "data.csv"), []byte("x,y\n3,4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "the edit of data.csv on both nodes", seenOn("x,y\n3,4\n"))
	if err := os.Remove(filepath.Join(c.scripts, "data.csv")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "the removal of data.csv on both nodes", seenOn("no data.csv"))
	for name, p := range c.nodes {
		if strings.Contains(p.log(), "data.csv") && strings.Contains(p.log(), "level=WARN") {
			t.Errorf("%s warns about data.csv:\n%s", name, p.log())
		}
	}
}
