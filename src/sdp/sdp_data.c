/* sdp_data.c - SDP data element decoding/encoding and UUID helpers
 * (Core spec Vol 3 Part B 2.5 and 3). See sdp_data.h. */
#include "sdp/sdp_data.h"

#include "core/bt_addr.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ UUIDs */

/* Bluetooth Base UUID 00000000-0000-1000-8000-00805F9B34FB (Vol 3 Part B 2.5.1). */
static const uint8_t base_uuid[16] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00,
				       0x80, 0x00, 0x00, 0x80, 0x5f, 0x9b, 0x34, 0xfb };

sdp_uuid sdp_uuid32(uint32_t u)
{
	/* Vol 3 Part B 2.5.1: 128_bit_value = 32_bit_value * 2^96 + Bluetooth_Base_UUID */
	sdp_uuid r;
	memcpy(r.v, base_uuid, 16);
	r.v[0] = (uint8_t)(u >> 24);
	r.v[1] = (uint8_t)(u >> 16);
	r.v[2] = (uint8_t)(u >> 8);
	r.v[3] = (uint8_t)u;
	r.len = 4;
	return r;
}

sdp_uuid sdp_uuid16(uint16_t u)
{
	sdp_uuid r = sdp_uuid32(u);
	r.len = 2;
	return r;
}

sdp_uuid sdp_uuid128(const uint8_t be[16])
{
	sdp_uuid r;
	memcpy(r.v, be, 16);
	r.len = 16;
	return r;
}

bool sdp_uuid_eq(const sdp_uuid *a, const sdp_uuid *b) { return memcmp(a->v, b->v, 16) == 0; }

bool sdp_uuid_short(const sdp_uuid *u, uint32_t *out)
{
	if (memcmp(u->v + 4, base_uuid + 4, 12) != 0)
		return false;
	*out = (uint32_t)u->v[0] << 24 | (uint32_t)u->v[1] << 16 | (uint32_t)u->v[2] << 8 | u->v[3];
	return true;
}


/* Collects up to 32 hex digits of s into nibbles, skipping dashes at the positions of the
 * dashed 128-bit form when dashed is set. Returns the digit count or -1. */
static int collect_hex(const char *s, uint8_t nib[32], bool dashed)
{
	int n = 0;
	for (size_t i = 0; s[i]; i++) {
		if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) {
			if (s[i] != '-')
				return -1;
			continue;
		}
		int v = bt_hex_digit(s[i]);
		if (v < 0 || n >= 32)
			return -1;
		nib[n++] = (uint8_t)v;
	}
	return n;
}

int sdp_uuid_parse(const char *s, sdp_uuid *out)
{
	if (!s)
		return -EINVAL;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	size_t sl = strlen(s);
	uint8_t nib[32];
	int n = collect_hex(s, nib, sl == 36);
	if (n != 4 && n != 8 && n != 32)
		return -EINVAL;
	if (n == 32) {
		uint8_t be[16];
		for (int i = 0; i < 16; i++)
			be[i] = (uint8_t)(nib[2 * i] << 4 | nib[2 * i + 1]);
		*out = sdp_uuid128(be);
		return 0;
	}
	uint32_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 4 | nib[i];
	*out = n == 4 ? sdp_uuid16((uint16_t)v) : sdp_uuid32(v);
	return 0;
}

char *sdp_uuid_format128(const sdp_uuid *u, char out[SDP_UUID_STRLEN])
{
	const uint8_t *v = u->v;
	snprintf(out, SDP_UUID_STRLEN,
		 "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", v[0], v[1],
		 v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14],
		 v[15]);
	return out;
}

char *sdp_uuid_format(const sdp_uuid *u, char out[SDP_UUID_STRLEN])
{
	uint32_t s;
	if (u->len != 16 && sdp_uuid_short(u, &s)) {
		if (u->len == 2)
			snprintf(out, SDP_UUID_STRLEN, "%04X", (unsigned)s);
		else
			snprintf(out, SDP_UUID_STRLEN, "%08X", (unsigned)s);
		return out;
	}
	return sdp_uuid_format128(u, out);
}

/* ------------------------------------------------------------------ decoding */

