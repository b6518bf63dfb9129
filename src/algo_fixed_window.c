/*
 * algo_fixed_window.c: the fixed window, C twin of its Lua script; both
 * follow docs/algorithms.md, section 3.
 *
 * Time is cut into aligned windows [k*w, (k+1)*w); each admits at most max
 * units.  It is the cheapest algorithm (two numbers of state, no division
 * but one modulo) and the coarsest: up to 2*max units can pass within w ms
 * that straddle a boundary.
 *
 * State: v[0] = start of the window counted, v[1] = units admitted in it.
 */
#include "algo.h"

/*
 * One check at now.  The count is kept while the window it was counted in
 * (under the limit that counted it, st->window) has not ended; that single
 * rule both rolls the window and carries the count across a limit change.
 */
int
rl__algo_fixed_window(rl_algo_state *st, int64_t now, int64_t max,
                      int64_t window, int64_t cost, rl_decision *out)
{
    bool fresh = st->max == 0;
    int64_t t = now;
    int64_t start, count = 0;

    /* A clock that steps back stands still at the window already seen. */
    if (!fresh && st->v[0] > t)
        t = st->v[0];
    start = t - t % window;
    if (!fresh && t < st->v[0] + st->window)
        count = st->v[1];

    out->allowed = count + cost <= max;
    if (out->allowed)
        count += cost;
    out->remaining = max - count > 0 ? max - count : 0;
    /* Nothing counted (after a check of cost 0 only): whole already. */
    out->reset_ms = count > 0 ? start + window - t : 0;
    out->retry_after_ms = out->allowed ? 0 : out->reset_ms;
    out->expire_at_ms = t + out->reset_ms;

    st->v[0] = start;
    st->v[1] = count;
    st->v[2] = 0;
    st->max = max;
    st->window = window;
    return RL_OK;
}
