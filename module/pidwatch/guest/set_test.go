//go:build pidlab_guest

package guest

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

// requireErrno checks that err is want, naming the check.
func requireErrno(t *testing.T, check string, want unix.Errno, err error, hint string) {
	t.Helper()
	guesttest.Same(t, check, guesttest.ErrnoString(want), guesttest.ErrnoString(guesttest.Errno(err)), hint)
}

// The set's rules: a task added twice is EEXIST, a PID no task has ESRCH,
// removing what is not watched ENOENT; each refusal changes nothing.
func TestAddTwiceRemoveTwiceAndUnknownPIDs(t *testing.T) {
	guesttest.Mark(t)
	tg, other := sleeper(t), sleeper(t)
	requireAdd(t, tg.PID)
	set := entries(t)

	requireErrno(t, "adding a watched PID again", unix.EEXIST, add(tg.PID), "look the struct pid up in the set before adding it")
	requireErrno(t, "removing a PID never added", unix.ENOENT, remove(other.PID), "a PID whose task is not in the set is ENOENT")
	gone := sleeper(t)
	gone.Reap(t)
	requireErrno(t, "adding a PID no process has", unix.ESRCH, add(gone.PID), "find_vpid() and pid_task() find no task: ESRCH, as kill(2) says")
	requireErrno(t, "removing a PID no process has", unix.ENOENT, remove(gone.PID), "a PID whose task is not in the set is ENOENT")
	guesttest.Same(t, "the set after the refusals", fmt.Sprint(set), fmt.Sprint(entries(t)), "a refused add or remove changes nothing")

	require.NoError(t, remove(tg.PID), "remove a watched PID")
	guesttest.Same(t, "the entry after remove", false, hasEntry(tg.PID), "remove takes the entry away (proc_remove())")
	requireErrno(t, "removing it again", unix.ENOENT, remove(tg.PID), "a removed task is not in the set")
}

