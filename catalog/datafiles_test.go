package catalog_test

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scripthost/scripthost/internal/testutil"
)

// fileEvents records what OnFileChange hooks are told.
type fileEvents struct {
	mu  sync.Mutex
	all []string // "name=content", "name gone"
}

func (e *fileEvents) hook(name string, data []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if data == nil {
		e.all = append(e.all, name+" gone")
	} else {
		e.all = append(e.all, name+"="+string(data))
	}
}

func (e *fileEvents) has(ev string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(e.all, ev)
}

// Data files beside the scripts are followed like scripts: found at start,
// edits and removals by hand told to the hooks, never warned about, never
// listed as scripts.
func TestDataFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.py", "print(open('data.csv').read())\n")
	writeFile(t, dir, "data.csv", "x,y\n1,2\n")
	writeFile(t, dir, "odd name.csv", "not copied\n")
	c, logs := newCatalog(t, dir, 50*time.Millisecond)
	var ev fileEvents
	c.OnFileChange(ev.hook)
	if !ev.has("data.csv=x,y\n1,2\n") {
		t.Fatalf("at start, the hook was told %q", ev.all)
	}
	if got := c.List(); !slices.Equal(got, []string{"a.py"}) {
		t.Fatalf("List() = %q", got)
	}
	writeFile(t, dir, "config.json", `{"k": 1}`)
	testutil.WaitFor(t, 30*time.Second, "a new data file", func() bool { return ev.has(`config.json={"k": 1}`) })
	writeFile(t, dir, "data.csv", "x,y\n3,4\n")
	testutil.WaitFor(t, 30*time.Second, "an edit", func() bool { return ev.has("data.csv=x,y\n3,4\n") })
	os.Remove(filepath.Join(dir, "config.json"))
	testutil.WaitFor(t, 30*time.Second, "a removal", func() bool { return ev.has("config.json gone") })
	if n := logs.count("WARN", "file=data.csv"); n != 0 {
		t.Errorf("%d warnings about a data file", n)
	}
	if n := logs.count("WARN", "file=odd name.csv"); n != 1 {
		t.Errorf("%d warnings about a file that cannot be copied, want 1", n)
	}
	if files := c.Files(); !slices.Equal(files, []string{"data.csv"}) {
		t.Errorf("Files() = %q", files)
	}
}
