/* adapter.c - adapters: a host stack on a transport, owned by its loop thread; the request
 * queue through which public calls reach that thread; the registry of open adapters; btsnoop
 * capture and orderly shutdown. See runtime.h for the ownership and lifetime rules. */
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "gap/gap.h"
#include "hci/hci.h"
#include "hci/hci_defs.h"
#include "keystore.h"

#define RT_READY_WAIT_MS 8000     /* controller initialisation */
#define RT_CLOSE_GRACE_MS 2000    /* queued data gets this long to leave when an adapter closes */
#define RT_DISCONNECT_WAIT_MS 1000

struct rt_req {
	rt_step_fn step;
	void *arg;
	uint64_t deadline;
	int rc;
	bool done;
	api_error_state err;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	rt_req *next;
};

/* The registry: open adapters in opening order (the first is the default one). reg_mu guards
 * the list and the count of closes under way; open_mu serialises opening the default adapter
 * (two threads would otherwise open two). Neither is held while a stack works. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_cv = PTHREAD_COND_INITIALIZER;
static adapter *reg_adapters;
static int reg_closing; /* closes under way (btsock_shutdown waits for them) */
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;

/* Process-wide settings. */
static pthread_mutex_t cfg_mu = PTHREAD_MUTEX_INITIALIZER;
static bt_snoop *rt_snoop;        /* one capture shared by every adapter (writes under snoop_mu) */
static atomic_bool rt_snoop_on;   /* rt_snoop is set: the per-packet path takes snoop_mu only then */
static pthread_mutex_t snoop_mu = PTHREAD_MUTEX_INITIALIZER;
static char rt_snoop_path[256];
static bool rt_snoop_set;         /* btsock_set_snoop called: the environment no longer counts */
static char rt_keys_path[4096];
static bool rt_keys_set;          /* btsock_set_keystore called: the environment no longer counts */


uint64_t rt_now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------------ references */

void rt_adapter_get(adapter *ad) { atomic_fetch_add(&ad->refs, 1); }

static void ad_free(adapter *ad)
{
	if (ad->wake_fd >= 0)
		close(ad->wake_fd);
	pthread_mutex_destroy(&ad->qmu);
	free(ad->l2buf);
	free(ad);
}

void rt_adapter_put(adapter *ad)
{
	if (ad && atomic_fetch_sub(&ad->refs, 1) == 1)
		ad_free(ad);
}

int rt_adapter_down(adapter *ad, const char *call)
{
	if (ad->closing)
		return rt_fail(ENETDOWN, "%s: the adapter was closed (btsock_adapter_close or btsock_shutdown)", call);
	if (ad->dead)
		return rt_fail(ENETDOWN, "%s: %s", call, ad->err);
	return 0;
}

/* ------------------------------------------------------------------ requests */

static void rt_wake(adapter *ad)
{
	uint64_t one = 1;
	if (write(ad->wake_fd, &one, sizeof one) < 0) {
		/* the counter is saturated: the loop is due to wake anyway */
	}
}

static bool on_loop(const adapter *ad) { return ad->thread_started && pthread_equal(pthread_self(), ad->thread); }

/* Queues r on ad's loop; false when the loop has ended (the caller's message is set). */
static bool rt_post(adapter *ad, rt_req *r, const char *call)
{
	pthread_mutex_lock(&ad->qmu);
	if (ad->q_closed) {
		char why[256];
		snprintf(why, sizeof why, "%s", ad->down_msg);
		pthread_mutex_unlock(&ad->qmu);
		rt_fail(ENETDOWN, "%s: %s", call, why);
		return false;
	}
	r->next = NULL;
	*ad->queue_tail = r;
	ad->queue_tail = &r->next;
	pthread_mutex_unlock(&ad->qmu);
	rt_wake(ad);
	return true;
}

static void req_complete(rt_req *r, int rc)
{
	pthread_mutex_lock(&r->mu);
	r->rc = rc;
	r->done = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu); /* r belongs to its caller again from here */
}

/* Runs a request's step on the loop; a pending one joins ad->waiting (at its end: order kept). */
static void req_run(adapter *ad, rt_req *r, rt_why why)
{
	api_error_mark();
	rt_req *outer = ad->cur;
	ad->cur = r;
	int rc = r->step(ad, r->arg, why);
	ad->cur = outer;
	if (rc == RT_PENDING) {
		if (why == RT_START || why == RT_CHECK || (why == RT_EXPIRED && r->deadline > ad->now)) {
			rt_req **pp = &ad->waiting;
			while (*pp)
				pp = &(*pp)->next;
			r->next = NULL;
			*pp = r;
			return;
		}
		rc = rt_fail(EIO, "internal error: a request could not end");
	}
	api_error_capture(&r->err);
	req_complete(r, rc);
}

/* Runs each request of a detached list (in order) with why. */
static void run_list(adapter *ad, rt_req *list, rt_why why)
{
	while (list) {
		rt_req *next = list->next;
		req_run(ad, list, why);
		list = next;
	}
}

/* Every pending request gives up (the adapter closes or died). */
static void fail_waiting(adapter *ad)
{
	rt_req *w = ad->waiting;
	ad->waiting = NULL;
	run_list(ad, w, RT_DOWN);
}

