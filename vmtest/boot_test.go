package vmtest

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/kbuild"
	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/qemu"
	"github.com/pidlab/pidlab/vmtest/report"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

func TestCrashedTestsTrustTheConsoleMark(t *testing.T) {
	// The events lost the start of kernel-thread: they still think an
	// earlier subtest runs.
	running := []string{"TestRecordFields", "TestRecordFields/running", "TestRecordFields/running/stime"}
	assert.Equal(t, []string{"TestRecordFields", "TestRecordFields/kernel-thread"},
		markedAndInner("TestRecordFields/kernel-thread", running), "the stale subtests are dropped, the parent kept")
	assert.Equal(t, []string{"TestMissingPID"}, markedAndInner("TestMissingPID", running),
		"a top-level test whose start event was lost")
	assert.Equal(t, []string{"TestRecordFields", "TestRecordFields/kernel-thread", "TestRecordFields/kernel-thread/vsize"},
		markedAndInner("TestRecordFields/kernel-thread", []string{"TestRecordFields", "TestRecordFields/kernel-thread", "TestRecordFields/kernel-thread/vsize"}),
		"an inner subtest the events know of is kept")
}

func TestLimitsScaleWithTheKernelsSlowdown(t *testing.T) {
	c := Config{Timeout: 15 * time.Minute, TestTimeout: 45 * time.Second, BootTimeout: 90 * time.Second}
	stock := c.limitsFor(&kernel.Kernel{Name: "cloud"}, 1)
	assert.Equal(t, c, stock, "the limits are set for a stock kernel")

	debug := c.limitsFor(&kernel.Kernel{Name: kernel.DebugName}, 1)
	const slowdown = 5 // the debug kernel's, in kernels.toml
	assert.Equal(t, 45*time.Second*slowdown, debug.TestTimeout, "a test may take as many times longer")
	assert.Equal(t, 90*time.Second*slowdown, debug.BootTimeout)
	assert.Equal(t, 15*time.Minute*slowdown, debug.Timeout)

	three := c.limitsFor(&kernel.Kernel{Name: "cloud"}, 3)
	assert.Equal(t, 45*time.Minute, three.Timeout, "the VM's limit is each module's share times the modules it tests")
	assert.Equal(t, c.TestTimeout, three.TestTimeout, "a test's is its own")
}

// testFollower follows no VM: its stop kills a stand-in process.
func testFollower(t *testing.T) *follower {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return testFollowerOf(t, cmd, "procpid")
}

// testFollowerOf follows the boot of modules of these names.
func testFollowerOf(t *testing.T, cmd *exec.Cmd, names ...string) *follower {
	t.Helper()
	var mods []*PreparedModule
	for _, name := range names {
		mods = append(mods, &PreparedModule{Dir: "/repo/module/" + name, Module: &kbuild.Module{Name: name}})
	}
	f := newFollower(Config{Log: &progress.Log{W: io.Discard}}, &kernel.Kernel{Name: "cloud"}, qemu.TCG, mods, "")
	f.vm, f.start = &qemu.VM{Cmd: cmd}, time.Now()
	require.NoError(t, f.startConverter())
	t.Cleanup(f.conv.close)
	f.setPhase("booting")
	return f
}

// followConsole feeds a recorded console log to f, the runner's start
// event at the line that shows the module loading.
func followConsole(t *testing.T, f *follower, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if strings.Contains(line, "loading out-of-tree module") {
			f.onEvent(`{"kind":"start","kernel":"6.1.0-57-cloud-amd64"}`)
		}
		f.onConsole(line)
	}
}

// finish records what the follower saw, as follow does when QEMU exits.
func finish(f *follower) *Result {
	f.cur.finish(f)
	return f.cur.res
}

