/* test_rfcomm_session.c - RFCOMM sessions and DLCs (RFCOMM spec v1.2, ETSI TS 07.10) through a
 * real stack driven by the harness: the test plays the peer's RFCOMM over an L2CAP channel on
 * PSM 3. Each test names the section it checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "harness.h"
#include "hci/hci_defs.h"
#include "rfcomm/rfcomm_frame.h"

#define PEER_CID 0x0040
#define PEER_MTU 1000 /* our N1 offer becomes min(1024, 1000) - 6 = 994 */

/* What the owner of one DLC saw. */
typedef struct {
	rfcomm_dlc *d;
	int accepts, opened, readable, writable, closed, close_err;
	int refuse; /* accept returns this if non-zero */
} rec;

static void r_opened(void *c, rfcomm_dlc *d) { ((rec *)c)->opened++; }
static void r_readable(void *c, rfcomm_dlc *d) { ((rec *)c)->readable++; }
static void r_writable(void *c, rfcomm_dlc *d) { ((rec *)c)->writable++; }
static void r_closed(void *c, rfcomm_dlc *d, int err)
{
	rec *r = c;
	r->closed++;
	r->close_err = err;
}
static const rfcomm_dlc_ops rec_ops = { r_opened, r_readable, r_writable, r_closed };

static int rec_accept(void *srv, rfcomm_dlc *d, const rfcomm_dlc_ops **ops, void **ctx)
{
	rec *r = srv;
	r->accepts++;
	if (r->refuse)
		return r->refuse;
	r->d = d;
	*ops = &rec_ops;
	*ctx = r;
	return 0;
}

typedef struct {
	harness *h;
	rfcomm *rf;
	bt_addr peer;
	uint16_t handle, cid; /* the stack's CID on the RFCOMM channel */
	bool initiator;       /* whether the test's peer is the session initiator */
	rec r;
	uint8_t buf[4096];    /* last frame taken from the stack */
	rfcomm_frame f;
} fixture;

/* Most tests were written for an 8 KiB ring that does not grow and a 16 KiB budget: they keep
 * them. test_rx_ring_grows_when_streaming runs with the defaults. */
static int setup_with(void **state, const rfcomm_config *rc)
{
	fixture *f = calloc(1, sizeof *f);
	f->h = harness_new_rfcomm(8, rc);
	f->rf = bt_stack_rfcomm(harness_stack(f->h));
	assert_non_null(f->rf);
	bt_addr_parse("00:BB:02:00:00:02", &f->peer);
	f->handle = harness_link_up(f->h, &f->peer);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	const rfcomm_config rc = { .rx_buffer = 8192, .rx_budget = 16384 };
	return setup_with(state, &rc);
}

static int setup_defaults(void **state) { return setup_with(state, NULL); }

static int teardown(void **state)
{
	fixture *f = *state;
	if (f->r.d)
		rfcomm_close(f->r.d);
	/* Drop the link first: harness_free() frees its captured PDUs before the stack, so
	 * anything sent while the stack shuts down (L2CAP Disconnection Requests) would leak. */
	harness_link_down(f->h, f->handle, 0x13);
	uint8_t sink[64];
	while (harness_l2cap_out(f->h, NULL, NULL, sink, sizeof sink) >= 0)
		;
	harness_free(f->h);
	free(f);
	return 0;
}

/* ---- the peer's side */

static bool cmd_cr(const fixture *f) { return f->initiator; }
static bool rsp_cr(const fixture *f) { return !f->initiator; }

static void send_raw(fixture *f, const uint8_t *p, size_t n) { harness_l2cap_in(f->h, f->handle, f->cid, p, n); }

static void send_frame(fixture *f, uint8_t dlci, bool cr, uint8_t ctrl, bool pf, int credits, const void *info, size_t len)
{
	uint8_t b[2048];
	size_t n = rfcomm_frame_build(b, sizeof b, dlci, cr, ctrl, pf, credits, info, len);
	assert_true(n > 0);
	send_raw(f, b, n);
}

static void send_mcc(fixture *f, uint8_t type, bool cr, const uint8_t *v, size_t len)
{
	uint8_t m[600];
	size_t n = rfcomm_mcc_build(m, sizeof m, type, cr, v, len);
	send_frame(f, 0, cmd_cr(f), RFCOMM_UIH, false, -1, m, n);
}

/* Takes the next RFCOMM frame the stack sent (skipping signalling); false if none. */
static bool take(fixture *f)
{
	uint16_t cid;
	for (;;) {
		int n = harness_l2cap_out(f->h, NULL, &cid, f->buf, sizeof f->buf);
		if (n < 0)
			return false;
		if (cid != PEER_CID)
			continue;
		assert_int_equal(rfcomm_frame_parse(f->buf, (size_t)n, &f->f), 0);
		return true;
	}
}

static void expect(fixture *f, uint8_t dlci, uint8_t ctrl)
{
	assert_true(take(f));
	assert_int_equal(f->f.dlci, dlci);
	assert_int_equal(f->f.ctrl, ctrl);
}

/* The next frame is a mux command/response of this type; its value is returned in m. */
static void expect_mcc(fixture *f, uint8_t type, bool cr, rfcomm_mcc *m)
{
	expect(f, 0, RFCOMM_UIH);
	assert_true(rfcomm_mcc_parse(f->f.info, f->f.len, m) > 0);
	assert_int_equal(m->type, type);
	assert_int_equal(m->cr, cr);
}

/* The peer opens L2CAP on PSM 3 and the multiplexer (RFCOMM spec 5.2.1). */
static void open_session(fixture *f)
{
	f->initiator = true;
	f->cid = harness_open_channel(f->h, f->handle, L2CAP_PSM_RFCOMM, PEER_CID, PEER_MTU);
	assert_int_not_equal(f->cid, 0);
	send_frame(f, 0, true, RFCOMM_SABM, true, -1, NULL, 0);
	assert_true(take(f));
	/* TS 07.10 5.2.1.6 vector: UA on DLCI 0 from the responder is 03 73 01 D7. */
	const uint8_t ua[] = { 0x03, 0x73, 0x01, 0xd7 };
	assert_memory_equal(f->buf, ua, 4);
}

static void send_pn(fixture *f, uint8_t dlci, bool cr, uint8_t cl, uint16_t n1, uint8_t k)
{
	rfcomm_pn pn = { .dlci = dlci, .cl = cl, .priority = 7, .n1 = n1, .k = k };
	uint8_t v[8];
	send_mcc(f, RFCOMM_MCC_PN, cr, v, rfcomm_pn_encode(&pn, v));
}

static void send_msc(fixture *f, uint8_t dlci, bool cr, uint8_t v24)
{
	rfcomm_msc m = { .dlci = dlci, .v24 = v24 };
	uint8_t v[3];
	send_mcc(f, RFCOMM_MCC_MSC, cr, v, rfcomm_msc_encode(&m, v));
}

/* Opens DLC dlci to the stack's listener: PN (CFC, n1, k), SABM, MSC both ways. Returns the
 * credits the stack granted in total (PN K plus any credit frames). */
static unsigned open_dlc_n(fixture *f, uint8_t dlci, uint16_t n1, uint8_t k, int opened_after);
static unsigned open_dlc(fixture *f, uint8_t dlci, uint16_t n1, uint8_t k) { return open_dlc_n(f, dlci, n1, k, 1); }

/* Opens dlci from the peer's side; the owner's opened count is then opened_after. Returns the
 * credits the stack granted (PN's K and any credit frame). */
