/* transport.h - packet transports to a controller, named by an adapter string.
 *
 *   unix:PATH               UNIX stream socket (BlueZ btvirt -s: /tmp/bt-server-bredr)
 *   tcp:HOST:PORT           TCP (numeric or resolvable host, IPv4 or IPv6 "[::1]:4000")
 *   serial:DEVICE[@BAUD]    UART or pty, raw 8N1, RTS/CTS, BAUD default 115200
 *   userchan:hciN           Linux HCI user channel (AF_BLUETOOTH, HCI_CHANNEL_USER): the
 *                           kernel adapter is brought down and handed to this process
 *
 * Whatever the wire, packets cross this interface whole, as H4 packets: [indicator][HCI
 * packet] (Core spec Vol 4 Part A 2; packet formats Vol 4 Part E 5.4). The byte-stream kinds
 * (unix, tcp, serial) frame them with the H4 deframer (h4.h); the user channel gets one packet
 * per datagram and checks it. A kind is one file with a bt_transport_ops table
 * (transport_impl.h); USB (H2) or H5 fit the same way.
 *
 * The caller polls the fds the transport names (bt_transport_pollfds), lets it do its I/O
 * (bt_transport_events), then takes the packets (bt_transport_recv). Nothing here waits.
 *
 * Threads: the receive side (bt_transport_events with entries whose revents hold no POLLOUT,
 * bt_transport_recv) and the send side (bt_transport_send, _pending, _can_send, and
 * bt_transport_events with only POLLOUT in revents) share no state, so one thread may receive
 * without a lock while others send under one of their own. bt_transport_pollfds reads the send
 * side. */
#ifndef BTSOCK_TRANSPORT_H
#define BTSOCK_TRANSPORT_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct bt_transport bt_transport; /* opaque */
#define BT_TRANSPORT_MAX_FDS 4
/* The send queue of the built-in kinds; a longer packet is refused with -EMSGSIZE. */
#define BT_TRANSPORT_OUTBUF (64 * 1024)
/* The largest packet btsock's stack sends: an ACL packet carrying a whole HCI_MAX_PDU
 * (indicator, Vol 4 Part E 5.4.2 header, 4 + 4096). bt_transport_can_send() means room for it. */
#define BT_TRANSPORT_PACKET_MAX (1 + 4 + 4 + 4096)

/* Opens the adapter named by spec. 0 with *out, or -errno with a sentence in err naming what
 * was tried and why it failed, as "SPEC: STEP: reason (hint)":
 * ("unix:/tmp/x: connect: No such file or directory (is `btvirt -s` running?)",
 * "foo:bar: parse: unknown adapter type 'foo'; expected unix:, tcp:, serial: or userchan:").
 * Malformed strings give -EINVAL (-ENAMETOOLONG when too long) before anything is opened;
 * plain "hciN" gives -ENOTSUP (reserved for a kernel-socket backend; use "userchan:hciN").
 * *out is NULL on failure. */
int bt_transport_open(const char *spec, bt_transport **out, char *err, size_t errlen);
/* Tries once, without waiting, to write what is still queued, then closes and frees. NULL ok. */
void bt_transport_close(bt_transport *t);
/* The adapter string as given. */
const char *bt_transport_name(const bt_transport *t);
/* Fills up to BT_TRANSPORT_MAX_FDS entries: each fd with the events the transport wants now
 * (POLLIN while it is alive, POLLOUT while it has bytes queued). Returns how many. */
size_t bt_transport_pollfds(bt_transport *t, struct pollfd *p);
/* After poll, with the entries bt_transport_pollfds filled (and their revents): performs the
 * I/O they allow. Reads everything available into the transport's bounded receive buffer, in
 * bounded chunks, and writes what is queued as far as the fd takes it. 0, or -errno once the
 * transport has failed or reached end of stream (bt_transport_error() says why). */
int bt_transport_events(bt_transport *t, const struct pollfd *p, size_t n);
/* The next complete received packet: its length (> 0) with *pkt at [indicator][HCI packet]
 * in the transport's own buffer, valid until the next call into the transport; 0 when no
 * packet is complete; -errno when the transport failed, once the packets received before the
 * failure have been returned: -EPIPE at end of stream, -EPROTO for an unknown indicator or a
 * datagram that is not one whole packet, -EMSGSIZE for a packet longer than the transport
 * takes, or the read error. */
ssize_t bt_transport_recv(bt_transport *t, const uint8_t **pkt);
/* Queues one whole packet ([indicator][HCI packet]) and writes as much as the fd takes now;
 * never waits. 0 or -errno: -EPIPE when the controller went, -ENOBUFS when the queue is still
 * full after a flush (the controller stopped reading; nothing of the packet is queued),
 * -EMSGSIZE when len exceeds BT_TRANSPORT_OUTBUF, -EINVAL for len 0 or (packet kinds) bytes
 * that are not exactly one well-formed packet. Never raises SIGPIPE. */
int bt_transport_send(bt_transport *t, const uint8_t *pkt, size_t len);
/* Whether bytes are queued to go out (the caller should let the transport poll for POLLOUT). */
bool bt_transport_pending(const bt_transport *t);
/* Whether a packet of BT_TRANSPORT_PACKET_MAX octets would be accepted now. */
bool bt_transport_can_send(const bt_transport *t);
/* Why the transport failed, as a sentence ("the controller connection closed", "reading from
 * the controller failed: ...", "the controller sent a malformed packet: ..."); "" while it
 * has not. */
const char *bt_transport_error(const bt_transport *t);

#endif
