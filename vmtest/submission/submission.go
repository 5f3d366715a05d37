// Package submission reads a class's submissions as course platforms
// export them: a folder holding one entry per student, each a folder, a
// .zip or a .tar.gz. An archive is unpacked with nothing trusted: no path
// out of its folder, no links, bounded file count and sizes (counted as
// written, not as its headers claim; folders counted too), no file
// written twice. Whatever
// breaks a rule is a refusal of that submission that names the entry and
// the rule: a clear row in the class's report, never a crash of the grader.
package submission

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Kind says how a submission arrived.
type Kind string

// The kinds of submission.
const (
	Folder Kind = "folder"
	Zip    Kind = "zip"
	TarGz  Kind = "tar.gz"
)

// Entry is one submission of a class folder.
type Entry struct {
	Name string // the submission's name: the entry's, without the archive suffix
	Path string // the folder or archive, absolute
	Kind Kind
}

// Limits bound what an archive may unpack to.
type Limits struct {
	Members   int   // files and folders
	FileBytes int64 // one file
	Bytes     int64 // all files
}

// DefaultLimits are far above a kernel module's sources and far below
// what would hurt the grader's disk.
var DefaultLimits = Limits{Members: 1000, FileBytes: 16 << 20, Bytes: 64 << 20}

// Refusal is a submission that breaks a rule; its message names the entry
// and the rule.
type Refusal struct {
	Submission string
	Why        string
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("submission %s refused: %s", r.Submission, r.Why)
}

// List reads the class folder dir: each folder, .zip, .tar.gz or .tgz is a
// submission, in name order; hidden entries (a leading dot) are skipped.
// Anything else, and two entries of one name (alice/ and alice.zip), are
// refusals, returned beside the entries.
func List(dir string) ([]Entry, []*Refusal, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, err
	}
	byName := map[string][]Entry{}
	var refused []*Refusal
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".") {
			continue
		}
		e, ok := entryOf(abs, de)
		if !ok {
			refused = append(refused, &Refusal{Submission: de.Name(), Why: "not a folder, .zip, .tar.gz or .tgz"})
			continue
		}
		byName[e.Name] = append(byName[e.Name], e)
	}
	var entries []Entry
	for name, es := range byName {
		if len(es) > 1 {
			var paths []string
			for _, e := range es {
				paths = append(paths, filepath.Base(e.Path))
			}
			sort.Strings(paths)
			refused = append(refused, &Refusal{Submission: name, Why: "two entries of one name: " + strings.Join(paths, " and ")})
			continue
		}
		entries = append(entries, es[0])
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	sort.Slice(refused, func(i, j int) bool { return refused[i].Submission < refused[j].Submission })
	return entries, refused, nil
}

// entryOf is the submission a folder entry is, if it is one. A symbolic
// link counts as what it points at.
func entryOf(dir string, de fs.DirEntry) (Entry, bool) {
	p := filepath.Join(dir, de.Name())
	fi, err := os.Stat(p)
	if err != nil {
		return Entry{}, false
	}
	if fi.IsDir() {
		return Entry{Name: de.Name(), Path: p, Kind: Folder}, true
	}
	for suffix, kind := range map[string]Kind{".zip": Zip, ".tar.gz": TarGz, ".tgz": TarGz} {
		if name, ok := strings.CutSuffix(de.Name(), suffix); ok && name != "" && fi.Mode().IsRegular() {
			return Entry{Name: name, Path: p, Kind: kind}, true
		}
	}
	return Entry{}, false
}

// Unpack unpacks an archive entry into dest, a folder that must not exist
// yet, within limits. A refusal leaves dest removed.
func Unpack(e Entry, dest string, limits Limits) (err error) {
	if e.Kind == Folder {
		return fmt.Errorf("%s is a folder: nothing to unpack", e.Path)
	}
	if err := os.Mkdir(dest, 0o755); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dest)
		}
	}()
	u := &unpacker{entry: e.Name, dest: dest, limits: limits}
	if e.Kind == Zip {
		return u.zip(e.Path)
	}
	return u.tarGz(e.Path)
}

// unpacker writes an archive's members under dest, counting as it goes.
type unpacker struct {
	entry   string
	dest    string
	limits  Limits
	members int
	bytes   int64
}

func (u *unpacker) refuse(format string, args ...any) error {
	return &Refusal{Submission: u.entry, Why: fmt.Sprintf(format, args...)}
}

