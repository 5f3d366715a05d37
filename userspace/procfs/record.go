package procfs

import (
	"fmt"
	"strconv"
	"strings"
)

// Record is what the module prints when /proc/pid is read: one
// "key: value\n" line per field, in the order of RecordKeys.
type Record struct {
	PID       int
	Comm      string
	State     string
	PPID      int
	UID       uint32 // real UID, the first column of status "Uid:"
	GID       uint32 // real GID, the first column of status "Gid:"
	Priority  int
	Nice      int
	UTime     uint64
	STime     uint64
	StartTime uint64
	VSize     uint64
	RSS       uint64
	Threads   int
}

// RecordKeys are the keys of a record, in the order the module prints them.
var RecordKeys = []string{
	"pid", "comm", "state", "ppid", "uid", "gid", "priority", "nice",
	"utime", "stime", "start_time", "vsize", "rss", "threads",
}

// ParseRecord parses a module record strictly: exactly the RecordKeys, in
// order, each line "key: value" with one space after the colon, numbers
// as the kernel's %d/%u print them, and a newline after every line. The
// comm is taken verbatim and may be empty or contain spaces or colons.
func ParseRecord(b []byte) (Record, error) {
	text := string(b)
	if !strings.HasSuffix(text, "\n") {
		return Record{}, fmt.Errorf("%w: record: does not end in a newline: %q", ErrMalformed, text)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != len(RecordKeys) {
		return Record{}, fmt.Errorf("%w: record: %d lines, want %d: %q", ErrMalformed, len(lines), len(RecordKeys), text)
	}
	v := make([]string, len(lines))
	for i, line := range lines {
		prefix := RecordKeys[i] + ": "
		if !strings.HasPrefix(line, prefix) {
			return Record{}, fmt.Errorf("%w: record: line %d is %q, want it to start with %q", ErrMalformed, i+1, line, prefix)
		}
		v[i] = strings.TrimPrefix(line, prefix)
	}

	p := fieldParser{what: "record"}
	r := Record{
		PID:       p.int(v[0], "pid"),
		Comm:      v[1],
		State:     p.state(v[2], "state"),
		PPID:      p.int(v[3], "ppid"),
		UID:       p.uint32(v[4], "uid"),
		GID:       p.uint32(v[5], "gid"),
		Priority:  p.int(v[6], "priority"),
		Nice:      p.int(v[7], "nice"),
		UTime:     p.uint(v[8], "utime"),
		STime:     p.uint(v[9], "stime"),
		StartTime: p.uint(v[10], "start_time"),
		VSize:     p.uint(v[11], "vsize"),
		RSS:       p.uint(v[12], "rss"),
		Threads:   p.int(v[13], "threads"),
	}
	if p.err != nil {
		return Record{}, p.err
	}
	return r, nil
}

// String formats r exactly as the module prints it.
func (r Record) String() string {
	values := []string{
		strconv.Itoa(r.PID), r.Comm, r.State, strconv.Itoa(r.PPID),
		strconv.FormatUint(uint64(r.UID), 10), strconv.FormatUint(uint64(r.GID), 10),
		strconv.Itoa(r.Priority), strconv.Itoa(r.Nice),
		strconv.FormatUint(r.UTime, 10), strconv.FormatUint(r.STime, 10),
		strconv.FormatUint(r.StartTime, 10), strconv.FormatUint(r.VSize, 10),
		strconv.FormatUint(r.RSS, 10), strconv.Itoa(r.Threads),
	}
	var b strings.Builder
	for i, k := range RecordKeys {
		fmt.Fprintf(&b, "%s: %s\n", k, values[i])
	}
	return b.String()
}