static int req_wait(adapter *ad, rt_step_fn step, void *arg, int timeout_ms, const char *call, bool *posted)
{
	rt_req r = { .step = step, .arg = arg };
	r.deadline = timeout_ms < 0 ? UINT64_MAX : rt_now_ms() + (uint64_t)timeout_ms;
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	*posted = rt_post(ad, &r, call);
	if (*posted) {
		pthread_mutex_lock(&r.mu);
		while (!r.done)
			pthread_cond_wait(&r.cv, &r.mu);
		pthread_mutex_unlock(&r.mu);
	}
	pthread_cond_destroy(&r.cv);
	pthread_mutex_destroy(&r.mu);
	if (!*posted)
		return -1;
	api_error_restore(&r.err);
	return r.rc;
}

void rt_set_deadline(adapter *ad, int ms)
{
	if (ad->cur)
		ad->cur->deadline = ms < 0 ? UINT64_MAX : ad->now + (uint64_t)ms;
}

int rt_call(adapter *ad, rt_step_fn step, void *arg, int timeout_ms, const char *call)
{
	if (on_loop(ad)) { /* an agent callback answering at once: the loop is ours already */
		int rc = step(ad, arg, RT_START);
		if (rc != RT_PENDING)
			return rc;
		step(ad, arg, RT_DOWN);
		return rt_fail(EDEADLK, "%s: cannot wait inside a pairing callback (answer later, from another thread)",
			       call);
	}
	bool posted;
	int rc = req_wait(ad, step, arg, timeout_ms, call, &posted);
	if (posted)
		return rc;
	/* The loop has ended: its state is final, the step only reports (never the stack). */
	api_error_state why;
	api_error_capture(&why);
	api_error_mark();
	rc = step(ad, arg, RT_DOWN);
	api_error_state own;
	api_error_capture(&own);
	if (!own.touched)
		api_error_restore(&why);
	else if (rc < 0)
		errno = own.err;
	return rc;
}

/* ---- operations reported by callback */

typedef struct {
	const rt_op *op;
	bool started;
} op_call;

static int op_step(adapter *ad, void *arg, rt_why why)
{
	op_call *c = arg;
	const rt_op *op = c->op;
	switch (why) {
	case RT_START:
		if (ad->closing || ad->dead)
			return -ENETDOWN;
		{
			int rc = op->start(ad, op->ctx);
			if (rc < 0)
				return rc;
		}
		c->started = true;
		return *op->done ? 0 : RT_PENDING;
	case RT_CHECK:
		if (*op->done)
			return 0;
		if (ad->dead) { /* nothing will answer any more */
			if (op->cancel)
				op->cancel(ad, op->ctx);
			return -ENETDOWN;
		}
		return RT_PENDING;
	case RT_EXPIRED:
		if (*op->done)
			return 0;
		if (op->cancel)
			op->cancel(ad, op->ctx); /* its callback may report the cancel: not the cause */
		return -ETIMEDOUT;
	case RT_DOWN:
	default:
		if (c->started && *op->done)
			return 0;
		if (c->started && op->cancel)
			op->cancel(ad, op->ctx);
		return -ENETDOWN;
	}
}

int rt_op_run(adapter *ad, const rt_op *op, int timeout_ms, const char *call)
{
	op_call c = { .op = op };
	if (on_loop(ad))
		return -EDEADLK;
	bool posted;
	int rc = req_wait(ad, op_step, &c, timeout_ms, call, &posted);
	return posted ? rc : -ENETDOWN;
}

/* ------------------------------------------------------------------ stack callbacks */

void rt_snoop_write(const uint8_t *pkt, size_t len, bool incoming)
{
	if (!atomic_load_explicit(&rt_snoop_on, memory_order_relaxed))
		return;
	pthread_mutex_lock(&snoop_mu);
	if (rt_snoop)
		bt_snoop_write(rt_snoop, pkt, len, incoming);
	pthread_mutex_unlock(&snoop_mu);
}

static void snoop_tick(uint64_t now)
{
	if (!atomic_load_explicit(&rt_snoop_on, memory_order_relaxed))
		return;
	pthread_mutex_lock(&snoop_mu);
	bt_snoop_tick(rt_snoop, now); /* the capture reaches its file within a moment */
	pthread_mutex_unlock(&snoop_mu);
}

/* The adapter is dead: "adapter NAME: what" is why, for every call that fails from now on. */
static void ad_die(adapter *ad, const char *what)
{
	if (ad->dead)
		return;
	snprintf(ad->err, sizeof ad->err, "adapter %.100s: %.140s", ad->name, what);
	ad->dead = true;
	atomic_store(&ad->gone, true);
}

static void ad_send(void *ctx, const uint8_t *pkt, size_t len)
{
	adapter *ad = ctx;
	if (ad->dead)
		return;
	rt_snoop_write(pkt, len, false);
	int err = bt_transport_send(ad->tr, pkt, len);
	if (err < 0) {
		/* A peer that closed is the same fault however it is noticed first (read or write). */
		bool closed = err == -EPIPE || err == -ECONNRESET;
		char detail[200];
		snprintf(detail, sizeof detail, "%.100s: %.80s",
			 closed ? "the controller connection closed (writing to it failed)"
			 : err == -ENOBUFS ? "the controller stopped reading (64 KiB left unread)"
					   : "writing to the controller failed",
			 strerror(-err));
		ad_die(ad, detail);
	}
}

static void ad_trace_in(void *ctx, const uint8_t *pkt, size_t len) { rt_snoop_write(pkt, len, true); }

static void ad_ready(void *ctx, int err)
{
	adapter *ad = ctx;
	ad->ready = true;
	ad->ready_err = err;
	if (err)
		snprintf(ad->err, sizeof ad->err, "adapter %s: %s", ad->name, bt_stack_error(ad->st));
}

