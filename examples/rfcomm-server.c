/* rfcomm-server.c - the RFCOMM server of "Bluetooth Essentials for Programmers" (Example 3-2,
 * rfcomm-server.py) with btsock: accept one connection on channel 1, print what arrives.
 *
 * The adapter comes from BTSOCK_ADAPTER (e.g. unix:/tmp/bt-server-bredr for BlueZ btvirt).
 * Run rfcomm-client with this adapter's address to talk to it. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <btsock.h>

/* What a failed btsock call went wrong with, then exit. */
static void fail(void)
{
	fprintf(stderr, "rfcomm-server: %s\n", btsock_error());
	exit(1);
}

int main(void)
{
	char address[BTSOCK_ADDRSTRLEN];
	char data[1024];
	unsigned port = 1;

	int server_sock = btsock_socket(BTSOCK_RFCOMM);
	if (server_sock < 0)
		fail();
	if (btsock_bind(server_sock, "", port) < 0) /* "" = any local adapter */
		fail();
	if (btsock_listen(server_sock, 1) < 0)
		fail();
	/* Where to reach us, on stderr: stdout carries only the book's two lines. */
	char local[BTSOCK_ADDRSTRLEN];
	if (btsock_getsockname(server_sock, local, &port) == 0)
		fprintf(stderr, "rfcomm-server: listening on %s channel %u\n", local, port);

	int client_sock = btsock_accept(server_sock, address, NULL);
	if (client_sock < 0)
		fail();
	printf("Accepted connection from %s\n", address);
	fflush(stdout);

	ssize_t n = recv(client_sock, data, sizeof(data), 0);
	if (n < 0) {
		perror("rfcomm-server: recv");
		exit(1);
	}
	printf("received [%.*s]\n", (int)n, data);

	btsock_close(client_sock);
	btsock_close(server_sock);
	return 0;
}
