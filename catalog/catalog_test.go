package catalog_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scripthost/scripthost/catalog"
	"github.com/scripthost/scripthost/internal/testutil"
	"github.com/scripthost/scripthost/model"
)

func TestNewScansFolder(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "hello.py", "print('hello')\n")
	writeFile(t, dir, "math.py", "print(1+1)\n")
	writeFile(t, dir, "README.md", "not a script\n")
	writeFile(t, dir, "my notes.txt", "not a script nor a data file name\n")
	writeFile(t, dir, "bad name.py", "print()\n")
	writeFile(t, dir, ".hidden.py", "print()\n")
	for _, sub := range []string{"pkg", "__pycache__", "dir.py"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "hello.py"), filepath.Join(dir, "link.py")); err != nil {
		t.Fatal(err)
	}
	// Temporary files: one left by a crash long ago, one maybe in use.
	writeFile(t, dir, ".scripthost-tmp-stale", "half a scr")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, ".scripthost-tmp-stale"), old, old); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, ".scripthost-tmp-fresh", "being written")

	c, logs := newCatalog(t, dir, 0)
	if got, want := c.List(), []string{"hello.py", "math.py"}; !slices.Equal(got, want) {
		t.Fatalf("List() = %q, want %q", got, want)
	}
	if n := logs.count("INFO Scanned scripts: found 2 scripts"); n != 1 {
		t.Fatalf("%d scan summaries logged, want 1", n)
	}
	for range 3 {
		c.Rescan()
	}
	for _, skipped := range []string{"my notes.txt", "bad name.py", ".hidden.py", "link.py"} {
		if n := logs.count("WARN", "file="+skipped); n != 1 {
			t.Errorf("%d warnings about %q, want exactly 1", n, skipped)
		}
	}
	// README.md is a data file: followed (and copied to executor nodes),
	// not warned about.
	for _, quiet := range []string{"pkg", "__pycache__", "dir.py", ".scripthost-tmp-", "README.md"} {
		if n := logs.count("WARN", "file="+quiet); n != 0 {
			t.Errorf("%d warnings about %q, want none", n, quiet)
		}
	}
	names := dirNames(t, dir)
	if slices.Contains(names, ".scripthost-tmp-stale") {
		t.Error("stale temporary file not removed")
	}
	if !slices.Contains(names, ".scripthost-tmp-fresh") {
		t.Error("recent temporary file removed: it may belong to a write in progress")
	}

	// A skipped file that goes away and comes back is warned about again.
	os.Remove(filepath.Join(dir, "my notes.txt"))
	c.Rescan()
	writeFile(t, dir, "my notes.txt", "again\n")
	c.Rescan()
	if n := logs.count("WARN", "file=my notes.txt"); n != 2 {
		t.Errorf("%d warnings about my notes.txt after it came back, want 2", n)
	}
}

func TestNewFolder(t *testing.T) {
	t.Run("created and made absolute", func(t *testing.T) {
		base := t.TempDir()
		t.Chdir(base)
		c, logs := newCatalog(t, filepath.Join("a", "scripts"), 0)
		want := filepath.Join(base, "a", "scripts")
		if c.Dir() != want {
			t.Fatalf("Dir() = %q, want %q", c.Dir(), want)
		}
		if fi, err := os.Stat(want); err != nil || !fi.IsDir() {
			t.Fatalf("folder not created: %v", err)
		}
		if c.List() == nil || len(c.List()) != 0 {
			t.Fatalf("List() = %#v, want an empty, non-nil list", c.List())
		}
		if logs.count("Scanned scripts: found 0 scripts") != 1 {
			t.Fatal("scan summary not logged")
		}
	})
	t.Run("errors", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		writeFile(t, filepath.Dir(file), "file", "x")
		for _, cfg := range []catalog.Config{{Dir: ""}, {Dir: file}} {
			if _, err := catalog.New(cfg); err == nil {
				t.Errorf("New(%+v) succeeded", cfg)
			}
		}
	})
}

