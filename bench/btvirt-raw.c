/* btvirt-raw: what btvirt costs with no host stack at all. Two raw H4 controllers on one
 * btvirt (A pages B), then:
 *   echo, one process    A sends a 16-byte ACL packet, B sends it back, both driven by this
 *                        process: the least any echo round trip through btvirt can cost
 *   echo, two processes  B echoed by a forked process, as two btsock stacks are (bench echo)
 *   stream, two procs    A sends full ACL packets as fast as Number_Of_Completed_Packets
 *                        allows while a forked process reads B: the ceiling tool's pump
 *                        (../shared/tools/btvirt-ceiling.c) with the receiver in its own
 *                        process, as in bench oneway
 * Build: cc -O2 -o btvirt-raw bench/btvirt-raw.c
 * Usage: btvirt-raw [count] [socket-path]  (default 2000, /tmp/bt-server-bredr)
 * HCI layouts: Core spec Vol 4 Part E 5.4 (packets), 7.1.5 Create_Connection, 7.1.8
 * Accept_Connection_Request, 7.3.18 Write_Scan_Enable, 7.4.6 Read_BD_ADDR. */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int ctrl_open(const char *path)
{
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0)
		die("connect");
	return s;
}

static void read_full(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r <= 0)
			die("read");
		p += r;
		n -= (size_t)r;
	}
}

/* One H4 packet (event or ACL) into b; returns its type. */
static int h4_read(int fd, uint8_t *b, size_t *len)
{
	uint8_t t;
	read_full(fd, &t, 1);
	if (t == 4) {
		read_full(fd, b, 2);
		read_full(fd, b + 2, b[1]);
		*len = 2 + (size_t)b[1];
	} else if (t == 2) {
		read_full(fd, b, 4);
		size_t l = (size_t)(b[2] | b[3] << 8);
		if (l > 1024)
			die("acl length");
		read_full(fd, b + 4, l);
		*len = 4 + l;
	} else {
		fprintf(stderr, "unexpected H4 type %d\n", t);
		exit(1);
	}
	return t;
}

static void command(int fd, uint16_t op, const uint8_t *p, uint8_t n)
{
	uint8_t b[4 + 255] = { 1, (uint8_t)op, (uint8_t)(op >> 8), n };
	memcpy(b + 4, p, n);
	if (write(fd, b, 4u + n) != 4 + n)
		die("write");
}

static void wait_event(int fd, uint8_t code, uint8_t *b)
{
	size_t len;
	while (h4_read(fd, b, &len) != 4 || b[0] != code)
		;
}

/* Sends the 16-byte ACL packet on handle h, then reads until an ACL packet comes back
 * (skipping Number_Of_Completed_Packets). */
static void acl_send(int fd, uint16_t h)
{
	uint8_t p[1 + 4 + 16] = { 2, (uint8_t)h, (uint8_t)((h >> 8) | 0x20), 16, 0 };
	if (write(fd, p, sizeof p) != (ssize_t)sizeof p)
		die("write");
}

static void acl_wait(int fd)
{
	uint8_t b[1100];
	size_t len;
	while (h4_read(fd, b, &len) != 2)
		;
}

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *mode, double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	printf("raw echo (%s): median %.1f us, p99 %.1f us over %d round trips\n", mode, v[n / 2],
	       v[(int)(n * 0.99)], n);
}

/* Full-size ACL packets A -> B for secs seconds, B read by a forked process that reports the
 * bytes it got through a pipe. */
