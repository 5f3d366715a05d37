// Package targets is what each of pidlab's mage targets does, so that the
// command line is tested here and magefiles/ stays a list of one-line
// targets. A target returns nil or an *ExitError, whose ExitStatus mage
// exits with.
package targets

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pidlab/pidlab/vmtest"
	"github.com/pidlab/pidlab/vmtest/editloop"
	"github.com/pidlab/pidlab/vmtest/grade"
	"github.com/pidlab/pidlab/vmtest/hostdeps"
	"github.com/pidlab/pidlab/vmtest/kbuild"
	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/qemu"
	"github.com/pidlab/pidlab/vmtest/report"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// Options are what every target takes from its command line.
type Options struct {
	RepoDir string    // pidlab's source tree: the Go module root, where go tool mage runs
	Out     io.Writer // progress, verdicts, tables
	Verbose bool      // mage -v: every command and its output, every test as it ends
}

// ExitError is a target's failure with pidlab's exit code for it. Mage
// prints Error() after "Error: " and exits with ExitStatus().
type ExitError struct {
	Err  error
	Code verdict.Code
	// Reported is true when the run already printed its verdict: the
	// message is then only the code.
	Reported bool
}

func (e *ExitError) Error() string {
	if e.Reported {
		return fmt.Sprintf("%s (exit %d)", e.Code, int(e.Code))
	}
	return fmt.Sprintf("%v\n(%s, exit %d)", e.Err, e.Code, int(e.Code))
}

// ExitStatus is the process's exit code, as mage asks for it.
func (e *ExitError) ExitStatus() int { return int(e.Code) }

func (e *ExitError) Unwrap() error { return e.Err }

// fail gives err its exit code: nil stays nil.
func fail(err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Err: err, Code: verdict.CodeOf(err)}
}

// exitWith is the error of an outcome already reported: nil for a pass.
func exitWith(code verdict.Code) error {
	if code == verdict.Pass {
		return nil
	}
	return &ExitError{Err: fmt.Errorf("%s", code), Code: code, Reported: true}
}

// Test builds each of pidlab's modules (module/<name>/ with a pidlab.toml,
// or those PIDLAB_MODULES names), boots it and runs its suites, on
// PIDLAB_KERNELS or PIDLAB_KERNEL: one report, its code the most severe
// module's.
func Test(ctx context.Context, o Options) error { return runModules(ctx, o, "") }

// Bench runs the guest benchmarks (PIDLAB_BENCH, a -test.bench pattern,
// default all) of pidlab's modules, as Test runs their tests, and prints
// the figures they measured; the JSON report holds them too. A benchmark
// fails only if it cannot measure: a slow machine is no failure.
func Bench(ctx context.Context, o Options) error {
	return runModules(ctx, o, cmp.Or(os.Getenv(vmtest.EnvBench), "."))
}

// runModules runs pidlab's modules' suites, or with bench (a -test.bench
// pattern) their benchmarks.
func runModules(ctx context.Context, o Options, bench string) error {
	ctx, c, err := start(ctx, o)
	if err != nil {
		return fail(err)
	}
	c.Bench = bench
	dirs, err := vmtest.Modules(c.RepoDir)
	if err != nil {
		return fail(err)
	}
	kernels, err := vmtest.KernelsFromEnv(c)
	if err != nil {
		return fail(err)
	}
	rep, _ := vmtest.RunModules(ctx, c, dirs, kernels)
	return finish(c, rep)
}

// Validate builds the module in dir (in a copy), boots it and prints a
// verdict table of the profile's checks.
func Validate(ctx context.Context, o Options, dir string) error {
	ctx, c, err := start(ctx, o)
	if err != nil {
		return fail(err)
	}
	if c.ModuleDir, err = vmtest.ModuleDir(dir); err != nil {
		return fail(err)
	}
	kernels, err := vmtest.KernelsFromEnv(c)
	if err != nil {
		return fail(err)
	}
	c.QuietTests = !o.Verbose // the table says it all
	rep, _ := vmtest.RunModule(ctx, c, kernels, true)
	if err := writeGradescope(ctx, c, rep); err != nil {
		c.Log.Line("%v", err) // the verdict above stands; its code too
	}
	return finish(c, rep)
}

