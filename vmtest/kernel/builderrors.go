package kernel

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// A kernel build's log, as kbuild and gcc write it in the C locale.
var (
	// compilerError is gcc's error line: kernel/pid_info.c:42:9: error: …
	compilerError = regexp.MustCompile(`^([^ ]+):\d+:\d+: (?:error|fatal error):`)
	// makeError is make's account of a target that failed:
	// make[2]: *** [scripts/Makefile.build:250: kernel/pid_info.o] Error 1
	makeError = regexp.MustCompile(`^make(?:\[\d+\])?: \*\*\* \[.*\] Error \d+`)
	// makeLine is any line of make's own.
	makeLine = regexp.MustCompile(`^make(?:\[\d+\])?: `)
	// errorPreamble are the lines gcc prints before an error to say where
	// it is: "kernel/pid_info.c: In function 'f':", "In file included
	// from …", "                 from …".
	errorPreamble = regexp.MustCompile(`^(?:\S+: In function |In file included from |\s+from )`)
	// fileMention is a file named at the start of a line of gcc's:
	// an error, a note, an "included from".
	fileMention = regexp.MustCompile(`^(?:In file included from |\s+from )?([^ :]+):\d+(?::\d+)?[:,]`)
	// noteLine is gcc's note on an error: include/linux/x.h:12:6: note: …
	noteLine = regexp.MustCompile(`^[^ ]+:\d+:\d+: note:`)
)

// errorContext is how many lines after an error line belong to it: gcc's
// quote of the source line and the caret, a note with its own quote.
const errorContext = 6

// maxErrorLines caps the compiler's errors quoted in a message; the full
// log has the rest.
const maxErrorLines = 40

// buildDiagnostic is one compiler error of a kernel build's log.
type buildDiagnostic struct {
	File  string   // the file the error is in, relative to the source tree
	Lines []string // where it is, the error line and what gcc says after it
}

// files are the files the diagnostic names: its own first, then those of
// its notes and include chain (a patched header can break a file the
// patch does not touch; gcc's note names the header).
func (d buildDiagnostic) files() []string {
	files := []string{d.File}
	for _, l := range d.Lines {
		if m := fileMention.FindStringSubmatch(l); m != nil && !slices.Contains(files, sourcePath(m[1])) {
			files = append(files, sourcePath(m[1]))
		}
	}
	return files
}

// buildErrors extracts the compiler's errors from a kernel build's log,
// each once (a broken header fails every file that includes it, and -j
// builds several at once), and make's "*** […] Error" lines.
func buildErrors(log string) (diags []buildDiagnostic, makeErrors []string) {
	lines := strings.Split(log, "\n")
	seen := map[string]bool{}
	for i, line := range lines {
		if makeError.MatchString(line) && !seen[line] {
			seen[line] = true
			makeErrors = append(makeErrors, line)
		}
		m := compilerError.FindStringSubmatch(line)
		if m == nil || seen[line] {
			continue
		}
		seen[line] = true
		start := i
		for start > 0 && errorPreamble.MatchString(lines[start-1]) {
			start--
		}
		end := errorEnd(lines, i)
		diags = append(diags, buildDiagnostic{File: sourcePath(m[1]), Lines: lines[start:end]})
	}
	return diags, makeErrors
}

// errorEnd is the end of what gcc says about the error on line i: up to
// errorContext lines more, up to another error or another job's output.
// An include chain belongs to the error when a note of it follows ("In
// file included from kernel/exit.c:70:", "include/linux/x.h:12:6: note:
// declared here"): it names the header where the trouble began.
func errorEnd(lines []string, i int) int {
	end := i + 1
	for end < len(lines) && end <= i+errorContext {
		if errorPreamble.MatchString(lines[end]) {
			j := end
			for j < len(lines) && errorPreamble.MatchString(lines[j]) {
				j++
			}
			if j == len(lines) || !noteLine.MatchString(lines[j]) {
				break
			}
			end = j + 1
			continue
		}
		if !belongsToError(lines[end]) {
			break
		}
		end++
	}
	return end
}

