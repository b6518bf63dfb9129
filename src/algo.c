/*
 * algo.c: the front of the pure algorithms: the dispatch by rl_algorithm,
 * the release of a state, and the names RATE_LIMIT_ALGORITHM uses.
 *
 * Each algorithm lives in its own file (algo_<name>.c), the C twin of
 * lua/<name>.lua; docs/algorithms.md is the specification both follow.
 * Nothing here reads a clock, does I/O or keeps a global that changes, so
 * the local backend, the fallback and the tests all get the same answers
 * for the same inputs.
 */
#include <stdlib.h>
#include <string.h>

#include "algo.h"

/* Indexed by rl_algorithm; the names of the algorithm table of API.md. */
static const char *const names[] = {
    [RL_SLIDING_WINDOW] = "sliding-window",
    [RL_TOKEN_BUCKET] = "token-bucket",
    [RL_FIXED_WINDOW] = "fixed-window",
    [RL_SLIDING_LOG] = "sliding-log",
    [RL_GCRA] = "gcra",
};

#define N_NAMES (sizeof(names) / sizeof(names[0]))

/*
 * Decides one check with the algorithm `alg`.  Returns what the algorithm
 * returns, or RL_ERR_INVALID (state and *out untouched) for a value that
 * is not an rl_algorithm.
 */
int
rl__algo_decide(rl_algorithm alg, rl_algo_state *st, int64_t now_ms,
                int64_t max, int64_t window, int64_t cost, rl_decision *out)
{
    switch (alg) {
    case RL_SLIDING_WINDOW:
        return rl__algo_sliding_window(st, now_ms, max, window, cost, out);
    case RL_TOKEN_BUCKET:
        return rl__algo_token_bucket(st, now_ms, max, window, cost, out);
    case RL_FIXED_WINDOW:
        return rl__algo_fixed_window(st, now_ms, max, window, cost, out);
    case RL_SLIDING_LOG:
        return rl__algo_sliding_log(st, now_ms, max, window, cost, out);
    case RL_GCRA:
        return rl__algo_gcra(st, now_ms, max, window, cost, out);
    }
    return RL_ERR_INVALID;
}

/* Frees the sliding log's ring, if any, and zeroes the state (fresh). */
void
rl__algo_state_clear(rl_algo_state *st)
{
    if (st->log) {
        free(st->log->e);
        free(st->log);
    }
    memset(st, 0, sizeof(*st));
}

const char *
rl__algo_name(rl_algorithm alg)
{
    if ((unsigned)alg >= N_NAMES)
        return NULL;
    return names[alg];
}

/* Exact, case-sensitive match of one of the names above. */
int
rl__algo_parse(const char *name, rl_algorithm *out)
{
    size_t i;

    if (!name)
        return RL_ERR_INVALID;
    for (i = 0; i < N_NAMES; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (rl_algorithm)i;
            return RL_OK;
        }
    }
    return RL_ERR_INVALID;
}

/* ---- the public names ---- */

RL_EXTERN const char *
rl_algorithm_name(int alg)
{
    return rl__algo_name((rl_algorithm)alg);
}

RL_EXTERN int
rl_algorithm_parse(const char *name, rl_algorithm *out)
{
    if (out == NULL)
        return RL_ERR_INVALID;
    return rl__algo_parse(name, out);
}
