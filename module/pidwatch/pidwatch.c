// SPDX-License-Identifier: GPL-2.0
/*
 * pidwatch - watch several processes at once and be told when one changes
 * state: seed 000's two extensions of /proc/pid, in a module of their own
 * (/proc/pid stays exactly as it is).
 *
 * /proc/pidwatch/add (0200, root): write a PID (decimal, at most 32 bytes,
 *   one trailing newline allowed, at offset 0, in the writer's PID
 *   namespace) to watch that task, held as a counted struct pid: a number
 *   reused after the task is reaped never names the watched task. EINVAL
 *   for a bad PID, ESRCH when no task has it, EEXIST when it is watched
 *   already (or its number is the name of another watched task's entry),
 *   ENOSPC when max_watches tasks are watched.
 * /proc/pidwatch/remove (0200, root): write a PID to stop watching the task
 *   it names; ENOENT when that task is not watched (never added, removed,
 *   or reaped: a reaped task leaves the set by itself, after its last
 *   event). Writing to either file needs CAP_SYS_ADMIN in whoever opened
 *   it: the set is shared and bounded.
 * /proc/pidwatch/<pid> (0444), one per watched task, named by its number in
 *   the adder's PID namespace: reads the 14-line record of /proc/pid, seen
 *   from the reader's namespaces. poll()/select()/epoll report EPOLLIN |
 *   EPOLLPRI once the sampled state changed since this open file last read
 *   the record (or was opened), and EPOLLHUP once the task is gone. The
 *   entry goes when the task is reaped or removed.
 * /proc/pidwatch/events (0444): from its open on, one line per change:
 *
 *   pid=<pid> old=<state> new=<state> ns=<CLOCK_BOOTTIME ns of the sample>
 *
 *   with the PID in the reader's namespace (others' tasks are left out) and
 *   the states as /proc/<pid>/stat's letters; new=X means the task is gone
 *   (reaped), its last event. read() blocks until a line comes (O_NONBLOCK:
 *   EAGAIN), poll() reports EPOLLIN; a reader more than ring_size events
 *   behind reads "dropped=<n>" in place of the n it lost. rmmod wakes
 *   blocked readers with end of file.
 * /proc/pidwatch/stats (0444): watched, max_watches, period_us, samples,
 *   sample_ns (time spent sampling), events.
 *
 * How a change is seen: a delayed work samples each watched task's state
 * letter (task_state_to_char(), what stat shows) every period_ms, and runs
 * only while something is watched. A state that lasts longer than the gap
 * between two samples (the period plus the workqueue's delay) is always
 * reported, within one gap of its start; a shorter one can be missed: a
 * sampler cannot see a sleep shorter than its period. A task's events form
 * a chain (each old= is the new= before it, the first old= is the state at
 * add), so no event is invented: each new= is a state the task was in.
 *
 * All waiters sleep on one wait queue that lives as long as the module, not
 * on one per entry: an entry goes when its task is reaped, while a poll() or
 * an epoll on it may still hold the queue.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/delay.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/log2.h>
#include <linux/math64.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pid.h>
#include <linux/pid_namespace.h>
#include <linux/poll.h>
#include <linux/proc_fs.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/cputime.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/seq_file.h>
#include <linux/seqlock.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/threads.h>
#include <linux/time_namespace.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <linux/uidgid.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#define PIDWATCH_WRITE_MAX	32
#define PIDWATCH_LINE_MAX	64
#define PIDWATCH_RING_MIN	16
#define PIDWATCH_RING_MAX	BIT(20)

static unsigned int max_watches = 256;
module_param(max_watches, uint, 0444);
MODULE_PARM_DESC(max_watches, "tasks watched at most (1..65536)");

static unsigned int period_ms = 10;
module_param(period_ms, uint, 0444);
MODULE_PARM_DESC(period_ms, "sampling period in ms, rounded up to jiffies (1..1000)");

static unsigned int ring_size = 1024;
module_param(ring_size, uint, 0444);
MODULE_PARM_DESC(ring_size, "events kept for slow readers, rounded up to a power of two (16..1048576)");

/* A watched task; everything but changes and gone is under pidwatch_mutex. */
struct pidwatch_watch {
	struct list_head node;
	struct pid *pid;		/* counted */
	struct proc_dir_entry *entry;
	char name[12];			/* its number in the adder's namespace */
	char state;			/* as last sampled (and reported) */
	atomic64_t changes;		/* state changes seen so far */
	bool gone;
};