func TestLockupWhileLoadingStopsTheRun(t *testing.T) {
	// A real run: the module's init spins (init-loops-forever); RCU
	// reports the stall 25 s into the load, the watchdog a soft lockup 26 s
	// later, and the run went on to the VM's limit.
	f := testFollower(t)
	followConsole(t, f, "verdict/testdata/init-loops-forever.log")
	o := f.cur.res.Observations
	assert.Equal(t, "the VM was stopped at the kernel's RCU stall report; the guest was loading the module", o.Stopped)
	assert.Equal(t, verdict.PhaseLoading, o.Phase)
	require.NotEmpty(t, o.Troubles)
	assert.Contains(t, o.Troubles[0].Report, "</TASK>", "the report is whole when the run stops")

	res, err := decided(finish(f))
	require.Error(t, err)
	assert.Equal(t, verdict.KernelTrouble, verdict.CodeOf(err), "a lockup is kernel trouble, as the README's table says")
	assert.ErrorContains(t, err, "kernel RCU stall:")
	assert.ErrorContains(t, err, "RIP: 0010:procpid_init+0x7/0x1000 [procpid]")
	assert.ErrorContains(t, err, "the guest was loading the module")
	assert.ErrorContains(t, err, "hint: a CPU ran in the kernel for seconds without yielding")
	load := findCheck(t, RunReport("cloud", res, err), report.CheckLoad)
	assert.Equal(t, report.Error, load.Verdict)
	assert.Equal(t, "did not finish: rcu: INFO: rcu_preempt self-detected stall on CPU", load.Got)
	assert.Equal(t, []string{"rcu: INFO: rcu_preempt self-detected stall on CPU", "RIP: 0010:procpid_init+0x7/0x1000 [procpid]",
		"Call Trace: do_one_initcall+0x59/0x220, do_init_module+0x4a/0x1f0, __do_sys_init_module+0x17f/0x1b0, do_syscall_64+0x5d/0x90"}, load.Console)
	assert.Contains(t, load.Hint, "a loop that never ends")
}

func TestLoadPastItsLimitStopsTheRun(t *testing.T) {
	f := testFollower(t)
	f.onEvent(`{"kind":"start","kernel":"6.1.0-57-cloud-amd64"}`)
	f.onConsole("[    6.196321] procpid: loading out-of-tree module taints kernel.")
	f.hungModule()
	assert.Empty(t, f.cur.res.Observations.Stopped, "within the limit")
	f.phaseStart = time.Now().Add(-f.moduleLimit)
	f.hungModule()
	assert.Equal(t, "the guest was loading the module for over 1m0s (the limit on cloud under tcg): it hangs", f.cur.res.Observations.Stopped)
	res, err := decided(finish(f))
	assert.Equal(t, verdict.Timeout, verdict.CodeOf(err))
	assert.ErrorContains(t, err, "last console lines:\n    [    6.196321] procpid: loading out-of-tree module taints kernel.")
	load := findCheck(t, RunReport("cloud", res, err), report.CheckLoad)
	assert.Equal(t, "did not finish: loading hangs", load.Got)
	assert.Equal(t, []string{"[    6.196321] procpid: loading out-of-tree module taints kernel."}, load.Console, "the console's last lines")
	assert.Contains(t, load.Hint, "init function never returned")
}

func TestFloodedConsoleStopsTheRun(t *testing.T) {
	f := testFollower(t)
	f.onEvent(`{"kind":"start","kernel":"6.1.0-57-cloud-amd64"}`)
	f.onEvent(`{"kind":"load"}`)
	f.cur.tests.Add(verdict.TestEvent{Action: "run", Test: "TestReadBeforeAnyWrite"})
	f.onConsole("[    4.894346] pidlab: test TestReadBeforeAnyWrite")
	for i := range verdict.FloodLines {
		f.onConsole(fmt.Sprintf("[   12.%06d] procpid: show: line %d of a debugging dump", i, i))
	}
	o := f.cur.res.Observations
	require.True(t, o.Flooded)
	assert.Regexp(t, `^the console is flooded: \d+ lines/s \(more than 10000 lines within 10s\) while the guest was running TestReadBeforeAnyWrite; the VM was stopped$`, o.Stopped)
	res, err := decided(finish(f))
	assert.Equal(t, verdict.Timeout, verdict.CodeOf(err))
	assert.ErrorContains(t, err, "line 9999 of a debugging dump")
	run := RunReport("cloud", res, err)
	assert.Equal(t, 1, countNamed(run.Checks, "TestReadBeforeAnyWrite"), "the stopped test is reported once, as hung, not also as the kernel dying")
	c := findCheck(t, run, "TestReadBeforeAnyWrite")
	assert.Equal(t, report.Error, c.Verdict)
	assert.Equal(t, "did not finish: it hangs", c.Got)
	assert.Contains(t, c.Hint, "prints in a loop")
	assert.Len(t, c.Console, quoteLines)
}

func TestReportsNameTheUsersFile(t *testing.T) {
	// A real BUG_ON() report of a module built by kbuild in its cache: the
	// kernel names the build copy's file.
	f := testFollower(t)
	f.cur.res.Module = &kbuild.Module{Path: "/tmp/cache-hang/pidlab/modules/18729c859dc533a7/procpid.ko", Name: "procpid", Source: "/home/student/procpid"}
	followConsole(t, f, "verdict/testdata/bug-on-read.log")
	require.NotEmpty(t, f.cur.res.Observations.Troubles)
	assert.Equal(t, "kernel BUG at /home/student/procpid/procpid.c:143!", f.cur.res.Observations.Troubles[0].KeyLines()[0])
}

