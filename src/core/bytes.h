/* bytes.h - little-endian field access and a bounds-checked reader for wire data.
 *
 * Every multi-byte field in HCI and L2CAP is little-endian (Core spec Vol 4 Part E 5.2,
 * Vol 3 Part A 3); SDP and RFCOMM lengths are read with the explicit helpers below.
 * The reader never reads past its end: a short read sets `err` and returns zeros, so a
 * parser can read a whole structure and check `err` once. The writer is its mirror: it never
 * writes past its end, and a write that does not fit sets `err`. */
#ifndef BTSOCK_CORE_BYTES_H
#define BTSOCK_CORE_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t get_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static inline void put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* A cursor over received bytes. */
typedef struct {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool err; /* set once any read went past the end; sticky */
} bt_reader;

static inline bt_reader bt_reader_init(const uint8_t *p, size_t len)
{
	bt_reader r = { p, len, 0, false };
	return r;
}
static inline size_t bt_reader_left(const bt_reader *r) { return r->err ? 0 : r->len - r->off; }
static inline bool bt_reader_need(bt_reader *r, size_t n)
{
	if (r->err || r->len - r->off < n) {
		r->err = true;
		return false;
	}
	return true;
}
static inline uint8_t bt_read_u8(bt_reader *r)
{
	if (!bt_reader_need(r, 1))
		return 0;
	return r->p[r->off++];
}
static inline uint16_t bt_read_le16(bt_reader *r)
{
	if (!bt_reader_need(r, 2))
		return 0;
	uint16_t v = get_le16(r->p + r->off);
	r->off += 2;
	return v;
}
static inline uint32_t bt_read_le32(bt_reader *r)
{
	if (!bt_reader_need(r, 4))
		return 0;
	uint32_t v = get_le32(r->p + r->off);
	r->off += 4;
	return v;
}
static inline uint16_t bt_read_be16(bt_reader *r)
{
	if (!bt_reader_need(r, 2))
		return 0;
	uint16_t v = get_be16(r->p + r->off);
	r->off += 2;
	return v;
}
static inline uint32_t bt_read_be32(bt_reader *r)
{
	if (!bt_reader_need(r, 4))
		return 0;
	uint32_t v = get_be32(r->p + r->off);
	r->off += 4;
	return v;
}
/* Returns a pointer to the next n bytes and skips them, or NULL (and err) if fewer remain. */
static inline const uint8_t *bt_read_bytes(bt_reader *r, size_t n)
{
	if (!bt_reader_need(r, n))
		return NULL;
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

/* A cursor over a caller's buffer for everything we build, above all answers built from peer
 * input: it never writes past `cap`. A write that does not fit writes nothing and sets `err`
 * (sticky), so a builder writes a whole answer and checks `err` once, as with bt_reader.
 * A builder that may cut an answer (list only what fits) asks bt_writer_room() first. */
typedef struct {
	uint8_t *p;
	size_t cap;
	size_t off;
	bool err; /* set once any write did not fit; sticky */
} bt_writer;

static inline bt_writer bt_writer_init(uint8_t *p, size_t cap)
{
	bt_writer w = { p, cap, 0, false };
	return w;
}
static inline size_t bt_writer_len(const bt_writer *w) { return w->off; }
static inline size_t bt_writer_room(const bt_writer *w) { return w->err ? 0 : w->cap - w->off; }
/* Returns a pointer to the next n bytes and claims them (for a field filled in later), or NULL
 * (and err) if fewer than n remain. (NULL without err: n == 0 on a writer with no buffer.) */
static inline uint8_t *bt_write_reserve(bt_writer *w, size_t n)
{
	if (w->err || w->cap - w->off < n) {
		w->err = true;
		return NULL;
	}
	if (!w->p)
		return NULL;
	uint8_t *p = w->p + w->off;
	w->off += n;
	return p;
}
static inline void bt_write_bytes(bt_writer *w, const void *src, size_t n)
{
	uint8_t *p = bt_write_reserve(w, n);
	if (p && n)
		memcpy(p, src, n);
}
static inline void bt_write_zeros(bt_writer *w, size_t n)
{
	uint8_t *p = bt_write_reserve(w, n);
	if (p && n)
		memset(p, 0, n);
}
static inline void bt_write_u8(bt_writer *w, uint8_t v)
{
	uint8_t *p = bt_write_reserve(w, 1);
	if (p)
		p[0] = v;
}
static inline void bt_write_le16(bt_writer *w, uint16_t v)
{
	uint8_t *p = bt_write_reserve(w, 2);
	if (p)
		put_le16(p, v);
}
static inline void bt_write_le32(bt_writer *w, uint32_t v)
{
	uint8_t *p = bt_write_reserve(w, 4);
	if (p)
		put_le32(p, v);
}
static inline void bt_write_be16(bt_writer *w, uint16_t v)
{
	uint8_t *p = bt_write_reserve(w, 2);
	if (p)
		put_be16(p, v);
}
static inline void bt_write_be32(bt_writer *w, uint32_t v)
{
	uint8_t *p = bt_write_reserve(w, 4);
	if (p)
		put_be32(p, v);
}

#endif
