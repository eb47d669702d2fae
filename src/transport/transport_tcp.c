/* transport_tcp.c - "tcp:HOST:PORT" and "tcp:[V6ADDR]:PORT": H4 over a TCP connection (a
 * controller behind a serial-to-TCP bridge, an emulator, a remote btproxy). Nagle is off so
 * small HCI commands leave at once. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/transport_impl.h"

/* How long one address may take to accept the connection. */
#define TCP_CONNECT_MS 5000

typedef struct {
	char host[128];
	char port[8];
} tcp_target;

/* Port: 1..65535, decimal digits only. */
static bool valid_port(const char *s)
{
	if (!*s || strlen(s) > 5)
		return false;
	long v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
	}
	return v >= 1 && v <= 65535;
}

static int split_host_port(const tp_ctx *c, const char *arg, tcp_target *t)
{
	const char *host = arg, *host_end, *port;
	if (arg[0] == '[') { /* [IPv6]:PORT */
		host = arg + 1;
		host_end = strchr(host, ']');
		if (!host_end)
			return tp_fail_parse(c, EINVAL, "missing ']' after IPv6 address; expected tcp:[ADDR]:PORT");
		if (host_end[1] != ':')
			return tp_fail_parse(c, EINVAL, "missing port after ']'; expected tcp:[ADDR]:PORT");
		port = host_end + 2;
	} else {
		host_end = strchr(arg, ':');
		if (!host_end)
			return tp_fail_parse(c, EINVAL, "missing port; expected tcp:HOST:PORT");
		if (strchr(host_end + 1, ':'))
			return tp_fail_parse(c, EINVAL, "too many ':'; write an IPv6 address in brackets: tcp:[::1]:PORT");
		port = host_end + 1;
	}
	size_t hl = (size_t)(host_end - host);
	if (hl == 0)
		return tp_fail_parse(c, EINVAL, "missing host; expected tcp:HOST:PORT");
	if (hl >= sizeof t->host)
		return tp_fail_parse(c, ENAMETOOLONG, "host name too long");
	if (!valid_port(port))
		return tp_fail_parse(c, EINVAL, "bad port '%s': expected a number from 1 to 65535", port);
	memcpy(t->host, host, hl);
	t->host[hl] = '\0';
	snprintf(t->port, sizeof t->port, "%s", port);
	return 0;
}

/* Non-blocking connect bounded by TCP_CONNECT_MS. 0 or a positive errno. */
static int connect_bounded(int s, const struct addrinfo *ai)
{
	if (connect(s, ai->ai_addr, ai->ai_addrlen) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EINTR)
		return errno;
	struct pollfd p = { .fd = s, .events = POLLOUT };
	int n;
	do
		n = poll(&p, 1, TCP_CONNECT_MS);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno;
	if (n == 0)
		return ETIMEDOUT;
	int e = 0;
	socklen_t el = sizeof e;
	if (getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
		return errno;
	return e;
}

/* Tries one resolved address. 0 with *fd, or a positive errno; *step names what failed. */
static int try_address(const struct addrinfo *ai, int *fd, const char **step)
{
	*step = "socket";
	int s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (s < 0)
		return errno;
	*step = "connect";
	int e = connect_bounded(s, ai);
	if (e == 0) {
		int one = 1;
		*step = "setsockopt TCP_NODELAY";
		if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
			e = errno;
	}
	if (e) {
		close(s);
		return e;
	}
	*fd = s;
	return 0;
}

static int resolve_errno(int gai)
{
	switch (gai) {
	case EAI_SYSTEM:
		return errno ? errno : EIO;
	case EAI_MEMORY:
		return ENOMEM;
	case EAI_AGAIN:
		return EAGAIN;
	default: /* no such host, no address of a usable family */
		return EHOSTUNREACH;
	}
}

static int open_tcp_fd(const tp_ctx *c, const char *arg, int *fd)
{
	tcp_target t;
	int r = split_host_port(c, arg, &t);
	if (r < 0)
		return r;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	int g = getaddrinfo(t.host, t.port, &hints, &res);
	if (g != 0) {
		int e = resolve_errno(g);
		if (c->err && c->errlen)
			snprintf(c->err, c->errlen, "%s: resolve: %s: %s", c->spec, t.host, gai_strerror(g));
		return -e;
	}
	int e = EHOSTUNREACH;
	const char *step = "connect";
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		e = try_address(ai, fd, &step);
		if (e == 0)
			break;
	}
	freeaddrinfo(res);
	if (e)
		return tp_fail(c, step, e, e == ECONNREFUSED ? "is the controller bridge listening on that port?" : NULL);
	return 0;
}

static int tcp_open(bt_transport *t, const tp_ctx *c, const char *arg)
{
	int fd = -1;
	int r = open_tcp_fd(c, arg, &fd);
	return r < 0 ? r : tp_fd_attach(t, c, fd, TP_FD_SOCKET);
}

const bt_transport_ops tp_tcp_ops = TP_FD_OPS(tcp_open);
