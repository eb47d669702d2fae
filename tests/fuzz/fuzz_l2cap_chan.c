/* fuzz_l2cap_chan.c - an L2CAP channel (Core spec Vol 3 Part A) that is already past its
 * Connection Request when the fuzzer's packets start: the channel state machine's CONFIG and
 * OPEN states, where options are parsed and answered (issue 9: six RFC options overflowed the
 * Configuration Response in on_conf_req, and no target got there).
 *
 * Input: data[0] picks the setup:
 *   bit 0: 0 = the SDP server's channel (PSM 0x0001), 1 = a user channel (PSM 0x1001)
 *   bit 1: 0 = CONFIG (the peer connected, the stack's Configuration Request is outstanding,
 *              the peer has sent none of its own), 1 = OPEN (configured both ways)
 * then chunks [hdr][len][octets] (fuzz_peer.h), hdr bits 0-1:
 *   0: the octets are a C-frame on CID 0x0001 (any signalling commands)
 *   1: the octets are a B-frame on the channel's CID (SDP requests, user data)
 *   2: a Configuration Request (4.4) for the channel: [f][options...], ident hdr>>4 | 1; f bit 0
 *      is the continuation flag, the options are sent (f >> 4) + 1 times over
 *   3: a signalling command for the channel: [code][ident][data...], with the data's first
 *      CID field set to the stack's CID (and for a Disconnection Request the second to ours),
 *      so Configuration Responses and Disconnection Requests hit the live channel
 *   bit 2: afterwards the clock moves 3 s (RTX, ERTX, link supervision timers)
 *   bit 3: the peer answers the stack's outstanding Configuration Request with success
 *   bit 4 (user channel): the owner sends 100 octets on the channel (bits 4-7 are also
 *   the ident of hdr 2)
 * Everything the stack sends is taken after each chunk; the peer answers Disconnection and
 * Echo Requests. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
	l2cap_chan *ch;   /* the user channel while its owner holds it */
	unsigned opened;
} user;

static volatile uint8_t sink;

static void u_opened(void *c, l2cap_chan *ch) { ((user *)c)->opened++; }
static void u_data(void *c, l2cap_chan *ch, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) /* touch every octet: ASan sees any over-read */
		sink ^= p[i];
}
static void u_closed(void *c, l2cap_chan *ch, int err)
{
	user *u = c;
	l2cap_close(ch);
	u->ch = NULL;
}
static const l2cap_chan_ops u_ops = { .opened = u_opened, .data = u_data, .closed = u_closed };

static int u_accept(void *srv, l2cap_chan *ch, const l2cap_chan_ops **ops, void **ctx)
{
	user *u = srv;
	if (u->ch)
		return -1; /* one channel is all this target follows */
	u->ch = ch;
	*ops = &u_ops;
	*ctx = u;
	return 0;
}

typedef struct {
	harness *h;
	uint16_t handle, psm, cid; /* cid: the stack's end of the channel */
	user u;
	fz_peer peer;
	unsigned sdp_rsps; /* B-frames the stack sent on the channel */
} fixture;

static void on_pdu(void *ctx, uint16_t cid, const uint8_t *p, size_t n)
{
	fixture *f = ctx;
	if (cid == FZ_PEER_CID)
		f->sdp_rsps++;
}

static void drain(fixture *f) { fz_drain(&f->peer); }

/* SDP ServiceSearchRequest for PublicBrowseRoot (Vol 3 Part B 4.5.1): any answer shows the
 * channel passes data. */
static void sdp_probe(fixture *f)
{
	static const uint8_t ss[] = { 0x02, 0x00, 0x01, 0x00, 0x08, 0x35, 0x03, 0x19, 0x10, 0x02,
				      0x00, 0x10, 0x00 };
	harness_l2cap_in(f->h, f->handle, f->cid, ss, sizeof ss);
}

/* The peer connects (4.2); the stack answers and sends its Configuration Request, which stays
 * unanswered: CONFIG. */
