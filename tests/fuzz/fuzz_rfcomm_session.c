/* fuzz_rfcomm_session.c - an RFCOMM multiplexer (RFCOMM spec, TS 07.10) in full use when the
 * fuzzer's frames start: the peer opened L2CAP PSM 3 and DLCI 0; DLCs 2 and 4 (channels 1, 2)
 * are open with MSC exchanged and data flowing both ways; DLC 6 (channel 3) is connected but
 * its MSC exchange is pending (the stack's MSC unanswered, none from the peer); and the stack
 * has sent PN for its own DLC 11 (channel 5, D bit 1 as the session responder, RFCOMM spec
 * 5.4) that the peer has not answered.
 *
 * Chunks [hdr][len][octets] (fuzz_peer.h), hdr bits 0-1:
 *   0: the octets as one raw L2CAP payload on the RFCOMM channel (FCS as given)
 *   1: a frame built with a correct FCS (TS 07.10 5.2.1.6, via rfcomm_frame_build):
 *      [addr: dlci | C/R << 6][ctl: index into ctrls | P/F << 3 | credit octet << 4][credits]
 *      [info...]
 *   2: a multiplexer command (TS 07.10 5.4.6) in a UIH on DLCI 0 with a correct FCS:
 *      [type (6 bits) | C/R << 6 | frame C/R << 7][value...]
 *   3: the octets as a C-frame on L2CAP signalling (CID 0x0001)
 *   bit 2: afterwards the clock moves 3 s (T1, T2, credit and linger timers)
 *   bit 3: the owner of the DLC picked by bits 5-6 reads everything buffered
 *   bit 4: that owner writes 300 octets
 *   bits 5-6: 0 channel 1, 1 channel 2, 2 channel 3, 3 the outgoing channel 5
 *   bit 7: that owner closes its DLC
 * Every frame the stack sends must parse. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_peer.h"
#include "rfcomm/rfcomm_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PEER_MTU 1000
#define OUT_CHANNEL 5
#define OUT_DLCI (OUT_CHANNEL << 1 | 1)

typedef struct {
	rfcomm_dlc *d;
	unsigned opened, readable, closed;
} owner;

static void o_opened(void *c, rfcomm_dlc *d) { ((owner *)c)->opened++; }
static void o_readable(void *c, rfcomm_dlc *d) { ((owner *)c)->readable++; }
static void o_writable(void *c, rfcomm_dlc *d) {}
static void o_closed(void *c, rfcomm_dlc *d, int err) { ((owner *)c)->closed++; }
static const rfcomm_dlc_ops o_ops = { o_opened, o_readable, o_writable, o_closed };

static int o_accept(void *srv, rfcomm_dlc *d, const rfcomm_dlc_ops **ops, void **ctx)
{
	owner *o = srv;
	if (o->d) /* the channel's earlier DLC is over: its owner lets it go */
		rfcomm_close(o->d);
	*o = (owner){ .d = d };
	*ops = &o_ops;
	*ctx = o;
	return 0;
}

/* What the stack sent on the RFCOMM channel since the last look. */
typedef struct {
	unsigned frames;
	unsigned ua[64], uih_data[64];
	unsigned mcc[64]; /* multiplexer commands and responses by type */
	uint8_t pn_dlci;  /* DLCI of the last PN seen */
} seen;

typedef struct {
	harness *h;
	bt_addr addr;
	uint16_t handle, cid; /* cid: the stack's end of the L2CAP channel */
	owner o[4];           /* channels 1, 2, 3, and the outgoing one */
	seen s;
	fz_peer peer;
} fixture;

