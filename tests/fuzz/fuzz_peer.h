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
	unsigned sig_seen, data_seen;
} fz_peer_log;

/* Takes every PDU the stack sent. Like a real peer, answers Disconnection and Echo Requests
 * (Vol 3 Part A 4.6, 4.8) so that closing and link supervision can complete; everything on
 * another CID goes to fn. The harness holds at most 512 PDUs: call this after each chunk. */
static inline void fz_drain(harness *h, uint16_t handle, fz_peer_log *log, fz_pdu_fn fn, void *ctx)
{
	uint8_t buf[8192];
	uint16_t cid, hd;
	int n;
	while ((n = harness_l2cap_out(h, &hd, &cid, buf, sizeof buf)) >= 0) {
		if (cid != 0x0001) {
			if (log)
				log->data_seen++;
			if (fn)
				fn(ctx, cid, buf, (size_t)n);
			continue;
		}
		if (log)
			log->sig_seen++;
		/* A C-frame may carry several commands (Vol 3 Part A 4). */
		size_t off = 0;
		while (off + 4 <= (size_t)n) {
			uint8_t code = buf[off], id = buf[off + 1];
			size_t dl = get_le16(buf + off + 2);
			if (off + 4 + dl > (size_t)n)
				break;
			const uint8_t *d = buf + off + 4;
			if (code == FZ_SIG_DISC_REQ && dl >= 4) {
				uint8_t rsp[4];
				memcpy(rsp, d, 4);
				harness_sig_in(h, hd, FZ_SIG_DISC_RSP, id, rsp, 4);
			} else if (code == FZ_SIG_ECHO_REQ) {
				harness_sig_in(h, hd, FZ_SIG_ECHO_RSP, id, NULL, 0);
			} else if (code == FZ_SIG_CONF_REQ && log) {
				log->conf_req_ident = id;
			}
			off += 4 + dl;
		}
	}
}

/* Configuration Request (Vol 3 Part A 4.4): DCID, flags, then options as given. */
static inline void fz_conf_req(harness *h, uint16_t handle, uint8_t ident, uint16_t dcid, uint16_t flags,
			       const uint8_t *opts, size_t n)
{
	uint8_t d[4 + 255];
	if (n > 255)
		n = 255;
	put_le16(d, dcid);
	put_le16(d + 2, flags);
	if (n)
		memcpy(d + 4, opts, n);
	harness_sig_in(h, handle, FZ_SIG_CONF_REQ, ident, d, 4 + n);
}

/* A successful Configuration Response without options (Vol 3 Part A 4.5) to the stack's
 * outstanding request, if there is one. Its SCID names the channel at the receiver: the
 * stack's CID. */
static inline void fz_conf_rsp_ok(harness *h, uint16_t handle, uint16_t stack_cid, fz_peer_log *log)
{
	if (!log->conf_req_ident)
		return;
	uint8_t rsp[6];
	put_le16(rsp, stack_cid);
	put_le16(rsp + 2, 0);
	put_le16(rsp + 4, 0);
	harness_sig_in(h, handle, FZ_SIG_CONF_RSP, log->conf_req_ident, rsp, 6);
	log->conf_req_ident = 0;
}

/* Ends the run cleanly: the link goes down first so that what the stack sends while it shuts
 * down is still taken, then everything is freed (LeakSanitizer is on). */
static inline void fz_teardown(harness *h, uint16_t handle)
{
	harness_link_down(h, handle, 0x13);
	fz_drain(h, handle, NULL, NULL, NULL);
	harness_free(h);
}

#endif
