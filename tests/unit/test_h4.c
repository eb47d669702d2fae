/* test_h4.c - the H4 deframer (src/transport/h4.h): packets split at every octet boundary
 * come out whole and in order, lengths come from each header (Core spec Vol 4 Part E 5.4),
 * an unknown indicator (Vol 4 Part A 2) and a packet longer than the buffer are errors with
 * a sentence, and nothing is read or written outside the buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/h4.h"

/* An event (Command Complete for HCI_Reset, 7.7.14), an ACL packet, a SCO packet, an ISO
 * packet with flags in the length's top bits, an event without parameters. */
static const uint8_t ev[] = { 0x04, 0x0e, 0x04, 0x01, 0x03, 0x0c, 0x00 };
static const uint8_t acl[] = { 0x02, 0x2a, 0x20, 0x05, 0x00, 0x01, 0x00, 0x40, 0x00, 0xaa };
static const uint8_t sco[] = { 0x03, 0x01, 0x00, 0x02, 0x11, 0x22 };
static const uint8_t iso[] = { 0x05, 0x01, 0x00, 0x01, 0x40, 0x99 };
static const uint8_t ev_empty[] = { 0x04, 0x1a, 0x00 };

static const uint8_t *const pkts[] = { ev, acl, sco, iso, ev_empty };
static const size_t lens[] = { sizeof ev, sizeof acl, sizeof sco, sizeof iso, sizeof ev_empty };
#define NPKTS (sizeof lens / sizeof lens[0])

typedef struct {
	size_t count;
	uint8_t got[256];
	size_t got_len;
} sink;

/* Feeds data in pieces of the given sizes (the last piece gets the rest), collecting every
 * packet; asserts no error. */
static void feed_split(h4_deframer *d, const uint8_t *data, size_t len, size_t cut, sink *s)
{
	size_t off = 0;
	while (off < len) {
		size_t piece = off < cut ? cut - off : len - off;
		const uint8_t *p = data + off;
		off += piece;
		while (piece) {
			size_t used;
			ssize_t r = h4_feed(d, p, piece, &used);
			assert_true(r >= 0);
			assert_true(used <= piece);
			p += used;
			piece -= used;
			if (r > 0) {
				assert_true(s->got_len + (size_t)r <= sizeof s->got);
				memcpy(s->got + s->got_len, d->buf, (size_t)r);
				s->got_len += (size_t)r;
				assert_int_equal((size_t)r, lens[s->count % NPKTS]);
				s->count++;
			}
		}
	}
}

/* Vol 4 Part A 2: the stream may be cut anywhere; each packet comes out whole. */
static void test_every_split(void **state)
{
	uint8_t stream[256];
	size_t len = 0;
	for (size_t i = 0; i < NPKTS; i++) {
		memcpy(stream + len, pkts[i], lens[i]);
		len += lens[i];
	}
	uint8_t buf[64];
	for (size_t cut = 0; cut <= len; cut++) {
		h4_deframer d;
		h4_init(&d, buf, sizeof buf);
		sink s = { 0 };
		feed_split(&d, stream, len, cut, &s);
		assert_int_equal(s.count, NPKTS);
		assert_int_equal(s.got_len, len);
		assert_memory_equal(s.got, stream, len);
	}
	/* One octet at a time. */
	h4_deframer d;
	h4_init(&d, buf, sizeof buf);
	sink s = { 0 };
	for (size_t i = 0; i < len; i++)
		feed_split(&d, stream + i, 1, 1, &s);
	assert_int_equal(s.count, NPKTS);
	assert_memory_equal(s.got, stream, len);
}

/* h4.h: a feed stops at the end of a packet; the rest is taken by the next call. */
static void test_one_packet_per_call(void **state)
{
	uint8_t two[sizeof ev + sizeof acl], buf[64];
	memcpy(two, ev, sizeof ev);
	memcpy(two + sizeof ev, acl, sizeof acl);
	h4_deframer d;
	h4_init(&d, buf, sizeof buf);
	size_t used;
	assert_int_equal(h4_feed(&d, two, sizeof two, &used), (ssize_t)sizeof ev);
	assert_int_equal(used, sizeof ev);
	assert_memory_equal(d.buf, ev, sizeof ev);
	assert_int_equal(h4_feed(&d, two + used, sizeof two - used, &used), (ssize_t)sizeof acl);
	assert_int_equal(used, sizeof acl);
	assert_memory_equal(d.buf, acl, sizeof acl);
	assert_int_equal(h4_feed(&d, two, 0, &used), 0);
	assert_int_equal(used, 0);
}

