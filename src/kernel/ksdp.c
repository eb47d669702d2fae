/* ksdp.c - SDP on the kernel backend: finding services with btsock's own SDP client
 * (src/sdp, transport-neutral) over a kernel L2CAP socket to the peer's PSM 1, and the
 * service record btsock_advertise_service publishes, written in BlueZ's XML record format
 * for bluetoothd's ProfileManager1 (kdbus.c), which needs no `bluetoothd --compat`. */
#include "kernel.h"

#include "api/service_info.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api_error.h"
#include "sdp/sdp.h"
#include "sdp/sdp_record.h"

#define FIND_BUDGET_MS (SDP_CLIENT_DEFAULT_TIMEOUT_MS + 5000) /* page + query */

/* ------------------------------------------------------------------ the record as XML */

static int parse_uuids(const char *const *in, size_t n, sdp_uuid *out, const char *what, const char *call)
{
	for (size_t i = 0; i < n; i++)
		if (!in[i] || sdp_uuid_parse(in[i], &out[i]) < 0)
			return api_fail(EINVAL, "%s: %s '%s' is not a UUID (like 1101 or 00001101-0000-1000-8000-00805F9B34FB)",
					call, what, in[i] ? in[i] : "(null)");
	return 0;
}

/* The fields of svc as a sdp_service_desc (as src/runtime/service.c does). */
static int desc_from_service(const struct btsock_service *svc, sdp_service_desc *d, sdp_uuid *id, sdp_uuid *classes,
			     sdp_profile *profiles, const char *call)
{
	memset(d, 0, sizeof *d);
	d->name = svc->name;
	d->description = svc->description;
	d->provider = svc->provider;
	if (svc->service_id) {
		if (parse_uuids(&svc->service_id, 1, id, "service_id", call) < 0)
			return -1;
		d->service_id = id;
	}
	if (svc->n_service_classes > BTSOCK_MAX_CLASSES || svc->n_profiles > BTSOCK_MAX_PROFILES)
		return api_fail(EINVAL, "%s: at most %d service classes and %d profiles", call, BTSOCK_MAX_CLASSES,
				BTSOCK_MAX_PROFILES);
	if ((svc->n_service_classes && !svc->service_classes) || (svc->n_profiles && !svc->profiles))
		return api_fail(EINVAL, "%s: a count without its array", call);
	if (parse_uuids(svc->service_classes, svc->n_service_classes, classes, "service class", call) < 0)
		return -1;
	d->classes = classes;
	d->n_classes = svc->n_service_classes;
	for (size_t i = 0; i < svc->n_profiles; i++) {
		if (parse_uuids(&svc->profiles[i].uuid, 1, &profiles[i].uuid, "profile", call) < 0)
			return -1;
		if (svc->profiles[i].version > 0xffff)
			return api_fail(EINVAL, "%s: profile version 0x%x is not 16 bits", call, svc->profiles[i].version);
		profiles[i].version = (uint16_t)svc->profiles[i].version;
	}
	d->profiles = profiles;
	d->n_profiles = svc->n_profiles;
	return 0;
}

static void xml_hex(FILE *f, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", p[i]);
}

