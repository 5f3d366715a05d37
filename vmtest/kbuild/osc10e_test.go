package kbuild

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/verdict"
)

const (
	osc10eDir      = "../../module/testdata/osc10e"
	osc10eBuggyDir = "../../module/testdata/osc10e-buggy"
)

// osc10eVariant is a copy of the OSC10e student module with one fixture's
// bug.patch applied, the way the e2e tests patch the reference module.
func osc10eVariant(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"Makefile", "pid.c"} {
		b, err := os.ReadFile(filepath.Join(osc10eDir, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o644))
	}
	patch, err := filepath.Abs(filepath.Join(osc10eBuggyDir, name, "bug.patch"))
	require.NoError(t, err)
	cmd := exec.Command("git", "apply", patch)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "applying %s: %s", patch, out)
	return dir
}

// TestOSC10eFixturesBuild builds the textbook-shaped module (a student
// Makefile that names /lib/modules/$(uname -r)/build, which kbuild's own
// make -C $KDIR M=... never runs) and its buggy variants against Debian's
// headers: the runtime bugs must build, the pre-5.14 API must not.
func TestOSC10eFixturesBuild(t *testing.T) {
	k, _ := debianKernel(t)

	fixtures, err := filepath.Glob(filepath.Join(osc10eBuggyDir, "*", "bug.patch"))
	require.NoError(t, err)
	require.NotEmpty(t, fixtures, "one folder per variant, each with a bug.patch")

	t.Run("correct", func(t *testing.T) {
		m, err := Build(t.Context(), k, osc10eDir, t.TempDir(), nil)
		require.NoError(t, err)
		assert.Equal(t, "pid", m.Name)
		assert.FileExists(t, m.Path)
		assert.Empty(t, m.Warnings, "the correct module builds without warnings at W=1")
	})

	// Every variant but the pre-5.14 one is a runtime bug: it must build
	// cleanly, or its end-to-end fixture would test the build, not the bug.
	for _, patch := range fixtures {
		name := filepath.Base(filepath.Dir(patch))
		if name == "task-state" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			m, err := Build(t.Context(), k, osc10eVariant(t, name), t.TempDir(), nil)
			require.NoError(t, err, "a runtime bug must still build")
			assert.Equal(t, "pid", m.Name)
			assert.Empty(t, m.Warnings, "warnings at W=1")
		})
	}

	t.Run("task-state", func(t *testing.T) {
		_, err := Build(t.Context(), k, osc10eVariant(t, "task-state"), t.TempDir(), nil)
		require.Error(t, err)
		assert.Equal(t, verdict.BuildFailed, verdict.CodeOf(err))
		assert.ErrorContains(t, err, "'struct task_struct' has no member named 'state'")
		assert.ErrorContains(t, err, "hint: task->state was renamed __state in Linux 5.14")
	})
}
