/* it_core_l2cap.c - three protocol-core stacks in ONE process, each on its own btvirt
 * controller, talking L2CAP through the emulator: the core keeps no globals, so stacks are
 * plain values. Covers echo, 1 MiB each way at once, many channels on one link and on two
 * links, the peer closing, refused PSMs, a page to an address nobody has, malformed signalling
 * sent raw over the air, and a peer whose controller vanishes.
 *
 * btvirt quirk that shapes the topologies below: emulator/btdev.c send_acl() forwards ACL data
 * with the SENDER's connection handle, and each emulated controller numbers its links from 42
 * on its own. Data only reaches the right link when both ends of it hold the same number of
 * links, so multi-link tests build links pairwise (A-B and C-D, then A-C). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "btvirt_env.h"
#include "core/bytes.h"
#include "core_util.h"

#define MAXCH 64

/* One end of a test channel: sends a pattern of tx_total bytes, checks the pattern it gets. */
typedef struct {
	l2cap_chan *ch;
	int opened, closed, err;
	uint8_t seed;      /* pattern of the bytes this end sends */
	uint8_t peer_seed; /* pattern expected from the other end */
	size_t tx_total, tx_done, rx_done, rx_bad;
	bool echo;         /* send back what arrives (echo server) */
	bool learn_seed;   /* take peer_seed from the first byte (pairing order unknown) */
	uint8_t last[1024];
	size_t last_len;
} tch;

static uint8_t pat(uint8_t seed, size_t i) { return (uint8_t)(seed + i * 31 + (i >> 8)); }

static void pump(tch *t)
{
	uint8_t buf[4096];
	while (t->tx_done < t->tx_total) {
		size_t n = t->tx_total - t->tx_done;
		size_t mtu = l2cap_chan_omtu(t->ch);
		if (n > mtu)
			n = mtu;
		for (size_t i = 0; i < n; i++)
			buf[i] = pat(t->seed, t->tx_done + i);
		if (l2cap_send(t->ch, buf, n) != 0)
			return; /* -EAGAIN: writable follows */
		t->tx_done += n;
	}
}
static void t_opened(void *c, l2cap_chan *ch)
{
	tch *t = c;
	t->opened++;
	pump(t);
}
static void t_data(void *c, l2cap_chan *ch, const uint8_t *p, size_t n)
{
	tch *t = c;
	if (t->echo) {
		l2cap_send(ch, p, n);
		return;
	}
	if (t->rx_done == 0 && n > 0 && t->learn_seed)
		t->peer_seed = p[0]; /* pat(seed, 0) == seed: which sender this is */
	for (size_t i = 0; i < n; i++)
		if (p[i] != pat(t->peer_seed, t->rx_done + i))
			t->rx_bad++;
	t->rx_done += n;
	t->last_len = n < sizeof t->last ? n : sizeof t->last;
	memcpy(t->last, p, t->last_len);
}
static void t_writable(void *c, l2cap_chan *ch) { pump(c); }
static void t_closed(void *c, l2cap_chan *ch, int err)
{
	tch *t = c;
	t->closed++;
	t->err = err;
}
static const l2cap_chan_ops t_ops = { t_opened, t_data, t_writable, t_closed };

/* Server side: each accepted channel gets the next tch of a pool, configured by the test. */
typedef struct {
	tch pool[MAXCH];
	int n;
	size_t tx_total;
	bool echo;
	uint8_t peer_seed; /* the k-th accepted channel expects pattern peer_seed + k */
	bool learn_seed;
} server;

static int srv_accept(void *s, l2cap_chan *ch, const l2cap_chan_ops **ops, void **ctx)
{
	server *sv = s;
	if (sv->n == MAXCH)
		return -ENOBUFS;
	tch *t = &sv->pool[sv->n++];
	memset(t, 0, sizeof *t);
	t->ch = ch;
	t->seed = (uint8_t)(100 + sv->n);
	t->peer_seed = (uint8_t)(sv->peer_seed + sv->n - 1);
	t->tx_total = sv->tx_total;
	t->echo = sv->echo;
	t->learn_seed = sv->learn_seed;
	*ops = &t_ops;
	*ctx = t;
	return 0;
}

static btvirt_env *env;
static core_node A, B, C, D;
static core_node *all[4] = { &A, &B, &C, &D };

