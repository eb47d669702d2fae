/* gap.c - device discovery, remote names, local settings and pairing replies for one stack
 * (Core spec Vol 3 Part C; HCI commands and events of Vol 4 Part E 7.1, 7.3, 7.7).
 *
 * Inquiry: IDLE -> STARTING (HCI_Inquiry sent) -> RUNNING (Command Status 0) -> IDLE (Inquiry
 * Complete, cancel, failure or the safety timer); inq_end() is the one place it ends.
 * Remote names: a queue; the head is on the controller while name_busy. A request that timed
 * out or was cancelled stays at the head without a callback until its Remote Name Request
 * Complete (or a grace period) so that the controller is never asked for two at once.
 * Pairing: stored keys and Just Works are answered at once; a request that needs the user
 * (Numeric Comparison, Passkey Entry, a PIN) goes to the agent and waits in `pend` for its
 * answer, or its timer, which answers negatively. */
#include "gap/gap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "hci/hci_defs.h"

/* Commands hci_defs.h does not name (Vol 4 Part E 7.1.33, 7.1.35). */
#define GAP_OP_USER_PASSKEY_NEG_REPLY HCI_OPCODE(0x01, 0x002f)
#define GAP_OP_REMOTE_OOB_NEG_REPLY HCI_OPCODE(0x01, 0x0033)
/* Events hci_defs.h does not name (Vol 4 Part E 7.7.44, 7.7.45). */
#define GAP_EV_USER_PASSKEY_REQUEST 0x34
#define GAP_EV_REMOTE_OOB_REQUEST 0x35
/* Vol 4 Part E 7.1.12, 7.1.32, 7.7.48. */
#define GAP_OP_PIN_CODE_REPLY HCI_OPCODE(0x01, 0x000d)
#define GAP_OP_USER_PASSKEY_REPLY HCI_OPCODE(0x01, 0x002e)
#define GAP_EV_USER_PASSKEY_NOTIFICATION 0x3b
#define GAP_AGENT_PENDING 4
#define GAP_PINS 8
#define GAP_AGENT_TIMEOUT_MS 25000 /* within HCI's 30 s security timeout */

#define GAP_CACHE_SIZE 256
#define GAP_MAX_NAME_REQS 32
#define GAP_PEER_IO 8
#define GAP_NAME_GRACE_MS 2000
#define GAP_INQ_SLACK_MS 5000 /* beyond length * 1.28 s before we stop waiting */

typedef enum { INQ_IDLE, INQ_STARTING, INQ_RUNNING } inq_state;

/* What the latest inquiry told about a device (for name requests and de-duplication). */
typedef struct {
	bt_addr addr;
	uint8_t pscan_rep_mode;
	uint16_t clock_offset;
	uint32_t inq_id; /* the inquiry that last reported it */
} cache_entry;

struct gap_name_req {
	bt_addr peer;
	uint32_t timeout_ms;
	gap_name_cb cb; /* NULL once timed out or cancelled while on the controller */
	void *ctx;
	gap_name_req *next;
};

typedef struct {
	bool used;
	bt_addr addr;
	uint8_t key[16];
	uint8_t type;
} key_entry;

typedef struct {
	bool used;
	bt_addr addr;
	uint8_t io;   /* the peer's IO_Capability */
	uint8_t auth; /* the peer's Authentication_Requirements */
} peer_io;

/* A request waiting for the agent's answer. */
typedef enum { PEND_NONE, PEND_CONFIRM, PEND_PASSKEY, PEND_PIN } pend_kind;
typedef struct {
	pend_kind kind;
	bt_addr peer;
	bt_timer timer;
	gap *g;
} agent_pend;

typedef struct {
	bool used;
	bt_addr addr;
	uint8_t len;
	uint8_t pin[16];
} fixed_pin;

/* A gap_pair() under way: paging (handle unknown), then securing the link. */
#define GAP_PAIRS 4
typedef struct {
	bool used;
	bt_addr peer;
	bool linked;      /* the link is up: handle is valid */
	uint16_t handle;
	gap_pair_cb done;
	void *ctx;
} pair_op;

struct gap {
	hci *h;
	bt_timers *timers;

	inq_state inq;
	const gap_inquiry_ops *inq_ops;
	void *inq_ctx;
	uint32_t inq_id;
	bt_timer inq_timer;
	cache_entry cache[GAP_CACHE_SIZE];
	size_t n_cache;
	size_t cache_next; /* the slot to overwrite next once full */

	gap_name_req *names; /* queue; the head is on the controller while name_busy */
	size_t n_names;
	bool name_busy;
	bt_timer name_timer;

	key_entry keys[GAP_MAX_KEYS];
	unsigned key_next;
	peer_io io[GAP_PEER_IO];
	unsigned io_next;
	bool bondable;
	gap_key_hook key_hook;
	void *key_ctx;

	const gap_agent *agent; /* NULL: the default agent (Just Works only) */
	void *agent_ctx;
	uint32_t agent_timeout_ms;
	uint8_t io_cap;         /* GAP_IO_* we announce */
	bool mitm;              /* we require MITM protection */
	agent_pend pend[GAP_AGENT_PENDING];
	fixed_pin pins[GAP_PINS];
	pair_op pairs[GAP_PAIRS];
};

static void name_pump(gap *g);
static pair_op *pair_find(gap *g, const bt_addr *a);
static bool pair_asks_mitm(gap *g, const bt_addr *a);

/* ------------------------------------------------------------------ device cache */

static cache_entry *cache_find(gap *g, const bt_addr *a)
{
	for (size_t i = 0; i < g->n_cache; i++)
		if (bt_addr_eq(&g->cache[i].addr, a))
			return &g->cache[i];
	return NULL;
}

