/*
 * algo_sliding_window.c: the sliding window, C twin of its Lua script;
 * both follow docs/algorithms.md, section 4.
 *
 * Two aligned fixed windows are counted, the current one and the one
 * before; the previous count weighs as much as the previous window still
 * overlaps the last w ms.  The estimate est = cur + ceil(prev * (w - e) / w)
 * (e: ms into the current window) rounds up, so the approximation errs on
 * the side of denying.  Three numbers of state, one key, O(1).
 *
 * State: v[0] = start of the current window, v[1] = units admitted in the
 * window before it, v[2] = units admitted in it.
 */
#include "algo.h"

/* The counts of the state seen from t, with the window w. */
struct sw_view {
    int64_t s;    /* start of t's window */
    int64_t e;    /* t - s, in [0, w) */
    int64_t prev; /* units of the window [s - w, s) */
    int64_t cur;  /* units of the window [s, s + w) */
};

/* Rolls the state's counts to t's window of w ms. */
static void
roll(const rl_algo_state *st, int64_t t, int64_t w, struct sw_view *vw)
{
    vw->s = t - t % w;
    vw->e = t - vw->s;
    vw->prev = 0;
    vw->cur = 0;
    if (st->max == 0)
        return;
    if (st->v[0] == vw->s) {
        vw->prev = st->v[1];
        vw->cur = st->v[2];
    } else if (st->v[0] == vw->s - w) {
        vw->prev = st->v[2];
    }
}

/* The estimate: cur + ceil(prev * (w - e) / w). */
static int64_t
estimate(const struct sw_view *vw, int64_t w)
{
    int64_t r, q;

    q = rl__muldiv(vw->prev, w - vw->e, w, &r);
    return vw->cur + q + (r > 0);
}

/*
 * The smallest time > t at which est + cost <= max, nothing else admitted:
 * later in this window if cur alone leaves room (need >= 0), else in the
 * next one, where the current count has become the previous one.
 */
static int64_t
retry_time(const struct sw_view *vw, int64_t w, int64_t max, int64_t cost)
{
    int64_t need = max - cost - vw->cur;

    if (need >= 0)
        return vw->s + w - rl__muldiv(need, w, vw->prev, NULL);
    return vw->s + 2 * w - rl__muldiv(max - cost, w, vw->cur, NULL);
}

/*
 * One check at now.  When the window length changed, the old limit's
 * estimate at t becomes the count of t's new window (conservative: what
 * the old limit still saw in use stays in use).
 */
int
rl__algo_sliding_window(rl_algo_state *st, int64_t now, int64_t max,
                        int64_t window, int64_t cost, rl_decision *out)
{
    struct sw_view vw;
    int64_t t = now, est;

    /* A clock that steps back stands still at the window already seen. */
    if (st->max != 0 && st->v[0] > t)
        t = st->v[0];
    roll(st, t, window, &vw);
    if (st->max != 0 && st->window != window) {
        struct sw_view old;

        roll(st, t, st->window, &old);
        vw.prev = 0;
        vw.cur = estimate(&old, st->window);
    }

    est = estimate(&vw, window);
    out->allowed = est + cost <= max;
    if (out->allowed) {
        vw.cur += cost;
        est += cost;
    }
    out->remaining = max - est > 0 ? max - est : 0;
    out->retry_after_ms = 0;
    if (!out->allowed)
        out->retry_after_ms = retry_time(&vw, window, max, cost) - t;
    if (vw.cur > 0)
        out->reset_ms = vw.s + 2 * window - t;
    else if (vw.prev > 0)
        out->reset_ms = vw.s + window - t;
    else
        out->reset_ms = 0;
    out->expire_at_ms = t + out->reset_ms;

    st->v[0] = vw.s;
    st->v[1] = vw.prev;
    st->v[2] = vw.cur;
    st->max = max;
    st->window = window;
    return RL_OK;
}
