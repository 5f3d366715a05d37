// Package editloop measures a kernel developer's loop: edit the module's
// C, run go tool mage test, read the verdict. It times, side by side in
// one run and in alternating rounds, the floor (a bare boot of the same
// kernel to an init that powers off, plus the guest tests' own time), a
// warm run with nothing changed, and a run after a one-line change to the
// module's C, and says where each run's time outside the VM went.
//
// The runs are real ones: go tool mage test, as a person types it, in a
// copy of the repository (the edits never touch the original), with
// PIDLAB_MODULES naming the one module and the JSON report giving the
// run's own times (the VM's, the preparation's steps, the suites').
package editloop

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/u-root/mkuimage/cpio"

	"github.com/pidlab/pidlab/vmtest/guestbin"
	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/qemu"
	"github.com/pidlab/pidlab/vmtest/report"
)

//go:embed bare/poweroff.c
var poweroffSource []byte

// Setup is what the measurement runs on.
type Setup struct {
	RepoDir  string         // pidlab's source tree, copied for the runs
	Module   string         // the folder of module/ whose loop is timed: procpid
	Rounds   int            // how many of each run, in turn; the figures are medians
	Kernel   *kernel.Kernel // the provisioned kernel the runs select (PIDLAB_KERNEL)
	Accel    qemu.Accel
	CacheDir string // pidlab's cache: the runs share it, as a person's do
	Log      *progress.Log
}

// Run is one go tool mage test, timed from outside and from its report.
type Run struct {
	Wall       time.Duration
	VM         time.Duration // QEMU's life
	Boot       time.Duration // QEMU's start to the first guest test
	OutsideVM  time.Duration // the rest: go and mage starting, the preparation, the verdict and reports
	GuestTests time.Duration // the suites' own time in the guest
	Prepared   []report.Span // the preparation's steps, as the report gives them
	// Unaccounted is the part of the time outside the VM that the
	// preparation's steps do not hold: go tool and mage starting (mage
	// checks its compiled magefiles), the run's configuration, the
	// verdict, the reports.
	Unaccounted time.Duration
}

// unaccounted is what of r's time outside the VM its steps do not hold.
func (r Run) unaccounted() time.Duration {
	d := r.OutsideVM
	for _, s := range r.Prepared {
		d -= seconds(s.Seconds)
	}
	return d
}

// Step is how long the preparation step named what took (0 if none).
func (r Run) Step(what string) time.Duration {
	for _, s := range r.Prepared {
		if s.What == what {
			return seconds(s.Seconds)
		}
	}
	return 0
}

// Figures are the medians of the rounds.
type Figures struct {
	Rounds   int
	BareBoot time.Duration
	NoChange Run // medians of each field on its own
	Edit     Run
}

// Floor is what no change to pidlab can beat: booting the kernel and
// running the guest tests.
func (f Figures) Floor() time.Duration { return f.BareBoot + f.Edit.GuestTests }

// Ratio is edit → verdict over the floor.
func (f Figures) Ratio() float64 { return f.Edit.Wall.Seconds() / f.Floor().Seconds() }

// Measure makes the copy, warms it up with one run, then does s.Rounds
// rounds of a bare boot, a run with nothing changed and a run after an
// edit, and returns their medians.
func Measure(ctx context.Context, s Setup) (Figures, error) {
	work, err := os.MkdirTemp("", "pidlab-editloop-")
	if err != nil {
		return Figures{}, err
	}
	defer os.RemoveAll(work)
	repo := filepath.Join(work, "repo")
	s.Log.Step("copying %s to %s (the edits go there)", s.RepoDir, repo)
	if err := copyTree(s.RepoDir, repo); err != nil {
		return Figures{}, fmt.Errorf("copying the repository: %w", err)
	}
	initrd, err := bareInitramfs(ctx, s, work)
	if err != nil {
		return Figures{}, err
	}
	source := filepath.Join(repo, "module", s.Module, s.Module+".c")
	s.Log.Step("warming up: go tool mage test of module %s, once", s.Module)
	if _, err := mageTest(ctx, s, repo, work); err != nil {
		return Figures{}, err
	}
	var boots []time.Duration
	var same, edited []Run
	for round := 1; round <= s.Rounds; round++ {
		s.Log.Step("round %d of %d: a bare boot, a run with nothing changed, a run after an edit", round, s.Rounds)
		boot, err := bareBoot(ctx, s, initrd)
		if err != nil {
			return Figures{}, err
		}
		boots = append(boots, boot)
		run, err := mageTest(ctx, s, repo, work)
		if err != nil {
			return Figures{}, err
		}
		same = append(same, run)
		if err := edit(source, round); err != nil {
			return Figures{}, err
		}
		if run, err = mageTest(ctx, s, repo, work); err != nil {
			return Figures{}, err
		}
		edited = append(edited, run)
		s.Log.Info("bare boot %s s, nothing changed %s s, after the edit %s s", secs(boot), secs(same[round-1].Wall), secs(run.Wall))
	}
	return Figures{Rounds: s.Rounds, BareBoot: median(boots), NoChange: medianRun(same), Edit: medianRun(edited)}, nil
}

