/* sdp_data.h - SDP data elements and UUIDs (Core spec Vol 3 Part B 2.5 and 3).
 *
 * A data element is a one-byte descriptor (type in the upper 5 bits, size index in the lower
 * 3) followed by an optional length field and the value, all big-endian (Vol 3 Part B 3.1-3.3).
 *
 * Reading: sdp_elem_parse() reads one element's header with bounds checks; sdp_elem_validate()
 * checks a whole element tree (every nested length inside its parent, a nesting depth cap);
 * sdp_iter walks the children of a sequence or alternative. Nothing here allocates.
 *
 * Writing: sdp_writer appends elements into a caller buffer; once anything does not fit the
 * writer is marked and sdp_w_finish() returns -ENOSPC. A writer with a NULL buffer only
 * counts, to size a buffer before writing. */
#ifndef BTSOCK_SDP_DATA_H
#define BTSOCK_SDP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Type descriptors, Vol 3 Part B 3.2 Table 3.1. */
typedef enum {
	SDP_NIL = 0,
	SDP_UINT = 1,
	SDP_INT = 2,
	SDP_UUID = 3,
	SDP_TEXT = 4,
	SDP_BOOL = 5,
	SDP_SEQ = 6,
	SDP_ALT = 7,
	SDP_URL = 8,
} sdp_type;

/* The deepest nesting of sequences/alternatives the decoder accepts (an element at top level
 * has depth 1). */
#define SDP_MAX_DEPTH 8

/* A UUID (Vol 3 Part B 2.5.1). v always holds the full 128-bit value, big-endian; len is the
 * size it was given in (2, 4 or 16) and the size the encoder writes. Two UUIDs are equal when
 * their 128-bit values are, whatever their sizes. */
typedef struct {
	uint8_t len;
	uint8_t v[16];
} sdp_uuid;

#define SDP_UUID_STRLEN 37 /* "00001101-0000-1000-8000-00805F9B34FB" + NUL */

sdp_uuid sdp_uuid16(uint16_t u);
sdp_uuid sdp_uuid32(uint32_t u);
sdp_uuid sdp_uuid128(const uint8_t be[16]);
bool sdp_uuid_eq(const sdp_uuid *a, const sdp_uuid *b);
/* If u is derived from the Bluetooth Base UUID, its 32-bit value (true), else false. */
bool sdp_uuid_short(const sdp_uuid *u, uint32_t *out);
/* "0x1101", "1101" (16-bit), "0x0000110A"/"0000110A" (32-bit, 8 digits),
 * "00001101-0000-1000-8000-00805F9B34FB" (128-bit; the 32-digit form without dashes too).
 * 0 or -EINVAL. */
int sdp_uuid_parse(const char *s, sdp_uuid *out);
/* Text in the size it has: "1101", "0000110A" or the dashed 128-bit form, upper-case hex
 * (the form PyBluez uses). Returns out. */
char *sdp_uuid_format(const sdp_uuid *u, char out[SDP_UUID_STRLEN]);
/* Always the dashed 128-bit form. */
char *sdp_uuid_format128(const sdp_uuid *u, char out[SDP_UUID_STRLEN]);

/* One element as found in a buffer. */
typedef struct {
	sdp_type type;
	uint8_t size_index;  /* Vol 3 Part B 3.3 */
	const uint8_t *data; /* the value (for sequences: the children) */
	uint32_t len;        /* length of the value */
	size_t total;        /* descriptor + length field + value */
} sdp_elem;

/* Reads the element at the start of buf[0..len): checks that the type/size combination is
 * valid (Vol 3 Part B 3.2-3.3) and that the value lies inside the buffer. Does not look
 * into sequences. 0 or -EBADMSG. */
int sdp_elem_parse(const uint8_t *buf, size_t len, sdp_elem *out);
/* Parses the element at the start of buf and checks everything nested in it, at most
 * max_depth levels deep (SDP_MAX_DEPTH if 0). 0 or -EBADMSG (also for too deep). */
int sdp_elem_validate(const uint8_t *buf, size_t len, int max_depth, sdp_elem *out);

/* Value accessors: 0, or -EINVAL if the element is not of that kind. */
int sdp_elem_uint(const sdp_elem *e, uint64_t *v); /* uint of 1-8 bytes */
int sdp_elem_int(const sdp_elem *e, int64_t *v);   /* int of 1-8 bytes */
int sdp_elem_bool(const sdp_elem *e, bool *v);
int sdp_elem_uuid(const sdp_elem *e, sdp_uuid *v);
/* text or URL: copies at most cap-1 bytes and a NUL, stopping at an embedded NUL. Returns
 * the length written, or -EINVAL. */
int sdp_elem_text(const sdp_elem *e, char *out, size_t cap);

/* Iterates the children of a sequence or alternative that has been validated (or not: every
 * child header is still bounds-checked). */
typedef struct {
	const uint8_t *p;
	size_t len;
	size_t off;
} sdp_iter;

/* -EINVAL if e is not a sequence or alternative. */
int sdp_iter_init(sdp_iter *it, const sdp_elem *e);
/* 1 and the next child, 0 at the end, -EBADMSG if a child runs past its parent. */
int sdp_iter_next(sdp_iter *it, sdp_elem *out);

/* Encoder (Vol 3 Part B 3). Every function does nothing once the writer has failed. */
typedef struct {
	uint8_t *buf; /* NULL: count only */
	size_t cap;
	size_t len;
	bool err;
} sdp_writer;

void sdp_w_init(sdp_writer *w, uint8_t *buf, size_t cap);
/* The length written, or -ENOSPC. */
int sdp_w_finish(const sdp_writer *w);
void sdp_w_nil(sdp_writer *w);
void sdp_w_bool(sdp_writer *w, bool v);
void sdp_w_uint8(sdp_writer *w, uint8_t v);
void sdp_w_uint16(sdp_writer *w, uint16_t v);
void sdp_w_uint32(sdp_writer *w, uint32_t v);
void sdp_w_uint64(sdp_writer *w, uint64_t v);
void sdp_w_uint128(sdp_writer *w, const uint8_t be[16]);
void sdp_w_int8(sdp_writer *w, int8_t v);
void sdp_w_int16(sdp_writer *w, int16_t v);
void sdp_w_int32(sdp_writer *w, int32_t v);
void sdp_w_int64(sdp_writer *w, int64_t v);
void sdp_w_int128(sdp_writer *w, const uint8_t be[16]);
/* In the size u->len says (2, 4 or 16; anything else writes 16). */
void sdp_w_uuid(sdp_writer *w, const sdp_uuid *u);
void sdp_w_text(sdp_writer *w, const char *s, size_t n);
void sdp_w_url(sdp_writer *w, const char *s, size_t n);
/* Copies an already encoded element. */
void sdp_w_raw(sdp_writer *w, const uint8_t *p, size_t n);
/* A sequence/alternative: begin returns a mark for end, which fills in the length using the
 * shortest length field (size index 5, 6 or 7) that holds it. */
size_t sdp_w_seq_begin(sdp_writer *w);
void sdp_w_seq_end(sdp_writer *w, size_t mark);
size_t sdp_w_alt_begin(sdp_writer *w);
void sdp_w_alt_end(sdp_writer *w, size_t mark);

#endif
