/* transport.c - the adapter-string front door and the I/O every transport shares.
 *
 * bt_transport_open() splits "KIND:ARG", hands ARG to the opener of that kind (one file per
 * kind: transport_unix.c, transport_tcp.c, transport_serial.c, transport_userchan.c) and keeps
 * the fd. Everything after that is common: a bounded output queue that never splits a packet
 * for the packet-oriented user channel, non-blocking reads, end-of-stream detection.
 *
 * Error convention: every failure returns -errno and, when the caller gave a buffer, one
 * sentence "SPEC: STEP: reason (hint)". */
#include "transport/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/bytes.h"
#include "hci/hci.h"
#include "transport/transport_impl.h"

/* How long bt_transport_send waits for room in a full output queue. */
/* ISO data packets (Core spec Vol 4 Part A 2: indicator 0x05); not in hci.h's enum. */
#define TP_H4_ISO 0x05

#define TP_FORMS "unix:PATH, tcp:HOST:PORT, serial:DEVICE[@BAUD] or userchan:hciN"

/* ---- error sentences ------------------------------------------------------------------- */

static const char *shown_spec(const tp_ctx *c) { return c->spec[0] ? c->spec : "\"\""; }

int tp_fail(const tp_ctx *c, const char *step, int e, const char *hint)
{
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s: %s: %s%s%s%s", shown_spec(c), step, strerror(e),
			 hint ? " (" : "", hint ? hint : "", hint ? ")" : "");
	return -e;
}

int tp_fail_parse(const tp_ctx *c, int e, const char *fmt, ...)
{
	if (c->err && c->errlen) {
		int n = snprintf(c->err, c->errlen, "%s: parse: ", shown_spec(c));
		if (n >= 0 && (size_t)n < c->errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return -e;
}

int tp_set_nonblock(const tp_ctx *c, int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return tp_fail(c, "fcntl", errno, NULL);
	return 0;
}

int tp_parse_hci_index(const char *s)
{
	if (strncmp(s, "hci", 3) != 0)
		return -1;
	s += 3;
	if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	long v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > 0xfffe) /* 0xffff is HCI_DEV_NONE */
			return -1;
	}
	return (int)v;
}

/* ---- opening ------------------------------------------------------------------------------ */

typedef struct {
	const char *prefix; /* without the colon */
	bt_transport_kind kind;
	int (*open)(const tp_ctx *c, const char *arg, int *fd);
} tp_kind_entry;

static const tp_kind_entry tp_kinds[] = {
	{ "unix", BT_TRANSPORT_UNIX, tp_open_unix },
	{ "tcp", BT_TRANSPORT_TCP, tp_open_tcp },
	{ "serial", BT_TRANSPORT_SERIAL, tp_open_serial },
	{ "userchan", BT_TRANSPORT_USERCHAN, tp_open_userchan },
};

static const tp_kind_entry *find_kind(const char *spec, size_t prefix_len)
{
	for (size_t i = 0; i < sizeof tp_kinds / sizeof tp_kinds[0]; i++)
		if (strlen(tp_kinds[i].prefix) == prefix_len && memcmp(tp_kinds[i].prefix, spec, prefix_len) == 0)
			return &tp_kinds[i];
	return NULL;
}

/* A spec without "KIND:": plain "hciN" names the (future) kernel-socket backend. */
static int open_unprefixed(const tp_ctx *c)
{
	if (tp_parse_hci_index(c->spec) >= 0)
		return tp_fail_parse(c, ENOTSUP,
				     "plain '%s' is reserved for the Linux kernel socket backend, which is not "
				     "implemented yet; use \"userchan:%s\" to drive the adapter through the HCI user channel",
				     c->spec, c->spec);
	return tp_fail_parse(c, EINVAL, "no adapter type; expected " TP_FORMS);
}

int bt_transport_open(const char *spec, bt_transport *t, char *err, size_t errlen)
{
	tp_ctx c = { spec ? spec : "", err, errlen };
	if (err && errlen)
		err[0] = '\0';
	t->fd = -1;
	t->out_len = 0;
	t->name[0] = '\0';
	if (c.spec[0] == '\0')
		return tp_fail_parse(&c, EINVAL, "empty adapter string; expected " TP_FORMS);
	if (strlen(c.spec) >= sizeof t->name) { /* do not echo all of it */
		if (err && errlen)
			snprintf(err, errlen, "%.32s...: parse: adapter string longer than %zu characters",
				 c.spec, sizeof t->name - 1);
		return -ENAMETOOLONG;
	}
	const char *colon = strchr(c.spec, ':');
	if (!colon)
		return open_unprefixed(&c);
	const tp_kind_entry *k = find_kind(c.spec, (size_t)(colon - c.spec));
	if (!k)
		return tp_fail_parse(&c, EINVAL, "unknown adapter type '%.*s'; expected unix:, tcp:, serial: or userchan:",
				     (int)(colon - c.spec), c.spec);
	int fd = -1;
	int r = k->open(&c, colon + 1, &fd);
	if (r < 0)
		return r;
	t->fd = fd;
	t->kind = k->kind;
	memcpy(t->name, c.spec, strlen(c.spec) + 1);
	return 0;
}

/* ---- output queue --------------------------------------------------------------------------- */

/* Length of the whole H4 packet starting at p (Core spec Vol 4 Part A 2 for the indicator,
 * Vol 4 Part E 5.4.1-5.4.5 for the headers), or 0 if the bytes are not one well-formed
 * header (unknown indicator or too short to hold it). */
