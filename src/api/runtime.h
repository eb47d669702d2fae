/* runtime.h - the socket runtime behind include/btsock.h (internal).
 *
 * An adapter is one host stack (src/stack) on one transport, driven by its own loop thread.
 * A btsock socket is one end of a socketpair: the application holds `app_fd`, the adapter's
 * loop moves bytes between `rt_fd` and the protocol core. Every access to an adapter's stack
 * and to socket state happens under the one runtime lock (rt_lock), by the loop thread or by
 * an API call; API calls that wait (connect, accept, close) sleep on rt_cond, which the loops
 * broadcast after each round of events.
 *
 * Lifetimes: a call that sleeps holds its socket (bsock.held), a query or inquiry holds its
 * adapter (adapter.api_ops). Closing an adapter sets `closing` and broadcasts: every such call
 * gives up with ENETDOWN, and nothing of the adapter is freed until the last has let go. A
 * loop that cannot go on (poll failed) marks its adapter dead before it ends.
 *
 * Faults: a channel ended by a fault (closed callback with err != 0, or the adapter gone)
 * keeps its reason in bsock.conn_err for btsock_sock_error() and shuts rt_fd's read side, so
 * the application's writes fail with EPIPE while it reads what had arrived. */
#ifndef BTSOCK_API_RUNTIME_H
#define BTSOCK_API_RUNTIME_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "btsock.h"
#include "core/bt_addr.h"
#include "stack/stack.h"
#include "transport/btsnoop.h"
#include "transport/transport.h"

#define RT_L2Q (64 * 1024)       /* L2CAP SDUs the application has not read yet */
#define RT_SOCKBUF (256 * 1024)  /* socketpair buffer size */
#define RT_ADAPTER_RX (256 * 1024) /* controller bytes read but not yet given to the stack */

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

struct bsock {
	int app_fd, rt_fd;
	dev_t dev;
	ino_t ino;
	enum btsock_proto proto;
	sock_state state;
	adapter *ad;
	uint16_t port;      /* local PSM / channel (0: none yet) */
	bool registered;    /* port registered with l2cap_listen / rfcomm_listen */
	bool bound;         /* btsock_bind succeeded */
	bt_addr peer;
	uint16_t peer_port;
	int timeout_ms;     /* connect/accept/data; -1 forever, 0 non-blocking */
	uint16_t imtu;
	uint8_t sec_level;  /* l2cap_sec_level (btsock_set_security) */
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
	bool zombie;        /* to be freed by the loop */
	int held;           /* API calls waiting on this socket: the loop must not free it */
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

	bsock *next;        /* in rt_socks */
};

struct adapter {
	char name[128];
	bt_addr addr;
	bt_transport *tr;
	bt_stack *st;
	pthread_t thread;
	bool thread_started;
	int wake[2];
	bool ready, stop, dead;
	bool closing;      /* ad_close has begun: API operations under way give up */
	int api_ops;       /* API calls waiting on an operation of this stack (query, inquiry) */
	int ready_err;
	char err[256];
	struct ks_writer *keys; /* writes keys from pairings to the keystore it was opened with */
	uint8_t *rx;       /* drained from the transport outside the lock */
	size_t rx_len;
	bool rx_eof;
	int rx_err;
	adapter *next;
};

extern pthread_mutex_t rt_lock;
extern pthread_cond_t rt_cond;
extern bsock *rt_socks;
extern adapter *rt_adapters;

/* Every public entry point calls this first: initialises the runtime once, takes rt_lock. */
void rt_enter(void);
uint64_t rt_now_ms(void);
/* Sets errno = err and this thread's message; returns -1. */
int rt_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rt_clear_error(void);

/* Adapters (adapter.c). Called with rt_lock held. */
adapter *rt_default_adapter(void);  /* opens BTSOCK_ADAPTER lazily; NULL + message on failure */
adapter *rt_adapter_by_addr(const bt_addr *a);
/* An adapter named by a public call's argument: NULL or "" = the default one, else the open
 * adapter with that address. NULL + message (prefixed by call) on failure. */
adapter *rt_adapter_arg(const char *addr, const char *call);
void rt_wake(adapter *ad);
int rt_wait(int timeout_ms, uint64_t start); /* cond wait; -ETIMEDOUT when the time is up */
/* An API call waiting for a stack operation (an SDP query, an inquiry...) that reports by
 * callback on the loop: between rt_op_begin and rt_op_end the adapter is not freed.
 * rt_op_wait returns 0 once *done, -ENETDOWN if the adapter died or is closing, -ETIMEDOUT
 * after timeout_ms (-1: none); on failure the caller cancels the operation, then ends. */
void rt_op_begin(adapter *ad);
int rt_op_wait(adapter *ad, const bool *done, int timeout_ms);
void rt_op_end(adapter *ad);

/* Pairing (pairing.c): gives a newly opened adapter's GAP the process-wide agent. rt_lock held. */
void rt_agent_apply(adapter *ad);

/* Sockets (socket.c). Called with rt_lock held. The socket behind an application fd, or NULL. */
bsock *rt_sock_find(int fd);
/* Registers a bound socket's port with the core (port 0: the core picks one). 0 or -1. */
int rt_sock_register(bsock *s, const char *call);
/* Called from an adapter's loop. */
void rt_sock_poll_events(bsock *s, short *events);
void rt_sock_io(bsock *s, short revents);
void rt_sock_service(bsock *s);
void rt_sock_adapter_gone(bsock *s, int err);
void rt_sock_free(bsock *s);

#endif
