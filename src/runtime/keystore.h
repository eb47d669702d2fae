/* keystore.h - link keys kept across runs (BTSOCK_KEYS=FILE, btsock_set_keystore).
 *
 * A peer that bonds with us keeps the link key (Core spec Vol 3 Part C 4.3); if we forgot it,
 * the next pairing from our address looks like an impostor to it and BlueZ refuses a Just
 * Works re-pairing. The file is text, one bond per line:
 *     LOCAL_ADDR PEER_ADDR KEY_TYPE LINK_KEY
 *     00:AA:01:01:00:42 00:AA:01:00:00:00 04 00010203040506070809000102030405
 * (KEY_TYPE and the 16-byte LINK_KEY in hex, as Link_Key_Notification gives them, Vol 4 Part E
 * 7.7.24). Link keys are secrets: the file is written whole to a temporary file with mode 0600
 * and renamed over the old one (under a flock of PATH.lock, so processes sharing the file do
 * not lose each other's keys). Lines that are not bonds are kept as they are. */
#ifndef BTSOCK_API_KEYSTORE_H
#define BTSOCK_API_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bt_addr.h"

#define KS_MAX_LINES 4096 /* a larger file is refused rather than read without bound */
#define KS_LINE_MAX 256

typedef void (*ks_key_fn)(void *ctx, const bt_addr *peer, const uint8_t key[16], uint8_t type);

/* Calls fn for every bond of local in the file at path. Returns how many, 0 if the file does
 * not exist, or -errno (-EFBIG beyond KS_MAX_LINES) with a sentence in err. */
int ks_load(const char *path, const bt_addr *local, ks_key_fn fn, void *ctx, char *err, size_t errlen);

/* Records (or replaces) the bond local-peer. 0 or -errno with a sentence in err. */
int ks_store(const char *path, const bt_addr *local, const bt_addr *peer, const uint8_t key[16], uint8_t type,
	     char *err, size_t errlen);

/* The same, waiting at most lock_wait_ms for PATH.lock (-ETIMEDOUT, a sentence in err). ks_store
 * waits KS_LOCK_WAIT_MS. */
#define KS_LOCK_WAIT_MS 5000
int ks_store_timed(const char *path, const bt_addr *local, const bt_addr *peer, const uint8_t key[16],
		   uint8_t type, int lock_wait_ms, char *err, size_t errlen);

/* Deletes the bond local-peer from the file (rewritten whole, under PATH.lock as ks_store).
 * Returns 1 if it was there, 0 if not (the file is then left alone), or -errno with a sentence
 * in err. */
int ks_delete(const char *path, const bt_addr *local, const bt_addr *peer, char *err, size_t errlen);

/* An adapter's key writer: keys from pairings are written to the file at path (fixed when
 * the adapter opened) by a thread of its own, so that a lock held by another process, the
 * fsync and the rename never stall the adapter's loop. Failures go to stderr. */
typedef struct ks_writer ks_writer;
ks_writer *ks_writer_new(const char *path, const bt_addr *local, int lock_wait_ms); /* NULL: no memory */
/* Queues the bond local-peer for writing; returns at once (the thread starts on first use). */
void ks_writer_post(ks_writer *w, const bt_addr *peer, const uint8_t key[16], uint8_t type);
/* Whether every queued key has been written (or failed). */
bool ks_writer_idle(ks_writer *w);
/* Waits at most timeout_ms until every key queued so far has been written (or failed);
 * whether it has. */
bool ks_writer_sync(ks_writer *w, int timeout_ms);
/* The keystore the writer writes to. */
const char *ks_writer_path(const ks_writer *w);
/* Writes what is still queued (each within lock_wait_ms of the lock), then frees w. */
void ks_writer_free(ks_writer *w);

/* Parses one line: 0 and the fields if it is a bond, -EINVAL if not. */
int ks_parse_line(const char *line, bt_addr *local, bt_addr *peer, uint8_t key[16], uint8_t *type);

#endif
