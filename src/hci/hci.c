/* hci.c - the Host Controller Interface (Core spec Vol 4 Part E) over H4 (Vol 4 Part A).
 *
 * Four jobs, each in its own section below:
 *  1. Packet input: each whole packet from the transport (H4 framing is the transport's) is
 *     checked against its own header and handed to the event or ACL handler.
 *  2. Commands: one outstanding at a time, sent as Num_HCI_Command_Packets allows, each with
 *     a timeout; the initialisation sequence is a table of commands run in order.
 *  3. Links: Create_Connection / Connection_Request / Disconnection_Complete, plus a stall timer
 *     that declares a link lost when the controller stops completing its packets (btvirt drops
 *     a vanished peer's link without any event).
 *  4. ACL data: flow control against the controller's buffers (Vol 4 Part E 4.1.1),
 *     fragmentation of pulled L2CAP PDUs and reassembly of received ones (Vol 4 Part E 5.4.2). */
#include "hci/hci.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "hci/hci_defs.h"

#define CMD_QUEUE_LEN 32 /* ordinary commands queued at most */
#define MAX_LINKS 32
/* Link control commands that must not be lost to a queue full of ordinary ones (Disconnect,
 * Accept/Reject_Connection_Request, Create_Connection_Cancel) have slots of their own beyond
 * CMD_QUEUE_LEN: one per link plus a few for connection requests. */
#define CMD_URGENT_LEN (MAX_LINKS + 8)
#define CMD_RING (CMD_QUEUE_LEN + CMD_URGENT_LEN)

typedef struct {
	uint16_t opcode;
	uint8_t len;
	uint8_t params[255];
	hci_cmd_cb cb;
	void *ctx;
} hci_cmd_entry;

typedef enum { LINK_FREE, LINK_PAGING, LINK_UP } link_state;
/* Link security (hci_secure_link): none asked, Authentication_Requested sent, then
 * Set_Connection_Encryption sent. */
typedef enum { SEC_NONE, SEC_AUTH, SEC_ENCRYPT } link_sec;
/* The peer's host features (Read_Remote_Extended_Features page 1): asking, known. */
/* FEAT_UNASKED: a link the peer opened; its features are read when a channel of ours needs
 * them (hci_link_peer_ssp), not at Connection Complete. */
enum { FEAT_PENDING, FEAT_NO, FEAT_YES, FEAT_UNASKED };
#define FEAT_TIMEOUT_MS 2000
#define CROSSED_PAGE_MS 2000 /* a peer's page this soon after our link to it came up crossed ours */

typedef struct {
	link_state state;
	uint16_t handle;
	bt_addr peer;
	bool initiator;
	uint16_t in_flight; /* ACL packets sent and not yet completed */
	bt_timer timer;     /* LINK_PAGING: connect timeout; LINK_UP: tx stall */
	uint8_t *rx;        /* reassembly buffer, HCI_MAX_PDU bytes */
	size_t rx_len, rx_expect;
	bool rx_skip; /* dropping an oversized PDU until the next start fragment */
	uint64_t crossed_until; /* the peer paged us while our page to it was under way: until
				 * then, a second Connection Complete is the other page's */
	uint64_t up_at;     /* when the link came up (Connection Complete) */
	bool encrypted;     /* the latest Encryption Change said on */
	link_sec sec;       /* hci_secure_link() progress */
	bool paired;        /* Simple Pairing Complete (success) while sec == SEC_AUTH */
	bool key_check;     /* encryption on, Read_Encryption_Key_Size under way */
	bool auth_retried;  /* Authentication_Requested resent after Key Missing */
	uint8_t sec_hint;   /* GAP's hci_sec_reason for a failure to come (hci_sec_hint) */
	bool want_mitm;     /* the securing asks an authenticated key */
	bool pairing;       /* a pairing (either side's) is under way: the link must not idle out */
	uint64_t pairing_since; /* ...since then (it counts for security_timeout_ms at most) */
	int16_t key_type;   /* link key type in use, -1 unknown */
	uint8_t peer_ssp;   /* FEAT_* */
	bt_timer feat_timer;
	bt_timer sec_timer;
	hci *owner;
} hci_link;

struct hci {
	hci_config cfg;
	hci_io io;
	hci_upper up;
	bt_timers *timers;
	hci_info info;
	bool ready;
	bool dead;
	char err[160];

	/* commands (section 2) */
	hci_cmd_entry cmdq[CMD_RING];
	unsigned cmd_head, cmd_count;
	bool cmd_busy; /* cmdq[cmd_head] sent, waiting for its answer */
	uint8_t cmd_credits;
	bt_timer cmd_timer;
	int init_step;
	hci_faults faults;

	/* links (section 3) */
	hci_link links[MAX_LINKS];

	/* ACL transmit (section 4) */
	uint16_t acl_free;
	uint8_t *tx_pdu;
	size_t tx_len, tx_off;
	uint16_t tx_handle;
	uint8_t *tx_frag; /* H4 header + one fragment */
	bool in_pump;     /* acl_pump is on the stack: a nested kick is absorbed by its loop */
};

static void cmd_pump(hci *h);
static void acl_pump(hci *h);
static void acl_pump_loop(hci *h);
static void init_next(hci *h);

static void set_err(hci *h, const char *fmt, const char *a, const char *b)
{
	snprintf(h->err, sizeof h->err, fmt, a, b);
}

/* ------------------------------------------------------------------ status codes */

/* Controller error codes, Core spec Vol 1 Part F 1.3. */
static const struct {
	uint8_t code;
	int err;
	const char *text;
} status_table[] = {
	{ 0x00, 0, "success" },
	{ 0x01, EOPNOTSUPP, "unknown HCI command" },
	{ 0x02, ENOTCONN, "unknown connection identifier" },
	{ 0x03, EIO, "hardware failure" },
	{ 0x04, EHOSTDOWN, "page timeout: no device answered at that address" },
	{ 0x05, EACCES, "authentication failure" },
	{ 0x06, EACCES, "PIN or key missing" },
	{ 0x07, ENOMEM, "memory capacity exceeded in the controller" },
	{ 0x08, ETIMEDOUT, "connection timeout (link supervision)" },
	{ 0x09, EMLINK, "connection limit exceeded" },
	{ 0x0A, EMLINK, "synchronous connection limit exceeded" },
	{ 0x0B, EALREADY, "connection already exists" },
	{ 0x0C, EBUSY, "command disallowed" },
	{ 0x0D, ECONNREFUSED, "connection rejected: limited resources" },
	{ 0x0E, ECONNREFUSED, "connection rejected: security reasons" },
	{ 0x0F, ECONNREFUSED, "connection rejected: unacceptable BD_ADDR" },
	{ 0x10, ETIMEDOUT, "connection accept timeout exceeded" },
	{ 0x11, EOPNOTSUPP, "unsupported feature or parameter value" },
	{ 0x12, EINVAL, "invalid HCI command parameters" },
	{ 0x13, ECONNRESET, "remote user terminated connection" },
	{ 0x14, ECONNRESET, "remote device terminated connection: low resources" },
	{ 0x15, ECONNRESET, "remote device terminated connection: power off" },
	{ 0x16, ECONNABORTED, "connection terminated by local host" },
	{ 0x17, EBUSY, "repeated attempts" },
	{ 0x18, EACCES, "pairing not allowed" },
	{ 0x1A, EOPNOTSUPP, "unsupported remote feature" },
	{ 0x1F, EIO, "unspecified error" },
	{ 0x22, ETIMEDOUT, "LMP response timeout" },
	{ 0x28, EIO, "instant passed" },
	{ 0x29, EACCES, "pairing with unit key not supported" },
	{ 0x3E, ECONNREFUSED, "connection failed to be established" },
};

int hci_status_to_errno(uint8_t status)
{
	for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
		if (status_table[i].code == status)
			return -status_table[i].err;
	return -EIO;
}

const char *hci_status_str(uint8_t status)
{
	for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
		if (status_table[i].code == status)
			return status_table[i].text;
	return "controller error";
}

/* ------------------------------------------------------------------ life cycle */

static void cmd_timeout(bt_timer *t, void *ctx);

