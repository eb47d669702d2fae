/* cmd_bench.c - `btsock bench`: RFCOMM between two stacks in two processes on the same
 * controller source (btvirt gives each process its own emulated controller): one-way and full
 * duplex throughput with the CPU time both processes spend per MiB, connection set-up time
 * (with the HCI packets one connect exchanges, counted from a btsnoop capture), the first
 * connect to a device over fresh links with and without SSP (commands, ACL packets and turns
 * from a capture), the round trip of a 16-byte echo, and the heap each open channel costs
 * with 200 channels across links.
 *
 * The server side is forked before any adapter is opened (an adapter starts a thread); it
 * reports its address and channel, then its CPU time, through a pipe. Only the public API. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

static const char bench_help[] =
	"Usage: btsock bench [options] [oneway|duplex|connect|first|echo|memory|all]\n"
	"\n"
	"RFCOMM between two btsock stacks (this process and a forked one, each opening its own\n"
	"controller on the adapter, e.g. two emulated controllers of btvirt -s):\n"
	"  oneway   N MiB one way: payload MB/s, CPU seconds both processes spend per MiB\n"
	"  duplex   N MiB each way at once: summed MB/s, CPU per MiB\n"
	"  connect  connect() call to connected, median and 99th percentile over --count\n"
	"           connects to a known channel (the first, which pages and opens the link,\n"
	"           apart), and the HCI packets one connect+close exchanges; then what\n"
	"           `first` measures (no --keyed)\n"
	"  first    the first connect to a device: --first N times a fresh pair of controllers\n"
	"           (so a fresh link: page, link set-up, L2CAP, RFCOMM), median and p99, once\n"
	"           with a peer whose host does not support Secure Simple Pairing (no security:\n"
	"           the peer's Write_Simple_Pairing_Mode is turned into 'disabled' on its way to\n"
	"           the controller, unix: adapters only) and once with SSP on both sides (Just\n"
	"           Works pairing and encryption, Core Vol 3 Part C 5.2.2); per first connect\n"
	"           (medians) the HCI commands we send, ACL packets each way and turns: the times\n"
	"           we, having sent, next hear something other than Command Status/Complete or\n"
	"           Number Of Completed Packets (each a wait for the peer or its link manager),\n"
	"           counted in a btsnoop capture between the connect() call and its return\n"
	"           (BTSOCK_BENCH_CAPTURE=PATH keeps it as PATH.nossp, PATH.ssp, PATH.keyed)\n"
	"  echo     round trip of 16 bytes (--size), application to application, median and p99\n"
	"  memory   200 channels open at once across 7 links (14 controllers in this process):\n"
	"           heap per channel end (the socketpair buffers are kernel memory, not counted)\n"
	"  all      every one of these (the default)\n"
	"Pin everything to one CPU for stable figures: taskset -c 0 (bench/run.sh does, with the\n"
	"btvirt ceiling next to them).\n"
	"\n"
	"Options:\n"
	"  --mib N      MiB for oneway/duplex (default 20)\n"
	"  --count N    connects / echoes (default 200 / 2000)\n"
	"  --first N    fresh links for 'first' (default 50)\n"
	"  --size N     bytes per echo (default 16; up to 65536)\n"
	"  --keyed N    also N first connects with the link key stored (keystores on both sides,\n"
	"               a pairing round first; each round waits ~5.5 s for the link to go)\n";

enum { OPT_MIB, OPT_COUNT, OPT_FIRST, OPT_KEYED, OPT_SIZE };
static const struct tool_opt bench_opts[] = {
	[OPT_MIB] = { 0, "mib", true },
	[OPT_COUNT] = { 0, "count", true },
	[OPT_FIRST] = { 0, "first", true },
	[OPT_KEYED] = { 0, "keyed", true },
	[OPT_SIZE] = { 0, "size", true },
};

enum mode { M_ONEWAY, M_DUPLEX, M_CONNECT, M_ECHO, M_FIRST };

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
	       (double)u.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	qsort(v, n, sizeof *v, cmp_double);
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* ------------------------------------------------------------------ data movement */

/* Sends tx bytes and receives rx bytes on fd at once (poll), checking nothing but counts. */
static int pump(int fd, uint64_t tx, uint64_t rx)
{
	static unsigned char buf[65536];
	uint64_t sent = 0, got = 0;
	while (sent < tx || got < rx) {
		struct pollfd p = { fd, (short)((sent < tx ? POLLOUT : 0) | (got < rx ? POLLIN : 0)), 0 };
		if (poll(&p, 1, 30000) <= 0)
			return tool_msg("bench: no progress for 30 s (sent %llu, received %llu)",
					(unsigned long long)sent, (unsigned long long)got),
			       -1;
		if (p.revents & POLLIN) {
			ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
			if (r == 0 && got < rx)
				return tool_msg("bench: the peer closed early"), -1;
			if (r > 0)
				got += (uint64_t)r;
		}
		if ((p.revents & POLLOUT) && sent < tx) {
			size_t n = tx - sent < sizeof buf ? (size_t)(tx - sent) : sizeof buf;
			ssize_t w = send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN)
				return tool_msg("bench: send: %s", strerror(errno)), -1;
			if (w > 0)
				sent += (uint64_t)w;
		}
		if (p.revents & (POLLERR | POLLHUP) && !(p.revents & POLLIN))
			return tool_msg("bench: the connection failed"), -1;
	}
	return 0;
}

