/* runtime.h - the user-space backend behind include/btsock.h (internal): btsock's own host
 * stack (src/stack) on a transport, driven by one loop thread per adapter.
 *
 * Ownership. An adapter's loop thread owns its stack and every socket attached to it: only
 * that thread touches them. A public call that needs the stack posts a request (rt_call) to the
 * adapter's queue, wakes the loop through an eventfd and sleeps on a completion of its own; the
 * loop runs the request's step function between rounds. A step that must wait for the stack
 * (connect, accept, a close that flushes, an SDP query) returns RT_PENDING: the loop runs it
 * again after every round until it finishes or its deadline passes. There is no process-wide
 * lock: two adapters' loops never wait for each other. The only shared state is the registry
 * (open adapters, and sockets by application fd) and the process-wide settings, each under a
 * small mutex that is never held across protocol work or a wait.
 *
 * Lifetimes: one rule, reference counts. A socket is held by the registry (while the
 * application may name its fd), by its adapter's socket list (while attached) and by every call
 * in progress on it; an adapter by the registry (while open), by each attached socket and by
 * every call in progress on it. Whoever drops the last reference frees the memory; stack
 * objects (channels, DLCs) are only ever released by the loop. Closing an adapter completes every
 * request still queued or pending on it with ENETDOWN, detaches its sockets, stops the loop,
 * then frees the stack; the adapter record lives on while anything still refers to it.
 *
 * Faults: a channel ended by a fault (closed callback with err != 0, or the adapter gone)
 * keeps its reason in bsock.conn_err for btsock_sock_error() and shuts rt_fd's read side, so
 * the application's writes fail with EPIPE while it reads what had arrived. */
#ifndef BTSOCK_RUNTIME_H
#define BTSOCK_RUNTIME_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "api/api_error.h"
#include "btsock.h"
#include "core/bt_addr.h"
#include "stack/stack.h"
#include "transport/btsnoop.h"
#include "transport/transport.h"

#define RT_L2Q (64 * 1024)       /* L2CAP SDUs the application has not read yet */
#define RT_SOCKBUF (256 * 1024)  /* socketpair buffer size */

#define rt_fail api_fail
#define rt_clear_error api_clear_error

typedef struct adapter adapter;
typedef struct bsock bsock;

typedef enum {
	S_NEW,
	S_BOUND,
	S_LISTENING,
	S_CONNECTING,
	S_CONNECTED,
	S_FAILED, /* connect failed: conn_err says why */
	S_CLOSED, /* the channel ended (peer, link, or us) */
} sock_state;

/* A socket. Fields marked [opt] are the application's options: set under `mu` while the socket
 * is not attached to an adapter, by its loop afterwards (read by the loop in either case, since
 * attaching happens under `mu` before the first request reaches the loop). Everything below
 * [loop] belongs to the adapter's loop thread. */
struct bsock {
	atomic_int refs;
	pthread_mutex_t mu;
	int app_fd, rt_fd;  /* immutable */
	dev_t dev;
	ino_t ino;
	enum btsock_proto proto;
	adapter *ad;        /* set once, under mu, when the socket attaches (a reference) */
	atomic_int timeout_ms; /* [opt] connect/accept/close; -1 forever, 0 non-blocking */
	uint16_t imtu;      /* [opt] */
	uint8_t sec_level;  /* [opt] l2cap_sec_level (btsock_set_security) */

	/* [loop] */
	bool listed;        /* in ad->socks */
	sock_state state;
	uint16_t port;      /* local PSM / channel (0: none yet) */
	bool registered;    /* port registered with l2cap_listen / rfcomm_listen */
	bool bound;         /* btsock_bind succeeded */
	bt_addr peer;
	uint16_t peer_port;
	int sec_reason;     /* hci_sec_reason of a security failure that ended the channel */
	int conn_err;       /* negative errno of a failed connect / ended channel (0: orderly) */
	bool rd_shut;       /* a fault ended the channel: rt_fd's read side is shut, so the
			     * application's writes fail with EPIPE while it reads the rest */
	size_t unsent;      /* stream bytes the application wrote that never left (fault) */

	l2cap_chan *ch;
	rfcomm_dlc *dlc;
	bool want_in;       /* poll rt_fd for data from the application */
	bool want_out;      /* bytes wait to go into rt_fd */
	bool peer_done;     /* the channel ended: after the backlog drains, shut rt_fd */
	bool shut;          /* rt_fd has been shut down */
	bool app_eof;       /* the application will send nothing more */
	bool app_gone;      /* the application closed its fd (POLLHUP) */
	bool zombie;        /* to be unlisted by the loop */
	int held;           /* requests pending on this socket: the loop must not unlist it */
	uint64_t alive_checked; /* when app_fd was last checked for a close (ms) */
	size_t filler;      /* bytes/messages written to block POLLOUT during a non-blocking connect */

