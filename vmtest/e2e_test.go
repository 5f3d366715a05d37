package vmtest

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/userspace/profile"
	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/profiles"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/report"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// These tests boot real VMs (about 30 s each under TCG): the end-to-end
// proof that a conforming module passes and broken ones are caught.

// e2eKernels are the kernels the reference module must pass on and the
// fixtures are judged on: the stock one, and with PIDLAB_E2E_DEBUG=1 the
// debug one that catches what the stock one hides.
func e2eKernels(t *testing.T) []string {
	if os.Getenv(EnvE2EDebug) == "1" {
		return []string{"cloud", "debug"}
	}
	t.Logf("debug kernel runs skipped: set %s=1 to build (once, ~10 min) and test on it", EnvE2EDebug)
	return []string{"cloud"}
}

// TestReferenceModuleConforms runs every module of module/ in one boot
// per kernel, as go tool mage test does: each must pass. (CI skips it: its
// go tool mage test runs are these runs.)
func TestReferenceModuleConforms(t *testing.T) {
	dirs, err := Modules(repoPath(t))
	require.NoError(t, err)
	for _, k := range e2eKernels(t) {
		t.Run(k, func(t *testing.T) {
			c := e2eConfig(t, "", k)
			for _, r := range RunKernels(t.Context(), c, dirs, []string{k}) {
				require.NoError(t, r.Err, "module %s must pass", r.Module)
				res := r.Result
				assert.Positive(t, countOutcome(res, verdict.Passed), "%s: guest tests passed", r.Module)
				assert.Zero(t, countOutcome(res, verdict.Failed), "%s: guest tests failed", r.Module)
				assert.Empty(t, res.Observations.Troubles, "%s: kernel reports on the console", r.Module)
				t.Logf("%s on %s (%s): boot to first test %s, VM %s", r.Module, res.GuestKernel, res.Accel, res.BootToFirstTest, res.VMTime)
			}
		})
	}
}

// want is a buggy fixture's expected verdict on one kernel; want.json maps
// kernel names to it. A bug the stock kernel hides says so with exit 0.
type want struct {
	Exit int      `json:"exit"`
	Says []string `json:"says"` // the verdict's message names the cause
	Hint string   `json:"hint"` // a check of the validation's report carries a hint saying this
	// Hints are more hints the report must carry, each in some check.
	Hints []string `json:"hints"`
	// Run is a -test.run pattern: the guest tests that catch the bug,
	// when the module's whole suite is too long to run for each fixture.
	Run string `json:"run"`
}