static int echo_serve(int fd)
{
	unsigned char buf[4096];
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof buf, 0);
		if (r <= 0)
			return 0;
		if (send(fd, buf, (size_t)r, MSG_NOSIGNAL) != r)
			return -1;
	}
}

/* ------------------------------------------------------------------ the server process */

/* One server process serves every mode, so that it is forked before this process opens any
 * adapter (fork and threads do not mix): the parent sends a request, the server listens on a
 * fresh channel, reports where, serves, then reports its CPU seconds. */
struct srv_request {
	enum mode mode;
	uint64_t bytes;
};

struct srv_report {
	char addr[BTSOCK_ADDRSTRLEN];
	unsigned channel;
	int ok;
};

static int serve_mode(int l, const struct srv_request *q)
{
	for (;;) {
		int c = btsock_accept(l, NULL, NULL);
		if (c < 0)
			return q->mode == M_CONNECT ? 0 : -1;
		int rc = 0;
		if (q->mode == M_ONEWAY)
			rc = pump(c, 0, q->bytes);
		else if (q->mode == M_DUPLEX)
			rc = pump(c, q->bytes, q->bytes);
		else if (q->mode == M_ECHO)
			rc = echo_serve(c);
		btsock_close(c);
		if (q->mode != M_CONNECT || rc < 0)
			return rc;
	}
}

/* ------------------------------------------------------------------ a host without SSP */

/* For 'first' without security the server's host must not support Secure Simple Pairing, as
 * a pre-2.1 host (Core Vol 3 Part C 5.2.2 then asks nothing of the link). Only the public API
 * is at hand here, so the server opens its adapter through this relay, a thread of its own
 * process between the stack and btvirt's socket: it passes every H4 packet on unchanged
 * except Write_Simple_Pairing_Mode (Vol 4 Part E 7.3.59) and
 * Write_Secure_Connections_Host_Support (7.3.92), whose one parameter becomes 0x00
 * (disabled): the controller then reports no host SSP support in its features page 1, which
 * is what a peer reads. A relay would cost the server a thread hop per packet (it tripled a
 * peer round trip here), so once the adapter is open and the line has been quiet for 20 ms
 * the relay steps out: the stack's end of the relay socket (found by its peer address) is
 * replaced, with dup2(), by the connection to btvirt itself, and the relay's end is closed so
 * that the stack's poll() wakes up and polls the new file. From then on the stack talks to
 * the controller directly, as in the SSP runs. */
struct relay {
	int lfd;
	_Atomic int step_out; /* 1: asked, 2: done, -1: failed */
	char keyed[BTSOCK_ADDRSTRLEN]; /* the adapter kept open with a keystore (q->bytes 2) */
	char up[sizeof ((struct sockaddr_un *)0)->sun_path];
	char path[sizeof ((struct sockaddr_un *)0)->sun_path];
};

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The length of the H4 packet at p (n bytes there), 0 if not complete yet, -1 if unknown. */
static long h4_len(const uint8_t *p, size_t n)
{
	size_t hdr, body;
	if (n < 1)
		return 0;
	switch (p[0]) {
	case 0x01: /* command: opcode, length (Vol 4 Part E 5.4.1) */
	case 0x03: /* SCO: handle, length (5.4.3) */
		hdr = 4;
		if (n < hdr)
			return 0;
		body = p[3];
		break;
	case 0x02: /* ACL: handle, length le16 (5.4.2) */
		hdr = 5;
		if (n < hdr)
			return 0;
		body = (size_t)p[3] | (size_t)p[4] << 8;
		break;
	default:
		return -1;
	}
	return n >= hdr + body ? (long)(hdr + body) : 0;
}

/* The stack's end of the relay socket: the socket in this process whose peer is the relay. */
static int relay_client_fd(const struct relay *r)
{
	for (int fd = 3; fd < 4096; fd++) {
		struct sockaddr_un a;
		socklen_t n = sizeof a;
		if (getpeername(fd, (struct sockaddr *)&a, &n) == 0 && a.sun_family == AF_UNIX &&
		    n > offsetof(struct sockaddr_un, sun_path) && strcmp(a.sun_path, r->path) == 0)
			return fd;
	}
	return -1;
}

/* Puts ctrl in place of the stack's socket; 0, or -1 (the relay goes on relaying). */
static int relay_step_out(struct relay *r, int ctrl)
{
	int fd = relay_client_fd(r);
	int fl = fcntl(fd < 0 ? ctrl : fd, F_GETFL);
	if (fd < 0 || fl < 0 || fcntl(ctrl, F_SETFL, fl) < 0 || dup2(ctrl, fd) < 0)
		return -1;
	return 0;
}