static LIST_HEAD(pidwatch_watches);
static unsigned int pidwatch_count;
static bool pidwatch_stopping;
static u64 pidwatch_samples, pidwatch_sample_ns;
static DEFINE_MUTEX(pidwatch_mutex);

static void pidwatch_sample_work(struct work_struct *work);
static DECLARE_DELAYED_WORK(pidwatch_work, pidwatch_sample_work);
static unsigned long pidwatch_period;	/* jiffies */

struct pidwatch_event {
	struct pid *pid;		/* counted while in the ring */
	char old, new;
	u64 ns;
};

/*
 * Event number n is in pidwatch_ring[n & pidwatch_mask]; head is the
 * number of the next, so also the count of events. Under pidwatch_lock.
 */
static struct pidwatch_event *pidwatch_ring;
static u64 pidwatch_mask;
static u64 pidwatch_head;
static DEFINE_SPINLOCK(pidwatch_lock);

static DECLARE_WAIT_QUEUE_HEAD(pidwatch_wait);
static struct proc_dir_entry *pidwatch_dir;

/* nsec_to_clock_t() is not exported: this is its definition. */
static u64 pidwatch_ns_to_ticks(u64 ns)
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
 * Whole-process CPU time as thread_group_cputime() collects it (it is not
 * exported): procpid.c explains the seqlock retry.
 */
static void pidwatch_group_cputime(struct task_struct *task, u64 *ut, u64 *st)
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

/* /proc/pid's record of pid's task, seen from the reader's namespaces. */
static int pidwatch_show_record(struct seq_file *m, struct pid *pid)
{
	struct pid_namespace *ns = task_active_pid_ns(current);
	struct user_namespace *user_ns = current_user_ns();
	unsigned long vsize = 0, rss = 0;
	char comm[TASK_COMM_LEN];
	struct task_struct *task;
	const struct cred *cred;
	struct mm_struct *mm;
	u64 utime, stime;
	uid_t uid;
	gid_t gid;
	pid_t nr;

	task = get_pid_task(pid, PIDTYPE_PID);
	if (!task)
		return -ESRCH;
	nr = pid_nr_ns(pid, ns);
	if (!nr) {
		put_task_struct(task);
		return -ESRCH;
	}

	get_task_comm(comm, task);
	rcu_read_lock();
	cred = __task_cred(task);
	uid = from_kuid_munged(user_ns, cred->uid);
	gid = from_kgid_munged(user_ns, cred->gid);
	rcu_read_unlock();
	pidwatch_group_cputime(task, &utime, &stime);
	mm = get_task_mm(task);
	if (mm) {
		vsize = READ_ONCE(mm->total_vm) << PAGE_SHIFT;
		rss = get_mm_rss(mm);
		mmput(mm);
	}

	seq_printf(m,
		   "pid: %d\ncomm: %s\nstate: %c\nppid: %d\nuid: %u\ngid: %u\n"
		   "priority: %d\nnice: %d\nutime: %llu\nstime: %llu\n"
		   "start_time: %llu\nvsize: %lu\nrss: %lu\nthreads: %d\n",
		   nr, comm, task_state_to_char(task),
		   task_ppid_nr_ns(task, ns), uid, gid,
		   READ_ONCE(task->prio) - MAX_RT_PRIO, task_nice(task),
		   pidwatch_ns_to_ticks(utime), pidwatch_ns_to_ticks(stime),
		   pidwatch_ns_to_ticks(timens_add_boottime_ns(task->start_boottime)),
		   vsize, rss, get_nr_threads(task));
	put_task_struct(task);
	return 0;
}