// readWants reads a fixture's want.json.
func readWants(t *testing.T, dir string) map[string]want {
	t.Helper()
	var wants map[string]want
	b, err := os.ReadFile(filepath.Join(dir, "want.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &wants))
	require.NotEmpty(t, wants)
	return wants
}

// check holds a fixture's run on kernel k to what w wants.
func (w want) check(t *testing.T, k string, res *Result, err error) {
	t.Helper()
	assert.Equal(t, w.Exit, int(verdict.CodeOf(err)), "exit code; verdict: %v", err)
	for _, s := range w.Says {
		assert.ErrorContains(t, err, s, "the verdict names the cause")
	}
	for _, h := range append([]string{w.Hint}, w.Hints...) {
		if h != "" {
			assertHinted(t, RunReport(k, res, err), h)
		}
	}
}

// TestBrokenModulesAreCaught runs every module's buggy fixtures
// (module/<name>/testdata/buggy/<bug>/): each must get its verdict.
func TestBrokenModulesAreCaught(t *testing.T) {
	fixtures, err := filepath.Glob(repoPath(t, "module/*/testdata/buggy/*/bug.patch"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(fixtures), 8)
	kernels := e2eKernels(t)
	for _, patch := range fixtures {
		dir := filepath.Dir(patch)
		module := filepath.Dir(filepath.Dir(filepath.Dir(dir)))
		t.Run(filepath.Base(module)+"/"+filepath.Base(dir), func(t *testing.T) {
			wants := readWants(t, dir)
			src := patchedModule(t, module, patch)
			for _, k := range kernels {
				w, ok := wants[k]
				if !ok {
					continue
				}
				t.Run(k, func(t *testing.T) {
					c := e2eConfig(t, src, k)
					c.TestRun = w.Run
					if w.Exit == int(verdict.Timeout) {
						// A fixture that hangs waits out the per-test limit: a short
						// one, still well above the slowest real test on a stock
						// kernel (~12 s on a busy host), and scaled on a slower one.
						c.TestTimeout = 45 * time.Second
					}
					res, err := Run(t.Context(), c)
					w.check(t, k, res, err)
				})
			}
		})
	}
}

// TestBrokenKernelPatchesAreCaught runs a module on a kernel with a buggy
// patch of its own (module/<name>/testdata/buggy-kernel/<bug>/kernel.patch,
// applied after the debug kernel's patches, as PIDLAB_KERNEL_PATCHES
// does): each must get its verdict. Only with the debug kernel, which
// carries pidlab's system calls: each such kernel is built from a copy of
// it, minutes rather than a whole build.
func TestBrokenKernelPatchesAreCaught(t *testing.T) {
	if os.Getenv(EnvE2EDebug) != "1" {
		t.Skipf("builds on the debug kernel: set %s=1", EnvE2EDebug)
	}
	fixtures, err := filepath.Glob(repoPath(t, "module/*/testdata/buggy-kernel/*/kernel.patch"))
	require.NoError(t, err)
	require.NotEmpty(t, fixtures)
	for _, patch := range fixtures {
		dir := filepath.Dir(patch)
		module := filepath.Dir(filepath.Dir(filepath.Dir(dir)))
		t.Run(filepath.Base(module)+"/"+filepath.Base(dir), func(t *testing.T) {
			w, ok := readWants(t, dir)[kernel.DebugName]
			require.True(t, ok, "want.json has the debug kernel's verdict")
			c := e2eConfig(t, module, kernel.DebugName)
			c.Kernel.Patches = []string{patch}
			c.TestRun = w.Run
			res, err := Run(t.Context(), c)
			w.check(t, kernel.DebugName, res, err)
		})
	}
}

// TestAModuleIsAFolder runs a module no code of vmtest names: its folder,
// module/testdata/hello, holds its source, its manifest and its guest
// suite. It runs with procpid as go tool mage test runs every module, into
// one report; its fixture's bug fails the suite's check with the failure
// the suite recorded.
func TestAModuleIsAFolder(t *testing.T) {
	dir := repoPath(t, "module/testdata/hello")
	c := e2eConfig(t, "", kernel.DefaultFlavour)
	var out bytes.Buffer
	c.Log = &progress.Log{W: io.MultiWriter(&out, testWriter{t})}
	c.TestRun = "^TestEntry(Exists|ReadsHello)$"
	rep, runs := RunModules(t.Context(), c, []string{repoPath(t, "module/procpid"), dir}, []string{kernel.DefaultFlavour})
	assert.Equal(t, int(verdict.Pass), rep.ExitCode, "both modules pass; the output:\n%s", out.String())
	require.Len(t, rep.Runs, 2, "a run per module")
	for i, m := range []struct{ name, test string }{{"procpid", "TestEntryExists"}, {"hello", "TestEntryReadsHello"}} {
		run := rep.Runs[i]
		assert.Equal(t, m.name, run.Module)
		checkNamed(t, run, m.test)
		for _, c := range run.Checks {
			assert.Equal(t, m.name, c.Module, "check %s names its module", c.Name)
			assert.Equal(t, report.Pass, c.Verdict, "%s: %s", m.name, c.Name)
		}
	}
	assert.Equal(t, "pidlab_hello", runs[1].Result.Module.Name)
	assert.Contains(t, out.String(), "total, 2 modules: 2 passed, 0 failed")
	assert.Equal(t, 1, strings.Count(out.String(), "==> booting "), "one boot for both modules; the output:\n%s", out.String())
	assert.Contains(t, out.String(), "with modules procpid, pidlab_hello")
	assert.Equal(t, runs[0].Result.ConsolePath, runs[1].Result.ConsolePath, "one VM, one console")

	fixture := filepath.Join(dir, "testdata", "says-hallo")
	w := readWants(t, fixture)[kernel.DefaultFlavour]
	require.NotEmpty(t, w.Hint, "the fixture's want.json names a hint for cloud")
	res, err := Run(t.Context(), e2eConfig(t, patchedModule(t, dir, filepath.Join(fixture, "bug.patch")), kernel.DefaultFlavour))
	w.check(t, kernel.DefaultFlavour, res, err)
	failed := checkNamed(t, RunReport(kernel.DefaultFlavour, res, err), "TestEntryReadsHello")
	assert.Equal(t, `"hallo\n"`, failed.Got, "the suite's recorded failure")
}

// TestValidateOSC10e validates a module written to the textbook's
// assignment, and its classic bugs, against the osc10e profile: each bug
// fails the check built for it, with that check's hint.
func TestValidateOSC10e(t *testing.T) {
	prof, err := profiles.Load(repoPath(t), "osc10e")
	require.NoError(t, err)
	cases := []struct {
		variant string // a folder of module/testdata/osc10e-buggy, or "" for the correct module
		exit    verdict.Code
		check   string // the check that fails
		hint    string // in its hint
		optIn   bool   // with the profile's opt-in checks turned on
	}{
		// The correct module, static-eof-flag, ignored-count, task-state,
		// textbook-starter and empty-write are graded as a class, in
		// parallel VMs, by vmtest/grade's TestGradeAClass, which holds
		// them to the same verdicts and hints: each case runs once.

		// The entry is missing: its check alone fails, naming the entry the
		// module made; the checks that need it are skipped.
		{"wrong-entry", verdict.TestFailed, "TestEntryExists", "the module created /proc/pidinfo instead", false},
		// A read that returns the record's length without copying it:
		// the bytes are the reader's own (its guard byte), not a layout.
		{"read-without-copy", verdict.TestFailed, "TestRecordFields/init", "returned more bytes than it copied", false},
		// A write past 4 MiB into an unchecked kmalloc(count): the page
		// allocator's warning is the big write's check's, with its cause;
		// the kernel goes on.
		{"unchecked-kmalloc", verdict.KernelTrouble, "TestBigWrite", "kmalloc(count)", false},
		// The textbook's 0666 entry and -1 for bad input: nothing under
		// osc10e as it is, a FAIL with a hint each when a course opts in.
		{"world-writable-eperm", verdict.Pass, "", "", false},
		{"world-writable-eperm", verdict.TestFailed, "TestEntryMode", "writable by every user", true},
		// The user's buffer printed with %s: with SMAP, a page fault at a
		// user address in the first write, named as a __user pointer.
		{"user-pointer-printed", verdict.KernelTrouble, "TestRecordFields/init", "copy_from_user()", false},
	}
	for _, tc := range cases {
		name := tc.variant
		if tc.optIn {
			name += "/opt-in-checks"
		}
		t.Run(name, func(t *testing.T) {
			patch := repoPath(t, "module/testdata/osc10e-buggy", tc.variant, "bug.patch")
			c := e2eConfig(t, patchedModule(t, repoPath(t, "module/testdata/osc10e"), patch), kernel.DefaultFlavour)
			c.Profile = prof
			if tc.optIn {
				p := *prof
				p.Checks = profile.AllChecks
				c.Profile = &p
			}
			res, err := Run(t.Context(), c)
			run := RunReport(kernel.DefaultFlavour, res, err)
			require.Equal(t, tc.exit, verdict.CodeOf(err), "verdict: %v", err)
			if tc.exit == verdict.Pass {
				assert.Equal(t, "13 passed, 0 failed, 1 skipped", run.Score(), "a bug the profile does not judge: every check ran and passed; the opt-in TestEntryMode skips")
				return
			}
			failed := checkNamed(t, run, tc.check)
			if tc.variant == "unchecked-kmalloc" {
				assert.Equal(t, report.Fail, failed.Verdict, "the check during which the kernel warned")
				assert.Contains(t, failed.Got, "WARNING", "the warning, quoted")
			} else if tc.exit == verdict.KernelTrouble {
				assert.Equal(t, report.Error, failed.Verdict, "the check the kernel died in")
			} else {
				assert.Equal(t, report.Fail, failed.Verdict)
			}
			assert.Contains(t, failed.Hint, tc.hint, "the hint names the bug")
			if tc.optIn {
				errno := checkNamed(t, run, "TestBadInputIsHarmless/letters")
				assert.Equal(t, report.Fail, errno.Verdict)
				assert.Contains(t, errno.Got, "EPERM")
				assert.Contains(t, errno.Hint, "return -1 reaches the caller as -EPERM")
			}
			if tc.variant == "wrong-entry" {
				assert.Equal(t, "4 passed, 1 failed, 9 skipped", run.Score(), "one failure, not a cascade: the module builds, loads, unloads and the kernel stays clean")
			}
		})
	}
}

// assertHinted checks that a check of the run that did not pass gives the
// hint, as validate's table shows it.
func assertHinted(t *testing.T, run report.Run, hint string) {
	t.Helper()
	var hints []string
	for _, c := range run.Checks {
		if c.Verdict != report.Pass && c.Hint != "" {
			if strings.Contains(c.Hint, hint) {
				return
			}
			hints = append(hints, c.Name+": "+c.Hint)
		}
	}
	t.Errorf("no check's hint says %q; the hints:\n%s", hint, strings.Join(hints, "\n"))
}

// TestKernelMatrix validates one module on Debian's three 6.1 flavours in
// one call, VMs in parallel, and writes the reports a CI system reads.
func TestKernelMatrix(t *testing.T) {
	c := e2eConfig(t, repoPath(t, "module/testdata/osc10e"), kernel.DefaultFlavour)
	var err error
	c.Profile, err = profiles.Load(repoPath(t), "osc10e")
	require.NoError(t, err)
	dir := t.TempDir()
	t.Setenv(EnvReport, filepath.Join(dir, "report.json"))
	t.Setenv(EnvJUnit, filepath.Join(dir, "junit.xml"))
	kernels := []string{"cloud", "generic", "rt"}

	start := time.Now()
	rep := Report(c, RunKernels(t.Context(), c, []string{c.ModuleDir}, kernels))
	t.Logf("three kernels in %s", time.Since(start).Round(time.Second))
	require.NoError(t, WriteReports(c, rep))
	require.Len(t, rep.Runs, 3)
	assert.Zero(t, rep.ExitCode, "every run passes")
	for i, run := range rep.Runs {
		assert.Equal(t, kernels[i], run.Kernel)
		assert.Equal(t, "12 passed, 0 failed", run.Score(), "%s: %s", run.Kernel, run.Reason)
	}
	assert.Regexp(t, `-cloud-amd64$`, rep.Runs[0].Release)
	assert.Regexp(t, `^6\.1\.0-\d+-amd64$`, rep.Runs[1].Release)
	assert.Regexp(t, `-rt-amd64$`, rep.Runs[2].Release)

	var table strings.Builder
	report.PrintTable(&table, rep)
	assert.Regexp(t, `(?m)^CHECK\s+cloud\s+generic\s+rt$`, table.String(), "a column per kernel")
	assert.Regexp(t, `(?m)^TestSmallReadsAreNotOverrun\s+PASS\s+PASS\s+PASS$`, table.String())

	var fromJSON report.Report
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &fromJSON))
	assert.Equal(t, rep, fromJSON, "the JSON report holds the runs")
	b, err = os.ReadFile(filepath.Join(dir, "junit.xml"))
	require.NoError(t, err)
	assert.Equal(t, 3, strings.Count(string(b), "<testsuite "), "a JUnit testsuite per kernel")
}

func checkNamed(t *testing.T, run report.Run, name string) report.Check {
	t.Helper()
	for _, c := range run.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %s in %+v", name, run.Checks)
	return report.Check{}
}

func TestBootHangIsRetriedOnceThenReported(t *testing.T) {
	c := e2eConfig(t, repoPath(t, "module/procpid"), kernel.DefaultFlavour)
	c.BootTimeout = time.Second // shorter than any boot: every boot "hangs"
	var out strings.Builder
	c.Log = &progress.Log{W: &out}
	res, err := Run(t.Context(), c)
	require.Error(t, err)
	assert.Equal(t, verdict.Timeout, verdict.CodeOf(err), "verdict: %v", err)
	assert.ErrorContains(t, err, "hung while booting")
	assert.Contains(t, out.String(), "booting again", "one retry, announced")
	assert.FileExists(t, strings.TrimSuffix(res.ConsolePath, ".log")+"-hung-boot.log", "the first boot's console is kept")
	assert.Empty(t, res.Tests, "no test ran")
}

// patchedModule is a copy of the module in src (its files, not its
// testdata) with patch applied.
func patchedModule(t *testing.T, src, patch string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644))
	}
	if patch == "" {
		return dir
	}
	cmd := exec.Command("git", "apply", patch)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "applying %s: %s", patch, out)
	return dir
}

