package profile

import (
	"os"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/userspace/procfs"
)

// builtin is one of procpid's profiles, read as the host reads it
// (vmtest/profiles, which imports this package, so its tests cannot).
func builtin(t *testing.T, name string) *Profile {
	t.Helper()
	b, err := os.ReadFile("../../module/procpid/profiles/" + name + ".toml")
	require.NoError(t, err)
	var p Profile
	require.NoError(t, toml.Unmarshal(b, &p), name)
	require.NoError(t, p.Validate(), name)
	return &p
}

func TestOSC10eIsTolerantOfLayout(t *testing.T) {
	p := builtin(t, "osc10e")
	layouts := []string{
		"command = [bash] pid = [1437] state = [1]\n", // the book's
		"command = [bash] pid = [1437] state = [1]",
		"command = [bash], pid = [1437], state = [1]\n",
		"command = [bash]\npid = [1437]\nstate = [1]\n",
		"command=[bash]\tpid=[1437]\tstate=[1]\n",
		"command: bash, pid: 1437, state: 1\n",
		"Command = [bash] PID = [1437] State = [1]\n",
		"command = [ bash] pid = [ 1437 ] state = [ 1 ]\r\n",
	}
	for _, text := range layouts {
		v, err := p.ParseRecord(text)
		if assert.NoError(t, err, "%q", text) {
			assert.Equal(t, map[string]string{"command": "bash", "pid": "1437", "state": "1"}, trimmed(v), "%q", text)
		}
	}
	for _, text := range []string{
		"",
		"command = [bash] pid = [1437]\n", // no state
		"command = [bash] pid = [1437] state = [1]\ncommand = [bash] pid = [1437] state = [1]\n", // printed twice
		"pid = [1437] command = [bash] state = [1]\n",
	} {
		_, err := p.ParseRecord(text)
		assert.Error(t, err, "%q", text)
	}
}

// trimmed drops the spaces Field.Check ignores.
func trimmed(v map[string]string) map[string]string {
	out := map[string]string{}
	for k, s := range v {
		out[k] = strings.TrimSpace(s)
	}
	return out
}

func TestOSC10eIsStrictOnValues(t *testing.T) {
	p := builtin(t, "osc10e")
	sleeping := Snapshot{Stat: procfs.Stat{PID: 1437, Comm: "bash", State: "S"}}
	stopped := Snapshot{Stat: procfs.Stat{PID: 1437, Comm: "bash", State: "T"}}
	field := func(name string) Field {
		for _, f := range p.Fields {
			if f.Name == name {
				return f
			}
		}
		t.Fatalf("no field %s", name)
		return Field{}
	}
	assert.Nil(t, field("state").Check("1", sleeping, sleeping))
	assert.Nil(t, field("state").Check("0x1", sleeping, sleeping), "hex is a number too")
	assert.Nil(t, field("state").Check("8193", sleeping, sleeping), "TASK_INTERRUPTIBLE|TASK_FREEZABLE")
	assert.Nil(t, field("state").Check("260", stopped, stopped), "TASK_STOPPED is __TASK_STOPPED|TASK_WAKEKILL")
	idle := Snapshot{Stat: procfs.Stat{State: "I"}}
	assert.Nil(t, field("state").Check("1026", idle, idle), "TASK_IDLE")
	assert.NotNil(t, field("state").Check("1", idle, idle))
	assert.Nil(t, field("state").Check("0", sleeping, Snapshot{Stat: procfs.Stat{State: "R"}}), "woke up between the snapshots")
	m := field("state").Check("0", sleeping, sleeping)
	require.NotNil(t, m, "a sleeping task is not running")
	assert.Equal(t, "1 or 8193 (with TASK_FREEZABLE) (the __state word of a task in state S, stat field 3)", m.Want)
	m = field("state").Check("0", stopped, stopped)
	require.NotNil(t, m)
	assert.Equal(t, "4 or 260 (TASK_STOPPED, with TASK_WAKEKILL) (the __state word of a task in state T, stat field 3)", m.Want,
		"the word a stopped task usually shows is named, not only the bare bit")
	m = field("state").Check("1u", sleeping, sleeping)
	require.NotNil(t, m)
	assert.Equal(t, `"1u" (a stray "u" after the number 1)`, m.Got)
	m = field("pid").Check("1437]", sleeping, sleeping)
	require.NotNil(t, m)
	assert.Equal(t, `"1437]" (a stray "]" after the number 1437)`, m.Got)
	m = field("pid").Check("0x59d", sleeping, sleeping)
	require.NotNil(t, m)
	assert.Equal(t, `"0x59d" (not a decimal number)`, m.Got)
	m = field("pid").Check("abc", sleeping, sleeping)
	require.NotNil(t, m)
	assert.Equal(t, `"abc" (not a decimal number)`, m.Got)
	assert.NotNil(t, field("state").Check("S", sleeping, sleeping), "a letter is not the state word")
	assert.NotNil(t, field("state").Check("2", sleeping, sleeping))
	assert.NotNil(t, field("state").Check("4", sleeping, sleeping))
	assert.NotNil(t, field("state").Check("1", Snapshot{Stat: procfs.Stat{State: "R"}}, Snapshot{Stat: procfs.Stat{State: "R"}}))

	assert.Nil(t, field("pid").Check("1437", sleeping, sleeping))
	assert.NotNil(t, field("pid").Check("1438", sleeping, sleeping))
	assert.NotNil(t, field("pid").Check("01437x", sleeping, sleeping))
	assert.Nil(t, field("command").Check("bash", sleeping, sleeping))
	m = field("command").Check("bas", sleeping, sleeping)
	require.NotNil(t, m)
	assert.Equal(t, `"bash" (stat field 2)`, m.Want)
	assert.Equal(t, `"bas"`, m.Got)
}

