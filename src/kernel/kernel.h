/* kernel.h - the Linux kernel backend (internal): btsock's API on the kernel's own Bluetooth
 * sockets (AF_BLUETOOTH) and adapters (hciN), next to bluetoothd.
 *
 * The fd an application gets IS the kernel socket (RFCOMM SOCK_STREAM, L2CAP SOCK_SEQPACKET);
 * this backend keeps a small registry of the fds it made (state, timeout, advertisement).
 * Adapters are the kernel's hciN, named "hciN"; opening one only checks that it is up and
 * makes it the default for sockets bound to "". SDP records are published through bluetoothd
 * (D-Bus org.bluez.ProfileManager1, kdbus.c); services are found with btsock's own SDP client
 * over a kernel L2CAP socket to PSM 1 (ksdp.c).
 *
 * The few kernel ABI definitions needed are written out here rather than taken from BlueZ's
 * libbluetooth headers (btsock must not link libbluetooth; its hci_* / sdp_* names clash with
 * ours): include/net/bluetooth/bluetooth.h, hci.h, hci_sock.h, l2cap.h, rfcomm.h in Linux
 * 6.1, whose values are user-space ABI and do not change. */
#ifndef BTSOCK_KERNEL_H
#define BTSOCK_KERNEL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "btsock.h"

/* ---- include/net/bluetooth/bluetooth.h */
#ifndef AF_BLUETOOTH
#define AF_BLUETOOTH 31
#endif
#define KN_BTPROTO_L2CAP 0
#define KN_BTPROTO_HCI 1
#define KN_BTPROTO_RFCOMM 3
#define KN_SOL_HCI 0
#define KN_SOL_L2CAP 6
#define KN_SOL_BLUETOOTH 274
#define KN_BT_SECURITY 4 /* struct bt_security */
#define KN_BT_DEFER_SETUP 7 /* uint32: a listener's connections wait for accept + a read */
#define KN_BT_SECURITY_LOW 1
#define KN_BT_SECURITY_MEDIUM 2
#define KN_BT_SECURITY_HIGH 3
#define KN_BT_SECURITY_FIPS 4

typedef struct {
	uint8_t b[6]; /* little-endian: b[5] is the first byte of "01:23:45:67:89:AB" */
} __attribute__((packed)) kn_bdaddr;

struct kn_bt_security {
	uint8_t level;
	uint8_t key_size;
};

/* ---- include/net/bluetooth/l2cap.h */
struct kn_sockaddr_l2 {
	sa_family_t l2_family;
	uint16_t l2_psm; /* little-endian */
	kn_bdaddr l2_bdaddr;
	uint16_t l2_cid;
	uint8_t l2_bdaddr_type; /* BDADDR_BREDR = 0 */
};
#define KN_L2CAP_OPTIONS 0x01
struct kn_l2cap_options {
	uint16_t omtu;
	uint16_t imtu;
	uint16_t flush_to;
	uint8_t mode;
	uint8_t fcs;
	uint8_t max_tx;
	uint16_t txwin_size;
};

/* ---- include/net/bluetooth/rfcomm.h */
struct kn_sockaddr_rc {
	sa_family_t rc_family;
	kn_bdaddr rc_bdaddr;
	uint8_t rc_channel;
};

/* ---- include/net/bluetooth/hci_sock.h, hci.h */
struct kn_sockaddr_hci {
	sa_family_t hci_family;
	uint16_t hci_dev;
	uint16_t hci_channel; /* HCI_CHANNEL_RAW = 0 */
};
#define KN_HCI_DEV_NONE 0xffff
#define KN_HCI_FILTER 2
struct kn_hci_filter {
	uint32_t type_mask;
	uint32_t event_mask[2];
	uint16_t opcode;
};
struct kn_hci_dev_stats {
	uint32_t err_rx, err_tx, cmd_tx, evt_rx, acl_tx, acl_rx, sco_tx, sco_rx, byte_rx, byte_tx;
};
struct kn_hci_dev_info {
	uint16_t dev_id;
	char name[8];
	kn_bdaddr bdaddr;
	uint32_t flags; /* bit 0: HCI_UP */
	uint8_t type;
	uint8_t features[8];
	uint32_t pkt_type;
	uint32_t link_policy;
	uint32_t link_mode;
	uint16_t acl_mtu;
	uint16_t acl_pkts;
	uint16_t sco_mtu;
	uint16_t sco_pkts;
	struct kn_hci_dev_stats stat;
};
#define KN_HCI_UP 0
#define KN_HCIGETDEVINFO _IOR('H', 211, int)
#define KN_HCIGETCONNINFO _IOR('H', 213, int)
struct kn_hci_conn_info {
	uint16_t handle;
	kn_bdaddr bdaddr;
	uint8_t type;
	uint8_t out;
	uint16_t state;
	uint32_t link_mode;
};
struct kn_hci_conn_info_req {
	kn_bdaddr bdaddr;
	uint8_t type; /* ACL_LINK = 1 */
	struct kn_hci_conn_info conn_info[1];
};

