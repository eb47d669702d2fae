/* hci.h - the Host Controller Interface layer (Core spec Vol 4 Part E) of one stack.
 *
 * Owns the controller: initialisation, the command queue with Num_HCI_Command_Packets flow
 * control and a timeout per command, ACL links (create, accept, disconnect, loss detection),
 * ACL flow control against the controller's buffers (Read_Buffer_Size / Number_Of_Completed_
 * Packets), fragmentation of outgoing L2CAP PDUs and reassembly of incoming ones.
 *
 * It does no I/O: complete H4 packets go out through hci_io.send and come in through
 * hci_packet() (the transport frames them). Outgoing ACL data is *pulled*: when the controller has a free buffer and no PDU
 * is being fragmented, HCI calls upper.pull to get the next whole L2CAP PDU. No queue hides
 * in between, so backpressure reaches the producer. */
#ifndef BTSOCK_HCI_H
#define BTSOCK_HCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bt_addr.h"
#include "core/bytes.h"
#include "core/timer.h"

/* H4 packet indicators (Core spec Vol 4 Part A 2). */
enum { H4_CMD = 0x01, H4_ACL = 0x02, H4_SCO = 0x03, H4_EVT = 0x04 };

/* The largest L2CAP PDU (header included) HCI reassembles or fragments. Incoming PDUs longer
 * than this are dropped with a log line; L2CAP never offers an MTU that would exceed it. */
#define HCI_MAX_PDU (4 + 4096)

typedef struct hci hci;

typedef struct {
	void *ctx;
	/* Hand one complete H4 packet (indicator byte first) to the transport. */
	void (*send)(void *ctx, const uint8_t *pkt, size_t len);
	/* Optional: each complete H4 packet received (indicator first), e.g. for btsnoop. */
	void (*trace_in)(void *ctx, const uint8_t *pkt, size_t len);
} hci_io;

/* What HCI reports upward (to L2CAP and GAP). Every field may be NULL. */
typedef struct {
	void *ctx;
	/* Controller initialisation finished (err 0) or failed (-errno, message in hci_error()). */
	void (*ready)(void *ctx, int err);
	/* An ACL link is up. initiator: we paged. */
	void (*link_up)(void *ctx, uint16_t handle, const bt_addr *peer, bool initiator);
	/* A link went away (err: -ECONNRESET on remote disconnect/loss, 0 on local). */
	void (*link_down)(void *ctx, uint16_t handle, const bt_addr *peer, int err);
	/* An outgoing hci_connect() failed: err from hci_status_to_errno(). */
	void (*connect_failed)(void *ctx, const bt_addr *peer, int err);
	/* One reassembled L2CAP PDU (basic header included), len already checked against the
	 * PDU's own length field. */
	void (*acl)(void *ctx, uint16_t handle, const uint8_t *pdu, size_t len);
	/* Fill buf (cap bytes) with the next whole L2CAP PDU to send and set *handle; return
	 * its length, or 0 if nothing is waiting. */
	size_t (*pull)(void *ctx, uint16_t *handle, uint8_t *buf, size_t cap);
	/* Any HCI event HCI does not consume itself (for GAP: inquiry, names, pairing...). */
	void (*event)(void *ctx, uint8_t code, const uint8_t *params, size_t len);
	/* The controller is unusable (a command unanswered: -ETIMEDOUT; Hardware Error: -EIO;
	 * hci_error() says which). Then every link goes down (link_down) and every page fails
	 * (connect_failed), both with -ENETDOWN; no command is sent any more. */
	void (*fatal)(void *ctx, int err);
	/* hci_secure_link() finished: 0 (authenticated and encrypted) or -errno (-EACCES:
	 * pairing or encryption refused, -ETIMEDOUT), with why (hci_sec_reason). Not called if
	 * the link goes down first. */
	void (*link_secured)(void *ctx, uint16_t handle, int err, int reason);
	/* The peer or the controller said our stored key for peer is missing or stale
	 * (Authentication Complete / Disconnection Complete with PIN or Key Missing, 0x06): forget
	 * it. For a link we are securing, HCI then asks Authentication_Requested once more, which
	 * pairs afresh. May be NULL. */
	void (*key_missing)(void *ctx, const bt_addr *peer);
	/* The peer's host features became known (hci_link_peer_ssp no longer -EAGAIN). */
	void (*link_features)(void *ctx, uint16_t handle);
} hci_upper;

