//go:build pidlab_guest

package conformance

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/procfs"
)

// Each test below selects a process whose facts are known, compares every
// field with the kernel's /proc (requireMatchesStat), and then asserts the
// known facts directly, so that a shared mistake in the stat parser and
// the module cannot pass unnoticed.

// busyTicks is how much CPU time a busy target accumulates before it is
// read: 100 ms, well above the slack, and quick even under TCG.
const busyTicks = 10

const (
	targetComm  = "pidlab-target"
	kthreaddPID = 2
)

func TestSleepingProcess(t *testing.T) {
	markTest(t)
	tg := startTarget(t, "sleep")
	rec := requireMatchesStat(t, tg.PID)
	checkEqual(t, tg.PID, rec.PID, "", "pid")
	checkEqual(t, targetComm, rec.Comm, "", "comm")
	checkEqual(t, "S", rec.State, "", "state of a process in pause()")
	checkEqual(t, os.Getpid(), rec.PPID, "", "ppid of a child of the test process")
	assert.Zero(t, rec.UID, "uid of a child of root")
	assert.Zero(t, rec.GID, "gid of a child of root")
	checkEqual(t, 20, rec.Priority, "", "priority at nice 0")
	assert.Zero(t, rec.Nice, "nice")
	checkEqual(t, 1, rec.Threads, "", "threads of a single-threaded process")
	assert.Positive(t, rec.VSize, "vsize of a process with an address space")
	assert.Positive(t, rec.RSS, "rss of a process with an address space")
}

func TestSpinningProcessUserTime(t *testing.T) {
	markTest(t)
	tg := startTarget(t, "spin")
	waitStat(t, tg.PID, fmt.Sprintf("utime >= %d", busyTicks),
		func(s procfs.Stat) bool { return s.UTime >= busyTicks })
	rec := requireMatchesStat(t, tg.PID)
	checkEqual(t, "R", rec.State, "", "state of a spinning process")
	assert.GreaterOrEqual(t, rec.UTime, uint64(busyTicks-cpuSplitSlack),
		"utime of a process that has spun for %d ticks", busyTicks)
}

func TestSyscallProcessSystemTime(t *testing.T) {
	markTest(t)
	tg := startTarget(t, "syscalls")
	waitStat(t, tg.PID, fmt.Sprintf("stime >= %d", busyTicks),
		func(s procfs.Stat) bool { return s.STime >= busyTicks })
	rec := requireMatchesStat(t, tg.PID)
	checkEqual(t, "R", rec.State, "", "state of a process in a read(2) loop")
	assert.GreaterOrEqual(t, rec.STime, uint64(busyTicks-cpuSplitSlack),
		"stime of a process that has spent %d ticks in the kernel", busyTicks)
}

func TestThreadCount(t *testing.T) {
	markTest(t)
	const n = 4
	tg := startTarget(t, "threads", strconv.Itoa(n))
	require.Len(t, tg.Info, n-1, "TIDs of the extra threads")
	rec := requireMatchesStat(t, tg.PID)
	checkEqual(t, n, rec.Threads, "", "threads of a process with %d threads", n)
	assert.Equal(t, n, requireStatus(t, tg.PID).Threads, "Threads: in /proc/%d/status", tg.PID)
}

func TestNonLeaderThreadID(t *testing.T) {
	markTest(t)
	// Written as a TID, the module reports that thread, as /proc/<tid>/stat
	// does: its own ID and comm, the process's parent and thread count.
	tg := startTarget(t, "threads", "3")
	tid := tg.InfoInt(t, 1) // the target names it "pidlab-thr2"
	rec := requireMatchesStat(t, tid)
	checkEqual(t, tid, rec.PID, "", "pid of TID %d", tid)
	checkEqual(t, "pidlab-thr2", rec.Comm, "", "comm of TID %d: the thread's own name", tid)
	checkEqual(t, os.Getpid(), rec.PPID, "", "ppid of TID %d: its process's parent", tid)
	checkEqual(t, 3, rec.Threads, "", "threads of the process of TID %d", tid)
}

