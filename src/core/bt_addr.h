/* bt_addr.h - Bluetooth device addresses (BD_ADDR, Core spec Vol 2 Part B 1.2).
 * Stored as on the wire: b[0] is the least significant byte; printed most significant first. */
#ifndef BTSOCK_CORE_BT_ADDR_H
#define BTSOCK_CORE_BT_ADDR_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
	uint8_t b[6];
} bt_addr;

#define BT_ADDR_STRLEN 18 /* "01:23:45:67:89:AB" + NUL */

/* Parses "01:23:45:67:89:AB" (case-insensitive, exactly 6 two-digit hex groups). 0 or -EINVAL. */
int bt_addr_parse(const char *s, bt_addr *out);
/* Writes the 17-character text form and a NUL into out; returns out. */
char *bt_addr_format(const bt_addr *a, char out[BT_ADDR_STRLEN]);
bool bt_addr_eq(const bt_addr *a, const bt_addr *b);
bool bt_addr_is_any(const bt_addr *a); /* 00:00:00:00:00:00 */
/* The value of one hex digit (either case), or -1. Shared by address and UUID parsing. */
int bt_hex_digit(char c);

#endif