typedef struct {
	uint32_t cmd_timeout_ms;    /* a command without Command Complete/Status: fatal (default 3000) */
	uint32_t connect_timeout_ms; /* Create_Connection without Connection_Complete (default 10000) */
	uint32_t tx_stall_ms;       /* ACL data unacknowledged (no NOCP) this long: link lost (4000) */
	uint32_t security_timeout_ms; /* authentication + encryption of a link (default 30000) */
	uint8_t min_key_size;       /* encryption keys shorter end the link (default 7, 7-16) */
	uint32_t class_of_device;   /* default 0x000000 */
	const char *local_name;     /* default "btsock" */
} hci_config;

/* Called with Command Complete (status = first return parameter, ret = the rest) or with
 * Command Status (ret NULL). A command the controller never answers is not called back: the
 * stack is declared dead (upper.fatal) and every layer tears down. */
typedef void (*hci_cmd_cb)(void *ctx, uint8_t status, const uint8_t *ret, size_t len);

hci *hci_new(const hci_config *cfg, const hci_io *io, const hci_upper *upper, bt_timers *timers);
void hci_free(hci *h);

/* Starts the initialisation sequence (Reset, Read_Local_Version, ...). upper.ready follows. */
void hci_start(hci *h);
/* Feeds one complete packet received from the controller, H4 indicator first (Core spec Vol
 * 4 Part A 2): events and ACL data are used, SCO and ISO data dropped. A packet whose header
 * (Vol 4 Part E 5.4.2, 5.4.4) disagrees with len is dropped and counted (faults.malformed);
 * what its parameters say is checked where they are read. */
void hci_packet(hci *h, const uint8_t *pkt, size_t len);

/* Queues a command. opcode = OGF << 10 | OCF. cb may be NULL. 0 or -ENOBUFS. Commands are sent
 * in order as the controller's Num_HCI_Command_Packets allows. cb with status != 0 also for
 * a failing Command Status; commands answered by Command Status 0 call cb(0, NULL, 0). */
int hci_cmd(hci *h, uint16_t opcode, const void *params, uint8_t len, hci_cmd_cb cb, void *ctx);
/* The same for parameters built with a bt_writer over a buffer of the command's fixed size
 * (Vol 4 Part E 7.x). A writer that ran out of room (w->err) is a builder's bug: nothing is
 * queued and -EMSGSIZE returned, so a cut parameter block never reaches the controller. */
int hci_cmd_w(hci *h, uint16_t opcode, const bt_writer *w, hci_cmd_cb cb, void *ctx);
/* A command whose only parameter is a BD_ADDR (6 octets, Vol 4 Part E 7.1.x cancels and
 * negative replies). */
int hci_cmd_addr(hci *h, uint16_t opcode, const bt_addr *a, hci_cmd_cb cb, void *ctx);

/* Link control that must not be lost to a queue full of ordinary commands: replies to the
 * controller's requests (connection, link key, IO capability, confirmation), cancels and
 * Disconnect. Reserved queue slots beyond the ordinary ones; 0, or -ENOBUFS if even those are
 * full (counted in hci_get_faults()->cmd_dropped and named in hci_error()). No callback. */
int hci_cmd_urgent(hci *h, uint16_t opcode, const bt_writer *w);
int hci_cmd_addr_urgent(hci *h, uint16_t opcode, const bt_addr *a);

/* Pages peer. Returns 1 if a link is already up (no callback follows), 0 if paging started
 * or was already under way (upper.link_up or upper.connect_failed follows), or -errno. */
