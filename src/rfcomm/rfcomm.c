/* rfcomm.c - RFCOMM multiplexer sessions and DLCs (Bluetooth RFCOMM spec v1.2 over ETSI
 * TS 07.10) on L2CAP PSM 3, using only the l2cap.h API.
 *
 * Sections:
 *  - entry/exit: every entry point runs between enter() and leave(); leave() at the outermost
 *    level delivers owed closed() callbacks and frees dead DLCs and sessions, so no callback
 *    ever runs on freed memory.
 *  - sessions: one per L2CAP channel on PSM 3 (normally one per peer). States:
 *      outgoing: L2CAP_OUT -> SABM0_SENT -> OPEN -> DISC0_SENT -> DEAD
 *      incoming: L2CAP_IN -> WAIT_SABM0 -> OPEN -> ...
 *      peer DISC on DLCI 0: OPEN -> PEER_DISC (wait for the peer to drop L2CAP) -> DEAD
 *    If both sides open an L2CAP channel at once, both sessions may live; our DLCs still
 *    waiting for an outgoing session move to the incoming one when it opens first, and an
 *    unused session lingers linger_ms, then closes.
 *  - DLCs: WAIT_SESSION -> PN_SENT -> SABM_SENT -> CONFIG (MSC exchange) -> OPEN -> DISC_SENT
 *    incoming: (PN_RCVD) -> SABM + accept -> CONFIG -> OPEN; any -> CLOSED.
 *  - transmit: a per-DLC tx ring drained round-robin into UIH frames (credits permitting),
 *    control frames first; frames L2CAP cannot take yet wait in a small bounded queue, of
 *    which answers to the peer may fill only half (frame_class).
 *  - receive: an rx ring per DLC; credits granted only for room the ring really has
 *    (RFCOMM spec 6.5). It starts at RX_START and grows, once, to cfg.rx_buffer when the
 *    credit a streaming peer is given calls for it (dlc_rx_reserve). */
#include "rfcomm/rfcomm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "rfcomm/rfcomm_frame.h"

#define TX_RING 4096
#define RX_MAX 24576       /* per-DLC rx ring cap (cfg.rx_buffer's default and limit) */
#define RX_START 8192      /* a new DLC's ring: idle channels stay under 16 KiB each */
#define STREAM_RUN 4       /* full frames in a row that make a stream (rfcomm_rx_streaming) */
#define RX_MIN 256
#define DEFAULT_RX_BUDGET 24576 /* 128 ACL packets of btvirt's 192 bytes (it drops beyond ~170) */
#define DORMANT_MS 250     /* credit unused this long stops counting against the budget */
#define DEFAULT_IMTU 2048  /* our L2CAP MTU unless max_frame asks for more: frames of ~2 KiB halve
			    * the per-frame work of 1 KiB ones (bench: duplex +7 %); 4 KiB frames
			    * gained nothing more with a 24 KiB ring */
#define DEFAULT_N1 127     /* TS 07.10 5.7.2 / RFCOMM spec 5.5.3: N1 without PN */
#define MAX_SESSIONS 16
#define CTRLQ_SIZE 2048
#define CTRLQ_ANSWERS (CTRLQ_SIZE / 2) /* the part of it answers to the peer may fill */
#define MAX_CREDIT_OCTET 255 /* credits per frame: one octet (RFCOMM spec 6.5.2) */
#define PN_MAX_K 7         /* RFCOMM spec 5.5.3: K is 3 bits */
#define MAX_WINDOW 255
#define MAX_TX_CREDITS 65535u
#define OUR_V24 (RFCOMM_V24_EA | RFCOMM_V24_RTC | RFCOMM_V24_RTR | RFCOMM_V24_DV)
#define PN_PRIORITY 7

typedef enum {
	S_L2CAP_OUT,
	S_L2CAP_IN,
	S_WAIT_SABM0,
	S_SABM0_SENT,
	S_OPEN,
	S_DISC0_SENT,
	S_PEER_DISC,
	S_DEAD,
} sess_state;

typedef enum {
	D_WAIT_SESSION,
	D_PN_SENT,
	D_SABM_SENT,
	D_PN_RCVD,
	D_SEC_WAIT, /* the link is being secured for the DLC's level (either direction) */
	D_CONFIG,
	D_OPEN,
	D_DISC_SENT,
	D_CLOSED,
} dlc_state;

typedef struct session session;

struct session {
	rfcomm *r;
	session *next;
	sess_state state;
	bt_addr peer;
	l2cap_chan *ch;
	bool initiator;   /* we sent SABM on DLCI 0 (RFCOMM spec 5.4, TS 07.10 5.2.1.2) */
	bool fcoff;       /* peer sent FCoff (TS 07.10 5.4.6.3.6) */
	bool disc0_out;   /* our DISC on DLCI 0 is out, not yet answered */
	bt_timer timer;   /* T1 for SABM0/DISC0, linger when idle */
	bool in_pump, pump_again;
	bool overflow;    /* one of our own frames found no room: ended at leave() */
	unsigned rr;
	uint8_t ctrlq[CTRLQ_SIZE]; /* frames L2CAP had no room for, each [len le16][frame] */
	size_t cq_head, cq_used;
	size_t fbuf_size;
	uint8_t *fbuf;    /* frame assembly (fbuf_size) */
	uint8_t *tmp;     /* ring data made contiguous (fbuf_size) */
};

struct rfcomm_dlc {
	rfcomm *r;
	session *s;        /* NULL once closed */
	rfcomm_dlc *next;
	dlc_state state;
	bt_addr peer;
	uint8_t dlci, channel;
	const rfcomm_dlc_ops *ops;
	void *ctx;
	bool owner_gone;   /* rfcomm_close called, or an incoming DLC not yet accepted */
	bool dead;         /* free at the outermost leave() */
	bool notify_closed;
	int close_err;
	bool announced; /* opened() delivered (at UA, before the MSC exchange ends) */
	uint8_t level;      /* l2cap_sec_level */
	bool sec_in;        /* D_SEC_WAIT for a peer's SABM (else for our PN/SABM) */
	uint8_t sec_pf;     /* that SABM's P/F bit, for the UA or DM */
	int sec_reason;     /* hci_sec_reason that ended it */
	bool close_pending; /* owner closed with tx data left: DISC once drained (or T1) */
	bt_timer timer;     /* T1 (PN wait uses T2), T2 for the MSC exchange */
	uint16_t n1;
	uint8_t priority;
	bool cfc;           /* credit based flow control (RFCOMM spec 6.5) */
	uint8_t k_sent;     /* initial credits we offered in PN */
	uint32_t tx_credits; /* frames we may send */
	uint32_t rx_credits; /* frames the peer may send */
	uint64_t rx_active;  /* when the peer last sent data or we last granted credit (ms) */
	bool grant_now;
	bool msc_in, msc_out;
	bool peer_fc;       /* peer's MSC FC bit (non-CFC DLCs) */
	bool throttled;     /* non-CFC: we sent MSC with FC set */
	uint8_t peer_v24;
	bool want_writable;
	uint8_t *rx;
	size_t rx_cap, rx_head, rx_used;
	size_t rx_total;    /* bytes the peer has sent (saturating): RX_START of them make it grow */
	bool rx_grow_failed; /* no memory to grow the ring: credit stays within it */
	uint8_t full_run;   /* full-size (N1) frames in a row from the peer, none sent between */
	size_t tx_head, tx_used;
	uint8_t tx[TX_RING];
};

typedef struct {
	rfcomm_accept_fn fn;
	void *ctx;
	uint8_t level; /* l2cap_sec_level */
} listener;

struct rfcomm {
	rfcomm_config cfg;
	l2cap *l;
	bt_timers *timers;
	uint16_t imtu;
	bool listening;
	listener servers[RFCOMM_CHANNEL_MAX + 1];
	session *sessions;
	rfcomm_dlc *dlcs;
	unsigned depth;
	bt_timer budget_timer; /* a DLC waits for budget: look again once holders turn dormant */
	bool budget_waiting;
	unsigned long dropped; /* frames dropped (malformed, no credit, no room): debugging aid */
};

static void pump(session *s);
static void budget_watch(rfcomm *r);
static void dlc_timer_fire(bt_timer *t, void *ctx);
static void dlc_set(rfcomm_dlc *d, dlc_state st);
static void dlc_secure(rfcomm_dlc *d, bool in);
static void dlc_secured(rfcomm_dlc *d, int shortfall);
static void dlc_accept(rfcomm_dlc *d, bool pf);
static void session_set(session *s, sess_state st);
static void session_end(session *s, int err);

/* ================================================================== entry / exit */

static void enter(rfcomm *r) { r->depth++; }

static void reap(rfcomm *r)
{
	for (rfcomm_dlc **pp = &r->dlcs; *pp;) {
		rfcomm_dlc *d = *pp;
		if (d->dead) {
			*pp = d->next;
			bt_timer_stop(r->timers, &d->timer);
			free(d->rx);
			free(d);
		} else {
			pp = &d->next;
		}
	}
	for (session **pp = &r->sessions; *pp;) {
		session *s = *pp;
		if (s->state == S_DEAD) {
			*pp = s->next;
			bt_timer_stop(r->timers, &s->timer);
			free(s);
		} else {
			pp = &s->next;
		}
	}
}

