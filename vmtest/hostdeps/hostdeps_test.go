package hostdeps

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPresent(t *testing.T) {
	assert.True(t, Need{Program: "sh"}.present())
	assert.False(t, Need{Program: "no-such-program-pidlab"}.present())

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "libx.so.1"), nil, 0o644))
	assert.True(t, Need{Glob: filepath.Join(dir, "libx.so.*")}.present())
	assert.False(t, Need{Glob: filepath.Join(dir, "liby.so.*")}.present())
}

func TestEnsureWithEverythingPresentDoesNothing(t *testing.T) {
	assert.NoError(t, Ensure(t.Context(), nil, Need{Program: "sh", Package: "dash"}))
}
