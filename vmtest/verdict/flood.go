package verdict

import "time"

// A console is flooded when it prints more than FloodLines lines within
// FloodWindow: about 1000 lines a second, sustained for ten seconds. A
// boot prints a few hundred lines, the debug kernel's lockdep self-tests
// and a kernel report a few hundred more; a module printing in a loop
// prints thousands a second (a read printing 100,000 lines wrote 56 MB
// in 200 s under TCG), and its run would never end.
const (
	FloodLines  = 10000
	FloodWindow = 10 * time.Second
)

// floodSeconds are the one-second buckets of a FloodWindow.
const floodSeconds = int64(FloodWindow / time.Second)

// FloodMeter counts console lines over the last FloodWindow, by second.
type FloodMeter struct {
	secs  [floodSeconds]int64 // the Unix second each bucket counts
	lines [floodSeconds]int
}

// Add counts a line printed at now. Once the last FloodWindow holds
// FloodLines lines, it returns the rate of their busiest second in lines
// per second; else 0.
func (m *FloodMeter) Add(now time.Time) int {
	sec := now.Unix()
	i := sec % floodSeconds
	if m.secs[i] != sec {
		m.secs[i], m.lines[i] = sec, 0
	}
	m.lines[i]++
	total, peak := 0, 0
	for j, s := range m.secs {
		if sec-s < floodSeconds {
			total += m.lines[j]
			peak = max(peak, m.lines[j])
		}
	}
	if total < FloodLines {
		return 0
	}
	return peak
}
