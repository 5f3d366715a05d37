//go:build pidlab_guest

package guest

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pidlab/pidlab/userspace/guestapi"
	"github.com/pidlab/pidlab/userspace/guesttest"
)

// siUser is si_code SI_USER: a signal sent by kill() from a process.
const siUser = 0

const exitSignalHint = "when the requesting process exits (taskstats_exit's group_dead, or the last thread's do_exit), " +
	"send the signal with kill_pid(target, sig, 0) from the exiting task: si_pid is then its PID, si_code SI_USER"

// received is a signal the control station reported.
type received struct {
	Signo, From, Code int
}

func (r received) String() string {
	return fmt.Sprintf("signal %d from %d (si_code %d)", r.Signo, r.From, r.Code)
}

// orNone says what came: the signal, or none.
func (r received) orNone(ok bool) string {
	if !ok {
		return "no signal"
	}
	return r.String()
}

// parseReceived parses the station's "signal <signo> <pid> <code>" or
// "none".
func parseReceived(t *testing.T, words []string) (received, bool) {
	t.Helper()
	if len(words) == 1 && words[0] == "none" {
		return received{}, false
	}
	require.Len(t, words, 4, "signal <signo> <pid> <code>: %q", words)
	return received{atoi(t, words[1]), atoi(t, words[2]), atoi(t, words[3])}, true
}

// The soldiers and the control station: each soldier asks for SIGUSR1 to
// its parent when it exits; two threads of each exit first, which is not
// the soldier's exit; then the soldiers exit one by one, and the station
// gets one signal per exit, each from the soldier that exited, and no
// more.
func TestControlStationGetsOneSignalPerExit(t *testing.T) {
	guesttest.Mark(t)
	station := startDriven(t, nil, "station", "5", fmt.Sprint(int(unix.SIGUSR1)))
	if got, ok := parseReceived(t, station.ask("quiet 300")); ok {
		guesttest.FailNow(t, guestapi.Failure{Check: "the control station after each soldier's threads exited, before any soldier did",
			Expected: "no signal", Got: got.String(), Hint: "a thread's exit is not its process's: signal when group_dead (the last thread) exits"})
	}
	for _, word := range station.Info {
		soldier := atoi(t, word)
		got, ok := parseReceived(t, station.ask("release %d", soldier))
		want := received{int(unix.SIGUSR1), soldier, siUser}
		if !ok {
			guesttest.FailNow(t, guestapi.Failure{Check: fmt.Sprintf("the control station after soldier %d exited", soldier),
				Expected: want.String(), Got: "no signal within 20 s", Hint: exitSignalHint})
		}
		guesttest.Same(t, fmt.Sprintf("the signal for soldier %d's exit", soldier), want, got, exitSignalHint)
	}
	got, ok := parseReceived(t, station.ask("quiet 500"))
	if ok {
		guesttest.Fail(t, guestapi.Failure{Check: "the control station after every soldier's signal", Expected: "no more signals",
			Got: got.String(), Hint: "one signal per process exit: a request is used once"})
	}
}

// Real-time signals queue, so soldiers that all exit at once are each
// counted: exactly one signal from each.
func TestControlStationCountsSoldiersExitingTogether(t *testing.T) {
	guesttest.Mark(t)
	const soldiers = 12
	const sig = 40 // a real-time signal: glibc keeps 32 and 33, SIGRTMIN is 34
	station := startDriven(t, nil, "station", fmt.Sprint(soldiers), fmt.Sprint(sig))
	want := make([]int, 0, soldiers)
	for _, word := range station.Info {
		want = append(want, atoi(t, word))
	}
	station.send("release-all")
	var from []int
	for range soldiers {
		got, ok := parseReceived(t, strings.Fields(station.reply("release-all")))
		if !ok {
			break
		}
		guesttest.Same(t, "the signal number and code", fmt.Sprint(sig, " ", siUser), fmt.Sprint(got.Signo, " ", got.Code), exitSignalHint)
		from = append(from, got.From)
	}
	slices.Sort(from)
	slices.Sort(want)
	guesttest.Same(t, fmt.Sprintf("senders of the signals after %d soldiers exited together", soldiers), fmt.Sprint(want), fmt.Sprint(from), exitSignalHint)
}

