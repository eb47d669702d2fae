/* l2cap.c - L2CAP basic mode (Core spec Vol 3 Part A): channels, the signalling channel, and
 * the link keepalive.
 *
 * Sections:
 *  - links: per-ACL-link state (signalling queue, identifiers, keepalive probe, idle timer)
 *  - channels: allocation, the channel state machine (one place changes state: chan_set),
 *    the transmit ring each channel owns
 *  - signalling: one handler per received command (Vol 3 Part A 4), Command Reject for
 *    anything unknown or malformed
 *  - data: PDUs in (by CID) and out (pulled by HCI, signalling first, then channels
 *    round-robin)
 *
 * Channel states (Vol 3 Part A 6 simplified to basic mode):
 *   WAIT_LINK -> WAIT_CONN_RSP -> CONFIG -> OPEN -> WAIT_DISC_RSP -> (freed)
 *   incoming:          accepted -> CONFIG -> OPEN
 *   any -> CLOSED (ended without the owner asking; freed at l2cap_close) */
#include "l2cap/l2cap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "hci/hci.h"
#include "hci/hci_defs.h"

#define MAX_LINKS 32
#define MAX_SERVERS 64
#define SIGQ_SIZE 4096
#define SIG_MTU 1024          /* our MTUsig (>= 48, Vol 3 Part A 4) */
#define MIN_SIG_MTU 48        /* Vol 3 Part A 4: the MTUsig every ACL-U peer supports */
#define SIG_HDR 4             /* Vol 3 Part A 4: code, identifier, length */
#define MIN_MTU 48            /* Vol 3 Part A 5.1: minimum MTU on ACL-U */
/* Our Configuration Response is the only answer whose size the peer's options steer: it is cut
 * to fit the smallest MTUsig a peer may have (Vol 3 Part A 4), so a peer always takes it. */
#define CONF_RSP_MAX (MIN_SIG_MTU - SIG_HDR)
#define ERTX_MS 60000         /* Vol 3 Part A 6.2.2: after a "pending" response */
#define IDLE_LINK_MS 2000     /* a link without channels is disconnected after this */
#define CONF_TRIES 3

/* Signalling codes, Vol 3 Part A 4 */
enum {
	SIG_CMD_REJECT = 0x01,
	SIG_CONN_REQ = 0x02,
	SIG_CONN_RSP = 0x03,
	SIG_CONF_REQ = 0x04,
	SIG_CONF_RSP = 0x05,
	SIG_DISC_REQ = 0x06,
	SIG_DISC_RSP = 0x07,
	SIG_ECHO_REQ = 0x08,
	SIG_ECHO_RSP = 0x09,
	SIG_INFO_REQ = 0x0a,
	SIG_INFO_RSP = 0x0b,
};
/* Connection Response results, Vol 3 Part A 4.3 */
enum {
	CONN_SUCCESS = 0x0000,
	CONN_PENDING = 0x0001,
	CONN_BAD_PSM = 0x0002,
	CONN_SECURITY = 0x0003,
	CONN_NO_RESOURCES = 0x0004,
	CONN_BAD_SCID = 0x0006,
	CONN_SCID_IN_USE = 0x0007,
};
/* Configuration Response results, Vol 3 Part A 4.5 */
enum { CONF_SUCCESS = 0, CONF_UNACCEPTABLE = 1, CONF_REJECTED = 2, CONF_UNKNOWN = 3, CONF_PENDING = 4 };
/* Command Reject reasons, Vol 3 Part A 4.1 */
enum { REJ_NOT_UNDERSTOOD = 0, REJ_MTU_EXCEEDED = 1, REJ_INVALID_CID = 2 };
/* Configuration options, Vol 3 Part A 5 */
enum { OPT_MTU = 0x01, OPT_FLUSH_TO = 0x02, OPT_QOS = 0x03, OPT_RFC = 0x04, OPT_FCS = 0x05,
       OPT_EFS = 0x06, OPT_EWS = 0x07, OPT_HINT = 0x80 };

typedef enum {
	CH_WAIT_LINK,
	CH_WAIT_CONN_RSP,
	CH_WAIT_SECURITY, /* refused with "security block": the link is being authenticated */
	CH_CONFIG,
	CH_OPEN,
	CH_WAIT_DISC_RSP,
	CH_CLOSED,
} chan_state;

typedef struct l2link l2link;

struct l2cap_chan {
	l2cap *l;
	l2cap_chan *next;
	chan_state state;
	bt_addr peer;
	uint16_t handle; /* valid once the link is up */
	uint16_t lcid, rcid, psm;
	uint16_t imtu, omtu;
	bool conf_in_done, conf_out_done;
	int conf_tries;
	uint8_t ident; /* of our outstanding request */
	bool sec_tried; /* the connection was retried after securing the link */
	uint8_t sec_late; /* retries after a refusal on a link already secured */
	int sec_reason;   /* hci_sec_reason of a security failure that ended the channel */
	uint8_t level;    /* l2cap_sec_level */
	bool feat_wait;   /* CH_WAIT_SECURITY until the peer's host features are known */
	bool acc_pending; /* incoming, answered "pending" while the link is secured */
	uint8_t acc_ident; /* the peer's Connection Request ident (acc_pending) */
	bt_timer rtx;
	const l2cap_chan_ops *ops;
	void *ctx;
	bool owner_gone;     /* l2cap_close called: no callbacks, free when done */
	bool notify_closed;  /* closed() owed to the owner */
	int close_err;
	/* Transmit ring of SDUs, each stored as [len le16][payload]. */
	uint8_t *tx;
	size_t tx_cap, tx_head, tx_used;
	bool want_writable;
};

struct l2link {
	bool used, up;
	uint16_t handle;
	bt_addr peer;
	uint8_t next_ident;
	uint8_t sigq[SIGQ_SIZE]; /* signalling commands to send, each [len le16][command] */
	size_t sig_head, sig_used;
	bt_timer probe;  /* keepalive: checks for idle_probe_ms of silence, then probe_timeout_ms */
	bool probing;
	uint64_t last_rx, probe_sent;
	bt_timer idle;   /* no channels: disconnect */
	l2cap *l;
};

typedef struct {
	uint16_t psm, imtu;
	uint8_t level; /* l2cap_sec_level */
	l2cap_accept_fn fn;
	void *ctx;
} l2server;

struct l2cap {
	l2cap_config cfg;
	hci *hci;
	bt_timers *timers;
	l2link links[MAX_LINKS];
	l2server servers[MAX_SERVERS];
	l2cap_chan *chans;
	unsigned rr; /* round-robin position for pull */
	unsigned rr_sig;
	/* While a PDU from the peer is handled, commands it causes (a Connection Response and our
	 * Configuration Request, a Configuration Request and Response) are queued and HCI is
	 * kicked once at the end, so that pull_sig() sends them in one C-frame. */
	bool in_acl, kick_due;
};

static void chan_notify_all(l2cap *l);
static void disc_req_send(l2cap_chan *ch);
static void link_check_idle(l2cap *l, l2link *k);
static void sig_conn_req_send(l2cap_chan *ch);
static void conf_req_send(l2cap_chan *ch);
static void chan_start(l2cap_chan *ch);
static void acc_finish(l2cap_chan *ch, int shortfall);
static void acc_secure(l2cap_chan *ch);
static int sec_shortfall(const l2cap_chan *ch);

/* ================================================================== links */

static l2link *link_find(l2cap *l, uint16_t handle)
{
	for (int i = 0; i < MAX_LINKS; i++)
		if (l->links[i].used && l->links[i].up && l->links[i].handle == handle)
			return &l->links[i];
	return NULL;
}

static void probe_fire(bt_timer *t, void *ctx);
static void idle_fire(bt_timer *t, void *ctx);

static l2link *link_add(l2cap *l, uint16_t handle, const bt_addr *peer)
{
	for (int i = 0; i < MAX_LINKS; i++) {
		l2link *k = &l->links[i];
		if (k->used)
			continue;
		memset(k, 0, sizeof *k);
		k->used = k->up = true;
		k->handle = handle;
		k->peer = *peer;
		k->next_ident = 1;
		k->l = l;
		k->last_rx = l->timers->now;
		bt_timer_init(&k->probe, probe_fire, k);
		bt_timer_init(&k->idle, idle_fire, k);
		return k;
	}
	return NULL;
}

static void link_remove(l2cap *l, l2link *k)
{
	bt_timer_stop(l->timers, &k->probe);
	bt_timer_stop(l->timers, &k->idle);
	k->used = k->up = false;
}

