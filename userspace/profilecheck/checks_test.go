//go:build pidlab_guest

package profilecheck

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
	"github.com/pidlab/pidlab/userspace/procfs"
	"github.com/pidlab/pidlab/userspace/profile"
)

// The tests run in this order: the read before any write must come first.

// Hints for the bugs these checks are built to catch.
const (
	unwrittenHint = "the read handler returned more bytes than it copied to the user's buffer: copy_to_user() the record " +
		"(simple_read_from_buffer() does it and advances *ppos) and return the count copied; printk() writes to the kernel log, not to the reader"
	pposHint      = "the read handler ignores *ppos (the file offset): return 0 once *ppos is past the record and advance *ppos by what you copied; simple_read_from_buffer() or seq_file do both"
	countHint     = "the read handler ignores count: copy at most count bytes (simple_read_from_buffer() does), or it writes past the reader's buffer"
	entryModeHint = "the entry is writable by every user: any of them can change which process all readers see; " +
		"create it 0644 (proc_create(name, 0644, NULL, &ops)), or 0600"
	errnoHint = "return -EINVAL for a write that is not a PID (-ERANGE for a number out of range); " +
		"return -1 reaches the caller as -EPERM, \"operation not permitted\", which says something else"
	staticFlagHint = "the read handler keeps end-of-file state in a static or global variable (like `completed`), which a reader that stops early leaves set for the next reader: decide end of file from *ppos instead"
)

func TestEntryExists(t *testing.T) {
	markTest(t)
	if _, err := os.Stat(prof.Entry); err != nil {
		fatal(t, "the module's entry", prof.Entry+" exists once the module is loaded", guesttest.ErrnoName(err), missingEntryHint())
	}
}

// missingEntryHint says how to make the profile's entry, naming the one
// the module made instead when it made one (guestapi.EnvProcCreated).
func missingEntryHint() string {
	name := strings.TrimPrefix(prof.Entry, "/proc/")
	created := os.Getenv(guestapi.EnvProcCreated)
	if created == "" {
		return fmt.Sprintf("create it in the module's init function: proc_create(%q, 0644, NULL, &your_proc_ops)", name)
	}
	return fmt.Sprintf("the module created %s instead: name it %q in proc_create(), or, if the assignment asks for that name, "+
		"validate with a course profile that says entry = %q", created, name, strings.Split(created, ",")[0])
}

// startCheck begins a check of the entry: one that does not exist fails
// TestEntryExists alone, and the checks that need it are skipped.
func startCheck(t *testing.T) {
	t.Helper()
	markTest(t)
	if _, err := os.Stat(prof.Entry); err != nil {
		t.Skipf("%s does not exist (TestEntryExists says why): nothing to check", prof.Entry)
	}
}

// TestEntryMode: only root may change the selection every reader sees.
func TestEntryMode(t *testing.T) {
	startCheck(t)
	applies(t)
	fi, err := os.Stat(prof.Entry)
	require.NoError(t, err)
	mode := fi.Mode().Perm()
	t.Logf("got: %s is %#o", prof.Entry, mode)
	if mode&0o022 != 0 {
		report(t, prof.Entry+"'s mode", "writable by its owner alone (0644)", fmt.Sprintf("%#o", mode), entryModeHint)
	}
}

func TestReadBeforeAnyWrite(t *testing.T) {
	startCheck(t)
	applies(t)
	o := readEntry(4096)
	t.Logf("got: %s", o)
	if o.Err == nil && !o.EOF {
		report(t, "reading before any PID was written", "an error, a message or nothing, then end of file", o.String(), pposHint)
	}
}

func TestRecordFields(t *testing.T) {
	startCheck(t)
	subjects := []struct {
		name string
		pid  func(t *testing.T) int
	}{
		{"init", func(*testing.T) int { return 1 }},
		{"sleeping", func(t *testing.T) int { return startTarget(t, "S", "sleep") }},
		{"stopped", func(t *testing.T) int {
			pid := startTarget(t, "S", "sleep")
			stopTarget(t, pid)
			return pid
		}},
		{"running", func(t *testing.T) int { return startTarget(t, "R", "spin") }},
		{"kernel-thread", func(*testing.T) int { return 2 }}, // kthreadd: no mm
	}
	for _, s := range subjects {
		t.Run(s.name, func(t *testing.T) {
			markTest(t)
			checkFields(t, s.pid(t))
		})
	}
}

// stateTries is how many times checkFields observes a process whose state
// alone disagrees with stat: a task that sleeps on both sides of the read
// may still have run in between (PID 1, a Go program, was seen running
// there on the debug kernel), and then the module's R was true. A module
// that reports a wrong state does so every time.
const stateTries = 3

