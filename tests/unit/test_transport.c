/* test_transport.c - the packet transports (src/transport/transport.h) without a controller:
 * the test serves each one itself (a listening AF_UNIX socket in a temp dir, TCP on 127.0.0.1, a
 * pty standing in for a UART, a SOCK_SEQPACKET pair standing in for the user channel) and
 * checks adapter-string parsing, packets both ways, the bounded output queue, end of stream,
 * malformed input and the error sentences. H4 framing: Core spec Vol 4 Part A 2; the UART settings:
 * Vol 4 Part A 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "transport/transport.h"
#include "transport/transport_impl.h"

/* HCI_Reset (Core spec Vol 4 Part E 7.3.2) and its Command Complete (Vol 4 Part E 7.7.14). */
static const uint8_t hci_reset[] = { 0x01, 0x03, 0x0c, 0x00 };
static const uint8_t reset_complete[] = { 0x04, 0x0e, 0x04, 0x01, 0x03, 0x0c, 0x00 };

/* ---- helpers ------------------------------------------------------------------------------ */

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Reads exactly n bytes from a raw fd (any blocking mode) within timeout_ms; returns the count. */
static size_t fd_read_n(int fd, uint8_t *buf, size_t n, int timeout_ms)
{
	size_t got = 0;
	long end = now_ms() + timeout_ms;
	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = end - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

static void fd_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		assert_true(w > 0);
		p += w;
		n -= (size_t)w;
	}
}

/* The transport's one fd (the built-in kinds have one). */
static int tp_fd_of(bt_transport *t)
{
	struct pollfd p[BT_TRANSPORT_MAX_FDS];
	assert_int_equal(bt_transport_pollfds(t, p), 1);
	return p[0].fd;
}

/* One poll round on the transport's fds (timeout_ms at most), then its I/O. Returns what
 * bt_transport_events returned. */
static int tp_poll_once(bt_transport *t, int timeout_ms)
{
	struct pollfd p[BT_TRANSPORT_MAX_FDS];
	size_t n = bt_transport_pollfds(t, p);
	poll(p, (nfds_t)n, timeout_ms);
	return bt_transport_events(t, p, n);
}

/* Receives whole packets through the transport until n octets came, within timeout_ms;
 * returns the count (the last recv result stays in *last when given). */
static size_t tp_read_n(bt_transport *t, uint8_t *buf, size_t n, int timeout_ms)
{
	size_t got = 0;
	long end = now_ms() + timeout_ms;
	while (got < n) {
		const uint8_t *pkt;
		ssize_t r = bt_transport_recv(t, &pkt);
		if (r < 0)
			break;
		if (r > 0) {
			assert_true(got + (size_t)r <= n);
			memcpy(buf + got, pkt, (size_t)r);
			got += (size_t)r;
			continue;
		}
		long left = end - now_ms();
		if (left <= 0)
			break;
		tp_poll_once(t, (int)left);
	}
	return got;
}

/* Flushes until nothing is queued (or timeout). */
static void tp_drain(bt_transport *t, int timeout_ms)
{
	long end = now_ms() + timeout_ms;
	while (bt_transport_pending(t) && now_ms() < end)
		assert_int_equal(tp_poll_once(t, 100), 0);
	assert_false(bt_transport_pending(t));
}

/* Polls until the transport reports its end, and checks the sentence. */
static void expect_end(bt_transport *t, int err, const char *words)
{
	long end = now_ms() + 2000;
	const uint8_t *pkt;
	ssize_t r;
	while ((r = bt_transport_recv(t, &pkt)) == 0 && now_ms() < end)
		tp_poll_once(t, 100);
	assert_int_equal(r, -err);
	assert_int_equal(bt_transport_recv(t, &pkt), -err); /* and stays so */
	if (!strstr(bt_transport_error(t), words))
		print_error("\"%s\" lacks \"%s\"\n", bt_transport_error(t), words);
	assert_non_null(strstr(bt_transport_error(t), words));
}

