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
// kernel (KASAN, lockdep, kmemleak …), built from Debian's source package.
const DebugName = "debug"

// DebugSourcePackage is the Debian package the debug kernel is built from.
const DebugSourcePackage = "linux-source-6.1"

// DebugFragment is the config fragment merged onto tinyconfig: debug.config
// in this folder.
//
//go:embed debug.config
var DebugFragment string

// debugFragmentPath names the fragment in messages, as the repo has it.
const debugFragmentPath = "vmtest/kernel/debug.config"

// The build, as data: the cache key hashes these, so a changed step builds
// a new kernel. debugRecipeVersion covers what is not a command here (how
// the source is unpacked, what is kept); bump it when that changes.
const debugRecipeVersion = "1"

var (
	debugArch      = "ARCH=x86_64" // tinyconfig is 32-bit with the default ARCH=x86
	debugConfigure = [][]string{
		{"make", debugArch, "tinyconfig"},
		{"scripts/kconfig/merge_config.sh", "-m", ".config", "../debug.config"},
		{"make", debugArch, "olddefconfig"},
	}
	// debugMake builds vmlinux, bzImage and what modules_prepare makes;
	// -j is added at run time and is not part of the key.
	debugMake = []string{"make", debugArch, "KBUILD_BUILD_USER=pidlab", "KBUILD_BUILD_HOST=pidlab"}
)

// debugCCEstimate is how many "CC" lines the build printed when measured;
// progress shows it as "CC n/~N" and caps the percentage below 100.
const debugCCEstimate = 1180

// Debug provisions pidlab's debug kernel: Debian's linux-source-6.1,
// tinyconfig plus DebugFragment, built once into the cache.
type Debug struct {
	CacheDir string // kernels live in CacheDir/debug-<key>
	Log      *progress.Log
	Jobs     int                // make -j; 0 for the number of CPUs
	Fragment string             // the config fragment; empty for DebugFragment
	Lists    *hostdeps.AptLists // refreshes stale package lists as root; nil for hostdeps.Lists
}

// debugDirPrefix starts the name of a debug build's cache folder.
const debugDirPrefix = "debug-"

// debugSource is one version of the source package, as apt offers it.
type debugSource struct {
	Version string // Debian version, e.g. 6.1.192-2
	File    string // the .deb's name
	Size    int64
}

// Provision returns the debug kernel, building it when the cache has none
// for this source version, fragment, recipe and compiler. Without apt
// metadata it falls back to a cached build of the same fragment and recipe.
// When apt fails to resolve or download the source, root refreshes the
// lists and starts over (the fresh lists may name another version).
func (d Debug) Provision(ctx context.Context) (*Kernel, error) {
	var k *Kernel
	err := aptLists(d.Lists).Retry(ctx, d.Log, func() (err error) {
		k, err = d.provision(ctx)
		return err
	})
	return k, err
}

// provision is one attempt of Provision.
func (d Debug) provision(ctx context.Context) (*Kernel, error) {
	if d.Fragment == "" {
		d.Fragment = DebugFragment
	}
	frag, err := ParseFragment(d.Fragment)
	if err != nil {
		return nil, err
	}
	cc := d.compiler(ctx)
	src, resolveErr := d.resolve(ctx)
	var key string
	if resolveErr != nil {
		dir, version := d.cachedFallback(cc)
		if dir == "" {
			return nil, resolveErr
		}
		d.Log.Info("apt cannot resolve %s (%v); using the debug kernel built from %s", DebugSourcePackage, firstLine(resolveErr), version)
		key = strings.TrimPrefix(filepath.Base(dir), debugDirPrefix)
	} else {
		key = debugKey(src.Version, d.Fragment, cc)
	}
	dir := filepath.Join(d.CacheDir, debugDirPrefix+key)
	if usableTree(dir, "building it again", sealDebug, d.Log) {
		if k, err := readyDebug(dir); err == nil {
			d.Log.Debug("debug kernel: reusing %s", dir)
			return k, nil
		}
	}
	if resolveErr != nil {
		// The fallback build was damaged and is gone; without apt there is
		// no source to build another from.
		return nil, resolveErr
	}
	if err := d.build(ctx, src, frag, key, dir); err != nil {
		return nil, err
	}
	return readyDebug(dir)
}

