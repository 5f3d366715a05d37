// SPDX-License-Identifier: GPL-2.0
/*
 * taskpeek - a look into the kernel's process and memory structures.
 *
 * /proc/hello_procfs	  "Hello World!"
 * /proc/get_pgfaults	  page faults since boot (the PGFAULT VM event, the
 *			  "pgfault" line of /proc/vmstat)
 * /proc/taskpeek/runnable
 *			  every task (thread) in state R at the moment of the
 *			  read: "<tid> <tgid> <comm>" a line
 * /proc/taskpeek/children
 *			  write a process ID, read its children (the thread
 *			  group leaders whose parent is one of its threads, as
 *			  /proc/<pid>/task/<tid>/children lists them, all tids
 *			  together): "<pid> <state> <comm>" a line, the state a
 *			  letter as in /proc/<pid>/stat
 * /proc/taskpeek/memory  write a process ID, read "vsize <bytes>" (the sum of
 *			  its VMAs, /proc/<pid>/status's VmSize) and
 *			  "resident <bytes>" (see below); a reader who may not
 *			  read the process's smaps reads -EACCES
 * /dev/taskpeek	  ioctls: virtual to physical, a byte written at a
 *			  physical address, a signal when the caller exits
 *			  (taskpeek.h documents them)
 *
 * A comm is the last field of its line, with \n and \\ escaped as \ooo.
 * Tasks outside the reader's PID namespace are left out.
 * The PID written to children or memory is the file's, not the opener's:
 * the last one written is what every reader reads (-ENODATA before the
 * first), looked up again at each read (-ESRCH once it has gone).
 *
 * Locking. The task list (init_task.tasks) and each group's thread list
 * are RCU lists: a walk under rcu_read_lock() sees every task that was
 * there all along, and task_structs stay valid until the grace period
 * ends. ->children is not: its writers (fork, release_task, reparenting)
 * hold tasklist_lock, which modules cannot take, and use list_del_init()
 * and list_move_tail(), which can send an RCU reader around in a loop or
 * into another parent's list. So children are found on the task list by
 * their ->real_parent (an RCU pointer), which gives the same set: only
 * group leaders are on ->children. Page tables and VMAs are read under
 * mmap_read_lock() of an mm held by get_task_mm(), each PTE table under
 * its own lock, so entries do not change while they are used.
 *
 * resident counts the pages mapped present that are pages of their own:
 * not the shared zero page (which a read of an untouched anonymous page
 * maps, and which VmRSS does not count either) nor PFN or I/O mappings;
 * hugetlbfs mappings are left out. That is what smaps' "Rss" counts, to
 * the page. VmRSS is the kernel's running count of the same pages, which
 * a thread batches (up to 64 page faults) before the mm's total sees it.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/hashtable.h>
#include <linux/highmem.h>
#include <linux/hugetlb.h>
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/module.h>
#include <linux/pgtable.h>
#include <linux/pid.h>
#include <linux/proc_fs.h>
#include <linux/ptrace.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/coredump.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/vmstat.h>

#include "taskpeek.h"

/* A PID in decimal, a newline, and then some. */
#define TASKPEEK_WRITE_MAX	23

/* ---- /proc/hello_procfs and /proc/get_pgfaults ---- */

static int hello_show(struct seq_file *m, void *v)
{
	seq_puts(m, "Hello World!\n");
	return 0;
}

static int pgfaults_show(struct seq_file *m, void *v)
{
	/* NR_VM_EVENT_ITEMS counters: too many for the stack. */
	unsigned long *events;

	events = kmalloc_array(NR_VM_EVENT_ITEMS, sizeof(*events), GFP_KERNEL);
	if (!events)
		return -ENOMEM;
	all_vm_events(events);
	seq_printf(m, "%lu\n", events[PGFAULT]);
	kfree(events);
	return 0;
}

/* ---- /proc/taskpeek/runnable ---- */