// edit is the one-line change of round n: a line of module information,
// so that the module's C and its .ko both change, as with a real fix. The
// time in it makes every edit new: the caches, addressed by content, have
// never seen it (an edit of an earlier measurement's would be a cache hit).
func edit(source string, n int) error {
	f, err := os.OpenFile(source, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("editing the module: %w", err)
	}
	_, err = fmt.Fprintf(f, "MODULE_INFO(pidlab_edit, \"round %d at %d\");\n", n, time.Now().UnixNano())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mageTest runs go tool mage test in repo for s.Module and reads its
// report. A run that does not pass is an error: its times would be a
// failure's, and the loop is about a module that works.
func mageTest(ctx context.Context, s Setup, repo, work string) (Run, error) {
	reportPath := filepath.Join(work, "report.json")
	logPath := filepath.Join(work, "mage-test.log")
	// A run that did not write its report must not be read as the last one's.
	if err := os.Remove(reportPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Run{}, err
	}
	out, err := os.Create(logPath)
	if err != nil {
		return Run{}, err
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, "go", "tool", "mage", "test")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "PIDLAB_MODULES="+s.Module, "PIDLAB_REPORT="+reportPath, "PIDLAB_KERNELS=")
	cmd.Stdout, cmd.Stderr = out, out
	s.Log.Debug("exec: %s (in %s)", progress.Cmdline(cmd), repo)
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	if err != nil {
		tail, _ := os.ReadFile(logPath)
		return Run{}, fmt.Errorf("go tool mage test of module %s did not pass (%v); the loop is timed on a module that passes. Its output:\n%s",
			s.Module, err, progress.LastLines(string(tail), 30))
	}
	rep, err := report.ReadJSON(reportPath)
	if err != nil {
		return Run{}, err
	}
	if len(rep.Runs) != 1 {
		return Run{}, fmt.Errorf("%s: want one run (module %s), got %d", reportPath, s.Module, len(rep.Runs))
	}
	r := rep.Runs[0]
	vm := seconds(r.VMSeconds)
	run := Run{Wall: wall, VM: vm, Boot: seconds(r.BootSeconds), OutsideVM: wall - vm, Prepared: r.Prepared}
	for _, sp := range r.Timeline {
		if strings.HasPrefix(sp.What, "suite ") {
			run.GuestTests += seconds(sp.Seconds)
		}
	}
	run.Unaccounted = run.unaccounted()
	return run, nil
}

// bareInitramfs is an archive of one file, /init, which powers off.
func bareInitramfs(ctx context.Context, s Setup, work string) (string, error) {
	src := filepath.Join(work, "poweroff.c")
	if err := os.WriteFile(src, poweroffSource, 0o644); err != nil {
		return "", err
	}
	bin, err := guestbin.CProgram(ctx, src, filepath.Join(s.CacheDir, "guestbin"), s.Log)
	if err != nil {
		return "", err
	}
	content, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	path := filepath.Join(work, "bare.cpio")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	w := cpio.Newc.Writer(f)
	rec := cpio.StaticRecord(content, cpio.Info{Name: "init", Mode: cpio.S_IFREG | 0o755})
	if err := cpio.WriteRecords(w, []cpio.Record{rec}); err != nil {
		return "", err
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return "", err
	}
	return path, f.Close()
}

// bareBootTimeout bounds a bare boot: one is seconds long.
const bareBootTimeout = 2 * time.Minute

// bareBoot boots s.Kernel with initrd as pidlab boots it (the same QEMU,
// machine, memory, CPUs and kernel command line) and times it from
// QEMU's start to its exit.
func bareBoot(ctx context.Context, s Setup, initrd string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, bareBootTimeout)
	defer cancel()
	start := time.Now()
	vm, err := qemu.Start(ctx, qemu.Config{Binary: "qemu-system-x86_64", Kernel: s.Kernel.Image, Initrd: initrd,
		Accel: s.Accel, MemoryMB: 1024, CPUs: 2})
	if err != nil {
		return 0, fmt.Errorf("starting QEMU for the bare boot: %w", err)
	}
	defer vm.Close()
	console, _ := io.ReadAll(vm.Console)
	err = vm.Wait()
	took := time.Since(start)
	if err != nil || !strings.Contains(string(console), "reboot: Power down") {
		return 0, fmt.Errorf("the bare boot did not power off (%v, after %s s); its console ends:\n%s", cmp.Or(err, ctx.Err()), secs(took), progress.LastLines(string(console), 20))
	}
	return took, nil
}

