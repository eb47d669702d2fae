/* h4.c - see h4.h. Indicators: Core spec Vol 4 Part A 2. Headers: Vol 4 Part E 5.4.1
 * (command: opcode 2, length 1), 5.4.2 (ACL: handle and flags 2, length 2), 5.4.3 (SCO:
 * handle and flags 2, length 1), 5.4.4 (event: code 1, length 1), 5.4.5 (ISO: handle and
 * flags 2, length 14 bits of 2). */
#include "transport/h4.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/bytes.h"
#include "hci/hci.h"

/* Header length for an indicator, 0 if unknown. cmd: whether 0x01 counts. */
static size_t header_len(uint8_t ind, bool cmd)
{
	switch (ind) {
	case H4_CMD: return cmd ? 3 : 0;
	case H4_ACL: return 4;
	case H4_SCO: return 3;
	case H4_EVT: return 2;
	case H4_ISO_IND: return 4;
	default: return 0;
	}
}

/* Body length from a complete header h (after the indicator). */
static size_t body_len(uint8_t ind, const uint8_t *h)
{
	switch (ind) {
	case H4_ACL: return get_le16(h + 2);
	case H4_ISO_IND: return get_le16(h + 2) & 0x3fff;
	case H4_EVT: return h[1];
	default: return h[2]; /* command, SCO */
	}
}

ssize_t h4_packet_len(const uint8_t *p, size_t avail)
{
	if (avail == 0)
		return 0;
	size_t hl = header_len(p[0], true);
	if (hl == 0)
		return -EPROTO;
	if (avail < 1 + hl)
		return 0;
	return (ssize_t)(1 + hl + body_len(p[0], p + 1));
}

void h4_init(h4_deframer *d, uint8_t *buf, size_t cap)
{
	memset(d, 0, sizeof *d);
	d->buf = buf;
	d->cap = cap;
	d->need = 1;
}

void h4_reset(h4_deframer *d) { h4_init(d, d->buf, d->cap); }

/* The octets of the current packet are in: settle the header or finish. */
static ssize_t step(h4_deframer *d)
{
	if (d->have == 1) { /* the indicator */
		size_t hl = header_len(d->buf[0], false);
		if (hl == 0) {
			d->bad = d->buf[0];
			return d->err = -EPROTO;
		}
		d->need = 1 + hl;
		return 0;
	}
	if (!d->header) {
		d->header = true;
		d->need += body_len(d->buf[0], d->buf + 1);
		if (d->need > d->cap) {
			d->bad_len = d->need;
			return d->err = -EMSGSIZE;
		}
		if (d->have < d->need)
			return 0;
	}
	d->done = true;
	return (ssize_t)d->have;
}

ssize_t h4_feed(h4_deframer *d, const uint8_t *data, size_t len, size_t *used)
{
	*used = 0;
	if (d->err)
		return d->err;
	if (d->done) { /* the packet returned last time has been taken */
		d->done = d->header = false;
		d->have = 0;
		d->need = 1;
	}
	while (*used < len) {
		size_t k = d->need - d->have;
		if (k > len - *used)
			k = len - *used;
		memcpy(d->buf + d->have, data + *used, k);
		d->have += k;
		*used += k;
		if (d->have < d->need)
			return 0;
		ssize_t r = step(d);
		if (r != 0)
			return r;
	}
	return 0;
}

const char *h4_describe(const h4_deframer *d, char *buf, size_t cap)
{
	if (cap == 0)
		return buf;
	if (d->err == -EPROTO)
		snprintf(buf, cap, "unknown H4 packet indicator 0x%02x (Core spec Vol 4 Part A 2)", d->bad);
	else if (d->err == -EMSGSIZE)
		snprintf(buf, cap, "a packet of %zu octets (indicator 0x%02x), longer than the %zu this transport takes",
			 d->bad_len, d->buf[0], d->cap);
	else
		buf[0] = '\0';
	return buf;
}
