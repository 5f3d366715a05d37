//go:build pidlab_guest

package conformance

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestProcEntryMode(t *testing.T) {
	markTest(t)
	var st unix.Stat_t
	require.NoError(t, unix.Stat(procPID, &st), "stat %s", procPID)
	checkEqual(t, uint32(unix.S_IFREG), st.Mode&unix.S_IFMT, hintEntryMode, "file type of %s (S_IFREG)", procPID)
	checkEqual(t, "0644", fmt.Sprintf("%04o", st.Mode&0o7777), hintEntryMode, "permission bits of %s", procPID)
	checkZero(t, st.Uid, hintEntryMode, "owner of %s", procPID)
}

// padded returns "<pid>\n" padded with leading zeros to size bytes. The
// number is decimal, so the zeros change nothing (base 0 would read it as
// octal).
func padded(pid, size int) string {
	s := strconv.Itoa(pid) + "\n"
	return strings.Repeat("0", size-len(s)) + s
}

func TestWriteReturnsByteCount(t *testing.T) {
	markTest(t)
	tg := startTarget(t, "sleep")
	pid := strconv.Itoa(tg.PID)
	tests := []struct{ name, text string }{
		{"with newline", pid + "\n"},
		{"without newline", pid},
		{"32 bytes", padded(tg.PID, writeMax)},
		{"32 bytes without newline", strings.TrimSuffix(padded(tg.PID, writeMax+1), "\n")},
	}
	for _, tt := range tests {
		text := tt.text
		t.Run(tt.name, func(t *testing.T) {
			other := startTarget(t, "sleep")
			requireWritePID(t, other.PID)
			n, err := writeRaw([]byte(text))
			requireNoError(t, err, hintWriteParse, "write(%q)", text)
			checkEqual(t, len(text), n, hintWriteCount, "return value of write(%q)", text)
			rec := requireRecord(t)
			checkEqual(t, tg.PID, rec.PID, hintWriteParse, "pid selected by write(%q)", text)
		})
	}
}

// badWrite is one attempt to write something the module must reject.
type badWrite struct {
	name string
	want unix.Errno
	// text is written in one write(2) at offset 0 on a fresh O_WRONLY
	// descriptor, unless do is set.
	text string
	// do makes the attempt some other way and returns the errno of the
	// call under test (0 if it succeeded).
	do func(t *testing.T) unix.Errno
	// hint overrides the one badWriteHint derives from want and text.
	hint hint
}

