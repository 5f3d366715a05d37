//go:build pidlab_guest

package guest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
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

const (
	eventsPath = "/proc/exitmon/events"
	statsPath  = "/proc/exitmon/stats"
	childComm  = "exitmon-child"
	userHZ     = 100 // USER_HZ: clock ticks a second on x86
)

// eventWait is how long an exit may take to show as an event: the probe
// runs in the exiting process, before its parent is woken, so the event
// is there before wait4 returns; the rest is the reader's scheduling (and
// the debug kernel's slowness).
const eventWait = 20 * time.Second

func TestMain(m *testing.M) {
	guesttest.Main(m, "exitmon", "load a kprobe module and start processes that exit", func() error {
		_, err := childPath()
		return err
	})
}

// childPath is the path of the helper (EXITMON_CHILD).
func childPath() (string, error) {
	return guesttest.HelperPath("EXITMON_CHILD", "module/exitmon/child")
}

// child is a command running exitmon-child with args.
func child(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	path, err := childPath()
	require.NoError(t, err)
	return exec.Command(path, args...)
}

// exited runs cmd to its end and returns its PID and what wait4 said.
func exited(t *testing.T, cmd *exec.Cmd) (int, syscall.WaitStatus, *syscall.Rusage) {
	t.Helper()
	require.NoError(t, cmd.Start(), "starting %s", cmd)
	return reaped(t, cmd)
}

// reaped waits for a started cmd and returns its PID and what wait4 said.
func reaped(t *testing.T, cmd *exec.Cmd) (int, syscall.WaitStatus, *syscall.Rusage) {
	t.Helper()
	err := cmd.Wait()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		require.NoError(t, err, "waiting for %s", cmd)
	}
	return cmd.Process.Pid, cmd.ProcessState.Sys().(syscall.WaitStatus), cmd.ProcessState.SysUsage().(*syscall.Rusage)
}

// stream is an open /proc/exitmon/events, read without blocking.
type stream struct {
	t       *testing.T
	fd      int
	pending bytes.Buffer
	dropped uint64 // the counts of the dropped= lines read so far
}

// openStream opens the events file; it is closed when t ends.
func openStream(t *testing.T) *stream {
	t.Helper()
	fd, err := unix.Open(eventsPath, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		guesttest.FailNow(t, guestapi.Failure{Check: "open " + eventsPath + " as root", Expected: "a file descriptor", Got: guesttest.ErrnoName(err),
			Hint: "the module's init function creates /proc/exitmon/events with proc_create(); its open lets CAP_SYS_ADMIN in"})
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &stream{t: t, fd: fd}
}

// next returns the next whole line, waiting up to timeout for it; false
// when none came.
func (s *stream) next(timeout time.Duration) (string, bool) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if i := bytes.IndexByte(s.pending.Bytes(), '\n'); i >= 0 {
			line := string(s.pending.Next(i + 1))
			return strings.TrimSuffix(line, "\n"), true
		}
		if s.fill() {
			continue
		}
		left := time.Until(deadline)
		if left <= 0 {
			return "", false
		}
		if _, _, err := pollIn(s.fd, left); err != nil && !errors.Is(err, unix.EINTR) {
			require.NoError(s.t, err, "poll %s", eventsPath)
		}
	}
}

// fill reads what waits into pending; false when nothing did.
func (s *stream) fill() bool {
	s.t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Read(s.fd, buf)
	switch {
	case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
		return false
	case err != nil:
		require.NoError(s.t, err, "read %s", eventsPath)
	case n == 0:
		require.Fail(s.t, "end of file on "+eventsPath+" while the module is loaded")
	}
	s.pending.Write(buf[:n])
	return true
}

