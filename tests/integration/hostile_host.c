/* hostile_host.c - see hostile_host.h. Written for the tests from the specifications; it
 * shares no code with btsock's src/. */
#include "hostile_host.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* --- little helpers --- */

static uint64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int ms_left(uint64_t end)
{
	uint64_t now = ms_now();
	return now >= end ? 0 : (int)(end - now);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static bool write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* --- the received-PDU queue --- */

static void q_push(hh *h, uint16_t cid, const uint8_t *p, size_t len)
{
	if (h->q_count == HH_QUEUE) { /* full: drop the oldest */
		free(h->q[h->q_head].data);
		h->q_head = (h->q_head + 1) % HH_QUEUE;
		h->q_count--;
	}
	hh_pdu *e = &h->q[(h->q_head + h->q_count) % HH_QUEUE];
	e->cid = cid;
	e->len = (uint16_t)len;
	e->data = malloc(len ? len : 1);
	if (len)
		memcpy(e->data, p, len);
	h->q_count++;
}

/* Removes queue entry i (0 = oldest) into out; returns its length. */
static int q_take(hh *h, size_t i, uint8_t *out, size_t cap)
{
	hh_pdu e = h->q[(h->q_head + i) % HH_QUEUE];
	for (size_t k = i; k + 1 < h->q_count; k++)
		h->q[(h->q_head + k) % HH_QUEUE] = h->q[(h->q_head + k + 1) % HH_QUEUE];
	h->q_count--;
	size_t n = e.len < cap ? e.len : cap;
	if (out && n)
		memcpy(out, e.data, n);
	free(e.data);
	return (int)n;
}

void hh_flush(hh *h)
{
	while (h->q_count)
		q_take(h, 0, NULL, 0);
}

/* --- HCI output: H4 packet types 0x01 command, 0x02 ACL (Vol 4 Part A 2) --- */

int hh_cmd(hh *h, uint16_t opcode, const void *params, uint8_t len, int timeout_ms)
{
	uint8_t pkt[260] = { 0x01 };
	put16(pkt + 1, opcode);
	pkt[3] = len;
	if (len)
		memcpy(pkt + 4, params, len);
	h->cc_seen = false;
	h->cc_opcode = opcode;
	if (!write_all(h->fd, pkt, 4u + len))
		return -1;
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	while (!h->cc_seen) {
		int left = ms_left(end);
		if (left == 0 || !hh_pump(h, left))
			return -1;
	}
	return h->cc_status;
}

/* A command sent from inside event handling: no waiting for its completion. */
static void cmd_nowait(hh *h, uint16_t opcode, const uint8_t *params, uint8_t len)
{
	uint8_t pkt[64] = { 0x01 };
	put16(pkt + 1, opcode);
	pkt[3] = len;
	memcpy(pkt + 4, params, len);
	write_all(h->fd, pkt, 4u + len);
}

bool hh_acl_raw(hh *h, uint8_t pb, const void *data, size_t len, int timeout_ms)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	while (h->acl_free == 0) { /* wait for Number Of Completed Packets (7.7.19) */
		int left = ms_left(end);
		if (!h->linked || left == 0 || !hh_pump(h, left))
			return false;
	}
	uint8_t pkt[5 + 1024] = { 0x02 };
	if (len > 1024)
		return false;
	/* ACL header (Vol 4 Part E 5.4.2): handle 12 bits, PB 2 bits, BC 2 bits, length 16 */
	put16(pkt + 1, (uint16_t)(h->handle | (uint16_t)(pb & 3) << 12));
	put16(pkt + 3, (uint16_t)len);
	memcpy(pkt + 5, data, len);
	h->acl_free--;
	return write_all(h->fd, pkt, 5 + len);
}

/* --- HCI input --- */

static void on_conn_complete(hh *h, const uint8_t *p, size_t n)
{
	if (n < 11)
		return;
	h->conn_done = true;
	h->conn_status = p[0];
	if (p[0] == 0 && p[9] == 0x01) { /* ACL link (Vol 4 Part E 7.7.3) */
		h->handle = get16(p + 1) & 0x0fff;
		h->linked = true;
		h->frag_len = h->frag_need = 0;
	}
}

static void on_nocp(hh *h, const uint8_t *p, size_t n)
{
	/* Number Of Completed Packets (Vol 4 Part E 7.7.19): count, then handle/count pairs */
	for (size_t i = 0; n >= 1 && i < p[0] && 1 + 4 * (i + 1) <= n; i++)
		if ((get16(p + 1 + 4 * i) & 0x0fff) == h->handle)
			h->acl_free = (uint16_t)(h->acl_free + get16(p + 3 + 4 * i));
	if (h->acl_free > h->acl_max)
		h->acl_free = h->acl_max;
}

