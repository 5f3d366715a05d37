// Package grade turns a class's validations into grades: each submission's
// score from its checks and the profile's points, and the class's files a
// teaching assistant or a course platform reads (CSV, Gradescope's
// results.json, JUnit through package report). It judges nothing itself:
// the verdicts are the validate runs', kept structured from the guest.
package grade

import (
	"encoding/csv"
	"fmt"
	"hash/fnv"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/pidlab/pidlab/vmtest/report"
)

// Submission is one student's outcome: the run of its validation, or why
// it never ran (a refused archive, no module in it).
type Submission struct {
	Name    string
	Run     *report.Run // nil when it never ran
	Refusal string      // why it never ran
	// Started and Seconds time its grade: when it began, how long its
	// unpacking, build and VM took. Zero for a refusal of the listing.
	Started time.Time
	Seconds float64
}

// Class is a graded class: every submission, and the points of each check.
type Class struct {
	Profile string
	// Planned are the checks every submission is graded on, in order (a
	// validation's planned checks): the maximum score does not then
	// depend on which submissions got how far. Checks a run has beyond
	// them count too.
	Planned     []string
	Points      map[string]float64 // a check's worth by its name; a check not named is worth 1
	Submissions []Submission
}

// Checks are the class's rows: the planned checks and every other
// top-level check a submission's run has, in the order they ran.
func (c Class) Checks() []string {
	var r report.Report
	if len(c.Planned) > 0 {
		planned := report.Run{}
		for _, name := range c.Planned {
			planned.Checks = append(planned.Checks, report.Check{Name: name})
		}
		r.Runs = append(r.Runs, planned)
	}
	for _, s := range c.Submissions {
		if s.Run != nil {
			r.Runs = append(r.Runs, *s.Run)
		}
	}
	return report.RowNames(r)
}

// CheckAccepted is the one check of a refused submission in the class's
// JUnit: it failed, with the refusal.
const CheckAccepted = "submission accepted"

// Report is the class as one report, a run per submission, named by the
// submission (whatever its module's folder was called): JUnit then has a
// testsuite per submission. A refused submission's run has one failed
// check, CheckAccepted, which says why.
func (c Class) Report() report.Report {
	r := report.Report{Schema: report.Schema, Profile: c.Profile}
	for _, s := range c.Submissions {
		var run report.Run
		if s.Run == nil {
			run = report.Run{ExitCode: 1, Outcome: "refused", Reason: s.Refusal,
				Checks: []report.Check{{Name: CheckAccepted, Verdict: report.Fail, Message: s.Refusal}}}
		} else {
			run = *s.Run
			run.Checks = append([]report.Check(nil), s.Run.Checks...)
		}
		run.Module = s.Name
		for i := range run.Checks {
			run.Checks[i].Module = s.Name
		}
		r.Runs = append(r.Runs, run)
		r.ExitCode = max(r.ExitCode, run.ExitCode)
	}
	return r
}

// Worth is what the check named name is worth.
func (c Class) Worth(name string) float64 {
	if p, ok := c.Points[name]; ok {
		return p
	}
	return 1
}

// MaxScore is the sum of every row's worth: the same for every
// submission, the one that never built too.
func (c Class) MaxScore() float64 {
	var sum float64
	for _, name := range c.Checks() {
		sum += c.Worth(name)
	}
	return sum
}

// Score is the sum of the worth of the submission's passing checks: 0 for
// one that never ran or did not build (its only check is the build's).
// Every top-level check of a run is one of the class's rows (Checks), so
// the run's own checks are enough.
func (c Class) Score(s Submission) float64 {
	if s.Run == nil {
		return 0
	}
	var sum float64
	for _, ch := range s.Run.Checks {
		if ch.TopLevel() && ch.Verdict == report.Pass {
			sum += c.Worth(ch.Name)
		}
	}
	return sum
}

// Outcome is a submission's outcome in a few words (the terminal's
// table, the class page): the run's, with the
// checks that did not pass or the compiler's first error, or its refusal.
func Outcome(s Submission) string {
	if s.Run == nil {
		return "refused: " + firstLine(strings.TrimPrefix(s.Refusal, "submission "+s.Name+" refused: "))
	}
	run := s.Run
	var failed []string
	for _, ch := range run.Checks {
		if ch.Name == report.CheckBuild && ch.Verdict == report.Fail {
			return run.Outcome + ": " + firstLine(compilerError(ch.Message))
		}
		if ch.TopLevel() && (ch.Verdict == report.Fail || ch.Verdict == report.Error) {
			failed = append(failed, ch.Name)
		}
	}
	switch {
	case len(failed) > 3:
		return fmt.Sprintf("%s: %s and %d more", run.Outcome, strings.Join(failed[:3], ", "), len(failed)-3)
	case len(failed) > 0:
		return run.Outcome + ": " + strings.Join(failed, ", ")
	case run.Reason != "":
		return run.Outcome + ": " + firstLine(run.Reason)
	}
	return run.Outcome
}

// compilerError is the first line of a build's output that says error:,
// else its first line.
func compilerError(output string) string {
	for _, line := range strings.Split(output, "\n") {
		if strings.Contains(line, "error:") {
			return strings.TrimSpace(line)
		}
	}
	return output
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	const most = 100
	if len(line) > most {
		return line[:most] + "…"
	}
	return line
}

// Refused is the verdict cell of a submission that never ran.
const Refused = "REFUSED"

