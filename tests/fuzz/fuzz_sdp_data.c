/* fuzz_sdp_data.c - arbitrary bytes as an SDP data element (Core spec Vol 3 Part B 3): the
 * validator, the iterator over every nested sequence, the value accessors, and the record
 * readers on whatever decodes as an attribute list. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "sdp/sdp_data.h"
#include "sdp/sdp_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const sdp_elem *e, int depth)
{
	uint64_t u;
	int64_t i;
	bool b;
	sdp_uuid id;
	char txt[16], s[SDP_UUID_STRLEN];
	sdp_elem_uint(e, &u);
	sdp_elem_int(e, &i);
	sdp_elem_bool(e, &b);
	if (sdp_elem_uuid(e, &id) == 0)
		sdp_uuid_format(&id, s);
	sdp_elem_text(e, txt, sizeof txt);
	sdp_iter it;
	sdp_elem c;
	if (depth > SDP_MAX_DEPTH || sdp_iter_init(&it, e) < 0)
		return;
	while (sdp_iter_next(&it, &c) == 1)
		walk(&c, depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sdp_elem e;
	if (sdp_elem_parse(data, size, &e) == 0)
		walk(&e, 1); /* unvalidated: the iterator must still stay in bounds */
	if (sdp_elem_validate(data, size, 0, &e) < 0)
		return 0;
	sdp_record *r;
	if (sdp_record_from_attr_list(&e, &r) == 0) {
		char t[32];
		sdp_uuid u[4];
		sdp_profile p[4];
		sdp_record_name(r, t, sizeof t);
		sdp_record_description(r, t, sizeof t);
		sdp_record_provider(r, t, sizeof t);
		sdp_record_rfcomm_channel(r);
		sdp_record_l2cap_psm(r);
		sdp_record_service_classes(r, u, 4);
		sdp_record_profiles(r, p, 4);
		sdp_record_service_id(r, u);
		sdp_record_has_uuid(r, &u[0]);
		sdp_record_free(r);
	}
	/* re-encode the raw element and check it is still one valid element */
	uint8_t *out = malloc(size + 8);
	sdp_writer w;
	sdp_w_init(&w, out, size + 8);
	size_t m = sdp_w_seq_begin(&w);
	sdp_w_raw(&w, data, e.total);
	sdp_w_seq_end(&w, m);
	int n = sdp_w_finish(&w);
	if (n > 0 && sdp_elem_validate(out, (size_t)n, SDP_MAX_DEPTH + 1, &e) < 0)
		abort();
	free(out);
	return 0;
}
