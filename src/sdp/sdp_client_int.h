/* sdp_client_int.h - a shorthand of the SDP client for unit tests and fuzzers: a query on the
 * transport-neutral interface of sdp.h whose first request goes out at once. */
#ifndef BTSOCK_SDP_CLIENT_INT_H
#define BTSOCK_SDP_CLIENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "sdp/sdp.h"

/* Sends one request PDU: 0, -EAGAIN (call sdp_query_writable() later) or -errno. */
typedef int (*sdp_query_send_fn)(void *ctx, const uint8_t *pdu, size_t len);

/* Creates a query and sends its first request at once through send. NULL (and no callback)
 * on a bad pattern, no memory or a failing first send. */
sdp_query *sdp_query_new_raw(bt_timers *timers, const sdp_query_params *p, sdp_query_cb cb, void *ctx,
			     sdp_query_send_fn send, void *send_ctx);

#endif
