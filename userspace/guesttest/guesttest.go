// Package guesttest is what every guest test suite shares: the guard that
// keeps a suite inside the pidlab guest, the marks that name each test on
// the console, the pidlab-target processes whose facts are known, and
// errno names. Suites import it from their _test.go files.
package guesttest

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guest"
)

// Main runs a suite's tests, inside the pidlab guest only: setup runs
// first and its error stops the suite (exit 1). what says what the tests
// do to the machine, for the refusal outside the guest. Listing the tests
// (-test.list) runs none, so it is allowed anywhere: the host does it to
// plan a run.
func Main(m *testing.M, suite, what string, setup func() error) {
	flag.Parse()
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	recordsFile() // open it now, close-on-exec, before a test starts a process
	if err := inGuest(what); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", suite, err)
		os.Exit(1)
	}
	if setup != nil {
		if err := setup(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", suite, err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

func inGuest(what string) error {
	if os.Getenv("PIDLAB_GUEST") != "1" {
		return fmt.Errorf("refusing to run: PIDLAB_GUEST=1 is not set; these tests %s, so they run only inside the pidlab guest (go tool mage test)", what)
	}
	return nil
}

// Mark names the running test on the console (the kernel log), so that a
// kernel report during it is blamed on it.
func Mark(t testing.TB) { guest.MarkTest(t.Name()) }

// TargetPath is the pidlab-target helper the host put in the guest
// (PIDLAB_TARGET), checked to be there and executable.
func TargetPath() (string, error) {
	path := os.Getenv("PIDLAB_TARGET")
	if path == "" {
		return "", errors.New("PIDLAB_TARGET is not set: it names the pidlab-target helper (userspace/target)")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("PIDLAB_TARGET: %w", err)
	}
	if fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("PIDLAB_TARGET %s is not executable (mode %v)", path, fi.Mode())
	}
	return path, nil
}

// ErrnoName names an error's errno as C does, "ESRCH (no such process)",
// else prints the error.
func ErrnoName(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) && errno != 0 {
		if name := unix.ErrnoName(errno); name != "" {
			return name + " (" + errno.Error() + ")"
		}
	}
	return err.Error()
}

// Errno is err's errno: 0 for no error or one that carries none.
func Errno(err error) unix.Errno {
	var errno unix.Errno
	if err == nil || !errors.As(err, &errno) {
		return 0
	}
	return errno
}

// ErrnoString names errno as ErrnoName does, and 0 "success": what a test
// compares when a call is to fail with an errno or not at all.
func ErrnoString(errno unix.Errno) string {
	if errno == 0 {
		return "success"
	}
	return ErrnoName(errno)
}

// HelperPath is the path of a module's C helper, which the host names in
// the environment variable env (its manifest's [[helper]]), checked to be
// there; source says where it comes from, for the error.
func HelperPath(env, source string) (string, error) {
	path := os.Getenv(env)
	if path == "" {
		return "", fmt.Errorf("%s is not set: it names the helper built from %s", env, source)
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s: %w", env, err)
	}
	return path, nil
}

// debugRelease ends the release of pidlab's debug kernel: its config
// fragment's CONFIG_LOCALVERSION (vmtest/kernel/kernels/debug.config).
const debugRelease = "-pidlab-debug"

// DebugKernel reports whether the guest runs pidlab's debug kernel, which
// is several times slower (KASAN, lockdep, kmemleak): a test that repeats
// an action thousands of times for a race to show on a stock kernel can
// repeat it less there, where it is run for what the debugging sees.
func DebugKernel() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	return strings.HasSuffix(unix.ByteSliceToString(u.Release[:]), debugRelease)
}
