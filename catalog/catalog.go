package catalog

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/scripthost/scripthost/model"
)

// DefaultScanInterval is the rescan period when Config.ScanInterval is 0.
const DefaultScanInterval = 5 * time.Second

// Config configures a Catalog.
type Config struct {
	// Dir is the scripts folder. It is created if missing.
	Dir string
	// ScanInterval is the period of Run's rescans; 0 or less means
	// DefaultScanInterval.
	ScanInterval time.Duration
	// Log receives the catalog's logs; nil discards them.
	Log *slog.Logger
	// MaxBody bounds a request body on the bus (413 beyond); 0: 1 MiB.
	MaxBody int
}

func (cfg *Config) setDefaults() {
	if cfg.ScanInterval <= 0 {
		cfg.ScanInterval = DefaultScanInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
}

func (cfg *Config) valid() error {
	if cfg.Dir == "" {
		return errors.New("catalog: the scripts folder (Dir) is required")
	}
	return nil
}

// Catalog is the index of the scripts folder. The folder is the source of
// truth: the index only remembers each script's version and the file
// metadata it was computed from, so that a run can tell with one stat
// whether the version is still right.
//
// Only regular files are scripts. Symbolic links are skipped with a
// warning: following them would let GET expose files from outside the
// folder, and an update would silently replace the link with a file.
// Subfolders (packages, __pycache__) are skipped silently.
type Catalog struct {
	dir      string
	interval time.Duration
	log      *slog.Logger
	maxBody  int

	// opMu serialises everything that changes the folder or the index:
	// API writes, scans and the slow path of lookups. Changes, their logs
	// and their hooks therefore happen in one order, the folder's.
	opMu   sync.Mutex
	hooks  []func(string, *model.Script) // guarded by opMu
	warned map[string]bool               // names warned about; guarded by opMu
	// files are the data files beside the scripts, and fileHooks learn
	// of their changes (datafiles.go); guarded by opMu.
	files     map[string]dataFile
	fileHooks []func(string, []byte)

	// mu guards index for Locate's fast path, which takes no opMu.
	mu    sync.RWMutex
	index map[string]entry
}

// entry is what the index knows of one script.
type entry struct {
	version string
	// info is the file's metadata when it was hashed; a file whose
	// metadata still matches (and is not racy) has the same content.
	info fs.FileInfo
	// hashedAt is when the content was read, taken before the read.
	hashedAt time.Time
}

// New opens the scripts folder (creating it if missing), scans it and logs
// how many scripts it found.
func New(cfg Config) (*Catalog, error) {
	cfg.setDefaults()
	if err := cfg.valid(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("catalog: scripts folder %q: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("catalog: create scripts folder: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("catalog: scripts folder: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("catalog: scripts folder %s is not a directory", dir)
	}
	c := &Catalog{
		maxBody:  cfg.MaxBody,
		dir:      dir,
		interval: cfg.ScanInterval,
		log:      cfg.Log,
		warned:   make(map[string]bool),
		index:    make(map[string]entry),
		files:    make(map[string]dataFile),
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if err := c.scan(true); err != nil {
		return nil, fmt.Errorf("catalog: scan scripts folder: %w", err)
	}
	c.log.Info(fmt.Sprintf("Scanned scripts: found %d scripts", len(c.index)), "dir", dir)
	return c, nil
}

// Dir is the absolute path of the scripts folder.
func (c *Catalog) Dir() string { return c.dir }

// OnChange registers fn to learn of every script: fn is called at once for
// each script in the catalog, then after every change, whether made through
// the catalog or found in the folder. s is nil when the script is gone.
//
// fn runs synchronously, in the order of the changes, before a write
// returns: a write is answered only once every hook has seen it. fn must be
// quick and must not call the Catalog.
func (c *Catalog) OnChange(fn func(name string, s *model.Script)) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.each(func(s *model.Script) error { fn(s.Name, s); return nil })
	c.hooks = append(c.hooks, fn)
}

// each calls fn with every script, read afresh from the folder, and stops
// at fn's first error. opMu must be held.
func (c *Catalog) each(fn func(*model.Script) error) error {
	for _, name := range c.List() {
		// refresh tells the hooks of anything that changed meanwhile.
		s, found, err := c.refresh(name, true)
		if err != nil {
			c.log.Warn("catalog: cannot read script", "name", name, "error", err)
			continue
		}
		if !found {
			continue
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

// List returns the names of the scripts, sorted; never nil.
func (c *Catalog) List() []string {
	c.mu.RLock()
	names := make([]string, 0, len(c.index))
	for name := range c.index {
		names = append(names, name)
	}
	c.mu.RUnlock()
	slices.Sort(names)
	return names
}

// Get returns a script's code and version, read from the folder.
func (c *Catalog) Get(name string) (model.Script, error) {
	if err := model.ValidateName(name); err != nil {
		return model.Script{}, err
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	s, found, err := c.refresh(name, true)
	if err != nil {
		return model.Script{}, err
	}
	if !found {
		return model.Script{}, notFound(name)
	}
	return *s, nil
}

// Create writes a new script. It fails with model.ErrExists when anything
// already has that name in the folder.
func (c *Catalog) Create(name, code string) (model.Script, error) {
	if err := model.ValidateName(name); err != nil {
		return model.Script{}, err
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	switch _, err := os.Lstat(c.path(name)); {
	case err == nil:
		return model.Script{}, model.Errorf(model.ErrExists, "script %q already exists", name)
	case !errors.Is(err, fs.ErrNotExist):
		return model.Script{}, fmt.Errorf("create script %q: %w", name, err)
	}
	return c.write(name, code, 0o644, "Script created")
}

// Update replaces the code of an existing script, keeping its file mode.
func (c *Catalog) Update(name, code string) (model.Script, error) {
	if err := model.ValidateName(name); err != nil {
		return model.Script{}, err
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	fi, err := c.lstatScript(name)
	if err != nil {
		return model.Script{}, err
	}
	return c.write(name, code, fi.Mode().Perm(), "Script updated")
}

// Delete removes a script.
func (c *Catalog) Delete(name string) error {
	if err := model.ValidateName(name); err != nil {
		return err
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if _, err := c.lstatScript(name); err != nil {
		return err
	}
	if err := os.Remove(c.path(name)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			c.drop(name, "Script removed from folder")
			return notFound(name)
		}
		return fmt.Errorf("delete script %q: %w", name, err)
	}
	c.syncDir()
	c.drop(name, "Script deleted")
	return nil
}

// Locate returns the absolute path and the current version of a script. It
// runs before every run, so its usual cost is one map lookup and one stat;
// a file edited by hand since it was indexed is re-read at once.
func (c *Catalog) Locate(name string) (path, version string, err error) {
	if err := model.ValidateName(name); err != nil {
		return "", "", err
	}
	path = c.path(name)
	c.mu.RLock()
	e, indexed := c.index[name]
	c.mu.RUnlock()
	if indexed {
		fi, err := os.Lstat(path)
		if err == nil && sameFile(e.info, fi) {
			if !racy(e, fi) {
				return path, e.version, nil
			}
			// Same metadata, but too recent to prove the content is the
			// same: hash it again, still without opMu.
			if v, at, ok := hashIfSame(path, fi); ok && v == e.version {
				c.touch(name, e, at)
				return path, v, nil
			}
		}
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	s, found, err := c.refresh(name, false)
	if err != nil {
		return "", "", err
	}
	if !found {
		return "", "", notFound(name)
	}
	return path, s.Version, nil
}

// path is the file of a (valid) script name.
func (c *Catalog) path(name string) string { return filepath.Join(c.dir, name) }

func notFound(name string) error {
	return model.Errorf(model.ErrNotFound, "script %q not found", name)
}

// lstatScript returns the metadata of a script's file, or a not-found
// error when there is no regular file by that name. opMu must be held.
func (c *Catalog) lstatScript(name string) (fs.FileInfo, error) {
	fi, err := os.Lstat(c.path(name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("stat script %q: %w", name, err)
	}
	if err != nil || !fi.Mode().IsRegular() {
		c.drop(name, "Script removed from folder")
		return nil, notFound(name)
	}
	return fi, nil
}

// write stores code under name atomically and indexes it. opMu must be
// held.
func (c *Catalog) write(name, code string, perm fs.FileMode, logMsg string) (model.Script, error) {
	at := time.Now()
	fi, err := writeAtomic(c.dir, name, []byte(code), perm)
	if err != nil {
		return model.Script{}, fmt.Errorf("write script %q: %w", name, err)
	}
	c.syncDir()
	s := model.Script{Name: name, Code: code, Version: model.Version([]byte(code))}
	c.put(name, entry{version: s.Version, info: fi, hashedAt: at}, &s, logMsg)
	return s, nil
}

// syncDir makes a rename or removal in the folder durable. A failure is
// logged, not returned: the change itself has been made.
func (c *Catalog) syncDir() {
	if err := syncDir(c.dir); err != nil {
		c.log.Warn("catalog: cannot sync scripts folder", "dir", c.dir, "error", err)
	}
}

// refresh brings the index entry of name in line with the folder and
// returns the script, with its code when withCode is set. found is false
// when there is no regular file by that name. opMu must be held.
func (c *Catalog) refresh(name string, withCode bool) (s *model.Script, found bool, err error) {
	path := c.path(name)
	// A file swapped between our stat and our open is read again.
	for range 3 {
		fi, err := os.Lstat(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, false, fmt.Errorf("stat script %q: %w", name, err)
		}
		if err != nil || !fi.Mode().IsRegular() {
			c.drop(name, "Script removed from folder")
			return nil, false, nil
		}
		c.mu.RLock()
		e, indexed := c.index[name]
		c.mu.RUnlock()
		if indexed && !withCode && sameFile(e.info, fi) && !racy(e, fi) {
			return &model.Script{Name: name, Version: e.version}, true, nil
		}
		at := time.Now()
		code, info, err := readIfSame(path, fi)
		if errors.Is(err, errSwapped) {
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			c.drop(name, "Script removed from folder")
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("read script %q: %w", name, err)
		}
		s := &model.Script{Name: name, Code: string(code), Version: model.Version(code)}
		msg := "Script added to folder"
		if indexed {
			msg = "Script changed in folder"
		}
		c.put(name, entry{version: s.Version, info: info, hashedAt: at}, s, msg)
		return s, true, nil
	}
	return nil, false, fmt.Errorf("read script %q: file keeps changing", name)
}

// put indexes a script and, when it is new or its version changed, logs
// logMsg and calls the hooks. opMu must be held.
func (c *Catalog) put(name string, e entry, s *model.Script, logMsg string) {
	c.mu.Lock()
	old, had := c.index[name]
	c.index[name] = e
	c.mu.Unlock()
	if had && old.version == e.version {
		return
	}
	if had {
		c.log.Info(logMsg, "name", name, "version", e.version, "old_version", old.version)
	} else {
		c.log.Info(logMsg, "name", name, "version", e.version)
	}
	for _, fn := range c.hooks {
		fn(name, s)
	}
}

// drop removes a script from the index and, if it was there, logs logMsg
// and calls the hooks. opMu must be held.
func (c *Catalog) drop(name, logMsg string) {
	c.mu.Lock()
	old, had := c.index[name]
	delete(c.index, name)
	c.mu.Unlock()
	if !had {
		return
	}
	c.log.Info(logMsg, "name", name, "version", old.version)
	for _, fn := range c.hooks {
		fn(name, nil)
	}
}

// touch records that an entry's content was verified at a later time, so
// that it stops being racy. It changes nothing if the entry was replaced
// meanwhile.
func (c *Catalog) touch(name string, e entry, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.index[name]; ok && cur.version == e.version && cur.info == e.info && cur.hashedAt.Before(at) {
		cur.hashedAt = at
		c.index[name] = cur
	}
}