hci *hci_new(const hci_config *cfg, const hci_io *io, const hci_upper *upper, bt_timers *timers)
{
	hci *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->cfg = *cfg;
	if (!h->cfg.cmd_timeout_ms)
		h->cfg.cmd_timeout_ms = 3000;
	if (!h->cfg.connect_timeout_ms)
		h->cfg.connect_timeout_ms = 10000;
	if (!h->cfg.tx_stall_ms)
		h->cfg.tx_stall_ms = 4000;
	if (!h->cfg.local_name)
		h->cfg.local_name = "btsock";
	if (!h->cfg.security_timeout_ms)
		h->cfg.security_timeout_ms = 30000;
	if (h->cfg.min_key_size < 7 || h->cfg.min_key_size > 16)
		h->cfg.min_key_size = 7;
	h->io = *io;
	h->up = *upper;
	h->timers = timers;
	h->tx_pdu = malloc(HCI_MAX_PDU);
	if (!h->tx_pdu) {
		hci_free(h);
		return NULL;
	}
	h->cmd_credits = 1;
	h->init_step = -1;
	bt_timer_init(&h->cmd_timer, cmd_timeout, h);
	return h;
}

void hci_free(hci *h)
{
	if (!h)
		return;
	bt_timer_stop(h->timers, &h->cmd_timer);
	for (int i = 0; i < MAX_LINKS; i++) {
		bt_timer_stop(h->timers, &h->links[i].timer);
		free(h->links[i].rx);
	}
	free(h->tx_pdu);
	free(h->tx_frag);
	free(h);
}

const hci_info *hci_get_info(const hci *h) { return &h->info; }
bool hci_is_ready(const hci *h) { return h->ready; }
const char *hci_error(const hci *h) { return h->err; }
const hci_faults *hci_get_faults(const hci *h) { return &h->faults; }

static void link_gone(hci *h, hci_link *l, int err);
static void link_release(hci *h, hci_link *l);

/* Every link and page ends with the controller: upper layers learn it through their normal
 * callbacks (link_down / connect_failed with -ENETDOWN), so no channel waits for a timer. */
static void links_all_gone(hci *h)
{
	for (int i = 0; i < MAX_LINKS; i++) {
		hci_link *l = &h->links[i];
		if (l->state == LINK_UP) {
			link_gone(h, l, -ENETDOWN);
		} else if (l->state == LINK_PAGING) {
			bt_addr peer = l->peer;
			link_release(h, l);
			if (h->up.connect_failed)
				h->up.connect_failed(h->up.ctx, &peer, -ENETDOWN);
		}
	}
}

/* The controller is unusable (no answer, hardware error): tell the stack once, then end every
 * link. Its error message stays the first fault's (no later timer overwrites it). */
static void go_dead(hci *h, int err)
{
	if (h->dead)
		return;
	h->dead = true;
	bt_timer_stop(h->timers, &h->cmd_timer);
	bool was_ready = h->ready;
	h->ready = false;
	if (!was_ready && h->up.ready)
		h->up.ready(h->up.ctx, err);
	else if (h->up.fatal)
		h->up.fatal(h->up.ctx, err);
	links_all_gone(h);
}

/* ------------------------------------------------------------------ 2. commands */

/* Queues a command if fewer than `limit` are queued (CMD_QUEUE_LEN for ordinary commands,
 * CMD_RING for urgent link control). */
static int cmd_queue(hci *h, unsigned limit, uint16_t opcode, const void *params, uint8_t len,
		     hci_cmd_cb cb, void *ctx)
{
	if (h->dead)
		return -ENETDOWN;
	if (h->cmd_count >= limit)
		return -ENOBUFS;
	hci_cmd_entry *c = &h->cmdq[(h->cmd_head + h->cmd_count) % CMD_RING];
	c->opcode = opcode;
	c->len = len;
	if (len)
		memcpy(c->params, params, len);
	c->cb = cb;
	c->ctx = ctx;
	h->cmd_count++;
	cmd_pump(h);
	return 0;
}

int hci_cmd(hci *h, uint16_t opcode, const void *params, uint8_t len, hci_cmd_cb cb, void *ctx)
{
	return cmd_queue(h, CMD_QUEUE_LEN, opcode, params, len, cb, ctx);
}

/* Link control that must reach the controller: it uses the reserved slots, and if even those
 * are full (a controller that stopped answering: cmd_timeout is near) the loss is counted and
 * named in hci_error(), never silent. */
int hci_cmd_urgent(hci *h, uint16_t opcode, const bt_writer *w)
{
	int err = w->err ? -EMSGSIZE
			 : cmd_queue(h, CMD_RING, opcode, w->p, (uint8_t)bt_writer_len(w), NULL, NULL);
	if (err == -ENOBUFS) {
		char op[16];
		snprintf(op, sizeof op, "0x%04x", opcode);
		h->faults.cmd_dropped++;
		set_err(h, "HCI command queue full: link control command %s not sent%s", op, "");
	}
	return err;
}

int hci_cmd_w(hci *h, uint16_t opcode, const bt_writer *w, hci_cmd_cb cb, void *ctx)
{
	size_t len = bt_writer_len(w);
	if (w->err || len > 255) /* Vol 4 Part E 5.4.1: Parameter_Total_Length is one octet */
		return -EMSGSIZE;
	return hci_cmd(h, opcode, w->p, (uint8_t)len, cb, ctx);
}

/* A command whose only parameter is a BD_ADDR (6 octets): Create_Connection_Cancel (7.1.7),
 * Remote_Name_Request_Cancel (7.1.20), the negative replies of pairing (7.1.11, 7.1.13, ...). */
int hci_cmd_addr(hci *h, uint16_t opcode, const bt_addr *a, hci_cmd_cb cb, void *ctx)
{
	uint8_t p[6];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_bytes(&w, a->b, 6);
	return hci_cmd_w(h, opcode, &w, cb, ctx);
}

int hci_cmd_addr_urgent(hci *h, uint16_t opcode, const bt_addr *a)
{
	uint8_t p[6];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_bytes(&w, a->b, 6);
	return hci_cmd_urgent(h, opcode, &w);
}

/* Sends the head of the queue if the controller can take a command (Vol 4 Part E 4.4). */
static void cmd_pump(hci *h)
{
	if (h->cmd_busy || !h->cmd_count || !h->cmd_credits || h->dead)
		return;
	hci_cmd_entry *c = &h->cmdq[h->cmd_head];
	uint8_t pkt[4 + 255];
	bt_writer w = bt_writer_init(pkt, sizeof pkt);
	bt_write_u8(&w, H4_CMD); /* Vol 4 Part E 5.4.1: opcode, parameter length, parameters */
	bt_write_le16(&w, c->opcode);
	bt_write_u8(&w, c->len);
	bt_write_bytes(&w, c->params, c->len);
	h->cmd_busy = true;
	h->cmd_credits--;
	bt_timer_start(h->timers, &h->cmd_timer, h->cfg.cmd_timeout_ms);
	h->io.send(h->io.ctx, pkt, bt_writer_len(&w));
}

/* Pops the outstanding command and calls its callback. */
static void cmd_done(hci *h, uint16_t opcode, uint8_t status, const uint8_t *ret, size_t len)
{
	if (!h->cmd_busy || h->cmdq[h->cmd_head].opcode != opcode)
		return; /* unsolicited or stale: only the credits matter */
	hci_cmd_entry c = h->cmdq[h->cmd_head];
	h->cmd_head = (h->cmd_head + 1) % CMD_RING;
	h->cmd_count--;
	h->cmd_busy = false;
	bt_timer_stop(h->timers, &h->cmd_timer);
	if (c.cb)
		c.cb(c.ctx, status, ret, len);
}

static void cmd_timeout(bt_timer *t, void *ctx)
{
	hci *h = ctx;
	(void)t;
	if (h->dead)
		return;
	char op[16];
	snprintf(op, sizeof op, "0x%04x", h->cmdq[h->cmd_head].opcode);
	set_err(h, "the controller did not answer HCI command %s%s", op,
		h->ready ? "" : " during initialisation (is it a Bluetooth controller speaking H4?)");
	/* Queued commands are abandoned without callbacks: the whole stack is told instead. */
	go_dead(h, -ETIMEDOUT);
}

/* Command Complete, Vol 4 Part E 7.7.14: num packets, opcode, return parameters. */
static void ev_cmd_complete(hci *h, bt_reader *r)
{
	uint8_t credits = bt_read_u8(r);
	uint16_t opcode = bt_read_le16(r);
	if (r->err)
		return;
	h->cmd_credits = credits;
	size_t n = bt_reader_left(r);
	const uint8_t *ret = bt_read_bytes(r, n);
	if (opcode != 0) {
		/* Most commands return a status first; a few (none we send) do not. */
		uint8_t status = n ? ret[0] : 0;
		cmd_done(h, opcode, status, n ? ret + 1 : NULL, n ? n - 1 : 0);
	}
	cmd_pump(h);
}

