/* btsnoop.h - capture HCI traffic to a btsnoop file (version 1, datalink 1002 = H4), the
 * format `btmon -r` and Wireshark read. */
#ifndef BTSOCK_BTSNOOP_H
#define BTSOCK_BTSNOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bt_snoop bt_snoop;

/* Creates (truncates) path and writes the file header. NULL with a sentence in err. */
bt_snoop *bt_snoop_open(const char *path, char *err, size_t errlen);
/* Records one H4 packet (indicator byte first). received: controller -> host.
 * Thread-safe: one capture may be shared by several stacks. Records are buffered and reach
 * the file within BT_SNOOP_FLUSH_MS: on a later write, or on bt_snoop_tick, which the owner
 * calls regularly (an adapter's loop: every round, at least once a second).
 * s == NULL is a no-op, so callers need not test whether capture is on. */
void bt_snoop_write(bt_snoop *s, const uint8_t *pkt, size_t len, bool received);
#define BT_SNOOP_FLUSH_MS 200
/* Flushes the records written BT_SNOOP_FLUSH_MS or more before now_ms (CLOCK_MONOTONIC, ms). */
void bt_snoop_tick(bt_snoop *s, uint64_t now_ms);
/* Flushes every record written so far. */
void bt_snoop_flush(bt_snoop *s);
/* Flushes, closes and frees; NULL is a no-op. */
void bt_snoop_close(bt_snoop *s);

#endif
