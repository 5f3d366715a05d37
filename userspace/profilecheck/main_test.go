//go:build pidlab_guest

// Package profilecheck checks any /proc/pid module against a profile
// (userspace/profile): the record's fields against the kernel's own
// /proc/[pid]/stat and status, and the robustness checks every module
// owes its users. It runs only inside the pidlab guest, first of the
// guest's suites, so that the module has not been written to yet.
//
// A failure prints "want:", "got:" and "hint:" lines, which the host's
// verdict table shows.
package profilecheck

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/pidlab/pidlab/userspace/guest"
	"github.com/pidlab/pidlab/userspace/profile"
)

var (
	prof       *profile.Profile
	targetPath string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "profilecheck: %v\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func setup() error {
	if os.Getenv("PIDLAB_GUEST") != "1" {
		return errors.New("refusing to run: PIDLAB_GUEST=1 is not set; these checks write to a kernel module and kill processes, so they run only inside the pidlab guest (go tool mage validate)")
	}
	targetPath = os.Getenv("PIDLAB_TARGET")
	if targetPath == "" {
		return errors.New("PIDLAB_TARGET is not set: it names the pidlab-target helper (userspace/target)")
	}
	var err error
	if prof, err = profile.FromJSON([]byte(os.Getenv(profile.EnvGuestJSON))); err != nil {
		return fmt.Errorf("%s: %w", profile.EnvGuestJSON, err)
	}
	return nil
}

// markTest names the test in the kernel log, for a crash's hint.
func markTest(t *testing.T) { guest.MarkTest(t.Name()) }
