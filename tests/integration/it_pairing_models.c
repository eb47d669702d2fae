/* it_pairing_models.c - Secure Simple Pairing's association models, Passkey Entry, key size and
 * bonds, between two btsock stacks, through a pairing proxy (pairing_proxy.h) that makes
 * btvirt's controllers behave as a real pair would (issue 11).
 *
 *  - For each pair of IO capabilities (DisplayOnly, DisplayYesNo, KeyboardOnly, NoInputNoOutput)
 *    an initiator that requires MITM protection pairs (btsock_pair) with a responder that does
 *    not: each side's agent is asked what Core Vol 3 Part C 5.2.2.6 says (compare a number, show
 *    a passkey, type it, or nothing: Just Works, which the initiator then refuses), the number
 *    is the same on both sides, and success or failure is seen on both (the bond kept on both,
 *    or on neither).
 *  - Refusals: either agent refusing a Numeric Comparison, a wrong passkey typed on either side
 *    or on both keyboards: EACCES and the sentence.
 *  - A 5-byte encryption key (the proxy's Read_Encryption_Key_Size answer) is refused.
 *  - Bonds across restarts, through the CLI: `btsock pair`, then both processes restart and
 *    connect without pairing; `btsock unpair` on one side, and `btsock pair` pairs again.
 * DisplayOnly against DisplayOnly is not run: btvirt takes an IO capability of 0 (DisplayOnly)
 * for "not answered yet" and asks both sides again and again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api_util.h"
#include "btsock.h"
#include "btvirt_env.h"
#include "pairing_proxy.h"

static btvirt_env *env;

enum { DO = BTSOCK_IO_DISPLAY_ONLY, DYN = BTSOCK_IO_DISPLAY_YESNO, KO = BTSOCK_IO_KEYBOARD_ONLY,
       NIO = BTSOCK_IO_NONE };
/* What a side's agent is asked. */
enum { ASK_NOTHING, ASK_CONFIRM, ASK_DISPLAY, ASK_ENTER };

typedef struct {
	const char *name;
	int io[2];            /* initiator, responder */
	int ask[2];           /* expected agent request on each side */
	bool ok;              /* the pairing succeeds */
	const char *sentence; /* else: in btsock_error() */
	int confirm_answer[2]; /* 1 accept, 0 refuse */
	bool wrong[2];        /* this side types a wrong passkey */
	unsigned key_size;    /* the initiator's controller reports this key size (0: 16) */
	int delay_ms;         /* the responder's user takes this long to confirm (answered later) */
} pcase;

/* ------------------------------------------------------------------ the agent */

typedef struct {
	char addr[BTSOCK_ADDRSTRLEN], peer[BTSOCK_ADDRSTRLEN];
	int confirms, displays, enters;
	unsigned confirm_value, display_value;
	bool enter_pending;
	int answer;
	bool wrong;
	int delay_ms;         /* confirm answered later, by the typist, after this */
	bool confirm_pending;
	struct timespec asked;
} side_rec;

static struct {
	pthread_mutex_t mu;
	side_rec side[2];
	bool stop;
} ag = { .mu = PTHREAD_MUTEX_INITIALIZER };

static side_rec *rec_of(const char *adapter)
{
	for (int k = 0; k < 2; k++)
		if (strcmp(ag.side[k].addr, adapter) == 0)
			return &ag.side[k];
	return NULL;
}

static int on_confirm(void *ctx, const char *adapter, const char *peer, unsigned value)
{
	(void)ctx;
	pthread_mutex_lock(&ag.mu);
	side_rec *r = rec_of(adapter);
	int answer = 0;
	if (r) {
		r->confirms++;
		r->confirm_value = value;
		answer = r->answer;
		if (r->delay_ms) { /* a user taking time: answered from the typist's thread */
			r->confirm_pending = true;
			clock_gettime(CLOCK_MONOTONIC, &r->asked);
			answer = -1;
		}
	}
	pthread_mutex_unlock(&ag.mu);
	return answer;
}

static void on_display(void *ctx, const char *adapter, const char *peer, unsigned passkey)
{
	(void)ctx;
	pthread_mutex_lock(&ag.mu);
	side_rec *r = rec_of(adapter);
	if (r) {
		r->displays++;
		r->display_value = passkey;
	}
	pthread_mutex_unlock(&ag.mu);
}

