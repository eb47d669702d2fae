/* fuzz_l2cap_sig.c - L2CAP signalling (Core spec Vol 3 Part A 4): the input is a series of
 * C-frames [len | bytes] on CID 0x0001 of a live link, with a listener on PSM 0x1001 so that
 * connection and configuration state machines are reachable. */
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_closed(void *c, l2cap_chan *ch, int err) { l2cap_close(ch); }
static const l2cap_chan_ops ops = { .closed = on_closed };

static int accept_any(void *srv, l2cap_chan *ch, const l2cap_chan_ops **o, void **ctx)
{
	*o = &ops;
	*ctx = NULL;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	harness *h = harness_new(4);
	l2cap_listen(bt_stack_l2cap(harness_stack(h)), 0x1001, 672, accept_any, NULL);
	bt_addr peer = { { 1, 2, 3, 4, 5, 6 } };
	uint16_t handle = harness_link_up(h, &peer);
	size_t off = 0;
	while (off + 1 <= size) {
		size_t n = data[off++];
		if (n > size - off)
			n = size - off;
		harness_l2cap_in(h, handle, 0x0001, data + off, n);
		off += n;
	}
	harness_advance(h, 70000);
	harness_free(h);
	return 0;
}