	uint8_t *stage;     /* L2CAP: RT_L2Q queue of [len le16][sdu] the application has not read */
	size_t stage_off, stage_len;
	unsigned long dropped; /* L2CAP SDUs dropped because the application did not read */
	uint32_t sdp_handle; /* the service record advertised for this socket (0: none) */

	/* listening */
	int backlog;
	bsock *parent;      /* for a connection not yet accepted (never handed out) */
	bool queued;        /* ...and already in parent->accq */
	bsock *accq[64];
	int accq_n;
	int pending;        /* children accepted by the core, not yet open */

	bsock *next;        /* in ad->socks [loop] */
	bsock *reg_next;    /* in the registry [registry lock] */
};

/* A request posted to an adapter's loop (rt_call). */
typedef enum {
	RT_START,   /* first run */
	RT_CHECK,   /* after a loop round: done yet? */
	RT_EXPIRED, /* the deadline passed: give up (cancel what was started), return the result */
	RT_DOWN,    /* the adapter is closing or its loop stops: cancel, return the result */
} rt_why;
#define RT_PENDING INT_MIN
/* Runs on the adapter's loop thread. Returns the call's result, or RT_PENDING (not for
 * RT_EXPIRED / RT_DOWN) to be run again after the next round. Messages set with rt_fail reach
 * the calling thread's btsock_error(). */
typedef int (*rt_step_fn)(adapter *ad, void *arg, rt_why why);

typedef struct rt_req rt_req;

/* What an adapter's loop does with its sockets: the socket layer's hooks (socket.c), given to
 * the adapter when its first socket attaches, so that the loop below does not call up into the
 * layer that calls it. */
typedef struct {
	void (*poll_events)(bsock *s, short *events); /* what to poll rt_fd for this round */
	void (*io)(bsock *s, short revents);           /* rt_fd polled ready */
	void (*service)(bsock *s);                     /* once per round */
	void (*gone)(bsock *s, int err);               /* the controller died */
	void (*unlist)(bsock *s);                      /* leaving ad->socks (reaped) */
	void (*ended)(bsock *s);                       /* the loop ends */
} rt_sock_hooks;

struct adapter {
	atomic_int refs;
	char name[128];
	bt_addr addr;       /* fixed once open */
	bt_transport *tr;   /* [loop] */
	bt_stack *st;       /* [loop] */
	pthread_t thread;
	bool thread_started;
	int wake_fd;        /* eventfd: requests and stop */
	uint8_t *l2buf;     /* [loop] one L2CAP SDU from an application */

	/* Request queue [qmu]. */
	pthread_mutex_t qmu;
	rt_req *queue, **queue_tail;
	bool q_closed;      /* the loop has ended: rt_call fails at once */
	bool stop;          /* the closer asks the loop to end */
	char down_msg[256]; /* why requests fail once q_closed */

	/* [loop] */
	rt_req *waiting;    /* requests whose step returned RT_PENDING */
	rt_req *cur;        /* the request whose step runs now */
	bsock *socks;       /* attached sockets */
	const rt_sock_hooks *sock_hooks; /* set with the first socket (socks empty before) */
	bool ready, dead;
	bool closing;       /* closing: new requests fail (ENETDOWN), sockets flush and end */
	bool rx_slow;       /* a receive-coalescing wait brought nothing: poll for the rest of
			     * the PDU being reassembled */
	atomic_bool gone;   /* dead or closing, readable by any thread (to pick a default adapter) */
	int ready_err;
	char err[256];      /* why the adapter died (written by the loop before `gone`) */
	struct ks_writer *keys; /* writes keys from pairings to the keystore it was opened with */
	uint64_t now;       /* the loop's clock of this round */

	adapter *next;      /* in the registry [registry lock] */
};

uint64_t rt_now_ms(void);

/* ---- requests (adapter.c) */
/* Posts step to ad's loop and waits for its result; timeout_ms (-1: none) sets the deadline
 * after which the step runs with RT_EXPIRED. Called from the loop thread itself (an agent
 * callback answering at once), the step runs inline and may not pend. On an adapter whose loop
 * has ended: -1, ENETDOWN, with a sentence prefixed by call. */
int rt_call(adapter *ad, rt_step_fn step, void *arg, int timeout_ms, const char *call);
/* From a step: its deadline becomes ms from now (-1: none). A step run with RT_EXPIRED that
 * moved its deadline may return RT_PENDING (a close that goes on to its next phase). */
void rt_set_deadline(adapter *ad, int ms);
/* A loop-side operation that reports through a callback setting *done (an SDP query, an
 * inquiry, a name request, an HCI command): start(ad, ctx) begins it (0 or -errno), and
 * cancel(ad, ctx) (may be NULL) withdraws it so the callback never runs after the wait.
 * Returns 0 when done, start's -errno, -ETIMEDOUT, or -ENETDOWN (adapter closing or dead). */
typedef struct {
	int (*start)(adapter *ad, void *ctx);
	void (*cancel)(adapter *ad, void *ctx);
	const bool *done;
	void *ctx;
} rt_op;
int rt_op_run(adapter *ad, const rt_op *op, int timeout_ms, const char *call);

