/* l2cap.h - L2CAP in basic mode (Core spec Vol 3 Part A) for one stack.
 *
 * Channels over ACL links; signalling on CID 0x0001 (connection, configuration, disconnection,
 * information, echo, command reject). Upper layers (RFCOMM, SDP, the socket API) open channels
 * by PSM and get callbacks.
 *
 * Lifetime: a channel is created by l2cap_connect() or handed to an accept function, and stays
 * valid until its owner calls l2cap_close(), even after ops->closed reported that the peer or
 * the link ended it. After l2cap_close() no callback for that channel is made. */
#ifndef BTSOCK_L2CAP_H
#define BTSOCK_L2CAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bt_addr.h"
#include "core/timer.h"
#include "hci/hci.h"

/* Well-known PSMs (Assigned Numbers). */
enum { L2CAP_PSM_SDP = 0x0001, L2CAP_PSM_RFCOMM = 0x0003 };
/* Dynamic PSMs start here (Vol 3 Part A 4.2: 0x1001 and above, odd, LSB of upper octet 0). */
#define L2CAP_PSM_DYN_FIRST 0x1001
#define L2CAP_DEFAULT_MTU 672 /* Vol 3 Part A 5.1 */
#define L2CAP_MAX_MTU (HCI_MAX_PDU - 4)

typedef struct l2cap l2cap;
typedef struct l2cap_chan l2cap_chan;

typedef struct {
	/* Configured both ways: data may flow. */
	void (*opened)(void *ctx, l2cap_chan *ch);
	/* One SDU arrived (basic mode: one PDU's payload, len <= our MTU). */
	void (*data)(void *ctx, l2cap_chan *ch, const uint8_t *p, size_t len);
	/* l2cap_send() returned -EAGAIN before; there is room now. */
	void (*writable)(void *ctx, l2cap_chan *ch);
	/* The channel ended without its owner asking: err 0 = peer disconnected, else -errno
	 * (-ECONNREFUSED, -ECONNRESET on link loss, -ETIMEDOUT, -EHOSTDOWN...). */
	void (*closed)(void *ctx, l2cap_chan *ch, int err);
} l2cap_chan_ops;

/* Asked for each incoming connection request on a listening PSM. Return 0 after setting
 * *ops and *ctx to take the channel (it then configures and calls opened), or -errno to refuse
 * (-ENOBUFS: "no resources available"; anything else: refused). */
typedef int (*l2cap_accept_fn)(void *srv_ctx, l2cap_chan *ch, const l2cap_chan_ops **ops, void **ctx);

typedef struct {
	uint32_t rtx_ms;       /* signalling response timeout (default 5000, Vol 3 Part A 6.2.1 RTX) */
	uint32_t idle_probe_ms; /* a link with channels and nothing received this long gets an
				 * Echo Request (default 5000) */
	uint32_t probe_timeout_ms; /* no Echo Response within this: link lost (default 5000) */
} l2cap_config;

l2cap *l2cap_new(const l2cap_config *cfg, hci *h, bt_timers *timers);
void l2cap_free(l2cap *l);
/* Upper callbacks for HCI: the stack wires these into hci_upper. */
void l2cap_link_up(l2cap *l, uint16_t handle, const bt_addr *peer, bool initiator);
void l2cap_link_down(l2cap *l, uint16_t handle, const bt_addr *peer, int err);
void l2cap_connect_failed(l2cap *l, const bt_addr *peer, int err);
/* hci_secure_link() finished on handle (err 0: secured; else reason, an hci_sec_reason):
 * channels refused for security retry, or end with -EACCES (-ETIMEDOUT). */
void l2cap_link_secured(l2cap *l, uint16_t handle, int err, int reason);
/* The peer's host features are known (hci_link_peer_ssp): channels waiting for them go on. */
void l2cap_link_features(l2cap *l, uint16_t handle);
void l2cap_acl(l2cap *l, uint16_t handle, const uint8_t *pdu, size_t len);
size_t l2cap_pull(l2cap *l, uint16_t *handle, uint8_t *buf, size_t cap);

/* Security levels of a channel (BlueZ's terms). Vol 3 Part C 5.2.2: when both hosts support
 * Secure Simple Pairing every channel but SDP's needs an encrypted link; btsock follows that as
 * initiator at every level (LOW too: the link is encrypted first when the peer's host supports
 * SSP). As acceptor, LOW demands nothing (the initiator is the one bound to secure, and peers
 * that never pair keep working); the others are enforced before the channel opens:
 *  MEDIUM encrypted (an unauthenticated key will do), HIGH an authenticated (MITM-protected)
 *  key, types 5/8, FIPS a Secure Connections key, types 7/8 (Vol 4 Part E 7.7.24). */
