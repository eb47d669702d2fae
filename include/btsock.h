/* btsock.h - Bluetooth Classic sockets for C.
 *
 * The socket model of PyBluez, in C. A server:
 *
 *     int s = btsock_socket(BTSOCK_RFCOMM);
 *     btsock_bind(s, "", 1);                 // "" = any local adapter, channel 1
 *     btsock_listen(s, 1);
 *     char addr[BTSOCK_ADDRSTRLEN];
 *     int c = btsock_accept(s, addr, NULL);  // c is a connected file descriptor
 *     ssize_t n = recv(c, buf, 1024, 0);
 *
 * and a client:
 *
 *     int s = btsock_socket(BTSOCK_RFCOMM);
 *     btsock_connect(s, "01:23:45:67:89:AB", 1);
 *     send(s, "hello!", 6, 0);
 *
 * Every socket is a real file descriptor: read/write/send/recv/poll/close work on it, so it
 * fits any event loop. RFCOMM sockets carry a byte stream (like SOCK_STREAM), L2CAP sockets
 * keep message boundaries (like SOCK_SEQPACKET). A listening socket polls readable when a
 * connection is waiting for btsock_accept(); a non-blocking connect polls writable when done
 * (then btsock_connect_result() says how it went).
 *
 * Errors: every call returns -1 and sets errno, and btsock_error() returns a sentence that
 * says what went wrong ("connect to 00:AA:01:00:00:00 channel 3: connection refused: nobody
 * listens on that channel"), kept per thread until the next failing btsock call.
 *
 * Adapters. By default btsock runs its own host stack in this process on the controller named
 * by the environment variable BTSOCK_ADAPTER:
 *     unix:PATH                 H4 over a UNIX stream socket (BlueZ btvirt: /tmp/bt-server-bredr)
 *     tcp:HOST:PORT             H4 over TCP
 *     serial:DEVICE[@BAUD]      H4 over a UART or pty (default 115200 baud, 8N1, RTS/CTS)
 *     userchan:hciN             the Linux HCI user channel (takes hciN away from the kernel)
 * or uses the Linux kernel's own Bluetooth stack, next to bluetoothd:
 *     hciN                      the kernel adapter hciN; also the default when BTSOCK_ADAPTER
 *                               is unset and the kernel has an adapter that is up
 * On hciN a btsock socket IS the kernel's AF_BLUETOOTH socket, so read/recv behave as the
 * kernel's do: a channel the peer closed reads ECONNRESET (after the data) rather than end of
 * file, and on Linux 6.1 kernels up to at least Debian's 6.1.0-54 a blocking recv() on an
 * L2CAP socket can hang for good while data arrives (a kernel locking bug): poll() for POLLIN
 * before each recv(), or use a timeout (btsock_settimeout). Records are published through
 * bluetoothd's D-Bus API (no --compat needed), and devices are discovered through it too (by
 * the kernel's own inquiry when bluetoothd does not run), and so is the local name; name
 * requests and the device class go to the controller directly (a raw HCI socket: root or
 * CAP_NET_RAW); pairing is bluetoothd's agent's job, and the pairing calls fail with ENOTSUP.
 * btsock_adapter_open() opens further adapters; a socket uses the one whose address it is
 * bound to, or the default one. BTSOCK_SNOOP=FILE records all HCI traffic in btsnoop format
 * (btmon -r FILE, Wireshark); records reach the file within about a second, and all of them
 * once the adapter is closed.
 *
 * A connection that ends reads as end of file; btsock_sock_error() tells an orderly close by
 * the peer (0) from a lost link (ECONNRESET, ETIMEDOUT, ENETDOWN). See there.
 *
 * Thread safety: all calls may be made from any thread. */
#ifndef BTSOCK_H
#define BTSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BTSOCK_VERSION "0.1.0"

/* Socket protocols for btsock_socket(). */
enum btsock_proto {
	BTSOCK_L2CAP = 0,  /* port = PSM: odd, 0x0001-0xFFFF, the upper byte's lowest bit 0 */
	BTSOCK_RFCOMM = 3, /* port = server channel 1-30 */
};