/* Relays until either side closes (0) or the relay stepped out (1). */
static int relay_pipe(struct relay *r, int host, int ctrl)
{
	static uint8_t hb[70000];
	uint8_t cb[65536];
	size_t hn = 0;
	for (;;) {
		struct pollfd p[2] = { { host, POLLIN, 0 }, { ctrl, POLLIN, 0 } };
		int asked = atomic_load(&r->step_out) == 1;
		int k = poll(p, 2, asked ? 20 : 50);
		if (k < 0 && errno != EINTR)
			return 0;
		if (k == 0 && asked && hn == 0) {
			int ok = relay_step_out(r, ctrl) == 0;
			atomic_store(&r->step_out, ok ? 2 : -1);
			if (ok)
				return 1;
		}
		if (p[1].revents) {
			ssize_t n = read(ctrl, cb, sizeof cb);
			if (n <= 0 || write_all(host, cb, (size_t)n) < 0)
				return 0;
		}
		if (p[0].revents) {
			ssize_t n = read(host, hb + hn, sizeof hb - hn);
			if (n <= 0)
				return 0;
			hn += (size_t)n;
			size_t off = 0;
			long len;
			while ((len = h4_len(hb + off, hn - off)) > 0) {
				uint8_t *q = hb + off;
				uint16_t op = (uint16_t)(q[1] | q[2] << 8);
				if (q[0] == 0x01 && q[3] >= 1 && (op == 0x0c56 || op == 0x0c7a))
					q[4] = 0x00;
				off += (size_t)len;
			}
			if (len < 0)
				off = hn; /* not H4 as we know it: pass it on as is */
			if (write_all(ctrl, hb, off) < 0)
				return 0;
			memmove(hb, hb + off, hn - off);
			hn -= off;
		}
	}
}

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	for (;;) {
		int h = accept(r->lfd, NULL, NULL);
		if (h < 0)
			return NULL;
		int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		memcpy(a.sun_path, r->up, sizeof a.sun_path);
		int out = 0;
		if (c >= 0 && connect(c, (struct sockaddr *)&a, sizeof a) == 0)
			out = relay_pipe(r, h, c);
		if (c >= 0)
			close(c); /* stepped out: the stack holds its own copy now */
		close(h);        /* and this wakes its poll() on the old socket */
		if (!out && atomic_load(&r->step_out) == 1)
			atomic_store(&r->step_out, -1);
	}
}

/* Starts the relay to adapter "unix:PATH"; fills name with "unix:" and the relay's path. */
static int relay_start(struct relay *r, const char *adapter, char *name, size_t cap)
{
	if (strncmp(adapter, "unix:", 5) != 0 || strlen(adapter + 5) >= sizeof r->up)
		return tool_msg("bench first: a host without SSP needs a unix: adapter"), -1;
	snprintf(r->up, sizeof r->up, "%s", adapter + 5);
	snprintf(r->path, sizeof r->path, "/tmp/btsock-bench-relay-%d", (int)getpid());
	unlink(r->path);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	memcpy(a.sun_path, r->path, sizeof a.sun_path);
	r->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	pthread_t t;
	if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(r->lfd, 4) < 0 ||
	    pthread_create(&t, NULL, relay_main, r) != 0)
		return tool_msg("bench first: relay: %s", strerror(errno)), -1;
	pthread_detach(t);
	snprintf(name, cap, "unix:%s", r->path);
	return 0;
}

/* One fresh link for 'first': a fresh controller (adapter) of the server's, listening on a
 * channel; reports where; serves one connection until the client closes it; closes the
 * adapter (btvirt drops the controller and its link); reports. q->bytes: 1 = no SSP; 2 = one
 * adapter with a keystore, opened at the first such request and kept (bonded peers). */
