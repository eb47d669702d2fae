/* khci.c - what the kernel backend asks an adapter directly, on a raw HCI socket of hciN
 * (needs CAP_NET_RAW) or with the kernel's HCIINQUIRY ioctl: remote names, the Class of Device,
 * and an inquiry when bluetoothd does not run. The kernel passes commands on a raw socket to
 * the controller and copies the events back; each call here waits only for its own event. */
#include "kernel.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api_error.h"

#define EV_INQUIRY_COMPLETE 0x01  /* Vol 4 Part E 7.7.1 */
#define EV_REMOTE_NAME 0x07       /* 7.7.7 Remote Name Request Complete */
#define EV_CMD_COMPLETE 0x0e      /* 7.7.14 */
#define EV_CMD_STATUS 0x0f        /* 7.7.15 */
#define OP_REMOTE_NAME 0x0419     /* 7.1.19 Remote_Name_Request */
#define OP_WRITE_COD 0x0c24       /* 7.3.26 Write_Class_Of_Device */

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* A raw HCI socket on hciN that sees only the events in mask (bits of event codes < 64). */
static int raw_open(int dev, uint64_t events, const char *call)
{
	int s = socket(AF_BLUETOOTH, SOCK_RAW | SOCK_CLOEXEC, KN_BTPROTO_HCI);
	if (s < 0)
		return api_fail(errno, "%s: raw HCI socket: %s", call, strerror(errno));
	struct kn_sockaddr_hci sa = { .hci_family = AF_BLUETOOTH, .hci_dev = (uint16_t)dev };
	struct kn_hci_filter f = { .type_mask = 1u << 4, /* HCI event packets */
				   .event_mask = { (uint32_t)events, (uint32_t)(events >> 32) } };
	if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || setsockopt(s, KN_SOL_HCI, KN_HCI_FILTER, &f, sizeof f) < 0) {
		int e = errno;
		close(s);
		return api_fail(e, "%s: hci%d: %s", call, dev, strerror(e));
	}
	return s;
}

/* One command: [0x01][opcode le16][plen][params] (Vol 4 Part A 2, Vol 4 Part E 5.4.1). */
static int raw_cmd(int s, uint16_t opcode, const uint8_t *params, uint8_t plen)
{
	uint8_t pkt[4 + 255];
	pkt[0] = 0x01;
	pkt[1] = (uint8_t)opcode;
	pkt[2] = (uint8_t)(opcode >> 8);
	pkt[3] = plen;
	memcpy(pkt + 4, params, plen);
	return write(s, pkt, 4u + plen) == (ssize_t)(4u + plen) ? 0 : -errno;
}

/* The next event read from s before the deadline: its length (>= 3: [0x04][code][len]...), 0 on
 * timeout, -errno. */
static ssize_t raw_event(int s, uint8_t *ev, size_t cap, uint64_t deadline)
{
	for (;;) {
		uint64_t now = now_ms();
		if (now >= deadline)
			return 0;
		int r = kn_wait(s, POLLIN, (int)(deadline - now));
		if (r <= 0)
			return r < 0 ? -errno : 0;
		ssize_t n = read(s, ev, cap);
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (n >= 3 && ev[0] == 0x04 && (size_t)ev[2] + 3 <= (size_t)n)
			return n;
	}
}

/* Command Status for opcode in ev (7.7.15: status, ncmd, opcode): its status, or -1 if ev is
 * not that. */
static int cmd_status_of(const uint8_t *ev, size_t n, uint16_t opcode)
{
	if (n >= 7 && ev[1] == EV_CMD_STATUS && ev[5] == (uint8_t)opcode && ev[6] == (uint8_t)(opcode >> 8))
		return ev[3];
	return -1;
}

int kn_hci_remote_name(int dev, const kn_bdaddr *peer, int timeout_ms, char name[BTSOCK_NAMESTRLEN],
		       const char *call)
{
	int s = raw_open(dev, 1ull << EV_REMOTE_NAME | 1ull << EV_CMD_STATUS, call);
	if (s < 0)
		return -1;
	/* BD_ADDR, page scan repetition mode R2, reserved, clock offset 0 (7.1.19). */
	uint8_t p[10] = { 0 };
	memcpy(p, peer->b, 6);
	p[6] = 0x02;
	int rc = raw_cmd(s, OP_REMOTE_NAME, p, sizeof p);
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	uint8_t ev[3 + 255];
	while (rc == 0) {
		ssize_t n = raw_event(s, ev, sizeof ev, deadline);
		if (n <= 0) {
			rc = n < 0 ? (int)n : -ETIMEDOUT;
			break;
		}
		int st = cmd_status_of(ev, (size_t)n, OP_REMOTE_NAME);
		if (st > 0) {
			rc = -EIO;
			break;
		}
		/* 7.7.7: status, BD_ADDR, 248-octet name (NUL-padded, UTF-8). */
		if (ev[1] != EV_REMOTE_NAME || n < 3 + 7 || memcmp(ev + 4, peer->b, 6) != 0)
			continue;
		if (ev[3] != 0) {
			rc = ev[3] == 0x04 ? -EHOSTDOWN : -EIO; /* 0x04: Page Timeout */
			break;
		}
		size_t len = (size_t)n - 10 < 248 ? (size_t)n - 10 : 248;
		if (len > BTSOCK_NAMESTRLEN - 1)
			len = BTSOCK_NAMESTRLEN - 1;
		memcpy(name, ev + 10, len);
		name[len] = 0; /* the name is NUL-padded: it ends at its first NUL anyway */
		break;
	}
	close(s);
	return rc;
}