static void leave(rfcomm *r)
{
	if (r->depth > 1) {
		r->depth--;
		return;
	}
	/* Outermost: sessions that lost one of our own frames end (see frame_out), owed
	 * closed() callbacks, restarting the walk after each (an owner may close or open DLCs
	 * from inside), then free what died. */
	for (session *s = r->sessions; s; s = s->next)
		if (s->overflow && s->state != S_DEAD)
			session_end(s, -ENOBUFS);
	for (;;) {
		rfcomm_dlc *d = r->dlcs;
		while (d && !(d->notify_closed && !d->owner_gone))
			d = d->next;
		if (!d)
			break;
		d->notify_closed = false;
		if (d->ops && d->ops->closed)
			d->ops->closed(d->ctx, d, d->close_err);
	}
	reap(r);
	r->depth--;
}

/* ================================================================== helpers */

static bool cmd_cr(const session *s) { return s->initiator; }   /* TS 07.10 5.2.1.2 */
static bool rsp_cr(const session *s) { return !s->initiator; }

static size_t rx_free(const rfcomm_dlc *d) { return d->rx_cap - d->rx_used; }

/* The ring size credits count on: the one it has or, once its peer has sent a starting
 * ring's worth (it streams), cfg.rx_buffer, which the ring grows to when credit needs it
 * (dlc_rx_reserve; not again if memory was short). */
static size_t rx_size(const rfcomm_dlc *d)
{
	bool grows = d->rx_total >= RX_START && !d->rx_grow_failed && d->r->cfg.rx_buffer > d->rx_cap;
	return grows ? d->r->cfg.rx_buffer : d->rx_cap;
}

static size_t rx_room(const rfcomm_dlc *d) { return rx_size(d) - d->rx_used; }

static uint32_t dlc_window(const rfcomm_dlc *d)
{
	size_t w = rx_size(d) / (d->n1 ? d->n1 : 1);
	return w > MAX_WINDOW ? MAX_WINDOW : (uint32_t)w;
}

/* Aggregate receive flow control. Every DLC of this stack shares one controller transport
 * (and btvirt drops what a host has not read beyond ~32 KiB), so the credit granted to peers in
 * all is bounded by cfg.rx_budget (bytes): each DLC's window is its share of the budget (at
 * least one frame, at most what its ring holds), granted only while the budget has room; a
 * DLC may have to wait, with no credit, until others' frames arrive (RFCOMM spec 6.5: credits
 * may be granted at any time, in any number, and PN's initial K may be 0). Credits cannot be
 * taken back, so credit a peer has left unused for DORMANT_MS stops counting: idle DLCs cannot
 * hold the budget forever, at the risk of their peers waking all at once (bounded by their
 * shares). The one exception to the budget: with nothing outstanding at all, one frame. */
static bool dlc_counts(const rfcomm_dlc *d)
{
	return d->cfc && !d->dead && d->state != D_CLOSED && d->state != D_WAIT_SESSION;
}

static uint64_t r_now(const rfcomm *r) { return r->timers->now; }

static bool dlc_dormant(const rfcomm_dlc *d)
{
	return d->rx_credits > 0 && r_now(d->r) >= d->rx_active + DORMANT_MS;
}

static size_t credit_outstanding(const rfcomm *r, size_t *count)
{
	size_t bytes = 0, n = 0;
	for (const rfcomm_dlc *d = r->dlcs; d; d = d->next) {
		if (!dlc_counts(d) || dlc_dormant(d))
			continue;
		bytes += (size_t)d->rx_credits * d->n1;
		n++;
	}
	*count = n;
	return bytes;
}

/* Frames d may hold: its share of the budget, 1 to its ring's window. */
static uint32_t dlc_share(const rfcomm_dlc *d, size_t count)
{
	size_t n1 = d->n1 ? d->n1 : 1;
	size_t share = d->r->cfg.rx_budget / n1 / (count ? count : 1);
	uint32_t w = dlc_window(d);
	return share < 1 ? 1 : share > w ? w : (uint32_t)share;
}

/* Frames of n1 bytes the budget still has room for, given `out` bytes of credit outstanding;
 * with nothing outstanding at all, one frame even if the budget is smaller. */
static size_t budget_room(const rfcomm *r, size_t n1, size_t out)
{
	size_t room = out < r->cfg.rx_budget ? (r->cfg.rx_budget - out) / n1 : 0;
	return out == 0 && room < 1 ? 1 : room;
}

/* Credits we could grant now: never more than the ring holds, nor than d's share, nor than
 * the budget's room. *limited tells whether the budget cut the grant. */
static uint32_t dlc_grantable_why(const rfcomm_dlc *d, uint32_t *share_out, bool *limited)
{
	size_t n1 = d->n1 ? d->n1 : 1, count;
	size_t out = credit_outstanding(d->r, &count);
	size_t fit = rx_room(d) / n1, share = dlc_share(d, count);
	*share_out = (uint32_t)share;
	*limited = false;
	if (fit > share)
		fit = share;
	if (fit <= d->rx_credits)
		return 0;
	size_t g = fit - d->rx_credits;
	size_t room = budget_room(d->r, n1, out);
	*limited = room < g;
	return (uint32_t)(g < room ? g : room);
}

static uint32_t dlc_grantable(const rfcomm_dlc *d)
{
	uint32_t share;
	bool limited;
	return dlc_grantable_why(d, &share, &limited);
}

/* Credits go out in batches of half the window (fewer credit-only frames), except to a DLC
 * left without any because the budget was short: it gets what there is at once. */
static bool dlc_grant_due(const rfcomm_dlc *d)
{
	if (!d->cfc || (d->state != D_CONFIG && d->state != D_OPEN))
		return false;
	uint32_t share;
	bool limited;
	uint32_t g = dlc_grantable_why(d, &share, &limited);
	if (g == 0)
		return false;
	uint32_t half = share / 2;
	return d->grant_now || (limited && d->rx_credits == 0) || g >= (half ? half : 1);
}

/* Copies the ring's first n bytes (n <= rx_used) to p, in order, without consuming them. */
static void rx_copy_out(const rfcomm_dlc *d, uint8_t *p, size_t n)
{
	size_t first = d->rx_cap - d->rx_head < n ? d->rx_cap - d->rx_head : n;
	memcpy(p, d->rx + d->rx_head, first);
	memcpy(p + first, d->rx, n - first);
}

/* Moves the ring to a buffer of cap bytes (at least what it holds), unwrapped; false without
 * memory (the ring is kept as it was). */
static bool dlc_rx_resize(rfcomm_dlc *d, size_t cap)
{
	uint8_t *p = malloc(cap);
	if (!p)
		return false;
	rx_copy_out(d, p, d->rx_used);
	free(d->rx);
	d->rx = p;
	d->rx_cap = cap;
	d->rx_head = 0;
	return true;
}

/* Of `frames` credits about to be granted, how many the ring can hold on top of what it holds
 * and what is credited already: every credited frame must fit (RFCOMM spec 6.5: a peer may use
 * its credits at any time). The ring grows to cfg.rx_buffer the first time more is needed by
 * a DLC whose peer has sent a starting ring's worth (RX_START bytes: it streams), once per
 * DLC; idle channels and those that exchange a few messages keep the small ring. Without
 * memory, fewer credits (and the ring stays as it is). */
static uint32_t dlc_rx_reserve(rfcomm_dlc *d, uint32_t frames)
{
	size_t n1 = d->n1 ? d->n1 : 1;
	size_t need = d->rx_used + ((size_t)d->rx_credits + frames) * n1;
	if (need > d->rx_cap && rx_size(d) > d->rx_cap && !dlc_rx_resize(d, rx_size(d)))
		d->rx_grow_failed = true;
	if (need <= d->rx_cap)
		return frames;
	size_t fit = rx_free(d) / n1;
	return fit > d->rx_credits ? (uint32_t)(fit - d->rx_credits) : 0;
}

/* PN's initial credits (3-bit K, RFCOMM spec 5.5.3) within d's share of the budget. */
static uint8_t dlc_initial_credits(const rfcomm_dlc *d)
{
	size_t count;
	size_t out = credit_outstanding(d->r, &count);
	uint32_t k = dlc_share(d, count + (dlc_counts(d) ? 0 : 1));
	size_t room = budget_room(d->r, d->n1 ? d->n1 : 1, out);
	if (k > room)
		k = (uint32_t)room; /* 0 is fine: a credit frame follows when the budget has room */
	return (uint8_t)(k > PN_MAX_K ? PN_MAX_K : k);
}

/* Trims N1 so that a full frame in its L2CAP PDU (4-byte basic header, Vol 3 Part A 3.1)
 * fills whole ACL packets: 1018 bytes would take 5 packets of 192 and a sixth of 68, 950 takes
 * exactly 5. The sender pays per ACL packet, not per byte. Kept if trimming would cost more
 * than an eighth of the frame. */
static size_t whole_acl_packets(const rfcomm *r, size_t n1)
{
	size_t acl = l2cap_acl_mtu(r->l);
	size_t pdu = 4 + n1 + RFCOMM_MAX_OVERHEAD;
	if (!acl || pdu % acl == 0 || pdu < acl)
		return n1;
	size_t fit = pdu / acl * acl - 4 - RFCOMM_MAX_OVERHEAD;
	return fit >= n1 - n1 / 8 ? fit : n1;
}

