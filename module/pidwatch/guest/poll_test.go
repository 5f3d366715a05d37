//go:build pidlab_guest

package guest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

// waiter is one way of sleeping until an entry (or the events file) is
// readable; it returns what woke it, or "" for its timeout.
type waiter struct {
	name string
	path string
	wait func(fd int, timeout time.Duration) (string, error)
}

func pollWait(fd int, timeout time.Duration) (string, error) {
	revents, err := pollFor(fd, unix.POLLIN|unix.POLLPRI, timeout)
	if revents == 0 {
		return "", err
	}
	return fmt.Sprintf("poll revents %#x", revents), err
}

func selectWait(fd int, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		var rfds unix.FdSet
		rfds.Set(fd)
		var tv *unix.Timeval // forever
		if timeout >= 0 {
			t := unix.NsecToTimeval(max(time.Until(deadline), 0).Nanoseconds())
			tv = &t
		}
		n, err := unix.Select(fd+1, &rfds, nil, nil, tv)
		if errors.Is(err, unix.EINTR) && (timeout <= 0 || time.Now().Before(deadline)) {
			continue
		}
		if n == 0 {
			return "", err
		}
		return "select: readable", err
	}
}

func epollWait(fd int, timeout time.Duration) (string, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return "", err
	}
	defer unix.Close(ep)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLPRI}); err != nil {
		return "", err
	}
	deadline := time.Now().Add(timeout)
	for {
		evs := make([]unix.EpollEvent, 1)
		ms := -1
		if timeout >= 0 {
			ms = int(max(time.Until(deadline), 0).Milliseconds())
		}
		n, err := unix.EpollWait(ep, evs, ms)
		if errors.Is(err, unix.EINTR) && (timeout <= 0 || time.Now().Before(deadline)) {
			continue
		}
		if n == 0 {
			return "", err
		}
		return fmt.Sprintf("epoll events %#x", evs[0].Events), err
	}
}

// readWait blocks in read(2) on the events file (for as long as it takes:
// no timeout).
func readWait(fd int, _ time.Duration) (string, error) {
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return fmt.Sprintf("read %q", buf[:max(n, 0)]), err
	}
}