static unsigned open_dlc_n(fixture *f, uint8_t dlci, uint16_t n1, uint8_t k, int opened_after)
{
	rfcomm_mcc m;
	rfcomm_pn pn;
	send_pn(f, dlci, true, RFCOMM_PN_CL_CFC_REQ, n1, k);
	expect_mcc(f, RFCOMM_MCC_PN, false, &m);
	assert_int_equal(rfcomm_pn_decode(m.val, m.len, &pn), 0);
	assert_int_equal(pn.dlci, dlci);
	assert_int_equal(pn.cl, RFCOMM_PN_CL_CFC_RSP); /* RFCOMM spec 5.5.3 */
	unsigned credits = pn.k;
	send_frame(f, dlci, true, RFCOMM_SABM, true, -1, NULL, 0);
	expect(f, dlci, RFCOMM_UA);
	assert_true(f->f.pf);
	assert_true(f->f.cr); /* TS 07.10 5.2.1.2: a response from the responder has C/R 1 */
	/* RFCOMM spec 6.2: MSC from the stack, and credits beyond K in a credit frame. */
	bool msc = false;
	while (take(f)) {
		if (f->f.dlci == dlci && f->f.ctrl == RFCOMM_UIH) {
			assert_true(f->f.has_credits);
			assert_int_equal(f->f.len, 0);
			credits += f->f.credits;
		} else if (f->f.dlci == 0 && f->f.ctrl == RFCOMM_UIH) {
			assert_true(rfcomm_mcc_parse(f->f.info, f->f.len, &m) > 0);
			assert_int_equal(m.type, RFCOMM_MCC_MSC);
			assert_true(m.cr);
			msc = true;
		}
	}
	assert_true(msc);
	/* Connected at UA (as a kernel socket); what the owner writes now waits for the MSC
	 * exchange (RFCOMM spec 6.2). */
	assert_int_equal(f->r.opened, opened_after);
	rfcomm_dlc *d = f->r.d;
	bool probe = d && opened_after == 1 && k > 0;
	if (probe) {
		assert_int_equal(rfcomm_write(d, (const uint8_t *)"x", 1), 1);
		assert_false(take(f));
	}
	send_msc(f, dlci, true, 0x8d);
	expect_mcc(f, RFCOMM_MCC_MSC, false, &m);
	assert_false(take(f)); /* ours is not answered yet */
	send_msc(f, dlci, false, 0x8d);
	assert_int_equal(f->r.opened, opened_after);
	if (probe) {
		expect(f, dlci, RFCOMM_UIH); /* now it leaves */
		assert_int_equal(f->f.len, 1);
		assert_int_equal(f->f.info[0], 'x');
		send_frame(f, dlci, true, RFCOMM_UIH, true, 1, NULL, 0); /* the credit back */
	}
	return credits;
}

/* RFCOMM spec 5.2.1, TS 07.10 5.4.1: SABM on DLCI 0 opens the multiplexer with a UA. */
static void test_session_sabm_ua(void **state)
{
	fixture *f = *state;
	open_session(f);
	/* A second SABM 0 is answered again, nothing else happens. */
	send_frame(f, 0, true, RFCOMM_SABM, true, -1, NULL, 0);
	expect(f, 0, RFCOMM_UA);
	assert_false(take(f));
}

/* RFCOMM spec 5.2 / TS 07.10 5.3.3: SABM or PN for a channel nobody listens on gets DM. */
static void test_dm_for_unknown_channel(void **state)
{
	fixture *f = *state;
	open_session(f);
	send_frame(f, 5 << 1, true, RFCOMM_SABM, true, -1, NULL, 0);
	expect(f, 5 << 1, RFCOMM_DM);
	assert_true(f->f.pf);
	send_pn(f, 6 << 1, true, RFCOMM_PN_CL_CFC_REQ, 100, 7);
	expect(f, 6 << 1, RFCOMM_DM);
	/* A listener that refuses also answers DM (rfcomm.h accept contract). */
	assert_int_equal(rfcomm_listen(f->rf, 3, rec_accept, &f->r), 3);
	f->r.refuse = -ECONNREFUSED;
	send_frame(f, 3 << 1, true, RFCOMM_SABM, true, -1, NULL, 0);
	expect(f, 3 << 1, RFCOMM_DM);
	assert_int_equal(f->r.accepts, 1);
	/* RFCOMM spec 5.4: the wrong direction bit (our own DLCI space) is refused too. */
	f->r.refuse = 0;
	send_frame(f, 3 << 1 | 1, true, RFCOMM_SABM, true, -1, NULL, 0);
	expect(f, 3 << 1 | 1, RFCOMM_DM);
	assert_int_equal(f->r.accepts, 1);
}

/* RFCOMM spec 5.5.3 PN (N1 = min, CFC), 6.2 MSC, data both ways. */
static void test_pn_sabm_msc_data(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	unsigned credits = open_dlc(f, 2, 500, 3);
	assert_non_null(f->r.d);
	assert_int_equal(rfcomm_dlc_mtu(f->r.d), 500);
	assert_int_equal(rfcomm_dlc_channel(f->r.d), 1);
	/* Never more credits than the 8 KiB ring holds in N1-sized frames (RFCOMM spec 6.5). */
	assert_true(credits >= 1);
	assert_true(credits * 500 <= 8192);
	assert_int_equal(credits, 8192 / 500);

	send_frame(f, 2, true, RFCOMM_UIH, false, -1, "hello", 5);
	assert_int_equal(f->r.readable, 1);
	uint8_t in[16];
	assert_int_equal(rfcomm_readable(f->r.d), 5);
	assert_int_equal(rfcomm_read(f->r.d, in, sizeof in), 5);
	assert_memory_equal(in, "hello", 5);

	assert_int_equal(rfcomm_write(f->r.d, (const uint8_t *)"world", 5), 5);
	expect(f, 2, RFCOMM_UIH);
	assert_false(f->f.cr); /* TS 07.10 5.2.1.2: a command from the responder has C/R 0 */
	assert_int_equal(f->f.len, 5);
	assert_memory_equal(f->f.info, "world", 5);
}

/* RFCOMM spec 6.5: our sending stops at zero credits and resumes when the peer grants more;
 * data is cut into N1-sized frames. */
static void test_tx_credits(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	open_dlc(f, 2, 100, 2); /* the peer gives us 2 credits, N1 100 */
	uint8_t data[450];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)i;
	assert_int_equal(rfcomm_write(f->r.d, data, sizeof data), sizeof data);
	expect(f, 2, RFCOMM_UIH);
	assert_int_equal(f->f.len, 100);
	assert_memory_equal(f->f.info, data, 100);
	expect(f, 2, RFCOMM_UIH);
	assert_int_equal(f->f.len, 100);
	assert_false(take(f)); /* out of credits */
	/* A credit-only frame from the peer (UIH, P/F, no data) releases three more. */
	send_frame(f, 2, true, RFCOMM_UIH, false, 3, NULL, 0);
	size_t got = 200;
	while (take(f)) {
		assert_int_equal(f->f.dlci, 2);
		assert_memory_equal(f->f.info, data + got, f->f.len);
		got += f->f.len;
	}
	assert_int_equal(got, sizeof data);
}

/* RFCOMM spec 6.5: a frame beyond the granted credits is dropped (memory stays fixed); credits
 * come back only as rfcomm_read() frees room, batched. */
static void test_rx_credits(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	unsigned credits = open_dlc(f, 2, 512, 7);
	assert_int_equal(credits, 16);
	uint8_t chunk[512];
	for (unsigned i = 0; i < credits; i++) {
		memset(chunk, (int)i, sizeof chunk);
		send_frame(f, 2, true, RFCOMM_UIH, false, -1, chunk, sizeof chunk);
	}
	assert_int_equal(rfcomm_readable(f->r.d), 8192);
	assert_false(take(f)); /* no room, so no credits */
	/* A frame without a credit: dropped. */
	send_frame(f, 2, true, RFCOMM_UIH, false, -1, chunk, 100);
	assert_int_equal(rfcomm_readable(f->r.d), 8192);
	/* Reading one frame's worth is not yet half the window: still no credit frame. */
	uint8_t out[8192];
	assert_int_equal(rfcomm_read(f->r.d, out, 512), 512);
	assert_int_equal(out[0], 0);
	assert_false(take(f));
	/* Reading half the ring returns credits for exactly the room there is. */
	assert_int_equal(rfcomm_read(f->r.d, out, 3584), 3584);
	expect(f, 2, RFCOMM_UIH);
	assert_true(f->f.has_credits);
	assert_int_equal(f->f.credits, 8);
	assert_int_equal(f->f.len, 0);
	/* Credits ride on data when we have some to send. */
	assert_int_equal(rfcomm_read(f->r.d, out, 512), 512);
	assert_int_equal(rfcomm_write(f->r.d, (const uint8_t *)"x", 1), 1);
	expect(f, 2, RFCOMM_UIH);
	assert_true(f->f.has_credits);
	assert_int_equal(f->f.credits, 1);
	assert_int_equal(f->f.len, 1);
}

/* With the defaults a DLC starts with an 8 KiB ring (idle channels stay small) and its credit
 * stays within it while the peer exchanges a little; once the peer has sent 8 KiB, the ring
 * grows to 24 KiB and the window with it (fewer credit frames and receiver wake-ups for a
 * stream), and still every credited frame fits (RFCOMM spec 6.5). */
