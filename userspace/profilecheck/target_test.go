//go:build pidlab_guest

package profilecheck

import (
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guesttest"
)

// startTarget runs pidlab-target in a mode and waits until it is ready and
// its main thread is in state want; t.Cleanup kills and reaps it.
func startTarget(t *testing.T, want string, args ...string) int {
	t.Helper()
	tg := guesttest.StartTarget(t, targetPath, nil, args...)
	guesttest.WaitState(t, tg.PID, want)
	return tg.PID
}

// goneTarget returns the PID of a target that has exited and been reaped.
func goneTarget(t *testing.T) int {
	t.Helper()
	return guesttest.GoneTarget(t, targetPath)
}

func stopTarget(t *testing.T, pid int) {
	t.Helper()
	require.NoError(t, unix.Kill(pid, unix.SIGSTOP))
	guesttest.WaitState(t, pid, "T")
}
