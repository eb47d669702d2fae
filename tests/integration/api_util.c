/* api_util.c - see api_util.h. */
#include "api_util.h"

#include "btsock.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

uint8_t xfer_pat(uint8_t seed, size_t i) { return (uint8_t)(seed + i * 29 + (i >> 10)); }

static bool xfer_done(const xfer *x) { return x->tx_done == x->tx_total && x->rx_done >= x->rx_expect; }

static void xfer_write(xfer *x)
{
	uint8_t buf[65536];
	while (x->tx_done < x->tx_total) {
		size_t n = x->tx_total - x->tx_done;
		if (n > x->chunk)
			n = x->chunk;
		if (n > sizeof buf)
			n = sizeof buf;
		for (size_t i = 0; i < n; i++)
			buf[i] = xfer_pat(x->seed, x->tx_done + i);
		ssize_t w = send(x->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w <= 0)
			return;
		x->tx_done += (size_t)w;
	}
}

static void xfer_read(xfer *x)
{
	uint8_t buf[65536];
	for (;;) {
		ssize_t r = recv(x->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (r == 0) {
			x->eof = true;
			return;
		}
		if (r < 0)
			return;
		if (x->rx_done == 0)
			x->peer_seed = buf[0]; /* xfer_pat(seed, 0) == seed */
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != xfer_pat(x->peer_seed, x->rx_done + (size_t)i))
				x->rx_bad++;
		x->rx_done += (size_t)r;
	}
}

bool xfer_run(xfer *x, int n, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	struct pollfd p[128];
	while (now_ms() < end) {
		bool all = true;
		for (int i = 0; i < n; i++) {
			all &= xfer_done(&x[i]);
			p[i].fd = x[i].fd;
			p[i].events = (short)((x[i].tx_done < x[i].tx_total ? POLLOUT : 0) |
					      (x[i].eof ? 0 : POLLIN));
		}
		if (all)
			return true;
		poll(p, (nfds_t)n, 100);
		for (int i = 0; i < n; i++) {
			if (p[i].revents & POLLIN)
				xfer_read(&x[i]);
			if (p[i].revents & POLLOUT)
				xfer_write(&x[i]);
		}
	}
	for (int i = 0; i < n; i++)
		if (!xfer_done(&x[i]))
			return false;
	return true;
}

/* ------------------------------------------------------------------ messages (L2CAP) */

size_t msgx_size(uint8_t seed, size_t max_msg, size_t k)
{
	if (k == 0)
		return max_msg;
	if (k == 1)
		return 1;
	uint64_t h = ((uint64_t)seed << 32 | k) * 0x9e3779b97f4a7c15u; /* Fibonacci hashing */
	h ^= h >> 29;
	return 1 + (size_t)(h % max_msg);
}

uint8_t msgx_pat(uint8_t seed, size_t k, size_t i) { return (uint8_t)(seed * 7u + k * 131u + i * 29u + (i >> 8)); }

static bool msgx_done(const msgx *x) { return x->tx_done == x->tx_total && x->rx_done >= x->rx_expect; }

static void msgx_write(msgx *x)
{
	uint8_t buf[65536];
	while (x->tx_done < x->tx_total) {
		size_t n = msgx_size(x->seed, x->max_msg, x->tx_msgs);
		if (n > x->tx_total - x->tx_done)
			n = x->tx_total - x->tx_done;
		if (n > sizeof buf)
			n = sizeof buf;
		for (size_t i = 0; i < n; i++)
			buf[i] = msgx_pat(x->seed, x->tx_msgs, i);
		ssize_t w = send(x->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			if (errno != EAGAIN && errno != EINTR)
				x->tx_err = errno;
			return;
		}
		if ((size_t)w != n) { /* SOCK_SEQPACKET: a message goes whole or not at all */
			x->tx_err = EPROTO;
			return;
		}
		x->tx_done += n;
		x->tx_msgs++;
	}
}

