/* sdp_text.h - readable text for SDP records (what `btsock sdp browse` prints), in the manner
 * of `sdptool browse`: the well-known attributes by name with the Assigned Numbers' names for
 * their UUIDs, every other attribute as a data element tree. Pure functions, no I/O. */
#ifndef BTSOCK_SDP_TEXT_H
#define BTSOCK_SDP_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "sdp/sdp_data.h"
#include "sdp/sdp_record.h"

/* The Assigned Numbers name of a 16/32-bit Bluetooth-base UUID ("Serial Port", "RFCOMM"), or
 * NULL if it is not one this table knows. */
const char *sdp_uuid_name(const sdp_uuid *u);

/* Writes the account of r into out (always NUL terminated when cap > 0). Returns the length
 * the whole text needs, as snprintf does. */
size_t sdp_record_describe(const sdp_record *r, char *out, size_t cap);

#endif
