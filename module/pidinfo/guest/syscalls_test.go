//go:build pidlab_guest

package guest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

func ftKill(pid int, sig unix.Signal) unix.Errno {
	_, _, e := unix.Syscall(sysFtKill, uintptr(pid), uintptr(sig), 0)
	return e
}

// catcher is a pidinfo-target in catch mode: it reports each signal that
// reaches it with its siginfo.
type catcher struct {
	PID   int
	lines chan string
}

func startCatcher(t *testing.T, attr *syscall.SysProcAttr) *catcher {
	t.Helper()
	path, err := targetPath()
	require.NoError(t, err)
	cmd := exec.Command(path, "catch")
	cmd.SysProcAttr = attr
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	c := &catcher{PID: cmd.Process.Pid, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	require.Equal(t, "ready", c.next(t), "catch's first line")
	return c
}

// next is the catcher's next line: "signal <signo> <si_pid> <si_code> <si_uid>".
func (c *catcher) next(t *testing.T) string {
	t.Helper()
	select {
	case line := <-c.lines:
		return line
	case <-time.After(20 * time.Second):
		require.FailNow(t, fmt.Sprintf("pidinfo-target catch (%d) reported nothing within 20 s", c.PID))
		return ""
	}
}

// TestFtKillDeliversAsKillDoes sends each signal by ft_kill and by
// kill(2): the receiver's siginfo must be the same, from this process.
func TestFtKillDeliversAsKillDoes(t *testing.T) {
	guesttest.Mark(t)
	requirePatchedKernel(t)
	c := startCatcher(t, nil)
	for _, sig := range []unix.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGUSR1, unix.SIGTERM, unix.SIGCHLD, unix.Signal(40)} {
		require.NoError(t, unix.Kill(c.PID, sig))
		byKill := c.next(t)
		require.Equal(t, fmt.Sprintf("signal %d %d 0 0", sig, os.Getpid()), byKill, "kill(2)'s siginfo: signo, si_pid, si_code SI_USER, si_uid")
		e := ftKill(c.PID, sig)
		if !assert.Equal(t, "success", guesttest.ErrnoString(e), "ft_kill(%d, %d)", c.PID, sig) {
			continue
		}
		assert.Equal(t, byKill, c.next(t), "ft_kill's siginfo, as kill(2)'s")
	}

	victim := start(t, nil, "pause")
	require.Equal(t, "success", guesttest.ErrnoString(ftKill(victim.PID, unix.SIGKILL)))
	guesttest.WaitState(t, victim.PID, "Z")
}

func TestFtKillChecksWhoAsks(t *testing.T) {
	guesttest.Mark(t)
	requirePatchedKernel(t)
	roots := startCatcher(t, nil)
	nobodys := startCatcher(t, nobody())

	hint := "check the sender's permission as kill(2) does: send with kill_pid_info() or group_send_sig_info(), which call check_kill_permission()"
	for _, sig := range []unix.Signal{unix.SIGTERM, 0} {
		got := run(t, nobody(), "kill", strconv.Itoa(roots.PID), strconv.Itoa(int(sig)))
		guesttest.Same(t, fmt.Sprintf("ft_kill(%d, %d) by nobody of root's process", roots.PID, sig), guesttest.ErrnoString(unix.EPERM), guesttest.ErrnoString(unix.Errno(atoi(t, got[0]))), hint)
	}
	select {
	case line := <-roots.lines:
		assert.Fail(t, "root's process got a signal from nobody", line)
	case <-time.After(200 * time.Millisecond):
	}

	got := run(t, nobody(), "kill", strconv.Itoa(nobodys.PID), strconv.Itoa(int(unix.SIGUSR2)))
	assert.Equal(t, []string{"0"}, got, "nobody's ft_kill of its own process")
	line := nobodys.next(t)
	assert.Regexp(t, fmt.Sprintf(`^signal %d \d+ 0 65534$`, unix.SIGUSR2), line, "from nobody (si_uid 65534), SI_USER")
}

func TestFtKillProbesAndRefuses(t *testing.T) {
	guesttest.Mark(t)
	requirePatchedKernel(t)
	path, err := targetPath()
	require.NoError(t, err)
	gone := guesttest.GoneTarget(t, path)
	alive := start(t, nil, "pause")
	for _, tc := range []struct {
		pid  int
		sig  int
		want unix.Errno
	}{
		{alive.PID, 0, 0},
		{gone, 0, unix.ESRCH},
		{gone, int(unix.SIGTERM), unix.ESRCH},
		{alive.PID, 65, unix.EINVAL},
		{alive.PID, -1, unix.EINVAL},
		{0, int(unix.SIGTERM), unix.EINVAL},
		{-1, int(unix.SIGTERM), unix.EINVAL},
	} {
		_, _, e := unix.Syscall(sysFtKill, uintptr(tc.pid), uintptr(tc.sig), 0)
		assert.Equal(t, guesttest.ErrnoString(tc.want), guesttest.ErrnoString(e), "ft_kill(%d, %d)", tc.pid, tc.sig)
	}
	guesttest.WaitState(t, alive.PID, "S") // still there, untouched
}

