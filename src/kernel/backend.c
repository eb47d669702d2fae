/* backend.c - the Linux kernel as a backend of the public API (src/api/backend.h): adapter
 * strings "hciN". Sockets, adapters, SDP and discovery (through bluetoothd) are implemented
 * (ksock.c, kadapter.c, ksdp.c, kdbus.c, khci.c, kmgmt.c). Pairing is bluetoothd's (its agent
 * answers for the kernel), so the pairing calls fail with ENOTSUP and a sentence saying that. */
#include "api/backend.h"
#include "kernel.h"

#include <errno.h>
#include <string.h>

#include "api/api_error.h"

static int pairing_is_bluetoothd(const char *call)
{
	return api_fail(ENOTSUP, "%s: on the kernel backend (hciN) pairing is bluetoothd's: pair with bluetoothctl "
				 "(its agent answers for the kernel), then connect",
			call);
}

static int k_secure_connections(const char *addr)
{
	kn_bdaddr a;
	int dev = kn_resolve_adapter(addr, &a, "adapter_secure_connections");
	return dev < 0 ? -1 : kn_mgmt_secure_connections(dev, "adapter_secure_connections");
}
/* Through bluetoothd's D-Bus discovery (kdbus.c) when it runs (names come as bluetoothd found
 * them: it asks for them itself); otherwise the kernel's own inquiry (khci.c), names asked
 * with Remote_Name_Request when lookup_names. */
static int k_discover(const char *adapter, int duration_ms, bool lookup_names, struct btsock_device *out, size_t max)
{
	kn_bdaddr a;
	int dev = kn_resolve_adapter(adapter, &a, "discover");
	if (dev < 0)
		return -1;
	if (duration_ms <= 0)
		duration_ms = 10240;
	if (duration_ms > 61440)
		duration_ms = 61440;
	duration_ms = (duration_ms + 1279) / 1280 * 1280;
	int n = kn_dbus_discover(dev, duration_ms, out, max, "discover");
	if (n < 0 && errno != EBUSY) /* no system bus, no bluetoothd, or no sd-bus in this build */
		n = kn_hci_inquiry(dev, duration_ms, lookup_names, out, max, "discover");
	return n;
}
static int k_lookup_name(const char *addr, int timeout_ms, char name[BTSOCK_NAMESTRLEN])
{
	kn_bdaddr a, peer;
	if (!name)
		return api_fail(EINVAL, "lookup_name: name is NULL");
	name[0] = 0;
	if (!addr || kn_addr_parse(addr, &peer) < 0)
		return api_fail(EINVAL, "lookup_name: invalid address '%s': expected six hex bytes like 01:23:45:67:89:AB",
				addr ? addr : "(null)");
	int dev = kn_resolve_adapter(NULL, &a, "lookup_name");
	if (dev < 0)
		return -1;
	int rc = kn_hci_remote_name(dev, &peer, timeout_ms > 0 ? timeout_ms : 10000, name, "lookup_name");
	if (rc < 0)
		return api_fail(-rc, "lookup_name %s: %s", addr,
				rc == -EHOSTDOWN ? "no device answered at that address (page timeout)"
				: rc == -ETIMEDOUT ? "no answer in time"
				: rc == -EIO ? "the controller refused the request" : strerror(-rc));
	api_clear_error();
	return 0;
}
static int k_set_local_name(const char *adapter, const char *name)
{
	kn_bdaddr a;
	int dev = kn_resolve_adapter(adapter, &a, "set_local_name");
	if (dev < 0)
		return -1;
	if (!name || strlen(name) > 248)
		return api_fail(EINVAL, "set_local_name: a name of 0-248 bytes is needed");
	if (kn_dbus_set_alias(dev, name, "set_local_name") < 0)
		return -1;
	api_clear_error();
	return 0;
}
static int k_set_device_class(const char *adapter, unsigned device_class)
{
	kn_bdaddr a;
	if (device_class > 0xffffff)
		return api_fail(EINVAL, "set_device_class: 0x%x is more than 24 bits", device_class);
	int dev = kn_resolve_adapter(adapter, &a, "set_device_class");
	if (dev < 0 || kn_hci_write_class(dev, device_class, "set_device_class") < 0)
		return -1;
	api_clear_error();
	return 0; /* bluetoothd may write its own (main.conf Class=) when it next powers the adapter */
}
static int k_set_pairing(const char *adapter, const struct btsock_pairing *s) { return pairing_is_bluetoothd("set_pairing"); }
static int k_set_pin(const char *adapter, const char *peer, const char *pin) { return pairing_is_bluetoothd("set_pin"); }
static int k_agent_confirm(const char *adapter, const char *peer, bool accept) { return pairing_is_bluetoothd("agent_confirm"); }
static int k_agent_passkey(const char *adapter, const char *peer, long passkey) { return pairing_is_bluetoothd("agent_passkey"); }
static int k_agent_pin(const char *adapter, const char *peer, const char *pin) { return pairing_is_bluetoothd("agent_pin"); }
static int k_pair(const char *adapter, const char *peer, int timeout_ms) { return pairing_is_bluetoothd("pair"); }
static int k_unpair(const char *adapter, const char *peer) { return pairing_is_bluetoothd("unpair"); }
static int k_paired(const char *adapter, struct btsock_bond *out, size_t max) { return pairing_is_bluetoothd("paired"); }

/* Process-wide settings reach every backend; the kernel's have no use for them (bluetoothd
 * has the agent and the keys; btmon records the kernel's HCI traffic), and must not fail the
 * call for the user-space backend's sake. */
static int k_set_agent(const struct btsock_agent *agent, void *ctx) { return 0; }
static int k_set_snoop(const char *path) { return 0; }
static int k_set_keystore(const char *path) { return 0; }

const btsock_backend btsock_backend_kernel = {
	.name = "Linux kernel",
	.claims_spec = kn_claims_spec,
	.owns_fd = kn_owns_fd,
	.has_adapter = kn_has_adapter,
	.any_adapter = kn_any_adapter,
	.socket = kn_socket,
	.bind = kn_bind,
	.listen = kn_listen,
	.accept = kn_accept,
	.connect = kn_connect,
	.connect_result = kn_connect_result,
	.getsockname = kn_getsockname,
	.getpeername = kn_getpeername,
	.settimeout = kn_settimeout,
	.get_mtu = kn_get_mtu,
	.set_mtu = kn_set_mtu,
	.set_security = kn_set_security,
	.sock_error = kn_sock_error,
	.close = kn_close,
	.advertise_service = kn_advertise_service,
	.stop_advertising = kn_stop_advertising,
	.adapter_open = kn_adapter_open,
	.adapter_close = kn_adapter_close,
	.adapter_info = kn_adapter_info,
	.adapter_secure_connections = k_secure_connections,
	.find_services = kn_find_services,
	.discover = k_discover,
	.lookup_name = k_lookup_name,
	.set_local_name = k_set_local_name,
	.set_device_class = k_set_device_class,
	.set_pairing = k_set_pairing,
	.set_pin = k_set_pin,
	.agent_confirm = k_agent_confirm,
	.agent_passkey = k_agent_passkey,
	.agent_pin = k_agent_pin,
	.pair = k_pair,
	.unpair = k_unpair,
	.paired = k_paired,
	.set_agent = k_set_agent,
	.set_snoop = k_set_snoop,
	.set_keystore = k_set_keystore,
	.shutdown = kn_sock_shutdown,
};
