package vmtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/vmtest/kbuild"
	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/report"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// Hints the guest tests and the verdict (vmtest/verdict) give, as the
// checks must carry them.
const (
	hintPPOS      = "the read handler ignores *ppos (the file offset): return 0 once *ppos is past the record and advance *ppos by what you copied; simple_read_from_buffer() or seq_file do both"
	hintTaskState = "task->state was renamed __state in Linux 5.14: read it with READ_ONCE(task->__state), or get the /proc letter with task_state_to_char(task)"
	hintNoMM      = "task->mm is NULL for a kernel thread and for a process that has exited (a zombie): take it with get_task_mm(task), check it for NULL (then vsize and rss are 0), and mmput(mm) after"
	hintHang      = "a call into the module never returned: a read or write handler that waits for something nothing signals (wait_event on a condition never made true, a lock never released) or loops; a read returns its data, then 0 at end of file"
)

// decided fills res's verdict from its observations as Boot does, and
// returns the run's error as Run does.
func decided(res *Result) (*Result, error) {
	res.Observations.Tests = res.Tests
	if res.Err = verdict.Decide(res.Observations); res.Err != nil {
		return res, res.Err
	}
	return res, nil
}

// guestTests follows test2json events as the host does while a VM runs.
type guestTests struct{ tests verdict.Tests }

func (g *guestTests) run(name string) { g.tests.Add(verdict.TestEvent{Action: "run", Test: name}) }

func (g *guestTests) output(name, out string) {
	g.tests.Add(verdict.TestEvent{Action: "output", Test: name, Output: out})
}

func (g *guestTests) end(name string, outcome verdict.Outcome) {
	g.tests.Add(verdict.TestEvent{Action: string(outcome), Test: name, Elapsed: 0.01})
}

func (g *guestTests) pass(names ...string) {
	for _, n := range names {
		g.run(n)
		g.end(n, verdict.Passed)
	}
}

func checkNames(checks []report.Check) []string {
	var names []string
	for _, c := range checks {
		names = append(names, c.Name)
	}
	return names
}

func findCheck(t *testing.T, run report.Run, name string) report.Check {
	t.Helper()
	for _, c := range run.Checks {
		if c.Name == name {
			return c
		}
	}
	require.Failf(t, "no such check", "%q is not among %q", name, checkNames(run.Checks))
	return report.Check{}
}

// indent is how a verdict quotes console lines.
func indent(lines ...string) string { return "    " + strings.Join(lines, "\n    ") }

func TestRunReportBuildFailure(t *testing.T) {
	// kbuild's message for the OSC10e module with the pre-5.14 task->state,
	// copied from a real build against Debian's 6.1 headers.
	b, err := os.ReadFile("testdata/osc10e-task-state.build")
	require.NoError(t, err)
	reason := strings.TrimRight(string(b), "\n")
	lines := strings.Split(reason, "\n") // the first line, make's output, the hint
	run := RunReport("cloud", nil, kbuild.Failed(errors.New("exit status 2"), strings.Join(lines[1:len(lines)-1], "\n")))

	assert.Equal(t, "cloud", run.Kernel)
	assert.Equal(t, 2, run.ExitCode)
	assert.Equal(t, "build failed", run.Outcome)
	assert.Equal(t, reason, run.Reason)
	assert.Empty(t, run.Release, "no kernel booted")
	require.Len(t, run.Checks, 1, "a module that did not build has one check")
	c := run.Checks[0]
	assert.Equal(t, report.CheckBuild, c.Name)
	assert.Equal(t, report.Fail, c.Verdict)
	assert.Equal(t, "/tmp/rt-helper/task-state/pid.c:61:22: error: 'struct task_struct' has no member named 'state'; did you mean 'stats'?", c.Got,
		"got is the compiler's first error, not make's chatter")
	assert.Equal(t, hintTaskState, c.Hint)
	assert.Equal(t, reason, c.Message, "the whole build output is the message")
}

