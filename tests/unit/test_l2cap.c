/* test_l2cap.c - L2CAP signalling and channels (Core spec Vol 3 Part A) from packet vectors,
 * through a real stack driven by the harness. Each test names the section it checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "harness.h"
#include "gap/gap.h"
#include "hci/hci_defs.h"

/* Allocation failure injection: this program links with -Wl,--wrap=realloc (tests/
 * CMakeLists.txt), so every realloc of the stack comes here. fail_realloc_size != 0 makes the
 * next realloc(NULL, fail_realloc_size) fail once. */
void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);
static size_t fail_realloc_size;
void *__wrap_realloc(void *p, size_t n)
{
	if (fail_realloc_size && !p && n == fail_realloc_size) {
		fail_realloc_size = 0;
		return NULL;
	}
	return __real_realloc(p, n);
}

static bt_addr peer_addr(void)
{
	bt_addr a;
	bt_addr_parse("00:BB:02:00:00:02", &a);
	return a;
}

/* A server recording what happens to its channel. */
typedef struct {
	l2cap_chan *ch;
	int opened, closed, close_err, writable;
	uint8_t data[8192];
	size_t len, sdus;
} rec;

static void r_opened(void *c, l2cap_chan *ch) { ((rec *)c)->opened++; }
static void r_data(void *c, l2cap_chan *ch, const uint8_t *p, size_t n)
{
	rec *r = c;
	memcpy(r->data + r->len, p, n);
	r->len += n;
	r->sdus++;
}
static void r_writable(void *c, l2cap_chan *ch) { ((rec *)c)->writable++; }
static void r_closed(void *c, l2cap_chan *ch, int err)
{
	rec *r = c;
	r->closed++;
	r->close_err = err;
}
static const l2cap_chan_ops rec_ops = { r_opened, r_data, r_writable, r_closed };

static int rec_accept(void *srv, l2cap_chan *ch, const l2cap_chan_ops **ops, void **ctx)
{
	rec *r = srv;
	r->ch = ch;
	*ops = &rec_ops;
	*ctx = r;
	return 0;
}

typedef struct {
	harness *h;
	uint16_t handle;
	rec r;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	f->h = harness_new(1);
	bt_addr p = peer_addr();
	f->handle = harness_link_up(f->h, &p);
	assert_int_equal(l2cap_listen(bt_stack_l2cap(harness_stack(f->h)), 0x1001, 1000, rec_accept, &f->r), 0x1001);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	harness_free(f->h);
	free(f);
	return 0;
}

static int sig(fixture *f, uint8_t *ident, uint8_t *d, size_t *n)
{
	return harness_sig_out(f->h, ident, d, 256, n);
}

/* Vol 3 Part A 4: several commands may share one C-frame. The Connection Response and our
 * Configuration Request that follows it go out in one PDU (one ACL packet, one controller
 * buffer), and so do our Configuration Response and a Configuration Request caused by the same
 * incoming frame; the frame stays within the MTUsig of 48 every peer accepts. */
static void test_commands_share_a_c_frame(void **state)
{
	fixture *f = *state;
	uint8_t req[4], buf[256];
	put_le16(req, 0x1001);
	put_le16(req + 2, 0x0040);
	harness_sig_in(f->h, f->handle, 0x02, 0x30, req, 4);
	uint16_t cid;
	int n = harness_l2cap_out(f->h, NULL, &cid, buf, sizeof buf);
	assert_int_equal(cid, 0x0001);
	assert_int_equal(n, 12 + 12); /* Connection Response (4+8), Configuration Request (4+8) */
	assert_int_equal(buf[0], 0x03);
	assert_int_equal(buf[12], 0x04);
	assert_int_equal(harness_l2cap_out(f->h, NULL, &cid, buf, sizeof buf), -1); /* nothing else */
	uint16_t stack_cid = get_le16(buf + 4);
	uint8_t ident = buf[12 + 1];
	/* Our Configuration Response and Request in one frame: one frame of answers. */
	uint8_t two[10 + 12];
	two[0] = 0x05;
	two[1] = ident;
	put_le16(two + 2, 6);
	put_le16(two + 4, stack_cid);
	put_le16(two + 6, 0);
	put_le16(two + 8, 0);
	two[10] = 0x04;
	two[11] = 0x31;
	put_le16(two + 12, 8);
	put_le16(two + 14, stack_cid);
	put_le16(two + 16, 0);
	two[18] = 0x01;
	two[19] = 2;
	put_le16(two + 20, 800);
	harness_l2cap_in(f->h, f->handle, 0x0001, two, sizeof two);
	n = harness_l2cap_out(f->h, NULL, &cid, buf, sizeof buf);
	assert_int_equal(n, 4 + 6);
	assert_int_equal(buf[0], 0x05);
	assert_int_equal(buf[1], 0x31);
	assert_int_equal(f->r.opened, 1);
	/* A command over the 48 octets (an Echo Response of 60) goes alone. */
	uint8_t echo[60] = { 0 };
	harness_sig_in(f->h, f->handle, 0x08, 0x32, echo, sizeof echo);
	n = harness_l2cap_out(f->h, NULL, &cid, buf, sizeof buf);
	assert_int_equal(n, 4 + 60);
}

/* 4.2/4.3/4.4/4.5: an incoming channel is accepted, configured both ways and opens. */
static void test_incoming_channel_opens_and_carries_data(void **state)
{
	fixture *f = *state;
	uint16_t cid = harness_open_channel(f->h, f->handle, 0x1001, 0x0040, 800);
	assert_int_not_equal(cid, 0);
	assert_int_equal(f->r.opened, 1);
	assert_int_equal(l2cap_chan_omtu(f->r.ch), 800);
	/* 3.1: a B-frame on the channel's CID reaches the owner whole, even when fragmented. */
	uint8_t big[700];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)i;
	harness_l2cap_in(f->h, f->handle, cid, big, sizeof big);
	assert_int_equal(f->r.sdus, 1);
	assert_int_equal(f->r.len, sizeof big);
	assert_memory_equal(f->r.data, big, sizeof big);
	/* And our SDU goes out with the peer's CID, reassembled from 192-byte fragments. */
	assert_int_equal(l2cap_send(f->r.ch, big, sizeof big), 0);
	uint8_t out[1024];
	uint16_t ocid;
	int n = harness_l2cap_out(f->h, NULL, &ocid, out, sizeof out);
	assert_int_equal(n, sizeof big);
	assert_int_equal(ocid, 0x0040);
	assert_memory_equal(out, big, sizeof big);
	/* 5.1: larger than the peer's MTU is refused locally. */
	uint8_t huge[900] = { 0 };
	assert_int_equal(l2cap_send(f->r.ch, huge, sizeof huge), -EMSGSIZE);
}

/* 3.1 / 5.1: an SDU above our MTU is dropped, the channel stays usable. */
static void test_sdu_above_mtu_dropped(void **state)
{
	fixture *f = *state;
	uint16_t cid = harness_open_channel(f->h, f->handle, 0x1001, 0x0040, 672);
	uint8_t big[1001] = { 0 };
	harness_l2cap_in(f->h, f->handle, cid, big, sizeof big);
	assert_int_equal(f->r.sdus, 0);
	harness_l2cap_in(f->h, f->handle, cid, big, 10);
	assert_int_equal(f->r.sdus, 1);
}

/* 4.3: a PSM nobody listens on gets "PSM not supported" (0x0002). */
static void test_unknown_psm_refused(void **state)
{
	fixture *f = *state;
	uint8_t req[4], d[256], id;
	size_t n;
	put_le16(req, 0x1003);
	put_le16(req + 2, 0x0041);
	harness_sig_in(f->h, f->handle, 0x02, 0x11, req, 4);
	assert_int_equal(sig(f, &id, d, &n), 0x03);
	assert_int_equal(id, 0x11);
	assert_int_equal(get_le16(d + 2), 0x0041);
	assert_int_equal(get_le16(d + 4), 0x0002);
}

/* 4.3: a source CID outside the dynamic range is refused with 0x0006. */
static void test_invalid_source_cid_refused(void **state)
{
	fixture *f = *state;
	uint8_t req[4], d[256], id;
	size_t n;
	put_le16(req, 0x1001);
	put_le16(req + 2, 0x0002);
	harness_sig_in(f->h, f->handle, 0x02, 0x12, req, 4);
	assert_int_equal(sig(f, &id, d, &n), 0x03);
	assert_int_equal(get_le16(d + 4), 0x0006);
}

/* 4.1: an unknown command code gets Command Reject "not understood" with its identifier, and
 * the signalling channel keeps serving (an Echo Request after it is answered, 4.8/4.9). */
static void test_unknown_command_rejected_then_echo(void **state)
{
	fixture *f = *state;
	uint8_t d[256], id;
	size_t n;
	uint8_t junk[3] = { 1, 2, 3 };
	harness_sig_in(f->h, f->handle, 0x7f, 0x21, junk, 3);
	assert_int_equal(sig(f, &id, d, &n), 0x01);
	assert_int_equal(id, 0x21);
	assert_int_equal(n, 2);
	assert_int_equal(get_le16(d), 0x0000);
	uint8_t ping[5] = { 'h', 'e', 'l', 'l', 'o' };
	harness_sig_in(f->h, f->handle, 0x08, 0x22, ping, 5);
	assert_int_equal(sig(f, &id, d, &n), 0x09);
	assert_int_equal(id, 0x22);
	assert_int_equal(n, 5);
	assert_memory_equal(d, ping, 5);
}

/* 4: a command whose length runs past the C-frame, and a request shorter than its fixed part,
 * are rejected as not understood; nothing beyond the frame is read. */
static void test_malformed_commands_rejected(void **state)
{
	fixture *f = *state;
	uint8_t d[256], id;
	size_t n;
	uint8_t frame[6] = { 0x02, 0x31, 0x40, 0x00, 0x01, 0x10 }; /* claims 64 bytes, has 2 */
	harness_l2cap_in(f->h, f->handle, 0x0001, frame, sizeof frame);
	assert_int_equal(sig(f, &id, d, &n), 0x01);
	assert_int_equal(id, 0x31);
	assert_int_equal(get_le16(d), 0x0000);
	uint8_t short_req[2] = { 0x01, 0x10 }; /* Connection Request needs 4 bytes */
	harness_sig_in(f->h, f->handle, 0x02, 0x32, short_req, 2);
	assert_int_equal(sig(f, &id, d, &n), 0x01);
	assert_int_equal(id, 0x32);
	/* Identifier 0 is illegal: ignored. */
	harness_sig_in(f->h, f->handle, 0x08, 0x00, NULL, 0);
	assert_int_equal(sig(f, &id, d, &n), -1);
	/* Two commands in one C-frame are both answered. */
	uint8_t two[8] = { 0x08, 0x41, 0x00, 0x00, 0x08, 0x42, 0x00, 0x00 };
	harness_l2cap_in(f->h, f->handle, 0x0001, two, sizeof two);
	assert_int_equal(sig(f, &id, d, &n), 0x09);
	assert_int_equal(id, 0x41);
	assert_int_equal(sig(f, &id, d, &n), 0x09);
	assert_int_equal(id, 0x42);
}