static uint8_t link_ident(l2link *k)
{
	uint8_t id = k->next_ident++;
	if (k->next_ident == 0) /* identifier 0x00 is never used, Vol 3 Part A 4 */
		k->next_ident = 1;
	return id;
}

/* Anything received is a sign of life. Only a timestamp: no timer work per packet. */
static void link_heard(l2cap *l, l2link *k) { k->last_rx = l->timers->now; }

/* Queues one signalling command (code, ident, data built by a bt_writer) for the link. A
 * command whose builder ran out of room (data->err) is never sent: builders size their buffers
 * by the spec, so that would be a bug here, not a peer's doing. Dropped too if the queue is full:
 * only a peer flooding us with requests fills it. */
static void sig_send(l2cap *l, l2link *k, uint8_t code, uint8_t ident, const bt_writer *data)
{
	size_t len = bt_writer_len(data);
	if (data->err || len > SIG_MTU - SIG_HDR)
		return;
	uint8_t hdr[2 + SIG_HDR]; /* queue entry length, then the command header */
	bt_writer w = bt_writer_init(hdr, sizeof hdr);
	bt_write_le16(&w, (uint16_t)(SIG_HDR + len));
	bt_write_u8(&w, code); /* Vol 3 Part A 4: code, identifier, length, data */
	bt_write_u8(&w, ident);
	bt_write_le16(&w, (uint16_t)len);
	size_t need = sizeof hdr + len;
	if (w.err || k->sig_used + need > SIGQ_SIZE)
		return;
	size_t tail = (k->sig_head + k->sig_used) % SIGQ_SIZE;
	for (size_t i = 0; i < need; i++) {
		uint8_t b = i < sizeof hdr ? hdr[i] : data->p[i - sizeof hdr];
		k->sigq[(tail + i) % SIGQ_SIZE] = b;
	}
	k->sig_used += need;
	if (l->in_acl)
		l->kick_due = true;
	else
		hci_kick(l->hci);
}

/* Command Reject, Vol 3 Part A 4.1: reason, then data of 0, 2 or 4 bytes by reason. */
static void cmd_reject(l2cap *l, l2link *k, uint8_t ident)
{
	uint8_t p[2];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, REJ_NOT_UNDERSTOOD);
	sig_send(l, k, SIG_CMD_REJECT, ident, &w);
}

static void cmd_reject_mtu(l2cap *l, l2link *k, uint8_t ident)
{
	uint8_t p[4];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, REJ_MTU_EXCEEDED);
	bt_write_le16(&w, SIG_MTU); /* the MTUsig we accept */
	sig_send(l, k, SIG_CMD_REJECT, ident, &w);
}

static void cmd_reject_cid(l2cap *l, l2link *k, uint8_t ident, uint16_t local, uint16_t remote)
{
	uint8_t p[6];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, REJ_INVALID_CID);
	bt_write_le16(&w, local); /* the CIDs as the request named them */
	bt_write_le16(&w, remote);
	sig_send(l, k, SIG_CMD_REJECT, ident, &w);
}

static void probe_fire(bt_timer *t, void *ctx)
{
	l2link *k = ctx;
	l2cap *l = k->l;
	(void)t;
	uint64_t now = l->timers->now;
	if (k->probing) {
		if (k->last_rx < k->probe_sent) {
			/* Silence after an Echo Request: the peer's controller is gone (btvirt
			 * drops a vanished peer's link without any event). We timed it out, as
			 * link supervision would (0x08): ETIMEDOUT, not a reset the peer sent. */
			hci_link_lost(l->hci, k->handle, -ETIMEDOUT);
			return;
		}
		k->probing = false;
	}
	uint64_t quiet = now - k->last_rx;
	if (quiet < l->cfg.idle_probe_ms) {
		bt_timer_start(l->timers, &k->probe, (uint32_t)(l->cfg.idle_probe_ms - quiet));
		return;
	}
	k->probing = true;
	k->probe_sent = now;
	bt_writer none = bt_writer_init(NULL, 0);
	sig_send(l, k, SIG_ECHO_REQ, link_ident(k), &none); /* Vol 3 Part A 4.8: no data */
	bt_timer_start(l->timers, &k->probe, l->cfg.probe_timeout_ms);
}

static void idle_fire(bt_timer *t, void *ctx)
{
	l2link *k = ctx;
	(void)t;
	if (hci_link_securing(k->l->hci, k->handle)) { /* pairing (a user may be deciding): later */
		bt_timer_start(k->l->timers, &k->idle, IDLE_LINK_MS);
		return;
	}
	if (hci_disconnect(k->l->hci, k->handle, HCI_ERR_REMOTE_USER_TERMINATED) == -ENOBUFS)
		bt_timer_start(k->l->timers, &k->idle, IDLE_LINK_MS); /* the command queue is full: later */
}

static bool link_has_chans(l2cap *l, uint16_t handle, const bt_addr *peer)
{
	for (l2cap_chan *c = l->chans; c; c = c->next)
		if (c->state != CH_CLOSED && bt_addr_eq(&c->peer, peer))
			return true;
	(void)handle;
	return false;
}

static void link_check_idle(l2cap *l, l2link *k)
{
	if (!k || !k->up)
		return;
	if (link_has_chans(l, k->handle, &k->peer)) {
		bt_timer_stop(l->timers, &k->idle);
		if (l->cfg.idle_probe_ms && !k->probe.armed)
			bt_timer_start(l->timers, &k->probe, l->cfg.idle_probe_ms);
	} else {
		bt_timer_stop(l->timers, &k->probe);
		k->probing = false;
		if (!k->idle.armed)
			bt_timer_start(l->timers, &k->idle, IDLE_LINK_MS);
	}
}

/* ================================================================== channels */

static void rtx_fire(bt_timer *t, void *ctx);

static bool cid_in_use(l2cap *l, uint16_t handle, uint16_t lcid)
{
	for (l2cap_chan *c = l->chans; c; c = c->next)
		if (c->handle == handle && c->lcid == lcid && c->state != CH_WAIT_LINK)
			return true;
	return false;
}

static uint16_t cid_alloc(l2cap *l, uint16_t handle)
{
	for (uint32_t cid = 0x0040; cid <= 0xffff; cid++) /* dynamic CIDs, Vol 3 Part A 2.1 */
		if (!cid_in_use(l, handle, (uint16_t)cid))
			return (uint16_t)cid;
	return 0;
}

static l2cap_chan *chan_new(l2cap *l, const bt_addr *peer, uint16_t psm, uint16_t imtu)
{
	l2cap_chan *ch = calloc(1, sizeof *ch);
	if (!ch)
		return NULL;
	ch->l = l;
	ch->peer = *peer;
	ch->psm = psm;
	ch->imtu = imtu;
	ch->omtu = L2CAP_DEFAULT_MTU;
	ch->handle = 0xffff;
	bt_timer_init(&ch->rtx, rtx_fire, ch);
	l2cap_chan **pp = &l->chans; /* append: requests go out in the order they were made */
	while (*pp)
		pp = &(*pp)->next;
	*pp = ch;
	return ch;
}

static void chan_free(l2cap_chan *ch)
{
	l2cap *l = ch->l;
	bt_timer_stop(l->timers, &ch->rtx);
	for (l2cap_chan **pp = &l->chans; *pp; pp = &(*pp)->next) {
		if (*pp == ch) {
			*pp = ch->next;
			break;
		}
	}
	uint16_t handle = ch->handle;
	free(ch->tx);
	free(ch);
	link_check_idle(l, link_find(l, handle));
}

static l2cap_chan *chan_by_lcid(l2cap *l, uint16_t handle, uint16_t lcid)
{
	for (l2cap_chan *c = l->chans; c; c = c->next)
		if (c->handle == handle && c->lcid == lcid && c->state != CH_WAIT_LINK && c->state != CH_CLOSED)
			return c;
	return NULL;
}

/* The one place a channel ends: owner told (later, by chan_notify_all) or channel freed. */
static void chan_end(l2cap_chan *ch, int err)
{
	bt_timer_stop(ch->l->timers, &ch->rtx);
	if (ch->owner_gone) {
		chan_free(ch);
		return;
	}
	ch->state = CH_CLOSED;
	ch->close_err = err;
	ch->notify_closed = true;
	link_check_idle(ch->l, link_find(ch->l, ch->handle));
}

/* Calls closed() for every channel that owes it, restarting the walk after each callback
 * because an owner may close other channels from inside it. */
