//go:build pidlab_guest

package guest

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

// event is one line of /proc/pidwatch/events.
type event struct {
	PID      int
	Old, New string
	NS       uint64
}

func (e event) String() string {
	return fmt.Sprintf("pid=%d old=%s new=%s ns=%d", e.PID, e.Old, e.New, e.NS)
}

var eventLine = regexp.MustCompile(`^pid=([1-9][0-9]*) old=([RSDTtXZPI]) new=([RSDTtXZPI]) ns=(0|[1-9][0-9]*)$`)

// parseEvent parses an event line strictly; dropped is the count of a
// "dropped=<n>" line.
func parseEvent(line string) (ev event, dropped uint64, err error) {
	if n, ok := strings.CutPrefix(line, "dropped="); ok {
		dropped, err = strconv.ParseUint(n, 10, 64)
		return event{}, dropped, err
	}
	m := eventLine.FindStringSubmatch(line)
	if m == nil {
		return event{}, 0, fmt.Errorf("%q is not pid=<pid> old=<state> new=<state> ns=<ns>", line)
	}
	ev.PID, _ = strconv.Atoi(m[1])
	ev.Old, ev.New = m[2], m[3]
	ev.NS, err = strconv.ParseUint(m[4], 10, 64)
	return ev, 0, err
}

// stream is an open /proc/pidwatch/events, read without blocking, with
// every event read so far kept by PID.
type stream struct {
	t       testing.TB
	fd      int
	pending bytes.Buffer
	byPID   map[int][]event
	taken   map[int]int // events of a PID already returned by waitFor
	dropped uint64
}

func openStream(t testing.TB) *stream {
	t.Helper()
	fd, err := unix.Open(eventsPath, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		guesttest.FailNow(t, guestapi.Failure{Check: "open " + eventsPath, Expected: "a file descriptor", Got: guesttest.ErrnoName(err),
			Hint: "the module's init function creates /proc/pidwatch/events"})
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &stream{t: t, fd: fd, byPID: map[int][]event{}, taken: map[int]int{}}
}

// read takes in what waits, waiting up to timeout for something; false
// when nothing came.
func (s *stream) read(timeout time.Duration) bool {
	s.t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Read(s.fd, buf)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		if timeout <= 0 {
			return false
		}
		_, err = pollFor(s.fd, unix.POLLIN, timeout)
		require.NoError(s.t, err, "poll %s", eventsPath)
		return s.read(0)
	}
	require.NoError(s.t, err, "read %s", eventsPath)
	require.NotZero(s.t, n, "end of file on %s while the module is loaded", eventsPath)
	s.pending.Write(buf[:n])
	for {
		i := bytes.IndexByte(s.pending.Bytes(), '\n')
		if i < 0 {
			return true
		}
		line := strings.TrimSuffix(string(s.pending.Next(i+1)), "\n")
		ev, dropped, err := parseEvent(line)
		if err != nil {
			guesttest.FailNow(s.t, guestapi.Failure{Check: "a line of " + eventsPath, Expected: "pid=<pid> old=<state> new=<state> ns=<ns>", Got: line,
				Hint: "one line per change, the states as /proc/<pid>/stat's letters (task_state_to_char())"})
		}
		s.dropped += dropped
		if dropped == 0 {
			s.byPID[ev.PID] = append(s.byPID[ev.PID], ev)
		}
	}
}

// waitFor waits until an event of pid whose new state is want, and
// returns pid's events since the last waitFor up to that one.
func (s *stream) waitFor(pid int, want, hint string) []event {
	s.t.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		evs := s.byPID[pid][s.taken[pid]:]
		for i, ev := range evs {
			if ev.New == want {
				s.taken[pid] += i + 1
				return evs[:i+1]
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			guesttest.FailNow(s.t, guestapi.Failure{Check: fmt.Sprintf("an event of pid %d with new=%s", pid, want), Expected: "within " + eventWait.String(),
				Got: fmt.Sprintf("%d events of it: %v", len(evs), evs), Hint: hint})
		}
		s.read(left)
	}
}

// quiet reads for d and returns the events of pid that came meanwhile.
func (s *stream) quiet(pid int, d time.Duration) []event {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for s.read(max(time.Until(deadline), 0)) || time.Now().Before(deadline) {
	}
	return s.byPID[pid][s.taken[pid]:]
}

// requireChain checks that pid's events so far form a chain from the state
// it had when added: each old= is the new= before it, and the times never
// go back. A module that invents or loses an event breaks it.
func (s *stream) requireChain(pid int, start string) {
	s.t.Helper()
	prev := event{New: start}
	for _, ev := range s.byPID[pid] {
		if ev.Old != prev.New || ev.NS < prev.NS || ev.Old == ev.New {
			guesttest.FailNow(s.t, guestapi.Failure{Check: fmt.Sprintf("the events of pid %d, from its state %s at add", pid, start),
				Expected: "a chain: each old= the new= before it, each new= a change, times in order", Got: fmt.Sprint(s.byPID[pid]),
				Hint: "record old = the state last reported and new = the state sampled, only when they differ, then remember new"})
		}
		prev = ev
	}
}

// pollFor polls fd for events for up to timeout (forever when negative,
// not at all when 0), again after a signal: the Go runtime's own signals
// interrupt poll(2), which no SA_RESTART restarts, even a poll that does
// not wait (seen once in CI). It returns revents (0: timed out).
func pollFor(fd int, events int16, timeout time.Duration) (int16, error) {
	deadline := time.Now().Add(timeout)
	for {
		ms := -1
		if timeout >= 0 {
			ms = int(max(time.Until(deadline), 0).Milliseconds())
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
		_, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) && (timeout <= 0 || time.Now().Before(deadline)) {
			continue
		}
		return fds[0].Revents, err
	}
}