static void serve_first(struct tool_ctx *ctx, const struct srv_request *q, int wfd, struct relay *relay)
{
	struct srv_report rep = { .ok = 0 };
	char name[sizeof relay->path + 8];
	const char *adapter = ctx->adapter ? ctx->adapter : getenv("BTSOCK_ADAPTER");
	int rc = adapter ? 0 : -1;
	if (rc == 0 && q->bytes == 1) {
		if (relay->lfd < 0)
			rc = relay_start(relay, adapter, name, sizeof name);
		else
			snprintf(name, sizeof name, "unix:%s", relay->path);
		adapter = name;
	}
	int l = -1;
	if (q->bytes == 2 && relay->keyed[0]) {
		memcpy(rep.addr, relay->keyed, sizeof rep.addr);
		rep.ok = rc == 0;
	} else if (q->bytes == 2) {
		char keys[64];
		snprintf(keys, sizeof keys, "/tmp/btsock-bench-keys-%d", (int)getpid());
		unlink(keys);
		rep.ok = rc == 0 && btsock_set_keystore(keys) == 0 && btsock_adapter_open(adapter, rep.addr) == 0;
		btsock_set_keystore(NULL);
		if (rep.ok)
			memcpy(relay->keyed, rep.addr, sizeof rep.addr);
	} else {
		rep.ok = rc == 0 && btsock_adapter_open(adapter, rep.addr) == 0;
	}
	if (rep.ok && q->bytes == 1) { /* the stack is set up: the relay steps out */
		atomic_store(&relay->step_out, 1);
		for (int i = 0; i < 2000 && atomic_load(&relay->step_out) == 1; i++)
			usleep(1000);
		rep.ok = atomic_load(&relay->step_out) == 2;
		if (!rep.ok)
			tool_msg("bench first: the relay could not step out");
	}
	/* A new listening socket also wakes the adapter's loop, so it polls the new file now. */
	rep.ok = rep.ok && (l = btsock_socket(BTSOCK_RFCOMM)) >= 0 && btsock_bind(l, rep.addr, 0) == 0 &&
		 btsock_listen(l, 1) == 0 && btsock_getsockname(l, NULL, &rep.channel) == 0;
	if (!rep.ok)
		tool_fail("bench first: server");
	if (write(wfd, &rep, sizeof rep) != (ssize_t)sizeof rep || !rep.ok)
		_exit(1);
	btsock_settimeout(l, 10000);
	double cpu0 = cpu_s();
	int c = btsock_accept(l, NULL, NULL);
	if (c >= 0) {
		char b[64];
		struct pollfd p = { c, POLLIN, 0 };
		while (poll(&p, 1, 10000) > 0 && recv(c, b, sizeof b, 0) > 0)
			; /* until the client closes */
		btsock_close(c);
	}
	btsock_close(l);
	if (q->bytes != 2)
		btsock_adapter_close(rep.addr);
	double cpu = c < 0 ? -1 : cpu_s() - cpu0;
	if (write(wfd, &cpu, sizeof cpu) != (ssize_t)sizeof cpu)
		_exit(1);
}

static void server_main(struct tool_ctx *ctx, int rfd, int wfd)
{
	struct srv_report rep = { .ok = 0 };
	if (tool_open_adapter(ctx, rep.addr) != TOOL_EXIT_OK)
		_exit(1);
	struct relay relay = { .lfd = -1 };
	struct srv_request q;
	while (read(rfd, &q, sizeof q) == (ssize_t)sizeof q) {
		if (q.mode == M_FIRST) {
			serve_first(ctx, &q, wfd, &relay);
			continue;
		}
		int l = btsock_socket(BTSOCK_RFCOMM);
		rep.ok = l >= 0 && btsock_bind(l, "", 0) == 0 && btsock_listen(l, 8) == 0 &&
			 btsock_getsockname(l, NULL, &rep.channel) == 0;
		if (!rep.ok)
			tool_fail("bench server");
		if (write(wfd, &rep, sizeof rep) != (ssize_t)sizeof rep || !rep.ok)
			_exit(1);
		if (q.mode == M_CONNECT)
			btsock_settimeout(l, 3000); /* the client's last connect ends the series */
		double cpu0 = cpu_s();
		int rc = serve_mode(l, &q);
		double cpu = rc < 0 ? -1 : cpu_s() - cpu0;
		btsock_close(l);
		if (write(wfd, &cpu, sizeof cpu) != (ssize_t)sizeof cpu)
			_exit(1);
	}
	if (relay.lfd >= 0)
		unlink(relay.path);
	if (relay.keyed[0]) {
		char keys[64];
		snprintf(keys, sizeof keys, "/tmp/btsock-bench-keys-%d", (int)getpid());
		unlink(keys);
	}
	btsock_shutdown();
	_exit(0);
}

struct server {
	pid_t pid;
	int wfd, rfd;
	struct srv_report rep;
};

