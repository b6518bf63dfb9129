/*
 * timer.c: housekeeping timers that do not keep the loop alive.
 *
 * libevent's event_base_dispatch returns when no event is pending.  A
 * housekeeping timer (the local store sweep) must not change that: a
 * server that frees its last connection and expects dispatch to return
 * would otherwise hang until the limiter is freed.  libevent does not count
 * events flagged EVLIST_INTERNAL (event2/event_struct.h) in that decision;
 * we set the flag between event_assign and the first event_add, the only
 * moment libevent reads it, and never change it afterwards.
 */
#include <stdlib.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "rl_private.h"

struct event *
rl__weak_timer_new(struct event_base *base, void (*cb)(int, short, void *),
                   void *arg)
{
    struct event *ev = event_new(base, -1, 0, cb, arg);

    if (ev == NULL)
        return NULL;
    ev->ev_evcallback.evcb_flags |= EVLIST_INTERNAL;
    return ev;
}

void
rl__timer_add_ms(struct event *ev, int64_t ms)
{
    struct timeval tv;

    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    event_add(ev, &tv);
}
