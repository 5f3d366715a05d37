package vmtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/kbuild"
	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/manifest"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

func TestModuleDirSaysWhatIsWrongWithThePath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "procpid.c")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	for path, says := range map[string]string{
		filepath.Join(dir, "no-such"): "no-such does not exist",
		file:                          "procpid.c is a file, not a folder",
		dir:                           "holds no Kbuild file or Makefile",
	} {
		_, err := ModuleDir(path)
		if assert.Error(t, err, path) {
			assert.Equal(t, verdict.Setup, verdict.CodeOf(err), path)
			assert.ErrorContains(t, err, says, path)
		}
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Kbuild"), []byte("obj-m := procpid.o\n"), 0o644))
	got, err := ModuleDir(dir)
	require.NoError(t, err)
	assert.Equal(t, dir, got)
}

func TestNameClashWarnsOfTheKernelsOwnNames(t *testing.T) {
	kdir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(kdir, "modules.order"), []byte("kernel/fs/ext4/ext4.ko\n"), 0o644))
	k := &kernel.Kernel{Release: "6.1.192-pidlab-debug", Image: filepath.Join(kdir, "arch/x86/boot/bzImage"), KDIR: kdir}

	w := nameClash(k, &kbuild.Module{Name: "ext4"})
	assert.Contains(t, w, "the module is named ext4, like the kernel's own kernel/fs/ext4/ext4.ko (a module)")
	assert.Contains(t, w, "rename it")
	assert.Empty(t, nameClash(k, &kbuild.Module{Name: "procpid"}), "no warning for a name of its own")
}

// A grade checks a folder with the manifest of the profile's module even
// when the folder brings its own: a student's pidlab.toml cannot choose
// the tests it is graded by.
func TestProfileManifestIgnoresTheFolders(t *testing.T) {
	c := Config{RepoDir: repoPath(t)}
	own, err := c.manifestFor(repoPath(t, "module/exitmon"))
	require.NoError(t, err)
	c.ProfileManifest = true
	graded, err := c.manifestFor(repoPath(t, "module/exitmon"))
	require.NoError(t, err)
	procpid, err := manifest.Load(repoPath(t, "module/procpid"))
	require.NoError(t, err)
	assert.Equal(t, procpid, graded, "the reference profile's module: procpid")
	assert.NotEqual(t, own, graded)
}
