package guest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pidlab/pidlab/userspace/guestapi"
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
	// ProcEntries names what /proc holds besides the processes' folders.
	ProcEntries() []string
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

	mu      sync.Mutex // one event per line, whole, even from two goroutines
	enc     *json.Encoder
	mod     guestapi.ModuleRun // the module being tested
	created []string           // the /proc entries loading it created
}

// unloadRetries covers the short window after a test process exits in which
// its last file reference to the module may still be dropping.
const (
	unloadRetries = 50
	unloadBackoff = 100 * time.Millisecond
)

// outputGrace is how long output may trail the test binary's exit.
const outputGrace = 2 * time.Second

// Run tests each module of the manifest in turn (runModule) and reports
// Done. It returns an error only when the results channel fails;
// everything else is an event for the host to judge.
func (r *Runner) Run(ctx context.Context) error {
	r.enc = json.NewEncoder(r.Out)
	if err := r.emit(guestapi.Event{Kind: guestapi.KindStart, Kernel: r.Sys.Kernel(), Taint: r.taint()}); err != nil {
		return err
	}
	for _, m := range r.Manifest.Modules {
		if err := r.runModule(ctx, m); err != nil {
			return err
		}
	}
	return r.emit(guestapi.Event{Kind: guestapi.KindDone, Taint: r.taint()})
}

// runModule loads one module, runs its test binaries (reloading it between
// them when its manifest asks), unloads it, scans for what it leaked and
// reports ModuleDone. A module that fails to load or unload does not stop
// the next one: its name and its leaks are its own.
func (r *Runner) runModule(ctx context.Context, m guestapi.ModuleRun) error {
	r.mod, r.created = m, nil
	leaks := r.Sys.Leaks()
	if leaks != nil {
		// What boot or an earlier module leaked (or kmemleak thinks it
		// did) is not this module's.
		if err := leaks.Forget(); err != nil {
			r.emit(guestapi.Event{Kind: guestapi.KindLeaks, Err: err.Error()})
		}
	}
	before := r.Sys.ProcEntries()
	taint := r.taint()
	if err := r.Sys.LoadModule(m.Module); err != nil {
		r.emit(guestapi.Event{Kind: guestapi.KindLoad, Taint: taint, Err: err.Error()})
		return r.emit(guestapi.Event{Kind: guestapi.KindModuleDone, Taint: r.taint()})
	}
	r.created = createdEntries(before, r.Sys.ProcEntries())
	r.emit(guestapi.Event{Kind: guestapi.KindLoad, Taint: taint, Entries: r.created})
	for i, tb := range m.Tests {
		if i > 0 && m.Reload && !r.reload() {
			return r.emit(guestapi.Event{Kind: guestapi.KindModuleDone, Taint: r.taint()})
		}
		r.runTests(ctx, tb)
	}
	unload := r.unload()
	r.emit(unload)
	if leaks != nil && unload.Err == "" {
		r.emit(scanLeaks(leaks))
	}
	return r.emit(guestapi.Event{Kind: guestapi.KindModuleDone, Taint: r.taint()})
}

func scanLeaks(leaks LeakDetector) guestapi.Event {
	report, err := leaks.Scan()
	if err != nil {
		return guestapi.Event{Kind: guestapi.KindLeaks, Err: err.Error()}
	}
	return guestapi.Event{Kind: guestapi.KindLeaks, Line: report}
}

