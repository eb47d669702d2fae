/* transport_userchan.c - "userchan:hciN": the Linux HCI user channel. The kernel adapter is
 * brought down and bound with HCI_CHANNEL_USER, after which the socket carries raw H4 packets
 * (indicator byte first), one packet per read and per write, and the kernel's own stack keeps
 * out. Needs CAP_NET_ADMIN.
 *
 * The constants below are the kernel's Bluetooth socket ABI (include/net/bluetooth/hci_sock.h
 * and hci.h), defined here so the build needs no Bluetooth headers. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/transport_impl.h"

#define UC_AF_BLUETOOTH 31
#define UC_BTPROTO_HCI 1
#define UC_HCI_CHANNEL_USER 1
#define UC_HCIDEVDOWN _IOW('H', 202, int)

struct uc_sockaddr_hci {
	sa_family_t hci_family;
	uint16_t hci_dev;
	uint16_t hci_channel;
};

static const char *uc_hint(int e, char *buf, size_t cap, int dev)
{
	switch (e) {
	case EAFNOSUPPORT:
		return "this kernel has no Bluetooth (AF_BLUETOOTH)";
	case EPERM:
	case EACCES:
		return "the user channel needs CAP_NET_ADMIN: run as root or setcap cap_net_admin+ep";
	case ENODEV:
		snprintf(buf, cap, "no adapter hci%d: see /sys/class/bluetooth", dev);
		return buf;
	case EBUSY:
		snprintf(buf, cap, "the adapter is up: the kernel owns it (hciconfig hci%d down; stop bluetoothd if it comes back)", dev);
		return buf;
	case EUSERS:
		return "another process already holds this adapter's user channel";
	case ERFKILL:
		return "the adapter is blocked: rfkill unblock bluetooth";
	default:
		return NULL;
	}
}

static int uc_fail(const tp_ctx *c, const char *step, int e, int dev)
{
	char hint[160];
	return tp_fail(c, step, e, uc_hint(e, hint, sizeof hint, dev));
}

/* Down (the kernel lets go; already down is fine), then bind to the user channel. */
static int uc_bind(const tp_ctx *c, int s, int dev)
{
	if (ioctl(s, UC_HCIDEVDOWN, dev) < 0 && errno != EALREADY) {
		/* The kernel refuses to close an adapter whose user channel is taken. */
		if (errno == EBUSY)
			return tp_fail(c, "ioctl HCIDEVDOWN", EBUSY, uc_hint(EUSERS, NULL, 0, dev));
		return uc_fail(c, "ioctl HCIDEVDOWN", errno, dev);
	}
	struct uc_sockaddr_hci sa;
	memset(&sa, 0, sizeof sa);
	sa.hci_family = UC_AF_BLUETOOTH;
	sa.hci_dev = (uint16_t)dev;
	sa.hci_channel = UC_HCI_CHANNEL_USER;
	if (bind(s, (const struct sockaddr *)&sa, sizeof sa) < 0)
		return uc_fail(c, "bind", errno, dev);
	return 0;
}

/* The kernel queues what the controller sends on the socket and drops what does not fit its
 * receive buffer (net/bluetooth/hci_sock.c, __hci_send_to_channel): ACL data included, which
 * breaks L2CAP reassembly and RFCOMM. The default (about 200 KB of packets) was outrun in the
 * kernel checks whenever btsock's loop lagged; take UC_RCVBUF (CAP_NET_ADMIN is needed for
 * the user channel anyway; without it, as much as net.core.rmem_max allows). */
#define UC_RCVBUF (4 * 1024 * 1024)
static void uc_grow_rcvbuf(int s)
{
	int size = UC_RCVBUF;
	if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
		(void)setsockopt(s, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

static int open_userchan_fd(const tp_ctx *c, const char *arg, int *fd)
{
	int dev = tp_parse_hci_index(arg);
	if (dev < 0)
		return tp_fail_parse(c, EINVAL, "bad adapter '%s'; expected userchan:hciN (e.g. userchan:hci0)", arg);
	int s = socket(UC_AF_BLUETOOTH, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, UC_BTPROTO_HCI);
	if (s < 0)
		return uc_fail(c, "socket", errno, dev);
	int r = uc_bind(c, s, dev);
	if (r < 0) {
		close(s);
		return r;
	}
	uc_grow_rcvbuf(s);
	*fd = s;
	return 0;
}

static int userchan_open(bt_transport *t, const tp_ctx *c, const char *arg)
{
	int fd = -1;
	int r = open_userchan_fd(c, arg, &fd);
	return r < 0 ? r : tp_fd_attach(t, c, fd, TP_FD_SOCKET | TP_FD_PACKETS);
}

const bt_transport_ops tp_userchan_ops = TP_FD_OPS(userchan_open);

bt_transport *tp_userchan_adopt(int fd, const char *name)
{
	bt_transport *t = calloc(1, sizeof *t);
	tp_ctx c = { name, NULL, 0 };
	if (!t) {
		close(fd);
		return NULL;
	}
	t->ops = &tp_userchan_ops;
	snprintf(t->name, sizeof t->name, "%s", name);
	if (tp_fd_attach(t, &c, fd, TP_FD_SOCKET | TP_FD_PACKETS) < 0) {
		free(t);
		return NULL;
	}
	return t;
}
