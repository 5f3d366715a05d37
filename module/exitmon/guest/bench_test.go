//go:build pidlab_guest

package guest

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

// benchRounds is how many times the benchmark measures each state, in
// turn: a drift of the machine (another VM, a host's frequency) falls on
// both, and the medians leave out a round it upset.
const benchRounds = 9

// BenchmarkForkExitWait is what exitmon's probes cost a process's life:
// fork, exit and wait (no exec), with the module loaded and unloaded, in
// alternating rounds; it records the medians and their ratio (the goal:
// at most 1.10). An op is one fork+exit+wait; loading and unloading the
// module are not timed.
func BenchmarkForkExitWait(b *testing.B) {
	guesttest.Mark(b)
	m := requireModule(b)
	perRound := max(b.N/(2*benchRounds), 1)
	var loaded, unloaded []float64
	b.StopTimer()
	for range benchRounds {
		for _, load := range []bool{true, false} {
			setLoaded(b, m, load)
			b.StartTimer()
			ns := forks(b, perRound)
			b.StopTimer()
			if load {
				loaded = append(loaded, ns)
			} else {
				unloaded = append(unloaded, ns)
			}
		}
	}
	with, without := guesttest.Median(loaded), guesttest.Median(unloaded)
	about := fmt.Sprintf("median of %d rounds of %d, loaded and unloaded in turn", benchRounds, perRound)
	guesttest.Figure(b, guestapi.Figure{Name: "fork+exit+wait with exitmon loaded", Value: with / 1e3, Unit: "µs", About: about})
	guesttest.Figure(b, guestapi.Figure{Name: "fork+exit+wait without it", Value: without / 1e3, Unit: "µs", About: about})
	guesttest.Figure(b, guestapi.Figure{Name: "loaded/unloaded", Value: with / without, Unit: "×", About: "goal: at most 1.10"})
	b.ReportMetric(with/without, "loaded/unloaded")
}

// setLoaded loads or unloads the module (as the runner loaded it).
func setLoaded(b *testing.B, m kmod, load bool) {
	b.Helper()
	if m.Loaded() == load {
		return
	}
	if load {
		require.NoError(b, m.Load(""), "finit_module(%s)", m.Path)
		return
	}
	m.requireUnload(b, "between rounds")
}

// forks runs exitmon-child forks n: the ns of one fork+exit+wait.
func forks(b *testing.B, n int) float64 {
	b.Helper()
	out, err := child(b, "forks", strconv.Itoa(n)).Output()
	require.NoError(b, err, "exitmon-child forks %d", n)
	ns, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	require.NoError(b, err, "exitmon-child forks prints the ns it took: %q", out)
	return ns / float64(n)
}
