// Package vmtest is pidlab's host side: it provisions a kernel, builds the
// module against it, builds a u-root initramfs holding the guest tests,
// boots QEMU, follows the guest's events and console, and reaches a verdict.
//
//	kernel.Provision -> kbuild.Build -> guestbin -> initramfs.Build -> boot (qemu) -> verdict.Decide
package vmtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/profile"
	"github.com/pidlab/pidlab/vmtest/guestbin"
	"github.com/pidlab/pidlab/vmtest/hostdeps"
	"github.com/pidlab/pidlab/vmtest/initramfs"
	"github.com/pidlab/pidlab/vmtest/internal/cachedir"
	"github.com/pidlab/pidlab/vmtest/kbuild"
	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/manifest"
	"github.com/pidlab/pidlab/vmtest/profiles"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/qemu"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// Environment overrides, documented in the README.
const (
	EnvTimeout     = "PIDLAB_TIMEOUT"      // whole VM run, a Go duration
	EnvTestTimeout = "PIDLAB_TEST_TIMEOUT" // one guest test, a Go duration
	EnvRun         = "PIDLAB_RUN"          // -test.run pattern for the guest tests
	EnvProfile     = "PIDLAB_PROFILE"      // a built-in profile's name or a profile file
	EnvModules     = "PIDLAB_MODULES"      // the folders of module/ that go tool mage test runs
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
	TestRun     string        // -test.run pattern for the guest suites, empty for all
	Profile     *profile.Profile
	QuietTests  bool // print tests as they end only with Log.Verbose; a count every few seconds instead
	Log         *progress.Log
}

// ConfigFromEnv checks every PIDLAB_* variable (a bad value is a setup
// error before any work; an unknown one a warning on log) and fills a
// Config from them, for pidlab's repository at repo; the caller sets the
// other directories.
func ConfigFromEnv(log *progress.Log, repo string) (Config, error) {
	warnings, err := CheckEnv(repo)
	for _, w := range warnings {
		log.Line("warning: %s", w)
	}
	if err != nil {
		return Config{Log: log}, err
	}
	sel, err := kernel.SelectionFromEnv()
	if err != nil {
		return Config{Log: log}, err
	}
	c := Config{RepoDir: repo, Kernel: sel, Accel: os.Getenv(qemu.EnvAccel), TestRun: os.Getenv(EnvRun), BootTimeout: DefaultBootTimeout, Log: log}
	if c.Profile, err = profileFromEnv(repo); err != nil {
		return c, err
	}
	if c.Timeout, err = durationEnv(EnvTimeout, DefaultTimeout); err != nil {
		return c, err
	}
	if c.TestTimeout, err = durationEnv(EnvTestTimeout, DefaultTestTimeout); err != nil {
		return c, err
	}
	return c, nil
}

// DefaultProfile is the contract of pidlab's own module.
const DefaultProfile = "reference"

func profileFromEnv(repo string) (*profile.Profile, error) {
	name := os.Getenv(EnvProfile)
	if name == "" {
		name = DefaultProfile
	}
	p, err := profiles.Load(repo, name)
	if err != nil {
		return nil, verdict.SetupError(EnvProfile+"=reference", "%s: %v", EnvProfile, err)
	}
	return p, nil
}

func durationEnv(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := parseDuration(v)
	if err != nil {
		return 0, verdict.SetupError(name+"=10m", "%s=%q: %v (like 90s or 10m)", name, v, err)
	}
	return d, nil
}

// ModuleDir checks that dir holds a module to build (a Kbuild file or a
// Makefile) and returns its absolute path.
func ModuleDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	const fix = "go tool mage validate path/to/module (a folder with the module's .c files and a Kbuild file or Makefile)"
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", verdict.SetupError(fix, "%s does not exist", abs)
	case err != nil:
		return "", verdict.SetupError(fix, "module folder: %v", err)
	case !fi.IsDir():
		return "", verdict.SetupError(fix, "%s is a file, not a folder: give the folder that holds the module", abs)
	}
	for _, f := range []string{"Kbuild", "Makefile"} {
		if _, err := os.Stat(filepath.Join(abs, f)); err == nil {
			return abs, nil
		}
	}
	return "", verdict.SetupError(fix, "%s holds no Kbuild file or Makefile, so there is no module to build", abs)
}

