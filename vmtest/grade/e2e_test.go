package grade_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest"
	"github.com/pidlab/pidlab/vmtest/grade"
	"github.com/pidlab/pidlab/vmtest/report"
	"github.com/pidlab/pidlab/vmtest/targets"
)

// The class: the OSC10e module (module/testdata/osc10e) as eight students
// handed it in, each a fixture of the project, as a folder or an archive.
// What each must get: its outcome, a check that fails or errs with its
// hint (the bug named), and for a pass the full score.
type student struct {
	name    string // the submission's name in the class folder
	variant string // a folder of module/testdata/osc10e-buggy, "" for the correct module
	archive string // "", ".zip" or ".tar.gz"
	outcome string // the run's outcome; "" for a refusal
	check   string // the check that did not pass
	verdict report.Verdict
	hint    string // in that check's hint
}

var students = []student{
	{name: "alice", outcome: "pass"},
	{name: "bob", variant: "static-eof-flag", outcome: "test failed", check: "TestSecondReaderAfterEarlyStop/first-read-4096-bytes", verdict: report.Fail, hint: "static or global variable"},
	{name: "carol", variant: "ignored-count", outcome: "test failed", check: "TestSmallReadsAreNotOverrun", verdict: report.Fail, hint: "ignores count"},
	// A tarball whose module does not build on 6.1 (task->state): scores
	// 0, with the compiler's message.
	{name: "dave", variant: "task-state", archive: ".tar.gz", outcome: "build failed", check: report.CheckBuild, verdict: report.Fail, hint: "renamed __state"},
	// An empty write oopses on kmalloc(0)'s ZERO_SIZE_PTR, and the guest
	// dies: the crash is the empty write's, named with its cause.
	{name: "erin", variant: "empty-write", outcome: "kernel trouble", check: "TestBadInputIsHarmless/empty", verdict: report.Error, hint: "ZERO_SIZE_PTR"},
	// A read that never returns: the check that reads hangs, and waits
	// out the test limit.
	{name: "frank", variant: "read-waits-forever", outcome: "timeout", check: "TestRecordFields", verdict: report.Error, hint: "never returned"},
	// A zip as course platforms export it: the module one folder down,
	// beside macOS's __MACOSX; the textbook starter's two bugs.
	{name: "grace", variant: "textbook-starter", archive: ".zip", outcome: "test failed", check: "TestSecondReaderAfterEarlyStop", verdict: report.Fail, hint: "static or global variable"},
	// A tarball with a member that climbs out of its folder: refused,
	// unpacked nowhere.
	{name: "mallory", archive: ".tar.gz"},
}

// points are the course's: TestRecordFields (the 14 facts… here 3) worth
// 4, the build nothing; every other check 1.
const points = `
[points]
"module builds" = 0
TestRecordFields = 4
`