// waitResult is what pidinfo-target's wait mode printed.
type waitResult struct {
	Ret, Errno, Status, Child int
	CPU, Wall                 time.Duration
}

func waitFor(t *testing.T, how string, c ...string) waitResult {
	t.Helper()
	f := strings.Fields(run(t, nil, append([]string{"wait", how}, c...)...)[0])
	require.Len(t, f, 6)
	return waitResult{atoi(t, f[0]), atoi(t, f[1]), atoi(t, f[2]), atoi(t, f[3]),
		time.Duration(atoi(t, f[4])), time.Duration(atoi(t, f[5]))}
}

// TestFtWaitIsWait runs each case with ft_wait and with the C library's
// wait(2): the same child, the same status word.
func TestFtWaitIsWait(t *testing.T) {
	guesttest.Mark(t)
	requirePatchedKernel(t)
	for _, c := range [][]string{{"exit", "0"}, {"exit", "7"}, {"exit", "255"}, {"signal", "15"}, {"signal", "9"}, {"stopped"}} {
		t.Run(strings.Join(c, "-"), func(t *testing.T) {
			libc, ft := waitFor(t, "libc", c...), waitFor(t, "ft", c...)
			require.Equal(t, libc.Child, libc.Ret, "wait(2) returns the child's PID")
			assert.Equal(t, ft.Child, ft.Ret, "ft_wait returns the child's PID")
			assert.Zero(t, ft.Errno)
			assert.Equal(t, fmt.Sprintf("%#x", libc.Status), fmt.Sprintf("%#x", ft.Status), "the status word, as wait(2)'s")
		})
	}
	ws := unix.WaitStatus(waitFor(t, "ft", "stopped").Status)
	assert.True(t, ws.Signaled() && ws.Signal() == unix.SIGKILL, "a stopped child is not reported without WUNTRACED; its later death is: %#x", uint32(ws))
}

func TestFtWaitErrors(t *testing.T) {
	guesttest.Mark(t)
	requirePatchedKernel(t)
	none := waitFor(t, "ft", "none")
	assert.Equal(t, -1, none.Ret)
	assert.Equal(t, guesttest.ErrnoString(unix.ECHILD), guesttest.ErrnoString(unix.Errno(none.Errno)), "no children")
	intr := waitFor(t, "ft", "eintr")
	assert.Equal(t, -1, intr.Ret)
	assert.Equal(t, guesttest.ErrnoString(unix.EINTR), guesttest.ErrnoString(unix.Errno(intr.Errno)), "a signal whose handler has no SA_RESTART")
	assert.Greater(t, intr.Wall, 500*time.Millisecond, "it waited for the alarm (1 s)")
}

// TestFtWaitSleeps measures the waiting thread's CPU time while its child
// sleeps: a wait that sleeps on the kernel's wait queue uses next to none,
// one that polls uses the whole wait.
func TestFtWaitSleeps(t *testing.T) {
	guesttest.Mark(t)
	requirePatchedKernel(t)
	r := waitFor(t, "ft", "cpu", "1000")
	require.Equal(t, r.Child, r.Ret)
	t.Logf("ft_wait for a child that sleeps 1 s: %v of CPU in %v", r.CPU, r.Wall)
	if r.CPU > r.Wall/10 {
		guesttest.Fail(t, guestapi.Failure{Check: "ft_wait's CPU time while blocked", Expected: fmt.Sprintf("under a tenth of the %v it waited", r.Wall.Round(time.Millisecond)), Got: r.CPU.String(),
			Hint: "ft_wait busy-waits: sleep until a child changes state (kernel_wait4(), or a wait queue such as current->signal->wait_chldexit), do not loop over the children"})
	}
}

// TestFtForkIsFork: both returns, the child's parent is the caller, and
// memory written after the fork is not shared.
func TestFtForkIsFork(t *testing.T) {
	guesttest.Mark(t)
	requirePatchedKernel(t)
	tg := start(t, nil, "fork")
	require.Len(t, tg.Info, 6, "ready <ret> <x> <child> <child's parent> <child's ret> <child's x>")
	child := tg.InfoInt(t, 2)
	assert.Equal(t, child, tg.InfoInt(t, 0), "ft_fork returns the child's PID in the parent")
	assert.Equal(t, 0, tg.InfoInt(t, 4), "and 0 in the child")
	assert.Equal(t, tg.PID, tg.InfoInt(t, 3), "the child's getppid() is the caller")
	assert.Equal(t, 1, tg.InfoInt(t, 1), "the parent's x after the child wrote 2 to its own")
	assert.Equal(t, 2, tg.InfoInt(t, 5), "the child's x")
	assert.Equal(t, strconv.Itoa(tg.PID), statFields(t, child)[4], "/proc/%d/stat's ppid", child)
	assert.Contains(t, procChildren(t, tg.PID), child, "/proc/%d/task/*/children", tg.PID)
}
