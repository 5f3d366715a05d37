package vmtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/vmtest/kbuild"
	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/qemu"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// Result is what one VM run saw.
type Result struct {
	Kernel          *kernel.Kernel
	Module          *kbuild.Module
	GuestKernel     string // uname -r, as the guest reported it
	Accel           qemu.Accel
	Planned         []string // the guest's top-level tests, in order
	Tests           []verdict.TestResult
	Observations    verdict.Observations
	ConsolePath     string
	QEMUCmdline     string
	BootToFirstTest time.Duration
	VMTime          time.Duration
	Err             *verdict.Error // nil when everything passed
}

// consoleTailLines is how much console a hang or crash report quotes.
const consoleTailLines = 25

// Boot runs the prepared VM and follows it to a verdict.
func Boot(ctx context.Context, c Config, p *Prepared) (*Result, error) {
	accel, why, err := qemu.ChooseAccel(c.Accel)
	if err != nil {
		return nil, verdict.SetupError(qemu.EnvAccel+"=tcg", "%v", err)
	}
	if accel == qemu.TCG {
		c.Log.Info("note: %s", why)
	}
	c = c.limitsFor(p.Kernel)
	runDir, err := newRunDir(c.CacheDir)
	if err != nil {
		return nil, err
	}
	res := &Result{Kernel: p.Kernel, Module: p.Module, Planned: p.Planned, Accel: accel, ConsolePath: filepath.Join(runDir, "console.log")}
	qc := qemu.Config{
		Binary: "qemu-system-x86_64", Kernel: p.Kernel.Image, Initrd: p.Initramfs,
		Accel: accel, MemoryMB: 1024, CPUs: 2,
		Append: []string{guestapi.RunArgsKernelArg(runArgs(c, c.Timeout))},
	}
	c.Log.Step("booting %s with module %s (%s)", p.Kernel.Release, p.Module.Name, accel)
	for attempt := 1; ; attempt++ {
		f, err := bootOnce(ctx, c, qc, res)
		if ctx.Err() != nil || verdict.WasInterrupted(ctx, err) {
			// Whatever the guest showed after the stop (QEMU killed
			// mid-line) is no verdict on the module.
			res.Err = verdict.Interruption(f.doing())
			return res, nil
		}
		if err != nil {
			return res, err
		}
		if f.bootHung && attempt < bootAttempts {
			// Nothing of the module has run yet: a guest stuck in early
			// boot (seen about once in 25 TCG boots) is QEMU's, not the
			// module's, so one more boot is fair.
			hung := strings.TrimSuffix(res.ConsolePath, ".log") + "-hung-boot.log"
			os.Rename(res.ConsolePath, hung)
			c.Log.Info("the guest hung in early boot, before the module was loaded; booting again (console: %s)", hung)
			res.Observations = verdict.Observations{}
			continue
		}
		res.Tests = f.tests.Results
		res.Observations.Tests = res.Tests
		res.Observations.ModuleHints = p.Manifest.ModuleHints()
		res.Err = verdict.Decide(res.Observations)
		return res, nil
	}
}

// limitsFor is c with its limits scaled for a kernel slower than the
// stock ones they are set for: a verdict must not depend on how fast the
// kernel runs the same work.
func (c Config) limitsFor(k *kernel.Kernel) Config {
	if k.Scale(time.Second) != time.Second {
		c.Log.Debug("limits ×%g for %s: boot %s, test %s, VM %s", k.Slowdown(), k.Release,
			k.Scale(c.BootTimeout), k.Scale(c.TestTimeout), k.Scale(c.Timeout))
	}
	c.BootTimeout = k.Scale(c.BootTimeout)
	c.TestTimeout = k.Scale(c.TestTimeout)
	c.Timeout = k.Scale(c.Timeout)
	return c
}

// setting names the setting behind a limit scaled by limitsFor, as the
// user gave it: "PIDLAB_TIMEOUT=15m0s ×5 on the debug kernel".
func (f *follower) setting(env string, scaled time.Duration) string {
	k := f.res.Kernel
	if k.Slowdown() == 1 {
		return fmt.Sprintf("%s=%s", env, scaled)
	}
	return fmt.Sprintf("%s=%s ×%g on the %s kernel", env, time.Duration(float64(scaled)/k.Slowdown()), k.Slowdown(), k.Name)
}

// bootAttempts bounds the boots of one run: a retry only for a boot hang.
const bootAttempts = 2

