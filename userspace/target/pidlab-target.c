// SPDX-License-Identifier: GPL-2.0
/*
 * pidlab-target - a process whose facts a conformance test knows.
 *
 * A Go test binary has a varying number of runtime threads, CPU time and
 * memory; this program does exactly one thing per mode, then prints one
 * line "ready[ <info>]\n" on stdout so the test can read it from a pipe
 * and know the setup is complete. Afterwards it never prints again, and
 * it waits to be killed.
 *
 * Build: gcc -static -O2 -Wall -Wextra -pthread -o pidlab-target pidlab-target.c
 *
 * Modes:
 *   sleep                 block in pause()
 *   spin                  burn user CPU time
 *   syscalls              burn system CPU time (read(2) from /dev/zero)
 *   threads N             N threads in all; the N-1 extra ones are named
 *                         "pidlab-thr<i>" and block; info: their TIDs
 *   spin-threads N        N extra threads burn user CPU while the leader
 *                         blocks; info: their TIDs
 *   comm NAME             set the comm to NAME (prctl), then block
 *   creds RUID EUID RGID EGID
 *                         set real and effective/saved IDs, then block
 *   view [TEXT]           write TEXT and a newline to /proc/pid in one
 *                         write(2) if given, then read /proc/pid and block;
 *                         info: "write=<errno> read=<errno> pid=<v> ppid=<v>"
 *                         (errno 0 for success; v is "-" if not read)
 *   view-in PID [TEXT]    enter the PID namespace of process PID and fork a
 *                         child there that does what view does (the child
 *                         prints the line); then block
 *   open-modes            try to open /proc/pid for reading and for writing,
 *                         then block; info: "read=<errno> write=<errno>"
 *                         (0 for success), or "stat=<errno>" if the path
 *                         itself cannot be reached
 *   exit                  exit at once after "ready" (for a zombie)
 *   exit-child            fork a child that exits at once and is never
 *                         reaped, then block; info: the child's PID
 *   trace PID             become the tracer of process PID (PTRACE_SEIZE:
 *                         it keeps running), then block; the kernel
 *                         detaches it when this process dies
 *   tasks N               start N processes (1..MAX_TASKS) that block,
 *                         then wait for SIGTERM: it kills and reaps them
 *                         all and exits 0 (a SIGKILL of this process kills
 *                         them too, but leaves them to init to reap). They
 *                         share this process's memory (CLONE_VM), so each
 *                         costs a task, not an address space: 10,000 fit a
 *                         small guest. The caller may need to raise
 *                         kernel.threads-max first.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_THREADS	64
#define MAX_TASKS	20000
/* A task of mode tasks runs task_main only: a page of stack is plenty. */
#define TASK_STACK	4096

