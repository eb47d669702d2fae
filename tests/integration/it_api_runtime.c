/* it_api_runtime.c - faults of the socket runtime (src/runtime) never pass silently (issue 10 B):
 *   - closing an adapter while other threads are blocked in btsock_accept / btsock_close on
 *     it: they fail with ENETDOWN ("the adapter was closed") at once, with one adapter open
 *     (they used to sleep forever) or several (they used to read freed memory);
 *   - the loop thread's poll failing: the adapter is dead and a caller without a timeout
 *     hears of it (it used to hang);
 *   - more sockets than the loop's old fixed poll set (512): the oldest still move data;
 *   - a keystore file locked by another process: the key of a pairing waits for the lock on
 *     a thread of its own while data keeps moving, and goes to the adapter's own keystore.
 * One btvirt for the whole file; each test opens and closes its own adapters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../common/lock_holder.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/keystore.h"
#include "runtime/runtime.h"
#include "api_util.h"
#include "btsock.h"
#include "btvirt_env.h"
#include "gap/gap.h"
#include "hci/hci_defs.h"

static btvirt_env *env;

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
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

/* ------------------------------------------------------------------ a blocked call */

typedef enum { CALL_ACCEPT, CALL_CLOSE } call_kind;

typedef struct {
	call_kind kind;
	int fd;
	pid_t tid;
	int rc, err;
	char msg[320];
	uint64_t returned;
} call;

static void *call_main(void *arg)
{
	call *c = arg;
	__atomic_store_n(&c->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	c->rc = c->kind == CALL_ACCEPT ? btsock_accept(c->fd, NULL, NULL) : btsock_close(c->fd);
	c->err = errno;
	snprintf(c->msg, sizeof c->msg, "%s", btsock_error());
	c->returned = now_ms();
	return NULL;
}

/* Whether thread tid sleeps (in a wait: the call is blocked). */
static bool sleeping(pid_t tid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
	if (read_file(path, buf, sizeof buf) == 0)
		return false;
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'S';
}

/* Starts the call in a thread and returns once it is blocked in it (asleep, 200 ms on). */
static pthread_t call_start(call *c)
{
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, call_main, c), 0);
	uint64_t start = now_ms(), end = start + 10000;
	while (now_ms() < end) {
		pid_t tid = __atomic_load_n(&c->tid, __ATOMIC_ACQUIRE);
		if (tid && now_ms() - start >= 200 && sleeping(tid))
			return t;
		const struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	fail_msg("the call never blocked");
	return t;
}

/* The call returned within bound_ms of t0 with ENETDOWN. */
static void call_expect_down(call *c, pthread_t t, uint64_t t0, int bound_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	if (pthread_timedjoin_np(t, NULL, &ts) != 0)
		fail_msg("the blocked call is still blocked 10 s after its adapter was closed");
	printf("blocked %s: %d after %llu ms, errno %d: %s\n", c->kind == CALL_ACCEPT ? "accept" : "close", c->rc,
	       (unsigned long long)(c->returned - t0), c->err, c->msg);
	assert_int_equal(c->rc, -1);
	assert_int_equal(c->err, ENETDOWN);
	assert_non_null(strstr(c->msg, "adapter"));
	assert_true(c->returned - t0 <= (uint64_t)bound_ms);
}

static int listener(const char *local, enum btsock_proto proto, unsigned *port)
{
	int l = track(btsock_socket(proto));
	assert_true(l >= 0);
	assert_int_equal(btsock_bind(l, local, 0), 0);
	assert_int_equal(btsock_listen(l, 1), 0);
	assert_int_equal(btsock_getsockname(l, NULL, port), 0);
	return l;
}

static int client(const char *local, enum btsock_proto proto, const char *addr, unsigned port)
{
	int c = track(btsock_socket(proto));
	assert_true(c >= 0);
	assert_int_equal(btsock_bind(c, local, 0), 0);
	if (btsock_connect(c, addr, port) < 0)
		fail_msg("connect: %s", btsock_error());
	return c;
}

