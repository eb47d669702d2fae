/* it_api_l2cap.c - L2CAP sockets through the public API (include/btsock.h), over btvirt:
 * the book's l2cap-server and l2cap-client as programs; 1 MiB each way at once between this
 * process and a peer process (this program run again as "peer"), every message checked whole;
 * negotiated MTUs; empty messages; dynamic PSMs; 24 channels on one link and 4 on a second
 * link, all at once; the peer closing; refusals, an address nobody has, timeouts and
 * non-blocking connect; and btmon decoding the capture of it all.
 * Five adapters live in this process: A-B and C-D pairs, and X for the peer process (see the
 * btvirt handle quirk in docs/ARCHITECTURE.md: both ends of a link must hold as many links). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

#define PEER_SEED 77
#define OUR_SEED 33

static btvirt_env *env;
static char A[BTSOCK_ADDRSTRLEN], B[BTSOCK_ADDRSTRLEN], C[BTSOCK_ADDRSTRLEN], D[BTSOCK_ADDRSTRLEN];
static char X[BTSOCK_ADDRSTRLEN];
static char self_exe[512];
static char snoop_path[64];

/* L2CAP has no flow control and btvirt drops what a host does not read in time: give btvirt's
 * sockets room for seconds of data, as a real controller holds the sender back (api_util.h). */
#define BTVIRT_QUEUE (8 << 20)
static void deepen(void)
{
	if (btvirt_deepen_queues(env->pid, BTVIRT_QUEUE) < 0)
		fprintf(stderr, "it_api_l2cap: cannot deepen btvirt's queues (%s): transfers may lose data "
				"when the machine is busy\n", strerror(errno));
}

static int group_setup(void **state)
{
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
	if (n <= 0)
		return -1;
	self_exe[n] = 0;
	env = btvirt_start();
	snprintf(snoop_path, sizeof snoop_path, "/tmp/btsock-it-l2cap-%d.btsnoop", (int)getpid());
	if (btsock_set_snoop(snoop_path) < 0)
		return -1;
	if (btsock_adapter_open(env->adapter, A) < 0 || btsock_adapter_open(env->adapter, B) < 0 ||
	    btsock_adapter_open(env->adapter, C) < 0 || btsock_adapter_open(env->adapter, D) < 0 ||
	    btsock_adapter_open(env->adapter, X) < 0) {
		fprintf(stderr, "adapter: %s\n", btsock_error());
		return -1;
	}
	deepen();
	return 0;
}

static int group_teardown(void **state)
{
	btsock_shutdown();
	btvirt_stop(env);
	return 0;
}


/* A listening L2CAP socket on `local` (*psm 0: any free PSM), taking messages up to imtu
 * (0: the default). */
static int listener(const char *local, unsigned *psm, unsigned imtu, int backlog)
{
	int s = track(btsock_socket(BTSOCK_L2CAP));
	assert_true(s >= 0);
	if (imtu)
		assert_int_equal(btsock_set_mtu(s, imtu), 0);
	assert_int_equal(btsock_bind(s, local, *psm), 0);
	assert_int_equal(btsock_listen(s, backlog), 0);
	assert_int_equal(btsock_getsockname(s, NULL, psm), 0);
	return s;
}

static int client(const char *local, const char *addr, unsigned psm, unsigned imtu)
{
	int s = track(btsock_socket(BTSOCK_L2CAP));
	assert_true(s >= 0);
	if (imtu)
		assert_int_equal(btsock_set_mtu(s, imtu), 0);
	assert_int_equal(btsock_bind(s, local, 0), 0);
	if (btsock_connect(s, addr, psm) < 0)
		fail_msg("connect: %s", btsock_error());
	return s;
}

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* Waits up to timeout_ms for fd to poll with one of `events`; returns revents (0 on timeout). */
static short wait_for(int fd, short events, int timeout_ms)
{
	struct pollfd p = { fd, events, 0 };
	return poll(&p, 1, timeout_ms) == 1 ? p.revents : 0;
}

