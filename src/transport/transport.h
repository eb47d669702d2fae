/* transport.h - H4 byte streams to a controller, named by an adapter string.
 *
 *   unix:PATH               UNIX stream socket (BlueZ btvirt -s: /tmp/bt-server-bredr)
 *   tcp:HOST:PORT           TCP (numeric or resolvable host, IPv4 or IPv6 "[::1]:4000")
 *   serial:DEVICE[@BAUD]    UART or pty, raw 8N1, RTS/CTS, BAUD default 115200
 *   userchan:hciN           Linux HCI user channel (AF_BLUETOOTH, HCI_CHANNEL_USER): the
 *                           kernel adapter is brought down and handed to this process
 *
 * The fd is non-blocking; the caller polls it. Outgoing packets go through a small internal
 * buffer so a full socket never splits a packet for packet-oriented transports (userchan
 * takes one packet per write) and never blocks the caller for long. */
#ifndef BTSOCK_TRANSPORT_H
#define BTSOCK_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum {
	BT_TRANSPORT_UNIX,
	BT_TRANSPORT_TCP,
	BT_TRANSPORT_SERIAL,
	BT_TRANSPORT_USERCHAN,
} bt_transport_kind;

#define BT_TRANSPORT_OUTBUF (64 * 1024)

typedef struct {
	int fd;
	bt_transport_kind kind;
	char name[128];            /* the adapter string as given */
	uint8_t out[BT_TRANSPORT_OUTBUF]; /* bytes accepted by bt_transport_send, not yet written */
	size_t out_len;
} bt_transport;

/* Opens the adapter named by spec. 0, or -errno with a sentence in err naming what was tried
 * and why it failed, as "SPEC: STEP: reason (hint)":
 * ("unix:/tmp/x: connect: No such file or directory (is `btvirt -s` running?)",
 * "foo:bar: parse: unknown adapter type 'foo'; expected unix:, tcp:, serial: or userchan:").
 * Malformed strings give -EINVAL (-ENAMETOOLONG when too long) before anything is opened;
 * plain "hciN" gives -ENOTSUP (reserved for a kernel-socket backend; use "userchan:hciN"). */
int bt_transport_open(const char *spec, bt_transport *t, char *err, size_t errlen);
/* Queues one whole H4 packet and writes as much as the fd takes now; never waits. 0 or -errno
 * (-EPIPE when the controller went). Also: -ENOBUFS when the internal buffer is still full
 * after a flush (the controller stopped reading; nothing of the packet is queued), -EMSGSIZE when len
 * exceeds BT_TRANSPORT_OUTBUF, -EINVAL for len 0 or (userchan) bytes that are not exactly one
 * well-formed H4 packet, -EBADF once closed. Never raises SIGPIPE. */
int bt_transport_send(bt_transport *t, const uint8_t *pkt, size_t len);
/* Writes more of what is queued (call when the fd polls writable). 0 or -errno. */
int bt_transport_flush(bt_transport *t);
/* Whether bytes are queued (the caller should poll for POLLOUT). */
bool bt_transport_pending(const bt_transport *t);
/* Reads what is available: >0 bytes, 0 on end of stream, -EAGAIN, or -errno.
 * userchan: one whole packet per call (-EMSGSIZE if cap is too small for it: size buf for
 * the largest packet, 1 + 4 + ACL MTU; 1 + 4 + 65535 always suffices).
 * serial: a hung-up line (EIO) counts as end of stream. */
ssize_t bt_transport_read(bt_transport *t, uint8_t *buf, size_t cap);
/* Tries once, without waiting, to write what is still queued, then closes. Idempotent. */
void bt_transport_close(bt_transport *t);

#endif
