package vmtest

import (
	"errors"
	"strings"
	"time"

	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// PrintSummary prints the end of a run: the counts line, and for a run that
// did not pass, why and where to look.
func PrintSummary(log *progress.Log, res *Result, err error) {
	if res != nil && res.Observations.RunnerStarted {
		var passed, failed, skipped int
		for _, t := range res.Tests {
			switch t.Outcome {
			case verdict.Passed:
				passed++
			case verdict.Failed, verdict.Hung:
				failed++
			case verdict.Skipped:
				skipped++
			}
		}
		counts := "%d passed, %d failed"
		args := []any{passed, failed}
		if skipped > 0 {
			counts += ", %d skipped"
			args = append(args, skipped)
		}
		log.Line(counts, args...)
		log.Debug("kernel %s, %s; boot to first test %s, VM %s", res.GuestKernel, res.Accel,
			res.BootToFirstTest.Round(100*time.Millisecond), res.VMTime.Round(100*time.Millisecond))
	}
	PrintFailure(log, res, err)
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
