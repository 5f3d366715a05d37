package kernel

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// fakeSource is a tiny source tree: two files a patch can touch.
func fakeSource(t *testing.T) string {
	t.Helper()
	tree := t.TempDir()
	for name, text := range map[string]string{
		"kernel/pid.c":  "int a;\nint b;\nint c;\n",
		"kernel/fork.c": "one\ntwo\nthree\n",
	} {
		p := filepath.Join(tree, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	return tree
}

func needPatch(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("patch"); err != nil {
		t.Fatalf("patch is not installed (apt-get install patch): %v", err)
	}
}

// A user's patch with one hunk that applies (kernel/pid.c) and one that
// does not (kernel/fork.c, whose lines it expects in Spanish).
const halfApplyingPatch = `diff --git a/kernel/pid.c b/kernel/pid.c
--- a/kernel/pid.c
+++ b/kernel/pid.c
@@ -1,3 +1,3 @@
 int a;
-int b;
+int bb;
 int c;
diff --git a/kernel/fork.c b/kernel/fork.c
--- a/kernel/fork.c
+++ b/kernel/fork.c
@@ -1,3 +1,3 @@
 uno
-dos
+deux
 tres
`

func TestPatchThatDoesNotApplyIsABuildFailureShowingItsRejects(t *testing.T) {
	needPatch(t)
	tree := fakeSource(t)
	d := SourceBuild{Desc: Description{Name: "debug", Source: "linux-source-6.1"}, Log: &progress.Log{W: io.Discard}}
	own := patch{Name: "first.patch", Text: "--- a/kernel/pid.c\n+++ b/kernel/pid.c\n@@ -1,3 +1,3 @@\n-int a;\n+int aa;\n int b;\n int c;\n"}
	mine := patch{Name: "fix.patch", Text: halfApplyingPatch, Path: "my/fix.patch"}

	err := d.applyPatches(t.Context(), tree, t.TempDir(), "6.1.192-2", []patch{own, mine})
	require.Error(t, err)
	assert.Equal(t, verdict.BuildFailed, verdict.CodeOf(err), "a patch that does not apply is a build failure")
	for _, want := range []string{
		"my/fix.patch does not apply to linux-source-6.1 6.1.192-2 after vmtest/kernel/kernels/first.patch:",
		"\n    kernel/fork.c: Hunk #1 FAILED at 1\n",
		"the rejected hunks:\n    --- kernel/fork.c\n    +++ kernel/fork.c\n    @@ -1,3 +1,3 @@\n     uno\n    -dos\n    +deux\n     tres",
		"fix: make my/fix.patch against linux-source-6.1 6.1.192-2 with vmtest/kernel/kernels/first.patch applied",
	} {
		assert.ErrorContains(t, err, want)
	}
	assert.NotContains(t, err.Error(), "kernel/pid.c:", "the hunk that applied is no problem")
}

func TestPatchAlreadyAppliedIsABuildFailure(t *testing.T) {
	needPatch(t)
	tree := fakeSource(t)
	d := SourceBuild{Desc: Description{Name: "debug", Source: "linux-source-6.1"}, Log: &progress.Log{W: io.Discard}}
	mine := patch{Name: "b.patch", Text: "--- a/kernel/pid.c\n+++ b/kernel/pid.c\n@@ -1,3 +1,3 @@\n int a;\n-int b;\n+int bb;\n int c;\n", Path: "/home/me/b.patch"}
	require.NoError(t, d.applyPatches(t.Context(), tree, t.TempDir(), "6.1.192-2", []patch{mine}))

	err := d.applyPatches(t.Context(), tree, t.TempDir(), "6.1.192-2", []patch{mine})
	assert.Equal(t, verdict.BuildFailed, verdict.CodeOf(err))
	assert.ErrorContains(t, err, "/home/me/b.patch is already applied to linux-source-6.1 6.1.192-2: GNU patch found its changes there already, in kernel/pid.c")
	assert.ErrorContains(t, err, "fix: drop /home/me/b.patch from PIDLAB_KERNEL_PATCHES")
}

// What GNU patch 2.7.6 printed (LC_ALL=C) for a file the tree does not
// have, a file the patch would create that is there, and a failed hunk.
func TestPatchProblemsReadsGNUPatch(t *testing.T) {
	out := `can't find file to patch at input line 3
Perhaps you used the wrong -p or --strip option?
The text leading up to this was:
--------------------------
|--- a/kernel/nothere.c
|+++ b/kernel/nothere.c	2026-12-01 10:00:00.000000000 +0000
--------------------------
No file to patch.  Skipping patch.
1 out of 1 hunk ignored
The next patch would create the file kernel/fork.c,
which already exists!  Skipping patch.
1 out of 1 hunk ignored
patching file 'kernel/a b.c'
Hunk #2 FAILED at 120 (different line endings).
1 out of 2 hunks FAILED -- saving rejects to file /x/01-p.patch.rej
`
	assert.Equal(t, []patchProblem{
		{File: "kernel/nothere.c", What: "not in the source tree"},
		{File: "kernel/fork.c", What: "the patch creates it, but it is there already", Applied: true},
		{File: "kernel/a b.c", What: "Hunk #2 FAILED at 120 (different line endings)"},
	}, patchProblems(out))
}

func TestRejectedHunksAreCapped(t *testing.T) {
	rejects := "--- kernel/pid.c\n+++ kernel/pid.c\n@@ -1,100 +1,100 @@\n" + strings.Repeat("-x\n", 100)
	err := patchFailed(patch{Name: "big.patch", Path: "big.patch"}, nil, "linux-source-6.1 6.1.192-2",
		"patching file kernel/pid.c\nHunk #1 FAILED at 1.\n", rejects, errors.New("exit status 1"))
	assert.Equal(t, verdict.BuildFailed, err.Code)
	assert.Equal(t, maxRejectLines, strings.Count(err.Reason, "\n    -x")+3, "the first %d lines of the rejects", maxRejectLines)
	assert.Contains(t, err.Reason, "… (63 more lines)")
}

// A malformed patch says nothing of files: patch's own words are shown.
func TestMalformedPatchShowsWhatPatchSaid(t *testing.T) {
	err := patchFailed(patch{Name: "m.patch", Path: "m.patch"}, nil, "linux-source-6.1 6.1.192-2",
		"patching file kernel/pid.c\npatch: **** malformed patch at line 5: \n", "", errors.New("exit status 2"))
	assert.Equal(t, verdict.BuildFailed, err.Code)
	assert.Contains(t, err.Reason, "m.patch does not apply to linux-source-6.1 6.1.192-2: exit status 2\n    patching file kernel/pid.c\n    patch: **** malformed patch at line 5:")
}

func TestTouchedFilesAreThePatchesTargets(t *testing.T) {
	a := patch{Name: "a.patch", Text: "--- a/kernel/pid_info.c\n+++ b/kernel/pid_info.c\t2026-12-01 10:00:00\n@@ -1 +1 @@\n-x\n+y\n--- /dev/null\n+++ b/include/linux/pid_info.h\n@@ -0,0 +1 @@\n+int z;\n"}
	b := patch{Name: "b.patch", Text: "--- a/kernel/pid_info.c\n+++ b/kernel/pid_info.c\n@@ -1 +1 @@\n-y\n+w\n--- a/kernel/gone.c\n+++ /dev/null\n@@ -1 +0,0 @@\n-q\n", Path: "/tmp/b.patch"}
	touched := touchedFiles([]patch{a, b})
	assert.Equal(t, map[string][]patch{
		"kernel/pid_info.c":        {a, b},
		"include/linux/pid_info.h": {a},
	}, touched, "a deleted file (+++ /dev/null) cannot fail to compile")
}

// testdata/patched-build.log is written by hand, as kbuild and gcc 12
// print a build with -j2 in the C locale: an error in kernel/pid_info.c,
// one in kernel/exit.c whose note points at include/linux/pid_info.h,
// and make's lines for them.
func patchedBuildLog(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "patched-build.log"))
	require.NoError(t, err)
	return string(b)
}

