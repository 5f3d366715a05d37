package vmtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/verdict"
)

// clearEnv unsets every PIDLAB_* variable for the test.
func clearEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PIDLAB_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func TestCheckEnvRefusesBadValuesBeforeAnyWork(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	for _, tc := range []struct{ name, value, says string }{
		{EnvTimeout, "-5", "a timeout must be above 0"},
		{EnvTimeout, "0", "a timeout must be above 0"},
		{EnvTimeout, "-5s", "a timeout must be above 0"},
		{EnvTimeout, "0s", "a timeout must be above 0"},
		{EnvTimeout, "soon", "not a duration"},
		{EnvTestTimeout, "1.5", "not a duration"},
		{"PIDLAB_ACCEL", "xyz", "want kvm or tcg"},
		{EnvKernels, "cloud,ubuntu", `"ubuntu" is not a kernel name`},
		{EnvKernels, "cloud,rt,cloud", "names cloud twice"},
		{EnvRun, "Test[", "missing closing ]"},
		{EnvProfile, "osc11", "no built-in profile"},
		{EnvReport, filepath.Join(file, "report.json"), "is a file, not a folder"},
		{EnvJUnit, t.TempDir(), "is a folder"},
		{EnvGradeOut, file, "is a file, not a folder"},
		{EnvShard, "4/3", "not a shard k/n"},
		{EnvShard, "1", "not a shard k/n"},
		{EnvGradeVMs, "0", "not a number of VMs from 1 to 64"},
		{EnvGradescope, t.TempDir(), "is a folder"},
		{"PIDLAB_KERNEL", "fedora", "neither a kernel name"},
		{"PIDLAB_KERNEL", "/no/such/bzImage", "PIDLAB_KDIR must name the tree"},
		{"PIDLAB_KERNEL", "/no/such/bzImage PIDLAB_KDIR=" + t.TempDir(), "custom kernel: stat /no/such/bzImage"},
	} {
		clearEnv(t)
		value, kdir, _ := strings.Cut(tc.value, " PIDLAB_KDIR=")
		t.Setenv(tc.name, value)
		if kdir != "" {
			t.Setenv("PIDLAB_KDIR", kdir)
		}
		_, err := CheckEnv("..")
		if assert.Error(t, err, "%s=%q", tc.name, tc.value) {
			assert.Equal(t, verdict.Setup, verdict.CodeOf(err), "%s=%q", tc.name, tc.value)
			assert.ErrorContains(t, err, tc.says, "%s=%q", tc.name, tc.value)
			assert.ErrorContains(t, err, "fix:", "%s=%q", tc.name, tc.value)
		}
	}
}

// PIDLAB_KERNEL_PATCHES names files that must be there, for kernels that
// are built from source: every kernel of the run.
func TestCheckEnvChecksKernelPatches(t *testing.T) {
	mine := filepath.Join(t.TempDir(), "my.patch")
	require.NoError(t, os.WriteFile(mine, []byte("--- a/kernel/pid.c\n+++ b/kernel/pid.c\n"), 0o644))
	missing := filepath.Join(t.TempDir(), "missing.patch")
	for _, tc := range []struct {
		env  map[string]string
		says string // "" for good values
	}{
		{map[string]string{"PIDLAB_KERNEL": "debug"}, ""},
		{map[string]string{EnvKernels: "debug"}, ""}, // PIDLAB_KERNEL is cloud, but the run is on debug only
		{map[string]string{"PIDLAB_KERNEL": "debug", "PIDLAB_KERNEL_PATCHES": mine + ":" + missing}, "PIDLAB_KERNEL_PATCHES: open " + missing + ": no such file or directory"},
		{map[string]string{}, "PIDLAB_KERNEL_PATCHES patches the source of a kernel pidlab builds (debug), but cloud (PIDLAB_KERNEL) is not built from source"},
		{map[string]string{"PIDLAB_KERNEL": "rt"}, "but rt (PIDLAB_KERNEL) is not built from source"},
		{map[string]string{"PIDLAB_KERNEL": "debug", EnvKernels: "debug,cloud,generic"}, "but cloud, generic (PIDLAB_KERNELS) are not built from source"},
	} {
		clearEnv(t)
		t.Setenv("PIDLAB_KERNEL_PATCHES", mine)
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		_, err := CheckEnv("..")
		if tc.says == "" {
			assert.NoError(t, err, "%v", tc.env)
			continue
		}
		if assert.Error(t, err, "%v", tc.env) {
			assert.Equal(t, verdict.Setup, verdict.CodeOf(err), "%v", tc.env)
			assert.ErrorContains(t, err, tc.says, "%v", tc.env)
			assert.ErrorContains(t, err, "fix: PIDLAB_KERNEL", "%v", tc.env)
		}
	}

	// A bzImage of the user's own has no source to patch either.
	clearEnv(t)
	kdir := t.TempDir()
	image := filepath.Join(kdir, "bzImage")
	for name, text := range map[string]string{"bzImage": "MZ", "Makefile": "all:\n", "include/config/kernel.release": "6.1.0-mine\n"} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(kdir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(kdir, name), []byte(text), 0o644))
	}
	t.Setenv("PIDLAB_KERNEL", image)
	t.Setenv("PIDLAB_KDIR", kdir)
	t.Setenv("PIDLAB_KERNEL_PATCHES", mine)
	_, err := CheckEnv("..")
	assert.ErrorContains(t, err, "but "+image+" (PIDLAB_KERNEL) is not built from source")
}

