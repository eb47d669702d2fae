/* test_gap.c - GAP over a real HCI layer fed with event vectors: inquiry with its three result
 * formats (Core spec Vol 4 Part E 7.7.2, 7.7.33, 7.7.38), remote names (7.1.19, 7.7.7),
 * pairing replies (7.7.22-7.7.24, 7.7.40-7.7.42), local settings; EIR parsing (Vol 3 Part C 8)
 * and Class of Device decoding (Assigned Numbers, Baseband). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "gap/gap.h"
#include "hci/hci_defs.h"

/* ------------------------------------------------------------------ a fake controller */

typedef struct {
	uint16_t op;
	uint8_t p[255];
	uint8_t len;
} sent_cmd;

typedef struct {
	bt_timers timers;
	hci *h;
	gap *g;
	sent_cmd cmds[64];
	size_t n_cmds, taken;
} fx;

static void io_send(void *ctx, const uint8_t *pkt, size_t len)
{
	fx *f = ctx;
	assert_int_equal(pkt[0], H4_CMD);
	assert_true(f->n_cmds < 64);
	sent_cmd *c = &f->cmds[f->n_cmds++];
	c->op = get_le16(pkt + 1);
	c->len = pkt[3];
	memcpy(c->p, pkt + 4, c->len);
}

static void up_event(void *ctx, uint8_t code, const uint8_t *p, size_t len)
{
	gap_event(((fx *)ctx)->g, code, p, len);
}

static void event_in(fx *f, uint8_t code, const uint8_t *p, size_t len)
{
	uint8_t pkt[260];
	pkt[0] = H4_EVT;
	pkt[1] = code;
	pkt[2] = (uint8_t)len;
	memcpy(pkt + 3, p, len);
	hci_packet(f->h, pkt, len + 3);
}

/* Takes the next command the stack sent and answers it (Command Status for the commands
 * that use it, else Command Complete) with status. */
static sent_cmd take_status(fx *f, uint8_t status)
{
	assert_true(f->taken < f->n_cmds);
	sent_cmd c = f->cmds[f->taken++];
	if (c.op == HCI_OP_INQUIRY || c.op == HCI_OP_REMOTE_NAME_REQUEST) {
		uint8_t ev[4] = { status, 1, (uint8_t)c.op, (uint8_t)(c.op >> 8) };
		event_in(f, HCI_EV_CMD_STATUS, ev, 4);
	} else {
		uint8_t ev[4] = { 1, (uint8_t)c.op, (uint8_t)(c.op >> 8), status };
		event_in(f, HCI_EV_CMD_COMPLETE, ev, 4);
	}
	return c;
}
static sent_cmd take(fx *f) { return take_status(f, 0); }
static bool idle(const fx *f) { return f->taken == f->n_cmds; }

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	hci_config cfg = { 0 };
	hci_io io = { .ctx = f, .send = io_send };
	hci_upper up = { .ctx = f, .event = up_event };
	f->h = hci_new(&cfg, &io, &up, &f->timers);
	f->g = gap_new(f->h, &f->timers);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	gap_free(f->g);
	hci_free(f->h);
	free(f);
	return 0;
}

static bt_addr addr(uint8_t last)
{
	bt_addr a = { { last, 0x00, 0x00, 0x01, 0xaa, 0x00 } };
	return a;
}

/* ------------------------------------------------------------------ inquiry */

typedef struct {
	gap_device devs[8];
	int n, done, err;
} inq_rec;

static void on_dev(void *ctx, const gap_device *d)
{
	inq_rec *r = ctx;
	assert_true(r->n < 8);
	r->devs[r->n++] = *d;
}
static void on_done(void *ctx, int err)
{
	inq_rec *r = ctx;
	r->done++;
	r->err = err;
}
static const gap_inquiry_ops inq_ops = { on_dev, on_done };

/* Inquiry Result with RSSI (7.7.33): one response. */
static void rssi_result(fx *f, uint8_t who, uint16_t clock, uint8_t psrm)
{
	uint8_t p[15] = { 1 };
	bt_addr a = addr(who);
	memcpy(p + 1, a.b, 6);
	p[7] = psrm;
	p[8] = 0;
	p[9] = 0x0c; /* CoD 0x5a020c */
	p[10] = 0x02;
	p[11] = 0x5a;
	put_le16(p + 12, clock);
	p[14] = (uint8_t)-60;
	event_in(f, HCI_EV_INQUIRY_RESULT_WITH_RSSI, p, sizeof p);
}

/* Vol 4 Part E 7.1.1 and 7.7.1/2/33/38: an inquiry reports each device once, whatever the
 * result format, and ends with Inquiry Complete. */