/* ------------------------------------------------------------------ tests */

/* The only adapter closes under a blocked accept: nothing would ever wake it. */
static void test_close_adapter_under_accept_single(void **state)
{
	(void)state;
	char A[BTSOCK_ADDRSTRLEN];
	assert_int_equal(btsock_adapter_open(env->adapter, A), 0);
	unsigned port;
	call c = { .kind = CALL_ACCEPT, .fd = listener(A, BTSOCK_RFCOMM, &port) };
	pthread_t t = call_start(&c);
	uint64_t t0 = now_ms();
	assert_int_equal(btsock_adapter_close(A), 0);
	call_expect_down(&c, t, t0, 1000);
}

/* Another adapter stays open (its loop keeps broadcasting): the woken accept must not touch
 * the closed adapter's freed sockets (ASan: heap-use-after-free). */
static void test_close_adapter_under_accept_two(void **state)
{
	(void)state;
	char A[BTSOCK_ADDRSTRLEN], B[BTSOCK_ADDRSTRLEN];
	assert_int_equal(btsock_adapter_open(env->adapter, A), 0);
	assert_int_equal(btsock_adapter_open(env->adapter, B), 0);
	unsigned port;
	call c = { .kind = CALL_ACCEPT, .fd = listener(A, BTSOCK_L2CAP, &port) };
	pthread_t t = call_start(&c);
	uint64_t t0 = now_ms();
	assert_int_equal(btsock_adapter_close(A), 0);
	call_expect_down(&c, t, t0, 1000);
	/* B is untouched. */
	struct btsock_adapter_info info;
	assert_int_equal(btsock_adapter_info(B, &info), 0);
	assert_int_equal(btsock_adapter_close(B), 0);
}

