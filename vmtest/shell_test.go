package vmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pidlab/pidlab/vmtest/kernel"
)

// TestShellUnderTmux is `mage vm:shell` as a person uses it: in a terminal
// (a tmux pane), a host shell starts it, the guest's shell answers, the
// person writes and reads /proc/pid, types exit and is back at the host
// shell with a sane terminal.
func TestShellUnderTmux(t *testing.T) {
	c := e2eConfig(t, repoPath(t, "module/procpid"), kernel.DefaultFlavour)
	_, err := exec.LookPath("tmux")
	require.NoError(t, err, "this test drives the shell VM through tmux: apt-get install tmux")
	// Build first, so that the pane's wait is for the boot alone.
	_, mod, err := provisionModule(t.Context(), c)
	require.NoError(t, err)
	man, err := c.manifestFor(c.ModuleDir)
	require.NoError(t, err)
	_, err = buildShellInitramfs(t.Context(), c, mod, man.Try)
	require.NoError(t, err)

	p := newPane(t)
	p.send("cd '" + c.RepoDir + "' && go tool mage vm:shell module/procpid; echo host-exit=$?")
	start := time.Now()
	p.waitFor("the guest's shell prompt", 3*time.Minute, func(s string) bool {
		return strings.Contains(s, "pidlab: exit leaves the shell") && lastLine(s) == "$"
	})
	t.Logf("boot to the guest's prompt: %s", time.Since(start).Round(100*time.Millisecond))
	assert.Contains(t, p.text(), "pidlab: module procpid loaded from /pidlab/module/procpid.ko")
	assert.Contains(t, p.text(), "pidlab: try:  echo 1 > /proc/pid; cat /proc/pid", "procpid's manifest's suggestion")

	p.send("echo $$ > /proc/pid; cat /proc/pid; echo shell-pid=$$")
	s := p.waitFor("the record of the shell's process", time.Minute, matches(`(?m)^shell-pid=\d+\s*$`))
	shellPID := submatch(t, s, `(?m)^shell-pid=(\d+)\s*$`)
	assert.Equal(t, shellPID, submatch(t, s, `(?m)^pid: (\d+)\s*$`), "pid: the shell's own, $$")
	assert.Equal(t, "gosh", submatch(t, s, `(?m)^comm: (\S+)\s*$`), "comm")
	assert.Regexp(t, `(?m)^threads: \d+\s*$`, s, "the record's last line")

	p.send("exit")
	s = p.waitFor("the host shell after the VM powered off", time.Minute, func(s string) bool {
		return matches(`(?m)^host-exit=\d+\s*$`)(s) && lastLine(s) == "host$"
	})
	assert.Equal(t, "0", submatch(t, s, `(?m)^host-exit=(\d+)\s*$`), "exit status of the shell VM")
	assert.Contains(t, s, "pidlab: module procpid unloaded")
	assert.Contains(t, s, "==> the VM is off")

	p.send("stty -a; echo stty-done")
	s = p.waitFor("stty's report", 30*time.Second, matches(`(?m)^stty-done\s*$`))
	s = s[strings.LastIndex(s, "stty -a;"):]
	assert.Regexp(t, `\sicanon\s`, s, "the terminal is back in canonical mode")
	assert.Regexp(t, `\secho\s`, s, "the terminal echoes again")
	t.Logf("the pane ends:\n%s", tail(p.text(), 40))
}

// pane is one tmux pane running a host shell, on a tmux server of its own.
type pane struct {
	t    *testing.T
	sock string
}

func newPane(t *testing.T) *pane {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "tmux.conf")
	require.NoError(t, os.WriteFile(conf, []byte("set -g history-limit 50000\n"), 0o644))
	p := &pane{t: t, sock: filepath.Join(dir, "tmux.sock")}
	wd, err := os.Getwd()
	require.NoError(t, err)
	p.tmux("-f", conf, "new-session", "-d", "-s", "pidlab", "-x", "160", "-y", "50", "-c", wd, "env PS1='host$ ' sh")
	t.Cleanup(func() { exec.Command("tmux", "-S", p.sock, "kill-server").Run() })
	return p
}

func (p *pane) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", p.sock}, args...)...).CombinedOutput()
	require.NoError(p.t, err, "tmux %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// send types a line.
func (p *pane) send(line string) { p.tmux("send-keys", "-t", "pidlab", line, "Enter") }

// text is everything the pane has shown, wrapped lines joined.
func (p *pane) text() string { return p.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "pidlab") }

// waitFor polls the pane until done holds, and fails showing the pane's end
// if it does not within limit.
func (p *pane) waitFor(what string, limit time.Duration, done func(string) bool) string {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := p.text()
		if done(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %s within %s; the pane ends:\n%s", what, limit, tail(s, 40))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func matches(re string) func(string) bool {
	return regexp.MustCompile(re).MatchString
}

func submatch(t *testing.T, s, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	require.NotNil(t, m, "%s in the pane:\n%s", re, tail(s, 40))
	return m[1]
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n "), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
