/* vhci_bridge: gives the Linux kernel a controller that lives behind a UNIX H4 socket (test-only,
 * kernel tier: scripts/kernel-vm/passkey-check.sh).
 *
 *   vhci_bridge SOCKET
 *
 * Opens /dev/vhci and asks for a BR/EDR primary controller: the first write is the vendor
 * packet 0xff with the opcode 0x00 (primary device, no quirks); the kernel answers with a
 * vendor packet 0xff, the opcode, the new device index (2 octets, little endian). It prints
 * "hciN" and then relays whole H4 packets both ways between the kernel (one packet per
 * read/write of /dev/vhci) and the H4 stream at SOCKET (a pairing proxy's host socket in front
 * of btvirt's socket server). It runs until either side closes or it gets SIGTERM/SIGINT;
 * closing /dev/vhci removes hciN.
 *
 * H4 framing: Core Vol 4 Part A 2 (packet indicators); headers Vol 4 Part E 5.4 (command:
 * opcode(2) len(1); ACL: handle(2) len(2); synchronous: handle(2) len(1); event: code(1)
 * len(1); ISO: handle(2) len(2, 14 bits)). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define PKT_MAX (5 + 65535)

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* The header length after the indicator and the payload length it gives; -1: unknown type. */
static int header_len(uint8_t type)
{
	switch (type) {
	case 0x01: return 3; /* command */
	case 0x02: return 4; /* ACL */
	case 0x03: return 3; /* synchronous */
	case 0x04: return 2; /* event */
	case 0x05: return 4; /* ISO */
	default: return -1;
	}
}

static size_t payload_len(const uint8_t *p)
{
	switch (p[0]) {
	case 0x01: case 0x03: return p[3];
	case 0x02: return (size_t)(p[3] | p[4] << 8);
	case 0x04: return p[2];
	case 0x05: return (size_t)((p[3] | p[4] << 8) & 0x3fff);
	default: return 0;
	}
}

static bool write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Reads the vendor answer to the create request: 0xff, opcode, index (le16). */
static int read_index(int vhci)
{
	struct pollfd pf = { vhci, POLLIN, 0 };
	uint8_t b[16];
	for (int tries = 0; tries < 50; tries++) {
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t n = read(vhci, b, sizeof b);
		if (n >= 4 && b[0] == 0xff)
			return b[2] | b[3] << 8;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -1;
	}
	return -1;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: vhci_bridge SOCKET\n");
		return 2;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(argv[1]) >= sizeof a.sun_path) {
		fprintf(stderr, "vhci_bridge: socket path too long\n");
		return 1;
	}
	strcpy(a.sun_path, argv[1]);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
		fprintf(stderr, "vhci_bridge: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	int vhci = open("/dev/vhci", O_RDWR | O_CLOEXEC);
	if (vhci < 0) {
		fprintf(stderr, "vhci_bridge: /dev/vhci: %s\n", strerror(errno));
		return 1;
	}
	const uint8_t create[2] = { 0xff, 0x00 }; /* vendor packet: create a primary controller */
	if (!write_all(vhci, create, sizeof create)) {
		fprintf(stderr, "vhci_bridge: create request: %s\n", strerror(errno));
		return 1;
	}
	int idx = read_index(vhci);
	if (idx < 0) {
		fprintf(stderr, "vhci_bridge: no device index from /dev/vhci\n");
		return 1;
	}
	printf("hci%d\n", idx);
	fflush(stdout);

	static uint8_t in[PKT_MAX], out[PKT_MAX];
	size_t have = 0; /* octets of the socket's current packet in `in` */
	unsigned long to_ctrl = 0, to_kernel = 0;
	int rc = 0;
	while (!stop) {
		struct pollfd pf[2] = { { vhci, POLLIN, 0 }, { s, POLLIN, 0 } };
		if (poll(pf, 2, 500) < 0) {
			if (errno == EINTR)
				continue;
			rc = 1;
			break;
		}
		if (pf[0].revents & (POLLIN | POLLERR | POLLHUP)) { /* kernel -> controller */
			ssize_t n = read(vhci, out, sizeof out);
			if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) {
				fprintf(stderr, "vhci_bridge: /dev/vhci closed\n");
				break;
			}
			if (n > 0) {
				if (!write_all(s, out, (size_t)n)) {
					fprintf(stderr, "vhci_bridge: socket: %s\n", strerror(errno));
					break;
				}
				to_ctrl++;
			}
		}
		if (pf[1].revents & (POLLIN | POLLERR | POLLHUP)) { /* controller -> kernel */
			size_t want = 1;
			if (have >= 1) {
				int hl = header_len(in[0]);
				if (hl < 0) {
					fprintf(stderr, "vhci_bridge: bad H4 indicator 0x%02x from the socket\n", in[0]);
					rc = 1;
					break;
				}
				want = 1 + (size_t)hl;
				if (have >= want)
					want += payload_len(in);
			}
			ssize_t n = read(s, in + have, want - have);
			if (n == 0) {
				fprintf(stderr, "vhci_bridge: the socket closed\n");
				break;
			}
			if (n < 0) {
				if (errno == EINTR || errno == EAGAIN)
					continue;
				fprintf(stderr, "vhci_bridge: socket: %s\n", strerror(errno));
				rc = 1;
				break;
			}
			have += (size_t)n;
			if (have < 2 || header_len(in[0]) < 0 || have < 1 + (size_t)header_len(in[0]))
				continue;
			if (have == 1 + (size_t)header_len(in[0]) + payload_len(in)) {
				if (!write_all(vhci, in, have)) {
					fprintf(stderr, "vhci_bridge: /dev/vhci: %s\n", strerror(errno));
					rc = 1;
					break;
				}
				to_kernel++;
				have = 0;
			}
		}
	}
	fprintf(stderr, "vhci_bridge: hci%d: %lu packets to the controller, %lu to the kernel\n", idx, to_ctrl,
		to_kernel);
	close(vhci);
	close(s);
	return rc;
}