static void test_rx_ring_grows_when_streaming(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	unsigned held = open_dlc(f, 2, 512, 7);
	assert_int_equal(held, 16); /* the starting ring: 8192 / 512 */
	uint8_t chunk[512], out[24576];
	/* A few messages: read, and credit comes back within the small ring. */
	for (int i = 0; i < 4; i++) {
		send_frame(f, 2, true, RFCOMM_UIH, false, -1, chunk, 100);
		held--;
		assert_int_equal(rfcomm_read(f->r.d, out, sizeof out), 100);
		while (take(f))
			if (f->f.dlci == 2 && f->f.has_credits)
				held += f->f.credits;
		assert_true(held <= 16);
	}
	/* The peer streams a starting ring's worth and more; the application reads less than
	 * arrives, so the ring wraps and holds data when it grows: what it held moves intact. */
	size_t sent = 0, got = 0;
	while (sent < 12 * 1024) {
		assert_true(held > 0);
		for (size_t i = 0; i < sizeof chunk; i++)
			chunk[i] = (uint8_t)((sent + i) * 7);
		send_frame(f, 2, true, RFCOMM_UIH, false, -1, chunk, sizeof chunk);
		held--;
		sent += sizeof chunk;
		size_t n = rfcomm_read(f->r.d, out, 300);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(out[i], (uint8_t)((got + i) * 7));
		got += n;
		while (take(f))
			if (f->f.dlci == 2 && f->f.has_credits)
				held += f->f.credits;
	}
	size_t n = rfcomm_read(f->r.d, out, sizeof out);
	assert_int_equal(got + n, sent);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(out[i], (uint8_t)((got + i) * 7));
	while (take(f))
		if (f->f.dlci == 2 && f->f.has_credits)
			held += f->f.credits;
	/* Beyond the starting ring's 16 frames (credits go out in batches of half the window). */
	assert_true(held > 16 && held <= 48);
	unsigned k = held;
	for (unsigned i = 0; i < k; i++) {
		memset(chunk, (int)i, sizeof chunk);
		send_frame(f, 2, true, RFCOMM_UIH, false, -1, chunk, sizeof chunk);
	}
	assert_int_equal(rfcomm_readable(f->r.d), k * 512);
	send_frame(f, 2, true, RFCOMM_UIH, false, -1, chunk, 100); /* no credit: dropped */
	assert_int_equal(rfcomm_readable(f->r.d), k * 512);
	assert_int_equal(rfcomm_read(f->r.d, out, sizeof out), k * 512);
	for (unsigned i = 0; i < k; i++)
		assert_int_equal(out[i * 512], (uint8_t)i);
	held = 0;
	while (take(f))
		if (f->f.dlci == 2 && f->f.has_credits)
			held += f->f.credits;
	assert_int_equal(held, 48); /* 24576 / 512: the grown ring, all of the 24 KiB budget */
}

/* rfcomm_rx_streaming: 4 full-size frames in a row from the peer make a stream (the runtime
 * then coalesces longer); a short frame, or data of ours in between, ends it. */
static void test_rx_streaming(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	open_dlc(f, 2, 512, 7);
	uint8_t chunk[512] = { 0 }, out[4096];
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 3; i++) {
			send_frame(f, 2, true, RFCOMM_UIH, false, -1, chunk, sizeof chunk);
			assert_false(rfcomm_rx_streaming(f->rf));
		}
		send_frame(f, 2, true, RFCOMM_UIH, false, -1, chunk, sizeof chunk);
		assert_true(rfcomm_rx_streaming(f->rf));
		send_frame(f, 2, true, RFCOMM_UIH, false, -1, chunk, sizeof chunk);
		assert_true(rfcomm_rx_streaming(f->rf));
		if (round == 0) {
			send_frame(f, 2, true, RFCOMM_UIH, false, -1, chunk, 100); /* its queue ran dry */
		} else {
			assert_int_equal(rfcomm_write(f->r.d, (const uint8_t *)"ok", 2), 2); /* we answer */
			expect(f, 2, RFCOMM_UIH);
		}
		assert_false(rfcomm_rx_streaming(f->rf));
		while (rfcomm_read(f->r.d, out, sizeof out) > 0)
			;
		while (take(f))
			;
	}
}

/* Several DLCs for the budget test: each accepted DLC in order. */
static rfcomm_dlc *many[8];
static int n_many;
static int many_accept(void *srv, rfcomm_dlc *d, const rfcomm_dlc_ops **ops, void **ctx)
{
	many[n_many++] = d;
	*ops = &rec_ops;
	*ctx = srv;
	return 0;
}

/* Credits the peer holds for the frames it may still send, per DLC, from the frames taken:
 * adds every credit the stack grants to dlci (index dlci / 2 - 1). */
static void take_grants(fixture *f, unsigned *held)
{
	while (take(f))
		if (f->f.ctrl == RFCOMM_UIH && f->f.dlci >= 2 && f->f.has_credits)
			held[f->f.dlci / 2 - 1] += f->f.credits;
}

static unsigned held_sum(const unsigned *held)
{
	unsigned sum = 0;
	for (int i = 0; i < 8; i++)
		sum += held[i];
	return sum;
}

/* Aggregate flow control (see rfcomm.c): the credit of all DLCs stays within the 16 KiB
 * budget (32 frames of N1 512), even when that leaves a DLC without credit for a while
 * (RFCOMM spec 6.5: PN's K may be 0); frames arriving free budget for the DLCs that wait, and
 * credit left unused for 250 ms stops counting, so idle DLCs cannot hold it forever. */
static void test_rx_budget_shared_by_dlcs(void **state)
{
	fixture *f = *state;
	open_session(f);
	n_many = 0;
	unsigned held[8] = { 0 };
	for (uint8_t ch = 1; ch <= 8; ch++) {
		assert_int_equal(rfcomm_listen(f->rf, ch, many_accept, &f->r), ch);
		held[ch - 1] = open_dlc_n(f, (uint8_t)(ch << 1), 512, 7, (int)ch);
		take_grants(f, held);
	}
	assert_int_equal(n_many, 8);
	assert_int_equal(held[0], 16); /* alone: the whole ring */
	assert_true(held_sum(held) <= 32);
	assert_int_equal(held[7], 0); /* the budget is spent: DLC 8 waits */

	/* DLC 1's peer sends 8 frames: the budget they free goes to the DLCs that wait. */
	uint8_t chunk[512] = { 0 };
	for (int i = 0; i < 8; i++) {
		send_frame(f, 2, true, RFCOMM_UIH, false, -1, chunk, sizeof chunk);
		held[0]--;
		take_grants(f, held);
		assert_true(held_sum(held) <= 32); /* what is in the rings is read already */
	}
	unsigned waiting_got = 0;
	for (int i = 2; i < 8; i++)
		waiting_got += held[i];
	assert_true(waiting_got >= 1);

	/* Nobody sends for 300 ms: unused credit stops counting and every DLC gets some. */
	uint8_t out[8192];
	assert_int_equal(rfcomm_read(many[0], out, sizeof out), 8 * 512);
	take_grants(f, held);
	harness_advance(f->h, 300);
	take_grants(f, held);
	for (int i = 0; i < 8; i++)
		assert_true(held[i] >= 1);
	for (int i = 0; i < 8; i++)
		rfcomm_close(many[i]);
	f->r.d = NULL;
}

/* TS 07.10 5.3.3 / 5.3.4: UIH and DISC on a DLCI that is not open are answered with DM;
 * UA and DM are never answered. */
static void test_frames_on_closed_dlci(void **state)
{
	fixture *f = *state;
	open_session(f);
	send_frame(f, 4, true, RFCOMM_UIH, false, -1, "zz", 2);
	expect(f, 4, RFCOMM_DM);
	send_frame(f, 6, true, RFCOMM_DISC, true, -1, NULL, 0);
	expect(f, 6, RFCOMM_DM);
	assert_true(f->f.pf);
	send_frame(f, 8, false, RFCOMM_UA, true, -1, NULL, 0);
	send_frame(f, 8, false, RFCOMM_DM, true, -1, NULL, 0);
	assert_false(take(f));
}

/* TS 07.10 5.4.6.3: Test is echoed, RPN and RLS answered, FCoff/FCon acknowledged, an unknown
 * command gets NSC (5.4.6.3.8). */