/* Command Status, Vol 4 Part E 7.7.15: status, num packets, opcode. */
static void ev_cmd_status(hci *h, bt_reader *r)
{
	uint8_t status = bt_read_u8(r);
	uint8_t credits = bt_read_u8(r);
	uint16_t opcode = bt_read_le16(r);
	if (r->err)
		return;
	h->cmd_credits = credits;
	if (opcode != 0)
		cmd_done(h, opcode, status, NULL, 0);
	cmd_pump(h);
}

/* ------------------------------------------------------------------ initialisation */

/* Each step builds its parameters and handles its return parameters. `optional` steps may
 * fail (a controller without SSP or EIR still works). */
typedef struct {
	uint16_t opcode;
	const char *name;
	bool optional;
	void (*params)(hci *h, bt_writer *w);
	void (*result)(hci *h, const uint8_t *ret, size_t len);
	bool (*skip)(const hci *h); /* the controller cannot: not sent */
} init_step;

static void res_version(hci *h, const uint8_t *r, size_t n)
{
	if (n < 8) /* Vol 4 Part E 7.4.1 */
		return;
	h->info.hci_version = r[0];
	h->info.hci_revision = get_le16(r + 1);
	h->info.lmp_version = r[3];
	h->info.manufacturer = get_le16(r + 4);
	h->info.lmp_subversion = get_le16(r + 6);
}
static void res_commands(hci *h, const uint8_t *r, size_t n)
{
	memcpy(h->info.commands, r, n < 64 ? n : 64); /* Vol 4 Part E 7.4.2 */
}
static void res_features(hci *h, const uint8_t *r, size_t n)
{
	memcpy(h->info.features, r, n < 8 ? n : 8); /* Vol 4 Part E 7.4.3 */
}
static void res_buffer_size(hci *h, const uint8_t *r, size_t n)
{
	if (n < 7) /* Vol 4 Part E 7.4.5: ACL len le16, SCO len, ACL num le16, SCO num le16 */
		return;
	h->info.acl_mtu = get_le16(r);
	h->info.acl_pkts = get_le16(r + 3);
}
static void res_bdaddr(hci *h, const uint8_t *r, size_t n)
{
	if (n >= 6) /* Vol 4 Part E 7.4.6 */
		memcpy(h->info.addr.b, r, 6);
}
static void par_event_mask(hci *h, bt_writer *w)
{
	/* Vol 4 Part E 7.3.1: every BR/EDR event; LE Meta (bit 61) off. 8 octets. */
	static const uint8_t mask[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f };
	bt_write_bytes(w, mask, sizeof mask);
}
static void par_one(hci *h, bt_writer *w)
{
	bt_write_u8(w, 0x01); /* Vol 4 Part E 7.3.59 Simple_Pairing_Mode: enabled */
}
static void par_inquiry_mode(hci *h, bt_writer *w)
{
	bt_write_u8(w, 0x02); /* Vol 4 Part E 7.3.50: results with RSSI or extended inquiry results */
}
static void par_local_name(hci *h, bt_writer *w)
{
	/* Vol 4 Part E 7.3.11: 248 octets, NUL padded UTF-8 (at most 247 kept: NUL terminated). */
	size_t n = strnlen(h->cfg.local_name, 247);
	bt_write_bytes(w, h->cfg.local_name, n);
	bt_write_zeros(w, 248 - n);
}
static void par_class(hci *h, bt_writer *w)
{
	bt_write_u8(w, (uint8_t)h->cfg.class_of_device); /* Vol 4 Part E 7.3.26: 3 octets */
	bt_write_le16(w, (uint16_t)(h->cfg.class_of_device >> 8));
}
static void par_page_timeout(hci *h, bt_writer *w)
{
	bt_write_le16(w, 0x2000); /* Vol 4 Part E 7.3.16: 0x2000 slots = 5.12 s */
}
static void par_scan(hci *h, bt_writer *w)
{
	bt_write_u8(w, 0x03); /* Vol 4 Part E 7.3.18: inquiry scan + page scan */
}

static void par_one_sc(hci *h, bt_writer *w)
{
	bt_write_u8(w, 0x01); /* Vol 4 Part E 7.3.92 Secure_Connections_Host_Support: enabled */
}
static void res_sc(hci *h, const uint8_t *r, size_t n)
{
	h->info.secure_connections = true;
}
/* Supported commands octet 32 bit 3: Write Secure Connections Host Support (6.27). */
static bool no_sc_command(const hci *h)
{
	return !(h->info.commands[32] & 0x08);
}

static const init_step init_steps[] = {
	{ HCI_OP_RESET, "HCI_Reset", false, NULL, NULL, NULL },
	{ HCI_OP_READ_LOCAL_VERSION, "Read_Local_Version_Information", false, NULL, res_version, NULL },
	{ HCI_OP_READ_LOCAL_COMMANDS, "Read_Local_Supported_Commands", true, NULL, res_commands, NULL },
	{ HCI_OP_READ_LOCAL_FEATURES, "Read_Local_Supported_Features", true, NULL, res_features, NULL },
	{ HCI_OP_READ_BUFFER_SIZE, "Read_Buffer_Size", false, NULL, res_buffer_size, NULL },
	{ HCI_OP_READ_BD_ADDR, "Read_BD_ADDR", false, NULL, res_bdaddr, NULL },
	{ HCI_OP_SET_EVENT_MASK, "Set_Event_Mask", true, par_event_mask, NULL, NULL },
	{ HCI_OP_WRITE_SIMPLE_PAIRING_MODE, "Write_Simple_Pairing_Mode", true, par_one, NULL, NULL },
	{ HCI_OP_WRITE_SC_HOST_SUPPORT, "Write_Secure_Connections_Host_Support", true, par_one_sc, res_sc,
	  no_sc_command },
	{ HCI_OP_WRITE_INQUIRY_MODE, "Write_Inquiry_Mode", true, par_inquiry_mode, NULL, NULL },
	{ HCI_OP_WRITE_LOCAL_NAME, "Write_Local_Name", true, par_local_name, NULL, NULL },
	{ HCI_OP_WRITE_CLASS_OF_DEVICE, "Write_Class_Of_Device", true, par_class, NULL, NULL },
	{ HCI_OP_WRITE_PAGE_TIMEOUT, "Write_Page_Timeout", true, par_page_timeout, NULL, NULL },
	{ HCI_OP_WRITE_SCAN_ENABLE, "Write_Scan_Enable", true, par_scan, NULL, NULL },
};
#define INIT_STEPS ((int)(sizeof init_steps / sizeof init_steps[0]))

static bool init_finish(hci *h)
{
	if (h->info.acl_mtu == 0 || h->info.acl_pkts == 0) {
		set_err(h, "the controller reports no ACL buffers (%s%s)", "Read_Buffer_Size", "");
		return false;
	}
	h->tx_frag = malloc(5u + h->info.acl_mtu);
	if (!h->tx_frag) {
		set_err(h, "out of memory%s%s", "", "");
		return false;
	}
	h->acl_free = h->info.acl_pkts;
	return true;
}

static void init_done_cb(void *ctx, uint8_t status, const uint8_t *ret, size_t len)
{
	hci *h = ctx;
	const init_step *s = &init_steps[h->init_step];
	if (status != 0 && !s->optional) {
		snprintf(h->err, sizeof h->err, "controller initialisation failed: %s: %s", s->name,
			 hci_status_str(status));
		go_dead(h, hci_status_to_errno(status));
		return;
	}
	if (status == 0 && s->result)
		s->result(h, ret, len);
	init_next(h);
}

static void init_next(hci *h)
{
	if (h->dead)
		return;
	h->init_step++;
	if (h->init_step == INIT_STEPS) {
		if (!init_finish(h)) {
			go_dead(h, -EIO);
			return;
		}
		h->ready = true;
		if (h->up.ready)
			h->up.ready(h->up.ctx, 0);
		return;
	}
	const init_step *s = &init_steps[h->init_step];
	if (s->skip && s->skip(h)) {
		init_next(h);
		return;
	}
	uint8_t p[255];
	bt_writer w = bt_writer_init(p, sizeof p);
	if (s->params)
		s->params(h, &w);
	hci_cmd_w(h, s->opcode, &w, init_done_cb, h);
}

