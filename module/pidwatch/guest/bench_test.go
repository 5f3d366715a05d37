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

// latencyRounds is how many stops the benchmark times per set size.
const latencyRounds = 100

// BenchmarkWatch is what watching costs, with 1, 100 and max_watches
// processes watched: the sampler's CPU time per second of wall time (from
// stats' sample_ns; the goal: under 1% of one CPU at the bound, so that
// watching a whole set is cheap enough to leave on), and the notification
// latency from a SIGSTOP to its event's sample (median and 99th percentile of
// latencyRounds; the goal: the median within one period plus a tick, as
// the design promises one gap between samples). An op is one stop's round.
func BenchmarkWatch(b *testing.B) {
	guesttest.Mark(b)
	bound := benchMaxWatches(b)
	for _, n := range []int{1, 100, bound} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchWatch(b, n) })
	}
}

func benchMaxWatches(b *testing.B) int {
	b.Helper()
	st := stats(b)
	return int(st["max_watches"])
}

// benchWatch measures with n sleepers watched: b.N stops (at least
// latencyRounds), each timed from the kill(2) to its event's sample, and
// continued after; the sampler's time over the whole run.
func benchWatch(b *testing.B, n int) {
	tg := sleepers(b, n)
	watched := pids(b, tg)
	if n == 1 {
		watched = []int{tg.PID} // the leader alone; its child sleeps unwatched
	}
	for _, pid := range watched {
		requireAdd(b, pid)
	}
	s := openStream(b)
	rounds := max(b.N, latencyRounds)
	latencies := make([]float64, 0, rounds)
	b.ResetTimer()
	start, before := time.Now(), stats(b)
	for i := range rounds {
		pid := watched[i%len(watched)]
		t0 := bootNS(b)
		require.NoError(b, unix.Kill(pid, unix.SIGSTOP))
		evs := s.waitFor(pid, "T", "the sampler records a stop")
		latencies = append(latencies, float64(evs[len(evs)-1].NS-t0)/1e6)
		require.NoError(b, unix.Kill(pid, unix.SIGCONT))
		s.waitFor(pid, "S", "the sampler records the continued process asleep again")
	}
	elapsed, after := time.Since(start), stats(b)
	b.StopTimer()

	cpu := float64(after["sample_ns"]-before["sample_ns"]) / float64(elapsed.Nanoseconds()) * 100
	samples := after["samples"] - before["samples"]
	perSample := float64(after["sample_ns"]-before["sample_ns"]) / float64(max(samples, 1)) / 1e3
	slices.Sort(latencies)
	period := float64(after["period_us"]) / 1e3
	about := fmt.Sprintf("%d watched, %d stops, period %.0f ms", len(watched), rounds, period)
	guesttest.Figure(b, guestapi.Figure{Name: fmt.Sprintf("sampler CPU, %d watched", len(watched)), Value: cpu, Unit: "% of a CPU",
		About: fmt.Sprintf("%d samples of %.1f µs in %v; goal at the bound: under 1%%", samples, perSample, elapsed.Round(time.Millisecond))})
	guesttest.Figure(b, guestapi.Figure{Name: fmt.Sprintf("stop→event latency median, %d watched", len(watched)), Value: guesttest.Median(latencies), Unit: "ms",
		About: about + "; goal: within one period plus a tick"})
	guesttest.Figure(b, guestapi.Figure{Name: fmt.Sprintf("stop→event latency 99th percentile, %d watched", len(watched)),
		Value: latencies[(len(latencies)*99+99)/100-1], Unit: "ms", About: about})
	b.ReportMetric(cpu, "%cpu")
}
