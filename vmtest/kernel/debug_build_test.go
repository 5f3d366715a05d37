package kernel_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/hostdeps"
	"github.com/pidlab/pidlab/vmtest/internal/cachedir"
	"github.com/pidlab/pidlab/vmtest/kbuild"
	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/progress"
)

// TestDebugKernelBuilds builds (or reuses) the debug kernel in pidlab's
// cache, as `go tool mage kernel:debug` does, and builds the reference
// module against it.
func TestDebugKernelBuilds(t *testing.T) {
	if testing.Short() || os.Getenv("PIDLAB_E2E_DEBUG") != "1" {
		t.Skip("builds the debug kernel from source (about 5 minutes on 2 cores the first time, then cached): set PIDLAB_E2E_DEBUG=1")
	}
	log := &progress.Log{W: testWriter{t}}
	require.NoError(t, hostdeps.Ensure(t.Context(), log, hostdeps.SourceKernel...), "host tools for the kernel build")
	k, err := kernel.Provision(t.Context(), kernel.Selection{Flavour: kernel.DebugName}, cacheDir(t), log)
	require.NoError(t, err)

	assert.Equal(t, "debug", k.Name)
	assert.True(t, strings.HasSuffix(k.Release, "-pidlab-debug"), "release %q", k.Release)
	assert.FileExists(t, k.Image)
	assert.FileExists(t, filepath.Join(k.KDIR, "Module.symvers"), "a prepared module build tree")

	config, err := os.ReadFile(filepath.Join(k.KDIR, ".config"))
	require.NoError(t, err)
	desc, _ := kernel.Describe(kernel.DebugName)
	text, err := desc.FragmentText()
	require.NoError(t, err)
	frag, err := kernel.ParseFragment(desc.Fragment, text)
	require.NoError(t, err)
	assert.Empty(t, kernel.Dropped(frag, kernel.ParseConfig(string(config))), "fragment options missing from .config")

	mod, err := kbuild.Build(t.Context(), k, filepath.Join("..", "..", "module", "procpid"), t.TempDir(), log)
	require.NoError(t, err, "the reference module builds against the debug kernel")
	assert.Empty(t, mod.Warnings, "the reference module's warnings with W=1")
}

func cacheDir(t *testing.T) string {
	t.Helper()
	dir, err := cachedir.Default()
	require.NoError(t, err)
	return dir
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