static int group_setup(void **state)
{
	env = btvirt_start();
	core_node_open(&A, env->socket_path);
	core_node_open(&B, env->socket_path);
	core_node_open(&C, env->socket_path);
	core_node_open(&D, env->socket_path);
	return 0;
}
static int group_teardown(void **state)
{
	core_node_close(&A);
	core_node_close(&B);
	core_node_close(&C);
	if (D.s)
		core_node_close(&D);
	btvirt_stop(env);
	return 0;
}

typedef struct {
	tch *t;
	int n;
	server *sv;
	int sv_n;
} waitset;

static bool all_opened(void *arg)
{
	waitset *w = arg;
	for (int i = 0; i < w->n; i++)
		if (!w->t[i].opened && !w->t[i].closed)
			return false;
	return !w->sv || w->sv->n >= w->sv_n;
}
static bool all_transferred(void *arg)
{
	waitset *w = arg;
	for (int i = 0; i < w->n; i++)
		if (w->t[i].rx_done < (w->sv ? w->sv->tx_total : 0) || w->t[i].tx_done < w->t[i].tx_total)
			return false;
	if (w->sv)
		for (int i = 0; i < w->sv->n; i++)
			if (w->sv->pool[i].rx_done < w->t[0].tx_total)
				return false;
	return true;
}
static bool first_closed(void *arg) { return ((tch *)arg)->closed > 0; }

static void open_client(tch *t, core_node *from, core_node *to, uint16_t psm, uint8_t seed, uint8_t peer_seed,
			size_t total)
{
	memset(t, 0, sizeof *t);
	t->seed = seed;
	t->peer_seed = peer_seed;
	t->tx_total = total;
	assert_int_equal(l2cap_connect(bt_stack_l2cap(from->s), &to->addr, psm, 1000, &t_ops, t, &t->ch), 0);
}

static void test_echo(void **state)
{
	server sv = { .echo = true };
	int psm = l2cap_listen(bt_stack_l2cap(B.s), 0, 1000, srv_accept, &sv);
	assert_true(psm >= 0x1001);
	tch t;
	open_client(&t, &A, &B, (uint16_t)psm, 1, 1, 0);
	waitset w = { &t, 1, &sv, 1 };
	assert_true(core_run(all, 4, 5000, all_opened, &w));
	assert_int_equal(t.opened, 1);
	assert_int_equal(l2cap_send(t.ch, (const uint8_t *)"hello", 5), 0);
	t.peer_seed = 0;
	core_run(all, 4, 2000, NULL, NULL);
	assert_int_equal(t.last_len, 5);
	assert_memory_equal(t.last, "hello", 5);
	l2cap_close(t.ch);
	l2cap_unlisten(bt_stack_l2cap(B.s), (uint16_t)psm);
	core_run(all, 4, 300, NULL, NULL);
	l2cap_close(sv.pool[0].ch);
}

/* 1 MiB each way at the same time, every byte checked against its pattern (no loss, no
 * reordering). */
static void test_one_mib_each_way(void **state)
{
	server sv = { .tx_total = 1 << 20, .peer_seed = 7 };
	int psm = l2cap_listen(bt_stack_l2cap(B.s), 0, 1000, srv_accept, &sv);
	tch t;
	open_client(&t, &A, &B, (uint16_t)psm, 7, 101, 1 << 20);
	waitset w = { &t, 1, &sv, 1 };
	assert_true(core_run(all, 4, 5000, all_opened, &w));
	assert_true(core_run(all, 4, 60000, all_transferred, &w));
	assert_int_equal(t.rx_done, 1 << 20);
	assert_int_equal(t.rx_bad, 0);
	assert_int_equal(sv.pool[0].rx_done, 1 << 20);
	assert_int_equal(sv.pool[0].rx_bad, 0);
	l2cap_close(t.ch);
	l2cap_close(sv.pool[0].ch);
	l2cap_unlisten(bt_stack_l2cap(B.s), (uint16_t)psm);
}

/* Many channels over several links at once: 20 channels A->B and 10 C->D, then 5 more A->C
 * (so A and C each carry two links), every channel moving 20 KiB each way, checked. */
