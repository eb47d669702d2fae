/* kmgmt.c - what the kernel backend reads from the kernel's Bluetooth management interface
 * (mgmt: an HCI socket bound to the control channel, BlueZ doc/mgmt-api.txt): the adapter's
 * current settings, for whether Secure Connections is on. Read Controller Information is one
 * of the commands the kernel answers on an untrusted socket, so no privilege is needed. It is
 * the kernel's view, which is what its links use: bluetoothd switches Secure Connections on
 * through mgmt where the controller supports it; without bluetoothd it stays off. */
#include "kernel.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api_error.h"

#define CHANNEL_CONTROL 3        /* HCI_CHANNEL_CONTROL */
#define DEV_NONE 0xffff          /* HCI_DEV_NONE: the control channel binds to no device */
#define OP_READ_INFO 0x0004      /* mgmt-api.txt: Read Controller Information Command */
#define EV_CMD_COMPLETE 0x0001   /* Command Complete Event: opcode, status, return parameters */
#define EV_CMD_STATUS 0x0002     /* Command Status Event: opcode, status */
#define SETTING_SECURE_CONN (1u << 11) /* Current_Settings bit 11: Secure Connections */
/* Read Controller Information's return parameters: Address 6, Bluetooth_Version 1,
 * Manufacturer 2, Supported_Settings 4, Current_Settings 4, ... */
#define INFO_CURRENT_SETTINGS 13
#define HDR 6 /* every packet: Opcode/Event Code le16, Controller Index le16, Parameter Length le16 */

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16; }

static int mgmt_open(const char *call)
{
	int s = socket(AF_BLUETOOTH, SOCK_RAW | SOCK_CLOEXEC, KN_BTPROTO_HCI);
	if (s < 0)
		return api_fail(errno, "%s: mgmt socket: %s", call, strerror(errno));
	struct kn_sockaddr_hci sa = { .hci_family = AF_BLUETOOTH, .hci_dev = DEV_NONE, .hci_channel = CHANNEL_CONTROL };
	if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(s);
		return api_fail(e, "%s: the kernel's management interface: %s", call, strerror(e));
	}
	return s;
}

/* The answer to opcode for index from s, within timeout_ms, into buf: the length of its return
 * parameters (starting at buf + HDR + 3), or -1 with the error set. Other events (the
 * control channel broadcasts settings changes to every socket) are skipped. */
static int mgmt_answer(int s, uint16_t opcode, uint16_t index, uint8_t *buf, size_t cap, int timeout_ms,
		       const char *call)
{
	for (;;) {
		int r = kn_wait(s, POLLIN, timeout_ms);
		if (r <= 0)
			return r < 0 ? api_fail(errno, "%s: mgmt: %s", call, strerror(errno))
				     : api_fail(ETIMEDOUT, "%s: the kernel's management interface did not answer", call);
		ssize_t n = read(s, buf, cap);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return api_fail(errno, "%s: mgmt: %s", call, strerror(errno));
		/* the header, a parameter length that holds opcode and status and fits what came */
		if (n < HDR + 3 || le16(buf + 4) < 3 || (size_t)le16(buf + 4) + HDR > (size_t)n ||
		    le16(buf + 2) != index)
			continue;
		uint16_t ev = le16(buf);
		if ((ev != EV_CMD_COMPLETE && ev != EV_CMD_STATUS) || le16(buf + HDR) != opcode)
			continue;
		uint8_t status = buf[HDR + 2];
		if (status != 0) /* mgmt-api.txt error codes: 0x11 Invalid Index, 0x14 Permission Denied, ... */
			return api_fail(status == 0x14 ? EPERM : status == 0x11 ? ENODEV : EIO,
					"%s: the kernel's management interface refused Read Controller Information "
					"(mgmt status 0x%02x)",
					call, status);
		return (int)(le16(buf + 4) - 3);
	}
}

int kn_mgmt_secure_connections(int dev, const char *call)
{
	int s = mgmt_open(call);
	if (s < 0)
		return -1;
	uint8_t cmd[HDR] = { (uint8_t)OP_READ_INFO, OP_READ_INFO >> 8, (uint8_t)dev, (uint8_t)(dev >> 8), 0, 0 };
	uint8_t buf[512];
	int rc;
	if (write(s, cmd, sizeof cmd) != (ssize_t)sizeof cmd)
		rc = api_fail(errno, "%s: mgmt: %s", call, strerror(errno));
	else
		rc = mgmt_answer(s, OP_READ_INFO, (uint16_t)dev, buf, sizeof buf, 2000, call);
	close(s);
	if (rc < 0)
		return -1;
	if (rc < INFO_CURRENT_SETTINGS + 4)
		return api_fail(EIO, "%s: a short Read Controller Information answer (%d octets)", call, rc);
	return (le32(buf + HDR + 3 + INFO_CURRENT_SETTINGS) & SETTING_SECURE_CONN) ? 1 : 0;
}
