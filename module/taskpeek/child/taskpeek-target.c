// SPDX-License-Identifier: GPL-2.0
/*
 * taskpeek-target: processes whose tasks and memory taskpeek's guest tests
 * know, in C so that no runtime adds threads, mappings or page faults.
 *
 *   exit		exit at once (a PID that no process has once it is reaped)
 *   spin		print "ready", then run forever (state R)
 *   pause		print "ready", then sleep forever (state S)
 *   tree K G T		fork K children, each with G children of its own
 *			(grandchildren), start T threads, then sleep; print
 *			"ready <children> <grandchildren>", each a comma-separated
 *			list of PIDs or "-". Child i is named "child-<i>",
 *			except child 1 "two words" and child 2 "new\nline".
 *   mem		print "ready", then answer commands on stdin, a line each:
 *     map N		  map N anonymous pages (no huge pages): "<address>"
 *     touch A N B	  write byte B into each of N pages from A: "ok"
 *     read A N		  read a byte of each of N pages from A: "ok <sum>"
 *     thp		  map 2 MiB aligned to 2 MiB with MADV_HUGEPAGE and write
 *			  its first byte: "<address>"
 *     v2p P A		  TASKPEEK_V2P: "<errno> <flags> <paddr> <page size>"
 *     poke PA B	  TASKPEEK_POKE: "<errno>"
 *     exitsig P S	  TASKPEEK_EXIT_SIGNAL: "<errno>"
 *     memory P		  write P to /proc/taskpeek/memory and read it: "<errno>"
 *     exec		  exec this program's exit mode (no answer)
 *   station N S	the control station: block signal S, fork N soldiers that
 *			each ask /dev/taskpeek for S to their parent when they
 *			exit, then start two threads and wait for them to exit
 *			(a thread's exit is not the process's), print "ready
 *			<soldier PIDs>", then answer:
 *     release P	  let soldier P exit, then wait for a signal: "signal
 *			  <signo> <si_pid> <si_code>" or "none" after 20 s
 *     release-all	  let every soldier exit, then the same for N signals
 *     quiet MS		  wait MS milliseconds for a signal: "none" or "signal ..."
 *
 * Numbers are read with strtoul/strtol base 0 (0x... is hex).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../taskpeek.h"

#define MAX_SOLDIERS 64

static void die(const char *what)
{
	fprintf(stderr, "taskpeek-target: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void ready(const char *info)
{
	printf("ready%s%s\n", *info ? " " : "", info);
	fflush(stdout);
}

static int device(void)
{
	static int fd = -1;

	if (fd < 0)
		fd = open("/dev/taskpeek", O_RDWR | O_CLOEXEC);
	return fd;
}

/* An ioctl of /dev/taskpeek: 0 or the errno. */
static int request(unsigned long cmd, void *arg)
{
	int fd = device();

	if (fd < 0)
		return errno;
	return ioctl(fd, cmd, arg) ? errno : 0;
}

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void append_pid(char *list, size_t size, pid_t pid)
{
	size_t n = strlen(list);

	snprintf(list + n, size - n, "%s%d", n ? "," : "", pid);
}

static const char *child_name(int i, char *buf, size_t size)
{
	if (i == 1)
		return "two words";
	if (i == 2)
		return "new\nline";
	snprintf(buf, size, "child-%d", i);
	return buf;
}

static int tree(int k, int g, int threads)
{
	char children[4096] = "", grandchildren[4096] = "", name[24];
	int fds[2];
	pthread_t th;
	pid_t pid;

	if (pipe(fds))
		die("pipe");
	for (int i = 0; i < k; i++) {
		pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			prctl(PR_SET_NAME, child_name(i, name, sizeof(name)));
			for (int j = 0; j < g; j++) {
				pid_t gc = fork();

				if (gc < 0)
					die("fork");
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
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&th, NULL, sleeper, NULL))
			die("pthread_create");
	}
	printf("ready %s %s\n", *children ? children : "-",
	       *grandchildren ? grandchildren : "-");
	fflush(stdout);
	sleeper(NULL);
	return 0;
}

