package kernel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/pidlab/pidlab/vmtest/hostdeps"
	"github.com/pidlab/pidlab/vmtest/internal/cacheentry"
	"github.com/pidlab/pidlab/vmtest/internal/contenthash"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// Debian provisions a Debian bookworm 6.1 kernel: the unsigned image and
// its exact headers, fetched with apt-get download (no root needed) and
// unpacked together, because the headers link into linux-kbuild by
// relative paths.
type Debian struct {
	Flavour  string // a key of Flavours
	CacheDir string // kernels are unpacked in CacheDir/<abi>-<flavour>
	Log      *progress.Log
	Lists    *hostdeps.AptLists // refreshes stale package lists as root; nil for hostdeps.Lists
}

const readyMarker = ".pidlab-ready"

var abiPattern = regexp.MustCompile(`linux-image-(6\.1\.0-\d+)-`)

// Provision returns the newest kernel of the flavour that apt knows,
// unpacking it on first use. Without apt metadata it falls back to the
// newest kernel already in the cache. When apt fails to resolve or fetch
// (stale lists name an ABI the mirror has dropped), root refreshes the
// lists and starts over: the fresh lists may name another ABI.
func (d Debian) Provision(ctx context.Context) (*Kernel, error) {
	desc, ok := Describe(d.Flavour)
	if !ok || desc.Debian == "" {
		return nil, verdict.Errorf(verdict.Setup, "unknown Debian kernel %q (have %s)", d.Flavour, Names())
	}
	flavour := desc.Debian
	var k *Kernel
	err := aptLists(d.Lists).Retry(ctx, d.Log, func() (err error) {
		k, err = d.provision(ctx, flavour)
		return err
	})
	return k, err
}

func aptLists(l *hostdeps.AptLists) *hostdeps.AptLists {
	if l == nil {
		return hostdeps.Lists
	}
	return l
}

// provision is one attempt of Provision.
func (d Debian) provision(ctx context.Context, flavour string) (*Kernel, error) {
	abi, resolveErr := d.resolveABI(ctx, flavour)
	if resolveErr != nil {
		cached := d.newestCached(flavour)
		if cached == "" {
			return nil, resolveErr
		}
		d.Log.Info("apt cannot resolve the %s kernel (%v); using the cached %s", flavour, firstLine(resolveErr), cached)
		abi = strings.TrimSuffix(cached, "-"+flavour)
	}
	release := abi + "-" + flavour
	root := filepath.Join(d.CacheDir, release)
	if !usableTree(root, "fetching it again", sealDebian(release), d.Log) {
		if err := d.fetch(ctx, release, root); err != nil {
			return nil, err
		}
	} else if err := d.relocateCached(root, release); err != nil {
		return nil, err
	}
	return &Kernel{
		Name:    d.Flavour,
		Release: release,
		Image:   filepath.Join(root, "boot", "vmlinuz-"+release),
		KDIR:    filepath.Join(root, "usr", "src", "linux-headers-"+release),
	}, nil
}

// relocateCached makes a cached tree that an older pidlab fetched build
// wherever it lies (see commonHeadersInclude), and seals it again.
func (d Debian) relocateCached(root, release string) error {
	changed, err := relocateHeaders(root, release)
	if err != nil || !changed {
		return err
	}
	d.Log.Info("cache: %s named its common headers by an absolute path; now by a relative one", root)
	return sealDebian(release)(root)
}

// aptState is what apt's answers come from: its package lists, its
// sources and preferences. An answer stays right while none of them
// changes (apt-get update, a new source).
var aptState = []string{"/var/lib/apt/lists/*", "/etc/apt/sources.list", "/etc/apt/sources.list.d/*",
	"/etc/apt/preferences", "/etc/apt/preferences.d/*", "/etc/apt/apt.conf", "/etc/apt/apt.conf.d/*"}

// aptStateKey names the state of aptState's files: their names, sizes
// and modification times.
func aptStateKey() string {
	k := contenthash.New()
	k.Printf("APT_CONFIG=%s\n", os.Getenv("APT_CONFIG"))
	for _, glob := range aptState {
		matches, _ := filepath.Glob(glob)
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() {
				k.Printf("%s %d %d\n", m, fi.Size(), fi.ModTime().UnixNano())
			}
		}
	}
	return k.String()
}

