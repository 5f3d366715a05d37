//go:build pidlab_guest

package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guesttest"
	"github.com/pidlab/pidlab/userspace/procfs"
)

// TestABIMatchesTheHeader holds this suite's struct and numbers to
// pid_info.h, as a C program that includes it sees them.
func TestABIMatchesTheHeader(t *testing.T) {
	guesttest.Mark(t)
	var i pidInfo
	words := strings.Fields(run(t, nil, "abi")[0])
	got := map[string]string{}
	for j := 0; j+1 < len(words) && words[j] != "nr"; j += 2 {
		got[words[j]] = words[j+1]
	}
	want := map[string]uintptr{
		"size": unsafe.Sizeof(i), "children": unsafe.Offsetof(i.Children), "children_max": unsafe.Offsetof(i.ChildrenMax),
		"nr_children": unsafe.Offsetof(i.NrChildren), "pid": unsafe.Offsetof(i.PID), "state": unsafe.Offsetof(i.State),
		"start_stack": unsafe.Offsetof(i.StartStack), "age_ns": unsafe.Offsetof(i.AgeNs), "ppid": unsafe.Offsetof(i.PPID),
		"flags": unsafe.Offsetof(i.Flags), "root": unsafe.Offsetof(i.Root), "cwd": unsafe.Offsetof(i.Cwd), "get": ioctlGet,
	}
	for name, v := range want {
		assert.Equal(t, strconv.FormatUint(uint64(v), 10), got[name], "%s: Go's value, then the header's", name)
	}
	nrs := words[len(words)-4:]
	assert.Equal(t, []string{"500", "501", "502", "503"}, nrs, "__NR_get_pid_info, __NR_ft_kill, __NR_ft_wait, __NR_ft_fork")
	assert.Equal(t, []int{sysGetPidInfo, sysFtKill, sysFtWait, sysFtFork}, []int{atoi(t, nrs[0]), atoi(t, nrs[1]), atoi(t, nrs[2]), atoi(t, nrs[3])})
}

// requireMatchesProc compares what get_pid_info said of pid with /proc,
// read right after; the process must not change state in between, unless
// running says it is running (its state flips between R and S).
func requireMatchesProc(t *testing.T, w way, pid int, running bool) {
	t.Helper()
	var before unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_BOOTTIME, &before))
	info, children, err := query(w, pid, 256)
	var after unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_BOOTTIME, &after))
	require.NoError(t, err, "get_pid_info(%d) by %s", pid, w.Name)

	f := statFields(t, pid)
	assert.Equal(t, int32(pid), info.PID, "pid")
	if running {
		assert.Contains(t, []string{"R", "S"}, string(rune(info.State)), "state of a running process")
	} else {
		assert.Equal(t, f[3], string(rune(info.State)), "state, /proc/%d/stat's field 3", pid)
	}
	assert.Equal(t, f[4], strconv.Itoa(int(info.PPID)), "ppid, /proc/%d/stat's field 4", pid)
	assert.Equal(t, f[28], strconv.FormatUint(info.StartStack, 10), "start_stack, /proc/%d/stat's startstack (field 28)", pid)
	assert.Zero(t, info.Flags, "flags: root may read everything")
	assert.Equal(t, readlink(pid, "root"), cString(info.Root[:]), "root, readlink /proc/%d/root", pid)
	assert.Equal(t, readlink(pid, "cwd"), cString(info.Cwd[:]), "cwd, readlink /proc/%d/cwd", pid)
	assert.Equal(t, procChildren(t, pid), children, "children, /proc/%d/task/*/children", pid)
	assert.Equal(t, uint32(len(children)), info.NrChildren, "nr_children")

	// stat's start time is in clock ticks (USER_HZ, 100 a second) after
	// boot: the age falls between the two clock reads less that start,
	// give or take the tick it was rounded down to.
	start := time.Duration(statUint(t, pid, 22)) * 10 * time.Millisecond
	age := time.Duration(info.AgeNs)
	oldest := time.Duration(after.Nano()) - start
	youngest := time.Duration(before.Nano()) - start - 10*time.Millisecond
	assert.True(t, age >= youngest && age <= oldest, "age %v: between %v and %v (CLOCK_BOOTTIME less stat's start time)", age, youngest, oldest)
}

