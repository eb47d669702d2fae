/* fuzz_peer.h - the remote device's side for the stateful fuzz targets (fuzz_l2cap_chan,
 * fuzz_rfcomm_session, fuzz_sdp_cont, fuzz_acl_reassembly). Header only: every
 * tests/fuzz/fuzz_*.c is a target of its own (tests/CMakeLists.txt), so shared code cannot
 * be a .c file there.
 *
 * Inputs of these targets are a run of chunks [hdr][len][len octets]: hdr says what to do with
 * the octets (each target documents its bits), len is clipped to what is left. */
#ifndef BTSOCK_FUZZ_PEER_H
#define BTSOCK_FUZZ_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "harness.h"

/* A check that stays on in every build (assert() goes under NDEBUG): a setup that did not
 * reach its state must stop the run, or the target fuzzes the wrong thing. */
#define CHECK(c) do { if (!(c)) abort(); } while (0)

/* Signalling codes, Core spec Vol 3 Part A 4. */
enum {
	FZ_SIG_CMD_REJECT = 0x01,
	FZ_SIG_CONN_REQ = 0x02,
	FZ_SIG_CONN_RSP = 0x03,
	FZ_SIG_CONF_REQ = 0x04,
	FZ_SIG_CONF_RSP = 0x05,
	FZ_SIG_DISC_REQ = 0x06,
	FZ_SIG_DISC_RSP = 0x07,
	FZ_SIG_ECHO_REQ = 0x08,
	FZ_SIG_ECHO_RSP = 0x09,
};

#define FZ_PEER_CID 0x0040 /* the peer's CID on the one channel each target opens */
#define FZ_USER_PSM 0x1001 /* first dynamic PSM, Vol 3 Part A 4.2 */

typedef struct {
	const uint8_t *p;
	size_t n, off;
} fz_input;

typedef struct {
	uint8_t hdr;
	const uint8_t *p;
	size_t len;
} fz_chunk;

/* The next chunk, or false at the end of the input. */
static inline bool fz_next(fz_input *in, fz_chunk *c)
{
	if (in->off + 2 > in->n)
		return false;
	c->hdr = in->p[in->off];
	size_t len = in->p[in->off + 1];
	in->off += 2;
	if (len > in->n - in->off)
		len = in->n - in->off;
	c->p = in->p + in->off;
	c->len = len;
	in->off += len;
	return true;
}

/* What the peer saw the stack send, for the targets' oracles and splicing. */
typedef void (*fz_pdu_fn)(void *ctx, uint16_t cid, const uint8_t *p, size_t n);

typedef struct {
	uint8_t conf_req_ident; /* ident of the stack's last Configuration Request, 0: none */
	unsigned sig_seen, data_seen, echo_rsps;
} fz_peer_log;

#define FZ_ANSWERS 64

typedef struct {
	uint16_t handle;
	uint8_t code, ident, d[4];
	size_t dl;
} fz_answer_t;

/* The peer: takes what the stack sends (through the harness's PDU sink once attached, so
 * that no input can overflow the harness's queue) and answers Disconnection and Echo Requests
 * (Vol 3 Part A 4.6, 4.8) like a real peer, so that closing and link supervision complete.
 * Answers are sent from fz_drain(), never from inside the stack's send callback. */
typedef struct {
	harness *h;
	fz_peer_log log;
	fz_pdu_fn fn; /* gets every PDU not on CID 0x0001 */
	void *ctx;
	fz_answer_t ans[FZ_ANSWERS];
	size_t nans;
} fz_peer;

static inline void fz_answer(fz_peer *p, uint16_t handle, uint8_t code, uint8_t ident, const uint8_t *d, size_t dl)
{
	if (p->nans == FZ_ANSWERS)
		return; /* a peer that falls behind; RTX covers it */
	p->ans[p->nans].handle = handle;
	p->ans[p->nans].code = code;
	p->ans[p->nans].ident = ident;
	if (dl)
		memcpy(p->ans[p->nans].d, d, dl);
	p->ans[p->nans].dl = dl;
	p->nans++;
}

