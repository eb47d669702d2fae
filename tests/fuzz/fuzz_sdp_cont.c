/* fuzz_sdp_cont.c - the stack's own SDP server (Core spec Vol 3 Part B) over a real L2CAP
 * channel on PSM 0x0001, in the middle of a continued answer when the fuzzer's PDUs start:
 * three large records are registered, the peer's MTU is small (SMALL_MTU), and one
 * ServiceSearchAttributeRequest for every attribute of every record has been answered with
 * its first slice and a continuation state (4.3) the peer has not yet used.
 *
 * Chunks [hdr][len][octets] (fuzz_peer.h), hdr bits 0-1:
 *   0: the octets as one SDP PDU on the channel
 *   1: the octets as a C-frame on L2CAP signalling (CID 0x0001)
 *   2: the octets as an SDP PDU whose ContinuationState is spliced in: the last one the
 *      server gave is appended and ParameterLength is fixed up (as a client continuing
 *      some other request would)
 *   3: replay: the request that got the last continuation, sent again with that state, its
 *      TransactionID xor the first octet (a client fetching the next slice, or replaying an
 *      old one when the server has moved on)
 *   bit 2: afterwards the clock moves 3 s
 *   bit 3: a record is removed (the next one each time), so the database changes under a
 *          pending continuation
 * Oracle: every response fits the peer's MTU, is one of the response PDUs and its
 * ParameterLength covers exactly the rest (4.2). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_peer.h"
#include "sdp/sdp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SMALL_MTU 100
#define SDP_HDR 5
#define N_RECORDS 3

typedef struct {
	harness *h;
	uint16_t handle, cid;
	uint32_t records[N_RECORDS];
	size_t removed;
	/* The last continuation state the server gave, and the request it answered. */
	uint8_t cont[SDP_MAX_CONT_STATE];
	size_t cont_len;
	/* Requests without their ContinuationState: the last one sent, the last continued one. */
	uint8_t req[300], last_req[300];
	size_t req_len, last_req_len;
	unsigned rsps, cont_rsps;
	fz_peer peer;
} fixture;

/* Checks a response and keeps its continuation state (Vol 3 Part B 4.3, 4.6.2, 4.7.2). */
static void on_pdu(void *ctx, uint16_t cid, const uint8_t *p, size_t n)
{
	fixture *f = ctx;
	if (cid != FZ_PEER_CID)
		return;
	CHECK(n >= SDP_HDR && n <= SMALL_MTU);
	CHECK(get_be16(p + 3) == n - SDP_HDR);
	CHECK(p[0] == SDP_PDU_ERROR_RSP || p[0] == SDP_PDU_SS_RSP || p[0] == SDP_PDU_SA_RSP ||
	      p[0] == SDP_PDU_SSA_RSP);
	f->rsps++;
	if (p[0] != SDP_PDU_SA_RSP && p[0] != SDP_PDU_SSA_RSP)
		return;
	CHECK(n >= SDP_HDR + 3);
	size_t c = SDP_HDR + 2 + get_be16(p + SDP_HDR);
	CHECK(c < n && c + 1 + p[c] == n && p[c] <= SDP_MAX_CONT_STATE);
	if (p[c] == 0)
		return;
	f->cont_rsps++;
	f->cont_len = p[c];
	memcpy(f->cont, p + c + 1, f->cont_len);
	/* The request this answers is the one to continue. */
	memcpy(f->last_req, f->req, f->req_len);
	f->last_req_len = f->req_len;
}

static void drain(fixture *f) { fz_drain(&f->peer); }

/* Sends p as a request; base is its length without the ContinuationState. */
static void pdu_in(fixture *f, const uint8_t *p, size_t n, size_t base)
{
	if (base > sizeof f->req)
		base = sizeof f->req;
	memcpy(f->req, p, base);
	f->req_len = base;
	harness_l2cap_in(f->h, f->handle, f->cid, p, n);
	drain(f);
}

/* A raw request's ContinuationState is taken to be an empty one or one of 4 octets (the size
 * this server issues). */
static void raw_in(fixture *f, const uint8_t *p, size_t n)
{
	size_t base = n;
	if (n >= SDP_HDR + 1 && p[n - 1] == 0)
		base = n - 1;
	else if (n >= SDP_HDR + 5 && p[n - 5] == 4)
		base = n - 5;
	pdu_in(f, p, n, base);
}

