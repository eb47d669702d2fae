/* it_api_rfcomm.c - RFCOMM sockets through the public API (include/btsock.h), over btvirt:
 * the seed's server and client as programs, 10 MiB each way at once on one channel, 30
 * channels on one link plus channels on a second link, a reader that stops reading, the peer
 * closing mid-transfer, refusals, timeouts and non-blocking connect. Four adapters live in this
 * one process (A-B and C-D pairs: see the btvirt handle quirk in docs/ARCHITECTURE.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api_util.h"
#include "btsock.h"
#include "btvirt_env.h"

static btvirt_env *env;
static char A[BTSOCK_ADDRSTRLEN], B[BTSOCK_ADDRSTRLEN], C[BTSOCK_ADDRSTRLEN], D[BTSOCK_ADDRSTRLEN];

static char snoop_path[64];

static int group_setup(void **state)
{
	env = btvirt_start();
	/* Every packet of this test goes to a btsnoop file, decoded by btmon at the end. */
	snprintf(snoop_path, sizeof snoop_path, "/tmp/btsock-it-%d.btsnoop", (int)getpid());
	if (btsock_set_snoop(snoop_path) < 0)
		return -1;
	if (btsock_adapter_open(env->adapter, A) < 0 || btsock_adapter_open(env->adapter, B) < 0 ||
	    btsock_adapter_open(env->adapter, C) < 0 || btsock_adapter_open(env->adapter, D) < 0) {
		fprintf(stderr, "adapter: %s\n", btsock_error());
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	btsock_shutdown();
	btvirt_stop(env);
	return 0;
}


/* A listening socket on `local` (channel 0: any) and its channel. */
static int listener(const char *local, unsigned *channel, int backlog)
{
	int s = track(btsock_socket(BTSOCK_RFCOMM));
	assert_true(s >= 0);
	assert_int_equal(btsock_bind(s, local, *channel), 0);
	assert_int_equal(btsock_listen(s, backlog), 0);
	assert_int_equal(btsock_getsockname(s, NULL, channel), 0);
	return s;
}

static int client(const char *local, const char *addr, unsigned channel)
{
	int s = track(btsock_socket(BTSOCK_RFCOMM));
	assert_true(s >= 0);
	assert_int_equal(btsock_bind(s, local, 0), 0);
	if (btsock_connect(s, addr, channel) < 0)
		fail_msg("connect: %s", btsock_error());
	return s;
}

/* Example 3-2 / 3-3 as programs: the server prints the seed's two lines. */
static void test_seed_examples_as_processes(void **state)
{
	child srv, cli;
	char *sargv[] = { BTSOCK_BIN_DIR "/rfcomm-server", NULL };
	child_start(&srv, env->adapter, sargv);
	char line[256], addr[BTSOCK_ADDRSTRLEN];
	assert_true(child_wait_stderr(&srv, "listening on", line, sizeof line, 10000));
	assert_int_equal(sscanf(line, "rfcomm-server: listening on %17s channel 1", addr), 1);
	char *cargv[] = { BTSOCK_BIN_DIR "/rfcomm-client", addr, NULL };
	child_start(&cli, env->adapter, cargv);
	assert_int_equal(child_wait(&cli, 15000), 0);
	assert_int_equal(child_wait(&srv, 15000), 0);
	char out[1024];
	read_file(srv.out, out, sizeof out);
	char peer[BTSOCK_ADDRSTRLEN];
	assert_int_equal(sscanf(out, "Accepted connection from %17s\n", peer), 1);
	char expect[256];
	snprintf(expect, sizeof expect, "Accepted connection from %s\nreceived [hello!!]\n", peer);
	assert_string_equal(out, expect);
	unlink(srv.out), unlink(srv.err), unlink(cli.out), unlink(cli.err);
}