func TestRunReportBuildFailureHints(t *testing.T) {
	output := `make: Entering directory '/k/usr/src/linux-headers-6.1.0-56-cloud-amd64'
  CC [M]  /src/pid.o
  MODPOST /src/Module.symvers
ERROR: modpost: "find_task_by_vpid" [/src/pid.ko] undefined!
ERROR: modpost: "task_prio" [/src/pid.ko] undefined!
make[2]: *** [/k/scripts/Makefile.modpost:126: /src/Module.symvers] Error 1`
	hints := kbuild.Hints(output)
	require.Len(t, hints, 2)
	run := RunReport("rt", nil, kbuild.Failed(errors.New("exit status 2"), output))
	require.Len(t, run.Checks, 1)
	assert.Equal(t, `ERROR: modpost: "find_task_by_vpid" [/src/pid.ko] undefined!`, run.Checks[0].Got)
	assert.Equal(t, hints[0]+"\n"+hints[1], run.Checks[0].Hint, "every hint, a line each")

	run = RunReport("rt", nil, verdict.Errorf(verdict.BuildFailed, "reading module source /src: permission denied"))
	require.Len(t, run.Checks, 1)
	assert.Equal(t, "reading module source /src: permission denied", run.Checks[0].Got, "without a compiler error, the first line")
	assert.Empty(t, run.Checks[0].Hint)
}

func TestRunReportSetupProblem(t *testing.T) {
	run := RunReport("generic", nil, verdict.SetupError("apt-get install qemu-system-x86", "qemu-system-x86_64 not found"))
	assert.Equal(t, 5, run.ExitCode)
	assert.Equal(t, "setup problem", run.Outcome)
	assert.Equal(t, "qemu-system-x86_64 not found\n    fix: apt-get install qemu-system-x86", run.Reason)
	assert.Empty(t, run.Checks, "nothing was checked")
}

func TestRunReportPass(t *testing.T) {
	var g guestTests
	g.pass("TestEntryExists", "TestRecordFields/init", "TestRecordFields", "TestMissingPID")
	res, err := decided(&Result{
		Kernel: &kernel.Kernel{Name: "cloud", Release: "6.1.0-56-cloud-amd64"}, GuestKernel: "6.1.0-56-cloud-amd64",
		Tests:        g.tests.Results,
		Planned:      []string{"TestEntryExists", "TestRecordFields", "TestMissingPID", "TestSkippedByPIDLAB_RUN"},
		Observations: verdict.Observations{RunnerStarted: true, Done: true, ConsoleTail: []string{"[    9.1] reboot: Power down"}},
		ConsolePath:  "/cache/runs/1/console.log", BootToFirstTest: 5900 * time.Millisecond, VMTime: 12500 * time.Millisecond,
	})
	require.NoError(t, err)
	run := RunReport("cloud", res, err)

	assert.Equal(t, 0, run.ExitCode)
	assert.Equal(t, "pass", run.Outcome)
	assert.Empty(t, run.Reason)
	assert.Equal(t, "6.1.0-56-cloud-amd64", run.Release)
	assert.Equal(t, "/cache/runs/1/console.log", run.ConsoleLog)
	assert.Equal(t, 5.9, run.BootSeconds)
	assert.Equal(t, 12.5, run.VMSeconds)
	assert.Empty(t, run.ConsoleExcerpt, "a run that passed quotes no console")
	assert.Equal(t, []string{report.CheckBuild, report.CheckLoad, "TestEntryExists", "TestRecordFields/init", "TestRecordFields", "TestMissingPID",
		report.CheckUnload, report.CheckClean}, checkNames(run.Checks), "the run's checks in the order they ran")
	for _, c := range run.Checks {
		assert.Equal(t, report.Pass, c.Verdict, c.Name)
	}
	assert.Equal(t, 0.01, run.Checks[2].Seconds, "a test's duration")

	res.GuestKernel = "" // the guest never said
	assert.Equal(t, "6.1.0-56-cloud-amd64", RunReport("cloud", res, err).Release, "the provisioned kernel's release")
}

