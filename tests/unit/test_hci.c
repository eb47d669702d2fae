/* test_hci.c - HCI faults (Core spec Vol 4 Part E) through a real stack driven by the harness:
 * a refused page charged to the right link, link control that survives a full command queue,
 * and a controller that misbehaves (Hardware Error, completions for unknown handles, ACL
 * packets longer than its buffers, silence). Each test names the section it checks. */
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

typedef struct {
	int opened, closed, close_err;
	size_t sdus;
} rec;

static void r_opened(void *c, l2cap_chan *ch) { (void)ch; ((rec *)c)->opened++; }
static void r_data(void *c, l2cap_chan *ch, const uint8_t *p, size_t n)
{
	(void)ch;
	(void)p;
	(void)n;
	((rec *)c)->sdus++;
}
static void r_closed(void *c, l2cap_chan *ch, int err)
{
	rec *r = c;
	(void)ch;
	r->closed++;
	r->close_err = err;
}
static const l2cap_chan_ops rec_ops = { r_opened, r_data, NULL, r_closed };

static bt_addr addr(const char *s)
{
	bt_addr a;
	bt_addr_parse(s, &a);
	return a;
}

static hci *H(harness *h) { return bt_stack_hci(harness_stack(h)); }

/* Command Status (7.7.15) for opcode with status, one credit. */
static void cmd_status_in(harness *h, uint16_t op, uint8_t status)
{
	uint8_t ev[7] = { 0x04, HCI_EV_CMD_STATUS, 4, status, 1 };
	put_le16(ev + 5, op);
	harness_h4_in(h, ev, sizeof ev);
}

/* Command Complete (7.7.14) for opcode, status 0, one credit. */
static void cmd_complete_in(harness *h, uint16_t op)
{
	uint8_t ev[7] = { 0x04, HCI_EV_CMD_COMPLETE, 4, 1 };
	put_le16(ev + 4, op);
	ev[6] = 0;
	harness_h4_in(h, ev, sizeof ev);
}

/* With the controller muted, fills the ordinary command queue (the first command is sent and
 * never answered, the others wait) until hci_cmd refuses. */
static void fill_queue(harness *h)
{
	uint8_t scan = 0x03;
	int n = 0;
	while (hci_cmd(H(h), HCI_OP_WRITE_SCAN_ENABLE, &scan, 1, NULL, NULL) == 0)
		n++;
	assert_int_equal(n, 32);
	assert_int_equal(hci_cmd(H(h), HCI_OP_WRITE_SCAN_ENABLE, &scan, 1, NULL, NULL), -ENOBUFS);
}

/* The muted controller wakes up: answers the stuck command; the harness answers the rest. */
static void unstick(harness *h)
{
	harness_mute(h, false);
	cmd_complete_in(h, HCI_OP_WRITE_SCAN_ENABLE);
}

/* 7.7.15 / 7.1.5: pages to A and B under way (A's Command Status said 0, B's is refused). The
 * refusal ends B's page and only B's channel; A's channel still waits for its link. Before the
 * fix the refusal was charged to the first paging link, A. */
static void test_refused_page_charged_to_its_own_link(void **state)
{
	(void)state;
	harness *h = harness_new(1);
	l2cap *l = bt_stack_l2cap(harness_stack(h));
	bt_addr a = addr("00:BB:0A:00:00:0A"), b = addr("00:BB:0B:00:00:0B");
	rec ra = { 0 }, rb = { 0 };
	l2cap_chan *ca, *cb;
	harness_mute(h, true);
	assert_int_equal(l2cap_connect(l, &a, 0x1001, 672, &rec_ops, &ra, &ca), 0);
	assert_int_equal(l2cap_connect(l, &b, 0x1001, 672, &rec_ops, &rb, &cb), 0);
	assert_true(harness_cmd_seen(h, HCI_OP_CREATE_CONN)); /* A's; B's waits for a credit */
	cmd_status_in(h, HCI_OP_CREATE_CONN, 0x00); /* A's page is under way */
	assert_true(harness_cmd_seen(h, HCI_OP_CREATE_CONN)); /* B's */
	cmd_status_in(h, HCI_OP_CREATE_CONN, 0x09); /* refused: connection limit exceeded */
	assert_int_equal(rb.closed, 1);
	assert_int_equal(rb.close_err, -EMLINK);
	assert_int_equal(ra.closed, 0);
	/* A's page completes and its channel goes on to connect. */
	harness_mute(h, false);
	uint16_t handle = harness_accept_page(h, &a);
	assert_int_equal(hci_link_handle(H(h), &a), handle);
	assert_int_equal(ra.closed, 0);
	l2cap_close(ca);
	l2cap_close(cb);
	harness_free(h);
}

