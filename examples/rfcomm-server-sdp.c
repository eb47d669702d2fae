/* rfcomm-server-sdp.c - the seed's RFCOMM server in its dynamic form (PyBluez's
 * rfcomm-server.py with advertise_service): bind any free channel, advertise it with SDP
 * under a service UUID, accept one connection and print what arrives until it closes.
 *
 * The adapter comes from BTSOCK_ADAPTER (e.g. unix:/tmp/bt-server-bredr for BlueZ btvirt).
 * rfcomm-client-sdp finds this server by its UUID. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <btsock.h>

static void fail(void)
{
	fprintf(stderr, "rfcomm-server-sdp: %s\n", btsock_error());
	exit(1);
}

int main(void)
{
	const char *uuid = "94f39d29-7d6d-437d-973b-fba39e49d4ee";
	char address[BTSOCK_ADDRSTRLEN];
	char data[1024];
	unsigned port;

	int server_sock = btsock_socket(BTSOCK_RFCOMM);
	if (server_sock < 0)
		fail();
	if (btsock_bind(server_sock, "", 0) < 0) /* channel 0: any free one */
		fail();
	if (btsock_listen(server_sock, 1) < 0)
		fail();
	if (btsock_getsockname(server_sock, NULL, &port) < 0)
		fail();

	const char *classes[] = { uuid, BTSOCK_SERIAL_PORT_CLASS };
	struct btsock_profile profile = { BTSOCK_SERIAL_PORT_PROFILE, 0x0102 };
	struct btsock_service service = {
		.name = "SampleServer",
		.service_id = uuid,
		.service_classes = classes,
		.n_service_classes = 2,
		.profiles = &profile,
		.n_profiles = 1,
	};
	if (btsock_advertise_service(server_sock, &service) < 0)
		fail();

	printf("Waiting for connection on RFCOMM channel %u\n", port);
	fflush(stdout);

	int client_sock = btsock_accept(server_sock, address, NULL);
	if (client_sock < 0)
		fail();
	printf("Accepted connection from %s\n", address);
	fflush(stdout);

	for (;;) {
		ssize_t n = recv(client_sock, data, sizeof(data), 0);
		if (n <= 0) /* 0: the client closed; < 0: the link failed */
			break;
		printf("received [%.*s]\n", (int)n, data);
		fflush(stdout);
	}
	printf("disconnected\n");

	btsock_close(client_sock);
	btsock_close(server_sock); /* also withdraws the service record */
	printf("all done\n");
	return 0;
}
