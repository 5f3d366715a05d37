//go:build pidlab_guest

package conformance

import (
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
	"github.com/pidlab/pidlab/userspace/procfs"
)

// CPU time tolerances, in USER_HZ ticks (10 ms each).
//
// /proc/[pid]/stat scales the whole thread group's sampled ticks to its
// precise runtime at once (thread_group_cputime_adjusted), which is not
// exported to modules; the module scales each thread (task_cputime_adjusted)
// and sums. Both totals are the same runtime with utime and stime each
// rounded down to a tick, so utime+stime can differ from what stat shows
// at the same instant by at most one tick: cpuSumSlack is that plus one
// tick of margin.
//
// The split between utime and stime can differ more. For one thread the
// inputs are the same and only the monotonic floors (prev_cputime) differ,
// raised whenever each view was last read, so an early stime-heavy sample
// (exec) can hold one view a tick or two above the other: cpuSplitSlack.
// For several threads, scaling each thread by its own user share differs
// from scaling the sum by the group's share by the threads' sampling errors
// weighted by how far their shares are from the group's; a Go process was
// seen 4 ticks apart out of 61. cpuSplitSharePercent of utime+stime is
// added for multi-threaded processes: still far too little to hide swapped
// fields, leader-only times or wrong units, which the sum check and the
// single-threaded targets catch.
//
// Every bound is taken around the read: stat before - slack <= module <=
// stat after + slack, so a busy target's progress during the read is never
// mistaken for an error.
const (
	cpuSumSlack          = 2
	cpuSplitSlack        = 3
	cpuSplitSharePercent = 20
)

// splitSlack is the utime and stime slack for o's process.
func splitSlack(o observation) uint64 {
	slack := uint64(cpuSplitSlack)
	if max(o.before.Threads, o.after.Threads) > 1 {
		slack += (o.after.UTime + o.after.STime) * cpuSplitSharePercent / 100
	}
	return slack
}

// observation is one module record together with the kernel's own view of
// the same task, read just before and just after it.
type observation struct {
	id     int // the ID whose /proc entries were read: a PID or a TID
	before procfs.Stat
	after  procfs.Stat
	status procfs.Status
	rec    procfs.Record
}

// requireMatchesStat writes id to /proc/pid, reads the record and asserts
// every field against /proc/<id>/stat and status. It returns the record
// for the test's own checks of the target's known facts.
func requireMatchesStat(t *testing.T, id int) procfs.Record {
	t.Helper()
	requireWritePID(t, id)
	return requireStoredMatchesStat(t, id)
}

// requireStoredMatchesStat is requireMatchesStat for a selection that is
// already stored (written by someone else).
func requireStoredMatchesStat(t *testing.T, id int) procfs.Record {
	t.Helper()
	o := observe(t, id)
	for range stateRetries {
		if o.stateSeenByStat() {
			break
		}
		o = observe(t, id)
	}
	assertMatches(t, o)
	return o.rec
}

// stateRetries is how many times an observation is taken again when the
// record's state is neither the one stat showed before nor after it: a
// task that sleeps on both sides may still have run in between (init
// woken to reap an orphan, seen once as S, R, S under load), and then the
// record's R was true. A module that reports a wrong state does so every
// time.
const stateRetries = 3

func (o observation) stateSeenByStat() bool {
	return o.rec.State == o.before.State || o.rec.State == o.after.State
}

func observe(t *testing.T, id int) observation {
	t.Helper()
	o := observation{id: id}
	o.before = requireStat(t, id)
	o.status = requireStatus(t, id)
	o.rec = requireRecord(t)
	o.after = requireStat(t, id)
	requireStable(t, o.before, o.after)
	return o
}

// requireStable checks that the fields compared exactly did not change
// while the record was read; if they did, the test's target is unfit, and
// the module cannot be judged.
func requireStable(t *testing.T, before, after procfs.Stat) {
	t.Helper()
	id := before.PID
	require.Equal(t, before.Comm, after.Comm, "comm of %d changed during the read", id)
	require.Equal(t, before.PPID, after.PPID, "ppid of %d changed during the read", id)
	require.Equal(t, before.Priority, after.Priority, "priority of %d changed during the read", id)
	require.Equal(t, before.Nice, after.Nice, "nice of %d changed during the read", id)
	require.Equal(t, before.StartTime, after.StartTime, "start_time of %d changed during the read", id)
}

// assertMatches compares each record field with the kernel's value. Fields
// that a live task may change (state, memory, threads) must equal the
// value seen before and after when those agree, and lie between them when
// they do not. A mismatch is a recorded failure (guesttest.Fail): the
// field and its /proc source, the kernel's value, the module's, a hint.
func assertMatches(t *testing.T, o observation) {
	t.Helper()
	id, b, a, r := o.id, o.before, o.after, o.rec
	checkEqual(t, b.PID, r.PID, hintPID, "pid: module vs /proc/%d/stat field 1", id)
	checkEqual(t, b.Comm, r.Comm, hintComm, "comm: module vs /proc/%d/stat field 2", id)
	assertState(t, id, r.State, b.State, a.State)
	checkEqual(t, b.PPID, r.PPID, ppidHint(r.PPID, b.PPID, id, o.status.Tgid), "ppid: module vs /proc/%d/stat field 4", id)
	checkEqual(t, o.status.Uid[0], r.UID, idHint(r.UID, o.status.Uid), "uid: module vs /proc/%d/status Uid: (real)", id)
	checkEqual(t, o.status.Gid[0], r.GID, idHint(r.GID, o.status.Gid), "gid: module vs /proc/%d/status Gid: (real)", id)
	checkEqual(t, b.Priority, r.Priority, hintPriority, "priority: module vs /proc/%d/stat field 18", id)
	checkEqual(t, b.Nice, r.Nice, hintNice, "nice: module vs /proc/%d/stat field 19", id)
	assertTicks(t, "utime", id, r.UTime, b.UTime, a.UTime, splitSlack(o))
	assertTicks(t, "stime", id, r.STime, b.STime, a.STime, splitSlack(o))
	assertTicks(t, "utime+stime", id, r.UTime+r.STime, b.UTime+b.STime, a.UTime+a.STime, cpuSumSlack)
	checkEqual(t, b.StartTime, r.StartTime, startTimeHint(r.StartTime, b.StartTime), "start_time: module vs /proc/%d/stat field 22", id)
	assertBetween(t, "vsize", "field 23", id, r.VSize, b.VSize, a.VSize, vsizeHint(r.VSize, a.VSize))
	assertBetween(t, "rss", "field 24", id, r.RSS, b.RSS, a.RSS, rssHint(r.RSS, a.RSS))
	assertBetween(t, "threads", "field 20", id, r.Threads, b.Threads, a.Threads, hintThreads)
}

