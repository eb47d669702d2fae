/* test_sdp_l2cap.c - the SDP server and client over a real stack's L2CAP (driven by the
 * harness): the server answers on PSM 1 (Core spec Vol 3 Part B 4.1, Vol 3 Part A 4.2), the
 * client pages, opens PSM 1, follows continuations and closes its channel. */
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
#include "sdp/sdp.h"
#include "sdp/sdp_server_int.h"

static bt_addr peer_addr(void)
{
	bt_addr a;
	bt_addr_parse("00:CC:03:00:00:03", &a);
	return a;
}

/* The stack's SDP server if the stack has one, else one of our own on its L2CAP. */
static sdp_server *stack_sdp(harness *h, bool *own)
{
	bt_stack *s = harness_stack(h);
	sdp_server *srv = bt_stack_sdp(s);
	*own = srv == NULL;
	if (!srv)
		srv = sdp_server_new(bt_stack_l2cap(s));
	assert_non_null(srv);
	return srv;
}

/* Next PDU the stack sent on cid (signalling skipped). */
static int next_on(harness *h, uint16_t want, uint8_t *buf, size_t cap)
{
	uint16_t handle, cid;
	int n;
	while ((n = harness_l2cap_out(h, &handle, &cid, buf, cap)) >= 0)
		if (cid == want)
			return n;
	return -1;
}

/* Vol 3 Part B 4.5: a ServiceSearchRequest over an L2CAP channel to PSM 1. */
static void test_server_on_psm1(void **state)
{
	harness *h = harness_new(8);
	bool own;
	sdp_server *srv = stack_sdp(h, &own);
	sdp_uuid spp = sdp_uuid16(SDP_UUID_SERIAL_PORT);
	sdp_service_desc d = { .name = "Serial", .classes = &spp, .n_classes = 1, .rfcomm_channel = 2 };
	uint32_t handle_rec = sdp_server_add_service(srv, &d);
	assert_int_not_equal(handle_rec, 0);
	bt_addr peer = peer_addr();
	uint16_t link = harness_link_up(h, &peer);
	uint16_t scid = harness_open_channel(h, link, L2CAP_PSM_SDP, 0x0040, 672);
	assert_int_not_equal(scid, 0);
	static const uint8_t req[] = { 0x02, 0x00, 0x07, 0x00, 0x08, 0x35, 0x03, 0x19, 0x11, 0x01, 0x00, 0x05, 0x00 };
	harness_l2cap_in(h, link, scid, req, sizeof req);
	uint8_t rsp[1024];
	int n = next_on(h, 0x0040, rsp, sizeof rsp);
	assert_int_equal(n, 14);
	assert_int_equal(rsp[0], SDP_PDU_SS_RSP);
	assert_int_equal(get_be16(rsp + 1), 7);
	assert_int_equal(get_be32(rsp + 9), handle_rec);
	/* a second request on the same channel */
	harness_l2cap_in(h, link, scid, req, sizeof req);
	assert_int_equal(next_on(h, 0x0040, rsp, sizeof rsp), 14);
	harness_link_down(h, link, 0x13);
	if (own)
		sdp_server_free(srv);
	harness_free(h);
}

typedef struct {
	int calls, err;
	size_t n;
	char name[32];
	int channel;
} result;

static void on_done(void *ctx, int err, sdp_record *const *recs, size_t n)
{
	result *r = ctx;
	r->calls++;
	r->err = err;
	r->n = n;
	if (n) {
		sdp_record_name(recs[0], r->name, sizeof r->name);
		r->channel = sdp_record_rfcomm_channel(recs[0]);
	}
}

