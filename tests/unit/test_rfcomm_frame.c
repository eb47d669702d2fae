/* test_rfcomm_frame.c - the RFCOMM frame and multiplexer-command codec (rfcomm_frame.h)
 * against known byte vectors from ETSI TS 07.10 and the Bluetooth RFCOMM spec v1.2.
 * Each test names the section it checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "rfcomm/rfcomm_frame.h"

/* TS 07.10 5.2.1.6: SABM on DLCI 0 from the initiator is 03 3F 01 1C; the UA answering it
 * is 03 73 01 D7; a UIH on DLCI 0 (FCS over address and control only) 03 EF -> 0x70. */
static void test_fcs_vectors(void **state)
{
	(void)state;
	const uint8_t sabm[] = { 0x03, 0x3f, 0x01 };
	const uint8_t ua[] = { 0x03, 0x73, 0x01 };
	const uint8_t uih[] = { 0x03, 0xef };
	assert_int_equal(rfcomm_fcs(sabm, 3), 0x1c);
	assert_int_equal(rfcomm_fcs(ua, 3), 0xd7);
	assert_int_equal(rfcomm_fcs(uih, 2), 0x70);
	assert_true(rfcomm_fcs_ok(sabm, 3, 0x1c));
	assert_false(rfcomm_fcs_ok(sabm, 3, 0x1d));
}

/* TS 07.10 5.2.1, RFCOMM spec 5.1: the SABM/UA/DM/DISC byte vectors build and parse. */
static void test_build_known_frames(void **state)
{
	(void)state;
	uint8_t b[16];
	size_t n = rfcomm_frame_build(b, sizeof b, 0, true, RFCOMM_SABM, true, -1, NULL, 0);
	const uint8_t sabm[] = { 0x03, 0x3f, 0x01, 0x1c };
	assert_int_equal(n, 4);
	assert_memory_equal(b, sabm, 4);
	n = rfcomm_frame_build(b, sizeof b, 0, true, RFCOMM_UA, true, -1, NULL, 0);
	const uint8_t ua[] = { 0x03, 0x73, 0x01, 0xd7 };
	assert_int_equal(n, 4);
	assert_memory_equal(b, ua, 4);

	rfcomm_frame f;
	assert_int_equal(rfcomm_frame_parse(ua, 4, &f), 0);
	assert_int_equal(f.dlci, 0);
	assert_true(f.cr);
	assert_int_equal(f.ctrl, RFCOMM_UA);
	assert_true(f.pf);
	assert_int_equal(f.len, 0);

	/* DM on DLCI 2 (channel 1, direction 0) with F set, C/R 0. */
	n = rfcomm_frame_build(b, sizeof b, 2, false, RFCOMM_DM, true, -1, NULL, 0);
	assert_int_equal(n, 4);
	assert_int_equal(b[0], 0x09);
	assert_int_equal(b[1], 0x1f);
	assert_int_equal(rfcomm_frame_parse(b, n, &f), 0);
	assert_int_equal(f.dlci, 2);
	assert_false(f.cr);
	assert_int_equal(f.ctrl, RFCOMM_DM);
}

/* TS 07.10 5.2.1.5: 127 octets take a 1-octet length, 128 the 2-octet form. */
static void test_length_forms(void **state)
{
	(void)state;
	uint8_t info[300], b[320];
	for (size_t i = 0; i < sizeof info; i++)
		info[i] = (uint8_t)(i * 7);
	size_t n = rfcomm_frame_build(b, sizeof b, 4, true, RFCOMM_UIH, false, -1, info, 127);
	assert_int_equal(n, 2 + 1 + 127 + 1);
	assert_int_equal(b[2], (127 << 1) | 1);
	rfcomm_frame f;
	assert_int_equal(rfcomm_frame_parse(b, n, &f), 0);
	assert_int_equal(f.len, 127);
	assert_memory_equal(f.info, info, 127);

	n = rfcomm_frame_build(b, sizeof b, 4, true, RFCOMM_UIH, false, -1, info, 128);
	assert_int_equal(n, 2 + 2 + 128 + 1);
	assert_int_equal(b[2], 0x00); /* (128 & 0x7f) << 1, EA clear */
	assert_int_equal(b[3], 0x01); /* 128 >> 7 */
	assert_int_equal(rfcomm_frame_parse(b, n, &f), 0);
	assert_int_equal(f.len, 128);
	assert_memory_equal(f.info, info, 128);

	n = rfcomm_frame_build(b, sizeof b, 4, true, RFCOMM_UIH, false, -1, info, 300);
	assert_int_equal(rfcomm_frame_parse(b, n, &f), 0);
	assert_int_equal(f.len, 300);
	/* A buffer too small is refused, not overrun. */
	assert_int_equal(rfcomm_frame_build(b, 10, 4, true, RFCOMM_UIH, false, -1, info, 20), 0);
}

