package vmtest

import (
	"testing"

	"github.com/stretchr/testify/assert"
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
