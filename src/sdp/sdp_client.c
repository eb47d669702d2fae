/* sdp_client.c - asynchronous SDP queries (Core spec Vol 3 Part B 4.7): one
 * ServiceSearchAttribute transaction, repeated with each continuation state the server returns
 * until the whole attribute list is in, then decoded into records for one callback.
 *
 * The query itself knows no transport: it emits request PDUs through its sdp_query_io and is
 * fed response PDUs (sdp_query_input). The L2CAP glue at the end of this file is one user: a
 * channel of this stack to the peer's PSM 1. A kernel L2CAP socket is another.
 *
 * States: CONNECTING (transport not up yet) -> WAIT_RSP (a request is out) -> DONE (callback
 * made, query freed). finish() is the one place a query ends. */
#include "sdp/sdp.h"
#include "sdp/sdp_client_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"

#define SDP_CLIENT_MTU L2CAP_DEFAULT_MTU
#define SDP_CLIENT_MAX_RANGES 64
#define SDP_CLIENT_MAX_ROUNDS 4096 /* continuation round trips before giving up */
/* Pattern (<= 2 + 12 * 17) + max count (3) + ID list (<= 3 + 64 * 5). */
#define SDP_REQ_PARAMS_MAX 600

typedef enum { Q_CONNECTING, Q_WAIT_RSP, Q_DONE } q_state;

struct sdp_query {
	q_state state;
	sdp_query_io io;
	bt_timers *timers; /* NULL: no timeout (the transport's owner bounds the query) */
	bt_timer timer;
	sdp_query_cb cb;
	void *ctx;
	bool in_cb;
	bool send_blocked; /* send said -EAGAIN: resend on writable */
	uint16_t tid;
	uint8_t params[SDP_REQ_PARAMS_MAX]; /* the request without its continuation state */
	size_t params_len;
	uint8_t cont[SDP_MAX_CONT_STATE];
	uint8_t cont_len;
	unsigned rounds;
	uint8_t *buf; /* the attribute lists received so far */
	size_t len, cap;
};

/* ------------------------------------------------------------------ decoding */

static void free_records(sdp_record **recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sdp_record_free(recs[i]);
	free(recs);
}

/* AttributeLists (Vol 3 Part B 4.7.2): a sequence of attribute lists, one per record. */
static int decode_lists(const uint8_t *p, size_t len, sdp_record ***out, size_t *n_out)
{
	sdp_elem top, list;
	sdp_iter it;
	if (sdp_elem_validate(p, len, SDP_MAX_DEPTH, &top) < 0 || top.total != len || top.type != SDP_SEQ)
		return -EPROTO;
	sdp_record **recs = NULL;
	size_t n = 0, cap = 0;
	int got, err = 0;
	sdp_iter_init(&it, &top);
	while ((got = sdp_iter_next(&it, &list)) == 1) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			sdp_record **a = realloc(recs, ncap * sizeof *a);
			if (!a) {
				err = -ENOMEM;
				break;
			}
			recs = a;
			cap = ncap;
		}
		err = sdp_record_from_attr_list(&list, &recs[n]);
		if (err < 0) {
			err = err == -ENOMEM ? err : -EPROTO;
			break;
		}
		n++;
	}
	if (got < 0 && !err)
		err = -EPROTO;
	if (err) {
		free_records(recs, n);
		return err;
	}
	*out = recs;
	*n_out = n;
	return 0;
}

/* ------------------------------------------------------------------ lifetime */

static void query_free(sdp_query *q)
{
	if (q->timers)
		bt_timer_stop(q->timers, &q->timer);
	free(q->buf);
	free(q);
}

/* The transport is told once that the query no longer needs it. */
static void release(sdp_query *q)
{
	void (*fn)(void *) = q->io.release;
	q->io.release = NULL;
	if (fn)
		fn(q->io.ctx);
}

/* The one place a query ends: transport released, records decoded, callback, freed. */
static void finish(sdp_query *q, int err)
{
	if (q->state == Q_DONE)
		return;
	q->state = Q_DONE;
	if (q->timers)
		bt_timer_stop(q->timers, &q->timer);
	release(q);
	sdp_record **recs = NULL;
	size_t n = 0;
	if (!err)
		err = decode_lists(q->buf, q->len, &recs, &n);
	q->in_cb = true;
	if (q->cb)
		q->cb(q->ctx, err, recs, n);
	free_records(recs, n);
	query_free(q);
}

static void timer_fired(bt_timer *t, void *ctx) { finish(ctx, -ETIMEDOUT); }

void sdp_query_cancel(sdp_query *q)
{
	if (!q || q->in_cb)
		return;
	release(q);
	query_free(q);
}

void sdp_query_fail(sdp_query *q, int err)
{
	finish(q, err < 0 ? err : -ECONNRESET);
}