// TestGradeAClass grades the class with go tool mage grade's target, VMs
// in parallel, and holds every output to the verdicts: the class's
// report, CSV, JUnit, each results.json and the HTML page in a real
// browser agree on every score. A second grade reuses every grade; three
// shards of it, merged, are the same class.
func TestGradeAClass(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs")
	}
	repo := repoPath(t)
	classDir := makeClass(t, repo)
	out := filepath.Join(t.TempDir(), "grade")
	course := filepath.Join(t.TempDir(), "course.toml")
	osc, err := os.ReadFile(filepath.Join(repo, "module/procpid/profiles/osc10e.toml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(course, append(osc, points...), 0o644))
	t.Setenv(vmtest.EnvProfile, course)
	t.Setenv(vmtest.EnvGradeOut, out)
	// The hang waits out the per-test limit: a short one, still well
	// above the slowest check with two VMs on two cores.
	t.Setenv(vmtest.EnvTestTimeout, "60s")

	start := time.Now()
	log := gradeWith(t, repo, classDir)
	took := time.Since(start)
	t.Logf("graded %d submissions in %s", len(students), took.Round(time.Second))

	class, err := grade.ReadClass(out)
	require.NoError(t, err)
	require.Len(t, class.Submissions, len(students))
	for i, st := range students {
		t.Run(st.name, func(t *testing.T) { checkStudent(t, class, class.Submissions[i], st, out) })
	}
	checkParallel(t, class, log)
	checkOutputsAgree(t, class, out)
	CheckPageInBrowser(t, out)

	t.Run("again: every grade reused", func(t *testing.T) {
		log := gradeWith(t, repo, classDir)
		assert.Contains(t, log, "8/8 graded (1 pass, 7 fail, 8 reused)", "no VM: every grade reused")
		again, err := grade.ReadClass(out)
		require.NoError(t, err)
		assert.Equal(t, csvOf(t, class), csvOf(t, again))
	})
	t.Run("three shards merged", func(t *testing.T) { checkShards(t, repo, classDir, out) })
	t.Run("validate's results.json", func(t *testing.T) { checkValidateGradescope(t, repo, classDir, out) })
}

// checkValidateGradescope: validate with PIDLAB_GRADESCOPE, as inside a
// Gradescope autograder, scores bob as the grade did, test by test.
func checkValidateGradescope(t *testing.T, repo, classDir, out string) {
	path := filepath.Join(t.TempDir(), "results", "results.json")
	t.Setenv(vmtest.EnvGradescope, path)
	err := targets.Validate(t.Context(), targets.Options{RepoDir: repo, Out: testWriter{t}}, filepath.Join(classDir, "bob"))
	require.Error(t, err, "bob's module fails a check: validate's exit 1")
	validated := readGradescope(t, path)
	graded := readGradescope(t, filepath.Join(out, grade.SubmissionsDir, "bob", grade.ResultsFile))
	assert.Equal(t, graded.Score, validated.Score)
	require.Len(t, validated.Tests, len(graded.Tests))
	for i, tc := range validated.Tests {
		g := graded.Tests[i]
		assert.Equal(t, [3]any{g.Name, g.Status, g.MaxScore}, [3]any{tc.Name, tc.Status, tc.MaxScore})
	}
}

func readGradescope(t *testing.T, path string) grade.Gradescope {
	var g grade.Gradescope
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &g))
	return g
}

// gradeWith runs go tool mage grade's target on dir and returns what it
// printed; every submission must get its verdict (exit 0).
func gradeWith(t *testing.T, repo, dir string) string {
	t.Helper()
	var log bytes.Buffer
	err := targets.Grade(t.Context(), targets.Options{RepoDir: repo, Out: io.MultiWriter(&log, testWriter{t})}, dir)
	require.NoError(t, err, "every submission gets a verdict: exit 0")
	return log.String()
}

// checkStudent holds one submission's grade to what the student wants.
func checkStudent(t *testing.T, class grade.Class, s grade.Submission, st student, out string) {
	assert.Equal(t, st.name, s.Name)
	if st.outcome == "" {
		assert.Nil(t, s.Run)
		assert.Contains(t, s.Refusal, "../")
		assert.Zero(t, class.Score(s))
		return
	}
	require.NotNil(t, s.Run, s.Refusal)
	assert.Equal(t, st.outcome, s.Run.Outcome, "reason: %s", s.Run.Reason)
	if st.outcome == "pass" {
		assert.Equal(t, class.MaxScore(), class.Score(s), "a correct module gets every point")
		assert.Equal(t, "13 passed, 0 failed, 1 skipped", s.Run.Score(), "every check of the profile ran and passed; the opt-in TestEntryMode skips")
	} else {
		assert.Less(t, class.Score(s), class.MaxScore())
		ch := checkNamed(t, *s.Run, st.check)
		assert.Equal(t, st.verdict, ch.Verdict)
		assert.Contains(t, ch.Hint, st.hint, "the hint names the bug")
	}
	switch st.name {
	case "dave":
		assert.Zero(t, class.Score(s), "a build failure scores 0")
		assert.Contains(t, checkNamed(t, *s.Run, report.CheckBuild).Message, "has no member named 'state'", "the compiler's message")
	case "erin":
		// The empty write comes last: every input before it was judged
		// before it killed the guest.
		for _, in := range []string{"letters", "NUL", "two-numbers", "4096-digits"} {
			assert.Equal(t, report.Pass, checkNamed(t, *s.Run, "TestBadInputIsHarmless/"+in).Verdict, "an input written before the crash")
		}
		assert.NotEmpty(t, s.Run.ConsoleExcerpt, "the oops, quoted")
	case "grace":
		assert.Contains(t, checkNamed(t, *s.Run, "TestSmallReadsAreNotOverrun").Hint, "ignores count", "the other bug, named too")
	}
	if st.outcome != "build failed" {
		assert.Equal(t, grade.ConsoleFile, s.Run.ConsoleLog, "the console log, kept beside the report")
		log, err := os.ReadFile(filepath.Join(out, grade.SubmissionsDir, s.Name, grade.ConsoleFile))
		require.NoError(t, err)
		assert.Contains(t, string(log), "Linux version 6.1", "a whole console log")
	}
}

