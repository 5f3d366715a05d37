// SPDX-License-Identifier: GPL-2.0
/*
 * pidinfo: get_pid_info as an ioctl, for kernels without pidlab's system
 * calls. /dev/pidinfo's PID_INFO_GET fills the same struct pid_info
 * (pid_info.h) as the get_pid_info system call of pidlab's kernel patch
 * (vmtest/kernel/kernels/pid_info.patch), with info->pid as the input.
 *
 * What differs from the system call is what a module may use:
 * - the children: a module cannot take tasklist_lock, under which
 *   ->children is written (with list_del_init() and list_move_tail(),
 *   which can send an RCU reader around in a loop), so they are found on
 *   the task list, an RCU list, by their ->real_parent. Only group leaders
 *   are on ->children, so it is the same set; a child forked or reaped
 *   during the walk may be missed or seen.
 * - who may read stack, root and cwd: ptrace_may_access() is not exported,
 *   so its rule for reading (PTRACE_MODE_READ_FSCREDS) is written out.
 */

#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pid_namespace.h>
#include <linux/sched/coredump.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>

#include "pid_info.h"

/*
 * ptrace's rule for reading another process (__ptrace_may_access() with
 * PTRACE_MODE_READ_FSCREDS): the caller's fsuid and fsgid are all of the
 * process's ids and the process may dump core, or CAP_SYS_PTRACE. A
 * process without memory (a zombie) has nothing to say about dumping.
 */
static bool may_read(struct task_struct *task)
{
	const struct cred *cred = current_cred(), *tcred;
	struct mm_struct *mm;
	bool same;

	if (same_thread_group(task, current))
		return true;
	rcu_read_lock();
	tcred = __task_cred(task);
	same = uid_eq(cred->fsuid, tcred->euid) &&
	       uid_eq(cred->fsuid, tcred->suid) &&
	       uid_eq(cred->fsuid, tcred->uid) &&
	       gid_eq(cred->fsgid, tcred->egid) &&
	       gid_eq(cred->fsgid, tcred->sgid) &&
	       gid_eq(cred->fsgid, tcred->gid);
	rcu_read_unlock();
	if (same) {
		mm = get_task_mm(task);
		if (!mm)
			return true;
		same = get_dumpable(mm) == SUID_DUMP_USER;
		mmput(mm);
		if (same)
			return true;
	}
	return capable(CAP_SYS_PTRACE);
}

/*
 * Writes path as readlink("/proc/<pid>/root") would: d_path() builds it at
 * the end of buf, relative to the caller's root; move it to the start.
 */
static int pidinfo_path(const struct path *path, char *buf)
{
	char *p = d_path(path, buf, PID_INFO_PATH_MAX);

	if (IS_ERR(p))
		return PTR_ERR(p);
	memmove(buf, p, strlen(p) + 1);
	return 0;
}

/* root and cwd; both stay "" once the process has dropped its fs_struct. */
static int pidinfo_paths(struct task_struct *task, struct pid_info *info)
{
	struct path root, pwd;
	int ret;

	task_lock(task);
	if (!task->fs) {
		task_unlock(task);
		return 0;
	}
	get_fs_root(task->fs, &root);
	get_fs_pwd(task->fs, &pwd);
	task_unlock(task);

	ret = pidinfo_path(&root, info->root);
	if (!ret)
		ret = pidinfo_path(&pwd, info->cwd);
	path_put(&pwd);
	path_put(&root);
	return ret;
}

static void pidinfo_stack(struct task_struct *task, struct pid_info *info)
{
	struct mm_struct *mm = get_task_mm(task);

	if (mm) {
		info->start_stack = mm->start_stack;
		mmput(mm);
	}
}

/*
 * Counts leader's children, writing the first max PIDs (as the caller's
 * namespace numbers them) into pids.
 */
