/* pairing_proxy.h - a test-only pair of controllers that model Secure Simple Pairing's
 * association, over btvirt, which does not.
 *
 * btvirt (BlueZ 5.66) sends both hosts a User Confirmation Request with the value 000000
 * whatever their IO capabilities, never a User Passkey Notification or Request, and always
 * answers Read_Encryption_Key_Size with 16. This proxy (one h4_proxy per host, all of them
 * btvirt's clients) rewrites those steps as a pair of real controllers would (Core Vol 3 Part C
 * 5.2.2.6 for the choice; Vol 2 Part F 4.2 and Vol 4 Part E 7.7.42-43, 7.7.48 for the events):
 *  - Numeric Comparison (and Just Works): one random 6-digit value, the same for both hosts;
 *  - Passkey Entry: the display side's User Confirmation Request becomes a User Passkey
 *    Notification with a random passkey, the keyboard side's a User Passkey Request; the
 *    typed passkey (User_Passkey_Request_Reply, which btvirt does not model) is checked here:
 *    equal, both confirmations go to btvirt for the hosts; not equal (or both keyboards typing
 *    different values), a negative confirmation goes in, so that btvirt ends the pairing with
 *    Simple Pairing Complete, Authentication Failure, to both, as a controller would. The
 *    commands' Command Complete events are turned back into what each host sent.
 *  - Read_Encryption_Key_Size: the size answered to a host can be set (e.g. 5, below
 *    btsock's minimum of 7).
 * The model is taken from the IO_Capability_Request_Reply commands both hosts sent (their own
 * table here, independent of btsock's gap_assoc_model). */
#ifndef BTSOCK_TEST_PAIRING_PROXY_H
#define BTSOCK_TEST_PAIRING_PROXY_H

#include <stdbool.h>

#include "h4_proxy.h"

#define PP_MAX_HOSTS 4

typedef struct pairing_proxy pairing_proxy;

/* What host i was shown and asked so far. */
typedef struct {
	unsigned confirm_requests;   /* User Confirmation Requests passed on (Numeric Comparison / JW) */
	unsigned last_confirm_value; /* the value in the latest */
	unsigned passkey_notifications;
	unsigned last_passkey;       /* the passkey in the latest notification */
	unsigned passkey_requests;
	unsigned wrong_passkeys;     /* Passkey Entries this proxy failed: the passkey typed differed */
	unsigned pairings_completed; /* Simple Pairing Complete, success */
	unsigned pairings_failed;    /* Simple Pairing Complete, failure */
	unsigned key_sizes_rewritten;
	unsigned links_up;           /* ACL links up now (Connection / Disconnection Complete) */
	unsigned ssp_bits_hidden;    /* peer SSP host-support bits cleared (pp_hide_peer_ssp) */
	unsigned sec_blocks;         /* L2CAP Connection Responses "security block" to this host */
	unsigned disconnects;        /* Disconnection Complete events to this host */
	unsigned last_disc_reason;   /* the reason in the latest */
	unsigned auths_dropped;      /* Authentication_Requested kept from btvirt (pp_drop_auth) */
} pp_stats;

/* n_hosts proxies (at most PP_MAX_HOSTS) to btvirt's socket at upstream; each keeps its
 * controller across host restarts (h4p_keep_controller). NULL on error. */
pairing_proxy *pp_start(const char *upstream, int n_hosts);
/* "unix:PATH" of host i's proxy. */
const char *pp_adapter(pairing_proxy *pp, int i);
/* Host i's controller address once its host read it ("" before). */
const char *pp_addr(pairing_proxy *pp, int i);
/* The encryption key size told to host i (1-16), or 0 to pass btvirt's answer on. */
void pp_set_key_size(pairing_proxy *pp, int i, unsigned size);
/* Hide the peer's Secure Simple Pairing host support from host i (on: clear the bit in the
 * page 1 answers it gets, Vol 4 Part E 7.7.34 and 7.7.50): it then takes the peer for a host
 * without SSP, one that accepts channels on an unencrypted link; the controllers still pair
 * with SSP. */
void pp_hide_peer_ssp(pairing_proxy *pp, int i, bool on);
/* Keep host i's next n Authentication_Requested commands (Vol 4 Part E 7.1.15) from btvirt,
 * answering each with Command Status, success (7.7.15), and nothing after: the host waits
 * for an authentication that never comes, as with a controller that lost the command. */
void pp_drop_auth(pairing_proxy *pp, int i, unsigned n);
void pp_get_stats(pairing_proxy *pp, int i, pp_stats *out);
void pp_stop(pairing_proxy *pp);

#endif
