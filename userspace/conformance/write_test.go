//go:build pidlab_guest

package conformance

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestProcEntryMode(t *testing.T) {
	var st unix.Stat_t
	require.NoError(t, unix.Stat(procPID, &st), "stat %s", procPID)
	assert.Equal(t, uint32(unix.S_IFREG), st.Mode&unix.S_IFMT, "file type of %s (S_IFREG)", procPID)
	assert.Equal(t, "0644", fmt.Sprintf("%04o", st.Mode&0o7777), "permission bits of %s", procPID)
	assert.Zero(t, st.Uid, "owner of %s", procPID)
}

// padded returns "<pid>\n" padded with leading zeros to size bytes. The
// number is decimal, so the zeros change nothing (base 0 would read it as
// octal).
func padded(pid, size int) string {
	s := strconv.Itoa(pid) + "\n"
	return strings.Repeat("0", size-len(s)) + s
}

func TestWriteReturnsByteCount(t *testing.T) {
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
			require.NoError(t, err, "write(%q)", text)
			assert.Equal(t, len(text), n, "return value of write(%q)", text)
			rec := requireRecord(t)
			assert.Equal(t, tg.PID, rec.PID, "pid selected by write(%q)", text)
		})
	}
}

func TestWriteRejectsInvalidInput(t *testing.T) {
	tg := startTarget(t, "sleep")
	tests := []struct{ name, text string }{
		{"empty", ""},
		{"newline only", "\n"},
		{"letters", "abc"},
		{"digits then letters", "12abc"},
		{"zero", "0"},
		{"negative", "-1"},
		{"PID_MAX_LIMIT+1", strconv.Itoa(pidMaxLimit+1) + "\n"},
		{"int overflow", "2147483648\n"},
		{"hexadecimal", "0x10\n"},
		{"leading space", " " + strconv.Itoa(tg.PID)},
		{"trailing space", strconv.Itoa(tg.PID) + " "},
		{"two newlines", strconv.Itoa(tg.PID) + "\n\n"},
		// A valid number one byte over the limit: only the length is wrong.
		{"33 bytes", padded(tg.PID, writeMax+1)},
		{"4 KiB", padded(tg.PID, 4096)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireWritePID(t, tg.PID)
			_, err := writeRaw([]byte(tt.text))
			assert.ErrorIs(t, err, unix.EINVAL, "write(%q) to /proc/pid", tt.text)
			assertStillSelected(t, tg, fmt.Sprintf("the rejected write(%q)", tt.text))
		})
	}
}

func TestWriteMissingPIDIsESRCH(t *testing.T) {
	tg := startTarget(t, "sleep")
	gone := startTarget(t, "sleep")
	gone.reap(t)
	tests := []struct {
		name string
		pid  int
	}{
		{"reaped process", gone.PID},
		// In range, but pid_max <= PID_MAX_LIMIT so no process has it.
		{"PID_MAX_LIMIT", pidMaxLimit},
	}
	for _, tt := range tests {
		pid := tt.pid
		t.Run(tt.name, func(t *testing.T) {
			requireWritePID(t, tg.PID)
			err := writePID(t, pid)
			assert.ErrorIs(t, err, unix.ESRCH, "write %d (no such process) to /proc/pid", pid)
			assertStillSelected(t, tg, fmt.Sprintf("writing missing pid %d", pid))
		})
	}
}

func TestWriteBadPointerIsEFAULT(t *testing.T) {
	tg := startTarget(t, "sleep")
	requireWritePID(t, tg.PID)
	fd, err := openModule(unix.O_WRONLY)
	require.NoError(t, err)
	defer unix.Close(fd)

	// Address 1 is a user address (so the VFS passes it on) in page 0,
	// which mmap_min_addr keeps unmapped; 4 bytes is a valid length.
	const badAddr, length = 1, 4
	_, _, errno := unix.Syscall(unix.SYS_WRITE, uintptr(fd), badAddr, length)
	assert.Equal(t, unix.EFAULT, errno, "errno of write(fd, %#x, %d) to /proc/pid", badAddr, length)
	assertStillSelected(t, tg, "a write from a bad address")
}

