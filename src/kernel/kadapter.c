/* kadapter.c - the kernel backend's adapters: the kernel's hciN, found with HCIGETDEVINFO.
 * Opening one only checks that it is up (bluetoothd or `hciconfig hciN up` powers it) and
 * makes it the default for sockets bound to ""; closing forgets it. */
#include "kernel.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api_error.h"

void kn_addr_format(const kn_bdaddr *a, char out[BTSOCK_ADDRSTRLEN])
{
	snprintf(out, BTSOCK_ADDRSTRLEN, "%02X:%02X:%02X:%02X:%02X:%02X", a->b[5], a->b[4], a->b[3], a->b[2],
		 a->b[1], a->b[0]);
}

int kn_addr_parse(const char *s, kn_bdaddr *out)
{
	unsigned v[6];
	char tail;
	if (!s || strlen(s) != 17 ||
	    sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		out->b[5 - i] = (uint8_t)v[i];
	return 0;
}

bool kn_addr_any(const kn_bdaddr *a)
{
	static const kn_bdaddr zero;
	return memcmp(a, &zero, sizeof zero) == 0;
}

int kn_dev_info(int dev, struct kn_hci_dev_info *out)
{
	int s = socket(AF_BLUETOOTH, SOCK_RAW | SOCK_CLOEXEC, KN_BTPROTO_HCI);
	if (s < 0)
		return -errno;
	memset(out, 0, sizeof *out);
	out->dev_id = (uint16_t)dev;
	int rc = ioctl(s, KN_HCIGETDEVINFO, out) < 0 ? -errno : 0;
	close(s);
	return rc;
}

static bool dev_up(const struct kn_hci_dev_info *di) { return di->flags & (1u << KN_HCI_UP); }

/* The hci numbers in /sys/class/bluetooth, ascending; returns how many. */
static int dev_list(int out[KN_MAX_DEV])
{
	int n = 0;
	DIR *d = opendir("/sys/class/bluetooth");
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < KN_MAX_DEV) {
		int id;
		char tail;
		if (sscanf(e->d_name, "hci%d%c", &id, &tail) == 1 && id >= 0 && id < 0xffff)
			out[n++] = id;
	}
	closedir(d);
	for (int i = 1; i < n; i++) /* insertion sort */
		for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
			int t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

int kn_dev_by_addr(const kn_bdaddr *a)
{
	int ids[KN_MAX_DEV], n = dev_list(ids);
	struct kn_hci_dev_info di;
	for (int i = 0; i < n; i++)
		if (kn_dev_info(ids[i], &di) == 0 && dev_up(&di) && memcmp(&di.bdaddr, a, sizeof *a) == 0)
			return ids[i];
	return -1;
}

int kn_first_up(kn_bdaddr *out)
{
	int ids[KN_MAX_DEV], n = dev_list(ids);
	struct kn_hci_dev_info di;
	for (int i = 0; i < n; i++)
		if (kn_dev_info(ids[i], &di) == 0 && dev_up(&di)) {
			if (out)
				*out = di.bdaddr;
			return ids[i];
		}
	return -1;
}

bool kn_acl_up(const kn_bdaddr *local, const kn_bdaddr *peer)
{
	kn_bdaddr l = *local;
	int dev = kn_addr_any(&l) ? kn_first_up(&l) : kn_dev_by_addr(&l);
	if (dev < 0)
		return false;
	int s = socket(AF_BLUETOOTH, SOCK_RAW | SOCK_CLOEXEC, KN_BTPROTO_HCI);
	if (s < 0)
		return false;
	struct kn_sockaddr_hci sa = { .hci_family = AF_BLUETOOTH, .hci_dev = (uint16_t)dev };
	struct kn_hci_conn_info_req req = { .bdaddr = *peer, .type = 1 };
	bool up = bind(s, (struct sockaddr *)&sa, sizeof sa) == 0 && ioctl(s, KN_HCIGETCONNINFO, &req) == 0;
	close(s);
	return up;
}

bool kn_kernel_up(void) { return kn_first_up(NULL) >= 0; }

/* ---- adapters opened with btsock_adapter_open("hciN") */

static pthread_mutex_t ad_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int dev;
	kn_bdaddr addr;
} opened[KN_MAX_DEV];
static int n_opened;