func TestNonLeaderThreadNice(t *testing.T) {
	markTest(t)
	// Nice is per thread: renicing one TID must not show on the leader.
	tg := startTarget(t, "threads", "2")
	tid := tg.InfoInt(t, 0)
	require.NoError(t, unix.Setpriority(unix.PRIO_PROCESS, tid, 10), "renice TID %d to 10", tid)

	rec := requireMatchesStat(t, tid)
	checkEqual(t, 10, rec.Nice, "", "nice of the reniced TID %d", tid)
	checkEqual(t, 30, rec.Priority, "", "priority of the reniced TID %d", tid)
	leader := requireMatchesStat(t, tg.PID)
	assert.Zero(t, leader.Nice, "nice of leader %d, whose other thread was reniced", tg.PID)
	checkEqual(t, 20, leader.Priority, "", "priority of leader %d", tg.PID)
}

func TestWholeProcessCPUTime(t *testing.T) {
	markTest(t)
	// The leader sleeps while two other threads spin: the process's CPU
	// time is theirs, and stat reports it for the leader and any TID.
	tg := startTarget(t, "spin-threads", "2")
	waitStat(t, tg.PID, fmt.Sprintf("utime >= %d", busyTicks),
		func(s procfs.Stat) bool { return s.UTime >= busyTicks })

	t.Run("leader", func(t *testing.T) {
		own, err := procfs.ReadStatFile(fmt.Sprintf("/proc/%d/task/%d/stat", tg.PID, tg.PID))
		require.NoError(t, err, "the leader's own times")
		rec := requireMatchesStat(t, tg.PID)
		checkThat(t, rec.UTime > own.UTime+cpuSplitSlack, fmt.Sprintf("more than %d ticks", own.UTime+cpuSplitSlack), fmt.Sprintf("%d ticks", rec.UTime),
			hintCPUTimeThreads, "utime of pid %d must include its spinning threads; the leader alone has %d ticks", tg.PID, own.UTime)
		checkEqual(t, 3, rec.Threads, "", "threads")
	})
	t.Run("spinning thread", func(t *testing.T) {
		tid := tg.InfoInt(t, 0)
		rec := requireMatchesStat(t, tid)
		checkEqual(t, tid, rec.PID, "", "pid of TID %d", tid)
		checkEqual(t, "R", rec.State, "", "state of spinning TID %d", tid)
	})
}

func TestUIDAndGID(t *testing.T) {
	markTest(t)
	tg := startTargetWith(t, asUser(1234, 5678), "sleep")
	rec := requireMatchesStat(t, tg.PID)
	checkEqual(t, uint32(1234), rec.UID, "", "uid of a process started as 1234:5678")
	checkEqual(t, uint32(5678), rec.GID, "", "gid of a process started as 1234:5678")
}

func TestRealIDsNotEffective(t *testing.T) {
	markTest(t)
	tg := startTarget(t, "creds", "1234", "4321", "5678", "8765")
	status := requireStatus(t, tg.PID)
	require.Equal(t, [4]uint32{1234, 4321, 4321, 4321}, status.Uid, "Uid: of the target (precondition)")
	require.Equal(t, [4]uint32{5678, 8765, 8765, 8765}, status.Gid, "Gid: of the target (precondition)")
	rec := requireMatchesStat(t, tg.PID)
	checkEqual(t, uint32(1234), rec.UID, "", "uid: the real one (effective is 4321)")
	checkEqual(t, uint32(5678), rec.GID, "", "gid: the real one (effective is 8765)")
}

func TestNiceAndPriority(t *testing.T) {
	markTest(t)
	// For normal policies priority is 20 + nice (stat field 18).
	for _, nice := range []int{10, 19, -5} {
		t.Run(fmt.Sprintf("nice %d", nice), func(t *testing.T) {
			tg := startTarget(t, "sleep")
			require.NoError(t, unix.Setpriority(unix.PRIO_PROCESS, tg.PID, nice), "renice %d to %d", tg.PID, nice)
			rec := requireMatchesStat(t, tg.PID)
			checkEqual(t, nice, rec.Nice, "", "nice after setpriority(%d)", nice)
			checkEqual(t, 20+nice, rec.Priority, "", "priority at nice %d", nice)
		})
	}
}

