/* rfcomm_frame.h - the RFCOMM frame and multiplexer-command codec (ETSI TS 07.10 basic mode
 * as profiled by the Bluetooth RFCOMM spec v1.2). Pure functions, no state: the session layer
 * (rfcomm.c) and the fuzzer use them.
 *
 * Frame (TS 07.10 5.2.1): Address | Control | Length (1 or 2 octets, EA) | [Credits] | Info | FCS
 * Multiplexer control command (TS 07.10 5.4.6.1): Type (EA, C/R) | Length (EA octets) | Value */
#ifndef BTSOCK_RFCOMM_FRAME_H
#define BTSOCK_RFCOMM_FRAME_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Control field values with P/F clear (TS 07.10 5.2.1.3). */
enum {
	RFCOMM_SABM = 0x2f,
	RFCOMM_UA = 0x63,
	RFCOMM_DM = 0x0f,
	RFCOMM_DISC = 0x43,
	RFCOMM_UIH = 0xef,
};
#define RFCOMM_PF 0x10

/* Multiplexer command types, the 6-bit value of the type octet (TS 07.10 5.4.6.3;
 * RFCOMM spec 4.3 lists the ones RFCOMM supports). */
enum {
	RFCOMM_MCC_PN = 0x20,
	RFCOMM_MCC_PSC = 0x10,
	RFCOMM_MCC_CLD = 0x30,
	RFCOMM_MCC_TEST = 0x08,
	RFCOMM_MCC_FCON = 0x28,
	RFCOMM_MCC_FCOFF = 0x18,
	RFCOMM_MCC_MSC = 0x38,
	RFCOMM_MCC_NSC = 0x04,
	RFCOMM_MCC_RPN = 0x24,
	RFCOMM_MCC_RLS = 0x14,
};

/* Distinct parse errors (negative errno values). */
#define RFCOMM_EFRAME_SHORT (-ENODATA)    /* fewer than 4 octets, or a truncated header */
#define RFCOMM_EFRAME_LENGTH (-EMSGSIZE)  /* length field disagrees with the frame size */
#define RFCOMM_EFRAME_FCS (-EILSEQ)       /* FCS check failed */
#define RFCOMM_EFRAME_CREDIT (-EPROTO)    /* UIH with P/F set but no credit octet */
#define RFCOMM_EFRAME_ADDR (-EINVAL)      /* address EA bit clear (only 1-octet addresses) */
#define RFCOMM_EFRAME_CTRL (-EBADMSG)     /* not one of SABM, UA, DM, DISC, UIH */

/* Largest length a 2-octet length field can carry (TS 07.10 5.2.1.5). */
#define RFCOMM_MAX_INFO 32767
/* Address + control + 2 length octets + credit + FCS: the most a frame adds to its info. */
#define RFCOMM_MAX_OVERHEAD 6

/* V.24 signal bits in MSC (TS 07.10 5.4.6.3.7). */
enum {
	RFCOMM_V24_EA = 0x01,
	RFCOMM_V24_FC = 0x02,
	RFCOMM_V24_RTC = 0x04,
	RFCOMM_V24_RTR = 0x08,
	RFCOMM_V24_IC = 0x40,
	RFCOMM_V24_DV = 0x80,
};

/* PN convergence-layer values for credit based flow control (RFCOMM spec 5.5.3). */
#define RFCOMM_PN_CL_CFC_REQ 0xf0
#define RFCOMM_PN_CL_CFC_RSP 0xe0

typedef struct {
	uint8_t dlci;       /* 0..63 */
	bool cr;            /* C/R bit of the address */
	uint8_t ctrl;       /* RFCOMM_SABM ... with P/F masked off */
	bool pf;
	bool has_credits;   /* UIH with P/F on DLCI != 0 (RFCOMM spec 6.5.2) */
	uint8_t credits;
	const uint8_t *info; /* points into the parsed buffer */
	size_t len;
} rfcomm_frame;

typedef struct {
	uint8_t type; /* 6-bit type */
	bool cr;      /* 1: command, 0: response */
	const uint8_t *val;
	size_t len;
} rfcomm_mcc;