/* Security requests are refused: the hostile host never pairs. */
static void on_security(hh *h, uint8_t code, const uint8_t *p, size_t n)
{
	if (n < 6)
		return;
	uint8_t b[7];
	memcpy(b, p, 6);
	if (code == 0x17) /* Link Key Request -> Negative Reply (7.1.11) */
		cmd_nowait(h, 0x040c, b, 6);
	else if (code == 0x16) /* PIN Code Request -> Negative Reply (7.1.13) */
		cmd_nowait(h, 0x040e, b, 6);
	else if (code == 0x31) { /* IO Capability Request -> Negative Reply (7.1.36) */
		b[6] = 0x18; /* pairing not allowed */
		cmd_nowait(h, 0x0434, b, 7);
	}
}

static void on_event(hh *h, uint8_t code, const uint8_t *p, size_t n)
{
	switch (code) {
	case 0x0e: /* Command Complete: ncmd, opcode, return parameters (7.7.14) */
		if (n >= 4 && get16(p + 1) == h->cc_opcode) {
			h->cc_seen = true;
			h->cc_status = p[3];
			size_t k = n - 3 < sizeof h->cc_params ? n - 3 : sizeof h->cc_params;
			memcpy(h->cc_params, p + 3, k);
		}
		break;
	case 0x0f: /* Command Status: status, ncmd, opcode (7.7.15) */
		if (n >= 4 && get16(p + 2) == h->cc_opcode) {
			h->cc_seen = true;
			h->cc_status = p[0];
		}
		break;
	case 0x03: on_conn_complete(h, p, n); break;
	case 0x05: /* Disconnection Complete: status, handle, reason (7.7.5) */
		if (n >= 4 && p[0] == 0 && (get16(p + 1) & 0x0fff) == h->handle) {
			h->linked = false;
			h->disc_reason = p[3];
		}
		break;
	case 0x13: on_nocp(h, p, n); break;
	case 0x16: case 0x17: case 0x31: on_security(h, code, p, n); break;
	default: break;
	}
}

static void on_l2cap(hh *h, const uint8_t *p, size_t n);

/* ACL data in: reassembles L2CAP PDUs from start (PB 2) and continuing (PB 1) fragments. */
static void on_acl(hh *h, const uint8_t *p, size_t n)
{
	if (n < 4)
		return;
	uint8_t pb = (uint8_t)(p[1] >> 4 & 3);
	size_t len = get16(p + 2);
	if (len > n - 4)
		return;
	p += 4;
	if (pb == 2 || pb == 0) {
		h->frag_len = 0;
		h->frag_need = len >= 2 ? 4u + get16(p) : 4;
	} else if (h->frag_need == 0) {
		return; /* continuation of nothing */
	}
	if (h->frag_len + len > sizeof h->frag) {
		h->frag_len = h->frag_need = 0;
		return;
	}
	memcpy(h->frag + h->frag_len, p, len);
	h->frag_len += len;
	if (h->frag_len >= 4 && h->frag_len >= h->frag_need) {
		on_l2cap(h, h->frag, h->frag_need);
		h->frag_len = h->frag_need = 0;
	}
}

/* Parses whole H4 packets from the input buffer. */
static void parse_input(hh *h)
{
	size_t off = 0;
	for (;;) {
		size_t avail = h->in_len - off;
		const uint8_t *p = h->in + off;
		size_t need;
		if (avail < 1)
			break;
		if (p[0] == 0x04) { /* event: code, length, parameters (Vol 4 Part E 5.4.4) */
			if (avail < 3 || avail < 3u + p[2])
				break;
			need = 3u + p[2];
			on_event(h, p[1], p + 3, p[2]);
		} else if (p[0] == 0x02) {
			if (avail < 5 || avail < 5u + get16(p + 3))
				break;
			need = 5u + get16(p + 3);
			on_acl(h, p + 1, need - 1);
		} else {
			off = h->in_len; /* lost framing: nothing else speaks on this socket */
			break;
		}
		off += need;
	}
	memmove(h->in, h->in + off, h->in_len - off);
	h->in_len -= off;
}

/* Queues an answer built while parsing (sending may pump, which must not parse re-entrantly). */
static void defer_l2(hh *h, uint16_t cid, const uint8_t *p, size_t len)
{
	if (h->out_count == sizeof h->out / sizeof h->out[0])
		return;
	hh_pdu *e = &h->out[h->out_count++];
	e->cid = cid;
	e->len = (uint16_t)len;
	e->data = malloc(len ? len : 1);
	memcpy(e->data, p, len);
}