func TestCheckEnvAcceptsGoodValues(t *testing.T) {
	clearEnv(t)
	for name, value := range map[string]string{
		EnvTimeout:     "900",
		EnvTestTimeout: "90s",
		"PIDLAB_ACCEL": "tcg",
		EnvKernels:     "cloud, generic ,rt",
		EnvRun:         "TestRead/state|pid",
		EnvProfile:     "osc10e",
		EnvReport:      filepath.Join(t.TempDir(), "not", "yet", "report.json"), // made when written
		EnvJUnit:       filepath.Join(t.TempDir(), "junit.xml"),
		EnvE2EDebug:    "1",
		EnvGradeOut:    filepath.Join(t.TempDir(), "grade"),
		EnvShard:       "2/3",
		EnvGradeVMs:    "2",
		EnvGradescope:  filepath.Join(t.TempDir(), "results", "results.json"),
	} {
		t.Setenv(name, value)
	}
	warnings, err := CheckEnv("..")
	assert.NoError(t, err)
	assert.Empty(t, warnings)

	c, err := ConfigFromEnv(nil, "..")
	require.NoError(t, err)
	assert.Equal(t, 900*time.Second, c.Timeout, "Timeout from seconds")
	assert.Equal(t, 90*time.Second, c.TestTimeout, "TestTimeout")
	assert.Equal(t, "osc10e", c.Profile.Name, "Profile")
}

func TestCheckEnvWarnsOfUnknownAndGuestVariables(t *testing.T) {
	clearEnv(t)
	t.Setenv("PIDLAB_KERNAL", "rt")
	t.Setenv("PIDLAB_GUEST", "1")
	warnings, err := CheckEnv("..")
	require.NoError(t, err, "a typo is a warning, the run goes on")
	require.Len(t, warnings, 2)
	assert.Contains(t, warnings[0], "PIDLAB_GUEST is set by pidlab inside the guest")
	assert.Contains(t, warnings[1], "PIDLAB_KERNAL: not a pidlab setting (a typo?)")
	assert.Contains(t, warnings[1], "PIDLAB_KERNEL, PIDLAB_KDIR, PIDLAB_KERNEL_PATCHES, PIDLAB_ACCEL", "the known ones are listed")
	assert.NotContains(t, warnings[1], "PIDLAB_PROFILE_JSON", "guest-side ones are not offered to a host user")
}

func TestCheckEnvWarnsOfAnIgnoredKDIR(t *testing.T) {
	clearEnv(t)
	t.Setenv("PIDLAB_KDIR", "/src/linux")
	warnings, err := CheckEnv("..")
	require.NoError(t, err)
	require.Len(t, warnings, 1)
	assert.Contains(t, warnings[0], "PIDLAB_KDIR is ignored")
}
