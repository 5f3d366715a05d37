package guest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseLine(t *testing.T) {
	l, err := ParseLine("pid=812 tgid=810 ppid=1 uid=1000 status=139 utime=31 stime=2 start_time=4521 exit_ns=45300123456 comm=exitmon child\\012x")
	require.NoError(t, err)
	assert.Equal(t, Event{PID: 812, TGID: 810, PPID: 1, UID: 1000, Status: 139, UTime: 31, STime: 2, StartTime: 4521,
		ExitNS: 45300123456, Comm: "exitmon child\nx"}, *l.Event, "comm runs to the end, its escapes undone")

	l, err = ParseLine("dropped=24")
	require.NoError(t, err)
	assert.Equal(t, Line{Dropped: 24}, l)

	for _, bad := range []string{
		"", "dropped=0", "dropped=x",
		"pid=1 tgid=1 ppid=0 uid=0 status=0 utime=0 stime=0 start_time=0 comm=init", // exit_ns missing
		"tgid=1 pid=1 ppid=0 uid=0 status=0 utime=0 stime=0 start_time=0 exit_ns=0 comm=init",
		"pid=1 tgid=1 ppid=0 uid=0 status=0 utime=-1 stime=0 start_time=0 exit_ns=0 comm=init",
		"pid=1 tgid=1 ppid=0 uid=0 status=0 utime=0 stime=0 start_time=0 exit_ns=0 name=init",
		"pid=1 tgid=1 ppid=0 uid=0 status=0 utime=0 stime=0 start_time=0 exit_ns=0 comm=a\\9",
	} {
		_, err := ParseLine(bad)
		assert.Error(t, err, "%q", bad)
	}
}
