package initramfs

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/u-root/mkuimage/cpio"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/vmtest/internal/cacheentry"
	"github.com/pidlab/pidlab/vmtest/internal/contenthash"
)

// Overlay returns an archive that is base followed by a second one holding
// files and the manifest m. The kernel unpacks the two in turn, later files
// replacing earlier ones, so that a changed .ko costs a copy of base, not a
// rebuild of its Go commands. The result is cached by content.
// A damaged cached overlay is said through say and written again.
func Overlay(base string, files []File, m guestapi.Manifest, cacheDir string, say func(string, ...any)) (string, error) {
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", err
	}
	k := contenthash.New()
	k.Printf("overlay 1\nmanifest %s\n", manifest)
	if err := k.File("base", base); err != nil {
		return "", err
	}
	for _, f := range files {
		if err := k.File(f.Guest, f.Host); err != nil {
			return "", err
		}
	}
	out := filepath.Join(cacheDir, "initramfs", k.String()+".cpio")
	if cacheentry.Reuse(out, "writing it again", say) {
		return out, nil
	}
	recs, err := records(files, manifest)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".overlay-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	err = appendArchive(tmp, base, recs)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", out, err)
	}
	if err := cacheentry.SealFile(tmp.Name()); err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name() + cacheentry.SumSuffix)
	return out, cacheentry.Rename(tmp.Name(), out)
}

// records are the manifest and the files, each after the directories
// above it, in the order the kernel must create them.
func records(files []File, manifest []byte) ([]cpio.Record, error) {
	made := map[string]bool{".": true}
	recs := file(guestapi.ManifestPath, manifest, 0o644, made)
	for _, f := range files {
		b, err := os.ReadFile(f.Host)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(f.Host)
		if err != nil {
			return nil, err
		}
		recs = append(recs, file(f.Guest, b, uint64(fi.Mode().Perm()), made)...)
	}
	return recs, nil
}

// file is a regular file's record, with the permission bits perm (a test
// binary or a helper is executable), after those of the directories above
// it that are not yet made.
func file(name string, content []byte, perm uint64, made map[string]bool) []cpio.Record {
	name = trimSlash(name)
	var recs []cpio.Record
	for d := path.Dir(name); !made[d]; d = path.Dir(d) {
		made[d] = true
		recs = append([]cpio.Record{cpio.Directory(d, 0o755)}, recs...)
	}
	return append(recs, cpio.StaticRecord(content, cpio.Info{Name: name, Mode: cpio.S_IFREG | perm}))
}

// appendArchive copies base to w and appends recs as a second archive,
// which the kernel wants on a 4-byte boundary.
func appendArchive(w io.Writer, base string, recs []cpio.Record) error {
	b, err := os.Open(base)
	if err != nil {
		return err
	}
	defer b.Close()
	n, err := io.Copy(w, b)
	if err != nil {
		return err
	}
	if _, err := w.Write(make([]byte, (4-n%4)%4)); err != nil {
		return err
	}
	cw := cpio.Newc.Writer(w)
	if err := cpio.WriteRecords(cw, recs); err != nil {
		return err
	}
	return cpio.WriteTrailer(cw)
}
