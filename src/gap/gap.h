/* gap.h - the Generic Access Profile parts of one stack (Core spec Vol 3 Part C, over the HCI
 * commands of Vol 4 Part E 7.1/7.3): device discovery (inquiry), remote name requests, the
 * local name / class of device / scan enable, and the replies that let a peer pair with us
 * (Secure Simple Pairing with an agent for the user, an in-memory link key table, legacy PINs),
 * and pairing on our initiative (gap_pair, bonds).
 *
 * The stack passes every HCI event HCI does not consume to gap_event(). Pure helpers decode
 * Class of Device values and Extended Inquiry Response data. */
#ifndef BTSOCK_GAP_H
#define BTSOCK_GAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bt_addr.h"
#include "core/timer.h"
#include "hci/hci.h"

typedef struct gap gap;

gap *gap_new(hci *h, bt_timers *timers);
void gap_free(gap *g);
/* An HCI event (code, parameters after the length byte). Unknown ones are ignored. */
void gap_event(gap *g, uint8_t code, const uint8_t *params, size_t len);

/* ------------------------------------------------------------------ inquiry */

#define GAP_NAME_MAX 248 /* Vol 4 Part E 7.3.11: 248 octets of UTF-8 */
#define GAP_LAP_GIAC 0x9e8b33 /* General Inquiry Access Code (Assigned Numbers) */

typedef struct {
	bt_addr addr;
	uint32_t cod;             /* Class of Device (24 bits) */
	uint8_t pscan_rep_mode;
	uint16_t clock_offset;    /* as reported (bits 0-14) */
	bool has_rssi;
	int8_t rssi;
	bool has_name;            /* a name came in the Extended Inquiry Response */
	bool name_complete;       /* EIR type 0x09 rather than 0x08 (shortened) */
	char name[GAP_NAME_MAX + 1];
} gap_device;

typedef struct {
	/* Once per device per inquiry (duplicates are dropped). */
	void (*device)(void *ctx, const gap_device *d);
	/* The inquiry ended: 0, -ECANCELED (gap_inquiry_cancel), -ETIMEDOUT (no Inquiry
	 * Complete), or the controller's error. */
	void (*done)(void *ctx, int err);
} gap_inquiry_ops;

/* Starts an inquiry for length * 1.28 s (1-48, Vol 4 Part E 7.1.1), stopping after
 * max_responses devices (0: no limit). 0, -EBUSY (one is running), -EINVAL or -ENOBUFS. */
int gap_inquiry_start(gap *g, uint8_t length, uint8_t max_responses, const gap_inquiry_ops *ops,
		      void *ctx);
/* Stops a running inquiry: done(-ECANCELED) follows at once. -EALREADY if none runs. */
int gap_inquiry_cancel(gap *g);
bool gap_inquiry_active(const gap *g);

/* ------------------------------------------------------------------ remote names */

typedef struct gap_name_req gap_name_req;
/* err 0 and the name, or -ETIMEDOUT / the controller's error (name ""). */
typedef void (*gap_name_cb)(void *ctx, int err, const bt_addr *peer, const char *name);

/* Asks peer for its name (Vol 4 Part E 7.1.19), with the page scan repetition mode and clock
 * offset from the latest inquiry result when known. Requests are sent one at a time. 0 and
 * *out (may be NULL), or -errno. */
int gap_remote_name(gap *g, const bt_addr *peer, uint32_t timeout_ms, gap_name_cb cb, void *ctx,
		    gap_name_req **out);
/* Drops a request without calling back (not from inside its callback). */
void gap_remote_name_cancel(gap *g, gap_name_req *r);

/* ------------------------------------------------------------------ local settings */

/* Write_Local_Name (7.3.11) and an Extended Inquiry Response carrying the name (7.3.56), so
 * that inquiring peers see it without a name request. cb gets Write_Local_Name's status. */