// copyTree copies the regular files and folders of src to dst, but for
// version control's: a go tool mage test needs the sources only.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir() && d.Name() == ".git":
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianRun is each time's median over runs, on its own.
func medianRun(runs []Run) Run {
	pick := func(f func(Run) time.Duration) time.Duration {
		var ds []time.Duration
		for _, r := range runs {
			ds = append(ds, f(r))
		}
		return median(ds)
	}
	m := Run{
		Wall:        pick(func(r Run) time.Duration { return r.Wall }),
		VM:          pick(func(r Run) time.Duration { return r.VM }),
		Boot:        pick(func(r Run) time.Duration { return r.Boot }),
		OutsideVM:   pick(func(r Run) time.Duration { return r.OutsideVM }),
		Unaccounted: pick(func(r Run) time.Duration { return r.Unaccounted }),
		GuestTests:  pick(func(r Run) time.Duration { return r.GuestTests }),
	}
	for _, sp := range runs[0].Prepared {
		m.Prepared = append(m.Prepared, report.Span{What: sp.What, Seconds: pick(func(r Run) time.Duration { return r.Step(sp.What) }).Seconds()})
	}
	return m
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// secs is d in seconds, to a hundredth.
func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

// Print says what the loop costs, a line a figure, then the ratio.
func Print(log *progress.Log, f Figures) {
	of := fmt.Sprintf("medians of %d rounds", f.Rounds)
	if f.Rounds == 1 {
		of = "one round"
	}
	log.Line("edit → verdict, module's loop, %s:", of)
	log.Line("  bare boot (an init that powers off)     %6s s", secs(f.BareBoot))
	log.Line("  pidlab's boot to the first guest test   %6s s", secs(f.Edit.Boot))
	log.Line("  guest tests' own time                   %6s s", secs(f.Edit.GuestTests))
	log.Line("  warm run, nothing changed               %6s s, outside the VM %s s (%s)", secs(f.NoChange.Wall), secs(f.NoChange.OutsideVM), outsideParts(f.NoChange))
	log.Line("  after a one-line edit of the C          %6s s, outside the VM %s s (%s)", secs(f.Edit.Wall), secs(f.Edit.OutsideVM), outsideParts(f.Edit))
	log.Line("  edit → verdict / (bare boot + tests)    %6.2f × (goal: at most 1.3)", f.Ratio())
}

// outsideParts is where a run's time outside the VM went.
func outsideParts(r Run) string {
	var parts []string
	for _, s := range r.Prepared {
		parts = append(parts, fmt.Sprintf("%s %.2f", s.What, s.Seconds))
	}
	return strings.Join(append(parts, fmt.Sprintf("go, mage, verdict and reports %s", secs(r.Unaccounted))), ", ")
}

// ReportFigures are the figures as the JSON report holds benchmarks'.
func ReportFigures(f Figures) []report.Figure {
	about := fmt.Sprintf("median of %d rounds, each a bare boot, a run with nothing changed and one after an edit", f.Rounds)
	fig := func(name string, d time.Duration) report.Figure {
		return report.Figure{Benchmark: "EditLoop", Name: name, Value: d.Seconds(), Unit: "s", About: about}
	}
	figs := []report.Figure{
		fig("bare boot", f.BareBoot),
		fig("boot to the first guest test", f.Edit.Boot),
		fig("guest tests", f.Edit.GuestTests),
		fig("nothing changed", f.NoChange.Wall),
		fig("nothing changed, outside the VM", f.NoChange.OutsideVM),
		fig("edit → verdict", f.Edit.Wall),
		fig("edit → verdict, outside the VM", f.Edit.OutsideVM),
	}
	for _, s := range f.Edit.Prepared {
		figs = append(figs, fig("edit → verdict, "+s.What, seconds(s.Seconds)))
	}
	return append(figs, report.Figure{Benchmark: "EditLoop", Name: "edit → verdict / (bare boot + guest tests)", Value: f.Ratio(), Unit: "×", About: "goal: at most 1.3"})
}
