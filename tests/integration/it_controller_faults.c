/* it_controller_faults.c - a controller that fails under a running RFCOMM transfer, through the
 * public API (include/btsock.h). Adapter A reaches btvirt through tests/integration/h4_proxy.c,
 * its peer B directly; A's client socket streams to B (and B back) when the fault hits.
 *
 * Fatal faults, and the bound within which every open socket on A has failed (its reads end,
 * its writes fail) after the fault hits:
 *   - the controller's socket closes mid-transfer ................ within 2 s
 *   - a Hardware Error event (Vol 4 Part E 7.7.16) ................ within 2 s
 *   - the controller stops answering commands (a command is then
 *     issued: a new connect), 3 s command timeout (Vol 4 Part E 4.4) within 5 s
 *   - the controller hangs (nothing in or out): A's socket fails on the
 *     4 s transmit stall within 6 s, the adapter is dead (its Disconnect
 *     unanswered) within 10 s
 * After each, a listener on A fails its accept at once and a new connect fails, btsock_error()
 * naming the fault each time; the dead adapter closes without hanging (within 5 s), no file
 * descriptor is left behind, and a new adapter pair opens and transfers again.
 * Faults the stack survives, the transfer going on intact:
 *   - Number_Of_Completed_Packets for a handle that is not a link, and one crediting more
 *     packets than were sent (7.7.19)
 *   - an ACL packet longer than the announced buffer size (7.4.5), and one with the largest
 *     length H4 can frame (65535) on an unknown handle
 *   - a slow controller (packets from it held 200 ms each for a while).
 * Every wait has a timeout; the whole program takes well under 60 s under ASan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api_util.h"
#include "btsock.h"
#include "btvirt_env.h"
#include "h4_proxy.h"

static btvirt_env *env;

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ------------------------------------------------------------------ one end of a transfer */

typedef struct {
	int fd;
	uint8_t seed, peer_seed;
	size_t tx, rx, bad;
	int err;  /* errno of a failed send or recv */
	bool eof;
} end;

static bool end_over(const end *e) { return e->err || e->eof; }

static void end_write(end *e)
{
	uint8_t buf[4096];
	for (int k = 0; k < 4 && !end_over(e); k++) {
		for (size_t i = 0; i < sizeof buf; i++)
			buf[i] = xfer_pat(e->seed, e->tx + i);
		ssize_t n = send(e->fd, buf, sizeof buf, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				e->err = errno;
			return;
		}
		e->tx += (size_t)n;
	}
}

static void end_read(end *e)
{
	uint8_t buf[16384];
	for (;;) {
		ssize_t n = recv(e->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n == 0) {
			e->eof = true;
			return;
		}
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				e->err = errno;
			return;
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != xfer_pat(e->peer_seed, e->rx + (size_t)i))
				e->bad++;
		e->rx += (size_t)n;
	}
}

/* Pumps both ends (each writes its pattern as fast as the other reads) until `until` says
 * stop or timeout_ms pass. Returns the milliseconds it took, or -1 on timeout. */
typedef bool (*stop_fn)(const end *a, const end *b, size_t goal);

static int pump(end *a, end *b, stop_fn until, size_t goal, int timeout_ms)
{
	uint64_t t0 = now_ms(), end_t = t0 + (uint64_t)timeout_ms;
	end *e[2] = { a, b };
	while (now_ms() < end_t) {
		if (until(a, b, goal))
			return (int)(now_ms() - t0);
		struct pollfd p[2];
		for (int i = 0; i < 2; i++) {
			p[i].fd = end_over(e[i]) ? -1 : e[i]->fd;
			p[i].events = POLLIN | POLLOUT;
			p[i].revents = 0;
		}
		poll(p, 2, 50);
		for (int i = 0; i < 2; i++) {
			if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
				end_read(e[i]);
			if (p[i].revents & POLLOUT)
				end_write(e[i]);
		}
	}
	return until(a, b, goal) ? (int)(now_ms() - t0) : -1;
}