func TestWriteAtNonzeroOffset(t *testing.T) {
	// A PID must arrive whole in one write at offset 0: EINVAL from the
	// module. pwrite never reaches it: seq_open() clears FMODE_PWRITE, so
	// the VFS answers ESPIPE.
	tg := startTarget(t, "sleep")
	other := startTarget(t, "sleep")
	text := []byte(strconv.Itoa(other.PID) + "\n")

	t.Run("pwrite", func(t *testing.T) {
		requireWritePID(t, tg.PID)
		fd := requireOpen(t, unix.O_WRONLY)
		for _, off := range []int64{1, writeMax} {
			_, err := unix.Pwrite(fd, text, off)
			assert.ErrorIs(t, err, unix.ESPIPE, "pwrite(%q) at offset %d", text, off)
			assertStillSelected(t, tg, fmt.Sprintf("pwrite at offset %d", off))
		}
	})
	t.Run("write after lseek", func(t *testing.T) {
		requireWritePID(t, tg.PID)
		fd := requireOpen(t, unix.O_WRONLY)
		off, err := unix.Seek(fd, 1, unix.SEEK_SET)
		require.NoError(t, err, "lseek(1, SEEK_SET)")
		require.Equal(t, int64(1), off, "offset after lseek")
		_, err = unix.Write(fd, text)
		assert.ErrorIs(t, err, unix.EINVAL, "write(%q) at offset 1", text)
		assertStillSelected(t, tg, "a write at offset 1 after lseek")
	})
	t.Run("write after read", func(t *testing.T) {
		requireWritePID(t, tg.PID)
		fd := requireOpen(t, unix.O_RDWR)
		n, err := unix.Read(fd, make([]byte, 1))
		require.NoError(t, err, "read 1 byte")
		require.Equal(t, 1, n, "bytes read")
		_, err = unix.Write(fd, text)
		assert.ErrorIs(t, err, unix.EINVAL, "write(%q) at offset 1 after a 1-byte read on O_RDWR", text)
		assertStillSelected(t, tg, "a write at offset 1 after a read")
	})
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
	// Mode 0644: others may read; only root, who bypasses the mode, may
	// open it for writing.
	tg := startTarget(t, "sleep")
	requireWritePID(t, tg.PID)
	opener := startTargetWith(t, asUser(1234, 5678), "open-modes")
	want := fmt.Sprintf("read=0 write=%d", int(unix.EACCES))
	assert.Equal(t, want, strings.Join(opener.Info, " "),
		"errno of open(/proc/pid) by uid 1234 for reading and for writing (0: success; EACCES is %d)", int(unix.EACCES))
	assertStillSelected(t, tg, "open attempts by uid 1234")
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
	tg := startTargetWith(t, inNewPIDNamespace(), append([]string{"view"}, text...)...)
	var v nsView
	var werr, rerr int
	_, err := fmt.Sscanf(strings.Join(tg.Info, " "), "write=%d read=%d pid=%s ppid=%s", &werr, &rerr, &v.pid, &v.ppid)
	require.NoError(t, err, "view report %q", tg.Info)
	v.writeErr, v.readErr = unix.Errno(werr), unix.Errno(rerr)
	return tg, v
}

func TestWriteResolvesInWriterPIDNamespace(t *testing.T) {
	tg := startTarget(t, "sleep")
	requireWritePID(t, tg.PID)

	// tg's PID means nothing in a new namespace, whose only process is 1.
	_, outsider := startView(t, strconv.Itoa(tg.PID))
	assert.Equal(t, unix.ESRCH, outsider.writeErr,
		"errno of writing %d from a new PID namespace (0: success)", tg.PID)
	assertStillSelected(t, tg, "a write of a PID not in the writer's namespace")

	// "1" in the new namespace is the writer itself, not init. It reads
	// itself as 1 with an invisible parent (0); from here it is a child
	// of the test with its global PID.
	self, view := startView(t, "1")
	require.Equal(t, unix.Errno(0), view.writeErr, "errno of writing 1 from a new PID namespace")
	require.Equal(t, unix.Errno(0), view.readErr, "errno of the namespaced writer's read")
	assert.Equal(t, "1", view.pid, "pid read inside the new namespace by its PID 1")
	assert.Equal(t, "0", view.ppid, "ppid read inside the new namespace: the parent is outside it")
	rec := requireStoredMatchesStat(t, self.PID)
	assert.Equal(t, self.PID, rec.PID, "pid read here of the process that wrote 1 in its own namespace")
	assert.Equal(t, os.Getpid(), rec.PPID, "ppid read here of the process that wrote 1 in its own namespace")
}

func TestReadFromOtherPIDNamespaceIsESRCH(t *testing.T) {
	// A process the reader cannot see does not exist for it.
	tg := startTarget(t, "sleep")
	requireWritePID(t, tg.PID)
	_, view := startView(t)
	assert.Equal(t, unix.ESRCH, view.readErr,
		"errno of reading /proc/pid, selecting %d, from a new PID namespace (0: success)", tg.PID)
	assertStillSelected(t, tg, "a read from another namespace")
}

func TestReadAfterExitIsESRCH(t *testing.T) {
	tg := startTarget(t, "sleep")
	requireWritePID(t, tg.PID)

	// Killed but not reaped: still a task, now a zombie.
	tg.signal(t, unix.SIGKILL, "Z")
	rec := requireStoredMatchesStat(t, tg.PID)
	assert.Equal(t, "Z", rec.State, "state of killed, unreaped pid %d", tg.PID)

	tg.reap(t)
	_, err := readRecord(t)
	assert.ErrorIs(t, err, unix.ESRCH, "read /proc/pid after pid %d was reaped", tg.PID)

	// The error is not sticky: a new selection reads normally.
	next := startTarget(t, "sleep")
	requireMatchesStat(t, next.PID)
}

func TestReadAfterPIDReuseIsESRCH(t *testing.T) {
	old := startTarget(t, "sleep")
	requireWritePID(t, old.PID)
	old.reap(t)

	startTargetAtPID(t, old.PID)
	_, err := readRecord(t)
	assert.ErrorIs(t, err, unix.ESRCH,
		"read /proc/pid after the selected process exited and pid %d went to a new process", old.PID)
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
		tg.stop()
	}
	t.Skipf("cannot arrange PID reuse: 10 new processes did not get pid %d", pid)
	return nil
}