// staticEOFFlagResults are the guest tests of a real run of the OSC10e
// module with the textbook's static end-of-file flag (as /tmp/osc-static-eof-flag):
// names, outcomes, durations and what the failed ones printed.
func staticEOFFlagResults(t *testing.T) []verdict.TestResult {
	t.Helper()
	b, err := os.ReadFile("testdata/osc10e-static-eof-flag.json")
	require.NoError(t, err)
	var tests []verdict.TestResult
	require.NoError(t, json.Unmarshal(b, &tests))
	require.Len(t, tests, 30)
	return tests
}

func TestRunReportFailedTests(t *testing.T) {
	tests := staticEOFFlagResults(t)
	res, err := decided(&Result{GuestKernel: "6.1.0-56-cloud-amd64", Tests: tests,
		Observations: verdict.Observations{RunnerStarted: true, Done: true}})
	require.Error(t, err)
	run := RunReport("cloud", res, err)

	assert.Equal(t, 1, run.ExitCode)
	assert.Equal(t, "test failed", run.Outcome)
	assert.True(t, strings.HasPrefix(run.Reason, "3 test(s) failed:\n"), run.Reason)
	assert.Len(t, run.Checks, len(tests)+4, "the guest's tests and the run's four checks")

	small := findCheck(t, run, "TestSmallReadsAreNotOverrun")
	assert.Equal(t, report.Fail, small.Verdict)
	assert.Equal(t, `the record as one read gives it: "command = [pidlab-target] pid = [108] state = [1]\n"`, small.Expected,
		"the failure the guest recorded, as data")
	assert.Equal(t, `"comm"`, small.Got)
	assert.Equal(t, hintPPOS, small.Hint)
	assert.Equal(t, "checks_test.go:131: reading 4 bytes at a time (dd bs=4)\n"+
		`expected: the record as one read gives it: "command = [pidlab-target] pid = [108] state = [1]\n"`+"\n"+
		`got: "comm"`+"\n"+
		"hint: "+hintPPOS, small.Message, "the test's own text, for a person")

	parent := findCheck(t, run, "TestSecondReaderAfterEarlyStop")
	assert.Equal(t, report.Fail, parent.Verdict)
	assert.Empty(t, parent.Got, "the parent printed nothing of its own")
	assert.Equal(t, "an empty read (end of file at once)", findCheck(t, run, "TestSecondReaderAfterEarlyStop/first-read-4-bytes").Got)
	assert.Equal(t, report.Pass, findCheck(t, run, "TestRecordFields/kernel-thread/pid").Verdict)
	assert.Equal(t, report.Pass, findCheck(t, run, report.CheckUnload).Verdict)
	assert.Equal(t, report.Pass, findCheck(t, run, report.CheckClean).Verdict)

	// The table this run printed on the terminal.
	want, err := os.ReadFile("testdata/osc10e-static-eof-flag.table")
	require.NoError(t, err)
	var got bytes.Buffer
	report.PrintTable(&got, report.Report{Runs: []report.Run{run}})
	assert.Equal(t, string(want), got.String())
}

func TestRunReportDropsTestifyTraces(t *testing.T) {
	// testify's output for an assertion made in a goroutine: its trace ends
	// in the runtime's assembly.
	out := "    y_test.go:15: \n" +
		"        \tError Trace:\t/work/main/userspace/conformance/read_test.go:215\n" +
		"        \t            \t\t\t\t/usr/local/go/src/runtime/asm_amd64.s:1771\n" +
		"        \tError:      \tNot equal: \n" +
		"        \t            \texpected: 7\n" +
		"        \t            \tactual  : 8\n" +
		"        \tTest:       \tTestReadersSharingADescriptor/concurrent\n" +
		"        \tMessages:   \tpid: module vs /proc/7/stat field 1\n"
	res, err := decided(&Result{Tests: []verdict.TestResult{{Name: "TestReadersSharingADescriptor/concurrent", Outcome: verdict.Failed, Output: out}},
		Observations: verdict.Observations{RunnerStarted: true, Done: true}})
	c := findCheck(t, RunReport("cloud", res, err), "TestReadersSharingADescriptor/concurrent")
	assert.Equal(t, "y_test.go:15:\nError:      \tNot equal:\nexpected: 7\nactual  : 8\nTest:       \tTestReadersSharingADescriptor/concurrent\n"+
		"Messages:   \tpid: module vs /proc/7/stat field 1", c.Message, "the message without the trace's frames")
	assert.Empty(t, c.Expected, "a failure the test did not record is its text alone: never parsed")
	assert.Empty(t, c.Got)
}

