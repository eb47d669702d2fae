/* test_sdp_data.c - SDP data elements and UUIDs (Core spec Vol 3 Part B 2.5 and 3): every type
 * and size form, malformed input, the encoder, UUID conversions. Each test names its section. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sdp/sdp_data.h"

typedef struct {
	const char *what;
	uint8_t bytes[24];
	size_t len;
	sdp_type type;
	uint32_t vlen;
} form;

/* Vol 3 Part B 3.2-3.3: each valid type / size index combination. */
static void test_every_type_and_size_form(void **state)
{
	static const form forms[] = {
		{ "nil", { 0x00 }, 1, SDP_NIL, 0 },
		{ "uint8", { 0x08, 0x12 }, 2, SDP_UINT, 1 },
		{ "uint16", { 0x09, 0x12, 0x34 }, 3, SDP_UINT, 2 },
		{ "uint32", { 0x0a, 1, 2, 3, 4 }, 5, SDP_UINT, 4 },
		{ "uint64", { 0x0b, 1, 2, 3, 4, 5, 6, 7, 8 }, 9, SDP_UINT, 8 },
		{ "uint128", { 0x0c, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 }, 17, SDP_UINT, 16 },
		{ "int8", { 0x10, 0xff }, 2, SDP_INT, 1 },
		{ "int16", { 0x11, 0x80, 0x00 }, 3, SDP_INT, 2 },
		{ "int32", { 0x12, 0xff, 0xff, 0xff, 0xfe }, 5, SDP_INT, 4 },
		{ "int64", { 0x13, 0, 0, 0, 0, 0, 0, 0, 5 }, 9, SDP_INT, 8 },
		{ "int128", { 0x14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 }, 17, SDP_INT, 16 },
		{ "uuid16", { 0x19, 0x11, 0x01 }, 3, SDP_UUID, 2 },
		{ "uuid32", { 0x1a, 0, 0, 0x11, 0x01 }, 5, SDP_UUID, 4 },
		{ "uuid128", { 0x1c, 0, 0, 0x11, 0x01, 0, 0, 0x10, 0, 0x80, 0, 0, 0x80, 0x5f, 0x9b, 0x34, 0xfb }, 17, SDP_UUID, 16 },
		{ "text8", { 0x25, 3, 'a', 'b', 'c' }, 5, SDP_TEXT, 3 },
		{ "text16", { 0x26, 0, 3, 'a', 'b', 'c' }, 6, SDP_TEXT, 3 },
		{ "text32", { 0x27, 0, 0, 0, 3, 'a', 'b', 'c' }, 8, SDP_TEXT, 3 },
		{ "bool", { 0x28, 0x01 }, 2, SDP_BOOL, 1 },
		{ "seq8", { 0x35, 3, 0x09, 0x01, 0x00 }, 5, SDP_SEQ, 3 },
		{ "seq16", { 0x36, 0, 3, 0x09, 0x01, 0x00 }, 6, SDP_SEQ, 3 },
		{ "seq32", { 0x37, 0, 0, 0, 3, 0x09, 0x01, 0x00 }, 8, SDP_SEQ, 3 },
		{ "alt8", { 0x3d, 2, 0x08, 0x01 }, 4, SDP_ALT, 2 },
		{ "alt16", { 0x3e, 0, 2, 0x08, 0x01 }, 5, SDP_ALT, 2 },
		{ "alt32", { 0x3f, 0, 0, 0, 2, 0x08, 0x01 }, 7, SDP_ALT, 2 },
		{ "url8", { 0x45, 1, 'x' }, 3, SDP_URL, 1 },
		{ "url16", { 0x46, 0, 1, 'x' }, 4, SDP_URL, 1 },
		{ "url32", { 0x47, 0, 0, 0, 1, 'x' }, 6, SDP_URL, 1 },
	};
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		const form *f = &forms[i];
		sdp_elem e;
		/* extra trailing byte: total must still be exact */
		uint8_t buf[32];
		memcpy(buf, f->bytes, f->len);
		buf[f->len] = 0xee;
		if (sdp_elem_validate(buf, f->len + 1, 0, &e) != 0)
			fail_msg("%s rejected", f->what);
		assert_int_equal(e.type, f->type);
		assert_int_equal(e.len, f->vlen);
		assert_int_equal(e.total, f->len);
		/* one byte short: rejected */
		assert_int_equal(sdp_elem_validate(buf, f->len - 1, 0, &e), f->len == 1 ? -EBADMSG : -EBADMSG);
	}
}