int kn_hci_write_class(int dev, unsigned cod, const char *call)
{
	int s = raw_open(dev, 1ull << EV_CMD_COMPLETE, call);
	if (s < 0)
		return -1;
	uint8_t p[3] = { (uint8_t)cod, (uint8_t)(cod >> 8), (uint8_t)(cod >> 16) }; /* 7.3.26 */
	int rc = raw_cmd(s, OP_WRITE_COD, p, sizeof p);
	uint64_t deadline = now_ms() + 2000;
	uint8_t ev[3 + 255];
	while (rc == 0) {
		ssize_t n = raw_event(s, ev, sizeof ev, deadline);
		if (n <= 0) {
			rc = n < 0 ? (int)n : -ETIMEDOUT;
			break;
		}
		/* 7.7.14: ncmd, opcode, then the return parameters (status). */
		if (n >= 7 && ev[1] == EV_CMD_COMPLETE && ev[4] == (uint8_t)OP_WRITE_COD && ev[5] == (uint8_t)(OP_WRITE_COD >> 8)) {
			rc = ev[6] == 0 ? 0 : -EIO;
			break;
		}
	}
	close(s);
	if (rc < 0)
		return api_fail(-rc, "%s: hci%d: Write_Class_Of_Device: %s", call, dev,
				rc == -EIO ? "the controller refused it" : strerror(-rc));
	return 0;
}

/* ---- inquiry: the kernel's HCIINQUIRY (include/net/bluetooth/hci_sock.h, hci.h) */
struct kn_inquiry_req {
	uint16_t dev_id;
	uint16_t flags; /* IREQ_CACHE_FLUSH 1: report only what this inquiry sees */
	uint8_t lap[3];
	uint8_t length; /* x 1.28 s (Vol 4 Part E 7.1.1) */
	uint8_t num_rsp;
};
struct kn_inquiry_info {
	kn_bdaddr bdaddr;
	uint8_t pscan_rep_mode, pscan_period_mode, pscan_mode;
	uint8_t dev_class[3];
	uint16_t clock_offset;
} __attribute__((packed));
#define KN_HCIINQUIRY _IOR('H', 240, int)
#define KN_INQ_MAX 255

int kn_hci_inquiry(int dev, int duration_ms, bool names, struct btsock_device *out, size_t max, const char *call)
{
	size_t sz = sizeof(struct kn_inquiry_req) + KN_INQ_MAX * sizeof(struct kn_inquiry_info);
	uint8_t *buf = calloc(1, sz);
	if (!buf)
		return api_fail(ENOMEM, "%s: out of memory", call);
	struct kn_inquiry_req *req = (struct kn_inquiry_req *)buf;
	req->dev_id = (uint16_t)dev;
	req->flags = 1;
	req->lap[0] = 0x33; /* GIAC 0x9E8B33 (Assigned Numbers) */
	req->lap[1] = 0x8b;
	req->lap[2] = 0x9e;
	int units = (duration_ms + 1279) / 1280;
	req->length = (uint8_t)(units < 1 ? 1 : units > 48 ? 48 : units);
	req->num_rsp = KN_INQ_MAX;
	int s = socket(AF_BLUETOOTH, SOCK_RAW | SOCK_CLOEXEC, KN_BTPROTO_HCI);
	if (s < 0 || ioctl(s, KN_HCIINQUIRY, buf) < 0) {
		int e = errno;
		if (s >= 0)
			close(s);
		free(buf);
		return api_fail(e, "%s: hci%d: inquiry: %s", call, dev, strerror(e));
	}
	close(s);
	const struct kn_inquiry_info *ii = (const struct kn_inquiry_info *)(buf + sizeof *req);
	size_t n = req->num_rsp < KN_INQ_MAX ? req->num_rsp : KN_INQ_MAX;
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (kept >= max)
			continue;
		struct btsock_device *d = &out[kept++];
		memset(d, 0, sizeof *d);
		kn_addr_format(&ii[i].bdaddr, d->addr);
		d->device_class = (unsigned)ii[i].dev_class[0] | (unsigned)ii[i].dev_class[1] << 8 |
				  (unsigned)ii[i].dev_class[2] << 16;
		if (names)
			kn_hci_remote_name(dev, &ii[i].bdaddr, 5000, d->name, call); /* a name is optional */
	}
	free(buf);
	api_clear_error();
	return (int)kept;
}