static cache_entry *cache_slot(gap *g, const bt_addr *a)
{
	cache_entry *e = cache_find(g, a);
	if (e)
		return e;
	if (g->n_cache < GAP_CACHE_SIZE) {
		e = &g->cache[g->n_cache++];
	} else {
		e = &g->cache[g->cache_next];
		g->cache_next = (g->cache_next + 1) % GAP_CACHE_SIZE;
	}
	memset(e, 0, sizeof *e);
	e->addr = *a;
	return e;
}

/* ------------------------------------------------------------------ inquiry */

/* The one place an inquiry ends. */
static void inq_end(gap *g, int err)
{
	if (g->inq == INQ_IDLE)
		return;
	g->inq = INQ_IDLE;
	bt_timer_stop(g->timers, &g->inq_timer);
	const gap_inquiry_ops *ops = g->inq_ops;
	g->inq_ops = NULL;
	if (ops && ops->done)
		ops->done(g->inq_ctx, err);
}

static void inq_status(void *ctx, uint8_t status, const uint8_t *ret, size_t len)
{
	gap *g = ctx;
	if (g->inq != INQ_STARTING)
		return;
	if (status)
		inq_end(g, hci_status_to_errno(status));
	else
		g->inq = INQ_RUNNING;
}

static void inq_timeout(bt_timer *t, void *ctx)
{
	gap *g = ctx;
	bt_writer none = bt_writer_init(NULL, 0);
	hci_cmd_urgent(g->h, HCI_OP_INQUIRY_CANCEL, &none);
	inq_end(g, -ETIMEDOUT);
}

int gap_inquiry_start(gap *g, uint8_t length, uint8_t max_responses, const gap_inquiry_ops *ops, void *ctx)
{
	if (g->inq != INQ_IDLE)
		return -EBUSY;
	if (length < 1 || length > 0x30)
		return -EINVAL;
	uint8_t p[5]; /* Vol 4 Part E 7.1.1: LAP (3), Inquiry_Length, Num_Responses */
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, (uint16_t)GAP_LAP_GIAC);
	bt_write_u8(&w, (uint8_t)(GAP_LAP_GIAC >> 16));
	bt_write_u8(&w, length);
	bt_write_u8(&w, max_responses);
	g->inq = INQ_STARTING;
	g->inq_ops = ops;
	g->inq_ctx = ctx;
	g->inq_id++;
	int err = hci_cmd_w(g->h, HCI_OP_INQUIRY, &w, inq_status, g);
	if (err < 0) {
		g->inq = INQ_IDLE;
		g->inq_ops = NULL;
		return err;
	}
	bt_timer_start(g->timers, &g->inq_timer, (uint32_t)length * 1280u + GAP_INQ_SLACK_MS);
	return 0;
}

int gap_inquiry_cancel(gap *g)
{
	if (g->inq == INQ_IDLE)
		return -EALREADY;
	bt_writer none = bt_writer_init(NULL, 0);
	hci_cmd_urgent(g->h, HCI_OP_INQUIRY_CANCEL, &none); /* Vol 4 Part E 7.1.2 */
	inq_end(g, -ECANCELED);
	return 0;
}

bool gap_inquiry_active(const gap *g) { return g->inq != INQ_IDLE; }

/* One response: remembered, and reported unless this inquiry reported it already. */
static void inq_report(gap *g, const gap_device *d)
{
	cache_entry *e = cache_slot(g, &d->addr);
	e->pscan_rep_mode = d->pscan_rep_mode;
	e->clock_offset = d->clock_offset;
	if (g->inq == INQ_IDLE || e->inq_id == g->inq_id)
		return;
	e->inq_id = g->inq_id;
	if (g->inq_ops && g->inq_ops->device)
		g->inq_ops->device(g->inq_ctx, d);
}

