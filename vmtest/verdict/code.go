// Package verdict turns what a VM run produced (test events, the kernel
// console, the runner's reports) into one outcome with an exit code.
package verdict

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
)

// Code is pidlab's exit code.
type Code int

// Exit codes, documented in the README.
const (
	Pass          Code = 0 // every test passed, the kernel stayed clean
	TestFailed    Code = 1 // a test or check failed
	BuildFailed   Code = 2 // the module did not build
	KernelTrouble Code = 3 // oops, panic, BUG, warning, lockdep/KASAN/kmemleak report, new taint
	Timeout       Code = 4 // the guest hung or a test ran past its limit
	Setup         Code = 5 // a missing tool, a failed download: Fix says what to run
	// Interrupted is a run stopped by Ctrl-C (SIGINT) or SIGTERM before it
	// reached a verdict; 128+SIGINT, as a shell reports a Ctrl-C'd command.
	Interrupted Code = 130
)

func (c Code) String() string {
	switch c {
	case Pass:
		return "pass"
	case TestFailed:
		return "test failed"
	case BuildFailed:
		return "build failed"
	case KernelTrouble:
		return "kernel trouble"
	case Timeout:
		return "timeout"
	case Setup:
		return "setup problem"
	case Interrupted:
		return "interrupted"
	}
	return fmt.Sprintf("code %d", int(c))
}

// Error is a run that did not pass: why, and what a person can do next.
type Error struct {
	Code   Code
	Reason string
	Hints  []string // the likely causes, in the terms of someone writing the module
	Fix    string   // a command or step that fixes it, if one is known
	// Build is the compiler's account of a failed build (Code BuildFailed).
	Build *BuildFailure
}

// BuildFailure is what make printed when the module did not build.
type BuildFailure struct {
	Output     string // make's output, paths as in the module's folder
	FirstError string // its first "error:" line: what to fix first
}

// Error prints the reason, a line "hint: …" for each hint, and the fix.
func (e *Error) Error() string {
	msg := e.Reason
	for _, h := range e.Hints {
		msg += "\nhint: " + h
	}
	if e.Fix != "" {
		msg += "\n    fix: " + e.Fix
	}
	return msg
}

// Hint is the error's first hint, "" for none.
func (e *Error) Hint() string {
	if e == nil || len(e.Hints) == 0 {
		return ""
	}
	return e.Hints[0]
}

// WithHints adds the hints that are not empty.
func (e *Error) WithHints(hints ...string) *Error {
	for _, h := range hints {
		if h != "" {
			e.Hints = append(e.Hints, h)
		}
	}
	return e
}

// Errorf builds an Error without a fix.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// SetupError is a setup problem with the command that fixes it.
func SetupError(fix, format string, args ...any) *Error {
	return &Error{Code: Setup, Reason: fmt.Sprintf(format, args...), Fix: fix}
}

// CodeOf returns the exit code for err: nil passes, an *Error has its own
// code, anything else is a setup problem (the harness could not do its job).
func CodeOf(err error) Code {
	if err == nil {
		return Pass
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Setup
}

// Interruption is the verdict of a run stopped while it was doing
// something ("building the module", "running TestX"): no verdict on the
// module, which did not get to finish.
func Interruption(doing string) *Error {
	return Errorf(Interrupted, "interrupted while %s", doing)
}

// Interrupting returns the Interruption verdict in place of err when err
// comes from the run being stopped rather than from the work itself (see
// WasInterrupted), else err.
func Interrupting(ctx context.Context, err error, doing string) error {
	if err != nil && WasInterrupted(ctx, err) {
		return Interruption(doing)
	}
	return err
}

// WasInterrupted reports whether err, from work done under ctx, comes from
// the run being stopped: ctx was cancelled (mage cancels it on Ctrl-C,
// pidlab's targets on SIGTERM too), or a command died of SIGINT or SIGTERM.
// The second covers the moment after a Ctrl-C, which the terminal sends to
// every process in its foreground group: make or QEMU may die of it before
// ctx is cancelled, and their failure is not the module's. A SIGKILL counts
// only with ctx cancelled (exec.CommandContext's kill): alone it may be the
// OOM killer's.
func WasInterrupted(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return true
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal() == syscall.SIGINT || ws.Signal() == syscall.SIGTERM
		}
	}
	return false
}