// Several waiters, on one entry and on another: poll, select and epoll on
// the entry of a process that is stopped, a blocked read of the events
// file, and poll on the entry of a process left alone. None wakes while
// nothing changes; the stop wakes the first four and not the last; after
// a read of the record, the entry is quiet again.
func TestWaitersWakeOnTheirProcesssChangeOnly(t *testing.T) {
	guesttest.Mark(t)
	changed, alone := sleeper(t), sleeper(t)
	requireAdd(t, changed.PID)
	requireAdd(t, alone.PID)

	waiters := []waiter{
		{"poll", entryPath(changed.PID), pollWait},
		{"select", entryPath(changed.PID), selectWait},
		{"epoll", entryPath(changed.PID), epollWait},
		{"read of the events file", eventsPath, readWait},
		{"poll on the other process's entry", entryPath(alone.PID), pollWait},
	}
	const aloneWaiter = 4
	woke := make([]chan string, len(waiters))
	var wg sync.WaitGroup
	for i, w := range waiters {
		fd, err := unix.Open(w.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		require.NoError(t, err, "open %s", w.path)
		t.Cleanup(func() { unix.Close(fd) })
		woke[i] = make(chan string, 1)
		timeout := eventWait + quiet
		if i == aloneWaiter {
			timeout = 2*quiet + time.Second
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			what, err := w.wait(fd, timeout)
			if err != nil {
				what = fmt.Sprintf("%s (%v)", what, err)
			}
			woke[i] <- what
		}()
	}

	time.Sleep(quiet)
	for i, w := range waiters {
		select {
		case what := <-woke[i]:
			guesttest.FailNow(t, guestapi.Failure{Check: w.name + " while nothing changed", Expected: "still asleep", Got: "woke: " + what,
				Hint: "poll reports EPOLLIN only after a change this file has not read; the events file only when an event waits"})
		default:
		}
	}

	require.NoError(t, unix.Kill(changed.PID, unix.SIGSTOP))
	for i, w := range waiters[:aloneWaiter] {
		select {
		case what := <-woke[i]:
			if what == "" {
				guesttest.Fail(t, guestapi.Failure{Check: w.name + " when the process stopped", Expected: "woken", Got: "timed out",
					Hint: "wake_up_interruptible_all() the waiters' queue after recording a change"})
			}
		case <-time.After(eventWait + 2*quiet):
			// FailNow: the rest would wait for it; rmmod wakes it later.
			guesttest.FailNow(t, guestapi.Failure{Check: w.name + " when the process stopped", Expected: "woken", Got: "still asleep after " + (eventWait + 2*quiet).String(),
				Hint: "wake_up_interruptible_all() the waiters' queue after recording a change"})
		}
	}
	if what := <-woke[aloneWaiter]; what != "" {
		guesttest.Fail(t, guestapi.Failure{Check: waiters[aloneWaiter].name, Expected: "no wake-up (another process changed)", Got: what,
			Hint: "each entry's poll compares its own task's count of changes with what its file has read"})
	}
	wg.Wait()

	fd, err := unix.Open(entryPath(changed.PID), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	revents, err := pollFor(fd, unix.POLLIN|unix.POLLPRI, 0)
	require.NoError(t, err)
	guesttest.Same(t, "poll of a file opened after the change", int16(0), revents, "a new open has seen what happened before it")
}

// A poller reads the record after the wake: its state is the new one, and
// poll is quiet until the next change. (The events file says when the
// sampler has seen T: it may see the R of the signal's delivery first.)
func TestReadingTheRecordQuietsPoll(t *testing.T) {
	guesttest.Mark(t)
	tg := sleeper(t)
	s := openStream(t)
	requireAdd(t, tg.PID)
	fd, err := unix.Open(entryPath(tg.PID), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fd)

	bound := latencyBound(t)
	start := time.Now()
	require.NoError(t, unix.Kill(tg.PID, unix.SIGSTOP))
	revents, err := pollFor(fd, unix.POLLIN|unix.POLLPRI, eventWait)
	require.NoError(t, err)
	guesttest.Same(t, "poll after SIGSTOP", int16(unix.POLLIN|unix.POLLPRI), revents&(unix.POLLIN|unix.POLLPRI),
		"report EPOLLIN | EPOLLPRI (what sysfs and /proc/mounts use for \"changed\") when the state changed")
	if took := time.Since(start); took > bound {
		guesttest.Fail(t, guestapi.Failure{Check: "poll's wake-up after SIGSTOP", Expected: "within " + bound.String(), Got: took.String(),
			Hint: "the sampler runs every period while something is watched, and wakes the waiters when it records a change"})
	}
	s.waitFor(tg.PID, "T", "the sampler records the stop")
	buf := make([]byte, 4096)
	n, err := unix.Pread(fd, buf, 0)
	require.NoError(t, err)
	guesttest.Same(t, "the record's state after the wake", "state: T", findLine(string(buf[:n]), "state: "), "the entry reads the task's state now")
	revents, err = pollFor(fd, unix.POLLIN|unix.POLLPRI, 0)
	require.NoError(t, err)
	guesttest.Same(t, "poll right after reading the record", int16(0), revents, "reading the record from its start marks the change as seen")

	require.NoError(t, unix.Kill(tg.PID, unix.SIGCONT))
	revents, err = pollFor(fd, unix.POLLIN|unix.POLLPRI, eventWait)
	require.NoError(t, err)
	guesttest.Same(t, "poll after SIGCONT", int16(unix.POLLIN|unix.POLLPRI), revents&(unix.POLLIN|unix.POLLPRI), "a second change wakes poll again")
}

func findLine(text, prefix string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}
