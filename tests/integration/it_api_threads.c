/* it_api_threads.c - many threads calling the public API at once on two adapters (issue 12):
 * connects, accepts, echo traffic, closes, SDP searches, adapter info and adapter churn, then
 * adapters closed while calls block in them. Run under ThreadSanitizer and ASan too
 * (scripts/test.sh): no race report, no use after free, no hang; a blocked call on a closed
 * adapter fails within a bound. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "btsock.h"
#include "api_util.h"
#include "btvirt_env.h"

#define RUN_MS 4000
#define CLIENTS 6
#define MSG 200

static btvirt_env *env;
static char A[BTSOCK_ADDRSTRLEN], B[BTSOCK_ADDRSTRLEN];
static atomic_bool stop;         /* clients, searches, churn: stop */
static atomic_bool stop_servers; /* after the clients: a connection is always accepted */

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* Joins t within ms, or fails the test naming what hung. */
static void join_within(pthread_t t, int ms, const char *what)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (pthread_timedjoin_np(t, NULL, &ts) != 0)
		fail_msg("%s did not return within %d ms (hang)", what, ms);
}

static int setup(void **state)
{
	(void)state;
	env = btvirt_start();
	if (!env)
		return -1;
	if (btsock_adapter_open(env->adapter, A) < 0 || btsock_adapter_open(env->adapter, B) < 0) {
		fprintf(stderr, "adapter: %s\n", btsock_error());
		return -1;
	}
	/* L2CAP has no flow control: with a dozen threads on 2 cores a host may not read for a
	 * few ms, and btvirt drops what does not fit its socket (api_util.h). */
	btvirt_deepen_queues(env->pid, 1 << 20);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	btsock_shutdown();
	btvirt_stop(env);
	return 0;
}

/* ------------------------------------------------------------------ servers */

typedef struct {
	int l;
	enum btsock_proto proto;
	unsigned port;
	atomic_int served;
} server;

static atomic_int echo_stalls;

/* Echoes one connection until the client closes it (a thread per connection). */
static void *echo_main(void *arg)
{
	int c = (int)(intptr_t)arg;
	uint8_t buf[1024];
	btsock_settimeout(c, 5000);
	for (;;) {
		ssize_t n = recv(c, buf, sizeof buf, 0);
		if (n < 0) {
			char peer[BTSOCK_ADDRSTRLEN] = "";
			unsigned port = 0;
			btsock_getpeername(c, peer, &port);
			fprintf(stderr, "echo: fd %d from %s: nothing for 5 s: %s\n", c, peer, strerror(errno));
			atomic_fetch_add(&echo_stalls, 1);
		}
		if (n <= 0)
			break;
		if (send(c, buf, (size_t)n, MSG_NOSIGNAL) != n)
			break;
	}
	btsock_close(c);
	return NULL;
}

static void *server_main(void *arg)
{
	server *s = arg;
	while (!atomic_load(&stop_servers)) {
		int c = btsock_accept(s->l, NULL, NULL);
		pthread_t t;
		if (c >= 0 && pthread_create(&t, NULL, echo_main, (void *)(intptr_t)c) == 0) {
			pthread_detach(t);
			atomic_fetch_add(&s->served, 1);
		} else if (c >= 0) {
			btsock_close(c);
		} else if (errno != ETIMEDOUT && errno != EAGAIN) {
			fprintf(stderr, "accept: %s\n", btsock_error());
			break;
		}
	}
	return NULL;
}

static void server_open(server *s, enum btsock_proto proto)
{
	s->proto = proto;
	s->l = btsock_socket(proto);
	assert_true(s->l >= 0);
	assert_int_equal(btsock_bind(s->l, A, 0), 0);
	assert_int_equal(btsock_listen(s->l, 4), 0);
	assert_int_equal(btsock_getsockname(s->l, NULL, &s->port), 0);
	assert_int_equal(btsock_settimeout(s->l, 200), 0); /* accept wakes to see `stop` */
}

/* ------------------------------------------------------------------ clients */

typedef struct {
	server *srv;
	int id;
	atomic_int ok, failed;
	char last_err[320];
} client;

