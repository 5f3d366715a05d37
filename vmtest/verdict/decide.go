package verdict

import (
	"fmt"
	"strings"
)

// Observations is everything a run saw, for Decide.
type Observations struct {
	RunnerStarted bool // the guest runner reported start
	Done          bool // the guest runner reported done
	Benchmarks    bool // a run of benchmarks: a module may have none
	LoadErr       string
	UnloadErr     string
	BinaryErrs    []string // test binaries that ended badly without a failed test to show for it
	Tests         []TestResult
	Troubles      []Trouble
	NewTaint      string // taint letters beyond the expected O and E
	Leaks         string // kmemleak's reports after the module was unloaded
	LeakScanErr   string // why kmemleak could not scan after the module was unloaded
	Stopped       string // why the host stopped the VM (a hang, a lockup, a flood), if it did
	Phase         string // what the guest was doing when the host stopped it (PhaseLoading, …)
	Flooded       bool   // the host stopped the VM because the console was flooded
	ConsoleTail   []string
	// Running names the tests still running when the VM ended (a crash),
	// innermost last, as Tests.Running gives them; hints use it to tell
	// apart causes of the same kernel report. A test the host stopped is
	// in Tests as Hung instead.
	Running []string
	// ModuleHints are the module's own causes of kernel reports (its
	// manifest's), tried before pidlab's.
	ModuleHints []ModuleHint
}

// Phases of a run in which the host stops a guest that takes too long.
const (
	PhaseLoading   = "loading the module"
	PhaseTesting   = "running tests"
	PhaseUnloading = "unloading the module"
)

// onlyLeakNotice reports whether the console's reports are only kmemleak's
// notice of the scan after unload, whose reports Leaks holds in full.
func (o Observations) onlyLeakNotice() bool {
	if o.Leaks == "" {
		return false
	}
	for _, t := range o.Troubles {
		if t.Kind != "kmemleak" {
			return false
		}
	}
	return true
}

// running names the tests that were running when the run ended, innermost
// last: those still running at a crash, and those the host stopped as
// hung. When the guest crashed with no test known to be running, it is
// the last test that ended: the crash came during or after it. (The last
// events before a panic may be lost with the UART's buffer, and test2json
// closes a test still running at the end of its input as failed once an
// earlier binary in the stream failed.)
func (o Observations) running() []string {
	names := append([]string(nil), o.Running...)
	for _, t := range o.Tests {
		if t.Outcome == Hung {
			names = append(names, t.Name)
		}
	}
	if len(names) == 0 && !o.Done && len(o.Tests) > 0 {
		names = append(names, o.Tests[len(o.Tests)-1].Name)
	}
	return names
}

// fatalKinds are the reports that kill the task that hits them (and, in
// pidlab's guest, the run): the others (a WARN, lockdep, KASAN, sleeping
// in atomic context) are printed and the kernel goes on.
var fatalKinds = map[string]bool{"Oops": true, "general protection fault": true, "BUG": true, "kernel panic": true}

// MainTrouble is the kernel report a verdict is about: the one that ended
// the run, else the first. When the guest died, that is its first fatal
// report (the oopses and the panic after it are its consequences); when
// the host stopped a locked-up guest, the first lockup report. An earlier
// report (an RCU warning in another test) did not kill the guest: it
// stays its own test's.
func (o Observations) MainTrouble() (Trouble, bool) {
	if len(o.Troubles) == 0 {
		return Trouble{}, false
	}
	find := func(is func(kind string) bool) (Trouble, bool) {
		for _, t := range o.Troubles {
			if is(t.Kind) {
				return t, true
			}
		}
		return Trouble{}, false
	}
	switch {
	case o.Stopped != "":
		if t, ok := find(IsLockup); ok {
			return t, true
		}
	case !o.Done:
		if t, ok := find(func(kind string) bool { return fatalKinds[kind] }); ok {
			return t, true
		}
	}
	return o.Troubles[0], true
}

// HintFor is the likely cause of report t, matched against the test that
// was running when it appeared (with its parents), or, for a report no
// test was marked for, the tests running at the end.
func (o Observations) HintFor(t Trouble) string {
	running := o.running()
	if t.Test != "" {
		running = TestAndParents(t.Test)
	}
	return troubleHint(t, running, o.ModuleHints)
}

// TestAndParents is a test's name with its parents', outermost first:
// TestA, TestA/b for TestA/b.
func TestAndParents(name string) []string {
	var names []string
	parts := strings.Split(name, "/")
	for i := range parts {
		names = append(names, strings.Join(parts[:i+1], "/"))
	}
	return names
}