// checkParallel: when the grade ran more than one VM at once, some
// submissions' grades overlapped in time; the hang and the crash touched
// no other (checkStudent).
func checkParallel(t *testing.T, class grade.Class, log string) {
	m := regexp.MustCompile(`(\d+) VMs? at once`).FindStringSubmatch(log)
	require.NotNil(t, m, "the grade says how many VMs at once:\n%s", log)
	if m[1] == "1" {
		t.Logf("one VM at a time on this machine: nothing ran in parallel")
		return
	}
	var overlaps []string
	subs := class.Submissions
	for i, a := range subs {
		for _, b := range subs[i+1:] {
			if a.Run != nil && b.Run != nil && a.Started.Before(end(b)) && b.Started.Before(end(a)) {
				overlaps = append(overlaps, a.Name+"+"+b.Name)
			}
		}
	}
	assert.NotEmpty(t, overlaps, "%s VMs at once: some grades overlap", m[1])
	t.Logf("grades that overlapped: %s", strings.Join(overlaps, ", "))
}

func end(s grade.Submission) time.Time {
	return s.Started.Add(time.Duration(s.Seconds * float64(time.Second)))
}

// checkOutputsAgree: class.csv, junit.xml and each results.json say the
// scores and verdicts the class's report does.
func checkOutputsAgree(t *testing.T, class grade.Class, out string) {
	rows := readCSV(t, filepath.Join(out, grade.CSVFile))
	require.Len(t, rows, len(class.Submissions)+1)
	checks := class.Checks()
	assert.Equal(t, append([]string{"submission", "score", "max_score"}, checks...), rows[0])
	maxScore := class.MaxScore()
	assert.Equal(t, float64(len(checks)+3-1-1), maxScore, "every check 1, TestRecordFields 4, the build 0, the opt-in TestEntryMode 0")
	suites := junitSuites(t, filepath.Join(out, grade.JUnitFile))
	for i, s := range class.Submissions {
		score := class.Score(s)
		row := rows[i+1]
		assert.Equal(t, []string{s.Name, num(score), num(maxScore)}, row[:3], "CSV row of %s", s.Name)
		for j, name := range checks {
			assert.Equal(t, grade.Verdict(s, name), row[3+j], "%s: %s", s.Name, name)
		}
		gs := readGradescope(t, filepath.Join(out, grade.SubmissionsDir, s.Name, grade.ResultsFile))
		assert.Equal(t, score, gs.Score, "results.json of %s", s.Name)
		require.Len(t, gs.Tests, len(checks))
		var sum, maxSum float64
		for _, tc := range gs.Tests {
			maxSum += tc.MaxScore
			if tc.Status == "passed" {
				sum += tc.Score
			}
		}
		assert.Equal(t, score, sum, "%s: results.json's total is its passed tests'", s.Name)
		assert.Equal(t, maxScore, maxSum)
		kernel := ""
		if s.Run != nil {
			kernel = s.Run.Kernel
		}
		suite, ok := suites["pidlab/"+s.Name+"/"+kernel]
		assert.True(t, ok, "a JUnit testsuite for each submission: %s", s.Name)
		assert.Equal(t, score == maxScore, suite.Failures+suite.Errors == 0, "JUnit failures of %s", s.Name)
	}
}

