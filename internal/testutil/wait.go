package testutil

import (
	"testing"
	"time"
)

// WaitFor polls cond until it holds, and fails the test if it does not
// within d. It must be called from the test's goroutine.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
