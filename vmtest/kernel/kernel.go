// Package kernel provides the kernel a pidlab VM boots and the build tree
// its module compiles against: Debian's 6.1 packages unpacked into the
// cache by default, or a user's own kernel. The host's running kernel and
// /lib/modules are never used.
package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pidlab/pidlab/vmtest/internal/cacheentry"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// Kernel is a bootable image and the kbuild tree for its modules.
type Kernel struct {
	Name    string // a flavour name ("cloud"), "debug" or "custom"
	Release string // uname -r of the booted kernel
	Image   string // bzImage
	KDIR    string // make -C $KDIR M=… builds modules for Image
}

// Environment overrides, documented in the README.
const (
	EnvKernel = "PIDLAB_KERNEL" // a flavour name, or the path of a bzImage
	EnvKDIR   = "PIDLAB_KDIR"   // with a bzImage path: its module build tree
	// EnvPatches lists a user's own patches (paths separated by ':'), for
	// the source of a kernel pidlab builds, after the description's own.
	EnvPatches = "PIDLAB_KERNEL_PATCHES"
)

// DefaultFlavour is the kernel used when nothing is asked for.
const DefaultFlavour = "cloud"

// Selection is which kernel a run asked for.
type Selection struct {
	Flavour string // a kernel's name (kernels/kernels.toml), when Image is empty
	Image   string // a user's bzImage
	KDIR    string // its build tree
	// Patches are the user's own patches for a kernel built from source,
	// paths as given (PIDLAB_KERNEL_PATCHES), applied in order after the
	// description's.
	Patches []string
}

// SelectionFromEnv reads PIDLAB_KERNEL, PIDLAB_KDIR and
// PIDLAB_KERNEL_PATCHES; a bzImage and its tree, and every patch, must be
// there before anything is built for them. Which kernels may take the
// patches is for the caller, who knows the run's kernels (PIDLAB_KERNELS).
func SelectionFromEnv() (Selection, error) {
	sel, err := ParseSelection(os.Getenv(EnvKernel), os.Getenv(EnvKDIR))
	if err != nil {
		return Selection{}, err
	}
	if sel.Patches, err = ParsePatches(os.Getenv(EnvPatches)); err != nil {
		return Selection{}, err
	}
	if sel.Image != "" {
		if _, err := Custom(sel.Image, sel.KDIR); err != nil {
			return Selection{}, err
		}
	}
	return sel, nil
}

// ParseSelection interprets a PIDLAB_KERNEL value: empty for the default,
// a kernel's name, or a bzImage path that needs kdir.
func ParseSelection(kernel, kdir string) (Selection, error) {
	if kernel == "" {
		kernel = DefaultFlavour
	}
	if _, ok := Describe(kernel); ok {
		return Selection{Flavour: kernel}, nil
	}
	if !strings.ContainsRune(kernel, '/') {
		return Selection{}, verdict.SetupError("PIDLAB_KERNEL=cloud (any of "+Names()+", or the path of a bzImage with PIDLAB_KDIR)",
			"%s=%q is neither a kernel name (%s) nor a path to a bzImage", EnvKernel, kernel, Names())
	}
	if kdir == "" {
		return Selection{}, verdict.SetupError("PIDLAB_KDIR=/path/to/linux/build "+EnvKernel+"="+kernel+" go tool mage test",
			"%s is a bzImage path, so %s must name the tree its modules build against", EnvKernel, EnvKDIR)
	}
	return Selection{Image: kernel, KDIR: kdir}, nil
}

// IsBuilt reports whether the selection is a kernel pidlab builds from
// source (the debug kernel), rather than fetches or is given.
func (s Selection) IsBuilt() bool {
	d, ok := Describe(s.Flavour)
	return s.Image == "" && ok && d.Built()
}

// Custom checks a user's own kernel and returns it.
func Custom(image, kdir string) (*Kernel, error) {
	for _, p := range []string{image, filepath.Join(kdir, "Makefile")} {
		if _, err := os.Stat(p); err != nil {
			return nil, verdict.SetupError("point "+EnvKernel+" at a bzImage and "+EnvKDIR+" at its build tree",
				"custom kernel: %v", err)
		}
	}
	release, err := os.ReadFile(filepath.Join(kdir, "include/config/kernel.release"))
	if err != nil {
		return nil, verdict.SetupError("make -C "+kdir+" modules_prepare",
			"custom kernel: %s is not a prepared build tree: %v", kdir, err)
	}
	return &Kernel{Name: "custom", Release: strings.TrimSpace(string(release)), Image: image, KDIR: kdir}, nil
}

