/* fuzz_acl_reassembly.c - HCI ACL reassembly (Core spec Vol 4 Part E 5.4.2, Vol 3 Part A 7.2)
 * with PDUs half built when the fuzzer's packets start. Two links are up: on link A a user
 * channel (PSM 0x1001, MTU 1000) is open and 100 of the 604 octets of a PDU for it have
 * arrived; on link B the SDP channel is open and 6 of the 12 octets of a signalling PDU (an
 * Echo Request) have arrived.
 *
 * Chunks [hdr][len][octets] (fuzz_peer.h), each one ACL data packet:
 *   bits 0-1: the Packet_Boundary flag (00 first non-flushable, 01 continuing, 10 first
 *             flushable, 11 reserved)
 *   bits 2-3: the handle: 0 link A, 1 link B, 2 a handle with no link, 3 the first two
 *             octets are the whole handle/flags field
 *   bits 4-5: an L2CAP basic header (Vol 3 Part A 3.1) goes before the octets: 0 none,
 *             1 length = octets, CID 0x0001 (signalling), 2 length = octets, CID = the
 *             link's channel, 3 length = the first two octets (a PDU of any announced size),
 *             CID = the link's channel
 *   bit 6: the Broadcast flag is 01 (Vol 4 Part E 5.4.2: not for ACL-U from a peer)
 *   bit 7: afterwards the clock moves 3 s */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_peer.h"
#include "hci/hci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define USER_MTU 1000
#define NO_LINK 0x0123

typedef struct {
	l2cap_chan *ch;
	unsigned opened, sdus;
} user;

static volatile uint8_t sink;

static void u_opened(void *c, l2cap_chan *ch) { ((user *)c)->opened++; }
static void u_data(void *c, l2cap_chan *ch, const uint8_t *p, size_t n)
{
	((user *)c)->sdus++;
	for (size_t i = 0; i < n; i++) /* touch every octet: ASan sees any over-read */
		sink ^= p[i];
}
static void u_closed(void *c, l2cap_chan *ch, int err)
{
	l2cap_close(ch);
	((user *)c)->ch = NULL;
}
static const l2cap_chan_ops u_ops = { .opened = u_opened, .data = u_data, .closed = u_closed };

static int u_accept(void *srv, l2cap_chan *ch, const l2cap_chan_ops **ops, void **ctx)
{
	user *u = srv;
	if (u->ch)
		return -1;
	u->ch = ch;
	*ops = &u_ops;
	*ctx = u;
	return 0;
}

typedef struct {
	harness *h;
	uint16_t handle[2], cid[2]; /* link A, link B; the stack's channel CID on each */
	user u;
	fz_peer peer;
} fixture;

static void drain(fixture *f) { fz_drain(&f->peer); }

/* One ACL data packet, header per Vol 4 Part E 5.4.2. */
static void acl_in(fixture *f, uint16_t hf, const uint8_t *p, size_t n)
{
	uint8_t pkt[5 + 4 + 255];
	pkt[0] = 0x02;
	put_le16(pkt + 1, hf);
	put_le16(pkt + 3, (uint16_t)n);
	memcpy(pkt + 5, p, n);
	harness_h4_in(f->h, pkt, 5 + n);
}

static void setup(fixture *f)
{
	bt_stack *s = harness_stack(f->h);
	CHECK(l2cap_listen(bt_stack_l2cap(s), FZ_USER_PSM, USER_MTU, u_accept, &f->u) == FZ_USER_PSM);
	bt_addr a = { { 1, 2, 3, 4, 5, 6 } }, b = { { 6, 5, 4, 3, 2, 1 } };
	f->handle[0] = harness_link_up(f->h, &a);
	f->handle[1] = harness_link_up(f->h, &b);
	f->cid[0] = harness_open_channel(f->h, f->handle[0], FZ_USER_PSM, FZ_PEER_CID, 672);
	f->cid[1] = harness_open_channel(f->h, f->handle[1], L2CAP_PSM_SDP, FZ_PEER_CID, 672);
	CHECK(f->cid[0] >= 0x0040 && f->cid[1] >= 0x0040);
	CHECK(f->u.ch && l2cap_chan_is_open(f->u.ch) && f->u.opened == 1);
	drain(f);
	CHECK(!hci_rx_partial(bt_stack_hci(s)));
	/* Link A: first fragment of a 600-octet SDU for the user channel. */
	uint8_t first[4 + 100];
	put_le16(first, 600);
	put_le16(first + 2, f->cid[0]);
	memset(first + 4, 0xa5, 100);
	acl_in(f, (uint16_t)(f->handle[0] | 0x2 << 12), first, sizeof first);
	/* Link B: first 6 octets of an Echo Request with 4 data octets (Vol 3 Part A 4.8). */
	const uint8_t echo[6] = { 0x08, 0x00, 0x01, 0x00, 0x08, 0x2a };
	acl_in(f, (uint16_t)(f->handle[1] | 0x2 << 12), echo, sizeof echo);
	drain(f);
	CHECK(hci_rx_partial(bt_stack_hci(s)) && f->u.sdus == 0 && f->peer.log.echo_rsps == 0);
}

static void chunk_in(fixture *f, const fz_chunk *c)
{
	const uint8_t *p = c->p;
	size_t n = c->len;
	unsigned link = (c->hdr >> 2) & 1;
	uint16_t hf;
	switch ((c->hdr >> 2) & 3) {
	case 0:
	case 1:
		hf = f->handle[link];
		break;
	case 2:
		hf = NO_LINK;
		break;
	default:
		if (n < 2)
			return;
		hf = get_le16(p);
		p += 2;
		n -= 2;
		break;
	}
	hf = (uint16_t)((hf & ~0x3000u) | (c->hdr & 3u) << 12);
	if (c->hdr & 0x40)
		hf = (uint16_t)((hf & 0x3fffu) | 0x1u << 14);
	uint8_t b[4 + 255];
	size_t bl = 0;
	switch ((c->hdr >> 4) & 3) {
	case 0:
		break;
	case 1:
	case 2:
		put_le16(b, (uint16_t)n);
		put_le16(b + 2, ((c->hdr >> 4) & 3) == 1 ? 0x0001 : f->cid[link]);
		bl = 4;
		break;
	default:
		if (n < 2)
			return;
		memcpy(b, p, 2);
		put_le16(b + 2, f->cid[link]);
		p += 2;
		n -= 2;
		bl = 4;
		break;
	}
	memcpy(b + bl, p, n);
	acl_in(f, hf, b, bl + n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fixture f = { 0 };
	f.h = harness_new(8);
	fz_peer_init(&f.peer, f.h, NULL, NULL);
	setup(&f);
	fz_peer_attach(&f.peer);
	fz_input in = { data, size, 0 };
	fz_chunk c;
	while (fz_next(&in, &c)) {
		chunk_in(&f, &c);
		drain(&f);
		if (c.hdr & 0x80) {
			harness_advance(f.h, 3000);
			drain(&f);
		}
	}
	if (f.u.ch)
		l2cap_close(f.u.ch);
	harness_link_down(f.h, f.handle[1], 0x13);
	drain(&f);
	fz_teardown(&f.peer, f.handle[0]);
	return 0;
}