static void test_ten_mib_each_way(void **state)
{
	unsigned ch = 0;
	int l = listener(A, &ch, 1);
	int c = client(B, A, ch);
	char peer[BTSOCK_ADDRSTRLEN];
	unsigned peer_ch = 99;
	int s = track(btsock_accept(l, peer, &peer_ch));
	assert_true(s >= 0);
	assert_string_equal(peer, B);
	xfer x[2] = {
		{ .fd = s, .seed = 11, .chunk = 65536, .tx_total = 10u << 20, .rx_expect = 10u << 20 },
		{ .fd = c, .seed = 22, .chunk = 65536, .tx_total = 10u << 20, .rx_expect = 10u << 20 },
	};
	assert_true(xfer_run(x, 2, 180000));
	for (int i = 0; i < 2; i++) {
		assert_int_equal(x[i].rx_done, 10u << 20);
		assert_int_equal(x[i].rx_bad, 0);
	}
	assert_int_equal(btsock_close(c), 0);
	assert_int_equal(btsock_close(s), 0);
	assert_int_equal(btsock_close(l), 0);
}

/* 30 channels at once on the A-B link, and 5 more on the C-D link, all moving data. */
static void test_thirty_channels_and_a_second_link(void **state)
{
	int ls[35], cs[35], ss[35];
	for (int i = 0; i < 35; i++) {
		unsigned ch = 0;
		ls[i] = listener(i < 30 ? A : C, &ch, 1);
		assert_int_equal(ch, i < 30 ? (unsigned)i + 1 : (unsigned)i - 29);
		cs[i] = client(i < 30 ? B : D, i < 30 ? A : C, ch);
		ss[i] = track(btsock_accept(ls[i], NULL, NULL));
		assert_true(ss[i] >= 0);
	}
	int s31 = track(btsock_socket(BTSOCK_RFCOMM));
	assert_int_equal(btsock_bind(s31, A, 0), 0);
	assert_int_equal(btsock_listen(s31, 1), -1); /* all 30 channels taken */
	assert_int_equal(errno, EADDRINUSE);
	assert_non_null(strstr(btsock_error(), "channel"));
	btsock_close(s31);
	/* All 35 DLCs carry 64 KiB each way at the same time: 70 streams into two stacks, which
	 * must keep the credits they grant within what btvirt queues for a host. */
	xfer x[70];
	for (int i = 0; i < 35; i++) {
		x[2 * i] = (xfer){ .fd = ss[i], .seed = (uint8_t)i, .chunk = 4096, .tx_total = 64 * 1024,
				   .rx_expect = 64 * 1024 };
		x[2 * i + 1] = (xfer){ .fd = cs[i], .seed = (uint8_t)(100 + i), .chunk = 4096,
				       .tx_total = 64 * 1024, .rx_expect = 64 * 1024 };
	}
	bool ok = xfer_run(x, 70, 90000);
	for (int k = 0; !ok && k < 70; k++)
		print_message("channel %d %s: sent %zu received %zu\n", k / 2, k % 2 ? "client" : "server",
			      x[k].tx_done, x[k].rx_done);
	assert_true(ok);
	for (int k = 0; k < 70; k++) {
		assert_int_equal(x[k].rx_done, 64 * 1024);
		assert_int_equal(x[k].rx_bad, 0);
	}
	for (int i = 0; i < 35; i++) {
		btsock_close(cs[i]);
		btsock_close(ss[i]);
		btsock_close(ls[i]);
	}
}

/* A reader that stops for seconds: the writer's non-blocking sends hit EAGAIN after a bounded
 * amount (socket buffers and stack rings), nothing is lost when reading resumes. */
static void test_reader_stops(void **state)
{
	unsigned ch = 0;
	int l = listener(A, &ch, 1);
	int c = client(B, A, ch);
	int s = track(btsock_accept(l, NULL, NULL));
	assert_true(s >= 0);
	assert_int_equal(btsock_settimeout(c, 0), 0);
	uint8_t buf[8192];
	size_t sent = 0;
	int again = 0;
	for (int round = 0; round < 300 && again < 20; round++) {
		for (size_t i = 0; i < sizeof buf; i++)
			buf[i] = xfer_pat(5, sent + i);
		ssize_t w = send(c, buf, sizeof buf, MSG_DONTWAIT);
		if (w < 0) {
			assert_int_equal(errno, EAGAIN);
			again++;
			usleep(100 * 1000); /* 2 s of a reader that does not read */
			continue;
		}
		again = 0;
		sent += (size_t)w;
	}
	assert_true(again >= 20);
	assert_true(sent < 4u * 1024 * 1024); /* bounded */
	xfer r = { .fd = s, .seed = 0, .chunk = 1, .rx_expect = sent };
	assert_true(xfer_run(&r, 1, 30000));
	assert_int_equal(r.rx_done, sent);
	assert_int_equal(r.rx_bad, 0);
	btsock_close(c);
	btsock_close(s);
	btsock_close(l);
}

