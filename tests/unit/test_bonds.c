/* test_bonds.c - gap_pair and the key table (src/gap) over a whole stack driven by the harness:
 * paging, Authentication_Requested then Set_Connection_Encryption (Core Vol 4 Part E 7.1.15,
 * 7.1.16), the key size check (7.5.7), failures (page, authentication, link loss), the link
 * kept while a pairing is under way and ended once idle (L2CAP's 2 s), cancel, and listing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "core/bytes.h"
#include "gap/gap.h"
#include "harness.h"
#include "hci/hci_defs.h"

typedef struct {
	int calls;
	int err;
	int reason;
} outcome;

static void done(void *ctx, const bt_addr *peer, int err, int reason)
{
	outcome *o = ctx;
	(void)peer;
	o->calls++;
	o->err = err;
	o->reason = reason;
}

static const bt_addr peer = { { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06 } };

static void event(harness *h, uint8_t code, const uint8_t *p, uint8_t len)
{
	uint8_t pkt[3 + 255] = { H4_EVT, code, len };
	memcpy(pkt + 3, p, len);
	harness_h4_in(h, pkt, 3u + len);
}

static void auth_complete(harness *h, uint16_t handle, uint8_t status)
{
	uint8_t p[3] = { status }; /* 7.7.6: Status, Connection_Handle */
	put_le16(p + 1, handle);
	event(h, HCI_EV_AUTH_COMPLETE, p, 3);
}

static void encryption_on(harness *h, uint16_t handle)
{
	uint8_t p[4] = { 0 }; /* 7.7.8: Status, Connection_Handle, Encryption_Enabled */
	put_le16(p + 1, handle);
	p[3] = 0x01;
	event(h, HCI_EV_ENCRYPT_CHANGE, p, 4);
}

/* Pages, authenticates, encrypts: 0 once the key size is read; the idle link then ends. */
static void test_pair_pages_authenticates_encrypts(void **state)
{
	(void)state;
	harness *h = harness_new(8);
	gap *g = bt_stack_gap(harness_stack(h));
	outcome o = { 0 };
	assert_int_equal(gap_pair(g, &peer, done, &o), 0);
	assert_true(harness_cmd_seen(h, HCI_OP_CREATE_CONN));
	assert_int_equal(gap_pair(g, &peer, done, &o), -EBUSY);
	uint16_t handle = harness_accept_page(h, &peer);
	assert_true(harness_cmd_seen(h, HCI_OP_AUTH_REQUESTED));
	assert_int_equal(o.calls, 0);
	auth_complete(h, handle, 0);
	assert_true(harness_cmd_seen(h, HCI_OP_SET_CONN_ENCRYPT));
	encryption_on(h, handle);
	assert_true(harness_cmd_seen(h, HCI_OP_READ_ENC_KEY_SIZE));
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.err, 0);
	/* Nothing uses the link: L2CAP ends it. */
	harness_advance(h, 2500);
	assert_true(harness_cmd_seen(h, HCI_OP_DISCONNECT));
	/* Already encrypted: done at once, without a page. */
	harness_free(h);
}

/* A link being paired is not ended for want of channels; a short key fails with its reason. */
static void test_pairing_holds_the_link_and_key_size(void **state)
{
	(void)state;
	harness *h = harness_new(8);
	gap *g = bt_stack_gap(harness_stack(h));
	harness_set_key_size(h, 5);
	outcome o = { 0 };
	assert_int_equal(gap_pair(g, &peer, done, &o), 0);
	uint16_t handle = harness_accept_page(h, &peer);
	assert_true(harness_cmd_seen(h, HCI_OP_AUTH_REQUESTED));
	event(h, HCI_EV_IO_CAPABILITY_REQUEST, peer.b, 6); /* 7.7.40: pairing starts */
	assert_true(harness_cmd_seen(h, HCI_OP_IO_CAPABILITY_REQUEST_REPLY));
	harness_advance(h, 10000); /* a user deciding, far beyond the 2 s idle time */
	assert_false(harness_cmd_seen(h, HCI_OP_DISCONNECT));
	auth_complete(h, handle, 0);
	encryption_on(h, handle);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.err, -EACCES);
	assert_int_equal(o.reason, HCI_SEC_KEY_TOO_SHORT);
	assert_true(harness_cmd_seen(h, HCI_OP_DISCONNECT)); /* KNOB: the link ends */
	harness_free(h);
}

/* The peer pairs with us on a link without channels (as btsock_pair does): the link is kept
 * from the first pairing request to Simple Pairing Complete, then ends once idle; a pairing
 * that never ends holds it for the security timeout (30 s) only. */
