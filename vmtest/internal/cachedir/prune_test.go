package cachedir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// put writes size bytes at dir/rel, last used age before now.
func put(t *testing.T, dir, rel string, size int, now time.Time, age time.Duration) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(strings.Repeat("x", size)), 0o644))
	when := now.Add(-age)
	require.NoError(t, os.Chtimes(p, when, when))
	if filepath.Dir(rel) != "." && strings.Count(rel, "/") > 1 { // date the entry's folder too
		require.NoError(t, os.Chtimes(filepath.Dir(p), when, when))
	}
	return p
}

func TestPruneKeepsTheBudget(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	day := 24 * time.Hour
	b := Budget{Runs: 2, Builds: 3000, Unused: 14 * day, Recent: time.Hour, Leftover: day}

	for _, run := range []string{"20261130-090000-1", "20261201-100000-2", "20261201-110000-3"} {
		put(t, dir, "runs/"+run+"/console.log", 10, now, 2*time.Hour)
	}
	// The oldest run's name, but still writing its console: a long debug run.
	live := put(t, dir, "runs/20261130-080000-0/console.log", 10, now, time.Minute)
	failedLog := put(t, dir, "kernels/debug-0123456789abcdef.failed.log", 10, now, 2*day)
	// Builds, newest first: 1000 bytes each plus a seal; the budget holds two.
	fresh := put(t, dir, "initramfs/aaaa.cpio", 1000, now, time.Minute)
	put(t, dir, "initramfs/aaaa.cpio.sum", 10, now, time.Minute)
	ko := put(t, dir, "modules/k1/procpid.ko", 1000, now, day)
	lru := put(t, dir, "guestbin/conformance-1234.test", 1000, now, 2*day)
	put(t, dir, "guestbin/conformance-1234.test.sum", 10, now, 2*day)
	stale := put(t, dir, "initramfs/bbbb.cpio", 10, now, 30*day) // small, but unused for a month
	// Leftovers of interrupted runs: an old one goes, one being made now stays.
	oldTmp := put(t, dir, "initramfs/.build-123/initramfs.cpio", 10, now, 2*day)
	newTmp := put(t, dir, "modules/k2.tmp-55/procpid.ko", 10, now, time.Minute)
	// Kernels: the newer cloud tree was used today, the older one a month ago;
	// the only rt tree stays however old.
	cloudNew := put(t, dir, "kernels/6.1.0-57-cloud-amd64/.pidlab-ready", 1, now, time.Minute)
	cloudOld := put(t, dir, "kernels/6.1.0-48-cloud-amd64/.pidlab-ready", 1, now, 30*day)
	rt := put(t, dir, "kernels/6.1.0-48-rt-amd64/.pidlab-ready", 1, now, 60*day)
	debugOld := put(t, dir, "kernels/debug-0123456789abcdef/.pidlab-ready", 1, now, 20*day)
	debugNew := put(t, dir, "kernels/debug-fedcba9876543210/.pidlab-ready", 1, now, day)

	p := Prune(dir, b, now)

	runs, err := filepath.Glob(filepath.Join(dir, "runs/*"))
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(dir, "runs/20261130-080000-0"), filepath.Join(dir, "runs/20261201-100000-2"), filepath.Join(dir, "runs/20261201-110000-3")}, runs, "the newest runs, and a live one")
	assert.FileExists(t, live)
	assert.NoFileExists(t, failedLog, "a failed build's log, a day old")
	assert.FileExists(t, fresh)
	assert.FileExists(t, ko)
	assert.NoFileExists(t, lru, "least recently used, beyond the size budget")
	assert.NoFileExists(t, lru+".sum", "with its seal")
	assert.NoFileExists(t, stale, "unused for longer than the budget allows")
	assert.NoDirExists(t, filepath.Dir(oldTmp))
	assert.FileExists(t, newTmp, "a run may be making it now")
	assert.FileExists(t, cloudNew)
	assert.NoDirExists(t, filepath.Dir(cloudOld), "superseded and unused")
	assert.FileExists(t, rt, "the only one of its flavour")
	assert.NoDirExists(t, filepath.Dir(debugOld), "superseded and unused")
	assert.FileExists(t, debugNew)
	assert.Equal(t, 7, p.Entries, "runs 1, builds 2, leftovers 2, kernels 2: %+v", p)
	assert.Positive(t, p.Bytes)
}

func TestPruneNeverTakesWhatARunJustUsed(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	used := put(t, dir, "initramfs/big.cpio", 5000, now, time.Minute)
	Prune(dir, Budget{Builds: 100, Unused: time.Hour, Recent: time.Hour, Leftover: time.Hour}, now)
	assert.FileExists(t, used, "over the size budget, but used a minute ago")
}

func TestCleanKeepsKernelsUnlessAsked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pidlab")
	now := time.Now()
	k := put(t, dir, "kernels/6.1.0-57-cloud-amd64/.pidlab-ready", 1, now, 0)
	b := put(t, dir, "initramfs/a.cpio", 1, now, 0)
	r := put(t, dir, "runs/1/console.log", 1, now, 0)
	require.NoError(t, Clean(dir, false))
	assert.FileExists(t, k)
	assert.NoFileExists(t, b)
	assert.NoFileExists(t, r)
	require.NoError(t, Clean(dir, true))
	assert.NoDirExists(t, dir)
	assert.NoError(t, Clean(dir, false), "nothing to clean")
}
