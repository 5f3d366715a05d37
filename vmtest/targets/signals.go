package targets

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// stopSignals end a run early, through its context: the targets then kill
// QEMU and make, remove their temporary folders and exit 130. Mage's
// generated main cancels the context on SIGINT alone (and exits 1 if the
// target has not returned 5 s later, or at a second SIGINT); SIGTERM would
// kill the process on the spot, leaving make's jobs and QEMU's folder.
var (
	stopSignals     = make(chan os.Signal, 1)
	catchStopSignal sync.Once
)

// CatchStopSignals starts keeping SIGINT and SIGTERM for Interruptible.
// The magefile calls it at start, so that a signal that comes before a
// target runs is kept; a target calls it too, for any other caller.
func CatchStopSignals() {
	catchStopSignal.Do(func() { signal.Notify(stopSignals, os.Interrupt, syscall.SIGTERM) })
}

// Interruptible is ctx, cancelled also on SIGTERM (and on SIGINT, like
// mage's own).
func Interruptible(ctx context.Context) context.Context {
	CatchStopSignals()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-stopSignals:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx
}
