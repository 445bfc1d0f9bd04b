package catalog_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scripthost/scripthost/catalog"
)

// logRecorder is a slog handler that sends records to t.Log and keeps
// them for assertions.
type logRecorder struct {
	t    testing.TB
	mu   *sync.Mutex
	recs *[]string
}

func newLogRecorder(t testing.TB) *logRecorder {
	return &logRecorder{t: t, mu: new(sync.Mutex), recs: new([]string)}
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	*h.recs = append(*h.recs, b.String())
	h.mu.Unlock()
	h.t.Log(b.String())
	return nil
}

// count is how many records contain every one of parts.
func (h *logRecorder) count(parts ...string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
next:
	for _, r := range *h.recs {
		for _, p := range parts {
			if !strings.Contains(r, p) {
				continue next
			}
		}
		n++
	}
	return n
}

// newCatalog opens a catalog on dir (a fresh folder when empty). With a
// positive interval it also runs the rescans until the test ends.
func newCatalog(t *testing.T, dir string, interval time.Duration) (*catalog.Catalog, *logRecorder) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	logs := newLogRecorder(t)
	c, err := catalog.New(catalog.Config{Dir: dir, ScanInterval: interval, Log: slog.New(logs)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if interval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { c.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return c, logs
}

// writeFile puts a file in dir as an editor that saves atomically does: a
// rescan never sees it half written.
func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	f, err := os.CreateTemp(filepath.Dir(dir), ".write-")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(f.Name())
		t.Fatal(err)
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dirNames lists the folder, dotfiles included.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
