/* test_sdp_server.c - the SDP server's PDU handling (Core spec Vol 3 Part B 4) called directly:
 * searches, attribute ranges, continuation across many responses, every ErrorResponse code;
 * and service records (Vol 3 Part B 5.1) built like PyBluez advertise_service(). */
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
#include "sdp/sdp_server_int.h"

/* ------------------------------------------------------------------ helpers */

static uint16_t g_tid = 0x0100;

/* Builds a request: pid, then params (already encoded), then a continuation state. */
static size_t mk_req(uint8_t *out, uint8_t pid, const uint8_t *params, size_t plen, const uint8_t *cont,
		     uint8_t clen)
{
	out[0] = pid;
	put_be16(out + 1, ++g_tid);
	put_be16(out + 3, (uint16_t)(plen + 1 + clen));
	if (plen)
		memcpy(out + 5, params, plen);
	out[5 + plen] = clen;
	if (clen)
		memcpy(out + 6 + plen, cont, clen);
	return 5 + plen + 1 + clen;
}

/* ServiceSearchPattern with one 16-bit UUID. */
static size_t w_pattern16(sdp_writer *w, uint16_t u)
{
	size_t m = sdp_w_seq_begin(w);
	sdp_uuid x = sdp_uuid16(u);
	sdp_w_uuid(w, &x);
	sdp_w_seq_end(w, m);
	return w->len;
}

static void w_all_ids(sdp_writer *w)
{
	size_t m = sdp_w_seq_begin(w);
	sdp_w_uint32(w, 0x0000ffff);
	sdp_w_seq_end(w, m);
}

static void w_u16(sdp_writer *w, uint16_t v)
{
	uint8_t b[2];
	put_be16(b, v);
	sdp_w_raw(w, b, 2);
}

static void w_u32(sdp_writer *w, uint32_t v)
{
	uint8_t b[4];
	put_be32(b, v);
	sdp_w_raw(w, b, 4);
}

/* Runs one request; checks the header and returns the response length. */
static int run(sdp_server *s, const uint8_t *req, size_t len, uint16_t mtu, uint8_t *rsp)
{
	int n = sdp_server_handle_pdu(s, req, len, mtu, rsp, 4096);
	assert_true(n >= 7);
	assert_true(n <= mtu);
	assert_int_equal(get_be16(rsp + 3), n - 5); /* ParameterLength, Vol 3 Part B 4.2 */
	return n;
}

static uint16_t expect_error(sdp_server *s, const uint8_t *req, size_t len)
{
	uint8_t rsp[4096];
	int n = run(s, req, len, 672, rsp);
	assert_int_equal(rsp[0], SDP_PDU_ERROR_RSP);
	assert_int_equal(n, 7);
	return get_be16(rsp + 5);
}

static uint32_t add_spp(sdp_server *s, uint8_t channel, const char *name)
{
	sdp_uuid cls = sdp_uuid16(SDP_UUID_SERIAL_PORT);
	sdp_profile prof = { sdp_uuid16(SDP_UUID_SERIAL_PORT), 0x0100 };
	sdp_service_desc d = {
		.name = name, .description = "test service", .provider = "btsock",
		.classes = &cls, .n_classes = 1, .profiles = &prof, .n_profiles = 1,
		.rfcomm_channel = channel,
	};
	return sdp_server_add_service(s, &d);
}

/* ------------------------------------------------------------------ records */

