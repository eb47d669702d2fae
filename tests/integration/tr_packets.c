/* tr_packets.c - see tr_packets.h. Packet layouts: Core spec Vol 4 Part E 5.4.1 (command),
 * 5.4.2 (ACL), 5.4.4 (event); H4 indicators Vol 4 Part A 2. */
#include "tr_packets.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/bytes.h"
#include "hci/hci.h"
#include "transport/h4.h"
#include "transport/transport_impl.h"

enum { CH_CTL, CH_ACL, CH_COUNT }; /* commands/events; ACL data */
static const uint8_t ch_indicator[CH_COUNT] = { H4_EVT, H4_ACL }; /* what comes up */

#define DGRAM_MAX (4 + 65535)       /* an ACL packet without indicator */
#define RX_BUF (256 * 1024)         /* received packets, with indicators, back to back */
#define TXQ (64 * 1024)             /* per channel: [le16 length][packet] entries */

/* ---- the controller's side: a relay between the channels and btvirt's H4 stream ----------- */

typedef struct relay {
	int bt;             /* btvirt, H4 stream */
	int ch[CH_COUNT];   /* the controller's ends of the channels */
	pthread_t th;
	h4_deframer h4;
	uint8_t frame[H4_MAX_PACKET];
	uint8_t dgram[1 + DGRAM_MAX];
	struct relay *next;
} relay;

static pthread_mutex_t relays_lock = PTHREAD_MUTEX_INITIALIZER;
static relay *relays;
static unsigned long count_down, count_up; /* under relays_lock */

static bool write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static void count(unsigned long *c)
{
	pthread_mutex_lock(&relays_lock);
	(*c)++;
	pthread_mutex_unlock(&relays_lock);
}

/* btvirt's stream -> one datagram per packet, without its indicator, on its channel. */
static bool relay_up(relay *r)
{
	uint8_t buf[16384];
	ssize_t n = recv(r->bt, buf, sizeof buf, 0);
	if (n <= 0)
		return false;
	const uint8_t *p = buf;
	size_t left = (size_t)n;
	while (left) {
		size_t used;
		ssize_t k = h4_feed(&r->h4, p, left, &used);
		p += used;
		left -= used;
		if (k < 0)
			return false;
		if (k == 0)
			continue;
		int ch = r->h4.buf[0] == H4_EVT ? CH_CTL : r->h4.buf[0] == H4_ACL ? CH_ACL : -1;
		if (ch < 0)
			continue; /* SCO, ISO: not carried */
		if (send(r->ch[ch], r->h4.buf + 1, (size_t)k - 1, MSG_NOSIGNAL) != k - 1)
			return false;
		count(&count_up);
	}
	return true;
}

/* One datagram from the host on channel ch -> btvirt, with the indicator H4 needs. */
static bool relay_down(relay *r, int ch)
{
	ssize_t n = recv(r->ch[ch], r->dgram + 1, DGRAM_MAX, 0);
	if (n <= 0)
		return false;
	r->dgram[0] = ch == CH_CTL ? H4_CMD : H4_ACL;
	count(&count_down);
	return write_all(r->bt, r->dgram, 1 + (size_t)n);
}

/* Runs until the host closes its ends, btvirt goes, or tr_packets_kill_all. Closes nothing:
 * the transport's close does, after joining. */
static void *relay_main(void *arg)
{
	relay *r = arg;
	for (;;) {
		struct pollfd p[3] = { { r->bt, POLLIN, 0 }, { r->ch[CH_CTL], POLLIN, 0 }, { r->ch[CH_ACL], POLLIN, 0 } };
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && !relay_up(r))
			break;
		if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && !relay_down(r, CH_CTL))
			break;
		if ((p[2].revents & (POLLIN | POLLHUP | POLLERR)) && !relay_down(r, CH_ACL))
			break;
	}
	/* The host must see the end even if it was btvirt that went. */
	shutdown(r->ch[CH_CTL], SHUT_RDWR);
	shutdown(r->ch[CH_ACL], SHUT_RDWR);
	return NULL;
}

static void relay_kill(relay *r)
{
	shutdown(r->bt, SHUT_RDWR);
	shutdown(r->ch[CH_CTL], SHUT_RDWR);
	shutdown(r->ch[CH_ACL], SHUT_RDWR);
}

int tr_packets_kill_all(void)
{
	int n = 0;
	pthread_mutex_lock(&relays_lock);
	for (relay *r = relays; r; r = r->next, n++)
		relay_kill(r);
	pthread_mutex_unlock(&relays_lock);
	return n;
}

void tr_packets_counts(unsigned long *down, unsigned long *up)
{
	pthread_mutex_lock(&relays_lock);
	*down = count_down;
	*up = count_up;
	pthread_mutex_unlock(&relays_lock);
}

/* ---- the host's side: the transport ---------------------------------------------------------- */

