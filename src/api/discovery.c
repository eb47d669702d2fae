/* discovery.c - the GAP half of include/btsock.h: inquiry (device discovery), remote name
 * requests, and the local name and Class of Device other devices see (Core spec Vol 3 Part C,
 * HCI commands of Vol 4 Part E 7.1 and 7.3).
 *
 * As in service.c, the operation runs on the adapter's loop and the calling thread waits on
 * rt_cond for its callback (rt_op_begin / rt_op_wait / rt_op_end). */
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gap/gap.h"

#define DISCOVER_MAX 255              /* devices remembered per inquiry */
#define DEFAULT_INQUIRY_LENGTH 8      /* x 1.28 s = 10.24 s, as PyBluez's discover_devices */
#define MAX_INQUIRY_LENGTH 48         /* Vol 4 Part E 7.1.1: 0x01-0x30 */
#define NAME_TIMEOUT_MS 10000
#define DISCOVER_NAME_TIMEOUT_MS 5000 /* per device, when discover looks names up */
#define HCI_CMD_WAIT_MS 5000          /* HCI declares the controller dead after 3 s */

static int unlock_ret(int rv)
{
	pthread_mutex_unlock(&rt_lock);
	return rv;
}

/* ------------------------------------------------------------------ remote names */

typedef struct {
	bool done;
	int err;
	char *name;
} name_ctx;

static void name_done(void *ctx, int err, const bt_addr *peer, const char *name)
{
	name_ctx *c = ctx;
	(void)peer;
	c->done = true;
	c->err = err;
	snprintf(c->name, BTSOCK_NAMESTRLEN, "%s", name ? name : "");
	pthread_cond_broadcast(&rt_cond);
}

/* Asks peer for its name on ad (rt_lock held). 0 or -errno. */
static int remote_name(adapter *ad, const bt_addr *peer, int timeout_ms, char *out)
{
	name_ctx c = { .name = out };
	gap *g = bt_stack_gap(ad->st);
	gap_name_req *req = NULL;
	out[0] = 0;
	rt_op_begin(ad);
	int rc = gap_remote_name(g, peer, (uint32_t)timeout_ms, name_done, &c, &req);
	/* GAP's own timer ends the request; the wait has slack for a busy name queue. */
	if (rc == 0 && (rc = rt_op_wait(ad, &c.done, timeout_ms + 5000)) < 0)
		gap_remote_name_cancel(g, req);
	rt_op_end(ad);
	return rc < 0 ? rc : c.err;
}

static const char *name_reason(int err)
{
	switch (-err) {
	case ETIMEDOUT: return "no answer in time";
	case EHOSTDOWN: return "no device answered at that address (page timeout)";
	case ENETDOWN: return "the adapter went away";
	default: return strerror(-err);
	}
}

int btsock_lookup_name(const char *addr, int timeout_ms, char name[BTSOCK_NAMESTRLEN])
{
	bt_addr peer;
	if (!name)
		return rt_fail(EINVAL, "lookup_name: name is NULL");
	name[0] = 0;
	if (!addr || bt_addr_parse(addr, &peer) < 0)
		return rt_fail(EINVAL, "lookup_name: invalid address '%s': expected six hex bytes like 01:23:45:67:89:AB",
			       addr ? addr : "(null)");
	if (timeout_ms <= 0)
		timeout_ms = NAME_TIMEOUT_MS;
	rt_enter();
	adapter *ad = rt_default_adapter();
	if (!ad)
		return unlock_ret(-1);
	if (ad->dead)
		return unlock_ret(rt_fail(ENETDOWN, "lookup_name: %s", ad->err));
	int rc = remote_name(ad, &peer, timeout_ms, name);
	if (rc < 0)
		return unlock_ret(rt_fail(-rc, "lookup_name %s: %s", addr, name_reason(rc)));
	rt_clear_error();
	return unlock_ret(0);
}

/* ------------------------------------------------------------------ inquiry */

typedef struct {
	bool done;
	int err;
	struct btsock_device *dev;
	size_t n;
} discover_ctx;

static void disc_device(void *ctx, const gap_device *d)
{
	discover_ctx *c = ctx;
	if (c->n >= DISCOVER_MAX)
		return;
	struct btsock_device *o = &c->dev[c->n++];
	memset(o, 0, sizeof *o);
	bt_addr_format(&d->addr, o->addr);
	o->device_class = d->cod;
	o->has_rssi = d->has_rssi;
	o->rssi = d->rssi;
	if (d->has_name)
		snprintf(o->name, sizeof o->name, "%s", d->name);
}

static void disc_done(void *ctx, int err)
{
	discover_ctx *c = ctx;
	c->done = true;
	c->err = err;
	pthread_cond_broadcast(&rt_cond);
}

static int inquiry_length(int duration_ms)
{
	if (duration_ms <= 0)
		return DEFAULT_INQUIRY_LENGTH;
	int units = (duration_ms + 1279) / 1280;
	return units > MAX_INQUIRY_LENGTH ? MAX_INQUIRY_LENGTH : units;
}

