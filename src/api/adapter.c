/* adapter.c - adapters (a host stack on a transport, driven by a loop thread), the runtime
 * lock, per-thread error messages, btsnoop capture and orderly shutdown. */
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hci/hci.h"
#include "hci/hci_defs.h"
#include "gap/gap.h"
#include "keystore.h"

pthread_mutex_t rt_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t rt_cond;
bsock *rt_socks;
adapter *rt_adapters;

static pthread_once_t rt_once = PTHREAD_ONCE_INIT;
static bt_snoop *rt_snoop;        /* one capture shared by every adapter */
static char rt_snoop_path[256];
static char rt_keys_path[4096];
static bool rt_keys_set; /* btsock_set_keystore called: the environment no longer counts */
static bool rt_snoop_set;          /* btsock_set_snoop called: the environment no longer counts */
static _Thread_local char rt_errbuf[320];

static void rt_init(void)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&rt_cond, &a);
	pthread_condattr_destroy(&a);
	atexit(btsock_shutdown);
}


void rt_enter(void)
{
	pthread_once(&rt_once, rt_init);
	pthread_mutex_lock(&rt_lock);
}

uint64_t rt_now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

int rt_fail(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rt_errbuf, sizeof rt_errbuf, fmt, ap);
	va_end(ap);
	errno = err;
	return -1;
}

void rt_clear_error(void) { rt_errbuf[0] = 0; }

const char *btsock_error(void) { return rt_errbuf; }

int rt_wait(int timeout_ms, uint64_t start)
{
	if (timeout_ms < 0) {
		pthread_cond_wait(&rt_cond, &rt_lock);
		return 0;
	}
	uint64_t end = start + (uint64_t)timeout_ms;
	if (rt_now_ms() >= end)
		return -ETIMEDOUT;
	struct timespec ts = { (time_t)(end / 1000), (long)(end % 1000) * 1000000L };
	pthread_cond_timedwait(&rt_cond, &rt_lock, &ts);
	return rt_now_ms() >= end ? -ETIMEDOUT : 0;
}

void rt_op_begin(adapter *ad)
{
	ad->api_ops++;
	bt_stack_run_timers(ad->st, rt_now_ms()); /* timers the operation arms count from now */
}

int rt_op_wait(adapter *ad, const bool *done, int timeout_ms)
{
	uint64_t t0 = rt_now_ms();
	rt_wake(ad); /* the loop recomputes its next deadline */
	while (!*done) {
		if (ad->dead || ad->closing)
			return -ENETDOWN;
		if (rt_wait(timeout_ms, t0) < 0 && !*done)
			return -ETIMEDOUT;
	}
	return 0;
}

void rt_op_end(adapter *ad)
{
	if (--ad->api_ops == 0 && ad->closing)
		pthread_cond_broadcast(&rt_cond);
}

void rt_wake(adapter *ad)
{
	uint8_t b = 1;
	if (write(ad->wake[1], &b, 1) < 0) {
		/* the pipe is full: the loop is already due to wake */
	}
}

/* ------------------------------------------------------------------ stack callbacks */

static void ad_send(void *ctx, const uint8_t *pkt, size_t len)
{
	adapter *ad = ctx;
	if (ad->dead)
		return;
	if (rt_snoop)
		bt_snoop_write(rt_snoop, pkt, len, false);
	int err = bt_transport_send(ad->tr, pkt, len);
	if (err < 0 && !ad->dead) {
		ad->dead = true;
		/* A peer that closed is the same fault however it is noticed first (read or write). */
		bool closed = err == -EPIPE || err == -ECONNRESET;
		snprintf(ad->err, sizeof ad->err, "adapter %s: %s: %s", ad->name,
			 closed ? "the controller connection closed (writing to it failed)"
			 : err == -ENOBUFS ? "the controller stopped reading (64 KiB left unread)"
					   : "writing to the controller failed",
			 strerror(-err));
	}
}

static void ad_trace_in(void *ctx, const uint8_t *pkt, size_t len)
{
	if (rt_snoop)
		bt_snoop_write(rt_snoop, pkt, len, true);
}

static void ad_ready(void *ctx, int err)
{
	adapter *ad = ctx;
	ad->ready = true;
	ad->ready_err = err;
	if (err)
		snprintf(ad->err, sizeof ad->err, "adapter %s: %s", ad->name, bt_stack_error(ad->st));
	pthread_cond_broadcast(&rt_cond);
}

