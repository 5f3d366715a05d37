//go:build mage

// pidlab's targets: thin wrappers over the vmtest packages.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/magefile/mage/mg"

	"github.com/pidlab/pidlab/vmtest"
	"github.com/pidlab/pidlab/vmtest/hostdeps"
	"github.com/pidlab/pidlab/vmtest/kbuild"
	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/report"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// Default is what `go tool mage` runs.
var Default = Test

// stopSignals end a run early, through its context: the targets then kill
// QEMU and make, remove their temporary folders and exit 130. Mage's
// generated main cancels the context on SIGINT alone (and exits 1 if the
// target has not returned 5 s later, or at a second SIGINT); SIGTERM would
// kill this process on the spot, leaving make's jobs and QEMU's folder.
// Registered at start, so that a signal before a target runs is kept.
var stopSignals = make(chan os.Signal, 1)

func init() { signal.Notify(stopSignals, os.Interrupt, syscall.SIGTERM) }

// interruptible is ctx, cancelled also on SIGTERM (and on SIGINT, like
// mage's own).
func interruptible(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-stopSignals:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx
}

// Test builds the /proc/pid module, boots it in QEMU and runs the profile checks and conformance tests in the guest.
func Test(ctx context.Context) error {
	ctx = interruptible(ctx)
	c, err := config()
	if err != nil {
		return fail(err)
	}
	return run(ctx, c, false)
}

// Validate builds the module in DIR (in a copy), boots it and prints a verdict table of the profile's checks (PIDLAB_PROFILE, default reference).
func Validate(ctx context.Context, dir string) error {
	ctx = interruptible(ctx)
	c, err := config()
	if err != nil {
		return fail(err)
	}
	if c.ModuleDir, err = vmtest.ModuleDir(dir); err != nil {
		return fail(err)
	}
	c.QuietTests = !mg.Verbose() // the table says it all
	return run(ctx, c, true)
}

// run runs c on the kernels PIDLAB_KERNELS names (else PIDLAB_KERNEL's one),
// prints the verdict (a table for a validation or a matrix), writes the
// reports and exits with the most severe code.
func run(ctx context.Context, c vmtest.Config, table bool) error {
	kernels, err := vmtest.KernelsFromEnv(c)
	if err != nil {
		return fail(err)
	}
	if table || len(kernels) > 1 {
		c.Log.Step("validating %s with profile %s on %s", c.ModuleDir, c.Profile.Name, strings.Join(kernels, ", "))
	}
	runs := vmtest.RunKernels(ctx, c, kernels)
	rep := vmtest.Report(c, runs)
	if table || len(runs) > 1 {
		fmt.Println()
		report.PrintTable(os.Stdout, rep)
		for _, r := range runs {
			vmtest.PrintWhereToLook(c.Log.Named(r.Name), r.Result, r.Err)
		}
	} else {
		vmtest.PrintSummary(c.Log, runs[0].Result, runs[0].Err)
	}
	if err := vmtest.WriteReports(c, rep); err != nil {
		c.Log.Line("%v", err) // the verdict above stands; its code too
	}
	vmtest.PruneCache(c)
	return exitWith(verdict.Code(rep.ExitCode))
}

// Clean removes pidlab's cache but for its kernels: builds, initramfs archives and run logs.
func Clean() error { return clean(false) }

// CleanAll removes pidlab's whole cache, the kernels (and the debug kernel's build) too.
func CleanAll() error { return clean(true) }

func clean(kernels bool) error {
	dir, err := vmtest.DefaultCacheDir()
	if err != nil {
		return err
	}
	what := "builds, archives and run logs; kernels kept"
	if kernels {
		what = "everything"
	}
	fmt.Printf("removing %s (%s)\n", dir, what)
	return vmtest.CleanCache(dir, kernels)
}

// Kernel groups the kernel targets.
type Kernel mg.Namespace