/* One data element (Vol 3 Part B 3) as BlueZ's sdp-xml.c reads it. 0 or -1. */
static int xml_elem(FILE *f, const uint8_t *buf, size_t len, int depth)
{
	sdp_elem e;
	if (depth > 16 || sdp_elem_parse(buf, len, &e) < 0)
		return -1;
	uint64_t u;
	int64_t i;
	bool b;
	sdp_uuid uu;
	char s[SDP_UUID_STRLEN];
	switch (e.type) {
	case SDP_NIL: fprintf(f, "<nil/>"); return 0;
	case SDP_UINT:
		if (e.len == 16) {
			fprintf(f, "<uint128 value=\"");
			xml_hex(f, e.data, 16);
			fprintf(f, "\"/>");
			return 0;
		}
		if (sdp_elem_uint(&e, &u) < 0)
			return -1;
		fprintf(f, "<uint%u value=\"0x%0*" PRIx64 "\"/>", e.len * 8, (int)e.len * 2, u);
		return 0;
	case SDP_INT:
		if (e.len == 16) {
			fprintf(f, "<int128 value=\"");
			xml_hex(f, e.data, 16);
			fprintf(f, "\"/>");
			return 0;
		}
		if (sdp_elem_int(&e, &i) < 0)
			return -1;
		fprintf(f, "<int%u value=\"%" PRId64 "\"/>", e.len * 8, i);
		return 0;
	case SDP_BOOL:
		if (sdp_elem_bool(&e, &b) < 0)
			return -1;
		fprintf(f, "<boolean value=\"%s\"/>", b ? "true" : "false");
		return 0;
	case SDP_UUID:
		if (sdp_elem_uuid(&e, &uu) < 0)
			return -1;
		if (e.len == 2)
			fprintf(f, "<uuid value=\"0x%02x%02x\"/>", uu.v[2], uu.v[3]);
		else if (e.len == 4)
			fprintf(f, "<uuid value=\"0x%02x%02x%02x%02x\"/>", uu.v[0], uu.v[1], uu.v[2], uu.v[3]);
		else
			fprintf(f, "<uuid value=\"%s\"/>", sdp_uuid_format128(&uu, s));
		return 0;
	case SDP_TEXT: /* as hex: no escaping, any bytes */
		fprintf(f, "<text encoding=\"hex\" value=\"");
		xml_hex(f, e.data, e.len);
		fprintf(f, "\"/>");
		return 0;
	case SDP_URL:
		fprintf(f, "<url value=\"");
		for (uint32_t k = 0; k < e.len; k++) {
			char c = (char)e.data[k];
			if (c == '&' || c == '<' || c == '>' || c == '"' || (unsigned char)c < 0x20)
				fprintf(f, "&#%d;", (unsigned char)c);
			else
				fputc(c, f);
		}
		fprintf(f, "\"/>");
		return 0;
	case SDP_SEQ:
	case SDP_ALT: {
		const char *tag = e.type == SDP_SEQ ? "sequence" : "alternate";
		fprintf(f, "<%s>", tag);
		sdp_iter it;
		sdp_elem c;
		if (sdp_iter_init(&it, &e) < 0)
			return -1;
		int r;
		while ((r = sdp_iter_next(&it, &c)) == 1) {
			size_t off = (size_t)(c.data - buf) - (c.total - c.len);
			if (xml_elem(f, buf + off, c.total, depth + 1) < 0)
				return -1;
		}
		if (r < 0)
			return -1;
		fprintf(f, "</%s>", tag);
		return 0;
	}
	}
	return -1;
}

char *kn_service_xml(const struct btsock_service *svc, enum btsock_proto proto, unsigned port, const char *call)
{
	sdp_service_desc d;
	sdp_uuid id, classes[BTSOCK_MAX_CLASSES];
	sdp_profile profiles[BTSOCK_MAX_PROFILES];
	if (desc_from_service(svc, &d, &id, classes, profiles, call) < 0)
		return NULL;
	if (proto == BTSOCK_RFCOMM)
		d.rfcomm_channel = (uint8_t)port;
	else
		d.l2cap_psm = (uint16_t)port;
	sdp_record *r = sdp_record_new();
	if (!r || sdp_record_build_service(r, &d) < 0) {
		sdp_record_free(r);
		api_fail(ENOMEM, "%s: the record could not be built (out of memory, or an attribute over 64 KiB)", call);
		return NULL;
	}
	char *xml = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&xml, &len);
	int rc = f ? 0 : -1;
	if (f) {
		fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><record>");
		for (size_t k = 0; k < r->n && rc == 0; k++) {
			if (r->attrs[k].id == SDP_ATTR_RECORD_HANDLE)
				continue; /* bluetoothd assigns the handle */
			fprintf(f, "<attribute id=\"0x%04x\">", r->attrs[k].id);
			rc = xml_elem(f, r->attrs[k].val, r->attrs[k].len, 0);
			fprintf(f, "</attribute>");
		}
		fprintf(f, "</record>");
		if (fclose(f) != 0)
			rc = -1;
	}
	sdp_record_free(r);
	if (rc < 0) {
		free(xml);
		api_fail(ENOMEM, "%s: the record could not be written as XML", call);
		return NULL;
	}
	return xml;
}

