/* ksock.c - the kernel backend's sockets: the kernel's own RFCOMM (SOCK_STREAM) and L2CAP
 * (SOCK_SEQPACKET) sockets, handed to the application as they are. A small registry keeps
 * what the kernel does not say or says differently: the socket's state as btsock names it,
 * its timeout, the peer it connected to, the error a connection ended with (kept, as
 * btsock_sock_error promises; the kernel's SO_ERROR is cleared once read) and its
 * advertisement.
 *
 * Connecting runs non-blocking under the hood and waits with poll() for the socket's timeout,
 * so a timed-out attempt ends cleanly. A kernel socket whose connect failed cannot connect
 * again (RFCOMM refuses a closed socket), so a failed or timed-out attempt puts a fresh socket
 * with the same binding and options in its place (dup3 onto the same fd): the application's
 * fd stays valid and can try again, as with the user-space backend. */
#include "kernel.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api_error.h"

enum { K_NEW, K_BOUND, K_LISTENING, K_CONNECTING, K_CONNECTED };

typedef struct ksock {
	struct ksock *next;
	int fd;
	enum btsock_proto proto;
	int state;
	int timeout_ms;
	bool bound;        /* bound to local (specific, or any) */
	kn_bdaddr local;
	unsigned port;     /* bound port (0: none) */
	bool port_given;   /* bind named the port (kept by a renewed socket) */
	kn_bdaddr peer;
	unsigned peer_port;
	int sec;           /* btsock level + 1, 0: never set */
	unsigned imtu;     /* 0: never set */
	int err;           /* how the last connection failed or ended (positive errno), kept;
			    * -1: closed in order by the peer */
	char adv[128];     /* D-Bus object path of its advertisement, "" if none */
} ksock;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static ksock *reg;

static ksock *find_locked(int fd)
{
	for (ksock *k = reg; k; k = k->next)
		if (k->fd == fd)
			return k;
	return NULL;
}

/* A copy of fd's entry: true, or false with EBADF set. */
static bool get(int fd, ksock *out, const char *call)
{
	pthread_mutex_lock(&reg_mu);
	ksock *k = find_locked(fd);
	if (k)
		*out = *k;
	pthread_mutex_unlock(&reg_mu);
	if (!k)
		api_fail(EBADF, "%s: %d is not an open btsock socket", call, fd);
	return k != NULL;
}

/* Writes the entry back (if the fd is still registered), all but the fields other threads
 * may set meanwhile through their own calls: the timeout (set_timeout) and the advertisement
 * (set_adv). */
static void put(const ksock *s)
{
	pthread_mutex_lock(&reg_mu);
	ksock *k = find_locked(s->fd);
	if (k) {
		ksock keep = *k;
		*k = *s;
		k->next = keep.next;
		k->timeout_ms = keep.timeout_ms;
		memcpy(k->adv, keep.adv, sizeof k->adv);
	}
	pthread_mutex_unlock(&reg_mu);
}

static void set_timeout(int fd, int timeout_ms)
{
	pthread_mutex_lock(&reg_mu);
	ksock *k = find_locked(fd);
	if (k)
		k->timeout_ms = timeout_ms;
	pthread_mutex_unlock(&reg_mu);
}

/* Replaces the advertisement's path; the old one goes to old. */
static void set_adv(int fd, const char *path, char *old, size_t cap)
{
	pthread_mutex_lock(&reg_mu);
	ksock *k = find_locked(fd);
	if (k) {
		snprintf(old, cap, "%s", k->adv);
		snprintf(k->adv, sizeof k->adv, "%s", path);
	} else {
		snprintf(old, cap, "%s", path); /* closed meanwhile: the new one is to go */
	}
	pthread_mutex_unlock(&reg_mu);
}

static int add(int fd, enum btsock_proto proto, ksock *init)
{
	ksock *k = calloc(1, sizeof *k);
	if (!k)
		return -1;
	if (init)
		*k = *init;
	k->fd = fd;
	k->proto = proto;
	pthread_mutex_lock(&reg_mu);
	/* an fd closed with plain close() and now reused: its old entry goes */
	for (ksock **pp = &reg; *pp; pp = &(*pp)->next)
		if ((*pp)->fd == fd) {
			ksock *old = *pp;
			*pp = old->next;
			free(old);
			break;
		}
	k->next = reg;
	reg = k;
	pthread_mutex_unlock(&reg_mu);
	return 0;
}

