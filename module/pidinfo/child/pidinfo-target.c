// SPDX-License-Identifier: GPL-2.0
/*
 * pidinfo-target: processes whose parents, children and directories
 * pidinfo's guest tests know, and the calls a Go program cannot make
 * (ft_fork) or should not (ft_wait on children its runtime does not know).
 * In C, including the ABI's header: it is also the example of its use.
 *
 *   exit		exit at once (a PID that no process has once it is reaped)
 * Modes that print "ready ..." and then sleep until killed:
 *   pause		ready
 *   tree K G T		fork K children, each with G children of its own,
 *			and T more children from a second thread: "ready
 *			<children> <grandchildren>", comma-separated PIDs or "-"
 *   jail DIR SUB	chroot to DIR, chdir to SUB: "ready"
 *   zombie		fork a child that exits and is never reaped: "ready <child>"
 *   catch		block every signal it can and print each one that comes:
 *			"signal <signo> <si_pid> <si_code> <si_uid>"
 *   fork		ft_fork: "ready <ret> <x> <child's pid> <child's parent>
 *			<child's ret> <child's x>"; both started with x = 1,
 *			the child wrote 2 and the parent 3 after the fork
 * Modes that print one line and exit:
 *   abi		sizeof(struct pid_info), each field's offset, PID_INFO_GET
 *			and the system call numbers
 *   info sys|dev PID MAX	get_pid_info by the system call or the ioctl,
 *			with room for MAX children: "<errno> <flags> <start_stack>
 *			<nr_children>", then the root and cwd lines
 *   kill PID SIG	ft_kill: "<errno>"
 *   wait ft|libc CASE	ft_wait, or the C library's wait(2) to compare, on
 *			CASE: exit N (a child exits with N), signal S (is killed
 *			by S), stopped (is stopped, then killed by SIGKILL), cpu
 *			MS (exits after MS ms), eintr (SIGALRM without
 *			SA_RESTART arrives first), none (no children):
 *			"<ret> <errno> <status> <child> <cpu ns> <wall ns>"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../pid_info.h"

static void die(const char *what)
{
	fprintf(stderr, "pidinfo-target: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void ready(const char *info)
{
	printf("ready%s%s\n", *info ? " " : "", info);
	fflush(stdout);
}

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* A child that dies with its parent, so that no test leaves one behind. */
static pid_t fork_tied(void)
{
	pid_t parent = getpid(), pid = fork();

	if (pid < 0)
		die("fork");
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
	}
	return pid;
}

static void append_pid(char *list, size_t size, pid_t pid)
{
	size_t n = strlen(list);

	snprintf(list + n, size - n, "%s%d", n ? "," : "", pid);
}

struct thread_children {
	int n, fd;
};

static void *fork_from_thread(void *arg)
{
	struct thread_children *tc = arg;

	for (int i = 0; i < tc->n; i++) {
		pid_t pid = fork_tied();

		if (pid == 0)
			sleeper(NULL);
		if (write(tc->fd, &pid, sizeof(pid)) != sizeof(pid))
			die("write");
	}
	return sleeper(NULL);
}

static int tree(int k, int g, int t)
{
	char children[4096] = "", grandchildren[4096] = "";
	struct thread_children tc = { .n = t };
	int fds[2];
	pthread_t th;
	pid_t pid;

	if (pipe(fds))
		die("pipe");
	for (int i = 0; i < k; i++) {
		pid = fork_tied();
		if (pid == 0) {
			for (int j = 0; j < g; j++) {
				pid_t gc = fork_tied();

				if (gc == 0)
					sleeper(NULL);
				if (write(fds[1], &gc, sizeof(gc)) != sizeof(gc))
					die("write");
			}
			sleeper(NULL);
		}
		append_pid(children, sizeof(children), pid);
	}
	for (int i = 0; i < k * g; i++) {
		if (read(fds[0], &pid, sizeof(pid)) != sizeof(pid))
			die("read");
		append_pid(grandchildren, sizeof(grandchildren), pid);
	}
	tc.fd = fds[1];
	if (t > 0 && pthread_create(&th, NULL, fork_from_thread, &tc))
		die("pthread_create");
	for (int i = 0; i < t; i++) {
		if (read(fds[0], &pid, sizeof(pid)) != sizeof(pid))
			die("read");
		append_pid(children, sizeof(children), pid);
	}
	printf("ready %s %s\n", *children ? children : "-",
	       *grandchildren ? grandchildren : "-");
	fflush(stdout);
	sleeper(NULL);
	return 0;
}