typedef struct {
	uint8_t buf[TXQ];
	size_t len;
} txq;

typedef struct {
	int fd[CH_COUNT]; /* the host's ends, non-blocking */
	relay *r;
	/* receive side */
	uint8_t *rx;      /* RX_BUF + 1 + DGRAM_MAX */
	size_t rx_off, rx_len;
	bool rx_end;
	int rx_errno;
	/* send side */
	txq q[CH_COUNT];
} pk;

static pk *pkt_of(const bt_transport *t) { return t->priv; }

static int connect_btvirt(const tp_ctx *c, const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (!*path || strlen(path) >= sizeof a.sun_path)
		return tp_fail_parse(c, EINVAL, "expected test-packets:PATH of btvirt's socket");
	memcpy(a.sun_path, path, strlen(path) + 1);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return tp_fail(c, "socket", errno, NULL);
	if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
		int e = errno;
		close(s);
		return tp_fail(c, "connect", e, NULL);
	}
	return s;
}

static void pk_free(pk *k)
{
	for (int i = 0; i < CH_COUNT; i++) {
		if (k->fd[i] >= 0)
			close(k->fd[i]);
		if (k->r && k->r->ch[i] >= 0)
			close(k->r->ch[i]);
	}
	if (k->r && k->r->bt >= 0)
		close(k->r->bt);
	free(k->r);
	free(k->rx);
	free(k);
}

/* Two SOCK_SEQPACKET pairs, the relay connected to btvirt, its thread started. */
static int pk_open(bt_transport *t, const tp_ctx *c, const char *arg)
{
	pk *k = calloc(1, sizeof *k);
	relay *r = k ? calloc(1, sizeof *r) : NULL;
	uint8_t *rx = r ? malloc(RX_BUF + 1 + DGRAM_MAX) : NULL;
	if (!rx) {
		free(r);
		free(k);
		return tp_fail(c, "open", ENOMEM, NULL);
	}
	k->r = r;
	k->rx = rx;
	r->bt = -1;
	for (int i = 0; i < CH_COUNT; i++)
		k->fd[i] = r->ch[i] = -1;
	h4_init(&r->h4, r->frame, sizeof r->frame);
	for (int i = 0; i < CH_COUNT; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
			int e = errno;
			pk_free(k);
			return tp_fail(c, "socketpair", e, NULL);
		}
		k->fd[i] = sv[0];
		r->ch[i] = sv[1];
		int r0 = tp_set_nonblock(c, sv[0]);
		if (r0 < 0) {
			pk_free(k);
			return r0;
		}
	}
	r->bt = connect_btvirt(c, arg);
	if (r->bt < 0) {
		int e = r->bt;
		r->bt = -1;
		pk_free(k);
		return e;
	}
	if (pthread_create(&r->th, NULL, relay_main, r) != 0) {
		pk_free(k);
		return tp_fail(c, "pthread_create", EAGAIN, NULL);
	}
	pthread_mutex_lock(&relays_lock);
	r->next = relays;
	relays = r;
	pthread_mutex_unlock(&relays_lock);
	t->priv = k;
	return 0;
}

static void pk_close(bt_transport *t)
{
	pk *k = pkt_of(t);
	pthread_mutex_lock(&relays_lock);
	for (relay **pp = &relays; *pp; pp = &(*pp)->next)
		if (*pp == k->r) {
			*pp = k->r->next;
			break;
		}
	pthread_mutex_unlock(&relays_lock);
	for (int i = 0; i < CH_COUNT; i++) { /* the relay reads the end, then stops */
		close(k->fd[i]);
		k->fd[i] = -1;
	}
	pthread_join(k->r->th, NULL);
	pk_free(k);
	t->priv = NULL;
}

/* ---- send side: one datagram per packet, the indicator says which channel ---------------- */

/* Sends what channel ch's queue holds as far as the socket takes it. 0 or -EPIPE. */
static int pk_flush(bt_transport *t, int ch)
{
	pk *k = pkt_of(t);
	txq *q = &k->q[ch];
	size_t off = 0;
	int r = 0;
	while (off < q->len) {
		size_t n = get_le16(q->buf + off);
		ssize_t w = send(k->fd[ch], q->buf + off + 2, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w < 0) {
			r = tp_tx_fail(t, EPIPE, "the controller connection closed (writing to it failed)");
			off = q->len; /* it can never leave */
			break;
		}
		off += 2 + n;
	}
	memmove(q->buf, q->buf + off, q->len - off);
	q->len -= off;
	return r;
}