static void test_inquiry(void **state)
{
	fx *f = *state;
	inq_rec r = { 0 };
	assert_int_equal(gap_inquiry_start(f->g, 8, 0, &inq_ops, &r), 0);
	assert_int_equal(gap_inquiry_start(f->g, 8, 0, &inq_ops, &r), -EBUSY);
	sent_cmd c = take(f);
	assert_int_equal(c.op, HCI_OP_INQUIRY);
	static const uint8_t want[] = { 0x33, 0x8b, 0x9e, 8, 0 };
	assert_int_equal(c.len, 5);
	assert_memory_equal(c.p, want, 5);

	rssi_result(f, 1, 0x1234, 1);
	rssi_result(f, 1, 0x1234, 1); /* duplicate */
	/* Extended Inquiry Result (7.7.38) with a complete name */
	uint8_t ext[255] = { 1 };
	bt_addr b = addr(2);
	memcpy(ext + 1, b.b, 6);
	ext[7] = 0x01;
	ext[9] = 0x04; /* CoD 0x240404 */
	ext[10] = 0x04;
	ext[11] = 0x24;
	ext[14] = (uint8_t)-40;
	static const uint8_t eir[] = { 0x02, 0x01, 0x06, 0x04, 0x09, 'B', 'e', 'e' };
	memcpy(ext + 15, eir, sizeof eir);
	event_in(f, HCI_EV_EXT_INQUIRY_RESULT, ext, sizeof ext);
	/* Inquiry Result (7.7.2) with two responses */
	uint8_t leg[1 + 2 * 14] = { 2 };
	for (int i = 0; i < 2; i++) {
		uint8_t *q = leg + 1 + 14 * i;
		bt_addr a = addr((uint8_t)(3 + i));
		memcpy(q, a.b, 6);
		q[6] = 2;
		q[9] = 0x0c; /* laptop */
		q[10] = 0x01;
		put_le16(q + 12, 0x8010); /* bit 15 is not part of the offset */
	}
	event_in(f, HCI_EV_INQUIRY_RESULT, leg, sizeof leg);
	/* truncated events are ignored */
	event_in(f, HCI_EV_INQUIRY_RESULT, leg, 10);
	event_in(f, HCI_EV_EXT_INQUIRY_RESULT, ext, 12);

	assert_int_equal(r.n, 4);
	bt_addr a1 = addr(1), a3 = addr(3), a4 = addr(4);
	assert_true(bt_addr_eq(&r.devs[0].addr, &a1));
	assert_int_equal(r.devs[0].cod, 0x5a020c);
	assert_true(r.devs[0].has_rssi);
	assert_int_equal(r.devs[0].rssi, -60);
	assert_false(r.devs[0].has_name);
	assert_true(bt_addr_eq(&r.devs[1].addr, &b));
	assert_true(r.devs[1].has_name);
	assert_true(r.devs[1].name_complete);
	assert_string_equal(r.devs[1].name, "Bee");
	assert_int_equal(r.devs[1].cod, 0x240404);
	assert_true(bt_addr_eq(&r.devs[2].addr, &a3));
	assert_true(bt_addr_eq(&r.devs[3].addr, &a4));
	assert_false(r.devs[3].has_rssi);
	assert_int_equal(r.devs[3].clock_offset, 0x0010);
	assert_int_equal(r.devs[3].cod, 0x00010c);

	uint8_t done = 0;
	event_in(f, HCI_EV_INQUIRY_COMPLETE, &done, 1);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.err, 0);
	assert_false(gap_inquiry_active(f->g));

	/* the next inquiry reports a device again */
	inq_rec r2 = { 0 };
	assert_int_equal(gap_inquiry_start(f->g, 1, 5, &inq_ops, &r2), 0);
	take(f);
	rssi_result(f, 1, 0x1234, 1);
	assert_int_equal(r2.n, 1);
	event_in(f, HCI_EV_INQUIRY_COMPLETE, &done, 1);
	assert_int_equal(r2.done, 1);
	/* results outside an inquiry: remembered, not reported */
	rssi_result(f, 9, 0, 0);
	assert_int_equal(r2.n, 1);
}

/* Vol 4 Part E 7.1.1/7.1.2: failure, cancel and a controller that never completes. */
static void test_inquiry_failures(void **state)
{
	fx *f = *state;
	inq_rec r = { 0 };
	assert_int_equal(gap_inquiry_start(f->g, 0, 0, &inq_ops, &r), -EINVAL);
	assert_int_equal(gap_inquiry_start(f->g, 0x31, 0, &inq_ops, &r), -EINVAL);
	assert_int_equal(gap_inquiry_start(f->g, 4, 0, &inq_ops, &r), 0);
	take_status(f, 0x0c); /* Command Disallowed */
	assert_int_equal(r.done, 1);
	assert_true(r.err < 0);

	inq_rec c = { 0 };
	assert_int_equal(gap_inquiry_cancel(f->g), -EALREADY);
	assert_int_equal(gap_inquiry_start(f->g, 4, 0, &inq_ops, &c), 0);
	take(f);
	assert_int_equal(gap_inquiry_cancel(f->g), 0);
	assert_int_equal(c.done, 1);
	assert_int_equal(c.err, -ECANCELED);
	assert_int_equal(take(f).op, HCI_OP_INQUIRY_CANCEL);
	uint8_t done = 0;
	event_in(f, HCI_EV_INQUIRY_COMPLETE, &done, 1); /* late: ignored */
	assert_int_equal(c.done, 1);

	inq_rec t = { 0 };
	assert_int_equal(gap_inquiry_start(f->g, 2, 0, &inq_ops, &t), 0);
	take(f);
	bt_timers_run(&f->timers, 2 * 1280 + 4999);
	assert_int_equal(t.done, 0);
	bt_timers_run(&f->timers, 2 * 1280 + 5000);
	assert_int_equal(t.done, 1);
	assert_int_equal(t.err, -ETIMEDOUT);
}

/* ------------------------------------------------------------------ names */

typedef struct {
	int calls, err;
	char name[256];
	bt_addr peer;
} name_rec;

static void on_name(void *ctx, int err, const bt_addr *peer, const char *name)
{
	name_rec *r = ctx;
	r->calls++;
	r->err = err;
	r->peer = *peer;
	snprintf(r->name, sizeof r->name, "%s", name);
}

static void name_complete(fx *f, uint8_t status, const bt_addr *a, const char *name)
{
	uint8_t p[255] = { status };
	memcpy(p + 1, a->b, 6);
	memcpy(p + 7, name, strlen(name));
	event_in(f, HCI_EV_REMOTE_NAME_REQUEST_COMPLETE, p, 1 + 6 + 248);
}

