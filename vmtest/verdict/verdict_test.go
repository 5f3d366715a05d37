package verdict

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/userspace/guestapi"
)

// scanFile runs a recorded console log through the scanner.
func scanFile(t *testing.T, path string) []Trouble {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var s ConsoleScanner
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		s.Scan(sc.Text())
	}
	return s.Troubles
}

func TestCleanRunHasNoTrouble(t *testing.T) {
	// A real boot, module load, test run and unload on Debian's 6.1 kernel:
	// its benign lines ("NMI watchdog: … disabled", taint notices) are no bug.
	assert.Empty(t, scanFile(t, "testdata/clean-run.log"))
}

func TestOopsIsOneReportWithItsTrace(t *testing.T) {
	troubles := scanFile(t, "testdata/oops-on-read.log")
	require.NotEmpty(t, troubles)
	assert.Equal(t, "Oops", troubles[0].Kind, "the first report is the Oops, its Call Trace inside it")
	assert.Contains(t, troubles[0].Report, "Call Trace:")
	assert.Contains(t, troubles[0].Report, "BUG: kernel NULL pointer dereference")
	assert.Contains(t, troubles[0].Report, "procpid_show")
}

func TestReportKinds(t *testing.T) {
	for line, kind := range map[string]string{
		"[    5.1] WARNING: CPU: 1 PID: 80 at fs/proc/generic.c:715 remove_proc_entry+0x1a0/0x1b0": "WARNING",
		"[    5.1] BUG: sleeping function called from invalid context at mm/slab.h:723":            "sleeping in atomic context",
		"[    5.1] BUG: KASAN: slab-out-of-bounds in procpid_write+0x5a/0x90":                      "KASAN",
		"[    5.1] WARNING: possible recursive locking detected":                                   "lockdep",
		"[   11.0] [ BUG: Invalid wait context ]":                                                  "lockdep",
		"[    5.1] kernel BUG at mm/slub.c:123!":                                                   "BUG",
		"[    5.1] general protection fault, probably for non-canonical address 0xdead":            "general protection fault",
		"[    5.1] Kernel panic - not syncing: Fatal exception":                                    "kernel panic",
		"[  125.1] INFO: task cat:77 blocked for more than 120 seconds.":                           "hung task",
		"[    5.1] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [cat:80]":                     "soft lockup",
		"[   31.5] rcu: INFO: rcu_preempt self-detected stall on CPU":                              "RCU stall",
		"[   31.5] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:":                            "RCU stall",
		"[   60.1] kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)":        "kmemleak",
		"[    5.1] Call Trace:": "Call Trace",
	} {
		var s ConsoleScanner
		s.Scan(line)
		if assert.Len(t, s.Troubles, 1, line) {
			assert.Equal(t, kind, s.Troubles[0].Kind, line)
		}
	}
	for _, benign := range []string{
		"[    0.5] NMI watchdog: Perf NMI watchdog permanently disabled",
		"[    2.2] procpid: loading out-of-tree module taints kernel.",
		"[    2.2] procpid: module verification failed: signature and/or required key missing - tainting kernel",
		"init: 2026/11/22 08:29:01 Welcome to u-root!",
	} {
		var s ConsoleScanner
		s.Scan(benign)
		assert.Empty(t, s.Troubles, benign)
	}
}

func TestNewTaintIgnoresOnlyModuleFlags(t *testing.T) {
	assert.Empty(t, NewTaint(0, 1<<12|1<<13), "O and E are what loading an unsigned out-of-tree module sets")
	assert.Equal(t, "W", NewTaint(0, 1<<9|1<<12))
	assert.Equal(t, "D", NewTaint(1<<12, 1<<7|1<<12))
	assert.Empty(t, NewTaint(1<<9, 1<<9), "a flag set before the run is not new")
}

