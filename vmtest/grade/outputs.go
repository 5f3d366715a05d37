package grade

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/pidlab/pidlab/vmtest/report"
)

// An output folder holds a class's grades: per submission, in
// submissions/<name>/, its outcome (submission.json), its validation's
// report (report.json) and console log when it ran, and its Gradescope
// results.json; for the class, class.json (profile, planned checks,
// points), class.csv, junit.xml and class.html. A shard's folder has the
// same layout: merging folders is reading their submissions together.
const (
	SubmissionsDir = "submissions"
	ClassFile      = "class.json"
	CSVFile        = "class.csv"
	JUnitFile      = "junit.xml"
	HTMLFile       = "class.html"
	OutcomeFile    = "submission.json"
	ReportFile     = "report.json"
	ResultsFile    = "results.json"
	ConsoleFile    = "console.log"
)

// classFile is class.json: what every submission of the class was graded
// with.
type classFile struct {
	Profile string             `json:"profile"`
	Planned []string           `json:"planned"`
	Points  map[string]float64 `json:"points,omitempty"`
}

// outcomeFile is a submission's submission.json.
type outcomeFile struct {
	Name    string `json:"name"`
	Key     string `json:"key,omitempty"` // what it was graded from: its content, the profile, the kernels
	Refusal string `json:"refusal,omitempty"`
	// When it was graded and how long it took (unpacking, building,
	// the VM): a grade's throughput, and proof that grades overlapped.
	Started time.Time `json:"started,omitzero"`
	Seconds float64   `json:"seconds,omitempty"`
}

// WriteSubmission records one submission's outcome in out, graded from
// key; a run's report goes beside it. A later grade of the same
// submission replaces it whole.
func WriteSubmission(out string, s Submission, key string) error {
	dir := filepath.Join(out, SubmissionsDir, s.Name)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if s.Run != nil {
		run := *s.Run
		if err := keepConsoleLog(&run, dir); err != nil {
			return err
		}
		if err := report.WriteJSON(filepath.Join(dir, ReportFile), report.Report{Schema: report.Schema, ExitCode: run.ExitCode, Runs: []report.Run{run}}); err != nil {
			return err
		}
	}
	return writeJSON(filepath.Join(dir, OutcomeFile), outcomeFile{Name: s.Name, Key: key, Refusal: s.Refusal, Started: s.Started, Seconds: s.Seconds})
}

// keepConsoleLog copies the run's console log (in pidlab's cache, which
// prunes it) into the submission's folder dir, and points the run at the
// copy, by a path relative to the report: the folder can move, or be
// merged into another.
func keepConsoleLog(run *report.Run, dir string) error {
	if run.ConsoleLog == "" || !filepath.IsAbs(run.ConsoleLog) {
		return nil // none, or a copy already
	}
	b, err := os.ReadFile(run.ConsoleLog)
	if err != nil {
		return fmt.Errorf("keeping the console log: %w", err)
	}
	run.ConsoleLog = ConsoleFile
	return os.WriteFile(filepath.Join(dir, ConsoleFile), b, 0o644)
}

// WriteGradescope writes g to path as results.json, making its folder.
func WriteGradescope(path string, g Gradescope) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return writeJSON(path, g)
}

// Key is the key a submission in out was graded from, "" if none.
func Key(out, name string) string {
	var o outcomeFile
	if err := readJSON(filepath.Join(out, SubmissionsDir, name, OutcomeFile), &o); err != nil {
		return ""
	}
	return o.Key
}

// WriteClass writes the class's files into out, and each submission's
// Gradescope results.json beside its outcome.
func WriteClass(out string, c Class) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(out, ClassFile), classFile{Profile: c.Profile, Planned: c.Checks(), Points: c.Points}); err != nil {
		return err
	}
	for _, s := range c.Submissions {
		dir := filepath.Join(out, SubmissionsDir, s.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := writeJSON(filepath.Join(dir, ResultsFile), GradescopeOf(c, s)); err != nil {
			return err
		}
	}
	if err := writeWith(filepath.Join(out, CSVFile), func(f *os.File) error { return WriteCSV(f, c) }); err != nil {
		return err
	}
	if err := writeWith(filepath.Join(out, HTMLFile), func(f *os.File) error { return WriteHTML(f, c) }); err != nil {
		return err
	}
	return report.WriteJUnit(filepath.Join(out, JUnitFile), c.Report())
}