func TestBadWritesLeaveSelection(t *testing.T) {
	markTest(t)
	// Every rejected write must fail with its errno, leave the earlier
	// selection exactly as it was (the same process, not just the same
	// number) and make the kernel print nothing.
	tg := startTarget(t, "sleep")
	gone := startTarget(t, "sleep")
	gone.Reap(t)
	pid := strconv.Itoa(tg.PID)
	guard := newGuardPage(t)

	tests := []badWrite{
		// Not one decimal integer, optionally followed by one newline.
		{name: "empty", text: "", want: unix.EINVAL},
		{name: "newline only", text: "\n", want: unix.EINVAL},
		{name: "spaces", text: "   ", want: unix.EINVAL},
		{name: "tab", text: "\t", want: unix.EINVAL},
		{name: "letters", text: "abc", want: unix.EINVAL},
		{name: "digits then letters", text: "12abc", want: unix.EINVAL},
		{name: "two numbers", text: "1 2", want: unix.EINVAL},
		{name: "leading space", text: " " + pid, want: unix.EINVAL},
		{name: "trailing space", text: pid + " ", want: unix.EINVAL},
		{name: "leading newline", text: "\n" + pid, want: unix.EINVAL},
		{name: "two newlines", text: pid + "\n\n", want: unix.EINVAL},
		{name: "CRLF", text: pid + "\r\n", want: unix.EINVAL},
		{name: "trailing tab", text: pid + "\t", want: unix.EINVAL},
		{name: "hexadecimal", text: "0x10\n", want: unix.EINVAL},
		{name: "exponent", text: "1e3", want: unix.EINVAL},
		{name: "fraction", text: "1.0", want: unix.EINVAL},
		{name: "two signs", text: "+-1", want: unix.EINVAL},
		{name: "fullwidth digit", text: "\uff11", want: unix.EINVAL},
		{name: "NUL only", text: "\x00", want: unix.EINVAL},
		{name: "embedded NUL", text: "1\x002", want: unix.EINVAL},
		{name: "NUL after the number", text: pid + "\x00", want: unix.EINVAL},
		// Integers outside 1..PID_MAX_LIMIT.
		{name: "zero", text: "0", want: unix.EINVAL},
		{name: "zeros", text: "000\n", want: unix.EINVAL},
		{name: "minus zero", text: "-0", want: unix.EINVAL},
		{name: "negative", text: "-1", want: unix.EINVAL},
		{name: "negative of the target", text: "-" + pid, want: unix.EINVAL},
		{name: "PID_MAX_LIMIT+1", text: strconv.Itoa(pidMaxLimit+1) + "\n", want: unix.EINVAL},
		{name: "int overflow", text: "2147483648\n", want: unix.EINVAL},
		{name: "int underflow", text: "-2147483649", want: unix.EINVAL},
		// Would be 1 if truncated to 32 or 64 bits.
		{name: "2^32+1", text: "4294967297", want: unix.EINVAL},
		{name: "2^64+1", text: "18446744073709551617", want: unix.EINVAL},
		{name: "20 digits", text: "99999999999999999999", want: unix.EINVAL},
		// Too long, whatever the content.
		{name: "32 letters", text: strings.Repeat("x", writeMax), want: unix.EINVAL},
		{name: "32 nines", text: strings.Repeat("9", writeMax), want: unix.EINVAL},
		// A valid number one byte over the limit: only the length is wrong.
		{name: "33 bytes", text: padded(tg.PID, writeMax+1), want: unix.EINVAL},
		{name: "4 KiB", text: padded(tg.PID, 4096), want: unix.EINVAL},
		{name: "1 MiB", text: padded(tg.PID, 1<<20), want: unix.EINVAL},
		// Valid numbers that name no process.
		{name: "reaped process", text: strconv.Itoa(gone.PID) + "\n", want: unix.ESRCH},
		// In range, but pid_max <= PID_MAX_LIMIT so no process has it.
		{name: "PID_MAX_LIMIT", text: strconv.Itoa(pidMaxLimit) + "\n", want: unix.ESRCH},
		// A PID must come whole in one write(2) at offset 0 (module: EINVAL).
		{name: "write after lseek to 1", want: unix.EINVAL, hint: hintWritePos, do: func(t *testing.T) unix.Errno {
			fd := requireOpen(t, unix.O_WRONLY)
			off, err := unix.Seek(fd, 1, unix.SEEK_SET)
			require.NoError(t, err, "lseek(1, SEEK_SET)")
			require.Equal(t, int64(1), off, "offset after lseek")
			return errnoOf(unix.Write(fd, []byte(pid+"\n")))
		}},
		{name: "write after a read on O_RDWR", want: unix.EINVAL, hint: hintWritePos, do: func(t *testing.T) unix.Errno {
			fd := requireOpen(t, unix.O_RDWR)
			n, err := unix.Read(fd, make([]byte, 1))
			require.NoError(t, err, "read 1 byte")
			require.Equal(t, 1, n, "bytes read")
			return errnoOf(unix.Write(fd, []byte(pid+"\n")))
		}},
		// Each write(2) is a whole selection of its own, also on one
		// descriptor (the module leaves the position at 0): "0" after a
		// good write is zero, not the good number with a 0 appended.
		{name: "second write of a split number", want: unix.EINVAL, hint: hintWriteNoPos, do: func(t *testing.T) unix.Errno {
			fd := requireOpen(t, unix.O_WRONLY)
			n, err := unix.Write(fd, []byte(pid))
			require.NoError(t, err, "first write(%q)", pid)
			require.Equal(t, len(pid), n, "return value of the first write(%q)", pid)
			return errnoOf(unix.Write(fd, []byte("0")))
		}},
		// seq_open() clears FMODE_PWRITE: the VFS refuses every pwrite,
		// even at offset 0, before the module sees it.
		{name: "pwrite at offset 0", want: unix.ESPIPE, do: pwriteAt(pid, 0)},
		{name: "pwrite at offset 1", want: unix.ESPIPE, do: pwriteAt(pid, 1)},
		{name: "pwrite at offset 32", want: unix.ESPIPE, do: pwriteAt(pid, writeMax)},
		// Bad buffers (raw write(2): Go would not pass such a pointer).
		{name: "buffer in page 0", want: unix.EFAULT, do: writeFrom(pageZeroAddr, 4)},
		{name: "buffer in an inaccessible page", want: unix.EFAULT, do: writeFrom(guard.fault(), 4)},
		{name: "buffer running into an inaccessible page", want: unix.EFAULT,
			do: writeFrom(guard.tail(pid), uintptr(len(pid)+1))},
		{name: "kernel address", want: unix.EFAULT, do: writeFrom(kernelAddr, 4)},
		// The VFS checks the open mode.
		{name: "write on a read-only descriptor", want: unix.EBADF, do: func(t *testing.T) unix.Errno {
			fd := requireOpen(t, unix.O_RDONLY)
			return errnoOf(unix.Write(fd, []byte(pid+"\n")))
		}},
	}
	require.GreaterOrEqual(t, len(tests), 40, "cases")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireWritePID(t, tg.PID)
			noNewKernelWarning(t)
			var got unix.Errno
			what := tt.name
			if tt.do != nil {
				got = tt.do(t)
			} else {
				got = errnoOf(writeRaw([]byte(tt.text)))
				what = fmt.Sprintf("%s: write(%s)", tt.name, quoteShort(tt.text))
			}
			checkEqual(t, tt.want, got, badWriteHint(tt), "%s: errno %q, want %q (0: the write succeeded)", what, got, tt.want)
			assertStillSelected(t, tg, "the rejected "+what)
		})
	}
}