static uint16_t our_n1(const session *s)
{
	const rfcomm *r = s->r;
	size_t mtu = r->imtu;
	if (s->ch && l2cap_chan_omtu(s->ch) < mtu)
		mtu = l2cap_chan_omtu(s->ch);
	size_t n1 = mtu > RFCOMM_MAX_OVERHEAD ? mtu - RFCOMM_MAX_OVERHEAD : 1;
	if (r->cfg.max_frame && r->cfg.max_frame < n1)
		n1 = r->cfg.max_frame;
	if (n1 > r->cfg.rx_buffer)
		n1 = r->cfg.rx_buffer;
	return (uint16_t)(n1 ? whole_acl_packets(r, n1) : 1);
}

static rfcomm_dlc *dlc_find(session *s, uint8_t dlci)
{
	for (rfcomm_dlc *d = s->r->dlcs; d; d = d->next)
		if (d->s == s && d->dlci == dlci && d->state != D_CLOSED && d->state != D_WAIT_SESSION)
			return d;
	return NULL;
}

static bool session_has_dlcs(const session *s)
{
	for (rfcomm_dlc *d = s->r->dlcs; d; d = d->next)
		if (d->s == s)
			return true;
	return false;
}

/* ================================================================== frames out */

/* Who a frame out is for. Answers to the peer's commands (multiplexer responses, DM) exist
 * only because the peer sent something: a peer that floods commands while it reads nothing
 * of ours must not fill the queue with them, so they may fill only CTRLQ_ANSWERS of it and
 * are shed beyond (the peer's T2/T1 runs out, TS 07.10 5.4.6.2 / 5.7.1). Our own frames
 * (SABM, DISC, UA, our commands) may use the whole queue; one that still finds no room would
 * leave the peer and us disagreeing on a DLC, so the session ends (-ENOBUFS) at leave()
 * rather than lose it silently. */
typedef enum { F_OWN, F_ANSWER } frame_class;

/* Hands one frame to L2CAP, or queues it behind earlier ones (see frame_class). */
static void frame_out(session *s, const uint8_t *p, size_t n, frame_class fc)
{
	if (!s->ch || s->state == S_DEAD)
		return;
	if (s->cq_used == 0) {
		int err = l2cap_send(s->ch, p, n);
		if (err != -EAGAIN) {
			if (err < 0)
				s->r->dropped++;
			return;
		}
	}
	size_t limit = fc == F_ANSWER ? CTRLQ_ANSWERS : CTRLQ_SIZE;
	if (s->cq_used > limit || limit - s->cq_used < n + 2) {
		s->r->dropped++;
		if (fc == F_OWN)
			s->overflow = true;
		return;
	}
	uint8_t hdr[2];
	put_le16(hdr, (uint16_t)n);
	size_t tail = (s->cq_head + s->cq_used) % CTRLQ_SIZE;
	for (size_t i = 0; i < n + 2; i++)
		s->ctrlq[(tail + i) % CTRLQ_SIZE] = i < 2 ? hdr[i] : p[i - 2];
	s->cq_used += n + 2;
}

/* Sends queued control frames; false if L2CAP is still full. */
static bool ctrlq_flush(session *s)
{
	while (s->cq_used) {
		uint8_t hdr[2] = { s->ctrlq[s->cq_head], s->ctrlq[(s->cq_head + 1) % CTRLQ_SIZE] };
		size_t n = get_le16(hdr);
		if (!l2cap_can_send(s->ch, n))
			return false;
		for (size_t i = 0; i < n; i++)
			s->tmp[i] = s->ctrlq[(s->cq_head + 2 + i) % CTRLQ_SIZE];
		if (l2cap_send(s->ch, s->tmp, n) < 0)
			s->r->dropped++;
		s->cq_head = (s->cq_head + 2 + n) % CTRLQ_SIZE;
		s->cq_used -= n + 2;
	}
	return true;
}

/* The largest frame we can send on s: our assembly buffer, and the peer's L2CAP MTU
 * (Vol 3 Part A 5.1), which the frame and nothing else must fit. */
static size_t frame_room(const session *s)
{
	size_t omtu = s->ch ? l2cap_chan_omtu(s->ch) : 0;
	return omtu < s->fbuf_size ? omtu : s->fbuf_size;
}

static void send_frame(session *s, uint8_t dlci, bool cr, uint8_t ctrl, bool pf, const uint8_t *info, size_t len,
		       frame_class fc)
{
	size_t n = rfcomm_frame_build(s->fbuf, frame_room(s), dlci, cr, ctrl, pf, -1, info, len);
	if (n)
		frame_out(s, s->fbuf, n, fc);
	else
		s->r->dropped++;
}

/* RFCOMM spec 5.1 / TS 07.10 5.3: SABM and DISC are commands with P=1, UA and DM responses.
 * DM only ever says "no such DLC": an answer; UA confirms a state change: our own. */
static void send_sabm(session *s, uint8_t dlci) { send_frame(s, dlci, cmd_cr(s), RFCOMM_SABM, true, NULL, 0, F_OWN); }
static void send_disc(session *s, uint8_t dlci) { send_frame(s, dlci, cmd_cr(s), RFCOMM_DISC, true, NULL, 0, F_OWN); }
static void send_ua(session *s, uint8_t dlci, bool f) { send_frame(s, dlci, rsp_cr(s), RFCOMM_UA, f, NULL, 0, F_OWN); }
static void send_dm(session *s, uint8_t dlci, bool f) { send_frame(s, dlci, rsp_cr(s), RFCOMM_DM, f, NULL, 0, F_ANSWER); }

/* A multiplexer command (cr) or response in a UIH frame on DLCI 0 (TS 07.10 5.4.6.1). The
 * value is built in tmp and the frame in fbuf, both bounded; a message whose frame would not
 * fit frame_room() is not sent (counted in dropped). */
static void send_mcc(session *s, uint8_t type, bool cr, const uint8_t *val, size_t len)
{
	size_t n = rfcomm_mcc_build(s->tmp, s->fbuf_size, type, cr, val, len);
	if (!n) {
		s->r->dropped++;
		return;
	}
	send_frame(s, 0, cmd_cr(s), RFCOMM_UIH, false, s->tmp, n, cr ? F_OWN : F_ANSWER);
}

static void send_pn(session *s, const rfcomm_dlc *d, bool cr, uint8_t cl, uint8_t k)
{
	rfcomm_pn pn = { .dlci = d->dlci, .cl = cl, .priority = d->priority, .n1 = d->n1, .k = k };
	uint8_t v[8];
	send_mcc(s, RFCOMM_MCC_PN, cr, v, rfcomm_pn_encode(&pn, v));
}

static void send_msc(session *s, const rfcomm_dlc *d)
{
	rfcomm_msc m = { .dlci = d->dlci, .v24 = (uint8_t)(OUR_V24 | (d->throttled ? RFCOMM_V24_FC : 0)) };
	uint8_t v[3];
	send_mcc(s, RFCOMM_MCC_MSC, true, v, rfcomm_msc_encode(&m, v));
}

/* ================================================================== DLC state */

/* The one place a DLC's state changes; arms or stops its timer for the new state. */
static void dlc_set(rfcomm_dlc *d, dlc_state st)
{
	rfcomm *r = d->r;
	d->state = st;
	bt_timer_stop(r->timers, &d->timer);
	switch (st) {
	case D_PN_SENT: /* PN is a multiplexer command: T2 */
	case D_CONFIG:  /* MSC exchange: T2 */
		bt_timer_start(r->timers, &d->timer, r->cfg.t2_ms);
		break;
	case D_SABM_SENT:
	case D_DISC_SENT:
	case D_PN_RCVD: /* the SABM should follow the PN promptly */
		bt_timer_start(r->timers, &d->timer, r->cfg.t1_ms);
		break;
	default:
		break;
	}
}

static void session_check_idle(session *s)
{
	if (s->state == S_OPEN && !session_has_dlcs(s))
		bt_timer_start(s->r->timers, &s->timer, s->r->cfg.linger_ms);
}

/* The one place a DLC ends: closed() is owed (delivered in leave()) or it is freed. */
static void dlc_end(rfcomm_dlc *d, int err)
{
	if (d->state == D_CLOSED)
		return;
	session *s = d->s;
	dlc_set(d, D_CLOSED);
	d->close_err = err;
	d->s = NULL;
	if (d->owner_gone)
		d->dead = true;
	else
		d->notify_closed = true;
	if (s)
		session_check_idle(s);
}

static rfcomm_dlc *dlc_new(rfcomm *r, session *s, const bt_addr *peer, uint8_t channel)
{
	rfcomm_dlc *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->rx_cap = r->cfg.rx_buffer < RX_START ? r->cfg.rx_buffer : RX_START;
	d->rx = malloc(d->rx_cap);
	if (!d->rx) {
		free(d);
		return NULL;
	}
	d->r = r;
	d->s = s;
	d->peer = *peer;
	d->channel = channel;
	d->priority = PN_PRIORITY;
	d->n1 = DEFAULT_N1;
	d->state = D_WAIT_SESSION;
	bt_timer_init(&d->timer, dlc_timer_fire, d);
	d->next = r->dlcs;
	r->dlcs = d;
	if (s && s->state == S_OPEN)
		bt_timer_stop(r->timers, &s->timer); /* no longer idle */
	return d;
}

/* Tells the owner the DLC is connected, once. */
static void dlc_announce(rfcomm_dlc *d)
{
	if (d->announced)
		return;
	d->announced = true;
	if (!d->owner_gone && d->ops && d->ops->opened)
		d->ops->opened(d->ctx, d);
}

