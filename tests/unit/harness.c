/* harness.c - see harness.h. A test's controller side, built from Core spec packet layouts
 * (Vol 4 Part E 7.7 events, 5.4 packets; Vol 3 Part A 4 signalling). */
#include "harness.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "hci/hci_defs.h"
#include "transport/h4.h"

#define OUTQ 512
#define PDU_MAX 8192

typedef struct {
	uint16_t handle, cid;
	size_t len;
	uint8_t data[PDU_MAX];
} pdu;

struct harness {
	bt_stack *s;
	uint64_t now;
	bt_addr addr;
	uint16_t acl_pkts;
	bool ready, mute;
	uint8_t key_size; /* Read_Encryption_Key_Size answers this (default 16) */
	bool peer_ssp;    /* Read_Remote_Extended_Features page 1 says host SSP support */
	bool feat_mute;   /* Read_Remote_Extended_Features gets no Complete event */
	int fatal;
	uint16_t opcodes[OUTQ];
	size_t nopcodes;
	pdu *pdus[OUTQ];
	size_t pdu_head, pdu_count;
	pdu *partial;      /* reassembling an outgoing PDU */
	uint16_t next_handle;
	/* Packets "the controller" sends, delivered after the stack's current call returns:
	 * a real transport never re-enters the stack from inside its send callback. */
	uint8_t *inq;
	size_t inq_len, inq_cap;
	bool draining;
	harness_pdu_sink sink; /* if set, takes completed PDUs instead of the queue */
	void *sink_ctx;
	/* harness_h4_in's bytes are framed the way a byte-stream transport frames them. */
	h4_deframer h4;
	uint8_t *h4_buf; /* H4_MAX_PACKET */
	/* The commands of a C-frame not yet returned by harness_sig_out (Vol 3 Part A 4: a
	 * C-frame may carry several). */
	uint8_t sig_rest[PDU_MAX];
	size_t sig_rest_len, sig_rest_off;
};

static void drain(harness *h)
{
	if (h->draining || !h->s)
		return;
	h->draining = true;
	size_t off = 0;
	while (off < h->inq_len) {
		/* One H4 packet at a time: events are [04 code len ...], ACL [02 hf hf len len ...]. */
		size_t n = h->inq[off] == 0x04 ? 3u + h->inq[off + 2] : 5u + get_le16(h->inq + off + 3);
		uint8_t pkt[5 + 256 + 8192];
		memcpy(pkt, h->inq + off, n);
		off += n;
		bt_stack_packet(h->s, pkt, n, h->now);
	}
	h->inq_len = 0;
	h->draining = false;
}

static void inq_push(harness *h, const uint8_t *p, size_t n)
{
	if (h->inq_len + n > h->inq_cap) {
		h->inq_cap = (h->inq_len + n) * 2;
		h->inq = realloc(h->inq, h->inq_cap);
	}
	memcpy(h->inq + h->inq_len, p, n);
	h->inq_len += n;
}

static void event(harness *h, uint8_t code, const uint8_t *p, uint8_t len)
{
	uint8_t pkt[3 + 255];
	pkt[0] = 0x04;
	pkt[1] = code;
	pkt[2] = len;
	memcpy(pkt + 3, p, len);
	inq_push(h, pkt, 3u + len);
}

/* Return parameters for the initialisation reads (Vol 4 Part E 7.4). */
static uint8_t init_ret(harness *h, uint16_t op, uint8_t *r)
{
	memset(r, 0, 70);
	switch (op) {
	case HCI_OP_READ_LOCAL_VERSION: r[1] = 0x0c; r[4] = 0x0c; put_le16(r + 5, 0x003f); return 9;
	case HCI_OP_READ_LOCAL_COMMANDS: memset(r + 1, 0xff, 64); return 65;
	case HCI_OP_READ_LOCAL_FEATURES: memset(r + 1, 0xff, 8); return 9;
	case HCI_OP_READ_BUFFER_SIZE: put_le16(r + 1, 192); r[3] = 64; put_le16(r + 4, h->acl_pkts); put_le16(r + 6, 8); return 8;
	case HCI_OP_READ_BD_ADDR: memcpy(r + 1, h->addr.b, 6); return 7;
	default: return 1;
	}
}

