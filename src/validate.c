/*
 * validate.c: the bounds of one check, enforced before anything else so
 * that a bad argument is an error code with no callback and no change of
 * state.  The bounds come from docs/algorithms.md: they keep every value
 * the algorithms compute exact in Lua's doubles.
 */
#include "rl_private.h"

int
rl__validate_check(rl_algorithm alg, const void *key, size_t keylen,
                   int64_t max, int64_t window, int64_t cost)
{
    int64_t max_bound = RL_MAX_REQUESTS_MAX;

    if (alg == RL_SLIDING_LOG)
        max_bound = RL_SLIDING_LOG_MAX;
    if (key == NULL || keylen == 0 || keylen > RL_KEY_MAX)
        return RL_ERR_INVALID;
    if (max < 1 || max > max_bound)
        return RL_ERR_INVALID;
    if (window < 1 || window > RL_WINDOW_MS_MAX)
        return RL_ERR_INVALID;
    if (cost < 1 || cost > max)
        return RL_ERR_INVALID;
    return RL_OK;
}