static void taskpeek_put_comm(struct seq_file *m, struct task_struct *task)
{
	char comm[TASK_COMM_LEN];

	__get_task_comm(comm, sizeof(comm), task);
	seq_escape(m, comm, "\n\\");
}

static int runnable_show(struct seq_file *m, void *v)
{
	struct task_struct *p, *t;

	rcu_read_lock();
	for_each_process_thread(p, t) {
		/* 0: outside the reader's PID namespace, not its business. */
		if (!task_is_running(t) || !task_pid_vnr(t))
			continue;
		seq_printf(m, "%d %d ", task_pid_vnr(t), task_tgid_vnr(t));
		taskpeek_put_comm(m, t);
		seq_putc(m, '\n');
	}
	rcu_read_unlock();
	return 0;
}

/* ---- the PID written to children and memory ---- */

struct taskpeek_selection {
	spinlock_t lock;
	struct pid *pid;	/* a reference: a reused number is not it */
	int (*show)(struct seq_file *m, struct task_struct *task);
};

static int selection_show(struct seq_file *m, void *v)
{
	struct taskpeek_selection *sel = m->private;
	struct task_struct *task;
	struct pid *pid;
	int ret;

	spin_lock(&sel->lock);
	pid = get_pid(sel->pid);
	spin_unlock(&sel->lock);
	if (!pid)
		return -ENODATA;

	task = get_pid_task(pid, PIDTYPE_TGID);
	put_pid(pid);
	if (!task)
		return -ESRCH;
	ret = sel->show(m, task);
	put_task_struct(task);
	return ret;
}

static int selection_open(struct inode *inode, struct file *file)
{
	return single_open(file, selection_show, pde_data(inode));
}

/*
 * A process ID, whole, in one write at offset 0 (kstrtoint() alone would
 * take "1\0002" for 1). A thread's ID that is not its process's is
 * -ESRCH: these files are about processes.
 */
static ssize_t selection_write(struct file *file, const char __user *ubuf,
			       size_t count, loff_t *ppos)
{
	struct taskpeek_selection *sel = pde_data(file_inode(file));
	char buf[TASKPEEK_WRITE_MAX + 1];
	struct pid *new = NULL, *old, *pid;
	int nr;

	if (*ppos != 0 || count > TASKPEEK_WRITE_MAX)
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	if (strlen(buf) != count || kstrtoint(buf, 10, &nr) || nr < 1)
		return -EINVAL;

	rcu_read_lock();
	pid = find_vpid(nr);
	if (pid && pid_task(pid, PIDTYPE_TGID))
		new = get_pid(pid);
	rcu_read_unlock();
	if (!new)
		return -ESRCH;

	spin_lock(&sel->lock);
	old = sel->pid;
	sel->pid = new;
	spin_unlock(&sel->lock);
	put_pid(old);
	return count;
}

static const struct proc_ops selection_ops = {
	.proc_open	= selection_open,
	.proc_read	= seq_read,
	.proc_lseek	= seq_lseek,
	.proc_write	= selection_write,
	.proc_release	= single_release,
};

/* ---- /proc/taskpeek/children ---- */

static int children_show(struct seq_file *m, struct task_struct *parent)
{
	struct pid *tgid = task_tgid(parent);
	struct task_struct *p;

	/*
	 * Every process whose parent thread is in the group; see the top of
	 * the file for why this walks the task list and not ->children. A
	 * child forked or reaped during the walk may be missed or seen.
	 */
	rcu_read_lock();
	for_each_process(p) {
		if (task_tgid(rcu_dereference(p->real_parent)) != tgid ||
		    !task_tgid_vnr(p))
			continue;
		seq_printf(m, "%d %c ", task_tgid_vnr(p), task_state_to_char(p));
		taskpeek_put_comm(m, p);
		seq_putc(m, '\n');
	}
	rcu_read_unlock();
	return 0;
}

/* ---- page tables ---- */

