package progress

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCmdlineQuotesForTheShell(t *testing.T) {
	cmd := exec.Command("qemu-system-x86_64", "-append", "console=ttyS0 panic=-1", "-name", "it's")
	cmd.Dir = "/tmp/x y"
	assert.Equal(t, `cd '/tmp/x y' && qemu-system-x86_64 -append 'console=ttyS0 panic=-1' -name 'it'\''s'`, Cmdline(cmd))
	assert.Equal(t, "cd /src && CGO_ENABLED=0 go test -c", cmdlineWithEnv(&exec.Cmd{Dir: "/src", Args: []string{"go", "test", "-c"}}, []string{"CGO_ENABLED=0"}))
}

func TestVerboseShowsCommandsQuietDoesNot(t *testing.T) {
	var quiet, verbose bytes.Buffer
	_, err := (&Log{W: &quiet}).CombinedOutput(t.Context(), "", nil, "true")
	require.NoError(t, err)
	_, err = (&Log{W: &verbose, Verbose: true}).CombinedOutput(t.Context(), "", []string{"A=1"}, "true")
	require.NoError(t, err)
	assert.Empty(t, quiet.String())
	assert.Equal(t, "    exec: A=1 true\n", verbose.String())
}

func TestFailedCommandKeepsItsOutput(t *testing.T) {
	_, err := (&Log{}).CombinedOutput(t.Context(), "", nil, "sh", "-c", "echo boom >&2; exit 3")
	var ce *CommandError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "boom\n", ce.Output)
	assert.Contains(t, ce.Error(), "exit status 3")
}

func TestNilLogIsSilent(t *testing.T) {
	var l *Log
	l.Step("x")
	l.Info("x")
	l.Debug("x")
	_, err := l.CombinedOutput(t.Context(), "", nil, "true")
	assert.NoError(t, err)
}

func TestNamedLogsShareALockAndKeepPercents(t *testing.T) {
	var out strings.Builder
	root := &Log{W: &out}
	var wg sync.WaitGroup
	for _, name := range []string{"cloud", "rt"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := root.Named(name + "%d")
			for range 100 {
				l.Info("100%% %s", "done")
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	assert.Len(t, lines, 200)
	for _, l := range lines {
		assert.Regexp(t, `^\[(cloud|rt)%d\]     100% done$`, l)
	}
}
