package guesttest

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/pidlab/pidlab/userspace/guestapi"
)

// records is where Fail and Figure record failures and figures for the
// runner: the file descriptor it names in guestapi.RecordsEnv; nil
// outside the runner.
var records = struct {
	once sync.Once
	mu   sync.Mutex
	f    *os.File
}{}

func recordsFile() *os.File {
	records.once.Do(func() {
		fd, err := strconv.Atoi(os.Getenv(guestapi.RecordsEnv))
		if err != nil || fd < 3 {
			return
		}
		// The runner hands the descriptor down open across exec; the
		// target processes the tests start must not hold it, or the
		// runner waits for them to let go of it.
		syscall.CloseOnExec(fd)
		records.f = os.NewFile(uintptr(fd), "pidlab-records")
	})
	return records.f
}

// Fail fails t with f: as data on the runner's records channel, for the
// host's report, and as the test's error message, for a person reading
// its output. f.Test is t's name.
func Fail(t testing.TB, f guestapi.Failure) {
	t.Helper()
	f.Test = t.Name()
	record(t, guestapi.Record{Failure: &f})
	t.Error(f.String())
}

// FailNow is Fail, then stops the test.
func FailNow(t testing.TB, f guestapi.Failure) {
	t.Helper()
	Fail(t, f)
	t.FailNow()
}

// Figure records what benchmark b measured, for the host's report and
// terminal, and logs it for a person reading b's output. A benchmark
// function runs more than once (b.N grows): the host keeps the last
// value of each name.
func Figure(b testing.TB, f guestapi.Figure) {
	b.Helper()
	f.Test = b.Name()
	record(b, guestapi.Record{Figure: &f})
	b.Logf("%s: %.4g %s (%s)", f.Name, f.Value, f.Unit, f.About)
}

func record(t testing.TB, rec guestapi.Record) {
	t.Helper()
	file := recordsFile()
	if file == nil {
		return
	}
	line, err := json.Marshal(rec)
	if err != nil {
		t.Errorf("pidlab: recording a result: %v", err)
		return
	}
	records.mu.Lock()
	defer records.mu.Unlock()
	if _, err := file.Write(append(line, '\n')); err != nil {
		t.Errorf("pidlab: recording a result: %v", err)
	}
}

// Same records a failure of check when got is not want, and says whether
// they were the same.
func Same[T comparable](t testing.TB, check string, want, got T, hint string) bool {
	t.Helper()
	if want != got {
		Fail(t, guestapi.Failure{Check: check, Expected: fmt.Sprint(want), Got: fmt.Sprint(got), Hint: hint})
		return false
	}
	return true
}

// Median is the median of xs, which it leaves as they are.
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