// resolveABI is the 6.1 ABI the flavour's metapackage points at, as apt
// said it last for the same package lists, else as apt says it now:
// apt-cache takes over a second to load bookworm's lists, most of a warm
// run's time outside the VM.
func (d Debian) resolveABI(ctx context.Context, flavour string) (string, error) {
	key := aptStateKey()
	memo := filepath.Join(d.CacheDir, "apt-"+flavour+".abi")
	if b, err := os.ReadFile(memo); err == nil {
		if k, abi, ok := strings.Cut(strings.TrimSpace(string(b)), "\n"); ok && k == key && abiOnly.MatchString(abi) {
			return abi, nil
		}
	}
	abi, err := d.askABI(ctx, flavour)
	if err == nil && os.MkdirAll(d.CacheDir, 0o755) == nil {
		cacheentry.WriteFileAtomic(memo, []byte(key+"\n"+abi+"\n"), 0o644) // without it, apt is asked again: no harm
	}
	return abi, err
}

var abiOnly = regexp.MustCompile(`^6\.1\.0-\d+$`)

// askABI asks apt which 6.1 ABI the flavour's metapackage points at.
func (d Debian) askABI(ctx context.Context, flavour string) (string, error) {
	meta := "linux-image-" + flavour
	out, err := d.Log.Output(ctx, "", "apt-cache", "depends", meta)
	if errors.Is(err, exec.ErrNotFound) {
		return "", verdict.SetupError("use your own kernel: PIDLAB_KERNEL=/path/bzImage PIDLAB_KDIR=/path/build",
			"apt-cache not found: fetching Debian's kernel needs a Debian or Ubuntu host with apt")
	}
	m := abiPattern.FindSubmatch(out)
	if err != nil || m == nil {
		return "", hostdeps.AptFailed(verdict.SetupError("apt-get update   (as root, once; Debian bookworm sources are needed)",
			"apt does not know the package %s: its package lists are missing or not bookworm's", meta))
	}
	return string(m[1]), nil
}

// newestCached names the cached tree of flavour with the highest ABI.
// The glob alone is not enough: "6.1.0-*-amd64" (generic) also matches
// the cloud-amd64 and rt-amd64 trees.
func (d Debian) newestCached(flavour string) string {
	matches, _ := filepath.Glob(filepath.Join(d.CacheDir, "6.1.0-*-"+flavour, readyMarker))
	newest, best := "", -1
	for _, m := range matches {
		release := filepath.Base(filepath.Dir(m))
		if n, ok := abiNumber(release, flavour); ok && n > best {
			newest, best = release, n
		}
	}
	return newest
}

// abiNumber is N of a release "6.1.0-N-<flavour>", if release is one.
func abiNumber(release, flavour string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(release, "6.1.0-"), "-"+flavour))
	return n, err == nil && n >= 0
}

// fetch downloads the packages of release and unpacks them into root.
func (d Debian) fetch(ctx context.Context, release, root string) error {
	headers := "linux-headers-" + release
	deps, err := d.headerDeps(ctx, headers)
	if err != nil {
		return err
	}
	pkgs := append([]string{"linux-image-" + release + "-unsigned", headers}, deps...)
	if err := os.MkdirAll(d.CacheDir, 0o755); err != nil {
		return err
	}
	staging, err := os.MkdirTemp(d.CacheDir, ".fetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)

	d.Log.Step("fetching kernel %s: %d Debian packages", release, len(pkgs))
	debs, err := d.download(ctx, staging, pkgs)
	if err != nil {
		return err
	}
	unpacked := filepath.Join(staging, "root")
	for i, deb := range debs {
		d.Log.Info("unpacking %s (%d/%d)", filepath.Base(deb), i+1, len(debs))
		if _, err := d.Log.Output(ctx, "", "dpkg-deb", "-x", deb, unpacked); err != nil {
			return verdict.SetupError("apt-get install dpkg", "unpacking %s: %v", filepath.Base(deb), commandDetail(err))
		}
	}
	if err := dropModules(unpacked); err != nil {
		return err
	}
	if _, err := relocateHeaders(unpacked, release); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(unpacked, readyMarker), []byte(release+"\n"), 0o644); err != nil {
		return err
	}
	if err := sealDebian(release)(unpacked); err != nil {
		return err
	}
	if cacheentry.CheckTree(root) == nil {
		return nil // a parallel run fetched the same kernel first, and may be using it
	}
	os.RemoveAll(root) // a half-made or damaged tree
	return os.Rename(unpacked, root)
}

// sealDebian seals a Debian kernel tree: every file, and the image's hash.
func sealDebian(release string) func(dir string) error {
	return func(dir string) error { return cacheentry.SealTree(dir, nil, "boot/vmlinuz-"+release) }
}

