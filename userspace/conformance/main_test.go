//go:build pidlab_guest

// Package conformance checks the /proc/pid module against the kernel's
// own /proc/[pid]/stat and /proc/[pid]/status, field by field, using
// target processes whose facts are known (userspace/target).
//
// It runs only inside the pidlab guest, as root in the initial namespaces
// with the module loaded: it writes the module's one global PID, starts,
// stops, renices, traces and kills processes. The build tag keeps it out
// of the host's "go test ./...", and TestMain refuses to run without
// PIDLAB_GUEST=1. The tests share that global PID, so none is parallel.
package conformance

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/pidlab/pidlab/userspace/guesttest"
)

// targetPath is the statically linked pidlab-target helper.
var targetPath string

func init() {
	// Keep the main goroutine, which only waits in m.Run, on the main
	// thread: the thread group leader then sleeps through every test, so
	// the test process's own state is stable (TestTestProcessItself).
	runtime.LockOSThread()
}

func TestMain(m *testing.M) {
	guesttest.Main(m, "conformance", "write /proc/pid and start, stop, renice and kill processes", setup)
}

func setup() error {
	var err error
	if targetPath, err = guesttest.TargetPath(); err != nil {
		return err
	}
	// Stat does not open the file, so it leaves the first read untouched.
	if _, err := os.Stat(procPID); err != nil {
		return fmt.Errorf("%w (is the module loaded?)", err)
	}
	return nil
}

// markTest names the test on the console, for a crash's hint.
func markTest(t *testing.T) { guesttest.Mark(t) }
