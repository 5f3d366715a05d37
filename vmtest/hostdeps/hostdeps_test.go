package hostdeps

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
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

func TestRetryRefreshesOnceAndOnlyForAptErrors(t *testing.T) {
	updates := 0
	lists := &AptLists{
		CanUpdate: func() bool { return true },
		Update:    func(context.Context, *progress.Log) error { updates++; return nil },
	}
	plain := errors.New("dpkg-deb: not a Debian archive")
	calls := 0
	err := lists.Retry(t.Context(), nil, func() error { calls++; return plain })
	assert.Equal(t, plain, err, "an error fresh lists cannot cure stands")
	assert.Equal(t, 1, calls, "op runs")
	assert.Equal(t, 0, updates, "apt-get update runs")

	calls = 0
	err = lists.Retry(t.Context(), nil, func() error {
		calls++
		if calls == 1 {
			return AptFailed(verdict.SetupError("apt-get update", "404 Not Found"))
		}
		return nil
	})
	assert.NoError(t, err)
	assert.Equal(t, 2, calls, "op runs: once before, once after the update")
	assert.Equal(t, 1, updates, "apt-get update runs")

	stale := AptFailed(verdict.SetupError("apt-get update", "404 Not Found"))
	err = lists.Retry(t.Context(), nil, func() error { return stale })
	assert.Equal(t, stale, err, "after one update in this process, the error stands")
	assert.Equal(t, 1, updates, "apt-get update runs once per process")
}

func TestRetryWithoutRootKeepsTheError(t *testing.T) {
	lists := &AptLists{
		CanUpdate: func() bool { return false },
		Update:    func(context.Context, *progress.Log) error { t.Fatal("apt-get update ran without root"); return nil },
	}
	stale := AptFailed(verdict.SetupError("apt-get update", "apt does not know linux-image-cloud-amd64"))
	err := lists.Retry(t.Context(), nil, func() error { return stale })
	assert.Equal(t, stale, err)
	assert.Equal(t, verdict.Setup, verdict.CodeOf(err), "an AptError keeps its setup code")
	assert.ErrorContains(t, err, "fix: apt-get update")
}

func TestRetryNamesAFailedUpdate(t *testing.T) {
	lists := &AptLists{
		CanUpdate: func() bool { return true },
		Update:    func(context.Context, *progress.Log) error { return errors.New("Could not resolve 'deb.debian.org'") },
	}
	err := lists.Retry(t.Context(), nil, func() error { return AptFailed(errors.New("404 Not Found\nmore")) })
	assert.Equal(t, verdict.Setup, verdict.CodeOf(err))
	assert.ErrorContains(t, err, "apt-get update failed: Could not resolve 'deb.debian.org'")
	assert.ErrorContains(t, err, "(it ran because: 404 Not Found)")
}
