// Package kbuild builds an out-of-tree kernel module against a kernel's
// build tree, in a copy of its source so the source folder stays as it
// was, and caches the result by content.
package kbuild

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/pidlab/pidlab/vmtest/internal/cacheentry"
	"github.com/pidlab/pidlab/vmtest/internal/contenthash"
	"github.com/pidlab/pidlab/vmtest/kernel"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// Module is a built .ko.
type Module struct {
	Path     string // the .ko
	Name     string // as delete_module knows it
	Warnings string // compiler warnings, if any
	Cached   bool   // reused from an earlier build
	Source   string // the folder it was built from
}

// Relativize shows paths into the build copy, where __FILE__ points in
// a BUG() or WARN() report, as paths in the module's own folder. The copy
// was "<dir>.tmp-<n>/", renamed to the .ko's folder since.
func (m *Module) Relativize(s string) string {
	if m == nil || m.Source == "" || !strings.Contains(s, ".tmp-") {
		return s
	}
	copies := regexp.MustCompile(regexp.QuoteMeta(filepath.Dir(m.Path)) + `\.tmp-[0-9]+/`)
	return copies.ReplaceAllLiteralString(s, m.Source+"/")
}

// Build compiles the module in srcDir for k. A build with the same source
// and kernel as an earlier one is reused.
func Build(ctx context.Context, k *kernel.Kernel, srcDir, cacheDir string, log *progress.Log) (*Module, error) {
	files, err := sourceFiles(srcDir)
	if err != nil {
		return nil, verdict.Errorf(verdict.BuildFailed, "reading module source %s: %v", srcDir, err)
	}
	key, err := cacheKey(k, srcDir, files)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cacheDir, "modules", key)
	if m, err := find(dir); err == nil {
		if cacheentry.Reuse(m.Path, "building the module again", log.Info) {
			m.Cached, m.Source = true, srcDir
			log.Debug("module: reusing %s", m.Path)
			return m, nil
		}
		os.RemoveAll(dir)
	}
	log.Step("building module %s for %s", srcDir, k.Release)
	return build(ctx, k, srcDir, files, dir, log)
}

func build(ctx context.Context, k *kernel.Kernel, srcDir string, files []string, dir string, log *progress.Log) (*Module, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	// A private build folder: runs in parallel may build the same key.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := copyFiles(srcDir, tmp, files); err != nil {
		return nil, err
	}
	out, err := log.CombinedOutput(ctx, "", asciiMessages, "make", "-C", k.KDIR, "M="+tmp, "W=1", "modules")
	var ce *progress.CommandError
	if errors.As(err, &ce) {
		output := strings.TrimRight(relativize(ce.Output, tmp, srcDir), "\n")
		return nil, Failed(ce.Err, output)
	} else if err != nil {
		return nil, err
	}
	m, err := find(tmp)
	if err != nil {
		return nil, verdict.Errorf(verdict.BuildFailed, "make succeeded but %v:\n%s", err, out)
	}
	warned := warnings(relativize(string(out), tmp, srcDir))
	if err := cacheentry.SealFile(m.Path); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, ferr := find(dir); ferr != nil { // not a parallel run's finished build
			return nil, err
		}
	}
	m, err = find(dir)
	if err != nil {
		return nil, err
	}
	m.Warnings, m.Source = warned, srcDir
	return m, nil
}

// asciiMessages keeps gcc's quotes plain ASCII, so messages can be matched;
// the kernel's Makefile unexports LC_ALL, so the narrower variables are set.
var asciiMessages = []string{"LANG=C", "LC_CTYPE=C", "LC_MESSAGES=C"}

// find returns the one .ko in dir.
// Failed is the verdict on a build that failed with cause (make's exit
// status): the compiler's output and first error, and the hints for them.
func Failed(cause error, output string) *verdict.Error {
	return &verdict.Error{
		Code:   verdict.BuildFailed,
		Reason: fmt.Sprintf("the module did not build (%v):\n%s", cause, output),
		Hints:  Hints(output),
		Build:  &verdict.BuildFailure{Output: output, FirstError: firstError(output)},
	}
}

func find(dir string) (*Module, error) {
	kos, _ := filepath.Glob(filepath.Join(dir, "*.ko"))
	if len(kos) != 1 {
		return nil, fmt.Errorf("%d .ko files in %s, want one", len(kos), dir)
	}
	name := kernel.ModuleName(kos[0])
	return &Module{Path: kos[0], Name: name}, nil
}

// sourceFiles lists the files that make up a module source, skipping kbuild
// outputs and dot files, sorted so that the cache key is stable.
func sourceFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel != "." && strings.HasPrefix(d.Name(), ".") || d.IsDir() && d.Name() == "testdata" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && !isBuildOutput(d.Name()) {
			files = append(files, rel)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

func isBuildOutput(name string) bool {
	for _, suffix := range []string{".o", ".ko", ".mod", ".mod.c", ".symvers", ".order", ".a"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

func cacheKey(k *kernel.Kernel, srcDir string, files []string) (string, error) {
	key := contenthash.New()
	key.Printf("kernel %s %s\n", k.Release, k.KDIR)
	for _, f := range files {
		if err := key.File(f, filepath.Join(srcDir, f)); err != nil {
			return "", err
		}
	}
	return key.String(), nil
}

func copyFiles(src, dst string, files []string) error {
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return err
		}
		out := filepath.Join(dst, f)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(out, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// relativize shows paths in the build copy as paths in the user's source.
func relativize(out, buildDir, srcDir string) string {
	return strings.ReplaceAll(out, buildDir+"/", srcDir+"/")
}

func warnings(out string) string {
	var w []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "warning:") {
			w = append(w, line)
		}
	}
	return strings.Join(w, "\n")
}
