package procfs

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseStatusRecorded(t *testing.T) {
	root := [4]uint32{0, 0, 0, 0}
	tests := []struct {
		file string
		want Status
	}{
		{"self.status", Status{Name: "cat", State: "R", Tgid: 15089, Pid: 15089, PPid: 15080, Uid: root, Gid: root, Threads: 1}},
		{"kthreadd.status", Status{Name: "kthreadd", State: "S", Tgid: 2, Pid: 2, PPid: 0, Uid: root, Gid: root, Threads: 1}},
		{"comm-parens.status", Status{Name: "a) (b c", State: "S", Tgid: 15097, Pid: 15097, PPid: 15080, Uid: root, Gid: root, Threads: 1}},
		{"zombie.status", Status{Name: "pidlab-target", State: "Z", Tgid: 15105, Pid: 15105, PPid: 15103, Uid: root, Gid: root, Threads: 1}},
		{"thread.status", Status{Name: "pidlab-thr2", State: "S", Tgid: 15158, Pid: 15161, PPid: 15080, Uid: root, Gid: root, Threads: 3}},
		// Real IDs differ from the effective, saved and filesystem ones.
		{"creds.status", Status{
			Name: "pidlab-target", State: "S", Tgid: 15122, Pid: 15122, PPid: 15080,
			Uid: [4]uint32{1234, 4321, 4321, 4321}, Gid: [4]uint32{5678, 8765, 8765, 8765}, Threads: 1,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseStatus(readTestdata(t, tt.file))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseStatusMalformed(t *testing.T) {
	valid := string(readTestdata(t, "creds.status"))
	tests := map[string]string{
		"empty":           "",
		"no Uid line":     dropLine(valid, "Uid:"),
		"no Threads line": dropLine(valid, "Threads:"),
		"three uids":      strings.Replace(valid, "Uid:\t1234\t4321\t4321\t4321", "Uid:\t1234\t4321\t4321", 1),
		"uid too large":   strings.Replace(valid, "Uid:\t1234", "Uid:\t4294967296", 1),
		"negative gid":    strings.Replace(valid, "Gid:\t5678", "Gid:\t-1", 1),
		"line without :":  valid + "garbage\n",
		"duplicate Pid":   valid + "Pid:\t1\n",
		"bad state":       strings.Replace(valid, "State:\tS (sleeping)", "State:\tsleeping", 1),
	}
	for name, text := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseStatus([]byte(text))
			assert.ErrorIs(t, err, ErrMalformed)
		})
	}
}

func TestReadStatusSelf(t *testing.T) {
	s, err := ReadStatus(os.Getpid())
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), s.Tgid, "Tgid")
	assert.Equal(t, uint32(os.Getuid()), s.Uid[0], "real uid")
	assert.Equal(t, uint32(os.Getgid()), s.Gid[0], "real gid")
}

// dropLine removes the line that starts with prefix.
func dropLine(text, prefix string) string {
	var kept []string
	for _, l := range strings.SplitAfter(text, "\n") {
		if !strings.HasPrefix(l, prefix) {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, "")
}
