// Package report is what a validation says, in the three forms people and
// CI systems read: a verdict table on the terminal, a JSON report
// (PIDLAB_REPORT) and JUnit XML (PIDLAB_JUNIT). The schema is in the README.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Schema names the JSON layout; it changes when a field changes meaning.
const Schema = "pidlab-report/2"

// Verdict of one check.
type Verdict string

// Verdicts: ERROR is a check that could not finish (a crash, a hang) or
// never ran because the module did not build or load.
const (
	Pass  Verdict = "PASS"
	Fail  Verdict = "FAIL"
	Error Verdict = "ERROR"
	Skip  Verdict = "SKIP"
)

// Report is one go tool mage test or validate: a run per module and
// kernel, with one profile.
type Report struct {
	Schema   string `json:"schema"`
	Profile  string `json:"profile"`   // profile name
	ExitCode int    `json:"exit_code"` // the most severe of the runs'
	Runs     []Run  `json:"runs"`
}

// Run is one module on one kernel.
type Run struct {
	Module         string   `json:"module"`            // its folder's name: procpid
	ModuleDir      string   `json:"module_dir"`        // the folder, absolute
	Kernel         string   `json:"kernel"`            // as selected: cloud, generic, rt, debug, or an image path
	Release        string   `json:"release,omitempty"` // uname -r
	ExitCode       int      `json:"exit_code"`
	Outcome        string   `json:"outcome"`          // pass, test failed, build failed, kernel trouble, timeout, setup problem
	Reason         string   `json:"reason,omitempty"` // why it did not pass
	Checks         []Check  `json:"checks"`
	ConsoleExcerpt []string `json:"console_excerpt,omitempty"` // on trouble: the report, else the last lines
	ConsoleLog     string   `json:"console_log,omitempty"`
	BootSeconds    float64  `json:"boot_to_first_test_seconds,omitempty"`
	VMSeconds      float64  `json:"vm_seconds,omitempty"`
	Figures        []Figure `json:"figures,omitempty"` // what the guest benchmarks measured (go tool mage bench)
	// Timeline is where the module's part of the VM's time went: its
	// load, each suite, the reloads between them, the unload, the leak
	// scan; BootSeconds and VMSeconds frame it.
	Timeline []Span `json:"timeline,omitempty"`
	// Prepared is where the host's time went before the boot: the host
	// tools and kernel, each module's build, the guest programs, the
	// initramfs. A boot's modules share it: each of its runs has it whole.
	Prepared []Span `json:"prepared,omitempty"`
}

// Span is a stretch of a module's part of the boot ("load", "suite
// conformance", "reload", "unload", "leak scan") or of the preparation
// before it ("build procpid", "initramfs").
type Span struct {
	What    string  `json:"what"`
	Seconds float64 `json:"seconds"`
}

// Figure is one thing a guest benchmark measured.
type Figure struct {
	Benchmark string  `json:"benchmark"` // its full name: BenchmarkForkExitWait
	Name      string  `json:"name"`      // what it measured
	Value     float64 `json:"value"`
	Unit      string  `json:"unit"`
	About     string  `json:"about,omitempty"` // how: medians of how many rounds, of what
}

// String is the figure as the terminal shows it.
func (f Figure) String() string {
	s := fmt.Sprintf("%s: %s %.4g %s", f.Benchmark, f.Name, f.Value, f.Unit)
	if f.About != "" {
		s += " (" + f.About + ")"
	}
	return s
}

// Check is one check's outcome. Name is a guest test's name (subtests
// after a slash) or one of the run's own checks (CheckBuild, …).
type Check struct {
	Module   string  `json:"module"` // its run's: a list of checks names its module
	Name     string  `json:"name"`
	Verdict  Verdict `json:"verdict"`
	Expected string  `json:"expected,omitempty"`
	Got      string  `json:"got,omitempty"`
	Hint     string  `json:"hint,omitempty"`
	Message  string  `json:"message,omitempty"` // what the check printed when it did not pass
	// Console quotes the kernel where the check died or hung: the key
	// lines of its report (headline, RIP, first frames), else the
	// console's last lines.
	Console []string `json:"console,omitempty"`
	Seconds float64  `json:"duration_seconds"`
}

// The checks every run has besides the guest's tests.
const (
	CheckBuild  = "module builds"
	CheckLoad   = "module loads"
	CheckUnload = "module unloads"
	CheckClean  = "kernel stays clean" // no oops, warning, lockdep/KASAN/kmemleak report or new taint
)

// NotRun is the got of a check the run ended before: a crash or a hang
// in an earlier one kept it from running.
const NotRun = "not run: the run ended before it"

// TopLevel reports whether a check is a row of the table: not a subtest.
func (c Check) TopLevel() bool { return !strings.Contains(c.Name, "/") }

// WriteJSON writes r to path. Runs and checks are lists even when empty
// (a run that never built has no checks), never null.
func WriteJSON(path string, r Report) error {
	runs := make([]Run, len(r.Runs))
	for i, run := range r.Runs {
		if run.Checks == nil {
			run.Checks = []Check{}
		}
		runs[i] = run
	}
	r.Runs = runs
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadJSON reads a report WriteJSON wrote, of this Schema.
func ReadJSON(path string) (Report, error) {
	var r Report
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	if r.Schema != Schema {
		return r, fmt.Errorf("%s: schema %q, want %q", path, r.Schema, Schema)
	}
	return r, nil
}