static void test_many_channels_several_links(void **state)
{
	static server sb, sd, sc;
	memset(&sb, 0, sizeof sb);
	memset(&sd, 0, sizeof sd);
	memset(&sc, 0, sizeof sc);
	sb.tx_total = sd.tx_total = sc.tx_total = 20000;
	sb.learn_seed = sd.learn_seed = sc.learn_seed = true; /* pairing order is not fixed */
	int pb = l2cap_listen(bt_stack_l2cap(B.s), 0, 1000, srv_accept, &sb);
	int pd = l2cap_listen(bt_stack_l2cap(D.s), 0, 1000, srv_accept, &sd);
	int pc = l2cap_listen(bt_stack_l2cap(C.s), 0, 1000, srv_accept, &sc);
	static tch t[35];
	for (int i = 0; i < 20; i++)
		open_client(&t[i], &A, &B, (uint16_t)pb, (uint8_t)i, 0, 20000);
	for (int i = 20; i < 30; i++)
		open_client(&t[i], &C, &D, (uint16_t)pd, (uint8_t)i, 0, 20000);
	for (int i = 0; i < 30; i++)
		t[i].learn_seed = true;
	waitset wb = { t, 20, &sb, 20 }, wd = { t + 20, 10, &sd, 10 }, wc = { t + 30, 5, &sc, 5 };
	assert_true(core_run(all, 4, 10000, all_opened, &wb));
	assert_true(core_run(all, 4, 10000, all_opened, &wd));
	for (int i = 30; i < 35; i++) {
		open_client(&t[i], &A, &C, (uint16_t)pc, (uint8_t)i, 0, 20000);
		t[i].learn_seed = true;
	}
	assert_true(core_run(all, 4, 10000, all_opened, &wc));
	/* Server channel k pairs with client first[g] + k (requests go out in order). */
	server *svs[3] = { &sb, &sd, &sc };
	int first[3] = { 0, 20, 30 };

	bool done = false;
	for (int round = 0; round < 600 && !done; round++) {
		core_run(all, 4, 100, NULL, NULL);
		done = true;
		for (int i = 0; i < 35; i++) {
			int g = i < 20 ? 0 : i < 30 ? 1 : 2;
			tch *s = &svs[g]->pool[i - first[g]];
			done &= t[i].rx_done == 20000 && s->rx_done == 20000;
		}
	}
	for (int i = 0; i < 35; i++) {
		int g = i < 20 ? 0 : i < 30 ? 1 : 2;
		tch *s = &svs[g]->pool[i - first[g]];
		assert_int_equal(t[i].opened, 1);
		assert_int_equal(t[i].rx_done, 20000);
		assert_int_equal(t[i].rx_bad, 0);
		assert_int_equal(s->rx_done, 20000);
		assert_int_equal(s->rx_bad, 0);
		l2cap_close(t[i].ch);
		l2cap_close(s->ch);
	}
	l2cap_unlisten(bt_stack_l2cap(B.s), (uint16_t)pb);
	l2cap_unlisten(bt_stack_l2cap(D.s), (uint16_t)pd);
	l2cap_unlisten(bt_stack_l2cap(C.s), (uint16_t)pc);
	core_run(all, 4, 2500, NULL, NULL); /* idle links are dropped after 2 s */
}

/* The peer closing its channel: our side sees closed(0), i.e. end of file. */
static void test_peer_closes(void **state)
{
	server sv = { 0 };
	int psm = l2cap_listen(bt_stack_l2cap(B.s), 0, 672, srv_accept, &sv);
	tch t;
	open_client(&t, &A, &B, (uint16_t)psm, 1, 1, 0);
	waitset w = { &t, 1, &sv, 1 };
	assert_true(core_run(all, 4, 5000, all_opened, &w));
	l2cap_close(sv.pool[0].ch);
	assert_true(core_run(all, 4, 3000, first_closed, &t));
	assert_int_equal(t.err, 0);
	l2cap_close(t.ch);
	l2cap_unlisten(bt_stack_l2cap(B.s), (uint16_t)psm);
}

static void test_refused_psm(void **state)
{
	tch t;
	open_client(&t, &A, &B, 0x2001, 1, 1, 0);
	assert_true(core_run(all, 4, 5000, first_closed, &t));
	assert_int_equal(t.err, -ECONNREFUSED);
	l2cap_close(t.ch);
}

/* Paging an address no controller has fails within a bounded time with a host-down error. */
static void test_connect_to_nobody(void **state)
{
	tch t;
	memset(&t, 0, sizeof t);
	bt_addr nobody;
	bt_addr_parse("00:11:22:33:44:55", &nobody);
	uint64_t t0 = mono_ms();
	assert_int_equal(l2cap_connect(bt_stack_l2cap(A.s), &nobody, 0x1001, 672, &t_ops, &t, &t.ch), 0);
	assert_true(core_run(all, 4, 15000, first_closed, &t));
	assert_true(mono_ms() - t0 < 12000);
	assert_true(t.err == -EHOSTDOWN || t.err == -ETIMEDOUT);
	l2cap_close(t.ch);
}