/* ------------------------------------------------------------------ the peer process */

/* `it_api_l2cap peer IMTU TOTAL`: in a process of its own, on its own adapter
 * (BTSOCK_ADAPTER): listen on a free PSM taking messages up to IMTU, say where on stderr,
 * accept one connection, send TOTAL bytes of messages of 1..peer's MTU while checking the
 * TOTAL bytes that come in, then wait for the other side to close: end of file, and a send
 * that fails. Reports on stdout; exits 0 if everything held. */
static int peer_main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	unsigned imtu = (unsigned)strtoul(argv[2], NULL, 0);
	size_t total = strtoul(argv[3], NULL, 0);
	char local[BTSOCK_ADDRSTRLEN], from[BTSOCK_ADDRSTRLEN];
	unsigned psm = 0, in = 0, out = 0;
	int l = btsock_socket(BTSOCK_L2CAP);
	if (l < 0 || btsock_set_mtu(l, imtu) < 0 || btsock_bind(l, "", 0) < 0 || btsock_listen(l, 1) < 0 ||
	    btsock_getsockname(l, local, &psm) < 0 || btsock_settimeout(l, 30000) < 0) {
		fprintf(stderr, "peer: %s\n", btsock_error());
		return 1;
	}
	fprintf(stderr, "peer: listening on %s psm 0x%04x\n", local, psm);
	int s = btsock_accept(l, from, NULL);
	if (s < 0 || btsock_get_mtu(s, &in, &out) < 0) {
		fprintf(stderr, "peer: %s\n", btsock_error());
		return 1;
	}
	msgx x = { .fd = s, .seed = PEER_SEED, .max_msg = out, .tx_total = total,
		   .peer_seed = OUR_SEED, .peer_max_msg = in, .rx_expect = total };
	bool ok = msgx_run(&x, 1, 120000);
	printf("peer: mtu in %u out %u; sent %zu bytes in %zu messages; received %zu bytes in %zu messages, "
	       "%zu bad\n", in, out, x.tx_done, x.tx_msgs, x.rx_done, x.rx_msgs, x.rx_bad);
	/* The other side closes now: end of file, then sending fails. */
	short ev = wait_for(s, POLLIN, 20000);
	char b[16];
	ssize_t r = recv(s, b, sizeof b, MSG_DONTWAIT);
	int send_err = 0;
	for (int i = 0; i < 100 && !send_err; i++) {
		if (send(s, "x", 1, MSG_NOSIGNAL) < 0)
			send_err = errno;
		else
			usleep(20000);
	}
	printf("peer: after close: poll%s%s, recv %zd, send %s\n", ev & POLLIN ? " POLLIN" : "",
	       ev & POLLHUP ? " POLLHUP" : "", r, send_err ? strerror(send_err) : "ok");
	fflush(stdout);
	btsock_close(s);
	btsock_close(l);
	return ok && x.rx_bad == 0 && r == 0 && (ev & POLLHUP) && send_err == EPIPE ? 0 : 1;
}

/* ------------------------------------------------------------------ tests */

/* The book's section 3.3 as two programs: the server prints two lines, the client the echo. */
static void test_book_examples_as_processes(void **state)
{
	child srv, cli;
	char *sargv[] = { BTSOCK_BIN_DIR "/l2cap-server", NULL };
	child_start(&srv, env->adapter, sargv);
	char line[256], addr[BTSOCK_ADDRSTRLEN];
	assert_true(child_wait_stderr(&srv, "listening on", line, sizeof line, 10000));
	assert_int_equal(sscanf(line, "l2cap-server: listening on %17s psm 0x1001", addr), 1);
	char *cargv[] = { BTSOCK_BIN_DIR "/l2cap-client", addr, NULL };
	child_start(&cli, env->adapter, cargv);
	assert_int_equal(child_wait(&cli, 15000), 0);
	assert_int_equal(child_wait(&srv, 15000), 0);
	char out[1024], peer[BTSOCK_ADDRSTRLEN], expect[256];
	read_file(srv.out, out, sizeof out);
	assert_int_equal(sscanf(out, "Accepted connection from %17s\n", peer), 1);
	snprintf(expect, sizeof expect, "Accepted connection from %s\nreceived [hello!!]\n", peer);
	assert_string_equal(out, expect);
	read_file(cli.out, out, sizeof out);
	assert_string_equal(out, "received [hello!!]\n");
	unlink(srv.out), unlink(srv.err), unlink(cli.out), unlink(cli.err);
}