static void dlc_maybe_open(rfcomm_dlc *d)
{
	if (d->state != D_CONFIG || !d->msc_in || !d->msc_out)
		return;
	dlc_set(d, D_OPEN);
	if (d->close_pending) /* closed during the MSC exchange with data queued: T1 to drain it */
		bt_timer_start(d->r->timers, &d->timer, d->r->cfg.t1_ms);
	dlc_announce(d);
	if (d->state == D_OPEN && d->rx_used && !d->owner_gone && d->ops && d->ops->readable)
		d->ops->readable(d->ctx, d);
	if (d->s)
		pump(d->s);
}

/* UA exchanged (TS 07.10 5.4.1): the DLC is connected; RFCOMM spec 6.2 wants MSC next. The
 * owner hears of it now, as a kernel socket connects at UA: what it writes waits in the ring
 * until the MSC exchange ends (dlc_data_allowed), and connect() saves that round trip. */
static void dlc_connected(rfcomm_dlc *d)
{
	session *s = d->s;
	dlc_set(d, D_CONFIG);
	d->grant_now = d->cfc; /* credits beyond PN's 3-bit K go out in a credit frame */
	send_msc(s, d);
	pump(s);
	if (d->state == D_CONFIG)
		dlc_announce(d);
}

/* Sends PN for an outgoing DLC once its session is open (RFCOMM spec 5.5.3). */
static void dlc_start(rfcomm_dlc *d)
{
	session *s = d->s;
	uint8_t dlci = (uint8_t)(d->channel << 1 | (s->initiator ? 0 : 1)); /* RFCOMM spec 5.4 */
	if (dlc_find(s, dlci)) {
		dlc_end(d, -EADDRINUSE);
		return;
	}
	d->dlci = dlci;
	if (d->level && l2cap_chan_sec_shortfall(s->ch, d->level)) {
		dlc_secure(d, false);
		return;
	}
	d->n1 = our_n1(s);
	d->k_sent = (uint8_t)dlc_rx_reserve(d, dlc_initial_credits(d));
	dlc_set(d, D_PN_SENT);
	send_pn(s, d, true, RFCOMM_PN_CL_CFC_REQ, d->k_sent);
}

/* The DLC's link is below its level: secured first (sec_in: a peer's SABM waits for its UA). */
static void dlc_secure(rfcomm_dlc *d, bool in)
{
	d->sec_in = in;
	dlc_set(d, D_SEC_WAIT);
	int rc = l2cap_chan_secure(d->s->ch, d->level);
	if (rc != 0)
		dlc_secured(d, rc == 1 ? l2cap_chan_sec_shortfall(d->s->ch, d->level) : HCI_SEC_PEER_AUTH_FAILURE);
}

/* The link's securing ended; shortfall 0 (the level is met) or an hci_sec_reason. */
static void dlc_secured(rfcomm_dlc *d, int shortfall)
{
	session *s = d->s;
	if (!shortfall && d->sec_in) {
		dlc_accept(d, d->sec_pf);
		return;
	}
	if (!shortfall) {
		dlc_set(d, D_WAIT_SESSION);
		dlc_start(d);
		return;
	}
	d->sec_reason = shortfall;
	if (d->sec_in)
		send_dm(s, d->dlci, d->sec_pf);
	dlc_end(d, -EACCES);
}

/* ================================================================== session state */

static void session_set(session *s, sess_state st)
{
	rfcomm *r = s->r;
	s->state = st;
	bt_timer_stop(r->timers, &s->timer);
	switch (st) {
	case S_WAIT_SABM0:
	case S_SABM0_SENT:
	case S_DISC0_SENT:
	case S_PEER_DISC:
		bt_timer_start(r->timers, &s->timer, r->cfg.t1_ms);
		break;
	default:
		break;
	}
}

/* Ends the session: every DLC on it with err, L2CAP closed, freed at leave(). */
static void session_end(session *s, int err)
{
	for (rfcomm_dlc *d = s->r->dlcs; d; d = d->next)
		if (d->s == s)
			dlc_end(d, err);
	if (s->ch)
		l2cap_close(s->ch);
	s->ch = NULL;
	session_set(s, S_DEAD);
}

static bool session_usable(const session *s)
{
	return s->state != S_DISC0_SENT && s->state != S_PEER_DISC && s->state != S_DEAD;
}

/* An incoming session opened first while our own outgoing one to the same peer is still
 * connecting: its waiting DLCs move here (RFCOMM spec 5.2: one session per device pair). */
static void session_adopt(session *s)
{
	for (session *o = s->r->sessions; o; o = o->next) {
		if (o == s || !o->initiator || !bt_addr_eq(&o->peer, &s->peer) ||
		    (o->state != S_L2CAP_OUT && o->state != S_SABM0_SENT))
			continue;
		for (rfcomm_dlc *d = s->r->dlcs; d; d = d->next)
			if (d->s == o && d->state == D_WAIT_SESSION)
				d->s = s;
		/* Before SABM 0 went out the peer cannot be using it: drop it now. */
		if (o->state == S_L2CAP_OUT && !session_has_dlcs(o))
			session_end(o, 0);
	}
}

static void session_opened(session *s)
{
	session_set(s, S_OPEN);
	if (!s->initiator)
		session_adopt(s);
	for (rfcomm_dlc *d = s->r->dlcs; d; d = d->next)
		if (d->s == s && d->state == D_WAIT_SESSION)
			dlc_start(d);
	session_check_idle(s);
	pump(s);
}

static void session_timer_fire(bt_timer *t, void *ctx)
{
	session *s = ctx;
	rfcomm *r = s->r;
	(void)t;
	enter(r);
	switch (s->state) {
	case S_SABM0_SENT: /* RFCOMM spec 5.3 / TS 07.10 5.7.1: T1 without UA */
	case S_WAIT_SABM0:
		session_end(s, -ETIMEDOUT);
		break;
	case S_OPEN: /* linger over: close the multiplexer (TS 07.10 5.8.2) */
		if (!session_has_dlcs(s)) {
			session_set(s, S_DISC0_SENT);
			s->disc0_out = true;
			send_disc(s, 0);
		}
		break;
	case S_DISC0_SENT:
	case S_PEER_DISC:
		session_end(s, 0);
		break;
	default:
		break;
	}
	leave(r);
}

static session *session_new(rfcomm *r, const bt_addr *peer, bool initiator)
{
	unsigned n = 0;
	for (session *o = r->sessions; o; o = o->next)
		n++;
	if (n >= MAX_SESSIONS)
		return NULL;
	size_t fb = (size_t)r->imtu + 8;
	session *s = calloc(1, sizeof *s + 2 * fb);
	if (!s)
		return NULL;
	s->r = r;
	s->peer = *peer;
	s->initiator = initiator;
	s->state = initiator ? S_L2CAP_OUT : S_L2CAP_IN;
	s->fbuf_size = fb;
	s->fbuf = (uint8_t *)(s + 1);
	s->tmp = s->fbuf + fb;
	bt_timer_init(&s->timer, session_timer_fire, s);
	s->next = r->sessions;
	r->sessions = s;
	return s;
}

/* ================================================================== transmit */

static bool dlc_data_allowed(const rfcomm_dlc *d)
{
	if (d->state != D_OPEN || d->tx_used == 0)
		return false;
	if (d->cfc)
		return d->tx_credits > 0;
	return !d->peer_fc && !(d->s && d->s->fcoff); /* TS 07.10 5.4.6.3.6 / 5.4.6.3.7 */
}

static bool dlc_has_work(const rfcomm_dlc *d)
{
	if (d->state == D_OPEN && d->close_pending && d->tx_used == 0)
		return true;
	return dlc_data_allowed(d) || dlc_grant_due(d);
}

/* DISC for a DLC whose owner closed it (RFCOMM spec 5.2, TS 07.10 5.3.4). */
static void dlc_disconnect(rfcomm_dlc *d)
{
	d->close_pending = false;
	dlc_set(d, D_DISC_SENT);
	send_disc(d->s, d->dlci);
}

/* Builds and sends one UIH frame for d; false if L2CAP had no room. */
static bool dlc_send_one(session *s, rfcomm_dlc *d)
{
	if (d->state == D_OPEN && d->close_pending && d->tx_used == 0) {
		dlc_disconnect(d);
		return true;
	}
	size_t n = 0;
	if (dlc_data_allowed(d))
		n = d->tx_used < d->n1 ? d->tx_used : d->n1;
	/* Credits ride on data whenever any are grantable (RFCOMM spec 6.5.2). */
	uint32_t g = d->cfc ? dlc_grantable(d) : 0;
	if (g > MAX_CREDIT_OCTET)
		g = MAX_CREDIT_OCTET; /* what the frame carries is what we count */
	if (g > 0)
		g = dlc_rx_reserve(d, g);
	int credits = (g > 0 && (n > 0 || dlc_grant_due(d))) ? (int)g : -1;
	if (n == 0 && credits < 0)
		return true;
	size_t first = TX_RING - d->tx_head < n ? TX_RING - d->tx_head : n;
	memcpy(s->tmp, d->tx + d->tx_head, first);
	memcpy(s->tmp + first, d->tx, n - first);
	size_t len = rfcomm_frame_build(s->fbuf, s->fbuf_size, d->dlci, cmd_cr(s), RFCOMM_UIH, false,
					credits, s->tmp, n);
	if (!len || !l2cap_can_send(s->ch, len))
		return false;
	if (l2cap_send(s->ch, s->fbuf, len) < 0)
		return false;
	d->tx_head = (d->tx_head + n) % TX_RING;
	d->tx_used -= n;
	if (n)
		d->full_run = 0; /* we answer: an exchange, not a stream */
	if (n && d->cfc)
		d->tx_credits--;
	/* Closing with data left: T1 bounds a peer that takes nothing, so it counts from the last
	 * frame that went out, not from the close (a slow peer still gets everything). */
	if (n && d->close_pending)
		bt_timer_start(s->r->timers, &d->timer, s->r->cfg.t1_ms);
	if (credits >= 0) {
		d->rx_credits += (uint32_t)credits;
		d->rx_active = r_now(s->r);
		d->grant_now = false;
	}
	if (n && d->want_writable && !d->owner_gone) {
		d->want_writable = false;
		if (d->ops && d->ops->writable)
			d->ops->writable(d->ctx, d);
	}
	return true;
}