func bootOnce(ctx context.Context, c Config, qc qemu.Config, res *Result) (*follower, error) {
	vm, err := qemu.Start(ctx, qc)
	if err != nil {
		return nil, verdict.SetupError("apt-get install qemu-system-x86", "starting QEMU: %v", err)
	}
	res.QEMUCmdline = progress.Cmdline(vm.Repro())
	c.Log.Debug("exec: %s", progress.Cmdline(vm.Cmd))
	f := &follower{c: c, res: res, vm: vm, start: time.Now(), moduleLimit: moduleLimit(res.Kernel, res.Accel)}
	err = f.follow()
	res.VMTime = time.Since(f.start)
	return f, err
}

// newRunDir makes a fresh folder for one run's logs.
func newRunDir(cache string) (string, error) {
	dir := filepath.Join(cache, "runs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(dir, time.Now().Format("20060102-150405-"))
}

// follower reads a running VM's console and events until QEMU exits.
type follower struct {
	c     Config
	res   *Result
	vm    *qemu.VM
	start time.Time

	console  verdict.ConsoleScanner
	tail     []string
	tests    verdict.Tests
	conv     *converter
	phase    string    // what the guest is doing, for a hang report
	bootHung bool      // the runner did not start within BootTimeout
	progress time.Time // when a test last started or ended
	counted  time.Time // when printCount last spoke
	marked   string    // the test the guest last named on the console
	before   uint64    // taint at start

	phaseStart  time.Time     // when phase began
	moduleLimit time.Duration // for loading or unloading the module
	flood       verdict.FloodMeter
	lockupSeen  time.Time // when the kernel's first lockup report began
}

func (f *follower) follow() error {
	defer f.vm.Close()
	log, err := createConsoleLog(f.res.ConsolePath)
	if err != nil {
		f.vm.Kill()
		f.vm.Wait()
		return err
	}
	defer log.Close()
	f.conv, err = startConverter()
	if err != nil {
		f.vm.Kill()
		f.vm.Wait()
		return err
	}
	consoleLines := lines(f.vm.Console)
	events := lines(f.vm.Results)
	testEvents := f.conv.events
	exited := make(chan error, 1)
	go func() { exited <- f.vm.Wait() }()

	deadline := time.NewTimer(f.c.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	f.setPhase("booting")
	f.progress = time.Now()
	var qemuErr error
	for consoleLines != nil || events != nil || testEvents != nil {
		select {
		case line, ok := <-consoleLines:
			if !ok {
				consoleLines = nil
				continue
			}
			fmt.Fprintln(log, line)
			f.onConsole(line)
		case line, ok := <-events:
			if !ok {
				events = nil
				f.conv.close() // its events end once it has converted everything
				continue
			}
			f.onEvent(line)
		case ev, ok := <-testEvents:
			if !ok {
				testEvents = nil
				continue
			}
			f.onTestEvent(ev)
		case <-tick.C:
			f.hungBoot()
			f.hungTest()
			f.hungModule()
			f.lockedUp()
			f.printCount()
		case <-deadline.C:
			f.stop(fmt.Sprintf("the VM did not finish within %s (%s); the guest was %s", f.c.Timeout, f.setting(EnvTimeout, f.c.Timeout), f.describePhase()))
		case qemuErr = <-exited:
			exited = nil
		}
	}
	if exited != nil {
		qemuErr = <-exited
	}
	f.res.Observations.ConsoleTail = f.tail
	f.res.Observations.Running = f.crashedTests()
	if !f.res.Observations.RunnerStarted && qemuErr != nil && f.res.Observations.Stopped == "" && len(f.tail) == 0 {
		return verdict.SetupError("run the QEMU command by hand to see why: "+progress.Cmdline(f.vm.Repro()), "QEMU failed: %v: %s", qemuErr, strings.TrimSpace(f.vm.Stderr.String()))
	}
	return nil
}

// stop ends a hung VM, recording why.
func (f *follower) stop(why string) {
	if f.res.Observations.Stopped == "" {
		f.res.Observations.Stopped = why
		f.res.Observations.Phase = f.phase
		f.tests.MarkHung()
		for _, r := range f.tests.Results {
			if r.Outcome == verdict.Hung {
				f.printResult(r)
			}
		}
	}
	f.vm.Kill()
}

// hungTest stops the VM when a test has run past the per-test limit.
func (f *follower) hungTest() {
	running := f.tests.Running()
	if len(running) == 0 || time.Since(f.progress) < f.c.TestTimeout {
		return
	}
	name := running[len(running)-1]
	f.stop(fmt.Sprintf("test %s did not finish within %s (%s): it hangs", name, f.c.TestTimeout, f.setting(EnvTestTimeout, f.c.TestTimeout)))
}

// hungBoot stops a guest that has not started the runner in time.
func (f *follower) hungBoot() {
	if f.res.Observations.RunnerStarted || f.bootHung || time.Since(f.start) < f.c.BootTimeout {
		return
	}
	f.bootHung = true
	f.stop(fmt.Sprintf("the guest did not start the test runner within %s: it hung while booting", f.c.BootTimeout))
}

// setPhase records what the guest does now, and since when.
func (f *follower) setPhase(phase string) {
	if phase != f.phase {
		f.phase, f.phaseStart = phase, time.Now()
	}
}

// hungModule stops the VM when loading or unloading the module (and
// reloading it between test binaries) takes past its limit.
func (f *follower) hungModule() {
	if f.phase != verdict.PhaseLoading && f.phase != verdict.PhaseUnloading || time.Since(f.phaseStart) < f.moduleLimit {
		return
	}
	f.stop(fmt.Sprintf("the guest was %s for over %s (the limit on %s under %s): it hangs",
		f.phase, f.moduleLimit, f.res.Kernel.Name, f.res.Accel))
}

// lockupGrace is how long the rest of a lockup report may take to arrive.
const lockupGrace = 3 * time.Second

// lockedUp stops the VM at the kernel's first lockup report (soft lockup,
// hung task, RCU stall) once it has been printed: a run in that state may
// never end, and the report says where it is stuck.
func (f *follower) lockedUp() {
	t, complete := f.console.Lockup()
	if t == nil || f.res.Observations.Stopped != "" {
		return
	}
	if f.lockupSeen.IsZero() {
		f.lockupSeen = time.Now()
	}
	if complete || time.Since(f.lockupSeen) >= lockupGrace {
		f.stop(fmt.Sprintf("the VM was stopped at the kernel's %s report; the guest was %s", t.Kind, f.describePhase()))
	}
}

// flooded stops the VM when the console prints past the flood rate: a
// module printing in a loop, whose run would take hours and whose log
// would fill the disk.
func (f *follower) flooded() {
	rate := f.flood.Add(time.Now())
	if rate == 0 || f.res.Observations.Stopped != "" {
		return
	}
	f.res.Observations.Flooded = true
	f.stop(fmt.Sprintf("the console is flooded: %d lines/s (more than %d lines within %s) while the guest was %s; the VM was stopped",
		rate, verdict.FloodLines, verdict.FloodWindow, f.describePhase()))
}

// doing says what the run was doing, for an interruption: f is nil when
// QEMU did not start.
func (f *follower) doing() string {
	if f == nil {
		return "booting (starting QEMU)"
	}
	return f.describePhase()
}

func (f *follower) describePhase() string {
	if running := f.tests.Running(); len(running) > 0 {
		return "running " + running[len(running)-1]
	}
	return f.phase
}

// crashedTests names the tests running when the VM ended, outermost
// first. The test events of the last moments before a panic may be lost;
// the guest's mark on the console is not. So after a crash the marked test
// and its parents ran, with any subtest of it the events name; the other
// running tests the events name had ended unheard. A run the host stopped
// did not crash: its running tests are in Tests as hung.
func (f *follower) crashedTests() []string {
	running := f.tests.Running()
	if f.marked == "" || f.marked == guestapi.NoTest || f.res.Observations.Done || f.res.Observations.Stopped != "" {
		return running
	}
	return markedAndInner(f.marked, running)
}

// markedAndInner is marked with its parents (A, A/B for A/B), then the
// names in running below it.
func markedAndInner(marked string, running []string) []string {
	var names []string
	parts := strings.Split(marked, "/")
	for i := range parts {
		names = append(names, strings.Join(parts[:i+1], "/"))
	}
	for _, name := range running {
		if strings.HasPrefix(name, marked+"/") {
			names = append(names, name)
		}
	}
	return names
}

func (f *follower) onConsole(line string) {
	if m := guestapi.TestMark.FindStringSubmatch(line); m != nil {
		f.marked = m[1]
	}
	line = f.res.Module.Relativize(line)
	f.flooded()
	f.console.Scan(line)
	f.lockedUp()
	f.res.Observations.Troubles = f.console.Troubles
	f.tail = append(f.tail, line)
	if len(f.tail) > consoleTailLines {
		f.tail = f.tail[1:]
	}
}

func (f *follower) onEvent(line string) {
	var ev guestapi.Event
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		f.c.Log.Debug("results channel: not an event: %q", line)
		return
	}
	o := &f.res.Observations
	switch ev.Kind {
	case guestapi.KindStart:
		o.RunnerStarted = true
		f.res.GuestKernel = ev.Kernel
		f.before = ev.Taint
		f.setPhase(verdict.PhaseLoading)
		f.c.Log.Debug("guest runner started on %s after %s", ev.Kernel, time.Since(f.start).Round(time.Millisecond))
	case guestapi.KindLoad:
		if ev.Err != "" {
			o.LoadErr = ev.Err
			f.c.Log.Info("module %s did not load: %s", f.res.Module.Name, ev.Err)
			return
		}
		f.setPhase(verdict.PhaseTesting)
		f.c.Log.Info("module %s loaded", f.res.Module.Name)
	case guestapi.KindTestOutput:
		f.conv.write(ev.Line)
	case guestapi.KindFailure:
		if ev.Failure != nil {
			f.tests.AddFailure(*ev.Failure)
		}
	case guestapi.KindTestExit:
		if ev.Err != "" && f.tests.Count(verdict.Failed) == 0 {
			o.BinaryErrs = append(o.BinaryErrs, fmt.Sprintf("test binary %s ended badly: %s", filepath.Base(ev.Binary), ev.Err))
		}
		f.setPhase(verdict.PhaseUnloading) // and reloading it for the next test binary
	case guestapi.KindUnload:
		if ev.Err != "" {
			o.UnloadErr = ev.Err
			f.c.Log.Info("module %s did not unload: %s", f.res.Module.Name, ev.Err)
		} else {
			f.c.Log.Info("module %s unloaded", f.res.Module.Name)
		}
		f.setPhase("scanning for leaks")
	case guestapi.KindLeaks:
		if ev.Err != "" {
			o.LeakScanErr = ev.Err
			f.c.Log.Info("kmemleak scan failed: %s", ev.Err)
			return
		}
		o.Leaks = ev.Line
		f.setPhase("powering off")
		f.c.Log.Debug("kmemleak scan after unload: %d report(s)", strings.Count(ev.Line, "unreferenced object"))
	case guestapi.KindDone:
		o.Done = true
		o.NewTaint = verdict.NewTaint(f.before, ev.Taint)
	}
}

func (f *follower) onTestEvent(ev verdict.TestEvent) {
	switch ev.Action {
	case "run":
		if f.res.BootToFirstTest == 0 {
			f.res.BootToFirstTest = time.Since(f.start)
		}
		f.setPhase(verdict.PhaseTesting) // the module is (re)loaded
		f.progress = time.Now()
	case "pass", "fail", "skip":
		f.progress = time.Now()
	}
	if r := f.tests.Add(ev); r != nil {
		f.printResult(*r)
	}
}

// countEvery is how often a quiet run says how far along it is.
const countEvery = 10 * time.Second

// printCount tells a person watching a quiet run that it moves.
func (f *follower) printCount() {
	if !f.c.QuietTests || f.c.Log.Verbose || len(f.tests.Results) == 0 || time.Since(f.counted) < countEvery {
		return
	}
	f.counted = time.Now()
	f.c.Log.Info("%d checks done, %s", len(f.tests.Results), f.describePhase())
}

// printResult prints a finished test as go test -v does, with its output
// when it did not pass.
func (f *follower) printResult(r verdict.TestResult) {
	if f.c.QuietTests && !f.c.Log.Verbose {
		return
	}
	depth := strings.Count(r.Name, "/")
	pad := strings.Repeat("    ", depth)
	f.c.Log.Line("%s--- %s: %s (%.2fs)", pad, strings.ToUpper(string(r.Outcome)), r.Name, r.Elapsed.Seconds())
	if r.Outcome == verdict.Failed || r.Outcome == verdict.Hung || (r.Outcome == verdict.Skipped && f.c.Log.Verbose) {
		for _, l := range strings.Split(strings.TrimRight(r.Output, "\n"), "\n") {
			if l != "" {
				f.c.Log.Line("%s    %s", pad, l)
			}
		}
	}
}

// lines streams r line by line until EOF.
func lines(r interface{ Read([]byte) (int, error) }) chan string {
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			s, err := br.ReadString('\n')
			if s != "" {
				ch <- strings.TrimRight(s, "\r\n")
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}