static void flush_deferred(hh *h)
{
	if (h->flushing)
		return;
	h->flushing = true;
	while (h->out_count > 0) {
		hh_pdu e = h->out[0];
		memmove(h->out, h->out + 1, --h->out_count * sizeof e);
		if (h->linked)
			hh_l2_send(h, e.cid, e.data, e.len);
		free(e.data);
	}
	h->flushing = false;
}

bool hh_pump(hh *h, int ms)
{
	uint64_t end = ms_now() + (uint64_t)(ms < 0 ? 0 : ms);
	bool first = true;
	for (;;) {
		struct pollfd pfd = { .fd = h->fd, .events = POLLIN };
		int left = first ? ms : 0;
		first = false;
		int r = poll(&pfd, 1, left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0;
		ssize_t got = read(h->fd, h->in + h->in_len, sizeof h->in - h->in_len);
		if (got <= 0)
			return false;
		h->in_len += (size_t)got;
		parse_input(h);
		flush_deferred(h);
		if (ms_left(end) == 0 && ms > 0)
			return true;
	}
}

/* --- opening a controller --- */

static bool controller_init(hh *h)
{
	if (hh_cmd(h, 0x0c03, NULL, 0, 3000) != 0) /* Reset (7.3.2) */
		return false;
	if (hh_cmd(h, 0x1009, NULL, 0, 3000) != 0) /* Read_BD_ADDR (7.4.6) */
		return false;
	memcpy(h->addr, h->cc_params + 1, 6);
	if (hh_cmd(h, 0x1005, NULL, 0, 3000) != 0) /* Read_Buffer_Size (7.4.5) */
		return false;
	h->acl_mtu = get16(h->cc_params + 1);
	h->acl_max = get16(h->cc_params + 4);
	h->acl_free = h->acl_max;
	if (h->acl_mtu > 1021)
		h->acl_mtu = 1021;
	uint8_t scan = 0x02; /* page scan only (7.3.18): connectable, not discoverable */
	return hh_cmd(h, 0x0c1a, &scan, 1, 3000) == 0;
}

hh *hh_open(const char *socket_path)
{
	hh *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", socket_path);
	h->next_cid = 0x0040;
	h->auto_conf = true;
	if (h->fd < 0 || connect(h->fd, (struct sockaddr *)&sa, sizeof sa) < 0 || !controller_init(h)) {
		hh_close(h);
		return NULL;
	}
	return h;
}

void hh_close(hh *h)
{
	if (!h)
		return;
	hh_flush(h);
	if (h->fd >= 0)
		close(h->fd);
	free(h);
}

static bool parse_addr(const char *s, uint8_t out[6])
{
	unsigned b[6];
	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[5], &b[4], &b[3], &b[2], &b[1], &b[0]) != 6)
		return false;
	for (int i = 0; i < 6; i++)
		out[i] = (uint8_t)b[i];
	return true;
}

bool hh_page(hh *h, const char *addr, int timeout_ms)
{
	/* Create_Connection (7.1.5): BD_ADDR, packet types DM1..DH5, page scan repetition R1,
	 * reserved, clock offset 0, allow role switch */
	uint8_t p[13] = { 0 };
	if (!parse_addr(addr, p))
		return false;
	put16(p + 6, 0xcc18);
	p[8] = 0x01;
	p[12] = 0x01;
	h->conn_done = false;
	h->linked = false;
	memset(h->ch, 0, sizeof h->ch);
	h->rfc_lcid = 0;
	if (hh_cmd(h, 0x0405, p, sizeof p, timeout_ms) != 0)
		return false;
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	while (!h->conn_done) {
		int left = ms_left(end);
		if (left == 0 || !hh_pump(h, left))
			return false;
	}
	h->acl_free = h->acl_max;
	return h->linked;
}

void hh_unpage(hh *h, int timeout_ms)
{
	if (!h->linked)
		return;
	uint8_t p[3];
	put16(p, h->handle);
	p[2] = 0x13; /* remote user terminated connection */
	if (hh_cmd(h, 0x0406, p, 3, timeout_ms) != 0) { /* Disconnect (7.1.6) */
		h->linked = false;
		return;
	}
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	while (h->linked && ms_left(end) > 0 && hh_pump(h, ms_left(end)))
		;
	h->linked = false;
	hh_flush(h);
}

/* --- L2CAP --- */

bool hh_l2_send(hh *h, uint16_t cid, const void *data, size_t len)
{
	if (len > 65535)
		return false;
	uint8_t *pdu = malloc(4 + len);
	put16(pdu, (uint16_t)len); /* basic header: length, channel ID (Vol 3 Part A 3.1) */
	put16(pdu + 2, cid);
	if (len)
		memcpy(pdu + 4, data, len);
	bool ok = true;
	for (size_t off = 0; ok && off < 4 + len; off += h->acl_mtu) {
		size_t n = 4 + len - off < h->acl_mtu ? 4 + len - off : h->acl_mtu;
		ok = hh_acl_raw(h, off == 0 ? 2 : 1, pdu + off, n, 3000);
	}
	free(pdu);
	return ok;
}

