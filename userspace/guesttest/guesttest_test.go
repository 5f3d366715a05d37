package guesttest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestErrnoNameIsTheCName(t *testing.T) {
	assert.Equal(t, "ESRCH (no such process)", ErrnoName(unix.ESRCH))
	assert.Equal(t, "EINVAL (invalid argument)", ErrnoName(fmt.Errorf("write /proc/pid: %w", unix.EINVAL)), "wrapped")
	assert.Equal(t, "short write", ErrnoName(errors.New("short write")), "no errno")
}

func TestSuitesRefuseToRunOutsideTheGuest(t *testing.T) {
	t.Setenv("PIDLAB_GUEST", "")
	err := inGuest("kill processes")
	assert.ErrorContains(t, err, "refusing to run: PIDLAB_GUEST=1 is not set; these tests kill processes")
	t.Setenv("PIDLAB_GUEST", "1")
	assert.NoError(t, inGuest("kill processes"))
}

func TestTargetPathIsChecked(t *testing.T) {
	t.Setenv("PIDLAB_TARGET", "")
	_, err := TargetPath()
	assert.ErrorContains(t, err, "PIDLAB_TARGET is not set")

	dir := t.TempDir()
	t.Setenv("PIDLAB_TARGET", filepath.Join(dir, "missing"))
	_, err = TargetPath()
	assert.ErrorIs(t, err, os.ErrNotExist)

	plain := filepath.Join(dir, "pidlab-target")
	require.NoError(t, os.WriteFile(plain, nil, 0o644))
	t.Setenv("PIDLAB_TARGET", plain)
	_, err = TargetPath()
	assert.ErrorContains(t, err, "is not executable")

	require.NoError(t, os.Chmod(plain, 0o755))
	path, err := TargetPath()
	require.NoError(t, err)
	assert.Equal(t, plain, path)
}
