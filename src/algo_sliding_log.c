/*
 * algo_sliding_log.c: the sliding log, C twin of its Lua script; both
 * follow docs/algorithms.md, section 8.
 *
 * The exact algorithm: every admission is remembered as (ts, cost) until
 * it is w ms old, and a check passes when the units still remembered plus
 * its cost fit in max.  So no span of w ms ever holds more than max units.
 * The price is memory: up to max entries per key, hence the smaller bound
 * RL_SLIDING_LOG_MAX on max.
 *
 * State: log, a ring of (ts, cost) oldest first, admissions of the same ms
 * merged into one entry, with the sum of their costs.  v[] is unused (0).
 * The ring grows by doubling (never beyond max entries, which is all a log
 * can need: every entry holds at least one unit) and halves when it is
 * three quarters empty.
 */
#include <stdlib.h>
#include <string.h>

#include "algo.h"

#define RING_MIN 4

/* ---- the ring ---- */

static struct rl_log_entry *
at(const struct rl_log *l, uint32_t i)
{
    return &l->e[(l->head + i) % l->cap];
}

/*
 * Makes room for `need` entries, keeping the ones there (so a failure
 * leaves the state as it was).  RL_OK or RL_ERR_NOMEM.
 */
static int
reserve(rl_algo_state *st, uint32_t need, int64_t max)
{
    struct rl_log *l = st->log;
    struct rl_log_entry *e;
    uint32_t cap, tail;

    if (l && need <= l->cap)
        return RL_OK;
    if (!l) {
        l = calloc(1, sizeof(*l));
        if (!l)
            return RL_ERR_NOMEM;
    }
    cap = l->cap ? l->cap * 2 : RING_MIN;
    if ((int64_t)cap > max)
        cap = (uint32_t)max;
    if (cap < need)
        cap = need;
    e = realloc(l->e, (size_t)cap * sizeof(*e));
    if (!e)
        goto out_nomem;
    /* Unwrap: move the part from head to the old end to the new end. */
    if (l->head + l->len > l->cap) {
        tail = l->cap - l->head;
        memmove(e + cap - tail, e + l->head, (size_t)tail * sizeof(*e));
        l->head = cap - tail;
    }
    l->e = e;
    l->cap = cap;
    st->log = l;
    return RL_OK;

out_nomem:
    if (!st->log)
        free(l);
    return RL_ERR_NOMEM;
}

/*
 * Halves a ring that is three quarters empty, as often as that holds; a
 * failure costs nothing.
 */
static void
shrink(struct rl_log *l)
{
    struct rl_log_entry *e;
    uint32_t cap = l->cap, i;

    while (cap > RING_MIN && l->len <= cap / 4)
        cap /= 2;
    if (cap == l->cap)
        return;
    e = malloc((size_t)cap * sizeof(*e));
    if (!e)
        return;
    for (i = 0; i < l->len; i++)
        e[i] = *at(l, i);
    free(l->e);
    l->e = e;
    l->cap = cap;
    l->head = 0;
}

/* Drops the n oldest entries. */
static void
drop_oldest(struct rl_log *l, uint32_t n)
{
    uint32_t i;

    for (i = 0; i < n; i++)
        l->sum -= at(l, i)->cost;
    l->head = l->cap ? (l->head + n) % l->cap : 0;
    l->len -= n;
    if (l->len == 0)
        l->head = 0;
}

/* Adds cost units at ts (>= the newest entry's ts). */
static void
append(struct rl_log *l, int64_t ts, int64_t cost)
{
    struct rl_log_entry *last;

    if (l->len > 0) {
        last = at(l, l->len - 1);
        if (last->ts == ts) {
            last->cost += cost;
            l->sum += cost;
            return;
        }
    }
    last = at(l, l->len);
    last->ts = ts;
    last->cost = cost;
    l->len++;
    l->sum += cost;
}

/* ---- the decision ---- */

/*
 * The time the check (denied) can pass: when enough of the oldest entries
 * have expired for sum + cost <= max.
 */
static int64_t
pass_time(const struct rl_log *l, int64_t max, int64_t window, int64_t cost)
{
    int64_t left = l->sum;
    uint32_t i;

    for (i = 0; i < l->len; i++) {
        left -= at(l, i)->cost;
        if (left + cost <= max)
            break;
    }
    return at(l, i)->ts + window;
}

/* How many of the oldest entries are expired at t with a window of w. */
static uint32_t
expired(const struct rl_log *l, int64_t t, int64_t w, int64_t *units)
{
    uint32_t n = 0;

    *units = 0;
    while (l && n < l->len && t - at(l, n)->ts >= w) {
        *units += at(l, n)->cost;
        n++;
    }
    return n;
}

/*
 * One check at now.  On a change of window, what expired under either the
 * old or the new window is dropped; the rest then lives by the new one.
 * A check of cost 0 admits nothing, so it adds no entry (and never
 * allocates): it only drops what expired.
 */
int
rl__algo_sliding_log(rl_algo_state *st, int64_t now, int64_t max,
                     int64_t window, int64_t cost, rl_decision *out)
{
    struct rl_log *l = st->log;
    uint32_t len = l ? l->len : 0, drop;
    int64_t t = now, w = window, gone, newest, sum;
    bool allowed;
    int rc;

    /* A clock that steps back stands still at the newest entry. */
    if (len > 0 && at(l, len - 1)->ts > t)
        t = at(l, len - 1)->ts;
    if (st->max != 0 && st->window < w)
        w = st->window;
    drop = expired(l, t, w, &gone);

    allowed = (l ? l->sum : 0) - gone + cost <= max;
    if (allowed && cost > 0 && (len == drop || at(l, len - 1)->ts != t)) {
        rc = reserve(st, len - drop + 1, max);
        if (rc != RL_OK)
            return rc;
        l = st->log;
    }

    if (l) {
        drop_oldest(l, drop);
        if (allowed && cost > 0)
            append(l, t, cost);
    }
    sum = l ? l->sum : 0;
    out->allowed = allowed;
    out->remaining = max - sum > 0 ? max - sum : 0;
    out->retry_after_ms = 0;
    if (!out->allowed)
        out->retry_after_ms = pass_time(l, max, window, cost) - t;
    newest = l && l->len > 0 ? at(l, l->len - 1)->ts : t - window;
    out->reset_ms = newest + window - t;
    out->expire_at_ms = t + out->reset_ms;

    if (l)
        shrink(l);
    st->max = max;
    st->window = window;
    return RL_OK;
}