static void test_mux_commands(void **state)
{
	fixture *f = *state;
	open_session(f);
	rfcomm_mcc m;
	const uint8_t pattern[] = { 1, 2, 3, 4, 5, 6, 7 };
	send_mcc(f, RFCOMM_MCC_TEST, true, pattern, sizeof pattern);
	expect_mcc(f, RFCOMM_MCC_TEST, false, &m);
	assert_int_equal(m.len, sizeof pattern);
	assert_memory_equal(m.val, pattern, sizeof pattern);

	uint8_t q = 0x0b; /* RPN query for DLCI 2 */
	send_mcc(f, RFCOMM_MCC_RPN, true, &q, 1);
	expect_mcc(f, RFCOMM_MCC_RPN, false, &m);
	rfcomm_rpn rpn;
	assert_int_equal(rfcomm_rpn_decode(m.val, m.len, &rpn), 0);
	assert_true(rpn.has_values);
	assert_int_equal(rpn.dlci, 2);

	const uint8_t rls[] = { 0x0b, 0x03 };
	send_mcc(f, RFCOMM_MCC_RLS, true, rls, 2);
	expect_mcc(f, RFCOMM_MCC_RLS, false, &m);
	assert_memory_equal(m.val, rls, 2);

	send_mcc(f, RFCOMM_MCC_FCOFF, true, NULL, 0);
	expect_mcc(f, RFCOMM_MCC_FCOFF, false, &m);
	send_mcc(f, RFCOMM_MCC_FCON, true, NULL, 0);
	expect_mcc(f, RFCOMM_MCC_FCON, false, &m);

	send_mcc(f, 0x3f, true, NULL, 0);
	expect_mcc(f, RFCOMM_MCC_NSC, false, &m);
	assert_int_equal(m.len, 1);
	assert_int_equal(m.val[0], 0x3f << 2 | 0x03);
	/* PSC is not supported by RFCOMM (RFCOMM spec 4.3): NSC too. */
	send_mcc(f, RFCOMM_MCC_PSC, true, NULL, 0);
	expect_mcc(f, RFCOMM_MCC_NSC, false, &m);
	/* Responses we never asked for are ignored. */
	send_mcc(f, RFCOMM_MCC_TEST, false, pattern, 3);
	assert_false(take(f));
}

/* TS 07.10 5.4.6.3.6: without credit flow control (PN with CL 0), FCoff stops our data and
 * FCon resumes it; the MSC FC bit does the same per DLC (5.4.6.3.7). */
static void test_aggregate_flow_control(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	rfcomm_mcc m;
	send_pn(f, 2, true, 0x00, 200, 0);
	expect_mcc(f, RFCOMM_MCC_PN, false, &m);
	rfcomm_pn pn;
	assert_int_equal(rfcomm_pn_decode(m.val, m.len, &pn), 0);
	assert_int_equal(pn.cl, 0);
	send_frame(f, 2, true, RFCOMM_SABM, true, -1, NULL, 0);
	expect(f, 2, RFCOMM_UA);
	expect_mcc(f, RFCOMM_MCC_MSC, true, &m);
	send_msc(f, 2, true, 0x8d);
	expect_mcc(f, RFCOMM_MCC_MSC, false, &m);
	send_msc(f, 2, false, 0x8d);
	assert_int_equal(f->r.opened, 1);

	send_mcc(f, RFCOMM_MCC_FCOFF, true, NULL, 0);
	expect_mcc(f, RFCOMM_MCC_FCOFF, false, &m);
	assert_int_equal(rfcomm_write(f->r.d, (const uint8_t *)"abc", 3), 3);
	assert_false(take(f));
	send_mcc(f, RFCOMM_MCC_FCON, true, NULL, 0);
	expect_mcc(f, RFCOMM_MCC_FCON, false, &m);
	expect(f, 2, RFCOMM_UIH);
	assert_false(f->f.has_credits);
	assert_int_equal(f->f.len, 3);

	send_msc(f, 2, true, 0x8d | RFCOMM_V24_FC);
	expect_mcc(f, RFCOMM_MCC_MSC, false, &m);
	assert_int_equal(rfcomm_write(f->r.d, (const uint8_t *)"de", 2), 2);
	assert_false(take(f));
	send_msc(f, 2, true, 0x8d);
	expect_mcc(f, RFCOMM_MCC_MSC, false, &m);
	expect(f, 2, RFCOMM_UIH);
	assert_int_equal(f->f.len, 2);
}

/* RFCOMM spec 5.2: peer DISC on the DLC closes it with err 0; later writes say -EPIPE. */
static void test_peer_disc(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	open_dlc(f, 2, 300, 7);
	send_frame(f, 2, true, RFCOMM_UIH, false, -1, "bye", 3);
	send_frame(f, 2, true, RFCOMM_DISC, true, -1, NULL, 0);
	expect(f, 2, RFCOMM_UA);
	assert_int_equal(f->r.closed, 1);
	assert_int_equal(f->r.close_err, 0);
	assert_int_equal(rfcomm_write(f->r.d, (const uint8_t *)"x", 1), -EPIPE);
	/* Bytes received before the DISC stay readable. */
	uint8_t in[8];
	assert_int_equal(rfcomm_read(f->r.d, in, sizeof in), 3);
	rfcomm_close(f->r.d);
	f->r.d = NULL;
	/* The last DLC gone, the session lingers linger_ms, then sends DISC 0 (TS 07.10 5.8.2). */
	assert_false(take(f));
	harness_advance(f->h, 2100);
	expect(f, 0, RFCOMM_DISC);
	assert_true(f->f.cr == false); /* the responder's command: C/R 0 */
	/* The peer's linger ran out too: its DISC 0 crosses ours. We answer it (TS 07.10 5.3.4),
	 * and its UA to our DISC then ends the session at once, L2CAP channel and all, rather than
	 * both sides waiting T1 for the other to drop L2CAP (the link stayed up ~10 s). */
	send_frame(f, 0, true, RFCOMM_DISC, true, -1, NULL, 0);
	expect(f, 0, RFCOMM_UA);
	send_frame(f, 0, true, RFCOMM_UA, true, -1, NULL, 0);
	uint8_t d[64], id;
	size_t n;
	assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x06); /* Disconnection Request */
}

/* Our close with data still queued: the data goes first, then DISC; UA ends it silently. */
static void test_local_close_drains(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	open_dlc(f, 2, 300, 0); /* no credits for us yet */
	assert_int_equal(rfcomm_write(f->r.d, (const uint8_t *)"tail", 4), 4);
	rfcomm_close(f->r.d);
	f->r.d = NULL;
	assert_false(take(f));
	send_frame(f, 2, true, RFCOMM_UIH, false, 1, NULL, 0);
	expect(f, 2, RFCOMM_UIH);
	assert_int_equal(f->f.len, 4);
	expect(f, 2, RFCOMM_DISC);
	send_frame(f, 2, false, RFCOMM_UA, true, -1, NULL, 0);
	assert_int_equal(f->r.closed, 0); /* no callbacks after rfcomm_close */
}

/* Our close with more data queued than the peer's credits take at once: T1 (10 s) bounds a
 * peer that takes nothing, counted from the last frame sent, so a slow peer that grants a
 * credit every 6 s still gets all of it before the DISC (it used to get DISC 10 s after the
 * close, with the rest thrown away); a peer that then stops gets the DISC T1 later. */
static void test_local_close_slow_peer(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	open_dlc(f, 2, 100, 0);
	uint8_t data[600];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)i;
	assert_int_equal(rfcomm_write(f->r.d, data, sizeof data), sizeof data);
	rfcomm_close(f->r.d);
	f->r.d = NULL;
	assert_int_equal(rfcomm_tx_pending(f->rf, &f->peer, 1), 600);
	for (size_t got = 0; got < 500; got += 100) {
		harness_advance(f->h, 6000);
		assert_false(take(f));
		send_frame(f, 2, true, RFCOMM_UIH, false, 1, NULL, 0);
		expect(f, 2, RFCOMM_UIH);
		assert_int_equal(f->f.len, 100);
		assert_memory_equal(f->f.info, data + got, 100);
		assert_int_equal(rfcomm_tx_pending(f->rf, &f->peer, 1), 500 - got);
	}
	/* 30 s after the close, 100 bytes left and no more credit: DISC once T1 has passed. */
	harness_advance(f->h, 9000);
	assert_false(take(f));
	harness_advance(f->h, 1100);
	expect(f, 2, RFCOMM_DISC);
	assert_int_equal(rfcomm_tx_pending(f->rf, &f->peer, 1), 0);
	send_frame(f, 2, false, RFCOMM_UA, true, -1, NULL, 0);
}

/* Link loss (RFCOMM spec 5.2): every DLC ends with the link's reason, so an application can
 * tell a supervision timeout (0x08, ETIMEDOUT) from a reset (0x13, ECONNRESET). */
static void link_loss_with(void **state, uint8_t reason, int err)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	open_dlc(f, 2, 300, 7);
	harness_link_down(f->h, f->handle, reason);
	assert_int_equal(f->r.closed, 1);
	assert_int_equal(f->r.close_err, -err);
	assert_int_equal(rfcomm_write(f->r.d, (const uint8_t *)"x", 1), -err);
}