typedef enum { L2CAP_SEC_LOW, L2CAP_SEC_MEDIUM, L2CAP_SEC_HIGH, L2CAP_SEC_FIPS } l2cap_sec_level;

/* Listens on psm (0: the first free dynamic PSM). Returns the PSM, -EADDRINUSE or -EINVAL
 * (PSM rules of Vol 3 Part A 4.2: odd, upper octet's LSB 0). imtu is what we accept (>= 48). */
int l2cap_listen(l2cap *l, uint16_t psm, uint16_t imtu, l2cap_accept_fn fn, void *srv_ctx);
/* l2cap_listen at a security level: a Connection Request on a link below it is answered
 * "pending, authentication pending" (Vol 3 Part A 4.3), the link secured, then success or
 * "security block" (0x0003). */
int l2cap_listen_sec(l2cap *l, uint16_t psm, uint16_t imtu, l2cap_sec_level level, l2cap_accept_fn fn,
		     void *srv_ctx);
void l2cap_unlisten(l2cap *l, uint16_t psm);
/* Opens a channel to peer:psm, paging it first if needed (level LOW). 0 and *out, or -errno. */
int l2cap_connect(l2cap *l, const bt_addr *peer, uint16_t psm, uint16_t imtu,
		  const l2cap_chan_ops *ops, void *ctx, l2cap_chan **out);
/* l2cap_connect at a security level: the link is raised to it before the Connection Request
 * (a failure ends the channel with -EACCES and l2cap_chan_sec_reason). */
int l2cap_connect_sec(l2cap *l, const bt_addr *peer, uint16_t psm, uint16_t imtu, l2cap_sec_level level,
		      const l2cap_chan_ops *ops, void *ctx, l2cap_chan **out);
/* Queues one SDU. 0, -EAGAIN (no room; writable follows), -EMSGSIZE (> peer's MTU),
 * -ENOTCONN (not open). */
int l2cap_send(l2cap_chan *ch, const uint8_t *p, size_t len);
/* Whether an SDU of len bytes would be accepted now (if not, writable follows later). */
bool l2cap_can_send(l2cap_chan *ch, size_t len);
/* Ends the channel (Disconnection Request if open) and releases it. */
void l2cap_close(l2cap_chan *ch);

/* Whether nothing is queued for sending (signalling queues and channel rings empty). */
/* Whether the channel's transmit ring is empty: every SDU it was given has gone to HCI (which
 * sends a PDU it took whole, before anything queued later). */
bool l2cap_chan_tx_idle(const l2cap_chan *ch);
bool l2cap_tx_idle(const l2cap *l);
/* The controller's ACL data packet length (Vol 4 Part E 7.4.5), 0 before it is known: upper
 * layers size PDUs to fill whole ACL packets. */
uint16_t l2cap_acl_mtu(const l2cap *l);

uint16_t l2cap_chan_psm(const l2cap_chan *ch);
/* Why a security failure ended the channel (hci_sec_reason, hci_sec_reason_str), else 0. */
int l2cap_chan_sec_reason(const l2cap_chan *ch);
uint16_t l2cap_chan_imtu(const l2cap_chan *ch);
uint16_t l2cap_chan_omtu(const l2cap_chan *ch);  /* peer's MTU: the largest SDU we may send */
const bt_addr *l2cap_chan_peer(const l2cap_chan *ch);
uint16_t l2cap_chan_handle(const l2cap_chan *ch);
bool l2cap_chan_is_open(const l2cap_chan *ch);
/* What the channel's link lacks for level: 0 or an hci_sec_reason (for RFCOMM's DLC levels). */
int l2cap_chan_sec_shortfall(const l2cap_chan *ch, l2cap_sec_level level);
/* Raises the channel's link to level (hci_secure_link, MITM asked from HIGH): 1 if it is
 * encrypted already, 0 when l2cap_link_secured (and the stack's rfcomm hook) follow, -errno. */
int l2cap_chan_secure(l2cap_chan *ch, l2cap_sec_level level);
/* hci_link_pairing_failure() of the channel's link: why a pairing we took part in failed, or 0. */
int l2cap_chan_pairing_failure(const l2cap_chan *ch);
/* Replace the callbacks (e.g. after accept hands the channel to another owner). */
void l2cap_chan_set_ops(l2cap_chan *ch, const l2cap_chan_ops *ops, void *ctx);

#endif