bool hh_sig_len(hh *h, uint8_t code, uint8_t ident, uint16_t len_field, const void *data, size_t len)
{
	/* C-frame command: code, identifier, length, data (Vol 3 Part A 4) */
	uint8_t *c = malloc(4 + len);
	c[0] = code;
	c[1] = ident;
	put16(c + 2, len_field);
	if (len)
		memcpy(c + 4, data, len);
	bool ok = hh_l2_send(h, 0x0001, c, 4 + len);
	free(c);
	return ok;
}

bool hh_sig(hh *h, uint8_t code, uint8_t ident, const void *data, size_t len)
{
	return hh_sig_len(h, code, ident, (uint16_t)len, data, len);
}

uint8_t hh_ident(hh *h)
{
	h->ident = (uint8_t)(h->ident + 1);
	if (h->ident == 0)
		h->ident = 1;
	return h->ident;
}

uint16_t hh_new_cid(hh *h)
{
	uint16_t c = h->next_cid++;
	if (h->next_cid == 0)
		h->next_cid = 0x0040;
	return c;
}

static hh_chan *chan_by_lcid(hh *h, uint16_t lcid)
{
	for (int i = 0; i < HH_CHANS; i++)
		if (h->ch[i].open && h->ch[i].lcid == lcid)
			return &h->ch[i];
	return NULL;
}

static void defer_sig(hh *h, uint8_t code, uint8_t id, const uint8_t *d, size_t len)
{
	uint8_t c[4 + 128];
	if (len > 128)
		len = 128;
	c[0] = code;
	c[1] = id;
	put16(c + 2, (uint16_t)len);
	memcpy(c + 4, d, len);
	defer_l2(h, 0x0001, c, 4 + len);
}

/* The peer's own requests get answers, as any host would give them. */
static void answer_sig(hh *h, const uint8_t *c, size_t n)
{
	uint8_t code = c[0], id = c[1], r[8];
	const uint8_t *d = c + 4;
	size_t dl = n - 4;
	if (code == 0x03 && dl >= 4) { /* Connection Response: DCID, SCID (4.3) */
		/* learnt here, before the peer's Configuration Request parsed next needs it */
		hh_chan *ch = chan_by_lcid(h, get16(d + 2));
		if (ch && get16(d) != 0)
			ch->rcid = get16(d);
	} else if (code == 0x08) { /* Echo Request -> Echo Response with the same data (4.8, 4.9) */
		defer_sig(h, 0x09, id, d, dl);
	} else if (code == 0x0a && dl >= 2) { /* Information Request -> not supported (4.10) */
		memcpy(r, d, 2);
		put16(r + 2, 0x0001);
		defer_sig(h, 0x0b, id, r, 4);
	} else if (code == 0x06 && dl >= 4) { /* Disconnection Request (4.6) */
		hh_chan *ch = chan_by_lcid(h, get16(d));
		if (ch)
			ch->open = false;
		if (h->rfc_lcid == get16(d))
			h->rfc_lcid = 0;
		defer_sig(h, 0x07, id, d, 4);
	} else if (code == 0x04 && dl >= 4 && h->auto_conf) { /* Configuration Request (4.4) */
		hh_chan *ch = chan_by_lcid(h, get16(d));
		if (!ch)
			return;
		put16(r, ch->rcid); /* SCID: the requester's endpoint (4.5) */
		put16(r + 2, 0);   /* flags */
		put16(r + 4, 0);   /* success */
		defer_sig(h, 0x05, id, r, 6);
		if (!(get16(d + 2) & 1))
			ch->in_conf = true;
	}
}

static void rfc_in(hh *h, const uint8_t *p, size_t n);

static void on_l2cap(hh *h, const uint8_t *p, size_t n)
{
	uint16_t len = get16(p), cid = get16(p + 2);
	if ((size_t)len + 4 != n)
		return;
	p += 4;
	if (cid != 0x0001) {
		if (cid == h->rfc_lcid && h->rfc_lcid)
			rfc_in(h, p, len);
		q_push(h, cid, p, len);
		return;
	}
	/* the signalling channel may hold several commands in one PDU (4) */
	for (size_t off = 0; off + 4 <= len;) {
		size_t cl = 4u + get16(p + off + 2);
		if (off + cl > len)
			break;
		h->sig_rx[p[off]]++;
		answer_sig(h, p + off, cl);
		q_push(h, 1, p + off, cl);
		off += cl;
	}
}