/* Vol 3 Part B 5.1: the attributes of a PyBluez-style advertised service. */
static void test_record_build(void **state)
{
	uint8_t sid_be[16] = { 0x94, 0xf3, 0x9d, 0x29, 0x7d, 0x6d, 0x43, 0x7d,
			       0x97, 0x3b, 0xfb, 0xa3, 0x9e, 0x49, 0xd4, 0xee };
	sdp_uuid sid = sdp_uuid128(sid_be);
	sdp_uuid cls[2] = { sdp_uuid128(sid_be), sdp_uuid16(SDP_UUID_SERIAL_PORT) };
	sdp_profile prof = { sdp_uuid16(SDP_UUID_SERIAL_PORT), 0x0102 };
	sdp_uuid obex = sdp_uuid16(SDP_UUID_OBEX);
	sdp_service_desc d = {
		.name = "SampleServer", .description = "a sample", .provider = "me",
		.service_id = &sid, .classes = cls, .n_classes = 2, .profiles = &prof, .n_profiles = 1,
		.rfcomm_channel = 7, .protocols = &obex, .n_protocols = 1,
	};
	sdp_record *r = sdp_record_new();
	assert_int_equal(sdp_record_build_service(r, &d), 0);
	/* attributes sorted ascending (Vol 3 Part B 2.3) */
	for (size_t i = 1; i < r->n; i++)
		assert_true(r->attrs[i - 1].id < r->attrs[i].id);
	/* ProtocolDescriptorList: ((L2CAP), (RFCOMM, 7), (OBEX)) */
	const sdp_attr *pd = sdp_record_get(r, SDP_ATTR_PROTOCOL_DESCRIPTOR_LIST);
	assert_non_null(pd);
	static const uint8_t want_pd[] = { 0x35, 0x11, 0x35, 0x03, 0x19, 0x01, 0x00, 0x35, 0x05, 0x19,
					   0x00, 0x03, 0x08, 0x07, 0x35, 0x03, 0x19, 0x00, 0x08 };
	assert_int_equal(pd->len, sizeof want_pd);
	assert_memory_equal(pd->val, want_pd, sizeof want_pd);
	/* BrowseGroupList: PublicBrowseRoot */
	static const uint8_t want_bg[] = { 0x35, 0x03, 0x19, 0x10, 0x02 };
	const sdp_attr *bg = sdp_record_get(r, SDP_ATTR_BROWSE_GROUP_LIST);
	assert_memory_equal(bg->val, want_bg, sizeof want_bg);
	/* LanguageBaseAttributeIDList: en, UTF-8 (106), 0x0100 */
	static const uint8_t want_lb[] = { 0x35, 0x09, 0x09, 0x65, 0x6e, 0x09, 0x00, 0x6a, 0x09, 0x01, 0x00 };
	const sdp_attr *lb = sdp_record_get(r, SDP_ATTR_LANGUAGE_BASE_LIST);
	assert_memory_equal(lb->val, want_lb, sizeof want_lb);

	/* reading it back */
	char txt[64];
	assert_int_equal(sdp_record_name(r, txt, sizeof txt), 12);
	assert_string_equal(txt, "SampleServer");
	sdp_record_description(r, txt, sizeof txt);
	assert_string_equal(txt, "a sample");
	sdp_record_provider(r, txt, sizeof txt);
	assert_string_equal(txt, "me");
	assert_int_equal(sdp_record_rfcomm_channel(r), 7);
	assert_int_equal(sdp_record_l2cap_psm(r), -ENOENT); /* L2CAP without a PSM under RFCOMM */
	sdp_uuid got[4];
	assert_int_equal(sdp_record_service_classes(r, got, 4), 2);
	assert_true(sdp_uuid_eq(&got[0], &sid));
	sdp_profile p[2];
	assert_int_equal(sdp_record_profiles(r, p, 2), 1);
	assert_int_equal(p[0].version, 0x0102);
	sdp_uuid g;
	assert_int_equal(sdp_record_service_id(r, &g), 0);
	assert_true(sdp_uuid_eq(&g, &sid));
	assert_true(sdp_record_has_uuid(r, &obex));
	sdp_uuid other = sdp_uuid16(0x1105);
	assert_false(sdp_record_has_uuid(r, &other));
	sdp_record_free(r);

	/* an L2CAP service: L2CAP(psm) only; no classes -> service id as the class */
	sdp_service_desc l2 = { .name = "L2", .service_id = &sid, .l2cap_psm = 0x1001 };
	r = sdp_record_new();
	assert_int_equal(sdp_record_build_service(r, &l2), 0);
	assert_int_equal(sdp_record_l2cap_psm(r), 0x1001);
	assert_int_equal(sdp_record_rfcomm_channel(r), -ENOENT);
	assert_int_equal(sdp_record_service_classes(r, got, 4), 1);
	assert_true(sdp_uuid_eq(&got[0], &sid));
	assert_int_equal(sdp_record_description(r, txt, sizeof txt), -ENOENT);
	sdp_record_free(r);
}

/* Vol 3 Part B 2.3: an attribute value is exactly one data element. */
static void test_record_set(void **state)
{
	sdp_record *r = sdp_record_new();
	static const uint8_t ok[] = { 0x09, 0x00, 0x01 };
	static const uint8_t two[] = { 0x08, 0x01, 0x08, 0x02 };
	static const uint8_t bad[] = { 0x35, 0x04, 0x08 };
	assert_int_equal(sdp_record_set(r, 0x0300, ok, sizeof ok), 0);
	assert_int_equal(sdp_record_set(r, 0x0200, ok, sizeof ok), 0);
	assert_int_equal(sdp_record_set(r, 0x0300, ok, sizeof ok), 0); /* replaced */
	assert_int_equal(r->n, 2);
	assert_int_equal(r->attrs[0].id, 0x0200);
	assert_int_equal(sdp_record_set(r, 0x0400, two, sizeof two), -EBADMSG);
	assert_int_equal(sdp_record_set(r, 0x0400, bad, sizeof bad), -EBADMSG);
	assert_int_equal(sdp_record_remove(r, 0x0200), 0);
	assert_int_equal(sdp_record_remove(r, 0x0200), -ENOENT);
	assert_int_equal(r->n, 1);
	sdp_record_free(r);
}

/* ------------------------------------------------------------------ searches */

/* Vol 3 Part B 4.5: ServiceSearch finds records by UUID; the server's own record has
 * handle 0 and class 0x1000 (5.2). */
