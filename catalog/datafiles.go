package catalog

import (
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/scripthost/scripthost/model"
)

// Data files are the files beside the scripts that scripts read
// (data.csv, config.json, a model): not scripts, but part of what a script
// needs on whichever node runs it. The catalog follows them as it follows
// scripts (scan, hand edits, removals) and tells its file hooks, so that
// PublishKV can copy them to executor nodes with folders of their own.

// MaxDataFile bounds a data file that is copied to executor nodes; a
// larger one stays on the serve node's folder only (with a warning).
const MaxDataFile = 8 << 20

// dataFile is what the catalog knows of one data file.
type dataFile struct {
	version  string
	info     fs.FileInfo
	hashedAt time.Time
}

// OnFileChange registers fn to learn of every data file: fn is called at
// once with each data file's content, then after every change found in
// the folder; data is nil when the file is gone. fn runs synchronously
// and must be quick and must not call the Catalog.
func (c *Catalog) OnFileChange(fn func(name string, data []byte)) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.onFileChange(fn)
}

// onFileChange is OnFileChange with opMu held.
func (c *Catalog) onFileChange(fn func(name string, data []byte)) {
	for name := range c.files {
		if data, err := os.ReadFile(c.path(name)); err == nil {
			fn(name, data)
		}
	}
	c.fileHooks = append(c.fileHooks, fn)
}

// Files lists the data files the catalog follows, in no order.
func (c *Catalog) Files() []string {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	names := make([]string, 0, len(c.files))
	for name := range c.files {
		names = append(names, name)
	}
	return names
}

// refreshFiles brings the data files in line with the folder: seen are
// the data file names the scan found. opMu must be held.
func (c *Catalog) refreshFiles(seen []string) {
	names := map[string]bool{}
	for _, n := range seen {
		names[n] = true
	}
	for n := range c.files {
		names[n] = true
	}
	for name := range names {
		c.refreshFile(name)
	}
}

func (c *Catalog) refreshFile(name string) {
	old, known := c.files[name]
	gone := func() {
		if known {
			delete(c.files, name)
			c.log.Info("Data file removed from folder", "name", name)
			for _, fn := range c.fileHooks {
				fn(name, nil)
			}
		}
	}
	path := c.path(name)
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		gone()
		return
	}
	if known && sameFile(old.info, fi) && fi.ModTime().Before(old.hashedAt.Add(-racyWindow)) {
		return
	}
	if fi.Size() > MaxDataFile {
		c.warnOnce(name, fmt.Sprintf("Data file over %d MiB: kept on this node's folder only, not copied to executor nodes", MaxDataFile>>20))
		gone()
		return
	}
	at := time.Now()
	data, info, err := readIfSame(path, fi)
	if err != nil {
		return // changed meanwhile: the next scan looks again
	}
	version := model.Version(data)
	c.files[name] = dataFile{version: version, info: info, hashedAt: at}
	if known && old.version == version {
		return
	}
	msg := "Data file added to folder"
	if known {
		msg = "Data file changed in folder"
	}
	c.log.Info(msg, "name", name, "version", version, "size", len(data))
	for _, fn := range c.fileHooks {
		fn(name, data)
	}
}

// WriteDataFile writes a data file into dir atomically, as WriteFile does
// for scripts; executor nodes use it to mirror data files.
func WriteDataFile(dir, name string, data []byte) error {
	if err := model.ValidateFileName(name); err != nil {
		return err
	}
	_, err := writeAtomic(dir, name, data, 0o644)
	return err
}
