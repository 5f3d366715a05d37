// SPDX-License-Identifier: GPL-2.0
/*
 * exitmon-child - processes that exit in known ways, for exitmon's guest
 * tests. A C program, not Go: a Go process has several threads of its own,
 * and the tests count thread exits exactly.
 *
 *   exitmon-child exit N         exit(N)
 *   exitmon-child signal SIG     die of signal SIG (no core file: RLIMIT_CORE 0)
 *   exitmon-child spin MS        burn MS ms of CPU time, then exit(0)
 *   exitmon-child threads M N    start M-1 threads, then exit(N) with all M alive
 *   exitmon-child stdin N        exit(N) when standard input ends
 *   exitmon-child orphan N       fork; the parent exits(0) at once, printing the
 *                                child's PID; the child waits to be reparented,
 *                                prints "ppid <new parent>", exits(N)
 *   exitmon-child storm N        N children, from two workers at a time, each
 *                                named s<its PID> and exiting with its PID's
 *                                low byte; print the children's PIDs, one a
 *                                line, then "worker <PID>" for each worker
 *   exitmon-child open PATH      open PATH for reading: exit 0, else print the errno
 *   exitmon-child forks N        N times fork, _exit(0) in the child, waitpid;
 *                                print the ns the N took (CLOCK_MONOTONIC)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void usage(void)
{
	fprintf(stderr, "usage: exitmon-child exit N | signal SIG | spin MS | threads M N | stdin N | orphan N | storm N | open PATH | forks N\n");
	exit(2);
}

static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static pthread_barrier_t started;

static void *park(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&started);
	for (;;)
		pause();
	return NULL;
}

static int threads(int m, int code)
{
	pthread_t t;
	int i;

	if (m < 1 || pthread_barrier_init(&started, NULL, m))
		usage();
	for (i = 1; i < m; i++) {
		if (pthread_create(&t, NULL, park, NULL)) {
			perror("pthread_create");
			return 3;
		}
	}
	pthread_barrier_wait(&started);
	exit(code); /* exit_group: every thread exits */
}

static int orphan(int code)
{
	pid_t parent = getpid(), child = fork();

	if (child < 0) {
		perror("fork");
		return 3;
	}
	if (child > 0) {
		printf("%d\n", child);
		return 0;
	}
	while (getppid() == parent)
		usleep(1000);
	printf("ppid %d\n", getppid());
	fflush(stdout);
	return code;
}

/* Children that exit at once, n of them, each reaped and printed. */
/*
 * Names the calling process s<its PID>: a name of its own, so that a test
 * can tell an event's fields are one process's. No printf (a vfork child).
 */
static void name_by_pid(void)
{
	char name[16] = "s", digits[12];
	int pid = getpid(), n = 0, i = 1;

	do {
		digits[n++] = '0' + pid % 10;
		pid /= 10;
	} while (pid);
	while (n)
		name[i++] = digits[--n];
	name[i] = '\0';
	prctl(PR_SET_NAME, name);
}

static int burst(int n)
{
	volatile int i;	/* vfork: the child shares this stack frame */

	for (i = 0; i < n; i++) {
		/* vfork: a child that only exits needs no copy of the memory map. */
		pid_t child = vfork();

		if (child < 0) {
			perror("vfork");
			return 3;
		}
		if (child == 0) {
			name_by_pid();
			_exit(getpid() & 0xff);
		}
		if (waitpid(child, NULL, 0) != child) {
			perror("waitpid");
			return 3;
		}
		printf("%d\n", child);
	}
	return 0;
}

/*
 * A storm of n exits from STORM_WORKERS workers at once (one per CPU of the
 * guest), each printing its children's PIDs; then the workers' own.
 */
#define STORM_WORKERS 2

static int storm(int n)
{
	pid_t workers[STORM_WORKERS];
	int i, status, failed = 0;

	for (i = 0; i < STORM_WORKERS; i++) {
		workers[i] = fork();
		if (workers[i] < 0) {
			perror("fork");
			return 3;
		}
		if (workers[i] == 0) {
			int share = n / STORM_WORKERS + (i < n % STORM_WORKERS);

			fflush(stdout);
			_exit(burst(share));
		}
	}
	for (i = 0; i < STORM_WORKERS; i++) {
		if (waitpid(workers[i], &status, 0) != workers[i] || !WIFEXITED(status) || WEXITSTATUS(status))
			failed = 1;
		printf("worker %d\n", workers[i]);
	}
	return failed ? 3 : 0;
}

/* What a process's life costs, without exec: fork, exit, wait. */
static int forks(int n)
{
	struct timespec start, end;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (i = 0; i < n; i++) {
		pid_t child = fork();

		if (child < 0) {
			perror("fork");
			return 3;
		}
		if (child == 0)
			_exit(0);
		if (waitpid(child, NULL, 0) != child) {
			perror("waitpid");
			return 3;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	printf("%lld\n", (end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec));
	return 0;
}

int main(int argc, char **argv)
{
	struct rlimit nocore = { 0, 0 };
	char buf[64];
	double until;

	if (argc != 3 && !(argc == 4 && !strcmp(argv[1], "threads")))
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "exit"))
		exit(atoi(argv[2]));
	if (!strcmp(argv[1], "signal")) {
		setrlimit(RLIMIT_CORE, &nocore);
		signal(atoi(argv[2]), SIG_DFL);
		raise(atoi(argv[2]));
		return 3;
	}
	if (!strcmp(argv[1], "spin")) {
		/*
		 * Mostly user time: the clock is read (a system call, for this
		 * clock) once in a million additions.
		 */
		until = cpu_ms() + atoi(argv[2]);
		while (cpu_ms() < until) {
			volatile unsigned long n;

			for (n = 0; n < 1000000; n++)
				;
		}
		return 0;
	}
	if (!strcmp(argv[1], "threads"))
		return threads(atoi(argv[2]), atoi(argv[3]));
	if (!strcmp(argv[1], "stdin")) {
		while (read(0, buf, sizeof(buf)) > 0)
			;
		return atoi(argv[2]);
	}
	if (!strcmp(argv[1], "orphan"))
		return orphan(atoi(argv[2]));
	if (!strcmp(argv[1], "storm"))
		return storm(atoi(argv[2]));
	if (!strcmp(argv[1], "forks"))
		return forks(atoi(argv[2]));
	if (!strcmp(argv[1], "open")) {
		if (open(argv[2], O_RDONLY) < 0) {
			printf("%d\n", errno);
			return 1;
		}
		return 0;
	}
	usage();
	return 2;
}
