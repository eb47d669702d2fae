/* bonds.c - bonds in the public API: btsock_pair (pair with a peer on purpose), btsock_unpair
 * (forget its key, here and in the keystore file) and btsock_paired (list the bonds).
 *
 * The work is GAP's (gap_pair, gap_link_keys, gap_link_key_forget) and the keystore's
 * (ks_delete); this file only finds the adapter, runs the operation on its loop and waits for
 * its callback (rt_op_run, as discovery.c does), then turns the outcome into errno and a
 * sentence. The keystore file is rewritten on the calling thread, never on the loop. */
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gap/gap.h"
#include "hci/hci_defs.h"
#include "keystore.h"

#define PAIR_DEFAULT_TIMEOUT_MS 60000 /* a page (10 s) and securing the link (30 s), with slack */
#define UNPAIR_SYNC_MS 1000           /* keys queued for the file before the delete */

/* The adapter and peer of a call (referenced); NULL + message on failure. */
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
	bt_addr peer;
} pair_ctx;

/* On the adapter's loop. */
static void pair_done(void *ctx, const bt_addr *peer, int err, int reason)
{
	pair_ctx *c = ctx;
	(void)peer;
	c->done = true;
	c->err = err;
	c->reason = reason;
}

static int pair_start(adapter *ad, void *ctx)
{
	pair_ctx *c = ctx;
	return gap_pair(bt_stack_gap(ad->st), &c->peer, pair_done, c);
}

static void pair_cancel(adapter *ad, void *ctx)
{
	pair_ctx *c = ctx;
	gap_pair_cancel(bt_stack_gap(ad->st), &c->peer); /* no callback into c after this */
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

int rt_pair(const char *adapter_addr, const char *peer, int timeout_ms)
{
	pair_ctx c = { 0 };
	adapter *ad = target(adapter_addr, peer, &c.peer, "pair");
	if (!ad)
		return -1;
	int rc;
	if (bt_addr_eq(&c.peer, &ad->addr)) {
		rc = rt_fail(EINVAL, "pair: %s is this adapter's own address", peer);
	} else {
		if (timeout_ms <= 0)
			timeout_ms = PAIR_DEFAULT_TIMEOUT_MS;
		rt_op op = { pair_start, pair_cancel, &c.done, &c };
		rc = rt_op_run(ad, &op, timeout_ms, "pair");
		if (rc == 0)
			rc = c.err;
		rc = rc < 0 ? pair_fail(peer, rc, c.reason, timeout_ms) : 0;
		if (rc == 0)
			rt_clear_error();
	}
	rt_adapter_put(ad);
	return rc;
}

/* ------------------------------------------------------------------ btsock_unpair */

typedef struct {
	bt_addr peer;
	bool known;
} unpair_args;

/* On the loop: the stack forgets the key, and a link secured with it ends, so that the next
 * connection authenticates (and pairs) afresh. */
static int unpair_step(adapter *ad, void *arg, rt_why why)
{
	unpair_args *a = arg;
	if (why == RT_DOWN || ad->closing || ad->dead)
		return rt_adapter_down(ad, "unpair") < 0 ? -1 : rt_fail(ENETDOWN, "unpair: the adapter was closed");
	gap *g = bt_stack_gap(ad->st);
	uint8_t key[16];
	a->known = gap_link_key_get(g, &a->peer, key) == 0;
	memset(key, 0, sizeof key);
	gap_link_key_forget(g, &a->peer);
	hci *h = bt_stack_hci(ad->st);
	int handle = hci_link_handle(h, &a->peer);
	if (handle >= 0)
		hci_disconnect(h, (uint16_t)handle, HCI_ERR_REMOTE_USER_TERMINATED);
	return 0;
}

int rt_unpair(const char *adapter_addr, const char *peer)
{
	unpair_args a = { 0 };
	adapter *ad = target(adapter_addr, peer, &a.peer, "unpair");
	if (!ad)
		return -1;
	int rc = rt_call(ad, unpair_step, &a, -1, "unpair");
	int in_file = 0;
	char err[512] = "";
	/* ad->keys is set once while the adapter opens; the file work is this thread's. */
	if (rc == 0 && ad->keys) {
		/* A key of this peer still queued for the file must not land after the delete. */
		ks_writer_sync(ad->keys, UNPAIR_SYNC_MS);
		in_file = ks_delete(ks_writer_path(ad->keys), &ad->addr, &a.peer, err, sizeof err);
	}
	rt_adapter_put(ad);
	if (rc < 0)
		return rc;
	if (in_file < 0)
		return rt_fail(-in_file, "unpair %s: the key was forgotten, but not deleted from the keystore: %s", peer,
			       err);
	if (!a.known && !in_file)
		return rt_fail(ENOENT, "unpair: no bond with %s", peer);
	rt_clear_error();
	return 0;
}

/* ------------------------------------------------------------------ btsock_paired */

typedef struct {
	bt_addr peers[GAP_MAX_KEYS];
	uint8_t types[GAP_MAX_KEYS];
	size_t n;
} paired_args;

static int paired_step(adapter *ad, void *arg, rt_why why)
{
	paired_args *a = arg;
	if (why == RT_DOWN || ad->closing || ad->dead)
		return rt_adapter_down(ad, "paired") < 0 ? -1 : rt_fail(ENETDOWN, "paired: the adapter was closed");
	a->n = gap_link_keys(bt_stack_gap(ad->st), a->peers, a->types, GAP_MAX_KEYS);
	return 0;
}

int rt_paired(const char *adapter_addr, struct btsock_bond *out, size_t max)
{
	if (max && !out)
		return rt_fail(EINVAL, "paired: no array given for %zu bonds", max);
	adapter *ad = rt_adapter_arg(adapter_addr, "paired");
	if (!ad)
		return -1;
	paired_args *a = calloc(1, sizeof *a);
	int rc = a ? rt_call(ad, paired_step, a, -1, "paired") : rt_fail(ENOMEM, "paired: out of memory");
	rt_adapter_put(ad);
	if (rc < 0) {
		free(a);
		return rc;
	}
	size_t n = a->n;
	for (size_t i = 0; i < n && i < max && i < GAP_MAX_KEYS; i++) {
		memset(&out[i], 0, sizeof out[i]);
		bt_addr_format(&a->peers[i], out[i].addr);
		out[i].key_type = a->types[i];
		/* Vol 4 Part E 7.7.24: 5 and 8 are authenticated (MITM-protected), 7 and 8 are
		 * Secure Connections keys. */
		out[i].authenticated = a->types[i] == 0x05 || a->types[i] == 0x08;
		out[i].secure_connections = a->types[i] == 0x07 || a->types[i] == 0x08;
	}
	free(a);
	rt_clear_error();
	return (int)n;
}
