/* socket.c - btsock sockets of the user-space backend: the public socket calls (each runs its
 * step on the socket's adapter loop, runtime.h), and the loop-side work that moves bytes between
 * a socket's socketpair and its L2CAP channel or RFCOMM DLC.
 *
 * Flow control: data from the application is read from the socketpair only when the channel
 * can take it (rfcomm_write accepts / l2cap_can_send), so a full link blocks the writer's
 * socket buffer. Data for the application is moved from RFCOMM's receive ring only as fast as
 * the socketpair accepts it; RFCOMM grants the peer credits as its ring frees, so a reader that
 * stops reading stops the sender. L2CAP basic mode has no flow control: SDUs the application
 * does not read are queued up to RT_L2Q bytes, then dropped and counted, as the kernel does. */
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bytes.h"
#include "sdp/sdp.h"

static const char *port_word(const bsock *s) { return s->proto == BTSOCK_RFCOMM ? "channel" : "psm"; }

/* "3" for a channel, "0x1001" for a PSM (PSMs are written in hex everywhere else). */
static const char *port_str(const bsock *s, unsigned port)
{
	static _Thread_local char buf[16];
	snprintf(buf, sizeof buf, s->proto == BTSOCK_RFCOMM ? "%u" : "0x%04x", port);
	return buf;
}

/* ------------------------------------------------------------------ registry and lifetime */

/* Sockets the application can name by fd. reg_mu guards the list; it is held only to look
 * up, add or remove. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static bsock *reg_socks;

static void reg_add(bsock *s)
{
	atomic_fetch_add(&s->refs, 1);
	pthread_mutex_lock(&reg_mu);
	s->reg_next = reg_socks;
	reg_socks = s;
	pthread_mutex_unlock(&reg_mu);
}

/* Takes s out of the registry; true if it was there (the caller drops that reference). */
static bool reg_remove(bsock *s)
{
	bool was = false;
	pthread_mutex_lock(&reg_mu);
	for (bsock **pp = &reg_socks; *pp; pp = &(*pp)->reg_next) {
		if (*pp == s) {
			*pp = s->reg_next;
			was = true;
			break;
		}
	}
	pthread_mutex_unlock(&reg_mu);
	return was;
}

static bsock *reg_find(int fd, bool take)
{
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	bsock *found = NULL;
	pthread_mutex_lock(&reg_mu);
	for (bsock **pp = &reg_socks; *pp; pp = &(*pp)->reg_next) {
		bsock *s = *pp;
		if (s->app_fd == fd && s->dev == st.st_dev && s->ino == st.st_ino) {
			found = s;
			if (take) { /* the registry's reference becomes the caller's */
				*pp = s->reg_next;
				} else {
				atomic_fetch_add(&s->refs, 1);
			}
			break;
		}
	}
	pthread_mutex_unlock(&reg_mu);
	return found;
}

bsock *rt_sock_get(int fd) { return reg_find(fd, false); }

bool rt_owns_fd(int fd)
{
	bsock *s = rt_sock_get(fd);
	rt_sock_put(s);
	return s != NULL;
}

static void sock_destroy(bsock *s)
{
	if (s->rt_fd >= 0)
		close(s->rt_fd);
	free(s->stage);
	pthread_mutex_destroy(&s->mu);
	rt_adapter_put(s->ad);
	free(s);
}

void rt_sock_put(bsock *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1)
		sock_destroy(s);
}

static void set_bufs(int fd)
{
	int sz = RT_SOCKBUF;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
}

/* A new socket with one reference (the creator's). */
static bsock *sock_new(enum btsock_proto proto)
{
	int sv[2];
	int type = proto == BTSOCK_L2CAP ? SOCK_SEQPACKET : SOCK_STREAM;
	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) < 0)
		return NULL;
	bsock *s = calloc(1, sizeof *s);
	struct stat st;
	if (!s || fstat(sv[0], &st) < 0) {
		free(s);
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	pthread_mutex_init(&s->mu, NULL);
	s->app_fd = sv[0];
	s->rt_fd = sv[1];
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->proto = proto;
	atomic_init(&s->timeout_ms, -1);
	s->imtu = L2CAP_DEFAULT_MTU;
	fcntl(s->rt_fd, F_SETFL, O_NONBLOCK);
	set_bufs(s->app_fd);
	set_bufs(s->rt_fd);
	return s;
}

