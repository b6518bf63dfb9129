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
    [RL_METRIC_BREAKER_STATE] = "breaker_state",
    [RL_METRIC_BREAKER_TRIPS] = "breaker_trips_total",
    [RL_METRIC_BREAKER_TRANSITIONS] = "breaker_transitions_total",
    [RL_METRIC_BREAKER_REFUSED] = "breaker_refused_total",
    [RL_METRIC_ALLOWED_BACKEND] = "allowed_backend_total",
    [RL_METRIC_DENIED_BACKEND] = "denied_backend_total",
    [RL_METRIC_ALLOWED_CACHE] = "allowed_cache_total",
    [RL_METRIC_DENIED_CACHE] = "denied_cache_total",
    [RL_METRIC_ALLOWED_FALLBACK] = "allowed_fallback_total",
    [RL_METRIC_DENIED_FALLBACK] = "denied_fallback_total",
    [RL_METRIC_STATUS_INVALID] = "status_invalid_total",
    [RL_METRIC_STATUS_NOMEM] = "status_nomem_total",
    [RL_METRIC_STATUS_REDIS] = "status_redis_total",
    [RL_METRIC_STATUS_TIMEOUT] = "status_timeout_total",
    [RL_METRIC_STATUS_CIRCUIT_OPEN] = "status_circuit_open_total",
    [RL_METRIC_STATUS_OVERLOAD] = "status_overload_total",
    [RL_METRIC_STATUS_SHUTDOWN] = "status_shutdown_total",
    [RL_METRIC_STATUS_PROTOCOL] = "status_protocol_total",
    [RL_METRIC_ALERTS_ACTIVE] = "alerts_active",
    [RL_METRIC_CACHE_HITS] = "cache_hits_total",
    [RL_METRIC_CACHE_MISSES] = "cache_misses_total",
    [RL_METRIC_CACHE_SIZE] = "cache_entries",
    [RL_METRIC_CACHE_EVICTIONS] = "cache_evictions_total",
    [RL_METRIC_CACHE_EXPIRED] = "cache_expired_total",
    [RL_METRIC_BATCH_CALLS] = "batch_calls_total",
    [RL_METRIC_BATCH_ITEMS] = "batch_items_total",
    [RL_METRIC_BATCH_ITEMS_OK] = "batch_items_ok_total",
    [RL_METRIC_MULTI_CALLS] = "multi_calls_total",
    [RL_METRIC_MULTI_DENIED] = "multi_denied_total",
};

RL_EXTERN const char *
rl_metric_name(int id)
{
    if (id < 0 || id >= RL_METRIC_COUNT_)
        return NULL;
    return metric_names[id];
}
