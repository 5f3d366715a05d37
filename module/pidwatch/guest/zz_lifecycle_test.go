//go:build pidlab_guest

package guest

// Module lifecycle: these tests unload and reload the module, so they live
// in the file that sorts last. Each leaves it loaded as the runner loaded
// it (no parameters) when it ends, for the runner's own unload.

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

// kmod is the module under test, as the guest runner loaded it.
type kmod struct{ guesttest.Module }

// requireModule finds the module and makes sure it is loaded as the runner
// loaded it when t ends.
func requireModule(t testing.TB) kmod {
	return kmod{guesttest.ModuleUnderTest(t).AsLoadedAfter(t)}
}

// unload unloads the module; within eventWait, or the test fails saying
// what was waiting.
func (m kmod) requireUnload(t testing.TB, when string) {
	t.Helper()
	unloaded := make(chan error, 1)
	go func() { unloaded <- m.Unload() }()
	select {
	case err := <-unloaded:
		require.NoError(t, err, "%s: delete_module(%s)", when, m.Name)
	case <-time.After(eventWait):
		guesttest.FailNow(t, guestapi.Failure{Check: when + ": rmmod", Expected: "it returns", Got: "still waiting after " + eventWait.String(),
			Hint: "the exit function must wake the waiters (a stopping flag, wake_up_interruptible_all()) before proc_remove(), which waits for calls in progress"})
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		guesttest.FailNow(t, guestapi.Failure{Check: when + ": " + dir + " after delete_module", Expected: "gone", Got: fmt.Sprint(err),
			Hint: "the exit function removes the folder and everything in it: proc_remove(dir)"})
	}
}

// Load-time parameters are checked, and a small bound holds.
func TestParameters(t *testing.T) {
	guesttest.Mark(t)
	m := requireModule(t)
	m.requireUnload(t, "before loading with parameters")
	for _, bad := range []string{"max_watches=0", "period_ms=0", "period_ms=1001", "max_watches=65537"} {
		requireErrno(t, "finit_module with "+bad, unix.EINVAL, m.Load(bad), "refuse a parameter out of range at load")
		assert.False(t, m.Loaded(), "loaded with %s", bad)
	}
	require.NoError(t, m.Load("max_watches=2 period_ms=50"))
	st := stats(t)
	guesttest.Same(t, "stats: max_watches", uint64(2), st["max_watches"], "report the bound in force")
	if st["period_us"] < 50000 || st["period_us"] > 60000 {
		t.Errorf("period_us with period_ms=50: %d, want 50000..60000 (rounded up to jiffies)", st["period_us"])
	}
	tg := sleepers(t, 3)
	children := pids(t, tg)
	requireAdd(t, children[0])
	requireAdd(t, children[1])
	requireErrno(t, "a third add with max_watches=2", unix.ENOSPC, add(children[2]), "the bound is the parameter")
}

// The sampler runs only while something is watched: no samples are taken
// with an empty set.
func TestNoSamplingWhileNothingIsWatched(t *testing.T) {
	guesttest.Mark(t)
	tg := sleeper(t)
	requireAdd(t, tg.PID)
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, remove(tg.PID))
	// A sample already queued runs once more: wait until the count holds.
	before := stats(t)["samples"]
	for deadline := time.Now().Add(eventWait); ; {
		time.Sleep(100 * time.Millisecond)
		now := stats(t)["samples"]
		if now == before || time.Now().After(deadline) {
			break
		}
		before = now
	}
	require.NotZero(t, before, "samples while a process was watched")
	time.Sleep(quiet)
	guesttest.Same(t, "samples taken in "+quiet.String()+" with nothing watched", before, stats(t)["samples"],
		"queue the delayed work on the first add and only again while the set is not empty")
}

// rmmod while waiters sleep on the module: poll, select and epoll on an
// entry, a blocked read and a poll on the events file. rmmod returns, each
// waiter returns, and an epoll file that outlives the module (closed only
// after a reload) harms nothing.
func TestUnloadWithWaiters(t *testing.T) {
	guesttest.Mark(t)
	m := requireModule(t)
	tg := sleeper(t)
	require.NoError(t, add(tg.PID))
	entry := entryPath(tg.PID)

	waiters := []waiter{
		{"poll on an entry", entry, pollWait},
		{"select on an entry", entry, selectWait},
		{"epoll on an entry", entry, epollWait},
		{"read of the events file", eventsPath, readWait},
		{"poll on the events file", eventsPath, pollWait},
	}
	var wg sync.WaitGroup
	results := make(chan string, len(waiters))
	for _, w := range waiters {
		fd, err := unix.Open(w.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		require.NoError(t, err, "open %s", w.path)
		defer unix.Close(fd)
		wg.Add(1)
		go func() {
			defer wg.Done()
			what, err := w.wait(fd, -1)
			results <- fmt.Sprintf("%s: %s %v", w.name, what, err)
		}()
	}
	// An epoll set that keeps the entry's file registered past the unload.
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	require.NoError(t, err)
	defer unix.Close(ep)
	epFD, err := unix.Open(entry, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(epFD)
	require.NoError(t, unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, epFD, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLPRI}))
	time.Sleep(300 * time.Millisecond) // all asleep in the module

	m.requireUnload(t, "with waiters asleep")
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		close(results)
		for r := range results {
			t.Log(r)
		}
	case <-time.After(eventWait):
		guesttest.Fail(t, guestapi.Failure{Check: "the waiters after rmmod", Expected: "each returns", Got: "some still asleep after " + eventWait.String(),
			Hint: "set the stopping flag and wake them all; read returns 0, poll EPOLLHUP"})
	}
	require.NoError(t, m.Load(""), "reload")
	n, err := unix.EpollWait(ep, make([]unix.EpollEvent, 1), 0)
	t.Logf("epoll_wait on the old entry after the reload: %d, %v", n, err)
}

// Twenty loads and unloads, each with a watch, a poller and an epoll set
// left registered on the entry: no warning, leak or hang (the debug
// kernel's KASAN and kmemleak watch).
func TestLoadUnloadCycles(t *testing.T) {
	guesttest.Mark(t)
	m := requireModule(t)
	tg := sleeper(t)
	const cycles = 20
	for i := range cycles {
		when := fmt.Sprintf("cycle %d", i+1)
		if m.Loaded() {
			m.requireUnload(t, when)
		}
		require.NoError(t, m.Load(""), "%s: finit_module(%s)", when, m.Path)
		require.NoError(t, add(tg.PID), "%s: add", when)
		fd, err := unix.Open(entryPath(tg.PID), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		require.NoError(t, err)
		require.NoError(t, unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN}))
		polled := make(chan struct{})
		go func() { pollFor(fd, unix.POLLIN, -1); close(polled) }()
		m.requireUnload(t, when)
		select {
		case <-polled:
		case <-time.After(eventWait):
			t.Fatalf("%s: a poll on an entry still asleep %v after rmmod", when, eventWait)
		}
		unix.Close(ep)
		unix.Close(fd)
	}
}