// DefaultCacheDir is $XDG_CACHE_HOME/pidlab, else ~/.cache/pidlab.
func DefaultCacheDir() (string, error) { return cachedir.Default() }

// CleanCache removes the cache at dir, but for its kernels unless kernels.
func CleanCache(dir string, kernels bool) error { return cachedir.Clean(dir, kernels) }

// PruneCache trims the cache to its budget (cachedir.DefaultBudget) after
// a run, so that it does not grow without bound.
func PruneCache(c Config) {
	p := cachedir.Prune(c.CacheDir, cachedir.DefaultBudget, time.Now())
	if p.Entries > 0 {
		c.Log.Debug("cache: pruned %d entries (%.1f MB) beyond its budget", p.Entries, float64(p.Bytes)/1e6)
	}
}

// guestModuleDir is where the module's .ko goes in the guest; a suite's
// test binary goes in /pidlab/<name>.test.
const guestModuleDir = "/pidlab/module"

// Prepared is everything a boot needs, built and cached.
type Prepared struct {
	Kernel    *kernel.Kernel
	Module    *kbuild.Module
	Manifest  *manifest.Manifest // what the guest runs, and the module's hints
	Initramfs string
	Planned   []string // the guest's top-level tests, in the order they will run
}

// Prepare checks the host, provisions the kernel, builds the module, the
// guest programs and the initramfs.
func Prepare(ctx context.Context, c Config) (*Prepared, error) {
	man, err := c.manifest()
	if err != nil {
		return nil, verdict.SetupError("fix the module's "+manifest.File, "%v", err)
	}
	k, mod, err := provisionModule(ctx, c)
	if err != nil {
		return nil, err
	}
	initrd, planned, err := buildInitramfs(ctx, c, man, mod)
	if err != nil {
		return nil, verdict.Interrupting(ctx, err, "building the guest programs and the initramfs")
	}
	return &Prepared{Kernel: k, Module: mod, Manifest: man, Initramfs: initrd, Planned: planned}, nil
}

// provisionModule is what every VM needs before its initramfs: the host's
// tools, the kernel, the module built against it.
func provisionModule(ctx context.Context, c Config) (*kernel.Kernel, *kbuild.Module, error) {
	needs := hostdeps.Boot
	switch {
	case c.Kernel.IsBuilt():
		needs = append(needs, hostdeps.SourceKernel...)
	case c.Kernel.Image == "":
		needs = append(needs, hostdeps.DebianKernel...)
	}
	if err := hostdeps.Ensure(ctx, c.Log, needs...); err != nil {
		return nil, nil, verdict.Interrupting(ctx, err, "installing host packages")
	}
	k, err := kernel.Provision(ctx, c.Kernel, c.CacheDir, c.Log)
	if err != nil {
		doing := "fetching the kernel"
		if c.Kernel.IsBuilt() {
			doing = "building the " + c.Kernel.Flavour + " kernel"
		}
		return nil, nil, verdict.Interrupting(ctx, err, doing)
	}
	c.Log.Debug("kernel: %s", k.Image)
	mod, err := kbuild.Build(ctx, k, c.ModuleDir, c.CacheDir, c.Log)
	if err != nil {
		return nil, nil, verdict.Interrupting(ctx, err, "building the module")
	}
	if mod.Warnings != "" {
		c.Log.Info("the module built with warnings:\n%s", mod.Warnings)
	}
	if w := nameClash(k, mod); w != "" {
		c.Log.Line("warning: %s", w)
	}
	return k, mod, nil
}

// nameClash warns of a module named like one of the kernel's own: the
// kernel refuses to load a second module of a name (EEXIST), and the
// built-in one is there from boot.
func nameClash(k *kernel.Kernel, mod *kbuild.Module) string {
	path, builtin, ok := k.ModuleNamed(mod.Name)
	if !ok {
		return ""
	}
	how := "a module"
	if builtin {
		how = "built in"
	}
	return fmt.Sprintf("the module is named %s, like the kernel's own %s (%s): loading it may fail (File exists) or clash with it; rename it (obj-m := mymod.o in the Kbuild file or Makefile)",
		mod.Name, path, how)
}