/* ------------------------------------------------------------------ finding services */

typedef struct {
	int fd;
	bool done;
	int err;
	const char *host, *name;
	svc_results *out;
} query_ctx;

static int q_send(void *ctx, const uint8_t *pdu, size_t len)
{
	query_ctx *q = ctx;
	ssize_t n = send(q->fd, pdu, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN ? -EAGAIN : -errno;
	return n == (ssize_t)len ? 0 : -EMSGSIZE;
}

static void q_done(void *ctx, int err, sdp_record *const *recs, size_t n)
{
	query_ctx *q = ctx;
	q->done = true;
	q->err = err;
	if (!err)
		svc_results_add(q->out, q->host, q->name, recs, n);
}

static const char *query_reason(int err)
{
	switch (err) {
	case EHOSTDOWN: return "no device answered at that address (page timeout)";
	case ECONNREFUSED: return "the device refused the SDP connection";
	case ETIMEDOUT: return "no complete answer within the time limit";
	case EPROTO: return "the device sent a malformed SDP response";
	case EMSGSIZE: return "the records are larger than 64 KiB";
	case ECONNRESET: return "the link went down";
	case EHOSTUNREACH: return "no kernel adapter can reach it (no adapter is up)";
	default: return strerror(err);
	}
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* One ServiceSearchAttribute query over a kernel L2CAP socket to peer's PSM 1: 0 or -errno. */
static int query_one(const kn_bdaddr *local, bool any, const kn_bdaddr *peer, const char *host, const sdp_uuid *uuid,
		     const char *name, svc_results *out)
{
	long end = now_ms() + FIND_BUDGET_MS;
	int fd = socket(AF_BLUETOOTH, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, KN_BTPROTO_L2CAP);
	if (fd < 0)
		return -errno;
	if (!any) {
		struct kn_sockaddr_l2 la = { .l2_family = AF_BLUETOOTH, .l2_bdaddr = *local };
		if (bind(fd, (struct sockaddr *)&la, sizeof la) < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
	}
	struct kn_sockaddr_l2 sa = { .l2_family = AF_BLUETOOTH, .l2_psm = htole16(1), .l2_bdaddr = *peer };
	int e = 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		e = errno;
		if (e == EINPROGRESS) {
			int r = kn_wait(fd, POLLOUT, (int)(end - now_ms()));
			socklen_t len = sizeof e;
			e = 0;
			if (r == 0)
				e = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
				e = errno;
		}
	}
	if (e) {
		close(fd);
		return -e;
	}
	query_ctx q = { .fd = fd, .host = host, .name = name, .out = out };
	sdp_query_params p = { .uuids = uuid, .n_uuids = 1 };
	sdp_query_io io = { .ctx = &q, .send = q_send };
	sdp_query *h;
	int rc = sdp_query_new(NULL, &p, &io, q_done, &q, &h);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	sdp_query_begin(h);
	uint8_t buf[4096];
	while (!q.done) {
		/* poll before every read: a blocking recv() on a kernel L2CAP socket can deadlock
		 * on Debian's 6.1.0-54 kernel (docs/KERNEL-CHECKS.md). (A request that met a full
		 * send buffer, -EAGAIN, is not retried: the query then times out.) */
		int left = (int)(end - now_ms());
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int r = left > 0 ? poll(&pf, 1, left) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			sdp_query_fail(h, r == 0 ? -ETIMEDOUT : -errno);
			break;
		}
		ssize_t n = (pf.revents & POLLIN) ? recv(fd, buf, sizeof buf, MSG_DONTWAIT) : -1;
		if (n > 0) {
			sdp_query_input(h, buf, (size_t)n);
		} else if (n < 0 && (pf.revents & POLLIN) && (errno == EAGAIN || errno == EINTR)) {
			continue;
		} else {
			int so = 0;
			socklen_t len = sizeof so;
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len);
			sdp_query_fail(h, -(so ? so : ECONNRESET));
		}
	}
	close(fd);
	if (out->nomem)
		return -ENOMEM;
	return q.err;
}