static void chan_notify_all(l2cap *l)
{
	for (;;) {
		l2cap_chan *c = l->chans;
		while (c && !c->notify_closed)
			c = c->next;
		if (!c)
			return;
		c->notify_closed = false;
		if (c->ops && c->ops->closed)
			c->ops->closed(c->ctx, c, c->close_err);
	}
}

static int chan_alloc_tx(l2cap_chan *ch)
{
	size_t cap = 2u * (ch->omtu + 2u);
	if (cap < 4096)
		cap = 4096;
	uint8_t *tx = realloc(ch->tx, cap);
	if (!tx)
		return -ENOMEM;
	ch->tx = tx;
	ch->tx_cap = cap;
	ch->tx_head = ch->tx_used = 0;
	return 0;
}

/* Both directions configured: the channel opens (Vol 3 Part A 6.1.4 CONFIG -> OPEN). */
static void chan_maybe_open(l2cap_chan *ch)
{
	if (ch->state != CH_CONFIG || !ch->conf_in_done || !ch->conf_out_done)
		return;
	bt_timer_stop(ch->l->timers, &ch->rtx);
	if (chan_alloc_tx(ch) < 0) {
		/* No memory for the channel's transmit ring: it cannot open. It is disconnected
		 * (Vol 3 Part A 4.6) and stays its owner's: closed(-ENOMEM) tells the owner once the
		 * disconnection is done, and the owner's l2cap_close() then frees it. */
		ch->close_err = -ENOMEM;
		disc_req_send(ch);
		return;
	}
	ch->state = CH_OPEN;
	if (!ch->owner_gone && ch->ops && ch->ops->opened)
		ch->ops->opened(ch->ctx, ch);
}

static void disc_req_send(l2cap_chan *ch)
{
	l2link *k = link_find(ch->l, ch->handle);
	if (!k) {
		/* No link to send it on: the channel ends here (freed if its owner is gone,
		 * else closed() is owed to the owner, who frees it). */
		chan_end(ch, ch->close_err ? ch->close_err : -ENOTCONN);
		return;
	}
	uint8_t p[4];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, ch->rcid); /* Vol 3 Part A 4.6: destination CID, source CID */
	bt_write_le16(&w, ch->lcid);
	ch->ident = link_ident(k);
	ch->state = CH_WAIT_DISC_RSP;
	bt_timer_start(ch->l->timers, &ch->rtx, ch->l->cfg.rtx_ms);
	sig_send(ch->l, k, SIG_DISC_REQ, ch->ident, &w);
}

static void rtx_fire(bt_timer *t, void *ctx)
{
	l2cap_chan *ch = ctx;
	l2cap *l = ch->l; /* ch may be freed below (an owner-closed channel ending) */
	(void)t;
	switch (ch->state) {
	case CH_WAIT_CONN_RSP:
		chan_end(ch, -ETIMEDOUT);
		break;
	case CH_WAIT_SECURITY: /* a late retry (chan_secure) */
		sig_conn_req_send(ch);
		break;
	case CH_CONFIG: /* configuration never completed: give up on the channel */
		ch->close_err = -ETIMEDOUT;
		disc_req_send(ch);
		break;
	case CH_WAIT_DISC_RSP:
		chan_end(ch, ch->close_err ? ch->close_err : -ETIMEDOUT);
		break;
	default:
		break;
	}
	chan_notify_all(l);
}

/* ================================================================== public API */

l2cap *l2cap_new(const l2cap_config *cfg, hci *h, bt_timers *timers)
{
	l2cap *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->cfg = *cfg;
	if (!l->cfg.rtx_ms)
		l->cfg.rtx_ms = 5000;
	if (!l->cfg.idle_probe_ms)
		l->cfg.idle_probe_ms = 5000;
	if (!l->cfg.probe_timeout_ms)
		l->cfg.probe_timeout_ms = 5000;
	l->hci = h;
	l->timers = timers;
	return l;
}

void l2cap_free(l2cap *l)
{
	if (!l)
		return;
	while (l->chans)
		chan_free(l->chans);
	for (int i = 0; i < MAX_LINKS; i++)
		if (l->links[i].used)
			link_remove(l, &l->links[i]);
	free(l);
}

static bool psm_valid(uint16_t psm)
{
	/* Vol 3 Part A 4.2: odd, and the least significant bit of the upper octet 0. */
	return (psm & 0x0101) == 0x0001;
}

static l2server *server_find(l2cap *l, uint16_t psm)
{
	for (int i = 0; i < MAX_SERVERS; i++)
		if (l->servers[i].fn && l->servers[i].psm == psm)
			return &l->servers[i];
	return NULL;
}

int l2cap_listen(l2cap *l, uint16_t psm, uint16_t imtu, l2cap_accept_fn fn, void *srv_ctx)
{
	return l2cap_listen_sec(l, psm, imtu, L2CAP_SEC_LOW, fn, srv_ctx);
}

int l2cap_listen_sec(l2cap *l, uint16_t psm, uint16_t imtu, l2cap_sec_level level, l2cap_accept_fn fn,
		     void *srv_ctx)
{
	if (level > L2CAP_SEC_FIPS)
		return -EINVAL;
	if (!fn || imtu < MIN_MTU || imtu > L2CAP_MAX_MTU)
		return -EINVAL;
	if (psm == 0) {
		for (uint32_t p = L2CAP_PSM_DYN_FIRST; p <= 0xffff; p += 2) {
			if (psm_valid((uint16_t)p) && !server_find(l, (uint16_t)p)) {
				psm = (uint16_t)p;
				break;
			}
		}
		if (psm == 0)
			return -EADDRINUSE;
	}
	if (!psm_valid(psm))
		return -EINVAL;
	if (server_find(l, psm))
		return -EADDRINUSE;
	for (int i = 0; i < MAX_SERVERS; i++) {
		l2server *s = &l->servers[i];
		if (!s->fn) {
			s->psm = psm;
			s->imtu = imtu;
			s->level = (uint8_t)level;
			s->fn = fn;
			s->ctx = srv_ctx;
			return psm;
		}
	}
	return -ENOBUFS;
}

void l2cap_unlisten(l2cap *l, uint16_t psm)
{
	l2server *s = server_find(l, psm);
	if (s)
		memset(s, 0, sizeof *s);
}

int l2cap_connect(l2cap *l, const bt_addr *peer, uint16_t psm, uint16_t imtu,
		  const l2cap_chan_ops *ops, void *ctx, l2cap_chan **out)
{
	return l2cap_connect_sec(l, peer, psm, imtu, L2CAP_SEC_LOW, ops, ctx, out);
}

int l2cap_connect_sec(l2cap *l, const bt_addr *peer, uint16_t psm, uint16_t imtu, l2cap_sec_level level,
		      const l2cap_chan_ops *ops, void *ctx, l2cap_chan **out)
{
	if (!psm_valid(psm) || imtu < MIN_MTU || imtu > L2CAP_MAX_MTU || level > L2CAP_SEC_FIPS)
		return -EINVAL;
	int up = hci_connect(l->hci, peer);
	if (up < 0)
		return up;
	l2cap_chan *ch = chan_new(l, peer, psm, imtu);
	if (!ch)
		return -ENOMEM;
	ch->ops = ops;
	ch->ctx = ctx;
	ch->level = (uint8_t)level;
	ch->state = CH_WAIT_LINK;
	*out = ch;
	if (up == 1) {
		ch->handle = (uint16_t)hci_link_handle(l->hci, peer);
		chan_start(ch);
		if (ch->state == CH_CLOSED) { /* no CID left on the link, or cannot secure it */
			ch->notify_closed = false;
			chan_free(ch);
			return -ENOBUFS;
		}
	}
	return 0;
}

int l2cap_send(l2cap_chan *ch, const uint8_t *p, size_t len)
{
	if (ch->state != CH_OPEN)
		return ch->state == CH_CLOSED ? -ECONNRESET : -ENOTCONN;
	if (len > ch->omtu)
		return -EMSGSIZE;
	if (ch->tx_cap - ch->tx_used < len + 2) {
		ch->want_writable = true;
		return -EAGAIN;
	}
	size_t tail = (ch->tx_head + ch->tx_used) % ch->tx_cap;
	uint8_t hdr[2];
	put_le16(hdr, (uint16_t)len);
	for (size_t i = 0; i < 2; i++)
		ch->tx[(tail + i) % ch->tx_cap] = hdr[i];
	tail = (tail + 2) % ch->tx_cap;
	size_t first = ch->tx_cap - tail < len ? ch->tx_cap - tail : len;
	memcpy(ch->tx + tail, p, first);
	memcpy(ch->tx, p + first, len - first);
	ch->tx_used += len + 2;
	hci_kick(ch->l->hci);
	return 0;
}