static uint32_t read_cod(bt_reader *r)
{
	const uint8_t *c = bt_read_bytes(r, 3);
	return c ? (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 : 0;
}

/* Inquiry Result (Vol 4 Part E 7.7.2) and Inquiry Result with RSSI (7.7.33). The spec draws
 * the parameters as arrays; controllers (and Linux, and btvirt) send one record per response
 * after Num_Responses, which is what is read here (the same thing when Num_Responses is 1).
 * Record: BD_ADDR, Page_Scan_Repetition_Mode, reserved (2 bytes, or 1 with RSSI), Class of
 * Device, Clock_Offset[, RSSI]. Some controllers put 3 reserved bytes before the RSSI one. */
static void ev_inquiry_result(gap *g, const uint8_t *p, size_t len, bool with_rssi)
{
	bt_reader r = bt_reader_init(p, len);
	uint8_t num = bt_read_u8(&r);
	if (r.err || num == 0)
		return;
	size_t rec = bt_reader_left(&r) / num;
	size_t reserved = with_rssi ? (rec == 15 ? 2 : 1) : 2;
	if (rec < 6 + 1 + reserved + 3 + 2 + (with_rssi ? 1 : 0))
		return;
	for (unsigned i = 0; i < num; i++) {
		gap_device d;
		memset(&d, 0, sizeof d);
		const uint8_t *a = bt_read_bytes(&r, 6);
		d.pscan_rep_mode = bt_read_u8(&r);
		bt_read_bytes(&r, reserved);
		d.cod = read_cod(&r);
		d.clock_offset = bt_read_le16(&r) & 0x7fff;
		if (with_rssi) {
			d.has_rssi = true;
			d.rssi = (int8_t)bt_read_u8(&r);
		}
		if (r.err || !a)
			return;
		memcpy(d.addr.b, a, 6);
		inq_report(g, &d);
	}
}

/* Extended Inquiry Result (Vol 4 Part E 7.7.38): one response with RSSI and 240 bytes of EIR. */
static void ev_ext_inquiry_result(gap *g, const uint8_t *p, size_t len)
{
	bt_reader r = bt_reader_init(p, len);
	gap_device d;
	memset(&d, 0, sizeof d);
	uint8_t num = bt_read_u8(&r);
	const uint8_t *a = bt_read_bytes(&r, 6);
	d.pscan_rep_mode = bt_read_u8(&r);
	bt_read_u8(&r); /* reserved */
	d.cod = read_cod(&r);
	d.clock_offset = bt_read_le16(&r) & 0x7fff;
	d.has_rssi = true;
	d.rssi = (int8_t)bt_read_u8(&r);
	if (r.err || num != 1 || !a)
		return;
	memcpy(d.addr.b, a, 6);
	size_t eir_len = bt_reader_left(&r);
	const uint8_t *eir = bt_read_bytes(&r, eir_len);
	if (eir && gap_eir_name(eir, eir_len, d.name, sizeof d.name, &d.name_complete) >= 0)
		d.has_name = true;
	inq_report(g, &d);
}

static void ev_inquiry_complete(gap *g, const uint8_t *p, size_t len)
{
	if (g->inq != INQ_RUNNING && g->inq != INQ_STARTING)
		return;
	uint8_t status = len >= 1 ? p[0] : 0; /* Vol 4 Part E 7.7.1 */
	inq_end(g, status ? hci_status_to_errno(status) : 0);
}

/* ------------------------------------------------------------------ remote names */

static void name_finish_head(gap *g, int err, const char *name)
{
	gap_name_req *r = g->names;
	if (!r)
		return;
	g->names = r->next;
	g->n_names--;
	g->name_busy = false;
	bt_timer_stop(g->timers, &g->name_timer);
	if (r->cb)
		r->cb(r->ctx, err, &r->peer, name);
	free(r);
	name_pump(g);
}

static void name_status(void *ctx, uint8_t status, const uint8_t *ret, size_t len)
{
	gap *g = ctx;
	if (status && g->name_busy) /* Command Status failure: no Complete event follows */
		name_finish_head(g, hci_status_to_errno(status), "");
}

static void name_timeout(bt_timer *t, void *ctx)
{
	gap *g = ctx;
	gap_name_req *r = g->names;
	if (!r || !g->name_busy)
		return;
	if (!r->cb) { /* the grace period of an abandoned request ended too */
		name_finish_head(g, -ETIMEDOUT, "");
		return;
	}
	gap_name_cb cb = r->cb;
	r->cb = NULL;
	/* Vol 4 Part E 7.1.20: cancel; its Remote Name Request Complete ends the request. */
	hci_cmd_addr_urgent(g->h, HCI_OP_REMOTE_NAME_REQUEST_CANCEL, &r->peer);
	bt_timer_start(g->timers, &g->name_timer, GAP_NAME_GRACE_MS);
	cb(r->ctx, -ETIMEDOUT, &r->peer, "");
}

static void name_pump(gap *g)
{
	gap_name_req *r = g->names;
	if (g->name_busy || !r)
		return;
	uint8_t p[10]; /* Vol 4 Part E 7.1.19: BD_ADDR, PSRM, reserved, Clock_Offset */
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_bytes(&w, r->peer.b, 6);
	const cache_entry *e = cache_find(g, &r->peer);
	bt_write_u8(&w, e ? e->pscan_rep_mode : 0x02); /* R2 unless an inquiry told otherwise */
	bt_write_u8(&w, 0);
	bt_write_le16(&w, e ? (uint16_t)(e->clock_offset | 0x8000) : 0); /* bit 15: offset valid */
	if (hci_cmd_w(g->h, HCI_OP_REMOTE_NAME_REQUEST, &w, name_status, g) < 0) {
		g->name_busy = true;
		name_finish_head(g, -ENOBUFS, "");
		return;
	}
	g->name_busy = true;
	bt_timer_start(g->timers, &g->name_timer, r->timeout_ms);
}

int gap_remote_name(gap *g, const bt_addr *peer, uint32_t timeout_ms, gap_name_cb cb, void *ctx,
		    gap_name_req **out)
{
	if (g->n_names >= GAP_MAX_NAME_REQS)
		return -ENOBUFS;
	gap_name_req *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->peer = *peer;
	r->timeout_ms = timeout_ms ? timeout_ms : 10000;
	r->cb = cb;
	r->ctx = ctx;
	gap_name_req **pp = &g->names;
	while (*pp)
		pp = &(*pp)->next;
	*pp = r;
	g->n_names++;
	if (out)
		*out = r;
	name_pump(g);
	return 0;
}

void gap_remote_name_cancel(gap *g, gap_name_req *r)
{
	if (!r)
		return;
	if (r == g->names && g->name_busy) {
		if (r->cb) {
			r->cb = NULL;
			hci_cmd_addr_urgent(g->h, HCI_OP_REMOTE_NAME_REQUEST_CANCEL, &r->peer);
			bt_timer_start(g->timers, &g->name_timer, GAP_NAME_GRACE_MS);
		}
		return;
	}
	for (gap_name_req **pp = &g->names; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			g->n_names--;
			free(r);
			return;
		}
	}
}

/* Remote Name Request Complete (Vol 4 Part E 7.7.7): Status, BD_ADDR, 248-byte name. */
static void ev_name_complete(gap *g, const uint8_t *p, size_t len)
{
	bt_reader r = bt_reader_init(p, len);
	uint8_t status = bt_read_u8(&r);
	const uint8_t *a = bt_read_bytes(&r, 6);
	if (r.err || !g->name_busy || !g->names || memcmp(a, g->names->peer.b, 6) != 0)
		return;
	char name[GAP_NAME_MAX + 1];
	size_t n = 0, left = bt_reader_left(&r);
	const uint8_t *s = bt_read_bytes(&r, left);
	while (!status && s && n < left && n < GAP_NAME_MAX && s[n] != 0) {
		name[n] = (char)s[n];
		n++;
	}
	name[n] = 0;
	name_finish_head(g, status ? hci_status_to_errno(status) : 0, name);
}