func TestGetPidInfoMatchesProc(t *testing.T) {
	guesttest.Mark(t)
	tree := start(t, nil, "tree", "3", "2", "2")
	guesttest.WaitState(t, tree.PID, "S")
	jailDir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(jailDir, "a", "b"), 0o755))
	jailed := start(t, nil, "jail", jailDir, "/a/b")
	guesttest.WaitState(t, jailed.PID, "S")
	zombieParent := start(t, nil, "zombie")
	zombie := zombieParent.InfoInt(t, 0)
	guesttest.WaitState(t, zombie, "Z")
	guesttest.WaitState(t, zombieParent.PID, "S")

	child := pids(t, tree.Info[0])[0]
	guesttest.WaitState(t, child, "S")
	targets := []struct {
		name    string
		pid     int
		running bool
	}{
		{"init", 1, false},
		{"this test", os.Getpid(), true},
		{"a parent of five, two forked by a second thread", tree.PID, false},
		{"a child with children", child, false},
		{"chrooted to a temporary folder, in a/b there", jailed.PID, false},
		{"a zombie", zombie, false},
		{"a zombie's parent", zombieParent.PID, false},
	}
	eachWay(t, func(t *testing.T, w way) {
		for _, tc := range targets {
			t.Run(tc.name, func(t *testing.T) { requireMatchesProc(t, w, tc.pid, tc.running) })
		}
	})
	assert.Len(t, procChildren(t, tree.PID), 5, "the tree's own children: 3, and 2 of its thread")
	assert.Equal(t, jailDir, readlink(jailed.PID, "root"))
	assert.Equal(t, jailDir+"/a/b", readlink(jailed.PID, "cwd"))
	assert.Equal(t, "", readlink(zombie, "cwd"), "a zombie has no cwd")
}

// TestWalkUpToInitAndBackDown walks as the subject's proof program does:
// from a grandchild up through each parent to PID 1, then back down, each
// step's process among the children of the one above it.
func TestWalkUpToInitAndBackDown(t *testing.T) {
	guesttest.Mark(t)
	tree := start(t, nil, "tree", "2", "1", "0")
	grandchild := pids(t, tree.Info[1])[0]
	// Either child's: the grandchildren are listed as they arrive.
	stat, err := procfs.ReadStat(grandchild)
	require.NoError(t, err)
	require.Contains(t, pids(t, tree.Info[0]), stat.PPID, "the grandchild's parent is one of the tree's children")
	eachWay(t, func(t *testing.T, w way) {
		path := []int{grandchild}
		for pid := grandchild; pid != 1; {
			info, _, err := query(w, pid, 64)
			require.NoError(t, err, "get_pid_info(%d)", pid)
			require.NotZero(t, info.PPID, "%d's parent", pid)
			require.Less(t, len(path), 64, "a walk up from %d that does not reach PID 1: %v", grandchild, path)
			pid = int(info.PPID)
			path = append(path, pid)
		}
		assert.Equal(t, []int{grandchild, stat.PPID, tree.PID, os.Getpid()}, path[:4], "the walk up starts with the tree and this test")
		for i := len(path) - 1; i > 0; i-- {
			_, children, err := query(w, path[i], 1024)
			require.NoError(t, err, "get_pid_info(%d)", path[i])
			assert.Contains(t, children, path[i-1], "%d is among %d's children", path[i-1], path[i])
		}
		info, children, err := query(w, grandchild, 8)
		require.NoError(t, err)
		assert.Empty(t, children, "the grandchild has no children")
		assert.Zero(t, info.NrChildren)
	})
}

