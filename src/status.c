/*
 * status.c: the words of the library: rl_strerror() from the one list of
 * codes in ratelimit.h (RL_ERRNO_MAP), the version, and metric names.
 *
 * Keeping codes, names and texts in one X-macro list means a code can never
 * be added without its sentence.
 */
#include "rl_private.h"

/* ---- codes ---- */

RL_EXTERN const char *
rl_strerror(int code)
{
    switch (code) {
#define RL_STRERROR_CASE_(name, value, text) \
    case RL_##name:                          \
        return text;
        RL_ERRNO_MAP(RL_STRERROR_CASE_)
#undef RL_STRERROR_CASE_
    default:
        return "unknown error";
    }
}

/* ---- version ---- */

RL_EXTERN const char *
rl_version(void)
{
    return RL_VERSION_STRING;
}

/* ---- metric names ---- */

static const char *const metric_names[RL_METRIC_COUNT_] = {
    [RL_METRIC_CHECKS_TOTAL] = "checks_total",
    [RL_METRIC_ALLOWED] = "allowed_total",
    [RL_METRIC_DENIED] = "denied_total",
    [RL_METRIC_SOURCE_BACKEND] = "source_backend_total",
    [RL_METRIC_SOURCE_CACHE] = "source_cache_total",
    [RL_METRIC_SOURCE_FALLBACK] = "source_fallback_total",
    [RL_METRIC_REFUSED] = "refused_total",
    [RL_METRIC_PENDING] = "pending",
    [RL_METRIC_LOCAL_KEYS] = "local_keys",
    [RL_METRIC_LOCAL_EVICTIONS] = "local_evictions_total",
    [RL_METRIC_LOCAL_EXPIRED] = "local_expired_total",
    [RL_METRIC_RESETS] = "resets_total",
    [RL_METRIC_REDIS_COMMANDS] = "redis_commands_total",
    [RL_METRIC_REDIS_EVALSHA] = "redis_evalsha_total",
    [RL_METRIC_REDIS_NOSCRIPT] = "redis_noscript_total",
    [RL_METRIC_REDIS_RECONNECTS] = "redis_reconnects_total",
    [RL_METRIC_REDIS_ERRORS] = "redis_errors_total",
    [RL_METRIC_TIMEOUTS] = "timeouts_total",
    [RL_METRIC_BATCHES] = "batches_total",
    [RL_METRIC_BATCHED_CHECKS] = "batched_checks_total",
    [RL_METRIC_INFLIGHT] = "inflight_commands",
};

RL_EXTERN const char *
rl_metric_name(int id)
{
    if (id < 0 || id >= RL_METRIC_COUNT_)
        return NULL;
    return metric_names[id];
}
