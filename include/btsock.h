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
 * btsock_adapter_open() opens further adapters; a socket uses the one whose address it is
 * bound to, or the default one. BTSOCK_SNOOP=FILE records all HCI traffic in btsnoop format
 * (btmon -r FILE, Wireshark).
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

/* Closes a socket and disconnects it (plain close() works too, but returns at once). */
int btsock_close(int fd);

/* The sentence explaining this thread's last btsock failure ("" if none). */
const char *btsock_error(void);

/* --- Adapters --- */

/* Opens a controller (see the adapter names above; NULL or "" = BTSOCK_ADAPTER) with its own
 * host stack, and writes its address to addr. Each call opens a new stack: two calls on
 * "unix:/tmp/bt-server-bredr" give two emulated controllers. The first adapter opened becomes
 * the default one. */
int btsock_adapter_open(const char *name, char addr[BTSOCK_ADDRSTRLEN]);

/* Closes an adapter opened by btsock_adapter_open(), disconnecting its sockets. */
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

/* Closes every adapter: queued data gets up to 2 s to leave, then every socket ends and all
 * memory is freed. Runs by itself at exit (atexit); call it earlier to release everything. */
void btsock_shutdown(void);

/* Records all HCI traffic of adapters opened after this call to path in btsnoop format
 * (NULL stops recording for new adapters). BTSOCK_SNOOP=FILE does the same. */
int btsock_set_snoop(const char *path);

#ifdef __cplusplus
}
#endif

#endif