static bool both_moved(const end *a, const end *b, size_t goal)
{
	return a->rx >= goal && b->rx >= goal;
}
static bool a_failed(const end *a, const end *b, size_t goal)
{
	(void)b;
	(void)goal;
	return end_over(a);
}

/* ------------------------------------------------------------------ adapters and sockets */

typedef struct {
	h4_proxy *px;
	char A[BTSOCK_ADDRSTRLEN], B[BTSOCK_ADDRSTRLEN];
	int l;       /* B's listener */
	int la;      /* a listener on A, waiting when the fault hits */
	end a, b;    /* A's client, B's accepted socket */
	unsigned ch;
} pair;

/* A (through a new proxy) and B (direct), A's client connected to B's listener, and data
 * flowing both ways. */
static void pair_open(pair *p)
{
	memset(p, 0, sizeof *p);
	p->px = h4p_start(env->socket_path);
	assert_non_null(p->px);
	if (btsock_adapter_open(h4p_adapter(p->px), p->A) < 0 || btsock_adapter_open(env->adapter, p->B) < 0)
		fail_msg("adapter: %s", btsock_error());
	p->l = btsock_socket(BTSOCK_RFCOMM);
	assert_true(p->l >= 0);
	assert_int_equal(btsock_bind(p->l, p->B, 0), 0);
	assert_int_equal(btsock_listen(p->l, 1), 0);
	assert_int_equal(btsock_getsockname(p->l, NULL, &p->ch), 0);
	unsigned lach = 0;
	p->la = btsock_socket(BTSOCK_RFCOMM);
	assert_true(p->la >= 0);
	assert_int_equal(btsock_bind(p->la, p->A, 0), 0);
	assert_int_equal(btsock_listen(p->la, 1), 0);
	assert_int_equal(btsock_getsockname(p->la, NULL, &lach), 0);
	p->a.fd = btsock_socket(BTSOCK_RFCOMM);
	assert_true(p->a.fd >= 0);
	assert_int_equal(btsock_settimeout(p->a.fd, 10000), 0);
	assert_int_equal(btsock_bind(p->a.fd, p->A, 0), 0);
	if (btsock_connect(p->a.fd, p->B, p->ch) < 0)
		fail_msg("connect: %s", btsock_error());
	assert_int_equal(btsock_settimeout(p->l, 10000), 0);
	p->b.fd = btsock_accept(p->l, NULL, NULL);
	assert_true(p->b.fd >= 0);
	p->a.seed = 11;
	p->b.seed = 73;
	p->a.peer_seed = p->b.seed;
	p->b.peer_seed = p->a.seed;
	/* The transfer is running: 32 KiB each way have arrived. */
	assert_true(pump(&p->a, &p->b, both_moved, 32768, 20000) >= 0);
	assert_int_equal(p->a.bad + p->b.bad, 0);
	assert_false(end_over(&p->a) || end_over(&p->b));
}

/* Closes everything; plain close() so nothing waits for a dead peer to take data. */
static void pair_close(pair *p)
{
	close(p->a.fd);
	close(p->b.fd);
	close(p->l);
	close(p->la);
	uint64_t t0 = now_ms();
	btsock_adapter_close(p->A);
	btsock_adapter_close(p->B);
	assert_true(now_ms() - t0 < 5000); /* a dead adapter closes without hanging */
	h4p_stop(p->px);
}

/* A's socket has failed: reads end and writes fail. */
static void assert_a_dead(pair *p)
{
	char c;
	ssize_t r = recv(p->a.fd, &c, 1, MSG_DONTWAIT);
	assert_true(r == 0 || (r < 0 && errno != EAGAIN));
	assert_int_equal(send(p->a.fd, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL), -1);
	assert_int_not_equal(errno, EAGAIN);
}

