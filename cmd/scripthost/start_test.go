package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
)

// runMain runs the binary's main logic in-process with args. A serve
// without --data-dir keeps its jobs in a folder of the test's, never in
// the default ./data, which would be the source tree.
func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if len(args) > 0 && args[0] == "serve" && !hasFlag(args, "data-dir") {
		args = append([]string{"serve", "--data-dir", t.TempDir()}, args[1:]...)
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// hasFlag reports whether args set the flag name, as -name or --name,
// with its value apart or after "=".
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		code, stdout, stderr := runMain(t, arg)
		if code != 0 || !strings.HasPrefix(stdout, "scripthost "+version+" (") || !strings.Contains(stdout, "go1.") || stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", arg, code, stdout, stderr)
		}
	}
}

// A bad flag gets two lines: what is wrong and where the flags are.
func TestBadFlagsAreShort(t *testing.T) {
	for _, tc := range []struct {
		args []string
		part string
	}{
		{[]string{"serve", "--bogus"}, "flag provided but not defined: -bogus\nRun 'scripthost serve -h' for its flags.\n"},
		{[]string{"executor", "--bogus"}, "flag provided but not defined: -bogus\nRun 'scripthost executor -h' for its flags.\n"},
		{[]string{"serve", "--timeout", "soon"}, `invalid value "soon" for flag -timeout: invalid duration "soon": want a duration like 30s or 1m30s, or seconds (30)`},
		{[]string{"--http", "http://127.0.0.1:3000", "ls"}, "scripthost: --http: the flags come after the command"},
		{[]string{"serve", "--job-ttl", "soon"}, `invalid value "soon" for flag -job-ttl: invalid duration "soon": want a duration like 30s or 1m30s, or seconds (30)`},
	} {
		code, _, stderr := runMain(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.part) || strings.Count(stderr, "\n") > 2 {
			t.Errorf("%q: exit %d, stderr %q; want 2 with %q", tc.args, code, stderr, tc.part)
		}
	}
	// A job's --timeout takes seconds as the others do: the command goes
	// on to reach the bus.
	if code, _, stderr := runMain(t, "job", "submit", "a.py", "--timeout", "5", "--nats", "nats://"+freePort(t)); code != 1 || !strings.Contains(stderr, "cannot reach the NATS bus") {
		t.Errorf("job submit --timeout 5: exit %d, stderr %q", code, stderr)
	}
	// -h still lists every flag.
	if code, _, stderr := runMain(t, "serve", "-h"); code != 0 || !strings.Contains(stderr, "-max-concurrent") {
		t.Errorf("serve -h: %d %q", code, stderr)
	}
}

func TestDurationFlags(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"30", 30 * time.Second}, {"1.5", 1500 * time.Millisecond}, {"30s", 30 * time.Second}, {"1m30s", 90 * time.Second}, {"0", 0},
	} {
		var d time.Duration
		if err := (durationFlag{&d}).Set(tc.in); err != nil || d != tc.want {
			t.Errorf("%q: %v %v, want %v", tc.in, d, err, tc.want)
		}
	}
	for _, bad := range []string{"", "soon", "-1", "NaN", "1e300"} {
		var d time.Duration
		if err := (durationFlag{&d}).Set(bad); err == nil {
			t.Errorf("%q accepted as %v", bad, d)
		}
	}
}

// A start that fails says why, never that the server listens, and leaves
// no scripts folder behind.
func TestFailedStart(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		part string
	}{
		{"port taken", []string{"--http", taken.Addr().String()}, "address already in use"},
		{"scripts is a file", []string{"--scripts", file}, "not a directory"},
		{"unknown run user", []string{"--run-as", "no-such-user-here"}, "--run-as no-such-user-here"},
		{"not an interpreter", []string{"--python", "/bin/false"}, "interpreter /bin/false is not a working Python 3: `/bin/false -c ...` failed (exit status 1) and printed nothing"},
		{"not python", []string{"--python", "/bin/true"}, "interpreter /bin/true is not Python 3"},
		{"a NATS port alone", []string{"--nats-listen", "-1"}, `--nats-listen "-1": want host:port (127.0.0.1:-1 for any free port), or none`},
		{"NATS port 0", []string{"--nats-listen", "127.0.0.1:0"}, `--nats-listen "127.0.0.1:0": port 0 would be NATS's default 4222; -1 is any free port`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scripts := filepath.Join(dir, "scripts-"+strings.ReplaceAll(tc.name, " ", "-"))
			data := filepath.Join(dir, "data-"+strings.ReplaceAll(tc.name, " ", "-"))
			args := append([]string{"serve", "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--scripts", scripts,
				"--data-dir", data, "--python", testutil.Python(t)}, tc.args...)
			code, _, stderr := runMain(t, args...)
			if code == 0 || !strings.Contains(stderr, tc.part) {
				t.Fatalf("exit %d, stderr:\n%s\nwant it to say %q", code, stderr, tc.part)
			}
			if strings.Contains(stderr, "WARN") {
				t.Fatalf("a failed start warned first:\n%s", stderr)
			}
			if strings.Contains(stderr, "Server listening") {
				t.Fatalf("a failed start said it listens:\n%s", stderr)
			}
			for _, made := range []string{scripts, data} {
				if _, err := os.Stat(made); !os.IsNotExist(err) {
					t.Fatalf("a failed start left %s: %v", made, err)
				}
			}
		})
	}
}