/* Vol 4 Part E 7.1.19 / 7.7.7: one request at a time, inquiry facts reused, timeout. */
static void test_remote_name(void **state)
{
	fx *f = *state;
	inq_rec ir = { 0 };
	gap_inquiry_start(f->g, 1, 0, &inq_ops, &ir);
	take(f);
	rssi_result(f, 1, 0x1234, 1);

	bt_addr a = addr(1), b = addr(2);
	name_rec ra = { 0 }, rb = { 0 };
	assert_int_equal(gap_remote_name(f->g, &a, 3000, on_name, &ra, NULL), 0);
	assert_int_equal(gap_remote_name(f->g, &b, 3000, on_name, &rb, NULL), 0);
	sent_cmd c = take(f);
	assert_int_equal(c.op, HCI_OP_REMOTE_NAME_REQUEST);
	assert_int_equal(c.len, 10);
	assert_memory_equal(c.p, a.b, 6);
	assert_int_equal(c.p[6], 1);                 /* PSRM from the inquiry */
	assert_int_equal(get_le16(c.p + 8), 0x9234); /* offset with its valid bit */
	assert_true(idle(f));                        /* b waits */
	name_complete(f, 0, &b, "wrong");            /* not the one asked: ignored */
	assert_int_equal(ra.calls + rb.calls, 0);
	name_complete(f, 0, &a, "Alice");
	assert_int_equal(ra.calls, 1);
	assert_int_equal(ra.err, 0);
	assert_string_equal(ra.name, "Alice");
	c = take(f);
	assert_memory_equal(c.p, b.b, 6);
	assert_int_equal(c.p[6], 2);         /* unknown device: R2 */
	assert_int_equal(get_le16(c.p + 8), 0);
	name_complete(f, 0x04, &b, "");      /* Page Timeout */
	assert_int_equal(rb.calls, 1);
	assert_true(rb.err < 0);

	/* timeout: callback, cancel, then the next waits for the controller's answer */
	name_rec rt = { 0 }, rn = { 0 };
	gap_remote_name(f->g, &a, 1000, on_name, &rt, NULL);
	gap_remote_name(f->g, &b, 1000, on_name, &rn, NULL);
	take(f);
	bt_timers_run(&f->timers, f->timers.now + 1000);
	assert_int_equal(rt.calls, 1);
	assert_int_equal(rt.err, -ETIMEDOUT);
	assert_int_equal(take(f).op, HCI_OP_REMOTE_NAME_REQUEST_CANCEL);
	assert_true(idle(f));
	name_complete(f, 0x02, &a, "");
	assert_int_equal(rt.calls, 1);
	c = take(f);
	assert_int_equal(c.op, HCI_OP_REMOTE_NAME_REQUEST);
	assert_memory_equal(c.p, b.b, 6);
	name_complete(f, 0, &b, "Bob");
	assert_string_equal(rn.name, "Bob");

	/* a Command Status failure ends the request; cancel of a queued one is silent */
	name_rec rf = { 0 }, rq = { 0 };
	gap_name_req *q;
	gap_remote_name(f->g, &a, 1000, on_name, &rf, NULL);
	gap_remote_name(f->g, &b, 1000, on_name, &rq, &q);
	gap_remote_name_cancel(f->g, q);
	take_status(f, 0x0c);
	assert_int_equal(rf.calls, 1);
	assert_true(rf.err < 0);
	assert_true(idle(f));
	assert_int_equal(rq.calls, 0);
}

/* ------------------------------------------------------------------ pairing */

/* Vol 4 Part E 7.7.40-7.7.42 -> 7.1.29/7.1.30: Just Works, NoInputNoOutput, no MITM. */
static void test_ssp_replies(void **state)
{
	fx *f = *state;
	bt_addr a = addr(5);
	event_in(f, HCI_EV_IO_CAPABILITY_REQUEST, a.b, 6);
	sent_cmd c = take(f);
	assert_int_equal(c.op, HCI_OP_IO_CAPABILITY_REQUEST_REPLY);
	assert_int_equal(c.len, 9);
	assert_memory_equal(c.p, a.b, 6);
	assert_int_equal(c.p[6], 0x03);
	assert_int_equal(c.p[7], 0x00);
	assert_int_equal(c.p[8], 0x00);
	/* the peer spoke first asking general bonding with MITM: not bondable (the default),
	 * we answer No Bonding (Vol 3 Part C 4.3), so it keeps no key we would forget */
	uint8_t resp[9];
	memcpy(resp, a.b, 6);
	resp[6] = 0x01;
	resp[7] = 0x00;
	resp[8] = 0x05;
	event_in(f, HCI_EV_IO_CAPABILITY_RESPONSE, resp, 9);
	event_in(f, HCI_EV_IO_CAPABILITY_REQUEST, a.b, 6);
	c = take(f);
	assert_int_equal(c.p[8], 0x00);
	/* bondable: we bond as it asked, without MITM; General Bonding to a peer that did not say */
	gap_set_bondable(f->g, true);
	event_in(f, HCI_EV_IO_CAPABILITY_REQUEST, a.b, 6);
	c = take(f);
	assert_int_equal(c.p[8], 0x04);
	bt_addr b = addr(7);
	event_in(f, HCI_EV_IO_CAPABILITY_REQUEST, b.b, 6);
	c = take(f);
	assert_int_equal(c.p[8], 0x04);
	gap_set_bondable(f->g, false);

	uint8_t conf[10];
	memcpy(conf, a.b, 6);
	put_le32(conf + 6, 123456);
	event_in(f, HCI_EV_USER_CONFIRM_REQUEST, conf, 10);
	c = take(f);
	assert_int_equal(c.op, HCI_OP_USER_CONFIRM_REQUEST_REPLY);
	assert_memory_equal(c.p, a.b, 6);
	event_in(f, 0x34, a.b, 6); /* User Passkey Request: refused */
	assert_int_equal(take(f).op, HCI_OPCODE(0x01, 0x002f));
	event_in(f, HCI_EV_PIN_CODE_REQUEST, a.b, 6);
	c = take(f);
	assert_int_equal(c.op, HCI_OP_PIN_CODE_REQUEST_NEG_REPLY);
	assert_memory_equal(c.p, a.b, 6);
	event_in(f, HCI_EV_IO_CAPABILITY_REQUEST, a.b, 5); /* truncated: no reply */
	assert_true(idle(f));
}

/* Vol 4 Part E 7.7.23/7.7.24 -> 7.1.10/7.1.11: keys of a bonding are offered back; a key
 * from a pairing without bonding is not kept (the peer drops it too). */
static void test_link_keys(void **state)
{
	fx *f = *state;
	bt_addr a = addr(6);
	event_in(f, HCI_EV_LINK_KEY_REQUEST, a.b, 6);
	sent_cmd c = take(f);
	assert_int_equal(c.op, HCI_OP_LINK_KEY_REQUEST_NEG_REPLY);
	assert_memory_equal(c.p, a.b, 6);
	uint8_t note[23];
	memcpy(note, a.b, 6);
	for (int i = 0; i < 16; i++)
		note[6 + i] = (uint8_t)(0xa0 + i);
	note[22] = 0x04;
	event_in(f, HCI_EV_LINK_KEY_NOTIFICATION, note, 23); /* not bondable: forgotten */
	assert_true(idle(f));
	event_in(f, HCI_EV_LINK_KEY_REQUEST, a.b, 6);
	assert_int_equal(take(f).op, HCI_OP_LINK_KEY_REQUEST_NEG_REPLY);
	uint8_t resp[9]; /* the peer asks Dedicated Bonding (0x02): it keeps the key, so do we */
	memcpy(resp, a.b, 6);
	resp[6] = 0x03;
	resp[7] = 0x00;
	resp[8] = 0x02;
	event_in(f, HCI_EV_IO_CAPABILITY_RESPONSE, resp, 9);
	event_in(f, HCI_EV_LINK_KEY_NOTIFICATION, note, 23);
	assert_true(idle(f));
	event_in(f, HCI_EV_LINK_KEY_REQUEST, a.b, 6);
	c = take(f);
	assert_int_equal(c.op, HCI_OP_LINK_KEY_REQUEST_REPLY);
	assert_int_equal(c.len, 22);
	assert_memory_equal(c.p + 6, note + 6, 16);
	gap_link_key_forget(f->g, &a);
	uint8_t k[16];
	assert_int_equal(gap_link_key_get(f->g, &a, k), -ENOENT);
	/* the table holds GAP_MAX_KEYS; the oldest goes */
	for (int i = 0; i < GAP_MAX_KEYS + 1; i++) {
		bt_addr x = addr((uint8_t)(0x80 + i));
		gap_link_key_set(f->g, &x, note + 6, 4);
	}
	bt_addr first = addr(0x80), last = addr(0x80 + GAP_MAX_KEYS);
	assert_int_equal(gap_link_key_get(f->g, &first, k), -ENOENT);
	assert_int_equal(gap_link_key_get(f->g, &last, k), 0);
}