/* The peer closes mid-transfer: the reader sees everything it was sent, then end of file; the
 * writer's sends fail with EPIPE. */
static void test_peer_closes_mid_transfer(void **state)
{
	unsigned ch = 0;
	int l = listener(A, &ch, 1);
	int c = client(B, A, ch);
	int s = track(btsock_accept(l, NULL, NULL));
	/* s sends 100 000 bytes and closes: c reads all of them, then EOF. */
	xfer tx = { .fd = s, .seed = 3, .chunk = 4096, .tx_total = 100000 };
	assert_true(xfer_run(&tx, 1, 20000));
	assert_int_equal(btsock_close(s), 0);
	xfer rx = { .fd = c, .chunk = 1, .rx_expect = 100000 };
	assert_true(xfer_run(&rx, 1, 20000));
	assert_int_equal(rx.rx_bad, 0);
	char b;
	struct pollfd p = { c, POLLIN, 0 };
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(recv(c, &b, 1, 0), 0);
	/* And c's writes now fail. */
	int failed = 0;
	for (int i = 0; i < 50 && !failed; i++) {
		if (send(c, "x", 1, MSG_NOSIGNAL) < 0)
			failed = errno;
		else
			usleep(20000);
	}
	assert_int_equal(failed, EPIPE);
	btsock_close(c);
	btsock_close(l);
}

/* A reader that takes the data slowly: btsock_close() of the writer returns once everything
 * has gone out, however long that takes, as long as the peer keeps taking some (the socket's
 * timeout bounds only a stall). Then the writer's stack goes away at once, as when a process
 * exits after close: the reader still gets every byte. (Before, close gave up after the
 * timeout in all, and btsock on userchan lost the tail of a 100 kB file to a slow btvirt peer.) */
typedef struct {
	int fd;
	size_t got, bad;
} slow_reader;

static void *slow_read(void *arg)
{
	slow_reader *r = arg;
	uint8_t buf[16384];
	for (;;) {
		ssize_t n = recv(r->fd, buf, sizeof buf, 0);
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != xfer_pat(7, r->got + (size_t)i))
				r->bad++;
		r->got += (size_t)n;
		usleep(40 * 1000); /* at most ~400 kB/s */
	}
	return NULL;
}

static void test_close_waits_for_a_slow_reader(void **state)
{
	char E[BTSOCK_ADDRSTRLEN], F[BTSOCK_ADDRSTRLEN];
	if (btsock_adapter_open(env->adapter, E) < 0 || btsock_adapter_open(env->adapter, F) < 0)
		fail_msg("adapter: %s", btsock_error());
	unsigned ch = 0;
	int l = listener(E, &ch, 1);
	int c = client(F, E, ch);
	int s = track(btsock_accept(l, NULL, NULL));
	assert_true(s >= 0);
	/* Fill every buffer between c and s while nobody reads. */
	uint8_t buf[8192];
	size_t sent = 0;
	for (int again = 0; again < 10;) {
		for (size_t i = 0; i < sizeof buf; i++)
			buf[i] = xfer_pat(7, sent + i);
		ssize_t w = send(c, buf, sizeof buf, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			assert_int_equal(errno, EAGAIN);
			again++;
			usleep(20 * 1000);
			continue;
		}
		again = 0;
		sent += (size_t)w;
	}
	assert_true(sent > 600000); /* more than 1 s for the reader below */
	slow_reader r = { .fd = s };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, slow_read, &r), 0);
	/* The reader's socketpair turns writable again for E's loop only once 3/4 of it has been
	 * read (AF_UNIX), so F sees progress in steps (~0.6 s here): 1 s without any is a stall. */
	assert_int_equal(btsock_settimeout(c, 1000), 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = btsock_close(c);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc < 0)
		fail_msg("%s", btsock_error());
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	print_message("close of %zu queued bytes took %ld ms\n", sent, ms);
	assert_int_equal(btsock_adapter_close(F), 0);
	pthread_join(t, NULL);
	assert_int_equal(r.bad, 0);
	assert_int_equal(r.got, sent);
	assert_true(ms > 1000); /* it waited past the timeout */
	btsock_close(s);
	btsock_close(l);
	assert_int_equal(btsock_adapter_close(E), 0);
}

