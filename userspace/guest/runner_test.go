package guest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/userspace/guestapi"
)

// fakeSystem records what the runner asked of the kernel.
type fakeSystem struct {
	loadErr, unloadErr error
	unloadBusy         int // unload answers EBUSY this many times first
	loaded, unloaded   []string
	creates            []string // /proc entries the module makes while loaded
	leaks              *fakeLeaks
	marks              []string
}

func (f *fakeSystem) LoadModule(path string) error {
	f.loaded = append(f.loaded, path)
	return f.loadErr
}

func (f *fakeSystem) UnloadModule(name string) error {
	f.unloaded = append(f.unloaded, name)
	if f.unloadBusy > 0 {
		f.unloadBusy--
		return busyErr{}
	}
	return f.unloadErr
}

func (f *fakeSystem) Mark(name string) { f.marks = append(f.marks, name) }
func (f *fakeSystem) ProcEntries() []string {
	if len(f.loaded) > len(f.unloaded) {
		return append([]string{"cpuinfo", "self"}, f.creates...)
	}
	return []string{"cpuinfo", "self"}
}
func (f *fakeSystem) Taint() (uint64, error) { return 12288, nil }
func (f *fakeSystem) Kernel() string         { return "6.1.0-test" }
func (f *fakeSystem) Leaks() LeakDetector {
	if f.leaks == nil {
		return nil // a plain interface nil, as on a kernel without kmemleak
	}
	return f.leaks
}

// fakeLeaks stands in for kmemleak.
type fakeLeaks struct {
	forgot int // how many times
	report string
}

func (l *fakeLeaks) Forget() error         { l.forgot++; return nil }
func (l *fakeLeaks) Scan() (string, error) { return l.report, nil }

type busyErr struct{}

func (busyErr) Error() string { return "busy" }
func (busyErr) Is(target error) bool {
	return isBusy(target)
}

func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tests.sh")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755))
	return p
}

func runEvents(t *testing.T, sys System, mods ...guestapi.ModuleRun) []guestapi.Event {
	t.Helper()
	var out bytes.Buffer
	r := &Runner{Sys: sys, Manifest: guestapi.Manifest{Modules: mods}, Out: &out}
	require.NoError(t, r.Run(t.Context()))
	var evs []guestapi.Event
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var ev guestapi.Event
		require.NoError(t, json.Unmarshal(sc.Bytes(), &ev), "line %q", sc.Text())
		evs = append(evs, ev)
	}
	return evs
}

func kinds(evs []guestapi.Event) []guestapi.Kind {
	var ks []guestapi.Kind
	for _, e := range evs {
		ks = append(ks, e.Kind)
	}
	return ks
}

func TestRunnerLoadsRunsUnloadsInOrder(t *testing.T) {
	sys := &fakeSystem{unloadBusy: 2}
	bin := script(t, "echo 'line one'\necho 'env' $PIDLAB_GUEST >&2\nexit 3\n")
	evs := runEvents(t, sys, guestapi.ModuleRun{
		Module: "/m/x.ko", ModuleName: "x",
		Tests: []guestapi.TestBinary{{Path: bin}},
		Env:   []string{"PIDLAB_GUEST=1"},
	})
	assert.Equal(t, []guestapi.Kind{guestapi.KindStart, guestapi.KindLoad, guestapi.KindTestOutput, guestapi.KindTestOutput, guestapi.KindTestExit, guestapi.KindUnload, guestapi.KindModuleDone, guestapi.KindDone}, kinds(evs))
	assert.Equal(t, "6.1.0-test", evs[0].Kernel)
	assert.Equal(t, "line one", evs[2].Line)
	assert.Equal(t, "env 1", evs[3].Line, "the manifest's environment reaches the tests")
	assert.Equal(t, 3, evs[4].ExitCode)
	assert.Empty(t, evs[5].Err, "a busy module is retried until it unloads")
	assert.Equal(t, []string{"x", "x", "x"}, sys.unloaded)
}

