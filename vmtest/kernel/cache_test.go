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
