// Package initramfs builds the guest's root file system with u-root's
// packages: u-root's init, pidlab's guest runner as its uinit, and the
// files a run needs (test binaries, the .ko, helper programs, the
// manifest). Archives are cached by the hash of everything in them.
package initramfs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/vmtest/internal/cacheentry"
	"github.com/pidlab/pidlab/vmtest/internal/contenthash"
	"github.com/pidlab/pidlab/vmtest/progress"
)

// The Go commands every pidlab initramfs holds.
const (
	InitCmd   = "github.com/u-root/u-root/cmds/core/init"
	RunnerCmd = "github.com/pidlab/pidlab/userspace/cmd/pidlab-guest"
)

// File is a host file placed in the guest.
type File struct {
	Host  string
	Guest string // path in the guest, relative to /
}

// Spec is what goes into an initramfs.
type Spec struct {
	RepoDir  string // pidlab's Go module root: the Go commands build there
	Files    []File
	Manifest guestapi.Manifest
	Commands []string // more Go commands (package paths), built into one u-root busybox
	Tags     []string // Go build tags for all the commands
}

// Build returns the path of the archive for spec, building it unless an
// archive with the same content is cached.
func Build(ctx context.Context, spec Spec, cacheDir string, log *progress.Log) (path string, cached bool, err error) {
	manifest, err := json.MarshalIndent(spec.Manifest, "", "  ")
	if err != nil {
		return "", false, err
	}
	key, err := contentKey(spec, manifest)
	if err != nil {
		return "", false, err
	}
	dir := filepath.Join(cacheDir, "initramfs")
	path = filepath.Join(dir, key+".cpio")
	if cacheentry.Reuse(path, "building it again", log.Info) {
		log.Debug("initramfs: reusing %s", path)
		return path, true, nil
	}
	if len(spec.Files) == 0 {
		log.Step("building the guest's base initramfs (u-root init and the guest runner; once for this runner and Go toolchain)")
	} else {
		log.Step("building initramfs (u-root init, guest runner, %d files)", len(spec.Files))
	}
	if len(spec.Commands) > 0 {
		log.Info("and a busybox of %d u-root commands: a minute or two, once", len(spec.Commands))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, err
	}
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(tmp)
	manifestPath := filepath.Join(tmp, "manifest.json")
	if err := os.WriteFile(manifestPath, manifest, 0o644); err != nil {
		return "", false, err
	}
	out := filepath.Join(tmp, "initramfs.cpio")
	if err := createOrStop(ctx, spec, manifestPath, tmp, out, log); err != nil {
		return "", false, fmt.Errorf("building the initramfs with u-root: %w", err)
	}
	if err := cacheentry.SealFile(out); err != nil {
		return "", false, err
	}
	return path, false, cacheentry.Rename(out, path)
}

// createOrStop runs create until it ends or ctx is done. u-root's build
// takes no context: on a Ctrl-C it is left to end with the process, whose
// exit is near, rather than waited for (a minute or two for a busybox).
func createOrStop(ctx context.Context, spec Spec, manifestPath, tmp, out string, log *progress.Log) error {
	done := make(chan error, 1)
	go func() { done <- create(spec, manifestPath, tmp, out, log) }()
	select {
	case err := <-done:
		if err == nil {
			err = ctx.Err()
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func create(spec Spec, manifestPath, tmp, out string, log *progress.Log) error {
	files := []string{manifestPath + ":" + trimSlash(guestapi.ManifestPath)}
	for _, f := range spec.Files {
		files = append(files, f.Host+":"+trimSlash(f.Guest))
	}
	env := golang.Default(golang.DisableCGO(), golang.WithGOOS("linux"), golang.WithGOARCH(runtime.GOARCH),
		golang.WithWorkingDir(spec.RepoDir), golang.WithBuildTag(spec.Tags...))
	level := slog.LevelWarn
	if log != nil && log.Verbose {
		level = slog.LevelDebug
	}
	opts := []uimage.Modifier{
		uimage.WithReplaceEnv(env),
		uimage.WithBaseArchive(uimage.DefaultRamfs()),
		uimage.WithBinaryCommands(InitCmd, RunnerCmd),
		uimage.WithInit("init"),
		uimage.WithUinit("pidlab-guest"),
		uimage.WithFiles(files...),
		uimage.WithSkipLDD(), // every file is static
		uimage.WithTempDir(tmp),
		uimage.WithCPIOOutput(out),
	}
	if len(spec.Commands) > 0 {
		// One binary: mkuimage builds each command from scratch (go build -a).
		opts = append(opts, uimage.WithBusyboxCommands(spec.Commands...))
	}
	return uimage.Create(llog.New(level, func(format string, v ...any) { log.Debug("u-root: "+format, v...) }), opts...)
}

// contentKey hashes everything the archive is made from: the files, the
// manifest, the Go toolchain and pidlab's module (which pins u-root and
// holds the runner's source).
func contentKey(spec Spec, manifest []byte) (string, error) {
	k := contenthash.New()
	k.Printf("layout 2\ngo %s %s\nmanifest %s\n", runtime.Version(), runtime.GOARCH, manifest)
	for _, c := range spec.Commands {
		k.Printf("command %s\n", c)
	}
	for _, t := range spec.Tags {
		k.Printf("tag %s\n", t)
	}
	inputs, err := runnerSources(spec.RepoDir)
	if err != nil {
		return "", err
	}
	for _, f := range spec.Files {
		inputs = append(inputs, f.Host)
		k.Printf("guest %s\n", f.Guest)
	}
	for _, p := range inputs {
		if err := k.File(filepath.Base(p), p); err != nil {
			return "", err
		}
	}
	return k.String(), nil
}

// runnerSources are the files the runner's build depends on.
func runnerSources(repo string) ([]string, error) {
	var srcs []string
	for _, pattern := range []string{"go.mod", "go.sum", "userspace/guest/*.go", "userspace/guestapi/*.go", "userspace/cmd/pidlab-guest/*.go"} {
		m, err := filepath.Glob(filepath.Join(repo, pattern))
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, m...)
	}
	if len(srcs) < 3 {
		return nil, fmt.Errorf("%s is not pidlab's source tree (no go.mod or runner source)", repo)
	}
	sort.Strings(srcs)
	return srcs, nil
}

func trimSlash(p string) string {
	for len(p) > 0 && p[0] == '/' {
		p = p[1:]
	}
	return p
}