/* Runs the inquiry into c (rt_lock held). 0 or -1 with the message set. */
static int run_inquiry(adapter *ad, int length, discover_ctx *c)
{
	static const gap_inquiry_ops ops = { disc_device, disc_done };
	gap *g = bt_stack_gap(ad->st);
	rt_op_begin(ad);
	int rc = gap_inquiry_start(g, (uint8_t)length, 0, &ops, c);
	if (rc == 0 && (rc = rt_op_wait(ad, &c->done, length * 1280 + 10000)) < 0)
		gap_inquiry_cancel(g); /* done(-ECANCELED) follows at once, into c */
	rt_op_end(ad);
	if (rc == -EBUSY)
		return rt_fail(EBUSY, "discover: an inquiry is already running on this adapter");
	if (rc < 0)
		return rt_fail(-rc, "discover: %s", rc == -ENETDOWN ? ad->err : strerror(-rc));
	if (c->err < 0)
		return rt_fail(-c->err, "discover: the inquiry failed: %s", strerror(-c->err));
	return 0;
}

int btsock_discover(const char *adapter_addr, int duration_ms, bool lookup_names, struct btsock_device *out,
		    size_t max)
{
	if (!out && max)
		return rt_fail(EINVAL, "discover: out is NULL");
	discover_ctx c = { .dev = calloc(DISCOVER_MAX, sizeof *c.dev) };
	if (!c.dev)
		return rt_fail(ENOMEM, "discover: out of memory");
	rt_enter();
	adapter *ad = rt_adapter_arg(adapter_addr, "discover");
	if (!ad || (ad->dead && rt_fail(ENETDOWN, "discover: %s", ad->err)) || run_inquiry(ad, inquiry_length(duration_ms), &c) < 0) {
		free(c.dev);
		return unlock_ret(-1);
	}
	for (size_t k = 0; lookup_names && k < c.n && k < max; k++) {
		bt_addr a;
		if (c.dev[k].name[0] || bt_addr_parse(c.dev[k].addr, &a) < 0)
			continue;
		if (remote_name(ad, &a, DISCOVER_NAME_TIMEOUT_MS, c.dev[k].name) == -ENETDOWN)
			break;
	}
	size_t n = c.n < max ? c.n : max;
	if (n)
		memcpy(out, c.dev, n * sizeof *out);
	free(c.dev);
	rt_clear_error();
	return unlock_ret((int)n);
}

int btsock_describe_class(unsigned device_class, char *buf, size_t cap)
{
	char tmp[256];
	gap_cod_describe(device_class & 0xffffff, tmp, sizeof tmp);
	return snprintf(buf, cap, "%s", tmp);
}

/* ------------------------------------------------------------------ local settings */

typedef struct {
	bool done;
	uint8_t status;
} cmd_ctx;

static void cmd_done(void *ctx, uint8_t status, const uint8_t *ret, size_t len)
{
	cmd_ctx *c = ctx;
	(void)ret;
	(void)len;
	c->done = true;
	c->status = status;
	pthread_cond_broadcast(&rt_cond);
}

/* One local setting: the GAP call that queues its HCI command, and its argument. */
typedef struct {
	const char *call;
	const char *name;     /* set_local_name */
	uint32_t cod;         /* set_device_class */
} setting;

static int queue_setting(gap *g, const setting *st, cmd_ctx *c)
{
	return st->name ? gap_write_local_name(g, st->name, cmd_done, c)
			: gap_write_class_of_device(g, st->cod, cmd_done, c);
}

/* Queues the setting's HCI command on the adapter and waits for its completion. A queued
 * command cannot be withdrawn, so the wait ends only when it completes or the controller is
 * declared dead (HCI's command timeout guarantees one of the two; the loop keeps running
 * while an adapter closes). */
static int apply_setting(const char *adapter_addr, const setting *st)
{
	rt_enter();
	adapter *ad = rt_adapter_arg(adapter_addr, st->call);
	if (!ad)
		return unlock_ret(-1);
	cmd_ctx c = { 0 };
	rt_op_begin(ad);
	int rc = queue_setting(bt_stack_gap(ad->st), st, &c);
	rt_wake(ad);
	while (rc == 0 && !c.done && !ad->dead)
		rt_wait(-1, 0);
	rt_op_end(ad);
	if (rc == 0 && !c.done)
		rc = -ENETDOWN;
	if (rc < 0)
		return unlock_ret(rt_fail(-rc, "%s: %s", st->call, rc == -ENETDOWN ? ad->err : strerror(-rc)));
	if (c.status)
		return unlock_ret(rt_fail(EIO, "%s: the controller answered with %s", st->call,
					  hci_status_str(c.status)));
	rt_clear_error();
	return unlock_ret(0);
}

int btsock_set_local_name(const char *adapter_addr, const char *name)
{
	if (!name)
		return rt_fail(EINVAL, "set_local_name: name is NULL");
	if (strlen(name) > GAP_NAME_MAX)
		return rt_fail(EINVAL, "set_local_name: the name is longer than %d bytes", GAP_NAME_MAX);
	return apply_setting(adapter_addr, &(setting){ .call = "set_local_name", .name = name });
}

int btsock_set_device_class(const char *adapter_addr, unsigned device_class)
{
	if (device_class > 0xffffff)
		return rt_fail(EINVAL, "set_device_class: 0x%x is more than 24 bits", device_class);
	return apply_setting(adapter_addr, &(setting){ .call = "set_device_class", .cod = device_class });
}