/* ------------------------------------------------------------------ local settings */

int gap_write_local_name(gap *g, const char *name, hci_cmd_cb cb, void *ctx)
{
	uint8_t p[GAP_NAME_MAX]; /* Vol 4 Part E 7.3.11: 248 octets, NUL padded */
	size_t n = strlen(name);
	if (n > GAP_NAME_MAX)
		return -EINVAL;
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_bytes(&w, name, n);
	bt_write_zeros(&w, sizeof p - n);
	int err = hci_cmd_w(g->h, HCI_OP_WRITE_LOCAL_NAME, &w, cb, ctx);
	if (err < 0)
		return err;
	uint8_t eir[240];
	gap_eir_build_name(name, eir);
	uint8_t e[1 + sizeof eir]; /* Vol 4 Part E 7.3.56: FEC_Required, 240 octets of EIR */
	bt_writer we = bt_writer_init(e, sizeof e);
	bt_write_u8(&we, 0x00);
	bt_write_bytes(&we, eir, sizeof eir);
	hci_cmd_w(g->h, HCI_OP_WRITE_EXT_INQUIRY_RESPONSE, &we, NULL, NULL);
	return 0;
}

int gap_write_class_of_device(gap *g, uint32_t cod, hci_cmd_cb cb, void *ctx)
{
	uint8_t p[3]; /* Vol 4 Part E 7.3.26: Class_Of_Device, 3 octets */
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_le16(&w, (uint16_t)cod);
	bt_write_u8(&w, (uint8_t)(cod >> 16));
	return hci_cmd_w(g->h, HCI_OP_WRITE_CLASS_OF_DEVICE, &w, cb, ctx);
}

int gap_write_scan_enable(gap *g, bool inquiry_scan, bool page_scan, hci_cmd_cb cb, void *ctx)
{
	uint8_t v[1]; /* Vol 4 Part E 7.3.18: Scan_Enable, 1 octet */
	bt_writer w = bt_writer_init(v, sizeof v);
	bt_write_u8(&w, (uint8_t)((inquiry_scan ? 0x01 : 0) | (page_scan ? 0x02 : 0)));
	return hci_cmd_w(g->h, HCI_OP_WRITE_SCAN_ENABLE, &w, cb, ctx);
}

/* ------------------------------------------------------------------ pairing */

static key_entry *key_find(const gap *g, const bt_addr *a)
{
	for (unsigned i = 0; i < GAP_MAX_KEYS; i++)
		if (g->keys[i].used && bt_addr_eq(&g->keys[i].addr, a))
			return (key_entry *)&g->keys[i];
	return NULL;
}

int gap_link_key_get(const gap *g, const bt_addr *peer, uint8_t key[16])
{
	const key_entry *k = key_find(g, peer);
	if (!k)
		return -ENOENT;
	memcpy(key, k->key, 16);
	return 0;
}

void gap_link_key_set(gap *g, const bt_addr *peer, const uint8_t key[16], uint8_t type)
{
	key_entry *k = key_find(g, peer);
	if (!k) {
		k = &g->keys[g->key_next];
		g->key_next = (g->key_next + 1) % GAP_MAX_KEYS;
	}
	k->used = true;
	k->addr = *peer;
	memcpy(k->key, key, 16);
	k->type = type;
}

void gap_link_key_forget(gap *g, const bt_addr *peer)
{
	key_entry *k = key_find(g, peer);
	if (k)
		memset(k, 0, sizeof *k);
}

size_t gap_link_keys(const gap *g, bt_addr *out, uint8_t *types, size_t max)
{
	size_t n = 0;
	for (unsigned i = 0; i < GAP_MAX_KEYS; i++) {
		if (!g->keys[i].used)
			continue;
		if (n < max) {
			out[n] = g->keys[i].addr;
			if (types)
				types[n] = g->keys[i].type;
		}
		n++;
	}
	return n;
}

void gap_link_key_lost(gap *g, const bt_addr *peer)
{
	gap_link_key_forget(g, peer);
}

static bool read_addr(const uint8_t *p, size_t len, bt_addr *a)
{
	if (len < 6)
		return false;
	memcpy(a->b, p, 6);
	return true;
}

static const peer_io *peer_io_find(const gap *g, const bt_addr *a)
{
	for (unsigned i = 0; i < GAP_PEER_IO; i++)
		if (g->io[i].used && bt_addr_eq(&g->io[i].addr, a))
			return &g->io[i];
	return NULL;
}

/* The peer's Authentication_Requirements from its IO_Capability_Response, or 0xff. */
static uint8_t peer_auth(const gap *g, const bt_addr *a)
{
	const peer_io *e = peer_io_find(g, a);
	return e ? e->auth : 0xff;
}

/* MITM protection is required: by the stack's setting, or by a channel securing the link. */
static bool want_mitm(gap *g, const bt_addr *a)
{
	return g->mitm || hci_link_wants_mitm(g->h, a);
}

/* Link_Key_Request (7.7.23): a stored key, or a negative reply so pairing follows (also when
 * the link's securing asks MITM protection and the stored key has none). */
