/* it_api_linkloss.c - a lost link is never mistaken for an orderly close (issue 10 A).
 *
 * btvirt drops a vanished client's links without telling the peer, so a killed process or a
 * dead controller is noticed by the stack's timers (ACL data not completed in 4 s, an echo
 * unanswered 5 s after 5 s of silence) or by the transport closing. Mid-transfer, over RFCOMM:
 *   - the server process is killed: the sending `btsock connect` and an API client;
 *   - the client process is killed: the receiving `btsock listen -d` and an API server;
 *   - the controller (btvirt) is killed: both CLI ends and both ends of an API pair;
 * every survivor reports it (exit 1 and "link lost"; btsock_sock_error() ECONNRESET /
 * ETIMEDOUT / ENETDOWN, writes failing with EPIPE) within a bound, while an orderly close
 * still gives 0 and exit 0. Each test starts its own btvirt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api_util.h"
#include "btsock.h"
#include "btvirt_env.h"

#define BTSOCK BTSOCK_BIN_DIR "/btsock"
#define LOSS_BOUND_MS 16000 /* probe 5 s + answer 5 s, or ACL 4 s; margin for loaded cores */
#define DEAD_BOUND_MS 5000  /* a controller that is gone is noticed at once */

static btvirt_env *env;

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static int setup(void **state)
{
	(void)state;
	env = btvirt_start();
	return 0;
}

static int teardown(void **state)
{
	close_all(state);
	btsock_shutdown();
	btvirt_stop(env);
	env = NULL;
	return 0;
}

/* ------------------------------------------------------------------ processes */

typedef struct {
	child c;
	bool done;
	int status;
	uint64_t exited; /* ms */
} proc;

/* `btsock listen -d -q` on any channel: its address and channel. */
static void cli_listen(proc *p, char addr[BTSOCK_ADDRSTRLEN], unsigned *ch)
{
	char *argv[] = { BTSOCK, "listen", "-d", "-q", NULL };
	memset(p, 0, sizeof *p);
	child_start(&p->c, env->adapter, argv);
	char line[256];
	assert_true(child_wait_stderr(&p->c, "listening on", line, sizeof line, 20000));
	assert_int_equal(sscanf(line, "listening on %17s channel %u", addr, ch), 2);
}

/* `btsock connect -q ADDR CH`, sending /dev/zero (or the file in_path) from stdin. */
static void cli_connect(proc *p, const char *addr, unsigned ch, const char *in_path)
{
	static char chs[8][8];
	static int k;
	char *c = chs[k++ % 8];
	snprintf(c, 8, "%u", ch);
	char *argv[] = { BTSOCK, "connect", "-q", (char *)addr, c, NULL };
	memset(p, 0, sizeof *p);
	child_start_in(&p->c, env->adapter, argv, in_path);
}

static void proc_poll(proc *p)
{
	int st;
	if (!p->done && waitpid(p->c.pid, &st, WNOHANG) == p->c.pid) {
		p->done = true;
		p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		p->exited = now_ms();
	}
}

static void proc_kill(proc *p)
{
	kill(p->c.pid, SIGKILL);
	int st;
	waitpid(p->c.pid, &st, 0);
	p->done = true;
	p->status = -1;
}

static size_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

/* A survivor's end: exit 1 and "link lost" on stderr, within bound_ms of t0. */
static void expect_cli_link_lost(proc *p, const char *who, uint64_t t0, int bound_ms)
{
	char err[4096];
	read_file(p->c.err, err, sizeof err);
	if (!p->done)
		fail_msg("%s: still running %d ms after the loss; stderr: %s", who, bound_ms, err);
	printf("%s: exit %d after %llu ms: %s", who, p->status, (unsigned long long)(p->exited - t0), err);
	if (p->status != 1 || !strstr(err, "link lost"))
		fail_msg("%s: exit %d, stderr '%s' (wanted exit 1 and 'link lost')", who, p->status, err);
	assert_true(p->exited - t0 <= (uint64_t)bound_ms);
	unlink(p->c.out), unlink(p->c.err);
}

