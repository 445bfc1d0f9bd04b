package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
)

// cli runs a client command in the test process with stdin as its
// standard input.
func cli(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = cliCommand(ctx, args[0], args[1:], strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// cliScripts are the scripts of the client tests.
var cliScripts = map[string]string{
	"echo.py": "import sys\n" +
		"data = sys.stdin.read()\n" +
		"sys.stdout.write('data=%s args=%s\\n' % (data, sys.argv[1:]))\n" +
		"sys.stderr.write('to stderr\\n')\n",
	"exit3.py": "import sys\nprint('partial')\nsys.stderr.write('failing\\n')\nsys.exit(3)\n",
	"kill.py":  "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
	"loop.py":  "import sys, time\nprint('started', flush=True)\nwhile True: time.sleep(0.01)\n",
}

func TestCLI(t *testing.T) {
	cfg := testConfig(t)
	cfg.Timeout = 3 * time.Second
	ts := startTest(t, cfg, cliScripts)
	file := filepath.Join(t.TempDir(), "new.py")

	for _, transport := range []struct{ name, flag, url string }{
		{"nats", "--nats", ts.s.natsURL},
		{"http", "--http", ts.base},
	} {
		// One transport after the other: both list the scripts of one
		// server and write the same file.
		t.Run(transport.name, func(t *testing.T) {
			name := "new_" + transport.name + ".py"
			c := func(stdin string, args ...string) (int, string, string) {
				t.Helper()
				// The transport's flag goes before a "--": what follows
				// it is the script's.
				at := slices.Index(args, "--")
				if at < 0 {
					at = len(args)
				}
				return cli(t, stdin, slices.Concat(args[:at], []string{transport.flag, transport.url}, args[at:])...)
			}
			for _, tc := range []struct {
				name       string
				stdin      string
				args       []string
				code       int
				stdout     string
				stderrPart string
			}{
				{name: "run with data and args", args: []string{"run", "echo.py", "--data", `{"x": [1, 2.50]}`, "--arg", "a b", "--arg", "-c"},
					stdout: "data={\"x\": [1, 2.50]} args=['a b', '-c']\n", stderrPart: "to stderr\n"},
				{name: "flags before the name", args: []string{"run", "--arg", "z", "echo.py"},
					stdout: "data= args=['z']\n"},
				{name: "argv after --", args: []string{"run", "echo.py", "--data", "1", "--arg", "a", "--", "--times", "2", "--", "-h"},
					stdout: "data=1 args=['a', '--times', '2', '--', '-h']\n"},
				{name: "data from stdin", stdin: "{\"from\": \"stdin\"}\n", args: []string{"run", "echo.py"},
					stdout: "data={\"from\": \"stdin\"} args=[]\n"},
				{name: "--data wins over stdin", stdin: `{"from": "stdin"}`, args: []string{"run", "echo.py", "--data", "7"},
					stdout: "data=7 args=[]\n"},
				{name: "no data", args: []string{"run", "echo.py", "--data", ""}, stdout: "data= args=[]\n"},
				{name: "exit code passed on", args: []string{"run", "exit3.py"}, code: 3, stdout: "partial\n", stderrPart: "failing\n"},
				{name: "signal", args: []string{"run", "kill.py", "--no-cache"}, code: 128 + 9, stderrPart: "killed by SIGKILL"},
				{name: "timeout", args: []string{"run", "loop.py"}, code: 124, stdout: "started\n", stderrPart: "Script execution timed out"},
				{name: "unknown script", args: []string{"run", "nope.py"}, code: 127, stderrPart: `"nope.py" not found`},
				{name: "invalid name", args: []string{"run", "../x.py"}, code: 125, stderrPart: "invalid script name"},
				{name: "stdin not JSON", stdin: "hello", args: []string{"run", "echo.py"}, code: 2, stderrPart: "stdin: the data is not valid JSON"},
				{name: "--data not JSON", args: []string{"run", "echo.py", "--data", "{"}, code: 2, stderrPart: "--data: the data is not valid JSON"},
				{name: "no name", args: []string{"run"}, code: 2, stderrPart: "want 1 argument"},
				{name: "ls", args: []string{"ls"}, stdout: "echo.py\nexit3.py\nkill.py\nloop.py\n"},
				{name: "cat", args: []string{"cat", "exit3.py"}, stdout: cliScripts["exit3.py"]},
				{name: "cat unknown", args: []string{"cat", "nope.py"}, code: 1, stderrPart: `scripthost cat: script "nope.py" not found`},
				{name: "put creates", args: []string{"put", name, file}, stdout: "created " + name + " (version "},
				{name: "run the new script", args: []string{"run", name}, stdout: "v1\n"},
				{name: "put from stdin updates", stdin: "print('v2')\n", args: []string{"put", name, "-"}, stdout: "updated " + name + " (version "},
				{name: "run the update", args: []string{"run", name}, stdout: "v2\n"},
				{name: "put bad name", args: []string{"put", "bad name.py", file}, code: 1, stderrPart: "invalid script name"},
				{name: "put missing file", args: []string{"put", name, file + ".missing"}, code: 1, stderrPart: "no such file"},
				{name: "rm", args: []string{"rm", name}, stdout: "removed " + name + "\n"},
				{name: "rm again", args: []string{"rm", name}, code: 1, stderrPart: "not found"},
			} {
				if tc.name == "put creates" {
					if err := os.WriteFile(file, []byte("print('v1')\n"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				code, stdout, stderr := c(tc.stdin, tc.args...)
				if tc.name == "ls" {
					// The other transport's subtest creates and removes its
					// own new_*.py meanwhile.
					var kept []string
					for _, l := range strings.SplitAfter(stdout, "\n") {
						if !strings.HasPrefix(l, "new_") {
							kept = append(kept, l)
						}
					}
					stdout = strings.Join(kept, "")
				}
				okOut := stdout == tc.stdout || strings.HasSuffix(tc.stdout, "(version ") && strings.HasPrefix(stdout, tc.stdout)
				if code != tc.code || !okOut || !strings.Contains(stderr, tc.stderrPart) {
					t.Errorf("%s: %q\nexit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr with %q",
						tc.name, tc.args, code, stdout, stderr, tc.code, tc.stdout, tc.stderrPart)
				}
			}
		})
	}
}

func TestCLIUsageAndUnreachable(t *testing.T) {
	dead := freePort(t)
	for _, tc := range []struct {
		name, part string
		args       []string
		code       int
	}{
		{name: "both transports", args: []string{"ls", "--nats", "nats://" + dead, "--http", "http://" + dead}, code: 2, part: "not both"},
		{name: "unknown flag", args: []string{"ls", "--bogus"}, code: 2, part: "flag provided but not defined"},
		{name: "bad --wait", args: []string{"ls", "--wait", "3x"}, code: 2, part: `invalid duration "3x": want a duration like 30s or 1m30s, or seconds (30)`},
		{name: "extra argument", args: []string{"ls", "x"}, code: 2, part: "want 0 argument"},
		{name: "run --async --timeout in seconds", args: []string{"run", "a.py", "--async", "--timeout", "5", "--nats", "nats://" + dead}, code: 125, part: "cannot reach the NATS bus"},
		{name: "bad --async --timeout", args: []string{"run", "a.py", "--async", "--timeout", "5x"}, code: 2, part: `invalid duration "5x"`},
		{name: "nats down", args: []string{"ls", "--nats", "nats://" + dead}, code: 1, part: "cannot reach the NATS bus at nats://" + dead},
		{name: "http down", args: []string{"run", "a.py", "--http", dead}, code: 125, part: "cannot reach the HTTP API at http://" + dead},
		{name: "bad http URL", args: []string{"ls", "--http", "ftp://x"}, code: 1, part: "want a URL"},
		{name: "help", args: []string{"put", "-h"}, code: 0, part: "usage: scripthost put NAME FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := cli(t, "", tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.part) {
				t.Fatalf("exit %d, stderr %q; want %d with %q", code, stderr, tc.code, tc.part)
			}
			// A bad command line is answered in a few lines, not with
			// every flag.
			if code == 2 && strings.Count(stderr, "\n") > 6 {
				t.Fatalf("%d lines for a bad command line:\n%s", strings.Count(stderr, "\n"), stderr)
			}
		})
	}
}

// TestCLIBinary runs the real binary twice: serve with JSON logs, and the
// client, which gets its server from the environment, its data from a
// pipe, and passes on the script's exit code as its own.
func TestCLIBinary(t *testing.T) {
	dir := t.TempDir()
	for name, code := range cliScripts {
		os.WriteFile(filepath.Join(dir, name), []byte(code), 0o644)
	}
	httpAddr, natsAddr := freePort(t), freePort(t)
	p := startBinary(t, []string{
		"SCRIPTHOST_HTTP=" + httpAddr,
		"SCRIPTHOST_NATS_LISTEN=" + natsAddr,
		"SCRIPTHOST_SCRIPTS=" + dir,
		"SCRIPTHOST_PYTHON=" + testutil.Python(t),
		"SCRIPTHOST_LOG_FORMAT=json",
	}, "serve")
	waitHTTP(t, "http://"+httpAddr+"/readyz")
	bin, _ := buildBinary()

	for _, tc := range []struct {
		name string
		env  string
		args []string
		code int
	}{
		{"nats from the environment", "SCRIPTHOST_NATS=nats://" + natsAddr, []string{"run", "exit3.py", "--arg", "x"}, 3},
		{"http from the environment", "SCRIPTHOST_HTTP=" + httpAddr, []string{"run", "echo.py"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = append(os.Environ(), tc.env)
			cmd.Stdin = strings.NewReader(`{"piped": true}`)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var exitErr *exec.ExitError
			if errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.code, stdout.String(), stderr.String())
			}
			if tc.args[1] == "echo.py" && stdout.String() != "data={\"piped\": true} args=[]\n" {
				t.Fatalf("stdout %q", stdout.String())
			}
		})
	}

	// One JSON log line per run, with what an operator needs.
	var line map[string]any
	testutil.WaitFor(t, 30*time.Second, "the run's log line", func() bool {
		for _, l := range strings.Split(p.log(), "\n") {
			if json.Unmarshal([]byte(l), &line) == nil && line["msg"] == "run" && line["script"] == "exit3.py" {
				return true
			}
		}
		return false
	})
	for _, k := range []string{"script", "node", "duration", "exit_code", "cache", "outcome"} {
		if _, ok := line[k]; !ok {
			t.Errorf("run log line has no %q: %v", k, line)
		}
	}
	if line["exit_code"] != "3" || line["outcome"] != "error" || line["cache"] != "miss" {
		t.Errorf("run log line %v", line)
	}
}