bool l2cap_can_send(l2cap_chan *ch, size_t len)
{
	if (ch->state != CH_OPEN)
		return false;
	if (ch->tx_cap - ch->tx_used < len + 2) {
		ch->want_writable = true;
		return false;
	}
	return true;
}

void l2cap_close(l2cap_chan *ch)
{
	if (!ch)
		return;
	ch->owner_gone = true;
	ch->notify_closed = false;
	switch (ch->state) {
	case CH_CONFIG:
	case CH_OPEN:
		disc_req_send(ch);
		break;
	case CH_WAIT_CONN_RSP: /* finished when the response arrives (or RTX) */
	case CH_WAIT_DISC_RSP:
		break;
	case CH_WAIT_LINK:
	case CH_WAIT_SECURITY: /* the peer refused it: nothing to tear down there */
	case CH_CLOSED:
		chan_free(ch);
		break;
	}
}

int l2cap_chan_sec_reason(const l2cap_chan *ch)
{
	return ch->sec_reason;
}

uint16_t l2cap_chan_psm(const l2cap_chan *ch) { return ch->psm; }
uint16_t l2cap_chan_imtu(const l2cap_chan *ch) { return ch->imtu; }
uint16_t l2cap_chan_omtu(const l2cap_chan *ch) { return ch->omtu; }
const bt_addr *l2cap_chan_peer(const l2cap_chan *ch) { return &ch->peer; }
uint16_t l2cap_chan_handle(const l2cap_chan *ch) { return ch->handle; }
bool l2cap_chan_is_open(const l2cap_chan *ch) { return ch->state == CH_OPEN; }
void l2cap_chan_set_ops(l2cap_chan *ch, const l2cap_chan_ops *ops, void *ctx)
{
	ch->ops = ops;
	ch->ctx = ctx;
}

/* ================================================================== HCI events */

void l2cap_link_up(l2cap *l, uint16_t handle, const bt_addr *peer, bool initiator)
{
	(void)initiator;
	l2link *k = link_add(l, handle, peer);
	if (!k) {
		hci_disconnect(l->hci, handle, HCI_ERR_REMOTE_USER_TERMINATED);
		return;
	}
	for (l2cap_chan *c = l->chans; c; c = c->next) {
		if (c->state == CH_WAIT_LINK && bt_addr_eq(&c->peer, peer)) {
			c->handle = handle;
			chan_start(c);
		}
	}
	link_check_idle(l, k);
	chan_notify_all(l);
}

void l2cap_link_down(l2cap *l, uint16_t handle, const bt_addr *peer, int err)
{
	l2link *k = link_find(l, handle);
	if (k)
		link_remove(l, k);
	/* Every channel on the link ends; restart the walk after each free. */
	for (bool again = true; again;) {
		again = false;
		for (l2cap_chan *c = l->chans; c; c = c->next) {
			bool on_link = c->handle == handle && c->state != CH_WAIT_LINK;
			if (on_link && c->state != CH_CLOSED) {
				chan_end(c, err ? err : -ECONNRESET);
				again = true;
				break;
			}
		}
	}
	(void)peer;
	chan_notify_all(l);
}

/* The link's securing ended: each channel waiting for it goes on, or ends. */
static void chan_secured(l2cap_chan *ch, int err, int reason)
{
	if (ch->acc_pending) {
		acc_finish(ch, err ? (err == -ETIMEDOUT ? HCI_SEC_TIMEOUT : reason) : sec_shortfall(ch));
		return;
	}
	if (err) {
		ch->sec_reason = reason ? reason : HCI_SEC_PEER_AUTH_FAILURE;
		chan_end(ch, err == -ETIMEDOUT ? -ETIMEDOUT : -EACCES);
		return;
	}
	int weak = sec_shortfall(ch);
	if (weak || ch->owner_gone) {
		ch->sec_reason = weak;
		chan_end(ch, -EACCES);
		return;
	}
	sig_conn_req_send(ch);
}

void l2cap_link_secured(l2cap *l, uint16_t handle, int err, int reason)
{
	for (bool again = true; again;) {
		again = false;
		for (l2cap_chan *c = l->chans; c; c = c->next) {
			if (c->state != CH_WAIT_SECURITY || c->handle != handle)
				continue;
			if (c->feat_wait) {
				if (err)
					continue; /* its own turn comes with the features */
				c->feat_wait = false;
			}
			chan_secured(c, err, reason);
			again = true;
			break;
		}
	}
	chan_notify_all(l);
}

void l2cap_link_features(l2cap *l, uint16_t handle)
{
	for (bool again = true; again;) {
		again = false;
		for (l2cap_chan *c = l->chans; c; c = c->next) {
			if (c->state != CH_WAIT_SECURITY || c->handle != handle || !c->feat_wait)
				continue;
			c->feat_wait = false;
			chan_start(c);
			again = true;
			break;
		}
	}
	chan_notify_all(l);
}

void l2cap_connect_failed(l2cap *l, const bt_addr *peer, int err)
{
	for (bool again = true; again;) {
		again = false;
		for (l2cap_chan *c = l->chans; c; c = c->next) {
			if (c->state == CH_WAIT_LINK && bt_addr_eq(&c->peer, peer)) {
				chan_end(c, err);
				again = true;
				break;
			}
		}
	}
	chan_notify_all(l);
}

/* ================================================================== signalling out */

static void sig_conn_req_send(l2cap_chan *ch)
{
	l2cap *l = ch->l;
	l2link *k = link_find(l, ch->handle);
	ch->lcid = cid_alloc(l, ch->handle);
	if (!k || !ch->lcid) {
		chan_end(ch, -ENOBUFS);
		return;
	}
	uint8_t p[4];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, ch->psm); /* Vol 3 Part A 4.2: PSM, source CID */
	bt_write_le16(&w, ch->lcid);
	ch->ident = link_ident(k);
	ch->state = CH_WAIT_CONN_RSP;
	bt_timer_start(l->timers, &ch->rtx, l->cfg.rtx_ms);
	sig_send(l, k, SIG_CONN_REQ, ch->ident, &w);
	link_check_idle(l, k);
}

static void conf_req_send(l2cap_chan *ch)
{
	l2link *k = link_find(ch->l, ch->handle);
	if (!k)
		return;
	uint8_t p[8];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, ch->rcid); /* Vol 3 Part A 4.4: destination CID, flags, options */
	bt_write_le16(&w, 0);
	bt_write_u8(&w, OPT_MTU); /* 5.1: our incoming MTU */
	bt_write_u8(&w, 2);
	bt_write_le16(&w, ch->imtu);
	ch->ident = link_ident(k);
	ch->conf_tries++;
	bt_timer_start(ch->l->timers, &ch->rtx, ch->l->cfg.rtx_ms);
	sig_send(ch->l, k, SIG_CONF_REQ, ch->ident, &w);
}

static void conn_rsp_send_status(l2cap *l, l2link *k, uint8_t ident, uint16_t dcid, uint16_t scid,
				 uint16_t result, uint16_t status);

static void conn_rsp_send(l2cap *l, l2link *k, uint8_t ident, uint16_t dcid, uint16_t scid, uint16_t result)
{
	conn_rsp_send_status(l, k, ident, dcid, scid, result, 0);
}

static void conn_rsp_send_status(l2cap *l, l2link *k, uint8_t ident, uint16_t dcid, uint16_t scid,
				 uint16_t result, uint16_t status)
{
	uint8_t p[8];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, dcid); /* Vol 3 Part A 4.3: destination CID, source CID, result, status */
	bt_write_le16(&w, scid);
	bt_write_le16(&w, result);
	bt_write_le16(&w, status);
	sig_send(l, k, SIG_CONN_RSP, ident, &w);
}

/* ================================================================== signalling in */

