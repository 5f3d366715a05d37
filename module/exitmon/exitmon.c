// SPDX-License-Identifier: GPL-2.0
/*
 * exitmon - every process exit, delivered to userspace.
 *
 * A kprobe on do_exit() counts thread exits: it fires once per thread. A
 * process exits when the last thread of its group does, which only
 * do_exit() itself knows exactly: it decrements signal->live without a
 * lock, so two threads exiting at once can both see themselves as last (or
 * neither) from a probe at its entry. do_exit() hands its own answer,
 * group_dead, to taskstats_exit(tsk, group_dead) right after setting
 * tsk->exit_code, so a second kprobe there records one event per process
 * exit: a multi-threaded process counts once, whichever thread is last.
 * That needs CONFIG_TASKSTATS (Debian's kernels have it).
 *
 * /proc/exitmon/events (0400: exits show other users' activity) gives each
 * open file every process exit from its open on, one line each:
 *
 *   pid=<tid> tgid=<pid> ppid=<pid> uid=<uid> status=<wait status>
 *   utime=<ticks> stime=<ticks> start_time=<ticks> exit_ns=<ns> comm=<comm>
 *
 * on one line, in this order: the last thread's ID, the process's, its
 * real parent's at exit (init's or a subreaper's for an orphan), the real
 * uid (in the reader's user namespace), the status wait(2) reports, the
 * whole group's CPU times and start time in clock ticks as in
 * /proc/<pid>/stat, the exit time in ns since boot (CLOCK_BOOTTIME), and
 * the leader's comm, non-printable bytes escaped as \ooo. IDs are those of
 * the initial PID namespace. Events wait in a ring of ring_size entries
 * shared by all readers; a reader that falls more than ring_size behind
 * reads "dropped=<n>" in place of the n events it lost, so that events read
 * plus dropped always equals the process exits since its open. read()
 * blocks until an event comes (O_NONBLOCK: EAGAIN), poll() reports
 * EPOLLIN; rmmod wakes blocked readers with end-of-file.
 *
 * /proc/exitmon/stats (0444) counts thread_exits, process_exits, dropped
 * (the events readers lost, counted as each reads its dropped= line),
 * readers and ring_size.
 *
 * Nothing in the probes sleeps or takes a lock that is ever held with
 * interrupts on: a kprobe's handler runs with preemption off (an optimized
 * or ftrace-based one) or in an int3 exception, which lockdep counts as a
 * hard interrupt.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/delay.h>
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/log2.h>
#include <linux/math64.h>
#include <linux/module.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/proc_fs.h>
#include <linux/ptrace.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/cputime.h>
#include <linux/sched/signal.h>
#include <linux/seq_file.h>
#include <linux/seqlock.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <linux/uidgid.h>
#include <linux/wait.h>

#define EXITMON_RING_MIN	16
#define EXITMON_RING_MAX	(1U << 20)
/* Room for the longest line: ten 20-digit numbers, their keys, a comm of
 * 15 bytes escaped to four each. */
#define EXITMON_LINE_MAX	384

static unsigned int ring_size = 4096;
module_param(ring_size, uint, 0444);
MODULE_PARM_DESC(ring_size, "events kept for slow readers, rounded up to a power of two (16..1048576)");

static bool log_exits;
module_param(log_exits, bool, 0644);
MODULE_PARM_DESC(log_exits, "pr_info() each process exit, rate-limited");

struct exitmon_event {
	pid_t pid, tgid, ppid;
	kuid_t uid;
	int status;
	u64 utime, stime, start_time;	/* clock ticks */
	u64 exit_ns;			/* CLOCK_BOOTTIME */
	char comm[TASK_COMM_LEN];
};

/*
 * The ring: event number n is in exitmon_ring[n & exitmon_mask]; head is
 * the number of the next one, so head is also the count of process exits.
 * Everything here is under exitmon_lock.
 */
static struct exitmon_event *exitmon_ring;
static u64 exitmon_mask;
static u64 exitmon_head;
static u64 exitmon_dropped;
static DEFINE_SPINLOCK(exitmon_lock);

