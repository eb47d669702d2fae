/* transport_fd.c - the transports that run over one fd: a byte stream carrying H4 (unix, tcp,
 * serial; framed by h4.h) or a socket carrying one H4 packet per datagram (the user channel).
 *
 * Receive side: tp_fd_events reads what the fd has into a bounded buffer (rx), tp_fd_recv
 * deframes it a packet at a time. Send side: a bounded queue that never splits a packet for
 * the datagram kind. The two sides share no state (transport.h, threads). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/h4.h"
#include "transport/transport_impl.h"

/* Octets read and not yet deframed. Large enough that a loop round takes whatever a burst
 * from the controller holds (btvirt drops ACL data a host does not read in time). */
#define TP_RX_BUF (256 * 1024)

typedef struct {
	int fd;
	unsigned flags; /* TP_FD_* */
	/* receive side */
	uint8_t *rx;          /* TP_RX_BUF + H4_MAX_PACKET: a datagram of any size fits after compaction */
	size_t rx_off, rx_len; /* unread octets are rx[rx_off .. rx_len) */
	bool rx_end;          /* end of stream or failure seen: nothing more is read */
	int rx_errno;
	h4_deframer h4;
	uint8_t *pkt;         /* the deframer's buffer, H4_MAX_PACKET */
	/* send side */
	uint8_t out[BT_TRANSPORT_OUTBUF]; /* accepted by send, not yet written */
	size_t out_len;
} tp_fd;

static tp_fd *fdt(const bt_transport *t) { return t->priv; }

int tp_fd_attach(bt_transport *t, const tp_ctx *c, int fd, unsigned flags)
{
	tp_fd *f = calloc(1, sizeof *f);
	uint8_t *rx = malloc(TP_RX_BUF + H4_MAX_PACKET);
	uint8_t *pkt = malloc(H4_MAX_PACKET);
	if (!f || !rx || !pkt) {
		free(f);
		free(rx);
		free(pkt);
		close(fd);
		return tp_fail(c, "open", ENOMEM, NULL);
	}
	f->fd = fd;
	f->flags = flags;
	f->rx = rx;
	f->pkt = pkt;
	h4_init(&f->h4, pkt, H4_MAX_PACKET);
	t->priv = f;
	return 0;
}

/* ---- send side ------------------------------------------------------------------------------ */

/* The controller went away: the errors a dead peer gives on write, as -EPIPE. */
static int write_errno(int e)
{
	switch (e) {
	case ECONNRESET:
	case ENOTCONN:
	case EIO:     /* tty hung up (pty master closed, USB UART unplugged) */
	case ENODEV:  /* user channel: adapter removed */
	case ENXIO:
		return -EPIPE;
	default:
		return -e;
	}
}

/* One write call. >=0 octets taken, -EAGAIN, or -errno. */
static ssize_t write_once(tp_fd *f, const uint8_t *p, size_t n)
{
	for (;;) {
		ssize_t w = (f->flags & TP_FD_SOCKET) ? send(f->fd, p, n, MSG_NOSIGNAL) : write(f->fd, p, n);
		if (w >= 0)
			return w;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		return write_errno(errno);
	}
}

/* Writes what the fd takes now. 0 or -errno (recorded as the send side's failure). */
static int flush(bt_transport *t)
{
	tp_fd *f = fdt(t);
	bool packets = f->flags & TP_FD_PACKETS;
	size_t done = 0;
	int r = 0;
	while (done < f->out_len) {
		size_t chunk = f->out_len - done;
		if (packets) /* one packet per write; each was checked in tp_fd_send */
			chunk = (size_t)h4_packet_len(f->out + done, chunk);
		ssize_t w = write_once(f, f->out + done, chunk);
		if (w < 0) {
			r = w == -EAGAIN ? 0 : (int)w;
			break;
		}
		if (w == 0) /* a stream that takes nothing without EAGAIN: try again later */
			break;
		/* A packet socket takes the whole packet or nothing. */
		done += packets ? chunk : (size_t)w;
	}
	memmove(f->out, f->out + done, f->out_len - done);
	f->out_len -= done;
	if (r < 0)
		f->out_len = 0; /* it can never leave: nothing is pending any more */
	if (r == -EPIPE)
		return tp_tx_fail(t, EPIPE, "the controller connection closed (writing to it failed)");
	if (r < 0)
		return tp_tx_fail(t, -r, "writing to the controller failed: %s", strerror(-r));
	return 0;
}

