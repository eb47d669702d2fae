/* api.c - the public calls of include/btsock.h: each picks its backend (backend.h) and hands
 * the call over. No protocol work happens here. Backends: the user-space host stack (unix:,
 * tcp:, serial:, userchan:) and the Linux kernel (hciN). When BTSOCK_ADAPTER is unset and no
 * adapter is open, the kernel backend is the default if the kernel has an adapter that is up. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "api_error.h"
#include "backend.h"
#include "btsock.h"

/* The Linux kernel's Bluetooth sockets and adapters, "hciN" (src/kernel/backend.c), and
 * whether the kernel has an adapter that is up (src/kernel/kadapter.c). */
extern const btsock_backend btsock_backend_kernel;
bool kn_kernel_up(void);

static pthread_once_t api_once = PTHREAD_ONCE_INIT;

/* Every backend lets go of everything at exit (queued data gets its grace, adapters close). */
static void api_init(void) { atexit(btsock_shutdown); }

static const btsock_backend *const backends[] = {
	&btsock_backend_hoststack,
	&btsock_backend_kernel,
};
#define N_BACKENDS (sizeof backends / sizeof backends[0])

/* The backend whose adapter string spec is, or NULL. */
static const btsock_backend *by_spec(const char *spec)
{
	pthread_once(&api_once, api_init);
	for (size_t i = 0; spec && *spec && i < N_BACKENDS; i++)
		if (backends[i]->claims_spec(spec))
			return backends[i];
	return NULL;
}

/* With no adapter string at all: the kernel backend if the kernel has an adapter that is up
 * (next to bluetoothd, as PyBluez works), else the first (whose error names BTSOCK_ADAPTER). */
static const btsock_backend *unnamed_backend(void)
{
	return btsock_backend_kernel.any_adapter() || kn_kernel_up() ? &btsock_backend_kernel : backends[0];
}

static const btsock_backend *default_backend(void)
{
	pthread_once(&api_once, api_init);
	for (size_t i = 0; i < N_BACKENDS; i++)
		if (backends[i]->any_adapter())
			return backends[i];
	const char *spec = getenv("BTSOCK_ADAPTER");
	const btsock_backend *b = by_spec(spec);
	if (b)
		return b;
	return spec && *spec ? backends[0] : unnamed_backend();
}

/* The backend of an adapter named by address ("" or NULL: the default one). An address no
 * backend has open goes to the default backend, which says so in its own words. */
static const btsock_backend *by_adapter(const char *addr)
{
	for (size_t i = 0; addr && *addr && i < N_BACKENDS; i++)
		if (backends[i]->has_adapter(addr))
			return backends[i];
	return default_backend();
}

static const btsock_backend *by_fd(int fd)
{
	pthread_once(&api_once, api_init);
	for (size_t i = 0; fd >= 0 && i < N_BACKENDS; i++)
		if (backends[i]->owns_fd(fd))
			return backends[i];
	return NULL;
}

#define ON_FD(fd, call, member, ...)                                                              \
	do {                                                                                      \
		const btsock_backend *b_ = by_fd(fd);                                             \
		if (!b_)                                                                          \
			return api_fail(EBADF, "%s: %d is not an open btsock socket", call, fd); \
		return b_->member(__VA_ARGS__);                                                   \
	} while (0)

/* ---- sockets */

int btsock_socket(enum btsock_proto proto) { return default_backend()->socket(proto); }
int btsock_bind(int fd, const char *local, unsigned port) { ON_FD(fd, "bind", bind, fd, local, port); }
int btsock_listen(int fd, int backlog) { ON_FD(fd, "listen", listen, fd, backlog); }
int btsock_accept(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port) { ON_FD(fd, "accept", accept, fd, addr, port); }
int btsock_connect(int fd, const char *addr, unsigned port) { ON_FD(fd, "connect", connect, fd, addr, port); }
int btsock_connect_result(int fd) { ON_FD(fd, "connect_result", connect_result, fd); }
int btsock_getsockname(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port)
{
	ON_FD(fd, "getsockname", getsockname, fd, addr, port);
}
int btsock_getpeername(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port)
{
	ON_FD(fd, "getpeername", getpeername, fd, addr, port);
}
int btsock_settimeout(int fd, int timeout_ms) { ON_FD(fd, "settimeout", settimeout, fd, timeout_ms); }
int btsock_setblocking(int fd, bool blocking) { return btsock_settimeout(fd, blocking ? -1 : 0); }
int btsock_get_mtu(int fd, unsigned *incoming, unsigned *outgoing)
{
	ON_FD(fd, "get_mtu", get_mtu, fd, incoming, outgoing);
}
int btsock_set_mtu(int fd, unsigned incoming) { ON_FD(fd, "set_mtu", set_mtu, fd, incoming); }
int btsock_set_security(int fd, enum btsock_security level) { ON_FD(fd, "set_security", set_security, fd, level); }
int btsock_sock_error(int fd) { ON_FD(fd, "sock_error", sock_error, fd); }
int btsock_close(int fd) { ON_FD(fd, "close", close, fd); }
int btsock_advertise_service(int fd, const struct btsock_service *svc)
{
	ON_FD(fd, "advertise_service", advertise_service, fd, svc);
}
int btsock_stop_advertising(int fd) { ON_FD(fd, "stop_advertising", stop_advertising, fd); }