// checkEqual records a failure when the module's got is not the kernel's
// want. The check is format and args.
func checkEqual[T comparable](t *testing.T, want, got T, h hint, format string, args ...any) bool {
	t.Helper()
	if want == got {
		return true
	}
	guesttest.Fail(t, guestapi.Failure{Check: fmt.Sprintf(format, args...), Expected: show(want), Got: show(got), Hint: string(h)})
	return false
}

// show prints a value as a failure shows it: a string quoted, so that a
// stray newline or NUL is seen; an errno by its C name.
func show(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case unix.Errno:
		if v == 0 {
			return "0 (success)"
		}
		return guesttest.ErrnoName(v)
	}
	return fmt.Sprint(v)
}

// requireEqual is checkEqual that stops the test on a mismatch.
func requireEqual[T comparable](t *testing.T, want, got T, h hint, format string, args ...any) {
	t.Helper()
	if !checkEqual(t, want, got, h, format, args...) {
		t.FailNow()
	}
}

// checkNoError records a failure when err is not nil.
func checkNoError(t *testing.T, err error, h hint, format string, args ...any) bool {
	t.Helper()
	return checkThat(t, err == nil, "no error", showErr(err), h, format, args...)
}

// requireNoError is checkNoError that stops the test on an error.
func requireNoError(t *testing.T, err error, h hint, format string, args ...any) {
	t.Helper()
	if !checkNoError(t, err, h, format, args...) {
		t.FailNow()
	}
}

// checkErrorIs records a failure unless err is want (errors.Is).
func checkErrorIs(t *testing.T, err, want error, h hint, format string, args ...any) bool {
	t.Helper()
	return checkThat(t, errors.Is(err, want), showErr(want), showErr(err), h, format, args...)
}

// requireErrorIs is checkErrorIs that stops the test on another outcome.
func requireErrorIs(t *testing.T, err, want error, h hint, format string, args ...any) {
	t.Helper()
	if !checkErrorIs(t, err, want, h, format, args...) {
		t.FailNow()
	}
}

// showErr is an error as a failure shows it: an errno by its C name.
func showErr(err error) string {
	if err == nil {
		return "no error"
	}
	return guesttest.ErrnoName(err)
}

// checkZero records a failure unless got is its type's zero value.
func checkZero[T comparable](t *testing.T, got T, h hint, format string, args ...any) bool {
	t.Helper()
	var zero T
	return checkEqual(t, zero, got, h, format, args...)
}

// checkThat records a failure unless ok: want says what the kernel allows.
func checkThat(t *testing.T, ok bool, want, got string, h hint, format string, args ...any) bool {
	t.Helper()
	if ok {
		return true
	}
	guesttest.Fail(t, guestapi.Failure{Check: fmt.Sprintf(format, args...), Expected: want, Got: got, Hint: string(h)})
	return false
}

// assertState checks the state letter: equal to stat's when stat agreed
// before and after the read, else one of the two.
func assertState(t *testing.T, id int, got, before, after string) bool {
	t.Helper()
	if before == after {
		return checkEqual(t, before, got, hintState, "state: module vs /proc/%d/stat field 3", id)
	}
	return checkThat(t, got == before || got == after, before+" or "+after, got, hintState,
		"state: module vs /proc/%d/stat field 3, which changed from %s to %s during the read", id, before, after)
}

// assertBetween checks a number that may change while it is read: equal
// to the kernel's value when stat agreed before and after, else within
// that range. h is the hint a failure carries.
func assertBetween[T ~int | ~uint64](t *testing.T, field, source string, id int, got, before, after T, h hint) bool {
	t.Helper()
	if before == after {
		return checkEqual(t, before, got, h, "%s: module vs /proc/%d/stat %s", field, id, source)
	}
	lo, hi := min(before, after), max(before, after)
	return checkThat(t, lo <= got && got <= hi, fmt.Sprintf("between %v and %v", lo, hi), fmt.Sprint(got), h,
		"%s: module vs /proc/%d/stat %s, which went from %v to %v during the read", field, id, source, before, after)
}

// assertTicks checks a CPU time against stat read before and after, with
// slack ticks either way (see cpuSumSlack).
func assertTicks(t *testing.T, field string, id int, got, before, after, slack uint64) bool {
	t.Helper()
	lo, hi := min(before, after), max(before, after)
	lo -= min(lo, slack)
	hi += slack
	return checkThat(t, lo <= got && got <= hi, fmt.Sprintf("%d to %d ticks", lo, hi), fmt.Sprintf("%d ticks", got), cpuTimeHint(got, hi),
		"%s: module vs /proc/%d/stat, which says %d ticks before the read and %d after (slack %d ticks)",
		field, id, before, after, slack)
}
