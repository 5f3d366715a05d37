package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), got, "%s (go test -run %s -update rewrites it)", path, t.Name())
}

func table(r Report) string {
	var b bytes.Buffer
	PrintTable(&b, r)
	return b.String()
}

// Checks as a run of the OSC10e static-EOF-flag module reports them.
var (
	pass = func(name string) Check { return Check{Name: name, Verdict: Pass} }

	smallReads = Check{Name: "TestSmallReadsAreNotOverrun", Verdict: Fail,
		Expected: `the record as one read gives it: "command = [pidlab-target] pid = [107] state = [1]\n"`,
		Got:      `"comm"`,
		Hint:     "the read handler ignores *ppos (the file offset): return 0 once *ppos is past the record and advance *ppos by what you copied; simple_read_from_buffer() or seq_file do both",
		Message:  "checks_test.go:126: reading 4 bytes at a time (dd bs=4)\nwant: …\ngot: …\nhint: …"}
	secondReader = Check{Name: "TestSecondReaderAfterEarlyStop", Verdict: Fail}
	earlyStop    = Check{Name: "TestSecondReaderAfterEarlyStop/first-read-4-bytes", Verdict: Fail,
		Expected: `"command = [pidlab-target] pid = [108] state = [1]\n"`,
		Got:      "an empty read (end of file at once)",
		Hint:     "the read handler keeps end-of-file state in a static or global variable (like `completed`), which a reader that stops early leaves set for the next reader: decide end of file from *ppos instead"}
	earlyStopPassed = Check{Name: "TestSecondReaderAfterEarlyStop/first-read-4-bytes", Verdict: Pass}
)

func TestTableOneKernel(t *testing.T) {
	r := Report{Runs: []Run{{Kernel: "cloud", Checks: []Check{
		pass(CheckBuild), pass(CheckLoad),
		pass("TestEntryExists"),
		pass("TestRecordFields/init/pid"), pass("TestRecordFields/init"), pass("TestRecordFields"),
		smallReads,
		earlyStop, secondReader,
		{Name: "TestMissingPID", Verdict: Fail, Message: "checks_test.go:200: reading after writing a PID nobody has\nthe module printed a record for it"},
		{Name: "TestBadInputIsHarmless", Verdict: Skip, Message: "the profile has no write checks"},
		pass(CheckUnload), pass(CheckClean),
	}}}}
	out := table(r)
	golden(t, "one-kernel.table", out)
	assert.NotContains(t, out, "TestRecordFields/init", "subtests are no rows")
	assert.NotContains(t, out, "cloud: ", "one kernel's score needs no name")
}

// A matrix where each kernel went its own way: cloud crashed in
// TestMissingPID, so it lacks the tests after it; generic passed the early
// stop that cloud and rt failed alike; the module did not build for debug.
func matrix() Report {
	crashed := Check{Name: "TestMissingPID", Verdict: Error,
		Got:  "the kernel died while it ran: kernel Oops:",
		Hint: "pid_task()/get_pid_task() returns NULL once the process has exited and been reaped: check the task for NULL and return -ESRCH"}
	return Report{Runs: []Run{
		{Kernel: "cloud", Checks: []Check{
			pass(CheckBuild), pass(CheckLoad), pass("TestEntryExists"),
			smallReads, earlyStop, secondReader, crashed,
			{Name: CheckUnload, Verdict: Error, Got: "not reached: the run ended before the module was unloaded"},
			{Name: CheckClean, Verdict: Fail, Expected: "no oops, warning, leak or new taint", Got: "kernel Oops:", Hint: crashed.Hint},
		}},
		{Kernel: "generic", Checks: []Check{
			pass(CheckBuild), pass(CheckLoad), pass("TestEntryExists"),
			smallReads, earlyStopPassed, pass(secondReader.Name), pass("TestMissingPID"),
			pass("TestBadInputIsHarmless"), pass(CheckUnload), pass(CheckClean),
		}},
		{Kernel: "rt", Checks: []Check{
			pass(CheckBuild), pass(CheckLoad), pass("TestEntryExists"),
			smallReads, earlyStop, secondReader, pass("TestMissingPID"),
			pass("TestBadInputIsHarmless"), pass(CheckUnload), pass(CheckClean),
		}},
		{Kernel: "debug", Checks: []Check{
			{Name: CheckBuild, Verdict: Fail, Expected: "the module builds",
				Got: "pid.c:61:22: error: 'struct task_struct' has no member named 'state'; did you mean 'stats'?"},
		}},
	}}
}

