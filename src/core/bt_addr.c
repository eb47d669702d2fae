/* bt_addr.c - parsing and printing of BD_ADDRs. */
#include "bt_addr.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int bt_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int bt_addr_parse(const char *s, bt_addr *out)
{
	if (!s || strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		const char *g = s + i * 3;
		int hi = bt_hex_digit(g[0]), lo = bt_hex_digit(g[1]);
		if (hi < 0 || lo < 0 || (i < 5 && g[2] != ':'))
			return -EINVAL;
		out->b[5 - i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

char *bt_addr_format(const bt_addr *a, char out[BT_ADDR_STRLEN])
{
	snprintf(out, BT_ADDR_STRLEN, "%02X:%02X:%02X:%02X:%02X:%02X", a->b[5], a->b[4], a->b[3], a->b[2],
		 a->b[1], a->b[0]);
	return out;
}

bool bt_addr_eq(const bt_addr *a, const bt_addr *b) { return memcmp(a->b, b->b, 6) == 0; }

bool bt_addr_is_any(const bt_addr *a)
{
	static const bt_addr any;
	return bt_addr_eq(a, &any);
}
