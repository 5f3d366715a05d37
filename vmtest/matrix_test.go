package vmtest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/report"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

func TestWorst(t *testing.T) {
	// The README's order, most severe first.
	bySeverity := []verdict.Code{verdict.Interrupted, verdict.Setup, verdict.BuildFailed, verdict.KernelTrouble, verdict.Timeout, verdict.TestFailed, verdict.Pass}
	for i, worse := range bySeverity {
		for _, better := range bySeverity[i:] {
			assert.Equal(t, worse, Worst(worse, better), "%s over %s", worse, better)
			assert.Equal(t, worse, Worst(better, worse), "%s over %s, in either order", worse, better)
		}
	}
	assert.Equal(t, verdict.Timeout, Worst(verdict.Pass, verdict.TestFailed, verdict.Timeout, verdict.TestFailed))
	assert.Equal(t, verdict.Pass, Worst(), "no run, nothing failed")
}

func TestReport(t *testing.T) {
	var g guestTests
	g.pass("TestEntryExists")
	passed, passErr := decided(&Result{GuestKernel: "6.1.0-56-cloud-amd64", Tests: g.tests.Results,
		Observations: verdict.Observations{RunnerStarted: true, Done: true}})
	require.NoError(t, passErr)
	hung, hangErr := decided(&Result{Observations: verdict.Observations{RunnerStarted: true, Stopped: "the guest did not start the test runner within 1m30s"}})
	require.Error(t, hangErr)
	const mod, dir = "osc-static-eof-flag", "/tmp/osc-static-eof-flag"
	r := Report(Config{}, []KernelRun{
		{Module: mod, ModuleDir: dir, Name: "cloud", Result: passed, Err: passErr},
		{Module: mod, ModuleDir: dir, Name: "generic", Result: hung, Err: hangErr},
		{Module: mod, ModuleDir: dir, Name: "rt", Err: verdict.Errorf(verdict.BuildFailed, "pid.c:61:22: error: no member named 'state'")},
	})
	assert.Equal(t, report.Schema, r.Schema)
	assert.Equal(t, DefaultProfile, r.Profile, "the profile when none is set")
	assert.Equal(t, int(verdict.BuildFailed), r.ExitCode, "a build failure outranks a timeout")
	require.Len(t, r.Runs, 3)
	for i, want := range []struct {
		kernel  string
		code    verdict.Code
		outcome string
	}{{"cloud", verdict.Pass, "pass"}, {"generic", verdict.Timeout, "timeout"}, {"rt", verdict.BuildFailed, "build failed"}} {
		assert.Equal(t, want.kernel, r.Runs[i].Kernel, "runs in the matrix's order")
		assert.Equal(t, int(want.code), r.Runs[i].ExitCode, want.kernel)
		assert.Equal(t, want.outcome, r.Runs[i].Outcome, want.kernel)
		assert.Equal(t, "osc-static-eof-flag", r.Runs[i].Module, want.kernel)
		assert.Equal(t, "/tmp/osc-static-eof-flag", r.Runs[i].ModuleDir, want.kernel)
		for _, c := range r.Runs[i].Checks {
			assert.Equal(t, "osc-static-eof-flag", c.Module, "%s: %s", want.kernel, c.Name)
		}
	}
}

// go tool mage test of several modules writes one report: every module's
// runs, the most severe code.
func TestCombinedReportHoldsEveryModule(t *testing.T) {
	procpid := Report(Config{}, []KernelRun{{Module: "procpid", ModuleDir: "/repo/module/procpid", Name: "cloud"}})
	hello := Report(Config{}, []KernelRun{
		{Module: "hello", ModuleDir: "/repo/module/hello", Name: "cloud", Err: verdict.Errorf(verdict.BuildFailed, "hello.c:3: error")}})
	all := Combine(procpid, hello)
	require.Len(t, all.Runs, 2)
	assert.Equal(t, []string{"procpid", "hello"}, []string{all.Runs[0].Module, all.Runs[1].Module})
	assert.Equal(t, int(verdict.BuildFailed), all.ExitCode)
	assert.Equal(t, DefaultProfile, all.Profile)
	assert.Equal(t, int(verdict.Pass), Combine(procpid).ExitCode)
}