/* 1 MiB each way at the same time between this process and a peer process, in messages of
 * 1..MTU bytes (4000 towards us, the default 672 towards the peer): every recv() is exactly one
 * message, whole and in order. Then we close: the peer sees end of file, and its sends fail. */
static void test_one_mib_each_way_between_processes(void **state)
{
	child peer;
	char *argv[] = { self_exe, "peer", "672", "1048576", NULL };
	child_start(&peer, env->adapter, argv);
	char line[256], addr[BTSOCK_ADDRSTRLEN];
	unsigned psm;
	if (!child_wait_stderr(&peer, "listening on", line, sizeof line, 10000)) {
		read_file(peer.err, line, sizeof line);
		fail_msg("peer did not start: %s", line);
	}
	assert_int_equal(sscanf(line, "peer: listening on %17s psm 0x%x", addr, &psm), 2);
	deepen(); /* the peer's controller is new */
	int c = client(X, addr, psm, 4000);
	unsigned in, out;
	assert_int_equal(btsock_get_mtu(c, &in, &out), 0);
	assert_int_equal(in, 4000);
	assert_int_equal(out, 672);
	msgx x = { .fd = c, .seed = OUR_SEED, .max_msg = out, .tx_total = 1u << 20,
		   .peer_seed = PEER_SEED, .peer_max_msg = in, .rx_expect = 1u << 20 };
	bool ok = msgx_run(&x, 1, 120000);
	print_message("sent %zu bytes in %zu messages, received %zu bytes in %zu messages, %zu bad\n", x.tx_done,
		      x.tx_msgs, x.rx_done, x.rx_msgs, x.rx_bad);
	assert_true(ok);
	assert_int_equal(x.rx_done, 1u << 20);
	assert_int_equal(x.rx_bad, 0);
	assert_int_equal(x.tx_err, 0);
	assert_int_equal(btsock_close(c), 0);
	int rc = child_wait(&peer, 30000);
	char report[1024];
	read_file(peer.out, report, sizeof report);
	print_message("%s", report);
	assert_int_equal(rc, 0);
	char expect[128];
	snprintf(expect, sizeof expect, "received %u bytes in %zu messages, 0 bad\n", 1u << 20, x.tx_msgs);
	assert_non_null(strstr(report, expect));
	assert_non_null(strstr(report, "mtu in 672 out 4000"));
	unlink(peer.out), unlink(peer.err);
}

/* Both ends' MTUs are what was asked for and what the peer asked for; a message of exactly the
 * peer's MTU arrives whole; a larger one never reaches the peer. */