// headerDeps lists the other header packages the flavour's headers need
// (headers-common, or common-rt, and linux-kbuild).
func (d Debian) headerDeps(ctx context.Context, headers string) ([]string, error) {
	out, err := d.Log.Output(ctx, "", "apt-cache", "depends", headers)
	if err != nil {
		return nil, hostdeps.AptFailed(verdict.SetupError("apt-get update", "apt does not know %s: %v", headers, commandDetail(err)))
	}
	var deps []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "Depends:" && (strings.HasPrefix(f[1], "linux-headers-") || strings.HasPrefix(f[1], "linux-kbuild-")) {
			deps = append(deps, f[1])
		}
	}
	if len(deps) == 0 {
		return nil, verdict.Errorf(verdict.Setup, "apt lists no headers-common or kbuild package for %s", headers)
	}
	return deps, nil
}

// download runs apt-get download, reporting each package as it arrives.
func (d Debian) download(ctx context.Context, dir string, pkgs []string) ([]string, error) {
	args := []string{"download"}
	if os.Geteuid() == 0 {
		// apt drops to the _apt user, which cannot write a private temp dir.
		args = append(args, "-o", "APT::Sandbox::User=root")
	}
	cmd := exec.CommandContext(ctx, "apt-get", append(args, pkgs...)...)
	progress.KillGroupOnCancel(cmd)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	d.Log.Debug("exec: %s", progress.Cmdline(cmd))
	if err := cmd.Start(); err != nil {
		return nil, verdict.SetupError("apt-get install apt", "apt-get: %v", err)
	}
	got := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		// "Get:1 <url> <suite> <arch> <package> <arch> <version> [<size> kB]"
		if f := strings.Fields(sc.Text()); len(f) >= 7 && strings.HasPrefix(f[0], "Get:") {
			got++
			d.Log.Info("downloaded %s %s (%d/%d)", f[4], strings.Join(f[len(f)-2:], " "), got, len(pkgs))
		}
	}
	if err := cmd.Wait(); err != nil {
		return nil, hostdeps.AptFailed(verdict.SetupError("apt-get update, then run again",
			"downloading the kernel packages failed: %s\n%s", progress.Cmdline(cmd), strings.TrimSpace(stderr.String())))
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	if len(debs) != len(pkgs) {
		return nil, verdict.Errorf(verdict.Setup, "apt-get download gave %d packages, expected %d", len(debs), len(pkgs))
	}
	return debs, nil
}

// dropModules removes the image's own modules (lib/modules): nothing
// boots or builds against them, and they are four fifths of a generic or
// rt tree (about 390 of 480 MB). The lists of their names stay
// (modules.order, modules.builtin: a few kB), so that a module named like
// one of them can be warned about (Kernel.ModuleNamed).
func dropModules(unpacked string) error {
	dirs, _ := filepath.Glob(filepath.Join(unpacked, "lib", "modules", "*"))
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !moduleLists[e.Name()] {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// commonHeadersInclude is the flavour headers' one line: Debian's names
// the common headers by absolute path (/usr/src/…), and pidlab before
// this one named their copy in the cache by its absolute path, which
// broke when a cache was moved or shared under another path.
var commonHeadersInclude = regexp.MustCompile(`(?m)^include \S*/usr/src/(linux-headers-[^/\s]+)/Makefile$`)

// relocateHeaders points the flavour headers' Makefile in tree at the
// common headers next to it, relative to the Makefile itself, so the tree
// builds modules wherever it lies. It says whether it changed the file.
func relocateHeaders(tree, release string) (bool, error) {
	mk := filepath.Join(tree, "usr", "src", "linux-headers-"+release, "Makefile")
	b, err := os.ReadFile(mk)
	if err != nil {
		return false, fmt.Errorf("kernel headers of %s: %w", release, err)
	}
	fixed := commonHeadersInclude.ReplaceAll(b, []byte("include $$(dir $$(lastword $$(MAKEFILE_LIST)))../$1/Makefile"))
	if bytes.Equal(fixed, b) {
		return false, nil
	}
	return true, cacheentry.WriteFileAtomic(mk, fixed, 0o644)
}

func commandDetail(err error) string {
	var ce *progress.CommandError
	if errors.As(err, &ce) {
		return fmt.Sprintf("%v\n%s", ce, strings.TrimSpace(ce.Output))
	}
	return err.Error()
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
