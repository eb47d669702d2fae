/* fuzz_sdp_pdu.c - arbitrary bytes as SDP request PDUs (Core spec Vol 3 Part B 4) to a server
 * holding a few records, one of them large enough to need continuation. The first byte picks
 * the MTU; the rest is split into requests by a length prefix, and a valid continuation
 * state from the previous response is spliced in when the input asks for it. Every response
 * must fit the MTU and carry a consistent ParameterLength. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "sdp/sdp.h"
#include "sdp/sdp_client_int.h"
#include "sdp/sdp_server_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sdp_server *make_server(void)
{
	sdp_server *s = sdp_server_new(NULL);
	static char big[900];
	memset(big, 'b', sizeof big - 1);
	sdp_uuid spp = sdp_uuid16(0x1101);
	sdp_profile prof = { sdp_uuid16(0x1101), 0x0100 };
	sdp_service_desc a = { .name = "A", .description = big, .classes = &spp, .n_classes = 1,
			       .profiles = &prof, .n_profiles = 1, .rfcomm_channel = 1 };
	sdp_service_desc b = { .name = "B", .classes = &spp, .n_classes = 1, .l2cap_psm = 0x1001 };
	sdp_server_add_service(s, &a);
	sdp_server_add_service(s, &b);
	return s;
}

/* The client's parser gets the same bytes as responses. */
static int null_send(void *ctx, const uint8_t *p, size_t len) { return 0; }
static void null_cb(void *ctx, int err, sdp_record *const *recs, size_t n) {}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	sdp_server *s = make_server();
	uint16_t mtu = (uint16_t)(48 + data[0] * 4);
	bt_reader r = bt_reader_init(data + 1, size - 1);
	uint8_t rsp[4096], req[1100];
	uint8_t cont[16];
	size_t cont_len = 0;
	while (bt_reader_left(&r) >= 1) {
		uint8_t n = bt_read_u8(&r);
		bool splice = n & 0x80;
		n &= 0x7f;
		size_t len = n > bt_reader_left(&r) ? bt_reader_left(&r) : n;
		const uint8_t *p = bt_read_bytes(&r, len);
		if (!p)
			break;
		memcpy(req, p, len);
		if (splice && cont_len && len >= 5) {
			/* replace the tail by the last continuation state */
			req[len] = (uint8_t)cont_len;
			memcpy(req + len + 1, cont, cont_len);
			len += 1 + cont_len;
			put_be16(req + 3, (uint16_t)(len - 5));
		}
		int rn = sdp_server_handle_pdu(s, req, len, mtu, rsp, sizeof rsp);
		if (rn < 0 || rn > mtu || (rn > 0 && (rn < 7 || get_be16(rsp + 3) != rn - 5)))
			abort();
		cont_len = 0;
		if (rn > 0 && (rsp[0] == SDP_PDU_SSA_RSP || rsp[0] == SDP_PDU_SA_RSP)) {
			size_t c = 7 + get_be16(rsp + 5);
			if (c < (size_t)rn && rsp[c] <= 16 && c + 1 + rsp[c] == (size_t)rn) {
				cont_len = rsp[c];
				memcpy(cont, rsp + c + 1, cont_len);
			}
		}
	}
	sdp_server_free(s);

	/* the client's response parser on the raw input */
	bt_timers timers = { 0 };
	sdp_uuid u = sdp_uuid16(0x1101);
	sdp_query_params qp = { .uuids = &u, .n_uuids = 1 };
	sdp_query *q = sdp_query_new_raw(&timers, &qp, null_cb, NULL, null_send, NULL);
	uint8_t pdu[1100];
	size_t plen = size - 1 < sizeof pdu ? size - 1 : sizeof pdu;
	memcpy(pdu, data + 1, plen);
	if (plen >= 3) {
		pdu[1] = 0;
		pdu[2] = 1; /* the query's first transaction ID */
	}
	sdp_query_input(q, pdu, plen);
	bt_timers_run(&timers, 100000); /* ends the query if the input did not */
	return 0;
}
