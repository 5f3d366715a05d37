package kernel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/internal/cacheentry"
	"github.com/pidlab/pidlab/vmtest/progress"
)

// fakeTree is a finished kernel tree as fetch leaves it, sealed or not.
func fakeTree(t *testing.T, sealed bool) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "6.1.0-57-cloud-amd64")
	for name, content := range map[string]string{
		"boot/vmlinuz-6.1.0-57-cloud-amd64":                   "bzImage",
		"usr/src/linux-headers-6.1.0-57-cloud-amd64/Makefile": "include /x/Makefile",
		readyMarker: "6.1.0-57-cloud-amd64\n",
	} {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	if sealed {
		require.NoError(t, sealDebian("6.1.0-57-cloud-amd64")(dir))
	}
	return dir
}

func TestCachedKernelTreeIsCheckedBeforeUse(t *testing.T) {
	var said strings.Builder
	log := &progress.Log{W: &said}

	dir := fakeTree(t, true)
	assert.True(t, usableTree(dir, "fetching it again", sealDebian("6.1.0-57-cloud-amd64"), log), "intact")

	mk := filepath.Join(dir, "usr/src/linux-headers-6.1.0-57-cloud-amd64/Makefile")
	require.NoError(t, os.Truncate(mk, 3))
	assert.False(t, usableTree(dir, "fetching it again", sealDebian("6.1.0-57-cloud-amd64"), log), "a cut header file")
	assert.NoDirExists(t, dir, "the damaged tree is removed, so it is fetched again")
	assert.Equal(t, "    cache: "+dir+" is damaged: usr/src/linux-headers-6.1.0-57-cloud-amd64/Makefile: 3 bytes, 19 when it was written; fetching it again\n", said.String())

	legacy := fakeTree(t, false)
	assert.True(t, usableTree(legacy, "fetching it again", sealDebian("6.1.0-57-cloud-amd64"), log), "an older pidlab's finished tree is trusted once")
	assert.NoError(t, cacheentry.CheckTree(legacy), "and sealed")

	unfinished := fakeTree(t, true)
	require.NoError(t, os.Remove(filepath.Join(unfinished, readyMarker)))
	assert.False(t, usableTree(unfinished, "fetching it again", sealDebian("6.1.0-57-cloud-amd64"), log), "no ready marker: not finished")
}

// A cache fetched by an older pidlab under another path (a moved or
// shared cache) named its common headers by that path, and every module
// build failed with "No such file or directory" (seen in CI). Such a
// tree is kept, made relocatable and sealed again.
func TestCachedTreeNamingAnotherPathIsRelocated(t *testing.T) {
	state := fakeApt(t)
	require.NoError(t, os.Remove(filepath.Join(state, "stale")))
	var said strings.Builder
	d := Debian{Flavour: "cloud", CacheDir: t.TempDir(), Log: &progress.Log{W: &said}}
	root := filepath.Join(d.CacheDir, "6.1.0-57-cloud-amd64")
	mk := filepath.Join(root, "usr/src/linux-headers-6.1.0-57-cloud-amd64/Makefile")
	for name, content := range map[string]string{
		"boot/vmlinuz-6.1.0-57-cloud-amd64": "bzImage kept from the first fetch",
		mk:                                  "include /tmp/cache-hang/pidlab/kernels/6.1.0-57-cloud-amd64/usr/src/linux-headers-6.1.0-57-common/Makefile\n",
		readyMarker:                         "6.1.0-57-cloud-amd64\n",
	} {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(root, name)
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	require.NoError(t, sealDebian("6.1.0-57-cloud-amd64")(root))

	k, err := d.Provision(t.Context())
	require.NoError(t, err, "log:\n%s", said.String())
	b, err := os.ReadFile(filepath.Join(k.KDIR, "Makefile"))
	require.NoError(t, err)
	assert.Equal(t, "include $(dir $(lastword $(MAKEFILE_LIST)))../linux-headers-6.1.0-57-common/Makefile\n", string(b))
	image, err := os.ReadFile(k.Image)
	require.NoError(t, err)
	assert.Equal(t, "bzImage kept from the first fetch", string(image), "the tree is kept, not fetched again")
	assert.NoError(t, cacheentry.CheckTree(root), "sealed again")
	assert.Contains(t, said.String(), "named its common headers by an absolute path")
}
