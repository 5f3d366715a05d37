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
	// NotReached names the module whose part of the boot ended the VM
	// before this module's began (its verdict is this one's reason).
	NotReached string
	// Figures are what the module's benchmarks measured, the last value
	// of each.
	Figures []guestapi.Figure
	// Boot is how long the VM took to start the guest runner (the same
	// for every module of a boot); Timeline is where this module's part
	// of the VM's time went, in order.
	Boot     time.Duration
	Timeline []Span
	Err      *verdict.Error // nil when everything passed
}

// Span is a stretch of a module's part of the boot, timed from the guest's
// events as they reach the host (to within the converter's lag, well under
// a tenth of a second): "load", "suite conformance", "reload" (the module
// unloaded and loaded between two suites), "unload", "leak scan".
type Span struct {
	What string
	Took time.Duration
}

// consoleTailLines is how much console a hang or crash report quotes.
const consoleTailLines = 25

// Boot runs the prepared VM, which tests each built module of p in turn,
// and follows it to a verdict for each: the Results are those of
// p.Booted(), in order.
func Boot(ctx context.Context, c Config, p *Prepared) ([]*Result, error) {
	accel, why, err := qemu.ChooseAccel(c.Accel)
	if err != nil {
		return nil, verdict.SetupError(qemu.EnvAccel+"=tcg", "%v", err)
	}
	if accel == qemu.TCG {
		c.Log.Info("note: %s", why)
	}
	booted := p.Booted()
	c = c.limitsFor(p.Kernel, len(booted))
	runDir, err := newRunDir(c.CacheDir)
	if err != nil {
		return nil, err
	}
	consolePath := filepath.Join(runDir, "console.log")
	qc := qemu.Config{
		Binary: "qemu-system-x86_64", Kernel: p.Kernel.Image, Initrd: p.Initramfs,
		Accel: accel, MemoryMB: 1024, CPUs: 2,
		Append: []string{guestapi.RunArgsKernelArg(runArgs(c, c.Timeout))},
	}
	c.Log.Step("booting %s with %s (%s)", p.Kernel.Release, moduleNames(booted), accel)
	for attempt := 1; ; attempt++ {
		f := newFollower(c, p.Kernel, accel, booted, consolePath)
		err := f.boot(ctx, qc)
		results := f.results()
		if ctx.Err() != nil || verdict.WasInterrupted(ctx, err) {
			f.interrupted()
			return results, nil
		}
		if err != nil {
			return results, err
		}
		if f.bootHung && attempt < bootAttempts {
			// Nothing of the modules has run yet: a guest stuck in early
			// boot (seen about once in 25 TCG boots) is QEMU's, not the
			// module's, so one more boot is fair.
			hung := strings.TrimSuffix(consolePath, ".log") + "-hung-boot.log"
			os.Rename(consolePath, hung)
			c.Log.Info("the guest hung in early boot, before the module was loaded; booting again (console: %s)", hung)
			continue
		}
		f.decide()
		return results, nil
	}
}

// moduleNames says which modules a boot tests: "module procpid", or
// "modules hello, procpid".
func moduleNames(mods []*PreparedModule) string {
	var names []string
	for _, m := range mods {
		names = append(names, m.Module.Name)
	}
	return modulesPhrase(names)
}

// limitsFor is c with its limits scaled for a kernel slower than the
// stock ones they are set for (a verdict must not depend on how fast the
// kernel runs the same work), and the VM's for the modules it tests:
// PIDLAB_TIMEOUT is each module's share.
func (c Config) limitsFor(k *kernel.Kernel, modules int) Config {
	if k.Scale(time.Second) != time.Second {
		c.Log.Debug("limits ×%g for %s: boot %s, test %s, VM %s per module", k.Slowdown(), k.Release,
			k.Scale(c.BootTimeout), k.Scale(c.TestTimeout), k.Scale(c.Timeout))
	}
	c.BootTimeout = k.Scale(c.BootTimeout)
	c.TestTimeout = k.Scale(c.TestTimeout)
	c.Timeout = k.Scale(c.Timeout) * time.Duration(max(modules, 1))
	return c
}

