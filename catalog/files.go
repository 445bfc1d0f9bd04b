package catalog

import (
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/scripthost/scripthost/model"
)

// tempPrefix starts the names of our temporary files. The leading dot
// fails the name rule, so a scan can never take one for a script.
const tempPrefix = ".scripthost-tmp-"

// staleTemp is the age after which a temporary file is taken for the
// remains of a crash and removed by the first scan.
const staleTemp = time.Minute

// racyWindow covers filesystem timestamp granularity (a kernel tick, or
// seconds on some filesystems) and small clock differences: a file whose
// mtime is this close to the moment it was read may have been written again
// within the same tick, unseen by a stat, so its content is checked again.
// This is git's "racily clean" rule.
const racyWindow = 2 * time.Second

// sameFile reports whether two stats show the same file with the same size
// and modification time. An atomic replace (a new inode) is a change even
// when size and mtime match.
func sameFile(a, b fs.FileInfo) bool {
	return b.Mode().IsRegular() && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// racy reports whether fi's mtime is too close to when e was hashed for
// the stat to prove the content unchanged.
func racy(e entry, fi fs.FileInfo) bool {
	return !fi.ModTime().Before(e.hashedAt.Add(-racyWindow))
}

// errSwapped means the file at a path changed between a stat and an open.
var errSwapped = errors.New("file replaced while being opened")

// openIfSame opens path for reading and checks that it is the regular file
// that lstat reported (a symlink swapped in meanwhile is refused).
func openIfSame(path string, lstat fs.FileInfo) (*os.File, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() || !os.SameFile(lstat, fi) {
		f.Close()
		return nil, nil, errSwapped
	}
	return f, fi, nil
}

// readIfSame reads the file that lstat describes. The returned metadata is
// taken before the read, so a write during the read shows up as a change
// next time.
func readIfSame(path string, lstat fs.FileInfo) ([]byte, fs.FileInfo, error) {
	f, fi, err := openIfSame(path, lstat)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	code, err := io.ReadAll(f)
	return code, fi, err
}

// hashIfSame returns the version of the file that lstat describes and when
// its content was read; ok is false on any failure.
func hashIfSame(path string, lstat fs.FileInfo) (version string, at time.Time, ok bool) {
	at = time.Now()
	f, _, err := openIfSame(path, lstat)
	if err != nil {
		return "", at, false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", at, false
	}
	return model.VersionOfSum(h.Sum(nil)), at, true
}

// writeAtomic writes data to dir/name through a temporary file in dir:
// write, fsync, rename. Readers see the old content or the new, never
// part of it, and a crash leaves at most a temporary file. It returns the
// metadata of the new file; the caller syncs the folder.
func writeAtomic(dir, name string, data []byte, perm fs.FileMode) (fs.FileInfo, error) {
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	fi, err := func() (fs.FileInfo, error) {
		defer f.Close()
		if _, err := f.Write(data); err != nil {
			return nil, err
		}
		if err := f.Chmod(perm); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		return fi, f.Close()
	}()
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return fi, nil
}

// syncDir fsyncs a folder so that a rename or removal in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteFile writes a script into dir atomically (temp file, fsync,
// rename), as the catalog does; executor nodes use it to mirror scripts
// into a folder of their own.
func WriteFile(dir, name string, data []byte) error {
	if err := model.ValidateName(name); err != nil {
		return err
	}
	_, err := writeAtomic(dir, name, data, 0o644)
	return err
}