// TestOperations runs the CRUD methods in sequence on one catalog and
// checks each result and error code.
func TestOperations(t *testing.T) {
	c, _ := newCatalog(t, "", 0)
	dir := c.Dir()
	if err := os.Mkdir(filepath.Join(dir, "adir.py"), 0o755); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() (any, error)
		code int // 0: success
		want any
	}{
		{"list empty", func() (any, error) { return c.List(), nil }, 0, []string{}},
		{"get missing", func() (any, error) { return c.Get("a.py") }, 404, nil},
		{"get bad name", func() (any, error) { return c.Get("../a.py") }, 400, nil},
		{"create", func() (any, error) { return c.Create("a.py", "print('a')\n") }, 0,
			model.Script{Name: "a.py", Code: "print('a')\n", Version: model.Version([]byte("print('a')\n"))}},
		{"create again", func() (any, error) { return c.Create("a.py", "x") }, 409, nil},
		{"create bad name", func() (any, error) { return c.Create("a b.py", "x") }, 400, nil},
		{"create over a folder", func() (any, error) { return c.Create("adir.py", "x") }, 409, nil},
		{"create empty code", func() (any, error) { return c.Create("empty.py", "") }, 0,
			model.Script{Name: "empty.py", Code: "", Version: model.Version(nil)}},
		{"get", func() (any, error) { return c.Get("a.py") }, 0,
			model.Script{Name: "a.py", Code: "print('a')\n", Version: model.Version([]byte("print('a')\n"))}},
		{"list", func() (any, error) { return c.List(), nil }, 0, []string{"a.py", "empty.py"}},
		{"update", func() (any, error) { return c.Update("a.py", "print('A')\n") }, 0,
			model.Script{Name: "a.py", Code: "print('A')\n", Version: model.Version([]byte("print('A')\n"))}},
		{"get updated", func() (any, error) { return c.Get("a.py") }, 0,
			model.Script{Name: "a.py", Code: "print('A')\n", Version: model.Version([]byte("print('A')\n"))}},
		{"update missing", func() (any, error) { return c.Update("b.py", "x") }, 404, nil},
		{"update a folder", func() (any, error) { return c.Update("adir.py", "x") }, 404, nil},
		{"update bad name", func() (any, error) { return c.Update("b", "x") }, 400, nil},
		{"delete", func() (any, error) { return nil, c.Delete("a.py") }, 0, nil},
		{"delete again", func() (any, error) { return nil, c.Delete("a.py") }, 404, nil},
		{"delete a folder", func() (any, error) { return nil, c.Delete("adir.py") }, 404, nil},
		{"delete bad name", func() (any, error) { return nil, c.Delete("*.py") }, 400, nil},
		{"get deleted", func() (any, error) { return c.Get("a.py") }, 404, nil},
		{"list after delete", func() (any, error) { return c.List(), nil }, 0, []string{"empty.py"}},
	}
	for _, s := range steps {
		got, err := s.do()
		if s.code != 0 {
			if err == nil || model.Code(err) != s.code {
				t.Fatalf("%s: error %v (code %d), want code %d", s.name, err, model.Code(err), s.code)
			}
			if model.Message(err) == model.ErrInternal.Error() {
				t.Fatalf("%s: message %q says nothing", s.name, model.Message(err))
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.want != nil && fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", s.want) {
			t.Fatalf("%s: got %#v, want %#v", s.name, got, s.want)
		}
	}
	if slices.Contains(dirNames(t, dir), "a.py") {
		t.Fatal("deleted file still in the folder")
	}
}

