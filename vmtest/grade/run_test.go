package grade

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/report"
	"github.com/pidlab/pidlab/vmtest/submission"
)

// fakeValidator stands in for a VM: a module whose folder has a file
// "broken" fails, any other passes; it counts calls and how many ran at once.
type fakeValidator struct {
	calls, running, most atomic.Int32
	err                  error
	awaitPeer            bool // the first call waits for a second to start
}

func (f *fakeValidator) validate(_ context.Context, name, dir string) (report.Run, error) {
	first := f.calls.Add(1) == 1 && f.awaitPeer
	f.running.Add(1)
	defer f.running.Add(-1)
	// The first waits for a second to start (5 s at most), so that a
	// busy machine's scheduling cannot make a parallel grade look serial.
	for deadline := time.Now().Add(5 * time.Second); first && f.running.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	for {
		now, m := f.running.Load(), f.most.Load()
		if now <= m || f.most.CompareAndSwap(m, now) {
			break
		}
	}
	time.Sleep(20 * time.Millisecond)
	if f.err != nil {
		return report.Run{}, f.err
	}
	if _, err := os.Stat(filepath.Join(dir, "broken")); err == nil {
		return report.Run{Module: name, Outcome: "build failed", ExitCode: 2, Checks: []report.Check{{Name: report.CheckBuild, Verdict: report.Fail}}}, nil
	}
	return report.Run{Module: name, Outcome: "pass", Checks: []report.Check{{Name: report.CheckBuild, Verdict: report.Pass}, {Name: "TestRead", Verdict: report.Pass}}}, nil
}

// classFolder is five folder submissions (one broken), a zip, a tarball
// that climbs out, and a stray file.
func classFolder(t *testing.T) string {
	t.Helper()
	class := t.TempDir()
	for _, name := range []string{"ann", "ben", "cat", "dan", "eve"} {
		require.NoError(t, os.MkdirAll(filepath.Join(class, name), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(class, name, "Makefile"), []byte("obj-m := m.o\n"), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(class, "cat", "broken"), nil, 0o644))
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	w, err := zw.Create("fay/Makefile")
	require.NoError(t, err)
	_, err = w.Write([]byte("obj-m := m.o\n"))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(filepath.Join(class, "fay.zip"), zipped.Bytes(), 0o644))
	var tarred bytes.Buffer
	gz := gzip.NewWriter(&tarred)
	tw := tar.NewWriter(gz)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "../Makefile", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}))
	_, err = tw.Write([]byte("x"))
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	require.NoError(t, os.WriteFile(filepath.Join(class, "gus.tar.gz"), tarred.Bytes(), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(class, "readme.txt"), nil, 0o644))
	return class
}

func grader(t *testing.T, out string, f *fakeValidator, progress *[]Progress) Grader {
	var mu sync.Mutex
	return Grader{Out: out, Work: t.TempDir(), Parallel: 2, Limits: submission.DefaultLimits, Settings: "profile osc10e; kernels cloud",
		Validate: f.validate, Progress: func(p Progress) { mu.Lock(); *progress = append(*progress, p); mu.Unlock() }}
}

func gradeClass(t *testing.T, g Grader, class string) []Submission {
	t.Helper()
	entries, refused, err := submission.List(class)
	require.NoError(t, err)
	subs, err := g.Grade(t.Context(), entries, refused)
	require.NoError(t, err)
	return subs
}

// Every submission gets its verdict, two at a time; refusals are rows;
// progress counts to the end.
func TestGradeGivesEverySubmissionAVerdict(t *testing.T) {
	class, out := classFolder(t), t.TempDir()
	f := &fakeValidator{awaitPeer: true}
	var progress []Progress
	subs := gradeClass(t, grader(t, out, f, &progress), class)

	var got []string
	for _, s := range subs {
		v := s.Refusal
		if s.Run != nil {
			v = s.Run.Outcome
		}
		got = append(got, s.Name+": "+v)
	}
	assert.Equal(t, []string{"ann: pass", "ben: pass", "cat: build failed", "dan: pass", "eve: pass", "fay: pass",
		"gus: submission gus refused: ../Makefile: a path out of the submission's folder",
		"readme.txt: submission readme.txt refused: not a folder, .zip, .tar.gz or .tgz"}, got)
	assert.Equal(t, int32(6), f.calls.Load(), "one validation per submission that has a module")
	assert.Equal(t, int32(2), f.most.Load(), "two at once")
	last := progress[len(progress)-1]
	assert.Equal(t, Progress{Done: 8, Total: 8, Passed: 5, Failed: 3, Last: last.Last, Left: last.Left}, last)
	for i := 1; i < len(progress); i++ {
		assert.Greater(t, progress[i].Done, progress[i-1].Done)
	}

	_, err := ReadClass(out)
	assert.ErrorContains(t, err, "is no grade output folder", "class.json comes with WriteClass")
	require.NoError(t, WriteClass(out, Class{Profile: "osc10e", Submissions: subs}))
	back, err := ReadClass(out)
	require.NoError(t, err)
	assert.Len(t, back.Submissions, 8)
}

// A second grade validates only what changed: a submission's content, or
// the settings for all.
func TestGradeReusesWhatDidNotChange(t *testing.T) {
	class, out := classFolder(t), t.TempDir()
	var progress []Progress
	gradeClass(t, grader(t, out, &fakeValidator{}, &progress), class)

	again := &fakeValidator{}
	progress = nil
	subs := gradeClass(t, grader(t, out, again, &progress), class)
	assert.Zero(t, again.calls.Load(), "nothing changed: no validation")
	assert.Equal(t, 7, progress[len(progress)-1].Reused, "the six validated and the archive refused on unpacking")
	assert.Equal(t, "build failed", subs[2].Run.Outcome, "a reused grade is the same grade")

	require.NoError(t, os.Remove(filepath.Join(class, "cat", "broken")))
	late := &fakeValidator{}
	subs = gradeClass(t, grader(t, out, late, &progress), class)
	assert.Equal(t, int32(1), late.calls.Load(), "only the changed submission")
	assert.Equal(t, "pass", subs[2].Run.Outcome)

	other := &fakeValidator{}
	g := grader(t, out, other, &progress)
	g.Settings = "profile reference; kernels cloud"
	gradeClass(t, g, class)
	assert.Equal(t, int32(6), other.calls.Load(), "other settings: every submission again")
}

// A setup problem stops the grade and says which submission met it.
func TestGradeStopsOnASetupProblem(t *testing.T) {
	class := classFolder(t)
	f := &fakeValidator{err: errors.New("QEMU is missing")}
	var progress []Progress
	entries, refused, err := submission.List(class)
	require.NoError(t, err)
	_, err = grader(t, t.TempDir(), f, &progress).Grade(t.Context(), entries, refused)
	assert.ErrorContains(t, err, "QEMU is missing")
	assert.LessOrEqual(t, f.calls.Load(), int32(2), "only the two under way: the rest are not started")
}

func TestProgressLine(t *testing.T) {
	p := Progress{Done: 5, Total: 8, Passed: 3, Failed: 2, Reused: 1, Last: "bob", Left: 80 * time.Second}
	assert.Equal(t, "5/8 graded (3 pass, 2 fail, 1 reused; about 1m20s left), last: bob", p.String())
	p.Done, p.Reused = 8, 0
	assert.Equal(t, "8/8 graded (3 pass, 2 fail), last: bob", p.String())
}