static void ad_fatal(void *ctx, int err)
{
	adapter *ad = ctx;
	(void)err;
	ad_die(ad, bt_stack_error(ad->st));
}

/* ------------------------------------------------------------------ the loop */

/* The loop's poll set: the transport, the wake eventfd, and every socket that waits for
 * something; it grows with the number of sockets (no socket is ever left unpolled). */
typedef struct {
	struct pollfd *p; /* the transport's fds [0, ntr), the wake eventfd [ntr], sockets */
	bsock **map;
	size_t cap, ntr;
} pollset;

static bool pollset_room(pollset *ps, size_t n)
{
	if (n <= ps->cap)
		return true;
	size_t cap = ps->cap ? ps->cap : 64;
	while (cap < n)
		cap *= 2;
	struct pollfd *p = realloc(ps->p, cap * sizeof *p);
	if (p)
		ps->p = p;
	bsock **map = p ? realloc(ps->map, cap * sizeof *map) : NULL;
	if (map)
		ps->map = map;
	if (!p || !map)
		return false;
	ps->cap = cap;
	return true;
}

/* The controller is gone or unusable: every socket on it ends, every waiting call hears. */
static void ad_mark_dead(adapter *ad)
{
	for (bsock *s = ad->socks; s; s = s->next)
		ad->sock_hooks->gone(s, -ENETDOWN);
	fail_waiting(ad);
}

/* Fills the poll set for one round; the number of entries, or 0 without memory. */
static size_t ad_poll_fill(adapter *ad, pollset *ps)
{
	size_t n = BT_TRANSPORT_MAX_FDS + 1;
	for (bsock *s = ad->socks; s; s = s->next)
		n++;
	if (!pollset_room(ps, n))
		return 0;
	struct pollfd *p = ps->p;
	ps->ntr = ad->dead ? 0 : bt_transport_pollfds(ad->tr, p); /* a dead one is not polled */
	for (size_t i = 0; i < ps->ntr; i++)
		ps->map[i] = NULL;
	n = ps->ntr;
	p[n] = (struct pollfd){ ad->wake_fd, POLLIN, 0 };
	ps->map[n++] = NULL;
	for (bsock *s = ad->socks; s; s = s->next) {
		if (s->zombie)
			continue;
		short ev = 0;
		ad->sock_hooks->poll_events(s, &ev);
		if (!ev)
			continue;
		p[n] = (struct pollfd){ s->rt_fd, ev, 0 };
		ps->map[n++] = s;
	}
	return n;
}

/* The transport's I/O for this round, then every packet it completed to the stack. btvirt
 * drops ACL data a host does not read in time: the loop owns the stack and nothing else holds
 * it up, so it reads at once. */
static void ad_transport_io(adapter *ad, const struct pollfd *p, size_t n)
{
	(void)bt_transport_events(ad->tr, p, n); /* a failure shows in bt_transport_recv */
	const uint8_t *pkt;
	ssize_t len;
	while ((len = bt_transport_recv(ad->tr, &pkt)) > 0)
		bt_stack_packet(ad->st, pkt, (size_t)len, ad->now);
	if (len < 0)
		ad_die(ad, bt_transport_error(ad->tr));
}

/* Receive coalescing: while an L2CAP PDU is half reassembled and nothing waits to go out, the
 * rest of it is on its way, one ACL packet per controller round trip. Waking for each fragment
 * costs two task switches a packet; a short sleep first takes several per wake-up. Single-
 * packet PDUs (an echo, signalling) never wait. How long (docs/BENCHMARKS.md, 2026-12-06):
 *  - a PDU: as long as its missing bytes take at RT_RX_BYTES_PER_US (btvirt's ceiling, the
 *    fastest link seen), at most RT_RX_COALESCE_US. A fixed 400 us made a 1000-byte echo take
 *    1.1 ms instead of 0.5. A wait that brings nothing means a slower link (a radio): the rest
 *    of that PDU is polled for, one wake-up per fragment as without coalescing. (A rate measured
 *    from the arrivals did worse: nanosleep's slack and wake-up latency skew it.)
 *  - while an RFCOMM peer streams (rfcomm_rx_streaming: 4 full frames in a row, none of ours
 *    between): RT_RX_STREAM_COALESCE_US, several frames per wake-up. The grown receive ring
 *    (rfcomm.c: 12 frames of ~2 KiB, ~3 ms of btvirt's stream) keeps the sender in credit
 *    meanwhile; with the 4-frame window 800 us had cost -8 %. One-way 85 -> 93-98 % of the
 *    ceiling; 800 us did about as well, 2000 us no better. Choosing it by time (another wait
 *    within 2 ms) also caught request/response: 4000-byte echoes took 2.7x as long.
 * At most 1.2 ms, far less than a controller takes to fill its queue. */
#define RT_RX_COALESCE_US 400
#define RT_RX_STREAM_COALESCE_US 1200
#define RT_RX_BYTES_PER_US 8
#define RT_RX_MIN_WAIT_US 20

/* How long to wait before polling, in us (0: not at all): a PDU is half reassembled, nothing
 * waits to go out, and no earlier wait for this PDU came back empty (ad->rx_slow: a slow link,
 * polled for). */
