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
 * Thread-safe: one capture may be shared by several stacks. Each record is flushed as it is
 * written. s == NULL is a no-op, so callers need not test whether capture is on. */
void bt_snoop_write(bt_snoop *s, const uint8_t *pkt, size_t len, bool received);
/* Flushes, closes and frees; NULL is a no-op. */
void bt_snoop_close(bt_snoop *s);

#endif
