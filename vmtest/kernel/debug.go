package kernel

import (
	"bufio"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/pidlab/pidlab/vmtest/hostdeps"
	"github.com/pidlab/pidlab/vmtest/internal/cacheentry"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// DebugName is the PIDLAB_KERNEL value that selects pidlab's own debug
// kernel (KASAN, lockdep, kmemleak …): a kernel built from source, as
// kernels/kernels.toml describes it.
const DebugName = "debug"

// The build, as data: the cache key hashes these, so a changed step builds
// a new kernel. recipeVersion covers what is not a command here (how the
// source is unpacked, what is kept); bump it when that changes.
const recipeVersion = "1"

// buildArch: tinyconfig is 32-bit with the default ARCH=x86.
const buildArch = "ARCH=x86_64"

// buildMake builds vmlinux, bzImage and what modules_prepare makes; -j is
// added at run time and is not part of the key.
var buildMake = []string{"make", buildArch, "KBUILD_BUILD_USER=pidlab", "KBUILD_BUILD_HOST=pidlab"}

// ccEstimate is how many "CC" lines the debug kernel's build printed when
// measured; progress shows it as "CC n/~N" and caps the percentage below 100.
const ccEstimate = 1180

// SourceBuild provisions a kernel built from a Debian source package, as
// its Description says: the source, its patches, the base config and the
// fragment, built once into the cache.
type SourceBuild struct {
	Desc     Description
	CacheDir string // kernels live in CacheDir/<name>-<key>
	Log      *progress.Log
	Jobs     int                // make -j; 0 for the number of CPUs
	Fragment string             // the config fragment; empty for the description's
	Lists    *hostdeps.AptLists // refreshes stale package lists as root; nil for hostdeps.Lists
	// ExtraPatches are a user's own patch files (PIDLAB_KERNEL_PATCHES),
	// paths as given, applied after the description's patches, in order.
	ExtraPatches []string
}

// sourcePackage is one version of the source package, as apt offers it.
type sourcePackage struct {
	Version string // Debian version, e.g. 6.1.192-2
	File    string // the .deb's name
	Size    int64
}

// Provision returns the kernel, building it when the cache has none for
// this source version, fragment, patches, recipe and compiler. Without apt
// metadata it falls back to a cached build of the same fragment, patches
// and recipe. When apt fails to resolve or download the source, root
// refreshes the lists and starts over (the fresh lists may name another
// version).
func (d SourceBuild) Provision(ctx context.Context) (*Kernel, error) {
	var k *Kernel
	err := aptLists(d.Lists).Retry(ctx, d.Log, func() (err error) {
		k, err = d.provision(ctx)
		return err
	})
	return k, err
}

// provision is one attempt of Provision.
func (d SourceBuild) provision(ctx context.Context) (*Kernel, error) {
	if d.Fragment == "" {
		text, err := d.Desc.FragmentText()
		if err != nil {
			return nil, err
		}
		d.Fragment = text
	}
	frag, err := ParseFragment(d.fragmentPath(), d.Fragment)
	if err != nil {
		return nil, err
	}
	patches, err := d.patches()
	if err != nil {
		return nil, err
	}
	cc := d.compiler(ctx)
	src, resolveErr := d.resolve(ctx)
	var key string
	if resolveErr != nil {
		dir, version := d.cachedFallback(patches, cc)
		if dir == "" {
			return nil, resolveErr
		}
		d.Log.Info("apt cannot resolve %s (%v); using the %s kernel built from %s", d.Desc.Source, firstLine(resolveErr), d.Desc.Name, version)
		key = strings.TrimPrefix(filepath.Base(dir), d.dirPrefix())
	} else {
		key = d.key(src.Version, patches, cc)
	}
	dir := filepath.Join(d.CacheDir, d.dirPrefix()+key)
	if usableTree(dir, "building it again", sealBuilt, d.Log) {
		if k, err := d.ready(dir); err == nil {
			d.Log.Debug("%s kernel: reusing %s", d.Desc.Name, dir)
			return k, nil
		}
	}
	if resolveErr != nil {
		// The fallback build was damaged and is gone; without apt there is
		// no source to build another from.
		return nil, resolveErr
	}
	own := patches[:len(patches)-len(d.ExtraPatches)]
	if parent := d.parentBuild(src.Version, own, cc); parent != "" {
		err = d.buildOnParent(ctx, src, parent, patches[len(own):], key, dir)
	} else {
		err = d.build(ctx, src, frag, patches, key, dir)
	}
	if err != nil {
		return nil, err
	}
	return d.ready(dir)
}

// parentBuild is the cached build of the kernel without the user's
// patches, which a build with them starts from; "" when there are no user
// patches or no such build.
func (d SourceBuild) parentBuild(version string, own []patch, compiler string) string {
	if len(d.ExtraPatches) == 0 {
		return ""
	}
	dir := filepath.Join(d.CacheDir, d.dirPrefix()+d.key(version, own, compiler))
	if !usableTree(dir, "building it again", sealBuilt, d.Log) {
		return ""
	}
	if _, err := d.ready(dir); err != nil {
		return ""
	}
	return dir
}

// dirPrefix starts the name of the build's cache folders: "debug-".
func (d SourceBuild) dirPrefix() string { return d.Desc.Name + "-" }

// fragmentPath names the fragment in messages, as the repository has it.
func (d SourceBuild) fragmentPath() string { return DescriptionsDir + "/" + d.Desc.Fragment }

// fragmentFile is the fragment's name in the build's staging folder.
func (d SourceBuild) fragmentFile() string { return d.Desc.Name + ".config" }

// configure are the commands that make the build's .config.
func (d SourceBuild) configure() [][]string {
	return [][]string{
		{"make", buildArch, d.Desc.Base},
		{"scripts/kconfig/merge_config.sh", "-m", ".config", "../" + d.fragmentFile()},
		{"make", buildArch, "olddefconfig"},
	}
}

// patches reads the description's patches, then the user's own: the
// order they are applied in.
func (d SourceBuild) patches() ([]patch, error) {
	var ps []patch
	for _, name := range d.Desc.Patches {
		text, err := descriptionFile(name)
		if err != nil {
			return nil, err
		}
		ps = append(ps, patch{Name: name, Text: text})
	}
	user, err := d.userPatches()
	if err != nil {
		return nil, err
	}
	return append(ps, user...), nil
}

// key hashes what the build depends on into a short cache key. A build
// without patches hashes no word of them, so that the debug kernel's key
// stayed what it was before kernels had patches. A user's patch is hashed
// by its base name and its text: the key does not depend on where the
// file lies, and two patches of one base name differ by their text.
func (d SourceBuild) key(version string, patches []patch, compiler string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\nrecipe %s\n", d.Desc.Source, version, recipeVersion)
	for _, c := range append(d.configure(), buildMake) {
		fmt.Fprintf(h, "%q\n", c)
	}
	fmt.Fprintf(h, "compiler %s\nfragment\n%s", compiler, d.Fragment)
	for _, p := range patches {
		fmt.Fprintf(h, "\npatch %s %d\n%s", p.Name, len(p.Text), p.Text)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// compiler is the first line of gcc --version: a kernel and the modules
// built against it must use the same compiler, so it is part of the key.
func (d SourceBuild) compiler(ctx context.Context) string {
	out, err := d.Log.Output(ctx, "", "gcc", "--version")
	if err != nil {
		return "unknown"
	}
	s, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(s)
}

// printURIs matches apt-get download --print-uris for package:
// 'http://…/linux-source-6.1_6.1.192-2_all.deb' linux-source-6.1_6.1.192-2_all.deb 139331676 SHA256:…
func printURIs(pkg string) *regexp.Regexp {
	return regexp.MustCompile(`'[^']+' (` + regexp.QuoteMeta(pkg) + `_([^_ ]+)_all\.deb) (\d+) `)
}

// resolve asks apt which version of the source package it would download.
func (d SourceBuild) resolve(ctx context.Context) (sourcePackage, error) {
	pkg := d.Desc.Source
	out, err := d.Log.Output(ctx, "", "apt-get", "download", "--print-uris", pkg)
	if errors.Is(err, exec.ErrNotFound) {
		return sourcePackage{}, verdict.SetupError("use your own kernel: PIDLAB_KERNEL=/path/bzImage PIDLAB_KDIR=/path/build",
			"apt-get not found: the %s kernel is built from Debian's %s package", d.Desc.Name, pkg)
	}
	m := printURIs(pkg).FindSubmatch(out)
	if err != nil || m == nil {
		return sourcePackage{}, hostdeps.AptFailed(verdict.SetupError("apt-get update   (as root, once; Debian bookworm sources are needed)",
			"apt does not know the package %s: its package lists are missing or not bookworm's", pkg))
	}
	version, err := url.PathUnescape(string(m[2])) // an epoch's colon is %3a
	if err != nil {
		version = string(m[2])
	}
	var size int64
	fmt.Sscan(string(m[3]), &size)
	return sourcePackage{Version: version, File: string(m[1]), Size: size}, nil
}

// The ready marker of a build holds its release and source version.
func (d SourceBuild) marker(release, version string) string {
	return fmt.Sprintf("release %s\nsource %s %s\n", release, d.Desc.Source, version)
}

func parseMarker(b []byte) (release, version string) {
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "release":
			release = f[1]
		case len(f) == 3 && f[0] == "source":
			version = f[2]
		}
	}
	return release, version
}

// sealBuilt seals a kernel build: the image's hash, and the size of every
// file a boot or a module build reads. The kernel's own sources and
// documentation are left out: they are two thirds of the debug kernel's
// 83,000 files, and checking them all took 0.4 s a run.
func sealBuilt(dir string) error {
	return cacheentry.SealTree(dir, unreadByModules, "linux/arch/x86/boot/bzImage")
}

// unreadByModules says which files of a kernel build no module build reads.
func unreadByModules(rel string) bool {
	if strings.HasPrefix(rel, "linux/Documentation/") {
		return true
	}
	switch filepath.Ext(rel) {
	case ".c", ".S", ".rst", ".txt", ".yaml", ".dts", ".dtsi", ".o", ".cmd":
		return !strings.HasPrefix(rel, "linux/scripts/")
	}
	return false
}

// ready returns the kernel in dir if its build finished.
func (d SourceBuild) ready(dir string) (*Kernel, error) {
	b, err := os.ReadFile(filepath.Join(dir, readyMarker))
	if err != nil {
		return nil, err
	}
	release, _ := parseMarker(b)
	if release == "" {
		return nil, fmt.Errorf("%s: no release in the ready marker", dir)
	}
	tree := filepath.Join(dir, "linux")
	return &Kernel{
		Name:    d.Desc.Name,
		Release: release,
		Image:   filepath.Join(tree, "arch", "x86", "boot", "bzImage"),
		KDIR:    tree,
	}, nil
}

// cachedFallback finds a finished build whose key matches the current
// fragment, recipe and compiler for the source version it was built from;
// the newest one when there are several.
func (d SourceBuild) cachedFallback(patches []patch, compiler string) (dir, version string) {
	markers, _ := filepath.Glob(filepath.Join(d.CacheDir, d.dirPrefix()+"*", readyMarker))
	sort.Slice(markers, func(i, j int) bool { return modTime(markers[i]).After(modTime(markers[j])) })
	for _, m := range markers {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		_, v := parseMarker(b)
		dir := filepath.Dir(m)
		if v != "" && filepath.Base(dir) == d.dirPrefix()+d.key(v, patches, compiler) {
			return dir, v
		}
	}
	return "", ""
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// build makes the kernel in a private folder next to dir and renames it
// into place, so an interrupted or concurrent build never leaves a
// half-made tree where a finished one is expected.
func (d SourceBuild) build(ctx context.Context, src sourcePackage, frag []Option, patches []patch, key, dir string) error {
	start := time.Now()
	d.Log.Step("building the %s kernel from %s %s (first time only: about 10 minutes on 2 cores)", d.Desc.Name, d.Desc.Source, src.Version)
	staging, err := d.staging(key)
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)

	tree, err := d.unpackSource(ctx, src, staging)
	if err != nil {
		return err
	}
	if err := d.applyPatches(ctx, tree, staging, src.Version, patches); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(staging, d.fragmentFile()), []byte(d.Fragment), 0o644); err != nil {
		return err
	}
	d.Log.Info("configuring: %s + %s/%s", d.Desc.Base, DescriptionsDir, d.Desc.Fragment)
	for _, c := range d.configure() {
		if _, err := d.Log.CombinedOutput(ctx, tree, nil, c[0], c[1:]...); err != nil {
			return verdict.Errorf(verdict.Setup, "configuring the %s kernel failed: %s", d.Desc.Name, commandDetail(err))
		}
	}
	config, err := os.ReadFile(filepath.Join(tree, ".config"))
	if err != nil {
		return err
	}
	if dropped := Dropped(frag, ParseConfig(string(config))); len(dropped) > 0 {
		kept := filepath.Join(d.CacheDir, d.dirPrefix()+key+".rejected.config")
		os.WriteFile(kept, config, 0o644)
		return droppedError(d.fragmentPath(), dropped, kept)
	}

	return d.finish(ctx, src, staging, patches, key, dir, start)
}

