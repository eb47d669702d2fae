/* timer.c - a sorted singly linked list of intrusive one-shot timers. A stack has few timers
 * (one per pending command, link, channel), so insertion by walking the list is cheap. */
#include "timer.h"

#include <stddef.h>

void bt_timer_init(bt_timer *t, bt_timer_fn fn, void *ctx)
{
	t->deadline = 0;
	t->fn = fn;
	t->ctx = ctx;
	t->next = NULL;
	t->armed = false;
}

void bt_timer_stop(bt_timers *timers, bt_timer *t)
{
	if (!t->armed)
		return;
	for (bt_timer **pp = &timers->head; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	t->next = NULL;
	t->armed = false;
}

void bt_timer_start(bt_timers *timers, bt_timer *t, uint32_t ms)
{
	bt_timer_stop(timers, t);
	t->deadline = timers->now + ms;
	bt_timer **pp = &timers->head;
	while (*pp && (*pp)->deadline <= t->deadline)
		pp = &(*pp)->next;
	t->next = *pp;
	*pp = t;
	t->armed = true;
}

void bt_timers_run(bt_timers *timers, uint64_t now)
{
	if (now > timers->now)
		timers->now = now;
	while (timers->head && timers->head->deadline <= timers->now) {
		bt_timer *t = timers->head;
		timers->head = t->next;
		t->next = NULL;
		t->armed = false;
		t->fn(t, t->ctx); /* may re-arm t or others */
	}
}

uint64_t bt_timers_next(const bt_timers *timers)
{
	return timers->head ? timers->head->deadline : UINT64_MAX;
}