/* Appends an event to the ring, overwriting (and releasing) the oldest. */
static void pidwatch_record(struct pid *pid, char old, char new, u64 ns)
{
	struct pidwatch_event *ev;
	struct pid *overwritten;

	spin_lock(&pidwatch_lock);
	ev = &pidwatch_ring[pidwatch_head & pidwatch_mask];
	overwritten = ev->pid;
	ev->pid = get_pid(pid);
	ev->old = old;
	ev->new = new;
	ev->ns = ns;
	pidwatch_head++;
	spin_unlock(&pidwatch_lock);
	put_pid(overwritten);
}

/*
 * Takes w out of the set, wakes its pollers (they see EPOLLHUP, or the
 * entry gone) and frees it. proc_remove() waits for the entry's calls in
 * progress and releases its open files, none of which takes the mutex.
 */
static void pidwatch_retire(struct pidwatch_watch *w)
{
	lockdep_assert_held(&pidwatch_mutex);
	list_del(&w->node);
	pidwatch_count--;
	WRITE_ONCE(w->gone, true);
	wake_up_interruptible_all(&pidwatch_wait);
	proc_remove(w->entry);
	put_pid(w->pid);
	kfree(w);
}

/* Samples w: records a change of its state letter, retires it once reaped. */
static bool pidwatch_sample_one(struct pidwatch_watch *w, u64 now)
{
	struct task_struct *task;
	bool changed = false;
	char state = 'X';

	rcu_read_lock();
	task = pid_task(w->pid, PIDTYPE_PID);
	if (task)
		state = task_state_to_char(task);
	rcu_read_unlock();

	if (state != w->state) {
		pidwatch_record(w->pid, w->state, state, now);
		w->state = state;
		atomic64_inc(&w->changes);
		changed = true;
	}
	if (!task)
		pidwatch_retire(w);
	return changed;
}

static void pidwatch_sample_all(void)
{
	struct pidwatch_watch *w, *tmp;
	u64 start = ktime_get_ns();
	u64 now = ktime_get_boottime_ns();
	bool changed = false;

	lockdep_assert_held(&pidwatch_mutex);
	list_for_each_entry_safe(w, tmp, &pidwatch_watches, node)
		changed |= pidwatch_sample_one(w, now);
	if (changed)
		wake_up_interruptible_all(&pidwatch_wait);
	pidwatch_samples++;
	pidwatch_sample_ns += ktime_get_ns() - start;
}

static void pidwatch_sample_work(struct work_struct *work)
{
	mutex_lock(&pidwatch_mutex);
	pidwatch_sample_all();
	if (pidwatch_count && !pidwatch_stopping)
		queue_delayed_work(system_wq, &pidwatch_work, pidwatch_period);
	mutex_unlock(&pidwatch_mutex);
}

/* One open file of a watched task's entry. */
struct pidwatch_view {
	struct pidwatch_watch *w;
	u64 seen;	/* w->changes when this file last read the record */
};

static int pidwatch_entry_show(struct seq_file *m, void *v)
{
	struct pidwatch_view *view = m->private;

	/* Before the record: a change while it is formatted wakes poll again. */
	view->seen = atomic64_read(&view->w->changes);
	return pidwatch_show_record(m, view->w->pid);
}

/* The entry's watch outlives this call: proc_remove() waits for it. */
static int pidwatch_entry_open(struct inode *inode, struct file *file)
{
	struct pidwatch_view *view;
	int err;

	view = kzalloc(sizeof(*view), GFP_KERNEL);
	if (!view)
		return -ENOMEM;
	view->w = pde_data(inode);
	view->seen = atomic64_read(&view->w->changes);
	err = single_open(file, pidwatch_entry_show, view);
	if (err)
		kfree(view);
	return err;
}

