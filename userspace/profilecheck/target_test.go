//go:build pidlab_guest

package profilecheck

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/procfs"
)

// Generous, because the guest runs under TCG emulation.
const stateTimeout = 20 * time.Second

// startTarget runs pidlab-target in a mode and waits until it reports
// ready and its main thread is in state want; t.Cleanup kills and reaps it.
func startTarget(t *testing.T, want string, args ...string) int {
	t.Helper()
	cmd := exec.Command(targetPath, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start(), "start %s %q", targetPath, args)
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // it may be gone already
		_ = cmd.Wait()         // a killed helper's status says nothing
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "pidlab-target %q printed no ready line", args)
	require.True(t, strings.HasPrefix(line, "ready"), "pidlab-target %q: %q", args, line)
	pid := cmd.Process.Pid
	waitState(t, pid, want)
	return pid
}

// goneTarget returns the PID of a target that has exited and been reaped,
// so no process has it (PIDs are not reused this soon).
func goneTarget(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(targetPath, "exit")
	require.NoError(t, cmd.Run(), "pidlab-target exit")
	pid := cmd.Process.Pid
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	require.ErrorIs(t, err, os.ErrNotExist, "pid %d after it was reaped", pid)
	return pid
}

// waitState polls /proc/<pid>/stat until its state letter is want.
func waitState(t *testing.T, pid int, want string) {
	t.Helper()
	deadline := time.Now().Add(stateTimeout)
	for {
		// status, not stat: reading stat sets the floor of the process's
		// adjusted CPU times, which a module's per-thread sums do not see.
		s, err := procfs.ReadStatus(pid)
		require.NoError(t, err)
		if s.State == want {
			return
		}
		require.True(t, time.Now().Before(deadline), "pid %d not in state %s after %v: %s", pid, want, stateTimeout, s.State)
		time.Sleep(2 * time.Millisecond)
	}
}

func stopTarget(t *testing.T, pid int) {
	t.Helper()
	require.NoError(t, unix.Kill(pid, unix.SIGSTOP))
	waitState(t, pid, "T")
}
