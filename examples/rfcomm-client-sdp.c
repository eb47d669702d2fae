/* rfcomm-client-sdp.c - the seed's RFCOMM client in its dynamic form (PyBluez's
 * rfcomm-client.py with find_service): find the SampleServer service by its UUID, on the
 * device given or on every device nearby, connect to the channel its record names, and send
 * each line typed on stdin.
 *
 * Usage: rfcomm-client-sdp [ADDR]
 * The adapter comes from BTSOCK_ADAPTER (e.g. unix:/tmp/bt-server-bredr for BlueZ btvirt). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <btsock.h>

static void fail(void)
{
	fprintf(stderr, "rfcomm-client-sdp: %s\n", btsock_error());
	exit(1);
}

int main(int argc, char **argv)
{
	const char *uuid = "94f39d29-7d6d-437d-973b-fba39e49d4ee";
	const char *addr = argc > 1 ? argv[1] : NULL; /* NULL: search every device nearby */

	if (!addr)
		printf("searching all nearby bluetooth devices for the SampleServer service\n");
	struct btsock_service_info *matches;
	int n = btsock_find_services(addr, uuid, NULL, &matches);
	if (n < 0)
		fail();
	if (n == 0) {
		printf("couldn't find the SampleServer service =(\n");
		btsock_free_services(matches);
		return 1;
	}
	const struct btsock_service_info *first = &matches[0];
	printf("connecting to \"%s\" on %s channel %u\n", first->name, first->host, first->port);
	fflush(stdout);

	int sock = btsock_socket(BTSOCK_RFCOMM);
	if (sock < 0)
		fail();
	if (btsock_connect(sock, first->host, first->port) < 0)
		fail();
	btsock_free_services(matches);
	printf("connected.  type stuff\n");
	fflush(stdout);

	char line[1024];
	while (fgets(line, sizeof line, stdin)) {
		size_t len = strcspn(line, "\n");
		if (len == 0)
			break;
		if (send(sock, line, len, 0) < 0) {
			perror("rfcomm-client-sdp: send");
			exit(1);
		}
	}
	if (btsock_close(sock) < 0)
		fail();
	return 0;
}