static long ad_coalesce_us(adapter *ad)
{
	size_t missing = ad->dead ? 0 : hci_rx_missing(bt_stack_hci(ad->st));
	if (missing == 0) {
		ad->rx_slow = false;
		return 0;
	}
	if (ad->rx_slow || !bt_stack_tx_idle(ad->st) || bt_transport_pending(ad->tr))
		return 0;
	if (bt_stack_rx_streaming(ad->st))
		return RT_RX_STREAM_COALESCE_US;
	size_t us = missing / RT_RX_BYTES_PER_US + RT_RX_MIN_WAIT_US;
	return us < RT_RX_COALESCE_US ? (long)us : RT_RX_COALESCE_US;
}

static bool ad_transport_ready(const pollset *ps)
{
	for (size_t i = 0; i < ps->ntr; i++)
		if (ps->p[i].revents)
			return true;
	return false;
}

/* The requests posted since the last round, detached from the queue; with close, the queue
 * takes none any more (rt_post fails with why). */
static rt_req *take_queue(adapter *ad, const char *close)
{
	pthread_mutex_lock(&ad->qmu);
	rt_req *q = ad->queue;
	ad->queue = NULL;
	ad->queue_tail = &ad->queue;
	if (close) {
		ad->q_closed = true;
		snprintf(ad->down_msg, sizeof ad->down_msg, "%s", close);
	}
	pthread_mutex_unlock(&ad->qmu);
	return q;
}

/* Runs the requests posted since the last round. */
static void ad_run_queue(adapter *ad) { run_list(ad, take_queue(ad, NULL), RT_START); }

/* Runs every pending request again: done, expired, or still waiting. */
static void ad_check_waiting(adapter *ad)
{
	rt_req *w = ad->waiting;
	ad->waiting = NULL;
	while (w) {
		rt_req *next = w->next;
		req_run(ad, w, ad->now >= w->deadline ? RT_EXPIRED : RT_CHECK);
		w = next;
	}
}

/* Unlists the sockets that died this round (no pointer to them survives the round). */
static void ad_reap(adapter *ad)
{
	for (bsock **pp = &ad->socks; *pp;) {
		bsock *s = *pp;
		if (s->zombie) {
			*pp = s->next;
			ad->sock_hooks->unlist(s);
		} else {
			pp = &s->next;
		}
	}
}

static int ad_poll_wait(adapter *ad)
{
	uint64_t next = bt_stack_next_deadline(ad->st);
	for (rt_req *w = ad->waiting; w; w = w->next)
		if (w->deadline < next)
			next = w->deadline;
	int wait = next == UINT64_MAX ? 1000 : next > ad->now ? (int)(next - ad->now) : 0;
	return wait > 1000 ? 1000 : wait;
}

/* The loop ends: every request still queued or pending fails, every socket is detached.
 * The queue closes last: a caller that finds it closed (under qmu) sees the adapter's and its
 * sockets' final state, which no thread changes any more, and runs its step with RT_DOWN on
 * its own thread (rt_call). */
static void ad_loop_end(adapter *ad, const char *why)
{
	ad->closing = true;
	atomic_store(&ad->gone, true);
	fail_waiting(ad);
	while (ad->socks) {
		bsock *s = ad->socks;
		ad->socks = s->next;
		ad->sock_hooks->ended(s);
	}
	run_list(ad, take_queue(ad, why), RT_DOWN); /* nothing is queued after this */
}

static bool ad_stop_asked(adapter *ad)
{
	pthread_mutex_lock(&ad->qmu);
	bool stop = ad->stop;
	pthread_mutex_unlock(&ad->qmu);
	return stop;
}

/* The loop thread runs SCHED_BATCH (sched(7); no privilege needed): woken by the controller, it
 * does not preempt the task that woke it, so a controller process (btvirt) finishes what it
 * has to hand out before the loop runs and the loop finds more to do per wake-up. On one CPU
 * the task switches per ACL packet drop (bench duplex +18 %, CPU per MiB -16 %, echo p50
 * -10 %, oneway unchanged, in one A/B run). A loop that waits lags a running task by at most a scheduler slice (~ms),
 * which a controller's buffers and HCI flow control absorb. Best effort: kept as is if the
 * system refuses. */