/* RFCOMM spec 6.5.2: a UIH with P/F carries a credit octet before the data; FCS still over
 * address and control only (TS 07.10 5.2.1.6). */
static void test_credit_octet(void **state)
{
	(void)state;
	uint8_t b[32];
	const uint8_t data[] = { 'h', 'i' };
	size_t n = rfcomm_frame_build(b, sizeof b, 2, true, RFCOMM_UIH, false, 5, data, 2);
	assert_int_equal(n, 7);
	assert_int_equal(b[1], 0xff); /* UIH | P/F */
	assert_int_equal(b[2], (2 << 1) | 1);
	assert_int_equal(b[3], 5);
	assert_int_equal(b[6], rfcomm_fcs(b, 2));
	rfcomm_frame f;
	assert_int_equal(rfcomm_frame_parse(b, n, &f), 0);
	assert_true(f.has_credits);
	assert_int_equal(f.credits, 5);
	assert_int_equal(f.len, 2);
	assert_memory_equal(f.info, data, 2);
	/* A credit-only frame: no information field. */
	n = rfcomm_frame_build(b, sizeof b, 2, true, RFCOMM_UIH, false, 9, NULL, 0);
	assert_int_equal(n, 5);
	assert_int_equal(rfcomm_frame_parse(b, n, &f), 0);
	assert_true(f.has_credits);
	assert_int_equal(f.credits, 9);
	assert_int_equal(f.len, 0);
}

/* TS 07.10 5.2.6 and RFCOMM spec 6.5.2: every malformed form is rejected with its own error. */
static void test_malformed_frames(void **state)
{
	(void)state;
	rfcomm_frame f;
	const uint8_t shortf[] = { 0x03, 0x3f, 0x01 };
	assert_int_equal(rfcomm_frame_parse(shortf, 3, &f), RFCOMM_EFRAME_SHORT);
	assert_int_equal(rfcomm_frame_parse(shortf, 0, &f), RFCOMM_EFRAME_SHORT);
	/* 2-octet length form with the second octet missing (it would be the FCS). */
	const uint8_t trunc2[] = { 0x0b, 0xef, 0x00, 0x70 };
	assert_int_equal(rfcomm_frame_parse(trunc2, 4, &f), RFCOMM_EFRAME_SHORT);
	/* Length 5 but no data. */
	uint8_t longf[] = { 0x0b, 0xef, (5 << 1) | 1, 0x00 };
	longf[3] = rfcomm_fcs(longf, 2);
	assert_int_equal(rfcomm_frame_parse(longf, 4, &f), RFCOMM_EFRAME_LENGTH);
	/* Length 0 with a trailing extra octet. */
	uint8_t extra[] = { 0x0b, 0xef, 0x01, 0x41, 0x00 };
	extra[4] = rfcomm_fcs(extra, 2);
	assert_int_equal(rfcomm_frame_parse(extra, 5, &f), RFCOMM_EFRAME_LENGTH);
	/* Bad FCS. */
	const uint8_t badfcs[] = { 0x03, 0x3f, 0x01, 0x1d };
	assert_int_equal(rfcomm_frame_parse(badfcs, 4, &f), RFCOMM_EFRAME_FCS);
	/* For SABM the FCS covers the length octet too: a changed length fails the check. */
	const uint8_t badlen_fcs[] = { 0x03, 0x3f, 0x03, 0x1c, 0x00 };
	assert_int_equal(rfcomm_frame_parse(badlen_fcs, 5, &f), RFCOMM_EFRAME_FCS);
	/* UIH with P/F on DLCI 2 but nothing after the length: no credit octet. */
	uint8_t nocredit[] = { 0x0b, 0xff, 0x01, 0x00 };
	nocredit[3] = rfcomm_fcs(nocredit, 2);
	assert_int_equal(rfcomm_frame_parse(nocredit, 4, &f), RFCOMM_EFRAME_CREDIT);
	/* Address EA clear. */
	uint8_t ea[] = { 0x02, 0x3f, 0x01, 0x00 };
	ea[3] = rfcomm_fcs(ea, 3);
	assert_int_equal(rfcomm_frame_parse(ea, 4, &f), RFCOMM_EFRAME_ADDR);
	/* Unknown control field. */
	uint8_t ctrl[] = { 0x03, 0x11, 0x01, 0x00 };
	ctrl[3] = rfcomm_fcs(ctrl, 3);
	assert_int_equal(rfcomm_frame_parse(ctrl, 4, &f), RFCOMM_EFRAME_CTRL);
	/* The errors are distinct. */
	int errs[] = { RFCOMM_EFRAME_SHORT, RFCOMM_EFRAME_LENGTH, RFCOMM_EFRAME_FCS,
		       RFCOMM_EFRAME_CREDIT, RFCOMM_EFRAME_ADDR, RFCOMM_EFRAME_CTRL };
	for (size_t i = 0; i < 6; i++)
		for (size_t j = i + 1; j < 6; j++)
			assert_int_not_equal(errs[i], errs[j]);
}