static int server_fork(struct tool_ctx *ctx, struct server *s)
{
	int down[2], up[2];
	if (pipe(down) < 0 || pipe(up) < 0)
		return tool_msg("bench: pipe: %s", strerror(errno)), -1;
	fflush(NULL);
	s->pid = fork();
	if (s->pid < 0)
		return tool_msg("bench: fork: %s", strerror(errno)), -1;
	if (s->pid == 0) {
		close(down[1]);
		close(up[0]);
		server_main(ctx, down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);
	s->wfd = down[1];
	s->rfd = up[0];
	return 0;
}

static void server_end(struct server *s)
{
	close(s->wfd);
	close(s->rfd);
	waitpid(s->pid, NULL, 0);
}

/* Asks the server to serve one mode; fills s->rep with its address and channel. */
static int server_start(struct server *s, enum mode m, uint64_t bytes)
{
	struct srv_request q = { m, bytes };
	if (write(s->wfd, &q, sizeof q) != (ssize_t)sizeof q ||
	    read(s->rfd, &s->rep, sizeof s->rep) != (ssize_t)sizeof s->rep || !s->rep.ok)
		return tool_msg("bench: the server process failed (see its message above)"), -1;
	return 0;
}

/* The server's CPU seconds for the mode just run (-1 if it failed). */
static double server_finish(struct server *s)
{
	double cpu = -1;
	struct pollfd p = { s->rfd, POLLIN, 0 };
	if (poll(&p, 1, 60000) <= 0 || read(s->rfd, &cpu, sizeof cpu) != (ssize_t)sizeof cpu)
		cpu = -1;
	return cpu;
}

static int connect_to(const struct server *s)
{
	int fd = btsock_socket(BTSOCK_RFCOMM);
	if (fd < 0 || btsock_connect(fd, s->rep.addr, s->rep.channel) < 0) {
		tool_fail("bench connect");
		if (fd >= 0)
			btsock_close(fd);
		return -1;
	}
	return fd;
}

/* ------------------------------------------------------------------ the modes */

static int bench_throughput(struct server *srv, bool duplex, unsigned mib)
{
	uint64_t bytes = (uint64_t)mib << 20;
	struct server s = *srv;
	if (server_start(&s, duplex ? M_DUPLEX : M_ONEWAY, bytes) < 0)
		return -1;
	double cpu0 = cpu_s();
	int fd = connect_to(&s);
	if (fd < 0)
		return server_finish(&s), -1;
	double t0 = now_s();
	int rc = pump(fd, bytes, duplex ? bytes : 0);
	btsock_close(fd); /* returns once every byte is through and the DLC is down */
	double t = now_s() - t0;
	double cpu = cpu_s() - cpu0, scpu = server_finish(&s);
	if (rc < 0 || scpu < 0)
		return tool_msg("bench: %s failed", duplex ? "duplex" : "oneway"), -1;
	double moved = (double)bytes * (duplex ? 2 : 1);
	printf("%s: %.2f MB/s payload (%u MiB%s in %.2f s), cpu %.3f s/MiB (client %.2f s, server %.2f s)\n",
	       duplex ? "duplex" : "oneway", moved / t / 1e6, mib, duplex ? " each way" : "", t,
	       (cpu + scpu) / (moved / 1048576.0), cpu, scpu);
	return 0;
}

/* btsnoop records (Vol "btsnoop" format: 16-byte header, then records with a 24-byte header)
 * whose timestamp lies in [from, to) (microseconds since year 0, as the file stores them). */
static long snoop_count(const char *path, uint64_t from, uint64_t to)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	unsigned char h[24];
	long n = 0;
	if (fread(h, 1, 16, f) != 16) {
		fclose(f);
		return -1;
	}
	while (fread(h, 1, 24, f) == 24) {
		uint32_t incl = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
		uint64_t ts = 0;
		for (int i = 16; i < 24; i++)
			ts = ts << 8 | h[i];
		if (ts >= from && ts < to)
			n++;
		if (fseek(f, (long)incl, SEEK_CUR) != 0)
			break;
	}
	fclose(f);
	return n;
}

static uint64_t snoop_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u + 0x00dcddb30f2f8000ULL;
}

/* Runs with its own adapter, opened here with a btsnoop capture to count packets. */
static int bench_connect(struct tool_ctx *ctx, struct server *srv, unsigned count)
{
	struct server s = *srv;
	char snoop[64];
	snprintf(snoop, sizeof snoop, "/tmp/btsock-bench-%d.btsnoop", (int)getpid());
	if (server_start(&s, M_CONNECT, 0) < 0)
		return -1;
	struct tool_ctx c2 = *ctx;
	c2.snoop = snoop;
	int rc = tool_open_adapter(&c2, NULL);
	double *t = calloc(count, sizeof *t);
	uint64_t from = 0, to = 0;
	for (unsigned i = 0; rc == TOOL_EXIT_OK && t && i < count; i++) {
		if (i == 1)
			from = snoop_now();
		double t0 = now_s();
		int fd = connect_to(&s);
		if (fd < 0) {
			rc = -1;
			break;
		}
		t[i] = now_s() - t0;
		btsock_close(fd);
	}
	to = snoop_now();
	btsock_shutdown(); /* closes the capture */
	btsock_set_snoop(NULL);
	server_finish(&s); /* its accept times out */
	if (rc != TOOL_EXIT_OK || !t || count < 2) {
		free(t);
		unlink(snoop);
		return -1;
	}
	long pkts = snoop_count(snoop, from, to);
	unlink(snoop);
	double first = t[0];
	printf("connect: median %.3f ms, p99 %.3f ms over %u connects to a known channel (the first, with "
	       "paging and link set-up: %.3f ms); %.1f HCI packets per connect+close\n",
	       pct(t + 1, count - 1, 0.5) * 1e3, pct(t + 1, count - 1, 0.99) * 1e3, count - 1, first * 1e3,
	       pkts >= 0 ? (double)pkts / (count - 1) : -1.0);
	free(t);
	return 0;
}

/* What one first connect exchanged, from the client's btsnoop capture (records in [from, to)). */
struct first_stats {
	double cmds, acl_out, acl_in, turns;
};

/* Reads every record of a btsnoop capture (H4 datalink 1002: each packet starts with its H4
 * indicator) and counts, per window, HCI commands sent, ACL packets each way and turns (see
 * the help text). Returns the number of records, -1 if the file cannot be read. */