/* 4.1: a C-frame above our signalling MTU is rejected with reason 0x0001 and our MTUsig. */
static void test_signalling_mtu_exceeded(void **state)
{
	fixture *f = *state;
	uint8_t big[1100] = { 0x08, 0x51 };
	put_le16(big + 2, sizeof big - 4);
	harness_l2cap_in(f->h, f->handle, 0x0001, big, sizeof big);
	uint8_t d[256], id;
	size_t n;
	assert_int_equal(sig(f, &id, d, &n), 0x01);
	assert_int_equal(get_le16(d), 0x0001);
	assert_int_equal(n, 4);
}

/* 5 / 4.5: unknown non-hint options are answered "unknown options" (0x0003) listing their type;
 * unknown hints are ignored; an MTU below 48 is "unacceptable" (0x0001) with MTU 48. */
static void test_configuration_options(void **state)
{
	fixture *f = *state;
	uint8_t req[4], d[256], id;
	size_t n;
	put_le16(req, 0x1001);
	put_le16(req + 2, 0x0050);
	harness_sig_in(f->h, f->handle, 0x02, 0x61, req, 4);
	assert_int_equal(sig(f, &id, d, &n), 0x03);
	uint16_t cid = get_le16(d);
	assert_int_equal(sig(f, &id, d, &n), 0x04); /* the stack's own request */

	uint8_t c1[4 + 3] = { 0 };
	put_le16(c1, cid);
	c1[4] = 0x33; /* unknown, not a hint */
	c1[5] = 1;
	harness_sig_in(f->h, f->handle, 0x04, 0x62, c1, sizeof c1);
	assert_int_equal(sig(f, &id, d, &n), 0x05);
	assert_int_equal(get_le16(d + 4), 0x0003);
	assert_int_equal(n, 7);
	assert_int_equal(d[6], 0x33);

	uint8_t c2[4 + 3 + 4] = { 0 };
	put_le16(c2, cid);
	c2[4] = 0xb3; /* unknown hint: ignored */
	c2[5] = 1;
	c2[7] = 0x01;
	c2[8] = 2;
	put_le16(c2 + 9, 20); /* MTU 20 < 48 */
	harness_sig_in(f->h, f->handle, 0x04, 0x63, c2, sizeof c2);
	assert_int_equal(sig(f, &id, d, &n), 0x05);
	assert_int_equal(get_le16(d + 4), 0x0001);
	assert_int_equal(d[6], 0x01);
	assert_int_equal(get_le16(d + 8), 48);

	uint8_t c3[4 + 11] = { 0 };
	put_le16(c3, cid);
	c3[4] = 0x04; /* RFC option: ERTM asked, we only do basic mode */
	c3[5] = 9;
	c3[6] = 0x03;
	harness_sig_in(f->h, f->handle, 0x04, 0x64, c3, sizeof c3);
	assert_int_equal(sig(f, &id, d, &n), 0x05);
	assert_int_equal(get_le16(d + 4), 0x0001);
	assert_int_equal(d[6], 0x04);
	assert_int_equal(d[8], 0x00);

	uint8_t c4[4 + 1] = { 0 }; /* option header cut short */
	put_le16(c4, cid);
	c4[4] = 0x01;
	harness_sig_in(f->h, f->handle, 0x04, 0x65, c4, sizeof c4);
	assert_int_equal(sig(f, &id, d, &n), 0x05);
	assert_int_equal(get_le16(d + 4), 0x0002);
	assert_int_equal(f->r.opened, 0);
}

/* 4.10/4.11: information requests. */
static void test_information_requests(void **state)
{
	fixture *f = *state;
	uint8_t q[2], d[256], id;
	size_t n;
	put_le16(q, 0x0002);
	harness_sig_in(f->h, f->handle, 0x0a, 0x71, q, 2);
	assert_int_equal(sig(f, &id, d, &n), 0x0b);
	assert_int_equal(n, 8);
	assert_int_equal(get_le16(d + 2), 0);
	assert_int_equal(get_le32(d + 4), 0x80);
	put_le16(q, 0x0003);
	harness_sig_in(f->h, f->handle, 0x0a, 0x72, q, 2);
	assert_int_equal(sig(f, &id, d, &n), 0x0b);
	assert_int_equal(n, 12);
	assert_int_equal(d[4], 0x02);
	put_le16(q, 0x0099);
	harness_sig_in(f->h, f->handle, 0x0a, 0x73, q, 2);
	assert_int_equal(sig(f, &id, d, &n), 0x0b);
	assert_int_equal(n, 4);
	assert_int_equal(get_le16(d + 2), 0x0001);
}

/* 4.6/4.7: disconnection by the peer ends the channel with err 0 (end of file); a request for
 * CIDs that do not exist gets Command Reject "invalid CID" with both CIDs. */
static void test_disconnection(void **state)
{
	fixture *f = *state;
	uint16_t cid = harness_open_channel(f->h, f->handle, 0x1001, 0x0040, 672);
	uint8_t q[4], d[256], id;
	size_t n;
	put_le16(q, 0x0999);
	put_le16(q + 2, 0x0040);
	harness_sig_in(f->h, f->handle, 0x06, 0x81, q, 4);
	assert_int_equal(sig(f, &id, d, &n), 0x01);
	assert_int_equal(get_le16(d), 0x0002);
	assert_int_equal(get_le16(d + 2), 0x0999);
	assert_int_equal(f->r.closed, 0);
	put_le16(q, cid);
	put_le16(q + 2, 0x0040);
	harness_sig_in(f->h, f->handle, 0x06, 0x82, q, 4);
	assert_int_equal(sig(f, &id, d, &n), 0x07);
	assert_int_equal(get_le16(d), cid);
	assert_int_equal(f->r.closed, 1);
	assert_int_equal(f->r.close_err, 0);
	assert_int_equal(l2cap_send(f->r.ch, (const uint8_t *)"x", 1), -ECONNRESET);
	l2cap_close(f->r.ch);
}

/* Vol 4 Part E 7.7.5: the link going down ends every channel on it with ECONNRESET. */
static void test_link_loss_resets_channels(void **state)
{
	fixture *f = *state;
	harness_open_channel(f->h, f->handle, 0x1001, 0x0040, 672);
	harness_link_down(f->h, f->handle, 0x13);
	assert_int_equal(f->r.closed, 1);
	assert_int_equal(f->r.close_err, -ECONNRESET);
	l2cap_close(f->r.ch);
}

/* Vol 4 Part E 7.7.3: a Connection Complete that reuses a live link's handle means that link
 * is gone (btvirt drops a vanished peer's links without Disconnection Complete): its channels
 * end with ECONNRESET and the new link on the same handle carries a channel. */
static void test_reused_handle_replaces_stale_link(void **state)
{
	fixture *f = *state;
	harness_open_channel(f->h, f->handle, 0x1001, 0x0040, 672);
	/* H4 event: indicator, code, length, then Status, Handle, BD_ADDR, Link_Type, Encryption. */
	uint8_t pkt[3 + 11] = { 0x04, HCI_EV_CONN_COMPLETE, 11 };
	uint8_t *cc = pkt + 3;
	put_le16(cc + 1, f->handle);
	bt_addr other;
	bt_addr_parse("00:BB:02:00:00:03", &other);
	memcpy(cc + 3, other.b, 6);
	cc[9] = 0x01; /* ACL */
	harness_h4_in(f->h, pkt, sizeof pkt);
	assert_int_equal(f->r.closed, 1);
	assert_int_equal(f->r.close_err, -ECONNRESET);
	assert_false(harness_cmd_seen(f->h, HCI_OP_DISCONNECT)); /* the handle is the new link's */
	l2cap_close(f->r.ch);
	memset(&f->r, 0, sizeof f->r);
	harness_open_channel(f->h, f->handle, 0x1001, 0x0041, 672);
	assert_int_equal(f->r.opened, 1);
	l2cap_close(f->r.ch);
}

/* The keepalive: a silent link with a channel gets an Echo Request (4.8); no answer within
 * the probe timeout and the link is declared lost. */
static void test_keepalive_detects_vanished_peer(void **state)
{
	fixture *f = *state;
	harness_open_channel(f->h, f->handle, 0x1001, 0x0040, 672);
	uint8_t d[256], id;
	size_t n;
	harness_advance(f->h, 5001);
	assert_int_equal(sig(f, &id, d, &n), 0x08);
	assert_int_equal(f->r.closed, 0);
	harness_advance(f->h, 5001);
	assert_true(harness_cmd_seen(f->h, HCI_OP_DISCONNECT));
	assert_int_equal(f->r.closed, 1);
	assert_int_equal(f->r.close_err, -ETIMEDOUT);
	l2cap_close(f->r.ch);
}

/* ...and an answered probe keeps the channel. */
static void test_keepalive_answered(void **state)
{
	fixture *f = *state;
	harness_open_channel(f->h, f->handle, 0x1001, 0x0040, 672);
	uint8_t d[256], id;
	size_t n;
	harness_advance(f->h, 5001);
	assert_int_equal(sig(f, &id, d, &n), 0x08);
	harness_sig_in(f->h, f->handle, 0x09, id, NULL, 0);
	harness_advance(f->h, 5001);
	assert_int_equal(f->r.closed, 0);
}

/* 4.2: PSM rules for listen: odd, upper octet's LSB 0; 0 picks a dynamic one (>= 0x1001). */
static void test_psm_rules(void **state)
{
	fixture *f = *state;
	l2cap *l = bt_stack_l2cap(harness_stack(f->h));
	assert_int_equal(l2cap_listen(l, 0x1002, 672, rec_accept, &f->r), -EINVAL);
	assert_int_equal(l2cap_listen(l, 0x0101, 672, rec_accept, &f->r), -EINVAL);
	assert_int_equal(l2cap_listen(l, 0x1001, 672, rec_accept, &f->r), -EADDRINUSE);
	assert_int_equal(l2cap_listen(l, 0, 672, rec_accept, &f->r), 0x1003);
	assert_int_equal(l2cap_listen(l, 0x1005, 20, rec_accept, &f->r), -EINVAL); /* MTU < 48 */
	l2cap_chan *ch;
	bt_addr p = peer_addr();
	assert_int_equal(l2cap_connect(l, &p, 0x0002, 672, &rec_ops, &f->r, &ch), -EINVAL);
}