/* 7.1.8: a Connection Request arriving while the ordinary command queue is full is still
 * accepted once the controller takes commands again. Before the fix the Accept was dropped
 * without a word and the peer's connection timed out. */
static void test_accept_survives_full_queue(void **state)
{
	(void)state;
	harness *h = harness_new(1);
	harness_mute(h, true);
	fill_queue(h);
	bt_addr p = addr("00:BB:0C:00:00:0C");
	harness_link_up(h, &p); /* Connection Request; the Accept must wait, not vanish */
	assert_int_equal(hci_link_count(H(h)), 0);
	unstick(h);
	assert_true(harness_cmd_seen(h, HCI_OP_ACCEPT_CONN_REQUEST));
	assert_int_equal(hci_link_count(H(h)), 1);
	assert_int_equal(hci_get_faults(H(h))->cmd_dropped, 0);
	harness_free(h);
}

/* Crossed pages: a Connection Request from a peer whose link came up a moment ago is the
 * peer's page crossing ours (btvirt delivers it; a controller would not allow a second ACL link,
 * Vol 2 Part F 4): it is refused and the link stays. Before the fix the second link was taken
 * for a replacement and the live one ended, with every channel on it (ECONNRESET). Much later
 * the same request means the old link died silently: accepted, it replaces it. */
static void test_crossed_page_refused(void **state)
{
	(void)state;
	harness *h = harness_new(1);
	bt_addr p = addr("00:BB:0E:00:00:0E");
	uint16_t first = harness_link_up(h, &p);
	assert_true(harness_cmd_seen(h, HCI_OP_ACCEPT_CONN_REQUEST));
	harness_advance(h, 100);
	uint8_t req[10] = { 0 };
	memcpy(req, p.b, 6);
	req[9] = 0x01; /* ACL */
	uint8_t ev[13] = { 0x04, HCI_EV_CONN_REQUEST, 10 };
	memcpy(ev + 3, req, 10);
	harness_h4_in(h, ev, sizeof ev);
	assert_true(harness_cmd_seen(h, HCI_OP_REJECT_CONN_REQUEST));
	assert_int_equal(hci_link_count(H(h)), 1);
	assert_int_equal(hci_link_handle(H(h), &p), first);
	harness_advance(h, 5000);
	uint16_t second = harness_link_up(h, &p);
	assert_true(harness_cmd_seen(h, HCI_OP_ACCEPT_CONN_REQUEST));
	assert_int_equal(hci_link_handle(H(h), &p), second);
	assert_int_equal(hci_link_count(H(h)), 1);
	harness_free(h);
}

/* 7.1.6: a link declared lost while the command queue is full still gets its Disconnect. */
static void test_disconnect_survives_full_queue(void **state)
{
	(void)state;
	harness *h = harness_new(1);
	bt_addr p = addr("00:BB:0D:00:00:0D");
	uint16_t handle = harness_link_up(h, &p);
	assert_int_equal(hci_link_count(H(h)), 1);
	harness_mute(h, true);
	fill_queue(h);
	hci_link_lost(H(h), handle, -ETIMEDOUT);
	assert_int_equal(hci_link_count(H(h)), 0);
	assert_false(harness_cmd_seen(h, HCI_OP_DISCONNECT));
	unstick(h);
	assert_true(harness_cmd_seen(h, HCI_OP_DISCONNECT));
	harness_free(h);
}

/* 7.1.7: a page that times out while the command queue is full still gets its
 * Create_Connection_Cancel, and its channel learns -ETIMEDOUT. */
