// Package guestbin builds the programs that run in the guest besides the
// runner: the static Go test binaries and the C target helpers. Go's build
// cache makes a rebuild of unchanged tests cheap, and each binary is kept
// under a name that hashes its bytes; C helpers are cached by the hash of
// their source and flags. Every file is sealed and checked before reuse.
package guestbin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/pidlab/pidlab/vmtest/internal/cacheentry"
	"github.com/pidlab/pidlab/vmtest/internal/contenthash"
	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// GuestTag is the build tag of test files that may only run in the guest.
const GuestTag = "pidlab_guest"

// TestBinary compiles the tests of pkg (relative to repo, e.g.
// "./userspace/conformance") into a static binary (CGO_ENABLED=0: the guest
// has no libc) under outDir, named by its own content: checkouts at other
// versions share outDir without ever running each other's tests.
func TestBinary(ctx context.Context, repo, pkg, outDir string, log *progress.Log) (string, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := tempPath(filepath.Join(outDir, filepath.Base(pkg)+".test"))
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	if _, err := log.CombinedOutput(ctx, repo, []string{"CGO_ENABLED=0"}, "go", "test", "-c", "-tags", GuestTag, "-o", tmp, pkg); err != nil {
		return "", verdict.Errorf(verdict.BuildFailed, "the guest tests did not compile: %v", detail(err))
	}
	return addByContent(tmp, filepath.Join(outDir, filepath.Base(pkg)), ".test", log)
}

// addByContent moves the file at tmp into the cache as stem-<hash>suffix,
// sealed, unless an intact copy of the same bytes is there already (then
// tmp is removed).
func addByContent(tmp, stem, suffix string, log *progress.Log) (string, error) {
	sum, _, err := cacheentry.Hash(tmp)
	if err != nil {
		return "", err
	}
	out := stem + "-" + sum[:16] + suffix
	if cacheentry.Reuse(out, "replacing it", log.Info) {
		os.Remove(tmp)
		return out, nil
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := cacheentry.SealFile(tmp); err != nil {
		return "", err
	}
	return out, cacheentry.Rename(tmp, out)
}

// What ListTests lists: the names of top-level tests or of benchmarks
// begin with it.
const (
	Tests      = "Test"
	Benchmarks = "Benchmark"
)

// ListTests names the top-level tests or benchmarks (kind) of a test
// binary that match pattern ("" for all), in order. Listing runs no test,
// so the guest binary runs on the host for it.
func ListTests(ctx context.Context, bin, pattern, kind string, log *progress.Log) ([]string, error) {
	if pattern == "" {
		pattern = "."
	}
	out, err := log.Output(ctx, "", bin, "-test.list", pattern)
	if err != nil {
		return nil, fmt.Errorf("listing the tests of %s: %v", bin, detail(err))
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, kind) {
			names = append(names, l)
		}
	}
	return names, nil
}

// tempPath names a fresh file beside path.
func tempPath(path string) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return "", err
	}
	f.Close()
	return f.Name(), nil
}

// CProgram compiles a one-file C program statically, reusing an earlier
// build of the same source, the same local headers and the same flags.
func CProgram(ctx context.Context, src, outDir string, log *progress.Log) (string, error) {
	k := contenthash.New()
	k.Printf("gcc %q\nmode 0755\n", cFlags)
	if err := k.File(filepath.Base(src), src); err != nil {
		return "", err
	}
	headers, err := localHeaders(src)
	if err != nil {
		return "", err
	}
	for _, h := range headers {
		if err := k.File(h, filepath.Join(filepath.Dir(src), h)); err != nil {
			return "", fmt.Errorf("%s includes %q: %w", src, h, err)
		}
	}
	out := filepath.Join(outDir, strings.TrimSuffix(filepath.Base(src), ".c")+"-"+k.String())
	if cacheentry.Reuse(out, "building it again", log.Info) {
		return out, nil
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := tempPath(out)
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	if _, err := log.CombinedOutput(ctx, "", nil, "gcc", append(append([]string(nil), cFlags...), "-o", tmp, src)...); err != nil {
		return "", verdict.Errorf(verdict.BuildFailed, "the guest helper %s did not build: %v", src, detail(err))
	}
	// The linker keeps the temporary file's 0600 and adds x: 0711. A
	// program others cannot read runs undumpable (exec's would_dump()),
	// so a process of theirs could not read its own /proc entries.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := cacheentry.SealFile(tmp); err != nil {
		return "", err
	}
	return out, cacheentry.Rename(tmp, out)
}

// localInclude is a line #include "name": a header next to the source (a
// module's uapi header), which the build key must cover too.
var localInclude = regexp.MustCompile(`(?m)^[ \t]*#[ \t]*include[ \t]*"([^"]+)"`)

// localHeaders lists the headers src includes with quotes, as written.
func localHeaders(src string) ([]string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return nil, err
	}
	var headers []string
	for _, m := range localInclude.FindAllSubmatch(b, -1) {
		headers = append(headers, string(m[1]))
	}
	return headers, nil
}

// cFlags build the guest's C helpers: static, since the guest has no libc.
var cFlags = []string{"-static", "-O2", "-Wall", "-Wextra", "-pthread"}

func detail(err error) string {
	if ce, ok := err.(*progress.CommandError); ok {
		return fmt.Sprintf("%s (%v)\n%s", ce.Cmdline, ce.Err, strings.TrimSpace(ce.Output))
	}
	return err.Error()
}
