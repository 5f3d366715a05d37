package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

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
