/* test_sdp_client.c - the SDP client (Core spec Vol 3 Part B 4.7 ServiceSearchAttribute, 4.3
 * continuation) against the real server's PDU handler and against scripted bad servers:
 * reassembly across continuations, error responses, timeouts, the size cap; and the
 * transport-neutral interface (sdp_query_new) with canned responses. */
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

/* ------------------------------------------------------------------ the neutral interface */

/* A transport of the test's own for sdp_query_new(): the requests sent, the releases. */
typedef struct {
	link l;
	int releases;
	int fail; /* send returns this (when not 0) */
} transport;

static int tp_send(void *ctx, const uint8_t *p, size_t len)
{
	transport *t = ctx;
	if (t->fail)
		return t->fail;
	return link_send(&t->l, p, len);
}

static void tp_release(void *ctx) { ((transport *)ctx)->releases++; }

static sdp_query *neutral_query(bt_timers *timers, transport *t, result *r)
{
	sdp_uuid spp = sdp_uuid16(SDP_UUID_SERIAL_PORT);
	sdp_query_params p = { .uuids = &spp, .n_uuids = 1 };
	sdp_query_io io = { .ctx = t, .send = tp_send, .release = tp_release };
	sdp_query *q = NULL;
	assert_int_equal(sdp_query_new(timers, &p, &io, on_done, r, &q), 0);
	assert_non_null(q);
	assert_int_equal(t->l.sends, 0); /* nothing before sdp_query_begin */
	return q;
}

/* One record's attribute list inside the AttributeLists sequence (Vol 3 Part B 4.7.2, data
 * elements 3.2/3.3): ServiceRecordHandle 0x00010000, ServiceName (0x0100) "Canned". */
static const uint8_t canned_lists[] = {
	0x35, 0x15, 0x35, 0x13, 0x09, 0x00, 0x00, 0x0a, 0x00, 0x01, 0x00, 0x00,
	0x09, 0x01, 0x00, 0x25, 0x06, 'C', 'a', 'n', 'n', 'e', 'd',
};

/* A ServiceSearchAttributeResponse (4.7.2): header (4.2), byte count, lists, continuation. */
static size_t ssa_rsp(uint8_t *out, uint16_t tid, const uint8_t *lists, size_t n, const uint8_t *cont,
		      uint8_t cont_len)
{
	out[0] = SDP_PDU_SSA_RSP;
	put_be16(out + 1, tid);
	put_be16(out + 3, (uint16_t)(2 + n + 1 + cont_len));
	put_be16(out + 5, (uint16_t)n);
	memcpy(out + 7, lists, n);
	out[7 + n] = cont_len;
	if (cont_len) /* memcpy from NULL is undefined even for 0 bytes */
		memcpy(out + 8 + n, cont, cont_len);
	return 8 + n + cont_len;
}

/* Canned responses in two parts (4.3): the second request carries the server's continuation
 * state and the next transaction ID; the parts join into one record. No timers: no timeout. */
static void test_neutral_canned_continuation(void **state)
{
	transport t = { 0 };
	result r = { 0 };
	sdp_query *q = neutral_query(NULL, &t, &r);
	uint8_t rsp[128];
	size_t n = ssa_rsp(rsp, 1, canned_lists, 10, NULL, 0);
	sdp_query_input(q, rsp, n); /* before sdp_query_begin: no request out, ignored */
	assert_int_equal(r.calls, 0);
	sdp_query_begin(q);
	assert_int_equal(t.l.sends, 1);
	assert_int_equal(t.l.req[0], SDP_PDU_SSA_REQ);
	assert_int_equal(get_be16(t.l.req + 1), 1);
	assert_int_equal(t.l.req[t.l.len - 1], 0); /* no continuation state yet */
	const uint8_t cont[2] = { 0xab, 0xcd };
	n = ssa_rsp(rsp, 1, canned_lists, 10, cont, 2);
	sdp_query_input(q, rsp, n);
	assert_int_equal(t.l.sends, 2);
	assert_int_equal(get_be16(t.l.req + 1), 2);
	assert_int_equal(get_be16(t.l.req + 3), t.l.len - 5); /* ParameterLength */
	assert_int_equal(t.l.req[t.l.len - 3], 2);
	assert_memory_equal(t.l.req + t.l.len - 2, cont, 2);
	n = ssa_rsp(rsp, 2, canned_lists + 10, sizeof canned_lists - 10, NULL, 0);
	sdp_query_input(q, rsp, n);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.names[0], "Canned");
	assert_int_equal(t.releases, 1);
}

