//go:build pidlab_guest

package conformance

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/procfs"
)

// raceRounds is how many processes TestSpawnWriteKillReadRace starts,
// selects, kills and reads.
const raceRounds = 1000

func TestSpawnWriteKillReadRace(t *testing.T) {
	markTest(t)
	// Each round starts a target, selects it, kills it, and reads while a
	// goroutine reaps it, so the read races the exit and the reaping. It
	// must give the whole record of that very process (still running,
	// exiting or a zombie) or ESRCH (reaped): never another process's
	// record, never a torn one. Once the target is reaped, the read is
	// ESRCH for certain, and the number has not been given to anyone else.
	null, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer null.Close()
	// No pipe and no ready line: os.StartProcess returns once the exec
	// has begun, so the process exists (see raceRound for its comm).
	attr := &os.ProcAttr{Files: []*os.File{null, null, null}}
	comms := []string{targetComm, requireStat(t, os.Getpid()).Comm}
	noNewKernelWarning(t)

	outcomes := map[string]int{}
	begin := time.Now()
	for round := range raceRounds {
		outcome := raceRound(t, round, attr, comms)
		if t.Failed() {
			break
		}
		outcomes[outcome]++
	}
	elapsed := time.Since(begin)
	t.Logf("%d rounds in %v (%.0f rounds/s); reads during the race: %v",
		raceRounds, elapsed.Round(time.Millisecond), float64(raceRounds)/elapsed.Seconds(), outcomes)
}

// raceRound is one round of TestSpawnWriteKillReadRace; it returns what
// the racing read saw: a state letter, or "ESRCH". comms are the names
// the target may have: its own, or the test's until its exec sets it.
func raceRound(t *testing.T, round int, attr *os.ProcAttr, comms []string) string {
	t.Helper()
	p, err := os.StartProcess(targetPath, []string{targetPath, "sleep"}, attr)
	require.NoError(t, err, "round %d: start %s sleep", round, targetPath)
	pid := p.Pid
	reaped := make(chan struct{})
	reaping := false
	defer func() { // also when a require below fails
		if !reaping {
			p.Kill()
			p.Wait()
			return
		}
		<-reaped
	}()

	require.NoError(t, writePID(t, pid), "round %d: write %d, a live, unreaped child", round, pid)
	require.NoError(t, p.Kill(), "round %d: kill %d", round, pid)
	reaping = true
	go func() {
		p.Wait()
		close(reaped)
	}()

	raw, err := readRaw()
	outcome := "ESRCH"
	if err != nil {
		requireErrorIs(t, err, unix.ESRCH, readHint(err, ""), "round %d: read racing the exit of pid %d: only ESRCH may fail it", round, pid)
	} else {
		rec, err := procfs.ParseRecord(raw)
		requireNoError(t, err, hintOneSnapshot, "round %d: record of pid %d read while it exits is torn or malformed:\n%s", round, pid, raw)
		requireEqual(t, pid, rec.PID, hintStorePid, "round %d: pid in the record read while pid %d exits: another process's record", round, pid)
		// os.StartProcess returns when the child's exec has released the
		// parent's memory (vfork), a moment before exec sets the comm.
		assert.Contains(t, comms, rec.Comm, "round %d: comm of pid %d", round, pid)
		if rec.State == "X" {
			// Being reaped: unhashed, so task_ppid_nr_ns() gives 0 (as
			// /proc/<pid>/stat would) once its pid is detached.
			checkThat(t, rec.PPID == os.Getpid() || rec.PPID == 0, fmt.Sprintf("%d or 0", os.Getpid()), fmt.Sprint(rec.PPID),
				ppidHint(rec.PPID, os.Getpid(), pid, pid), "round %d: ppid of pid %d in state X", round, pid)
		} else {
			checkEqual(t, os.Getpid(), rec.PPID, ppidHint(rec.PPID, os.Getpid(), pid, pid),
				"round %d: ppid of pid %d in state %s", round, pid, rec.State)
		}
		outcome = rec.State
	}

	<-reaped
	_, err = readRaw()
	requireErrorIs(t, err, unix.ESRCH, readHint(err, hintReadExited), "round %d: read after pid %d was reaped", round, pid)
	return outcome
}