int hh_wait_sig(hh *h, uint8_t code, uint8_t ident, uint8_t *out, size_t cap, int timeout_ms)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	for (;;) {
		for (size_t i = 0; i < h->q_count; i++) {
			const hh_pdu *e = &h->q[(h->q_head + i) % HH_QUEUE];
			if (e->cid == 1 && e->len >= 4 && e->data[0] == code && (!ident || e->data[1] == ident))
				return q_take(h, i, out, cap);
		}
		int left = ms_left(end);
		if (left == 0 || !hh_pump(h, left > 20 ? 20 : left))
			return -1;
	}
}

int hh_wait_data(hh *h, uint16_t cid, uint8_t *out, size_t cap, int timeout_ms)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	for (;;) {
		for (size_t i = 0; i < h->q_count; i++)
			if (h->q[(h->q_head + i) % HH_QUEUE].cid == cid)
				return q_take(h, i, out, cap);
		int left = ms_left(end);
		if (left == 0 || !hh_pump(h, left > 20 ? 20 : left))
			return -1;
	}
}

static int conn_req(hh *h, uint16_t psm, uint16_t lcid, uint16_t *rcid, int timeout_ms);

int hh_l2_conn_req(hh *h, uint16_t psm, uint16_t lcid, uint16_t *rcid, int timeout_ms)
{
	h->last_conn_result = conn_req(h, psm, lcid, rcid, timeout_ms);
	return h->last_conn_result;
}

static int conn_req(hh *h, uint16_t psm, uint16_t lcid, uint16_t *rcid, int timeout_ms)
{
	uint8_t req[4], rsp[64];
	put16(req, psm); /* Connection Request: PSM, source CID (4.2) */
	put16(req + 2, lcid);
	uint8_t id = hh_ident(h);
	if (!hh_sig(h, 0x02, id, req, 4))
		return -1;
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	for (;;) {
		/* Connection Response: DCID, SCID, result, status (4.3); result 1 = pending */
		int n = hh_wait_sig(h, 0x03, id, rsp, sizeof rsp, ms_left(end));
		if (n < 0) {
			/* a Command Reject with our ident also ends it */
			n = hh_wait_sig(h, 0x01, id, rsp, sizeof rsp, 0);
			return n < 0 ? -1 : 0x100;
		}
		if (n < 12)
			return -1;
		if (get16(rsp + 8) == 1)
			continue;
		if (rcid)
			*rcid = get16(rsp + 4);
		return get16(rsp + 8);
	}
}

int hh_l2_config(hh *h, uint16_t rcid, uint16_t flags, const void *opts, size_t len, int timeout_ms)
{
	uint8_t *req = malloc(4 + len), rsp[64];
	put16(req, rcid); /* Configuration Request: DCID, flags, options (4.4) */
	put16(req + 2, flags);
	if (len)
		memcpy(req + 4, opts, len);
	uint8_t id = hh_ident(h);
	bool sent = hh_sig(h, 0x04, id, req, 4 + len);
	free(req);
	if (!sent)
		return -1;
	int n = hh_wait_sig(h, 0x05, id, rsp, sizeof rsp, timeout_ms);
	return n < 10 ? -1 : get16(rsp + 8);
}

bool hh_l2_connect(hh *h, uint16_t psm, uint16_t *lcid, uint16_t *rcid, int timeout_ms)
{
	hh_chan *ch = NULL;
	for (int i = 0; i < HH_CHANS && !ch; i++)
		if (!h->ch[i].open)
			ch = &h->ch[i];
	if (!ch)
		return false;
	*ch = (hh_chan){ .lcid = hh_new_cid(h), .open = true };
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	if (hh_l2_conn_req(h, psm, ch->lcid, &ch->rcid, timeout_ms) != 0 ||
	    hh_l2_config(h, ch->rcid, 0, NULL, 0, ms_left(end)) != 0) {
		ch->open = false;
		return false;
	}
	while (!ch->in_conf) {
		int left = ms_left(end);
		if (left == 0 || !hh_pump(h, left > 20 ? 20 : left)) {
			ch->open = false;
			return false;
		}
	}
	*lcid = ch->lcid;
	*rcid = ch->rcid;
	return true;
}

bool hh_l2_disconnect(hh *h, uint16_t lcid, uint16_t rcid, int timeout_ms)
{
	hh_chan *ch = chan_by_lcid(h, lcid);
	if (ch)
		ch->open = false;
	if (h->rfc_lcid == lcid)
		h->rfc_lcid = 0;
	uint8_t req[4], rsp[16];
	put16(req, rcid); /* Disconnection Request: DCID, SCID (4.6) */
	put16(req + 2, lcid);
	uint8_t id = hh_ident(h);
	if (!hh_sig(h, 0x06, id, req, 4))
		return false;
	return hh_wait_sig(h, 0x07, id, rsp, sizeof rsp, timeout_ms) >= 0;
}

