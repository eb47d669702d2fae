/* sdp_record.c - SDP service records: attribute storage, building the standard record of a
 * service, and reading facts back out (Core spec Vol 3 Part B 2.2-2.3 and 5). */
#include "sdp/sdp_record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

sdp_record *sdp_record_new(void) { return calloc(1, sizeof(sdp_record)); }

void sdp_record_free(sdp_record *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->attrs[i].val);
	free(r->attrs);
	free(r);
}

/* Index of the first attribute with id >= the one asked for. */
static size_t find_pos(const sdp_record *r, uint16_t id)
{
	size_t lo = 0, hi = r->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->attrs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int sdp_record_set(sdp_record *r, uint16_t id, const uint8_t *val, size_t len)
{
	if (len > SDP_MAX_ATTR_LEN)
		return -EMSGSIZE;
	sdp_elem e;
	if (sdp_elem_validate(val, len, 0, &e) < 0 || e.total != len)
		return -EBADMSG;
	uint8_t *copy = malloc(len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, val, len);
	size_t pos = find_pos(r, id);
	if (pos < r->n && r->attrs[pos].id == id) {
		free(r->attrs[pos].val);
		r->attrs[pos].val = copy;
		r->attrs[pos].len = (uint32_t)len;
		return 0;
	}
	if (r->n == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 8;
		sdp_attr *a = realloc(r->attrs, ncap * sizeof *a);
		if (!a) {
			free(copy);
			return -ENOMEM;
		}
		r->attrs = a;
		r->cap = ncap;
	}
	memmove(r->attrs + pos + 1, r->attrs + pos, (r->n - pos) * sizeof *r->attrs);
	r->attrs[pos] = (sdp_attr){ id, (uint32_t)len, copy };
	r->n++;
	return 0;
}

int sdp_record_remove(sdp_record *r, uint16_t id)
{
	size_t pos = find_pos(r, id);
	if (pos >= r->n || r->attrs[pos].id != id)
		return -ENOENT;
	free(r->attrs[pos].val);
	memmove(r->attrs + pos, r->attrs + pos + 1, (r->n - pos - 1) * sizeof *r->attrs);
	r->n--;
	return 0;
}

const sdp_attr *sdp_record_get(const sdp_record *r, uint16_t id)
{
	size_t pos = find_pos(r, id);
	return pos < r->n && r->attrs[pos].id == id ? &r->attrs[pos] : NULL;
}

int sdp_record_elem(const sdp_record *r, uint16_t id, sdp_elem *out)
{
	const sdp_attr *a = sdp_record_get(r, id);
	if (!a)
		return -ENOENT;
	return sdp_elem_parse(a->val, a->len, out) < 0 ? -ENOENT : 0;
}

int sdp_record_set_handle(sdp_record *r, uint32_t handle)
{
	uint8_t b[5];
	sdp_writer w;
	sdp_w_init(&w, b, sizeof b);
	sdp_w_uint32(&w, handle); /* Vol 3 Part B 5.1.1: 32-bit unsigned integer */
	int err = sdp_record_set(r, SDP_ATTR_RECORD_HANDLE, b, sizeof b);
	if (err == 0)
		r->handle = handle;
	return err;
}

static bool elem_has_uuid(const sdp_elem *e, const sdp_uuid *u, int depth)
{
	if (e->type == SDP_UUID) {
		sdp_uuid v;
		return sdp_elem_uuid(e, &v) == 0 && sdp_uuid_eq(&v, u);
	}
	if ((e->type != SDP_SEQ && e->type != SDP_ALT) || depth >= SDP_MAX_DEPTH)
		return false;
	sdp_iter it;
	sdp_elem c;
	sdp_iter_init(&it, e);
	while (sdp_iter_next(&it, &c) == 1)
		if (elem_has_uuid(&c, u, depth + 1))
			return true;
	return false;
}

bool sdp_record_has_uuid(const sdp_record *r, const sdp_uuid *uuid)
{
	for (size_t i = 0; i < r->n; i++) {
		sdp_elem e;
		if (sdp_elem_parse(r->attrs[i].val, r->attrs[i].len, &e) == 0 && elem_has_uuid(&e, uuid, 1))
			return true;
	}
	return false;
}

int sdp_record_from_attr_list(const sdp_elem *list, sdp_record **out)
{
	sdp_iter it;
	if (sdp_iter_init(&it, list) < 0 || list->type != SDP_SEQ)
		return -EBADMSG;
	sdp_record *r = sdp_record_new();
	if (!r)
		return -ENOMEM;
	sdp_elem id, val;
	int got, err = 0;
	/* Vol 3 Part B 4.6.1 / 4.7.2: pairs of (uint16 attribute ID, value). */
	while ((got = sdp_iter_next(&it, &id)) == 1) {
		uint64_t v;
		if (sdp_elem_uint(&id, &v) < 0 || id.len != 2 || sdp_iter_next(&it, &val) != 1) {
			err = -EBADMSG;
			break;
		}
		const uint8_t *start = val.data - (val.total - val.len);
		err = sdp_record_set(r, (uint16_t)v, start, val.total);
		if (err < 0)
			break;
		if (v == SDP_ATTR_RECORD_HANDLE && val.type == SDP_UINT && val.len == 4) {
			uint64_t h;
			sdp_elem_uint(&val, &h);
			r->handle = (uint32_t)h;
		}
	}
	if (got < 0)
		err = -EBADMSG;
	if (err < 0) {
		sdp_record_free(r);
		return err;
	}
	*out = r;
	return 0;
}

static void write_record(sdp_writer *w, const sdp_record *r)
{
	size_t m = sdp_w_seq_begin(w);
	for (size_t i = 0; i < r->n; i++) {
		sdp_w_uint16(w, r->attrs[i].id);
		sdp_w_raw(w, r->attrs[i].val, r->attrs[i].len);
	}
	sdp_w_seq_end(w, m);
}

size_t sdp_record_encode(const sdp_record *r, uint8_t *out, size_t cap)
{
	sdp_writer w;
	sdp_w_init(&w, NULL, 0);
	write_record(&w, r);
	size_t need = w.len;
	if (out && cap >= need) {
		sdp_w_init(&w, out, cap);
		write_record(&w, r);
	}
	return need;
}

/* ------------------------------------------------------------------ building */

typedef void (*attr_fn)(sdp_writer *w, const sdp_service_desc *d);

/* Encodes an attribute with fn twice: once counting, once into a buffer of that size. */
static int set_built(sdp_record *r, uint16_t id, attr_fn fn, const sdp_service_desc *d)
{
	sdp_writer w;
	sdp_w_init(&w, NULL, 0);
	fn(&w, d);
	if (w.len > SDP_MAX_ATTR_LEN)
		return -EMSGSIZE;
	uint8_t *buf = malloc(w.len ? w.len : 1);
	if (!buf)
		return -ENOMEM;
	size_t n = w.len;
	sdp_w_init(&w, buf, n);
	fn(&w, d);
	int len = sdp_w_finish(&w);
	int err = len < 0 ? len : sdp_record_set(r, id, buf, (size_t)len);
	free(buf);
	return err;
}

static void w_class_list(sdp_writer *w, const sdp_service_desc *d)
{
	size_t m = sdp_w_seq_begin(w); /* Vol 3 Part B 5.1.2: sequence of UUIDs */
	for (size_t i = 0; i < d->n_classes; i++)
		sdp_w_uuid(w, &d->classes[i]);
	if (d->n_classes == 0 && d->service_id)
		sdp_w_uuid(w, d->service_id);
	sdp_w_seq_end(w, m);
}

static void w_service_id(sdp_writer *w, const sdp_service_desc *d) { sdp_w_uuid(w, d->service_id); }

static void w_protocols(sdp_writer *w, const sdp_service_desc *d)
{
	/* Vol 3 Part B 5.1.5: a sequence of protocol descriptors, each a sequence of the
	 * protocol UUID and its parameters, lowest layer first. */
	size_t m = sdp_w_seq_begin(w);
	size_t p = sdp_w_seq_begin(w);
	sdp_uuid l2 = sdp_uuid16(SDP_UUID_L2CAP);
	sdp_w_uuid(w, &l2);
	if (!d->rfcomm_channel && d->l2cap_psm)
		sdp_w_uint16(w, d->l2cap_psm);
	sdp_w_seq_end(w, p);
	if (d->rfcomm_channel) {
		p = sdp_w_seq_begin(w);
		sdp_uuid rf = sdp_uuid16(SDP_UUID_RFCOMM);
		sdp_w_uuid(w, &rf);
		sdp_w_uint8(w, d->rfcomm_channel);
		sdp_w_seq_end(w, p);
	}
	for (size_t i = 0; i < d->n_protocols; i++) {
		p = sdp_w_seq_begin(w);
		sdp_w_uuid(w, &d->protocols[i]);
		sdp_w_seq_end(w, p);
	}
	sdp_w_seq_end(w, m);
}

static void w_browse(sdp_writer *w, const sdp_service_desc *d)
{
	size_t m = sdp_w_seq_begin(w); /* Vol 3 Part B 5.1.7 */
	sdp_uuid root = sdp_uuid16(SDP_UUID_PUBLIC_BROWSE_ROOT);
	sdp_w_uuid(w, &root);
	sdp_w_seq_end(w, m);
}

static void w_lang_base(sdp_writer *w, const sdp_service_desc *d)
{
	/* Vol 3 Part B 5.1.8: triplets (ISO 639 language, IANA MIBenum encoding, base ID). */
	size_t m = sdp_w_seq_begin(w);
	sdp_w_uint16(w, 0x656e); /* "en" */
	sdp_w_uint16(w, 106);    /* UTF-8 */
	sdp_w_uint16(w, SDP_PRIMARY_LANG_BASE);
	sdp_w_seq_end(w, m);
}

static void w_profiles(sdp_writer *w, const sdp_service_desc *d)
{
	/* Vol 3 Part B 5.1.11: sequence of (profile UUID, uint16 version) sequences. */
	size_t m = sdp_w_seq_begin(w);
	for (size_t i = 0; i < d->n_profiles; i++) {
		size_t p = sdp_w_seq_begin(w);
		sdp_w_uuid(w, &d->profiles[i].uuid);
		sdp_w_uint16(w, d->profiles[i].version);
		sdp_w_seq_end(w, p);
	}
	sdp_w_seq_end(w, m);
}

static int set_text(sdp_record *r, uint16_t id, const char *s)
{
	size_t n = strlen(s);
	if (n > SDP_MAX_ATTR_LEN - 5)
		return -EMSGSIZE;
	uint8_t *buf = malloc(n + 5);
	if (!buf)
		return -ENOMEM;
	sdp_writer w;
	sdp_w_init(&w, buf, n + 5);
	sdp_w_text(&w, s, n);
	int len = sdp_w_finish(&w);
	int err = len < 0 ? len : sdp_record_set(r, id, buf, (size_t)len);
	free(buf);
	return err;
}

int sdp_record_build_service(sdp_record *r, const sdp_service_desc *d)
{
	int err = set_built(r, SDP_ATTR_SERVICE_CLASS_ID_LIST, w_class_list, d);
	if (!err && d->service_id)
		err = set_built(r, SDP_ATTR_SERVICE_ID, w_service_id, d);
	if (!err && (d->rfcomm_channel || d->l2cap_psm))
		err = set_built(r, SDP_ATTR_PROTOCOL_DESCRIPTOR_LIST, w_protocols, d);
	if (!err)
		err = set_built(r, SDP_ATTR_BROWSE_GROUP_LIST, w_browse, d);
	if (!err)
		err = set_built(r, SDP_ATTR_LANGUAGE_BASE_LIST, w_lang_base, d);
	if (!err && d->n_profiles)
		err = set_built(r, SDP_ATTR_PROFILE_DESCRIPTOR_LIST, w_profiles, d);
	if (!err && d->name)
		err = set_text(r, SDP_PRIMARY_LANG_BASE + SDP_ATTR_OFF_NAME, d->name);
	if (!err && d->description)
		err = set_text(r, SDP_PRIMARY_LANG_BASE + SDP_ATTR_OFF_DESCRIPTION, d->description);
	if (!err && d->provider)
		err = set_text(r, SDP_PRIMARY_LANG_BASE + SDP_ATTR_OFF_PROVIDER, d->provider);
	return err;
}

/* ------------------------------------------------------------------ reading */

/* The base of the first LanguageBaseAttributeIDList triplet (Vol 3 Part B 5.1.8). */
static uint16_t lang_base(const sdp_record *r)
{
	sdp_elem e, c;
	sdp_iter it;
	if (sdp_record_elem(r, SDP_ATTR_LANGUAGE_BASE_LIST, &e) < 0 || sdp_iter_init(&it, &e) < 0)
		return SDP_PRIMARY_LANG_BASE;
	uint64_t v = SDP_PRIMARY_LANG_BASE;
	for (int i = 0; i < 3; i++)
		if (sdp_iter_next(&it, &c) != 1 || sdp_elem_uint(&c, &v) < 0)
			return SDP_PRIMARY_LANG_BASE;
	return (uint16_t)v;
}

int sdp_record_text_elem(const sdp_record *r, uint16_t off, sdp_elem *out)
{
	uint32_t id = (uint32_t)lang_base(r) + off;
	if (id > 0xffff || sdp_record_elem(r, (uint16_t)id, out) < 0 || out->type != SDP_TEXT)
		return -ENOENT;
	return (uint16_t)id;
}

static int text_at(const sdp_record *r, uint16_t off, char *out, size_t cap)
{
	sdp_elem e;
	if (sdp_record_text_elem(r, off, &e) < 0)
		return -ENOENT;
	int n = sdp_elem_text(&e, out, cap);
	return n < 0 ? -ENOENT : n;
}

int sdp_record_name(const sdp_record *r, char *out, size_t cap) { return text_at(r, SDP_ATTR_OFF_NAME, out, cap); }
int sdp_record_description(const sdp_record *r, char *out, size_t cap)
{
	return text_at(r, SDP_ATTR_OFF_DESCRIPTION, out, cap);
}
int sdp_record_provider(const sdp_record *r, char *out, size_t cap)
{
	return text_at(r, SDP_ATTR_OFF_PROVIDER, out, cap);
}

/* The parameter after protocol proto's UUID in ProtocolDescriptorList (Vol 3 Part B 5.1.5).
 * An alternative of stacks: the first one is read. */
static int protocol_param(const sdp_record *r, uint16_t proto)
{
	sdp_elem list, d, u, p;
	sdp_iter it, dit;
	if (sdp_record_elem(r, SDP_ATTR_PROTOCOL_DESCRIPTOR_LIST, &list) < 0)
		return -ENOENT;
	if (list.type == SDP_ALT) {
		if (sdp_iter_init(&it, &list) < 0 || sdp_iter_next(&it, &d) != 1)
			return -ENOENT;
		list = d;
	}
	if (sdp_iter_init(&it, &list) < 0)
		return -ENOENT;
	sdp_uuid want = sdp_uuid16(proto);
	while (sdp_iter_next(&it, &d) == 1) {
		sdp_uuid got;
		uint64_t v;
		if (sdp_iter_init(&dit, &d) < 0 || sdp_iter_next(&dit, &u) != 1 ||
		    sdp_elem_uuid(&u, &got) < 0 || !sdp_uuid_eq(&got, &want))
			continue;
		if (sdp_iter_next(&dit, &p) != 1 || sdp_elem_uint(&p, &v) < 0 || v > 0xffff)
			return -ENOENT;
		return (int)v;
	}
	return -ENOENT;
}

int sdp_record_rfcomm_channel(const sdp_record *r) { return protocol_param(r, SDP_UUID_RFCOMM); }
int sdp_record_l2cap_psm(const sdp_record *r) { return protocol_param(r, SDP_UUID_L2CAP); }

int sdp_record_service_classes(const sdp_record *r, sdp_uuid *out, size_t max)
{
	sdp_elem e, c;
	sdp_iter it;
	if (sdp_record_elem(r, SDP_ATTR_SERVICE_CLASS_ID_LIST, &e) < 0 || sdp_iter_init(&it, &e) < 0)
		return 0;
	int n = 0;
	sdp_uuid u;
	while (sdp_iter_next(&it, &c) == 1 && n < 0x7fff) {
		if (sdp_elem_uuid(&c, &u) < 0)
			continue;
		if ((size_t)n < max)
			out[n] = u;
		n++;
	}
	return n;
}

int sdp_record_profiles(const sdp_record *r, sdp_profile *out, size_t max)
{
	sdp_elem e, d, u, v;
	sdp_iter it, dit;
	if (sdp_record_elem(r, SDP_ATTR_PROFILE_DESCRIPTOR_LIST, &e) < 0 || sdp_iter_init(&it, &e) < 0)
		return 0;
	int n = 0;
	while (sdp_iter_next(&it, &d) == 1 && n < 0x7fff) {
		sdp_profile p = { .version = 0 };
		uint64_t ver = 0;
		if (sdp_iter_init(&dit, &d) < 0 || sdp_iter_next(&dit, &u) != 1 ||
		    sdp_elem_uuid(&u, &p.uuid) < 0)
			continue;
		if (sdp_iter_next(&dit, &v) == 1 && sdp_elem_uint(&v, &ver) == 0)
			p.version = (uint16_t)ver;
		if ((size_t)n < max)
			out[n] = p;
		n++;
	}
	return n;
}

int sdp_record_service_id(const sdp_record *r, sdp_uuid *out)
{
	sdp_elem e;
	if (sdp_record_elem(r, SDP_ATTR_SERVICE_ID, &e) < 0 || sdp_elem_uuid(&e, out) < 0)
		return -ENOENT;
	return 0;
}
