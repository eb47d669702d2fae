/* sdp.h - the Service Discovery Protocol (Core spec Vol 3 Part B) of one stack: the server
 * with its record database (answering peers on PSM 1) and asynchronous client queries.
 *
 * Server: sdp_server_new() registers the SDP server's own record (handle 0x00000000) and
 * listens on PSM 1. Services are added as records (sdp_record.h builds the standard ones).
 *
 * Client: a query sends ServiceSearchAttribute requests, follows continuation states until
 * the whole attribute list is in (at most SDP_CLIENT_MAX_BYTES), and calls back once with the
 * decoded records. It knows no transport (sdp_query_new: PDUs out through a callback, in
 * through sdp_query_input), so it runs over a channel of this stack (sdp_query_start opens
 * one to the peer's PSM 1) or over anything else carrying whole PDUs, such as a kernel
 * SOCK_SEQPACKET L2CAP socket to PSM 1 (one PDU per read and write). */
#ifndef BTSOCK_SDP_H
#define BTSOCK_SDP_H

#include <stddef.h>
#include <stdint.h>

#include "core/bt_addr.h"
#include "core/timer.h"
#include "l2cap/l2cap.h"
#include "sdp/sdp_data.h"
#include "sdp/sdp_record.h"

typedef struct sdp_server sdp_server;

/* PDU IDs (Vol 3 Part B 4.2, 4.4-4.7). */
enum {
	SDP_PDU_ERROR_RSP = 0x01,
	SDP_PDU_SS_REQ = 0x02,
	SDP_PDU_SS_RSP = 0x03,
	SDP_PDU_SA_REQ = 0x04,
	SDP_PDU_SA_RSP = 0x05,
	SDP_PDU_SSA_REQ = 0x06,
	SDP_PDU_SSA_RSP = 0x07,
};
/* ErrorResponse codes (Vol 3 Part B 4.4.1). */
enum {
	SDP_ERR_UNSUPPORTED_VERSION = 0x0001,
	SDP_ERR_INVALID_HANDLE = 0x0002,
	SDP_ERR_INVALID_SYNTAX = 0x0003,
	SDP_ERR_INVALID_PDU_SIZE = 0x0004,
	SDP_ERR_INVALID_CONT_STATE = 0x0005,
	SDP_ERR_INSUFFICIENT_RESOURCES = 0x0006,
};
#define SDP_MAX_PATTERN_UUIDS 12 /* Vol 3 Part B 4.5.1 */
#define SDP_MAX_CONT_STATE 16    /* Vol 3 Part B 4.3 */

/* ------------------------------------------------------------------ server */

/* l may be NULL (no listening: tests and fuzzers call the PDU handler directly). */
sdp_server *sdp_server_new(l2cap *l);
void sdp_server_free(sdp_server *s);
/* Adds a record and takes ownership of it (freed on failure too). Assigns its handle
 * (attribute 0x0000). Returns the handle (>= 0x00010000), or 0 on failure. */
uint32_t sdp_server_add_record(sdp_server *s, sdp_record *rec);
/* Builds a service record from d (sdp_record_build_service) and adds it: the handle or 0. */
uint32_t sdp_server_add_service(sdp_server *s, const sdp_service_desc *d);
/* 0, or -ENOENT (also for the server's own record 0x00000000, which stays). */
int sdp_server_remove_record(sdp_server *s, uint32_t handle);
size_t sdp_server_record_count(const sdp_server *s);

/* ------------------------------------------------------------------ client */

#define SDP_CLIENT_MAX_BYTES (64u * 1024u) /* the largest attribute list a query assembles */
#define SDP_CLIENT_DEFAULT_TIMEOUT_MS 10000

typedef struct sdp_query sdp_query;

/* The query's end: err 0 and the records found (possibly none), or -errno: -ETIMEDOUT,
 * -EMSGSIZE (more than SDP_CLIENT_MAX_BYTES), -EPROTO (a malformed or unexpected reply),
 * an ErrorResponse mapped by sdp_error_to_errno(), or the L2CAP channel's error
 * (-EHOSTDOWN, -ECONNREFUSED, -ECONNRESET...). The records are valid during the call only.
 * The query is gone once the callback returns. */
typedef void (*sdp_query_cb)(void *ctx, int err, sdp_record *const *recs, size_t n);

typedef struct {
	const sdp_uuid *uuids; /* the ServiceSearchPattern: 1-12 UUIDs (Vol 3 Part B 4.7.1) */
	size_t n_uuids;
	const uint32_t *ranges; /* attribute ID ranges, start << 16 | end; none: 0x0000-0xFFFF */
	size_t n_ranges;
	uint32_t timeout_ms;    /* the whole query; 0: SDP_CLIENT_DEFAULT_TIMEOUT_MS */
} sdp_query_params;

/* The transport of a query: whole SDP PDUs (Vol 3 Part B 4.2) each way. */
typedef struct {
	void *ctx;
	/* Sends one request PDU whole: 0; -EAGAIN (nothing sent: call sdp_query_writable() once
	 * there is room); or -errno, which ends the query with that error. */
	int (*send)(void *ctx, const uint8_t *pdu, size_t len);
	/* Optional: called once when the query ends (after its callback, or cancelled); the
	 * transport may be closed then. */
	void (*release)(void *ctx);
} sdp_query_io;

/* A query over io that sends nothing until sdp_query_begin() (call it once the transport is
 * up). timers may be NULL: no timeout then, the transport's owner bounds the query. 0 and
 * *out, or -EINVAL (bad pattern) / -ENOMEM, with no callback. Each call below may end the
 * query (callback, release, freed): q is not to be used after its callback. */
int sdp_query_new(bt_timers *timers, const sdp_query_params *p, const sdp_query_io *io, sdp_query_cb cb,
		  void *ctx, sdp_query **out);
/* The transport is up: the first request goes out. */
void sdp_query_begin(sdp_query *q);
/* One whole response PDU, as received: every length in it is checked; a malformed one or one
 * with another transaction ID ends the query with -EPROTO. A PDU while no request is out
 * (before the first, or while one waits for room) is ignored. */
void sdp_query_input(sdp_query *q, const uint8_t *pdu, size_t len);
/* The transport has room again after send returned -EAGAIN: the request goes out. */
void sdp_query_writable(sdp_query *q);
/* The transport failed or closed: the query ends with err (-ECONNRESET if err is 0). */
void sdp_query_fail(sdp_query *q, int err);

/* Starts a ServiceSearchAttribute query on peer (paging it if needed) over a channel of this
 * stack to its PSM 1: sdp_query_new() with that channel as transport. 0 and *out, or -errno
 * (-EINVAL for a bad pattern; L2CAP's errors). Exactly one callback follows unless the query
 * is cancelled. */
int sdp_query_start(l2cap *l, bt_timers *timers, const bt_addr *peer, const sdp_query_params *p,
		    sdp_query_cb cb, void *ctx, sdp_query **out);
/* Ends a query without calling back. Not from inside its own callback. */
void sdp_query_cancel(sdp_query *q);

/* ErrorResponse code -> negative errno. */
int sdp_error_to_errno(uint16_t code);

#endif