static rfcomm_dlc *next_ready(session *s)
{
	unsigned count = 0;
	for (rfcomm_dlc *d = s->r->dlcs; d; d = d->next)
		count++;
	for (unsigned i = 0; i < count; i++) {
		unsigned idx = (s->rr + i) % count;
		rfcomm_dlc *d = s->r->dlcs;
		for (unsigned j = 0; j < idx; j++)
			d = d->next;
		if (d->s == s && !d->dead && dlc_has_work(d)) {
			s->rr = idx + 1;
			return d;
		}
	}
	return NULL;
}

static void pump_once(session *s)
{
	if (!s->ch || !ctrlq_flush(s) || s->state != S_OPEN)
		return;
	for (unsigned guard = 0; guard < 1024; guard++) {
		rfcomm_dlc *d = next_ready(s);
		if (!d || !dlc_send_one(s, d) || s->state != S_OPEN)
			return;
	}
	s->pump_again = true; /* more to do: go round again rather than spin here */
}

static void pump(session *s)
{
	if (s->in_pump) {
		s->pump_again = true;
		return;
	}
	s->in_pump = true;
	unsigned rounds = 0;
	do {
		s->pump_again = false;
		pump_once(s);
	} while (s->pump_again && s->state != S_DEAD && ++rounds < 64);
	s->in_pump = false;
	budget_watch(s->r);
}

static void pump_all(rfcomm *r)
{
	for (session *s = r->sessions; s; s = s->next)
		if (s->state == S_OPEN)
			pump(s);
}

/* Whether some DLC waits for credit the budget cannot give now. If so, arrivals of data
 * (which free budget) pump every session, and a timer looks again when the oldest unused
 * credit turns dormant. */
static void budget_watch(rfcomm *r)
{
	size_t count;
	size_t out = credit_outstanding(r, &count);
	bool waiting = false;
	uint64_t next = UINT64_MAX;
	for (const rfcomm_dlc *d = r->dlcs; d; d = d->next) {
		if (!dlc_counts(d))
			continue;
		size_t n1 = d->n1 ? d->n1 : 1;
		if (d->rx_credits == 0 && (d->state == D_CONFIG || d->state == D_OPEN) && rx_free(d) >= n1 &&
		    budget_room(r, n1, out) == 0)
			waiting = true;
		if (d->rx_credits > 0 && !dlc_dormant(d) && d->rx_active + DORMANT_MS < next)
			next = d->rx_active + DORMANT_MS;
	}
	r->budget_waiting = waiting;
	if (!waiting || next == UINT64_MAX) {
		bt_timer_stop(r->timers, &r->budget_timer);
		return;
	}
	uint64_t now = r_now(r);
	bt_timer_start(r->timers, &r->budget_timer, next > now ? (uint32_t)(next - now) : 1);
}

static void budget_timer_fire(bt_timer *t, void *ctx)
{
	rfcomm *r = ctx;
	(void)t;
	enter(r);
	pump_all(r);
	leave(r);
}

/* ================================================================== receive: DLC frames */

static void on_uih_data(session *s, rfcomm_dlc *d, const rfcomm_frame *f)
{
	rfcomm *r = s->r;
	bool kick = false;
	if (f->has_credits && d->cfc) {
		uint32_t c = d->tx_credits + f->credits;
		d->tx_credits = c > MAX_TX_CREDITS ? MAX_TX_CREDITS : c;
		kick = true;
	}
	if (f->len > 0) {
		/* RFCOMM spec 6.5: a frame without a credit is a peer error: dropped, memory fixed. */
		if (d->cfc && d->rx_credits == 0) {
			r->dropped++;
		} else {
			if (d->cfc) {
				d->rx_credits--;
				d->rx_active = r_now(r);
			}
			if (f->len > d->n1 || f->len > rx_free(d)) {
				r->dropped++; /* larger than N1 (TS 07.10 5.7.2) or no room */
				kick = true;
			} else {
				size_t tail = (d->rx_head + d->rx_used) % d->rx_cap;
				size_t first = d->rx_cap - tail < f->len ? d->rx_cap - tail : f->len;
				memcpy(d->rx + tail, f->info, first);
				memcpy(d->rx, f->info + first, f->len - first);
				d->rx_used += f->len;
				if (d->rx_total < RX_START)
					d->rx_total += f->len;
				if (f->len < d->n1)
					d->full_run = 0;
				else if (d->full_run < STREAM_RUN)
					d->full_run++;
				kick |= d->cfc && d->rx_credits == 0; /* a budget-starved DLC may get one now */
				if (!d->cfc && !d->throttled && rx_free(d) < 2u * d->n1) {
					d->throttled = true; /* TS 07.10 5.4.6.3.7: FC stops the peer */
					send_msc(s, d);
				}
				if (d->state == D_OPEN && !d->owner_gone && d->ops && d->ops->readable)
					d->ops->readable(d->ctx, d);
			}
		}
	}
	if (r->budget_waiting && f->len > 0 && d->cfc)
		pump_all(r); /* the frame freed budget another DLC waits for */
	else if (kick && s->state == S_OPEN)
		pump(s);
}

/* Incoming SABM on a data DLCI: find the server channel and ask its listener
 * (RFCOMM spec 5.4: the peer's DLCs carry the direction bit opposite to ours). */
static void on_sabm(session *s, rfcomm_dlc *d, const rfcomm_frame *f)
{
	rfcomm *r = s->r;
	if (d && (d->state == D_CONFIG || d->state == D_OPEN)) {
		send_ua(s, f->dlci, f->pf); /* repeated SABM on an open DLC */
		return;
	}
	if (d && d->state == D_SEC_WAIT && d->sec_in)
		return; /* repeated while the link is being secured: the UA or DM comes then */
	if (d && d->state != D_PN_RCVD) {
		send_dm(s, f->dlci, f->pf);
		return;
	}
	uint8_t ch = f->dlci >> 1;
	bool dir_ok = (f->dlci & 1) == (s->initiator ? 1 : 0);
	listener *l = ch >= RFCOMM_CHANNEL_MIN && ch <= RFCOMM_CHANNEL_MAX ? &r->servers[ch] : NULL;
	if (!dir_ok || !l || !l->fn) {
		send_dm(s, f->dlci, f->pf);
		if (d)
			dlc_end(d, -ECONNREFUSED);
		return;
	}
	if (!d) {
		d = dlc_new(r, s, &s->peer, ch);
		if (!d) {
			send_dm(s, f->dlci, f->pf);
			return;
		}
		d->owner_gone = true;
		d->dlci = f->dlci;
		d->n1 = our_n1(s) < DEFAULT_N1 ? our_n1(s) : DEFAULT_N1;
	}
	d->level = l->level;
	int shortfall = d->level ? l2cap_chan_sec_shortfall(s->ch, d->level) : 0;
	if (shortfall && shortfall != HCI_SEC_WEAK_KEY) { /* not encrypted yet */
		d->sec_pf = f->pf;
		dlc_secure(d, true);
		return;
	}
	if (shortfall) { /* encrypted with a weaker key: refused, not re-paired (as L2CAP) */
		d->sec_reason = shortfall;
		send_dm(s, f->dlci, f->pf);
		dlc_end(d, -EACCES);
		return;
	}
	dlc_accept(d, f->pf);
}

/* Hands an incoming DLC to its server's listener: UA and connected, or DM. */
static void dlc_accept(rfcomm_dlc *d, bool pf)
{
	session *s = d->s;
	uint8_t ch = d->dlci >> 1;
	listener *l = &s->r->servers[ch];
	const rfcomm_dlc_ops *ops = NULL;
	void *ctx = NULL;
	if (!l->fn || l->fn(l->ctx, d, &ops, &ctx) < 0) {
		send_dm(s, d->dlci, pf);
		dlc_end(d, -ECONNREFUSED);
		return;
	}
	d->ops = ops;
	d->ctx = ctx;
	d->owner_gone = false;
	send_ua(s, d->dlci, pf);
	dlc_connected(d);
}

void rfcomm_link_secured(rfcomm *r, uint16_t handle, int err, int reason)
{
	enter(r);
	for (rfcomm_dlc *d = r->dlcs; d; d = d->next) {
		if (d->state != D_SEC_WAIT || !d->s || !d->s->ch || l2cap_chan_handle(d->s->ch) != handle)
			continue;
		int shortfall = err ? (reason ? reason : HCI_SEC_PEER_AUTH_FAILURE)
				    : l2cap_chan_sec_shortfall(d->s->ch, d->level);
		dlc_secured(d, shortfall);
	}
	leave(r);
}

