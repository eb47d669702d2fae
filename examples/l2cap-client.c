/* l2cap-client.c - the L2CAP client of "Bluetooth Essentials for Programmers" (section 3.3,
 * l2cap-client.py) with btsock: connect to PSM 0x1001 of a device, send "hello!!" and print
 * the echo that l2cap-server sends back.
 *
 * Usage: l2cap-client [ADDR]   (default 01:23:45:67:89:AB, as in the book)
 * The adapter comes from BTSOCK_ADAPTER (e.g. unix:/tmp/bt-server-bredr for BlueZ btvirt). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <btsock.h>

/* What a failed btsock call went wrong with, then exit. */
static void fail(void)
{
	fprintf(stderr, "l2cap-client: %s\n", btsock_error());
	exit(1);
}

int main(int argc, char **argv)
{
	const char *bd_addr = argc > 1 ? argv[1] : "01:23:45:67:89:AB";
	unsigned port = 0x1001;
	const char *message = "hello!!";
	char data[1024];

	int sock = btsock_socket(BTSOCK_L2CAP);
	if (sock < 0)
		fail();
	if (btsock_connect(sock, bd_addr, port) < 0)
		fail();

	/* One send() is one L2CAP message. */
	if (send(sock, message, strlen(message), 0) < 0) {
		perror("l2cap-client: send");
		exit(1);
	}

	ssize_t n = recv(sock, data, sizeof(data), 0);
	if (n < 0) {
		perror("l2cap-client: recv");
		exit(1);
	}
	printf("received [%.*s]\n", (int)n, data);

	if (btsock_close(sock) < 0)
		fail();
	return 0;
}