/* "01:23:45:67:89:AB" and its NUL. */
#define BTSOCK_ADDRSTRLEN 18

/* Creates an unconnected socket. Returns its file descriptor, or -1. */
int btsock_socket(enum btsock_proto proto);

/* Binds to a local adapter and port. local: "" for the default adapter, or the address of an
 * adapter opened with btsock_adapter_open(). port 0 picks a free one (btsock_getsockname()
 * tells which). A client may bind to choose its adapter before btsock_connect(). */
int btsock_bind(int fd, const char *local, unsigned port);

/* Marks a bound socket as accepting connections; up to backlog wait for btsock_accept(). */
int btsock_listen(int fd, int backlog);

/* Waits for a connection (honouring non-blocking mode and btsock_settimeout()). Returns the
 * connected socket's fd; the peer's address goes to addr (if not NULL) and its port to *port
 * (if not NULL). */
int btsock_accept(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port);

/* Connects to addr ("01:23:45:67:89:AB") on port. Blocks until connected or failed (or the
 * timeout) unless the socket is non-blocking, then fails with EINPROGRESS and the fd polls
 * writable when the attempt ends. */
int btsock_connect(int fd, const char *addr, unsigned port);

/* After a non-blocking connect: 0 if connected, else -1 with errno/btsock_error() saying why
 * (EINPROGRESS while still under way). */
int btsock_connect_result(int fd);

/* The local / remote address and port of a socket. addr or port may be NULL. */
int btsock_getsockname(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port);
int btsock_getpeername(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port);

/* Timeout in milliseconds for connect, accept, send and recv on this socket; -1 (the default)
 * waits forever, 0 is non-blocking. */
int btsock_settimeout(int fd, int timeout_ms);

/* Blocking (the default) or non-blocking mode: btsock_settimeout(fd, -1) or (fd, 0). */
int btsock_setblocking(int fd, bool blocking);

/* For L2CAP sockets: the largest message we receive (before connect/listen; default 672,
 * at most 4096) and the largest the peer accepts (once connected). For RFCOMM: the frame size. */
int btsock_get_mtu(int fd, unsigned *incoming, unsigned *outgoing);
int btsock_set_mtu(int fd, unsigned incoming);

/* Security level of a socket's channel (before listen or connect; default LOW), in BlueZ's
 * terms. LOW asks nothing, except that as a client a link to a peer whose host supports Secure
 * Simple Pairing is encrypted first (Core Vol 3 Part C 5.2.2); MEDIUM: an encrypted link (any
 * key); HIGH: an authenticated (MITM-protected) key; FIPS: a Secure Connections key. A server's
 * level is enforced before a connection is accepted; a client's link is raised to it before
 * connecting. A refusal fails connect (or ends the connection) with EACCES, and
 * btsock_error() / btsock_sock_error() name the reason (rejected by the user, wrong PIN, no PIN
 * given, no key and pairing not allowed, encryption refused, key too short, authentication failure reported
 * by the peer, key too weak, timeout). */
enum btsock_security { BTSOCK_SEC_LOW, BTSOCK_SEC_MEDIUM, BTSOCK_SEC_HIGH, BTSOCK_SEC_FIPS };
int btsock_set_security(int fd, enum btsock_security level);

/* Pairing settings of an adapter (NULL or "" = the default one). IO capability as announced in
 * Secure Simple Pairing (Core Vol 4 Part E 7.1.29; default NONE, which makes every pairing Just
 * Works); mitm: require MITM protection (an authenticated key), refusing Just Works; the minimum
 * encryption key size, 7-16 octets (0: 7): a shorter key ends the link (KNOB, CVE-2019-9506). */
enum btsock_io_capability { BTSOCK_IO_DISPLAY_ONLY, BTSOCK_IO_DISPLAY_YESNO, BTSOCK_IO_KEYBOARD_ONLY,
			    BTSOCK_IO_NONE, BTSOCK_IO_KEYBOARD_DISPLAY };