/* A present mapping found by the walk: [start, end) maps pfn onwards. */
struct taskpeek_leaf {
	unsigned long start, end;
	unsigned long pfn;
	unsigned long page_size;
	bool writable;
	bool normal;	/* a page of its own: not a zero page, PFN or I/O map */
	bool zero;	/* the shared zero page, or the huge one */
	struct page *page;	/* the page at start when normal */
};

/*
 * Called for each leaf with its page table lock held, so the entry stays
 * as it was seen; nonzero stops the walk and is its result.
 */
typedef int (*taskpeek_leaf_fn)(struct taskpeek_leaf *leaf, void *arg);

struct taskpeek_walk {
	struct vm_area_struct *vma;
	taskpeek_leaf_fn fn;
	void *arg;
};

static int walk_ptes(struct taskpeek_walk *w, pmd_t *pmd, unsigned long addr,
		     unsigned long end)
{
	bool special = w->vma->vm_flags & (VM_PFNMAP | VM_IO);
	struct taskpeek_leaf leaf = { .page_size = PAGE_SIZE };
	pte_t *start, *pte;
	spinlock_t *ptl;
	int ret = 0;

	start = pte_offset_map_lock(w->vma->vm_mm, pmd, addr, &ptl);
	for (pte = start; addr < end; addr += PAGE_SIZE, pte++) {
		pte_t entry = ptep_get(pte);

		if (!pte_present(entry))
			continue;
		leaf.start = addr;
		leaf.end = addr + PAGE_SIZE;
		leaf.pfn = pte_pfn(entry);
		leaf.writable = pte_write(entry);
		/* What vm_normal_page() (not exported) decides on x86. */
		leaf.zero = is_zero_pfn(leaf.pfn);
		leaf.normal = !special && !pte_special(entry) &&
			      pfn_valid(leaf.pfn) && !leaf.zero;
		leaf.page = leaf.normal ? pfn_to_page(leaf.pfn) : NULL;
		ret = w->fn(&leaf, w->arg);
		if (ret)
			break;
	}
	pte_unmap_unlock(start, ptl);
	return ret;
}

/*
 * A huge PMD, under its lock. 1 when it was one; 0 when it has been split
 * since it was read, and the PTEs are to be walked.
 */
static int walk_huge_pmd(struct taskpeek_walk *w, pmd_t *pmd,
			 unsigned long addr, unsigned long end, int *ret)
{
	struct taskpeek_leaf leaf = { .page_size = PMD_SIZE };
	spinlock_t *ptl = pmd_lock(w->vma->vm_mm, pmd);
	pmd_t entry = *pmd;
	struct page *head;

	if (!pmd_present(entry) || !pmd_leaf(entry)) {
		spin_unlock(ptl);
		return pmd_none(entry) || !pmd_present(entry);
	}
	leaf.start = addr;
	leaf.end = end;
	leaf.pfn = pmd_pfn(entry) + ((addr & ~PMD_MASK) >> PAGE_SHIFT);
	leaf.writable = pmd_write(entry);
	/*
	 * The huge zero page (is_huge_zero_pmd() is not exported) belongs to
	 * no file and no anon_vma; a transparent huge page to one of them.
	 */
	head = pfn_valid(pmd_pfn(entry)) ? pmd_page(entry) : NULL;
	if (head && !(w->vma->vm_flags & (VM_PFNMAP | VM_IO))) {
		leaf.normal = PageAnon(head) || head->mapping;
		leaf.zero = !leaf.normal;
	}
	leaf.page = leaf.normal ? pfn_to_page(leaf.pfn) : NULL;
	*ret = w->fn(&leaf, w->arg);
	spin_unlock(ptl);
	return 1;
}