/* Written to by spinners so the compiler cannot drop the loop. */
static volatile unsigned long spin_sink;

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void ready(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("pidlab-target: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

/*
 * One write(2) per line: the test reads a pipe, so stdio buffering would
 * hold the line back until exit.
 */
static void ready(const char *fmt, ...)
{
	char line[1024] = "ready";
	size_t len = strlen(line);
	va_list ap;

	if (fmt) {
		line[len++] = ' ';
		va_start(ap, fmt);
		vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
		va_end(ap);
		len = strlen(line);
	}
	line[len++] = '\n';
	if (write(STDOUT_FILENO, line, len) != (ssize_t)len)
		die("write ready line: %s", strerror(errno));
}

static void block_forever(void)
{
	for (;;)
		pause();
}

static void spin_forever(void)
{
	for (;;)
		spin_sink++;
}

static long parse_long(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		die("%s: want an integer in [%ld, %ld]", s, min, max);
	return v;
}

static void mode_syscalls(void)
{
	static char buf[64 * 1024];
	int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("open /dev/zero: %s", strerror(errno));
	ready(NULL);
	/* Clearing the user buffer is kernel work: stime grows, utime barely. */
	for (;;)
		if (read(fd, buf, sizeof(buf)) < 0)
			die("read /dev/zero: %s", strerror(errno));
}

struct thread_arg {
	int index;
	int spin;
	pid_t tid;
	pthread_barrier_t *started;
};

static void *thread_main(void *p)
{
	struct thread_arg *arg = p;
	char name[16];

	arg->tid = (pid_t)syscall(SYS_gettid);
	snprintf(name, sizeof(name), "pidlab-thr%d", arg->index);
	prctl(PR_SET_NAME, name, 0, 0, 0);
	/* The barrier orders the tid store before the leader prints it. */
	pthread_barrier_wait(arg->started);
	if (arg->spin)
		spin_forever();
	block_forever();
	return NULL;
}

/* Start n threads, print their TIDs once all of them run, then block. */
static void mode_threads(int n, int spin)
{
	static struct thread_arg args[MAX_THREADS];
	char info[MAX_THREADS * 12] = "";
	pthread_barrier_t started;
	pthread_t th;
	int i, err;

	if (pthread_barrier_init(&started, NULL, (unsigned int)n + 1))
		die("pthread_barrier_init failed");
	for (i = 0; i < n; i++) {
		args[i] = (struct thread_arg){ .index = i + 1, .spin = spin, .started = &started };
		err = pthread_create(&th, NULL, thread_main, &args[i]);
		if (err)
			die("pthread_create: %s", strerror(err));
	}
	pthread_barrier_wait(&started);
	for (i = 0; i < n; i++) {
		size_t len = strlen(info);

		snprintf(info + len, sizeof(info) - len, "%s%d", i ? " " : "", (int)args[i].tid);
	}
	if (n)
		ready("%s", info);
	else
		ready(NULL);
	block_forever();
}

static void mode_creds(char **argv)
{
	uid_t ruid = (uid_t)parse_long(argv[0], 0, INT_MAX);
	uid_t euid = (uid_t)parse_long(argv[1], 0, INT_MAX);
	gid_t rgid = (gid_t)parse_long(argv[2], 0, INT_MAX);
	gid_t egid = (gid_t)parse_long(argv[3], 0, INT_MAX);

	/* Groups first and UIDs last: changing UIDs drops the privilege. */
	if (setgroups(0, NULL))
		die("setgroups: %s", strerror(errno));
	if (setresgid(rgid, egid, egid))
		die("setresgid: %s", strerror(errno));
	if (setresuid(ruid, euid, euid))
		die("setresuid: %s", strerror(errno));
	ready(NULL);
	block_forever();
}

/* errno of one write(2) of "TEXT\n" to /proc/pid, or 0. */
static int write_pid(const char *text)
{
	char buf[256];
	int fd, len, err = 0;

	len = snprintf(buf, sizeof(buf), "%s\n", text);
	if (len < 0 || (size_t)len >= sizeof(buf))
		die("view: text too long");
	fd = open("/proc/pid", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (write(fd, buf, (size_t)len) != len)
		err = errno;
	close(fd);
	return err;
}

/*
 * Copy the value of the "key: value" line of record into out, or "-" if
 * there is none. Values have no spaces except comm's, which is not asked.
 */
static void record_value(const char *record, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);
	const char *line = record;

	snprintf(out, size, "-");
	while (line && *line) {
		if (!strncmp(line, key, klen) && line[klen] == ':' && line[klen + 1] == ' ') {
			size_t vlen = strcspn(line + klen + 2, "\n");

			snprintf(out, size, "%.*s", (int)vlen, line + klen + 2);
			return;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
}

/*
 * Optionally select TEXT, then read /proc/pid, all from this process's
 * namespaces, which is the point: run in a new PID namespace, it shows
 * what the module resolves and reports there.
 */
static void mode_view(const char *text)
{
	char record[4096], pid[32], ppid[32];
	int werr = text ? write_pid(text) : 0;
	int rerr = 0, fd;
	ssize_t n = 0, got;

	fd = open("/proc/pid", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rerr = errno;
	} else {
		while ((got = read(fd, record + n, sizeof(record) - 1 - (size_t)n)) > 0)
			n += got;
		if (got < 0)
			rerr = errno;
		close(fd);
	}
	record[n] = '\0';
	record_value(record, "pid", pid, sizeof(pid));
	record_value(record, "ppid", ppid, sizeof(ppid));
	ready("write=%d read=%d pid=%s ppid=%s", werr, rerr, pid, ppid);
	block_forever();
}

/*
 * setns() moves only the children that are forked afterwards into the PID
 * namespace of pid, so the view runs in a child, which stays there (a
 * process in the namespace whose parent is not) until the namespace's
 * init dies, which kills it.
 */
static void mode_view_in(const char *pid, const char *text)
{
	char path[64];
	pid_t child;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/ns/pid", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	if (setns(fd, CLONE_NEWPID))
		die("setns %s: %s", path, strerror(errno));
	close(fd);
	child = fork();
	if (child < 0)
		die("fork: %s", strerror(errno));
	if (child == 0)
		mode_view(text);
	block_forever();
}

/* errno of open(path, flags), or 0 if it opened. */
static int open_errno(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static void mode_open_modes(void)
{
	struct stat st;

	/* A directory on the way that denies search also gives EACCES. */
	if (stat("/proc/pid", &st))
		ready("stat=%d", errno);
	else
		ready("read=%d write=%d", open_errno("/proc/pid", O_RDONLY),
		      open_errno("/proc/pid", O_WRONLY));
	block_forever();
}

static void mode_exit_child(void)
{
	pid_t child = fork();

	if (child < 0)
		die("fork: %s", strerror(errno));
	if (child == 0)
		_exit(0);
	/* Never waited for: the child stays a zombie while we live. */
	ready("%d", (int)child);
	block_forever();
}

/*
 * Seize rather than attach: the tracee is not stopped, so its state stays
 * what it was, and only its tracer (task->parent) changes, not its real
 * parent. Never waiting for it is harmless: a seized tracee that is not
 * stopped sends its tracer nothing, and a SIGCHLD only ends one pause().
 */
static void mode_trace(const char *arg)
{
	pid_t pid = (pid_t)parse_long(arg, 1, INT_MAX);

	if (ptrace(PTRACE_SEIZE, pid, NULL, NULL))
		die("PTRACE_SEIZE %d: %s", (int)pid, strerror(errno));
	ready(NULL);
	block_forever();
}

static pid_t tasks_parent;
/* How many tasks of mode tasks are running, set up to die with it. */
static atomic_int tasks_started;

static int task_main(void *unused __attribute__((unused)))
{
	/*
	 * The parent's memory is shared, errno included: nothing here may
	 * rely on errno. The parent may have died before the prctl(), so
	 * check it is still there after.
	 */
	if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) ||
	    syscall(SYS_getppid) != tasks_parent)
		syscall(SYS_exit, 1);
	atomic_fetch_add(&tasks_started, 1);
	for (;;)
		syscall(SYS_pause);
	return 0;
}

static void mode_tasks(int n)
{
	const int flags = CLONE_VM | CLONE_FS | CLONE_FILES | SIGCHLD;
	static pid_t tasks[MAX_TASKS];
	sigset_t term;
	char *stacks;
	int i, sig, waited;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &term, NULL))
		die("block SIGTERM: %s", strerror(errno));
	tasks_parent = getpid();
	stacks = mmap(NULL, (size_t)n * TASK_STACK, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (stacks == MAP_FAILED)
		die("mmap %d stacks: %s", n, strerror(errno));
	for (i = 0; i < n; i++) {
		tasks[i] = clone(task_main, stacks + (size_t)(i + 1) * TASK_STACK, flags, NULL);
		if (tasks[i] < 0)
			die("clone task %d of %d: %s", i + 1, n, strerror(errno));
	}
	/* "ready" promises n running tasks: wait for the last (60 s at most). */
	for (waited = 0; atomic_load(&tasks_started) < n; waited++) {
		if (waited == 60000)
			die("only %d of %d tasks started", atomic_load(&tasks_started), n);
		usleep(1000);
	}
	ready(NULL);
	if (sigwait(&term, &sig))
		die("sigwait");
	for (i = 0; i < n; i++)
		kill(tasks[i], SIGKILL);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	exit(0);
}

static void usage(void)
{
	die("usage: pidlab-target sleep|spin|syscalls|threads N|spin-threads N|"
	    "comm NAME|creds RUID EUID RGID EGID|view [TEXT]|view-in PID [TEXT]|open-modes|exit|exit-child|trace PID|tasks N");
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int nargs = argc - 2;

	if (!strcmp(mode, "sleep") && nargs == 0) {
		ready(NULL);
		block_forever();
	} else if (!strcmp(mode, "spin") && nargs == 0) {
		ready(NULL);
		spin_forever();
	} else if (!strcmp(mode, "syscalls") && nargs == 0) {
		mode_syscalls();
	} else if (!strcmp(mode, "threads") && nargs == 1) {
		mode_threads((int)parse_long(argv[2], 1, MAX_THREADS) - 1, 0);
	} else if (!strcmp(mode, "spin-threads") && nargs == 1) {
		mode_threads((int)parse_long(argv[2], 1, MAX_THREADS), 1);
	} else if (!strcmp(mode, "comm") && nargs == 1) {
		if (prctl(PR_SET_NAME, argv[2], 0, 0, 0))
			die("prctl(PR_SET_NAME): %s", strerror(errno));
		ready(NULL);
		block_forever();
	} else if (!strcmp(mode, "creds") && nargs == 4) {
		mode_creds(argv + 2);
	} else if (!strcmp(mode, "view") && nargs <= 1) {
		mode_view(nargs ? argv[2] : NULL);
	} else if (!strcmp(mode, "view-in") && (nargs == 1 || nargs == 2)) {
		mode_view_in(argv[2], nargs == 2 ? argv[3] : NULL);
	} else if (!strcmp(mode, "open-modes") && nargs == 0) {
		mode_open_modes();
	} else if (!strcmp(mode, "exit") && nargs == 0) {
		ready(NULL);
		return 0;
	} else if (!strcmp(mode, "exit-child") && nargs == 0) {
		mode_exit_child();
	} else if (!strcmp(mode, "trace") && nargs == 1) {
		mode_trace(argv[2]);
	} else if (!strcmp(mode, "tasks") && nargs == 1) {
		mode_tasks((int)parse_long(argv[2], 1, MAX_TASKS));
	}
	usage();
	return 2;
}
