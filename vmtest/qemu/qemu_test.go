package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChooseAccelOverride(t *testing.T) {
	for _, v := range []string{"kvm", "tcg"} {
		a, why, err := ChooseAccel(v)
		require.NoError(t, err)
		assert.Equal(t, Accel(v), a)
		assert.Contains(t, why, EnvAccel)
	}
	_, _, err := ChooseAccel("hvf")
	assert.ErrorContains(t, err, "want kvm or tcg")
}

func TestHasVirtFlag(t *testing.T) {
	assert.True(t, hasVirtFlag("processor\t: 0\nflags\t\t: fpu vme vmx sse\n"))
	assert.True(t, hasVirtFlag("flags\t\t: fpu svm\n"))
	assert.False(t, hasVirtFlag("flags\t\t: fpu vme sse hypervisor\n"), "a nested VM without vmx/svm")
	assert.False(t, hasVirtFlag("model name\t: vmx-like cpu\n"), "only the flags line counts")
}

func TestArgs(t *testing.T) {
	c := Config{Binary: "qemu-system-x86_64", Kernel: "/k/bzImage", Initrd: "/i.cpio", Accel: TCG, MemoryMB: 512, CPUs: 2}
	args := strings.Join(c.Args("/tmp/r.sock"), " ")
	for _, want := range []string{
		"-no-reboot", "accel=tcg", "-kernel /k/bzImage", "-initrd /i.cpio", "-m 512", "-smp 2",
		"-serial chardev:console", "socket,id=results,path=/tmp/r.sock", "-serial chardev:results",
	} {
		assert.Contains(t, args, want)
	}
	assert.Less(t, strings.Index(args, "chardev:console"), strings.Index(args, "chardev:results"),
		"the console must be the first UART (ttyS0), results the second (ttyS1)")
	assert.Contains(t, c.KernelArgs(), "console=ttyS0")
	assert.Contains(t, c.KernelArgs(), "panic=-1")
}

// The folder of a run killed with SIGKILL (no process holds it) goes at the
// next Start, even one that fails; a failed Start leaves none of its own.
func TestStartRemovesAKilledRunsFolder(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	stale := filepath.Join(tmp, TempDirPrefix+"killed")
	require.NoError(t, os.Mkdir(stale, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(stale, "results.sock"), nil, 0o600))
	old := time.Now().Add(-time.Hour)
	require.NoError(t, os.Chtimes(stale, old, old))

	_, err := Start(t.Context(), Config{Binary: filepath.Join(tmp, "no-qemu-here")})
	require.Error(t, err, "starting a QEMU that does not exist")
	left, _ := filepath.Glob(filepath.Join(tmp, TempDirPrefix+"*"))
	assert.Empty(t, left, "%s* folders after Start", TempDirPrefix)
}
