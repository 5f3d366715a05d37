//go:build pidlab_guest

// Package guest tests get_pid_info, by the pidinfo module's ioctl on
// every kernel and by the system call of pidlab's kernel patch where the
// kernel has it, and the patch's ft_kill, ft_wait and ft_fork, against
// what the kernel itself says in /proc and through kill(2) and wait(2).
package guest

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

const devPath = "/dev/pidinfo"

// The system call numbers of pid_info.h.
const (
	sysGetPidInfo = 500
	sysFtKill     = 501
	sysFtWait     = 502
	sysFtFork     = 503
)

// pidInfo is pid_info.h's struct pid_info; TestABIMatchesTheHeader holds
// the two together.
type pidInfo struct {
	Children    uint64
	ChildrenMax uint32
	NrChildren  uint32
	PID         int32
	State       uint32
	StartStack  uint64
	AgeNs       uint64
	PPID        int32
	Flags       uint32
	Root        [pathMax]byte
	Cwd         [pathMax]byte
}

const (
	pathMax  = 4096
	withheld = 0x1 // PID_INFO_WITHHELD
)

// ioctlGet is PID_INFO_GET: _IOWR('p', 0x01, struct pid_info).
var ioctlGet = uintptr(3)<<30 | unsafe.Sizeof(pidInfo{})<<16 | 'p'<<8 | 0x01

func TestMain(m *testing.M) {
	guesttest.Main(m, "pidinfo", "signal, fork and wait for processes, and load a module", func() error {
		_, err := targetPath()
		return err
	})
}

// targetPath is the path of the helper (PIDINFO_TARGET).
func targetPath() (string, error) {
	return guesttest.HelperPath("PIDINFO_TARGET", "module/pidinfo/child")
}

// start runs pidinfo-target with args until its ready line; it is killed
// (and its children with it) when t ends.
func start(t *testing.T, attr *syscall.SysProcAttr, args ...string) *guesttest.Target {
	t.Helper()
	path, err := targetPath()
	require.NoError(t, err)
	return guesttest.StartTarget(t, path, attr, args...)
}

// run runs a one-line mode of pidinfo-target and returns its output's
// lines.
func run(t *testing.T, attr *syscall.SysProcAttr, args ...string) []string {
	t.Helper()
	path, err := targetPath()
	require.NoError(t, err)
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = attr
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	require.NoError(t, err, "pidinfo-target %q", args)
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

// nobody runs a process as user and group 65534.
func nobody() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
}

// ---- the two ways to ask ----

// way is one way to make the get_pid_info query.
type way struct {
	Name string
	Get  func(pid int, info *pidInfo) error
}

// byIoctl asks /dev/pidinfo.
func byIoctl(t *testing.T) way {
	t.Helper()
	fd, err := unix.Open(devPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		guesttest.FailNow(t, guestapi.Failure{Check: "open " + devPath, Expected: "a file descriptor", Got: guesttest.ErrnoName(err),
			Hint: "the module's init registers a misc device named pidinfo (misc_register), mode 0666"})
	}
	t.Cleanup(func() { unix.Close(fd) })
	return way{"ioctl", func(pid int, info *pidInfo) error {
		info.PID = int32(pid)
		return errnoErr(unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlGet, uintptr(unsafe.Pointer(info))))
	}}
}

// bySyscall makes the system call.
var bySyscall = way{"syscall", func(pid int, info *pidInfo) error {
	return errnoErr(unix.Syscall(sysGetPidInfo, uintptr(unsafe.Pointer(info)), uintptr(pid), 0))
}}

// requirePatchedKernel skips t, saying why, on a kernel without pidlab's
// system calls: get_pid_info(NULL, 0) is EINVAL there and ENOSYS here.
func requirePatchedKernel(t *testing.T) {
	t.Helper()
	if _, _, e := unix.Syscall(sysGetPidInfo, 0, 0, 0); e == unix.ENOSYS {
		t.Skip("this kernel has no pidlab system calls (ENOSYS for 500): they are in the kernels built with vmtest/kernel/kernels/pid_info.patch (PIDLAB_KERNEL=debug)")
	}
}

// eachWay runs f as a subtest per way: the ioctl, and the system call,
// which is skipped with its reason on a kernel without it.
func eachWay(t *testing.T, f func(t *testing.T, w way)) {
	t.Run("ioctl", func(t *testing.T) { f(t, byIoctl(t)) })
	t.Run("syscall", func(t *testing.T) {
		requirePatchedKernel(t)
		f(t, bySyscall)
	})
}

func errnoErr(_, _ uintptr, e syscall.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

// query asks w about pid with room for max children.
func query(w way, pid int, max int) (pidInfo, []int, error) {
	children := make([]int32, max+1) // never empty: its address is passed
	info := pidInfo{Children: uint64(uintptr(unsafe.Pointer(&children[0]))), ChildrenMax: uint32(max)}
	err := w.Get(pid, &info)
	var got []int
	for _, c := range children[:min(int(info.NrChildren), max)] {
		got = append(got, int(c))
	}
	sort.Ints(got)
	return info, got, err
}

// cString is a NUL-terminated path field.
func cString(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\x00")
	return s
}

// ---- what the kernel itself says ----

// statFields are /proc/<pid>/stat's fields, numbered as proc(5) does
// (fields[1] is the PID); the comm may hold spaces and parentheses.
func statFields(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	require.True(t, open > 0 && end > open, "/proc/%d/stat: %q", pid, s)
	return append([]string{"", strings.TrimSpace(s[:open]), s[open+1 : end]}, strings.Fields(s[end+1:])...)
}

func statUint(t *testing.T, pid, field int) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(statFields(t, pid)[field], 10, 64)
	require.NoError(t, err)
	return n
}

// procChildren are the child processes /proc lists for pid: each
// thread's children file.
func procChildren(t *testing.T, pid int) []int {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	require.NoError(t, err)
	var children []int
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		require.NoError(t, err)
		for _, f := range strings.Fields(string(b)) {
			children = append(children, atoi(t, f))
		}
	}
	sort.Ints(children)
	return children
}

// readlink is readlink /proc/<pid>/<name>, or "" where it fails (a zombie
// has neither root nor cwd).
func readlink(pid int, name string) string {
	s, err := os.Readlink(fmt.Sprintf("/proc/%d/%s", pid, name))
	if err != nil {
		return ""
	}
	return s
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

// pids parses a ready line's comma-separated list ("-" for none).
func pids(t *testing.T, list string) []int {
	t.Helper()
	if list == "-" {
		return nil
	}
	var ps []int
	for _, f := range strings.Split(list, ",") {
		ps = append(ps, atoi(t, f))
	}
	sort.Ints(ps)
	return ps
}
