package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
)

// A second serve on the data folder of a running one exits at once,
// saying which folder and which pid holds it, and the first goes on
// serving; once the first is killed (kill -9: it never released the
// lock itself), a new serve on the folder starts.
func TestSecondServerOnDataDirRefused(t *testing.T) {
	t.Parallel() // its own servers
	scripts, data := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(scripts, "hello.py"), []byte("print('hello')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() (*process, string) {
		httpAddr := freePort(t)
		p := startBinary(t, nil, "serve", "--http", httpAddr, "--nats-listen", freePort(t), "--scripts", scripts,
			"--python", testutil.Python(t), "--mode", testMode(), "--max-concurrent", "1", "--data-dir", data)
		return p, "http://" + httpAddr
	}
	first, firstBase := start()
	waitHTTP(t, firstBase+"/healthz")

	second, _ := start()
	var err error
	select {
	case err = <-second.done:
		second.done <- err
	case <-time.After(60 * time.Second):
		t.Fatalf("the second server on %s did not exit; its log:\n%s", data, second.log())
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() == 0 {
		t.Fatalf("second server: %v, want a non-zero exit status", err)
	}
	want := "the data folder " + data + " is in use by another scripthost serve (pid " + strconv.Itoa(first.cmd.Process.Pid) + ")"
	if log := second.log(); !strings.Contains(log, want) {
		t.Fatalf("second server's stderr does not say %q:\n%s", want, log)
	}
	if strings.Contains(second.log(), "Server listening") {
		t.Fatalf("the refused server claimed to listen:\n%s", second.log())
	}
	code, body, _ := httpCall(t, "POST", firstBase+"/run/hello.py", "", "")
	if code != 200 || !strings.Contains(body, `"stdout":"hello\n"`) {
		t.Fatalf("the first server after the second was refused: %d %s", code, body)
	}

	first.kill9(t)
	third, thirdBase := start()
	waitHTTP(t, thirdBase+"/healthz")
	code, body, _ = httpCall(t, "POST", thirdBase+"/run/hello.py", "", "")
	if code != 200 || !strings.Contains(body, `"stdout":"hello\n"`) {
		t.Fatalf("a server on the folder of a killed one: %d %s", code, body)
	}
	b, err := os.ReadFile(filepath.Join(data, lockFileName))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(third.cmd.Process.Pid) {
		t.Fatalf("lock file holds %q (%v), want the new server's pid %d", b, err, third.cmd.Process.Pid)
	}
}