static long snoop_first_stats(const char *path, const uint64_t *from, const uint64_t *to, size_t n,
			      struct first_stats *st)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	unsigned char h[24], pkt[4];
	long recs = 0;
	size_t w = 0;
	bool waiting = false;
	if (fread(h, 1, 16, f) != 16) {
		fclose(f);
		return -1;
	}
	while (fread(h, 1, 24, f) == 24) {
		uint32_t incl = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
		uint32_t flags = h[11];
		uint64_t ts = 0;
		for (int i = 16; i < 24; i++)
			ts = ts << 8 | h[i];
		size_t got = fread(pkt, 1, incl < sizeof pkt ? incl : sizeof pkt, f);
		if (incl > sizeof pkt && fseek(f, (long)(incl - sizeof pkt), SEEK_CUR) != 0)
			break;
		recs++;
		while (w < n && ts >= to[w]) {
			w++;
			waiting = false;
		}
		if (w == n)
			break;
		if (ts < from[w] || got < 1)
			continue;
		bool rx = flags & 1;
		uint8_t type = pkt[0];
		if (!rx) {
			if (type == 0x01)
				st[w].cmds++;
			else if (type == 0x02)
				st[w].acl_out++;
			waiting = true;
			continue;
		}
		if (type == 0x02)
			st[w].acl_in++;
		/* Command Complete 0x0e, Command Status 0x0f, Number Of Completed Packets 0x13 come
		 * from our own controller (Vol 4 Part E 7.7.14, 7.7.15, 7.7.19). */
		bool local = type == 0x04 && got >= 2 && (pkt[1] == 0x0e || pkt[1] == 0x0f || pkt[1] == 0x13);
		if (waiting && !local) {
			st[w].turns++;
			waiting = false;
		}
	}
	fclose(f);
	return recs;
}

static double stat_median(const struct first_stats *st, size_t n, size_t field)
{
	double *v = calloc(n, sizeof *v);
	if (!v)
		return -1;
	for (size_t i = 0; i < n; i++)
		v[i] = ((const double *)&st[i])[field];
	double m = pct(v, n, 0.5);
	free(v);
	return m;
}

enum first_kind { FIRST_SSP, FIRST_NOSSP, FIRST_KEYED };

/* 'first': count times a fresh pair of controllers, the server's opened for each round by the
 * server process, ours here; connect() from ours to the server's channel is timed.
 * FIRST_KEYED: one pair with keystores instead; a warm-up round pairs and bonds, then each
 * round waits for the link to go (RFCOMM session linger 2 s, then the idle link's 2 s) so
 * that the next connect pages afresh and encrypts with the stored key. */
static int bench_first(const struct tool_ctx *ctx, struct server *srv, unsigned count, enum first_kind kind)
{
	static const char *const label[] = { "ssp", "nossp", "keyed" };
	const char *adapter = ctx->adapter ? ctx->adapter : getenv("BTSOCK_ADAPTER");
	char snoop[256], keys[64], local[BTSOCK_ADDRSTRLEN];
	const char *keep = getenv("BTSOCK_BENCH_CAPTURE"); /* keep the capture: PATH.nossp, ... */
	if (keep)
		snprintf(snoop, sizeof snoop, "%s.%s", keep, label[kind]);
	else
		snprintf(snoop, sizeof snoop, "/tmp/btsock-bench-first-%d.btsnoop", (int)getpid());
	snprintf(keys, sizeof keys, "/tmp/btsock-bench-keys-c%d", (int)getpid());
	unsigned rounds = kind == FIRST_KEYED ? count + 1 : count, skip = rounds - count;
	double *t = calloc(rounds, sizeof *t);
	uint64_t *from = calloc(rounds, sizeof *from), *to = calloc(rounds, sizeof *to);
	struct first_stats *st = calloc(rounds, sizeof *st);
	int rc = t && from && to && st && btsock_set_snoop(snoop) == 0 ? 0 : -1;
	if (rc == 0 && kind == FIRST_KEYED) {
		unlink(keys);
		if (btsock_set_keystore(keys) < 0 || btsock_adapter_open(adapter, local) < 0) {
			tool_fail("bench first: adapter");
			rc = -1;
		}
		btsock_set_keystore(NULL);
	}
	for (unsigned i = 0; rc == 0 && i < rounds; i++) {
		struct server s = *srv;
		if (server_start(&s, M_FIRST, kind) < 0) {
			rc = -1;
			break;
		}
		if (kind != FIRST_KEYED && btsock_adapter_open(adapter, local) < 0) {
			tool_fail("bench first: adapter");
			server_finish(&s);
			rc = -1;
			break;
		}
		/* The adapter sends its name and EIR just after opening: let that pass, as an
		 * application's adapter has long settled when it connects. */
		usleep(20000);
		int fd = btsock_socket(BTSOCK_RFCOMM);
		if (fd < 0 || btsock_bind(fd, local, 0) < 0) {
			tool_fail("bench first");
			rc = -1;
		}
		from[i] = snoop_now();
		double t0 = now_s();
		if (rc == 0 && btsock_connect(fd, s.rep.addr, s.rep.channel) < 0) {
			tool_fail("bench first: connect");
			rc = -1;
		}
		t[i] = now_s() - t0;
		to[i] = snoop_now();
		if (fd >= 0)
			btsock_close(fd);
		if (server_finish(&s) < 0)
			rc = -1;
		if (kind != FIRST_KEYED)
			btsock_adapter_close(local);
		else if (i + 1 < rounds)
			usleep(5500000); /* the link goes: linger 2 s + idle 2 s, then Disconnect */
	}
	btsock_shutdown(); /* closes the capture */
	btsock_set_snoop(NULL);
	if (rc == 0 && snoop_first_stats(snoop, from, to, rounds, st) < 0)
		rc = -1;
	if (!keep)
		unlink(snoop);
	unlink(keys);
	if (rc == 0)
		printf("first-%s: median %.3f ms, p99 %.3f ms over %u first connects, each on a %s; "
		       "per first connect %.0f HCI commands, %.0f ACL packets out, %.0f in, %.0f turns\n",
		       label[kind], pct(t + skip, count, 0.5) * 1e3, pct(t + skip, count, 0.99) * 1e3, count,
		       kind == FIRST_KEYED ? "new link, the key stored" : "fresh link",
		       stat_median(st + skip, count, 0), stat_median(st + skip, count, 1),
		       stat_median(st + skip, count, 2), stat_median(st + skip, count, 3));
	else
		tool_msg("bench: first (%s) failed", label[kind]);
	free(t);
	free(from);
	free(to);
	free(st);
	return rc;
}

