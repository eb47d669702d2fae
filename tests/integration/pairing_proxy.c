/* pairing_proxy.c - see pairing_proxy.h. Opcodes and event codes from Core Vol 4 Part E 7.1
 * (link control commands), 7.4.6 (Read_BD_ADDR), 7.5.7 (Read_Encryption_Key_Size) and 7.7. */
#include "pairing_proxy.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OP_AUTH_REQUESTED 0x0411      /* 7.1.15: Connection_Handle */
#define OP_IO_CAP_REPLY 0x042b         /* 7.1.29: BD_ADDR, IO_Capability, OOB, Auth_Req */
#define OP_CONFIRM_REPLY 0x042c        /* 7.1.30: BD_ADDR */
#define OP_CONFIRM_NEG_REPLY 0x042d    /* 7.1.31: BD_ADDR */
#define OP_PASSKEY_REPLY 0x042e        /* 7.1.32: BD_ADDR, Numeric_Value (4) */
#define OP_PASSKEY_NEG_REPLY 0x042f    /* 7.1.33: BD_ADDR */
#define OP_READ_BD_ADDR 0x1009         /* 7.4.6 */
#define OP_READ_ENC_KEY_SIZE 0x1408    /* 7.5.7: Status, Handle, Key_Size */
#define EV_CONN_COMPLETE 0x03
#define EV_DISCONN_COMPLETE 0x05
#define EV_CMD_COMPLETE 0x0e
#define EV_REMOTE_EXT_FEATURES 0x23    /* 7.7.34: Status, Handle (2), Page, Max_Page, Features (8) */
#define EV_REMOTE_HOST_FEATURES 0x3d   /* 7.7.50: BD_ADDR, Host_Supported_Features (8) */
#define EV_USER_CONFIRM_REQUEST 0x33   /* 7.7.42: BD_ADDR, Numeric_Value (4) */
#define EV_PASSKEY_REQUEST 0x34        /* 7.7.43: BD_ADDR */
#define EV_SSP_COMPLETE 0x36           /* 7.7.45: Status, BD_ADDR */
#define EV_PASSKEY_NOTIFICATION 0x3b   /* 7.7.48: BD_ADDR, Passkey (4) */

#define MAX_FIXES 8
#define MAX_SESSIONS 8

/* IO capabilities (7.1.29) and what a side does in Passkey Entry. */
enum { IO_DISPLAY_ONLY, IO_DISPLAY_YESNO, IO_KEYBOARD_ONLY, IO_NONE, IO_KEYBOARD_DISPLAY };
enum { ROLE_CONFIRM, ROLE_DISPLAY, ROLE_INPUT };

/* A Command Complete of btvirt's to turn into what the host sent (to 0: drop it). */
typedef struct {
	bool used;
	uint16_t from, to;
} cc_fix;

typedef struct {
	pairing_proxy *pp;
	int idx;
	h4_proxy *p;
	bool has_addr;
	uint8_t addr[6];
	char addr_str[18];
	unsigned key_size;
	bool hide_ssp;
	unsigned drop_auth;
	cc_fix fix[MAX_FIXES];
	pp_stats st;
} pp_host;

/* One pairing between two hosts (side 0 and 1, by address). */
typedef struct {
	bool used;
	uint8_t addr[2][6];
	bool has_io[2];
	uint8_t io[2], auth[2];
	bool done;          /* Simple Pairing Complete seen: the next IO capability starts afresh */
	uint32_t value;     /* the Numeric Comparison value or the passkey shown (0: none yet) */
	int role[2];
	bool typed_has[2];
	uint32_t typed[2];
	bool resolved;
} pp_session;

struct pairing_proxy {
	pthread_mutex_t mu; /* after a proxy's own lock, before any inbox lock */
	int n;
	pp_host host[PP_MAX_HOSTS];
	pp_session s[MAX_SESSIONS];
	unsigned seed;
};

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static pp_host *host_by_addr(pairing_proxy *pp, const uint8_t *a)
{
	for (int i = 0; i < pp->n; i++)
		if (pp->host[i].has_addr && memcmp(pp->host[i].addr, a, 6) == 0)
			return &pp->host[i];
	return NULL;
}

