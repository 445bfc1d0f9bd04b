package httpbridge

import (
	"fmt"
	"os"
	"testing"

	"github.com/scripthost/scripthost/executor"
)

// TestMain prepares the test process to run scripts (sse_test.go starts
// an executor), as main does.
func TestMain(m *testing.M) {
	if err := executor.SetupProcess(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
