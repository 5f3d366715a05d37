//go:build mage

// pidlab's targets: thin wrappers over the vmtest packages.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/magefile/mage/mg"

	"github.com/pidlab/pidlab/vmtest"
	"github.com/pidlab/pidlab/vmtest/hostdeps"
	"github.com/pidlab/pidlab/vmtest/kbuild"
	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// Default is what `go tool mage` runs.
var Default = Test

// Test builds the /proc/pid module, boots it in QEMU and runs the conformance tests in the guest.
func Test(ctx context.Context) error {
	c, err := config()
	if err != nil {
		return fail(err)
	}
	res, err := vmtest.Run(ctx, c)
	vmtest.PrintSummary(c.Log, res, err)
	return exitCode(err)
}

// Clean removes pidlab's cache: kernels, builds, initramfs archives and run logs.
func Clean() error {
	dir, err := vmtest.DefaultCacheDir()
	if err != nil {
		return err
	}
	fmt.Println("removing", dir)
	return os.RemoveAll(dir)
}

// Kernel groups the kernel targets.
type Kernel mg.Namespace

// Fetch downloads and unpacks the selected kernel (PIDLAB_KERNEL, default Debian's cloud-amd64) into the cache.
func (Kernel) Fetch(ctx context.Context) error {
	_, k, err := provision(ctx)
	if err != nil {
		return fail(err)
	}
	fmt.Printf("kernel %s\n  image %s\n  kdir  %s\n", k.Release, k.Image, k.KDIR)
	return nil
}

// Debug builds the debug kernel (KASAN, lockdep, kmemleak …) from Debian's linux-source-6.1 into the cache.
func (Kernel) Debug(ctx context.Context) error {
	c, err := config()
	if err != nil {
		return fail(err)
	}
	if err := hostdeps.Ensure(ctx, c.Log, hostdeps.DebugKernel...); err != nil {
		return fail(err)
	}
	k, err := kernel.Provision(ctx, kernel.Selection{Flavour: kernel.DebugName}, c.CacheDir, c.Log)
	if err != nil {
		return fail(err)
	}
	fmt.Printf("kernel %s\n  image %s\n  kdir  %s\n", k.Release, k.Image, k.KDIR)
	return nil
}

// Module groups the module targets.
type Module mg.Namespace

// Build compiles module/ against the selected kernel and prints the .ko path.
func (Module) Build(ctx context.Context) error {
	c, k, err := provision(ctx)
	if err != nil {
		return fail(err)
	}
	m, err := kbuild.Build(ctx, k, c.ModuleDir, c.CacheDir, c.Log)
	if err != nil {
		return fail(err)
	}
	fmt.Println(m.Path)
	return nil
}

// Vm groups the VM targets.
type Vm mg.Namespace

// Initramfs builds the guest initramfs (u-root init, runner, tests, module) and prints its path.
func (Vm) Initramfs(ctx context.Context) error {
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
	c, err := vmtest.ConfigFromEnv()
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
	c.Log = &progress.Log{W: os.Stdout, Verbose: mg.Verbose()}
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

// exitCode exits with pidlab's code for an error already reported.
func exitCode(err error) error {
	if err == nil {
		return nil
	}
	code := verdict.CodeOf(err)
	return mg.Fatalf(int(code), "%s (exit %d)", code, int(code))
}
