/* btvirt_env.c - see btvirt_env.h. */
#include "btvirt_env.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ENVS 4
static btvirt_env *live[MAX_ENVS]; /* test-process bookkeeping so atexit can clean up */

static void stop_all(void)
{
	for (int i = 0; i < MAX_ENVS; i++)
		if (live[i])
			btvirt_stop(live[i]);
}

static const char *find_btvirt(void)
{
	static const char *paths[] = { "/usr/bin/btvirt", "/usr/local/bin/btvirt", "/usr/sbin/btvirt" };
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

static void child(const char *btvirt, bool private_tmp)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (private_tmp) {
		if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("btvirt", "/tmp", "tmpfs", 0, "size=1m") < 0) {
			fprintf(stderr, "btvirt_env: mount: %s\n", strerror(errno));
			_exit(126);
		}
	}
	/* btvirt writes to its clients with plain sendmsg(): when a client process exits while
	 * btvirt still has something for it, SIGPIPE would kill btvirt and every other client's
	 * controller with it. Ignored, the write just fails (btvirt ignores that). */
	signal(SIGPIPE, SIG_IGN);
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
	}
	execl(btvirt, "btvirt", "-s", (char *)NULL);
	fprintf(stderr, "btvirt_env: exec %s: %s\n", btvirt, strerror(errno));
	_exit(127);
}

btvirt_env *btvirt_start(void)
{
	const char *btvirt = find_btvirt();
	if (!btvirt) {
		fprintf(stderr, "btvirt_env: btvirt not found: install the Debian package bluez-test-tools\n");
		exit(1);
	}
	bool private_tmp = unshare(0) == 0 && geteuid() == 0;
	btvirt_env *e = calloc(1, sizeof *e);
	pid_t pid = fork();
	if (pid < 0) {
		perror("btvirt_env: fork");
		exit(1);
	}
	if (pid == 0) {
		if (private_tmp && unshare(CLONE_NEWNS) < 0) {
			fprintf(stderr, "btvirt_env: unshare: %s\n", strerror(errno));
			_exit(126);
		}
		child(btvirt, private_tmp);
	}
	e->pid = pid;
	if (private_tmp)
		snprintf(e->socket_path, sizeof e->socket_path, "/proc/%d/root/tmp/bt-server-bredr", (int)pid);
	else
		snprintf(e->socket_path, sizeof e->socket_path, "/tmp/bt-server-bredr");
	snprintf(e->adapter, sizeof e->adapter, "unix:%s", e->socket_path);
	for (int i = 0; i < MAX_ENVS; i++) {
		if (!live[i]) {
			live[i] = e;
			break;
		}
	}
	static bool registered;
	if (!registered) {
		atexit(stop_all);
		registered = true;
	}
	for (int tries = 0; tries < 500; tries++) { /* up to 5 s */
		struct stat st;
		if (stat(e->socket_path, &st) == 0 && S_ISSOCK(st.st_mode))
			return e;
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			fprintf(stderr, "btvirt_env: btvirt exited (status %d) before serving %s\n", status,
				e->socket_path);
			e->pid = 0;
			exit(1);
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "btvirt_env: %s did not appear within 5 s\n", e->socket_path);
	exit(1);
}

void btvirt_stop(btvirt_env *e)
{
	if (!e)
		return;
	for (int i = 0; i < MAX_ENVS; i++)
		if (live[i] == e)
			live[i] = NULL;
	if (e->pid > 0) {
		kill(e->pid, SIGTERM);
		int status;
		for (int i = 0; i < 100 && waitpid(e->pid, &status, WNOHANG) == 0; i++) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		kill(e->pid, SIGKILL);
		waitpid(e->pid, &status, 0);
	}
	free(e);
}
