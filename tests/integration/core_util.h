/* core_util.h - helpers for integration tests that drive protocol-core stacks directly over
 * btvirt (no socket runtime): a stack per node, a poll loop over several nodes, and a tap
 * that sees every H4 packet a node receives. */
#ifndef BTSOCK_TEST_CORE_UTIL_H
#define BTSOCK_TEST_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stack/stack.h"
#include "transport/h4.h"

typedef struct core_node core_node;
/* Sees each complete H4 packet the node receives, before its stack does. */
typedef void (*core_tap_fn)(core_node *n, const uint8_t *pkt, size_t len);

struct core_node {
	int fd;
	bt_stack *s;
	int ready; /* 1 ok, <0 error */
	bt_addr addr;
	core_tap_fn tap;
	void *user;
	/* the H4 stream from btvirt, framed as a stream transport does */
	h4_deframer h4;
	uint8_t pkt[H4_MAX_PACKET];
};

uint64_t mono_ms(void);
/* Connects to the btvirt socket, starts a stack (keepalive 1 s) and waits until ready. */
void core_node_open(core_node *n, const char *socket_path);
void core_node_close(core_node *n);
/* Runs the nodes until done(arg) is true or timeout_ms passes; returns done's last value. */
bool core_run(core_node **nodes, int count, int timeout_ms, bool (*done)(void *), void *arg);
/* Writes an L2CAP PDU (basic header added) straight to the node's controller as ACL data on
 * handle, bypassing its stack: "malformed packets from the air" for the peer. */
void core_node_raw_l2cap(core_node *n, uint16_t handle, uint16_t cid, const uint8_t *p, size_t len);

#endif
