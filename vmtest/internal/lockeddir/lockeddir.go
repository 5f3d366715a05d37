// Package lockeddir makes private temporary folders that tell whether
// their maker still runs. The maker holds a lock (flock) on its folder
// until it removes it; the kernel drops the lock when the process ends,
// however it ends. So a later run can remove the folders of a run killed
// with SIGKILL, which could not remove its own, and never one in use.
package lockeddir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Dir is a folder this process made and holds.
type Dir struct {
	Path string
	lock *os.File // the folder itself, opened and flocked
}

// Make creates a fresh folder prefix* in parent ("" for the system's temp
// folder) and locks it.
func Make(parent, prefix string) (*Dir, error) {
	path, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err == nil {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		os.RemoveAll(path)
		return nil, err
	}
	return &Dir{Path: path, lock: f}, nil
}

// Remove removes the folder, then drops its lock. It may be called again.
func (d *Dir) Remove() error {
	if d == nil || d.lock == nil {
		return nil
	}
	err := os.RemoveAll(d.Path)
	d.lock.Close()
	d.lock = nil
	return err
}

// RemoveStale removes the folders prefix* in parent ("" for the system's
// temp folder) that no process holds, and names them. A folder changed
// less than minAge ago is left alone: its maker may be between making and
// locking it.
func RemoveStale(parent, prefix string, minAge time.Duration) ([]string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		path := filepath.Join(parent, e.Name())
		ok, err := removeIfStale(path, minAge)
		if ok {
			removed = append(removed, path)
		}
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

func removeIfStale(path string, minAge time.Duration) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil || time.Since(fi.ModTime()) < minAge {
		return false, nil // gone meanwhile, or too young to judge
	}
	f, err := os.Open(path)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return false, nil // its maker runs
	}
	return true, os.RemoveAll(path)
}
