// Command mage is mage (github.com/magefile/mage, whose code does all the
// work) as `go tool mage` runs it in pidlab, with two changes:
//
//   - Two runs at once in one checkout no longer break each other. Mage
//     writes magefiles/mage_output_file.go, compiles it and removes it on
//     every run (with a Go build cache it never reuses its binary), and
//     runs the binary from a path shared by all runs: a second run failed
//     with "error compiling magefiles", exit 1. Here the magefiles compile
//     under a lock, each run into a binary of its own.
//   - SIGINT and SIGTERM sent to this process reach the targets. `go tool`
//     passes every signal on to it, but mage keeps a SIGINT from the
//     compiled targets and dies of a SIGTERM, leaving them running. Here
//     either becomes a SIGTERM to the targets, which pidlab's magefile
//     handles as a Ctrl-C: not a SIGINT, which the targets may already have
//     from the terminal, and a second one makes mage's main exit at once.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/magefile/mage/mage"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/vmtest/internal/lockeddir"
)

func main() { os.Exit(run(os.Args[1:])) }

// interrupted is the exit code of a run stopped before the targets ran.
const interrupted = 130

func run(args []string) int {
	// If `go tool` is killed, stop as if told to.
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0)
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)

	inv, cmd, err := mage.Parse(os.Stderr, os.Stdout, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil { // Parse printed the usage; what mage's own main says and returns
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 2
	}
	if cmd != mage.None || inv.List || inv.Help || inv.Autocomplete {
		// Mage's own commands and listings; -compile writes the main file.
		unlock, lerr := lock(inv.CacheDir)
		if lerr != nil {
			fmt.Fprintln(os.Stderr, "Error:", lerr)
			return 1
		}
		defer unlock()
		return mage.ParseAndRun(os.Stdout, os.Stderr, os.Stdin, args)
	}
	exe, code := compile(inv)
	if exe != nil {
		defer exe.Remove()
	}
	if len(signals) > 0 {
		fmt.Fprintln(os.Stderr, "interrupted while compiling the magefiles")
		return interrupted
	}
	if code != 0 {
		return code
	}
	return runTargets(inv, filepath.Join(exe.Path, "mage"), signals)
}

// compile builds the magefiles under the lock into a folder of this run's
// own; a later run removes it if this one is killed before it can.
func compile(inv mage.Invocation) (*lockeddir.Dir, int) {
	unlock, err := lock(inv.CacheDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return nil, 1
	}
	defer unlock()
	lockeddir.RemoveStale(inv.CacheDir, runDirPrefix, time.Minute)
	dir, err := lockeddir.Make(inv.CacheDir, runDirPrefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return nil, 1
	}
	inv.Stderr, inv.Stdin = os.Stderr, os.Stdin
	inv.CompileOut = filepath.Join(dir.Path, "mage")
	inv.Force = true
	inv.Args = nil
	return dir, mage.Invoke(inv)
}

// runDirPrefix names the runs' folders in mage's cache.
const runDirPrefix = "pidlab-run-"

// lock takes the lock of mage's cache, where every checkout's runs compile
// (mage names the main file the same in all of them, and its binaries by
// the magefiles' hash).
func lock(cacheDir string) (func(), error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(cacheDir, "pidlab-compile.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// runTargets runs the compiled targets as mage.RunCompiled does, passing
// SIGINT and SIGTERM on as SIGTERM, and returns their exit code.
func runTargets(inv mage.Invocation, exe string, signals chan os.Signal) int {
	c := exec.Command(exe, inv.Args...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	c.Dir = inv.WorkDir // mage's -w, else -d
	if c.Dir == "" {
		c.Dir = inv.Dir
	}
	c.Env = append(os.Environ(), mageEnv(inv)...)
	// If this process is killed, the targets stop as if told to.
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "failed to run compiled magefile:", err)
		return 1
	}
	var signalled atomic.Bool
	go func() {
		for range signals {
			signalled.Store(true)
			c.Process.Signal(syscall.SIGTERM)
		}
	}()
	err := c.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		if exit.ExitCode() == 1 && signalled.Load() {
			// Mage's main gives up on a slow cleanup or a second Ctrl-C
			// with 1, which would say a test failed.
			return interrupted
		}
		return exit.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "failed to run compiled magefile:", err)
		return 1
	}
	return 0
}

// mageEnv is what mage.RunCompiled tells the targets of mage's flags.
func mageEnv(inv mage.Invocation) []string {
	var env []string
	if inv.Verbose {
		env = append(env, "MAGEFILE_VERBOSE=1")
	}
	if inv.Debug {
		env = append(env, "MAGEFILE_DEBUG=1")
	}
	if inv.GoCmd != "" {
		env = append(env, "MAGEFILE_GOCMD="+inv.GoCmd)
	}
	if inv.Timeout > 0 {
		env = append(env, "MAGEFILE_TIMEOUT="+inv.Timeout.String())
	}
	return env
}