static void test_mtu(void **state)
{
	unsigned psm = 0, in, out;
	int l = listener(A, &psm, 1000, 1);
	assert_int_equal(btsock_get_mtu(l, &in, &out), 0);
	assert_int_equal(in, 1000);
	assert_int_equal(out, 0);
	int bad = track(btsock_socket(BTSOCK_L2CAP));
	assert_int_equal(btsock_set_mtu(bad, 47), -1); /* Core Vol 3 Part A 5.1: at least 48 */
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(btsock_error(), "48"));
	assert_int_equal(btsock_set_mtu(bad, 4097), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(btsock_set_mtu(bad, 48), 0);
	assert_int_equal(btsock_get_mtu(bad, &in, &out), 0);
	assert_int_equal(in, 48);
	btsock_close(bad);

	int c = client(B, A, psm, 100);
	assert_int_equal(btsock_set_mtu(c, 200), -1);
	assert_int_equal(errno, EISCONN);
	int s = track(btsock_accept(l, NULL, NULL));
	assert_true(s >= 0);
	assert_int_equal(btsock_get_mtu(c, &in, &out), 0);
	assert_int_equal(in, 100);
	assert_int_equal(out, 1000);
	assert_int_equal(btsock_get_mtu(s, &in, &out), 0);
	assert_int_equal(in, 1000);
	assert_int_equal(out, 100);
	assert_int_equal(btsock_settimeout(c, 5000), 0);
	assert_int_equal(btsock_settimeout(s, 5000), 0);

	uint8_t msg[2000], got[2000];
	for (size_t i = 0; i < sizeof msg; i++)
		msg[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(send(c, msg, 1000, 0), 1000);
	assert_int_equal(recv(s, got, sizeof got, 0), 1000);
	assert_memory_equal(got, msg, 1000);
	assert_int_equal(send(s, msg, 100, 0), 100);
	assert_int_equal(recv(c, got, sizeof got, 0), 100);
	assert_memory_equal(got, msg, 100);

	/* Larger than the peer's MTU. send() on the socketpair cannot refuse it: AF_UNIX only says
	 * EMSGSIZE above its send buffer, which is never below 4608 bytes (SOCK_MIN_SNDBUF). The
	 * runtime drops it whole: the peer sees no cut or merged message, and the channel goes on
	 * with the next message. */
	assert_int_equal(send(c, msg, 1001, 0), 1001);
	assert_int_equal(send(c, msg + 1, 999, 0), 999);
	assert_int_equal(recv(s, got, sizeof got, 0), 999);
	assert_memory_equal(got, msg + 1, 999);
	assert_int_equal(send(s, msg, 101, 0), 101);
	assert_int_equal(send(s, msg + 2, 98, 0), 98);
	assert_int_equal(recv(c, got, sizeof got, 0), 98);
	assert_memory_equal(got, msg + 2, 98);
}

/* An empty message is a message (L2CAP basic mode allows an empty information payload, Core
 * Vol 3 Part A 3.1): it does not end the channel, and the peer receives it as a recv() of 0
 * that is not followed by POLLHUP. */
static void test_empty_message(void **state)
{
	unsigned psm = 0;
	int l = listener(A, &psm, 0, 1);
	int c = client(B, A, psm, 0);
	int s = track(btsock_accept(l, NULL, NULL));
	assert_true(s >= 0);
	assert_int_equal(btsock_settimeout(s, 5000), 0);
	assert_int_equal(btsock_settimeout(c, 5000), 0);
	char b[16];
	assert_int_equal(send(c, "", 0, 0), 0);
	assert_int_equal(send(c, "after", 5, 0), 5);
	assert_true(wait_for(s, POLLIN, 5000) & POLLIN);
	assert_int_equal(recv(s, b, sizeof b, 0), 0);
	assert_int_equal(recv(s, b, sizeof b, 0), 5);
	assert_memory_equal(b, "after", 5);
	assert_false(wait_for(s, POLLIN, 200) & POLLHUP);
	/* And back. */
	assert_int_equal(send(s, "", 0, 0), 0);
	assert_int_equal(send(s, "back", 4, 0), 4);
	assert_true(wait_for(c, POLLIN, 5000) & POLLIN);
	assert_int_equal(recv(c, b, sizeof b, 0), 0);
	assert_int_equal(recv(c, b, sizeof b, 0), 4);
	assert_memory_equal(b, "back", 4);
}

/* PSM 0 picks a free dynamic PSM (Core Vol 3 Part A 4.2: 0x1001 and up, odd, the upper byte's
 * lowest bit 0); a taken PSM is refused with EADDRINUSE; PSMs that break the rule with EINVAL. */
static void test_dynamic_psm(void **state)
{
	unsigned p1 = 0, p2 = 0;
	int l1 = listener(A, &p1, 0, 1);
	int l2 = listener(A, &p2, 0, 1);
	char local[BTSOCK_ADDRSTRLEN];
	unsigned port;
	assert_int_equal(btsock_getsockname(l1, local, &port), 0);
	assert_string_equal(local, A);
	assert_int_equal(port, p1);
	assert_true(p1 >= 0x1001 && p2 >= 0x1001 && p1 != p2);
	assert_int_equal(p1 & 0x0101, 0x0001);
	assert_int_equal(p2 & 0x0101, 0x0001);
	int dup = track(btsock_socket(BTSOCK_L2CAP));
	assert_int_equal(btsock_bind(dup, A, p1), -1);
	assert_int_equal(errno, EADDRINUSE);
	assert_non_null(strstr(btsock_error(), "in use"));
	assert_int_equal(btsock_bind(dup, A, 0x1002), -1); /* even */
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(btsock_error(), "0x1002"));
	assert_int_equal(btsock_bind(dup, A, 0x1101), -1); /* upper byte odd */
	assert_int_equal(errno, EINVAL);
	/* The same PSM on another adapter is another port. */
	assert_int_equal(btsock_bind(dup, B, p1), 0);
	btsock_close(dup);
	/* A client reaches the dynamic PSM, and sees it as the peer's port. */
	int c = client(B, A, p2, 0);
	char peer[BTSOCK_ADDRSTRLEN];
	unsigned peer_psm = 0;
	int s = track(btsock_accept(l2, peer, &peer_psm));
	assert_true(s >= 0);
	assert_string_equal(peer, B);
	assert_int_equal(btsock_getpeername(c, peer, &peer_psm), 0);
	assert_string_equal(peer, A);
	assert_int_equal(peer_psm, p2);
	/* Closed, its PSM is free again. */
	btsock_close(l1);
	unsigned again = p1;
	listener(A, &again, 0, 1);
	assert_int_equal(again, p1);
}