/* Vol 3 Part B 3.2: values of the fixed-size types, big-endian, ints two's complement. */
static void test_values(void **state)
{
	sdp_elem e;
	uint64_t u;
	int64_t s;
	bool b;
	char txt[8];
	static const uint8_t u16[] = { 0x09, 0x12, 0x34 };
	assert_int_equal(sdp_elem_parse(u16, sizeof u16, &e), 0);
	assert_int_equal(sdp_elem_uint(&e, &u), 0);
	assert_int_equal(u, 0x1234);
	assert_int_equal(sdp_elem_int(&e, &s), -EINVAL);
	static const uint8_t u64[] = { 0x0b, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 };
	sdp_elem_parse(u64, sizeof u64, &e);
	sdp_elem_uint(&e, &u);
	assert_true(u == 0x0102030405060708ull);
	static const uint8_t i8[] = { 0x10, 0xff };
	sdp_elem_parse(i8, sizeof i8, &e);
	assert_int_equal(sdp_elem_int(&e, &s), 0);
	assert_int_equal(s, -1);
	static const uint8_t i16[] = { 0x11, 0x80, 0x00 };
	sdp_elem_parse(i16, sizeof i16, &e);
	sdp_elem_int(&e, &s);
	assert_int_equal(s, -32768);
	static const uint8_t i32[] = { 0x12, 0x7f, 0xff, 0xff, 0xff };
	sdp_elem_parse(i32, sizeof i32, &e);
	sdp_elem_int(&e, &s);
	assert_int_equal(s, 0x7fffffff);
	static const uint8_t u128[17] = { 0x0c };
	sdp_elem_parse(u128, sizeof u128, &e);
	assert_int_equal(sdp_elem_uint(&e, &u), -EINVAL); /* does not fit 64 bits */
	static const uint8_t bl[] = { 0x28, 0x00 };
	sdp_elem_parse(bl, sizeof bl, &e);
	assert_int_equal(sdp_elem_bool(&e, &b), 0);
	assert_false(b);
	static const uint8_t t[] = { 0x25, 0x05, 'h', 'e', 'l', 'l', 'o' };
	sdp_elem_parse(t, sizeof t, &e);
	assert_int_equal(sdp_elem_text(&e, txt, sizeof txt), 5);
	assert_string_equal(txt, "hello");
	assert_int_equal(sdp_elem_text(&e, txt, 3), 2); /* truncated with NUL */
	assert_string_equal(txt, "he");
}

/* Vol 3 Part B 3.2 Table 3.1: type/size combinations the spec does not allow. */
static void test_invalid_descriptors(void **state)
{
	static const uint8_t bad[][3] = {
		{ 0x01, 0, 0 }, /* nil with size index 1 */
		{ 0x29, 0, 0 }, /* bool with size index 1 */
		{ 0x18, 0, 0 }, /* UUID of 1 byte */
		{ 0x1b, 0, 0 }, /* UUID of 8 bytes */
		{ 0x20, 0, 0 }, /* text with a fixed size */
		{ 0x34, 0, 0 }, /* sequence with a fixed size */
		{ 0x0d, 0, 0 }, /* uint with a length field */
		{ 0x48, 0, 0 }, /* type 9: reserved */
		{ 0xf8, 0, 0 }, /* type 31: reserved */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sdp_elem e;
		uint8_t buf[32] = { 0 };
		buf[0] = bad[i][0];
		if (sdp_elem_parse(buf, sizeof buf, &e) != -EBADMSG)
			fail_msg("descriptor 0x%02x accepted", bad[i][0]);
	}
}