/* Outgoing: page, Connection Request, configuration, data; then a refused PSM. */
static void test_outgoing_channel(void **state)
{
	fixture *f = *state;
	l2cap *l = bt_stack_l2cap(harness_stack(f->h));
	bt_addr other;
	bt_addr_parse("00:BB:03:00:00:03", &other);
	rec r = { 0 };
	l2cap_chan *ch;
	assert_int_equal(l2cap_connect(l, &other, 0x1001, 672, &rec_ops, &r, &ch), 0);
	assert_true(harness_cmd_seen(f->h, HCI_OP_CREATE_CONN));
	uint16_t h2 = harness_accept_page(f->h, &other);
	assert_int_not_equal(harness_accept_channel(f->h, h2, 0x0070, 900), 0);
	assert_int_equal(r.opened, 1);
	assert_int_equal(l2cap_chan_omtu(ch), 900);
	l2cap_close(ch);
	uint8_t d[256], id;
	size_t n;
	assert_int_equal(sig(f, &id, d, &n), 0x06);

	rec r2 = { 0 };
	assert_int_equal(l2cap_connect(l, &other, 0x1001, 672, &rec_ops, &r2, &ch), 0);
	assert_int_equal(sig(f, &id, d, &n), 0x02);
	uint8_t rsp[8];
	put_le16(rsp, 0);
	put_le16(rsp + 2, get_le16(d + 2));
	put_le16(rsp + 4, 0x0002);
	put_le16(rsp + 6, 0);
	harness_sig_in(f->h, h2, 0x03, id, rsp, 8);
	assert_int_equal(r2.closed, 1);
	assert_int_equal(r2.close_err, -ECONNREFUSED);
	l2cap_close(ch);
}

/* Feeds one HCI event (code, parameters) through H4. */
static void hci_event_in(fixture *f, uint8_t code, const uint8_t *p, uint8_t len)
{
	uint8_t pkt[3 + 255] = { 0x04, code, len };
	memcpy(pkt + 3, p, len);
	harness_h4_in(f->h, pkt, 3u + len);
}

/* Answers the stack's next Connection Request with "security block" (Vol 3 Part A 4.3,
 * result 0x0003). */
static void refuse_for_security(fixture *f)
{
	uint8_t d[256], id, rsp[8];
	size_t n;
	assert_int_equal(sig(f, &id, d, &n), 0x02);
	put_le16(rsp, 0);
	put_le16(rsp + 2, get_le16(d + 2));
	put_le16(rsp + 4, 0x0003);
	put_le16(rsp + 6, 0);
	harness_sig_in(f->h, f->handle, 0x03, id, rsp, 8);
}

/* A channel to PSM 0x1003 that the peer refuses for security: the stack starts authenticating
 * the link (Vol 4 Part E 7.1.15). */