/* The session of hosts x and y and x's side in it; created if asked. */
static pp_session *session(pairing_proxy *pp, const uint8_t *x, const uint8_t *y, bool create, int *side)
{
	for (int i = 0; i < MAX_SESSIONS; i++) {
		pp_session *s = &pp->s[i];
		if (!s->used)
			continue;
		for (int k = 0; k < 2; k++)
			if (memcmp(s->addr[k], x, 6) == 0 && memcmp(s->addr[!k], y, 6) == 0) {
				*side = k;
				return s;
			}
	}
	if (!create)
		return NULL;
	for (int i = 0; i < MAX_SESSIONS; i++) {
		pp_session *s = &pp->s[i];
		if (s->used)
			continue;
		memset(s, 0, sizeof *s);
		s->used = true;
		memcpy(s->addr[0], x, 6);
		memcpy(s->addr[1], y, 6);
		*side = 0;
		return s;
	}
	return NULL;
}

static uint32_t six_digits(pairing_proxy *pp)
{
	return 100000u + (uint32_t)(rand_r(&pp->seed) % 900000);
}

/* Vol 3 Part C 5.2.2.6 (Table 5.7), for side x against y: whether it is Passkey Entry, and x's
 * role. Without MITM asked by either side every pairing is Just Works (confirmation). */
static int role_of(uint8_t x, uint8_t y, bool mitm)
{
	if (!mitm || x == IO_NONE || y == IO_NONE || x > IO_KEYBOARD_DISPLAY || y > IO_KEYBOARD_DISPLAY)
		return ROLE_CONFIRM;
	if (x == IO_KEYBOARD_ONLY)
		return ROLE_INPUT; /* against any display, or another keyboard */
	if (y == IO_KEYBOARD_ONLY)
		return ROLE_DISPLAY;
	if (x == IO_KEYBOARD_DISPLAY && y == IO_DISPLAY_ONLY)
		return ROLE_INPUT;
	if (x == IO_DISPLAY_ONLY && y == IO_KEYBOARD_DISPLAY)
		return ROLE_DISPLAY;
	return ROLE_CONFIRM; /* Numeric Comparison, or Just Works between displays */
}

static void add_fix(pp_host *h, uint16_t from, uint16_t to)
{
	for (int i = 0; i < MAX_FIXES; i++)
		if (!h->fix[i].used) {
			h->fix[i] = (cc_fix){ true, from, to };
			return;
		}
	fprintf(stderr, "pairing_proxy: host %d: too many Command Completes to fix\n", h->idx);
}

/* A command with only a BD_ADDR (7.1.30, 7.1.31) into host h's controller. */
static void inject_addr_cmd(pp_host *h, uint16_t op, const uint8_t *peer)
{
	uint8_t pkt[4 + 6] = { 0x01, (uint8_t)op, (uint8_t)(op >> 8), 6 };
	memcpy(pkt + 4, peer, 6);
	h4p_inject(h->p, H4P_TO_CTRL, pkt, sizeof pkt);
}

/* Every keyboard side has typed: compare, then let btvirt end the pairing accordingly. */
static void resolve(pairing_proxy *pp, pp_session *s)
{
	if (s->resolved)
		return;
	bool any_display = false;
	for (int k = 0; k < 2; k++) {
		if (s->role[k] == ROLE_INPUT && !s->typed_has[k])
			return;
		any_display |= s->role[k] == ROLE_DISPLAY;
	}
	s->resolved = true;
	bool ok = any_display ? true : s->typed[0] == s->typed[1];
	for (int k = 0; k < 2 && any_display; k++)
		if (s->role[k] == ROLE_INPUT && s->typed[k] != s->value)
			ok = false;
	pp_host *h[2] = { host_by_addr(pp, s->addr[0]), host_by_addr(pp, s->addr[1]) };
	if (!h[0] || !h[1])
		return;
	if (ok) {
		for (int k = 0; k < 2; k++) {
			inject_addr_cmd(h[k], OP_CONFIRM_REPLY, s->addr[!k]);
			add_fix(h[k], OP_CONFIRM_REPLY, s->role[k] == ROLE_INPUT ? OP_PASSKEY_REPLY : 0);
		}
		return;
	}
	/* A wrong passkey: the controllers' confirmation values differ and pairing fails with
	 * Authentication Failure on both sides (Vol 2 Part F 4.2.3). btvirt ends a pairing once
	 * both sides have answered, failing it if one answered negatively: a negative answer for
	 * the first keyboard side, a positive one for the other side. */
	int neg = s->role[0] == ROLE_INPUT ? 0 : 1;
	for (int k = 0; k < 2; k++)
		if (s->role[k] == ROLE_INPUT)
			h[k]->st.wrong_passkeys++;
	inject_addr_cmd(h[neg], OP_CONFIRM_NEG_REPLY, s->addr[!neg]);
	add_fix(h[neg], OP_CONFIRM_NEG_REPLY, OP_PASSKEY_REPLY);
	inject_addr_cmd(h[!neg], OP_CONFIRM_REPLY, s->addr[neg]);
	add_fix(h[!neg], OP_CONFIRM_REPLY, s->role[!neg] == ROLE_INPUT ? OP_PASSKEY_REPLY : 0);
}

