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
 * the sliding log), 1 <= window <= RL_WINDOW_MS_MAX, 1 <= cost <= max and
 * 0 <= now_ms < 2^50.
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