func TestRunReportHungTest(t *testing.T) {
	var g guestTests
	g.pass("TestEntryExists", "TestReadBeforeAnyWrite")
	g.run("TestSecondReaderAfterEarlyStop")
	g.run("TestSecondReaderAfterEarlyStop/first-read-4-bytes")
	g.output("TestSecondReaderAfterEarlyStop/first-read-4-bytes", "    checks_test.go:180: a reader that stops after 4 bytes\n")
	g.tests.MarkHung() // as the host does when a test runs past PIDLAB_TEST_TIMEOUT
	tail := []string{"[    6.0] pid: module loaded", "[    7.2] pid: read 4 bytes at offset 0"}
	stopped := "test TestSecondReaderAfterEarlyStop/first-read-4-bytes did not finish within 45s (PIDLAB_TEST_TIMEOUT): it hangs"
	res, _ := decided(&Result{Tests: g.tests.Results, Observations: verdict.Observations{
		RunnerStarted: true, ConsoleTail: tail, Stopped: stopped,
	}})
	// The verdict as Decide words a hang, with its hint.
	err := verdict.Errorf(verdict.Timeout, "%s\nlast console lines:\n%s", stopped, indent(tail...)).WithHints(hintHang)
	require.NotNil(t, res.Err)
	require.Equal(t, verdict.Timeout, res.Err.Code)
	run := RunReport("cloud", res, err)

	assert.Equal(t, 4, run.ExitCode)
	assert.Equal(t, "timeout", run.Outcome)
	assert.Equal(t, tail, run.ConsoleExcerpt, "a hang quotes the console's last lines")
	for _, name := range []string{"TestSecondReaderAfterEarlyStop", "TestSecondReaderAfterEarlyStop/first-read-4-bytes"} {
		c := findCheck(t, run, name)
		assert.Equal(t, report.Error, c.Verdict, name)
		assert.Equal(t, "did not finish: it hangs", c.Got, name)
		assert.Equal(t, hintHang, c.Hint, name)
	}
	assert.Equal(t, "checks_test.go:180: a reader that stops after 4 bytes",
		findCheck(t, run, "TestSecondReaderAfterEarlyStop/first-read-4-bytes").Message, "what it printed before it hung")
	assert.Equal(t, report.Pass, findCheck(t, run, report.CheckLoad).Verdict)
	unload := findCheck(t, run, report.CheckUnload)
	assert.Equal(t, report.Error, unload.Verdict)
	assert.Equal(t, "not reached: the run ended before the module was unloaded", unload.Got)
	clean := findCheck(t, run, report.CheckClean)
	assert.Equal(t, report.Error, clean.Verdict, "a stopped run never reached the final taint and leak checks")
	assert.Contains(t, clean.Got, "not judged")

	var table bytes.Buffer
	report.PrintTable(&table, report.Report{Runs: []report.Run{run}})
	assert.Contains(t, table.String(), "\nERROR TestSecondReaderAfterEarlyStop/first-read-4-bytes\n")
	assert.Contains(t, table.String(), "\n    console:  [    6.0] pid: module loaded\n              [    7.2] pid: read 4 bytes at offset 0\n",
		"a hang quotes the console's last lines, as the README promises")
	assert.NotContains(t, table.String(), "\nERROR TestSecondReaderAfterEarlyStop\n", "the hung parent's details are its subtest's")
	assert.Contains(t, table.String(), "\n4 passed, 0 failed, 3 errors\n")
}

// oopsOnRead is a real console log: the reference module with a NULL
// task->mm dereference, read while a kernel thread was selected.
func oopsOnRead(t *testing.T) (troubles []verdict.Trouble, tail []string) {
	t.Helper()
	return scanLog(t, "verdict/testdata/oops-on-read.log")
}

