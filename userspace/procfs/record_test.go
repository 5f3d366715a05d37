package procfs

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sampleRecord is testdata/record.txt, the module's format for the target
// recorded in comm-parens.stat, with the IDs of creds.status.
var sampleRecord = Record{
	PID: 15097, Comm: "a) (b c", State: "S", PPID: 15080, UID: 1234, GID: 5678,
	Priority: 20, Nice: 0, UTime: 0, STime: 0, StartTime: 49824,
	VSize: 1175552, RSS: 168, Threads: 1,
}

func TestParseRecordSample(t *testing.T) {
	got, err := ParseRecord(readTestdata(t, "record.txt"))
	require.NoError(t, err)
	assert.Equal(t, sampleRecord, got)
}

func TestRecordStringRoundTrip(t *testing.T) {
	r := Record{
		PID: 4194303, Comm: "with: colon", State: "t", PPID: 0, UID: 4294967295, GID: 0,
		Priority: -100, Nice: -20, UTime: 1 << 40, STime: 3, StartTime: 5,
		VSize: 1 << 63, RSS: 9, Threads: 64,
	}
	got, err := ParseRecord([]byte(r.String()))
	require.NoError(t, err, "record:\n%s", r)
	assert.Equal(t, r, got)
	assert.Equal(t, string(readTestdata(t, "record.txt")), sampleRecord.String())
}

func TestParseRecordEmptyComm(t *testing.T) {
	// prctl(PR_SET_NAME, "") is allowed, so an empty comm is valid.
	r := sampleRecord
	r.Comm = ""
	got, err := ParseRecord([]byte(r.String()))
	require.NoError(t, err)
	assert.Equal(t, "", got.Comm)
}

func TestParseRecordMalformed(t *testing.T) {
	valid := sampleRecord.String()
	lines := strings.SplitAfter(valid, "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline
	swapped := append([]string{}, lines...)
	swapped[0], swapped[3] = swapped[3], swapped[0]

	tests := map[string]string{
		"empty":                "",
		"no final newline":     strings.TrimSuffix(valid, "\n"),
		"blank line at end":    valid + "\n",
		"extra key":            valid + "extra: 1\n",
		"missing last key":     strings.Join(lines[:len(lines)-1], ""),
		"keys out of order":    strings.Join(swapped, ""),
		"no space after colon": strings.Replace(valid, "pid: 15097", "pid:15097", 1),
		"two spaces":           strings.Replace(valid, "pid: 15097", "pid:  15097", 1),
		"trailing space":       strings.Replace(valid, "pid: 15097\n", "pid: 15097 \n", 1),
		"CRLF":                 strings.ReplaceAll(valid, "\n", "\r\n"),
		"key in capitals":      strings.Replace(valid, "ppid:", "PPID:", 1),
		"pid not a number":     strings.Replace(valid, "pid: 15097", "pid: 15097x", 1),
		"pid in hex":           strings.Replace(valid, "pid: 15097", "pid: 0x3af9", 1),
		"pid leading zero":     strings.Replace(valid, "pid: 15097", "pid: 015097", 1),
		"state empty":          strings.Replace(valid, "state: S", "state: ", 1),
		"state two letters":    strings.Replace(valid, "state: S", "state: S+", 1),
		"state unknown":        strings.Replace(valid, "state: S", "state: ?", 1),
		"negative uid":         strings.Replace(valid, "uid: 1234", "uid: -1", 1),
		"uid too large":        strings.Replace(valid, "uid: 1234", "uid: 4294967296", 1),
		"negative rss":         strings.Replace(valid, "rss: 168", "rss: -1", 1),
		"plus sign on nice":    strings.Replace(valid, "nice: 0", "nice: +0", 1),
		"empty utime":          strings.Replace(valid, "utime: 0", "utime: ", 1),
		"duplicated line":      strings.Replace(valid, "uid: 1234\n", "uid: 1234\nuid: 1234\n", 1),
	}
	for name, text := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseRecord([]byte(text))
			assert.ErrorIs(t, err, ErrMalformed, "ParseRecord(%q)", text)
		})
	}
}

func TestParseRecordErrorNamesField(t *testing.T) {
	// A malformed value must say which key it belongs to.
	text := strings.Replace(sampleRecord.String(), "ppid: 15080", "ppid: x", 1)
	_, err := ParseRecord([]byte(text))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ppid")
}