/* A command from host h. false: keep it from btvirt. */
static bool from_host(pairing_proxy *pp, pp_host *h, const uint8_t *pkt, size_t len)
{
	if (len < 4)
		return true;
	uint16_t op = le16(pkt + 1);
	if (!h->has_addr && op != OP_AUTH_REQUESTED)
		return true;
	const uint8_t *prm = pkt + 4;
	size_t plen = len - 4;
	int side;
	pp_session *s;
	switch (op) {
	case OP_AUTH_REQUESTED:
		if (h->drop_auth) {
			/* Command Status (7.7.15): Status 0, Num_HCI_Command_Packets 1, the opcode */
			const uint8_t cs[] = { 0x04, 0x0f, 4, 0x00, 0x01, (uint8_t)op, (uint8_t)(op >> 8) };
			h->drop_auth--;
			h->st.auths_dropped++;
			h4p_inject(h->p, H4P_TO_HOST, cs, sizeof cs);
			return false;
		}
		return true;
	case OP_IO_CAP_REPLY:
		if (plen < 9 || !(s = session(pp, h->addr, prm, true, &side)))
			return true;
		if (s->done) { /* a new pairing of the same two */
			uint8_t a[2][6];
			memcpy(a, s->addr, sizeof a);
			bool has[2] = { s->has_io[0], s->has_io[1] };
			uint8_t io[2] = { s->io[0], s->io[1] }, auth[2] = { s->auth[0], s->auth[1] };
			memset(s, 0, sizeof *s);
			s->used = true;
			memcpy(s->addr, a, sizeof a);
			/* btvirt asks a controller's IO capability only once per peer: keep the other's */
			memcpy(s->has_io, has, sizeof has);
			memcpy(s->io, io, sizeof io);
			memcpy(s->auth, auth, sizeof auth);
		}
		s->has_io[side] = true;
		s->io[side] = prm[6];
		s->auth[side] = prm[8];
		return true;
	case OP_PASSKEY_REPLY:
		if (plen < 10 || !(s = session(pp, h->addr, prm, false, &side)) || s->role[side] != ROLE_INPUT)
			return true;
		s->typed_has[side] = true;
		s->typed[side] = le32(prm + 6);
		if (s->resolved) { /* the other keyboard refused already: btvirt waits for this answer */
			inject_addr_cmd(h, OP_CONFIRM_REPLY, prm);
			add_fix(h, OP_CONFIRM_REPLY, OP_PASSKEY_REPLY);
			return false;
		}
		resolve(pp, s);
		return false;
	case OP_PASSKEY_NEG_REPLY:
		if (plen < 6 || !(s = session(pp, h->addr, prm, false, &side)) || s->role[side] != ROLE_INPUT)
			return true;
		if (s->resolved)
			return true;
		s->resolved = true;
		inject_addr_cmd(h, OP_CONFIRM_NEG_REPLY, prm);
		add_fix(h, OP_CONFIRM_NEG_REPLY, OP_PASSKEY_NEG_REPLY);
		pp_host *o = host_by_addr(pp, prm); /* btvirt waits for the other side's answer too */
		if (o && s->role[!side] != ROLE_INPUT) {
			inject_addr_cmd(o, OP_CONFIRM_REPLY, h->addr);
			add_fix(o, OP_CONFIRM_REPLY, 0);
		} else if (o && s->typed_has[!side]) { /* the other keyboard typed already */
			inject_addr_cmd(o, OP_CONFIRM_REPLY, h->addr);
			add_fix(o, OP_CONFIRM_REPLY, OP_PASSKEY_REPLY);
		} /* else its passkey, when typed, goes in as a (positive) answer: see above */
		return false;
	default:
		return true;
	}
}