// A record that does not parse is told what the profile's records look
// like, not shown its regular expression.
func TestALayoutFailureShowsTheLayout(t *testing.T) {
	p := builtin(t, "osc10e")
	_, err := p.ParseRecord("bash 1437 S\n")
	require.Error(t, err)
	assert.ErrorContains(t, err, "command = [bash] pid = [1437] state = [1]")
	assert.NotContains(t, err.Error(), p.Record.Regex)
	p.Description = ""
	_, err = p.ParseRecord("bash 1437 S\n")
	assert.ErrorContains(t, err, "the fields command, pid, state")
}

func TestUnitsAndTolerances(t *testing.T) {
	before := Snapshot{Stat: procfs.Stat{UTime: 12, VSize: 8192, RSS: 3}}
	after := Snapshot{Stat: procfs.Stat{UTime: 14, VSize: 8192, RSS: 3}}
	cases := []struct {
		field Field
		got   string
		ok    bool
	}{
		{Field{Fact: "utime", Unit: "ticks"}, "13", true},
		{Field{Fact: "utime", Unit: "ticks"}, "15", false},
		{Field{Fact: "utime", Unit: "ticks", Tolerance: 1}, "15", true},
		{Field{Fact: "utime", Unit: "ticks", Tolerance: 1, TolerancePercent: 20}, "16", true}, // 20% of utime+stime, 14, is 2.8
		{Field{Fact: "utime", Unit: "ticks", Tolerance: 1, TolerancePercent: 20}, "17", false},
		{Field{Fact: "stime", Unit: "ticks", Tolerance: 0, TolerancePercent: 20}, "2", true}, // stime 0, but 20% of the total
		{Field{Fact: "utime", Unit: "ticks"}, "130000000", false},                            // nanoseconds where ticks are due
		{Field{Fact: "utime", Unit: "ns"}, "130000000", true},
		{Field{Fact: "utime", Unit: "ms"}, "120", true},
		{Field{Fact: "utime", Unit: "ms"}, "100", false},
		{Field{Fact: "utime", Unit: "s"}, "0", true}, // 0.12 s, rounded down
		{Field{Fact: "vsize", Unit: "bytes"}, "8192", true},
		{Field{Fact: "vsize", Unit: "kB"}, "8", true},
		{Field{Fact: "vsize", Unit: "pages"}, "2", true},
		{Field{Fact: "vsize", Unit: "bytes"}, "2", false},
		{Field{Fact: "rss", Unit: "pages"}, "3", true},
		{Field{Fact: "rss", Unit: "kB"}, "12", true},
		{Field{Fact: "rss", Unit: "kB"}, "3", false},
		{Field{Fact: "rss", Unit: "pages"}, "", false},
		{Field{Fact: "rss", Unit: "pages"}, "3e0", false},
	}
	for _, c := range cases {
		m := c.field.Check(c.got, before, after)
		assert.Equal(t, c.ok, m == nil, "%s in %s: %q: %+v", c.field.Fact, c.field.Unit, c.got, m)
	}
	m := Field{Fact: "utime", Unit: "ns"}.Check("12", before, after)
	require.NotNil(t, m)
	assert.Equal(t, "120000000 to 150000000 ns (12 ticks in stat field 14)", m.Want, "ticks round down: 14 ticks is up to 14.99…")
	assert.Nil(t, Field{Fact: "utime", Unit: "ms"}.Check("129", Snapshot{Stat: procfs.Stat{UTime: 12}}, Snapshot{Stat: procfs.Stat{UTime: 12}}),
		"129 ms is 12 ticks in /proc")
	assert.Nil(t, Field{Fact: "start_time", Unit: "ns"}.Check("4567890123", Snapshot{Stat: procfs.Stat{StartTime: 456}}, Snapshot{Stat: procfs.Stat{StartTime: 456}}))
	assert.NotNil(t, Field{Fact: "start_time", Unit: "ns"}.Check("4580000000", Snapshot{Stat: procfs.Stat{StartTime: 456}}, Snapshot{Stat: procfs.Stat{StartTime: 456}}))
}

