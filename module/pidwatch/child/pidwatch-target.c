// SPDX-License-Identifier: GPL-2.0
/*
 * pidwatch-target - processes whose states a pidwatch test changes.
 *
 * Build: gcc -static -O2 -Wall -Wextra -o pidwatch-target pidwatch-target.c
 *
 *   pidwatch-target sleepers N
 *
 * forks N children (0..4096) that block in pause() and die with this
 * process (PR_SET_PDEATHSIG), prints "ready[ <their PIDs>]\n" in one
 * write(2), then reaps each child as it dies (so a child killed by a test
 * goes Z, then away) and blocks once none is left.
 *
 *   pidwatch-target write PATH TEXT
 *
 * opens PATH for writing and writes TEXT in one write(2), as whoever runs
 * it, prints "ready open=<errno> write=<errno>\n" (0: it worked; write=-
 * when the open failed) and blocks.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SLEEPERS	4096

static void die(const char *what)
{
	fprintf(stderr, "pidwatch-target: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void mode_write(const char *path, const char *text)
{
	char line[64];
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int len;

	if (fd < 0) {
		len = snprintf(line, sizeof(line), "ready open=%d write=-\n", errno);
	} else {
		ssize_t n = write(fd, text, strlen(text));

		len = snprintf(line, sizeof(line), "ready open=0 write=%d\n", n < 0 ? errno : 0);
	}
	if (write(STDOUT_FILENO, line, (size_t)len) != len)
		die("write the ready line");
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	static char line[MAX_SLEEPERS * 12 + 8];
	pid_t parent = getpid();
	size_t len;
	char *end;
	long n, i;

	if (argc == 4 && !strcmp(argv[1], "write"))
		mode_write(argv[2], argv[3]);
	if (argc != 3 || strcmp(argv[1], "sleepers")) {
		fprintf(stderr, "usage: pidwatch-target sleepers N | write PATH TEXT\n");
		return 2;
	}
	errno = 0;
	n = strtol(argv[2], &end, 10);
	if (errno || end == argv[2] || *end || n < 0 || n > MAX_SLEEPERS) {
		fprintf(stderr, "pidwatch-target: %s: want 0..%d sleepers\n",
			argv[2], MAX_SLEEPERS);
		return 2;
	}

	len = (size_t)snprintf(line, sizeof(line), "ready");
	for (i = 0; i < n; i++) {
		pid_t child = fork();

		if (child < 0)
			die("fork");
		if (child == 0) {
			/* The parent may have died before the prctl(). */
			if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
				_exit(1);
			for (;;)
				pause();
		}
		len += (size_t)snprintf(line + len, sizeof(line) - len, " %d", (int)child);
	}
	line[len++] = '\n';
	if (write(STDOUT_FILENO, line, len) != (ssize_t)len)
		die("write the ready line");

	while (wait(NULL) > 0 || errno == EINTR)
		;
	for (;;)
		pause();
}