/* Vol 3 Part B 3.3: lengths that point past the buffer or the parent. */
static void test_malformed(void **state)
{
	sdp_elem e;
	static const uint8_t trunc_fixed[] = { 0x0a, 0x00, 0x01 };          /* uint32 with 2 bytes */
	static const uint8_t trunc_lenfield[] = { 0x36, 0x00 };             /* 16-bit length cut */
	static const uint8_t past_end[] = { 0x35, 0x05, 0x09, 0x00 };       /* seq of 5, 2 there */
	static const uint8_t child_past[] = { 0x35, 0x02, 0x09, 0x00, 0x01 }; /* child needs 3 */
	static const uint8_t huge[] = { 0x27, 0xff, 0xff, 0xff, 0xff, 'a' };
	static const uint8_t empty[1] = { 0 };
	assert_int_equal(sdp_elem_validate(trunc_fixed, sizeof trunc_fixed, 0, &e), -EBADMSG);
	assert_int_equal(sdp_elem_validate(trunc_lenfield, sizeof trunc_lenfield, 0, &e), -EBADMSG);
	assert_int_equal(sdp_elem_validate(past_end, sizeof past_end, 0, &e), -EBADMSG);
	assert_int_equal(sdp_elem_validate(child_past, sizeof child_past, 0, &e), -EBADMSG);
	assert_int_equal(sdp_elem_validate(huge, sizeof huge, 0, &e), -EBADMSG);
	assert_int_equal(sdp_elem_validate(empty, 0, 0, &e), -EBADMSG);
	/* The iterator stops at a bad child and reports it. */
	assert_int_equal(sdp_elem_parse(child_past, sizeof child_past, &e), 0);
	sdp_iter it;
	sdp_elem c;
	assert_int_equal(sdp_iter_init(&it, &e), 0);
	assert_int_equal(sdp_iter_next(&it, &c), -EBADMSG);
	assert_int_equal(sdp_iter_next(&it, &c), 0);
}

/* Nesting beyond SDP_MAX_DEPTH (our cap on Vol 3 Part B 3.3 sequences of sequences). */
static void test_depth_cap(void **state)
{
	uint8_t buf[64];
	sdp_elem e;
	/* depth d: d sequences, innermost holding a nil */
	for (int d = SDP_MAX_DEPTH - 1; d <= SDP_MAX_DEPTH + 1; d++) {
		size_t n = 0;
		for (int i = 0; i < d; i++) {
			buf[n++] = 0x35;
			buf[n++] = (uint8_t)(2 * (d - i - 1) + 1);
		}
		buf[n++] = 0x00;
		int want = d + 1 <= SDP_MAX_DEPTH ? 0 : -EBADMSG; /* the nil is one level deeper */
		if (sdp_elem_validate(buf, n, 0, &e) != want)
			fail_msg("depth %d", d + 1);
	}
	static const uint8_t two[] = { 0x35, 0x02, 0x35, 0x00 };
	assert_int_equal(sdp_elem_validate(two, sizeof two, 1, &e), -EBADMSG);
	assert_int_equal(sdp_elem_validate(two, sizeof two, 2, &e), 0);
}

