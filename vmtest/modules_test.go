package vmtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/verdict"
)

// A module is a folder of module/ with a manifest; a folder without one
// (testdata, a student's module) is not run by go tool mage test.
func TestModulesAreTheFoldersWithAManifest(t *testing.T) {
	repo := t.TempDir()
	for _, dir := range []string{"module/procpid", "module/exitmon", "module/testdata/osc10e"} {
		require.NoError(t, os.MkdirAll(filepath.Join(repo, dir), 0o755))
	}
	for _, m := range []string{"module/procpid/pidlab.toml", "module/exitmon/pidlab.toml"} {
		require.NoError(t, os.WriteFile(filepath.Join(repo, m), nil, 0o644))
	}
	t.Setenv(EnvModules, "")
	dirs, err := Modules(repo)
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(repo, "module/exitmon"), filepath.Join(repo, "module/procpid")}, dirs)

	t.Setenv(EnvModules, "procpid")
	dirs, err = Modules(repo)
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(repo, "module/procpid")}, dirs)

	t.Setenv(EnvModules, "procpid,taskpeek")
	_, err = Modules(repo)
	assert.Equal(t, verdict.Setup, verdict.CodeOf(err))
	assert.ErrorContains(t, err, "no module folder module/taskpeek")
	assert.ErrorContains(t, err, "PIDLAB_MODULES=exitmon,procpid", "the fix names the modules there are")

	t.Setenv(EnvModules, "")
	_, err = Modules(t.TempDir())
	assert.ErrorContains(t, err, "has no module folder")
}

func TestReportsOfSeveralModulesAreApart(t *testing.T) {
	assert.Equal(t, "/out/report-procpid.json", tagged("/out/report.json", "procpid"))
	assert.Equal(t, "/out/report.json", tagged("/out/report.json", ""))
	assert.Equal(t, "", tagged("", "procpid"))
}