bool tp_fd_pending(const bt_transport *t) { return fdt(t)->out_len > 0; }
size_t tp_fd_queued(const bt_transport *t) { return fdt(t)->out_len; }

bool tp_fd_can_send(const bt_transport *t)
{
	return BT_TRANSPORT_OUTBUF - fdt(t)->out_len >= BT_TRANSPORT_PACKET_MAX;
}

/* Makes room for len octets without waiting: flushes what the fd takes now. 0, -ENOBUFS if
 * the queue is still full, or the write error. Never blocks: the caller is an adapter's loop
 * thread, and a controller that leaves 64 KiB unread (far more than HCI flow control lets a
 * host have in flight) has stopped reading; waiting would stall every other adapter too. */
static int make_room(bt_transport *t, size_t len)
{
	int r = flush(t);
	if (r < 0)
		return r;
	return BT_TRANSPORT_OUTBUF - fdt(t)->out_len >= len ? 0 : -ENOBUFS;
}

int tp_fd_send(bt_transport *t, const uint8_t *pkt, size_t len)
{
	tp_fd *f = fdt(t);
	/* A datagram kind needs packet boundaries in the queue: only whole packets go in. */
	if ((f->flags & TP_FD_PACKETS) && h4_packet_len(pkt, len) != (ssize_t)len)
		return -EINVAL;
	size_t done = 0;
	if (f->out_len == 0) { /* nothing queued: straight to the fd, no copy into the queue */
		ssize_t w = write_once(f, pkt, len);
		if (w == -EPIPE)
			return tp_tx_fail(t, EPIPE, "the controller connection closed (writing to it failed)");
		if (w < 0 && w != -EAGAIN)
			return tp_tx_fail(t, (int)-w, "writing to the controller failed: %s", strerror((int)-w));
		if (w > 0)
			done = (f->flags & TP_FD_PACKETS) ? len : (size_t)w; /* a datagram goes whole */
		if (done == len)
			return 0;
	}
	int r = make_room(t, len - done);
	if (r < 0)
		return r;
	memcpy(f->out + f->out_len, pkt + done, len - done);
	f->out_len += len - done;
	return flush(t);
}

/* ---- receive side --------------------------------------------------------------------------- */

size_t tp_fd_pollfds(bt_transport *t, struct pollfd *p)
{
	tp_fd *f = fdt(t);
	/* rx_end belongs to the receive side; a stale read here costs one more poll round. */
	p[0] = (struct pollfd){ f->fd, (short)(f->rx_end ? 0 : POLLIN), 0 };
	if (f->out_len)
		p[0].events |= POLLOUT;
	if (!p[0].events) /* dead: poll would still report its POLLHUP, round after round */
		p[0].fd = -1;
	return 1;
}

/* Reading ended: at end of stream (n == 0) or with errno e. Keeps the sentence for later:
 * recv reports it after the packets read before it. */
static void read_ended(bt_transport *t, int e)
{
	tp_fd *f = fdt(t);
	f->rx_end = true;
	/* A tty whose other side hung up (pty master closed, UART unplugged) reads EIO: that
	 * is this transport's end of stream. */
	if (e == 0 || (e == EIO && (f->flags & TP_FD_EIO_EOF))) {
		f->rx_errno = EPIPE;
		tp_rx_fail(t, EPIPE, "the controller connection closed");
	} else if (e == ECONNRESET) {
		f->rx_errno = EPIPE;
		tp_rx_fail(t, EPIPE, "the controller connection closed: %s", strerror(e));
	} else {
		f->rx_errno = e;
		tp_rx_fail(t, e, "reading from the controller failed: %s", strerror(e));
	}
}

