/*
 * algo.h: the pure algorithms, the C twins of lua/<name>.lua.
 *
 * Each algorithm is a pure function of (state, now_ms, max, window_ms,
 * cost) giving a decision and the new state, in integer arithmetic only.
 * docs/algorithms.md is the specification both twins follow; every value
 * the decision path computes stays below 2^53 so that Lua's doubles hold it
 * exactly and the two twins agree to the unit.
 *
 * Inputs are validated before they get here (rl__validate_check): the
 * algorithms assume 1 <= max <= RL_MAX_REQUESTS_MAX (RL_SLIDING_LOG_MAX for
 * the sliding log), 1 <= window <= RL_WINDOW_MS_MAX, 0 <= cost <= max and
 * 0 <= now_ms < 2^50.  Users cannot ask for cost 0; the groups below use
 * it internally for "what the state has left, nothing charged"
 * (docs/algorithms.md, section 10).
 *
 * Beyond one check: a peek (a decision on a copy) and a group (checks
 * decided all or nothing), the C twins of the scripts' call modes 'P' and
 * "g1,g2,...".
 */
#ifndef RL_ALGO_H
#define RL_ALGO_H

#include <stdbool.h>
#include <stdint.h>

#include "ratelimit.h"

/* Timestamps the algorithms accept: [0, RL_NOW_MAX]. */
#define RL_NOW_MAX ((INT64_C(1) << 50) - 1)

/* One admission of the sliding log: at time ts, cost units. */
struct rl_log_entry {
    int64_t ts;
    int64_t cost;
};

/* The sliding log's entries, oldest first, in a ring. */
struct rl_log {
    struct rl_log_entry *e;
    uint32_t cap, head, len; /* ring of cap entries, len used from head */
    int64_t sum;             /* the sum of the costs of the entries */
};

/*
 * The state of one (algorithm, key).  All zero is the fresh state (no
 * request seen).  `max` and `window` are the limit that last wrote it, so
 * an algorithm can see that the limit changed.  v[] is per algorithm, see
 * the algo_<name>.c file heads; `log` is the sliding log's, owned by the
 * state and released with rl__algo_state_clear.
 */
typedef struct rl_algo_state {
    int64_t v[3];
    int64_t max;
    int64_t window;
    struct rl_log *log;
} rl_algo_state;

typedef struct rl_decision {
    bool allowed;
    int64_t remaining;      /* >= 0 */
    int64_t reset_ms;       /* >= 0 */
    int64_t retry_after_ms; /* 0 when allowed, > 0 when denied */
    int64_t expire_at_ms;   /* from then on the state equals the fresh state
                               (the key may be dropped); absolute ms */
} rl_decision;

/*
 * Decides one check at now_ms and updates *st in place.  Returns RL_OK, or
 * RL_ERR_NOMEM (sliding log only: state and *out unchanged).
 */
int rl__algo_decide(rl_algorithm alg, rl_algo_state *st, int64_t now_ms,
                    int64_t max, int64_t window, int64_t cost,
                    rl_decision *out);

/* Releases what a state owns and makes it fresh. */
void rl__algo_state_clear(rl_algo_state *st);

/*
 * Deep copy of *src into *dst (the sliding log's ring too).  *dst must own
 * nothing (fresh or cleared): it is overwritten, not released; the copy is
 * the caller's, released with rl__algo_state_clear.  Returns RL_OK, or
 * RL_ERR_NOMEM (*dst left fresh).
 */
int rl__algo_state_copy(rl_algo_state *dst, const rl_algo_state *src);

/*
 * A decision on a copy: what rl__algo_decide would answer, *st unchanged
 * (the scripts' mode 'P').  Returns RL_OK, RL_ERR_NOMEM (copying or
 * growing the sliding log's ring; *out unchanged) or RL_ERR_INVALID (not
 * an rl_algorithm).
 */
int rl__algo_peek(rl_algorithm alg, const rl_algo_state *st, int64_t now,
                  int64_t max, int64_t window, int64_t cost, rl_decision *out);

/*
 * Decides a group of n checks all or nothing at now (the semantics of the
 * scripts' group mode, docs/algorithms.md, section 10).  st[i] is the
 * state of check i's key; checks on one key share one pointer.  The checks
 * are decided in order, each on what the earlier ones left.  When every
 * check admits, the states are left charged exactly as n successive
 * rl__algo_decide calls would leave them, out[i] is what call i answered
 * and *admitted = true.  Otherwise the states are left untouched,
 * *admitted = false and out[] holds the group-denied results: allowed
 * false everywhere; a check that itself denied keeps its remaining,
 * reset_ms and retry_after_ms; every other check gets retry_after_ms 0 and
 * the remaining and reset_ms of a check of cost 0 with its limit on its
 * untouched state.  out[i].expire_at_ms: as rl__algo_decide's for the
 * charged state (admitted) or the untouched state's (denied: when its own
 * limit lets it go, now for a fresh one).  n <= RL_CHECK_ALL_MAX.
 * Returns RL_OK, RL_ERR_NOMEM (states untouched, out[] undefined) or
 * RL_ERR_INVALID (n too big or not an rl_algorithm; nothing done).
 */
int rl__algo_group(rl_algorithm alg, rl_algo_state *const st[], size_t n,
                   int64_t now, const int64_t max[], const int64_t window[],
                   const int64_t cost[], rl_decision out[], bool *admitted);

/* Per algorithm, called by rl__algo_decide; same contract. */
int rl__algo_fixed_window(rl_algo_state *st, int64_t now, int64_t max,
                          int64_t window, int64_t cost, rl_decision *out);
int rl__algo_sliding_window(rl_algo_state *st, int64_t now, int64_t max,
                            int64_t window, int64_t cost, rl_decision *out);
int rl__algo_token_bucket(rl_algo_state *st, int64_t now, int64_t max,
                          int64_t window, int64_t cost, rl_decision *out);
int rl__algo_sliding_log(rl_algo_state *st, int64_t now, int64_t max,
                         int64_t window, int64_t cost, rl_decision *out);
int rl__algo_gcra(rl_algo_state *st, int64_t now, int64_t max,
                  int64_t window, int64_t cost, rl_decision *out);

/* Names as in RATE_LIMIT_ALGORITHM ("sliding-window", ...), or NULL. */
const char *rl__algo_name(rl_algorithm alg);
/* Parses a name; returns RL_OK or RL_ERR_INVALID. */
int rl__algo_parse(const char *name, rl_algorithm *out);

/*
 * floor(a * b / c) and the remainder, exactly, for 0 <= a < 2^30,
 * 0 <= b < 2^37, 1 <= c < 2^37: the helper both twins use wherever a
 * product could pass 2^53 (the Lua twin splits a into 15-bit halves).
 */
static inline int64_t
rl__muldiv(int64_t a, int64_t b, int64_t c, int64_t *rem)
{
    unsigned __int128 p = (unsigned __int128)a * (unsigned __int128)b;
    int64_t q = (int64_t)(p / (unsigned __int128)c);

    if (rem)
        *rem = (int64_t)(p - (unsigned __int128)q * (unsigned __int128)c);
    return q;
}

#endif /* RL_ALGO_H */