// Fetch downloads and unpacks the selected kernel (PIDLAB_KERNEL, default Debian's cloud-amd64) into the cache.
func (Kernel) Fetch(ctx context.Context) error {
	ctx = interruptible(ctx)
	_, k, err := provision(ctx)
	if err != nil {
		return fail(verdict.Interrupting(ctx, err, "fetching the kernel"))
	}
	fmt.Printf("kernel %s\n  image %s\n  kdir  %s\n", k.Release, k.Image, k.KDIR)
	return nil
}

// Debug builds the debug kernel (KASAN, lockdep, kmemleak …) from Debian's linux-source-6.1 into the cache.
func (Kernel) Debug(ctx context.Context) error {
	ctx = interruptible(ctx)
	c, err := config()
	if err != nil {
		return fail(err)
	}
	if err := hostdeps.Ensure(ctx, c.Log, hostdeps.DebugKernel...); err != nil {
		return fail(verdict.Interrupting(ctx, err, "installing host packages"))
	}
	k, err := kernel.Provision(ctx, kernel.Selection{Flavour: kernel.DebugName}, c.CacheDir, c.Log)
	if err != nil {
		return fail(verdict.Interrupting(ctx, err, "building the debug kernel"))
	}
	fmt.Printf("kernel %s\n  image %s\n  kdir  %s\n", k.Release, k.Image, k.KDIR)
	return nil
}

// Module groups the module targets.
type Module mg.Namespace

// Build compiles module/ against the selected kernel and prints the .ko path.
func (Module) Build(ctx context.Context) error {
	ctx = interruptible(ctx)
	c, k, err := provision(ctx)
	if err != nil {
		return fail(verdict.Interrupting(ctx, err, "fetching the kernel"))
	}
	m, err := kbuild.Build(ctx, k, c.ModuleDir, c.CacheDir, c.Log)
	if err != nil {
		return fail(verdict.Interrupting(ctx, err, "building the module"))
	}
	fmt.Println(m.Path)
	return nil
}

// Vm groups the VM targets.
type Vm mg.Namespace

// Initramfs builds the guest initramfs (u-root init, runner, tests, module) and prints its path.
func (Vm) Initramfs(ctx context.Context) error {
	ctx = interruptible(ctx)
	c, err := config()
	if err != nil {
		return fail(err)
	}
	p, err := vmtest.Prepare(ctx, c)
	if err != nil {
		return fail(err)
	}
	fmt.Println(p.Initramfs)
	return nil
}

// Shell boots the module in DIR (module for pidlab's own) with a shell in the guest on this terminal; exit in it powers the VM off.
func (Vm) Shell(ctx context.Context, dir string) error {
	ctx = interruptible(ctx)
	c, err := config()
	if err != nil {
		return fail(err)
	}
	if c.ModuleDir, err = vmtest.ModuleDir(dir); err != nil {
		return fail(err)
	}
	return fail(verdict.Interrupting(ctx, vmtest.Shell(ctx, c), "running the shell VM"))
}

// provision returns the configuration and the kernel it selects.
func provision(ctx context.Context) (vmtest.Config, *kernel.Kernel, error) {
	c, err := config()
	if err != nil {
		return c, nil, err
	}
	k, err := kernel.Provision(ctx, c.Kernel, c.CacheDir, c.Log)
	return c, k, err
}

func config() (vmtest.Config, error) {
	c, err := vmtest.ConfigFromEnv(&progress.Log{W: os.Stdout, Verbose: mg.Verbose()})
	if err != nil {
		return c, err
	}
	if c.RepoDir, err = os.Getwd(); err != nil {
		return c, err
	}
	c.ModuleDir = filepath.Join(c.RepoDir, "module")
	if c.CacheDir, err = vmtest.DefaultCacheDir(); err != nil {
		return c, err
	}
	return c, nil
}

// fail reports err and exits with pidlab's code for it.
func fail(err error) error {
	if err == nil {
		return nil
	}
	code := verdict.CodeOf(err)
	return mg.Fatalf(int(code), "%v\n(%s, exit %d)", err, code, int(code))
}

// exitWith exits with pidlab's code for an outcome already reported.
func exitWith(code verdict.Code) error {
	if code == verdict.Pass {
		return nil
	}
	return mg.Fatalf(int(code), "%s (exit %d)", code, int(code))
}