// Provision returns the selected kernel, fetching Debian's packages into
// cacheDir when they are not there yet, or building the debug kernel.
func Provision(ctx context.Context, sel Selection, cacheDir string, log *progress.Log) (*Kernel, error) {
	if len(sel.Patches) > 0 && !sel.IsBuilt() {
		return nil, notPatchable(sel)
	}
	if sel.Image != "" {
		return Custom(sel.Image, sel.KDIR)
	}
	desc, ok := Describe(sel.Flavour)
	if !ok {
		return nil, verdict.Errorf(verdict.Setup, "unknown kernel %q (have %s)", sel.Flavour, Names())
	}
	if desc.Built() {
		return SourceBuild{Desc: desc, CacheDir: filepath.Join(cacheDir, "kernels"), Log: log, ExtraPatches: sel.Patches}.Provision(ctx)
	}
	d := Debian{Flavour: sel.Flavour, CacheDir: filepath.Join(cacheDir, "kernels"), Log: log}
	return d.Provision(ctx)
}

// usableTree decides whether the finished kernel tree at dir may be used.
// A tree is finished when its ready marker is there, and intact when it
// matches its seal; a damaged one is removed, said in one line ("cache: …
// is damaged (…); <again>") and reported false. A finished tree that an
// older pidlab left unsealed is sealed as it is now, with seal.
func usableTree(dir, again string, seal func(dir string) error, log *progress.Log) bool {
	if _, err := os.Stat(filepath.Join(dir, readyMarker)); err != nil {
		return false
	}
	err := cacheentry.CheckTree(dir)
	switch {
	case err == nil:
	case errors.Is(err, cacheentry.ErrNotSealed):
		log.Debug("kernel: sealing %s, which an older pidlab left unsealed", dir)
		if err := seal(dir); err != nil {
			log.Info("cache: cannot seal %s (%v); %s", dir, err, again)
			os.RemoveAll(dir)
			return false
		}
	default:
		log.Info("cache: %v; %s", err, again)
		os.RemoveAll(dir)
		return false
	}
	cacheentry.Touch(filepath.Join(dir, readyMarker))
	return true
}

// moduleLists are kbuild's lists of a kernel's module names: the
// loadable ones and the built-in ones.
var moduleLists = map[string]bool{"modules.order": true, "modules.builtin": true}

// ModuleNamed finds a module of the kernel itself named name (as
// delete_module knows it: dashes are underscores) and returns its path in
// the kernel's lists (kernel/fs/ext4/ext4.ko), and whether it is built in.
// Debian's trees keep the lists under lib/modules/<release>, a kernel
// build tree has them at its top. ok is false when no list names it, or
// when the kernel has no lists at all (a tree fetched before they were
// kept, a build without modules).
func (k *Kernel) ModuleNamed(name string) (path string, builtin, ok bool) {
	root := filepath.Dir(filepath.Dir(k.Image)) // a Debian tree: <root>/boot/vmlinuz-…
	for _, dir := range []string{filepath.Join(root, "lib", "modules", k.Release), k.KDIR} {
		for _, list := range []string{"modules.builtin", "modules.order"} {
			b, err := os.ReadFile(filepath.Join(dir, list))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				line = strings.TrimSpace(line)
				if line != "" && ModuleName(line) == name {
					return line, list == "modules.builtin", true
				}
			}
		}
	}
	return "", false, false
}

// ModuleName is the name delete_module knows the module file at path by:
// its base name without .ko, dashes as underscores.
func ModuleName(path string) string {
	return strings.ReplaceAll(strings.TrimSuffix(filepath.Base(path), ".ko"), "-", "_")
}

func (k *Kernel) String() string {
	return fmt.Sprintf("%s (%s)", k.Release, k.Name)
}

// Slowdown is how many times slower than Debian's stock kernels this one
// runs the same work (its description's slowdown), for the limits of a
// run's steps. A custom kernel is taken for a stock one: its options are
// unknown.
func (k *Kernel) Slowdown() float64 {
	if k == nil {
		return 1
	}
	if d, ok := Describe(k.Name); ok && d.Slowdown > 1 {
		return d.Slowdown
	}
	return 1
}

// Scale multiplies a limit set for a stock kernel by k's Slowdown.
func (k *Kernel) Scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * k.Slowdown())
}
