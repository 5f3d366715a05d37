//go:build pidlab_guest

package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
	"github.com/pidlab/pidlab/userspace/procfs"
)

func TestHelloProcfs(t *testing.T) {
	guesttest.Mark(t)
	b, err := os.ReadFile("/proc/hello_procfs")
	require.NoError(t, err)
	guesttest.Same(t, "/proc/hello_procfs", "Hello World!\n", string(b), "seq_puts(m, \"Hello World!\\n\") in the show function")
}

// vmstatPgfault is /proc/vmstat's pgfault.
func vmstatPgfault(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/vmstat")
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "pgfault "); ok {
			return parseUint(t, v)
		}
	}
	require.FailNow(t, "/proc/vmstat has no pgfault line")
	return 0
}

func modulePgfaults(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/get_pgfaults")
	require.NoError(t, err)
	n, err := strconv.ParseUint(strings.TrimSuffix(string(b), "\n"), 10, 64)
	if err != nil {
		guesttest.FailNow(t, guestapi.Failure{Check: "/proc/get_pgfaults", Expected: "a count and a newline", Got: strconv.Quote(string(b))})
	}
	return n
}

// Page faults since boot lie between two reads of /proc/vmstat, and a
// process touching n new pages adds at least n.
func TestPgfaultsAgreeWithVmstat(t *testing.T) {
	guesttest.Mark(t)
	const pages = 300
	target := startDriven(t, nil, "mem")
	addr := target.mapPages(pages)

	before := vmstatPgfault(t)
	mine := modulePgfaults(t)
	after := vmstatPgfault(t)
	if mine < before || mine > after {
		guesttest.Fail(t, guestapi.Failure{Check: "/proc/get_pgfaults between two reads of /proc/vmstat pgfault",
			Expected: fmt.Sprintf("%d..%d", before, after), Got: fmt.Sprint(mine),
			Hint: "all_vm_events() sums every CPU's counters; the count is events[PGFAULT]"})
	}

	before = vmstatPgfault(t)
	mine = modulePgfaults(t)
	target.ask("touch %#x %d 1", addr, pages)
	mineAfter := modulePgfaults(t)
	after = vmstatPgfault(t)
	rise := mineAfter - mine
	if rise < pages || rise > after-before {
		guesttest.Fail(t, guestapi.Failure{Check: fmt.Sprintf("the rise of /proc/get_pgfaults while a process touches %d new pages", pages),
			Expected: fmt.Sprintf("%d..%d (vmstat's rise around it)", pages, after-before), Got: fmt.Sprint(rise),
			Hint: "the count is the PGFAULT event of all_vm_events(), not a count of one CPU's or one process's"})
	}
}

// runnableEntry is a line of /proc/taskpeek/runnable.
type runnableEntry struct {
	TID, TGID int
	Comm      string
}

func readRunnable(t *testing.T) []runnableEntry {
	t.Helper()
	b, err := os.ReadFile(runnablePath)
	require.NoError(t, err)
	var entries []runnableEntry
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		f := strings.SplitN(line, " ", 3)
		tid, err1 := strconv.Atoi(f[0])
		var tgid int
		var err2 error
		if len(f) == 3 {
			tgid, err2 = strconv.Atoi(f[1])
		}
		if len(f) != 3 || err1 != nil || err2 != nil {
			guesttest.FailNow(t, guestapi.Failure{Check: "a line of " + runnablePath, Expected: "<tid> <tgid> <comm>", Got: strconv.Quote(line)})
		}
		entries = append(entries, runnableEntry{tid, tgid, unescape(t, f[2])})
	}
	return entries
}

