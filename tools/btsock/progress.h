/* progress.h - a transfer progress bar on stderr and the final throughput line
 * ("sent 10.0 MiB in 2.31 s, 4.33 MiB/s"). */
#ifndef BTSOCK_TOOL_PROGRESS_H
#define BTSOCK_TOOL_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct progress {
	bool bar;           /* draw the bar (stderr is a terminal and not --quiet) */
	bool drawn;         /* a bar is on screen and must be cleared */
	uint64_t total;     /* bytes expected, 0 = unknown */
	uint64_t done;      /* bytes so far */
	double start;       /* seconds, monotonic */
	double last_draw;
};

/* Monotonic time in seconds. */
double progress_now(void);

/* Formats a byte count as "512 B", "3.4 KiB", "10.0 MiB". */
void progress_format_size(char *buf, size_t len, double bytes);

void progress_start(struct progress *p, bool bar, uint64_t total);

/* Counts n more bytes and redraws the bar at most ten times a second. */
void progress_add(struct progress *p, size_t n);

/* Removes the bar; with summary, prints "<verb> X in Y s, Z/s" on stderr. */
void progress_finish(struct progress *p, bool summary, const char *verb);

#endif
