/* sdp_text.c - readable text for SDP records (see sdp_text.h). */
#include "sdp/sdp_text.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Assigned Numbers, Service Discovery: protocol and service class UUIDs (16-bit). */
static const struct {
	uint16_t uuid;
	const char *name;
} uuid_names[] = {
	{ 0x0001, "SDP" },
	{ 0x0003, "RFCOMM" },
	{ 0x0005, "TCS-BIN" },
	{ 0x0008, "OBEX" },
	{ 0x000f, "BNEP" },
	{ 0x0011, "HIDP" },
	{ 0x0017, "AVCTP" },
	{ 0x0019, "AVDTP" },
	{ 0x001e, "MCAP Control Channel" },
	{ 0x0100, "L2CAP" },
	{ 0x1000, "SDP Server" },
	{ 0x1001, "Browse Group Descriptor" },
	{ 0x1002, "Public Browse Group" },
	{ 0x1101, "Serial Port" },
	{ 0x1102, "LAN Access Using PPP" },
	{ 0x1103, "Dialup Networking" },
	{ 0x1104, "IrMC Sync" },
	{ 0x1105, "OBEX Object Push" },
	{ 0x1106, "OBEX File Transfer" },
	{ 0x1108, "Headset" },
	{ 0x110a, "Audio Source" },
	{ 0x110b, "Audio Sink" },
	{ 0x110c, "AV Remote Target" },
	{ 0x110d, "Advanced Audio" },
	{ 0x110e, "AV Remote" },
	{ 0x110f, "AV Remote Controller" },
	{ 0x1112, "Headset Audio Gateway" },
	{ 0x1115, "PAN User" },
	{ 0x1116, "Network Access Point" },
	{ 0x1117, "Group Network" },
	{ 0x111e, "Handsfree" },
	{ 0x111f, "Handsfree Audio Gateway" },
	{ 0x1124, "Human Interface Device" },
	{ 0x112d, "SIM Access" },
	{ 0x112f, "Phonebook Access - PSE" },
	{ 0x1130, "Phonebook Access" },
	{ 0x1132, "Message Access - Server" },
	{ 0x1134, "Message Access" },
	{ 0x1200, "PnP Information" },
	{ 0x1201, "Generic Networking" },
	{ 0x1203, "Generic Audio" },
};

const char *sdp_uuid_name(const sdp_uuid *u)
{
	uint32_t v;
	if (!sdp_uuid_short(u, &v))
		return NULL;
	for (size_t i = 0; i < sizeof uuid_names / sizeof uuid_names[0]; i++)
		if (uuid_names[i].uuid == v)
			return uuid_names[i].name;
	return NULL;
}

/* ------------------------------------------------------------------ output */

typedef struct {
	char *p;
	size_t cap, len;
} text;

