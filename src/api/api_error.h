/* api_error.h - the per-thread error of include/btsock.h (btsock_error()), shared by every
 * backend (internal).
 *
 * A failing call sets errno and a sentence for the calling thread. A backend that does the
 * work on another thread (the user-space backend's loop) captures what that thread set
 * (api_error_capture) and hands it to the caller (api_error_restore). */
#ifndef BTSOCK_API_ERROR_H
#define BTSOCK_API_ERROR_H

#include <stdbool.h>
#include <stddef.h>

#define API_ERRLEN 320

/* Sets errno = err and this thread's sentence; returns -1. */
int api_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empties this thread's sentence (a call that succeeded after one that failed). */
void api_clear_error(void);

/* What a thread's api_fail / api_clear_error calls left since api_error_mark(). */
typedef struct {
	bool touched; /* api_fail or api_clear_error was called */
	int err;
	char msg[API_ERRLEN];
} api_error_state;
void api_error_mark(void);
void api_error_capture(api_error_state *out);
/* Replays a captured state on this thread (nothing if untouched); sets errno when err != 0. */
void api_error_restore(const api_error_state *st);

/* btsock_settimeout's effect on an application fd, for every backend: non-blocking for 0,
 * SO_RCVTIMEO/SO_SNDTIMEO for > 0, blocking without timeout for < 0. */
void api_fd_timeout(int fd, int timeout_ms);

#endif