static bool take(int fd, ksock *out)
{
	pthread_mutex_lock(&reg_mu);
	ksock *found = NULL;
	for (ksock **pp = &reg; *pp; pp = &(*pp)->next)
		if ((*pp)->fd == fd) {
			found = *pp;
			*pp = found->next;
			break;
		}
	pthread_mutex_unlock(&reg_mu);
	if (found) {
		*out = *found;
		free(found);
	}
	return found != NULL;
}

bool kn_owns_fd(int fd)
{
	pthread_mutex_lock(&reg_mu);
	bool mine = find_locked(fd) != NULL;
	pthread_mutex_unlock(&reg_mu);
	if (!mine)
		return false;
	/* still a Bluetooth socket (not closed with close() and the number reused elsewhere) */
	int dom = 0;
	socklen_t len = sizeof dom;
	return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) == 0 && dom == AF_BLUETOOTH;
}

/* ------------------------------------------------------------------ helpers */

static const char *port_word(enum btsock_proto p) { return p == BTSOCK_RFCOMM ? "channel" : "psm"; }

static const char *port_str(enum btsock_proto p, unsigned port)
{
	static _Thread_local char buf[16];
	snprintf(buf, sizeof buf, p == BTSOCK_RFCOMM ? "%u" : "0x%04x", port);
	return buf;
}