func (u *unpacker) zip(archive string) error {
	r, err := zip.OpenReader(archive)
	if err != nil {
		return u.refuse("not a readable zip archive (%v)", err)
	}
	defer r.Close()
	for _, f := range r.File {
		mode := f.Mode()
		switch {
		case mode.IsDir():
			if err := u.dir(f.Name); err != nil {
				return err
			}
		case mode.IsRegular():
			rc, err := f.Open()
			if err != nil {
				return u.refuse("%s: %v", f.Name, err)
			}
			err = u.file(f.Name, mode, rc)
			rc.Close()
			if err != nil {
				return err
			}
		default:
			return u.refuse("%s: a %s, not a file or folder (links and devices are not unpacked)", f.Name, kindOf(mode))
		}
	}
	return nil
}

func (u *unpacker) tarGz(archive string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return u.refuse("not a gzip-compressed tar archive (%v)", err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return u.refuse("an unreadable tar archive (%v)", err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = u.dir(h.Name)
		case tar.TypeReg:
			err = u.file(h.Name, h.FileInfo().Mode(), tr)
		case tar.TypeXGlobalHeader:
			continue // metadata (git archive's commit id), no member
		default:
			err = u.refuse("%s: a %s, not a file or folder (links and devices are not unpacked)", h.Name, kindOf(h.FileInfo().Mode()))
		}
		if err != nil {
			return err
		}
	}
}

// kindOf names what a member is, for a refusal.
func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "hard link or special member"
}

// target is where a member named name goes under dest, or a refusal when
// the name would leave it (absolute, or climbing out with ..).
func (u *unpacker) target(name string) (string, error) {
	clean := path.Clean(strings.ReplaceAll(name, `\`, "/"))
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || filepath.VolumeName(name) != "" {
		return "", u.refuse("%s: a path out of the submission's folder", name)
	}
	if clean == "." {
		return u.dest, nil
	}
	return filepath.Join(u.dest, filepath.FromSlash(clean)), nil
}

// count counts one more member against the limit.
func (u *unpacker) count() error {
	u.members++
	if u.members > u.limits.Members {
		return u.refuse("more than %d files and folders", u.limits.Members)
	}
	return nil
}

func (u *unpacker) dir(name string) error {
	t, err := u.target(name)
	if err != nil {
		return err
	}
	if err := u.count(); err != nil {
		return err
	}
	if err := os.MkdirAll(t, 0o755); err != nil {
		return u.refuse("%s: %v", name, err)
	}
	return nil
}

// file writes one member, counted against the limits as it is written
// (an archive's sizes may lie), never over an earlier member (O_EXCL), and
// with only the execute bits of its mode kept.
func (u *unpacker) file(name string, mode fs.FileMode, r io.Reader) error {
	t, err := u.target(name)
	if err != nil {
		return err
	}
	if t == u.dest {
		return u.refuse("a file with an empty name")
	}
	if err := u.count(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(t), 0o755); err != nil {
		return u.refuse("%s: %v", name, err)
	}
	perm := fs.FileMode(0o644)
	if mode&0o111 != 0 {
		perm = 0o755
	}
	f, err := os.OpenFile(t, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return u.refuse("%s: already unpacked (twice in the archive, or a folder of that name)", name)
	}
	if err != nil {
		return u.refuse("%s: %v", name, err) // a name too long, or one the file system refuses
	}
	n, err := io.Copy(f, io.LimitReader(r, u.limits.FileBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return u.refuse("%s: %v", name, err)
	}
	u.bytes += n
	switch {
	case n > u.limits.FileBytes:
		return u.refuse("%s: more than %d MiB", name, u.limits.FileBytes>>20)
	case u.bytes > u.limits.Bytes:
		return u.refuse("more than %d MiB in all", u.limits.Bytes>>20)
	}
	return nil
}

// ModuleRoot finds the module in an unpacked or submitted folder: the
// folder itself when it has a Kbuild file or Makefile, else the one folder
// inside it (archives often wrap everything in one, and macOS adds
// __MACOSX beside it), down to three levels.
func ModuleRoot(dir string) (string, error) {
	for range 4 {
		for _, f := range []string{"Kbuild", "Makefile"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				return dir, nil
			}
		}
		des, err := os.ReadDir(dir)
		if err != nil {
			return "", err
		}
		var sub []string
		for _, de := range des {
			if de.IsDir() && de.Name() != "__MACOSX" && !strings.HasPrefix(de.Name(), ".") {
				sub = append(sub, de.Name())
			}
		}
		if len(sub) != 1 {
			break
		}
		dir = filepath.Join(dir, sub[0])
	}
	return "", errors.New("no Kbuild file or Makefile in the submission (nor in its one folder)")
}
