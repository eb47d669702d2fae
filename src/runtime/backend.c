/* backend.c - the user-space host stack as a backend of the public API (src/api/backend.h). */
#include "api/backend.h"
#include "runtime.h"

#include <string.h>

/* The adapter strings of src/transport; anything else is left to other backends (the
 * transport's own parser names the valid forms when no backend claims a string). */
static bool claims_spec(const char *spec)
{
	static const char *const kinds[] = { "unix:", "tcp:", "serial:", "userchan:" };
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (strncmp(spec, kinds[i], strlen(kinds[i])) == 0)
			return true;
	return false;
}

/* Every adapter closes (its sockets fail and detach), then the sockets the application never
 * closed leave the registry. */
static void shutdown_all(void)
{
	rt_adapters_close_all();
	rt_sock_release_all();
}

const btsock_backend btsock_backend_hoststack = {
	.name = "host stack",
	.claims_spec = claims_spec,
	.owns_fd = rt_owns_fd,
	.has_adapter = rt_has_adapter,
	.any_adapter = rt_any_adapter,
	.socket = rt_socket,
	.bind = rt_bind,
	.listen = rt_listen,
	.accept = rt_accept,
	.connect = rt_connect,
	.connect_result = rt_connect_result,
	.getsockname = rt_getsockname,
	.getpeername = rt_getpeername,
	.settimeout = rt_settimeout,
	.get_mtu = rt_get_mtu,
	.set_mtu = rt_set_mtu,
	.set_security = rt_set_security,
	.sock_error = rt_sock_error,
	.close = rt_close,
	.advertise_service = rt_advertise_service,
	.stop_advertising = rt_stop_advertising,
	.adapter_open = rt_adapter_open,
	.adapter_close = rt_adapter_close,
	.adapter_info = rt_adapter_info,
	.adapter_secure_connections = rt_adapter_secure_connections,
	.find_services = rt_find_services,
	.discover = rt_discover,
	.lookup_name = rt_lookup_name,
	.set_local_name = rt_set_local_name,
	.set_device_class = rt_set_device_class,
	.set_pairing = rt_set_pairing,
	.set_pin = rt_set_pin,
	.agent_confirm = rt_agent_confirm,
	.agent_passkey = rt_agent_passkey,
	.agent_pin = rt_agent_pin,
	.pair = rt_pair,
	.unpair = rt_unpair,
	.paired = rt_paired,
	.set_agent = rt_set_agent,
	.set_snoop = rt_set_snoop,
	.set_keystore = rt_set_keystore,
	.shutdown = shutdown_all,
};
