/* fuzz_rfcomm.c - libFuzzer target for RFCOMM: arbitrary bytes into the frame parser and the
 * multiplexer-command parsers (rfcomm_frame.h), and frame sequences into a live session on a
 * real stack (the unit-test harness, linked in by tests/CMakeLists.txt, plays the controller).
 *
 * Input: first octet selects the mode.
 *   0: the rest is one frame for rfcomm_frame_parse (then its mux commands, if any)
 *   1: the rest is a run of mux commands for rfcomm_mcc_parse and the value decoders
 *   2+: a session script: chunks [n][flags][n-1 octets]; flags bit 0 set = send the octets
 *       as a raw L2CAP payload, clear = build a valid frame from them (so FCS is right):
 *       [dlci|cr<<6][ctrl index|pf<<3|credit<<4][credits][info...]. Flags bit 1: read
 *       everything buffered on the accepted DLC; bit 2: write 300 octets to it.
 * Every frame the stack sends back must itself parse. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rfcomm/rfcomm_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks that stay on in release builds (assert() is compiled out under NDEBUG). */
#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void decode_values(const rfcomm_mcc *m)
{
	rfcomm_pn pn;
	rfcomm_msc msc;
	rfcomm_rpn rpn;
	rfcomm_rls rls;
	uint8_t t;
	bool cr;
	uint8_t out[8];
	if (rfcomm_pn_decode(m->val, m->len, &pn) == 0)
		CHECK(rfcomm_pn_encode(&pn, out) == 8);
	if (rfcomm_msc_decode(m->val, m->len, &msc) == 0)
		CHECK(rfcomm_msc_encode(&msc, out) <= 3);
	if (rfcomm_rpn_decode(m->val, m->len, &rpn) == 0)
		CHECK(rfcomm_rpn_encode(&rpn, out) <= 8);
	if (rfcomm_rls_decode(m->val, m->len, &rls) == 0)
		CHECK(rfcomm_rls_encode(&rls, out) == 2);
	(void)rfcomm_nsc_decode(m->val, m->len, &t, &cr);
}

static void mcc_run(const uint8_t *p, size_t n)
{
	size_t off = 0;
	while (off < n) {
		rfcomm_mcc m;
		int used = rfcomm_mcc_parse(p + off, n - off, &m);
		if (used <= 0)
			return;
		CHECK((size_t)used <= n - off);
		decode_values(&m);
		off += (size_t)used;
	}
}

static void frame_one(const uint8_t *p, size_t n)
{
	rfcomm_frame f;
	if (rfcomm_frame_parse(p, n, &f) < 0)
		return;
	CHECK(f.info + f.len <= p + n);
	if (f.dlci == 0 && f.ctrl == RFCOMM_UIH)
		mcc_run(f.info, f.len);
}

/* ---- session mode */

typedef struct {
	rfcomm_dlc *d;
} owner;

static void o_opened(void *c, rfcomm_dlc *d) { (void)c; (void)d; }
static void o_readable(void *c, rfcomm_dlc *d) { (void)c; (void)d; }
static void o_writable(void *c, rfcomm_dlc *d) { (void)c; (void)d; }
static void o_closed(void *c, rfcomm_dlc *d, int err) { (void)c; (void)d; (void)err; }
static const rfcomm_dlc_ops o_ops = { o_opened, o_readable, o_writable, o_closed };

static int o_accept(void *srv, rfcomm_dlc *d, const rfcomm_dlc_ops **ops, void **ctx)
{
	owner *o = srv;
	if (o->d)
		rfcomm_close(o->d);
	o->d = d;
	*ops = &o_ops;
	*ctx = o;
	return 0;
}

/* Takes everything the stack sent: RFCOMM frames must parse; the peer's L2CAP answers
 * Disconnection and Echo Requests (Core Vol 3 Part A 4.6, 4.8) like a real peer would. */
static void drain_out(harness *h, uint16_t handle)
{
	uint8_t buf[8192];
	uint16_t cid;
	int n;
	while ((n = harness_l2cap_out(h, NULL, &cid, buf, sizeof buf)) >= 0) {
		if (cid == 0x0001 && n >= 8 && buf[0] == 0x06) {
			harness_sig_in(h, handle, 0x07, buf[1], buf + 4, 4);
		} else if (cid == 0x0001 && n >= 4 && buf[0] == 0x08) {
			harness_sig_in(h, handle, 0x09, buf[1], NULL, 0);
		} else if (cid == 0x0040) {
			rfcomm_frame f;
			CHECK(rfcomm_frame_parse(buf, (size_t)n, &f) == 0);
		}
	}
}

static const uint8_t ctrls[] = { RFCOMM_SABM, RFCOMM_UA, RFCOMM_DM, RFCOMM_DISC, RFCOMM_UIH,
				 RFCOMM_UIH, RFCOMM_UIH, RFCOMM_UIH };

static void session_run(const uint8_t *p, size_t n)
{
	harness *h = harness_new(8);
	rfcomm *rf = bt_stack_rfcomm(harness_stack(h));
	owner o = { NULL };
	rfcomm_listen(rf, 1, o_accept, &o);
	rfcomm_listen(rf, 2, o_accept, &o);
	bt_addr peer;
	bt_addr_parse("00:BB:02:00:00:02", &peer);
	uint16_t handle = harness_link_up(h, &peer);
	uint16_t cid = harness_open_channel(h, handle, L2CAP_PSM_RFCOMM, 0x0040, 1000);
	CHECK(cid);
	const uint8_t sabm0[] = { 0x03, 0x3f, 0x01, 0x1c };
	harness_l2cap_in(h, handle, cid, sabm0, sizeof sabm0);
	drain_out(h, handle);
	size_t off = 0;
	while (off + 2 <= n) {
		size_t len = p[off];
		uint8_t flags = p[off + 1];
		off += 2;
		if (len > n - off)
			len = n - off;
		const uint8_t *c = p + off;
		off += len;
		if (flags & 0x01) {
			harness_l2cap_in(h, handle, cid, c, len);
		} else if (len >= 3) {
			uint8_t fr[300];
			int credits = (c[1] & 0x10) ? c[2] : -1;
			size_t fl = rfcomm_frame_build(fr, sizeof fr, c[0] & 0x3f, (c[0] & 0x40) != 0,
						       ctrls[c[1] & 7], (c[1] & 0x08) != 0, credits, c + 3, len - 3);
			if (fl)
				harness_l2cap_in(h, handle, cid, fr, fl);
		}
		if (o.d && (flags & 0x02)) {
			uint8_t sink[1024];
			while (rfcomm_read(o.d, sink, sizeof sink) > 0)
				;
		}
		if (o.d && (flags & 0x04)) {
			uint8_t src[300];
			memset(src, 0x55, sizeof src);
			(void)rfcomm_write(o.d, src, sizeof src);
		}
		if (flags & 0x08)
			harness_advance(h, 3000);
		drain_out(h, handle);
	}
	if (o.d)
		rfcomm_close(o.d);
	harness_link_down(h, handle, 0x13);
	drain_out(h, handle);
	harness_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0]) {
	case 0:
		frame_one(data + 1, size - 1);
		break;
	case 1:
		mcc_run(data + 1, size - 1);
		break;
	default:
		session_run(data + 1, size - 1);
		break;
	}
	return 0;
}
