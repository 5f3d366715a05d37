//go:build pidlab_guest

package guest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

// Exits show other users' activity: only root reads the events; anyone
// may read the counts.
func TestOnlyRootReadsEvents(t *testing.T) {
	guesttest.Mark(t)
	var st unix.Stat_t
	require.NoError(t, unix.Stat(eventsPath, &st))
	guesttest.Same(t, eventsPath+"'s mode", fmt.Sprintf("%o", 0o400), fmt.Sprintf("%o", st.Mode&0o777),
		"proc_create(\"events\", 0400, …): exit events leak other users' activity")
	for _, tc := range []struct {
		path  string
		errno syscall.Errno // 0: it opens
		hint  string
	}{
		{eventsPath, syscall.EACCES, "proc_create(\"events\", 0400, …), and the open checks capable(CAP_SYS_ADMIN)"},
		{statsPath, 0, "the counts tell nobody's business: proc_create_single(\"stats\", 0444, …)"},
	} {
		cmd := child(t, "open", tc.path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, _ := cmd.Output()
		got := "opened"
		if cmd.ProcessState.ExitCode() != 0 {
			n, err := strconv.Atoi(strings.TrimSpace(string(out)))
			require.NoError(t, err, "exitmon-child open prints the errno: %q", out)
			got = guesttest.ErrnoName(syscall.Errno(n))
		}
		want := "opened"
		if tc.errno != 0 {
			want = guesttest.ErrnoName(tc.errno)
		}
		guesttest.Same(t, "open "+tc.path+" as uid 65534", want, got, tc.hint)
	}
}

// With nothing to read, a non-blocking read says so.
func TestNonBlockingReadSaysEAGAIN(t *testing.T) {
	guesttest.Mark(t)
	s := openStream(t)
	s.drain()
	_, err := unix.Read(s.fd, make([]byte, 4096))
	if !errors.Is(err, unix.EAGAIN) {
		guesttest.Fail(t, guestapi.Failure{Check: "read with O_NONBLOCK and no event waiting", Expected: "EAGAIN", Got: errString(err),
			Hint: "when no event waits: return -EAGAIN if file->f_flags & O_NONBLOCK, else wait_event_interruptible()"})
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return guesttest.ErrnoName(err)
}

// A read blocked on an empty ring returns when a process exits.
func TestBlockingReadWakesOnExit(t *testing.T) {
	guesttest.Mark(t)
	fd, err := unix.Open(eventsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		buf := make([]byte, 4096)
		n, err := unix.Read(fd, buf) // blocks: the file was opened after every earlier exit
		done <- result{string(buf[:max(n, 0)]), err}
	}()
	select {
	case r := <-done:
		guesttest.FailNow(t, guestapi.Failure{Check: "a blocking read with no event waiting", Expected: "it waits",
			Got: fmt.Sprintf("it returned %q, %v", r.line, r.err), Hint: "a reader starts at the events after its open: r->next = head"})
	case <-time.After(200 * time.Millisecond):
	}
	pid, _, _ := exited(t, child(t, "exit", "0"))
	select {
	case r := <-done:
		require.NoError(t, r.err)
		if !strings.Contains(r.line, fmt.Sprintf(" tgid=%d ", pid)) {
			guesttest.Fail(t, guestapi.Failure{Check: "the line a blocked read returned", Expected: fmt.Sprintf("the event of process %d", pid), Got: strconv.Quote(r.line)})
		}
	case <-time.After(eventWait):
		guesttest.Fail(t, guestapi.Failure{Check: "a blocked read after a process exits", Expected: "it returns the event", Got: "still blocked after " + eventWait.String(),
			Hint: "the probe wakes the readers after adding the event: wake_up_interruptible(&wait)"})
	}
}

// poll says when an event waits, and only then.
func TestPollSaysReadable(t *testing.T) {
	guesttest.Mark(t)
	s := openStream(t)
	s.drain()
	n, _, err := pollIn(s.fd, 100*time.Millisecond)
	require.NoError(t, err)
	guesttest.Same(t, "poll with no event waiting: ready descriptors", 0, n, "poll returns EPOLLIN only when an event (or part of a line) waits")
	pid, _, _ := exited(t, child(t, "exit", "0"))
	n, revents, err := pollIn(s.fd, eventWait)
	require.NoError(t, err)
	guesttest.Same(t, "poll after a process exited: ready descriptors", 1, n, "poll_wait() on the queue the probe wakes, then EPOLLIN when an event waits")
	guesttest.Same(t, "poll after a process exited: revents&POLLIN", int16(unix.POLLIN), revents&unix.POLLIN, "return EPOLLIN | EPOLLRDNORM")
	s.eventOf(pid)
}

// Every open file gets every event: readers do not take turns.
func TestEveryReaderGetsEveryEvent(t *testing.T) {
	guesttest.Mark(t)
	first, second := openStream(t), openStream(t)
	if n := stats(t)["readers"]; n < 2 {
		guesttest.Fail(t, guestapi.Failure{Check: "readers in " + statsPath + " with two files open", Expected: "at least 2", Got: strconv.FormatUint(n, 10)})
	}
	pid, _, _ := exited(t, child(t, "exit", "3"))
	a, b := first.eventOf(pid), second.eventOf(pid)
	guesttest.Same(t, "the same exit read by two readers", a, b, "each open file has its own place in the ring")
}

// A line read a few bytes at a time is the line read at once.
func TestSmallReadsLoseNothing(t *testing.T) {
	guesttest.Mark(t)
	small, whole := openStream(t), openStream(t)
	pid, _, _ := exited(t, child(t, "exit", "4"))
	want := whole.eventOf(pid)
	var got bytes.Buffer
	deadline := time.Now().Add(eventWait)
	for {
		buf := make([]byte, 7)
		n, err := unix.Read(small.fd, buf)
		if errors.Is(err, unix.EAGAIN) {
			require.True(t, time.Now().Before(deadline), "no line of process %d's exit within %s", pid, eventWait)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		require.NoError(t, err)
		got.Write(buf[:n])
		if line, ok := strings.CutSuffix(got.String(), "\n"); ok {
			l := small.parse(line)
			if l.Event != nil && l.Event.TGID == pid {
				guesttest.Same(t, "an event read 7 bytes at a time", want, *l.Event, "keep the rest of a line that did not fit for the next read")
				return
			}
			got.Reset()
		}
	}
}

// A read into a bad buffer fails with EFAULT and loses nothing: the
// event is there for the next read.
func TestBadBufferLosesNothing(t *testing.T) {
	guesttest.Mark(t)
	s := openStream(t)
	pid, _, _ := exited(t, child(t, "exit", "6"))
	_, _, err := pollIn(s.fd, eventWait)
	require.NoError(t, err)
	_, _, errno := unix.Syscall(unix.SYS_READ, uintptr(s.fd), 8, 4096) // an address nothing maps
	if errno != unix.EFAULT {
		guesttest.Fail(t, guestapi.Failure{Check: "read into address 8", Expected: "EFAULT", Got: errString(errnoErr(errno)),
			Hint: "copy_to_user() returns the bytes it could not copy: return -EFAULT when none was"})
	}
	ev := s.eventOf(pid)
	guesttest.Same(t, "the event after a failed read: status", 6<<8, ev.Status, "a failed copy_to_user() must leave the line for the next read")
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}