/* Connection Request, Vol 3 Part A 4.2. */
static void on_conn_req(l2cap *l, l2link *k, uint8_t ident, bt_reader *r)
{
	uint16_t psm = bt_read_le16(r);
	uint16_t scid = bt_read_le16(r);
	if (r->err)
		return;
	l2server *s = server_find(l, psm);
	if (!s) {
		conn_rsp_send(l, k, ident, 0, scid, CONN_BAD_PSM);
		return;
	}
	if (scid < 0x0040) {
		conn_rsp_send(l, k, ident, 0, scid, CONN_BAD_SCID);
		return;
	}
	for (l2cap_chan *c = l->chans; c; c = c->next) {
		if (c->handle == k->handle && c->rcid == scid && c->state != CH_CLOSED &&
		    c->state != CH_WAIT_LINK && c->state != CH_WAIT_CONN_RSP) {
			conn_rsp_send(l, k, ident, 0, scid, CONN_SCID_IN_USE);
			return;
		}
	}
	l2cap_chan *ch = chan_new(l, &k->peer, psm, s->imtu);
	if (!ch) {
		conn_rsp_send(l, k, ident, 0, scid, CONN_NO_RESOURCES);
		return;
	}
	ch->handle = k->handle;
	ch->rcid = scid;
	ch->lcid = cid_alloc(l, k->handle);
	ch->level = s->level;
	ch->acc_ident = ident;
	int shortfall = ch->lcid && psm != L2CAP_PSM_SDP ? sec_shortfall(ch) : 0;
	if (shortfall && !hci_link_encrypted(l->hci, k->handle)) {
		acc_secure(ch);
		return;
	}
	/* Encrypted, but with a weaker key than the level: refused at once. As acceptor we do not
	 * re-pair (a failed re-authentication makes peers drop the whole link); the initiator
	 * may upgrade and ask again. */
	acc_finish(ch, shortfall);
}

/* An incoming channel on a link below its server's level: "pending, authentication pending"
 * (Vol 3 Part A 4.3, result 0x0001, status 0x0001) while the link is secured. It has no owner
 * until it is accepted (freed silently if the link goes). */
static void acc_secure(l2cap_chan *ch)
{
	l2link *k = link_find(ch->l, ch->handle);
	ch->acc_pending = true;
	ch->owner_gone = true;
	ch->state = CH_WAIT_SECURITY;
	ch->ident = 0;
	conn_rsp_send_status(ch->l, k, ch->acc_ident, ch->lcid, ch->rcid, CONN_PENDING, 0x0001);
	int rc = hci_secure_link_mitm(ch->l->hci, ch->handle, ch->level >= L2CAP_SEC_HIGH);
	if (rc != 0)
		acc_finish(ch, rc == 1 ? sec_shortfall(ch) : HCI_SEC_PEER_AUTH_FAILURE);
}

/* Answers an incoming Connection Request: refused with "security block" (0x0003) if the link
 * fell short of the level (shortfall, an hci_sec_reason), else handed to the server's owner
 * and accepted, then configured. */
static void acc_finish(l2cap_chan *ch, int shortfall)
{
	l2cap *l = ch->l;
	l2link *k = link_find(l, ch->handle);
	l2server *s = server_find(l, ch->psm);
	uint16_t scid = ch->rcid;
	uint8_t ident = ch->acc_ident;
	ch->acc_pending = false;
	if (!k) {
		chan_end(ch, -ENOTCONN);
		return;
	}
	if (shortfall || !s) {
		ch->owner_gone = true;
		chan_free(ch);
		conn_rsp_send(l, k, ident, 0, scid, shortfall ? CONN_SECURITY : CONN_BAD_PSM);
		return;
	}
	ch->state = CH_CONFIG; /* state while the owner decides; not yet visible to the peer */
	ch->owner_gone = false;
	const l2cap_chan_ops *ops = NULL;
	void *ctx = NULL;
	if (!ch->lcid || s->fn(s->ctx, ch, &ops, &ctx) < 0) {
		uint16_t lcid = ch->lcid;
		ch->owner_gone = true;
		chan_free(ch);
		(void)lcid;
		conn_rsp_send(l, k, ident, 0, scid, CONN_NO_RESOURCES);
		return;
	}
	ch->ops = ops;
	ch->ctx = ctx;
	conn_rsp_send(l, k, ident, ch->lcid, scid, CONN_SUCCESS);
	conf_req_send(ch);
	link_check_idle(l, k);
}

/* Whether ch has a request on the link that is still unanswered (ch->ident names it). */
static bool chan_awaits_answer(const l2cap_chan *c)
{
	return c->state == CH_WAIT_CONN_RSP || c->state == CH_WAIT_DISC_RSP ||
	       (c->state == CH_CONFIG && !c->conf_out_done);
}

/* The channel whose request `ident` is unanswered: a response carries its request's identifier
 * (Vol 3 Part A 4). A channel keeps the identifier of its last request after the answer, and
 * identifiers wrap after 255 requests on a link, so only channels still waiting count: an
 * answer must never be taken for another channel's long-answered request. */
static l2cap_chan *chan_by_ident(l2cap *l, uint16_t handle, uint8_t ident)
{
	for (l2cap_chan *c = l->chans; c; c = c->next)
		if (c->handle == handle && c->ident == ident && chan_awaits_answer(c))
			return c;
	return NULL;
}

/* Connection Response, Vol 3 Part A 4.3. */
/* Security Mode 4 (Vol 3 Part C 5.2.2): a peer that requires an authenticated, encrypted
 * link refuses the channel with "security block" (Vol 3 Part A 4.3, result 0x0003) until the
 * initiator has secured the link. Secure it (pairing through GAP's replies), then ask once
 * more; l2cap_link_secured() resumes. */
#define SEC_LATE_MS 300
#define SEC_LATE_MAX 2

/* What the link lacks for the channel's level: 0, or the hci_sec_reason a failure would have
 * (Vol 4 Part E 7.7.24 key types: 5/8 authenticated, 7/8 Secure Connections). */
static int link_shortfall(hci *h, uint16_t handle, uint8_t level)
{
	if (level == L2CAP_SEC_LOW)
		return 0;
	if (!hci_link_encrypted(h, handle))
		return HCI_SEC_ENCRYPTION_REFUSED;
	int kt = hci_link_key_type(h, handle);
	if (level == L2CAP_SEC_HIGH && kt != 5 && kt != 8)
		return HCI_SEC_WEAK_KEY;
	if (level == L2CAP_SEC_FIPS && kt != 7 && kt != 8)
		return HCI_SEC_WEAK_KEY;
	return 0;
}

static int sec_shortfall(const l2cap_chan *ch)
{
	return link_shortfall(ch->l->hci, ch->handle, ch->level);
}

int l2cap_chan_sec_shortfall(const l2cap_chan *ch, l2cap_sec_level level)
{
	return link_shortfall(ch->l->hci, ch->handle, (uint8_t)level);
}

int l2cap_chan_pairing_failure(const l2cap_chan *ch)
{
	return hci_link_pairing_failure(ch->l->hci, ch->handle);
}

int l2cap_chan_secure(l2cap_chan *ch, l2cap_sec_level level)
{
	return hci_secure_link_mitm(ch->l->hci, ch->handle, level >= L2CAP_SEC_HIGH);
}

/* Whether an outgoing channel must have the link secured before its Connection Request: 1,
 * 0, or -EAGAIN while the peer's host features are being read. Not for SDP; for the others
 * whenever the level asks more than the link has, and at LOW when both hosts support SSP
 * (Vol 3 Part C 5.2.2: then every channel but SDP's needs encryption). */
static int out_needs_security(const l2cap_chan *ch)
{
	hci *h = ch->l->hci;
	if (ch->psm == L2CAP_PSM_SDP)
		return 0;
	if (ch->level != L2CAP_SEC_LOW)
		return hci_link_encrypted(h, ch->handle) && !sec_shortfall(ch) ? 0 : 1;
	if (hci_link_encrypted(h, ch->handle))
		return 0;
	int ssp = hci_link_peer_ssp(h, ch->handle);
	return ssp == -EAGAIN ? -EAGAIN : ssp == 1;
}

/* An outgoing channel whose link is up: secured first if it needs it, then its Connection
 * Request. A link already encrypted yet short of the level (a weaker key) is refused. */
static void chan_start(l2cap_chan *ch)
{
	int need = out_needs_security(ch);
	if (need == 0) {
		sig_conn_req_send(ch);
		return;
	}
	bt_timer_stop(ch->l->timers, &ch->rtx);
	ch->state = CH_WAIT_SECURITY;
	ch->ident = 0;
	if (need < 0) {
		ch->feat_wait = true; /* l2cap_link_features() resumes */
		return;
	}
	ch->sec_tried = true;
	int rc = hci_secure_link_mitm(ch->l->hci, ch->handle, ch->level >= L2CAP_SEC_HIGH);
	if (rc == 1) {
		ch->sec_reason = sec_shortfall(ch);
		chan_end(ch, -EACCES);
	} else if (rc < 0) {
		ch->sec_reason = HCI_SEC_PEER_AUTH_FAILURE;
		chan_end(ch, -EACCES);
	}
}