static int pk_send(bt_transport *t, const uint8_t *pkt, size_t len)
{
	int ch = pkt[0] == H4_CMD ? CH_CTL : pkt[0] == H4_ACL ? CH_ACL : -1;
	if (ch < 0 || h4_packet_len(pkt, len) != (ssize_t)len)
		return -EINVAL; /* this transport carries commands and ACL data only */
	txq *q = &pkt_of(t)->q[ch];
	int r = pk_flush(t, ch);
	if (r < 0)
		return r;
	if (TXQ - q->len < 2 + len - 1)
		return -ENOBUFS;
	put_le16(q->buf + q->len, (uint16_t)(len - 1));
	memcpy(q->buf + q->len + 2, pkt + 1, len - 1);
	q->len += 2 + len - 1;
	return pk_flush(t, ch);
}

static bool pk_pending(const bt_transport *t) { return pkt_of(t)->q[CH_CTL].len || pkt_of(t)->q[CH_ACL].len; }

static bool pk_can_send(const bt_transport *t)
{
	for (int i = 0; i < CH_COUNT; i++)
		if (TXQ - pkt_of(t)->q[i].len < 2 + BT_TRANSPORT_PACKET_MAX)
			return false;
	return true;
}

/* ---- receive side ------------------------------------------------------------------------------ */

static size_t pk_pollfds(bt_transport *t, struct pollfd *p)
{
	pk *k = pkt_of(t);
	for (int i = 0; i < CH_COUNT; i++) {
		p[i] = (struct pollfd){ k->fd[i], (short)(k->rx_end ? 0 : POLLIN), 0 };
		if (k->q[i].len)
			p[i].events |= POLLOUT;
		if (!p[i].events)
			p[i].fd = -1;
	}
	return CH_COUNT;
}

static void rx_ended(bt_transport *t, int e, const char *why)
{
	pk *k = pkt_of(t);
	k->rx_end = true;
	k->rx_errno = e;
	tp_rx_fail(t, e, "%s", why);
}

/* Whether a datagram of n octets from channel ch is one whole packet (event: code,
 * Parameter_Total_Length; ACL: handle and flags, Data_Total_Length). */
static bool whole(int ch, const uint8_t *p, size_t n)
{
	if (ch == CH_CTL)
		return n >= 2 && n == 2u + p[1];
	return n >= 4 && n == 4u + get_le16(p + 2);
}

/* Reads channel ch's datagrams while there is room for the largest. */
static void read_channel(bt_transport *t, int ch)
{
	pk *k = pkt_of(t);
	while (!k->rx_end && RX_BUF + 1 + DGRAM_MAX - k->rx_len >= 1 + DGRAM_MAX) {
		uint8_t *dst = k->rx + k->rx_len;
		ssize_t n = recv(k->fd[ch], dst + 1, DGRAM_MAX, MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			char why[128];
			snprintf(why, sizeof why, "the controller connection closed%s%s", n < 0 ? ": " : "",
				 n < 0 ? strerror(errno) : "");
			rx_ended(t, EPIPE, why);
			return;
		}
		if (n > DGRAM_MAX || !whole(ch, dst + 1, (size_t)n)) {
			rx_ended(t, EPROTO, "the controller sent a malformed packet: a datagram that is not one whole packet");
			return;
		}
		dst[0] = ch_indicator[ch];
		k->rx_len += 1 + (size_t)n;
	}
}

static int pk_events(bt_transport *t, const struct pollfd *p, size_t n)
{
	pk *k = pkt_of(t);
	int r = 0;
	if (k->rx_off) { /* the packets handed out are gone: make room */
		memmove(k->rx, k->rx + k->rx_off, k->rx_len - k->rx_off);
		k->rx_len -= k->rx_off;
		k->rx_off = 0;
	}
	/* Events first: a Connection Complete must come before the link's first data. */
	bool reading = false;
	for (int i = 0; i < CH_COUNT && (size_t)i < n; i++)
		if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
			reading = true;
			read_channel(t, i);
		}
	for (int i = 0; i < CH_COUNT && (size_t)i < n; i++)
		if ((p[i].revents & POLLOUT) && r == 0)
			r = pk_flush(t, i);
	if (reading && k->rx_end)
		return -k->rx_errno;
	return r;
}

static ssize_t pk_recv(bt_transport *t, const uint8_t **pkt)
{
	pk *k = pkt_of(t);
	if (k->rx_off < k->rx_len) {
		ssize_t n = h4_packet_len(k->rx + k->rx_off, k->rx_len - k->rx_off); /* checked on the way in */
		*pkt = k->rx + k->rx_off;
		k->rx_off += (size_t)n;
		return n;
	}
	return k->rx_end ? -k->rx_errno : 0;
}

static const bt_transport_ops pk_ops = {
	.open = pk_open,
	.pollfds = pk_pollfds,
	.events = pk_events,
	.recv = pk_recv,
	.send = pk_send,
	.pending = pk_pending,
	.can_send = pk_can_send,
	.close = pk_close,
};

int tr_packets_register(void)
{
	int r = bt_transport_register("test-packets", &pk_ops);
	return r == -EEXIST ? 0 : r;
}