static void ad_fatal(void *ctx, int err)
{
	adapter *ad = ctx;
	ad->dead = true;
	snprintf(ad->err, sizeof ad->err, "adapter %s: %s", ad->name, bt_stack_error(ad->st));
	(void)err;
}

/* The controller is gone or unusable: every socket on it ends. */
static void ad_mark_dead(adapter *ad)
{
	for (bsock *s = rt_socks; s; s = s->next)
		if (s->ad == ad)
			rt_sock_adapter_gone(s, -ENETDOWN);
}

/* ------------------------------------------------------------------ the loop */

/* The loop's poll set: the transport, the wake pipe, and every socket that waits for
 * something; it grows with the number of sockets (no socket is ever left unpolled). */
typedef struct {
	struct pollfd *p;
	bsock **map;
	size_t cap;
	size_t ntr; /* p[0 .. ntr): the transport's fds; p[ntr]: the wake pipe; then sockets */
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

/* The loop cannot go on (poll failed, no memory for the poll set): the adapter is dead, its
 * sockets end and every caller waiting on it hears of it. rt_lock held. */
static void ad_loop_failed(adapter *ad, const char *what, int err)
{
	if (!ad->dead) {
		ad->dead = true;
		snprintf(ad->err, sizeof ad->err, "adapter %s: its loop stopped: %s: %s", ad->name, what, strerror(err));
		ad_mark_dead(ad);
	}
	pthread_cond_broadcast(&rt_cond);
}

/* Fills the poll set for one round; the number of entries, or 0 without memory. */
static size_t ad_poll_fill(adapter *ad, pollset *ps)
{
	size_t n = BT_TRANSPORT_MAX_FDS + 1;
	for (bsock *s = rt_socks; s; s = s->next)
		n += s->ad == ad && !s->zombie;
	if (!pollset_room(ps, n))
		return 0;
	struct pollfd *p = ps->p;
	ps->ntr = bt_transport_pollfds(ad->tr, p);
	for (size_t i = 0; i < ps->ntr; i++) {
		if (ad->dead) /* nothing more is read, what is queued may still leave */
			p[i].events &= (short)~POLLIN;
		if (!p[i].events) /* a hung-up fd would wake every round */
			p[i].fd = -1;
		ps->map[i] = NULL;
	}
	n = ps->ntr;
	p[n] = (struct pollfd){ ad->wake[0], POLLIN, 0 };
	ps->map[n++] = NULL;
	for (bsock *s = rt_socks; s; s = s->next) {
		if (s->ad != ad || s->zombie)
			continue;
		short ev = 0;
		rt_sock_poll_events(s, &ev);
		if (!ev)
			continue;
		p[n] = (struct pollfd){ s->rt_fd, ev, 0 };
		ps->map[n++] = s;
	}
	return n;
}

/* The transport's I/O for the revents in p[0 .. n) of the given kinds only (a copy). */
static void ad_transport_io(adapter *ad, const struct pollfd *p, size_t n, short mask)
{
	struct pollfd q[BT_TRANSPORT_MAX_FDS];
	for (size_t i = 0; i < n; i++) {
		q[i] = p[i];
		q[i].revents &= mask;
	}
	(void)bt_transport_events(ad->tr, q, n); /* a failure shows in bt_transport_recv */
}

/* Drains the transport WITHOUT the runtime lock into its receive buffer (bounded): btvirt
 * drops ACL data a host does not read in time, so another adapter or an API call holding the
 * lock must never delay the read. Only this thread receives; sends happen under the lock, and
 * the transport's two sides share no state (transport.h). */
static void ad_drain_transport(adapter *ad, const struct pollfd *p, size_t n)
{
	ad_transport_io(ad, p, n, (short)~POLLOUT);
}

/* Feeds the packets received to the stack; rt_lock held. */
static void ad_feed(adapter *ad, uint64_t now)
{
	const uint8_t *pkt;
	ssize_t n;
	while ((n = bt_transport_recv(ad->tr, &pkt)) > 0)
		bt_stack_packet(ad->st, pkt, (size_t)n, now);
	if (n < 0 && !ad->dead) {
		snprintf(ad->err, sizeof ad->err, "adapter %s: %s", ad->name, bt_transport_error(ad->tr));
		ad->dead = true;
	}
}

/* Receive coalescing: while an L2CAP PDU is half reassembled and nothing waits to go out, the
 * rest of it is on its way, one ACL packet per controller round trip. Waking for each fragment
 * costs two task switches a packet; waiting a moment takes several per wake-up (bench oneway
 * +15 %). Bounded: at most RT_RX_COALESCE_US, far less than a controller takes to fill its
 * queue, and peers are held back by credits anyway. Single-packet PDUs (an echo, signalling)
 * never wait. rt_lock held. */
#define RT_RX_COALESCE_US 250

static bool ad_coalesce(adapter *ad)
{
	return !ad->dead && !ad->stop && hci_rx_partial(bt_stack_hci(ad->st)) && bt_stack_tx_idle(ad->st) &&
	       !bt_transport_pending(ad->tr);
}

static void *ad_loop(void *arg)
{
	adapter *ad = arg;
	pollset ps = { 0 };
	pthread_mutex_lock(&rt_lock);
	uint64_t now = rt_now_ms(); /* read once per round: a clock read costs on every wake-up */
	bt_stack_start(ad->st, now);
	while (!ad->stop) {
		size_t n = ad_poll_fill(ad, &ps);
		if (n == 0) {
			ad_loop_failed(ad, "poll set", ENOMEM);
			break;
		}
		struct pollfd *p = ps.p;
		bsock **map = ps.map;
		size_t ntr = ps.ntr;
		uint64_t next = bt_stack_next_deadline(ad->st);
		int wait = next == UINT64_MAX ? 1000 : next > now ? (int)(next - now) : 0;
		if (wait > 1000)
			wait = 1000;
		bool coalesce = ad_coalesce(ad);
		pthread_mutex_unlock(&rt_lock);
		if (coalesce) {
			const struct timespec ts = { 0, RT_RX_COALESCE_US * 1000 };
			nanosleep(&ts, NULL);
		}
		int r = poll(p, (nfds_t)n, wait);
		int poll_err = errno;
		ad_drain_transport(ad, p, ntr);
		pthread_mutex_lock(&rt_lock);
		if (ad->stop)
			break;
		if (r < 0 && poll_err != EINTR) {
			ad_loop_failed(ad, "poll", poll_err);
			break;
		}
		if (p[ntr].revents & POLLIN) {
			uint8_t junk[64];
			while (read(ad->wake[0], junk, sizeof junk) > 0)
				;
		}
		bool was_dead = ad->dead;
		now = rt_now_ms();
		ad_feed(ad, now);
		ad_transport_io(ad, p, ntr, POLLOUT);
		bt_stack_run_timers(ad->st, now);
		bt_snoop_tick(rt_snoop, now); /* the capture reaches its file within a moment */
		for (size_t i = ntr + 1; i < n; i++)
			if (p[i].revents && !map[i]->zombie)
				rt_sock_io(map[i], p[i].revents);
		for (bsock *s = rt_socks; s; s = s->next)
			if (s->ad == ad && !s->zombie)
				rt_sock_service(s);
		if (ad->dead && !was_dead)
			ad_mark_dead(ad);
		/* Free what died this round (no pointer to it survives the round). */
		for (bsock **pp = &rt_socks; *pp;) {
			bsock *s = *pp;
			if (s->ad == ad && s->zombie) {
				*pp = s->next;
				rt_sock_free(s);
			} else {
				pp = &s->next;
			}
		}
		pthread_cond_broadcast(&rt_cond);
	}
	pthread_mutex_unlock(&rt_lock);
	free(ps.p);
	free(ps.map);
	return NULL;
}

/* ------------------------------------------------------------------ open / close */

static void ad_destroy(adapter *ad)
{
	if (ad->thread_started) {
		ad->stop = true;
		rt_wake(ad);
		pthread_mutex_unlock(&rt_lock);
		pthread_join(ad->thread, NULL);
		pthread_mutex_lock(&rt_lock);
	}
	if (ad->st)
		bt_stack_free(ad->st);
	ks_writer_free(ad->keys); /* a failed open: nothing was queued */
	bt_transport_close(ad->tr);
	if (ad->wake[0] >= 0)
		close(ad->wake[0]);
	if (ad->wake[1] >= 0)
		close(ad->wake[1]);
	free(ad);
}

static void snoop_open_once(void)
{
	if (rt_snoop)
		return;
	const char *path = rt_snoop_set ? rt_snoop_path : getenv("BTSOCK_SNOOP");
	if (!path || !*path)
		return;
	char err[256];
	rt_snoop = bt_snoop_open(path, err, sizeof err);
	if (!rt_snoop)
		fprintf(stderr, "btsock: BTSOCK_SNOOP: %s\n", err);
}

static const char *keys_path(void)
{
	const char *p = rt_keys_set ? rt_keys_path : getenv("BTSOCK_KEYS");
	return p && *p ? p : NULL;
}

static void ad_key_loaded(void *ctx, const bt_addr *peer, const uint8_t key[16], uint8_t type)
{
	gap_link_key_set(ctx, peer, key, type);
}

/* A bond was made: keep its key for the next run, in the keystore the adapter was opened
 * with. On the loop thread, rt_lock held: the file work (a lock another process may hold,
 * fsync, rename) is the key writer's thread's. */
static void ad_key_new(void *ctx, const bt_addr *peer, const uint8_t key[16], uint8_t type)
{
	adapter *ad = ctx;
	if (ad->keys)
		ks_writer_post(ad->keys, peer, key, type);
}

/* With a keystore the adapter bonds: the keys of its bonds are loaded, and new ones saved.
 * Without one it does not bond (gap.h): peers then keep no key it would forget. */
static void ad_keys_open(adapter *ad)
{
	const char *path = keys_path();
	if (!path)
		return;
	gap *g = bt_stack_gap(ad->st);
	char err[256];
	if (ks_load(path, &ad->addr, ad_key_loaded, g, err, sizeof err) < 0)
		fprintf(stderr, "btsock: %s\n", err);
	ad->keys = ks_writer_new(path, &ad->addr, KS_LOCK_WAIT_MS);
	if (!ad->keys) {
		fprintf(stderr, "btsock: %s: out of memory: this adapter does not bond\n", path);
		return;
	}
	gap_set_bondable(g, true);
	gap_set_key_hook(g, ad_key_new, ad);
}

/* Opens an adapter; rt_lock held. Returns it, or NULL with the thread's message set. */
static adapter *ad_open(const char *spec)
{
	adapter *ad = calloc(1, sizeof *ad);
	if (!ad) {
		rt_fail(ENOMEM, "out of memory");
		return NULL;
	}
	ad->wake[0] = ad->wake[1] = -1;
	snprintf(ad->name, sizeof ad->name, "%s", spec);
	char err[256];
	int rc = bt_transport_open(spec, &ad->tr, err, sizeof err);
	if (rc < 0) {
		ad_destroy(ad);
		rt_fail(-rc, "adapter %s", err);
		return NULL;
	}
	if (pipe2(ad->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
		ad_destroy(ad);
		rt_fail(errno, "adapter %s: pipe: %s", spec, strerror(errno));
		return NULL;
	}
	snoop_open_once();
	bt_stack_config cfg = { 0 };
	cfg.ctx = ad;
	cfg.send = ad_send;
	cfg.ready = ad_ready;
	cfg.fatal = ad_fatal;
	cfg.trace_in = rt_snoop ? ad_trace_in : NULL;
	const char *name = getenv("BTSOCK_NAME");
	cfg.hci.local_name = name && *name ? name : "btsock";
	cfg.hci.class_of_device = 0x000100; /* major class computer, Vol 3 Part C / Assigned Numbers */
	ad->st = bt_stack_new(&cfg, rt_now_ms());
	if (!ad->st) {
		ad_destroy(ad);
		rt_fail(ENOMEM, "adapter %s: out of memory", spec);
		return NULL;
	}
	if (pthread_create(&ad->thread, NULL, ad_loop, ad) != 0) {
		ad_destroy(ad);
		rt_fail(EAGAIN, "adapter %s: cannot start its thread", spec);
		return NULL;
	}
	ad->thread_started = true;
	uint64_t t0 = rt_now_ms();
	while (!ad->ready && !ad->dead && rt_wait(8000, t0) == 0)
		;
	if (!ad->ready || ad->ready_err || ad->dead) {
		char msg[256];
		snprintf(msg, sizeof msg, "%s", ad->err[0] ? ad->err : "the controller did not finish initialisation");
		int e = ad->ready_err ? -ad->ready_err : ETIMEDOUT;
		ad_destroy(ad);
		rt_fail(e, "%s", msg);
		return NULL;
	}
	ad->addr = hci_get_info(bt_stack_hci(ad->st))->addr;
	ad_keys_open(ad);
	rt_agent_apply(ad);
	adapter **pp = &rt_adapters; /* keep opening order: the first is the default */
	while (*pp)
		pp = &(*pp)->next;
	*pp = ad;
	return ad;
}

adapter *rt_default_adapter(void)
{
	for (adapter *ad = rt_adapters; ad; ad = ad->next)
		if (!ad->dead && !ad->closing)
			return ad;
	const char *spec = getenv("BTSOCK_ADAPTER");
	if (!spec || !*spec) {
		rt_fail(ENODEV, "no Bluetooth adapter: BTSOCK_ADAPTER is not set "
				"(e.g. BTSOCK_ADAPTER=unix:/tmp/bt-server-bredr for BlueZ btvirt -s)");
		return NULL;
	}
	return ad_open(spec);
}

adapter *rt_adapter_by_addr(const bt_addr *a)
{
	for (adapter *ad = rt_adapters; ad; ad = ad->next)
		if (bt_addr_eq(&ad->addr, a) && !ad->closing)
			return ad;
	return NULL;
}

int btsock_adapter_open(const char *name, char addr[BTSOCK_ADDRSTRLEN])
{
	rt_enter();
	adapter *ad;
	if (!name || !*name) {
		name = getenv("BTSOCK_ADAPTER");
		if (!name || !*name) {
			pthread_mutex_unlock(&rt_lock);
			return rt_fail(ENODEV, "btsock_adapter_open: no adapter named and BTSOCK_ADAPTER is not set");
		}
	}
	ad = ad_open(name);
	if (ad && addr)
		bt_addr_format(&ad->addr, addr);
	pthread_mutex_unlock(&rt_lock);
	return ad ? 0 : -1;
}

/* Whether an API call still uses ad or one of its sockets (a blocked accept, connect, close
 * holds its socket; a query or inquiry holds the adapter). */
static bool ad_in_use(const adapter *ad)
{
	if (ad->api_ops > 0)
		return true;
	for (const bsock *s = rt_socks; s; s = s->next)
		if (s->ad == ad && s->held > 0)
			return true;
	return false;
}

/* Every blocked call on ad fails (ENETDOWN, "the adapter was closed"): they see `closing` on
 * the broadcast and let go; nothing of ad is freed before the last one has. */
static void ad_wait_unused(adapter *ad)
{
	pthread_cond_broadcast(&rt_cond);
	while (ad_in_use(ad))
		pthread_cond_wait(&rt_cond, &rt_lock);
}

/* Ends every socket of ad, gives queued data up to `grace_ms` to leave, then frees it. */
static void ad_close(adapter *ad, int grace_ms)
{
	ad->closing = true; /* API calls waiting on the stack or a socket give up first */
	ad_wait_unused(ad);
	for (bsock *s = rt_socks; s; s = s->next) {
		if (s->ad != ad || s->zombie)
			continue;
		if (s->dlc || s->ch)
			s->app_eof = true; /* the loop closes the channel once it is flushed */
	}
	rt_wake(ad);
	uint64_t t0 = rt_now_ms();
	for (;;) {
		bool busy = false;
		for (bsock *s = rt_socks; s; s = s->next)
			busy |= s->ad == ad && !s->zombie && (s->dlc || s->ch);
		if (!busy && bt_stack_tx_idle(ad->st))
			break;
		if (ad->dead || rt_wait(grace_ms, t0) != 0)
			break;
	}
	/* Leave no link behind: on a UART or the user channel the controller outlives us, and a
	 * peer would hold the link until its supervision timeout. */
	hci *h = bt_stack_hci(ad->st);
	if (!ad->dead && hci_disconnect_all(h, HCI_ERR_REMOTE_POWER_OFF) > 0) {
		rt_wake(ad);
		uint64_t t1 = rt_now_ms();
		while (!ad->dead && hci_link_count(h) > 0 && rt_wait(1000, t1) == 0)
			;
	}
	for (adapter **pp = &rt_adapters; *pp; pp = &(*pp)->next) {
		if (*pp == ad) {
			*pp = ad->next;
			break;
		}
	}
	ad->stop = true;
	rt_wake(ad);
	ks_writer *keys = ad->keys; /* no pairing can post a key once the loop has stopped */
	ad->keys = NULL;
	pthread_mutex_unlock(&rt_lock);
	pthread_join(ad->thread, NULL);
	ks_writer_free(keys); /* keys still queued are written (each lock waited for within bounds) */
	pthread_mutex_lock(&rt_lock);
	ad->thread_started = false;
	ad_wait_unused(ad); /* a call that came in while the lock was free gives up too */
	for (bsock **pp = &rt_socks; *pp;) {
		bsock *s = *pp;
		if (s->ad == ad) {
			rt_sock_adapter_gone(s, -ENETDOWN);
			*pp = s->next;
			rt_sock_free(s);
		} else {
			pp = &s->next;
		}
	}
	ad_destroy(ad);
	bt_snoop_flush(rt_snoop);
	pthread_cond_broadcast(&rt_cond); /* a btsock_shutdown may wait for this close to end */
}

int btsock_adapter_close(const char *addr)
{
	rt_enter();
	bt_addr a;
	adapter *ad = NULL;
	if (!addr || !*addr) {
		for (ad = rt_adapters; ad && ad->closing; ad = ad->next)
			;
	} else if (bt_addr_parse(addr, &a) == 0)
		ad = rt_adapter_by_addr(&a);
	if (!ad) {
		pthread_mutex_unlock(&rt_lock);
		return rt_fail(ENODEV, "btsock_adapter_close: no open adapter has address '%s'", addr ? addr : "");
	}
	ad_close(ad, 2000);
	pthread_mutex_unlock(&rt_lock);
	return 0;
}

adapter *rt_adapter_arg(const char *addr, const char *call)
{
	bt_addr a;
	adapter *ad;
	if (!addr || !*addr)
		return rt_default_adapter();
	if (bt_addr_parse(addr, &a) < 0) {
		rt_fail(EINVAL, "%s: invalid adapter address '%s': expected six hex bytes like 01:23:45:67:89:AB", call,
			addr);
		return NULL;
	}
	if (!(ad = rt_adapter_by_addr(&a)))
		rt_fail(ENODEV, "%s: no open adapter has address %s", call, addr);
	return ad;
}

int btsock_adapter_info(const char *addr, struct btsock_adapter_info *info)
{
	rt_enter();
	adapter *ad = rt_adapter_arg(addr, "adapter_info");
	if (!ad) {
		pthread_mutex_unlock(&rt_lock);
		return -1;
	}
	const hci_info *hi = hci_get_info(bt_stack_hci(ad->st));
	memset(info, 0, sizeof *info);
	bt_addr_format(&hi->addr, info->addr);
	snprintf(info->name, sizeof info->name, "%.63s", ad->name);
	info->hci_version = hi->hci_version;
	info->hci_revision = hi->hci_revision;
	info->lmp_version = hi->lmp_version;
	info->manufacturer = hi->manufacturer;
	info->acl_mtu = hi->acl_mtu;
	info->acl_packets = hi->acl_pkts;
	pthread_mutex_unlock(&rt_lock);
	return 0;
}

int btsock_adapter_secure_connections(const char *addr)
{
	rt_enter();
	adapter *ad = rt_adapter_arg(addr, "adapter_secure_connections");
	if (!ad) {
		pthread_mutex_unlock(&rt_lock);
		return -1;
	}
	int on = hci_get_info(bt_stack_hci(ad->st))->secure_connections;
	pthread_mutex_unlock(&rt_lock);
	return on;
}

int btsock_set_snoop(const char *path)
{
	rt_enter();
	rt_snoop_set = true;
	snprintf(rt_snoop_path, sizeof rt_snoop_path, "%s", path ? path : "");
	int rc = 0;
	if (rt_snoop && !rt_adapters) {
		bt_snoop_close(rt_snoop);
		rt_snoop = NULL;
	}
	if (path && *path && !rt_snoop) {
		char err[256];
		rt_snoop = bt_snoop_open(path, err, sizeof err);
		if (!rt_snoop)
			rc = rt_fail(errno ? errno : EIO, "btsock_set_snoop: %s", err);
	}
	pthread_mutex_unlock(&rt_lock);
	return rc;
}

int btsock_set_keystore(const char *path)
{
	if (path && strlen(path) >= sizeof rt_keys_path)
		return rt_fail(ENAMETOOLONG, "btsock_set_keystore: path too long");
	rt_enter();
	rt_keys_set = true;
	snprintf(rt_keys_path, sizeof rt_keys_path, "%s", path ? path : "");
	pthread_mutex_unlock(&rt_lock);
	return 0;
}

void btsock_shutdown(void)
{
	pthread_once(&rt_once, rt_init);
	pthread_mutex_lock(&rt_lock);
	while (rt_adapters) {
		if (rt_adapters->closing) { /* another thread is closing it: wait for the end */
			pthread_cond_wait(&rt_cond, &rt_lock);
			continue;
		}
		ad_close(rt_adapters, 2000);
	}
	/* Sockets never bound to an adapter. */
	while (rt_socks) {
		bsock *s = rt_socks;
		rt_socks = s->next;
		rt_sock_free(s);
	}
	if (rt_snoop) {
		bt_snoop_close(rt_snoop);
		rt_snoop = NULL;
	}
	pthread_mutex_unlock(&rt_lock);
}