static void chan_secure(l2cap_chan *ch)
{
	if (ch->sec_tried) {
		/* Refused again just after we secured the link: the peer's host may not have taken
		 * in its Encryption Change yet (the kernel over btvirt does this). Ask again a
		 * little later, SEC_LATE_MAX times at most, then it is a refusal. */
		if (ch->sec_late < SEC_LATE_MAX && hci_link_encrypted(ch->l->hci, ch->handle)) {
			ch->sec_late++;
			ch->state = CH_WAIT_SECURITY;
			ch->ident = 0;
			bt_timer_start(ch->l->timers, &ch->rtx, SEC_LATE_MS);
			return;
		}
		ch->sec_reason = HCI_SEC_PEER_AUTH_FAILURE;
		chan_end(ch, -EACCES);
		return;
	}
	ch->sec_tried = true;
	bt_timer_stop(ch->l->timers, &ch->rtx);
	ch->state = CH_WAIT_SECURITY;
	ch->ident = 0;
	int rc = hci_secure_link(ch->l->hci, ch->handle);
	if (rc != 0) { /* 1: already encrypted, yet refused; < 0: cannot even try */
		ch->sec_reason = HCI_SEC_PEER_AUTH_FAILURE;
		chan_end(ch, -EACCES);
	}
}

static void on_conn_rsp(l2cap *l, l2link *k, uint8_t ident, bt_reader *r)
{
	uint16_t dcid = bt_read_le16(r);
	uint16_t scid = bt_read_le16(r);
	uint16_t result = bt_read_le16(r);
	bt_read_le16(r); /* status */
	if (r->err)
		return;
	l2cap_chan *ch = NULL; /* ours: waiting for this answer, and named by its Source CID */
	for (l2cap_chan *c = l->chans; c && !ch; c = c->next)
		if (c->handle == k->handle && c->ident == ident && c->state == CH_WAIT_CONN_RSP && c->lcid == scid)
			ch = c;
	if (!ch)
		return;
	switch (result) {
	case CONN_SUCCESS:
		if (dcid < 0x0040) { /* a peer bug: cannot address the channel */
			chan_end(ch, -EPROTO);
			return;
		}
		ch->rcid = dcid;
		if (ch->owner_gone) {
			disc_req_send(ch);
			return;
		}
		ch->state = CH_CONFIG;
		conf_req_send(ch);
		break;
	case CONN_PENDING:
		bt_timer_start(l->timers, &ch->rtx, ERTX_MS);
		break;
	case CONN_BAD_PSM:
		chan_end(ch, -ECONNREFUSED);
		break;
	case CONN_SECURITY:
		chan_secure(ch);
		break;
	case CONN_NO_RESOURCES:
		chan_end(ch, -ECONNREFUSED);
		break;
	default:
		chan_end(ch, -ECONNREFUSED);
		break;
	}
}

/* A Configuration Request's options (Vol 3 Part A 4.4, options of 5.x), as read. */
typedef struct {
	uint16_t result;     /* CONF_* to answer */
	uint16_t mtu;        /* the peer's MTU, as asked (5.1), or the current one */
	bool rfc_other;      /* an RFC option asked for a mode other than basic (5.4) */
	uint8_t seen[16];    /* unknown non-hint types met (listed once each) */
	uint8_t unknown[CONF_RSP_MAX - 6]; /* unknown non-hint types, as many as fit the answer */
	size_t nunknown;
} conf_opts;

/* The fixed length of each option we know (5.1-5.7); any other length is malformed. */
static int opt_len(uint8_t type)
{
	switch (type) {
	case OPT_MTU: return 2;      /* 5.1 */
	case OPT_FLUSH_TO: return 2; /* 5.2 */
	case OPT_QOS: return 22;     /* 5.3 */
	case OPT_RFC: return 9;      /* 5.4 */
	case OPT_FCS: return 1;      /* 5.5 */
	case OPT_EFS: return 16;     /* 5.6 */
	case OPT_EWS: return 2;      /* 5.7 */
	default: return -1;
	}
}

static bool bit_test_set(uint8_t *set, uint8_t bit)
{
	bool was = set[bit / 8] & (1u << (bit % 8));
	set[bit / 8] |= (uint8_t)(1u << (bit % 8));
	return was;
}

/* Reads the options. The answer, by precedence (4.5):
 *  - "Failure - rejected" (0x0002): an option runs past the command (truncated) or a known
 *    option has the wrong length; nothing of such a request is applied.
 *  - "Failure - unknown options" (0x0003): the non-hint types we do not know, each listed once
 *    and as many as fit CONF_RSP_MAX; hints (bit 7, 5) are skipped.
 *  - "Failure - unacceptable parameters" (0x0001): a mode other than basic (we propose basic
 *    mode, once, 5.4) and/or an MTU below 48 (we propose 48, 5.1).
 *  - otherwise success.
 * A repeated option (two MTUs, RFC basic then ERTM, ...) is read in order and the last value
 * counts, as when a request is continued over several commands (4.4, C flag: later options
 * add to or update earlier ones); 4.4 does not forbid a repeat. So seven RFC options asking for
 * ERTM get one RFC option (basic) back, and "MTU 20, MTU 100" is accepted with 100. */
static void conf_parse(bt_reader *r, conf_opts *o)
{
	while (bt_reader_left(r) > 0) {
		uint8_t type = bt_read_u8(r);
		uint8_t olen = bt_read_u8(r);
		const uint8_t *v = bt_read_bytes(r, olen);
		if (r->err) { /* option header or value runs past the command */
			o->result = CONF_REJECTED;
			return;
		}
		uint8_t t = type & (uint8_t)~OPT_HINT;
		int want = opt_len(t);
		if (want < 0) { /* unknown: a hint is skipped, a type is listed once */
			if (!(type & OPT_HINT) && !bit_test_set(o->seen, type) &&
			    o->nunknown < sizeof o->unknown)
				o->unknown[o->nunknown++] = type;
			continue;
		}
		if (olen != want) { /* malformed */
			o->result = CONF_REJECTED;
			return;
		}
		if (t == OPT_MTU)
			o->mtu = get_le16(v);
		else if (t == OPT_RFC)
			o->rfc_other = v[0] != 0x00; /* 5.4: mode octet, 0x00 basic */
		/* Flush timeout, QoS, FCS, EFS, EWS: accepted as given; basic mode does not use them. */
	}
	if (o->nunknown)
		o->result = CONF_UNKNOWN;
	else if (o->rfc_other || o->mtu < MIN_MTU)
		o->result = CONF_UNACCEPTABLE;
}

/* Configuration Response, 4.5: source CID, flags, result, config. Built in CONF_RSP_MAX bytes,
 * which the longest answer (6 + 38 unknown types, or 6 + RFC 11 + MTU 4) fits. */
static void conf_rsp_send(l2cap *l, l2link *k, uint8_t ident, uint16_t scid, uint16_t flags, const conf_opts *o)
{
	uint8_t p[CONF_RSP_MAX];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, scid);
	bt_write_le16(&w, flags & 0x0001);
	bt_write_le16(&w, o->result);
	if (o->result == CONF_UNKNOWN) {
		bt_write_bytes(&w, o->unknown, o->nunknown);
	} else if (o->result == CONF_UNACCEPTABLE) {
		if (o->rfc_other) { /* 5.4: basic mode, other fields 0 */
			bt_write_u8(&w, OPT_RFC);
			bt_write_u8(&w, 9);
			bt_write_zeros(&w, 9);
		}
		if (o->mtu < MIN_MTU) {
			bt_write_u8(&w, OPT_MTU);
			bt_write_u8(&w, 2);
			bt_write_le16(&w, MIN_MTU);
		}
	}
	sig_send(l, k, SIG_CONF_RSP, ident, &w);
}

/* Keeps the transmit ring able to hold an SDU of the peer's MTU after a reconfiguration of an
 * OPEN channel raised it, keeping what is queued. Returns false if memory ran out. */
static bool chan_fit_tx(l2cap_chan *ch, uint16_t omtu)
{
	size_t want = 2u * (omtu + 2u);
	if (ch->tx_cap >= want)
		return true;
	uint8_t *tx = malloc(want);
	if (!tx)
		return false;
	for (size_t i = 0; i < ch->tx_used; i++)
		tx[i] = ch->tx[(ch->tx_head + i) % ch->tx_cap];
	free(ch->tx);
	ch->tx = tx;
	ch->tx_cap = want;
	ch->tx_head = 0;
	return true;
}

