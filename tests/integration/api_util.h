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

/* Message transfers for L2CAP (SOCK_SEQPACKET) fds. Message k of a sender with `seed` has a
 * size drawn from 1..max_msg (message 0 is max_msg long, message 1 one byte; the last one is cut
 * to end at tx_total) and content msgx_pat(seed, k, i). The receiver knows its peer's seed and
 * largest message, so every recv() must return exactly the next message whole: a lost, merged,
 * split, truncated or corrupted message counts in rx_bad. */
typedef struct {
	int fd;
	uint8_t seed;
	size_t max_msg;         /* at most the peer's MTU */
	size_t tx_total, tx_done, tx_msgs;
	uint8_t peer_seed;
	size_t peer_max_msg;    /* the peer's max_msg */
	size_t rx_expect, rx_done, rx_msgs, rx_bad;
	bool eof;
	int tx_err;             /* errno of a send that failed for another reason than EAGAIN */
} msgx;

size_t msgx_size(uint8_t seed, size_t max_msg, size_t k);
uint8_t msgx_pat(uint8_t seed, size_t k, size_t i);
/* Like xfer_run, for messages. */
bool msgx_run(msgx *x, int n, int timeout_ms);

/* A child process with stdout and stderr captured to files. */
typedef struct {
	pid_t pid;
	char out[256], err[256];
} child;
void child_start(child *c, const char *adapter, char *const argv[]);
/* The same with stdin read from the file at in_path (e.g. "/dev/zero"). */
void child_start_in(child *c, const char *adapter, char *const argv[], const char *in_path);
/* Waits up to timeout_ms for the child; returns its exit status, or -1 (killed) on timeout. */
int child_wait(child *c, int timeout_ms);
/* Waits until the child's stderr contains `needle`; copies that line into line. */
bool child_wait_stderr(child *c, const char *needle, char *line, size_t len, int timeout_ms);
/* BlueZ's btmon's decoding of a btsnoop capture (`btmon -r path`), as one malloc'ed string;
 * NULL if btmon is not installed. The capture file is removed. */
char *btmon_decode(const char *path);

/* Every btsock fd a test opens goes through track(); close_all() (a cmocka teardown) closes
 * them, so a failing test leaves nothing open for the next. */
int track(int fd);
int close_all(void **state);

/* Reads a whole (small) file into buf. */
size_t read_file(const char *path, char *buf, size_t cap);

/* btvirt completes every ACL packet at once and forwards it with a non-blocking write: what
 * does not fit the receiving host's socket is dropped without a trace. A host that is not
 * scheduled for a few milliseconds (2 loaded cores) so loses L2CAP data, which has no flow
 * control of its own, where a real controller would hold the sender back. This gives every
 * socket btvirt has open now a send buffer of `bytes` (SO_SNDBUFFORCE, through pidfd_getfd):
 * call it after the adapters are open. Returns how many sockets, or -1 (not permitted). */
int btvirt_deepen_queues(pid_t btvirt, int bytes);

#endif