// checkFields selects pid, reads the record and compares every field of the
// profile with the kernel's view of pid just before and after the read.
func checkFields(t *testing.T, pid int) {
	var before, after profile.Snapshot
	var values map[string]string
	for try := 1; ; try++ {
		before = snapshot(t, pid)
		selectPID(t, pid)
		o := readEntry(4096)
		after = snapshot(t, pid)
		values = parseRecord(t, o)
		if try == stateTries || !onlyStateDiffers(values, before, after) {
			break
		}
		t.Logf("the state alone differs from stat's around the read: observing again (%d of %d)", try+1, stateTries)
	}
	for _, f := range prof.Fields {
		t.Run(f.Name, func(t *testing.T) {
			if m := f.Check(values[f.Name], before, after); m != nil {
				report(t, fmt.Sprintf("field %s of pid %d", f.Name, pid), m.Want, m.Got, f.Hint)
			}
		})
	}
}

// parseRecord fails the test unless o is one record in the profile's layout.
func parseRecord(t *testing.T, o readOutcome) map[string]string {
	t.Helper()
	if o.Unwritten > 0 {
		fatal(t, "reading the record", "every byte a read returns written by the module", o.String(), unwrittenHint)
	}
	if o.Err != nil || !o.EOF {
		hint := ""
		if o.Err == nil {
			hint = pposHint
		}
		fatal(t, "reading the record", "one record, then end of file", o.String(), hint)
	}
	values, err := prof.ParseRecord(o.Text)
	if err != nil {
		hint := fmt.Sprintf("the profile %s expects: %s", prof.Name, prof.Description)
		switch {
		case strings.Contains(err.Error(), "twice"):
			hint = pposHint
		case emptyAfterRecords(o.Text):
			hint = staticFlagHint
		}
		fatal(t, "reading the record", "one record in the profile's layout", err.Error(), hint)
	}
	recordsParsed = true
	return values
}

// recordsParsed is set once a record the module gave has parsed. After
// that, an empty read of a selected process is end-of-file state an
// earlier reader left behind (a static flag), not a missing record.
var recordsParsed bool

func emptyAfterRecords(text string) bool { return recordsParsed && strings.TrimSpace(text) == "" }

// onlyStateDiffers reports whether the fields of fact state, and only
// they, disagree with the kernel's view.
func onlyStateDiffers(values map[string]string, before, after profile.Snapshot) bool {
	state, other := false, false
	for _, f := range prof.Fields {
		if f.Check(values[f.Name], before, after) != nil {
			if f.Fact == "state" {
				state = true
			} else {
				other = true
			}
		}
	}
	return state && !other
}

func snapshot(t *testing.T, pid int) profile.Snapshot {
	t.Helper()
	stat, err := procfs.ReadStat(pid)
	require.NoError(t, err)
	status, err := procfs.ReadStatus(pid)
	require.NoError(t, err)
	return profile.Snapshot{Stat: stat, Status: status}
}

func TestReadReachesEndOfFile(t *testing.T) {
	startCheck(t)
	applies(t)
	selectPID(t, startTarget(t, "S", "sleep"))
	parseRecord(t, readEntry(4096))
}

func TestSmallReadsAreNotOverrun(t *testing.T) {
	startCheck(t)
	applies(t)
	whole := wholeRecordOfSleeper(t)
	small := readSmall(t, 4)
	if small != whole.Text {
		report(t, "reading 4 bytes at a time (dd bs=4)", fmt.Sprintf("the record as one read gives it: %q", whole.Text),
			fmt.Sprintf("%q", small), pposHint)
	}
}

// wholeRecordOfSleeper selects a sleeping process and reads its record in
// one piece, skipping the test if even that fails: TestReadReachesEndOfFile
// reports it.
func wholeRecordOfSleeper(t *testing.T) readOutcome {
	t.Helper()
	selectPID(t, startTarget(t, "S", "sleep"))
	whole := readEntry(4096)
	if whole.Err != nil || !whole.EOF {
		t.Skipf("reading the record whole already fails (%s); see TestReadReachesEndOfFile", whole)
	}
	// The record read whole is what the check compares with: one that is
	// not a record must not let the check pass.
	if _, err := prof.ParseRecord(whole.Text); err != nil {
		if emptyAfterRecords(whole.Text) {
			fatal(t, "reading a process's record in one piece just after selecting it (this check's baseline)",
				"its record, as earlier reads gave records", "an empty read (end of file at once)", staticFlagHint)
		}
		t.Skipf("the record read whole does not parse (%v): this check has no baseline; TestRecordFields reports it", err)
	}
	return whole
}

