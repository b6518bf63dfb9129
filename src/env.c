/*
 * env.c: rl_config_from_env, the environment variables of the API table
 * read into an rl_config.
 *
 * One table row per variable (name, kind, field) drives the whole parse.
 * The syntax is strict, because a typo must never become a silent default:
 *   - an unset or empty variable leaves its field alone (empty = unset, so
 *     that `VAR= prog` and shell templates with blank values mean "default");
 *   - numbers are decimal digits only: no sign, no blanks, no trailing
 *     characters, and no value beyond the field's type (int or int64_t);
 *     the ranges of the fields are then checked by rl__config_validate, the
 *     one place they live, whose log line names the variable too;
 *   - booleans are true/false, 1/0 or yes/no, in any case;
 *   - enum names (backend, algorithm, fallback, log level) are exact and
 *     lower-case, as the API table spells them: "Redis" is refused rather
 *     than read, so each setting has one spelling;
 *   - strings are kept as the pointers getenv returns (borrowed from the
 *     environment, as ratelimit.h says).
 * RATE_LIMIT_LOG_LEVEL is read first, so that it already applies to the log
 * line about a malformed variable.
 *
 * The parse works on a copy: on any failure *cfg is left exactly as it was.
 * A log line names the variable and shows its value when short and
 * printable.  REDIS_URL and REDIS_PASSWORD are marked secret and never
 * shown; no string can be malformed here anyway, and rl__config_validate,
 * which checks the URL, never shows it either.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rl_private.h"

#define SHOW_MAX 64 /* bytes of a value shown in a log line */

enum kind {
    K_BOOL,   /* bool */
    K_INT,    /* int, 0..INT_MAX */
    K_I64,    /* int64_t, 0..INT64_MAX */
    K_STR,    /* const char *, shown in log lines */
    K_SECRET, /* const char *, never shown */
    K_ENUM,   /* an enum, by the names of `names` (index = value) */
    K_ALGO    /* rl_algorithm, by rl__algo_parse */
};

struct var {
    const char *name;
    enum kind kind;
    size_t off;
    const char *const *names; /* K_ENUM: NULL-terminated */
    const char *hint;         /* K_ENUM: the names, for the log line */
};

static const char *const backend_names[] = {"redis", "local", NULL};
static const char *const fallback_names[] = {"allow", "deny", "local", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          "none", NULL};

#define V(n, k, f) {n, k, offsetof(rl_config, f), NULL, NULL}
#define E(n, f, l, h) {n, K_ENUM, offsetof(rl_config, f), l, h}

static const struct var vars[] = {
    E("RATE_LIMIT_LOG_LEVEL", log_level, level_names,
      "debug, info, warn, error or none"),
    E("RATE_LIMIT_BACKEND", backend, backend_names, "redis or local"),
    V("REDIS_URL", K_SECRET, redis.url),
    V("REDIS_HOST", K_STR, redis.host),
    V("REDIS_PORT", K_INT, redis.port),
    V("REDIS_DB", K_INT, redis.db),
    V("REDIS_USERNAME", K_STR, redis.username),
    V("REDIS_PASSWORD", K_SECRET, redis.password),
    V("REDIS_CLUSTER_NODES", K_STR, redis.cluster_nodes),
    V("REDIS_CONNECT_TIMEOUT", K_I64, redis.connect_timeout_ms),
    V("REDIS_COMMAND_TIMEOUT", K_I64, redis.command_timeout_ms),
    V("RATE_LIMIT_ALGORITHM", K_ALGO, algorithm),
    V("RATE_LIMIT_KEY_PREFIX", K_STR, redis.key_prefix),
    V("RATE_LIMIT_TTL_BUFFER", K_I64, redis.ttl_buffer_s),
    E("RATE_LIMIT_FALLBACK", fallback, fallback_names,
      "allow, deny or local"),
    V("RATE_LIMIT_MAX_PENDING", K_I64, max_pending),
    V("CACHE_ENABLED", K_BOOL, cache.enabled),
    V("CACHE_MAX_SIZE", K_I64, cache.max_size),
    V("CACHE_DEFAULT_TTL", K_I64, cache.default_ttl_ms),
    V("CACHE_CLEANUP_INTERVAL", K_I64, cache.cleanup_interval_ms),
    V("CIRCUIT_BREAKER_ENABLED", K_BOOL, circuit_breaker.enabled),
    V("CIRCUIT_BREAKER_FAILURE_THRESHOLD", K_I64,
      circuit_breaker.failure_threshold),
    V("CIRCUIT_BREAKER_RECOVERY_TIMEOUT", K_I64,
      circuit_breaker.recovery_timeout_ms),
    V("CIRCUIT_BREAKER_MAX_RECOVERY_TIMEOUT", K_I64,
      circuit_breaker.max_recovery_timeout_ms),
    V("CIRCUIT_BREAKER_HALF_OPEN_PROBES", K_I64,
      circuit_breaker.half_open_probes),
    V("CIRCUIT_BREAKER_WINDOW_SIZE", K_I64, circuit_breaker.window_size),
    V("CIRCUIT_BREAKER_MINIMUM_CALLS", K_I64, circuit_breaker.minimum_calls),
    V("CIRCUIT_BREAKER_FAILURE_RATE", K_I64,
      circuit_breaker.failure_rate_pct),
    V("CIRCUIT_BREAKER_SLOW_CALL_RATE", K_I64,
      circuit_breaker.slow_call_rate_pct),
    V("CIRCUIT_BREAKER_SLOW_CALL_MS", K_I64, circuit_breaker.slow_call_ms),
    V("DISTRIBUTED_ENABLED", K_BOOL, distributed.enabled),
    V("INSTANCE_ID", K_STR, distributed.instance_id),
    V("SYNC_INTERVAL", K_I64, distributed.sync_interval_ms),
    V("MAX_DRIFT", K_I64, distributed.max_drift_ms),
    V("BATCH_CONCURRENCY", K_I64, batch.concurrency),
    V("BATCH_SIZE", K_I64, batch.size),
    V("BATCH_TIMEOUT", K_I64, batch.timeout_ms),
    V("BATCH_MAX", K_I64, batch.max),
    V("REDIS_PIPELINE_DEPTH", K_I64, pipeline_depth),
    V("RATE_LIMIT_LOCAL_MAX_KEYS", K_I64, local.max_keys),
    V("RATE_LIMIT_LOCAL_SWEEP_INTERVAL", K_I64, local.sweep_interval_ms),
};

