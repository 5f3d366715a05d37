// Package guestbin builds the programs that run in the guest besides the
// runner: the static Go test binaries and the C target helpers. Go's build
// cache makes a rebuild of unchanged tests cheap; C helpers are cached by
// the hash of their source.
package guestbin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// GuestTag is the build tag of test files that may only run in the guest.
const GuestTag = "pidlab_guest"

// TestBinary compiles the tests of pkg (relative to repo, e.g.
// "./userspace/conformance") into a static binary (CGO_ENABLED=0: the guest
// has no libc) under outDir.
func TestBinary(ctx context.Context, repo, pkg, outDir string, log *progress.Log) (string, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(outDir, filepath.Base(pkg)+".test")
	// Built aside and renamed: runs in parallel share outDir.
	tmp, err := tempPath(out)
	if err != nil {
		return "", err
	}
	if _, err := log.CombinedOutput(ctx, repo, []string{"CGO_ENABLED=0"}, "go", "test", "-c", "-tags", GuestTag, "-o", tmp, pkg); err != nil {
		os.Remove(tmp)
		return "", verdict.Errorf(verdict.BuildFailed, "the guest tests did not compile: %v", detail(err))
	}
	return out, os.Rename(tmp, out)
}

// ListTests names the top-level tests a test binary will run with
// -test.run=run ("" for all), in order. Listing runs no test, so the guest
// binary runs on the host for it.
func ListTests(ctx context.Context, bin, run string, log *progress.Log) ([]string, error) {
	if run == "" {
		run = "."
	}
	out, err := log.Output(ctx, "", bin, "-test.list", run)
	if err != nil {
		return nil, fmt.Errorf("listing the tests of %s: %v", bin, detail(err))
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Test") {
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
// build of the same source.
func CProgram(ctx context.Context, src, outDir string, log *progress.Log) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	name := strings.TrimSuffix(filepath.Base(src), ".c")
	out := filepath.Join(outDir, name+"-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := tempPath(out)
	if err != nil {
		return "", err
	}
	if _, err := log.CombinedOutput(ctx, "", nil, "gcc", "-static", "-O2", "-Wall", "-Wextra", "-pthread", "-o", tmp, src); err != nil {
		os.Remove(tmp)
		return "", verdict.Errorf(verdict.BuildFailed, "the guest helper %s did not build: %v", src, detail(err))
	}
	return out, os.Rename(tmp, out)
}

func detail(err error) string {
	if ce, ok := err.(*progress.CommandError); ok {
		return fmt.Sprintf("%s (%v)\n%s", ce.Cmdline, ce.Err, strings.TrimSpace(ce.Output))
	}
	return err.Error()
}
