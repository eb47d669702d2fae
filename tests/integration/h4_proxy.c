/* h4_proxy.c - see h4_proxy.h. Framing from Core spec Vol 4 Part A 2 (indicators) and
 * Vol 4 Part E 5.4 (command, ACL, SCO and event headers). */
#include "h4_proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_RULES 16
#define FRAME_MAX (5 + 65535)

typedef struct qpkt {
	struct qpkt *next;
	uint64_t due;
	size_t len;
	uint8_t data[];
} qpkt;

/* One direction: the deframer of what comes in, and the queue of what goes out. */
typedef struct {
	uint8_t buf[FRAME_MAX];
	size_t have, need;
	bool in_header;
	qpkt *head, *tail;
	unsigned long packets;
} h4p_side;

struct h4_proxy {
	char path[108], adapter[120], upstream[108];
	int lfd, host, ctrl, wake[2];
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop, cut, closed, up;
	bool keep_ctrl;     /* h4p_keep_controller: a host that leaves does not close btvirt's side */
	unsigned hosts;     /* hosts that connected so far */
	h4p_filter filter;
	void *filter_ctx;
	/* h4p_inject's packets wait here (under inbox_lock, always the innermost lock) until the
	 * thread moves them into their queue: a filter may inject into any proxy, itself too. */
	pthread_mutex_t inbox_lock;
	qpkt *inbox[2];
	h4p_rule rules[MAX_RULES];
	unsigned matched[MAX_RULES], used[MAX_RULES];
	int nrules;
	int last_handle;
	h4p_side side[2]; /* indexed by h4p_dir: what goes to the controller / to the host */
};

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void wake(h4_proxy *p)
{
	uint8_t b = 1;
	if (write(p->wake[1], &b, 1) < 0) {
		/* full: the thread is due to wake anyway */
	}
}

/* ------------------------------------------------------------------ queues */

static void enqueue(h4p_side *s, const uint8_t *d, size_t len, uint64_t due)
{
	qpkt *q = malloc(sizeof *q + len);
	if (!q)
		return;
	q->next = NULL;
	q->due = due;
	q->len = len;
	memcpy(q->data, d, len);
	if (s->tail)
		s->tail->next = q;
	else
		s->head = q;
	s->tail = q;
}

static void queue_free(h4p_side *s)
{
	while (s->head) {
		qpkt *q = s->head;
		s->head = q->next;
		free(q);
	}
	s->tail = NULL;
}

