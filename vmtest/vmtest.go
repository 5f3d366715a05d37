// Package vmtest is pidlab's host side: it provisions a kernel, builds the
// module against it, builds a u-root initramfs holding the guest tests,
// boots QEMU, follows the guest's events and console, and reaches a verdict.
//
//	kernel.Provision -> kbuild.Build -> guestbin -> initramfs.Build -> boot (qemu) -> verdict.Decide
package vmtest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pidlab/pidlab/userspace/guest"
	"github.com/pidlab/pidlab/vmtest/guestbin"
	"github.com/pidlab/pidlab/vmtest/hostdeps"
	"github.com/pidlab/pidlab/vmtest/initramfs"
	"github.com/pidlab/pidlab/vmtest/internal/cachedir"
	"github.com/pidlab/pidlab/vmtest/kbuild"
	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/qemu"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// Environment overrides, documented in the README.
const (
	EnvTimeout     = "PIDLAB_TIMEOUT"      // whole VM run, a Go duration
	EnvTestTimeout = "PIDLAB_TEST_TIMEOUT" // one guest test, a Go duration
	EnvRun         = "PIDLAB_RUN"          // -test.run pattern for the guest tests
)

// Defaults sized for TCG on a 2-core machine; KVM needs far less.
const (
	DefaultTimeout     = 15 * time.Minute
	DefaultTestTimeout = 2 * time.Minute
	DefaultBootTimeout = 90 * time.Second // TCG boots to the runner in about 3 s
)

// Config is one run.
type Config struct {
	RepoDir     string // pidlab's source tree (Go module root)
	ModuleDir   string // the module to test
	CacheDir    string // kernels, builds, initramfs archives, run logs
	Kernel      kernel.Selection
	Accel       string // "", "kvm" or "tcg"
	Timeout     time.Duration
	TestTimeout time.Duration
	BootTimeout time.Duration // until the guest runner starts; one retry after a boot hang
	TestRun     string        // -test.run pattern, empty for all
	Log         *progress.Log
}

// ConfigFromEnv fills a Config from the environment; the caller sets the
// directories and Log.
func ConfigFromEnv() (Config, error) {
	sel, err := kernel.SelectionFromEnv()
	if err != nil {
		return Config{}, err
	}
	c := Config{Kernel: sel, Accel: os.Getenv(qemu.EnvAccel), TestRun: os.Getenv(EnvRun), BootTimeout: DefaultBootTimeout}
	if c.Timeout, err = durationEnv(EnvTimeout, DefaultTimeout); err != nil {
		return c, err
	}
	if c.TestTimeout, err = durationEnv(EnvTestTimeout, DefaultTestTimeout); err != nil {
		return c, err
	}
	return c, nil
}

func durationEnv(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return time.Duration(secs) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, verdict.SetupError(name+"=10m", "%s=%q is not a duration (like 90s or 10m)", name, v)
	}
	return d, nil
}

// DefaultCacheDir is $XDG_CACHE_HOME/pidlab, else ~/.cache/pidlab.
func DefaultCacheDir() (string, error) { return cachedir.Default() }

// Guest paths of the files a run puts in the initramfs.
const (
	guestModuleDir = "/pidlab/module"
	guestTests     = "/pidlab/conformance.test"
	guestTarget    = "/pidlab/bin/pidlab-target"
)

// Prepared is everything a boot needs, built and cached.
type Prepared struct {
	Kernel    *kernel.Kernel
	Module    *kbuild.Module
	Initramfs string
}

// Prepare checks the host, provisions the kernel, builds the module, the
// guest programs and the initramfs.
func Prepare(ctx context.Context, c Config) (*Prepared, error) {
	needs := hostdeps.Boot
	switch {
	case c.Kernel.IsDebug():
		needs = append(needs, hostdeps.DebugKernel...)
	case c.Kernel.Image == "":
		needs = append(needs, hostdeps.DebianKernel...)
	}
	if err := hostdeps.Ensure(ctx, c.Log, needs...); err != nil {
		return nil, err
	}
	k, err := kernel.Provision(ctx, c.Kernel, c.CacheDir, c.Log)
	if err != nil {
		return nil, err
	}
	c.Log.Debug("kernel: %s", k.Image)
	mod, err := kbuild.Build(ctx, k, c.ModuleDir, c.CacheDir, c.Log)
	if err != nil {
		return nil, err
	}
	if mod.Warnings != "" {
		c.Log.Info("the module built with warnings:\n%s", mod.Warnings)
	}
	initrd, err := buildInitramfs(ctx, c, mod)
	if err != nil {
		return nil, err
	}
	return &Prepared{Kernel: k, Module: mod, Initramfs: initrd}, nil
}

func buildInitramfs(ctx context.Context, c Config, mod *kbuild.Module) (string, error) {
	binDir := filepath.Join(c.CacheDir, "guestbin")
	tests, err := guestbin.TestBinary(ctx, c.RepoDir, "./userspace/conformance", binDir, c.Log)
	if err != nil {
		return "", err
	}
	target, err := guestbin.CProgram(ctx, filepath.Join(c.RepoDir, "userspace/target/pidlab-target.c"), binDir, c.Log)
	if err != nil {
		return "", err
	}
	guestKO := filepath.Join(guestModuleDir, filepath.Base(mod.Path))
	spec := initramfs.Spec{
		RepoDir: c.RepoDir,
		Files: []initramfs.File{
			{Host: mod.Path, Guest: guestKO},
			{Host: tests, Guest: guestTests},
			{Host: target, Guest: guestTarget},
		},
		Manifest: guest.Manifest{
			Module:     guestKO,
			ModuleName: mod.Name,
			Tests:      []guest.TestBinary{{Path: guestTests, Args: testArgs(c)}},
			Env: []string{"PIDLAB_GUEST=1", "PIDLAB_TARGET=" + guestTarget,
				"PIDLAB_MODULE=" + guestKO, "PIDLAB_MODULE_NAME=" + mod.Name},
		},
	}
	path, _, err := initramfs.Build(ctx, spec, c.CacheDir, c.Log)
	return path, err
}

// testArgs asks for test2json framing; the guest's own timeout is a
// backstop behind the host's, so that a stuck test still prints its stack.
func testArgs(c Config) []string {
	args := []string{"-test.v=test2json", "-test.count=1", "-test.timeout=" + c.Timeout.String()}
	if c.TestRun != "" {
		args = append(args, "-test.run="+c.TestRun)
	}
	return args
}

// Run prepares and boots: the whole of `mage test`. The returned error is
// a *verdict.Error (or a plain error for a harness fault); the Result, when
// not nil, holds what the run saw.
func Run(ctx context.Context, c Config) (*Result, error) {
	p, err := Prepare(ctx, c)
	if err != nil {
		return nil, err
	}
	res, err := Boot(ctx, c, p)
	if err != nil {
		return res, err
	}
	if res.Err != nil {
		return res, res.Err
	}
	return res, nil
}