__attribute__((format(printf, 2, 3))) static void put(text *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t room = t->len < t->cap ? t->cap - t->len : 0;
	int n = vsnprintf(room ? t->p + t->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->len += (size_t)n;
}

static void put_indent(text *t, int depth) { put(t, "%*s", depth * 2, ""); }

static void put_uuid(text *t, const sdp_uuid *u)
{
	char s[SDP_UUID_STRLEN];
	const char *name = sdp_uuid_name(u);
	if (name)
		put(t, "\"%s\" (0x%s)", name, sdp_uuid_format(u, s));
	else
		put(t, "UUID %s", sdp_uuid_format(u, s));
}

/* Text and URLs quoted, bytes outside printable ASCII as \xNN so nothing from the air
 * reaches a terminal raw. */
static void put_quoted(text *t, const sdp_elem *e)
{
	put(t, "\"");
	for (uint32_t i = 0; i < e->len; i++) {
		uint8_t c = e->data[i];
		if (c == '"' || c == '\\')
			put(t, "\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			put(t, "%c", c);
		else
			put(t, "\\x%02x", c);
	}
	put(t, "\"");
}

static void put_hex(text *t, const sdp_elem *e)
{
	put(t, "0x");
	for (uint32_t k = 0; k < e->len; k++)
		put(t, "%02x", e->data[k]);
}

static void put_elem(text *t, const sdp_elem *e);

static void put_group(text *t, const sdp_elem *e)
{
	sdp_iter it;
	sdp_elem c;
	bool first = true;
	put(t, e->type == SDP_SEQ ? "{ " : "alt { ");
	sdp_iter_init(&it, e);
	while (sdp_iter_next(&it, &c) == 1) {
		put(t, first ? "" : ", ");
		put_elem(t, &c);
		first = false;
	}
	put(t, first ? "}" : " }");
}

/* One element on one line, sequences inline (their depth was bounded when the record was
 * validated on arrival, Vol 3 Part B 3). */
static void put_elem(text *t, const sdp_elem *e)
{
	uint64_t u;
	int64_t i;
	bool b;
	sdp_uuid id;
	switch (e->type) {
	case SDP_NIL:
		put(t, "nil");
		break;
	case SDP_UINT:
		if (sdp_elem_uint(e, &u) == 0)
			put(t, "uint%u 0x%0*llx", (unsigned)e->len * 8, (int)e->len * 2, (unsigned long long)u);
		else
			put(t, "uint128 "), put_hex(t, e);
		break;
	case SDP_INT:
		if (sdp_elem_int(e, &i) == 0)
			put(t, "int%u %lld", (unsigned)e->len * 8, (long long)i);
		else
			put(t, "int128 "), put_hex(t, e);
		break;
	case SDP_UUID:
		if (sdp_elem_uuid(e, &id) == 0)
			put_uuid(t, &id);
		break;
	case SDP_TEXT:
		put_quoted(t, e);
		break;
	case SDP_URL:
		put(t, "url ");
		put_quoted(t, e);
		break;
	case SDP_BOOL:
		if (sdp_elem_bool(e, &b) == 0)
			put(t, b ? "true" : "false");
		break;
	case SDP_SEQ:
	case SDP_ALT:
		put_group(t, e);
		break;
	}
}

/* ------------------------------------------------------------------ known attributes */

/* A list of UUIDs, one per line (ServiceClassIDList, BrowseGroupList: Vol 3 Part B 5.1.2, 5.1.7). */
static void put_uuid_list(text *t, const sdp_elem *e)
{
	sdp_iter it;
	sdp_elem c;
	sdp_iter_init(&it, e);
	while (sdp_iter_next(&it, &c) == 1) {
		put_indent(t, 1);
		put_elem(t, &c);
		put(t, "\n");
	}
}

/* ProtocolDescriptorList (Vol 3 Part B 5.1.5): a sequence of protocol descriptors, each a
 * sequence of the protocol UUID and its parameters (RFCOMM's channel, L2CAP's PSM). */
static void put_protocols(text *t, const sdp_elem *e)
{
	sdp_iter it, pit;
	sdp_elem d, c;
	sdp_iter_init(&it, e);
	while (sdp_iter_next(&it, &d) == 1) {
		if (sdp_iter_init(&pit, &d) < 0 || sdp_iter_next(&pit, &c) != 1) {
			put_indent(t, 1), put_elem(t, &d), put(t, "\n");
			continue;
		}
		sdp_uuid proto;
		bool is_uuid = sdp_elem_uuid(&c, &proto) == 0;
		put_indent(t, 1), put_elem(t, &c), put(t, "\n");
		sdp_uuid rf = sdp_uuid16(SDP_UUID_RFCOMM), l2 = sdp_uuid16(SDP_UUID_L2CAP);
		bool channel = is_uuid && sdp_uuid_eq(&proto, &rf);
		const char *label = channel ? "Channel" : is_uuid && sdp_uuid_eq(&proto, &l2) ? "PSM" : "Parameter";
		uint64_t v;
		while (sdp_iter_next(&pit, &c) == 1) {
			put_indent(t, 2);
			if (c.type == SDP_UINT && sdp_elem_uint(&c, &v) == 0)
				put(t, channel ? "%s: %llu\n" : "%s: 0x%04llx\n", label,
				    (unsigned long long)v);
			else
				put(t, "%s: ", label), put_elem(t, &c), put(t, "\n");
		}
	}
}

/* BluetoothProfileDescriptorList (Vol 3 Part B 5.1.11): (profile UUID, uint16 version). */
static void put_profiles(text *t, const sdp_elem *e)
{
	sdp_iter it, pit;
	sdp_elem d, c;
	sdp_iter_init(&it, e);
	while (sdp_iter_next(&it, &d) == 1) {
		if (sdp_iter_init(&pit, &d) < 0) {
			put_indent(t, 1), put_elem(t, &d), put(t, "\n");
			continue;
		}
		uint64_t v;
		for (int k = 0; sdp_iter_next(&pit, &c) == 1; k++) {
			put_indent(t, k ? 2 : 1);
			if (k == 1 && c.type == SDP_UINT && sdp_elem_uint(&c, &v) == 0)
				put(t, "Version: 0x%04llx\n", (unsigned long long)v);
			else
				put_elem(t, &c), put(t, "\n");
		}
	}
}

typedef void (*list_fn)(text *t, const sdp_elem *e);

static const struct {
	uint16_t id;
	const char *label;
	list_fn list; /* for sequences: one entry per line */
} known[] = {
	{ SDP_ATTR_SERVICE_CLASS_ID_LIST, "Service Class ID List", put_uuid_list },
	{ SDP_ATTR_SERVICE_ID, "Service ID", NULL },
	{ SDP_ATTR_PROTOCOL_DESCRIPTOR_LIST, "Protocol Descriptor List", put_protocols },
	{ SDP_ATTR_BROWSE_GROUP_LIST, "Browse Group List", put_uuid_list },
	{ SDP_ATTR_LANGUAGE_BASE_LIST, "Language Base Attr List", NULL },
	{ SDP_ATTR_PROFILE_DESCRIPTOR_LIST, "Profile Descriptor List", put_profiles },
	{ SDP_ATTR_DOC_URL, "Documentation URL", NULL },
	{ SDP_ATTR_CLIENT_EXEC_URL, "Client Executable URL", NULL },
	{ SDP_ATTR_ICON_URL, "Icon URL", NULL },
};

/* ServiceName, ServiceDescription, ProviderName at the language base (Vol 3 Part B 5.1.15-17). */
static const struct {
	uint16_t off;
	const char *label;
} text_attrs[] = {
	{ SDP_ATTR_OFF_NAME, "Service Name" },
	{ SDP_ATTR_OFF_DESCRIPTION, "Service Description" },
	{ SDP_ATTR_OFF_PROVIDER, "Service Provider" },
};

static void put_text_attrs(text *t, const sdp_record *r)
{
	sdp_elem e;
	for (size_t k = 0; k < sizeof text_attrs / sizeof text_attrs[0]; k++) {
		if (sdp_record_text_elem(r, text_attrs[k].off, &e) < 0)
			continue;
		put(t, "%s: ", text_attrs[k].label);
		put_quoted(t, &e);
		put(t, "\n");
	}
}

/* Whether id is one of the text attributes put_text_attrs printed. */
static bool is_text_attr(const sdp_record *r, uint16_t id)
{
	sdp_elem e;
	for (size_t k = 0; k < sizeof text_attrs / sizeof text_attrs[0]; k++)
		if (sdp_record_text_elem(r, text_attrs[k].off, &e) == id)
			return true;
	return false;
}

static void put_attr(text *t, const sdp_record *r, const sdp_attr *a)
{
	sdp_elem e;
	if (a->id == SDP_ATTR_RECORD_HANDLE || is_text_attr(r, a->id))
		return;
	if (sdp_elem_parse(a->val, a->len, &e) < 0)
		return;
	for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
		if (known[k].id != a->id)
			continue;
		if (known[k].list && e.type == SDP_SEQ) {
			put(t, "%s:\n", known[k].label);
			known[k].list(t, &e);
		} else {
			put(t, "%s: ", known[k].label);
			put_elem(t, &e);
			put(t, "\n");
		}
		return;
	}
	put(t, "Attribute 0x%04x: ", a->id);
	put_elem(t, &e);
	put(t, "\n");
}

size_t sdp_record_describe(const sdp_record *r, char *out, size_t cap)
{
	text t = { out, cap, 0 };
	if (cap)
		out[0] = 0;
	put_text_attrs(&t, r);
	put(&t, "Service RecHandle: 0x%x\n", (unsigned)r->handle);
	for (size_t i = 0; i < r->n; i++)
		put_attr(&t, r, &r->attrs[i]);
	return t.len;
}
