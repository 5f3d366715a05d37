//go:build pidlab_guest

package conformance

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/procfs"
)

func TestReadBeforeAnyWriteIsENODATA(t *testing.T) {
	// Taken before any write, whichever test came first (see firstRead).
	takeFirstRead()
	assert.ErrorIs(t, firstRead.err, unix.ENODATA,
		"first read of /proc/pid after the module loaded, before any write; it returned %q", firstRead.data)
}

// sleepingRecord selects a sleeping target, whose record cannot change
// while it sleeps, and returns the record's text.
func sleepingRecord(t *testing.T) (*target, []byte) {
	t.Helper()
	tg := startTarget(t, "sleep")
	requireWritePID(t, tg.PID)
	raw, err := readRaw()
	require.NoError(t, err, "read /proc/pid")
	requireParse(t, raw)
	return tg, raw
}

func TestRecordFormat(t *testing.T) {
	_, raw := sleepingRecord(t)
	text := string(raw)
	require.True(t, strings.HasSuffix(text, "\n"), "record must end in a newline: %q", text)
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	require.Len(t, lines, len(procfs.RecordKeys), "lines in the record %q", text)
	for i, line := range lines {
		key, value, ok := strings.Cut(line, ": ")
		if assert.True(t, ok, "line %d %q has no \": \"", i+1, line) {
			assert.Equal(t, procfs.RecordKeys[i], key, "key of line %d", i+1)
			assert.NotEmpty(t, value, "value of %s", key)
		}
	}
}

func TestReadOneByteAtATime(t *testing.T) {
	_, whole := sleepingRecord(t)
	for _, chunk := range []int{1, 7} {
		fd, err := openModule(unix.O_RDONLY)
		require.NoError(t, err)
		got, err := readAll(fd, chunk)
		unix.Close(fd)
		require.NoError(t, err, "read /proc/pid %d bytes at a time", chunk)
		assert.Equal(t, string(whole), string(got), "record read %d bytes at a time vs in one read", chunk)
	}
}

func TestPreadAtEveryOffset(t *testing.T) {
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
		require.Equal(t, 1, n, "bytes returned by pread at offset %d", off)
		require.Equal(t, string(whole[off]), string(buf), "byte at offset %d of %q", off, whole)
	}
	n, err := unix.Pread(fd, make([]byte, 16), int64(len(whole)))
	require.NoError(t, err, "pread at end of file")
	assert.Zero(t, n, "bytes returned by pread at end of file (offset %d)", len(whole))

	big := make([]byte, 2*len(whole))
	n, err = unix.Pread(fd, big, 5)
	require.NoError(t, err, "pread from offset 5")
	assert.Equal(t, string(whole[5:]), string(big[:n]), "pread from offset 5")
}

func TestLseekToZeroRereads(t *testing.T) {
	_, whole := sleepingRecord(t)
	fd, err := openModule(unix.O_RDONLY)
	require.NoError(t, err)
	defer unix.Close(fd)

	first, err := readAll(fd, 4096)
	require.NoError(t, err)
	eof, err := readAll(fd, 4096)
	require.NoError(t, err, "read again at end of file")
	assert.Empty(t, eof, "a read at end of file returns nothing")

	off, err := unix.Seek(fd, 0, unix.SEEK_SET)
	require.NoError(t, err, "lseek(0, SEEK_SET)")
	require.Zero(t, off, "offset returned by lseek")
	again, err := readAll(fd, 4096)
	require.NoError(t, err, "read after lseek to 0")
	assert.Equal(t, string(whole), string(first), "first read on this descriptor")
	assert.Equal(t, string(first), string(again), "read after lseek to 0 vs first read")
}

func TestReadIsSnapshotAcrossWrite(t *testing.T) {
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
	assert.Equal(t, string(whole), string(append(head, rest...)),
		"a read begun while pid %d was selected must finish with its record", first.PID)

	rec := requireRecord(t)
	assert.Equal(t, second.PID, rec.PID, "pid: a new descriptor must see the new selection")
}
