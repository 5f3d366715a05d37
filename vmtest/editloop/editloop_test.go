package editloop

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/report"
)

func run(wall, vm, tests float64, build float64) Run {
	r := Run{Wall: seconds(wall), VM: seconds(vm), OutsideVM: seconds(wall - vm), GuestTests: seconds(tests),
		Prepared: []report.Span{{What: "build procpid", Seconds: build}, {What: "initramfs", Seconds: 0.1}}}
	r.Unaccounted = r.unaccounted()
	return r
}

// Each time is the median of its own: a slow round's VM does not make
// another round's preparation look slow.
func TestMediansAreTakenTimeByTime(t *testing.T) {
	m := medianRun([]Run{run(30, 20, 15, 4), run(25, 21, 16, 2), run(40, 22, 14, 3)})
	assert.Equal(t, seconds(30), m.Wall)
	assert.Equal(t, seconds(21), m.VM)
	assert.Equal(t, seconds(10), m.OutsideVM)
	assert.Equal(t, seconds(15), m.GuestTests)
	assert.Equal(t, seconds(3), m.Step("build procpid"))
	assert.Equal(t, seconds(0.1), m.Step("initramfs"))
	assert.Zero(t, m.Step("no such step"))
	assert.Equal(t, seconds(5.9), m.Unaccounted.Round(time.Millisecond), "the median of each run's own remainder (5.9, 1.9, 14.9), not the medians' (10-3-0.1)")
}

// The ratio is edit → verdict over the floor; the time outside the VM is
// split into the preparation's steps and the rest.
func TestFiguresSayWhereTheTimeWent(t *testing.T) {
	f := Figures{Rounds: 3, BareBoot: 3 * time.Second, NoChange: run(22, 21, 15, 0), Edit: run(24, 21, 15, 2)}
	assert.InDelta(t, 24.0/18.0, f.Ratio(), 1e-9)
	assert.Equal(t, seconds(0.9), f.Edit.Unaccounted.Round(time.Millisecond))

	var out strings.Builder
	Print(&progress.Log{W: &out}, f)
	assert.Contains(t, out.String(), "outside the VM 3.00 s (build procpid 2.00, initramfs 0.10, go, mage, verdict and reports 0.90)")
	assert.Contains(t, out.String(), "1.33 × (goal: at most 1.3)")

	figs := ReportFigures(f)
	last := figs[len(figs)-1]
	assert.Equal(t, "edit → verdict / (bare boot + guest tests)", last.Name)
	assert.InDelta(t, 24.0/18.0, last.Value, 1e-9)
	assert.Contains(t, figs, report.Figure{Benchmark: "EditLoop", Name: "edit → verdict, build procpid", Value: 2, Unit: "s",
		About: "median of 3 rounds, each a bare boot, a run with nothing changed and one after an edit"})
}

// The copy leaves version control out, and the edit changes one line at
// the end of the C, a new one each round.
func TestCopyAndEdit(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "repo")
	for name, text := range map[string]string{".git/HEAD": "ref", "module/m/m.c": "int x;\n", "go.mod": "module m\n"} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(src, name), []byte(text), 0o644))
	}
	require.NoError(t, copyTree(src, dst))
	assert.NoDirExists(t, filepath.Join(dst, ".git"))
	assert.FileExists(t, filepath.Join(dst, "go.mod"))

	c := filepath.Join(dst, "module/m/m.c")
	require.NoError(t, edit(c, 1))
	require.NoError(t, edit(c, 2))
	b, err := os.ReadFile(c)
	require.NoError(t, err)
	assert.Regexp(t, `^int x;\nMODULE_INFO\(pidlab_edit, "round 1 at \d+"\);\nMODULE_INFO\(pidlab_edit, "round 2 at \d+"\);\n$`, string(b))
	orig, err := os.ReadFile(filepath.Join(src, "module/m/m.c"))
	require.NoError(t, err)
	assert.Equal(t, "int x;\n", string(orig), "the original is untouched")
}