// readSmall reads the entry size bytes a read, as dd bs=size does, into a
// buffer with guard bytes behind it, and fails the test if a read returns
// more than size or writes past it.
func readSmall(t *testing.T, size int) string {
	t.Helper()
	const guard = 4096
	fd := openEntry(t)
	defer unix.Close(fd)
	var text strings.Builder
	buf := make([]byte, size+guard)
	for reads := 0; reads < maxReads && text.Len() < maxBytes; reads++ {
		for i := size; i < len(buf); i++ {
			buf[i] = 0xAA
		}
		n, err := unix.Read(fd, buf[:size])
		require.NoError(t, err, "read(fd, buf, %d)", size)
		if n > size {
			fatal(t, fmt.Sprintf("reading %d bytes at a time (dd bs=%d)", size, size), fmt.Sprintf("each read(fd, buf, %d) returns at most %d", size, size),
				fmt.Sprintf("read %d returned %d bytes", reads+1, n), countHint)
		}
		if i := overrun(buf[size:]); i >= 0 {
			fatal(t, fmt.Sprintf("reading %d bytes at a time (dd bs=%d)", size, size), fmt.Sprintf("nothing written past the %d bytes asked for", size),
				fmt.Sprintf("read %d changed byte %d of the reader's memory", reads+1, size+i), countHint)
		}
		if n == 0 {
			return text.String()
		}
		text.Write(buf[:n])
	}
	fatal(t, fmt.Sprintf("reading %d bytes at a time", size), "end of file after the record", fmt.Sprintf("%d bytes without end of file", text.Len()), pposHint)
	return ""
}

func overrun(guard []byte) int {
	for i, b := range guard {
		if b != 0xAA {
			return i
		}
	}
	return -1
}

func TestSecondReaderAfterEarlyStop(t *testing.T) {
	startCheck(t)
	applies(t)
	whole := wholeRecordOfSleeper(t)
	for _, first := range []int{4096, 4} {
		t.Run(fmt.Sprintf("first-read-%d-bytes", first), func(t *testing.T) {
			markTest(t)
			fd := openEntry(t)
			_, err := unix.Read(fd, make([]byte, first))
			unix.Close(fd) // stops early: never reads to end of file
			require.NoError(t, err)
			second := readEntry(4096)
			if second.Text != whole.Text || second.Err != nil {
				report(t, fmt.Sprintf("a second reader, after one that read %d bytes and closed", first),
					fmt.Sprintf("%q", whole.Text), second.String(), staticFlagHint)
			}
		})
	}
}

func TestMissingPID(t *testing.T) {
	startCheck(t)
	applies(t)
	pid := goneTarget(t)
	text := prof.WriteText(pid)
	n, err := writeEntry(text)
	if err != nil {
		t.Logf("got: write(%q): %s", text, guesttest.ErrnoName(err))
		return
	}
	if n != len(text) {
		report(t, "writing a PID that has no process", fmt.Sprintf("an errno (ESRCH) or %d", len(text)), fmt.Sprintf("write returned %d", n), writeCountHint)
	}
	o := readEntry(4096)
	t.Logf("got: write accepted, then read: %s", o)
	if o.Err == nil && !o.EOF {
		report(t, "reading after a PID that has no process", "an error, a message or nothing, then end of file", o.String(), pposHint)
		return
	}
	if values, err := prof.ParseRecord(o.Text); err == nil && printsPID(values, pid) {
		report(t, "reading after a PID that has no process", fmt.Sprintf("no record of pid %d: write fails with ESRCH, or the read says there is no such process", pid),
			o.String(), "pid_task() returns NULL when no process has the PID: report that instead of printing a record")
	}
}

// badInputs are writes that name no process, each a subtest of its own
// name, so that a crash names the input being written. The two that crash
// modules (a long write into a fixed buffer, the empty write's kmalloc(0),
// the commonest) come last, so that a crash hides no other input's verdict.
var badInputs = []struct {
	name, text string
	risky      bool // crashes modules: the verdicts before it must reach the host first
}{
	{"letters", "abc\n", false}, {"negative", "-1\n", false}, {"zero", "0\n", false}, {"digits-then-letters", "12abc\n", false},
	{"blank", " \n", false}, {"NUL", "\x00\n", false}, {"two-numbers", "1 2\n", false}, {"20-digits", "99999999999999999999\n", false},
	{"above-PID_MAX_LIMIT", "4194305\n", false}, {"4096-digits", strings.Repeat("7", 4096), true}, {"empty", "", true},
}

