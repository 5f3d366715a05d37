package lockeddir

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRemoveStaleKeepsHeldFolders(t *testing.T) {
	parent := t.TempDir()
	held, err := Make(parent, "pidlab-vm-")
	require.NoError(t, err)
	defer held.Remove()
	removed, err := RemoveStale(parent, "pidlab-vm-", 0)
	require.NoError(t, err)
	assert.Empty(t, removed, "folders removed while their maker holds them")
	assert.DirExists(t, held.Path, "the held folder")

	require.NoError(t, held.Remove())
	assert.NoDirExists(t, held.Path, "the folder after Remove")
	assert.NoError(t, held.Remove(), "a second Remove")
}

// A folder whose maker was killed with SIGKILL: locked by a process (a
// shell's flock(1) on fd 9, kept by the sleep it becomes) that is then
// killed.
func TestRemoveStaleRemovesAKilledRunsFolder(t *testing.T) {
	parent := t.TempDir()
	dead := filepath.Join(parent, "pidlab-vm-123")
	require.NoError(t, os.MkdirAll(filepath.Join(dead, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dead, "sub", "results.sock"), nil, 0o644))
	holder := exec.Command("sh", "-c", `exec 9<"$1" && flock -n 9 && exec sleep 60`, "sh", dead)
	require.NoError(t, holder.Start())
	defer holder.Process.Kill()
	old := time.Now().Add(-time.Hour)
	require.NoError(t, os.Chtimes(dead, old, old))
	require.Eventually(t, func() bool { return lockHeld(dead) }, 5*time.Second, 20*time.Millisecond, "flock(1) holds %s", dead)

	removed, err := RemoveStale(parent, "pidlab-vm-", time.Minute)
	require.NoError(t, err)
	assert.Empty(t, removed, "removed while another process holds it")

	require.NoError(t, holder.Process.Kill())
	holder.Wait()
	removed, err = RemoveStale(parent, "pidlab-vm-", time.Minute)
	require.NoError(t, err)
	assert.Equal(t, []string{dead}, removed, "removed once its holder was killed")
	assert.NoDirExists(t, dead, "the killed run's folder")
}

func TestRemoveStaleLeavesYoungAndOtherFolders(t *testing.T) {
	parent := t.TempDir()
	young := filepath.Join(parent, "pidlab-vm-young")
	other := filepath.Join(parent, "other-old")
	for _, d := range []string{young, other} {
		require.NoError(t, os.Mkdir(d, 0o755))
	}
	old := time.Now().Add(-time.Hour)
	require.NoError(t, os.Chtimes(other, old, old))
	removed, err := RemoveStale(parent, "pidlab-vm-", time.Minute)
	require.NoError(t, err)
	assert.Empty(t, removed, "removed")
	assert.DirExists(t, young, "a folder younger than minAge: its maker may not have locked it yet")
	assert.DirExists(t, other, "a folder without the prefix")
}

func lockHeld(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return flockNB(f) != nil
}