/* Every device a discovery through bluetoothd finds (about 5 s, as the user-space backend's
 * inquiry), asked in turn; devices that do not answer are skipped. */
static int find_nearby(const sdp_uuid *pattern, const char *name, struct btsock_service_info **out)
{
	kn_bdaddr local;
	int dev = kn_resolve_adapter(NULL, &local, "find_services");
	if (dev < 0)
		return -1;
	enum { MAXDEV = 32 };
	struct btsock_device *devs = calloc(MAXDEV, sizeof *devs);
	if (!devs)
		return api_fail(ENOMEM, "find_services: out of memory");
	int n = kn_dbus_discover(dev, 4 * 1280, devs, MAXDEV, "find_services");
	if (n < 0) {
		free(devs);
		return -1;
	}
	svc_results res = { 0 };
	for (int i = 0; i < n && i < MAXDEV; i++) {
		kn_bdaddr peer;
		if (kn_addr_parse(devs[i].addr, &peer) < 0)
			continue;
		int q = query_one(&local, false, &peer, devs[i].addr, pattern, name, &res);
		if (q == -ENOMEM)
			break;
	}
	free(devs);
	if (res.nomem) {
		btsock_free_services(res.v);
		return api_fail(ENOMEM, "find_services: out of memory");
	}
	if (!res.v && !(res.v = calloc(1, sizeof *res.v)))
		return api_fail(ENOMEM, "find_services: out of memory");
	*out = res.v;
	api_clear_error();
	return (int)res.n;
}

int kn_find_services(const char *addr, const char *uuid, const char *name, struct btsock_service_info **out)
{
	if (!out)
		return api_fail(EINVAL, "find_services: out is NULL");
	*out = NULL;
	sdp_uuid pattern = sdp_uuid16(SDP_UUID_PUBLIC_BROWSE_ROOT);
	if (uuid && sdp_uuid_parse(uuid, &pattern) < 0)
		return api_fail(EINVAL, "find_services: '%s' is not a UUID (like 1101 or 00001101-0000-1000-8000-00805F9B34FB)",
				uuid);
	if (!addr || !*addr)
		return find_nearby(&pattern, name, out);
	kn_bdaddr peer;
	if (kn_addr_parse(addr, &peer) < 0)
		return api_fail(EINVAL, "find_services: invalid address '%s': expected six hex bytes like 01:23:45:67:89:AB",
				addr);
	kn_bdaddr local;
	bool any;
	if (kn_default_dev(&local, &any, "find_services") < 0)
		return -1;
	if (!any && memcmp(&local, &peer, sizeof peer) == 0)
		return api_fail(EINVAL, "find_services: %s is this adapter's own address", addr);
	svc_results res = { 0 };
	int rc = query_one(&local, any, &peer, addr, &pattern, name, &res);
	if (rc < 0 || res.nomem) {
		btsock_free_services(res.v);
		if (rc == -ENOMEM || res.nomem)
			return api_fail(ENOMEM, "find_services: out of memory");
		return api_fail(-rc, "find_services on %s: %s", addr, query_reason(-rc));
	}
	if (!res.v && !(res.v = calloc(1, sizeof *res.v)))
		return api_fail(ENOMEM, "find_services: out of memory");
	*out = res.v;
	api_clear_error();
	return (int)res.n;
}