/* 24 channels on the A-B link and 4 on the C-D link, all moving messages both ways at once. */
#define N_AB 24
#define N_CD 4
static void test_many_channels_two_links(void **state)
{
	enum { N = N_AB + N_CD };
	int cs[N], ss[N];
	for (int i = 0; i < N; i++) {
		unsigned psm = 0;
		int l = listener(i < N_AB ? A : C, &psm, 0, 1);
		cs[i] = client(i < N_AB ? B : D, i < N_AB ? A : C, psm, 0);
		ss[i] = track(btsock_accept(l, NULL, NULL));
		assert_true(ss[i] >= 0);
		btsock_close(l);
	}
	msgx x[2 * N];
	for (int i = 0; i < N; i++) {
		x[2 * i] = (msgx){ .fd = ss[i], .seed = (uint8_t)i, .max_msg = 672, .tx_total = 32 * 1024,
				   .peer_seed = (uint8_t)(100 + i), .peer_max_msg = 672, .rx_expect = 32 * 1024 };
		x[2 * i + 1] = (msgx){ .fd = cs[i], .seed = (uint8_t)(100 + i), .max_msg = 672, .tx_total = 32 * 1024,
				       .peer_seed = (uint8_t)i, .peer_max_msg = 672, .rx_expect = 32 * 1024 };
	}
	bool ok = msgx_run(x, 2 * N, 120000);
	for (int k = 0; k < 2 * N; k++)
		if (!ok || x[k].rx_bad)
			print_message("channel %d %s: sent %zu received %zu bad %zu\n", k / 2, k % 2 ? "client" : "server",
				      x[k].tx_done, x[k].rx_done, x[k].rx_bad);
	assert_true(ok);
	for (int k = 0; k < 2 * N; k++) {
		assert_int_equal(x[k].rx_done, 32 * 1024);
		assert_int_equal(x[k].rx_bad, 0);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(btsock_close(cs[i]), 0);
		assert_int_equal(btsock_close(ss[i]), 0);
	}
}

/* The peer sends messages and closes: we read every one, then end of file; our sends then fail
 * with EPIPE. */