static void test_refusals_and_bad_arguments(void **state)
{
	int s = track(btsock_socket(BTSOCK_RFCOMM));
	assert_int_equal(btsock_bind(s, B, 0), 0);
	assert_int_equal(btsock_connect(s, A, 9), -1); /* nobody listens on 9 */
	assert_int_equal(errno, ECONNREFUSED);
	assert_non_null(strstr(btsock_error(), "refused"));
	assert_non_null(strstr(btsock_error(), A));
	assert_int_equal(btsock_connect(s, "zz:00:00:00:00:00", 1), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(btsock_error(), "invalid address"));
	assert_int_equal(btsock_connect(s, A, 31), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(btsock_bind(s, "", 1), -1); /* already bound */
	btsock_close(s);
	assert_int_equal(btsock_accept(12345, NULL, NULL), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(btsock_socket((enum btsock_proto)7), -1);
	/* A page to an address no controller has fails in bounded time. */
	s = track(btsock_socket(BTSOCK_RFCOMM));
	btsock_bind(s, B, 0);
	assert_int_equal(btsock_connect(s, "00:11:22:33:44:55", 1), -1);
	assert_true(errno == EHOSTDOWN || errno == ETIMEDOUT);
	assert_non_null(strstr(btsock_error(), "00:11:22:33:44:55"));
	btsock_close(s);
}

/* A server thread that accepts n connections and closes each at once. */
struct closer {
	int l, n, accepted;
};
static void *closer_main(void *arg)
{
	struct closer *c = arg;
	for (int i = 0; i < c->n; i++) {
		int fd = btsock_accept(c->l, NULL, NULL);
		if (fd < 0)
			break;
		c->accepted++;
		btsock_close(fd);
	}
	return NULL;
}

/* A server that accepts and closes at once: the client's connect still succeeds (the
 * connection existed), then it reads end of file and its writes fail. */
static void test_peer_accepts_and_closes_at_once(void **state)
{
	unsigned ch = 0;
	struct closer cl = { .l = listener(A, &ch, 4), .n = 5 };
	btsock_settimeout(cl.l, 20000);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, closer_main, &cl), 0);
	for (int i = 0; i < cl.n; i++) {
		int c = track(btsock_socket(BTSOCK_RFCOMM));
		assert_int_equal(btsock_bind(c, B, 0), 0);
		if (btsock_connect(c, A, ch) < 0)
			fail_msg("connect %d: %s (errno %d)", i, btsock_error(), errno);
		char b[4];
		assert_int_equal(recv(c, b, sizeof b, 0), 0);
		btsock_close(c);
	}
	pthread_join(t, NULL);
	assert_int_equal(cl.accepted, cl.n);
}

/* A second DLC to the same channel over the same link is refused with a clear error; a second
 * connection after the first closed is served (backlog 2). */
static void test_connect_twice_same_channel(void **state)
{
	unsigned ch = 0;
	int l = listener(A, &ch, 2);
	int c1 = client(B, A, ch);
	int s1 = track(btsock_accept(l, NULL, NULL));
	assert_true(s1 >= 0);
	int c2 = track(btsock_socket(BTSOCK_RFCOMM));
	btsock_bind(c2, B, 0);
	int rc = btsock_connect(c2, A, ch);
	if (rc == 0) { /* served: must really work */
		int s2 = track(btsock_accept(l, NULL, NULL));
		assert_true(s2 >= 0);
		btsock_close(s2);
	} else {
		assert_true(strlen(btsock_error()) > 10);
	}
	btsock_close(c2);
	btsock_close(c1);
	btsock_close(s1);
	int c3 = client(B, A, ch);
	int s3 = track(btsock_accept(l, NULL, NULL));
	assert_true(s3 >= 0);
	assert_int_equal(send(c3, "ok", 2, 0), 2);
	char b[2];
	assert_int_equal(recv(s3, b, 2, MSG_WAITALL), 2);
	btsock_close(c3);
	btsock_close(s3);
	btsock_close(l);
}

