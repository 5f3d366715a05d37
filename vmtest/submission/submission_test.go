package submission

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// member is one archive member: a regular file unless its mode says
// otherwise; link is a link's target.
type member struct {
	name string
	body string
	mode fs.FileMode
	link string
}

func file(name, body string) member { return member{name: name, body: body, mode: 0o644} }

func writeZip(t *testing.T, path string, members ...member) {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, m := range members {
		h := &zip.FileHeader{Name: m.name, Method: zip.Deflate}
		h.SetMode(m.mode)
		f, err := w.CreateHeader(h)
		require.NoError(t, err)
		body := m.body
		if m.mode&fs.ModeSymlink != 0 {
			body = m.link
		}
		_, err = f.Write([]byte(body))
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

func writeTarGz(t *testing.T, path string, members ...member) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	w := tar.NewWriter(gz)
	for _, m := range members {
		h := &tar.Header{Name: m.name, Mode: int64(m.mode.Perm()), Size: int64(len(m.body)), Typeflag: tar.TypeReg}
		if m.mode&fs.ModeSetuid != 0 {
			h.Mode |= 0o4000
		}
		switch {
		case m.mode.IsDir():
			h.Typeflag, h.Size = tar.TypeDir, 0
		case m.mode&fs.ModeSymlink != 0:
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, m.link, 0
		case m.link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeLink, m.link, 0
		}
		require.NoError(t, w.WriteHeader(h))
		if h.Size > 0 {
			_, err := w.Write([]byte(m.body))
			require.NoError(t, err)
		}
	}
	require.NoError(t, w.Close())
	require.NoError(t, gz.Close())
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

// A class folder: folders and archives are submissions, hidden entries
// are not, anything else and two entries of one name are refusals.
func TestListSortsEntriesAndRefusesTheRest(t *testing.T) {
	class := t.TempDir()
	for _, d := range []string{"carol", "alice", ".git", "dave"} {
		require.NoError(t, os.Mkdir(filepath.Join(class, d), 0o755))
	}
	writeZip(t, filepath.Join(class, "bob.zip"), file("m.c", ""))
	writeTarGz(t, filepath.Join(class, "erin.tgz"), file("m.c", ""))
	writeTarGz(t, filepath.Join(class, "frank.tar.gz"), file("m.c", ""))
	writeZip(t, filepath.Join(class, "dave.zip"), file("m.c", ""))
	require.NoError(t, os.WriteFile(filepath.Join(class, "notes.txt"), nil, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(class, ".DS_Store"), nil, 0o644))

	entries, refused, err := List(class)
	require.NoError(t, err)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name+":"+string(e.Kind))
		assert.True(t, filepath.IsAbs(e.Path), e.Path)
	}
	assert.Equal(t, []string{"alice:folder", "bob:zip", "carol:folder", "erin:tar.gz", "frank:tar.gz"}, got)
	require.Len(t, refused, 2)
	assert.Equal(t, "submission dave refused: two entries of one name: dave and dave.zip", refused[0].Error())
	assert.Equal(t, "submission notes.txt refused: not a folder, .zip, .tar.gz or .tgz", refused[1].Error())
}

// A well-formed archive unpacks with its folders, and only the execute
// bits of its modes are kept; the module is found in its one folder.
func TestUnpackAndFindTheModule(t *testing.T) {
	for _, kind := range []Kind{Zip, TarGz} {
		t.Run(string(kind), func(t *testing.T) {
			dir := t.TempDir()
			archive := filepath.Join(dir, "alice."+string(kind))
			members := []member{{name: "alice/", mode: fs.ModeDir | 0o755}, file("alice/m.c", "int x;\n"),
				file("alice/Makefile", "obj-m := m.o\n"), {name: "alice/build.sh", body: "#!/bin/sh\n", mode: fs.ModeSetuid | 0o777}}
			if kind == Zip {
				writeZip(t, archive, members...)
			} else {
				writeTarGz(t, archive, members...)
			}
			dest := filepath.Join(dir, "out")
			require.NoError(t, Unpack(Entry{Name: "alice", Path: archive, Kind: kind}, dest, DefaultLimits))
			b, err := os.ReadFile(filepath.Join(dest, "alice", "m.c"))
			require.NoError(t, err)
			assert.Equal(t, "int x;\n", string(b))
			fi, err := os.Stat(filepath.Join(dest, "alice", "build.sh"))
			require.NoError(t, err)
			assert.Equal(t, fs.FileMode(0o755), fi.Mode(), "setuid and world-writable bits dropped")
			fi, err = os.Stat(filepath.Join(dest, "alice", "m.c"))
			require.NoError(t, err)
			assert.Equal(t, fs.FileMode(0o644), fi.Mode())

			root, err := ModuleRoot(dest)
			require.NoError(t, err)
			assert.Equal(t, filepath.Join(dest, "alice"), root)
		})
	}
}

