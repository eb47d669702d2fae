/* stack.c - one host stack: wires HCI's upward callbacks to L2CAP and GAP, and owns the
 * timers every layer shares. The only place that knows all the layers. */
#include "stack/stack.h"

#include <errno.h>
#include <stdlib.h>

#include "gap/gap.h"
#include "sdp/sdp.h"


struct bt_stack {
	bt_stack_config cfg;
	bt_timers timers;
	hci *hci;
	l2cap *l2cap;
	rfcomm *rfcomm;
	gap *gap;
	sdp_server *sdp;
};

/* ---- HCI -> upper layers */

static void up_ready(void *ctx, int err)
{
	bt_stack *s = ctx;
	/* The name goes into the extended inquiry response too, so inquiries show it. */
	if (err == 0)
		gap_write_local_name(s->gap, s->cfg.hci.local_name ? s->cfg.hci.local_name : "btsock", NULL, NULL);
	if (s->cfg.ready)
		s->cfg.ready(s->cfg.ctx, err);
}
static void up_link_up(void *ctx, uint16_t handle, const bt_addr *peer, bool initiator)
{
	bt_stack *s = ctx;
	l2cap_link_up(s->l2cap, handle, peer, initiator);
	gap_link_up(s->gap, handle, peer); /* a gap_pair() waiting for it */
}
static void up_link_down(void *ctx, uint16_t handle, const bt_addr *peer, int err)
{
	bt_stack *s = ctx;
	l2cap_link_down(s->l2cap, handle, peer, err);
	gap_link_down(s->gap, handle, peer, err);
}
static void up_connect_failed(void *ctx, const bt_addr *peer, int err)
{
	bt_stack *s = ctx;
	l2cap_connect_failed(s->l2cap, peer, err);
	gap_connect_failed(s->gap, peer, err);
}
static void up_acl(void *ctx, uint16_t handle, const uint8_t *pdu, size_t len)
{
	bt_stack *s = ctx;
	l2cap_acl(s->l2cap, handle, pdu, len);
}
static size_t up_pull(void *ctx, uint16_t *handle, uint8_t *buf, size_t cap)
{
	bt_stack *s = ctx;
	return l2cap_pull(s->l2cap, handle, buf, cap);
}
static void up_link_secured(void *ctx, uint16_t handle, int err, int reason)
{
	bt_stack *s = ctx;
	l2cap_link_secured(s->l2cap, handle, err, reason);
	rfcomm_link_secured(s->rfcomm, handle, err, reason);
	gap_link_secured(s->gap, handle, err, reason);
}
static void up_link_features(void *ctx, uint16_t handle)
{
	bt_stack *s = ctx;
	l2cap_link_features(s->l2cap, handle);
}
static void up_key_missing(void *ctx, const bt_addr *peer)
{
	bt_stack *s = ctx;
	gap_link_key_lost(s->gap, peer);
}
static void up_event(void *ctx, uint8_t code, const uint8_t *p, size_t len)
{
	bt_stack *s = ctx;
	gap_event(s->gap, code, p, len);
}
static void up_fatal(void *ctx, int err)
{
	bt_stack *s = ctx;
	if (s->cfg.fatal)
		s->cfg.fatal(s->cfg.ctx, err);
}
static void io_send(void *ctx, const uint8_t *pkt, size_t len)
{
	bt_stack *s = ctx;
	s->cfg.send(s->cfg.ctx, pkt, len);
}
static void io_trace_in(void *ctx, const uint8_t *pkt, size_t len)
{
	bt_stack *s = ctx;
	s->cfg.trace_in(s->cfg.ctx, pkt, len);
}

bt_stack *bt_stack_new(const bt_stack_config *cfg, uint64_t now)
{
	bt_stack *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->cfg = *cfg;
	s->timers.now = now;
	hci_io io = { .ctx = s, .send = io_send, .trace_in = cfg->trace_in ? io_trace_in : NULL };
	hci_upper up = {
		.ctx = s,
		.ready = up_ready,
		.link_up = up_link_up,
		.link_down = up_link_down,
		.connect_failed = up_connect_failed,
		.acl = up_acl,
		.pull = up_pull,
		.event = up_event,
		.link_secured = up_link_secured,
		.key_missing = up_key_missing,
		.link_features = up_link_features,
		.fatal = up_fatal,
	};
	s->hci = hci_new(&cfg->hci, &io, &up, &s->timers);
	s->l2cap = s->hci ? l2cap_new(&cfg->l2cap, s->hci, &s->timers) : NULL;
	s->rfcomm = s->l2cap ? rfcomm_new(&cfg->rfcomm, s->l2cap, &s->timers) : NULL;
	s->gap = s->hci ? gap_new(s->hci, &s->timers) : NULL;
	s->sdp = s->l2cap ? sdp_server_new(s->l2cap) : NULL;
	if (!s->hci || !s->l2cap || !s->rfcomm || !s->gap || !s->sdp) {
		bt_stack_free(s);
		return NULL;
	}
	return s;
}

void bt_stack_free(bt_stack *s)
{
	if (!s)
		return;
	/* Top down, so no layer outlives the one below it. */
	sdp_server_free(s->sdp);
	gap_free(s->gap);
	rfcomm_free(s->rfcomm);
	l2cap_free(s->l2cap);
	hci_free(s->hci);
	free(s);
}

void bt_stack_start(bt_stack *s, uint64_t now)
{
	bt_timers_run(&s->timers, now);
	hci_start(s->hci);
}

void bt_stack_packet(bt_stack *s, const uint8_t *pkt, size_t len, uint64_t now)
{
	if (now > s->timers.now)
		s->timers.now = now;
	hci_packet(s->hci, pkt, len);
}

void bt_stack_run_timers(bt_stack *s, uint64_t now) { bt_timers_run(&s->timers, now); }
uint64_t bt_stack_next_deadline(const bt_stack *s) { return bt_timers_next(&s->timers); }
const char *bt_stack_error(const bt_stack *s) { return hci_error(s->hci); }

bool bt_stack_rx_streaming(const bt_stack *s) { return rfcomm_rx_streaming(s->rfcomm); }

bool bt_stack_tx_idle(const bt_stack *s)
{
	return rfcomm_tx_idle(s->rfcomm) && l2cap_tx_idle(s->l2cap) && hci_tx_idle(s->hci);
}

hci *bt_stack_hci(bt_stack *s) { return s->hci; }
l2cap *bt_stack_l2cap(bt_stack *s) { return s->l2cap; }
rfcomm *bt_stack_rfcomm(bt_stack *s) { return s->rfcomm; }
gap *bt_stack_gap(bt_stack *s) { return s->gap; }
sdp_server *bt_stack_sdp(bt_stack *s) { return s->sdp; }
bt_timers *bt_stack_timers(bt_stack *s) { return &s->timers; }