static l2cap_chan *connect_refused_for_security(fixture *f, rec *r)
{
	l2cap *l = bt_stack_l2cap(harness_stack(f->h));
	l2cap_chan *ch;
	bt_addr peer = peer_addr();
	assert_int_equal(l2cap_connect(l, &peer, 0x1003, 672, &rec_ops, r, &ch), 0);
	refuse_for_security(f);
	assert_true(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	assert_int_equal(r->closed, 0);
	return ch;
}

/* Authentication Complete (7.7.6) or Encryption Change (7.7.8) for the fixture's link. */
static void auth_complete(fixture *f, uint8_t status)
{
	uint8_t ev[3] = { status };
	put_le16(ev + 1, f->handle);
	hci_event_in(f, HCI_EV_AUTH_COMPLETE, ev, 3);
}

static void encryption_on(fixture *f)
{
	uint8_t ev[4] = { 0 };
	put_le16(ev + 1, f->handle);
	ev[3] = 0x01;
	hci_event_in(f, HCI_EV_ENCRYPT_CHANGE, ev, 4);
}

/* Security Mode 4 (Vol 3 Part C 5.2.2): a peer answering "security block" gets the link
 * authenticated (Vol 4 Part E 7.1.15, 7.7.6) and encrypted (7.1.16, 7.7.8), then the
 * Connection Request again, which it accepts. A second refusal, or failed authentication,
 * ends the channel with EACCES. */
static void test_security_block_secures_link_and_retries(void **state)
{
	fixture *f = *state;
	rec r = { 0 };
	l2cap_chan *ch = connect_refused_for_security(f, &r);
	auth_complete(f, 0);
	assert_true(harness_cmd_seen(f->h, HCI_OP_SET_CONN_ENCRYPT));
	encryption_on(f);
	assert_int_not_equal(harness_accept_channel(f->h, f->handle, 0x0071, 672), 0);
	assert_int_equal(r.opened, 1);
	l2cap_close(ch);
	uint8_t d[256], id;
	size_t n;
	assert_int_equal(sig(f, &id, d, &n), 0x06);

	/* The link is encrypted now: a further security block is final. */
	rec r2 = { 0 };
	l2cap *l = bt_stack_l2cap(harness_stack(f->h));
	bt_addr peer = peer_addr();
	assert_int_equal(l2cap_connect(l, &peer, 0x1003, 672, &rec_ops, &r2, &ch), 0);
	refuse_for_security(f);
	assert_false(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	assert_int_equal(r2.closed, 1);
	assert_int_equal(r2.close_err, -EACCES);
	l2cap_close(ch);
}

static void test_failed_authentication_refuses_channel(void **state)
{
	fixture *f = *state;
	rec r = { 0 };
	l2cap_chan *ch = connect_refused_for_security(f, &r);
	auth_complete(f, 0x05); /* Authentication Failure */
	assert_false(harness_cmd_seen(f->h, HCI_OP_SET_CONN_ENCRYPT));
	assert_int_equal(r.closed, 1);
	assert_int_equal(r.close_err, -EACCES);
	l2cap_close(ch);
}

/* Refused again with "security block" just after the link was secured (the peer's host had
 * not yet taken in its Encryption Change): the request goes again 300 ms later, twice at
 * most; a third refusal ends the channel with EACCES. */
static void test_security_block_right_after_encryption(void **state)
{
	fixture *f = *state;
	rec r = { 0 };
	l2cap_chan *ch = connect_refused_for_security(f, &r);
	auth_complete(f, 0);
	encryption_on(f);
	uint8_t d[256], id;
	size_t n;
	for (int late = 0; late < 2; late++) {
		refuse_for_security(f); /* asked again, refused again */
		assert_int_equal(r.closed, 0);
		assert_int_equal(sig(f, &id, d, &n), -1); /* not at once */
		harness_advance(f->h, 310);
	}
	refuse_for_security(f);
	assert_int_equal(r.closed, 1);
	assert_int_equal(r.close_err, -EACCES);
	l2cap_close(ch);
}

/* Simple Pairing Complete (7.7.45) without the Authentication Complete that should follow
 * (btvirt sends it to the wrong side at times): after a grace period the link goes on to
 * encryption anyway, and the channel opens. */
static void test_paired_without_auth_complete(void **state)
{
	fixture *f = *state;
	rec r = { 0 };
	l2cap_chan *ch = connect_refused_for_security(f, &r);
	bt_addr peer = peer_addr();
	uint8_t ev[7] = { 0 }; /* Simple Pairing Complete: success, BD_ADDR */
	memcpy(ev + 1, peer.b, 6);
	hci_event_in(f, HCI_EV_SIMPLE_PAIRING_COMPLETE, ev, 7);
	harness_advance(f->h, 500);
	assert_false(harness_cmd_seen(f->h, HCI_OP_SET_CONN_ENCRYPT)); /* still waiting */
	harness_advance(f->h, 600);
	assert_true(harness_cmd_seen(f->h, HCI_OP_SET_CONN_ENCRYPT));
	encryption_on(f);
	assert_int_not_equal(harness_accept_channel(f->h, f->handle, 0x0072, 672), 0);
	assert_int_equal(r.opened, 1);
	l2cap_close(ch);
}

/* l2cap_connect to PSM 0x1001 of addr, a device with no link yet: the stack pages it. */
static l2cap_chan *connect_unlinked(fixture *f, const char *addr, bt_addr *other, rec *r)
{
	l2cap *l = bt_stack_l2cap(harness_stack(f->h));
	l2cap_chan *ch;
	assert_int_equal(bt_addr_parse(addr, other), 0);
	assert_int_equal(l2cap_connect(l, other, 0x1001, 672, &rec_ops, r, &ch), 0);
	return ch;
}

/* Connection Complete (7.7.3): Status, Connection_Handle, BD_ADDR, Link_Type ACL. */
static void conn_complete_in(fixture *f, uint8_t status, uint16_t handle, const bt_addr *peer)
{
	uint8_t cc[11] = { status };
	put_le16(cc + 1, handle);
	memcpy(cc + 3, peer->b, 6);
	cc[9] = 0x01;
	hci_event_in(f, HCI_EV_CONN_COMPLETE, cc, 11);
}

/* Crossed pages: the peer pages us while our Create_Connection to it is under way. The
 * incoming link (Vol 4 Part E 7.7.4, 7.1.8) carries our channel; the second Connection Complete
 * for the same peer (btvirt completes both pages) is disconnected, not taken for a new link
 * that replaces the first. */
static void test_crossed_pages_keep_the_first_link(void **state)
{
	fixture *f = *state;
	bt_addr other;
	rec r = { 0 };
	l2cap_chan *ch = connect_unlinked(f, "00:BB:03:00:00:04", &other, &r);
	assert_true(harness_cmd_seen(f->h, HCI_OP_CREATE_CONN));
	uint16_t first = harness_link_up(f->h, &other); /* the peer's page, accepted */
	assert_false(harness_cmd_seen(f->h, HCI_OP_DISCONNECT));
	uint16_t second = harness_accept_page(f->h, &other); /* ours completes too */
	assert_int_not_equal(first, second);
	assert_true(harness_cmd_seen(f->h, HCI_OP_DISCONNECT));
	assert_int_equal(r.closed, 0);
	assert_int_not_equal(harness_accept_channel(f->h, first, 0x0071, 672), 0);
	assert_int_equal(r.opened, 1);
	assert_int_equal(l2cap_chan_handle(ch), first);
	l2cap_close(ch);
}

/* Crossed pages as a controller reports them: our Create_Connection fails with 0x0B
 * (Connection Already Exists, Vol 1 Part F) before the peer's link completes; the channel
 * waits for that link instead of failing. */
static void test_crossed_pages_our_page_refused(void **state)
{
	fixture *f = *state;
	bt_addr other;
	rec r = { 0 };
	l2cap_chan *ch = connect_unlinked(f, "00:BB:03:00:00:05", &other, &r);
	assert_true(harness_cmd_seen(f->h, HCI_OP_CREATE_CONN));
	harness_mute(f->h, true); /* the events come from this test, in this order */
	uint8_t req[10] = { 0 }; /* Connection Request (7.7.4): BD_ADDR, class, link type ACL */
	memcpy(req, other.b, 6);
	req[9] = 0x01;
	hci_event_in(f, HCI_EV_CONN_REQUEST, req, 10);
	assert_true(harness_cmd_seen(f->h, HCI_OP_ACCEPT_CONN_REQUEST));
	harness_mute(f->h, false);
	uint8_t st[4] = { 0, 1 }; /* Command Status (7.7.15) for the accept */
	put_le16(st + 2, HCI_OP_ACCEPT_CONN_REQUEST);
	hci_event_in(f, HCI_EV_CMD_STATUS, st, 4);
	conn_complete_in(f, 0x0b, 0, &other); /* Connection Already Exists */
	assert_int_equal(r.closed, 0);
	conn_complete_in(f, 0, 0x0050, &other); /* the peer's link completes */
	assert_int_not_equal(harness_accept_channel(f->h, 0x0050, 0x0073, 672), 0);
	assert_int_equal(r.opened, 1);
	l2cap_close(ch);
}

/* Vol 4 Part E 7.7.3 with status 0x04: a page timeout fails the channel with EHOSTDOWN. */
static void test_page_timeout(void **state)
{
	fixture *f = *state;
	bt_addr other;
	rec r = { 0 };
	l2cap_chan *ch = connect_unlinked(f, "00:BB:04:00:00:04", &other, &r);
	conn_complete_in(f, 0x04, 0, &other);
	assert_int_equal(r.closed, 1);
	assert_int_equal(r.close_err, -EHOSTDOWN);
	l2cap_close(ch);
}

/* Vol 4 Part E 4.1.1: with one controller buffer, a second fragment waits for Number Of
 * Completed Packets; the harness returns buffers, so a multi-fragment SDU arrives whole. Also
 * the transmit ring reports -EAGAIN when full and calls writable once there is room. */
static void test_tx_ring_backpressure(void **state)
{
	fixture *f = *state;
	harness_open_channel(f->h, f->handle, 0x1001, 0x0040, 1000);
	harness_mute(f->h, false);
	uint8_t sdu[1000] = { 0 };
	int sent = 0;
	/* Keep the controller's buffer busy: the harness only returns it on the next drain, so
	 * fill the ring inside one call sequence. */
	while (l2cap_send(f->r.ch, sdu, sizeof sdu) == 0 && sent < 100)
		sent++;
	assert_true(sent >= 2);
	assert_true(sent < 100);
	uint8_t out[1100];
	uint16_t cid;
	while (harness_l2cap_out(f->h, NULL, &cid, out, sizeof out) >= 0)
		;
	assert_true(f->r.writable >= 1);
}

/* ---------------------------------------------------------------- issue 9: bounded answers */

/* Opens a channel from the peer to psm up to CONFIG (our Connection Response and our own
 * Configuration Request read): returns the stack's CID. */
static uint16_t chan_to_config(fixture *f, uint16_t psm, uint16_t scid)
{
	uint8_t req[4], d[256], id;
	size_t n;
	put_le16(req, psm);
	put_le16(req + 2, scid);
	harness_sig_in(f->h, f->handle, 0x02, 0x60, req, 4);
	assert_int_equal(sig(f, &id, d, &n), 0x03);
	assert_int_equal(get_le16(d + 4), 0x0000);
	uint16_t cid = get_le16(d);
	assert_int_equal(sig(f, &id, d, &n), 0x04);
	return cid;
}

/* A Configuration Request for cid carrying nrfc RFC options (mode ERTM, 5.4) in len bytes. */
static size_t conf_req_rfc(uint8_t *c, uint16_t cid, int nrfc)
{
	put_le16(c, cid);
	put_le16(c + 2, 0);
	size_t off = 4;
	for (int i = 0; i < nrfc; i++) {
		memset(c + off, 0, 11);
		c[off] = 0x04;
		c[off + 1] = 9;
		c[off + 2] = 0x03; /* ERTM */
		off += 11;
	}
	return off;
}

/* Issue 9 (BlueBorne class, CVE-2017-1000251): seven RFC options with a mode other than basic
 * in one Configuration Request. 4.5/5.4: the answer is "unacceptable" proposing basic mode
 * once, however many RFC options came (it used to append 11 bytes per option to a 64-byte
 * stack buffer). */
static void test_conf_req_many_rfc_options_config(void **state)
{
	fixture *f = *state;
	uint16_t cid = chan_to_config(f, L2CAP_PSM_SDP, 0x0040);
	uint8_t c[4 + 7 * 11], d[256], id;
	size_t n;
	size_t len = conf_req_rfc(c, cid, 7);
	harness_sig_in(f->h, f->handle, 0x04, 0x66, c, len);
	assert_int_equal(sig(f, &id, d, &n), 0x05);
	assert_int_equal(id, 0x66);
	assert_int_equal(get_le16(d), 0x0040);
	assert_int_equal(get_le16(d + 4), 0x0001);
	assert_int_equal(n, 6 + 11);
	assert_int_equal(d[6], 0x04);
	assert_int_equal(d[7], 9);
	assert_int_equal(d[8], 0x00);
}

/* The same through reconfiguration of an OPEN channel (7.1): answered the same way, and the
 * channel stays open with its configuration unchanged. */
static void test_conf_req_many_rfc_options_open(void **state)
{
	fixture *f = *state;
	uint16_t cid = harness_open_channel(f->h, f->handle, L2CAP_PSM_SDP, 0x0041, 672);
	assert_int_not_equal(cid, 0);
	uint8_t c[4 + 7 * 11], d[256], id;
	size_t n;
	size_t len = conf_req_rfc(c, cid, 7);
	harness_sig_in(f->h, f->handle, 0x04, 0x67, c, len);
	assert_int_equal(sig(f, &id, d, &n), 0x05);
	assert_int_equal(get_le16(d + 4), 0x0001);
	assert_int_equal(n, 6 + 11);
	/* Still there: a Disconnection Request for it is answered, not rejected. */
	uint8_t q[4];
	put_le16(q, cid);
	put_le16(q + 2, 0x0041);
	harness_sig_in(f->h, f->handle, 0x06, 0x68, q, 4);
	assert_int_equal(sig(f, &id, d, &n), 0x07);
}

/* Sends a Configuration Request (flags 0) for cid with the given options; returns the result of
 * the stack's answer and leaves the answer's data in d (n bytes). */
static int conf_in(fixture *f, uint16_t cid, uint8_t ident, const uint8_t *opts, size_t olen, uint8_t *d, size_t *n)
{
	uint8_t c[1100];
	put_le16(c, cid);
	put_le16(c + 2, 0);
	memcpy(c + 4, opts, olen);
	harness_sig_in(f->h, f->handle, 0x04, ident, c, 4 + olen);
	uint8_t id;
	int code = harness_sig_out(f->h, &id, d, 2048, n);
	assert_int_equal(code, 0x05);
	assert_int_equal(id, ident);
	return get_le16(d + 4);
}

/* 4.4/4.5 option sets, asked in CONFIG (cfg) or OPEN (reconfiguration): repeated, contradictory,
 * unknown (listed once each), hints, wrong lengths and truncated options. */
static void check_option_sets(fixture *f, uint16_t cid)
{
	uint8_t d[2048];
	size_t n;
	/* Two MTU options: the last counts (20 then 100: accepted; 100 then 20: 48 proposed). */
	const uint8_t mtu2[] = { 0x01, 2, 20, 0, 0x01, 2, 100, 0 };
	assert_int_equal(conf_in(f, cid, 0x70, mtu2, sizeof mtu2, d, &n), 0x0000);
	assert_int_equal(n, 6);
	const uint8_t mtu2b[] = { 0x01, 2, 100, 0, 0x81, 2, 20, 0 };
	assert_int_equal(conf_in(f, cid, 0x71, mtu2b, sizeof mtu2b, d, &n), 0x0001);
	assert_int_equal(n, 6 + 4);
	assert_int_equal(d[6], 0x01);
	assert_int_equal(get_le16(d + 8), 48);
	/* RFC ERTM then basic: basic counts; basic then ERTM: basic proposed once. MTU 20 with
	 * ERTM: both proposed in one answer. */
	uint8_t rfc2[22] = { 0x04, 9, 0x03 };
	rfc2[11] = 0x04;
	rfc2[12] = 9;
	assert_int_equal(conf_in(f, cid, 0x72, rfc2, sizeof rfc2, d, &n), 0x0000);
	rfc2[2] = 0x00;
	rfc2[13] = 0x02; /* retransmission mode */
	assert_int_equal(conf_in(f, cid, 0x73, rfc2, sizeof rfc2, d, &n), 0x0001);
	assert_int_equal(n, 6 + 11);
	uint8_t both[11 + 4] = { 0x04, 9, 0x04, [11] = 0x01, 2, 20, 0 };
	assert_int_equal(conf_in(f, cid, 0x74, both, sizeof both, d, &n), 0x0001);
	assert_int_equal(n, 6 + 11 + 4);
	assert_int_equal(d[6], 0x04);
	assert_int_equal(d[8], 0x00);
	assert_int_equal(d[17], 0x01);
	/* Unknown types listed once each, hints skipped; unknown wins over unacceptable. */
	const uint8_t unk[] = { 0x33, 0, 0x40, 1, 9, 0x33, 0, 0xb3, 0, 0x01, 2, 20, 0 };
	assert_int_equal(conf_in(f, cid, 0x75, unk, sizeof unk, d, &n), 0x0003);
	assert_int_equal(n, 8);
	assert_int_equal(d[6], 0x33);
	assert_int_equal(d[7], 0x40);
	/* A known option of the wrong length, and options cut short: rejected, nothing listed. */
	const uint8_t badlen[] = { 0x01, 3, 100, 0, 0 };
	assert_int_equal(conf_in(f, cid, 0x76, badlen, sizeof badlen, d, &n), 0x0002);
	assert_int_equal(n, 6);
	const uint8_t rfcshort[] = { 0x04, 2, 0x03, 0 };
	assert_int_equal(conf_in(f, cid, 0x77, rfcshort, sizeof rfcshort, d, &n), 0x0002);
	const uint8_t cut[] = { 0x33, 0, 0x01, 2, 100 }; /* value runs past the command */
	assert_int_equal(conf_in(f, cid, 0x78, cut, sizeof cut, d, &n), 0x0002);
	assert_int_equal(n, 6);
	const uint8_t hdr1[] = { 0x01 }; /* a lone type octet */
	assert_int_equal(conf_in(f, cid, 0x79, hdr1, sizeof hdr1, d, &n), 0x0002);
	/* Known options of the right lengths: accepted (flush timeout, QoS, FCS, EFS, EWS). */
	uint8_t known[4 + 24 + 3 + 18 + 4] = { 0x02, 2, 0xff, 0xff, 0x03, 22, [28] = 0x05, 1, 1,
					      [31] = 0x06, 16, [49] = 0x07, 2 };
	assert_int_equal(conf_in(f, cid, 0x7a, known, sizeof known, d, &n), 0x0000);
}

static void test_conf_option_sets_config(void **state)
{
	fixture *f = *state;
	uint16_t cid = chan_to_config(f, 0x1001, 0x0042);
	check_option_sets(f, cid);
	assert_int_equal(f->r.opened, 0); /* our own request is still unanswered */
	l2cap_close(f->r.ch);
}

static void test_conf_option_sets_open(void **state)
{
	fixture *f = *state;
	uint16_t cid = harness_open_channel(f->h, f->handle, 0x1001, 0x0043, 300);
	assert_int_equal(f->r.opened, 1);
	check_option_sets(f, cid);
	/* Refused reconfigurations changed nothing; the last accepted one (no MTU option) kept
	 * the MTU of the one before it (100, from "MTU 20, MTU 100"). */
	assert_true(l2cap_chan_is_open(f->r.ch));
	assert_int_equal(l2cap_chan_omtu(f->r.ch), 100);
	assert_int_equal(f->r.opened, 1);
	uint8_t d[2048];
	size_t n;
	const uint8_t bad[] = { 0x01, 2, 0x00 };
	assert_int_equal(conf_in(f, cid, 0x7b, bad, sizeof bad, d, &n), 0x0002);
	assert_int_equal(l2cap_chan_omtu(f->r.ch), 100);
	assert_int_equal(l2cap_send(f->r.ch, (const uint8_t *)"x", 1), 0);
}

/* A Configuration Request filling our whole MTUsig (1024, and the 672 of the default MTU) with
 * unknown options: the answer lists the types as far as they fit a 48-byte C-frame (4.5; the
 * smallest MTUsig, 4) and is still a valid response. */
static void conf_max_unknown(fixture *f, uint16_t cid, size_t frame)
{
	uint8_t opts[1020];
	size_t olen = frame - 4 - 4; /* command header, then DCID and flags */
	for (size_t i = 0; i + 1 < olen; i += 2) {
		opts[i] = (uint8_t)(0x08 + (i / 2) % 0x78); /* 0x08..0x7f: unknown, not hints */
		opts[i + 1] = 0;
	}
	assert_int_equal(olen % 2, 0); /* whole options of 2 octets */
	uint8_t d[2048];
	size_t n;
	assert_int_equal(conf_in(f, cid, 0x7c, opts, olen, d, &n), 0x0003);
	assert_int_equal(n, 44);
	for (size_t i = 0; i < 38; i++)
		assert_int_equal(d[6 + i], 0x08 + i);
}

static void test_conf_req_max_length_unknown_options(void **state)
{
	fixture *f = *state;
	uint16_t cid = chan_to_config(f, L2CAP_PSM_SDP, 0x0044);
	conf_max_unknown(f, cid, 1024);
	conf_max_unknown(f, cid, 672);
	/* The channel still configures after that. */
	const uint8_t mtu[] = { 0x01, 2, 0x00, 0x01 };
	uint8_t d[2048];
	size_t n;
	assert_int_equal(conf_in(f, cid, 0x7d, mtu, sizeof mtu, d, &n), 0x0000);
}

/* 4.1: a C-frame of our MTUsig (1024) is taken, one byte more is rejected "signalling MTU
 * exceeded" with the first command's identifier and our MTUsig. */
static void test_signalling_mtu_edges(void **state)
{
	fixture *f = *state;
	static uint8_t frame[1025];
	uint8_t d[2048], id;
	size_t n;
	memset(frame, 0xa5, sizeof frame);
	frame[0] = 0x08;
	frame[1] = 0x52;
	put_le16(frame + 2, 1024 - 4);
	harness_l2cap_in(f->h, f->handle, 0x0001, frame, 1024);
	/* 4.8/4.9: an Echo Request of maximal data is echoed whole. */
	assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x09);
	assert_int_equal(id, 0x52);
	assert_int_equal(n, 1020);
	assert_memory_equal(d, frame + 4, 1020);
	frame[1] = 0x53;
	put_le16(frame + 2, 1025 - 4);
	harness_l2cap_in(f->h, f->handle, 0x0001, frame, 1025);
	assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x01);
	assert_int_equal(id, 0x53);
	assert_int_equal(n, 4);
	assert_int_equal(get_le16(d), 0x0001);
	assert_int_equal(get_le16(d + 2), 1024);
	assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), -1);
	/* Over the MTU and with identifier 0 in the first command: rejected with identifier 1. */
	frame[1] = 0x00;
	harness_l2cap_in(f->h, f->handle, 0x0001, frame, 1025);
	assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x01);
	assert_int_equal(get_le16(d), 0x0001);
}

