//go:build pidlab_guest

package conformance

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
	"github.com/pidlab/pidlab/userspace/procfs"
)

// benchRounds is how many times a benchmark measures each way, in turn: a
// drift of the machine falls on every way alike, and the medians leave
// out a round that something else upset.
const benchRounds = 9

// BenchmarkRecordVsProc is what the facts of one process cost through the
// module, a write of its PID and a read of the record (each on a fresh
// descriptor, as a shell's echo and cat would), against reads of
// /proc/<pid>/stat and /proc/<pid>/status, where the same 14 facts are.
// The two go in turn, round by round (which goes first alternates), and
// the ratio judged (the goal: at most 1.0) is the median of each round's
// own: under TCG the machine's speed drifts between rounds. An op is one
// query.
func BenchmarkRecordVsProc(b *testing.B) {
	guesttest.Mark(b)
	tg := guesttest.StartTarget(b, targetPath, nil, "sleep")
	pidText := []byte(strconv.Itoa(tg.PID) + "\n")
	stat, status := fmt.Sprintf("/proc/%d/stat", tg.PID), fmt.Sprintf("/proc/%d/status", tg.PID)
	requireQueryOf(b, pidText, tg.PID)
	b.ResetTimer()

	perRound := max(b.N/(2*benchRounds), 1)
	var byModule, byProc, ratios []float64
	for round := range benchRounds {
		module := func() float64 { return nsPerQuery(b, perRound, func() error { return query(pidText) }) }
		proc := func() float64 {
			return nsPerQuery(b, perRound, func() error { return readStatAndStatus(stat, status) })
		}
		var m, p float64
		if round%2 == 0 {
			m, p = module(), proc()
		} else {
			p, m = proc(), module()
		}
		byModule, byProc, ratios = append(byModule, m), append(byProc, p), append(ratios, m/p)
	}
	b.StopTimer()
	ratio := guesttest.Median(ratios)
	about := fmt.Sprintf("median of %d rounds of %d, in turn", benchRounds, perRound)
	guesttest.Figure(b, guestapi.Figure{Name: "/proc/pid write+read", Value: guesttest.Median(byModule), Unit: "ns", About: about})
	guesttest.Figure(b, guestapi.Figure{Name: "/proc/<pid>/stat+status read", Value: guesttest.Median(byProc), Unit: "ns", About: about})
	guesttest.Figure(b, guestapi.Figure{Name: "module/proc", Value: ratio, Unit: "×", About: "the median of each round's ratio; goal: at most 1.0"})
	b.ReportMetric(ratio, "module/proc")
}

// The task counts of BenchmarkQueryWithManyTasks, how long it lets the
// kernel settle after the count changed (RCU callbacks, the freeing of
// thousands of stacks: run here, it measured every way up to 4x slower
// right after), and how long it measures at each step. Together the steps
// last longer than go test's -benchtime (5 s in pidlab), so go test calls
// the benchmark once: starting 10,000 processes is not an op to repeat as
// b.N grows.
var (
	taskCounts = []int{10, 1000, 10000}
	settleTime = 2 * time.Second
	stepTime   = 1200 * time.Millisecond
)