/* One PDU from the stack. A C-frame may carry several commands (Vol 3 Part A 4). */
static inline void fz_take(void *ctx, uint16_t handle, uint16_t cid, const uint8_t *b, size_t n)
{
	fz_peer *p = ctx;
	if (cid != 0x0001) {
		p->log.data_seen++;
		if (p->fn)
			p->fn(p->ctx, cid, b, n);
		return;
	}
	p->log.sig_seen++;
	for (size_t off = 0; off + 4 <= n;) {
		uint8_t code = b[off], id = b[off + 1];
		size_t dl = get_le16(b + off + 2);
		if (off + 4 + dl > n)
			break;
		if (code == FZ_SIG_DISC_REQ && dl >= 4)
			fz_answer(p, handle, FZ_SIG_DISC_RSP, id, b + off + 4, 4);
		else if (code == FZ_SIG_ECHO_REQ)
			fz_answer(p, handle, FZ_SIG_ECHO_RSP, id, NULL, 0);
		else if (code == FZ_SIG_ECHO_RSP)
			p->log.echo_rsps++;
		else if (code == FZ_SIG_CONF_REQ)
			p->log.conf_req_ident = id;
		off += 4 + dl;
	}
}

static inline void fz_peer_init(fz_peer *p, harness *h, fz_pdu_fn fn, void *ctx)
{
	memset(p, 0, sizeof *p);
	p->h = h;
	p->fn = fn;
	p->ctx = ctx;
}

/* From now on PDUs go to the peer as they are sent (the harness_* setup helpers that read
 * the queue must have run before). */
static inline void fz_peer_attach(fz_peer *p) { harness_set_pdu_sink(p->h, fz_take, p); }

/* Takes everything the stack sent and sends the answers due, until it is quiet. */
static inline void fz_drain(fz_peer *p)
{
	uint8_t b[8192];
	uint16_t cid, hd;
	for (;;) {
		int n;
		while ((n = harness_l2cap_out(p->h, &hd, &cid, b, sizeof b)) >= 0)
			fz_take(p, hd, cid, b, (size_t)n);
		if (!p->nans)
			return;
		/* Sending may bring new answers: work on a copy. */
		size_t k = p->nans;
		fz_answer_t due[FZ_ANSWERS];
		memcpy(due, p->ans, k * sizeof due[0]);
		p->nans = 0;
		for (size_t i = 0; i < k; i++)
			harness_sig_in(p->h, due[i].handle, due[i].code, due[i].ident, due[i].d, due[i].dl);
	}
}

/* Configuration Request (Vol 3 Part A 4.4): DCID, flags, then the options as given, reps
 * times over (many options in one request, as a peer may send), at most FZ_OPTS_MAX octets so
 * that the C-frame stays within our MTUsig (4). */
#define FZ_OPTS_MAX 1000

/* o[0..n) reps times over into out (FZ_OPTS_MAX octets); returns the length. */
static inline size_t fz_repeat(uint8_t *out, const uint8_t *o, size_t n, unsigned reps)
{
	size_t len = 0;
	for (unsigned i = 0; i < reps && n && len + n <= FZ_OPTS_MAX; i++, len += n)
		memcpy(out + len, o, n);
	return len;
}

static inline void fz_conf_req(harness *h, uint16_t handle, uint8_t ident, uint16_t dcid, uint16_t flags,
			       const uint8_t *opts, size_t n, unsigned reps)
{
	uint8_t d[4 + FZ_OPTS_MAX];
	put_le16(d, dcid);
	put_le16(d + 2, flags);
	size_t len = 4 + fz_repeat(d + 4, opts, n, reps);
	harness_sig_in(h, handle, FZ_SIG_CONF_REQ, ident, d, len);
}

/* A successful Configuration Response without options (Vol 3 Part A 4.5) to the stack's
 * outstanding request, if there is one. Its SCID names the channel at the receiver: the
 * stack's CID. */
static inline void fz_conf_rsp_ok(fz_peer *p, uint16_t handle, uint16_t stack_cid)
{
	if (!p->log.conf_req_ident)
		return;
	uint8_t rsp[6];
	put_le16(rsp, stack_cid);
	put_le16(rsp + 2, 0);
	put_le16(rsp + 4, 0);
	uint8_t id = p->log.conf_req_ident;
	p->log.conf_req_ident = 0;
	harness_sig_in(p->h, handle, FZ_SIG_CONF_RSP, id, rsp, 6);
}

/* Ends the run cleanly: the link goes down first so that what the stack sends while it shuts
 * down is still taken, then everything is freed (LeakSanitizer is on). */
static inline void fz_teardown(fz_peer *p, uint16_t handle)
{
	harness_link_down(p->h, handle, 0x13);
	fz_drain(p);
	harness_set_pdu_sink(p->h, NULL, NULL);
	harness_free(p->h);
}

#endif
