/* discovery.c - the GAP half of include/btsock.h: inquiry (device discovery), remote name
 * requests, and the local name and Class of Device other devices see (Core spec Vol 3 Part C,
 * HCI commands of Vol 4 Part E 7.1 and 7.3).
 *
 * As in service.c, the operation runs on the adapter's loop and the calling thread waits for
 * its callback (rt_op_run). */
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

/* ------------------------------------------------------------------ remote names */

typedef struct {
	bool done;
	int err;
	char *name;
	bt_addr peer;
	uint32_t timeout_ms;
	gap_name_req *req;
} name_ctx;

static void name_done(void *ctx, int err, const bt_addr *peer, const char *name)
{
	name_ctx *c = ctx;
	(void)peer;
	c->done = true;
	c->err = err;
	snprintf(c->name, BTSOCK_NAMESTRLEN, "%s", name ? name : "");
}

static int name_start(adapter *ad, void *ctx)
{
	name_ctx *c = ctx;
	return gap_remote_name(bt_stack_gap(ad->st), &c->peer, c->timeout_ms, name_done, c, &c->req);
}

static void name_cancel(adapter *ad, void *ctx)
{
	name_ctx *c = ctx;
	gap_remote_name_cancel(bt_stack_gap(ad->st), c->req);
}

/* Asks peer for its name on ad. 0 or -errno. */
static int remote_name(adapter *ad, const bt_addr *peer, int timeout_ms, char *out)
{
	name_ctx c = { .name = out, .peer = *peer, .timeout_ms = (uint32_t)timeout_ms };
	out[0] = 0;
	rt_op op = { name_start, name_cancel, &c.done, &c };
	/* GAP's own timer ends the request; the wait has slack for a busy name queue. */
	int rc = rt_op_run(ad, &op, timeout_ms + 5000, "lookup_name");
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

int rt_lookup_name(const char *addr, int timeout_ms, char name[BTSOCK_NAMESTRLEN])
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
	adapter *ad = rt_default_adapter("lookup_name");
	if (!ad)
		return -1;
	int rc = remote_name(ad, &peer, timeout_ms, name);
	rt_adapter_put(ad);
	if (rc < 0)
		return rt_fail(-rc, "lookup_name %s: %s", addr, name_reason(rc));
	rt_clear_error();
	return 0;
}

/* ------------------------------------------------------------------ inquiry */

typedef struct {
	bool done;
	int err;
	struct btsock_device *dev;
	size_t n;
	uint8_t length;
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
}

static int inquiry_length(int duration_ms)
{
	if (duration_ms <= 0)
		return DEFAULT_INQUIRY_LENGTH;
	int units = (duration_ms + 1279) / 1280;
	return units > MAX_INQUIRY_LENGTH ? MAX_INQUIRY_LENGTH : units;
}

static int disc_start(adapter *ad, void *ctx)
{
	static const gap_inquiry_ops ops = { disc_device, disc_done };
	discover_ctx *c = ctx;
	return gap_inquiry_start(bt_stack_gap(ad->st), c->length, 0, &ops, c);
}

static void disc_cancel(adapter *ad, void *ctx)
{
	gap_inquiry_cancel(bt_stack_gap(ad->st)); /* done(-ECANCELED) follows at once, into ctx */
}

/* Runs the inquiry into c. 0 or -1 with the message set. */
static int run_inquiry(adapter *ad, int length, discover_ctx *c)
{
	c->length = (uint8_t)length;
	rt_op op = { disc_start, disc_cancel, &c->done, c };
	int rc = rt_op_run(ad, &op, length * 1280 + 10000, "discover");
	if (rc == -EBUSY)
		return rt_fail(EBUSY, "discover: an inquiry is already running on this adapter");
	if (rc < 0)
		return rt_fail(-rc, "discover: %s", rc == -ENETDOWN ? "the adapter went away" : strerror(-rc));
	if (c->err < 0)
		return rt_fail(-c->err, "discover: the inquiry failed: %s", strerror(-c->err));
	return 0;
}