static void msgx_read(msgx *x)
{
	uint8_t buf[65536];
	for (;;) {
		ssize_t r = recv(x->fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
		if (r == 0) { /* SOCK_SEQPACKET: EOF (no test sends empty messages) */
			x->eof = true;
			return;
		}
		if (r < 0)
			return;
		size_t want = msgx_size(x->peer_seed, x->peer_max_msg, x->rx_msgs);
		if (x->rx_done < x->rx_expect && want > x->rx_expect - x->rx_done)
			want = x->rx_expect - x->rx_done;
		bool bad = (size_t)r != want || (size_t)r > sizeof buf;
		for (size_t i = 0; !bad && i < (size_t)r; i++)
			bad = buf[i] != msgx_pat(x->peer_seed, x->rx_msgs, i);
		x->rx_bad += bad;
		x->rx_done += (size_t)r;
		x->rx_msgs++;
	}
}

bool msgx_run(msgx *x, int n, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	struct pollfd p[128];
	while (now_ms() < end) {
		bool all = true;
		for (int i = 0; i < n; i++) {
			all &= msgx_done(&x[i]);
			p[i].fd = x[i].fd;
			p[i].events = (short)((x[i].tx_done < x[i].tx_total && !x[i].tx_err ? POLLOUT : 0) |
					      (x[i].eof ? 0 : POLLIN));
		}
		if (all)
			return true;
		poll(p, (nfds_t)n, 100);
		for (int i = 0; i < n; i++) {
			if (p[i].revents & POLLIN)
				msgx_read(&x[i]);
			if (p[i].revents & POLLOUT)
				msgx_write(&x[i]);
		}
	}
	for (int i = 0; i < n; i++)
		if (!msgx_done(&x[i]))
			return false;
	return true;
}

void child_start(child *c, const char *adapter, char *const argv[]) { child_start_in(c, adapter, argv, NULL); }

void child_start_in(child *c, const char *adapter, char *const argv[], const char *in_path)
{
	static int seq;
	snprintf(c->out, sizeof c->out, "/tmp/btsock-it-%d-%d.out", (int)getpid(), seq);
	snprintf(c->err, sizeof c->err, "/tmp/btsock-it-%d-%d.err", (int)getpid(), seq++);
	pid_t parent = getpid();
	c->pid = fork();
	if (c->pid == 0) {
		/* A test that dies (an assert, a ctest timeout) takes its children with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int o = open(c->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(c->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(o, STDOUT_FILENO);
		dup2(e, STDERR_FILENO);
		int in = in_path ? open(in_path, O_RDONLY) : -1;
		if (in >= 0)
			dup2(in, STDIN_FILENO);
		setenv("BTSOCK_ADAPTER", adapter, 1);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
}

int child_wait(child *c, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	int status;
	while (now_ms() < end) {
		if (waitpid(c->pid, &status, WNOHANG) == c->pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	kill(c->pid, SIGKILL);
	waitpid(c->pid, &status, 0);
	return -1;
}

size_t read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		buf[0] = 0;
		return 0;
	}
	size_t n = fread(buf, 1, cap - 1, f);
	buf[n] = 0;
	fclose(f);
	return n;
}

bool child_wait_stderr(child *c, const char *needle, char *line, size_t len, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	char buf[4096];
	while (now_ms() < end) {
		read_file(c->err, buf, sizeof buf);
		char *hit = strstr(buf, needle);
		if (hit) {
			char *start = hit;
			while (start > buf && start[-1] != '\n')
				start--;
			size_t k = strcspn(start, "\n");
			if (k >= len)
				k = len - 1;
			memcpy(line, start, k);
			line[k] = 0;
			return true;
		}
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return false;
}

char *btmon_decode(const char *path)
{
	if (access("/usr/bin/btmon", X_OK) != 0)
		return NULL;
	char cmd[320];
	snprintf(cmd, sizeof cmd, "/usr/bin/btmon -r %s 2>&1", path);
	FILE *f = popen(cmd, "r");
	size_t len = 0, cap = 1 << 20;
	char *out = malloc(cap);
	while (f && out) {
		if (cap - len < 65536) {
			char *bigger = realloc(out, cap * 2);
			if (!bigger)
				break;
			out = bigger;
			cap *= 2;
		}
		size_t n = fread(out + len, 1, cap - len - 1, f);
		if (n == 0)
			break;
		len += n;
	}
	if (f)
		pclose(f);
	if (out)
		out[len] = 0;
	unlink(path);
	return out;
}

int btvirt_deepen_queues(pid_t btvirt, int bytes)
{
	int pidfd = pidfd_open(btvirt, 0);
	if (pidfd < 0)
		return -1;
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)btvirt);
	DIR *d = opendir(dir);
	if (!d) {
		close(pidfd);
		return -1;
	}
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		int fd = pidfd_getfd(pidfd, atoi(e->d_name), 0); /* the same socket, not a copy */
		if (fd < 0)
			continue;
		struct stat st;
		if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) == 0)
			n++;
		close(fd);
	}
	closedir(d);
	close(pidfd);
	return n;
}

static int opened[256];
static int n_opened;

int track(int fd)
{
	if (fd >= 0 && n_opened < 256)
		opened[n_opened++] = fd;
	return fd;
}

int close_all(void **state)
{
	(void)state;
	while (n_opened)
		btsock_close(opened[--n_opened]);
	return 0;
}