func TestBuildErrorsAreExtractedFromTheLog(t *testing.T) {
	diags, makeErrors := buildErrors(patchedBuildLog(t))
	require.Len(t, diags, 2)
	assert.Equal(t, "kernel/pid_info.c", diags[0].File)
	assert.Equal(t, []string{
		"kernel/pid_info.c: In function 'pid_info_show':",
		"kernel/pid_info.c:42:9: error: implicit declaration of function 'foo' [-Werror=implicit-function-declaration]",
		"   42 |         foo(task);",
		"      |         ^~~",
	}, diags[0].Lines, "the error, where it is, and gcc's quote; not the next job's CC line")
	assert.Equal(t, "kernel/exit.c", diags[1].File)
	assert.Equal(t, []string{
		"kernel/exit.c: In function 'do_exit':",
		"kernel/exit.c:812:9: error: too few arguments to function 'put_pid_info'",
		"  812 |         put_pid_info(tsk);",
		"      |         ^~~~~~~~~~~~",
		"In file included from kernel/exit.c:70:",
		"include/linux/pid_info.h:12:6: note: declared here",
		"   12 | void put_pid_info(struct task_struct *tsk, int code);",
		"      |      ^~~~~~~~~~~~",
	}, diags[1].Lines, "the note and the include chain that leads to it")
	assert.Equal(t, []string{"kernel/exit.c", "include/linux/pid_info.h"}, diags[1].files(), "its own file first, each once")
	assert.Equal(t, []string{
		"make[2]: *** [scripts/Makefile.build:250: kernel/pid_info.o] Error 1",
		"make[2]: *** [scripts/Makefile.build:250: kernel/exit.o] Error 1",
		"make[1]: *** [scripts/Makefile.build:500: kernel] Error 2",
		"make: *** [Makefile:2012: .] Error 2",
	}, makeErrors)

	twice := patchedBuildLog(t) + patchedBuildLog(t)
	again, _ := buildErrors(twice)
	assert.Len(t, again, 2, "an error printed twice (a header, -j) is shown once")
}

