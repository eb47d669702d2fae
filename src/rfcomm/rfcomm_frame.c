/* rfcomm_frame.c - see rfcomm_frame.h. Encodes and decodes RFCOMM frames (TS 07.10 5.2) and
 * multiplexer control commands (TS 07.10 5.4.6), checking every length before use. */
#include "rfcomm/rfcomm_frame.h"

#include <string.h>

#include "core/bytes.h"

/* CRC-8 with the reversed polynomial 0xE0 (x^8+x^2+x+1), initial value 0xFF, one's-complement
 * result: TS 07.10 5.2.1.6 and its Annex B. Computed bitwise: frames are short. */
static uint8_t crc8(const uint8_t *p, size_t n)
{
	uint8_t c = 0xff;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int b = 0; b < 8; b++)
			c = (uint8_t)((c & 1) ? (c >> 1) ^ 0xe0 : c >> 1);
	}
	return c;
}

uint8_t rfcomm_fcs(const uint8_t *p, size_t n) { return (uint8_t)(0xff - crc8(p, n)); }

bool rfcomm_fcs_ok(const uint8_t *p, size_t n, uint8_t fcs) { return rfcomm_fcs(p, n) == fcs; }

uint8_t rfcomm_addr(uint8_t dlci, bool cr)
{
	/* TS 07.10 5.2.1.2: bit 1 EA, bit 2 C/R, bits 3-8 DLCI. */
	return (uint8_t)((dlci & 0x3f) << 2 | (cr ? 0x02 : 0) | 0x01);
}

static bool ctrl_known(uint8_t c)
{
	return c == RFCOMM_SABM || c == RFCOMM_UA || c == RFCOMM_DM || c == RFCOMM_DISC || c == RFCOMM_UIH;
}

int rfcomm_frame_parse(const uint8_t *p, size_t n, rfcomm_frame *f)
{
	memset(f, 0, sizeof *f);
	/* Smallest frame: address, control, 1 length octet, FCS. */
	if (n < 4)
		return RFCOMM_EFRAME_SHORT;
	bt_reader r = bt_reader_init(p, n - 1); /* the FCS is the last octet */
	uint8_t addr = bt_read_u8(&r);
	uint8_t ctrl = bt_read_u8(&r);
	uint8_t l0 = bt_read_u8(&r);
	if (!(addr & 0x01))
		return RFCOMM_EFRAME_ADDR;
	f->dlci = addr >> 2;
	f->cr = (addr & 0x02) != 0;
	f->pf = (ctrl & RFCOMM_PF) != 0;
	f->ctrl = (uint8_t)(ctrl & ~RFCOMM_PF);
	if (!ctrl_known(f->ctrl))
		return RFCOMM_EFRAME_CTRL;
	/* TS 07.10 5.2.1.5: EA set = 7-bit length; clear = a second octet follows (15 bits). */
	size_t len = l0 >> 1;
	if (!(l0 & 0x01)) {
		uint8_t l1 = bt_read_u8(&r);
		if (r.err)
			return RFCOMM_EFRAME_SHORT;
		len |= (size_t)l1 << 7;
	}
	size_t hdr = r.off;
	/* TS 07.10 5.2.1.6: UIH covers address and control; the others add the length. */
	size_t fcs_span = f->ctrl == RFCOMM_UIH ? 2 : hdr;
	/* RFCOMM spec 6.5.2: with credit based flow control a UIH with P/F carries a credit octet
	 * before the information field (only on data DLCIs). */
	if (f->ctrl == RFCOMM_UIH && f->pf && f->dlci != 0) {
		if (bt_reader_left(&r) < 1)
			return RFCOMM_EFRAME_CREDIT;
		f->has_credits = true;
		f->credits = bt_read_u8(&r);
	}
	if (bt_reader_left(&r) != len)
		return RFCOMM_EFRAME_LENGTH;
	if (!rfcomm_fcs_ok(p, fcs_span, p[n - 1]))
		return RFCOMM_EFRAME_FCS;
	f->info = p + r.off;
	f->len = len;
	return 0;
}

/* TS 07.10 5.2.1.5: a length up to 127 takes one octet with EA set; a longer one two, EA
 * clear in the first. In a frame the second octet holds length bits 7-14 whole (RFCOMM has no
 * third octet); in a multiplexer command (5.4.6.1) it is EA-extended again, EA set as last. */
static void write_length(bt_writer *w, size_t len, bool mcc)
{
	if (len <= 127) {
		bt_write_u8(w, (uint8_t)(len << 1 | 0x01));
		return;
	}
	bt_write_u8(w, (uint8_t)((len & 0x7f) << 1));
	bt_write_u8(w, mcc ? (uint8_t)((len >> 7) << 1 | 0x01) : (uint8_t)(len >> 7));
}