// buildOnParent builds the kernel with the user's patches from a copy of
// the cached build without them (parent): kbuild recompiles what they
// touch and links again, minutes instead of a whole build.
func (d SourceBuild) buildOnParent(ctx context.Context, src sourcePackage, parent string, user []patch, key, dir string) error {
	start := time.Now()
	d.Log.Step("building the %s kernel with your patches, from a copy of the cached one (%s)", d.Desc.Name, parent)
	staging, err := d.staging(key)
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	if err := d.trialApply(ctx, filepath.Join(parent, "linux"), staging, src.Version, user); err != nil {
		return err
	}
	d.Log.Info("copying the cached build (1.8 GB)")
	if _, err := d.Log.CombinedOutput(ctx, "", nil, "cp", "-a", "--reflink=auto", filepath.Join(parent, "linux"), staging); err != nil {
		return fmt.Errorf("copying %s: %s", parent, commandDetail(err))
	}
	tree := filepath.Join(staging, "linux")
	if err := d.rebuildObjtool(ctx, filepath.Join(parent, "linux"), tree); err != nil {
		return err
	}
	if err := d.applyPatches(ctx, tree, staging, src.Version, user); err != nil {
		return err
	}
	return d.finish(ctx, src, staging, user, key, dir, start)
}

// trialApply applies the user's patches to a copy of just the files they
// touch, so that one that does not apply says so at once, not after the
// tree's copy (a minute and more).
func (d SourceBuild) trialApply(ctx context.Context, parentTree, staging, version string, user []patch) error {
	trial := filepath.Join(staging, "trial")
	defer os.RemoveAll(trial)
	for name := range touchedFiles(user) {
		b, err := os.ReadFile(filepath.Join(parentTree, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // a file the patch makes, or one that is missing: patch says which
		}
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(trial, name)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(trial, name), b, 0o644); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(trial, 0o755); err != nil {
		return err
	}
	return d.applyPatchesSaying(ctx, trial, staging, version, user, "trying on the files it touches")
}

// rebuildObjtool makes the copy's objtool current without making every
// object stale. objtool's build records absolute paths, so kbuild builds
// it again in a copy at another path, and each object's .cmd file names
// objtool's binary as a prerequisite: the whole kernel would compile
// again (measured: 12 minutes instead of 16 s). So build it first, then
// give the files under tools/ the times the parent's have.
func (d SourceBuild) rebuildObjtool(ctx context.Context, parentTree, tree string) error {
	if _, err := os.Stat(filepath.Join(parentTree, "tools", "objtool", "objtool")); err != nil {
		return nil // a kernel without objtool
	}
	if _, err := d.Log.CombinedOutput(ctx, tree, nil, "make", buildArch, "tools/objtool"); err != nil {
		return verdict.Errorf(verdict.Setup, "building objtool in the copy of the %s kernel failed: %s", d.Desc.Name, commandDetail(err))
	}
	return filepath.WalkDir(filepath.Join(tree, "tools"), func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(tree, path)
		if err != nil {
			return err
		}
		was, err := os.Stat(filepath.Join(parentTree, rel))
		if err != nil {
			return nil // made by this build only
		}
		return os.Chtimes(path, was.ModTime(), was.ModTime())
	})
}