func TestGetPidInfoErrors(t *testing.T) {
	guesttest.Mark(t)
	path, err := targetPath()
	require.NoError(t, err)
	gone := guesttest.GoneTarget(t, path)
	tree := start(t, nil, "tree", "4", "0", "0")
	thread := threadNotLeader(t)
	eachWay(t, func(t *testing.T, w way) {
		for _, tc := range []struct {
			name string
			pid  int
			want unix.Errno
		}{
			{"a PID no process has", gone, unix.ESRCH},
			{"a thread's ID, not a process's", thread, unix.ESRCH},
			{"0", 0, unix.EINVAL},
			{"-1", -1, unix.EINVAL},
		} {
			_, _, err := query(w, tc.pid, 8)
			assert.Equal(t, guesttest.ErrnoString(tc.want), guesttest.ErrnoString(guesttest.Errno(err)), "get_pid_info(%d): %s", tc.pid, tc.name)
		}

		info, children, err := query(w, tree.PID, 2)
		assert.Equal(t, guesttest.ErrnoString(unix.ERANGE), guesttest.ErrnoString(guesttest.Errno(err)), "4 children, room for 2")
		assert.Equal(t, uint32(4), info.NrChildren, "nr_children says how many there are")
		assert.Len(t, children, 2, "the first two are written")
		assert.Subset(t, procChildren(t, tree.PID), children)
		assert.Equal(t, int32(tree.PID), info.PID, "the rest is filled in")

		info = pidInfo{Children: 8, ChildrenMax: 4}
		err = w.Get(tree.PID, &info)
		assert.Equal(t, guesttest.ErrnoString(unix.EFAULT), guesttest.ErrnoString(guesttest.Errno(err)), "children at address 8")
		info = pidInfo{Children: 8, ChildrenMax: 0}
		err = w.Get(tree.PID, &info)
		assert.Equal(t, guesttest.ErrnoString(unix.ERANGE), guesttest.ErrnoString(guesttest.Errno(err)), "no room, so the address is not used")

		if w.Name == "syscall" {
			_, _, e := unix.Syscall(sysGetPidInfo, 8, uintptr(tree.PID), 0)
			assert.Equal(t, guesttest.ErrnoString(unix.EFAULT), guesttest.ErrnoString(e), "info at address 8")
		} else {
			_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(deviceFd(t)), ioctlGet, 8)
			assert.Equal(t, guesttest.ErrnoString(unix.EFAULT), guesttest.ErrnoString(e), "info at address 8")
			_, _, e = unix.Syscall(unix.SYS_IOCTL, uintptr(deviceFd(t)), ioctlGet+1, 0)
			assert.Equal(t, guesttest.ErrnoString(unix.ENOTTY), guesttest.ErrnoString(e), "another command")
		}
	})
	assert.Len(t, procChildren(t, tree.PID), 4, "the tree is unchanged")
}

// deviceFd opens /dev/pidinfo for t.
func deviceFd(t *testing.T) int {
	fd, err := unix.Open(devPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// threadNotLeader is the ID of a thread of this process that is not its
// leader: the Go runtime always has several.
func threadNotLeader(t *testing.T) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	require.NoError(t, err)
	for _, task := range tasks {
		if tid := atoi(t, task.Name()); tid != os.Getpid() {
			return tid
		}
	}
	require.FailNow(t, "this process has one thread")
	return 0
}

// TestOthersDoNotSeeStackRootAndCwd: a user may learn of another's
// process what /proc/<pid>/stat shows everyone, not its stack, root or
// working directory (readlink /proc/<pid>/cwd is EACCES to them too).
func TestOthersDoNotSeeStackRootAndCwd(t *testing.T) {
	guesttest.Mark(t)
	mine := start(t, nobody(), "pause")
	eachWay(t, func(t *testing.T, w way) {
		how := map[string]string{"ioctl": "dev", "syscall": "sys"}[w.Name]
		lines := run(t, nobody(), "info", how, "1", "64")
		require.Len(t, lines, 3)
		words := strings.Fields(lines[0])
		assert.Equal(t, []string{"0", fmt.Sprint(withheld), "0"}, words[:3], "errno, flags (PID_INFO_WITHHELD), start_stack of PID 1, asked by nobody")
		assert.Equal(t, []string{"", ""}, lines[1:], "root and cwd of PID 1, asked by nobody")

		lines = run(t, nobody(), "info", how, strconv.Itoa(mine.PID), "64")
		require.Len(t, lines, 3)
		words = strings.Fields(lines[0])
		assert.Equal(t, []string{"0", "0"}, words[:2], "errno, flags of nobody's own process")
		assert.Equal(t, strconv.FormatUint(statUint(t, mine.PID, 28), 10), words[2], "its start_stack")
		assert.Equal(t, []string{readlink(mine.PID, "root"), readlink(mine.PID, "cwd")}, lines[1:], "its root and cwd")
	})
}
