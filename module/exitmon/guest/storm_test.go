//go:build pidlab_guest

package guest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

// stormExits is how many processes the storm starts: more than the
// default ring holds, so that the reader that reads nothing loses events.
// exitmon-child starts them from stormWorkers processes at once.
const (
	stormExits   = 10000
	stormWorkers = 2
)

// A storm of exits while one reader reads as fast as it can, one slowly
// and one not at all: process_exits counts every exit of the storm; for
// each reader, the events read plus the dropped= counts are the process
// exits since its open, no event comes twice, none is invented and each is
// one process's (a storm child's name and status come from its PID); the
// reader that kept up read every exit of the storm.
func TestStormEveryExitIsReadOrCounted(t *testing.T) {
	guesttest.Mark(t)
	start := boottime(t)
	before := stats(t)
	fast, slow, idle := openStream(t), openStream(t), openStream(t)

	// The readers' goroutines only read: the lines are parsed, and the
	// test failed, on the test's own goroutine.
	var wg sync.WaitGroup
	var fastRead, slowRead bytes.Buffer
	stop := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		readUntil(stop, fast.fd, &fastRead, 64<<10, 0)
	}()
	go func() {
		defer wg.Done()
		readUntil(stop, slow.fd, &slowRead, 256, 10*time.Millisecond) // slow: it falls behind
	}()

	children, workers := storm(t, stormExits)
	close(stop)
	wg.Wait()
	fast.pending.Write(fastRead.Bytes())
	slow.pending.Write(slowRead.Bytes())
	exits := stats(t)["process_exits"] - before["process_exits"]
	end := boottime(t)

	stormed := len(children) + len(workers) + 1
	if exits < uint64(stormed) {
		guesttest.Fail(t, guestapi.Failure{Check: "process_exits counted during the storm", Expected: fmt.Sprintf("at least %d (the storm's processes)", stormed),
			Got: strconv.FormatUint(exits, 10), Hint: headHint})
	}
	for _, r := range []struct {
		name string
		s    *stream
	}{{"fast reader", fast}, {"slow reader", slow}, {"idle reader", idle}} {
		events, dropped := r.s.drain()
		guesttest.Same(t, r.name+": events read + dropped vs process_exits during the storm", exits, uint64(len(events))+dropped,
			"a reader more than ring_size behind skips to the oldest event kept and says dropped=<the events it skipped>")
		checkStormEvents(t, r.name, events, children, start, end)
		if r.s == fast {
			checkEveryChildRead(t, events, dropped, children)
		}
		if r.s == idle {
			if ringSize := stats(t)["ring_size"]; dropped+ringSize < exits {
				guesttest.Fail(t, guestapi.Failure{Check: "idle reader: events kept for it", Expected: fmt.Sprintf("at most ring_size (%d)", ringSize),
					Got: strconv.Itoa(len(events))})
			}
		}
		t.Logf("%s: %d events read, %d dropped, %d process exits", r.name, len(events), dropped, exits)
	}
}

// headHint is the cause of a process exit counted by no event: two exits
// on two CPUs took one slot of the ring.
const headHint = "two exits on two CPUs must never take the same slot: read the ring's head, store the event and advance the head in one step under the ring's lock " +
	"(a head read, then written back after filling the slot, loses one of two exits that overlap)"

// readUntil reads fd into buf, size bytes a read, pausing between reads,
// until stop is closed.
func readUntil(stop <-chan struct{}, fd int, buf *bytes.Buffer, size int, pause time.Duration) {
	b := make([]byte, size)
	for {
		select {
		case <-stop:
			return
		default:
		}
		n, err := unix.Read(fd, b)
		switch {
		case err == nil:
			buf.Write(b[:n])
		case errors.Is(err, unix.EAGAIN):
			_, _, _ = pollIn(fd, 20*time.Millisecond)
		}
		time.Sleep(pause)
	}
}