static atomic64_t exitmon_thread_exits = ATOMIC64_INIT(0);
static atomic_t exitmon_readers = ATOMIC_INIT(0);
static DECLARE_WAIT_QUEUE_HEAD(exitmon_wait);
static bool exitmon_stopping;

static struct proc_dir_entry *exitmon_dir;

/* nsec_to_clock_t() is not exported: this is its definition. */
static u64 exitmon_ns_to_ticks(u64 ns)
{
#if (NSEC_PER_SEC % USER_HZ) == 0
	return div_u64(ns, NSEC_PER_SEC / USER_HZ);
#elif (USER_HZ % 512) == 0
	return div_u64(ns * USER_HZ / 512, NSEC_PER_SEC / 512);
#else
	return div_u64(ns * 9, (9ull * NSEC_PER_SEC + (USER_HZ / 2)) / USER_HZ);
#endif
}

/*
 * Whole-group CPU time as thread_group_cputime() collects it (that and
 * thread_group_cputime_adjusted() are not exported): reaped threads are
 * folded into sig->utime/stime under stats_lock, live ones are summed.
 */
static void exitmon_group_cputime(struct task_struct *task, u64 *ut, u64 *st)
{
	struct signal_struct *sig = task->signal;
	struct task_struct *t;
	unsigned long flags;
	int seq, nextseq = 0;
	u64 u, s;

	rcu_read_lock();
	do {
		seq = nextseq;
		flags = read_seqbegin_or_lock_irqsave(&sig->stats_lock, &seq);
		*ut = sig->utime;
		*st = sig->stime;
		for_each_thread(task, t) {
			task_cputime_adjusted(t, &u, &s);
			*ut += u;
			*st += s;
		}
		nextseq = 1;
	} while (need_seqretry(&sig->stats_lock, seq));
	done_seqretry_irqrestore(&sig->stats_lock, seq, flags);
	rcu_read_unlock();
}

static void exitmon_fill(struct exitmon_event *ev, struct task_struct *tsk)
{
	struct signal_struct *sig = tsk->signal;
	struct task_struct *leader = tsk->group_leader;
	u64 ut, st;

	ev->pid = task_pid_nr(tsk);
	ev->tgid = task_tgid_nr(tsk);
	rcu_read_lock();
	ev->ppid = task_tgid_nr(rcu_dereference(tsk->real_parent));
	ev->uid = __task_cred(tsk)->uid;
	rcu_read_unlock();
	/* What wait_task_zombie() will report. */
	ev->status = (sig->flags & SIGNAL_GROUP_EXIT) ? sig->group_exit_code : tsk->exit_code;
	exitmon_group_cputime(tsk, &ut, &st);
	ev->utime = exitmon_ns_to_ticks(ut);
	ev->stime = exitmon_ns_to_ticks(st);
	ev->start_time = exitmon_ns_to_ticks(leader->start_boottime);
	ev->exit_ns = ktime_get_boottime_ns();
	/*
	 * Not get_task_comm(): its task_lock() is taken with interrupts on
	 * elsewhere, and a kprobe handler may run in an int3 exception, which
	 * lockdep counts as a hard interrupt. A dead leader's comm no longer
	 * changes; a live one's is copied as ps reads it, without the lock.
	 */
	memcpy(ev->comm, leader->comm, sizeof(ev->comm));
	ev->comm[sizeof(ev->comm) - 1] = '\0';
}

static int exitmon_thread_exit(struct kprobe *p, struct pt_regs *regs)
{
	atomic64_inc(&exitmon_thread_exits);
	return 0;
}

/* taskstats_exit(struct task_struct *tsk, int group_dead) */
static int exitmon_group_exit(struct kprobe *p, struct pt_regs *regs)
{
	struct task_struct *tsk = (struct task_struct *)regs_get_kernel_argument(regs, 0);
	struct exitmon_event ev;
	unsigned long flags;

	if (!regs_get_kernel_argument(regs, 1))
		return 0;
	exitmon_fill(&ev, tsk);
	spin_lock_irqsave(&exitmon_lock, flags);
	exitmon_ring[exitmon_head & exitmon_mask] = ev;
	exitmon_head++;
	spin_unlock_irqrestore(&exitmon_lock, flags);
	wake_up_interruptible(&exitmon_wait);
	if (log_exits)
		pr_info_ratelimited("exit pid %d (%s) status %#x\n", ev.tgid, ev.comm, ev.status);
	return 0;
}