// pollIn polls fd for POLLIN for up to timeout (forever when negative, not at all when 0),
// again after a signal: the Go runtime's own signals interrupt poll(2),
// which no SA_RESTART restarts. It returns poll's count and revents.
func pollIn(fd int, timeout time.Duration) (int, int16, error) {
	deadline := time.Now().Add(timeout)
	for {
		ms := -1
		if timeout >= 0 {
			ms = int(max(time.Until(deadline), 0).Milliseconds())
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) && (timeout <= 0 || time.Now().Before(deadline)) {
			continue
		}
		return n, fds[0].Revents, err
	}
}

// parse parses a line the module wrote, failing the test on a bad one.
func (s *stream) parse(line string) Line {
	s.t.Helper()
	l, err := ParseLine(line)
	if err != nil {
		guesttest.FailNow(s.t, guestapi.Failure{Check: "a line of " + eventsPath, Expected: "pid=… tgid=… ppid=… uid=… status=… utime=… stime=… start_time=… exit_ns=… comm=…, or dropped=<n>",
			Got: strconv.Quote(line), Hint: err.Error()})
	}
	return l
}

// eventOf reads until the event of process pid, which must come within
// eventWait; the events of other processes are passed over, and no event
// may be lost on the way.
func (s *stream) eventOf(pid int) Event {
	s.t.Helper()
	for {
		line, ok := s.next(eventWait)
		if !ok {
			guesttest.FailNow(s.t, guestapi.Failure{Check: fmt.Sprintf("the event of process %d's exit", pid), Expected: fmt.Sprintf("a line with tgid=%d within %s", pid, eventWait),
				Got: "no such line", Hint: "the probe records an event when group_dead is true (the last thread of the process exits), then wakes the readers"})
		}
		l := s.parse(line)
		if l.Dropped > 0 {
			s.dropped += l.Dropped
			guesttest.FailNow(s.t, guestapi.Failure{Check: "events of a quiet system", Expected: "no dropped= line: far fewer exits than ring_size",
				Got: line, Hint: "a reader loses events only when it falls ring_size events behind"})
		}
		if l.Event.TGID == pid {
			return *l.Event
		}
	}
}

// drain reads what is waiting: every event, and the count of those lost.
func (s *stream) drain() ([]Event, uint64) {
	s.t.Helper()
	var events []Event
	var dropped uint64
	for {
		line, ok := s.next(100 * time.Millisecond)
		if !ok {
			return events, dropped
		}
		l := s.parse(line)
		if l.Dropped > 0 {
			dropped += l.Dropped
			continue
		}
		events = append(events, *l.Event)
	}
}

// stats reads /proc/exitmon/stats.
func stats(t *testing.T) map[string]uint64 {
	t.Helper()
	b, err := os.ReadFile(statsPath)
	if err != nil {
		guesttest.FailNow(t, guestapi.Failure{Check: "read " + statsPath, Expected: "the counters", Got: guesttest.ErrnoName(err),
			Hint: "the module's init function creates /proc/exitmon/stats with proc_create_single()"})
	}
	m, bad := parseStats(b)
	if bad != "" {
		guesttest.FailNow(t, guestapi.Failure{Check: "a line of " + statsPath, Expected: "<name> <count>", Got: strconv.Quote(bad)})
	}
	for _, key := range []string{"thread_exits", "process_exits", "dropped", "readers", "ring_size"} {
		if _, ok := m[key]; !ok {
			guesttest.FailNow(t, guestapi.Failure{Check: statsPath, Expected: "a line " + key + " <count>", Got: strconv.Quote(string(b))})
		}
	}
	return m
}

// parseStats reads the lines "<name> <count>" of /proc/exitmon/stats; bad
// is the first line that is not one.
func parseStats(b []byte) (m map[string]uint64, bad string) {
	m = map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, v, ok := strings.Cut(sc.Text(), " ")
		n, err := strconv.ParseUint(v, 10, 64)
		if !ok || err != nil {
			return m, sc.Text()
		}
		m[key] = n
	}
	return m, ""
}

// ticks is a rusage time in USER_HZ ticks.
func ticks(tv syscall.Timeval) uint64 {
	return uint64(tv.Sec)*userHZ + uint64(tv.Usec)/(1000000/userHZ)
}