// debugKey hashes what the build depends on into a short cache key.
func debugKey(version, fragment, compiler string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\nrecipe %s\n", DebugSourcePackage, version, debugRecipeVersion)
	steps := append(append([][]string(nil), debugConfigure...), debugMake)
	for _, c := range steps {
		fmt.Fprintf(h, "%q\n", c)
	}
	fmt.Fprintf(h, "compiler %s\nfragment\n%s", compiler, fragment)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// compiler is the first line of gcc --version: a kernel and the modules
// built against it must use the same compiler, so it is part of the key.
func (d Debug) compiler(ctx context.Context) string {
	out, err := d.Log.Output(ctx, "", "gcc", "--version")
	if err != nil {
		return "unknown"
	}
	s, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(s)
}

// printURIs matches apt-get download --print-uris:
// 'http://…/linux-source-6.1_6.1.192-2_all.deb' linux-source-6.1_6.1.192-2_all.deb 139331676 SHA256:…
var printURIs = regexp.MustCompile(`'[^']+' (` + regexp.QuoteMeta(DebugSourcePackage) + `_([^_ ]+)_all\.deb) (\d+) `)

// resolve asks apt which version of the source package it would download.
func (d Debug) resolve(ctx context.Context) (debugSource, error) {
	out, err := d.Log.Output(ctx, "", "apt-get", "download", "--print-uris", DebugSourcePackage)
	if errors.Is(err, exec.ErrNotFound) {
		return debugSource{}, verdict.SetupError("use your own kernel: PIDLAB_KERNEL=/path/bzImage PIDLAB_KDIR=/path/build",
			"apt-get not found: the debug kernel is built from Debian's %s package", DebugSourcePackage)
	}
	m := printURIs.FindSubmatch(out)
	if err != nil || m == nil {
		return debugSource{}, hostdeps.AptFailed(verdict.SetupError("apt-get update   (as root, once; Debian bookworm sources are needed)",
			"apt does not know the package %s: its package lists are missing or not bookworm's", DebugSourcePackage))
	}
	version, err := url.PathUnescape(string(m[2])) // an epoch's colon is %3a
	if err != nil {
		version = string(m[2])
	}
	var size int64
	fmt.Sscan(string(m[3]), &size)
	return debugSource{Version: version, File: string(m[1]), Size: size}, nil
}

// The ready marker of a debug build holds its release and source version.
func debugMarker(release, version string) string {
	return fmt.Sprintf("release %s\nsource %s %s\n", release, DebugSourcePackage, version)
}

func parseDebugMarker(b []byte) (release, version string) {
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

// sealDebug seals a debug kernel build: the image's hash, and the size of
// every file a boot or a module build reads. The kernel's own sources and
// documentation are left out: they are two thirds of its 83,000 files, and
// checking them all took 0.4 s a run.
func sealDebug(dir string) error {
	return cacheentry.SealTree(dir, debugUnread, "linux/arch/x86/boot/bzImage")
}

// debugUnread says which files of a debug build no module build reads.
func debugUnread(rel string) bool {
	if strings.HasPrefix(rel, "linux/Documentation/") {
		return true
	}
	switch filepath.Ext(rel) {
	case ".c", ".S", ".rst", ".txt", ".yaml", ".dts", ".dtsi", ".o", ".cmd":
		return !strings.HasPrefix(rel, "linux/scripts/")
	}
	return false
}

// readyDebug returns the kernel in dir if its build finished.
func readyDebug(dir string) (*Kernel, error) {
	b, err := os.ReadFile(filepath.Join(dir, readyMarker))
	if err != nil {
		return nil, err
	}
	release, _ := parseDebugMarker(b)
	if release == "" {
		return nil, fmt.Errorf("%s: no release in the ready marker", dir)
	}
	tree := filepath.Join(dir, "linux")
	return &Kernel{
		Name:    DebugName,
		Release: release,
		Image:   filepath.Join(tree, "arch", "x86", "boot", "bzImage"),
		KDIR:    tree,
	}, nil
}

// cachedFallback finds a finished build whose key matches the current
// fragment, recipe and compiler for the source version it was built from;
// the newest one when there are several.
func (d Debug) cachedFallback(compiler string) (dir, version string) {
	markers, _ := filepath.Glob(filepath.Join(d.CacheDir, debugDirPrefix+"*", readyMarker))
	sort.Slice(markers, func(i, j int) bool { return modTime(markers[i]).After(modTime(markers[j])) })
	for _, m := range markers {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		_, v := parseDebugMarker(b)
		dir := filepath.Dir(m)
		if v != "" && filepath.Base(dir) == debugDirPrefix+debugKey(v, d.Fragment, compiler) {
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
func (d Debug) build(ctx context.Context, src debugSource, frag []Option, key, dir string) error {
	start := time.Now()
	jobs := d.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	d.Log.Step("building the debug kernel from %s %s (first time only: about 10 minutes on 2 cores)", DebugSourcePackage, src.Version)
	if err := os.MkdirAll(d.CacheDir, 0o755); err != nil {
		return err
	}
	staging, err := os.MkdirTemp(d.CacheDir, "."+debugDirPrefix+key+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)

	tree, err := d.unpackSource(ctx, src, staging)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(staging, "debug.config"), []byte(d.Fragment), 0o644); err != nil {
		return err
	}
	d.Log.Info("configuring: tinyconfig + %s", debugFragmentPath)
	for _, c := range debugConfigure {
		if _, err := d.Log.CombinedOutput(ctx, tree, nil, c[0], c[1:]...); err != nil {
			return verdict.Errorf(verdict.Setup, "configuring the debug kernel failed: %s", commandDetail(err))
		}
	}
	config, err := os.ReadFile(filepath.Join(tree, ".config"))
	if err != nil {
		return err
	}
	if dropped := Dropped(frag, ParseConfig(string(config))); len(dropped) > 0 {
		kept := filepath.Join(d.CacheDir, debugDirPrefix+key+".rejected.config")
		os.WriteFile(kept, config, 0o644)
		return droppedError(dropped, kept)
	}

	logPath := filepath.Join(staging, "build.log")
	args := append(append([]string(nil), debugMake[1:]...), fmt.Sprintf("-j%d", jobs))
	if err := d.compile(ctx, tree, args, jobs, logPath); err != nil {
		failed := filepath.Join(d.CacheDir, debugDirPrefix+key+".failed.log")
		os.Rename(logPath, failed)
		return verdict.Errorf(verdict.Setup, "building the debug kernel failed: %v\n%s\nfull log: %s", err, tailFile(failed, 30), failed)
	}
	release, err := os.ReadFile(filepath.Join(tree, "include", "config", "kernel.release"))
	if err != nil {
		return fmt.Errorf("the debug kernel built but has no release: %w", err)
	}
	rel := strings.TrimSpace(string(release))
	if _, err := os.Stat(filepath.Join(tree, "arch", "x86", "boot", "bzImage")); err != nil {
		return fmt.Errorf("the debug kernel built but has no image: %w", err)
	}
	if err := os.WriteFile(filepath.Join(staging, readyMarker), []byte(debugMarker(rel, src.Version)), 0o644); err != nil {
		return err
	}
	if err := sealDebug(staging); err != nil {
		return err
	}
	if _, err := readyDebug(dir); err == nil {
		return nil // a concurrent run finished the same build first
	}
	os.RemoveAll(dir) // a half-made tree from an interrupted run
	if err := os.Rename(staging, dir); err != nil {
		if _, rerr := readyDebug(dir); rerr == nil {
			return nil // a concurrent run finished the same build first
		}
		return err
	}
	d.Log.Info("debug kernel %s built in %s: %s", rel, time.Since(start).Round(time.Second), dir)
	return nil
}

// unpackSource downloads the source package into staging and unpacks its
// tarball there, returning the tree (staging/linux).
func (d Debug) unpackSource(ctx context.Context, src debugSource, staging string) (string, error) {
	d.Log.Info("downloading %s %s (%d MB)", DebugSourcePackage, src.Version, src.Size>>20)
	args := []string{"download"}
	if os.Geteuid() == 0 {
		// apt drops to the _apt user, which cannot write a private temp dir.
		args = append(args, "-o", "APT::Sandbox::User=root")
	}
	args = append(args, DebugSourcePackage+"="+src.Version)
	if _, err := d.Log.CombinedOutput(ctx, staging, nil, "apt-get", args...); err != nil {
		return "", hostdeps.AptFailed(verdict.SetupError("apt-get update, then run again", "downloading %s failed: %s", DebugSourcePackage, commandDetail(err)))
	}
	deb := filepath.Join(staging, src.File)
	pkg := filepath.Join(staging, "pkg")
	d.Log.Info("unpacking the kernel source")
	if _, err := d.Log.CombinedOutput(ctx, "", nil, "dpkg-deb", "-x", deb, pkg); err != nil {
		return "", verdict.SetupError("apt-get install dpkg", "unpacking %s: %s", src.File, commandDetail(err))
	}
	os.Remove(deb)
	tarball := filepath.Join(pkg, "usr", "src", DebugSourcePackage+".tar.xz")
	if _, err := d.Log.CombinedOutput(ctx, staging, nil, "tar", "-xf", tarball); err != nil {
		return "", verdict.SetupError("apt-get install tar xz-utils", "unpacking %s: %s", filepath.Base(tarball), commandDetail(err))
	}
	os.RemoveAll(pkg)
	tree := filepath.Join(staging, "linux")
	if err := os.Rename(filepath.Join(staging, DebugSourcePackage), tree); err != nil {
		return "", fmt.Errorf("the source package has no %s folder: %w", DebugSourcePackage, err)
	}
	return tree, nil
}

// compile runs the kernel build, writing everything make says to logPath
// and telling the person at the terminal how far it got.
func (d Debug) compile(ctx context.Context, tree string, args []string, jobs int, logPath string) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, debugMake[0], args...)
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
	p := &buildProgress{Expected: debugCCEstimate, Every: 30 * time.Second, Now: time.Now}
	p.start()
	d.Log.Info("compiling the debug kernel (make -j%d)", jobs)
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
	Expected int // CC lines a whole build prints, about
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
		return fmt.Sprintf("compiling the debug kernel (CC %d, about done; now: %s)", p.cc, p.last)
	}
	return fmt.Sprintf("compiling the debug kernel (CC %d/~%d, %d%%; now: %s)", p.cc, p.Expected, pct, p.last)
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
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
func ParseFragment(text string) ([]Option, error) {
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
			return nil, verdict.Errorf(verdict.Setup, "%s:%d: not a config line: %q", debugFragmentPath, i+1, line)
		}
		if o.Value == "" {
			return nil, verdict.Errorf(verdict.Setup, "%s:%d: %s has no value", debugFragmentPath, i+1, o.Name)
		}
		if prev, ok := seen[o.Name]; ok {
			return nil, verdict.Errorf(verdict.Setup, "%s:%d: %s is already set on line %d", debugFragmentPath, i+1, o.Name, prev)
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

func droppedError(dropped []DroppedOption, kept string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Kconfig dropped %d option(s) of %s, usually because an option they depend on is off:", len(dropped), debugFragmentPath)
	for _, d := range dropped {
		b.WriteString("\n    " + d.String())
	}
	fmt.Fprintf(&b, "\nthe resulting .config is kept in %s", kept)
	return &verdict.Error{
		Code:   verdict.Setup,
		Reason: b.String(),
		Fix:    "add what each option depends on to " + debugFragmentPath + " (its Kconfig entry's \"depends on\" line; `make menuconfig`, then / and the name, shows it)",
	}
}
