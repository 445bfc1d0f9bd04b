package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
)

// The seed document's curl examples, sent as curl sends them.
const (
	seedHello = `{
    "name": "hello.py",
    "code": "import sys, json; data = json.load(sys.stdin); print(json.dumps({\"greeting\": f\"Hello, {data[\"name\"]}\"}))"
  }`
	seedMath = `{
    "name": "math.py",
    "code": "import sys, json; data = json.load(sys.stdin); result = data[\"x\"] ** 2; print(json.dumps({\"square\": result}))"
  }`
	seedArgs = `{
    "name": "args_demo.py",
    "code": "import sys, json; print(json.dumps({\"args\": sys.argv[1:], \"data\": json.load(sys.stdin)}))"
  }`
	seedInfinite = `{
    "name": "infinite.py",
    "code": "while True: pass"
  }`
)

const jsonType = "Content-Type"

// pythonAtLeast reports whether the test interpreter is at least 3.minor.
func pythonAtLeast(t *testing.T, minor int) bool {
	t.Helper()
	out, err := exec.Command(testutil.Python(t), "-c", "import sys; print(sys.version_info[1])").Output()
	if err != nil {
		t.Fatalf("python version: %v", err)
	}
	var got int
	if err := json.Unmarshal([]byte(strings.TrimSpace(string(out))), &got); err != nil {
		t.Fatal(err)
	}
	return got >= minor
}

func TestSeedExamples(t *testing.T) {
	cfg := testConfig(t)
	cfg.Timeout = 2 * time.Second
	ts := startTest(t, cfg, nil)

	ts.do("GET", "/scripts", "").want(t, 200)
	if got := string(ts.do("GET", "/scripts", "").body); strings.TrimSpace(got) != "[]" {
		t.Fatalf("empty folder lists %s, want []", got)
	}

	ts.do("POST", "/scripts", seedHello, jsonType, "application/json").want(t, 201)
	// hello.py nests double quotes inside an f-string: valid from Python
	// 3.12 on. Before that it is the script's own SyntaxError: a result,
	// not a server error.
	res := ts.do("POST", "/run/hello.py", `{"data": {"name": "Alice"}, "args": ["--verbose"]}`, jsonType, "application/json").want(t, 200).result(t)
	if pythonAtLeast(t, 12) {
		if res.Stdout != "{\"greeting\": \"Hello, Alice\"}\n" || *res.ExitCode != 0 {
			t.Fatalf("hello.py: %+v", res)
		}
	} else if res.ExitCode == nil || *res.ExitCode != 1 || !strings.Contains(res.Stderr, "SyntaxError") || res.Stdout != "" {
		t.Fatalf("hello.py on Python < 3.12: want SyntaxError with exit 1, got %+v", res)
	}

	ts.do("POST", "/scripts", seedMath, jsonType, "application/json").want(t, 201)
	var names []string
	ts.do("GET", "/scripts", "").want(t, 200).json(t, &names)
	if strings.Join(names, ",") != "hello.py,math.py" {
		t.Fatalf("list: %v", names)
	}
	res = ts.do("POST", "/run/math.py", `{"data": {"x": 7}}`, jsonType, "application/json").want(t, 200).result(t)
	if res.Stdout != "{\"square\": 49}\n" || res.Stderr != "" || *res.ExitCode != 0 || res.TimedOut {
		t.Fatalf("math.py: %+v", res)
	}

	ts.do("POST", "/scripts", seedArgs, jsonType, "application/json").want(t, 201)
	res = ts.do("POST", "/run/args_demo.py", `{"data": {"foo": "bar"}, "args": ["--debug", "42"]}`, jsonType, "application/json").want(t, 200).result(t)
	if res.Stdout != "{\"args\": [\"--debug\", \"42\"], \"data\": {\"foo\": \"bar\"}}\n" {
		t.Fatalf("args_demo.py: %q", res.Stdout)
	}

	// Run all, and a chosen two.
	var multi struct {
		Results map[string]json.RawMessage `json:"results"`
	}
	ts.do("POST", "/run", `{"data": {"x": 42}}`, jsonType, "application/json").want(t, 200).json(t, &multi)
	if len(multi.Results) != 3 || !strings.Contains(string(multi.Results["math.py"]), `{\"square\": 1764}\n`) {
		t.Fatalf("run all: %s", multi.Results)
	}
	multi.Results = nil
	ts.do("POST", "/run?names=hello.py,math.py", `{"data": {"value": 100}}`, jsonType, "application/json").want(t, 200).json(t, &multi)
	if len(multi.Results) != 2 || multi.Results["math.py"] == nil || multi.Results["hello.py"] == nil {
		t.Fatalf("run two: %s", multi.Results)
	}
	// math.py fails on {"value": 100}: a KeyError, still a result.
	var mres struct {
		ExitCode *int   `json:"exit_code"`
		Stderr   string `json:"stderr"`
	}
	if err := json.Unmarshal(multi.Results["math.py"], &mres); err != nil || mres.ExitCode == nil || *mres.ExitCode != 1 || !strings.Contains(mres.Stderr, "KeyError: 'x'") {
		t.Fatalf("math.py on {value:100}: %s", multi.Results["math.py"])
	}

	ts.do("PUT", "/scripts/hello.py", `{"code": "print(\"new version\")"}`, jsonType, "application/json").want(t, 200)
	res = ts.do("POST", "/run/hello.py", "").want(t, 200).result(t)
	if res.Stdout != "new version\n" {
		t.Fatalf("after update: %+v", res)
	}

	ts.do("DELETE", "/scripts/hello.py", "").want(t, 204)
	ts.do("POST", "/run/hello.py", "").want(t, 404)

	// The timeout example sends no Content-Type.
	ts.do("POST", "/scripts", seedInfinite, jsonType, "application/json").want(t, 201)
	start := time.Now()
	r := ts.do("POST", "/run/infinite.py", `{"data":{}}`).want(t, 504)
	if took := time.Since(start); took < cfg.Timeout {
		t.Fatalf("timed out after %s, before the %s limit", took, cfg.Timeout)
	}
	var tb struct {
		Error    string `json:"error"`
		TimedOut bool   `json:"timed_out"`
		ExitCode *int   `json:"exit_code"`
		Signal   string `json:"signal"`
	}
	r.json(t, &tb)
	if tb.Error != "Script execution timed out" || !tb.TimedOut || tb.ExitCode != nil || tb.Signal != "SIGKILL" {
		t.Fatalf("timeout body: %s", r.body)
	}
}