func TestCompileFailureInAPatchedFileIsThePatchs(t *testing.T) {
	log := patchedBuildLog(t)
	const logPath = "/cache/kernels/debug-0123456789abcdef.failed.log"
	cause := errors.New("exit status 2")
	own := patch{Name: "pid_info.patch", Text: "--- a/kernel/pid_info.c\n+++ b/kernel/pid_info.c\n"}
	mine := patch{Name: "header.patch", Text: "--- a/include/linux/pid_info.h\n+++ b/include/linux/pid_info.h\n", Path: "../header.patch"}
	other := patch{Name: "sched.patch", Text: "--- a/kernel/sched/core.c\n+++ b/kernel/sched/core.c\n", Path: "sched.patch"}

	err := compileFailed("debug", cause, log, logPath, []patch{own, mine})
	assert.Equal(t, verdict.BuildFailed, err.Code, "an error in a file a patch touches")
	for _, want := range []string{
		"building the debug kernel with vmtest/kernel/kernels/pid_info.patch failed in kernel/pid_info.c:\n",
		"kernel/pid_info.c:42:9: error: implicit declaration of function 'foo'",
		"make[2]: *** [scripts/Makefile.build:250: kernel/pid_info.o] Error 1",
		"\nfull log: " + logPath,
	} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), "CC      kernel/fork.o", "the errors, not the log's tail")
	require.NotNil(t, err.Build)
	assert.Equal(t, "kernel/pid_info.c:42:9: error: implicit declaration of function 'foo' [-Werror=implicit-function-declaration]", err.Build.FirstError)

	err = compileFailed("debug", cause, log, logPath, []patch{mine})
	assert.Equal(t, verdict.BuildFailed, err.Code, "a patched header that breaks a file it does not touch (gcc's note names it)")
	assert.Contains(t, err.Error(), "building the debug kernel with ../header.patch failed in include/linux/pid_info.h:\n")

	err = compileFailed("debug", cause, log, logPath, []patch{other})
	assert.Equal(t, verdict.Setup, err.Code, "errors in files no patch touches: the host's toolchain")
	assert.Contains(t, err.Error(), "building the debug kernel failed: exit status 2\nkernel/pid_info.c: In function 'pid_info_show':\n")
	assert.Contains(t, err.Error(), "\nfull log: "+logPath)
	assert.Contains(t, err.Hint(), "no patch touches (kernel/pid_info.c, kernel/exit.c)")

	err = compileFailed("debug", cause, log, logPath, nil)
	assert.Equal(t, verdict.Setup, err.Code, "no patches: as before")
	assert.Empty(t, err.Hints)

	linkLog := "  LD      vmlinux.o\nld: vmlinux.o: in function `pid_info_show':\npid_info.c:(.text+0x1a): undefined reference to `foo'\nmake[1]: *** [scripts/Makefile.vmlinux_o:61: vmlinux.o] Error 1\n"
	err = compileFailed("debug", cause, linkLog, logPath, []patch{own})
	assert.Equal(t, verdict.Setup, err.Code)
	assert.Contains(t, err.Error(), "undefined reference to `foo'", "no compiler error: the log's tail")
}