/* ---- kadapter.c */
#define KN_MAX_DEV 16
void kn_addr_format(const kn_bdaddr *a, char out[BTSOCK_ADDRSTRLEN]);
int kn_addr_parse(const char *s, kn_bdaddr *out); /* 0 or -1 */
bool kn_addr_any(const kn_bdaddr *a);
/* HCIGETDEVINFO of hciN: 0, or -errno. */
int kn_dev_info(int dev, struct kn_hci_dev_info *out);
/* The hci number of the up adapter with this address, or -1. */
int kn_dev_by_addr(const kn_bdaddr *a);
/* The adapter a socket bound to "" uses: the first opened with btsock_adapter_open, else
 * BTSOCK_ADAPTER if it names hciN, else -1 (the kernel chooses). 0 and *out, or -1 with the
 * error set (BTSOCK_ADAPTER names an adapter that is missing or down). */
int kn_default_dev(kn_bdaddr *out, bool *any, const char *call);
/* The first kernel adapter that is up (for getsockname of a socket bound to any), or -1. */
int kn_first_up(kn_bdaddr *out);
/* Whether the adapter with address local (any: the first up) has an ACL link to peer. */
bool kn_acl_up(const kn_bdaddr *local, const kn_bdaddr *peer);
bool kn_claims_spec(const char *spec);
bool kn_has_adapter(const char *addr);
bool kn_any_adapter(void);
bool kn_kernel_up(void);
int kn_adapter_open(const char *name, char addr[BTSOCK_ADDRSTRLEN]);
int kn_adapter_close(const char *addr);
int kn_adapter_info(const char *addr, struct btsock_adapter_info *info);
/* The adapter named by addr ("" / NULL: the default one, else the first up): its hci number
 * and address, or -1 with the error set. */
int kn_resolve_adapter(const char *addr, kn_bdaddr *out, const char *call);

/* ---- ksock.c */
bool kn_owns_fd(int fd);
int kn_socket(enum btsock_proto proto);
int kn_bind(int fd, const char *local, unsigned port);
int kn_listen(int fd, int backlog);
int kn_accept(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port);
int kn_connect(int fd, const char *addr, unsigned port);
int kn_connect_result(int fd);
int kn_getsockname(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port);
int kn_getpeername(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port);
int kn_settimeout(int fd, int timeout_ms);
int kn_get_mtu(int fd, unsigned *incoming, unsigned *outgoing);
int kn_set_mtu(int fd, unsigned incoming);
int kn_set_security(int fd, enum btsock_security level);
int kn_sock_error(int fd);
int kn_close(int fd);
int kn_advertise_service(int fd, const struct btsock_service *svc);
int kn_stop_advertising(int fd);
void kn_sock_shutdown(void);
/* Waits up to timeout_ms (-1: for ever) for events on fd; 1 ready, 0 timed out, -1 errno. */
int kn_wait(int fd, short events, int timeout_ms);
/* The user-space backend's words for a connection's errno (src/runtime/socket.c). */
const char *kn_conn_reason(int err);

/* ---- kdbus.c: bluetoothd's ProfileManager1 (sd-bus). */
/* Registers record (BlueZ's XML form) as a profile; *handle names it for kn_dbus_unregister.
 * 0, or -1 with the error set. */
int kn_dbus_register(const char *xml, char *path, size_t cap, const char *call);
int kn_dbus_unregister(const char *path);
void kn_dbus_shutdown(void);
/* Discovery on hciN through bluetoothd for about duration_ms: the devices seen (at most max
 * stored), or -1 with the error set (ENOTSUP when bluetoothd does not run). */
/* The adapter's name through bluetoothd (Adapter1.Alias, which bluetoothd also writes to the
 * controller as its local name). 0, or -1 with the error set. */
int kn_dbus_set_alias(int dev, const char *name, const char *call);
int kn_dbus_discover(int dev, int duration_ms, struct btsock_device *out, size_t max, const char *call);

/* ---- khci.c: a raw HCI socket of hciN (CAP_NET_RAW) and the kernel's HCIINQUIRY. */
/* Remote_Name_Request (Vol 4 Part E 7.1.19) and its Remote Name Request Complete: 0 and the
 * name, or -errno (-EHOSTDOWN page timeout, -ETIMEDOUT, -EIO refused); sets no message. */
int kn_hci_remote_name(int dev, const kn_bdaddr *peer, int timeout_ms, char name[BTSOCK_NAMESTRLEN],
		       const char *call);
/* Write_Class_Of_Device (7.3.26). 0, or -1 with the error set. */
int kn_hci_write_class(int dev, unsigned cod, const char *call);
/* An inquiry of about duration_ms by the kernel (no bluetoothd needed), names asked when
 * names: the devices found (at most max stored), or -1 with the error set. */
int kn_hci_inquiry(int dev, int duration_ms, bool names, struct btsock_device *out, size_t max, const char *call);

/* ---- kmgmt.c: the kernel's management interface (mgmt, control channel). */
/* Whether Secure Connections is on for hciN (Read Controller Information, Current_Settings
 * bit 11): 1, 0, or -1 with the error set. */
int kn_mgmt_secure_connections(int dev, const char *call);

/* ---- ksdp.c */
int kn_find_services(const char *addr, const char *uuid, const char *name, struct btsock_service_info **out);
/* The record of svc with the socket's RFCOMM channel or L2CAP PSM, in BlueZ's XML record
 * format (src/sdp-xml.c): malloc'd, or NULL with the error set. */
char *kn_service_xml(const struct btsock_service *svc, enum btsock_proto proto, unsigned port, const char *call);

#endif