static void assert_nonblock_cloexec(int fd)
{
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

/* Sends HCI_Reset through t and the Command Complete back from the peer fd (Core spec Vol 4
 * Part A 2: the indicator byte travels with each packet). */
static void exchange_reset(bt_transport *t, int peer)
{
	uint8_t buf[16];
	assert_int_equal(bt_transport_send(t, hci_reset, sizeof hci_reset), 0);
	tp_drain(t, 2000);
	assert_int_equal(fd_read_n(peer, buf, sizeof hci_reset, 2000), sizeof hci_reset);
	assert_memory_equal(buf, hci_reset, sizeof hci_reset);
	fd_write_all(peer, reset_complete, sizeof reset_complete);
	assert_int_equal(tp_read_n(t, buf, sizeof reset_complete, 2000), sizeof reset_complete);
	assert_memory_equal(buf, reset_complete, sizeof reset_complete);
}

/* A listening AF_UNIX socket at DIR/ctl in a fresh temp dir. */
typedef struct {
	char dir[64];
	char path[128];
	char spec[160];
	int lfd;
} unix_server;

static void unix_server_start(unix_server *u)
{
	snprintf(u->dir, sizeof u->dir, "/tmp/btsock-tp-XXXXXX");
	assert_non_null(mkdtemp(u->dir));
	snprintf(u->path, sizeof u->path, "%s/ctl", u->dir);
	snprintf(u->spec, sizeof u->spec, "unix:%s", u->path);
	u->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(u->lfd >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	assert_true(strlen(u->path) < sizeof sa.sun_path);
	memcpy(sa.sun_path, u->path, strlen(u->path) + 1);
	assert_int_equal(bind(u->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(u->lfd, 4), 0);
}

static void unix_server_stop(unix_server *u)
{
	if (u->lfd >= 0)
		close(u->lfd);
	unlink(u->path);
	rmdir(u->dir);
}

/* Opens the transport to u and accepts its connection. */
static int unix_connect_pair(unix_server *u, bt_transport **t)
{
	char err[256];
	int r = bt_transport_open(u->spec, t, err, sizeof err);
	if (r)
		print_error("open: %s\n", err);
	assert_int_equal(r, 0);
	int peer = accept4(u->lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(peer >= 0);
	return peer;
}

/* ---- adapter strings ------------------------------------------------------------------------ */

typedef struct {
	const char *spec;
	int err;
	const char *words[3]; /* each must appear in the message */
} bad_spec;

/* transport.h: malformed adapter strings fail with -EINVAL (or the listed errno) before any
 * socket or device is touched, and the sentence names the string, the step and what is expected. */
static void test_parse_errors(void **state)
{
	static const bad_spec cases[] = {
		{ "", -EINVAL, { "\"\"", "parse", "unix:PATH" } },
		{ "unix:", -EINVAL, { "unix:", "parse", "missing socket path" } },
		{ "tcp:host", -EINVAL, { "tcp:host", "parse", "missing port" } },
		{ "tcp:h:99999", -EINVAL, { "tcp:h:99999", "bad port '99999'", "65535" } },
		{ "tcp:h:0", -EINVAL, { "bad port", NULL, NULL } },
		{ "tcp:h:12a", -EINVAL, { "bad port", NULL, NULL } },
		{ "tcp:h:", -EINVAL, { "bad port", NULL, NULL } },
		{ "tcp::4000", -EINVAL, { "missing host", NULL, NULL } },
		{ "tcp:::1:4000", -EINVAL, { "brackets", NULL, NULL } },
		{ "tcp:[::1]", -EINVAL, { "missing port", NULL, NULL } },
		{ "tcp:[::1:4000", -EINVAL, { "']'", NULL, NULL } },
		{ "serial:/dev/x@abc", -EINVAL, { "serial:/dev/x@abc", "unsupported baud rate 'abc'", "9600, 19200" } },
		{ "serial:/dev/x@", -EINVAL, { "unsupported baud rate", "115200", NULL } },
		{ "serial:/dev/x@12345", -EINVAL, { "unsupported baud rate '12345'", "921600", NULL } },
		{ "serial:", -EINVAL, { "missing device", NULL, NULL } },
		{ "serial:@115200", -EINVAL, { "missing device", NULL, NULL } },
		{ "userchan:eth0", -EINVAL, { "userchan:eth0", "parse", "userchan:hciN" } },
		{ "userchan:hci", -EINVAL, { "userchan:hciN", NULL, NULL } },
		{ "userchan:hci01", -EINVAL, { "userchan:hciN", NULL, NULL } },
		{ "userchan:hci65535", -EINVAL, { "userchan:hciN", NULL, NULL } },
		{ "userchan:hci0x", -EINVAL, { "userchan:hciN", NULL, NULL } },
		{ "foo:bar", -EINVAL, { "foo:bar", "unknown adapter type 'foo'", "unix:, tcp:, serial: or userchan:" } },
		{ "bar", -EINVAL, { "bar", "no adapter type", NULL } },
		{ "UNIX:/tmp/x", -EINVAL, { "unknown adapter type 'UNIX'", NULL, NULL } },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bt_transport *t = (bt_transport *)&t;
		char err[512] = "untouched";
		int r = bt_transport_open(cases[i].spec, &t, err, sizeof err);
		if (r != cases[i].err)
			print_error("'%s': got %d (%s)\n", cases[i].spec, r, err);
		assert_int_equal(r, cases[i].err);
		assert_null(t);
		for (size_t w = 0; w < 3 && cases[i].words[w]; w++) {
			if (!strstr(err, cases[i].words[w]))
				print_error("'%s': message \"%s\" lacks \"%s\"\n", cases[i].spec, err, cases[i].words[w]);
			assert_non_null(strstr(err, cases[i].words[w]));
		}
	}
}

/* transport.h: an adapter string longer than the name field is refused, and a NULL message
 * buffer is allowed. */
static void test_parse_limits(void **state)
{
	char spec[300];
	memset(spec, 'a', sizeof spec - 1);
	spec[sizeof spec - 1] = '\0';
	memcpy(spec, "unix:/", 6);
	bt_transport *t;
	char err[256];
	assert_int_equal(bt_transport_open(spec, &t, err, sizeof err), -ENAMETOOLONG);
	assert_non_null(strstr(err, "longer than 127"));
	/* A sun_path that does not fit (108 bytes) is refused at parse time too. */
	memset(spec + 6, 'b', 120);
	spec[126] = '\0';
	assert_int_equal(bt_transport_open(spec, &t, err, sizeof err), -ENAMETOOLONG);
	assert_non_null(strstr(err, "socket path longer"));
	assert_int_equal(bt_transport_open("foo:bar", &t, NULL, 0), -EINVAL);
	assert_int_equal(bt_transport_open(NULL, &t, err, sizeof err), -EINVAL);
	/* A tiny buffer gets a terminated prefix. */
	char small[8];
	assert_int_equal(bt_transport_open("foo:bar", &t, small, sizeof small), -EINVAL);
	assert_int_equal(strlen(small), sizeof small - 1);
}

/* transport.h: plain "hciN" is reserved for the kernel socket backend. */
static void test_plain_hci_reserved(void **state)
{
	bt_transport *t;
	char err[512];
	assert_int_equal(bt_transport_open("hci0", &t, err, sizeof err), -ENOTSUP);
	assert_non_null(strstr(err, "hci0"));
	assert_non_null(strstr(err, "not implemented"));
	assert_non_null(strstr(err, "userchan:hci0"));
	assert_int_equal(bt_transport_open("hci12", &t, err, sizeof err), -ENOTSUP);
	assert_non_null(strstr(err, "userchan:hci12"));
}

/* ---- unix -------------------------------------------------------------------------------------- */

/* Core spec Vol 4 Part A 2: H4 packets cross a unix stream unchanged in both directions. */
static void test_unix_echo(void **state)
{
	unix_server u;
	unix_server_start(&u);
	bt_transport *t;
	int peer = unix_connect_pair(&u, &t);
	assert_string_equal(bt_transport_name(t), u.spec);
	assert_nonblock_cloexec(tp_fd_of(t));
	const uint8_t *pkt;
	assert_int_equal(tp_poll_once(t, 0), 0);
	assert_int_equal(bt_transport_recv(t, &pkt), 0);
	assert_true(bt_transport_can_send(t));
	exchange_reset(t, peer);
	assert_int_equal(bt_transport_send(t, hci_reset, 0), -EINVAL);
	assert_string_equal(bt_transport_error(t), "");
	bt_transport_close(t);
	close(peer);
	unix_server_stop(&u);
}

/* Core spec Vol 4 Part A 2: packets written in one burst, or cut anywhere, come out whole;
 * after an unknown indicator the transport fails with a sentence, once the packets before it
 * have been returned (H4 cannot find the next boundary). */
static void test_unix_framing(void **state)
{
	unix_server u;
	unix_server_start(&u);
	bt_transport *t;
	int peer = unix_connect_pair(&u, &t);
	static const uint8_t acl[] = { 0x02, 0x2a, 0x20, 0x05, 0x00, 0x01, 0x00, 0x40, 0x00, 0xaa };
	uint8_t burst[sizeof reset_complete + sizeof acl + 1];
	memcpy(burst, reset_complete, sizeof reset_complete);
	memcpy(burst + sizeof reset_complete, acl, sizeof acl);
	burst[sizeof burst - 1] = 0x07;
	fd_write_all(peer, burst, 3); /* a cut inside the first header */
	uint8_t got[sizeof burst];
	assert_int_equal(tp_read_n(t, got, 3, 100), 0);
	fd_write_all(peer, burst + 3, sizeof burst - 3);
	assert_int_equal(tp_read_n(t, got, sizeof burst - 1, 2000), sizeof burst - 1);
	assert_memory_equal(got, burst, sizeof burst - 1);
	expect_end(t, EPROTO, "the controller sent a malformed packet: unknown H4 packet indicator 0x07");
	bt_transport_close(t);
	close(peer);
	unix_server_stop(&u);
}

/* transport.h: connect failures name the step, the errno text and the btvirt hint. */
static void test_unix_connect_errors(void **state)
{
	unix_server u;
	unix_server_start(&u);
	bt_transport *t;
	char err[512], spec[200];
	snprintf(spec, sizeof spec, "unix:%s/nothing-here", u.dir);
	assert_int_equal(bt_transport_open(spec, &t, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, spec));
	assert_non_null(strstr(err, ": connect: "));
	assert_non_null(strstr(err, strerror(ENOENT)));
	assert_non_null(strstr(err, "is `btvirt -s` running?"));
	/* A socket file nobody listens on any more. */
	close(u.lfd);
	u.lfd = -1;
	assert_int_equal(bt_transport_open(u.spec, &t, err, sizeof err), -ECONNREFUSED);
	assert_non_null(strstr(err, strerror(ECONNREFUSED)));
	assert_non_null(strstr(err, "btvirt -s"));
	assert_null(t);
	unix_server_stop(&u);
}

/* Core spec Vol 4 Part A 2: the stream ends when the controller side closes: read gives 0 and
 * send gives -EPIPE (without SIGPIPE killing the process). */
static void test_unix_eof(void **state)
{
	unix_server u;
	unix_server_start(&u);
	bt_transport *t;
	int peer = unix_connect_pair(&u, &t);
	fd_write_all(peer, reset_complete, sizeof reset_complete);
	close(peer);
	/* What came before the end is still delivered. */
	uint8_t buf[sizeof reset_complete];
	assert_int_equal(tp_read_n(t, buf, sizeof buf, 2000), sizeof buf);
	expect_end(t, EPIPE, "the controller connection closed");
	int r = 0;
	for (int i = 0; i < 10 && r == 0; i++)
		r = bt_transport_send(t, hci_reset, sizeof hci_reset);
	assert_int_equal(r, -EPIPE);
	assert_false(bt_transport_pending(t)); /* what can never leave is not pending */
	/* The reason for the end of reading is the one named. */
	assert_non_null(strstr(bt_transport_error(t), "the controller connection closed"));
	struct pollfd p[BT_TRANSPORT_MAX_FDS];
	assert_int_equal(bt_transport_pollfds(t, p), 1);
	assert_int_equal(p[0].fd, -1); /* nothing more to poll: no busy loop on POLLHUP */
	bt_transport_close(t);
	unix_server_stop(&u);
}

/* transport.h: closing NULL is harmless. */
static void test_closed_transport(void **state)
{
	bt_transport_close(NULL);
}

/* ---- the output queue ------------------------------------------------------------------------- */

#define SEQ_PKT_LEN 1000

/* An ACL packet (Core spec Vol 4 Part E 5.4.2) whose payload encodes its sequence number. */
static void seq_packet(uint8_t *p, uint32_t seq)
{
	p[0] = 0x02;
	p[1] = 0x01;
	p[2] = 0x20;
	p[3] = (uint8_t)((SEQ_PKT_LEN - 5) & 0xff);
	p[4] = (uint8_t)((SEQ_PKT_LEN - 5) >> 8);
	for (size_t i = 5; i < SEQ_PKT_LEN; i++)
		p[i] = (uint8_t)(seq * 7 + i);
	memcpy(p + 5, &seq, sizeof seq);
}

/* A transport whose peer reads nothing, with the kernel buffers made small. */
static int full_pair(unix_server *u, bt_transport **t)
{
	unix_server_start(u);
	int peer = unix_connect_pair(u, t);
	int small = 4096;
	setsockopt(tp_fd_of(*t), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	return peer;
}

/* Sends sequence packets while they fit without waiting. Returns the next sequence number. */
static uint32_t fill_queue(bt_transport *t)
{
	uint8_t pkt[SEQ_PKT_LEN];
	uint32_t seq = 0;
	long start = now_ms();
	while (BT_TRANSPORT_OUTBUF - tp_fd_queued(t) >= SEQ_PKT_LEN) {
		seq_packet(pkt, seq);
		assert_int_equal(bt_transport_send(t, pkt, sizeof pkt), 0);
		seq++;
	}
	assert_true(now_ms() - start < 1000); /* nothing waited */
	assert_true(bt_transport_pending(t));
	assert_true(seq > BT_TRANSPORT_OUTBUF / SEQ_PKT_LEN);
	return seq;
}

/* transport.h: when the queue is full and the peer does not read, send fails at once with
 * -ENOBUFS without queueing any part of the packet (it used to block the loop thread for 2 s,
 * stalling every adapter in the process). */
static void test_send_full_fails_at_once(void **state)
{
	unix_server u;
	bt_transport *t;
	int peer = full_pair(&u, &t);
	uint32_t seq = fill_queue(t);
	size_t queued = tp_fd_queued(t);
	assert_false(bt_transport_can_send(t));
	uint8_t pkt[SEQ_PKT_LEN];
	seq_packet(pkt, seq);
	long start = now_ms();
	assert_int_equal(bt_transport_send(t, pkt, sizeof pkt), -ENOBUFS);
	assert_true(now_ms() - start < 500);
	assert_int_equal(tp_fd_queued(t), queued);
	bt_transport_close(t);
	close(peer);
	unix_server_stop(&u);
}

typedef struct {
	int fd;
	int delay_ms;
	uint8_t *buf;
	size_t cap, len;
} drainer;

static void *drain_thread(void *arg)
{
	drainer *d = arg;
	usleep((useconds_t)d->delay_ms * 1000);
	for (;;) {
		ssize_t r = read(d->fd, d->buf + d->len, d->cap - d->len);
		if (r <= 0 || d->len + (size_t)r >= d->cap) {
			if (r > 0)
				d->len += (size_t)r;
			break;
		}
		d->len += (size_t)r;
	}
	return NULL;
}

/* transport.h: a send that finds the queue full is refused, not half queued; once the peer
 * reads, flushing (what the loop does when the fd polls writable) makes room, and every
 * packet accepted arrives whole and in order (Core spec Vol 4 Part A 2: H4 has no resync, a
 * split or lost byte would corrupt the stream). */
static void test_send_full_then_peer_reads(void **state)
{
	unix_server u;
	bt_transport *t;
	int peer = full_pair(&u, &t);
	uint32_t seq = fill_queue(t);
	drainer d = { .fd = peer, .delay_ms = 300, .cap = 4u << 20 };
	d.buf = malloc(d.cap);
	assert_non_null(d.buf);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, drain_thread, &d), 0);
	uint8_t pkt[SEQ_PKT_LEN];
	int refused = 0;
	for (int i = 0; i < 100; i++, seq++) {
		seq_packet(pkt, seq);
		int r;
		long start = now_ms();
		while ((r = bt_transport_send(t, pkt, sizeof pkt)) == -ENOBUFS) {
			refused++;
			assert_int_equal(tp_poll_once(t, 100), 0);
			assert_true(now_ms() - start < 5000);
		}
		assert_int_equal(r, 0);
	}
	assert_true(refused > 0); /* the first of these found the queue full */
	tp_drain(t, 5000);
	bt_transport_close(t); /* the drainer sees EOF */
	pthread_join(th, NULL);
	assert_int_equal(d.len, (size_t)seq * SEQ_PKT_LEN);
	uint8_t want[SEQ_PKT_LEN];
	for (uint32_t i = 0; i < seq; i++) {
		seq_packet(want, i);
		assert_memory_equal(d.buf + (size_t)i * SEQ_PKT_LEN, want, SEQ_PKT_LEN);
	}
	free(d.buf);
	close(peer);
	unix_server_stop(&u);
}

/* transport.h: a packet larger than the whole queue is refused. */
static void test_send_too_big(void **state)
{
	unix_server u;
	unix_server_start(&u);
	bt_transport *t;
	int peer = unix_connect_pair(&u, &t);
	uint8_t *big = calloc(1, BT_TRANSPORT_OUTBUF + 1);
	assert_int_equal(bt_transport_send(t, big, BT_TRANSPORT_OUTBUF + 1), -EMSGSIZE);
	free(big);
	bt_transport_close(t);
	close(peer);
	unix_server_stop(&u);
}

/* ---- tcp ------------------------------------------------------------------------------------------ */

static int tcp_listener(int family, uint16_t *port)
{
	int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -1;
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof ss);
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof *in;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		sl = sizeof *in6;
	}
	if (bind(l, (struct sockaddr *)&ss, sl) < 0 || listen(l, 4) < 0) {
		close(l);
		return -1;
	}
	assert_int_equal(getsockname(l, (struct sockaddr *)&ss, &sl), 0);
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return l;
}

static void tcp_echo_on(const char *host_fmt, int family)
{
	uint16_t port;
	int l = tcp_listener(family, &port);
	if (l < 0) {
		print_message("skipping %s: no loopback for this family\n", host_fmt);
		return;
	}
	char spec[64], err[256];
	snprintf(spec, sizeof spec, host_fmt, (unsigned)port);
	bt_transport *t;
	int r = bt_transport_open(spec, &t, err, sizeof err);
	if (r)
		print_error("%s\n", err);
	assert_int_equal(r, 0);
	assert_nonblock_cloexec(tp_fd_of(t));
	int one = 0;
	socklen_t ol = sizeof one;
	assert_int_equal(getsockopt(tp_fd_of(t), IPPROTO_TCP, TCP_NODELAY, &one, &ol), 0);
	assert_true(one);
	int peer = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(peer >= 0);
	exchange_reset(t, peer);
	close(peer);
	expect_end(t, EPIPE, "the controller connection closed"); /* end of stream */
	bt_transport_close(t);
	close(l);
}

/* Core spec Vol 4 Part A 2 over TCP: both directions, Nagle off, IPv4 and bracketed IPv6. */
static void test_tcp_echo(void **state)
{
	tcp_echo_on("tcp:127.0.0.1:%u", AF_INET);
	tcp_echo_on("tcp:localhost:%u", AF_INET);
	tcp_echo_on("tcp:[::1]:%u", AF_INET6);
}

/* transport.h: a refused TCP connect and an unresolvable host give sentences naming them. */
static void test_tcp_errors(void **state)
{
	uint16_t port;
	int l = tcp_listener(AF_INET, &port);
	assert_true(l >= 0);
	close(l); /* nobody listens there now */
	char spec[64], err[256];
	snprintf(spec, sizeof spec, "tcp:127.0.0.1:%u", (unsigned)port);
	bt_transport *t;
	assert_int_equal(bt_transport_open(spec, &t, err, sizeof err), -ECONNREFUSED);
	assert_non_null(strstr(err, spec));
	assert_non_null(strstr(err, "connect"));
	assert_non_null(strstr(err, strerror(ECONNREFUSED)));
	int r = bt_transport_open("tcp:no-such-host.invalid:4000", &t, err, sizeof err);
	assert_true(r < 0);
	assert_non_null(strstr(err, "tcp:no-such-host.invalid:4000: resolve: no-such-host.invalid"));
}

/* ---- serial over a pty ---------------------------------------------------------------------------- */

typedef struct {
	int master;
	char spec[128];
} pty_pair;

static void pty_open(pty_pair *p, const char *baud)
{
	p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	assert_true(p->master >= 0);
	assert_int_equal(grantpt(p->master), 0);
	assert_int_equal(unlockpt(p->master), 0);
	const char *slave = ptsname(p->master);
	assert_non_null(slave);
	snprintf(p->spec, sizeof p->spec, "serial:%s%s", slave, baud);
}

/* Core spec Vol 4 Part A 1 (UART transport: 8N1, RTS/CTS) and 2 (packets both ways). */
static void test_serial_pty(void **state)
{
	pty_pair p;
	pty_open(&p, "@115200");
	bt_transport *t;
	char err[256];
	int r = bt_transport_open(p.spec, &t, err, sizeof err);
	if (r)
		print_error("%s\n", err);
	assert_int_equal(r, 0);
	assert_nonblock_cloexec(tp_fd_of(t));
	struct termios tio;
	assert_int_equal(tcgetattr(tp_fd_of(t), &tio), 0);
	assert_int_equal(cfgetospeed(&tio), B115200);
	assert_int_equal(cfgetispeed(&tio), B115200);
	assert_int_equal(tio.c_cflag & CSIZE, CS8);
	assert_false(tio.c_cflag & (PARENB | CSTOPB));
	assert_true(tio.c_cflag & CRTSCTS);
	assert_true(tio.c_cflag & CREAD);
	assert_false(tio.c_lflag & (ICANON | ECHO | ISIG));
	assert_false(tio.c_iflag & (ICRNL | IXON | ISTRIP));
	assert_false(tio.c_oflag & OPOST);
	exchange_reset(t, p.master);
	/* Every byte value passes untouched (no CR/LF or flow-control translation): an ACL
	 * packet (Vol 4 Part E 5.4.2) carrying all 256. */
	uint8_t all[5 + 256], got[5 + 256];
	all[0] = 0x02, all[1] = 0x2a, all[2] = 0x20, all[3] = 0x00, all[4] = 0x01;
	for (int i = 0; i < 256; i++)
		all[5 + i] = (uint8_t)i;
	fd_write_all(p.master, all, sizeof all);
	assert_int_equal(tp_read_n(t, got, sizeof got, 2000), sizeof got);
	assert_memory_equal(got, all, sizeof all);
	/* End of stream: the "controller" side goes away (the line reads EIO). */
	close(p.master);
	expect_end(t, EPIPE, "the controller connection closed");
	/* Writing to the hung-up line says the controller went. */
	assert_int_equal(bt_transport_send(t, hci_reset, sizeof hci_reset), -EPIPE);
	bt_transport_close(t);
}

/* Vol 4 Part A 1: the default rate is 115200; a high rate from the table is applied. */
static void test_serial_rates(void **state)
{
	pty_pair p;
	pty_open(&p, "");
	bt_transport *t;
	char err[256];
	assert_int_equal(bt_transport_open(p.spec, &t, err, sizeof err), 0);
	struct termios tio;
	assert_int_equal(tcgetattr(tp_fd_of(t), &tio), 0);
	assert_int_equal(cfgetospeed(&tio), B115200);
	bt_transport_close(t);
	close(p.master);
	pty_open(&p, "@921600");
	assert_int_equal(bt_transport_open(p.spec, &t, err, sizeof err), 0);
	assert_int_equal(tcgetattr(tp_fd_of(t), &tio), 0);
	assert_int_equal(cfgetospeed(&tio), B921600);
	bt_transport_close(t);
	close(p.master);
}

/* transport.h: serial failures name the step (open, tcgetattr) and the errno text. */
static void test_serial_errors(void **state)
{
	bt_transport *t;
	char err[256];
	assert_int_equal(bt_transport_open("serial:/dev/btsock-no-such-tty@115200", &t, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "serial:/dev/btsock-no-such-tty@115200: open: "));
	assert_non_null(strstr(err, strerror(ENOENT)));
	assert_int_equal(bt_transport_open("serial:/dev/null", &t, err, sizeof err), -ENOTTY);
	assert_non_null(strstr(err, "serial:/dev/null: tcgetattr: "));
	assert_non_null(strstr(err, "not a serial device"));
	assert_null(t);
}

/* ---- user channel -------------------------------------------------------------------------------- */

/* transport.h: without AF_BLUETOOTH in the kernel the user channel fails at "socket" with
 * EAFNOSUPPORT and says so. */
static void test_userchan_no_bluetooth(void **state)
{
	int s = socket(31 /* AF_BLUETOOTH */, SOCK_RAW | SOCK_CLOEXEC, 1 /* BTPROTO_HCI */);
	if (s >= 0 || errno != EAFNOSUPPORT) {
		if (s >= 0)
			close(s);
		skip(); /* this kernel has Bluetooth: the check does not apply */
	}
	bt_transport *t;
	char err[256];
	assert_int_equal(bt_transport_open("userchan:hci0", &t, err, sizeof err), -EAFNOSUPPORT);
	assert_non_null(strstr(err, "userchan:hci0: socket: "));
	assert_non_null(strstr(err, strerror(EAFNOSUPPORT)));
	assert_non_null(strstr(err, "this kernel has no Bluetooth (AF_BLUETOOTH)"));
}

/* The user channel is packet-oriented: one H4 packet per write (Core spec Vol 4 Part A 2 and
 * Vol 4 Part E 5.4 give each packet's length). A SOCK_SEQPACKET pair stands in for the kernel
 * socket; the queue must hand over whole packets even after it filled up, and a datagram
 * that is not one whole packet ends the transport with a sentence. */
static void test_userchan_packet_per_write(void **state)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	bt_transport *t = tp_userchan_adopt(sv[0], "userchan:test");
	assert_non_null(t);
	static const uint8_t acl[] = { 0x02, 0x01, 0x20, 0x05, 0x00, 0x01, 0x00, 0x40, 0x00, 0xaa };
	static const uint8_t sco[] = { 0x03, 0x01, 0x00, 0x02, 0x11, 0x22 };
	static const uint8_t iso[] = { 0x05, 0x01, 0x00, 0x01, 0x40, 0x99 }; /* flags in the length's top bits */
	const uint8_t *pkts[] = { hci_reset, acl, sco, iso };
	const size_t lens[] = { sizeof hci_reset, sizeof acl, sizeof sco, sizeof iso };
	for (int i = 0; i < 4; i++)
		assert_int_equal(bt_transport_send(t, pkts[i], lens[i]), 0);
	uint8_t buf[64];
	for (int i = 0; i < 4; i++) {
		assert_int_equal(recv(sv[1], buf, sizeof buf, 0), (ssize_t)lens[i]);
		assert_memory_equal(buf, pkts[i], lens[i]);
	}
	/* Only whole, well-formed packets are accepted. */
	assert_int_equal(bt_transport_send(t, acl, sizeof acl - 1), -EINVAL);
	assert_int_equal(bt_transport_send(t, (const uint8_t *)"\x09\x00\x00", 3), -EINVAL);
	assert_int_equal(bt_transport_send(t, hci_reset, 2), -EINVAL);
	/* Fill the socket until packets queue up, then drain: still one packet per datagram. */
	uint8_t big[260];
	big[0] = 0x02;
	big[1] = 0x01;
	big[2] = 0x20;
	big[3] = 255;
	big[4] = 0;
	int sent = 0;
	while (tp_fd_queued(t) < 5 * sizeof big || sent < 50) { /* several whole packets queued */
		memset(big + 5, sent, 255);
		assert_int_equal(bt_transport_send(t, big, sizeof big), 0);
		sent++;
		assert_true(sent < 100000);
	}
	int got = 0;
	long end = now_ms() + 5000;
	while (got < sent && now_ms() < end) {
		ssize_t n = recv(sv[1], buf, 1, MSG_TRUNC | MSG_DONTWAIT);
		if (n < 0) {
			struct pollfd p[BT_TRANSPORT_MAX_FDS];
			size_t np = bt_transport_pollfds(t, p);
			p[0].revents = POLLOUT;
			assert_int_equal(bt_transport_events(t, p, np), 0);
			continue;
		}
		assert_int_equal(n, (ssize_t)sizeof big);
		got++;
	}
	assert_int_equal(got, sent);
	assert_false(bt_transport_pending(t));
	/* Reads give one packet each, in order. */
	assert_int_equal(send(sv[1], reset_complete, sizeof reset_complete, 0), (ssize_t)sizeof reset_complete);
	assert_int_equal(send(sv[1], acl, sizeof acl, 0), (ssize_t)sizeof acl);
	uint8_t two[sizeof reset_complete + sizeof acl];
	assert_int_equal(tp_read_n(t, two, sizeof two, 2000), sizeof two);
	assert_memory_equal(two, reset_complete, sizeof reset_complete);
	assert_memory_equal(two + sizeof reset_complete, acl, sizeof acl);
	/* A datagram shorter than its header says: the packets before it still come, then the
	 * transport fails with a sentence (nothing reads past a packet's end). */
	assert_int_equal(send(sv[1], reset_complete, sizeof reset_complete, 0), (ssize_t)sizeof reset_complete);
	assert_int_equal(send(sv[1], acl, sizeof acl - 1, 0), (ssize_t)sizeof acl - 1);
	assert_int_equal(tp_read_n(t, buf, sizeof reset_complete, 2000), sizeof reset_complete);
	expect_end(t, EPROTO, "malformed packet: a datagram of 9 octets");
	bt_transport_close(t);
	close(sv[1]);
}