func TestDecidePriorities(t *testing.T) {
	passed := []TestResult{{Name: "TestA", Outcome: Passed}}
	failed := []TestResult{{Name: "TestA", Outcome: Failed, Output: "ppid: expected 1, actual 2"}}
	for name, tc := range map[string]struct {
		o    Observations
		code Code
		says string
	}{
		"all passed":           {Observations{RunnerStarted: true, Done: true, Tests: passed}, Pass, ""},
		"failed test":          {Observations{RunnerStarted: true, Done: true, Tests: failed}, TestFailed, "ppid: expected 1, actual 2"},
		"oops beats failures":  {Observations{RunnerStarted: true, Tests: failed, Troubles: []Trouble{{Kind: "Oops", Report: "Oops: 0000"}}}, KernelTrouble, "Oops: 0000"},
		"new taint":            {Observations{RunnerStarted: true, Done: true, Tests: passed, NewTaint: "W"}, KernelTrouble, "tainted (W)"},
		"hang":                 {Observations{RunnerStarted: true, Tests: passed, Stopped: "test TestB did not finish"}, Timeout, "TestB"},
		"crash without report": {Observations{RunnerStarted: true, Tests: passed}, KernelTrouble, "ended before the runner finished"},
		"no boot":              {Observations{}, KernelTrouble, "before the runner started"},
		"load failed":          {Observations{RunnerStarted: true, Done: true, LoadErr: "Unknown symbol"}, TestFailed, "did not load: Unknown symbol"},
		"unload failed":        {Observations{RunnerStarted: true, Done: true, Tests: passed, UnloadErr: "EBUSY"}, TestFailed, "did not unload"},
		"no tests":             {Observations{RunnerStarted: true, Done: true}, TestFailed, "no test ran"},
		"no benchmarks":        {Observations{RunnerStarted: true, Done: true, Benchmarks: true}, Pass, ""},
		"leak scan failed": {Observations{RunnerStarted: true, Done: true, Tests: passed, LeakScanErr: "kmemleak scan: operation not permitted"},
			KernelTrouble, "kmemleak could not scan after the module was unloaded: kmemleak scan: operation not permitted"},
		"subtest named": {Observations{RunnerStarted: true, Done: true, Tests: []TestResult{
			{Name: "TestW/empty", Outcome: Failed, Output: "want EINVAL"}, {Name: "TestW", Outcome: Failed}}}, TestFailed, "TestW/empty:\n    want EINVAL"},
	} {
		t.Run(name, func(t *testing.T) {
			err := Decide(tc.o)
			assert.Equal(t, tc.code, CodeOf(errOrNil(err)))
			if tc.says != "" && assert.NotNil(t, err) {
				assert.Contains(t, err.Error(), tc.says)
				assert.False(t, strings.Contains(err.Error(), "TestW:\n"), "a parent failing only for its subtest is not listed")
			}
		})
	}
}