/* ------------------------------------------------------------------ an API end */

typedef struct {
	int fd;
	bool send;           /* keeps writing; else only reads */
	size_t sent, rcvd;
	bool ended;          /* read 0 or a write failed */
	int write_err;       /* errno of the failed write (0: ended by end of file) */
	uint64_t when;
} api_end;

static void api_pump(api_end *e)
{
	static uint8_t buf[16384];
	if (e->ended)
		return;
	for (int i = 0; i < 8; i++) {
		ssize_t n = recv(e->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n == 0) {
			e->ended = true;
			e->when = now_ms();
			return;
		}
		if (n < 0)
			break;
		e->rcvd += (size_t)n;
	}
	if (!e->send)
		return;
	for (int i = 0; i < 8; i++) {
		ssize_t n = send(e->fd, buf, sizeof buf, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN) {
			e->ended = true;
			e->write_err = errno;
			e->when = now_ms();
			return;
		}
		if (n <= 0)
			break;
		e->sent += (size_t)n;
	}
}

static void pump_all(api_end *e, int n, int timeout_ms)
{
	struct pollfd p[4];
	for (int i = 0; i < n; i++)
		p[i] = (struct pollfd){ e[i].ended ? -1 : e[i].fd, (short)(POLLIN | (e[i].send ? POLLOUT : 0)), 0 };
	poll(p, (nfds_t)n, timeout_ms);
	for (int i = 0; i < n; i++)
		api_pump(&e[i]);
}

/* The end saw the loss: EPIPE from a write or end of file, then the socket's error. */
static void expect_api_lost(api_end *e, const char *who, uint64_t t0, int bound_ms, int want1, int want2)
{
	if (!e->ended)
		fail_msg("%s: no end of file or write error %d ms after the loss (sent %zu, received %zu)", who,
			 bound_ms, e->sent, e->rcvd);
	if (e->write_err)
		assert_int_equal(e->write_err, EPIPE);
	int err = btsock_sock_error(e->fd);
	printf("%s: %s after %llu ms: sock_error %d: %s\n", who, e->write_err ? "EPIPE" : "end of file",
	       (unsigned long long)(e->when - t0), err, btsock_error());
	if (err != want1 && err != want2)
		fail_msg("%s: btsock_sock_error %d (%s), wanted %d or %d", who, err, strerror(err), want1, want2);
	assert_non_null(strstr(btsock_error(), "link lost"));
	assert_true(e->when - t0 <= (uint64_t)bound_ms);
	/* Writes fail at once after a loss; reads give end of file. */
	char b = 0;
	assert_int_equal(send(e->fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL), -1);
	assert_int_equal(errno, EPIPE);
}

static int api_client(const char *local, const char *addr, unsigned ch)
{
	int s = track(btsock_socket(BTSOCK_RFCOMM));
	assert_true(s >= 0);
	assert_int_equal(btsock_bind(s, local, 0), 0);
	if (btsock_connect(s, addr, ch) < 0)
		fail_msg("connect: %s", btsock_error());
	assert_int_equal(btsock_sock_error(s), 0); /* connected: no fault */
	return s;
}

static int api_listener(const char *local, unsigned *ch)
{
	int l = track(btsock_socket(BTSOCK_RFCOMM));
	assert_true(l >= 0);
	assert_int_equal(btsock_bind(l, local, 0), 0);
	assert_int_equal(btsock_listen(l, 1), 0);
	assert_int_equal(btsock_getsockname(l, NULL, ch), 0);
	return l;
}

static int api_accept(int l)
{
	assert_int_equal(btsock_settimeout(l, 20000), 0);
	int s = track(btsock_accept(l, NULL, NULL));
	if (s < 0)
		fail_msg("accept: %s", btsock_error());
	return s;
}