void hci_start(hci *h)
{
	h->init_step = -1;
	init_next(h);
}

/* ------------------------------------------------------------------ 3. links */

static hci_link *link_by_handle(hci *h, uint16_t handle)
{
	for (int i = 0; i < MAX_LINKS; i++)
		if (h->links[i].state == LINK_UP && h->links[i].handle == handle)
			return &h->links[i];
	return NULL;
}

static hci_link *link_by_addr(hci *h, const bt_addr *a)
{
	for (int i = 0; i < MAX_LINKS; i++)
		if (h->links[i].state != LINK_FREE && bt_addr_eq(&h->links[i].peer, a))
			return &h->links[i];
	return NULL;
}

static void link_timer(bt_timer *t, void *ctx);
static void sec_timer_fired(bt_timer *t, void *ctx);
static void feat_timer_fired(bt_timer *t, void *ctx);
static void feat_ask(hci *h, hci_link *l);

static hci_link *link_alloc(hci *h, const bt_addr *peer)
{
	for (int i = 0; i < MAX_LINKS; i++) {
		hci_link *l = &h->links[i];
		if (l->state != LINK_FREE)
			continue;
		if (!l->rx && !(l->rx = malloc(HCI_MAX_PDU)))
			return NULL;
		l->peer = *peer;
		l->handle = 0xffff;
		l->in_flight = 0;
		l->rx_len = l->rx_expect = 0;
		l->rx_skip = false;
		l->crossed_until = 0;
		l->encrypted = false;
		l->sec = SEC_NONE;
		l->key_check = false;
		l->auth_retried = false;
		l->sec_hint = HCI_SEC_OK;
		l->want_mitm = false;
		l->pairing = false;
		l->key_type = -1;
		l->peer_ssp = FEAT_NO;
		l->owner = h;
		bt_timer_init(&l->feat_timer, feat_timer_fired, l);
		bt_timer_init(&l->timer, link_timer, l);
		bt_timer_init(&l->sec_timer, sec_timer_fired, l);
		return l;
	}
	return NULL;
}

static void link_release(hci *h, hci_link *l)
{
	bt_timer_stop(h->timers, &l->timer);
	bt_timer_stop(h->timers, &l->sec_timer);
	bt_timer_stop(h->timers, &l->feat_timer);
	l->sec = SEC_NONE;
	/* Packets in flight on a link that is gone are flushed by the controller and count as
	 * completed (Vol 4 Part E 7.7.5: "all data ... flushed"). */
	h->acl_free = (uint16_t)(h->acl_free + l->in_flight);
	if (h->acl_free > h->info.acl_pkts)
		h->acl_free = h->info.acl_pkts;
	l->in_flight = 0;
	if (h->tx_len && h->tx_handle == l->handle)
		h->tx_len = h->tx_off = 0; /* drop the rest of a PDU for this link */
	l->state = LINK_FREE;
}

/* Tears a link down locally and tells the upper layers. */
static void link_gone(hci *h, hci_link *l, int err)
{
	uint16_t handle = l->handle;
	bt_addr peer = l->peer;
	link_release(h, l);
	if (h->up.link_down)
		h->up.link_down(h->up.ctx, handle, &peer, err);
	acl_pump(h);
}

static void link_timer(bt_timer *t, void *ctx)
{
	hci_link *l = ctx;
	hci *h = l->owner;
	(void)t;
	if (l->state == LINK_PAGING) {
		/* No Connection_Complete in time: cancel the page (Vol 4 Part E 7.1.7). */
		bt_addr peer = l->peer;
		hci_cmd_addr_urgent(h, HCI_OP_CREATE_CONN_CANCEL, &peer);
		link_release(h, l);
		if (h->up.connect_failed)
			h->up.connect_failed(h->up.ctx, &peer, -ETIMEDOUT);
		return;
	}
	/* The controller kept our packets without completing them: the link is gone (a real
	 * controller would have reported a supervision timeout). */
	hci_link_lost(h, l->handle, -ETIMEDOUT);
}

/* HCI_Disconnect, Vol 4 Part E 7.1.6: Connection_Handle, Reason. */
static int send_disconnect(hci *h, uint16_t handle, uint8_t reason)
{
	uint8_t p[3];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, handle);
	bt_write_u8(&w, reason);
	return hci_cmd_urgent(h, HCI_OP_DISCONNECT, &w);
}

void hci_link_lost(hci *h, uint16_t handle, int err)
{
	hci_link *l = link_by_handle(h, handle);
	if (!l)
		return;
	send_disconnect(h, handle, HCI_ERR_REMOTE_USER_TERMINATED);
	link_gone(h, l, err);
}

int hci_connect(hci *h, const bt_addr *peer)
{
	if (!h->ready)
		return -ENETDOWN;
	hci_link *l = link_by_addr(h, peer);
	if (l)
		return l->state == LINK_UP ? 1 : 0;
	if (bt_addr_eq(peer, &h->info.addr))
		return -EINVAL;
	l = link_alloc(h, peer);
	if (!l)
		return -EMLINK;
	/* Create_Connection, Vol 4 Part E 7.1.5: BD_ADDR, packet types (DM1..DH5), page scan
	 * repetition mode R2, reserved, clock offset 0, role switch allowed. */
	uint8_t p[13];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_bytes(&w, peer->b, 6);
	bt_write_le16(&w, 0xcc18);
	bt_write_u8(&w, 0x02);
	bt_write_u8(&w, 0x00);
	bt_write_le16(&w, 0x0000);
	bt_write_u8(&w, 0x01);
	int err = hci_cmd_w(h, HCI_OP_CREATE_CONN, &w, NULL, NULL);
	if (err < 0) {
		link_release(h, l);
		return err;
	}
	l->state = LINK_PAGING;
	l->initiator = true;
	bt_timer_start(h->timers, &l->timer, h->cfg.connect_timeout_ms);
	return 0;
}

int hci_link_handle(const hci *h, const bt_addr *peer)
{
	for (int i = 0; i < MAX_LINKS; i++)
		if (h->links[i].state == LINK_UP && bt_addr_eq(&h->links[i].peer, peer))
			return h->links[i].handle;
	return -ENOTCONN;
}

bool hci_link_encrypted(hci *h, uint16_t handle)
{
	const hci_link *l = link_by_handle(h, handle);
	return l && l->encrypted;
}

int hci_disconnect(hci *h, uint16_t handle, uint8_t reason)
{
	if (!link_by_handle(h, handle))
		return -ENOTCONN;
	return send_disconnect(h, handle, reason);
}

/* ------------------------------------------------------------------ link security */

const char *hci_sec_reason_str(int reason)
{
	switch (reason) {
	case HCI_SEC_OK: return "secured";
	case HCI_SEC_REJECTED: return "pairing rejected by the user";
	case HCI_SEC_WRONG_PIN: return "wrong PIN";
	case HCI_SEC_NO_KEY: return "no link key and pairing not allowed";
	case HCI_SEC_ENCRYPTION_REFUSED: return "encryption refused";
	case HCI_SEC_KEY_TOO_SHORT: return "encryption key too short";
	case HCI_SEC_PEER_AUTH_FAILURE: return "authentication failure reported by the peer";
	case HCI_SEC_TIMEOUT: return "pairing timed out";
	case HCI_SEC_WEAK_KEY: return "link key too weak for the security level";
	case HCI_SEC_WRONG_PASSKEY: return "wrong passkey (the one typed was not the one shown)";
	case HCI_SEC_NO_PIN: return "the peer asked for a PIN and none was given (btsock_set_pin, --pin, or an agent)";
	default: return "security failure";
	}
}

void hci_sec_hint(hci *h, const bt_addr *peer, int reason)
{
	hci_link *l = link_by_addr(h, peer);
	if (l && l->state == LINK_UP)
		l->sec_hint = (uint8_t)reason;
}

int hci_link_pairing_failure(hci *h, uint16_t handle)
{
	const hci_link *l = link_by_handle(h, handle);
	if (!l || l->encrypted)
		return 0;
	return l->sec_hint;
}

int hci_set_min_key_size(hci *h, uint8_t octets)
{
	if (octets < 7 || octets > 16)
		return -EINVAL;
	h->cfg.min_key_size = octets;
	return 0;
}

static void sec_done(hci *h, hci_link *l, int err, int reason)
{
	if (l->sec == SEC_NONE)
		return;
	l->sec = SEC_NONE;
	l->auth_retried = false;
	l->want_mitm = false;
	bt_timer_stop(h->timers, &l->sec_timer);
	if (h->up.link_secured)
		h->up.link_secured(h->up.ctx, l->handle, err, err ? reason : HCI_SEC_OK);
}