// scanLog runs a recorded console log through the scanner: the kernel
// reports it finds and the console's last lines.
func scanLog(t *testing.T, path string) (troubles []verdict.Trouble, tail []string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var s verdict.ConsoleScanner
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		s.Scan(sc.Text())
		tail = append(tail, sc.Text())
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, s.Troubles)
	return s.Troubles, tail[len(tail)-consoleTailLines:]
}

func TestRunReportCrash(t *testing.T) {
	troubles, tail := oopsOnRead(t)
	var g guestTests
	g.pass("TestReadBeforeAnyWriteIsENODATA", "TestRecordFormat")
	g.run("TestKthreadd") // the guest died in it
	res, _ := decided(&Result{Tests: g.tests.Results, Observations: verdict.Observations{
		RunnerStarted: true, Troubles: troubles, ConsoleTail: tail, Running: g.tests.Running(),
	}, Planned: []string{"TestReadBeforeAnyWriteIsENODATA", "TestRecordFormat", "TestKthreadd", "TestInit", "TestZombie"}})
	// The verdict as Decide words an Oops, with its hint.
	report0 := strings.Split(strings.TrimRight(troubles[0].Report, "\n"), "\n")
	err := verdict.Errorf(verdict.KernelTrouble, "kernel %s:\n%s", troubles[0].Kind, indent(report0...)).WithHints(hintNoMM)
	require.NotNil(t, res.Err)
	require.Equal(t, verdict.KernelTrouble, res.Err.Code)
	run := RunReport("cloud", res, err)

	assert.Equal(t, 3, run.ExitCode)
	assert.Equal(t, "kernel trouble", run.Outcome)
	assert.Equal(t, []string{report.CheckBuild, report.CheckLoad, "TestReadBeforeAnyWriteIsENODATA", "TestRecordFormat", "TestKthreadd",
		"TestInit", "TestZombie", report.CheckUnload, report.CheckClean}, checkNames(run.Checks))
	for _, name := range []string{"TestInit", "TestZombie"} {
		notRun := findCheck(t, run, name)
		assert.Equal(t, report.Error, notRun.Verdict, "a planned test the crash kept from running")
		assert.Equal(t, "not run: the run ended before it", notRun.Got)
	}
	assert.Equal(t, report.Pass, findCheck(t, run, report.CheckLoad).Verdict)

	crashed := findCheck(t, run, "TestKthreadd")
	assert.Equal(t, report.Error, crashed.Verdict, "the test that was running when the kernel died")
	assert.Equal(t, "the kernel died while it ran: BUG: kernel NULL pointer dereference, address: 00000000000000c0", crashed.Got)
	assert.Equal(t, hintNoMM, crashed.Hint)

	clean := findCheck(t, run, report.CheckClean)
	assert.Equal(t, report.Fail, clean.Verdict)
	assert.Equal(t, "BUG: kernel NULL pointer dereference, address: 00000000000000c0", clean.Got)
	assert.Equal(t, hintNoMM, clean.Hint)
	assert.Contains(t, clean.Message, "RIP: 0010:procpid_show+0x209/0x4b3 [procpid]", "the kernel's report")

	unload := findCheck(t, run, report.CheckUnload)
	assert.Equal(t, report.Error, unload.Verdict)
	assert.Equal(t, "not reached: the run ended before the module was unloaded", unload.Got)

	require.NotEmpty(t, run.ConsoleExcerpt)
	assert.Equal(t, report0, run.ConsoleExcerpt, "the excerpt is the kernel's report")
	assert.Contains(t, run.ConsoleExcerpt[0], "BUG: kernel NULL pointer dereference")
}

