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
	"path"
	"path/filepath"
	"sync"
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
	EnvBench       = "PIDLAB_BENCH"        // -test.bench pattern for go tool mage bench
	EnvLoopRounds  = "PIDLAB_LOOP_ROUNDS"  // how many rounds go tool mage editLoop measures
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
	// Bench, when set, is a -test.bench pattern: the run is of the
	// guest benchmarks it matches, and of no test (go tool mage bench).
	Bench      string
	Profile    *profile.Profile
	QuietTests bool // print tests as they end only with Log.Verbose; a count every few seconds instead
	// ProfileManifest checks the module with the manifest of the
	// profile's module even if its folder has a pidlab.toml: a grade
	// judges every student by the profile, not by the student's manifest.
	ProfileManifest bool
	Log             *progress.Log
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

// guestModuleDir is where the modules' .ko files go in the guest, each in
// a folder of its own (/pidlab/module/<folder>/); a suite's test binary
// goes in /pidlab/<name>.test.
const guestModuleDir = "/pidlab/module"

// Prepared is everything a boot needs, built and cached.
type Prepared struct {
	Kernel    *kernel.Kernel
	Modules   []*PreparedModule // in the order asked for, those that did not build too
	Initramfs string            // for the modules that built
	// Took is where the preparation's time went, step by step: on a warm
	// run, each step is a check that its cached result still holds.
	Took []Span
}

// PreparedModule is one module of a boot: built, or why not.
type PreparedModule struct {
	Dir      string
	Module   *kbuild.Module
	Manifest *manifest.Manifest // what the guest runs, and the module's hints
	Planned  []string           // the guest's top-level tests, in the order they will run
	Err      error              // why it is not in the boot: its build failed, or its manifest is wrong
}

// Booted are the modules the boot tests: those that built.
func (p *Prepared) Booted() []*PreparedModule {
	var mods []*PreparedModule
	for _, m := range p.Modules {
		if m.Err == nil {
			mods = append(mods, m)
		}
	}
	return mods
}

// Prepare checks the host, provisions the kernel, builds each module of
// dirs against it, the guest programs and one initramfs for them all. A
// module that does not build has its Err and stays out of the boot; the
// error is what keeps every module from booting.
func Prepare(ctx context.Context, c Config, dirs []string) (*Prepared, error) {
	watch := newStopwatch()
	inputs := c.readInputs(ctx, dirs)
	k, err := ProvisionKernel(ctx, c)
	if err != nil {
		return nil, err
	}
	p := &Prepared{Kernel: k}
	watch.lap("host tools and kernel")
	for _, dir := range dirs {
		m := &PreparedModule{Dir: dir}
		if m.Manifest, m.Err = c.manifestFor(dir); m.Err != nil {
			m.Err = verdict.SetupError("fix the module's "+manifest.File, "%v", m.Err)
		} else {
			m.Module, m.Err = buildModule(ctx, c, k, dir)
		}
		if ctx.Err() != nil {
			return nil, verdict.Interrupting(ctx, m.Err, "building the modules")
		}
		p.Modules = append(p.Modules, m)
		watch.lap("build " + filepath.Base(dir))
	}
	if len(p.Booted()) == 0 {
		p.Took = watch.spans
		return p, nil
	}
	if p.Initramfs, err = buildInitramfs(ctx, c, p.Booted(), inputs, watch); err != nil {
		return nil, verdict.Interrupting(ctx, err, "building the guest programs and the initramfs")
	}
	p.Took = watch.spans
	return p, nil
}

// readInputs reads what the guest test binaries of the modules in dirs
// are built from (one go list), while the kernel and the modules are
// prepared: the result is what the returned function gives.
func (c Config) readInputs(ctx context.Context, dirs []string) func() *guestbin.Inputs {
	done := make(chan *guestbin.Inputs, 1)
	var suites []string
	if prof, err := c.profile(); err == nil {
		for _, dir := range dirs {
			if man, err := c.manifestFor(dir); err == nil {
				for _, s := range man.SuitesFor(prof.Suites) {
					suites = append(suites, s.Package)
				}
			}
		}
	}
	go func() { done <- guestbin.ReadInputs(ctx, c.RepoDir, suites, c.Log) }()
	return sync.OnceValue(func() *guestbin.Inputs { return <-done })
}