/* TS 07.10 5.4.6.3.1 / RFCOMM spec 5.5.3: PN as sent by BlueZ for DLCI 2, CFC request,
 * priority 7, N1 1008 (0x03f0), K 7: 83 11 02 f0 07 00 f0 03 00 07 (type, length, value). */
static void test_pn_vector(void **state)
{
	(void)state;
	const uint8_t wire[] = { 0x83, 0x11, 0x02, 0xf0, 0x07, 0x00, 0xf0, 0x03, 0x00, 0x07 };
	rfcomm_mcc m;
	assert_int_equal(rfcomm_mcc_parse(wire, sizeof wire, &m), 10);
	assert_int_equal(m.type, RFCOMM_MCC_PN);
	assert_true(m.cr);
	assert_int_equal(m.len, 8);
	rfcomm_pn pn;
	assert_int_equal(rfcomm_pn_decode(m.val, m.len, &pn), 0);
	assert_int_equal(pn.dlci, 2);
	assert_int_equal(pn.cl, RFCOMM_PN_CL_CFC_REQ);
	assert_int_equal(pn.i_bits, 0);
	assert_int_equal(pn.priority, 7);
	assert_int_equal(pn.n1, 1008);
	assert_int_equal(pn.k, 7);
	uint8_t v[8], out[16];
	size_t vn = rfcomm_pn_encode(&pn, v);
	assert_int_equal(vn, 8);
	assert_int_equal(rfcomm_mcc_build(out, sizeof out, RFCOMM_MCC_PN, true, v, vn), 10);
	assert_memory_equal(out, wire, 10);
	/* Response form: C/R 0 and CL 0xE0. */
	pn.cl = RFCOMM_PN_CL_CFC_RSP;
	rfcomm_pn_encode(&pn, v);
	assert_int_equal(v[1], 0xe0);
	assert_int_equal(rfcomm_mcc_build(out, sizeof out, RFCOMM_MCC_PN, false, v, 8), 10);
	assert_int_equal(out[0], 0x81);
	/* Truncated or oversized values are refused. */
	assert_int_equal(rfcomm_pn_decode(m.val, 7, &pn), -EBADMSG);
	assert_int_equal(rfcomm_pn_decode(m.val, 0, &pn), -EBADMSG);
	uint8_t nine[9] = { 0 };
	assert_int_equal(rfcomm_pn_decode(nine, 9, &pn), -EBADMSG);
}