/* bt_transport_register: a kind added at run time opens through the same front door; a taken
 * or malformed prefix is refused. */
static int fake_open(bt_transport *t, const tp_ctx *c, const char *arg)
{
	return tp_fail(c, "fake", ENOENT, arg);
}

static void test_register(void **state)
{
	static const bt_transport_ops fake = { .open = fake_open };
	assert_int_equal(bt_transport_register("unix", &fake), -EEXIST);
	assert_int_equal(bt_transport_register("a:b", &fake), -EINVAL);
	assert_int_equal(bt_transport_register("", &fake), -EINVAL);
	assert_int_equal(bt_transport_register("fake", &fake), 0);
	assert_int_equal(bt_transport_register("fake", &fake), -EEXIST);
	bt_transport *t;
	char err[128];
	assert_int_equal(bt_transport_open("fake:here", &t, err, sizeof err), -ENOENT);
	assert_null(t);
	assert_non_null(strstr(err, "fake:here: fake: "));
	assert_non_null(strstr(err, "(here)"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_plain_hci_reserved),
		cmocka_unit_test(test_unix_echo),
		cmocka_unit_test(test_unix_framing),
		cmocka_unit_test(test_unix_connect_errors),
		cmocka_unit_test(test_unix_eof),
		cmocka_unit_test(test_closed_transport),
		cmocka_unit_test(test_send_full_fails_at_once),
		cmocka_unit_test(test_send_full_then_peer_reads),
		cmocka_unit_test(test_send_too_big),
		cmocka_unit_test(test_tcp_echo),
		cmocka_unit_test(test_tcp_errors),
		cmocka_unit_test(test_serial_pty),
		cmocka_unit_test(test_serial_rates),
		cmocka_unit_test(test_serial_errors),
		cmocka_unit_test(test_userchan_no_bluetooth),
		cmocka_unit_test(test_userchan_packet_per_write),
		cmocka_unit_test(test_register),
	};
	return cmocka_run_group_tests_name("transport", tests, NULL, NULL);
}
