// Package guestapi is the contract between pidlab's host and its guest
// runner (userspace/guest): the manifest the host packs into the
// initramfs, the events the runner sends back on the results serial port
// (one JSON object a line), the test marks on the console and the test
// flags on the kernel command line. It depends on nothing but the standard
// library, so that the host imports no guest code.
package guestapi

// Kind names what an Event reports.
type Kind string

// The events, in the order a run emits them: start, then for each module
// load … module-done, then done. KindLoad carries the taint before the
// module was loaded, KindModuleDone the taint after its run.
const (
	KindStart      Kind = "start"       // runner is up: Kernel, Taint
	KindLoad       Kind = "load"        // module loaded, or Err
	KindTestOutput Kind = "test-output" // one output line of a test binary (test2json framing)
	KindFailure    Kind = "failure"     // a check of a test failed: Failure (sent on RecordsFD)
	KindFigure     Kind = "figure"      // a benchmark measured something: Figure (sent on RecordsFD)
	KindTestExit   Kind = "test-exit"   // a test binary ended: ExitCode or Err
	KindUnload     Kind = "unload"      // module unloaded, or Err
	KindLeaks      Kind = "leaks"       // kmemleak's reports after the unload (Line; empty: none), or Err
	KindModuleDone Kind = "module-done" // a module's run ended: Taint
	KindDone       Kind = "done"        // runner finished: Taint; the VM powers off next
)

// Event is one line on the results channel.
type Event struct {
	Kind     Kind     `json:"kind"`
	Module   string   `json:"module,omitempty"` // the ModuleRun's Name, for the events of a module's run
	Binary   string   `json:"binary,omitempty"` // test binary, for test events
	Line     string   `json:"line,omitempty"`   // for KindTestOutput, without the newline
	ExitCode int      `json:"exit_code,omitempty"`
	Err      string   `json:"err,omitempty"`
	Kernel   string   `json:"kernel,omitempty"` // uname -r, for KindStart
	Taint    uint64   `json:"taint,omitempty"`  // /proc/sys/kernel/tainted
	Failure  *Failure `json:"failure,omitempty"`
	Figure   *Figure  `json:"figure,omitempty"`
	// Entries are, for KindLoad, the /proc entries loading the module
	// created (/proc/pid), which the tests find in EnvProcCreated.
	Entries []string `json:"entries,omitempty"`
}

// EnvProcCreated names, for the test binaries, the /proc entries loading
// the module created, comma-separated: a test of an entry that is not
// there can say which one the module made instead.
const EnvProcCreated = "PIDLAB_PROC_CREATED"

// Failure is a check of a guest test that failed, as data, so that the
// host's report shows it without reading it back out of the test's text:
// what was checked, what the kernel says (Expected) and what the module
// gave (Got), and the likely cause.
type Failure struct {
	Test     string `json:"test"`           // the Go test's full name, subtests included
	Check    string `json:"check"`          // what was checked: "ppid: module vs /proc/42/stat field 4"
	Expected string `json:"expected"`       // what the kernel itself exposes, or what the contract asks
	Got      string `json:"got"`            // what the module gave
	Hint     string `json:"hint,omitempty"` // the likely cause and its fix, for someone writing the module
}

// String is the failure as a test's error message: a person reads it in
// the test's output.
func (f Failure) String() string {
	msg := f.Check + "\nexpected: " + f.Expected + "\ngot: " + f.Got
	if f.Hint != "" {
		msg += "\nhint: " + f.Hint
	}
	return msg
}

// Figure is what a guest benchmark measured, as data, so that the host's
// report and terminal show it without reading it back out of the
// benchmark's text: "fork+exit+wait, loaded/unloaded" 1.04 "×".
type Figure struct {
	Test  string  `json:"test"` // the benchmark's full name
	Name  string  `json:"name"` // what was measured
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`            // ns/op, ×, …
	About string  `json:"about,omitempty"` // how: medians of how many rounds, of what
}

// Record is one line a test binary writes on RecordsFD: a Failure or a
// Figure.
type Record struct {
	Failure *Failure `json:"failure,omitempty"`
	Figure  *Figure  `json:"figure,omitempty"`
}

// A test binary writes its Records, one JSON object a line, to the file
// descriptor RecordsFD, which the runner opens for it and names in the
// environment variable RecordsEnv.
const (
	RecordsFD  = 3
	RecordsEnv = "PIDLAB_RECORDS_FD"
)

// Manifest tells the runner what to do; the host writes it into the
// initramfs at ManifestPath.
type Manifest struct {
	// Modules are tested one after the other in one boot: each loaded,
	// its test binaries run, unloaded and scanned for leaks before the next.
	Modules []ModuleRun `json:"modules"`
	// Shell asks for an interactive shell on ConsolePort instead of the
	// tests: the first module stays loaded until the shell exits (mage
	// vm:shell).
	Shell bool `json:"shell,omitempty"`
	// Try is what the shell suggests trying first (the module's manifest's
	// try): echo 1 > /proc/pid; cat /proc/pid.
	Try string `json:"try,omitempty"`
}

// ModuleRun is one module's part of a run.
type ModuleRun struct {
	// Name is the module folder's (procpid): every event of this module's
	// run carries it, so that the host judges each module on its own.
	Name       string       `json:"name"`
	Module     string       `json:"module"`      // path of the .ko in the guest
	ModuleName string       `json:"module_name"` // name for delete_module
	Tests      []TestBinary `json:"tests"`
	// Reload gives each test binary after the first a freshly loaded
	// module (the module's manifest asks for it).
	Reload bool     `json:"reload,omitempty"`
	Env    []string `json:"env"` // added to the test binaries' environment
}

// TestBinary is a `go test -c` binary and its flags.
type TestBinary struct {
	Path string   `json:"path"`
	Args []string `json:"args"`
}

// Paths inside the guest.
const (
	ManifestPath = "/pidlab/manifest.json"
	ResultsPort  = "/dev/ttyS1"
	ConsolePort  = "/dev/ttyS0" // the kernel console: QEMU's standard input and output
)