static void test_service_search(void **state)
{
	sdp_server *s = sdp_server_new(NULL);
	uint32_t h = add_spp(s, 3, "SPP");
	assert_int_equal(h, 0x00010000);
	uint8_t params[64], req[128], rsp[4096];
	sdp_writer w;
	sdp_w_init(&w, params, sizeof params);
	w_pattern16(&w, SDP_UUID_SERIAL_PORT);
	w_u16(&w, 10);
	size_t n = mk_req(req, SDP_PDU_SS_REQ, params, w.len, NULL, 0);
	int rn = run(s, req, n, 672, rsp);
	assert_int_equal(rsp[0], SDP_PDU_SS_RSP);
	assert_int_equal(get_be16(rsp + 1), g_tid); /* the request's TransactionID */
	assert_int_equal(get_be16(rsp + 5), 1);
	assert_int_equal(get_be16(rsp + 7), 1);
	assert_int_equal(get_be32(rsp + 9), h);
	assert_int_equal(rsp[13], 0); /* no continuation */
	assert_int_equal(rn, 14);

	sdp_w_init(&w, params, sizeof params);
	w_pattern16(&w, SDP_UUID_SDP_SERVER);
	w_u16(&w, 10);
	n = mk_req(req, SDP_PDU_SS_REQ, params, w.len, NULL, 0);
	run(s, req, n, 672, rsp);
	assert_int_equal(get_be16(rsp + 5), 1);
	assert_int_equal(get_be32(rsp + 9), 0x00000000);

	/* L2CAP (0x0100) is in the SPP record only */
	sdp_w_init(&w, params, sizeof params);
	w_pattern16(&w, SDP_UUID_L2CAP);
	w_u16(&w, 10);
	n = mk_req(req, SDP_PDU_SS_REQ, params, w.len, NULL, 0);
	run(s, req, n, 672, rsp);
	assert_int_equal(get_be16(rsp + 5), 1);

	/* two UUIDs: both must be present (2.5.2) */
	sdp_w_init(&w, params, sizeof params);
	size_t m = sdp_w_seq_begin(&w);
	sdp_uuid a = sdp_uuid16(SDP_UUID_SERIAL_PORT), b = sdp_uuid16(0x1105);
	sdp_w_uuid(&w, &a);
	sdp_w_uuid(&w, &b);
	sdp_w_seq_end(&w, m);
	w_u16(&w, 10);
	n = mk_req(req, SDP_PDU_SS_REQ, params, w.len, NULL, 0);
	rn = run(s, req, n, 672, rsp);
	assert_int_equal(get_be16(rsp + 5), 0);
	assert_int_equal(rn, 10);

	/* MaximumServiceRecordCount caps the list */
	for (int i = 0; i < 5; i++)
		add_spp(s, (uint8_t)(4 + i), "more");
	sdp_w_init(&w, params, sizeof params);
	w_pattern16(&w, SDP_UUID_SERIAL_PORT);
	w_u16(&w, 4);
	n = mk_req(req, SDP_PDU_SS_REQ, params, w.len, NULL, 0);
	run(s, req, n, 672, rsp);
	assert_int_equal(get_be16(rsp + 5), 4);
	assert_int_equal(get_be16(rsp + 7), 4);
	sdp_server_free(s);
}

/* Vol 3 Part B 4.5.2 / 4.3: a handle list longer than the MTU allows comes in parts. */
static void test_service_search_continuation(void **state)
{
	sdp_server *s = sdp_server_new(NULL);
	for (int i = 0; i < 30; i++)
		add_spp(s, 1, "x");
	uint8_t params[64], req[128], rsp[4096];
	sdp_writer w;
	sdp_w_init(&w, params, sizeof params);
	w_pattern16(&w, SDP_UUID_SERIAL_PORT);
	w_u16(&w, 0xffff);
	uint8_t cont[16];
	uint8_t clen = 0;
	uint32_t handles[64];
	size_t got = 0;
	int rounds = 0;
	do {
		size_t n = mk_req(req, SDP_PDU_SS_REQ, params, w.len, cont, clen);
		int rn = run(s, req, n, 48, rsp); /* the minimum L2CAP MTU */
		assert_int_equal(rsp[0], SDP_PDU_SS_RSP);
		assert_int_equal(get_be16(rsp + 5), 30);
		uint16_t cur = get_be16(rsp + 7);
		assert_true(cur > 0);
		for (uint16_t i = 0; i < cur; i++)
			handles[got++] = get_be32(rsp + 9 + 4 * i);
		clen = rsp[9 + 4 * cur];
		assert_true(clen <= 16);
		memcpy(cont, rsp + 10 + 4 * cur, clen);
		assert_int_equal(rn, 10 + 4 * cur + clen);
		rounds++;
	} while (clen);
	assert_int_equal(got, 30);
	assert_true(rounds > 1);
	for (size_t i = 0; i < got; i++)
		assert_int_equal(handles[i], 0x00010000 + i);
	sdp_server_free(s);
}