int gap_write_local_name(gap *g, const char *name, hci_cmd_cb cb, void *ctx);
/* Write_Class_Of_Device (7.3.26). */
int gap_write_class_of_device(gap *g, uint32_t cod, hci_cmd_cb cb, void *ctx);
/* Write_Scan_Enable (7.3.18): discoverable (inquiry scan) and connectable (page scan). */
int gap_write_scan_enable(gap *g, bool inquiry_scan, bool page_scan, hci_cmd_cb cb, void *ctx);

/* ------------------------------------------------------------------ pairing */

/* Link keys learnt from Link_Key_Notification are kept (up to GAP_MAX_KEYS, oldest dropped)
 * and offered on Link_Key_Request, when bonding (Vol 3 Part C 4.3) was agreed: we are
 * bondable, or the peer asked Dedicated Bonding. Not bondable by default: a stack that cannot
 * keep keys across runs must not let peers bond with it (they would refuse to pair again). */
void gap_set_bondable(gap *g, bool on);
/* Called with each key kept from a Link_Key_Notification (to store it across runs). */
typedef void (*gap_key_hook)(void *ctx, const bt_addr *peer, const uint8_t key[16], uint8_t type);
void gap_set_key_hook(gap *g, gap_key_hook fn, void *ctx);
#define GAP_MAX_KEYS 32
int gap_link_key_get(const gap *g, const bt_addr *peer, uint8_t key[16]);
void gap_link_key_set(gap *g, const bt_addr *peer, const uint8_t key[16], uint8_t type);
void gap_link_key_forget(gap *g, const bt_addr *peer);

/* Forgets a key the peer or controller called missing or stale (PIN or Key Missing, 0x06). */
void gap_link_key_lost(gap *g, const bt_addr *peer);

/* The bonds in the table: up to max peers (with their key types, may be NULL) into out;
 * returns how many there are (which may exceed max). */
size_t gap_link_keys(const gap *g, bt_addr *out, uint8_t *types, size_t max);

/* Pairs with peer on our initiative (Vol 3 Part C 6.5.3 dedicated bonding when bondable):
 * pages it if no link is up, then authenticates (pairing through the agent when no key is
 * known, MITM asked if the stack requires it) and encrypts the link (hci_secure_link, key size
 * checked). The link is then left to L2CAP, which ends it once idle. done is called once:
 * 0, or -errno with an hci_sec_reason (-EACCES), -EHOSTDOWN/-ETIMEDOUT (page failed),
 * -ECONNRESET (the link went down first). 0, -EBUSY (peer is being paired already),
 * -ENOBUFS, or the error of hci_connect. */
typedef void (*gap_pair_cb)(void *ctx, const bt_addr *peer, int err, int reason);
int gap_pair(gap *g, const bt_addr *peer, gap_pair_cb done, void *ctx);
/* Drops a gap_pair() without calling back (the link is left as it is). */
void gap_pair_cancel(gap *g, const bt_addr *peer);
/* Link events, from the stack (hci_upper), for gap_pair. */
void gap_link_up(gap *g, uint16_t handle, const bt_addr *peer);
void gap_link_down(gap *g, uint16_t handle, const bt_addr *peer, int err);
void gap_connect_failed(gap *g, const bt_addr *peer, int err);
void gap_link_secured(gap *g, uint16_t handle, int err, int reason);

/* ------------------------------------------------------------------ agent (user interaction) */

/* IO capabilities, Vol 4 Part E 7.1.29. */
enum { GAP_IO_DISPLAY_ONLY = 0, GAP_IO_DISPLAY_YESNO = 1, GAP_IO_KEYBOARD_ONLY = 2,
       GAP_IO_NONE = 3, GAP_IO_KEYBOARD_DISPLAY = 4 };
/* SSP association models (Vol 2 Part F; chosen by Vol 3 Part C 5.2.2.6). */
typedef enum { GAP_JUST_WORKS, GAP_NUMERIC_COMPARISON, GAP_PASSKEY_DISPLAY, GAP_PASSKEY_ENTRY } gap_model;
/* The model for our side, from both IO capabilities and whether either side asked MITM
 * protection (without, both sides act as DisplayOnly: Just Works, 5.2.2.6). */