bool hh_echo(hh *h, int timeout_ms)
{
	static const uint8_t data[] = "hostile-echo";
	uint8_t rsp[64];
	uint8_t id = hh_ident(h);
	if (!hh_sig(h, 0x08, id, data, sizeof data))
		return false;
	int n = hh_wait_sig(h, 0x09, id, rsp, sizeof rsp, timeout_ms);
	return n == 4 + (int)sizeof data && memcmp(rsp + 4, data, sizeof data) == 0;
}

/* --- SDP --- */

int hh_sdp_search(hh *h, uint16_t lcid, uint16_t rcid, const uint8_t uuid[16], int timeout_ms)
{
	/* ServiceSearchRequest (Vol 3 Part B 4.5.1): PDU header (ID, transaction ID, parameter
	 * length), ServiceSearchPattern = DES { UUID128 }, MaximumServiceRecordCount, continuation
	 * state (length 0) */
	static uint16_t tid = 0x4000;
	uint8_t req[5 + 19 + 2 + 1], rsp[512];
	uint16_t t = tid++;
	req[0] = 0x02;
	req[1] = (uint8_t)(t >> 8);
	req[2] = (uint8_t)t;
	req[3] = 0;
	req[4] = 19 + 2 + 1;
	req[5] = 0x35; /* DES, 8-bit length (3.3) */
	req[6] = 17;
	req[7] = 0x1c; /* UUID, 16 bytes */
	memcpy(req + 8, uuid, 16);
	req[24] = 0;
	req[25] = 16;
	req[26] = 0;
	if (!hh_l2_send(h, rcid, req, sizeof req))
		return -1;
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	for (;;) {
		int n = hh_wait_data(h, lcid, rsp, sizeof rsp, ms_left(end));
		if (n < 0)
			return -1;
		/* ServiceSearchResponse (4.5.2): total count, current count, handles, continuation */
		if (n >= 9 && rsp[0] == 0x03 && (rsp[1] << 8 | rsp[2]) == t)
			return rsp[7] << 8 | rsp[8];
	}
}

/* --- RFCOMM --- */

/* CRC-8 of TS 07.10 5.2.1.6: polynomial x^8 + x^2 + x + 1, bits in reflected order, initial
 * 0xFF, the FCS is the one's complement of the remainder. */
uint8_t hh_fcs(const uint8_t *p, size_t n)
{
	uint8_t crc = 0xff;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (uint8_t)(crc & 1 ? (crc >> 1) ^ 0xe0 : crc >> 1);
	}
	return (uint8_t)(0xff - crc);
}

/* Builds a frame into f (room for len + 8): address with EA, C/R, DLCI (TS 07.10 5.2.1.2),
 * control (5.2.1.3), length with EA (5.2.1.5), the credit byte of CFC (RFCOMM spec 6.5.2) if
 * credits >= 0, information, FCS. */
static size_t rfc_build(uint8_t *f, uint8_t dlci, bool cr, uint8_t ctrl, int len_field, int credits,
			const void *info, size_t len, uint8_t fcs_xor)
{
	size_t n = 0;
	f[n++] = (uint8_t)(dlci << 2 | (cr ? 2 : 0) | 1);
	f[n++] = ctrl;
	size_t lf = len_field < 0 ? len : (size_t)len_field;
	if (lf <= 127) {
		f[n++] = (uint8_t)(lf << 1 | 1);
	} else {
		f[n++] = (uint8_t)(lf << 1);
		f[n++] = (uint8_t)(lf >> 7);
	}
	size_t hdr = n;
	if (credits >= 0)
		f[n++] = (uint8_t)credits;
	if (len)
		memcpy(f + n, info, len);
	n += len;
	/* the FCS covers address and control for UIH, and the length too otherwise */
	bool uih = (ctrl & ~HH_PF) == HH_UIH;
	f[n] = (uint8_t)(hh_fcs(f, uih ? 2 : hdr) ^ fcs_xor);
	return n + 1;
}

/* A multiplexer message (TS 07.10 5.4.6.1): type with EA and C/R, length with EA, values. */
static size_t mux_build(uint8_t *m, uint8_t type, bool command, const void *val, size_t len)
{
	size_t n = 0;
	m[n++] = (uint8_t)(type << 2 | (command ? 2 : 0) | 1);
	if (len <= 127) {
		m[n++] = (uint8_t)(len << 1 | 1);
	} else {
		m[n++] = (uint8_t)(len << 1);
		m[n++] = (uint8_t)(len >> 7);
	}
	if (len)
		memcpy(m + n, val, len);
	return n + len;
}

