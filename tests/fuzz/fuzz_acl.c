/* fuzz_acl.c - ACL reassembly (Core spec Vol 4 Part E 5.4.2, Vol 3 Part A 7.2): the input is a
 * series of ACL packets [pb flags | len | payload] on a live link with an open channel, so
 * start/continuation fragments, lengths that disagree with the L2CAP header, and oversized
 * PDUs are all exercised. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/bytes.h"
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t sink;

static void on_data(void *c, l2cap_chan *ch, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) /* touch every byte: ASan sees any over-read */
		sink ^= p[i];
}
static const l2cap_chan_ops ops = { .data = on_data };

static int accept_any(void *srv, l2cap_chan *ch, const l2cap_chan_ops **o, void **ctx)
{
	*o = &ops;
	*ctx = NULL;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	harness *h = harness_new(4);
	l2cap_listen(bt_stack_l2cap(harness_stack(h)), 0x1001, 1000, accept_any, NULL);
	bt_addr peer = { { 1, 2, 3, 4, 5, 6 } };
	uint16_t handle = harness_link_up(h, &peer);
	harness_open_channel(h, handle, 0x1001, 0x0040, 1000);
	size_t off = 0;
	while (off + 2 <= size) {
		uint8_t pb = data[off] & 0x3;
		size_t n = data[off + 1];
		off += 2;
		if (n > size - off)
			n = size - off;
		uint8_t pkt[5 + 255];
		pkt[0] = 0x02;
		put_le16(pkt + 1, (uint16_t)(handle | pb << 12));
		put_le16(pkt + 3, (uint16_t)n);
		memcpy(pkt + 5, data + off, n);
		harness_h4_in(h, pkt, 5 + n);
		off += n;
	}
	harness_free(h);
	return 0;
}
