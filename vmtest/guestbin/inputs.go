package guestbin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pidlab/pidlab/vmtest/internal/cacheentry"
	"github.com/pidlab/pidlab/vmtest/internal/contenthash"
	"github.com/pidlab/pidlab/vmtest/progress"
)

// Inputs are what the guest test binaries of a run are built from, read
// with one go list for all of them. A test binary whose inputs did not
// change is reused without asking go test -c, which links it again every
// time (about a second a suite, most of a warm run's time outside the VM).
type Inputs struct {
	keys map[string]string // by package as asked ("./userspace/conformance")
}

// buildSettings are the environment variables that change what go test -c
// makes of the same files, besides the ones TestBinary sets.
var buildSettings = []string{"GOFLAGS", "GOEXPERIMENT", "GOOS", "GOARCH", "GOAMD64", "GOTOOLCHAIN", "GODEBUG"}

// listedPackage is what go list says of a package, as far as the key needs.
type listedPackage struct {
	ImportPath, Dir, Root string
	Standard              bool
	Module                *struct {
		Path, Version, Sum, GoMod string
		Main                      bool
		Replace                   *struct{ Path, Version, Dir string }
	}
	Deps                                      []string
	GoFiles, CgoFiles, CFiles, HFiles, SFiles []string
	EmbedFiles, TestGoFiles, XTestGoFiles     []string
	TestEmbedFiles, XTestEmbedFiles           []string
}

// ReadInputs lists the test binaries' inputs of pkgs (packages of the
// module at repo) with their dependencies: one go list. Inputs it cannot
// read are no error: those binaries are built as without it, and go test
// -c says what is wrong with them, as a build failure.
func ReadInputs(ctx context.Context, repo string, pkgs []string, log *progress.Log) *Inputs {
	in := &Inputs{keys: map[string]string{}}
	if len(pkgs) == 0 {
		return in
	}
	if err := in.read(ctx, repo, pkgs, log); err != nil {
		log.Debug("guest tests: %v; building them with go test -c", err)
	}
	return in
}

func (in *Inputs) read(ctx context.Context, repo string, pkgs []string, log *progress.Log) error {
	keys, err := readKeys(ctx, repo, pkgs, log)
	for pkg, key := range keys {
		in.keys[pkg] = key
	}
	return err
}

// readKeys is the key of each package's test binary, from one go list.
// It lists as TestBinary builds: with CGO_ENABLED=0 (files that only a
// build without cgo takes are inputs too).
func readKeys(ctx context.Context, repo string, pkgs []string, log *progress.Log) (map[string]string, error) {
	args := append([]string{"CGO_ENABLED=0", "go", "list", "-deps", "-test", "-tags", GuestTag,
		"-json=ImportPath,Dir,Root,Standard,Module,Deps," +
			"GoFiles,CgoFiles,CFiles,HFiles,SFiles,EmbedFiles,TestGoFiles,XTestGoFiles,TestEmbedFiles,XTestEmbedFiles"}, pkgs...)
	out, err := log.Output(ctx, repo, "env", args...)
	if err != nil {
		return nil, fmt.Errorf("listing their inputs: %v", detail(err))
	}
	listed, err := decodeList(out)
	if err != nil {
		return nil, err
	}
	keys := map[string]string{}
	for _, pkg := range pkgs {
		key, err := listed.key(filepath.Join(repo, pkg))
		if err != nil {
			return keys, fmt.Errorf("the inputs of %s: %w", pkg, err)
		}
		keys[pkg] = key
	}
	return keys, nil
}

// packages are go list's packages by import path.
type packages map[string]*listedPackage

func decodeList(out []byte) (packages, error) {
	all := packages{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return all, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading go list's output: %w", err)
		}
		all[p.ImportPath] = &p
	}
}

