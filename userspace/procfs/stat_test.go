package procfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readTestdata returns a file recorded from a real /proc (see README in
// testdata for how each one was made).
func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err, "testdata %s", name)
	return b
}

func TestParseStatRecorded(t *testing.T) {
	tests := []struct {
		file string
		want Stat
	}{
		{"self.stat", Stat{PID: 15087, Comm: "cat", State: "R", PPID: 15080, Priority: 20, Threads: 1, StartTime: 49823, VSize: 3133440, RSS: 408}},
		{"kthreadd.stat", Stat{PID: 2, Comm: "kthreadd", State: "S", PPID: 0, Priority: 20, Threads: 1, StartTime: 22}},
		// The comm "a) (b c" holds a ')', a '(' and spaces.
		{"comm-parens.stat", Stat{PID: 15097, Comm: "a) (b c", State: "S", PPID: 15080, Priority: 20, Threads: 1, StartTime: 49824, VSize: 1175552, RSS: 168}},
		{"zombie.stat", Stat{PID: 15105, Comm: "pidlab-target", State: "Z", PPID: 15103, Priority: 20, Threads: 1, StartTime: 49845}},
		// A non-leader thread: its own comm, the group's thread count.
		{"thread.stat", Stat{PID: 15161, Comm: "pidlab-thr2", State: "S", PPID: 15080, Priority: 20, Threads: 3, StartTime: 49886, VSize: 17960960, RSS: 168}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseStat(readTestdata(t, tt.file))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseStatFields(t *testing.T) {
	// Fields 14, 15, 18, 19 and 20 carry distinct values so that an
	// off-by-one in the field numbering shows up as a wrong value.
	line := "7 (x) S 1 2 3 4 5 6 7 8 9 10 111 222 13 14 -2 -5 3 0 999 4096 12 extra\n"
	got, err := ParseStat([]byte(line))
	require.NoError(t, err)
	assert.Equal(t, Stat{
		PID: 7, Comm: "x", State: "S", PPID: 1, UTime: 111, STime: 222,
		Priority: -2, Nice: -5, Threads: 3, StartTime: 999, VSize: 4096, RSS: 12,
	}, got)
}

func TestParseStatMalformed(t *testing.T) {
	valid := "7 (x) S 1 2 3 4 5 6 7 8 9 10 111 222 13 14 20 0 1 0 999 4096 12"
	tests := map[string]string{
		"empty":             "",
		"no parentheses":    "7 x S 1",
		"no pid":            "(x) S 1",
		"no space before (": "7(x) S 1 2 3 4 5 6 7 8 9 10 111 222 13 14 20 0 1 0 999 4096 12",
		"nothing after )":   "7 (x)",
		"too few fields":    "7 (x) S 1 2 3 4 5 6 7 8 9 10 111 222 13 14 20 0 1 0 999 4096",
		"pid not a number":  strings.Replace(valid, "7 (x)", "q (x)", 1),
		"state two letters": strings.Replace(valid, " S ", " SS ", 1),
		"state unknown":     strings.Replace(valid, " S ", " Q ", 1),
		"negative utime":    strings.Replace(valid, " 111 ", " -111 ", 1),
		"utime leading 0":   strings.Replace(valid, " 111 ", " 0111 ", 1),
		"plus sign":         strings.Replace(valid, " 999 ", " +999 ", 1),
		"vsize overflow":    strings.Replace(valid, " 4096 ", " 18446744073709551616 ", 1),
	}
	for name, line := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseStat([]byte(line))
			assert.ErrorIs(t, err, ErrMalformed, "ParseStat(%q)", line)
		})
	}
}

func TestReadStatSelf(t *testing.T) {
	// The host's own /proc: the one live check that the parser keeps up
	// with the running kernel's format.
	s, err := ReadStat(os.Getpid())
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), s.PID, "pid")
	assert.Equal(t, os.Getppid(), s.PPID, "ppid")
	assert.Positive(t, s.Threads, "threads")
	assert.Positive(t, s.VSize, "vsize")
}