// drainPause lets the results written so far leave the guest before a
// risky write: a panic loses what still waits in the serial line's buffer
// (the last ~0.1 s of results, seen losing three inputs' verdicts).
const drainPause = 500 * time.Millisecond

func TestBadInputIsHarmless(t *testing.T) {
	startCheck(t)
	applies(t)
	for _, in := range badInputs {
		if in.risky {
			time.Sleep(drainPause)
		}
		t.Run(in.name, func(t *testing.T) {
			markTest(t)
			n, err := writeEntry(in.text)
			short := in.text
			if len(short) > 24 {
				short = fmt.Sprintf("%.12s… (%d bytes)", in.text, len(in.text))
			}
			if err != nil {
				t.Logf("got: %q: %s", short, guesttest.ErrnoName(err))
				if errno := guesttest.Errno(err); prof.Applies(profile.CheckBadInputErrno) && errno != unix.EINVAL && errno != unix.ERANGE {
					report(t, fmt.Sprintf("the errno of writing %q", short), "EINVAL (or ERANGE)", guesttest.ErrnoName(err), errnoHint)
				}
				return
			}
			t.Logf("got: %q: %d", short, n)
			if prof.Applies(profile.CheckBadInputErrno) && in.text != "" {
				report(t, fmt.Sprintf("writing %q", short), "EINVAL (or ERANGE)", fmt.Sprintf("write returned %d", n), errnoHint)
			}
			if (n == 0 && in.text != "") || n > len(in.text) {
				report(t, fmt.Sprintf("writing %q", short), fmt.Sprintf("an errno (EINVAL) or %d", len(in.text)), fmt.Sprintf("write returned %d", n), writeCountHint)
			}
		})
	}
	// The module lives on: a good write then works (marked as the parent's
	// again, so that a crash here is not blamed on the last input).
	markTest(t)
	requireStillWorks(t, "a good write after the bad ones", "bad input must leave the module working")
}

// requireStillWorks selects a new process and reads its pid back.
func requireStillWorks(t *testing.T, what, hint string) {
	t.Helper()
	pid := startTarget(t, "S", "sleep")
	before := snapshot(t, pid)
	selectPID(t, pid)
	values := parseRecord(t, readEntry(4096))
	for _, f := range prof.Fields {
		if f.Fact == "pid" {
			if m := f.Check(values[f.Name], before, before); m != nil {
				report(t, what, m.Want, m.Got, hint)
			}
		}
	}
}

// bigWrite is past what kmalloc() gives (4 MiB, MAX_ORDER with 4 KiB
// pages): a write handler that kmallocs count unchecked makes the page
// allocator warn (the kernel check fails, in this test's name) and gets
// NULL back.
const bigWrite = 4<<20 + 1

// TestBigWrite writes 4 MiB and a byte of digits: an errno, or the whole
// count consumed, and the module lives on. It runs last: an unchecked
// allocation may oops.
func TestBigWrite(t *testing.T) {
	startCheck(t)
	applies(t)
	n, err := writeEntry(strings.Repeat("7", bigWrite))
	if err != nil {
		t.Logf("got: a write of %d bytes: %s", bigWrite, guesttest.ErrnoName(err))
	} else {
		t.Logf("got: a write of %d bytes: %d", bigWrite, n)
		if n == 0 || n > bigWrite {
			report(t, fmt.Sprintf("writing %d bytes", bigWrite), fmt.Sprintf("an errno (EINVAL) or %d", bigWrite), fmt.Sprintf("write returned %d", n), writeCountHint)
		}
	}
	requireStillWorks(t, "a good write after a big one", "a big write must leave the module working")
}

// printsPID reports whether a record's pid field (any field of fact pid)
// says pid.
func printsPID(values map[string]string, pid int) bool {
	for _, f := range prof.Fields {
		if f.Fact == "pid" && strings.TrimSpace(values[f.Name]) == strconv.Itoa(pid) {
			return true
		}
	}
	return false
}

// applies skips the test when the profile leaves out the robustness
// check it is (profile.CheckTests, which the host's grade reads too).
func applies(t *testing.T) {
	t.Helper()
	check, ok := profile.CheckOfTest(t.Name())
	if !ok {
		t.Fatalf("%s is not in profile.CheckTests: name the check it is there", t.Name())
	}
	if !prof.Applies(check) {
		t.Skipf("the profile %s leaves out the %s check", prof.Name, check)
	}
}