// Every rule broken is a refusal naming the entry and the rule, and
// leaves nothing behind: not a file outside, not the destination.
func TestUnpackRefusals(t *testing.T) {
	small := Limits{Members: 3, FileBytes: 1 << 20, Bytes: 2 << 20}
	big := strings.Repeat("x", 1<<20+1)
	cases := []struct {
		name    string
		members []member
		want    string
	}{
		{"dot-dot", []member{file("../evil.c", "x")}, "../evil.c: a path out of the submission's folder"},
		{"deep-dot-dot", []member{file("a/../../evil.c", "x")}, "a/../../evil.c: a path out of the submission's folder"},
		{"absolute", []member{file("/tmp/evil.c", "x")}, "/tmp/evil.c: a path out of the submission's folder"},
		{"backslashes", []member{file(`..\evil.c`, "x")}, `..\evil.c: a path out of the submission's folder`},
		{"symlink", []member{{name: "link", mode: fs.ModeSymlink | 0o777, link: "/etc/passwd"}}, "link: a symbolic link, not a file or folder (links and devices are not unpacked)"},
		{"too-many-files", []member{file("a", ""), file("b", ""), file("c", ""), file("d", "")}, "more than 3 files and folders"},
		{"too-many-folders", []member{{name: "a/", mode: fs.ModeDir | 0o755}, {name: "a/b/", mode: fs.ModeDir | 0o755},
			{name: "a/b/c/", mode: fs.ModeDir | 0o755}, {name: "a/b/c/d/", mode: fs.ModeDir | 0o755}}, "more than 3 files and folders"},
		{"name-too-long", []member{file(strings.Repeat("n", 300)+".c", "x")}, strings.Repeat("n", 300) + ".c: open "},
		{"file-over-folder", []member{{name: "a/", mode: fs.ModeDir | 0o755}, file("a", "x")}, "a: already unpacked (twice in the archive, or a folder of that name)"},
		{"too-big-a-file", []member{file("a", big)}, "a: more than 1 MiB"},
		{"too-big-in-all", []member{file("a", big[:1<<20]), file("b", big[:1<<20]), file("c", "x")}, "more than 2 MiB in all"},
		{"twice", []member{file("a.c", "1"), file("a.c", "2")}, "a.c: already unpacked (twice in the archive, or a folder of that name)"},
	}
	for _, kind := range []Kind{Zip, TarGz} {
		for _, c := range cases {
			if kind == Zip && c.name == "backslashes" {
				continue // Go's zip writer keeps the name; the reader would too: same rule, tested once
			}
			t.Run(string(kind)+"/"+c.name, func(t *testing.T) {
				dir := t.TempDir()
				archive := filepath.Join(dir, "mallory.archive")
				if kind == Zip {
					writeZip(t, archive, c.members...)
				} else {
					writeTarGz(t, archive, c.members...)
				}
				dest := filepath.Join(dir, "class", "mallory")
				require.NoError(t, os.MkdirAll(filepath.Dir(dest), 0o755))
				err := Unpack(Entry{Name: "mallory", Path: archive, Kind: kind}, dest, small)
				var r *Refusal
				require.True(t, errors.As(err, &r), "a refusal, got %v", err)
				assert.True(t, strings.HasPrefix(r.Error(), "submission mallory refused: "+c.want), "got %q, want %q", r.Error(), c.want)
				assert.NoDirExists(t, dest, "a refused submission leaves nothing")
				assert.NoFileExists(t, filepath.Join(dir, "class", "evil.c"))
				assert.NoFileExists(t, filepath.Join(dir, "evil.c"))
			})
		}
	}
}

// A hard link in a tarball is refused like a symbolic one: it could name
// a file outside once unpacked elsewhere.
func TestUnpackRefusesAHardLink(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "m.tgz")
	writeTarGz(t, archive, file("a.c", "x"), member{name: "b.c", link: "a.c"})
	err := Unpack(Entry{Name: "m", Path: archive, Kind: TarGz}, filepath.Join(dir, "out"), DefaultLimits)
	assert.EqualError(t, err, "submission m refused: b.c: a hard link or special member, not a file or folder (links and devices are not unpacked)")
}

// What is not an archive at all is a refusal too, not a crash.
func TestUnpackRefusesWhatIsNoArchive(t *testing.T) {
	dir := t.TempDir()
	for _, kind := range []Kind{Zip, TarGz} {
		archive := filepath.Join(dir, "junk")
		require.NoError(t, os.WriteFile(archive, []byte("not an archive"), 0o644))
		err := Unpack(Entry{Name: "junk", Path: archive, Kind: kind}, filepath.Join(dir, "out-"+string(kind)), DefaultLimits)
		var r *Refusal
		assert.True(t, errors.As(err, &r), "%s: a refusal, got %v", kind, err)
	}
}

// No build file anywhere, or two folders to choose from: no module root.
func TestModuleRootNeedsOneWayDown(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"a", "b", "__MACOSX"} {
		require.NoError(t, os.Mkdir(filepath.Join(dir, d), 0o755))
	}
	_, err := ModuleRoot(dir)
	assert.ErrorContains(t, err, "no Kbuild file or Makefile")

	require.NoError(t, os.RemoveAll(filepath.Join(dir, "b")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a", "Kbuild"), nil, 0o644))
	root, err := ModuleRoot(dir)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "a"), root, "__MACOSX beside the one folder does not count")
}