/* ---- adapters */

int btsock_adapter_open(const char *name, char addr[BTSOCK_ADDRSTRLEN])
{
	const char *spec = name && *name ? name : getenv("BTSOCK_ADAPTER");
	const btsock_backend *b = by_spec(spec);
	if (!b)
		b = spec && *spec ? backends[0] : unnamed_backend();
	return b->adapter_open(name, addr);
}

int btsock_adapter_close(const char *addr) { return by_adapter(addr)->adapter_close(addr); }
int btsock_adapter_info(const char *addr, struct btsock_adapter_info *info)
{
	return by_adapter(addr)->adapter_info(addr, info);
}
int btsock_adapter_secure_connections(const char *addr) { return by_adapter(addr)->adapter_secure_connections(addr); }

int btsock_find_services(const char *addr, const char *uuid, const char *name, struct btsock_service_info **out)
{
	return default_backend()->find_services(addr, uuid, name, out);
}
int btsock_discover(const char *adapter, int duration_ms, bool lookup_names, struct btsock_device *out, size_t max)
{
	return by_adapter(adapter)->discover(adapter, duration_ms, lookup_names, out, max);
}
int btsock_lookup_name(const char *addr, int timeout_ms, char name[BTSOCK_NAMESTRLEN])
{
	return default_backend()->lookup_name(addr, timeout_ms, name);
}
int btsock_set_local_name(const char *adapter, const char *name) { return by_adapter(adapter)->set_local_name(adapter, name); }
int btsock_set_device_class(const char *adapter, unsigned device_class)
{
	return by_adapter(adapter)->set_device_class(adapter, device_class);
}

/* ---- pairing */

int btsock_set_pairing(const char *adapter, const struct btsock_pairing *settings)
{
	return by_adapter(adapter)->set_pairing(adapter, settings);
}
int btsock_set_pin(const char *adapter, const char *peer, const char *pin)
{
	return by_adapter(adapter)->set_pin(adapter, peer, pin);
}
int btsock_agent_confirm(const char *adapter, const char *peer, bool accept)
{
	return by_adapter(adapter)->agent_confirm(adapter, peer, accept);
}
int btsock_agent_passkey(const char *adapter, const char *peer, long passkey)
{
	return by_adapter(adapter)->agent_passkey(adapter, peer, passkey);
}
int btsock_agent_pin(const char *adapter, const char *peer, const char *pin)
{
	return by_adapter(adapter)->agent_pin(adapter, peer, pin);
}

int btsock_pair(const char *adapter, const char *peer, int timeout_ms)
{
	return by_adapter(adapter)->pair(adapter, peer, timeout_ms);
}
int btsock_unpair(const char *adapter, const char *peer) { return by_adapter(adapter)->unpair(adapter, peer); }
int btsock_paired(const char *adapter, struct btsock_bond *out, size_t max)
{
	return by_adapter(adapter)->paired(adapter, out, max);
}

/* ---- process-wide settings: every backend gets them */

/* A process-wide setting goes to every backend; -1 if one refused it (its message stays). */
#define TO_EVERY_BACKEND(member, ...)                                  \
	do {                                                           \
		int rc_ = 0;                                           \
		for (size_t i = 0; i < N_BACKENDS; i++)                \
			if (backends[i]->member(__VA_ARGS__) < 0)      \
				rc_ = -1;                              \
		return rc_;                                            \
	} while (0)

int btsock_set_agent(const struct btsock_agent *agent, void *ctx) { TO_EVERY_BACKEND(set_agent, agent, ctx); }
int btsock_set_snoop(const char *path) { TO_EVERY_BACKEND(set_snoop, path); }
int btsock_set_keystore(const char *path) { TO_EVERY_BACKEND(set_keystore, path); }

void btsock_shutdown(void)
{
	for (size_t i = 0; i < N_BACKENDS; i++)
		backends[i]->shutdown();
}
