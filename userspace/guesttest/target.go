package guesttest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/procfs"
)

// Timeouts are generous because the guest runs under TCG emulation, where
// a fork and exec alone takes 10-50 ms and a loaded host stretches that.
const (
	ReadyTimeout = 20 * time.Second
	StateTimeout = 10 * time.Second
	PollInterval = 2 * time.Millisecond
)

// Target is a running pidlab-target process, a child of the test process.
type Target struct {
	PID  int
	Info []string // the words after "ready" on its ready line
	cmd  *exec.Cmd
	done bool // reaped
}

// blockingModes are the pidlab-target modes that block once ready.
var blockingModes = map[string]bool{
	"sleep": true, "threads": true, "comm": true, "creds": true,
	"view": true, "view-in": true, "open-modes": true, "exit-child": true,
	"trace": true,
}

// StartTarget runs the pidlab-target at path with args (attr: credentials
// or clone flags, or nil) and waits for its ready line; for a blocking
// mode, also until every thread sleeps, because a target is still running
// (R) for a moment after it prints "ready". t.Cleanup kills and reaps it.
func StartTarget(t testing.TB, path string, attr *syscall.SysProcAttr, args ...string) *Target {
	t.Helper()
	if attr != nil && attr.Credential != nil {
		requireOthersCanExec(t, path)
	}
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = attr
	// An *os.File is inherited directly: no copying goroutine, and a
	// helper's complaint reaches the test log unbuffered.
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start(), "start %s %q", path, args)
	tg := &Target{PID: cmd.Process.Pid, cmd: cmd}
	t.Cleanup(tg.Stop)

	info, err := readReady(stdout)
	require.NoError(t, err, "pidlab-target %q (pid %d)", args, tg.PID)
	tg.Info = info
	if len(args) > 0 && blockingModes[args[0]] {
		tg.waitAsleep(t)
	}
	return tg
}

// GoneTarget returns the PID of a pidlab-target that has exited and been
// reaped, so no process has it (PIDs are not reused this soon).
func GoneTarget(t testing.TB, path string) int {
	t.Helper()
	cmd := exec.Command(path, "exit")
	require.NoError(t, cmd.Run(), "pidlab-target exit")
	pid := cmd.Process.Pid
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	require.ErrorIs(t, err, os.ErrNotExist, "pid %d after it was reaped", pid)
	return pid
}

// waitAsleep waits until every thread of the target is in state S.
func (tg *Target) waitAsleep(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(StateTimeout)
	for {
		awake, err := awakeThreads(tg.PID)
		require.NoError(t, err, "threads of pid %d", tg.PID)
		if len(awake) == 0 {
			return
		}
		require.True(t, time.Now().Before(deadline),
			"threads of pid %d still not asleep after %v: %v", tg.PID, StateTimeout, awake)
		time.Sleep(PollInterval)
	}
}

// awakeThreads lists the threads of pid that are not in state S.
func awakeThreads(pid int) ([]string, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var awake []string
	for _, e := range entries {
		s, err := procfs.ReadStatFile(filepath.Join(dir, e.Name(), "stat"))
		if err != nil {
			return nil, err
		}
		if s.State != "S" {
			awake = append(awake, fmt.Sprintf("%s:%s", e.Name(), s.State))
		}
	}
	return awake, nil
}

// requireOthersCanExec checks that a non-root user can reach and run path,
// so that a failure to start a target as another user is reported as the
// guest's problem, not the module's.
func requireOthersCanExec(t testing.TB, path string) {
	t.Helper()
	for p := path; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.Truef(t, fi.Mode().Perm()&0o001 != 0,
			"%s has mode %v, so other users cannot run %s: the guest's file system must allow it", p, fi.Mode(), path)
		if p == "/" {
			return
		}
	}
}

// readReady reads the "ready[ info...]" line.
func readReady(r io.Reader) ([]string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		ch <- result{line, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			return nil, fmt.Errorf("no ready line (its stderr is above): %w", res.err)
		}
		words := strings.Fields(res.line)
		if len(words) == 0 || words[0] != "ready" {
			return nil, fmt.Errorf("first line %q, want \"ready ...\"", res.line)
		}
		return words[1:], nil
	case <-time.After(ReadyTimeout):
		return nil, fmt.Errorf("no ready line after %v", ReadyTimeout)
	}
}

// InfoInt returns the i-th info word as an integer.
func (tg *Target) InfoInt(t testing.TB, i int) int {
	t.Helper()
	require.Greater(t, len(tg.Info), i, "ready line info of pid %d: %q", tg.PID, tg.Info)
	n, err := strconv.Atoi(tg.Info[i])
	require.NoError(t, err, "ready line info of pid %d", tg.PID)
	return n
}

// Stop kills and reaps the target; it is idempotent.
func (tg *Target) Stop() {
	if tg.done {
		return
	}
	tg.done = true
	_ = tg.cmd.Process.Kill() // fails harmlessly if it already exited
	_ = tg.cmd.Wait()         // the exit status of a killed helper says nothing
}

// Terminate asks the target to end (SIGTERM), for a mode that cleans up
// after itself, and requires a clean exit.
func (tg *Target) Terminate(t testing.TB) {
	t.Helper()
	if tg.done {
		return
	}
	require.NoError(t, tg.cmd.Process.Signal(unix.SIGTERM), "SIGTERM to pid %d", tg.PID)
	tg.done = true
	require.NoError(t, tg.cmd.Wait(), "pid %d after SIGTERM", tg.PID)
}

// Reap kills and reaps the target now, so that its PID names no process.
func (tg *Target) Reap(t testing.TB) {
	t.Helper()
	tg.Stop()
	_, err := os.Stat(fmt.Sprintf("/proc/%d", tg.PID))
	require.ErrorIs(t, err, os.ErrNotExist, "/proc/%d after the target was reaped", tg.PID)
}

// Signal sends sig to the target and waits until its state is want.
func (tg *Target) Signal(t testing.TB, sig unix.Signal, want string) {
	t.Helper()
	require.NoError(t, unix.Kill(tg.PID, sig), "kill(%d, %v)", tg.PID, sig)
	WaitState(t, tg.PID, want)
}

// WaitState polls /proc/<pid>/status, not stat, until the process is in
// state want. Reading stat is not free of effects: it sets the floor of
// the process's adjusted utime and stime (the kernel keeps them monotonic
// per thread group), which then differ from the per-thread sums a module
// can compute. Polled while a child still ran (no system tick yet, so all
// its time counted as user time), stat went on to report utime 4 ticks
// for the zombie, whose threads' own adjusted times say 0 (seen once).
func WaitState(t testing.TB, pid int, want string) {
	t.Helper()
	deadline := time.Now().Add(StateTimeout)
	for {
		s, err := procfs.ReadStatus(pid)
		require.NoError(t, err, "/proc/%d/status", pid)
		if s.State == want {
			return
		}
		require.True(t, time.Now().Before(deadline),
			"pid %d did not reach state %s within %v; last status: %+v", pid, want, StateTimeout, s)
		time.Sleep(PollInterval)
	}
}
