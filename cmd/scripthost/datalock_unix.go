//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFileName is the file in the data folder that a serve holds locked
// for as long as it runs.
const lockFileName = "scripthost.lock"

// dataInUseError is a start refused because another process holds the
// data folder's lock.
type dataInUseError struct {
	Dir string
	PID int // 0: not known (the holder had not written it yet)
}

func (e *dataInUseError) Error() string {
	holder := "another scripthost serve"
	if e.PID > 0 {
		holder += " (pid " + strconv.Itoa(e.PID) + ")"
	}
	return "the data folder " + e.Dir + " is in use by " + holder +
		": two servers cannot share one --data-dir (its JetStream store and credentials); give this one a folder of its own"
}

// lockDataDir takes an exclusive lock on dir's lock file, without
// waiting, and writes this process's pid into it. The lock is held by
// the open file: release closes it, and the kernel releases it when the
// process ends in any way, so a server that was killed leaves no lock
// behind (only its pid, which the next holder overwrites). The file is
// opened close-on-exec: no interpreter the server starts holds it.
func lockDataDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data folder lock: %w", err)
	}
	if err := flock(f); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			shown := dir
			if abs, err := filepath.Abs(dir); err == nil {
				shown = abs
			}
			return nil, &dataInUseError{Dir: shown, PID: lockHolder(path)}
		}
		return nil, fmt.Errorf("data folder lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

// flock locks f exclusively, failing with EWOULDBLOCK if it is held.
func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// lockHolder is the pid written in the lock file at path, or 0.
func lockHolder(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
