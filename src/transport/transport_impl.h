/* transport_impl.h - internal to src/transport (and tests): what a transport kind implements,
 * the state every transport has, and the helpers that write the one-sentence errors
 * ("SPEC: STEP: strerror (hint)").
 *
 * A kind is a bt_transport_ops table. The built-in ones are listed in transport.c; others
 * (a test's, say) are added at run time with bt_transport_register(). Each opener gets the
 * text after "KIND:" and parses it strictly before touching the system, so a malformed
 * adapter string never creates a socket or opens a device.
 *
 * The kinds that run over one fd (unix, tcp, serial: byte streams framed by h4.h; userchan:
 * one packet per datagram) share transport_fd.c: a kind of that family is an opener that
 * yields an fd, plus TP_FD_OPS. */
#ifndef BTSOCK_TRANSPORT_IMPL_H
#define BTSOCK_TRANSPORT_IMPL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "transport/transport.h"

/* Where an opener reports: the adapter string as given and the caller's message buffer
 * (err may be NULL or errlen 0). */
typedef struct {
	const char *spec;
	char *err;
	size_t errlen;
} tp_ctx;

/* One kind of transport. bt_transport_* check what they can before calling in: send gets
 * 0 < len <= BT_TRANSPORT_OUTBUF; pollfds has room for BT_TRANSPORT_MAX_FDS entries. */
typedef struct bt_transport_ops {
	/* arg: the text after "KIND:". 0 with t->priv set up, or -errno with the sentence
	 * (tp_fail, tp_fail_parse) and nothing left open. */
	int (*open)(bt_transport *t, const tp_ctx *c, const char *arg);
	size_t (*pollfds)(bt_transport *t, struct pollfd *p);
	int (*events)(bt_transport *t, const struct pollfd *p, size_t n);
	ssize_t (*recv)(bt_transport *t, const uint8_t **pkt);
	int (*send)(bt_transport *t, const uint8_t *pkt, size_t len);
	bool (*pending)(const bt_transport *t);
	bool (*can_send)(const bt_transport *t);
	/* Tries once to write what is queued, closes, frees t->priv (not t). */
	void (*close)(bt_transport *t);
} bt_transport_ops;

struct bt_transport {
	const bt_transport_ops *ops;
	void *priv;         /* the kind's own state */
	char name[128];     /* the adapter string as given */
	char rx_err[224];   /* why receiving ended (receive side) */
	char tx_err[224];   /* why sending failed (send side) */
};

/* Adds a kind: adapter strings "PREFIX:..." open through ops. prefix (without the colon) and
 * ops must outlive every transport of the kind. 0, -EEXIST (prefix taken), -ENOSPC (table
 * full) or -EINVAL. Thread-safe. */
int bt_transport_register(const char *prefix, const bt_transport_ops *ops);

/* "SPEC: STEP: strerror(e)" plus " (hint)" when hint is not NULL. Returns -e. */
int tp_fail(const tp_ctx *c, const char *step, int e, const char *hint);
/* "SPEC: parse: <formatted detail>". Returns -e (normally EINVAL). */
int tp_fail_parse(const tp_ctx *c, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sets O_NONBLOCK on fd; on failure reports step "fcntl" and returns -errno. */
int tp_set_nonblock(const tp_ctx *c, int fd);
/* Records why receiving (tp_rx_fail) or sending (tp_tx_fail) ended, unless a reason is
 * already recorded: the first failure is the one that explains. Return -e. */
int tp_rx_fail(bt_transport *t, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int tp_tx_fail(bt_transport *t, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Whether a failure is recorded on that side. */
bool tp_rx_failed(const bt_transport *t);

/* Parses "hciN" (N decimal, 0..65534, no sign, no leading zeros beyond "0"). -1 if malformed. */
int tp_parse_hci_index(const char *s);

/* ---- the one-fd family (transport_fd.c) -------------------------------------------------- */

enum {
	TP_FD_SOCKET = 1,   /* write with send(MSG_NOSIGNAL) */
	TP_FD_PACKETS = 2,  /* one whole packet per read and per write (the user channel) */
	TP_FD_EIO_EOF = 4,  /* a read EIO is end of stream (a tty whose other side hung up) */
};
/* Takes fd (non-blocking, close-on-exec) as t's wire; closes it on failure. 0 or -ENOMEM. */
int tp_fd_attach(bt_transport *t, const tp_ctx *c, int fd, unsigned flags);
size_t tp_fd_pollfds(bt_transport *t, struct pollfd *p);
int tp_fd_events(bt_transport *t, const struct pollfd *p, size_t n);
ssize_t tp_fd_recv(bt_transport *t, const uint8_t **pkt);
int tp_fd_send(bt_transport *t, const uint8_t *pkt, size_t len);
bool tp_fd_pending(const bt_transport *t);
bool tp_fd_can_send(const bt_transport *t);
void tp_fd_close(bt_transport *t);
/* Octets queued to go out (tests). */
size_t tp_fd_queued(const bt_transport *t);
#define TP_FD_OPS(opener)                                                                       \
	{ .open = (opener), .pollfds = tp_fd_pollfds, .events = tp_fd_events, .recv = tp_fd_recv,  \
	  .send = tp_fd_send, .pending = tp_fd_pending, .can_send = tp_fd_can_send,                \
	  .close = tp_fd_close }

/* The built-in kinds (one file each). */
extern const bt_transport_ops tp_unix_ops, tp_tcp_ops, tp_serial_ops, tp_userchan_ops;
/* A user-channel transport over an fd the caller already has (tests: a SOCK_SEQPACKET pair
 * stands in for the kernel socket). NULL without memory (fd is then closed). */
bt_transport *tp_userchan_adopt(int fd, const char *name);

#endif