const char *kn_conn_reason(int err)
{
	switch (err) {
	case ECONNREFUSED: return "connection refused (nobody listens there)";
	case EHOSTDOWN: return "no device answered at that address (page timeout)";
	case ETIMEDOUT: return "timed out";
	case ECONNRESET: return "the link went down";
	case ECONNABORTED: return "the connection was aborted by this host";
	case EACCES: return "refused for security reasons (pairing failed or was refused: pair with bluetoothctl, whose agent answers for the kernel; or the peer holds a key this host lost: remove the pairing on the peer)";
	case EHOSTUNREACH: return "no kernel adapter can reach it (no adapter is up)";
	case ENETDOWN: return "the adapter went away";
	case EADDRINUSE: return "this adapter already has a connection to that channel of that device";
	default: return strerror(err);
	}
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

int kn_wait(int fd, short events, int timeout_ms)
{
	long end = timeout_ms < 0 ? 0 : now_ms() + timeout_ms;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int left = timeout_ms < 0 ? -1 : (int)(end - now_ms());
		if (timeout_ms >= 0 && left < 0)
			left = 0;
		int n = poll(&p, 1, left);
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

static int check_port(enum btsock_proto proto, const char *call, unsigned port)
{
	if (proto == BTSOCK_RFCOMM && port > 30)
		return api_fail(EINVAL, "%s: RFCOMM channel %u is out of range (1-30, or 0 for any)", call, port);
	if (proto == BTSOCK_L2CAP && port != 0 && (port > 0xffff || (port & 0x0101) != 0x0001))
		return api_fail(EINVAL, "%s: 0x%04x is not a valid PSM (odd, with the upper byte's lowest bit 0)",
				call, port);
	return 0;
}

static int sys_bind(int fd, enum btsock_proto proto, const kn_bdaddr *a, unsigned port)
{
	if (proto == BTSOCK_RFCOMM) {
		struct kn_sockaddr_rc sa = { .rc_family = AF_BLUETOOTH, .rc_bdaddr = *a, .rc_channel = (uint8_t)port };
		return bind(fd, (struct sockaddr *)&sa, sizeof sa);
	}
	struct kn_sockaddr_l2 sa = { .l2_family = AF_BLUETOOTH, .l2_psm = htole16((uint16_t)port), .l2_bdaddr = *a };
	return bind(fd, (struct sockaddr *)&sa, sizeof sa);
}

/* The local or peer address and port the kernel reports. */
static int sys_name(int fd, enum btsock_proto proto, bool peer, kn_bdaddr *a, unsigned *port)
{
	union {
		struct kn_sockaddr_rc rc;
		struct kn_sockaddr_l2 l2;
	} sa;
	memset(&sa, 0, sizeof sa);
	socklen_t len = sizeof sa;
	if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	if (proto == BTSOCK_RFCOMM) {
		*a = sa.rc.rc_bdaddr;
		*port = sa.rc.rc_channel;
	} else {
		*a = sa.l2.l2_bdaddr;
		*port = le16toh(sa.l2.l2_psm);
	}
	return 0;
}

static int apply_security(int fd, int level)
{
	struct kn_bt_security sec = { .level = (uint8_t)(KN_BT_SECURITY_LOW + level) };
	return setsockopt(fd, KN_SOL_BLUETOOTH, KN_BT_SECURITY, &sec, sizeof sec);
}

static int apply_imtu(int fd, unsigned imtu)
{
	struct kn_l2cap_options o;
	socklen_t len = sizeof o;
	memset(&o, 0, sizeof o);
	if (getsockopt(fd, KN_SOL_L2CAP, KN_L2CAP_OPTIONS, &o, &len) < 0)
		return -1;
	o.imtu = (uint16_t)imtu;
	return setsockopt(fd, KN_SOL_L2CAP, KN_L2CAP_OPTIONS, &o, sizeof o);
}

static int new_kernel_socket(enum btsock_proto proto)
{
	return proto == BTSOCK_RFCOMM ? socket(AF_BLUETOOTH, SOCK_STREAM | SOCK_CLOEXEC, KN_BTPROTO_RFCOMM)
				      : socket(AF_BLUETOOTH, SOCK_SEQPACKET | SOCK_CLOEXEC, KN_BTPROTO_L2CAP);
}

/* A failed or abandoned connect: a fresh kernel socket with s's binding and options replaces
 * the one on s->fd. Best effort: if it cannot be made, the old socket stays. */
static void renew(ksock *s)
{
	int n = new_kernel_socket(s->proto);
	if (n < 0)
		return;
	if (s->sec)
		apply_security(n, s->sec - 1);
	if (s->imtu && s->proto == BTSOCK_L2CAP)
		apply_imtu(n, s->imtu);
	if (s->bound && sys_bind(n, s->proto, &s->local, s->port_given ? s->port : 0) < 0) {
		s->bound = false;
		s->port = 0;
	}
	if (s->bound && s->proto == BTSOCK_L2CAP && !s->port_given) {
		kn_bdaddr a;
		unsigned p;
		if (sys_name(n, s->proto, false, &a, &p) == 0)
			s->port = p;
	}
	api_fd_timeout(n, s->timeout_ms);
	if (dup3(n, s->fd, O_CLOEXEC) >= 0)
		s->state = s->bound ? K_BOUND : K_NEW;
	close(n);
}

/* ------------------------------------------------------------------ the calls */

int kn_socket(enum btsock_proto proto)
{
	if (proto != BTSOCK_L2CAP && proto != BTSOCK_RFCOMM)
		return api_fail(EPROTONOSUPPORT, "btsock_socket: unknown protocol %d (BTSOCK_L2CAP or BTSOCK_RFCOMM)",
				(int)proto);
	int fd = new_kernel_socket(proto);
	if (fd < 0) {
		int e = errno;
		if (e == EAFNOSUPPORT || e == EPROTONOSUPPORT)
			return api_fail(e, "btsock_socket: this kernel has no Bluetooth %s sockets (modprobe %s)",
					proto == BTSOCK_RFCOMM ? "RFCOMM" : "L2CAP",
					proto == BTSOCK_RFCOMM ? "rfcomm" : "bluetooth");
		return api_fail(e, "btsock_socket: %s", strerror(e));
	}
	ksock init = { .timeout_ms = -1 };
	if (add(fd, proto, &init) < 0) {
		close(fd);
		return api_fail(ENOMEM, "btsock_socket: out of memory");
	}
	api_clear_error();
	return fd;
}

/* Binds s to a (any: the kernel's BDADDR_ANY) and port (0: a free one if pick, else none:
 * a client's binding). */
static int do_bind(ksock *s, const kn_bdaddr *a, unsigned port, bool pick, const char *call)
{
	int rc = -1;
	if (s->proto == BTSOCK_RFCOMM && port == 0 && pick) {
		/* The kernel picks a channel for channel 0 only at listen(); btsock promises it at
		 * bind (getsockname, advertise_service before listen), so pick it here: the first
		 * channel no other socket has bound on this address. */
		for (unsigned ch = 1; ch <= 30 && rc < 0; ch++) {
			rc = sys_bind(s->fd, s->proto, a, ch);
			if (rc == 0)
				port = ch;
			else if (errno != EADDRINUSE)
				break;
		}
		if (rc < 0 && errno == EADDRINUSE)
			return api_fail(EADDRINUSE, "%s: no free channel left", call);
	} else {
		rc = sys_bind(s->fd, s->proto, a, port); /* L2CAP PSM 0: the kernel picks 0x1001-0x10ff */
	}
	if (rc < 0) {
		int e = errno;
		if (e == EADDRINUSE)
			return port ? api_fail(e, "%s: %s %s is in use", call, port_word(s->proto), port_str(s->proto, port))
				    : api_fail(e, "%s: no free %s left", call, port_word(s->proto));
		if (e == EADDRNOTAVAIL)
			return api_fail(e, "%s: no kernel adapter has that address", call);
		if (e == EINVAL || e == EBADFD)
			return api_fail(EINVAL, "%s: socket %d is already bound", call, s->fd);
		return api_fail(e, "%s: %s", call, strerror(e));
	}
	if (s->proto == BTSOCK_L2CAP) {
		kn_bdaddr got;
		unsigned p = port;
		if (sys_name(s->fd, s->proto, false, &got, &p) == 0)
			port = p;
	}
	s->bound = true;
	s->local = *a;
	s->port = port;
	s->state = K_BOUND;
	return 0;
}

int kn_bind(int fd, const char *local, unsigned port)
{
	ksock s;
	if (!get(fd, &s, "bind"))
		return -1;
	if (check_port(s.proto, "bind", port) < 0)
		return -1;
	if (s.state != K_NEW)
		return api_fail(EINVAL, "bind: socket %d is already bound", fd);
	kn_bdaddr a;
	bool any = false;
	if (!local || !*local) {
		if (kn_default_dev(&a, &any, "bind") < 0)
			return -1;
	} else if (kn_addr_parse(local, &a) < 0) {
		return api_fail(EINVAL, "bind: invalid local address '%s': expected \"\" or six hex bytes like 01:23:45:67:89:AB",
				local);
	} else if (kn_dev_by_addr(&a) < 0) {
		return api_fail(EADDRNOTAVAIL, "bind: no kernel adapter that is up has address %s", local);
	}
	bool given = port != 0;
	if (do_bind(&s, &a, port, true, "bind") < 0)
		return -1;
	s.port_given = given;
	put(&s);
	api_clear_error();
	return 0;
}

int kn_listen(int fd, int backlog)
{
	ksock s;
	if (!get(fd, &s, "listen"))
		return -1;
	if (s.state != K_BOUND && s.state != K_LISTENING)
		return api_fail(EINVAL, "listen: socket %d is not bound (call btsock_bind first)", fd);
	backlog = backlog < 1 ? 1 : backlog > 64 ? 64 : backlog;
	/* Deferred setup: the kernel answers a connection only once the application accepts it
	 * (kn_accept). Without it the kernel completes connections on its own, and one the peer
	 * closes before accept() is dropped with its data (bt_accept_dequeue skips closed
	 * children): a client that connects, sends and closes at once would lose its message. */
	uint32_t defer = 1;
	setsockopt(fd, KN_SOL_BLUETOOTH, KN_BT_DEFER_SETUP, &defer, sizeof defer);
	if (listen(fd, backlog) < 0) {
		int e = errno;
		return api_fail(e, "listen: %s", strerror(e));
	}
	s.state = K_LISTENING;
	put(&s);
	api_clear_error();
	return 0;
}

int kn_accept(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port)
{
	ksock s;
	if (!get(fd, &s, "accept"))
		return -1;
	if (s.state != K_LISTENING)
		return api_fail(EINVAL, "accept: socket %d is not listening", fd);
	int t = s.timeout_ms;
	int c;
	for (;;) {
		int r = kn_wait(fd, POLLIN, t);
		if (r < 0)
			return api_fail(errno, "accept: %s", strerror(errno));
		if (r == 0)
			return t == 0 ? api_fail(EAGAIN, "accept: no connection is waiting")
				      : api_fail(ETIMEDOUT, "accept: no connection within %d ms", t);
		c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c >= 0)
			break;
		if (errno == EAGAIN || errno == EINTR)
			continue; /* the connection went before we took it */
		int e = errno;
		if (e == EBADF || e == EINVAL)
			return api_fail(EBADF, "accept: socket %d was closed", fd);
		return api_fail(e, "accept: %s", strerror(e));
	}
	/* Deferred setup (kn_listen): a read of nothing accepts the connection (RFCOMM: UA;
	 * L2CAP: Connection Response and configuration); an L2CAP channel is open once it polls
	 * writable. */
	char none;
	recv(c, &none, 0, MSG_DONTWAIT);
	if (s.proto == BTSOCK_L2CAP) {
		int r = kn_wait(c, POLLOUT, t > 0 ? t : 10000);
		struct pollfd pc = { .fd = c, .events = POLLOUT };
		if (r <= 0 || (poll(&pc, 1, 0) == 1 && (pc.revents & (POLLERR | POLLHUP)) && !(pc.revents & POLLOUT))) {
			int so = 0;
			socklen_t sl = sizeof so;
			getsockopt(c, SOL_SOCKET, SO_ERROR, &so, &sl);
			close(c);
			return api_fail(r == 0 ? ETIMEDOUT : so ? so : ECONNRESET,
					"accept: the connection ended while it was being set up (%s)",
					r == 0 ? "no configuration in time" : kn_conn_reason(so ? so : ECONNRESET));
		}
	}
	ksock init = { .timeout_ms = -1, .state = K_CONNECTED, .bound = true, .sec = s.sec, .imtu = s.imtu };
	sys_name(c, s.proto, false, &init.local, &init.port);
	if (sys_name(c, s.proto, true, &init.peer, &init.peer_port) < 0) {
		/* gone already: still a connected socket that reads end of file */
		memset(&init.peer, 0, sizeof init.peer);
	}
	/* the kernel's accepted socket inherits the listener's flags: not O_NONBLOCK */
	api_fd_timeout(c, -1);
	if (add(c, s.proto, &init) < 0) {
		close(c);
		return api_fail(ENOMEM, "accept: out of memory");
	}
	if (addr)
		kn_addr_format(&init.peer, addr);
	if (port)
		*port = init.peer_port;
	api_clear_error();
	return c;
}

/* The attempt ended with err (positive): s is renewed, err kept for sock_error. */
static int connect_failed(ksock *s, const char *a, int err)
{
	s->err = err;
	renew(s);
	put(s);
	return api_fail(err, "connect %s %s %s: %s", a, port_word(s->proto), port_str(s->proto, s->peer_port),
			kn_conn_reason(err));
}

int kn_connect(int fd, const char *addr, unsigned port)
{
	ksock s;
	if (!get(fd, &s, "connect"))
		return -1;
	kn_bdaddr peer;
	if (!addr || kn_addr_parse(addr, &peer) < 0)
		return api_fail(EINVAL, "connect: invalid address '%s': expected six hex bytes like 01:23:45:67:89:AB",
				addr ? addr : "(null)");
	if (check_port(s.proto, "connect", port) < 0)
		return -1;
	if (port == 0)
		return api_fail(EINVAL, "connect: %s 0 is not a destination", port_word(s.proto));
	if (s.state == K_CONNECTING)
		return api_fail(EALREADY, "connect: a connection attempt is already under way");
	if (s.state == K_CONNECTED)
		return api_fail(EISCONN, "connect: socket %d is already connected", fd);
	if (s.state == K_LISTENING)
		return api_fail(EINVAL, "connect: socket %d cannot connect in its state", fd);
	if (s.state == K_NEW) {
		/* "" = the default adapter: bind to it first when one is named (btsock_adapter_open,
		 * BTSOCK_ADAPTER=hciN); else the kernel picks the route */
		kn_bdaddr a;
		bool any;
		if (kn_default_dev(&a, &any, "connect") < 0)
			return -1;
		if (!any && do_bind(&s, &a, 0, false, "connect") < 0)
			return -1;
	}
	if (s.bound && memcmp(&s.local, &peer, sizeof peer) == 0)
		return api_fail(EINVAL, "connect: %s is this adapter's own address", addr);
	s.peer = peer;
	s.peer_port = port;
	s.err = 0;
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	int rc;
	if (s.proto == BTSOCK_RFCOMM) {
		struct kn_sockaddr_rc sa = { .rc_family = AF_BLUETOOTH, .rc_bdaddr = peer, .rc_channel = (uint8_t)port };
		rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	} else {
		struct kn_sockaddr_l2 sa = { .l2_family = AF_BLUETOOTH, .l2_psm = htole16((uint16_t)port), .l2_bdaddr = peer };
		rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	}
	int e = rc < 0 ? errno : 0;
	if (rc < 0 && e != EINPROGRESS) {
		fcntl(fd, F_SETFL, fl);
		return connect_failed(&s, addr, e);
	}
	if (rc < 0 && s.timeout_ms == 0) {
		s.state = K_CONNECTING;
		put(&s);
		return api_fail(EINPROGRESS, "connect %s %s %s: in progress", addr, port_word(s.proto),
				port_str(s.proto, port));
	}
	if (rc < 0) {
		int r = kn_wait(fd, POLLOUT, s.timeout_ms);
		if (r == 0) {
			fcntl(fd, F_SETFL, fl);
			s.err = ETIMEDOUT;
			renew(&s);
			put(&s);
			return api_fail(ETIMEDOUT, "connect %s %s %s: no connection within %d ms", addr,
					port_word(s.proto), port_str(s.proto, port), s.timeout_ms);
		}
		socklen_t len = sizeof e;
		e = 0;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
			e = errno;
		fcntl(fd, F_SETFL, fl);
		if (e)
			return connect_failed(&s, addr, e);
	} else {
		fcntl(fd, F_SETFL, fl);
	}
	s.state = K_CONNECTED;
	kn_bdaddr l;
	unsigned lp;
	if (sys_name(fd, s.proto, false, &l, &lp) == 0 && !kn_addr_any(&l)) {
		s.local = l;
		s.bound = true;
	}
	put(&s);
	api_clear_error();
	return 0;
}

int kn_connect_result(int fd)
{
	ksock s;
	if (!get(fd, &s, "connect_result"))
		return -1;
	char a[BTSOCK_ADDRSTRLEN];
	kn_addr_format(&s.peer, a);
	if (s.state == K_CONNECTED) {
		api_clear_error();
		return 0;
	}
	if (s.state != K_CONNECTING)
		return api_fail(ENOTCONN, "connect_result: socket %d is not connecting", fd);
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	if (poll(&p, 1, 0) <= 0)
		return api_fail(EINPROGRESS, "connect %s %s %s: in progress", a, port_word(s.proto),
				port_str(s.proto, s.peer_port));
	int e = 0;
	socklen_t len = sizeof e;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
		e = errno;
	if (!e && !(p.revents & POLLOUT))
		e = ECONNRESET;
	if (e)
		return connect_failed(&s, a, e);
	s.state = K_CONNECTED;
	put(&s);
	api_clear_error();
	return 0;
}

int kn_getsockname(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port)
{
	ksock s;
	if (!get(fd, &s, "getsockname"))
		return -1;
	kn_bdaddr a = s.local;
	unsigned p = s.port;
	if (!s.bound && s.state != K_CONNECTED)
		return api_fail(EINVAL, "getsockname: socket %d is not bound to an adapter", fd);
	if (sys_name(fd, s.proto, false, &a, &p) < 0)
		a = s.local;
	if (p == 0)
		p = s.port;
	if (kn_addr_any(&a)) /* bound to any adapter: name the one a peer would reach first */
		kn_first_up(&a);
	if (addr)
		kn_addr_format(&a, addr);
	if (port)
		*port = p;
	api_clear_error();
	return 0;
}

int kn_getpeername(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port)
{
	ksock s;
	if (!get(fd, &s, "getpeername"))
		return -1;
	if (s.state != K_CONNECTED)
		return api_fail(ENOTCONN, "getpeername: socket %d is not connected", fd);
	if (addr)
		kn_addr_format(&s.peer, addr);
	if (port)
		*port = s.peer_port;
	api_clear_error();
	return 0;
}

int kn_settimeout(int fd, int timeout_ms)
{
	ksock s;
	if (!get(fd, &s, "settimeout"))
		return -1;
	s.timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
	api_fd_timeout(fd, s.timeout_ms);
	set_timeout(fd, s.timeout_ms);
	return 0;
}

int kn_get_mtu(int fd, unsigned *incoming, unsigned *outgoing)
{
	ksock s;
	if (!get(fd, &s, "get_mtu"))
		return -1;
	if (s.proto == BTSOCK_RFCOMM)
		return api_fail(EOPNOTSUPP, "get_mtu: the kernel does not tell an RFCOMM socket's frame size");
	struct kn_l2cap_options o;
	socklen_t len = sizeof o;
	memset(&o, 0, sizeof o);
	if (getsockopt(fd, KN_SOL_L2CAP, KN_L2CAP_OPTIONS, &o, &len) < 0)
		return api_fail(errno, "get_mtu: %s", strerror(errno));
	if (incoming)
		*incoming = o.imtu;
	if (outgoing)
		*outgoing = s.state == K_CONNECTED ? o.omtu : 0;
	api_clear_error();
	return 0;
}

int kn_set_mtu(int fd, unsigned incoming)
{
	ksock s;
	if (!get(fd, &s, "set_mtu"))
		return -1;
	if (s.proto != BTSOCK_L2CAP)
		return api_fail(EOPNOTSUPP, "set_mtu: only L2CAP sockets have a settable MTU");
	if (incoming < 48 || incoming > 4096)
		return api_fail(EINVAL, "set_mtu: %u is outside 48-4096", incoming);
	if (s.state != K_NEW && s.state != K_BOUND)
		return api_fail(EISCONN, "set_mtu: set the MTU before listen or connect");
	if (apply_imtu(fd, incoming) < 0)
		return api_fail(errno, "set_mtu: %s", strerror(errno));
	s.imtu = incoming;
	put(&s);
	api_clear_error();
	return 0;
}

int kn_set_security(int fd, enum btsock_security level)
{
	ksock s;
	if (!get(fd, &s, "set_security"))
		return -1;
	if ((unsigned)level > BTSOCK_SEC_FIPS)
		return api_fail(EINVAL, "set_security: %d is not a security level (low, medium, high, fips)", (int)level);
	if (s.state != K_NEW && s.state != K_BOUND)
		return api_fail(EISCONN, "set_security: set the level before listen or connect");
	if (apply_security(fd, (int)level) < 0) {
		int e = errno;
		if (e == EINVAL)
			return api_fail(EINVAL, "set_security: the kernel's %s sockets refuse level %d",
					s.proto == BTSOCK_RFCOMM ? "RFCOMM" : "L2CAP", (int)level);
		return api_fail(e, "set_security: %s", strerror(e));
	}
	s.sec = (int)level + 1;
	put(&s);
	api_clear_error();
	return 0;
}

int kn_sock_error(int fd)
{
	ksock s;
	if (!get(fd, &s, "sock_error"))
		return -1;
	if (!s.err && (s.state == K_CONNECTED || s.state == K_CONNECTING)) {
		int e = 0;
		socklen_t len = sizeof e;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e) {
			/* The kernel ends a channel the peer closed in order with ECONNRESET too
			 * (RFCOMM DISC, L2CAP Disconnection Request): when the ACL link to the peer is
			 * still up, the channel was closed, not the link lost. */
			s.err = e == ECONNRESET && s.state == K_CONNECTED && kn_acl_up(&s.local, &s.peer) ? -1 : e;
			put(&s);
		}
	}
	if (s.err <= 0) {
		api_clear_error();
		return 0;
	}
	char a[BTSOCK_ADDRSTRLEN];
	kn_addr_format(&s.peer, a);
	const char *why;
	switch (s.err) {
	case ECONNRESET: why = "the link went down (the peer vanished or reset it; the kernel says so also when the peer closed the channel)"; break;
	case ETIMEDOUT: why = "the link timed out (the peer stopped answering)"; break;
	default: why = kn_conn_reason(s.err); break;
	}
	api_fail(s.err, "%s %s %s %s: %s", s.state == K_CONNECTED ? "link lost to" : "connect", a, port_word(s.proto),
		 port_str(s.proto, s.peer_port), why);
	return s.err;
}

