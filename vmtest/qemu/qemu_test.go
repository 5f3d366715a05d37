package qemu

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeHost points KVMUsable at a /dev/kvm (a plain file, so it opens, or
// none) and a cpuinfo with the given flags.
func fakeHost(t *testing.T, kvm bool, flags string) {
	dir := t.TempDir()
	dev, info := filepath.Join(dir, "kvm"), filepath.Join(dir, "cpuinfo")
	if kvm {
		require.NoError(t, os.WriteFile(dev, nil, 0o666))
	}
	require.NoError(t, os.WriteFile(info, []byte("processor\t: 0\nflags\t\t: "+flags+"\n"), 0o644))
	oldDev, oldInfo := devKVM, cpuinfo
	devKVM, cpuinfo = dev, info
	t.Cleanup(func() { devKVM, cpuinfo = oldDev, oldInfo })
}

func TestChooseAccelOverride(t *testing.T) {
	fakeHost(t, true, "fpu vmx sse")
	for _, v := range []string{"kvm", "tcg"} {
		a, why, err := ChooseAccel(v)
		require.NoError(t, err)
		assert.Equal(t, Accel(v), a)
		assert.Contains(t, why, EnvAccel)
	}
	_, _, err := ChooseAccel("hvf")
	assert.ErrorContains(t, err, "want kvm or tcg")
}

func TestChooseAccelRefusesKVMWhereItCannotWork(t *testing.T) {
	for _, tc := range []struct {
		kvm   bool
		flags string
		says  string
	}{
		{true, "fpu sse hypervisor", "the CPU advertises no vmx/svm"},
		{false, "fpu vmx", "no usable /dev/kvm"},
	} {
		fakeHost(t, tc.kvm, tc.flags)
		_, _, err := ChooseAccel("kvm")
		assert.ErrorContains(t, err, "PIDLAB_ACCEL=kvm, but KVM cannot work here", "forced with /dev/kvm %v, flags %q", tc.kvm, tc.flags)
		assert.ErrorContains(t, err, tc.says, "forced with /dev/kvm %v, flags %q", tc.kvm, tc.flags)

		a, why, err := ChooseAccel("")
		require.NoError(t, err, "auto")
		assert.Equal(t, TCG, a, "auto with /dev/kvm %v, flags %q", tc.kvm, tc.flags)
		assert.Contains(t, why, tc.says, "auto's note")

		a, _, err = ChooseAccel("tcg")
		require.NoError(t, err)
		assert.Equal(t, TCG, a)
	}
	fakeHost(t, true, "fpu svm")
	a, _, err := ChooseAccel("")
	require.NoError(t, err)
	assert.Equal(t, KVM, a, "auto with a usable /dev/kvm and svm")
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

func listenResults(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "results.sock"))
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln
}

// A QEMU that dies before it connects its results port is seen dead at
// once, though it is not reaped (a zombie answers kill -0).
func TestAcceptSeesQEMUExitBeforeConnecting(t *testing.T) {
	cmd := exec.Command("sh", "-c", "exit 1")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Wait() })
	start := time.Now()
	_, err := accept(t.Context(), listenResults(t), cmd)
	assert.EqualError(t, err, "QEMU exited")
	assert.Less(t, time.Since(start), 5*time.Second, "not the whole connect timeout")
	assert.NoError(t, cmd.Process.Signal(syscall.Signal(0)), "accept did not reap it: Wait does")
}

// A Ctrl-C while QEMU starts ends the wait for its connection.
func TestAcceptEndsWithItsContext(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := accept(ctx, listenResults(t), cmd)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), 5*time.Second)
}
