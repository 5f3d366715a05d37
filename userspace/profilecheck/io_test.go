//go:build pidlab_guest

package profilecheck

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

// Limits of one read-to-EOF: a record is a few hundred bytes, so a module
// that passes these never ends its file.
const (
	maxReads = 1000
	maxBytes = 1 << 20
)

// guardByte fills each read buffer before the read: no text record has
// it, so a byte of it among the bytes a read returned is one the module
// counted but never wrote (a read that returns a length without
// copy_to_user()).
const guardByte = 0xff

// readOutcome is what reading the entry until end of file gave.
type readOutcome struct {
	Text      string
	Reads     int  // read(2) calls that returned data
	EOF       bool // a read returned 0
	Err       error
	Unwritten int // bytes returned that still held guardByte
}

func (o readOutcome) String() string {
	switch {
	case o.Unwritten > 0:
		return fmt.Sprintf("%d of the %d bytes read were never written by the module (they still hold the reader's guard byte %#x)",
			o.Unwritten, len(o.Text), guardByte)
	case o.Err != nil:
		return fmt.Sprintf("read failed after %d bytes: %v", len(o.Text), guesttest.ErrnoName(o.Err))
	case !o.EOF:
		return fmt.Sprintf("%d reads returned %d bytes and none returned 0 (end of file)", o.Reads, len(o.Text))
	case o.Text == "":
		return "an empty read (end of file at once)"
	}
	return fmt.Sprintf("%q", o.Text)
}

// readEntry opens the entry and reads it to end of file, size bytes a read.
func readEntry(size int) readOutcome {
	fd, err := unix.Open(prof.Entry, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return readOutcome{Err: fmt.Errorf("open: %w", err)}
	}
	defer unix.Close(fd)
	return readFD(fd, size)
}

func readFD(fd, size int) readOutcome {
	var o readOutcome
	var text bytes.Buffer
	buf := make([]byte, size)
	for o.Reads < maxReads && text.Len() < maxBytes {
		for i := range buf {
			buf[i] = guardByte
		}
		n, err := unix.Read(fd, buf)
		if err != nil {
			o.Err = err
			break
		}
		if n == 0 {
			o.EOF = true
			break
		}
		o.Reads++
		o.Unwritten += bytes.Count(buf[:n], []byte{guardByte})
		text.Write(buf[:n])
	}
	o.Text = text.String()
	return o
}

// writeEntry writes s to the entry in one write(2), as echo does, and
// returns what write returned.
func writeEntry(s string) (int, error) {
	fd, err := unix.Open(prof.Entry, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	return unix.Write(fd, []byte(s))
}

// selectPID writes pid as the profile says, failing the test unless the
// module takes the whole write.
func selectPID(t *testing.T, pid int) {
	t.Helper()
	text := prof.WriteText(pid)
	n, err := writeEntry(text)
	if err != nil {
		fatal(t, "selecting a process", fmt.Sprintf("write(%q) returns %d", text, len(text)), "write failed: "+guesttest.ErrnoName(err),
			"the write handler must accept a PID in the profile's format ("+strings.TrimSpace(prof.Write)+") and return count")
	}
	if n != len(text) {
		fatal(t, "selecting a process", fmt.Sprintf("write(%q) returns %d", text, len(text)), fmt.Sprintf("it returned %d", n),
			writeCountHint)
	}
}

const writeCountHint = "the write handler must return count (every byte consumed) or a negative errno; returning 0 makes `echo` retry forever and a short count makes it write the rest again"

// report fails a check: as data for the host's verdict table, and as
// the test's message.
func report(t *testing.T, what, want, got, hint string) {
	t.Helper()
	guesttest.Fail(t, guestapi.Failure{Check: what, Expected: want, Got: got, Hint: hint})
}

func fatal(t *testing.T, what, want, got, hint string) {
	t.Helper()
	guesttest.FailNow(t, guestapi.Failure{Check: what, Expected: want, Got: got, Hint: hint})
}

// openEntry opens the entry for reading; the caller closes it.
func openEntry(t *testing.T) int {
	t.Helper()
	fd, err := unix.Open(prof.Entry, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err, "open %s", prof.Entry)
	return fd
}