// Bad input on add and remove: EINVAL (EFAULT for a bad buffer), and the
// set as it was.
func TestHostileControlInput(t *testing.T) {
	guesttest.Mark(t)
	tg := sleeper(t)
	requireAdd(t, tg.PID)
	set := fmt.Sprint(entries(t))
	watched := stats(t)["watched"]
	pid := strconv.Itoa(tg.PID)
	inputs := []string{"", "\n", "abc", "0", "-1", "+-1", " " + pid, pid + " ", pid + "\n\n", pid + "x", "1 2", "0x10",
		"4194305", "2147483648", "99999999999999999999", "1\x002", "\x00", string(make([]byte, 33)), "1" + string(make([]byte, 40))}
	for _, path := range []string{addPath, removePath} {
		for _, in := range inputs {
			requireErrno(t, fmt.Sprintf("write %q to %s", in, path), unix.EINVAL, control(path, in),
				"one decimal PID in 1..PID_MAX_LIMIT, at most 32 bytes with one trailing newline: anything else is EINVAL")
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteAt([]byte(pid), 1)
		requireErrno(t, "pwrite of a PID at offset 1 to "+path, unix.EINVAL, err, "a PID comes whole at offset 0")
		_, _, errno := syscall.Syscall(syscall.SYS_WRITE, f.Fd(), 1, 5) // address 1: never mapped
		requireErrno(t, "write from an unmapped address to "+path, unix.EFAULT, errno, "copy_from_user() fails: EFAULT")
		f.Close()
	}
	guesttest.Same(t, "the set after bad input", set, fmt.Sprint(entries(t)), "bad input changes nothing")
	guesttest.Same(t, "stats: watched after bad input", watched, stats(t)["watched"], "bad input changes nothing")
}

// Only root changes the set: user nobody cannot open add or remove (0200),
// and where the mode lets it, the write is EPERM: the set is shared and
// bounded, so anyone able to fill it could blind everyone else.
func TestOnlyRootChangesTheSet(t *testing.T) {
	guesttest.Mark(t)
	tg := sleeper(t)
	path, err := targetPath()
	require.NoError(t, err)
	nobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	pid := strconv.Itoa(tg.PID)

	for _, file := range []string{addPath, removePath} {
		as := guesttest.StartTarget(t, path, nobody, "write", file, pid)
		guesttest.Same(t, "user nobody opens "+file+" for writing", "open="+strconv.Itoa(int(unix.EACCES)), as.Info[0], "mode 0200: root only")
	}
	for _, file := range []string{addPath, removePath} {
		require.NoError(t, os.Chmod(file, 0o222))
		t.Cleanup(func() { os.Chmod(file, 0o200) })
	}
	as := guesttest.StartTarget(t, path, nobody, "write", addPath, pid)
	guesttest.Same(t, "user nobody writes its PID to "+addPath+" made 0222", "write="+strconv.Itoa(int(unix.EPERM)), as.Info[1],
		"check the opener's capability (file_ns_capable(file, &init_user_ns, CAP_SYS_ADMIN)), not only the mode, which root can change")
	guesttest.Same(t, "the entry after nobody's add", false, hasEntry(tg.PID), "a refused add changes nothing")
	requireAdd(t, tg.PID)
	as = guesttest.StartTarget(t, path, nobody, "write", removePath, pid)
	guesttest.Same(t, "user nobody writes a PID to "+removePath+" made 0222", "write="+strconv.Itoa(int(unix.EPERM)), as.Info[1],
		"check the opener's capability in remove too")
	guesttest.Same(t, "the entry after nobody's remove", true, hasEntry(tg.PID), "a refused remove changes nothing")
}

// maxWatches is the module's bound on the set.
func maxWatches(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/sys/module/pidwatch/parameters/max_watches")
	require.NoError(t, err)
	n, err := strconv.Atoi(string(b[:len(b)-1]))
	require.NoError(t, err)
	return n
}

// The bound: max_watches processes watched, the next one is ENOSPC; one
// that exits leaves room; all of them killed at once each end with new=X
// and leave the set empty.
func TestTheBoundAndOnePast(t *testing.T) {
	guesttest.Mark(t)
	bound := maxWatches(t)
	tg := sleepers(t, bound)
	s := openStream(t)
	children := pids(t, tg)
	for _, pid := range children {
		requireAdd(t, pid)
	}
	guesttest.Same(t, "stats: watched at the bound", uint64(bound), stats(t)["watched"], "count each watch")
	requireErrno(t, fmt.Sprintf("adding a process past the bound of %d", bound), unix.ENOSPC, add(tg.PID),
		"refuse an add once max_watches tasks are watched: ENOSPC")
	guesttest.Same(t, "the entry of the refused process", false, hasEntry(tg.PID), "a refused add changes nothing")

	require.NoError(t, unix.Kill(children[0], unix.SIGKILL))
	s.waitFor(children[0], "X", "a killed and reaped process's last event is new=X")
	waitNoEntry(t, children[0], "after the process was reaped")
	requireAdd(t, tg.PID)

	tg.Reap(t) // its children die with it (PR_SET_PDEATHSIG), and init reaps them
	for _, pid := range children[1:] {
		s.waitFor(pid, "X", "every watched process that dies ends with new=X")
		s.requireChain(pid, "S")
	}
	s.waitFor(tg.PID, "X", "every watched process that dies ends with new=X")
	for _, pid := range children {
		waitNoEntry(t, pid, "after the process was reaped")
	}
	guesttest.Same(t, "stats: watched once all died", uint64(0), stats(t)["watched"], "a reaped task leaves the set")
	guesttest.Same(t, "dropped events", uint64(0), s.dropped, "the ring holds a whole set's exits")
}

// A watched process is reaped and its PID given to a new process at once
// (ns_last_pid): the entry never reads the new process, no event of the new
// process comes under the old watch, and adding the number again watches
// the new one.
func TestAReusedPIDIsNeverTheWatchedProcess(t *testing.T) {
	guesttest.Mark(t)
	old := sleeper(t)
	s := openStream(t)
	requireAdd(t, old.PID)
	oldStart := requireEntryRecord(t, old.PID).StartTime

	old.Reap(t)
	reuser := reuse(t, old.PID)
	if b, err := os.ReadFile(entryPath(old.PID)); err == nil {
		guesttest.FailNow(t, guestapi.Failure{Check: fmt.Sprintf("read %s once pid %d was reaped and given to a new process", entryPath(old.PID), old.PID),
			Expected: "ESRCH, or no entry", Got: string(b),
			Hint: "hold the watched task's struct pid (get_pid()), not its number: pid_task() of it is NULL once reaped, whoever has the number now"})
	} else if !errors.Is(err, unix.ESRCH) && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("read %s: %v", entryPath(old.PID), err)
	}
	s.waitFor(old.PID, "X", "the reaped process's last event is new=X")
	s.requireChain(old.PID, "S")

	require.NoError(t, unix.Kill(reuser.PID, unix.SIGSTOP))
	guesttest.WaitState(t, reuser.PID, "T")
	if evs := s.quiet(old.PID, quiet); len(evs) != 0 {
		guesttest.Fail(t, guestapi.Failure{Check: "events under the old watch after its PID went to a new process that stopped", Expected: "none", Got: fmt.Sprint(evs),
			Hint: "the watch ends with the process it was added for (new=X); it never follows the number"})
	}
	waitNoEntry(t, old.PID, "after the process was reaped")
	requireAdd(t, reuser.PID)
	rec := requireEntryRecord(t, reuser.PID)
	if rec.StartTime == oldStart && rec.State != "T" {
		t.Errorf("the new watch of %d reads the old process: %+v", reuser.PID, rec)
	}
	guesttest.Same(t, "the state of the new process's entry", "T", rec.State, "a new add watches the process that has the number now")
}