static void on_pdu(void *ctx, uint16_t cid, const uint8_t *p, size_t n)
{
	fixture *f = ctx;
	if (cid != FZ_PEER_CID)
		return;
	rfcomm_frame fr;
	CHECK(rfcomm_frame_parse(p, n, &fr) == 0);
	f->s.frames++;
	if (fr.ctrl == RFCOMM_UA)
		f->s.ua[fr.dlci]++;
	if (fr.ctrl == RFCOMM_UIH && fr.dlci != 0 && fr.len > 0)
		f->s.uih_data[fr.dlci]++;
	rfcomm_mcc m;
	if (fr.ctrl == RFCOMM_UIH && fr.dlci == 0 && rfcomm_mcc_parse(fr.info, fr.len, &m) > 0) {
		f->s.mcc[m.type & 0x3f]++;
		rfcomm_pn pn;
		if (m.type == RFCOMM_MCC_PN && rfcomm_pn_decode(m.val, m.len, &pn) == 0)
			f->s.pn_dlci = pn.dlci;
	}
}

static void drain(fixture *f) { fz_drain(&f->peer); }
static void look(fixture *f)
{
	memset(&f->s, 0, sizeof f->s);
	drain(f);
}

/* The peer is the session initiator: its commands carry C/R 1 (TS 07.10 5.2.1.2). */
static void frame_in(fixture *f, uint8_t dlci, bool cr, uint8_t ctrl, bool pf, int credits,
		     const uint8_t *info, size_t len)
{
	uint8_t b[600];
	size_t n = rfcomm_frame_build(b, sizeof b, dlci, cr, ctrl, pf, credits, info, len);
	if (n)
		harness_l2cap_in(f->h, f->handle, f->cid, b, n);
}

static void mcc_in(fixture *f, uint8_t type, bool cr, const uint8_t *v, size_t len)
{
	uint8_t m[300];
	size_t n = rfcomm_mcc_build(m, sizeof m, type, cr, v, len);
	if (n)
		frame_in(f, 0, true, RFCOMM_UIH, false, -1, m, n);
}

static void pn_in(fixture *f, uint8_t dlci, bool cr, uint8_t cl)
{
	rfcomm_pn pn = { .dlci = dlci, .cl = cl, .priority = 7, .n1 = 200, .k = 7 };
	uint8_t v[8];
	mcc_in(f, RFCOMM_MCC_PN, cr, v, rfcomm_pn_encode(&pn, v));
}

static void msc_in(fixture *f, uint8_t dlci, bool cr)
{
	rfcomm_msc m = { .dlci = dlci, .v24 = 0x8d };
	uint8_t v[3];
	mcc_in(f, RFCOMM_MCC_MSC, cr, v, rfcomm_msc_encode(&m, v));
}

/* PN (CFC), SABM: the DLC is connected and the stack's MSC command is out (RFCOMM spec 5.5.3,
 * 6.2). */
static void connect_dlc(fixture *f, uint8_t dlci, owner *o)
{
	pn_in(f, dlci, true, RFCOMM_PN_CL_CFC_REQ);
	look(f);
	CHECK(f->s.mcc[RFCOMM_MCC_PN] == 1 && f->s.pn_dlci == dlci);
	frame_in(f, dlci, true, RFCOMM_SABM, true, -1, NULL, 0);
	look(f);
	CHECK(f->s.ua[dlci] == 1 && f->s.mcc[RFCOMM_MCC_MSC] == 1);
	CHECK(o->d && o->opened == 1);
}

/* MSC both ways, then data each way: the stack's owner writes, the peer sends with a credit. */
static void open_dlc(fixture *f, uint8_t dlci, owner *o)
{
	connect_dlc(f, dlci, o);
	msc_in(f, dlci, false); /* the response to the stack's */
	msc_in(f, dlci, true);
	look(f);
	CHECK(f->s.mcc[RFCOMM_MCC_MSC] == 1); /* the stack's response */
	CHECK(rfcomm_write(o->d, (const uint8_t *)"hello", 5) == 5);
	look(f);
	CHECK(f->s.uih_data[dlci] == 1);
	frame_in(f, dlci, true, RFCOMM_UIH, false, 1, (const uint8_t *)"world", 5);
	CHECK(o->readable >= 1 && rfcomm_readable(o->d) == 5);
}

