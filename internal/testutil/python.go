package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// SystemPython is the interpreter the tests prefer: the system's, which
// every user may run (a pyenv shim under /root is slow to start and
// cannot be run by nobody) and which has numpy where .ci/run installs it.
const SystemPython = "/usr/bin/python3"

var python = sync.OnceValues(func() (string, error) {
	name := os.Getenv("SCRIPTHOST_TEST_PYTHON")
	if name == "" {
		if fi, err := os.Stat(SystemPython); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return SystemPython, nil
		}
		name = "python3"
	}
	// What the name runs: a shim or a link resolves to the interpreter's
	// own path, asked once.
	path, err := exec.LookPath(name)
	if err != nil {
		return "", err
	}
	out, err := exec.Command(path, "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return "", fmt.Errorf("%s -c 'import sys': %w: %s", path, err, exit.Stderr)
		}
		return "", fmt.Errorf("%s: %w", path, err)
	}
	exe := strings.TrimSpace(string(out))
	if exe == "" {
		return path, nil
	}
	return filepath.Abs(exe)
})

// PythonPath is the absolute path of the tests' interpreter:
// $SCRIPTHOST_TEST_PYTHON, else /usr/bin/python3, else python3 from PATH,
// each resolved to the interpreter itself (sys.executable), once.
func PythonPath() (string, error) { return python() }

// Python is PythonPath, and skips the test where there is no interpreter:
// a machine without Python 3 cannot run scripts at all.
func Python(t testing.TB) string {
	t.Helper()
	p, err := python()
	if err != nil {
		t.Skipf("no python interpreter: %v", err)
	}
	return p
}