// emit sends ev, of the module being tested (none before the first).
func (r *Runner) emit(ev guestapi.Event) error {
	if ev.Kind != guestapi.KindStart && ev.Kind != guestapi.KindDone {
		ev.Module = r.mod.Name
	}
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

// runTests runs one test binary, forwarding its combined output line by
// line, and the failures and figures it records (guesttest.Fail,
// guesttest.Figure) on a file descriptor of their own (guestapi.RecordsFD)
// as data. It runs in a process group
// of its own, so that target processes a failed test left behind are
// killed with it and cannot hold its output open.
func (r *Runner) runTests(ctx context.Context, tb guestapi.TestBinary) {
	defer r.Sys.Mark(guestapi.NoTest) // a crash after the binary is not its last test's
	cmd, out, records, err := r.startTests(ctx, tb)
	if err != nil {
		r.emit(guestapi.Event{Kind: guestapi.KindTestExit, Binary: tb.Path, Err: err.Error()})
		return
	}
	forwarded := []<-chan struct{}{
		r.forward(out, func(line string) {
			r.emit(guestapi.Event{Kind: guestapi.KindTestOutput, Binary: tb.Path, Line: line})
		}),
		r.forward(records, func(line string) { r.emit(recordEvent(tb.Path, line)) }),
	}
	waitErr := cmd.Wait()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	drain(forwarded, outputGrace, out, records)
	out.Close()
	records.Close()
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

// startTests starts a test binary in a process group of its own, its
// combined output on the pipe out, its records on the pipe records (its
// file descriptor guestapi.RecordsFD).
func (r *Runner) startTests(ctx context.Context, tb guestapi.TestBinary) (cmd *exec.Cmd, out, records *os.File, err error) {
	out, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, err
	}
	records, recordsW, err := os.Pipe()
	if err != nil {
		out.Close()
		outW.Close()
		return nil, nil, nil, err
	}
	cmd = exec.CommandContext(ctx, tb.Path, tb.Args...)
	cmd.Env = append(os.Environ(), r.mod.Env...)
	cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", guestapi.RecordsEnv, guestapi.RecordsFD),
		guestapi.EnvProcCreated+"="+strings.Join(r.created, ","))
	cmd.Dir = "/tmp"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = outW, outW
	cmd.ExtraFiles = []*os.File{recordsW} // the first is fd 3: guestapi.RecordsFD
	err = cmd.Start()
	outW.Close()
	recordsW.Close()
	if err != nil {
		out.Close()
		records.Close()
		return nil, nil, nil, err
	}
	return cmd, out, records, nil
}

// drain waits for the forwarders to end; past grace it closes their
// pipes, whose write ends a leftover outside the group may still hold.
func drain(forwarded []<-chan struct{}, grace time.Duration, pipes ...*os.File) {
	timeout := time.After(grace)
	for _, done := range forwarded {
		select {
		case <-done:
		case <-timeout:
			for _, p := range pipes {
				p.Close()
			}
			<-done
		}
	}
}

// forward calls each for every line read from rd (without its newline)
// until rd ends, then closes the channel it returns.
func (r *Runner) forward(rd io.Reader, each func(line string)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		br := bufio.NewReader(rd)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				each(strings.TrimSuffix(line, "\n"))
			}
			if err != nil {
				return
			}
		}
	}()
	return done
}

// recordEvent is the event for one line a test binary wrote on
// RecordsFD; a line that is no Record is passed on as the binary's
// output, so that it is seen.
func recordEvent(binary, line string) guestapi.Event {
	var rec guestapi.Record
	err := json.Unmarshal([]byte(line), &rec)
	switch {
	case err == nil && rec.Failure != nil && rec.Failure.Test != "":
		return guestapi.Event{Kind: guestapi.KindFailure, Binary: binary, Failure: rec.Failure}
	case err == nil && rec.Figure != nil && rec.Figure.Test != "":
		return guestapi.Event{Kind: guestapi.KindFigure, Binary: binary, Figure: rec.Figure}
	}
	return guestapi.Event{Kind: guestapi.KindTestOutput, Binary: binary,
		Line: fmt.Sprintf("pidlab: not a failure or figure record on fd %d: %q", guestapi.RecordsFD, line)}
}

// createdEntries are the /proc entries of after that before did not have,
// as paths.
func createdEntries(before, after []string) []string {
	var created []string
	for _, name := range after {
		if !slices.Contains(before, name) {
			created = append(created, "/proc/"+name)
		}
	}
	return created
}

// reload gives the next test binary a freshly loaded module, so that every
// suite may check what a read before any write does. Only a failure is
// reported: as the unload or load event it is.
func (r *Runner) reload() bool {
	if ev := r.unload(); ev.Err != "" {
		r.emit(ev)
		return false
	}
	if err := r.Sys.LoadModule(r.mod.Module); err != nil {
		r.emit(guestapi.Event{Kind: guestapi.KindLoad, Err: "loading it again for the next test binary: " + err.Error()})
		return false
	}
	return true
}

func (r *Runner) unload() guestapi.Event {
	if err := Unload(r.Sys, r.mod.ModuleName); err != nil {
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
