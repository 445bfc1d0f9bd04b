package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
)

func TestStatusCodes(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBody = 1024
	ts := startTest(t, cfg, map[string]string{"ok.py": "print('ok')\n"})

	long := strings.Repeat("a", 126) + ".py"
	tests := []struct {
		name, method, path, body string
		status                   int
		errPart                  string
	}{
		{"healthz", "GET", "/healthz", "", 200, ""},
		{"get", "GET", "/scripts/ok.py", "", 200, ""},
		{"get unknown", "GET", "/scripts/nope.py", "", 404, "nope.py"},
		{"get bad name", "GET", "/scripts/no%20space.py", "", 400, "invalid script name"},
		{"get not py", "GET", "/scripts/ok.txt", "", 400, "invalid script name"},
		{"get wildcard", "GET", "/scripts/a*.py", "", 400, "invalid script name"},
		{"get too long", "GET", "/scripts/" + long, "", 400, "invalid script name"},
		{"create exists", "POST", "/scripts", `{"name":"ok.py","code":"x"}`, 409, "ok.py"},
		{"create bad json", "POST", "/scripts", `{"name":`, 400, "invalid JSON"},
		{"create no code", "POST", "/scripts", `{"name":"n.py"}`, 400, `"code" is required`},
		{"create code not string", "POST", "/scripts", `{"name":"n.py","code":5}`, 400, "code"},
		{"create path name", "POST", "/scripts", `{"name":"../n.py","code":"x"}`, 400, "invalid script name"},
		{"create empty body", "POST", "/scripts", ``, 400, "name"},
		{"create too large", "POST", "/scripts", `{"name":"big.py","code":"` + strings.Repeat("x", 2000) + `"}`, 413, "larger than 1024"},
		{"update unknown", "PUT", "/scripts/nope.py", `{"code":"x"}`, 404, "nope.py"},
		{"update no code", "PUT", "/scripts/ok.py", `{}`, 400, `"code" is required`},
		{"delete unknown", "DELETE", "/scripts/nope.py", "", 404, "nope.py"},
		{"delete bad name", "DELETE", "/scripts/x.sh", "", 400, "invalid script name"},
		{"run unknown", "POST", "/run/nope.py", "", 404, "nope.py"},
		{"run bad name", "POST", "/run/bad..py", "", 400, "invalid script name"},
		{"run bad json", "POST", "/run/ok.py", `{"data":`, 400, "invalid JSON"},
		{"run args not array", "POST", "/run/ok.py", `{"args":"x"}`, 400, `"args" must be an array of strings`},
		{"run args not strings", "POST", "/run/ok.py", `{"args":[1]}`, 400, `"args" must be an array of strings`},
		{"run not object", "POST", "/run/ok.py", `[1,2]`, 400, "invalid JSON"},
		{"run trailing data", "POST", "/run/ok.py", `{} {}`, 400, "invalid JSON"},
		{"run too large", "POST", "/run/ok.py", `{"data":"` + strings.Repeat("x", 2000) + `"}`, 413, "larger than"},
		{"multi unknown", "POST", "/run?names=ok.py,nope.py,zz.py", "", 404, "unknown scripts: nope.py, zz.py"},
		{"multi bad name", "POST", "/run?names=ok.py,../x.py", "", 400, "invalid script name"},
		{"multi empty names", "POST", "/run?names=", "", 400, "names"},
		{"multi bad json", "POST", "/run", `{`, 400, "invalid JSON"},
		{"multi mistyped names", "POST", "/run?name=ok.py", "", 400, `unknown query parameter "name": POST /run takes only names`},
		{"run unknown query", "POST", "/run/ok.py?wiat=1s", "", 400, `unknown query parameter "wiat"`},
		{"jobs unknown query", "GET", "/jobs?scrpt=ok.py", "", 400, `unknown query parameter "scrpt": GET /jobs takes only script, status, limit`},
		{"no endpoint", "GET", "/nothing", "", 404, "no such endpoint"},
		{"wrong method", "PATCH", "/scripts/ok.py", "", 405, "not allowed"},
		{"run wait twice", "POST", "/run/ok.py?wait=5s&wait=abc", "", 400, `query parameter "wait" given 2 times`},
		{"jobs limit twice", "GET", "/jobs?limit=1&limit=2", "", 400, `query parameter "limit" given 2 times`},
		{"job submit query", "POST", "/jobs/ok.py?wait=1s", "", 400, `unknown query parameter "wait": POST /jobs/ok.py takes none`},
		{"get an escaped name", "GET", "/scripts/%6Fk.py", "", 200, ""},
		{"run an escaped name", "POST", "/run/ok%2Epy", "", 200, ""},
		{"get an escaped slash", "GET", "/scripts/a%2F..%2Fok.py", "", 400, `invalid script name "a/../ok.py"`},
		{"run args with null", "POST", "/run/ok.py", `{"args":[null]}`, 400, `"args"[0] is null`},
		{"job args with NUL", "POST", "/jobs/ok.py", `{"args":["a\u0000"]}`, 400, `"args"[0] contains a NUL byte`},
		{"create fields as written", "POST", "/scripts", `{"NAME":"x.py","code":""}`, 400, `unknown field "NAME"`},
		{"update not UTF-8", "PUT", "/scripts/ok.py", "{\"code\":\"\xff\"}", 400, "not valid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(tc.method, tc.path, tc.body).want(t, tc.status)
			if r.header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
			}
			if tc.errPart != "" {
				if msg := r.errorText(t); !strings.Contains(msg, tc.errPart) {
					t.Errorf("error %q does not mention %q", msg, tc.errPart)
				}
			}
		})
	}

	// A method the path does not take, with %2F inside a segment: the
	// methods it takes.
	if r := ts.do("POST", "/scripts/a%2F..%2Fok.py", "").want(t, 405); r.header.Get("Allow") != "GET, HEAD, PUT, DELETE, OPTIONS" {
		t.Errorf("Allow %q", r.header.Get("Allow"))
	}

	// The script folder is untouched by all the rejected writes.
	entries, _ := os.ReadDir(cfg.Scripts)
	if len(entries) != 1 || entries[0].Name() != "ok.py" {
		t.Fatalf("folder holds %v", entries)
	}
	var s struct{ Name, Code, Version string }
	ts.do("GET", "/scripts/ok.py", "").json(t, &s)
	if s.Name != "ok.py" || s.Code != "print('ok')\n" || len(s.Version) < 8 {
		t.Fatalf("get: %+v", s)
	}
}