size_t rfcomm_frame_build(uint8_t *buf, size_t cap, uint8_t dlci, bool cr, uint8_t ctrl, bool pf,
			  int credits, const uint8_t *info, size_t len)
{
	bool credit = ctrl == RFCOMM_UIH && credits >= 0;
	if (len > RFCOMM_MAX_INFO)
		return 0;
	/* TS 07.10 5.2.1: Address | Control | Length | [Credits, RFCOMM spec 6.5.2] | Info | FCS */
	bt_writer w = bt_writer_init(buf, cap);
	bt_write_u8(&w, rfcomm_addr(dlci, cr));
	bt_write_u8(&w, (uint8_t)(ctrl | (pf || credit ? RFCOMM_PF : 0)));
	write_length(&w, len, false);
	size_t hdr = bt_writer_len(&w);
	if (credit)
		bt_write_u8(&w, (uint8_t)(credits > 255 ? 255 : credits));
	bt_write_bytes(&w, info, len);
	/* TS 07.10 5.2.1.6: UIH's FCS covers address and control; the others add the length. */
	uint8_t *fcs = bt_write_reserve(&w, 1);
	if (w.err)
		return 0;
	*fcs = rfcomm_fcs(buf, ctrl == RFCOMM_UIH ? 2 : hdr);
	return bt_writer_len(&w);
}

int rfcomm_mcc_parse(const uint8_t *p, size_t n, rfcomm_mcc *m)
{
	memset(m, 0, sizeof *m);
	bt_reader r = bt_reader_init(p, n);
	uint8_t t = bt_read_u8(&r);
	uint8_t l0 = bt_read_u8(&r);
	if (r.err)
		return RFCOMM_EFRAME_SHORT;
	/* TS 07.10 5.4.6.1: type octet EA bit 1, C/R bit 2, 6-bit type. */
	if (!(t & 0x01))
		return RFCOMM_EFRAME_CTRL;
	m->type = t >> 2;
	m->cr = (t & 0x02) != 0;
	/* Length octets are EA-extended; RFCOMM values fit in two. */
	size_t len = l0 >> 1;
	if (!(l0 & 0x01)) {
		uint8_t l1 = bt_read_u8(&r);
		if (r.err)
			return RFCOMM_EFRAME_SHORT;
		if (!(l1 & 0x01))
			return RFCOMM_EFRAME_LENGTH;
		len |= (size_t)(l1 >> 1) << 7;
	}
	const uint8_t *v = bt_read_bytes(&r, len);
	if (!v && len)
		return RFCOMM_EFRAME_LENGTH;
	if (r.err)
		return RFCOMM_EFRAME_LENGTH;
	m->val = v;
	m->len = len;
	return (int)r.off;
}

size_t rfcomm_mcc_build(uint8_t *buf, size_t cap, uint8_t type, bool cr, const uint8_t *val, size_t len)
{
	if (len > 16383) /* two length octets of 7 bits (TS 07.10 5.4.6.1) */
		return 0;
	/* TS 07.10 5.4.6.1: Type (EA, C/R, 6 bits) | Length (EA-extended) | Value */
	bt_writer w = bt_writer_init(buf, cap);
	bt_write_u8(&w, (uint8_t)((type & 0x3f) << 2 | (cr ? 0x02 : 0) | 0x01));
	write_length(&w, len, true);
	bt_write_bytes(&w, val, len);
	return w.err ? 0 : bt_writer_len(&w);
}

/* ---- values */

int rfcomm_pn_decode(const uint8_t *v, size_t n, rfcomm_pn *pn)
{
	/* TS 07.10 5.4.6.3.1 / RFCOMM spec 5.5.3: exactly 8 octets. */
	memset(pn, 0, sizeof *pn);
	bt_reader r = bt_reader_init(v, n);
	pn->dlci = bt_read_u8(&r) & 0x3f;
	uint8_t o2 = bt_read_u8(&r);
	pn->i_bits = o2 & 0x0f;
	pn->cl = o2 & 0xf0;
	pn->priority = bt_read_u8(&r) & 0x3f;
	pn->t1 = bt_read_u8(&r);
	pn->n1 = bt_read_le16(&r);
	pn->n2 = bt_read_u8(&r);
	pn->k = bt_read_u8(&r) & 0x07;
	return r.err || n != 8 ? -EBADMSG : 0;
}

/* Every value encoder writes through a bt_writer over its out[] array: the value lengths are
 * fixed by the spec and the arrays sized for them, so a write cannot fail; the writer makes
 * that a checked fact rather than offset arithmetic. */