/* ------------------------------------------------------------------ requests */

/* The fixed part of the ServiceSearchAttributeRequest (Vol 3 Part B 4.7.1). */
static int encode_params(sdp_query *q, const sdp_query_params *p)
{
	if (p->n_uuids < 1 || p->n_uuids > SDP_MAX_PATTERN_UUIDS || p->n_ranges > SDP_CLIENT_MAX_RANGES)
		return -EINVAL;
	sdp_writer w;
	sdp_w_init(&w, q->params, sizeof q->params);
	size_t m = sdp_w_seq_begin(&w);
	for (size_t i = 0; i < p->n_uuids; i++)
		sdp_w_uuid(&w, &p->uuids[i]);
	sdp_w_seq_end(&w, m);
	uint8_t max[2];
	put_be16(max, 0xffff); /* MaximumAttributeByteCount: the MTU limits each response anyway */
	sdp_w_raw(&w, max, 2);
	m = sdp_w_seq_begin(&w);
	for (size_t i = 0; i < p->n_ranges; i++)
		sdp_w_uint32(&w, p->ranges[i]);
	if (p->n_ranges == 0)
		sdp_w_uint32(&w, 0x0000ffff);
	sdp_w_seq_end(&w, m);
	int len = sdp_w_finish(&w);
	if (len < 0)
		return -EINVAL;
	q->params_len = (size_t)len;
	return 0;
}

/* Sends the request with the current continuation state: the header (Vol 3 Part B 4.2), the
 * fixed parameters and ContinuationState (4.3), all through a bounded writer. */
static int send_request(sdp_query *q)
{
	uint8_t pdu[5 + SDP_REQ_PARAMS_MAX + 1 + SDP_MAX_CONT_STATE];
	bt_writer w = bt_writer_init(pdu, sizeof pdu);
	bt_write_u8(&w, SDP_PDU_SSA_REQ);
	bt_write_be16(&w, q->tid);
	bt_write_be16(&w, (uint16_t)(q->params_len + 1 + q->cont_len));
	bt_write_bytes(&w, q->params, q->params_len);
	bt_write_u8(&w, q->cont_len);
	bt_write_bytes(&w, q->cont, q->cont_len);
	if (w.err)
		return -EMSGSIZE; /* cannot happen: params_len and cont_len are bounded when set */
	q->state = Q_WAIT_RSP;
	int err = q->io.send(q->io.ctx, pdu, bt_writer_len(&w));
	q->send_blocked = err == -EAGAIN;
	return err == -EAGAIN ? 0 : err;
}

/* ------------------------------------------------------------------ responses */

static int append(sdp_query *q, const uint8_t *p, size_t n)
{
	if (n > SDP_CLIENT_MAX_BYTES - q->len)
		return -EMSGSIZE;
	if (n == 0)
		return 0;
	if (q->len + n > q->cap) {
		size_t ncap = q->cap ? q->cap : 1024;
		while (ncap < q->len + n)
			ncap *= 2;
		if (ncap > SDP_CLIENT_MAX_BYTES)
			ncap = SDP_CLIENT_MAX_BYTES;
		uint8_t *b = realloc(q->buf, ncap);
		if (!b)
			return -ENOMEM;
		q->buf = b;
		q->cap = ncap;
	}
	memcpy(q->buf + q->len, p, n);
	q->len += n;
	return 0;
}

/* One response: 0 when done, 1 when a continued request went out, or -errno. */
static int on_response(sdp_query *q, const uint8_t *pdu, size_t len)
{
	bt_reader r = bt_reader_init(pdu, len);
	uint8_t pid = bt_read_u8(&r);
	uint16_t tid = bt_read_be16(&r);
	uint16_t plen = bt_read_be16(&r);
	if (r.err || plen != bt_reader_left(&r) || tid != q->tid)
		return -EPROTO;
	if (pid == SDP_PDU_ERROR_RSP) { /* Vol 3 Part B 4.4.1 */
		uint16_t code = bt_read_be16(&r);
		return r.err ? -EPROTO : sdp_error_to_errno(code);
	}
	if (pid != SDP_PDU_SSA_RSP)
		return -EPROTO;
	/* Vol 3 Part B 4.7.2: AttributeListsByteCount, AttributeLists, ContinuationState. */
	uint16_t count = bt_read_be16(&r);
	const uint8_t *lists = bt_read_bytes(&r, count);
	uint8_t cont_len = bt_read_u8(&r);
	const uint8_t *cont = bt_read_bytes(&r, cont_len);
	if (r.err || bt_reader_left(&r) != 0 || cont_len > SDP_MAX_CONT_STATE)
		return -EPROTO;
	int err = append(q, lists, count);
	if (err)
		return err;
	if (cont_len == 0)
		return 0;
	if (++q->rounds > SDP_CLIENT_MAX_ROUNDS)
		return -EPROTO;
	memcpy(q->cont, cont, cont_len);
	q->cont_len = cont_len;
	q->tid++;
	err = send_request(q);
	return err < 0 ? err : 1;
}