func countNamed(checks []report.Check, name string) int {
	n := 0
	for _, c := range checks {
		if c.Name == name {
			n++
		}
	}
	return n
}

func TestHangMessagesNameTheSettingAsGiven(t *testing.T) {
	f := &follower{kernel: &kernel.Kernel{Name: kernel.DebugName}}
	assert.Equal(t, "PIDLAB_TEST_TIMEOUT=2m0s ×5 on the debug kernel", f.setting(EnvTestTimeout, 10*time.Minute),
		"a user who lowers the setting to the number shown must not get five times it")
	f.kernel = &kernel.Kernel{Name: "cloud"}
	assert.Equal(t, "PIDLAB_TIMEOUT=15m0s", f.setting(EnvTimeout, 15*time.Minute))
}

// A kernel with kmemleak promises a leak check: when the scan after unload
// fails, the run does not pass as if the kernel stayed clean.
func TestFailedLeakScanIsNotAPass(t *testing.T) {
	f := testFollower(t)
	f.onEvent(`{"kind":"start","kernel":"6.1.192-pidlab-debug"}`)
	f.onEvent(`{"kind":"load"}`)
	f.cur.tests.Add(verdict.TestEvent{Action: "run", Test: "TestEntryExists"})
	f.cur.tests.Add(verdict.TestEvent{Action: "pass", Test: "TestEntryExists"})
	f.onEvent(`{"kind":"unload"}`)
	f.onEvent(`{"kind":"leaks","err":"kmemleak scan: write /sys/kernel/debug/kmemleak: operation not permitted"}`)
	f.onEvent(`{"kind":"module-done"}`)
	_, err := decided(finish(f))
	assert.Equal(t, verdict.KernelTrouble, verdict.CodeOf(err))
	assert.ErrorContains(t, err, "kmemleak could not scan after the module was unloaded: kmemleak scan: write /sys/kernel/debug/kmemleak: operation not permitted")
}

// drainTests converts what the guest's tests printed so far, as the
// follow loop does once the results channel ends.
func drainTests(f *follower) {
	f.conv.close()
	for ev := range f.testEvents {
		f.onTestEvent(ev)
	}
	f.testEvents = nil
}

// guestTestRun is the events of one module's part of a boot whose only
// test, name, passes.
func guestTestRun(module, name string) []string {
	return []string{
		`{"kind":"load","module":"` + module + `","taint":4096}`,
		`{"kind":"test-output","module":"` + module + `","line":"=== RUN   ` + name + `"}`,
		`{"kind":"test-output","module":"` + module + `","line":"--- PASS: ` + name + ` (0.00s)"}`,
		`{"kind":"test-output","module":"` + module + `","line":"PASS"}`,
		`{"kind":"test-exit","module":"` + module + `"}`,
		`{"kind":"unload","module":"` + module + `"}`,
		`{"kind":"module-done","module":"` + module + `","taint":4096}`,
	}
}

// One boot tests every module: each module's tests, taint and console are
// its own, and a module the VM ended before is not run, with the reason.
func TestOneBootJudgesEachModuleOnItsOwn(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	f := testFollowerOf(t, cmd, "hello", "procpid")
	f.onEvent(`{"kind":"start","kernel":"6.1.0-57-cloud-amd64","taint":0}`)
	for _, ev := range append(guestTestRun("hello", "TestHello"), guestTestRun("procpid", "TestEntryExists")...) {
		f.onEvent(ev)
	}
	f.onEvent(`{"kind":"done","taint":12288}`)
	drainTests(f)
	f.decide()
	hello, procpid := f.parts[0].res, f.parts[1].res
	require.Len(t, hello.Tests, 1)
	assert.Equal(t, "TestHello", hello.Tests[0].Name, "a test is the module's it ran in")
	require.Len(t, procpid.Tests, 1)
	assert.Equal(t, "TestEntryExists", procpid.Tests[0].Name)
	assert.Nil(t, hello.Err)
	assert.Nil(t, procpid.Err, "the O taint the first module's load set is expected, and no new taint of the second's")
	assert.True(t, procpid.Observations.RunnerStarted)

	// The first module crashes the kernel: the second is not run.
	f = testFollowerOf(t, cmd, "hello", "procpid")
	f.onEvent(`{"kind":"start","kernel":"6.1.0-57-cloud-amd64"}`)
	f.onEvent(`{"kind":"load","module":"hello"}`)
	f.onEvent(`{"kind":"test-output","module":"hello","line":"=== RUN   TestHello"}`)
	followConsole(t, f, "verdict/testdata/oops-on-read.log")
	drainTests(f)
	f.decide()
	hello, procpid = f.parts[0].res, f.parts[1].res
	assert.Equal(t, verdict.KernelTrouble, verdict.CodeOf(hello.Err))
	assert.Equal(t, "hello", procpid.NotReached)
	require.NotNil(t, procpid.Err)
	assert.Equal(t, verdict.KernelTrouble, procpid.Err.Code, "no pass for a module that never ran")
	assert.Contains(t, procpid.Err.Reason, "not run: the VM ended during module hello's part of the boot (kernel trouble: ")
	assert.Empty(t, procpid.Observations.Troubles, "the crash is hello's, not procpid's")
}