static int walk_pmds(struct taskpeek_walk *w, pud_t *pud, unsigned long addr,
		     unsigned long end)
{
	pmd_t *pmd = pmd_offset(pud, addr);
	unsigned long next;
	int ret = 0;

	do {
		pmd_t entry = READ_ONCE(*pmd);

		next = pmd_addr_end(addr, end);
		if (pmd_none(entry))
			continue;
		/* A huge page, or a huge page's swap or migration entry. */
		if (pmd_leaf(entry) || !pmd_present(entry)) {
			if (walk_huge_pmd(w, pmd, addr, next, &ret))
				goto done;
		}
		if (pmd_bad(READ_ONCE(*pmd)))
			continue;
		ret = walk_ptes(w, pmd, addr, next);
done:
		if (ret)
			return ret;
		cond_resched();
	} while (pmd++, addr = next, addr != end);
	return 0;
}

static int walk_puds(struct taskpeek_walk *w, p4d_t *p4d, unsigned long addr,
		     unsigned long end)
{
	pud_t *pud = pud_offset(p4d, addr);
	unsigned long next;
	int ret;

	do {
		next = pud_addr_end(addr, end);
		/* A huge PUD outside hugetlbfs is DAX: none of our business. */
		if (pud_none(*pud) || pud_leaf(*pud) || pud_bad(*pud))
			continue;
		ret = walk_pmds(w, pud, addr, next);
		if (ret)
			return ret;
	} while (pud++, addr = next, addr != end);
	return 0;
}

static int walk_p4ds(struct taskpeek_walk *w, pgd_t *pgd, unsigned long addr,
		     unsigned long end)
{
	p4d_t *p4d = p4d_offset(pgd, addr);
	unsigned long next;
	int ret;

	do {
		next = p4d_addr_end(addr, end);
		if (p4d_none(*p4d) || p4d_bad(*p4d))
			continue;
		ret = walk_puds(w, p4d, addr, next);
		if (ret)
			return ret;
	} while (p4d++, addr = next, addr != end);
	return 0;
}

/*
 * Calls fn for each present leaf in [addr, end) of vma, which the caller's
 * mmap_read_lock() keeps; nothing is faulted in or changed. hugetlbfs VMAs
 * have page tables of their own kind and are not walked.
 */
static int walk_vma(struct vm_area_struct *vma, unsigned long addr,
		    unsigned long end, taskpeek_leaf_fn fn, void *arg)
{
	struct taskpeek_walk w = { .vma = vma, .fn = fn, .arg = arg };
	pgd_t *pgd = pgd_offset(vma->vm_mm, addr);
	unsigned long next;
	int ret;

	if (is_vm_hugetlb_page(vma))
		return 0;
	do {
		next = pgd_addr_end(addr, end);
		if (pgd_none(*pgd) || pgd_bad(*pgd))
			continue;
		ret = walk_p4ds(&w, pgd, addr, next);
		if (ret)
			return ret;
	} while (pgd++, addr = next, addr != end);
	return 0;
}

/* ---- /proc/taskpeek/memory ---- */

static int count_resident(struct taskpeek_leaf *leaf, void *arg)
{
	unsigned long *pages = arg;

	if (leaf->normal)
		*pages += (leaf->end - leaf->start) >> PAGE_SHIFT;
	return 0;
}

/*
 * What /proc/<pid>/smaps asks of its reader (ptrace_may_access() with
 * PTRACE_MODE_READ_FSCREDS, not exported): a reader whose fsuid and fsgid
 * are all the process's ids, and a process that may dump core, or
 * CAP_SYS_PTRACE. A walk holds the process's mmap lock, which nobody else
 * should hold at will.
 */
static bool may_read_mm(struct task_struct *task, struct mm_struct *mm)
{
	const struct cred *cred = current_cred(), *tcred;
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
	if (same && get_dumpable(mm) == SUID_DUMP_USER)
		return true;
	return capable(CAP_SYS_PTRACE);
}

