package profile

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pidlab/pidlab/userspace/procfs"
)

// Snapshot is what the kernel's own /proc says about a process at one time.
type Snapshot struct {
	Stat   procfs.Stat
	Status procfs.Status
}

type factKind int

const (
	numeric factKind = iota
	text
	state
)

// factSpec is a fact a field can report: where the kernel shows it, and the
// units a module may print it in, with how many of each make one of the
// first ("native") unit.
type factSpec struct {
	kind   factKind
	source string // for messages: where the expected value comes from
	units  []string
	per    map[string]float64 // unit -> units per native unit
	value  func(Snapshot) (float64, string)
}

// USER_HZ and the page size of every Linux x86_64 kernel.
const (
	userHZ   = 100
	pageSize = 4096
)

var tickUnits = map[string]float64{"ticks": 1, "ns": 1e9 / userHZ, "us": 1e6 / userHZ, "ms": 1e3 / userHZ, "s": 1.0 / userHZ}

func num[T int | uint32 | uint64](v T) (float64, string) { return float64(v), "" }

// facts are the facts pidlab can check, by name.
var facts = map[string]factSpec{
	"pid":        {numeric, "stat field 1", []string{""}, nil, func(s Snapshot) (float64, string) { return num(s.Stat.PID) }},
	"comm":       {text, "stat field 2", []string{""}, nil, func(s Snapshot) (float64, string) { return 0, s.Stat.Comm }},
	"state":      {state, "stat field 3", []string{"letter", "word"}, nil, func(s Snapshot) (float64, string) { return 0, s.Stat.State }},
	"ppid":       {numeric, "stat field 4", []string{""}, nil, func(s Snapshot) (float64, string) { return num(s.Stat.PPID) }},
	"uid":        {numeric, "status Uid (real)", []string{""}, nil, func(s Snapshot) (float64, string) { return num(s.Status.Uid[0]) }},
	"gid":        {numeric, "status Gid (real)", []string{""}, nil, func(s Snapshot) (float64, string) { return num(s.Status.Gid[0]) }},
	"priority":   {numeric, "stat field 18", []string{""}, nil, func(s Snapshot) (float64, string) { return num(s.Stat.Priority) }},
	"nice":       {numeric, "stat field 19", []string{""}, nil, func(s Snapshot) (float64, string) { return num(s.Stat.Nice) }},
	"utime":      {numeric, "stat field 14", []string{"ticks", "ns", "us", "ms", "s"}, tickUnits, func(s Snapshot) (float64, string) { return num(s.Stat.UTime) }},
	"stime":      {numeric, "stat field 15", []string{"ticks", "ns", "us", "ms", "s"}, tickUnits, func(s Snapshot) (float64, string) { return num(s.Stat.STime) }},
	"start_time": {numeric, "stat field 22", []string{"ticks", "ns", "us", "ms", "s"}, tickUnits, func(s Snapshot) (float64, string) { return num(s.Stat.StartTime) }},
	"vsize":      {numeric, "stat field 23", []string{"bytes", "kB", "pages"}, map[string]float64{"bytes": 1, "kB": 1.0 / 1024, "pages": 1.0 / pageSize}, func(s Snapshot) (float64, string) { return num(s.Stat.VSize) }},
	"rss":        {numeric, "stat field 24", []string{"pages", "kB", "bytes"}, map[string]float64{"pages": 1, "kB": pageSize / 1024, "bytes": pageSize}, func(s Snapshot) (float64, string) { return num(s.Stat.RSS) }},
	"threads":    {numeric, "stat field 20", []string{""}, nil, func(s Snapshot) (float64, string) { return num(s.Stat.Threads) }},
}