/* Answered later by the typist, once the passkey to type is known. */
static long on_enter(void *ctx, const char *adapter, const char *peer)
{
	(void)ctx;
	pthread_mutex_lock(&ag.mu);
	side_rec *r = rec_of(adapter);
	if (r) {
		r->enters++;
		r->enter_pending = true;
	}
	pthread_mutex_unlock(&ag.mu);
	return r ? -1 : -2;
}

static const struct btsock_agent agent = { on_confirm, on_display, on_enter, NULL };

/* The user at each keyboard: types what the other side shows (both keyboards: 123456), plus
 * one if this side is to get it wrong. */
static void *typist(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&ag.mu);
	while (!ag.stop) {
		for (int k = 0; k < 2; k++) {
			side_rec *r = &ag.side[k], *o = &ag.side[!k];
			long v = -1;
			if (r->confirm_pending) {
				struct timespec now;
				clock_gettime(CLOCK_MONOTONIC, &now);
				long ms = (now.tv_sec - r->asked.tv_sec) * 1000 + (now.tv_nsec - r->asked.tv_nsec) / 1000000;
				if (ms >= r->delay_ms) {
					r->confirm_pending = false;
					char a[BTSOCK_ADDRSTRLEN], p[BTSOCK_ADDRSTRLEN];
					memcpy(a, r->addr, sizeof a);
					memcpy(p, r->peer, sizeof p);
					bool yes = r->answer != 0;
					pthread_mutex_unlock(&ag.mu);
					if (btsock_agent_confirm(a, p, yes) < 0)
						fprintf(stderr, "typist: %s\n", btsock_error());
					pthread_mutex_lock(&ag.mu);
				}
			}
			if (!r->enter_pending)
				continue;
			if (o->displays)
				v = o->display_value;
			else if (o->enters)
				v = 123456;
			if (v < 0)
				continue;
			if (r->wrong)
				v = (v + 1) % 1000000;
			r->enter_pending = false;
			char a[BTSOCK_ADDRSTRLEN], p[BTSOCK_ADDRSTRLEN];
			memcpy(a, r->addr, sizeof a);
			memcpy(p, r->peer, sizeof p);
			pthread_mutex_unlock(&ag.mu);
			if (btsock_agent_passkey(a, p, v) < 0)
				fprintf(stderr, "typist: %s\n", btsock_error());
			pthread_mutex_lock(&ag.mu);
		}
		pthread_mutex_unlock(&ag.mu);
		const struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&ag.mu);
	}
	pthread_mutex_unlock(&ag.mu);
	return NULL;
}

/* ------------------------------------------------------------------ helpers */

static int group_setup(void **state)
{
	(void)state;
	env = btvirt_start();
	return btsock_set_agent(&agent, NULL);
}

static int group_teardown(void **state)
{
	(void)state;
	btsock_set_agent(NULL, NULL);
	btsock_shutdown();
	btvirt_stop(env);
	return 0;
}

/* Whether adapter holds a bond with peer; *auth its authenticated flag. */
static bool bonded(const char *adapter, const char *peer, bool *auth)
{
	struct btsock_bond b[8];
	int n = btsock_paired(adapter, b, 8);
	assert_true(n >= 0);
	for (int k = 0; k < n && k < 8; k++)
		if (strcmp(b[k].addr, peer) == 0) {
			if (auth)
				*auth = b[k].authenticated;
			return true;
		}
	return false;
}