// errnoOf is the errno of a system call's error, 0 for success. An error
// that holds no errno (the raw helpers return none) becomes an impossible
// errno, so that it matches no expected one.
func errnoOf[T any](_ T, err error) unix.Errno {
	if err == nil {
		return 0
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return unix.Errno(^uintptr(0))
}

// quoteShort quotes text for a message, eliding the middle of long ones.
func quoteShort(text string) string {
	if len(text) <= 48 {
		return strconv.Quote(text)
	}
	return fmt.Sprintf("%q...%q (%d bytes)", text[:16], text[len(text)-8:], len(text))
}

// pwriteAt is a pwrite(2) of "<pid>\n" at off.
func pwriteAt(pid string, off int64) func(t *testing.T) unix.Errno {
	return func(t *testing.T) unix.Errno {
		fd := requireOpen(t, unix.O_WRONLY)
		return errnoOf(unix.Pwrite(fd, []byte(pid+"\n"), off))
	}
}

// writeFrom is a raw write(2) of length bytes from addr.
func writeFrom(addr, length uintptr) func(t *testing.T) unix.Errno {
	return func(t *testing.T) unix.Errno {
		fd := requireOpen(t, unix.O_WRONLY)
		_, _, errno := unix.Syscall(unix.SYS_WRITE, uintptr(fd), addr, length)
		return errno
	}
}

func TestSplitWriteIsTwoSelections(t *testing.T) {
	markTest(t)
	// Decision: a descriptor's position stays 0 after a write, so every
	// write(2) is a complete selection of its own and the last good one
	// wins. A PID split over two writes is two PIDs: "1" then "23" selects
	// init, then 23 (or fails with ESRCH/EINVAL on its own merits); it is
	// never 123. (The rejected half of a split is in TestBadWritesLeaveSelection.)
	tg := startTarget(t, "sleep")
	pid := strconv.Itoa(tg.PID)
	fd := requireOpen(t, unix.O_WRONLY)

	n, err := unix.Write(fd, []byte("1"))
	require.NoError(t, err, "first write(\"1\")")
	require.Equal(t, 1, n, "return value of write(\"1\")")
	checkEqual(t, 1, requireRecord(t).PID, "", "pid selected by the first write(\"1\")")
	off, err := unix.Seek(fd, 0, unix.SEEK_CUR)
	require.NoError(t, err, "lseek(0, SEEK_CUR)")
	checkZero(t, off, hintWriteNoPos, "file position after a write: it stays 0, so the next write is a new selection")

	n, err = unix.Write(fd, []byte(pid+"\n"))
	requireNoError(t, err, hintWriteNoPos, "second write(%q) on the same descriptor", pid)
	checkEqual(t, len(pid)+1, n, hintWriteCount, "return value of the second write(%q)", pid)
	rec := requireRecord(t)
	checkEqual(t, tg.PID, rec.PID, hintWriteNoPos, "pid after writing \"1\" then %q: the second write alone, not \"1%s\"", pid, pid)
}

// requireOpen opens /proc/pid; t.Cleanup closes it.
func requireOpen(t *testing.T, flags int) int {
	t.Helper()
	fd, err := openModule(flags)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func TestNonRootAccess(t *testing.T) {
	markTest(t)
	// Mode 0644: others may read; only root, who bypasses the mode, may
	// open it for writing. A refused writer changes nothing.
	tg := startTarget(t, "sleep")
	other := startTarget(t, "sleep")
	requireWritePID(t, tg.PID)
	opener := startTargetWith(t, asUser(1234, 5678), "open-modes")
	want := fmt.Sprintf("read=0 write=%d", int(unix.EACCES))
	checkEqual(t, want, strings.Join(opener.Info, " "), hintEntryMode,
		"errno of open(/proc/pid) by uid 1234 for reading and for writing (0: success; EACCES is %d)", int(unix.EACCES))
	assertStillSelected(t, tg, "open attempts by uid 1234")

	// uid 1000 tries to select other, then reads: it still sees tg.
	_, view := startViewWith(t, asUser(1000, 1000), "view", strconv.Itoa(other.PID))
	checkEqual(t, unix.EACCES, view.writeErr, "", "errno of uid 1000's write of %d (its open for writing)", other.PID)
	checkEqual(t, unix.Errno(0), view.readErr, "", "errno of uid 1000's read")
	checkEqual(t, strconv.Itoa(tg.PID), view.pid, "", "pid read by uid 1000 after its refused write of %d", other.PID)
	checkEqual(t, strconv.Itoa(os.Getpid()), view.ppid, "", "ppid read by uid 1000")
	assertStillSelected(t, tg, fmt.Sprintf("uid 1000's refused write of %d", other.PID))
}

// nsView is what a pidlab-target "view" reported from its namespaces.
type nsView struct {
	writeErr, readErr unix.Errno
	pid, ppid         string // "-" when nothing was read
}

// startView runs "pidlab-target view [text]" as PID 1 of a new PID
// namespace and parses its report.
func startView(t *testing.T, text ...string) (*target, nsView) {
	t.Helper()
	return startViewWith(t, inNewPIDNamespace(), append([]string{"view"}, text...)...)
}

// startViewIn runs "pidlab-target view-in <ns.PID> [text]": a view from a
// second process in the PID namespace of ns.
func startViewIn(t *testing.T, ns *target, text ...string) (*target, nsView) {
	t.Helper()
	return startViewWith(t, nil, append([]string{"view-in", strconv.Itoa(ns.PID)}, text...)...)
}

// startViewWith runs pidlab-target with args (a view mode) and attr, and
// parses its report.
func startViewWith(t *testing.T, attr *syscall.SysProcAttr, args ...string) (*target, nsView) {
	t.Helper()
	tg := startTargetWith(t, attr, args...)
	var v nsView
	var werr, rerr int
	_, err := fmt.Sscanf(strings.Join(tg.Info, " "), "write=%d read=%d pid=%s ppid=%s", &werr, &rerr, &v.pid, &v.ppid)
	require.NoError(t, err, "view report %q", tg.Info)
	v.writeErr, v.readErr = unix.Errno(werr), unix.Errno(rerr)
	return tg, v
}

// PID namespaces. The decision, which the README states: a written number
// is resolved in the writer's active PID namespace (find_vpid, as kill(2)
// resolves its argument), and what is stored is the process (its struct
// pid), not the number. Each reader then sees that process's ID in its own
// namespace (pid_nr_ns, as /proc/<pid> does), so a writer and a reader may
// see different numbers for one selection, and a reader that cannot see
// the process at all gets ESRCH, as it could not open /proc/<n> either.
// Storing the number and resolving it per reader would make one write name
// a different process for each reader, and a stranger after PID reuse.
// The tests cover both directions: written inside and read outside
// (TestWriteResolvesInWriterPIDNamespace), written outside and read inside
// (TestReadResolvesInReaderPIDNamespace), and a process invisible to the
// reader (TestReadFromOtherPIDNamespaceIsESRCH).

func TestWriteResolvesInWriterPIDNamespace(t *testing.T) {
	markTest(t)
	tg := startTarget(t, "sleep")
	requireWritePID(t, tg.PID)

	// tg's PID means nothing in a new namespace, whose only process is 1.
	_, outsider := startView(t, strconv.Itoa(tg.PID))
	checkEqual(t, unix.ESRCH, outsider.writeErr, hintWriterNS, "errno of writing %d from a new PID namespace", tg.PID)
	assertStillSelected(t, tg, "a write of a PID not in the writer's namespace")

	// "1" in the new namespace is the writer itself, not init. It reads
	// itself as 1 with an invisible parent (0); from here it is a child
	// of the test with its global PID.
	self, view := startView(t, "1")
	requireEqual(t, unix.Errno(0), view.writeErr, "", "errno of writing 1 from a new PID namespace")
	requireEqual(t, unix.Errno(0), view.readErr, "", "errno of the namespaced writer's read")
	checkEqual(t, "1", view.pid, hintReaderNS, "pid read inside the new namespace by its PID 1")
	checkEqual(t, "0", view.ppid, hintReaderNS, "ppid read inside the new namespace: the parent is outside it")
	rec := requireStoredMatchesStat(t, self.PID)
	checkEqual(t, self.PID, rec.PID, "", "pid read here of the process that wrote 1 in its own namespace")
	checkEqual(t, os.Getpid(), rec.PPID, "", "ppid read here of the process that wrote 1 in its own namespace")

	// A second process in a namespace writes "1": that namespace's init,
	// not the writer and not the global init.
	ns := startTargetWith(t, inNewPIDNamespace(), "sleep")
	_, second := startViewIn(t, ns, "1")
	requireEqual(t, unix.Errno(0), second.writeErr, "", "errno of writing 1 from the second process of a PID namespace")
	checkEqual(t, "1", second.pid, hintWriterNS, "pid read inside the namespace after its second process wrote 1")
	rec = requireStoredMatchesStat(t, ns.PID)
	checkEqual(t, ns.PID, rec.PID, hintWriterNS, "pid read here after \"1\" was written inside the namespace of pid %d", ns.PID)
}

func TestReadResolvesInReaderPIDNamespace(t *testing.T) {
	markTest(t)
	// Written here with its global number, a namespace's init reads as 1
	// inside that namespace, with its parent (outside) as 0.
	ns := startTargetWith(t, inNewPIDNamespace(), "sleep")
	requireWritePID(t, ns.PID)
	_, view := startViewIn(t, ns)
	requireEqual(t, unix.Errno(0), view.readErr, "", "errno of reading, inside the namespace of pid %d, the selection %d", ns.PID, ns.PID)
	checkEqual(t, "1", view.pid, hintReaderNS, "pid of global pid %d read inside its own namespace", ns.PID)
	checkEqual(t, "0", view.ppid, hintReaderNS, "ppid of global pid %d read inside its own namespace: the parent is outside it", ns.PID)
	rec := requireStoredMatchesStat(t, ns.PID)
	checkEqual(t, ns.PID, rec.PID, "", "pid read here after the namespace read it: the selection is unchanged")
}

func TestReadFromOtherPIDNamespaceIsESRCH(t *testing.T) {
	markTest(t)
	// A process the reader cannot see does not exist for it.
	tg := startTarget(t, "sleep")
	requireWritePID(t, tg.PID)
	_, view := startView(t)
	checkEqual(t, unix.ESRCH, view.readErr, hintReaderNSInvisible, "errno of reading /proc/pid, selecting %d, from a new PID namespace", tg.PID)
	assertStillSelected(t, tg, "a read from another namespace")
}

func TestReadAfterExitIsESRCH(t *testing.T) {
	markTest(t)
	tg := startTarget(t, "sleep")
	requireWritePID(t, tg.PID)

	// Killed but not reaped: still a task, now a zombie.
	tg.Signal(t, unix.SIGKILL, "Z")
	rec := requireStoredMatchesStat(t, tg.PID)
	checkEqual(t, "Z", rec.State, hintState, "state of killed, unreaped pid %d", tg.PID)

	tg.Reap(t)
	_, err := readRecord(t)
	checkErrorIs(t, err, unix.ESRCH, readHint(err, hintReadExited), "read /proc/pid after pid %d was reaped", tg.PID)

	// The error is not sticky: a new selection reads normally.
	next := startTarget(t, "sleep")
	requireMatchesStat(t, next.PID)
}

func TestReadAfterPIDReuseIsESRCH(t *testing.T) {
	markTest(t)
	old := startTarget(t, "sleep")
	requireWritePID(t, old.PID)
	old.Reap(t)

	reused := startTargetAtPID(t, old.PID)
	_, err := readRecord(t)
	checkErrorIs(t, err, unix.ESRCH, readHint(err, hintStorePid),
		"read /proc/pid after the selected process exited and pid %d went to a new process", old.PID)

	// Only a new write of the number selects the new process.
	requireMatchesStat(t, reused.PID)
}

// startTargetAtPID starts a sleeping target that gets the number pid, by
// setting the namespace's last allocated PID just below it. A fork by
// anyone else in between takes the number, so it tries a few times.
func startTargetAtPID(t *testing.T, pid int) *target {
	t.Helper()
	const lastPID = "/proc/sys/kernel/ns_last_pid"
	for attempt := 0; attempt < 10; attempt++ {
		err := os.WriteFile(lastPID, []byte(strconv.Itoa(pid-1)), 0)
		if err != nil {
			t.Skipf("cannot arrange PID reuse: %v (needs CONFIG_CHECKPOINT_RESTORE and root)", err)
		}
		tg := startTarget(t, "sleep")
		if tg.PID == pid {
			return tg
		}
		tg.Stop()
	}
	t.Skipf("cannot arrange PID reuse: 10 new processes did not get pid %d", pid)
	return nil
}