/* Vol 3 Part B 4.6: ServiceAttribute with single IDs and ranges, in ascending order. */
static void test_service_attribute(void **state)
{
	sdp_server *s = sdp_server_new(NULL);
	uint32_t h = add_spp(s, 5, "Named");
	uint8_t params[64], req[128], rsp[4096];
	sdp_writer w;
	sdp_w_init(&w, params, sizeof params);
	w_u32(&w, h);
	w_u16(&w, 0xffff);
	size_t m = sdp_w_seq_begin(&w);
	sdp_w_uint16(&w, SDP_ATTR_RECORD_HANDLE);
	sdp_w_uint32(&w, 0x01000100); /* 0x0100-0x0100: the name */
	sdp_w_seq_end(&w, m);
	size_t n = mk_req(req, SDP_PDU_SA_REQ, params, w.len, NULL, 0);
	int rn = run(s, req, n, 672, rsp);
	assert_int_equal(rsp[0], SDP_PDU_SA_RSP);
	uint16_t count = get_be16(rsp + 5);
	static const uint8_t want[] = { 0x35, 0x12, 0x09, 0x00, 0x00, 0x0a, 0x00, 0x01, 0x00, 0x00,
					0x09, 0x01, 0x00, 0x25, 0x05, 'N', 'a', 'm', 'e', 'd' };
	assert_int_equal(count, sizeof want);
	assert_memory_equal(rsp + 7, want, sizeof want);
	assert_int_equal(rsp[7 + count], 0);
	assert_int_equal(rn, 8 + count);

	/* the server's own record: VersionNumberList (5.2.3) */
	sdp_w_init(&w, params, sizeof params);
	w_u32(&w, 0);
	w_u16(&w, 0xffff);
	m = sdp_w_seq_begin(&w);
	sdp_w_uint16(&w, SDP_ATTR_VERSION_NUMBER_LIST);
	sdp_w_seq_end(&w, m);
	n = mk_req(req, SDP_PDU_SA_REQ, params, w.len, NULL, 0);
	run(s, req, n, 672, rsp);
	static const uint8_t want_v[] = { 0x35, 0x08, 0x09, 0x02, 0x00, 0x35, 0x03, 0x09, 0x01, 0x00 };
	assert_int_equal(get_be16(rsp + 5), sizeof want_v);
	assert_memory_equal(rsp + 7, want_v, sizeof want_v);

	/* nothing in range: an empty list */
	sdp_w_init(&w, params, sizeof params);
	w_u32(&w, h);
	w_u16(&w, 0xffff);
	m = sdp_w_seq_begin(&w);
	sdp_w_uint32(&w, 0x80008fff);
	sdp_w_seq_end(&w, m);
	n = mk_req(req, SDP_PDU_SA_REQ, params, w.len, NULL, 0);
	run(s, req, n, 672, rsp);
	assert_int_equal(get_be16(rsp + 5), 2);
	assert_int_equal(rsp[7], 0x35);
	assert_int_equal(rsp[8], 0x00);
	sdp_server_free(s);
}

/* Follows continuation states for a ServiceSearchAttribute until done; returns the whole
 * AttributeLists in out. */
static size_t fetch_ssa(sdp_server *s, uint16_t uuid, uint16_t max_bytes, uint16_t mtu, uint8_t *out,
			int *rounds)
{
	uint8_t params[64], req[128], rsp[4096];
	sdp_writer w;
	sdp_w_init(&w, params, sizeof params);
	w_pattern16(&w, uuid);
	w_u16(&w, max_bytes);
	w_all_ids(&w);
	uint8_t cont[16];
	uint8_t clen = 0;
	size_t total = 0;
	*rounds = 0;
	do {
		size_t n = mk_req(req, SDP_PDU_SSA_REQ, params, w.len, cont, clen);
		int rn = run(s, req, n, mtu, rsp);
		assert_int_equal(rsp[0], SDP_PDU_SSA_RSP);
		uint16_t count = get_be16(rsp + 5);
		assert_true(count <= max_bytes);
		memcpy(out + total, rsp + 7, count);
		total += count;
		clen = rsp[7 + count];
		assert_true(clen <= 16);
		memcpy(cont, rsp + 8 + count, clen);
		assert_int_equal(rn, 8 + count + clen);
		(*rounds)++;
	} while (clen);
	return total;
}

/* Vol 3 Part B 4.7 and 4.3: a record larger than one response is fetched whole by following
 * the continuation state, limited both by the MTU and by MaximumAttributeByteCount. */
static void test_ssa_continuation(void **state)
{
	sdp_server *s = sdp_server_new(NULL);
	char big[2000];
	memset(big, 'd', sizeof big - 1);
	big[sizeof big - 1] = 0;
	sdp_uuid cls = sdp_uuid16(SDP_UUID_SERIAL_PORT);
	sdp_service_desc d = { .name = "Big", .description = big, .classes = &cls, .n_classes = 1,
			       .rfcomm_channel = 9 };
	assert_int_not_equal(sdp_server_add_service(s, &d), 0);
	add_spp(s, 10, "Small");

	uint8_t *whole = malloc(65536), *parts = malloc(65536);
	int rounds;
	size_t n1 = fetch_ssa(s, SDP_UUID_SERIAL_PORT, 0xffff, 4096, whole, &rounds);
	assert_int_equal(rounds, 1);
	size_t n2 = fetch_ssa(s, SDP_UUID_SERIAL_PORT, 0xffff, 48, parts, &rounds);
	assert_true(rounds > 40);
	assert_int_equal(n1, n2);
	assert_memory_equal(whole, parts, n1);
	size_t n3 = fetch_ssa(s, SDP_UUID_SERIAL_PORT, 7, 672, parts, &rounds);
	assert_int_equal(n1, n3);
	assert_memory_equal(whole, parts, n1);
	assert_true(rounds >= (int)(n1 / 7));

	/* The whole thing decodes into two records with their facts. */
	sdp_elem top, list;
	assert_int_equal(sdp_elem_validate(whole, n1, 0, &top), 0);
	assert_int_equal(top.total, n1);
	sdp_iter it;
	sdp_iter_init(&it, &top);
	int nrec = 0;
	while (sdp_iter_next(&it, &list) == 1) {
		sdp_record *r;
		assert_int_equal(sdp_record_from_attr_list(&list, &r), 0);
		char name[32];
		sdp_record_name(r, name, sizeof name);
		assert_string_equal(name, nrec == 0 ? "Big" : "Small");
		assert_int_equal(sdp_record_rfcomm_channel(r), nrec == 0 ? 9 : 10);
		assert_int_equal(r->handle, 0x00010000 + (uint32_t)nrec);
		sdp_record_free(r);
		nrec++;
	}
	assert_int_equal(nrec, 2);
	free(whole);
	free(parts);
	sdp_server_free(s);
}