// setting names the setting behind a limit scaled by limitsFor, as the
// user gave it: "PIDLAB_TIMEOUT=15m0s ×5 on the debug kernel".
func (f *follower) setting(env string, scaled time.Duration) string {
	k := f.kernel
	if k.Slowdown() == 1 {
		return fmt.Sprintf("%s=%s", env, scaled)
	}
	return fmt.Sprintf("%s=%s ×%g on the %s kernel", env, time.Duration(float64(scaled)/k.Slowdown()), k.Slowdown(), k.Name)
}

// bootAttempts bounds the boots of one run: a retry only for a boot hang.
const bootAttempts = 2

// boot starts QEMU and follows it until it exits.
func (f *follower) boot(ctx context.Context, qc qemu.Config) error {
	vm, err := qemu.Start(ctx, qc)
	if err != nil {
		return verdict.SetupError("apt-get install qemu-system-x86", "starting QEMU: %v", err)
	}
	f.vm, f.start = vm, time.Now()
	for _, p := range f.parts {
		p.res.QEMUCmdline = progress.Cmdline(vm.Repro())
	}
	f.c.Log.Debug("exec: %s", progress.Cmdline(vm.Cmd))
	err = f.follow()
	for _, p := range f.parts {
		p.res.VMTime = time.Since(f.start)
	}
	return err
}

