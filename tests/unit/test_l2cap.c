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
#include "hci/hci_defs.h"

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
	assert_int_equal(f->r.close_err, -ECONNRESET);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
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
		cmocka_unit_test_setup_teardown(test_keepalive_detects_vanished_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keepalive_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_psm_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outgoing_channel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_ring_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conf_req_many_rfc_options_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conf_req_many_rfc_options_open, setup, teardown),
	};
	return cmocka_run_group_tests_name("l2cap", tests, NULL, NULL);
}
