/* h4.h - the H4 framing (Core spec Vol 4 Part A 2): each HCI packet travels as one packet
 * indicator octet followed by the packet, whose header gives its length (Vol 4 Part E 5.4).
 *
 * A pure state machine, shared by the byte-stream transports (unix:, tcp:, serial:): bytes in,
 * complete packets out, memory bounded by the caller's buffer. It takes what a controller
 * sends: ACL data (0x02, at most 1+4+65535 octets), SCO data (0x03, 1+3+255), events (0x04,
 * 1+2+255) and ISO data (0x05, 1+4+16383). Any other indicator octet is an error: H4 has no
 * way to find the next packet boundary once one is lost. */
#ifndef BTSOCK_TRANSPORT_H4_H
#define BTSOCK_TRANSPORT_H4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The largest H4 packet: indicator, ACL header, 65535 octets of data. */
#define H4_MAX_PACKET (1 + 4 + 65535)
/* ISO data packets (Vol 4 Part A 2; Vol 4 Part E 5.4.5). The others are in hci/hci.h. */
#define H4_ISO_IND 0x05

typedef struct {
	uint8_t *buf;   /* the caller's, cap octets: the packet being assembled */
	size_t cap;
	size_t have;    /* octets of the current packet in buf */
	size_t need;    /* octets the current packet has, as far as known (1, 1+header, all) */
	bool header;    /* the header is complete, need is final */
	bool done;      /* buf holds a complete packet, returned by the latest h4_feed */
	int err;        /* 0, -EPROTO (unknown indicator) or -EMSGSIZE (longer than cap) */
	uint8_t bad;    /* the unknown indicator */
	size_t bad_len; /* the length of the packet too long for cap */
} h4_deframer;

/* cap: the largest packet accepted (H4_MAX_PACKET takes any; less makes longer packets an
 * error). cap must be at least 5 (indicator and the longest header). */
void h4_init(h4_deframer *d, uint8_t *buf, size_t cap);
/* Forgets a partial packet and a failure: the next octet is an indicator again. */
void h4_reset(h4_deframer *d);
/* Takes octets from data until one packet is complete or data is used up; *used says how
 * many it took. Returns the complete packet's length (> 0; the packet, indicator first, is at
 * d->buf until the next call), 0 when data ended inside a packet, or the error (d->err): the
 * offending octet is counted in *used, and every later call takes nothing and returns the
 * error again until h4_reset. */
ssize_t h4_feed(h4_deframer *d, const uint8_t *data, size_t len, size_t *used);
/* The error as a sentence, e.g. "unknown H4 packet indicator 0x07 (Core spec Vol 4 Part A
 * 2)", into buf; "" when there is none. Returns buf. */
const char *h4_describe(const h4_deframer *d, char *buf, size_t cap);

/* Length of the whole packet that starts at p (indicator included) as its header says, for a
 * packet in either direction (0x01 commands too): > 0, 0 if avail does not hold the header
 * yet, or -EPROTO for an unknown indicator. For packet transports that get one packet per
 * datagram (the Linux user channel), to check it before anything reads it. */
ssize_t h4_packet_len(const uint8_t *p, size_t avail);

#endif