/* Calls on the dead adapter fail with a sentence naming the fault: accept on A's listener (at
 * once, though it would wait 3 s), and a new connect. */
static void assert_adapter_says(pair *p, const char *needle)
{
	assert_int_equal(btsock_settimeout(p->la, 3000), 0);
	uint64_t t0 = now_ms();
	assert_int_equal(btsock_accept(p->la, NULL, NULL), -1);
	assert_int_equal(errno, ENETDOWN);
	assert_true(now_ms() - t0 < 1000);
	if (!strstr(btsock_error(), needle))
		fail_msg("accept: btsock_error() \"%s\" does not name the fault (\"%s\")", btsock_error(), needle);
	int t = btsock_socket(BTSOCK_RFCOMM);
	assert_true(t >= 0);
	int rc = btsock_bind(t, p->A, 0);
	if (rc == 0)
		rc = btsock_connect(t, p->B, p->ch);
	int err = errno;
	const char *msg = btsock_error();
	close(t);
	assert_int_equal(rc, -1);
	assert_int_equal(err, ENETDOWN);
	if (!strstr(msg, needle))
		fail_msg("btsock_error() \"%s\" does not name the fault (\"%s\")", msg, needle);
}

/* A new pair of adapters works after the fault: 64 KiB each way, intact. */
static void assert_new_adapter_works(void)
{
	pair q;
	pair_open(&q);
	assert_true(pump(&q.a, &q.b, both_moved, 65536, 20000) >= 0);
	assert_int_equal(q.a.bad + q.b.bad, 0);
	pair_close(&q);
}

/* ------------------------------------------------------------------ fatal faults */

static int fds_before;

static int setup(void **state)
{
	(void)state;
	fds_before = count_fds();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(count_fds(), fds_before); /* nothing leaked */
	return 0;
}

/* The controller's socket closes mid-transfer: the adapter is dead, A's socket fails within
 * 2 s. */
static void test_transport_closes(void **state)
{
	(void)state;
	pair p;
	pair_open(&p);
	uint64_t t0 = now_ms();
	h4p_cut(p.px);
	int ms = pump(&p.a, &p.b, a_failed, 0, 2000);
	if (ms < 0)
		fail_msg("A's socket still open 2 s after the controller's socket closed");
	assert_true(now_ms() - t0 <= 2000);
	assert_a_dead(&p);
	assert_int_equal(p.a.bad + p.b.bad, 0); /* what did arrive was intact */
	assert_adapter_says(&p, "controller connection closed");
	pair_close(&p);
	assert_new_adapter_works();
}

/* A Hardware Error event (Vol 4 Part E 7.7.16): the controller is dead, A's socket fails
 * within 2 s. */
static void test_hardware_error(void **state)
{
	(void)state;
	pair p;
	pair_open(&p);
	const uint8_t ev[] = { 0x04, 0x10, 0x01, 0x5a };
	uint64_t t0 = now_ms();
	h4p_inject(p.px, H4P_TO_HOST, ev, sizeof ev);
	if (pump(&p.a, &p.b, a_failed, 0, 2000) < 0)
		fail_msg("A's socket still open 2 s after a Hardware Error");
	assert_true(now_ms() - t0 <= 2000);
	assert_a_dead(&p);
	assert_adapter_says(&p, "hardware error (Hardware_Code 0x5a");
	pair_close(&p);
	assert_new_adapter_works();
}

/* The controller stops answering commands. A command is issued (a new connect pages): 3 s
 * later the stack is declared dead and every socket on A fails, the connecting one too;
 * within 5 s of the command. */