/* Vol 4 Part E 7.3.11, 7.3.56, 7.3.26, 7.3.18: local settings. */
static void test_local_settings(void **state)
{
	fx *f = *state;
	assert_int_equal(gap_write_local_name(f->g, "btsock-test", NULL, NULL), 0);
	sent_cmd c = take(f);
	assert_int_equal(c.op, HCI_OP_WRITE_LOCAL_NAME);
	assert_int_equal(c.len, 248);
	assert_string_equal((const char *)c.p, "btsock-test");
	c = take(f);
	assert_int_equal(c.op, HCI_OP_WRITE_EXT_INQUIRY_RESPONSE);
	assert_int_equal(c.len, 241);
	char name[64];
	assert_int_equal(gap_eir_name(c.p + 1, 240, name, sizeof name, NULL), 11);
	assert_string_equal(name, "btsock-test");
	assert_int_equal(gap_write_class_of_device(f->g, 0x5a020c, NULL, NULL), 0);
	c = take(f);
	assert_int_equal(c.op, HCI_OP_WRITE_CLASS_OF_DEVICE);
	static const uint8_t cod[] = { 0x0c, 0x02, 0x5a };
	assert_memory_equal(c.p, cod, 3);
	gap_write_scan_enable(f->g, false, true, NULL, NULL);
	c = take(f);
	assert_int_equal(c.op, HCI_OP_WRITE_SCAN_ENABLE);
	assert_int_equal(c.p[0], 0x02);
	char longname[300];
	memset(longname, 'n', 299);
	longname[299] = 0;
	assert_int_equal(gap_write_local_name(f->g, longname, NULL, NULL), -EINVAL);
}

/* ------------------------------------------------------------------ pure helpers */

/* Vol 3 Part C 8 / Supplement Part A 1.2: EIR structures and names. */
static void test_eir(void **state)
{
	char n[32];
	bool complete;
	static const uint8_t both[] = { 0x02, 0x01, 0x06, 0x03, 0x08, 'A', 'b', 0x05, 0x09, 'A', 'b', 'c', 'd', 0x00, 0x00 };
	assert_int_equal(gap_eir_name(both, sizeof both, n, sizeof n, &complete), 4);
	assert_string_equal(n, "Abcd");
	assert_true(complete);
	static const uint8_t shortened[] = { 0x03, 0x08, 'A', 'b', 0x00, 0x05, 0x09, 'x', 'x', 'x', 'x' };
	assert_int_equal(gap_eir_name(shortened, sizeof shortened, n, sizeof n, &complete), 2);
	assert_false(complete); /* the complete name after the terminator does not count */
	static const uint8_t none[] = { 0x02, 0x01, 0x06 };
	assert_int_equal(gap_eir_name(none, sizeof none, n, sizeof n, NULL), -ENOENT);
	static const uint8_t overrun[] = { 0x02, 0x01, 0x06, 0x09, 0x09, 'a' };
	const uint8_t *d;
	size_t dl;
	assert_int_equal(gap_eir_find(overrun, sizeof overrun, 0x09, &d, &dl), -EBADMSG);
	assert_int_equal(gap_eir_name(overrun, sizeof overrun, n, sizeof n, NULL), -ENOENT);
	assert_int_equal(gap_eir_find(both, sizeof both, 0x01, &d, &dl), 0);
	assert_int_equal(dl, 1);
	assert_int_equal(d[0], 0x06);
	assert_int_equal(gap_eir_name(both, sizeof both, n, 3, NULL), 2); /* truncated */
	assert_string_equal(n, "Ab");

	uint8_t eir[240];
	char longname[300];
	memset(longname, 'L', 299);
	longname[299] = 0;
	gap_eir_build_name(longname, eir);
	assert_int_equal(eir[0], 239);
	assert_int_equal(eir[1], 0x08); /* shortened */
	char back[300];
	assert_int_equal(gap_eir_name(eir, sizeof eir, back, sizeof back, &complete), 238);
	assert_false(complete);
}

/* Assigned Numbers, Baseband: Class of Device major/minor classes and service bits. */
static void test_class_of_device(void **state)
{
	char buf[256], mb[64];
	assert_string_equal(gap_cod_describe(0x5a020c, buf, sizeof buf),
			    "Phone (Smartphone); services: Networking, Capturing, Object Transfer, Telephony");
	assert_string_equal(gap_cod_describe(0x00010c, buf, sizeof buf), "Computer (Laptop)");
	assert_string_equal(gap_cod_describe(0x240404, buf, sizeof buf),
			    "Audio/Video (Wearable Headset Device); services: Rendering, Audio");
	assert_string_equal(gap_cod_describe(0x002540, buf, sizeof buf),
			    "Peripheral (Keyboard); services: Limited Discoverable Mode");
	assert_string_equal(gap_cod_minor_str(0x0005c4, mb, sizeof mb), "Combo keyboard/pointing device, Joystick");
	assert_string_equal(gap_cod_minor_str(0x000500, mb, sizeof mb), "Uncategorized");
	assert_string_equal(gap_cod_minor_str(0x0006a0, mb, sizeof mb), "Camera, Printer");
	assert_string_equal(gap_cod_major_str(0x001f00), "Uncategorized");
	assert_string_equal(gap_cod_major_str(0x000e00), "Reserved");
	assert_string_equal(gap_cod_minor_str(0x000300, mb, sizeof mb), "Fully available");
	assert_string_equal(gap_cod_minor_str(0x0003e0, mb, sizeof mb), "No service available");
	assert_string_equal(gap_cod_minor_str(0x000910, mb, sizeof mb), "Glucose Meter");
	assert_string_equal(gap_cod_minor_str(0x0004fc, mb, sizeof mb), "Reserved");
	assert_string_equal(gap_cod_describe(0x000000, buf, sizeof buf), "Miscellaneous");
	assert_string_equal(gap_cod_services_str(0x800000, buf, sizeof buf), "Information");
	/* small buffers truncate, never overflow */
	char tiny[8];
	gap_cod_describe(0x5a020c, tiny, sizeof tiny);
	assert_int_equal(strlen(tiny), 7);
}

