package catalog

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/scripthost/scripthost/model"
)

// Run rescans the folder every ScanInterval until ctx ends, so that files
// added, edited or removed by hand are picked up (and logged).
func (c *Catalog) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Rescan()
		}
	}
}

// Rescan brings the index in line with the folder now.
func (c *Catalog) Rescan() {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if err := c.scan(false); err != nil {
		// The index is kept as it is: a folder that cannot be read for a
		// moment does not mean every script is gone.
		c.log.Warn("catalog: cannot scan scripts folder", "dir", c.dir, "error", err)
	}
}

// scan reads the folder and refreshes every script in it or in the index.
// Unchanged files cost one stat each. opMu must be held.
func (c *Catalog) scan(first bool) error {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return err
	}
	present := make(map[string]bool, len(entries))
	isScript := make(map[string]bool, len(entries))
	var scripts, files []string
	for _, de := range entries {
		name := de.Name()
		present[name] = true
		switch {
		case strings.HasPrefix(name, tempPrefix):
			if first {
				c.removeStaleTemp(name)
			}
		case de.IsDir():
			// Packages and __pycache__ beside the scripts: not scripts,
			// not worth a warning.
		case model.ValidateName(name) != nil && model.ValidateFileName(name) == nil:
			// A data file beside the scripts (data.csv): followed, and
			// copied to executor nodes (datafiles.go).
			files = append(files, name)
		case model.ValidateName(name) != nil:
			c.warnOnce(name, "Skipping file: not a valid script name (letters, digits, '_', '-' and dots, ending in .py, at most 128 bytes), nor a data file name (the same, not ending in .py): it stays in the folder but is not copied to executor nodes")
		case !de.Type().IsRegular():
			c.warnOnce(name, "Skipping script: not a regular file (symbolic links are not followed)")
		default:
			isScript[name] = true
			scripts = append(scripts, name)
		}
	}
	// Indexed scripts that are gone or no longer regular files are looked
	// at too: refresh drops them.
	for _, name := range c.List() {
		if !isScript[name] {
			scripts = append(scripts, name)
		}
	}
	for _, name := range scripts {
		if _, _, err := c.refresh(name, false); err != nil {
			c.log.Warn("catalog: cannot read script", "name", name, "error", err)
		}
	}
	c.refreshFiles(files)
	// A file that went away and comes back is warned about again.
	for name := range c.warned {
		if !present[name] {
			delete(c.warned, name)
		}
	}
	return nil
}

// warnOnce logs a warning about a file of the folder, once per file.
func (c *Catalog) warnOnce(name, msg string) {
	if c.warned[name] {
		return
	}
	c.warned[name] = true
	c.log.Warn(msg, "file", name, "dir", c.dir)
}

// removeStaleTemp removes a temporary file left by a crash. Recent ones
// may belong to another process writing to the same folder.
func (c *Catalog) removeStaleTemp(name string) {
	path := c.path(name)
	fi, err := os.Lstat(path)
	if err != nil || time.Since(fi.ModTime()) < staleTemp {
		return
	}
	if err := os.Remove(path); err == nil {
		c.log.Info("Removed temporary file left by an interrupted write", "file", name)
	}
}