static void test_link_loss(void **state) { link_loss_with(state, 0x08, ETIMEDOUT); }
static void test_link_reset(void **state) { link_loss_with(state, 0x13, ECONNRESET); }

/* Outgoing: L2CAP to PSM 3, SABM 0, PN (CFC request, RFCOMM spec 5.5.3), SABM on
 * DLCI = channel << 1 (we initiate, RFCOMM spec 5.4); DM answers -> -ECONNREFUSED. */
static void test_outgoing_refused_then_opened(void **state)
{
	fixture *f = *state;
	rec a = { 0 }, b = { 0 };
	rfcomm_dlc *da = NULL, *db = NULL;
	assert_int_equal(rfcomm_connect(f->rf, &f->peer, 4, &rec_ops, &a, &da), 0);
	f->initiator = false;
	f->cid = harness_accept_channel(f->h, f->handle, PEER_CID, PEER_MTU);
	assert_int_not_equal(f->cid, 0);
	assert_true(take(f));
	const uint8_t sabm0[] = { 0x03, 0x3f, 0x01, 0x1c }; /* TS 07.10 5.2.1.6 vector */
	assert_memory_equal(f->buf, sabm0, 4);
	send_frame(f, 0, rsp_cr(f), RFCOMM_UA, true, -1, NULL, 0);
	rfcomm_mcc m;
	expect_mcc(f, RFCOMM_MCC_PN, true, &m);
	rfcomm_pn pn;
	assert_int_equal(rfcomm_pn_decode(m.val, m.len, &pn), 0);
	assert_int_equal(pn.dlci, 8);
	assert_int_equal(pn.cl, RFCOMM_PN_CL_CFC_REQ);
	/* The peer's MTU allows 994; a full frame then fills whole 192-byte ACL packets (the
	 * harness controller's) only at 950: 4 + 950 + 6 = 5 x 192. */
	assert_int_equal(pn.n1, 950);
	assert_true(pn.k >= 1 && pn.k <= 7);
	send_pn(f, 8, false, RFCOMM_PN_CL_CFC_RSP, 200, 4);
	expect(f, 8, RFCOMM_SABM);
	assert_true(f->f.cr);
	send_frame(f, 8, rsp_cr(f), RFCOMM_DM, true, -1, NULL, 0);
	assert_int_equal(a.closed, 1);
	assert_int_equal(a.close_err, -ECONNREFUSED);
	rfcomm_close(da);

	/* Second DLC on the same (open) session succeeds. */
	assert_int_equal(rfcomm_connect(f->rf, &f->peer, 5, &rec_ops, &b, &db), 0);
	expect_mcc(f, RFCOMM_MCC_PN, true, &m);
	assert_int_equal(rfcomm_pn_decode(m.val, m.len, &pn), 0);
	assert_int_equal(pn.dlci, 10);
	send_pn(f, 10, false, RFCOMM_PN_CL_CFC_RSP, 200, 4);
	expect(f, 10, RFCOMM_SABM);
	send_frame(f, 10, rsp_cr(f), RFCOMM_UA, true, -1, NULL, 0);
	expect_mcc(f, RFCOMM_MCC_MSC, true, &m);
	while (take(f))
		; /* credit frame */
	assert_int_equal(b.opened, 1); /* connected at UA: connect() returns a round trip sooner */
	assert_int_equal(rfcomm_dlc_mtu(db), 200);
	assert_int_equal(rfcomm_write(db, (const uint8_t *)"ping", 4), 4);
	send_msc(f, 10, false, 0x8d);
	assert_false(take(f)); /* RFCOMM spec 6.2: no data before the peer's MSC command */
	send_msc(f, 10, true, 0x8d);
	expect_mcc(f, RFCOMM_MCC_MSC, false, &m);
	assert_int_equal(b.opened, 1);
	expect(f, 10, RFCOMM_UIH);
	assert_memory_equal(f->f.info, "ping", 4);
	rfcomm_close(db);
	expect(f, 10, RFCOMM_DISC);
}

/* Written and closed between UA and the end of the MSC exchange: the data still goes, after
 * the MSC exchange (RFCOMM spec 6.2), then DISC. */
static void test_close_during_msc_exchange(void **state)
{
	fixture *f = *state;
	rec a = { 0 };
	rfcomm_dlc *da = NULL;
	rfcomm_mcc m;
	assert_int_equal(rfcomm_connect(f->rf, &f->peer, 4, &rec_ops, &a, &da), 0);
	f->initiator = false;
	f->cid = harness_accept_channel(f->h, f->handle, PEER_CID, PEER_MTU);
	assert_true(take(f));
	send_frame(f, 0, rsp_cr(f), RFCOMM_UA, true, -1, NULL, 0);
	expect_mcc(f, RFCOMM_MCC_PN, true, &m);
	send_pn(f, 8, false, RFCOMM_PN_CL_CFC_RSP, 200, 4);
	expect(f, 8, RFCOMM_SABM);
	send_frame(f, 8, rsp_cr(f), RFCOMM_UA, true, -1, NULL, 0);
	while (take(f))
		; /* our MSC and credit frame */
	assert_int_equal(a.opened, 1);
	assert_int_equal(rfcomm_write(da, (const uint8_t *)"bye", 3), 3);
	rfcomm_close(da);
	assert_false(take(f)); /* neither data nor DISC before the MSC exchange */
	send_msc(f, 8, false, 0x8d);
	send_msc(f, 8, true, 0x8d);
	expect_mcc(f, RFCOMM_MCC_MSC, false, &m);
	expect(f, 8, RFCOMM_UIH);
	assert_memory_equal(f->f.info, "bye", 3);
	expect(f, 8, RFCOMM_DISC);
}

/* RFCOMM spec 5.3: no UA within T1 for our SABM: -ETIMEDOUT. */
static void test_outgoing_t1_timeout(void **state)
{
	fixture *f = *state;
	rec a = { 0 };
	rfcomm_dlc *da = NULL;
	assert_int_equal(rfcomm_connect(f->rf, &f->peer, 4, &rec_ops, &a, &da), 0);
	f->initiator = false;
	f->cid = harness_accept_channel(f->h, f->handle, PEER_CID, PEER_MTU);
	expect(f, 0, RFCOMM_SABM);
	send_frame(f, 0, rsp_cr(f), RFCOMM_UA, true, -1, NULL, 0);
	rfcomm_mcc m;
	expect_mcc(f, RFCOMM_MCC_PN, true, &m);
	send_pn(f, 8, false, 0, 200, 0);
	expect(f, 8, RFCOMM_SABM);
	/* Keep the link alive past L2CAP's idle probe while T1 (10 s) runs. */
	for (int i = 0; i < 11 && !a.closed; i++) {
		harness_advance(f->h, 1000);
		send_mcc(f, RFCOMM_MCC_TEST, false, NULL, 0);
	}
	assert_int_equal(a.closed, 1);
	assert_int_equal(a.close_err, -ETIMEDOUT);
	rfcomm_close(da);
}

/* rfcomm.h: rfcomm_listen(0) picks the first free channel; duplicates are refused. */
static void test_listen_channels(void **state)
{
	fixture *f = *state;
	assert_int_equal(rfcomm_listen(f->rf, 0, rec_accept, &f->r), 1);
	assert_int_equal(rfcomm_listen(f->rf, 0, rec_accept, &f->r), 2);
	assert_int_equal(rfcomm_listen(f->rf, 2, rec_accept, &f->r), -EADDRINUSE);
	assert_int_equal(rfcomm_listen(f->rf, 31, rec_accept, &f->r), -EINVAL);
	rfcomm_unlisten(f->rf, 1);
	assert_int_equal(rfcomm_listen(f->rf, 0, rec_accept, &f->r), 1);
	for (int c = 3; c <= 30; c++)
		assert_int_equal(rfcomm_listen(f->rf, 0, rec_accept, &f->r), c);
	assert_int_equal(rfcomm_listen(f->rf, 0, rec_accept, &f->r), -EADDRINUSE);
}

/* TS 07.10 5.2.6: malformed frames and mux commands are discarded; nothing crashes and the
 * session keeps working. */