int hci_connect(hci *h, const bt_addr *peer);
/* Finds a connected link's handle; -ENOTCONN if none. */
int hci_link_handle(const hci *h, const bt_addr *peer);
/* Disconnects a link (reason 0x13, remote user terminated). link_down follows. 0, -ENOTCONN,
 * or -ENOBUFS if even the command slots reserved for link control are full (counted in
 * hci_get_faults()->cmd_dropped; the caller may retry later). */
int hci_disconnect(hci *h, uint16_t handle, uint8_t reason);
/* Authenticates the link (pairing if no key is known, Secure Simple Pairing replies come from
 * GAP) and switches encryption on: Vol 4 Part E 7.1.15 then 7.1.16, as Security Mode 4 needs
 * before most channels (Vol 3 Part C 5.2.2). Returns 1 if the link is encrypted already,
 * 0 when upper.link_secured will follow (also if a request is already under way), or -errno. */
int hci_secure_link(hci *h, uint16_t handle);
/* Why securing a link failed, for a sentence to the user (hci_sec_reason_str). */
typedef enum {
	HCI_SEC_OK = 0,
	HCI_SEC_REJECTED,           /* our agent (the user) refused the pairing */
	HCI_SEC_WRONG_PIN,          /* legacy pairing with the PIN we gave failed */
	HCI_SEC_NO_KEY,             /* no key, and pairing was not possible or not allowed */
	HCI_SEC_ENCRYPTION_REFUSED, /* Set_Connection_Encryption refused or switched off */
	HCI_SEC_KEY_TOO_SHORT,      /* encryption key below the minimum size (KNOB) */
	HCI_SEC_PEER_AUTH_FAILURE,  /* authentication failure reported by the peer */
	HCI_SEC_TIMEOUT,            /* no outcome within security_timeout_ms */
	HCI_SEC_WEAK_KEY,           /* the link key is weaker than the channel's level asks */
	HCI_SEC_WRONG_PASSKEY,      /* Passkey Entry failed: the passkey typed was not the one shown */
	HCI_SEC_NO_PIN,             /* legacy pairing asked a PIN and none was given (no agent) */
} hci_sec_reason;
const char *hci_sec_reason_str(int reason);
/* GAP's hint for the reason of a failure about to come on peer's link (it answered the
 * pairing negatively: HCI_SEC_REJECTED, or gave a PIN: HCI_SEC_WRONG_PIN if it fails). */
void hci_sec_hint(hci *h, const bt_addr *peer, int reason);
/* Whether a pairing that this host took part in on the link failed and left it unencrypted:
 * the hint GAP gave (or HCI_SEC_PEER_AUTH_FAILURE after a failed Simple Pairing Complete),
 * else 0 (none; the pairing produced a key; the link is encrypted). The responder of a
 * failed pairing often hears nothing else: with legacy pairing its controller gets no
 * Authentication Complete, and the peer's server then just refuses the channel (RFCOMM DM). */
int hci_link_pairing_failure(hci *h, uint16_t handle);
/* Whether the peer's host supports Secure Simple Pairing (features page 1 bit 0, Vol 2 Part C
 * 3.3, read with Read_Remote_Extended_Features, 7.1.22, after a Connection Complete of a link
 * we paged, else at the first call here; or told by a Remote Host Supported Features
 * Notification, 7.7.50): 1, 0 (no, or unknown after a failure or 2 s), -EAGAIN while asking
 * (upper.link_features follows), -ENOTCONN. */
int hci_link_peer_ssp(hci *h, uint16_t handle);
/* The link key type in use on the link (Vol 4 Part E 7.7.24: 4 unauthenticated, 5
 * authenticated, 7/8 Secure Connections), or -1 if not known. GAP tells it for a stored key it
 * offers; a Link_Key_Notification sets it. */
int hci_link_key_type(hci *h, uint16_t handle);
void hci_note_key_type(hci *h, const bt_addr *peer, uint8_t type);
/* Whether a hci_secure_link() of the link wants an authenticated (MITM-protected) key: GAP
 * then asks MITM in its IO capability reply. */