/* ------------------------------------------------------------------ tests */

/* Four transfers at once, then the process at one end of each is killed: the server of a CLI
 * pair, the client of a CLI pair, a CLI server an API client sends to, a CLI client an API
 * server receives from. */
static void test_peer_process_killed(void **state)
{
	(void)state;
	char X[BTSOCK_ADDRSTRLEN], Y[BTSOCK_ADDRSTRLEN];
	/* Two adapters: each link's ends must hold as many links (docs/ARCHITECTURE.md). */
	assert_int_equal(btsock_adapter_open(env->adapter, X), 0);
	assert_int_equal(btsock_adapter_open(env->adapter, Y), 0);

	proc l1, c1, l2, c2, l3, c4;
	char a1[BTSOCK_ADDRSTRLEN], a2[BTSOCK_ADDRSTRLEN], a3[BTSOCK_ADDRSTRLEN];
	unsigned ch1, ch2, ch3, ch4;
	cli_listen(&l1, a1, &ch1);
	cli_connect(&c1, a1, ch1, "/dev/zero");
	cli_listen(&l2, a2, &ch2);
	cli_connect(&c2, a2, ch2, "/dev/zero");
	cli_listen(&l3, a3, &ch3);
	api_end e[2] = { { .fd = api_client(X, a3, ch3), .send = true } };
	int l4 = api_listener(Y, &ch4);
	cli_connect(&c4, Y, ch4, "/dev/zero");
	e[1] = (api_end){ .fd = api_accept(l4) };

	/* Data flows everywhere. */
	uint64_t end = now_ms() + 30000;
	while (now_ms() < end && (file_size(l1.c.out) < 65536 || file_size(l2.c.out) < 65536 ||
				  file_size(l3.c.out) < 65536 || e[1].rcvd < 65536))
		pump_all(e, 2, 20);
	assert_true(file_size(l1.c.out) >= 65536 && file_size(l2.c.out) >= 65536);
	assert_true(file_size(l3.c.out) >= 65536 && e[1].rcvd >= 65536);
	assert_false(e[0].ended || e[1].ended);

	proc_kill(&l1);
	proc_kill(&c2);
	proc_kill(&l3);
	proc_kill(&c4);
	uint64_t t0 = now_ms();
	end = t0 + LOSS_BOUND_MS;
	while (now_ms() < end && !(c1.done && l2.done && e[0].ended && e[1].ended)) {
		pump_all(e, 2, 20);
		proc_poll(&c1);
		proc_poll(&l2);
	}
	expect_cli_link_lost(&c1, "connect (server killed)", t0, LOSS_BOUND_MS);
	expect_cli_link_lost(&l2, "listen -d (client killed)", t0, LOSS_BOUND_MS);
	expect_api_lost(&e[0], "API client (server killed)", t0, LOSS_BOUND_MS, ECONNRESET, ETIMEDOUT);
	expect_api_lost(&e[1], "API server (client killed)", t0, LOSS_BOUND_MS, ECONNRESET, ETIMEDOUT);
	unlink(l1.c.out), unlink(l1.c.err), unlink(c2.c.out), unlink(c2.c.err);
	unlink(l3.c.out), unlink(l3.c.err), unlink(c4.c.out), unlink(c4.c.err);
}