func TestLinesRecords(t *testing.T) {
	p := builtin(t, "reference")
	rec := procfs.Record{PID: 7, Comm: "a: b", State: "S", PPID: 1, Threads: 1}
	v, err := p.ParseRecord(rec.String())
	require.NoError(t, err)
	assert.Equal(t, "a: b", v["comm"], "a comm holding the separator is kept whole")
	assert.Equal(t, "7", v["pid"])
	_, err = p.ParseRecord(rec.String() + rec.String())
	assert.ErrorContains(t, err, "twice")
	_, err = p.ParseRecord("pid: 7\n")
	assert.ErrorContains(t, err, "has no comm, state")
	_, err = p.ParseRecord(rec.String() + "thread: 1\nthread: 2\n")
	assert.NoError(t, err, "keys the profile does not name are ignored, twice or not")
}

func TestJSONRoundTrip(t *testing.T) {
	p := builtin(t, "osc10e")
	b, err := p.JSON()
	require.NoError(t, err)
	q, err := FromJSON(b)
	require.NoError(t, err)
	assert.Equal(t, p, q)
}

// Every robustness check but one is a guest test of its own, which a
// profile that leaves the check out skips (and a grade scores 0); the
// errno check is part of TestBadInputIsHarmless. The OSC profile leaves
// out its opt-in entry-mode check, not the others.
func TestEveryCheckIsATest(t *testing.T) {
	for _, c := range AllChecks {
		_, ok := CheckTests[c]
		assert.Equal(t, c != CheckBadInputErrno, ok, "check %s has a test in CheckTests", c)
	}
	p := builtin(t, "osc10e")
	assert.True(t, p.LeavesOut("TestEntryMode"))
	assert.False(t, p.LeavesOut("TestSecondReaderAfterEarlyStop"))
	assert.False(t, p.LeavesOut("TestRecordFields"), "not a robustness check: always graded")
	assert.False(t, builtin(t, "reference").LeavesOut("TestEntryMode"), "the reference profile applies every check")
}