/* ---- adapters and the registry (adapter.c) */
/* The default adapter (opens BTSOCK_ADAPTER lazily), or the open adapter with that address;
 * referenced (rt_adapter_put when done). NULL with the message prefixed by call. */
adapter *rt_default_adapter(const char *call);
adapter *rt_adapter_arg(const char *addr, const char *call);
adapter *rt_adapter_by_addr(const bt_addr *a); /* referenced, or NULL */
void rt_adapter_get(adapter *ad);
/* Runs step on every open adapter's loop, one after the other. */
void rt_for_each_adapter(rt_step_fn step, void *arg, const char *call);
void rt_adapter_put(adapter *ad);
/* ENETDOWN with the adapter's sentence when it is closing or dead; 0 otherwise. Loop only. */
int rt_adapter_down(adapter *ad, const char *call);
void rt_snoop_write(const uint8_t *pkt, size_t len, bool incoming);

/* Pairing (pairing.c): gives a newly opened adapter's GAP the process-wide agent. Loop thread. */
void rt_agent_apply(adapter *ad);

/* ---- sockets (socket.c) */
/* The socket behind an application fd, referenced (rt_sock_put), or NULL. */
bsock *rt_sock_get(int fd);
void rt_sock_put(bsock *s);
/* Attaches s to ad (a reference of ad is taken); 0, or -1 with EINVAL when s is attached to
 * another adapter. */
int rt_sock_attach(bsock *s, adapter *ad, const char *call);
/* Registers a bound socket's port with the core (port 0: the core picks one). 0 or -1. Loop. */
int rt_sock_register(bsock *s, const char *call);
/* Loop side (also reached by the adapter's loop through rt_sock_hooks). */
void rt_sock_poll_events(bsock *s, short *events);
void rt_sock_io(bsock *s, short revents);
void rt_sock_service(bsock *s);
void rt_sock_adapter_gone(bsock *s, int err);
void rt_sock_unlist(bsock *s); /* releases its stack objects, leaves ad->socks; the caller unlinks */
/* The adapter's loop ends: s fails (ENETDOWN), is unlisted, and its runtime end closes. */
void rt_sock_adapter_ended(bsock *s);
/* Closes every adapter (btsock_shutdown's adapter part; adapter.c). */
void rt_adapters_close_all(void);
/* Every socket still in the registry leaves it (btsock_shutdown, after every adapter closed). */
void rt_sock_release_all(void);

/* ---- the backend's entry points: the public calls of include/btsock.h for this backend
 * (backend.c puts them in its table; src/api dispatches to them) */
bool rt_has_adapter(const char *addr);
bool rt_any_adapter(void);
bool rt_owns_fd(int fd);
int rt_socket(enum btsock_proto proto);
int rt_bind(int fd, const char *local, unsigned port);
int rt_listen(int fd, int backlog);
int rt_accept(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port);
int rt_connect(int fd, const char *addr, unsigned port);
int rt_connect_result(int fd);
int rt_getsockname(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port);
int rt_getpeername(int fd, char addr[BTSOCK_ADDRSTRLEN], unsigned *port);
int rt_settimeout(int fd, int timeout_ms);
int rt_get_mtu(int fd, unsigned *incoming, unsigned *outgoing);
int rt_set_mtu(int fd, unsigned incoming);
int rt_set_security(int fd, enum btsock_security level);
int rt_sock_error(int fd);
int rt_close(int fd);
int rt_advertise_service(int fd, const struct btsock_service *svc);
int rt_stop_advertising(int fd);
int rt_adapter_open(const char *name, char addr[BTSOCK_ADDRSTRLEN]);
int rt_adapter_close(const char *addr);
int rt_adapter_info(const char *addr, struct btsock_adapter_info *info);
int rt_adapter_secure_connections(const char *addr);
int rt_find_services(const char *addr, const char *uuid, const char *name, struct btsock_service_info **out);
int rt_discover(const char *adapter, int duration_ms, bool lookup_names, struct btsock_device *out, size_t max);
int rt_lookup_name(const char *addr, int timeout_ms, char name[BTSOCK_NAMESTRLEN]);
int rt_set_local_name(const char *adapter, const char *name);
int rt_set_device_class(const char *adapter, unsigned device_class);
int rt_set_pairing(const char *adapter, const struct btsock_pairing *settings);
int rt_set_pin(const char *adapter, const char *peer, const char *pin);
int rt_set_agent(const struct btsock_agent *agent, void *ctx);
int rt_agent_confirm(const char *adapter, const char *peer, bool accept);
int rt_agent_passkey(const char *adapter, const char *peer, long passkey);
int rt_agent_pin(const char *adapter, const char *peer, const char *pin);
int rt_pair(const char *adapter, const char *peer, int timeout_ms);
int rt_unpair(const char *adapter, const char *peer);
int rt_paired(const char *adapter, struct btsock_bond *out, size_t max);
int rt_set_snoop(const char *path);
int rt_set_keystore(const char *path);

#endif