func TestScriptFailuresAreResults(t *testing.T) {
	ts := startTest(t, testConfig(t), map[string]string{
		"fail.py":   "import sys\nprint('partial')\nsys.stderr.write('bad input\\n')\nsys.exit(3)\n",
		"raise.py":  "raise ValueError('nope')\n",
		"killed.py": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
		"stdin.py":  "import sys\nsys.stdout.write(repr(sys.stdin.read()))\n",
	})
	res := ts.do("POST", "/run/fail.py", "").want(t, 200).result(t)
	if res.Stdout != "partial\n" || res.Stderr != "bad input\n" || res.ExitCode == nil || *res.ExitCode != 3 || res.TimedOut {
		t.Fatalf("fail.py: %+v", res)
	}
	res = ts.do("POST", "/run/raise.py", "").want(t, 200).result(t)
	if *res.ExitCode != 1 || !strings.HasPrefix(res.Stderr, "Traceback (most recent call last):\n") || !strings.HasSuffix(res.Stderr, "ValueError: nope\n") {
		t.Fatalf("raise.py: %+v", res)
	}
	r := ts.do("POST", "/run/killed.py", "").want(t, 200)
	res = r.result(t)
	if res.ExitCode != nil || res.Signal != "SIGKILL" || !strings.Contains(string(r.body), `"exit_code":null`) {
		t.Fatalf("killed.py: %s", r.body)
	}
	// stdin gets the raw bytes of data; nothing when data is absent.
	for _, tc := range []struct{ body, want string }{
		{``, `''`},
		{`{}`, `''`},
		{`{"data": null}`, `'null'`},
		{`{"data": "x"}`, `'"x"'`},
		{`{"data": {"a": [1, 2.50]}}`, `'{"a": [1, 2.50]}'`},
	} {
		res := ts.do("POST", "/run/stdin.py", tc.body).want(t, 200).result(t)
		if res.Stdout != tc.want {
			t.Errorf("body %s: stdin %s, want %s", tc.body, res.Stdout, tc.want)
		}
	}
}

