package vmtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/pidlab/pidlab/vmtest/kernel"
)

func TestCrashedTestsTrustTheConsoleMark(t *testing.T) {
	// The events lost the start of kernel-thread: they still think an
	// earlier subtest runs.
	running := []string{"TestRecordFields", "TestRecordFields/running", "TestRecordFields/running/stime"}
	assert.Equal(t, []string{"TestRecordFields", "TestRecordFields/kernel-thread"},
		markedAndInner("TestRecordFields/kernel-thread", running), "the stale subtests are dropped, the parent kept")
	assert.Equal(t, []string{"TestMissingPID"}, markedAndInner("TestMissingPID", running),
		"a top-level test whose start event was lost")
	assert.Equal(t, []string{"TestRecordFields", "TestRecordFields/kernel-thread", "TestRecordFields/kernel-thread/vsize"},
		markedAndInner("TestRecordFields/kernel-thread", []string{"TestRecordFields", "TestRecordFields/kernel-thread", "TestRecordFields/kernel-thread/vsize"}),
		"an inner subtest the events know of is kept")
}

func TestLimitsScaleWithTheKernelsSlowdown(t *testing.T) {
	c := Config{Timeout: 15 * time.Minute, TestTimeout: 45 * time.Second, BootTimeout: 90 * time.Second}
	stock := c.limitsFor(&kernel.Kernel{Name: "cloud"})
	assert.Equal(t, c, stock, "the limits are set for a stock kernel")

	debug := c.limitsFor(&kernel.Kernel{Name: kernel.DebugName, Slowdown: kernel.DebugSlowdown})
	assert.Equal(t, 45*time.Second*kernel.DebugSlowdown, debug.TestTimeout, "a test may take as many times longer")
	assert.Equal(t, 90*time.Second*kernel.DebugSlowdown, debug.BootTimeout)
	assert.Equal(t, 15*time.Minute*kernel.DebugSlowdown, debug.Timeout)
}