static void test_page_cancel_survives_full_queue(void **state)
{
	(void)state;
	harness *h = harness_new(1);
	l2cap *l = bt_stack_l2cap(harness_stack(h));
	bt_addr p = addr("00:BB:0E:00:00:0E");
	rec r = { 0 };
	l2cap_chan *ch;
	assert_int_equal(l2cap_connect(l, &p, 0x1001, 672, &rec_ops, &r, &ch), 0);
	harness_advance(h, 0); /* the controller's Command Status */
	assert_true(harness_cmd_seen(h, HCI_OP_CREATE_CONN));
	harness_advance(h, 9000); /* the page runs (connect timeout 10 s) */
	harness_mute(h, true);
	fill_queue(h);
	harness_advance(h, 1500); /* page timeout; the stuck command is 1.5 s old (< 3 s) */
	assert_int_equal(r.closed, 1);
	assert_int_equal(r.close_err, -ETIMEDOUT);
	assert_int_equal(harness_fatal(h), 0);
	unstick(h);
	assert_true(harness_cmd_seen(h, HCI_OP_CREATE_CONN_CANCEL));
	l2cap_close(ch);
	harness_free(h);
}

/* 7.7.23 / 7.1.11: the controller's Link_Key_Request must be answered (pairing waits for it);
 * with the ordinary queue full, GAP's negative reply still goes out once commands flow. */
static void test_pairing_reply_survives_full_queue(void **state)
{
	(void)state;
	harness *h = harness_new(1);
	harness_mute(h, true);
	fill_queue(h);
	uint8_t ev[3 + 6] = { 0x04, HCI_EV_LINK_KEY_REQUEST, 6, 0x14, 0, 0, 0x14, 0xbb, 0x00 };
	harness_h4_in(h, ev, sizeof ev);
	unstick(h);
	assert_true(harness_cmd_seen(h, HCI_OP_LINK_KEY_REQUEST_NEG_REPLY));
	harness_free(h);
}

/* Every reserved slot in use too (a controller that stopped answering): the lost Disconnect is
 * counted and named in the stack's error, hci_disconnect says -ENOBUFS; no silent drop. */
static void test_link_control_overflow_is_reported(void **state)
{
	(void)state;
	harness *h = harness_new(1);
	bt_addr p = addr("00:BB:0F:00:00:0F");
	uint16_t handle = harness_link_up(h, &p);
	harness_mute(h, true);
	fill_queue(h);
	int rc = 0, n = 0;
	while ((rc = hci_disconnect(H(h), handle, HCI_ERR_REMOTE_USER_TERMINATED)) == 0 && n < 1000)
		n++;
	assert_int_equal(rc, -ENOBUFS);
	assert_true(n >= 32); /* at least one reserved slot per link */
	assert_int_equal(hci_get_faults(H(h))->cmd_dropped, 1);
	assert_non_null(strstr(bt_stack_error(harness_stack(h)), "command queue full"));
	harness_free(h);
}

static int srv_accept(void *srv, l2cap_chan *ch, const l2cap_chan_ops **ops, void **ctx)
{
	(void)ch;
	*ops = &rec_ops;
	*ctx = srv;
	return 0;
}

/* A link from a peer carrying an open channel to r, and a page to another peer under way. */
static void busy_stack(harness *h, rec *r, rec *paging, l2cap_chan **pch)
{
	l2cap *l = bt_stack_l2cap(harness_stack(h));
	assert_int_equal(l2cap_listen(l, 0x1001, 1000, srv_accept, r), 0x1001);
	bt_addr p = addr("00:BB:12:00:00:12"), q = addr("00:BB:13:00:00:13");
	uint16_t handle = harness_link_up(h, &p);
	assert_int_not_equal(harness_open_channel(h, handle, 0x1001, 0x0040, 800), 0);
	assert_int_equal(r->opened, 1);
	assert_int_equal(l2cap_connect(l, &q, 0x1001, 672, &rec_ops, paging, pch), 0);
	harness_advance(h, 0);
}

/* 7.7.16: a Hardware Error event kills the stack: fatal(-EIO) with the code in the message;
 * every link goes down and every page fails, so each channel's owner hears closed(-ENETDOWN)
 * at once; no command goes out any more, and the command that was outstanding timing out
 * later does not replace the message. */
