// SPDX-License-Identifier: GPL-2.0
/*
 * procpid - /proc/pid: write a PID, read that process's facts.
 *
 * Write a decimal ID (at most 32 bytes, one trailing newline allowed, at
 * offset 0) to select a task in the writer's PID namespace. Read 14
 * "key: value" lines in the units of /proc/[pid]/stat. Every value is
 * computed at read time from a counted struct pid, so a stored selection
 * can never come to name another process after PID reuse.
 *
 * The values match /proc/<id>/stat (uid, gid: the first column of
 * /proc/<id>/status) for the same ID, seen from the reader's PID and user
 * namespaces; a task the reader's PID namespace cannot see reads -ESRCH.
 * For a non-leader thread ID that is the thread's own comm, state,
 * priority, nice and start time, but whole-process utime and stime:
 * proc_pid_lookup() finds any task by ID and gives it the tgid entries,
 * whose "stat" is do_task_stat(..., whole = 1). Only
 * /proc/<pid>/task/<tid>/stat reports per-thread CPU times.
 *
 * Tolerances, because the kernel helpers are not exported to modules:
 *  - utime/stime: thread_group_cputime_adjusted() is not exported, so the
 *    group total is the sum of task_cputime_adjusted() over live threads
 *    plus the raw totals of reaped threads (signal_struct), read under
 *    sig->stats_lock exactly as thread_group_cputime() does. The kernel
 *    scales the whole group at once, so the split between utime and stime
 *    can differ from stat by a few ticks, and as each is truncated to ticks
 *    on its own, utime + stime can differ by one. Compare against stat read
 *    before and after, with that slack, not exactly.
 *  - comm: stat shows a kernel thread's full name (workqueue workers as
 *    "kworker/0:1-events"); get_kthread_comm() and wq_worker_comm() are
 *    not exported, so kernel threads show the 15-character task comm.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cred.h>
#include <linux/kernel.h>
#include <linux/math64.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pid.h>
#include <linux/pid_namespace.h>
#include <linux/proc_fs.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/cputime.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/seq_file.h>
#include <linux/seqlock.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/threads.h>
#include <linux/uaccess.h>
#include <linux/uidgid.h>
#include <linux/version.h>

#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 6, 0)
#include <linux/time_namespace.h>
#endif

#define PROCPID_NAME		"pid"
#define PROCPID_MODE		0644
#define PROCPID_WRITE_MAX	32

/* The selected task's pid; NULL until the first successful write. */
static struct pid *procpid_pid;
static DEFINE_SPINLOCK(procpid_lock);

/* nsec_to_clock_t() is not exported: this is its definition. */
static u64 procpid_ns_to_ticks(u64 ns)
{
#if (NSEC_PER_SEC % USER_HZ) == 0
	return div_u64(ns, NSEC_PER_SEC / USER_HZ);
#elif (USER_HZ % 512) == 0
	return div_u64(ns * USER_HZ / 512, NSEC_PER_SEC / 512);
#else
	return div_u64(ns * 9, (9ull * NSEC_PER_SEC + (USER_HZ / 2)) / USER_HZ);
#endif
}

/* Boot-based start time as seen from the reader's time namespace. */
static u64 procpid_start_ns(const struct task_struct *task)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 6, 0)
	return timens_add_boottime_ns(task->start_boottime);
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(5, 5, 0)
	return task->start_boottime;
#else
	return task->real_start_time;
#endif
}

/*
 * Whole-process CPU time, as thread_group_cputime() collects it: reaped
 * threads are folded into sig->utime/stime and unhashed under stats_lock,
 * so the seqlock retry (lockless first, then locked) neither misses nor
 * double-counts a thread that exits meanwhile. Nothing here sleeps.
 */
static void procpid_group_cputime(struct task_struct *task, u64 *ut, u64 *st)
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