/* User Confirmation Request to host h (in place: pkt has room for cap octets). */
static void confirm_request(pairing_proxy *pp, pp_host *h, uint8_t *pkt, size_t *len)
{
	int side;
	pp_session *s = session(pp, h->addr, pkt + 3, false, &side);
	if (!s || !s->has_io[0] || !s->has_io[1]) {
		h->st.confirm_requests++;
		h->st.last_confirm_value = le32(pkt + 9);
		return;
	}
	bool mitm = ((s->auth[0] | s->auth[1]) & 0x01) != 0;
	int role = role_of(s->io[side], s->io[!side], mitm);
	s->role[side] = role;
	s->role[!side] = role_of(s->io[!side], s->io[side], mitm);
	if (!s->value)
		s->value = six_digits(pp);
	switch (role) {
	case ROLE_DISPLAY:
		pkt[1] = EV_PASSKEY_NOTIFICATION; /* BD_ADDR stays, Passkey in place of the value */
		put_le32(pkt + 9, s->value);
		h->st.passkey_notifications++;
		h->st.last_passkey = s->value;
		resolve(pp, s); /* nothing yet, unless the keyboard side typed already */
		break;
	case ROLE_INPUT:
		pkt[1] = EV_PASSKEY_REQUEST;
		pkt[2] = 6;
		*len = 3 + 6;
		h->st.passkey_requests++;
		break;
	default:
		put_le32(pkt + 9, s->value);
		h->st.confirm_requests++;
		h->st.last_confirm_value = s->value;
		break;
	}
}

/* An event to host h. false: drop it. */
static bool to_host(pairing_proxy *pp, pp_host *h, uint8_t *pkt, size_t *len)
{
	if (*len < 3)
		return true;
	size_t plen = pkt[2];
	if (plen + 3 > *len)
		return true;
	switch (pkt[1]) {
	case EV_CMD_COMPLETE: {
		if (plen < 4)
			return true;
		uint16_t op = le16(pkt + 4);
		for (int i = 0; i < MAX_FIXES; i++) {
			cc_fix *f = &h->fix[i];
			if (!f->used || f->from != op)
				continue;
			f->used = false;
			if (!f->to)
				return false;
			pkt[4] = (uint8_t)f->to;
			pkt[5] = (uint8_t)(f->to >> 8);
			return true;
		}
		if (op == OP_READ_BD_ADDR && plen >= 10 && pkt[6] == 0) {
			memcpy(h->addr, pkt + 7, 6);
			snprintf(h->addr_str, sizeof h->addr_str, "%02X:%02X:%02X:%02X:%02X:%02X", pkt[12], pkt[11],
				 pkt[10], pkt[9], pkt[8], pkt[7]);
			h->has_addr = true;
		}
		if (op == OP_READ_ENC_KEY_SIZE && plen >= 7 && pkt[6] == 0 && h->key_size) {
			pkt[9] = (uint8_t)h->key_size;
			h->st.key_sizes_rewritten++;
		}
		return true;
	}
	case EV_USER_CONFIRM_REQUEST:
		if (plen >= 10 && h->has_addr)
			confirm_request(pp, h, pkt, len);
		return true;
	case EV_SSP_COMPLETE: {
		if (plen < 7)
			return true;
		if (pkt[3] == 0)
			h->st.pairings_completed++;
		else
			h->st.pairings_failed++;
		int side;
		pp_session *s = h->has_addr ? session(pp, h->addr, pkt + 4, false, &side) : NULL;
		if (s)
			s->done = true;
		return true;
	}
	case EV_REMOTE_EXT_FEATURES:
		/* Page 1 bit 0: Secure Simple Pairing (Host Support) (Vol 2 Part C 3.3) */
		if (h->hide_ssp && plen >= 13 && pkt[3] == 0 && pkt[6] == 1 && (pkt[8] & 0x01)) {
			pkt[8] &= (uint8_t)~0x01;
			h->st.ssp_bits_hidden++;
		}
		return true;
	case EV_REMOTE_HOST_FEATURES:
		if (h->hide_ssp && plen >= 14 && (pkt[9] & 0x01)) {
			pkt[9] &= (uint8_t)~0x01;
			h->st.ssp_bits_hidden++;
		}
		return true;
	case EV_CONN_COMPLETE:
		if (plen >= 11 && pkt[3] == 0)
			h->st.links_up++;
		return true;
	case EV_DISCONN_COMPLETE: /* 7.7.5: Status, Handle (2), Reason */
		if (plen >= 4 && pkt[3] == 0 && h->st.links_up)
			h->st.links_up--;
		if (plen >= 4 && pkt[3] == 0) {
			h->st.disconnects++;
			h->st.last_disc_reason = pkt[6];
		}
		return true;
	default:
		return true;
	}
}

