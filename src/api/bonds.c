/* bonds.c - bonds in the public API: btsock_pair (pair with a peer on purpose), btsock_unpair
 * (forget its key, here and in the keystore file) and btsock_paired (list the bonds).
 *
 * The work is GAP's (gap_pair, gap_link_keys, gap_link_key_forget) and the keystore's
 * (ks_delete); this file only finds the adapter, starts the operation on its stack and waits
 * for its callback (rt_op_begin / rt_op_wait / rt_op_end, as discovery.c does), then turns
 * the outcome into errno and a sentence. */
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gap/gap.h"
#include "hci/hci_defs.h"
#include "keystore.h"

#define PAIR_DEFAULT_TIMEOUT_MS 60000 /* a page (10 s) and securing the link (30 s), with slack */
#define UNPAIR_SYNC_MS 1000           /* keys queued for the file before the delete */

static int unlock_ret(int rv)
{
	pthread_mutex_unlock(&rt_lock);
	return rv;
}

/* The adapter and peer of a call; NULL + message on failure (rt_lock held). */
static adapter *target(const char *adapter_addr, const char *peer, bt_addr *p, const char *call)
{
	if (!peer || bt_addr_parse(peer, p) != 0) {
		rt_fail(EINVAL, "%s: '%s' is not a Bluetooth address", call, peer ? peer : "(null)");
		return NULL;
	}
	return rt_adapter_arg(adapter_addr, call);
}

/* ------------------------------------------------------------------ btsock_pair */

typedef struct {
	bool done;
	int err;
	int reason; /* hci_sec_reason */
} pair_ctx;

/* On the adapter's loop, rt_lock held. */
static void pair_done(void *ctx, const bt_addr *peer, int err, int reason)
{
	pair_ctx *c = ctx;
	(void)peer;
	c->done = true;
	c->err = err;
	c->reason = reason;
	pthread_cond_broadcast(&rt_cond);
}

static int pair_fail(const char *peer, int err, int reason, int timeout_ms)
{
	switch (-err) {
	case EACCES:
		return rt_fail(EACCES, "pair with %s: %s", peer, hci_sec_reason_str(reason));
	case EHOSTDOWN:
		return rt_fail(EHOSTDOWN, "pair with %s: no device answered at that address (page timeout)", peer);
	case ETIMEDOUT:
		if (reason == HCI_SEC_TIMEOUT)
			return rt_fail(ETIMEDOUT, "pair with %s: %s", peer, hci_sec_reason_str(reason));
		return rt_fail(ETIMEDOUT, "pair with %s: no outcome within %d ms", peer, timeout_ms);
	case ECONNRESET:
		return rt_fail(ECONNRESET, "pair with %s: the link went down before pairing finished", peer);
	case ENETDOWN:
		return rt_fail(ENETDOWN, "pair with %s: the adapter went away", peer);
	case EBUSY:
		return rt_fail(EBUSY, "pair with %s: a pairing with it is already under way", peer);
	default:
		return rt_fail(-err, "pair with %s: %s", peer, strerror(-err));
	}
}

int btsock_pair(const char *adapter_addr, const char *peer, int timeout_ms)
{
	rt_enter();
	bt_addr p;
	adapter *ad = target(adapter_addr, peer, &p, "pair");
	if (!ad)
		return unlock_ret(-1);
	if (bt_addr_eq(&p, &ad->addr))
		return unlock_ret(rt_fail(EINVAL, "pair: %s is this adapter's own address", peer));
	if (timeout_ms <= 0)
		timeout_ms = PAIR_DEFAULT_TIMEOUT_MS;
	gap *g = bt_stack_gap(ad->st);
	pair_ctx c = { 0 };
	rt_op_begin(ad);
	int rc = gap_pair(g, &p, pair_done, &c);
	if (rc == 0 && (rc = rt_op_wait(ad, &c.done, timeout_ms)) < 0)
		gap_pair_cancel(g, &p); /* no callback into c after this (the stack lives until op_end) */
	rt_op_end(ad);
	if (rc == 0)
		rc = c.err;
	if (rc < 0)
		return unlock_ret(pair_fail(peer, rc, c.reason, timeout_ms));
	rt_clear_error();
	return unlock_ret(0);
}

/* ------------------------------------------------------------------ btsock_unpair */

int btsock_unpair(const char *adapter_addr, const char *peer)
{
	rt_enter();
	bt_addr p;
	adapter *ad = target(adapter_addr, peer, &p, "unpair");
	if (!ad)
		return unlock_ret(-1);
	gap *g = bt_stack_gap(ad->st);
	uint8_t key[16];
	bool known = gap_link_key_get(g, &p, key) == 0;
	memset(key, 0, sizeof key);
	gap_link_key_forget(g, &p);
	/* A link secured with the key would keep it in use: end it, so that the next connection
	 * authenticates (and pairs) afresh. */
	hci *h = bt_stack_hci(ad->st);
	int handle = hci_link_handle(h, &p);
	if (handle >= 0 && hci_disconnect(h, (uint16_t)handle, HCI_ERR_REMOTE_USER_TERMINATED) == 0)
		rt_wake(ad);
	int in_file = 0;
	char err[512] = "";
	if (ad->keys) {
		/* A key of this peer still queued for the file must not land after the delete. */
		ks_writer_sync(ad->keys, UNPAIR_SYNC_MS);
		char path[4096];
		snprintf(path, sizeof path, "%s", ks_writer_path(ad->keys));
		bt_addr local = ad->addr;
		rt_op_begin(ad); /* the file work runs without rt_lock: the adapter stays */
		pthread_mutex_unlock(&rt_lock);
		in_file = ks_delete(path, &local, &p, err, sizeof err);
		pthread_mutex_lock(&rt_lock);
		rt_op_end(ad);
	}
	if (in_file < 0)
		return unlock_ret(rt_fail(-in_file, "unpair %s: the key was forgotten, but not deleted from the keystore: %s",
					  peer, err));
	if (!known && !in_file)
		return unlock_ret(rt_fail(ENOENT, "unpair: no bond with %s", peer));
	rt_clear_error();
	return unlock_ret(0);
}

/* ------------------------------------------------------------------ btsock_paired */

int btsock_paired(const char *adapter_addr, struct btsock_bond *out, size_t max)
{
	if (max && !out)
		return rt_fail(EINVAL, "paired: no array given for %zu bonds", max);
	rt_enter();
	adapter *ad = rt_adapter_arg(adapter_addr, "paired");
	if (!ad)
		return unlock_ret(-1);
	bt_addr peers[GAP_MAX_KEYS];
	uint8_t types[GAP_MAX_KEYS];
	size_t n = gap_link_keys(bt_stack_gap(ad->st), peers, types, GAP_MAX_KEYS);
	for (size_t i = 0; i < n && i < max && i < GAP_MAX_KEYS; i++) {
		memset(&out[i], 0, sizeof out[i]);
		bt_addr_format(&peers[i], out[i].addr);
		out[i].key_type = types[i];
		/* Vol 4 Part E 7.7.24: 5 and 8 are authenticated (MITM-protected), 7 and 8 are
		 * Secure Connections keys. */
		out[i].authenticated = types[i] == 0x05 || types[i] == 0x08;
		out[i].secure_connections = types[i] == 0x07 || types[i] == 0x08;
	}
	rt_clear_error();
	return unlock_ret((int)n);
}