// A test binary's failures and figures reach the host as data, not as
// text to parse.
func TestRunnerSendsFailuresAndFiguresAsData(t *testing.T) {
	bin := script(t, `echo "fd $PIDLAB_RECORDS_FD"
echo '{"failure":{"test":"TestRecordFields/init/ppid","check":"ppid: module vs /proc/1/stat field 4","expected":"0","got":"1","hint":"ppid is the TGID of the real parent"}}' >&3
echo '{"figure":{"test":"BenchmarkForkExitWait","name":"loaded/unloaded","value":1.04,"unit":"×"}}' >&3
echo 'not json' >&3
echo '{"check":"a failure without its wrapper"}' >&3
exit 1
`)
	evs := runEvents(t, &fakeSystem{}, guestapi.ModuleRun{ModuleName: "x", Tests: []guestapi.TestBinary{{Path: bin}}})
	var failures []guestapi.Failure
	var figures []guestapi.Figure
	var output []string
	for _, ev := range evs {
		switch ev.Kind {
		case guestapi.KindFailure:
			require.NotNil(t, ev.Failure)
			assert.Equal(t, bin, ev.Binary)
			failures = append(failures, *ev.Failure)
		case guestapi.KindFigure:
			require.NotNil(t, ev.Figure)
			figures = append(figures, *ev.Figure)
		case guestapi.KindTestOutput:
			output = append(output, ev.Line)
		}
	}
	assert.Equal(t, []guestapi.Failure{{Test: "TestRecordFields/init/ppid", Check: "ppid: module vs /proc/1/stat field 4",
		Expected: "0", Got: "1", Hint: "ppid is the TGID of the real parent"}}, failures)
	assert.Equal(t, []guestapi.Figure{{Test: "BenchmarkForkExitWait", Name: "loaded/unloaded", Value: 1.04, Unit: "×"}}, figures)
	assert.Contains(t, output, "fd 3", "the binary is told its records' descriptor")
	assert.Contains(t, output, `pidlab: not a failure or figure record on fd 3: "not json"`, "a bad line is shown, not lost")
	assert.Contains(t, output, `pidlab: not a failure or figure record on fd 3: "{\"check\":\"a failure without its wrapper\"}"`)
}

func TestRunnerSkipsTestsWhenLoadFails(t *testing.T) {
	sys := &fakeSystem{loadErr: errors.New("Unknown symbol")}
	evs := runEvents(t, sys, guestapi.ModuleRun{Module: "/m/x.ko", ModuleName: "x", Tests: []guestapi.TestBinary{{Path: "/nonexistent"}}})
	assert.Equal(t, []guestapi.Kind{guestapi.KindStart, guestapi.KindLoad, guestapi.KindModuleDone, guestapi.KindDone}, kinds(evs))
	assert.Equal(t, "Unknown symbol", evs[1].Err)
	assert.Empty(t, sys.unloaded, "nothing to unload")
}

func TestRunnerIsNotHeldByALeftoverProcess(t *testing.T) {
	// The test binary leaves a child holding its output open.
	bin := script(t, "sleep 600 &\necho done\n")
	start := time.Now()
	evs := runEvents(t, &fakeSystem{}, guestapi.ModuleRun{ModuleName: "x", Tests: []guestapi.TestBinary{{Path: bin}}})
	assert.Less(t, time.Since(start), 30*time.Second, "the runner waited for a leftover process")
	assert.Contains(t, kinds(evs), guestapi.KindDone)
}

func TestRunnerReportsLeaksAfterUnloadOnly(t *testing.T) {
	leaks := &fakeLeaks{report: "unreferenced object 0xffff888003a1b200 (size 224):"}
	evs := runEvents(t, &fakeSystem{leaks: leaks}, guestapi.ModuleRun{ModuleName: "x", Tests: []guestapi.TestBinary{{Path: script(t, "true\n")}}})
	assert.Equal(t, 1, leaks.forgot, "leaks from boot are forgotten before the module loads")
	assert.Equal(t, []guestapi.Kind{guestapi.KindStart, guestapi.KindLoad, guestapi.KindTestExit, guestapi.KindUnload, guestapi.KindLeaks, guestapi.KindModuleDone, guestapi.KindDone}, kinds(evs))
	assert.Equal(t, leaks.report, evs[4].Line)

	evs = runEvents(t, &fakeSystem{leaks: leaks, unloadErr: errors.New("EBUSY")}, guestapi.ModuleRun{ModuleName: "x"})
	assert.NotContains(t, kinds(evs), guestapi.KindLeaks, "a module still loaded still holds its memory: no scan")
}