/* ------------------------------------------------------------------ issue 9: bounds */

/* Every command GAP builds has its Vol 4 Part E 7.x size; the longest local name (248 octets,
 * no NUL) fills Write_Local_Name exactly and is shortened in the 240-octet EIR. */
static void test_command_sizes(void **state)
{
	fx *f = *state;
	inq_rec ir = { 0 };
	assert_int_equal(gap_inquiry_start(f->g, 0x30, 0xff, &inq_ops, &ir), 0);
	sent_cmd c = take(f);
	assert_int_equal(c.op, HCI_OP_INQUIRY); /* 7.1.1 */
	assert_int_equal(c.len, 5);
	static const uint8_t giac[3] = { 0x33, 0x8b, 0x9e };
	assert_memory_equal(c.p, giac, 3);
	assert_int_equal(c.p[3], 0x30);
	assert_int_equal(c.p[4], 0xff);
	gap_inquiry_cancel(f->g);
	assert_int_equal(take(f).len, 0); /* 7.1.2: no parameters */

	char name[GAP_NAME_MAX + 1];
	memset(name, 'x', GAP_NAME_MAX);
	name[GAP_NAME_MAX] = 0;
	assert_int_equal(gap_write_local_name(f->g, name, NULL, NULL), 0);
	c = take(f);
	assert_int_equal(c.op, HCI_OP_WRITE_LOCAL_NAME); /* 7.3.11 */
	assert_int_equal(c.len, 248);
	assert_memory_equal(c.p, name, 248);
	c = take(f);
	assert_int_equal(c.op, HCI_OP_WRITE_EXT_INQUIRY_RESPONSE); /* 7.3.56 */
	assert_int_equal(c.len, 241);
	assert_int_equal(c.p[1], 239);  /* EIR length: type + 238 name octets */
	assert_int_equal(c.p[2], 0x08); /* shortened name */
	assert_int_equal(gap_write_local_name(f->g, "", NULL, NULL), 0);
	c = take(f);
	assert_int_equal(c.len, 248);
	assert_int_equal(c.p[0], 0);
	assert_int_equal(take(f).len, 241);
	assert_int_equal(gap_write_class_of_device(f->g, 0xffffffff, NULL, NULL), 0);
	c = take(f);
	assert_int_equal(c.len, 3); /* 7.3.26: the upper octet is not sent */
	assert_int_equal(c.p[2], 0xff);
	assert_int_equal(gap_write_scan_enable(f->g, true, true, NULL, NULL), 0);
	c = take(f);
	assert_int_equal(c.len, 1);
	assert_int_equal(c.p[0], 0x03);

	/* Pairing replies: BD_ADDR-only answers are 6 octets (7.1.11, 7.1.13, 7.1.33, 7.1.35). */
	bt_addr a = addr(9);
	static const struct {
		uint8_t ev;
		uint16_t op;
		uint8_t len;
	} replies[] = {
		{ HCI_EV_LINK_KEY_REQUEST, HCI_OP_LINK_KEY_REQUEST_NEG_REPLY, 6 },
		{ HCI_EV_PIN_CODE_REQUEST, HCI_OP_PIN_CODE_REQUEST_NEG_REPLY, 6 },
		{ 0x34, HCI_OPCODE(0x01, 0x002f), 6 },
		{ 0x35, HCI_OPCODE(0x01, 0x0033), 6 },
		{ HCI_EV_IO_CAPABILITY_REQUEST, HCI_OP_IO_CAPABILITY_REQUEST_REPLY, 9 },
	};
	for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
		event_in(f, replies[i].ev, a.b, 6);
		c = take(f);
		assert_int_equal(c.op, replies[i].op);
		assert_int_equal(c.len, replies[i].len);
		assert_memory_equal(c.p, a.b, 6);
	}
	uint8_t conf[10];
	memcpy(conf, a.b, 6);
	put_le32(conf + 6, 999999);
	event_in(f, HCI_EV_USER_CONFIRM_REQUEST, conf, 10);
	c = take(f);
	assert_int_equal(c.op, HCI_OP_USER_CONFIRM_REQUEST_REPLY); /* 7.1.30 */
	assert_int_equal(c.len, 6);
	uint8_t key[16];
	memset(key, 0x5c, sizeof key);
	gap_link_key_set(f->g, &a, key, 4);
	event_in(f, HCI_EV_LINK_KEY_REQUEST, a.b, 6);
	c = take(f);
	assert_int_equal(c.op, HCI_OP_LINK_KEY_REQUEST_REPLY); /* 7.1.10 */
	assert_int_equal(c.len, 22);
	assert_memory_equal(c.p, a.b, 6);
	assert_memory_equal(c.p + 6, key, 16);
	bt_addr b = addr(10);
	name_rec nr = { 0 };
	assert_int_equal(gap_remote_name(f->g, &b, 1000, on_name, &nr, NULL), 0);
	c = take(f);
	assert_int_equal(c.op, HCI_OP_REMOTE_NAME_REQUEST); /* 7.1.19 */
	assert_int_equal(c.len, 10);
	bt_timers_run(&f->timers, f->timers.now + 1000);
	c = take(f);
	assert_int_equal(c.op, HCI_OP_REMOTE_NAME_REQUEST_CANCEL); /* 7.1.20 */
	assert_int_equal(c.len, 6);
	assert_true(idle(f));
}

/* Events with lengths from the controller that are short, empty or carry too much: each is
 * read within its bounds; a short one is ignored, an overlong name is cut at 248 octets. */