/* Configuration Request, Vol 3 Part A 4.4. Basic mode only. In CONFIG it configures the
 * peer's direction; in OPEN it is a reconfiguration (7.1): answered the same way, and only a
 * successful one changes anything (the new MTU applies to SDUs sent from then on). A refused
 * one leaves the channel as it was. */
static void on_conf_req(l2cap *l, l2link *k, uint8_t ident, bt_reader *r)
{
	uint16_t dcid = bt_read_le16(r);
	uint16_t flags = bt_read_le16(r);
	if (r->err)
		return;
	l2cap_chan *ch = chan_by_lcid(l, k->handle, dcid);
	if (!ch || (ch->state != CH_CONFIG && ch->state != CH_OPEN)) {
		cmd_reject_cid(l, k, ident, dcid, 0);
		return;
	}
	conf_opts o = { .result = CONF_SUCCESS, .mtu = ch->omtu };
	conf_parse(r, &o);
	uint16_t mtu = o.mtu > L2CAP_MAX_MTU ? L2CAP_MAX_MTU : o.mtu;
	if (o.result == CONF_SUCCESS && ch->state == CH_OPEN && !chan_fit_tx(ch, mtu))
		o.result = CONF_REJECTED; /* no memory for the larger ring: keep the old MTU */
	conf_rsp_send(l, k, ident, ch->rcid, flags, &o);
	if (o.result != CONF_SUCCESS)
		return;
	ch->omtu = mtu;
	if (!(flags & 0x0001)) /* no continuation: this direction is configured */
		ch->conf_in_done = true;
	chan_maybe_open(ch);
}

/* Configuration Response, Vol 3 Part A 4.5. */
static void on_conf_rsp(l2cap *l, l2link *k, uint8_t ident, bt_reader *r)
{
	uint16_t scid = bt_read_le16(r);
	uint16_t flags = bt_read_le16(r);
	uint16_t result = bt_read_le16(r);
	if (r->err)
		return;
	l2cap_chan *ch = chan_by_lcid(l, k->handle, scid);
	if (!ch || ch->state != CH_CONFIG || ch->ident != ident)
		return;
	switch (result) {
	case CONF_SUCCESS:
		if (flags & 0x0001)
			return; /* more responses follow */
		bt_timer_stop(l->timers, &ch->rtx);
		ch->conf_out_done = true;
		chan_maybe_open(ch);
		break;
	case CONF_PENDING:
		bt_timer_start(l->timers, &ch->rtx, ERTX_MS);
		break;
	case CONF_UNACCEPTABLE:
		/* The peer proposes values: take an MTU it wants if we can, then retry. */
		while (bt_reader_left(r) >= 2) {
			uint8_t type = bt_read_u8(r);
			uint8_t olen = bt_read_u8(r);
			const uint8_t *v = bt_read_bytes(r, olen);
			if (r->err)
				break;
			if ((type & 0x7f) == OPT_MTU && olen == 2) {
				uint16_t m = get_le16(v);
				if (m >= MIN_MTU && m <= L2CAP_MAX_MTU)
					ch->imtu = m;
			}
		}
		if (ch->conf_tries < CONF_TRIES) {
			conf_req_send(ch);
			break;
		}
		/* fall through */
	default:
		ch->close_err = -ECONNREFUSED;
		disc_req_send(ch);
		break;
	}
}

/* Disconnection Request, Vol 3 Part A 4.6. */
static void on_disc_req(l2cap *l, l2link *k, uint8_t ident, bt_reader *r)
{
	uint16_t dcid = bt_read_le16(r);
	uint16_t scid = bt_read_le16(r);
	if (r->err)
		return;
	l2cap_chan *ch = chan_by_lcid(l, k->handle, dcid);
	/* Only a channel the peer has a CID for (it answered our request or asked for it) can
	 * be disconnected: ours still waiting for a Connection Response has none (rcid 0). */
	bool connected = ch && (ch->state == CH_CONFIG || ch->state == CH_OPEN || ch->state == CH_WAIT_DISC_RSP);
	if (!connected || ch->rcid != scid) {
		cmd_reject_cid(l, k, ident, dcid, scid);
		return;
	}
	uint8_t p[4];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, dcid); /* 4.7: destination CID, source CID as received */
	bt_write_le16(&w, scid);
	sig_send(l, k, SIG_DISC_RSP, ident, &w);
	chan_end(ch, ch->state == CH_WAIT_DISC_RSP && ch->close_err ? ch->close_err : 0);
}

/* Disconnection Response, Vol 3 Part A 4.7. */
static void on_disc_rsp(l2cap *l, l2link *k, uint8_t ident, bt_reader *r)
{
	uint16_t dcid = bt_read_le16(r);
	uint16_t scid = bt_read_le16(r);
	if (r->err)
		return;
	l2cap_chan *ch = chan_by_lcid(l, k->handle, scid);
	if (!ch || ch->state != CH_WAIT_DISC_RSP || ch->rcid != dcid)
		return;
	chan_end(ch, ch->close_err);
}

/* Information Request, Vol 3 Part A 4.10/4.11: type, then result and data by type. The
 * longest answer (fixed channels: 2 + 2 + 8) fits p. */
static void on_info_req(l2cap *l, l2link *k, uint8_t ident, bt_reader *r)
{
	uint16_t type = bt_read_le16(r);
	if (r->err)
		return;
	uint8_t p[12];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, type);
	switch (type) {
	case 0x0001: /* connectionless MTU */
		bt_write_le16(&w, 0);
		bt_write_le16(&w, L2CAP_DEFAULT_MTU);
		break;
	case 0x0002: /* extended features: fixed channels supported (bit 7) */
		bt_write_le16(&w, 0);
		bt_write_le32(&w, 0x00000080);
		break;
	case 0x0003: /* fixed channels: the signalling channel (bit 1), 8 octets */
		bt_write_le16(&w, 0);
		bt_write_u8(&w, 0x02);
		bt_write_zeros(&w, 7);
		break;
	default:
		bt_write_le16(&w, 0x0001); /* not supported */
		break;
	}
	sig_send(l, k, SIG_INFO_RSP, ident, &w);
}

/* Echo Request, Vol 3 Part A 4.8/4.9: the response carries the request's data back. Its data
 * is optional (4.9), so it is cut to what a command of ours may carry (never needed: a request
 * fits our MTUsig, and so does its echo). */
static void on_echo_req(l2cap *l, l2link *k, uint8_t ident, const uint8_t *data, size_t len)
{
	uint8_t p[SIG_MTU - SIG_HDR];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_bytes(&w, data, len < sizeof p ? len : sizeof p);
	sig_send(l, k, SIG_ECHO_RSP, ident, &w);
}

/* Command Reject, Vol 3 Part A 4.1: a request of ours was not understood. */
static void on_cmd_reject(l2cap *l, l2link *k, uint8_t ident)
{
	l2cap_chan *ch = chan_by_ident(l, k->handle, ident);
	if (!ch)
		return;
	if (ch->state == CH_WAIT_CONN_RSP)
		chan_end(ch, -ECONNREFUSED);
	else if (ch->state == CH_WAIT_DISC_RSP)
		chan_end(ch, ch->close_err);
	else if (ch->state == CH_CONFIG) {
		ch->close_err = -EPROTO;
		disc_req_send(ch);
	}
}

/* Fixed minimum data lengths per request code (Vol 3 Part A 4.x); shorter is "not
 * understood". Responses that are short are dropped quietly. */
static size_t sig_min_len(uint8_t code)
{
	switch (code) {
	case SIG_CMD_REJECT: return 2;
	case SIG_CONN_REQ: return 4;
	case SIG_CONN_RSP: return 8;
	case SIG_CONF_REQ: return 4;
	case SIG_CONF_RSP: return 6;
	case SIG_DISC_REQ: return 4;
	case SIG_DISC_RSP: return 4;
	case SIG_INFO_REQ: return 2;
	default: return 0;
	}
}

static bool sig_is_request(uint8_t code)
{
	return code == SIG_CONN_REQ || code == SIG_CONF_REQ || code == SIG_DISC_REQ ||
	       code == SIG_ECHO_REQ || code == SIG_INFO_REQ;
}

