/* rfcomm-client.c - the RFCOMM client of "Bluetooth Essentials for Programmers" (Example 3-3,
 * rfcomm-client.py) with btsock: connect to channel 1 of a device and send "hello!!".
 *
 * Usage: rfcomm-client [ADDR]   (default 01:23:45:67:89:AB, as in the book)
 * The adapter comes from BTSOCK_ADAPTER (e.g. unix:/tmp/bt-server-bredr for BlueZ btvirt). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <btsock.h>

/* What a failed btsock call went wrong with, then exit. */
static void fail(void)
{
	fprintf(stderr, "rfcomm-client: %s\n", btsock_error());
	exit(1);
}

int main(int argc, char **argv)
{
	const char *bd_addr = argc > 1 ? argv[1] : "01:23:45:67:89:AB";
	unsigned port = 1;
	const char *message = "hello!!";

	int sock = btsock_socket(BTSOCK_RFCOMM);
	if (sock < 0)
		fail();
	if (btsock_connect(sock, bd_addr, port) < 0)
		fail();

	if (send(sock, message, strlen(message), 0) < 0) {
		perror("rfcomm-client: send");
		exit(1);
	}

	/* Returns once "hello!!" went out and the connection is down. */
	if (btsock_close(sock) < 0)
		fail();
	return 0;
}
