package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/verdict"
)

func TestProcpidsManifest(t *testing.T) {
	m, err := Load("../../module/procpid")
	require.NoError(t, err)
	assert.Equal(t, "procpid", m.Name)
	assert.True(t, m.Reload, "procpid's first checks read before any write")
	require.Len(t, m.Helpers, 1)
	assert.Equal(t, "/pidlab/bin/pidlab-target", m.Helpers[0].GuestPath())
	assert.Equal(t, "PIDLAB_TARGET", m.Helpers[0].Env)

	var names []string
	for _, s := range m.SuitesFor(nil) {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{"profilecheck"}, names, "a profile without suites: not conformance")
	names = nil
	for _, s := range m.SuitesFor([]string{"conformance"}) {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{"profilecheck", "conformance"}, names, "in the manifest's order")
}

func TestBadManifestsAreNamed(t *testing.T) {
	for want, text := range map[string]string{
		"no name":                     "[[suite]]\nname = \"a\"\npackage = \"./a\"\n",
		"needs a guest test package":  "name = \"x\"\n",
		"is a path in the repository": "name = \"x\"\n[[suite]]\nname = \"a\"\npackage = \"userspace/a\"\n",
		"named twice":                 "name = \"x\"\n[[suite]]\nname = \"a\"\npackage = \"./a\"\n[[suite]]\nname = \"a\"\npackage = \"./b\"\n",
		"needs a C source":            "name = \"x\"\n[[suite]]\nname = \"a\"\npackage = \"./a\"\n[[helper]]\nsource = \"t.go\"\nenv = \"T\"\n",
		"unknown key reloads":         "name = \"x\"\nreloads = true\n[[suite]]\nname = \"a\"\npackage = \"./a\"\n",
	} {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, File), []byte(text), 0o644))
		_, err := Load(dir)
		assert.ErrorContains(t, err, want, "%q", text)
		assert.ErrorContains(t, err, filepath.Join(dir, File), "the error names the file")
	}
	_, err := Load(t.TempDir())
	assert.True(t, IsNotExist(err), "a folder without a manifest")
}

// procpid's hints tell a NULL pointer's causes apart: the console logs are
// excerpts of real runs of its buggy fixtures (module/procpid/testdata/buggy),
// the tests named are those the host saw running.
func TestProcpidsHintsForRealKernelReports(t *testing.T) {
	m, err := Load("../../module/procpid")
	require.NoError(t, err)
	hints := m.ModuleHints()
	for name, tc := range map[string]struct {
		log     string
		null    bool // the log's first report made a NULL pointer's
		unmark  bool // as if the console had no test marks: only the events name the tests
		running []string
		tests   []verdict.TestResult
		hint    string
	}{
		"task->mm of a kernel thread": {log: "oops-on-read.log", running: []string{"TestRecordFields", "TestRecordFields/kernel-thread"},
			hint: "task->mm is NULL for a kernel thread"},
		"task->mm of a zombie": {log: "oops-on-read.log", running: []string{"TestZombie", "TestZombie/child_of_the_test"},
			hint: "task->mm is NULL for a kernel thread"},
		// test2json closed the test that crashed as failed; nothing was
		// running any more when the stream ended.
		"NULL task after the process was reaped": {log: "null-task-on-read.log",
			tests: []verdict.TestResult{{Name: "TestBadInputIsHarmless", Outcome: verdict.Passed}, {Name: "TestSpawnWriteKillReadRace", Outcome: verdict.Failed}},
			hint:  "pid_task()/get_pid_task() returns NULL once the process has exited"},
		// The last events before a panic can be lost: the test heard of
		// last had already read its record.
		"NULL pointer while an unrelated test runs": {log: "oops-on-read.log", running: []string{"TestRecordFields", "TestRecordFields/running"},
			hint: "the module followed a NULL pointer: check each one that can be NULL — get_pid_task()"},
		"NULL pointer, no test known": {log: "null-task-on-read.log",
			hint: "the module followed a NULL pointer: check each one that can be NULL — get_pid_task()"},
		// The fortify log's call trace shows procpid_write, its BUG made
		// a NULL pointer's: there it is most likely the PID lookup's result.
		"NULL pointer in the write": {log: "fortify-on-write.log", null: true, running: []string{"TestKthreadd"},
			hint: "find_get_pid()/find_vpid() returns NULL"},
		// kmalloc(0)'s ZERO_SIZE_PTR written at [-1] by an empty write
		// (module/testdata/osc10e-buggy/empty-write): the marked input
		// tells it apart from a NULL lookup in the same write handler.
		"an empty write": {log: "empty-write-zero-size-ptr.log", running: []string{"TestBadInputIsHarmless", "TestBadInputIsHarmless/empty"},
			hint: "kmalloc(0) returns ZERO_SIZE_PTR"},
		"the same oops with no input known": {log: "empty-write-zero-size-ptr.log", running: []string{"TestBadInputIsHarmless"}, unmark: true,
			hint: "find_get_pid()/find_vpid() returns NULL"},
		// The console's mark names the input even when the events lost it.
		"the same oops, the input known from the console's mark": {log: "empty-write-zero-size-ptr.log", running: []string{"TestBadInputIsHarmless"},
			hint: "kmalloc(0) returns ZERO_SIZE_PTR"},
		"not a NULL pointer: pidlab's own hint": {log: "fortify-on-write.log",
			hint: "the write copies more than its buffer holds"},
	} {
		t.Run(name, func(t *testing.T) {
			o := verdict.Observations{RunnerStarted: true, Troubles: scanLog(t, tc.log), Running: tc.running, Tests: tc.tests, ModuleHints: hints}
			require.NotEmpty(t, o.Troubles)
			if tc.unmark {
				for i := range o.Troubles {
					o.Troubles[i].Test = ""
				}
			}
			if tc.null {
				o.Troubles[0].Report = strings.Replace(o.Troubles[0].Report,
					"kernel BUG at lib/string_helpers.c:1027!", "BUG: kernel NULL pointer dereference, address: 0000000000000008", 1)
			}
			err := verdict.Decide(o)
			require.NotNil(t, err)
			require.Len(t, err.Hints, 1)
			assert.Contains(t, err.Hints[0], tc.hint)
		})
	}
}

