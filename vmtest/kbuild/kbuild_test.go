package kbuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/internal/cachedir"
	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// debianKernel provisions the default kernel into a shared cache: these
// tests compile against real headers, never the host's /lib/modules.
func debianKernel(t *testing.T) (*kernel.Kernel, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Debian's kernel headers (a 40 MB download on first use)")
	}
	cache, err := cachedir.Default()
	require.NoError(t, err)
	k, err := kernel.Provision(t.Context(), kernel.Selection{Flavour: kernel.DefaultFlavour}, cache, nil)
	require.NoError(t, err)
	return k, cache
}

func copyModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"Kbuild", "Makefile", "procpid.c"} {
		b, err := os.ReadFile(filepath.Join("../../module/procpid", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o644))
	}
	return dir
}

func TestReferenceModuleBuildsCleanAndIsCached(t *testing.T) {
	k, _ := debianKernel(t)
	src := copyModule(t)
	cache := t.TempDir()

	m, err := Build(t.Context(), k, src, cache, nil)
	require.NoError(t, err)
	assert.Equal(t, "procpid", m.Name)
	assert.FileExists(t, m.Path)
	assert.Empty(t, m.Warnings, "the reference module builds without warnings at W=1")
	assert.False(t, m.Cached)

	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	assert.Len(t, entries, 3, "the build ran in a copy: the source folder is as it was")

	again, err := Build(t.Context(), k, src, cache, nil)
	require.NoError(t, err)
	assert.True(t, again.Cached, "unchanged source and kernel reuse the build")
	assert.Equal(t, m.Path, again.Path)

	require.NoError(t, os.Truncate(m.Path, 100))
	var said strings.Builder
	rebuilt, err := Build(t.Context(), k, src, cache, &progress.Log{W: &said})
	require.NoError(t, err)
	assert.False(t, rebuilt.Cached, "a damaged .ko is not reused")
	assert.Contains(t, said.String(), "cache: "+m.Path+" is damaged: 100 bytes")
	fi, err := os.Stat(rebuilt.Path)
	require.NoError(t, err)
	assert.Greater(t, fi.Size(), int64(100), "built again whole")
}

func TestBuildFailureIsExit2WithCompilerOutput(t *testing.T) {
	k, _ := debianKernel(t)
	src := copyModule(t)
	require.NoError(t, os.WriteFile(filepath.Join(src, "procpid.c"), []byte("int broken(void) { return undeclared; }\n"), 0o644))

	_, err := Build(t.Context(), k, src, t.TempDir(), nil)
	require.Error(t, err)
	assert.Equal(t, verdict.BuildFailed, verdict.CodeOf(err))
	assert.ErrorContains(t, err, "'undeclared' undeclared")
	assert.ErrorContains(t, err, src+"/procpid.c", "errors point at the user's file, not the build copy")
}