/* Vol 3 Part B 4.7 over L2CAP: page, open PSM 1, continuation rounds, close. */
static void test_client_over_l2cap(void **state)
{
	harness *h = harness_new(8);
	bt_stack *s = harness_stack(h);
	/* the "peer's" server, answering through the harness */
	sdp_server *remote = sdp_server_new(NULL);
	char desc[700];
	memset(desc, 'r', sizeof desc - 1);
	desc[sizeof desc - 1] = 0;
	sdp_uuid spp = sdp_uuid16(SDP_UUID_SERIAL_PORT);
	sdp_service_desc d = { .name = "Remote", .description = desc, .classes = &spp, .n_classes = 1,
			       .rfcomm_channel = 12 };
	sdp_server_add_service(remote, &d);

	bt_addr peer = peer_addr();
	result r = { 0 };
	sdp_query_params p = { .uuids = &spp, .n_uuids = 1 };
	sdp_query *q = NULL;
	assert_int_equal(sdp_query_start(bt_stack_l2cap(s), bt_stack_timers(s), &peer, &p, on_done, &r, &q), 0);
	assert_non_null(q);
	uint16_t link = harness_accept_page(h, &peer);
	uint16_t scid = harness_accept_channel(h, link, 0x0041, 100); /* small MTU: several rounds */
	assert_int_not_equal(scid, 0);
	uint8_t req[1024], rsp[1024];
	int rounds = 0, n;
	while (r.calls == 0 && (n = next_on(h, 0x0041, req, sizeof req)) > 0) {
		int rn = sdp_server_handle_pdu(remote, req, (size_t)n, 100, rsp, sizeof rsp);
		assert_true(rn > 0);
		harness_l2cap_in(h, link, scid, rsp, (size_t)rn);
		rounds++;
	}
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.name, "Remote");
	assert_int_equal(r.channel, 12);
	assert_true(rounds > 5);
	/* the client closed its channel: Disconnection Request (Vol 3 Part A 4.6) */
	uint8_t id, dd[64];
	size_t dl;
	int code;
	do
		code = harness_sig_out(h, &id, dd, sizeof dd, &dl);
	while (code >= 0 && code != 0x06);
	assert_int_equal(code, 0x06);
	sdp_server_free(remote);
	harness_free(h);
}

/* The peer refuses PSM 1, or never answers: the callback says so. */
static void test_client_timeout(void **state)
{
	harness *h = harness_new(8);
	bt_stack *s = harness_stack(h);
	bt_addr peer = peer_addr();
	result r = { 0 };
	sdp_uuid spp = sdp_uuid16(SDP_UUID_SERIAL_PORT);
	sdp_query_params p = { .uuids = &spp, .n_uuids = 1, .timeout_ms = 3000 };
	sdp_query *q;
	assert_int_equal(sdp_query_start(bt_stack_l2cap(s), bt_stack_timers(s), &peer, &p, on_done, &r, &q), 0);
	uint16_t link = harness_accept_page(h, &peer);
	assert_int_not_equal(harness_accept_channel(h, link, 0x0042, 672), 0);
	harness_advance(h, 3001);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, -ETIMEDOUT);
	harness_free(h);
}

/* Issue 9, over L2CAP: a client with the least MTU (48, Vol 3 Part A 5.1) gets every response
 * within it, continuation after continuation (Vol 3 Part B 4.3); a forged state is 0x0005; a
 * burst of 100 requests sent without waiting (4.1 says a client waits) is answered at most once
 * each, within the MTU, and leaves the channel working. */
static void test_hostile_client_over_l2cap(void **state)
{
	harness *h = harness_new(8);
	bool own;
	sdp_server *srv = stack_sdp(h, &own);
	char name[300];
	memset(name, 'n', sizeof name - 1);
	name[sizeof name - 1] = 0;
	sdp_uuid spp = sdp_uuid16(SDP_UUID_SERIAL_PORT);
	sdp_service_desc d = { .name = name, .classes = &spp, .n_classes = 1, .rfcomm_channel = 2 };
	assert_int_not_equal(sdp_server_add_service(srv, &d), 0);
	bt_addr peer = peer_addr();
	uint16_t link = harness_link_up(h, &peer);
	uint16_t scid = harness_open_channel(h, link, L2CAP_PSM_SDP, 0x0040, 48);
	assert_int_not_equal(scid, 0);
	/* SSA: pattern {SPP}, max 0xffff, IDs {0x0000-0xffff}, continuation */
	uint8_t req[64] = { 0x06, 0x00, 0x01, 0x00, 0x00, 0x35, 0x03, 0x19, 0x11, 0x01, 0xff, 0xff,
			    0x35, 0x05, 0x0a, 0x00, 0x00, 0xff, 0xff };
	size_t base = 19;
	uint8_t cont[17] = { 0 }, rsp[256];
	size_t total = 0;
	int rounds = 0;
	do {
		req[base] = cont[0];
		memcpy(req + base + 1, cont + 1, cont[0]);
		size_t n = base + 1 + cont[0];
		put_be16(req + 3, (uint16_t)(n - 5));
		harness_l2cap_in(h, link, scid, req, n);
		int r = next_on(h, 0x0040, rsp, sizeof rsp);
		assert_true(r >= 8 && r <= 48);
		assert_int_equal(rsp[0], SDP_PDU_SSA_RSP);
		uint16_t count = get_be16(rsp + 5);
		total += count;
		cont[0] = rsp[7 + count];
		assert_true(cont[0] <= 16);
		memcpy(cont + 1, rsp + 8 + count, cont[0]);
		rounds++;
	} while (cont[0] && rounds < 1000);
	assert_int_equal(cont[0], 0);
	assert_true(total > 300 && rounds > 10);
	/* forged continuation state */
	static const uint8_t forged[] = { 0x06, 0x00, 0x02, 0x00, 0x13, 0x35, 0x03, 0x19, 0x11, 0x01, 0xff, 0xff,
					  0x35, 0x05, 0x0a, 0x00, 0x00, 0xff, 0xff, 0x04, 0xde, 0xad, 0xbe, 0xef };
	harness_l2cap_in(h, link, scid, forged, sizeof forged);
	int r = next_on(h, 0x0040, rsp, sizeof rsp);
	assert_int_equal(r, 7);
	assert_int_equal(rsp[0], SDP_PDU_ERROR_RSP);
	assert_int_equal(get_be16(rsp + 5), SDP_ERR_INVALID_CONT_STATE);
	/* a burst */
	const uint8_t *pdus[100];
	size_t lens[100];
	put_be16(req + 3, (uint16_t)(base + 1 - 5));
	req[base] = 0;
	for (int i = 0; i < 100; i++) {
		pdus[i] = req;
		lens[i] = base + 1;
	}
	harness_l2cap_burst(h, link, scid, pdus, lens, 100);
	int answers = 0;
	while ((r = next_on(h, 0x0040, rsp, sizeof rsp)) >= 0) {
		assert_true(r <= 48);
		answers++;
	}
	assert_true(answers >= 1 && answers <= 100);
	harness_l2cap_in(h, link, scid, forged, sizeof forged);
	assert_int_equal(next_on(h, 0x0040, rsp, sizeof rsp), 7);
	harness_link_down(h, link, 0x13);
	if (own)
		sdp_server_free(srv);
	harness_free(h);
}