static void stream(int a, uint16_t ha, int b, double secs)
{
	uint8_t cmd[4] = { 1, 0x05, 0x10, 0 }; /* Read_Buffer_Size: ACL length and count */
	uint8_t ev[300];
	if (write(a, cmd, 4) != 4)
		die("write");
	wait_event(a, 0x0e, ev);
	size_t mtu = (size_t)(ev[6] | ev[7] << 8);
	int credits = ev[9] | ev[10] << 8;
	if (mtu > 1021 || credits < 1)
		die("buffer size");
	int pfd[2];
	if (pipe(pfd) < 0)
		die("pipe");
	pid_t pid = fork();
	if (pid == 0) {
		close(a);
		uint8_t buf[65536];
		long long got = 0;
		struct pollfd p = { b, POLLIN, 0 };
		while (poll(&p, 1, 500) > 0) { /* ends 0.5 s after the sender stops */
			ssize_t r = read(b, buf, sizeof buf);
			if (r <= 0)
				break;
			got += r;
		}
		if (write(pfd[1], &got, sizeof got) != (ssize_t)sizeof got)
			_exit(1);
		_exit(0);
	}
	uint8_t pkt[5 + 1021] = { 2, (uint8_t)ha, (uint8_t)((ha >> 8) | 0x20), (uint8_t)mtu, (uint8_t)(mtu >> 8) };
	memset(pkt + 5, 0x55, mtu);
	long long sent = 0;
	double t0 = now_us(), t1;
	while ((t1 = now_us()) - t0 < secs * 1e6) {
		while (credits > 0) {
			if (write(a, pkt, 5 + mtu) != (ssize_t)(5 + mtu))
				die("write");
			credits--;
			sent++;
		}
		size_t len;
		if (h4_read(a, ev, &len) == 4 && ev[0] == 0x13) /* Number_Of_Completed_Packets */
			credits += ev[5] | ev[6] << 8;
	}
	long long got = 0;
	if (read(pfd[0], &got, sizeof got) != (ssize_t)sizeof got)
		die("read");
	waitpid(pid, NULL, 0);
	/* Each ACL packet carries 4 header bytes and mtu payload bytes, with its H4 type byte. */
	double payload = (double)got / (double)(5 + mtu) * (double)mtu;
	printf("raw stream (two processes): %.0f kB/s, %.0f ACL pkt/s (%lld sent)\n", payload / (t1 - t0) * 1e3,
	       (double)got / (double)(5 + mtu) / (t1 - t0) * 1e6, sent);
}

int main(int argc, char **argv)
{
	int count = argc > 1 ? atoi(argv[1]) : 2000;
	const char *path = argc > 2 ? argv[2] : "/tmp/bt-server-bredr";
	if (count < 10)
		count = 10;
	int a = ctrl_open(path), b = ctrl_open(path);
	uint8_t buf[300], baddr[6];
	command(a, 0x0c03, NULL, 0); /* Reset */
	wait_event(a, 0x0e, buf);
	command(b, 0x0c03, NULL, 0);
	wait_event(b, 0x0e, buf);
	command(b, 0x1009, NULL, 0); /* Read_BD_ADDR */
	wait_event(b, 0x0e, buf);
	memcpy(baddr, buf + 6, 6);
	uint8_t scan = 3;
	command(b, 0x0c1a, &scan, 1); /* page and inquiry scan */
	wait_event(b, 0x0e, buf);
	uint8_t cc[13] = { 0 };
	memcpy(cc, baddr, 6);
	cc[6] = 0x18, cc[7] = 0xcc, cc[8] = 1, cc[12] = 1; /* DM1..DH5, R1, role switch allowed */
	command(a, 0x0405, cc, 13);
	wait_event(b, 0x04, buf); /* Connection_Request */
	uint8_t acc[7];
	memcpy(acc, buf + 2, 6);
	acc[6] = 1;
	command(b, 0x0409, acc, 7);
	wait_event(a, 0x03, buf); /* Connection_Complete */
	uint16_t ha = (uint16_t)((buf[3] | buf[4] << 8) & 0x0fff);
	wait_event(b, 0x03, buf);
	uint16_t hb = (uint16_t)((buf[3] | buf[4] << 8) & 0x0fff);

	double *v = calloc((size_t)count, sizeof *v);
	if (!v)
		die("calloc");
	for (int i = 0; i < count; i++) { /* one process drives both ends */
		double t0 = now_us();
		acl_send(a, ha);
		acl_wait(b);
		acl_send(b, hb);
		acl_wait(a);
		v[i] = now_us() - t0;
	}
	report("one process", v, count);

	pid_t pid = fork();
	if (pid == 0) { /* B echoes from its own process */
		close(a);
		for (int i = 0; i < count; i++) {
			acl_wait(b);
			acl_send(b, hb);
		}
		_exit(0);
	}
	for (int i = 0; i < count; i++) {
		double t0 = now_us();
		acl_send(a, ha);
		acl_wait(a);
		v[i] = now_us() - t0;
	}
	waitpid(pid, NULL, 0);
	report("two processes", v, count);
	free(v);
	stream(a, ha, b, 2.0);
	return 0;
}