// The seed document's examples in its own order, as the README's transcript
// shows them: its API reference deletes hello.py before running it and
// names an another.py it never creates, so those runs answer 404, with
// nothing run; the examples after them work as the seed says.
func TestSeedExamplesInTheSeedsOrder(t *testing.T) {
	cfg := testConfig(t)
	cfg.Timeout = 2 * time.Second
	ts := startTest(t, cfg, nil)
	post := func(path, body string) response {
		return ts.do("POST", path, body, jsonType, "application/json")
	}

	if got := strings.TrimSpace(string(ts.do("GET", "/scripts", "").want(t, 200).body)); got != "[]" {
		t.Fatalf("empty folder lists %s, want []", got)
	}
	post("/scripts", seedHello).want(t, 201)
	ts.do("PUT", "/scripts/hello.py", `{"code": "print(\"new version\")"}`, jsonType, "application/json").want(t, 200)
	ts.do("DELETE", "/scripts/hello.py", "").want(t, 204)
	if r := post("/run/hello.py", `{"data": {"name": "Alice"}, "args": ["--verbose"]}`).want(t, 404); !strings.Contains(string(r.body), `script \"hello.py\" not found`) {
		t.Fatalf("run of the deleted hello.py: %s", r.body)
	}
	if r := post("/run", `{"data": {"x": 42}}`).want(t, 200); strings.TrimSpace(string(r.body)) != `{"results":{}}` {
		t.Fatalf("run all in an empty folder: %s", r.body)
	}
	if r := post("/run?names=hello.py,another.py", `{"data": {"value": 100}}`).want(t, 404); !strings.Contains(string(r.body), "unknown scripts: another.py, hello.py") {
		t.Fatalf("run of two unknown scripts: %s", r.body)
	}

	post("/scripts", seedMath).want(t, 201)
	var names []string
	ts.do("GET", "/scripts", "").want(t, 200).json(t, &names)
	if strings.Join(names, ",") != "math.py" {
		t.Fatalf("list: %v, want [math.py] as the seed says", names)
	}
	if res := post("/run/math.py", `{"data": {"x": 7}}`).want(t, 200).result(t); res.Stdout != "{\"square\": 49}\n" || *res.ExitCode != 0 {
		t.Fatalf("math.py: %+v", res)
	}
	post("/scripts", seedArgs).want(t, 201)
	if res := post("/run/args_demo.py", `{"data": {"foo": "bar"}, "args": ["--debug", "42"]}`).want(t, 200).result(t); res.Stdout != "{\"args\": [\"--debug\", \"42\"], \"data\": {\"foo\": \"bar\"}}\n" {
		t.Fatalf("args_demo.py: %+v", res)
	}
	post("/scripts", seedInfinite).want(t, 201)
	if r := ts.do("POST", "/run/infinite.py", `{"data":{}}`).want(t, 504); !strings.Contains(string(r.body), `"error":"Script execution timed out"`) {
		t.Fatalf("infinite.py: %s", r.body)
	}
}