static void answer_command(harness *h, const uint8_t *pkt, size_t len)
{
	uint16_t op = get_le16(pkt + 1);
	if (h->nopcodes < OUTQ)
		h->opcodes[h->nopcodes++] = op;
	if (h->mute)
		return;
	uint8_t ev[3 + 70];
	if (op == HCI_OP_CREATE_CONN || op == HCI_OP_ACCEPT_CONN_REQUEST || op == HCI_OP_INQUIRY ||
	    op == HCI_OP_REMOTE_NAME_REQUEST || op == HCI_OP_DISCONNECT ||
	    op == HCI_OP_READ_REMOTE_EXT_FEATURES) {
		ev[0] = 0; /* Command Status, 7.7.15 */
		ev[1] = 1;
		put_le16(ev + 2, op);
		event(h, HCI_EV_CMD_STATUS, ev, 4);
		if (op == HCI_OP_ACCEPT_CONN_REQUEST) { /* then Connection Complete, 7.7.3 */
			uint8_t cc[11] = { 0 };
			put_le16(cc + 1, h->next_handle);
			memcpy(cc + 3, pkt + 4, 6);
			cc[9] = 0x01;
			event(h, HCI_EV_CONN_COMPLETE, cc, 11);
		}
		if (op == HCI_OP_READ_REMOTE_EXT_FEATURES && !h->feat_mute) { /* 7.7.34 */
			uint8_t fe[13] = { 0 };
			memcpy(fe + 1, pkt + 4, 2);
			fe[3] = pkt[6];
			fe[4] = 1;
			fe[5] = h->peer_ssp ? 0x01 : 0x00;
			event(h, HCI_EV_REMOTE_EXT_FEATURES_COMPLETE, fe, 13);
		}
		if (op == HCI_OP_DISCONNECT) {
			uint8_t dc[4] = { 0 };
			memcpy(dc + 1, pkt + 4, 2);
			dc[3] = HCI_ERR_LOCAL_HOST_TERMINATED;
			event(h, HCI_EV_DISCONN_COMPLETE, dc, 4);
		}
		return;
	}
	ev[0] = 1; /* Command Complete, 7.7.14 */
	put_le16(ev + 1, op);
	uint8_t n = init_ret(h, op, ev + 3);
	if (op == HCI_OP_READ_ENC_KEY_SIZE && len >= 6) { /* 7.5.7: status, handle, key size */
		memcpy(ev + 4, pkt + 4, 2);
		ev[6] = h->key_size;
		n = 4;
	}
	event(h, HCI_EV_CMD_COMPLETE, ev, (uint8_t)(3 + n));
}

static void acl_out(harness *h, const uint8_t *pkt, size_t len)
{
	uint16_t hf = get_le16(pkt + 1);
	uint16_t n = get_le16(pkt + 3);
	assert(len == 5u + n);
	assert(n <= 192);
	uint8_t pb = (hf >> 12) & 3;
	if (pb != 0x1) {
		assert(!h->partial || h->partial->len == 0);
		if (!h->partial)
			h->partial = calloc(1, sizeof(pdu));
		h->partial->len = 0;
		h->partial->handle = hf & 0x0fff;
	}
	assert(h->partial);
	assert(h->partial->len + n <= PDU_MAX);
	memcpy(h->partial->data + h->partial->len, pkt + 5, n);
	h->partial->len += n;
	/* Give the buffer back (7.7.19) once this send returns. */
	uint8_t e[5];
	e[0] = 1;
	put_le16(e + 1, hf & 0x0fff);
	put_le16(e + 3, 1);
	event(h, HCI_EV_NUM_COMPLETED_PACKETS, e, 5);
	if (h->partial->len >= 4 && h->partial->len == 4u + get_le16(h->partial->data)) {
		pdu *p = h->partial;
		h->partial = NULL;
		p->cid = get_le16(p->data + 2);
		p->len -= 4;
		memmove(p->data, p->data + 4, p->len);
		if (h->sink) {
			h->sink(h->sink_ctx, p->handle, p->cid, p->data, p->len);
			free(p);
			return;
		}
		assert(h->pdu_count < OUTQ);
		h->pdus[(h->pdu_head + h->pdu_count++) % OUTQ] = p;
	}
}