// stopwatch times steps done one after the other.
type stopwatch struct {
	start time.Time
	spans []Span
}

func newStopwatch() *stopwatch { return &stopwatch{start: time.Now()} }

// lap ends the step named what, and starts the next.
func (w *stopwatch) lap(what string) {
	now := time.Now()
	w.spans = append(w.spans, Span{What: what, Took: now.Sub(w.start)})
	w.start = now
}

// ProvisionKernel is what every VM needs before its modules: the host's
// tools and the kernel.
func ProvisionKernel(ctx context.Context, c Config) (*kernel.Kernel, error) {
	needs := hostdeps.Boot
	switch {
	case c.Kernel.IsBuilt():
		needs = append(needs, hostdeps.SourceKernel...)
	case c.Kernel.Image == "":
		needs = append(needs, hostdeps.DebianKernel...)
	}
	if err := hostdeps.Ensure(ctx, c.Log, needs...); err != nil {
		return nil, verdict.Interrupting(ctx, err, "installing host packages")
	}
	k, err := kernel.Provision(ctx, c.Kernel, c.CacheDir, c.Log)
	if err != nil {
		doing := "fetching the kernel"
		if c.Kernel.IsBuilt() {
			doing = "building the " + c.Kernel.Flavour + " kernel"
		}
		return nil, verdict.Interrupting(ctx, err, doing)
	}
	c.Log.Debug("kernel: %s", k.Image)
	return k, nil
}

// buildModule builds the module in dir against k.
func buildModule(ctx context.Context, c Config, k *kernel.Kernel, dir string) (*kbuild.Module, error) {
	mod, err := kbuild.Build(ctx, k, dir, c.CacheDir, c.Log)
	if err != nil {
		return nil, verdict.Interrupting(ctx, err, "building the module")
	}
	if mod.Warnings != "" {
		c.Log.Info("the module built with warnings:\n%s", mod.Warnings)
	}
	if w := nameClash(k, mod); w != "" {
		c.Log.Line("warning: %s", w)
	}
	return mod, nil
}