// staging makes the private folder a build is made in, next to where it
// will be kept.
func (d SourceBuild) staging(key string) (string, error) {
	if err := os.MkdirAll(d.CacheDir, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(d.CacheDir, "."+d.dirPrefix()+key+".tmp-")
}

// finish compiles the patched, configured tree in staging, seals it and
// renames it into place (dir).
func (d SourceBuild) finish(ctx context.Context, src sourcePackage, staging string, patches []patch, key, dir string, start time.Time) error {
	jobs := d.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	tree := filepath.Join(staging, "linux")
	logPath := filepath.Join(staging, "build.log")
	args := append(append([]string(nil), buildMake[1:]...), fmt.Sprintf("-j%d", jobs))
	if err := d.compile(ctx, tree, args, jobs, logPath); err != nil {
		failed := filepath.Join(d.CacheDir, d.dirPrefix()+key+".failed.log")
		os.Rename(logPath, failed)
		log, _ := os.ReadFile(failed)
		return compileFailed(d.Desc.Name, err, string(log), failed, patches)
	}
	release, err := os.ReadFile(filepath.Join(tree, "include", "config", "kernel.release"))
	if err != nil {
		return fmt.Errorf("the %s kernel built but has no release: %w", d.Desc.Name, err)
	}
	rel := strings.TrimSpace(string(release))
	if _, err := os.Stat(filepath.Join(tree, "arch", "x86", "boot", "bzImage")); err != nil {
		return fmt.Errorf("the %s kernel built but has no image: %w", d.Desc.Name, err)
	}
	if err := os.WriteFile(filepath.Join(staging, readyMarker), []byte(d.marker(rel, src.Version)), 0o644); err != nil {
		return err
	}
	if err := sealBuilt(staging); err != nil {
		return err
	}
	if _, err := d.ready(dir); err == nil {
		return nil // a concurrent run finished the same build first
	}
	os.RemoveAll(dir) // a half-made tree from an interrupted run
	if err := os.Rename(staging, dir); err != nil {
		if _, rerr := d.ready(dir); rerr == nil {
			return nil // a concurrent run finished the same build first
		}
		return err
	}
	d.Log.Info("%s kernel %s built in %s: %s", d.Desc.Name, rel, time.Since(start).Round(time.Second), dir)
	return nil
}

// unpackSource downloads the source package into staging and unpacks its
// tarball there, returning the tree (staging/linux).
func (d SourceBuild) unpackSource(ctx context.Context, src sourcePackage, staging string) (string, error) {
	pkg := d.Desc.Source
	d.Log.Info("downloading %s %s (%d MB)", pkg, src.Version, src.Size>>20)
	args := []string{"download"}
	if os.Geteuid() == 0 {
		// apt drops to the _apt user, which cannot write a private temp dir.
		args = append(args, "-o", "APT::Sandbox::User=root")
	}
	args = append(args, pkg+"="+src.Version)
	if _, err := d.Log.CombinedOutput(ctx, staging, nil, "apt-get", args...); err != nil {
		return "", hostdeps.AptFailed(verdict.SetupError("apt-get update, then run again", "downloading %s failed: %s", pkg, commandDetail(err)))
	}
	deb := filepath.Join(staging, src.File)
	unpacked := filepath.Join(staging, "pkg")
	d.Log.Info("unpacking the kernel source")
	if _, err := d.Log.CombinedOutput(ctx, "", nil, "dpkg-deb", "-x", deb, unpacked); err != nil {
		return "", verdict.SetupError("apt-get install dpkg", "unpacking %s: %s", src.File, commandDetail(err))
	}
	os.Remove(deb)
	tarball := filepath.Join(unpacked, "usr", "src", pkg+".tar.xz")
	if _, err := d.Log.CombinedOutput(ctx, staging, nil, "tar", "-xf", tarball); err != nil {
		return "", verdict.SetupError("apt-get install tar xz-utils", "unpacking %s: %s", filepath.Base(tarball), commandDetail(err))
	}
	os.RemoveAll(unpacked)
	tree := filepath.Join(staging, "linux")
	if err := os.Rename(filepath.Join(staging, pkg), tree); err != nil {
		return "", fmt.Errorf("the source package has no %s folder: %w", pkg, err)
	}
	return tree, nil
}

// compile runs the kernel build, writing everything make says to logPath
// and telling the person at the terminal how far it got.
func (d SourceBuild) compile(ctx context.Context, tree string, args []string, jobs int, logPath string) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, buildMake[0], args...)
	progress.KillGroupOnCancel(cmd)
	cmd.Dir = tree
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	d.Log.Debug("exec: %s", progress.Cmdline(cmd))
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &buildProgress{Kernel: d.Desc.Name, Expected: ccEstimate, Every: 30 * time.Second, Now: time.Now}
	p.start()
	d.Log.Info("compiling the %s kernel (make -j%d)", d.Desc.Name, jobs)
	sc := bufio.NewScanner(io.TeeReader(out, logFile))
	for sc.Scan() {
		if d.Log != nil && d.Log.Verbose {
			d.Log.Line("    | %s", sc.Text())
		} else if msg := p.Line(sc.Text()); msg != "" {
			d.Log.Info("%s", msg)
		}
	}
	io.Copy(logFile, out) // a line too long for the scanner
	return cmd.Wait()
}