uint16_t hh_rfc_rcid(hh *h)
{
	hh_chan *ch = h->rfc_lcid ? chan_by_lcid(h, h->rfc_lcid) : NULL;
	return ch ? ch->rcid : 0;
}

bool hh_rfc_frame(hh *h, uint8_t dlci, bool cr, uint8_t ctrl, int len_field, int credits,
		  const void *info, size_t len, uint8_t fcs_xor)
{
	hh_chan *ch = h->rfc_lcid ? chan_by_lcid(h, h->rfc_lcid) : NULL;
	if (!ch || len > 32768)
		return false;
	uint8_t *f = malloc(len + 8);
	size_t n = rfc_build(f, dlci, cr, ctrl, len_field, credits, info, len, fcs_xor);
	bool ok = hh_l2_send(h, ch->rcid, f, n);
	free(f);
	return ok;
}

/* Sent in a UIH frame on DLCI 0, with C/R 1 in the address: we are the initiator. */
bool hh_rfc_mux(hh *h, uint8_t type, bool command, const void *val, size_t len)
{
	uint8_t *m = malloc(len + 3);
	size_t n = mux_build(m, type, command, val, len);
	bool ok = hh_rfc_frame(h, 0, true, HH_UIH, -1, -1, m, n, 0);
	free(m);
	return ok;
}

typedef struct {
	uint8_t dlci, ctrl;
	int credits;
	const uint8_t *info;
	size_t len;
} rframe;

static bool rfc_parse(const uint8_t *p, size_t n, rframe *f)
{
	if (n < 4)
		return false;
	f->dlci = p[0] >> 2;
	f->ctrl = p[1];
	size_t len = p[2] >> 1, off = 3;
	if (!(p[2] & 1)) {
		if (n < 5)
			return false;
		len |= (size_t)p[3] << 7;
		off = 4;
	}
	f->credits = -1;
	if ((f->ctrl & ~HH_PF) == HH_UIH && (f->ctrl & HH_PF) && f->dlci != 0) {
		f->credits = p[off];
		off++;
	}
	if (off + len + 1 != n)
		return false;
	f->info = p + off;
	f->len = len;
	return true;
}

/* The peer's MSC commands are answered (TS 07.10 5.4.6.3.7), its credits counted. */
static void rfc_in(hh *h, const uint8_t *p, size_t n)
{
	rframe f;
	if (!rfc_parse(p, n, &f))
		return;
	bool uih = (f.ctrl & ~HH_PF) == HH_UIH;
	if (hh_fcs(p, uih ? 2 : (size_t)(f.info - p) - (f.credits >= 0)) != p[n - 1])
		h->rx_bad_fcs++;
	if (f.credits > 0 && f.dlci < 64)
		h->rfc_credits[f.dlci] += (uint32_t)f.credits;
	if (uih && f.dlci == 0 && f.len >= 2 && f.info[0] == (0x38 << 2 | 2 | 1)) {
		size_t vl = f.info[1] >> 1;
		if (vl <= f.len - 2 && vl <= 8) {
			uint8_t m[16], fr[32];
			size_t ml = mux_build(m, 0x38, false, f.info + 2, vl);
			size_t fl = rfc_build(fr, 0, true, HH_UIH, -1, -1, m, ml, 0);
			hh_chan *ch = chan_by_lcid(h, h->rfc_lcid);
			if (ch)
				defer_l2(h, ch->rcid, fr, fl);
			h->msc_answered++;
		}
	}
}

int hh_rfc_wait(hh *h, uint8_t dlci, uint8_t ctrl, uint8_t *info, size_t cap, int timeout_ms)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	for (;;) {
		for (size_t i = 0; i < h->q_count; i++) {
			hh_pdu *e = &h->q[(h->q_head + i) % HH_QUEUE];
			rframe f;
			if (e->cid != h->rfc_lcid || !rfc_parse(e->data, e->len, &f))
				continue;
			uint8_t fc = (uint8_t)(f.ctrl & ~HH_PF);
			bool match = ctrl == 0xff || fc == ctrl ||
				     (ctrl == HH_UA_OR_DM && (fc == HH_UA || fc == HH_DM));
			if (f.dlci != dlci || !match)
				continue;
			h->last_ctrl = fc;
			size_t k = f.len < cap ? f.len : cap;
			if (info && k)
				memcpy(info, f.info, k);
			q_take(h, i, NULL, 0);
			return (int)f.len;
		}
		int left = ms_left(end);
		if (!h->rfc_lcid || left == 0 || !hh_pump(h, left > 20 ? 20 : left))
			return -1;
	}
}