static void test_event_lengths(void **state)
{
	fx *f = *state;
	bt_addr a = addr(11);
	static const uint8_t evs[] = { HCI_EV_IO_CAPABILITY_REQUEST, HCI_EV_IO_CAPABILITY_RESPONSE,
				       HCI_EV_USER_CONFIRM_REQUEST, 0x34, 0x35, HCI_EV_LINK_KEY_REQUEST,
				       HCI_EV_LINK_KEY_NOTIFICATION, HCI_EV_PIN_CODE_REQUEST,
				       HCI_EV_INQUIRY_RESULT, HCI_EV_INQUIRY_RESULT_WITH_RSSI,
				       HCI_EV_EXT_INQUIRY_RESULT, HCI_EV_REMOTE_NAME_REQUEST_COMPLETE,
				       HCI_EV_INQUIRY_COMPLETE };
	uint8_t p[255];
	memset(p, 0xff, sizeof p);
	memcpy(p, a.b, 6);
	for (size_t i = 0; i < sizeof evs; i++)
		for (size_t len = 0; len < 6; len++)
			event_in(f, evs[i], p, len);
	assert_true(idle(f));
	/* Link key notification one octet short, IO capability response one short: ignored. */
	event_in(f, HCI_EV_LINK_KEY_NOTIFICATION, p, 22);
	event_in(f, HCI_EV_IO_CAPABILITY_RESPONSE, p, 8);
	uint8_t k[16];
	assert_int_equal(gap_link_key_get(f->g, &a, k), -ENOENT);
	/* Inquiry results claiming 255 responses in one record's room, and EIR whose structure
	 * runs past the event: nothing reported beyond what is there. */
	inq_rec ir = { 0 };
	assert_int_equal(gap_inquiry_start(f->g, 1, 0, &inq_ops, &ir), 0);
	take(f);
	uint8_t res[15] = { 255 };
	memcpy(res + 1, a.b, 6);
	event_in(f, HCI_EV_INQUIRY_RESULT, res, sizeof res);
	event_in(f, HCI_EV_INQUIRY_RESULT_WITH_RSSI, res, sizeof res);
	assert_int_equal(ir.n, 0);
	uint8_t ext[255] = { 1 };
	memcpy(ext + 1, a.b, 6);
	ext[15] = 200; /* EIR: a 200-octet structure in 240 - 1 ... */
	ext[16] = 0x09;
	memset(ext + 17, 'e', 255 - 17);
	event_in(f, HCI_EV_EXT_INQUIRY_RESULT, ext, 15 + 100); /* ... cut to 100 */
	assert_int_equal(ir.n, 1);
	assert_false(ir.devs[0].has_name);
	/* A name of 248 octets without a NUL, with more after it: cut at 248. */
	name_rec nr = { 0 };
	gap_remote_name(f->g, &a, 1000, on_name, &nr, NULL);
	take(f);
	uint8_t nc[255] = { 0 };
	memcpy(nc + 1, a.b, 6);
	memset(nc + 7, 'N', 255 - 7);
	event_in(f, HCI_EV_REMOTE_NAME_REQUEST_COMPLETE, nc, 255);
	assert_int_equal(nr.calls, 1);
	assert_int_equal(strlen(nr.name), 248);
}


/* ------------------------------------------------------------------ agent */

typedef struct {
	int confirms, displays, entries, pins;
	bt_addr peer;
	uint32_t value;
} agent_rec;

static void ag_confirm(void *ctx, const bt_addr *peer, uint32_t value)
{
	agent_rec *r = ctx;
	r->confirms++;
	r->peer = *peer;
	r->value = value;
}
static void ag_display(void *ctx, const bt_addr *peer, uint32_t passkey)
{
	agent_rec *r = ctx;
	r->displays++;
	r->peer = *peer;
	r->value = passkey;
}
static void ag_enter(void *ctx, const bt_addr *peer)
{
	agent_rec *r = ctx;
	r->entries++;
	r->peer = *peer;
}
static void ag_pin(void *ctx, const bt_addr *peer)
{
	agent_rec *r = ctx;
	r->pins++;
	r->peer = *peer;
}
static const gap_agent full_agent = { ag_confirm, ag_display, ag_enter, ag_pin };

/* The peer's IO_Capability_Response (7.7.41): io, no OOB, auth. */
static void peer_io_caps(fx *f, const bt_addr *a, uint8_t io, uint8_t auth)
{
	uint8_t resp[9];
	memcpy(resp, a->b, 6);
	resp[6] = io;
	resp[7] = 0x00;
	resp[8] = auth;
	event_in(f, HCI_EV_IO_CAPABILITY_RESPONSE, resp, 9);
}

static void user_confirm_in(fx *f, const bt_addr *a, uint32_t value)
{
	uint8_t conf[10];
	memcpy(conf, a->b, 6);
	put_le32(conf + 6, value);
	event_in(f, HCI_EV_USER_CONFIRM_REQUEST, conf, 10);
}

static void advance(fx *f, uint32_t ms)
{
	bt_timers_run(&f->timers, f->timers.now + ms);
}

/* Vol 3 Part C 5.2.2.6: the association model from both IO capabilities; without MITM asked
 * by either side, Just Works whatever the capabilities. */
static void test_assoc_models(void **state)
{
	(void)state;
	assert_int_equal(gap_assoc_model(GAP_IO_DISPLAY_YESNO, GAP_IO_DISPLAY_YESNO, true), GAP_NUMERIC_COMPARISON);
	assert_int_equal(gap_assoc_model(GAP_IO_DISPLAY_YESNO, GAP_IO_DISPLAY_YESNO, false), GAP_JUST_WORKS);
	assert_int_equal(gap_assoc_model(GAP_IO_DISPLAY_YESNO, GAP_IO_DISPLAY_ONLY, true), GAP_NUMERIC_COMPARISON);
	assert_int_equal(gap_assoc_model(GAP_IO_DISPLAY_ONLY, GAP_IO_DISPLAY_YESNO, true), GAP_JUST_WORKS);
	assert_int_equal(gap_assoc_model(GAP_IO_DISPLAY_ONLY, GAP_IO_KEYBOARD_ONLY, true), GAP_PASSKEY_DISPLAY);
	assert_int_equal(gap_assoc_model(GAP_IO_KEYBOARD_ONLY, GAP_IO_DISPLAY_ONLY, true), GAP_PASSKEY_ENTRY);
	assert_int_equal(gap_assoc_model(GAP_IO_KEYBOARD_ONLY, GAP_IO_KEYBOARD_ONLY, true), GAP_PASSKEY_ENTRY);
	assert_int_equal(gap_assoc_model(GAP_IO_KEYBOARD_DISPLAY, GAP_IO_KEYBOARD_ONLY, true), GAP_PASSKEY_DISPLAY);
	assert_int_equal(gap_assoc_model(GAP_IO_KEYBOARD_DISPLAY, GAP_IO_DISPLAY_ONLY, true), GAP_PASSKEY_ENTRY);
	assert_int_equal(gap_assoc_model(GAP_IO_KEYBOARD_DISPLAY, GAP_IO_KEYBOARD_DISPLAY, true), GAP_NUMERIC_COMPARISON);
	for (uint8_t i = 0; i <= 4; i++) {
		assert_int_equal(gap_assoc_model(GAP_IO_NONE, i, true), GAP_JUST_WORKS);
		assert_int_equal(gap_assoc_model(i, GAP_IO_NONE, true), GAP_JUST_WORKS);
	}
	assert_int_equal(gap_assoc_model(7, GAP_IO_DISPLAY_YESNO, true), GAP_JUST_WORKS);
}