/* Malformed responses, each to a fresh query: every one ends it with -EPROTO (or the error
 * response's code), the transport released once. */
static void test_neutral_malformed(void **state)
{
	uint8_t good[128];
	size_t gn = ssa_rsp(good, 1, canned_lists, sizeof canned_lists, NULL, 0);
	static uint8_t c[9][128];
	size_t len[9];
	int want[9];
	for (int i = 0; i < 9; i++) {
		memcpy(c[i], good, gn);
		len[i] = gn;
		want[i] = -EPROTO;
	}
	put_be16(c[0] + 1, 7);        /* another transaction ID */
	put_be16(c[1] + 3, 200);      /* ParameterLength past the PDU */
	len[2] = gn + 1;              /* a byte after the continuation state */
	put_be16(c[3] + 5, 100);      /* AttributeListsByteCount past the PDU */
	len[4] = 3;                   /* a header cut short */
	c[5][0] = SDP_PDU_SA_RSP;     /* not the response to a ServiceSearchAttributeRequest */
	/* ContinuationState of 17 octets (4.3: at most 16) */
	uint8_t cont[17] = { 0 };
	len[6] = ssa_rsp(c[6], 1, canned_lists, 4, cont, 17);
	/* lists that are no data element sequence of attribute lists */
	const uint8_t bad_lists[] = { 0x35, 0x05, 0x09, 0x00 };
	len[7] = ssa_rsp(c[7], 1, bad_lists, sizeof bad_lists, NULL, 0);
	/* ErrorResponse (4.4.1): Invalid Request Syntax */
	const uint8_t err_rsp[] = { SDP_PDU_ERROR_RSP, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03 };
	memcpy(c[8], err_rsp, sizeof err_rsp);
	len[8] = sizeof err_rsp;
	want[8] = sdp_error_to_errno(SDP_ERR_INVALID_SYNTAX);
	for (int i = 0; i < 9; i++) {
		transport t = { 0 };
		result r = { 0 };
		bt_timers timers = { 0 };
		sdp_query *q = neutral_query(&timers, &t, &r);
		sdp_query_begin(q);
		sdp_query_input(q, c[i], len[i]);
		assert_int_equal(r.calls, 1);
		assert_int_equal(r.err, want[i]);
		assert_int_equal(t.releases, 1);
		assert_int_equal(bt_timers_next(&timers), UINT64_MAX); /* its timer gone with it */
	}
}

/* The transport's failures: a send error ends the query with it; a transport that closes
 * (sdp_query_fail) ends it with its error, -ECONNRESET for 0; cancel releases, no callback;
 * -EAGAIN waits for sdp_query_writable. */
static void test_neutral_transport_failures(void **state)
{
	transport t = { .fail = -EIO };
	result r = { 0 };
	sdp_query *q = neutral_query(NULL, &t, &r);
	sdp_query_begin(q);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, -EIO);
	assert_int_equal(t.releases, 1);

	transport t2 = { 0 };
	result r2 = { 0 };
	q = neutral_query(NULL, &t2, &r2);
	sdp_query_begin(q);
	sdp_query_fail(q, 0);
	assert_int_equal(r2.err, -ECONNRESET);
	assert_int_equal(t2.releases, 1);

	transport t3 = { 0 };
	result r3 = { 0 };
	q = neutral_query(NULL, &t3, &r3);
	sdp_query_begin(q);
	sdp_query_cancel(q);
	assert_int_equal(r3.calls, 0);
	assert_int_equal(t3.releases, 1);

	transport t4 = { .l.eagain = 1 };
	result r4 = { 0 };
	q = neutral_query(NULL, &t4, &r4);
	sdp_query_begin(q);
	assert_int_equal(t4.l.sends, 0);
	uint8_t rsp[128];
	size_t n = ssa_rsp(rsp, 1, canned_lists, sizeof canned_lists, NULL, 0);
	sdp_query_input(q, rsp, n); /* the request is not out yet: ignored */
	assert_int_equal(r4.calls, 0);
	sdp_query_writable(q);
	assert_int_equal(t4.l.sends, 1);
	sdp_query_input(q, rsp, n);
	assert_int_equal(r4.err, 0);
	assert_int_equal(r4.n, 1);
	assert_int_equal(t4.releases, 1);

	sdp_query_io none = { 0 };
	sdp_query_params p = { 0 };
	assert_int_equal(sdp_query_new(NULL, &p, &none, on_done, &r, &q), -EINVAL);
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
		cmocka_unit_test(test_neutral_canned_continuation),
		cmocka_unit_test(test_neutral_malformed),
		cmocka_unit_test(test_neutral_transport_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
