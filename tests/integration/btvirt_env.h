/* btvirt_env.h - a private BlueZ btvirt for one integration test.
 *
 * btvirt -s serves the fixed path /tmp/bt-server-bredr; each connection to it is a fresh
 * emulated BR/EDR controller. To let tests run in parallel, btvirt is started in its own mount
 * namespace with a tmpfs on /tmp (needs root; otherwise the shared /tmp is used if free), and
 * the socket is reached from outside as /proc/<pid>/root/tmp/bt-server-bredr. btvirt is killed
 * when the test process exits, however it exits (atexit + parent-death signal). */
#ifndef BTSOCK_TEST_BTVIRT_ENV_H
#define BTSOCK_TEST_BTVIRT_ENV_H

#include <sys/types.h>

typedef struct {
	pid_t pid;
	char socket_path[128];  /* the H4 server socket */
	char adapter[160];      /* "unix:" + socket_path, for BTSOCK_ADAPTER */
} btvirt_env;

/* Starts btvirt and waits for its socket. Exits the test program with a message if btvirt is
 * missing or does not come up (the test command installs it). */
btvirt_env *btvirt_start(void);
void btvirt_stop(btvirt_env *e);

#endif