func TestRealtimePriority(t *testing.T) {
	markTest(t)
	// For SCHED_FIFO, stat's priority is -1 - rt_priority. The target only
	// sleeps, so a real-time policy cannot starve the guest.
	const rtPriority = 10
	tg := startTarget(t, "sleep")
	attr := unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: rtPriority}
	require.NoError(t, unix.SchedSetAttr(tg.PID, &attr, 0), "sched_setattr(%d, SCHED_FIFO %d)", tg.PID, rtPriority)
	rec := requireMatchesStat(t, tg.PID)
	checkEqual(t, -1-rtPriority, rec.Priority, "", "priority under SCHED_FIFO %d", rtPriority)
	assert.Zero(t, rec.Nice, "nice under SCHED_FIFO")
}

func TestStoppedProcess(t *testing.T) {
	markTest(t)
	tg := startTarget(t, "sleep")
	tg.Signal(t, unix.SIGSTOP, "T")
	rec := requireMatchesStat(t, tg.PID)
	checkEqual(t, "T", rec.State, "", "state after SIGSTOP")
}

func TestTracedProcess(t *testing.T) {
	markTest(t)
	tg := startTarget(t, "sleep")
	// ptrace requests must come from the tracing thread, and the tracee is
	// killed and reaped before that thread is released.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer tg.Stop()
	require.NoError(t, unix.PtraceSeize(tg.PID), "PTRACE_SEIZE %d", tg.PID)
	require.NoError(t, unix.PtraceInterrupt(tg.PID), "PTRACE_INTERRUPT %d", tg.PID)
	waitState(t, tg.PID, "t")
	rec := requireMatchesStat(t, tg.PID)
	checkEqual(t, "t", rec.State, "", "state in a ptrace stop")
}

func TestPPIDIsRealParentWhileTracedByAnother(t *testing.T) {
	markTest(t)
	// Stat's ppid is the real parent (task->real_parent), not the tracer
	// (task->parent). The two differ only while a process other than the
	// real parent traces the task, so TestTracedProcess, whose tracer is
	// the real parent, cannot tell them apart; here a sibling traces.
	tg := startTarget(t, "sleep")
	// Registered later, the tracer is killed first at cleanup, which
	// detaches it: only then can the test process reap the tracee.
	tracer := startTarget(t, "trace", strconv.Itoa(tg.PID))
	require.Equal(t, tracer.PID, requireTracerPID(t, tg.PID),
		"TracerPid: in /proc/%d/status: the tracer must be pid %d (precondition)", tg.PID, tracer.PID)
	require.Equal(t, os.Getpid(), requireStat(t, tg.PID).PPID,
		"ppid in /proc/%d/stat: the real parent (precondition)", tg.PID)

	rec := requireMatchesStat(t, tg.PID)
	checkEqual(t, os.Getpid(), rec.PPID, hintPPIDTracer,
		"ppid of pid %d: its real parent, the test process (%d), not its tracer (%d)", tg.PID, os.Getpid(), tracer.PID)
	checkEqual(t, "S", rec.State, "", "state of a seized tracee in pause(): seizing does not stop it")
}

// requireTracerPID returns TracerPid: from /proc/<pid>/status, the PID of
// the thread tracing pid, or 0.
func requireTracerPID(t *testing.T, pid int) int {
	t.Helper()
	path := fmt.Sprintf("/proc/%d/status", pid)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			require.NoError(t, err, "TracerPid: in %s", path)
			return n
		}
	}
	require.Failf(t, "no TracerPid: line", "%s:\n%s", path, b)
	return 0
}

func TestZombie(t *testing.T) {
	markTest(t)
	t.Run("child of the test", func(t *testing.T) {
		// os/exec reaps only in Wait, which runs at cleanup.
		tg := startTarget(t, "exit")
		waitState(t, tg.PID, "Z")
		assertZombie(t, tg.PID, os.Getpid())
	})
	t.Run("child of a target", func(t *testing.T) {
		parent := startTarget(t, "exit-child")
		child := parent.InfoInt(t, 0)
		waitState(t, child, "Z")
		assertZombie(t, child, parent.PID)
	})
}

func assertZombie(t *testing.T, pid, ppid int) {
	t.Helper()
	rec := requireMatchesStat(t, pid)
	checkEqual(t, "Z", rec.State, "", "state of an exited, unreaped process")
	checkEqual(t, targetComm, rec.Comm, "", "comm of zombie %d", pid)
	checkEqual(t, ppid, rec.PPID, "", "ppid of zombie %d", pid)
	assert.Zero(t, rec.VSize, "vsize of zombie %d: it has no address space", pid)
	assert.Zero(t, rec.RSS, "rss of zombie %d: it has no address space", pid)
}