// buildProgress turns kbuild's output into a line every tenth of the way
// or every Every, whichever comes first, and never more than one a line.
type buildProgress struct {
	Kernel   string // its name, for the messages
	Expected int    // CC lines a whole build prints, about
	Every    time.Duration
	Now      func() time.Time

	cc        int
	lastTenth int
	lastPrint time.Time
	last      string // the last kbuild line
}

func (p *buildProgress) start() { p.lastPrint = p.Now() }

var kbuildLine = regexp.MustCompile(`^  ([A-Z][A-Z0-9_]*(?: \[M\])?)\s+(\S.*)$`)

// Line takes one line of make's output and returns a progress message, or
// "" when it is not time for one.
func (p *buildProgress) Line(line string) string {
	m := kbuildLine.FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	p.last = strings.TrimSpace(m[1]) + " " + m[2]
	if strings.HasPrefix(m[1], "CC") {
		p.cc++
	}
	pct := 100 * p.cc / p.Expected
	if pct > 99 {
		pct = 99
	}
	now := p.Now()
	switch {
	case m[1] == "LD" && m[2] == "vmlinux.o":
		// Linking a KASAN and lockdep kernel takes minutes: say so.
	case pct/10 > p.lastTenth:
	case now.Sub(p.lastPrint) >= p.Every:
	default:
		return ""
	}
	p.lastTenth = pct / 10
	p.lastPrint = now
	if m[1] == "LD" && m[2] == "vmlinux.o" {
		return fmt.Sprintf("linking vmlinux (after CC %d)", p.cc)
	}
	if p.cc >= p.Expected {
		return fmt.Sprintf("compiling the %s kernel (CC %d, about done; now: %s)", p.Kernel, p.cc, p.last)
	}
	return fmt.Sprintf("compiling the %s kernel (CC %d/~%d, %d%%; now: %s)", p.Kernel, p.cc, p.Expected, pct, p.last)
}

