/* it_hostile.c - a hostile peer against a btsock stack (issue 9).
 *
 * hostile_target (a public-API program: RFCOMM echo on channel 1 advertised by SDP, L2CAP echo
 * on PSM 0x1001) runs as a child process on a private btvirt; hostile_host.c, a raw host of
 * its own, pages it and sends malformed and hostile traffic case by case. After every case the
 * same target process must still be alive and answer an L2CAP Echo Request, an echo on PSM
 * 0x1001, an SDP ServiceSearch finding its record and an RFCOMM exchange. A case that kills or
 * silences the target is recorded (with the tail of the target's stderr: ASan's report) and the
 * target restarted, so one run lists every failing case; each family (one cmocka test) fails if
 * any of its cases did. Families: signalling commands of every code with zero, short, long and
 * maximal lengths; configuration options in CONFIG and OPEN; PSM and CID edges; SDP PDUs;
 * RFCOMM frames; floods. Each failure is one "HOSTILE CASE FAILED [family] case: why" line on
 * stderr, and the family's list again at its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api_util.h"
#include "btvirt_env.h"
#include "hostile_host.h"

#define TARGET BTSOCK_BIN_DIR "/tests/hostile_target"
#define T_MS 5000      /* one answer from the target (ASan on 2 loaded cores) */
#define SHORT_MS 300   /* an answer the case does not require */

/* HOSTILE_UUID of hostile_target.c, big-endian */
static const uint8_t target_uuid[16] = { 0x6b, 0x5e, 0x0f, 0x3a, 0x9c, 0x1d, 0x4e, 0x2b,
					 0x8a, 0x47, 0x0d, 0x3c, 0x2b, 0x1a, 0x9f, 0x88 };

static btvirt_env *env;
static child tgt;
static bool tgt_running;
static bool tgt_reaped; /* tgt_status holds how it ended */
static int tgt_status;
static char taddr[32];
static hh *H;

/* --- the target process --- */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool target_dead(char *why, size_t cap)
{
	if (!tgt_reaped) {
		if (waitpid(tgt.pid, &tgt_status, WNOHANG) != tgt.pid)
			return false;
		tgt_reaped = true;
	}
	int st = tgt_status;
	if (WIFSIGNALED(st))
		snprintf(why, cap, "target died by signal %d", WTERMSIG(st));
	else
		snprintf(why, cap, "target exited with status %d", WEXITSTATUS(st));
	return true;
}

static bool target_start(void)
{
	char *argv[] = { TARGET, NULL };
	child_start(&tgt, env->adapter, argv);
	tgt_running = true;
	tgt_reaped = false;
	uint64_t end = now_ms() + 20000;
	char out[256];
	while (now_ms() < end) {
		read_file(tgt.out, out, sizeof out);
		if (sscanf(out, "ready %17s", taddr) == 1)
			return true;
		char why[64];
		if (target_dead(why, sizeof why))
			return false;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return false;
}

/* Prints the end of the target's stderr, and its sanitizer summary line into summary. */
static void target_stderr_tail(char *summary, size_t cap)
{
	static char buf[1 << 16];
	size_t n = read_file(tgt.err, buf, sizeof buf);
	/* a sanitizer report from its first line (the fault and its stack), else the end */
	const char *tail = strstr(buf, "ERROR: AddressSanitizer");
	if (!tail)
		tail = strstr(buf, "runtime error:");
	if (!tail)
		tail = n > 3000 ? buf + n - 3000 : buf;
	const char *shadow = strstr(tail, "Shadow bytes around"); /* the dump after the stacks */
	int len = shadow ? (int)(shadow - tail) : 3000;
	fprintf(stderr, "---- hostile_target stderr ----\n%.*s\n----\n", len < 3000 ? len : 3000, tail);
	const char *s = strstr(buf, "SUMMARY: ");
	if (s) { /* "SUMMARY: AddressSanitizer: KIND (where)": the kind, then the first frame in src/ */
		s += 9;
		const char *frame = strstr(buf, "/src/");
		int fl = frame ? (int)strcspn(frame, "\n") : 0;
		snprintf(summary, cap, "%.*s at %.*s", (int)strcspn(s, "(\n"), s, fl, frame ? frame : "");
		return;
	}
	s = strstr(buf, "runtime error:");
	if (!s)
		s = n ? tail : "(empty)";
	snprintf(summary, cap, "%.*s", (int)strcspn(s, "\n"), s);
}

static void target_stop(void)
{
	if (!tgt_running)
		return;
	if (!tgt_reaped) {
		kill(tgt.pid, SIGKILL);
		waitpid(tgt.pid, NULL, 0);
	}
	tgt_running = false;
	unlink(tgt.out);
	unlink(tgt.err);
}

/* A target and a link to it; a fresh raw controller each time the target is new (btvirt
 * would keep a dead peer's link without telling). */
static void ensure_target(void)
{
	if (!tgt_running) {
		hh_close(H);
		H = NULL;
		if (!target_start()) {
			char s[512];
			target_stderr_tail(s, sizeof s);
			fail_msg("hostile_target does not start: %s", s);
		}
	}
	if (!H) {
		H = hh_open(env->socket_path);
		if (!H)
			fail_msg("the raw host cannot open a btvirt controller");
		btvirt_deepen_queues(env->pid, 1 << 20); /* best effort: see api_util.h */
	}
	if (!H->linked && !hh_page(H, taddr, T_MS))
		fail_msg("the raw host cannot page the target %s", taddr);
}

/* --- liveness --- */

static bool l2_data_echo(void)
{
	uint16_t lcid, rcid;
	if (!hh_l2_connect(H, 0x1001, &lcid, &rcid, T_MS))
		return false;
	static const uint8_t msg[] = "hostile l2cap ping";
	uint8_t got[64];
	bool ok = hh_l2_send(H, rcid, msg, sizeof msg) &&
		  hh_wait_data(H, lcid, got, sizeof got, T_MS) == (int)sizeof msg &&
		  memcmp(got, msg, sizeof msg) == 0;
	hh_l2_disconnect(H, lcid, rcid, T_MS);
	return ok;
}

static bool sdp_finds_record(void)
{
	uint16_t lcid, rcid;
	if (!hh_l2_connect(H, 0x0001, &lcid, &rcid, T_MS))
		return false;
	int n = hh_sdp_search(H, lcid, rcid, target_uuid, T_MS);
	hh_l2_disconnect(H, lcid, rcid, T_MS);
	return n >= 1;
}

static bool rfcomm_exchange(void)
{
	static const uint8_t msg[] = "hostile rfcomm ping";
	bool ok = hh_rfc_session(H, T_MS) && hh_rfc_open_dlc(H, 2, 127, T_MS) &&
		  hh_rfc_echo(H, 2, msg, sizeof msg, T_MS) && hh_rfc_close_dlc(H, 2, T_MS);
	hh_rfc_end(H, T_MS);
	return ok;
}

/* An Echo Request, repeated every 250 ms for up to T_MS while the target lives: a crashing
 * target (a sanitizer report takes a while to write) is seen as soon as it is gone. */
static bool echo_or_death(void)
{
	uint64_t end = now_ms() + T_MS;
	char why[128];
	while (now_ms() < end) {
		if (hh_echo(H, 250))
			return true;
		if (target_dead(why, sizeof why))
			return false;
	}
	return false;
}

/* Whether the target still serves; else why not. */
static bool alive(char *why, size_t cap)
{
	if (target_dead(why, cap))
		return false;
	hh_flush(H);
	H->auto_conf = true;
	const char *step = NULL;
	if (!H->linked && !hh_page(H, taddr, T_MS))
		step = "cannot page it again";
	else if (!echo_or_death())
		step = "no L2CAP Echo Response";
	else if (!l2_data_echo())
		step = "no echo on L2CAP PSM 0x1001";
	else if (!sdp_finds_record())
		step = "SDP ServiceSearch does not find the record";
	else if (!rfcomm_exchange())
		step = "no RFCOMM exchange on channel 1";
	if (!step)
		return true;
	if (!target_dead(why, cap))
		snprintf(why, cap, "target alive but %s (last L2CAP connect result %d)", step,
			 H->last_conn_result);
	return false;
}

/* --- cases and families --- */

typedef struct {
	const char *family;
	char name[160];
	int cases, failed;
	char report[8192];
	size_t rlen;
	uint64_t start;
} family;

static void family_begin(family *f, const char *name)
{
	memset(f, 0, sizeof *f);
	f->family = name;
	f->start = now_ms();
}

static void case_begin(family *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->name, sizeof f->name, fmt, ap);
	va_end(ap);
	ensure_target();
	hh_flush(H);
	H->auto_conf = true;
	f->cases++;
}