/* Bytes written and not yet handed to the controller. The Bluetooth sockets' TIOCOUTQ is the
 * free room of the send buffer (bt_sock_ioctl: sk_sndbuf - sk_wmem_alloc), not the queued
 * bytes, hence SO_SNDBUF minus it. -1 if unknown. */
static int unsent(int fd)
{
	int room = 0, buf = 0;
	socklen_t len = sizeof buf;
	if (ioctl(fd, TIOCOUTQ, &room) < 0 || getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, &len) < 0)
		return -1;
	return buf > room ? buf - room : 0;
}

int kn_close(int fd)
{
	ksock s;
	if (!take(fd, &s))
		return api_fail(EBADF, "close: %d is not an open btsock socket", fd);
	if (s.adv[0])
		kn_dbus_unregister(s.adv);
	int rc = 0;
	if (s.state == K_CONNECTED) {
		/* the data written goes out first: the kernel's RFCOMM and L2CAP shutdown wait for the
		 * channel to close (after the queued data) for as long as SO_LINGER says */
		int secs = s.timeout_ms > 0 ? (s.timeout_ms + 999) / 1000 : 5;
		struct linger l = { 1, secs };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
		int fl = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
		/* L2CAP basic mode does not wait for queued data before its Disconnection Request
		 * (RFCOMM sends its DISC after the queue): wait until the kernel has handed everything
		 * written to the controller, as long as that makes progress within the linger time */
		int q, last = -1;
		long until = now_ms() + secs * 1000L;
		while ((q = unsent(fd)) > 0 && now_ms() < until) {
			if (q != last)
				until = now_ms() + secs * 1000L;
			last = q;
			struct timespec ts = { 0, 10 * 1000000L };
			nanosleep(&ts, NULL);
		}
		/* A channel the peer closed in order (before or during our close) makes shutdown
		 * report ECONNRESET (RFCOMM's pending socket error): no fault while the link to the
		 * peer is still up. (Whether the peer had taken all our data then, the kernel does
		 * not tell; the wait above saw it leave this host.) */
		if (shutdown(fd, SHUT_RDWR) < 0 && errno != ENOTCONN &&
		    !(errno == ECONNRESET && kn_acl_up(&s.local, &s.peer))) {
			int e = errno == EINPROGRESS || errno == EAGAIN ? ETIMEDOUT : errno;
			char a[BTSOCK_ADDRSTRLEN];
			kn_addr_format(&s.peer, a);
			rc = e == ETIMEDOUT ? api_fail(e, "close: data to %s was not all delivered: the channel did not close within %d s", a, secs)
					    : api_fail(e, "close: %s", kn_conn_reason(e));
		}
	}
	close(fd);
	if (rc == 0)
		api_clear_error();
	return rc;
}

