/* sdp_server.c - the SDP server of one stack (Core spec Vol 3 Part B 4): a record database,
 * the server's own record, and answers to ServiceSearch, ServiceAttribute and
 * ServiceSearchAttribute requests arriving on L2CAP PSM 1.
 *
 * Each request is answered from the database as it is now: the whole response payload (a
 * handle list or an attribute list) is built, and the part that fits the peer's MTU and its
 * MaximumAttributeByteCount is sent. When more remains the response carries a continuation
 * state: a 4-byte token naming a slot in a small table the server keeps (request digest,
 * database generation, offset). A continued request is honoured only if its token names a
 * live slot whose digest and generation match; the offset used is the one stored in the slot,
 * never a number taken from the peer's bytes. */
#include "sdp/sdp.h"
#include "sdp/sdp_server_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"

#define SDP_SERVER_MTU L2CAP_DEFAULT_MTU
#define SDP_FIRST_HANDLE 0x00010000u
#define SDP_SERVER_MAX_PAYLOAD (64u * 1024u) /* the largest response payload built */
#define SDP_CONT_SLOTS 16
#define SDP_CONT_LEN 4
#define SDP_MAX_CONNS 16
#define SDP_MAX_CONNS_PEER 4 /* one client needs one; a peer opening more loses its oldest */
#define SDP_HDR 5 /* PDU ID, TransactionID, ParameterLength (Vol 3 Part B 4.2) */

typedef struct {
	uint32_t token; /* 0: free */
	uint32_t digest;
	uint32_t generation;
	uint32_t offset;
} cont_slot;

typedef struct sdp_conn {
	sdp_server *s;
	l2cap_chan *ch;
	uint8_t *pending; /* a response l2cap_send() had no room for */
	size_t pending_len;
	struct sdp_conn *next;
} sdp_conn;

struct sdp_server {
	l2cap *l;
	bool listening;
	sdp_record **recs; /* recs[0] is the server's own record */
	size_t n, cap;
	uint32_t next_handle;
	uint32_t generation; /* bumped on every database change */
	uint32_t token_seq;
	cont_slot cont[SDP_CONT_SLOTS];
	unsigned cont_next;
	sdp_conn *conns;
	size_t n_conns;
};

/* ------------------------------------------------------------------ database */

static int db_append(sdp_server *s, sdp_record *r)
{
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 8;
		sdp_record **a = realloc(s->recs, ncap * sizeof *a);
		if (!a)
			return -ENOMEM;
		s->recs = a;
		s->cap = ncap;
	}
	s->recs[s->n++] = r;
	s->generation++;
	return 0;
}

static sdp_record *db_find(const sdp_server *s, uint32_t handle)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->recs[i]->handle == handle)
			return s->recs[i];
	return NULL;
}

/* The server's own record (Vol 3 Part B 5.2): handle 0, class SDP server, version 1.0. */
static sdp_record *own_record(void)
{
	sdp_record *r = sdp_record_new();
	if (!r)
		return NULL;
	uint8_t b[16];
	sdp_writer w;
	sdp_uuid cls = sdp_uuid16(SDP_UUID_SDP_SERVER);
	sdp_w_init(&w, b, sizeof b);
	size_t m = sdp_w_seq_begin(&w);
	sdp_w_uuid(&w, &cls);
	sdp_w_seq_end(&w, m);
	int err = sdp_record_set(r, SDP_ATTR_SERVICE_CLASS_ID_LIST, b, (size_t)sdp_w_finish(&w));
	sdp_w_init(&w, b, sizeof b);
	m = sdp_w_seq_begin(&w);
	sdp_w_uint16(&w, 0x0100); /* Vol 3 Part B 5.2.3: major 1, minor 0 */
	sdp_w_seq_end(&w, m);
	if (!err)
		err = sdp_record_set(r, SDP_ATTR_VERSION_NUMBER_LIST, b, (size_t)sdp_w_finish(&w));
	if (!err)
		err = sdp_record_set_handle(r, 0x00000000);
	if (err) {
		sdp_record_free(r);
		return NULL;
	}
	return r;
}

