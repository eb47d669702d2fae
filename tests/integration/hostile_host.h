/* hostile_host.h - a raw Bluetooth host for the hostile-peer tests (tests/integration/
 * it_hostile.c): its own H4/HCI/L2CAP/SDP/RFCOMM code, independent of btsock's src/, on one
 * btvirt controller. It pages one peer and can send it well-formed traffic (to check that the
 * peer still answers) and any malformed traffic (raw signalling commands, raw L2CAP PDUs, raw
 * RFCOMM frames with a right or wrong FCS).
 *
 * Single-threaded: every wait pumps the controller socket (btvirt drops ACL data that is not
 * read in time), answers the peer's own requests (echo, information, configuration,
 * disconnection, RFCOMM MSC) and queues what arrives; every wait has a timeout. */
#ifndef BTSOCK_TEST_HOSTILE_HOST_H
#define BTSOCK_TEST_HOSTILE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HH_QUEUE 1024   /* received PDUs kept (the oldest go first) */
#define HH_CHANS 32     /* L2CAP channels opened with hh_l2_connect */

typedef struct {
	uint16_t cid;   /* 1: one signalling command (header included); else the L2CAP payload */
	uint16_t len;
	uint8_t *data;
} hh_pdu;

typedef struct {
	uint16_t lcid, rcid;
	bool in_conf;   /* the peer's Configuration Request answered */
	bool open;
} hh_chan;

typedef struct hh {
	int fd;
	uint8_t addr[6];            /* our BD_ADDR, little-endian as on the wire */
	uint16_t acl_mtu, acl_max, acl_free; /* ACL buffers: how many, how many free */
	bool linked;
	uint16_t handle;
	uint8_t disc_reason;
	/* H4 input */
	uint8_t in[8192];
	size_t in_len;
	/* the last Command Complete / Status */
	uint16_t cc_opcode;
	bool cc_seen;
	uint8_t cc_status;
	uint8_t cc_params[32];
	uint8_t conn_status;        /* of the last Connection Complete */
	bool conn_done;
	/* L2CAP reassembly (Vol 3 Part A 3.1) */
	uint8_t frag[70000];
	size_t frag_len, frag_need;
	hh_pdu q[HH_QUEUE];
	size_t q_head, q_count;
	/* answers made while parsing input, sent once parsing is done (no re-entry) */
	hh_pdu out[256];
	size_t out_count;
	bool flushing;
	uint8_t ident;
	uint16_t next_cid;
	hh_chan ch[HH_CHANS];
	bool auto_conf;             /* answer the peer's Configuration Requests (default true) */
	/* the RFCOMM session (one per link) */
	uint16_t rfc_lcid;          /* 0: none */
	uint32_t rfc_credits[64];   /* frames we may still send per DLCI */
	unsigned msc_answered;
	uint8_t last_ctrl;          /* control field of the frame hh_rfc_wait returned last */
	unsigned long sig_rx[256];  /* signalling commands received, per code */
	int last_conn_result;       /* of the last hh_l2_conn_req: result, 0x100 rejected, -1 none */
	unsigned long rx_bad_fcs;
} hh;

/* --- HCI (Core Vol 4 Part E) --- */
/* Connects to the btvirt socket and resets / reads the new controller. NULL on failure. */
hh *hh_open(const char *socket_path);
void hh_close(hh *h);
/* Reads and handles what arrives within ms (0: only what is there). false: socket closed. */
bool hh_pump(hh *h, int ms);
/* Sends an HCI command and waits for its Command Complete/Status; the status or -1. */
int hh_cmd(hh *h, uint16_t opcode, const void *params, uint8_t len, int timeout_ms);
/* Pages addr ("01:23:45:67:89:AB"); true once connected. */
bool hh_page(hh *h, const char *addr, int timeout_ms);
/* Disconnects the link and waits for Disconnection Complete. */
void hh_unpage(hh *h, int timeout_ms);
/* One ACL packet as is (pb: packet boundary flag, 2 = first, 1 = continuing), after waiting
 * for a free controller buffer. */
bool hh_acl_raw(hh *h, uint8_t pb, const void *data, size_t len, int timeout_ms);

/* --- L2CAP (Core Vol 3 Part A) --- */
/* A B-frame to cid, fragmented to the ACL MTU. */
bool hh_l2_send(hh *h, uint16_t cid, const void *data, size_t len);
/* A signalling command with a length field that tells the truth, or any length field. */
bool hh_sig(hh *h, uint8_t code, uint8_t ident, const void *data, size_t len);
bool hh_sig_len(hh *h, uint8_t code, uint8_t ident, uint16_t len_field, const void *data, size_t len);
uint8_t hh_ident(hh *h);
uint16_t hh_new_cid(hh *h);
/* Waits for a signalling command with this code (and ident, unless 0); copies it (header
 * included) to out. Returns its length or -1 on timeout. */