func TestRunReportCrashInTheFirstTest(t *testing.T) {
	troubles, tail := oopsOnRead(t)
	var g guestTests
	g.run("TestZombie")
	g.run("TestZombie/child of the test")
	res, err := decided(&Result{Tests: g.tests.Results, Observations: verdict.Observations{
		RunnerStarted: true, Troubles: troubles, ConsoleTail: tail, Running: g.tests.Running(),
	}})
	run := RunReport("cloud", res, err)

	assert.Equal(t, report.Pass, findCheck(t, run, report.CheckLoad).Verdict, "a test ran, so the module loaded")
	assert.Equal(t, report.Error, findCheck(t, run, "TestZombie").Verdict)
	assert.Equal(t, report.Error, findCheck(t, run, "TestZombie/child of the test").Verdict)
	var table bytes.Buffer
	report.PrintTable(&table, report.Report{Runs: []report.Run{run}})
	assert.Contains(t, table.String(), "\nERROR TestZombie/child of the test\n")
	assert.NotContains(t, table.String(), "\nERROR TestZombie\n", "the parent's details are its subtest's")
}

func TestRunReportCrashWhileLoading(t *testing.T) {
	troubles, tail := oopsOnRead(t)
	res, err := decided(&Result{Observations: verdict.Observations{RunnerStarted: true, Troubles: troubles, ConsoleTail: tail}})
	load := findCheck(t, RunReport("cloud", res, err), report.CheckLoad)
	assert.Equal(t, report.Error, load.Verdict)
	assert.Equal(t, "the guest ended while loading the module", load.Got)
}

func TestRunReportGuestNeverStarted(t *testing.T) {
	tail := []string{"[    0.9] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"}
	res, err := decided(&Result{Observations: verdict.Observations{ConsoleTail: tail}})
	run := RunReport("cloud", res, err)
	load := findCheck(t, run, report.CheckLoad)
	assert.Equal(t, report.Error, load.Verdict)
	assert.Equal(t, "the guest did not start", load.Got)
	assert.Equal(t, report.Error, findCheck(t, run, report.CheckUnload).Verdict)
}

func TestRunReportLoadFailure(t *testing.T) {
	const loadErr = "finit_module /pidlab/module/pid.ko: no such file or directory"
	res, err := decided(&Result{Observations: verdict.Observations{RunnerStarted: true, Done: true, LoadErr: loadErr}})
	require.Error(t, err)
	run := RunReport("cloud", res, err)

	assert.Equal(t, 1, run.ExitCode)
	assert.Equal(t, []string{report.CheckBuild, report.CheckLoad, report.CheckUnload, report.CheckClean}, checkNames(run.Checks), "no test ran")
	load := findCheck(t, run, report.CheckLoad)
	assert.Equal(t, report.Fail, load.Verdict)
	assert.Equal(t, "insmod succeeds", load.Expected)
	assert.Equal(t, loadErr, load.Got)
	assert.Contains(t, load.Hint, "init function")
	unload := findCheck(t, run, report.CheckUnload)
	assert.Equal(t, report.Error, unload.Verdict, "a module that never loaded was not unloaded")
	assert.Equal(t, "not reached: the module did not load", unload.Got)
	assert.Equal(t, report.Pass, findCheck(t, run, report.CheckClean).Verdict)
}

func TestRunReportUnloadFailure(t *testing.T) {
	const unloadErr = "delete_module pid: resource temporarily unavailable"
	var g guestTests
	g.pass("TestEntryExists")
	res, err := decided(&Result{Tests: g.tests.Results, Observations: verdict.Observations{RunnerStarted: true, Done: true, UnloadErr: unloadErr}})
	require.Error(t, err)
	run := RunReport("cloud", res, err)

	assert.Equal(t, 1, run.ExitCode)
	assert.Equal(t, "test failed", run.Outcome)
	assert.Equal(t, report.Pass, findCheck(t, run, report.CheckLoad).Verdict)
	unload := findCheck(t, run, report.CheckUnload)
	assert.Equal(t, report.Fail, unload.Verdict)
	assert.Equal(t, "rmmod succeeds", unload.Expected)
	assert.Equal(t, unloadErr, unload.Got)
	assert.Contains(t, unload.Hint, "still in use")
	assert.Equal(t, report.Pass, findCheck(t, run, report.CheckClean).Verdict)
}

