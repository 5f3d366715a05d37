package vmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConsoleLogKeepsHeadAndTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	l, err := createConsoleLog(path)
	require.NoError(t, err)
	l.limit, l.tailLimit = 100, 50 // 10 lines of head, 5 of tail
	for i := range 100 {
		fmt.Fprintf(l, "line %03d\n", i) // 9 bytes
	}
	require.NoError(t, l.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	require.Len(t, lines, 11+1+5, "the head, the note, the tail:\n%s", b)
	assert.Equal(t, "line 000", lines[0])
	assert.Equal(t, "line 010", lines[10], "the head's last whole line")
	assert.Equal(t, "[pidlab: 84 lines (756 bytes) of console output dropped here: the log keeps its first 0 MiB and its last 0 MiB]", lines[11])
	assert.Equal(t, "line 095", lines[12], "the tail's first line")
	assert.Equal(t, "line 099", lines[16])
}

func TestConsoleLogUnderItsCapIsWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	l, err := createConsoleLog(path)
	require.NoError(t, err)
	fmt.Fprintln(l, "[    0.0] Linux version 6.1")
	fmt.Fprintln(l, "[    2.0] reboot: Power down")
	require.NoError(t, l.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "[    0.0] Linux version 6.1\n[    2.0] reboot: Power down\n", string(b))
}
