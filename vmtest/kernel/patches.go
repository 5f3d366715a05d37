package kernel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/pidlab/pidlab/vmtest/verdict"
)

// patch is one of a build's patches: its name in the cache key, its text,
// and where a user's own patch came from.
type patch struct {
	Name string // a file of kernels/, or a user's patch's base name
	Text string
	Path string // a user's patch as given in PIDLAB_KERNEL_PATCHES; "" for the description's
}

// shown names the patch in messages as the person knows it: the path
// they gave, or the file of pidlab's repository.
func (p patch) shown() string {
	if p.Path != "" {
		return p.Path
	}
	return DescriptionsDir + "/" + p.Name
}

// ParsePatches reads a PIDLAB_KERNEL_PATCHES value: patch files separated
// by ':', absolute or relative to the working directory, each a readable
// file and none named twice (applying one twice fails). The paths are
// kept as given, for messages.
func ParsePatches(v string) ([]string, error) {
	var paths []string
	seen := map[string]bool{}
	for _, p := range strings.Split(v, ":") {
		if p == "" {
			continue
		}
		if err := checkPatchFile(p); err != nil {
			return nil, verdict.SetupError(EnvPatches+"=$PWD/my.patch   (patch files separated by ':')",
				"%s: %v", EnvPatches, err)
		}
		abs, _ := filepath.Abs(p)
		if seen[abs] {
			return nil, verdict.SetupError(EnvPatches+"=$PWD/my.patch   (each patch once)",
				"%s names %s twice: the second time it would not apply", EnvPatches, p)
		}
		seen[abs] = true
		paths = append(paths, p)
	}
	return paths, nil
}

// checkPatchFile wants a file that can be read: a typo found now costs
// nothing, found after the source's download it costs minutes.
func checkPatchFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a file", path)
	}
	if _, err := f.Read(make([]byte, 1)); err != nil && err != io.EOF {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// NotPatchable refuses a user's patches for kernels that are not built
// from source (fetched Debian packages, a user's bzImage): they have no
// source to patch, and running them unpatched would pass a stock kernel's
// verdict off as the patch's. setting names where the kernels came from
// (PIDLAB_KERNEL or PIDLAB_KERNELS); kernels are those not built.
func NotPatchable(setting string, kernels []string) error {
	first, _, _ := strings.Cut(BuiltNames(), ", ")
	return verdict.SetupError(
		fmt.Sprintf("%s=%s %s=…   (or unset %s)", setting, first, EnvPatches, EnvPatches),
		"%s patches the source of a kernel pidlab builds (%s), but %s (%s) %s not built from source: a fetched Debian kernel or your own bzImage cannot be patched",
		EnvPatches, BuiltNames(), strings.Join(kernels, ", "), setting, map[bool]string{true: "is", false: "are"}[len(kernels) == 1])
}

// notPatchable is NotPatchable for one selection.
func notPatchable(sel Selection) error {
	name := sel.Flavour
	if sel.Image != "" {
		name = sel.Image
	}
	return NotPatchable(EnvKernel, []string{name})
}

// userPatches reads the user's own patches.
func (d SourceBuild) userPatches() ([]patch, error) {
	var ps []patch
	for _, path := range d.ExtraPatches {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, verdict.SetupError(EnvPatches+"=$PWD/my.patch", "%s: %v", EnvPatches, err)
		}
		ps = append(ps, patch{Name: filepath.Base(path), Text: string(b), Path: path})
	}
	return ps, nil
}

// applyPatches applies the build's patches to the source tree (of the
// source package's version), in order. A patch that does not apply is a
// build failure naming it, with what GNU patch rejected.
func (d SourceBuild) applyPatches(ctx context.Context, tree, staging, version string, patches []patch) error {
	return d.applyPatchesSaying(ctx, tree, staging, version, patches, "patching the source")
}

