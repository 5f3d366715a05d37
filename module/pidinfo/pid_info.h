/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * pidlab's process system calls (x86_64, Linux 6.1 with pidlab's patch):
 * get_pid_info, ft_kill, ft_wait and ft_fork. The same struct pid_info is
 * the ABI of pidlab's pidinfo module, whose PID_INFO_GET ioctl answers the
 * same query on kernels without the patch.
 */
#ifndef _UAPI_LINUX_PID_INFO_H
#define _UAPI_LINUX_PID_INFO_H

#include <linux/types.h>
#include <linux/ioctl.h>

/*
 * System call numbers: past 6.1's last (450) and past every number later
 * kernels have given out, so that a program built for this ABI gets ENOSYS,
 * not another call, on a kernel without the patch.
 */
#define __NR_get_pid_info	500	/* long get_pid_info(struct pid_info *info, int pid) */
#define __NR_ft_kill		501	/* long ft_kill(int pid, int sig): kill(2) for one process */
#define __NR_ft_wait		502	/* long ft_wait(int *status): wait(2) */
#define __NR_ft_fork		503	/* long ft_fork(void): fork(2) */

/* The longest root or working directory path, with its NUL: PATH_MAX. */
#define PID_INFO_PATH_MAX	4096

/* flags */
/*
 * start_stack, root and cwd are left zero: the caller may not read them
 * (it could not read /proc/<pid>/root either: same user and a dumpable
 * process, or CAP_SYS_PTRACE).
 */
#define PID_INFO_WITHHELD	0x1

/*
 * What get_pid_info(info, pid) says of process pid, as the caller's PID
 * namespace numbers it. The caller fills in children and children_max;
 * the call fills in the rest.
 *
 * Errors: ESRCH (no process pid: a thread's ID that is not a process's is
 * not one), EINVAL (pid <= 0), EFAULT (info or the children array is not
 * the caller's writable memory), ERANGE (more than children_max children:
 * everything is filled in, nr_children is the number needed and children
 * holds the first children_max), ENAMETOOLONG (a path longer than
 * PID_INFO_PATH_MAX), ENOMEM.
 */
struct pid_info {
	/* in */
	__u64 children;		/* address of an array of __s32 */
	__u32 children_max;	/* its length, in entries */
	/* out */
	__u32 nr_children;	/* child processes, zombies included */
	__s32 pid;		/* the process, as asked for (the ioctl's input) */
	__u32 state;		/* /proc/<pid>/stat's letter: R S D T t X Z P I */
	__u64 start_stack;	/* mm->start_stack, /proc/<pid>/stat's startstack; 0 with no mm */
	__u64 age_ns;		/* CLOCK_BOOTTIME now minus the process's start */
	__s32 ppid;		/* real parent's PID; 0 for PID 1 and the invisible */
	__u32 flags;		/* PID_INFO_WITHHELD */
	char root[PID_INFO_PATH_MAX];	/* readlink /proc/<pid>/root; "" with no fs */
	char cwd[PID_INFO_PATH_MAX];	/* readlink /proc/<pid>/cwd; "" with no fs */
};

/* pidinfo module: /dev/pidinfo, the query with info->pid as input. */
#define PID_INFO_GET	_IOWR('p', 0x01, struct pid_info)

#endif /* _UAPI_LINUX_PID_INFO_H */