static void test_malformed_input(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	const uint8_t bad[][6] = {
		{ 0x03 },
		{ 0x03, 0x3f, 0x01, 0x00 },             /* bad FCS */
		{ 0x0b, 0xff, 0x01, 0x00 },             /* credit octet missing */
		{ 0x0b, 0xef, 0x0b, 0x00, 0x00, 0x00 }, /* length beyond the frame */
	};
	const size_t lens[] = { 1, 4, 4, 6 };
	for (size_t i = 0; i < 4; i++)
		send_raw(f, bad[i], lens[i]);
	/* Truncated PN, MSC, RPN, RLS bodies. */
	const uint8_t pn_short[] = { 0x02, 0xf0, 0x07 };
	send_mcc(f, RFCOMM_MCC_PN, true, pn_short, sizeof pn_short);
	const uint8_t one[] = { 0x0b };
	send_mcc(f, RFCOMM_MCC_MSC, true, one, 1);
	send_mcc(f, RFCOMM_MCC_RLS, true, one, 1);
	send_mcc(f, RFCOMM_MCC_RPN, true, one, 0);
	/* A mux frame whose inner length overruns. */
	const uint8_t overrun[] = { 0x23, 0x41, 0x01 };
	send_frame(f, 0, true, RFCOMM_UIH, false, -1, overrun, sizeof overrun);
	assert_false(take(f));
	/* Pseudo-random garbage. */
	uint32_t x = 12345;
	for (int i = 0; i < 500; i++) {
		uint8_t g[40];
		size_t n = 1 + (x % sizeof g);
		for (size_t j = 0; j < n; j++) {
			x = x * 1103515245u + 12345u;
			g[j] = (uint8_t)(x >> 16);
		}
		send_raw(f, g, n);
		while (take(f))
			;
	}
	/* Still alive: a DLC opens and carries data. */
	f->r.opened = 0;
	open_dlc(f, 2, 128, 7);
	send_frame(f, 2, true, RFCOMM_UIH, false, -1, "ok", 2);
	uint8_t in[4];
	assert_int_equal(rfcomm_read(f->r.d, in, sizeof in), 2);
}

/* rfcomm.h write contract: a full 4 KiB tx ring takes part of a write, then -EAGAIN; writable
 * follows once credits (RFCOMM spec 6.5) let the data drain. */
static void test_write_backpressure(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	open_dlc(f, 2, 400, 0);
	static uint8_t big[5000];
	memset(big, 0xab, sizeof big);
	assert_int_equal(rfcomm_write(f->r.d, big, sizeof big), 4096);
	assert_int_equal(rfcomm_write(f->r.d, big, 10), -EAGAIN);
	assert_int_equal(f->r.writable, 0);
	assert_false(take(f));
	send_frame(f, 2, true, RFCOMM_UIH, false, 255, NULL, 0);
	size_t got = 0;
	while (take(f)) {
		assert_true(f->f.len <= 400);
		got += f->f.len;
	}
	assert_int_equal(got, 4096);
	assert_true(f->r.writable >= 1);
	assert_int_equal(rfcomm_write(f->r.d, big, 10), 10);
}

/* Writing in place (rfcomm_write_space / _commit, the runtime's zero-copy path): the space is
 * the ring's free tail, contiguous; what is committed goes out in order like rfcomm_write's
 * bytes, across the ring's wrap. */
static void test_write_in_place(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	open_dlc(f, 2, 400, 0); /* no credits yet: everything stays in the ring */
	uint8_t *p;
	ssize_t room = rfcomm_write_space(f->r.d, &p);
	assert_int_equal(room, 4096);
	for (int i = 0; i < 3000; i++)
		p[i] = (uint8_t)i;
	rfcomm_write_commit(f->r.d, 3000);
	assert_int_equal(rfcomm_write_space(f->r.d, &p), 1096);
	send_frame(f, 2, true, RFCOMM_UIH, false, 255, NULL, 0); /* credits: the 3000 leave */
	size_t got = 0;
	while (take(f)) {
		assert_memory_equal(f->f.info, (const uint8_t[]){ (uint8_t)got }, 1);
		got += f->f.len;
	}
	assert_int_equal(got, 3000);
	/* The free space now wraps: first the 1096 at the end, then the start. */
	room = rfcomm_write_space(f->r.d, &p);
	assert_int_equal(room, 1096);
	memset(p, 0x11, 1096);
	rfcomm_write_commit(f->r.d, 1096);
	room = rfcomm_write_space(f->r.d, &p);
	assert_true(room > 0);
	memset(p, 0x22, 904);
	rfcomm_write_commit(f->r.d, 904);
	got = 0;
	while (take(f)) {
		for (size_t i = 0; i < f->f.len; i++)
			assert_int_equal(f->f.info[i], got + i < 1096 ? 0x11 : 0x22);
		got += f->f.len;
	}
	assert_int_equal(got, 2000);
}

/* RFCOMM spec 5.2 (one session per device pair) and 5.4 (direction bit): when the peer's own
 * session opens while ours is still connecting, our DLC moves to it and uses the responder's
 * direction bit: DLCI = channel << 1 | 1. */
static void test_crossing_sessions(void **state)
{
	fixture *f = *state;
	rec a = { 0 };
	rfcomm_dlc *da = NULL;
	assert_int_equal(rfcomm_connect(f->rf, &f->peer, 4, &rec_ops, &a, &da), 0);
	uint8_t id, d[64];
	size_t n;
	assert_int_equal(harness_sig_out(f->h, &id, d, sizeof d, &n), 0x02); /* our Connection Request */
	assert_int_equal(get_le16(d), L2CAP_PSM_RFCOMM);
	open_session(f); /* the peer's session, we are the responder */
	rfcomm_mcc m;
	expect_mcc(f, RFCOMM_MCC_PN, true, &m);
	rfcomm_pn pn;
	assert_int_equal(rfcomm_pn_decode(m.val, m.len, &pn), 0);
	assert_int_equal(pn.dlci, 4 << 1 | 1);
	send_pn(f, pn.dlci, false, RFCOMM_PN_CL_CFC_RSP, 300, 7);
	expect(f, pn.dlci, RFCOMM_SABM);
	assert_false(f->f.cr); /* a command from the responder */
	send_frame(f, pn.dlci, true, RFCOMM_UA, true, -1, NULL, 0);
	expect_mcc(f, RFCOMM_MCC_MSC, true, &m);
	while (take(f))
		;
	send_msc(f, pn.dlci, true, 0x8d);
	expect_mcc(f, RFCOMM_MCC_MSC, false, &m);
	send_msc(f, pn.dlci, false, 0x8d);
	assert_int_equal(a.opened, 1);
	assert_int_equal(a.closed, 0);
	rfcomm_close(da);
}

/* ---- hostile peers (issue 9) */

/* A peer's burst of frames (harness_l2cap_burst): nothing we send goes out until it ends. */
#define BURST_MAX 400
typedef struct {
	uint8_t *p[BURST_MAX];
	size_t len[BURST_MAX];
	size_t n;
} burst;

static void burst_frame(burst *b, uint8_t dlci, bool cr, uint8_t ctrl, bool pf, const void *info, size_t len)
{
	uint8_t tmp[2048];
	size_t n = rfcomm_frame_build(tmp, sizeof tmp, dlci, cr, ctrl, pf, -1, info, len);
	assert_true(n > 0 && b->n < BURST_MAX);
	b->p[b->n] = malloc(n);
	memcpy(b->p[b->n], tmp, n);
	b->len[b->n++] = n;
}

static void burst_mcc(burst *b, uint8_t type, const uint8_t *v, size_t len)
{
	uint8_t m[2048];
	size_t n = rfcomm_mcc_build(m, sizeof m, type, true, v, len);
	assert_true(n > 0);
	burst_frame(b, 0, true, RFCOMM_UIH, false, m, n);
}

static void burst_send(fixture *f, burst *b)
{
	harness_l2cap_burst(f->h, f->handle, f->cid, (const uint8_t *const *)b->p, b->len, b->n);
	for (size_t i = 0; i < b->n; i++)
		free(b->p[i]);
	b->n = 0;
}

/* A Test pattern whose 256-byte queue entries fill the 2 KiB control queue exactly. */
#define BIG_TEST 246

/* Issue 9: a peer that floods commands while our frames cannot leave fills our control queue
 * with answers; those are shed past half the queue (TS 07.10 5.4.6.2: the peer's T2 covers an
 * unanswered command), and our own frames still go: here the UA for its DISC (5.3.4). Before,
 * answers filled the whole queue and the UA was dropped silently: the DLC closed on our side
 * only. */
static void test_answer_flood_keeps_own_frames(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	open_dlc(f, 2, 500, 7);
	static burst b;
	uint8_t pat[BIG_TEST];
	memset(pat, 0x5a, sizeof pat);
	for (int i = 0; i < 40; i++)
		burst_mcc(&b, RFCOMM_MCC_TEST, pat, sizeof pat);
	burst_frame(&b, 2, true, RFCOMM_DISC, true, NULL, 0);
	burst_send(f, &b);
	int tests = 0;
	bool ua = false;
	while (take(f)) {
		if (f->f.dlci == 2 && f->f.ctrl == RFCOMM_UA)
			ua = true;
		else if (f->f.dlci == 0 && f->f.ctrl == RFCOMM_UIH)
			tests++;
	}
	assert_true(ua);
	assert_true(tests >= 20 && tests < 40); /* some answered, the rest shed */
	assert_int_equal(f->r.closed, 1);
	assert_int_equal(f->r.close_err, 0);
	/* The session is still good. */
	rfcomm_mcc m;
	send_mcc(f, RFCOMM_MCC_TEST, true, pat, 3);
	expect_mcc(f, RFCOMM_MCC_TEST, false, &m);
}