_Static_assert(sizeof(rl_backend) == sizeof(int) &&
                   sizeof(rl_algorithm) == sizeof(int) &&
                   sizeof(rl_fallback) == sizeof(int) &&
                   sizeof(rl_log_level) == sizeof(int),
               "the enums of rl_config are written as int");

/* ---- syntax ---- */

/* Decimal digits only, at least one, value <= max. */
static int
parse_uint(const char *s, int64_t max, int64_t *out)
{
    int64_t v = 0;
    int d;

    if (*s == '\0')
        return RL_ERR_INVALID;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return RL_ERR_INVALID;
        d = *s - '0';
        if (v > (max - d) / 10)
            return RL_ERR_INVALID;
        v = v * 10 + d;
    }
    *out = v;
    return RL_OK;
}

static int
parse_bool(const char *s, bool *out)
{
    if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0 ||
        strcasecmp(s, "yes") == 0) {
        *out = true;
        return RL_OK;
    }
    if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0 ||
        strcasecmp(s, "no") == 0) {
        *out = false;
        return RL_OK;
    }
    return RL_ERR_INVALID;
}

static int
parse_enum(const char *s, const char *const *names, int *out)
{
    int i;

    for (i = 0; names[i]; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return RL_OK;
        }
    }
    return RL_ERR_INVALID;
}

/* ---- one variable ---- */

/* What a malformed value of this kind should have been. */
static const char *
expected(const struct var *v)
{
    switch (v->kind) {
    case K_BOOL:
        return "true, false, 1, 0, yes or no";
    case K_INT:
    case K_I64:
        return "decimal digits only, in range";
    case K_ENUM:
        return v->hint;
    case K_ALGO:
        return "sliding-window, token-bucket, fixed-window, sliding-log or "
               "gcra";
    default:
        return "a string";
    }
}

/* s quoted in buf when short printable text, else a stand-in. */
static const char *
show(const struct var *v, const char *s, char *buf, size_t n)
{
    size_t i, len = strlen(s);

    if (v->kind == K_SECRET || len > SHOW_MAX || len + 3 > n)
        return "(not shown)";
    for (i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"')
            return "(not shown)";
    snprintf(buf, n, "\"%s\"", s);
    return buf;
}

/* Writes the value s of v into cfg; RL_ERR_INVALID when malformed. */
static int
store(const struct var *v, const char *s, rl_config *cfg)
{
    char *field = (char *)cfg + v->off;
    int64_t i64;
    int i;

    switch (v->kind) {
    case K_BOOL:
        return parse_bool(s, (bool *)field);
    case K_INT:
        if (parse_uint(s, INT_MAX, &i64) != RL_OK)
            return RL_ERR_INVALID;
        i = (int)i64;
        memcpy(field, &i, sizeof(i));
        return RL_OK;
    case K_I64:
        return parse_uint(s, INT64_MAX, (int64_t *)field);
    case K_ENUM:
        if (parse_enum(s, v->names, &i) != RL_OK)
            return RL_ERR_INVALID;
        memcpy(field, &i, sizeof(i));
        return RL_OK;
    case K_ALGO:
        return rl__algo_parse(s, (rl_algorithm *)field);
    default:
        *(const char **)field = s;
        return RL_OK;
    }
}

static int
read_var(const struct var *v, rl_config *cfg)
{
    const char *s = getenv(v->name);
    rl_log_level min = cfg->log_level;
    char buf[SHOW_MAX + 3];

    if (s == NULL || s[0] == '\0')
        return RL_OK;
    if (store(v, s, cfg) == RL_OK)
        return RL_OK;
    if ((int)min < RL_LOG_DEBUG || (int)min > RL_LOG_NONE)
        min = RL_LOG_WARN; /* itself invalid: still say why */
    rl__log_cfg(cfg->log_cb, cfg->log_arg, min, RL_LOG_ERROR,
                "invalid configuration: %s=%s: expected %s", v->name,
                show(v, s, buf, sizeof(buf)), expected(v));
    return RL_ERR_INVALID;
}

/* ---- entry point ---- */

RL_EXTERN int
rl_config_from_env(rl_config *cfg)
{
    rl_config tmp;
    size_t i;
    int rc;

    if (cfg == NULL)
        return RL_ERR_INVALID;
    memcpy(&tmp, cfg, sizeof(tmp));
    for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        rc = read_var(&vars[i], &tmp);
        if (rc != RL_OK)
            return rc;
    }
    rc = rl__config_validate(&tmp);
    if (rc != RL_OK)
        return rc;
    memcpy(cfg, &tmp, sizeof(*cfg));
    return RL_OK;
}
