package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/magefile/mage/mage"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Two runs at once in one checkout: with mage itself, one of them lost the
// race for magefiles/mage_output_file.go in about four of five tries and
// exited 1 ("error compiling magefiles"). The target is a cheap one that
// needs no VM: kernel:fetch of a custom kernel only checks its files.
func TestConcurrentRunsInOneCheckout(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the magefiles a few times (about 30 s)")
	}
	repo, err := filepath.Abs("../../..")
	require.NoError(t, err)
	kernel := fakeKernel(t)
	env := append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir(),
		"PIDLAB_KERNEL="+kernel.image, "PIDLAB_KDIR="+kernel.kdir)
	for round := range 3 {
		var wg sync.WaitGroup
		outs := make([]bytes.Buffer, 2)
		errs := make([]error, 2)
		for i := range outs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := exec.Command("go", "tool", "mage", "kernel:fetch")
				cmd.Dir, cmd.Env = repo, env
				cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
				errs[i] = cmd.Run()
			}()
		}
		wg.Wait()
		for i := range outs {
			assert.NoError(t, errs[i], "round %d, run %d of 2 at once: exit status; its output:\n%s", round+1, i+1, outs[i].String())
			assert.Contains(t, outs[i].String(), "kernel 6.1.0-fake", "round %d, run %d: the target's output", round+1, i+1)
		}
	}
	_, err = os.Stat(filepath.Join(repo, "magefiles", "mage_output_file.go"))
	assert.ErrorIs(t, err, os.ErrNotExist, "mage's main file is removed after the runs")
}

type kernelFiles struct{ image, kdir string }

// fakeKernel is the files a custom kernel selection is checked for.
func fakeKernel(t *testing.T) kernelFiles {
	dir := t.TempDir()
	k := kernelFiles{image: filepath.Join(dir, "bzImage"), kdir: filepath.Join(dir, "build")}
	require.NoError(t, os.MkdirAll(filepath.Join(k.kdir, "include", "config"), 0o755))
	require.NoError(t, os.WriteFile(k.image, []byte("not a kernel"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(k.kdir, "Makefile"), nil, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(k.kdir, "include", "config", "kernel.release"), []byte("6.1.0-fake\n"), 0o644))
	return k
}

// A checkout's magefiles compile into one path of their own, another
// checkout's elsewhere; those not used for a week go.
func TestSharedExeIsPerCheckoutAndUnusedOnesGo(t *testing.T) {
	cache := t.TempDir()
	a, err := sharedExe(mage.Invocation{Dir: "/work/a", CacheDir: cache})
	require.NoError(t, err)
	again, err := sharedExe(mage.Invocation{Dir: "/work/a", CacheDir: cache})
	require.NoError(t, err)
	b, err := sharedExe(mage.Invocation{Dir: "/work/b", CacheDir: cache})
	require.NoError(t, err)
	assert.Equal(t, a, again, "one checkout, one path")
	assert.NotEqual(t, a, b, "two checkouts, two paths")

	old := time.Now().Add(-unusedAge - time.Hour)
	require.NoError(t, os.Chtimes(filepath.Dir(b), old, old))
	removeUnused(cache)
	assert.DirExists(t, filepath.Dir(a), "used now")
	assert.NoDirExists(t, filepath.Dir(b), "unused for over a week")
}

// A run runs a link of its own: the shared path replaced meanwhile (go
// build removes it and writes anew) leaves the run's file as it was.
func TestLinkOrCopyKeepsTheRunsFile(t *testing.T) {
	dir := t.TempDir()
	shared, mine := filepath.Join(dir, "shared"), filepath.Join(dir, "mine")
	require.NoError(t, os.WriteFile(shared, []byte("v1"), 0o755))
	require.NoError(t, linkOrCopy(shared, mine))
	require.NoError(t, os.Remove(shared))
	require.NoError(t, os.WriteFile(shared, []byte("v2"), 0o755))
	b, err := os.ReadFile(mine)
	require.NoError(t, err)
	assert.Equal(t, "v1", string(b))
}