static int procpid_show(struct seq_file *m, void *v)
{
	/* The reader's view: its PID and user namespaces, like /proc. */
	struct pid_namespace *ns = task_active_pid_ns(current);
	struct user_namespace *user_ns = current_user_ns();
	unsigned long vsize = 0, rss = 0;
	char comm[TASK_COMM_LEN];
	struct task_struct *task;
	const struct cred *cred;
	struct mm_struct *mm;
	u64 utime, stime;
	struct pid *pid;
	uid_t uid;
	gid_t gid;
	pid_t nr;
	int ret = 0;

	spin_lock(&procpid_lock);
	pid = get_pid(procpid_pid);
	spin_unlock(&procpid_lock);
	if (!pid)
		return -ENODATA;

	/* Still attached until the zombie is reaped, so zombies read "Z". */
	task = get_pid_task(pid, PIDTYPE_PID);
	if (!task) {
		ret = -ESRCH;
		goto out_put_pid;
	}

	/* A task outside the reader's namespace does not exist for it. */
	nr = pid_nr_ns(pid, ns);
	if (!nr) {
		ret = -ESRCH;
		goto out_put_task;
	}

	get_task_comm(comm, task);

	rcu_read_lock();
	cred = __task_cred(task);
	uid = from_kuid_munged(user_ns, cred->uid);
	gid = from_kgid_munged(user_ns, cred->gid);
	rcu_read_unlock();

	procpid_group_cputime(task, &utime, &stime);

	/* NULL for kernel threads and once the task has exited its mm. */
	mm = get_task_mm(task);
	if (mm) {
		vsize = READ_ONCE(mm->total_vm) << PAGE_SHIFT;
		rss = get_mm_rss(mm);
		mmput(mm);
	}

	/* task_state_to_char() hides the 5.14 state -> __state rename. */
	seq_printf(m,
		   "pid: %d\ncomm: %s\nstate: %c\nppid: %d\nuid: %u\ngid: %u\n"
		   "priority: %d\nnice: %d\nutime: %llu\nstime: %llu\n"
		   "start_time: %llu\nvsize: %lu\nrss: %lu\nthreads: %d\n",
		   nr, comm, task_state_to_char(task),
		   task_ppid_nr_ns(task, ns), uid, gid,
		   READ_ONCE(task->prio) - MAX_RT_PRIO, task_nice(task),
		   procpid_ns_to_ticks(utime), procpid_ns_to_ticks(stime),
		   procpid_ns_to_ticks(procpid_start_ns(task)),
		   vsize, rss, get_nr_threads(task));

out_put_task:
	put_task_struct(task);
out_put_pid:
	put_pid(pid);
	return ret;
}

static int procpid_open(struct inode *inode, struct file *file)
{
	return single_open(file, procpid_show, NULL);
}

/*
 * A PID must arrive whole in one write at offset 0, so a write at a file
 * position other than 0 (after lseek() or a read on an O_RDWR descriptor)
 * is -EINVAL: there is no earlier part to continue. pwrite() never gets
 * here; seq_open() clears FMODE_PWRITE, so the VFS answers -ESPIPE.
 * *ppos is left alone: each write(2) on a descriptor is a new selection.
 */
static ssize_t procpid_write(struct file *file, const char __user *ubuf,
			     size_t count, loff_t *ppos)
{
	struct pid *new = NULL, *old, *pid;
	char buf[PROCPID_WRITE_MAX + 1];
	int nr;

	if (*ppos != 0 || count > PROCPID_WRITE_MAX)
		return -EINVAL;

	/*
	 * What kstrtoint_from_user() does, plus one check it lacks: kstrtoint()
	 * stops at a NUL, so "1\0002" would read as 1. A syntax error or an
	 * int overflow is -EINVAL.
	 */
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	if (strlen(buf) != count || kstrtoint(buf, 10, &nr) ||
	    nr < 1 || nr > PID_MAX_LIMIT)
		return -EINVAL;

	/*
	 * find_vpid() looks in the writer's active PID namespace. A pid
	 * with no task is only a leftover process group or session ID.
	 */
	rcu_read_lock();
	pid = find_vpid(nr);
	if (pid && pid_task(pid, PIDTYPE_PID))
		new = get_pid(pid);
	rcu_read_unlock();
	if (!new)
		return -ESRCH;

	spin_lock(&procpid_lock);
	old = procpid_pid;
	procpid_pid = new;
	spin_unlock(&procpid_lock);
	put_pid(old);

	return count;
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 6, 0)
/* remove_proc_entry() waits for running calls, so no .owner is needed. */
static const struct proc_ops procpid_ops = {
	.proc_open	= procpid_open,
	.proc_read	= seq_read,
	.proc_lseek	= seq_lseek,
	.proc_write	= procpid_write,
	.proc_release	= single_release,
};
#else
static const struct file_operations procpid_ops = {
	.owner		= THIS_MODULE,
	.open		= procpid_open,
	.read		= seq_read,
	.llseek		= seq_lseek,
	.write		= procpid_write,
	.release	= single_release,
};
#endif

static int __init procpid_init(void)
{
	/* proc_create() hides its reason (no memory, name taken). */
	if (!proc_create(PROCPID_NAME, PROCPID_MODE, NULL, &procpid_ops))
		return -ENOMEM;

	pr_info("loaded: /proc/%s\n", PROCPID_NAME);
	return 0;
}

static void __exit procpid_exit(void)
{
	/* No reader or writer can run after this; drop the last reference. */
	remove_proc_entry(PROCPID_NAME, NULL);
	put_pid(procpid_pid);
	pr_info("unloaded\n");
}

module_init(procpid_init);
module_exit(procpid_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("pidlab");
MODULE_DESCRIPTION("/proc/pid: write a PID, read its stat and status facts");
