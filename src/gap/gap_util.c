/* gap_util.c - pure GAP helpers: Extended Inquiry Response data (Core spec Vol 3 Part C 8,
 * Core Specification Supplement Part A 1.2) and Class of Device decoding (Assigned Numbers,
 * "Baseband": Class of Device fields). */
#include "gap/gap.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ EIR */

#define EIR_NAME_SHORT 0x08
#define EIR_NAME_COMPLETE 0x09
#define EIR_LEN 240 /* Vol 4 Part E 7.3.56 */

int gap_eir_find(const uint8_t *eir, size_t len, uint8_t type, const uint8_t **data, size_t *dlen)
{
	/* Vol 3 Part C 8: structures of Length, then Length bytes (AD Type + data); a Length
	 * of 0 ends the significant part. */
	size_t off = 0;
	while (off < len) {
		uint8_t l = eir[off];
		if (l == 0)
			return -ENOENT;
		if ((size_t)l > len - off - 1)
			return -EBADMSG;
		if (eir[off + 1] == type) {
			*data = eir + off + 2;
			*dlen = (size_t)l - 1;
			return 0;
		}
		off += 1 + (size_t)l;
	}
	return -ENOENT;
}

int gap_eir_name(const uint8_t *eir, size_t len, char *out, size_t cap, bool *complete)
{
	const uint8_t *d;
	size_t n;
	bool full = true;
	int err = gap_eir_find(eir, len, EIR_NAME_COMPLETE, &d, &n);
	if (err < 0) {
		full = false;
		err = gap_eir_find(eir, len, EIR_NAME_SHORT, &d, &n);
	}
	if (err < 0 || cap == 0)
		return err < 0 ? -ENOENT : -EINVAL;
	size_t i = 0;
	while (i < n && i + 1 < cap && d[i] != 0) {
		out[i] = (char)d[i];
		i++;
	}
	out[i] = 0;
	if (complete)
		*complete = full;
	return (int)i;
}

void gap_eir_build_name(const char *name, uint8_t out[EIR_LEN])
{
	memset(out, 0, EIR_LEN);
	size_t n = strlen(name);
	size_t max = EIR_LEN - 2;
	out[1] = EIR_NAME_COMPLETE;
	if (n > max) { /* Supplement Part A 1.2: a shortened name is a leading part */
		n = max;
		out[1] = EIR_NAME_SHORT;
	}
	out[0] = (uint8_t)(n + 1);
	memcpy(out + 2, name, n);
}

/* ------------------------------------------------------------------ Class of Device */

#define COD_MAJOR(c) (((c) >> 8) & 0x1f)
#define COD_MINOR(c) (((c) >> 2) & 0x3f)

static const char *const major_names[] = {
	"Miscellaneous", "Computer", "Phone", "LAN/Network Access Point", "Audio/Video",
	"Peripheral", "Imaging", "Wearable", "Toy", "Health",
};

const char *gap_cod_major_str(uint32_t cod)
{
	unsigned m = COD_MAJOR(cod);
	if (m < sizeof major_names / sizeof major_names[0])
		return major_names[m];
	return m == 0x1f ? "Uncategorized" : "Reserved";
}

static const char *const computer_minor[] = { "Uncategorized", "Desktop workstation",
	"Server-class computer", "Laptop", "Handheld PC/PDA", "Palm-size PC/PDA", "Wearable computer",
	"Tablet" };
static const char *const phone_minor[] = { "Uncategorized", "Cellular", "Cordless", "Smartphone",
	"Wired modem or voice gateway", "Common ISDN access" };
static const char *const lan_minor[] = { "Fully available", "1-17% utilized", "17-33% utilized",
	"33-50% utilized", "50-67% utilized", "67-83% utilized", "83-99% utilized",
	"No service available" };
static const char *const av_minor[] = { "Uncategorized", "Wearable Headset Device",
	"Hands-free Device", "Reserved", "Microphone", "Loudspeaker", "Headphones", "Portable Audio",
	"Car audio", "Set-top box", "HiFi Audio Device", "VCR", "Video Camera", "Camcorder",
	"Video Monitor", "Video Display and Loudspeaker", "Video Conferencing", "Reserved",
	"Gaming/Toy" };
static const char *const periph_kind[] = { NULL, "Keyboard", "Pointing device",
	"Combo keyboard/pointing device" };