/* IO_Capability_Request_Reply (7.1.29) carries the IO capability and MITM bit set per stack. */
static void test_io_capability_setting(void **state)
{
	fx *f = *state;
	bt_addr a = addr(0x20);
	assert_int_equal(gap_set_io_capability(f->g, 5, false), -EINVAL);
	assert_int_equal(gap_set_io_capability(f->g, GAP_IO_KEYBOARD_DISPLAY, true), 0);
	event_in(f, HCI_EV_IO_CAPABILITY_REQUEST, a.b, 6);
	sent_cmd c = take(f);
	assert_int_equal(c.op, HCI_OP_IO_CAPABILITY_REQUEST_REPLY);
	assert_int_equal(c.p[6], GAP_IO_KEYBOARD_DISPLAY);
	assert_int_equal(c.p[8], 0x01); /* no bonding, MITM */
	gap_set_bondable(f->g, true);
	event_in(f, HCI_EV_IO_CAPABILITY_REQUEST, a.b, 6);
	assert_int_equal(take(f).p[8], 0x05); /* general bonding, MITM */
}

/* The default agent (Vol 4 Part E 7.7.42/43/22): Just Works accepted, Numeric Comparison,
 * Passkey Entry and PIN refused; with MITM required, Just Works is refused too. */
static void test_default_agent(void **state)
{
	fx *f = *state;
	bt_addr a = addr(0x21);
	assert_int_equal(gap_set_io_capability(f->g, GAP_IO_DISPLAY_YESNO, false), 0);
	peer_io_caps(f, &a, GAP_IO_DISPLAY_YESNO, 0x00); /* nobody asks MITM: Just Works */
	user_confirm_in(f, &a, 42);
	assert_int_equal(take(f).op, HCI_OP_USER_CONFIRM_REQUEST_REPLY);
	peer_io_caps(f, &a, GAP_IO_DISPLAY_YESNO, 0x01); /* the peer asks MITM: Numeric Comparison */
	user_confirm_in(f, &a, 42);
	sent_cmd c = take(f);
	assert_int_equal(c.op, HCI_OP_USER_CONFIRM_REQUEST_NEG_REPLY);
	assert_memory_equal(c.p, a.b, 6);
	event_in(f, 0x34, a.b, 6);
	assert_int_equal(take(f).op, HCI_OPCODE(0x01, 0x002f));
	event_in(f, HCI_EV_PIN_CODE_REQUEST, a.b, 6);
	assert_int_equal(take(f).op, HCI_OP_PIN_CODE_REQUEST_NEG_REPLY);
	/* we require MITM, the peer cannot do more than Just Works: refused */
	assert_int_equal(gap_set_io_capability(f->g, GAP_IO_DISPLAY_YESNO, true), 0);
	peer_io_caps(f, &a, GAP_IO_NONE, 0x00);
	user_confirm_in(f, &a, 0);
	assert_int_equal(take(f).op, HCI_OP_USER_CONFIRM_REQUEST_NEG_REPLY);
	assert_true(idle(f));
}

/* Numeric Comparison (7.7.42 -> 7.1.30/31) through the agent: asked with the number, the
 * reply waits for its answer; no answer within the timeout is a negative reply. */
static void test_agent_numeric_comparison(void **state)
{
	fx *f = *state;
	bt_addr a = addr(0x22);
	agent_rec r = { 0 };
	gap_set_agent(f->g, &full_agent, &r);
	gap_set_agent_timeout(f->g, 1000);
	assert_int_equal(gap_set_io_capability(f->g, GAP_IO_DISPLAY_YESNO, true), 0);
	peer_io_caps(f, &a, GAP_IO_DISPLAY_YESNO, 0x01);
	user_confirm_in(f, &a, 1123456); /* shown as six digits */
	assert_int_equal(r.confirms, 1);
	assert_int_equal(r.value, 123456);
	assert_memory_equal(r.peer.b, a.b, 6);
	assert_true(idle(f)); /* nothing until the user answers */
	assert_int_equal(gap_agent_confirm(f->g, &a, true), 0);
	sent_cmd c = take(f);
	assert_int_equal(c.op, HCI_OP_USER_CONFIRM_REQUEST_REPLY);
	assert_memory_equal(c.p, a.b, 6);
	assert_int_equal(gap_agent_confirm(f->g, &a, true), -ENOENT); /* answered already */

	user_confirm_in(f, &a, 7);
	assert_int_equal(gap_agent_confirm(f->g, &a, false), 0);
	assert_int_equal(take(f).op, HCI_OP_USER_CONFIRM_REQUEST_NEG_REPLY);

	user_confirm_in(f, &a, 8);
	advance(f, 999);
	assert_true(idle(f));
	advance(f, 2);
	assert_int_equal(take(f).op, HCI_OP_USER_CONFIRM_REQUEST_NEG_REPLY);
	assert_int_equal(gap_agent_confirm(f->g, &a, true), -ENOENT);
	assert_true(idle(f));
}

/* A User Confirmation Request with no IO Capability Response before it (a controller that
 * skipped the exchange): with an agent and a user (IO capability not NONE) the agent decides,
 * never a silent Just Works. */