int rt_discover(const char *adapter_addr, int duration_ms, bool lookup_names, struct btsock_device *out,
		    size_t max)
{
	if (!out && max)
		return rt_fail(EINVAL, "discover: out is NULL");
	discover_ctx c = { .dev = calloc(DISCOVER_MAX, sizeof *c.dev) };
	if (!c.dev)
		return rt_fail(ENOMEM, "discover: out of memory");
	adapter *ad = rt_adapter_arg(adapter_addr, "discover");
	if (!ad || run_inquiry(ad, inquiry_length(duration_ms), &c) < 0) {
		rt_adapter_put(ad);
		free(c.dev);
		return -1;
	}
	for (size_t k = 0; lookup_names && k < c.n && k < max; k++) {
		bt_addr a;
		if (c.dev[k].name[0] || bt_addr_parse(c.dev[k].addr, &a) < 0)
			continue;
		if (remote_name(ad, &a, DISCOVER_NAME_TIMEOUT_MS, c.dev[k].name) == -ENETDOWN)
			break;
	}
	rt_adapter_put(ad);
	size_t n = c.n < max ? c.n : max;
	if (n)
		memcpy(out, c.dev, n * sizeof *out);
	free(c.dev);
	rt_clear_error();
	return (int)n;
}

/* ------------------------------------------------------------------ local settings */

/* One local setting: the GAP call that queues its HCI command, and its argument. A queued
 * command cannot be withdrawn: its context is allocated, and if the caller stops waiting (the
 * adapter closes) the callback frees it instead of reporting. */
typedef struct {
	bool done, orphaned;
	uint8_t status;
	const char *call;
	char name[GAP_NAME_MAX + 1]; /* set_local_name */
	bool is_name;
	uint32_t cod;                /* set_device_class */
} setting;

static void cmd_done(void *ctx, uint8_t status, const uint8_t *ret, size_t len)
{
	setting *c = ctx;
	(void)ret;
	(void)len;
	if (c->orphaned) {
		free(c);
		return;
	}
	c->done = true;
	c->status = status;
}

static int setting_start(adapter *ad, void *ctx)
{
	setting *c = ctx;
	gap *g = bt_stack_gap(ad->st);
	return c->is_name ? gap_write_local_name(g, c->name, cmd_done, c) : gap_write_class_of_device(g, c->cod, cmd_done, c);
}

static void setting_cancel(adapter *ad, void *ctx)
{
	((setting *)ctx)->orphaned = true; /* the callback frees it */
}

/* Queues the setting's HCI command on the adapter and waits for its completion (HCI's command
 * timeout guarantees one, or the controller is declared dead). */
static int apply_setting(const char *adapter_addr, setting *c)
{
	adapter *ad = rt_adapter_arg(adapter_addr, c->call);
	if (!ad) {
		free(c);
		return -1;
	}
	rt_op op = { setting_start, setting_cancel, &c->done, c };
	int rc = rt_op_run(ad, &op, -1, c->call);
	rt_adapter_put(ad);
	const char *call = c->call;
	uint8_t status = c->status;
	if (!c->orphaned) /* else the command's callback frees it */
		free(c);
	if (rc < 0)
		return rt_fail(-rc, "%s: %s", call, rc == -ENETDOWN ? "the adapter went away" : strerror(-rc));
	if (status)
		return rt_fail(EIO, "%s: the controller answered with %s", call, hci_status_str(status));
	rt_clear_error();
	return 0;
}

static setting *setting_new(const char *call)
{
	setting *c = calloc(1, sizeof *c);
	if (c)
		c->call = call;
	else
		rt_fail(ENOMEM, "%s: out of memory", call);
	return c;
}

int rt_set_local_name(const char *adapter_addr, const char *name)
{
	if (!name)
		return rt_fail(EINVAL, "set_local_name: name is NULL");
	if (strlen(name) > GAP_NAME_MAX)
		return rt_fail(EINVAL, "set_local_name: the name is longer than %d bytes", GAP_NAME_MAX);
	setting *c = setting_new("set_local_name");
	if (!c)
		return -1;
	c->is_name = true;
	snprintf(c->name, sizeof c->name, "%s", name);
	return apply_setting(adapter_addr, c);
}

int rt_set_device_class(const char *adapter_addr, unsigned device_class)
{
	if (device_class > 0xffffff)
		return rt_fail(EINVAL, "set_device_class: 0x%x is more than 24 bits", device_class);
	setting *c = setting_new("set_device_class");
	if (!c)
		return -1;
	c->cod = device_class;
	return apply_setting(adapter_addr, c);
}
