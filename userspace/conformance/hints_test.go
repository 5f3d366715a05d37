//go:build pidlab_guest

package conformance

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A hint names the likely cause of a failure and its fix, in the terms of
// someone writing the module. A failed check records it as its failure's
// Hint (guesttest.Fail), which the host's report shows as it is. A hint is
// a guess from the symptom: it says "likely", the check says what was seen.
type hint string

// Hints for the record's fields, in the units and from the sources
// /proc/[pid]/stat uses (fs/proc/array.c).
const (
	hintPID = "pid is the task's own ID as the reader's PID namespace numbers it: " +
		"task_pid_nr_ns(task, task_active_pid_ns(current)); for a thread ID, that thread's ID, not its TGID"
	hintComm  = "comm is the task's own name: get_task_comm(buf, task) (at most 15 bytes), printed without parentheses"
	hintState = "state is one letter: task_state_to_char(task), not the raw __state number " +
		"(it also gives Z for a zombie and I for an idle kernel thread)"
	hintPPID = "ppid is the TGID of the real parent: task_ppid_nr_ns(task, ns), " +
		"or task->real_parent->tgid read under rcu_read_lock()"
	hintPPIDOwnTGID = "the module printed the task's own TGID, not its parent's: ppid: use task->real_parent->tgid " +
		"(task_ppid_nr_ns(task, ns)), read under rcu_read_lock()"
	hintPPIDTracer = "the module printed the tracer: task->parent is the tracer while the task is ptraced; " +
		"ppid is task->real_parent (task_ppid_nr_ns(task, ns))"
	hintIDs = "uid and gid are the real IDs from the task's credentials (not current's), in the reader's user namespace: " +
		"from_kuid_munged(current_user_ns(), task_cred_xxx(task, uid)), likewise from_kgid_munged for gid"
	hintIDsEffective = "the module printed the effective ID: uid and gid are the real ones, cred->uid and cred->gid, " +
		"not cred->euid and cred->egid"
	hintPriority = "priority is task->prio - MAX_RT_PRIO: 20 + nice for a normal task, -1 - rt_priority under SCHED_FIFO/SCHED_RR"
	hintNice     = "nice is task_nice(task), which is per thread: a thread ID has its own"
	hintCPUTime  = "utime and stime are clock ticks (USER_HZ, 100 per second) for the whole process: " +
		"task_cputime_adjusted() for each thread (for_each_thread under rcu_read_lock()), summed, " +
		"then div_u64(ns, NSEC_PER_SEC / USER_HZ)"
	hintCPUTimeNS = "utime/stime must be clock ticks (USER_HZ): the cputime is in ns — convert, " +
		"e.g. div_u64(ns, NSEC_PER_SEC / USER_HZ)"
	hintCPUTimeThreads = "utime and stime are the whole process's: sum task_cputime_adjusted() over every thread " +
		"(for_each_thread under rcu_read_lock()), not the leader's alone"
	hintStartTime = "start_time is clock ticks (USER_HZ) since boot: task->start_boottime, in ns, " +
		"converted with div_u64(ns, NSEC_PER_SEC / USER_HZ)"
	hintStartTimeNS = "start_time must be clock ticks (USER_HZ) since boot: task->start_boottime is in ns — " +
		"convert, e.g. div_u64(ns, NSEC_PER_SEC / USER_HZ)"
	hintVSize = "vsize is bytes: mm->total_vm << PAGE_SHIFT, with the mm from get_task_mm() " +
		"(0 when it returns NULL; mmput() after)"
	hintVSizePages = "vsize is bytes, and the module printed pages: shift mm->total_vm by PAGE_SHIFT"
	hintRSS        = "rss is pages: get_mm_rss(mm), with the mm from get_task_mm() (0 when it returns NULL; mmput() after)"
	hintRSSUnits   = "rss is pages, and the module printed bytes or KiB: print get_mm_rss(mm) as it is"
	hintThreads    = "threads is the process's thread count: get_nr_threads(task), the same for every thread of the process"
)

// nsPerTick is a USER_HZ tick in nanoseconds, as the guest kernel counts.
const nsPerTick = 10_000_000

// looksLikeNS reports whether got, which should be about ticks clock
// ticks, is rather the same time in nanoseconds.
func looksLikeNS(got, ticks uint64) bool {
	return got > (ticks+1)*nsPerTick/100
}

// cpuTimeHint diagnoses a CPU time that is off: in ns, or generally wrong.
func cpuTimeHint(got, ticks uint64) hint {
	if looksLikeNS(got, ticks) {
		return hintCPUTimeNS
	}
	return hintCPUTime
}

func startTimeHint(got, ticks uint64) hint {
	if looksLikeNS(got, ticks) {
		return hintStartTimeNS
	}
	return hintStartTime
}

func vsizeHint(got, bytes uint64) hint {
	if got != 0 && got*uint64(os.Getpagesize()) == bytes {
		return hintVSizePages
	}
	return hintVSize
}

func rssHint(got, pages uint64) hint {
	page := uint64(os.Getpagesize())
	if got != 0 && (got == pages*page || got == pages*page/1024) {
		return hintRSSUnits
	}
	return hintRSS
}