/* Issue 9: when even our own frames find no room (a peer that keeps demanding UAs and reads
 * nothing), the session ends with -ENOBUFS rather than losing a frame silently. */
static void test_own_frame_overflow_ends_session(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	open_dlc(f, 2, 500, 7);
	static burst b;
	uint8_t pat[BIG_TEST];
	memset(pat, 0xa5, sizeof pat);
	for (int i = 0; i < 40; i++)
		burst_mcc(&b, RFCOMM_MCC_TEST, pat, sizeof pat);
	for (int i = 0; i < 300; i++) /* repeated SABM on the open DLC: a UA each (5.4.1) */
		burst_frame(&b, 2, true, RFCOMM_SABM, true, NULL, 0);
	burst_send(f, &b);
	while (take(f))
		;
	assert_int_equal(f->r.closed, 1);
	assert_int_equal(f->r.close_err, -ENOBUFS);
}

/* TS 07.10 5.4.6.3.4: Test is answered with exactly its pattern, so one whose response does not
 * fit the peer's L2CAP MTU (1000 here: a frame of pattern + 8) gets no answer at all; the
 * largest that fits is echoed whole. */
static void test_test_longer_than_frame(void **state)
{
	fixture *f = *state;
	open_session(f);
	static uint8_t pat[1500];
	for (size_t i = 0; i < sizeof pat; i++)
		pat[i] = (uint8_t)i;
	uint8_t m[2048];
	size_t n = rfcomm_mcc_build(m, sizeof m, RFCOMM_MCC_TEST, true, pat, 993);
	send_frame(f, 0, true, RFCOMM_UIH, false, -1, m, n);
	assert_false(take(f));
	n = rfcomm_mcc_build(m, sizeof m, RFCOMM_MCC_TEST, true, pat, 1500);
	send_frame(f, 0, true, RFCOMM_UIH, false, -1, m, n);
	assert_false(take(f));
	n = rfcomm_mcc_build(m, sizeof m, RFCOMM_MCC_TEST, true, pat, 992);
	send_frame(f, 0, true, RFCOMM_UIH, false, -1, m, n);
	rfcomm_mcc r;
	expect_mcc(f, RFCOMM_MCC_TEST, false, &r);
	assert_int_equal(r.len, 992);
	assert_memory_equal(r.val, pat, 992);
}

/* RFCOMM spec 5.4, TS 07.10 5.3.3/5.3.4: DLCI 1 (channel 0), 62 and 63 (channel 31) are no
 * server channel: SABM, DISC and UIH on them get DM. PN for DLCI 0 (the multiplexer itself,
 * 5.4.6.3.1) is ignored: a DM on DLCI 0 would close the whole session at the peer - which the
 * stack sent before. */
static void test_hostile_dlcis(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	const uint8_t dlcis[] = { 1, 62, 63 };
	for (size_t i = 0; i < sizeof dlcis; i++) {
		send_frame(f, dlcis[i], true, RFCOMM_SABM, true, -1, NULL, 0);
		expect(f, dlcis[i], RFCOMM_DM);
		send_frame(f, dlcis[i], true, RFCOMM_DISC, true, -1, NULL, 0);
		expect(f, dlcis[i], RFCOMM_DM);
		send_frame(f, dlcis[i], true, RFCOMM_UIH, false, -1, "x", 1);
		expect(f, dlcis[i], RFCOMM_DM);
		send_pn(f, dlcis[i], true, RFCOMM_PN_CL_CFC_REQ, 100, 7);
		expect(f, dlcis[i], RFCOMM_DM);
	}
	send_pn(f, 0, true, RFCOMM_PN_CL_CFC_REQ, 100, 7);
	assert_false(take(f));
	/* DISC of DLCs never opened, many times: each a DM, nothing kept. */
	for (int i = 0; i < 200; i++) {
		send_frame(f, (uint8_t)(2 + 2 * (i % 30)), true, RFCOMM_DISC, true, -1, NULL, 0);
		expect(f, (uint8_t)(2 + 2 * (i % 30)), RFCOMM_DM);
	}
	assert_false(rfcomm_dlc_lingers(f->rf, &f->peer, 1));
	/* The session is intact. */
	open_dlc(f, 2, 200, 7);
}

/* TS 07.10 5.4.6.3.1: N1 is 1-32768, and the responder never offers more than asked
 * (RFCOMM spec 5.5.3). N1 0 says nothing: we offer ours; 65535 is more than we take: ours. */
static void test_pn_n1_extremes(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	rfcomm_mcc m;
	rfcomm_pn a, b;
	send_pn(f, 2, true, RFCOMM_PN_CL_CFC_REQ, 0, 7);
	expect_mcc(f, RFCOMM_MCC_PN, false, &m);
	assert_int_equal(rfcomm_pn_decode(m.val, m.len, &a), 0);
	send_pn(f, 2, true, RFCOMM_PN_CL_CFC_REQ, 65535, 7);
	expect_mcc(f, RFCOMM_MCC_PN, false, &m);
	assert_int_equal(rfcomm_pn_decode(m.val, m.len, &b), 0);
	assert_int_equal(a.n1, b.n1);
	assert_true(a.n1 >= 1 && a.n1 <= PEER_MTU - 6);
	/* Opened with N1 0, data still flows in frames of at most our N1. */
	open_dlc(f, 2, 0, 7);
	assert_int_equal(rfcomm_dlc_mtu(f->r.d), a.n1);
	static uint8_t big[3000];
	assert_int_equal(rfcomm_write(f->r.d, big, sizeof big), (ssize_t)sizeof big);
	size_t got = 0;
	while (take(f)) {
		assert_true(f->f.len <= a.n1);
		got += f->f.len;
	}
	assert_true(got > 0);
}

/* RFCOMM spec 6.5.2: a credit octet carries at most 255; what a peer piles up saturates at
 * 65535 (MAX_TX_CREDITS) instead of wrapping, and data keeps flowing. */
static void test_credit_accumulation(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	open_dlc(f, 2, 100, 0);
	for (int i = 0; i < 300; i++) /* 76500 credits */
		send_frame(f, 2, true, RFCOMM_UIH, true, 255, NULL, 0);
	while (take(f))
		;
	static uint8_t data[4000];
	assert_int_equal(rfcomm_write(f->r.d, data, sizeof data), (ssize_t)sizeof data);
	size_t got = 0;
	while (take(f))
		got += f->f.len;
	assert_int_equal(got, sizeof data);
}

/* TS 07.10 5.2.1.6 / 5.2.6: a data frame with a wrong FCS, or a length past its end, is
 * discarded: nothing reaches the owner, and no credit is spent. */
static void test_bad_data_frames_dropped(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, rec_accept, &f->r), 1);
	open_dlc(f, 2, 100, 7);
	uint8_t b[32];
	size_t n = rfcomm_frame_build(b, sizeof b, 2, true, RFCOMM_UIH, false, -1, (const uint8_t *)"abcd", 4);
	b[n - 1] ^= 0x55; /* FCS */
	send_raw(f, b, n);
	n = rfcomm_frame_build(b, sizeof b, 2, true, RFCOMM_UIH, false, -1, (const uint8_t *)"abcd", 4);
	b[2] = 20 << 1 | 1; /* length 20, 4 octets present */
	send_raw(f, b, n);
	assert_int_equal(rfcomm_readable(f->r.d), 0);
	assert_int_equal(f->r.readable, 0);
	send_frame(f, 2, true, RFCOMM_UIH, false, -1, "ok", 2);
	assert_int_equal(rfcomm_readable(f->r.d), 2);
}

/* Owners that let every DLC go as soon as it closes. */
static void cyc_closed(void *c, rfcomm_dlc *d, int err)
{
	((rec *)c)->closed++;
	rfcomm_close(d);
}
static const rfcomm_dlc_ops cyc_ops = { r_opened, r_readable, r_writable, cyc_closed };
static int cyc_accept(void *srv, rfcomm_dlc *d, const rfcomm_dlc_ops **ops, void **ctx)
{
	rec *r = srv;
	r->accepts++;
	*ops = &cyc_ops;
	*ctx = r;
	return 0;
}

