/* it_core_rfcomm.c - RFCOMM between protocol-core stacks in one process over btvirt: 10 MiB
 * each way at once on one DLC (checked byte by byte: no loss, no reordering), 30 DLCs on one
 * link, a reader that stops reading (the sender stalls, memory stays bounded, nothing lost),
 * a channel nobody listens on (DM -> ECONNREFUSED), and the peer closing mid-transfer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "btvirt_env.h"
#include "core_util.h"

typedef struct {
	rfcomm_dlc *d;
	int opened, closed, err;
	uint8_t seed, peer_seed;
	bool learn_seed;
	bool paused; /* do not read */
	size_t tx_total, tx_done, rx_done, rx_bad;
} tdlc;

static uint8_t pat(uint8_t seed, size_t i) { return (uint8_t)(seed + i * 13 + (i >> 9)); }

static void pump(tdlc *t)
{
	uint8_t buf[2048];
	while (t->tx_done < t->tx_total) {
		size_t n = t->tx_total - t->tx_done;
		if (n > sizeof buf)
			n = sizeof buf;
		for (size_t i = 0; i < n; i++)
			buf[i] = pat(t->seed, t->tx_done + i);
		ssize_t w = rfcomm_write(t->d, buf, n);
		if (w <= 0)
			return;
		t->tx_done += (size_t)w;
	}
}
static void drain(tdlc *t)
{
	uint8_t buf[4096];
	size_t n;
	while (!t->paused && (n = rfcomm_read(t->d, buf, sizeof buf)) > 0) {
		if (t->rx_done == 0 && t->learn_seed)
			t->peer_seed = buf[0]; /* pat(seed, 0) == seed */
		for (size_t i = 0; i < n; i++)
			if (buf[i] != pat(t->peer_seed, t->rx_done + i))
				t->rx_bad++;
		t->rx_done += n;
	}
}
static void d_opened(void *c, rfcomm_dlc *d)
{
	tdlc *t = c;
	t->opened++;
	pump(t);
}
static void d_readable(void *c, rfcomm_dlc *d) { drain(c); }
static void d_writable(void *c, rfcomm_dlc *d) { pump(c); }
static void d_closed(void *c, rfcomm_dlc *d, int err)
{
	tdlc *t = c;
	t->closed++;
	t->err = err;
	drain(t);
}
static const rfcomm_dlc_ops d_ops = { d_opened, d_readable, d_writable, d_closed };

typedef struct {
	tdlc pool[40];
	int n;
	size_t tx_total;
	bool paused;
} server;

static int srv_accept(void *s, rfcomm_dlc *d, const rfcomm_dlc_ops **ops, void **ctx)
{
	server *sv = s;
	if (sv->n == 40)
		return -ENOBUFS;
	tdlc *t = &sv->pool[sv->n++];
	memset(t, 0, sizeof *t);
	t->d = d;
	t->seed = (uint8_t)(100 + sv->n);
	t->learn_seed = true;
	t->tx_total = sv->tx_total;
	t->paused = sv->paused;
	*ops = &d_ops;
	*ctx = t;
	return 0;
}

static btvirt_env *env;
static core_node A, B;
static core_node *all[2] = { &A, &B };

static int group_setup(void **state)
{
	env = btvirt_start();
	core_node_open(&A, env->socket_path);
	core_node_open(&B, env->socket_path);
	return 0;
}
static int group_teardown(void **state)
{
	core_node_close(&A);
	core_node_close(&B);
	btvirt_stop(env);
	return 0;
}

static void open_dlc(tdlc *t, uint8_t channel, uint8_t seed, size_t total)
{
	memset(t, 0, sizeof *t);
	t->seed = seed;
	t->learn_seed = true;
	t->tx_total = total;
	assert_int_equal(rfcomm_connect(bt_stack_rfcomm(A.s), &B.addr, channel, &d_ops, t, &t->d), 0);
}

typedef struct {
	tdlc *c;
	int n;
	server *sv;
	size_t want;
} wait_t;
static bool opened_all(void *arg)
{
	wait_t *w = arg;
	for (int i = 0; i < w->n; i++)
		if (!w->c[i].opened && !w->c[i].closed)
			return false;
	return w->sv->n >= w->n;
}
static bool moved_all(void *arg)
{
	wait_t *w = arg;
	for (int i = 0; i < w->n; i++)
		if (w->c[i].rx_done < w->want || w->sv->pool[i].rx_done < w->c[i].tx_total)
			return false;
	return true;
}
static bool closed_first(void *arg) { return ((tdlc *)arg)->closed > 0; }

static void test_ten_mib_each_way(void **state)
{
	server sv = { .tx_total = 10u << 20 };
	int ch = rfcomm_listen(bt_stack_rfcomm(B.s), 0, srv_accept, &sv);
	assert_int_equal(ch, 1);
	tdlc t;
	open_dlc(&t, (uint8_t)ch, 9, 10u << 20);
	wait_t w = { &t, 1, &sv, 10u << 20 };
	assert_true(core_run(all, 2, 5000, opened_all, &w));
	assert_int_equal(t.opened, 1);
	uint64_t t0 = mono_ms();
	assert_true(core_run(all, 2, 120000, moved_all, &w));
	print_message("10 MiB each way in %llu ms (core stacks, unpinned, one thread)\n",
		      (unsigned long long)(mono_ms() - t0));
	assert_int_equal(t.rx_done, 10u << 20);
	assert_int_equal(t.rx_bad, 0);
	assert_int_equal(sv.pool[0].rx_done, 10u << 20);
	assert_int_equal(sv.pool[0].rx_bad, 0);
	rfcomm_close(t.d);
	rfcomm_close(sv.pool[0].d);
	rfcomm_unlisten(bt_stack_rfcomm(B.s), (uint8_t)ch);
	core_run(all, 2, 300, NULL, NULL);
}

