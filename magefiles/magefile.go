//go:build mage

// pidlab's targets: one line each over vmtest/targets, where they are
// tested. A failed target's error carries pidlab's exit code.
package main

import (
	"context"
	"os"

	"github.com/magefile/mage/mg"

	//mage:import grade
	_ "github.com/pidlab/pidlab/magefiles/grade"
	"github.com/pidlab/pidlab/vmtest/targets"
)

// Default is what `go tool mage` runs.
var Default = Test

// A SIGINT or SIGTERM that comes before a target runs is kept for it.
func init() { targets.CatchStopSignals() }

func options() targets.Options {
	dir, _ := os.Getwd() // mage runs in the repository's root
	return targets.Options{RepoDir: dir, Out: os.Stdout, Verbose: mg.Verbose()}
}

// Test builds the /proc/pid module, boots it in QEMU and runs the profile checks and conformance tests in the guest.
func Test(ctx context.Context) error { return targets.Test(ctx, options()) }

// Bench runs the guest benchmarks of pidlab's modules (PIDLAB_BENCH picks) in one boot and prints what they measured.
func Bench(ctx context.Context) error { return targets.Bench(ctx, options()) }

// EditLoop times the edit → verdict loop of a module (PIDLAB_MODULES, default procpid) against a bare boot plus its guest tests, side by side, and prints the figures.
func EditLoop(ctx context.Context) error { return targets.EditLoop(ctx, options()) }

// Validate builds the module in DIR (in a copy), boots it and prints a verdict table of the profile's checks (PIDLAB_PROFILE, default reference).
func Validate(ctx context.Context, dir string) error { return targets.Validate(ctx, options(), dir) }

// Grade validates every submission in DIR (a folder, .zip or .tar.gz each) with the profile, VMs in parallel, and writes the class's grades to PIDLAB_GRADE_OUT (default pidlab-grade).
func Grade(ctx context.Context, dir string) error { return targets.Grade(ctx, options(), dir) }

// Clean removes pidlab's cache but for its kernels: builds, initramfs archives and run logs.
func Clean() error { return targets.Clean(options(), false) }

// CleanAll removes pidlab's whole cache, the kernels (and the debug kernel's build) too.
func CleanAll() error { return targets.Clean(options(), true) }

// Kernel groups the kernel targets.
type Kernel mg.Namespace

// Fetch downloads and unpacks the selected kernel (PIDLAB_KERNEL, default Debian's cloud-amd64) into the cache.
func (Kernel) Fetch(ctx context.Context) error { return targets.FetchKernel(ctx, options()) }

// Debug builds the debug kernel (KASAN, lockdep, kmemleak …) from Debian's linux-source-6.1 into the cache.
func (Kernel) Debug(ctx context.Context) error { return targets.BuildDebugKernel(ctx, options()) }

// Module groups the module targets.
type Module mg.Namespace

// Build compiles module/ against the selected kernel and prints the .ko path.
func (Module) Build(ctx context.Context) error { return targets.BuildModule(ctx, options()) }

// Vm groups the VM targets.
type Vm mg.Namespace

// Initramfs builds the guest initramfs (u-root init, runner, tests, module) and prints its path.
func (Vm) Initramfs(ctx context.Context) error { return targets.BuildInitramfs(ctx, options()) }

// Shell boots the module in DIR (module for pidlab's own) with a shell in the guest on this terminal; exit in it powers the VM off.
func (Vm) Shell(ctx context.Context, dir string) error { return targets.Shell(ctx, options(), dir) }
