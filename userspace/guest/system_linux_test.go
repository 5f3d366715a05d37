package guest

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func threadSigmask(t *testing.T) unix.Sigset_t {
	t.Helper()
	var cur unix.Sigset_t
	require.NoError(t, unix.PthreadSigmask(unix.SIG_BLOCK, nil, &cur))
	return cur
}

// A kmemleak scan asked for by a thread with a signal pending reports
// nothing: the scan's thread blocks every signal, and only while it scans.
func TestScanThreadBlocksEverySignal(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := threadSigmask(t)

	var during unix.Sigset_t
	require.NoError(t, withSignalsBlocked(func() error {
		during = threadSigmask(t)
		return nil
	}))
	for _, sig := range []unix.Signal{unix.SIGCHLD, unix.SIGURG, unix.SIGTERM, unix.SIGUSR1} {
		n := uint(sig) - 1
		assert.NotZero(t, during.Val[n/64]&(1<<(n%64)), "%v blocked while scanning", sig)
	}
	assert.Equal(t, before, threadSigmask(t), "the thread's mask is as it was after the scan")
}