// scanLog is the kernel's reports in a console log of vmtest/verdict's
// testdata.
func scanLog(t *testing.T, name string) []verdict.Trouble {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../verdict/testdata", name))
	require.NoError(t, err)
	var s verdict.ConsoleScanner
	for _, line := range strings.Split(string(b), "\n") {
		s.Scan(line)
	}
	return s.Troubles
}

// A profile of this module asks only for suites it runs by profile; a
// profile of another module asks it for nothing.
func TestProfileSuitesAreTheModules(t *testing.T) {
	m, err := Load("../../module/procpid")
	require.NoError(t, err)
	assert.NoError(t, m.CheckProfileSuites("reference", "procpid", []string{"conformance"}))
	assert.NoError(t, m.CheckProfileSuites("osc10e", "procpid", nil))
	err = m.CheckProfileSuites("course", "procpid", []string{"conformanse"})
	assert.ErrorContains(t, err, `profile course asks for suite "conformanse", which module procpid does not run by profile (it has: conformance)`)
	assert.ErrorContains(t, m.CheckProfileSuites("course", "procpid", []string{"profilecheck"}), "does not run by profile",
		"a suite that always runs is not the profile's to ask for")
	assert.NoError(t, m.CheckProfileSuites("exits", "exitmon", []string{"conformanse"}), "another module's profile")
}

// exitmon's hints, on real console logs of its buggy fixtures
// (module/exitmon/testdata/buggy).
func TestExitmonsHintsForRealKernelReports(t *testing.T) {
	m, err := Load("../../module/exitmon")
	require.NoError(t, err)
	// kprobe-not-unregistered: the reload's register_kprobe() finds the
	// kprobe the unload left, then the kernel reads the freed module.
	o := verdict.Observations{RunnerStarted: true, Troubles: scanLog(t, "kprobe-left-registered.log"),
		Running: []string{"TestSmallRingCountsWhatItDrops"}, ModuleHints: m.ModuleHints()}
	require.NotEmpty(t, o.Troubles)
	v := verdict.Decide(o)
	require.NotNil(t, v)
	require.Len(t, v.Hints, 1)
	assert.Contains(t, v.Hints[0], "unregister_kprobes()")

	// sleeps-in-probe on the debug kernel: kmalloc(GFP_KERNEL) in the
	// handler of the (optimized) kprobe on taskstats_exit.
	o = verdict.Observations{RunnerStarted: true, Troubles: scanLog(t, "sleep-in-kprobe-handler.log"), ModuleHints: m.ModuleHints()}
	require.NotEmpty(t, o.Troubles)
	v = verdict.Decide(o)
	require.NotNil(t, v)
	require.Len(t, v.Hints, 1)
	assert.Contains(t, v.Hints[0], "a kprobe handler runs with preemption off")
}