bool hci_link_wants_mitm(hci *h, const bt_addr *peer);
/* Whether the link is being secured: our hci_secure_link() under way, its key size being
 * read, or a pairing of either side's between its first request (IO Capability, PIN) and its
 * outcome. L2CAP does not disconnect such a link for want of channels. */
bool hci_link_securing(hci *h, uint16_t handle);
/* hci_secure_link(), asking for an authenticated (MITM) key when mitm is set. A link already
 * encrypted with a key not known to be authenticated is authenticated again (GAP then refuses
 * the stored weaker key, so a MITM-protected pairing replaces it): 0 and link_secured follow. */
int hci_secure_link_mitm(hci *h, uint16_t handle, bool mitm);

/* Minimum encryption key size, 7-16 octets (Vol 2 Part H 4; CVE-2019-9506): 0 or -EINVAL.
 * After every Encryption Change to on, Read_Encryption_Key_Size (Vol 4 Part E 7.5.7); a
 * shorter key ends the link (Disconnect, Authentication Failure) and the waiting
 * hci_secure_link() with -EACCES, HCI_SEC_KEY_TOO_SHORT. */
int hci_set_min_key_size(hci *h, uint8_t octets);

/* Disconnects every live link (a host shutting down: Vol 4 Part E 7.1.6); returns how many.
 * link_down follows for each as its Disconnection_Complete arrives. */
size_t hci_disconnect_all(hci *h, uint8_t reason);
/* Whether the link's latest Encryption Change said on (and its key size was accepted). */
bool hci_link_encrypted(hci *h, uint16_t handle);
/* The number of links up. */
size_t hci_link_count(const hci *h);
/* The link is known dead (keepalive unanswered): Disconnect it and tear it down now, without
 * waiting for a Disconnection_Complete that a vanished peer's controller may never send.
 * link_down(err) follows at once. */
void hci_link_lost(hci *h, uint16_t handle, int err);
/* The upper layer has a PDU to send: HCI pulls as soon as the controller has room. */
void hci_kick(hci *h);

/* Whether every ACL packet handed to the controller has been completed and no PDU is half
 * sent. */
bool hci_tx_idle(const hci *h);
/* Whether an L2CAP PDU is half reassembled: its first fragment came, the rest is still to
 * come (Vol 4 Part E 5.4.2). */
bool hci_rx_partial(const hci *h);
/* The most bytes a half-reassembled PDU still waits for, over all links (0: none). */
size_t hci_rx_missing(const hci *h);

/* Facts read from the controller during initialisation. */
typedef struct {
	bt_addr addr;
	uint8_t hci_version;
	uint16_t hci_revision;
	uint8_t lmp_version;
	uint16_t manufacturer;
	uint16_t lmp_subversion;
	uint16_t acl_mtu;  /* HC_ACL_Data_Packet_Length */
	uint16_t acl_pkts; /* HC_Total_Num_ACL_Data_Packets */
	uint8_t features[8];
	uint8_t commands[64];
	bool secure_connections; /* Write_Secure_Connections_Host_Support (7.3.92) accepted */
} hci_info;
const hci_info *hci_get_info(const hci *h);
bool hci_is_ready(const hci *h);
/* Controller misbehaviour seen and survived (or, for hw_errors, not). */
typedef struct {
	uint32_t cmd_dropped;  /* link control commands lost to a full command queue */
	uint32_t nocp_unknown; /* Number_Of_Completed_Packets entries for a handle not ours */
	uint32_t acl_oversize; /* ACL packets longer than the announced buffer size, dropped */
	uint32_t hw_errors;    /* Hardware Error events (fatal) */
	uint32_t malformed;    /* packets whose header disagrees with their length, dropped */
} hci_faults;
const hci_faults *hci_get_faults(const hci *h);

/* The latest error explained in words (e.g. "controller did not answer HCI_Reset"). */
const char *hci_error(const hci *h);

/* Core spec Vol 1 Part F (controller error codes) -> negative errno, and their names. */
int hci_status_to_errno(uint8_t status);
const char *hci_status_str(uint8_t status);

#endif