// key hashes what the test binary of the package in dir is built from:
// every file of its own module's packages (the test files too), the
// versions of the other modules, go.mod and go.sum, the Go release and the
// build settings.
func (all packages) key(dir string) (string, error) {
	var main *listedPackage
	for _, p := range all {
		if p.Dir == dir && strings.HasSuffix(p.ImportPath, ".test") {
			main = p
		}
	}
	if main == nil {
		return "", fmt.Errorf("go list names no test binary in %s", dir)
	}
	k := contenthash.New()
	k.Printf("guest test binary 1\ntags %s\nCGO_ENABLED=0\n", GuestTag)
	for _, name := range buildSettings {
		k.Printf("%s=%s\n", name, os.Getenv(name))
	}
	release := ""
	for _, path := range main.Deps {
		p, ok := all[path]
		switch {
		case !ok:
			return "", fmt.Errorf("go list did not list %s", path)
		case p.Standard:
			if release == "" {
				release = goRelease(p.Root)
				k.Printf("go %s\n", release)
			}
		case p.Module == nil:
			return "", fmt.Errorf("%s belongs to no module", path)
		case p.Module.Main:
			if err := hashPackageFiles(k, p); err != nil {
				return "", err
			}
			if err := hashModuleFiles(k, p.Module.GoMod); err != nil {
				return "", err
			}
		default:
			k.Printf("module %s %s %s\n", p.Module.Path, p.Module.Version, p.Module.Sum)
			if r := p.Module.Replace; r != nil {
				if r.Dir != "" && r.Version == "" {
					return "", fmt.Errorf("%s is replaced by the folder %s: not keyed", path, r.Dir) // its files would need hashing too
				}
				k.Printf("replaced by %s %s\n", r.Path, r.Version)
			}
		}
	}
	if release == "" {
		return "", errors.New("go list named no standard package: no Go release to key by")
	}
	return k.String(), nil
}

// goRelease is the Go release of the toolchain at root (its VERSION
// file's first line).
func goRelease(root string) string {
	b, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		return "unknown " + root
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return first
}

// hashPackageFiles adds a package's files, by name and content.
func hashPackageFiles(k *contenthash.Key, p *listedPackage) error {
	k.Printf("package %s\n", p.ImportPath)
	for _, list := range [][]string{p.GoFiles, p.CgoFiles, p.CFiles, p.HFiles, p.SFiles, p.EmbedFiles,
		p.TestGoFiles, p.XTestGoFiles, p.TestEmbedFiles, p.XTestEmbedFiles} {
		for _, name := range list {
			if err := k.File(name, filepath.Join(p.Dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// hashModuleFiles adds the main module's go.mod and go.sum.
func hashModuleFiles(k *contenthash.Key, goMod string) error {
	if err := k.File("go.mod", goMod); err != nil {
		return err
	}
	sum := filepath.Join(filepath.Dir(goMod), "go.sum")
	if _, err := os.Stat(sum); err != nil {
		return nil // a module without dependencies has none
	}
	return k.File("go.sum", sum)
}

// TestBinary is TestBinary of the package's inputs: the binary built last
// for the same inputs when the cache still has it intact, else a new one.
func (in *Inputs) TestBinary(ctx context.Context, repo, pkg, outDir string, log *progress.Log) (string, error) {
	key := in.keys[pkg]
	if key == "" {
		return TestBinary(ctx, repo, pkg, outDir, log)
	}
	pointer := filepath.Join(outDir, filepath.Base(pkg)+"-inputs-"+key)
	if name, err := os.ReadFile(pointer); err == nil {
		bin := filepath.Join(outDir, filepath.Base(strings.TrimSpace(string(name))))
		if cacheentry.Reuse(bin, "building it again", log.Info) {
			cacheentry.Touch(pointer)
			return bin, nil
		}
	}
	bin, err := TestBinary(ctx, repo, pkg, outDir, log)
	if err != nil {
		return "", err
	}
	// The binary is filed under the key only if its inputs did not change
	// while it was built (a file saved meanwhile): it may hold either.
	// Without the pointer, the next run builds again: no harm.
	if after, err := readKeys(ctx, repo, []string{pkg}, log); err == nil && after[pkg] == key {
		cacheentry.WriteFileAtomic(pointer, []byte(filepath.Base(bin)+"\n"), 0o644)
	}
	return bin, nil
}
