// Package cacheentry seals what pidlab writes into its cache and checks the
// seal before an entry is used again. A cached file that was truncated or
// overwritten, or a kernel tree that lost or cut a file, is found before it
// boots or builds and gets blamed on the kernel or the module; the caller
// then makes it again and says so in one line.
//
// A file's seal is a sidecar, path+".sum", with its size and SHA-256. A
// tree's seal is a list of its regular files and their sizes (a kernel tree
// is too large to hash on every run; a lost or cut file is what damage
// looks like there), with a SHA-256 for the files named as vital.
package cacheentry

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SumSuffix ends the name of a file's seal.
const SumSuffix = ".sum"

// TreeSeal is the name of a tree's seal, in the tree's top folder.
const TreeSeal = ".pidlab-files"

// ErrNotSealed is returned for an entry that has no seal: written by an
// older pidlab, or by a run that ended before it finished.
var ErrNotSealed = errors.New("no seal")

// DamagedError says what of an entry no longer matches its seal.
type DamagedError struct {
	Path string // the entry
	Why  string // the first thing that does not match
}

func (e *DamagedError) Error() string { return fmt.Sprintf("%s is damaged: %s", e.Path, e.Why) }

// IsDamaged reports whether err is a *DamagedError.
func IsDamaged(err error) bool {
	var d *DamagedError
	return errors.As(err, &d)
}

// fileSum is a file's seal: "<size> sha256:<hex>".
type fileSum struct {
	Size int64
	Hash string
}

func (s fileSum) String() string { return fmt.Sprintf("%d sha256:%s\n", s.Size, s.Hash) }

func parseFileSum(b []byte) (fileSum, error) {
	f := strings.Fields(string(b))
	if len(f) != 2 || !strings.HasPrefix(f[1], "sha256:") {
		return fileSum{}, fmt.Errorf("unreadable seal %q", b)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return fileSum{}, fmt.Errorf("unreadable seal %q", b)
	}
	return fileSum{Size: n, Hash: strings.TrimPrefix(f[1], "sha256:")}, nil
}

// Hash is the SHA-256 of the file at path, in hex.
func Hash(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// SealFile records the size and hash of the file at path beside it. Call
// it before the file is renamed into place, and rename the seal with it
// (Rename), or seal the final path once it is there.
func SealFile(path string) error {
	sum, n, err := Hash(path)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path+SumSuffix, []byte(fileSum{Size: n, Hash: sum}.String()), 0o644)
}

// CheckFile checks the file at path against its seal: nil when it matches,
// fs.ErrNotExist when there is no file, ErrNotSealed when there is no
// seal, a *DamagedError otherwise.
func CheckFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(path + SumSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotSealed
	} else if err != nil {
		return err
	}
	want, err := parseFileSum(b)
	if err != nil {
		return &DamagedError{Path: path, Why: err.Error()}
	}
	if fi.Size() != want.Size {
		return &DamagedError{Path: path, Why: fmt.Sprintf("%d bytes, %d when it was written", fi.Size(), want.Size)}
	}
	got, _, err := Hash(path)
	if err != nil {
		return err
	}
	if got != want.Hash {
		return &DamagedError{Path: path, Why: "its content changed since it was written (SHA-256 differs)"}
	}
	return nil
}

// Reuse decides whether a cached file may be used again. An intact one is
// marked as used and reported true. A damaged one is removed, said in one
// line through say ("cache: … is damaged (…); <again>"), and reported false;
// so is one without a seal (an older pidlab's, or a half-written one),
// silently, like any file that is not there.
func Reuse(path, again string, say func(format string, args ...any)) bool {
	err := CheckFile(path)
	if err == nil {
		Touch(path)
		return true
	}
	switch {
	case IsDamaged(err):
		say("cache: %v; %s", err, again)
		Remove(path)
	case errors.Is(err, ErrNotSealed):
		Remove(path)
	}
	// Anything else, a file not there above all, is left alone: a
	// parallel run may be renaming its copy into place right now.
	return false
}

// Rename moves a sealed file and its seal to newPath: the seal first, so
// that a reader never finds the file without it.
func Rename(oldPath, newPath string) error {
	if err := os.Rename(oldPath+SumSuffix, newPath+SumSuffix); err != nil {
		return err
	}
	return os.Rename(oldPath, newPath)
}

// Remove deletes a file and its seal.
func Remove(path string) {
	os.Remove(path)
	os.Remove(path + SumSuffix)
}

// Touch marks an entry as used now, for pruning by last use.
func Touch(path string) {
	now := time.Now()
	os.Chtimes(path, now, now)
}

// SealTree records every regular file under dir with its size, but those
// skip says to leave out (nil: none), and the hash of the files in vital
// (paths relative to dir). Call it before the tree is renamed into place.
func SealTree(dir string, skip func(rel string) bool, vital ...string) error {
	isVital := map[string]bool{}
	for _, v := range vital {
		isVital[filepath.ToSlash(v)] = true
	}
	var lines []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if rel == TreeSeal || skip != nil && skip(rel) && !isVital[rel] {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hash := "-"
		if isVital[rel] {
			if hash, _, err = Hash(path); err != nil {
				return err
			}
			delete(isVital, rel)
		}
		lines = append(lines, fmt.Sprintf("%d %s %s", fi.Size(), hash, rel))
		return nil
	})
	if err != nil {
		return err
	}
	if len(isVital) > 0 {
		return fmt.Errorf("sealing %s: %d vital file(s) missing, %s among them", dir, len(isVital), anyKey(isVital))
	}
	sort.Strings(lines)
	return WriteFileAtomic(filepath.Join(dir, TreeSeal), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// CheckTree checks the tree at dir against its seal: every file listed is
// there with its size, and each vital one with its hash. Files added since
// (a build's own outputs) do not matter.
func CheckTree(dir string) error {
	f, err := os.Open(filepath.Join(dir, TreeSeal))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(dir); serr != nil {
			return serr
		}
		return ErrNotSealed
	} else if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	files := 0
	for sc.Scan() {
		size, hash, rel, ok := parseTreeLine(sc.Text())
		if !ok {
			return &DamagedError{Path: dir, Why: fmt.Sprintf("unreadable seal line %q", sc.Text())}
		}
		files++
		if why := checkTreeFile(filepath.Join(dir, filepath.FromSlash(rel)), size, hash); why != "" {
			return &DamagedError{Path: dir, Why: rel + ": " + why}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if files == 0 {
		return &DamagedError{Path: dir, Why: "its seal lists no files"}
	}
	return nil
}

func parseTreeLine(line string) (size int64, hash, rel string, ok bool) {
	f := strings.SplitN(line, " ", 3)
	if len(f) != 3 {
		return 0, "", "", false
	}
	size, err := strconv.ParseInt(f[0], 10, 64)
	return size, f[1], f[2], err == nil
}

// checkTreeFile says what is wrong with one file of a tree, "" if nothing.
func checkTreeFile(path string, size int64, hash string) string {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "missing"
	} else if err != nil {
		return err.Error()
	}
	if fi.Size() != size {
		return fmt.Sprintf("%d bytes, %d when it was written", fi.Size(), size)
	}
	if hash == "-" {
		return ""
	}
	got, _, err := Hash(path)
	if err != nil {
		return err.Error()
	}
	if got != hash {
		return "its content changed since it was written (SHA-256 differs)"
	}
	return ""
}

func anyKey(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}

// WriteFileAtomic writes b to path with perm through a temporary file, so
// that a reader never sees half a file (a seal, a file of a shared tree).
func WriteFileAtomic(path string, b []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