/* TS 07.10 5.4.6.3.7: MSC for DLCI 2 with RTC, RTR, DV: e3 05 0b 8d; with break: 3 octets. */
static void test_msc_vector(void **state)
{
	(void)state;
	rfcomm_msc msc = { .dlci = 2, .v24 = RFCOMM_V24_RTC | RFCOMM_V24_RTR | RFCOMM_V24_DV };
	uint8_t v[3], out[8];
	size_t vn = rfcomm_msc_encode(&msc, v);
	assert_int_equal(vn, 2);
	assert_int_equal(rfcomm_mcc_build(out, sizeof out, RFCOMM_MCC_MSC, true, v, vn), 4);
	const uint8_t wire[] = { 0xe3, 0x05, 0x0b, 0x8d };
	assert_memory_equal(out, wire, 4);
	rfcomm_mcc m;
	assert_int_equal(rfcomm_mcc_parse(wire, 4, &m), 4);
	rfcomm_msc back;
	assert_int_equal(rfcomm_msc_decode(m.val, m.len, &back), 0);
	assert_int_equal(back.dlci, 2);
	assert_int_equal(back.v24, 0x8d);
	assert_false(back.has_break);
	msc.has_break = true;
	msc.brk = 0x30;
	vn = rfcomm_msc_encode(&msc, v);
	assert_int_equal(vn, 3);
	assert_int_equal(rfcomm_msc_decode(v, vn, &back), 0);
	assert_true(back.has_break);
	assert_int_equal(back.brk, 0x31);
	assert_int_equal(rfcomm_msc_decode(v, 1, &back), -EBADMSG);
	assert_int_equal(rfcomm_msc_decode(v, 0, &back), -EBADMSG);
}

/* TS 07.10 5.4.6.3.9: RPN is 1 octet (query) or 8; 5.4.6.3.10 RLS is 2; 5.4.6.3.8 NSC is 1. */
static void test_rpn_rls_nsc(void **state)
{
	(void)state;
	rfcomm_rpn rpn = { .dlci = 4, .has_values = true, .bit_rate = 0x03, .line = 0x03,
			   .flow = 0, .xon = 0x11, .xoff = 0x13, .mask = 0x3f7f };
	uint8_t v[8];
	assert_int_equal(rfcomm_rpn_encode(&rpn, v), 8);
	const uint8_t wire[] = { 0x13, 0x03, 0x03, 0x00, 0x11, 0x13, 0x7f, 0x3f };
	assert_memory_equal(v, wire, 8);
	rfcomm_rpn back;
	assert_int_equal(rfcomm_rpn_decode(v, 8, &back), 0);
	assert_true(back.has_values);
	assert_int_equal(back.dlci, 4);
	assert_int_equal(back.mask, 0x3f7f);
	assert_int_equal(rfcomm_rpn_decode(v, 1, &back), 0);
	assert_false(back.has_values);
	assert_int_equal(rfcomm_rpn_decode(v, 5, &back), -EBADMSG);
	assert_int_equal(rfcomm_rpn_decode(v, 0, &back), -EBADMSG);

	rfcomm_rls rls = { .dlci = 4, .status = 0x05 };
	assert_int_equal(rfcomm_rls_encode(&rls, v), 2);
	rfcomm_rls rb;
	assert_int_equal(rfcomm_rls_decode(v, 2, &rb), 0);
	assert_int_equal(rb.dlci, 4);
	assert_int_equal(rb.status, 0x05);
	assert_int_equal(rfcomm_rls_decode(v, 1, &rb), -EBADMSG);

	uint8_t t;
	bool cr;
	assert_int_equal(rfcomm_nsc_encode(RFCOMM_MCC_PSC, true, v), 1);
	assert_int_equal(v[0], 0x43);
	assert_int_equal(rfcomm_nsc_decode(v, 1, &t, &cr), 0);
	assert_int_equal(t, RFCOMM_MCC_PSC);
	assert_true(cr);
	assert_int_equal(rfcomm_nsc_decode(v, 0, &t, &cr), -EBADMSG);
}

