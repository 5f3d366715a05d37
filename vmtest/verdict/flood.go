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

// FloodMeter counts console lines in windows of FloodWindow.
type FloodMeter struct {
	start time.Time // the window's
	lines int
}

// Add counts a line printed at now. It returns the window's rate in lines
// per second once it holds FloodLines lines, else 0.
func (m *FloodMeter) Add(now time.Time) int {
	if m.start.IsZero() || now.Sub(m.start) >= FloodWindow {
		m.start, m.lines = now, 0
	}
	m.lines++
	if m.lines < FloodLines {
		return 0
	}
	// A burst within a tenth of a second is rated as over that tenth.
	elapsed := max(now.Sub(m.start), FloodWindow/100)
	return int(float64(m.lines) / elapsed.Seconds())
}