int kn_advertise_service(int fd, const struct btsock_service *svc)
{
	ksock s;
	if (!get(fd, &s, "advertise_service"))
		return -1;
	if (!svc)
		return api_fail(EINVAL, "advertise_service: no service description");
	if (!s.bound || !s.port)
		return api_fail(EINVAL, "advertise_service: socket %d is not bound to a %s (call btsock_bind first)", fd,
				s.proto == BTSOCK_RFCOMM ? "channel" : "PSM");
	char *xml = kn_service_xml(svc, s.proto, s.port, "advertise_service");
	if (!xml)
		return -1;
	char path[sizeof s.adv];
	int rc = kn_dbus_register(xml, path, sizeof path, "advertise_service");
	free(xml);
	if (rc < 0)
		return -1;
	char old[sizeof s.adv];
	set_adv(fd, path, old, sizeof old);
	if (old[0])
		kn_dbus_unregister(old); /* advertising again replaces the record */
	api_clear_error();
	return 0;
}

int kn_stop_advertising(int fd)
{
	ksock s;
	if (!get(fd, &s, "stop_advertising"))
		return -1;
	if (!s.adv[0])
		return api_fail(ENOENT, "stop_advertising: socket %d advertises no service", fd);
	char old[sizeof s.adv];
	set_adv(fd, "", old, sizeof old);
	if (old[0])
		kn_dbus_unregister(old);
	api_clear_error();
	return 0;
}

void kn_sock_shutdown(void)
{
	for (;;) {
		pthread_mutex_lock(&reg_mu);
		ksock *k = reg;
		if (k)
			reg = k->next;
		pthread_mutex_unlock(&reg_mu);
		if (!k)
			break;
		if (k->adv[0])
			kn_dbus_unregister(k->adv);
		free(k); /* the fds are the application's: they stay open */
	}
	kn_dbus_shutdown();
}
