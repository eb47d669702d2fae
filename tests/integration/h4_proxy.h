/* h4_proxy.h - a test-only H4 proxy between one host stack and btvirt, to play a faulty
 * controller.
 *
 * The proxy listens on its own UNIX socket (open it as the adapter h4p_adapter()), and for the
 * one host that connects it connects to btvirt's server socket. It deframes H4 both ways (Core
 * spec Vol 4 Part A 2; Vol 4 Part E 5.4) and passes every packet on whole, unless a rule
 * matches it: drop it, delay it (later packets of that direction keep their order behind it),
 * corrupt it (its last octet inverted) or cut the connection there; a filter may rewrite it. Packets can be injected
 * either way between whole packets, and h4p_cut() closes both sides at once (the controller's
 * socket closing). A thread does all I/O; the calls below are thread safe. */
#ifndef BTSOCK_TEST_H4_PROXY_H
#define BTSOCK_TEST_H4_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct h4_proxy h4_proxy;

typedef enum { H4P_TO_CTRL, H4P_TO_HOST } h4p_dir;
typedef enum { H4P_DROP, H4P_DELAY, H4P_CORRUPT, H4P_CUT } h4p_action;

typedef struct {
	h4p_dir dir;
	uint8_t type;       /* H4 indicator (1 command, 2 ACL, 4 event); 0: any */
	int code;           /* command opcode or event code; -1: any */
	h4p_action action;
	unsigned delay_ms;  /* H4P_DELAY */
	unsigned count;     /* packets the rule applies to; 0: every one */
} h4p_rule;

/* A filter sees every whole packet before the rules, with the proxy's lock held: it may
 * rewrite it in place (pkt has room for cap octets; *len may change) and returns false to drop
 * it. It may call h4p_inject() on any proxy (this one too), nothing else of h4_proxy. */
typedef bool (*h4p_filter)(void *ctx, h4_proxy *p, h4p_dir dir, uint8_t *pkt, size_t *len, size_t cap);
void h4p_set_filter(h4_proxy *p, h4p_filter fn, void *ctx);
/* Keep btvirt's connection when the host leaves: the next host to connect gets the same
 * emulated controller (same address), as a process restarting on a real adapter does. What the
 * controller sends while no host is there is dropped. */
void h4p_keep_controller(h4_proxy *p, bool on);
/* How many hosts have connected so far. */
unsigned h4p_hosts(h4_proxy *p);

/* Starts a proxy to the H4 server socket at upstream (btvirt_env.socket_path). NULL on error. */
h4_proxy *h4p_start(const char *upstream);
/* "unix:PATH" of the proxy's own socket, for btsock_adapter_open(). */
const char *h4p_adapter(const h4_proxy *p);
/* Adds a rule (first match wins); returns its id for h4p_matched(). */
int h4p_add_rule(h4_proxy *p, const h4p_rule *r);
void h4p_clear_rules(h4_proxy *p);
/* How many packets rule id has matched. */
unsigned h4p_matched(h4_proxy *p, int id);
/* Queues one whole H4 packet (indicator first) to go out to dir after what is queued (dropped
 * if no host is connected). */
void h4p_inject(h4_proxy *p, h4p_dir dir, const uint8_t *pkt, size_t len);
/* Closes both connections now; returns once they are closed (at most 1 s). */
void h4p_cut(h4_proxy *p);
/* Whether both connections are up (a host connected, btvirt reached, nothing cut). */
bool h4p_connected(h4_proxy *p);
/* The handle of the latest successful Connection Complete (Vol 4 Part E 7.7.3) sent to the
 * host; -1 if none. */
int h4p_last_handle(h4_proxy *p);
/* Packets passed each way so far. */
unsigned long h4p_packets(h4_proxy *p, h4p_dir dir);
void h4p_stop(h4_proxy *p);

#endif
