/* service.c - the SDP half of include/btsock.h: advertising a socket's service in its
 * adapter's SDP server, finding services on other devices with SDP queries (Core spec Vol 3
 * Part B), and describing records as text.
 *
 * Queries run on the adapter's loop (rt_op_run: sdp_query_start there); the calling thread
 * waits for its own completion while the query's callback fills in its result. */
#include "runtime.h"

#include "api/service_info.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gap/gap.h"
#include "sdp/sdp.h"
#include "sdp/sdp_text.h"

#define FIND_INQUIRY_LENGTH 4   /* x 1.28 s: the inquiry when no address is given */
#define FIND_MAX_DEVICES 32
#define QUERY_WAIT_MS (SDP_CLIENT_DEFAULT_TIMEOUT_MS + 5000) /* the query's own timeout ends it first */

/* ------------------------------------------------------------------ advertising */

/* UUID texts -> sdp_uuid array; the message names the field. */
static int parse_uuids(const char *const *in, size_t n, sdp_uuid *out, const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (!in[i] || sdp_uuid_parse(in[i], &out[i]) < 0)
			return rt_fail(EINVAL, "advertise_service: %s '%s' is not a UUID (like 1101 or "
					       "00001101-0000-1000-8000-00805F9B34FB)",
				       what, in[i] ? in[i] : "(null)");
	return 0;
}

/* Everything in svc that is text becomes a sdp_service_desc; uuid storage is the caller's. */
static int desc_from_service(const struct btsock_service *svc, sdp_service_desc *d, sdp_uuid *id,
			     sdp_uuid *classes, sdp_profile *profiles)
{
	memset(d, 0, sizeof *d);
	d->name = svc->name;
	d->description = svc->description;
	d->provider = svc->provider;
	if (svc->service_id) {
		if (parse_uuids(&svc->service_id, 1, id, "service_id") < 0)
			return -1;
		d->service_id = id;
	}
	if (svc->n_service_classes > BTSOCK_MAX_CLASSES || svc->n_profiles > BTSOCK_MAX_PROFILES)
		return rt_fail(EINVAL, "advertise_service: at most %d service classes and %d profiles",
			       BTSOCK_MAX_CLASSES, BTSOCK_MAX_PROFILES);
	if (svc->n_service_classes && !svc->service_classes)
		return rt_fail(EINVAL, "advertise_service: n_service_classes without service_classes");
	if (parse_uuids(svc->service_classes, svc->n_service_classes, classes, "service class") < 0)
		return -1;
	d->classes = classes;
	d->n_classes = svc->n_service_classes;
	if (svc->n_profiles && !svc->profiles)
		return rt_fail(EINVAL, "advertise_service: n_profiles without profiles");
	for (size_t i = 0; i < svc->n_profiles; i++) {
		if (parse_uuids(&svc->profiles[i].uuid, 1, &profiles[i].uuid, "profile") < 0)
			return -1;
		if (svc->profiles[i].version > 0xffff)
			return rt_fail(EINVAL, "advertise_service: profile version 0x%x is not 16 bits",
				       svc->profiles[i].version);
		profiles[i].version = (uint16_t)svc->profiles[i].version;
	}
	d->profiles = profiles;
	d->n_profiles = svc->n_profiles;
	return 0;
}

typedef struct {
	bsock *s;
	const sdp_service_desc *d;
	bool stop;
} adv_args;

static int adv_step(adapter *ad, void *arg, rt_why why)
{
	adv_args *a = arg;
	bsock *s = a->s;
	const char *call = a->stop ? "stop_advertising" : "advertise_service";
	if (why == RT_DOWN || ad->closing || ad->dead)
		return rt_adapter_down(ad, call) < 0 ? -1 : rt_fail(ENETDOWN, "%s: the adapter was closed", call);
	sdp_server *srv = bt_stack_sdp(ad->st);
	if (a->stop) {
		if (!s->sdp_handle)
			return rt_fail(ENOENT, "stop_advertising: socket %d advertises no service", s->app_fd);
		sdp_server_remove_record(srv, s->sdp_handle);
		s->sdp_handle = 0;
		rt_clear_error();
		return 0;
	}
	if (!s->registered && s->state == S_BOUND && rt_sock_register(s, call) < 0)
		return -1; /* bound to port 0: the port is chosen now */
	if (!s->registered || !s->port)
		return rt_fail(EINVAL, "advertise_service: socket %d is not bound to a %s (call btsock_bind first)",
			       s->app_fd, s->proto == BTSOCK_RFCOMM ? "channel" : "PSM");
	sdp_service_desc d = *a->d;
	if (s->proto == BTSOCK_RFCOMM)
		d.rfcomm_channel = (uint8_t)s->port;
	else
		d.l2cap_psm = s->port;
	uint32_t h = sdp_server_add_service(srv, &d);
	if (!h)
		return rt_fail(ENOMEM, "advertise_service: the record could not be built (out of memory, or an "
				       "attribute over 64 KiB)");
	if (s->sdp_handle)
		sdp_server_remove_record(srv, s->sdp_handle);
	s->sdp_handle = h;
	rt_clear_error();
	return 0;
}