struct btsock_pairing {
	enum btsock_io_capability io_capability;
	bool mitm;
	unsigned min_key_size;
};
int btsock_set_pairing(const char *adapter, const struct btsock_pairing *settings);
/* A fixed PIN (1-16 characters) for legacy pairing with a pre-2.1 peer; NULL removes it. */
int btsock_set_pin(const char *adapter, const char *peer, const char *pin);

/* The process-wide pairing agent: asked whenever pairing needs the user. Its callbacks run on the
 * adapter's own thread (two adapters may call at the same time) and must not block: each
 * answers at once by its return value, or returns -1 and answers later with the reply call
 * named (within 25 s, else the request is refused), from another thread or from the callback
 * itself; other btsock calls that wait fail there with EDEADLK. A NULL member refuses that kind of request;
 * btsock_set_agent(NULL, NULL) restores the default: Just Works accepted, nothing else.
 *   confirm: Numeric Comparison; show value (6 digits); 1 accept, 0 refuse
 *            (btsock_agent_confirm);
 *   display_passkey: show passkey for the user to type on the peer; no answer;
 *   enter_passkey: the passkey the peer shows, 0-999999, or -2 to refuse
 *            (btsock_agent_passkey; a negative passkey refuses);
 *   pin: legacy pairing: write the PIN (1-16 characters) into pin and return 1, 0 to refuse
 *            (btsock_agent_pin; NULL refuses). */
struct btsock_agent {
	int (*confirm)(void *ctx, const char *adapter, const char *peer, unsigned value);
	void (*display_passkey)(void *ctx, const char *adapter, const char *peer, unsigned passkey);
	long (*enter_passkey)(void *ctx, const char *adapter, const char *peer);
	int (*pin)(void *ctx, const char *adapter, const char *peer, char pin[17]);
};
int btsock_set_agent(const struct btsock_agent *agent, void *ctx);
int btsock_agent_confirm(const char *adapter, const char *peer, bool accept);
int btsock_agent_passkey(const char *adapter, const char *peer, long passkey);
int btsock_agent_pin(const char *adapter, const char *peer, const char *pin);

/* Bonds. A bond is a link key kept for a peer; with a keystore (btsock_set_keystore) it lasts
 * across runs, without one for as long as the adapter is open, and only if the peer asked to
 * bond. */

/* Pairs with peer on purpose (dedicated bonding, Core Vol 3 Part C 6.5.3): pages it if no link
 * is up, authenticates (pairing through the agent and the adapter's pairing settings if no key
 * is known; a stored key is used, and re-paired if the peer lost it) and encrypts the link
 * (the key size checked), then leaves the link to disconnect once unused (about 2 s). With an
 * IO capability other than NONE it asks MITM protection, so that the key is authenticated where
 * the peer can take part, without requiring it (btsock_pairing.mitm requires it). The key
 * is kept in the keystore when the adapter has one. timeout_ms <= 0: 60 s. 0, or -1 with
 * EACCES and the reason (rejected by the user, wrong passkey, wrong PIN, key too short, ...),
 * EHOSTDOWN (no answer to the page), ETIMEDOUT, ECONNRESET (the link went down), EINVAL. */
int btsock_pair(const char *adapter, const char *peer, int timeout_ms);

/* Forgets the bond with peer: its key in the running stack and its line in the keystore file
 * (rewritten under its lock). A link up with the peer is disconnected, so the next connection
 * authenticates afresh. -1 with ENOENT if there was no bond. */
int btsock_unpair(const char *adapter, const char *peer);

/* One bond of btsock_paired(). key_type as Link_Key_Notification gives it (Core Vol 4 Part E
 * 7.7.24: 0 legacy combination key, 4 unauthenticated, 5 authenticated, 7/8 the same from
 * Secure Connections). */