// Option is one line of a config fragment: CONFIG_NAME=value, or
// "# CONFIG_NAME is not set", which is Value "n".
type Option struct {
	Name  string // with the CONFIG_ prefix
	Value string // y, m, n, a number or a quoted string, as .config writes it
	Line  int    // in the fragment
}

func (o Option) String() string {
	if o.Value == "n" {
		return "# " + o.Name + " is not set"
	}
	return o.Name + "=" + o.Value
}

var (
	setLine   = regexp.MustCompile(`^(CONFIG_[A-Za-z0-9_]+)=(.*)$`)
	unsetLine = regexp.MustCompile(`^# (CONFIG_[A-Za-z0-9_]+) is not set$`)
)

// ParseFragment reads a config fragment: CONFIG_X=v and "# CONFIG_X is not
// set" lines, comments and blank lines. Anything else, or an option given
// twice, is an error naming the line.
func ParseFragment(file, text string) ([]Option, error) {
	var opts []Option
	seen := map[string]int{}
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		var o Option
		if m := setLine.FindStringSubmatch(line); m != nil {
			o = Option{Name: m[1], Value: m[2], Line: i + 1}
		} else if m := unsetLine.FindStringSubmatch(line); m != nil {
			o = Option{Name: m[1], Value: "n", Line: i + 1}
		} else if line == "" || strings.HasPrefix(line, "#") {
			continue
		} else {
			return nil, verdict.Errorf(verdict.Setup, "%s:%d: not a config line: %q", file, i+1, line)
		}
		if o.Value == "" {
			return nil, verdict.Errorf(verdict.Setup, "%s:%d: %s has no value", file, i+1, o.Name)
		}
		if prev, ok := seen[o.Name]; ok {
			return nil, verdict.Errorf(verdict.Setup, "%s:%d: %s is already set on line %d", file, i+1, o.Name, prev)
		}
		seen[o.Name] = i + 1
		opts = append(opts, o)
	}
	return opts, nil
}

