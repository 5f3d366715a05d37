package targets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/verdict"
)

// exitStatus is what mage exits with for a target's error.
func exitStatus(t *testing.T, err error) int {
	t.Helper()
	var coded interface{ ExitStatus() int }
	require.True(t, errors.As(err, &coded), "the error carries an exit status: %v", err)
	return coded.ExitStatus()
}

func testOptions(t *testing.T) (Options, *strings.Builder) {
	t.Helper()
	var out strings.Builder
	return Options{RepoDir: "../..", Out: &out}, &out
}

func TestFailuresCarryTheirExitCode(t *testing.T) {
	assert.NoError(t, fail(nil))
	assert.NoError(t, exitWith(verdict.Pass))

	err := fail(verdict.SetupError("apt-get install qemu-system-x86", "qemu-system-x86_64 not found"))
	assert.Equal(t, 5, exitStatus(t, err))
	assert.Equal(t, "qemu-system-x86_64 not found\n    fix: apt-get install qemu-system-x86\n(setup problem, exit 5)", err.Error())
	var v *verdict.Error
	assert.True(t, errors.As(err, &v), "the verdict stays reachable")

	reported := exitWith(verdict.KernelTrouble)
	assert.Equal(t, 3, exitStatus(t, reported))
	assert.Equal(t, "kernel trouble (exit 3)", reported.Error(), "the verdict was printed above: only the code again")

	assert.Equal(t, int(verdict.Setup), exitStatus(t, fail(errors.New("a harness fault"))), "an error without a verdict is a setup problem")
}

// A bad setting is a setup error before any work: nothing is fetched,
// built or written to the cache.
func TestBadSettingStopsBeforeAnyWork(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("PIDLAB_TIMEOUT", "0")
	o, _ := testOptions(t)
	err := Test(t.Context(), o)
	assert.Equal(t, int(verdict.Setup), exitStatus(t, err))
	assert.ErrorContains(t, err, `PIDLAB_TIMEOUT="0"`)
	entries, _ := os.ReadDir(cache)
	assert.Empty(t, entries, "the cache is untouched")
}

func TestValidateNamesAMissingFolder(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	o, _ := testOptions(t)
	missing := filepath.Join(t.TempDir(), "mymodule")
	err := Validate(t.Context(), o, missing)
	assert.Equal(t, int(verdict.Setup), exitStatus(t, err))
	assert.ErrorContains(t, err, missing+" does not exist")
}

func TestCleanKeepsKernelsCleanAllDoesNot(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	for _, d := range []string{"pidlab/kernels/6.1.0-57-cloud-amd64", "pidlab/modules/procpid-1234"} {
		require.NoError(t, os.MkdirAll(filepath.Join(cache, d), 0o755))
	}
	o, out := testOptions(t)

	require.NoError(t, Clean(o, false))
	assert.DirExists(t, filepath.Join(cache, "pidlab/kernels/6.1.0-57-cloud-amd64"))
	assert.NoDirExists(t, filepath.Join(cache, "pidlab/modules"))
	assert.Equal(t, "removing "+filepath.Join(cache, "pidlab")+" (builds, archives and run logs; kernels kept)\n", out.String())

	require.NoError(t, Clean(o, true))
	assert.NoDirExists(t, filepath.Join(cache, "pidlab"))
}

// SIGTERM stops a target as Ctrl-C does: through its context, so that it
// cleans up and exits 130, instead of dying on the spot.
func TestSIGTERMCancelsTheTarget(t *testing.T) {
	ctx := Interruptible(context.Background())
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the context was not cancelled 10 s after SIGTERM")
	}
}
