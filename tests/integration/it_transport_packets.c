/* it_transport_packets.c - the packet transport seam (issue 12): a transport kind of the
 * tests' own (tr_packets.c: two SOCK_SEQPACKET channels, one packet per datagram, like USB's
 * endpoints; no byte stream, no H4 framing on the host side) plugs in through
 * bt_transport_register and carries full RFCOMM exchanges through the public API, over btvirt.
 * When its relay dies, sockets end with ENETDOWN as on the other transports. */
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
#include "tr_packets.h"

static btvirt_env *env;
static char spec[200];
static char A[BTSOCK_ADDRSTRLEN], B[BTSOCK_ADDRSTRLEN];

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static int group_setup(void **state)
{
	env = btvirt_start();
	if (tr_packets_register() < 0)
		return -1;
	snprintf(spec, sizeof spec, "test-packets:%s", env->socket_path);
	if (btsock_adapter_open(spec, A) < 0 || btsock_adapter_open(spec, B) < 0) {
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

/* The kind opens through the same front door, and its errors are sentences like the others. */
static void test_open_errors(void **state)
{
	char addr[BTSOCK_ADDRSTRLEN];
	assert_int_equal(btsock_adapter_open("test-packets:/nonexistent/socket", addr), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(btsock_error(), "test-packets:/nonexistent/socket: connect: "));
	struct btsock_adapter_info info;
	assert_int_equal(btsock_adapter_info(A, &info), 0);
	assert_string_equal(info.name, spec);
	assert_true(info.acl_mtu > 0);
}

static int listener(const char *local, unsigned *channel)
{
	int s = track(btsock_socket(BTSOCK_RFCOMM));
	assert_true(s >= 0);
	assert_int_equal(btsock_bind(s, local, 0), 0);
	assert_int_equal(btsock_listen(s, 1), 0);
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

/* Listen and accept on A, connect on B, 512 KiB each way at once (every byte checked against
 * its pattern), then an orderly close from both ends: all of it through the packet channels. */
static void test_rfcomm_exchange(void **state)
{
	unsigned long down0, up0, down1, up1;
	tr_packets_counts(&down0, &up0);
	unsigned ch = 0;
	int l = listener(A, &ch);
	int c = client(B, A, ch);
	char peer[BTSOCK_ADDRSTRLEN];
	unsigned peer_ch = 0;
	int s = track(btsock_accept(l, peer, &peer_ch));
	assert_true(s >= 0);
	assert_string_equal(peer, B);
	assert_int_equal(peer_ch, ch);
	const size_t total = 512u * 1024;
	xfer x[2] = {
		{ .fd = s, .seed = 31, .chunk = 4096, .tx_total = total, .rx_expect = total },
		{ .fd = c, .seed = 47, .chunk = 4096, .tx_total = total, .rx_expect = total },
	};
	assert_true(xfer_run(x, 2, 120000));
	for (int i = 0; i < 2; i++) {
		assert_int_equal(x[i].rx_done, total);
		assert_int_equal(x[i].rx_bad, 0);
	}
	assert_int_equal(btsock_close(c), 0);
	/* The acceptor reads end of file, with no fault. */
	char b;
	struct pollfd p = { s, POLLIN, 0 };
	assert_int_equal(poll(&p, 1, 10000), 1);
	assert_int_equal(recv(s, &b, 1, 0), 0);
	assert_int_equal(btsock_sock_error(s), 0);
	assert_int_equal(btsock_close(s), 0);
	assert_int_equal(btsock_close(l), 0);
	tr_packets_counts(&down1, &up1);
	/* 512 KiB each way is hundreds of ACL packets down and up through the relays. */
	printf("relays carried %lu datagrams down, %lu up\n", down1 - down0, up1 - up0);
	assert_true(down1 - down0 > 500);
	assert_true(up1 - up0 > 500);
}

/* The relay dies mid-transfer (an unplugged adapter): both adapters are dead within 2 s, their
 * sockets end with ENETDOWN (reads give end of file, writes EPIPE) and calls on them name the
 * fault. Last: it kills every relay of the process. */
static void test_relay_killed(void **state)
{
	unsigned ch = 0;
	int l = listener(A, &ch);
	int c = client(B, A, ch);
	int s = track(btsock_accept(l, NULL, NULL));
	assert_true(s >= 0);
	xfer x[2] = {
		{ .fd = s, .seed = 5, .chunk = 4096, .tx_total = 16384, .rx_expect = 16384 },
		{ .fd = c, .seed = 6, .chunk = 4096, .tx_total = 16384, .rx_expect = 16384 },
	};
	assert_true(xfer_run(x, 2, 30000));
	assert_int_equal(tr_packets_kill_all(), 2);
	uint64_t t0 = now_ms();
	int fds[2] = { s, c };
	for (int i = 0; i < 2; i++) {
		struct pollfd p = { fds[i], POLLIN, 0 };
		assert_int_equal(poll(&p, 1, 2000), 1);
		char b;
		ssize_t r;
		while ((r = recv(fds[i], &b, 1, MSG_DONTWAIT)) > 0)
			;
		assert_int_equal(r, 0); /* end of file */
		int err = btsock_sock_error(fds[i]);
		printf("socket %d: %s\n", i, btsock_error());
		assert_int_equal(err, ENETDOWN);
		assert_int_equal(send(fds[i], "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL), -1);
		assert_int_equal(errno, EPIPE);
	}
	assert_true(now_ms() - t0 <= 2000);
	/* A call on the dead adapter fails at once and names the transport's end. */
	assert_int_equal(btsock_settimeout(l, 3000), 0);
	assert_int_equal(btsock_accept(l, NULL, NULL), -1);
	assert_int_equal(errno, ENETDOWN);
	printf("accept: %s\n", btsock_error());
	assert_non_null(strstr(btsock_error(), "the controller connection closed"));
	btsock_close(c);
	btsock_close(s);
	btsock_close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_open_errors, close_all),
		cmocka_unit_test_teardown(test_rfcomm_exchange, close_all),
		cmocka_unit_test_teardown(test_relay_killed, close_all),
	};
	return cmocka_run_group_tests_name("transport_packets", tests, group_setup, group_teardown);
}
