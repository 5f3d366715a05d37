package initramfs

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/u-root/mkuimage/cpio"

	"github.com/pidlab/pidlab/userspace/guestapi"
)

func TestOverlayAppendsFilesAndManifestAsASecondArchive(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.cpio")
	writeArchive(t, base, cpio.StaticFile("init", "odd length", 0o755), cpio.StaticFile("pidlab/manifest.json", "{}", 0o644))
	ko := filepath.Join(dir, "x.ko")
	require.NoError(t, os.WriteFile(ko, []byte("module"), 0o644))
	suite := filepath.Join(dir, "x.test")
	require.NoError(t, os.WriteFile(suite, []byte("ELF"), 0o755))
	m := guestapi.Manifest{Modules: []guestapi.ModuleRun{{Name: "x", Module: "/pidlab/module/x.ko", ModuleName: "x"}}, Shell: true}
	files := []File{{Host: ko, Guest: m.Modules[0].Module}, {Host: suite, Guest: "/pidlab/x.test"}}
	cache := t.TempDir()

	out, err := Overlay(base, files, m, cache, t.Logf)
	require.NoError(t, err)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	baseBytes, err := os.ReadFile(base)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(got, baseBytes), "the overlay starts with base, unchanged")
	second := got[(len(baseBytes)+3)/4*4:]
	require.True(t, bytes.HasPrefix(second, []byte("070701")), "the second archive starts on a 4-byte boundary")

	records := readArchive(t, writeTemp(t, second))
	assert.Equal(t, "module", records["pidlab/module/x.ko"])
	assert.Contains(t, records, "pidlab/module", "the .ko's directory comes before it")
	modes := archiveModes(t, writeTemp(t, second))
	assert.Equal(t, uint64(cpio.S_IFREG|0o644), modes["pidlab/module/x.ko"])
	assert.Equal(t, uint64(cpio.S_IFREG|0o755), modes["pidlab/x.test"], "a test binary stays executable")
	var gotM guestapi.Manifest
	require.NoError(t, json.Unmarshal([]byte(records["pidlab/manifest.json"]), &gotM))
	assert.Equal(t, m, gotM, "the manifest replaces base's")

	again, err := Overlay(base, files, m, cache, t.Logf)
	require.NoError(t, err)
	assert.Equal(t, out, again, "same content reuses the archive")
	require.NoError(t, os.WriteFile(ko, []byte("changed"), 0o644))
	changed, err := Overlay(base, files, m, cache, t.Logf)
	require.NoError(t, err)
	assert.NotEqual(t, out, changed, "a changed .ko makes a new archive")
}

func writeArchive(t *testing.T, path string, recs ...cpio.Record) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	w := cpio.Newc.Writer(f)
	require.NoError(t, cpio.WriteRecords(w, recs))
	require.NoError(t, cpio.WriteTrailer(w))
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "archive.cpio")
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}

// archiveModes maps each record's name to its mode.
func archiveModes(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	modes := map[string]uint64{}
	for _, r := range archiveRecords(t, path) {
		modes[r.Name] = r.Mode
	}
	return modes
}
