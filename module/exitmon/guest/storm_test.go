//go:build pidlab_guest

package guest

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
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

// A storm of exits while one reader reads slowly and another not at all:
// for each, the events read plus the dropped= counts are the process exits
// since its open, no event comes twice and none is invented.
func TestStormEveryExitIsReadOrCounted(t *testing.T) {
	guesttest.Mark(t)
	start := boottime(t)
	before := stats(t)
	slow, idle := openStream(t), openStream(t)

	// The slow reader's goroutine only reads: the lines are parsed, and
	// the test failed, on the test's own goroutine.
	var wg sync.WaitGroup
	var slowRead bytes.Buffer
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 512)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n, err := unix.Read(slow.fd, buf); err == nil {
				slowRead.Write(buf[:n])
			}
			time.Sleep(5 * time.Millisecond) // slow: it falls behind
		}
	}()

	cmd := child(t, "storm", strconv.Itoa(stormExits))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	stormed := map[int]bool{}
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		pid, err := strconv.Atoi(lines.Text())
		require.NoError(t, err, "exitmon-child storm prints PIDs: %q", lines.Text())
		stormed[pid] = true
	}
	parent, _, _ := reaped(t, cmd)
	stormed[parent] = true
	require.Len(t, stormed, stormExits+stormWorkers+1, "the storm's children, its workers and its parent")
	close(stop)
	wg.Wait()
	slow.pending.Write(slowRead.Bytes())
	slowEvents, slowDropped := slow.drain()
	idleEvents, idleDropped := idle.drain()
	exits := stats(t)["process_exits"] - before["process_exits"]
	end := boottime(t)

	for _, r := range []struct {
		name    string
		events  []Event
		dropped uint64
	}{{"slow reader", slowEvents, slowDropped}, {"idle reader", idleEvents, idleDropped}} {
		same(t, r.name+": events read + dropped vs process_exits during the storm", exits, uint64(len(r.events))+r.dropped,
			"a reader more than ring_size behind skips to the oldest event kept and says dropped=<the events it skipped>")
		seen := map[int]bool{}
		for _, ev := range r.events {
			if seen[ev.TGID] {
				guesttest.Fail(t, guestapi.Failure{Check: r.name + ": events of one process", Expected: "one", Got: fmt.Sprintf("two for process %d", ev.TGID),
					Hint: "each reader's place in the ring moves past every event it reads, under the ring's lock"})
				break
			}
			seen[ev.TGID] = true
		}
		// An exit the storm did not make is a kernel worker's (idle ones
		// retire after 5 minutes) or another process's; an invented
		// event (a slot never written, or stale) is not from the storm's
		// time.
		others := 0
		for _, ev := range r.events {
			if !stormed[ev.TGID] {
				others++
			}
			if ev.ExitNS < start || ev.ExitNS > end {
				guesttest.Fail(t, guestapi.Failure{Check: r.name + ": exit_ns of an event read during the storm",
					Expected: fmt.Sprintf("between %d and %d (CLOCK_BOOTTIME around the storm)", start, end),
					Got:      fmt.Sprintf("%d (process %d, %q)", ev.ExitNS, ev.TGID, ev.Comm),
					Hint:     "a reader must read only events written since its open: from its place up to the ring's head, under the ring's lock"})
				break
			}
		}
		t.Logf("%s: %d events read, %d dropped, %d process exits (%d not the storm's)", r.name, len(r.events), r.dropped, exits, others)
	}
	ringSize := stats(t)["ring_size"]
	if idleDropped+ringSize < exits {
		guesttest.Fail(t, guestapi.Failure{Check: "idle reader: events kept for it", Expected: fmt.Sprintf("at most ring_size (%d)", ringSize),
			Got: strconv.Itoa(len(idleEvents))})
	}
}

// boottime is CLOCK_BOOTTIME in ns, the clock of an event's exit_ns.
func boottime(t *testing.T) uint64 {
	t.Helper()
	var ts unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts))
	return uint64(ts.Nano())
}