// A user's patches come after the description's, in the order given, and
// their text is part of the cache key; two of one base name are two.
func TestUserPatchesComeAfterTheDescriptionsAndAreInTheKey(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "a", "fix.patch")
	second := filepath.Join(dir, "b", "fix.patch")
	for _, p := range []string{first, second} {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte("--- a/"+p+"\n"), 0o644))
	}
	// Any file of kernels/ serves as the description's patch: patches()
	// only reads it.
	desc := Description{Name: "debug", Source: "linux-source-6.1", Base: "tinyconfig", Fragment: "debug.config", Patches: []string{"debug.config"}}
	d := SourceBuild{Desc: desc, Fragment: "CONFIG_KASAN=y\n", ExtraPatches: []string{first, second}}
	ps, err := d.patches()
	require.NoError(t, err)
	require.Len(t, ps, 3)
	assert.Equal(t, []string{"vmtest/kernel/kernels/debug.config", first, second}, []string{ps[0].shown(), ps[1].shown(), ps[2].shown()}, "the description's, then the user's")
	assert.Equal(t, "fix.patch", ps[1].Name, "a user's patch is keyed by its base name, not where it lies")

	key := d.key("6.1.192-2", ps, "gcc 12")
	assert.NotEqual(t, key, d.key("6.1.192-2", ps[:2], "gcc 12"), "the second fix.patch counts")
	assert.NotEqual(t, key, d.key("6.1.192-2", []patch{ps[0], ps[2], ps[1]}, "gcc 12"), "the order counts")

	require.NoError(t, os.WriteFile(second, []byte("--- a/changed\n"), 0o644))
	changed, err := d.patches()
	require.NoError(t, err)
	assert.NotEqual(t, key, d.key("6.1.192-2", changed, "gcc 12"), "a user's patch's new text is a new kernel")

	require.NoError(t, os.Remove(second))
	_, err = d.patches()
	assert.Equal(t, verdict.Setup, verdict.CodeOf(err))
	assert.ErrorContains(t, err, "PIDLAB_KERNEL_PATCHES: open "+second)
}

func TestParsePatches(t *testing.T) {
	dir := t.TempDir()
	mine := filepath.Join(dir, "my.patch")
	require.NoError(t, os.WriteFile(mine, []byte("--- a/x\n"), 0o644))
	t.Chdir(dir)

	got, err := ParsePatches(mine + "::my.patch:")
	assert.ErrorContains(t, err, "names my.patch twice", "one file by two names")
	assert.Nil(t, got)

	got, err = ParsePatches(":my.patch:")
	require.NoError(t, err)
	assert.Equal(t, []string{"my.patch"}, got, "kept as given, for messages")

	for v, want := range map[string]string{
		"my.patch:nothere.patch": "PIDLAB_KERNEL_PATCHES: open nothere.patch: no such file or directory",
		dir:                      "PIDLAB_KERNEL_PATCHES: " + dir + " is not a file",
	} {
		_, err := ParsePatches(v)
		assert.Equal(t, verdict.Setup, verdict.CodeOf(err), v)
		assert.ErrorContains(t, err, want, v)
		assert.ErrorContains(t, err, "fix: PIDLAB_KERNEL_PATCHES=", v)
	}
}

