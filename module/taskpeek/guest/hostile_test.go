//go:build pidlab_guest

package guest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guesttest"
)

// Every ioctl with what a careless or hostile caller passes: an errno, no
// kernel report (the run's verdict checks the console), nothing changed.
func TestHostileIoctls(t *testing.T) {
	guesttest.Mark(t)
	fd := device(t)
	const noSuchPID = 1 << 30 // above PID_MAX_LIMIT
	type request struct {
		what  string
		cmd   uintptr
		arg   unsafe.Pointer
		bad   uintptr // an address to pass instead of arg
		errno syscall.Errno
		hint  string
	}
	copyHint := "copy_from_user() of the whole struct, and -EFAULT when it fails"
	requests := []request{
		{"an unknown command", ioc(iocRead|iocWrite, 99, unsafe.Sizeof(v2pRequest{})), unsafe.Pointer(&v2pRequest{}), 0, unix.ENOTTY, "the switch's default: -ENOTTY"},
		{"TASKPEEK_V2P's number with a 16-byte struct", ioc(iocRead|iocWrite, 1, 16), unsafe.Pointer(&v2pRequest{}), 0, unix.ENOTTY, "the size is part of the command: another size is an unknown command"},
		{"TASKPEEK_V2P of pid -1", ioctlV2P, unsafe.Pointer(&v2pRequest{PID: -1}), 0, unix.EINVAL, "a negative pid is -EINVAL"},
		{"TASKPEEK_V2P of a pid no process has", ioctlV2P, unsafe.Pointer(&v2pRequest{PID: noSuchPID}), 0, unix.ESRCH, "find_vpid()/pid_task() is NULL: -ESRCH"},
		{"TASKPEEK_V2P of the largest pid", ioctlV2P, unsafe.Pointer(&v2pRequest{PID: 1<<31 - 1}), 0, unix.ESRCH, "find_vpid()/pid_task() is NULL: -ESRCH"},
		{"TASKPEEK_V2P of kthreadd (no address space)", ioctlV2P, unsafe.Pointer(&v2pRequest{PID: 2, VAddr: 0x400000}), 0, unix.ESRCH, "get_task_mm() is NULL for a kernel thread: -ESRCH"},
		{"TASKPEEK_V2P with flags set on input", ioctlV2P, unsafe.Pointer(&v2pRequest{Flags: 1}), 0, unix.EINVAL, "flags is output only: nonzero on input is -EINVAL"},
		{"TASKPEEK_POKE with padding set", ioctlPoke, unsafe.Pointer(&pokeRequest{Pad: [7]uint8{0, 0, 1}}), 0, unix.EINVAL, "nonzero padding is -EINVAL (room for later flags)"},
		{"TASKPEEK_EXIT_SIGNAL to pid -1", ioctlExitSignal, unsafe.Pointer(&exitSignalRequest{PID: -1, Signal: 10}), 0, unix.EINVAL, "a negative pid is -EINVAL"},
		{"TASKPEEK_EXIT_SIGNAL of signal -1", ioctlExitSignal, unsafe.Pointer(&exitSignalRequest{Signal: -1}), 0, unix.EINVAL, "a signal outside 0.._NSIG is -EINVAL (valid_signal())"},
		{"TASKPEEK_EXIT_SIGNAL of signal 65", ioctlExitSignal, unsafe.Pointer(&exitSignalRequest{Signal: 65}), 0, unix.EINVAL, "a signal outside 0.._NSIG is -EINVAL (valid_signal())"},
		{"TASKPEEK_EXIT_SIGNAL to a pid no process has", ioctlExitSignal, unsafe.Pointer(&exitSignalRequest{PID: noSuchPID, Signal: 10}), 0, unix.ESRCH, "no such process: -ESRCH"},
	}
	for _, cmd := range []struct {
		name string
		cmd  uintptr
	}{{"TASKPEEK_V2P", ioctlV2P}, {"TASKPEEK_POKE", ioctlPoke}, {"TASKPEEK_EXIT_SIGNAL", ioctlExitSignal}} {
		for _, bad := range []uintptr{0, 0x10, 0xffffffff81000000} {
			requests = append(requests, request{fmt.Sprintf("%s with pointer %#x", cmd.name, bad), cmd.cmd, nil, bad, unix.EFAULT, copyHint})
		}
	}
	for _, r := range requests {
		err := ioctl(fd, r.cmd, r.arg)
		if r.arg == nil {
			_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), r.cmd, r.bad)
			err = errno
		}
		guesttest.Same(t, r.what, guesttest.ErrnoString(r.errno), guesttest.ErrnoString(guesttest.Errno(err)), r.hint)
	}

	// An answer the kernel cannot write back: a request in a read-only page.
	page := mmapAnon(t, 1)
	req := (*v2pRequest)(unsafe.Pointer(&page[0]))
	*req = v2pRequest{VAddr: sliceAddr(page)}
	require.NoError(t, unix.Mprotect(page, unix.PROT_READ))
	err := ioctl(fd, ioctlV2P, unsafe.Pointer(req))
	guesttest.Same(t, "TASKPEEK_V2P with its struct in a read-only page", guesttest.ErrnoString(unix.EFAULT), guesttest.ErrnoString(guesttest.Errno(err)), "copy_to_user() fails: -EFAULT")
}

