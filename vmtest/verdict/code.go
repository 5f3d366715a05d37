// Package verdict turns what a VM run produced (test events, the kernel
// console, the runner's reports) into one outcome with an exit code.
package verdict

import (
	"errors"
	"fmt"
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
	}
	return fmt.Sprintf("code %d", int(c))
}

// Error is a run that did not pass: why, and what a person can do next.
type Error struct {
	Code   Code
	Reason string
	Fix    string // a command or step that fixes it, if one is known
}

func (e *Error) Error() string {
	if e.Fix == "" {
		return e.Reason
	}
	return fmt.Sprintf("%s\n    fix: %s", e.Reason, e.Fix)
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