int hh_wait_sig(hh *h, uint8_t code, uint8_t ident, uint8_t *out, size_t cap, int timeout_ms);
/* Waits for a PDU on cid; returns its length or -1. */
int hh_wait_data(hh *h, uint16_t cid, uint8_t *out, size_t cap, int timeout_ms);
/* Sends a Connection Request and waits for the final Connection Response: its result (and
 * the peer's CID in *rcid), or -1 on timeout. */
int hh_l2_conn_req(hh *h, uint16_t psm, uint16_t lcid, uint16_t *rcid, int timeout_ms);
/* A whole channel to psm (connect, configure both ways); false on any failure. */
bool hh_l2_connect(hh *h, uint16_t psm, uint16_t *lcid, uint16_t *rcid, int timeout_ms);
/* Sends a Configuration Request with these options and waits for the response: its result
 * or -1. */
int hh_l2_config(hh *h, uint16_t rcid, uint16_t flags, const void *opts, size_t len, int timeout_ms);
bool hh_l2_disconnect(hh *h, uint16_t lcid, uint16_t rcid, int timeout_ms);
/* Echo Request / Response (Vol 3 Part A 4.8). */
bool hh_echo(hh *h, int timeout_ms);
/* Drops every queued PDU. */
void hh_flush(hh *h);

/* --- SDP (Core Vol 3 Part B) --- */
/* ServiceSearchRequest for a 128-bit UUID (16 bytes, big-endian) on an open channel: the
 * number of handles in the answer, or -1. */
int hh_sdp_search(hh *h, uint16_t lcid, uint16_t rcid, const uint8_t uuid[16], int timeout_ms);

/* --- RFCOMM (RFCOMM spec 1.1 / TS 07.10) --- */
#define HH_SABM 0x2f
#define HH_UA 0x63
#define HH_DM 0x0f
#define HH_DISC 0x43
#define HH_UIH 0xef
#define HH_PF 0x10
uint8_t hh_fcs(const uint8_t *p, size_t n);
/* One frame on the RFCOMM channel: address from dlci and cr, control, a length field of its
 * own (len_field; -1: the true length), an optional credit byte (credits >= 0, UIH with P/F),
 * and an FCS (fcs_xor 0: correct). */
bool hh_rfc_frame(hh *h, uint8_t dlci, bool cr, uint8_t ctrl, int len_field, int credits,
		  const void *info, size_t len, uint8_t fcs_xor);
/* A multiplexer command on DLCI 0 (TS 07.10 5.4.6): type, C/R (command), value bytes. */
bool hh_rfc_mux(hh *h, uint8_t type, bool command, const void *val, size_t len);
#define HH_UA_OR_DM 0xfe /* for hh_rfc_wait: the answer to SABM or DISC */
/* Waits for a frame on dlci with this control (P/F ignored; 0xff: any); its information
 * field to info (credit byte removed). Returns the information length, or -1. */
int hh_rfc_wait(hh *h, uint8_t dlci, uint8_t ctrl, uint8_t *info, size_t cap, int timeout_ms);
/* Waits for a multiplexer message of this type (TS 07.10 5.4.6.1) and C/R. */
int hh_rfc_wait_mux(hh *h, uint8_t type, bool command, uint8_t *val, size_t cap, int timeout_ms);
/* The peer's CID of the RFCOMM channel (0: none), for raw PDUs on it. */
uint16_t hh_rfc_rcid(hh *h);
/* L2CAP channel to PSM 3, SABM/UA on DLCI 0. */
bool hh_rfc_session(hh *h, int timeout_ms);
void hh_rfc_end(hh *h, int timeout_ms);
/* PN (CFC asked, n1, k credits) then SABM/UA on dlci; MSC both ways. */
bool hh_rfc_open_dlc(hh *h, uint8_t dlci, uint16_t n1, int timeout_ms);
/* SABM/UA on dlci alone (no PN, no MSC). */
bool hh_rfc_sabm(hh *h, uint8_t dlci, int timeout_ms);
bool hh_rfc_close_dlc(hh *h, uint8_t dlci, int timeout_ms);
/* Sends data on an open DLC (credits permitting, granting the peer 30 credits) and reads
 * back len bytes of echo; true if they match. */
bool hh_rfc_echo(hh *h, uint8_t dlci, const uint8_t *data, size_t len, int timeout_ms);

#endif