// A module's timeline: each span is the time between the guest's events
// that bound it, on the follower's clock; the boot is the time to the
// runner's start.
func TestTimelineSpansTheGuestsEvents(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	f := testFollowerOf(t, cmd, "procpid")
	clock := f.start
	f.now = func() time.Time { return clock }
	at := func(d time.Duration, ev string) {
		clock = clock.Add(d)
		f.onEvent(ev)
	}
	at(3*time.Second, `{"kind":"start","kernel":"6.1.0-57-cloud-amd64"}`)
	at(200*time.Millisecond, `{"kind":"load","module":"procpid"}`)
	at(5*time.Second, `{"kind":"test-exit","module":"procpid","binary":"/pidlab/conformance.test"}`)
	clock = clock.Add(300 * time.Millisecond)
	f.onTestEvent(verdict.TestEvent{Action: "run", Test: "TestChecks"}) // the next suite's first test
	at(2*time.Second, `{"kind":"test-exit","module":"procpid","binary":"/pidlab/profilecheck.test"}`)
	at(100*time.Millisecond, `{"kind":"unload","module":"procpid"}`)
	at(400*time.Millisecond, `{"kind":"leaks","module":"procpid"}`)
	at(10*time.Millisecond, `{"kind":"module-done","module":"procpid"}`)

	res := f.parts[0].res
	assert.Equal(t, 3*time.Second, res.Boot)
	assert.Equal(t, []Span{
		{"load", 200 * time.Millisecond}, {"suite conformance", 5 * time.Second}, {"reload", 300 * time.Millisecond},
		{"suite profilecheck", 2 * time.Second}, {"unload", 100 * time.Millisecond}, {"leak scan", 400 * time.Millisecond},
	}, res.Timeline)

	var out strings.Builder
	PrintTimes(&progress.Log{W: &out}, []KernelRun{{Module: "procpid", Name: "cloud", Result: res}})
	assert.Equal(t, "time: boot 3.0 s; procpid 8.0 s (load 0.2, suite conformance 5.0, reload 0.3, suite profilecheck 2.0, unload 0.1, leak scan 0.4)\n", out.String())
	out.Reset()
	PrintTimes(&progress.Log{W: &out}, []KernelRun{{Module: "procpid", Name: "cloud", Result: res}, {Module: "procpid", Name: "debug", Result: res}})
	assert.Contains(t, out.String(), "time on cloud: boot 3.0 s; ")
	assert.Contains(t, out.String(), "time on debug: boot 3.0 s; ", "a line per kernel")

	run := RunReport("cloud", res, nil)
	require.Len(t, run.Timeline, 6, "the JSON report holds the timeline")
	assert.Equal(t, report.Span{What: "suite conformance", Seconds: 5}, run.Timeline[1])
}

// The host's preparation comes first on the time line and in the report,
// once per boot: its runs share it.
func TestPreparationTimesComeFirst(t *testing.T) {
	prep := []Span{{"host tools and kernel", 100 * time.Millisecond}, {"build procpid", 1200 * time.Millisecond},
		{"guest programs", 300 * time.Millisecond}, {"initramfs", 200 * time.Millisecond}}
	res := &Result{Boot: 3 * time.Second, Timeline: []Span{{"load", 200 * time.Millisecond}}}
	runs := []KernelRun{{Module: "procpid", Name: "cloud", Prepared: prep, Result: res}, {Module: "hello", Name: "cloud", Prepared: prep, Result: res}}

	var out strings.Builder
	PrintTimes(&progress.Log{W: &out}, runs)
	assert.Equal(t, "time: prepare 1.8 s (host tools and kernel 0.1, build procpid 1.2, guest programs 0.3, initramfs 0.2); boot 3.0 s; "+
		"procpid 0.2 s (load 0.2); hello 0.2 s (load 0.2)\n", out.String())

	rep := Report(Config{}, runs)
	require.Len(t, rep.Runs, 2)
	assert.Equal(t, []report.Span{{What: "host tools and kernel", Seconds: 0.1}, {What: "build procpid", Seconds: 1.2},
		{What: "guest programs", Seconds: 0.3}, {What: "initramfs", Seconds: 0.2}}, rep.Runs[0].Prepared)
}