/* 4: every command code with no data, too little data and more data than its fixed part. A
 * request too short is rejected "not understood" with its identifier; a response too short is
 * dropped; extra bytes after a fixed part are ignored. */
static void test_every_command_zero_short_long(void **state)
{
	fixture *f = *state;
	uint8_t d[2048], id, junk[64];
	size_t n;
	memset(junk, 0, sizeof junk);
	static const struct {
		uint8_t code;
		size_t min;  /* fixed part */
		int short_answer; /* code answered to a short one (-1: none) */
	} cmds[] = {
		{ 0x01, 2, -1 }, { 0x02, 4, 0x01 }, { 0x03, 8, -1 }, { 0x04, 4, 0x01 },
		{ 0x05, 6, -1 }, { 0x06, 4, 0x01 }, { 0x07, 4, -1 }, { 0x08, 0, 0x09 },
		{ 0x09, 0, -1 }, { 0x0a, 2, 0x01 }, { 0x0b, 4, -1 },
	};
	uint8_t ident = 0x90;
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		size_t lens[2] = { 0, cmds[i].min ? cmds[i].min - 1 : 0 };
		for (int j = 0; j < 2; j++) {
			harness_sig_in(f->h, f->handle, cmds[i].code, ++ident, junk, lens[j]);
			int code = harness_sig_out(f->h, &id, d, sizeof d, &n);
			assert_int_equal(code, cmds[i].short_answer);
			if (code == 0x01) {
				assert_int_equal(id, ident);
				assert_int_equal(n, 2);
				assert_int_equal(get_le16(d), 0x0000);
			}
			assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), -1);
		}
	}
	/* Long: a Connection Request with 60 extra bytes is answered as the plain one would be. */
	put_le16(junk, 0x1001);
	put_le16(junk + 2, 0x0045);
	harness_sig_in(f->h, f->handle, 0x02, 0xa0, junk, 64);
	assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x03);
	assert_int_equal(get_le16(d + 4), 0x0000);
	uint16_t cid = get_le16(d);
	assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x04);
	put_le16(junk, 0x0002);
	harness_sig_in(f->h, f->handle, 0x0a, 0xa1, junk, 64); /* Information Request, long */
	assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x0b);
	assert_int_equal(n, 8);
	put_le16(junk, cid);
	put_le16(junk + 2, 0x0045);
	harness_sig_in(f->h, f->handle, 0x06, 0xa2, junk, 64); /* Disconnection Request, long */
	assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x07);
	assert_int_equal(get_le16(d), cid);
	l2cap_close(f->r.ch);
	/* A command header cut short at the end of a C-frame: an Echo Request's header of 3 bytes
	 * is rejected; a response's is dropped. */
	const uint8_t cut_req[3] = { 0x08, 0xa3, 0x00 };
	harness_l2cap_in(f->h, f->handle, 0x0001, cut_req, sizeof cut_req);
	assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x01);
	assert_int_equal(id, 0xa3);
	const uint8_t cut_rsp[3] = { 0x09, 0xa4, 0x00 };
	harness_l2cap_in(f->h, f->handle, 0x0001, cut_rsp, sizeof cut_rsp);
	assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), -1);
}

/* 4.2/4.3, 2.1: source CIDs 0, 1, 2 (and 0x3f) are refused "invalid source CID" (0x0006),
 * 0x0040 and 0xffff are taken. PSMs: 0, even, upper-octet LSB set, 0xffff are "PSM not
 * supported" (0x0002), as is a valid one nobody listens on. */
static void test_connection_request_cid_psm_edges(void **state)
{
	fixture *f = *state;
	uint8_t req[4], d[2048], id;
	size_t n;
	const uint16_t bad_cids[] = { 0x0000, 0x0001, 0x0002, 0x003f };
	for (size_t i = 0; i < 4; i++) {
		put_le16(req, L2CAP_PSM_SDP);
		put_le16(req + 2, bad_cids[i]);
		harness_sig_in(f->h, f->handle, 0x02, (uint8_t)(0xb0 + i), req, 4);
		assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x03);
		assert_int_equal(n, 8);
		assert_int_equal(get_le16(d), 0x0000);
		assert_int_equal(get_le16(d + 2), bad_cids[i]);
		assert_int_equal(get_le16(d + 4), 0x0006);
		assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), -1);
	}
	const uint16_t good_cids[] = { 0x0040, 0xffff };
	for (size_t i = 0; i < 2; i++) {
		put_le16(req, L2CAP_PSM_SDP);
		put_le16(req + 2, good_cids[i]);
		harness_sig_in(f->h, f->handle, 0x02, (uint8_t)(0xb8 + i), req, 4);
		assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x03);
		assert_int_equal(get_le16(d + 2), good_cids[i]);
		assert_int_equal(get_le16(d + 4), 0x0000);
		assert_true(get_le16(d) >= 0x0040);
		assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x04);
		assert_int_equal(get_le16(d), good_cids[i]);
	}
	const uint16_t bad_psms[] = { 0x0000, 0x0002, 0x0101, 0xffff, 0x1003 };
	for (size_t i = 0; i < 5; i++) {
		put_le16(req, bad_psms[i]);
		put_le16(req + 2, 0x0050);
		harness_sig_in(f->h, f->handle, 0x02, (uint8_t)(0xc0 + i), req, 4);
		assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x03);
		assert_int_equal(get_le16(d), 0x0000);
		assert_int_equal(get_le16(d + 4), 0x0002);
	}
	/* CIDs 0, 1, 2, 0xffff in Configuration and Disconnection Requests: "invalid CID". */
	const uint16_t dcids[] = { 0x0000, 0x0001, 0x0002, 0x003f, 0xfffe };
	for (size_t i = 0; i < 5; i++) {
		put_le16(req, dcids[i]);
		put_le16(req + 2, 0);
		harness_sig_in(f->h, f->handle, 0x04, (uint8_t)(0xd0 + i), req, 4);
		assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x01);
		assert_int_equal(n, 6);
		assert_int_equal(get_le16(d), 0x0002);
		assert_int_equal(get_le16(d + 2), dcids[i]);
		put_le16(req + 2, 0x0040);
		harness_sig_in(f->h, f->handle, 0x06, (uint8_t)(0xe0 + i), req, 4);
		assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x01);
		assert_int_equal(get_le16(d), 0x0002);
	}
}

