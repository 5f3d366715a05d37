package grade

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/report"
)

func check(name string, v report.Verdict) report.Check {
	return report.Check{Name: name, Verdict: v}
}

// class is four submissions: all passing, one failing a check worth 3
// (with a failed subtest), one that did not build, one refused.
func class() Class {
	pass := report.Run{Module: "procpid", Outcome: "pass", Checks: []report.Check{
		check(report.CheckBuild, report.Pass), check(report.CheckLoad, report.Pass), check("TestRecordFields", report.Pass),
		check("TestEOF", report.Pass), check(report.CheckUnload, report.Pass), check(report.CheckClean, report.Pass)}}
	fail := report.Run{Module: "procpid", Outcome: "test failed", ExitCode: 1, Checks: []report.Check{
		check(report.CheckBuild, report.Pass), check(report.CheckLoad, report.Pass), check("TestRecordFields", report.Fail),
		{Name: "TestRecordFields/state", Verdict: report.Fail, Expected: "S", Got: "1", Hint: "print the state letter"},
		check("TestEOF", report.Pass), check(report.CheckUnload, report.Pass), check(report.CheckClean, report.Pass)}}
	broken := report.Run{Module: "osc", Outcome: "build failed", ExitCode: 2, Reason: "the module did not build",
		Checks: []report.Check{{Name: report.CheckBuild, Verdict: report.Fail, Message: "m.c:3: error: 'struct task_struct' has no member named 'state'"}}}
	return Class{Profile: "osc10e", Points: map[string]float64{"TestRecordFields": 3, report.CheckClean: 0.5},
		Submissions: []Submission{{Name: "alice", Run: &pass}, {Name: "bob", Run: &fail}, {Name: "carol", Run: &broken},
			{Name: "dave", Refusal: "submission dave refused: ../evil.c: a path out of the submission's folder"}}}
}

// Scores: the passing checks' worth; a build failure and a refusal 0;
// the maximum the same for all.
func TestScores(t *testing.T) {
	c := class()
	assert.Equal(t, []string{report.CheckBuild, report.CheckLoad, "TestRecordFields", "TestEOF", report.CheckUnload, report.CheckClean}, c.Checks())
	assert.Equal(t, 7.5, c.MaxScore())
	var got []float64
	for _, s := range c.Submissions {
		got = append(got, c.Score(s))
	}
	assert.Equal(t, []float64{7.5, 4.5, 0, 0}, got)
}

func TestCSV(t *testing.T) {
	var b strings.Builder
	require.NoError(t, WriteCSV(&b, class()))
	assert.Equal(t, `submission,score,max_score,module builds,module loads,TestRecordFields,TestEOF,module unloads,kernel stays clean
alice,7.5,7.5,PASS,PASS,PASS,PASS,PASS,PASS
bob,4.5,7.5,PASS,PASS,FAIL,PASS,PASS,PASS
carol,0,7.5,FAIL,,,,,
dave,0,7.5,REFUSED,REFUSED,REFUSED,REFUSED,REFUSED,REFUSED
`, b.String())
}

// results.json parses back as Gradescope reads it: the total equals the
// passed tests' scores, a failure says what it expected and got.
func TestGradescopeResults(t *testing.T) {
	c := class()
	for _, s := range c.Submissions {
		b, err := json.Marshal(GradescopeOf(c, s))
		require.NoError(t, err)
		var back struct {
			Score float64 `json:"score"`
			Tests []struct {
				Name     string  `json:"name"`
				Score    float64 `json:"score"`
				MaxScore float64 `json:"max_score"`
				Status   string  `json:"status"`
				Output   string  `json:"output"`
			} `json:"tests"`
		}
		require.NoError(t, json.Unmarshal(b, &back))
		var sum, maxSum float64
		for _, tc := range back.Tests {
			maxSum += tc.MaxScore
			if tc.Status == "passed" {
				sum += tc.Score
			}
		}
		assert.Equal(t, c.Score(s), back.Score, s.Name)
		assert.Equal(t, back.Score, sum, "%s: the total is the passed tests' sum", s.Name)
		assert.Equal(t, c.MaxScore(), maxSum, s.Name)
	}
	bob := GradescopeOf(c, c.Submissions[1])
	assert.Equal(t, GradescopeTest{Name: "TestRecordFields", MaxScore: 3, Status: "failed",
		Output: "TestRecordFields: FAIL\nTestRecordFields/state: FAIL\n  expected: S\n  got: 1\n  hint: print the state letter"}, bob.Tests[2])
	carol := GradescopeOf(c, c.Submissions[2])
	assert.Contains(t, carol.Tests[0].Output, "has no member named 'state'", "the compiler's message")
	assert.Equal(t, "not run: the run ended before it", carol.Tests[1].Output)
	dave := GradescopeOf(c, c.Submissions[3])
	assert.Contains(t, dave.Output, "a path out of the submission's folder")
}

