//go:build pidlab_guest

package guest

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
	"github.com/pidlab/pidlab/userspace/procfs"
)

const hintStatus = "the status wait(2) reports is signal->group_exit_code once SIGNAL_GROUP_EXIT is set (every exit_group, every fatal signal), " +
	"else the task's exit_code: exit(n) is n<<8, a fatal signal its number (|0x80 with a core file)"

// Each way of dying gives the status the parent's wait4 saw, and the
// identity of the process that died.
func TestEventStatusIsWaits(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"exit-0", []string{"exit", "0"}},
		{"exit-1", []string{"exit", "1"}},
		{"exit-255", []string{"exit", "255"}},
		{"sigkill", []string{"signal", strconv.Itoa(int(syscall.SIGKILL))}},
		{"sigsegv-core-signal", []string{"signal", strconv.Itoa(int(syscall.SIGSEGV))}},
		{"sigquit-core-signal", []string{"signal", strconv.Itoa(int(syscall.SIGQUIT))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guesttest.Mark(t)
			s := openStream(t)
			pid, ws, _ := exited(t, child(t, tc.args...))
			ev := s.eventOf(pid)
			guesttest.Same(t, "status: event vs wait4", int(ws), ev.Status, hintStatus)
			guesttest.Same(t, "pid: event vs the child's (one thread: the last is the leader)", pid, ev.PID, "pid is task_pid_nr() of the exiting thread")
			guesttest.Same(t, "ppid: event vs this test's PID (the child's parent)", os.Getpid(), ev.PPID, "ppid is task_tgid_nr() of tsk->real_parent, read under rcu_read_lock()")
			guesttest.Same(t, "uid: event vs the child's", uint32(0), ev.UID, "uid is the real uid of the task's credentials, __task_cred(tsk)->uid")
			guesttest.Same(t, "comm: event vs the child's", childComm, ev.Comm, "comm is the group leader's comm")
		})
	}
}

// The event's facts are those /proc/<pid>/stat showed while the process
// lived: comm, parent, start time; its uid is the one it ran as.
func TestEventMatchesStatBeforeExit(t *testing.T) {
	guesttest.Mark(t)
	s := openStream(t)
	cmd := child(t, "stdin", "7")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	st := statOf(t, pid, childComm)
	require.NoError(t, in.Close())
	_, ws, _ := reaped(t, cmd)
	ev := s.eventOf(pid)
	guesttest.Same(t, "status: event vs wait4 (exit(7))", int(ws), ev.Status, hintStatus)
	guesttest.Same(t, fmt.Sprintf("comm: event vs /proc/%d/stat field 2", pid), st.Comm, ev.Comm, "comm is the group leader's comm")
	guesttest.Same(t, fmt.Sprintf("ppid: event vs /proc/%d/stat field 4", pid), st.PPID, ev.PPID, "ppid is task_tgid_nr() of tsk->real_parent")
	guesttest.Same(t, fmt.Sprintf("start_time: event vs /proc/%d/stat field 22", pid), st.StartTime, ev.StartTime,
		"start_time is the leader's start_boottime in USER_HZ ticks (nsec_to_clock_t)")
	guesttest.Same(t, "uid: event vs the uid the child ran as", uint32(1000), ev.UID, "uid is __task_cred(tsk)->uid, in the reader's user namespace (from_kuid_munged)")
}

// statOf reads /proc/<pid>/stat once the child has exec'd (its comm is
// comm): before that it is still a copy of this test.
func statOf(t *testing.T, pid int, comm string) procfs.Stat {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		st, err := procfs.ReadStat(pid)
		require.NoError(t, err, "/proc/%d/stat", pid)
		if st.Comm == comm {
			return st
		}
		require.True(t, time.Now().Before(deadline), "process %d did not exec %s within %s", pid, comm, eventWait)
		time.Sleep(5 * time.Millisecond)
	}
}

