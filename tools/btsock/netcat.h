/* netcat.h - the data relay shared by `btsock listen/connect` (RFCOMM) and `btsock l2cap
 * listen/connect`: stdin (or a file) -> peer, peer -> stdout. */
#ifndef BTSOCK_TOOL_NETCAT_H
#define BTSOCK_TOOL_NETCAT_H

#include <stdbool.h>

#include "tool.h"

/* What the user asked for, after argument checking. */
struct session {
	enum btsock_proto proto;
	bool listening;         /* listen (else connect) */
	const char *peer;       /* connect: the peer's address (validated), listen: NULL */
	unsigned port;          /* PSM or channel; listen: 0 = any free one */
	unsigned mtu;           /* L2CAP incoming MTU, 0 = default */
	bool keep;              /* listen: accept connections one after another (-k) */
	bool no_stdin;          /* -d: do not read stdin; run until the peer closes */
	bool quiet;             /* no progress bar, throughput line or connection messages */
	const char *send_path;  /* --send FILE: send it, then close */
	const char *advertise;  /* listen --advertise NAME: publish an SDP record */
	const char *uuid;       /* listen: the record's service UUID; connect: find the port by it */
	int security;           /* --security: enum btsock_security + 1, 0 = default (low) */
};

/* Scans the options shared by the relay commands (-k, -d, -q, --send, --mtu, --advertise,
 * --uuid, --security) into s and
 * collects up to max_pos positionals in pos[] (*npos says how many). Returns -1 to go on, or
 * the exit code to return now (help printed, or a usage error). help is the command whose
 * text -h prints. */
int session_parse_args(struct tool_args *a, struct session *s, const struct tool_cmd *help,
		       const char **pos, int max_pos, int *npos);

/* Both return an exit code (enum tool_exit). */
int session_listen(const struct tool_ctx *ctx, const struct session *s);
int session_connect(const struct tool_ctx *ctx, const struct session *s);

#endif