/* ServiceDatabaseState (Vol 3 Part B 5.2.4) follows every change. */
static void db_changed(sdp_server *s)
{
	uint8_t b[5];
	sdp_writer w;
	sdp_w_init(&w, b, sizeof b);
	sdp_w_uint32(&w, s->generation);
	sdp_record_set(s->recs[0], SDP_ATTR_DATABASE_STATE, b, sizeof b);
}

uint32_t sdp_server_add_record(sdp_server *s, sdp_record *rec)
{
	if (!rec)
		return 0;
	if (s->next_handle == 0 || sdp_record_set_handle(rec, s->next_handle) < 0 || db_append(s, rec) < 0) {
		sdp_record_free(rec);
		return 0;
	}
	db_changed(s);
	return s->next_handle++;
}

uint32_t sdp_server_add_service(sdp_server *s, const sdp_service_desc *d)
{
	sdp_record *r = sdp_record_new();
	if (!r)
		return 0;
	if (sdp_record_build_service(r, d) < 0) {
		sdp_record_free(r);
		return 0;
	}
	return sdp_server_add_record(s, r);
}

int sdp_server_remove_record(sdp_server *s, uint32_t handle)
{
	for (size_t i = 1; i < s->n; i++) {
		if (s->recs[i]->handle != handle)
			continue;
		sdp_record_free(s->recs[i]);
		memmove(s->recs + i, s->recs + i + 1, (s->n - i - 1) * sizeof *s->recs);
		s->n--;
		s->generation++;
		db_changed(s);
		return 0;
	}
	return -ENOENT;
}

size_t sdp_server_record_count(const sdp_server *s) { return s->n; }

/* ------------------------------------------------------------------ request parsing */

typedef struct {
	uint8_t pid;
	uint16_t tid;
	sdp_uuid pat[SDP_MAX_PATTERN_UUIDS];
	size_t n_pat;
	uint32_t handle;
	uint16_t max; /* MaximumServiceRecordCount or MaximumAttributeByteCount */
	sdp_elem ids; /* AttributeIDList */
	uint8_t cont_len;
	const uint8_t *cont;
	uint32_t digest; /* of everything that decides the response payload */
} sdp_req;