static bool write_all(int fd, const uint8_t *d, size_t len)
{
	while (len) {
		ssize_t n = send(fd, d, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		d += n;
		len -= (size_t)n;
	}
	return true;
}

/* Sends what is due at the head of a queue (order kept: a delayed packet holds the rest). */
static bool flush(h4_proxy *p, h4p_dir dir, uint64_t now)
{
	h4p_side *s = &p->side[dir];
	int fd = dir == H4P_TO_CTRL ? p->ctrl : p->host;
	while (s->head && s->head->due <= now) {
		qpkt *q = s->head;
		s->head = q->next;
		if (!s->head)
			s->tail = NULL;
		bool ok = fd < 0 || write_all(fd, q->data, q->len);
		free(q);
		if (!ok)
			return false;
	}
	return true;
}

/* ------------------------------------------------------------------ rules */

static bool rule_matches(const h4p_rule *r, h4p_dir dir, const uint8_t *pkt, size_t len)
{
	if (r->dir != dir || (r->type && r->type != pkt[0]))
		return false;
	if (r->code < 0)
		return true;
	if (pkt[0] == 0x01 && len >= 3)
		return le16(pkt + 1) == r->code;
	if (pkt[0] == 0x04 && len >= 2)
		return pkt[1] == r->code;
	return false;
}

/* One whole packet from dir's source: rules, then its queue. Lock held. */
static void packet(h4_proxy *p, h4p_dir dir, uint8_t *pkt, size_t len)
{
	h4p_side *s = &p->side[dir];
	s->packets++;
	if (p->filter && !p->filter(p->filter_ctx, p, dir, pkt, &len, FRAME_MAX))
		return;
	/* Connection Complete, Vol 4 Part E 7.7.3: status, handle, ... */
	if (dir == H4P_TO_HOST && len >= 6 && pkt[0] == 0x04 && pkt[1] == 0x03 && pkt[3] == 0)
		p->last_handle = le16(pkt + 4) & 0x0fff;
	uint64_t due = 0;
	for (int i = 0; i < p->nrules; i++) {
		h4p_rule *r = &p->rules[i];
		if ((r->count && p->used[i] >= r->count) || !rule_matches(r, dir, pkt, len))
			continue;
		p->used[i]++;
		p->matched[i]++;
		switch (r->action) {
		case H4P_DROP:
			return;
		case H4P_CUT:
			p->cut = true;
			return;
		case H4P_CORRUPT:
			pkt[len - 1] ^= 0xff;
			break;
		case H4P_DELAY:
			due = now_ms() + r->delay_ms;
			break;
		}
		break;
	}
	enqueue(s, pkt, len, due);
}

/* ------------------------------------------------------------------ deframing */

static size_t header_len(uint8_t type)
{
	switch (type) {
	case 0x01: return 3; /* opcode, parameter length */
	case 0x02: return 4; /* handle + flags, data length (16 bits) */
	case 0x03: return 3; /* handle + flags, data length (8 bits) */
	case 0x04: return 2; /* event code, parameter length */
	default: return 0;
	}
}

static size_t body_len(const uint8_t *b)
{
	switch (b[0]) {
	case 0x01: return b[3];
	case 0x02: return le16(b + 3);
	case 0x03: return b[3];
	default: return b[2];
	}
}

/* Bytes read from dir's source (the host for H4P_TO_CTRL). Lock held. */
static void input(h4_proxy *p, h4p_dir dir, const uint8_t *d, size_t n)
{
	h4p_side *s = &p->side[dir];
	while (n > 0) {
		if (s->have == 0) {
			s->buf[0] = *d++;
			n--;
			size_t h = header_len(s->buf[0]);
			if (!h) { /* not H4: pass the octet on as it is */
				enqueue(s, s->buf, 1, 0);
				continue;
			}
			s->have = 1;
			s->need = 1 + h;
			s->in_header = true;
			continue;
		}
		size_t k = s->need - s->have;
		if (k > n)
			k = n;
		memcpy(s->buf + s->have, d, k);
		s->have += k;
		d += k;
		n -= k;
		if (s->have < s->need)
			continue;
		if (s->in_header) {
			s->in_header = false;
			s->need += body_len(s->buf);
			if (s->have < s->need)
				continue;
		}
		packet(p, dir, s->buf, s->have);
		s->have = 0;
	}
}

/* ------------------------------------------------------------------ the thread */

/* Moves injected packets into their queues (dropped while no host is connected). Lock held. */
static void drain_inbox(h4_proxy *p)
{
	pthread_mutex_lock(&p->inbox_lock);
	for (int d = 0; d < 2; d++) {
		while (p->inbox[d]) {
			qpkt *q = p->inbox[d];
			p->inbox[d] = q->next;
			if (p->up)
				enqueue(&p->side[d], q->data, q->len, 0);
			free(q);
		}
	}
	pthread_mutex_unlock(&p->inbox_lock);
}

/* The host left while btvirt's side is kept: the next host gets the same controller. */
static void close_host(h4_proxy *p)
{
	if (p->host >= 0)
		close(p->host);
	p->host = -1;
	p->up = false;
	queue_free(&p->side[0]);
	queue_free(&p->side[1]);
	p->side[H4P_TO_CTRL].have = 0; /* the next host's stream starts afresh */
	pthread_cond_broadcast(&p->cond);
}

static void close_both(h4_proxy *p)
{
	if (p->host >= 0)
		close(p->host);
	if (p->ctrl >= 0)
		close(p->ctrl);
	p->host = p->ctrl = -1;
	p->up = false;
	p->closed = true;
	queue_free(&p->side[0]);
	queue_free(&p->side[1]);
	pthread_cond_broadcast(&p->cond);
}

static int connect_upstream(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Waits for the host to connect, then reaches btvirt. Lock held. */
static void try_accept(h4_proxy *p)
{
	pthread_mutex_unlock(&p->lock);
	int host = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC); /* blocking writes: see flush */
	int ctrl = host < 0 ? -1 : p->ctrl >= 0 ? p->ctrl : connect_upstream(p->upstream);
	pthread_mutex_lock(&p->lock);
	if (host >= 0 && ctrl < 0) {
		close(host);
		host = -1;
	}
	if (host < 0)
		return;
	struct timeval tv = { 2, 0 }; /* a stuck reader cannot hang the proxy for ever */
	setsockopt(host, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(ctrl, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	p->host = host;
	p->ctrl = ctrl;
	p->up = true;
	p->hosts++;
	pthread_cond_broadcast(&p->cond);
}

static bool read_side(h4_proxy *p, int fd, h4p_dir dir)
{
	uint8_t buf[16384];
	pthread_mutex_unlock(&p->lock);
	ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
	pthread_mutex_lock(&p->lock);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (n <= 0)
		return false;
	input(p, dir, buf, (size_t)n);
	return true;
}

static int next_wait(h4_proxy *p, uint64_t now)
{
	int wait = 100;
	for (int d = 0; d < 2; d++) {
		qpkt *q = p->side[d].head;
		if (q && q->due > now && (int)(q->due - now) < wait)
			wait = (int)(q->due - now);
		else if (q && q->due <= now)
			wait = 0;
	}
	return wait;
}

static void *proxy_thread(void *arg)
{
	h4_proxy *p = arg;
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct pollfd f[3] = { { p->wake[0], POLLIN, 0 }, { -1, POLLIN, 0 }, { -1, POLLIN, 0 } };
		if (!p->up && !p->closed) {
			f[1].fd = p->lfd;
			f[2].fd = p->ctrl; /* a kept controller: what it says meanwhile is dropped */
		} else if (p->up) {
			f[1].fd = p->host;
			f[2].fd = p->ctrl;
		}
		int wait = next_wait(p, now_ms());
		pthread_mutex_unlock(&p->lock);
		poll(f, 3, wait);
		pthread_mutex_lock(&p->lock);
		if (f[0].revents & POLLIN) {
			uint8_t junk[64];
			while (read(p->wake[0], junk, sizeof junk) > 0)
				;
		}
		if (p->stop)
			break;
		if (!p->up && !p->closed) {
			if (f[2].fd >= 0 && f[2].revents & (POLLIN | POLLHUP | POLLERR)) {
				uint8_t junk[4096];
				ssize_t n = recv(p->ctrl, junk, sizeof junk, MSG_DONTWAIT);
				if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
					close(p->ctrl);
					p->ctrl = -1;
				}
			}
			if (f[1].revents & POLLIN)
				try_accept(p);
			drain_inbox(p);
			continue;
		}
		drain_inbox(p);
		if (!p->up)
			continue;
		bool host_ok = true, ctrl_ok = true;
		if (f[1].revents & (POLLIN | POLLHUP | POLLERR))
			host_ok = read_side(p, p->host, H4P_TO_CTRL);
		if (host_ok && f[2].revents & (POLLIN | POLLHUP | POLLERR))
			ctrl_ok = read_side(p, p->ctrl, H4P_TO_HOST);
		drain_inbox(p); /* what a filter injected goes out with this round */
		uint64_t now = now_ms();
		if (host_ok && ctrl_ok && !p->cut) {
			ctrl_ok = flush(p, H4P_TO_CTRL, now);
			host_ok = flush(p, H4P_TO_HOST, now);
		}
		if (!host_ok && ctrl_ok && p->keep_ctrl && !p->cut)
			close_host(p);
		else if (!host_ok || !ctrl_ok || p->cut)
			close_both(p);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ------------------------------------------------------------------ public */

h4_proxy *h4p_start(const char *upstream)
{
	static int seq;
	h4_proxy *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	snprintf(p->upstream, sizeof p->upstream, "%s", upstream);
	snprintf(p->path, sizeof p->path, "/tmp/btsock-h4p-%d-%d.sock", (int)getpid(), seq++);
	snprintf(p->adapter, sizeof p->adapter, "unix:%s", p->path);
	p->host = p->ctrl = -1;
	p->last_handle = -1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->inbox_lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	unlink(p->path);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", p->path);
	p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(p->lfd, 1) < 0 ||
	    pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) < 0 || pthread_create(&p->thread, NULL, proxy_thread, p) != 0) {
		fprintf(stderr, "h4_proxy: %s: %s\n", p->path, strerror(errno));
		if (p->lfd >= 0)
			close(p->lfd);
		free(p);
		return NULL;
	}
	return p;
}

const char *h4p_adapter(const h4_proxy *p) { return p->adapter; }

int h4p_add_rule(h4_proxy *p, const h4p_rule *r)
{
	pthread_mutex_lock(&p->lock);
	int id = p->nrules < MAX_RULES ? p->nrules++ : -1;
	if (id >= 0) {
		p->rules[id] = *r;
		p->matched[id] = p->used[id] = 0;
	}
	pthread_mutex_unlock(&p->lock);
	return id;
}

void h4p_clear_rules(h4_proxy *p)
{
	pthread_mutex_lock(&p->lock);
	p->nrules = 0;
	pthread_mutex_unlock(&p->lock);
}

unsigned h4p_matched(h4_proxy *p, int id)
{
	pthread_mutex_lock(&p->lock);
	unsigned n = id >= 0 && id < MAX_RULES ? p->matched[id] : 0;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void h4p_inject(h4_proxy *p, h4p_dir dir, const uint8_t *pkt, size_t len)
{
	qpkt *q = malloc(sizeof *q + len);
	if (!q)
		return;
	q->next = NULL;
	q->due = 0;
	q->len = len;
	memcpy(q->data, pkt, len);
	pthread_mutex_lock(&p->inbox_lock);
	qpkt **tail = &p->inbox[dir];
	while (*tail)
		tail = &(*tail)->next;
	*tail = q;
	pthread_mutex_unlock(&p->inbox_lock);
	wake(p);
}

void h4p_set_filter(h4_proxy *p, h4p_filter fn, void *ctx)
{
	pthread_mutex_lock(&p->lock);
	p->filter = fn;
	p->filter_ctx = ctx;
	pthread_mutex_unlock(&p->lock);
}

void h4p_keep_controller(h4_proxy *p, bool on)
{
	pthread_mutex_lock(&p->lock);
	p->keep_ctrl = on;
	pthread_mutex_unlock(&p->lock);
}

unsigned h4p_hosts(h4_proxy *p)
{
	pthread_mutex_lock(&p->lock);
	unsigned n = p->hosts;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void h4p_cut(h4_proxy *p)
{
	pthread_mutex_lock(&p->lock);
	p->cut = true;
	wake(p);
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += 1;
	while (p->up && pthread_cond_timedwait(&p->cond, &p->lock, &t) == 0)
		;
	pthread_mutex_unlock(&p->lock);
}

bool h4p_connected(h4_proxy *p)
{
	pthread_mutex_lock(&p->lock);
	bool up = p->up;
	pthread_mutex_unlock(&p->lock);
	return up;
}

int h4p_last_handle(h4_proxy *p)
{
	pthread_mutex_lock(&p->lock);
	int h = p->last_handle;
	pthread_mutex_unlock(&p->lock);
	return h;
}

unsigned long h4p_packets(h4_proxy *p, h4p_dir dir)
{
	pthread_mutex_lock(&p->lock);
	unsigned long n = p->side[dir].packets;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void h4p_stop(h4_proxy *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_mutex_unlock(&p->lock);
	wake(p);
	pthread_join(p->thread, NULL);
	close_both(p);
	close(p->lfd);
	close(p->wake[0]);
	close(p->wake[1]);
	unlink(p->path);
	for (int d = 0; d < 2; d++)
		while (p->inbox[d]) {
			qpkt *q = p->inbox[d];
			p->inbox[d] = q->next;
			free(q);
		}
	pthread_mutex_destroy(&p->inbox_lock);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}