static int memory_show(struct seq_file *m, struct task_struct *task)
{
	unsigned long vsize = 0, resident = 0;
	struct vm_area_struct *vma;
	struct mm_struct *mm;
	int ret;

	/* NULL for a kernel thread or a zombie: they have no memory. */
	mm = get_task_mm(task);
	if (mm) {
		VMA_ITERATOR(vmi, mm, 0);

		if (!may_read_mm(task, mm)) {
			mmput(mm);
			return -EACCES;
		}
		ret = mmap_read_lock_killable(mm);
		if (ret) {
			mmput(mm);
			return ret;
		}
		for_each_vma(vmi, vma) {
			vsize += vma->vm_end - vma->vm_start;
			walk_vma(vma, vma->vm_start, vma->vm_end,
				 count_resident, &resident);
		}
		mmap_read_unlock(mm);
		mmput(mm);
	}
	seq_printf(m, "vsize %lu\nresident %lu\n", vsize, resident << PAGE_SHIFT);
	return 0;
}

/* ---- /dev/taskpeek: TASKPEEK_V2P ---- */

static int find_v2p(struct taskpeek_leaf *leaf, void *arg)
{
	struct taskpeek_v2p *req = arg;

	req->flags = TASKPEEK_V2P_PRESENT;
	if (leaf->writable)
		req->flags |= TASKPEEK_V2P_WRITABLE;
	if (leaf->page_size > PAGE_SIZE)
		req->flags |= TASKPEEK_V2P_HUGE;
	if (leaf->zero)
		req->flags |= TASKPEEK_V2P_ZERO_PAGE;
	req->paddr = PFN_PHYS(leaf->pfn) + offset_in_page(req->vaddr);
	req->page_size = leaf->page_size;
	return 1;
}

/* The mm of process nr (0: the caller's), held; an ERR_PTR on failure. */
static struct mm_struct *taskpeek_get_mm(pid_t nr)
{
	struct task_struct *task;
	struct mm_struct *mm;

	if (nr == 0) {
		task = current;
		get_task_struct(task);
	} else {
		rcu_read_lock();
		task = pid_task(find_vpid(nr), PIDTYPE_TGID);
		if (task)
			get_task_struct(task);
		rcu_read_unlock();
		if (!task)
			return ERR_PTR(-ESRCH);
	}
	mm = get_task_mm(task);
	put_task_struct(task);
	return mm ? mm : ERR_PTR(-ESRCH);
}

static long taskpeek_v2p(struct taskpeek_v2p __user *ureq)
{
	struct vm_area_struct *vma;
	struct taskpeek_v2p req;
	struct mm_struct *mm;
	unsigned long page;
	int ret;

	if (copy_from_user(&req, ureq, sizeof(req)))
		return -EFAULT;
	if (req.pid < 0 || req.flags)
		return -EINVAL;
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;

	mm = taskpeek_get_mm(req.pid);
	if (IS_ERR(mm))
		return PTR_ERR(mm);
	ret = mmap_read_lock_killable(mm);
	if (ret)
		goto out_mmput;

	req.paddr = 0;
	req.page_size = 0;
	vma = vma_lookup(mm, req.vaddr);
	if (!vma) {
		ret = -ENXIO;
	} else if (is_vm_hugetlb_page(vma)) {
		ret = -EOPNOTSUPP;
	} else {
		page = req.vaddr & PAGE_MASK;
		walk_vma(vma, page, page + PAGE_SIZE, find_v2p, &req);
	}
	mmap_read_unlock(mm);
	if (!ret && copy_to_user(ureq, &req, sizeof(req)))
		ret = -EFAULT;
out_mmput:
	mmput(mm);
	return ret;
}

/* ---- /dev/taskpeek: TASKPEEK_POKE ---- */