static struct kprobe exitmon_thread_probe = {
	.symbol_name	= "do_exit",
	.pre_handler	= exitmon_thread_exit,
};

static struct kprobe exitmon_group_probe = {
	.symbol_name	= "taskstats_exit",
	.pre_handler	= exitmon_group_exit,
};

static struct kprobe *exitmon_probes[] = {
	&exitmon_thread_probe,
	&exitmon_group_probe,
};

/* One open file of /proc/exitmon/events. */
struct exitmon_reader {
	struct mutex lock;	/* one read() at a time: the line and its offset */
	u64 next;		/* the number of the next event to read */
	char line[EXITMON_LINE_MAX];
	size_t len, off;	/* the line being read, and how much of it was */
};

static bool exitmon_pending(struct exitmon_reader *r)
{
	return READ_ONCE(r->off) < READ_ONCE(r->len) || READ_ONCE(exitmon_head) != READ_ONCE(r->next);
}

/*
 * Formats the reader's next line: the count of events it lost, or its next
 * event. False when none is waiting.
 */
static bool exitmon_next_line(struct exitmon_reader *r, struct user_namespace *ns)
{
	struct exitmon_event ev;
	unsigned long flags;
	u64 lost = 0;

	spin_lock_irqsave(&exitmon_lock, flags);
	if (r->next == exitmon_head) {
		spin_unlock_irqrestore(&exitmon_lock, flags);
		return false;
	}
	if (exitmon_head - r->next > exitmon_mask + 1) {
		lost = exitmon_head - (exitmon_mask + 1) - r->next;
		r->next += lost;
		exitmon_dropped += lost;
	} else {
		ev = exitmon_ring[r->next & exitmon_mask];
		r->next++;
	}
	spin_unlock_irqrestore(&exitmon_lock, flags);

	r->off = 0;
	if (lost) {
		r->len = scnprintf(r->line, sizeof(r->line), "dropped=%llu\n", lost);
		return true;
	}
	r->len = scnprintf(r->line, sizeof(r->line),
			   "pid=%d tgid=%d ppid=%d uid=%u status=%d utime=%llu stime=%llu start_time=%llu exit_ns=%llu comm=%*pE\n",
			   ev.pid, ev.tgid, ev.ppid, from_kuid_munged(ns, ev.uid), ev.status,
			   ev.utime, ev.stime, ev.start_time, ev.exit_ns,
			   (int)strnlen(ev.comm, sizeof(ev.comm)), ev.comm);
	return true;
}

static int exitmon_open(struct inode *inode, struct file *file)
{
	struct exitmon_reader *r;

	/* The mode says root only; this holds even if someone chmods it. */
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	r = kzalloc(sizeof(*r), GFP_KERNEL);
	if (!r)
		return -ENOMEM;
	mutex_init(&r->lock);
	spin_lock_irq(&exitmon_lock);
	r->next = exitmon_head;
	spin_unlock_irq(&exitmon_lock);
	file->private_data = r;
	atomic_inc(&exitmon_readers);
	return nonseekable_open(inode, file);
}

static int exitmon_release(struct inode *inode, struct file *file)
{
	kfree(file->private_data);
	atomic_dec(&exitmon_readers);
	return 0;
}

/*
 * Whole lines while they fit, then part of the next, whose rest the next
 * read() returns. A failed copy leaves the line where it was: nothing is
 * lost to a bad buffer.
 */
static ssize_t exitmon_read(struct file *file, char __user *buf, size_t count, loff_t *ppos)
{
	struct exitmon_reader *r = file->private_data;
	struct user_namespace *ns = file->f_cred->user_ns;
	size_t done = 0;
	int err = 0;

	if (mutex_lock_interruptible(&r->lock))
		return -ERESTARTSYS;
	while (done < count) {
		size_t n;

		if (r->off == r->len && !exitmon_next_line(r, ns)) {
			if (done || READ_ONCE(exitmon_stopping))
				break;
			if (file->f_flags & O_NONBLOCK) {
				err = -EAGAIN;
				break;
			}
			err = wait_event_interruptible(exitmon_wait,
						       exitmon_pending(r) || READ_ONCE(exitmon_stopping));
			if (err)
				break;
			continue;
		}
		n = min(count - done, r->len - r->off);
		if (copy_to_user(buf + done, r->line + r->off, n)) {
			err = -EFAULT;
			break;
		}
		r->off += n;
		done += n;
	}
	mutex_unlock(&r->lock);
	return done ? done : err;
}