static void reach_config(fixture *f)
{
	uint8_t req[4], d[64], id;
	size_t n;
	put_le16(req, f->psm);
	put_le16(req + 2, FZ_PEER_CID);
	harness_sig_in(f->h, f->handle, FZ_SIG_CONN_REQ, 0x30, req, 4);
	CHECK(harness_sig_out(f->h, &id, d, sizeof d, &n) == FZ_SIG_CONN_RSP);
	CHECK(n >= 8 && get_le16(d + 4) == 0 && get_le16(d + 2) == FZ_PEER_CID);
	f->cid = get_le16(d);
	CHECK(harness_sig_out(f->h, &id, d, sizeof d, &n) == FZ_SIG_CONF_REQ);
	CHECK(n >= 4 && get_le16(d) == FZ_PEER_CID);
	f->peer.log.conf_req_ident = id;
	/* Not open: data is dropped (3.1 basic mode before configuration ends). */
	if (f->psm == FZ_USER_PSM) {
		CHECK(f->u.ch && !l2cap_chan_is_open(f->u.ch) && f->u.opened == 0);
	} else {
		sdp_probe(f);
		drain(f);
		CHECK(f->sdp_rsps == 0);
	}
}

static void reach_open(fixture *f)
{
	f->cid = harness_open_channel(f->h, f->handle, f->psm, FZ_PEER_CID, 672);
	CHECK(f->cid >= 0x0040);
	if (f->psm == FZ_USER_PSM) {
		CHECK(f->u.ch && l2cap_chan_is_open(f->u.ch) && f->u.opened == 1);
	} else {
		sdp_probe(f);
		drain(f);
		CHECK(f->sdp_rsps == 1);
	}
}

/* hdr 3: a command whose first CID field names the stack's end (Conf Rsp SCID 4.5, Disc Req
 * DCID 4.6, Conf Req DCID 4.4) and, for a Disconnection Request, whose second names ours. */
static void sig_for_chan(fixture *f, const uint8_t *p, size_t n)
{
	if (n < 2)
		return;
	uint8_t d[255];
	size_t dl = n - 2;
	memcpy(d, p + 2, dl);
	if (dl >= 2)
		put_le16(d, f->cid);
	if (dl >= 4 && p[0] == FZ_SIG_DISC_REQ)
		put_le16(d + 2, FZ_PEER_CID);
	harness_sig_in(f->h, f->handle, p[0], p[1], d, dl);
}

static void run_chunk(fixture *f, const fz_chunk *c)
{
	switch (c->hdr & 3) {
	case 0:
		harness_l2cap_in(f->h, f->handle, 0x0001, c->p, c->len);
		break;
	case 1:
		harness_l2cap_in(f->h, f->handle, f->cid, c->p, c->len);
		break;
	case 2:
		if (c->len >= 1)
			fz_conf_req(f->h, f->handle, (uint8_t)(c->hdr >> 4 | 1), f->cid, c->p[0] & 1, c->p + 1,
				    c->len - 1, (c->p[0] >> 4) + 1u);
		break;
	default:
		sig_for_chan(f, c->p, c->len);
		break;
	}
	drain(f);
	if (c->hdr & 0x08)
		fz_conf_rsp_ok(&f->peer, f->handle, f->cid);
	if ((c->hdr & 0x10) && f->u.ch) {
		uint8_t out[100];
		memset(out, 0x5a, sizeof out);
		(void)l2cap_send(f->u.ch, out, sizeof out);
	}
	if (c->hdr & 0x04)
		harness_advance(f->h, 3000);
	drain(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	fixture f = { 0 };
	f.h = harness_new(8);
	f.psm = (data[0] & 1) ? FZ_USER_PSM : L2CAP_PSM_SDP;
	CHECK(l2cap_listen(bt_stack_l2cap(harness_stack(f.h)), FZ_USER_PSM, 672, u_accept, &f.u) == FZ_USER_PSM);
	fz_peer_init(&f.peer, f.h, on_pdu, &f);
	bt_addr peer = { { 1, 2, 3, 4, 5, 6 } };
	f.handle = harness_link_up(f.h, &peer);
	if (data[0] & 2)
		reach_open(&f);
	else
		reach_config(&f);
	fz_peer_attach(&f.peer);
	fz_input in = { data + 1, size - 1, 0 };
	fz_chunk c;
	while (fz_next(&in, &c))
		run_chunk(&f, &c);
	if (f.u.ch)
		l2cap_close(f.u.ch);
	fz_teardown(&f.peer, f.handle);
	return 0;
}