static void test_thirty_dlcs_one_link(void **state)
{
	static server sv;
	memset(&sv, 0, sizeof sv);
	sv.tx_total = 30000;
	static tdlc t[30];
	int chans[30];
	static server *svs[30];
	(void)svs;
	/* 30 listening channels on B, one DLC to each. */
	for (int i = 0; i < 30; i++) {
		chans[i] = rfcomm_listen(bt_stack_rfcomm(B.s), 0, srv_accept, &sv);
		assert_int_equal(chans[i], i + 1);
	}
	assert_int_equal(rfcomm_listen(bt_stack_rfcomm(B.s), 0, srv_accept, &sv), -EADDRINUSE);
	for (int i = 0; i < 30; i++)
		open_dlc(&t[i], (uint8_t)chans[i], (uint8_t)i, 30000);
	wait_t w = { t, 30, &sv, 30000 };
	assert_true(core_run(all, 2, 20000, opened_all, &w));
	bool done = false;
	for (int r = 0; r < 600 && !done; r++) {
		core_run(all, 2, 100, NULL, NULL);
		done = true;
		for (int i = 0; i < 30; i++)
			done &= t[i].rx_done == 30000 && sv.pool[i].rx_done == 30000;
	}
	for (int i = 0; i < 30; i++) {
		assert_int_equal(t[i].opened, 1);
		assert_int_equal(t[i].rx_done, 30000);
		assert_int_equal(t[i].rx_bad, 0);
		assert_int_equal(sv.pool[i].rx_done, 30000);
		assert_int_equal(sv.pool[i].rx_bad, 0);
		rfcomm_close(t[i].d);
		rfcomm_close(sv.pool[i].d);
		rfcomm_unlisten(bt_stack_rfcomm(B.s), (uint8_t)chans[i]);
	}
	core_run(all, 2, 300, NULL, NULL);
}

/* A receiver that stops reading for seconds: the sender stops (credits run out), nothing is
 * lost, and everything arrives once reading resumes. */
static void test_paused_reader(void **state)
{
	server sv = { .paused = true };
	int ch = rfcomm_listen(bt_stack_rfcomm(B.s), 0, srv_accept, &sv);
	tdlc t;
	open_dlc(&t, (uint8_t)ch, 3, 2u << 20);
	wait_t w = { &t, 1, &sv, 0 };
	assert_true(core_run(all, 2, 5000, opened_all, &w));
	core_run(all, 2, 2000, NULL, NULL);
	size_t stalled_at = t.tx_done;
	assert_true(stalled_at < (size_t)(64 * 1024)); /* bounded by credits and rings */
	core_run(all, 2, 1000, NULL, NULL);
	assert_int_equal(t.tx_done, stalled_at); /* really stalled */
	sv.pool[0].paused = false;
	drain(&sv.pool[0]);
	wait_t w2 = { &t, 1, &sv, 0 };
	assert_true(core_run(all, 2, 60000, moved_all, &w2));
	assert_int_equal(sv.pool[0].rx_done, 2u << 20);
	assert_int_equal(sv.pool[0].rx_bad, 0);
	rfcomm_close(t.d);
	rfcomm_close(sv.pool[0].d);
	rfcomm_unlisten(bt_stack_rfcomm(B.s), (uint8_t)ch);
	core_run(all, 2, 300, NULL, NULL);
}

static void test_no_listener_refused(void **state)
{
	tdlc t;
	open_dlc(&t, 17, 1, 0);
	assert_true(core_run(all, 2, 15000, closed_first, &t));
	assert_int_equal(t.err, -ECONNREFUSED);
	rfcomm_close(t.d);
}

/* The peer closes mid-transfer: the reader sees the end after all data already received,
 * the writer gets an error, nothing crashes. */
static void test_peer_closes_mid_transfer(void **state)
{
	server sv = { .tx_total = 0 };
	int ch = rfcomm_listen(bt_stack_rfcomm(B.s), 0, srv_accept, &sv);
	tdlc t;
	open_dlc(&t, (uint8_t)ch, 5, 8u << 20);
	wait_t w = { &t, 1, &sv, 0 };
	assert_true(core_run(all, 2, 5000, opened_all, &w));
	core_run(all, 2, 300, NULL, NULL);
	assert_true(sv.pool[0].rx_done > 0);
	rfcomm_close(sv.pool[0].d);
	assert_true(core_run(all, 2, 15000, closed_first, &t));
	assert_int_equal(t.err, 0);
	assert_true(t.tx_done < (8u << 20));
	assert_true(rfcomm_write(t.d, (const uint8_t *)"x", 1) < 0);
	rfcomm_close(t.d);
	rfcomm_unlisten(bt_stack_rfcomm(B.s), (uint8_t)ch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ten_mib_each_way),
		cmocka_unit_test(test_thirty_dlcs_one_link),
		cmocka_unit_test(test_paused_reader),
		cmocka_unit_test(test_no_listener_refused),
		cmocka_unit_test(test_peer_closes_mid_transfer),
	};
	return cmocka_run_group_tests_name("core_rfcomm_over_btvirt", tests, group_setup, group_teardown);
}