static void sec_encrypt(hci *h, hci_link *l);

static void sec_timer_fired(bt_timer *t, void *ctx)
{
	hci_link *l = ctx;
	(void)t;
	if (l->sec == SEC_AUTH && l->paired) {
		sec_encrypt(l->owner, l); /* paired, but no Authentication Complete came */
		return;
	}
	sec_done(l->owner, l, -ETIMEDOUT, HCI_SEC_TIMEOUT);
}

/* Authentication_Requested / Set_Connection_Encryption refused by Command Status. */
static void sec_cmd_status(void *ctx, uint8_t status, const uint8_t *ret, size_t len)
{
	hci_link *l = ctx;
	(void)ret;
	(void)len;
	if (status != 0 && l->state == LINK_UP)
		sec_done(l->owner, l, -EACCES,
			 l->sec == SEC_ENCRYPT ? HCI_SEC_ENCRYPTION_REFUSED : HCI_SEC_PEER_AUTH_FAILURE);
}

static int sec_auth_request(hci *h, hci_link *l)
{
	uint8_t p[2];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, l->handle); /* Vol 4 Part E 7.1.15: Connection_Handle */
	int err = hci_cmd_w(h, HCI_OP_AUTH_REQUESTED, &w, sec_cmd_status, l);
	if (err < 0)
		return err;
	l->sec = SEC_AUTH;
	l->paired = false;
	l->sec_hint = HCI_SEC_OK;
	bt_timer_start(h->timers, &l->sec_timer, h->cfg.security_timeout_ms);
	return 0;
}

int hci_secure_link(hci *h, uint16_t handle)
{
	return hci_secure_link_mitm(h, handle, false);
}

int hci_secure_link_mitm(hci *h, uint16_t handle, bool mitm)
{
	hci_link *l = link_by_handle(h, handle);
	if (!l)
		return -ENOTCONN;
	bool authenticated = l->key_type == 5 || l->key_type == 8; /* Vol 4 Part E 7.7.24 */
	if (l->encrypted && (!mitm || authenticated))
		return 1;
	if (mitm)
		l->want_mitm = true;
	if (l->sec != SEC_NONE)
		return 0;
	if (l->encrypted) /* an upgrade: authenticate again, MITM asked; encryption stays on */
		return sec_auth_request(h, l);
	if (l->key_check) { /* encrypted by the peer; its key size is being read */
		l->sec = SEC_ENCRYPT;
		bt_timer_start(h->timers, &l->sec_timer, h->cfg.security_timeout_ms);
		return 0;
	}
	return sec_auth_request(h, l);
}

/* The failure an Authentication Complete status means (Vol 1 Part F error codes), unless GAP
 * knows better (its agent refused, or the PIN it gave was wrong). */
static int auth_reason(const hci_link *l, uint8_t status)
{
	if (status == HCI_ERR_KEY_MISSING || status == HCI_ERR_PAIRING_NOT_ALLOWED)
		return HCI_SEC_NO_KEY;
	if (l->sec_hint != HCI_SEC_OK)
		return l->sec_hint;
	return HCI_SEC_PEER_AUTH_FAILURE;
}

/* Authentication Complete, Vol 4 Part E 7.7.6: status, handle. Then encryption on (7.1.16).
 * PIN or Key Missing (0x06): the key we offered is stale (the peer lost its bond); it is
 * forgotten and authentication asked once more, which pairs afresh. */
static void ev_auth_complete(hci *h, bt_reader *r)
{
	uint8_t status = bt_read_u8(r);
	uint16_t handle = bt_read_le16(r) & 0x0fff;
	hci_link *l = r->err ? NULL : link_by_handle(h, handle);
	if (!l)
		return;
	l->pairing = false;
	if (status == HCI_ERR_KEY_MISSING && h->up.key_missing)
		h->up.key_missing(h->up.ctx, &l->peer);
	if (l->sec != SEC_AUTH)
		return; /* the peer authenticated us: nothing of ours waits */
	if (status == HCI_ERR_KEY_MISSING && !l->auth_retried) {
		bt_timer_stop(h->timers, &l->sec_timer);
		if (sec_auth_request(h, l) == 0) {
			l->auth_retried = true;
			return;
		}
	}
	if (status != 0) {
		sec_done(h, l, -EACCES, auth_reason(l, status));
		return;
	}
	if (l->encrypted) { /* an upgrade of an encrypted link: nothing more to switch on */
		sec_done(h, l, 0, HCI_SEC_OK);
		return;
	}
	sec_encrypt(h, l);
}

static void sec_encrypt(hci *h, hci_link *l)
{
	uint8_t p[3]; /* Vol 4 Part E 7.1.16: Connection_Handle, Encryption_Enable */
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, l->handle);
	bt_write_u8(&w, 0x01); /* on */
	if (hci_cmd_w(h, HCI_OP_SET_CONN_ENCRYPT, &w, sec_cmd_status, l) < 0) {
		sec_done(h, l, -ENOBUFS, HCI_SEC_ENCRYPTION_REFUSED);
		return;
	}
	l->sec = SEC_ENCRYPT;
	bt_timer_start(h->timers, &l->sec_timer, h->cfg.security_timeout_ms);
}

/* Simple Pairing Complete, Vol 4 Part E 7.7.45: status, BD_ADDR. Authentication Complete
 * should follow at once (7.7.6); BlueZ's btvirt sometimes sends it to the other side instead
 * (it keeps who initiated per device, never reset), so a link we are securing moves on to
 * encryption if it has not come within SEC_AUTH_GRACE_MS. */
#define SEC_AUTH_GRACE_MS 1000

static void ev_ssp_complete(hci *h, bt_reader *r)
{
	uint8_t status = bt_read_u8(r);
	const uint8_t *a = bt_read_bytes(r, 6);
	if (r->err || status != 0)
		return;
	bt_addr peer;
	memcpy(peer.b, a, 6);
	hci_link *l = link_by_addr(h, &peer);
	if (!l || l->state != LINK_UP || l->sec != SEC_AUTH)
		return;
	l->paired = true;
	bt_timer_start(h->timers, &l->sec_timer, SEC_AUTH_GRACE_MS);
}

/* The link's encryption is settled: on (key size accepted) or not. */
static void sec_encryption_settled(hci *h, hci_link *l, bool on)
{
	l->encrypted = on;
	if (l->sec == SEC_ENCRYPT || (l->sec == SEC_AUTH && on))
		sec_done(h, l, on ? 0 : -EACCES, HCI_SEC_ENCRYPTION_REFUSED);
}

/* Read_Encryption_Key_Size's return (Vol 4 Part E 7.5.7): Connection_Handle, Key_Size. A key
 * below the minimum (KNOB, CVE-2019-9506) ends the link with Authentication Failure before any
 * channel may use it; an unreadable size counts as too short. */
static void key_size_done(void *ctx, uint8_t status, const uint8_t *ret, size_t len)
{
	hci_link *l = ctx;
	hci *h = l->owner;
	if (l->state != LINK_UP || !l->key_check)
		return;
	if (status == 0 && len >= 3 && (get_le16(ret) & 0x0fff) != l->handle)
		return; /* not this link's answer (the link was replaced meanwhile) */
	l->key_check = false;
	uint8_t size = status == 0 && len >= 3 ? ret[2] : 0;
	if (size >= h->cfg.min_key_size) {
		sec_encryption_settled(h, l, true);
		return;
	}
	sec_done(h, l, -EACCES, HCI_SEC_KEY_TOO_SHORT);
	send_disconnect(h, l->handle, HCI_ERR_AUTH_FAILURE);
}

static bool can_read_key_size(const hci *h)
{
	return (h->info.commands[20] & 0x10) != 0; /* Vol 4 Part E 6.27: octet 20 bit 4 */
}

/* Encryption Change, Vol 4 Part E 7.7.8: status, handle, Encryption_Enabled (0 off). Either
 * side may switch encryption; the link's state follows every change. Encryption on counts
 * once its key size is known to be long enough. */
