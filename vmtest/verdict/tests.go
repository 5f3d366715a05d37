package verdict

import (
	"strings"
	"time"

	"github.com/pidlab/pidlab/userspace/guestapi"
)

// TestEvent is one event of `go tool test2json`.
type TestEvent struct {
	Time    time.Time `json:"Time"`
	Action  string    `json:"Action"` // run, pause, cont, pass, fail, skip, output, bench, start
	Package string    `json:"Package"`
	Test    string    `json:"Test"`
	Elapsed float64   `json:"Elapsed"` // seconds
	Output  string    `json:"Output"`
}

// Outcome of one test.
type Outcome string

// Outcomes.
const (
	Passed  Outcome = "pass"
	Failed  Outcome = "fail"
	Skipped Outcome = "skip"
	Hung    Outcome = "hung" // still running when the run was stopped
)

// TestResult is a finished (or hung) test.
type TestResult struct {
	Name    string
	Outcome Outcome
	Elapsed time.Duration
	Output  string // what the test printed: failure messages, logs
	// Failures are the checks of the test that failed, as the guest
	// recorded them (guesttest.Fail); a failure by other means (a testify
	// assertion, a panic) is only in Output.
	Failures []guestapi.Failure
}

// Tests follows test2json events: which tests run now, which ended how.
type Tests struct {
	Results  []TestResult
	running  map[string]*runningTest
	order    []string                      // running tests, oldest first
	failures map[string][]guestapi.Failure // by test, until its result
}

// AddFailure takes a failure the guest recorded. It comes on the results
// channel, apart from the test's events, so it may come before or after
// the test's result: it waits for a running test's result, else joins
// the latest result of that name (two suites may both have a TestX).
func (ts *Tests) AddFailure(f guestapi.Failure) {
	if _, running := ts.running[f.Test]; !running {
		for i := len(ts.Results) - 1; i >= 0; i-- {
			if ts.Results[i].Name == f.Test {
				ts.Results[i].Failures = append(ts.Results[i].Failures, f)
				return
			}
		}
	}
	if ts.failures == nil {
		ts.failures = map[string][]guestapi.Failure{}
	}
	ts.failures[f.Test] = append(ts.failures[f.Test], f)
}

type runningTest struct {
	started time.Time
	output  strings.Builder
}

// Add takes one event and returns the results it completed. A benchmark
// has no result event in test2json: it ends when the next top-level test
// or benchmark starts, or when its binary passes.
func (ts *Tests) Add(ev TestEvent) []TestResult {
	if ev.Test == "" { // package-level output and summary
		if ev.Action == "pass" {
			return ts.endBenchmarks()
		}
		return nil
	}
	if ts.running == nil {
		ts.running = map[string]*runningTest{}
	}
	switch ev.Action {
	case "run":
		var ended []TestResult
		if !strings.Contains(ev.Test, "/") {
			ended = ts.endBenchmarks()
		}
		ts.running[ev.Test] = &runningTest{started: time.Now()}
		ts.order = append(ts.order, ev.Test)
		return ended
	case "output":
		if rt := ts.running[ev.Test]; rt != nil && !isFraming(ev.Output) {
			rt.output.WriteString(ev.Output)
		}
	case "pass", "fail", "skip":
		rt := ts.running[ev.Test]
		res := TestResult{Name: ev.Test, Outcome: Outcome(ev.Action), Elapsed: seconds(ev.Elapsed), Failures: ts.failures[ev.Test]}
		delete(ts.failures, ev.Test)
		if rt != nil {
			res.Output = rt.output.String()
		}
		ts.finish(ev.Test)
		ts.Results = append(ts.Results, res)
		return []TestResult{res}
	}
	return nil
}

// endBenchmarks records the running benchmarks as passed (a failed one
// has its fail event).
func (ts *Tests) endBenchmarks() []TestResult {
	var ended []TestResult
	for _, name := range ts.Running() {
		if !strings.HasPrefix(name, "Benchmark") {
			continue
		}
		rt := ts.running[name]
		res := TestResult{Name: name, Outcome: Passed, Elapsed: time.Since(rt.started), Output: rt.output.String(), Failures: ts.failures[name]}
		delete(ts.failures, name)
		ts.finish(name)
		ts.Results = append(ts.Results, res)
		ended = append(ended, res)
	}
	return ended
}

func (ts *Tests) finish(name string) {
	delete(ts.running, name)
	for i, n := range ts.order {
		if n == name {
			ts.order = append(ts.order[:i], ts.order[i+1:]...)
			break
		}
	}
}

// Running names the tests that started and have not ended, innermost
// (most recently started) last.
func (ts *Tests) Running() []string {
	return append([]string(nil), ts.order...)
}

// MarkHung records every running test as hung, with what it printed so far.
func (ts *Tests) MarkHung() {
	for _, name := range ts.Running() {
		rt := ts.running[name]
		ts.Results = append(ts.Results, TestResult{Name: name, Outcome: Hung, Elapsed: time.Since(rt.started), Output: rt.output.String(), Failures: ts.failures[name]})
		ts.finish(name)
	}
}

// Count returns how many tests ended with each outcome.
func (ts *Tests) Count(o Outcome) int {
	n := 0
	for _, r := range ts.Results {
		if r.Outcome == o {
			n++
		}
	}
	return n
}

// isFraming is test2json's copy of the go test -v lines that it already
// turned into events.
func isFraming(out string) bool {
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS", "--- FAIL", "--- SKIP"} {
		if strings.HasPrefix(strings.TrimLeft(out, " "), p) {
			return true
		}
	}
	return false
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