// JUnit of the class: a testsuite per submission, named by it; a refused
// one fails its acceptance.
func TestClassJUnitHasASuitePerSubmission(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junit.xml")
	require.NoError(t, report.WriteJUnit(path, class().Report()))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc struct {
		Suites []struct {
			Name     string `xml:"name,attr"`
			Failures int    `xml:"failures,attr"`
		} `xml:"testsuite"`
	}
	require.NoError(t, xml.Unmarshal(b, &doc))
	var names []string
	for _, s := range doc.Suites {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{"pidlab/alice/", "pidlab/bob/", "pidlab/carol/", "pidlab/dave/"}, names)
	assert.Equal(t, 0, doc.Suites[0].Failures)
	assert.Positive(t, doc.Suites[1].Failures)
	assert.Equal(t, 1, doc.Suites[3].Failures, "the refusal")
}

// With the planned checks given, a class where nothing built still has
// the whole maximum, and the rows in the planned order.
func TestPlannedChecksFixTheMaximum(t *testing.T) {
	c := class()
	c.Planned = c.Checks()
	c.Submissions = c.Submissions[2:] // carol (no build) and dave (refused)
	assert.Equal(t, 7.5, c.MaxScore())
	assert.Equal(t, c.Planned, c.Checks())
	assert.Zero(t, c.Score(c.Submissions[0]))
}

// Shards split a class: every submission in exactly one, whatever n.
func TestShardsSplitTheClassOnce(t *testing.T) {
	var names []string
	for i := range 200 {
		names = append(names, fmt.Sprintf("student%03d", i))
	}
	for _, n := range []int{1, 2, 3, 7} {
		count := map[string]int{}
		for k := 1; k <= n; k++ {
			shard, err := ParseShard(fmt.Sprintf("%d/%d", k, n))
			require.NoError(t, err)
			in := 0
			for _, name := range names {
				if shard.Has(name) {
					count[name]++
					in++
				}
			}
			if n > 1 {
				assert.Less(t, in, len(names), "shard %d/%d does not take all", k, n)
			}
		}
		for _, name := range names {
			assert.Equal(t, 1, count[name], "%s in one of %d shards", name, n)
		}
	}
	for _, bad := range []string{"0/3", "4/3", "1/0", "a/b", "3"} {
		_, err := ParseShard(bad)
		assert.Error(t, err, bad)
	}
	whole, err := ParseShard("")
	require.NoError(t, err)
	assert.Equal(t, Shard{1, 1}, whole)
}

// The page's cells are the CSV's verdicts, row by row; it is one file
// with nothing to fetch and nothing to run, and a student's text in it
// stays text.
func TestClassPageAgreesWithTheCSV(t *testing.T) {
	c := class()
	c.Submissions[1].Run.Checks[3].Got = `<script>alert("pwned")</script>`
	var page, table strings.Builder
	require.NoError(t, WriteHTML(&page, c))
	require.NoError(t, WriteCSV(&table, c))
	html := page.String()

	rows := strings.Split(strings.TrimSpace(table.String()), "\n")[1:]
	for _, line := range rows {
		cells := strings.Split(line, ",")
		name, verdicts := cells[0], cells[3:]
		_, rest, ok := strings.Cut(html, `<tr data-submission="`+name+`">`)
		require.True(t, ok, "a row for %s", name)
		row, _, _ := strings.Cut(rest, "</tr>")
		var got []string
		for _, part := range strings.Split(row, `data-verdict="`)[1:] {
			v, _, _ := strings.Cut(part, `"`)
			got = append(got, v)
		}
		assert.Equal(t, verdicts, got, "%s's cells", name)
		assert.Contains(t, row, `<td class="score">`+cells[1]+`</td>`)
	}
	assert.Contains(t, html, `<tr data-check="TestRecordFields"><td class="name">TestRecordFields</td><td>1 of 4</td>`)
	assert.Contains(t, html, "width: 25%")
	assert.Contains(t, html, "expected: S")
	assert.Contains(t, html, "has no member named")
	assert.Contains(t, html, "a path out of the submission")
	assert.NotContains(t, html, "<script")
	assert.Contains(t, html, "&lt;script&gt;")
	for _, external := range []string{"http://", "https://", "src=", "<link"} {
		assert.NotContains(t, html, external, "self-contained")
	}
}

// writeOut writes c as grade would: each submission, then the class.
func writeOut(t *testing.T, out string, c Class) {
	t.Helper()
	for _, s := range c.Submissions {
		require.NoError(t, WriteSubmission(out, s, "key-"+s.Name))
	}
	require.NoError(t, WriteClass(out, c))
}