static u32 pidinfo_children(struct task_struct *leader, pid_t *pids, u32 max)
{
	struct pid *tgid = task_tgid(leader);
	struct task_struct *p;
	u32 total = 0;

	rcu_read_lock();
	for_each_process(p) {
		pid_t nr;

		if (task_tgid(rcu_dereference(p->real_parent)) != tgid)
			continue;
		nr = task_tgid_vnr(p);
		if (!nr)
			continue;
		if (total < max)
			pids[total] = nr;
		total++;
	}
	rcu_read_unlock();
	return total;
}

static void pidinfo_task(struct task_struct *task, struct pid_info *info)
{
	info->state = task_state_to_char(task);
	info->age_ns = ktime_get_boottime_ns() - task->start_boottime;
	rcu_read_lock();
	if (pid_alive(task))
		info->ppid = task_tgid_vnr(rcu_dereference(task->real_parent));
	rcu_read_unlock();
}

/*
 * The children into a kernel array first: copy_to_user() may fault and
 * sleep, which an RCU walk must not. The array holds at most as many as
 * the caller asked for, and no more than there are processes: when more
 * children turn up than were counted a moment before, count again.
 */
static int pidinfo_copy_children(struct task_struct *task,
				 struct pid_info *info)
{
	pid_t *pids;
	u32 n, total;
	int ret = 0;

	for (;;) {
		n = min(info->children_max, pidinfo_children(task, NULL, 0));
		pids = kvmalloc_array(max_t(u32, n, 1), sizeof(*pids),
				      GFP_KERNEL);
		if (!pids)
			return -ENOMEM;
		total = pidinfo_children(task, pids, n);
		if (total <= n || n == info->children_max)
			break;
		kvfree(pids);
	}
	info->nr_children = total;
	if (copy_to_user(u64_to_user_ptr(info->children), pids,
			 min(total, n) * sizeof(*pids)))
		ret = -EFAULT;
	kvfree(pids);
	return ret;
}

static long pidinfo_get(struct pid_info __user *uinfo)
{
	struct task_struct *task;
	struct pid_info *info;
	struct pid *pid;
	pid_t nr;
	int ret;

	info = kzalloc(sizeof(*info), GFP_KERNEL);
	if (!info)
		return -ENOMEM;
	if (get_user(info->children, &uinfo->children) ||
	    get_user(info->children_max, &uinfo->children_max) ||
	    get_user(nr, &uinfo->pid)) {
		ret = -EFAULT;
		goto out_info;
	}
	if (nr <= 0) {
		ret = -EINVAL;
		goto out_info;
	}
	info->pid = nr;

	/* a process: the thread group whose ID nr is, not any thread's */
	pid = find_get_pid(nr);
	task = get_pid_task(pid, PIDTYPE_TGID);
	put_pid(pid);
	if (!task) {
		ret = -ESRCH;
		goto out_info;
	}

	pidinfo_task(task, info);
	if (may_read(task)) {
		pidinfo_stack(task, info);
		ret = pidinfo_paths(task, info);
		if (ret)
			goto out_task;
	} else {
		info->flags |= PID_INFO_WITHHELD;
	}
	ret = pidinfo_copy_children(task, info);
	if (ret)
		goto out_task;
	if (copy_to_user(uinfo, info, sizeof(*info)))
		ret = -EFAULT;
	else if (info->nr_children > info->children_max)
		ret = -ERANGE;
out_task:
	put_task_struct(task);
out_info:
	kfree(info);
	return ret;
}

static long pidinfo_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	if (cmd != PID_INFO_GET)
		return -ENOTTY;
	return pidinfo_get((struct pid_info __user *)arg);
}

static const struct file_operations pidinfo_fops = {
	.owner		= THIS_MODULE,
	.unlocked_ioctl	= pidinfo_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

/* Anyone may ask: what is not everyone's to see is withheld per caller. */
static struct miscdevice pidinfo_dev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "pidinfo",
	.fops	= &pidinfo_fops,
	.mode	= 0666,
};

module_misc_device(pidinfo_dev);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("get_pid_info as an ioctl: a process's state, parent, children, stack, age, root and cwd");
