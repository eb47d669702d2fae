/* describe.c - the public calls that need no backend: SDP records and device classes as text,
 * and freeing btsock_find_services() results (the same layout from every backend). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "api_error.h"
#include "btsock.h"
#include "gap/gap.h"
#include "sdp/sdp.h"
#include "sdp/sdp_text.h"

void btsock_free_services(struct btsock_service_info *services)
{
	if (!services)
		return;
	for (struct btsock_service_info *i = services; i->host[0]; i++)
		free((void *)i->record);
	free(services);
}

int btsock_describe_record(const unsigned char *record, size_t len, char *buf, size_t cap)
{
	sdp_elem top;
	sdp_record *r = NULL;
	if (!record || sdp_elem_validate(record, len, SDP_MAX_DEPTH, &top) < 0 || top.total != len ||
	    sdp_record_from_attr_list(&top, &r) < 0)
		return api_fail(EINVAL, "describe_record: not a valid SDP attribute list");
	size_t n = sdp_record_describe(r, buf, cap);
	sdp_record_free(r);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

int btsock_describe_class(unsigned device_class, char *buf, size_t cap)
{
	char tmp[256];
	gap_cod_describe(device_class & 0xffffff, tmp, sizeof tmp);
	return snprintf(buf, cap, "%s", tmp);
}