static void stack_send(void *ctx, const uint8_t *pkt, size_t len)
{
	harness *h = ctx;
	if (pkt[0] == 0x01)
		answer_command(h, pkt, len);
	else if (pkt[0] == 0x02)
		acl_out(h, pkt, len);
}

static void stack_ready(void *ctx, int err)
{
	harness *h = ctx;
	h->ready = err == 0;
}

static void stack_fatal(void *ctx, int err)
{
	harness *h = ctx;
	h->fatal = err;
}

int harness_fatal(harness *h) { return h->fatal; }

harness *harness_new(uint16_t acl_pkts) { return harness_new_rfcomm(acl_pkts, NULL); }

harness *harness_new_rfcomm(uint16_t acl_pkts, const rfcomm_config *rc)
{
	harness *h = calloc(1, sizeof *h);
	assert(h);
	h->h4_buf = malloc(H4_MAX_PACKET);
	assert(h->h4_buf);
	h4_init(&h->h4, h->h4_buf, H4_MAX_PACKET);
	h->now = 1000;
	h->acl_pkts = acl_pkts ? acl_pkts : 1;
	h->key_size = 16;
	h->next_handle = 0x0042;
	bt_addr_parse("00:BB:01:00:00:01", &h->addr);
	bt_stack_config c = { 0 };
	c.ctx = h;
	c.send = stack_send;
	c.ready = stack_ready;
	c.fatal = stack_fatal;
	if (rc)
		c.rfcomm = *rc;
	h->s = bt_stack_new(&c, h->now);
	assert(h->s);
	bt_stack_start(h->s, h->now);
	drain(h);
	assert(h->ready);
	h->nopcodes = 0;
	return h;
}

void harness_free(harness *h)
{
	bt_stack_free(h->s); /* first: what it sends while shutting down is captured, then freed */
	h->s = NULL;
	while (h->pdu_count) {
		free(h->pdus[h->pdu_head]);
		h->pdu_head = (h->pdu_head + 1) % OUTQ;
		h->pdu_count--;
	}
	free(h->partial);
	free(h->inq);
	free(h->h4_buf);
	free(h);
}

bt_stack *harness_stack(harness *h) { return h->s; }
const bt_addr *harness_local_addr(harness *h) { return &h->addr; }
void harness_mute(harness *h, bool mute) { h->mute = mute; }

void harness_advance(harness *h, uint32_t ms)
{
	h->now += ms;
	bt_stack_run_timers(h->s, h->now);
	drain(h);
}

void harness_h4_in(harness *h, const uint8_t *pkt, size_t len)
{
	while (len > 0) {
		size_t used;
		ssize_t n = h4_feed(&h->h4, pkt, len, &used);
		pkt += used;
		len -= used;
		if (n > 0)
			bt_stack_packet(h->s, h->h4.buf, (size_t)n, h->now);
		else if (n < 0) /* a transport would end here; the harness goes on, for the fuzzers */
			h4_reset(&h->h4);
	}
	drain(h);
}

bool harness_cmd_seen(harness *h, uint16_t opcode)
{
	bool seen = false;
	for (size_t i = 0; i < h->nopcodes; i++)
		seen |= h->opcodes[i] == opcode;
	h->nopcodes = 0;
	return seen;
}

