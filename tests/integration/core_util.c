/* core_util.c - see core_util.h. */
#include "core_util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/bytes.h"

uint64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = { fd, POLLOUT, 0 };
			poll(&pf, 1, 100);
			continue;
		}
		if (w <= 0) {
			fprintf(stderr, "core_util: write to controller: %s\n", strerror(errno));
			exit(1);
		}
		p += w;
		n -= (size_t)w;
	}
}

static void node_send(void *ctx, const uint8_t *pkt, size_t len)
{
	core_node *n = ctx;
	write_all(n->fd, pkt, len);
}

static void node_ready(void *ctx, int err)
{
	core_node *n = ctx;
	n->ready = err ? err : 1;
}

static bool node_is_ready(void *arg) { return ((core_node *)arg)->ready != 0; }

void core_node_open(core_node *n, const char *path)
{
	memset(n, 0, sizeof *n);
	h4_init(&n->h4, n->pkt, sizeof n->pkt);
	n->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	if (connect(n->fd, (struct sockaddr *)&a, sizeof a) < 0) {
		fprintf(stderr, "core_util: connect %s: %s\n", path, strerror(errno));
		exit(1);
	}
	bt_stack_config c = { 0 };
	c.ctx = n;
	c.send = node_send;
	c.ready = node_ready;
	c.l2cap.idle_probe_ms = 1000;
	c.l2cap.probe_timeout_ms = 1000;
	n->s = bt_stack_new(&c, mono_ms());
	bt_stack_start(n->s, mono_ms());
	core_node *one[1] = { n };
	core_run(one, 1, 5000, node_is_ready, n);
	if (n->ready != 1) {
		fprintf(stderr, "core_util: stack not ready: %s\n", bt_stack_error(n->s));
		exit(1);
	}
	n->addr = hci_get_info(bt_stack_hci(n->s))->addr;
}

void core_node_close(core_node *n)
{
	if (n->s)
		bt_stack_free(n->s);
	n->s = NULL;
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}

/* Frames what was read into H4 packets (Core spec Vol 4 Part A 2): each goes to the tap,
 * then to the stack. */
static void node_input(core_node *n, const uint8_t *p, size_t len)
{
	while (len) {
		size_t used;
		ssize_t r = h4_feed(&n->h4, p, len, &used);
		p += used;
		len -= used;
		if (r < 0) {
			char why[160];
			fprintf(stderr, "core_util: %s\n", h4_describe(&n->h4, why, sizeof why));
			exit(1);
		}
		if (r == 0)
			continue;
		if (n->tap)
			n->tap(n, n->h4.buf, (size_t)r);
		bt_stack_packet(n->s, n->h4.buf, (size_t)r, mono_ms());
	}
}

bool core_run(core_node **nodes, int count, int timeout_ms, bool (*done)(void *), void *arg)
{
	uint64_t end = mono_ms() + (uint64_t)timeout_ms;
	for (int i = 0; i < count; i++) /* the stacks' clocks are stale since their last run */
		bt_stack_run_timers(nodes[i]->s, mono_ms());
	for (;;) {
		if (done && done(arg))
			return true;
		uint64_t now = mono_ms();
		if (now >= end)
			return done ? done(arg) : false;
		struct pollfd pf[8];
		uint64_t next = end;
		for (int i = 0; i < count; i++) {
			pf[i].fd = nodes[i]->fd;
			pf[i].events = POLLIN;
			uint64_t d = bt_stack_next_deadline(nodes[i]->s);
			if (d < next)
				next = d;
		}
		int wait = next > now ? (int)(next - now) : 0;
		if (wait > 50)
			wait = 50;
		poll(pf, (nfds_t)count, wait);
		for (int i = 0; i < count; i++) {
			core_node *n = nodes[i];
			if (pf[i].revents & (POLLIN | POLLHUP)) {
				uint8_t buf[65536];
				ssize_t r = read(n->fd, buf, sizeof buf);
				if (r <= 0) {
					fprintf(stderr, "core_util: controller connection closed\n");
					exit(1);
				}
				node_input(n, buf, (size_t)r);
			}
			bt_stack_run_timers(n->s, mono_ms());
		}
	}
}

void core_node_raw_l2cap(core_node *n, uint16_t handle, uint16_t cid, const uint8_t *p, size_t len)
{
	uint8_t pkt[5 + 4 + 180];
	if (len > 180)
		len = 180; /* one ACL packet: fits btvirt's 192-byte buffers */
	pkt[0] = 0x02;
	put_le16(pkt + 1, (uint16_t)(handle | 0x2 << 12));
	put_le16(pkt + 3, (uint16_t)(4 + len));
	put_le16(pkt + 5, (uint16_t)len);
	put_le16(pkt + 7, cid);
	memcpy(pkt + 9, p, len);
	write_all(n->fd, pkt, 9 + len);
}
