//go:build pidlab_guest

package conformance

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/procfs"
)

func TestReadBeforeAnyWriteIsENODATA(t *testing.T) {
	markTest(t)
	// Taken before any write, whichever test came first (see firstRead).
	takeFirstRead()
	checkErrorIs(t, firstRead.err, unix.ENODATA, readHint(firstRead.err, hintNoSelection),
		"first read of /proc/pid after the module loaded, before any write; it returned %q", firstRead.data)
}

// sleepingRecord selects a sleeping target, whose record cannot change
// while it sleeps, and returns the record's text.
func sleepingRecord(t *testing.T) (*target, []byte) {
	t.Helper()
	tg := startTarget(t, "sleep")
	requireWritePID(t, tg.PID)
	raw, err := readRaw()
	requireNoError(t, err, readHint(err, ""), "read /proc/pid")
	requireParse(t, raw)
	return tg, raw
}

func TestRecordFormat(t *testing.T) {
	markTest(t)
	_, raw := sleepingRecord(t)
	text := string(raw)
	if !checkThat(t, strings.HasSuffix(text, "\n"), "a record ending in a newline", strconv.Quote(text), hintRecordFormat, "the record's last byte") {
		t.FailNow()
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	requireEqual(t, len(procfs.RecordKeys), len(lines), hintRecordFormat, "lines in the record %q", text)
	for i, line := range lines {
		key, value, ok := strings.Cut(line, ": ")
		if checkThat(t, ok, `"key: value"`, strconv.Quote(line), hintRecordFormat, "line %d of the record", i+1) {
			checkEqual(t, procfs.RecordKeys[i], key, hintRecordFormat, "key of line %d", i+1)
			checkThat(t, value != "", "a value", `""`, hintRecordFormat, "value of %s", key)
		}
	}
}

func TestReadOneByteAtATime(t *testing.T) {
	markTest(t)
	_, whole := sleepingRecord(t)
	for _, chunk := range []int{1, 7} {
		fd, err := openModule(unix.O_RDONLY)
		require.NoError(t, err)
		got, err := readAll(fd, chunk)
		unix.Close(fd)
		require.NoError(t, err, "read /proc/pid %d bytes at a time", chunk)
		checkEqual(t, string(whole), string(got), hintReadPos, "record read %d bytes at a time vs in one read", chunk)
	}
}

func TestPreadAtEveryOffset(t *testing.T) {
	markTest(t)
	_, whole := sleepingRecord(t)
	fd, err := openModule(unix.O_RDONLY)
	require.NoError(t, err)
	defer unix.Close(fd)

	// Walk backwards so that every pread seeks away from where the
	// previous one left the seq_file.
	buf := make([]byte, 1)
	for off := len(whole) - 1; off >= 0; off-- {
		n, err := unix.Pread(fd, buf, int64(off))
		require.NoError(t, err, "pread 1 byte at offset %d", off)
		requireEqual(t, 1, n, hintReadPos, "bytes returned by pread at offset %d", off)
		requireEqual(t, string(whole[off]), string(buf), hintReadPos, "byte at offset %d of %q", off, whole)
	}
	n, err := unix.Pread(fd, make([]byte, 16), int64(len(whole)))
	require.NoError(t, err, "pread at end of file")
	checkZero(t, n, hintReadPos, "bytes returned by pread at end of file (offset %d)", len(whole))

	big := make([]byte, 2*len(whole))
	n, err = unix.Pread(fd, big, 5)
	require.NoError(t, err, "pread from offset 5")
	checkEqual(t, string(whole[5:]), string(big[:n]), hintReadPos, "pread from offset 5")
}

func TestLseekToZeroRereads(t *testing.T) {
	markTest(t)
	_, whole := sleepingRecord(t)
	fd, err := openModule(unix.O_RDONLY)
	require.NoError(t, err)
	defer unix.Close(fd)

	first, err := readAll(fd, 4096)
	require.NoError(t, err)
	eof, err := readAll(fd, 4096)
	require.NoError(t, err, "read again at end of file")
	checkEqual(t, "", string(eof), hintReadPos, "a read at end of file returns nothing")

	off, err := unix.Seek(fd, 0, unix.SEEK_SET)
	require.NoError(t, err, "lseek(0, SEEK_SET)")
	require.Zero(t, off, "offset returned by lseek")
	again, err := readAll(fd, 4096)
	require.NoError(t, err, "read after lseek to 0")
	checkEqual(t, string(whole), string(first), hintReadPos, "first read on this descriptor")
	checkEqual(t, string(first), string(again), hintReadPos, "read after lseek to 0 vs first read")
}

func TestReadIsSnapshotAcrossWrite(t *testing.T) {
	markTest(t)
	// seq_file fills its buffer on the first read of a descriptor; later
	// reads continue that snapshot even if the selection changes.
	first, whole := sleepingRecord(t)
	second := startTarget(t, "sleep")

	fd, err := openModule(unix.O_RDONLY)
	require.NoError(t, err)
	defer unix.Close(fd)
	head := make([]byte, 1)
	n, err := unix.Read(fd, head)
	require.NoError(t, err, "first 1-byte read")
	require.Equal(t, 1, n)

	requireWritePID(t, second.PID)
	rest, err := readAll(fd, 4096)
	require.NoError(t, err, "rest of the read after selecting pid %d", second.PID)
	checkEqual(t, string(whole), string(append(head, rest...)), hintReadPos,
		"a read begun while pid %d was selected must finish with its record", first.PID)

	rec := requireRecord(t)
	checkEqual(t, second.PID, rec.PID, "", "pid: a new descriptor must see the new selection")
}

func TestReadBadBufferIsEFAULT(t *testing.T) {
	markTest(t)
	// A bad buffer fails the read(2) (raw: Go would not pass such a
	// pointer) and loses nothing: seq_file keeps the formatted record, the
	// position stays where it was, and the next read on the same
	// descriptor gets the rest of the record, whole.
	_, whole := sleepingRecord(t)
	guard := newGuardPage(t)
	tests := []struct {
		name string
		addr uintptr
	}{
		{"page 0", pageZeroAddr},
		{"inaccessible page", guard.fault()},
		{"kernel address", kernelAddr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noNewKernelWarning(t)
			fd := requireOpen(t, unix.O_RDONLY)
			_, _, errno := unix.Syscall(unix.SYS_READ, uintptr(fd), tt.addr, 4096)
			checkEqual(t, unix.EFAULT, errno, hintReadFault, "errno of read(fd, %#x, 4096) from /proc/pid", tt.addr)
			off, err := unix.Seek(fd, 0, unix.SEEK_CUR)
			require.NoError(t, err, "lseek(0, SEEK_CUR)")
			checkZero(t, off, hintReadFault, "file position after the failed read")
			got, err := readAll(fd, 4096)
			require.NoError(t, err, "read on the same descriptor after EFAULT")
			checkEqual(t, string(whole), string(got), hintReadFault, "record read on the same descriptor after EFAULT")
		})
	}

	t.Run("buffer running into an inaccessible page", func(t *testing.T) {
		// The copy stops at the fault: a short read, or EFAULT if nothing
		// was copied; either way the record continues where it stopped.
		noNewKernelWarning(t)
		const room = 10
		fd := requireOpen(t, unix.O_RDONLY)
		addr := guard.fault() - room
		n, _, errno := unix.Syscall(unix.SYS_READ, uintptr(fd), addr, 4096)
		var head []byte
		if errno != 0 {
			checkEqual(t, unix.EFAULT, errno, "", "errno of read(fd, %#x, 4096) with %d bytes of room", addr, room)
		} else {
			require.LessOrEqual(t, int(n), room, "bytes read into a buffer with %d bytes of room", room)
			head = append(head, guard.mem[len(guard.mem)/2-room:][:n]...)
		}
		rest, err := readAll(fd, 4096)
		require.NoError(t, err, "read on the same descriptor after a read into a faulting buffer")
		checkEqual(t, string(whole), string(head)+string(rest), hintReadFault,
			"record read as %d bytes into a faulting buffer, then the rest", len(head))
	})
}