func TestConcurrentWritersAndReaders(t *testing.T) {
	markTest(t)
	// Writers switch the selection between targets with distinct comms as
	// fast as they can, with a rejected write now and then; readers read
	// whole records in chunks of different sizes. Every record must be
	// complete and of one process: its pid one that was written, and every
	// other field that process's. A record mixed from two processes shows
	// as a comm or start time that belongs to another pid. Half the
	// writers and readers keep one descriptor (a write at position 0 is a
	// new selection; lseek to 0 starts a new record), which makes them
	// several times faster than those that open and close each time.
	const (
		writers, readers = 4, 4
		targetsPerWriter = 2
		duration         = 3 * time.Second
	)
	type facts struct {
		comm      string
		startTime uint64
	}
	known := map[int]facts{}
	own := make([][]int, writers)
	for w := range writers {
		for k := range targetsPerWriter {
			comm := fmt.Sprintf("pidlab-w%d-%d", w, k)
			tg := startTarget(t, "comm", comm)
			st := requireStat(t, tg.PID)
			require.Equal(t, comm, st.Comm, "comm of target %d (precondition)", tg.PID)
			known[tg.PID] = facts{comm, st.StartTime}
			own[w] = append(own[w], tg.PID)
		}
	}
	gone := startTarget(t, "sleep")
	gone.Reap(t)
	requireWritePID(t, own[0][0])
	noNewKernelWarning(t)

	// Goroutines use assert (safe from any goroutine) and stop at their
	// first failure, so one bug does not print thousands of lines.
	deadline := time.Now().Add(duration)
	writes := make([]int, writers)
	reads := make([]int, readers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			write := writeRaw
			if w%2 == 0 {
				fd, err := openModule(unix.O_WRONLY)
				if !assert.NoError(t, err, "writer %d", w) {
					return
				}
				defer unix.Close(fd)
				write = func(b []byte) (int, error) { return unix.Write(fd, b) }
			}
			for i := 0; time.Now().Before(deadline); i++ {
				if i%5 == 4 {
					// Rejected writes race the others and change nothing.
					text, want := "0\n", unix.EINVAL
					if i%10 == 9 {
						text, want = strconv.Itoa(gone.PID)+"\n", unix.ESRCH
					}
					_, err := write([]byte(text))
					if !assert.ErrorIs(t, err, want, "writer %d, write %d: write(%q)", w, i, text) {
						return
					}
					continue
				}
				pid := own[w][i%targetsPerWriter]
				text := strconv.Itoa(pid) + "\n"
				n, err := write([]byte(text))
				if !assert.NoError(t, err, "writer %d, write %d: write(%q)", w, i, text) ||
					!assert.Equal(t, len(text), n, "writer %d, write %d: return value of write(%q)", w, i, text) {
					return
				}
				writes[w]++
			}
		}()
	}
	chunks := []int{4096, 1, 7, 64}
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chunk := chunks[r%len(chunks)]
			read := func() ([]byte, error) { return readRawBy(chunk) }
			if r%2 == 0 {
				fd, err := openModule(unix.O_RDONLY)
				if !assert.NoError(t, err, "reader %d", r) {
					return
				}
				defer unix.Close(fd)
				read = func() ([]byte, error) {
					if _, err := unix.Seek(fd, 0, unix.SEEK_SET); err != nil {
						return nil, err
					}
					return readAll(fd, chunk)
				}
			}
			for i := 0; time.Now().Before(deadline); i++ {
				what := fmt.Sprintf("reader %d (%d-byte reads), read %d", r, chunk, i)
				raw, err := read()
				if !assert.NoError(t, err, "%s", what) {
					return
				}
				rec, err := procfs.ParseRecord(raw)
				if !checkNoError(t, err, hintOneSnapshot, "%s: torn or malformed record:\n%s", what, raw) {
					return
				}
				want, ok := known[rec.PID]
				if !assert.True(t, ok, "%s: pid %d was never written; record:\n%s", what, rec.PID, raw) {
					return
				}
				if !checkEqual(t, want.comm, rec.Comm, hintOneSnapshot, "%s: comm of pid %d: a record mixed from two processes?\n%s", what, rec.PID, raw) ||
					!checkEqual(t, want.startTime, rec.StartTime, hintOneSnapshot, "%s: start_time of pid %d: a record mixed from two processes?\n%s", what, rec.PID, raw) ||
					!checkEqual(t, os.Getpid(), rec.PPID, ppidHint(rec.PPID, os.Getpid(), rec.PID, rec.PID), "%s: ppid of pid %d", what, rec.PID) ||
					!assert.Equal(t, "S", rec.State, "%s: state of pid %d, asleep in pause()", what, rec.PID) ||
					!assert.Equal(t, 1, rec.Threads, "%s: threads of pid %d", what, rec.PID) {
					return
				}
				reads[r]++
			}
		}()
	}
	wg.Wait()
	t.Logf("in %v: good writes per writer %v, whole records per reader (chunks %v) %v", duration, writes, chunks, reads)
	if !t.Failed() {
		for r, n := range reads {
			assert.Positive(t, n, "records read by reader %d in %v", r, duration)
		}
	}
}