static void ev_link_key_request(gap *g, const bt_addr *a)
{
	uint8_t key[16];
	const key_entry *stored = key_find(g, a);
	bool weak = stored && stored->type != 0x05 && stored->type != 0x08; /* 7.7.24 */
	if (gap_link_key_get(g, a, key) != 0 || (weak && hci_link_wants_mitm(g->h, a))) {
		/* none, or one without MITM protection where an authenticated one is needed: pair */
		hci_cmd_addr_urgent(g->h, HCI_OP_LINK_KEY_REQUEST_NEG_REPLY, a); /* 7.1.11 */
		return;
	}
	const key_entry *k = key_find(g, a);
	hci_note_key_type(g->h, a, k->type);
	uint8_t p[22]; /* 7.1.10: BD_ADDR, Link_Key (16 octets) */
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_bytes(&w, a->b, 6);
	bt_write_bytes(&w, key, sizeof key);
	hci_cmd_urgent(g->h, HCI_OP_LINK_KEY_REQUEST_REPLY, &w);
}

/* Link_Key_Notification (7.7.24): BD_ADDR, Link_Key, Key_Type. */
static void ev_link_key_notification(gap *g, const uint8_t *p, size_t len)
{
	if (len < 23)
		return;
	bt_addr a;
	memcpy(a.b, p, 6);
	/* Kept if we bond, or if the peer asked Dedicated Bonding (it keeps the key whatever we
	 * said); otherwise neither side keeps it past the link. */
	uint8_t theirs = peer_auth(g, &a);
	if (g->bondable || theirs == 0x02 || theirs == 0x03) {
		gap_link_key_set(g, &a, p + 6, p[22]);
		if (g->key_hook)
			g->key_hook(g->key_ctx, &a, p + 6, p[22]);
	}
}

void gap_set_key_hook(gap *g, gap_key_hook fn, void *ctx)
{
	g->key_hook = fn;
	g->key_ctx = ctx;
}

void gap_set_bondable(gap *g, bool on)
{
	g->bondable = on;
}

/* IO_Capability_Response (7.7.41): remember the peer's authentication requirements. */
static void ev_io_cap_response(gap *g, const uint8_t *p, size_t len)
{
	if (len < 9)
		return;
	bt_addr a;
	memcpy(a.b, p, 6);
	peer_io *e = NULL;
	for (unsigned i = 0; i < GAP_PEER_IO && !e; i++)
		if (g->io[i].used && bt_addr_eq(&g->io[i].addr, &a))
			e = &g->io[i];
	if (!e) {
		e = &g->io[g->io_next];
		g->io_next = (g->io_next + 1) % GAP_PEER_IO;
	}
	*e = (peer_io){ true, a, p[6], p[8] };
}

/* IO_Capability_Request (7.7.40) -> IO_Capability_Request_Reply (7.1.29): our IO capability
 * (NoInputNoOutput by default), no OOB data, MITM as set (not by default). Not bondable (the default): No Bonding, so a peer that keeps
 * keys (BlueZ) does not store one we will have forgotten next time: it would then refuse a
 * fresh Just Works pairing from the same address. Bondable: bonding as the peer asked if it
 * told us first, else General Bonding. */
static void ev_io_cap_request(gap *g, const bt_addr *a)
{
	uint8_t auth = 0x00; /* no bonding, no MITM */
	uint8_t theirs = peer_auth(g, a);
	if (g->bondable)
		auth = theirs <= 0x05 ? theirs & (uint8_t)~0x01 : 0x04;
	if (g->bondable && pair_find(g, a))
		auth = 0x02; /* gap_pair: Dedicated Bonding (Vol 3 Part C 6.5.3) */
	if (want_mitm(g, a) || pair_asks_mitm(g, a))
		auth |= 0x01; /* 7.1.29: odd values ask MITM protection */
	uint8_t p[9]; /* 7.1.29: BD_ADDR, IO_Capability, OOB_Data_Present, Authentication_Requirements */
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_bytes(&w, a->b, 6);
	bt_write_u8(&w, g->io_cap);
	bt_write_u8(&w, 0x00); /* OOB authentication data not present */
	bt_write_u8(&w, auth);
	hci_cmd_urgent(g->h, HCI_OP_IO_CAPABILITY_REQUEST_REPLY, &w);
}


/* ------------------------------------------------------------------ gap_pair */

static pair_op *pair_find(gap *g, const bt_addr *a)
{
	for (unsigned i = 0; i < GAP_PAIRS; i++)
		if (g->pairs[i].used && bt_addr_eq(&g->pairs[i].peer, a))
			return &g->pairs[i];
	return NULL;
}

/* gap_pair() asks MITM protection when we have a user to ask (an IO capability other than
 * NoInputNoOutput), so that the bond gets an authenticated key where the peer allows it, but
 * does not require it: Just Works still pairs unless the stack requires MITM (g->mitm). */
static bool pair_asks_mitm(gap *g, const bt_addr *a)
{
	return g->io_cap != GAP_IO_NONE && pair_find(g, a) != NULL;
}

static pair_op *pair_by_handle(gap *g, uint16_t handle)
{
	for (unsigned i = 0; i < GAP_PAIRS; i++)
		if (g->pairs[i].used && g->pairs[i].linked && g->pairs[i].handle == handle)
			return &g->pairs[i];
	return NULL;
}

/* The one place a gap_pair() ends. */
static void pair_end(pair_op *op, int err, int reason)
{
	gap_pair_cb done = op->done;
	void *ctx = op->ctx;
	bt_addr peer = op->peer;
	memset(op, 0, sizeof *op);
	if (done)
		done(ctx, &peer, err, reason);
}

/* The link is up: authenticate and encrypt it (Vol 3 Part C 5.2.2; HCI does the steps). */
static void pair_secure(gap *g, pair_op *op, uint16_t handle)
{
	op->linked = true;
	op->handle = handle;
	int rc = hci_secure_link_mitm(g->h, handle, g->mitm);
	if (rc == 1)
		pair_end(op, 0, HCI_SEC_OK); /* encrypted already (with a key good enough) */
	else if (rc < 0)
		pair_end(op, rc, HCI_SEC_OK);
}