// Decide turns observations into a verdict: nil when everything passed.
// Kernel trouble outranks a hang (a hung test after an oops is the oops's
// fault), and a hang outranks failed tests.
func Decide(o Observations) *Error {
	if t, ok := o.MainTrouble(); ok && !o.onlyLeakNotice() {
		msg := fmt.Sprintf("%s:\n%s%s", t.Headline(), indent(t.Report), moreTroubles(o.Troubles, t))
		if o.Stopped != "" {
			msg += "\n" + o.Stopped
		}
		hint := o.HintFor(t)
		if hint == "" {
			hint = firstTroubleHint(o)
		}
		if o.Flooded { // the flood may have caused the report: printing from a loop starves the CPU
			return Errorf(KernelTrouble, "%s", msg).WithHints(hintFlood, hint)
		}
		return Errorf(KernelTrouble, "%s", msg).WithHints(hint)
	}
	if o.Leaks != "" {
		n := strings.Count(o.Leaks, "unreferenced object")
		msg := fmt.Sprintf("kmemleak: %d suspected memory leak(s) after the module was unloaded:\n%s",
			n, indent(firstLines(o.Leaks, reportLines)))
		return Errorf(KernelTrouble, "%s", msg).WithHints(leakHints(o.Leaks)...)
	}
	if o.NewTaint != "" {
		return Errorf(KernelTrouble, "the kernel became tainted (%s) during the run; see %s",
			o.NewTaint, "Documentation/admin-guide/tainted-kernels.rst")
	}
	if o.Stopped != "" {
		msg := fmt.Sprintf("%s\nlast console lines:\n%s", o.Stopped, indent(strings.Join(o.ConsoleTail, "\n")))
		return Errorf(Timeout, "%s", msg).WithHints(hangHint(o))
	}
	if !o.Done {
		what := "the guest ended before the runner finished (a crash or reboot)"
		if !o.RunnerStarted {
			what = "the guest ended before the runner started (the kernel or init failed)"
		}
		return Errorf(KernelTrouble, "%s\nlast console lines:\n%s", what, indent(strings.Join(o.ConsoleTail, "\n")))
	}
	if o.LoadErr != "" {
		return Errorf(TestFailed, "the module did not load: %s", o.LoadErr)
	}
	var failed []string
	for _, t := range o.Tests {
		if t.Outcome == Failed && !hasFailedSubtest(o.Tests, t.Name) {
			failed = append(failed, t.Name+":\n"+indent(gist(t.Output)))
		}
	}
	if len(failed) > 0 {
		return Errorf(TestFailed, "%d test(s) failed:\n%s", len(failed), summarize(failed))
	}
	if len(o.BinaryErrs) > 0 {
		return Errorf(TestFailed, "%s", strings.Join(o.BinaryErrs, "\n"))
	}
	if len(o.Tests) == 0 && !o.Benchmarks {
		return Errorf(TestFailed, "no test ran")
	}
	if o.UnloadErr != "" {
		return Errorf(TestFailed, "the module did not unload: %s", o.UnloadErr)
	}
	if o.LeakScanErr != "" {
		// A kernel with kmemleak promises a leak check; a run without one
		// cannot say the kernel stayed clean.
		return Errorf(KernelTrouble, "kmemleak could not scan after the module was unloaded: %s\n"+
			"the run cannot tell whether the module leaked; the console log has kmemleak's own lines", o.LeakScanErr)
	}
	return nil
}

// Limits of a failure summary; each test's whole output is printed as it
// finishes, and is in the results.
const (
	gistLines      = 8
	listedFailures = 10
)

// gist keeps what a person needs of a failed test's output: its messages,
// expected and actual values, without testify's stack of file names. Past
// gistLines it keeps only the hints ("hint: …" lines), each once.
func gist(output string) string {
	var keep, hints []string
	seen := map[string]bool{}
	dropped := false
	for _, t := range Messages(output) {
		isHint := strings.HasPrefix(t, "hint: ")
		switch {
		case len(keep) < gistLines:
			keep = append(keep, t)
		case isHint && !seen[t]:
			hints = append(hints, t)
		default:
			dropped = true
		}
		if isHint {
			seen[t] = true
		}
	}
	if dropped {
		keep = append(keep, "…")
	}
	return strings.Join(append(keep, hints...), "\n")
}

// isTraceFrame matches a line of testify's Error Trace: a file and line,
// Go or assembly (a goroutine's start), with no message text.
// Messages are a test's output lines, trimmed, without blank lines and
// testify's "Error Trace:" file:line frames.
func Messages(output string) []string {
	var keep []string
	inTrace := false
	for _, l := range strings.Split(strings.TrimRight(output, "\n"), "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "Error Trace:"):
			inTrace = true
			continue
		case inTrace && isTraceFrame(t):
			continue
		case t == "":
			continue
		}
		inTrace = false
		keep = append(keep, t)
	}
	return keep
}

func isTraceFrame(t string) bool {
	return strings.HasSuffix(t, ".go") ||
		(strings.Contains(t, ".go:") || strings.Contains(t, ".s:")) && !strings.Contains(t, " ")
}

func summarize(failed []string) string {
	if len(failed) <= listedFailures {
		return strings.Join(failed, "\n")
	}
	return strings.Join(failed[:listedFailures], "\n") + fmt.Sprintf("\n(and %d more failed tests, printed above)", len(failed)-listedFailures)
}

// hasFailedSubtest reports whether a failed test failed only because one of
// its subtests did, which is then the one to show.
func hasFailedSubtest(tests []TestResult, name string) bool {
	for _, t := range tests {
		if t.Outcome == Failed && strings.HasPrefix(t.Name, name+"/") {
			return true
		}
	}
	return false
}

func firstLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) <= n {
		return s
	}
	return strings.Join(lines[:n], "") + "…"
}

// moreTroubles names the reports other than main, in their order.
func moreTroubles(ts []Trouble, main Trouble) string {
	var kinds []string
	for _, t := range ts {
		if t != main {
			kinds = append(kinds, t.Kind)
		}
	}
	if len(kinds) == 0 {
		return ""
	}
	return fmt.Sprintf("\n(and %d more report(s): %s)", len(kinds), strings.Join(kinds, ", "))
}

func indent(s string) string {
	if s == "" {
		return "    (nothing)"
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}
