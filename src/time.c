/*
 * time.c: the two clocks of the library.  Decisions use wall-clock
 * milliseconds since the epoch (windows align with Redis TIME, which the
 * scripts use), or the configured clock in tests and simulations; latency
 * and deadlines use the monotonic clock, which never jumps.
 */
#include <time.h>

#include "rl_private.h"

int64_t
rl__now_ms(const struct rl_limiter *rl)
{
    struct timespec ts;

    if (rl->cfg.clock)
        return rl->cfg.clock(rl->cfg.clock_arg);
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
rl__steady_ms(const struct rl_limiter *rl)
{
    if (rl->cfg.clock != NULL)
        return rl->cfg.clock(rl->cfg.clock_arg);
    return rl__mono_ns() / 1000000;
}

int64_t
rl__mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
