//go:build pidlab_guest

package guest

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
	"github.com/pidlab/pidlab/userspace/procfs"
)

const (
	dir        = "/proc/pidwatch"
	addPath    = dir + "/add"
	removePath = dir + "/remove"
	eventsPath = dir + "/events"
	statsPath  = dir + "/stats"
)

// eventWait is how long a test waits for a change to show: one sampling
// period plus the workqueue's delay, which under TCG on a loaded machine,
// and on the debug kernel, can reach seconds. The benchmark measures the
// real latency; the tests check that the event comes, and comes after the
// change.
const eventWait = 20 * time.Second

// quiet is how long a test watches for an event that must not come.
const quiet = time.Second

func TestMain(m *testing.M) {
	guesttest.Main(m, "pidwatch", "load a module that watches processes, and start processes", func() error {
		_, err := targetPath()
		return err
	})
}

// targetPath is the path of the helper (PIDWATCH_TARGET).
func targetPath() (string, error) {
	return guesttest.HelperPath("PIDWATCH_TARGET", "module/pidwatch/child")
}

// sleepers starts pidwatch-target with n children asleep in pause(), whose
// PIDs are its Info; it reaps each child that dies. Killed and reaped (its
// children with it) when t ends.
func sleepers(t testing.TB, n int) *guesttest.Target {
	t.Helper()
	path, err := targetPath()
	require.NoError(t, err)
	tg := guesttest.StartTarget(t, path, nil, "sleepers", strconv.Itoa(n))
	require.Len(t, tg.Info, n, "pidwatch-target sleepers %d: its ready line names each child", n)
	for _, child := range tg.Info {
		pid, err := strconv.Atoi(child)
		require.NoError(t, err)
		guesttest.WaitState(t, pid, "S")
	}
	guesttest.WaitState(t, tg.PID, "S")
	return tg
}

// sleeper is one process asleep, a child of the test (which decides when
// it is reaped).
func sleeper(t *testing.T) *guesttest.Target {
	t.Helper()
	return sleepers(t, 0)
}

// pids are a sleepers target's children.
func pids(t testing.TB, tg *guesttest.Target) []int {
	t.Helper()
	out := make([]int, len(tg.Info))
	for i := range tg.Info {
		out[i] = tg.InfoInt(t, i)
	}
	return out
}

// control writes text to a control file (add or remove) in one write(2).
func control(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write([]byte(text))
	return err
}

func add(pid int) error    { return control(addPath, strconv.Itoa(pid)) }
func remove(pid int) error { return control(removePath, strconv.Itoa(pid)) }

// requireAdd watches pid until t ends.
func requireAdd(t testing.TB, pid int) {
	t.Helper()
	if err := add(pid); err != nil {
		guesttest.FailNow(t, guestapi.Failure{Check: fmt.Sprintf("echo %d > %s", pid, addPath), Expected: "success", Got: guesttest.ErrnoName(err),
			Hint: "add resolves the PID with find_vpid() and pid_task(), holds get_pid() and creates /proc/pidwatch/<pid>"})
	}
	t.Cleanup(func() {
		if err := remove(pid); err != nil && !errors.Is(err, unix.ENOENT) {
			t.Errorf("removing %d after %s: %v", pid, t.Name(), err)
		}
	})
}

func entryPath(pid int) string { return dir + "/" + strconv.Itoa(pid) }

// requireEntryRecord reads pid's entry and parses its record.
func requireEntryRecord(t *testing.T, pid int) procfs.Record {
	t.Helper()
	b, err := os.ReadFile(entryPath(pid))
	if err != nil {
		guesttest.FailNow(t, guestapi.Failure{Check: "read " + entryPath(pid), Expected: "the record", Got: guesttest.ErrnoName(err),
			Hint: "each watched task has an entry in /proc/pidwatch (proc_create_data() with the watch as its data) that reads its record"})
	}
	rec, err := procfs.ParseRecord(b)
	if err != nil {
		guesttest.FailNow(t, guestapi.Failure{Check: "the record of " + entryPath(pid), Expected: "the 14 lines of /proc/pid", Got: string(b),
			Hint: "print the record exactly as /proc/pid does: \"key: value\" lines, in the same order"})
	}
	return rec
}

// entries are the PIDs that have an entry in /proc/pidwatch.
func entries(t *testing.T) []int {
	t.Helper()
	names, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []int
	for _, n := range names {
		if pid, err := strconv.Atoi(n.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// hasEntry says whether pid has an entry now.
func hasEntry(pid int) bool {
	_, err := os.Stat(entryPath(pid))
	return err == nil
}

// waitNoEntry waits until pid's entry is gone: the module retires a
// reaped task right after recording its last event.
func waitNoEntry(t *testing.T, pid int, why string) {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for hasEntry(pid) {
		if time.Now().After(deadline) {
			guesttest.FailNow(t, guestapi.Failure{Check: entryPath(pid) + " " + why, Expected: "gone", Got: "still there after " + eventWait.String(),
				Hint: "a task that is reaped (pid_task() NULL) or removed leaves the set: proc_remove() its entry"})
		}
		time.Sleep(guesttest.PollInterval)
	}
}

// stats reads /proc/pidwatch/stats.
func stats(t testing.TB) map[string]uint64 {
	t.Helper()
	b, err := os.ReadFile(statsPath)
	require.NoError(t, err)
	m := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, ok := strings.Cut(line, " ")
		require.True(t, ok, "stats line %q", line)
		n, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "stats line %q", line)
		m[k] = n
	}
	return m
}

// bootNS is CLOCK_BOOTTIME in ns, the events' clock.
func bootNS(t testing.TB) uint64 {
	var ts unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts))
	return uint64(ts.Nano())
}

// statState is the state letter of /proc/<pid>/stat, or "" once gone.
func statState(t *testing.T, pid int) string {
	t.Helper()
	s, err := procfs.ReadStat(pid)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return ""
	}
	require.NoError(t, err)
	return s.State
}
