/* test_sdp_client.c - the SDP client (Core spec Vol 3 Part B 4.7 ServiceSearchAttribute, 4.3
 * continuation) against the real server's PDU handler and against scripted bad servers:
 * reassembly across continuations, error responses, timeouts, the size cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "sdp/sdp.h"
#include "sdp/sdp_client_int.h"
#include "sdp/sdp_server_int.h"

typedef struct {
	int calls;
	int err;
	size_t n;
	char names[4][64];
	int channels[4];
	int psms[4];
} result;

static void on_done(void *ctx, int err, sdp_record *const *recs, size_t n)
{
	result *r = ctx;
	r->calls++;
	r->err = err;
	r->n = n;
	for (size_t i = 0; i < n && i < 4; i++) {
		if (sdp_record_name(recs[i], r->names[i], sizeof r->names[i]) < 0)
			r->names[i][0] = 0;
		r->channels[i] = sdp_record_rfcomm_channel(recs[i]);
		r->psms[i] = sdp_record_l2cap_psm(recs[i]);
	}
}

/* The link: the latest request the client sent. */
typedef struct {
	uint8_t req[1024];
	size_t len;
	bool waiting;
	int sends;
	int eagain; /* answer -EAGAIN this many times first */
} link;

static int link_send(void *ctx, const uint8_t *p, size_t len)
{
	link *l = ctx;
	if (l->eagain > 0) {
		l->eagain--;
		return -EAGAIN;
	}
	assert_true(len <= sizeof l->req);
	memcpy(l->req, p, len);
	l->len = len;
	l->waiting = true;
	l->sends++;
	return 0;
}

/* Pumps requests through the real server until the client stops asking. */
static void serve(sdp_server *s, sdp_query *q, link *l, uint16_t mtu, result *r)
{
	uint8_t rsp[4096];
	while (l->waiting && r->calls == 0) {
		l->waiting = false;
		int n = sdp_server_handle_pdu(s, l->req, l->len, mtu, rsp, sizeof rsp);
		assert_true(n > 0);
		sdp_query_input(q, rsp, (size_t)n);
	}
}

static sdp_server *two_services(void)
{
	sdp_server *s = sdp_server_new(NULL);
	char desc[1500];
	memset(desc, 'w', sizeof desc - 1);
	desc[sizeof desc - 1] = 0;
	sdp_uuid spp = sdp_uuid16(SDP_UUID_SERIAL_PORT);
	sdp_service_desc a = { .name = "Alpha", .description = desc, .classes = &spp, .n_classes = 1,
			       .rfcomm_channel = 4 };
	sdp_service_desc b = { .name = "Beta", .classes = &spp, .n_classes = 1, .l2cap_psm = 0x1003 };
	sdp_server_add_service(s, &a);
	sdp_server_add_service(s, &b);
	return s;
}

/* Vol 3 Part B 4.7 / 4.3: the whole attribute list arrives over many small responses. */
static void test_query_follows_continuation(void **state)
{
	sdp_server *s = two_services();
	bt_timers timers = { 0 };
	link l = { .waiting = false };
	result r = { 0 };
	sdp_uuid spp = sdp_uuid16(SDP_UUID_SERIAL_PORT);
	sdp_query_params p = { .uuids = &spp, .n_uuids = 1 };
	sdp_query *q = sdp_query_new_raw(&timers, &p, on_done, &r, link_send, &l);
	assert_non_null(q);
	serve(s, q, &l, 48, &r);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.names[0], "Alpha");
	assert_int_equal(r.channels[0], 4);
	assert_string_equal(r.names[1], "Beta");
	assert_int_equal(r.channels[1], -ENOENT);
	assert_int_equal(r.psms[1], 0x1003);
	assert_true(l.sends > 30);
	assert_int_equal(bt_timers_next(&timers), UINT64_MAX); /* timer stopped */
	sdp_server_free(s);
}

/* Vol 3 Part B 4.7.2: no matching record is an empty AttributeLists, not an error. */
static void test_query_no_match(void **state)
{
	sdp_server *s = two_services();
	bt_timers timers = { 0 };
	link l = { 0 };
	result r = { 0 };
	sdp_uuid u = sdp_uuid16(0x1105);
	sdp_query_params p = { .uuids = &u, .n_uuids = 1 };
	sdp_query *q = sdp_query_new_raw(&timers, &p, on_done, &r, link_send, &l);
	serve(s, q, &l, 672, &r);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n, 0);
	sdp_server_free(s);
}