int rfcomm_dlc_sec_reason(const rfcomm_dlc *d)
{
	return d->sec_reason;
}

static void on_dlc_disc(session *s, rfcomm_dlc *d, const rfcomm_frame *f)
{
	if (!d || d->state == D_PN_RCVD || d->state == D_PN_SENT || d->state == D_SABM_SENT) {
		/* TS 07.10 5.3.4: DISC in disconnected mode is answered with DM. */
		send_dm(s, f->dlci, f->pf);
		if (d)
			dlc_end(d, -ECONNRESET);
		return;
	}
	send_ua(s, f->dlci, f->pf);
	dlc_end(d, 0);
}

static void on_dlc_dm(rfcomm_dlc *d)
{
	switch (d->state) {
	case D_PN_SENT:
	case D_SABM_SENT: /* RFCOMM spec 5.2: DM answers a SABM nobody listens for */
		/* ... and the one a server refusing for security sends too (Core Vol 3 Part C
		 * 5.2.2: it secures the link before its UA): if a pairing we answered on this link
		 * has just failed, that is why. */
		d->sec_reason = l2cap_chan_pairing_failure(d->s->ch);
		dlc_end(d, d->sec_reason ? -EACCES : -ECONNREFUSED);
		break;
	case D_DISC_SENT:
		dlc_end(d, 0);
		break;
	default:
		dlc_end(d, -ECONNRESET);
		break;
	}
}

static void on_dlc_frame(session *s, const rfcomm_frame *f)
{
	if (s->state != S_OPEN) {
		/* No DLC exists before the multiplexer is up (TS 07.10 5.4.1). */
		if (f->ctrl == RFCOMM_SABM || f->ctrl == RFCOMM_DISC)
			send_dm(s, f->dlci, f->pf);
		return;
	}
	rfcomm_dlc *d = dlc_find(s, f->dlci);
	switch (f->ctrl) {
	case RFCOMM_SABM:
		on_sabm(s, d, f);
		break;
	case RFCOMM_UA:
		if (d && d->state == D_SABM_SENT)
			dlc_connected(d);
		else if (d && d->state == D_DISC_SENT)
			dlc_end(d, 0);
		break;
	case RFCOMM_DM:
		if (d)
			on_dlc_dm(d);
		break;
	case RFCOMM_DISC:
		on_dlc_disc(s, d, f);
		break;
	case RFCOMM_UIH:
		if (d && (d->state == D_CONFIG || d->state == D_OPEN))
			on_uih_data(s, d, f);
		else if (!d || d->state == D_PN_RCVD)
			send_dm(s, f->dlci, false); /* TS 07.10 5.3.3: UIH on a closed DLCI */
		break;
	default:
		break;
	}
}

/* ================================================================== receive: mux commands */

/* Applies a PN to d (TS 07.10 5.4.6.3.1, RFCOMM spec 5.5.3) and answers it. */
static void pn_respond(session *s, rfcomm_dlc *d, const rfcomm_pn *pn)
{
	if (d->state == D_PN_RCVD || d->state == D_PN_SENT || d->state == D_SABM_SENT) {
		uint16_t ours = our_n1(s);
		d->n1 = pn->n1 && pn->n1 < ours ? pn->n1 : ours;
		d->priority = pn->priority;
		d->cfc = pn->cl == RFCOMM_PN_CL_CFC_REQ;
		d->rx_credits = 0;
		d->k_sent = d->cfc ? (uint8_t)dlc_rx_reserve(d, dlc_initial_credits(d)) : 0;
		d->rx_credits = d->k_sent;
		d->rx_active = r_now(s->r);
		d->tx_credits = d->cfc ? pn->k : 0;
	}
	/* Once connected the parameters stand; the response repeats them. */
	send_pn(s, d, false, d->cfc ? RFCOMM_PN_CL_CFC_RSP : 0, d->state == D_OPEN || d->state == D_CONFIG ? 0 : d->k_sent);
}

static void on_pn_cmd(session *s, const rfcomm_pn *pn)
{
	rfcomm *r = s->r;
	if (pn->dlci == 0) {
		/* DLCI 0 is the multiplexer itself, not a DLC to negotiate (TS 07.10 5.4.6.3.1):
		 * a DM on DLCI 0 would tell the peer the whole session is down. Ignored. */
		r->dropped++;
		return;
	}
	rfcomm_dlc *d = dlc_find(s, pn->dlci);
	if (d) {
		pn_respond(s, d, pn);
		return;
	}
	uint8_t ch = pn->dlci >> 1;
	bool dir_ok = (pn->dlci & 1) == (s->initiator ? 1 : 0);
	if (!dir_ok || ch < RFCOMM_CHANNEL_MIN || ch > RFCOMM_CHANNEL_MAX || !r->servers[ch].fn) {
		send_dm(s, pn->dlci, true);
		return;
	}
	d = dlc_new(r, s, &s->peer, ch);
	if (!d) {
		send_dm(s, pn->dlci, true);
		return;
	}
	d->owner_gone = true; /* until a listener accepts it at SABM */
	d->dlci = pn->dlci;
	dlc_set(d, D_PN_RCVD);
	pn_respond(s, d, pn);
}

static void on_pn_rsp(session *s, const rfcomm_pn *pn)
{
	rfcomm_dlc *d = dlc_find(s, pn->dlci);
	if (!d || d->state != D_PN_SENT)
		return;
	if (pn->n1 && pn->n1 < d->n1)
		d->n1 = pn->n1;
	d->cfc = pn->cl == RFCOMM_PN_CL_CFC_RSP;
	d->tx_credits = d->cfc ? pn->k : 0;
	d->rx_credits = d->cfc ? d->k_sent : 0;
	d->rx_active = r_now(s->r);
	dlc_set(d, D_SABM_SENT);
	send_sabm(s, d->dlci);
}

static void on_msc(session *s, const rfcomm_mcc *m)
{
	rfcomm_msc msc;
	if (rfcomm_msc_decode(m->val, m->len, &msc) < 0)
		return;
	rfcomm_dlc *d = dlc_find(s, msc.dlci);
	if (!d || (d->state != D_CONFIG && d->state != D_OPEN))
		return;
	if (!m->cr) {
		d->msc_out = true;
		dlc_maybe_open(d);
		return;
	}
	/* TS 07.10 5.4.6.3.7: the response echoes the command's value. */
	uint8_t v[3];
	msc.has_break = false;
	send_mcc(s, RFCOMM_MCC_MSC, false, v, rfcomm_msc_encode(&msc, v));
	d->peer_v24 = msc.v24;
	if (!d->cfc) /* RFCOMM spec 6.5: with credits the FC bit is not used */
		d->peer_fc = (msc.v24 & RFCOMM_V24_FC) != 0;
	d->msc_in = true;
	dlc_maybe_open(d);
	pump(s);
}

static void on_rpn(session *s, const rfcomm_mcc *m)
{
	rfcomm_rpn rpn;
	if (!m->cr || rfcomm_rpn_decode(m->val, m->len, &rpn) < 0)
		return;
	if (!rpn.has_values) {
		/* A query: report the usual defaults, 9600 8N1 no flow control (TS 07.10 5.4.6.3.9). */
		rpn.has_values = true;
		rpn.bit_rate = 0x03;
		rpn.line = 0x03;
		rpn.flow = 0x00;
		rpn.xon = 0x11;
		rpn.xoff = 0x13;
		rpn.mask = 0x3f7f;
	}
	/* Otherwise accept every parameter the peer set: echo its values and mask. */
	uint8_t v[8];
	send_mcc(s, RFCOMM_MCC_RPN, false, v, rfcomm_rpn_encode(&rpn, v));
}

static void on_mcc(session *s, const rfcomm_mcc *m)
{
	rfcomm_pn pn;
	rfcomm_rls rls;
	uint8_t v[8];
	switch (m->type) {
	case RFCOMM_MCC_PN:
		if (rfcomm_pn_decode(m->val, m->len, &pn) < 0)
			return;
		if (m->cr)
			on_pn_cmd(s, &pn);
		else
			on_pn_rsp(s, &pn);
		break;
	case RFCOMM_MCC_MSC:
		on_msc(s, m);
		break;
	case RFCOMM_MCC_RPN:
		on_rpn(s, m);
		break;
	case RFCOMM_MCC_RLS: /* TS 07.10 5.4.6.3.10: acknowledged by echoing it */
		if (m->cr && rfcomm_rls_decode(m->val, m->len, &rls) == 0)
			send_mcc(s, RFCOMM_MCC_RLS, false, v, rfcomm_rls_encode(&rls, v));
		break;
	case RFCOMM_MCC_TEST:
		/* TS 07.10 5.4.6.3.4: the response carries exactly the same pattern, so a pattern
		 * whose response would not fit our outgoing frame (frame_room) cannot be cut: it is
		 * not answered, and the peer's test fails as it should. */
		if (m->cr)
			send_mcc(s, RFCOMM_MCC_TEST, false, m->val, m->len);
		break;
	case RFCOMM_MCC_FCON:
	case RFCOMM_MCC_FCOFF: /* TS 07.10 5.4.6.3.5/6: aggregate flow control */
		if (m->cr) {
			s->fcoff = m->type == RFCOMM_MCC_FCOFF;
			send_mcc(s, m->type, false, NULL, 0);
			pump(s);
		}
		break;
	case RFCOMM_MCC_NSC:
		break; /* the peer lacks a command we sent; nothing we send is optional */
	default:
		/* TS 07.10 5.4.6.3.8: an unknown (or, for RFCOMM, unsupported: PSC, CLD) command
		 * gets NSC; unknown responses are ignored. */
		if (m->cr)
			send_mcc(s, RFCOMM_MCC_NSC, false, v, rfcomm_nsc_encode(m->type, m->cr, v));
		break;
	}
}