static __poll_t exitmon_poll(struct file *file, poll_table *wait)
{
	struct exitmon_reader *r = file->private_data;

	poll_wait(file, &exitmon_wait, wait);
	if (exitmon_pending(r))
		return EPOLLIN | EPOLLRDNORM;
	if (READ_ONCE(exitmon_stopping))
		return EPOLLHUP;
	return 0;
}

static const struct proc_ops exitmon_events_ops = {
	.proc_open	= exitmon_open,
	.proc_read	= exitmon_read,
	.proc_poll	= exitmon_poll,
	.proc_release	= exitmon_release,
	.proc_lseek	= no_llseek,
};

static int exitmon_stats_show(struct seq_file *m, void *v)
{
	u64 process_exits, dropped;

	spin_lock_irq(&exitmon_lock);
	process_exits = exitmon_head;
	dropped = exitmon_dropped;
	spin_unlock_irq(&exitmon_lock);
	seq_printf(m, "thread_exits %lld\n", atomic64_read(&exitmon_thread_exits));
	seq_printf(m, "process_exits %llu\n", process_exits);
	seq_printf(m, "dropped %llu\n", dropped);
	seq_printf(m, "readers %d\n", atomic_read(&exitmon_readers));
	seq_printf(m, "ring_size %llu\n", exitmon_mask + 1);
	return 0;
}

/*
 * Readers blocked in read() or sleeping in poll() wait on exitmon_wait,
 * which goes with the module: wake them, let proc_remove() wait out the
 * read() and poll() calls in progress (later ones fail, the entry being
 * gone), then wait until poll()/select() sleepers have left the queue. An
 * epoll watcher stays on it until its epoll file is closed:
 * wake_up_pollfree() detaches it.
 */
static void exitmon_stop_readers(void)
{
	int tries;

	WRITE_ONCE(exitmon_stopping, true);
	wake_up_interruptible_all(&exitmon_wait);
	proc_remove(exitmon_dir);
	for (tries = 0; tries < 100 && waitqueue_active(&exitmon_wait); tries++) {
		wake_up_interruptible_all(&exitmon_wait);
		msleep(10);
	}
	wake_up_pollfree(&exitmon_wait);
}

static int __init exitmon_init(void)
{
	unsigned int size = clamp(ring_size, EXITMON_RING_MIN, EXITMON_RING_MAX);
	int err;

	size = roundup_pow_of_two(size);
	exitmon_ring = kvcalloc(size, sizeof(*exitmon_ring), GFP_KERNEL);
	if (!exitmon_ring)
		return -ENOMEM;
	exitmon_mask = size - 1;

	err = -ENOMEM;
	exitmon_dir = proc_mkdir("exitmon", NULL);
	if (!exitmon_dir)
		goto free_ring;
	if (!proc_create("events", 0400, exitmon_dir, &exitmon_events_ops) ||
	    !proc_create_single("stats", 0444, exitmon_dir, exitmon_stats_show))
		goto remove_dir;

	err = register_kprobes(exitmon_probes, ARRAY_SIZE(exitmon_probes));
	if (err) {
		pr_err("cannot probe do_exit and taskstats_exit (%d): the kernel needs CONFIG_KPROBES and CONFIG_TASKSTATS\n", err);
		goto remove_dir;
	}
	return 0;

remove_dir:
	proc_remove(exitmon_dir);
free_ring:
	kvfree(exitmon_ring);
	return err;
}

static void __exit exitmon_exit(void)
{
	/* No handler runs once this returns: the ring can go after it. */
	unregister_kprobes(exitmon_probes, ARRAY_SIZE(exitmon_probes));
	exitmon_stop_readers();
	kvfree(exitmon_ring);
}

module_init(exitmon_init);
module_exit(exitmon_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Every process exit, from a kprobe, in /proc/exitmon/events");
