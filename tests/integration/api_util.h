/* api_util.h - helpers for integration tests through the public API: checked transfers over
 * btsock fds driven by poll(), and child processes with captured output. */
#ifndef BTSOCK_TEST_API_UTIL_H
#define BTSOCK_TEST_API_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One fd sending tx_total bytes of pattern `seed` and checking what it receives against the
 * pattern its peer sends (learned from the first byte). chunk: bytes per write (for L2CAP, at
 * most the peer's MTU: each write is one message). */
typedef struct {
	int fd;
	uint8_t seed, peer_seed;
	size_t chunk;
	size_t tx_total, tx_done;
	size_t rx_expect, rx_done, rx_bad;
	bool eof;
} xfer;

uint8_t xfer_pat(uint8_t seed, size_t i);
/* Non-blocking pumping of all n transfers until every one has sent and received what it
 * expects, or timeout_ms. Returns whether all finished. */
bool xfer_run(xfer *x, int n, int timeout_ms);

/* A child process with stdout and stderr captured to files. */
typedef struct {
	pid_t pid;
	char out[256], err[256];
} child;
void child_start(child *c, const char *adapter, char *const argv[]);
/* Waits up to timeout_ms for the child; returns its exit status, or -1 (killed) on timeout. */
int child_wait(child *c, int timeout_ms);
/* Waits until the child's stderr contains `needle`; copies that line into line. */
bool child_wait_stderr(child *c, const char *needle, char *line, size_t len, int timeout_ms);
/* BlueZ's btmon's decoding of a btsnoop capture (`btmon -r path`), as one malloc'ed string;
 * NULL if btmon is not installed. The capture file is removed. */
char *btmon_decode(const char *path);

/* Reads a whole (small) file into buf. */
size_t read_file(const char *path, char *buf, size_t cap);

#endif