/* Vol 3 Part B 4.7.1: attribute ranges restrict what comes back. */
static void test_query_ranges(void **state)
{
	sdp_server *s = two_services();
	bt_timers timers = { 0 };
	link l = { 0 };
	result r = { 0 };
	sdp_uuid spp = sdp_uuid16(SDP_UUID_SERIAL_PORT);
	uint32_t ranges[] = { 0x00040004 }; /* ProtocolDescriptorList only */
	sdp_query_params p = { .uuids = &spp, .n_uuids = 1, .ranges = ranges, .n_ranges = 1 };
	sdp_query *q = sdp_query_new_raw(&timers, &p, on_done, &r, link_send, &l);
	serve(s, q, &l, 672, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.names[0], ""); /* no name asked for */
	assert_int_equal(r.channels[0], 4);
	sdp_server_free(s);
}

/* Bad patterns are refused before anything is sent (4.7.1: 1-12 UUIDs). */
static void test_query_bad_params(void **state)
{
	bt_timers timers = { 0 };
	link l = { 0 };
	result r = { 0 };
	sdp_uuid u[13];
	for (int i = 0; i < 13; i++)
		u[i] = sdp_uuid16(0x1101);
	sdp_query_params p = { .uuids = u, .n_uuids = 13 };
	assert_null(sdp_query_new_raw(&timers, &p, on_done, &r, link_send, &l));
	p.n_uuids = 0;
	assert_null(sdp_query_new_raw(&timers, &p, on_done, &r, link_send, &l));
	assert_int_equal(l.sends, 0);
	assert_int_equal(r.calls, 0);
}

static sdp_query *start_simple(bt_timers *t, link *l, result *r)
{
	static sdp_uuid spp;
	spp = sdp_uuid16(SDP_UUID_SERIAL_PORT);
	sdp_query_params p = { .uuids = &spp, .n_uuids = 1, .timeout_ms = 5000 };
	sdp_query *q = sdp_query_new_raw(t, &p, on_done, r, link_send, l);
	assert_non_null(q);
	return q;
}

/* Vol 3 Part B 4.4.1: an ErrorResponse ends the query with its code as an errno. */
static void test_query_error_response(void **state)
{
	bt_timers timers = { 0 };
	link l = { 0 };
	result r = { 0 };
	sdp_query *q = start_simple(&timers, &l, &r);
	uint8_t rsp[7] = { SDP_PDU_ERROR_RSP, l.req[1], l.req[2], 0x00, 0x02, 0x00, 0x03 };
	sdp_query_input(q, rsp, sizeof rsp);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, -EINVAL);
	assert_int_equal(sdp_error_to_errno(SDP_ERR_INVALID_CONT_STATE), -EPROTO);
	assert_int_equal(sdp_error_to_errno(SDP_ERR_INSUFFICIENT_RESOURCES), -ENOBUFS);
}