/* Checks the target after a case; a failure is recorded and the target restarted. */
static bool case_end(family *f)
{
	char why[256], summary[512] = "";
	if (alive(why, sizeof why))
		return true;
	f->failed++;
	fprintf(stderr, "HOSTILE CASE FAILED [%s] %s: %s\n", f->family, f->name, why);
	target_stderr_tail(summary, sizeof summary);
	int k = snprintf(f->report + f->rlen, sizeof f->report - f->rlen, "  %s: %s; stderr: %.200s\n",
			 f->name, why, summary);
	if (k > 0 && f->rlen + (size_t)k < sizeof f->report)
		f->rlen += (size_t)k;
	target_stop();
	hh_close(H);
	H = NULL;
	return false;
}

/* A case after which the target is alive and well, but that did not get what it asked for. */
static void note_failure(family *f, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "HOSTILE CASE FAILED [%s] %s\n", f->family, line);
	f->failed++;
	int k = snprintf(f->report + f->rlen, sizeof f->report - f->rlen, "  %s\n", line);
	if (k > 0 && f->rlen + (size_t)k < sizeof f->report)
		f->rlen += (size_t)k;
}

static void family_end(family *f)
{
	fprintf(stderr, "[%s] %d cases, %d failed, %.1f s\n", f->family, f->cases, f->failed,
		(double)(now_ms() - f->start) / 1000.0);
	if (f->failed) {
		fprintf(stderr, "[%s] %d of %d cases failed:\n%s", f->family, f->failed, f->cases, f->report);
		fail_msg("[%s] %d of %d cases failed (listed above)", f->family, f->failed, f->cases);
	}
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* Best-effort cleanup after a case: nothing here is checked. */
static void drop_channel(uint16_t lcid, uint16_t rcid)
{
	if (H->linked)
		hh_l2_disconnect(H, lcid, rcid, SHORT_MS);
}

/* Starts a fresh link, dropping whatever state the last cases left on the target. */
static void relink(void)
{
	hh_unpage(H, T_MS);
	if (!hh_page(H, taddr, T_MS))
		fail_msg("cannot page the target again");
}

/* --- family 1: every signalling command with zero, short, long and maximal lengths --- */

/* The data length each command code has on BR/EDR (Vol 3 Part A 4.1-4.x; LE and credit-based
 * codes included: they are invalid here and must be rejected, not parsed). */
static const struct { uint8_t code; uint16_t len; } sig_codes[] = {
	{ 0x00, 4 }, { 0x01, 2 }, { 0x02, 4 }, { 0x03, 8 }, { 0x04, 4 }, { 0x05, 6 },
	{ 0x06, 4 }, { 0x07, 4 }, { 0x08, 0 }, { 0x09, 0 }, { 0x0a, 2 }, { 0x0b, 4 },
	{ 0x0c, 5 }, { 0x0d, 8 }, { 0x0e, 3 }, { 0x0f, 4 }, { 0x10, 4 }, { 0x11, 2 },
	{ 0x12, 8 }, { 0x13, 2 }, { 0x14, 10 }, { 0x15, 10 }, { 0x16, 4 }, { 0x17, 10 },
	{ 0x18, 10 }, { 0x19, 6 }, { 0x1a, 2 }, { 0xff, 4 },
};

enum { V_ZERO, V_SHORT, V_LONG, V_MAX_CLAIM, V_MAX_REAL, V_TRUNCATED, V_COUNT };
static const char *const variant_names[] = { "zero length", "short (nominal-1)", "long (nominal+13)",
	"length field 0xFFFF, 40 bytes sent", "1000 bytes (past the signalling MTU)",
	"nominal length field, PDU cut 2 bytes short" };

/* Whether the spec requires a Command Reject (Vol 3 Part A 4.1: "command not understood") for
 * this variant: an unknown code, or a request too short to be understood. Returns its ident. */
static bool reject_required(uint8_t code, uint16_t nominal, int v)
{
	bool known = code >= 0x01 && code <= 0x0b;
	bool request = code == 0x02 || code == 0x04 || code == 0x06 || code == 0x0a;
	if (!known)
		return v == V_ZERO || v == V_SHORT || v == V_LONG;
	return request && nominal > 0 && (v == V_ZERO || v == V_SHORT);
}

static uint8_t send_sig_variant(uint8_t code, uint16_t nominal, int v)
{
	static uint8_t d[1000];
	memset(d, v == V_MAX_CLAIM || v == V_MAX_REAL ? 0xff : 0x01, sizeof d);
	uint8_t id = hh_ident(H);
	switch (v) {
	case V_ZERO: hh_sig(H, code, id, NULL, 0); break;
	case V_SHORT: hh_sig(H, code, id, d, nominal ? nominal - 1u : 0); break;
	case V_LONG: hh_sig(H, code, id, d, nominal + 13u); break;
	case V_MAX_CLAIM: hh_sig_len(H, code, id, 0xffff, d, 40); break;
	case V_MAX_REAL: hh_sig(H, code, id, d, sizeof d); break;
	case V_TRUNCATED: hh_sig_len(H, code, id, nominal, d, nominal >= 2 ? nominal - 2u : 0); break;
	}
	return id;
}

/* Several commands in one C-frame: n well-formed echo requests, then one cut short. */
static void send_sig_batch(int n)
{
	uint8_t pdu[1024];
	size_t len = 0;
	for (int i = 0; i < n && len + 8 < sizeof pdu - 8; i++) {
		pdu[len] = 0x08;
		pdu[len + 1] = hh_ident(H);
		put16(pdu + len + 2, 4);
		memcpy(pdu + len + 4, "ping", 4);
		len += 8;
	}
	pdu[len] = 0x02;
	pdu[len + 1] = hh_ident(H);
	put16(pdu + len + 2, 4);
	pdu[len + 4] = 0x01;
	len += 5;
	hh_l2_send(H, 0x0001, pdu, len);
	hh_pump(H, 20);
}

static void test_sig_lengths(void **state)
{
	family f;
	family_begin(&f, "signalling lengths");
	for (size_t i = 0; i < sizeof sig_codes / sizeof sig_codes[0]; i++) {
		for (int v = 0; v < V_COUNT; v++) {
			uint8_t code = sig_codes[i].code;
			case_begin(&f, "code 0x%02x, %s", code, variant_names[v]);
			uint8_t id = send_sig_variant(code, sig_codes[i].len, v);
			bool rejected = hh_wait_sig(H, 0x01, id, NULL, 0,
						    reject_required(code, sig_codes[i].len, v) ? T_MS : 20) >= 0;
			if (case_end(&f) && reject_required(code, sig_codes[i].len, v) && !rejected)
				note_failure(&f, "code 0x%02x, %s: no Command Reject", code, variant_names[v]);
		}
	}
	case_begin(&f, "100 echo requests in one C-frame, then a cut one");
	send_sig_batch(100);
	case_end(&f);
	case_begin(&f, "empty signalling PDU");
	hh_l2_send(H, 0x0001, NULL, 0);
	case_end(&f);
	case_begin(&f, "3-byte signalling PDU");
	hh_l2_send(H, 0x0001, "\x08\x01\x00", 3);
	case_end(&f);
	case_begin(&f, "identifier 0 (reserved) on an echo and a connection request");
	hh_sig(H, 0x08, 0, "x", 1);
	hh_sig(H, 0x02, 0, "\x01\x10\x40\x00", 4);
	case_end(&f);
	family_end(&f);
}

/* --- family 2: configuration --- */

typedef struct {
	uint8_t b[1200];
	size_t n;
} opts;

static void opt(opts *o, uint8_t type, uint8_t len, const uint8_t *val, size_t have)
{
	if (o->n + 2 + have > sizeof o->b)
		return;
	o->b[o->n++] = type; /* option: type, length, value (Vol 3 Part A 5) */
	o->b[o->n++] = len;
	for (size_t i = 0; i < have; i++)
		o->b[o->n++] = val ? val[i] : 0;
}

static void opt_mtu(opts *o, uint16_t mtu)
{
	uint8_t v[2];
	put16(v, mtu);
	opt(o, 0x01, 2, v, 2);
}

/* Retransmission and Flow Control (5.4): mode, TxWindow, MaxTransmit, timeouts, MPS. */
static void opt_rfc(opts *o, uint8_t mode)
{
	uint8_t v[9] = { mode, 63, 3, 0xd0, 0x07, 0xe0, 0x2e, 0xa0, 0x02 };
	opt(o, 0x04, 9, v, 9);
}

enum {
	C_RFC7, C_RFC20, C_RFC_MODES, C_MTU40, C_MTU_CONTRA, C_MTU_EDGES, C_HINT60, C_UNKNOWN1,
	C_UNKNOWN30, C_TRUNC_VALUE, C_TRUNC_HEADER, C_LEN255, C_ZERO_LENS, C_QOS, C_FCS_EFS_EWS,
	C_HUGE, C_CONT10, C_RSP_UNACCEPT_RFC7, C_RSP_UNKNOWN, C_RSP_ODD, C_COUNT
};
static const char *const conf_names[] = {
	"7 RFC options (mode 3, length 9)", "20 RFC options", "RFC modes 0,1,2,3,4,0xFF in one request",
	"40 MTU options", "MTU 48, 65535, 0 in one request", "MTU 0, 1, 47 and 65535 (separate requests)",
	"60 unknown hint options", "one unknown non-hint option", "30 unknown non-hint options",
	"MTU option whose value is cut", "option header cut after its type",
	"hint option of length 255", "every known option with length 0", "QoS option, short and long",
	"FCS, EFS and EWS options with odd values", "600 bytes of options",
	"10 requests with the continuation flag", "response: unacceptable with 7 RFC options",
	"response: unknown options, listing 30", "response: results 2..0xFFFF, with the continuation flag",
};

static void conf_options(int c, opts *o)
{
	static const uint8_t ff[255] = { [0 ... 254] = 0xff };
	memset(o, 0, sizeof *o);
	switch (c) {
	case C_RFC7: case C_RSP_UNACCEPT_RFC7: for (int i = 0; i < 7; i++) opt_rfc(o, 3); break;
	case C_RFC20: for (int i = 0; i < 20; i++) opt_rfc(o, 3); break;
	case C_RFC_MODES: for (int m = 0; m < 6; m++) opt_rfc(o, (uint8_t)(m == 5 ? 0xff : m)); break;
	case C_MTU40: for (int i = 0; i < 40; i++) opt_mtu(o, (uint16_t)(48 + i * 97)); break;
	case C_MTU_CONTRA: opt_mtu(o, 48); opt_mtu(o, 65535); opt_mtu(o, 0); break;
	case C_HINT60: for (int i = 0; i < 60; i++) opt(o, (uint8_t)(0x80 | (0x08 + i)), 4, ff, 4); break;
	case C_UNKNOWN1: opt(o, 0x0b, 3, ff, 3); break;
	case C_UNKNOWN30: case C_RSP_UNKNOWN:
		for (int i = 0; i < 30; i++) opt(o, (uint8_t)(0x08 + i), 16, ff, 16);
		break;
	case C_TRUNC_VALUE: opt_mtu(o, 672); opt(o, 0x01, 2, ff, 1); break;
	case C_TRUNC_HEADER: opt_mtu(o, 672); o->b[o->n++] = 0x04; break;
	case C_LEN255: opt(o, 0x80 | 0x30, 255, ff, 255); break;
	case C_ZERO_LENS: for (uint8_t t = 1; t <= 7; t++) opt(o, t, 0, NULL, 0); break;
	case C_QOS: opt(o, 0x03, 22, ff, 22); opt(o, 0x03, 3, ff, 3); opt(o, 0x03, 40, ff, 40); break;
	case C_FCS_EFS_EWS:
		opt(o, 0x05, 1, ff, 1); opt(o, 0x06, 16, ff, 16); opt(o, 0x07, 2, ff, 2);
		opt(o, 0x05, 5, ff, 5); opt(o, 0x06, 2, ff, 2);
		break;
	case C_HUGE: case C_CONT10: for (int i = 0; i < (c == C_HUGE ? 150 : 20); i++) opt_mtu(o, 672); break;
	default: break;
	}
}

static void send_conf_case(int c, uint16_t rcid, uint8_t peer_ident)
{
	opts o;
	conf_options(c, &o);
	uint8_t req[1300];
	if (c == C_MTU_EDGES) {
		static const uint16_t mtus[] = { 0, 1, 47, 65535 };
		for (size_t i = 0; i < 4; i++) {
			conf_options(-1, &o);
			opt_mtu(&o, mtus[i]);
			hh_l2_config(H, rcid, 0, o.b, o.n, SHORT_MS);
		}
		return;
	}
	if (c >= C_RSP_UNACCEPT_RFC7) { /* Configuration Response: SCID, flags, result, options (4.5) */
		static const uint16_t results[] = { 1, 3, 2, 4, 5, 0xffff };
		int first = c == C_RSP_UNACCEPT_RFC7 ? 0 : c == C_RSP_UNKNOWN ? 1 : 2;
		int last = c == C_RSP_ODD ? 5 : first;
		for (int r = first; r <= last; r++) {
			put16(req, rcid);
			put16(req + 2, c == C_RSP_ODD ? 1 : 0);
			put16(req + 4, results[r]);
			memcpy(req + 6, o.b, o.n);
			hh_sig(H, 0x05, r == first ? peer_ident : hh_ident(H), req, 6 + o.n);
		}
		hh_pump(H, 20);
		return;
	}
	int times = c == C_CONT10 ? 10 : 1;
	for (int i = 0; i < times; i++) {
		put16(req, rcid);
		put16(req + 2, c == C_CONT10 ? 1 : 0); /* flags: continuation (4.4) */
		memcpy(req + 4, o.b, o.n);
		hh_sig(H, 0x04, hh_ident(H), req, 4 + o.n);
		hh_wait_sig(H, 0x05, 0, NULL, 0, SHORT_MS);
	}
}

/* A channel in CONFIG (connected, no Configuration Request of ours yet, the target's one
 * unanswered: its ident in *peer_ident) or OPEN (configured both ways). */
static bool conf_channel(uint16_t psm, bool open, uint16_t *lcid, uint16_t *rcid, uint8_t *peer_ident)
{
	*peer_ident = 0;
	if (open)
		return hh_l2_connect(H, psm, lcid, rcid, T_MS);
	*lcid = hh_new_cid(H);
	if (hh_l2_conn_req(H, psm, *lcid, rcid, T_MS) != 0)
		return false;
	uint8_t c[64];
	if (hh_wait_sig(H, 0x04, 0, c, sizeof c, SHORT_MS) >= 2)
		*peer_ident = c[1];
	return true;
}

static void test_config(void **state)
{
	family f;
	family_begin(&f, "configuration");
	static const uint16_t psms[] = { 0x0001, 0x1001 };
	for (int c = 0; c < C_COUNT; c++) {
		for (size_t p = 0; p < 2; p++) {
			for (int open = 0; open < 2; open++) {
				case_begin(&f, "%s on PSM 0x%04x in %s", conf_names[c], psms[p],
					   open ? "OPEN" : "CONFIG");
				uint16_t lcid, rcid;
				uint8_t peer_ident;
				if (!conf_channel(psms[p], open, &lcid, &rcid, &peer_ident)) {
					case_end(&f); /* the connect itself failed: liveness says why */
					continue;
				}
				send_conf_case(c, rcid, peer_ident);
				drop_channel(lcid, rcid);
				case_end(&f);
			}
		}
	}
	family_end(&f);
}

/* --- family 3: PSM and CID edges --- */

static const uint16_t cid_edges[] = { 0x0000, 0x0001, 0x0002, 0x0040, 0xffff };

static void conn_req_case(uint16_t psm, uint16_t scid)
{
	uint16_t rcid = 0;
	int r = hh_l2_conn_req(H, psm, scid, &rcid, SHORT_MS);
	if (r == 0)
		drop_channel(scid, rcid);
}

static void disc_req_case(uint16_t dcid, uint16_t scid)
{
	uint8_t d[4];
	put16(d, dcid);
	put16(d + 2, scid);
	hh_sig(H, 0x06, hh_ident(H), d, 4);
	hh_wait_sig(H, 0x07, 0, NULL, 0, 50);
}

static void test_psm_cid_edges(void **state)
{
	family f;
	family_begin(&f, "PSM and CID edges");
	static const uint16_t psms[] = { 0x0000, 0x0001, 0x0002, 0x0003, 0x0040, 0x1001, 0xffff, 0x0100, 0x1003 };
	for (size_t p = 0; p < sizeof psms / sizeof psms[0]; p++) {
		for (size_t c = 0; c < sizeof cid_edges / sizeof cid_edges[0]; c++) {
			case_begin(&f, "Connection Request PSM 0x%04x SCID 0x%04x", psms[p], cid_edges[c]);
			conn_req_case(psms[p], cid_edges[c]);
			case_end(&f);
		}
	}
	case_begin(&f, "two Connection Requests with the same SCID");
	uint16_t scid = hh_new_cid(H), r1 = 0, r2 = 0;
	hh_l2_conn_req(H, 0x1001, scid, &r1, SHORT_MS);
	hh_l2_conn_req(H, 0x0001, scid, &r2, SHORT_MS);
	drop_channel(scid, r1);
	drop_channel(scid, r2);
	case_end(&f);
	for (size_t c = 0; c < sizeof cid_edges / sizeof cid_edges[0]; c++) {
		case_begin(&f, "Disconnection Request DCID 0x%04x and SCID 0x%04x", cid_edges[c], cid_edges[c]);
		disc_req_case(cid_edges[c], cid_edges[c]);
		disc_req_case(cid_edges[c], 0x0040);
		disc_req_case(0x0040, cid_edges[c]);
		case_end(&f);
		case_begin(&f, "Configuration Request to DCID 0x%04x", cid_edges[c]);
		hh_l2_config(H, cid_edges[c], 0, "\x01\x02\xa0\x02", 4, 50);
		case_end(&f);
	}
	case_begin(&f, "Disconnection Request for a live channel, SCID wrong");
	uint16_t lcid, rcid;
	if (hh_l2_connect(H, 0x1001, &lcid, &rcid, T_MS)) {
		disc_req_case(rcid, (uint16_t)(lcid + 1));
		drop_channel(lcid, rcid);
	}
	case_end(&f);
	static const uint16_t data_cids[] = { 0x0000, 0x0002, 0x0003, 0x0004, 0x0005, 0x0006, 0x0007,
					      0x003f, 0x0040, 0xffff };
	for (size_t c = 0; c < sizeof data_cids / sizeof data_cids[0]; c++) {
		case_begin(&f, "data to CID 0x%04x", data_cids[c]);
		hh_l2_send(H, data_cids[c], "\x01\x00hostile", 9); /* connectionless: PSM first (3.2) */
		hh_l2_send(H, data_cids[c], NULL, 0);
		case_end(&f);
	}
	static const uint16_t info_types[] = { 0x0000, 0x0001, 0x0002, 0x0003, 0x0004, 0xffff };
	for (size_t t = 0; t < sizeof info_types / sizeof info_types[0]; t++) {
		case_begin(&f, "Information Request type 0x%04x", info_types[t]);
		uint8_t d[2];
		put16(d, info_types[t]);
		hh_sig(H, 0x0a, hh_ident(H), d, 2);
		hh_wait_sig(H, 0x0b, 0, NULL, 0, SHORT_MS);
		case_end(&f);
	}
	family_end(&f);
}

/* --- family 4: SDP --- */

typedef struct {
	uint8_t b[1024];
	size_t n;
} pdu;

static void pdu_hdr(pdu *p, uint8_t id, uint16_t tid)
{
	/* PDU header (Vol 3 Part B 4.2): ID, transaction ID, parameter length (set by pdu_end) */
	p->b[0] = id;
	p->b[1] = (uint8_t)(tid >> 8);
	p->b[2] = (uint8_t)tid;
	p->n = 5;
}

static void pdu_end(pdu *p)
{
	p->b[3] = (uint8_t)((p->n - 5) >> 8);
	p->b[4] = (uint8_t)(p->n - 5);
}

static void pb(pdu *p, const void *d, size_t n)
{
	if (n > 0 && p->n + n <= sizeof p->b) {
		memcpy(p->b + p->n, d, n);
		p->n += n;
	}
}

static void pb16(pdu *p, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	pb(p, b, 2);
}

/* A pattern of one UUID128 (the target's) as a DES (3.3: 0x35 = DES, 8-bit length). */
static void pat_target(pdu *p)
{
	pb(p, "\x35\x11\x1c", 3);
	pb(p, target_uuid, 16);
}

/* AttributeIDList = DES { uint32 range lo..hi } (4.6.1) */
static void attr_range(pdu *p, uint16_t lo, uint16_t hi)
{
	uint8_t r[7] = { 0x35, 5, 0x0a, (uint8_t)(lo >> 8), (uint8_t)lo, (uint8_t)(hi >> 8), (uint8_t)hi };
	pb(p, r, 7);
}

enum {
	S_EMPTY, S_ONE, S_HDR_ONLY, S_PLEN_FFFF, S_PLEN_SHORT, S_NEST_PAST, S_NEST_DEEP, S_DES32_HUGE,
	S_PAT_EMPTY, S_UUID13, S_UUID100, S_BAD_UUID_SIZES, S_NON_UUID, S_MAXCOUNT0, S_SSA_HUGE,
	S_SA_HANDLES, S_SA_REVERSED, S_SA_RANGES100, S_SA_MAXBYTES, S_CONT_RANDOM, S_CONT_FF,
	S_CONT_MUTATED, S_CONT_OTHER_PDU, S_CONT_REPLAY_NEW_CHANNEL, S_PDU_IDS, S_PIPELINE50,
	S_ATTR_NEST_PAST, S_COUNT
};
static const char *const sdp_names[] = {
	"empty PDU", "1-byte PDU", "header only", "parameter length 0xFFFF", "parameter length short",
	"nested sequences past the end", "200 nested sequences", "DES with 32-bit length 0xFFFFFFFF",
	"empty pattern", "13 UUIDs", "100 UUIDs", "UUIDs of sizes 1, 8, 3 and 0x1D/0x1E",
	"pattern of uints and a text string past the end", "MaximumServiceRecordCount 0",
	"ServiceSearchAttribute range 0x0000-0xFFFF, 65535 bytes", "ServiceAttribute handles 0, 0xFFFFFFFF",
	"attribute range reversed", "100 attribute ranges", "MaximumAttributeByteCount 0, 1, 6",
	"continuation state of 16 random bytes", "continuation state length 0xFF past the end",
	"continuation state mutated", "continuation state on another PDU type",
	"continuation state replayed on a new channel", "PDU IDs 0, 1, 3, 5, 7, 8, 0xFF", "50 requests pipelined",
	"attribute ID list of nested sequences past the end",
};

/* A ServiceSearchAttributeRequest for the whole range with a small byte count, so the
 * answer needs continuation; the state the target returns goes to cont (length first). */
static size_t ssa_with_cont(pdu *p, uint16_t tid, const uint8_t *cont, size_t cont_len)
{
	pdu_hdr(p, 0x06, tid);
	pat_target(p);
	pb16(p, 7); /* MaximumAttributeByteCount: the smallest (4.7.1) */
	attr_range(p, 0x0000, 0xffff);
	uint8_t cl = (uint8_t)cont_len;
	pb(p, &cl, 1);
	pb(p, cont, cont_len);
	pdu_end(p);
	return p->n;
}

/* Asks and reads back the continuation state of the first answer (0 if none came). */
static size_t get_cont(uint16_t lcid, uint16_t rcid, uint8_t *cont)
{
	pdu p;
	uint8_t rsp[1024];
	ssa_with_cont(&p, 0x1234, NULL, 0);
	hh_l2_send(H, rcid, p.b, p.n);
	int n = hh_wait_data(H, lcid, rsp, sizeof rsp, T_MS);
	/* ServiceSearchAttributeResponse (4.7.2): byte count, lists, continuation state */
	if (n < 8 || rsp[0] != 0x07)
		return 0;
	size_t bc = (size_t)(rsp[5] << 8 | rsp[6]);
	if (7 + bc >= (size_t)n)
		return 0;
	size_t cl = rsp[7 + bc];
	if (cl == 0 || 8 + bc + cl > (size_t)n)
		return 0;
	memcpy(cont, rsp + 8 + bc, cl);
	fprintf(stderr, "[SDP] the target's continuation state: %zu bytes\n", cl);
	return cl;
}

static void sdp_build(int c, pdu *p, uint16_t lcid, uint16_t rcid)
{
	static const uint8_t ff[64] = { [0 ... 63] = 0xff };
	uint8_t cont[32];
	size_t cl;
	p->n = 0;
	switch (c) {
	case S_EMPTY: break;
	case S_ONE: pb(p, "\x02", 1); break;
	case S_HDR_ONLY: pdu_hdr(p, 0x02, 1); pdu_end(p); break;
	case S_PLEN_FFFF: pdu_hdr(p, 0x02, 1); pat_target(p); pb16(p, 5); pb(p, "", 1); p->b[3] = p->b[4] = 0xff; break;
	case S_PLEN_SHORT: pdu_hdr(p, 0x02, 1); pat_target(p); pb16(p, 5); pb(p, "", 1); p->b[4] = 3; break;
	case S_NEST_PAST:
		pdu_hdr(p, 0x02, 1);
		pb(p, "\x35\x40\x35\x30\x35\x20\x19\x11\x01", 9);
		pb16(p, 5);
		pb(p, "", 1);
		pdu_end(p);
		break;
	case S_NEST_DEEP:
		pdu_hdr(p, 0x02, 1);
		for (int i = 0; i < 200; i++) { /* 0x36: DES, 16-bit length */
			uint16_t l = (uint16_t)(3 * (199 - i) + 3);
			uint8_t h3[3] = { 0x36, (uint8_t)(l >> 8), (uint8_t)l };
			pb(p, h3, 3);
		}
		pb(p, "\x19\x11\x01", 3);
		pb16(p, 5);
		pb(p, "", 1);
		pdu_end(p);
		break;
	case S_DES32_HUGE: pdu_hdr(p, 0x02, 1); pb(p, "\x37\xff\xff\xff\xff\x19\x11\x01", 8); pb16(p, 5); pb(p, "", 1); pdu_end(p); break;
	case S_PAT_EMPTY: pdu_hdr(p, 0x02, 1); pb(p, "\x35\x00", 2); pb16(p, 5); pb(p, "", 1); pdu_end(p); break;
	case S_UUID13: case S_UUID100: {
		int k = c == S_UUID13 ? 13 : 100;
		pdu_hdr(p, 0x02, 1);
		uint8_t h3[3] = { 0x36, (uint8_t)((3 * k) >> 8), (uint8_t)(3 * k) };
		pb(p, h3, 3);
		for (int i = 0; i < k; i++)
			pb(p, "\x19\x11\x01", 3);
		pb16(p, 5);
		pb(p, "", 1);
		pdu_end(p);
		break;
	}
	case S_BAD_UUID_SIZES:
		pdu_hdr(p, 0x02, 1);
		pb(p, "\x35\x18\x18\x01\x1b\x01\x02\x03\x04\x05\x06\x07\x08\x1d\x05\x01\x02\x03\x04\x05\x1e\x00\x02\x01\x02", 25);
		pb16(p, 5);
		pb(p, "", 1);
		pdu_end(p);
		break;
	case S_NON_UUID: pdu_hdr(p, 0x02, 1); pb(p, "\x35\x06\x08\x01\x09\x00\x01\x25\xc8", 9); pb(p, ff, 3); pdu_end(p); break;
	case S_MAXCOUNT0: pdu_hdr(p, 0x02, 1); pat_target(p); pb16(p, 0); pb(p, "", 1); pdu_end(p); break;
	case S_SSA_HUGE: pdu_hdr(p, 0x06, 1); pat_target(p); pb16(p, 0xffff); attr_range(p, 0, 0xffff); pb(p, "", 1); pdu_end(p); break;
	case S_SA_HANDLES: /* ServiceAttributeRequest (4.6.1): handle, byte count, ID list, cont */
		pdu_hdr(p, 0x04, 1); pb(p, "\x00\x00\x00\x00", 4); pb16(p, 0xffff); attr_range(p, 0, 0xffff); pb(p, "", 1); pdu_end(p);
		hh_l2_send(H, rcid, p->b, p->n);
		pdu_hdr(p, 0x04, 2); pb(p, ff, 4); pb16(p, 0xffff); attr_range(p, 0, 0xffff); pb(p, "", 1); pdu_end(p);
		break;
	case S_SA_REVERSED: pdu_hdr(p, 0x06, 1); pat_target(p); pb16(p, 0xffff); attr_range(p, 0xffff, 0x0000); pb(p, "", 1); pdu_end(p); break;
	case S_SA_RANGES100:
		pdu_hdr(p, 0x06, 1); pat_target(p); pb16(p, 0xffff);
		pb(p, "\x36\x01\xf4", 3);
		for (int i = 0; i < 100; i++)
			pb(p, "\x0a\x00\x00\xff\xff", 5);
		pb(p, "", 1);
		pdu_end(p);
		break;
	case S_SA_MAXBYTES:
		for (uint16_t m = 0; m <= 1; m++) {
			pdu_hdr(p, 0x06, m); pat_target(p); pb16(p, m); attr_range(p, 0, 0xffff); pb(p, "", 1); pdu_end(p);
			hh_l2_send(H, rcid, p->b, p->n);
		}
		pdu_hdr(p, 0x06, 9); pat_target(p); pb16(p, 6); attr_range(p, 0, 0xffff); pb(p, "", 1); pdu_end(p);
		break;
	case S_CONT_RANDOM: ssa_with_cont(p, 2, (const uint8_t *)"\x13\x57\x9b\xdf\x02\x46\x8a\xce\x11\x22\x33\x44\x55\x66\x77\x88", 16); break;
	case S_CONT_FF:
		ssa_with_cont(p, 2, NULL, 0);
		p->b[p->n - 1] = 0xff; /* continuation length 255, nothing follows */
		pb(p, ff, 4);
		pdu_end(p);
		break;
	case S_CONT_MUTATED:
		cl = get_cont(lcid, rcid, cont);
		for (size_t i = 0; i < cl; i++)
			cont[i] ^= (uint8_t)(0x5a + i);
		ssa_with_cont(p, 3, cont, cl ? cl : 8);
		hh_l2_send(H, rcid, p->b, p->n);
		for (size_t i = 0; i < cl; i++)
			cont[i] = 0xff;
		ssa_with_cont(p, 4, cont, cl ? cl : 8);
		break;
	case S_CONT_OTHER_PDU:
		cl = get_cont(lcid, rcid, cont);
		pdu_hdr(p, 0x02, 5); pat_target(p); pb16(p, 5);
		{ uint8_t l8 = (uint8_t)cl; pb(p, &l8, 1); }
		pb(p, cont, cl);
		pdu_end(p);
		hh_l2_send(H, rcid, p->b, p->n);
		pdu_hdr(p, 0x04, 6); pb(p, "\x00\x01\x00\x00", 4); pb16(p, 7); attr_range(p, 0, 0xffff);
		{ uint8_t l8 = (uint8_t)cl; pb(p, &l8, 1); }
		pb(p, cont, cl);
		pdu_end(p);
		break;
	case S_PDU_IDS: {
		static const uint8_t ids[] = { 0x00, 0x01, 0x03, 0x05, 0x07, 0x08, 0xff };
		for (size_t i = 0; i < sizeof ids; i++) {
			pdu_hdr(p, ids[i], (uint16_t)i);
			pb(p, ff, 8);
			pdu_end(p);
			hh_l2_send(H, rcid, p->b, p->n);
		}
		p->n = 0;
		break;
	}
	case S_PIPELINE50:
		for (uint16_t i = 0; i < 50; i++) {
			pdu_hdr(p, 0x06, i); pat_target(p); pb16(p, 0xffff); attr_range(p, 0, 0xffff); pb(p, "", 1); pdu_end(p);
			hh_l2_send(H, rcid, p->b, p->n);
		}
		p->n = 0;
		break;
	case S_ATTR_NEST_PAST:
		pdu_hdr(p, 0x06, 1); pat_target(p); pb16(p, 0xffff);
		pb(p, "\x35\x30\x35\x20\x36\xff\xf0\x0a\x00\x00", 10);
		pb(p, "", 1);
		pdu_end(p);
		break;
	default: break;
	}
}

/* Requests with a whole header that the server must answer, with a response or an
 * SDP_ErrorResponse (Vol 3 Part B 4.2, 4.4.1: invalid syntax, PDU size or continuation). */
static bool sdp_answer_required(int c)
{
	switch (c) {
	case S_HDR_ONLY: case S_PLEN_FFFF: case S_PLEN_SHORT: case S_NEST_PAST: case S_NEST_DEEP:
	case S_DES32_HUGE: case S_PAT_EMPTY: case S_UUID13: case S_UUID100: case S_BAD_UUID_SIZES:
	case S_NON_UUID: case S_MAXCOUNT0: case S_SSA_HUGE: case S_SA_REVERSED: case S_SA_RANGES100:
	case S_CONT_RANDOM: case S_CONT_FF: case S_ATTR_NEST_PAST:
		return true;
	default:
		return false;
	}
}

static bool sdp_answered; /* for test_sdp */

static void sdp_case(int c)
{
	uint16_t lcid, rcid;
	if (!hh_l2_connect(H, 0x0001, &lcid, &rcid, T_MS))
		return; /* liveness will tell */
	pdu p;
	if (c == S_CONT_REPLAY_NEW_CHANNEL) {
		uint8_t cont[32];
		size_t cl = get_cont(lcid, rcid, cont);
		drop_channel(lcid, rcid);
		if (!hh_l2_connect(H, 0x0001, &lcid, &rcid, T_MS))
			return;
		ssa_with_cont(&p, 7, cont, cl);
		hh_l2_send(H, rcid, p.b, p.n);
	} else {
		sdp_build(c, &p, lcid, rcid);
		if (p.n || c == S_EMPTY)
			hh_l2_send(H, rcid, p.b, p.n);
	}
	sdp_answered = hh_wait_data(H, lcid, NULL, 0, sdp_answer_required(c) ? T_MS : SHORT_MS) >= 0;
	drop_channel(lcid, rcid);
}

static void test_sdp(void **state)
{
	family f;
	family_begin(&f, "SDP");
	for (int c = 0; c < S_COUNT; c++) {
		case_begin(&f, "%s", sdp_names[c]);
		sdp_answered = false;
		sdp_case(c);
		if (case_end(&f) && sdp_answer_required(c) && !sdp_answered)
			note_failure(&f, "%s: no answer (response or SDP_ErrorResponse)", sdp_names[c]);
	}
	family_end(&f);
}

/* --- family 5: RFCOMM --- */

enum {
	R_SABM0_BAD_FCS, R_UIH_BAD_FCS, R_PN_BAD_FCS, R_LEN_PAST, R_LEN_7FFF, R_LEN_EA_CUT, R_TINY,
	R_MUX_LEN_PAST, R_PN_N1_0, R_PN_N1_65535, R_PN_DLCI_EDGES, R_PN_LENS, R_CREDIT_255,
	R_CREDIT_65535, R_CREDIT_UNOPENED, R_DLCI_EDGES_SABM, R_DLCI_EDGES_UIH, R_DLCI_EDGES_DISC,
	R_UA_DM_UNSOLICITED, R_DISC_UNKNOWN, R_DISC_BEFORE_SESSION, R_SABM_BEFORE_SESSION,
	R_SABM_TWICE, R_DISC0_WITH_DLC, R_MSC_ODD, R_RPN_RLS_ODD, R_TEST_BIG, R_MUX_UNKNOWN,
	R_MUX_RESPONSES, R_FCON_FCOFF, R_NO_CREDIT, R_COUNT
};
static const char *const rfc_names[] = {
	"SABM on DLCI 0 with a wrong FCS", "UIH data with a wrong FCS", "PN with a wrong FCS",
	"length field past the frame", "2-byte length 0x7FFF", "length EA 0 with the frame ending",
	"frames of 0..3 bytes", "multiplexer command lengths past the frame", "PN with N1 0",
	"PN with N1 65535", "PN for DLCI 0, 1, 62, 63", "PN of 0, 7 and 20 value bytes",
	"credits past 255 (two grants of 255)", "credits past 65535 (260 grants of 255)",
	"credits for an unopened DLC and DLCI 0", "SABM on DLCI 1, 62, 63", "UIH data on DLCI 1, 62, 63",
	"DISC on DLCI 1, 62, 63", "UA and DM nobody asked for", "DISC of unknown DLCs 4, 20, 60",
	"DISC before the session", "SABM on a DLC before the session", "SABM twice on a DLC",
	"DISC of DLCI 0 with a DLC open", "MSC for unknown DLCs, of length 0, 1 and 100",
	"RPN and RLS of odd lengths", "Test command of 600 bytes", "unknown multiplexer types",
	"multiplexer responses nobody asked for", "FCon and FCoff", "UIH data beyond the credits",
};

static void rfc_dlci_edges(uint8_t ctrl, bool cr)
{
	static const uint8_t edges[] = { 1, 62, 63 };
	for (size_t i = 0; i < 3; i++)
		hh_rfc_frame(H, edges[i], cr, ctrl, -1, -1, "abc", ctrl == HH_UIH ? 3 : 0, 0);
	hh_pump(H, 20);
}

static void rfc_mux_lens(uint8_t type, const int *lens, size_t n)
{
	static const uint8_t v[128] = { [0 ... 127] = 0x0b };
	for (size_t i = 0; i < n; i++)
		hh_rfc_mux(H, type, true, v, (size_t)lens[i]);
}

static void rfc_grants(uint8_t dlci, int count)
{
	for (int i = 0; i < count; i++)
		hh_rfc_frame(H, dlci, true, HH_UIH | HH_PF, -1, 255, NULL, 0, 0);
}

static void rfc_pn(uint8_t dlci, uint16_t n1)
{
	uint8_t pn[8] = { dlci, 0xf0, 0, 0, (uint8_t)n1, (uint8_t)(n1 >> 8), 0, 7 };
	hh_rfc_mux(H, 0x20, true, pn, 8);
	hh_rfc_wait_mux(H, 0x20, false, NULL, 0, SHORT_MS);
}

/* Cases that need an open DLC 2 after the session. */
static bool rfc_needs_dlc(int c)
{
	return c == R_UIH_BAD_FCS || c == R_CREDIT_255 || c == R_CREDIT_65535 || c == R_SABM_TWICE ||
	       c == R_DISC0_WITH_DLC || c == R_NO_CREDIT;
}

static void rfc_case_body(int c)
{
	static const uint8_t big[600] = { [0 ... 599] = 0x5a };
	switch (c) {
	case R_UIH_BAD_FCS: hh_rfc_frame(H, 2, true, HH_UIH, -1, -1, "bad fcs", 7, 0x55); break;
	case R_PN_BAD_FCS: {
		uint8_t m[10] = { 0x20 << 2 | 3, 8 << 1 | 1, 4, 0xf0, 0, 0, 0x7f, 0, 0, 7 };
		hh_rfc_frame(H, 0, true, HH_UIH, -1, -1, m, 10, 0xff);
		break;
	}
	case R_LEN_PAST: hh_rfc_frame(H, 0, true, HH_UIH, 100, -1, "\x83\x11", 2, 0);
		hh_rfc_frame(H, 4, true, HH_SABM | HH_PF, 50, -1, NULL, 0, 0); break;
	case R_LEN_7FFF: hh_rfc_frame(H, 2, true, HH_UIH, 0x7fff, -1, "abcdef", 6, 0); break;
	case R_LEN_EA_CUT: /* length EA 0, its second byte missing */
		hh_l2_send(H, hh_rfc_rcid(H), "\x0b\xef\x10", 3);
		break;
	case R_TINY:
		for (size_t n = 0; n <= 3; n++)
			hh_l2_send(H, hh_rfc_rcid(H), "\x03\xef\x01", n);
		break;
	case R_MUX_LEN_PAST: {
		uint8_t m1[5] = { 0x20 << 2 | 3, 8 << 1 | 1, 2, 0xf0, 0 };         /* PN claims 8, has 3 */
		uint8_t m2[4] = { 0x38 << 2 | 3, 100 << 1 | 1, 0x0b, 0x8d };       /* MSC claims 100 */
		uint8_t m3[4] = { 0x08 << 2 | 3, 0xfe, 0xff, 0x01 };               /* Test, 2-byte length */
		hh_rfc_frame(H, 0, true, HH_UIH, -1, -1, m1, 5, 0);
		hh_rfc_frame(H, 0, true, HH_UIH, -1, -1, m2, 4, 0);
		hh_rfc_frame(H, 0, true, HH_UIH, -1, -1, m3, 4, 0);
		hh_rfc_frame(H, 0, true, HH_UIH, -1, -1, "\x83", 1, 0);
		break;
	}
	case R_PN_N1_0: /* then data anyway: the target must not divide by or trust N1 */
		if (hh_rfc_open_dlc(H, 2, 0, SHORT_MS))
			hh_rfc_echo(H, 2, (const uint8_t *)"x", 1, SHORT_MS);
		break;
	case R_PN_N1_65535:
		if (hh_rfc_open_dlc(H, 2, 65535, SHORT_MS))
			hh_rfc_echo(H, 2, big, 600, SHORT_MS);
		break;
	case R_PN_DLCI_EDGES: rfc_pn(0, 127); rfc_pn(1, 127); rfc_pn(62, 127); rfc_pn(63, 127); break;
	case R_PN_LENS: { static const int l[] = { 0, 7, 20 }; rfc_mux_lens(0x20, l, 3); break; }
	case R_CREDIT_255: rfc_grants(2, 2); break;
	case R_CREDIT_65535: rfc_grants(2, 260); break;
	case R_CREDIT_UNOPENED: rfc_grants(4, 3); rfc_grants(0, 3); rfc_grants(63, 3); break;
	case R_DLCI_EDGES_SABM: rfc_dlci_edges(HH_SABM | HH_PF, true); break;
	case R_DLCI_EDGES_UIH: rfc_dlci_edges(HH_UIH, true); break;
	case R_DLCI_EDGES_DISC: rfc_dlci_edges(HH_DISC | HH_PF, true); break;
	case R_UA_DM_UNSOLICITED:
		hh_rfc_frame(H, 0, false, HH_UA | HH_PF, -1, -1, NULL, 0, 0);
		hh_rfc_frame(H, 2, false, HH_DM | HH_PF, -1, -1, NULL, 0, 0);
		hh_rfc_frame(H, 2, false, HH_UA | HH_PF, -1, -1, NULL, 0, 0);
		break;
	case R_DISC_UNKNOWN:
		for (uint8_t d = 4; d <= 60; d = (uint8_t)(d == 4 ? 20 : d == 20 ? 60 : 61))
			hh_rfc_close_dlc(H, d, SHORT_MS);
		break;
	case R_SABM_TWICE: hh_rfc_sabm(H, 2, SHORT_MS); break;
	case R_DISC0_WITH_DLC: hh_rfc_close_dlc(H, 0, SHORT_MS); break;
	case R_MSC_ODD: {
		uint8_t m[3] = { 20 << 2 | 3, 0x8d, 0 };
		hh_rfc_mux(H, 0x38, true, m, 2);
		static const int l[] = { 0, 1, 100 };
		rfc_mux_lens(0x38, l, 3);
		break;
	}
	case R_RPN_RLS_ODD: { static const int l[] = { 0, 1, 2, 7, 8, 9, 100 };
		rfc_mux_lens(0x24, l, 7); rfc_mux_lens(0x14, l, 7); break; }
	case R_TEST_BIG: hh_rfc_mux(H, 0x08, true, big, 600); break;
	case R_MUX_UNKNOWN: { static const int l[] = { 0, 4 };
		rfc_mux_lens(0x3f, l, 2); rfc_mux_lens(0x01, l, 2); rfc_mux_lens(0x04, l, 2);
		hh_rfc_frame(H, 0, true, HH_UIH, -1, -1, "\x80\x01\x01", 3, 0); /* type EA 0 */
		break; }
	case R_MUX_RESPONSES: {
		uint8_t pn[8] = { 2, 0xe0, 0, 0, 0x7f, 0, 0, 7 };
		hh_rfc_mux(H, 0x20, false, pn, 8);
		hh_rfc_mux(H, 0x38, false, "\x0b\x8d", 2);
		hh_rfc_mux(H, 0x04, false, "\x01", 1); /* NSC */
		break; }
	case R_FCON_FCOFF: hh_rfc_mux(H, 0x18, true, NULL, 0); hh_rfc_mux(H, 0x28, true, NULL, 0);
		hh_rfc_mux(H, 0x28, true, NULL, 0); hh_rfc_mux(H, 0x18, true, NULL, 0); break;
	case R_NO_CREDIT:
		for (int i = 0; i < 40; i++)
			hh_rfc_frame(H, 2, true, HH_UIH, -1, -1, "nocredit", 8, 0);
		break;
	default: break;
	}
	hh_pump(H, 20);
}

/* Cases after which DLC 2 must still carry data as before: the wrong-FCS frame discarded
 * (TS 07.10 5.2.1.6), not echoed; credits and a repeated SABM changing nothing. */
static bool rfc_dlc_checked(int c)
{
	return c == R_UIH_BAD_FCS || c == R_CREDIT_255 || c == R_CREDIT_65535 || c == R_SABM_TWICE;
}

static bool rfc_dlc_ok; /* the check's outcome, for test_rfcomm */

static void rfc_case(int c)
{
	if (c == R_SABM0_BAD_FCS || c == R_DISC_BEFORE_SESSION || c == R_SABM_BEFORE_SESSION) {
		uint16_t lcid, rcid;
		if (!hh_l2_connect(H, 0x0003, &lcid, &rcid, T_MS))
			return;
		H->rfc_lcid = lcid;
		if (c == R_SABM0_BAD_FCS) {
			hh_rfc_frame(H, 0, true, HH_SABM | HH_PF, -1, -1, NULL, 0, 0x01);
			hh_rfc_wait(H, 0, 0xff, NULL, 0, SHORT_MS);
		} else {
			hh_rfc_frame(H, c == R_DISC_BEFORE_SESSION ? 0 : 2, true,
				     (c == R_DISC_BEFORE_SESSION ? HH_DISC : HH_SABM) | HH_PF, -1, -1, NULL, 0, 0);
			hh_rfc_wait(H, c == R_DISC_BEFORE_SESSION ? 0 : 2, 0xff, NULL, 0, SHORT_MS);
		}
		drop_channel(lcid, rcid);
		H->rfc_lcid = 0;
		return;
	}
	if (!hh_rfc_session(H, T_MS))
		return;
	if (rfc_needs_dlc(c) && !hh_rfc_open_dlc(H, 2, 127, T_MS)) {
		hh_rfc_end(H, SHORT_MS);
		return;
	}
	rfc_case_body(c);
	if (rfc_dlc_checked(c)) {
		static const uint8_t msg[] = "after the case";
		rfc_dlc_ok = hh_rfc_echo(H, 2, msg, sizeof msg, T_MS);
	}
	hh_rfc_end(H, SHORT_MS);
}

static void test_rfcomm(void **state)
{
	family f;
	family_begin(&f, "RFCOMM");
	for (int c = 0; c < R_COUNT; c++) {
		case_begin(&f, "%s", rfc_names[c]);
		rfc_dlc_ok = true;
		rfc_case(c);
		if (case_end(&f) && !rfc_dlc_ok)
			note_failure(&f, "%s: DLC 2 did not echo exactly what was sent after it", rfc_names[c]);
	}
	family_end(&f);
}

/* --- family 6: floods --- */

/* Returns how many requests got a Connection Response or a Command Reject. Each one waits
 * for its answer before the next goes (a target may drop answers to a peer that floods it
 * faster than its link drains: that is defence, not a finding), so every channel is made. */
static int flood_conn_reqs(int n)
{
	static const uint16_t psms[] = { 0x0001, 0x1001, 0x0003, 0x1001, 0x0000, 0x1003, 0xffff, 0x0002 };
	uint8_t d[4];
	int answered = 0;
	for (int i = 0; i < n; i++) {
		put16(d, psms[i % 8]);
		put16(d + 2, hh_new_cid(H));
		uint8_t id = hh_ident(H);
		if (!hh_sig(H, 0x02, id, d, 4))
			break;
		if (hh_wait_sig(H, 0x03, id, NULL, 0, T_MS) >= 0 || hh_wait_sig(H, 0x01, id, NULL, 0, 0) >= 0)
			answered++;
		if (H->q_count > HH_QUEUE / 2)
			hh_flush(H);
	}
	hh_flush(H);
	return answered;
}

/* Returns the cycle that failed, or -1; what went wrong in what. */
static int flood_dlc_cycles(int n, char *what, size_t cap)
{
	if (!hh_rfc_session(H, T_MS))
		return 0;
	int failed = -1;
	int refused = 0;
	for (int i = 0; i < n && failed < 0; i++) {
		/* a DM (refusal: the listener's backlog may be full while the target's accept
		 * thread lags) is an answer; the SABM is repeated for up to 2 s */
		bool up = hh_rfc_sabm(H, 2, T_MS);
		for (int k = 0; !up && H->last_ctrl == HH_DM && k < 100; k++) {
			refused++;
			hh_pump(H, 20);
			up = hh_rfc_sabm(H, 2, T_MS);
		}
		const char *step = !up ? "SABM" : !hh_rfc_close_dlc(H, 2, T_MS) ? "DISC" : NULL;
		if (step) {
			failed = i;
			snprintf(what, cap, "%s answered by %s", step,
				 H->last_ctrl == HH_DM ? "DM for 2 s" : H->last_ctrl == 0 ? "nothing" : "UA");
		}
		if (H->q_count > HH_QUEUE / 2)
			hh_flush(H);
	}
	hh_rfc_end(H, SHORT_MS);
	fprintf(stderr, "[floods] DLC cycles: %d of %d done, %d SABMs refused with DM on the way\n",
		failed < 0 ? n : failed, n, refused);
	return failed;
}

static int flood_msc(int n)
{
	if (!hh_rfc_session(H, T_MS) || !hh_rfc_open_dlc(H, 2, 127, T_MS))
		return -1;
	/* each MSC waits for its response (TS 07.10 5.4.6.3.7), as the connection flood does */
	uint8_t msc[2] = { 2 << 2 | 3, 0x8d };
	int answered = 0;
	for (int i = 0; i < n; i++) {
		if (!hh_rfc_mux(H, 0x38, true, msc, 2))
			break;
		if (hh_rfc_wait_mux(H, 0x38, false, NULL, 0, T_MS) >= 0)
			answered++;
		if (H->q_count > HH_QUEUE / 2)
			hh_flush(H);
	}
	hh_rfc_end(H, SHORT_MS);
	return answered;
}

static void test_floods(void **state)
{
	family f;
	family_begin(&f, "floods");
	case_begin(&f, "500 Connection Requests (PSM 1, 3, 0x1001, invalid) never closed");
	int answers = flood_conn_reqs(500);
	fprintf(stderr, "[floods] 500 Connection Requests: %d answered\n", answers);
	char why[256];
	if (answers < 500)
		note_failure(&f, "500 Connection Requests: only %d answered", answers);
	if (!alive(why, sizeof why) && !tgt_reaped) {
		/* alive, yet not serving this link: says whether a fresh link is served */
		relink();
		char why2[256];
		bool fresh = alive(why2, sizeof why2);
		note_failure(&f, "500 Connection Requests: on the same link, %s; on a fresh link, %s",
			     why, fresh ? "everything answers" : why2);
	}
	if (!case_end(&f) || !H)
		ensure_target();
	relink();
	case_begin(&f, "1000 DLC open/close cycles");
	char what[64] = "";
	int bad = flood_dlc_cycles(1000, what, sizeof what);
	if (case_end(&f) && bad >= 0)
		note_failure(&f, "1000 DLC open/close cycles: cycle %d: %s", bad, what);
	case_begin(&f, "500 MSC commands");
	int answered = flood_msc(500);
	fprintf(stderr, "[floods] 500 MSC commands: %d answered\n", answered);
	if (case_end(&f) && answered < 500)
		note_failure(&f, "500 MSC commands: %d answered", answered);
	family_end(&f);
}

static int group_setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	env = btvirt_start();
	return 0;
}