func TestProvisionRefusesPatchesForAFetchedKernel(t *testing.T) {
	_, err := Provision(t.Context(), Selection{Flavour: "cloud", Patches: []string{"my.patch"}}, t.TempDir(), nil)
	assert.Equal(t, verdict.Setup, verdict.CodeOf(err))
	assert.ErrorContains(t, err, "PIDLAB_KERNEL_PATCHES patches the source of a kernel pidlab builds (debug), but cloud (PIDLAB_KERNEL) is not built from source")
	assert.ErrorContains(t, err, "fix: PIDLAB_KERNEL=debug PIDLAB_KERNEL_PATCHES=")
}

// A build with a user's patches starts from the cached build without
// them, when there is one: the build the description's patches alone make.
func TestUserPatchesBuildOnTheCachedKernelWithoutThem(t *testing.T) {
	fix := filepath.Join(t.TempDir(), "fix.patch")
	require.NoError(t, os.WriteFile(fix, []byte("--- a/kernel/pid.c\n"), 0o644))
	d := SourceBuild{Desc: debugDescription(t), CacheDir: t.TempDir(), Fragment: "CONFIG_KASAN=y\n", Log: &progress.Log{W: io.Discard}, ExtraPatches: []string{fix}}
	ps, err := d.patches()
	require.NoError(t, err)
	own := ps[:len(ps)-1]
	assert.Empty(t, d.parentBuild("6.1.192-2", own, "gcc 12"), "nothing cached")

	parent := filepath.Join(d.CacheDir, "debug-"+d.key("6.1.192-2", own, "gcc 12"))
	require.NoError(t, os.MkdirAll(filepath.Join(parent, "linux/arch/x86/boot"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(parent, "linux/arch/x86/boot/bzImage"), []byte("image"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(parent, readyMarker), []byte(d.marker("6.1.192-pidlab-debug", "6.1.192-2")), 0o644))
	assert.Equal(t, parent, d.parentBuild("6.1.192-2", own, "gcc 12"), "the build without the user's patch")
	assert.Empty(t, d.parentBuild("6.1.192-3", own, "gcc 12"), "not one of another source version")

	d.ExtraPatches = nil
	assert.Empty(t, d.parentBuild("6.1.192-2", ps, "gcc 12"), "no user patches: a build of its own")
}

// A user's patch is tried on a copy of the files it touches before the
// parent tree is copied: one that does not apply fails at once, and the
// parent is left as it was.
func TestUserPatchesAreTriedBeforeTheTreeIsCopied(t *testing.T) {
	needPatch(t)
	parent := fakeSource(t)
	before, err := os.ReadFile(filepath.Join(parent, "kernel/pid.c"))
	require.NoError(t, err)
	d := SourceBuild{Desc: Description{Name: "debug", Source: "linux-source-6.1"}, Log: &progress.Log{W: io.Discard}}
	good := patch{Name: "b.patch", Text: "--- a/kernel/pid.c\n+++ b/kernel/pid.c\n@@ -1,3 +1,3 @@\n int a;\n-int b;\n+int bb;\n int c;\n", Path: "/home/me/b.patch"}
	bad := patch{Name: "fix.patch", Text: halfApplyingPatch, Path: "my/fix.patch"}

	require.NoError(t, d.trialApply(t.Context(), parent, t.TempDir(), "6.1.192-2", []patch{good}))
	err = d.trialApply(t.Context(), parent, t.TempDir(), "6.1.192-2", []patch{good, bad})
	assert.Equal(t, verdict.BuildFailed, verdict.CodeOf(err))
	assert.ErrorContains(t, err, "kernel/fork.c: Hunk #1 FAILED at 1")
	after, err := os.ReadFile(filepath.Join(parent, "kernel/pid.c"))
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "the parent tree is not patched")
}