// Running tasks are listed; sleeping and stopped ones are not.
func TestRunnableListsOnlyRunningTasks(t *testing.T) {
	guesttest.Mark(t)
	spinners := []*guesttest.Target{start(t, nil, "spin"), start(t, nil, "spin")}
	sleeper := start(t, nil, "pause")
	guesttest.WaitState(t, sleeper.PID, "S")
	stopped := start(t, nil, "spin")
	stopped.Signal(t, unix.SIGSTOP, "T")

	// This thread reads, so it runs while the module walks the tasks.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	reader := unix.Gettid()
	entries := readRunnable(t)

	listed := map[int]runnableEntry{}
	for _, e := range entries {
		listed[e.TID] = e
	}
	hint := "list a task when task_is_running(t) (__state == TASK_RUNNING), walking every thread: for_each_process_thread() under rcu_read_lock()"
	for _, s := range spinners {
		e, ok := listed[s.PID]
		if guesttest.Same(t, fmt.Sprintf("spinning process %d (state R) in %s", s.PID, runnablePath), true, ok, hint) {
			guesttest.Same(t, fmt.Sprintf("comm of spinning process %d", s.PID), "taskpeek-target", e.Comm, "the comm is the task's, from get_task_comm()")
			guesttest.Same(t, fmt.Sprintf("tgid of spinning process %d", s.PID), s.PID, e.TGID, "the tgid is task_tgid_vnr()")
		}
	}
	e, ok := listed[reader]
	if guesttest.Same(t, fmt.Sprintf("the reading thread %d in %s", reader, runnablePath), true, ok, hint) {
		guesttest.Same(t, fmt.Sprintf("tgid of the reading thread %d", reader), os.Getpid(), e.TGID, "the tgid is task_tgid_vnr(), the thread's process")
	}
	for _, tc := range []struct {
		what string
		pid  int
	}{{"sleeping (S)", sleeper.PID}, {"stopped (T)", stopped.PID}} {
		_, ok := listed[tc.pid]
		guesttest.Same(t, fmt.Sprintf("%s process %d in %s", tc.what, tc.pid, runnablePath), false, ok,
			"only TASK_RUNNING tasks are runnable: a stopped task's __state is TASK_STOPPED, a sleeping one's TASK_INTERRUPTIBLE")
	}
}

// childEntry is a line of /proc/taskpeek/children.
type childEntry struct {
	PID   int
	State string
	Comm  string
}

func readChildren(t *testing.T, pid int) []childEntry {
	t.Helper()
	text := readSelected(t, childrenPath, pid)
	var children []childEntry
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, " ", 3)
		n, err := strconv.Atoi(f[0])
		if len(f) != 3 || err != nil || len(f[1]) != 1 {
			guesttest.FailNow(t, guestapi.Failure{Check: "a line of " + childrenPath, Expected: "<pid> <state letter> <comm>", Got: strconv.Quote(line)})
		}
		children = append(children, childEntry{n, f[1], unescape(t, f[2])})
	}
	return children
}

// procChildren is what /proc/<pid>/task/*/children say, all threads'.
func procChildren(t *testing.T, pid int) []int {
	t.Helper()
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	require.NoError(t, err)
	require.NotEmpty(t, files, "/proc/%d/task/*/children (CONFIG_PROC_CHILDREN)", pid)
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, w := range strings.Fields(string(b)) {
			pids = append(pids, atoi(t, w))
		}
	}
	slices.Sort(pids)
	return pids
}

func listPIDs(t *testing.T, s string) []int {
	t.Helper()
	if s == "-" {
		return nil
	}
	var pids []int
	for _, w := range strings.Split(s, ",") {
		pids = append(pids, atoi(t, w))
	}
	return pids
}