// buildInitramfs returns the archive and the top-level tests it will run:
// the suites and helpers of the module's manifest, for the run's profile.
func buildInitramfs(ctx context.Context, c Config, man *manifest.Manifest, mod *kbuild.Module) (string, []string, error) {
	binDir := filepath.Join(c.CacheDir, "guestbin")
	prof, err := c.profile()
	if err != nil {
		return "", nil, err
	}
	if err := man.CheckProfileSuites(prof.Name, prof.Module, prof.Suites); err != nil {
		return "", nil, verdict.SetupError("name the suites of module/"+prof.Module+"/"+manifest.File+" that have by_profile = true", "%v", err)
	}
	profJSON, err := prof.JSON()
	if err != nil {
		return "", nil, err
	}
	guestKO := filepath.Join(guestModuleDir, filepath.Base(mod.Path))
	spec := initramfs.Spec{
		RepoDir: c.RepoDir,
		Files:   []initramfs.File{{Host: mod.Path, Guest: guestKO}},
		Manifest: guestapi.Manifest{
			Module:     guestKO,
			ModuleName: mod.Name,
			Reload:     man.Reload,
			Env: []string{"PIDLAB_GUEST=1", "PIDLAB_MODULE=" + guestKO, "PIDLAB_MODULE_NAME=" + mod.Name,
				profile.EnvGuestJSON + "=" + string(profJSON)},
		},
	}
	for _, h := range man.Helpers {
		bin, err := guestbin.CProgram(ctx, filepath.Join(c.RepoDir, h.Source), binDir, c.Log)
		if err != nil {
			return "", nil, err
		}
		spec.Files = append(spec.Files, initramfs.File{Host: bin, Guest: h.GuestPath()})
		spec.Manifest.Env = append(spec.Manifest.Env, h.Env+"="+h.GuestPath())
	}
	var planned []string
	for _, s := range man.SuitesFor(prof.Suites) {
		bin, err := guestbin.TestBinary(ctx, c.RepoDir, s.Package, binDir, c.Log)
		if err != nil {
			return "", nil, err
		}
		names, err := guestbin.ListTests(ctx, bin, c.TestRun, c.Log)
		if err != nil {
			return "", nil, err
		}
		planned = append(planned, names...)
		guestPath := "/pidlab/" + s.Name + ".test"
		spec.Files = append(spec.Files, initramfs.File{Host: bin, Guest: guestPath})
		spec.Manifest.Tests = append(spec.Manifest.Tests, guestapi.TestBinary{Path: guestPath, Args: testArgs})
	}
	path, _, err := initramfs.Build(ctx, spec, c.CacheDir, c.Log)
	return path, planned, err
}

// manifest is the module's pidlab.toml: the module folder's own, else,
// for a folder without one (a student's module to validate), that of the
// module the profile is checked by (module/<profile's module>).
func (c Config) manifest() (*manifest.Manifest, error) {
	m, err := manifest.Load(c.ModuleDir)
	if !manifest.IsNotExist(err) {
		return m, err
	}
	prof, err := c.profile()
	if err != nil {
		return nil, err
	}
	m, err = manifest.Load(filepath.Join(c.RepoDir, ModulesDir, prof.Module))
	if err != nil {
		return nil, fmt.Errorf("the module folder has no %s, and the profile's module has none either: %w", manifest.File, err)
	}
	return m, nil
}

// profile is the run's profile: the reference one unless set.
func (c Config) profile() (*profile.Profile, error) {
	if c.Profile != nil {
		return c.Profile, nil
	}
	return profiles.Load(c.RepoDir, DefaultProfile)
}

// profileName names the run's profile, for reports.
func (c Config) profileName() string {
	if c.Profile != nil {
		return c.Profile.Name
	}
	return DefaultProfile
}

// testArgs ask for test2json framing. The flags that change from run to
// run are runArgs: they are not packed into the initramfs.
var testArgs = []string{"-test.v=test2json", "-test.count=1"}

// runArgs are the test flags of this run, which reach the guest on the
// kernel command line. The guest's own timeout is a backstop behind the
// host's, so that a stuck test still prints its stack.
func runArgs(c Config, timeout time.Duration) []string {
	args := []string{"-test.timeout=" + timeout.String()}
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
	return bootToVerdict(ctx, c, p)
}

// bootToVerdict boots a prepared run; the error is the verdict.
func bootToVerdict(ctx context.Context, c Config, p *Prepared) (*Result, error) {
	if ctx.Err() != nil {
		return nil, verdict.Interruption("waiting to boot")
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