func TestRunReportBugQuotesTheKernel(t *testing.T) {
	// A real BUG_ON() in the read handler: the report begins with "cut
	// here", which the table once showed as all there was to see.
	troubles, _ := scanLog(t, "verdict/testdata/bug-on-read.log")
	var g guestTests
	g.pass("TestEntryExists")
	g.run("TestReadBeforeAnyWrite")
	res, err := decided(&Result{Tests: g.tests.Results, Observations: verdict.Observations{
		RunnerStarted: true, Troubles: troubles, Running: g.tests.Running(),
	}})
	run := RunReport("cloud", res, err)
	crashed := findCheck(t, run, "TestReadBeforeAnyWrite")
	assert.Equal(t, "the kernel died while it ran: kernel BUG at /tmp/cache-hang/pidlab/modules/18729c859dc533a7.tmp-3692544389/procpid.c:143!", crashed.Got)
	assert.Equal(t, troubles[0].KeyLines(), crashed.Console, "the kernel's key lines")
	clean := findCheck(t, run, report.CheckClean)
	assert.Empty(t, clean.Console, "quoted once, where the kernel died")

	var table bytes.Buffer
	report.PrintTable(&table, report.Report{Runs: []report.Run{run}})
	assert.NotContains(t, table.String(), "cut here")
	assert.Contains(t, table.String(), "\n    console:  kernel BUG at /tmp/cache-hang/pidlab/modules/18729c859dc533a7.tmp-3692544389/procpid.c:143!\n"+
		"              RIP: 0010:procpid_show+0x49e/0x4f4 [procpid]\n"+
		"              Call Trace: seq_read_iter+0x122/0x450, seq_read+0xd0/0x100, proc_reg_read+0x56/0xa0, vfs_read+0xa5/0x310\n")
}

// A failure the guest recorded as data is the check's expected, got and
// hint; its output is only the message.
func TestRecordedFailureIsTheCheck(t *testing.T) {
	tests := []verdict.TestResult{{Name: "TestSmallReadsAreNotOverrun", Outcome: verdict.Failed,
		Output: "    checks_test.go:124: reading 4 bytes at a time (dd bs=4)\n        expected: printed text\n",
		Failures: []guestapi.Failure{{Test: "TestSmallReadsAreNotOverrun", Check: "reading 4 bytes at a time (dd bs=4)",
			Expected: "at most 4", Got: "read 1 returned 50 bytes", Hint: "the read handler ignores count"}}}}
	c := testChecks(tests, "", nil)[0]
	assert.Equal(t, report.Fail, c.Verdict)
	assert.Equal(t, "at most 4", c.Expected)
	assert.Equal(t, "read 1 returned 50 bytes", c.Got)
	assert.Equal(t, "the read handler ignores count", c.Hint)
}

// Of a test's recorded failures, the row shows the first that names a
// cause: a bare comparison before it says less.
func TestTheRowShowsTheFirstHintedFailure(t *testing.T) {
	bare := guestapi.Failure{Test: "TestZombie", Check: "comm of zombie 42", Expected: `"pidlab-target"`, Got: `""`}
	hinted := guestapi.Failure{Test: "TestZombie", Check: "vsize: module vs /proc/42/stat field 23", Expected: "0", Got: "oops",
		Hint: "task->mm is NULL for a zombie"}
	c := testChecks([]verdict.TestResult{{Name: "TestZombie", Outcome: verdict.Failed, Failures: []guestapi.Failure{bare, hinted}}}, "", nil)[0]
	assert.Equal(t, hinted.Got, c.Got)
	assert.Equal(t, hinted.Hint, c.Hint)
	c = testChecks([]verdict.TestResult{{Name: "TestZombie", Outcome: verdict.Failed, Failures: []guestapi.Failure{bare, bare}}}, "", nil)[0]
	assert.Equal(t, bare.Expected, c.Expected, "without a hint, the first")
}