static int poke_own_page(struct taskpeek_leaf *leaf, void *arg)
{
	struct taskpeek_poke *req = arg;
	unsigned long pfn = PHYS_PFN(req->paddr);
	unsigned long first = leaf->pfn;
	unsigned long last = first + ((leaf->end - leaf->start) >> PAGE_SHIFT) - 1;
	struct page *page;
	u8 *kaddr;

	/*
	 * Anonymous memory mapped writable is the caller's to write: a page
	 * cache page is the file's, shared with every other user of it.
	 */
	if (!leaf->normal || !leaf->writable || !PageAnon(leaf->page) ||
	    pfn < first || pfn > last)
		return 0;

	/* The PTE lock held by the walk keeps the page mapped here. */
	page = leaf->page + (pfn - first);
	kaddr = kmap_local_page(page);
	WRITE_ONCE(kaddr[offset_in_page(req->paddr)], req->value);
	kunmap_local(kaddr);
	/*
	 * The write went through the kernel's mapping, so the PTE's dirty bit
	 * knows nothing of it: after MADV_FREE a writable PTE can be clean,
	 * and reclaim would drop the page and the byte with it.
	 */
	set_page_dirty(page);
	return 1;
}

/* 1 when req->paddr was in a page mm maps writable, and is written. */
static int poke_walk(struct mm_struct *mm, struct taskpeek_poke *req)
{
	struct vm_area_struct *vma;
	VMA_ITERATOR(vmi, mm, 0);

	for_each_vma(vmi, vma) {
		if ((vma->vm_flags & VM_WRITE) &&
		    walk_vma(vma, vma->vm_start, vma->vm_end, poke_own_page, req))
			return 1;
	}
	return 0;
}

static long taskpeek_poke(struct taskpeek_poke __user *ureq)
{
	struct taskpeek_poke req;
	int ret, found;

	if (copy_from_user(&req, ureq, sizeof(req)))
		return -EFAULT;
	if (memchr_inv(req.pad, 0, sizeof(req.pad)))
		return -EINVAL;
	if (!capable(CAP_SYS_RAWIO))
		return -EPERM;

	/* Only the caller's own writable pages: walk its whole space. */
	ret = mmap_read_lock_killable(current->mm);
	if (ret)
		return ret;
	found = poke_walk(current->mm, &req);
	mmap_read_unlock(current->mm);
	return found ? 0 : -EACCES;
}

/* ---- /dev/taskpeek: TASKPEEK_EXIT_SIGNAL ---- */

/*
 * A process's request: when process exits, signal target. A request does
 * not outlive an exec (exec_id): the new program did not make it, and a
 * set-user-ID one would send it with powers the asker never had.
 */
struct taskpeek_exit_request {
	struct hlist_node node;
	struct pid *process;
	struct pid *target;
	int signal;
	u64 exec_id;
};

/*
 * At most one request per process, hashed by its struct pid: every exit
 * on the system looks its own up. The lock is taken in the exit probe too,
 * which may run in an int3 exception: every user disables interrupts.
 */
static DEFINE_HASHTABLE(exit_requests, 8);
static DEFINE_SPINLOCK(exit_requests_lock);
static unsigned int nr_exit_requests;	/* written under the lock */

/* The request of process, unlinked; NULL when it has none. */
static struct taskpeek_exit_request *take_exit_request(struct pid *process)
{
	struct taskpeek_exit_request *req;

	hash_for_each_possible(exit_requests, req, node, (unsigned long)process) {
		if (req->process == process) {
			hash_del(&req->node);
			WRITE_ONCE(nr_exit_requests, nr_exit_requests - 1);
			return req;
		}
	}
	return NULL;
}

static void free_exit_request(struct taskpeek_exit_request *req)
{
	if (!req)
		return;
	put_pid(req->process);
	put_pid(req->target);
	kfree(req);
}

/*
 * kill(2)'s rules (check_kill_permission(), not exported), but for the
 * LSM's say, which the kernel asks when the signal is sent: a process may
 * signal itself; the sender's real or effective uid is the target's real
 * or saved uid; it has CAP_KILL in the target's user namespace; SIGCONT
 * goes anywhere in the sender's session.
 */
