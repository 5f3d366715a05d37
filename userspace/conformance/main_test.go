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
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/pidlab/pidlab/userspace/guest"
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
	flag.Parse()
	// Listing runs no test, so it is allowed anywhere.
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func setup() error {
	if os.Getenv("PIDLAB_GUEST") != "1" {
		return errors.New("refusing to run: PIDLAB_GUEST=1 is not set; these tests write /proc/pid " +
			"and start, stop, renice and kill processes, so they run only inside the pidlab guest (go tool mage test)")
	}
	targetPath = os.Getenv("PIDLAB_TARGET")
	if targetPath == "" {
		return errors.New("PIDLAB_TARGET is not set: it names the pidlab-target helper (userspace/target)")
	}
	if fi, err := os.Stat(targetPath); err != nil {
		return fmt.Errorf("PIDLAB_TARGET: %w", err)
	} else if fi.Mode()&0o111 == 0 {
		return fmt.Errorf("PIDLAB_TARGET %s is not executable (mode %v)", targetPath, fi.Mode())
	}
	// Stat does not open the file, so it leaves the first read untouched.
	if _, err := os.Stat(procPID); err != nil {
		return fmt.Errorf("%w (is the module loaded?)", err)
	}
	return nil
}

// markTest names the test in the kernel log, for a crash's hint.
func markTest(t *testing.T) { guest.MarkTest(t.Name()) }
