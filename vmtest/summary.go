package vmtest

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// PrintSummary prints the end of a run: the counts line, and for a run that
// did not pass, why and where to look.
func PrintSummary(log *progress.Log, res *Result, err error) {
	if res != nil && res.Observations.RunnerStarted {
		var n testCounts
		n.add(res.Tests)
		log.Line("%s", n)
		log.Debug("kernel %s, %s; boot to first test %s, VM %s", res.GuestKernel, res.Accel,
			res.BootToFirstTest.Round(100*time.Millisecond), res.VMTime.Round(100*time.Millisecond))
	}
	PrintFailure(log, res, err)
}

// PrintTotal prints the counts of several runs' tests together, and which
// runs did not pass: the last lines of a go tool mage test of every module.
func PrintTotal(log *progress.Log, what string, runs []KernelRun) {
	var n testCounts
	var failed []string
	for _, r := range runs {
		if r.Result != nil {
			n.add(r.Result.Tests)
		}
		if r.Err != nil {
			failed = append(failed, fmt.Sprintf("%s on %s (%s)", r.Module, r.Name, verdict.CodeOf(r.Err)))
		}
	}
	log.Line("total, %s: %s", what, n)
	if len(failed) > 0 {
		log.Line("did not pass: %s", strings.Join(failed, ", "))
	}
}

// PrintTimes prints where each boot's time went, a line per kernel: the
// boot, then each module's part and its spans. Nothing for runs that never
// booted.
func PrintTimes(log *progress.Log, runs []KernelRun) {
	var kernels []string
	byKernel := map[string][]KernelRun{}
	for _, r := range runs {
		if r.Result == nil || r.Result.Boot == 0 {
			continue // the guest runner never started
		}
		if _, ok := byKernel[r.Name]; !ok {
			kernels = append(kernels, r.Name)
		}
		byKernel[r.Name] = append(byKernel[r.Name], r)
	}
	for _, k := range kernels {
		label := "time"
		if len(kernels) > 1 {
			label += " on " + k
		}
		log.Line("%s: %s", label, timesLine(byKernel[k]))
	}
}

// timesLine is one boot's times: "prepare 0.6 s (host tools and kernel
// 0.1, build exitmon 0.2, guest programs 0.2, initramfs 0.1); boot 3.1 s;
// exitmon 48.4 s (load 0.1, suite exitmon 47.9, unload 0.1, leak scan
// 0.3); …".
func timesLine(runs []KernelRun) string {
	var parts []string
	if prep := spansPhrase("prepare", runs[0].Prepared); prep != "" {
		parts = append(parts, prep)
	}
	parts = append(parts, "boot "+seconds(runs[0].Result.Boot)+" s")
	for _, r := range runs {
		if phrase := spansPhrase(r.Module, r.Result.Timeline); phrase != "" {
			parts = append(parts, phrase)
		}
	}
	return strings.Join(parts, "; ")
}

// spansPhrase is "what 1.2 s (a 0.2, b 1.0)", or "" for no spans.
func spansPhrase(what string, spans []Span) string {
	var total time.Duration
	var each []string
	for _, s := range spans {
		total += s.Took
		each = append(each, s.What+" "+seconds(s.Took))
	}
	if len(each) == 0 {
		return ""
	}
	return fmt.Sprintf("%s %s s (%s)", what, seconds(total), strings.Join(each, ", "))
}

// seconds is d in seconds, to a tenth.
func seconds(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }

// testCounts are a run's guest tests by outcome; a hung test counts as
// failed.
type testCounts struct{ passed, failed, skipped int }

func (n *testCounts) add(tests []verdict.TestResult) {
	for _, t := range tests {
		switch t.Outcome {
		case verdict.Passed:
			n.passed++
		case verdict.Failed, verdict.Hung:
			n.failed++
		case verdict.Skipped:
			n.skipped++
		}
	}
}

func (n testCounts) String() string {
	s := fmt.Sprintf("%d passed, %d failed", n.passed, n.failed)
	if n.skipped > 0 {
		s += fmt.Sprintf(", %d skipped", n.skipped)
	}
	return s
}

// PrintFailure says why a run did not pass and where to look; nothing for
// a run that passed.
func PrintFailure(log *progress.Log, res *Result, err error) {
	if err == nil {
		return
	}
	var v *verdict.Error
	switch {
	case errors.As(err, &v) && v.Code == verdict.Interrupted:
		log.Line("%s (exit %d)", v.Reason, int(v.Code)) // no verdict on the module: not a FAIL
	case v != nil:
		log.Line("FAIL (%s, exit %d): %s", v.Code, int(v.Code), strings.TrimRight(v.Error(), "\n"))
	default:
		log.Line("FAIL: %v", err)
	}
	if res != nil && res.ConsolePath != "" {
		log.Line("console log: %s", res.ConsolePath)
		if res.QEMUCmdline != "" {
			log.Debug("rerun the VM by hand: %s", res.QEMUCmdline)
		}
	}
}

// PrintWhereToLook follows a verdict table: the table holds the checks,
// so this adds only what it cannot: a build's or setup's whole message,
// and the console log of a run that booted.
func PrintWhereToLook(log *progress.Log, res *Result, err error) {
	if err == nil {
		return
	}
	if res == nil || res.ConsolePath == "" {
		PrintFailure(log, res, err)
		return
	}
	log.Line("console log: %s", res.ConsolePath)
	log.Debug("rerun the VM by hand: %s", res.QEMUCmdline)
}