static void test_commands_unanswered(void **state)
{
	(void)state;
	pair p;
	pair_open(&p);
	h4p_rule r = { .dir = H4P_TO_CTRL, .type = 0x01, .code = -1, .action = H4P_DROP };
	int id = h4p_add_rule(p.px, &r);
	int t = btsock_socket(BTSOCK_RFCOMM);
	assert_true(t >= 0);
	assert_int_equal(btsock_bind(t, p.A, 0), 0);
	assert_int_equal(btsock_setblocking(t, false), 0);
	uint64_t t0 = now_ms();
	assert_int_equal(btsock_connect(t, "00:AA:FF:00:00:01", 1), -1);
	assert_int_equal(errno, EINPROGRESS);
	if (pump(&p.a, &p.b, a_failed, 0, 5000) < 0)
		fail_msg("A's socket still open 5 s after a command went unanswered");
	uint64_t ms = now_ms() - t0;
	assert_true(ms >= 2500 && ms <= 5000); /* the command timeout, not something else */
	assert_true(h4p_matched(p.px, id) >= 1);
	assert_a_dead(&p);
	struct pollfd pf = { t, POLLOUT, 0 };
	assert_int_equal(poll(&pf, 1, 1000), 1);
	assert_int_equal(btsock_connect_result(t), -1);
	assert_int_not_equal(errno, EINPROGRESS);
	close(t);
	assert_adapter_says(&p, "did not answer HCI command 0x0405");
	pair_close(&p);
	assert_new_adapter_works();
}

/* The controller hangs: nothing goes in or out any more (the proxy drops every packet both
 * ways). The data A has in flight is never completed: its link is declared lost after the
 * 4 s transmit stall and A's socket fails, within 6 s; the Disconnect that follows goes
 * unanswered, and 3 s later the adapter is dead: a connect waiting on it fails, within 10 s
 * of the hang in all. */
static void test_controller_hangs(void **state)
{
	(void)state;
	pair p;
	pair_open(&p);
	h4p_rule in = { .dir = H4P_TO_HOST, .code = -1, .action = H4P_DROP };
	h4p_rule out = { .dir = H4P_TO_CTRL, .code = -1, .action = H4P_DROP };
	h4p_add_rule(p.px, &in);
	h4p_add_rule(p.px, &out);
	uint64_t t0 = now_ms();
	if (pump(&p.a, &p.b, a_failed, 0, 6000) < 0)
		fail_msg("A's socket still open 6 s after the controller hung");
	assert_a_dead(&p);
	/* A connect on the hung adapter waits until the adapter is declared dead. */
	int t = btsock_socket(BTSOCK_RFCOMM);
	assert_true(t >= 0);
	assert_int_equal(btsock_bind(t, p.A, 0), 0);
	assert_int_equal(btsock_setblocking(t, false), 0);
	int rc = btsock_connect(t, "00:AA:FF:00:00:02", 1);
	if (rc < 0 && errno == EINPROGRESS) {
		int left = (int)(10000 - (int64_t)(now_ms() - t0));
		struct pollfd pf = { t, POLLOUT, 0 };
		assert_int_equal(poll(&pf, 1, left > 0 ? left : 0), 1);
		rc = btsock_connect_result(t);
	}
	close(t);
	assert_int_equal(rc, -1);
	assert_true(now_ms() - t0 <= 10000);
	assert_adapter_says(&p, "did not answer HCI command");
	pair_close(&p);
	assert_new_adapter_works();
}

/* ------------------------------------------------------------------ survivable faults */

/* Number_Of_Completed_Packets (7.7.19) for a handle that is no link and for A's link with
 * more packets than were sent, mid-transfer: ignored, the transfer goes on intact. */
static void test_completions_for_unknown_handle(void **state)
{
	(void)state;
	pair p;
	pair_open(&p);
	int handle = h4p_last_handle(p.px);
	assert_true(handle >= 0);
	for (int i = 0; i < 5; i++) {
		const uint8_t unknown[] = { 0x04, 0x13, 0x05, 0x01, 0xee, 0x0e, 0x07, 0x00 };
		const uint8_t extra[] = { 0x04, 0x13, 0x05, 0x01, (uint8_t)handle, (uint8_t)(handle >> 8), 0x05, 0x00 };
		h4p_inject(p.px, H4P_TO_HOST, unknown, sizeof unknown);
		h4p_inject(p.px, H4P_TO_HOST, extra, sizeof extra);
		size_t goal = p.a.rx > p.b.rx ? p.a.rx : p.b.rx;
		assert_true(pump(&p.a, &p.b, both_moved, goal + 16384, 20000) >= 0);
	}
	assert_false(end_over(&p.a) || end_over(&p.b));
	assert_int_equal(p.a.bad + p.b.bad, 0);
	pair_close(&p);
}

