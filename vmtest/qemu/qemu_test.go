package qemu

import (
	"strings"
	"testing"

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