// checkShards grades the class again as three shards, each in its own
// folder seeded with the whole grade (so each reuses its share: no VM),
// merges them and wants the unsharded class.
func checkShards(t *testing.T, repo, classDir, whole string) {
	parent := t.TempDir()
	seen := map[string]string{}
	for k := 1; k <= 3; k++ {
		shard := filepath.Join(parent, "shard-"+strconv.Itoa(k))
		require.NoError(t, os.CopyFS(filepath.Join(shard, grade.SubmissionsDir), os.DirFS(filepath.Join(whole, grade.SubmissionsDir))))
		t.Setenv(vmtest.EnvGradeOut, shard)
		t.Setenv(vmtest.EnvShard, strconv.Itoa(k)+"/3")
		gradeWith(t, repo, classDir)
		des, err := os.ReadDir(filepath.Join(shard, grade.SubmissionsDir))
		require.NoError(t, err)
		for _, de := range des {
			assert.NotContains(t, seen, de.Name(), "%s in two shards", de.Name())
			seen[de.Name()] = shard
		}
	}
	assert.Len(t, seen, len(students), "every submission in a shard")
	merged := filepath.Join(parent, "merged")
	t.Setenv(vmtest.EnvShard, "")
	t.Setenv(vmtest.EnvGradeOut, merged)
	require.NoError(t, targets.GradeMerge(t.Context(), targets.Options{RepoDir: repo, Out: testWriter{t}}, filepath.Join(parent, "shard-*")))
	for _, f := range []string{grade.CSVFile, grade.JUnitFile, grade.HTMLFile, grade.ClassFile} {
		want, err := os.ReadFile(filepath.Join(whole, f))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(merged, f))
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got), "%s of the merged shards", f)
	}
}

// makeClass writes the class's submissions into a folder of their own.
func makeClass(t *testing.T, repo string) string {
	dir := t.TempDir()
	for _, st := range students {
		if st.name == "mallory" {
			writeTarGz(t, filepath.Join(dir, st.name+st.archive), map[string]string{
				"mallory/Makefile": "obj-m += pid.o\n", "mallory/../../escaped/pid.c": "int x;\n"})
			continue
		}
		files := moduleFiles(t, repo, st.variant)
		switch st.archive {
		case "":
			for name, text := range files {
				require.NoError(t, os.MkdirAll(filepath.Join(dir, st.name), 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(dir, st.name, name), []byte(text), 0o644))
			}
		case ".tar.gz":
			writeTarGz(t, filepath.Join(dir, st.name+st.archive), prefixed(st.name+"/", files))
		case ".zip":
			all := prefixed(st.name+"-lab3/", files)
			all["__MACOSX/"+st.name+"-lab3/._pid.c"] = "\x00\x05\x16\x07"
			writeZip(t, filepath.Join(dir, st.name+st.archive), all)
		}
	}
	return dir
}

// moduleFiles are the OSC10e module's files with a fixture's bug.patch
// applied ("": none).
func moduleFiles(t *testing.T, repo, variant string) map[string]string {
	dir := t.TempDir()
	src := filepath.Join(repo, "module/testdata/osc10e")
	require.NoError(t, os.CopyFS(dir, os.DirFS(src)))
	if variant != "" {
		cmd := exec.Command("git", "apply", filepath.Join(repo, "module/testdata/osc10e-buggy", variant, "bug.patch"))
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", b)
	}
	files := map[string]string{}
	for _, name := range []string{"Makefile", "pid.c"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		files[name] = string(b)
	}
	return files
}

func prefixed(prefix string, files map[string]string) map[string]string {
	out := map[string]string{}
	for name, text := range files {
		out[prefix+name] = text
	}
	return out
}