/* p (a request without ContinuationState) followed by the last state the server gave, with
 * ParameterLength made to match. */
static void splice_in(fixture *f, const uint8_t *p, size_t n, uint8_t tid_xor)
{
	uint8_t b[300];
	if (n < SDP_HDR || n + 1 + f->cont_len > sizeof b)
		return;
	memcpy(b, p, n);
	b[2] ^= tid_xor;
	b[n] = (uint8_t)f->cont_len;
	memcpy(b + n + 1, f->cont, f->cont_len);
	put_be16(b + 3, (uint16_t)(n + 1 + f->cont_len - SDP_HDR));
	pdu_in(f, b, n + 1 + f->cont_len, n);
}

static void replay(fixture *f, uint8_t tid_xor)
{
	uint8_t b[300];
	size_t n = f->last_req_len;
	memcpy(b, f->last_req, n);
	splice_in(f, b, n, tid_xor);
}

static void add_records(fixture *f)
{
	sdp_server *s = bt_stack_sdp(harness_stack(f->h));
	char text[N_RECORDS][400];
	sdp_uuid spp = sdp_uuid16(0x1101);
	sdp_profile prof = { sdp_uuid16(0x1101), 0x0102 };
	for (size_t i = 0; i < N_RECORDS; i++) {
		memset(text[i], 'a' + (int)i, sizeof text[i] - 1);
		text[i][sizeof text[i] - 1] = 0;
		sdp_service_desc d = { .name = "fuzz", .description = text[i], .provider = "btsock",
				       .classes = &spp, .n_classes = 1, .profiles = &prof, .n_profiles = 1,
				       .rfcomm_channel = (uint8_t)(i + 1) };
		f->records[i] = sdp_server_add_service(s, &d);
		CHECK(f->records[i] != 0);
	}
}

/* ServiceSearchAttributeRequest (4.7.1): pattern {SerialPort}, MaximumAttributeByteCount
 * 0xffff, AttributeIDList {0x0000-0xffff}, no continuation. */
static const uint8_t ssa_all[] = { 0x06, 0x00, 0x01, 0x00, 0x0f, 0x35, 0x03, 0x19, 0x11, 0x01, 0xff, 0xff,
				   0x35, 0x05, 0x0a, 0x00, 0x00, 0xff, 0xff, 0x00 };

static void setup(fixture *f)
{
	add_records(f);
	f->cid = harness_open_channel(f->h, f->handle, L2CAP_PSM_SDP, FZ_PEER_CID, SMALL_MTU);
	CHECK(f->cid >= 0x0040);
	raw_in(f, ssa_all, sizeof ssa_all);
	CHECK(f->rsps == 1 && f->cont_rsps == 1 && f->cont_len > 0);
}

static void remove_next(fixture *f)
{
	if (f->removed == N_RECORDS)
		return;
	CHECK(sdp_server_remove_record(bt_stack_sdp(harness_stack(f->h)), f->records[f->removed++]) == 0);
}

static void chunk_in(fixture *f, const fz_chunk *c)
{
	switch (c->hdr & 3) {
	case 0:
		raw_in(f, c->p, c->len);
		break;
	case 1:
		harness_l2cap_in(f->h, f->handle, 0x0001, c->p, c->len);
		break;
	case 2:
		splice_in(f, c->p, c->len, 0);
		break;
	default:
		replay(f, c->len ? c->p[0] : 0);
		break;
	}
	if (c->hdr & 0x08)
		remove_next(f);
	if (c->hdr & 0x04)
		harness_advance(f->h, 3000);
	drain(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fixture f = { 0 };
	f.h = harness_new(8);
	bt_addr peer = { { 1, 2, 3, 4, 5, 6 } };
	fz_peer_init(&f.peer, f.h, on_pdu, &f);
	f.handle = harness_link_up(f.h, &peer);
	setup(&f);
	fz_peer_attach(&f.peer);
	fz_input in = { data, size, 0 };
	fz_chunk c;
	while (fz_next(&in, &c))
		chunk_in(&f, &c);
	fz_teardown(&f.peer, f.handle);
	return 0;
}