static size_t h4_frame_len(const uint8_t *p, size_t avail)
{
	bt_reader r = bt_reader_init(p, avail);
	uint8_t type = bt_read_u8(&r);
	size_t hdr, body;
	switch (type) {
	case H4_CMD: /* opcode(2) plen(1) */
		bt_read_le16(&r);
		hdr = 3, body = bt_read_u8(&r);
		break;
	case H4_ACL: /* handle+flags(2) len(2) */
		bt_read_le16(&r);
		hdr = 4, body = bt_read_le16(&r);
		break;
	case H4_SCO: /* handle+flags(2) len(1) */
		bt_read_le16(&r);
		hdr = 3, body = bt_read_u8(&r);
		break;
	case H4_EVT: /* code(1) plen(1) */
		bt_read_u8(&r);
		hdr = 2, body = bt_read_u8(&r);
		break;
	case TP_H4_ISO: /* handle+flags(2) len(14 bits) */
		bt_read_le16(&r);
		hdr = 4, body = bt_read_le16(&r) & 0x3fff;
		break;
	default:
		return 0;
	}
	return r.err ? 0 : 1 + hdr + body;
}

static bool is_socket(const bt_transport *t) { return t->kind != BT_TRANSPORT_SERIAL; }

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

/* One write call. >=0 bytes taken, -EAGAIN, or -errno. */
static ssize_t write_once(bt_transport *t, const uint8_t *p, size_t n)
{
	for (;;) {
		ssize_t w = is_socket(t) ? send(t->fd, p, n, MSG_NOSIGNAL) : write(t->fd, p, n);
		if (w >= 0)
			return w;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		return write_errno(errno);
	}
}

int bt_transport_flush(bt_transport *t)
{
	if (t->fd < 0)
		return -EBADF;
	size_t done = 0;
	int r = 0;
	while (done < t->out_len) {
		size_t chunk = t->out_len - done;
		if (t->kind == BT_TRANSPORT_USERCHAN) /* one packet per write; checked in send */
			chunk = h4_frame_len(t->out + done, chunk);
		ssize_t w = write_once(t, t->out + done, chunk);
		if (w < 0) {
			r = w == -EAGAIN ? 0 : (int)w;
			break;
		}
		if (w == 0) /* a stream that takes nothing without EAGAIN: try again later */
			break;
		/* A packet socket takes the whole packet or nothing. */
		done += t->kind == BT_TRANSPORT_USERCHAN ? chunk : (size_t)w;
	}
	memmove(t->out, t->out + done, t->out_len - done);
	t->out_len -= done;
	return r;
}

bool bt_transport_pending(const bt_transport *t) { return t->fd >= 0 && t->out_len > 0; }


/* Makes room for len bytes without waiting: flushes what the fd takes now. 0, -ENOBUFS if the
 * queue is still full, or the write error. Never blocks: the caller is an adapter's loop
 * thread, and a controller that leaves 64 KiB unread (far more than HCI flow control lets
 * a host have in flight) has stopped reading; waiting would stall every other adapter too. */
static int make_room(bt_transport *t, size_t len)
{
	int r = bt_transport_flush(t);
	if (r < 0)
		return r;
	return BT_TRANSPORT_OUTBUF - t->out_len >= len ? 0 : -ENOBUFS;
}

int bt_transport_send(bt_transport *t, const uint8_t *pkt, size_t len)
{
	if (t->fd < 0)
		return -EBADF;
	if (len == 0)
		return -EINVAL;
	if (len > BT_TRANSPORT_OUTBUF)
		return -EMSGSIZE;
	/* The user channel needs packet boundaries in the queue: only whole H4 packets go in. */
	if (t->kind == BT_TRANSPORT_USERCHAN && h4_frame_len(pkt, len) != len)
		return -EINVAL;
	int r = make_room(t, len);
	if (r < 0)
		return r;
	memcpy(t->out + t->out_len, pkt, len);
	t->out_len += len;
	return bt_transport_flush(t);
}

/* ---- input ------------------------------------------------------------------------------------- */

static ssize_t read_once(bt_transport *t, uint8_t *buf, size_t cap)
{
	if (t->kind != BT_TRANSPORT_USERCHAN)
		return read(t->fd, buf, cap);
	/* One packet per read; MSG_TRUNC makes recv report a packet longer than cap. */
	ssize_t n = recv(t->fd, buf, cap, MSG_TRUNC);
	if (n > (ssize_t)cap) {
		errno = EMSGSIZE;
		return -1;
	}
	return n;
}

ssize_t bt_transport_read(bt_transport *t, uint8_t *buf, size_t cap)
{
	if (t->fd < 0)
		return -EBADF;
	if (cap == 0)
		return -EINVAL;
	for (;;) {
		ssize_t n = read_once(t, buf, cap);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		/* A tty whose other side hung up (pty master closed, UART unplugged) reads EIO: that
		 * is this transport's end of stream. */
		if (t->kind == BT_TRANSPORT_SERIAL && errno == EIO)
			return 0;
		return -errno;
	}
}

void bt_transport_close(bt_transport *t)
{
	if (t->fd < 0)
		return;
	if (t->out_len) /* best effort, never waits: e.g. a final HCI_Reset */
		(void)bt_transport_flush(t);
	close(t->fd);
	t->fd = -1;
	t->out_len = 0;
}