// The whole group's CPU time at exit is what wait4's rusage says the
// child used: the probe runs once the process's last thread has stopped
// running user code.
func TestEventCPUTimeIsRusage(t *testing.T) {
	guesttest.Mark(t)
	s := openStream(t)
	pid, _, ru := exited(t, child(t, "spin", "400"))
	ev := s.eventOf(pid)
	want := ticks(ru.Utime) + ticks(ru.Stime)
	got := ev.UTime + ev.STime
	// Each side truncates its own two values to ticks, and the last thread
	// still runs (in the kernel) between the probe and its reap.
	const slack = 3
	if got+slack < want || got > want+slack {
		guesttest.Fail(t, guestapi.Failure{Check: "utime+stime: event vs wait4's ru_utime+ru_stime, in ticks",
			Expected: fmt.Sprintf("%d (±%d)", want, slack), Got: strconv.FormatUint(got, 10),
			Hint: "sum task_cputime_adjusted() over the group's live threads plus signal->utime/stime of the reaped ones, under sig->stats_lock, in USER_HZ ticks"})
	}
	if ev.UTime < 30 {
		guesttest.Fail(t, guestapi.Failure{Check: "utime after spinning 400 ms in user space", Expected: "at least 30 ticks",
			Got: strconv.FormatUint(ev.UTime, 10), Hint: "utime and stime are nanoseconds until converted to ticks (nsec_to_clock_t)"})
	}
}

// A zombie's event comes at its exit, before its parent reaps it.
func TestZombieEventComesBeforeTheReap(t *testing.T) {
	guesttest.Mark(t)
	s := openStream(t)
	cmd := child(t, "exit", "9")
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	ev := s.eventOf(pid) // before wait4: the exit's event, not the reap's
	// The event is recorded in do_exit(), before the process has become a
	// zombie: it is one a moment later, and stays one until the reap.
	guesttest.WaitState(t, pid, "Z")
	_, ws, _ := reaped(t, cmd)
	guesttest.Same(t, "status: event vs wait4, reaped after the event", int(ws), ev.Status, hintStatus)
}

// An orphan's event names its parent at exit: the one it was reparented
// to, not the one that started it.
func TestOrphanEventNamesItsNewParent(t *testing.T) {
	guesttest.Mark(t)
	s := openStream(t)
	cmd := child(t, "orphan", "5")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(out)
	require.True(t, lines.Scan(), "the orphan's PID")
	orphan, err := strconv.Atoi(lines.Text())
	require.NoError(t, err, "the orphan's PID: %q", lines.Text())
	require.True(t, lines.Scan(), "the orphan's new parent")
	newParent, err := strconv.Atoi(strings.TrimPrefix(lines.Text(), "ppid "))
	require.NoError(t, err, "the orphan's new parent: %q", lines.Text())
	_, _, _ = reaped(t, cmd)
	ev := s.eventOf(orphan)
	guesttest.Same(t, "ppid: an orphan's event vs the parent getppid() gave it after reparenting", newParent, ev.PPID,
		"ppid is read at exit from tsk->real_parent, which reparenting changed")
	guesttest.Same(t, "status: an orphan's event (exit(5))", 5<<8, ev.Status, hintStatus)
}

// A process of M threads is one process exit and M thread exits.
func TestThreadsCountOnceAsAProcess(t *testing.T) {
	guesttest.Mark(t)
	const processes, threads = 5, 4
	s := openStream(t)
	before := stats(t)
	pids := map[int]bool{}
	for range processes {
		pid, ws, _ := exited(t, child(t, "threads", strconv.Itoa(threads), "3"))
		require.Equal(t, 3, ws.ExitStatus(), "exitmon-child threads exits 3")
		pids[pid] = true
	}
	after := stats(t)
	events, dropped := s.drain()
	require.Zero(t, dropped, "no event lost on a quiet system")
	mine, others := 0, 0
	for _, ev := range events {
		if pids[ev.TGID] {
			mine++
		} else {
			others++ // a kernel worker or another process that exited meanwhile
		}
	}
	guesttest.Same(t, fmt.Sprintf("events of %d processes of %d threads each", processes, threads), processes, mine,
		"a process exits once, when its last thread does: record the event only when taskstats_exit()'s group_dead is true")
	guesttest.Same(t, "process_exits: stats delta vs events read meanwhile", uint64(len(events)), after["process_exits"]-before["process_exits"],
		"process_exits counts the events recorded")
	guesttest.Same(t, "thread_exits: stats delta", uint64(processes*threads+others), after["thread_exits"]-before["thread_exits"],
		"the do_exit() probe runs once per thread: count with an atomic64_t, a plain ++ loses counts on 2 CPUs")
}
