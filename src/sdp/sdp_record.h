/* sdp_record.h - SDP service records (Core spec Vol 3 Part B 2.2-2.3 and 5).
 *
 * A record is a handle and a list of attributes sorted by attribute ID, each holding one
 * encoded data element. Helpers build the record PyBluez's advertise_service() describes and
 * read the usual facts (name, protocol and port, classes, profiles) back out of a record a
 * peer sent. */
#ifndef BTSOCK_SDP_RECORD_H
#define BTSOCK_SDP_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sdp/sdp_data.h"

/* Universal attribute IDs (Vol 3 Part B 5.1) and the SDP server's own (5.2). */
enum {
	SDP_ATTR_RECORD_HANDLE = 0x0000,
	SDP_ATTR_SERVICE_CLASS_ID_LIST = 0x0001,
	SDP_ATTR_RECORD_STATE = 0x0002,
	SDP_ATTR_SERVICE_ID = 0x0003,
	SDP_ATTR_PROTOCOL_DESCRIPTOR_LIST = 0x0004,
	SDP_ATTR_BROWSE_GROUP_LIST = 0x0005,
	SDP_ATTR_LANGUAGE_BASE_LIST = 0x0006,
	SDP_ATTR_TIME_TO_LIVE = 0x0007,
	SDP_ATTR_AVAILABILITY = 0x0008,
	SDP_ATTR_PROFILE_DESCRIPTOR_LIST = 0x0009,
	SDP_ATTR_DOC_URL = 0x000a,
	SDP_ATTR_CLIENT_EXEC_URL = 0x000b,
	SDP_ATTR_ICON_URL = 0x000c,
	SDP_ATTR_ADD_PROTOCOL_DESCRIPTOR_LISTS = 0x000d,
	SDP_ATTR_VERSION_NUMBER_LIST = 0x0200,
	SDP_ATTR_DATABASE_STATE = 0x0201,
};
/* Offsets from the language base (Vol 3 Part B 5.1.15-5.1.17), default base 0x0100. */
enum { SDP_ATTR_OFF_NAME = 0, SDP_ATTR_OFF_DESCRIPTION = 1, SDP_ATTR_OFF_PROVIDER = 2 };
#define SDP_PRIMARY_LANG_BASE 0x0100

/* Assigned numbers used here (Assigned Numbers, Service Discovery). */
enum {
	SDP_UUID_SDP = 0x0001,
	SDP_UUID_RFCOMM = 0x0003,
	SDP_UUID_OBEX = 0x0008,
	SDP_UUID_L2CAP = 0x0100,
	SDP_UUID_SDP_SERVER = 0x1000,
	SDP_UUID_PUBLIC_BROWSE_ROOT = 0x1002,
	SDP_UUID_SERIAL_PORT = 0x1101,
};

/* The largest attribute value a record holds. */
#define SDP_MAX_ATTR_LEN 0xffff

typedef struct {
	uint16_t id;
	uint32_t len;
	uint8_t *val; /* one validated data element */
} sdp_attr;

typedef struct sdp_record {
	uint32_t handle;
	size_t n, cap;
	sdp_attr *attrs; /* sorted by id */
} sdp_record;

sdp_record *sdp_record_new(void);
void sdp_record_free(sdp_record *r);
/* Sets (or replaces) an attribute. val must be exactly one valid data element. 0, -EBADMSG,
 * -EMSGSIZE (over SDP_MAX_ATTR_LEN) or -ENOMEM. */
int sdp_record_set(sdp_record *r, uint16_t id, const uint8_t *val, size_t len);
int sdp_record_remove(sdp_record *r, uint16_t id);
const sdp_attr *sdp_record_get(const sdp_record *r, uint16_t id);
/* The attribute's element, or -ENOENT. */
int sdp_record_elem(const sdp_record *r, uint16_t id, sdp_elem *out);
/* Sets r->handle and attribute 0x0000 (uint32). */
int sdp_record_set_handle(sdp_record *r, uint32_t handle);
/* Whether uuid occurs anywhere in any attribute value (Vol 3 Part B 2.5.2 search rule). */
bool sdp_record_has_uuid(const sdp_record *r, const sdp_uuid *uuid);
/* Builds a record from an attribute list (a sequence of attribute ID / value pairs, IDs
 * ascending, Vol 3 Part B 4.6.1). 0, -EBADMSG or -ENOMEM. */
int sdp_record_from_attr_list(const sdp_elem *list, sdp_record **out);

/* Encodes r as an attribute list (a sequence of attribute ID / value pairs, IDs ascending,
 * Vol 3 Part B 4.7.2) into out[0..cap). Returns the length it needs (out may be NULL to
 * measure); nothing is written when cap is too small. */
size_t sdp_record_encode(const sdp_record *r, uint8_t *out, size_t cap);

/* What PyBluez advertise_service() takes. Every field may be left 0/NULL. */
typedef struct {
	sdp_uuid uuid;
	uint16_t version; /* e.g. 0x0100 */
} sdp_profile;

typedef struct {
	const char *name;
	const char *description;
	const char *provider;
	const sdp_uuid *service_id;     /* ServiceID 0x0003 */
	const sdp_uuid *classes;        /* ServiceClassIDList 0x0001 */
	size_t n_classes;
	const sdp_profile *profiles;    /* BluetoothProfileDescriptorList 0x0009 */
	size_t n_profiles;
	uint8_t rfcomm_channel;         /* 1-30: L2CAP + RFCOMM(channel) */
	uint16_t l2cap_psm;             /* without an RFCOMM channel: L2CAP(psm) */
	const sdp_uuid *protocols;      /* further protocols after those, e.g. OBEX */
	size_t n_protocols;
} sdp_service_desc;

/* Fills r with the attributes of a service described by d: ServiceClassIDList (the service
 * id if no class is given), ServiceID, ProtocolDescriptorList, BrowseGroupList
 * (PublicBrowseRoot), LanguageBaseAttributeIDList (en, UTF-8, 0x0100), profiles, name,
 * description, provider. Not the handle. 0 or -errno. */
int sdp_record_build_service(sdp_record *r, const sdp_service_desc *d);

/* Text attributes at the record's primary language base (0x0100 if it has none). Returns
 * the length copied (NUL terminated) or -ENOENT. */
int sdp_record_name(const sdp_record *r, char *out, size_t cap);
int sdp_record_description(const sdp_record *r, char *out, size_t cap);
int sdp_record_provider(const sdp_record *r, char *out, size_t cap);
/* The text element at offset off (SDP_ATTR_OFF_*) from the primary language base: its
 * attribute ID and *out, or -ENOENT (absent, or not text). */
int sdp_record_text_elem(const sdp_record *r, uint16_t off, sdp_elem *out);
/* From ProtocolDescriptorList: the RFCOMM channel, or the L2CAP PSM; -ENOENT if absent. */
int sdp_record_rfcomm_channel(const sdp_record *r);
int sdp_record_l2cap_psm(const sdp_record *r);
/* ServiceClassIDList / BluetoothProfileDescriptorList entries: the number found (at most
 * max are stored), 0 if none. */
int sdp_record_service_classes(const sdp_record *r, sdp_uuid *out, size_t max);
int sdp_record_profiles(const sdp_record *r, sdp_profile *out, size_t max);
/* ServiceID, or -ENOENT. */
int sdp_record_service_id(const sdp_record *r, sdp_uuid *out);

#endif