/* The controller (btvirt) dies mid-transfer: a CLI pair and an API pair, all four ends. */
static void test_controller_killed(void **state)
{
	(void)state;
	char X[BTSOCK_ADDRSTRLEN], Y[BTSOCK_ADDRSTRLEN];
	assert_int_equal(btsock_adapter_open(env->adapter, X), 0);
	assert_int_equal(btsock_adapter_open(env->adapter, Y), 0);
	proc l5, c5;
	char a5[BTSOCK_ADDRSTRLEN];
	unsigned ch5, chy;
	cli_listen(&l5, a5, &ch5);
	cli_connect(&c5, a5, ch5, "/dev/zero");
	int ly = api_listener(Y, &chy);
	api_end e[2] = { { .fd = api_client(X, Y, chy), .send = true } };
	e[1] = (api_end){ .fd = api_accept(ly), .send = true };

	uint64_t end = now_ms() + 30000;
	while (now_ms() < end && (file_size(l5.c.out) < 65536 || e[0].rcvd < 65536 || e[1].rcvd < 65536))
		pump_all(e, 2, 20);
	assert_true(file_size(l5.c.out) >= 65536 && e[0].rcvd >= 65536 && e[1].rcvd >= 65536);

	kill(env->pid, SIGKILL);
	uint64_t t0 = now_ms();
	end = t0 + DEAD_BOUND_MS;
	while (now_ms() < end && !(c5.done && l5.done && e[0].ended && e[1].ended)) {
		pump_all(e, 2, 20);
		proc_poll(&c5);
		proc_poll(&l5);
	}
	expect_cli_link_lost(&c5, "connect (controller killed)", t0, DEAD_BOUND_MS);
	expect_cli_link_lost(&l5, "listen -d (controller killed)", t0, DEAD_BOUND_MS);
	expect_api_lost(&e[0], "API client (controller killed)", t0, DEAD_BOUND_MS, ENETDOWN, ENETDOWN);
	expect_api_lost(&e[1], "API server (controller killed)", t0, DEAD_BOUND_MS, ENETDOWN, ENETDOWN);
}

/* An orderly close is still one: exit 0 and btsock_sock_error() 0, everything delivered. */
static void test_orderly_close(void **state)
{
	(void)state;
	char path[64];
	snprintf(path, sizeof path, "/tmp/btsock-it-linkloss-%d.bin", (int)getpid());
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 100000; i++)
		fputc('a' + i % 26, f);
	fclose(f);
	proc l6, c6;
	char a6[BTSOCK_ADDRSTRLEN];
	unsigned ch6;
	cli_listen(&l6, a6, &ch6);
	cli_connect(&c6, a6, ch6, path);
	assert_int_equal(child_wait(&c6.c, 30000), 0);
	assert_int_equal(child_wait(&l6.c, 30000), 0);
	assert_int_equal(file_size(l6.c.out), 100000);
	unlink(l6.c.out), unlink(l6.c.err), unlink(c6.c.out), unlink(c6.c.err), unlink(path);

	char X[BTSOCK_ADDRSTRLEN], Y[BTSOCK_ADDRSTRLEN];
	assert_int_equal(btsock_adapter_open(env->adapter, X), 0);
	assert_int_equal(btsock_adapter_open(env->adapter, Y), 0);
	unsigned ch;
	int l = api_listener(Y, &ch);
	int c = api_client(X, Y, ch);
	api_end e = { .fd = api_accept(l) };
	static uint8_t data[65536];
	size_t off = 0;
	uint64_t end = now_ms() + 20000;
	while (off < sizeof data && now_ms() < end) {
		ssize_t n = send(c, data + off, sizeof data - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0)
			off += (size_t)n;
		pump_all(&e, 1, 10);
	}
	assert_int_equal(off, sizeof data);
	assert_int_equal(btsock_close(c), 0);
	while (!e.ended && now_ms() < end)
		pump_all(&e, 1, 20);
	assert_true(e.ended);
	assert_int_equal(e.write_err, 0);
	assert_int_equal(e.rcvd, sizeof data);
	assert_int_equal(btsock_sock_error(e.fd), 0);
	assert_string_equal(btsock_error(), "");
	assert_int_equal(btsock_close(e.fd), 0);
	assert_int_equal(btsock_sock_error(-1), -1);
	assert_int_equal(errno, EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_orderly_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_process_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_controller_killed, setup, teardown),
	};
	if (getenv("IT_FILTER")) /* run one test: IT_FILTER=test_name */
		cmocka_set_test_filter(getenv("IT_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