/* 7.1 reconfiguration raising the peer's MTU of an OPEN channel to the largest we take
 * (L2CAP_MAX_MTU): SDUs of the new MTU can be sent (the transmit ring, sized at open for the
 * old MTU, used to refuse them with -EAGAIN for ever), and SDUs queued before are kept. */
static void test_reconfigure_open_raises_mtu(void **state)
{
	fixture *f = *state;
	uint16_t cid = harness_open_channel(f->h, f->handle, 0x1001, 0x0046, 672);
	/* One ACL buffer: "one" goes to the controller, "two" waits in the ring. */
	assert_int_equal(l2cap_send(f->r.ch, (const uint8_t *)"one", 3), 0);
	assert_int_equal(l2cap_send(f->r.ch, (const uint8_t *)"two", 3), 0);
	uint8_t c[8] = { 0 };
	put_le16(c, cid);
	c[4] = 0x01;
	c[5] = 2;
	put_le16(c + 6, L2CAP_MAX_MTU);
	harness_sig_in(f->h, f->handle, 0x04, 0x7e, c, sizeof c);
	assert_int_equal(l2cap_chan_omtu(f->r.ch), L2CAP_MAX_MTU);
	static uint8_t big[L2CAP_MAX_MTU];
	memset(big, 0x3c, sizeof big);
	assert_int_equal(l2cap_send(f->r.ch, big, sizeof big), 0);
	static uint8_t out[8192];
	uint16_t ocid;
	/* The data PDUs, in order (the Configuration Response on CID 1 among them). */
	const char *want[3] = { "one", "two", NULL };
	int got = 0, m;
	while ((m = harness_l2cap_out(f->h, NULL, &ocid, out, sizeof out)) >= 0) {
		if (ocid == 0x0001)
			continue;
		assert_true(got < 3);
		if (want[got]) {
			assert_int_equal(m, 3);
			assert_memory_equal(out, want[got], 3);
		} else {
			assert_int_equal(m, L2CAP_MAX_MTU);
		}
		got++;
	}
	assert_int_equal(got, 3);
	assert_memory_equal(out, big, sizeof big);
}

/* One H4 ACL packet: handle with packet boundary flag pb (Vol 4 Part E 5.4.2), data. */
static void acl_in(fixture *f, uint8_t pb, const uint8_t *data, size_t len)
{
	uint8_t pkt[5 + 64];
	assert_true(len <= 64);
	pkt[0] = 0x02;
	put_le16(pkt + 1, (uint16_t)(f->handle | pb << 12));
	put_le16(pkt + 3, (uint16_t)len);
	memcpy(pkt + 5, data, len);
	harness_h4_in(f->h, pkt, 5 + len);
}

/* Vol 4 Part E 5.4.2 / Vol 3 Part A 7.2, reassembly of peer-supplied lengths: a start fragment
 * announcing a PDU above HCI_MAX_PDU, or too short to hold the length, is dropped with what
 * follows it and leaves nothing half built (it used to leave the announced length behind, so
 * hci_rx_partial() said "a PDU is on its way" for ever and the runtime kept waiting for it);
 * a continuation running past the announced length is dropped; the next PDU is taken. */
static void test_acl_reassembly_bad_lengths(void **state)
{
	fixture *f = *state;
	hci *h = bt_stack_hci(harness_stack(f->h));
	uint8_t frag[64] = { 0 };
	put_le16(frag, 5000); /* > HCI_MAX_PDU */
	put_le16(frag + 2, 0x0001);
	acl_in(f, 0x2, frag, 20);
	assert_false(hci_rx_partial(h));
	acl_in(f, 0x1, frag, 20); /* its continuation: dropped */
	assert_false(hci_rx_partial(h));
	put_le16(frag, 100); /* a PDU of 104 bytes, 10 of them here */
	acl_in(f, 0x2, frag, 10);
	assert_true(hci_rx_partial(h));
	assert_int_equal(hci_rx_missing(h), 94);
	acl_in(f, 0x1, frag, 30);
	assert_int_equal(hci_rx_missing(h), 64);
	acl_in(f, 0x2, frag, 1); /* a start too short for the length field */
	assert_false(hci_rx_partial(h));
	acl_in(f, 0x1, frag, 20); /* a continuation without a start */
	assert_false(hci_rx_partial(h));
	put_le16(frag, 8); /* 12 bytes announced, 4 + 10 sent: too many */
	acl_in(f, 0x2, frag, 4);
	acl_in(f, 0x1, frag + 4, 10);
	assert_false(hci_rx_partial(h));
	uint8_t d[256], id;
	size_t n;
	assert_int_equal(sig(f, &id, d, &n), -1);
	/* An Echo Request in two fragments still gets through. */
	const uint8_t echo[10] = { 6, 0, 1, 0, 0x08, 0x61, 2, 0, 'h', 'i' };
	acl_in(f, 0x2, echo, 3);
	assert_true(hci_rx_partial(h));
	acl_in(f, 0x1, echo + 3, 7);
	assert_false(hci_rx_partial(h));
	assert_int_equal(hci_rx_missing(h), 0);
	assert_int_equal(sig(f, &id, d, &n), 0x09);
	assert_int_equal(id, 0x61);
	assert_int_equal(n, 2);
}

/* 4.6: a Disconnection Request naming our CID of a channel still waiting for its Connection
 * Response (source CID 0: the peer never gave one) is rejected "invalid CID"; the channel
 * goes on (it used to end as if the peer had disconnected it) and opens when answered. */
static void test_disc_req_before_connection_response(void **state)
{
	fixture *f = *state;
	l2cap *l = bt_stack_l2cap(harness_stack(f->h));
	bt_addr peer = peer_addr();
	rec r = { 0 };
	l2cap_chan *ch;
	assert_int_equal(l2cap_connect(l, &peer, 0x1001, 672, &rec_ops, &r, &ch), 0);
	uint8_t d[256], id, cid_id;
	size_t n;
	assert_int_equal(sig(f, &cid_id, d, &n), 0x02);
	uint16_t lcid = get_le16(d + 2);
	uint8_t q[4];
	put_le16(q, lcid);
	put_le16(q + 2, 0x0000);
	harness_sig_in(f->h, f->handle, 0x06, 0xf1, q, 4);
	assert_int_equal(sig(f, &id, d, &n), 0x01);
	assert_int_equal(get_le16(d), 0x0002);
	assert_int_equal(r.closed, 0);
	uint8_t rsp[8];
	put_le16(rsp, 0x0077);
	put_le16(rsp + 2, lcid);
	put_le16(rsp + 4, 0);
	put_le16(rsp + 6, 0);
	harness_sig_in(f->h, f->handle, 0x03, cid_id, rsp, 8);
	assert_int_equal(sig(f, &id, d, &n), 0x04);
	assert_int_equal(get_le16(d), 0x0077);
	l2cap_close(ch);
}

/* 6.1.4: a channel whose transmit ring cannot be allocated when configuration completes does
 * not open. It is disconnected (4.6) and its owner learns it through closed(-ENOMEM), once;
 * the channel stays the owner's until l2cap_close(), which frees it exactly once (ASan and
 * valgrind watch). Before the fix the stack closed it behind the owner's back: no closed(),
 * and the owner's own l2cap_close() then touched freed memory. */
static void test_enomem_at_open_reaches_owner(void **state)
{
	fixture *f = *state;
	/* The stack's ring is 2 * (peer MTU + 2) octets: 6004 for an MTU of 3000. */
	fail_realloc_size = 2u * (3000u + 2u);
	uint16_t cid = harness_open_channel(f->h, f->handle, 0x1001, 0x0040, 3000);
	assert_int_not_equal(cid, 0);
	assert_int_equal(fail_realloc_size, 0); /* the injected failure happened */
	assert_int_equal(f->r.opened, 0);
	uint8_t d[256], id;
	size_t n;
	int code;
	while ((code = sig(f, &id, d, &n)) >= 0 && code != 0x06)
		;
	assert_int_equal(code, 0x06); /* Disconnection Request: DCID 0x0040, SCID ours */
	assert_int_equal(get_le16(d), 0x0040);
	assert_int_equal(get_le16(d + 2), cid);
	assert_int_equal(f->r.closed, 0);
	harness_sig_in(f->h, f->handle, 0x07, id, d, 4); /* Disconnection Response */
	assert_int_equal(f->r.closed, 1);
	assert_int_equal(f->r.close_err, -ENOMEM);
	l2cap_close(f->r.ch); /* the owner's close frees it, once */
	/* The link carries another channel afterwards. */
	f->r.opened = 0;
	assert_int_not_equal(harness_open_channel(f->h, f->handle, 0x1001, 0x0041, 800), 0);
	assert_int_equal(f->r.opened, 1);
	assert_int_equal(f->r.closed, 1);
}


/* KNOB (CVE-2019-9506): after Encryption Change to on, Read_Encryption_Key_Size (Vol 4 Part E
 * 7.5.7); a key below the minimum (7 by default) ends the link with Authentication Failure and
 * the channel with EACCES, "key too short", before it is asked again; 7 is enough. */