/* One datagram, checked to be one whole packet (Vol 4 Part E 5.4 headers). MSG_TRUNC makes
 * recv report a datagram longer than the room. >0, 0 for none (EAGAIN), -1 when reading
 * ended. */
static ssize_t read_datagram(bt_transport *t, uint8_t *dst, size_t room)
{
	tp_fd *f = fdt(t);
	ssize_t n = recv(f->fd, dst, room, MSG_TRUNC);
	if (n < 0)
		return -1;
	if (n == 0) { /* a datagram socket's end */
		errno = 0;
		return -1;
	}
	ssize_t want = h4_packet_len(dst, (size_t)n > room ? room : (size_t)n);
	if ((size_t)n > room || want != n) {
		f->rx_end = true;
		f->rx_errno = EPROTO;
		tp_rx_fail(t, EPROTO, "the controller sent a malformed packet: a datagram of %zd octets "
			   "(indicator 0x%02x) whose header says %zd (Core spec Vol 4 Part E 5.4)",
			   n, dst[0], want);
		return -2;
	}
	return n;
}

/* Moves the unread octets to the front of rx. */
static void compact(tp_fd *f)
{
	if (f->rx_off == 0)
		return;
	memmove(f->rx, f->rx + f->rx_off, f->rx_len - f->rx_off);
	f->rx_len -= f->rx_off;
	f->rx_off = 0;
}

/* Reads until the fd has nothing more or rx is full. */
static void read_available(bt_transport *t)
{
	tp_fd *f = fdt(t);
	bool packets = f->flags & TP_FD_PACKETS;
	compact(f);
	while (!f->rx_end) {
		size_t room = TP_RX_BUF + (packets ? H4_MAX_PACKET : 0) - f->rx_len;
		if (room < (packets ? H4_MAX_PACKET : 1))
			return; /* full: the caller takes packets, then we read on */
		ssize_t n = packets ? read_datagram(t, f->rx + f->rx_len, room) : read(f->fd, f->rx + f->rx_len, room);
		if (n == -2)
			return;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			read_ended(t, n < 0 ? errno : 0);
			return;
		}
		f->rx_len += (size_t)n;
		/* A stream that gave less than asked is empty for now: poll (level-triggered) says
		 * when more comes, so skip the read that would only return EAGAIN. A datagram
		 * socket gives one packet per read: drain it to EAGAIN. */
		if (!packets && (size_t)n < room)
			return;
	}
}

int tp_fd_events(bt_transport *t, const struct pollfd *p, size_t n)
{
	tp_fd *f = fdt(t);
	int r = 0;
	if (n < 1)
		return 0;
	if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
		read_available(t);
	if (p[0].revents & POLLOUT)
		r = flush(t);
	if (f->rx_end && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
		return -f->rx_errno;
	return r;
}

ssize_t tp_fd_recv(bt_transport *t, const uint8_t **pkt)
{
	tp_fd *f = fdt(t);
	while (f->rx_off < f->rx_len) {
		size_t used;
		ssize_t r = h4_feed(&f->h4, f->rx + f->rx_off, f->rx_len - f->rx_off, &used);
		f->rx_off += used;
		if (r > 0) {
			*pkt = f->h4.buf;
			return r;
		}
		if (r < 0) {
			char why[160];
			f->rx_end = true;
			f->rx_off = f->rx_len; /* nothing after a lost boundary can be trusted */
			f->rx_errno = (int)-r;
			tp_rx_fail(t, (int)-r, "the controller sent a malformed packet: %s",
				   h4_describe(&f->h4, why, sizeof why));
			return r;
		}
	}
	if (f->rx_end)
		return -f->rx_errno;
	return 0;
}

void tp_fd_close(bt_transport *t)
{
	tp_fd *f = fdt(t);
	if (!f)
		return;
	if (f->out_len) /* best effort, never waits: e.g. a final HCI_Reset */
		(void)flush(t);
	close(f->fd);
	free(f->rx);
	free(f->pkt);
	free(f);
	t->priv = NULL;
}