static int group_teardown(void **state)
{
	target_stop();
	hh_close(H);
	btvirt_stop(env);
	return 0;
}

/* The baseline: an untouched target passes the liveness check (else every case would fail
 * for a reason of the harness's own). */
static void test_baseline(void **state)
{
	family f;
	family_begin(&f, "baseline");
	case_begin(&f, "no hostile traffic");
	case_end(&f);
	family_end(&f);
	/* and the check can fail: a stopped target is found silent, a killed one dead */
	char why[256];
	kill(tgt.pid, SIGSTOP);
	bool answered = alive(why, sizeof why);
	kill(tgt.pid, SIGCONT);
	assert_false(answered);
	fprintf(stderr, "[baseline] a stopped target: %s\n", why);
	kill(tgt.pid, SIGKILL);
	assert_false(alive(why, sizeof why));
	fprintf(stderr, "[baseline] a killed target: %s\n", why);
	assert_non_null(strstr(why, "died by signal 9"));
	target_stop();
	hh_close(H);
	H = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_baseline),
		cmocka_unit_test(test_sig_lengths),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_psm_cid_edges),
		cmocka_unit_test(test_sdp),
		cmocka_unit_test(test_rfcomm),
		cmocka_unit_test(test_floods),
	};
	return cmocka_run_group_tests_name("hostile_peer_over_btvirt", tests, group_setup, group_teardown);
}