struct btsock_bond {
	char addr[BTSOCK_ADDRSTRLEN];
	unsigned key_type;
	bool authenticated;      /* MITM-protected (types 5, 8) */
	bool secure_connections; /* types 7, 8 */
};
/* The adapter's bonds: stores at most max of them in out and returns how many there are
 * (more than max if out was too small), or -1. */
int btsock_paired(const char *adapter, struct btsock_bond *out, size_t max);

/* Closes a socket and disconnects it once the data written to it has gone out, waiting as long
 * as the peer keeps taking it (plain close() works too, but returns at once). The fd is closed
 * in any case; -1 with ETIMEDOUT if data was left because the peer took nothing for the
 * socket's timeout (btsock_settimeout; 5 s if none); -1 with ECONNRESET, ETIMEDOUT or
 * ENETDOWN (btsock_sock_error) if the connection was lost while data was on its way. */
int btsock_close(int fd);

/* The sentence explaining this thread's last btsock failure ("" if none). */
const char *btsock_error(void);

/* How a connection ended: the equivalent of getsockopt(SO_ERROR). A btsock socket is one end
 * of a socketpair, so recv() cannot return ECONNRESET: when a connection ends, read()/recv()
 * return what arrived, then 0 (end of file), whether the peer closed it in order or the link
 * was lost. Ask this call which one it was:
 *     0           still connected, or the peer closed the connection in order;
 *     ECONNRESET  the link was lost or reset (the peer vanished, was killed, or disconnected
 *                 the link without closing the channel);
 *     ETIMEDOUT   the link or channel timed out (the peer stopped answering);
 *     ENETDOWN    the adapter went away (its controller died or its connection closed);
 *     another errno for another fault (after a failed connect: why it failed).
 * When it is not 0, btsock_error() (and errno) say the same for this thread, e.g. "link lost to
 * 00:AA:01:00:00:00 channel 1: the link timed out (the peer stopped answering); 4096 bytes
 * written were never sent" (the bytes the application wrote that never left this host, when
 * known; bytes the controller took may still have been lost). The value stays until the socket
 * is closed. -1 with errno EBADF if fd is not a btsock socket.
 * After a fault, write()/send() on the socket fail with EPIPE at once (use MSG_NOSIGNAL or
 * ignore SIGPIPE), while the data that arrived before it can still be read; btsock_close()
 * returns -1 with this errno if the fault came while it waited for written data to leave. */
int btsock_sock_error(int fd);

/* --- Adapters --- */

/* Opens a controller (see the adapter names above; NULL or "" = BTSOCK_ADAPTER) with its own
 * host stack, and writes its address to addr. Each call opens a new stack: two calls on
 * "unix:/tmp/bt-server-bredr" give two emulated controllers. The first adapter opened becomes
 * the default one. */
int btsock_adapter_open(const char *name, char addr[BTSOCK_ADDRSTRLEN]);

/* Closes an adapter opened by btsock_adapter_open(), disconnecting its sockets. Calls blocked
 * on it in other threads (btsock_accept, btsock_connect, btsock_close, searches) fail at once
 * with ENETDOWN ("... the adapter was closed"); the adapter is freed after they returned. */
int btsock_adapter_close(const char *addr);

/* Facts about an open adapter ("" = the default one). */
struct btsock_adapter_info {
	char addr[BTSOCK_ADDRSTRLEN];
	char name[64];             /* how it was opened, e.g. "unix:/tmp/bt-server-bredr" */
	unsigned hci_version;      /* Core spec version code (e.g. 0x0c = 5.3) */
	unsigned hci_revision;
	unsigned lmp_version;
	unsigned manufacturer;
	unsigned acl_mtu;          /* bytes per ACL packet */
	unsigned acl_packets;      /* ACL buffers in the controller */
};
int btsock_adapter_info(const char *addr, struct btsock_adapter_info *info);
/* Whether the adapter runs Secure Connections (Core Vol 4 Part E 7.3.92 accepted during
 * initialisation; then pairing uses P-256 and FIPS-level keys are possible): 1, 0, or -1 with
 * errno (no such adapter). The host stack switches it on wherever the controller supports it;
 * on the kernel backend (hciN) it is the kernel's setting, which bluetoothd switches on where
 * the controller supports it (off without bluetoothd). */
