package grade

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/pidlab/pidlab/vmtest/internal/contenthash"
	"github.com/pidlab/pidlab/vmtest/report"
	"github.com/pidlab/pidlab/vmtest/submission"
)

// Grader grades a class's submissions into an output folder, several at
// once, each validated on its own (in its own VM: Validate's business),
// and reuses the grade of a submission whose content and settings did not
// change since the folder last graded it.
type Grader struct {
	Out      string // the output folder (PIDLAB_GRADE_OUT)
	Work     string // where archives are unpacked, a folder of their own each
	Parallel int    // validations at once
	Limits   submission.Limits
	// Settings is what a grade depends on besides the submission: the
	// profile, the kernels. A change grades every submission again.
	Settings string
	// Validate validates the module in dir and returns its run. An error
	// is a setup problem (no kernel, no QEMU): the grade stops; a module
	// that fails to build or crashes the kernel is a run with that verdict.
	Validate func(ctx context.Context, name, dir string) (report.Run, error)
	Progress func(Progress) // after each submission; nil: none
}

// Progress is how far a grade is.
type Progress struct {
	Done, Total    int
	Passed, Failed int // of those done: their runs passed or not (a refusal fails)
	Reused         int // of those done: graded before, with the same content
	Last           string
	Left           time.Duration // an estimate: the mean validation so far, for what is left, Parallel at a time
}

// Grade grades entries (and records refused as refusals) and returns the
// class's submissions in name order. Each outcome is written to the output
// folder as soon as it is known, so an interrupted grade keeps what it
// did.
func (g Grader) Grade(ctx context.Context, entries []submission.Entry, refused []*submission.Refusal) ([]Submission, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var subs []Submission
	for _, r := range refused {
		s := Submission{Name: r.Submission, Refusal: r.Error()}
		if err := WriteSubmission(g.Out, s, ""); err != nil {
			return nil, err
		}
		subs = append(subs, s)
	}
	results := make([]Submission, len(entries))
	errs := make([]error, len(entries))
	jobs := make(chan int)
	var mu sync.Mutex
	t := tally{Progress: Progress{Total: len(entries) + len(refused), Done: len(refused), Failed: len(refused)}, start: time.Now(), parallel: max(g.Parallel, 1)}
	var wg sync.WaitGroup
	for range max(g.Parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if ctx.Err() != nil {
					continue // stopped: the job stays undone
				}
				started := time.Now()
				s, reused, err := g.one(ctx, entries[i])
				results[i], errs[i] = s, err
				if err != nil {
					cancel() // a setup problem stops the grade: the rest would fail alike
					continue
				}
				mu.Lock()
				t.add(s, reused, time.Since(started))
				p := t.Progress
				mu.Unlock()
				if g.Progress != nil {
					g.Progress(p)
				}
			}
		}()
	}
feed:
	for i := range entries {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("grading %s: %w", entries[i].Name, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	subs = append(subs, results...)
	sort.Slice(subs, func(i, j int) bool { return subs[i].Name < subs[j].Name })
	return subs, nil
}

// one grades one submission: reused when its key did not change, else
// unpacked (an archive), found, validated and recorded.
func (g Grader) one(ctx context.Context, e submission.Entry) (Submission, bool, error) {
	key, err := g.key(e)
	if err != nil {
		return Submission{}, false, err
	}
	if prev, ok := g.previous(e.Name, key); ok {
		return prev, true, nil
	}
	started := time.Now()
	s, err := g.validate(ctx, e)
	if err != nil {
		return s, false, err
	}
	s.Started, s.Seconds = started, time.Since(started).Seconds()
	return s, false, WriteSubmission(g.Out, s, key)
}

// validate unpacks an archive, finds the module and validates it; what
// is wrong with the submission itself is its refusal.
func (g Grader) validate(ctx context.Context, e submission.Entry) (Submission, error) {
	dir := e.Path
	if e.Kind != submission.Folder {
		dir = filepath.Join(g.Work, e.Name)
		if err := os.RemoveAll(dir); err != nil {
			return Submission{}, err
		}
		if err := submission.Unpack(e, dir, g.Limits); err != nil {
			return Submission{Name: e.Name, Refusal: err.Error()}, nil
		}
	}
	root, err := submission.ModuleRoot(dir)
	if err != nil {
		return Submission{Name: e.Name, Refusal: fmt.Sprintf("submission %s refused: %v", e.Name, err)}, nil
	}
	run, err := g.Validate(ctx, e.Name, root)
	if err != nil {
		return Submission{}, err
	}
	return Submission{Name: e.Name, Run: &run}, nil
}

// previous is the submission's grade in the output folder when it was
// graded from key.
func (g Grader) previous(name, key string) (Submission, bool) {
	if Key(g.Out, name) != key {
		return Submission{}, false
	}
	s, err := readSubmission(filepath.Join(g.Out, SubmissionsDir, name))
	return s, err == nil
}

// key hashes what a grade of e depends on: the archive's bytes, or every
// file of the folder (names, modes, contents), and the settings.
func (g Grader) key(e submission.Entry) (string, error) {
	k := contenthash.New()
	k.Printf("grade 1\nsettings %s\nkind %s\n", g.Settings, e.Kind)
	if e.Kind != submission.Folder {
		err := k.File("archive", e.Path)
		return k.String(), err
	}
	err := filepath.WalkDir(e.Path, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(e.Path, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		k.Printf("%s %v\n", filepath.ToSlash(rel), info.Mode())
		if d.Type().IsRegular() {
			return k.File(rel, path)
		}
		return nil
	})
	return k.String(), err
}

// tally counts a grade's progress.
type tally struct {
	Progress
	start     time.Time
	parallel  int
	validated int           // how many were validated, not reused
	spent     time.Duration // their validations' time
}

func (t *tally) add(s Submission, reused bool, took time.Duration) {
	t.Done++
	t.Last = s.Name
	if s.Run != nil && s.Run.Outcome == "pass" {
		t.Passed++
	} else {
		t.Failed++
	}
	if reused {
		t.Reused++
	} else {
		t.validated++
		t.spent += took
	}
	if t.validated > 0 {
		mean := t.spent / time.Duration(t.validated)
		t.Left = mean * time.Duration(t.Total-t.Done) / time.Duration(t.parallel)
	}
}

// String is a progress line: "5/8 graded (3 pass, 2 fail, 1 reused; about 1m20s left), last: bob".
func (p Progress) String() string {
	s := fmt.Sprintf("%d/%d graded (%d pass, %d fail", p.Done, p.Total, p.Passed, p.Failed)
	if p.Reused > 0 {
		s += fmt.Sprintf(", %d reused", p.Reused)
	}
	if p.Done < p.Total && p.Left > 0 {
		s += fmt.Sprintf("; about %v left", p.Left.Round(time.Second))
	}
	return s + "), last: " + p.Last
}