// provisionModule is the kernel and c.ModuleDir's module built against
// it: what a shell VM needs before its initramfs.
func provisionModule(ctx context.Context, c Config) (*kernel.Kernel, *kbuild.Module, error) {
	k, err := ProvisionKernel(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	mod, err := buildModule(ctx, c, k, c.ModuleDir)
	return k, mod, err
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

// buildInitramfs builds the archive of the modules' boot and sets each
// module's planned tests: the suites and helpers of its manifest, for the
// run's profile. inputs gives the guest test binaries' inputs; watch times
// the guest programs and the archive.
func buildInitramfs(ctx context.Context, c Config, mods []*PreparedModule, inputs func() *guestbin.Inputs, watch *stopwatch) (string, error) {
	prof, err := c.profile()
	if err != nil {
		return "", err
	}
	profJSON, err := prof.JSON()
	if err != nil {
		return "", err
	}
	var files []initramfs.File
	var manifest guestapi.Manifest
	for _, m := range mods {
		run, modFiles, err := guestModule(ctx, c, m, inputs(), prof, string(profJSON))
		if err != nil {
			return "", err
		}
		files = append(files, modFiles...)
		manifest.Modules = append(manifest.Modules, run)
	}
	watch.lap("guest programs")
	defer watch.lap("initramfs")
	// The Go commands (u-root's init, the runner) are built once into a
	// base archive; the run's files go in a second archive appended to a
	// copy of it, so a changed module or test costs a copy, not a rebuild.
	base, _, err := initramfs.Build(ctx, initramfs.Spec{RepoDir: c.RepoDir}, c.CacheDir, c.Log)
	if err != nil {
		return "", err
	}
	return initramfs.Overlay(base, files, manifest, c.CacheDir, c.Log.Info)
}

// guestModule is one module's part of the guest's manifest and the files
// it needs there: its .ko, its helpers and its suites' test binaries. It
// sets m.Planned.
func guestModule(ctx context.Context, c Config, m *PreparedModule, inputs *guestbin.Inputs, prof *profile.Profile, profJSON string) (guestapi.ModuleRun, []initramfs.File, error) {
	binDir := filepath.Join(c.CacheDir, "guestbin")
	man := m.Manifest
	if err := man.CheckProfileSuites(prof.Name, prof.Module, prof.Suites); err != nil {
		return guestapi.ModuleRun{}, nil, verdict.SetupError("name the suites of module/"+prof.Module+"/"+manifest.File+" that have by_profile = true", "%v", err)
	}
	folder := filepath.Base(m.Dir)
	guestKO := path.Join(guestModuleDir, folder, filepath.Base(m.Module.Path))
	files := []initramfs.File{{Host: m.Module.Path, Guest: guestKO}}
	run := guestapi.ModuleRun{
		Name:       folder,
		Module:     guestKO,
		ModuleName: m.Module.Name,
		Reload:     man.Reload,
		Env: []string{"PIDLAB_GUEST=1", "PIDLAB_MODULE=" + guestKO, "PIDLAB_MODULE_NAME=" + m.Module.Name,
			profile.EnvGuestJSON + "=" + profJSON},
	}
	for _, h := range man.Helpers {
		bin, err := guestbin.CProgram(ctx, filepath.Join(c.RepoDir, h.Source), binDir, c.Log)
		if err != nil {
			return run, nil, err
		}
		files = append(files, initramfs.File{Host: bin, Guest: h.GuestPath()})
		run.Env = append(run.Env, h.Env+"="+h.GuestPath())
	}
	m.Planned = nil
	for _, s := range man.SuitesFor(prof.Suites) {
		bin, err := inputs.TestBinary(ctx, c.RepoDir, s.Package, binDir, c.Log)
		if err != nil {
			return run, nil, err
		}
		names, err := c.planned(ctx, bin)
		if err != nil {
			return run, nil, err
		}
		m.Planned = append(m.Planned, names...)
		guestPath := "/pidlab/" + s.Name + ".test"
		files = append(files, initramfs.File{Host: bin, Guest: guestPath})
		run.Tests = append(run.Tests, guestapi.TestBinary{Path: guestPath, Args: testArgs})
	}
	return run, files, nil
}

// planned names the top-level tests of a suite's binary this run runs, or
// its benchmarks for a run of benchmarks.
func (c Config) planned(ctx context.Context, bin string) ([]string, error) {
	if c.Bench != "" {
		return guestbin.ListTests(ctx, bin, c.Bench, guestbin.Benchmarks, c.Log)
	}
	return guestbin.ListTests(ctx, bin, c.TestRun, guestbin.Tests, c.Log)
}

// manifestFor is the pidlab.toml of the module in dir: the module folder's own, else,
// for a folder without one (a student's module to validate), that of the
// module the profile is checked by (module/<profile's module>), which
// also checks every folder with ProfileManifest.
func (c Config) manifestFor(dir string) (*manifest.Manifest, error) {
	if !c.ProfileManifest {
		m, err := manifest.Load(dir)
		if !manifest.IsNotExist(err) {
			return m, err
		}
	}
	prof, err := c.profile()
	if err != nil {
		return nil, err
	}
	m, err := manifest.Load(filepath.Join(c.RepoDir, ModulesDir, prof.Module))
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

// benchTime is how long each guest benchmark measures: go test's default
// second is a few hundred forks under TCG, too few for a steady median.
const benchTime = "5s"

// runArgs are the test flags of this run, which reach the guest on the
// kernel command line. The guest's own timeout is a backstop behind the
// host's, so that a stuck test still prints its stack.
func runArgs(c Config, timeout time.Duration) []string {
	args := []string{"-test.timeout=" + timeout.String()}
	if c.Bench != "" {
		return append(args, "-test.run=^$", "-test.bench="+c.Bench, "-test.benchtime="+benchTime)
	}
	if c.TestRun != "" {
		args = append(args, "-test.run="+c.TestRun)
	}
	return args
}

// Run tests c's one module (c.ModuleDir) on c's kernel: a boot of its
// own. The returned error is a *verdict.Error (or a plain error for a
// harness fault); the Result, when not nil, holds what the run saw.
func Run(ctx context.Context, c Config) (*Result, error) {
	r := RunKernels(ctx, c, []string{c.ModuleDir}, []string{kernelName(c.Kernel)})[0]
	return r.Result, r.Err
}