/* Vol 3 Part B 3: the encoder writes the forms the decoder reads. */
static void test_encoder(void **state)
{
	uint8_t buf[64];
	sdp_writer w;
	sdp_w_init(&w, buf, sizeof buf);
	size_t m = sdp_w_seq_begin(&w);
	sdp_w_nil(&w);
	sdp_w_bool(&w, true);
	sdp_w_uint8(&w, 0x12);
	sdp_w_uint16(&w, 0x1234);
	sdp_w_uint32(&w, 0x12345678);
	sdp_w_int8(&w, -2);
	sdp_w_int16(&w, -3);
	sdp_uuid u = sdp_uuid16(0x1101);
	sdp_w_uuid(&w, &u);
	sdp_w_text(&w, "hi", 2);
	sdp_w_url(&w, "u", 1);
	size_t a = sdp_w_alt_begin(&w);
	sdp_w_uint8(&w, 1);
	sdp_w_alt_end(&w, a);
	sdp_w_seq_end(&w, m);
	static const uint8_t want[] = { 0x35, 32, 0x00, 0x28, 0x01, 0x08, 0x12, 0x09, 0x12, 0x34, 0x0a,
					0x12, 0x34, 0x56, 0x78, 0x10, 0xfe, 0x11, 0xff, 0xfd, 0x19,
					0x11, 0x01, 0x25, 0x02, 'h', 'i', 0x45, 0x01, 'u', 0x3d, 0x02,
					0x08, 0x01 };
	assert_int_equal(sdp_w_finish(&w), sizeof want);
	assert_memory_equal(buf, want, sizeof want);
	sdp_elem e;
	assert_int_equal(sdp_elem_validate(buf, sizeof want, 0, &e), 0);

	/* No room: -ENOSPC, never a write past the buffer. */
	uint8_t small[4];
	memset(small, 0xaa, sizeof small);
	sdp_w_init(&w, small, 3);
	sdp_w_uint32(&w, 1);
	assert_int_equal(sdp_w_finish(&w), -ENOSPC);
	assert_int_equal(small[0], 0xaa);
	/* counting mode */
	sdp_w_init(&w, NULL, 0);
	sdp_w_text(&w, "abc", 3);
	assert_int_equal(sdp_w_finish(&w), 5);
}

/* Vol 3 Part B 3.3: the length field grows to 16 and 32 bits when needed. */
static void test_encoder_long_sequences(void **state)
{
	size_t cap = 70000;
	uint8_t *buf = malloc(cap);
	char *text = calloc(1, 66000);
	memset(text, 'x', 65999);
	sdp_writer w;
	sdp_w_init(&w, buf, cap);
	size_t m = sdp_w_seq_begin(&w);
	sdp_w_text(&w, text, 300);
	sdp_w_seq_end(&w, m);
	assert_int_equal(buf[0], 0x36);
	assert_int_equal(buf[1] << 8 | buf[2], 303);
	assert_int_equal(buf[3], 0x26);
	sdp_elem e;
	assert_int_equal(sdp_elem_validate(buf, (size_t)sdp_w_finish(&w), 0, &e), 0);

	sdp_w_init(&w, buf, cap);
	m = sdp_w_seq_begin(&w);
	sdp_w_text(&w, text, 65999);
	sdp_w_seq_end(&w, m);
	assert_int_equal(buf[0], 0x37);
	assert_int_equal(sdp_w_finish(&w), 5 + 5 + 65999);
	assert_int_equal(sdp_elem_validate(buf, (size_t)sdp_w_finish(&w), 0, &e), 0);
	assert_int_equal(e.len, 5 + 65999);

	/* widening the header when the buffer is exactly full fails cleanly */
	sdp_w_init(&w, buf, 2 + 3 + 300);
	m = sdp_w_seq_begin(&w);
	sdp_w_text(&w, text, 300);
	sdp_w_seq_end(&w, m);
	assert_int_equal(sdp_w_finish(&w), -ENOSPC);
	free(text);
	free(buf);
}

