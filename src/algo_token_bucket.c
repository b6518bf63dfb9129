/*
 * algo_token_bucket.c: the token bucket, C twin of its Lua script; both
 * follow docs/algorithms.md, section 5.
 *
 * A bucket of capacity max refills continuously at max tokens per window;
 * a check takes cost tokens or is denied.  The level is kept exactly as
 * whole tokens plus a fraction acc/w (0 <= acc < w), so no refill is ever
 * lost to rounding and a fresh (all zero) state reads as a full bucket.
 *
 * State: v[0] = whole tokens, v[1] = time of the level (ms), v[2] = acc,
 * the fraction of one more token in units of 1/window.
 */
#include "algo.h"

struct tb_level {
    int64_t tokens; /* whole tokens, 0..max */
    int64_t acc;    /* fraction in 1/w token, 0..w-1; 0 when full */
};

/* Adds d ms of refill at max per w ms, capped at max. */
static void
refill(struct tb_level *lv, int64_t d, int64_t max, int64_t w)
{
    int64_t r, q;

    if (d >= w) {
        lv->tokens = max;
        lv->acc = 0;
        return;
    }
    q = rl__muldiv(max, d, w, &r);
    lv->acc += r;
    if (lv->acc >= w) {
        lv->acc -= w;
        q++;
    }
    lv->tokens += q;
    if (lv->tokens >= max) {
        lv->tokens = max;
        lv->acc = 0;
    }
}

/*
 * The ms until k (>= 1) more whole tokens have refilled, with acc/w of a
 * token there already: ceil((k * w - acc) / max), split so that every
 * intermediate stays small.
 */
static int64_t
time_to(int64_t k, int64_t acc, int64_t max, int64_t w)
{
    int64_t r, q;

    q = rl__muldiv(k, w, max, &r);
    return q - acc / max + (r > acc % max);
}

/*
 * The limit changed: the units in use (max - level) stay in use under the
 * new max; a fraction measured in 1/old-window is dropped (rounded down).
 */
static void
change_limit(struct tb_level *lv, const rl_algo_state *st, int64_t max,
             int64_t window)
{
    lv->tokens += max - st->max;
    if (st->window != window)
        lv->acc = 0;
    if (lv->tokens < 0) {
        lv->tokens = 0;
        lv->acc = 0;
    }
    if (lv->tokens >= max) {
        lv->tokens = max;
        lv->acc = 0;
    }
}

int
rl__algo_token_bucket(rl_algo_state *st, int64_t now, int64_t max,
                      int64_t window, int64_t cost, rl_decision *out)
{
    struct tb_level lv = { max, 0 };
    int64_t t = now;

    if (st->max != 0) {
        /* A clock that steps back stands still at the level's time. */
        if (st->v[1] > t)
            t = st->v[1];
        lv.tokens = st->v[0];
        lv.acc = st->v[2];
        refill(&lv, t - st->v[1], st->max, st->window);
        if (st->max != max || st->window != window)
            change_limit(&lv, st, max, window);
    }

    out->allowed = lv.tokens >= cost;
    if (out->allowed)
        lv.tokens -= cost;
    out->remaining = lv.tokens;
    out->retry_after_ms = 0;
    if (!out->allowed)
        out->retry_after_ms = time_to(cost - lv.tokens, lv.acc, max, window);
    out->reset_ms = 0;
    if (lv.tokens < max)
        out->reset_ms = time_to(max - lv.tokens, lv.acc, max, window);
    out->expire_at_ms = t + out->reset_ms;

    st->v[0] = lv.tokens;
    st->v[1] = t;
    st->v[2] = lv.acc;
    st->max = max;
    st->window = window;
    return RL_OK;
}