gap_model gap_assoc_model(uint8_t ours, uint8_t theirs, bool mitm);

/* Callbacks that need the user. Each is asynchronous: the agent answers later with the reply
 * function named; no answer within the agent timeout (default 25 s) is a negative answer. A
 * NULL member refuses that kind of request. */
typedef struct {
	/* Numeric Comparison (7.7.42): show value (6 digits), answer gap_agent_confirm. */
	void (*confirm)(void *ctx, const bt_addr *peer, uint32_t value);
	/* Passkey Entry, we display (7.7.48): no answer. */
	void (*display_passkey)(void *ctx, const bt_addr *peer, uint32_t passkey);
	/* Passkey Entry, we type (7.7.43): answer gap_agent_passkey. */
	void (*enter_passkey)(void *ctx, const bt_addr *peer);
	/* Legacy pairing (7.7.22): answer gap_agent_pin. */
	void (*pin)(void *ctx, const bt_addr *peer);
} gap_agent;
/* NULL: the default agent, which accepts Just Works only and refuses anything needing the
 * user. The table is used, not copied. */
void gap_set_agent(gap *g, const gap_agent *agent, void *ctx);
void gap_set_agent_timeout(gap *g, uint32_t ms);
/* Our IO capability (GAP_IO_*) and whether we require MITM protection (then a pairing that
 * would be Just Works is refused: its key could not be authenticated). 0 or -EINVAL. */
int gap_set_io_capability(gap *g, uint8_t io, bool mitm);
/* Answers a pending request of the agent: 0, or -ENOENT if none is pending for peer (it timed
 * out, or was never asked). */
int gap_agent_confirm(gap *g, const bt_addr *peer, bool accept);
int gap_agent_passkey(gap *g, const bt_addr *peer, bool ok, uint32_t passkey); /* 0-999999 */
int gap_agent_pin(gap *g, const bt_addr *peer, const char *pin); /* NULL: refuse; 1-16 chars */
/* A fixed PIN for peer's legacy pairing (answers PIN_Code_Request without the agent); NULL
 * removes it. 0, -EINVAL or -ENOBUFS. */
int gap_set_pin(gap *g, const bt_addr *peer, const char *pin);

/* ------------------------------------------------------------------ pure helpers */

/* Finds the first EIR structure of type in data (Vol 3 Part C 8, Core Supplement Part A 1):
 * its payload and length, or -ENOENT; -EBADMSG if the structures run past the end. */
int gap_eir_find(const uint8_t *eir, size_t len, uint8_t type, const uint8_t **data, size_t *dlen);
/* The complete (0x09) or else shortened (0x08) local name: its length (copied with a NUL,
 * truncated to cap-1) or -ENOENT. *complete tells which (may be NULL). */
int gap_eir_name(const uint8_t *eir, size_t len, char *out, size_t cap, bool *complete);
/* Builds EIR data with the complete local name (shortened if it does not fit in 240 bytes)
 * into out[240], zero padded. */
void gap_eir_build_name(const char *name, uint8_t out[240]);

/* Class of Device (Assigned Numbers, Baseband): bits 2-7 minor, 8-12 major, 13-23 service
 * classes. */
const char *gap_cod_major_str(uint32_t cod);
/* The minor class within the major one ("Laptop", "Smartphone", ...; "Uncategorized"). For
 * peripherals and imaging devices several parts are joined into buf. */
const char *gap_cod_minor_str(uint32_t cod, char *buf, size_t cap);
/* The service class bits as words joined by ", " ("" if none). Returns out. */
char *gap_cod_services_str(uint32_t cod, char *out, size_t cap);
/* "Computer (Laptop); services: Networking, Object Transfer". Returns out. */
char *gap_cod_describe(uint32_t cod, char *out, size_t cap);

#endif
