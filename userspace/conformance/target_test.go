//go:build pidlab_guest

package conformance

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/userspace/guesttest"
	"github.com/pidlab/pidlab/userspace/procfs"
)

// target is a running pidlab-target process, a child of the test process.
type target = guesttest.Target

// startTarget runs pidlab-target with args and waits until it is ready
// (and asleep, in a blocking mode); t.Cleanup kills and reaps it.
func startTarget(t *testing.T, args ...string) *target {
	t.Helper()
	return guesttest.StartTarget(t, targetPath, nil, args...)
}

// startTargetWith is startTarget with credentials or clone flags.
func startTargetWith(t *testing.T, attr *syscall.SysProcAttr, args ...string) *target {
	t.Helper()
	return guesttest.StartTarget(t, targetPath, attr, args...)
}

// waitState polls until pid is in state want (see guesttest.WaitState).
func waitState(t *testing.T, pid int, want string) {
	t.Helper()
	guesttest.WaitState(t, pid, want)
}

// waitStat polls /proc/<pid>/stat until done holds, and returns that stat.
func waitStat(t *testing.T, pid int, what string, done func(procfs.Stat) bool) procfs.Stat {
	t.Helper()
	deadline := time.Now().Add(guesttest.StateTimeout)
	for {
		s := requireStat(t, pid)
		if done(s) {
			return s
		}
		require.True(t, time.Now().Before(deadline),
			"pid %d did not reach %s within %v; last stat: %+v", pid, what, guesttest.StateTimeout, s)
		time.Sleep(guesttest.PollInterval)
	}
}

// asUser runs a target with these real, effective and saved IDs.
func asUser(uid, gid uint32) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
}

// inNewPIDNamespace runs a target as PID 1 of a new PID namespace.
func inNewPIDNamespace() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
}
