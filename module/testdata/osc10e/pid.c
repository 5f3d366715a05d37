// SPDX-License-Identifier: GPL-2.0
/*
 * Linux kernel module for task information.
 *
 * Operating System Concepts, 10th edition, chapter 3, Programming
 * Project 2: write a PID to /proc/pid, then read /proc/pid for that
 * task's command, pid and state:
 *
 *	# echo 1437 > /proc/pid
 *	# cat /proc/pid
 *	command = [bash] pid = [1437] state = [1]
 *
 * state is the task's state word (0 running, 1 interruptible sleep,
 * 2 uninterruptible sleep, ...). The record is rebuilt on every read.
 */

#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/pid.h>
#include <linux/proc_fs.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/threads.h>
#include <linux/uaccess.h>

#define BUFFER_SIZE 128
#define PROC_NAME "pid"

/*
 * The PID last written, 0 before the first write. A single word that is
 * only ever loaded and stored whole, so READ_ONCE/WRITE_ONCE is all the
 * locking it needs.
 */
static long l_pid;

static ssize_t proc_read(struct file *file, char __user *usr_buf,
			 size_t count, loff_t *pos)
{
	char buffer[BUFFER_SIZE];
	char comm[TASK_COMM_LEN];
	struct task_struct *tsk;
	unsigned int state;
	long pid = READ_ONCE(l_pid);
	int len;

	/* No PID written yet: the file is empty. */
	if (pid == 0)
		return 0;

	/* The task may have exited since the write: check, never assume. */
	rcu_read_lock();
	tsk = pid_task(find_vpid(pid), PIDTYPE_PID);
	if (!tsk) {
		rcu_read_unlock();
		return -ESRCH;
	}
	get_task_comm(comm, tsk);
	state = READ_ONCE(tsk->__state);
	rcu_read_unlock();

	len = scnprintf(buffer, sizeof(buffer),
			"command = [%s] pid = [%ld] state = [%u]\n",
			comm, pid, state);

	/* Copies at most count bytes from *pos on and advances *pos. */
	return simple_read_from_buffer(usr_buf, count, pos, buffer, len);
}

static ssize_t proc_write(struct file *file, const char __user *usr_buf,
			  size_t count, loff_t *pos)
{
	struct task_struct *tsk;
	char *k_mem;
	long pid;
	int rv;

	/* A PID and a newline; anything longer is not a PID. */
	if (count >= BUFFER_SIZE)
		return -EINVAL;

	k_mem = kmalloc(count + 1, GFP_KERNEL);
	if (!k_mem)
		return -ENOMEM;

	if (copy_from_user(k_mem, usr_buf, count)) {
		rv = -EFAULT;
		goto out_free;
	}
	k_mem[count] = '\0';

	/* kstrtol() allows one trailing newline; strlen() catches a NUL. */
	if (strlen(k_mem) != count || kstrtol(k_mem, 10, &pid) ||
	    pid < 1 || pid > PID_MAX_LIMIT) {
		rv = -EINVAL;
		goto out_free;
	}

	rcu_read_lock();
	tsk = pid_task(find_vpid(pid), PIDTYPE_PID);
	rcu_read_unlock();
	if (!tsk) {
		rv = -ESRCH;
		goto out_free;
	}

	WRITE_ONCE(l_pid, pid);
	rv = count;

out_free:
	kfree(k_mem);
	return rv;
}

static const struct proc_ops pid_proc_ops = {
	.proc_read	= proc_read,
	.proc_write	= proc_write,
	.proc_lseek	= default_llseek,
};

static int __init proc_init(void)
{
	if (!proc_create(PROC_NAME, 0644, NULL, &pid_proc_ops))
		return -ENOMEM;

	pr_info("/proc/%s created\n", PROC_NAME);
	return 0;
}

static void __exit proc_exit(void)
{
	remove_proc_entry(PROC_NAME, NULL);
	pr_info("/proc/%s removed\n", PROC_NAME);
}

module_init(proc_init);
module_exit(proc_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Task information through /proc/pid");
MODULE_AUTHOR("pidlab");
