/* rfcomm.h - RFCOMM (Bluetooth RFCOMM spec v1.2 over ETSI TS 07.10) for one stack.
 *
 * One multiplexer session per ACL link over L2CAP PSM 3; DLCs (data link connections) on
 * server channels 1-30. Credit-based flow control: the layer buffers received data for each
 * DLC in a fixed ring and grants the peer credits only for room it really has, so a reader
 * that stops reading stalls the sender, never grows memory.
 *
 * Lifetime: a DLC is created by rfcomm_connect() or handed to an accept function and stays
 * valid until its owner calls rfcomm_close(), even after ops->closed (so buffered data can
 * still be read). After rfcomm_close() no callback for it is made. */
#ifndef BTSOCK_RFCOMM_H
#define BTSOCK_RFCOMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/bt_addr.h"
#include "core/timer.h"
#include "l2cap/l2cap.h"

#define RFCOMM_CHANNEL_MIN 1
#define RFCOMM_CHANNEL_MAX 30

typedef struct rfcomm rfcomm;
typedef struct rfcomm_dlc rfcomm_dlc;

typedef struct {
	/* Connected (UA received or sent): the owner may write; the data leaves once MSC has been
	 * exchanged (RFCOMM spec 6.2). */
	void (*opened)(void *ctx, rfcomm_dlc *d);
	/* New bytes are waiting: call rfcomm_read(). */
	void (*readable)(void *ctx, rfcomm_dlc *d);
	/* rfcomm_write() accepted less than asked before; there is room now. */
	void (*writable)(void *ctx, rfcomm_dlc *d);
	/* Ended without the owner asking: err 0 = peer closed (DISC), else -errno
	 * (-ECONNREFUSED for DM, -ECONNRESET on link loss, -ETIMEDOUT...). Bytes already
	 * received stay readable. */
	void (*closed)(void *ctx, rfcomm_dlc *d, int err);
} rfcomm_dlc_ops;

/* Asked for each incoming DLC on a listening channel: 0 after setting *ops and *ctx to take it,
 * -errno to refuse (DM is sent). */
typedef int (*rfcomm_accept_fn)(void *srv_ctx, rfcomm_dlc *d, const rfcomm_dlc_ops **ops, void **ctx);

typedef struct {
	uint32_t t1_ms;        /* SABM/DISC response timeout (default 10000; TS 07.10 T1) */
	uint32_t t2_ms;        /* multiplexer command response timeout (default 10000; T2) */
	uint32_t linger_ms;    /* session kept this long after its last DLC closes (default 2000) */
	uint16_t rx_buffer;    /* bytes a DLC may buffer, drives credits (default 24576); its ring
				* starts at 8192 (or this, if less) and grows once the peer streams */
	uint16_t max_frame;    /* largest N1 we offer (default: from the L2CAP MTU) */
	uint32_t rx_budget;    /* receive credit (bytes) granted to peers in all, across every DLC
				* of this stack (default 24576): all links share one controller
				* transport, and BlueZ btvirt drops data beyond ~170 ACL packets
				* queued for a host. Each DLC still gets at least one frame. */
} rfcomm_config;

rfcomm *rfcomm_new(const rfcomm_config *cfg, l2cap *l, bt_timers *timers);
void rfcomm_free(rfcomm *r);

/* Listens on channel (0: the first free one). Returns the channel, -EADDRINUSE or -EINVAL. */
int rfcomm_listen(rfcomm *r, uint8_t channel, rfcomm_accept_fn fn, void *srv_ctx);
void rfcomm_unlisten(rfcomm *r, uint8_t channel);
/* Opens a DLC to peer's server channel. 0 and *out, or -errno. */
int rfcomm_connect(rfcomm *r, const bt_addr *peer, uint8_t channel, const rfcomm_dlc_ops *ops,
		   void *ctx, rfcomm_dlc **out);
