package contenthash

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func keyOf(t *testing.T, label, path string) string {
	t.Helper()
	k := New()
	k.Printf("kernel %s\n", label)
	require.NoError(t, k.File("a.c", path))
	return k.String()
}

func TestKeyFollowsContentAndLabels(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.c")
	require.NoError(t, os.WriteFile(p, []byte("int x;"), 0o644))
	first := keyOf(t, "6.1", p)
	assert.Len(t, first, 16)
	assert.Equal(t, first, keyOf(t, "6.1", p), "same inputs, same key")
	assert.NotEqual(t, first, keyOf(t, "6.6", p), "another kernel")

	require.NoError(t, os.WriteFile(p, []byte("int y;"), 0o644))
	assert.NotEqual(t, first, keyOf(t, "6.1", p), "changed content")

	assert.Error(t, New().File("x", filepath.Join(t.TempDir(), "missing")))
}