/* A slow controller is not a dead one: the next 40 packets from it (completions, data) are
 * each held 200 ms, well within the 3 s command and 4 s transmit stall bounds; the transfer
 * goes on intact and nothing is declared lost. */
static void test_slow_controller_survives(void **state)
{
	(void)state;
	pair p;
	pair_open(&p);
	h4p_rule slow = { .dir = H4P_TO_HOST, .code = -1, .action = H4P_DELAY, .delay_ms = 200, .count = 40 };
	int id = h4p_add_rule(p.px, &slow);
	size_t goal = p.a.rx > p.b.rx ? p.a.rx : p.b.rx;
	assert_true(pump(&p.a, &p.b, both_moved, goal + 32768, 30000) >= 0);
	assert_int_equal(h4p_matched(p.px, id), 40);
	assert_false(end_over(&p.a) || end_over(&p.b));
	assert_int_equal(p.a.bad + p.b.bad, 0);
	pair_close(&p);
}

/* An ACL packet longer than the 192 octets btvirt announced (7.4.5) on A's link, and one of
 * the largest length H4 frames (65535) on an unknown handle: dropped unread, the transfer
 * goes on intact. The long packet on A's link is a whole signalling PDU that would end the
 * transfer if it were read: a Disconnection Request for the RFCOMM channel (Vol 3 Part A 4.6;
 * both ends' first dynamic CID, 0x0040), then an Echo Request filling it to 300 octets. */
static void test_oversized_acl(void **state)
{
	(void)state;
	pair p;
	pair_open(&p);
	int handle = h4p_last_handle(p.px);
	assert_true(handle >= 0);
	static uint8_t big[5 + 65535];
	for (int i = 0; i < 3; i++) {
		uint8_t pkt[5 + 300] = {
			0x02, (uint8_t)handle, (uint8_t)(0x20 | handle >> 8), 300 & 0xff, 300 >> 8,
			296 & 0xff, 296 >> 8, 0x01, 0x00,       /* L2CAP: 296 octets on CID 1 */
			0x06, 0x70, 4, 0, 0x40, 0x00, 0x40, 0x00, /* Disconnection Request */
			0x08, 0x71, 284 & 0xff, 284 >> 8,     /* Echo Request, 284 octets */
		};
		h4p_inject(p.px, H4P_TO_HOST, pkt, sizeof pkt);
		big[0] = 0x02;
		big[1] = 0xee;
		big[2] = 0x2e;
		big[3] = 0xff;
		big[4] = 0xff;
		h4p_inject(p.px, H4P_TO_HOST, big, sizeof big);
		size_t goal = p.a.rx > p.b.rx ? p.a.rx : p.b.rx;
		if (pump(&p.a, &p.b, both_moved, goal + 16384, 20000) < 0)
			fail_msg("the transfer stopped after an oversized ACL packet (A %s, B %s)",
				 end_over(&p.a) ? "failed" : "open", end_over(&p.b) ? "failed" : "open");
	}
	assert_false(end_over(&p.a) || end_over(&p.b));
	assert_int_equal(p.a.bad + p.b.bad, 0);
	pair_close(&p);
}

static int group_setup(void **state)
{
	(void)state;
	env = btvirt_start();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	btsock_shutdown();
	btvirt_stop(env);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_transport_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hardware_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commands_unanswered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_controller_hangs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_completions_for_unknown_handle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_acl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_controller_survives, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