static void setup(fixture *f)
{
	rfcomm *rf = bt_stack_rfcomm(harness_stack(f->h));
	for (uint8_t ch = 1; ch <= 3; ch++)
		CHECK(rfcomm_listen(rf, ch, o_accept, &f->o[ch - 1]) == ch);
	f->cid = harness_open_channel(f->h, f->handle, L2CAP_PSM_RFCOMM, FZ_PEER_CID, PEER_MTU);
	CHECK(f->cid >= 0x0040);
	frame_in(f, 0, true, RFCOMM_SABM, true, -1, NULL, 0); /* RFCOMM spec 5.2.1 */
	look(f);
	CHECK(f->s.ua[0] == 1);
	open_dlc(f, 2, &f->o[0]);
	open_dlc(f, 4, &f->o[1]);
	connect_dlc(f, 6, &f->o[2]);
	/* MSC pending: what the owner writes waits for the exchange (RFCOMM spec 6.2). */
	CHECK(rfcomm_write(f->o[2].d, (const uint8_t *)"x", 1) == 1);
	look(f);
	CHECK(f->s.uih_data[6] == 0);
	owner *out = &f->o[3];
	CHECK(rfcomm_connect(rf, &f->addr, OUT_CHANNEL, &o_ops, out, &out->d) == 0);
	look(f);
	CHECK(f->s.mcc[RFCOMM_MCC_PN] == 1 && f->s.pn_dlci == OUT_DLCI && out->opened == 0);
}

static const uint8_t ctrls[8] = { RFCOMM_SABM, RFCOMM_UA, RFCOMM_DM, RFCOMM_DISC,
				  RFCOMM_UIH, RFCOMM_UIH, RFCOMM_UIH, RFCOMM_UIH };

static void chunk_in(fixture *f, const fz_chunk *c)
{
	switch (c->hdr & 3) {
	case 0:
		harness_l2cap_in(f->h, f->handle, f->cid, c->p, c->len);
		break;
	case 1:
		if (c->len >= 3) {
			int credits = (c->p[1] & 0x10) ? c->p[2] : -1;
			frame_in(f, c->p[0] & 0x3f, (c->p[0] & 0x40) != 0, ctrls[c->p[1] & 7],
				 (c->p[1] & 0x08) != 0, credits, c->p + 3, c->len - 3);
		}
		break;
	case 2:
		if (c->len >= 1) {
			uint8_t m[300];
			size_t n = rfcomm_mcc_build(m, sizeof m, c->p[0] & 0x3f, (c->p[0] & 0x40) != 0,
						    c->p + 1, c->len - 1);
			if (n)
				frame_in(f, 0, (c->p[0] & 0x80) == 0, RFCOMM_UIH, false, -1, m, n);
		}
		break;
	default:
		harness_l2cap_in(f->h, f->handle, 0x0001, c->p, c->len);
		break;
	}
	drain(f);
}

static void owner_act(fixture *f, uint8_t hdr)
{
	owner *o = &f->o[(hdr >> 5) & 3];
	if (!o->d)
		return;
	if (hdr & 0x08) {
		uint8_t b[1024];
		while (rfcomm_read(o->d, b, sizeof b) > 0)
			;
	}
	if (hdr & 0x10) {
		uint8_t b[300];
		memset(b, 0x55, sizeof b);
		(void)rfcomm_write(o->d, b, sizeof b);
	}
	if (hdr & 0x80) {
		rfcomm_close(o->d);
		o->d = NULL;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fixture f = { 0 };
	f.h = harness_new(8);
	f.addr = (bt_addr){ { 1, 2, 3, 4, 5, 6 } };
	fz_peer_init(&f.peer, f.h, on_pdu, &f);
	f.handle = harness_link_up(f.h, &f.addr);
	setup(&f);
	fz_peer_attach(&f.peer);
	fz_input in = { data, size, 0 };
	fz_chunk c;
	while (fz_next(&in, &c)) {
		chunk_in(&f, &c);
		owner_act(&f, c.hdr);
		if (c.hdr & 0x04)
			harness_advance(f.h, 3000);
		drain(&f);
	}
	for (int i = 0; i < 4; i++)
		if (f.o[i].d)
			rfcomm_close(f.o[i].d);
	fz_teardown(&f.peer, f.handle);
	return 0;
}