// newRunDir makes a fresh folder for one run's logs.
func newRunDir(cache string) (string, error) {
	dir := filepath.Join(cache, "runs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(dir, time.Now().Format("20060102-150405-"))
}

// follower reads a running VM's console and events until QEMU exits,
// gathering what it sees into the part of the module being tested.
type follower struct {
	c      Config
	kernel *kernel.Kernel
	accel  qemu.Accel
	vm     *qemu.VM
	start  time.Time
	parts  []*modulePart // one per module, in the order the guest tests them
	cur    *modulePart   // the module being tested (the first while booting)

	conv          *converter
	testEvents    chan verdict.TestEvent // conv's
	runnerStarted bool                   // the guest runner reported start
	phase         string                 // what the guest is doing, for a hang report
	bootHung      bool                   // the runner did not start within BootTimeout
	progress      time.Time              // when a test last started or ended
	counted       time.Time              // when printCount last spoke

	phaseStart  time.Time        // when phase began
	now         func() time.Time // the clock spans are read on: time.Now, or a test's
	moduleLimit time.Duration    // for loading or unloading the module
	flood       verdict.FloodMeter
	lockupSeen  time.Time // when the kernel's first lockup report began
}

// modulePart is what the follower saw of one module's part of the boot:
// the console's lines and the events from its load to its unload (the
// boot's before the first module's), judged on their own.
type modulePart struct {
	name    string // the module folder's, as events name it
	res     *Result
	console verdict.ConsoleScanner
	tail    []string
	tests   verdict.Tests
	marked  string // the test the guest last named on the console
	before  uint64 // taint before the module was loaded
	reached bool   // the guest began this module's part
	hints   []verdict.ModuleHint
}

func newFollower(c Config, k *kernel.Kernel, accel qemu.Accel, mods []*PreparedModule, consolePath string) *follower {
	f := &follower{c: c, kernel: k, accel: accel, moduleLimit: moduleLimit(k, accel), now: time.Now}
	for _, m := range mods {
		res := &Result{Kernel: k, Module: m.Module, Planned: m.Planned, Accel: accel, ConsolePath: consolePath}
		res.Observations.Benchmarks = c.Bench != ""
		f.parts = append(f.parts, &modulePart{name: filepath.Base(m.Dir), res: res, hints: m.Manifest.ModuleHints()})
	}
	f.cur = f.parts[0]
	return f
}

// results are the modules' Results, in order.
func (f *follower) results() []*Result {
	var rs []*Result
	for _, p := range f.parts {
		rs = append(rs, p.res)
	}
	return rs
}

// decide reaches each module's verdict. A module whose part never began
// was not reached: the VM ended in an earlier one's, whose verdict says
// why. The boot before the first module is the first module's.
func (f *follower) decide() {
	var ended *modulePart
	for i, p := range f.parts {
		if !p.reached && i > 0 && ended != nil {
			p.res.NotReached = ended.name
			p.res.Err = verdict.Errorf(ended.res.Err.Code, "not run: the VM ended during module %s's part of the boot (%s: %s)",
				ended.name, ended.res.Err.Code, firstLine(ended.res.Err.Reason))
			continue
		}
		p.finish(f)
		p.res.Err = verdict.Decide(p.res.Observations)
		if p.res.Err != nil && !p.res.Observations.Done {
			ended = p
		}
	}
}

// interrupted ends the modules' verdicts at an interruption: a module
// whose part ended keeps its own; whatever the guest showed of the others
// after the stop (QEMU killed mid-line) is no verdict on them.
func (f *follower) interrupted() {
	doing := f.doing()
	for _, p := range f.parts {
		if p.res.Observations.Done {
			p.finish(f)
			p.res.Err = verdict.Decide(p.res.Observations)
			continue
		}
		p.res.Err = verdict.Interruption(doing)
	}
}

// finish records what the follower saw of the part, as it stands when
// QEMU has exited.
func (p *modulePart) finish(f *follower) {
	o := &p.res.Observations
	o.RunnerStarted = f.runnerStarted
	o.ConsoleTail = p.tail
	o.Running = p.crashedTests()
	p.res.Tests = p.tests.Results
	o.Tests = p.res.Tests
	o.ModuleHints = p.hints
}

func (f *follower) follow() error {
	defer f.vm.Close()
	log, err := createConsoleLog(f.cur.res.ConsolePath)
	if err != nil {
		f.vm.Kill()
		f.vm.Wait()
		return err
	}
	defer log.Close()
	if err := f.startConverter(); err != nil {
		f.vm.Kill()
		f.vm.Wait()
		return err
	}
	consoleLines := lines(f.vm.Console)
	events := lines(f.vm.Results)
	exited := make(chan error, 1)
	go func() { exited <- f.vm.Wait() }()

	deadline := time.NewTimer(f.c.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	f.setPhase("booting")
	f.progress = time.Now()
	var qemuErr error
	for consoleLines != nil || events != nil || f.testEvents != nil {
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
		case ev, ok := <-f.testEvents:
			if !ok {
				f.testEvents = nil
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
	if !f.runnerStarted && qemuErr != nil && f.cur.res.Observations.Stopped == "" && len(f.cur.tail) == 0 {
		return verdict.SetupError("run the QEMU command by hand to see why: "+progress.Cmdline(f.vm.Repro()), "QEMU failed: %v: %s", qemuErr, strings.TrimSpace(f.vm.Stderr.String()))
	}
	return nil
}

// stop ends a hung VM, recording why.
func (f *follower) stop(why string) {
	if o := &f.cur.res.Observations; o.Stopped == "" {
		o.Stopped = why
		o.Phase = f.phase
		f.cur.tests.MarkHung()
		for _, r := range f.cur.tests.Results {
			if r.Outcome == verdict.Hung {
				f.printResult(r)
			}
		}
	}
	f.vm.Kill()
}

// hungTest stops the VM when a test has run past the per-test limit.
func (f *follower) hungTest() {
	running := f.cur.tests.Running()
	if len(running) == 0 || time.Since(f.progress) < f.c.TestTimeout {
		return
	}
	name := running[len(running)-1]
	f.stop(fmt.Sprintf("test %s did not finish within %s (%s): it hangs", name, f.c.TestTimeout, f.setting(EnvTestTimeout, f.c.TestTimeout)))
}

// hungBoot stops a guest that has not started the runner in time.
func (f *follower) hungBoot() {
	if f.runnerStarted || f.bootHung || time.Since(f.start) < f.c.BootTimeout {
		return
	}
	f.bootHung = true
	f.stop(fmt.Sprintf("the guest did not start the test runner within %s: it hung while booting", f.c.BootTimeout))
}

// setPhase records what the guest does now, and since when.
func (f *follower) setPhase(phase string) {
	if phase != f.phase {
		f.phase, f.phaseStart = phase, f.now()
	}
}

// span ends a stretch of the current module's part: the time since the
// phase began.
func (f *follower) span(what string) {
	f.cur.res.Timeline = append(f.cur.res.Timeline, Span{What: what, Took: f.now().Sub(f.phaseStart)})
}

// hungModule stops the VM when loading or unloading the module (and
// reloading it between test binaries) takes past its limit.
func (f *follower) hungModule() {
	if f.phase != verdict.PhaseLoading && f.phase != verdict.PhaseUnloading || time.Since(f.phaseStart) < f.moduleLimit {
		return
	}
	f.stop(fmt.Sprintf("the guest was %s for over %s (the limit on %s under %s): it hangs",
		f.phase, f.moduleLimit, f.kernel.Name, f.accel))
}

// lockupGrace is how long the rest of a lockup report may take to arrive.
const lockupGrace = 3 * time.Second

// lockedUp stops the VM at the kernel's first lockup report (soft lockup,
// hung task, RCU stall) once it has been printed: a run in that state may
// never end, and the report says where it is stuck.
func (f *follower) lockedUp() {
	t, complete := f.cur.console.Lockup()
	if t == nil || f.cur.res.Observations.Stopped != "" {
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
	if rate == 0 || f.cur.res.Observations.Stopped != "" {
		return
	}
	f.cur.res.Observations.Flooded = true
	f.stop(fmt.Sprintf("the console is flooded: %d lines/s (more than %d lines within %s) while the guest was %s; the VM was stopped",
		rate, verdict.FloodLines, verdict.FloodWindow, f.describePhase()))
}

// doing says what the run was doing, for an interruption.
func (f *follower) doing() string {
	if f.vm == nil {
		return "booting (starting QEMU)"
	}
	return f.describePhase()
}

func (f *follower) describePhase() string {
	if running := f.cur.tests.Running(); len(running) > 0 {
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
func (p *modulePart) crashedTests() []string {
	running := p.tests.Running()
	if p.marked == "" || p.marked == guestapi.NoTest || p.res.Observations.Done || p.res.Observations.Stopped != "" {
		return running
	}
	return markedAndInner(p.marked, running)
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
		f.cur.marked = m[1]
	}
	p := f.cur
	line = p.res.Module.Relativize(line)
	f.flooded()
	p.console.Scan(line)
	f.lockedUp()
	p.res.Observations.Troubles = p.console.Troubles
	p.tail = append(p.tail, line)
	if len(p.tail) > consoleTailLines {
		p.tail = p.tail[1:]
	}
}

func (f *follower) onEvent(line string) {
	var ev guestapi.Event
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		f.c.Log.Debug("results channel: not an event: %q", line)
		return
	}
	if ev.Module != "" && ev.Module != f.cur.name {
		f.switchTo(ev.Module)
	}
	p := f.cur
	o := &p.res.Observations
	name := p.res.Module.Name
	switch ev.Kind {
	case guestapi.KindStart:
		f.runnerStarted = true
		for _, p := range f.parts {
			p.res.GuestKernel = ev.Kernel
			p.res.Boot = f.now().Sub(f.start)
		}
		f.setPhase(verdict.PhaseLoading)
		f.c.Log.Debug("guest runner started on %s after %s", ev.Kernel, time.Since(f.start).Round(time.Millisecond))
	case guestapi.KindLoad:
		if !p.reached {
			p.reached, p.before = true, ev.Taint
		}
		if ev.Err != "" {
			o.LoadErr = ev.Err
			f.c.Log.Info("module %s did not load: %s", name, ev.Err)
			return
		}
		f.span("load")
		f.setPhase(verdict.PhaseTesting)
		f.c.Log.Info("module %s loaded", name)
	case guestapi.KindTestOutput:
		f.conv.write(ev.Line)
	case guestapi.KindFailure:
		if ev.Failure != nil {
			p.tests.AddFailure(*ev.Failure)
		}
	case guestapi.KindFigure:
		if ev.Figure != nil {
			p.res.Figures = addFigure(p.res.Figures, *ev.Figure)
		}
	case guestapi.KindTestExit:
		f.span("suite " + strings.TrimSuffix(filepath.Base(ev.Binary), ".test"))
		if ev.Err != "" && p.tests.Count(verdict.Failed) == 0 {
			o.BinaryErrs = append(o.BinaryErrs, fmt.Sprintf("test binary %s ended badly: %s", filepath.Base(ev.Binary), ev.Err))
		}
		f.setPhase(verdict.PhaseUnloading) // and reloading it for the next test binary
	case guestapi.KindUnload:
		f.span("unload")
		if ev.Err != "" {
			o.UnloadErr = ev.Err
			f.c.Log.Info("module %s did not unload: %s", name, ev.Err)
		} else {
			f.c.Log.Info("module %s unloaded", name)
		}
		f.setPhase("scanning for leaks")
	case guestapi.KindLeaks:
		if ev.Err != "" {
			o.LeakScanErr = ev.Err
			f.c.Log.Info("kmemleak scan failed: %s", ev.Err)
			return
		}
		o.Leaks = ev.Line
		f.span("leak scan")
		f.setPhase("ending module " + name + "'s part")
		f.c.Log.Debug("kmemleak scan after unload: %d report(s)", strings.Count(ev.Line, "unreferenced object"))
	case guestapi.KindModuleDone:
		o.Done = true
		o.NewTaint = verdict.NewTaint(p.before, ev.Taint)
		f.setPhase("powering off") // or loading the next module, which its load event says
	case guestapi.KindDone:
		f.setPhase("powering off")
	}
}

// addFigure adds f to figures, in place of an earlier value of the same
// benchmark and name: a benchmark function runs again as b.N grows, and
// its last run is its result.
func addFigure(figures []guestapi.Figure, f guestapi.Figure) []guestapi.Figure {
	for i, old := range figures {
		if old.Test == f.Test && old.Name == f.Name {
			figures[i] = f
			return figures
		}
	}
	return append(figures, f)
}

// switchTo makes the module the guest names in an event the one being
// tested: the test events of the last one's output are converted first,
// so that each test is the module's it ran in.
func (f *follower) switchTo(name string) {
	for _, p := range f.parts {
		if p.name != name {
			continue
		}
		if f.testEvents != nil {
			f.conv.close()
			for ev := range f.testEvents {
				f.onTestEvent(ev)
			}
		}
		f.cur = p
		if err := f.startConverter(); err != nil {
			f.c.Log.Line("warning: %v", err) // the module's tests will show as not run
		}
		f.setPhase(verdict.PhaseLoading)
		return
	}
	f.c.Log.Debug("results channel: an event of module %q, which the run does not test", name)
}

// startConverter starts a test2json converter for the module being tested.
func (f *follower) startConverter() error {
	conv, err := startConverter()
	if err != nil {
		return err
	}
	f.conv, f.testEvents = conv, conv.events
	return nil
}

func (f *follower) onTestEvent(ev verdict.TestEvent) {
	switch ev.Action {
	case "run":
		if f.cur.res.BootToFirstTest == 0 {
			f.cur.res.BootToFirstTest = time.Since(f.start)
		}
		if f.phase == verdict.PhaseUnloading {
			f.span("reload") // a suite's first test: the module is loaded again
		}
		f.setPhase(verdict.PhaseTesting) // the module is (re)loaded
		f.progress = time.Now()
	case "pass", "fail", "skip":
		f.progress = time.Now()
	}
	for _, r := range f.cur.tests.Add(ev) {
		f.printResult(r)
	}
}

// countEvery is how often a quiet run says how far along it is.
const countEvery = 10 * time.Second

// printCount tells a person watching a quiet run that it moves.
func (f *follower) printCount() {
	done := 0
	for _, p := range f.parts {
		done += len(p.tests.Results)
	}
	if !f.c.QuietTests || f.c.Log.Verbose || done == 0 || time.Since(f.counted) < countEvery {
		return
	}
	f.counted = time.Now()
	f.c.Log.Info("%d checks done, %s", done, f.describePhase())
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