static int pidwatch_entry_release(struct inode *inode, struct file *file)
{
	struct seq_file *m = file->private_data;

	kfree(m->private);
	return single_release(inode, file);
}

static __poll_t pidwatch_entry_poll(struct file *file, poll_table *pt)
{
	struct seq_file *m = file->private_data;
	struct pidwatch_view *view = m->private;
	__poll_t mask = 0;

	poll_wait(file, &pidwatch_wait, pt);
	if (atomic64_read(&view->w->changes) != READ_ONCE(view->seen))
		mask |= EPOLLIN | EPOLLRDNORM | EPOLLPRI;
	if (READ_ONCE(view->w->gone) || READ_ONCE(pidwatch_stopping))
		mask |= EPOLLHUP;
	return mask;
}

static const struct proc_ops pidwatch_entry_ops = {
	.proc_open	= pidwatch_entry_open,
	.proc_read	= seq_read,
	.proc_lseek	= seq_lseek,
	.proc_poll	= pidwatch_entry_poll,
	.proc_release	= pidwatch_entry_release,
};

/* The watched task whose struct pid is pid, or NULL. */
static struct pidwatch_watch *pidwatch_find(struct pid *pid)
{
	struct pidwatch_watch *w;

	list_for_each_entry(w, &pidwatch_watches, node)
		if (w->pid == pid)
			return w;
	return NULL;
}

static struct pidwatch_watch *pidwatch_find_name(const char *name)
{
	struct pidwatch_watch *w;

	list_for_each_entry(w, &pidwatch_watches, node)
		if (!strcmp(w->name, name))
			return w;
	return NULL;
}

/*
 * The checks of a new watch; 0 when it may be added. A task reaped but not
 * yet sampled still holds its number's entry and a place in the set:
 * sampling it (or everything) first lets the number's new task in.
 */
static int pidwatch_may_add(struct pid *pid, const char *name)
{
	struct pidwatch_watch *same_name;

	if (pidwatch_find(pid))
		return -EEXIST;
	same_name = pidwatch_find_name(name);
	if (same_name && pidwatch_sample_one(same_name, ktime_get_boottime_ns()))
		wake_up_interruptible_all(&pidwatch_wait);
	if (pidwatch_find_name(name))
		return -EEXIST;
	if (pidwatch_count >= max_watches)
		pidwatch_sample_all();
	if (pidwatch_count >= max_watches)
		return -ENOSPC;
	return 0;
}

static int pidwatch_add(pid_t nr)
{
	struct task_struct *task;
	struct pidwatch_watch *w;
	int err;

	w = kzalloc(sizeof(*w), GFP_KERNEL);
	if (!w)
		return -ENOMEM;
	snprintf(w->name, sizeof(w->name), "%d", nr);
	atomic64_set(&w->changes, 0);

	mutex_lock(&pidwatch_mutex);
	err = -ENODEV;
	if (pidwatch_stopping)
		goto unlock;
	/*
	 * find_vpid(): the writer's namespace; a pid with no task is only a
	 * leftover process group or session ID.
	 */
	rcu_read_lock();
	w->pid = find_vpid(nr);
	task = w->pid ? pid_task(w->pid, PIDTYPE_PID) : NULL;
	if (task) {
		get_pid(w->pid);
		w->state = task_state_to_char(task);
	}
	rcu_read_unlock();
	err = -ESRCH;
	if (!task)
		goto unlock;
	err = pidwatch_may_add(w->pid, w->name);
	if (err)
		goto put;
	err = -ENOMEM;
	w->entry = proc_create_data(w->name, 0444, pidwatch_dir, &pidwatch_entry_ops, w);
	if (!w->entry)
		goto put;
	list_add_tail(&w->node, &pidwatch_watches);
	if (pidwatch_count++ == 0)
		queue_delayed_work(system_wq, &pidwatch_work, pidwatch_period);
	mutex_unlock(&pidwatch_mutex);
	return 0;

put:
	put_pid(w->pid);
unlock:
	mutex_unlock(&pidwatch_mutex);
	kfree(w);
	return err;
}

