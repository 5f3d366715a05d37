// Package progress is how pidlab talks to the person at the terminal: a
// line per step, short when things go well, every command with Verbose.
package progress

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Log writes progress lines. The zero value discards them.
type Log struct {
	W       io.Writer
	Verbose bool   // also print every command run and its output
	Prefix  string // starts every line: which of several parallel runs speaks

	mu     sync.Mutex
	parent *Log // a Named log writes under its parent's lock: they share W
}

// Step announces a long step ("==> fetching kernel …").
func (l *Log) Step(format string, args ...any) { l.printf("==> "+format, args...) }

// Info adds a detail to the current step.
func (l *Log) Info(format string, args ...any) { l.printf("    "+format, args...) }

// Debug prints only with Verbose.
func (l *Log) Debug(format string, args ...any) {
	if l != nil && l.Verbose {
		l.printf("    "+format, args...)
	}
}

// Named returns a log for one of several runs in parallel: its lines start
// with [name].
func (l *Log) Named(name string) *Log {
	if l == nil {
		return nil
	}
	return &Log{W: l.W, Verbose: l.Verbose, Prefix: l.Prefix + "[" + name + "] ", parent: l.root()}
}

// Line prints a line as it is.
func (l *Log) Line(format string, args ...any) { l.printf(format, args...) }

func (l *Log) printf(format string, args ...any) {
	if l == nil || l.W == nil {
		return
	}
	root := l.root()
	root.mu.Lock()
	defer root.mu.Unlock()
	fmt.Fprint(l.W, l.Prefix+fmt.Sprintf(format, args...)+"\n")
}

func (l *Log) root() *Log {
	if l.parent != nil {
		return l.parent
	}
	return l
}

// CommandError is a command that failed: what ran, how it ended, what it said.
type CommandError struct {
	Cmdline string
	Output  string
	Err     error
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("%s: %v", e.Cmdline, e.Err)
}

func (e *CommandError) Unwrap() error { return e.Err }

// Output runs cmd and returns its standard output. With Verbose the command
// line is printed first and its standard error streams to the log.
func (l *Log) Output(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	KillGroupOnCancel(cmd)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if l != nil && l.Verbose && l.W != nil {
		cmd.Stderr = io.MultiWriter(&stderr, l.W)
	}
	l.Debug("exec: %s", Cmdline(cmd))
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &CommandError{Cmdline: Cmdline(cmd), Output: stdout.String() + stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}

// Cmdline renders a command as a person would type it.
func Cmdline(cmd *exec.Cmd) string { return cmdlineWithEnv(cmd, nil) }

func cmdlineWithEnv(cmd *exec.Cmd, env []string) string {
	var b strings.Builder
	if cmd.Dir != "" {
		fmt.Fprintf(&b, "cd %s && ", shellQuote(cmd.Dir))
	}
	for _, e := range env {
		b.WriteString(shellQuote(e) + " ")
	}
	for i, a := range cmd.Args {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(shellQuote(a))
	}
	return b.String()
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '-' || r == '_' || r == '.' || r == '=' || r == ',' || r == ':' || r == '+' ||
			r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// CombinedOutput runs cmd, with env added to the environment, and returns
// its standard output and error together, printing the command line first
// with Verbose.
func (l *Log) CombinedOutput(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	KillGroupOnCancel(cmd)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	l.Debug("exec: %s", cmdlineWithEnv(cmd, env))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, &CommandError{Cmdline: Cmdline(cmd), Output: string(out), Err: err}
	}
	return out, nil
}

// killGrace is how long a cancelled command's group has to end on SIGTERM
// before SIGKILL; below mage's 5 s wait for a Ctrl-C's cleanup.
const killGrace = 2 * time.Second

// KillGroupOnCancel makes cmd (from exec.CommandContext) the leader of a
// process group of its own and, when the context is cancelled, kills the
// whole group (SIGTERM, then SIGKILL after killGrace): make's gcc, go build's compilers, apt's methods. Killing the
// leader alone would leave them running, holding cmd's output pipe open and
// so Wait. The group also keeps a terminal's Ctrl-C, which goes to the
// foreground group, from reaching the command: pidlab, which gets it, ends
// the command by cancelling, and a command that died of the Ctrl-C first
// cannot pass for one that failed. If pidlab dies without cancelling
// (SIGKILL), the command gets SIGTERM, which make passes on to its jobs.
func KillGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error {
		// SIGTERM first: make removes its half-written targets, dpkg
		// leaves its database consistent; what is left dies a moment later.
		pgid := cmd.Process.Pid
		time.AfterFunc(killGrace, func() { syscall.Kill(-pgid, syscall.SIGKILL) })
		if err := syscall.Kill(-pgid, syscall.SIGTERM); err != syscall.ESRCH {
			return err
		}
		return os.ErrProcessDone
	}
	// A child that left the group (setsid) and kept the pipe open would
	// still hold Wait.
	cmd.WaitDelay = 5 * time.Second
}

// LastLines is the last n lines of s: the end of a command's output or a
// console, where what went wrong usually is.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