static void test_peer_closes(void **state)
{
	unsigned psm = 0;
	int l = listener(A, &psm, 0, 1);
	int c = client(B, A, psm, 0);
	int s = track(btsock_accept(l, NULL, NULL));
	assert_true(s >= 0);
	msgx tx = { .fd = s, .seed = 3, .max_msg = 672, .tx_total = 50000 };
	assert_true(msgx_run(&tx, 1, 20000));
	assert_int_equal(btsock_close(s), 0);
	msgx rx = { .fd = c, .peer_seed = 3, .peer_max_msg = 672, .rx_expect = 50000 };
	assert_true(msgx_run(&rx, 1, 20000));
	assert_int_equal(rx.rx_bad, 0);
	assert_int_equal(rx.rx_msgs, tx.tx_msgs);
	short ev = wait_for(c, POLLIN, 10000);
	assert_true(ev & POLLHUP);
	char b;
	assert_int_equal(recv(c, &b, 1, 0), 0);
	int failed = 0;
	for (int i = 0; i < 50 && !failed; i++) {
		if (send(c, "x", 1, MSG_NOSIGNAL) < 0)
			failed = errno;
		else
			usleep(20000);
	}
	assert_int_equal(failed, EPIPE);
	btsock_close(c);
}

/* No listener on the PSM: ECONNREFUSED with a sentence naming the address and PSM. An address
 * no controller has: the page fails in bounded time with a sentence saying so. */
static void test_refused_and_no_such_device(void **state)
{
	int s = track(btsock_socket(BTSOCK_L2CAP));
	assert_int_equal(btsock_bind(s, B, 0), 0);
	assert_int_equal(btsock_connect(s, A, 0x1ef1), -1);
	assert_int_equal(errno, ECONNREFUSED);
	print_message("%s\n", btsock_error());
	assert_non_null(strstr(btsock_error(), "refused"));
	assert_non_null(strstr(btsock_error(), A));
	assert_non_null(strstr(btsock_error(), "0x1ef1"));
	/* The socket can try again. */
	unsigned psm = 0;
	int l = listener(A, &psm, 0, 1);
	assert_int_equal(btsock_connect(s, A, psm), 0);
	assert_true(track(btsock_accept(l, NULL, NULL)) >= 0);

	assert_int_equal(btsock_connect(s, "zz:00:00:00:00:00", 0x1001), -1);
	assert_int_equal(errno, EINVAL);
	int e = track(btsock_socket(BTSOCK_L2CAP));
	assert_int_equal(btsock_connect(e, A, 0x1002), -1); /* not a PSM */
	assert_int_equal(errno, EINVAL);
	assert_int_equal(btsock_connect(e, A, 0), -1);
	assert_int_equal(errno, EINVAL);

	int n = track(btsock_socket(BTSOCK_L2CAP));
	btsock_bind(n, B, 0);
	uint64_t t0 = now_ms();
	assert_int_equal(btsock_connect(n, "00:11:22:33:44:55", 0x1001), -1);
	int err = errno;
	uint64_t took = now_ms() - t0;
	print_message("%s (%llu ms)\n", btsock_error(), (unsigned long long)took);
	assert_true(err == EHOSTDOWN || err == ETIMEDOUT);
	assert_non_null(strstr(btsock_error(), "00:11:22:33:44:55"));
	assert_non_null(strstr(btsock_error(), err == EHOSTDOWN ? "no device answered" : "timed out"));
	assert_true(took < 30000); /* bounded: page timeout (10 s) plus slack, not forever */
}