/* ------------------------------------------------------------------ errors (4.4.1) */

/* 0x0001: a PDU ID beyond those SDP defines. */
static void test_error_unsupported_version(void **state)
{
	sdp_server *s = sdp_server_new(NULL);
	uint8_t req[16];
	size_t n = mk_req(req, 0x08, NULL, 0, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_UNSUPPORTED_VERSION);
	n = mk_req(req, 0x7f, NULL, 0, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_UNSUPPORTED_VERSION);
	sdp_server_free(s);
}

/* 0x0002: ServiceAttribute on a handle that is not (or no longer) there. */
static void test_error_invalid_handle(void **state)
{
	sdp_server *s = sdp_server_new(NULL);
	uint32_t h = add_spp(s, 1, "x");
	uint8_t params[32], req[64];
	sdp_writer w;
	sdp_w_init(&w, params, sizeof params);
	w_u32(&w, 0x00012345);
	w_u16(&w, 100);
	w_all_ids(&w);
	size_t n = mk_req(req, SDP_PDU_SA_REQ, params, w.len, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_HANDLE);
	assert_int_equal(sdp_server_remove_record(s, h), 0);
	assert_int_equal(sdp_server_remove_record(s, h), -ENOENT);
	assert_int_equal(sdp_server_remove_record(s, 0), -ENOENT); /* the server's own stays */
	sdp_w_init(&w, params, sizeof params);
	w_u32(&w, h);
	w_u16(&w, 100);
	w_all_ids(&w);
	n = mk_req(req, SDP_PDU_SA_REQ, params, w.len, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_HANDLE);
	sdp_server_free(s);
}

/* 0x0003: malformed patterns and attribute lists, response PDUs sent as requests. */
static void test_error_invalid_syntax(void **state)
{
	sdp_server *s = sdp_server_new(NULL);
	uint8_t params[512], req[600];
	sdp_writer w;
	size_t n, m;

	/* pattern not a sequence */
	sdp_w_init(&w, params, sizeof params);
	sdp_uuid u = sdp_uuid16(0x1101);
	sdp_w_uuid(&w, &u);
	w_u16(&w, 10);
	n = mk_req(req, SDP_PDU_SS_REQ, params, w.len, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_SYNTAX);
	/* empty pattern */
	sdp_w_init(&w, params, sizeof params);
	m = sdp_w_seq_begin(&w);
	sdp_w_seq_end(&w, m);
	w_u16(&w, 10);
	n = mk_req(req, SDP_PDU_SS_REQ, params, w.len, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_SYNTAX);
	/* 13 UUIDs (4.5.1: at most 12) */
	sdp_w_init(&w, params, sizeof params);
	m = sdp_w_seq_begin(&w);
	for (int i = 0; i < 13; i++)
		sdp_w_uuid(&w, &u);
	sdp_w_seq_end(&w, m);
	w_u16(&w, 10);
	n = mk_req(req, SDP_PDU_SS_REQ, params, w.len, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_SYNTAX);
	/* a uint in the pattern */
	sdp_w_init(&w, params, sizeof params);
	m = sdp_w_seq_begin(&w);
	sdp_w_uint16(&w, 0x1101);
	sdp_w_seq_end(&w, m);
	w_u16(&w, 10);
	n = mk_req(req, SDP_PDU_SS_REQ, params, w.len, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_SYNTAX);
	/* MaximumServiceRecordCount 0 */
	sdp_w_init(&w, params, sizeof params);
	w_pattern16(&w, 0x1101);
	w_u16(&w, 0);
	n = mk_req(req, SDP_PDU_SS_REQ, params, w.len, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_SYNTAX);
	/* MaximumAttributeByteCount below 7 */
	sdp_w_init(&w, params, sizeof params);
	w_pattern16(&w, 0x1101);
	w_u16(&w, 6);
	w_all_ids(&w);
	n = mk_req(req, SDP_PDU_SSA_REQ, params, w.len, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_SYNTAX);
	/* attribute ID as uint8; a reversed range; an empty list */
	for (int k = 0; k < 3; k++) {
		sdp_w_init(&w, params, sizeof params);
		w_u32(&w, 0);
		w_u16(&w, 100);
		m = sdp_w_seq_begin(&w);
		if (k == 0)
			sdp_w_uint8(&w, 1);
		else if (k == 1)
			sdp_w_uint32(&w, 0x00100001);
		sdp_w_seq_end(&w, m);
		n = mk_req(req, SDP_PDU_SA_REQ, params, w.len, NULL, 0);
		assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_SYNTAX);
	}
	/* a sequence whose length runs past the PDU */
	static const uint8_t bad_seq[] = { 0x35, 0x20, 0x19, 0x11, 0x01, 0x00, 0x0a };
	n = mk_req(req, SDP_PDU_SS_REQ, bad_seq, sizeof bad_seq, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_SYNTAX);
	/* response PDU IDs and 0x00 as requests */
	static const uint8_t pids[] = { 0x00, 0x01, 0x03, 0x05, 0x07 };
	for (size_t i = 0; i < sizeof pids; i++) {
		n = mk_req(req, pids[i], NULL, 0, NULL, 0);
		assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_SYNTAX);
	}
	sdp_server_free(s);
}

