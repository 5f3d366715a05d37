package verdict

import (
	"fmt"
	"strings"
)

// Observations is everything a run saw, for Decide.
type Observations struct {
	RunnerStarted bool // the guest runner reported start
	Done          bool // the guest runner reported done
	LoadErr       string
	UnloadErr     string
	BinaryErrs    []string // test binaries that ended badly without a failed test to show for it
	Tests         []TestResult
	Troubles      []Trouble
	NewTaint      string // taint letters beyond the expected O and E
	Leaks         string // kmemleak's reports after the module was unloaded
	Stopped       string // why the host stopped the VM (a hang), if it did
	ConsoleTail   []string
	// Running names the tests still running when the VM ended (a crash),
	// innermost last, as Tests.Running gives them; hints use it to tell
	// apart causes of the same kernel report. A test the host stopped is
	// in Tests as Hung instead.
	Running []string
}

// Decide turns observations into a verdict: nil when everything passed.
// Kernel trouble outranks a hang (a hung test after an oops is the oops's
// fault), and a hang outranks failed tests.
func Decide(o Observations) *Error {
	if len(o.Troubles) > 0 {
		t := o.Troubles[0]
		return Errorf(KernelTrouble, "kernel %s:\n%s%s", t.Kind, indent(t.Report), moreTroubles(o.Troubles[1:]))
	}
	if o.Leaks != "" {
		n := strings.Count(o.Leaks, "unreferenced object")
		return Errorf(KernelTrouble, "kmemleak: %d suspected memory leak(s) after the module was unloaded (a missing put_pid, kfree or mmput?):\n%s",
			n, indent(firstLines(o.Leaks, reportLines)))
	}
	if o.NewTaint != "" {
		return Errorf(KernelTrouble, "the kernel became tainted (%s) during the run; see %s",
			o.NewTaint, "Documentation/admin-guide/tainted-kernels.rst")
	}
	if o.Stopped != "" {
		return Errorf(Timeout, "%s\nlast console lines:\n%s", o.Stopped, indent(strings.Join(o.ConsoleTail, "\n")))
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
	if len(o.Tests) == 0 {
		return Errorf(TestFailed, "no test ran")
	}
	if o.UnloadErr != "" {
		return Errorf(TestFailed, "the module did not unload: %s", o.UnloadErr)
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
// expected and actual values, without testify's stack of file names.
func gist(output string) string {
	var keep []string
	inTrace := false
	for _, l := range strings.Split(strings.TrimRight(output, "\n"), "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "Error Trace:"):
			inTrace = true
			continue
		case inTrace && strings.HasSuffix(t, ".go") || inTrace && strings.Contains(t, ".go:") && !strings.Contains(t, " "):
			continue
		case t == "":
			continue
		}
		inTrace = false
		keep = append(keep, t)
		if len(keep) == gistLines {
			keep = append(keep, "…")
			break
		}
	}
	return strings.Join(keep, "\n")
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

func moreTroubles(ts []Trouble) string {
	if len(ts) == 0 {
		return ""
	}
	kinds := make([]string, len(ts))
	for i, t := range ts {
		kinds[i] = t.Kind
	}
	return fmt.Sprintf("\n(and %d more report(s): %s)", len(ts), strings.Join(kinds, ", "))
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