int gap_pair(gap *g, const bt_addr *peer, gap_pair_cb done, void *ctx)
{
	if (pair_find(g, peer))
		return -EBUSY;
	pair_op *op = NULL;
	for (unsigned i = 0; i < GAP_PAIRS && !op; i++)
		if (!g->pairs[i].used)
			op = &g->pairs[i];
	if (!op)
		return -ENOBUFS;
	*op = (pair_op){ .used = true, .peer = *peer, .done = done, .ctx = ctx };
	int rc = hci_connect(g->h, peer);
	if (rc < 0) {
		memset(op, 0, sizeof *op);
		return rc;
	}
	if (rc == 1) { /* a link is up already */
		int handle = hci_link_handle(g->h, peer);
		if (handle < 0) {
			memset(op, 0, sizeof *op);
			return handle;
		}
		pair_secure(g, op, (uint16_t)handle);
	}
	return 0;
}

void gap_pair_cancel(gap *g, const bt_addr *peer)
{
	pair_op *op = pair_find(g, peer);
	if (op)
		memset(op, 0, sizeof *op);
}

void gap_link_up(gap *g, uint16_t handle, const bt_addr *peer)
{
	pair_op *op = g ? pair_find(g, peer) : NULL;
	if (op && !op->linked)
		pair_secure(g, op, handle);
}

void gap_link_down(gap *g, uint16_t handle, const bt_addr *peer, int err)
{
	pair_op *op = g ? pair_find(g, peer) : NULL;
	if (op && op->linked && op->handle == handle)
		pair_end(op, err ? err : -ECONNRESET, HCI_SEC_OK);
}

void gap_connect_failed(gap *g, const bt_addr *peer, int err)
{
	pair_op *op = g ? pair_find(g, peer) : NULL;
	if (op && !op->linked)
		pair_end(op, err, HCI_SEC_OK);
}

void gap_link_secured(gap *g, uint16_t handle, int err, int reason)
{
	pair_op *op = g ? pair_by_handle(g, handle) : NULL;
	if (op)
		pair_end(op, err, reason);
}

/* ------------------------------------------------------------------ agent */

/* Vol 3 Part C 5.2.2.6, from our side (rows: ours, columns: theirs, GAP_IO_* order). */
gap_model gap_assoc_model(uint8_t ours, uint8_t theirs, bool mitm)
{
	enum { JW = GAP_JUST_WORKS, NC = GAP_NUMERIC_COMPARISON, PD = GAP_PASSKEY_DISPLAY,
	       PE = GAP_PASSKEY_ENTRY };
	static const uint8_t table[5][5] = {
		/* DispOnly DispYesNo KbdOnly NoIO KbdDisp */
		{ JW, JW, PD, JW, PD }, /* DisplayOnly */
		{ NC, NC, PD, JW, NC }, /* DisplayYesNo */
		{ PE, PE, PE, JW, PE }, /* KeyboardOnly */
		{ JW, JW, JW, JW, JW }, /* NoInputNoOutput */
		{ PE, NC, PD, JW, NC }, /* KeyboardDisplay */
	};
	if (!mitm || ours > 4 || theirs > 4)
		return GAP_JUST_WORKS;
	return (gap_model)table[ours][theirs];
}

void gap_set_agent(gap *g, const gap_agent *agent, void *ctx)
{
	g->agent = agent;
	g->agent_ctx = ctx;
}

void gap_set_agent_timeout(gap *g, uint32_t ms)
{
	g->agent_timeout_ms = ms ? ms : GAP_AGENT_TIMEOUT_MS;
}

int gap_set_io_capability(gap *g, uint8_t io, bool mitm)
{
	if (io > GAP_IO_KEYBOARD_DISPLAY)
		return -EINVAL;
	g->io_cap = io;
	g->mitm = mitm;
	return 0;
}

static void reply_addr(gap *g, uint16_t op, const bt_addr *a)
{
	hci_cmd_addr_urgent(g->h, op, a); /* 7.1.13, 7.1.30, 7.1.31, 7.1.33, 7.1.35: BD_ADDR only */
}

/* A negative answer: the link's security failure is then "rejected by the user". */
static void refuse(gap *g, uint16_t op, const bt_addr *a)
{
	hci_sec_hint(g->h, a, HCI_SEC_REJECTED);
	reply_addr(g, op, a);
}

static uint16_t pend_neg_op(pend_kind k)
{
	switch (k) {
	case PEND_CONFIRM: return HCI_OP_USER_CONFIRM_REQUEST_NEG_REPLY; /* 7.1.31 */
	case PEND_PASSKEY: return GAP_OP_USER_PASSKEY_NEG_REPLY;         /* 7.1.33 */
	default: return HCI_OP_PIN_CODE_REQUEST_NEG_REPLY;                /* 7.1.13 */
	}
}

static agent_pend *pend_find(gap *g, const bt_addr *a, pend_kind k)
{
	for (unsigned i = 0; i < GAP_AGENT_PENDING; i++)
		if (g->pend[i].kind == k && bt_addr_eq(&g->pend[i].peer, a))
			return &g->pend[i];
	return NULL;
}

static void pend_clear(agent_pend *p)
{
	bt_timer_stop(p->g->timers, &p->timer);
	p->kind = PEND_NONE;
}

/* The agent did not answer in time: a negative reply. */
static void pend_timeout(bt_timer *t, void *ctx)
{
	agent_pend *p = ctx;
	(void)t;
	pend_kind k = p->kind;
	bt_addr a = p->peer;
	p->kind = PEND_NONE;
	if (k != PEND_NONE)
		refuse(p->g, pend_neg_op(k), &a);
}

