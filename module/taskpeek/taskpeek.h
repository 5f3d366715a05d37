/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * taskpeek's userspace interface: the ioctls of /dev/taskpeek.
 *
 * Each ioctl takes a pointer to its struct, which the kernel reads and, for
 * TASKPEEK_V2P, fills. PIDs are those of the caller's PID namespace.
 * Errors are errno values, and a failed request changes nothing.
 */
#ifndef _UAPI_TASKPEEK_H
#define _UAPI_TASKPEEK_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define TASKPEEK_IOC_MAGIC	0xb7

/*
 * TASKPEEK_V2P: the physical address of a virtual address of process pid
 * (0: the caller). Only for CAP_SYS_ADMIN: physical addresses help attacks
 * such as rowhammer, which is why /proc/<pid>/pagemap hides them too.
 *
 * The page tables are read, never changed: a page the process has not
 * touched stays untouched, and its answer is flags == 0.
 *
 * In:  pid, vaddr; flags 0.
 * Out: flags (TASKPEEK_V2P_*), and for a present page paddr and page_size
 *      (the size of the mapping's leaf: 4096, or 2 MiB for a huge page);
 *      both 0 when no page is present there (untouched, or swapped out).
 * Errors: EPERM (no CAP_SYS_ADMIN), ESRCH (no such process, or one with no
 *      address space: a kernel thread or a zombie), ENXIO (no mapping at
 *      vaddr), EOPNOTSUPP (a hugetlbfs mapping), EINVAL (pid < 0, or flags
 *      set on input), EINTR (a fatal signal while waiting for the process's
 *      mmap lock), EFAULT.
 */
struct taskpeek_v2p {
	__s32 pid;
	__u32 flags;
	__u64 vaddr;
	__u64 paddr;
	__u64 page_size;
};

#define TASKPEEK_V2P_PRESENT	(1U << 0)	/* a page is mapped there */
#define TASKPEEK_V2P_WRITABLE	(1U << 1)	/* ... and writable through the mapping */
#define TASKPEEK_V2P_HUGE	(1U << 2)	/* ... by a huge page (page_size > 4096) */
#define TASKPEEK_V2P_ZERO_PAGE	(1U << 3)	/* ... the shared zero page */

/*
 * TASKPEEK_POKE: write value at physical address paddr.
 *
 * Writing physical memory can change anything, so it is confined to what
 * the caller could write anyway: paddr must lie in an anonymous page (its
 * heap, stack, MAP_PRIVATE|MAP_ANONYMOUS memory, or a private page whose
 * copy-on-write is done) that the caller's own page tables map present and
 * writable. Everything else is refused: a file's page cache (shared with
 * every other user of the file, however it is mapped), shared memory, the
 * shared zero page, another process's page, a kernel page, a page table
 * and an address beyond RAM.
 *
 * Errors: EPERM (no CAP_SYS_RAWIO, the capability /dev/mem asks for),
 *      EACCES (paddr is not in such a page), EINVAL (the padding is not
 *      zero), EINTR, EFAULT.
 */
struct taskpeek_poke {
	__u64 paddr;
	__u8 value;
	__u8 pad[7];
};

/*
 * TASKPEEK_EXIT_SIGNAL: when the calling process exits (its last thread),
 * send signal to process pid (0: the caller's parent at the time of the
 * request). The signal comes from the exiting process: si_pid is its PID,
 * si_code SI_USER. A process has at most one such request: a new one
 * replaces it, and signal 0 cancels it.
 *
 * Whether the caller may signal pid is checked as kill(2) does when the
 * request is made (but for the LSM's say), and again, fully, by the kernel
 * when the signal is sent: one it refuses then is not sent. An exec
 * cancels the request: the new program did not make it.
 *
 * Errors: EPERM (the caller may not signal pid), ESRCH (no such process),
 *      EINVAL (pid < 0, or signal not in 0..SIGRTMAX), EFAULT.
 */
struct taskpeek_exit_signal {
	__s32 pid;
	__s32 signal;
};

#define TASKPEEK_V2P		_IOWR(TASKPEEK_IOC_MAGIC, 1, struct taskpeek_v2p)
#define TASKPEEK_POKE		_IOW(TASKPEEK_IOC_MAGIC, 2, struct taskpeek_poke)
#define TASKPEEK_EXIT_SIGNAL	_IOW(TASKPEEK_IOC_MAGIC, 3, struct taskpeek_exit_signal)

#endif /* _UAPI_TASKPEEK_H */