// A warning during a test that passed, in a real log (the 4 MiB write of
// module/testdata/osc10e-buggy/unchecked-kmalloc, whose guest lived on):
// that test fails, quoting the warning, with its hint; the test before it
// keeps its PASS.
func TestRunReportGivesAReportToItsTest(t *testing.T) {
	troubles, tail := scanLog(t, "verdict/testdata/kmalloc-too-big-warn.log")
	var g guestTests
	g.pass("TestBadInputIsHarmless", "TestBigWrite")
	res, err := decided(&Result{Tests: g.tests.Results, Observations: verdict.Observations{
		RunnerStarted: true, Done: true, Troubles: troubles, ConsoleTail: tail,
	}})
	require.Equal(t, verdict.KernelTrouble, verdict.CodeOf(err))
	run := RunReport("cloud", res, err)

	big := findCheck(t, run, "TestBigWrite")
	assert.Equal(t, report.Fail, big.Verdict)
	assert.Equal(t, "the kernel reported while it ran: WARNING: CPU: 1 PID: 100 at mm/page_alloc.c:5634 __alloc_pages+0x2a9/0x330", big.Got)
	assert.Contains(t, big.Hint, "kmalloc(count)")
	assert.Contains(t, strings.Join(big.Console, "\n"), "proc_write+0x39/0x140 [pid]", "the warning's key lines")
	assert.Equal(t, report.Pass, findCheck(t, run, "TestBadInputIsHarmless").Verdict, "the test before the warning")
	assert.Equal(t, report.Fail, findCheck(t, run, report.CheckClean).Verdict)
}

// The case, in a real log of the debug kernel (an osc10e module
// reading pid_task() outside rcu_read_lock(), whose empty write goes
// through kmalloc(0)): an RCU warning during TestRecordFields/init, which
// passed, then a general protection fault (KASAN null-ptr-deref) in the
// empty write, which killed the guest. The warning is its test's FAIL;
// the dying check, the verdict and the kernel check quote the fault.
func TestRunReportGivesEachReportItsTest(t *testing.T) {
	troubles, tail := scanLog(t, "verdict/testdata/rcu-warning-then-empty-write.log")
	require.Equal(t, "lockdep", troubles[0].Kind, "the first report is the RCU warning")
	var g guestTests
	g.pass("TestEntryExists", "TestReadBeforeAnyWrite", "TestRecordFields/init", "TestRecordFields", "TestMissingPID")
	g.run("TestBadInputIsHarmless")
	g.run("TestBadInputIsHarmless/empty")
	res, err := decided(&Result{Tests: g.tests.Results, Observations: verdict.Observations{
		RunnerStarted: true, Troubles: troubles, ConsoleTail: tail, Running: g.tests.Running(),
	}})
	require.Equal(t, verdict.KernelTrouble, verdict.CodeOf(err))
	assert.True(t, strings.HasPrefix(err.Error(), "kernel general protection fault:"), "the verdict's headline: %.80s", err.Error())
	run := RunReport("debug", res, err)

	const fault = "general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000 [#1] SMP KASAN"
	init := findCheck(t, run, "TestRecordFields/init")
	assert.Equal(t, report.Fail, init.Verdict, "a test that passed while the kernel warned")
	assert.Equal(t, "the kernel reported while it ran: WARNING: suspicious RCU usage", init.Got)
	assert.Contains(t, init.Hint, "rcu_read_lock()")
	assert.Contains(t, strings.Join(init.Console, "\n"), "proc_read+0xff/0x1a0 [pid]")
	assert.NotContains(t, strings.Join(init.Console, "\n"), "RIP: 0033", "a user-mode RIP says nothing of the bug")

	empty := findCheck(t, run, "TestBadInputIsHarmless/empty")
	assert.Equal(t, report.Error, empty.Verdict)
	assert.Equal(t, "the kernel died while it ran: "+fault, empty.Got)
	assert.Equal(t, fault, empty.Console[0], "the report that killed the guest, not the first one")
	assert.NotContains(t, empty.Hint, "rcu_read_lock()", "the fault's hint, not the warning's")
	assert.Equal(t, fault, findCheck(t, run, report.CheckClean).Got)
	assert.Equal(t, fault, run.ConsoleExcerpt[0][strings.Index(run.ConsoleExcerpt[0], "general"):])
}