static int pidwatch_remove(pid_t nr)
{
	struct pidwatch_watch *w = NULL;
	struct pid *pid;

	mutex_lock(&pidwatch_mutex);
	rcu_read_lock();
	pid = find_vpid(nr);
	rcu_read_unlock();
	/* Compared, not used: a watched pid is counted, so still this one. */
	if (pid)
		w = pidwatch_find(pid);
	if (w)
		pidwatch_retire(w);
	mutex_unlock(&pidwatch_mutex);
	return w ? 0 : -ENOENT;
}

/*
 * One decimal PID, whole, at offset 0, as /proc/pid takes it: kstrtoint()
 * stops at a NUL, so "1\0002" would read as 1 without the strlen() check.
 */
static int pidwatch_parse(const char __user *ubuf, size_t count, loff_t *ppos, pid_t *nr)
{
	char buf[PIDWATCH_WRITE_MAX + 1];

	if (*ppos != 0 || count > PIDWATCH_WRITE_MAX)
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	if (strlen(buf) != count || kstrtoint(buf, 10, nr) || *nr < 1 || *nr > PID_MAX_LIMIT)
		return -EINVAL;
	return 0;
}

static ssize_t pidwatch_control(struct file *file, const char __user *ubuf,
				size_t count, loff_t *ppos, int (*change)(pid_t))
{
	pid_t nr;
	int err;

	/*
	 * The opener's capability: a descriptor handed to a setuid program
	 * does not lend it root's.
	 */
	if (!file_ns_capable(file, &init_user_ns, CAP_SYS_ADMIN))
		return -EPERM;
	err = pidwatch_parse(ubuf, count, ppos, &nr);
	if (!err)
		err = change(nr);
	return err ? err : count;
}

static ssize_t pidwatch_add_write(struct file *file, const char __user *ubuf,
				  size_t count, loff_t *ppos)
{
	return pidwatch_control(file, ubuf, count, ppos, pidwatch_add);
}

static ssize_t pidwatch_remove_write(struct file *file, const char __user *ubuf,
				     size_t count, loff_t *ppos)
{
	return pidwatch_control(file, ubuf, count, ppos, pidwatch_remove);
}

static const struct proc_ops pidwatch_add_ops = {
	.proc_write	= pidwatch_add_write,
	.proc_lseek	= noop_llseek,
};

static const struct proc_ops pidwatch_remove_ops = {
	.proc_write	= pidwatch_remove_write,
	.proc_lseek	= noop_llseek,
};

/* One open file of /proc/pidwatch/events. */
struct pidwatch_reader {
	struct mutex lock;	/* one read() at a time: the line and its offset */
	struct pid_namespace *ns;
	u64 next;		/* the number of the next event to read */
	char line[PIDWATCH_LINE_MAX];
	size_t len, off;	/* the line being read, and how much of it was */
};

static bool pidwatch_pending(struct pidwatch_reader *r)
{
	return READ_ONCE(r->off) < READ_ONCE(r->len) ||
	       READ_ONCE(pidwatch_head) != READ_ONCE(r->next);
}

/*
 * Formats the reader's next line: the count of events it lost, or its next
 * event its namespace can see. False when none is waiting.
 */
