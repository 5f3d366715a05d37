package cacheentry

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

func TestSealedFileIsCheckedBySizeAndHash(t *testing.T) {
	p := filepath.Join(t.TempDir(), "initramfs.cpio")
	write(t, p, "0123456789")
	assert.ErrorIs(t, CheckFile(p), ErrNotSealed, "before sealing")
	require.NoError(t, SealFile(p))
	require.NoError(t, CheckFile(p), "as written")

	require.NoError(t, os.Truncate(p, 4))
	err := CheckFile(p)
	assert.True(t, IsDamaged(err), "truncated: %v", err)
	assert.ErrorContains(t, err, "4 bytes, 10 when it was written")

	write(t, p, "0123456780") // same size, other bytes
	err = CheckFile(p)
	assert.True(t, IsDamaged(err), "overwritten: %v", err)
	assert.ErrorContains(t, err, "SHA-256 differs")

	Remove(p)
	assert.ErrorIs(t, CheckFile(p), fs.ErrNotExist)
	assert.NoFileExists(t, p+SumSuffix, "the seal goes with the file")
}

func TestRenameMovesTheSeal(t *testing.T) {
	dir := t.TempDir()
	tmp, final := filepath.Join(dir, ".tmp"), filepath.Join(dir, "x.ko")
	write(t, tmp, "module")
	require.NoError(t, SealFile(tmp))
	require.NoError(t, Rename(tmp, final))
	assert.NoError(t, CheckFile(final))
}

func TestSealedTreeFindsLostCutAndChangedFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "boot/vmlinuz"), "image")
	write(t, filepath.Join(dir, "usr/src/h/Makefile"), "include x")
	write(t, filepath.Join(dir, "usr/src/h/include/a.h"), "#define A 1")
	assert.ErrorIs(t, CheckTree(dir), ErrNotSealed)
	assert.Error(t, SealTree(dir, nil, "boot/missing"), "a vital file must exist")
	require.NoError(t, SealTree(dir, nil, "boot/vmlinuz"))
	require.NoError(t, CheckTree(dir))

	write(t, filepath.Join(dir, "usr/src/h/.tmp_build_output"), "new")
	assert.NoError(t, CheckTree(dir), "files added since do not matter")

	write(t, filepath.Join(dir, "boot/vmlinuz"), "imagf")
	err := CheckTree(dir)
	assert.True(t, IsDamaged(err), "vital file changed: %v", err)
	assert.ErrorContains(t, err, "boot/vmlinuz: its content changed")
	write(t, filepath.Join(dir, "boot/vmlinuz"), "image")

	require.NoError(t, os.Truncate(filepath.Join(dir, "usr/src/h/Makefile"), 0))
	assert.ErrorContains(t, CheckTree(dir), "usr/src/h/Makefile: 0 bytes, 9 when it was written")
	write(t, filepath.Join(dir, "usr/src/h/Makefile"), "include x")

	require.NoError(t, os.Remove(filepath.Join(dir, "usr/src/h/include/a.h")))
	assert.ErrorContains(t, CheckTree(dir), "usr/src/h/include/a.h: missing")

	assert.ErrorIs(t, CheckTree(filepath.Join(dir, "nope")), fs.ErrNotExist)
}

func TestReuseSaysWhatIsDamagedAndDropsIt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.cpio")
	var said []string
	say := func(format string, args ...any) { said = append(said, fmt.Sprintf(format, args...)) }

	write(t, p, "archive")
	assert.False(t, Reuse(p, "building it again", say), "unsealed")
	assert.NoFileExists(t, p)
	assert.Empty(t, said, "an unsealed file is a plain miss")

	write(t, p, "archive")
	require.NoError(t, SealFile(p))
	assert.True(t, Reuse(p, "building it again", say))

	require.NoError(t, os.Truncate(p, 3))
	assert.False(t, Reuse(p, "building it again", say))
	assert.NoFileExists(t, p)
	require.Len(t, said, 1)
	assert.Equal(t, "cache: "+p+" is damaged: 3 bytes, 7 when it was written; building it again", said[0])
}

func TestSealTreeLeavesOutWhatSkipSays(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "kernel/fork.c"), "source")
	write(t, filepath.Join(dir, "include/linux/sched.h"), "header")
	require.NoError(t, SealTree(dir, func(rel string) bool { return strings.HasSuffix(rel, ".c") }))
	require.NoError(t, os.Truncate(filepath.Join(dir, "kernel/fork.c"), 0))
	assert.NoError(t, CheckTree(dir), "a skipped file is not checked")
	require.NoError(t, os.Truncate(filepath.Join(dir, "include/linux/sched.h"), 0))
	assert.True(t, IsDamaged(CheckTree(dir)), "the others are")
}