static void sig_command(l2cap *l, l2link *k, uint8_t code, uint8_t ident, const uint8_t *data, size_t len)
{
	if (ident == 0)
		return; /* Vol 3 Part A 4: identifier 0x00 is illegal */
	if (len < sig_min_len(code)) {
		if (sig_is_request(code))
			cmd_reject(l, k, ident);
		return;
	}
	bt_reader r = bt_reader_init(data, len);
	switch (code) {
	case SIG_CONN_REQ: on_conn_req(l, k, ident, &r); break;
	case SIG_CONN_RSP: on_conn_rsp(l, k, ident, &r); break;
	case SIG_CONF_REQ: on_conf_req(l, k, ident, &r); break;
	case SIG_CONF_RSP: on_conf_rsp(l, k, ident, &r); break;
	case SIG_DISC_REQ: on_disc_req(l, k, ident, &r); break;
	case SIG_DISC_RSP: on_disc_rsp(l, k, ident, &r); break;
	case SIG_ECHO_REQ: on_echo_req(l, k, ident, data, len); break;
	case SIG_ECHO_RSP: break; /* any received PDU already counts as a sign of life */
	case SIG_INFO_REQ: on_info_req(l, k, ident, &r); break;
	case SIG_INFO_RSP: break;
	case SIG_CMD_REJECT: on_cmd_reject(l, k, ident); break;
	default: cmd_reject(l, k, ident); break;
	}
}

/* A C-frame on CID 0x0001 may hold several commands (Vol 3 Part A 4). */
static void sig_input(l2cap *l, l2link *k, const uint8_t *p, size_t len)
{
	if (len > SIG_MTU) {
		/* Reject with the identifier of the first command, if we can read it (4.1). */
		cmd_reject_mtu(l, k, len >= 2 && p[1] ? p[1] : 1);
		return;
	}
	bt_reader r = bt_reader_init(p, len);
	while (bt_reader_left(&r) > 0) {
		uint8_t code = bt_read_u8(&r);
		uint8_t ident = bt_read_u8(&r);
		uint16_t clen = bt_read_le16(&r);
		if (r.err) { /* a command header cut short */
			if (ident && sig_is_request(code))
				cmd_reject(l, k, ident);
			return;
		}
		const uint8_t *data = bt_read_bytes(&r, clen);
		if (!data) { /* length runs past the frame */
			if (ident && sig_is_request(code))
				cmd_reject(l, k, ident);
			return;
		}
		sig_command(l, k, code, ident, data, clen);
	}
}

/* ================================================================== data */

/* A reassembled PDU from HCI: basic header (Vol 3 Part A 3.1) length, CID, payload. */
void l2cap_acl(l2cap *l, uint16_t handle, const uint8_t *pdu, size_t len)
{
	l2link *k = link_find(l, handle);
	if (!k || len < 4 || get_le16(pdu) != len - 4)
		return;
	link_heard(l, k);
	uint16_t cid = get_le16(pdu + 2);
	const uint8_t *p = pdu + 4;
	size_t n = len - 4;
	if (cid == 0x0001) {
		bool outer = !l->in_acl;
		l->in_acl = true;
		sig_input(l, k, p, n);
		if (outer) {
			l->in_acl = false;
			if (l->kick_due) {
				l->kick_due = false;
				hci_kick(l->hci);
			}
		}
	} else if (cid >= 0x0040) {
		l2cap_chan *ch = chan_by_lcid(l, handle, cid);
		/* Data before both configurations finished, or above our MTU, is dropped
		 * (basic mode has no way to tell the sender). */
		if (ch && ch->state == CH_OPEN && n <= ch->imtu && !ch->owner_gone && ch->ops && ch->ops->data)
			ch->ops->data(ch->ctx, ch, p, n);
	}
	chan_notify_all(l);
}

/* The length of the queued command at offset off of the link's queue ([len le16][command]). */
static size_t sigq_len_at(const l2link *k, size_t off)
{
	uint8_t lb[2];
	lb[0] = k->sigq[(k->sig_head + off) % SIGQ_SIZE];
	lb[1] = k->sigq[(k->sig_head + off + 1) % SIGQ_SIZE];
	return get_le16(lb);
}

/* One C-frame of the next link with signalling queued. Vol 3 Part A 4: "multiple commands may
 * be sent in a single C-frame" on CID 0x0001: after the first command, the next ones join it
 * while the frame's payload stays within MIN_SIG_MTU, the MTUsig every ACL-U peer accepts. One
 * ACL packet then carries what took two (a Connection Response and our Configuration
 * Request; a Configuration Request and Response), each a controller buffer round trip. */
static size_t pull_sig(l2cap *l, uint16_t *handle, uint8_t *buf, size_t cap)
{
	for (int i = 0; i < MAX_LINKS; i++) {
		l2link *k = &l->links[(l->rr_sig + (unsigned)i) % MAX_LINKS];
		if (!k->used || !k->up || k->sig_used < 2)
			continue;
		size_t n = sigq_len_at(k, 0), take = 2 + n;
		while (take + 2 <= k->sig_used) {
			size_t next = sigq_len_at(k, take);
			if (n + next > MIN_SIG_MTU)
				break;
			n += next;
			take += 2 + next;
		}
		bt_writer w = bt_writer_init(buf, cap);
		bt_write_le16(&w, (uint16_t)n); /* basic header (Vol 3 Part A 3.1), CID 0x0001 */
		bt_write_le16(&w, 0x0001);
		uint8_t *dst = bt_write_reserve(&w, n);
		if (w.err)
			return 0;
		for (size_t off = 0, j = 0; off < take;) {
			size_t c = sigq_len_at(k, off);
			for (size_t b = 0; b < c; b++)
				dst[j++] = k->sigq[(k->sig_head + off + 2 + b) % SIGQ_SIZE];
			off += 2 + c;
		}
		k->sig_head = (k->sig_head + take) % SIGQ_SIZE;
		k->sig_used -= take;
		*handle = k->handle;
		l->rr_sig = (l->rr_sig + (unsigned)i + 1) % MAX_LINKS;
		return n + 4;
	}
	return 0;
}

static size_t chan_dequeue(l2cap_chan *ch, uint8_t *buf, size_t cap)
{
	uint8_t lb[2];
	lb[0] = ch->tx[ch->tx_head];
	lb[1] = ch->tx[(ch->tx_head + 1) % ch->tx_cap];
	size_t n = get_le16(lb);
	bt_writer w = bt_writer_init(buf, cap);
	bt_write_le16(&w, (uint16_t)n); /* basic header (Vol 3 Part A 3.1): length, destination CID */
	bt_write_le16(&w, ch->rcid);
	uint8_t *dst = bt_write_reserve(&w, n);
	if (w.err)
		return 0;
	size_t start = (ch->tx_head + 2) % ch->tx_cap;
	size_t first = ch->tx_cap - start < n ? ch->tx_cap - start : n;
	memcpy(dst, ch->tx + start, first);
	memcpy(dst + first, ch->tx, n - first);
	ch->tx_head = (start + n) % ch->tx_cap;
	ch->tx_used -= n + 2;
	return n + 4;
}

size_t l2cap_pull(l2cap *l, uint16_t *handle, uint8_t *buf, size_t cap)
{
	size_t n = pull_sig(l, handle, buf, cap);
	if (n)
		return n;
	unsigned count = 0;
	for (l2cap_chan *c = l->chans; c; c = c->next)
		count++;
	if (!count)
		return 0;
	for (unsigned i = 0; i < count; i++) {
		unsigned idx = (l->rr + i) % count;
		l2cap_chan *c = l->chans;
		for (unsigned j = 0; j < idx; j++)
			c = c->next;
		if (c->state != CH_OPEN || c->tx_used == 0)
			continue;
		n = chan_dequeue(c, buf, cap);
		if (!n)
			continue;
		*handle = c->handle;
		l->rr = idx + 1;
		if (c->want_writable && !c->owner_gone) {
			c->want_writable = false;
			if (c->ops && c->ops->writable)
				c->ops->writable(c->ctx, c);
		}
		return n;
	}
	return 0;
}

uint16_t l2cap_acl_mtu(const l2cap *l)
{
	return hci_is_ready(l->hci) ? hci_get_info(l->hci)->acl_mtu : 0;
}

bool l2cap_chan_tx_idle(const l2cap_chan *ch) { return ch->tx_used == 0; }

bool l2cap_tx_idle(const l2cap *l)
{
	for (int i = 0; i < MAX_LINKS; i++)
		if (l->links[i].used && l->links[i].sig_used)
			return false;
	for (const l2cap_chan *c = l->chans; c; c = c->next)
		if (c->state == CH_OPEN && c->tx_used)
			return false;
	return true;
}