/* Security levels (l2cap_sec_level). A server's level is enforced before its DLC opens: a SABM
 * on a link below it waits while the link is secured, then UA, or DM if securing fails or
 * falls short (RFCOMM spec 5.2, TS 07.10 5.3.3). A client's link is raised to its level
 * before the DLC's PN/SABM. A DLC refused for security ends with -EACCES and
 * rfcomm_dlc_sec_reason(). */
int rfcomm_listen_sec(rfcomm *r, uint8_t channel, l2cap_sec_level level, rfcomm_accept_fn fn, void *srv_ctx);
int rfcomm_connect_sec(rfcomm *r, const bt_addr *peer, uint8_t channel, l2cap_sec_level level,
		       const rfcomm_dlc_ops *ops, void *ctx, rfcomm_dlc **out);
int rfcomm_dlc_sec_reason(const rfcomm_dlc *d);
/* The link under handle was secured (err 0) or not: DLCs waiting for it go on or end. */
void rfcomm_link_secured(rfcomm *r, uint16_t handle, int err, int reason);
/* Queues up to len bytes; returns how many were taken (>0), -EAGAIN (none; writable follows),
 * -ENOTCONN / -ECONNRESET / -EPIPE when the DLC is not open. */
ssize_t rfcomm_write(rfcomm_dlc *d, const uint8_t *p, size_t len);
/* Writing without a copy of the caller's: the free space at the tail of the DLC's transmit
 * ring, contiguous (*p, its length; 0 when full, and `writable` follows), or rfcomm_write's
 * -errno. Fill some of it, then rfcomm_write_commit(d, n) queues those n bytes (nothing else
 * may call into the DLC in between). */
ssize_t rfcomm_write_space(rfcomm_dlc *d, uint8_t **p);
void rfcomm_write_commit(rfcomm_dlc *d, size_t n);
/* Copies up to len buffered bytes out and returns the count (0: none waiting). Freed room
 * goes back to the peer as credits. */
size_t rfcomm_read(rfcomm_dlc *d, uint8_t *p, size_t len);
size_t rfcomm_readable(const rfcomm_dlc *d);
/* Zero-copy reading: the longest contiguous run of buffered bytes (*p points at it; 0 if
 * none), then rfcomm_consume() of what was used, which returns room as credits like
 * rfcomm_read(). */
size_t rfcomm_peek(const rfcomm_dlc *d, const uint8_t **p);
void rfcomm_consume(rfcomm_dlc *d, size_t n);
/* Ends the DLC (DISC if open) and releases it. */
void rfcomm_close(rfcomm_dlc *d);

/* Whether a DLC to peer's channel that its owner closed is still finishing (DISC not yet
 * answered): a new connection to that channel would collide with it. */
bool rfcomm_dlc_lingers(const rfcomm *r, const bt_addr *peer, uint8_t channel);
/* Whether a peer streams to us: some DLC received STREAM_RUN (4) full-size frames in a row,
 * with no data of ours sent on it in between (a peer sends a short frame when its queue runs
 * dry; messages answered, or shorter than 4 frames, never count). */
bool rfcomm_rx_streaming(const rfcomm *r);
/* Whether every DLC's transmit ring is empty (all written data handed to L2CAP). */
bool rfcomm_tx_idle(const rfcomm *r);
/* Bytes still in the transmit rings of the open DLCs to peer's channel (closed by their owner
 * or not): a closer watches it shrink. */
size_t rfcomm_tx_pending(const rfcomm *r, const bt_addr *peer, uint8_t channel);

uint8_t rfcomm_dlc_channel(const rfcomm_dlc *d);
const bt_addr *rfcomm_dlc_peer(const rfcomm_dlc *d);
uint16_t rfcomm_dlc_mtu(const rfcomm_dlc *d); /* negotiated N1 */
void rfcomm_dlc_set_ops(rfcomm_dlc *d, const rfcomm_dlc_ops *ops, void *ctx);

#endif