uint16_t harness_link_up(harness *h, const bt_addr *peer)
{
	uint8_t p[10] = { 0 };
	memcpy(p, peer->b, 6); /* Connection Request, 7.7.4 */
	p[9] = 0x01;
	uint16_t handle = h->next_handle;
	event(h, HCI_EV_CONN_REQUEST, p, 10);
	drain(h); /* the stack accepts; the Connection Complete uses next_handle */
	h->next_handle++;
	return handle;
}

uint16_t harness_accept_page(harness *h, const bt_addr *peer)
{
	uint8_t cc[11] = { 0 };
	uint16_t handle = h->next_handle++;
	put_le16(cc + 1, handle);
	memcpy(cc + 3, peer->b, 6);
	cc[9] = 0x01;
	event(h, HCI_EV_CONN_COMPLETE, cc, 11);
	drain(h);
	return handle;
}

void harness_link_down(harness *h, uint16_t handle, uint8_t reason)
{
	uint8_t dc[4] = { 0 };
	put_le16(dc + 1, handle);
	dc[3] = reason;
	event(h, HCI_EV_DISCONN_COMPLETE, dc, 4);
	drain(h);
}

void harness_l2cap_in(harness *h, uint16_t handle, uint16_t cid, const uint8_t *p, size_t len)
{
	uint8_t *pdu_buf = malloc(4 + len);
	put_le16(pdu_buf, (uint16_t)len);
	put_le16(pdu_buf + 2, cid);
	memcpy(pdu_buf + 4, p, len);
	size_t total = 4 + len, off = 0;
	do {
		size_t n = total - off > 192 ? 192 : total - off;
		uint8_t pkt[5 + 192];
		pkt[0] = 0x02;
		put_le16(pkt + 1, (uint16_t)(handle | (off ? 0x1 : 0x2) << 12));
		put_le16(pkt + 3, (uint16_t)n);
		memcpy(pkt + 5, pdu_buf + off, n);
		inq_push(h, pkt, 5 + n);
		off += n;
	} while (off < total);
	free(pdu_buf);
	drain(h);
}

int harness_l2cap_out(harness *h, uint16_t *handle, uint16_t *cid, uint8_t *buf, size_t cap)
{
	drain(h);
	if (!h->pdu_count)
		return -1;
	pdu *p = h->pdus[h->pdu_head];
	h->pdu_head = (h->pdu_head + 1) % OUTQ;
	h->pdu_count--;
	if (handle)
		*handle = p->handle;
	if (cid)
		*cid = p->cid;
	size_t n = p->len < cap ? p->len : cap;
	memcpy(buf, p->data, n);
	free(p);
	return (int)n;
}

int harness_sig_out(harness *h, uint8_t *ident, uint8_t *data, size_t cap, size_t *len)
{
	uint16_t cid;
	while (h->sig_rest_off + 4 > h->sig_rest_len) {
		int n = harness_l2cap_out(h, NULL, &cid, h->sig_rest, sizeof h->sig_rest);
		if (n < 0)
			return -1;
		if (cid != 0x0001 || n < 4)
			continue; /* tests asking for signalling skip data PDUs */
		h->sig_rest_len = (size_t)n;
		h->sig_rest_off = 0;
	}
	/* One command of the C-frame: code, identifier, length, data. */
	const uint8_t *c = h->sig_rest + h->sig_rest_off;
	size_t dl = get_le16(c + 2);
	assert(h->sig_rest_off + 4 + dl <= h->sig_rest_len);
	*ident = c[1];
	*len = dl < cap ? dl : cap;
	memcpy(data, c + 4, *len);
	h->sig_rest_off += 4 + dl;
	return c[0];
}

void harness_sig_in(harness *h, uint16_t handle, uint8_t code, uint8_t ident, const uint8_t *data, size_t len)
{
	uint8_t *c = malloc(4 + len);
	c[0] = code;
	c[1] = ident;
	put_le16(c + 2, (uint16_t)len);
	if (len)
		memcpy(c + 4, data, len);
	harness_l2cap_in(h, handle, 0x0001, c, 4 + len);
	free(c);
}

