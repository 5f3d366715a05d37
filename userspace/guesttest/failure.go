package guesttest

import (
	"encoding/json"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/pidlab/pidlab/userspace/guestapi"
)

// failures is where Fail records failures for the runner: the file
// descriptor it names in guestapi.FailuresEnv; nil outside the runner.
var failures = struct {
	once sync.Once
	mu   sync.Mutex
	f    *os.File
}{}

func failuresFile() *os.File {
	failures.once.Do(func() {
		fd, err := strconv.Atoi(os.Getenv(guestapi.FailuresEnv))
		if err != nil || fd < 3 {
			return
		}
		// The runner hands the descriptor down open across exec; the
		// target processes the tests start must not hold it, or the
		// runner waits for them to let go of it.
		syscall.CloseOnExec(fd)
		failures.f = os.NewFile(uintptr(fd), "pidlab-failures")
	})
	return failures.f
}

// Fail fails t with f: as data on the runner's failures channel, for the
// host's report, and as the test's error message, for a person reading
// its output. f.Test is t's name.
func Fail(t testing.TB, f guestapi.Failure) {
	t.Helper()
	f.Test = t.Name()
	record(t, f)
	t.Error(f.String())
}

// FailNow is Fail, then stops the test.
func FailNow(t testing.TB, f guestapi.Failure) {
	t.Helper()
	Fail(t, f)
	t.FailNow()
}

func record(t testing.TB, f guestapi.Failure) {
	t.Helper()
	file := failuresFile()
	if file == nil {
		return
	}
	line, err := json.Marshal(f)
	if err != nil {
		t.Errorf("pidlab: recording the failure: %v", err)
		return
	}
	failures.mu.Lock()
	defer failures.mu.Unlock()
	if _, err := file.Write(append(line, '\n')); err != nil {
		t.Errorf("pidlab: recording the failure: %v", err)
	}
}