/* Vol 3 Part B 4.2 / 4.7.2: malformed responses are protocol errors. */
static void test_query_malformed_responses(void **state)
{
	static const struct {
		const char *what;
		uint8_t pdu[16];
		size_t len;
	} cases[] = {
		{ "wrong tid", { 0x07, 0x77, 0x77, 0x00, 0x05, 0x00, 0x02, 0x35, 0x00, 0x00 }, 10 },
		{ "wrong pdu", { 0x05, 0x00, 0x01, 0x00, 0x05, 0x00, 0x02, 0x35, 0x00, 0x00 }, 10 },
		{ "plen mismatch", { 0x07, 0x00, 0x01, 0x00, 0x09, 0x00, 0x02, 0x35, 0x00, 0x00 }, 10 },
		{ "count past end", { 0x07, 0x00, 0x01, 0x00, 0x05, 0x00, 0x09, 0x35, 0x00, 0x00 }, 10 },
		{ "cont past end", { 0x07, 0x00, 0x01, 0x00, 0x05, 0x00, 0x02, 0x35, 0x00, 0x03 }, 10 },
		{ "cont too long", { 0x07, 0x00, 0x01, 0x00, 0x05, 0x00, 0x00, 0x11, 0, 0 }, 10 },
		{ "not a sequence", { 0x07, 0x00, 0x01, 0x00, 0x05, 0x00, 0x02, 0x08, 0x00, 0x00 }, 10 },
		{ "bad pairs", { 0x07, 0x00, 0x01, 0x00, 0x09, 0x00, 0x06, 0x35, 0x04, 0x35, 0x02, 0x08, 0x01, 0x00 }, 14 },
		{ "list not a seq", { 0x07, 0x00, 0x01, 0x00, 0x07, 0x00, 0x04, 0x35, 0x02, 0x08, 0x01, 0x00 }, 12 },
		{ "short", { 0x07, 0x00 }, 2 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bt_timers timers = { 0 };
		link l = { 0 };
		result r = { 0 };
		sdp_query *q = start_simple(&timers, &l, &r);
		assert_int_equal(get_be16(l.req + 1), 1);
		sdp_query_input(q, cases[i].pdu, cases[i].len);
		if (r.calls != 1 || r.err != -EPROTO)
			fail_msg("%s: calls %d err %d", cases[i].what, r.calls, r.err);
	}
}

/* Our cap on the assembled list (SDP_CLIENT_MAX_BYTES): a server that never stops. */
static void test_query_size_cap(void **state)
{
	bt_timers timers = { 0 };
	link l = { 0 };
	result r = { 0 };
	sdp_query *q = start_simple(&timers, &l, &r);
	uint8_t rsp[5 + 2 + 1000 + 5];
	int rounds = 0;
	while (r.calls == 0 && rounds < 200) {
		rsp[0] = SDP_PDU_SSA_RSP;
		memcpy(rsp + 1, l.req + 1, 2); /* echo the tid */
		put_be16(rsp + 3, 2 + 1000 + 5);
		put_be16(rsp + 5, 1000);
		memset(rsp + 7, 0x08, 1000);
		rsp[1007] = 4;
		put_be32(rsp + 1008, 0x11223344);
		sdp_query_input(q, rsp, sizeof rsp);
		rounds++;
	}
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, -EMSGSIZE);
	assert_int_equal(rounds, 66);
	/* the continuation state went back verbatim */
}

/* The query's timeout runs on bt_timers. */
static void test_query_timeout(void **state)
{
	bt_timers timers = { 0 };
	link l = { 0 };
	result r = { 0 };
	start_simple(&timers, &l, &r);
	bt_timers_run(&timers, 4999);
	assert_int_equal(r.calls, 0);
	bt_timers_run(&timers, 5000);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, -ETIMEDOUT);
}

/* Cancel: no callback, timer gone. */
static void test_query_cancel(void **state)
{
	bt_timers timers = { 0 };
	link l = { 0 };
	result r = { 0 };
	sdp_query *q = start_simple(&timers, &l, &r);
	sdp_query_cancel(q);
	assert_int_equal(bt_timers_next(&timers), UINT64_MAX);
	bt_timers_run(&timers, 100000);
	assert_int_equal(r.calls, 0);
}

/* A full L2CAP queue: the request goes out once the channel is writable. */
static void test_query_backpressure(void **state)
{
	sdp_server *s = two_services();
	bt_timers timers = { 0 };
	link l = { .eagain = 1 };
	result r = { 0 };
	sdp_query *q = start_simple(&timers, &l, &r);
	assert_int_equal(l.sends, 0);
	uint8_t junk[10] = { 0x07 };
	sdp_query_input(q, junk, sizeof junk); /* nothing asked yet: ignored */
	assert_int_equal(r.calls, 0);
	sdp_query_writable(q);
	assert_int_equal(l.sends, 1);
	serve(s, q, &l, 672, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n, 2);
	sdp_server_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_follows_continuation),
		cmocka_unit_test(test_query_no_match),
		cmocka_unit_test(test_query_ranges),
		cmocka_unit_test(test_query_bad_params),
		cmocka_unit_test(test_query_error_response),
		cmocka_unit_test(test_query_malformed_responses),
		cmocka_unit_test(test_query_size_cap),
		cmocka_unit_test(test_query_timeout),
		cmocka_unit_test(test_query_cancel),
		cmocka_unit_test(test_query_backpressure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