func TestAtomicWrites(t *testing.T) {
	c, _ := newCatalog(t, "", 0)
	dir := c.Dir()
	// Two contents large enough that a non-atomic write would be seen half
	// done by a concurrent reader.
	contents := []string{
		strings.Repeat("# aaaaaaaaaaaaaaa\n", 1<<14),
		strings.Repeat("# bbbbbbbbbbbbbbbbbbbbbbbbb\n", 1<<14),
	}
	if _, err := c.Create("big.py", contents[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "big.py"), 0o750); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var torn error
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(filepath.Join(dir, "big.py"))
			if err != nil {
				torn = err
				return
			}
			if s := string(b); s != contents[0] && s != contents[1] {
				torn = fmt.Errorf("read %d bytes that are neither version", len(b))
				return
			}
		}
	})
	for i := range 40 {
		if _, err := c.Update("big.py", contents[(i+1)%2]); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if torn != nil {
		t.Fatalf("a reader saw a partial write: %v", torn)
	}
	if got := readFile(t, dir, "big.py"); got != contents[0] {
		t.Fatalf("final content is %d bytes, want the last update", len(got))
	}
	fi, err := os.Stat(filepath.Join(dir, "big.py"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o750 {
		t.Errorf("update changed the mode to %v, want it kept (0750)", fi.Mode().Perm())
	}
	if _, err := c.Create("new.py", "print()\n"); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "new.py")); fi.Mode().Perm() != 0o644 {
		t.Errorf("created with mode %v, want 0644", fi.Mode().Perm())
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"big.py", "new.py"}) {
		t.Fatalf("folder holds %q, want only the scripts (no temporary files)", names)
	}
}

