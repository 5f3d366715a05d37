// Package guest is exitmon's guest suite: every process exit the module
// reports, proven against what the exiting process's parent saw (wait4's
// status and rusage) and what /proc said of it while it lived.
package guest

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pidlab/pidlab/userspace/procfs"
)

// Event is one line of /proc/exitmon/events: a process exit.
type Event struct {
	PID       int    // the group's last thread
	TGID      int    // the process
	PPID      int    // its real parent at exit
	UID       uint32 // real uid
	Status    int    // as wait(2) reports it
	UTime     uint64 // the whole group's, USER_HZ ticks
	STime     uint64
	StartTime uint64 // USER_HZ ticks after boot, as /proc/<pid>/stat field 22
	ExitNS    uint64 // CLOCK_BOOTTIME
	Comm      string
}

// Line is a line of /proc/exitmon/events: an event, or the count of
// events the reader lost (Dropped) in its place.
type Line struct {
	Event   *Event
	Dropped uint64
}

// eventKeys are an event line's keys, in order; comm is last and runs to
// the end of the line.
var eventKeys = []string{"pid", "tgid", "ppid", "uid", "status", "utime", "stime", "start_time", "exit_ns"}

// ParseLine reads one line (without its newline) as the module documents
// it; anything else is an error that quotes it.
func ParseLine(s string) (Line, error) {
	if v, ok := strings.CutPrefix(s, "dropped="); ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return Line{}, fmt.Errorf("line %q: dropped= wants a count above 0", s)
		}
		return Line{Dropped: n}, nil
	}
	rest := s
	nums := make([]uint64, len(eventKeys))
	for i, key := range eventKeys {
		field, after, ok := strings.Cut(rest, " ")
		if !ok {
			return Line{}, fmt.Errorf("line %q: ends before %s=", s, key)
		}
		v, ok := strings.CutPrefix(field, key+"=")
		if !ok {
			return Line{}, fmt.Errorf("line %q: field %d is %q, want %s=<number>", s, i+1, field, key)
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil && key == "status" {
			var signed int64
			signed, err = strconv.ParseInt(v, 10, 32)
			n = uint64(signed)
		}
		if err != nil {
			return Line{}, fmt.Errorf("line %q: %s=%q is not a decimal number", s, key, v)
		}
		nums[i] = n
		rest = after
	}
	comm, ok := strings.CutPrefix(rest, "comm=")
	if !ok {
		return Line{}, fmt.Errorf("line %q: wants comm=<name> last", s)
	}
	comm, err := procfs.UnescapeOctal(comm)
	if err != nil {
		return Line{}, fmt.Errorf("line %q: comm: %v", s, err)
	}
	return Line{Event: &Event{
		PID: int(nums[0]), TGID: int(nums[1]), PPID: int(nums[2]), UID: uint32(nums[3]), Status: int(int32(nums[4])),
		UTime: nums[5], STime: nums[6], StartTime: nums[7], ExitNS: nums[8], Comm: comm,
	}}, nil
}