/* Parameter negotiation, 8 octets (TS 07.10 5.4.6.3.1, RFCOMM spec 5.5.3). */
typedef struct {
	uint8_t dlci;     /* 6 bits */
	uint8_t i_bits;   /* frame type: 0 = UIH (the only one RFCOMM uses) */
	uint8_t cl;       /* convergence layer, upper 4 bits of octet 2 shifted into 0xf0 */
	uint8_t priority; /* 6 bits */
	uint8_t t1;       /* acknowledgement timer (unused by RFCOMM, 0) */
	uint16_t n1;      /* maximum frame size */
	uint8_t n2;       /* max retransmissions (0) */
	uint8_t k;        /* window size: initial credits with CFC (3 bits) */
} rfcomm_pn;

/* Modem status command (TS 07.10 5.4.6.3.7). */
typedef struct {
	uint8_t dlci;
	uint8_t v24;
	bool has_break;
	uint8_t brk;
} rfcomm_msc;

/* Remote port negotiation (TS 07.10 5.4.6.3.9): 1 octet (a query) or 8. */
typedef struct {
	uint8_t dlci;
	bool has_values;
	uint8_t bit_rate, line, flow, xon, xoff;
	uint16_t mask;
} rfcomm_rpn;

/* Remote line status (TS 07.10 5.4.6.3.10). */
typedef struct {
	uint8_t dlci;
	uint8_t status;
} rfcomm_rls;

/* FCS: CRC-8, polynomial x^8+x^2+x+1, over the first n octets (TS 07.10 5.2.1.6). */
uint8_t rfcomm_fcs(const uint8_t *p, size_t n);
/* Whether fcs is the right check value for p[0..n) (TS 07.10 Annex B receiver check). */
bool rfcomm_fcs_ok(const uint8_t *p, size_t n, uint8_t fcs);
/* Address octet (TS 07.10 5.2.1.2): EA=1, C/R, DLCI. */
uint8_t rfcomm_addr(uint8_t dlci, bool cr);

/* Parses one whole frame (the whole buffer, as one L2CAP SDU carries one frame).
 * 0 or one of the RFCOMM_EFRAME_* errors. */
int rfcomm_frame_parse(const uint8_t *p, size_t n, rfcomm_frame *f);
/* Builds a frame into buf. credits < 0: no credit octet (P/F as given); credits >= 0 on a UIH:
 * P/F set and the credit octet written. Returns the frame length, or 0 if it does not fit
 * cap or len > RFCOMM_MAX_INFO. */
size_t rfcomm_frame_build(uint8_t *buf, size_t cap, uint8_t dlci, bool cr, uint8_t ctrl, bool pf,
			  int credits, const uint8_t *info, size_t len);

/* Parses the multiplexer command at the start of p (TS 07.10 5.4.6.1). Returns the octets it
 * used (> 0), or a negative RFCOMM_EFRAME_* error. */
int rfcomm_mcc_parse(const uint8_t *p, size_t n, rfcomm_mcc *m);
/* Builds type/length/value into buf; returns its length or 0 if it does not fit. */
size_t rfcomm_mcc_build(uint8_t *buf, size_t cap, uint8_t type, bool cr, const uint8_t *val, size_t len);

/* Value codecs. Decoders return 0 or -EBADMSG (truncated or malformed value);
 * encoders write into out and return the value length. */
int rfcomm_pn_decode(const uint8_t *v, size_t n, rfcomm_pn *pn);
size_t rfcomm_pn_encode(const rfcomm_pn *pn, uint8_t out[8]);
int rfcomm_msc_decode(const uint8_t *v, size_t n, rfcomm_msc *m);
size_t rfcomm_msc_encode(const rfcomm_msc *m, uint8_t out[3]);
int rfcomm_rpn_decode(const uint8_t *v, size_t n, rfcomm_rpn *r);
size_t rfcomm_rpn_encode(const rfcomm_rpn *r, uint8_t out[8]);
int rfcomm_rls_decode(const uint8_t *v, size_t n, rfcomm_rls *r);
size_t rfcomm_rls_encode(const rfcomm_rls *r, uint8_t out[2]);
/* NSC carries the type octet of the command it rejects (TS 07.10 5.4.6.3.8). */
int rfcomm_nsc_decode(const uint8_t *v, size_t n, uint8_t *type, bool *cr);
size_t rfcomm_nsc_encode(uint8_t type, bool cr, uint8_t out[1]);

#endif
