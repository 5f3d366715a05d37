package guest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pidlab/pidlab/userspace/guestapi"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// System is what the runner needs from the kernel. The guest uses the real
// one (LinuxSystem); tests on the host use a fake.
type System interface {
	LoadModule(path string) error
	UnloadModule(name string) error
	Taint() (uint64, error)
	Kernel() string
	// Leaks is nil on a kernel without kmemleak.
	Leaks() LeakDetector
	// Mark names on the console what runs now (MarkTest), guestapi.NoTest when
	// no test does.
	Mark(name string)
}

// LeakDetector is kmemleak: Forget marks every allocation reported so far
// as known; Scan returns the reports of leaks found since.
type LeakDetector interface {
	Forget() error
	Scan() (string, error)
}

// Runner carries out a guestapi.Manifest and reports it as Events on Out.
type Runner struct {
	Sys      System
	Manifest guestapi.Manifest
	Out      io.Writer

	mu  sync.Mutex // one event per line, whole, even from two goroutines
	enc *json.Encoder
}

// unloadRetries covers the short window after a test process exits in which
// its last file reference to the module may still be dropping.
const (
	unloadRetries = 50
	unloadBackoff = 100 * time.Millisecond
)

// outputGrace is how long output may trail the test binary's exit.
const outputGrace = 2 * time.Second

// Run loads the module, runs every test binary (reloading the module
// between them), unloads the module and reports Done. It returns an error only when the results channel fails;
// everything else is an event for the host to judge.
func (r *Runner) Run(ctx context.Context) error {
	r.enc = json.NewEncoder(r.Out)
	if err := r.emit(guestapi.Event{Kind: guestapi.KindStart, Kernel: r.Sys.Kernel(), Taint: r.taint()}); err != nil {
		return err
	}
	leaks := r.Sys.Leaks()
	if leaks != nil {
		// What boot leaked (or kmemleak thinks it did) is not the module's.
		if err := leaks.Forget(); err != nil {
			r.emit(guestapi.Event{Kind: guestapi.KindLeaks, Err: err.Error()})
		}
	}
	if err := r.Sys.LoadModule(r.Manifest.Module); err != nil {
		r.emit(guestapi.Event{Kind: guestapi.KindLoad, Err: err.Error()})
		return r.emit(guestapi.Event{Kind: guestapi.KindDone, Taint: r.taint()})
	}
	r.emit(guestapi.Event{Kind: guestapi.KindLoad})
	for i, tb := range r.Manifest.Tests {
		if i > 0 && !r.reload() {
			return r.emit(guestapi.Event{Kind: guestapi.KindDone, Taint: r.taint()})
		}
		r.runTests(ctx, tb)
	}
	unload := r.unload()
	r.emit(unload)
	if leaks != nil && unload.Err == "" {
		r.emit(scanLeaks(leaks))
	}
	return r.emit(guestapi.Event{Kind: guestapi.KindDone, Taint: r.taint()})
}

func scanLeaks(leaks LeakDetector) guestapi.Event {
	report, err := leaks.Scan()
	if err != nil {
		return guestapi.Event{Kind: guestapi.KindLeaks, Err: err.Error()}
	}
	return guestapi.Event{Kind: guestapi.KindLeaks, Line: report}
}

func (r *Runner) emit(ev guestapi.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.enc.Encode(ev); err != nil {
		return fmt.Errorf("writing %s event to the results channel: %w", ev.Kind, err)
	}
	return nil
}

func (r *Runner) taint() uint64 {
	t, err := r.Sys.Taint()
	if err != nil {
		return 0
	}
	return t
}

// runTests runs one test binary, forwarding its combined output line by line.
// It runs in a process group of its own, so that target processes a failed
// test left behind are killed with it and cannot hold its output open.
func (r *Runner) runTests(ctx context.Context, tb guestapi.TestBinary) {
	defer r.Sys.Mark(guestapi.NoTest) // a crash after the binary is not its last test's
	cmd := exec.CommandContext(ctx, tb.Path, tb.Args...)
	cmd.Env = append(os.Environ(), r.Manifest.Env...)
	cmd.Dir = "/tmp"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		r.emit(guestapi.Event{Kind: guestapi.KindTestExit, Binary: tb.Path, Err: err.Error()})
		return
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		r.emit(guestapi.Event{Kind: guestapi.KindTestExit, Binary: tb.Path, Err: err.Error()})
		return
	}
	forwarded := make(chan struct{})
	go func() {
		r.forwardLines(pr, tb.Path)
		close(forwarded)
	}()
	waitErr := cmd.Wait()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-forwarded:
	case <-time.After(outputGrace):
		pr.Close() // a leftover outside the group still holds the pipe
		<-forwarded
	}
	pr.Close()
	ev := guestapi.Event{Kind: guestapi.KindTestExit, Binary: tb.Path}
	var exitErr *exec.ExitError
	if errors.As(waitErr, &exitErr) {
		ev.ExitCode = exitErr.ExitCode()
		ev.Err = exitErr.String()
	} else if waitErr != nil {
		ev.Err = waitErr.Error()
	}
	r.emit(ev)
}

func (r *Runner) forwardLines(rd io.Reader, binary string) {
	br := bufio.NewReader(rd)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			r.emit(guestapi.Event{Kind: guestapi.KindTestOutput, Binary: binary, Line: strings.TrimSuffix(line, "\n")})
		}
		if err != nil {
			return
		}
	}
}

// reload gives the next test binary a freshly loaded module, so that every
// suite may check what a read before any write does. Only a failure is
// reported: as the unload or load event it is.
func (r *Runner) reload() bool {
	if ev := r.unload(); ev.Err != "" {
		r.emit(ev)
		return false
	}
	if err := r.Sys.LoadModule(r.Manifest.Module); err != nil {
		r.emit(guestapi.Event{Kind: guestapi.KindLoad, Err: "loading it again for the next test binary: " + err.Error()})
		return false
	}
	return true
}

func (r *Runner) unload() guestapi.Event {
	if err := Unload(r.Sys, r.Manifest.ModuleName); err != nil {
		return guestapi.Event{Kind: guestapi.KindUnload, Err: err.Error()}
	}
	return guestapi.Event{Kind: guestapi.KindUnload}
}

// Unload removes the module, retrying while it is busy.
func Unload(sys System, name string) error {
	var err error
	for range unloadRetries {
		if err = sys.UnloadModule(name); err == nil || !isBusy(err) {
			break
		}
		time.Sleep(unloadBackoff)
	}
	return err
}
