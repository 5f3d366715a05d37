package progress

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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

// A cancelled command ends with its whole process group: make's gcc and
// the like, which would otherwise live on and keep the output pipe (and so
// the command's Wait) open.
func TestCancelKillsTheCommandsChildren(t *testing.T) {
	for _, run := range []struct {
		name string
		fn   func(ctx context.Context, script string) error
	}{
		{"CombinedOutput", func(ctx context.Context, script string) error {
			_, err := (&Log{}).CombinedOutput(ctx, "", nil, "sh", "-c", script)
			return err
		}},
		{"Output", func(ctx context.Context, script string) error {
			_, err := (&Log{}).Output(ctx, "", "sh", "-c", script)
			return err
		}},
	} {
		t.Run(run.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "child.pid")
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- run.fn(ctx, "sleep 300 & echo $! > "+pidFile+"; wait") }()
			child := waitForPID(t, pidFile)
			cancel()
			select {
			case err := <-done:
				assert.Error(t, err, "a cancelled command fails")
			case <-time.After(10 * time.Second):
				t.Fatalf("the cancelled command did not return within 10s: its child (pid %d) holds its output", child)
			}
			assert.Eventually(t, func() bool { return gone(child) }, 5*time.Second, 50*time.Millisecond,
				"the command's child, pid %d, ends with it", child)
		})
	}
}

func waitForPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "the shell writes its child's pid to %s", path)
	return pid
}

// gone is true when pid no longer runs (a zombie waiting for its reaper
// has stopped running too).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(after, "Z")
}

func TestLastLines(t *testing.T) {
	assert.Equal(t, "c\nd", LastLines("a\nb\nc\nd\n", 2))
	assert.Equal(t, "a\nb", LastLines("a\nb", 5), "fewer than n: all")
}