// pidAlive reports whether a process exists (and is not a zombie).
func pidAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func TestTimeoutKillsGrandchild(t *testing.T) {
	cfg := testConfig(t)
	cfg.Timeout = time.Second
	dir := cfg.Scripts
	ts := startTest(t, cfg, map[string]string{
		// The child keeps the pipes open and outlives its parent's exit.
		"spawner.py": `import subprocess, sys, time
p = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)"])
open("grandchild.pid", "w").write(str(p.pid))
print("started", flush=True)
time.sleep(60)
`,
		"leaver.py": `import subprocess, sys
p = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)"])
open("leaver.pid", "w").write(str(p.pid))
print("parent done")
`,
	})
	start := time.Now()
	r := ts.do("POST", "/run/spawner.py", "").want(t, 504)
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("timeout took %s", took)
	}
	var tb struct {
		Error    string `json:"error"`
		Stdout   string `json:"stdout"`
		TimedOut bool   `json:"timed_out"`
	}
	r.json(t, &tb)
	if tb.Stdout != "started\n" || !tb.TimedOut || tb.Error != "Script execution timed out" {
		t.Fatalf("body %s", r.body)
	}
	checkDead := func(file string) {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(string(data))
		testutil.WaitFor(t, 30*time.Second, "grandchild "+string(data)+" to die", func() bool { return !pidAlive(pid) })
	}
	checkDead("grandchild.pid")

	// A child left behind by a script that exits holds the pipes: the run
	// still ends at once, and the child dies with it.
	start = time.Now()
	res := ts.do("POST", "/run/leaver.py", "").want(t, 200).result(t)
	if res.Stdout != "parent done\n" || *res.ExitCode != 0 {
		t.Fatalf("leaver.py: %+v", res)
	}
	// (The 200 already says it ended before the 1 s timeout.)
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("run with a lingering grandchild took %s", took)
	}
	checkDead("leaver.pid")
}

func TestOutputCaps(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxOutput = 1000
	ts := startTest(t, cfg, map[string]string{
		"loud.py":  "import sys\nsys.stdout.write('o' * 5000)\nsys.stderr.write('e' * 3000)\n",
		"quiet.py": "print('x' * 999)\n",
	})
	r := ts.do("POST", "/run/loud.py", "").want(t, 200)
	res := r.result(t)
	if res.Stdout != strings.Repeat("o", 1000) || res.Stderr != strings.Repeat("e", 1000) || !res.StdoutTruncated || !res.StderrTruncated || *res.ExitCode != 0 {
		t.Fatalf("loud.py: %d/%d bytes, %s", len(res.Stdout), len(res.Stderr), r.body[len(r.body)-120:])
	}
	res = ts.do("POST", "/run/quiet.py", "").want(t, 200).result(t)
	if len(res.Stdout) != 1000 || res.StdoutTruncated {
		t.Fatalf("quiet.py: %d bytes, truncated %v", len(res.Stdout), res.StdoutTruncated)
	}
	if strings.Contains(string(ts.do("POST", "/run/quiet.py", "").body), "truncated") {
		t.Fatal("truncation flags appear when nothing was cut")
	}
	// Endless output is drained until the timeout; the server stays up.
	cfg2 := testConfig(t)
	cfg2.MaxOutput = 1000
	cfg2.Timeout = time.Second
	ts2 := startTest(t, cfg2, map[string]string{"endless.py": "import sys\nwhile True: sys.stdout.write('x' * 65536)\n"})
	r = ts2.do("POST", "/run/endless.py", "").want(t, 504)
	var tb struct {
		Stdout    string `json:"stdout"`
		Truncated bool   `json:"stdout_truncated"`
	}
	r.json(t, &tb)
	if len(tb.Stdout) != 1000 || !tb.Truncated {
		t.Fatalf("endless.py: %d bytes, truncated %v", len(tb.Stdout), tb.Truncated)
	}
	ts2.do("GET", "/healthz", "").want(t, 200)
}