static void ad_sched_batch(void)
{
#ifdef SCHED_BATCH
	struct sched_param sp = { .sched_priority = 0 };
	(void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
#endif
}

static void *ad_loop(void *arg)
{
	adapter *ad = arg;
	ad_sched_batch();
	pollset ps = { 0 };
	const char *end_why = "the adapter was closed (btsock_adapter_close or btsock_shutdown)";
	ad->now = rt_now_ms(); /* read once per round: a clock read costs on every wake-up */
	bt_stack_start(ad->st, ad->now);
	while (!ad_stop_asked(ad)) {
		size_t n = ad_poll_fill(ad, &ps);
		if (n == 0) {
			ad_die(ad, "its loop stopped: no memory for the poll set");
			ad_mark_dead(ad);
			end_why = ad->err;
			break;
		}
		long wait_us = ad_coalesce_us(ad);
		bool waited = wait_us > 0;
		if (waited) {
			const struct timespec ts = { 0, wait_us * 1000L };
			nanosleep(&ts, NULL);
		}
		int r = poll(ps.p, (nfds_t)n, waited ? 0 : ad_poll_wait(ad));
		if (waited && r >= 0 && !ad_transport_ready(&ps)) {
			ad->rx_slow = true; /* nothing came while it waited: poll for the rest */
			if (r == 0)
				r = poll(ps.p, (nfds_t)n, ad_poll_wait(ad));
		}
		if (r < 0 && errno != EINTR) {
			char d[140];
			snprintf(d, sizeof d, "its loop stopped: poll: %.80s", strerror(errno));
			ad_die(ad, d);
			ad_mark_dead(ad);
			end_why = ad->err;
			break;
		}
		struct pollfd *p = ps.p;
		bool was_dead = ad->dead;
		ad->now = rt_now_ms();
		if (r > 0 && (p[ps.ntr].revents & POLLIN)) {
			uint64_t junk;
			if (read(ad->wake_fd, &junk, sizeof junk) < 0) {
				/* already drained */
			}
		}
		if (r > 0 && !ad->dead)
			ad_transport_io(ad, p, ps.ntr);
		bt_stack_run_timers(ad->st, ad->now);
		snoop_tick(ad->now);
		ad_run_queue(ad);
		for (size_t i = ps.ntr + 1; r > 0 && i < n; i++)
			if (p[i].revents && !ps.map[i]->zombie)
				ad->sock_hooks->io(ps.map[i], p[i].revents);
		for (bsock *s = ad->socks; s; s = s->next)
			if (!s->zombie)
				ad->sock_hooks->service(s);
		if (ad->dead && !was_dead)
			ad_mark_dead(ad);
		ad_reap(ad);
		ad_check_waiting(ad);
	}
	ad_loop_end(ad, end_why);
	free(ps.p);
	free(ps.map);
	return NULL;
}

/* ------------------------------------------------------------------ open */

static void snoop_open_once(void)
{
	pthread_mutex_lock(&cfg_mu);
	const char *path = rt_snoop_set ? rt_snoop_path : getenv("BTSOCK_SNOOP");
	char p[256];
	snprintf(p, sizeof p, "%s", path ? path : "");
	pthread_mutex_unlock(&cfg_mu);
	pthread_mutex_lock(&snoop_mu);
	if (!rt_snoop && p[0]) {
		char err[256];
		rt_snoop = bt_snoop_open(p, err, sizeof err);
		atomic_store(&rt_snoop_on, rt_snoop != NULL);
		if (!rt_snoop)
			fprintf(stderr, "btsock: BTSOCK_SNOOP: %s\n", err);
	}
	pthread_mutex_unlock(&snoop_mu);
}

static bool snoop_on(void)
{
	pthread_mutex_lock(&snoop_mu);
	bool on = rt_snoop != NULL;
	pthread_mutex_unlock(&snoop_mu);
	return on;
}

/* The keystore path adapters opened now use (copied into buf), or NULL. */
static const char *keys_path(char *buf, size_t cap)
{
	pthread_mutex_lock(&cfg_mu);
	const char *p = rt_keys_set ? rt_keys_path : getenv("BTSOCK_KEYS");
	snprintf(buf, cap, "%s", p ? p : "");
	pthread_mutex_unlock(&cfg_mu);
	return buf[0] ? buf : NULL;
}

/* Keys read from the keystore at open, handed to the loop. */
typedef struct {
	bt_addr peer;
	uint8_t key[16];
	uint8_t type;
} loaded_key;

typedef struct {
	loaded_key *v;
	size_t n, cap;
	bool nomem;
	ks_writer *writer;
} open_keys;

static void ad_key_loaded(void *ctx, const bt_addr *peer, const uint8_t key[16], uint8_t type)
{
	open_keys *k = ctx;
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 16;
		loaded_key *v = realloc(k->v, cap * sizeof *v);
		if (!v) {
			k->nomem = true;
			return;
		}
		k->v = v;
		k->cap = cap;
	}
	k->v[k->n].peer = *peer;
	memcpy(k->v[k->n].key, key, 16);
	k->v[k->n++].type = type;
}

/* A bond was made: keep its key for the next run, in the keystore the adapter was opened
 * with. On the loop thread: the file work (a lock another process may hold, fsync, rename)
 * is the key writer's thread's. */
static void ad_key_new(void *ctx, const bt_addr *peer, const uint8_t key[16], uint8_t type)
{
	adapter *ad = ctx;
	if (ad->keys)
		ks_writer_post(ad->keys, peer, key, type);
}

/* The initialised adapter's address, its keys and the agent, on the loop. */
static int ready_step(adapter *ad, void *arg, rt_why why)
{
	if (why == RT_DOWN)
		return rt_fail(ENETDOWN, "%s", ad->err[0] ? ad->err : "the adapter's loop ended");
	if (ad->dead || (ad->ready && ad->ready_err))
		return rt_fail(ad->ready_err ? -ad->ready_err : ENETDOWN, "%s", ad->err);
	if (!ad->ready) {
		if (why == RT_EXPIRED)
			return rt_fail(ETIMEDOUT, "adapter %s: the controller did not finish initialisation", ad->name);
		return RT_PENDING;
	}
	ad->addr = hci_get_info(bt_stack_hci(ad->st))->addr;
	return 0;
}

static int keys_step(adapter *ad, void *arg, rt_why why)
{
	open_keys *k = arg;
	if (why == RT_DOWN)
		return rt_fail(ENETDOWN, "%s", ad->err[0] ? ad->err : "the adapter's loop ended");
	gap *g = bt_stack_gap(ad->st);
	if (k->writer) {
		for (size_t i = 0; i < k->n; i++)
			gap_link_key_set(g, &k->v[i].peer, k->v[i].key, k->v[i].type);
		ad->keys = k->writer;
		gap_set_bondable(g, true);
		gap_set_key_hook(g, ad_key_new, ad);
	}
	rt_agent_apply(ad);
	return 0;
}