/* "hciN" -> N, or -1. */
static int parse_spec(const char *spec)
{
	int id;
	char tail;
	if (!spec || sscanf(spec, "hci%d%c", &id, &tail) != 1 || id < 0 || id >= 0xffff || strncmp(spec, "hci", 3))
		return -1;
	return id;
}

bool kn_claims_spec(const char *spec) { return parse_spec(spec) >= 0; }

bool kn_any_adapter(void)
{
	pthread_mutex_lock(&ad_mu);
	bool any = n_opened > 0;
	pthread_mutex_unlock(&ad_mu);
	return any;
}

bool kn_has_adapter(const char *addr)
{
	kn_bdaddr a;
	return kn_addr_parse(addr, &a) == 0 && kn_dev_by_addr(&a) >= 0;
}

/* hciN that is up: 0 and its info, or -1 with the error set. */
static int open_dev(int dev, struct kn_hci_dev_info *di, const char *call)
{
	int rc = kn_dev_info(dev, di);
	if (rc == -EAFNOSUPPORT || rc == -EPROTONOSUPPORT)
		return api_fail(-rc, "%s: hci%d: this kernel has no Bluetooth sockets (modprobe bluetooth)", call, dev);
	if (rc == -ENODEV)
		return api_fail(ENODEV, "%s: no adapter hci%d: see /sys/class/bluetooth", call, dev);
	if (rc < 0)
		return api_fail(-rc, "%s: hci%d: %s", call, dev, strerror(-rc));
	if (!dev_up(di))
		return api_fail(ENETDOWN, "%s: hci%d is down (power it: bluetoothctl power on, or hciconfig hci%d up)",
				call, dev, dev);
	return 0;
}

int kn_adapter_open(const char *name, char addr[BTSOCK_ADDRSTRLEN])
{
	const char *spec = name && *name ? name : getenv("BTSOCK_ADAPTER");
	int dev = parse_spec(spec);
	if (dev < 0) {
		/* no name: the first adapter that is up */
		if (spec && *spec)
			return api_fail(EINVAL, "adapter_open: '%s' is not a kernel adapter (hciN)", spec);
		kn_bdaddr a;
		if ((dev = kn_first_up(&a)) < 0)
			return api_fail(ENODEV, "adapter_open: no kernel Bluetooth adapter is up");
	}
	struct kn_hci_dev_info di;
	if (open_dev(dev, &di, "adapter_open") < 0)
		return -1;
	pthread_mutex_lock(&ad_mu);
	int i;
	for (i = 0; i < n_opened && opened[i].dev != dev; i++)
		;
	if (i == n_opened && n_opened < KN_MAX_DEV) {
		opened[n_opened].dev = dev;
		opened[n_opened].addr = di.bdaddr;
		n_opened++;
	}
	pthread_mutex_unlock(&ad_mu);
	if (addr)
		kn_addr_format(&di.bdaddr, addr);
	api_clear_error();
	return 0;
}

int kn_adapter_close(const char *addr)
{
	kn_bdaddr a;
	bool any = !addr || !*addr;
	if (!any && kn_addr_parse(addr, &a) < 0)
		return api_fail(EINVAL, "adapter_close: invalid adapter address '%s': expected six hex bytes like "
					"01:23:45:67:89:AB",
				addr);
	pthread_mutex_lock(&ad_mu);
	int i;
	for (i = 0; i < n_opened && !any && memcmp(&opened[i].addr, &a, sizeof a) != 0; i++)
		;
	bool found = i < n_opened;
	if (found) {
		memmove(&opened[i], &opened[i + 1], (size_t)(n_opened - i - 1) * sizeof opened[0]);
		n_opened--;
	}
	pthread_mutex_unlock(&ad_mu);
	if (!found)
		return api_fail(ENODEV, "adapter_close: no open adapter has address %s", any ? "(default)" : addr);
	api_clear_error();
	return 0;
}

