/* timer.h - one-shot timers for the event-driven core.
 *
 * The core does no I/O and reads no clock: whoever drives it passes the current time (in
 * milliseconds on any monotonic scale) into every entry point, and asks bt_timers_next() when
 * to call bt_timers_run() again. Timers are intrusive: a layer embeds a bt_timer in its own
 * state, so arming one never allocates. */
#ifndef BTSOCK_CORE_TIMER_H
#define BTSOCK_CORE_TIMER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct bt_timer bt_timer;
typedef void (*bt_timer_fn)(bt_timer *t, void *ctx);

struct bt_timer {
	uint64_t deadline; /* ms */
	bt_timer_fn fn;
	void *ctx;
	bt_timer *next;
	bool armed;
};

typedef struct {
	bt_timer *head; /* sorted by deadline */
	uint64_t now;   /* the time of the latest entry into the core */
} bt_timers;

void bt_timer_init(bt_timer *t, bt_timer_fn fn, void *ctx);
/* (Re)arms t to fire `ms` after timers->now. */
void bt_timer_start(bt_timers *timers, bt_timer *t, uint32_t ms);
void bt_timer_stop(bt_timers *timers, bt_timer *t);
/* Fires every timer whose deadline is <= now (timers->now is updated first). */
void bt_timers_run(bt_timers *timers, uint64_t now);
/* The earliest deadline, or UINT64_MAX if none is armed. */
uint64_t bt_timers_next(const bt_timers *timers);

#endif