static uint64_t be_uint(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Vol 3 Part B 3.3: size index 0-4 -> 1, 2, 4, 8, 16 bytes (0 for nil). */
static const uint8_t fixed_size[5] = { 1, 2, 4, 8, 16 };

/* Whether a size index is allowed for a type (Vol 3 Part B 3.2 Table 3.1). */
static bool size_ok(unsigned type, unsigned si)
{
	switch (type) {
	case SDP_NIL:
	case SDP_BOOL:
		return si == 0;
	case SDP_UINT:
	case SDP_INT:
		return si <= 4;
	case SDP_UUID:
		return si == 1 || si == 2 || si == 4;
	case SDP_TEXT:
	case SDP_SEQ:
	case SDP_ALT:
	case SDP_URL:
		return si >= 5;
	default:
		return false;
	}
}

int sdp_elem_parse(const uint8_t *buf, size_t len, sdp_elem *out)
{
	if (len < 1)
		return -EBADMSG;
	unsigned type = buf[0] >> 3, si = buf[0] & 7;
	if (!size_ok(type, si))
		return -EBADMSG;
	size_t hdr = 1;
	uint64_t vlen;
	if (type == SDP_NIL) {
		vlen = 0;
	} else if (si <= 4) {
		vlen = fixed_size[si];
	} else {
		size_t lf = si == 5 ? 1 : si == 6 ? 2 : 4; /* 8/16/32-bit length field */
		if (len - 1 < lf)
			return -EBADMSG;
		vlen = be_uint(buf + 1, lf);
		hdr += lf;
	}
	if (vlen > len - hdr)
		return -EBADMSG;
	out->type = (sdp_type)type;
	out->size_index = (uint8_t)si;
	out->data = buf + hdr;
	out->len = (uint32_t)vlen;
	out->total = hdr + (size_t)vlen;
	return 0;
}

static int validate(const uint8_t *buf, size_t len, int depth, int max, sdp_elem *out)
{
	if (depth > max)
		return -EBADMSG;
	int err = sdp_elem_parse(buf, len, out);
	if (err < 0)
		return err;
	if (out->type != SDP_SEQ && out->type != SDP_ALT)
		return 0;
	sdp_iter it;
	sdp_iter_init(&it, out);
	sdp_elem child;
	int r;
	while ((r = sdp_iter_next(&it, &child)) == 1) {
		sdp_elem tmp;
		err = validate(child.data - (child.total - child.len), child.total, depth + 1, max, &tmp);
		if (err < 0)
			return err;
	}
	return r;
}

int sdp_elem_validate(const uint8_t *buf, size_t len, int max_depth, sdp_elem *out)
{
	sdp_elem tmp;
	return validate(buf, len, 1, max_depth > 0 ? max_depth : SDP_MAX_DEPTH, out ? out : &tmp);
}

int sdp_elem_uint(const sdp_elem *e, uint64_t *v)
{
	if (e->type != SDP_UINT || e->len > 8)
		return -EINVAL;
	*v = be_uint(e->data, e->len);
	return 0;
}

int sdp_elem_int(const sdp_elem *e, int64_t *v)
{
	if (e->type != SDP_INT || e->len > 8)
		return -EINVAL;
	uint64_t u = be_uint(e->data, e->len);
	unsigned bits = e->len * 8u;
	if (bits < 64 && (u >> (bits - 1)) & 1) /* two's complement sign extension */
		u |= ~(uint64_t)0 << bits;
	*v = (int64_t)u;
	return 0;
}

int sdp_elem_bool(const sdp_elem *e, bool *v)
{
	if (e->type != SDP_BOOL || e->len != 1)
		return -EINVAL;
	*v = e->data[0] != 0;
	return 0;
}

int sdp_elem_uuid(const sdp_elem *e, sdp_uuid *v)
{
	if (e->type != SDP_UUID)
		return -EINVAL;
	if (e->len == 2)
		*v = sdp_uuid16((uint16_t)be_uint(e->data, 2));
	else if (e->len == 4)
		*v = sdp_uuid32((uint32_t)be_uint(e->data, 4));
	else if (e->len == 16)
		*v = sdp_uuid128(e->data);
	else
		return -EINVAL;
	return 0;
}

int sdp_elem_text(const sdp_elem *e, char *out, size_t cap)
{
	if ((e->type != SDP_TEXT && e->type != SDP_URL) || cap == 0)
		return -EINVAL;
	size_t n = 0;
	while (n < e->len && n + 1 < cap && e->data[n] != 0) {
		out[n] = (char)e->data[n];
		n++;
	}
	out[n] = 0;
	return (int)n;
}

int sdp_iter_init(sdp_iter *it, const sdp_elem *e)
{
	if (e->type != SDP_SEQ && e->type != SDP_ALT)
		return -EINVAL;
	it->p = e->data;
	it->len = e->len;
	it->off = 0;
	return 0;
}

int sdp_iter_next(sdp_iter *it, sdp_elem *out)
{
	if (it->off >= it->len)
		return 0;
	int err = sdp_elem_parse(it->p + it->off, it->len - it->off, out);
	if (err < 0) {
		it->off = it->len; /* stop here for good */
		return err;
	}
	it->off += out->total;
	return 1;
}

/* ------------------------------------------------------------------ encoding */

void sdp_w_init(sdp_writer *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = buf ? cap : SIZE_MAX;
	w->len = 0;
	w->err = false;
}

int sdp_w_finish(const sdp_writer *w)
{
	if (w->err || w->len > INT32_MAX)
		return -ENOSPC;
	return (int)w->len;
}

static void w_put(sdp_writer *w, const void *p, size_t n)
{
	if (w->err)
		return;
	if (w->cap - w->len < n) {
		w->err = true;
		return;
	}
	if (w->buf && n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

/* Descriptor byte then a big-endian value of n bytes (n = 1, 2, 4, 8). */
static void w_fixed(sdp_writer *w, sdp_type t, uint8_t si, uint64_t v, size_t n)
{
	uint8_t b[9];
	b[0] = (uint8_t)(t << 3 | si);
	for (size_t i = 0; i < n; i++)
		b[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	w_put(w, b, 1 + n);
}

void sdp_w_nil(sdp_writer *w) { w_fixed(w, SDP_NIL, 0, 0, 0); }
void sdp_w_bool(sdp_writer *w, bool v) { w_fixed(w, SDP_BOOL, 0, v ? 1 : 0, 1); }
void sdp_w_uint8(sdp_writer *w, uint8_t v) { w_fixed(w, SDP_UINT, 0, v, 1); }
void sdp_w_uint16(sdp_writer *w, uint16_t v) { w_fixed(w, SDP_UINT, 1, v, 2); }
void sdp_w_uint32(sdp_writer *w, uint32_t v) { w_fixed(w, SDP_UINT, 2, v, 4); }
void sdp_w_uint64(sdp_writer *w, uint64_t v) { w_fixed(w, SDP_UINT, 3, v, 8); }
void sdp_w_int8(sdp_writer *w, int8_t v) { w_fixed(w, SDP_INT, 0, (uint8_t)v, 1); }
void sdp_w_int16(sdp_writer *w, int16_t v) { w_fixed(w, SDP_INT, 1, (uint16_t)v, 2); }
void sdp_w_int32(sdp_writer *w, int32_t v) { w_fixed(w, SDP_INT, 2, (uint32_t)v, 4); }
void sdp_w_int64(sdp_writer *w, int64_t v) { w_fixed(w, SDP_INT, 3, (uint64_t)v, 8); }

static void w_128(sdp_writer *w, sdp_type t, const uint8_t be[16])
{
	uint8_t d = (uint8_t)(t << 3 | 4);
	w_put(w, &d, 1);
	w_put(w, be, 16);
}

void sdp_w_uint128(sdp_writer *w, const uint8_t be[16]) { w_128(w, SDP_UINT, be); }
void sdp_w_int128(sdp_writer *w, const uint8_t be[16]) { w_128(w, SDP_INT, be); }

void sdp_w_uuid(sdp_writer *w, const sdp_uuid *u)
{
	uint32_t s;
	if (u->len == 2 && sdp_uuid_short(u, &s) && s <= 0xffff)
		w_fixed(w, SDP_UUID, 1, s, 2);
	else if (u->len == 4 && sdp_uuid_short(u, &s))
		w_fixed(w, SDP_UUID, 2, s, 4);
	else
		w_128(w, SDP_UUID, u->v);
}

/* Header with the shortest length field for n (Vol 3 Part B 3.3 size index 5/6/7). */
static size_t var_header(uint8_t *h, sdp_type t, size_t n)
{
	if (n <= 0xff) {
		h[0] = (uint8_t)(t << 3 | 5);
		h[1] = (uint8_t)n;
		return 2;
	}
	if (n <= 0xffff) {
		h[0] = (uint8_t)(t << 3 | 6);
		h[1] = (uint8_t)(n >> 8);
		h[2] = (uint8_t)n;
		return 3;
	}
	h[0] = (uint8_t)(t << 3 | 7);
	h[1] = (uint8_t)(n >> 24);
	h[2] = (uint8_t)(n >> 16);
	h[3] = (uint8_t)(n >> 8);
	h[4] = (uint8_t)n;
	return 5;
}

static void w_var(sdp_writer *w, sdp_type t, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		w->err = true;
		return;
	}
	uint8_t h[5];
	w_put(w, h, var_header(h, t, n));
	w_put(w, p, n);
}

void sdp_w_text(sdp_writer *w, const char *s, size_t n) { w_var(w, SDP_TEXT, s, n); }
void sdp_w_url(sdp_writer *w, const char *s, size_t n) { w_var(w, SDP_URL, s, n); }
void sdp_w_raw(sdp_writer *w, const uint8_t *p, size_t n) { w_put(w, p, n); }

/* A two-byte header is reserved at begin; end widens it if the body needs a longer field. */
static size_t w_group_begin(sdp_writer *w)
{
	size_t mark = w->len;
	uint8_t h[2] = { 0, 0 };
	w_put(w, h, 2);
	return mark;
}

static void w_group_end(sdp_writer *w, sdp_type t, size_t mark)
{
	if (w->err)
		return;
	size_t body = w->len - mark - 2;
	if (body > UINT32_MAX) {
		w->err = true;
		return;
	}
	uint8_t h[5];
	size_t hl = var_header(h, t, body);
	size_t grow = hl - 2;
	if (grow) {
		if (w->cap - w->len < grow) {
			w->err = true;
			return;
		}
		if (w->buf)
			memmove(w->buf + mark + hl, w->buf + mark + 2, body);
		w->len += grow;
	}
	if (w->buf)
		memcpy(w->buf + mark, h, hl);
}

size_t sdp_w_seq_begin(sdp_writer *w) { return w_group_begin(w); }
void sdp_w_seq_end(sdp_writer *w, size_t mark) { w_group_end(w, SDP_SEQ, mark); }
size_t sdp_w_alt_begin(sdp_writer *w) { return w_group_begin(w); }
void sdp_w_alt_end(sdp_writer *w, size_t mark) { w_group_end(w, SDP_ALT, mark); }