/* Malformed signalling from the air: bytes written raw to A's controller reach B as a
 * C-frame. B answers Command Reject and its channel to A keeps working. */
static int rejects_seen;
static void count_rejects(core_node *n, const uint8_t *p, size_t len)
{
	/* ACL [02 hf hf len len][l2len l2len cid cid][code ident len len data]...: a C-frame may
	 * carry several commands (Vol 3 Part A 4), as the stack's answers to a burst do. */
	if (p[0] != 0x02 || len < 13 || get_le16(p + 7) != 0x0001)
		return;
	for (size_t off = 9; off + 4 <= len; off += 4u + get_le16(p + off + 2))
		rejects_seen += p[off] == 0x01;
}

static void test_malformed_signalling_over_the_air(void **state)
{
	server sv = { .echo = true };
	int psm = l2cap_listen(bt_stack_l2cap(B.s), 0, 672, srv_accept, &sv);
	tch t;
	open_client(&t, &A, &B, (uint16_t)psm, 1, 1, 0);
	waitset w = { &t, 1, &sv, 1 };
	assert_true(core_run(all, 4, 5000, all_opened, &w));
	uint16_t handle = l2cap_chan_handle(t.ch);
	A.tap = count_rejects;
	rejects_seen = 0;
	const uint8_t unknown_code[] = { 0x7e, 0x91, 0x02, 0x00, 0xaa, 0xbb };
	const uint8_t too_long[] = { 0x02, 0x92, 0x40, 0x00, 0x01 };
	const uint8_t short_conn_req[] = { 0x02, 0x93, 0x01, 0x00, 0x01 };
	const uint8_t bad_disc[] = { 0x06, 0x94, 0x04, 0x00, 0x99, 0x09, 0x98, 0x09 };
	core_node_raw_l2cap(&A, handle, 0x0001, unknown_code, sizeof unknown_code);
	core_node_raw_l2cap(&A, handle, 0x0001, too_long, sizeof too_long);
	core_node_raw_l2cap(&A, handle, 0x0001, short_conn_req, sizeof short_conn_req);
	core_node_raw_l2cap(&A, handle, 0x0001, bad_disc, sizeof bad_disc);
	core_run(all, 4, 1500, NULL, NULL);
	A.tap = NULL;
	assert_int_equal(rejects_seen, 4);
	t.last_len = 0;
	assert_int_equal(l2cap_send(t.ch, (const uint8_t *)"still", 5), 0);
	core_run(all, 4, 1000, NULL, NULL);
	assert_int_equal(t.last_len, 5);
	assert_memory_equal(t.last, "still", 5);
	l2cap_close(t.ch);
	l2cap_close(sv.pool[0].ch);
	l2cap_unlisten(bt_stack_l2cap(B.s), (uint16_t)psm);
}

/* D's controller vanishes (its connection to btvirt closes): btvirt tells C nothing, C's
 * keepalive notices and ends the channel with ETIMEDOUT (we timed the peer out) within a few
 * seconds. Runs last. */
static void test_vanished_peer(void **state)
{
	server sv = { 0 };
	int psm = l2cap_listen(bt_stack_l2cap(D.s), 0, 672, srv_accept, &sv);
	tch t;
	open_client(&t, &C, &D, (uint16_t)psm, 1, 1, 0);
	waitset w = { &t, 1, &sv, 1 };
	assert_true(core_run(all, 4, 5000, all_opened, &w));
	/* D disappears without a word: no L2CAP or HCI goodbye reaches C. */
	bt_stack_free(D.s);
	D.s = NULL;
	close(D.fd);
	D.fd = -1;
	core_node *abc[3] = { &A, &B, &C };
	uint64_t t0 = mono_ms();
	assert_true(core_run(abc, 3, 10000, first_closed, &t));
	assert_int_equal(t.err, -ETIMEDOUT);
	assert_true(mono_ms() - t0 < 8000);
	l2cap_close(t.ch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo),
		cmocka_unit_test(test_one_mib_each_way),
		cmocka_unit_test(test_many_channels_several_links),
		cmocka_unit_test(test_peer_closes),
		cmocka_unit_test(test_refused_psm),
		cmocka_unit_test(test_connect_to_nobody),
		cmocka_unit_test(test_malformed_signalling_over_the_air),
		cmocka_unit_test(test_vanished_peer),
	};
	return cmocka_run_group_tests_name("core_l2cap_over_btvirt", tests, group_setup, group_teardown);
}