static const char *const periph_minor[] = { "Uncategorized", "Joystick", "Gamepad",
	"Remote control", "Sensing device", "Digitizer tablet", "Card reader", "Digital pen",
	"Handheld scanner", "Handheld gestural input device" };
static const char *const imaging_bits[] = { "Display", "Camera", "Scanner", "Printer" };
static const char *const wearable_minor[] = { "Uncategorized", "Wristwatch", "Pager", "Jacket",
	"Helmet", "Glasses", "Pin" };
static const char *const toy_minor[] = { "Uncategorized", "Robot", "Vehicle",
	"Doll/Action figure", "Controller", "Game" };
static const char *const health_minor[] = { "Undefined", "Blood Pressure Monitor", "Thermometer",
	"Weighing Scale", "Glucose Meter", "Pulse Oximeter", "Heart/Pulse Rate Monitor",
	"Health Data Display", "Step Counter", "Body Composition Analyzer", "Peak Flow Monitor",
	"Medication Monitor", "Knee Prosthesis", "Ankle Prosthesis", "Generic Health Manager",
	"Personal Mobility Device" };

#define PICK(tab, i) ((i) < sizeof(tab) / sizeof((tab)[0]) ? (tab)[i] : "Reserved")

/* Appends s to buf (joined by ", ") as far as it fits. */
static void join(char *buf, size_t cap, const char *s)
{
	size_t n = strlen(buf);
	if (n < cap)
		snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", s);
}

static const char *peripheral_minor(uint32_t cod, char *buf, size_t cap)
{
	unsigned kind = (cod >> 6) & 3, sub = (cod >> 2) & 0xf;
	if (cap == 0)
		return "";
	buf[0] = 0;
	if (kind)
		join(buf, cap, periph_kind[kind]);
	if (sub || !kind)
		join(buf, cap, PICK(periph_minor, sub));
	return buf;
}

static const char *imaging_minor(uint32_t cod, char *buf, size_t cap)
{
	if (cap == 0)
		return "";
	buf[0] = 0;
	for (unsigned b = 0; b < 4; b++) /* bits 4-7, any combination */
		if (cod & (1u << (4 + b)))
			join(buf, cap, imaging_bits[b]);
	if (!buf[0])
		join(buf, cap, "Uncategorized");
	return buf;
}

const char *gap_cod_minor_str(uint32_t cod, char *buf, size_t cap)
{
	unsigned minor = COD_MINOR(cod);
	switch (COD_MAJOR(cod)) {
	case 1:
		return PICK(computer_minor, minor);
	case 2:
		return PICK(phone_minor, minor);
	case 3:
		return lan_minor[(cod >> 5) & 7];
	case 4:
		return PICK(av_minor, minor);
	case 5:
		return peripheral_minor(cod, buf, cap);
	case 6:
		return imaging_minor(cod, buf, cap);
	case 7:
		return PICK(wearable_minor, minor);
	case 8:
		return PICK(toy_minor, minor);
	case 9:
		return PICK(health_minor, minor);
	default:
		return "";
	}
}

static const char *const service_bits[] = { "Limited Discoverable Mode", "LE Audio", NULL,
	"Positioning", "Networking", "Rendering", "Capturing", "Object Transfer", "Audio",
	"Telephony", "Information" };

char *gap_cod_services_str(uint32_t cod, char *out, size_t cap)
{
	if (cap == 0)
		return out;
	out[0] = 0;
	for (unsigned b = 13; b <= 23; b++)
		if ((cod & (1u << b)) && service_bits[b - 13])
			join(out, cap, service_bits[b - 13]);
	return out;
}

char *gap_cod_describe(uint32_t cod, char *out, size_t cap)
{
	char mbuf[96], sbuf[160];
	const char *minor = gap_cod_minor_str(cod, mbuf, sizeof mbuf);
	gap_cod_services_str(cod, sbuf, sizeof sbuf);
	if (cap == 0)
		return out;
	int n = snprintf(out, cap, "%s", gap_cod_major_str(cod));
	if (minor[0] && n >= 0 && (size_t)n < cap)
		n += snprintf(out + n, cap - (size_t)n, " (%s)", minor);
	if (sbuf[0] && n >= 0 && (size_t)n < cap)
		snprintf(out + n, cap - (size_t)n, "; services: %s", sbuf);
	return out;
}