/* Round trips of `size` bytes: sent whole, then read back whole (the server echoes what it
 * reads). Up to 64 KiB: the socketpairs hold that much, so a send never waits for our reads. */
static int bench_echo(struct server *srv, unsigned count, size_t size)
{
	struct server s = *srv;
	if (server_start(&s, M_ECHO, 0) < 0)
		return -1;
	int fd = connect_to(&s);
	double *t = calloc(count, sizeof *t);
	unsigned char *msg = malloc(size), *back = malloc(size);
	int rc = fd < 0 || !t || !msg || !back ? -1 : 0;
	for (size_t i = 0; msg && i < size; i++)
		msg[i] = (unsigned char)"0123456789abcdef"[i % 16];
	for (unsigned i = 0; rc == 0 && i < count; i++) {
		double t0 = now_s();
		size_t got = 0;
		if (write_all(fd, msg, size) < 0)
			rc = -1;
		while (rc == 0 && got < size) {
			ssize_t r = recv(fd, back + got, size - got, 0);
			if (r <= 0)
				rc = -1;
			else
				got += (size_t)r;
		}
		t[i] = now_s() - t0;
		if (rc == 0 && memcmp(msg, back, size) != 0) {
			tool_msg("bench: echo came back different");
			rc = -1;
		}
	}
	if (fd >= 0)
		btsock_close(fd);
	server_finish(&s);
	if (rc == 0)
		printf("echo: %zu-byte round trip median %.1f us, p99 %.1f us over %u round trips\n", size,
		       pct(t, count, 0.5) * 1e6, pct(t, count, 0.99) * 1e6, count);
	else
		tool_msg("bench: echo failed");
	free(t);
	free(msg);
	free(back);
	return rc;
}

/* 200 channels over 7 links, all in this process: 7 pairs of controllers (btvirt links only
 * carry data between controllers holding the same number of links), 29 channels on 6 pairs and
 * 26 on the last. Heap growth (mallinfo2) per channel end. */
static int bench_memory(struct tool_ctx *ctx)
{
	enum { PAIRS = 7, CHANNELS = 200 };
	const char *name = ctx->adapter ? ctx->adapter : getenv("BTSOCK_ADAPTER");
	char srv[PAIRS][BTSOCK_ADDRSTRLEN], cli[PAIRS][BTSOCK_ADDRSTRLEN];
	static int ls[CHANNELS], cs[CHANNELS], ss[CHANNELS];
	if (!name)
		return tool_msg("bench: no adapter (set BTSOCK_ADAPTER or use -a)"), -1;
	for (int p = 0; p < PAIRS; p++)
		if (btsock_adapter_open(name, srv[p]) < 0 || btsock_adapter_open(name, cli[p]) < 0)
			return tool_fail("bench memory: adapter"), -1;
	struct mallinfo2 m0 = mallinfo2();
	int n = 0;
	for (; n < CHANNELS; n++) {
		int p = n / 29;
		unsigned ch = 0;
		char ca[BTSOCK_ADDRSTRLEN];
		ls[n] = btsock_socket(BTSOCK_RFCOMM);
		cs[n] = btsock_socket(BTSOCK_RFCOMM);
		if (ls[n] < 0 || cs[n] < 0 || btsock_bind(ls[n], srv[p], 0) < 0 || btsock_listen(ls[n], 1) < 0 ||
		    btsock_getsockname(ls[n], NULL, &ch) < 0 || btsock_bind(cs[n], cli[p], 0) < 0 ||
		    btsock_connect(cs[n], srv[p], ch) < 0 || (ss[n] = btsock_accept(ls[n], ca, NULL)) < 0)
			break;
	}
	if (n < CHANNELS)
		return tool_fail("bench memory"), -1;
	/* Every channel carries a few bytes each way: they are really open. */
	for (int i = 0; i < n; i++) {
		char b[8];
		if (send(cs[i], "ping", 4, 0) != 4 || recv(ss[i], b, sizeof b, 0) != 4 || send(ss[i], "pong", 4, 0) != 4 ||
		    recv(cs[i], b, sizeof b, 0) != 4)
			return tool_msg("bench memory: channel %d does not carry data", i), -1;
	}
	struct mallinfo2 m1 = mallinfo2();
	double grown = (double)m1.uordblks - (double)m0.uordblks;
	printf("memory: %d channels open over %d links; heap +%.0f KiB = %.1f KiB per channel end "
	       "(stack + runtime, both ends in this process; socketpair buffers not included)\n",
	       n, PAIRS, grown / 1024, grown / 1024 / (2.0 * n));
	btsock_shutdown();
	return 0;
}