func TestTableMatrix(t *testing.T) {
	out := table(matrix())
	golden(t, "matrix.table", out)
	// What the golden text shows, spelled out:
	assert.Contains(t, out, "CHECK                           cloud  generic  rt    debug\n")
	assert.Contains(t, out, "TestBadInputIsHarmless          -      PASS     PASS  -\n", "a check a kernel lacks is -")
	assert.Regexp(t, `(?s)TestMissingPID .*\nTestBadInputIsHarmless .*\nmodule unloads .*\nkernel stays clean `, out,
		"a check only some kernels reached keeps its place in the run's order")
	assert.Contains(t, out, "\nFAIL TestSmallReadsAreNotOverrun [cloud, generic, rt]\n", "the same failure once, with its kernels")
	assert.Contains(t, out, "\nFAIL TestSecondReaderAfterEarlyStop/first-read-4-bytes [cloud, rt]\n")
	assert.NotContains(t, out, "FAIL TestSecondReaderAfterEarlyStop [", "a parent that failed for its subtest has no details of its own")
	assert.Contains(t, out, "\ncloud: 3 passed, 3 failed, 2 errors\ngeneric: 8 passed, 1 failed\nrt: 7 passed, 2 failed\ndebug: 0 passed, 1 failed\n")
}

func TestTableDetailsOfADifferentFailurePerKernel(t *testing.T) {
	other := smallReads
	other.Got = `"command = [pidlab-"`
	r := Report{Runs: []Run{
		{Kernel: "cloud", Checks: []Check{smallReads}},
		{Kernel: "rt", Checks: []Check{other}},
	}}
	out := table(r)
	assert.Contains(t, out, "\nFAIL TestSmallReadsAreNotOverrun [cloud]\n")
	assert.Contains(t, out, "\nFAIL TestSmallReadsAreNotOverrun [rt]\n")
	assert.Contains(t, out, "    got:      \"comm\"\n")
	assert.Contains(t, out, "    got:      \"command = [pidlab-\"\n")
}

func TestScore(t *testing.T) {
	run := Run{Checks: []Check{
		pass("TestA"), {Name: "TestB", Verdict: Fail}, {Name: "TestB/sub", Verdict: Fail},
		{Name: "TestC", Verdict: Error}, {Name: "TestD", Verdict: Skip}, {Name: "TestE", Verdict: Skip},
		pass("TestF/sub"),
	}}
	assert.Equal(t, "1 passed, 1 failed, 1 error, 2 skipped", run.Score(), "top-level checks only")
	assert.Equal(t, "0 passed, 0 failed", Run{}.Score())
}

func TestTableGroupsChecksThatDidNotRun(t *testing.T) {
	crashed := Run{Kernel: "cloud", Checks: []Check{
		{Name: CheckBuild, Verdict: Pass},
		{Name: "TestRecordFields", Verdict: Error, Got: "the kernel died while it ran: BUG: kernel NULL pointer dereference", Hint: "get_task_mm"},
		{Name: "TestReadReachesEndOfFile", Verdict: Error, Got: NotRun},
		{Name: "TestSmallReadsAreNotOverrun", Verdict: Error, Got: NotRun},
	}}
	var out strings.Builder
	PrintTable(&out, Report{Runs: []Run{crashed}})
	assert.Contains(t, out.String(), "\nERROR TestRecordFields\n", "the crash has its own details")
	assert.Contains(t, out.String(), "\nERROR 2 checks did not run: the run ended before them\n    checks:   TestReadReachesEndOfFile, TestSmallReadsAreNotOverrun\n")
	assert.NotContains(t, out.String(), "ERROR TestSmallReadsAreNotOverrun", "one line for all of them")
	assert.Contains(t, out.String(), "1 passed, 0 failed, 3 errors")
}

func TestWrap(t *testing.T) {
	assert.Equal(t, "alpha, beta,\ngamma", wrap([]string{"alpha", "beta", "gamma"}, 12))
	assert.Equal(t, "one", wrap([]string{"one"}, 2))
}