static bool pidwatch_next_line(struct pidwatch_reader *r)
{
	struct pidwatch_event ev;
	u64 lost = 0;
	pid_t nr = 0;

	spin_lock(&pidwatch_lock);
	while (!nr && !lost && r->next != pidwatch_head) {
		if (pidwatch_head - r->next > pidwatch_mask + 1) {
			lost = pidwatch_head - (pidwatch_mask + 1) - r->next;
			r->next += lost;
			break;
		}
		ev = pidwatch_ring[r->next & pidwatch_mask];
		nr = pid_nr_ns(ev.pid, r->ns);
		r->next++;
	}
	spin_unlock(&pidwatch_lock);

	r->off = 0;
	if (lost)
		r->len = scnprintf(r->line, sizeof(r->line), "dropped=%llu\n", lost);
	else if (nr)
		r->len = scnprintf(r->line, sizeof(r->line), "pid=%d old=%c new=%c ns=%llu\n",
				   nr, ev.old, ev.new, ev.ns);
	else
		r->len = 0;
	return r->len;
}

static int pidwatch_events_open(struct inode *inode, struct file *file)
{
	struct pidwatch_reader *r;

	r = kzalloc(sizeof(*r), GFP_KERNEL);
	if (!r)
		return -ENOMEM;
	mutex_init(&r->lock);
	r->ns = get_pid_ns(task_active_pid_ns(current));
	spin_lock(&pidwatch_lock);
	r->next = pidwatch_head;
	spin_unlock(&pidwatch_lock);
	file->private_data = r;
	return nonseekable_open(inode, file);
}

static int pidwatch_events_release(struct inode *inode, struct file *file)
{
	struct pidwatch_reader *r = file->private_data;

	put_pid_ns(r->ns);
	kfree(r);
	return 0;
}

/*
 * Whole lines while they fit, then part of the next, whose rest the next
 * read() returns. A failed copy leaves the line where it was.
 */