/* Records a request for the agent; false (answered negatively) if none can be kept. */
static bool pend_add(gap *g, const bt_addr *a, pend_kind k)
{
	agent_pend *p = pend_find(g, a, k);
	for (unsigned i = 0; i < GAP_AGENT_PENDING && !p; i++)
		if (g->pend[i].kind == PEND_NONE)
			p = &g->pend[i];
	if (!p) {
		refuse(g, pend_neg_op(k), a);
		return false;
	}
	p->kind = k;
	p->peer = *a;
	bt_timer_start(g->timers, &p->timer, g->agent_timeout_ms);
	return true;
}

/* User_Confirmation_Request (7.7.42): BD_ADDR, Numeric_Value. Just Works is accepted, unless
 * we require MITM protection (the key would not be authenticated); Numeric Comparison asks
 * the agent. */
static void ev_user_confirm(gap *g, const uint8_t *p, size_t len)
{
	if (len < 10)
		return;
	bt_addr a;
	memcpy(a.b, p, 6);
	uint32_t value = get_le32(p + 6);
	const peer_io *e = peer_io_find(g, &a);
	bool ours = want_mitm(g, &a);
	bool mitm = ours || pair_asks_mitm(g, &a) || (e && (e->auth & 0x01));
	gap_model m = gap_assoc_model(g->io_cap, e ? e->io : GAP_IO_NONE, mitm);
	/* A User Confirmation Request comes after the peer's IO Capability Response (7.7.41) and
	 * never for Passkey Entry. One without the response, or where the table says Passkey Entry,
	 * means the controller chose otherwise (BlueZ btvirt skips the exchange when two controllers
	 * pair again, and always confirms): the table cannot make it Just Works, so with a user to
	 * ask, the user decides. */
	bool unexpected = !e ? g->io_cap != GAP_IO_NONE : m == GAP_PASSKEY_ENTRY || m == GAP_PASSKEY_DISPLAY;
	if (unexpected && g->agent && g->agent->confirm)
		m = GAP_NUMERIC_COMPARISON;
	if (m != GAP_NUMERIC_COMPARISON) {
		if (ours)
			refuse(g, HCI_OP_USER_CONFIRM_REQUEST_NEG_REPLY, &a);
		else
			reply_addr(g, HCI_OP_USER_CONFIRM_REQUEST_REPLY, &a);
		return;
	}
	if (!g->agent || !g->agent->confirm) {
		refuse(g, HCI_OP_USER_CONFIRM_REQUEST_NEG_REPLY, &a);
		return;
	}
	if (pend_add(g, &a, PEND_CONFIRM))
		g->agent->confirm(g->agent_ctx, &a, value % 1000000u);
}

/* User_Passkey_Request (7.7.43): the agent types the passkey the peer shows. */
static void ev_passkey_request(gap *g, const bt_addr *a)
{
	if (!g->agent || !g->agent->enter_passkey) {
		refuse(g, GAP_OP_USER_PASSKEY_NEG_REPLY, a);
		return;
	}
	if (pend_add(g, a, PEND_PASSKEY))
		g->agent->enter_passkey(g->agent_ctx, a);
}

/* User_Passkey_Notification (7.7.48): BD_ADDR, Passkey (0-999999) for the user to type on the
 * peer. No reply. */
static void ev_passkey_notification(gap *g, const uint8_t *p, size_t len)
{
	if (len < 10)
		return;
	bt_addr a;
	memcpy(a.b, p, 6);
	hci_sec_hint(g->h, &a, HCI_SEC_WRONG_PASSKEY); /* a failure now: the peer typed it wrong */
	if (!g->agent || !g->agent->display_passkey)
		return;
	g->agent->display_passkey(g->agent_ctx, &a, get_le32(p + 6) % 1000000u);
}

static const fixed_pin *pin_find(const gap *g, const bt_addr *a)
{
	for (unsigned i = 0; i < GAP_PINS; i++)
		if (g->pins[i].used && bt_addr_eq(&g->pins[i].addr, a))
			return &g->pins[i];
	return NULL;
}

static void pin_reply(gap *g, const bt_addr *a, const uint8_t *pin, size_t n)
{
	uint8_t p[23]; /* 7.1.12: BD_ADDR, PIN_Code_Length, PIN_Code (16 octets) */
	bt_writer w = bt_writer_init(p, sizeof p);
	bt_write_bytes(&w, a->b, 6);
	bt_write_u8(&w, (uint8_t)n);
	bt_write_bytes(&w, pin, n);
	bt_write_zeros(&w, 16 - n);
	hci_sec_hint(g->h, a, HCI_SEC_WRONG_PIN); /* if pairing fails now, the PIN was wrong */
	hci_cmd_urgent(g->h, GAP_OP_PIN_CODE_REPLY, &w);
}

/* PIN_Code_Request (7.7.22): legacy pairing with a pre-2.1 peer. A fixed PIN, else the agent. */
static void ev_pin_request(gap *g, const bt_addr *a)
{
	const fixed_pin *f = pin_find(g, a);
	if (f) {
		pin_reply(g, a, f->pin, f->len);
		return;
	}
	if (!g->agent || !g->agent->pin) {
		hci_sec_hint(g->h, a, HCI_SEC_NO_PIN);
		reply_addr(g, HCI_OP_PIN_CODE_REQUEST_NEG_REPLY, a);
		return;
	}
	if (pend_add(g, a, PEND_PIN))
		g->agent->pin(g->agent_ctx, a);
}

int gap_agent_confirm(gap *g, const bt_addr *peer, bool accept)
{
	agent_pend *p = pend_find(g, peer, PEND_CONFIRM);
	if (!p)
		return -ENOENT;
	pend_clear(p);
	if (accept)
		reply_addr(g, HCI_OP_USER_CONFIRM_REQUEST_REPLY, peer); /* 7.1.30 */
	else
		refuse(g, HCI_OP_USER_CONFIRM_REQUEST_NEG_REPLY, peer);
	return 0;
}

