/* service_info.c - see service_info.h. */
#include "service_info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdp/sdp.h"

static struct btsock_service_info *grow(svc_results *r)
{
	if (r->n + 1 >= r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		struct btsock_service_info *v = realloc(r->v, cap * sizeof *v);
		if (!v)
			return NULL;
		memset(v + r->n, 0, (cap - r->n) * sizeof *v);
		r->v = v;
		r->cap = cap;
	}
	return &r->v[r->n++];
}

/* One record's facts; -1 without memory for its raw copy. */
static int info_from_record(struct btsock_service_info *i, const char *host, const sdp_record *r)
{
	snprintf(i->host, sizeof i->host, "%s", host);
	i->handle = r->handle;
	sdp_record_name(r, i->name, sizeof i->name);
	sdp_record_description(r, i->description, sizeof i->description);
	sdp_record_provider(r, i->provider, sizeof i->provider);
	int ch = sdp_record_rfcomm_channel(r), psm = sdp_record_l2cap_psm(r);
	i->protocol = ch >= 0 ? BTSOCK_RFCOMM : BTSOCK_L2CAP;
	i->has_port = ch >= 0 || psm >= 0;
	i->port = ch >= 0 ? (unsigned)ch : psm >= 0 ? (unsigned)psm : 0;
	sdp_uuid u;
	if (sdp_record_service_id(r, &u) == 0)
		sdp_uuid_format(&u, i->service_id);
	sdp_uuid classes[BTSOCK_MAX_CLASSES];
	int n = sdp_record_service_classes(r, classes, BTSOCK_MAX_CLASSES);
	i->n_service_classes = n > BTSOCK_MAX_CLASSES ? BTSOCK_MAX_CLASSES : n < 0 ? 0 : (unsigned)n;
	for (unsigned k = 0; k < i->n_service_classes; k++)
		sdp_uuid_format(&classes[k], i->service_classes[k]);
	sdp_profile profiles[BTSOCK_MAX_PROFILES];
	n = sdp_record_profiles(r, profiles, BTSOCK_MAX_PROFILES);
	i->n_profiles = n > BTSOCK_MAX_PROFILES ? BTSOCK_MAX_PROFILES : n < 0 ? 0 : (unsigned)n;
	for (unsigned k = 0; k < i->n_profiles; k++) {
		sdp_uuid_format(&profiles[k].uuid, i->profiles[k].uuid);
		i->profiles[k].version = profiles[k].version;
	}
	size_t len = sdp_record_encode(r, NULL, 0);
	uint8_t *raw = malloc(len ? len : 1);
	if (!raw)
		return -1;
	sdp_record_encode(r, raw, len);
	i->record = raw;
	i->record_len = len;
	return 0;
}

void svc_results_add(svc_results *r, const char *host, const char *name, sdp_record *const *recs, size_t n)
{
	for (size_t k = 0; k < n && !r->nomem; k++) {
		char rname[256] = "";
		sdp_record_name(recs[k], rname, sizeof rname);
		if (name && strcmp(rname, name) != 0)
			continue;
		struct btsock_service_info *i = grow(r);
		if (!i || info_from_record(i, host, recs[k]) < 0) {
			if (i)
				memset(i, 0, sizeof *i), r->n--;
			r->nomem = true;
		}
	}
}