static bool may_signal(struct task_struct *target, int sig)
{
	const struct cred *cred = current_cred();
	const struct cred *tcred;
	bool ok;

	if (same_thread_group(current, target))
		return true;
	tcred = get_task_cred(target);
	ok = uid_eq(cred->euid, tcred->suid) || uid_eq(cred->euid, tcred->uid) ||
	     uid_eq(cred->uid, tcred->suid) || uid_eq(cred->uid, tcred->uid) ||
	     ns_capable(tcred->user_ns, CAP_KILL);
	put_cred(tcred);
	if (!ok && sig == SIGCONT) {
		rcu_read_lock();
		ok = task_session(current) == task_session(target);
		rcu_read_unlock();
	}
	return ok;
}

/* The process to signal: nr's, or the caller's parent's for 0; held. */
static struct task_struct *exit_signal_target(pid_t nr)
{
	struct task_struct *task;

	rcu_read_lock();
	if (nr == 0)
		task = rcu_dereference(current->real_parent);
	else
		task = pid_task(find_vpid(nr), PIDTYPE_PID);
	if (task)
		get_task_struct(task);
	rcu_read_unlock();
	return task;
}

/* A new request for sig to process nr; an ERR_PTR when refused. */
static struct taskpeek_exit_request *new_exit_request(pid_t nr, int sig)
{
	struct taskpeek_exit_request *req;
	struct task_struct *target;
	int err = -ESRCH;

	target = exit_signal_target(nr);
	if (!target)
		return ERR_PTR(-ESRCH);
	if (!may_signal(target, sig)) {
		err = -EPERM;
		goto out_put_target;
	}
	req = kzalloc(sizeof(*req), GFP_KERNEL);
	if (!req) {
		err = -ENOMEM;
		goto out_put_target;
	}
	/* NULL once the target has been reaped meanwhile. */
	req->target = get_task_pid(target, PIDTYPE_TGID);
	put_task_struct(target);
	if (!req->target) {
		kfree(req);
		return ERR_PTR(-ESRCH);
	}
	req->process = get_task_pid(current, PIDTYPE_TGID);
	req->signal = sig;
	req->exec_id = current->self_exec_id;
	return req;

out_put_target:
	put_task_struct(target);
	return ERR_PTR(err);
}

static long taskpeek_exit_signal(struct taskpeek_exit_signal __user *ureq)
{
	struct taskpeek_exit_request *new = NULL, *old;
	struct taskpeek_exit_signal req;
	unsigned long flags;

	if (copy_from_user(&req, ureq, sizeof(req)))
		return -EFAULT;
	if (req.pid < 0 || req.signal < 0 || !valid_signal(req.signal))
		return -EINVAL;
	if (req.signal) {
		new = new_exit_request(req.pid, req.signal);
		if (IS_ERR(new))
			return PTR_ERR(new);
	}

	spin_lock_irqsave(&exit_requests_lock, flags);
	old = take_exit_request(task_tgid(current));
	if (new) {
		hash_add(exit_requests, &new->node, (unsigned long)new->process);
		WRITE_ONCE(nr_exit_requests, nr_exit_requests + 1);
	}
	spin_unlock_irqrestore(&exit_requests_lock, flags);
	free_exit_request(old);
	return 0;
}

/*
 * taskstats_exit(tsk, group_dead) is where do_exit() says whether the
 * last thread of the process is exiting (a probe on do_exit() itself
 * cannot tell: it decrements signal->live without a lock). It runs in the
 * exiting thread, before the parent is told, so the signal's sender is the
 * exiting process, and the kernel checks kill(2)'s rules (the LSM's too)
 * with its credentials as it sends.
 */
static int taskpeek_group_exit(struct kprobe *p, struct pt_regs *regs)
{
	struct taskpeek_exit_request *req;
	unsigned long flags;

	if (!regs_get_kernel_argument(regs, 1) || !READ_ONCE(nr_exit_requests))
		return 0;

	spin_lock_irqsave(&exit_requests_lock, flags);
	req = take_exit_request(task_tgid(current));
	spin_unlock_irqrestore(&exit_requests_lock, flags);
	if (req && req->exec_id == current->self_exec_id)
		/* 0: as a user's kill(), from current, checked. */
		kill_pid(req->target, req->signal, 0);
	free_exit_request(req);
	return 0;
}

