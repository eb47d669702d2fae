/* test_sdp_text.c - the readable account of SDP records (src/sdp/sdp_text.c) and the record
 * encoder it is fed from: a PyBluez-style service record (Core spec Vol 3 Part B 5.1) printed
 * exactly, text from the air escaped, odd elements printed, and snprintf-style truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sdp/sdp_record.h"
#include "sdp/sdp_text.h"

static sdp_record *sample(void)
{
	static const uint8_t u128[16] = { 0x94, 0xf3, 0x9d, 0x29, 0x7d, 0x6d, 0x43, 0x7d,
					  0x97, 0x3b, 0xfb, 0xa3, 0x9e, 0x49, 0xd4, 0xee };
	sdp_uuid id = sdp_uuid128(u128);
	sdp_uuid classes[2] = { id, sdp_uuid16(SDP_UUID_SERIAL_PORT) };
	sdp_profile prof = { sdp_uuid16(SDP_UUID_SERIAL_PORT), 0x0102 };
	sdp_service_desc d = { .name = "SampleServer", .provider = "btsock", .service_id = &id,
			       .classes = classes, .n_classes = 2, .profiles = &prof, .n_profiles = 1,
			       .rfcomm_channel = 3 };
	sdp_record *r = sdp_record_new();
	assert_int_equal(sdp_record_build_service(r, &d), 0);
	assert_int_equal(sdp_record_set_handle(r, 0x10004), 0);
	return r;
}

static void test_service_record_text(void **state)
{
	sdp_record *r = sample();
	char out[2048];
	size_t n = sdp_record_describe(r, out, sizeof out);
	assert_int_equal(n, strlen(out));
	assert_string_equal(out, "Service Name: \"SampleServer\"\n"
				 "Service Provider: \"btsock\"\n"
				 "Service RecHandle: 0x10004\n"
				 "Service Class ID List:\n"
				 "  UUID 94F39D29-7D6D-437D-973B-FBA39E49D4EE\n"
				 "  \"Serial Port\" (0x1101)\n"
				 "Service ID: UUID 94F39D29-7D6D-437D-973B-FBA39E49D4EE\n"
				 "Protocol Descriptor List:\n"
				 "  \"L2CAP\" (0x0100)\n"
				 "  \"RFCOMM\" (0x0003)\n"
				 "    Channel: 3\n"
				 "Browse Group List:\n"
				 "  \"Public Browse Group\" (0x1002)\n"
				 "Language Base Attr List: { uint16 0x656e, uint16 0x006a, uint16 0x0100 }\n"
				 "Profile Descriptor List:\n"
				 "  \"Serial Port\" (0x1101)\n"
				 "    Version: 0x0102\n");
	/* Truncation: the full length is still returned, the buffer ends in a NUL. */
	char small[16];
	assert_int_equal(sdp_record_describe(r, small, sizeof small), n);
	assert_int_equal(strlen(small), sizeof small - 1);
	assert_memory_equal(small, out, sizeof small - 1);
	assert_int_equal(sdp_record_describe(r, NULL, 0), n);
	sdp_record_free(r);
}

/* Encoding a record and reading it back gives the same attributes (Vol 3 Part B 4.7.2). */
static void test_encode_round_trip(void **state)
{
	sdp_record *r = sample();
	size_t need = sdp_record_encode(r, NULL, 0);
	uint8_t *buf = malloc(need);
	assert_int_equal(sdp_record_encode(r, buf, need - 1), need); /* too small: nothing written */
	assert_int_equal(sdp_record_encode(r, buf, need), need);
	sdp_elem top;
	assert_int_equal(sdp_elem_validate(buf, need, 0, &top), 0);
	assert_int_equal(top.total, need);
	sdp_record *back;
	assert_int_equal(sdp_record_from_attr_list(&top, &back), 0);
	assert_int_equal(back->n, r->n);
	assert_int_equal(back->handle, 0x10004);
	for (size_t i = 0; i < r->n; i++) {
		assert_int_equal(back->attrs[i].id, r->attrs[i].id);
		assert_int_equal(back->attrs[i].len, r->attrs[i].len);
		assert_memory_equal(back->attrs[i].val, r->attrs[i].val, r->attrs[i].len);
	}
	sdp_record_free(back);
	sdp_record_free(r);
	free(buf);
}

/* Text from a peer reaches the terminal escaped; other element types print by kind. */
static void test_hostile_text_and_other_types(void **state)
{
	sdp_record *r = sdp_record_new();
	uint8_t name[] = { 0x25, 6, 'a', 0x1b, '[', '2', 'J', '"' }; /* ESC[2J and a quote */
	assert_int_equal(sdp_record_set(r, 0x0100, name, sizeof name), 0);
	uint8_t misc[] = { 0x35, 13,
			   0x00,                   /* nil */
			   0x28, 1,                /* bool true */
			   0x10, 0xff,             /* int8 -1 */
			   0x45, 3, 'x', ':', '/', /* URL */
			   0x19, 0x12, 0x34 };     /* UUID16 not in the table */
	assert_int_equal(sdp_record_set(r, 0x0300, misc, sizeof misc), 0);
	char out[512];
	sdp_record_describe(r, out, sizeof out);
	assert_string_equal(out, "Service Name: \"a\\x1b[2J\\\"\"\n"
				 "Service RecHandle: 0x0\n"
				 "Attribute 0x0300: { nil, true, int8 -1, url \"x:/\", UUID 1234 }\n");
	sdp_record_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_service_record_text),
		cmocka_unit_test(test_encode_round_trip),
		cmocka_unit_test(test_hostile_text_and_other_types),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