// "Or a given PID": a process asks for a signal to a process other than
// its parent.
func TestExitSignalToAGivenProcess(t *testing.T) {
	guesttest.Mark(t)
	station := startDriven(t, nil, "station", "1", fmt.Sprint(int(unix.SIGUSR2)))
	other := startDriven(t, nil, "mem")
	errno := other.askErrno("exitsig %d %d", station.PID, int(unix.SIGUSR2))
	require.Equal(t, guesttest.ErrnoString(0), guesttest.ErrnoString(errno), "TASKPEEK_EXIT_SIGNAL to the station")
	other.close()
	got, ok := parseReceived(t, station.ask("quiet 20000"))
	want := received{int(unix.SIGUSR2), other.PID, siUser}
	if !ok {
		guesttest.FailNow(t, guestapi.Failure{Check: fmt.Sprintf("process %d after process %d, which asked to signal it, exited", station.PID, other.PID),
			Expected: want.String(), Got: "no signal within 20 s", Hint: exitSignalHint})
	}
	guesttest.Same(t, "the signal of a process that is not the parent", want, got, exitSignalHint)
}

// A request to signal a process the caller may not signal is refused,
// by kill(2)'s rules; a process of the same user may be signalled.
func TestExitSignalFollowsKillsPermissions(t *testing.T) {
	guesttest.Mark(t)
	nobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	asker := startDriven(t, nobody, "mem")
	peer := startDriven(t, nobody, "mem")
	hint := "check as kill(2) does: the caller's uid or euid is the target's uid or saved uid, or the caller has CAP_KILL in the target's user namespace"
	for _, tc := range []struct {
		what  string
		pid   int
		errno syscall.Errno
	}{
		{"init (root's)", 1, unix.EPERM},
		{"its parent, this test (root's)", 0, unix.EPERM},
		{fmt.Sprintf("process %d of the same user", peer.PID), peer.PID, 0},
	} {
		errno := asker.askErrno("exitsig %d %d", tc.pid, int(unix.SIGUSR1))
		guesttest.Same(t, fmt.Sprintf("TASKPEEK_EXIT_SIGNAL by uid 65534 to %s", tc.what), guesttest.ErrnoString(tc.errno), guesttest.ErrnoString(errno), hint)
	}
}

// alive checks that a mem helper still answers: SIGUSR1 would have
// ended it (its default action).
func alive(t *testing.T, d *driven, check, hint string) {
	t.Helper()
	require.NoError(t, unix.Kill(d.PID, 0), "process %d", d.PID)
	if _, err := fmt.Fprintln(d.in, "read 0x0 0"); err == nil {
		select {
		case line, ok := <-d.lines:
			if ok && line == "ok 0" {
				return
			}
		case <-time.After(replyTimeout):
		}
	}
	var ws syscall.WaitStatus
	if err := d.cmd.Wait(); err != nil {
		ws = d.cmd.ProcessState.Sys().(syscall.WaitStatus)
	}
	guesttest.FailNow(t, guestapi.Failure{Check: check, Expected: fmt.Sprintf("process %d alive", d.PID),
		Got: fmt.Sprintf("it ended: %v", ws), Hint: hint})
}

// A request is the process's one: a new one replaces it, signal 0 cancels
// it, and an exec drops it. Each would otherwise SIGUSR1 the peer, ending
// it.
func TestExitSignalIsReplacedCancelledAndDroppedAtExec(t *testing.T) {
	guesttest.Mark(t)
	station := startDriven(t, nil, "station", "1", fmt.Sprint(int(unix.SIGUSR2)))
	peer := startDriven(t, nil, "mem")
	usr1 := int(unix.SIGUSR1)

	replaced := startDriven(t, nil, "mem")
	require.Zero(t, replaced.askErrno("exitsig %d %d", peer.PID, usr1))
	require.Zero(t, replaced.askErrno("exitsig %d %d", station.PID, int(unix.SIGUSR2)))
	replaced.close()
	got, ok := parseReceived(t, station.ask("quiet 20000"))
	guesttest.Same(t, "the station's signal after a request was replaced by one for it", received{int(unix.SIGUSR2), replaced.PID, siUser}.String(), got.orNone(ok),
		"a new request replaces the process's old one")
	alive(t, peer, "the peer after the request to signal it was replaced", "a process has one request: the new one replaces the old")

	cancelled := startDriven(t, nil, "mem")
	require.Zero(t, cancelled.askErrno("exitsig %d %d", peer.PID, usr1))
	guesttest.Same(t, "TASKPEEK_EXIT_SIGNAL with signal 0 (cancel)", guesttest.ErrnoString(0), guesttest.ErrnoString(cancelled.askErrno("exitsig 0 0")), "signal 0 cancels")
	cancelled.close()
	alive(t, peer, "the peer after the request to signal it was cancelled", "signal 0 cancels the caller's request")

	execed := startDriven(t, nil, "mem")
	require.Zero(t, execed.askErrno("exitsig %d %d", peer.PID, usr1))
	execed.send("exec")
	require.NoError(t, execed.cmd.Wait(), "the helper after exec exits")
	alive(t, peer, "the peer after a process that asked to signal it exec'd and exited",
		"an exec drops the request (compare current->self_exec_id): a set-user-ID program would send it with powers the asker never had")
}