/* The socket's adapter, or NULL with the message (a socket never bound has none). */
static adapter *bound_adapter(bsock *s, const char *call, bool stop)
{
	pthread_mutex_lock(&s->mu);
	adapter *ad = s->ad;
	if (ad)
		rt_adapter_get(ad);
	pthread_mutex_unlock(&s->mu);
	if (!ad && stop)
		rt_fail(ENOENT, "stop_advertising: socket %d advertises no service", s->app_fd);
	else if (!ad)
		rt_fail(EINVAL, "%s: socket %d is not bound to a %s (call btsock_bind first)", call, s->app_fd,
			s->proto == BTSOCK_RFCOMM ? "channel" : "PSM");
	return ad;
}

int rt_advertise_service(int fd, const struct btsock_service *svc)
{
	bsock *s = rt_sock_get(fd);
	if (!s)
		return rt_fail(EBADF, "advertise_service: %d is not an open btsock socket", fd);
	int rc = -1;
	sdp_service_desc d;
	sdp_uuid id, classes[BTSOCK_MAX_CLASSES];
	sdp_profile profiles[BTSOCK_MAX_PROFILES];
	adapter *ad = NULL;
	if (!svc)
		rt_fail(EINVAL, "advertise_service: no service description");
	else if ((ad = bound_adapter(s, "advertise_service", false)) && desc_from_service(svc, &d, &id, classes, profiles) == 0)
		rc = rt_call(ad, adv_step, &(adv_args){ .s = s, .d = &d }, -1, "advertise_service");
	rt_adapter_put(ad);
	rt_sock_put(s);
	return rc;
}

int rt_stop_advertising(int fd)
{
	bsock *s = rt_sock_get(fd);
	if (!s)
		return rt_fail(EBADF, "stop_advertising: %d is not an open btsock socket", fd);
	int rc = -1;
	adapter *ad = bound_adapter(s, "stop_advertising", true);
	if (ad)
		rc = rt_call(ad, adv_step, &(adv_args){ .s = s, .stop = true }, -1, "stop_advertising");
	rt_adapter_put(ad);
	rt_sock_put(s);
	return rc;
}

/* ------------------------------------------------------------------ one query */

typedef struct {
	bool done;
	int err;
	bt_addr peer;
	const char *name; /* filter, or NULL */
	svc_results *out;
} query_ctx;

static void query_done(void *ctx, int err, sdp_record *const *recs, size_t n)
{
	query_ctx *q = ctx;
	q->done = true;
	q->err = err;
	if (err)
		return;
	char host[BT_ADDR_STRLEN];
	bt_addr_format(&q->peer, host);
	svc_results_add(q->out, host, q->name, recs, n);
}

static const char *query_reason(int err)
{
	switch (-err) {
	case EHOSTDOWN: return "no device answered at that address (page timeout)";
	case ECONNREFUSED: return "the device refused the SDP connection";
	case ETIMEDOUT: return "no complete answer within the time limit";
	case EPROTO: return "the device sent a malformed SDP response";
	case EMSGSIZE: return "the records are larger than 64 KiB";
	case ECONNRESET: return "the link went down";
	case ENETDOWN: return "the adapter went away";
	default: return strerror(-err);
	}
}

typedef struct {
	query_ctx q;
	sdp_query_params p;
	sdp_query *h;
} query_op;

static int query_start(adapter *ad, void *ctx)
{
	query_op *o = ctx;
	return sdp_query_start(bt_stack_l2cap(ad->st), bt_stack_timers(ad->st), &o->q.peer, &o->p, query_done, &o->q,
			       &o->h);
}

static void query_cancel(adapter *ad, void *ctx)
{
	query_op *o = ctx;
	sdp_query_cancel(o->h);
}