int gap_agent_passkey(gap *g, const bt_addr *peer, bool ok, uint32_t passkey)
{
	if (ok && passkey > 999999u)
		return -EINVAL;
	agent_pend *p = pend_find(g, peer, PEND_PASSKEY);
	if (!p)
		return -ENOENT;
	pend_clear(p);
	if (!ok) {
		refuse(g, GAP_OP_USER_PASSKEY_NEG_REPLY, peer);
		return 0;
	}
	hci_sec_hint(g->h, peer, HCI_SEC_WRONG_PASSKEY); /* if pairing fails now, it was wrong */
	uint8_t b[10]; /* 7.1.32: BD_ADDR, Numeric_Value (4 octets) */
	bt_writer w = bt_writer_init(b, sizeof b);
	bt_write_bytes(&w, peer->b, 6);
	bt_write_le32(&w, passkey);
	hci_cmd_urgent(g->h, GAP_OP_USER_PASSKEY_REPLY, &w);
	return 0;
}

int gap_agent_pin(gap *g, const bt_addr *peer, const char *pin)
{
	size_t n = pin ? strlen(pin) : 0;
	if (pin && (n < 1 || n > 16))
		return -EINVAL;
	agent_pend *p = pend_find(g, peer, PEND_PIN);
	if (!p)
		return -ENOENT;
	pend_clear(p);
	if (pin)
		pin_reply(g, peer, (const uint8_t *)pin, n);
	else
		refuse(g, HCI_OP_PIN_CODE_REQUEST_NEG_REPLY, peer);
	return 0;
}

int gap_set_pin(gap *g, const bt_addr *peer, const char *pin)
{
	fixed_pin *f = (fixed_pin *)pin_find(g, peer);
	size_t n = pin ? strlen(pin) : 0;
	if (!pin) {
		if (f)
			memset(f, 0, sizeof *f);
		return 0;
	}
	if (n < 1 || n > 16)
		return -EINVAL;
	for (unsigned i = 0; i < GAP_PINS && !f; i++)
		if (!g->pins[i].used)
			f = &g->pins[i];
	if (!f)
		return -ENOBUFS;
	f->used = true;
	f->addr = *peer;
	f->len = (uint8_t)n;
	memcpy(f->pin, pin, n);
	return 0;
}

static bool pairing_event(gap *g, uint8_t code, const uint8_t *p, size_t len)
{
	bt_addr a;
	switch (code) {
	case HCI_EV_IO_CAPABILITY_REQUEST:
		if (read_addr(p, len, &a))
			ev_io_cap_request(g, &a);
		return true;
	case HCI_EV_IO_CAPABILITY_RESPONSE:
		ev_io_cap_response(g, p, len);
		return true;
	case HCI_EV_USER_CONFIRM_REQUEST:
		ev_user_confirm(g, p, len);
		return true;
	case GAP_EV_USER_PASSKEY_REQUEST:
		if (read_addr(p, len, &a))
			ev_passkey_request(g, &a);
		return true;
	case GAP_EV_USER_PASSKEY_NOTIFICATION:
		ev_passkey_notification(g, p, len);
		return true;
	case GAP_EV_REMOTE_OOB_REQUEST: /* 7.7.44: no OOB data */
		if (read_addr(p, len, &a))
			reply_addr(g, GAP_OP_REMOTE_OOB_NEG_REPLY, &a);
		return true;
	case HCI_EV_LINK_KEY_REQUEST:
		if (read_addr(p, len, &a))
			ev_link_key_request(g, &a);
		return true;
	case HCI_EV_LINK_KEY_NOTIFICATION:
		ev_link_key_notification(g, p, len);
		return true;
	case HCI_EV_PIN_CODE_REQUEST:
		if (read_addr(p, len, &a))
			ev_pin_request(g, &a);
		return true;
	default:
		return false;
	}
}

/* ------------------------------------------------------------------ events, lifetime */

void gap_event(gap *g, uint8_t code, const uint8_t *params, size_t len)
{
	if (!g || pairing_event(g, code, params, len))
		return;
	switch (code) {
	case HCI_EV_INQUIRY_RESULT:
		ev_inquiry_result(g, params, len, false);
		break;
	case HCI_EV_INQUIRY_RESULT_WITH_RSSI:
		ev_inquiry_result(g, params, len, true);
		break;
	case HCI_EV_EXT_INQUIRY_RESULT:
		ev_ext_inquiry_result(g, params, len);
		break;
	case HCI_EV_INQUIRY_COMPLETE:
		ev_inquiry_complete(g, params, len);
		break;
	case HCI_EV_REMOTE_NAME_REQUEST_COMPLETE:
		ev_name_complete(g, params, len);
		break;
	default:
		break;
	}
}

gap *gap_new(hci *h, bt_timers *timers)
{
	gap *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	g->h = h;
	g->timers = timers;
	bt_timer_init(&g->inq_timer, inq_timeout, g);
	bt_timer_init(&g->name_timer, name_timeout, g);
	g->io_cap = GAP_IO_NONE;
	g->agent_timeout_ms = GAP_AGENT_TIMEOUT_MS;
	for (unsigned i = 0; i < GAP_AGENT_PENDING; i++) {
		g->pend[i].g = g;
		bt_timer_init(&g->pend[i].timer, pend_timeout, &g->pend[i]);
	}
	return g;
}

void gap_free(gap *g)
{
	if (!g)
		return;
	bt_timer_stop(g->timers, &g->inq_timer);
	bt_timer_stop(g->timers, &g->name_timer);
	for (unsigned i = 0; i < GAP_AGENT_PENDING; i++)
		bt_timer_stop(g->timers, &g->pend[i].timer);
	while (g->names) {
		gap_name_req *r = g->names;
		g->names = r->next;
		free(r);
	}
	free(g);
}
