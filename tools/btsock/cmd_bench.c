/* cmd_bench.c - `btsock bench`: RFCOMM between two stacks in two processes on the same
 * controller source (btvirt gives each process its own emulated controller): one-way and full
 * duplex throughput with the CPU time both processes spend per MiB, connection set-up time
 * (with the HCI packets one connect exchanges, counted from a btsnoop capture), the round trip
 * of a 16-byte echo, and the heap each open channel costs with 200 channels across links.
 *
 * The server side is forked before any adapter is opened (an adapter starts a thread); it
 * reports its address and channel, then its CPU time, through a pipe. Only the public API. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

static const char bench_help[] =
	"Usage: btsock bench [options] [oneway|duplex|connect|echo|memory|all]\n"
	"\n"
	"RFCOMM between two btsock stacks (this process and a forked one, each opening its own\n"
	"controller on the adapter, e.g. two emulated controllers of btvirt -s):\n"
	"  oneway   N MiB one way: payload MB/s, CPU seconds both processes spend per MiB\n"
	"  duplex   N MiB each way at once: summed MB/s, CPU per MiB\n"
	"  connect  connect() call to connected, median and 99th percentile over --count\n"
	"           connects to a known channel (the first, which pages and opens the link,\n"
	"           apart), and the HCI packets one connect+close exchanges\n"
	"  echo     round trip of 16 bytes, application to application, median and p99\n"
	"  memory   200 channels open at once across 7 links (14 controllers in this process):\n"
	"           heap per channel end (the socketpair buffers are kernel memory, not counted)\n"
	"  all      every one of these (the default)\n"
	"Pin everything to one CPU for stable figures: taskset -c 0 (bench/run.sh does, with the\n"
	"btvirt ceiling next to them).\n"
	"\n"
	"Options:\n"
	"  --mib N      MiB for oneway/duplex (default 20)\n"
	"  --count N    connects / echoes (default 200 / 2000)\n";

enum { OPT_MIB, OPT_COUNT };
static const struct tool_opt bench_opts[] = {
	[OPT_MIB] = { 0, "mib", true },
	[OPT_COUNT] = { 0, "count", true },
};

enum mode { M_ONEWAY, M_DUPLEX, M_CONNECT, M_ECHO };

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

static void server_main(struct tool_ctx *ctx, int rfd, int wfd)
{
	struct srv_report rep = { .ok = 0 };
	if (tool_open_adapter(ctx, rep.addr) != TOOL_EXIT_OK)
		_exit(1);
	struct srv_request q;
	while (read(rfd, &q, sizeof q) == (ssize_t)sizeof q) {
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

static int bench_echo(struct server *srv, unsigned count)
{
	struct server s = *srv;
	if (server_start(&s, M_ECHO, 0) < 0)
		return -1;
	int fd = connect_to(&s);
	double *t = calloc(count, sizeof *t);
	int rc = fd < 0 || !t ? -1 : 0;
	unsigned char msg[16] = "0123456789abcdef", back[16];
	for (unsigned i = 0; rc == 0 && i < count; i++) {
		double t0 = now_s();
		size_t got = 0;
		if (send(fd, msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg)
			rc = -1;
		while (rc == 0 && got < sizeof back) {
			ssize_t r = recv(fd, back + got, sizeof back - got, 0);
			if (r <= 0)
				rc = -1;
			else
				got += (size_t)r;
		}
		t[i] = now_s() - t0;
	}
	if (fd >= 0)
		btsock_close(fd);
	server_finish(&s);
	if (rc == 0)
		printf("echo: 16-byte round trip median %.1f us, p99 %.1f us over %u round trips\n",
		       pct(t, count, 0.5) * 1e6, pct(t, count, 0.99) * 1e6, count);
	else
		tool_msg("bench: echo failed");
	free(t);
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
	unsigned long mib = 20, count = 0;
	const char *what = "all";
	int r;
	while ((r = tool_next_arg(&a, bench_opts, 2)) != TOOL_ARG_END) {
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
	}
	static const char *const modes[] = { "oneway", "duplex", "connect", "echo", "memory", "all" };
	int k = 0;
	while (k < 6 && strcmp(what, modes[k]) != 0)
		k++;
	if (k == 6)
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
	if (rc == 0 && (all || k <= 1 || k == 3))
		rc = tool_open_adapter(ctx, NULL) == TOOL_EXIT_OK ? 0 : -1;
	if (rc == 0 && (all || k == 0))
		rc = bench_throughput(&srv, false, (unsigned)mib);
	if (rc == 0 && (all || k == 1))
		rc = bench_throughput(&srv, true, (unsigned)mib);
	if (rc == 0 && (all || k == 3))
		rc = bench_echo(&srv, count ? (unsigned)count : 2000);
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
