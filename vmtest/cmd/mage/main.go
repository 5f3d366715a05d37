// Command mage is mage (github.com/magefile/mage, whose code does all the
// work) as `go tool mage` runs it in pidlab, with two changes:
//
//   - Two runs at once in one checkout no longer break each other. Mage
//     writes magefiles/mage_output_file.go, compiles it and removes it on
//     every run (with a Go build cache it never reuses its binary), and
//     runs the binary from a path shared by all runs: a second run failed
//     with "error compiling magefiles", exit 1. Here the magefiles compile
//     under a lock, and each run runs a binary of its own.
//   - A run with nothing changed starts in a third of a second, not one.
//     Mage compiled into a new path each time, and go build links a new
//     path again (a second of a warm run). Here they compile into one path
//     per checkout, which go build leaves alone when it is up to date, and
//     each run runs a hard link to it: a later compile replaces the path
//     (go build removes it first), never the file a run is running.
//   - SIGINT and SIGTERM sent to this process reach the targets. `go tool`
//     passes every signal on to it, but mage keeps a SIGINT from the
//     compiled targets and dies of a SIGTERM, leaving them running. Here
//     either becomes a SIGTERM to the targets, which pidlab's magefile
//     handles as a Ctrl-C: not a SIGINT, which the targets may already have
//     from the terminal, and a second one makes mage's main exit at once.
package main

import (
	"crypto/sha256"
	"encoding/hex"
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
	removeUnused(inv.CacheDir)
	dir, err := lockeddir.Make(inv.CacheDir, runDirPrefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return nil, 1
	}
	shared, err := sharedExe(inv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return dir, 1
	}
	inv.Stderr, inv.Stdin = os.Stderr, os.Stdin
	inv.CompileOut = shared
	inv.Force = true
	inv.Args = nil
	if code := mage.Invoke(inv); code != 0 {
		return dir, code
	}
	if err := linkOrCopy(shared, filepath.Join(dir.Path, "mage")); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return dir, 1
	}
	return dir, 0
}

// Prefixes of the folders in mage's cache: a run's own, and a checkout's
// compiled magefiles.
const (
	runDirPrefix = "pidlab-run-"
	binDirPrefix = "pidlab-bin-"
)

// sharedExe is where the magefiles of inv's checkout compile: a folder per
// checkout (by its absolute path), touched on each use.
func sharedExe(inv mage.Invocation) (string, error) {
	abs, err := filepath.Abs(inv.Dir)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(abs))
	dir := filepath.Join(inv.CacheDir, binDirPrefix+hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	now := time.Now()
	os.Chtimes(dir, now, now)
	return filepath.Join(dir, "mage"), nil
}

// unusedAge is how long a checkout's compiled magefiles stay unused before
// a run removes them (a checkout gone, a temporary copy).
const unusedAge = 7 * 24 * time.Hour

// removeUnused removes the compiled magefiles of checkouts not used for
// unusedAge. It runs under the compile lock.
func removeUnused(cacheDir string) {
	dirs, _ := filepath.Glob(filepath.Join(cacheDir, binDirPrefix+"*"))
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) > unusedAge {
			os.RemoveAll(d)
		}
	}
}

// linkOrCopy puts the file at src at dst: a hard link, or a copy where
// the two cannot share the file.
func linkOrCopy(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

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