// Bad writes to the files that take a PID: an errno each, and the PID
// written before is still the one read.
func TestHostileWrites(t *testing.T) {
	guesttest.Mark(t)
	target := start(t, nil, "pause")
	guesttest.WaitState(t, target.PID, "S")
	gone := guesttest.GoneTarget(t, mustTargetPath(t))
	thread := otherThread(t)

	writes := []struct {
		what  string
		data  string
		errno syscall.Errno
	}{
		{"an empty write", "", unix.EINVAL},
		{"letters", "abc", unix.EINVAL},
		{"pid 0", "0", unix.EINVAL},
		{"pid -1", "-1", unix.EINVAL},
		{"a NUL inside", "1\x002", unix.EINVAL},
		{"two numbers", "1 2", unix.EINVAL},
		{"an int overflow", "99999999999999999999", unix.EINVAL},
		{"4 KiB of digits", strings.Repeat("1", 4096), unix.EINVAL},
		{"a pid above pid_max", strconv.Itoa(1 << 30), unix.ESRCH},
		{"the pid of a reaped process", strconv.Itoa(gone), unix.ESRCH},
		{"a thread's ID, not its process's", strconv.Itoa(thread), unix.ESRCH},
	}
	for _, path := range []string{childrenPath, memoryPath} {
		want := readSelected(t, path, target.PID)
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		require.NoError(t, err)
		for _, w := range writes {
			_, err := unix.Write(int(f.Fd()), []byte(w.data))
			guesttest.Same(t, fmt.Sprintf("write %s to %s", w.what, path), guesttest.ErrnoString(w.errno), guesttest.ErrnoString(guesttest.Errno(err)),
				"a whole decimal PID of a process, 1 or more, in one write; else -EINVAL (-ESRCH when no process has it)")
		}
		_, _, e := unix.Syscall(unix.SYS_WRITE, f.Fd(), 0x10, 4)
		guesttest.Same(t, "write from pointer 0x10 to "+path, guesttest.ErrnoString(unix.EFAULT), guesttest.ErrnoString(e), "copy_from_user() fails: -EFAULT")
		f.Close()
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		guesttest.Same(t, path+" after the bad writes", want, string(b), "a refused write leaves the PID written before")
	}
}

func mustTargetPath(t *testing.T) string {
	t.Helper()
	path, err := targetPath()
	require.NoError(t, err)
	return path
}

// otherThread is a thread of this process that is not its leader.
func otherThread(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/task")
	require.NoError(t, err)
	for _, e := range entries {
		if tid := atoi(t, e.Name()); tid != os.Getpid() {
			return tid
		}
	}
	require.FailNow(t, "a Go test process has more than one thread")
	return 0
}
