/* l2cap-server.c - the L2CAP server of "Bluetooth Essentials for Programmers" (section 3.3,
 * l2cap-server.py) with btsock: accept one connection on PSM 0x1001, print the message that
 * arrives and echo it back.
 *
 * L2CAP keeps message boundaries: one recv() returns one whole message (up to the MTU,
 * 672 bytes unless btsock_set_mtu() says otherwise).
 * The adapter comes from BTSOCK_ADAPTER (e.g. unix:/tmp/bt-server-bredr for BlueZ btvirt). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <btsock.h>

/* What a failed btsock call went wrong with, then exit. */
static void fail(void)
{
	fprintf(stderr, "l2cap-server: %s\n", btsock_error());
	exit(1);
}

int main(void)
{
	char address[BTSOCK_ADDRSTRLEN];
	char data[1024];
	unsigned port = 0x1001;

	int server_sock = btsock_socket(BTSOCK_L2CAP);
	if (server_sock < 0)
		fail();
	if (btsock_bind(server_sock, "", port) < 0) /* "" = any local adapter */
		fail();
	if (btsock_listen(server_sock, 1) < 0)
		fail();
	/* Where to reach us, on stderr: stdout carries only the book's two lines. */
	char local[BTSOCK_ADDRSTRLEN];
	if (btsock_getsockname(server_sock, local, &port) == 0)
		fprintf(stderr, "l2cap-server: listening on %s psm 0x%04x\n", local, port);

	int client_sock = btsock_accept(server_sock, address, NULL);
	if (client_sock < 0)
		fail();
	printf("Accepted connection from %s\n", address);
	fflush(stdout);

	ssize_t n = recv(client_sock, data, sizeof(data), 0);
	if (n < 0) {
		perror("l2cap-server: recv");
		exit(1);
	}
	printf("received [%.*s]\n", (int)n, data);

	/* Echo the message back, as one message. */
	if (send(client_sock, data, (size_t)n, 0) < 0) {
		perror("l2cap-server: send");
		exit(1);
	}

	btsock_close(client_sock);
	btsock_close(server_sock);
	return 0;
}