func csvOf(t *testing.T, c Class) string {
	t.Helper()
	var b strings.Builder
	require.NoError(t, WriteCSV(&b, c))
	return b.String()
}

// An output folder reads back as the class it was written from, and each
// submission's key is kept for the next grade to compare.
func TestOutputFolderReadsBack(t *testing.T) {
	out := t.TempDir()
	c := class()
	writeOut(t, out, c)
	back, err := ReadClass(out)
	require.NoError(t, err)
	assert.Equal(t, csvOf(t, c), csvOf(t, back))
	assert.Equal(t, "key-bob", Key(out, "bob"))
	assert.Empty(t, Key(out, "nobody"))
	for _, f := range []string{CSVFile, JUnitFile, HTMLFile, ClassFile, "submissions/dave/results.json", "submissions/alice/report.json"} {
		assert.FileExists(t, filepath.Join(out, f))
	}
	assert.NoFileExists(t, filepath.Join(out, "submissions/dave/report.json"), "a refused submission never ran")
}

// Three shards, each graded into a folder of its own, merge into what one
// unsharded grade gives; overlapping shards and other profiles are refused.
func TestShardsMergeIntoTheWholeClass(t *testing.T) {
	whole := class()
	whole.Planned = whole.Checks()
	var outs []string
	nonEmpty := ""
	for k := 1; k <= 3; k++ {
		shard := Shard{k, 3}
		part := Class{Profile: whole.Profile, Planned: whole.Planned, Points: whole.Points}
		for _, s := range whole.Submissions {
			if shard.Has(s.Name) {
				part.Submissions = append(part.Submissions, s)
			}
		}
		out := t.TempDir()
		writeOut(t, out, part)
		outs = append(outs, out)
		if len(part.Submissions) > 0 {
			nonEmpty = out
		}
	}
	merged, err := ReadClass(outs...)
	require.NoError(t, err)
	assert.Equal(t, csvOf(t, whole), csvOf(t, merged))

	_, err = ReadClass(nonEmpty, nonEmpty)
	assert.ErrorContains(t, err, "shards must not overlap")
	other := t.TempDir()
	writeOut(t, other, Class{Profile: "reference", Submissions: []Submission{{Name: "zed", Refusal: "r"}}})
	_, err = ReadClass(outs[0], other)
	assert.ErrorContains(t, err, "not one class")
	_, err = ReadClass(t.TempDir())
	assert.ErrorContains(t, err, "is no grade output folder")
}

// validate's results.json: one kernel's is the submission's; on two, each
// kernel's tests are named after it and the scores add up.
func TestGradescopeOfRuns(t *testing.T) {
	c := class()
	pass, fail := *c.Submissions[0].Run, *c.Submissions[1].Run
	pass.Kernel, fail.Kernel = "cloud", "rt"
	c.Planned = c.Checks()

	one := GradescopeOfRuns(c, []report.Run{fail})
	assert.Equal(t, 4.5, one.Score)
	assert.Equal(t, "TestRecordFields", one.Tests[2].Name)

	two := GradescopeOfRuns(c, []report.Run{pass, fail})
	assert.Equal(t, 7.5+4.5, two.Score)
	require.Len(t, two.Tests, 12)
	assert.Equal(t, "cloud: module builds", two.Tests[0].Name)
	assert.Equal(t, "rt: TestRecordFields", two.Tests[8].Name)
	assert.Equal(t, "failed", two.Tests[8].Status)
}

// A submission's outcome in the terminal's table: what failed, the
// compiler's first error, the refusal without its preamble.
func TestOutcome(t *testing.T) {
	failed := report.Run{Outcome: "test failed", Checks: []report.Check{
		{Name: "module builds", Verdict: report.Pass}, {Name: "TestEOF", Verdict: report.Fail},
		{Name: "TestEOF/sub", Verdict: report.Fail}, {Name: "TestBigWrite", Verdict: report.Error}}}
	broken := report.Run{Outcome: "build failed", Checks: []report.Check{{Name: "module builds", Verdict: report.Fail,
		Message: "make: Entering directory\npid.c:61:21: error: 'struct task_struct' has no member named 'state'\nmore"}}}
	pass := report.Run{Outcome: "pass"}
	cases := map[string]Submission{
		"test failed: TestEOF, TestBigWrite":                                                 {Name: "bob", Run: &failed},
		"build failed: pid.c:61:21: error: 'struct task_struct' has no member named 'state'": {Name: "dave", Run: &broken},
		"pass": {Name: "alice", Run: &pass},
		"refused: ../evil.c: a path out of the submission's folder": {Name: "eve", Refusal: "submission eve refused: ../evil.c: a path out of the submission's folder"},
	}
	for want, s := range cases {
		assert.Equal(t, want, Outcome(s))
	}
}
