/* backend.h - the seam between the public API (include/btsock.h) and what implements it
 * (internal).
 *
 * Every public call goes through a backend. A backend is chosen
 *   - for a call on a socket: by the fd (the backend whose socket it is);
 *   - for a call naming an adapter by address: by the backend that has that adapter open;
 *   - for btsock_adapter_open(name): by the adapter string (claims_spec);
 *   - otherwise (btsock_socket, "" = the default adapter): the default backend, which is the
 *     backend of the first open adapter, else the one claiming BTSOCK_ADAPTER, else the first.
 * Backends: src/runtime (btsock's own host stack in user space: unix:, tcp:, serial:,
 * userchan:). A backend sets btsock_error() with api_fail() like any public call, and its
 * members have the semantics documented in include/btsock.h. */
#ifndef BTSOCK_API_BACKEND_H
#define BTSOCK_API_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "btsock.h"

typedef struct btsock_backend {
	const char *name;
	/* Selection. */
	bool (*claims_spec)(const char *spec);
	bool (*owns_fd)(int fd);
	bool (*has_adapter)(const char *addr); /* an open adapter with this address */
	bool (*any_adapter)(void);             /* an open adapter at all */
	/* Sockets. */
	int (*socket)(enum btsock_proto proto);
	int (*bind)(int fd, const char *local, unsigned port);
	int (*listen)(int fd, int backlog);
	int (*accept)(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port);
	int (*connect)(int fd, const char *addr, unsigned port);
	int (*connect_result)(int fd);
	int (*getsockname)(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port);
	int (*getpeername)(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port);
	int (*settimeout)(int fd, int timeout_ms);
	int (*get_mtu)(int fd, unsigned *incoming, unsigned *outgoing);
	int (*set_mtu)(int fd, unsigned incoming);
	int (*set_security)(int fd, enum btsock_security level);
	int (*sock_error)(int fd);
	int (*close)(int fd);
	int (*advertise_service)(int fd, const struct btsock_service *svc);
	int (*stop_advertising)(int fd);
	/* Adapters. */
	int (*adapter_open)(const char *name, char addr[BTSOCK_ADDRSTRLEN]);
	int (*adapter_close)(const char *addr);
	int (*adapter_info)(const char *addr, struct btsock_adapter_info *info);
	int (*adapter_secure_connections)(const char *addr);
	int (*find_services)(const char *addr, const char *uuid, const char *name, struct btsock_service_info **out);
	int (*discover)(const char *adapter, int duration_ms, bool lookup_names, struct btsock_device *out,
			size_t max);
	int (*lookup_name)(const char *addr, int timeout_ms, char name[BTSOCK_NAMESTRLEN]);
	int (*set_local_name)(const char *adapter, const char *name);
	int (*set_device_class)(const char *adapter, unsigned device_class);
	int (*set_pairing)(const char *adapter, const struct btsock_pairing *settings);
	int (*set_pin)(const char *adapter, const char *peer, const char *pin);
	int (*agent_confirm)(const char *adapter, const char *peer, bool accept);
	int (*agent_passkey)(const char *adapter, const char *peer, long passkey);
	int (*agent_pin)(const char *adapter, const char *peer, const char *pin);
	int (*pair)(const char *adapter, const char *peer, int timeout_ms);
	int (*unpair)(const char *adapter, const char *peer);
	int (*paired)(const char *adapter, struct btsock_bond *out, size_t max);
	/* Process-wide settings, given to every backend. */
	int (*set_agent)(const struct btsock_agent *agent, void *ctx);
	int (*set_snoop)(const char *path);
	int (*set_keystore)(const char *path);
	void (*shutdown)(void);
} btsock_backend;

/* The user-space host stack (src/runtime/backend.c). */
extern const btsock_backend btsock_backend_hoststack;

#endif