/* A btsock_close waiting for a peer that reads nothing: the adapter closing ends the wait. */
static void test_close_adapter_under_close(void **state)
{
	(void)state;
	char A[BTSOCK_ADDRSTRLEN], B[BTSOCK_ADDRSTRLEN];
	assert_int_equal(btsock_adapter_open(env->adapter, A), 0);
	assert_int_equal(btsock_adapter_open(env->adapter, B), 0);
	unsigned port;
	int l = listener(B, BTSOCK_RFCOMM, &port);
	int cfd = client(A, BTSOCK_RFCOMM, B, port);
	int sfd = track(btsock_accept(l, NULL, NULL)); /* never read */
	assert_true(sfd >= 0);
	static uint8_t junk[65536];
	while (send(cfd, junk, sizeof junk, MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
		;
	assert_int_equal(btsock_settimeout(cfd, 60000), 0); /* close would wait up to 60 s */
	call c = { .kind = CALL_CLOSE, .fd = cfd };
	pthread_t t = call_start(&c);
	uint64_t t0 = now_ms();
	assert_int_equal(btsock_adapter_close(A), 0);
	call_expect_down(&c, t, t0, 1000);
	assert_int_equal(btsock_adapter_close(B), 0);
}

/* The loop's poll() fails (more entries than RLIMIT_NOFILE: EINVAL): the adapter is dead and
 * an accept without a timeout says so. */
static void test_loop_poll_failure(void **state)
{
	(void)state;
	char A[BTSOCK_ADDRSTRLEN];
	assert_int_equal(btsock_adapter_open(env->adapter, A), 0);
	for (int i = 0; i < 16; i++) { /* bound sockets are polled (for the application's close) */
		int s = track(btsock_socket(BTSOCK_L2CAP));
		assert_int_equal(btsock_bind(s, A, 0), 0);
	}
	unsigned port;
	call c = { .kind = CALL_ACCEPT, .fd = listener(A, BTSOCK_L2CAP, &port) };
	pthread_t t = call_start(&c);
	struct rlimit old, low;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = 8;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	uint64_t t0 = now_ms();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	int j = pthread_timedjoin_np(t, NULL, &ts);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	if (j != 0)
		fail_msg("accept still blocked 10 s after the loop's poll failed");
	printf("accept: %d after %llu ms, errno %d: %s\n", c.rc, (unsigned long long)(c.returned - t0), c.err, c.msg);
	assert_int_equal(c.rc, -1);
	assert_int_equal(c.err, ENETDOWN);
	assert_non_null(strstr(c.msg, "poll"));
	assert_true(c.returned - t0 <= 3000); /* the loop wakes at least once a second */
	assert_int_equal(btsock_adapter_close(A), 0);
}

/* More sockets than the old fixed poll set of 512 on one adapter: the connection made first
 * (the last in the runtime's list) still moves data both ways. */
static void test_many_sockets_all_polled(void **state)
{
	(void)state;
	char A[BTSOCK_ADDRSTRLEN], B[BTSOCK_ADDRSTRLEN];
	assert_int_equal(btsock_adapter_open(env->adapter, A), 0);
	assert_int_equal(btsock_adapter_open(env->adapter, B), 0);
	unsigned port;
	int l = listener(A, BTSOCK_RFCOMM, &port);
	int c = client(B, BTSOCK_RFCOMM, A, port);
	int s = track(btsock_accept(l, NULL, NULL));
	assert_true(s >= 0);
	enum { N = 600 };
	static int many[N];
	for (int i = 0; i < N; i++) {
		many[i] = btsock_socket(BTSOCK_RFCOMM);
		assert_true(many[i] >= 0);
		assert_int_equal(btsock_bind(many[i], B, 0), 0);
	}
	xfer x[2] = {
		{ .fd = s, .seed = 1, .chunk = 4096, .tx_total = 128 * 1024, .rx_expect = 128 * 1024 },
		{ .fd = c, .seed = 2, .chunk = 4096, .tx_total = 128 * 1024, .rx_expect = 128 * 1024 },
	};
	bool ok = xfer_run(x, 2, 20000);
	for (int i = 0; i < N; i++)
		btsock_close(many[i]);
	assert_true(ok);
	assert_int_equal(x[0].rx_bad + x[1].rx_bad, 0);
	assert_int_equal(btsock_adapter_close(A), 0);
	assert_int_equal(btsock_adapter_close(B), 0);
}

static const uint8_t test_key[16] = { 0x77, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

static int notify_step(adapter *ad, void *arg, rt_why why)
{
	if (why == RT_DOWN)
		return -1;
	gap_event(bt_stack_gap(ad->st), HCI_EV_LINK_KEY_NOTIFICATION, arg, 23);
	return 0;
}

/* The controller reports a new bond (Link_Key_Notification, Vol 4 Part E 7.7.24) to the
 * adapter: fed to its GAP on its loop thread, as the loop does with controller events
 * (two btsock stacks on btvirt never pair by themselves). */
static void *notify_key(void *arg)
{
	const char *local = arg;
	bt_addr a, peer;
	assert_int_equal(bt_addr_parse(local, &a), 0);
	assert_int_equal(bt_addr_parse("00:AA:01:77:00:07", &peer), 0);
	uint8_t p[23];
	memcpy(p, peer.b, 6);
	memcpy(p + 6, test_key, 16);
	p[22] = 0x04; /* unauthenticated combination key */
	adapter *ad = rt_adapter_by_addr(&a);
	if (ad) {
		rt_call(ad, notify_step, p, -1, "test");
		rt_adapter_put(ad);
	}
	return ad ? arg : NULL;
}

static void count_key(void *ctx, const bt_addr *peer, const uint8_t key[16], uint8_t type)
{
	(void)peer, (void)type;
	if (memcmp(key, test_key, 16) == 0)
		(*(int *)ctx)++;
}

/* A pairing's key, while another process holds the keystore's lock: the loop is not held up
 * (data keeps moving), and the key lands, once the lock is free, in the keystore the adapter
 * was opened with, not in the one named since. */
static void test_keystore_locked_by_another_process(void **state)
{
	(void)state;
	char p1[96], p2[96], lock1[112];
	snprintf(p1, sizeof p1, "/tmp/btsock-it-keys-%d-1", (int)getpid());
	snprintf(p2, sizeof p2, "/tmp/btsock-it-keys-%d-2", (int)getpid());
	snprintf(lock1, sizeof lock1, "%s.lock", p1);
	unlink(p1), unlink(p2), unlink(lock1);
	char A[BTSOCK_ADDRSTRLEN], B[BTSOCK_ADDRSTRLEN];
	assert_int_equal(btsock_set_keystore(p1), 0);
	assert_int_equal(btsock_adapter_open(env->adapter, A), 0);
	assert_int_equal(btsock_adapter_open(env->adapter, B), 0);
	assert_int_equal(btsock_set_keystore(p2), 0); /* for adapters opened later only */
	int release;
	pid_t holder = lock_holder(p1, &release);

	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, notify_key, A), 0);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 3;
	void *res = NULL;
	if (pthread_timedjoin_np(t, &res, &ts) != 0) {
		char b = 1;
		assert_int_equal(write(release, &b, 1), 1); /* let the stuck loop go, then fail */
		pthread_join(t, NULL);
		fail_msg("the key's write held the adapter for 3 s while another process held the lock");
	}
	assert_non_null(res);

	unsigned port;
	int l = listener(A, BTSOCK_RFCOMM, &port);
	int c = client(B, BTSOCK_RFCOMM, A, port);
	int s = track(btsock_accept(l, NULL, NULL));
	assert_true(s >= 0);
	xfer x[2] = {
		{ .fd = s, .seed = 5, .chunk = 4096, .tx_total = 64 * 1024, .rx_expect = 64 * 1024 },
		{ .fd = c, .seed = 6, .chunk = 4096, .tx_total = 64 * 1024, .rx_expect = 64 * 1024 },
	};
	bool moved = xfer_run(x, 2, 20000);
	int n = 0;
	char err[256];
	bt_addr a;
	assert_int_equal(bt_addr_parse(A, &a), 0);
	int before = ks_load(p1, &a, count_key, &n, err, sizeof err);

	char b = 1;
	assert_int_equal(write(release, &b, 1), 1);
	close(release);
	int st;
	assert_int_equal(waitpid(holder, &st, 0), holder);
	assert_true(moved);
	assert_int_equal(before, 0); /* the lock was held: nothing written yet */
	uint64_t end = now_ms() + 10000;
	n = 0;
	while (n == 0 && now_ms() < end) {
		if (ks_load(p1, &a, count_key, &n, err, sizeof err) < 0)
			n = 0;
		const struct timespec nap = { 0, 20 * 1000 * 1000 };
		if (n == 0)
			nanosleep(&nap, NULL);
	}
	assert_int_equal(n, 1);
	assert_int_equal(access(p2, F_OK), -1); /* not the keystore named after the adapter opened */
	assert_int_equal(btsock_adapter_close(A), 0);
	assert_int_equal(btsock_adapter_close(B), 0);
	assert_int_equal(btsock_set_keystore(NULL), 0);
	unlink(p1), unlink(p2), unlink(lock1);
	char lock2[112];
	snprintf(lock2, sizeof lock2, "%s.lock", p2);
	unlink(lock2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_close_adapter_under_accept_single, close_all),
		cmocka_unit_test_teardown(test_close_adapter_under_accept_two, close_all),
		cmocka_unit_test_teardown(test_close_adapter_under_close, close_all),
		cmocka_unit_test_teardown(test_loop_poll_failure, close_all),
		cmocka_unit_test_teardown(test_many_sockets_all_polled, close_all),
		cmocka_unit_test_teardown(test_keystore_locked_by_another_process, close_all),
	};
	if (getenv("IT_FILTER")) /* run one test: IT_FILTER=test_name */
		cmocka_set_test_filter(getenv("IT_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