func TestKthreadd(t *testing.T) {
	markTest(t)
	rec := requireMatchesStat(t, kthreaddPID)
	checkEqual(t, "kthreadd", rec.Comm, "", "comm of pid %d", kthreaddPID)
	assert.Zero(t, rec.PPID, "ppid of kthreadd: started by the kernel")
	assert.Zero(t, rec.UID, "uid of kthreadd")
	assert.Zero(t, rec.VSize, "vsize of kthreadd: a kernel thread has no mm")
	assert.Zero(t, rec.RSS, "rss of kthreadd: a kernel thread has no mm")
	checkEqual(t, 1, rec.Threads, "", "threads of kthreadd")
}

func TestIdleKernelThread(t *testing.T) {
	markTest(t)
	// State "I" (TASK_IDLE) exists only for kernel threads.
	pid := findKernelThread(t, "I")
	rec := requireMatchesStat(t, pid)
	checkEqual(t, "I", rec.State, "", "state of idle kernel thread %d (%s)", pid, rec.Comm)
	checkEqual(t, kthreaddPID, rec.PPID, "", "ppid of kernel thread %d", pid)
	assert.Zero(t, rec.VSize, "vsize of kernel thread %d", pid)
	assert.Zero(t, rec.RSS, "rss of kernel thread %d", pid)
}

// findKernelThread returns a child of kthreadd in the given state. It
// skips workqueue workers, whose stat comm carries the current work item
// and changes, and names of 15 bytes, which may be truncated full names:
// stat prints a kernel thread's full name, and the module cannot.
func findKernelThread(t *testing.T, state string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := procfs.ReadStat(pid)
		if err != nil || s.PPID != kthreaddPID || s.State != state {
			continue
		}
		if strings.HasPrefix(s.Comm, "kworker/") || len(s.Comm) >= 15 {
			continue
		}
		return pid
	}
	t.Skipf("no child of kthreadd in state %s with a short, fixed name", state)
	return 0
}

func TestInit(t *testing.T) {
	markTest(t)
	rec := requireMatchesStat(t, 1)
	checkEqual(t, 1, rec.PID, "", "pid of init")
	checkEqual(t, "init", rec.Comm, "", "comm of u-root's init")
	assert.Zero(t, rec.PPID, "ppid of init: started by the kernel")
	assert.Zero(t, rec.UID, "uid of init")
	assert.Positive(t, rec.VSize, "vsize of init: a user process")
}

func TestTestProcessItself(t *testing.T) {
	markTest(t)
	// Stop the garbage collector returning memory mid-read, so that vsize
	// and rss move only by what the read allocates (assertBetween).
	defer debug.SetGCPercent(debug.SetGCPercent(-1))

	t.Run("process", func(t *testing.T) {
		rec := requireMatchesStat(t, os.Getpid())
		checkEqual(t, os.Getpid(), rec.PID, "", "pid of the test process")
		checkEqual(t, os.Getppid(), rec.PPID, "", "ppid of the test process")
		checkEqual(t, uint32(os.Getuid()), rec.UID, "", "uid of the test process")
		checkEqual(t, uint32(os.Getgid()), rec.GID, "", "gid of the test process")
	})
	t.Run("current thread", func(t *testing.T) {
		// The thread that reads is running while it reads.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid := unix.Gettid()
		rec := requireMatchesStat(t, tid)
		checkEqual(t, tid, rec.PID, "", "pid of the reading thread's TID")
		checkEqual(t, "R", rec.State, "", "state of the thread reading /proc/pid")
	})
}

func TestCommOddNames(t *testing.T) {
	markTest(t)
	// Stat's comm sits in parentheses; the module prints it bare.
	tests := []struct{ name, set, want string }{
		{"spaces and parentheses", "a) (b c", "a) (b c"},
		{"colon and space", "key: value", "key: value"},
		{"15 bytes", "abcdefghijklmno", "abcdefghijklmno"},
		{"truncated to 15 bytes", "abcdefghijklmnopq", "abcdefghijklmno"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := startTarget(t, "comm", tt.set)
			rec := requireMatchesStat(t, tg.PID)
			checkEqual(t, tt.want, rec.Comm, "", "comm after prctl(PR_SET_NAME, %q)", tt.set)
		})
	}
}