static void test_hardware_error_is_fatal(void **state)
{
	(void)state;
	harness *h = harness_new(1);
	rec r = { 0 }, pg = { 0 };
	l2cap_chan *pch;
	busy_stack(h, &r, &pg, &pch);
	harness_mute(h, true);
	uint8_t scan = 0x03;
	assert_int_equal(hci_cmd(H(h), HCI_OP_WRITE_SCAN_ENABLE, &scan, 1, NULL, NULL), 0);
	const uint8_t ev[] = { 0x04, HCI_EV_HARDWARE_ERROR, 1, 0x42 };
	harness_h4_in(h, ev, sizeof ev);
	assert_int_equal(harness_fatal(h), -EIO);
	const char *e = bt_stack_error(harness_stack(h));
	assert_non_null(strstr(e, "hardware error"));
	assert_non_null(strstr(e, "0x42"));
	assert_int_equal(hci_get_faults(H(h))->hw_errors, 1);
	assert_int_equal(r.closed, 1);
	assert_int_equal(r.close_err, -ENETDOWN);
	assert_int_equal(pg.closed, 1);
	assert_int_equal(pg.close_err, -ENETDOWN);
	assert_int_equal(hci_link_count(H(h)), 0);
	assert_int_equal(hci_cmd(H(h), HCI_OP_WRITE_SCAN_ENABLE, &scan, 1, NULL, NULL), -ENETDOWN);
	harness_advance(h, 5000);
	assert_non_null(strstr(bt_stack_error(harness_stack(h)), "hardware error"));
	l2cap_close(pch);
	harness_free(h);
}

/* 4.4: a command unanswered for 3 s declares the controller dead (fatal -ETIMEDOUT), and
 * every channel's owner hears closed(-ENETDOWN). */
static void test_unanswered_command_is_fatal(void **state)
{
	(void)state;
	harness *h = harness_new(1);
	rec r = { 0 }, pg = { 0 };
	l2cap_chan *pch;
	busy_stack(h, &r, &pg, &pch);
	harness_mute(h, true);
	uint8_t scan = 0x03;
	assert_int_equal(hci_cmd(H(h), HCI_OP_WRITE_SCAN_ENABLE, &scan, 1, NULL, NULL), 0);
	harness_advance(h, 2900);
	assert_int_equal(harness_fatal(h), 0);
	assert_int_equal(r.closed, 0);
	harness_advance(h, 200);
	assert_int_equal(harness_fatal(h), -ETIMEDOUT);
	assert_non_null(strstr(bt_stack_error(harness_stack(h)), "did not answer HCI command 0x0c1a"));
	assert_int_equal(r.closed, 1);
	assert_int_equal(r.close_err, -ENETDOWN);
	assert_int_equal(pg.closed, 1);
	assert_int_equal(hci_link_count(H(h)), 0);
	l2cap_close(pch);
	harness_free(h);
}

/* 7.7.19: completions for a handle that is not ours are ignored and counted; they credit no
 * other link and never raise the free buffers above the controller's count (4.1.1). */
static void test_nocp_unknown_handle_ignored(void **state)
{
	(void)state;
	harness *h = harness_new(1);
	bt_addr p = addr("00:BB:10:00:00:10");
	uint16_t handle = harness_link_up(h, &p);
	uint8_t ev[3 + 1 + 8] = { 0x04, HCI_EV_NUM_COMPLETED_PACKETS, 9, 2 };
	put_le16(ev + 4, 0x0999);
	put_le16(ev + 6, 50);
	put_le16(ev + 8, handle); /* ours, but nothing in flight: credited nothing */
	put_le16(ev + 10, 50);
	harness_h4_in(h, ev, sizeof ev);
	assert_int_equal(hci_get_faults(H(h))->nocp_unknown, 1);
	assert_true(hci_tx_idle(H(h)));
	/* A short event (n pairs announced, fewer present) is read within bounds and ignored. */
	const uint8_t short_ev[] = { 0x04, HCI_EV_NUM_COMPLETED_PACKETS, 3, 2, 0x99, 0x09 };
	harness_h4_in(h, short_ev, sizeof short_ev);
	assert_int_equal(hci_get_faults(H(h))->nocp_unknown, 1);
	assert_int_equal(hci_link_count(H(h)), 1); /* the link is untouched */
	harness_free(h);
}