func TestConcurrentCreates(t *testing.T) {
	c, _ := newCatalog(t, "", 0)
	const n = 32
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = c.Create("same.py", fmt.Sprintf("print(%d)\n", i))
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("creates %d and %d both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, model.ErrExists):
			t.Fatalf("create %d: %v, want 409", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no create succeeded")
	}
	if got, want := readFile(t, c.Dir(), "same.py"), fmt.Sprintf("print(%d)\n", winner); got != want {
		t.Fatalf("file holds %q, want the winner's %q", got, want)
	}
}

func TestLocate(t *testing.T) {
	c, _ := newCatalog(t, "", 0)
	dir := c.Dir()
	s, err := c.Create("loc.py", "print('one')\n")
	if err != nil {
		t.Fatal(err)
	}
	path, version, err := c.Locate("loc.py")
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "loc.py") || !filepath.IsAbs(path) || version != s.Version {
		t.Fatalf("Locate = %q, %q; want %q, %q", path, version, filepath.Join(dir, "loc.py"), s.Version)
	}

	steps := []struct {
		name    string
		edit    func()
		code    int
		content string // expected content when found
	}{
		{"hand edit of the same size, at once", func() { writeFile(t, dir, "loc.py", "print('two')\n") }, 0, "print('two')\n"},
		{"hand edit of another size", func() { writeFile(t, dir, "loc.py", "print('three!')\n") }, 0, "print('three!')\n"},
		{"hand edit with the old mtime", func() {
			fi, _ := os.Stat(filepath.Join(dir, "loc.py"))
			writeFile(t, dir, "loc.py", "print('four!!')\n")
			os.Chtimes(filepath.Join(dir, "loc.py"), fi.ModTime(), fi.ModTime())
		}, 0, "print('four!!')\n"},
		{"hand removal", func() { os.Remove(filepath.Join(dir, "loc.py")) }, 404, ""},
		{"hand addition, before any scan", func() { writeFile(t, dir, "loc.py", "print('five')\n") }, 0, "print('five')\n"},
		{"replaced by a symlink", func() {
			writeFile(t, dir, "target.txt", "print('six')\n")
			os.Remove(filepath.Join(dir, "loc.py"))
			os.Symlink(filepath.Join(dir, "target.txt"), filepath.Join(dir, "loc.py"))
		}, 404, ""},
	}
	for _, s := range steps {
		s.edit()
		_, version, err := c.Locate("loc.py")
		if s.code != 0 {
			if model.Code(err) != s.code {
				t.Fatalf("%s: Locate error %v, want code %d", s.name, err, s.code)
			}
			if slices.Contains(c.List(), "loc.py") {
				t.Fatalf("%s: still listed", s.name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if want := model.Version([]byte(s.content)); version != want {
			t.Fatalf("%s: version %q, want %q", s.name, version, want)
		}
		if !slices.Contains(c.List(), "loc.py") {
			t.Fatalf("%s: not listed", s.name)
		}
	}
	if _, _, err := c.Locate("../loc.py"); model.Code(err) != 400 {
		t.Fatalf("Locate of a bad name: %v, want 400", err)
	}
	if _, _, err := c.Locate("never.py"); model.Code(err) != 404 {
		t.Fatalf("Locate of an unknown script: %v, want 404", err)
	}
}

func TestGetSeesHandEdit(t *testing.T) {
	c, _ := newCatalog(t, "", 0)
	if _, err := c.Create("g.py", "print(1)\n"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, c.Dir(), "g.py", "print(2)\n")
	s, err := c.Get("g.py")
	if err != nil || s.Code != "print(2)\n" || s.Version != model.Version([]byte(s.Code)) {
		t.Fatalf("Get = %+v, %v; want the hand-edited code", s, err)
	}
}

// event is one call of an OnChange hook.
type event struct{ name, version string } // version "" = deleted

type events struct {
	mu  sync.Mutex
	all []event
}

func (e *events) hook(name string, s *model.Script) {
	ev := event{name: name}
	if s != nil {
		if s.Name != name || s.Version != model.Version([]byte(s.Code)) {
			panic(fmt.Sprintf("hook got %+v for %q", s, name))
		}
		ev.version = s.Version
	}
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

func (e *events) has(want event) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(e.all, want)
}

func (e *events) list() []event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.all)
}

func TestRescanPicksUpHandChanges(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "keep.py", "print('keep')\n")
	c, logs := newCatalog(t, dir, 50*time.Millisecond)
	var ev events
	c.OnChange(ev.hook)

	writeFile(t, dir, "added.py", "print('added')\n")
	testutil.WaitFor(t, 30*time.Second, "a hand-added file to be listed", func() bool { return slices.Contains(c.List(), "added.py") })
	testutil.WaitFor(t, 30*time.Second, "the addition to be logged", func() bool { return logs.count("INFO Script added to folder", "name=added.py") == 1 })

	writeFile(t, dir, "added.py", "print('edited')\n")
	edited := event{"added.py", model.Version([]byte("print('edited')\n"))}
	testutil.WaitFor(t, 30*time.Second, "a hand edit to reach the hooks", func() bool { return ev.has(edited) })
	testutil.WaitFor(t, 30*time.Second, "the edit to be logged", func() bool { return logs.count("INFO Script changed in folder", "name=added.py") == 1 })

	os.Remove(filepath.Join(dir, "added.py"))
	testutil.WaitFor(t, 30*time.Second, "a hand-removed file to leave the list", func() bool { return !slices.Contains(c.List(), "added.py") })
	testutil.WaitFor(t, 30*time.Second, "the removal to reach the hooks", func() bool { return ev.has(event{"added.py", ""}) })
	testutil.WaitFor(t, 30*time.Second, "the removal to be logged", func() bool { return logs.count("INFO Script removed from folder", "name=added.py") == 1 })

	writeFile(t, dir, "not a script.txt", "x")
	testutil.WaitFor(t, 30*time.Second, "the bad name to be warned about", func() bool { return logs.count("WARN", "file=not a script.txt") == 1 })
	if slices.Contains(c.List(), "not a script.txt") {
		t.Fatal("a file with a bad name was listed")
	}
	if got := c.List(); !slices.Equal(got, []string{"keep.py"}) {
		t.Fatalf("List() = %q", got)
	}
}

func TestOnChange(t *testing.T) {
	c, _ := newCatalog(t, "", 0)
	if _, err := c.Create("first.py", "print(1)\n"); err != nil {
		t.Fatal(err)
	}
	var ev events
	c.OnChange(ev.hook)
	v := func(code string) string { return model.Version([]byte(code)) }
	want := []event{{"first.py", v("print(1)\n")}} // replayed at registration
	if got := ev.list(); !slices.Equal(got, want) {
		t.Fatalf("after OnChange: %v, want %v", got, want)
	}
	c.Create("second.py", "print(2)\n")
	c.Update("second.py", "print(22)\n")
	c.Update("second.py", "print(22)\n") // same content: no change
	c.Create("second.py", "x")           // refused: no change
	c.Delete("first.py")
	writeFile(t, c.Dir(), "hand.py", "print(3)\n")
	c.Rescan()
	want = append(want,
		event{"second.py", v("print(2)\n")},
		event{"second.py", v("print(22)\n")},
		event{"first.py", ""},
		event{"hand.py", v("print(3)\n")},
	)
	if got := ev.list(); !slices.Equal(got, want) {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}
}
