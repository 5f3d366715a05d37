// Package kernel provides the kernel a pidlab VM boots and the build tree
// its module compiles against: Debian's 6.1 packages unpacked into the
// cache by default, or a user's own kernel. The host's running kernel and
// /lib/modules are never used.
package kernel

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
)

// DefaultFlavour is the kernel used when nothing is asked for.
const DefaultFlavour = "cloud"

// Flavours maps pidlab's kernel names to Debian's 6.1 flavours.
var Flavours = map[string]string{
	"cloud":   "cloud-amd64",
	"generic": "amd64",
	"rt":      "rt-amd64",
}

// Selection is which kernel a run asked for.
type Selection struct {
	Flavour string // a key of Flavours or DebugName, when Image is empty
	Image   string // a user's bzImage
	KDIR    string // its build tree
}

// SelectionFromEnv reads PIDLAB_KERNEL and PIDLAB_KDIR.
func SelectionFromEnv() (Selection, error) {
	return ParseSelection(os.Getenv(EnvKernel), os.Getenv(EnvKDIR))
}

// ParseSelection interprets a PIDLAB_KERNEL value: empty for the default,
// a flavour name, "debug", or a bzImage path that needs kdir.
func ParseSelection(kernel, kdir string) (Selection, error) {
	if kernel == "" {
		kernel = DefaultFlavour
	}
	if _, ok := Flavours[kernel]; ok || kernel == DebugName {
		return Selection{Flavour: kernel}, nil
	}
	if !strings.ContainsRune(kernel, '/') {
		return Selection{}, verdict.SetupError("PIDLAB_KERNEL=cloud (or generic, rt, debug, or the path of a bzImage with PIDLAB_KDIR)",
			"%s=%q is neither a kernel name (%s) nor a path to a bzImage", EnvKernel, kernel, flavourNames())
	}
	if kdir == "" {
		return Selection{}, verdict.SetupError("PIDLAB_KDIR=/path/to/linux/build "+EnvKernel+"="+kernel+" go tool mage test",
			"%s is a bzImage path, so %s must name the tree its modules build against", EnvKernel, EnvKDIR)
	}
	return Selection{Image: kernel, KDIR: kdir}, nil
}

func flavourNames() string {
	return "cloud, generic, rt, debug"
}

// IsDebug reports whether the selection is pidlab's own debug kernel.
func (s Selection) IsDebug() bool { return s.Image == "" && s.Flavour == DebugName }

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
	if sel.Image != "" {
		return Custom(sel.Image, sel.KDIR)
	}
	if sel.IsDebug() {
		return Debug{CacheDir: filepath.Join(cacheDir, "kernels"), Log: log}.Provision(ctx)
	}
	d := Debian{Flavour: sel.Flavour, CacheDir: filepath.Join(cacheDir, "kernels"), Log: log}
	return d.Provision(ctx)
}

func (k *Kernel) String() string {
	return fmt.Sprintf("%s (%s)", k.Release, k.Name)
}

// debugSlowdown is how many times slower the debug kernel runs than a
// stock one: KASAN checks every memory access, lockdep every lock, and
// kmemleak tracks every allocation (its boot and test run take about
// four times as long under TCG).
const debugSlowdown = 4

// Slowdown is how many times slower than Debian's stock kernels this one
// runs the same work, for the limits of a run's steps. A custom kernel is
// taken for a stock one: its options are unknown.
func (k *Kernel) Slowdown() float64 {
	if k.Name == DebugName {
		return debugSlowdown
	}
	return 1
}
