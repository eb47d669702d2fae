/* test_bytes.c - the bounded reader and writer of src/core/bytes.h: nothing is read or written
 * past the end, and a short read or write is sticky. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/bytes.h"

static void test_writer_fields(void **state)
{
	uint8_t buf[16];
	bt_writer w = bt_writer_init(buf, sizeof buf);
	bt_write_u8(&w, 0x01);
	bt_write_le16(&w, 0x0302);
	bt_write_be16(&w, 0x0405);
	bt_write_le32(&w, 0x09080706);
	bt_write_be32(&w, 0x0a0b0c0d);
	bt_write_bytes(&w, "\x0e\x0f", 2);
	bt_write_zeros(&w, 1);
	assert_false(w.err);
	assert_int_equal(bt_writer_len(&w), 16);
	assert_int_equal(bt_writer_room(&w), 0);
	const uint8_t want[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0 };
	assert_memory_equal(buf, want, 16);
}

/* A write that does not fit writes nothing at all, marks the writer, and every later write is
 * refused even if it would fit: the answer is whole or not sent. */
static void test_writer_overflow_is_sticky(void **state)
{
	uint8_t buf[8 + 4];
	memset(buf, 0xAA, sizeof buf);
	bt_writer w = bt_writer_init(buf, 8);
	bt_write_le32(&w, 0x11223344);
	bt_write_bytes(&w, "abcdefgh", 8); /* 4 bytes of room: refused whole */
	assert_true(w.err);
	assert_int_equal(bt_writer_len(&w), 4);
	bt_write_u8(&w, 0x55); /* would fit, but the answer is already broken */
	assert_int_equal(bt_writer_len(&w), 4);
	assert_int_equal(bt_writer_room(&w), 0);
	assert_null(bt_write_reserve(&w, 1));
	for (size_t i = 4; i < sizeof buf; i++)
		assert_int_equal(buf[i], 0xAA);
}

static void test_writer_reserve_and_zero_cap(void **state)
{
	uint8_t buf[4];
	bt_writer w = bt_writer_init(buf, sizeof buf);
	uint8_t *len = bt_write_reserve(&w, 2);
	assert_non_null(len);
	bt_write_u8(&w, 7);
	put_le16(len, (uint16_t)(bt_writer_len(&w) - 2));
	assert_int_equal(get_le16(buf), 1);
	bt_writer z = bt_writer_init(NULL, 0);
	bt_write_bytes(&z, NULL, 0); /* an empty write always fits */
	assert_false(z.err);
	bt_write_u8(&z, 1);
	assert_true(z.err);
}

static void test_reader_bounds(void **state)
{
	const uint8_t p[3] = { 1, 2, 3 };
	bt_reader r = bt_reader_init(p, sizeof p);
	assert_int_equal(bt_read_le16(&r), 0x0201);
	assert_null(bt_read_bytes(&r, 2));
	assert_true(r.err);
	assert_int_equal(bt_read_u8(&r), 0); /* sticky: the byte that is there is not read */
	assert_int_equal(bt_reader_left(&r), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writer_fields),
		cmocka_unit_test(test_writer_overflow_is_sticky),
		cmocka_unit_test(test_writer_reserve_and_zero_cap),
		cmocka_unit_test(test_reader_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