static void test_confirm_without_peer_io_asks_agent(void **state)
{
	fx *f = *state;
	bt_addr a = addr(0x2a);
	agent_rec r = { 0 };
	gap_set_agent(f->g, &full_agent, &r);
	assert_int_equal(gap_set_io_capability(f->g, GAP_IO_DISPLAY_YESNO, false), 0);
	user_confirm_in(f, &a, 654321);
	assert_int_equal(r.confirms, 1);
	assert_true(idle(f)); /* nothing until the user answers */
	assert_int_equal(gap_agent_confirm(f->g, &a, false), 0);
	assert_int_equal(take(f).op, HCI_OP_USER_CONFIRM_REQUEST_NEG_REPLY);
	/* The table says Passkey Entry (we show, the peer types) but a confirmation comes: the
	 * agent decides too. */
	assert_int_equal(gap_set_io_capability(f->g, GAP_IO_DISPLAY_ONLY, false), 0);
	bt_addr c = addr(0x2c);
	peer_io_caps(f, &c, GAP_IO_KEYBOARD_ONLY, 0x01);
	user_confirm_in(f, &c, 123);
	assert_int_equal(r.confirms, 2);
	assert_int_equal(gap_agent_confirm(f->g, &c, true), 0);
	assert_int_equal(take(f).op, HCI_OP_USER_CONFIRM_REQUEST_REPLY);
	/* No user (IO capability NONE): Just Works, as the table says for NoInputNoOutput. */
	assert_int_equal(gap_set_io_capability(f->g, GAP_IO_NONE, false), 0);
	bt_addr b = addr(0x2b);
	user_confirm_in(f, &b, 1);
	assert_int_equal(take(f).op, HCI_OP_USER_CONFIRM_REQUEST_REPLY);
	assert_int_equal(r.confirms, 2);
}

/* Passkey Entry: we display (User_Passkey_Notification 7.7.48) or we type (User_Passkey_Request
 * 7.7.43 -> 7.1.32 with the value, 7.1.33 refused or timed out). */
static void test_agent_passkey(void **state)
{
	fx *f = *state;
	bt_addr a = addr(0x23);
	agent_rec r = { 0 };
	gap_set_agent(f->g, &full_agent, &r);
	gap_set_agent_timeout(f->g, 1000);
	uint8_t note[10];
	memcpy(note, a.b, 6);
	put_le32(note + 6, 654321);
	event_in(f, 0x3b, note, 10);
	assert_int_equal(r.displays, 1);
	assert_int_equal(r.value, 654321);
	event_in(f, 0x3b, note, 9); /* short: ignored */
	assert_int_equal(r.displays, 1);
	assert_true(idle(f));

	event_in(f, 0x34, a.b, 6);
	assert_int_equal(r.entries, 1);
	assert_true(idle(f));
	assert_int_equal(gap_agent_passkey(f->g, &a, true, 1000000), -EINVAL);
	assert_int_equal(gap_agent_passkey(f->g, &a, true, 9), 0);
	sent_cmd c = take(f);
	assert_int_equal(c.op, HCI_OPCODE(0x01, 0x002e));
	assert_int_equal(c.len, 10);
	assert_memory_equal(c.p, a.b, 6);
	assert_int_equal(get_le32(c.p + 6), 9);
	event_in(f, 0x34, a.b, 6);
	assert_int_equal(gap_agent_passkey(f->g, &a, false, 0), 0);
	assert_int_equal(take(f).op, HCI_OPCODE(0x01, 0x002f));
	event_in(f, 0x34, a.b, 6);
	advance(f, 1001);
	assert_int_equal(take(f).op, HCI_OPCODE(0x01, 0x002f));
	assert_int_equal(gap_agent_passkey(f->g, &a, true, 1), -ENOENT);
	assert_true(idle(f));
}

/* Legacy pairing (7.7.22 -> 7.1.12/13): a fixed PIN per peer answers at once; else the
 * agent's PIN, or its refusal. */
static void test_legacy_pin(void **state)
{
	fx *f = *state;
	bt_addr a = addr(0x24), b = addr(0x25);
	assert_int_equal(gap_set_pin(f->g, &a, ""), -EINVAL);
	assert_int_equal(gap_set_pin(f->g, &a, "12345678901234567"), -EINVAL);
	assert_int_equal(gap_set_pin(f->g, &a, "1234"), 0);
	event_in(f, HCI_EV_PIN_CODE_REQUEST, a.b, 6);
	sent_cmd c = take(f);
	assert_int_equal(c.op, HCI_OPCODE(0x01, 0x000d));
	assert_int_equal(c.len, 23);
	assert_memory_equal(c.p, a.b, 6);
	assert_int_equal(c.p[6], 4);
	assert_memory_equal(c.p + 7, "1234", 4);
	assert_int_equal(c.p[11], 0);
	/* b has no fixed PIN: the default agent refuses, a full one is asked */
	event_in(f, HCI_EV_PIN_CODE_REQUEST, b.b, 6);
	assert_int_equal(take(f).op, HCI_OP_PIN_CODE_REQUEST_NEG_REPLY);
	agent_rec r = { 0 };
	gap_set_agent(f->g, &full_agent, &r);
	event_in(f, HCI_EV_PIN_CODE_REQUEST, b.b, 6);
	assert_int_equal(r.pins, 1);
	assert_true(idle(f));
	assert_int_equal(gap_agent_pin(f->g, &b, "0000"), 0);
	c = take(f);
	assert_int_equal(c.op, HCI_OPCODE(0x01, 0x000d));
	assert_int_equal(c.p[6], 4);
	assert_memory_equal(c.p + 7, "0000", 4);
	event_in(f, HCI_EV_PIN_CODE_REQUEST, b.b, 6);
	assert_int_equal(gap_agent_pin(f->g, &b, NULL), 0);
	assert_int_equal(take(f).op, HCI_OP_PIN_CODE_REQUEST_NEG_REPLY);
	assert_int_equal(gap_set_pin(f->g, &a, NULL), 0);
	event_in(f, HCI_EV_PIN_CODE_REQUEST, a.b, 6); /* fixed PIN gone: the agent is asked */
	assert_int_equal(r.pins, 3);
	assert_true(idle(f));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_inquiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inquiry_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remote_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ssp_replies, setup, teardown),
		cmocka_unit_test(test_assoc_models),
		cmocka_unit_test_setup_teardown(test_io_capability_setting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_agent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_numeric_comparison, setup, teardown),
		cmocka_unit_test_setup_teardown(test_confirm_without_peer_io_asks_agent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_passkey, setup, teardown),
		cmocka_unit_test_setup_teardown(test_legacy_pin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_link_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_local_settings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_lengths, setup, teardown),
		cmocka_unit_test(test_eir),
		cmocka_unit_test(test_class_of_device),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