static bool read_full(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = recv(fd, buf + got, n - got, 0);
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

/* One connection: connect from B, a message each way, checked, close. */
static bool client_round(client *c, unsigned round)
{
	int s = btsock_socket(c->srv->proto);
	if (s < 0)
		return false;
	bool ok = false;
	uint8_t out[MSG], in[MSG];
	for (size_t i = 0; i < MSG; i++)
		out[i] = (uint8_t)(c->id * 31 + round * 7 + i);
	char peer[BTSOCK_ADDRSTRLEN];
	unsigned port = 0;
	if (btsock_settimeout(s, 8000) == 0 && btsock_bind(s, B, 0) == 0 &&
	    btsock_connect(s, A, c->srv->port) == 0 && btsock_getpeername(s, peer, &port) == 0 &&
	    strcmp(peer, A) == 0 && port == c->srv->port && send(s, out, MSG, MSG_NOSIGNAL) == MSG &&
	    read_full(s, in, MSG) && memcmp(in, out, MSG) == 0 && btsock_sock_error(s) == 0)
		ok = true;
	if (!ok)
		snprintf(c->last_err, sizeof c->last_err, "%s (%s)", btsock_error(), strerror(errno));
	btsock_close(s);
	return ok;
}

static void *client_main(void *arg)
{
	client *c = arg;
	for (unsigned round = 0; !atomic_load(&stop); round++) {
		if (client_round(c, round))
			atomic_fetch_add(&c->ok, 1);
		else
			atomic_fetch_add(&c->failed, 1);
	}
	return NULL;
}

/* ------------------------------------------------------------------ others */

static atomic_int finds, infos, churns;

/* SDP searches from the default adapter (A) on B, and adapter facts. */
static void *finder_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		struct btsock_service_info *svc = NULL;
		if (btsock_find_services(B, NULL, NULL, &svc) >= 0)
			atomic_fetch_add(&finds, 1);
		btsock_free_services(svc);
		struct btsock_adapter_info info;
		if (btsock_adapter_info(B, &info) == 0 && strcmp(info.addr, B) == 0)
			atomic_fetch_add(&infos, 1);
	}
	return NULL;
}

/* A third adapter opened and closed again and again, with a listener whose accept blocks in
 * another thread while the adapter closes. */
typedef struct {
	int l;
	int rc, err;
} blocked_call;

static void *blocked_accept(void *arg)
{
	blocked_call *b = arg;
	b->rc = btsock_accept(b->l, NULL, NULL);
	b->err = errno;
	return NULL;
}

static void *churn_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		char C[BTSOCK_ADDRSTRLEN];
		if (btsock_adapter_open(env->adapter, C) < 0)
			continue;
		blocked_call b = { .l = btsock_socket(BTSOCK_RFCOMM) };
		pthread_t t;
		bool started = b.l >= 0 && btsock_bind(b.l, C, 0) == 0 && btsock_listen(b.l, 1) == 0 &&
			       pthread_create(&t, NULL, blocked_accept, &b) == 0;
		usleep(20000);
		btsock_adapter_close(C);
		if (started) {
			join_within(t, 3000, "accept on a closed adapter");
			assert_int_equal(b.rc, -1);
			assert_int_equal(b.err, ENETDOWN);
		}
		btsock_close(b.l);
		atomic_fetch_add(&churns, 1);
	}
	return NULL;
}

/* ------------------------------------------------------------------ tests */

static void test_many_threads(void **state)
{
	(void)state;
	/* RFCOMM allows one connection per device pair and channel (the DLCI is the channel):
	 * each RFCOMM client has a listener of its own; L2CAP clients share one. */
	enum { NSRV = CLIENTS / 2 + 1 };
	server srv[NSRV] = { 0 };
	for (int i = 0; i < NSRV; i++)
		server_open(&srv[i], i < NSRV - 1 ? BTSOCK_RFCOMM : BTSOCK_L2CAP);
	client cl[CLIENTS] = { 0 };
	pthread_t st[NSRV], ct[CLIENTS], ft, cht;
	atomic_store(&stop, false);
	atomic_store(&stop_servers, false);
	for (int i = 0; i < NSRV; i++)
		assert_int_equal(pthread_create(&st[i], NULL, server_main, &srv[i]), 0);
	for (int i = 0; i < CLIENTS; i++) {
		cl[i].srv = &srv[i < NSRV - 1 ? i : NSRV - 1];
		cl[i].id = i;
		assert_int_equal(pthread_create(&ct[i], NULL, client_main, &cl[i]), 0);
	}
	assert_int_equal(pthread_create(&ft, NULL, finder_main, NULL), 0);
	assert_int_equal(pthread_create(&cht, NULL, churn_main, NULL), 0);
	usleep(RUN_MS * 1000);
	atomic_store(&stop, true);
	for (int i = 0; i < CLIENTS; i++)
		join_within(ct[i], 20000, "a client thread");
	join_within(ft, 20000, "the SDP thread");
	join_within(cht, 20000, "the adapter churn thread");
	atomic_store(&stop_servers, true);
	for (int i = 0; i < NSRV; i++)
		join_within(st[i], 10000, "a server thread");
	int ok = 0, failed = 0;
	for (int i = 0; i < CLIENTS; i++) {
		ok += atomic_load(&cl[i].ok);
		failed += atomic_load(&cl[i].failed);
		if (atomic_load(&cl[i].failed))
			fprintf(stderr, "client %d: %d failed, last: %s\n", i, atomic_load(&cl[i].failed), cl[i].last_err);
	}
	fprintf(stderr, "%d exchanges, %d failed; %d SDP searches, %d info calls, %d adapter open/close\n", ok, failed,
		atomic_load(&finds), atomic_load(&infos), atomic_load(&churns));
	assert_int_equal(failed, 0);
	assert_int_equal(atomic_load(&echo_stalls), 0);
	assert_true(ok >= CLIENTS);
	assert_true(atomic_load(&finds) > 0);
	assert_true(atomic_load(&churns) > 0);
	for (int i = 0; i < NSRV; i++)
		assert_int_equal(btsock_close(srv[i].l), 0);
}