/* 0x0004: ParameterLength that does not match, truncated PDUs, trailing bytes. */
static void test_error_invalid_pdu_size(void **state)
{
	sdp_server *s = sdp_server_new(NULL);
	uint8_t params[64], req[128];
	sdp_writer w;
	sdp_w_init(&w, params, sizeof params);
	w_pattern16(&w, 0x1101);
	w_u16(&w, 10);
	size_t n = mk_req(req, SDP_PDU_SS_REQ, params, w.len, NULL, 0);
	put_be16(req + 3, (uint16_t)(n - 5 + 1)); /* claims one byte more */
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_PDU_SIZE);
	put_be16(req + 3, (uint16_t)(n - 5 - 1));
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_PDU_SIZE);
	assert_int_equal(expect_error(s, req, 4), SDP_ERR_INVALID_PDU_SIZE); /* header cut */
	assert_int_equal(expect_error(s, req, 0), SDP_ERR_INVALID_PDU_SIZE);
	/* no continuation state byte at all */
	n = mk_req(req, SDP_PDU_SS_REQ, params, w.len, NULL, 0);
	put_be16(req + 3, (uint16_t)(n - 6));
	assert_int_equal(expect_error(s, req, n - 1), SDP_ERR_INVALID_PDU_SIZE);
	/* continuation state shorter than InfoLength */
	n = mk_req(req, SDP_PDU_SS_REQ, params, w.len, (const uint8_t *)"ab", 2);
	req[n - 3] = 4;
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_PDU_SIZE);
	/* trailing byte after the continuation state */
	n = mk_req(req, SDP_PDU_SS_REQ, params, w.len, NULL, 0);
	req[n] = 0;
	put_be16(req + 3, (uint16_t)(n + 1 - 5));
	assert_int_equal(expect_error(s, req, n + 1), SDP_ERR_INVALID_PDU_SIZE);
	/* SA too short for the handle */
	static const uint8_t shortsa[] = { 0x00, 0x01 };
	n = mk_req(req, SDP_PDU_SA_REQ, shortsa, sizeof shortsa, NULL, 0);
	n -= 1; /* drop the continuation byte too */
	put_be16(req + 3, (uint16_t)(n - 5));
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_PDU_SIZE);
	sdp_server_free(s);
}

/* 0x0005: continuation states the server never handed out, for another request, or stale
 * after the database changed. */
static void test_error_invalid_cont_state(void **state)
{
	sdp_server *s = sdp_server_new(NULL);
	char big[600];
	memset(big, 'z', sizeof big - 1);
	big[sizeof big - 1] = 0;
	add_spp(s, 1, big);
	uint8_t params[64], req[128], rsp[4096];
	sdp_writer w;
	sdp_w_init(&w, params, sizeof params);
	w_pattern16(&w, SDP_UUID_SERIAL_PORT);
	w_u16(&w, 100);
	w_all_ids(&w);

	static const uint8_t forged[4] = { 0x00, 0x00, 0x00, 0x07 };
	size_t n = mk_req(req, SDP_PDU_SSA_REQ, params, w.len, forged, 4);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_CONT_STATE);
	static const uint8_t odd[3] = { 1, 2, 3 };
	n = mk_req(req, SDP_PDU_SSA_REQ, params, w.len, odd, 3);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_CONT_STATE);

	/* get a genuine one */
	n = mk_req(req, SDP_PDU_SSA_REQ, params, w.len, NULL, 0);
	run(s, req, n, 672, rsp);
	uint16_t count = get_be16(rsp + 5);
	assert_int_equal(rsp[7 + count], 4);
	uint8_t cont[4];
	memcpy(cont, rsp + 8 + count, 4);
	/* it works for the same request ... */
	n = mk_req(req, SDP_PDU_SSA_REQ, params, w.len, cont, 4);
	run(s, req, n, 672, rsp);
	assert_int_equal(rsp[0], SDP_PDU_SSA_RSP);
	/* ... not for a different one (here: another pattern) */
	uint8_t p2[64];
	sdp_writer w2;
	sdp_w_init(&w2, p2, sizeof p2);
	w_pattern16(&w2, SDP_UUID_L2CAP);
	w_u16(&w2, 100);
	w_all_ids(&w2);
	n = mk_req(req, SDP_PDU_SSA_REQ, p2, w2.len, cont, 4);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_CONT_STATE);
	/* ... nor once the database changed */
	add_spp(s, 2, "new");
	n = mk_req(req, SDP_PDU_SSA_REQ, params, w.len, cont, 4);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_CONT_STATE);
	sdp_server_free(s);
}