// writeGradescope writes the validation's results in Gradescope's format
// to PIDLAB_GRADESCOPE, if set, scored out of every planned check (a
// module that did not build too) with the profile's points.
func writeGradescope(ctx context.Context, c vmtest.Config, rep report.Report) error {
	path := os.Getenv(vmtest.EnvGradescope)
	if path == "" || ctx.Err() != nil {
		return nil
	}
	planned, err := vmtest.PlannedChecks(ctx, c)
	if err != nil {
		return fmt.Errorf("%s: %v", vmtest.EnvGradescope, err)
	}
	points, err := classPoints(c.Profile, planned)
	if err != nil {
		return fmt.Errorf("%s: %v", vmtest.EnvGradescope, err)
	}
	class := grade.Class{Profile: c.Profile.Name, Planned: planned, Points: points}
	if err := grade.WriteGradescope(path, grade.GradescopeOfRuns(class, rep.Runs)); err != nil {
		return fmt.Errorf("%s: %v", vmtest.EnvGradescope, err)
	}
	c.Log.Info("Gradescope results: %s", path)
	return nil
}

// finish writes the reports, prunes the cache and returns the report's
// code as the target's.
func finish(c vmtest.Config, rep report.Report) error {
	if err := vmtest.WriteReports(c, rep); err != nil {
		c.Log.Line("%v", err) // the verdict above stands; its code too
	}
	vmtest.PruneCache(c)
	return exitWith(verdict.Code(rep.ExitCode))
}

// Clean removes pidlab's cache but for its kernels (all: the kernels too).
func Clean(o Options, all bool) error {
	dir, err := vmtest.DefaultCacheDir()
	if err != nil {
		return fail(err)
	}
	what := "builds, archives and run logs; kernels kept"
	if all {
		what = "everything"
	}
	fmt.Fprintf(o.Out, "removing %s (%s)\n", dir, what)
	return fail(vmtest.CleanCache(dir, all))
}

// FetchKernel provisions the selected kernel (PIDLAB_KERNEL) into the
// cache and prints where it is.
func FetchKernel(ctx context.Context, o Options) error {
	ctx = Interruptible(ctx)
	_, k, err := provision(ctx, o)
	if err != nil {
		return fail(verdict.Interrupting(ctx, err, "fetching the kernel"))
	}
	printKernel(o, k)
	return nil
}

// BuildDebugKernel builds the debug kernel into the cache (once), with the
// user's patches (PIDLAB_KERNEL_PATCHES) if any, and prints where it is.
func BuildDebugKernel(ctx context.Context, o Options) error {
	ctx, c, err := start(ctx, o)
	if err != nil {
		return fail(err)
	}
	if err := hostdeps.Ensure(ctx, c.Log, hostdeps.SourceKernel...); err != nil {
		return fail(verdict.Interrupting(ctx, err, "installing host packages"))
	}
	k, err := kernel.Provision(ctx, kernel.Selection{Flavour: kernel.DebugName, Patches: c.Kernel.Patches}, c.CacheDir, c.Log)
	if err != nil {
		return fail(verdict.Interrupting(ctx, err, "building the debug kernel"))
	}
	printKernel(o, k)
	return nil
}

func printKernel(o Options, k *kernel.Kernel) {
	fmt.Fprintf(o.Out, "kernel %s\n  image %s\n  kdir  %s\n", k.Release, k.Image, k.KDIR)
}

// BuildModule compiles module/ against the selected kernel and prints the
// .ko's path.
func BuildModule(ctx context.Context, o Options) error {
	ctx = Interruptible(ctx)
	c, k, err := provision(ctx, o)
	if err != nil {
		return fail(verdict.Interrupting(ctx, err, "fetching the kernel"))
	}
	if err := firstModule(&c); err != nil {
		return fail(err)
	}
	m, err := kbuild.Build(ctx, k, c.ModuleDir, c.CacheDir, c.Log)
	if err != nil {
		return fail(verdict.Interrupting(ctx, err, "building the module"))
	}
	fmt.Fprintln(o.Out, m.Path)
	return nil
}