static size_t value_len(const bt_writer *w) { return w->err ? 0 : bt_writer_len(w); }

size_t rfcomm_pn_encode(const rfcomm_pn *pn, uint8_t out[8])
{
	/* TS 07.10 5.4.6.3.1 / RFCOMM spec 5.5.3: DLCI | I, CL | P | T1 | N1 (le16) | N2 | K */
	bt_writer w = bt_writer_init(out, 8);
	bt_write_u8(&w, pn->dlci & 0x3f);
	bt_write_u8(&w, (uint8_t)((pn->cl & 0xf0) | (pn->i_bits & 0x0f)));
	bt_write_u8(&w, pn->priority & 0x3f);
	bt_write_u8(&w, pn->t1);
	bt_write_le16(&w, pn->n1);
	bt_write_u8(&w, pn->n2);
	bt_write_u8(&w, pn->k & 0x07);
	return value_len(&w);
}

/* The DLCI octet inside MSC, RPN and RLS is an address octet with EA and C/R set
 * (TS 07.10 5.4.6.3.7). */
static uint8_t dlci_octet(uint8_t dlci) { return rfcomm_addr(dlci, true); }

int rfcomm_msc_decode(const uint8_t *v, size_t n, rfcomm_msc *m)
{
	memset(m, 0, sizeof *m);
	if (n < 2 || n > 3)
		return -EBADMSG;
	m->dlci = v[0] >> 2;
	m->v24 = v[1];
	if (n == 3) {
		m->has_break = true;
		m->brk = v[2];
	}
	return 0;
}

size_t rfcomm_msc_encode(const rfcomm_msc *m, uint8_t out[3])
{
	/* TS 07.10 5.4.6.3.7: DLCI | V.24 signals | [break] */
	bt_writer w = bt_writer_init(out, 3);
	bt_write_u8(&w, dlci_octet(m->dlci));
	bt_write_u8(&w, m->v24 | RFCOMM_V24_EA);
	if (m->has_break)
		bt_write_u8(&w, m->brk | 0x01);
	return value_len(&w);
}

int rfcomm_rpn_decode(const uint8_t *v, size_t n, rfcomm_rpn *r)
{
	/* 1 octet: a query for the current settings; 8: settings and the parameter mask. */
	memset(r, 0, sizeof *r);
	if (n != 1 && n != 8)
		return -EBADMSG;
	r->dlci = v[0] >> 2;
	if (n == 1)
		return 0;
	r->has_values = true;
	r->bit_rate = v[1];
	r->line = v[2];
	r->flow = v[3];
	r->xon = v[4];
	r->xoff = v[5];
	r->mask = get_le16(v + 6);
	return 0;
}

size_t rfcomm_rpn_encode(const rfcomm_rpn *r, uint8_t out[8])
{
	/* TS 07.10 5.4.6.3.9: DLCI | [bit rate | line | flow | XON | XOFF | mask (le16)] */
	bt_writer w = bt_writer_init(out, 8);
	bt_write_u8(&w, dlci_octet(r->dlci));
	if (r->has_values) {
		bt_write_u8(&w, r->bit_rate);
		bt_write_u8(&w, r->line);
		bt_write_u8(&w, r->flow);
		bt_write_u8(&w, r->xon);
		bt_write_u8(&w, r->xoff);
		bt_write_le16(&w, r->mask);
	}
	return value_len(&w);
}

int rfcomm_rls_decode(const uint8_t *v, size_t n, rfcomm_rls *r)
{
	memset(r, 0, sizeof *r);
	if (n != 2)
		return -EBADMSG;
	r->dlci = v[0] >> 2;
	r->status = v[1];
	return 0;
}

size_t rfcomm_rls_encode(const rfcomm_rls *r, uint8_t out[2])
{
	/* TS 07.10 5.4.6.3.10: DLCI | line status */
	bt_writer w = bt_writer_init(out, 2);
	bt_write_u8(&w, dlci_octet(r->dlci));
	bt_write_u8(&w, r->status);
	return value_len(&w);
}

int rfcomm_nsc_decode(const uint8_t *v, size_t n, uint8_t *type, bool *cr)
{
	if (n != 1)
		return -EBADMSG;
	*type = v[0] >> 2;
	*cr = (v[0] & 0x02) != 0;
	return 0;
}

size_t rfcomm_nsc_encode(uint8_t type, bool cr, uint8_t out[1])
{
	/* TS 07.10 5.4.6.3.8: the type octet of the command not supported */
	bt_writer w = bt_writer_init(out, 1);
	bt_write_u8(&w, (uint8_t)((type & 0x3f) << 2 | (cr ? 0x02 : 0) | 0x01));
	return value_len(&w);
}
