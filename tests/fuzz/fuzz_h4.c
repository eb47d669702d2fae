/* fuzz_h4.c - the H4 deframer (src/transport/h4.c, Core spec Vol 4 Part A 2) on arbitrary
 * streams. Octet 0 picks the buffer size (5 .. 260, or the full H4_MAX_PACKET when 0) so
 * that over-long packets are reached too, octet 1 the size of the pieces the rest is fed in.
 * Every packet handed out must be exactly as long as its header says and fit the buffer; a
 * failure must stick until h4_reset; ASan sees any access outside the buffers. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/h4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_packet(const h4_deframer *d, ssize_t n)
{
	if ((size_t)n > d->cap || h4_packet_len(d->buf, (size_t)n) != n || d->buf[0] == 0x01)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t cap = data[0] ? 4u + data[0] : H4_MAX_PACKET;
	size_t piece = 1u + data[1];
	data += 2;
	size -= 2;
	uint8_t *buf = malloc(cap); /* exactly cap: ASan catches a write past it */
	h4_deframer d;
	h4_init(&d, buf, cap);
	while (size) {
		size_t len = size < piece ? size : piece;
		const uint8_t *p = data;
		data += len;
		size -= len;
		while (len) {
			size_t used;
			ssize_t n = h4_feed(&d, p, len, &used);
			if (used > len)
				abort();
			p += used;
			len -= used;
			if (n > 0) {
				check_packet(&d, n);
			} else if (n < 0) {
				if (h4_feed(&d, p, len, &used) != n || used != 0)
					abort(); /* sticky */
				h4_reset(&d);
			} else if (len) {
				abort(); /* 0 only when the piece is used up */
			}
		}
	}
	free(buf);
	return 0;
}