// Verdict is the submission's cell for the check named name: its verdict,
// "" when its run has no such check (it ended before), Refused when it
// never ran.
func Verdict(s Submission, name string) string {
	if s.Run == nil {
		return Refused
	}
	for _, ch := range s.Run.Checks {
		if ch.Name == name {
			return string(ch.Verdict)
		}
	}
	return ""
}

// WriteCSV writes class.csv: a row per submission, its score, the class's
// maximum, then each check's verdict.
func WriteCSV(w io.Writer, c Class) error {
	checks := c.Checks()
	cw := csv.NewWriter(w)
	if err := cw.Write(append([]string{"submission", "score", "max_score"}, checks...)); err != nil {
		return err
	}
	maxScore := number(c.MaxScore())
	for _, s := range c.Submissions {
		row := []string{s.Name, number(c.Score(s)), maxScore}
		for _, name := range checks {
			row = append(row, Verdict(s, name))
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// number is a score as a person writes it: 3, 2.5.
func number(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// Gradescope is an autograder's results.json, in Gradescope's documented
// format: the total and a test per check.
type Gradescope struct {
	Score  float64          `json:"score"`
	Output string           `json:"output,omitempty"`
	Tests  []GradescopeTest `json:"tests"`
}

// GradescopeTest is one check of a Gradescope result.
type GradescopeTest struct {
	Name     string  `json:"name"`
	Score    float64 `json:"score"`
	MaxScore float64 `json:"max_score"`
	Status   string  `json:"status"` // passed or failed
	Output   string  `json:"output,omitempty"`
}

// GradescopeOf is s's results.json: every row of the class, passed or
// failed, with what a failure expected and got, and its hint.
func GradescopeOf(c Class, s Submission) Gradescope {
	g := Gradescope{Score: c.Score(s)}
	if s.Run == nil {
		g.Output = s.Refusal
	} else if s.Run.Reason != "" {
		g.Output = s.Run.Reason
	}
	for _, name := range c.Checks() {
		t := GradescopeTest{Name: name, MaxScore: c.Worth(name), Status: "failed"}
		verdict := Verdict(s, name)
		switch {
		case verdict == string(report.Pass):
			t.Status, t.Score = "passed", t.MaxScore
		case s.Run == nil:
			t.Output = "not run: " + s.Refusal
		default:
			t.Output = checkOutput(*s.Run, name, verdict)
		}
		g.Tests = append(g.Tests, t)
	}
	return g
}

// GradescopeOfRuns is the results.json of one module's validation
// (go tool mage validate with PIDLAB_GRADESCOPE) on one kernel or several:
// with several, each kernel's tests are named after it and the score is
// their sum. c gives the profile, the planned checks and the points; its
// submissions are not read.
func GradescopeOfRuns(c Class, runs []report.Run) Gradescope {
	var g Gradescope
	var outputs []string
	for _, run := range runs {
		c.Submissions = []Submission{{Name: run.Module, Run: &run}}
		one := GradescopeOf(c, c.Submissions[0])
		if len(runs) > 1 {
			for i := range one.Tests {
				one.Tests[i].Name = run.Kernel + ": " + one.Tests[i].Name
			}
			if one.Output != "" {
				one.Output = run.Kernel + ": " + one.Output
			}
		}
		g.Score += one.Score
		g.Tests = append(g.Tests, one.Tests...)
		if one.Output != "" {
			outputs = append(outputs, one.Output)
		}
	}
	g.Output = strings.Join(outputs, "\n")
	return g
}

// checkOutput says why a check did not pass, as the verdict table does.
func checkOutput(run report.Run, name, verdict string) string {
	if verdict == "" {
		return "not run: the run ended before it"
	}
	var lines []string
	for _, ch := range run.Checks {
		if ch.Name != name && !strings.HasPrefix(ch.Name, name+"/") || ch.Verdict == report.Pass {
			continue
		}
		lines = append(lines, fmt.Sprintf("%s: %s", ch.Name, ch.Verdict))
		for _, f := range []struct{ label, value string }{{"expected", ch.Expected}, {"got", ch.Got}, {"hint", ch.Hint}, {"message", ch.Message}} {
			if f.value != "" {
				lines = append(lines, "  "+f.label+": "+f.value)
			}
		}
		if len(ch.Console) > 0 {
			lines = append(lines, "  console:\n    "+strings.Join(ch.Console, "\n    "))
		}
	}
	return strings.Join(lines, "\n")
}

// Shard is PIDLAB_SHARD's share of a class: the K-th of N (1 ≤ K ≤ N).
type Shard struct{ K, N int }

// ParseShard reads "k/n"; "" is the whole class (1/1).
func ParseShard(v string) (Shard, error) {
	if v == "" {
		return Shard{1, 1}, nil
	}
	ks, ns, ok := strings.Cut(v, "/")
	k, kerr := strconv.Atoi(ks)
	n, nerr := strconv.Atoi(ns)
	if !ok || kerr != nil || nerr != nil || n < 1 || k < 1 || k > n {
		return Shard{}, fmt.Errorf("%q is not a shard k/n with 1 ≤ k ≤ n", v)
	}
	return Shard{k, n}, nil
}

// Has reports whether the submission named name is this shard's: by a hash
// of the name, so that every machine agrees and a late submission changes
// no other's shard.
func (s Shard) Has(name string) bool {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32()%uint32(s.N)) == s.K-1
}