/* With a keystore the adapter bonds: the keys of its bonds are loaded, and new ones saved.
 * Without one it does not bond (gap.h): peers then keep no key it would forget. */
static int ad_keys_open(adapter *ad)
{
	char buf[4096];
	const char *path = keys_path(buf, sizeof buf);
	open_keys k = { 0 };
	if (path) {
		char err[256];
		if (ks_load(path, &ad->addr, ad_key_loaded, &k, err, sizeof err) < 0)
			fprintf(stderr, "btsock: %s\n", err);
		if (k.nomem)
			fprintf(stderr, "btsock: %s: out of memory: some bonds were not loaded\n", path);
		k.writer = ks_writer_new(path, &ad->addr, KS_LOCK_WAIT_MS);
		if (!k.writer)
			fprintf(stderr, "btsock: %s: out of memory: this adapter does not bond\n", path);
	}
	int rc = rt_call(ad, keys_step, &k, -1, "adapter_open");
	if (rc < 0)
		ks_writer_free(k.writer); /* never handed to the loop */
	free(k.v);
	return rc;
}

/* Stops the loop and frees what it owned; the record stays while referenced. */
static void ad_stop(adapter *ad)
{
	if (ad->thread_started) {
		pthread_mutex_lock(&ad->qmu);
		ad->stop = true;
		pthread_mutex_unlock(&ad->qmu);
		rt_wake(ad);
		pthread_join(ad->thread, NULL);
		ad->thread_started = false;
	}
	if (ad->wake_fd >= 0) { /* the queue is closed: nobody wakes this loop any more */
		close(ad->wake_fd);
		ad->wake_fd = -1;
	}
	ks_writer *keys = ad->keys; /* no pairing can post a key once the loop has stopped */
	ad->keys = NULL;
	ks_writer_free(keys); /* keys still queued are written (each lock waited for within bounds) */
	if (ad->st)
		bt_stack_free(ad->st);
	ad->st = NULL;
	bt_transport_close(ad->tr);
	ad->tr = NULL;
	pthread_mutex_lock(&snoop_mu);
	bt_snoop_flush(rt_snoop);
	pthread_mutex_unlock(&snoop_mu);
}

static adapter *ad_new(const char *spec)
{
	adapter *ad = calloc(1, sizeof *ad);
	if (!ad)
		return NULL;
	atomic_init(&ad->refs, 1);
	ad->wake_fd = -1;
	pthread_mutex_init(&ad->qmu, NULL);
	ad->queue_tail = &ad->queue;
	snprintf(ad->name, sizeof ad->name, "%s", spec);
	ad->l2buf = malloc(L2CAP_MAX_MTU + 1);
	ad->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!ad->l2buf || ad->wake_fd < 0) {
		ad_free(ad);
		return NULL;
	}
	return ad;
}

/* Opens an adapter and adds it to the registry. Returns it referenced, or NULL with the
 * thread's message set. */
static adapter *ad_open(const char *spec)
{
	adapter *ad = ad_new(spec);
	if (!ad) {
		rt_fail(ENOMEM, "adapter %s: out of memory", spec);
		return NULL;
	}
	char err[256];
	int rc = bt_transport_open(spec, &ad->tr, err, sizeof err);
	if (rc < 0) {
		rt_adapter_put(ad);
		rt_fail(-rc, "adapter %s", err);
		return NULL;
	}
	snoop_open_once();
	bt_stack_config cfg = { 0 };
	cfg.ctx = ad;
	cfg.send = ad_send;
	cfg.ready = ad_ready;
	cfg.fatal = ad_fatal;
	cfg.trace_in = snoop_on() ? ad_trace_in : NULL;
	const char *name = getenv("BTSOCK_NAME");
	cfg.hci.local_name = name && *name ? name : "btsock";
	cfg.hci.class_of_device = 0x000100; /* major class computer, Vol 3 Part C / Assigned Numbers */
	ad->st = bt_stack_new(&cfg, rt_now_ms());
	if (!ad->st) {
		ad_stop(ad);
		rt_adapter_put(ad);
		rt_fail(ENOMEM, "adapter %s: out of memory", spec);
		return NULL;
	}
	if (pthread_create(&ad->thread, NULL, ad_loop, ad) != 0) {
		ad_stop(ad);
		rt_adapter_put(ad);
		rt_fail(EAGAIN, "adapter %s: cannot start its thread", spec);
		return NULL;
	}
	ad->thread_started = true;
	if (rt_call(ad, ready_step, NULL, RT_READY_WAIT_MS, "adapter_open") < 0 || ad_keys_open(ad) < 0) {
		api_error_state e;
		api_error_capture(&e);
		ad_stop(ad);
		rt_adapter_put(ad);
		api_error_restore(&e);
		return NULL;
	}
	rt_adapter_get(ad); /* the registry's reference; the caller keeps the first */
	pthread_mutex_lock(&reg_mu);
	adapter **pp = &reg_adapters; /* keep opening order: the first is the default */
	while (*pp)
		pp = &(*pp)->next;
	*pp = ad;
	ad->next = NULL;
	pthread_mutex_unlock(&reg_mu);
	return ad;
}

/* ------------------------------------------------------------------ lookup */

static adapter *first_open(void)
{
	adapter *found = NULL;
	pthread_mutex_lock(&reg_mu);
	for (adapter *ad = reg_adapters; ad && !found; ad = ad->next)
		if (!atomic_load(&ad->gone))
			found = ad;
	if (found)
		rt_adapter_get(found);
	pthread_mutex_unlock(&reg_mu);
	return found;
}