/* Calls blocked on an adapter when it closes: accepts, closes waiting for data a peer does not
 * take, an inquiry. Each fails with ENETDOWN within 2 s of the close. */
typedef struct {
	int kind; /* 0 accept, 1 close, 2 discover */
	int fd;
	char adapter[BTSOCK_ADDRSTRLEN];
	int rc, err;
	uint64_t returned;
	int listener;
} blocker;

static void *blocker_main(void *arg)
{
	blocker *b = arg;
	struct btsock_device dev[4];
	if (b->kind == 0)
		b->rc = btsock_accept(b->fd, NULL, NULL);
	else if (b->kind == 1)
		b->rc = btsock_close(b->fd);
	else
		b->rc = btsock_discover(b->adapter, 10000, false, dev, 4);
	b->err = errno;
	b->returned = now_ms();
	return NULL;
}

static void test_close_with_blocked_calls(void **state)
{
	(void)state;
	/* Two fresh adapters: btvirt (BlueZ 5.66 emulator/btdev.c send_acl) forwards ACL data with
	 * the sender's connection handle, so a link works only where both ends numbered it alike;
	 * A already has links, a fresh pair's first link is 0x2a on both ends. */
	char C[BTSOCK_ADDRSTRLEN], D[BTSOCK_ADDRSTRLEN];
	assert_int_equal(btsock_adapter_open(env->adapter, C), 0);
	assert_int_equal(btsock_adapter_open(env->adapter, D), 0);
	blocker b[7] = { 0 };
	pthread_t t[7];
	for (int i = 0; i < 7; i++) {
		b[i].kind = i < 3 ? 0 : i < 6 ? 1 : 2;
		snprintf(b[i].adapter, sizeof b[i].adapter, "%s", C);
		if (b[i].kind < 2) {
			b[i].fd = btsock_socket(BTSOCK_RFCOMM);
			assert_true(b[i].fd >= 0);
			assert_int_equal(btsock_bind(b[i].fd, C, 0), 0);
			if (b[i].kind == 0)
				assert_int_equal(btsock_listen(b[i].fd, 1), 0);
		}
		if (b[i].kind == 1) { /* connected to a listener on D that never reads: credits stop */
			int l = btsock_socket(BTSOCK_RFCOMM);
			unsigned port;
			assert_int_equal(btsock_bind(l, D, 0), 0);
			assert_int_equal(btsock_listen(l, 1), 0);
			assert_int_equal(btsock_getsockname(l, NULL, &port), 0);
			if (btsock_connect(b[i].fd, D, port) != 0)
				fail_msg("connect: %s", btsock_error());
			assert_int_equal(btsock_settimeout(b[i].fd, 60000), 0); /* close would wait 60 s */
			static uint8_t junk[4096];
			while (send(b[i].fd, junk, sizeof junk, MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
				;
			b[i].listener = l;
		}
		assert_int_equal(pthread_create(&t[i], NULL, blocker_main, &b[i]), 0);
	}
	usleep(300000);
	uint64_t t0 = now_ms();
	assert_int_equal(btsock_adapter_close(C), 0);
	for (int i = 0; i < 7; i++) {
		join_within(t[i], 5000, "a call blocked on the closed adapter");
		assert_int_equal(b[i].rc, -1);
		if (b[i].err != ENETDOWN)
			fail_msg("call %d (kind %d) failed with %s, not ENETDOWN", i, b[i].kind, strerror(b[i].err));
		if (b[i].returned - t0 > 2000)
			fail_msg("call %d returned %u ms after the close", i, (unsigned)(b[i].returned - t0));
		if (b[i].kind == 0)
			btsock_close(b[i].fd);
		if (b[i].listener > 0)
			btsock_close(b[i].listener);
	}
	/* The other adapters carry on. */
	struct btsock_adapter_info info;
	assert_int_equal(btsock_adapter_info(A, &info), 0);
	assert_int_equal(btsock_adapter_info(C, &info), -1);
	assert_int_equal(errno, ENODEV);
	assert_int_equal(btsock_adapter_close(D), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_threads),
		cmocka_unit_test(test_close_with_blocked_calls),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