/* A peer that opens channel after channel to PSM 1 and leaves them open may not lock other
 * clients out, nor its own next search: beyond a few its oldest are closed. Before, the 17th
 * channel of any peer was refused (No Resources) for as long as the flooding link lived. */
static void test_flooding_peer_keeps_server_open(void **state)
{
	harness *h = harness_new(8);
	bool own;
	sdp_server *srv = stack_sdp(h, &own);
	bt_addr a = peer_addr(), b;
	bt_addr_parse("00:CC:03:00:00:04", &b);
	uint16_t la = harness_link_up(h, &a);
	int accepted = 0, closed_by_stack = 0;
	for (uint16_t i = 0; i < 40; i++) {
		uint8_t req[4], d[256], id;
		size_t n;
		put_le16(req, L2CAP_PSM_SDP); /* Vol 3 Part A 4.2, then never configured */
		put_le16(req + 2, (uint16_t)(0x0040 + i));
		harness_sig_in(h, la, 0x02, (uint8_t)(1 + i), req, 4);
		int code;
		while ((code = harness_sig_out(h, &id, d, sizeof d, &n)) >= 0) {
			if (code == 0x03 && n >= 8 && get_le16(d + 4) == 0)
				accepted++;
			if (code == 0x06 && n >= 4) { /* the stack drops our oldest: answer as a peer does */
				uint8_t rsp[4];
				put_le16(rsp, get_le16(d));
				put_le16(rsp + 2, get_le16(d + 2));
				harness_sig_in(h, la, 0x07, id, rsp, 4);
				closed_by_stack++;
			}
		}
	}
	assert_int_equal(accepted, 40);
	assert_true(closed_by_stack >= 40 - 4);
	uint16_t lb = harness_link_up(h, &b);
	uint16_t scid = harness_open_channel(h, lb, L2CAP_PSM_SDP, 0x0040, 672);
	assert_int_not_equal(scid, 0);
	static const uint8_t req[] = { 0x02, 0x00, 0x07, 0x00, 0x08, 0x35, 0x03, 0x19, 0x11, 0x01, 0x00, 0x05, 0x00 };
	harness_l2cap_in(h, lb, scid, req, sizeof req);
	uint8_t rsp[1024];
	uint16_t handle, cid;
	int n;
	bool answered = false;
	while ((n = harness_l2cap_out(h, &handle, &cid, rsp, sizeof rsp)) >= 0)
		answered |= handle == lb && cid == 0x0040 && n > 0 && rsp[0] == SDP_PDU_SS_RSP;
	assert_true(answered);
	harness_link_down(h, la, 0x13);
	harness_link_down(h, lb, 0x13);
	if (own)
		sdp_server_free(srv);
	harness_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_on_psm1),
		cmocka_unit_test(test_client_over_l2cap),
		cmocka_unit_test(test_client_timeout),
		cmocka_unit_test(test_hostile_client_over_l2cap),
		cmocka_unit_test(test_flooding_peer_keeps_server_open),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