func TestReadersSharingADescriptor(t *testing.T) {
	markTest(t)
	// A dup'd descriptor shares the open file and its position: readers on
	// both get, between them, exactly one record, each byte once.
	_, whole := sleepingRecord(t)
	openPair := func(t *testing.T) (int, int) {
		fd := requireOpen(t, unix.O_RDONLY)
		dup, err := unix.Dup(fd)
		require.NoError(t, err, "dup")
		t.Cleanup(func() { unix.Close(dup) })
		return fd, dup
	}

	t.Run("alternating", func(t *testing.T) {
		fd, dup := openPair(t)
		var got []byte
		buf := make([]byte, 3)
		for i := 0; ; i++ {
			n, err := unix.Read([]int{fd, dup}[i%2], buf)
			require.NoError(t, err, "read %d, 3 bytes, alternating between a descriptor and its dup", i)
			if n == 0 {
				break
			}
			got = append(got, buf[:n]...)
			require.LessOrEqual(t, len(got), len(whole), "bytes read by both so far: more than one record: %q", got)
		}
		checkEqual(t, string(whole), string(got), hintReadPos, "record read 3 bytes at a time, alternating between a descriptor and its dup")
		for name, d := range map[string]int{"descriptor": fd, "dup": dup} {
			n, err := unix.Read(d, buf)
			assert.NoError(t, err, "read on the %s at end of file", name)
			assert.Zero(t, n, "bytes read on the %s at end of file", name)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		fd, dup := openPair(t)
		got := make([][]byte, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, d := range []int{fd, dup} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = readAll(d, 1)
			}()
		}
		wg.Wait()
		require.NoError(t, errs[0], "reader on the descriptor")
		require.NoError(t, errs[1], "reader on the dup")
		assert.Equal(t, len(whole), len(got[0])+len(got[1]),
			"bytes read by two concurrent readers of one open file: %d and %d, want one record in all", len(got[0]), len(got[1]))
		assert.Equal(t, sortedBytes(whole), sortedBytes(append(append([]byte{}, got[0]...), got[1]...)),
			"the bytes read by two concurrent readers, together, vs the record's")
		for i, g := range got {
			assert.True(t, isSubsequence(g, whole), "reader %d's bytes %q are not in record order %q", i, g, whole)
		}
	})
}