static void on_mux_uih(session *s, const rfcomm_frame *f)
{
	size_t off = 0;
	/* TS 07.10 5.4.6.1: a frame may carry several messages. */
	while (off < f->len && s->state == S_OPEN) {
		rfcomm_mcc m;
		int used = rfcomm_mcc_parse(f->info + off, f->len - off, &m);
		if (used <= 0) {
			s->r->dropped++;
			return;
		}
		off += (size_t)used;
		on_mcc(s, &m);
	}
}

/* Frames on DLCI 0: the multiplexer itself (TS 07.10 5.4.1, 5.8). */
static void on_mux_frame(session *s, const rfcomm_frame *f)
{
	switch (f->ctrl) {
	case RFCOMM_SABM:
		if (s->state == S_WAIT_SABM0 || (s->state == S_OPEN && !s->initiator)) {
			send_ua(s, 0, f->pf);
			if (s->state == S_WAIT_SABM0)
				session_opened(s);
		} else {
			send_dm(s, 0, f->pf);
		}
		break;
	case RFCOMM_UA:
		if (s->state == S_SABM0_SENT)
			session_opened(s);
		else if (s->state == S_DISC0_SENT || (s->state == S_PEER_DISC && s->disc0_out))
			session_end(s, 0); /* crossed DISCs (both lingered out): both answered, done */
		break;
	case RFCOMM_DM:
		if (s->state == S_SABM0_SENT)
			session_end(s, -ECONNREFUSED);
		else if (s->state == S_DISC0_SENT)
			session_end(s, 0);
		break;
	case RFCOMM_DISC:
		if (s->state != S_OPEN && s->state != S_DISC0_SENT) {
			send_dm(s, 0, f->pf);
			break;
		}
		/* The peer closes the multiplexer: every DLC ends; it drops L2CAP next. */
		send_ua(s, 0, f->pf);
		for (rfcomm_dlc *d = s->r->dlcs; d; d = d->next)
			if (d->s == s)
				dlc_end(d, -ECONNRESET);
		session_set(s, S_PEER_DISC);
		break;
	case RFCOMM_UIH:
		if (s->state == S_OPEN)
			on_mux_uih(s, f);
		break;
	default:
		break;
	}
}

/* ================================================================== L2CAP callbacks */

static void l2_opened(void *ctx, l2cap_chan *ch)
{
	session *s = ctx;
	rfcomm *r = s->r;
	(void)ch;
	enter(r);
	if (s->state == S_L2CAP_OUT) {
		session_set(s, S_SABM0_SENT);
		send_sabm(s, 0); /* RFCOMM spec 5.2.1: SABM on DLCI 0 starts the session */
	} else if (s->state == S_L2CAP_IN) {
		session_set(s, S_WAIT_SABM0);
	}
	leave(r);
}

static void l2_data(void *ctx, l2cap_chan *ch, const uint8_t *p, size_t len)
{
	session *s = ctx;
	rfcomm *r = s->r;
	(void)ch;
	enter(r);
	rfcomm_frame f;
	if (s->state == S_DEAD || rfcomm_frame_parse(p, len, &f) < 0) {
		r->dropped++; /* TS 07.10 5.2.6: invalid frames are discarded */
	} else if (f.dlci == 0) {
		on_mux_frame(s, &f);
	} else {
		on_dlc_frame(s, &f);
	}
	leave(r);
}

static void l2_writable(void *ctx, l2cap_chan *ch)
{
	session *s = ctx;
	rfcomm *r = s->r;
	(void)ch;
	enter(r);
	if (s->state != S_DEAD)
		pump(s);
	leave(r);
}

static void l2_closed(void *ctx, l2cap_chan *ch, int err)
{
	session *s = ctx;
	rfcomm *r = s->r;
	(void)ch;
	enter(r);
	/* L2CAP's reason says what happened (refused, host down, link timed out or reset,
	 * adapter gone); a channel the peer closed under open DLCs is a reset for them. */
	session_end(s, err ? err : -ECONNRESET);
	leave(r);
}

static const l2cap_chan_ops l2_ops = { l2_opened, l2_data, l2_writable, l2_closed };

/* One session per device pair (RFCOMM spec 5.2): a peer's new L2CAP channel to PSM 3 ends its
 * earlier incoming sessions that carry no DLC. A peer that floods PSM 3 with Connection
 * Requests it never uses thus holds one session slot, not all MAX_SESSIONS of them, and its
 * own next session (or anyone else's) is served. */
static void end_idle_sessions_of(rfcomm *r, const bt_addr *peer)
{
	for (session *o = r->sessions; o; o = o->next)
		if (!o->initiator && o->state != S_DEAD && bt_addr_eq(&o->peer, peer) && !session_has_dlcs(o))
			session_end(o, 0);
}

static int l2_accept(void *srv_ctx, l2cap_chan *ch, const l2cap_chan_ops **ops, void **ctx)
{
	rfcomm *r = srv_ctx;
	enter(r);
	end_idle_sessions_of(r, l2cap_chan_peer(ch));
	leave(r);
	session *s = session_new(r, l2cap_chan_peer(ch), false);
	if (!s)
		return -ENOBUFS;
	s->ch = ch;
	*ops = &l2_ops;
	*ctx = s;
	return 0;
}

/* ================================================================== DLC timer */

static void dlc_timer_fire(bt_timer *t, void *ctx)
{
	rfcomm_dlc *d = ctx;
	rfcomm *r = d->r;
	(void)t;
	enter(r);
	switch (d->state) {
	case D_PN_SENT:   /* T2 without a PN response */
	case D_SABM_SENT: /* T1 without UA or DM (RFCOMM spec 5.3) */
	case D_PN_RCVD:
		dlc_end(d, -ETIMEDOUT);
		break;
	case D_CONFIG: /* no MSC from a lax peer within T2: open anyway */
		d->msc_in = d->msc_out = true;
		dlc_maybe_open(d);
		break;
	case D_OPEN: /* close_pending and the data could not drain within T1 */
		if (d->close_pending && d->s) {
			dlc_disconnect(d);
			pump(d->s);
		}
		break;
	case D_DISC_SENT:
		dlc_end(d, -ETIMEDOUT);
		break;
	default:
		break;
	}
	leave(r);
}

/* ================================================================== public API */

rfcomm *rfcomm_new(const rfcomm_config *cfg, l2cap *l, bt_timers *timers)
{
	rfcomm *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	if (cfg)
		r->cfg = *cfg;
	if (!r->cfg.t1_ms)
		r->cfg.t1_ms = 10000;
	if (!r->cfg.t2_ms)
		r->cfg.t2_ms = 10000;
	if (!r->cfg.linger_ms)
		r->cfg.linger_ms = 2000;
	if (!r->cfg.rx_buffer || r->cfg.rx_buffer > RX_MAX)
		r->cfg.rx_buffer = RX_MAX;
	if (r->cfg.rx_buffer < RX_MIN)
		r->cfg.rx_buffer = RX_MIN;
	if (!r->cfg.rx_budget)
		r->cfg.rx_budget = DEFAULT_RX_BUDGET;
	size_t imtu = DEFAULT_IMTU;
	if (r->cfg.max_frame && (size_t)r->cfg.max_frame + RFCOMM_MAX_OVERHEAD > imtu)
		imtu = (size_t)r->cfg.max_frame + RFCOMM_MAX_OVERHEAD;
	if (imtu > L2CAP_MAX_MTU)
		imtu = L2CAP_MAX_MTU;
	r->imtu = (uint16_t)imtu;
	r->l = l;
	r->timers = timers;
	bt_timer_init(&r->budget_timer, budget_timer_fire, r);
	if (l2cap_listen(l, L2CAP_PSM_RFCOMM, r->imtu, l2_accept, r) < 0) {
		free(r);
		return NULL;
	}
	r->listening = true;
	return r;
}

void rfcomm_free(rfcomm *r)
{
	if (!r)
		return;
	while (r->dlcs) {
		rfcomm_dlc *d = r->dlcs;
		r->dlcs = d->next;
		bt_timer_stop(r->timers, &d->timer);
		free(d->rx);
		free(d);
	}
	while (r->sessions) {
		session *s = r->sessions;
		r->sessions = s->next;
		bt_timer_stop(r->timers, &s->timer);
		if (s->ch)
			l2cap_close(s->ch);
		free(s);
	}
	if (r->listening)
		l2cap_unlisten(r->l, L2CAP_PSM_RFCOMM);
	bt_timer_stop(r->timers, &r->budget_timer);
	free(r);
}

int rfcomm_listen(rfcomm *r, uint8_t channel, rfcomm_accept_fn fn, void *srv_ctx)
{
	return rfcomm_listen_sec(r, channel, L2CAP_SEC_LOW, fn, srv_ctx);
}