int rt_sock_attach(bsock *s, adapter *ad, const char *call)
{
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	if (!s->ad) {
		rt_adapter_get(ad);
		s->ad = ad;
	} else if (s->ad != ad) {
		rc = rt_fail(EINVAL, "%s: socket %d already belongs to another adapter", call, s->app_fd);
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* The adapter s is attached to (referenced), or NULL. */
static adapter *sock_adapter(bsock *s)
{
	pthread_mutex_lock(&s->mu);
	adapter *ad = s->ad;
	if (ad)
		rt_adapter_get(ad);
	pthread_mutex_unlock(&s->mu);
	return ad;
}

static const rt_sock_hooks sock_hooks = {
	.poll_events = rt_sock_poll_events,
	.io = rt_sock_io,
	.service = rt_sock_service,
	.gone = rt_sock_adapter_gone,
	.unlist = rt_sock_unlist,
	.ended = rt_sock_adapter_ended,
};

/* On the loop: s joins its adapter's socket list (a reference of the list's). */
static void sock_list(bsock *s)
{
	if (s->listed)
		return;
	s->ad->sock_hooks = &sock_hooks;
	atomic_fetch_add(&s->refs, 1);
	s->listed = true;
	s->next = s->ad->socks;
	s->ad->socks = s;
}

/* On the loop: a socket that never got further than S_NEW leaves ad, free to attach to
 * another adapter. */
static void sock_detach(adapter *ad, bsock *s)
{
	for (bsock **pp = &ad->socks; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	pthread_mutex_lock(&s->mu);
	s->ad = NULL;
	pthread_mutex_unlock(&s->mu);
	rt_adapter_put(ad); /* the socket's reference; the registry's keeps ad alive */
	if (s->listed) {
		s->listed = false;
		rt_sock_put(s); /* the list's; the calling request holds another */
	}
}

/* On the loop, for a socket leaving ad->socks (the caller unlinked it): its stack objects go,
 * and so does the list's reference. */
void rt_sock_unlist(bsock *s)
{
	adapter *ad = s->ad;
	bt_stack *st = ad->st;
	if (s->dlc)
		rfcomm_close(s->dlc);
	if (s->ch)
		l2cap_close(s->ch);
	s->dlc = NULL;
	s->ch = NULL;
	if (s->sdp_handle)
		sdp_server_remove_record(bt_stack_sdp(st), s->sdp_handle);
	s->sdp_handle = 0;
	if (s->registered) {
		if (s->proto == BTSOCK_RFCOMM)
			rfcomm_unlisten(bt_stack_rfcomm(st), (uint8_t)s->port);
		else
			l2cap_unlisten(bt_stack_l2cap(st), s->port);
		s->registered = false;
	}
	/* Connections never handed out die with their listener. */
	for (bsock *c = ad->socks; c; c = c->next) {
		if (c->parent == s) {
			c->parent = NULL;
			c->zombie = true;
			close(c->app_fd);
		}
	}
	if (s->parent) { /* a connection that was never accepted: its app_fd is ours */
		bsock *p = s->parent;
		if (s->queued) {
			for (int i = 0; i < p->accq_n; i++) {
				if (p->accq[i] == s) {
					memmove(p->accq + i, p->accq + i + 1, (size_t)(p->accq_n - i - 1) * sizeof p->accq[0]);
					p->accq_n--;
					break;
				}
			}
		} else {
			p->pending--;
		}
		s->parent = NULL;
		close(s->app_fd);
	}
	/* An application that closed its fd without btsock_close: the fd's number may be reused. */
	if (s->app_gone && reg_remove(s))
		rt_sock_put(s);
	s->listed = false;
	rt_sock_put(s);
}

static bool app_fd_alive(const bsock *s);

void rt_sock_adapter_ended(bsock *s)
{
	rt_sock_adapter_gone(s, -ENETDOWN);
	if (!s->parent && !app_fd_alive(s))
		s->app_gone = true; /* closed without btsock_close: leaves the registry too */
	if (s->rt_fd >= 0) { /* the application reads what arrived, then end of file */
		close(s->rt_fd);
		s->rt_fd = -1;
	}
	rt_sock_unlist(s); /* may drop the last reference */
}

void rt_sock_release_all(void)
{
	for (;;) {
		bsock *found = NULL;
		pthread_mutex_lock(&reg_mu);
		for (bsock **pp = &reg_socks; *pp; pp = &(*pp)->reg_next) {
			bsock *s = *pp;
			*pp = s->reg_next;
			found = s;
			break;
		}
		pthread_mutex_unlock(&reg_mu);
		if (!found)
			return;
		rt_sock_put(found);
	}
}

/* ------------------------------------------------------------------ errors */

static const char *conn_reason(int err)
{
	switch (-err) {
	case ECONNREFUSED: return "connection refused (nobody listens there)";
	case EHOSTDOWN: return "no device answered at that address (page timeout)";
	case ETIMEDOUT: return "timed out";
	case ECONNRESET: return "the link went down";
	case EACCES: return "refused for security reasons (pairing failed; a peer paired with before may hold a key this run does not: set BTSOCK_KEYS to keep keys across runs, or remove the pairing on the peer)";
	case ENETDOWN: return "the adapter went away";
	case EADDRINUSE: return "this adapter already has a connection to that channel of that device";
	default: return strerror(-err);
	}
}

/* Why the socket's connection failed or ended: for a security refusal, the reason the core
 * kept (hci_sec_reason). */
static const char *sock_reason(const bsock *s, int err)
{
	if (-err != EACCES || !s->sec_reason)
		return conn_reason(err);
	switch (s->sec_reason) {
	case HCI_SEC_REJECTED: return "refused for security reasons: pairing was rejected by the user (the agent)";
	case HCI_SEC_WRONG_PIN: return "refused for security reasons: wrong PIN";
	case HCI_SEC_WRONG_PASSKEY: return "refused for security reasons: wrong passkey (the passkey typed was not the one shown)";
	case HCI_SEC_NO_KEY: return "refused for security reasons: no link key, and pairing was not possible or not allowed";
	case HCI_SEC_ENCRYPTION_REFUSED: return "refused for security reasons: encryption was refused";
	case HCI_SEC_KEY_TOO_SHORT: return "refused for security reasons: the encryption key is too short (below the minimum key size)";
	case HCI_SEC_PEER_AUTH_FAILURE: return "refused for security reasons: the peer reported an authentication failure";
	case HCI_SEC_TIMEOUT: return "refused for security reasons: pairing timed out";
	case HCI_SEC_WEAK_KEY: return "refused for security reasons: the link key is too weak for the socket's security level";
	case HCI_SEC_NO_PIN: return "refused for security reasons: the peer asked for a PIN and none was given (btsock_set_pin, --pin, or an agent with a pin callback)";
	default: return conn_reason(err);
	}
}

/* ------------------------------------------------------------------ channel callbacks */

static void child_ready(bsock *s);

static void sock_opened(bsock *s)
{
	if (!s->stage && s->proto == BTSOCK_L2CAP)
		s->stage = malloc(RT_L2Q);
	if (!s->stage && s->proto == BTSOCK_L2CAP) {
		s->conn_err = -ENOMEM;
		s->state = S_FAILED;
		return;
	}
	/* Unblock a non-blocking connect's fd: take back the filler. */
	if (s->filler) {
		char junk[4096];
		while (s->filler) {
			size_t n = s->proto == BTSOCK_RFCOMM ? (s->filler < sizeof junk ? s->filler : sizeof junk) : 1;
			ssize_t r = recv(s->rt_fd, junk, s->proto == BTSOCK_RFCOMM ? n : sizeof junk, MSG_DONTWAIT);
			if (r <= 0)
				break;
			s->filler -= s->proto == BTSOCK_RFCOMM ? (size_t)r : 1;
		}
		s->filler = 0;
		set_bufs(s->app_fd);
	}
	s->state = S_CONNECTED;
	s->want_in = true;
	if (s->parent)
		child_ready(s);
}

/* A fault ended an established channel (link lost, timed out, adapter gone): what the
 * application wrote and the stack never took is lost, and so is everything it writes from now
 * on. Shutting rt_fd's read side makes its writes fail with EPIPE at once (not vanish into the
 * socketpair), while what arrived before the fault stays readable; btsock_sock_error() says
 * why. A stream's unread bytes are counted for that sentence. */
static void sock_fault(bsock *s)
{
	if (s->rd_shut || s->shut)
		return;
	int q = 0;
	if (s->proto == BTSOCK_RFCOMM && ioctl(s->rt_fd, FIONREAD, &q) == 0 && q > 0)
		s->unsent += (size_t)q;
	shutdown(s->rt_fd, SHUT_RD);
	s->rd_shut = true;
	s->want_in = false;
}

static void sock_ended(bsock *s, int err)
{
	if (s->state == S_CONNECTING) {
		s->state = S_FAILED;
		s->conn_err = err ? err : -ECONNREFUSED;
		if (s->filler) { /* a non-blocking connect's fd polls writable now */
			char junk[4096];
			while (recv(s->rt_fd, junk, sizeof junk, MSG_DONTWAIT) > 0)
				;
			s->filler = 0;
		}
		if (s->parent)
			s->zombie = true;
		return;
	}
	s->state = S_CLOSED;
	s->conn_err = err;
	s->peer_done = true;
	s->want_out = true;
	if (err)
		sock_fault(s);
}

static void l_opened(void *ctx, l2cap_chan *ch) { sock_opened(ctx); }
static void l_writable(void *ctx, l2cap_chan *ch) { ((bsock *)ctx)->want_in = true; }
static void l_closed(void *ctx, l2cap_chan *ch, int err)
{
	((bsock *)ctx)->sec_reason = l2cap_chan_sec_reason(ch);
	sock_ended(ctx, err);
}

/* An SDU for the application: straight into the socketpair, else the bounded queue. */
static void l_data(void *ctx, l2cap_chan *ch, const uint8_t *p, size_t n)
{
	bsock *s = ctx;
	if (s->stage_len == 0 && send(s->rt_fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)n)
		return;
	if (s->stage_len + 2 + n > RT_L2Q) {
		s->dropped++;
		return;
	}
	put_le16(s->stage + s->stage_len, (uint16_t)n);
	memcpy(s->stage + s->stage_len + 2, p, n);
	s->stage_len += 2 + n;
	s->want_out = true;
}
static const l2cap_chan_ops l_ops = { l_opened, l_data, l_writable, l_closed };

static void r_opened(void *ctx, rfcomm_dlc *d) { sock_opened(ctx); }
static void r_readable(void *ctx, rfcomm_dlc *d) { ((bsock *)ctx)->want_out = true; }
static void r_writable(void *ctx, rfcomm_dlc *d) { ((bsock *)ctx)->want_in = true; }
static void r_closed(void *ctx, rfcomm_dlc *d, int err)
{
	((bsock *)ctx)->sec_reason = rfcomm_dlc_sec_reason(d);
	sock_ended(ctx, err);
}
static const rfcomm_dlc_ops r_ops = { r_opened, r_readable, r_writable, r_closed };

/* ------------------------------------------------------------------ accepting */

/* Connections the core accepted that are not open yet (L2CAP configuration, RFCOMM PN/MSC) do
 * not count against the backlog, which bounds those waiting for btsock_accept() as TCP's
 * accept queue does. They are bounded per peer instead: a peer that opens more than
 * RT_HALF_OPEN_PEER loses its oldest, so a peer that floods a listener with connection
 * requests it never configures blocks no one, not even its own next connection; and all
 * peers together hold at most RT_HALF_OPEN_MAX. */
#define RT_HALF_OPEN_PEER 8
#define RT_HALF_OPEN_MAX 64

static bool half_open(const bsock *c, const bsock *parent)
{
	return c->parent == parent && !c->queued && !c->zombie && c->state == S_CONNECTING;
}

static bool half_open_room(bsock *parent, const bt_addr *peer)
{
	int all = 0, mine = 0;
	bsock *oldest = NULL; /* ad->socks is newest first: the last match is the oldest */
	for (bsock *c = parent->ad->socks; c; c = c->next) {
		if (!half_open(c, parent))
			continue;
		all++;
		if (bt_addr_eq(&c->peer, peer)) {
			mine++;
			oldest = c;
		}
	}
	if (mine >= RT_HALF_OPEN_PEER) {
		oldest->state = S_FAILED; /* the loop frees it and closes its channel */
		oldest->conn_err = -ECONNRESET;
		oldest->zombie = true;
		return true;
	}
	return all < RT_HALF_OPEN_MAX;
}

static int accept_common(bsock *parent, const bt_addr *peer, bsock **out)
{
	if (parent->state != S_LISTENING || parent->accq_n >= parent->backlog ||
	    !half_open_room(parent, peer))
		return -ENOBUFS;
	bsock *c = sock_new(parent->proto);
	if (!c)
		return -ENOMEM;
	rt_adapter_get(parent->ad);
	c->ad = parent->ad;
	sock_list(c);
	rt_sock_put(c); /* the list holds it */
	c->port = parent->port;
	c->state = S_CONNECTING;
	c->parent = parent;
	parent->pending++;
	*out = c;
	return 0;
}

static int l_accept(void *srv, l2cap_chan *ch, const l2cap_chan_ops **ops, void **ctx)
{
	bsock *c;
	int rc = accept_common(srv, l2cap_chan_peer(ch), &c);
	if (rc < 0)
		return rc;
	c->ch = ch;
	c->peer = *l2cap_chan_peer(ch);
	c->peer_port = l2cap_chan_psm(ch);
	*ops = &l_ops;
	*ctx = c;
	return 0;
}

static int r_accept(void *srv, rfcomm_dlc *d, const rfcomm_dlc_ops **ops, void **ctx)
{
	bsock *c;
	int rc = accept_common(srv, rfcomm_dlc_peer(d), &c);
	if (rc < 0)
		return rc;
	c->dlc = d;
	c->peer = *rfcomm_dlc_peer(d);
	c->peer_port = rfcomm_dlc_channel(d);
	*ops = &r_ops;
	*ctx = c;
	return 0;
}

/* A child opened: it waits in its listener's queue; the listener's fd turns readable. */
static void child_ready(bsock *c)
{
	bsock *p = c->parent;
	if (p->accq_n >= p->backlog) { /* the accept queue filled while it was half open */
		c->state = S_FAILED;
		c->conn_err = -ECONNREFUSED;
		c->zombie = true; /* freed by the loop (pending counted down there), channel closed */
		return;
	}
	p->pending--;
	c->queued = true;
	p->accq[p->accq_n++] = c;
	uint8_t b = 1;
	if (send(p->rt_fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* the listener's buffer is full of wake-up bytes: it is readable anyway */
	}
}

/* ------------------------------------------------------------------ loop side */

void rt_sock_poll_events(bsock *s, short *events)
{
	*events = 0;
	if (s->state == S_CONNECTED && s->want_in && !s->app_eof)
		*events |= POLLIN;
	if (s->want_out && !s->shut)
		*events |= POLLOUT;
	if (!s->app_gone && !s->shut && !s->rd_shut && s->state != S_CONNECTED)
		*events |= POLLRDHUP; /* notice an application that closes its fd */
}

/* Whether the application still holds its fd (it may have closed it without telling us). */
static bool app_fd_alive(const bsock *s)
{
	struct stat st;
	return fstat(s->app_fd, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino;
}

/* Nothing more comes from the application: close the channel once what it sent has gone. */
static void app_finished(bsock *s)
{
	s->app_eof = true;
	s->want_in = false;
}

/* From the socketpair straight into the DLC's transmit ring (rfcomm_write_space): one copy,
 * and only as much as the ring takes, so a full link leaves the rest in the socketpair. */
static void rf_app_to_stack(bsock *s)
{
	for (int i = 0; i < 16 && s->dlc; i++) {
		uint8_t *p;
		/* rfcomm_write_space may arm r_writable: clear the flag first and let the
		 * callback set it again. */
		s->want_in = false;
		ssize_t room = rfcomm_write_space(s->dlc, &p);
		if (room <= 0)
			return; /* writable follows (or the DLC ended) */
		ssize_t n = recv(s->rt_fd, p, (size_t)room, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			app_finished(s);
			return;
		}
		s->want_in = true;
		if (n < 0)
			return;
		rfcomm_write_commit(s->dlc, (size_t)n);
		if (n < room)
			return; /* the socketpair is empty for now: poll says when more comes */
	}
}

/* On the SEQPACKET pair a recv() of 0 is an empty message or the application's end (close or
 * shutdown); only the hang-up tells them apart. */
static bool l2_app_hung_up(const bsock *s)
{
	struct pollfd p = { s->rt_fd, POLLRDHUP, 0 };
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP));
}

static void l2_app_to_stack(bsock *s)
{
	uint8_t *buf = s->ad->l2buf; /* L2CAP_MAX_MTU + 1 */
	const size_t cap = L2CAP_MAX_MTU + 1;
	for (int i = 0; i < 16 && s->ch; i++) {
		ssize_t n = recv(s->rt_fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			app_finished(s);
			return;
		}
		if (n < 0)
			return;
		if (n == 0 && l2_app_hung_up(s)) {
			/* The end, or an empty message sent just before it: take one, look again. */
			recv(s->rt_fd, buf, cap, MSG_DONTWAIT);
			if (recv(s->rt_fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT) <= 0) {
				app_finished(s);
				return;
			}
			if (l2cap_send(s->ch, buf, 0) < 0) /* it was a message, and more follow */
				s->dropped++;
			continue;
		}
		if ((size_t)n > l2cap_chan_omtu(s->ch)) {
			recv(s->rt_fd, buf, cap, MSG_DONTWAIT); /* cannot be sent whole: dropped */
			s->dropped++;
			continue;
		}
		s->want_in = false; /* l2cap_send may call l_writable before it returns */
		if (!l2cap_can_send(s->ch, (size_t)n))
			return;
		ssize_t r = recv(s->rt_fd, buf, cap, MSG_DONTWAIT);
		if (r >= 0) /* an empty message too (Core Vol 3 Part A 3.1 allows it) */
			l2cap_send(s->ch, buf, (size_t)r);
		s->want_in = true;
	}
}

/* Straight from RFCOMM's receive ring into the socketpair, no copy in between: what the
 * socketpair takes is consumed (and becomes credits for the peer). */
static void rf_stack_to_app(bsock *s)
{
	const uint8_t *p;
	size_t n;
	while (s->dlc && (n = rfcomm_peek(s->dlc, &p)) > 0) {
		ssize_t w = send(s->rt_fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			if (errno != EAGAIN)
				s->app_gone = true;
			return; /* POLLOUT brings us back */
		}
		rfcomm_consume(s->dlc, (size_t)w);
	}
	s->want_out = false;
}

static void l2_stack_to_app(bsock *s)
{
	while (s->stage_off < s->stage_len) {
		size_t n = get_le16(s->stage + s->stage_off);
		ssize_t w = send(s->rt_fd, s->stage + s->stage_off + 2, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			if (errno != EAGAIN)
				s->app_gone = true;
			return;
		}
		s->stage_off += 2 + n;
	}
	s->stage_off = s->stage_len = 0;
	s->want_out = false;
}

void rt_sock_io(bsock *s, short revents)
{
	if (revents & POLLOUT)
		s->want_out = true;
	if ((revents & (POLLIN | POLLHUP | POLLERR)) && s->state == S_CONNECTED && !s->app_eof) {
		if (s->proto == BTSOCK_RFCOMM)
			rf_app_to_stack(s);
		else
			l2_app_to_stack(s);
	}
	if ((revents & (POLLHUP | POLLERR)) || ((revents & POLLRDHUP) && s->state != S_CONNECTED))
		s->app_gone = true;
}

/* Per round: move pending bytes up, and finish closes. */
void rt_sock_service(bsock *s)
{
	if ((s->stage || s->proto == BTSOCK_RFCOMM) && s->want_out && !s->shut) {
		if (s->proto == BTSOCK_RFCOMM)
			rf_stack_to_app(s);
		else
			l2_stack_to_app(s);
	}
	/* The peer is done and the application has everything: end of file for it, and EPIPE for
	 * its writes. */
	if (s->peer_done && !s->shut && !s->want_out &&
	    (s->proto != BTSOCK_RFCOMM || !s->dlc || rfcomm_readable(s->dlc) == 0)) {
		shutdown(s->rt_fd, SHUT_RDWR);
		s->shut = true;
		if (s->dlc) {
			rfcomm_close(s->dlc);
			s->dlc = NULL;
		}
		if (s->ch) {
			l2cap_close(s->ch);
			s->ch = NULL;
		}
	}
	/* The application is done sending: close the channel once its bytes are in the stack. */
	if (s->app_eof && s->state == S_CONNECTED) {
		if (s->dlc) {
			rfcomm_close(s->dlc); /* sends what is queued, then DISC */
			s->dlc = NULL;
		}
		if (s->ch && l2cap_chan_tx_idle(s->ch)) { /* its own SDUs, not the whole stack's */
			l2cap_close(s->ch);
			s->ch = NULL;
		}
		if (!s->dlc && !s->ch)
			s->state = S_CLOSED;
	}
	/* While rt_fd is not polled for input, POLLHUP cannot say the application closed its fd:
	 * look at the fd itself, a few times a second (an fstat per round cost ~2 % of a transfer). */
	if ((s->shut || s->rd_shut || (s->state == S_CONNECTED && !s->want_in)) && !s->app_gone && !s->parent) {
		uint64_t now = s->ad->now;
		if (now - s->alive_checked >= 100) {
			s->alive_checked = now;
			if (!app_fd_alive(s))
				s->app_gone = true;
		}
	}
	if (s->app_gone && !s->zombie && !s->held) {
		if (s->state == S_CONNECTED && (s->dlc || s->ch)) {
			app_finished(s); /* flush first; freed on a later round */
			return;
		}
		s->zombie = true;
	}
}

void rt_sock_adapter_gone(bsock *s, int err)
{
	if (s->dlc) {
		rfcomm_close(s->dlc);
		s->dlc = NULL;
	}
	if (s->ch) {
		l2cap_close(s->ch);
		s->ch = NULL;
	}
	s->registered = false;
	if (s->state == S_CONNECTING) {
		s->state = S_FAILED;
		s->conn_err = err;
	} else if (s->state == S_CONNECTED || (s->state == S_CLOSED && !s->shut && !s->conn_err)) {
		/* Connected, or ended by the peer with bytes the application has not read yet:
		 * those die with the adapter. */
		s->state = S_CLOSED;
		s->conn_err = err;
		sock_fault(s);
	}
	if (!s->shut) {
		shutdown(s->rt_fd, SHUT_RDWR);
		s->shut = true;
	}
}

/* ------------------------------------------------------------------ public calls */

/* Each public call on a socket: the socket (referenced) or EBADF. */
#define GET_OR_FAIL(s, fd, call)                                                        \
	bsock *s = rt_sock_get(fd);                                                     \
	if (!s)                                                                         \
	return rt_fail(EBADF, "%s: %d is not an open btsock socket", call, fd)

static bool sock_attached(bsock *s)
{
	pthread_mutex_lock(&s->mu);
	bool attached = s->ad != NULL;
	pthread_mutex_unlock(&s->mu);
	return attached;
}

/* Runs step on the adapter s is attached to; `unattached` is the result for a socket that
 * never attached (computed by the caller). */
static int sock_call(bsock *s, rt_step_fn step, void *arg, int timeout_ms, const char *call)
{
	adapter *ad = sock_adapter(s);
	int rc = rt_call(ad, step, arg, timeout_ms, call);
	rt_adapter_put(ad);
	return rc;
}

int rt_socket(enum btsock_proto proto)
{
	if (proto != BTSOCK_L2CAP && proto != BTSOCK_RFCOMM)
		return rt_fail(EPROTONOSUPPORT, "btsock_socket: unknown protocol %d (BTSOCK_L2CAP or BTSOCK_RFCOMM)",
			       (int)proto);
	bsock *s = sock_new(proto);
	if (!s)
		return rt_fail(errno ? errno : ENOMEM, "btsock_socket: %s", strerror(errno ? errno : ENOMEM));
	int fd = s->app_fd;
	reg_add(s);
	rt_sock_put(s);
	return fd;
}

static int check_port(const bsock *s, const char *call, unsigned port)
{
	if (s->proto == BTSOCK_RFCOMM && port > RFCOMM_CHANNEL_MAX)
		return rt_fail(EINVAL, "%s: RFCOMM channel %u is out of range (1-30, or 0 for any)", call, port);
	if (s->proto == BTSOCK_L2CAP && port != 0 && (port > 0xffff || (port & 0x0101) != 0x0001))
		return rt_fail(EINVAL, "%s: 0x%04x is not a valid PSM (odd, with the upper byte's lowest bit 0)",
			       call, port);
	return 0;
}

static adapter *resolve_local(const char *local, const char *call)
{
	if (!local || !*local)
		return rt_default_adapter(call);
	bt_addr a;
	if (bt_addr_parse(local, &a) < 0) {
		rt_fail(EINVAL, "%s: invalid local address '%s': expected \"\" or six hex bytes like 01:23:45:67:89:AB",
			call, local);
		return NULL;
	}
	adapter *ad = rt_adapter_by_addr(&a);
	if (!ad)
		rt_fail(EADDRNOTAVAIL, "%s: no open adapter has address %s (open it with btsock_adapter_open)", call,
			local);
	return ad;
}

/* Registers the socket's port with the core (0: the core picks). Loop. */
int rt_sock_register(bsock *s, const char *call)
{
	int rc;
	if (s->proto == BTSOCK_RFCOMM)
		rc = rfcomm_listen_sec(bt_stack_rfcomm(s->ad->st), (uint8_t)s->port, s->sec_level, r_accept, s);
	else
		rc = l2cap_listen_sec(bt_stack_l2cap(s->ad->st), s->port, s->imtu, s->sec_level, l_accept, s);
	if (rc == -EADDRINUSE)
		return s->port ? rt_fail(EADDRINUSE, "%s: %s %s is in use", call, port_word(s), port_str(s, s->port))
			       : rt_fail(EADDRINUSE, "%s: no free %s left", call, port_word(s));
	if (rc < 0)
		return rt_fail(-rc, "%s: %s", call, strerror(-rc));
	s->port = (uint16_t)rc;
	s->registered = true;
	return 0;
}

/* A step's common start: the socket is on its adapter's list (so the loop's end deals with
 * it), and the adapter is usable. A request that never reached the loop (RT_DOWN first) leaves
 * the socket unattached instead. */
static int sock_step_begin(adapter *ad, bsock *s, rt_why why, const char *call)
{
	if (why == RT_DOWN && !s->listed) {
		pthread_mutex_lock(&s->mu);
		bool mine = s->ad == ad;
		if (mine)
			s->ad = NULL;
		pthread_mutex_unlock(&s->mu);
		if (mine)
			rt_adapter_put(ad);
	}
	if (why == RT_DOWN || ad->closing || ad->dead) {
		if (why != RT_DOWN)
			sock_list(s);
		if (!ad->closing && !ad->dead)
			return rt_fail(ENETDOWN, "%s: the adapter was closed (btsock_adapter_close or btsock_shutdown)", call);
		return rt_adapter_down(ad, call);
	}
	sock_list(s);
	return 0;
}

/* ---- bind, listen */

typedef struct {
	bsock *s;
	unsigned port;
	int backlog;
} port_args;

static int bind_step(adapter *ad, void *arg, rt_why why)
{
	port_args *a = arg;
	bsock *s = a->s;
	if (sock_step_begin(ad, s, why, "bind") < 0)
		return -1;
	if (s->state != S_NEW)
		return rt_fail(EINVAL, "bind: socket %d is already bound", s->app_fd);
	s->port = (uint16_t)a->port;
	if (a->port && rt_sock_register(s, "bind") < 0) {
		s->port = 0;
		sock_detach(ad, s); /* it may bind to another adapter next */
		return -1;
	}
	s->state = S_BOUND;
	s->bound = true;
	rt_clear_error();
	return 0;
}

int rt_bind(int fd, const char *local, unsigned port)
{
	GET_OR_FAIL(s, fd, "bind");
	int rc = -1;
	adapter *ad = NULL;
	if (check_port(s, "bind", port) == 0 && (ad = resolve_local(local, "bind")) &&
	    rt_sock_attach(s, ad, "bind") == 0)
		rc = rt_call(ad, bind_step, &(port_args){ .s = s, .port = port }, -1, "bind");
	rt_adapter_put(ad);
	rt_sock_put(s);
	return rc;
}

static int listen_step(adapter *ad, void *arg, rt_why why)
{
	port_args *a = arg;
	bsock *s = a->s;
	if (sock_step_begin(ad, s, why, "listen") < 0)
		return -1;
	int backlog = a->backlog < 1 ? 1 : a->backlog > 64 ? 64 : a->backlog;
	if (s->state == S_LISTENING) {
		s->backlog = backlog;
		return 0;
	}
	if (s->state != S_BOUND)
		return rt_fail(EINVAL, "listen: socket %d is not bound (call btsock_bind first)", s->app_fd);
	if (!s->registered && rt_sock_register(s, "listen") < 0)
		return -1;
	s->backlog = backlog;
	s->state = S_LISTENING;
	rt_clear_error();
	return 0;
}

int rt_listen(int fd, int backlog)
{
	GET_OR_FAIL(s, fd, "listen");
	int rc;
	if (!sock_attached(s))
		rc = rt_fail(EINVAL, "listen: socket %d is not bound (call btsock_bind first)", fd);
	else
		rc = sock_call(s, listen_step, &(port_args){ .s = s, .backlog = backlog }, -1, "listen");
	rt_sock_put(s);
	return rc;
}

/* ---- accept */

typedef struct {
	bsock *s;
	bool holding;
	char *addr;
	unsigned *port;
} accept_args;

static int accept_take(bsock *s, accept_args *a)
{
	bsock *c = s->accq[0];
	memmove(s->accq, s->accq + 1, (size_t)(--s->accq_n) * sizeof s->accq[0]);
	c->parent = NULL; /* the application's now */
	c->queued = false;
	uint8_t b;
	if (recv(s->app_fd, &b, 1, MSG_DONTWAIT) < 0) { /* one readiness byte per connection */
		/* the application read it already */
	}
	if (a->addr)
		bt_addr_format(&c->peer, a->addr);
	if (a->port)
		*a->port = c->peer_port;
	reg_add(c);
	rt_clear_error();
	return c->app_fd;
}

static int accept_step(adapter *ad, void *arg, rt_why why)
{
	accept_args *a = arg;
	bsock *s = a->s;
	if (why == RT_START) {
		if (sock_step_begin(ad, s, why, "accept") < 0)
			return -1;
		if (s->state != S_LISTENING)
			return rt_fail(EINVAL, "accept: socket %d is not listening", s->app_fd);
		if (s->accq_n == 0 && atomic_load(&s->timeout_ms) == 0)
			return rt_fail(EAGAIN, "accept: no connection is waiting");
		s->held++;
		a->holding = true;
	}
	int rc = RT_PENDING;
	if (s->accq_n > 0 && why != RT_DOWN)
		rc = accept_take(s, a);
	else if (why == RT_DOWN)
		rc = ad->closing || ad->dead ? rt_adapter_down(ad, "accept")
					     : rt_fail(ENETDOWN, "accept: the adapter was closed");
	else if (why == RT_EXPIRED)
		rc = rt_fail(ETIMEDOUT, "accept: no connection within %d ms", atomic_load(&s->timeout_ms));
	else if (s->app_gone || s->state != S_LISTENING)
		rc = rt_fail(EBADF, "accept: socket %d was closed", s->app_fd);
	if (rc != RT_PENDING && a->holding) {
		s->held--;
		a->holding = false;
	}
	return rc;
}

int rt_accept(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port)
{
	GET_OR_FAIL(s, fd, "accept");
	int rc;
	int t = atomic_load(&s->timeout_ms);
	if (!sock_attached(s))
		rc = rt_fail(EINVAL, "accept: socket %d is not listening", fd);
	else
		rc = sock_call(s, accept_step, &(accept_args){ .s = s, .addr = addr, .port = port }, t > 0 ? t : -1,
			       "accept");
	rt_sock_put(s);
	return rc;
}

/* ---- connect */

/* Blocks POLLOUT on the application's fd until a non-blocking connect ends: shrink its send
 * buffer and fill it; sock_opened / sock_ended take the filler back. */
static void fill_until_blocked(bsock *s)
{
	int small = 1;
	setsockopt(s->app_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	static const uint8_t zero[512];
	for (int i = 0; i < 4096; i++) {
		ssize_t w = send(s->app_fd, zero, s->proto == BTSOCK_RFCOMM ? sizeof zero : 1,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w <= 0)
			break;
		s->filler += s->proto == BTSOCK_RFCOMM ? (size_t)w : 1;
	}
}

/* The attempt's channel goes and the socket is as before connect. */
static void connect_reset(bsock *s)
{
	if (s->dlc)
		rfcomm_close(s->dlc);
	if (s->ch)
		l2cap_close(s->ch);
	s->dlc = NULL;
	s->ch = NULL;
	s->state = s->bound ? S_BOUND : S_NEW;
}

typedef struct {
	bsock *s;
	const char *addr;
	bt_addr peer;
	unsigned port;
	bool holding;
} connect_args;

static int connect_start(adapter *ad, connect_args *a)
{
	bsock *s = a->s;
	if (s->state == S_CONNECTING)
		return rt_fail(EALREADY, "connect: a connection attempt is already under way");
	if (s->state == S_CONNECTED)
		return rt_fail(EISCONN, "connect: socket %d is already connected", s->app_fd);
	if (s->state != S_NEW && s->state != S_BOUND)
		return rt_fail(EINVAL, "connect: socket %d cannot connect in its state", s->app_fd);
	if (bt_addr_eq(&a->peer, &ad->addr))
		return rt_fail(EINVAL, "connect: %s is this adapter's own address", a->addr);
	s->peer = a->peer;
	s->peer_port = (uint16_t)a->port;
	int rc = s->proto == BTSOCK_RFCOMM
			 ? rfcomm_connect_sec(bt_stack_rfcomm(ad->st), &a->peer, (uint8_t)a->port, s->sec_level, &r_ops, s,
					      &s->dlc)
			 : l2cap_connect_sec(bt_stack_l2cap(ad->st), &a->peer, (uint16_t)a->port, s->imtu, s->sec_level,
					     &l_ops, s, &s->ch);
	if (rc < 0)
		return rt_fail(-rc, "connect %s %s %s: %s", a->addr, port_word(s), port_str(s, a->port), conn_reason(rc));
	s->state = S_CONNECTING;
	if (atomic_load(&s->timeout_ms) == 0) {
		fill_until_blocked(s);
		return rt_fail(EINPROGRESS, "connect %s %s %s: in progress", a->addr, port_word(s), port_str(s, a->port));
	}
	s->held++;
	a->holding = true;
	return RT_PENDING;
}

/* The attempt ended: connected (or connected and already closed by the peer, which the
 * application reads as data then end of file: a successful connect), or failed. */
static int connect_result(connect_args *a)
{
	bsock *s = a->s;
	if (s->state == S_CONNECTED || s->state == S_CLOSED) {
		rt_clear_error();
		return 0;
	}
	int err = s->conn_err;
	connect_reset(s);
	return rt_fail(-err, "connect %s %s %s: %s", a->addr, port_word(s), port_str(s, a->port), sock_reason(s, err));
}

static int connect_step(adapter *ad, void *arg, rt_why why)
{
	connect_args *a = arg;
	bsock *s = a->s;
	if (why == RT_START) {
		if (sock_step_begin(ad, s, why, "connect") < 0)
			return -1;
		return connect_start(ad, a);
	}
	int rc;
	if (why == RT_CHECK && s->state == S_CONNECTING)
		return RT_PENDING;
	if (why == RT_CHECK) {
		rc = connect_result(a);
	} else if (s->state != S_CONNECTING && why == RT_EXPIRED) {
		rc = connect_result(a);
	} else if (why == RT_EXPIRED) {
		connect_reset(s);
		rc = rt_fail(ETIMEDOUT, "connect %s %s %s: no connection within %d ms", a->addr, port_word(s),
			     port_str(s, a->port), atomic_load(&s->timeout_ms));
	} else { /* the adapter goes: the attempt ends with it */
		if (a->holding)
			connect_reset(s);
		rc = rt_adapter_down(ad, "connect");
		if (rc == 0)
			rc = rt_fail(ENETDOWN, "connect: the adapter was closed");
	}
	if (a->holding) {
		s->held--;
		a->holding = false;
	}
	return rc;
}

int rt_connect(int fd, const char *addr, unsigned port)
{
	GET_OR_FAIL(s, fd, "connect");
	connect_args a = { .s = s, .addr = addr, .port = port };
	int rc = -1;
	adapter *ad = NULL;
	if (!addr || bt_addr_parse(addr, &a.peer) < 0)
		rt_fail(EINVAL, "connect: invalid address '%s': expected six hex bytes like 01:23:45:67:89:AB",
			addr ? addr : "(null)");
	else if (check_port(s, "connect", port) < 0)
		;
	else if (port == 0)
		rt_fail(EINVAL, "connect: %s 0 is not a destination", port_word(s));
	else if ((ad = sock_adapter(s)) || ((ad = rt_default_adapter("connect")) && rt_sock_attach(s, ad, "connect") == 0)) {
		int t = atomic_load(&s->timeout_ms);
		rc = rt_call(ad, connect_step, &a, t > 0 ? t : -1, "connect");
	}
	rt_adapter_put(ad);
	rt_sock_put(s);
	return rc;
}

static int connect_result_step(adapter *ad, void *arg, rt_why why)
{
	bsock *s = arg;
	if (why == RT_DOWN)
		return rt_adapter_down(ad, "connect_result") < 0 ? -1 : rt_fail(ENETDOWN, "connect_result: the adapter was closed");
	char a[BT_ADDR_STRLEN];
	bt_addr_format(&s->peer, a);
	if (s->state == S_CONNECTING)
		return rt_fail(EINPROGRESS, "connect %s %s %s: in progress", a, port_word(s), port_str(s, s->peer_port));
	if (s->state == S_FAILED) {
		int err = s->conn_err;
		connect_reset(s);
		return rt_fail(-err, "connect %s %s %s: %s", a, port_word(s), port_str(s, s->peer_port), sock_reason(s, err));
	}
	if (s->state != S_CONNECTED && s->state != S_CLOSED)
		return rt_fail(ENOTCONN, "connect_result: socket %d is not connecting", s->app_fd);
	return 0;
}

int rt_connect_result(int fd)
{
	GET_OR_FAIL(s, fd, "connect_result");
	int rc = sock_attached(s) ? sock_call(s, connect_result_step, s, -1, "connect_result")
				  : rt_fail(ENOTCONN, "connect_result: socket %d is not connecting", fd);
	rt_sock_put(s);
	return rc;
}

/* ---- names, options */

typedef struct {
	bsock *s;
	bool peer;
	char *addr;
	unsigned *port;
} name_args;

static int name_step(adapter *ad, void *arg, rt_why why)
{
	name_args *a = arg;
	bsock *s = a->s;
	if (why == RT_DOWN)
		return rt_fail(ENETDOWN, "%s: the adapter was closed", a->peer ? "getpeername" : "getsockname");
	if (!a->peer) {
		if (a->addr)
			bt_addr_format(&ad->addr, a->addr);
		if (a->port)
			*a->port = s->port;
		return 0;
	}
	if (s->state != S_CONNECTED && s->state != S_CLOSED)
		return rt_fail(ENOTCONN, "getpeername: socket %d is not connected", s->app_fd);
	if (a->addr)
		bt_addr_format(&s->peer, a->addr);
	if (a->port)
		*a->port = s->peer_port;
	return 0;
}

static int names(int fd, bool peer, char *addr, unsigned *port)
{
	const char *call = peer ? "getpeername" : "getsockname";
	GET_OR_FAIL(s, fd, call);
	int rc;
	if (!sock_attached(s))
		rc = peer ? rt_fail(ENOTCONN, "getpeername: socket %d is not connected", fd)
			  : rt_fail(EINVAL, "getsockname: socket %d is not bound to an adapter", fd);
	else
		rc = sock_call(s, name_step, &(name_args){ s, peer, addr, port }, -1, call);
	rt_sock_put(s);
	return rc;
}

int rt_getsockname(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port) { return names(fd, false, addr, port); }
int rt_getpeername(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port) { return names(fd, true, addr, port); }

int rt_settimeout(int fd, int timeout_ms)
{
	GET_OR_FAIL(s, fd, "settimeout");
	atomic_store(&s->timeout_ms, timeout_ms < 0 ? -1 : timeout_ms);
	api_fd_timeout(fd, timeout_ms);
	rt_sock_put(s);
	return 0;
}

/* An option: MTU or security level, read or set. On the loop once attached; before that under
 * the socket's mutex (attaching takes it too, so the loop sees the last value set). */
typedef enum { OPT_GET_MTU, OPT_SET_MTU, OPT_SET_SEC } opt_kind;

typedef struct {
	bsock *s;
	opt_kind kind;
	unsigned value;
	unsigned *in, *out;
} opt_args;

static int opt_apply(bsock *s, opt_args *a)
{
	if (a->kind == OPT_GET_MTU) {
		unsigned in = s->imtu, out = 0;
		if (s->ch) {
			in = l2cap_chan_imtu(s->ch);
			out = l2cap_chan_omtu(s->ch);
		} else if (s->dlc) {
			in = out = rfcomm_dlc_mtu(s->dlc);
		}
		if (a->in)
			*a->in = in;
		if (a->out)
			*a->out = out;
		return 0;
	}
	const char *call = a->kind == OPT_SET_MTU ? "set_mtu" : "set_security";
	if (s->state != S_NEW && s->state != S_BOUND)
		return rt_fail(EISCONN, "%s: set the %s before listen or connect", call,
			       a->kind == OPT_SET_MTU ? "MTU" : "level");
	if (a->kind == OPT_SET_MTU)
		s->imtu = (uint16_t)a->value;
	else
		s->sec_level = (uint8_t)a->value;
	return 0;
}

static int opt_step(adapter *ad, void *arg, rt_why why)
{
	if (why == RT_DOWN)
		return rt_fail(ENETDOWN, "the adapter was closed");
	return opt_apply(((opt_args *)arg)->s, arg);
}

static int sock_option(int fd, opt_args *a, const char *call)
{
	GET_OR_FAIL(s, fd, call);
	a->s = s;
	int rc;
	pthread_mutex_lock(&s->mu);
	if (!s->ad) {
		rc = opt_apply(s, a);
		pthread_mutex_unlock(&s->mu);
	} else {
		pthread_mutex_unlock(&s->mu);
		rc = sock_call(s, opt_step, a, -1, call);
	}
	rt_sock_put(s);
	return rc;
}

int rt_get_mtu(int fd, unsigned *incoming, unsigned *outgoing)
{
	return sock_option(fd, &(opt_args){ .kind = OPT_GET_MTU, .in = incoming, .out = outgoing }, "get_mtu");
}

int rt_set_mtu(int fd, unsigned incoming)
{
	bsock *s = rt_sock_get(fd);
	if (!s)
		return rt_fail(EBADF, "set_mtu: %d is not an open btsock socket", fd);
	enum btsock_proto proto = s->proto;
	rt_sock_put(s);
	if (proto != BTSOCK_L2CAP)
		return rt_fail(EOPNOTSUPP, "set_mtu: only L2CAP sockets have a settable MTU");
	if (incoming < 48 || incoming > L2CAP_MAX_MTU)
		return rt_fail(EINVAL, "set_mtu: %u is outside 48-%u", incoming, (unsigned)L2CAP_MAX_MTU);
	return sock_option(fd, &(opt_args){ .kind = OPT_SET_MTU, .value = incoming }, "set_mtu");
}

int rt_set_security(int fd, enum btsock_security level)
{
	if ((unsigned)level > BTSOCK_SEC_FIPS) {
		if (!rt_owns_fd(fd))
			return rt_fail(EBADF, "set_security: %d is not an open btsock socket", fd);
		return rt_fail(EINVAL, "set_security: %d is not a security level (low, medium, high, fips)", (int)level);
	}
	return sock_option(fd, &(opt_args){ .kind = OPT_SET_SEC, .value = (unsigned)level }, "set_security");
}

/* ---- faults */

/* Why an ended connection ended by a fault, as a sentence; 0 if it did not (still open,
 * never connected, or closed in order). Loop. */
static int sock_fault_text(const bsock *s, char *buf, size_t cap)
{
	if ((s->state != S_CLOSED && s->state != S_FAILED) || s->conn_err == 0)
		return 0;
	int err = -s->conn_err;
	char a[BT_ADDR_STRLEN];
	bt_addr_format(&s->peer, a);
	const char *why;
	switch (err) {
	case ECONNRESET: why = "the link went down (the peer vanished or reset it)"; break;
	case ETIMEDOUT: why = "the link timed out (the peer stopped answering)"; break;
	case ENETDOWN: why = s->ad->err[0] ? s->ad->err : "the adapter went away"; break;
	default: why = sock_reason(s, s->conn_err); break;
	}
	if (s->state == S_FAILED) {
		snprintf(buf, cap, "connect %s %s %s: %.200s", a, port_word(s), port_str(s, s->peer_port), why);
		return err;
	}
	int n = snprintf(buf, cap, "link lost to %s %s %s: %.200s", a, port_word(s), port_str(s, s->peer_port), why);
	if (s->unsent && n >= 0 && (size_t)n < cap)
		snprintf(buf + n, cap - (size_t)n, "; %zu bytes written were never sent", s->unsent);
	return err;
}

static int sock_error_step(adapter *ad, void *arg, rt_why why)
{
	bsock *s = arg;
	char text[300];
	int err = sock_fault_text(s, text, sizeof text);
	if (!err && why == RT_DOWN && (s->state == S_CONNECTED || s->state == S_CONNECTING)) {
		err = ENETDOWN;
		snprintf(text, sizeof text, "the adapter was closed");
	}
	if (!err) {
		rt_clear_error();
		return 0;
	}
	rt_fail(err, "%s", text);
	return err;
}

int rt_sock_error(int fd)
{
	GET_OR_FAIL(s, fd, "sock_error");
	int rc = 0;
	if (sock_attached(s)) {
		rc = sock_call(s, sock_error_step, s, -1, "sock_error");
	} else {
		rt_clear_error();
	}
	rt_sock_put(s);
	return rc;
}

/* ---- close */

/* Everything the application wrote goes out before the channel closes. The wait is bounded by
 * `grace` without progress, not in all: a slow peer (RFCOMM credits) may need longer for what
 * is queued, and the bytes of a process that exits after close are lost. */
typedef struct {
	bsock *s;
	int grace;
	bool holding, was_connected, down;
	size_t left, last_pair, last_ring;
	int fault;
	char why[300];
} close_args;

static bool close_busy(adapter *ad, close_args *a)
{
	bsock *s = a->s;
	rfcomm *rf = bt_stack_rfcomm(ad->st);
	/* This socket's data only: other channels' traffic may never pause. */
	bool busy = s->dlc || s->ch ||
		    (s->proto == BTSOCK_RFCOMM && rfcomm_dlc_lingers(rf, &s->peer, (uint8_t)s->peer_port));
	if (!busy)
		return false;
	/* Progress: the loop took bytes from the socketpair, or RFCOMM sent some. */
	int q = 0;
	size_t pair = ioctl(s->rt_fd, FIONREAD, &q) == 0 && q > 0 ? (size_t)q : 0;
	size_t ring = s->proto == BTSOCK_RFCOMM ? rfcomm_tx_pending(rf, &s->peer, (uint8_t)s->peer_port) : 0;
	if (pair != a->last_pair || ring != a->last_ring) {
		a->last_pair = pair;
		a->last_ring = ring;
		rt_set_deadline(ad, a->grace);
	}
	a->left = pair + ring;
	return true;
}

static int close_finish(adapter *ad, close_args *a)
{
	bsock *s = a->s;
	if (a->holding) {
		s->held--;
		a->holding = false;
	}
	if (s->registered) { /* the port is free again when close returns */
		if (s->proto == BTSOCK_RFCOMM)
			rfcomm_unlisten(bt_stack_rfcomm(ad->st), (uint8_t)s->port);
		else
			l2cap_unlisten(bt_stack_l2cap(ad->st), s->port);
		s->registered = false;
	}
	/* A fault while data may still have been on its way (or known to be lost) is no
	 * orderly close. */
	a->fault = sock_fault_text(s, a->why, sizeof a->why);
	if (a->fault && s->state == S_CLOSED && !a->was_connected && !s->unsent)
		a->fault = 0; /* ended before close was called, nothing known lost: reported by read/sock_error */
	if (a->fault && s->state != S_CLOSED)
		a->fault = 0;
	s->app_gone = true;
	s->zombie = true;
	return 0;
}

static int close_step(adapter *ad, void *arg, rt_why why)
{
	close_args *a = arg;
	bsock *s = a->s;
	if (why == RT_START) {
		sock_list(s);
		s->held++;
		a->holding = true;
		a->was_connected = s->state == S_CONNECTED;
		a->last_pair = a->last_ring = SIZE_MAX;
		a->down = a->was_connected && (ad->closing || ad->dead);
		if (a->was_connected && !a->down) {
			shutdown(s->app_fd, SHUT_WR);
			s->want_in = true;
			rt_set_deadline(ad, a->grace);
			return RT_PENDING;
		}
		return close_finish(ad, a);
	}
	if (why == RT_DOWN || ad->dead || ad->closing) {
		/* the adapter goes: what is left goes (or not) with it */
		a->down = a->holding && a->was_connected;
		a->left = 0;
		return close_finish(ad, a);
	}
	if (why == RT_CHECK && close_busy(ad, a))
		return RT_PENDING;
	if (why == RT_CHECK)
		a->left = 0;
	return close_finish(ad, a);
}

int rt_close(int fd)
{
	bsock *s = reg_find(fd, true); /* out of the registry: the fd is no btsock socket from now on */
	if (!s)
		return rt_fail(EBADF, "close: %d is not an open btsock socket", fd);
	int t = atomic_load(&s->timeout_ms);
	close_args a = { .s = s, .grace = t > 0 ? t : 5000 };
	int rc = 0;
	if (sock_attached(s)) {
		rc = sock_call(s, close_step, &a, -1, "close");
		if (rc == 0 && a.fault)
			rc = rt_fail(a.fault, "close: %s", a.why);
		else if (rc == 0 && a.down)
			rc = rt_fail(ENETDOWN, "close: the adapter was closed or went away while data was on its way");
		else if (rc == 0 && a.left)
			rc = rt_fail(ETIMEDOUT, "close: %zu bytes not delivered: the peer took nothing for %d ms", a.left,
				     a.grace);
		else if (rc == 0)
			rt_clear_error();
	}
	close(fd);
	rt_sock_put(s);
	return rc;
}