int kn_default_dev(kn_bdaddr *out, bool *any, const char *call)
{
	*any = false;
	pthread_mutex_lock(&ad_mu);
	bool have = n_opened > 0;
	if (have)
		*out = opened[0].addr;
	pthread_mutex_unlock(&ad_mu);
	if (have)
		return 0;
	int dev = parse_spec(getenv("BTSOCK_ADAPTER"));
	if (dev < 0) {
		*any = true;
		memset(out, 0, sizeof *out);
		return 0;
	}
	struct kn_hci_dev_info di;
	if (open_dev(dev, &di, call) < 0)
		return -1;
	*out = di.bdaddr;
	return 0;
}

int kn_resolve_adapter(const char *addr, kn_bdaddr *out, const char *call)
{
	if (addr && *addr) {
		if (kn_addr_parse(addr, out) < 0)
			return api_fail(EINVAL, "%s: invalid adapter address '%s': expected six hex bytes like "
						"01:23:45:67:89:AB",
					call, addr);
		int dev = kn_dev_by_addr(out);
		if (dev < 0)
			return api_fail(ENODEV, "%s: no kernel adapter that is up has address %s", call, addr);
		return dev;
	}
	bool any;
	if (kn_default_dev(out, &any, call) < 0)
		return -1;
	int dev = any ? kn_first_up(out) : kn_dev_by_addr(out);
	if (dev < 0)
		return api_fail(ENODEV, "%s: no kernel Bluetooth adapter is up", call);
	return dev;
}

/* Read Local Version Information (Vol 4 Part E 7.4.1) through a raw HCI socket (needs
 * CAP_NET_RAW; without it the versions stay 0). */
static void read_version(int dev, struct btsock_adapter_info *info)
{
	int s = socket(AF_BLUETOOTH, SOCK_RAW | SOCK_CLOEXEC, KN_BTPROTO_HCI);
	if (s < 0)
		return;
	struct kn_sockaddr_hci sa = { .hci_family = AF_BLUETOOTH, .hci_dev = (uint16_t)dev };
	struct kn_hci_filter f = { .type_mask = 1u << 4 /* event packets */,
				   .event_mask = { 1u << 0x0e /* Command Complete */, 0 },
				   .opcode = 0x1001 };
	static const uint8_t cmd[] = { 0x01, 0x01, 0x10, 0x00 };
	uint8_t ev[260];
	if (bind(s, (struct sockaddr *)&sa, sizeof sa) == 0 &&
	    setsockopt(s, KN_SOL_HCI, KN_HCI_FILTER, &f, sizeof f) == 0 && write(s, cmd, sizeof cmd) == sizeof cmd) {
		for (int tries = 0; tries < 4 && kn_wait(s, POLLIN, 1000) > 0; tries++) {
			ssize_t n = read(s, ev, sizeof ev);
			/* 04 0e len ncmd opcode(2) status hci_ver hci_rev(2) lmp_ver manuf(2) lmp_sub(2) */
			if (n >= 15 && ev[0] == 0x04 && ev[1] == 0x0e && ev[4] == 0x01 && ev[5] == 0x10) {
				if (ev[6] == 0) {
					info->hci_version = ev[7];
					info->hci_revision = (unsigned)ev[8] | (unsigned)ev[9] << 8;
					info->lmp_version = ev[10];
					info->manufacturer = (unsigned)ev[11] | (unsigned)ev[12] << 8;
				}
				break;
			}
		}
	}
	close(s);
}

int kn_adapter_info(const char *addr, struct btsock_adapter_info *info)
{
	kn_bdaddr a;
	int dev = kn_resolve_adapter(addr, &a, "adapter_info");
	if (dev < 0)
		return -1;
	if (!info)
		return api_fail(EINVAL, "adapter_info: info is NULL");
	struct kn_hci_dev_info di;
	if (open_dev(dev, &di, "adapter_info") < 0)
		return -1;
	memset(info, 0, sizeof *info);
	kn_addr_format(&di.bdaddr, info->addr);
	/* btsock info prints this as "adapter:": it says which backend runs the adapter */
	snprintf(info->name, sizeof info->name, "hci%d (Linux kernel stack)", dev);
	info->acl_mtu = di.acl_mtu;
	info->acl_packets = di.acl_pkts;
	read_version(dev, info);
	api_clear_error();
	return 0;
}