// FactNames lists the facts a field can name.
func FactNames() []string {
	names := make([]string, 0, len(facts))
	for n := range facts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Mismatch says how a field's value differs from the kernel's.
type Mismatch struct {
	Want string // what the kernel's /proc says, in the field's unit
	Got  string
}

// Check compares a field's printed value with the facts of the process
// taken just before and just after the module was read: a value that moved
// in between (CPU time, a state) may be either, or anything between.
func (f Field) Check(got string, before, after Snapshot) *Mismatch {
	spec := facts[f.Fact]
	got = strings.TrimSpace(got)
	switch spec.kind {
	case text:
		return f.checkText(spec, got, before, after)
	case state:
		return f.checkState(got, before, after)
	}
	return f.checkNumber(spec, got, before, after)
}

func (f Field) checkText(spec factSpec, got string, before, after Snapshot) *Mismatch {
	_, b := spec.value(before)
	_, a := spec.value(after)
	if got == b || got == a {
		return nil
	}
	return &Mismatch{Want: fmt.Sprintf("%q (%s)", b, spec.source), Got: fmt.Sprintf("%q", got)}
}

func (f Field) checkNumber(spec factSpec, got string, before, after Snapshot) *Mismatch {
	per := 1.0
	if spec.per != nil {
		per = spec.per[f.Unit]
	}
	b, _ := spec.value(before)
	a, _ := spec.value(after)
	tol := math.Max(f.Tolerance, f.TolerancePercent/100*math.Max(percentBase(f.Fact, before, a), percentBase(f.Fact, after, b))*per)
	lo, hi := math.Min(a, b)*per-tol, math.Max(a, b)*per+tol
	if per > 1 {
		// /proc rounds down to its unit (12.9 ticks is 12), a finer unit
		// keeps the fraction: up to one whole kernel unit more is right.
		hi += per
	}
	want := f.describeRange(spec, lo, hi, b, per)
	v, err := strconv.ParseFloat(got, 64)
	if err != nil || strings.ContainsAny(got, "eExXpP_") {
		return &Mismatch{Want: want, Got: notANumber(got, "not a decimal number")}
	}
	// A coarser unit than the kernel's (seconds for ticks) rounds, so
	// anything within one unit of the range is right.
	slack := 0.0
	if per < 1 {
		slack = 1
	}
	if v < lo-slack || v > hi+slack {
		return &Mismatch{Want: want, Got: got + unitSuffix(f.Unit)}
	}
	return nil
}

// percentBase is what a percentage tolerance is a share of: for CPU times
// the process's whole CPU time, because /proc moves time between utime and
// stime when it scales a multi-threaded process's sum.
func percentBase(fact string, s Snapshot, value float64) float64 {
	if fact == "utime" || fact == "stime" {
		return float64(s.Stat.UTime + s.Stat.STime)
	}
	return value
}

func (f Field) describeRange(spec factSpec, lo, hi, kernel, per float64) string {
	unit := unitSuffix(f.Unit)
	var want string
	if lo == hi {
		want = formatNum(lo) + unit
	} else {
		want = fmt.Sprintf("%s to %s%s", formatNum(lo), formatNum(hi), unit)
	}
	if per != 1 {
		native := spec.units[0]
		return fmt.Sprintf("%s (%s %s in %s)", want, formatNum(kernel), native, spec.source)
	}
	return fmt.Sprintf("%s (%s)", want, spec.source)
}

func unitSuffix(u string) string {
	if u == "" {
		return ""
	}
	return " " + u
}

func formatNum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// stateWords are the task state bits (include/linux/sched.h, 6.1) that
// a task in each /proc state letter has in __state; exiting tasks have
// TASK_DEAD there, their exit_state is EXIT_ZOMBIE or EXIT_DEAD.
var stateWords = map[string][]uint64{
	"R": {0},          // TASK_RUNNING
	"S": {0x1},        // TASK_INTERRUPTIBLE
	"D": {0x2},        // TASK_UNINTERRUPTIBLE (also TASK_KILLABLE with TASK_WAKEKILL)
	"T": {0x4},        // __TASK_STOPPED (TASK_STOPPED adds TASK_WAKEKILL)
	"t": {0x8},        // __TASK_TRACED
	"X": {0x10, 0x80}, // EXIT_DEAD, TASK_DEAD
	"Z": {0x20, 0x80}, // EXIT_ZOMBIE, TASK_DEAD
	"P": {0x40},       // TASK_PARKED
	"I": {0x402},      // TASK_IDLE = TASK_UNINTERRUPTIBLE | TASK_NOLOAD
}

// stateFlags are modifier bits a state word may carry beside its state:
// TASK_WAKEKILL, TASK_NOLOAD, TASK_RTLOCK_WAIT, TASK_FREEZABLE and
// TASK_FREEZABLE_UNSAFE.
const stateFlags = 0x100 | 0x400 | 0x1000 | 0x2000 | 0x4000

func (f Field) checkState(got string, before, after Snapshot) *Mismatch {
	b, a := before.Stat.State, after.Stat.State
	letters := b
	if a != b {
		letters = b + " or " + a
	}
	if f.Unit == "letter" {
		if got != "" && (strings.HasPrefix(got, b) || strings.HasPrefix(got, a)) {
			return nil
		}
		return &Mismatch{Want: fmt.Sprintf("%s (stat field 3)", letters), Got: fmt.Sprintf("%q", got)}
	}
	want := fmt.Sprintf("%s (the __state word of a task in state %s, stat field 3)", stateWordText(b, a), letters)
	w, err := strconv.ParseUint(got, 0, 64)
	if err != nil {
		return &Mismatch{Want: want, Got: notANumber(got, "not a number")}
	}
	if stateWordMatches(w, b) || stateWordMatches(w, a) {
		return nil
	}
	return &Mismatch{Want: want, Got: got}
}

func stateWordMatches(w uint64, letter string) bool {
	for _, base := range stateWords[letter] {
		if w&^stateFlags == base&^stateFlags && (base != 0 || w == 0) {
			return true
		}
	}
	return false
}

// stateWithFlags are the words with a modifier bit that tasks in a state
// commonly show, which a want names beside the bare state bit.
var stateWithFlags = map[string]string{
	"T": "260 (TASK_STOPPED, with TASK_WAKEKILL)",
	"D": "258 (TASK_KILLABLE)",
	"S": "8193 (with TASK_FREEZABLE)",
}

func stateWordText(letters ...string) string {
	var words []string
	add := func(w string) {
		if !slices.Contains(words, w) {
			words = append(words, w)
		}
	}
	for _, l := range letters {
		for _, w := range stateWords[l] {
			add(strconv.FormatUint(w, 10))
		}
		if alt, ok := stateWithFlags[l]; ok {
			add(alt)
		}
	}
	return strings.Join(words, " or ")
}

// notANumber is how a value that should be a number is shown: a number
// with something after it names the stray text ("1u": a stray "u" after
// 1), anything else is quoted with why.
func notANumber(got, why string) string {
	rest := strings.TrimLeft(got, "0123456789")
	if rest != got && rest != "" && !strings.ContainsAny(rest, ".0123456789") { // not 1.5, not 0x16
		return fmt.Sprintf("%q (a stray %q after the number %s)", got, rest, strings.TrimSuffix(got, rest))
	}
	return fmt.Sprintf("%q (%s)", got, why)
}
