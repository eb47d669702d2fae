/* harness.h - drives one real bt_stack with raw H4 packet vectors, for unit tests.
 *
 * The harness plays the controller's side of HCI only as far as a test needs: it answers
 * every command with a successful Command Complete (with plausible return parameters for the
 * initialisation reads), returns ACL buffers with Number_Of_Completed_Packets, and reassembles
 * the L2CAP PDUs the stack sends. Everything above HCI is the real code. */
#ifndef BTSOCK_TEST_HARNESS_H
#define BTSOCK_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stack/stack.h"

typedef struct harness harness;

/* A stack that has finished initialisation (ACL MTU 192, acl_pkts buffers). */
harness *harness_new(uint16_t acl_pkts);
/* The same, with RFCOMM configured (rc NULL: its defaults). */
harness *harness_new_rfcomm(uint16_t acl_pkts, const rfcomm_config *rc);
void harness_free(harness *h);
bt_stack *harness_stack(harness *h);
const bt_addr *harness_local_addr(harness *h);
/* Moves the clock forward and runs due timers. */
void harness_advance(harness *h, uint32_t ms);

/* Feeds one H4 packet (indicator first) to the stack. */
void harness_h4_in(harness *h, const uint8_t *pkt, size_t len);
/* Whether the stack has sent a command with this opcode since the last call (and forgets it). */
bool harness_cmd_seen(harness *h, uint16_t opcode);
/* The error the stack reported through its fatal callback (0 if none). */
int harness_fatal(harness *h);
/* The encryption key size Read_Encryption_Key_Size reports (Vol 4 Part E 7.5.7; default 16). */
void harness_set_key_size(harness *h, uint8_t octets);
/* What Read_Remote_Extended_Features page 1 (Vol 4 Part E 7.7.34) tells of the peers' hosts:
 * SSP support (default not), or no Complete event at all (answer false). */
void harness_set_peer_features(harness *h, bool ssp, bool answer);
/* Stops answering commands (a controller that hangs). */
void harness_mute(harness *h, bool mute);

/* Brings up an incoming ACL link from peer (Connection_Request, then Connection_Complete once
 * the stack accepts). Returns the handle. */
uint16_t harness_link_up(harness *h, const bt_addr *peer);
/* Completes an outgoing Create_Connection the stack issued to peer. */
uint16_t harness_accept_page(harness *h, const bt_addr *peer);
void harness_link_down(harness *h, uint16_t handle, uint8_t reason);

/* Sends an L2CAP PDU (basic header added) on cid, split into ACL fragments of at most 192. */
void harness_l2cap_in(harness *h, uint16_t handle, uint16_t cid, const uint8_t *p, size_t len);
/* Takes the next L2CAP PDU the stack sent (header stripped; *cid = its destination CID).
 * Returns its payload length, or -1 if none is waiting. */
int harness_l2cap_out(harness *h, uint16_t *handle, uint16_t *cid, uint8_t *buf, size_t cap);
/* Takes the next signalling command sent on CID 1: returns its code (or -1), ident, data. */
int harness_sig_out(harness *h, uint8_t *ident, uint8_t *data, size_t cap, size_t *len);
/* Sends one signalling command on CID 1. */
void harness_sig_in(harness *h, uint16_t handle, uint8_t code, uint8_t ident, const uint8_t *data, size_t len);

/* Opens an L2CAP channel from the "peer" to the stack's psm: Connection Request with source
 * CID peer_cid, then the configuration exchange (MTU mtu both ways). Returns the stack's CID
 * (its destination for our data), or 0 on failure. */
uint16_t harness_open_channel(harness *h, uint16_t handle, uint16_t psm, uint16_t peer_cid, uint16_t mtu);
/* Answers the stack's own Connection Request for psm (after l2cap_connect) and configures. Returns
 * the stack's CID, or 0. */
uint16_t harness_accept_channel(harness *h, uint16_t handle, uint16_t peer_cid, uint16_t mtu);

/* Sends n L2CAP PDUs on cid back to back, as a peer's burst: every fragment reaches the stack
 * before the Number_Of_Completed_Packets for anything it sends meanwhile, so what it answers
 * piles up in its own queues. */
void harness_l2cap_burst(harness *h, uint16_t handle, uint16_t cid, const uint8_t *const *pdus,
			 const size_t *lens, size_t n);

/* Hands every L2CAP PDU the stack sends to fn as soon as it is complete, instead of queueing
 * it for harness_l2cap_out() (whose queue holds 512): for fuzzers, where one input may make
 * the stack send any number. fn runs inside the stack's send callback: it must not call the
 * harness or the stack. NULL restores the queue. */
typedef void (*harness_pdu_sink)(void *ctx, uint16_t handle, uint16_t cid, const uint8_t *p, size_t len);
void harness_set_pdu_sink(harness *h, harness_pdu_sink fn, void *ctx);

#endif