static void test_short_key_ends_link(void **state)
{
	fixture *f = *state;
	rec r = { 0 };
	harness_set_key_size(f->h, 6);
	l2cap_chan *ch = connect_refused_for_security(f, &r);
	auth_complete(f, 0);
	encryption_on(f);
	assert_true(harness_cmd_seen(f->h, HCI_OP_DISCONNECT)); /* after reading the size */
	assert_int_equal(r.closed, 1);
	assert_int_equal(r.close_err, -EACCES);
	assert_int_equal(l2cap_chan_sec_reason(ch), HCI_SEC_KEY_TOO_SHORT);
	assert_string_equal(hci_sec_reason_str(l2cap_chan_sec_reason(ch)), "encryption key too short");
	uint8_t d[256], id;
	size_t n;
	for (int code; (code = sig(f, &id, d, &n)) >= 0;)
		assert_int_not_equal(code, 0x02); /* no Connection Request went out */
	l2cap_close(ch);
}

static void test_minimum_key_size_setting(void **state)
{
	fixture *f = *state;
	hci *hc = bt_stack_hci(harness_stack(f->h));
	assert_int_equal(hci_set_min_key_size(hc, 6), -EINVAL);
	assert_int_equal(hci_set_min_key_size(hc, 17), -EINVAL);
	rec r = { 0 };
	harness_set_key_size(f->h, 7); /* the default minimum: accepted */
	l2cap_chan *ch = connect_refused_for_security(f, &r);
	auth_complete(f, 0);
	encryption_on(f);
	assert_true(harness_cmd_seen(f->h, HCI_OP_READ_ENC_KEY_SIZE));
	assert_int_not_equal(harness_accept_channel(f->h, f->handle, 0x0073, 672), 0);
	assert_int_equal(r.opened, 1);
	l2cap_close(ch);
	/* 16 required: the peer switching encryption again with 15 ends the link even though
	 * nothing of ours waits for it */
	assert_int_equal(hci_set_min_key_size(hc, 16), 0);
	harness_set_key_size(f->h, 15);
	encryption_on(f);
	assert_true(harness_cmd_seen(f->h, HCI_OP_DISCONNECT));
}

/* Stale key (Vol 4 Part E 7.7.6 with PIN or Key Missing, 0x06): the stored key is forgotten
 * and authentication asked once more (a fresh pairing); the channel opens after it. A second
 * Key Missing is final: EACCES, "no key". A peer dropping the link with 0x06 loses our key
 * too. */