int hh_rfc_wait_mux(hh *h, uint8_t type, bool command, uint8_t *val, size_t cap, int timeout_ms)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	uint8_t m[600];
	for (;;) {
		int n = hh_rfc_wait(h, 0, HH_UIH, m, sizeof m, ms_left(end));
		if (n < 0)
			return -1;
		if (n >= 2 && m[0] == (uint8_t)(type << 2 | (command ? 2 : 0) | 1)) {
			size_t vl = m[1] >> 1;
			if (vl > (size_t)n - 2)
				vl = (size_t)n - 2;
			if (val)
				memcpy(val, m + 2, vl < cap ? vl : cap);
			return (int)vl;
		}
	}
}

bool hh_rfc_session(hh *h, int timeout_ms)
{
	uint16_t lcid, rcid;
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	if (!hh_l2_connect(h, 0x0003, &lcid, &rcid, timeout_ms))
		return false;
	h->rfc_lcid = lcid;
	memset(h->rfc_credits, 0, sizeof h->rfc_credits);
	return hh_rfc_sabm(h, 0, ms_left(end));
}

void hh_rfc_end(hh *h, int timeout_ms)
{
	if (!h->rfc_lcid)
		return;
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	uint16_t lcid = h->rfc_lcid;
	hh_chan *ch = chan_by_lcid(h, lcid);
	if (hh_rfc_frame(h, 0, true, HH_DISC | HH_PF, -1, -1, NULL, 0, 0))
		hh_rfc_wait(h, 0, 0xff, NULL, 0, ms_left(end) / 2);
	if (ch && ch->open)
		hh_l2_disconnect(h, lcid, ch->rcid, ms_left(end));
	h->rfc_lcid = 0;
}

bool hh_rfc_sabm(hh *h, uint8_t dlci, int timeout_ms)
{
	if (!hh_rfc_frame(h, dlci, true, HH_SABM | HH_PF, -1, -1, NULL, 0, 0))
		return false;
	h->last_ctrl = 0;
	return hh_rfc_wait(h, dlci, HH_UA_OR_DM, NULL, 0, timeout_ms) >= 0 && h->last_ctrl == HH_UA;
}

bool hh_rfc_close_dlc(hh *h, uint8_t dlci, int timeout_ms)
{
	if (!hh_rfc_frame(h, dlci, true, HH_DISC | HH_PF, -1, -1, NULL, 0, 0))
		return false;
	h->last_ctrl = 0;
	return hh_rfc_wait(h, dlci, HH_UA_OR_DM, NULL, 0, timeout_ms) >= 0 && h->last_ctrl == HH_UA;
}

bool hh_rfc_open_dlc(hh *h, uint8_t dlci, uint16_t n1, int timeout_ms)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	/* PN (TS 07.10 5.4.6.3.1, RFCOMM spec 5.5.3): DLCI, I|CL (0xF0: CFC asked), priority,
	 * T1, N1, NA, K (initial credits) */
	uint8_t pn[8] = { dlci, 0xf0, 0, 0, (uint8_t)n1, (uint8_t)(n1 >> 8), 0, 7 }, rsp[16];
	if (!hh_rfc_mux(h, 0x20, true, pn, 8))
		return false;
	int n = hh_rfc_wait_mux(h, 0x20, false, rsp, sizeof rsp, ms_left(end));
	if (n < 8 || rsp[0] != dlci)
		return false;
	h->rfc_credits[dlci] = rsp[1] == 0xe0 ? (uint32_t)(rsp[7] & 7) : 1000000u;
	if (!hh_rfc_sabm(h, dlci, ms_left(end)))
		return false;
	/* MSC (5.4.6.3.7): DLCI address with EA and C/R, V.24 signals RTC RTR DV with EA */
	uint8_t msc[2] = { (uint8_t)(dlci << 2 | 2 | 1), 0x8d };
	if (!hh_rfc_mux(h, 0x38, true, msc, 2))
		return false;
	return hh_rfc_wait_mux(h, 0x38, false, NULL, 0, ms_left(end)) >= 0;
}

bool hh_rfc_echo(hh *h, uint8_t dlci, const uint8_t *data, size_t len, int timeout_ms)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	while (h->rfc_credits[dlci] == 0) {
		int left = ms_left(end);
		if (left == 0 || !hh_pump(h, left > 20 ? 20 : left))
			return false;
	}
	h->rfc_credits[dlci]--;
	/* UIH with P/F: one credit byte granting the peer 30 frames (RFCOMM spec 6.5.2) */
	if (!hh_rfc_frame(h, dlci, true, HH_UIH | HH_PF, -1, 30, data, len, 0))
		return false;
	uint8_t got[1024];
	size_t have = 0;
	while (have < len) {
		int n = hh_rfc_wait(h, dlci, HH_UIH, got + have, sizeof got - have, ms_left(end));
		if (n < 0)
			return false;
		have += (size_t)n;
	}
	return have == len && memcmp(got, data, len) == 0;
}