static void ev_encrypt_change(hci *h, bt_reader *r)
{
	uint8_t status = bt_read_u8(r);
	uint16_t handle = bt_read_le16(r) & 0x0fff;
	uint8_t enabled = bt_read_u8(r);
	hci_link *l = r->err ? NULL : link_by_handle(h, handle);
	if (!l)
		return;
	if (status != 0) { /* the change failed: the link stays as it was */
		sec_encryption_settled(h, l, l->encrypted);
		return;
	}
	bool on = enabled != 0;
	if (!on || !can_read_key_size(h)) {
		l->key_check = false;
		sec_encryption_settled(h, l, on);
		return;
	}
	l->encrypted = false;
	l->key_check = true;
	uint8_t p[2];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, l->handle); /* 7.5.7: Connection_Handle */
	if (hci_cmd_w(h, HCI_OP_READ_ENC_KEY_SIZE, &w, key_size_done, l) < 0)
		key_size_done(l, 0xff, NULL, 0);
}

size_t hci_disconnect_all(hci *h, uint8_t reason)
{
	size_t n = 0;
	for (int i = 0; i < MAX_LINKS; i++) {
		if (h->links[i].state == LINK_UP) {
			hci_disconnect(h, h->links[i].handle, reason);
			n++;
		}
	}
	return n;
}

size_t hci_link_count(const hci *h)
{
	size_t n = 0;
	for (int i = 0; i < MAX_LINKS; i++)
		n += h->links[i].state == LINK_UP;
	return n;
}

/* A failing Create_Connection Command Status (Vol 4 Part E 7.7.15): the page never started.
 * The event names no BD_ADDR; the refused command is the one outstanding (one at a time, see
 * cmd_pump), and its parameters start with the BD_ADDR paged (7.1.5). Only that page fails. */
static void create_conn_failed(hci *h, uint8_t status)
{
	const hci_cmd_entry *c = &h->cmdq[h->cmd_head];
	if (!h->cmd_busy || c->opcode != HCI_OP_CREATE_CONN || c->len < 6)
		return; /* stale or unsolicited: no page of ours was refused */
	bt_addr peer;
	memcpy(peer.b, c->params, 6);
	hci_link *l = link_by_addr(h, &peer);
	if (!l || l->state != LINK_PAGING)
		return;
	link_release(h, l);
	if (h->up.connect_failed)
		h->up.connect_failed(h->up.ctx, &peer, hci_status_to_errno(status));
}

/* Connection Complete, Vol 4 Part E 7.7.3: status, handle, BD_ADDR, link type, encryption. */
static void ev_conn_complete(hci *h, bt_reader *r)
{
	uint8_t status = bt_read_u8(r);
	uint16_t handle = bt_read_le16(r) & 0x0fff;
	bt_addr peer;
	const uint8_t *a = bt_read_bytes(r, 6);
	uint8_t type = bt_read_u8(r);
	if (r->err || type != 0x01)
		return; /* only ACL links */
	memcpy(peer.b, a, 6);
	hci_link *l = link_by_addr(h, &peer);
	if (l && l->crossed_until && l->state == LINK_UP) {
		bool second = h->timers->now < l->crossed_until && handle != l->handle;
		l->crossed_until = 0;
		if (second) {
			/* Crossed pages: two ACL links to one peer (BlueZ btvirt completes both; a
			 * controller would refuse one with 0x0B, Connection Already Exists). Keep the
			 * first, which already carries our channels, and drop this one. */
			if (status == 0)
				send_disconnect(h, handle, HCI_ERR_REMOTE_USER_TERMINATED);
			return;
		}
	}
	if (status != 0) {
		if (l && l->state == LINK_PAGING && l->crossed_until && h->timers->now < l->crossed_until) {
			/* Our page lost the race (a controller says 0x0B, Connection Already Exists):
			 * the peer's link, accepted already, completes next and carries our channels. */
			l->crossed_until = 0;
			return;
		}
		if (l && l->state == LINK_PAGING) {
			link_release(h, l);
			if (h->up.connect_failed)
				h->up.connect_failed(h->up.ctx, &peer, hci_status_to_errno(status));
		}
		return;
	}
	/* The controller handing out a handle again, or a new link to a peer we think we are
	 * linked with, means the old link is gone though no Disconnection Complete said so (BlueZ
	 * btvirt drops a vanished client's links silently). Vol 4 Part E 7.7.3: handles are
	 * unique among live links. The old handle is not disconnected: it is the new link's. */
	hci_link *stale = link_by_handle(h, handle);
	if (stale && stale != l)
		link_gone(h, stale, -ECONNRESET);
	if (l && l->state == LINK_UP) {
		link_gone(h, l, -ECONNRESET);
		l = NULL;
	}
	if (!l) {
		l = link_alloc(h, &peer);
		if (!l) {
			send_disconnect(h, handle, HCI_ERR_REMOTE_LOW_RESOURCES);
			return;
		}
		l->initiator = false;
	}
	bt_timer_stop(h->timers, &l->timer);
	l->handle = handle;
	l->state = LINK_UP;
	l->up_at = h->timers->now;
	/* The initiator needs the peer's host features before its first channel (Vol 3 Part C
	 * 5.2.2: secure first if both support SSP). An acceptor needs them only when it opens a
	 * channel itself: the peer's channels demand no security at LOW, and a peer that pairs
	 * tells us through the pairing events. Asking anyway costs a command and its events on
	 * the path of the peer's first connect. */
	if (l->initiator)
		feat_ask(h, l);
	else
		l->peer_ssp = FEAT_UNASKED;
	if (h->up.link_up)
		h->up.link_up(h->up.ctx, handle, &peer, l->initiator);
}

/* Connection Request, Vol 4 Part E 7.7.4: accept ACL links (staying peripheral), refuse SCO. */
static void ev_conn_request(hci *h, bt_reader *r)
{
	const uint8_t *a = bt_read_bytes(r, 6);
	bt_read_bytes(r, 3); /* class of device */
	uint8_t type = bt_read_u8(r);
	if (r->err)
		return;
	/* 7.1.8 Accept / 7.1.9 Reject_Connection_Request: BD_ADDR, Role or Reason (7 octets). */
	uint8_t p[7];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_bytes(&w, a, 6);
	if (type == 0x01) {
		bt_addr peer;
		memcpy(peer.b, a, 6);
		hci_link *l = link_by_addr(h, &peer);
		if (l && l->state == LINK_UP && h->timers->now - l->up_at < CROSSED_PAGE_MS) {
			/* The peer's page crossed ours, which completed first: a second ACL link
			 * between two devices is not allowed (Vol 2 Part F 4: one ACL logical
			 * transport), and a controller would have refused it. BlueZ btvirt delivers
			 * the request: refuse it, so both ends keep the one link; the peer's stack
			 * treats its page failing so as having lost the race. (Later, a request from
			 * a linked peer means the old link died silently: accepted, it replaces it.) */
			bt_write_u8(&w, HCI_ERR_REJECTED_LIMITED_RESOURCES);
			hci_cmd_urgent(h, HCI_OP_REJECT_CONN_REQUEST, &w);
			return;
		}
		if (l && l->state == LINK_PAGING) /* both sides paging: two completions follow */
			l->crossed_until = h->timers->now + h->cfg.connect_timeout_ms;
		bt_write_u8(&w, 0x01); /* remain peripheral */
		hci_cmd_urgent(h, HCI_OP_ACCEPT_CONN_REQUEST, &w);
	} else {
		bt_write_u8(&w, HCI_ERR_REJECTED_LIMITED_RESOURCES);
		hci_cmd_urgent(h, HCI_OP_REJECT_CONN_REQUEST, &w);
	}
}

/* Disconnection Complete, Vol 4 Part E 7.7.5: status, handle, reason. */
static void ev_disconn_complete(hci *h, bt_reader *r)
{
	uint8_t status = bt_read_u8(r);
	uint16_t handle = bt_read_le16(r) & 0x0fff;
	uint8_t reason = bt_read_u8(r);
	if (r->err || status != 0)
		return;
	hci_link *l = link_by_handle(h, handle);
	if (!l)
		return;
	if (reason == HCI_ERR_KEY_MISSING && h->up.key_missing)
		h->up.key_missing(h->up.ctx, &l->peer); /* the peer dropped us over our stale key */
	link_gone(h, l, reason == HCI_ERR_LOCAL_HOST_TERMINATED ? 0 : hci_status_to_errno(reason));
}

/* ------------------------------------------------------------------ 4. ACL data */