int btsock_adapter_secure_connections(const char *addr);

/* Closes every adapter: queued data gets up to 2 s to leave, then every socket ends and all
 * memory is freed. Runs by itself at exit (atexit); call it earlier to release everything. */
void btsock_shutdown(void);

/* Records all HCI traffic of adapters opened after this call to path in btsnoop format
 * (NULL stops recording for new adapters). BTSOCK_SNOOP=FILE does the same. */
int btsock_set_snoop(const char *path);

/* Keeps link keys in the file at path (NULL: none), for adapters opened after this call;
 * BTSOCK_KEYS=FILE does the same. With a keystore an adapter bonds with peers that pair with
 * it (Secure Simple Pairing, Just Works) and remembers them across runs; without one it
 * pairs each time and asks peers not to bond, since a peer that kept a key we forgot would
 * refuse to pair again. The file holds secrets: it is written with mode 0600. */
int btsock_set_keystore(const char *path);

/* --- Service discovery (SDP) ---
 * UUIDs are text: "1101" or "0x1101" (16-bit), "0000110A" (32-bit) or the 128-bit form
 * "00001101-0000-1000-8000-00805F9B34FB". The seed's dynamic server:
 *     btsock_bind(s, "", 0);  btsock_listen(s, 1);
 *     struct btsock_service svc = { .name = "SampleServer", .service_id = uuid,
 *         .service_classes = (const char *[]){ uuid, BTSOCK_SERIAL_PORT_CLASS }, .n_service_classes = 2,
 *         .profiles = &(struct btsock_profile){ BTSOCK_SERIAL_PORT_PROFILE, 0x0102 }, .n_profiles = 1 };
 *     btsock_advertise_service(s, &svc);
 * and its client:
 *     struct btsock_service_info *found;
 *     int n = btsock_find_services(NULL, uuid, NULL, &found);   // NULL address: every device nearby
 *     if (n > 0) btsock_connect(c, found[0].host, found[0].port);
 *     btsock_free_services(found); */

#define BTSOCK_UUIDSTRLEN 37
#define BTSOCK_SERIAL_PORT_CLASS "1101"   /* Serial Port service class (Assigned Numbers) */
#define BTSOCK_SERIAL_PORT_PROFILE "1101" /* Serial Port Profile */
#define BTSOCK_PUBLIC_BROWSE_GROUP "1002"

/* An entry of BluetoothProfileDescriptorList: a profile UUID and its version (0x0102 = 1.2). */
struct btsock_profile {
	const char *uuid;
	unsigned version;
};

/* What btsock_advertise_service() publishes; the arguments of PyBluez's advertise_service().
 * Every field may be NULL / 0. */
struct btsock_service {
	const char *name;                   /* ServiceName */
	const char *description;            /* ServiceDescription */
	const char *provider;               /* ProviderName */
	const char *service_id;             /* ServiceID; the only class if no class is given */
	const char *const *service_classes; /* ServiceClassIDList, e.g. { id, "1101" } */
	size_t n_service_classes;
	const struct btsock_profile *profiles; /* BluetoothProfileDescriptorList */
	size_t n_profiles;
};

/* Publishes a service record in the SDP server of the socket's adapter: the fields of svc,
 * a ProtocolDescriptorList with the socket's RFCOMM channel (L2CAP + RFCOMM) or L2CAP PSM,
 * and the public browse group. The socket must be bound (btsock_bind, port 0 is fine).
 * Advertising again replaces the record; btsock_stop_advertising() or closing the socket
 * removes it. */
int btsock_advertise_service(int fd, const struct btsock_service *svc);
int btsock_stop_advertising(int fd);

#define BTSOCK_MAX_CLASSES 8
#define BTSOCK_MAX_PROFILES 8