/* ACL data to host h: counts L2CAP Connection Responses "security block" (Vol 4 Part E 5.4.2
 * ACL header; Vol 3 Part A 3.1 basic header, 4 signaling on CID 0x0001, 4.3 Connection
 * Response: DCID, SCID, Result 0x0003). Only a start fragment holding the whole command. */
static void acl_to_host(pp_host *h, const uint8_t *pkt, size_t len)
{
	if (len < 5 + 4 || ((pkt[2] >> 4) & 0x03) != 0x02)
		return;
	size_t dlen = le16(pkt + 3);
	if (dlen + 5 > len || dlen < 4 || le16(pkt + 7) != 0x0001)
		return;
	const uint8_t *c = pkt + 9, *end = pkt + 5 + dlen;
	while (end - c >= 4) {
		size_t clen = le16(c + 2);
		if ((size_t)(end - c) < 4 + clen)
			break;
		if (c[0] == 0x03 && clen >= 8 && le16(c + 8) == 0x0003)
			h->st.sec_blocks++;
		c += 4 + clen;
	}
}

static bool filter(void *ctx, h4_proxy *p, h4p_dir dir, uint8_t *pkt, size_t *len, size_t cap)
{
	pp_host *h = ctx;
	pairing_proxy *pp = h->pp;
	(void)p;
	(void)cap; /* rewrites only shorten or keep a packet's length */
	pthread_mutex_lock(&pp->mu);
	bool keep = true;
	if (dir == H4P_TO_CTRL && pkt[0] == 0x01)
		keep = from_host(pp, h, pkt, *len);
	else if (dir == H4P_TO_HOST && pkt[0] == 0x04)
		keep = to_host(pp, h, pkt, len);
	else if (dir == H4P_TO_HOST && pkt[0] == 0x02)
		acl_to_host(h, pkt, *len);
	pthread_mutex_unlock(&pp->mu);
	return keep;
}

pairing_proxy *pp_start(const char *upstream, int n_hosts)
{
	if (n_hosts < 1 || n_hosts > PP_MAX_HOSTS)
		return NULL;
	pairing_proxy *pp = calloc(1, sizeof *pp);
	if (!pp)
		return NULL;
	pthread_mutex_init(&pp->mu, NULL);
	pp->seed = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)pp;
	for (int i = 0; i < n_hosts; i++) {
		pp_host *h = &pp->host[i];
		h->pp = pp;
		h->idx = i;
		h->p = h4p_start(upstream);
		if (!h->p) {
			pp->n = i;
			pp_stop(pp);
			return NULL;
		}
		h4p_keep_controller(h->p, true);
		h4p_set_filter(h->p, filter, h);
	}
	pp->n = n_hosts;
	return pp;
}

const char *pp_adapter(pairing_proxy *pp, int i)
{
	return h4p_adapter(pp->host[i].p);
}

const char *pp_addr(pairing_proxy *pp, int i)
{
	pthread_mutex_lock(&pp->mu);
	const char *a = pp->host[i].has_addr ? pp->host[i].addr_str : "";
	pthread_mutex_unlock(&pp->mu);
	return a;
}

void pp_set_key_size(pairing_proxy *pp, int i, unsigned size)
{
	pthread_mutex_lock(&pp->mu);
	pp->host[i].key_size = size <= 16 ? size : 16;
	pthread_mutex_unlock(&pp->mu);
}

void pp_hide_peer_ssp(pairing_proxy *pp, int i, bool on)
{
	pthread_mutex_lock(&pp->mu);
	pp->host[i].hide_ssp = on;
	pthread_mutex_unlock(&pp->mu);
}

void pp_drop_auth(pairing_proxy *pp, int i, unsigned n)
{
	pthread_mutex_lock(&pp->mu);
	pp->host[i].drop_auth = n;
	pthread_mutex_unlock(&pp->mu);
}

void pp_get_stats(pairing_proxy *pp, int i, pp_stats *out)
{
	pthread_mutex_lock(&pp->mu);
	*out = pp->host[i].st;
	pthread_mutex_unlock(&pp->mu);
}

void pp_stop(pairing_proxy *pp)
{
	if (!pp)
		return;
	for (int i = 0; i < pp->n; i++)
		h4p_stop(pp->host[i].p);
	pthread_mutex_destroy(&pp->mu);
	free(pp);
}