// reuse starts a sleeper with PID pid (just freed), by setting ns_last_pid
// to pid-1; it tries a few times in case another fork took the number.
func reuse(t *testing.T, pid int) *guesttest.Target {
	t.Helper()
	for range 5 {
		require.NoError(t, os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0))
		tg := sleeper(t)
		if tg.PID == pid {
			return tg
		}
		tg.Reap(t)
	}
	t.Fatalf("could not start a process with pid %d again", pid)
	return nil
}

// Adds and removes from several goroutines while the processes die: every
// answer is one of the rules' (0, EEXIST, ENOENT, ESRCH), and once all are
// dead the set is empty and stats agree with the folder.
func TestAddRemoveRacesWithExits(t *testing.T) {
	guesttest.Mark(t)
	const n, racers = 32, 4
	tg := sleepers(t, n)
	children := pids(t, tg)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	for r := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(r)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				pid := children[rng.Intn(n)]
				op, err := "add", add(pid)
				if rng.Intn(2) == 0 {
					op, err = "remove", remove(pid)
				}
				mu.Lock()
				answers[op+" "+guesttest.ErrnoString(guesttest.Errno(err))]++
				mu.Unlock()
			}
		}()
	}
	for _, pid := range children {
		time.Sleep(10 * time.Millisecond)
		require.NoError(t, unix.Kill(pid, unix.SIGKILL))
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("answers: %v", answers)
	allowed := []string{"add success", "add EEXIST (file exists)", "add ESRCH (no such process)",
		"remove success", "remove ENOENT (no such file or directory)"}
	for answer := range answers {
		assert.Contains(t, allowed, answer, "an add or remove racing with exits")
	}
	for _, pid := range children {
		waitNoEntry(t, pid, "once its process died")
	}
	left := entries(t)
	assert.Equal(t, uint64(len(left)), stats(t)["watched"], "stats: watched vs the entries %v", left)
	assert.False(t, slices.ContainsFunc(left, func(p int) bool { return slices.Contains(children, p) }), "entries of dead processes: %v", left)
}