/* A service record found by btsock_find_services(). Text fields are "" when absent. */
struct btsock_service_info {
	char host[BTSOCK_ADDRSTRLEN];  /* the device that holds the record */
	unsigned long handle;          /* ServiceRecordHandle */
	char name[256];
	char description[256];
	char provider[256];
	enum btsock_proto protocol;    /* BTSOCK_RFCOMM or BTSOCK_L2CAP (see has_port) */
	bool has_port;                 /* false: the record names neither RFCOMM nor an L2CAP PSM */
	unsigned port;                 /* RFCOMM channel or L2CAP PSM */
	char service_id[BTSOCK_UUIDSTRLEN];
	unsigned n_service_classes;    /* at most BTSOCK_MAX_CLASSES stored */
	char service_classes[BTSOCK_MAX_CLASSES][BTSOCK_UUIDSTRLEN];
	unsigned n_profiles;           /* at most BTSOCK_MAX_PROFILES stored */
	struct {
		char uuid[BTSOCK_UUIDSTRLEN];
		unsigned version;
	} profiles[BTSOCK_MAX_PROFILES];
	const unsigned char *record;   /* the whole record as received: an SDP attribute list */
	size_t record_len;             /* (data element sequence, Core Vol 3 Part B 4.7.2) */
};

/* Looks for services on the device at addr, or (addr NULL or "") on every device an inquiry
 * finds. uuid: records containing that UUID anywhere (NULL: every record in the public
 * browse group, like `sdptool browse`); name: only records whose ServiceName is exactly
 * that (NULL: any). Returns the number found (0 is not an error) and *out, an array to free
 * with btsock_free_services(); -1 if addr could not be queried (with addr NULL, devices that
 * do not answer are skipped). Takes at most ~10 s per device. */
int btsock_find_services(const char *addr, const char *uuid, const char *name,
			 struct btsock_service_info **out);
void btsock_free_services(struct btsock_service_info *services);

/* Writes a readable account of a record (as in btsock_service_info.record) to buf, like
 * `sdptool browse` does: names, class and profile UUIDs with their assigned names, protocols
 * and ports, then every other attribute. Returns the length it needed (as snprintf), or -1
 * for a malformed record. */
int btsock_describe_record(const unsigned char *record, size_t len, char *buf, size_t cap);

/* --- Device discovery --- */

#define BTSOCK_NAMESTRLEN 249 /* 248 bytes of UTF-8 (Core Vol 4 Part E 7.3.11) and a NUL */

struct btsock_device {
	char addr[BTSOCK_ADDRSTRLEN];
	char name[BTSOCK_NAMESTRLEN]; /* "" if unknown */
	unsigned device_class;        /* Class of Device (24 bits; btsock_describe_class) */
	bool has_rssi;
	int rssi;                     /* dBm */
};

/* Inquires for about duration_ms (rounded up to units of 1.28 s, at most 61.44 s; 0 means
 * 10.24 s) on the default adapter, or the open adapter with address adapter. Names come
 * from extended inquiry responses; with lookup_names, devices without one are asked by a
 * remote name request. Returns how many devices it stored in out (at most max). */
int btsock_discover(const char *adapter, int duration_ms, bool lookup_names,
		    struct btsock_device *out, size_t max);

/* Asks the device at addr for its name (remote name request), waiting at most timeout_ms
 * (<= 0: 10 s). Writes it to name (NUL terminated). */
int btsock_lookup_name(const char *addr, int timeout_ms, char name[BTSOCK_NAMESTRLEN]);

/* "Computer (Laptop); services: Networking, Object Transfer". Returns the length needed. */
int btsock_describe_class(unsigned device_class, char *buf, size_t cap);

/* The local name other devices see (in name requests and inquiry responses) and the Class
 * of Device of an open adapter ("" / NULL = the default one). Adapters are discoverable and
 * connectable from the moment they are open; their name starts as "btsock". */
int btsock_set_local_name(const char *adapter, const char *name);
int btsock_set_device_class(const char *adapter, unsigned device_class);

#ifdef __cplusplus
}
#endif

#endif
