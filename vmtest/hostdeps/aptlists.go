package hostdeps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/pidlab/pidlab/vmtest/progress"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// AptError marks a failure that fresh package lists may cure: apt did not
// know a package, or the mirror no longer has the version the lists name
// (a fresh machine's lists are often weeks old, and Debian removes an
// old kernel ABI's packages). Err says what failed, for a person.
type AptError struct{ Err error }

func (e *AptError) Error() string { return e.Err.Error() }
func (e *AptError) Unwrap() error { return e.Err }

// AptFailed wraps err as an *AptError.
func AptFailed(err error) error { return &AptError{Err: err} }

// AptLists runs apt-get update on demand: at most once per AptLists (the
// process shares Lists), and only as root, since a harness that already
// installs packages as root may refresh their lists as well. Without root
// the failure stands, with its fix for a person to run.
type AptLists struct {
	// CanUpdate reports whether apt-get update may run here; nil is
	// "running as root and apt-get is on PATH".
	CanUpdate func() bool
	// Update runs apt-get update; nil runs the real one.
	Update func(ctx context.Context, log *progress.Log) error

	mu    sync.Mutex
	tried bool
	err   error
}

// Lists is the process's one AptLists.
var Lists = &AptLists{}

// Retry runs op and, when it fails with an *AptError, refreshes apt's
// package lists (once per AptLists, as root) and runs op once more. When
// the lists cannot be refreshed, or already were, op's error is returned
// as it is; when apt-get update itself fails, a setup error names it.
func (a *AptLists) Retry(ctx context.Context, log *progress.Log, op func() error) error {
	err := op()
	var aptErr *AptError
	if !errors.As(err, &aptErr) || !a.canUpdate() || ctx.Err() != nil {
		return err // not apt's lists, nothing to do about them, or the run was stopped
	}
	refreshed, uerr := a.refresh(ctx, log)
	if uerr != nil {
		return verdict.SetupError("apt-get update   (check the network and /etc/apt/sources.list; then run again)",
			"apt-get update failed: %v\n(it ran because: %v)", uerr, firstLine(err))
	}
	if !refreshed {
		return err // the lists are as fresh as apt-get update makes them
	}
	return op()
}

// refresh runs apt-get update unless this AptLists already did; refreshed
// is whether it ran now.
func (a *AptLists) refresh(ctx context.Context, log *progress.Log) (refreshed bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tried {
		return false, a.err
	}
	a.tried = true
	log.Info("apt's package lists are stale or missing: running apt-get update")
	update := a.Update
	if update == nil {
		update = aptGetUpdate
	}
	a.err = update(ctx, log)
	return a.err == nil, a.err
}

func (a *AptLists) canUpdate() bool {
	if a.CanUpdate != nil {
		return a.CanUpdate()
	}
	return CanInstall()
}

// CanInstall reports whether this process may run apt-get as root.
func CanInstall() bool {
	_, err := exec.LookPath("apt-get")
	return os.Geteuid() == 0 && err == nil
}

func aptGetUpdate(ctx context.Context, log *progress.Log) error {
	_, err := log.CombinedOutput(ctx, "", aptEnv, "apt-get", "update")
	var ce *progress.CommandError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w\n%s", err, progress.LastLines(ce.Output, 5))
	}
	return err
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