static void test_timeouts_and_nonblocking(void **state)
{
	unsigned ch = 0;
	int l = listener(A, &ch, 1);
	assert_int_equal(btsock_settimeout(l, 200), 0);
	assert_int_equal(btsock_accept(l, NULL, NULL), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_int_equal(btsock_setblocking(l, false), 0);
	assert_int_equal(btsock_accept(l, NULL, NULL), -1);
	assert_int_equal(errno, EAGAIN);

	int c = track(btsock_socket(BTSOCK_RFCOMM));
	btsock_bind(c, B, 0);
	assert_int_equal(btsock_setblocking(c, false), 0);
	assert_int_equal(btsock_connect(c, A, ch), -1);
	assert_int_equal(errno, EINPROGRESS);
	struct pollfd p = { c, POLLOUT, 0 };
	assert_int_equal(poll(&p, 1, 10000), 1);
	assert_int_equal(btsock_connect_result(c), 0);
	/* The listener's fd polls readable with the connection waiting. */
	struct pollfd pl = { l, POLLIN, 0 };
	assert_int_equal(poll(&pl, 1, 5000), 1);
	int s = track(btsock_accept(l, NULL, NULL));
	assert_true(s >= 0);
	assert_int_equal(send(c, "abc", 3, 0), 3);
	char b[3];
	assert_int_equal(btsock_settimeout(s, 5000), 0);
	assert_int_equal(recv(s, b, 3, MSG_WAITALL), 3);
	assert_memory_equal(b, "abc", 3);
	/* Non-blocking connect that fails: POLLOUT, then the reason. */
	int f = track(btsock_socket(BTSOCK_RFCOMM));
	btsock_bind(f, B, 0);
	btsock_setblocking(f, false);
	assert_int_equal(btsock_connect(f, A, 29), -1);
	assert_int_equal(errno, EINPROGRESS);
	struct pollfd pf = { f, POLLOUT, 0 };
	assert_int_equal(poll(&pf, 1, 10000), 1);
	assert_int_equal(btsock_connect_result(f), -1);
	assert_int_equal(errno, ECONNREFUSED);
	btsock_close(f);
	btsock_close(c);
	btsock_close(s);
	btsock_close(l);
}

/* The capture of everything above decodes with BlueZ's btmon: no malformed or truncated
 * packets, and the RFCOMM frames are recognised. */
static void test_capture_decodes_with_btmon(void **state)
{
	btsock_shutdown(); /* flushes and closes the capture */
	char *all = btmon_decode(snoop_path);
	if (!all) {
		print_message("btmon missing (Debian package bluez): capture not checked\n");
		skip();
	}
	long lines = 0, sabm = 0, uih = 0, bad = 0;
	for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
		lines++;
		sabm += strstr(line, "RFCOMM: Set Async Balance Mode") != NULL;
		uih += strstr(line, "RFCOMM: Unnumbered Info with Header Check") != NULL;
		bad += strstr(line, "invalid") || strstr(line, "Malformed") || strstr(line, "too short") ||
		       strstr(line, "short packet");
	}
	free(all);
	assert_true(lines > 1000);
	assert_true(sabm > 0);
	assert_true(uih > 0);
	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_seed_examples_as_processes, close_all),
		cmocka_unit_test_teardown(test_ten_mib_each_way, close_all),
		cmocka_unit_test_teardown(test_thirty_channels_and_a_second_link, close_all),
		cmocka_unit_test_teardown(test_reader_stops, close_all),
		cmocka_unit_test_teardown(test_peer_closes_mid_transfer, close_all),
		cmocka_unit_test_teardown(test_close_waits_for_a_slow_reader, close_all),
		cmocka_unit_test_teardown(test_refusals_and_bad_arguments, close_all),
		cmocka_unit_test_teardown(test_connect_twice_same_channel, close_all),
		cmocka_unit_test_teardown(test_peer_accepts_and_closes_at_once, close_all),
		cmocka_unit_test_teardown(test_timeouts_and_nonblocking, close_all),
		cmocka_unit_test(test_capture_decodes_with_btmon),
	};
	return cmocka_run_group_tests_name("api_rfcomm_over_btvirt", tests, group_setup, group_teardown);
}
