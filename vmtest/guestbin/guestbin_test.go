package guestbin

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/internal/cacheentry"
	"github.com/pidlab/pidlab/vmtest/progress"
)

// built stands for a fresh `go test -c` output in dir.
func built(t *testing.T, dir, content string) string {
	t.Helper()
	tmp, err := tempPath(filepath.Join(dir, "conformance.test"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	return tmp
}

// Two checkouts at other versions share the cache: each gets its own
// binary, by content, and a damaged one is replaced, not run.
func TestBinariesAreKeptByContent(t *testing.T) {
	dir := t.TempDir()
	stem := filepath.Join(dir, "conformance")
	var said strings.Builder
	log := &progress.Log{W: &said}

	mine, err := addByContent(built(t, dir, "tests of checkout A"), stem, ".test", log)
	require.NoError(t, err)
	theirs, err := addByContent(built(t, dir, "tests of checkout B"), stem, ".test", log)
	require.NoError(t, err)
	assert.NotEqual(t, mine, theirs, "other bytes, other name")
	b, err := os.ReadFile(mine)
	require.NoError(t, err)
	assert.Equal(t, "tests of checkout A", string(b), "B's build did not overwrite A's binary")
	assert.NoError(t, cacheentry.CheckFile(theirs), "sealed")

	again, err := addByContent(built(t, dir, "tests of checkout A"), stem, ".test", log)
	require.NoError(t, err)
	assert.Equal(t, mine, again, "the same bytes, the same file")

	require.NoError(t, os.WriteFile(mine, []byte("tests of checkout A, damaged"), 0o755))
	again, err = addByContent(built(t, dir, "tests of checkout A"), stem, ".test", log)
	require.NoError(t, err)
	b, err = os.ReadFile(again)
	require.NoError(t, err)
	assert.Equal(t, "tests of checkout A", string(b), "a damaged copy is replaced")
	assert.Contains(t, said.String(), "is damaged")

	left, err := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	require.NoError(t, err)
	assert.Empty(t, left, "no temporary files are left")
}

// A helper that includes its module's uapi header is built again when the
// header changes, though its own source did not.
func TestHelperIsRebuiltWhenItsHeaderChanges(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "child", "helper.c")
	require.NoError(t, os.MkdirAll(filepath.Dir(src), 0o755))
	require.NoError(t, os.WriteFile(src, []byte("#include \"../uapi.h\"\nint main(void) { return VALUE; }\n"), 0o644))
	header := filepath.Join(dir, "uapi.h")
	require.NoError(t, os.WriteFile(header, []byte("#define VALUE 1\n"), 0o644))
	log := &progress.Log{W: io.Discard}

	first, err := CProgram(t.Context(), src, filepath.Join(dir, "out"), log)
	require.NoError(t, err)
	same, err := CProgram(t.Context(), src, filepath.Join(dir, "out"), log)
	require.NoError(t, err)
	assert.Equal(t, first, same, "nothing changed: the same build")
	fi, err := os.Stat(first)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm(), "readable by all: a program others cannot read runs undumpable")

	require.NoError(t, os.WriteFile(header, []byte("#define VALUE 2\n"), 0o644))
	second, err := CProgram(t.Context(), src, filepath.Join(dir, "out"), log)
	require.NoError(t, err)
	assert.NotEqual(t, first, second, "the header changed: another build")
	err = exec.Command(second).Run()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 2, exit.ExitCode(), "the new build has the header's new value")

	require.NoError(t, os.Remove(header))
	_, err = CProgram(t.Context(), src, filepath.Join(dir, "out"), log)
	assert.ErrorContains(t, err, `includes "../uapi.h"`)
}