static void sleep_ms(int ms)
{
	const struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static const char *ask_name(int a)
{
	static const char *const n[] = { "nothing (Just Works)", "confirm", "display", "enter" };
	return n[a];
}

static void run_case(const pcase *c)
{
	char keys[64];
	snprintf(keys, sizeof keys, "/tmp/btsock-itpm-%d.keys", (int)getpid());
	unlink(keys);
	pairing_proxy *pp = pp_start(env->socket_path, 2);
	assert_non_null(pp);
	char addr[2][BTSOCK_ADDRSTRLEN];
	assert_int_equal(btsock_set_keystore(keys), 0); /* both bond: the outcome is seen on both */
	for (int k = 0; k < 2; k++)
		if (btsock_adapter_open(pp_adapter(pp, k), addr[k]) < 0)
			fail_msg("%s: adapter: %s", c->name, btsock_error());
	assert_int_equal(btsock_set_keystore(NULL), 0);
	for (int k = 0; k < 2; k++) {
		/* The initiator requires MITM protection (else every pairing is Just Works). */
		struct btsock_pairing p = { (enum btsock_io_capability)c->io[k], k == 0, 0 };
		assert_int_equal(btsock_set_pairing(addr[k], &p), 0);
	}
	if (c->key_size)
		pp_set_key_size(pp, 0, c->key_size);
	pthread_mutex_lock(&ag.mu);
	memset(ag.side, 0, sizeof ag.side);
	for (int k = 0; k < 2; k++) {
		memcpy(ag.side[k].addr, addr[k], BTSOCK_ADDRSTRLEN);
		memcpy(ag.side[k].peer, addr[!k], BTSOCK_ADDRSTRLEN);
		ag.side[k].answer = c->confirm_answer[k];
		ag.side[k].wrong = c->wrong[k];
	}
	ag.side[1].delay_ms = c->delay_ms;
	ag.stop = false;
	pthread_mutex_unlock(&ag.mu);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, typist, NULL), 0);

	int rc = btsock_pair(addr[0], addr[1], 40000);
	int err = errno;
	char sentence[512];
	snprintf(sentence, sizeof sentence, "%s", btsock_error());
	fprintf(stderr, "it_pairing_models: %-28s -> %s\n", c->name, rc == 0 ? "paired" : sentence);

	/* The responder's side settles a moment later (its key, its Simple Pairing Complete). */
	pp_stats st[2];
	bool resp_bonded = false;
	for (int waited = 0; waited < 3000; waited += 50) {
		pp_get_stats(pp, 1, &st[1]);
		resp_bonded = bonded(addr[1], addr[0], NULL);
		if ((c->ok && resp_bonded) || (!c->ok && st[1].pairings_failed + st[1].pairings_completed))
			break;
		sleep_ms(50);
	}
	pthread_mutex_lock(&ag.mu);
	ag.stop = true;
	side_rec r[2] = { ag.side[0], ag.side[1] };
	pthread_mutex_unlock(&ag.mu);
	pthread_join(t, NULL);
	pp_get_stats(pp, 0, &st[0]);
	pp_get_stats(pp, 1, &st[1]);

	/* Each side was asked what its IO capabilities call for, and nothing else. */
	for (int k = 0; k < 2; k++) {
		int asked = r[k].confirms ? ASK_CONFIRM : r[k].displays ? ASK_DISPLAY : r[k].enters ? ASK_ENTER : ASK_NOTHING;
		if (asked != c->ask[k] || r[k].confirms + r[k].displays + r[k].enters > 1)
			fail_msg("%s: the %s was asked to %s (%d/%d/%d), expected %s", c->name, k ? "responder" : "initiator",
				 ask_name(asked), r[k].confirms, r[k].displays, r[k].enters, ask_name(c->ask[k]));
		if (c->ask[k] == ASK_CONFIRM) { /* the proxy's random value, not btvirt's 000000 */
			assert_int_equal(r[k].confirm_value, st[k].last_confirm_value);
			assert_true(r[k].confirm_value >= 100000);
		}
		if (c->ask[k] == ASK_DISPLAY)
			assert_int_equal(r[k].display_value, st[k].last_passkey);
	}
	if (c->ask[0] == ASK_CONFIRM && c->ask[1] == ASK_CONFIRM) /* one number for both */
		assert_int_equal(r[0].confirm_value, r[1].confirm_value);

	bool auth = false;
	if (c->ok) {
		if (rc != 0)
			fail_msg("%s: pairing failed: %s", c->name, sentence);
		assert_true(bonded(addr[0], addr[1], &auth));
		if (c->ask[0] != ASK_NOTHING && c->ask[1] != ASK_NOTHING)
			assert_true(auth); /* MITM-protected: Numeric Comparison or Passkey Entry */
		if (!resp_bonded)
			fail_msg("%s: the responder kept no bond", c->name);
		assert_int_equal(st[1].pairings_completed, 1);
	} else {
		assert_int_equal(rc, -1);
		if (err != EACCES)
			fail_msg("%s: errno %d (%s), expected EACCES", c->name, err, strerror(err));
		if (!strstr(sentence, c->sentence))
			fail_msg("%s: sentence '%s' lacks '%s'", c->name, sentence, c->sentence);
		if (!c->key_size) { /* a failed pairing: no bond on either side */
			assert_false(bonded(addr[0], addr[1], NULL));
			assert_false(resp_bonded);
			assert_int_equal(st[1].pairings_completed, 0);
			assert_true(st[1].pairings_failed >= 1);
		} else {
			assert_true(st[0].key_sizes_rewritten >= 1);
		}
	}
	bool wrong = c->wrong[0] || c->wrong[1];
	assert_int_equal(st[0].wrong_passkeys + st[1].wrong_passkeys > 0, wrong);

	for (int k = 0; k < 2; k++)
		assert_int_equal(btsock_adapter_close(addr[k]), 0);
	pp_stop(pp);
	unlink(keys);
	char lock[80];
	snprintf(lock, sizeof lock, "%s.lock", keys);
	unlink(lock);
}