// ReadClass reads the submissions of one output folder or of several (a
// class's shards) into one class. The folders must have graded with one
// profile and the same points; a submission in two of them is an error.
func ReadClass(outs ...string) (Class, error) {
	var c Class
	seen := map[string]string{}
	for i, out := range outs {
		var cf classFile
		if err := readJSON(filepath.Join(out, ClassFile), &cf); err != nil {
			return c, fmt.Errorf("%s is no grade output folder: %w", out, err)
		}
		if i == 0 {
			c.Profile, c.Points = cf.Profile, cf.Points
		} else if cf.Profile != c.Profile || !samePoints(cf.Points, c.Points) {
			return c, fmt.Errorf("%s was graded with profile %s and other points than %s (profile %s): not one class", out, cf.Profile, outs[0], c.Profile)
		}
		c.Planned = mergeRows(c.Planned, cf.Planned)
		subs, err := readSubmissions(out)
		if err != nil {
			return c, err
		}
		for _, s := range subs {
			if other, ok := seen[s.Name]; ok {
				return c, fmt.Errorf("submission %s is in both %s and %s: shards must not overlap", s.Name, other, out)
			}
			seen[s.Name] = out
			c.Submissions = append(c.Submissions, s)
		}
	}
	sort.Slice(c.Submissions, func(i, j int) bool { return c.Submissions[i].Name < c.Submissions[j].Name })
	return c, nil
}

// Merge merges the output folders of a class's shards into out: their
// submissions' folders are copied there, and the class's files written
// for them all. It returns the merged class.
func Merge(out string, shards ...string) (Class, error) {
	c, err := ReadClass(shards...)
	if err != nil {
		return c, err
	}
	if err := os.RemoveAll(filepath.Join(out, SubmissionsDir)); err != nil {
		return c, err
	}
	for _, shard := range shards {
		if err := os.CopyFS(filepath.Join(out, SubmissionsDir), os.DirFS(filepath.Join(shard, SubmissionsDir))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return c, fmt.Errorf("copying %s's submissions: %w", shard, err)
		}
	}
	return c, WriteClass(out, c)
}

// Prune removes the submissions of out that are not named in names: gone
// from the class, or another shard's. It returns those it removed.
func Prune(out string, names []string) ([]string, error) {
	des, err := os.ReadDir(filepath.Join(out, SubmissionsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, de := range des {
		if slices.Contains(names, de.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(out, SubmissionsDir, de.Name())); err != nil {
			return removed, err
		}
		removed = append(removed, de.Name())
	}
	return removed, nil
}

// readSubmissions reads every submission's outcome and report in out.
func readSubmissions(out string) ([]Submission, error) {
	des, err := os.ReadDir(filepath.Join(out, SubmissionsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // a shard with no submission
	}
	if err != nil {
		return nil, err
	}
	var subs []Submission
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		s, err := readSubmission(filepath.Join(out, SubmissionsDir, de.Name()))
		if err != nil {
			return nil, err
		}
		subs = append(subs, s)
	}
	return subs, nil
}

// readSubmission reads one submission's folder: its outcome, and its
// report when it ran.
func readSubmission(dir string) (Submission, error) {
	var o outcomeFile
	if err := readJSON(filepath.Join(dir, OutcomeFile), &o); err != nil {
		return Submission{}, err
	}
	s := Submission{Name: o.Name, Refusal: o.Refusal, Started: o.Started, Seconds: o.Seconds}
	if o.Refusal != "" {
		return s, nil
	}
	r, err := report.ReadJSON(filepath.Join(dir, ReportFile))
	if err != nil {
		return s, err
	}
	if len(r.Runs) != 1 {
		return s, fmt.Errorf("%s: want one run, got %d", filepath.Join(dir, ReportFile), len(r.Runs))
	}
	s.Run = &r.Runs[0]
	return s, nil
}

// mergeRows is a followed by b's rows that a lacks, each after the row it
// followed in b.
func mergeRows(a, b []string) []string {
	out := slices.Clone(a)
	at := 0
	for _, name := range b {
		if i := slices.Index(out, name); i >= 0 {
			at = max(at, i+1)
			continue
		}
		out = slices.Insert(out, at, name)
		at++
	}
	return out
}

func samePoints(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeWith creates path and has write fill it.
func writeWith(path string, write func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