/* 0x0006: a response payload beyond what the server builds (64 KiB). */
static void test_error_insufficient_resources(void **state)
{
	sdp_server *s = sdp_server_new(NULL);
	char *big = malloc(40000);
	memset(big, 'q', 39999);
	big[39999] = 0;
	add_spp(s, 1, big);
	add_spp(s, 2, big);
	free(big);
	uint8_t params[64], req[128];
	sdp_writer w;
	sdp_w_init(&w, params, sizeof params);
	w_pattern16(&w, SDP_UUID_SERIAL_PORT);
	w_u16(&w, 0xffff);
	w_all_ids(&w);
	size_t n = mk_req(req, SDP_PDU_SSA_REQ, params, w.len, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INSUFFICIENT_RESOURCES);
	/* no room for any answer */
	uint8_t rsp[8];
	assert_int_equal(sdp_server_handle_pdu(s, req, n, 6, rsp, sizeof rsp), 0);
	sdp_server_free(s);
}

/* Vol 3 Part B 4.4.1: the error carries the request's TransactionID. */
static void test_error_echoes_tid(void **state)
{
	sdp_server *s = sdp_server_new(NULL);
	uint8_t req[8] = { 0x02, 0xab, 0xcd, 0x00, 0x00 };
	uint8_t rsp[16];
	int n = sdp_server_handle_pdu(s, req, 5, 672, rsp, sizeof rsp);
	assert_int_equal(n, 7);
	assert_int_equal(get_be16(rsp + 1), 0xabcd);
	sdp_server_free(s);
}

/* ------------------------------------------------------------------ hostile clients (issue 9) */

/* Vol 3 Part B 4.3/4.4.1: a continuation state longer than 16 bytes was never issued by us:
 * 0x0005 like any forged one (it was answered 0x0003 before). A genuine state replayed gives
 * the same slice again and holds nothing new; one from another request kind (SA vs SSA) is
 * refused. */
static void test_cont_state_hostile(void **state)
{
	sdp_server *s = sdp_server_new(NULL);
	char big[600];
	memset(big, 'y', sizeof big - 1);
	big[sizeof big - 1] = 0;
	uint32_t h = add_spp(s, 1, big);
	uint8_t params[64], req[400], rsp[4096], rsp2[4096];
	sdp_writer w;
	sdp_w_init(&w, params, sizeof params);
	w_pattern16(&w, SDP_UUID_SERIAL_PORT);
	w_u16(&w, 100);
	w_all_ids(&w);
	uint8_t longc[255];
	memset(longc, 0xee, sizeof longc);
	size_t n = mk_req(req, SDP_PDU_SSA_REQ, params, w.len, longc, 17);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_CONT_STATE);
	n = mk_req(req, SDP_PDU_SSA_REQ, params, w.len, longc, 255);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_CONT_STATE);
	n = mk_req(req, SDP_PDU_SSA_REQ, params, w.len, longc, 16);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_CONT_STATE);

	n = mk_req(req, SDP_PDU_SSA_REQ, params, w.len, NULL, 0);
	run(s, req, n, 672, rsp);
	uint16_t count = get_be16(rsp + 5);
	uint8_t cont[4];
	memcpy(cont, rsp + 8 + count, 4);
	n = mk_req(req, SDP_PDU_SSA_REQ, params, w.len, cont, 4);
	int a = run(s, req, n, 672, rsp);
	for (int i = 0; i < 50; i++) { /* replays: each gets the same next token, no slot is spent */
		n = mk_req(req, SDP_PDU_SSA_REQ, params, w.len, cont, 4);
		int b = run(s, req, n, 672, rsp2);
		assert_int_equal(a, b);
		uint16_t c = get_be16(rsp + 5);
		assert_memory_equal(rsp + 5, rsp2 + 5, 2u + c + 1u + rsp[7 + c]); /* same slice, token */
	}
	/* The SSA token offered to an SA for the same record and IDs. */
	uint8_t sa[64];
	sdp_writer ws;
	sdp_w_init(&ws, sa, sizeof sa);
	w_u32(&ws, h);
	w_u16(&ws, 100);
	w_all_ids(&ws);
	n = mk_req(req, SDP_PDU_SA_REQ, sa, ws.len, cont, 4);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_CONT_STATE);
	sdp_server_free(s);
}

/* Vol 3 Part B 3.3 / 4.5.1: sequences nested in a request whose lengths run past their
 * parent or the PDU, or nest deeper than SDP_MAX_DEPTH, are Invalid Request Syntax. */
