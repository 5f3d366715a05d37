package vmtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/progress"
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

// The last lines of a go tool mage test of several modules: every test of
// every module counted, and the runs that did not pass named.
func TestTotalCountsEveryModule(t *testing.T) {
	var procpid, hello guestTests
	procpid.pass("TestEntryExists", "TestRecordFields")
	hello.run("TestEntryReadsHello")
	hello.end("TestEntryReadsHello", verdict.Failed)
	var out strings.Builder
	PrintTotal(&progress.Log{W: &out}, "2 modules", []KernelRun{
		{Module: "procpid", Name: "cloud", Result: &Result{Tests: procpid.tests.Results}},
		{Module: "hello", Name: "cloud", Result: &Result{Tests: hello.tests.Results}, Err: verdict.Errorf(verdict.TestFailed, "1 test failed")},
		{Module: "exitmon", Name: "cloud", Err: verdict.Errorf(verdict.BuildFailed, "exitmon.c:3: error")},
	})
	assert.Equal(t, "total, 2 modules: 2 passed, 1 failed\ndid not pass: hello on cloud (test failed), exitmon on cloud (build failed)\n", out.String())
}