/* 7.4.5 / 5.4.2: an ACL packet longer than the HC_ACL_Data_Packet_Length the controller
 * announced (192 here) is dropped, however valid its content; the next proper one is taken. */
static void test_oversized_acl_dropped(void **state)
{
	(void)state;
	harness *h = harness_new(1);
	l2cap *l = bt_stack_l2cap(harness_stack(h));
	rec r = { 0 };
	assert_int_equal(l2cap_listen(l, 0x1001, 1000, srv_accept, &r), 0x1001);
	bt_addr p = addr("00:BB:11:00:00:11");
	uint16_t handle = harness_link_up(h, &p);
	uint16_t cid = harness_open_channel(h, handle, 0x1001, 0x0040, 800);
	assert_int_not_equal(cid, 0);
	assert_int_equal(r.opened, 1);
	/* One ACL packet of 4 + 296 octets: a whole L2CAP PDU of 296 on the channel. */
	uint8_t pkt[5 + 300] = { 0x02 };
	put_le16(pkt + 1, (uint16_t)(handle | 0x2 << 12));
	put_le16(pkt + 3, 300);
	put_le16(pkt + 5, 296);
	put_le16(pkt + 7, cid);
	harness_h4_in(h, pkt, sizeof pkt);
	assert_int_equal(r.sdus, 0);
	assert_int_equal(hci_get_faults(H(h))->acl_oversize, 1);
	/* A PDU in 192-octet fragments still arrives. */
	uint8_t data[296] = { 0 };
	harness_l2cap_in(h, handle, cid, data, sizeof data);
	assert_int_equal(r.sdus, 1);
	assert_int_equal(r.closed, 0);
	harness_free(h);
}

/* Secure Connections (Vol 4 Part E 7.3.92) is switched on when the controller lists the
 * command (supported commands octet 32 bit 3, as the harness controller does), and reported. */
/* hci_link_pairing_failure: the responder of a failed pairing hears no Authentication
 * Complete, so the reason GAP hinted when it answered (here: the PIN it gave) stays on the link
 * until a key comes (Link_Key_Notification, 7.7.24); a failed Simple Pairing Complete (7.7.45)
 * is a failure reported by the peer; an encrypted link has none to tell. */
static void test_pairing_failure_recorded(void **state)
{
	(void)state;
	harness *h = harness_new(1);
	bt_addr p = addr("00:BB:0E:00:00:1E");
	uint16_t handle = harness_link_up(h, &p);
	assert_int_equal(hci_link_pairing_failure(H(h), handle), 0);
	hci_sec_hint(H(h), &p, HCI_SEC_WRONG_PIN);
	assert_int_equal(hci_link_pairing_failure(H(h), handle), HCI_SEC_WRONG_PIN);
	uint8_t key[3 + 23] = { 0x04, HCI_EV_LINK_KEY_NOTIFICATION, 23 };
	memcpy(key + 3, p.b, 6);
	harness_h4_in(h, key, sizeof key);
	assert_int_equal(hci_link_pairing_failure(H(h), handle), 0);
	uint8_t spc[3 + 7] = { 0x04, HCI_EV_SIMPLE_PAIRING_COMPLETE, 7, 0x05 };
	memcpy(spc + 4, p.b, 6);
	harness_h4_in(h, spc, sizeof spc);
	assert_int_equal(hci_link_pairing_failure(H(h), handle), HCI_SEC_PEER_AUTH_FAILURE);
	uint8_t enc[3 + 4] = { 0x04, HCI_EV_ENCRYPT_CHANGE, 4, 0x00, (uint8_t)handle, (uint8_t)(handle >> 8), 0x01 };
	harness_h4_in(h, enc, sizeof enc);
	harness_advance(h, 10);
	assert_true(hci_link_encrypted(H(h), handle));
	assert_int_equal(hci_link_pairing_failure(H(h), handle), 0);
	assert_int_equal(hci_link_pairing_failure(H(h), 0x0eee), 0);
	harness_free(h);
}

static void test_secure_connections_enabled(void **state)
{
	(void)state;
	harness *h = harness_new(1);
	assert_true(hci_get_info(bt_stack_hci(harness_stack(h)))->secure_connections);
	harness_free(h);
}