// BuildInitramfs builds the guest initramfs (u-root init, runner, tests,
// module) and prints its path.
func BuildInitramfs(ctx context.Context, o Options) error {
	ctx, c, err := start(ctx, o)
	if err == nil {
		err = firstModule(&c)
	}
	if err != nil {
		return fail(err)
	}
	p, err := vmtest.Prepare(ctx, c, []string{c.ModuleDir})
	if err == nil {
		err = p.Modules[0].Err
	}
	if err != nil {
		return fail(err)
	}
	fmt.Fprintln(o.Out, p.Initramfs)
	return nil
}

// Shell boots the module in dir with a shell in the guest on this
// terminal.
func Shell(ctx context.Context, o Options, dir string) error {
	ctx, c, err := start(ctx, o)
	if err != nil {
		return fail(err)
	}
	if c.ModuleDir, err = vmtest.ModuleDir(dir); err != nil {
		return fail(err)
	}
	return fail(verdict.Interrupting(ctx, vmtest.Shell(ctx, c), "running the shell VM"))
}

// start is what a target does first: it makes ctx end on SIGTERM too, and
// reads the run's configuration.
func start(ctx context.Context, o Options) (context.Context, vmtest.Config, error) {
	c, err := config(o)
	return Interruptible(ctx), c, err
}

// firstModule sets c's module for the targets that take one module:
// the first of the repository's (PIDLAB_MODULES picks).
func firstModule(c *vmtest.Config) error {
	dirs, err := vmtest.Modules(c.RepoDir)
	if err != nil {
		return err
	}
	c.ModuleDir = dirs[0]
	return nil
}

// provision returns the configuration and the kernel it selects.
func provision(ctx context.Context, o Options) (vmtest.Config, *kernel.Kernel, error) {
	c, err := config(o)
	if err != nil {
		return c, nil, err
	}
	k, err := kernel.Provision(ctx, c.Kernel, c.CacheDir, c.Log)
	return c, k, err
}

// config is the run the environment asks for; the caller sets the module.
func config(o Options) (vmtest.Config, error) {
	out := o.Out
	if out == nil {
		out = os.Stdout
	}
	repo, err := filepath.Abs(o.RepoDir)
	if err != nil {
		return vmtest.Config{}, err
	}
	c, err := vmtest.ConfigFromEnv(&progress.Log{W: out, Verbose: o.Verbose}, repo)
	if err != nil {
		return c, err
	}
	if c.CacheDir, err = vmtest.DefaultCacheDir(); err != nil {
		return c, err
	}
	return c, nil
}

// EditLoop measures the edit → verdict loop of one of pidlab's modules
// (the first PIDLAB_MODULES names, else procpid) on the selected kernel,
// against the floor of a bare boot plus the guest tests, and prints the
// figures; PIDLAB_REPORT gets them as a report's figures.
func EditLoop(ctx context.Context, o Options) error {
	ctx = Interruptible(ctx)
	c, k, err := provision(ctx, o)
	if err != nil {
		return fail(verdict.Interrupting(ctx, err, "fetching the kernel"))
	}
	rounds, _ := vmtest.LoopRounds(os.Getenv(vmtest.EnvLoopRounds)) // checked with the other settings
	module := "procpid"
	if os.Getenv(vmtest.EnvModules) != "" {
		dirs, err := vmtest.Modules(c.RepoDir)
		if err != nil {
			return fail(err)
		}
		module = filepath.Base(dirs[0])
	}
	accel, _, err := qemu.ChooseAccel(c.Accel)
	if err != nil {
		return fail(verdict.SetupError(qemu.EnvAccel+"=tcg", "%v", err))
	}
	figs, err := editloop.Measure(ctx, editloop.Setup{RepoDir: c.RepoDir, Module: module, Rounds: rounds,
		Kernel: k, Accel: accel, CacheDir: c.CacheDir, Log: c.Log})
	if err != nil {
		return fail(verdict.Interrupting(ctx, err, "timing the edit loop"))
	}
	editloop.Print(c.Log, figs)
	path := os.Getenv(vmtest.EnvReport)
	if path == "" {
		return nil
	}
	run := report.Run{Module: module, ModuleDir: filepath.Join(c.RepoDir, vmtest.ModulesDir, module), Kernel: k.Name, Release: k.Release,
		Outcome: verdict.Pass.String(), Figures: editloop.ReportFigures(figs)}
	return fail(report.WriteJSON(path, report.Report{Schema: report.Schema, Profile: "reference", Runs: []report.Run{run}}))
}
