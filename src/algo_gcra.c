/*
 * algo_gcra.c: the generic cell rate algorithm, C twin of its Lua script;
 * both follow docs/algorithms.md, section 6.
 *
 * Requests are spaced by the emission interval T = w / max with a burst of
 * max: the state is one theoretical arrival time (TAT), the time at which
 * the limit is whole again.  A check of cost units pushes TAT to
 * max(TAT, now) + cost * T and passes when that is no more than w ahead of
 * now.  It is the token bucket kept as one timestamp (same admissions for
 * the same limit).  T is rarely a whole number of ms, so TAT is kept
 * exactly as tat_ms + frac / max.
 *
 * State: v[0] = tat_ms, v[1] = frac (0 <= frac < max).
 */
#include "algo.h"

/* TAT = ms + frac / max. */
struct gcra_tat {
    int64_t ms;
    int64_t frac;
};

/*
 * Units a burst at now could still take: floor((now + w - TAT) * max / w)
 * within [0, max].
 */
static int64_t
remaining(const struct gcra_tat *tat, int64_t now, int64_t max, int64_t w)
{
    int64_t a = now + w - tat->ms, r, q;

    if (a <= 0)
        return 0;
    if (a > w)
        return max;
    q = rl__muldiv(max, a, w, &r);
    if (r < tat->frac)
        q -= (tat->frac - r + w - 1) / w;
    return q < 0 ? 0 : q > max ? max : q;
}

/* The TAT a check of cost would leave: max(TAT, now) + cost * w / max. */
static struct gcra_tat
pushed(const struct gcra_tat *tat, int64_t now, int64_t max, int64_t w,
       int64_t cost)
{
    struct gcra_tat nt = *tat;
    int64_t r, q;

    if (tat->ms < now || (tat->ms == now && tat->frac == 0)) {
        nt.ms = now;
        nt.frac = 0;
    }
    q = rl__muldiv(cost, w, max, &r);
    nt.ms += q;
    nt.frac += r;
    if (nt.frac >= max) {
        nt.frac -= max;
        nt.ms++;
    }
    return nt;
}

int
rl__algo_gcra(rl_algo_state *st, int64_t now, int64_t max, int64_t window,
              int64_t cost, rl_decision *out)
{
    struct gcra_tat tat = { st->v[0], st->v[1] };
    struct gcra_tat nt;
    int64_t ceil_tat;

    /* frac counts 1/max ms: with a new max, round TAT up to whole ms. */
    if (st->max != 0 && st->max != max && tat.frac > 0) {
        tat.ms++;
        tat.frac = 0;
    }

    nt = pushed(&tat, now, max, window, cost);
    out->allowed = nt.ms - now < window ||
                   (nt.ms - now == window && nt.frac == 0);
    if (out->allowed)
        tat = nt;
    out->remaining = remaining(&tat, now, max, window);
    out->retry_after_ms = 0;
    if (!out->allowed)
        out->retry_after_ms = nt.ms - window + (nt.frac > 0) - now;
    ceil_tat = tat.ms + (tat.frac > 0);
    out->reset_ms = ceil_tat > now ? ceil_tat - now : 0;
    out->expire_at_ms = now + out->reset_ms;

    st->v[0] = tat.ms;
    st->v[1] = tat.frac;
    st->v[2] = 0;
    st->max = max;
    st->window = window;
    return RL_OK;
}
