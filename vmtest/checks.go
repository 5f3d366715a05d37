package vmtest

import (
	"errors"
	"regexp"
	"strings"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/vmtest/report"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// RunReport turns one run (its Result, nil if it never booted, and its
// error) into the report's checks: the module's build, load and unload,
// every guest test, and the kernel's health.
func RunReport(kernelName string, res *Result, err error) report.Run {
	code := verdict.CodeOf(err)
	run := report.Run{Kernel: kernelName, ExitCode: int(code), Outcome: code.String()}
	if err != nil {
		run.Reason = strings.TrimRight(err.Error(), "\n")
	}
	if res == nil {
		if code == verdict.BuildFailed {
			run.Checks = []report.Check{buildFailure(err)}
		}
		return run
	}
	run.Release = res.GuestKernel
	if run.Release == "" && res.Kernel != nil {
		run.Release = res.Kernel.Release
	}
	run.ConsoleLog = res.ConsolePath
	run.BootSeconds = res.BootToFirstTest.Seconds()
	run.VMSeconds = res.VMTime.Seconds()
	run.Figures = figures(res)
	run.Timeline = reportSpans(res.Timeline)
	o := res.Observations
	if code == verdict.KernelTrouble || code == verdict.Timeout {
		run.ConsoleExcerpt = consoleExcerpt(o)
	}
	crashHint := verdictOf(err).Hint()
	quote := kernelQuote(o)
	run.Checks = append(run.Checks, report.Check{Name: report.CheckBuild, Verdict: report.Pass}, loadCheck(o, crashHint, quote))
	run.Checks = append(run.Checks, testChecks(res.Tests, crashHint, quote)...)
	attributeTroubles(run.Checks, o)
	run.Checks = append(run.Checks, crashedChecks(o, run.Reason, crashHint, quote)...)
	run.Checks = append(run.Checks, notRunChecks(res.Planned, run.Checks, o)...)
	clean := cleanCheck(o, run.Reason, crashHint)
	if clean.Verdict == report.Fail && !quoted(run.Checks) {
		clean.Console = quote // a report after the tests, or one no check died of
	}
	run.Checks = append(run.Checks, unloadCheck(o), clean)
	return run
}

// reportSpans are spans as the JSON report has them.
func reportSpans(spans []Span) []report.Span {
	var out []report.Span
	for _, s := range spans {
		out = append(out, report.Span{What: s.What, Seconds: s.Took.Seconds()})
	}
	return out
}

// quoteLines is how many of the console's last lines a hung check quotes.
const quoteLines = 10

// kernelQuote is what a check that died or hung quotes of the console:
// the key lines of the kernel's first report (its headline, RIP and
// first callers), else the console's last lines.
func kernelQuote(o verdict.Observations) []string {
	if t, ok := o.MainTrouble(); ok {
		return t.KeyLines()
	}
	return o.ConsoleTail[max(0, len(o.ConsoleTail)-quoteLines):]
}

// quoted reports whether a check already quotes the console.
func quoted(checks []report.Check) bool {
	for _, c := range checks {
		if len(c.Console) > 0 {
			return true
		}
	}
	return false
}

func buildFailure(err error) report.Check {
	c := report.Check{Name: report.CheckBuild, Verdict: report.Fail, Expected: "the module builds",
		Message: err.Error(), Got: firstLine(err.Error())}
	if v := verdictOf(err); v != nil {
		c.Hint = strings.Join(v.Hints, "\n")
		if v.Build != nil {
			c.Got = v.Build.FirstError
		}
	}
	return c
}

// verdictOf is err's verdict, nil when err has none.
func verdictOf(err error) *verdict.Error {
	var v *verdict.Error
	if errors.As(err, &v) {
		return v
	}
	return nil
}

func loadCheck(o verdict.Observations, crashHint string, quote []string) report.Check {
	c := report.Check{Name: report.CheckLoad, Verdict: report.Pass}
	switch {
	case o.LoadErr != "":
		c.Verdict, c.Expected, c.Got = report.Fail, "insmod succeeds", o.LoadErr
		c.Hint = "the module's init function returned an error, or a symbol it needs is missing: see the console log"
	case !o.RunnerStarted:
		c.Verdict, c.Got = report.Error, "the guest did not start"
	case o.Stopped != "" && o.Phase == verdict.PhaseLoading:
		c.Verdict, c.Got, c.Hint, c.Console = report.Error, "did not finish: loading hangs", crashHint, quote
		if len(o.Troubles) > 0 {
			c.Got = "did not finish: " + troubleLine(o, "")
		}
	case len(o.Tests) == 0 && len(o.Running) == 0 && !o.Done:
		c.Verdict, c.Got, c.Hint, c.Console = report.Error, "the guest ended while loading the module", crashHint, quote
	}
	return c
}

// testChecks are the guest's tests; a hung test is an ERROR with the
// hang's hint.
func testChecks(tests []verdict.TestResult, crashHint string, quote []string) []report.Check {
	var checks []report.Check
	for _, t := range tests {
		c := report.Check{Name: t.Name, Seconds: t.Elapsed.Seconds()}
		switch t.Outcome {
		case verdict.Passed:
			c.Verdict = report.Pass
		case verdict.Skipped:
			c.Verdict, c.Message = report.Skip, cleanOutput(t.Output)
		case verdict.Failed:
			c.Verdict, c.Message = report.Fail, cleanOutput(t.Output)
			// A failure the test did not record (testify's, a panic) is
			// its message alone: the test's text is shown, never parsed.
			if f, ok := firstToFix(t.Failures); ok {
				c.Expected, c.Got, c.Hint = f.Expected, f.Got, f.Hint
			}
		case verdict.Hung:
			c.Verdict, c.Message = report.Error, cleanOutput(t.Output)
			c.Got, c.Hint, c.Console = "did not finish: it hangs", crashHint, quote
		}
		checks = append(checks, c)
	}
	return checks
}

// attributeTroubles gives each kernel report to the check of the test
// that was running when it appeared (the console's mark): a test that
// passed while the kernel reported a bug fails with that report, quoted,
// and its own hint; a failed one gets the quote if it has none. The
// report that ended the run is the dying checks' (crashedChecks).
func attributeTroubles(checks []report.Check, o verdict.Observations) {
	done := map[int]bool{}
	for _, t := range o.Troubles {
		i := checkOf(checks, t.Test)
		if i < 0 || done[i] || t.Kind == "kmemleak" {
			continue
		}
		done[i] = true
		c := &checks[i]
		switch c.Verdict {
		case report.Pass, report.Skip:
			c.Verdict, c.Expected, c.Got = report.Fail, "no kernel report", "the kernel reported while it ran: "+troubleHeadline(t)
			c.Hint, c.Console = o.HintFor(t), t.KeyLines()
		case report.Fail:
			if len(c.Console) == 0 {
				c.Console = t.KeyLines()
			}
		}
	}
}

// checkOf is the index of test's check, or of its innermost parent's that
// has one; -1 for none.
func checkOf(checks []report.Check, test string) int {
	names := verdict.TestAndParents(test)
	for j := len(names) - 1; j >= 0 && test != ""; j-- {
		for i, c := range checks {
			if c.Name == names[j] {
				return i
			}
		}
	}
	return -1
}

// troubleHeadline is a report's first key line (BUG: …, WARNING: … at).
func troubleHeadline(t verdict.Trouble) string {
	if lines := t.KeyLines(); len(lines) > 0 {
		return lines[0]
	}
	return t.Headline()
}

// firstToFix is the failure a check's row shows: the first with a hint,
// which names a cause, else the first.
func firstToFix(failures []guestapi.Failure) (guestapi.Failure, bool) {
	for _, f := range failures {
		if f.Hint != "" {
			return f, true
		}
	}
	if len(failures) == 0 {
		return guestapi.Failure{}, false
	}
	return failures[0], true
}

// crashedChecks are the tests that were running when the guest died.
func crashedChecks(o verdict.Observations, reason, hint string, quote []string) []report.Check {
	var checks []report.Check
	for _, name := range o.Running {
		checks = append(checks, report.Check{Name: name, Verdict: report.Error,
			Got: "the kernel died while it ran: " + troubleLine(o, reason), Hint: hint, Console: quote})
	}
	return checks
}

// notRunChecks are the planned tests a run that ended early never reached.
func notRunChecks(planned []string, done []report.Check, o verdict.Observations) []report.Check {
	if o.Done {
		return nil
	}
	seen := map[string]bool{}
	for _, c := range done {
		seen[c.Name] = true
	}
	var checks []report.Check
	for _, name := range planned {
		if !seen[name] {
			checks = append(checks, report.Check{Name: name, Verdict: report.Error, Got: report.NotRun})
		}
	}
	return checks
}

func unloadCheck(o verdict.Observations) report.Check {
	c := report.Check{Name: report.CheckUnload, Verdict: report.Pass}
	switch {
	case o.UnloadErr != "":
		c.Verdict, c.Expected, c.Got = report.Fail, "rmmod succeeds", o.UnloadErr
		c.Hint = "the module is still in use (a file left open, a reference held) or its exit function failed"
	case o.LoadErr != "" && len(o.Tests) == 0:
		c.Verdict, c.Got = report.Error, "not reached: the module did not load"
	case !o.Done:
		c.Verdict, c.Got = report.Error, "not reached: the run ended before the module was unloaded"
	}
	return c
}

func cleanCheck(o verdict.Observations, reason, hint string) report.Check {
	c := report.Check{Name: report.CheckClean, Verdict: report.Pass}
	if len(o.Troubles) > 0 || o.Leaks != "" || o.NewTaint != "" || (!o.Done && o.Stopped == "" && o.RunnerStarted) {
		c.Verdict, c.Expected, c.Got, c.Hint = report.Fail, "no oops, warning, leak or new taint", troubleLine(o, reason), hint
		c.Message = reason
	} else if !o.RunnerStarted {
		c.Verdict, c.Got = report.Error, "not judged: the guest did not boot"
	} else if o.Stopped != "" {
		c.Verdict, c.Got = report.Error, "not judged: the run was stopped before the kernel's last check"
	}
	return c
}

// troubleLine is the headline of what went wrong in the kernel: the first
// key line of its report (BUG: kernel NULL pointer dereference, …, or a
// WARN's own message), not the "cut here" marker before it.
func troubleLine(o verdict.Observations, reason string) string {
	if t, ok := o.MainTrouble(); ok {
		if lines := t.KeyLines(); len(lines) > 0 {
			return lines[0]
		}
	}
	return firstLine(reason)
}

// consoleExcerpt is the kernel's own report when there is one, else the
// console's last lines.
func consoleExcerpt(o verdict.Observations) []string {
	if t, ok := o.MainTrouble(); ok {
		return strings.Split(strings.TrimRight(t.Report, "\n"), "\n")
	}
	return o.ConsoleTail
}

// cleanOutput drops testify's file:line traces from a test's output.
func cleanOutput(out string) string { return strings.Join(verdict.Messages(out), "\n") }

// printkTime is the console's "[    2.869527] " timestamp.
var printkTime = regexp.MustCompile(`^\[\s*\d+\.\d+\]\s*`)

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// figures are what res's benchmarks measured, as the report holds them.
func figures(res *Result) []report.Figure {
	var figs []report.Figure
	for _, f := range res.Figures {
		figs = append(figs, report.Figure{Benchmark: f.Test, Name: f.Name, Value: f.Value, Unit: f.Unit, About: f.About})
	}
	return figs
}