// storm runs exitmon-child storm n and reaps it: the PIDs of its children
// and of its workers.
func storm(t *testing.T, n int) (children map[int]bool, workers []int) {
	t.Helper()
	cmd := child(t, "storm", strconv.Itoa(n))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	children = map[int]bool{}
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		worker, isWorker := strings.CutPrefix(lines.Text(), "worker ")
		pid, err := strconv.Atoi(worker)
		require.NoError(t, err, "exitmon-child storm prints PIDs: %q", lines.Text())
		if isWorker {
			workers = append(workers, pid)
		} else {
			children[pid] = true
		}
	}
	reaped(t, cmd)
	require.Len(t, children, n, "the storm's children")
	require.Len(t, workers, stormWorkers, "the storm's workers")
	return children, workers
}

// checkStormEvents fails t at the first event of a reader's that came
// twice, is not from the storm's time, or is not one process's: a storm
// child is named s<PID> and exits with its PID's low byte.
func checkStormEvents(t *testing.T, reader string, events []Event, children map[int]bool, start, end uint64) {
	t.Helper()
	seen := map[int]bool{}
	for _, ev := range events {
		if seen[ev.TGID] {
			guesttest.Fail(t, guestapi.Failure{Check: reader + ": events of one process", Expected: "one", Got: fmt.Sprintf("two for process %d", ev.TGID),
				Hint: "each reader's place in the ring moves past every event it reads, under the ring's lock"})
			return
		}
		seen[ev.TGID] = true
		// An exit the storm did not make is a kernel worker's (idle
		// ones retire after 5 minutes) or another process's; an
		// invented event (a slot never written, or stale) is not from
		// the storm's time.
		if ev.ExitNS < start || ev.ExitNS > end {
			guesttest.Fail(t, guestapi.Failure{Check: reader + ": exit_ns of an event read during the storm",
				Expected: fmt.Sprintf("between %d and %d (CLOCK_BOOTTIME around the storm)", start, end),
				Got:      fmt.Sprintf("%d (process %d, %q)", ev.ExitNS, ev.TGID, ev.Comm),
				Hint:     "a reader must read only events written since its open: from its place up to the ring's head, under the ring's lock"})
			return
		}
		if !children[ev.TGID] {
			continue
		}
		if want := fmt.Sprintf("s%d", ev.TGID); ev.Comm != want || ev.Status != (ev.TGID&0xff)<<8 {
			guesttest.Fail(t, guestapi.Failure{Check: reader + ": an event of a storm child, whose name and status come from its PID",
				Expected: fmt.Sprintf("tgid=%d status=%d comm=%s", ev.TGID, (ev.TGID&0xff)<<8, want),
				Got:      fmt.Sprintf("tgid=%d status=%d comm=%s", ev.TGID, ev.Status, ev.Comm),
				Hint: "a torn event: a reader must copy an event out of the ring under the ring's lock, " +
					"for a writer that wraps around rewrites the very slot a reader ring_size behind reads"})
			return
		}
	}
}

// checkEveryChildRead fails t if a reader that lost nothing did not read
// the exit of every storm child.
func checkEveryChildRead(t *testing.T, events []Event, dropped uint64, children map[int]bool) {
	t.Helper()
	if dropped > 0 {
		t.Logf("fast reader: fell behind (%d dropped); not checked for every child's event", dropped)
		return
	}
	read := map[int]bool{}
	for _, ev := range events {
		read[ev.TGID] = true
	}
	missing := 0
	for pid := range children {
		if !read[pid] {
			missing++
		}
	}
	if missing > 0 {
		guesttest.Fail(t, guestapi.Failure{Check: "fast reader (it lost nothing): the storm's children it read an event of",
			Expected: fmt.Sprintf("all %d", len(children)), Got: fmt.Sprintf("%d missing", missing), Hint: headHint})
	}
}

// boottime is CLOCK_BOOTTIME in ns, the clock of an event's exit_ns.
func boottime(t *testing.T) uint64 {
	t.Helper()
	var ts unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts))
	return uint64(ts.Nano())
}
