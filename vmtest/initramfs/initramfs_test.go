package initramfs

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/u-root/mkuimage/cpio"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/vmtest/progress"
)

func TestBuildHoldsInitRunnerAndFilesAndIsCached(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Go commands for the guest (~20 s cold)")
	}
	repo, err := filepath.Abs("../..")
	require.NoError(t, err)
	payload := filepath.Join(t.TempDir(), "payload")
	require.NoError(t, os.WriteFile(payload, []byte("hello"), 0o644))
	spec := Spec{
		RepoDir:  repo,
		Files:    []File{{Host: payload, Guest: "/pidlab/payload"}},
		Manifest: guestapi.Manifest{Modules: []guestapi.ModuleRun{{Name: "x", Module: "/pidlab/x.ko", ModuleName: "x"}}},
	}
	cache := t.TempDir()

	path, cached, err := Build(t.Context(), spec, cache, nil)
	require.NoError(t, err)
	assert.False(t, cached, "first build")

	records := readArchive(t, path)
	for _, name := range []string{"init", "bin/uinit", "bin/init", "bin/pidlab-guest", "pidlab/payload", "pidlab/manifest.json"} {
		assert.Contains(t, records, name)
	}
	assert.Equal(t, "hello", records["pidlab/payload"])

	again, cached, err := Build(t.Context(), spec, cache, nil)
	require.NoError(t, err)
	assert.True(t, cached, "same content must reuse the archive")
	assert.Equal(t, path, again)

	require.NoError(t, os.WriteFile(payload, []byte("changed"), 0o644))
	changed, cached, err := Build(t.Context(), spec, cache, nil)
	require.NoError(t, err)
	assert.False(t, cached, "changed content must rebuild")
	assert.NotEqual(t, path, changed)

	require.NoError(t, os.Truncate(changed, 4096)) // a run killed while copying, a full disk
	var said strings.Builder
	rebuilt, cached, err := Build(t.Context(), spec, cache, &progress.Log{W: &said})
	require.NoError(t, err)
	assert.False(t, cached, "a damaged archive is not reused")
	assert.Equal(t, changed, rebuilt)
	assert.Contains(t, said.String(), "cache: "+changed+" is damaged: 4096 bytes")
	assert.Equal(t, "changed", readArchive(t, rebuilt)["pidlab/payload"], "built again whole")
}

// readArchive maps each record name to its content (symlink targets for links).
func readArchive(t *testing.T, path string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, r := range archiveRecords(t, path) {
		b, err := io.ReadAll(io.NewSectionReader(r, 0, int64(r.FileSize)))
		require.NoError(t, err)
		m[r.Name] = string(b)
	}
	return m
}

// archiveRecords reads every record of the archive at path.
func archiveRecords(t *testing.T, path string) []cpio.Record {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() }) // the records read from it
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(f))
	require.NoError(t, err)
	return recs
}

// The archive's key hashes the runner's sources from a fixed list: every
// package of this repository that the runner and init are built from must
// be on it, or a change to one would reuse a stale archive.
func TestKeyCoversEveryRepoPackageTheRunnerUses(t *testing.T) {
	repo, err := filepath.Abs("../..")
	require.NoError(t, err)
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}} {{.Dir}}{{end}}", RunnerCmd, InitCmd).Output()
	require.NoError(t, err)
	srcs, err := runnerSources(repo)
	require.NoError(t, err)
	covered := map[string]bool{}
	for _, s := range srcs {
		covered[filepath.Dir(s)] = true
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, dir, _ := strings.Cut(line, " ")
		if strings.HasPrefix(pkg, "github.com/pidlab/pidlab/") {
			assert.True(t, covered[dir], "the key does not hash %s (%s)", pkg, dir)
		}
	}
}
