/* sdp_server_int.h - internals of the SDP server exposed for unit tests and fuzzers. */
#ifndef BTSOCK_SDP_SERVER_INT_H
#define BTSOCK_SDP_SERVER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "sdp/sdp.h"

/* Answers one request PDU (header included) as the server would on a channel whose peer MTU
 * is mtu: writes the response PDU (at most min(mtu, cap) bytes) to rsp. Returns its length,
 * 0 if no answer at all is possible (min(mtu, cap) below 7 bytes). */
int sdp_server_handle_pdu(sdp_server *s, const uint8_t *req, size_t len, uint16_t mtu, uint8_t *rsp,
			  size_t cap);

#endif
