package vmtest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/qemu"
	"github.com/pidlab/pidlab/vmtest/verdict"
)

// TestCtrlCWhileBooting is a person pressing Ctrl-C while `go tool mage
// test` boots: the terminal sends SIGINT to the whole foreground process
// group (go, mage, the targets). The run says it was interrupted and
// while doing what, exits 130, and leaves no QEMU and no results folder.
func TestCtrlCWhileBooting(t *testing.T) {
	e2eConfig(t, repoPath(t, "module/procpid"), "cloud") // skips with -short
	tmp := t.TempDir()
	cmd := exec.Command("go", "tool", "mage", "test")
	cmd.Dir = repoPath(t)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp) // where QEMU's results folder goes
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	var output strings.Builder
	lines := bufio.NewScanner(out)
	var qemus []int
	for lines.Scan() {
		output.WriteString(lines.Text() + "\n")
		if qemus == nil && strings.Contains(lines.Text(), "==> booting") {
			// Ctrl-C as soon as QEMU runs: the kernel takes a second or
			// more to boot to the runner, so the guest is still booting.
			qemus = waitForDescendants(t, cmd.Process.Pid, "qemu-system-x86", 30*time.Second)
			require.NotEmpty(t, qemus, "no QEMU among the run's processes 30 s after it said it boots; output:\n%s", output.String())
			require.NoError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGINT), "Ctrl-C")
		}
	}
	err = cmd.Wait()
	t.Logf("output:\n%s", output.String())
	require.NotNil(t, qemus, "the run never said it boots")
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "the run fails: %v", err)
	assert.Equal(t, int(verdict.Interrupted), exit.ExitCode(), "exit code")
	assert.Contains(t, output.String(), "interrupted while booting", "what the run says")
	assert.NotContains(t, output.String(), "FAIL", "an interruption is no verdict on the module")
	for _, pid := range qemus {
		assert.True(t, ended(pid), "QEMU, pid %d, after the run", pid)
	}
	left, _ := filepath.Glob(filepath.Join(tmp, qemu.TempDirPrefix+"*"))
	assert.Empty(t, left, "results folders left in TMPDIR")
}

// waitForDescendants polls descendants until one named comm runs, at
// most limit.
func waitForDescendants(t *testing.T, pid int, comm string, limit time.Duration) []int {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if found := descendants(t, pid, comm); len(found) > 0 || time.Now().After(deadline) {
			return found
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// descendants are the processes under pid whose name (comm, at most 15
// characters) is comm.
func descendants(t *testing.T, pid int, comm string) []int {
	t.Helper()
	parent := map[int]int{}
	names := map[int]string{}
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …
		open, close := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')')
		fields := strings.Fields(string(b)[close+1:])
		if open < 0 || close < 0 || len(fields) < 2 {
			continue
		}
		names[p] = string(b)[open+1 : close]
		parent[p], _ = strconv.Atoi(fields[1])
	}
	var found []int
	for p, name := range names {
		if name != comm {
			continue
		}
		for a := parent[p]; a > 1; a = parent[a] {
			if a == pid {
				found = append(found, p)
				break
			}
		}
	}
	return found
}

// ended is true once pid runs no more (gone, or a zombie for its reaper).
func ended(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(after, "Z")
}