/* ------------------------------------------------------------------ command */

static int run_bench(struct tool_ctx *ctx, int argc, char **argv)
{
	struct tool_args a = { .argc = argc, .argv = argv, .i = 1, .cmd = "bench", .ctx = ctx };
	unsigned long mib = 20, count = 0, first = 50, keyed = 0, size = 16;
	const char *what = "all";
	int r;
	while ((r = tool_next_arg(&a, bench_opts, 5)) != TOOL_ARG_END) {
		if (r == TOOL_ARG_HELP) {
			tool_print_help(stdout, &tool_cmd_bench);
			return TOOL_EXIT_OK;
		}
		if (r == TOOL_ARG_ERROR)
			return TOOL_EXIT_USAGE;
		if (r == TOOL_ARG_POSITIONAL)
			what = a.arg;
		else if (r == OPT_MIB && !tool_parse_uint(a.arg, "MiB", 1, 4096, &mib))
			return TOOL_EXIT_USAGE;
		else if (r == OPT_COUNT && !tool_parse_uint(a.arg, "count", 2, 1000000, &count))
			return TOOL_EXIT_USAGE;
		else if (r == OPT_FIRST && !tool_parse_uint(a.arg, "first", 1, 100000, &first))
			return TOOL_EXIT_USAGE;
		else if (r == OPT_KEYED && !tool_parse_uint(a.arg, "keyed", 1, 1000, &keyed))
			return TOOL_EXIT_USAGE;
		else if (r == OPT_SIZE && !tool_parse_uint(a.arg, "size", 1, 65536, &size))
			return TOOL_EXIT_USAGE;
	}
	static const char *const modes[] = { "oneway", "duplex", "connect", "echo", "memory", "all", "first" };
	int k = 0;
	while (k < 7 && strcmp(what, modes[k]) != 0)
		k++;
	if (k == 7)
		return tool_usage_error("bench", "unknown benchmark '%s'", what);
	if (!ctx->adapter && !getenv("BTSOCK_ADAPTER")) {
		tool_msg("no adapter: set BTSOCK_ADAPTER or use -a ADAPTER (e.g. unix:/tmp/bt-server-bredr)");
		return TOOL_EXIT_NO_ADAPTER;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	bool all = k == 5;
	struct server srv;
	if (server_fork(ctx, &srv) < 0) /* before this process opens any adapter */
		return TOOL_EXIT_FAILURE;
	int rc = 0;
	/* connect first: it opens this process's adapter with a capture, then shuts it down. */
	if (rc == 0 && (all || k == 2))
		rc = bench_connect(ctx, &srv, count ? (unsigned)count : 200);
	/* then the first connects, each on fresh controllers of both processes (`connect` reports
	 * them too: a first connect is a median over fresh links, not one sample) */
	bool firsts = all || k == 6 || k == 2;
	if (rc == 0 && firsts)
		rc = bench_first(ctx, &srv, (unsigned)first, FIRST_NOSSP);
	if (rc == 0 && firsts)
		rc = bench_first(ctx, &srv, (unsigned)first, FIRST_SSP);
	if (rc == 0 && (all || k == 6) && keyed)
		rc = bench_first(ctx, &srv, (unsigned)keyed, FIRST_KEYED);
	if (rc == 0 && (all || k <= 1 || k == 3))
		rc = tool_open_adapter(ctx, NULL) == TOOL_EXIT_OK ? 0 : -1;
	if (rc == 0 && (all || k == 0))
		rc = bench_throughput(&srv, false, (unsigned)mib);
	if (rc == 0 && (all || k == 1))
		rc = bench_throughput(&srv, true, (unsigned)mib);
	if (rc == 0 && (all || k == 3))
		rc = bench_echo(&srv, count ? (unsigned)count : 2000, (size_t)size);
	server_end(&srv);
	btsock_shutdown();
	if (rc == 0 && (all || k == 4))
		rc = bench_memory(ctx);
	return rc == 0 ? TOOL_EXIT_OK : TOOL_EXIT_FAILURE;
}

const struct tool_cmd tool_cmd_bench = {
	.name = "bench",
	.summary = "RFCOMM benchmarks between two stacks: throughput, connect time, echo, memory",
	.help = bench_help,
	.run = run_bench,
};