/* Runs one ServiceSearchAttribute query for every attribute of the records matching uuid,
 * appending what passes the name filter to out. 0 or -errno. */
static int query_one(adapter *ad, const bt_addr *peer, const sdp_uuid *uuid, const char *name, svc_results *out)
{
	query_op o = { .q = { .peer = *peer, .name = name, .out = out }, .p = { .uuids = uuid, .n_uuids = 1 } };
	rt_op op = { query_start, query_cancel, &o.q.done, &o };
	int rc = rt_op_run(ad, &op, QUERY_WAIT_MS, "find_services");
	if (rc < 0)
		return rc;
	if (out->nomem)
		return -ENOMEM;
	return o.q.err;
}

/* ------------------------------------------------------------------ inquiry for find */

typedef struct {
	bool done;
	int err;
	bt_addr found[FIND_MAX_DEVICES];
	size_t n;
} find_inquiry;

static void fi_device(void *ctx, const gap_device *d)
{
	find_inquiry *f = ctx;
	if (f->n < FIND_MAX_DEVICES)
		f->found[f->n++] = d->addr;
}

static void fi_done(void *ctx, int err)
{
	find_inquiry *f = ctx;
	f->done = true;
	f->err = err;
}

static int fi_start(adapter *ad, void *ctx)
{
	static const gap_inquiry_ops ops = { fi_device, fi_done };
	return gap_inquiry_start(bt_stack_gap(ad->st), FIND_INQUIRY_LENGTH, 0, &ops, ctx);
}

static void fi_cancel(adapter *ad, void *ctx)
{
	gap_inquiry_cancel(bt_stack_gap(ad->st)); /* done(-ECANCELED) follows at once, into ctx */
}

static int inquire_for_find(adapter *ad, find_inquiry *f)
{
	rt_op op = { fi_start, fi_cancel, &f->done, f };
	int rc = rt_op_run(ad, &op, FIND_INQUIRY_LENGTH * 1280 + 10000, "find_services");
	if (rc == -EBUSY)
		return rt_fail(EBUSY, "find_services: an inquiry is already running on this adapter");
	if (rc < 0 || (f->err && f->err != -ECANCELED))
		return rt_fail(rc < 0 ? -rc : -f->err, "find_services: inquiry failed: %s",
			       strerror(rc < 0 ? -rc : -f->err));
	return 0;
}

/* ------------------------------------------------------------------ find */

int rt_find_services(const char *addr, const char *uuid, const char *name, struct btsock_service_info **out)
{
	if (!out)
		return rt_fail(EINVAL, "find_services: out is NULL");
	*out = NULL;
	sdp_uuid pattern = sdp_uuid16(SDP_UUID_PUBLIC_BROWSE_ROOT);
	if (uuid && sdp_uuid_parse(uuid, &pattern) < 0)
		return rt_fail(EINVAL, "find_services: '%s' is not a UUID (like 1101 or "
				       "00001101-0000-1000-8000-00805F9B34FB)",
			       uuid);
	bt_addr peer;
	bool one = addr && *addr;
	if (one && bt_addr_parse(addr, &peer) < 0)
		return rt_fail(EINVAL, "find_services: invalid address '%s': expected six hex bytes like "
				       "01:23:45:67:89:AB",
			       addr);
	adapter *ad = rt_default_adapter("find_services");
	if (!ad)
		return -1;
	svc_results res = { 0 };
	int rc = 0;
	if (one) {
		if (bt_addr_eq(&peer, &ad->addr)) {
			rc = rt_fail(EINVAL, "find_services: %s is this adapter's own address", addr);
		} else if ((rc = query_one(ad, &peer, &pattern, name, &res)) < 0) {
			rc = rt_fail(-rc, "find_services on %s: %s", addr, query_reason(rc));
		}
	} else {
		find_inquiry f = { 0 };
		rc = inquire_for_find(ad, &f);
		for (size_t k = 0; rc == 0 && k < f.n; k++) {
			int q = query_one(ad, &f.found[k], &pattern, name, &res);
			if (q == -ENOMEM || q == -ENETDOWN)
				break;
		}
	}
	rt_adapter_put(ad);
	if (rc < 0 || res.nomem) {
		btsock_free_services(res.v);
		return rc < 0 ? -1 : rt_fail(ENOMEM, "find_services: out of memory");
	}
	if (!res.v && !(res.v = calloc(1, sizeof *res.v)))
		return rt_fail(ENOMEM, "find_services: out of memory");
	*out = res.v;
	rt_clear_error();
	return (int)res.n;
}