/* Vol 3 Part B 2.5.1: 16/32-bit UUIDs are shorthand over the Bluetooth Base UUID. */
static void test_uuid_sizes(void **state)
{
	static const uint8_t spp[16] = { 0x00, 0x00, 0x11, 0x01, 0x00, 0x00, 0x10, 0x00,
					 0x80, 0x00, 0x00, 0x80, 0x5f, 0x9b, 0x34, 0xfb };
	sdp_uuid a = sdp_uuid16(0x1101), b = sdp_uuid32(0x00001101), c = sdp_uuid128(spp);
	assert_memory_equal(a.v, spp, 16);
	assert_true(sdp_uuid_eq(&a, &b));
	assert_true(sdp_uuid_eq(&a, &c));
	sdp_uuid d = sdp_uuid16(0x1102);
	assert_false(sdp_uuid_eq(&a, &d));
	uint32_t s;
	assert_true(sdp_uuid_short(&c, &s));
	assert_int_equal(s, 0x1101);
	uint8_t custom[16] = { 0x12, 0x34 };
	sdp_uuid e = sdp_uuid128(custom);
	assert_false(sdp_uuid_short(&e, &s));

	/* The three wire sizes of one UUID decode equal. */
	static const uint8_t w16[] = { 0x19, 0x11, 0x01 };
	static const uint8_t w32[] = { 0x1a, 0x00, 0x00, 0x11, 0x01 };
	sdp_elem el;
	sdp_uuid x, y;
	sdp_elem_parse(w16, sizeof w16, &el);
	sdp_elem_uuid(&el, &x);
	sdp_elem_parse(w32, sizeof w32, &el);
	sdp_elem_uuid(&el, &y);
	assert_true(sdp_uuid_eq(&x, &y));
	assert_int_equal(x.len, 2);
	assert_int_equal(y.len, 4);
}

/* Vol 3 Part B 2.5.1: text forms of UUIDs. */
static void test_uuid_text(void **state)
{
	sdp_uuid u;
	char s[SDP_UUID_STRLEN];
	assert_int_equal(sdp_uuid_parse("0x1101", &u), 0);
	assert_int_equal(u.len, 2);
	assert_string_equal(sdp_uuid_format(&u, s), "1101");
	assert_string_equal(sdp_uuid_format128(&u, s), "00001101-0000-1000-8000-00805F9B34FB");
	assert_int_equal(sdp_uuid_parse("1101", &u), 0);
	sdp_uuid spp = sdp_uuid16(0x1101);
	assert_true(sdp_uuid_eq(&u, &spp));
	assert_int_equal(sdp_uuid_parse("00001101-0000-1000-8000-00805f9b34fb", &u), 0);
	assert_int_equal(u.len, 16);
	assert_true(sdp_uuid_eq(&u, &spp));
	assert_string_equal(sdp_uuid_format(&u, s), "00001101-0000-1000-8000-00805F9B34FB");
	assert_int_equal(sdp_uuid_parse("0x0000110A", &u), 0);
	assert_int_equal(u.len, 4);
	assert_string_equal(sdp_uuid_format(&u, s), "0000110A");
	assert_int_equal(sdp_uuid_parse("94f39d297d6d437d973bfba39e49d4ee", &u), 0);
	assert_string_equal(sdp_uuid_format(&u, s), "94F39D29-7D6D-437D-973B-FBA39E49D4EE");
	assert_int_equal(sdp_uuid_parse("110", &u), -EINVAL);
	assert_int_equal(sdp_uuid_parse("11011", &u), -EINVAL);
	assert_int_equal(sdp_uuid_parse("xyzw", &u), -EINVAL);
	assert_int_equal(sdp_uuid_parse("00001101_0000-1000-8000-00805F9B34FB", &u), -EINVAL);
	assert_int_equal(sdp_uuid_parse("", &u), -EINVAL);
	assert_int_equal(sdp_uuid_parse(NULL, &u), -EINVAL);
	/* the encoder keeps the size */
	uint8_t b[20];
	sdp_writer w;
	sdp_uuid_parse("0x0000110A", &u);
	sdp_w_init(&w, b, sizeof b);
	sdp_w_uuid(&w, &u);
	assert_int_equal(sdp_w_finish(&w), 5);
	assert_int_equal(b[0], 0x1a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_type_and_size_form),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_invalid_descriptors),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_depth_cap),
		cmocka_unit_test(test_encoder),
		cmocka_unit_test(test_encoder_long_sequences),
		cmocka_unit_test(test_uuid_sizes),
		cmocka_unit_test(test_uuid_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
