package verdict

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestFloodMeterNamesASustainedRate(t *testing.T) {
	var m FloodMeter
	start := time.Unix(1000, 0)
	rate := 0
	for i := range FloodLines { // 5000 lines a second
		rate = m.Add(start.Add(time.Duration(i) * time.Second / 5000))
		if rate > 0 {
			break
		}
	}
	assert.Equal(t, 5000, rate, "the rate once the window holds FloodLines lines")
}

func TestFloodMeterRatesTheFloodNotTheBoot(t *testing.T) {
	// A boot's 500 lines, then the module prints 4000 lines a second: the
	// rate is the flood's, not the average since boot.
	var m FloodMeter
	start := time.Unix(1000, 0)
	for i := range 500 {
		m.Add(start.Add(time.Duration(i) * time.Millisecond))
	}
	rate := 0
	for i := 0; rate == 0; i++ {
		rate = m.Add(start.Add(4*time.Second + time.Duration(i)*time.Second/4000))
	}
	assert.Equal(t, 4000, rate)
}

func TestFloodMeterLetsABusyConsoleBe(t *testing.T) {
	var m FloodMeter
	start := time.Unix(1000, 0)
	for i := range 5 * FloodLines { // 900 lines a second, for a minute
		if rate := m.Add(start.Add(time.Duration(i) * time.Second / 900)); rate != 0 {
			t.Fatalf("line %d: %d lines/s is no flood", i, rate)
		}
	}
	for i := range 2000 { // a boot's burst
		assert.Zero(t, m.Add(start.Add(time.Hour+time.Duration(i)*time.Microsecond)), "a burst of 2000 lines")
	}
}