/* Issue 9: 1000 open/close cycles (SABM/UA, MSC, DISC/UA: TS 07.10 5.3-5.4) and then 500
 * MSC commands leave nothing behind (ASan/valgrind check the memory) and every frame is
 * answered. */
static void test_dlc_cycles_and_msc_flood(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen(f->rf, 1, cyc_accept, &f->r), 1);
	for (int i = 0; i < 1000; i++) {
		send_frame(f, 2, true, RFCOMM_SABM, true, -1, NULL, 0);
		expect(f, 2, RFCOMM_UA);
		while (take(f))
			;
		send_frame(f, 2, true, RFCOMM_DISC, true, -1, NULL, 0);
		expect(f, 2, RFCOMM_UA);
		while (take(f))
			;
	}
	assert_int_equal(f->r.accepts, 1000);
	assert_int_equal(f->r.closed, 1000);
	assert_false(rfcomm_dlc_lingers(f->rf, &f->peer, 1));
	send_frame(f, 2, true, RFCOMM_SABM, true, -1, NULL, 0);
	expect(f, 2, RFCOMM_UA);
	while (take(f))
		;
	rfcomm_mcc m;
	for (int i = 0; i < 500; i++) {
		send_msc(f, 2, true, 0x8d);
		expect_mcc(f, RFCOMM_MCC_MSC, false, &m);
	}
	assert_false(take(f));
	send_frame(f, 2, true, RFCOMM_DISC, true, -1, NULL, 0);
	expect(f, 2, RFCOMM_UA);
}

/* A peer that opens channel after channel to PSM 3 and never starts a multiplexer on them holds
 * one session, not all of them (one session per device pair, RFCOMM spec 5.2): its earlier idle
 * sessions end, and its next real session is served. Before, the 17th was refused (No
 * Resources) for as long as the link lived. */
static void test_idle_session_flood(void **state)
{
	fixture *f = *state;
	int accepted = 0, closed_by_stack = 0;
	for (uint16_t i = 0; i < 40; i++) {
		uint8_t req[4], d[256], id;
		size_t n;
		put_le16(req, 0x0003); /* Vol 3 Part A 4.2, then nothing */
		put_le16(req + 2, (uint16_t)(0x0100 + i));
		harness_sig_in(f->h, f->handle, 0x02, (uint8_t)(1 + i), req, 4);
		int code;
		while ((code = harness_sig_out(f->h, &id, d, sizeof d, &n)) >= 0) {
			if (code == 0x03 && n >= 8 && get_le16(d + 4) == 0)
				accepted++;
			if (code == 0x06 && n >= 4) { /* an idle session ends: answer as a peer does */
				uint8_t rsp[4];
				put_le16(rsp, get_le16(d));
				put_le16(rsp + 2, get_le16(d + 2));
				harness_sig_in(f->h, f->handle, 0x07, id, rsp, 4);
				closed_by_stack++;
			}
		}
	}
	assert_int_equal(accepted, 40);
	assert_int_equal(closed_by_stack, 39);
}

/* ---- security levels */

static void hci_ev(fixture *f, uint8_t code, const uint8_t *p, uint8_t len)
{
	uint8_t pkt[3 + 255] = { 0x04, code, len };
	memcpy(pkt + 3, p, len);
	harness_h4_in(f->h, pkt, 3u + len);
}

/* Authentication Complete (Vol 4 Part E 7.7.6) with status; on success Encryption Change on
 * (7.7.8). */
static void secure_outcome(fixture *f, uint8_t status)
{
	uint8_t ev[4] = { status };
	put_le16(ev + 1, f->handle);
	hci_ev(f, HCI_EV_AUTH_COMPLETE, ev, 3);
	if (status)
		return;
	ev[0] = 0;
	ev[3] = 0x01;
	hci_ev(f, HCI_EV_ENCRYPT_CHANGE, ev, 4);
}

/* A server's level is enforced before its DLC opens (RFCOMM spec 5.2): the SABM on a link
 * below MEDIUM waits while the link is secured, then UA. HIGH on that link (its key not known
 * to be authenticated) is refused at once with DM. */
static void test_server_level_secures_before_ua(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen_sec(f->rf, 3, L2CAP_SEC_MEDIUM, rec_accept, &f->r), 3);
	send_frame(f, 3 << 1, true, RFCOMM_SABM, true, -1, NULL, 0);
	assert_true(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	assert_false(take(f)); /* no UA before the link is secured */
	send_frame(f, 3 << 1, true, RFCOMM_SABM, true, -1, NULL, 0); /* repeated: still waits */
	assert_false(take(f));
	assert_int_equal(f->r.accepts, 0);
	secure_outcome(f, 0);
	expect(f, 3 << 1, RFCOMM_UA);
	assert_true(f->f.pf);
	assert_int_equal(f->r.accepts, 1);

	/* HIGH on that link (its key not known to be authenticated): DM at once; as acceptor the
	 * link is not re-paired */
	rec hi = { 0 };
	assert_int_equal(rfcomm_listen_sec(f->rf, 4, L2CAP_SEC_HIGH, rec_accept, &hi), 4);
	harness_cmd_seen(f->h, 0);
	send_frame(f, 4 << 1, true, RFCOMM_SABM, true, -1, NULL, 0);
	assert_false(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	while (take(f) && f->f.dlci != (4 << 1))
		; /* MSC and credits of DLC 3 */
	assert_int_equal(f->f.ctrl, RFCOMM_DM);
	assert_int_equal(hi.accepts, 0);
}

static void test_server_level_refused_with_dm(void **state)
{
	fixture *f = *state;
	open_session(f);
	assert_int_equal(rfcomm_listen_sec(f->rf, 3, L2CAP_SEC_HIGH, rec_accept, &f->r), 3);
	assert_int_equal(rfcomm_listen_sec(f->rf, 5, 7, rec_accept, &f->r), -EINVAL);
	send_frame(f, 3 << 1, true, RFCOMM_SABM, false, -1, NULL, 0);
	assert_true(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	assert_false(take(f));
	secure_outcome(f, 0x05); /* Authentication Failure */
	expect(f, 3 << 1, RFCOMM_DM);
	assert_false(f->f.pf);
	assert_int_equal(f->r.accepts, 0);
}

/* A client's link is raised to its level before the DLC's PN; a failure ends the DLC with
 * EACCES and the reason. */
static void test_client_level(void **state)
{
	fixture *f = *state;
	open_session(f);
	rec a = { 0 }, b = { 0 };
	rfcomm_dlc *da = NULL, *db = NULL;
	assert_int_equal(rfcomm_connect_sec(f->rf, &f->peer, 4, L2CAP_SEC_MEDIUM, &rec_ops, &a, &da), 0);
	assert_true(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	assert_false(take(f)); /* no PN yet */
	secure_outcome(f, 0x05);
	assert_int_equal(a.closed, 1);
	assert_int_equal(a.close_err, -EACCES);
	assert_int_equal(rfcomm_dlc_sec_reason(da), HCI_SEC_PEER_AUTH_FAILURE);
	rfcomm_close(da);

	assert_int_equal(rfcomm_connect_sec(f->rf, &f->peer, 4, L2CAP_SEC_MEDIUM, &rec_ops, &b, &db), 0);
	assert_true(harness_cmd_seen(f->h, HCI_OP_AUTH_REQUESTED));
	secure_outcome(f, 0);
	rfcomm_mcc m;
	expect_mcc(f, RFCOMM_MCC_PN, true, &m); /* our PN command */
	rfcomm_pn pn;
	assert_int_equal(rfcomm_pn_decode(m.val, m.len, &pn), 0);
	assert_int_equal(pn.dlci, 4 << 1 | 1);
	assert_int_equal(b.closed, 0);
	rfcomm_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_server_level_secures_before_ua, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_level_refused_with_dm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_sabm_ua, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dm_for_unknown_channel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pn_sabm_msc_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_credits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_credits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_budget_shared_by_dlcs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_ring_grows_when_streaming, setup_defaults, teardown),
		cmocka_unit_test_setup_teardown(test_rx_streaming, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frames_on_closed_dlci, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mux_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_aggregate_flow_control, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_disc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_local_close_drains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_local_close_slow_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_link_loss, setup, teardown),
		cmocka_unit_test_setup_teardown(test_link_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outgoing_refused_then_opened, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_during_msc_exchange, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outgoing_t1_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_channels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crossing_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answer_flood_keeps_own_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_frame_overflow_ends_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_test_longer_than_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_dlcis, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pn_n1_extremes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credit_accumulation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_data_frames_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dlc_cycles_and_msc_flood, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_session_flood, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