/* Vol 4 Part A 2: 0x00, 0x01 (a command: never sent by a controller) and 0x06..0xff are not
 * packets from a controller; the deframer stops with a sentence naming the octet. */
static void test_bad_indicator(void **state)
{
	uint8_t buf[64];
	const uint8_t bad[] = { 0x00, 0x01, 0x06, 0x07, 0x42, 0xff };
	for (size_t i = 0; i < sizeof bad; i++) {
		h4_deframer d;
		h4_init(&d, buf, sizeof buf);
		uint8_t stream[sizeof ev + 1];
		memcpy(stream, ev, sizeof ev);
		stream[sizeof ev] = bad[i];
		size_t used;
		assert_int_equal(h4_feed(&d, stream, sizeof stream, &used), (ssize_t)sizeof ev);
		assert_int_equal(h4_feed(&d, stream + used, 1, &used), -EPROTO);
		assert_int_equal(used, 1);
		char msg[128], want[8];
		h4_describe(&d, msg, sizeof msg);
		snprintf(want, sizeof want, "0x%02x", bad[i]);
		assert_non_null(strstr(msg, "unknown H4 packet indicator"));
		assert_non_null(strstr(msg, want));
		assert_non_null(strstr(msg, "Vol 4 Part A"));
		/* Sticky: nothing more is taken until a reset. */
		assert_int_equal(h4_feed(&d, ev, sizeof ev, &used), -EPROTO);
		assert_int_equal(used, 0);
		h4_reset(&d);
		assert_int_equal(h4_feed(&d, ev, sizeof ev, &used), (ssize_t)sizeof ev);
		assert_string_equal(h4_describe(&d, msg, sizeof msg), "");
	}
}

/* h4.h: a header announcing more than the buffer holds is an error as soon as the header is
 * complete, before any of the body is stored; at the full size every length fits. */
static void test_oversize(void **state)
{
	uint8_t small[16];
	h4_deframer d;
	h4_init(&d, small, sizeof small);
	const uint8_t big_acl[] = { 0x02, 0x2a, 0x20, 0x0c, 0x00 }; /* 1+4+12 = 17 > 16 */
	size_t used;
	assert_int_equal(h4_feed(&d, big_acl, sizeof big_acl, &used), -EMSGSIZE);
	assert_int_equal(used, sizeof big_acl);
	char msg[160];
	h4_describe(&d, msg, sizeof msg);
	assert_non_null(strstr(msg, "17 octets"));
	assert_non_null(strstr(msg, "0x02"));
	assert_non_null(strstr(msg, "16"));
	/* 1+4+11 fits exactly. */
	h4_reset(&d);
	uint8_t fits[16] = { 0x02, 0x2a, 0x20, 0x0b, 0x00 };
	assert_int_equal(h4_feed(&d, fits, sizeof fits, &used), 16);
	/* An event of 255 parameter octets, SCO of 255: too long for 16 as well. */
	const uint8_t big_ev[] = { 0x04, 0x0e, 0xff };
	h4_reset(&d);
	assert_int_equal(h4_feed(&d, big_ev, sizeof big_ev, &used), -EMSGSIZE);
	/* The full-size buffer takes the longest ACL packet (length 0xffff). */
	uint8_t *buf = malloc(H4_MAX_PACKET);
	uint8_t *stream = calloc(1, H4_MAX_PACKET);
	assert_non_null(buf);
	assert_non_null(stream);
	stream[0] = 0x02;
	stream[3] = 0xff;
	stream[4] = 0xff;
	h4_init(&d, buf, H4_MAX_PACKET);
	assert_int_equal(h4_feed(&d, stream, H4_MAX_PACKET, &used), H4_MAX_PACKET);
	free(stream);
	free(buf);
}

/* h4.h: h4_packet_len reads the header of a packet in either direction. */
static void test_packet_len(void **state)
{
	static const uint8_t reset[] = { 0x01, 0x03, 0x0c, 0x00 };
	assert_int_equal(h4_packet_len(reset, sizeof reset), 4);
	assert_int_equal(h4_packet_len(reset, 3), 0);
	assert_int_equal(h4_packet_len(reset, 0), 0);
	for (size_t i = 0; i < NPKTS; i++) {
		assert_int_equal(h4_packet_len(pkts[i], lens[i]), (ssize_t)lens[i]);
		assert_int_equal(h4_packet_len(pkts[i], 2), 0);
	}
	assert_int_equal(h4_packet_len((const uint8_t *)"\x09\x00\x00", 3), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_one_packet_per_call),
		cmocka_unit_test(test_bad_indicator),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_packet_len),
	};
	return cmocka_run_group_tests_name("h4", tests, NULL, NULL);
}