func writeTarGz(t *testing.T, path string, files map[string]string) {
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	for name, text := range files {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(text)), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(text))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
}

func writeZip(t *testing.T, path string, files map[string]string) {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, text := range files {
		w, err := zw.Create(name)
		require.NoError(t, err)
		_, err = w.Write([]byte(text))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
}

func readCSV(t *testing.T, path string) [][]string {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	return rows
}

func csvOf(t *testing.T, c grade.Class) string {
	var b strings.Builder
	require.NoError(t, grade.WriteCSV(&b, c))
	return b.String()
}

type junitSuite struct {
	Name     string `xml:"name,attr"`
	Failures int    `xml:"failures,attr"`
	Errors   int    `xml:"errors,attr"`
}

// junitSuites parses junit.xml back: its testsuites by name.
func junitSuites(t *testing.T, path string) map[string]junitSuite {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc struct {
		Suites []junitSuite `xml:"testsuite"`
	}
	require.NoError(t, xml.Unmarshal(b, &doc))
	suites := map[string]junitSuite{}
	for _, s := range doc.Suites {
		suites[s.Name] = s
	}
	return suites
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// checkNamed is the run's check named name.
func checkNamed(t *testing.T, run report.Run, name string) report.Check {
	t.Helper()
	var names []string
	for _, c := range run.Checks {
		if c.Name == name {
			return c
		}
		names = append(names, c.Name)
	}
	t.Fatalf("no check %s; the checks: %s", name, strings.Join(names, ", "))
	return report.Check{}
}

func repoPath(t *testing.T) string {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	return root
}

// testWriter writes a target's output to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// BenchmarkGradeThroughput grades the same class of correct modules (a
// submission a student, PIDLAB_GRADE_N of them, default 6) one VM at a
// time and then with PIDLAB_GRADE_VMS's default (a VM per CPU), side by
// side, and reports the seconds per submission of each and their ratio:
//
//	go test -run '^$' -bench GradeThroughput -benchtime 1x ./vmtest/grade/
func BenchmarkGradeThroughput(b *testing.B) {
	repo, err := filepath.Abs("../..")
	require.NoError(b, err)
	n := 6
	if v := os.Getenv("PIDLAB_GRADE_N"); v != "" {
		n, err = strconv.Atoi(v)
		require.NoError(b, err)
	}
	b.Setenv(vmtest.EnvProfile, "osc10e")
	perSubmission := map[string]float64{}
	for b.Loop() {
		for _, vms := range []string{"1", ""} {
			classDir := distinctClass(b, repo, n, "vms="+vms)
			b.Setenv(vmtest.EnvGradeVMs, vms)
			b.Setenv(vmtest.EnvGradeOut, b.TempDir()) // nothing to reuse
			start := time.Now()
			err := targets.Grade(b.Context(), targets.Options{RepoDir: repo, Out: io.Discard}, classDir)
			require.NoError(b, err)
			perSubmission[vms] = time.Since(start).Seconds() / float64(n)
		}
	}
	b.ReportMetric(perSubmission["1"], "s/submission-serial")
	b.ReportMetric(perSubmission[""], "s/submission-parallel")
	b.ReportMetric(perSubmission["1"]/perSubmission[""], "speedup")
}

// distinctClass is n copies of the correct module, each with a comment of
// its own (tag and its number), so that no module build is reused: each
// student's code differs.
func distinctClass(b *testing.B, repo string, n int, tag string) string {
	dir := b.TempDir()
	src := filepath.Join(repo, "module/testdata/osc10e")
	for i := range n {
		student := filepath.Join(dir, "student-"+strconv.Itoa(i+1))
		require.NoError(b, os.CopyFS(student, os.DirFS(src)))
		f, err := os.OpenFile(filepath.Join(student, "pid.c"), os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(b, err)
		_, err = fmt.Fprintf(f, "/* %s, student %d, %d */\n", tag, i+1, time.Now().UnixNano())
		require.NoError(b, err)
		require.NoError(b, f.Close())
	}
	return dir
}