func TestConcurrencyBoundAndQueue(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxConcurrent = 2
	cfg.CacheTTL = 0
	dir := cfg.Scripts
	ts := startTest(t, cfg, map[string]string{
		// Each run marks itself running, notes how many runs it saw at
		// once, and unmarks itself.
		"slot.py": `import os, sys, time, glob
me = "running.%d" % os.getpid()
open(me, "w").close()
time.sleep(0.3)
print(len(glob.glob("running.*")))
os.remove(me)
`,
	})
	const runs = 6
	var wg sync.WaitGroup
	answers := make([]response, runs)
	start := time.Now()
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = ts.call("POST", "/run/slot.py", fmt.Sprintf(`{"data": %d}`, i))
		}()
	}
	wg.Wait()
	seen := make([]int, runs)
	most := 0
	for i, r := range answers {
		res := r.want(t, 200).result(t)
		seen[i], _ = strconv.Atoi(strings.TrimSpace(res.Stdout))
		most = max(most, seen[i])
	}
	if most != 2 {
		t.Fatalf("runs saw up to %d at once (%v), want 2", most, seen)
	}
	if took := time.Since(start); took < 3*300*time.Millisecond {
		t.Fatalf("%d runs of 0.3 s on 2 slots took %s", runs, took)
	}
	leftover, _ := filepathGlob(dir, "running.*")
	if len(leftover) != 0 {
		t.Fatalf("left behind: %v", leftover)
	}
}

func filepathGlob(dir, pattern string) ([]string, error) {
	return filepath.Glob(filepath.Join(dir, pattern))
}