static void test_nested_sequences_past_end(void **state)
{
	sdp_server *s = sdp_server_new(NULL);
	uint8_t req[128];
	/* pattern: an outer sequence of 5 holding a sequence that claims 16 */
	static const uint8_t inner_past[] = { 0x35, 0x05, 0x35, 0x10, 0x19, 0x11, 0x01, 0x00, 0x0a };
	size_t n = mk_req(req, SDP_PDU_SS_REQ, inner_past, sizeof inner_past, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_SYNTAX);
	/* a 16-bit length (size index 6) larger than the whole PDU */
	static const uint8_t long_len[] = { 0x36, 0xff, 0xff, 0x19, 0x11, 0x01, 0x00, 0x0a };
	n = mk_req(req, SDP_PDU_SS_REQ, long_len, sizeof long_len, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_SYNTAX);
	/* nested ten deep around one UUID */
	uint8_t deep[64];
	size_t k = 0;
	for (int i = 0; i < 10; i++) {
		deep[k++] = 0x35;
		deep[k++] = (uint8_t)(2 * (10 - i - 1) + 3);
	}
	deep[k++] = 0x19;
	deep[k++] = 0x11;
	deep[k++] = 0x01;
	deep[k++] = 0x00;
	deep[k++] = 0x0a;
	n = mk_req(req, SDP_PDU_SS_REQ, deep, k, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_SYNTAX);
	/* an AttributeIDList whose uint32 is cut by its sequence */
	static const uint8_t ids_cut[] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, 0x35, 0x03, 0x0a, 0x00, 0x00, 0xff, 0xff };
	n = mk_req(req, SDP_PDU_SA_REQ, ids_cut, sizeof ids_cut, NULL, 0);
	assert_int_equal(expect_error(s, req, n), SDP_ERR_INVALID_SYNTAX);
	sdp_server_free(s);
}

/* Vol 3 Part B 4.6.1: an AttributeIDList of 3000 overlapping ranges lists each attribute once,
 * the answer the same as for the one range 0x0000-0xFFFF, within the MTU. */
static void test_thousands_of_ranges(void **state)
{
	sdp_server *s = sdp_server_new(NULL);
	uint32_t h = add_spp(s, 3, "ranges");
	size_t cap = 20000;
	uint8_t *params = malloc(cap), *req = malloc(cap + 32);
	uint8_t one[4096], many[4096];
	sdp_writer w;
	sdp_w_init(&w, params, cap);
	w_u32(&w, h);
	w_u16(&w, 0xffff);
	w_all_ids(&w);
	size_t n = mk_req(req, SDP_PDU_SA_REQ, params, w.len, NULL, 0);
	int a = run(s, req, n, 672, one);
	sdp_w_init(&w, params, cap);
	w_u32(&w, h);
	w_u16(&w, 0xffff);
	size_t m = sdp_w_seq_begin(&w);
	for (uint32_t i = 0; i < 3000; i++)
		sdp_w_uint32(&w, i % 2 ? 0x0000ffffu : (i & 0xff) << 16 | 0xffffu);
	sdp_w_seq_end(&w, m);
	assert_int_equal(sdp_w_finish(&w), (int)w.len);
	n = mk_req(req, SDP_PDU_SA_REQ, params, w.len, NULL, 0);
	int b = run(s, req, n, 672, many);
	assert_int_equal(a, b);
	assert_memory_equal(one + 5, many + 5, (size_t)a - 5);
	free(params);
	free(req);
	sdp_server_free(s);
}

/* Vol 3 Part B 4.3: at every MTU and MaximumAttributeByteCount down to the least that carries
 * one byte and a continuation state, the responses fit and concatenate to the whole answer. */
static void test_tiny_mtus(void **state)
{
	sdp_server *s = sdp_server_new(NULL);
	add_spp(s, 4, "tiny");
	uint8_t *whole = malloc(65536), *parts = malloc(65536);
	int rounds;
	size_t n1 = fetch_ssa(s, SDP_UUID_SERIAL_PORT, 0xffff, 4096, whole, &rounds);
	for (uint16_t mtu = 13; mtu <= 40; mtu += 9) {
		size_t n2 = fetch_ssa(s, SDP_UUID_SERIAL_PORT, 7, mtu, parts, &rounds);
		assert_int_equal(n1, n2);
		assert_memory_equal(whole, parts, n1);
	}
	/* Below that nothing fits: an error, or nothing at all below an ErrorResponse. */
	uint8_t params[64], req[128], rsp[16];
	sdp_writer w;
	sdp_w_init(&w, params, sizeof params);
	w_pattern16(&w, SDP_UUID_SERIAL_PORT);
	w_u16(&w, 7);
	w_all_ids(&w);
	size_t n = mk_req(req, SDP_PDU_SSA_REQ, params, w.len, NULL, 0);
	assert_int_equal(sdp_server_handle_pdu(s, req, n, 12, rsp, sizeof rsp), 7);
	assert_int_equal(get_be16(rsp + 5), SDP_ERR_INSUFFICIENT_RESOURCES);
	assert_int_equal(sdp_server_handle_pdu(s, req, n, 6, rsp, sizeof rsp), 0);
	free(whole);
	free(parts);
	sdp_server_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_build),
		cmocka_unit_test(test_record_set),
		cmocka_unit_test(test_service_search),
		cmocka_unit_test(test_service_search_continuation),
		cmocka_unit_test(test_service_attribute),
		cmocka_unit_test(test_ssa_continuation),
		cmocka_unit_test(test_error_unsupported_version),
		cmocka_unit_test(test_error_invalid_handle),
		cmocka_unit_test(test_error_invalid_syntax),
		cmocka_unit_test(test_error_invalid_pdu_size),
		cmocka_unit_test(test_error_invalid_cont_state),
		cmocka_unit_test(test_error_insufficient_resources),
		cmocka_unit_test(test_error_echoes_tid),
		cmocka_unit_test(test_cont_state_hostile),
		cmocka_unit_test(test_nested_sequences_past_end),
		cmocka_unit_test(test_thousands_of_ranges),
		cmocka_unit_test(test_tiny_mtus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
