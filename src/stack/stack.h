/* stack.h - one complete host stack as a value: HCI, L2CAP, RFCOMM, SDP and GAP wired
 * together over one controller. No globals: a process may hold any number of stacks.
 *
 * The stack does no I/O and reads no clock. Its driver (the socket runtime, a test, a fuzzer)
 * - passes each complete packet received from the controller ([H4 indicator][HCI packet], as
 *   bt_transport_recv() gives them) to bt_stack_packet(),
 * - sends the H4 packets the stack hands to config.send,
 * - calls bt_stack_run_timers() when bt_stack_next_deadline() has passed,
 * passing the current monotonic time in milliseconds each time. Calls into a layer's API
 * (l2cap_connect, rfcomm_write, ...) arm timers relative to the time of the latest entry, so a
 * driver that has been idle calls bt_stack_run_timers(s, now) first to bring the clock up to
 * date. */
#ifndef BTSOCK_STACK_H
#define BTSOCK_STACK_H

#include <stddef.h>
#include <stdint.h>

#include "core/timer.h"
#include "hci/hci.h"
#include "l2cap/l2cap.h"
#include "rfcomm/rfcomm.h"

typedef struct bt_stack bt_stack;
typedef struct gap gap;
typedef struct sdp_server sdp_server;

typedef struct {
	void *ctx;
	/* One H4 packet (indicator first) for the controller. */
	void (*send)(void *ctx, const uint8_t *pkt, size_t len);
	/* Optional: every complete H4 packet received from the controller (for btsnoop). */
	void (*trace_in)(void *ctx, const uint8_t *pkt, size_t len);
	/* Initialisation finished (0) or failed (-errno; bt_stack_error() says why). */
	void (*ready)(void *ctx, int err);
	/* The controller is unusable (a command unanswered: -ETIMEDOUT; a Hardware Error: -EIO;
	 * bt_stack_error() says which). Right after this call every link goes down, so every
	 * channel's owner is told closed(-ENETDOWN) through its normal callback. */
	void (*fatal)(void *ctx, int err);
	hci_config hci;
	l2cap_config l2cap;
	rfcomm_config rfcomm;
} bt_stack_config;

bt_stack *bt_stack_new(const bt_stack_config *cfg, uint64_t now);
void bt_stack_free(bt_stack *s);
/* Starts controller initialisation; config.ready follows. */
void bt_stack_start(bt_stack *s, uint64_t now);
/* One complete packet from the controller, H4 indicator first (hci_packet). */
void bt_stack_packet(bt_stack *s, const uint8_t *pkt, size_t len, uint64_t now);
void bt_stack_run_timers(bt_stack *s, uint64_t now);
uint64_t bt_stack_next_deadline(const bt_stack *s);
const char *bt_stack_error(const bt_stack *s);
/* Whether everything the layers were given to send has reached the controller and been
 * completed by it (a graceful close waits for this). */
bool bt_stack_tx_idle(const bt_stack *s);
/* Whether an RFCOMM peer streams to us (rfcomm_rx_streaming). */
bool bt_stack_rx_streaming(const bt_stack *s);

hci *bt_stack_hci(bt_stack *s);
l2cap *bt_stack_l2cap(bt_stack *s);
rfcomm *bt_stack_rfcomm(bt_stack *s);
gap *bt_stack_gap(bt_stack *s);
sdp_server *bt_stack_sdp(bt_stack *s);
bt_timers *bt_stack_timers(bt_stack *s);

#endif