/* Sends our Configuration Request and waits for the stack's success (Vol 3 Part A 4.4/4.5). */
static uint16_t configure(harness *h, uint16_t handle, uint16_t stack_cid, uint16_t mtu)
{
	uint8_t req[8];
	put_le16(req, stack_cid);
	put_le16(req + 2, 0);
	req[4] = 0x01;
	req[5] = 2;
	put_le16(req + 6, mtu);
	harness_sig_in(h, handle, 0x04, 0x31, req, 8);
	uint8_t d[256], id;
	size_t n;
	int code;
	while ((code = harness_sig_out(h, &id, d, sizeof d, &n)) >= 0)
		if (code == 0x05 && n >= 6 && id == 0x31)
			return get_le16(d + 4) == 0 ? stack_cid : 0;
	return 0;
}

uint16_t harness_open_channel(harness *h, uint16_t handle, uint16_t psm, uint16_t peer_cid, uint16_t mtu)
{
	uint8_t req[4];
	put_le16(req, psm);
	put_le16(req + 2, peer_cid);
	harness_sig_in(h, handle, 0x02, 0x30, req, 4);
	uint8_t d[256], id;
	size_t n;
	int code = harness_sig_out(h, &id, d, sizeof d, &n);
	if (code != 0x03 || n < 8 || get_le16(d + 4) != 0)
		return 0;
	uint16_t stack_cid = get_le16(d);
	/* The stack's Configuration Request follows its response; answer both ways. */
	code = harness_sig_out(h, &id, d, sizeof d, &n);
	if (code != 0x04)
		return 0;
	uint8_t rsp[6];
	put_le16(rsp, stack_cid);
	put_le16(rsp + 2, 0);
	put_le16(rsp + 4, 0);
	harness_sig_in(h, handle, 0x05, id, rsp, 6);
	return configure(h, handle, stack_cid, mtu);
}

uint16_t harness_accept_channel(harness *h, uint16_t handle, uint16_t peer_cid, uint16_t mtu)
{
	uint8_t d[256], id;
	size_t n;
	int code = harness_sig_out(h, &id, d, sizeof d, &n);
	if (code != 0x02 || n < 4)
		return 0;
	uint16_t stack_cid = get_le16(d + 2);
	uint8_t rsp[8];
	put_le16(rsp, peer_cid);
	put_le16(rsp + 2, stack_cid);
	put_le16(rsp + 4, 0);
	put_le16(rsp + 6, 0);
	harness_sig_in(h, handle, 0x03, id, rsp, 8);
	code = harness_sig_out(h, &id, d, sizeof d, &n);
	if (code != 0x04)
		return 0;
	uint8_t crsp[6];
	put_le16(crsp, stack_cid);
	put_le16(crsp + 2, 0);
	put_le16(crsp + 4, 0);
	harness_sig_in(h, handle, 0x05, id, crsp, 6);
	return configure(h, handle, stack_cid, mtu);
}

void harness_l2cap_burst(harness *h, uint16_t handle, uint16_t cid, const uint8_t *const *pdus,
			 const size_t *lens, size_t n)
{
	bool was = h->draining;
	h->draining = true; /* queue every fragment first: drain() waits */
	for (size_t i = 0; i < n; i++)
		harness_l2cap_in(h, handle, cid, pdus[i], lens[i]);
	h->draining = was;
	drain(h);
}

void harness_set_pdu_sink(harness *h, harness_pdu_sink fn, void *ctx)
{
	h->sink = fn;
	h->sink_ctx = ctx;
}

void harness_set_key_size(harness *h, uint8_t octets)
{
	h->key_size = octets;
}

void harness_set_peer_features(harness *h, bool ssp, bool answer)
{
	h->peer_ssp = ssp;
	h->feat_mute = !answer;
}