/* FNV-1a, to tell a continued request from a different one. */
static uint32_t digest_add(uint32_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* One data element from the reader; its raw bytes are folded into the digest. */
static uint16_t read_elem(bt_reader *r, sdp_req *q, sdp_elem *e)
{
	const uint8_t *start = r->p + r->off;
	if (r->err || sdp_elem_validate(start, bt_reader_left(r), 2, e) < 0)
		return SDP_ERR_INVALID_SYNTAX;
	bt_read_bytes(r, e->total);
	q->digest = digest_add(q->digest, start, e->total);
	return 0;
}

/* ServiceSearchPattern: a sequence of 1-12 UUIDs (Vol 3 Part B 4.5.1). */
static uint16_t read_pattern(bt_reader *r, sdp_req *q)
{
	sdp_elem seq, u;
	uint16_t code = read_elem(r, q, &seq);
	if (code)
		return code;
	sdp_iter it;
	if (seq.type != SDP_SEQ || sdp_iter_init(&it, &seq) < 0)
		return SDP_ERR_INVALID_SYNTAX;
	q->n_pat = 0;
	while (sdp_iter_next(&it, &u) == 1) {
		if (q->n_pat == SDP_MAX_PATTERN_UUIDS || sdp_elem_uuid(&u, &q->pat[q->n_pat]) < 0)
			return SDP_ERR_INVALID_SYNTAX;
		q->n_pat++;
	}
	return q->n_pat ? 0 : SDP_ERR_INVALID_SYNTAX;
}

/* AttributeIDList: uint16 IDs and uint32 ranges (start << 16 | end), Vol 3 Part B 4.6.1. */
static uint16_t read_ids(bt_reader *r, sdp_req *q)
{
	uint16_t code = read_elem(r, q, &q->ids);
	if (code)
		return code;
	sdp_iter it;
	sdp_elem e;
	if (q->ids.type != SDP_SEQ || sdp_iter_init(&it, &q->ids) < 0)
		return SDP_ERR_INVALID_SYNTAX;
	size_t n = 0;
	while (sdp_iter_next(&it, &e) == 1) {
		uint64_t v;
		if (sdp_elem_uint(&e, &v) < 0 || (e.len != 2 && e.len != 4))
			return SDP_ERR_INVALID_SYNTAX;
		if (e.len == 4 && (v >> 16) > (v & 0xffff))
			return SDP_ERR_INVALID_SYNTAX;
		n++;
	}
	return n ? 0 : SDP_ERR_INVALID_SYNTAX;
}

/* ContinuationState: InfoLength (0-16) and that many bytes, last in the PDU (4.3). One
 * longer than 16 bytes that the PDU does carry is a continuation state we never issued:
 * Invalid Continuation State (4.4.1), like any other forged one. */
static uint16_t read_cont(bt_reader *r, sdp_req *q)
{
	q->cont_len = bt_read_u8(r);
	if (r->err)
		return SDP_ERR_INVALID_PDU_SIZE;
	q->cont = bt_read_bytes(r, q->cont_len);
	if (r->err || bt_reader_left(r) != 0)
		return SDP_ERR_INVALID_PDU_SIZE;
	return q->cont_len > SDP_MAX_CONT_STATE ? SDP_ERR_INVALID_CONT_STATE : 0;
}

static uint16_t read_u16_field(bt_reader *r, sdp_req *q, uint16_t *v, bool digest)
{
	const uint8_t *p = bt_read_bytes(r, 2);
	if (!p)
		return SDP_ERR_INVALID_PDU_SIZE;
	*v = get_be16(p);
	if (digest)
		q->digest = digest_add(q->digest, p, 2);
	return 0;
}

/* Parameters of each request (Vol 3 Part B 4.5.1, 4.6.1, 4.7.1). */
static uint16_t parse_params(bt_reader *r, sdp_req *q)
{
	uint16_t code = 0;
	switch (q->pid) {
	case SDP_PDU_SS_REQ:
		code = read_pattern(r, q);
		if (!code)
			code = read_u16_field(r, q, &q->max, true);
		if (!code && q->max == 0)
			code = SDP_ERR_INVALID_SYNTAX;
		break;
	case SDP_PDU_SA_REQ: {
		const uint8_t *h = bt_read_bytes(r, 4);
		if (!h)
			return SDP_ERR_INVALID_PDU_SIZE;
		q->handle = get_be32(h);
		q->digest = digest_add(q->digest, h, 4);
		code = read_u16_field(r, q, &q->max, false);
		if (!code)
			code = read_ids(r, q);
		break;
	}
	default: /* SDP_PDU_SSA_REQ */
		code = read_pattern(r, q);
		if (!code)
			code = read_u16_field(r, q, &q->max, false);
		if (!code)
			code = read_ids(r, q);
		break;
	}
	/* MaximumAttributeByteCount: at least 7 (Vol 3 Part B 4.6.1). */
	if (!code && q->pid != SDP_PDU_SS_REQ && q->max < 7)
		code = SDP_ERR_INVALID_SYNTAX;
	if (!code)
		code = read_cont(r, q);
	return code;
}

/* ------------------------------------------------------------------ response payloads */

static bool id_wanted(const sdp_elem *ids, uint16_t id)
{
	sdp_iter it;
	sdp_elem e;
	sdp_iter_init(&it, ids);
	while (sdp_iter_next(&it, &e) == 1) {
		uint64_t v = 0;
		sdp_elem_uint(&e, &v);
		if (e.len == 2 ? v == id : (id >= (v >> 16) && id <= (v & 0xffff)))
			return true;
	}
	return false;
}

static bool matches(const sdp_record *r, const sdp_req *q)
{
	/* Vol 3 Part B 2.5.2: every UUID of the pattern occurs in the record. */
	for (size_t i = 0; i < q->n_pat; i++)
		if (!sdp_record_has_uuid(r, &q->pat[i]))
			return false;
	return true;
}

/* The attribute list of one record: a sequence of (uint16 ID, value) pairs in ascending ID
 * order (Vol 3 Part B 4.6.2). Written only if some attribute is wanted, unless always. */
static void write_attr_list(sdp_writer *w, const sdp_record *r, const sdp_elem *ids, bool always)
{
	size_t wanted = 0;
	for (size_t i = 0; i < r->n; i++)
		wanted += id_wanted(ids, r->attrs[i].id);
	if (!wanted && !always)
		return;
	size_t m = sdp_w_seq_begin(w);
	for (size_t i = 0; i < r->n; i++) {
		if (!id_wanted(ids, r->attrs[i].id))
			continue;
		sdp_w_uint16(w, r->attrs[i].id);
		sdp_w_raw(w, r->attrs[i].val, r->attrs[i].len);
	}
	sdp_w_seq_end(w, m);
}

/* The whole payload of the response to q: 4-byte handles (SS), one attribute list (SA) or a
 * sequence of attribute lists (SSA, Vol 3 Part B 4.7.2). */
static void write_payload(sdp_writer *w, const sdp_server *s, const sdp_req *q)
{
	if (q->pid == SDP_PDU_SS_REQ) {
		size_t count = 0;
		for (size_t i = 0; i < s->n && count < q->max; i++) {
			if (!matches(s->recs[i], q))
				continue;
			uint8_t h[4];
			put_be32(h, s->recs[i]->handle);
			sdp_w_raw(w, h, 4);
			count++;
		}
	} else if (q->pid == SDP_PDU_SA_REQ) {
		write_attr_list(w, db_find(s, q->handle), &q->ids, true);
	} else {
		size_t m = sdp_w_seq_begin(w);
		for (size_t i = 0; i < s->n; i++)
			if (matches(s->recs[i], q))
				write_attr_list(w, s->recs[i], &q->ids, false);
		sdp_w_seq_end(w, m);
	}
}

/* Builds the payload into a new buffer. 0, or an error code. */
static uint16_t build_payload(const sdp_server *s, const sdp_req *q, uint8_t **out, size_t *len)
{
	sdp_writer w;
	sdp_w_init(&w, NULL, 0);
	write_payload(&w, s, q);
	if (w.len > SDP_SERVER_MAX_PAYLOAD)
		return SDP_ERR_INSUFFICIENT_RESOURCES;
	*len = w.len;
	*out = malloc(w.len ? w.len : 1);
	if (!*out)
		return SDP_ERR_INSUFFICIENT_RESOURCES;
	sdp_w_init(&w, *out, *len);
	write_payload(&w, s, q);
	return 0;
}

/* ------------------------------------------------------------------ continuation */

static uint16_t cont_lookup(const sdp_server *s, const sdp_req *q, uint32_t *offset)
{
	if (q->cont_len == 0) {
		*offset = 0;
		return 0;
	}
	if (q->cont_len != SDP_CONT_LEN)
		return SDP_ERR_INVALID_CONT_STATE;
	uint32_t token = get_be32(q->cont);
	for (unsigned i = 0; i < SDP_CONT_SLOTS; i++) {
		const cont_slot *c = &s->cont[i];
		if (token != 0 && c->token == token && c->digest == q->digest &&
		    c->generation == s->generation) {
			*offset = c->offset;
			return 0;
		}
	}
	return SDP_ERR_INVALID_CONT_STATE;
}

/* A token for the rest of q's payload from offset. A replayed request (same request, same
 * offset) gets the token already issued for it, so replays cannot churn the table and evict
 * other clients' states. */
static uint32_t cont_issue(sdp_server *s, const sdp_req *q, uint32_t offset)
{
	for (unsigned i = 0; i < SDP_CONT_SLOTS; i++) {
		const cont_slot *c = &s->cont[i];
		if (c->token && c->digest == q->digest && c->generation == s->generation && c->offset == offset)
			return c->token;
	}
	if (++s->token_seq == 0)
		s->token_seq = 1;
	cont_slot *c = &s->cont[s->cont_next++ % SDP_CONT_SLOTS];
	*c = (cont_slot){ s->token_seq, q->digest, s->generation, offset };
	return s->token_seq;
}

/* ------------------------------------------------------------------ responses */

/* The PDU header (Vol 3 Part B 4.2): PDU ID, TransactionID, ParameterLength filled in by
 * rsp_end once the parameters are written. */
static uint8_t *rsp_begin(bt_writer *w, uint8_t pid, uint16_t tid)
{
	bt_write_u8(w, pid);
	bt_write_be16(w, tid);
	return bt_write_reserve(w, 2);
}

/* The PDU length, or 0 if it did not fit (nothing is sent then). */
static int rsp_end(bt_writer *w, uint8_t *plen)
{
	if (w->err)
		return 0;
	put_be16(plen, (uint16_t)(bt_writer_len(w) - SDP_HDR));
	return (int)bt_writer_len(w);
}

static int error_rsp(uint8_t *rsp, size_t cap, uint16_t tid, uint16_t code)
{
	bt_writer w = bt_writer_init(rsp, cap);
	uint8_t *plen = rsp_begin(&w, SDP_PDU_ERROR_RSP, tid);
	bt_write_be16(&w, code); /* Vol 3 Part B 4.4.1: ErrorCode, no ErrorInfo */
	return rsp_end(&w, plen);
}

/* Writes the slice [off, off+n) of the payload and the continuation state into rsp[0..room);
 * returns the PDU length, 0 if it did not fit (slice_len sized it, so it does). */
static int slice_rsp(sdp_server *s, const sdp_req *q, const uint8_t *pl, size_t pl_len, uint32_t off,
		     size_t n, uint8_t *rsp, size_t room)
{
	bool more = off + n < pl_len;
	bt_writer w = bt_writer_init(rsp, room);
	uint8_t *plen = rsp_begin(&w, (uint8_t)(q->pid + 1), q->tid);
	if (q->pid == SDP_PDU_SS_REQ) {
		/* Vol 3 Part B 4.5.2: TotalServiceRecordCount, CurrentServiceRecordCount. */
		bt_write_be16(&w, (uint16_t)(pl_len / 4));
		bt_write_be16(&w, (uint16_t)(n / 4));
	} else {
		bt_write_be16(&w, (uint16_t)n); /* AttributeList(s)ByteCount (4.6.2, 4.7.2) */
	}
	bt_write_bytes(&w, pl + off, n);
	/* ContinuationState (4.3): InfoLength and our token, or a single 0. */
	bt_write_u8(&w, more ? SDP_CONT_LEN : 0);
	uint8_t *token = more ? bt_write_reserve(&w, SDP_CONT_LEN) : NULL;
	if (token) /* a slot is spent only on an answer that goes out */
		put_be32(token, cont_issue(s, q, (uint32_t)(off + n)));
	return rsp_end(&w, plen);
}

/* How much of the remaining payload goes into this PDU (of at most room bytes): whole
 * handles for SS; for SA/SSA no more than MaximumAttributeByteCount. 0: nothing fits. */
static size_t slice_len(const sdp_req *q, size_t remaining, size_t room)
{
	size_t fixed = SDP_HDR + (q->pid == SDP_PDU_SS_REQ ? 4 : 2) + 1;
	if (room <= fixed)
		return 0;
	size_t avail = room - fixed;
	size_t limit = q->pid == SDP_PDU_SS_REQ ? SIZE_MAX : q->max;
	size_t unit = q->pid == SDP_PDU_SS_REQ ? 4 : 1;
	size_t fit = (avail < limit ? avail : limit) / unit * unit;
	if (remaining <= fit)
		return remaining;
	/* A continuation state follows: make room for it. */
	avail = avail > SDP_CONT_LEN ? avail - SDP_CONT_LEN : 0;
	fit = (avail < limit ? avail : limit) / unit * unit;
	return fit;
}

static uint16_t answer(sdp_server *s, const sdp_req *q, uint8_t *rsp, size_t room, int *out)
{
	if (q->pid == SDP_PDU_SA_REQ && !db_find(s, q->handle))
		return SDP_ERR_INVALID_HANDLE;
	uint32_t off;
	uint16_t code = cont_lookup(s, q, &off);
	if (code)
		return code;
	uint8_t *pl;
	size_t pl_len;
	code = build_payload(s, q, &pl, &pl_len);
	if (code)
		return code;
	if (off > pl_len || (off == pl_len && off != 0)) {
		free(pl);
		return SDP_ERR_INVALID_CONT_STATE;
	}
	size_t n = slice_len(q, pl_len - off, room);
	if (n == 0 && pl_len - off > 0) {
		free(pl);
		return SDP_ERR_INSUFFICIENT_RESOURCES;
	}
	*out = slice_rsp(s, q, pl, pl_len, off, n, rsp, room);
	free(pl);
	return *out ? 0 : SDP_ERR_INSUFFICIENT_RESOURCES;
}

int sdp_server_handle_pdu(sdp_server *s, const uint8_t *req, size_t len, uint16_t mtu, uint8_t *rsp,
			  size_t cap)
{
	size_t room = cap < mtu ? cap : mtu;
	bt_reader r = bt_reader_init(req, len);
	sdp_req q = { .pid = bt_read_u8(&r), .digest = 2166136261u };
	q.tid = bt_read_be16(&r);
	uint16_t plen = bt_read_be16(&r);
	if (r.err || plen != bt_reader_left(&r)) /* Vol 3 Part B 4.2: ParameterLength */
		return error_rsp(rsp, room, q.tid, SDP_ERR_INVALID_PDU_SIZE);
	if (q.pid != SDP_PDU_SS_REQ && q.pid != SDP_PDU_SA_REQ && q.pid != SDP_PDU_SSA_REQ) {
		/* IDs beyond those SDP 1.x defines may come from a later version; a response
		 * PDU or a reserved ID sent as a request is a malformed request. */
		uint16_t code = q.pid > SDP_PDU_SSA_RSP ? SDP_ERR_UNSUPPORTED_VERSION : SDP_ERR_INVALID_SYNTAX;
		return error_rsp(rsp, room, q.tid, code);
	}
	q.digest = digest_add(q.digest, &q.pid, 1);
	uint16_t code = parse_params(&r, &q);
	int n = 0;
	if (!code)
		code = answer(s, &q, rsp, room, &n);
	return code ? error_rsp(rsp, room, q.tid, code) : n;
}

/* ------------------------------------------------------------------ L2CAP glue */

static void conn_flush(sdp_conn *c)
{
	if (!c->pending)
		return;
	if (l2cap_send(c->ch, c->pending, c->pending_len) == -EAGAIN)
		return; /* writable follows */
	free(c->pending);
	c->pending = NULL;
}

static void conn_data(void *ctx, l2cap_chan *ch, const uint8_t *p, size_t len)
{
	sdp_conn *c = ctx;
	if (c->pending)
		return; /* a client waits for each response before the next request (4.1) */
	uint8_t rsp[L2CAP_MAX_MTU];
	int n = sdp_server_handle_pdu(c->s, p, len, l2cap_chan_omtu(ch), rsp, sizeof rsp);
	if (n <= 0)
		return;
	c->pending = malloc((size_t)n);
	if (!c->pending)
		return;
	memcpy(c->pending, rsp, (size_t)n);
	c->pending_len = (size_t)n;
	conn_flush(c);
}

static void conn_writable(void *ctx, l2cap_chan *ch) { conn_flush(ctx); }

static void conn_free(sdp_conn *c)
{
	sdp_server *s = c->s;
	for (sdp_conn **pp = &s->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	s->n_conns--;
	l2cap_close(c->ch);
	free(c->pending);
	free(c);
}

static void conn_closed(void *ctx, l2cap_chan *ch, int err) { conn_free(ctx); }

static const l2cap_chan_ops conn_ops = {
	.data = conn_data,
	.writable = conn_writable,
	.closed = conn_closed,
};

/* A peer that opens channels to the SDP server and leaves them (a flood of Connection Requests
 * it never configures) must not lock other clients out, nor its own next search: beyond
 * SDP_MAX_CONNS_PEER its oldest channel is closed to make room. */
static void drop_oldest_of_peer(sdp_server *s, const bt_addr *peer)
{
	sdp_conn *oldest = NULL; /* s->conns is newest first: the last match is the oldest */
	int n = 0;
	for (sdp_conn *c = s->conns; c; c = c->next) {
		if (bt_addr_eq(l2cap_chan_peer(c->ch), peer)) {
			n++;
			oldest = c;
		}
	}
	if (n >= SDP_MAX_CONNS_PEER)
		conn_free(oldest);
}

static int server_accept(void *srv_ctx, l2cap_chan *ch, const l2cap_chan_ops **ops, void **ctx)
{
	sdp_server *s = srv_ctx;
	drop_oldest_of_peer(s, l2cap_chan_peer(ch));
	if (s->n_conns >= SDP_MAX_CONNS)
		return -ENOBUFS;
	sdp_conn *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOBUFS;
	c->s = s;
	c->ch = ch;
	c->next = s->conns;
	s->conns = c;
	s->n_conns++;
	*ops = &conn_ops;
	*ctx = c;
	return 0;
}

sdp_server *sdp_server_new(l2cap *l)
{
	sdp_server *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->l = l;
	s->next_handle = SDP_FIRST_HANDLE;
	sdp_record *own = own_record();
	if (!own || db_append(s, own) < 0) {
		sdp_record_free(own);
		free(s);
		return NULL;
	}
	db_changed(s);
	if (l) {
		if (l2cap_listen(l, L2CAP_PSM_SDP, SDP_SERVER_MTU, server_accept, s) < 0) {
			sdp_server_free(s);
			return NULL;
		}
		s->listening = true;
	}
	return s;
}

void sdp_server_free(sdp_server *s)
{
	if (!s)
		return;
	if (s->listening)
		l2cap_unlisten(s->l, L2CAP_PSM_SDP);
	while (s->conns)
		conn_free(s->conns);
	for (size_t i = 0; i < s->n; i++)
		sdp_record_free(s->recs[i]);
	free(s->recs);
	free(s);
}

int sdp_error_to_errno(uint16_t code)
{
	switch (code) {
	case SDP_ERR_UNSUPPORTED_VERSION:
		return -EPROTONOSUPPORT;
	case SDP_ERR_INVALID_HANDLE:
		return -ENOENT;
	case SDP_ERR_INVALID_SYNTAX:
		return -EINVAL;
	case SDP_ERR_INVALID_PDU_SIZE:
		return -EMSGSIZE;
	case SDP_ERR_INSUFFICIENT_RESOURCES:
		return -ENOBUFS;
	default: /* SDP_ERR_INVALID_CONT_STATE and unknown codes */
		return -EPROTO;
	}
}