static ssize_t pidwatch_events_read(struct file *file, char __user *buf,
				    size_t count, loff_t *ppos)
{
	struct pidwatch_reader *r = file->private_data;
	size_t done = 0;
	int err = 0;

	if (mutex_lock_interruptible(&r->lock))
		return -ERESTARTSYS;
	while (done < count) {
		size_t n;

		if (r->off == r->len && !pidwatch_next_line(r)) {
			if (done || READ_ONCE(pidwatch_stopping))
				break;
			if (file->f_flags & O_NONBLOCK) {
				err = -EAGAIN;
				break;
			}
			err = wait_event_interruptible(pidwatch_wait, pidwatch_pending(r) ||
						       READ_ONCE(pidwatch_stopping));
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

static __poll_t pidwatch_events_poll(struct file *file, poll_table *pt)
{
	struct pidwatch_reader *r = file->private_data;

	poll_wait(file, &pidwatch_wait, pt);
	if (pidwatch_pending(r))
		return EPOLLIN | EPOLLRDNORM;
	if (READ_ONCE(pidwatch_stopping))
		return EPOLLHUP;
	return 0;
}

static const struct proc_ops pidwatch_events_ops = {
	.proc_open	= pidwatch_events_open,
	.proc_read	= pidwatch_events_read,
	.proc_poll	= pidwatch_events_poll,
	.proc_release	= pidwatch_events_release,
	.proc_lseek	= no_llseek,
};

static int pidwatch_stats_show(struct seq_file *m, void *v)
{
	u64 events;

	spin_lock(&pidwatch_lock);
	events = pidwatch_head;
	spin_unlock(&pidwatch_lock);
	mutex_lock(&pidwatch_mutex);
	seq_printf(m, "watched %u\n", pidwatch_count);
	seq_printf(m, "max_watches %u\n", max_watches);
	seq_printf(m, "period_us %u\n", jiffies_to_usecs(pidwatch_period));
	seq_printf(m, "samples %llu\n", pidwatch_samples);
	seq_printf(m, "sample_ns %llu\n", pidwatch_sample_ns);
	seq_printf(m, "events %llu\n", events);
	mutex_unlock(&pidwatch_mutex);
	return 0;
}

/*
 * Waiters sleep on pidwatch_wait, which goes with the module. Wake them,
 * let proc_remove() wait out the calls in progress (later ones fail, the
 * entries being gone), then empty the queue: a POLLFREE wake detaches
 * epoll watchers (which would stay until their epoll file is closed), and
 * poll()/select() sleepers leave it as they wake. Taking the queue's lock
 * once more waits out a sleeper still unlinking itself; epoll reads the
 * queue's address under RCU.
 */
static void pidwatch_stop_waiters(void)
{
	int tries;

	WRITE_ONCE(pidwatch_stopping, true);
	wake_up_interruptible_all(&pidwatch_wait);
	proc_remove(pidwatch_dir);
	/* No one can join the queue now: a lockless look is enough. */
	for (tries = 1; waitqueue_active(&pidwatch_wait); tries++) {
		__wake_up(&pidwatch_wait, TASK_NORMAL, 0, poll_to_key(EPOLLHUP | POLLFREE));
		usleep_range(5000, 10000);
		if (tries == 1000)
			pr_warn("a waiter has not left the wait queue in 5 s; waiting on\n");
	}
	spin_lock_irq(&pidwatch_wait.lock);
	spin_unlock_irq(&pidwatch_wait.lock);
	synchronize_rcu();
}

static int __init pidwatch_init(void)
{
	unsigned int size = clamp(ring_size, PIDWATCH_RING_MIN, PIDWATCH_RING_MAX);

	if (max_watches < 1 || max_watches > 65536 || period_ms < 1 || period_ms > 1000) {
		pr_err("max_watches must be 1..65536 and period_ms 1..1000\n");
		return -EINVAL;
	}
	pidwatch_period = max(msecs_to_jiffies(period_ms), 1UL);
	size = roundup_pow_of_two(size);
	pidwatch_ring = kvcalloc(size, sizeof(*pidwatch_ring), GFP_KERNEL);
	if (!pidwatch_ring)
		return -ENOMEM;
	pidwatch_mask = size - 1;

	/* proc_create() hides its reason (no memory, name taken). */
	pidwatch_dir = proc_mkdir("pidwatch", NULL);
	if (!pidwatch_dir)
		goto free_ring;
	if (!proc_create("add", 0200, pidwatch_dir, &pidwatch_add_ops) ||
	    !proc_create("remove", 0200, pidwatch_dir, &pidwatch_remove_ops) ||
	    !proc_create("events", 0444, pidwatch_dir, &pidwatch_events_ops) ||
	    !proc_create_single("stats", 0444, pidwatch_dir, pidwatch_stats_show))
		goto remove_dir;
	pr_info("loaded: /proc/pidwatch, sampling every %u us\n",
		jiffies_to_usecs(pidwatch_period));
	return 0;

remove_dir:
	proc_remove(pidwatch_dir);
free_ring:
	kvfree(pidwatch_ring);
	return -ENOMEM;
}

static void __exit pidwatch_exit(void)
{
	struct pidwatch_watch *w, *tmp;
	u64 n;

	mutex_lock(&pidwatch_mutex);
	WRITE_ONCE(pidwatch_stopping, true);
	mutex_unlock(&pidwatch_mutex);
	/* The work sees the flag and does not queue itself again. */
	cancel_delayed_work_sync(&pidwatch_work);
	pidwatch_stop_waiters();

	/* Nothing else runs now: the entries went with the folder. */
	list_for_each_entry_safe(w, tmp, &pidwatch_watches, node) {
		put_pid(w->pid);
		kfree(w);
	}
	for (n = 0; n <= pidwatch_mask; n++)
		put_pid(pidwatch_ring[n].pid);
	kvfree(pidwatch_ring);
	pr_info("unloaded\n");
}

module_init(pidwatch_init);
module_exit(pidwatch_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("pidlab");
MODULE_DESCRIPTION("Watch several processes' /proc/pid records and be told when one changes state");