static void test_stale_key_pairs_again(void **state)
{
	fixture *f = *state;
	gap *g = bt_stack_gap(harness_stack(f->h));
	bt_addr peer = peer_addr();
	uint8_t key[16] = { 1, 2, 3 }, k[16];
	gap_link_key_set(g, &peer, key, 4);
	rec r = { 0 };
	l2cap_chan *ch = connect_refused_for_security(f, &r);
	auth_complete(f, HCI_ERR_KEY_MISSING);
	assert_int_equal(gap_link_key_get(g, &peer, k), -ENOENT);
	assert_true(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED)); /* pairing again */
	assert_int_equal(r.closed, 0);
	auth_complete(f, 0);
	encryption_on(f);
	assert_int_not_equal(harness_accept_channel(f->h, f->handle, 0x0074, 672), 0);
	assert_int_equal(r.opened, 1);
	l2cap_close(ch);
	uint8_t d[256], id;
	size_t n;
	assert_int_equal(sig(f, &id, d, &n), 0x06);

	/* on a fresh link: Key Missing twice ends the channel */
	harness_link_down(f->h, f->handle, 0x13);
	f->handle = harness_link_up(f->h, &peer);
	rec r2 = { 0 };
	ch = connect_refused_for_security(f, &r2);
	auth_complete(f, HCI_ERR_KEY_MISSING);
	assert_true(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	auth_complete(f, HCI_ERR_KEY_MISSING);
	assert_false(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	assert_int_equal(r2.closed, 1);
	assert_int_equal(r2.close_err, -EACCES);
	assert_int_equal(l2cap_chan_sec_reason(ch), HCI_SEC_NO_KEY);
	l2cap_close(ch);

	gap_link_key_set(g, &peer, key, 4);
	harness_link_down(f->h, f->handle, HCI_ERR_KEY_MISSING);
	assert_int_equal(gap_link_key_get(g, &peer, k), -ENOENT);
}

/* The reason of a failure names who refused: the peer (Authentication Failure with nothing
 * refused here), or our agent (it refused the Numeric Comparison). */
static void test_security_failure_reasons(void **state)
{
	fixture *f = *state;
	gap *g = bt_stack_gap(harness_stack(f->h));
	rec r = { 0 };
	l2cap_chan *ch = connect_refused_for_security(f, &r);
	auth_complete(f, HCI_ERR_AUTH_FAILURE);
	assert_int_equal(r.close_err, -EACCES);
	assert_int_equal(l2cap_chan_sec_reason(ch), HCI_SEC_PEER_AUTH_FAILURE);
	l2cap_close(ch);

	assert_int_equal(gap_set_io_capability(g, GAP_IO_DISPLAY_YESNO, true), 0);
	rec r2 = { 0 };
	ch = connect_refused_for_security(f, &r2);
	bt_addr peer = peer_addr();
	uint8_t io[9]; /* IO_Capability_Response: DisplayYesNo, MITM */
	memcpy(io, peer.b, 6);
	io[6] = GAP_IO_DISPLAY_YESNO;
	io[7] = 0;
	io[8] = 0x01;
	hci_event_in(f, HCI_EV_IO_CAPABILITY_RESPONSE, io, 9);
	uint8_t conf[10];
	memcpy(conf, peer.b, 6);
	put_le32(conf + 6, 123456);
	hci_event_in(f, HCI_EV_USER_CONFIRM_REQUEST, conf, 10);
	assert_true(harness_cmd_seen(f->h, HCI_OP_USER_CONFIRM_REQUEST_NEG_REPLY)); /* default agent */
	auth_complete(f, HCI_ERR_AUTH_FAILURE);
	assert_int_equal(r2.close_err, -EACCES);
	assert_int_equal(l2cap_chan_sec_reason(ch), HCI_SEC_REJECTED);
	assert_string_equal(hci_sec_reason_str(HCI_SEC_REJECTED), "pairing rejected by the user");
	l2cap_close(ch);
}

/* A fresh link to the peer, whose host features page 1 (Vol 4 Part E 7.7.34) says ssp. */
static void relink(fixture *f, bool ssp, bool features_answered)
{
	bt_addr peer = peer_addr();
	harness_link_down(f->h, f->handle, 0x13);
	harness_set_peer_features(f->h, ssp, features_answered);
	f->handle = harness_link_up(f->h, &peer);
}

static void link_key_notification(fixture *f, uint8_t type)
{
	bt_addr peer = peer_addr();
	uint8_t ev[23] = { 0 };
	memcpy(ev, peer.b, 6);
	ev[22] = type;
	hci_event_in(f, HCI_EV_LINK_KEY_NOTIFICATION, ev, 23);
}

/* Vol 3 Part C 5.2.2: both hosts support SSP (the peer's page 1 bit 0), so as initiator every
 * channel but SDP's waits for an authenticated, encrypted link: Authentication_Requested and
 * Set_Connection_Encryption come before the Connection Request. SDP's goes at once. */
static void test_ssp_peer_secured_before_connect(void **state)
{
	fixture *f = *state;
	relink(f, true, true);
	assert_false(harness_cmd_seen(f->h, HCI_OP_READ_REMOTE_EXT_FEATURES)); /* not at link up */
	l2cap *l = bt_stack_l2cap(harness_stack(f->h));
	bt_addr peer = peer_addr();
	uint8_t d[256], id;
	size_t n;
	rec rs = { 0 }, r = { 0 };
	l2cap_chan *sdp, *ch;
	assert_int_equal(l2cap_connect(l, &peer, 0x0001, 672, &rec_ops, &rs, &sdp), 0);
	assert_int_equal(sig(f, &id, d, &n), 0x02);
	assert_int_equal(get_le16(d), 0x0001);
	assert_int_equal(l2cap_connect(l, &peer, 0x1003, 672, &rec_ops, &r, &ch), 0);
	/* The peer paged us: its host features are read now that a channel of ours needs them
	 * (not at Connection Complete); the answer comes from the controller next. */
	assert_true(harness_cmd_seen(f->h, HCI_OP_READ_REMOTE_EXT_FEATURES));
	harness_advance(f->h, 0);
	assert_true(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	assert_int_equal(sig(f, &id, d, &n), -1); /* no Connection Request yet */
	auth_complete(f, 0);
	assert_true(harness_cmd_seen(f->h, HCI_OP_SET_CONN_ENCRYPT));
	assert_int_equal(sig(f, &id, d, &n), -1);
	encryption_on(f);
	assert_int_not_equal(harness_accept_channel(f->h, f->handle, 0x0075, 672), 0);
	assert_int_equal(r.opened, 1);
	l2cap_close(ch);
	l2cap_close(sdp);
}

/* The same peer without SSP: the Connection Request goes at once (a "security block" answer
 * would still get the link secured, test_security_block_secures_link_and_retries). */
static void test_legacy_peer_not_secured_first(void **state)
{
	fixture *f = *state;
	relink(f, false, true);
	l2cap *l = bt_stack_l2cap(harness_stack(f->h));
	bt_addr peer = peer_addr();
	uint8_t d[256], id;
	size_t n;
	rec r = { 0 };
	l2cap_chan *ch;
	assert_int_equal(l2cap_connect(l, &peer, 0x1003, 672, &rec_ops, &r, &ch), 0);
	assert_false(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	assert_int_equal(sig(f, &id, d, &n), 0x02);
	l2cap_close(ch);
}

/* Features not answered yet: the channel waits for them; the Remote Host Supported Features
 * Notification (7.7.50) tells SSP, so the link is secured. Never answered at all: after 2 s
 * the request goes unsecured. */
static void test_channel_waits_for_peer_features(void **state)
{
	fixture *f = *state;
	relink(f, false, false);
	l2cap *l = bt_stack_l2cap(harness_stack(f->h));
	bt_addr peer = peer_addr();
	uint8_t d[256], id;
	size_t n;
	rec r = { 0 };
	l2cap_chan *ch;
	assert_int_equal(l2cap_connect(l, &peer, 0x1003, 672, &rec_ops, &r, &ch), 0);
	assert_false(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	assert_int_equal(sig(f, &id, d, &n), -1);
	uint8_t ev[14] = { 0 };
	memcpy(ev, peer.b, 6);
	ev[6] = 0x01; /* Secure Simple Pairing (Host Support) */
	hci_event_in(f, 0x3d, ev, 14);
	assert_true(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	assert_int_equal(sig(f, &id, d, &n), -1);
	l2cap_close(ch);

	relink(f, true, false);
	rec r2 = { 0 };
	assert_int_equal(l2cap_connect(l, &peer, 0x1003, 672, &rec_ops, &r2, &ch), 0);
	harness_advance(f->h, 1900);
	assert_int_equal(sig(f, &id, d, &n), -1);
	harness_advance(f->h, 200);
	assert_int_equal(sig(f, &id, d, &n), 0x02);
	assert_false(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	l2cap_close(ch);
}

/* Levels as client: HIGH wants an authenticated key (types 5/8, Vol 4 Part E 7.7.24); the
 * link secured with an unauthenticated one (4) is not enough: EACCES, "key too weak". With an
 * authenticated key the channel opens; MEDIUM on that link needs nothing more. */
static void test_client_levels(void **state)
{
	fixture *f = *state;
	l2cap *l = bt_stack_l2cap(harness_stack(f->h));
	bt_addr peer = peer_addr();
	uint8_t d[256], id;
	size_t n;
	rec r = { 0 };
	l2cap_chan *ch;
	assert_int_equal(l2cap_connect_sec(l, &peer, 0x1003, 672, 9, &rec_ops, &r, &ch), -EINVAL);
	assert_int_equal(l2cap_connect_sec(l, &peer, 0x1003, 672, L2CAP_SEC_HIGH, &rec_ops, &r, &ch), 0);
	assert_true(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	link_key_notification(f, 0x04);
	auth_complete(f, 0);
	encryption_on(f);
	assert_int_equal(r.closed, 1);
	assert_int_equal(r.close_err, -EACCES);
	assert_int_equal(l2cap_chan_sec_reason(ch), HCI_SEC_WEAK_KEY);
	assert_int_equal(sig(f, &id, d, &n), -1);
	l2cap_close(ch);

	relink(f, false, true);
	rec r2 = { 0 };
	assert_int_equal(l2cap_connect_sec(l, &peer, 0x1003, 672, L2CAP_SEC_HIGH, &rec_ops, &r2, &ch), 0);
	assert_true(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	link_key_notification(f, 0x05);
	auth_complete(f, 0);
	encryption_on(f);
	assert_int_not_equal(harness_accept_channel(f->h, f->handle, 0x0076, 672), 0);
	assert_int_equal(r2.opened, 1);
	rec r3 = { 0 };
	l2cap_chan *ch3;
	assert_int_equal(l2cap_connect_sec(l, &peer, 0x1005, 672, L2CAP_SEC_MEDIUM, &rec_ops, &r3, &ch3), 0);
	assert_false(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	assert_int_equal(sig(f, &id, d, &n), 0x02);
	l2cap_close(ch3);
	l2cap_close(ch);
}

/* Peer's Connection Request to psm (source CID scid); returns the Connection Response. */
static void peer_conn_req(fixture *f, uint16_t psm, uint16_t scid, uint8_t ident, uint16_t rsp[4])
{
	uint8_t req[4], d[256], id;
	size_t n;
	put_le16(req, psm);
	put_le16(req + 2, scid);
	harness_sig_in(f->h, f->handle, 0x02, ident, req, 4);
	assert_int_equal(sig(f, &id, d, &n), 0x03);
	assert_int_equal(id, ident);
	for (int i = 0; i < 4; i++)
		rsp[i] = get_le16(d + 2 * i);
}

/* Levels as server (Vol 3 Part A 4.3): a request on a link below MEDIUM is answered "pending,
 * authentication pending" (0x0001/0x0001), the link secured, then success and configuration.
 * When securing fails: "security block" (0x0003) and no channel. SDP is never held back. */
static void test_server_level_pending_then_success(void **state)
{
	fixture *f = *state;
	l2cap *l = bt_stack_l2cap(harness_stack(f->h));
	rec r = { 0 };
	assert_int_equal(l2cap_listen_sec(l, 0x1005, 672, L2CAP_SEC_MEDIUM, rec_accept, &r), 0x1005);
	uint16_t rsp[4];
	uint8_t d[256], id;
	size_t n;
	peer_conn_req(f, 0x1005, 0x0080, 7, rsp);
	assert_int_equal(rsp[1], 0x0080);
	assert_int_equal(rsp[2], 0x0001); /* pending */
	assert_int_equal(rsp[3], 0x0001); /* authentication pending */
	assert_true(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	assert_null(r.ch); /* not handed to the owner yet */
	auth_complete(f, 0);
	encryption_on(f);
	assert_int_equal(sig(f, &id, d, &n), 0x03);
	assert_int_equal(id, 7);
	assert_int_equal(get_le16(d + 2), 0x0080);
	assert_int_equal(get_le16(d + 4), 0x0000); /* success */
	assert_int_equal(get_le16(d), rsp[0]);
	assert_non_null(r.ch);
	assert_int_equal(sig(f, &id, d, &n), 0x04); /* our Configuration Request */

	/* the link is encrypted now: a second channel is accepted at once */
	rec r2 = { 0 };
	assert_int_equal(l2cap_listen_sec(l, 0x1007, 672, L2CAP_SEC_MEDIUM, rec_accept, &r2), 0x1007);
	peer_conn_req(f, 0x1007, 0x0081, 8, rsp);
	assert_int_equal(rsp[2], 0x0000);
}

static void test_server_level_security_block(void **state)
{
	fixture *f = *state;
	l2cap *l = bt_stack_l2cap(harness_stack(f->h));
	rec r = { 0 };
	assert_int_equal(l2cap_listen_sec(l, 0x1005, 672, L2CAP_SEC_HIGH, rec_accept, &r), 0x1005);
	uint16_t rsp[4];
	uint8_t d[256], id;
	size_t n;
	peer_conn_req(f, 0x1005, 0x0080, 9, rsp);
	assert_int_equal(rsp[2], 0x0001);
	auth_complete(f, HCI_ERR_AUTH_FAILURE);
	assert_int_equal(sig(f, &id, d, &n), 0x03);
	assert_int_equal(id, 9);
	assert_int_equal(get_le16(d), 0x0000);
	assert_int_equal(get_le16(d + 4), 0x0003); /* security block */
	assert_null(r.ch);
	/* secured, but with an unauthenticated key: HIGH refuses too */
	peer_conn_req(f, 0x1005, 0x0082, 10, rsp);
	assert_int_equal(rsp[2], 0x0001);
	link_key_notification(f, 0x04);
	auth_complete(f, 0);
	encryption_on(f);
	assert_int_equal(sig(f, &id, d, &n), 0x03);
	assert_int_equal(get_le16(d + 4), 0x0003);
	assert_null(r.ch);
	/* the link stays encrypted with that key: as acceptor no re-pairing, "security block" at
	 * once (the initiator may upgrade and ask again) */
	harness_cmd_seen(f->h, 0);
	peer_conn_req(f, 0x1005, 0x0084, 12, rsp);
	assert_int_equal(rsp[2], 0x0003);
	assert_false(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	assert_null(r.ch);
	/* SDP is never held back by security */
	peer_conn_req(f, 0x0001, 0x0083, 11, rsp);
	assert_int_not_equal(rsp[2], 0x0001);
}

/* An upgrade: the link is encrypted with an unauthenticated key (type 4), a HIGH channel asks
 * for more: Authentication_Requested again with MITM asked, a stored weak key is not offered
 * (Link_Key_Request -> negative reply, so pairing replaces it), and with an authenticated key
 * (type 5) the channel opens; no second Set_Connection_Encryption is needed. */
static void test_high_upgrades_encrypted_link(void **state)
{
	fixture *f = *state;
	l2cap *l = bt_stack_l2cap(harness_stack(f->h));
	gap *g = bt_stack_gap(harness_stack(f->h));
	bt_addr peer = peer_addr();
	uint8_t d[256], id;
	size_t n;
	rec r = { 0 };
	l2cap_chan *ch;
	assert_int_equal(l2cap_connect_sec(l, &peer, 0x1003, 672, L2CAP_SEC_MEDIUM, &rec_ops, &r, &ch), 0);
	uint8_t key[16] = { 9 };
	gap_link_key_set(g, &peer, key, 0x04);
	link_key_notification(f, 0x04);
	auth_complete(f, 0);
	encryption_on(f);
	assert_int_not_equal(harness_accept_channel(f->h, f->handle, 0x0077, 672), 0);
	assert_int_equal(r.opened, 1);
	harness_cmd_seen(f->h, 0); /* forget what was sent so far */

	rec r2 = { 0 };
	l2cap_chan *ch2;
	assert_int_equal(l2cap_connect_sec(l, &peer, 0x1005, 672, L2CAP_SEC_HIGH, &rec_ops, &r2, &ch2), 0);
	assert_true(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	assert_int_equal(sig(f, &id, d, &n), -1);
	hci_event_in(f, HCI_EV_LINK_KEY_REQUEST, peer.b, 6);
	assert_true(harness_cmd_seen(f->h, HCI_OP_LINK_KEY_REQUEST_NEG_REPLY));
	link_key_notification(f, 0x05);
	auth_complete(f, 0);
	assert_false(harness_cmd_seen(f->h, HCI_OP_SET_CONN_ENCRYPT));
	assert_int_not_equal(harness_accept_channel(f->h, f->handle, 0x0078, 672), 0);
	assert_int_equal(r2.opened, 1);
	l2cap_close(ch2);
	l2cap_close(ch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commands_share_a_c_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incoming_channel_opens_and_carries_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sdu_above_mtu_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_psm_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_source_cid_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_command_rejected_then_echo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_commands_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signalling_mtu_exceeded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_configuration_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_information_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_link_loss_resets_channels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reused_handle_replaces_stale_link, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crossed_pages_keep_the_first_link, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crossed_pages_our_page_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_security_block_secures_link_and_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_authentication_refuses_channel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paired_without_auth_complete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_security_block_right_after_encryption, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_key_ends_link, setup, teardown),
		cmocka_unit_test_setup_teardown(test_minimum_key_size_setting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_key_pairs_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_security_failure_reasons, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ssp_peer_secured_before_connect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_legacy_peer_not_secured_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_channel_waits_for_peer_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_levels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_high_upgrades_encrypted_link, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_level_pending_then_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_level_security_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keepalive_detects_vanished_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keepalive_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_psm_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outgoing_channel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_ring_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conf_req_many_rfc_options_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conf_req_many_rfc_options_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conf_option_sets_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conf_option_sets_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conf_req_max_length_unknown_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signalling_mtu_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_command_zero_short_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_request_cid_psm_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconfigure_open_raises_mtu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acl_reassembly_bad_lengths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disc_req_before_connection_response, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enomem_at_open_reaches_owner, setup, teardown),
	};
	return cmocka_run_group_tests_name("l2cap", tests, NULL, NULL);
}