// A process's children, in every state, each as /proc shows it; not its
// grandchildren, nor its threads.
func TestChildrenMatchProc(t *testing.T) {
	guesttest.Mark(t)
	// Its own process group, so that the cleanup kills grandchildren too.
	tree := start(t, &syscall.SysProcAttr{Setpgid: true}, "tree", "5", "2", "3")
	t.Cleanup(func() { unix.Kill(-tree.PID, unix.SIGKILL) })
	require.Len(t, tree.Info, 2, "ready <children> <grandchildren>")
	children, grandchildren := listPIDs(t, tree.Info[0]), listPIDs(t, tree.Info[1])
	require.Len(t, children, 5)
	for _, pid := range children {
		guesttest.WaitState(t, pid, "S")
	}
	guesttest.WaitState(t, tree.PID, "S")
	// A zombie and a stopped child besides the sleeping ones.
	require.NoError(t, unix.Kill(children[3], unix.SIGKILL))
	guesttest.WaitState(t, children[3], "Z")
	require.NoError(t, unix.Kill(children[4], unix.SIGSTOP))
	guesttest.WaitState(t, children[4], "T")

	got := readChildren(t, tree.PID)
	var gotPIDs []int
	for _, c := range got {
		gotPIDs = append(gotPIDs, c.PID)
	}
	slices.Sort(gotPIDs)
	guesttest.Same(t, fmt.Sprintf("the children of %d: module vs /proc/%d/task/*/children", tree.PID, tree.PID), fmt.Sprint(procChildren(t, tree.PID)), fmt.Sprint(gotPIDs),
		"a child is a process whose real_parent is a thread of the group; walk the task list under rcu_read_lock() (->children is tasklist_lock's)")
	for _, c := range got {
		if slices.Contains(grandchildren, c.PID) {
			guesttest.Fail(t, guestapi.Failure{Check: fmt.Sprintf("children of %d", tree.PID), Expected: "no grandchild", Got: fmt.Sprintf("grandchild %d", c.PID),
				Hint: "only the direct children: real_parent is the process itself, not a descendant"})
		}
		if !slices.Contains(children, c.PID) {
			continue
		}
		st, err := procfs.ReadStat(c.PID)
		require.NoError(t, err)
		guesttest.Same(t, fmt.Sprintf("state of child %d: module vs /proc/%d/stat", c.PID, c.PID), st.State, c.State,
			"task_state_to_char() gives the letter /proc uses (S, T, Z …)")
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c.PID))
		require.NoError(t, err)
		guesttest.Same(t, fmt.Sprintf("comm of child %d: module vs /proc/%d/comm", c.PID, c.PID), strings.TrimSuffix(string(comm), "\n"), c.Comm,
			"the comm from get_task_comm(), a newline and a backslash escaped as \\ooo (seq_escape)")
	}
	threads, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", tree.PID))
	require.NoError(t, err)
	guesttest.Same(t, fmt.Sprintf("threads of %d", tree.PID), 4, len(threads), "the helper starts 3 threads besides its main one")
	for _, th := range threads {
		tid := atoi(t, th.Name())
		if tid != tree.PID && slices.Contains(gotPIDs, tid) {
			guesttest.Fail(t, guestapi.Failure{Check: fmt.Sprintf("children of %d", tree.PID), Expected: "no thread of the process", Got: fmt.Sprintf("thread %d", tid),
				Hint: "threads are not children: list thread group leaders only (for_each_process)"})
		}
	}
}

// A Go process forks from whichever of its threads runs: its children
// are those of all its threads.
func TestChildrenOfEveryThread(t *testing.T) {
	guesttest.Mark(t)
	var want []int
	for range 4 {
		want = append(want, start(t, nil, "pause").PID)
	}
	got := readChildren(t, os.Getpid())
	var gotPIDs []int
	for _, c := range got {
		gotPIDs = append(gotPIDs, c.PID)
	}
	slices.Sort(gotPIDs)
	procPIDs := procChildren(t, os.Getpid())
	guesttest.Same(t, "the children of this test: module vs /proc/self/task/*/children", fmt.Sprint(procPIDs), fmt.Sprint(gotPIDs),
		"a child's parent is the thread that forked it: compare the parent's thread group (task_tgid()), not the task")
	for _, pid := range want {
		guesttest.Same(t, fmt.Sprintf("child %d listed", pid), true, slices.Contains(gotPIDs, pid), "every thread's children count")
	}
}
