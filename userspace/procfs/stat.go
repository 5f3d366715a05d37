// Package procfs parses the three texts pidlab compares: the kernel's
// /proc/[pid]/stat and /proc/[pid]/status, and the 14-line record that the
// reference module prints from /proc/pid.
//
// Stat and Record give the shared fields identical Go types, so a test can
// compare them with assert.Equal field by field.
package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// ErrMalformed is wrapped by every parse error in this package.
var ErrMalformed = errors.New("malformed proc text")

// Stat is the subset of /proc/[pid]/stat that the module reports. The
// comments give the field numbers of proc(5).
type Stat struct {
	PID       int    // 1
	Comm      string // 2, without the parentheses
	State     string // 3, one letter
	PPID      int    // 4
	UTime     uint64 // 14, USER_HZ ticks
	STime     uint64 // 15, USER_HZ ticks
	Priority  int    // 18
	Nice      int    // 19
	Threads   int    // 20
	StartTime uint64 // 22, USER_HZ ticks after boot
	VSize     uint64 // 23, bytes
	RSS       uint64 // 24, pages
}

// lastStatField is the highest field number Stat needs.
const lastStatField = 24

// ReadStat reads and parses /proc/<pid>/stat. For a non-leader thread ID
// that is the thread's own entry with whole-process CPU times.
func ReadStat(pid int) (Stat, error) {
	return ReadStatFile(fmt.Sprintf("/proc/%d/stat", pid))
}

// ReadStatFile reads and parses a stat file at any path, such as
// /proc/<pid>/task/<tid>/stat, which holds per-thread CPU times.
func ReadStatFile(path string) (Stat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Stat{}, err
	}
	s, err := ParseStat(b)
	if err != nil {
		return Stat{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ParseStat parses one /proc/[pid]/stat line. The comm is taken between
// the first '(' and the last ')', because a comm may itself contain
// spaces and parentheses while no later field can contain ')'.
func ParseStat(b []byte) (Stat, error) {
	b = bytes.TrimSuffix(b, []byte("\n"))
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 1 || closing < open || b[open-1] != ' ' {
		return Stat{}, fmt.Errorf("%w: stat: no \"pid (comm)\" prefix in %q", ErrMalformed, b)
	}
	if closing+1 >= len(b) || b[closing+1] != ' ' {
		return Stat{}, fmt.Errorf("%w: stat: no fields after comm in %q", ErrMalformed, b)
	}
	// rest[i] is field i+3: field 3 (state) follows the comm.
	rest := bytes.Fields(b[closing+2:])
	if len(rest) < lastStatField-2 {
		return Stat{}, fmt.Errorf("%w: stat: %d fields, want at least %d", ErrMalformed, len(rest)+2, lastStatField)
	}
	p := fieldParser{what: "stat"}
	field := func(n int) string { return string(rest[n-3]) }
	s := Stat{
		PID:       p.int(string(b[:open-1]), "field 1 (pid)"),
		Comm:      string(b[open+1 : closing]),
		State:     p.state(field(3), "field 3 (state)"),
		PPID:      p.int(field(4), "field 4 (ppid)"),
		UTime:     p.uint(field(14), "field 14 (utime)"),
		STime:     p.uint(field(15), "field 15 (stime)"),
		Priority:  p.int(field(18), "field 18 (priority)"),
		Nice:      p.int(field(19), "field 19 (nice)"),
		Threads:   p.int(field(20), "field 20 (num_threads)"),
		StartTime: p.uint(field(22), "field 22 (starttime)"),
		VSize:     p.uint(field(23), "field 23 (vsize)"),
		RSS:       p.uint(field(24), "field 24 (rss)"),
	}
	if p.err != nil {
		return Stat{}, p.err
	}
	return s, nil
}

// fieldParser keeps the first error, so a parser can convert a whole
// struct literal and check once.
type fieldParser struct {
	what string
	err  error
}

func (p *fieldParser) fail(name, value, want string) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s: %s is %q, want %s", ErrMalformed, p.what, name, value, want)
	}
}

// int accepts what the kernel's %d prints: an optional '-', no '+', no
// leading zeros, no spaces.
func (p *fieldParser) int(s, name string) int {
	digits := s
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if !isCanonicalDecimal(digits) {
		p.fail(name, s, "a decimal integer")
		return 0
	}
	v, err := strconv.ParseInt(s, 10, 0)
	if err != nil {
		p.fail(name, s, "an integer that fits in int")
		return 0
	}
	return int(v)
}

// uint accepts what the kernel's %u/%lu/%llu prints.
func (p *fieldParser) uint(s, name string) uint64 {
	if !isCanonicalDecimal(s) {
		p.fail(name, s, "an unsigned decimal integer")
		return 0
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		p.fail(name, s, "an integer that fits in 64 bits")
		return 0
	}
	return v
}

func (p *fieldParser) uint32(s, name string) uint32 {
	v := p.uint(s, name)
	if v > 1<<32-1 {
		p.fail(name, s, "an integer that fits in 32 bits")
		return 0
	}
	return uint32(v)
}

// taskStates are the letters task_state_to_char() can return.
const taskStates = "RSDTtXZPI"

func (p *fieldParser) state(s, name string) string {
	if len(s) != 1 || !bytes.ContainsAny([]byte(taskStates), s) {
		p.fail(name, s, "one of the letters "+taskStates)
		return ""
	}
	return s
}

// isCanonicalDecimal reports whether s is "0" or digits without a leading
// zero: the only forms the kernel's decimal formats produce.
func isCanonicalDecimal(s string) bool {
	if s == "" || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
