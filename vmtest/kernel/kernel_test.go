package kernel

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

func TestParseSelection(t *testing.T) {
	sel, err := ParseSelection("", "")
	require.NoError(t, err)
	assert.Equal(t, Selection{Flavour: "cloud"}, sel)

	sel, err = ParseSelection("rt", "")
	require.NoError(t, err)
	assert.Equal(t, "rt", sel.Flavour)

	sel, err = ParseSelection("/k/bzImage", "/k/build")
	require.NoError(t, err)
	assert.Equal(t, Selection{Image: "/k/bzImage", KDIR: "/k/build"}, sel)

	_, err = ParseSelection("/k/bzImage", "")
	assert.Equal(t, verdict.Setup, verdict.CodeOf(err))
	assert.ErrorContains(t, err, EnvKDIR)

	_, err = ParseSelection("fedora", "")
	assert.Equal(t, verdict.Setup, verdict.CodeOf(err))
	assert.ErrorContains(t, err, "neither a kernel name")
}

func TestCustomNeedsAPreparedTree(t *testing.T) {
	dir := t.TempDir()
	image := filepath.Join(dir, "bzImage")
	require.NoError(t, os.WriteFile(image, []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Makefile"), []byte("x"), 0o644))

	_, err := Custom(image, dir)
	assert.ErrorContains(t, err, "modules_prepare")

	require.NoError(t, os.MkdirAll(filepath.Join(dir, "include/config"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "include/config/kernel.release"), []byte("6.6.0-mine\n"), 0o644))
	k, err := Custom(image, dir)
	require.NoError(t, err)
	assert.Equal(t, "6.6.0-mine", k.Release)

	_, err = Custom(filepath.Join(dir, "missing"), dir)
	assert.Equal(t, verdict.Setup, verdict.CodeOf(err))
}

func TestRelocateHeadersPointsAtTheCommonHeadersNextToThem(t *testing.T) {
	for name, include := range map[string]string{
		"as Debian ships it":                       "include /usr/src/linux-headers-6.1.0-9-common/Makefile\n",
		"as an older pidlab left it, another path": "include /tmp/cache-hang/pidlab/kernels/6.1.0-9-cloud-amd64/usr/src/linux-headers-6.1.0-9-common/Makefile\n",
	} {
		t.Run(name, func(t *testing.T) {
			tree := t.TempDir()
			mk := filepath.Join(tree, "usr/src/linux-headers-6.1.0-9-cloud-amd64/Makefile")
			require.NoError(t, os.MkdirAll(filepath.Dir(mk), 0o755))
			require.NoError(t, os.WriteFile(mk, []byte(include), 0o644))

			changed, err := relocateHeaders(tree, "6.1.0-9-cloud-amd64")
			require.NoError(t, err)
			assert.True(t, changed)
			b, err := os.ReadFile(mk)
			require.NoError(t, err)
			assert.Equal(t, "include $(dir $(lastword $(MAKEFILE_LIST)))../linux-headers-6.1.0-9-common/Makefile\n", string(b))

			changed, err = relocateHeaders(tree, "6.1.0-9-cloud-amd64")
			require.NoError(t, err)
			assert.False(t, changed, "a relocated Makefile is left as it is")
		})
	}
}

// The include must mean what make makes of it: a tree moved after it was
// made still finds its common headers (a real make, a fake kernel tree).
func TestRelocatedHeadersBuildFromAnotherPath(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	made := filepath.Join(t.TempDir(), "made")
	src := filepath.Join(made, "usr/src")
	require.NoError(t, os.MkdirAll(filepath.Join(src, "linux-headers-6.1.0-9-common"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(src, "linux-headers-6.1.0-9-cloud-amd64"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "linux-headers-6.1.0-9-common/Makefile"), []byte("all:\n\t@echo common headers found\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "linux-headers-6.1.0-9-cloud-amd64/Makefile"), []byte("include /usr/src/linux-headers-6.1.0-9-common/Makefile\n"), 0o644))
	_, err := relocateHeaders(made, "6.1.0-9-cloud-amd64")
	require.NoError(t, err)

	moved := filepath.Join(t.TempDir(), "moved")
	require.NoError(t, os.Rename(made, moved))
	out, err := exec.Command("make", "-s", "-C", filepath.Join(moved, "usr/src/linux-headers-6.1.0-9-cloud-amd64")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "common headers found")
}

func TestNewestCachedPicksTheHighestABI(t *testing.T) {
	d := Debian{CacheDir: t.TempDir()}
	for _, abi := range []string{"6.1.0-9", "6.1.0-56", "6.1.0-47"} {
		dir := filepath.Join(d.CacheDir, abi+"-cloud-amd64")
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, readyMarker), nil, 0o644))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(d.CacheDir, "6.1.0-99-cloud-amd64"), 0o755)) // unfinished: no marker
	assert.Equal(t, "6.1.0-56-cloud-amd64", d.newestCached("cloud-amd64"))
	assert.Empty(t, d.newestCached("rt-amd64"))
}

// Generic's "amd64" is a suffix of the other flavours' names: their trees
// must not stand in for it.
func TestNewestCachedKeepsFlavoursApart(t *testing.T) {
	d := Debian{CacheDir: t.TempDir()}
	for _, release := range []string{"6.1.0-60-cloud-amd64", "6.1.0-60-rt-amd64", "6.1.0-47-amd64"} {
		dir := filepath.Join(d.CacheDir, release)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, readyMarker), nil, 0o644))
	}
	assert.Equal(t, "6.1.0-47-amd64", d.newestCached("amd64"))
	assert.Equal(t, "6.1.0-60-rt-amd64", d.newestCached("rt-amd64"))
	assert.Equal(t, "6.1.0-60-cloud-amd64", d.newestCached("cloud-amd64"))
}

