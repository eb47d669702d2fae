/* clash_with_bluez.c - a program that defines names BlueZ's libbluetooth also defines, with
 * libbluetooth's own signatures, and links libbtsock beside them. Before symbol hygiene this
 * did not link statically ("multiple definition of hci_disconnect") and, dynamically, the
 * program's functions replaced btsock's internal ones. It must build, and btsock's calls must
 * still reach btsock's own code. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "btsock.h"

/* libbluetooth: int hci_disconnect(int dd, uint16_t handle, uint8_t reason, int to); */
int hci_disconnect(int dd, uint16_t handle, uint8_t reason, int to);
int hci_disconnect(int dd, uint16_t handle, uint8_t reason, int to) { return -42; }
/* libbluetooth: void sdp_record_free(sdp_record_t *rec); */
void sdp_record_free(void *rec);
void sdp_record_free(void *rec) { (void)rec; }

int main(void)
{
	char buf[128];
	/* Reaches btsock's internal GAP helpers, not the program's functions above. */
	int n = btsock_describe_class(0x5a020c, buf, sizeof buf);
	if (n <= 0 || !strstr(buf, "Phone")) {
		fprintf(stderr, "btsock_describe_class: %d '%s'\n", n, buf);
		return 1;
	}
	if (hci_disconnect(0, 0, 0, 0) != -42)
		return 1;
	printf("ok: %s\n", buf);
	return 0;
}