static int jail(const char *dir, const char *sub)
{
	if (chroot(dir))
		die("chroot");
	if (chdir(sub))
		die("chdir");
	ready("");
	sleeper(NULL);
	return 0;
}

static int zombie(void)
{
	char info[16];
	pid_t pid = fork_tied();

	if (pid == 0)
		_exit(0);
	snprintf(info, sizeof(info), "%d", pid);
	ready(info);
	sleeper(NULL);
	return 0;
}

static int __attribute__((noreturn)) catch(void)
{
	siginfo_t si;
	sigset_t all;

	sigfillset(&all);
	if (sigprocmask(SIG_BLOCK, &all, NULL))
		die("sigprocmask");
	ready("");
	for (;;) {
		if (sigwaitinfo(&all, &si) < 0) {
			if (errno == EINTR)
				continue;
			die("sigwaitinfo");
		}
		printf("signal %d %d %d %u\n", si.si_signo, si.si_pid,
		       si.si_code, si.si_uid);
		fflush(stdout);
	}
}

struct fork_report {
	long ret;
	int x;
	pid_t pid, ppid;
};

static int fork_mode(void)
{
	volatile int x = 1;
	struct fork_report child;
	char info[128];
	int fds[2];
	long ret;

	if (pipe(fds))
		die("pipe");
	ret = syscall(__NR_ft_fork);
	if (ret < 0)
		die("ft_fork");
	if (ret == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		x = 2;
		child = (struct fork_report){ .ret = ret, .x = x,
					      .pid = getpid(),
					      .ppid = getppid() };
		if (write(fds[1], &child, sizeof(child)) != sizeof(child))
			die("write");
		sleeper(NULL);
	}
	if (read(fds[0], &child, sizeof(child)) != sizeof(child))
		die("read");
	/* the child has written its x: the parent's must still be 1 */
	snprintf(info, sizeof(info), "%ld %d %d %d %ld %d", ret, x, child.pid,
		 child.ppid, child.ret, child.x);
	x = 3;
	ready(info);
	sleeper(NULL);
	return 0;
}

static int abi(void)
{
	printf("size %zu children %zu children_max %zu nr_children %zu pid %zu state %zu start_stack %zu age_ns %zu ppid %zu flags %zu root %zu cwd %zu get %lu nr %d %d %d %d\n",
	       sizeof(struct pid_info),
	       offsetof(struct pid_info, children),
	       offsetof(struct pid_info, children_max),
	       offsetof(struct pid_info, nr_children),
	       offsetof(struct pid_info, pid),
	       offsetof(struct pid_info, state),
	       offsetof(struct pid_info, start_stack),
	       offsetof(struct pid_info, age_ns),
	       offsetof(struct pid_info, ppid),
	       offsetof(struct pid_info, flags),
	       offsetof(struct pid_info, root),
	       offsetof(struct pid_info, cwd),
	       (unsigned long)PID_INFO_GET, __NR_get_pid_info, __NR_ft_kill,
	       __NR_ft_wait, __NR_ft_fork);
	return 0;
}

static int info(const char *how, pid_t pid, unsigned int max)
{
	static struct pid_info pi;
	int32_t *children = calloc(max ? max : 1, sizeof(*children));
	int err = 0;

	pi.children = (uintptr_t)children;
	pi.children_max = max;
	if (!strcmp(how, "sys")) {
		if (syscall(__NR_get_pid_info, &pi, pid))
			err = errno;
	} else {
		int fd = open("/dev/pidinfo", O_RDONLY | O_CLOEXEC);

		pi.pid = pid;
		if (fd < 0 || ioctl(fd, PID_INFO_GET, &pi))
			err = errno;
	}
	printf("%d %u %llu %u\n%s\n%s\n", err, pi.flags,
	       (unsigned long long)pi.start_stack, pi.nr_children, pi.root,
	       pi.cwd);
	return 0;
}