func e2eConfig(t *testing.T, moduleDir, kernelName string) Config {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM")
	}
	cache, err := DefaultCacheDir()
	require.NoError(t, err)
	sel, err := kernel.ParseSelection(kernelName, "")
	require.NoError(t, err)
	return Config{
		RepoDir:     repoPath(t),
		ModuleDir:   moduleDir,
		CacheDir:    cache,
		Kernel:      sel,
		Timeout:     DefaultTimeout,
		TestTimeout: DefaultTestTimeout,
		BootTimeout: DefaultBootTimeout,
		Log:         &progress.Log{W: testWriter{t}},
	}
}

func repoPath(t *testing.T, elem ...string) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	return filepath.Join(append([]string{root}, elem...)...)
}

func countOutcome(res *Result, o verdict.Outcome) int {
	n := 0
	for _, r := range res.Tests {
		if r.Outcome == o {
			n++
		}
	}
	return n
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// TestRunFlagsDoNotBuildArchives: a -test.run pattern or a limit reaches the
// guest on the kernel command line, so the same initramfs serves them all
// (each value used to cost a 25 s build and 23 MB of cache).
func TestRunFlagsDoNotBuildArchives(t *testing.T) {
	c := e2eConfig(t, repoPath(t, "module/procpid"), kernel.DefaultFlavour)
	all, err := Prepare(t.Context(), c, []string{c.ModuleDir})
	require.NoError(t, err)
	c.TestRun = "TestEntryExists"
	c.Timeout = 3 * time.Minute
	one, err := Prepare(t.Context(), c, []string{c.ModuleDir})
	require.NoError(t, err)
	assert.Equal(t, all.Initramfs, one.Initramfs, "one archive for every pattern and limit")
	assert.Less(t, len(one.Modules[0].Planned), len(all.Modules[0].Planned), "the pattern still selects the tests")

	results, err := Boot(t.Context(), c, one)
	require.NoError(t, err)
	require.Len(t, results, 1)
	res := results[0]
	require.Nil(t, res.Err)
	require.NotEmpty(t, res.Tests)
	for _, r := range res.Tests {
		assert.True(t, strings.HasPrefix(r.Name, "TestEntryExists"), "the guest ran %s, which the pattern excludes", r.Name)
	}
}