/* hci_packet: a whole packet whose header (5.4.4 event, 5.4.2 ACL) disagrees with the length
 * it came with is dropped and counted, never read past its end or short of it; SCO, ISO and
 * empty input are ignored; a proper packet after them is taken. */
static void test_packet_header_checked(void **state)
{
	(void)state;
	harness *h = harness_new(1);
	bt_stack *s = harness_stack(h);
	l2cap *l = bt_stack_l2cap(s);
	rec r = { 0 };
	assert_int_equal(l2cap_listen(l, 0x1001, 1000, srv_accept, &r), 0x1001);
	bt_addr p = addr("00:BB:12:00:00:12");
	uint16_t handle = harness_link_up(h, &p);
	uint16_t cid = harness_open_channel(h, handle, 0x1001, 0x0040, 800);
	assert_int_not_equal(cid, 0);
	/* A Hardware Error event (7.7.16) that says 1 parameter octet but comes with 2, or 0. */
	const uint8_t hw_long[] = { 0x04, HCI_EV_HARDWARE_ERROR, 1, 0x5a, 0x00 };
	const uint8_t hw_short[] = { 0x04, HCI_EV_HARDWARE_ERROR, 1 };
	const uint8_t hw_no_len[] = { 0x04, HCI_EV_HARDWARE_ERROR };
	bt_stack_packet(s, hw_long, sizeof hw_long, 2000);
	bt_stack_packet(s, hw_short, sizeof hw_short, 2000);
	bt_stack_packet(s, hw_no_len, sizeof hw_no_len, 2000);
	assert_int_equal(hci_get_faults(H(h))->malformed, 3);
	assert_int_equal(harness_fatal(h), 0); /* none of them was taken for an event */
	/* ACL: a whole 1-octet SDU on the channel, announced one octet too long, then too short. */
	uint8_t acl[5 + 5] = { 0x02 };
	put_le16(acl + 1, (uint16_t)(handle | 0x2 << 12));
	put_le16(acl + 3, 6);
	put_le16(acl + 5, 1);
	put_le16(acl + 7, cid);
	bt_stack_packet(s, acl, sizeof acl, 2000);
	put_le16(acl + 3, 4);
	bt_stack_packet(s, acl, sizeof acl, 2000);
	bt_stack_packet(s, acl, 4, 2000); /* not even a header */
	assert_int_equal(hci_get_faults(H(h))->malformed, 6);
	assert_int_equal(r.sdus, 0);
	/* SCO, ISO and nothing at all: ignored, not counted. */
	const uint8_t sco[] = { 0x03, 0x01, 0x00, 0x01, 0x00 };
	const uint8_t iso[] = { 0x05, 0x01, 0x00, 0x00, 0x00 };
	bt_stack_packet(s, sco, sizeof sco, 2000);
	bt_stack_packet(s, iso, sizeof iso, 2000);
	bt_stack_packet(s, acl, 0, 2000);
	assert_int_equal(hci_get_faults(H(h))->malformed, 6);
	/* The proper packet is taken. */
	put_le16(acl + 3, 5);
	bt_stack_packet(s, acl, sizeof acl, 2000);
	assert_int_equal(r.sdus, 1);
	harness_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pairing_failure_recorded),
		cmocka_unit_test(test_secure_connections_enabled),
		cmocka_unit_test(test_refused_page_charged_to_its_own_link),
		cmocka_unit_test(test_accept_survives_full_queue),
		cmocka_unit_test(test_crossed_page_refused),
		cmocka_unit_test(test_disconnect_survives_full_queue),
		cmocka_unit_test(test_page_cancel_survives_full_queue),
		cmocka_unit_test(test_pairing_reply_survives_full_queue),
		cmocka_unit_test(test_link_control_overflow_is_reported),
		cmocka_unit_test(test_hardware_error_is_fatal),
		cmocka_unit_test(test_unanswered_command_is_fatal),
		cmocka_unit_test(test_nocp_unknown_handle_ignored),
		cmocka_unit_test(test_oversized_acl_dropped),
		cmocka_unit_test(test_packet_header_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