/* Writes pid to /proc/taskpeek/memory and reads it: 0 or the errno. */
static int read_memory(const char *pid)
{
	char buf[256];
	int fd = open("/proc/taskpeek/memory", O_RDWR | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return errno;
	if (write(fd, pid, strlen(pid)) < 0 || read(fd, buf, sizeof(buf)) < 0)
		err = errno;
	close(fd);
	return err;
}

static void *exit_at_once(void *arg)
{
	return arg;
}

static void mem_command(char *line)
{
	char *word = strtok(line, " \n");
	char *a1 = strtok(NULL, " \n"), *a2 = strtok(NULL, " \n");
	char *a3 = strtok(NULL, " \n");
	long page = sysconf(_SC_PAGESIZE);

	if (!word) {
		printf("error empty command\n");
	} else if (!strcmp(word, "map") && a1) {
		size_t len = strtoul(a1, NULL, 0) * page;
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			die("mmap");
		/*
		 * One 4 KiB page a touch, even under THP "always"; EINVAL is a
		 * kernel without THP, where that is so anyway.
		 */
		if (madvise(p, len, MADV_NOHUGEPAGE) && errno != EINVAL)
			die("madvise");
		printf("%p\n", p);
	} else if (!strcmp(word, "touch") && a3) {
		volatile char *p = (char *)strtoul(a1, NULL, 0);
		unsigned long n = strtoul(a2, NULL, 0);

		for (unsigned long i = 0; i < n; i++)
			p[i * page] = (char)strtoul(a3, NULL, 0);
		printf("ok\n");
	} else if (!strcmp(word, "read") && a2) {
		volatile char *p = (char *)strtoul(a1, NULL, 0);
		unsigned long n = strtoul(a2, NULL, 0);
		unsigned long sum = 0;

		for (unsigned long i = 0; i < n; i++)
			sum += (unsigned char)p[i * page];
		printf("ok %lu\n", sum);
	} else if (!strcmp(word, "thp")) {
		size_t huge = 2UL << 20;
		char *p = mmap(NULL, 2 * huge, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			die("mmap");
		p = (char *)(((unsigned long)p + huge - 1) & ~(huge - 1));
		if (madvise(p, huge, MADV_HUGEPAGE))
			die("madvise");
		*(volatile char *)p = 1;
		printf("%p\n", (void *)p);
	} else if (!strcmp(word, "v2p") && a2) {
		struct taskpeek_v2p req = {
			.pid = strtol(a1, NULL, 0),
			.vaddr = strtoul(a2, NULL, 0),
		};
		int err = request(TASKPEEK_V2P, &req);

		printf("%d %u %#llx %llu\n", err, req.flags,
		       (unsigned long long)req.paddr,
		       (unsigned long long)req.page_size);
	} else if (!strcmp(word, "poke") && a2) {
		struct taskpeek_poke req = {
			.paddr = strtoul(a1, NULL, 0),
			.value = strtoul(a2, NULL, 0),
		};

		printf("%d\n", request(TASKPEEK_POKE, &req));
	} else if (!strcmp(word, "exitsig") && a2) {
		struct taskpeek_exit_signal req = {
			.pid = strtol(a1, NULL, 0),
			.signal = strtol(a2, NULL, 0),
		};

		printf("%d\n", request(TASKPEEK_EXIT_SIGNAL, &req));
	} else if (!strcmp(word, "memory") && a1) {
		printf("%d\n", read_memory(a1));
	} else if (!strcmp(word, "exec")) {
		execl("/proc/self/exe", "taskpeek-target", "exit", (char *)NULL);
		die("exec");
	} else {
		printf("error unknown command %s\n", word);
	}
	fflush(stdout);
}

static int mem(void)
{
	char line[256];

	ready("");
	while (fgets(line, sizeof(line), stdin))
		mem_command(line);
	return 0;
}

/* A soldier: asks for sig to its parent at its exit, exits at EOF on fd. */
static void soldier(int sig, int fd, int report)
{
	struct taskpeek_exit_signal req = { .pid = 0, .signal = sig };
	int err = request(TASKPEEK_EXIT_SIGNAL, &req);
	pthread_t threads[2];
	char c;

	for (int i = 0; i < 2; i++) {
		if (pthread_create(&threads[i], NULL, exit_at_once, NULL))
			die("pthread_create");
	}
	for (int i = 0; i < 2; i++)
		pthread_join(threads[i], NULL);
	if (write(report, &err, sizeof(err)) != sizeof(err))
		die("write");
	while (read(fd, &c, 1) > 0)
		;
	_exit(0);
}

/* Waits up to ms for sig and prints what came. */
static void await_signal(sigset_t *set, long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };
	siginfo_t si;

	if (sigtimedwait(set, &si, &ts) < 0) {
		if (errno != EAGAIN)
			die("sigtimedwait");
		printf("none\n");
	} else {
		printf("signal %d %d %d\n", si.si_signo, si.si_pid, si.si_code);
	}
	fflush(stdout);
}

static int station(int n, int sig)
{
	pid_t pids[MAX_SOLDIERS];
	int release[MAX_SOLDIERS], report[2], fds[2], err;
	char info[MAX_SOLDIERS * 12] = "", line[256];
	sigset_t set;

	if (n < 1 || n > MAX_SOLDIERS)
		die("station: soldiers out of range");
	sigemptyset(&set);
	sigaddset(&set, sig);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		die("sigprocmask");
	if (pipe(report))
		die("pipe");
	for (int i = 0; i < n; i++) {
		if (pipe(fds))
			die("pipe");
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork");
		if (pids[i] == 0) {
			/* Only the station may hold a soldier's release pipe. */
			for (int j = 0; j < i; j++)
				close(release[j]);
			close(fds[1]);
			soldier(sig, fds[0], report[1]);
		}
		close(fds[0]);
		release[i] = fds[1];
		if (read(report[0], &err, sizeof(err)) != sizeof(err))
			die("read");
		if (err) {
			printf("error soldier %d: TASKPEEK_EXIT_SIGNAL: %s\n",
			       pids[i], strerror(err));
			return 1;
		}
		append_pid(info, sizeof(info), pids[i]);
	}
	for (char *c = info; *c; c++)
		if (*c == ',')
			*c = ' ';
	ready(info);

	while (fgets(line, sizeof(line), stdin)) {
		char *word = strtok(line, " \n"), *arg = strtok(NULL, " \n");

		if (word && !strcmp(word, "release") && arg) {
			pid_t pid = strtol(arg, NULL, 0);

			for (int i = 0; i < n; i++) {
				if (pids[i] == pid && release[i] >= 0) {
					close(release[i]);
					release[i] = -1;
				}
			}
			await_signal(&set, 20000);
			waitpid(pid, NULL, 0);
		} else if (word && !strcmp(word, "release-all")) {
			for (int i = 0; i < n; i++) {
				if (release[i] >= 0)
					close(release[i]);
				release[i] = -1;
			}
			for (int i = 0; i < n; i++)
				await_signal(&set, 20000);
			while (waitpid(-1, NULL, 0) > 0)
				;
		} else if (word && !strcmp(word, "quiet") && arg) {
			await_signal(&set, strtol(arg, NULL, 0));
		} else {
			printf("error unknown command\n");
			fflush(stdout);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "exit"))
		return 0;
	if (argc == 2 && !strcmp(argv[1], "spin")) {
		ready("");
		for (;;)
			;
	}
	if (argc == 2 && !strcmp(argv[1], "pause")) {
		ready("");
		sleeper(NULL);
	}
	if (argc == 5 && !strcmp(argv[1], "tree"))
		return tree(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
	if (argc == 2 && !strcmp(argv[1], "mem"))
		return mem();
	if (argc == 4 && !strcmp(argv[1], "station"))
		return station(atoi(argv[2]), atoi(argv[3]));
	fprintf(stderr, "usage: taskpeek-target exit | spin | pause | tree K G T | mem | station N SIG\n");
	return 2;
}