/* Number Of Completed Packets, Vol 4 Part E 7.7.19: n, then n (handle, count) pairs. */
static void ev_num_completed(hci *h, bt_reader *r)
{
	uint8_t n = bt_read_u8(r);
	if (r->err || bt_reader_left(r) < 4u * n)
		return;
	for (int i = 0; i < n; i++) {
		uint16_t handle = bt_read_le16(r) & 0x0fff;
		uint16_t count = bt_read_le16(r);
		hci_link *l = link_by_handle(h, handle);
		if (!l) {
			/* Released already (its credits were returned then) or never ours: nothing
			 * to credit, and no other link's buffers may be (7.7.19 counts per handle). */
			h->faults.nocp_unknown++;
			continue;
		}
		if (count > l->in_flight)
			count = l->in_flight; /* never trust more than we sent */
		l->in_flight = (uint16_t)(l->in_flight - count);
		h->acl_free = (uint16_t)(h->acl_free + count);
		if (h->acl_free > h->info.acl_pkts)
			h->acl_free = h->info.acl_pkts; /* never above the controller's buffer count */
		if (l->in_flight)
			bt_timer_start(h->timers, &l->timer, h->cfg.tx_stall_ms);
		else
			bt_timer_stop(h->timers, &l->timer);
	}
	acl_pump(h);
}

void hci_kick(hci *h) { acl_pump(h); }

/* Sends fragments while the controller has free buffers (Vol 4 Part E 4.1.1), pulling the next
 * L2CAP PDU from the upper layer when the previous one is fully sent. */
static void acl_pump(hci *h)
{
	if (!h->ready || h->in_pump)
		return;
	h->in_pump = true;
	acl_pump_loop(h);
	h->in_pump = false;
}

static void acl_pump_loop(hci *h)
{
	while (h->acl_free > 0) {
		if (h->tx_off == h->tx_len) {
			h->tx_len = h->tx_off = 0;
			if (!h->up.pull)
				return;
			size_t n = h->up.pull(h->up.ctx, &h->tx_handle, h->tx_pdu, HCI_MAX_PDU);
			if (n == 0)
				return;
			h->tx_len = n;
		}
		hci_link *l = link_by_handle(h, h->tx_handle);
		if (!l) {
			h->tx_len = h->tx_off = 0;
			continue;
		}
		size_t n = h->tx_len - h->tx_off;
		if (n > h->info.acl_mtu)
			n = h->info.acl_mtu;
		/* ACL header, Vol 4 Part E 5.4.2: handle (12 bits), PB flag (0b10 first
		 * automatically-flushable, 0b01 continuing fragment), BC flag 0, length. */
		uint16_t pb = h->tx_off == 0 ? 0x2 : 0x1;
		h->tx_frag[0] = H4_ACL;
		put_le16(h->tx_frag + 1, (uint16_t)(h->tx_handle | pb << 12));
		put_le16(h->tx_frag + 3, (uint16_t)n);
		memcpy(h->tx_frag + 5, h->tx_pdu + h->tx_off, n);
		h->tx_off += n;
		h->acl_free--;
		if (l->in_flight++ == 0)
			bt_timer_start(h->timers, &l->timer, h->cfg.tx_stall_ms);
		h->io.send(h->io.ctx, h->tx_frag, 5 + n);
	}
}

/* One received ACL packet: reassemble by the PB flag (Vol 4 Part E 5.4.2; Vol 3 Part A 7.2). */
static void acl_input(hci *h, const uint8_t *p, size_t len)
{
	uint16_t hf = get_le16(p);
	uint16_t handle = hf & 0x0fff;
	uint8_t pb = (hf >> 12) & 0x3;
	const uint8_t *data = p + 4;
	size_t n = len - 4;
	if (n > h->info.acl_mtu) {
		/* Longer than the HC_ACL_Data_Packet_Length the controller announced (Vol 4 Part E
		 * 7.4.5, 5.4.2): a broken controller. Dropped alone, unread: a PDU being reassembled
		 * goes on with the next proper fragment (its length check still guards it). */
		h->faults.acl_oversize++;
		return;
	}
	hci_link *l = link_by_handle(h, handle);
	if (!l)
		return;
	if (pb == 0x2 || pb == 0x0) { /* start of a PDU */
		l->rx_len = l->rx_expect = 0; /* a PDU still half built is abandoned */
		l->rx_skip = false;
		if (n < 2) { /* need the basic L2CAP header's length field */
			l->rx_skip = true;
			return;
		}
		size_t expect = 4u + get_le16(data);
		if (expect > HCI_MAX_PDU) {
			l->rx_skip = true; /* larger than any MTU we offered: drop it */
			return;
		}
		l->rx_expect = expect;
	} else if (pb != 0x1 || l->rx_skip || l->rx_expect == 0) {
		return; /* a continuation without a start */
	}
	if (l->rx_len + n > l->rx_expect) {
		l->rx_skip = true; /* more bytes than the L2CAP header announced */
		l->rx_expect = 0;
		return;
	}
	memcpy(l->rx + l->rx_len, data, n);
	l->rx_len += n;
	if (l->rx_len == l->rx_expect) {
		size_t total = l->rx_len;
		l->rx_len = l->rx_expect = 0;
		if (h->up.acl)
			h->up.acl(h->up.ctx, handle, l->rx, total);
	}
}


/* ------------------------------------------------------------------ peer features, key type */

int hci_link_peer_ssp(hci *h, uint16_t handle)
{
	hci_link *l = link_by_handle(h, handle);
	if (!l)
		return -ENOTCONN;
	if (l->peer_ssp == FEAT_UNASKED)
		feat_ask(h, l);
	if (l->peer_ssp == FEAT_PENDING)
		return -EAGAIN;
	return l->peer_ssp == FEAT_YES;
}

int hci_link_key_type(hci *h, uint16_t handle)
{
	const hci_link *l = link_by_handle(h, handle);
	return l ? l->key_type : -1;
}

void hci_note_key_type(hci *h, const bt_addr *peer, uint8_t type)
{
	hci_link *l = link_by_addr(h, peer);
	if (l && l->state == LINK_UP)
		l->key_type = type;
}

/* Pairing events name the peer first (BD_ADDR, Vol 4 Part E 7.7.22-24, 7.7.40-45, 7.7.48):
 * from the first request to its outcome the link is busy pairing, whoever started it, so that
 * a user taking time to compare a number does not see the link idle out under the dialog. */
static void note_pairing(hci *h, uint8_t code, const uint8_t *p, size_t len)
{
	bool start;
	uint8_t status = 0;
	switch (code) {
	case HCI_EV_PIN_CODE_REQUEST:
	case HCI_EV_IO_CAPABILITY_REQUEST:
	case HCI_EV_IO_CAPABILITY_RESPONSE:
	case HCI_EV_USER_CONFIRM_REQUEST:
	case 0x34: /* User Passkey Request, 7.7.43 */
	case 0x3b: /* User Passkey Notification, 7.7.48 */
		start = true;
		break;
	case HCI_EV_LINK_KEY_NOTIFICATION:
		start = false;
		break;
	case HCI_EV_SIMPLE_PAIRING_COMPLETE: /* status, BD_ADDR */
		if (len < 7)
			return;
		status = *p++;
		len--;
		start = false;
		break;
	default:
		return;
	}
	if (len < 6)
		return;
	bt_addr a;
	memcpy(a.b, p, 6);
	hci_link *l = link_by_addr(h, &a);
	if (l && l->state == LINK_UP) {
		if (start && !l->pairing)
			l->pairing_since = h->timers->now;
		l->pairing = start;
		if (code == HCI_EV_LINK_KEY_NOTIFICATION) /* the pairing made a key: no failure to tell */
			l->sec_hint = HCI_SEC_OK;
		else if (code == HCI_EV_SIMPLE_PAIRING_COMPLETE && status != 0 && l->sec_hint == HCI_SEC_OK)
			l->sec_hint = HCI_SEC_PEER_AUTH_FAILURE;
	}
}

bool hci_link_securing(hci *h, uint16_t handle)
{
	hci_link *l = link_by_handle(h, handle);
	if (!l)
		return false;
	bool pairing = l->pairing && h->timers->now - l->pairing_since < h->cfg.security_timeout_ms;
	return l->sec != SEC_NONE || l->key_check || pairing;
}

bool hci_link_wants_mitm(hci *h, const bt_addr *peer)
{
	const hci_link *l = link_by_addr(h, peer);
	return l && l->state == LINK_UP && l->want_mitm;
}

static void feat_known(hci *h, hci_link *l, bool ssp)
{
	bool was_pending = l->peer_ssp == FEAT_PENDING;
	l->peer_ssp = ssp ? FEAT_YES : FEAT_NO;
	bt_timer_stop(h->timers, &l->feat_timer);
	if (was_pending && h->up.link_features)
		h->up.link_features(h->up.ctx, l->handle);
}