static void test_timeouts_and_nonblocking(void **state)
{
	unsigned psm = 0;
	int l = listener(A, &psm, 0, 1);
	assert_int_equal(btsock_settimeout(l, 200), 0);
	assert_int_equal(btsock_accept(l, NULL, NULL), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_non_null(strstr(btsock_error(), "200 ms"));
	assert_int_equal(btsock_setblocking(l, false), 0);
	assert_int_equal(btsock_accept(l, NULL, NULL), -1);
	assert_int_equal(errno, EAGAIN);

	int c = track(btsock_socket(BTSOCK_L2CAP));
	btsock_bind(c, B, 0);
	assert_int_equal(btsock_setblocking(c, false), 0);
	assert_int_equal(btsock_connect(c, A, psm), -1);
	assert_int_equal(errno, EINPROGRESS);
	assert_true(wait_for(c, POLLOUT, 10000) & POLLOUT);
	assert_int_equal(btsock_connect_result(c), 0);
	assert_true(wait_for(l, POLLIN, 5000) & POLLIN); /* a connection waits */
	int s = track(btsock_accept(l, NULL, NULL));
	assert_true(s >= 0);
	assert_int_equal(send(c, "abc", 3, 0), 3);
	char b[8];
	assert_int_equal(btsock_settimeout(s, 5000), 0);
	assert_int_equal(recv(s, b, sizeof b, 0), 3);
	assert_memory_equal(b, "abc", 3);
	/* recv with a timeout and nothing sent: EAGAIN after the timeout. */
	assert_int_equal(btsock_settimeout(s, 100), 0);
	assert_int_equal(recv(s, b, sizeof b, 0), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);

	/* A non-blocking connect that fails: POLLOUT, then the reason. */
	int f = track(btsock_socket(BTSOCK_L2CAP));
	btsock_bind(f, B, 0);
	btsock_setblocking(f, false);
	assert_int_equal(btsock_connect(f, A, 0x1ef3), -1);
	assert_int_equal(errno, EINPROGRESS);
	assert_true(wait_for(f, POLLOUT, 10000) & POLLOUT);
	assert_int_equal(btsock_connect_result(f), -1);
	assert_int_equal(errno, ECONNREFUSED);
	assert_non_null(strstr(btsock_error(), "0x1ef3"));
	btsock_close(f);
	btsock_close(c);
	btsock_close(s);
	btsock_close(l);
}

/* The capture of everything above decodes with BlueZ's btmon: no malformed packets, and the
 * L2CAP signalling is recognised. */
static void test_capture_decodes_with_btmon(void **state)
{
	btsock_shutdown(); /* flushes and closes the capture */
	if (access("/usr/bin/btmon", X_OK) != 0) {
		print_message("btmon missing (Debian package bluez): capture not checked\n");
		skip();
	}
	char cmd[256];
	snprintf(cmd, sizeof cmd, "/usr/bin/btmon -r %s 2>&1", snoop_path);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	char line[512];
	long lines = 0, conn_req = 0, conf_rsp = 0, disc_rsp = 0, bad = 0;
	while (fgets(line, sizeof line, f)) {
		lines++;
		conn_req += strstr(line, "L2CAP: Connection Request") != NULL;
		conf_rsp += strstr(line, "L2CAP: Configure Response") != NULL;
		disc_rsp += strstr(line, "L2CAP: Disconnection Response") != NULL;
		bad += strstr(line, "invalid") || strstr(line, "Malformed") || strstr(line, "too short") ||
		       strstr(line, "short packet");
	}
	pclose(f);
	unlink(snoop_path);
	assert_true(lines > 1000);
	assert_true(conn_req > 0);
	assert_true(conf_rsp > 0);
	assert_true(disc_rsp > 0);
	assert_int_equal(bad, 0);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "peer") == 0)
		return peer_main(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_book_examples_as_processes, close_all),
		cmocka_unit_test_teardown(test_one_mib_each_way_between_processes, close_all),
		cmocka_unit_test_teardown(test_mtu, close_all),
		cmocka_unit_test_teardown(test_empty_message, close_all),
		cmocka_unit_test_teardown(test_dynamic_psm, close_all),
		cmocka_unit_test_teardown(test_many_channels_two_links, close_all),
		cmocka_unit_test_teardown(test_peer_closes, close_all),
		cmocka_unit_test_teardown(test_refused_and_no_such_device, close_all),
		cmocka_unit_test_teardown(test_timeouts_and_nonblocking, close_all),
		cmocka_unit_test(test_capture_decodes_with_btmon),
	};
	return cmocka_run_group_tests_name("api_l2cap_over_btvirt", tests, group_setup, group_teardown);
}