static void on_alarm(int sig)
{
	(void)sig;
}

static void *kill_later(void *arg)
{
	struct timespec ts = { 0, 200 * 1000 * 1000 };

	nanosleep(&ts, NULL);
	kill(*(pid_t *)arg, SIGKILL);
	return NULL;
}

static int64_t ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Starts the child of case c (argv: its words), and what comes first. */
static pid_t wait_case(char **c, int n)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	static pid_t child;
	pthread_t th;

	if (n == 1 && !strcmp(c[0], "none"))
		return 0;
	child = fork_tied();
	if (child == 0) {
		if (n == 2 && !strcmp(c[0], "exit"))
			_exit(atoi(c[1]));
		if (n == 2 && !strcmp(c[0], "cpu")) {
			struct timespec ts = { 0, atoi(c[1]) * 1000000L };

			while (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			nanosleep(&ts, NULL);
			_exit(0);
		}
		sleeper(NULL);
	}
	if (n == 2 && !strcmp(c[0], "signal")) {
		kill(child, atoi(c[1]));
	} else if (n == 1 && !strcmp(c[0], "stopped")) {
		kill(child, SIGSTOP);
		if (pthread_create(&th, NULL, kill_later, &child))
			die("pthread_create");
	} else if (n == 1 && !strcmp(c[0], "eintr")) {
		/* no SA_RESTART: the wait ends with EINTR */
		if (sigaction(SIGALRM, &sa, NULL))
			die("sigaction");
		alarm(1);
	}
	return child;
}

static int wait_mode(const char *how, char **c, int n)
{
	int64_t cpu, wall;
	int status = 0, err = 0;
	pid_t child = wait_case(c, n);
	long ret;

	cpu = ns(CLOCK_THREAD_CPUTIME_ID);
	wall = ns(CLOCK_MONOTONIC);
	if (!strcmp(how, "ft"))
		ret = syscall(__NR_ft_wait, &status);
	else
		ret = wait(&status);
	if (ret < 0)
		err = errno;
	cpu = ns(CLOCK_THREAD_CPUTIME_ID) - cpu;
	wall = ns(CLOCK_MONOTONIC) - wall;
	printf("%ld %d %d %d %lld %lld\n", ret, err, status, child,
	       (long long)cpu, (long long)wall);
	fflush(stdout);
	if (ret < 0 && child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "exit"))
		return 0;
	if (argc == 2 && !strcmp(argv[1], "pause")) {
		ready("");
		sleeper(NULL);
	}
	if (argc == 5 && !strcmp(argv[1], "tree"))
		return tree(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "jail"))
		return jail(argv[2], argv[3]);
	if (argc == 2 && !strcmp(argv[1], "zombie"))
		return zombie();
	if (argc == 2 && !strcmp(argv[1], "catch"))
		return catch();
	if (argc == 2 && !strcmp(argv[1], "fork"))
		return fork_mode();
	if (argc == 2 && !strcmp(argv[1], "abi"))
		return abi();
	if (argc == 5 && !strcmp(argv[1], "info"))
		return info(argv[2], atoi(argv[3]), strtoul(argv[4], NULL, 0));
	if (argc == 4 && !strcmp(argv[1], "kill")) {
		long ret = syscall(__NR_ft_kill, atoi(argv[2]), atoi(argv[3]));

		printf("%d\n", ret ? errno : 0);
		return 0;
	}
	if (argc >= 4 && !strcmp(argv[1], "wait"))
		return wait_mode(argv[2], argv + 3, argc - 3);
	fprintf(stderr, "usage: pidinfo-target exit | pause | tree K G T | jail DIR SUB | zombie | catch | fork | abi | info sys|dev PID MAX | kill PID SIG | wait ft|libc CASE\n");
	return 2;
}