/* ------------------------------------------------------------------ the models */

#define OK true, NULL
#define REFUSED(s) false, s
#define NW { false, false }, 0, 0 /* nobody types a wrong passkey; key size as btvirt says */
static const char JW_REFUSED[] = "rejected by the user"; /* the initiator requires MITM */

static void test_io_capability_matrix(void **state)
{
	(void)state;
	static const pcase cases[] = {
		/* initiator, responder: asked on each side, outcome */
		{ "DisplayOnly-DisplayYesNo", { DO, DYN }, { ASK_NOTHING, ASK_CONFIRM }, REFUSED(JW_REFUSED), { 1, 1 }, NW },
		{ "DisplayOnly-KeyboardOnly", { DO, KO }, { ASK_DISPLAY, ASK_ENTER }, OK, { 1, 1 }, NW },
		{ "DisplayOnly-NoIO", { DO, NIO }, { ASK_NOTHING, ASK_NOTHING }, REFUSED(JW_REFUSED), { 1, 1 }, NW },
		{ "DisplayYesNo-DisplayOnly", { DYN, DO }, { ASK_CONFIRM, ASK_NOTHING }, OK, { 1, 1 }, NW },
		{ "DisplayYesNo-DisplayYesNo", { DYN, DYN }, { ASK_CONFIRM, ASK_CONFIRM }, OK, { 1, 1 }, NW },
		{ "DisplayYesNo-KeyboardOnly", { DYN, KO }, { ASK_DISPLAY, ASK_ENTER }, OK, { 1, 1 }, NW },
		{ "DisplayYesNo-NoIO", { DYN, NIO }, { ASK_NOTHING, ASK_NOTHING }, REFUSED(JW_REFUSED), { 1, 1 }, NW },
		{ "KeyboardOnly-DisplayOnly", { KO, DO }, { ASK_ENTER, ASK_DISPLAY }, OK, { 1, 1 }, NW },
		{ "KeyboardOnly-DisplayYesNo", { KO, DYN }, { ASK_ENTER, ASK_DISPLAY }, OK, { 1, 1 }, NW },
		{ "KeyboardOnly-KeyboardOnly", { KO, KO }, { ASK_ENTER, ASK_ENTER }, OK, { 1, 1 }, NW },
		{ "KeyboardOnly-NoIO", { KO, NIO }, { ASK_NOTHING, ASK_NOTHING }, REFUSED(JW_REFUSED), { 1, 1 }, NW },
		{ "NoIO-DisplayOnly", { NIO, DO }, { ASK_NOTHING, ASK_NOTHING }, REFUSED(JW_REFUSED), { 1, 1 }, NW },
		{ "NoIO-DisplayYesNo", { NIO, DYN }, { ASK_NOTHING, ASK_NOTHING }, REFUSED(JW_REFUSED), { 1, 1 }, NW },
		{ "NoIO-KeyboardOnly", { NIO, KO }, { ASK_NOTHING, ASK_NOTHING }, REFUSED(JW_REFUSED), { 1, 1 }, NW },
		{ "NoIO-NoIO", { NIO, NIO }, { ASK_NOTHING, ASK_NOTHING }, REFUSED(JW_REFUSED), { 1, 1 }, NW },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		run_case(&cases[i]);
}

/* Refusals and wrong passkeys: EACCES with the reason, on both sides no bond. */
static void test_refusals_and_wrong_passkeys(void **state)
{
	(void)state;
	static const pcase cases[] = {
		{ "responder refuses NC", { DYN, DYN }, { ASK_CONFIRM, ASK_CONFIRM },
		  REFUSED("authentication failure reported by the peer"), { 1, 0 }, NW },
		{ "initiator refuses NC", { DYN, DYN }, { ASK_CONFIRM, ASK_CONFIRM },
		  REFUSED("rejected by the user"), { 0, 1 }, NW },
		{ "responder types wrong", { DYN, KO }, { ASK_DISPLAY, ASK_ENTER }, REFUSED("wrong passkey"), { 1, 1 },
		  { false, true }, 0, 0 },
		{ "initiator types wrong", { KO, DYN }, { ASK_ENTER, ASK_DISPLAY }, REFUSED("wrong passkey"), { 1, 1 },
		  { true, false }, 0, 0 },
		{ "keyboards differ", { KO, KO }, { ASK_ENTER, ASK_ENTER }, REFUSED("wrong passkey"), { 1, 1 },
		  { false, true }, 0, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		run_case(&cases[i]);
}

/* KNOB: the controller reports a 5-octet key; btsock's minimum is 7. */
static void test_short_key_refused(void **state)
{
	(void)state;
	static const pcase c = { "5-byte key", { DYN, DYN }, { ASK_CONFIRM, ASK_CONFIRM },
				 REFUSED("encryption key too short"), { 1, 1 }, { false, false }, 5, 0 };
	run_case(&c);
}

/* A user who takes 3 s to compare the number on the responder (whose link has no channel, as
 * the initiator's has none in btsock_pair): the link is kept while the pairing waits (L2CAP
 * would otherwise end a link without channels after 2 s), and the pairing succeeds. */
static void test_slow_user_keeps_the_link(void **state)
{
	(void)state;
	static const pcase c = { "responder thinks 3 s", { DYN, DYN }, { ASK_CONFIRM, ASK_CONFIRM }, OK, { 1, 1 },
				 { false, false }, 0, 3000 };
	run_case(&c);
}

/* ------------------------------------------------------------------ bonds across restarts */

static int run_cli(const char *adapter, char *const argv[], const char *in, char *out, size_t cap)
{
	child c;
	child_start_in(&c, adapter, argv, in);
	int st = child_wait(&c, 60000);
	char err[2048];
	read_file(c.out, out, cap);
	read_file(c.err, err, sizeof err);
	if (st != 0)
		fprintf(stderr, "it_pairing_models: btsock ... exit %d: %s%s", st, out, err);
	unlink(c.out);
	unlink(c.err);
	return st;
}

static void wait_file_has(const char *path, const char *needle, bool want)
{
	char buf[4096];
	for (int waited = 0; waited < 5000; waited += 50) {
		size_t n = read_file(path, buf, sizeof buf);
		buf[n < sizeof buf ? n : sizeof buf - 1] = '\0';
		if ((strstr(buf, needle) != NULL) == want)
			return;
		sleep_ms(50);
	}
	fail_msg("%s %s '%s'", path, want ? "never held" : "still holds", needle);
}

static void test_bonds_survive_restart_and_unpair(void **state)
{
	(void)state;
	pairing_proxy *pp = pp_start(env->socket_path, 2);
	assert_non_null(pp);
	char ka[64], kb[64];
	snprintf(ka, sizeof ka, "/tmp/btsock-itpm-%d-a.keys", (int)getpid());
	snprintf(kb, sizeof kb, "/tmp/btsock-itpm-%d-b.keys", (int)getpid());
	unlink(ka);
	unlink(kb);
	char *bin = BTSOCK_BIN_DIR "/btsock";
	char *listen_argv[] = { bin, "--keys", kb, "listen", "-k", "-d", "3", NULL };
	child b;
	child_start(&b, pp_adapter(pp, 1), listen_argv);
	char line[256];
	assert_true(child_wait_stderr(&b, "listening on", line, sizeof line, 10000));
	char B[BTSOCK_ADDRSTRLEN];
	snprintf(B, sizeof B, "%s", pp_addr(pp, 1));
	assert_int_equal(strlen(B), 17);

	/* 1. btsock pair: both sides keep the bond. */
	char out[2048];
	char *pair_argv[] = { bin, "--keys", ka, "pair", B, NULL };
	assert_int_equal(run_cli(pp_adapter(pp, 0), pair_argv, NULL, out, sizeof out), 0);
	if (!strstr(out, "bonded"))
		fail_msg("pair said: %s", out);
	char A[BTSOCK_ADDRSTRLEN];
	snprintf(A, sizeof A, "%s", pp_addr(pp, 0));
	wait_file_has(ka, B, true);
	wait_file_has(kb, A, true);
	pp_stats st;
	pp_get_stats(pp, 0, &st);
	assert_int_equal(st.pairings_completed, 1);

	/* 2. Both processes restart (same controllers: the proxies keep btvirt's side), connect:
	 * the stored keys are used, no pairing. */
	kill(b.pid, SIGTERM);
	child_wait(&b, 5000);
	unlink(b.out);
	unlink(b.err);
	child_start(&b, pp_adapter(pp, 1), listen_argv);
	assert_true(child_wait_stderr(&b, "listening on", line, sizeof line, 10000));
	char *connect_argv[] = { bin, "--keys", ka, "connect", B, "3", NULL };
	assert_int_equal(run_cli(pp_adapter(pp, 0), connect_argv, "/dev/null", out, sizeof out), 0);
	pp_get_stats(pp, 0, &st);
	assert_int_equal(st.pairings_completed, 1);
	assert_int_equal(st.pairings_failed, 0);

	char *paired_argv[] = { bin, "--keys", ka, "paired", NULL };
	assert_int_equal(run_cli(pp_adapter(pp, 0), paired_argv, NULL, out, sizeof out), 0);
	if (!strstr(out, B))
		fail_msg("paired said: %s", out);

	/* 3. unpair on A's side: gone from its file; a second unpair finds nothing. */
	char *unpair_argv[] = { bin, "--keys", ka, "unpair", B, NULL };
	assert_int_equal(run_cli(pp_adapter(pp, 0), unpair_argv, NULL, out, sizeof out), 0);
	wait_file_has(ka, B, false);
	assert_int_equal(run_cli(pp_adapter(pp, 0), unpair_argv, NULL, out, sizeof out), 1);

	/* 4. Pairing happens again, and succeeds; the bond is back. */
	assert_int_equal(run_cli(pp_adapter(pp, 0), pair_argv, NULL, out, sizeof out), 0);
	pp_get_stats(pp, 0, &st);
	assert_int_equal(st.pairings_completed, 2);
	wait_file_has(ka, B, true);

	kill(b.pid, SIGTERM);
	child_wait(&b, 5000);
	unlink(b.out);
	unlink(b.err);
	pp_stop(pp);
	unlink(ka);
	unlink(kb);
	char lock[80];
	snprintf(lock, sizeof lock, "%s.lock", ka);
	unlink(lock);
	snprintf(lock, sizeof lock, "%s.lock", kb);
	unlink(lock);
}

/* --agent ask, through the CLI without a terminal (setsid: no /dev/tty, so it asks on stdin):
 * `btsock pair` asks MITM protection, the peer (--agent accept) and the user see the same
 * number; "yes" gives an authenticated bond, "no" fails with the reason. */
static void test_cli_agent_ask(void **state)
{
	(void)state;
	char *bin = BTSOCK_BIN_DIR "/btsock";
	char in[64];
	snprintf(in, sizeof in, "/tmp/btsock-itpm-%d.in", (int)getpid());
	static const char *const answers[] = { "yes\n", "no\n" };
	/* Fresh controllers each round: btvirt asks a controller's IO capability only in the first
	 * pairing of two controllers, and the second would be Just Works. */
	for (int k = 0; k < 2; k++) {
		pairing_proxy *pp = pp_start(env->socket_path, 2);
		assert_non_null(pp);
		char *listen_argv[] = { bin, "--agent", "accept", "listen", "-k", "-d", "3", NULL };
		child b;
		child_start(&b, pp_adapter(pp, 1), listen_argv);
		char line[256];
		assert_true(child_wait_stderr(&b, "listening on", line, sizeof line, 10000));
		char B[BTSOCK_ADDRSTRLEN];
		snprintf(B, sizeof B, "%s", pp_addr(pp, 1));
		FILE *f = fopen(in, "w");
		assert_non_null(f);
		fputs(answers[k], f);
		fclose(f);
		char *pair_argv[] = { "/usr/bin/setsid", bin, "--agent", "ask", "pair", B, NULL };
		child a;
		child_start_in(&a, pp_adapter(pp, 0), pair_argv, in);
		int st = child_wait(&a, 60000);
		char out[2048], err[2048];
		read_file(a.out, out, sizeof out);
		read_file(a.err, err, sizeof err);
		unlink(a.out);
		unlink(a.err);
		fprintf(stderr, "it_pairing_models: --agent ask, answer %s-> exit %d: %s%s\n", answers[k], st, out, err);
		pp_stats sa, sb;
		pp_get_stats(pp, 0, &sa);
		pp_get_stats(pp, 1, &sb);
		assert_int_equal(sa.confirm_requests, 1); /* Numeric Comparison, both sides */
		assert_int_equal(sb.confirm_requests, 1);
		char shown[32];
		snprintf(shown, sizeof shown, "%06u", sa.last_confirm_value);
		if (!strstr(err, "does it show") || !strstr(err, shown))
			fail_msg("the user was not asked about %s: %s", shown, err);
		assert_true(child_wait_stderr(&b, shown, line, sizeof line, 5000)); /* the peer saw it too */
		if (k == 0) {
			assert_int_equal(st, 0);
			if (!strstr(out, "paired with"))
				fail_msg("pair said: %s", out);
		} else {
			assert_int_equal(st, 1);
			if (!strstr(err, "rejected by the user"))
				fail_msg("pair said: %s", err);
		}
		kill(b.pid, SIGTERM);
		child_wait(&b, 5000);
		unlink(b.out);
		unlink(b.err);
		pp_stop(pp);
	}
	unlink(in);
}

/* Bad input gets a clear error: not an address, our own address, no such adapter, no bond,
 * no array; a peer that does not answer the page. */
static void test_api_errors(void **state)
{
	(void)state;
	char A[BTSOCK_ADDRSTRLEN];
	assert_int_equal(btsock_adapter_open(env->adapter, A), 0);
	assert_int_equal(btsock_pair(A, "zz:00", 1000), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(btsock_error(), "not a Bluetooth address"));
	assert_int_equal(btsock_pair(A, A, 1000), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(btsock_error(), "own address"));
	assert_int_equal(btsock_pair("00:00:00:00:00:01", "00:AA:01:00:00:99", 1000), -1);
	assert_int_equal(btsock_unpair(A, "00:AA:01:00:00:99"), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(btsock_error(), "no bond with 00:AA:01:00:00:99"));
	assert_int_equal(btsock_paired(A, NULL, 4), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(btsock_paired(A, NULL, 0), 0);
	assert_int_equal(btsock_pair(A, "00:AA:01:00:00:99", 20000), -1); /* nobody there */
	if (errno != EHOSTDOWN && errno != ETIMEDOUT)
		fail_msg("errno %d: %s", errno, btsock_error());
	fprintf(stderr, "it_pairing_models: pair with nobody -> %s\n", btsock_error());
	assert_int_equal(btsock_adapter_close(A), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_io_capability_matrix, close_all),
		cmocka_unit_test_teardown(test_refusals_and_wrong_passkeys, close_all),
		cmocka_unit_test_teardown(test_short_key_refused, close_all),
		cmocka_unit_test_teardown(test_slow_user_keeps_the_link, close_all),
		cmocka_unit_test_teardown(test_bonds_survive_restart_and_unpair, close_all),
		cmocka_unit_test_teardown(test_cli_agent_ask, close_all),
		cmocka_unit_test_teardown(test_api_errors, close_all),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