void sdp_query_input(sdp_query *q, const uint8_t *pdu, size_t len)
{
	if (q->state != Q_WAIT_RSP || q->send_blocked)
		return; /* nothing asked yet: a stray PDU */
	int r = on_response(q, pdu, len);
	if (r <= 0)
		finish(q, r);
}

void sdp_query_writable(sdp_query *q)
{
	if (q->state != Q_WAIT_RSP || !q->send_blocked)
		return;
	int err = send_request(q);
	if (err < 0)
		finish(q, err);
}

static int query_new(bt_timers *timers, const sdp_query_params *p, sdp_query_cb cb, void *ctx,
		     sdp_query **out)
{
	sdp_query *q = calloc(1, sizeof *q);
	if (!q)
		return -ENOMEM;
	int err = encode_params(q, p);
	if (err < 0) {
		free(q);
		return err;
	}
	q->timers = timers;
	q->cb = cb;
	q->ctx = ctx;
	q->tid = 1;
	q->state = Q_CONNECTING;
	bt_timer_init(&q->timer, timer_fired, q);
	if (timers)
		bt_timer_start(timers, &q->timer, p->timeout_ms ? p->timeout_ms : SDP_CLIENT_DEFAULT_TIMEOUT_MS);
	*out = q;
	return 0;
}

int sdp_query_new(bt_timers *timers, const sdp_query_params *p, const sdp_query_io *io, sdp_query_cb cb,
		  void *ctx, sdp_query **out)
{
	if (!io || !io->send || !out)
		return -EINVAL;
	sdp_query *q;
	int err = query_new(timers, p, cb, ctx, &q);
	if (err < 0)
		return err;
	q->io = *io;
	*out = q;
	return 0;
}

void sdp_query_begin(sdp_query *q)
{
	if (q->state != Q_CONNECTING)
		return;
	int err = send_request(q);
	if (err < 0)
		finish(q, err);
}

sdp_query *sdp_query_new_raw(bt_timers *timers, const sdp_query_params *p, sdp_query_cb cb, void *ctx,
			     sdp_query_send_fn send, void *send_ctx)
{
	sdp_query *q;
	sdp_query_io io = { .ctx = send_ctx, .send = send };
	if (sdp_query_new(timers, p, &io, cb, ctx, &q) < 0)
		return NULL;
	if (send_request(q) < 0) {
		query_free(q);
		return NULL;
	}
	return q;
}

/* ------------------------------------------------------------------ L2CAP glue */

/* A query over a channel of this stack: the channel's callbacks feed the query, the query's
 * io sends on the channel and closes it when the query ends. */
typedef struct {
	sdp_query *q;
	l2cap_chan *ch;
} chan_glue;

static int glue_send(void *ctx, const uint8_t *pdu, size_t len)
{
	chan_glue *g = ctx;
	return l2cap_send(g->ch, pdu, len);
}

static void glue_release(void *ctx)
{
	chan_glue *g = ctx;
	if (g->ch)
		l2cap_close(g->ch);
	free(g);
}

static void ch_opened(void *ctx, l2cap_chan *ch) { sdp_query_begin(((chan_glue *)ctx)->q); }
static void ch_data(void *ctx, l2cap_chan *ch, const uint8_t *p, size_t len)
{
	sdp_query_input(((chan_glue *)ctx)->q, p, len);
}
static void ch_writable(void *ctx, l2cap_chan *ch) { sdp_query_writable(((chan_glue *)ctx)->q); }
static void ch_closed(void *ctx, l2cap_chan *ch, int err) { sdp_query_fail(((chan_glue *)ctx)->q, err); }

static const l2cap_chan_ops query_ops = {
	.opened = ch_opened,
	.data = ch_data,
	.writable = ch_writable,
	.closed = ch_closed,
};

int sdp_query_start(l2cap *l, bt_timers *timers, const bt_addr *peer, const sdp_query_params *p,
		    sdp_query_cb cb, void *ctx, sdp_query **out)
{
	chan_glue *g = calloc(1, sizeof *g);
	if (!g)
		return -ENOMEM;
	sdp_query_io io = { .ctx = g, .send = glue_send, .release = glue_release };
	int err = sdp_query_new(timers, p, &io, cb, ctx, &g->q);
	if (err < 0) {
		free(g);
		return err;
	}
	err = l2cap_connect(l, peer, L2CAP_PSM_SDP, SDP_CLIENT_MTU, &query_ops, g, &g->ch);
	if (err < 0) {
		g->ch = NULL;
		sdp_query_cancel(g->q); /* releases g */
		return err;
	}
	if (out)
		*out = g->q;
	return 0;
}