func errOrNil(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

func TestFailureGistKeepsMessagesDropsTrace(t *testing.T) {
	out := `    stat_test.go:75: 
        	Error Trace:	/work/main/userspace/conformance/compare_test.go:117
        	            				/work/main/userspace/conformance/stat_test.go:75
        	Error:      	Not equal: 
        	            	expected: 96
        	            	actual  : 114
        	Test:       	TestThreadCount
        	Messages:   	ppid: module vs /proc/114/stat field 4
`
	g := gist(out)
	assert.NotContains(t, g, "compare_test.go:117")
	for _, want := range []string{"expected: 96", "actual  : 114", "Messages:   \tppid: module vs /proc/114/stat field 4"} {
		assert.Contains(t, g, want)
	}
}

func TestManyFailuresAreSummarized(t *testing.T) {
	var tests []TestResult
	for i := 0; i < 15; i++ {
		tests = append(tests, TestResult{Name: "Test" + string(rune('A'+i)), Outcome: Failed, Output: "boom"})
	}
	err := Decide(Observations{RunnerStarted: true, Done: true, Tests: tests})
	require.NotNil(t, err)
	assert.Contains(t, err.Error(), "15 test(s) failed")
	assert.Contains(t, err.Error(), "(and 5 more failed tests, printed above)")
	assert.NotContains(t, err.Error(), "TestO:")
}

func TestWarningReportStartsAtCutHere(t *testing.T) {
	var s ConsoleScanner
	for _, l := range []string{
		"[   10.0] procpid: loaded: /proc/pid",
		"[   10.0] ------------[ cut here ]------------",
		"[   10.0] proc_dir_entry '/pid' already registered",
		"[   10.0] WARNING: CPU: 1 PID: 119 at fs/proc/generic.c:400 proc_register+0x19f/0x240",
		"[   10.0] ---[ end trace 0000000000000000 ]---",
		"[   11.0] procpid: unloaded",
	} {
		s.Scan(l)
	}
	require.Len(t, s.Troubles, 1)
	assert.Equal(t, "WARNING", s.Troubles[0].Kind)
	assert.True(t, strings.HasPrefix(s.Troubles[0].Report, "[   10.0] ------------[ cut here ]"), s.Troubles[0].Report)
	assert.Contains(t, s.Troubles[0].Report, "already registered", "a WARN's message comes before its WARNING: line")
	assert.NotContains(t, s.Troubles[0].Report, "loaded: /proc/pid")
	assert.NotContains(t, s.Troubles[0].Report, "unloaded")
}

func TestBugKeyLinesQuoteTheKernelsReport(t *testing.T) {
	// A real BUG_ON() in the read handler (the reference module, read
	// before any write): its report starts with "cut here", which says nothing.
	troubles := scanFile(t, "testdata/bug-on-read.log")
	require.NotEmpty(t, troubles)
	require.Equal(t, "BUG", troubles[0].Kind)
	assert.Equal(t, []string{
		"kernel BUG at /tmp/cache-hang/pidlab/modules/18729c859dc533a7.tmp-3692544389/procpid.c:143!",
		"RIP: 0010:procpid_show+0x49e/0x4f4 [procpid]",
		"Call Trace: seq_read_iter+0x122/0x450, seq_read+0xd0/0x100, proc_reg_read+0x56/0xa0, vfs_read+0xa5/0x310",
	}, troubles[0].KeyLines(), "the headline, where the CPU was, the first callers without the stale '? ' frames")
}

func TestWarningKeyLinesKeepItsMessage(t *testing.T) {
	troubles := scanFile(t, "testdata/proc-entry-not-removed.log")
	require.NotEmpty(t, troubles)
	lines := troubles[0].KeyLines()
	require.GreaterOrEqual(t, len(lines), 3, "%q", lines)
	assert.Equal(t, "proc_dir_entry '/proc/pid' already registered", lines[0], "a WARN's message comes before its WARNING: line")
	assert.Equal(t, "WARNING: CPU: 1 PID: 98 at fs/proc/generic.c:400 proc_register+0x19f/0x240", lines[1])
	assert.Regexp(t, `^RIP: 0010:proc_register\+`, lines[2])
}

func TestHeadlineSaysKernelOnce(t *testing.T) {
	err := Decide(Observations{RunnerStarted: true, Troubles: []Trouble{{Kind: "kernel panic", Report: "Kernel panic - not syncing: Fatal exception\n"}}})
	require.NotNil(t, err)
	assert.True(t, strings.HasPrefix(err.Reason, "kernel panic:\n"), "reason: %q", err.Reason)
	err = Decide(Observations{RunnerStarted: true, Troubles: []Trouble{{Kind: "Oops", Report: "Oops: 0000\n"}}})
	require.NotNil(t, err)
	assert.True(t, strings.HasPrefix(err.Reason, "kernel Oops:\n"), "reason: %q", err.Reason)
}

// A failure recorded by the guest joins its test's result whether it
// comes before the result (the usual order: the results channel is ahead
// of test2json) or after it, and a second suite's TestX gets its own.
func TestFailuresJoinTheirTest(t *testing.T) {
	var ts Tests
	ppid := guestapi.Failure{Test: "TestX/ppid", Check: "ppid", Expected: "0", Got: "1"}
	ts.Add(TestEvent{Action: "run", Test: "TestX/ppid"})
	ts.AddFailure(ppid)
	ts.Add(TestEvent{Action: "fail", Test: "TestX/ppid"})
	late := guestapi.Failure{Test: "TestY", Check: "late"}
	ts.Add(TestEvent{Action: "run", Test: "TestY"})
	ts.Add(TestEvent{Action: "fail", Test: "TestY"})
	ts.AddFailure(late)
	second := guestapi.Failure{Test: "TestY", Check: "second suite"}
	ts.Add(TestEvent{Action: "run", Test: "TestY"})
	ts.AddFailure(second)
	ts.Add(TestEvent{Action: "fail", Test: "TestY"})

	require.Len(t, ts.Results, 3)
	assert.Equal(t, []guestapi.Failure{ppid}, ts.Results[0].Failures)
	assert.Equal(t, []guestapi.Failure{late}, ts.Results[1].Failures)
	assert.Equal(t, []guestapi.Failure{second}, ts.Results[2].Failures)
}

// test2json gives a benchmark a run event and no result: it ends, passed,
// when the next top-level test or benchmark runs or its binary passes; a
// failed one has its fail event.
func TestBenchmarksEndWithoutAResultEvent(t *testing.T) {
	var ts Tests
	assert.Empty(t, ts.Add(TestEvent{Action: "run", Test: "BenchmarkA"}))
	assert.Empty(t, ts.Add(TestEvent{Action: "run", Test: "BenchmarkA/sub"}), "a sub-benchmark ends nothing")
	ts.Add(TestEvent{Action: "output", Test: "BenchmarkA/sub", Output: "BenchmarkA/sub-2 \t 1\t 1200 ns/op\n"})
	ended := ts.Add(TestEvent{Action: "run", Test: "BenchmarkB"})
	require.Len(t, ended, 2)
	assert.Equal(t, []string{"BenchmarkA", "BenchmarkA/sub"}, []string{ended[0].Name, ended[1].Name})
	assert.Equal(t, Passed, ended[1].Outcome)
	assert.Contains(t, ended[1].Output, "1200 ns/op")
	assert.Empty(t, ts.Add(TestEvent{Action: "output", Output: "PASS\n"}))
	ended = ts.Add(TestEvent{Action: "pass"})
	require.Len(t, ended, 1)
	assert.Equal(t, "BenchmarkB", ended[0].Name)
	assert.Empty(t, ts.Running())

	ts.Add(TestEvent{Action: "run", Test: "BenchmarkC"})
	ended = ts.Add(TestEvent{Action: "fail", Test: "BenchmarkC"})
	require.Len(t, ended, 1)
	assert.Equal(t, Failed, ended[0].Outcome)
	ts.Add(TestEvent{Action: "run", Test: "TestD"})
	assert.Empty(t, ts.Add(TestEvent{Action: "pass"}), "a running test is no benchmark: it stays running")
	assert.Equal(t, []string{"TestD"}, ts.Running())
}

// Each report belongs to the test the guest had marked on the console when
// it began, a subtest's mark included; a report before any mark has none.
func TestReportsKnowTheirTest(t *testing.T) {
	empty := scanFile(t, "testdata/empty-write-zero-size-ptr.log")
	require.NotEmpty(t, empty)
	assert.Equal(t, "TestBadInputIsHarmless/empty", empty[0].Test, "the empty write's oops")
	kprobe := scanFile(t, "testdata/kprobe-left-registered.log")
	require.Len(t, kprobe, 3)
	for _, tr := range kprobe {
		assert.Equal(t, "TestSmallRingCountsWhatItDrops", tr.Test, "%s", tr.Kind)
	}
	sleep := scanFile(t, "testdata/sleep-in-kprobe-handler.log")
	require.NotEmpty(t, sleep)
	assert.Equal(t, "", sleep[0].Test, "a report before the first mark")

	var s ConsoleScanner
	for _, line := range []string{"[ 1.0] pidlab: test TestA", "[ 1.1] pidlab: test -", "[ 1.2] WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2"} {
		s.Scan(line)
	}
	assert.Equal(t, "", s.Troubles[0].Test, "a report after the runner's no-test mark")
}

// The report a verdict is about is the one that killed the guest: in a
// real log, a WARN (register_kprobe finding a stale probe) came first and
// a page fault killed the guest after it; the verdict, its hint and the
// dying check name the page fault. A run that ended on its own is about
// its first report.
func TestMainTroubleIsTheFatalOne(t *testing.T) {
	troubles := scanFile(t, "testdata/kprobe-left-registered.log")
	require.Equal(t, "WARNING", troubles[0].Kind)
	died := Observations{RunnerStarted: true, Troubles: troubles}
	main, ok := died.MainTrouble()
	require.True(t, ok)
	assert.Equal(t, "Oops", main.Kind)
	assert.Contains(t, main.Report, "BUG: unable to handle page fault for address: ffffffffc0369108")
	assert.Equal(t, troubles[1], main, "the first fatal report, not the oops it set off after")
	v := Decide(died)
	require.NotNil(t, v)
	assert.True(t, strings.HasPrefix(v.Error(), "kernel Oops:"), "the verdict's headline: %s", firstLineOf(v.Error()))
	assert.Contains(t, v.Error(), "(and 2 more report(s): WARNING, Oops)")

	done := died
	done.Done = true
	main, _ = done.MainTrouble()
	assert.Equal(t, troubles[0], main, "a run that ended on its own: the first report")

	var none Observations
	_, ok = none.MainTrouble()
	assert.False(t, ok)
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
