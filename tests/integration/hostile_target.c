/* hostile_target.c - the stack process under attack in it_hostile: a program using only the
 * public API (include/btsock.h). On the adapter BTSOCK_ADAPTER names it serves
 *   - an RFCOMM echo on channel 1, advertised by SDP with HOSTILE_UUID,
 *   - an L2CAP echo on PSM 0x1001,
 * each client in a thread of its own, and prints "ready ADDR" on stdout once listening. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <btsock.h>

#define HOSTILE_UUID "6b5e0f3a-9c1d-4e2b-8a47-0d3c2b1a9f88"

static void die(const char *what)
{
	fprintf(stderr, "hostile_target: %s: %s\n", what, btsock_error());
	exit(1);
}

/* Echoes what the client sends until it goes away. */
static void *echo_client(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n <= 0)
			break;
		if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
			break;
	}
	close(fd);
	return NULL;
}

static void *acceptor(void *arg)
{
	int l = (int)(intptr_t)arg;
	for (;;) {
		int c = btsock_accept(l, NULL, NULL);
		if (c < 0 && (errno == EBADF || errno == EINVAL))
			die("accept");
		if (c < 0)
			continue; /* a refused or vanished peer is no reason to stop serving */
		pthread_t t;
		if (pthread_create(&t, NULL, echo_client, (void *)(intptr_t)c) != 0) {
			close(c);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

static int listener(enum btsock_proto proto, unsigned port)
{
	int s = btsock_socket(proto);
	if (s < 0 || btsock_bind(s, "", port) < 0 || btsock_listen(s, 16) < 0)
		die("listen");
	return s;
}

int main(void)
{
	char addr[BTSOCK_ADDRSTRLEN];
	if (btsock_adapter_open(NULL, addr) < 0)
		die("adapter");
	int r = listener(BTSOCK_RFCOMM, 1);
	int l = listener(BTSOCK_L2CAP, 0x1001);
	const char *classes[] = { HOSTILE_UUID, BTSOCK_SERIAL_PORT_CLASS };
	struct btsock_service svc = { .name = "hostile-target", .service_id = HOSTILE_UUID,
				      .service_classes = classes, .n_service_classes = 2 };
	if (btsock_advertise_service(r, &svc) < 0)
		die("advertise");
	pthread_t t;
	if (pthread_create(&t, NULL, acceptor, (void *)(intptr_t)l) != 0)
		die("thread");
	printf("ready %s\n", addr);
	fflush(stdout);
	acceptor((void *)(intptr_t)r);
	return 0;
}
