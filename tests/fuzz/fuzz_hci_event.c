/* fuzz_hci_event.c - arbitrary bytes as the H4 stream from the controller (Core spec Vol 4
 * Part A 2): the deframer, every event handler and ACL input, on a stack with one link up and
 * one open L2CAP channel so that data paths are reachable. */
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int accept_any(void *srv, l2cap_chan *ch, const l2cap_chan_ops **ops, void **ctx)
{
	static const l2cap_chan_ops none = { 0 };
	*ops = &none;
	*ctx = NULL;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	harness *h = harness_new(4);
	l2cap_listen(bt_stack_l2cap(harness_stack(h)), 0x1001, 672, accept_any, NULL);
	bt_addr peer = { { 1, 2, 3, 4, 5, 6 } };
	uint16_t handle = harness_link_up(h, &peer);
	harness_open_channel(h, handle, 0x1001, 0x0040, 672);
	harness_h4_in(h, data, size);
	harness_advance(h, 20000); /* every timer fires */
	harness_free(h);
	return 0;
}
