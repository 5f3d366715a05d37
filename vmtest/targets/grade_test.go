package targets

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/userspace/profile"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// One VM per CPU, as many as the free memory holds, never none.
func TestVMsAtOnce(t *testing.T) {
	assert.Equal(t, 2, vmsAtOnce(2, 24000), "2 CPUs, memory to spare")
	assert.Equal(t, 3, vmsAtOnce(16, 4000), "16 CPUs, 4 GB free: three 1.25 GB VMs")
	assert.Equal(t, 1, vmsAtOnce(8, 500), "too little memory still grades, one at a time")
	assert.Equal(t, 4, vmsAtOnce(4, 0), "free memory unknown: by the CPUs")
	assert.Positive(t, memAvailableMiB(), "read from /proc/meminfo")
}

// A check's points: the profile's, 0 for a check it leaves out, and a
// name the grade does not have is refused with the names it has.
func TestClassPoints(t *testing.T) {
	planned := []string{"module builds", "TestEntryMode", "TestEOF", "kernel stays clean"}
	osc := &profile.Profile{Name: "course", Points: map[string]float64{"TestEOF": 3}} // no checks named: every one but the opt-in ones
	points, err := classPoints(osc, planned)
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"TestEOF": 3, "TestEntryMode": 0}, points, "the opt-in entry-mode check is left out: worth nothing")

	for _, bad := range []string{"TestEof", "TestEntryMode"} {
		_, err = classPoints(&profile.Profile{Name: "course", Points: map[string]float64{bad: 2}}, planned)
		assert.Equal(t, int(verdict.Setup), int(verdict.CodeOf(err)))
		assert.ErrorContains(t, err, `[points] names "`+bad+`", not a check this profile grades (its checks: module builds, TestEOF, kernel stays clean)`)
	}
}

// grade:merge takes folders and patterns in one argument (mage passes
// one), each folder once; a pattern that matches nothing is an error.
func TestShardFolders(t *testing.T) {
	dir := t.TempDir()
	for _, s := range []string{"shard-1", "shard-2", "shard-3"} {
		require.NoError(t, os.Mkdir(filepath.Join(dir, s), 0o755))
	}
	got, err := shardFolders(filepath.Join(dir, "shard-*") + "," + filepath.Join(dir, "shard-1"))
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(dir, "shard-1"), filepath.Join(dir, "shard-2"), filepath.Join(dir, "shard-3")}, got)
	_, err = shardFolders(filepath.Join(dir, "out-*"))
	assert.ErrorContains(t, err, "no such shard output folder")
	_, err = shardFolders(" , ")
	assert.ErrorContains(t, err, "no shard output folder given")
}

// A grade of a folder with nothing to grade, or on a kernel matrix, is a
// setup error before any download.
func TestGradeRefusesBeforeAnyWork(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	o, _ := testOptions(t)
	err := Grade(t.Context(), o, t.TempDir())
	assert.Equal(t, int(verdict.Setup), exitStatus(t, err))
	assert.ErrorContains(t, err, "holds no submission")

	t.Setenv("PIDLAB_KERNELS", "cloud,rt")
	err = Grade(t.Context(), o, t.TempDir())
	assert.Equal(t, int(verdict.Setup), exitStatus(t, err))
	assert.ErrorContains(t, err, "a grade validates on one kernel")

	t.Setenv("PIDLAB_KERNELS", "")
	t.Setenv("PIDLAB_SHARD", "4/3")
	err = Grade(t.Context(), o, t.TempDir())
	assert.Equal(t, int(verdict.Setup), exitStatus(t, err))
	assert.ErrorContains(t, err, "PIDLAB_SHARD")
	entries, _ := os.ReadDir(cache)
	assert.Empty(t, entries, "the cache is untouched")
}