// BenchmarkQueryWithManyTasks is what a query costs with 10, 1,000 and
// 10,000 more processes alive: the write looks the PID up with find_vpid,
// a lookup in the namespace's PID table, so the cost must not grow with
// the count (the goal: at most 1.1 times the cost with 10). A read of
// /proc/<pid>/stat+status, in the same rounds, is the control: under TCG
// the machine itself changes speed from one step to the next, by 2x either
// way in runs here, so the goal is on the query's cost over the control's,
// round by round, at 10,000 against at 10. The counts go up and then down
// again (10, 1,000, 10,000, 1,000, 10), and the figures of 10 and 1,000
// are the medians over both visits: a drift of the machine falls on all
// alike.
func BenchmarkQueryWithManyTasks(b *testing.B) {
	guesttest.Mark(b)
	tg := guesttest.StartTarget(b, targetPath, nil, "sleep")
	pidText := []byte(strconv.Itoa(tg.PID) + "\n")
	requireQueryOf(b, pidText, tg.PID)
	raiseThreadsMax(b, taskCounts[len(taskCounts)-1]+1000)
	stat, status := fmt.Sprintf("/proc/%d/stat", tg.PID), fmt.Sprintf("/proc/%d/status", tg.PID)
	b.ResetTimer()

	byModule, byProc, ratios := map[int][]float64{}, map[int][]float64{}, map[int][]float64{}
	measure := func(count int) {
		time.Sleep(settleTime)
		m, p := alternate(b, stepTime, func() error { return query(pidText) }, func() error { return readStatAndStatus(stat, status) })
		byModule[count] = append(byModule[count], m...)
		byProc[count] = append(byProc[count], p...)
		for i := range m {
			ratios[count] = append(ratios[count], m[i]/p[i])
		}
	}
	var helpers []*guesttest.Target
	started := 0
	for _, count := range taskCounts {
		helpers = append(helpers, guesttest.StartTarget(b, targetPath, nil, "tasks", strconv.Itoa(count-started)))
		started = count
		measure(count)
	}
	for i := len(helpers) - 1; i > 0; i-- {
		helpers[i].Terminate(b)
		measure(taskCounts[i-1])
	}
	b.StopTimer()
	helpers[0].Terminate(b)

	alive, err := tasksAlive()
	require.NoError(b, err)
	for _, count := range taskCounts {
		about := fmt.Sprintf("median of %d rounds over its visits, in turn with the control; %d processes alive besides", len(byModule[count]), alive)
		guesttest.Figure(b, guestapi.Figure{Name: fmt.Sprintf("query, %d more processes", count), Value: guesttest.Median(byModule[count]), Unit: "ns", About: about})
		guesttest.Figure(b, guestapi.Figure{Name: fmt.Sprintf("stat+status read, %d more processes", count), Value: guesttest.Median(byProc[count]), Unit: "ns", About: about})
		guesttest.Figure(b, guestapi.Figure{Name: fmt.Sprintf("query/control, %d more processes", count), Value: guesttest.Median(ratios[count]), Unit: "×",
			About: "the median of each round's query over the same round's control"})
	}
	few, many := taskCounts[0], taskCounts[len(taskCounts)-1]
	raw := guesttest.Median(byModule[many]) / guesttest.Median(byModule[few])
	guesttest.Figure(b, guestapi.Figure{Name: fmt.Sprintf("query, %d/%d processes", many, few), Value: raw, Unit: "×",
		About: "raw: the machine's own change between the steps included (see the control)"})
	growth := guesttest.Median(ratios[many]) / guesttest.Median(ratios[few])
	guesttest.Figure(b, guestapi.Figure{Name: fmt.Sprintf("query/control, %d/%d processes", many, few), Value: growth, Unit: "×",
		About: "what the count does to a query beyond what it does to the kernel's own way; goal: at most 1.1"})
	b.ReportMetric(growth, "many/few")
}

// query is one /proc/pid query: the PID written, the record read.
func query(pidText []byte) error {
	if _, err := writeRaw(pidText); err != nil {
		return err
	}
	_, err := readRaw()
	return err
}

// requireQueryOf fails the benchmark unless a query gives pid's record:
// a benchmark of a module that fails is no figure.
func requireQueryOf(b *testing.B, pidText []byte, pid int) {
	b.Helper()
	_, err := writeRaw(pidText)
	require.NoError(b, err, "write %q to /proc/pid", pidText)
	raw, err := readRaw()
	require.NoError(b, err, "read /proc/pid")
	rec, err := procfs.ParseRecord(raw)
	require.NoError(b, err, "the record of pid %d:\n%s", pid, raw)
	require.Equal(b, pid, rec.PID, "the record's pid")
}

// nsPerQuery runs do n times and returns its mean time in ns; the first
// error fails the benchmark.
func nsPerQuery(b *testing.B, n int, do func() error) float64 {
	start := time.Now()
	for range n {
		require.NoError(b, do(), "a query during the benchmark")
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

// alternate measures one and other in benchRounds rounds each, in turn,
// that together last about d, and returns each round's ns per call.
func alternate(b *testing.B, d time.Duration, one, other func() error) (ones, others []float64) {
	probe := nsPerQuery(b, 20, one) + nsPerQuery(b, 20, other)
	perRound := max(int(float64(d.Nanoseconds())/benchRounds/probe), 1)
	for range benchRounds {
		ones = append(ones, nsPerQuery(b, perRound, one))
		others = append(others, nsPerQuery(b, perRound, other))
	}
	return ones, others
}

// readStatAndStatus reads the kernel's own files of the same facts.
func readStatAndStatus(stat, status string) error {
	if _, err := readFile(stat); err != nil {
		return err
	}
	_, err := readFile(status)
	return err
}

// readFile reads path to end of file on a fresh descriptor, as a tool
// reading /proc would.
func readFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	return readAll(fd, 4096)
}

const threadsMax = "/proc/sys/kernel/threads-max"

// raiseThreadsMax lets at least n tasks exist, for the benchmark's
// duration: the kernel sizes threads-max to an eighth of memory in
// kernel stacks, 8,192 in a 1 GB guest.
func raiseThreadsMax(b *testing.B, n int) {
	b.Helper()
	old, err := os.ReadFile(threadsMax)
	require.NoError(b, err)
	current, err := strconv.Atoi(strings.TrimSpace(string(old)))
	require.NoError(b, err, "%s: %q", threadsMax, old)
	if current >= n {
		return
	}
	require.NoError(b, os.WriteFile(threadsMax, []byte(strconv.Itoa(n)), 0))
	b.Cleanup(func() { _ = os.WriteFile(threadsMax, old, 0) })
}

// tasksAlive counts the processes in /proc: the guest's own, with no
// helper of the benchmark left.
func tasksAlive() (int, error) {
	entries, err := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n, err
}