static struct kprobe taskpeek_exit_probe = {
	.symbol_name	= "taskstats_exit",
	.pre_handler	= taskpeek_group_exit,
};

static long taskpeek_ioctl(struct file *file, unsigned int cmd,
			   unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case TASKPEEK_V2P:
		return taskpeek_v2p(uarg);
	case TASKPEEK_POKE:
		return taskpeek_poke(uarg);
	case TASKPEEK_EXIT_SIGNAL:
		return taskpeek_exit_signal(uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations taskpeek_fops = {
	.owner		= THIS_MODULE,
	.unlocked_ioctl	= taskpeek_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

/* Anyone may open it: each ioctl checks who asks. */
static struct miscdevice taskpeek_dev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "taskpeek",
	.fops	= &taskpeek_fops,
	.mode	= 0666,
};

/* ---- init and exit ---- */

static struct taskpeek_selection children_sel = {
	.lock = __SPIN_LOCK_UNLOCKED(children_sel.lock),
	.show = children_show,
};

static struct taskpeek_selection memory_sel = {
	.lock = __SPIN_LOCK_UNLOCKED(memory_sel.lock),
	.show = memory_show,
};

static struct proc_dir_entry *hello_entry, *pgfaults_entry, *taskpeek_dir;

/* proc_remove() takes NULL: only what was made is removed. */
static void taskpeek_remove_proc(void)
{
	proc_remove(taskpeek_dir);
	proc_remove(pgfaults_entry);
	proc_remove(hello_entry);
}

static int __init taskpeek_create_proc(void)
{
	hello_entry = proc_create_single("hello_procfs", 0444, NULL, hello_show);
	pgfaults_entry = proc_create_single("get_pgfaults", 0444, NULL,
					    pgfaults_show);
	taskpeek_dir = proc_mkdir("taskpeek", NULL);
	if (!hello_entry || !pgfaults_entry || !taskpeek_dir ||
	    !proc_create_single("runnable", 0444, taskpeek_dir, runnable_show) ||
	    !proc_create_data("children", 0666, taskpeek_dir, &selection_ops,
			      &children_sel) ||
	    !proc_create_data("memory", 0666, taskpeek_dir, &selection_ops,
			      &memory_sel)) {
		taskpeek_remove_proc();
		return -ENOMEM;
	}
	return 0;
}

static int __init taskpeek_init(void)
{
	int ret;

	ret = taskpeek_create_proc();
	if (ret)
		return ret;
	ret = register_kprobe(&taskpeek_exit_probe);
	if (ret) {
		pr_err("register_kprobe(taskstats_exit): %d (needs CONFIG_KPROBES and CONFIG_TASKSTATS)\n",
		       ret);
		goto out_proc;
	}
	ret = misc_register(&taskpeek_dev);
	if (ret) {
		pr_err("misc_register: %d\n", ret);
		goto out_kprobe;
	}
	return 0;

out_kprobe:
	unregister_kprobe(&taskpeek_exit_probe);
out_proc:
	taskpeek_remove_proc();
	return ret;
}

static void __exit taskpeek_exit(void)
{
	struct taskpeek_exit_request *req;
	struct hlist_node *next;
	int bkt;

	misc_deregister(&taskpeek_dev);
	/* Waits for running handlers: nothing uses the table after this. */
	unregister_kprobe(&taskpeek_exit_probe);
	hash_for_each_safe(exit_requests, bkt, next, req, node) {
		hash_del(&req->node);
		free_exit_request(req);
	}
	taskpeek_remove_proc();
	put_pid(children_sel.pid);
	put_pid(memory_sel.pid);
}

module_init(taskpeek_init);
module_exit(taskpeek_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("A look into tasks and memory: runnable tasks, children, virtual to physical, page faults");