func TestDropModulesKeepsImageAndHeaders(t *testing.T) {
	unpacked := t.TempDir()
	for _, f := range []string{"boot/vmlinuz-6.1.0-9-amd64", "lib/modules/6.1.0-9-amd64/kernel/fs/9p/9p.ko", "usr/src/linux-headers-6.1.0-9-amd64/Makefile",
		"lib/modules/6.1.0-9-amd64/modules.order", "lib/modules/6.1.0-9-amd64/modules.builtin"} {
		require.NoError(t, os.MkdirAll(filepath.Join(unpacked, filepath.Dir(f)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(unpacked, f), nil, 0o644))
	}
	require.NoError(t, dropModules(unpacked))
	assert.NoDirExists(t, filepath.Join(unpacked, "lib/modules/6.1.0-9-amd64/kernel"), "the modules")
	assert.FileExists(t, filepath.Join(unpacked, "lib/modules/6.1.0-9-amd64/modules.order"), "the list of their names")
	assert.FileExists(t, filepath.Join(unpacked, "lib/modules/6.1.0-9-amd64/modules.builtin"), "the list of built-in ones")
	assert.FileExists(t, filepath.Join(unpacked, "boot/vmlinuz-6.1.0-9-amd64"))
	assert.FileExists(t, filepath.Join(unpacked, "usr/src/linux-headers-6.1.0-9-amd64/Makefile"))
}

func TestModuleNamedFindsTheKernelsOwnModules(t *testing.T) {
	root := t.TempDir()
	const release = "6.1.0-9-cloud-amd64"
	lists := filepath.Join(root, "lib/modules", release)
	require.NoError(t, os.MkdirAll(lists, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(lists, "modules.order"), []byte("kernel/fs/ext4/ext4.ko\nkernel/drivers/net/virtio_net.ko\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(lists, "modules.builtin"), []byte("kernel/drivers/tty/serial/8250/8250.ko\nkernel/fs/proc-fs.ko\n"), 0o644))
	k := &Kernel{Release: release, Image: filepath.Join(root, "boot", "vmlinuz-"+release), KDIR: filepath.Join(root, "usr/src/linux-headers-"+release)}

	path, builtin, ok := k.ModuleNamed("ext4")
	assert.True(t, ok, "ext4 is the kernel's")
	assert.Equal(t, "kernel/fs/ext4/ext4.ko", path)
	assert.False(t, builtin, "ext4 is loadable")
	_, builtin, ok = k.ModuleNamed("proc_fs")
	assert.True(t, ok && builtin, "proc-fs is built in, known as proc_fs")
	_, _, ok = k.ModuleNamed("procpid")
	assert.False(t, ok, "a name the kernel does not use")

	bare := &Kernel{Release: "6.1.0-8-cloud-amd64", Image: filepath.Join(t.TempDir(), "boot/vmlinuz"), KDIR: t.TempDir()}
	_, _, ok = bare.ModuleNamed("ext4")
	assert.False(t, ok, "no lists, no clash claimed")

	kdir := t.TempDir() // a kernel build tree has the lists at its top
	require.NoError(t, os.WriteFile(filepath.Join(kdir, "modules.builtin"), []byte("kernel/fs/ext4/ext4.ko\n"), 0o644))
	tree := &Kernel{Release: "6.1.192-pidlab-debug", Image: filepath.Join(kdir, "arch/x86/boot/bzImage"), KDIR: kdir}
	_, builtin, ok = tree.ModuleNamed("ext4")
	assert.True(t, ok && builtin, "found in the build tree")
}

func TestSlowdownIsTheDebugKernels(t *testing.T) {
	assert.Equal(t, 1.0, (&Kernel{Name: "cloud"}).Slowdown(), "a stock kernel")
	assert.Equal(t, 1.0, (&Kernel{Name: "custom"}).Slowdown(), "a custom kernel is taken for a stock one")
	assert.Equal(t, 5.0, (&Kernel{Name: DebugName}).Slowdown(), "KASAN and lockdep slow the debug kernel: kernels.toml says so")
}

// kernels.toml is read at the first use: every description in it must be
// one pidlab can provision.
func TestDescriptionsAreValid(t *testing.T) {
	ds, err := descriptions()
	require.NoError(t, err)
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
	}
	assert.Equal(t, []string{"cloud", "generic", "rt", "debug"}, names)
	debug, ok := Describe(DebugName)
	require.True(t, ok)
	assert.True(t, debug.Built())
	assert.Equal(t, "linux-source-6.1", debug.Source)
	cloud, _ := Describe("cloud")
	assert.False(t, cloud.Built())
	assert.Equal(t, "cloud-amd64", cloud.Debian)
}

func TestBadDescriptionsAreNamed(t *testing.T) {
	for want, d := range map[string]Description{
		"a name is a word":                   {Name: "my kernel", Debian: "amd64"},
		"needs one of debian":                {Name: "both", Debian: "amd64", Source: "linux-source-6.1", Base: "tinyconfig", Fragment: "debug.config"},
		"needs a base and a fragment":        {Name: "bare", Source: "linux-source-6.1"},
		"are for a kernel built from source": {Name: "odd", Debian: "amd64", Patches: []string{"x.patch"}},
		"kernels/missing.patch":              {Name: "p", Source: "linux-source-6.1", Base: "tinyconfig", Fragment: "debug.config", Patches: []string{"missing.patch"}},
	} {
		assert.ErrorContains(t, d.check(map[string]bool{}), want, "%+v", d)
	}
	assert.ErrorContains(t, Description{Name: "cloud", Debian: "cloud-amd64"}.check(map[string]bool{"cloud": true}), "named twice")
}

// A kernel's patches are applied to the source in order; one that does
// not apply stops the build with its name, a build failure (exit 2).
func TestPatchesApplyInOrder(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		t.Fatalf("patch is not installed (apt-get install patch): %v", err)
	}
	tree, staging := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(tree, "pid.c"), []byte("int a;\nint b;\n"), 0o644))
	d := SourceBuild{Desc: Description{Name: "syscalls", Source: "linux-source-6.1"}, Log: &progress.Log{W: io.Discard}}
	first := patch{Name: "one.patch", Text: "--- a/pid.c\n+++ b/pid.c\n@@ -1,2 +1,2 @@\n-int a;\n+int one;\n int b;\n"}
	second := patch{Name: "two.patch", Text: "--- a/pid.c\n+++ b/pid.c\n@@ -1,2 +1,2 @@\n int one;\n-int b;\n+int two;\n"}
	require.NoError(t, d.applyPatches(t.Context(), tree, staging, "6.1.192-2", []patch{first, second}))
	b, err := os.ReadFile(filepath.Join(tree, "pid.c"))
	require.NoError(t, err)
	assert.Equal(t, "int one;\nint two;\n", string(b))

	// one.patch is in the tree already (two.patch changed its context).
	err = d.applyPatches(t.Context(), tree, staging, "6.1.192-2", []patch{first})
	assert.Equal(t, verdict.BuildFailed, verdict.CodeOf(err))
	assert.ErrorContains(t, err, "vmtest/kernel/kernels/one.patch is already applied to linux-source-6.1 6.1.192-2")
}

// A patch changes the key; a kernel without patches keeps the key it had
// before kernels could have them (TestDebugKeyIsStableAndCoversItsInputs).
func TestPatchesAreInTheKey(t *testing.T) {
	d := SourceBuild{Desc: Description{Name: "syscalls", Source: "linux-source-6.1", Base: "tinyconfig", Fragment: "x.config"}, Fragment: "CONFIG_KASAN=y\n"}
	plain := d.key("6.1.192-2", nil, "gcc 12")
	one := d.key("6.1.192-2", []patch{{Name: "a.patch", Text: "text"}}, "gcc 12")
	assert.NotEqual(t, plain, one)
	assert.NotEqual(t, one, d.key("6.1.192-2", []patch{{Name: "a.patch", Text: "other text"}}, "gcc 12"), "the patch's text, not only its name")
}
