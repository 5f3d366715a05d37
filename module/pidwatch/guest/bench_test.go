//go:build pidlab_guest

package guest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

// The benchmark's two phases, which together last go test's -benchtime
// (5 s in pidlab), so that go test calls it once: b.N is not used, a stop
// and its events being too slow an op to repeat millions of times.
const (
	quietPhase    = 2 * time.Second // nothing changes: what sampling alone costs
	latencyPhase  = 3 * time.Second // stops and continues, one after another
	latencyRounds = 50              // at least this many stops, however long
)

// BenchmarkWatch is what watching costs, with 1, 100 and max_watches
// processes watched: the sampler's CPU time per second of wall time while
// nothing changes (stats' sample_ns; the goal: under 1% of one CPU at the
// bound, cheap enough to leave on), and the notification latency from a
// SIGSTOP to its event's sample (median and 99th percentile; the goal: the
// median within one period plus a tick, the one gap between samples the
// design promises, the signal's own delivery included).
func BenchmarkWatch(b *testing.B) {
	guesttest.Mark(b)
	bound := int(stats(b)["max_watches"])
	for _, n := range []int{1, 100, bound} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchWatch(b, n) })
	}
}

func benchWatch(b *testing.B, n int) {
	watched := []int{sleepers(b, 0).PID}
	if n > 1 {
		watched = pids(b, sleepers(b, n))
	}
	for _, pid := range watched {
		requireAdd(b, pid)
	}
	s := openStream(b)
	b.ResetTimer()

	start, before := time.Now(), stats(b)
	time.Sleep(quietPhase)
	elapsed, after := time.Since(start), stats(b)
	spent := float64(after["sample_ns"] - before["sample_ns"])
	samples := after["samples"] - before["samples"]
	cpu := spent / float64(elapsed.Nanoseconds()) * 100
	guesttest.Figure(b, guestapi.Figure{Name: fmt.Sprintf("sampler CPU, %d watched", n), Value: cpu, Unit: "% of a CPU",
		About: fmt.Sprintf("%d samples of %.1f µs in %v with nothing changing (TCG: hardware is an order of magnitude faster); goal at the bound: under 1%%",
			samples, spent/float64(max(samples, 1))/1e3, elapsed.Round(time.Millisecond))})
	b.ReportMetric(cpu, "%cpu")
	perSample := spent / float64(max(samples, 1))
	userspace := statPass(b, watched)
	guesttest.Figure(b, guestapi.Figure{Name: fmt.Sprintf("one sample vs reading each /proc/<pid>/stat, %d watched", n), Value: perSample / userspace, Unit: "×",
		About: fmt.Sprintf("%.1f µs vs %.1f µs (median of %d passes), what a userspace watcher would pay each period; goal: at most 0.1",
			perSample/1e3, userspace/1e3, statPasses)})

	var latencies []float64
	for deadline := time.Now().Add(latencyPhase); time.Now().Before(deadline) || len(latencies) < latencyRounds; {
		pid := watched[len(latencies)%len(watched)]
		t0 := bootNS(b)
		require.NoError(b, unix.Kill(pid, unix.SIGSTOP))
		evs := s.waitFor(pid, "T", "the sampler records a stop")
		latencies = append(latencies, float64(evs[len(evs)-1].NS-t0)/1e6)
		require.NoError(b, unix.Kill(pid, unix.SIGCONT))
		s.waitFor(pid, "S", "the sampler records the continued process asleep again")
	}
	b.StopTimer()
	slices.Sort(latencies)
	about := fmt.Sprintf("%d stops, period %d µs", len(latencies), after["period_us"])
	guesttest.Figure(b, guestapi.Figure{Name: fmt.Sprintf("stop→event latency median, %d watched", n), Value: guesttest.Median(latencies), Unit: "ms",
		About: about + "; goal: within one period plus a tick"})
	guesttest.Figure(b, guestapi.Figure{Name: fmt.Sprintf("stop→event latency 99th percentile, %d watched", n),
		Value: latencies[(len(latencies)*99+99)/100-1], Unit: "ms", About: about})
}

// statPasses is how many times statPass reads every watched stat file.
const statPasses = 15

// statPass is the median ns of one pass reading /proc/<pid>/stat of each
// of pids: what a userspace watcher pays per period for what one sample
// gives (each task's state letter).
func statPass(b *testing.B, pids []int) float64 {
	b.Helper()
	buf := make([]byte, 1024)
	paths := make([]string, len(pids))
	for i, pid := range pids {
		paths[i] = fmt.Sprintf("/proc/%d/stat", pid)
	}
	var passes []float64
	for range statPasses {
		start := time.Now()
		for _, path := range paths {
			fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			require.NoError(b, err)
			_, err = unix.Read(fd, buf)
			unix.Close(fd)
			require.NoError(b, err)
		}
		passes = append(passes, float64(time.Since(start).Nanoseconds()))
	}
	return guesttest.Median(passes)
}