adapter *rt_default_adapter(const char *call)
{
	adapter *ad = first_open();
	if (ad)
		return ad;
	pthread_mutex_lock(&open_mu);
	if (!(ad = first_open())) { /* nobody opened it while we waited */
		const char *spec = getenv("BTSOCK_ADAPTER");
		if (!spec || !*spec)
			rt_fail(ENODEV, "no Bluetooth adapter: BTSOCK_ADAPTER is not set "
					"(e.g. BTSOCK_ADAPTER=unix:/tmp/bt-server-bredr for BlueZ btvirt -s)");
		else
			ad = ad_open(spec);
	}
	pthread_mutex_unlock(&open_mu);
	(void)call;
	return ad;
}

adapter *rt_adapter_by_addr(const bt_addr *a)
{
	adapter *found = NULL;
	pthread_mutex_lock(&reg_mu);
	for (adapter *ad = reg_adapters; ad && !found; ad = ad->next)
		if (bt_addr_eq(&ad->addr, a))
			found = ad;
	if (found)
		rt_adapter_get(found);
	pthread_mutex_unlock(&reg_mu);
	return found;
}

adapter *rt_adapter_arg(const char *addr, const char *call)
{
	bt_addr a;
	adapter *ad;
	if (!addr || !*addr)
		return rt_default_adapter(call);
	if (bt_addr_parse(addr, &a) < 0) {
		rt_fail(EINVAL, "%s: invalid adapter address '%s': expected six hex bytes like 01:23:45:67:89:AB", call,
			addr);
		return NULL;
	}
	if (!(ad = rt_adapter_by_addr(&a)))
		rt_fail(ENODEV, "%s: no open adapter has address %s", call, addr);
	return ad;
}

bool rt_has_adapter(const char *addr)
{
	bt_addr a;
	if (!addr || bt_addr_parse(addr, &a) < 0)
		return false;
	adapter *ad = rt_adapter_by_addr(&a);
	rt_adapter_put(ad);
	return ad != NULL;
}

void rt_for_each_adapter(rt_step_fn step, void *arg, const char *call)
{
	for (size_t i = 0;; i++) {
		adapter *ad = NULL;
		pthread_mutex_lock(&reg_mu);
		size_t k = 0;
		for (adapter *a = reg_adapters; a && !ad; a = a->next, k++)
			if (k == i)
				ad = a;
		if (ad)
			rt_adapter_get(ad);
		pthread_mutex_unlock(&reg_mu);
		if (!ad)
			return;
		rt_call(ad, step, arg, -1, call);
		rt_adapter_put(ad);
	}
}

bool rt_any_adapter(void)
{
	pthread_mutex_lock(&reg_mu);
	bool any = reg_adapters != NULL;
	pthread_mutex_unlock(&reg_mu);
	return any;
}

/* ------------------------------------------------------------------ public: open, info */

int rt_adapter_open(const char *name, char addr[BTSOCK_ADDRSTRLEN])
{
	if (!name || !*name) {
		name = getenv("BTSOCK_ADAPTER");
		if (!name || !*name)
			return rt_fail(ENODEV, "btsock_adapter_open: no adapter named and BTSOCK_ADAPTER is not set");
	}
	adapter *ad = ad_open(name);
	if (!ad)
		return -1;
	if (addr)
		bt_addr_format(&ad->addr, addr);
	rt_adapter_put(ad);
	return 0;
}

typedef struct {
	struct btsock_adapter_info *info;
	int sc;
} info_call;

static int info_step(adapter *ad, void *arg, rt_why why)
{
	info_call *c = arg;
	if (why == RT_DOWN || ad->closing)
		return rt_adapter_down(ad, "adapter_info");
	const hci_info *hi = hci_get_info(bt_stack_hci(ad->st));
	c->sc = hi->secure_connections;
	if (c->info) {
		struct btsock_adapter_info *info = c->info;
		memset(info, 0, sizeof *info);
		bt_addr_format(&hi->addr, info->addr);
		snprintf(info->name, sizeof info->name, "%.63s", ad->name);
		info->hci_version = hi->hci_version;
		info->hci_revision = hi->hci_revision;
		info->lmp_version = hi->lmp_version;
		info->manufacturer = hi->manufacturer;
		info->acl_mtu = hi->acl_mtu;
		info->acl_packets = hi->acl_pkts;
	}
	rt_clear_error();
	return 0;
}

int rt_adapter_info(const char *addr, struct btsock_adapter_info *info)
{
	if (!info)
		return rt_fail(EINVAL, "adapter_info: info is NULL");
	adapter *ad = rt_adapter_arg(addr, "adapter_info");
	if (!ad)
		return -1;
	info_call c = { .info = info };
	int rc = rt_call(ad, info_step, &c, -1, "adapter_info");
	rt_adapter_put(ad);
	return rc;
}

int rt_adapter_secure_connections(const char *addr)
{
	adapter *ad = rt_adapter_arg(addr, "adapter_secure_connections");
	if (!ad)
		return -1;
	info_call c = { 0 };
	int rc = rt_call(ad, info_step, &c, -1, "adapter_secure_connections");
	rt_adapter_put(ad);
	return rc < 0 ? rc : c.sc;
}

/* ------------------------------------------------------------------ close */

/* Closing, on the loop: new requests fail, sockets flush for up to RT_CLOSE_GRACE_MS, then
 * every link is disconnected (a UART or user-channel controller outlives us, and a peer would
 * hold the link until its supervision timeout). */