func TestQueueTimeout(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxConcurrent = 1
	cfg.QueueTimeout = 200 * time.Millisecond
	cfg.CacheTTL = 0
	ts := startTest(t, cfg, map[string]string{
		"hold.py": "import os, time\nopen('holding', 'w').close()\nwhile not os.path.exists('release'):\n    time.sleep(0.01)\n",
		"ok.py":   "print('ok')\n",
	})
	done := make(chan response)
	go func() { done <- ts.call("POST", "/run/hold.py", "") }()
	testutil.WaitFor(t, 30*time.Second, "the slot to be taken", func() bool {
		_, err := os.Stat(filepath.Join(cfg.Scripts, "holding"))
		return err == nil
	})
	r := ts.do("POST", "/run/ok.py", "").want(t, 503)
	if msg := r.errorText(t); !strings.Contains(msg, "slots busy") {
		t.Fatalf("503 says %q", msg)
	}
	if err := os.WriteFile(filepath.Join(cfg.Scripts, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	(<-done).want(t, 200)
	ts.do("POST", "/run/ok.py", "").want(t, 200)
}

func TestCache(t *testing.T) {
	cfg := testConfig(t)
	dir := cfg.Scripts
	// Every real run appends a line to runs.log, so the tests count them.
	counted := "import sys\nopen('runs.log', 'a').write('run\\n')\n"
	ts := startTest(t, cfg, map[string]string{
		"echo.py": counted + "print(sys.stdin.read(), sys.argv[1:])\n",
		"fail.py": counted + "sys.exit(2)\n",
		"slow.py": counted + "import time\ntime.sleep(0.5)\nprint('slow')\n",
	})
	runs := func() int {
		data, _ := os.ReadFile(filepath.Join(dir, "runs.log"))
		return strings.Count(string(data), "\n")
	}
	expect := func(path, body, cache string, n int, headers ...string) response {
		t.Helper()
		r := ts.do("POST", path, body, headers...).want(t, 200)
		if got := r.header.Get("X-Cache"); got != cache {
			t.Fatalf("%s %s: X-Cache %q, want %q", path, body, got, cache)
		}
		if r.header.Get("X-Scripthost-Node") != "test-node" {
			t.Fatalf("X-Scripthost-Node %q", r.header.Get("X-Scripthost-Node"))
		}
		if got := runs(); got != n {
			t.Fatalf("%s %s: %d real runs, want %d", path, body, got, n)
		}
		return r
	}
	first := expect("/run/echo.py", `{"data": {"a": 1}}`, "miss", 1)
	second := expect("/run/echo.py", `{"data": {"a": 1}}`, "hit", 1)
	if string(first.body) != string(second.body) {
		t.Fatalf("hit %s differs from miss %s", second.body, first.body)
	}
	expect("/run/echo.py", `{"data": {"a": 2}}`, "miss", 2)
	expect("/run/echo.py", `{"data": {"a": 1}, "args": ["x"]}`, "miss", 3)
	expect("/run/echo.py", `{"data": {"a": 1}, "args": ["x"]}`, "hit", 3)
	expect("/run/echo.py", `{"data": {"a": 1}}`, "miss", 4, "Cache-Control", "no-cache")

	// A new version of the script is a new key.
	ts.do("PUT", "/scripts/echo.py", jsonBody(t, map[string]string{"code": counted + "print('v2')\n"})).want(t, 200)
	r := expect("/run/echo.py", `{"data": {"a": 1}}`, "miss", 5)
	if r.result(t).Stdout != "v2\n" {
		t.Fatalf("after update: %s", r.body)
	}
	// Failures are not stored.
	expect("/run/fail.py", "", "miss", 6)
	expect("/run/fail.py", "", "miss", 7)

	// Identical runs in flight share one execution.
	var wg sync.WaitGroup
	slow := make([]response, 5)
	for i := range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slow[i] = ts.call("POST", "/run/slow.py", `{"data": 1}`)
		}()
	}
	wg.Wait()
	for _, r := range slow {
		if res := r.want(t, 200).result(t); res.Stdout != "slow\n" {
			t.Errorf("slow.py: %+v", res)
		}
	}
	if got := runs(); got != 8 {
		t.Fatalf("5 identical concurrent runs made %d executions, want 1", got-7)
	}

	// NATS callers get the same cache.
	nc := ts.nats()
	msg, err := nc.Request("script.run.slow.py", []byte(`{"data": 1}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("X-Cache") != "hit" || runs() != 8 {
		t.Fatalf("NATS run: X-Cache %q, %d runs", msg.Header.Get("X-Cache"), runs())
	}
}

func TestRescanAndSiblings(t *testing.T) {
	cfg := testConfig(t)
	ts := startTest(t, cfg, map[string]string{
		"helper_mod.py": "def greet(n):\n    return 'hi ' + n\n",
		"uses.py":       "import json, sys\nfrom helper_mod import greet\nprint(greet(json.load(sys.stdin)['n']))\nprint(open('data.txt').read())\n",
		"notes.txt":     "not a script",
		"data.txt":      "beside the script",
	})
	res := ts.do("POST", "/run/uses.py", `{"data": {"n": "bob"}}`).want(t, 200).result(t)
	if res.Stdout != "hi bob\nbeside the script\n" {
		t.Fatalf("sibling import: %+v", res)
	}
	list := func() string {
		var names []string
		ts.do("GET", "/scripts", "").want(t, 200).json(t, &names)
		return strings.Join(names, ",")
	}
	if got := list(); got != "helper_mod.py,uses.py" {
		t.Fatalf("list %q", got)
	}
	ts.write("added.py", "print('by hand')\n")
	testutil.WaitFor(t, 30*time.Second, "hand-added script in the list", func() bool { return list() == "added.py,helper_mod.py,uses.py" })
	if res := ts.do("POST", "/run/added.py", "").want(t, 200).result(t); res.Stdout != "by hand\n" {
		t.Fatalf("added.py: %+v", res)
	}
	// A hand edit is run at once, and the cached old result is not served.
	ts.write("added.py", "print('edited by hand, longer')\n")
	if res := ts.do("POST", "/run/added.py", "").want(t, 200).result(t); res.Stdout != "edited by hand, longer\n" {
		t.Fatalf("edited added.py: %+v", res)
	}
	var s struct{ Code string }
	testutil.WaitFor(t, 30*time.Second, "hand edit in GET", func() bool {
		ts.do("GET", "/scripts/added.py", "").json(t, &s)
		return s.Code == "print('edited by hand, longer')\n"
	})
	os.Remove(filepath.Join(cfg.Scripts, "added.py"))
	testutil.WaitFor(t, 30*time.Second, "hand-removed script to leave the list", func() bool { return list() == "helper_mod.py,uses.py" })
	ts.do("POST", "/run/added.py", "").want(t, 404)
}

func TestLargeStdinNotRead(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBody = 8 << 20
	ts := startTest(t, cfg, map[string]string{
		"ignore.py": "print('did not read')\n",
		"count.py":  "import sys\nprint(len(sys.stdin.buffer.read()))\n",
	})
	big := jsonBody(t, map[string]string{"data": strings.Repeat("z", 4<<20)})
	res := ts.do("POST", "/run/ignore.py", big).want(t, 200).result(t)
	if res.Stdout != "did not read\n" || *res.ExitCode != 0 {
		t.Fatalf("ignore.py: %+v", res)
	}
	res = ts.do("POST", "/run/count.py", big).want(t, 200).result(t)
	if res.Stdout != strconv.Itoa(4<<20+2)+"\n" {
		t.Fatalf("count.py read %s", res.Stdout)
	}
}

func TestMultiRun(t *testing.T) {
	cfg := testConfig(t)
	cfg.Timeout = time.Second
	ts := startTest(t, cfg, map[string]string{
		"a.py":     "print('a')\n",
		"b.py":     "import sys\nsys.exit(4)\n",
		"mark.py":  "open('ran', 'w').close()\n",
		"sleep.py": "import time\ntime.sleep(30)\n",
	})
	// Unknown names: 404 and nothing runs.
	ts.do("POST", "/run?names=mark.py,ghost.py", "").want(t, 404)
	if _, err := os.Stat(filepath.Join(cfg.Scripts, "ran")); err == nil {
		t.Fatal("mark.py ran although the request named an unknown script")
	}
	var multi struct {
		Results map[string]map[string]any `json:"results"`
	}
	ts.do("POST", "/run?names=a.py,b.py,sleep.py,a.py", "").want(t, 200).json(t, &multi)
	if len(multi.Results) != 3 {
		t.Fatalf("results %v", multi.Results)
	}
	if multi.Results["a.py"]["stdout"] != "a\n" || multi.Results["b.py"]["exit_code"] != 4.0 {
		t.Fatalf("results %v", multi.Results)
	}
	if s := multi.Results["sleep.py"]; s["timed_out"] != true || s["exit_code"] != nil {
		t.Fatalf("sleep.py entry %v", s)
	}
	ts.do("POST", "/run", "").want(t, 200).json(t, &multi)
	if len(multi.Results) != 4 {
		t.Fatalf("run all: %v", multi.Results)
	}
	if _, err := os.Stat(filepath.Join(cfg.Scripts, "ran")); err != nil {
		t.Fatal("run all did not run mark.py")
	}
}

func TestCreateUpdateDeleteOverHTTP(t *testing.T) {
	cfg := testConfig(t)
	ts := startTest(t, cfg, nil)
	var created struct{ Name, Code, Version string }
	r := ts.do("POST", "/scripts", `{"name": "new.py", "code": "print(1)"}`).want(t, 201)
	r.json(t, &created)
	if created.Name != "new.py" || created.Version == "" || r.header.Get("Location") != "/scripts/new.py" {
		t.Fatalf("create: %s %v", r.body, r.header)
	}
	data, err := os.ReadFile(filepath.Join(cfg.Scripts, "new.py"))
	if err != nil || string(data) != "print(1)" {
		t.Fatalf("on disk: %q %v", data, err)
	}
	var updated struct{ Version string }
	ts.do("PUT", "/scripts/new.py", `{"code": "print(2)"}`).want(t, 200).json(t, &updated)
	if updated.Version == created.Version {
		t.Fatal("version did not change with the code")
	}
	ts.do("DELETE", "/scripts/new.py", "").want(t, 204)
	if _, err := os.Stat(filepath.Join(cfg.Scripts, "new.py")); !os.IsNotExist(err) {
		t.Fatalf("file still there: %v", err)
	}
	ts.do("GET", "/scripts/new.py", "").want(t, 404)

	// Concurrent creates of one name: exactly one wins.
	var wg sync.WaitGroup
	creates := make(chan response, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			creates <- ts.call("POST", "/scripts", fmt.Sprintf(`{"name": "race.py", "code": "print(%d)"}`, i))
		}()
	}
	wg.Wait()
	close(creates)
	won := 0
	for r := range creates {
		if r.err != nil {
			t.Fatal(r.err)
		}
		switch c := r.status; c {
		case 201:
			won++
		case 409:
		default:
			t.Fatalf("concurrent create answered %d", c)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent creates succeeded", won)
	}
}