// belongsToError reports whether a line after an error line is more of
// what gcc says about it, not another error or another job's output.
func belongsToError(line string) bool {
	return strings.TrimSpace(line) != "" && !compilerError.MatchString(line) &&
		!makeLine.MatchString(line) && !kbuildLine.MatchString(line) && !errorPreamble.MatchString(line)
}

// sourcePath is a file as the build names it, relative to the source
// tree: kbuild builds in the tree, and names files from its top.
func sourcePath(name string) string {
	return path.Clean(strings.TrimPrefix(name, "./"))
}

// errorExcerpt is the errors and make's lines, capped, as a message
// quotes them.
func errorExcerpt(diags []buildDiagnostic, makeErrors []string) string {
	var lines []string
	for _, d := range diags {
		lines = append(lines, d.Lines...)
	}
	lines = append(lines, makeErrors...)
	return capLines(strings.Join(lines, "\n"), maxErrorLines)
}

// patchedFile is the first file of the diagnostics that a patch touches,
// and the patches that touch it; "" when the errors are in no patched file.
func patchedFile(diags []buildDiagnostic, touched map[string][]patch) (string, []patch) {
	for _, d := range diags {
		for _, f := range d.files() {
			if ps := touched[f]; len(ps) > 0 {
				return f, ps
			}
		}
	}
	return "", nil
}

// compileFailed is the verdict on the build of the kernel name whose make
// failed (cause), from its log (kept at logPath). An error in a file a patch
// touches is the patch's: a build failure (2), the compiler's errors
// quoted. Any other is a setup problem (5): the source builds as Debian
// ships it, so a broken toolchain or a missing package is likelier.
func compileFailed(name string, cause error, log, logPath string, patches []patch) *verdict.Error {
	diags, makeErrors := buildErrors(log)
	excerpt := errorExcerpt(diags, makeErrors)
	if file, by := patchedFile(diags, touchedFiles(patches)); file != "" {
		var names []string
		for _, p := range by {
			names = append(names, p.shown())
		}
		return &verdict.Error{
			Code:   verdict.BuildFailed,
			Reason: fmt.Sprintf("building the %s kernel with %s failed in %s:\n%s\nfull log: %s", name, strings.Join(names, " and "), file, excerpt, logPath),
			Fix:    fmt.Sprintf("fix %s in %s: the compiler's errors are above", file, strings.Join(names, " or ")),
			Build:  &verdict.BuildFailure{Output: excerpt, FirstError: firstErrorLine(diags)},
		}
	}
	e := verdict.Errorf(verdict.Setup, "building the %s kernel failed: %v\n%s\nfull log: %s", name, cause, excerptOrTail(diags, excerpt, log), logPath)
	if len(diags) > 0 && len(patches) > 0 {
		e.WithHints("the errors are in files no patch touches (" + diagnosticFiles(diags) + "): a compiler or a host package is likelier at fault, but a patch that changes a header can break a file it does not touch")
	}
	return e
}

// excerptOrTail is the compiler's errors, or the log's last lines when
// there are none (a linker's error, a tool that is missing).
func excerptOrTail(diags []buildDiagnostic, excerpt, log string) string {
	if len(diags) > 0 {
		return excerpt
	}
	return progress.LastLines(log, 30)
}

func firstErrorLine(diags []buildDiagnostic) string {
	for _, d := range diags {
		for _, l := range d.Lines {
			if compilerError.MatchString(l) {
				return strings.TrimSpace(l)
			}
		}
	}
	return ""
}

// diagnosticFiles lists the files of the errors, each once.
func diagnosticFiles(diags []buildDiagnostic) string {
	var files []string
	seen := map[string]bool{}
	for _, d := range diags {
		if !seen[d.File] {
			seen[d.File] = true
			files = append(files, d.File)
		}
	}
	return strings.Join(files, ", ")
}