/* TS 07.10 5.4.6.1: type/length framing: truncated values, EA lengths, several messages. */
static void test_mcc_framing(void **state)
{
	(void)state;
	rfcomm_mcc m;
	const uint8_t only_type[] = { 0x23 };
	assert_int_equal(rfcomm_mcc_parse(only_type, 1, &m), RFCOMM_EFRAME_SHORT);
	const uint8_t trunc[] = { 0x23, 0x07, 0xaa, 0xbb }; /* Test, length 3, 2 given */
	assert_int_equal(rfcomm_mcc_parse(trunc, 4, &m), RFCOMM_EFRAME_LENGTH);
	const uint8_t ea0[] = { 0x22, 0x01 };
	assert_int_equal(rfcomm_mcc_parse(ea0, 2, &m), RFCOMM_EFRAME_CTRL);
	const uint8_t len2_missing[] = { 0x23, 0x00 };
	assert_int_equal(rfcomm_mcc_parse(len2_missing, 2, &m), RFCOMM_EFRAME_SHORT);
	/* A 200-octet Test value uses the 2-octet length form and round-trips. */
	uint8_t val[200], buf[210];
	memset(val, 0x5a, sizeof val);
	size_t n = rfcomm_mcc_build(buf, sizeof buf, RFCOMM_MCC_TEST, true, val, sizeof val);
	assert_int_equal(n, 203);
	assert_int_equal(rfcomm_mcc_parse(buf, n, &m), 203);
	assert_int_equal(m.type, RFCOMM_MCC_TEST);
	assert_int_equal(m.len, 200);
	/* Two messages in one frame: FCon command then an empty FCoff. */
	const uint8_t two[] = { 0xa3, 0x01, 0x63, 0x01 };
	assert_int_equal(rfcomm_mcc_parse(two, 4, &m), 2);
	assert_int_equal(m.type, RFCOMM_MCC_FCON);
	assert_int_equal(m.len, 0);
	assert_int_equal(rfcomm_mcc_parse(two + 2, 2, &m), 2);
	assert_int_equal(m.type, RFCOMM_MCC_FCOFF);
}

/* Issue 9: the builders write through a bounded writer. For every capacity short of the
 * frame (TS 07.10 5.2.1) or message (5.4.6.1) they return 0 and leave the bytes past cap
 * alone; the longest lengths the fields carry (32767 info, 16383 value) build, one more does
 * not. */
static void test_builders_bounded(void **state)
{
	(void)state;
	uint8_t info[200], b[256];
	memset(info, 0x3c, sizeof info);
	size_t full = rfcomm_frame_build(b, sizeof b, 6, true, RFCOMM_UIH, false, 9, info, 150);
	assert_int_equal(full, 2 + 2 + 1 + 150 + 1);
	for (size_t cap = 0; cap < full; cap++) {
		memset(b, 0xee, sizeof b);
		assert_int_equal(rfcomm_frame_build(b, cap, 6, true, RFCOMM_UIH, false, 9, info, 150), 0);
		for (size_t i = cap; i < sizeof b; i++)
			assert_int_equal(b[i], 0xee);
	}
	size_t mfull = rfcomm_mcc_build(b, sizeof b, RFCOMM_MCC_TEST, true, info, 130);
	assert_int_equal(mfull, 1 + 2 + 130);
	for (size_t cap = 0; cap < mfull; cap++) {
		memset(b, 0xee, sizeof b);
		assert_int_equal(rfcomm_mcc_build(b, cap, RFCOMM_MCC_TEST, true, info, 130), 0);
		for (size_t i = cap; i < sizeof b; i++)
			assert_int_equal(b[i], 0xee);
	}
	static uint8_t big[40000], out[40000];
	assert_int_equal(rfcomm_frame_build(out, sizeof out, 2, true, RFCOMM_UIH, false, -1, big, RFCOMM_MAX_INFO),
			 RFCOMM_MAX_INFO + 5);
	assert_int_equal(rfcomm_frame_build(out, sizeof out, 2, true, RFCOMM_UIH, false, -1, big, RFCOMM_MAX_INFO + 1), 0);
	rfcomm_frame f;
	assert_int_equal(rfcomm_frame_parse(out, RFCOMM_MAX_INFO + 5, &f), 0);
	assert_int_equal(f.len, RFCOMM_MAX_INFO);
	assert_int_equal(rfcomm_mcc_build(out, sizeof out, RFCOMM_MCC_TEST, true, big, 16383), 16386);
	rfcomm_mcc m;
	assert_int_equal(rfcomm_mcc_parse(out, 16386, &m), 16386);
	assert_int_equal(m.len, 16383);
	assert_int_equal(rfcomm_mcc_build(out, sizeof out, RFCOMM_MCC_TEST, true, big, 16384), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fcs_vectors),
		cmocka_unit_test(test_build_known_frames),
		cmocka_unit_test(test_length_forms),
		cmocka_unit_test(test_credit_octet),
		cmocka_unit_test(test_malformed_frames),
		cmocka_unit_test(test_pn_vector),
		cmocka_unit_test(test_msc_vector),
		cmocka_unit_test(test_rpn_rls_nsc),
		cmocka_unit_test(test_mcc_framing),
		cmocka_unit_test(test_builders_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