// applyPatchesSaying is applyPatches, saying doing for each patch.
func (d SourceBuild) applyPatchesSaying(ctx context.Context, tree, staging, version string, patches []patch, doing string) error {
	dir, err := filepath.Abs(filepath.Join(staging, "patches"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i, p := range patches {
		// Numbered: two user patches may share a base name.
		file := filepath.Join(dir, fmt.Sprintf("%02d-%s", i+1, filepath.Base(p.Name)))
		if err := os.WriteFile(file, []byte(p.Text), 0o644); err != nil {
			return err
		}
		d.Log.Info("%s: %s", doing, p.shown())
		// --reject-file wants an absolute path: GNU patch 2.7 opens a
		// relative one from the patched file's folder.
		out, err := d.Log.CombinedOutput(ctx, tree, []string{"LC_ALL=C"}, "patch", "-p1", "--batch", "--forward", "--reject-file="+file+".rej", "-i", file)
		if errors.Is(err, exec.ErrNotFound) {
			return verdict.SetupError("apt-get install patch", "patch not found: the %s kernel's source is patched with GNU patch", d.Desc.Name)
		}
		if err != nil {
			rejects, _ := os.ReadFile(file + ".rej")
			return patchFailed(p, patches[:i], d.Desc.Source+" "+version, string(out), string(rejects), err)
		}
	}
	return nil
}

// patchProblem is what GNU patch said went wrong with one file of a patch.
type patchProblem struct {
	File    string // in the source tree, as the patch names it
	What    string
	Applied bool // the change is there already
}

// What GNU patch says, in the C locale.
var (
	patchingFile = regexp.MustCompile(`^patching file (.+)$`)
	hunkFailed   = regexp.MustCompile(`^Hunk #\d+ FAILED at \d+.*$`)
	// patchHeader quotes the header of a file patch cannot find:
	// "|+++ b/kernel/x.c".
	patchHeader  = regexp.MustCompile(`^\|(?:\+\+\+|---) (\S+)`)
	patchCreates = regexp.MustCompile(`^The next patch would create the file (.+),$`)
)

const (
	patchReversed = "Reversed (or previously applied) patch detected!"
	patchNoFile   = "No file to patch."
)

// patchProblems reads GNU patch's output (in the C locale): per file, the
// hunks that failed, a change already there, a file missing.
func patchProblems(out string) []patchProblem {
	var problems []patchProblem
	file, missing := "", "" // the file being patched; the one patch cannot find
	for _, line := range strings.Split(out, "\n") {
		switch {
		case patchingFile.MatchString(line):
			file = unquote(patchingFile.FindStringSubmatch(line)[1])
		case hunkFailed.MatchString(line):
			problems = append(problems, patchProblem{File: file, What: strings.TrimSuffix(line, ".")})
		case strings.HasPrefix(line, patchReversed):
			problems = append(problems, patchProblem{File: file, What: `already applied ("` + patchReversed + `")`, Applied: true})
		case patchHeader.MatchString(line):
			if name := stripComponent(patchHeader.FindStringSubmatch(line)[1]); name != "/dev/null" {
				missing = name
			}
		case strings.HasPrefix(line, patchNoFile):
			problems = append(problems, patchProblem{File: missing, What: "not in the source tree"})
		case patchCreates.MatchString(line):
			name := unquote(patchCreates.FindStringSubmatch(line)[1])
			problems = append(problems, patchProblem{File: name, What: "the patch creates it, but it is there already", Applied: true})
		}
	}
	return problems
}

// unquote undoes GNU patch's quoting of a name with spaces: 'a b.c'.
func unquote(name string) string {
	if len(name) >= 2 && name[0] == '\'' && name[len(name)-1] == '\'' {
		return name[1 : len(name)-1]
	}
	return name
}

// stripComponent drops a patch header's first folder, as patch -p1 does
// ("b/kernel/pid.c" is kernel/pid.c), and a timestamp after a tab.
func stripComponent(name string) string {
	name, _, _ = strings.Cut(name, "\t")
	if name == "/dev/null" {
		return name
	}
	if _, rest, ok := strings.Cut(name, "/"); ok {
		return rest
	}
	return name
}

// maxRejectLines caps the rejected hunks quoted in a message; the rest
// are in the patch itself.
const maxRejectLines = 40

// patchFailed is the verdict on a patch that did not apply to source
// (package and version), after the patches before it: what failed, per
// file, and the rejected hunks.
func patchFailed(p patch, before []patch, source, out, rejects string, cause error) *verdict.Error {
	problems := patchProblems(out)
	var prior []string
	for _, b := range before {
		prior = append(prior, b.shown())
	}
	after := ""
	if len(prior) > 0 {
		after = " after " + strings.Join(prior, ", ")
	}
	if len(problems) > 0 && allApplied(problems) {
		return &verdict.Error{
			Code: verdict.BuildFailed,
			Reason: fmt.Sprintf("%s is already applied to %s%s: GNU patch found its changes there already, in %s",
				p.shown(), source, after, problemFiles(problems)),
			Fix: alreadyAppliedFix(p, source),
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s does not apply to %s%s:", p.shown(), source, after)
	for _, pr := range problems {
		fmt.Fprintf(&b, "\n    %s: %s", pr.File, pr.What)
	}
	if len(problems) == 0 {
		// Not a hunk's failure: a malformed patch, or patch itself failed.
		fmt.Fprintf(&b, " %v\n%s", cause, indent(strings.TrimSpace(out)))
	}
	if rejects = strings.TrimRight(rejects, "\n"); rejects != "" {
		fmt.Fprintf(&b, "\nthe rejected hunks:\n%s", indent(capLines(rejects, maxRejectLines)))
	}
	return &verdict.Error{Code: verdict.BuildFailed, Reason: b.String(), Fix: doesNotApplyFix(p, source, prior)}
}

func allApplied(problems []patchProblem) bool {
	for _, pr := range problems {
		if !pr.Applied {
			return false
		}
	}
	return true
}

// problemFiles lists the files of problems, each once.
func problemFiles(problems []patchProblem) string {
	var files []string
	seen := map[string]bool{}
	for _, pr := range problems {
		if !seen[pr.File] {
			seen[pr.File] = true
			files = append(files, pr.File)
		}
	}
	return strings.Join(files, ", ")
}

func alreadyAppliedFix(p patch, source string) string {
	if p.Path != "" {
		return fmt.Sprintf("drop %s from %s: %s, or a patch before it, has that change already", p.Path, EnvPatches, source)
	}
	return fmt.Sprintf("drop %s from the patches of %s/kernels.toml: %s has that change already", p.Name, DescriptionsDir, source)
}

// doesNotApplyFix says what to make the patch against: the source with
// the patches before it (prior) applied.
func doesNotApplyFix(p patch, source string, prior []string) string {
	if p.Path != "" {
		with := ""
		if len(prior) > 0 {
			with = " with " + strings.Join(prior, ", ") + " applied"
		}
		return fmt.Sprintf("make %s against %s%s (its source: /usr/src/%s.tar.xz of that package)", p.Path, source, with, strings.Fields(source)[0])
	}
	return fmt.Sprintf("update %s for %s, or drop it from the patches of %s/kernels.toml", p.shown(), source, DescriptionsDir)
}

// capLines keeps the first n lines of s and says how many it left out.
func capLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) <= n {
		return s
	}
	return strings.Join(lines[:n], "\n") + fmt.Sprintf("\n… (%d more lines)", len(lines)-n)
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// touchedFiles maps each file the patches change (their "+++ b/<path>"
// lines, after -p1) to the patches that change it, in order.
func touchedFiles(patches []patch) map[string][]patch {
	touched := map[string][]patch{}
	for _, p := range patches {
		for _, line := range strings.Split(p.Text, "\n") {
			name, ok := strings.CutPrefix(line, "+++ ")
			if !ok {
				continue
			}
			if f := stripComponent(name); f != "/dev/null" && !containsPatch(touched[f], p) {
				touched[f] = append(touched[f], p)
			}
		}
	}
	return touched
}

func containsPatch(ps []patch, p patch) bool {
	for _, q := range ps {
		if q.shown() == p.shown() {
			return true
		}
	}
	return false
}