func TestRunnerReloadsTheModuleBetweenTestBinaries(t *testing.T) {
	sys := &fakeSystem{}
	first, second := script(t, "echo first\n"), script(t, "echo second\n")
	evs := runEvents(t, sys, guestapi.ModuleRun{Module: "/m/x.ko", ModuleName: "x", Reload: true, Tests: []guestapi.TestBinary{{Path: first}, {Path: second}}})
	assert.Equal(t, []guestapi.Kind{guestapi.KindStart, guestapi.KindLoad, guestapi.KindTestOutput, guestapi.KindTestExit, guestapi.KindTestOutput, guestapi.KindTestExit, guestapi.KindUnload, guestapi.KindModuleDone, guestapi.KindDone}, kinds(evs))
	assert.Equal(t, []string{"/m/x.ko", "/m/x.ko"}, sys.loaded, "loaded once per binary")
	assert.Equal(t, []string{"x", "x"}, sys.unloaded)
	assert.Equal(t, []string{guestapi.NoTest, guestapi.NoTest}, sys.marks, "no test is named while the module reloads or unloads")

	sys = &fakeSystem{unloadErr: errors.New("EBUSY")}
	evs = runEvents(t, sys, guestapi.ModuleRun{Module: "/m/x.ko", ModuleName: "x", Reload: true, Tests: []guestapi.TestBinary{{Path: first}, {Path: second}}})
	assert.Equal(t, []guestapi.Kind{guestapi.KindStart, guestapi.KindLoad, guestapi.KindTestOutput, guestapi.KindTestExit, guestapi.KindUnload, guestapi.KindModuleDone, guestapi.KindDone}, kinds(evs), "a module that will not unload ends the run")
	assert.Equal(t, "EBUSY", evs[4].Err)

	sys = &fakeSystem{}
	runEvents(t, sys, guestapi.ModuleRun{Module: "/m/x.ko", ModuleName: "x", Tests: []guestapi.TestBinary{{Path: first}, {Path: second}}})
	assert.Equal(t, []string{"/m/x.ko"}, sys.loaded, "without reload in the manifest: loaded once for all binaries")
}

// The /proc entries loading the module made reach the host in the load
// event and the tests in their environment: a test of a missing entry
// can name the one the module made instead.
func TestRunnerNamesTheEntriesTheModuleCreated(t *testing.T) {
	bin := script(t, "echo \"created $PIDLAB_PROC_CREATED\"\n")
	evs := runEvents(t, &fakeSystem{creates: []string{"pidinfo"}}, guestapi.ModuleRun{ModuleName: "x", Tests: []guestapi.TestBinary{{Path: bin}}})
	require.Equal(t, guestapi.KindLoad, evs[1].Kind)
	assert.Equal(t, []string{"/proc/pidinfo"}, evs[1].Entries)
	assert.Equal(t, "created /proc/pidinfo", evs[2].Line)

	evs = runEvents(t, &fakeSystem{}, guestapi.ModuleRun{ModuleName: "x", Tests: []guestapi.TestBinary{{Path: bin}}})
	assert.Empty(t, evs[1].Entries, "a module that makes no entry")
	assert.Equal(t, "created ", evs[2].Line)
}

// Modules are tested one after the other in one boot, each event tagged
// with its module; one that does not load does not stop the next, and
// each starts with kmemleak's slate wiped.
func TestRunnerTestsEachModuleInTurn(t *testing.T) {
	leaks := &fakeLeaks{}
	sys := &fakeSystem{leaks: leaks}
	bin := script(t, "echo \"module $WHICH\"\n")
	evs := runEvents(t, sys,
		guestapi.ModuleRun{Name: "a", Module: "/m/a.ko", ModuleName: "a", Tests: []guestapi.TestBinary{{Path: bin}}, Env: []string{"WHICH=a"}},
		guestapi.ModuleRun{Name: "b", Module: "/m/b.ko", ModuleName: "b", Tests: []guestapi.TestBinary{{Path: bin}}, Env: []string{"WHICH=b"}})
	assert.Equal(t, []guestapi.Kind{guestapi.KindStart,
		guestapi.KindLoad, guestapi.KindTestOutput, guestapi.KindTestExit, guestapi.KindUnload, guestapi.KindLeaks, guestapi.KindModuleDone,
		guestapi.KindLoad, guestapi.KindTestOutput, guestapi.KindTestExit, guestapi.KindUnload, guestapi.KindLeaks, guestapi.KindModuleDone,
		guestapi.KindDone}, kinds(evs))
	var modules []string
	for _, ev := range evs {
		modules = append(modules, ev.Module)
	}
	assert.Equal(t, []string{"", "a", "a", "a", "a", "a", "a", "b", "b", "b", "b", "b", "b", ""}, modules)
	assert.Equal(t, "module a", evs[2].Line)
	assert.Equal(t, "module b", evs[8].Line, "each module's binaries get its own environment")
	assert.Equal(t, []string{"/m/a.ko", "/m/b.ko"}, sys.loaded)
	assert.Equal(t, []string{"a", "b"}, sys.unloaded)
	assert.Equal(t, 2, leaks.forgot, "what module a leaked is not b's")

	sys = &fakeSystem{loadErr: errors.New("Unknown symbol")}
	evs = runEvents(t, sys, guestapi.ModuleRun{Name: "a", Module: "/m/a.ko"}, guestapi.ModuleRun{Name: "b", Module: "/m/b.ko"})
	assert.Equal(t, []guestapi.Kind{guestapi.KindStart, guestapi.KindLoad, guestapi.KindModuleDone, guestapi.KindLoad, guestapi.KindModuleDone, guestapi.KindDone}, kinds(evs))
	assert.Equal(t, []string{"/m/a.ko", "/m/b.ko"}, sys.loaded, "a module that does not load does not stop the next")
}