int rfcomm_listen_sec(rfcomm *r, uint8_t channel, l2cap_sec_level level, rfcomm_accept_fn fn, void *srv_ctx)
{
	if (!fn || channel > RFCOMM_CHANNEL_MAX || level > L2CAP_SEC_FIPS)
		return -EINVAL;
	if (channel == 0) {
		for (uint8_t c = RFCOMM_CHANNEL_MIN; c <= RFCOMM_CHANNEL_MAX && !channel; c++)
			if (!r->servers[c].fn)
				channel = c;
		if (!channel)
			return -EADDRINUSE;
	}
	if (r->servers[channel].fn)
		return -EADDRINUSE;
	r->servers[channel].fn = fn;
	r->servers[channel].ctx = srv_ctx;
	r->servers[channel].level = (uint8_t)level;
	return channel;
}

void rfcomm_unlisten(rfcomm *r, uint8_t channel)
{
	if (channel >= RFCOMM_CHANNEL_MIN && channel <= RFCOMM_CHANNEL_MAX)
		memset(&r->servers[channel], 0, sizeof r->servers[channel]);
}

static session *session_for_peer(rfcomm *r, const bt_addr *peer)
{
	session *best = NULL;
	for (session *s = r->sessions; s; s = s->next) {
		if (!session_usable(s) || !bt_addr_eq(&s->peer, peer))
			continue;
		if (!best || (s->state == S_OPEN && best->state != S_OPEN))
			best = s;
	}
	return best;
}

int rfcomm_connect(rfcomm *r, const bt_addr *peer, uint8_t channel, const rfcomm_dlc_ops *ops,
		   void *ctx, rfcomm_dlc **out)
{
	return rfcomm_connect_sec(r, peer, channel, L2CAP_SEC_LOW, ops, ctx, out);
}

int rfcomm_connect_sec(rfcomm *r, const bt_addr *peer, uint8_t channel, l2cap_sec_level level,
		       const rfcomm_dlc_ops *ops, void *ctx, rfcomm_dlc **out)
{
	if (channel < RFCOMM_CHANNEL_MIN || channel > RFCOMM_CHANNEL_MAX || !peer || !out ||
	    level > L2CAP_SEC_FIPS)
		return -EINVAL;
	enter(r);
	int err = 0;
	session *s = session_for_peer(r, peer);
	bool fresh = false;
	if (s && s->state == S_OPEN) {
		uint8_t dlci = (uint8_t)(channel << 1 | (s->initiator ? 0 : 1));
		if (dlc_find(s, dlci))
			err = -EADDRINUSE;
	}
	if (!err && !s) {
		s = session_new(r, peer, true);
		if (!s)
			err = -ENOBUFS;
		else
			fresh = true;
	}
	if (!err && fresh) {
		err = l2cap_connect_sec(r->l, peer, L2CAP_PSM_RFCOMM, r->imtu, level, &l2_ops, s, &s->ch);
		if (err < 0) {
			s->ch = NULL;
			session_set(s, S_DEAD);
		}
	}
	rfcomm_dlc *d = NULL;
	if (!err) {
		d = dlc_new(r, s, peer, channel);
		if (!d) {
			err = -ENOMEM;
			if (fresh)
				session_end(s, -ENOMEM);
		}
	}
	if (!err) {
		d->ops = ops;
		d->ctx = ctx;
		d->level = (uint8_t)level;
		*out = d;
		if (s->state == S_OPEN) {
			dlc_start(d);
			pump(s);
		}
	}
	leave(r);
	return err;
}

/* Whether the DLC takes data from its owner now; 0, or the -errno rfcomm_write reports. */
static int dlc_writable_state(const rfcomm_dlc *d)
{
	if ((d->state != D_OPEN && d->state != D_CONFIG) || d->close_pending || d->owner_gone) {
		if (d->state == D_CLOSED && d->announced)
			return d->close_err == 0 ? -EPIPE : d->close_err; /* the reason it ended */
		return -ENOTCONN;
	}
	return 0;
}

/* The bytes just placed at the ring's tail are queued: frames go out as credits allow. */
static void dlc_tx_added(rfcomm_dlc *d, size_t n)
{
	d->tx_used += n;
	enter(d->r);
	rfcomm *r = d->r;
	if (d->s)
		pump(d->s);
	leave(r);
}

ssize_t rfcomm_write(rfcomm_dlc *d, const uint8_t *p, size_t len)
{
	int st = dlc_writable_state(d);
	if (st < 0)
		return st;
	if (len == 0)
		return 0;
	size_t room = TX_RING - d->tx_used;
	size_t n = len < room ? len : room;
	if (n == 0) {
		d->want_writable = true;
		return -EAGAIN;
	}
	size_t tail = (d->tx_head + d->tx_used) % TX_RING;
	size_t first = TX_RING - tail < n ? TX_RING - tail : n;
	memcpy(d->tx + tail, p, first);
	memcpy(d->tx, p + first, n - first);
	if (n < len)
		d->want_writable = true;
	dlc_tx_added(d, n);
	return (ssize_t)n;
}

ssize_t rfcomm_write_space(rfcomm_dlc *d, uint8_t **p)
{
	int st = dlc_writable_state(d);
	if (st < 0)
		return st;
	size_t room = TX_RING - d->tx_used;
	size_t tail = (d->tx_head + d->tx_used) % TX_RING;
	size_t contiguous = TX_RING - tail < room ? TX_RING - tail : room;
	if (contiguous == 0)
		d->want_writable = true;
	*p = d->tx + tail;
	return (ssize_t)contiguous;
}

void rfcomm_write_commit(rfcomm_dlc *d, size_t n)
{
	size_t room = TX_RING - d->tx_used;
	if (n == 0 || dlc_writable_state(d) < 0)
		return;
	dlc_tx_added(d, n < room ? n : room);
}

size_t rfcomm_peek(const rfcomm_dlc *d, const uint8_t **p)
{
	size_t first = d->rx_cap - d->rx_head;
	*p = d->rx + d->rx_head;
	return d->rx_used < first ? d->rx_used : first;
}

void rfcomm_consume(rfcomm_dlc *d, size_t n)
{
	if (n > d->rx_used)
		n = d->rx_used;
	d->rx_head = (d->rx_head + n) % d->rx_cap;
	d->rx_used -= n;
	if (!n || !d->s || d->state != D_OPEN)
		return;
	rfcomm *r = d->r;
	enter(r);
	if (!d->cfc && d->throttled && rx_free(d) >= d->rx_cap / 2) {
		d->throttled = false; /* room again: lift FC (TS 07.10 5.4.6.3.7) */
		send_msc(d->s, d);
	}
	if (dlc_grant_due(d))
		pump(d->s);
	leave(r);
}

size_t rfcomm_read(rfcomm_dlc *d, uint8_t *p, size_t len)
{
	size_t n = len < d->rx_used ? len : d->rx_used;
	rx_copy_out(d, p, n);
	rfcomm_consume(d, n);
	return n;
}

size_t rfcomm_readable(const rfcomm_dlc *d) { return d->rx_used; }

void rfcomm_close(rfcomm_dlc *d)
{
	if (!d || d->owner_gone)
		return;
	rfcomm *r = d->r;
	enter(r);
	d->owner_gone = true;
	d->notify_closed = false;
	session *s = d->s;
	switch (d->state) {
	case D_CONFIG:
	case D_OPEN:
		if (d->tx_used > 0) {
			d->close_pending = true; /* send what was written first, T1 at most */
			if (d->state == D_OPEN) /* D_CONFIG: T2 runs, then T1 from D_OPEN */
				bt_timer_start(r->timers, &d->timer, r->cfg.t1_ms);
		} else {
			dlc_disconnect(d);
		}
		break;
	case D_SABM_SENT: /* the peer may open it anyway: close it properly */
		dlc_disconnect(d);
		break;
	case D_DISC_SENT:
		break;
	case D_CLOSED:
		d->dead = true;
		break;
	default:
		dlc_end(d, 0);
		break;
	}
	if (s && s->state != S_DEAD)
		pump(s);
	leave(r);
}

uint8_t rfcomm_dlc_channel(const rfcomm_dlc *d) { return d->channel; }
const bt_addr *rfcomm_dlc_peer(const rfcomm_dlc *d) { return &d->peer; }
uint16_t rfcomm_dlc_mtu(const rfcomm_dlc *d) { return d->n1; }
void rfcomm_dlc_set_ops(rfcomm_dlc *d, const rfcomm_dlc_ops *ops, void *ctx)
{
	d->ops = ops;
	d->ctx = ctx;
}

bool rfcomm_rx_streaming(const rfcomm *r)
{
	for (const rfcomm_dlc *d = r->dlcs; d; d = d->next)
		if (d->full_run >= STREAM_RUN)
			return true;
	return false;
}

bool rfcomm_tx_idle(const rfcomm *r)
{
	for (const rfcomm_dlc *d = r->dlcs; d; d = d->next)
		if (d->tx_used)
			return false;
	return true;
}

size_t rfcomm_tx_pending(const rfcomm *r, const bt_addr *peer, uint8_t channel)
{
	size_t n = 0;
	for (const rfcomm_dlc *d = r->dlcs; d; d = d->next)
		if (d->state == D_OPEN && d->channel == channel && bt_addr_eq(&d->peer, peer))
			n += d->tx_used;
	return n;
}

bool rfcomm_dlc_lingers(const rfcomm *r, const bt_addr *peer, uint8_t channel)
{
	for (const rfcomm_dlc *d = r->dlcs; d; d = d->next)
		if (d->owner_gone && !d->dead && d->channel == channel && bt_addr_eq(&d->peer, peer))
			return true;
	return false;
}