// ppidHint tells the two classic ppid mistakes apart by the number the
// module printed for id, a thread of process tgid: the task's own TGID,
// or its tracer's PID.
func ppidHint(got, want, id, tgid int) hint {
	switch {
	case got == want:
		return "" // no failure to explain
	case got == tgid:
		return hintPPIDOwnTGID
	case got != 0 && got == tracerPID(id):
		return hintPPIDTracer
	}
	return hintPPID
}

// idHint tells "effective instead of real" from other uid/gid mistakes;
// ids are the status line's real, effective, saved and filesystem IDs.
func idHint(got uint32, ids [4]uint32) hint {
	if got != ids[0] && got == ids[1] {
		return hintIDsEffective
	}
	return hintIDs
}

// tracerPID is TracerPid: from /proc/<pid>/status, 0 if it cannot be read.
func tracerPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// Hints for reading and writing /proc/pid.
const (
	hintReadNoEOF = "the read never reaches end of file: the handler ignores *ppos — use seq_file " +
		"(single_open() with .proc_read = seq_read, .proc_lseek = seq_lseek) or simple_read_from_buffer()"
	hintReadPos = "a read must honour count and *ppos and return 0 at end of file: use seq_file " +
		"(single_open() with .proc_read = seq_read, .proc_lseek = seq_lseek) or simple_read_from_buffer()"
	hintReadFault = "copy_to_user() returns the number of bytes it could not copy: return -EFAULT " +
		"(or the bytes copied) without moving *ppos past what the reader got; seq_read does it"
	hintRecordFormat = "print exactly the 14 \"key: value\" lines of the README, in its order, each ending in \\n"
	hintNoSelection  = "until a PID is written, the read must fail with -ENODATA: nothing is stored yet " +
		"(the stored struct pid is NULL)"
	hintReadExited = "get_pid_task(pid, PIDTYPE_PID) returns NULL once the process has exited and been reaped: " +
		"return -ESRCH"
	hintStorePid = "store the process, not the number: keep the struct pid from find_get_pid() " +
		"(a counted reference), and get the task from it at each read with get_pid_task()"
	hintReaderNS = "print the IDs as the reader's PID namespace sees them: pid_nr_ns(pid, ns) and task_ppid_nr_ns(task, ns) " +
		"with ns = task_active_pid_ns(current)"
	hintReaderNSInvisible = "pid_nr_ns(pid, task_active_pid_ns(current)) is 0 when the reader cannot see the process: " +
		"then return -ESRCH"
	hintWriterNS = "resolve the number in the writer's PID namespace: find_get_pid(nr) (find_vpid), " +
		"not find_pid_ns(nr, &init_pid_ns)"
	hintOneSnapshot = "format the whole record from one reference: take the stored struct pid once, under the lock, " +
		"with get_pid(), then print every field from it (seq_file keeps that snapshot for the rest of the read)"
	hintEntryMode    = "create the entry with proc_create(\"pid\", 0644, NULL, &ops)"
	hintEntryRemoved = "the exit function must remove the entry: remove_proc_entry(\"pid\", NULL) or proc_remove(entry)"
)

// Hints for writes.
const (
	hintWriteCount = "a successful write returns count, the number of bytes it consumed"
	hintWriteParse = "parse the whole write as one decimal int: copy it, NUL-terminate it, kstrtoint(buf, 10, &nr) " +
		"(it allows one trailing newline); reject an embedded NUL (strlen(buf) != count) " +
		"and nr outside 1..PID_MAX_LIMIT with -EINVAL"
	hintWriteLength = "bound count before copy_from_user(): a write of more than 32 bytes is -EINVAL"
	hintWritePos    = "a PID comes whole in one write(2) at offset 0: return -EINVAL when *ppos != 0"
	hintWriteNoPos  = "leave *ppos at 0 after a write, so that each write(2) is a selection of its own"
	hintWriteFault  = "copy_from_user() returns the number of bytes it could not copy: when that is not 0, return -EFAULT"
	hintWriteNoProc = "find_get_pid(nr) returns NULL when no process has that number in the writer's PID namespace: " +
		"return -ESRCH"
	hintWritePwrite = "the VFS refuses pwrite(2) only when the open file lacks FMODE_PWRITE: " +
		"open with single_open() (seq_file clears it)"
	hintWriteKeeps = "a rejected write must not change the selection: check everything first, " +
		"then replace the stored struct pid (put_pid() the old one) under the lock"
)

// badWriteHint is the likely cause of a bad write that got the wrong
// errno; errors the VFS gives before the module runs have none.
func badWriteHint(bw badWrite) hint {
	switch {
	case bw.hint != "":
		return bw.hint
	case bw.want == unix.EINVAL && len(bw.text) > writeMax:
		return hintWriteLength
	case bw.want == unix.EINVAL:
		return hintWriteParse
	case bw.want == unix.ESRCH:
		return hintWriteNoProc
	case bw.want == unix.EFAULT:
		return hintWriteFault
	case bw.want == unix.ESPIPE:
		return hintWritePwrite
	}
	return ""
}
