//go:build pidlab_guest

// Package profilecheck checks any /proc/pid module against a profile
// (userspace/profile): the record's fields against the kernel's own
// /proc/[pid]/stat and status, and the robustness checks every module
// owes its users. It runs only inside the pidlab guest, first of the
// guest's suites, so that the module has not been written to yet.
//
// A failure is recorded as data (guesttest.Fail), which the host's
// verdict table shows.
package profilecheck

import (
	"fmt"
	"os"
	"testing"

	"github.com/pidlab/pidlab/userspace/guesttest"
	"github.com/pidlab/pidlab/userspace/profile"
)

var (
	prof       *profile.Profile
	targetPath string
)

func TestMain(m *testing.M) {
	guesttest.Main(m, "profilecheck", "write to a kernel module and kill processes", setup)
}

func setup() error {
	var err error
	if targetPath, err = guesttest.TargetPath(); err != nil {
		return err
	}
	if prof, err = profile.FromJSON([]byte(os.Getenv(profile.EnvGuestJSON))); err != nil {
		return fmt.Errorf("%s: %w", profile.EnvGuestJSON, err)
	}
	return nil
}

// markTest names the test on the console, for a crash's hint.
func markTest(t *testing.T) { guesttest.Mark(t) }