func TestKernelsFromEnv(t *testing.T) {
	cloud := Config{Kernel: kernel.Selection{Flavour: "cloud"}}
	for _, tc := range []struct {
		env  string
		c    Config
		want []string
	}{
		{"", cloud, []string{"cloud"}},
		{"", Config{Kernel: kernel.Selection{Flavour: "rt"}}, []string{"rt"}},
		{"", Config{Kernel: kernel.Selection{Image: "/src/linux/arch/x86/boot/bzImage", KDIR: "/src/linux"}}, []string{"/src/linux/arch/x86/boot/bzImage"}},
		{"rt", cloud, []string{"rt"}},
		{"cloud,generic,rt", cloud, []string{"cloud", "generic", "rt"}},
		{" cloud , debug ,", cloud, []string{"cloud", "debug"}},
		{"rt,,cloud", cloud, []string{"rt", "cloud"}},
	} {
		t.Setenv(EnvKernels, tc.env)
		got, err := KernelsFromEnv(tc.c)
		if assert.NoError(t, err, "%s=%q", EnvKernels, tc.env) {
			assert.Equal(t, tc.want, got, "%s=%q", EnvKernels, tc.env)
		}
	}
	for env, says := range map[string]string{
		"cloud,ubuntu":                     `"ubuntu" is not a kernel name`,
		"Cloud":                            `"Cloud" is not a kernel name`,
		"cloud,/boot/vmlinuz-6.8.0":        `"/boot/vmlinuz-6.8.0" is not a kernel name`,
		"/src/linux/arch/x86/boot/bzImage": "a bzImage goes in PIDLAB_KERNEL",
		",":                                "names no kernel",
		" ":                                "names no kernel",
	} {
		t.Setenv(EnvKernels, env)
		got, err := KernelsFromEnv(cloud)
		assert.Nil(t, got, "%s=%q", EnvKernels, env)
		if assert.Error(t, err, "%s=%q", EnvKernels, env) {
			assert.Equal(t, verdict.Setup, verdict.CodeOf(err), "%s=%q", EnvKernels, env)
			assert.ErrorContains(t, err, says, "%s=%q", EnvKernels, env)
		}
	}
}

// Each kernel of a matrix gets the run's patches (PIDLAB_KERNEL_PATCHES);
// the run's own kernel stays as selected, a custom image with its KDIR.
func TestKernelSelectionKeepsThePatches(t *testing.T) {
	patches := []string{"my.patch"}
	sel := kernel.Selection{Flavour: "cloud", Patches: patches}
	assert.Equal(t, kernel.Selection{Flavour: "debug", Patches: patches}, kernelSelection(sel, "debug"))
	custom := kernel.Selection{Image: "/src/linux/arch/x86/boot/bzImage", KDIR: "/src/linux"}
	assert.Equal(t, custom, kernelSelection(custom, "/src/linux/arch/x86/boot/bzImage"))
	assert.Equal(t, kernel.Selection{Flavour: "rt"}, kernelSelection(custom, "rt"))
}

func TestWriteReports(t *testing.T) {
	r := report.Report{Schema: report.Schema, Profile: "osc10e", ExitCode: 1,
		Runs: []report.Run{{Module: "m", ModuleDir: "/m", Kernel: "cloud", ExitCode: 1, Outcome: "test failed",
			Checks: []report.Check{{Name: "TestSmallReadsAreNotOverrun", Verdict: report.Fail, Got: `"comm"`}}}}}

	t.Run("both", func(t *testing.T) {
		dir := t.TempDir()
		jsonPath, junitPath := filepath.Join(dir, "pidlab-report.json"), filepath.Join(dir, "pidlab-junit.xml")
		t.Setenv(EnvReport, jsonPath)
		t.Setenv(EnvJUnit, junitPath)
		var out bytes.Buffer
		require.NoError(t, WriteReports(Config{Log: &progress.Log{W: &out}}, r))

		b, err := os.ReadFile(jsonPath)
		require.NoError(t, err)
		var back report.Report
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, r, back, "the JSON report holds the report")

		b, err = os.ReadFile(junitPath)
		require.NoError(t, err)
		var suites struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
		}
		require.NoError(t, xml.Unmarshal(b, &suites))
		assert.Equal(t, 1, suites.Tests)
		assert.Equal(t, 1, suites.Failures)
		assert.Contains(t, out.String(), "JSON report: "+jsonPath)
		assert.Contains(t, out.String(), "JUnit XML: "+junitPath)
	})

	t.Run("one", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv(EnvReport, "")
		t.Setenv(EnvJUnit, filepath.Join(dir, "junit.xml"))
		require.NoError(t, WriteReports(Config{}, r))
		files, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Len(t, files, 1)
		assert.Equal(t, "junit.xml", files[0].Name())
	})

	t.Run("a missing folder is made", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "out", "report.json")
		t.Setenv(EnvReport, path)
		t.Setenv(EnvJUnit, "")
		require.NoError(t, WriteReports(Config{}, r))
		assert.FileExists(t, path)
	})

	t.Run("none", func(t *testing.T) {
		dir := t.TempDir()
		t.Chdir(dir)
		t.Setenv(EnvReport, "")
		t.Setenv(EnvJUnit, "")
		require.NoError(t, WriteReports(Config{}, r))
		files, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Empty(t, files, "nothing written when neither is set")
	})

	t.Run("unwritable", func(t *testing.T) {
		for _, env := range []string{EnvReport, EnvJUnit} {
			t.Setenv(EnvReport, "")
			t.Setenv(EnvJUnit, "")
			file := filepath.Join(t.TempDir(), "a-file")
			require.NoError(t, os.WriteFile(file, nil, 0o644))
			t.Setenv(env, filepath.Join(file, "report"))
			err := WriteReports(Config{}, r)
			if assert.Error(t, err, env) {
				assert.Equal(t, verdict.Setup, verdict.CodeOf(err), env)
				assert.ErrorContains(t, err, env+": ")
			}
		}
	})
}