static void test_peer_pairing_holds_the_link(void **state)
{
	(void)state;
	harness *h = harness_new(8);
	harness_link_up(h, &peer);
	event(h, HCI_EV_IO_CAPABILITY_REQUEST, peer.b, 6);
	harness_advance(h, 5000);
	assert_false(harness_cmd_seen(h, HCI_OP_DISCONNECT));
	uint8_t spc[7] = { 0 }; /* 7.7.45: Status, BD_ADDR */
	memcpy(spc + 1, peer.b, 6);
	event(h, HCI_EV_SIMPLE_PAIRING_COMPLETE, spc, 7);
	harness_advance(h, 2500);
	assert_true(harness_cmd_seen(h, HCI_OP_DISCONNECT));

	const bt_addr other = { { 0x11, 0x02, 0x03, 0x04, 0x05, 0x06 } };
	harness_link_up(h, &other);
	event(h, HCI_EV_IO_CAPABILITY_REQUEST, other.b, 6);
	harness_advance(h, 20000);
	assert_false(harness_cmd_seen(h, HCI_OP_DISCONNECT));
	harness_advance(h, 12000); /* 32 s: the pairing is taken as dead */
	assert_true(harness_cmd_seen(h, HCI_OP_DISCONNECT));
	harness_free(h);
}

/* Failures: the page, the peer's Authentication Failure, the link going down; cancel. */
static void test_pair_failures_and_cancel(void **state)
{
	(void)state;
	harness *h = harness_new(8);
	gap *g = bt_stack_gap(harness_stack(h));
	outcome o = { 0 };

	assert_int_equal(gap_pair(g, &peer, done, &o), 0);
	uint8_t cc[11] = { 0x04 }; /* 7.7.3 Connection Complete: Page Timeout */
	memcpy(cc + 3, peer.b, 6);
	cc[9] = 0x01;
	event(h, HCI_EV_CONN_COMPLETE, cc, 11);
	assert_int_equal(o.calls, 1);
	assert_true(o.err < 0);

	o = (outcome){ 0 };
	assert_int_equal(gap_pair(g, &peer, done, &o), 0);
	uint16_t handle = harness_accept_page(h, &peer);
	auth_complete(h, handle, HCI_ERR_AUTH_FAILURE);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.err, -EACCES);
	assert_int_equal(o.reason, HCI_SEC_PEER_AUTH_FAILURE);
	assert_false(harness_cmd_seen(h, HCI_OP_SET_CONN_ENCRYPT));

	o = (outcome){ 0 };
	assert_int_equal(gap_pair(g, &peer, done, &o), 0); /* the link is still up: no page */
	assert_true(harness_cmd_seen(h, HCI_OP_AUTH_REQUESTED));
	harness_link_down(h, handle, HCI_ERR_REMOTE_USER_TERMINATED);
	assert_int_equal(o.calls, 1);
	assert_true(o.err < 0);

	o = (outcome){ 0 };
	assert_int_equal(gap_pair(g, &peer, done, &o), 0);
	gap_pair_cancel(g, &peer);
	harness_accept_page(h, &peer);
	assert_int_equal(o.calls, 0); /* no callback after a cancel, and no securing either */
	assert_false(harness_cmd_seen(h, HCI_OP_AUTH_REQUESTED));
	harness_free(h);
}

/* gap_link_keys lists the table (more than max counted), and forgetting removes. */
static void test_key_listing(void **state)
{
	(void)state;
	harness *h = harness_new(8);
	gap *g = bt_stack_gap(harness_stack(h));
	uint8_t key[16] = { 1 };
	bt_addr a = peer, b = peer;
	b.b[0] = 0x99;
	bt_addr out[2];
	uint8_t types[2];
	assert_int_equal(gap_link_keys(g, out, types, 2), 0);
	gap_link_key_set(g, &a, key, 0x04);
	gap_link_key_set(g, &b, key, 0x05);
	assert_int_equal(gap_link_keys(g, out, types, 2), 2);
	assert_true(bt_addr_eq(&out[0], &a) || bt_addr_eq(&out[1], &a));
	assert_int_equal(types[0] + types[1], 0x09);
	assert_int_equal(gap_link_keys(g, out, NULL, 1), 2); /* one stored, two there */
	gap_link_key_forget(g, &a);
	assert_int_equal(gap_link_keys(g, out, types, 2), 1);
	assert_true(bt_addr_eq(&out[0], &b));
	assert_int_equal(types[0], 0x05);
	harness_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pair_pages_authenticates_encrypts),
		cmocka_unit_test(test_pairing_holds_the_link_and_key_size),
		cmocka_unit_test(test_peer_pairing_holds_the_link),
		cmocka_unit_test(test_pair_failures_and_cancel),
		cmocka_unit_test(test_key_listing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