static void feat_timer_fired(bt_timer *t, void *ctx)
{
	hci_link *l = ctx;
	(void)t;
	if (l->state == LINK_UP && l->peer_ssp == FEAT_PENDING)
		feat_known(l->owner, l, false);
}

static void feat_cmd_status(void *ctx, uint8_t status, const uint8_t *ret, size_t len)
{
	hci_link *l = ctx;
	(void)ret;
	(void)len;
	if (status != 0 && l->state == LINK_UP && l->peer_ssp == FEAT_PENDING)
		feat_known(l->owner, l, false);
}

/* A new link: ask the peer's host features, page 1 (Vol 4 Part E 7.1.22), if our controller
 * can (LMP features page 0 bit 63, "Extended features", Vol 2 Part C 3.3). */
static void feat_ask(hci *h, hci_link *l)
{
	l->peer_ssp = FEAT_NO;
	/* LMP features page 0: bit 51 Secure Simple Pairing (octet 6 bit 3), bit 63. */
	if (!(h->info.features[6] & 0x08) || !(h->info.features[7] & 0x80))
		return;
	uint8_t p[3];
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, l->handle); /* 7.1.22: Connection_Handle, Page_Number */
	bt_write_u8(&w, 0x01);
	if (hci_cmd_w(h, HCI_OP_READ_REMOTE_EXT_FEATURES, &w, feat_cmd_status, l) < 0)
		return;
	l->peer_ssp = FEAT_PENDING;
	bt_timer_start(h->timers, &l->feat_timer, FEAT_TIMEOUT_MS);
}

/* Read Remote Extended Features Complete (7.7.34): status, handle, page, max page, 8 octets.
 * Page 1 bit 0: Secure Simple Pairing (Host Support). */
static void ev_remote_ext_features(hci *h, bt_reader *r)
{
	uint8_t status = bt_read_u8(r);
	uint16_t handle = bt_read_le16(r) & 0x0fff;
	uint8_t page = bt_read_u8(r);
	bt_read_u8(r); /* maximum page */
	const uint8_t *f = bt_read_bytes(r, 8);
	hci_link *l = r->err ? NULL : link_by_handle(h, handle);
	if (!l || l->peer_ssp != FEAT_PENDING)
		return;
	feat_known(h, l, status == 0 && page == 1 && (f[0] & 0x01));
}

/* Remote Host Supported Features Notification (7.7.50): BD_ADDR, page 1 features. */
static void ev_remote_host_features(hci *h, bt_reader *r)
{
	const uint8_t *a = bt_read_bytes(r, 6);
	const uint8_t *f = bt_read_bytes(r, 8);
	if (r->err)
		return;
	bt_addr peer;
	memcpy(peer.b, a, 6);
	hci_link *l = link_by_addr(h, &peer);
	if (l && l->state == LINK_UP)
		feat_known(h, l, f[0] & 0x01);
}

/* Link_Key_Notification (7.7.24): BD_ADDR, Link_Key, Key_Type; the key now in use. */
static void ev_link_key_notification(hci *h, bt_reader *r)
{
	const uint8_t *a = bt_read_bytes(r, 6);
	bt_read_bytes(r, 16);
	uint8_t type = bt_read_u8(r);
	if (r->err)
		return;
	bt_addr peer;
	memcpy(peer.b, a, 6);
	hci_note_key_type(h, &peer, type);
}

/* ------------------------------------------------------------------ events */

static void event_input(hci *h, const uint8_t *p, size_t len)
{
	uint8_t code = p[0];
	bt_reader r = bt_reader_init(p + 2, len - 2);
	note_pairing(h, code, p + 2, len - 2);
	switch (code) {
	case HCI_EV_CMD_COMPLETE:
		ev_cmd_complete(h, &r);
		break;
	case HCI_EV_CMD_STATUS: {
		/* Create_Connection failing at the status stage: the page never starts. */
		if (len >= 6 && p[2] != 0 && get_le16(p + 4) == HCI_OP_CREATE_CONN)
			create_conn_failed(h, p[2]);
		ev_cmd_status(h, &r);
		break;
	}
	case HCI_EV_NUM_COMPLETED_PACKETS:
		ev_num_completed(h, &r);
		break;
	case HCI_EV_CONN_COMPLETE:
		ev_conn_complete(h, &r);
		break;
	case HCI_EV_CONN_REQUEST:
		ev_conn_request(h, &r);
		break;
	case HCI_EV_DISCONN_COMPLETE:
		ev_disconn_complete(h, &r);
		break;
	case HCI_EV_AUTH_COMPLETE:
		ev_auth_complete(h, &r);
		if (h->up.event) /* GAP may care too (pairing outcome) */
			h->up.event(h->up.ctx, code, p + 2, len - 2);
		break;
	case HCI_EV_ENCRYPT_CHANGE:
		ev_encrypt_change(h, &r);
		break;
	case HCI_EV_REMOTE_EXT_FEATURES_COMPLETE:
		ev_remote_ext_features(h, &r);
		break;
	case HCI_EV_REMOTE_HOST_FEATURES_NOTIFY:
		ev_remote_host_features(h, &r);
		break;
	case HCI_EV_LINK_KEY_NOTIFICATION:
		ev_link_key_notification(h, &r);
		if (h->up.event)
			h->up.event(h->up.ctx, code, p + 2, len - 2);
		break;
	case HCI_EV_SIMPLE_PAIRING_COMPLETE:
		ev_ssp_complete(h, &r);
		if (h->up.event)
			h->up.event(h->up.ctx, code, p + 2, len - 2);
		break;
	case HCI_EV_HARDWARE_ERROR: {
		/* Vol 4 Part E 7.7.16: the controller failed (Hardware_Code is vendor specific);
		 * what it holds is lost and only an HCI_Reset could revive it, with every link gone.
		 * btsock declares the stack dead instead: sockets fail now, a new adapter may be
		 * opened. */
		char hw[8];
		snprintf(hw, sizeof hw, "0x%02x", len > 2 ? p[2] : 0);
		h->faults.hw_errors++;
		set_err(h, "the controller reported a hardware error (Hardware_Code %s, Vol 4 Part E 7.7.16)%s",
			hw, "");
		go_dead(h, -EIO);
		break;
	}
	default:
		if (h->up.event)
			h->up.event(h->up.ctx, code, p + 2, len - 2);
		break;
	}
}

/* ------------------------------------------------------------------ 1. packet input */

/* Whether the header of a packet (after its indicator) agrees with the packet's length:
 * event, Vol 4 Part E 5.4.4 (code 1, Parameter_Total_Length 1); ACL, 5.4.2 (handle and
 * flags 2, Data_Total_Length 2). */
static bool header_fits(uint8_t ind, const uint8_t *p, size_t len)
{
	if (ind == H4_EVT)
		return len >= 2 && len == 2u + p[1];
	if (ind == H4_ACL)
		return len >= 4 && len == 4u + get_le16(p + 2);
	return false;
}

void hci_packet(hci *h, const uint8_t *pkt, size_t len)
{
	if (len == 0)
		return;
	if (h->io.trace_in)
		h->io.trace_in(h->io.ctx, pkt, len);
	uint8_t ind = pkt[0];
	if (ind != H4_EVT && ind != H4_ACL)
		return; /* SCO and ISO data are not used; a controller sends nothing else */
	if (!header_fits(ind, pkt + 1, len - 1)) {
		h->faults.malformed++;
		return;
	}
	if (ind == H4_EVT)
		event_input(h, pkt + 1, len - 1);
	else
		acl_input(h, pkt + 1, len - 1);
}

bool hci_tx_idle(const hci *h)
{
	if (h->tx_len != h->tx_off)
		return false;
	for (int i = 0; i < MAX_LINKS; i++)
		if (h->links[i].state == LINK_UP && h->links[i].in_flight)
			return false;
	return true;
}

bool hci_rx_partial(const hci *h) { return hci_rx_missing(h) > 0; }

size_t hci_rx_missing(const hci *h)
{
	size_t most = 0;
	for (int i = 0; i < MAX_LINKS; i++) {
		const hci_link *l = &h->links[i];
		if (l->state == LINK_UP && l->rx_expect > l->rx_len && l->rx_expect - l->rx_len > most)
			most = l->rx_expect - l->rx_len;
	}
	return most;
}