// ParseConfig reads a .config into name -> value; an option written as
// "is not set" has value "n", one not written at all is absent.
func ParseConfig(text string) map[string]string {
	cfg := map[string]string{}
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if m := setLine.FindStringSubmatch(line); m != nil {
			cfg[m[1]] = m[2]
		} else if m := unsetLine.FindStringSubmatch(line); m != nil {
			cfg[m[1]] = "n"
		}
	}
	return cfg
}

// DroppedOption is a fragment option that .config does not have as asked.
type DroppedOption struct {
	Option
	Got string // the value in .config; "" when .config does not have it at all
}

func (d DroppedOption) String() string {
	switch d.Got {
	case "":
		return fmt.Sprintf("%s (line %d): not in .config (a dependency is off)", d.Option, d.Line)
	case "n":
		return fmt.Sprintf("%s (line %d): not set in .config", d.Option, d.Line)
	}
	return fmt.Sprintf("%s (line %d): .config has %s=%s", d.Option, d.Line, d.Name, d.Got)
}

// Dropped lists the options of frag that config does not have as asked:
// Kconfig silently drops an option whose dependencies are missing. An
// option asked to be off is satisfied by its absence.
func Dropped(frag []Option, config map[string]string) []DroppedOption {
	var dropped []DroppedOption
	for _, o := range frag {
		got, ok := config[o.Name]
		if got == o.Value || (o.Value == "n" && !ok) {
			continue
		}
		dropped = append(dropped, DroppedOption{Option: o, Got: got})
	}
	return dropped
}

func droppedError(file string, dropped []DroppedOption, kept string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Kconfig dropped %d option(s) of %s, usually because an option they depend on is off:", len(dropped), file)
	for _, d := range dropped {
		b.WriteString("\n    " + d.String())
	}
	fmt.Fprintf(&b, "\nthe resulting .config is kept in %s", kept)
	return &verdict.Error{
		Code:   verdict.Setup,
		Reason: b.String(),
		Fix:    "add what each option depends on to " + file + " (its Kconfig entry's \"depends on\" line; `make menuconfig`, then / and the name, shows it)",
	}
}