func sortedBytes(b []byte) string {
	s := []byte(string(b))
	slices.Sort(s)
	return string(s)
}

// isSubsequence reports whether sub is seq with some bytes left out.
func isSubsequence(sub, seq []byte) bool {
	for _, c := range sub {
		i := bytes.IndexByte(seq, c)
		if i < 0 {
			return false
		}
		seq = seq[i+1:]
	}
	return true
}

func TestAbandonedReadDoesNotDisturbOthers(t *testing.T) {
	markTest(t)
	// A reader that stops halfway holds its own snapshot: other readers
	// get whole records meanwhile, and it can still finish its own.
	_, whole := sleepingRecord(t)
	const half = 20

	stopped := requireOpen(t, unix.O_RDONLY)
	head := make([]byte, half)
	n, err := unix.Read(stopped, head)
	require.NoError(t, err, "read %d bytes", half)
	require.Equal(t, half, n, "bytes read")

	got, err := readRaw()
	require.NoError(t, err, "read on a new descriptor while another stopped halfway")
	checkEqual(t, string(whole), string(got), hintReadPos, "record read while another reader stopped halfway")

	rest, err := readAll(stopped, 4096)
	require.NoError(t, err, "the stopped reader's rest")
	checkEqual(t, string(whole), string(head)+string(rest), hintReadPos, "record of the reader that stopped halfway, then went on")

	closed, err := openModule(unix.O_RDONLY)
	require.NoError(t, err)
	_, err = unix.Read(closed, head)
	require.NoError(t, err, "read %d bytes", half)
	require.NoError(t, unix.Close(closed), "close a descriptor after reading half of the record")
	got, err = readRaw()
	require.NoError(t, err, "read after another reader closed halfway")
	assert.Equal(t, string(whole), string(got), "record read after another reader closed halfway")
}