typedef struct {
	int phase; /* 0 flushing, 1 disconnecting */
} close_call;

static bool ad_flushing(adapter *ad)
{
	for (bsock *s = ad->socks; s; s = s->next)
		if (!s->zombie && (s->dlc || s->ch))
			return true;
	return !bt_stack_tx_idle(ad->st);
}

static int close_disconnect(adapter *ad, close_call *c)
{
	if (ad->dead || hci_disconnect_all(bt_stack_hci(ad->st), HCI_ERR_REMOTE_POWER_OFF) == 0)
		return 0;
	c->phase = 1;
	rt_set_deadline(ad, RT_DISCONNECT_WAIT_MS);
	return RT_PENDING;
}

static int close_step(adapter *ad, void *arg, rt_why why)
{
	close_call *c = arg;
	switch (why) {
	case RT_START: {
		ad->closing = true;
		atomic_store(&ad->gone, true);
		fail_waiting(ad); /* calls blocked on this adapter give up first */
		for (bsock *s = ad->socks; s; s = s->next)
			if (!s->zombie && (s->dlc || s->ch))
				s->app_eof = true; /* the loop closes the channel once it is flushed */
		rt_set_deadline(ad, RT_CLOSE_GRACE_MS);
		return RT_PENDING;
	}
	case RT_CHECK:
		if (c->phase == 0)
			return !ad->dead && ad_flushing(ad) ? RT_PENDING : close_disconnect(ad, c);
		return !ad->dead && hci_link_count(bt_stack_hci(ad->st)) > 0 ? RT_PENDING : 0;
	case RT_EXPIRED:
		return c->phase == 0 ? close_disconnect(ad, c) : 0;
	case RT_DOWN:
	default:
		return 0;
	}
}

/* Closes ad, which the caller took out of the registry (its reference is the caller's now). */
static void ad_close(adapter *ad)
{
	close_call c = { 0 };
	rt_call(ad, close_step, &c, -1, "adapter_close");
	ad_stop(ad);
	rt_adapter_put(ad);
	pthread_mutex_lock(&reg_mu);
	reg_closing--;
	pthread_cond_broadcast(&reg_cv);
	pthread_mutex_unlock(&reg_mu);
}

/* Takes an adapter out of the registry (addr NULL: the first one). */
static adapter *reg_take(const bt_addr *addr)
{
	pthread_mutex_lock(&reg_mu);
	adapter *found = NULL;
	for (adapter **pp = &reg_adapters; *pp; pp = &(*pp)->next) {
		if (!addr || bt_addr_eq(&(*pp)->addr, addr)) {
			found = *pp;
			*pp = found->next;
			found->next = NULL;
			reg_closing++;
			break;
		}
	}
	pthread_mutex_unlock(&reg_mu);
	return found;
}

int rt_adapter_close(const char *addr)
{
	bt_addr a;
	bool any = !addr || !*addr;
	if (!any && bt_addr_parse(addr, &a) < 0)
		return rt_fail(ENODEV, "btsock_adapter_close: no open adapter has address '%s'", addr);
	adapter *ad = reg_take(any ? NULL : &a);
	if (!ad)
		return rt_fail(ENODEV, "btsock_adapter_close: no open adapter has address '%s'", addr ? addr : "");
	ad_close(ad);
	rt_clear_error();
	return 0;
}

/* ------------------------------------------------------------------ settings, shutdown */

int rt_set_snoop(const char *path)
{
	pthread_mutex_lock(&cfg_mu);
	rt_snoop_set = true;
	snprintf(rt_snoop_path, sizeof rt_snoop_path, "%s", path ? path : "");
	pthread_mutex_unlock(&cfg_mu);
	int rc = 0;
	bool idle = !rt_any_adapter();
	pthread_mutex_lock(&snoop_mu);
	if (rt_snoop && idle) {
		bt_snoop_close(rt_snoop);
		rt_snoop = NULL;
		atomic_store(&rt_snoop_on, rt_snoop != NULL);
	}
	if (path && *path && !rt_snoop) {
		char err[256];
		rt_snoop = bt_snoop_open(path, err, sizeof err);
		atomic_store(&rt_snoop_on, rt_snoop != NULL);
		if (!rt_snoop)
			rc = rt_fail(errno ? errno : EIO, "btsock_set_snoop: %s", err);
	}
	pthread_mutex_unlock(&snoop_mu);
	return rc;
}

int rt_set_keystore(const char *path)
{
	if (path && strlen(path) >= sizeof rt_keys_path)
		return rt_fail(ENAMETOOLONG, "btsock_set_keystore: path too long");
	pthread_mutex_lock(&cfg_mu);
	rt_keys_set = true;
	snprintf(rt_keys_path, sizeof rt_keys_path, "%s", path ? path : "");
	pthread_mutex_unlock(&cfg_mu);
	return 0;
}

void rt_adapters_close_all(void)
{
	adapter *ad;
	while ((ad = reg_take(NULL)))
		ad_close(ad);
	pthread_mutex_lock(&reg_mu); /* closes other threads started end first */
	while (reg_closing > 0)
		pthread_cond_wait(&reg_cv, &reg_mu);
	pthread_mutex_unlock(&reg_mu);
	pthread_mutex_lock(&snoop_mu);
	if (rt_snoop) {
		bt_snoop_close(rt_snoop);
		rt_snoop = NULL;
		atomic_store(&rt_snoop_on, rt_snoop != NULL);
	}
	pthread_mutex_unlock(&snoop_mu);
}
