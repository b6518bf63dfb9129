/*
 * test_config.c: the configuration module (config.c, env.c, url.c).
 *
 * Covers every default of rl_config_init, every environment variable with
 * good and malformed values (the variable's name must be in the log line,
 * a password never), REDIS_URL parsing, and each range rl__config_validate
 * enforces, with the boundary values on both sides.  Each test starts with
 * every variable unset and an empty log capture; Check runs each test in
 * its own process, so setenv never leaks between tests.
 */
#include <check.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "check_main.h"
#include "rl_private.h"

#define SECRET "Pw-Secret-123"
#define OFF(f) offsetof(rl_config, f)

static const char *const all_vars[] = {
    "RATE_LIMIT_BACKEND", "REDIS_URL", "REDIS_HOST", "REDIS_PORT",
    "REDIS_DB", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_CLUSTER_NODES",
    "REDIS_CONNECT_TIMEOUT", "REDIS_COMMAND_TIMEOUT", "RATE_LIMIT_ALGORITHM",
    "RATE_LIMIT_KEY_PREFIX", "RATE_LIMIT_TTL_BUFFER", "RATE_LIMIT_FALLBACK",
    "RATE_LIMIT_MAX_PENDING", "CACHE_ENABLED", "CACHE_MAX_SIZE",
    "CACHE_DEFAULT_TTL", "CACHE_CLEANUP_INTERVAL", "CIRCUIT_BREAKER_ENABLED",
    "CIRCUIT_BREAKER_FAILURE_THRESHOLD", "CIRCUIT_BREAKER_RECOVERY_TIMEOUT",
    "CIRCUIT_BREAKER_MAX_RECOVERY_TIMEOUT", "CIRCUIT_BREAKER_HALF_OPEN_PROBES",
    "CIRCUIT_BREAKER_WINDOW_SIZE", "CIRCUIT_BREAKER_MINIMUM_CALLS",
    "CIRCUIT_BREAKER_FAILURE_RATE", "CIRCUIT_BREAKER_SLOW_CALL_RATE",
    "CIRCUIT_BREAKER_SLOW_CALL_MS", "DISTRIBUTED_ENABLED", "INSTANCE_ID", "SYNC_INTERVAL", "MAX_DRIFT",
    "BATCH_CONCURRENCY", "BATCH_SIZE", "BATCH_TIMEOUT", "BATCH_MAX",
    "REDIS_PIPELINE_DEPTH",
    "RATE_LIMIT_LOCAL_MAX_KEYS", "RATE_LIMIT_LOCAL_SWEEP_INTERVAL",
    "RATE_LIMIT_LOG_LEVEL",
};
#define N_VARS (sizeof(all_vars) / sizeof(all_vars[0]))

/* ---- log capture and helpers ---- */

static char logbuf[16384];
static int log_lines;

static void
capture(rl_log_level level, const char *msg, void *arg)
{
    size_t used = strlen(logbuf);

    (void)arg;
    ck_assert_int_eq(level, RL_LOG_ERROR);
    snprintf(logbuf + used, sizeof(logbuf) - used, "%s\n", msg);
    log_lines++;
}

static void
setup(void)
{
    size_t i;

    for (i = 0; i < N_VARS; i++)
        unsetenv(all_vars[i]);
    logbuf[0] = '\0';
    log_lines = 0;
}

/* Defaults, logging into the capture at debug level (every line). */
static void
init_cfg(rl_config *cfg)
{
    rl_config_init(cfg);
    cfg->log_cb = capture;
    cfg->log_level = RL_LOG_DEBUG;
}

static bool
logged(const char *s)
{
    return strstr(logbuf, s) != NULL;
}

static int64_t
get_field(const rl_config *cfg, size_t off, bool wide)
{
    const char *p = (const char *)cfg + off;
    int64_t v64;
    int v;

    if (wide) {
        memcpy(&v64, p, sizeof(v64));
        return v64;
    }
    memcpy(&v, p, sizeof(v));
    return v;
}

static void
set_field(rl_config *cfg, size_t off, bool wide, int64_t val)
{
    char *p = (char *)cfg + off;
    int v = (int)val;

    if (wide)
        memcpy(p, &val, sizeof(val));
    else
        memcpy(p, &v, sizeof(v));
}

static char *
repeat(char c, size_t n)
{
    static char buf[1024];

    ck_assert_uint_lt(n, sizeof(buf));
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

/* ---- defaults ---- */

START_TEST(test_defaults)
{
    rl_config c;
    size_t i;

    memset(&c, 0xa5, sizeof(c));
    rl_config_init(&c);
    ck_assert_int_eq(c.backend, RL_BACKEND_REDIS);
    ck_assert_int_eq(c.algorithm, RL_SLIDING_WINDOW);
    ck_assert_int_eq(c.fallback, RL_FALLBACK_ALLOW);
    ck_assert_int_eq(c.max_pending, 100000);
    ck_assert_ptr_null(c.redis.url);
    ck_assert_str_eq(c.redis.host, "127.0.0.1");
    ck_assert_int_eq(c.redis.port, 6379);
    ck_assert_int_eq(c.redis.db, 0);
    ck_assert_ptr_null(c.redis.username);
    ck_assert_ptr_null(c.redis.password);
    ck_assert_ptr_null(c.redis.cluster_nodes);
    ck_assert_int_eq(c.redis.connect_timeout_ms, 1000);
    ck_assert_int_eq(c.redis.command_timeout_ms, 250);
    ck_assert_str_eq(c.redis.key_prefix, "rate_limit");
    ck_assert_int_eq(c.redis.ttl_buffer_s, 10);
    ck_assert(!c.circuit_breaker.enabled);
    ck_assert_int_eq(c.circuit_breaker.failure_threshold, 5);
    ck_assert_int_eq(c.circuit_breaker.recovery_timeout_ms, 30000);
    ck_assert(!c.cache.enabled);
    ck_assert_int_eq(c.cache.max_size, 10000);
    ck_assert_int_eq(c.cache.default_ttl_ms, 300000);
    ck_assert_int_eq(c.cache.cleanup_interval_ms, 600000);
    ck_assert(!c.distributed.enabled);
    ck_assert_ptr_null(c.distributed.instance_id);
    ck_assert_int_eq(c.distributed.sync_interval_ms, 30000);
    ck_assert_int_eq(c.distributed.max_drift_ms, 5000);
    ck_assert_int_eq(c.batch.concurrency, 5);
    ck_assert_int_eq(c.batch.size, 50);
    ck_assert_int_eq(c.batch.timeout_ms, 10000);
    ck_assert_int_eq(c.batch.max, 64);
    ck_assert_int_eq(c.pipeline_depth, 0);
    ck_assert_int_eq(c.local.max_keys, 1000000);
    ck_assert_int_eq(c.local.sweep_interval_ms, 1000);
    ck_assert(c.log_cb == NULL);
    ck_assert_ptr_null(c.log_arg);
    ck_assert_int_eq(c.log_level, RL_LOG_WARN);
    ck_assert(c.clock == NULL);
    ck_assert_ptr_null(c.clock_arg);
    for (i = 0; i < RL_CONFIG_RESERVED; i++)
        ck_assert_int_eq(c.reserved_[i], 0);
}
END_TEST

START_TEST(test_defaults_valid)
{
    rl_config c;

    init_cfg(&c);
    ck_assert_int_eq(rl__config_validate(&c), RL_OK);
    ck_assert_int_eq(log_lines, 0);
    ck_assert_int_eq(rl__config_validate(NULL), RL_ERR_INVALID);
}
END_TEST

START_TEST(test_env_nothing_set)
{
    rl_config c, before;

    init_cfg(&c);
    memcpy(&before, &c, sizeof(c));
    ck_assert_int_eq(rl_config_from_env(&c), RL_OK);
    ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);
    ck_assert_int_eq(log_lines, 0);
    ck_assert_int_eq(rl_config_from_env(NULL), RL_ERR_INVALID);
}
END_TEST

/* ---- every variable, good values ---- */

enum ftype {
    F_INT,  /* int or enum */
    F_I64,
    F_BOOL,
    F_STR
};

struct env_good {
    const char *var;
    const char *value;
    enum ftype type;
    size_t off;
    int64_t want;
};

static const struct env_good goods[] = {
    {"RATE_LIMIT_LOG_LEVEL", "debug", F_INT, OFF(log_level), RL_LOG_DEBUG},
    {"RATE_LIMIT_LOG_LEVEL", "info", F_INT, OFF(log_level), RL_LOG_INFO},
    {"RATE_LIMIT_LOG_LEVEL", "warn", F_INT, OFF(log_level), RL_LOG_WARN},
    {"RATE_LIMIT_LOG_LEVEL", "error", F_INT, OFF(log_level), RL_LOG_ERROR},
    {"RATE_LIMIT_LOG_LEVEL", "none", F_INT, OFF(log_level), RL_LOG_NONE},
    {"RATE_LIMIT_BACKEND", "redis", F_INT, OFF(backend), RL_BACKEND_REDIS},
    {"RATE_LIMIT_BACKEND", "local", F_INT, OFF(backend), RL_BACKEND_LOCAL},
    {"REDIS_URL", "redis://u:p@h:1/2", F_STR, OFF(redis.url), 0},
    {"REDIS_URL", "unix:///run/redis.sock", F_STR, OFF(redis.url), 0},
    {"REDIS_HOST", "redis.example.com", F_STR, OFF(redis.host), 0},
    {"REDIS_HOST", "::1", F_STR, OFF(redis.host), 0},
    {"REDIS_PORT", "1", F_INT, OFF(redis.port), 1},
    {"REDIS_PORT", "65535", F_INT, OFF(redis.port), 65535},
    {"REDIS_PORT", "007", F_INT, OFF(redis.port), 7},
    {"REDIS_DB", "0", F_INT, OFF(redis.db), 0},
    {"REDIS_DB", "15", F_INT, OFF(redis.db), 15},
    {"REDIS_USERNAME", "alice", F_STR, OFF(redis.username), 0},
    {"REDIS_PASSWORD", SECRET, F_STR, OFF(redis.password), 0},
    {"REDIS_CLUSTER_NODES", "a:7000,b.example:7001,[::1]:7002", F_STR,
     OFF(redis.cluster_nodes), 0},
    {"REDIS_CONNECT_TIMEOUT", "1", F_I64, OFF(redis.connect_timeout_ms), 1},
    {"REDIS_CONNECT_TIMEOUT", "5000", F_I64, OFF(redis.connect_timeout_ms),
     5000},
    {"REDIS_COMMAND_TIMEOUT", "100", F_I64, OFF(redis.command_timeout_ms),
     100},
    {"RATE_LIMIT_ALGORITHM", "sliding-window", F_INT, OFF(algorithm),
     RL_SLIDING_WINDOW},
    {"RATE_LIMIT_ALGORITHM", "token-bucket", F_INT, OFF(algorithm),
     RL_TOKEN_BUCKET},
    {"RATE_LIMIT_ALGORITHM", "fixed-window", F_INT, OFF(algorithm),
     RL_FIXED_WINDOW},
    {"RATE_LIMIT_ALGORITHM", "sliding-log", F_INT, OFF(algorithm),
     RL_SLIDING_LOG},
    {"RATE_LIMIT_ALGORITHM", "gcra", F_INT, OFF(algorithm), RL_GCRA},
    {"RATE_LIMIT_KEY_PREFIX", "api:rl", F_STR, OFF(redis.key_prefix), 0},
    {"RATE_LIMIT_TTL_BUFFER", "0", F_I64, OFF(redis.ttl_buffer_s), 0},
    {"RATE_LIMIT_TTL_BUFFER", "60", F_I64, OFF(redis.ttl_buffer_s), 60},
    {"RATE_LIMIT_FALLBACK", "allow", F_INT, OFF(fallback),
     RL_FALLBACK_ALLOW},
    {"RATE_LIMIT_FALLBACK", "deny", F_INT, OFF(fallback), RL_FALLBACK_DENY},
    {"RATE_LIMIT_FALLBACK", "local", F_INT, OFF(fallback),
     RL_FALLBACK_LOCAL},
    {"RATE_LIMIT_MAX_PENDING", "1", F_I64, OFF(max_pending), 1},
    {"RATE_LIMIT_MAX_PENDING", "500", F_I64, OFF(max_pending), 500},
    {"CACHE_ENABLED", "true", F_BOOL, OFF(cache.enabled), 1},
    {"CACHE_ENABLED", "TRUE", F_BOOL, OFF(cache.enabled), 1},
    {"CACHE_ENABLED", "1", F_BOOL, OFF(cache.enabled), 1},
    {"CACHE_ENABLED", "yes", F_BOOL, OFF(cache.enabled), 1},
    {"CACHE_ENABLED", "Yes", F_BOOL, OFF(cache.enabled), 1},
    {"CACHE_ENABLED", "false", F_BOOL, OFF(cache.enabled), 0},
    {"CACHE_ENABLED", "False", F_BOOL, OFF(cache.enabled), 0},
    {"CACHE_ENABLED", "0", F_BOOL, OFF(cache.enabled), 0},
    {"CACHE_ENABLED", "no", F_BOOL, OFF(cache.enabled), 0},
    {"CACHE_ENABLED", "NO", F_BOOL, OFF(cache.enabled), 0},
    {"CACHE_MAX_SIZE", "20000", F_I64, OFF(cache.max_size), 20000},
    {"CACHE_DEFAULT_TTL", "1000", F_I64, OFF(cache.default_ttl_ms), 1000},
    {"CACHE_CLEANUP_INTERVAL", "2000", F_I64, OFF(cache.cleanup_interval_ms),
     2000},
    {"CIRCUIT_BREAKER_ENABLED", "yes", F_BOOL, OFF(circuit_breaker.enabled),
     1},
    {"CIRCUIT_BREAKER_FAILURE_THRESHOLD", "3", F_I64,
     OFF(circuit_breaker.failure_threshold), 3},
    {"CIRCUIT_BREAKER_HALF_OPEN_PROBES", "4", F_I64,
     OFF(circuit_breaker.half_open_probes), 4},
    {"CIRCUIT_BREAKER_FAILURE_RATE", "50", F_I64,
     OFF(circuit_breaker.failure_rate_pct), 50},
    {"CIRCUIT_BREAKER_SLOW_CALL_MS", "250", F_I64,
     OFF(circuit_breaker.slow_call_ms), 250},
    {"CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "1000", F_I64,
     OFF(circuit_breaker.recovery_timeout_ms), 1000},
    {"DISTRIBUTED_ENABLED", "1", F_BOOL, OFF(distributed.enabled), 1},
    {"INSTANCE_ID", "web-01", F_STR, OFF(distributed.instance_id), 0},
    {"SYNC_INTERVAL", "1000", F_I64, OFF(distributed.sync_interval_ms),
     1000},
    {"MAX_DRIFT", "0", F_I64, OFF(distributed.max_drift_ms), 0},
    {"BATCH_CONCURRENCY", "8", F_I64, OFF(batch.concurrency), 8},
    {"BATCH_SIZE", "100", F_I64, OFF(batch.size), 100},
    {"BATCH_TIMEOUT", "500", F_I64, OFF(batch.timeout_ms), 500},
    {"BATCH_MAX", "1000", F_I64, OFF(batch.max), 1000},
    {"REDIS_PIPELINE_DEPTH", "2", F_I64, OFF(pipeline_depth), 2},
    {"RATE_LIMIT_LOCAL_MAX_KEYS", "10", F_I64, OFF(local.max_keys), 10},
    {"RATE_LIMIT_LOCAL_SWEEP_INTERVAL", "250", F_I64,
     OFF(local.sweep_interval_ms), 250},
};
#define N_GOODS (int)(sizeof(goods) / sizeof(goods[0]))

/* Puts a value different from the wanted one in the field first, so that a
   variable that is not read cannot pass. */
static void
preset(rl_config *c, const struct env_good *g)
{
    char *p = (char *)c + g->off;

    switch (g->type) {
    case F_BOOL:
        *(bool *)p = !g->want;
        break;
    case F_STR:
        *(const char **)p = "before";
        break;
    default:
        set_field(c, g->off, g->type == F_I64, g->want + 1);
    }
}

START_TEST(test_env_good)
{
    const struct env_good *g = &goods[_i];
    const char *p;
    rl_config c;

    init_cfg(&c);
    preset(&c, g);
    ck_assert_int_eq(setenv(g->var, g->value, 1), 0);
    ck_assert_msg(rl_config_from_env(&c) == RL_OK, "%s=%s: %s", g->var,
                  g->value, logbuf);
    ck_assert_int_eq(log_lines, 0);
    switch (g->type) {
    case F_BOOL:
        ck_assert_int_eq(*(bool *)((char *)&c + g->off), g->want);
        break;
    case F_STR:
        memcpy(&p, (char *)&c + g->off, sizeof(p));
        ck_assert_ptr_eq(p, getenv(g->var)); /* borrowed, not copied */
        ck_assert_str_eq(p, g->value);
        break;
    default:
        ck_assert_int_eq(get_field(&c, g->off, g->type == F_I64), g->want);
    }
}
END_TEST

/* Empty means unset: the field keeps what it had. */
START_TEST(test_env_empty_is_unset)
{
    rl_config c, before;

    init_cfg(&c);
    memcpy(&before, &c, sizeof(c));
    ck_assert_int_eq(setenv(all_vars[_i], "", 1), 0);
    ck_assert_int_eq(rl_config_from_env(&c), RL_OK);
    ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);
    ck_assert_int_eq(log_lines, 0);
}
END_TEST

START_TEST(test_env_all_together)
{
    rl_config c;

    init_cfg(&c);
    setenv("RATE_LIMIT_BACKEND", "local", 1);
    setenv("REDIS_PORT", "7000", 1);
    setenv("CACHE_ENABLED", "yes", 1);
    setenv("BATCH_MAX", "8", 1);
    setenv("RATE_LIMIT_LOG_LEVEL", "info", 1);
    ck_assert_int_eq(rl_config_from_env(&c), RL_OK);
    ck_assert_int_eq(c.backend, RL_BACKEND_LOCAL);
    ck_assert_int_eq(c.redis.port, 7000);
    ck_assert(c.cache.enabled);
    ck_assert_int_eq(c.batch.max, 8);
    ck_assert_int_eq(c.log_level, RL_LOG_INFO);
    ck_assert(c.log_cb == capture); /* untouched by the environment */
}
END_TEST

/* ---- every variable, malformed values ---- */

struct env_bad {
    const char *var;
    const char *value;
};

static const struct env_bad bads[] = {
    {"RATE_LIMIT_BACKEND", "Redis"},
    {"RATE_LIMIT_BACKEND", "memory"},
    {"RATE_LIMIT_BACKEND", " local"},
    {"REDIS_URL", "http://h"},
    {"REDIS_URL", "rediss://h:6380"},
    {"REDIS_URL", "redis://h:99999"},
    {"REDIS_HOST", "bad host"},
    {"REDIS_HOST", "a/b"},
    {"REDIS_HOST", "[::1]"},
    {"REDIS_PORT", "0"},
    {"REDIS_PORT", "65536"},
    {"REDIS_PORT", "2147483648"},
    {"REDIS_DB", "2147483648"},
    {"REDIS_CLUSTER_NODES", "a:1,,b:2"},
    {"REDIS_CLUSTER_NODES", "a"},
    {"REDIS_CLUSTER_NODES", "a:1,"},
    {"REDIS_CLUSTER_NODES", ",a:1"},
    {"REDIS_CLUSTER_NODES", "a:1, b:2"},
    {"REDIS_CLUSTER_NODES", "a:0"},
    {"REDIS_CLUSTER_NODES", "[::1]"},
    {"REDIS_CONNECT_TIMEOUT", "0"},
    {"REDIS_COMMAND_TIMEOUT", "0"},
    {"REDIS_COMMAND_TIMEOUT", "100000000001"},
    {"RATE_LIMIT_ALGORITHM", "leaky-bucket"},
    {"RATE_LIMIT_ALGORITHM", "GCRA"},
    {"RATE_LIMIT_ALGORITHM", "sliding_window"},
    {"RATE_LIMIT_KEY_PREFIX", "a{b"},
    {"RATE_LIMIT_KEY_PREFIX", "a}b"},
    {"RATE_LIMIT_KEY_PREFIX", "a\tb"},
    {"RATE_LIMIT_TTL_BUFFER", "100000001"},
    {"RATE_LIMIT_FALLBACK", "ALLOW"},
    {"RATE_LIMIT_FALLBACK", "open"},
    {"RATE_LIMIT_MAX_PENDING", "0"},
    {"CACHE_ENABLED", "maybe"},
    {"CACHE_ENABLED", "2"},
    {"CACHE_ENABLED", "on"},
    {"CACHE_ENABLED", "true "},
    {"CACHE_MAX_SIZE", "0"},
    {"CACHE_DEFAULT_TTL", "0"},
    {"CACHE_CLEANUP_INTERVAL", "0"},
    {"CIRCUIT_BREAKER_ENABLED", "y"},
    {"CIRCUIT_BREAKER_FAILURE_THRESHOLD", "0"},
    {"CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "0"},
    {"DISTRIBUTED_ENABLED", "enabled"},
    {"SYNC_INTERVAL", "0"},
    {"MAX_DRIFT", "100000000001"},
    {"BATCH_CONCURRENCY", "0"},
    {"BATCH_SIZE", "0"},
    {"BATCH_TIMEOUT", "0"},
    {"BATCH_MAX", "0"},
    {"BATCH_MAX", "1001"},
    {"REDIS_PIPELINE_DEPTH", "-1"},
    {"REDIS_PIPELINE_DEPTH", "1000000001"},
    {"RATE_LIMIT_LOCAL_MAX_KEYS", "0"},
    {"RATE_LIMIT_LOCAL_SWEEP_INTERVAL", "0"},
    {"RATE_LIMIT_LOG_LEVEL", "warning"},
    {"RATE_LIMIT_LOG_LEVEL", "WARN"},
    {"RATE_LIMIT_LOG_LEVEL", "5"},
};
#define N_BADS (int)(sizeof(bads) / sizeof(bads[0]))

/* Refused, named in one log line, and cfg left exactly as it was. */
static void
expect_refused(const char *var, const char *value)
{
    rl_config c, before;

    setup();
    init_cfg(&c);
    memcpy(&before, &c, sizeof(c));
    ck_assert_int_eq(setenv(var, value, 1), 0);
    ck_assert_msg(rl_config_from_env(&c) == RL_ERR_INVALID,
                  "%s=\"%s\" accepted", var, value);
    ck_assert_msg(logged(var), "%s=\"%s\": log \"%s\"", var, value, logbuf);
    ck_assert_int_eq(log_lines, 1);
    ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);
    unsetenv(var);
}

START_TEST(test_env_bad)
{
    expect_refused(bads[_i].var, bads[_i].value);
}
END_TEST

static const char *const int_vars[] = {
    "REDIS_PORT", "REDIS_DB", "REDIS_CONNECT_TIMEOUT",
    "REDIS_COMMAND_TIMEOUT", "RATE_LIMIT_TTL_BUFFER",
    "RATE_LIMIT_MAX_PENDING", "CACHE_MAX_SIZE", "CACHE_DEFAULT_TTL",
    "CACHE_CLEANUP_INTERVAL", "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
    "CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "SYNC_INTERVAL", "MAX_DRIFT",
    "BATCH_CONCURRENCY", "BATCH_SIZE", "BATCH_TIMEOUT", "BATCH_MAX",
    "REDIS_PIPELINE_DEPTH",
    "RATE_LIMIT_LOCAL_MAX_KEYS", "RATE_LIMIT_LOCAL_SWEEP_INTERVAL",
};

static const char *const int_junk[] = {
    "12abc", "-3", "+3", " 5", "5 ", "0x10", "1.5", "1e3", "abc", "-0",
    "99999999999999999999", "9223372036854775808",
};

/* Every integer variable against every kind of junk. */
START_TEST(test_env_bad_integers)
{
    const char *var = int_vars[_i];
    size_t j;

    for (j = 0; j < sizeof(int_junk) / sizeof(int_junk[0]); j++)
        expect_refused(var, int_junk[j]);
}
END_TEST

/* The malformed value is shown, so the operator sees the typo. */
START_TEST(test_env_bad_shows_value)
{
    rl_config c;

    init_cfg(&c);
    setenv("BATCH_SIZE", "12abc", 1);
    ck_assert_int_eq(rl_config_from_env(&c), RL_ERR_INVALID);
    ck_assert_msg(logged("BATCH_SIZE=\"12abc\""), "%s", logbuf);
    ck_assert_int_eq(c.batch.size, 50);
}
END_TEST

/* Good values before the bad one are not applied either. */
START_TEST(test_env_all_or_nothing)
{
    rl_config c, before;

    init_cfg(&c);
    memcpy(&before, &c, sizeof(c));
    setenv("RATE_LIMIT_BACKEND", "local", 1);
    setenv("REDIS_PORT", "7000", 1);
    setenv("RATE_LIMIT_LOCAL_SWEEP_INTERVAL", "soon", 1);
    ck_assert_int_eq(rl_config_from_env(&c), RL_ERR_INVALID);
    ck_assert(logged("RATE_LIMIT_LOCAL_SWEEP_INTERVAL"));
    ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);

    /* Also when only the range check (after parsing) fails. */
    setenv("RATE_LIMIT_LOCAL_SWEEP_INTERVAL", "0", 1);
    ck_assert_int_eq(rl_config_from_env(&c), RL_ERR_INVALID);
    ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);
}
END_TEST

/* RATE_LIMIT_LOG_LEVEL is read first and applies to the error lines. */
START_TEST(test_env_log_level_applies)
{
    rl_config c;

    init_cfg(&c);
    setenv("RATE_LIMIT_LOG_LEVEL", "none", 1);
    setenv("BATCH_SIZE", "lots", 1);
    ck_assert_int_eq(rl_config_from_env(&c), RL_ERR_INVALID);
    ck_assert_int_eq(log_lines, 0);
    setenv("RATE_LIMIT_LOG_LEVEL", "error", 1);
    ck_assert_int_eq(rl_config_from_env(&c), RL_ERR_INVALID);
    ck_assert_int_eq(log_lines, 1);
    ck_assert(logged("BATCH_SIZE"));
}
END_TEST

START_TEST(test_env_cluster_needs_db0)
{
    rl_config c;

    init_cfg(&c);
    setenv("REDIS_CLUSTER_NODES", "a:7000,b:7001", 1);
    setenv("REDIS_DB", "1", 1);
    ck_assert_int_eq(rl_config_from_env(&c), RL_ERR_INVALID);
    ck_assert(logged("REDIS_DB"));
    setenv("REDIS_DB", "0", 1);
    ck_assert_int_eq(rl_config_from_env(&c), RL_OK);
}
END_TEST

/* ---- passwords never reach a log line ---- */

static const char *const secret_urls[] = {
    "redis://user:" SECRET "@qzhost:99999",
    "redis://user:" SECRET "@",
    "redis://:" SECRET "@qzhost/x",
    "rediss://user:" SECRET "@qzhost",
    "http://user:" SECRET "@qzhost",
    "redis://user:" SECRET "%zz@qzhost",
    "redis://" SECRET "@qzhost",
    "redis://user:Pw%2DSecret-123@qzhost:0",
};

START_TEST(test_secret_bad_url)
{
    rl_config c;

    init_cfg(&c);
    setenv("REDIS_URL", secret_urls[_i], 1);
    ck_assert_int_eq(rl_config_from_env(&c), RL_ERR_INVALID);
    ck_assert_msg(logged("REDIS_URL"), "%s", logbuf);
    ck_assert_msg(!logged("Secret"), "password logged: %s", logbuf);
    ck_assert_msg(!logged("qzhost"), "URL logged: %s", logbuf);
}
END_TEST

START_TEST(test_secret_tls_said)
{
    rl_config c;

    init_cfg(&c);
    setenv("REDIS_URL", "rediss://:" SECRET "@h", 1);
    ck_assert_int_eq(rl_config_from_env(&c), RL_ERR_INVALID);
    ck_assert_msg(logged("TLS"), "%s", logbuf);
    ck_assert(!logged(SECRET));
}
END_TEST

/* A good password next to a bad variable, both at parse and range time. */
START_TEST(test_secret_password_var)
{
    rl_config c;

    init_cfg(&c);
    setenv("REDIS_PASSWORD", SECRET, 1);
    setenv("REDIS_URL", "redis://u:" SECRET "@h:1", 1);
    setenv("REDIS_PORT", "abc", 1);
    ck_assert_int_eq(rl_config_from_env(&c), RL_ERR_INVALID);
    ck_assert(logged("REDIS_PORT"));
    setenv("REDIS_PORT", "0", 1);
    ck_assert_int_eq(rl_config_from_env(&c), RL_ERR_INVALID);
    setenv("REDIS_PORT", "1", 1);
    setenv("REDIS_CLUSTER_NODES", "redis://u:" SECRET "@h:1", 1);
    ck_assert_int_eq(rl_config_from_env(&c), RL_ERR_INVALID);
    ck_assert(logged("REDIS_CLUSTER_NODES"));
    ck_assert_int_eq(log_lines, 3);
    ck_assert_msg(!logged("Secret"), "password logged: %s", logbuf);
}
END_TEST

/* ---- REDIS_URL parsing ---- */

struct url_case {
    const char *url;
    const char *host, *path, *user, *pass;
    int port, db;
};

static const struct url_case good_urls[] = {
    {"redis://localhost", "localhost", NULL, NULL, NULL, 6379, -1},
    {"redis://127.0.0.1:6380/2", "127.0.0.1", NULL, NULL, NULL, 6380, 2},
    {"redis://user:pass@h:1/0", "h", NULL, "user", "pass", 1, 0},
    {"redis://:pass@h", "h", NULL, NULL, "pass", 6379, -1},
    {"redis://us%40er:p%3Aa%2fss%25@h", "h", NULL, "us@er", "p:a/ss%", 6379,
     -1},
    {"redis://u:p:q@h", "h", NULL, "u", "p:q", 6379, -1},
    {"redis://u:p@ss@h", "h", NULL, "u", "p@ss", 6379, -1},
    {"redis://[::1]:7000/3", "::1", NULL, NULL, NULL, 7000, 3},
    {"redis://[::1]", "::1", NULL, NULL, NULL, 6379, -1},
    {"redis://u:p@[2001:db8::1]:6379", "2001:db8::1", NULL, "u", "p", 6379,
     -1},
    {"REDIS://H_1.example-x:65535/", "H_1.example-x", NULL, NULL, NULL,
     65535, -1},
    {"redis://h/2147483647", "h", NULL, NULL, NULL, 6379, 2147483647},
    {"unix:///tmp/redis.sock", NULL, "/tmp/redis.sock", NULL, NULL, 0, -1},
    {"unix:///tmp/redis.sock?db=3", NULL, "/tmp/redis.sock", NULL, NULL, 0,
     3},
    {"unix:///a%20b", NULL, "/a%20b", NULL, NULL, 0, -1},
};

static void
assert_str_or_null(const char *got, const char *want)
{
    if (want == NULL)
        ck_assert_ptr_null(got);
    else
        ck_assert_str_eq(got, want);
}

START_TEST(test_url_good)
{
    const struct url_case *t = &good_urls[_i];
    struct rl_redis_url u;

    ck_assert_int_eq(rl__redis_url_parse(t->url, NULL), RL_OK);
    ck_assert_msg(rl__redis_url_parse(t->url, &u) == RL_OK, "%s", t->url);
    assert_str_or_null(u.host, t->host);
    assert_str_or_null(u.unix_path, t->path);
    assert_str_or_null(u.username, t->user);
    assert_str_or_null(u.password, t->pass);
    ck_assert_int_eq(u.port, t->port);
    ck_assert_int_eq(u.db, t->db);
    rl__redis_url_clear(&u);
    ck_assert_ptr_null(u.host);
    ck_assert_ptr_null(u.password);
    rl__redis_url_clear(&u); /* twice is harmless */
}
END_TEST

static const char *const bad_urls[] = {
    "", "redis://", "redis://:6379", "redis://h:0", "redis://h:65536",
    "redis://h:", "redis://h:abc", "redis://h:-1", "redis://h:+1",
    "redis://h/-1", "redis://h/1/2", "redis://h/x", "redis://h/2147483648",
    "redis://h?db=1", "redis://h#x", "redis://secret@h", "redis://u:@h",
    "redis://:@h", "redis://u:p%zz@h", "redis://u:p%2@h", "redis://u:p%@h",
    "redis://u:p%00@h", "redis://[::1", "redis://[::1]x", "redis://[zz]",
    "redis://[::1]:", "redis://[]", "redis://[fe80::1%25eth0]",
    "redis://::1:6379", "redis://h h", "redis://h\n", "rediss://h",
    "http://h", "redis:/h", "redis:h", "redis//h", " redis://h",
    "redis://h ", "redis://u:p@", "unix://", "unix:///", "unix://tmp/sock",
    "unix:///tmp/s?db=", "unix:///tmp/s?db=x", "unix:///tmp/s?foo=1",
    "unix:///tmp/s?db=1&x=2", "unix:///tmp/s?dbx3", "unix:///tmp/s#f",
    "unix:///tmp/\x01s", "unix://:p@/tmp/s",
};

START_TEST(test_url_bad)
{
    struct rl_redis_url u;

    memset(&u, 0x5a, sizeof(u));
    ck_assert_msg(rl__redis_url_parse(bad_urls[_i], &u) == RL_ERR_INVALID,
                  "accepted \"%s\"", bad_urls[_i]);
    ck_assert_ptr_null(u.host);
    ck_assert_ptr_null(u.unix_path);
    ck_assert_ptr_null(u.username);
    ck_assert_ptr_null(u.password);
    ck_assert_int_eq(rl__redis_url_parse(bad_urls[_i], NULL),
                     RL_ERR_INVALID);
}
END_TEST

START_TEST(test_url_lengths)
{
    char url[1100];
    size_t max_path = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;

    ck_assert_int_eq(rl__redis_url_parse(NULL, NULL), RL_ERR_INVALID);
    snprintf(url, sizeof(url), "redis://%s", repeat('h', 255));
    ck_assert_int_eq(rl__redis_url_parse(url, NULL), RL_OK);
    snprintf(url, sizeof(url), "redis://%s", repeat('h', 256));
    ck_assert_int_eq(rl__redis_url_parse(url, NULL), RL_ERR_INVALID);
    snprintf(url, sizeof(url), "unix:///%s", repeat('p', max_path - 1));
    ck_assert_int_eq(rl__redis_url_parse(url, NULL), RL_OK);
    snprintf(url, sizeof(url), "unix:///%s", repeat('p', max_path));
    ck_assert_int_eq(rl__redis_url_parse(url, NULL), RL_ERR_INVALID);
}
END_TEST

/* ---- rl__config_validate: every range, both sides ---- */

struct range_case {
    const char *name;  /* in the log line: field (VARIABLE) */
    size_t off;
    bool wide;
    int64_t bad_lo, bad_hi, good_lo, good_hi;
};

#define NONE INT64_MIN /* no bad value on that side */
#define I64 true
#define INT false

static const struct range_case ranges[] = {
    {"backend (RATE_LIMIT_BACKEND)", OFF(backend), INT, -1, 2, 0, 1},
    {"algorithm (RATE_LIMIT_ALGORITHM)", OFF(algorithm), INT, -1, 5, 0, 4},
    {"fallback (RATE_LIMIT_FALLBACK)", OFF(fallback), INT, -1, 3, 0, 2},
    {"log_level (RATE_LIMIT_LOG_LEVEL)", OFF(log_level), INT, -1, 5, 0, 4},
    {"max_pending (RATE_LIMIT_MAX_PENDING)", OFF(max_pending), I64, 0,
     1000000001, 1, 1000000000},
    {"redis.port (REDIS_PORT)", OFF(redis.port), INT, 0, 65536, 1, 65535},
    {"redis.db (REDIS_DB)", OFF(redis.db), INT, -1, NONE, 0, INT_MAX},
    {"redis.connect_timeout_ms (REDIS_CONNECT_TIMEOUT)",
     OFF(redis.connect_timeout_ms), I64, 0, RL_WINDOW_MS_MAX + 1, 1,
     RL_WINDOW_MS_MAX},
    {"redis.command_timeout_ms (REDIS_COMMAND_TIMEOUT)",
     OFF(redis.command_timeout_ms), I64, -5, RL_WINDOW_MS_MAX + 1, 1,
     RL_WINDOW_MS_MAX},
    {"redis.ttl_buffer_s (RATE_LIMIT_TTL_BUFFER)", OFF(redis.ttl_buffer_s),
     I64, -1, 100000001, 0, 100000000},
    {"circuit_breaker.failure_threshold (CIRCUIT_BREAKER_FAILURE_THRESHOLD)",
     OFF(circuit_breaker.failure_threshold), I64, 0, 1000001, 1, 1000000},
    {"circuit_breaker.half_open_probes (CIRCUIT_BREAKER_HALF_OPEN_PROBES)",
     OFF(circuit_breaker.half_open_probes), I64, 0, 1001, 1, 1000},
    {"circuit_breaker.window_size (CIRCUIT_BREAKER_WINDOW_SIZE)",
     OFF(circuit_breaker.window_size), I64, 0, 1025, 1, 1024},
    {"circuit_breaker.failure_rate_pct (CIRCUIT_BREAKER_FAILURE_RATE)",
     OFF(circuit_breaker.failure_rate_pct), I64, -1, 101, 0, 100},
    {"circuit_breaker.recovery_timeout_ms (CIRCUIT_BREAKER_RECOVERY_TIMEOUT)",
     OFF(circuit_breaker.recovery_timeout_ms), I64, 0, RL_WINDOW_MS_MAX + 1,
     1, RL_WINDOW_MS_MAX},
    {"cache.max_size (CACHE_MAX_SIZE)", OFF(cache.max_size), I64, 0,
     1000000001, 1, 1000000000},
    {"cache.default_ttl_ms (CACHE_DEFAULT_TTL)", OFF(cache.default_ttl_ms),
     I64, 0, RL_WINDOW_MS_MAX + 1, 1, RL_WINDOW_MS_MAX},
    {"cache.cleanup_interval_ms (CACHE_CLEANUP_INTERVAL)",
     OFF(cache.cleanup_interval_ms), I64, 0, RL_WINDOW_MS_MAX + 1, 1,
     RL_WINDOW_MS_MAX},
    {"distributed.sync_interval_ms (SYNC_INTERVAL)",
     OFF(distributed.sync_interval_ms), I64, 0, RL_WINDOW_MS_MAX + 1, 1,
     RL_WINDOW_MS_MAX},
    {"distributed.max_drift_ms (MAX_DRIFT)", OFF(distributed.max_drift_ms),
     I64, -1, RL_WINDOW_MS_MAX + 1, 0, RL_WINDOW_MS_MAX},
    {"batch.concurrency (BATCH_CONCURRENCY)", OFF(batch.concurrency), I64,
     0, 1000000001, 1, 1000000000},
    {"batch.size (BATCH_SIZE)", OFF(batch.size), I64, 0, 1000000001, 1,
     1000000000},
    {"batch.timeout_ms (BATCH_TIMEOUT)", OFF(batch.timeout_ms), I64, 0,
     RL_WINDOW_MS_MAX + 1, 1, RL_WINDOW_MS_MAX},
    {"batch.max (BATCH_MAX)", OFF(batch.max), I64, 0, 1001, 1, 1000},
    {"pipeline_depth (REDIS_PIPELINE_DEPTH)", OFF(pipeline_depth), I64, -1,
     1000000001, 0, 1000000000},
    {"local.max_keys (RATE_LIMIT_LOCAL_MAX_KEYS)", OFF(local.max_keys), I64,
     0, 1000000001, 1, 1000000000},
    {"local.sweep_interval_ms (RATE_LIMIT_LOCAL_SWEEP_INTERVAL)",
     OFF(local.sweep_interval_ms), I64, INT64_MIN + 1, RL_WINDOW_MS_MAX + 1,
     1, RL_WINDOW_MS_MAX},
};
#define N_RANGES (int)(sizeof(ranges) / sizeof(ranges[0]))

static void
expect_range(const struct range_case *r, int64_t v, int want)
{
    rl_config c;

    setup();
    init_cfg(&c);
    set_field(&c, r->off, r->wide, v);
    ck_assert_msg(rl__config_validate(&c) == want, "%s = %lld", r->name,
                  (long long)v);
    if (want == RL_OK) {
        ck_assert_int_eq(log_lines, 0);
        return;
    }
    ck_assert_int_eq(log_lines, 1);
    ck_assert_msg(logged(r->name), "%s = %lld: log \"%s\"", r->name,
                  (long long)v, logbuf);
}

START_TEST(test_validate_range)
{
    const struct range_case *r = &ranges[_i];

    expect_range(r, r->bad_lo, RL_ERR_INVALID);
    if (r->bad_hi != NONE)
        expect_range(r, r->bad_hi, RL_ERR_INVALID);
    expect_range(r, r->good_lo, RL_OK);
    expect_range(r, r->good_hi, RL_OK);
}
END_TEST

/* Disabled groups are checked too. */
START_TEST(test_validate_disabled_groups)
{
    rl_config c;

    init_cfg(&c);
    ck_assert(!c.cache.enabled);
    c.cache.max_size = 0;
    ck_assert_int_eq(rl__config_validate(&c), RL_ERR_INVALID);
    c.cache.enabled = true;
    ck_assert_int_eq(rl__config_validate(&c), RL_ERR_INVALID);
    c.cache.max_size = 1;
    ck_assert_int_eq(rl__config_validate(&c), RL_OK);
}
END_TEST

/* An invalid log level still lets the reason through (at warn). */
START_TEST(test_validate_bad_level_still_logs)
{
    rl_config c;

    init_cfg(&c);
    c.log_level = (rl_log_level)99;
    ck_assert_int_eq(rl__config_validate(&c), RL_ERR_INVALID);
    ck_assert(logged("RATE_LIMIT_LOG_LEVEL"));
    init_cfg(&c);
    c.log_level = RL_LOG_NONE;
    c.redis.port = 0;
    ck_assert_int_eq(rl__config_validate(&c), RL_ERR_INVALID);
    ck_assert_int_eq(log_lines, 1);
}
END_TEST

struct string_case {
    size_t off;      /* of a const char * field */
    const char *value;
    int want;
    const char *logged; /* in the log line when refused */
};

static const struct string_case strings[] = {
    {OFF(redis.key_prefix), NULL, RL_ERR_INVALID, "RATE_LIMIT_KEY_PREFIX"},
    {OFF(redis.key_prefix), "", RL_ERR_INVALID, "RATE_LIMIT_KEY_PREFIX"},
    {OFF(redis.key_prefix), "a{b", RL_ERR_INVALID, "hash tag"},
    {OFF(redis.key_prefix), "}", RL_ERR_INVALID, "hash tag"},
    {OFF(redis.key_prefix), "a\nb", RL_ERR_INVALID, "control"},
    {OFF(redis.key_prefix), "a:b-c_d.e", RL_OK, NULL},
    {OFF(redis.host), "", RL_ERR_INVALID, "REDIS_HOST"},
    {OFF(redis.host), "bad host", RL_ERR_INVALID, "REDIS_HOST"},
    {OFF(redis.host), "[::1]", RL_ERR_INVALID, "REDIS_HOST"},
    {OFF(redis.host), "u@h", RL_ERR_INVALID, "REDIS_HOST"},
    {OFF(redis.host), "::1", RL_OK, NULL},
    {OFF(redis.host), "redis.example.com", RL_OK, NULL},
    {OFF(redis.url), "", RL_ERR_INVALID, "REDIS_URL"},
    {OFF(redis.url), "redis://h:99999", RL_ERR_INVALID, "REDIS_URL"},
    {OFF(redis.url), "rediss://h", RL_ERR_INVALID, "TLS"},
    {OFF(redis.url), "unix:///tmp/x", RL_OK, NULL},
    {OFF(redis.cluster_nodes), "", RL_ERR_INVALID, "REDIS_CLUSTER_NODES"},
    {OFF(redis.cluster_nodes), "a:1,,b:2", RL_ERR_INVALID, "entry 2"},
    {OFF(redis.cluster_nodes), "a:1,b", RL_ERR_INVALID, "entry 2"},
    {OFF(redis.cluster_nodes), "a:70000", RL_ERR_INVALID, "entry 1"},
    {OFF(redis.cluster_nodes), "[::1]", RL_ERR_INVALID, "entry 1"},
    {OFF(redis.cluster_nodes), "a:1/2", RL_ERR_INVALID, "entry 1"},
    {OFF(redis.cluster_nodes), "a:1,[::1]:2,b.c:3", RL_OK, NULL},
    {OFF(redis.username), "", RL_ERR_INVALID, "REDIS_USERNAME"},
    {OFF(redis.username), "alice", RL_OK, NULL},
    {OFF(redis.password), "", RL_ERR_INVALID, "REDIS_PASSWORD"},
    {OFF(redis.password), SECRET, RL_OK, NULL},
    {OFF(distributed.instance_id), "", RL_ERR_INVALID, "INSTANCE_ID"},
    {OFF(distributed.instance_id), "a\x01", RL_ERR_INVALID, "INSTANCE_ID"},
    {OFF(distributed.instance_id), "web-01", RL_OK, NULL},
};
#define N_STRINGS (int)(sizeof(strings) / sizeof(strings[0]))

START_TEST(test_validate_string)
{
    const struct string_case *t = &strings[_i];
    rl_config c;

    init_cfg(&c);
    memcpy((char *)&c + t->off, &t->value, sizeof(t->value));
    ck_assert_msg(rl__config_validate(&c) == t->want, "\"%s\": %s",
                  t->value ? t->value : "NULL", logbuf);
    if (t->want == RL_OK) {
        ck_assert_int_eq(log_lines, 0);
        return;
    }
    ck_assert_int_eq(log_lines, 1);
    ck_assert_msg(logged(t->logged), "log \"%s\"", logbuf);
    ck_assert(!logged(SECRET));
}
END_TEST

START_TEST(test_validate_lengths)
{
    rl_config c;

    init_cfg(&c);
    c.redis.key_prefix = repeat('p', 128);
    ck_assert_int_eq(rl__config_validate(&c), RL_OK);
    c.redis.key_prefix = repeat('p', 129);
    ck_assert_int_eq(rl__config_validate(&c), RL_ERR_INVALID);
    ck_assert(logged("RATE_LIMIT_KEY_PREFIX"));

    init_cfg(&c);
    c.distributed.instance_id = repeat('i', 128);
    ck_assert_int_eq(rl__config_validate(&c), RL_OK);
    c.distributed.instance_id = repeat('i', 129);
    ck_assert_int_eq(rl__config_validate(&c), RL_ERR_INVALID);
    ck_assert(logged("INSTANCE_ID"));
}
END_TEST

/* The host may be NULL only when a URL or cluster nodes say where to go. */
START_TEST(test_validate_host_null)
{
    rl_config c;

    init_cfg(&c);
    c.redis.host = NULL;
    ck_assert_int_eq(rl__config_validate(&c), RL_ERR_INVALID);
    ck_assert(logged("REDIS_HOST"));
    c.redis.url = "redis://h";
    ck_assert_int_eq(rl__config_validate(&c), RL_OK);
    c.redis.url = NULL;
    c.redis.cluster_nodes = "h:7000";
    ck_assert_int_eq(rl__config_validate(&c), RL_OK);
    c.redis.db = 2;
    ck_assert_int_eq(rl__config_validate(&c), RL_ERR_INVALID);
    ck_assert(logged("REDIS_DB"));
}
END_TEST

/* ---- runner ---- */

static TCase *
tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup, NULL);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase(s, "defaults");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_defaults_valid);
    tc = tcase(s, "env");
    tcase_add_test(tc, test_env_nothing_set);
    tcase_add_loop_test(tc, test_env_good, 0, N_GOODS);
    tcase_add_loop_test(tc, test_env_empty_is_unset, 0, (int)N_VARS);
    tcase_add_test(tc, test_env_all_together);
    tcase_add_loop_test(tc, test_env_bad, 0, N_BADS);
    tcase_add_loop_test(tc, test_env_bad_integers, 0,
                        (int)(sizeof(int_vars) / sizeof(int_vars[0])));
    tcase_add_test(tc, test_env_bad_shows_value);
    tcase_add_test(tc, test_env_all_or_nothing);
    tcase_add_test(tc, test_env_log_level_applies);
    tcase_add_test(tc, test_env_cluster_needs_db0);
    tc = tcase(s, "secrets");
    tcase_add_loop_test(tc, test_secret_bad_url, 0,
                        (int)(sizeof(secret_urls) / sizeof(secret_urls[0])));
    tcase_add_test(tc, test_secret_tls_said);
    tcase_add_test(tc, test_secret_password_var);
    tc = tcase(s, "url");
    tcase_add_loop_test(tc, test_url_good, 0,
                        (int)(sizeof(good_urls) / sizeof(good_urls[0])));
    tcase_add_loop_test(tc, test_url_bad, 0,
                        (int)(sizeof(bad_urls) / sizeof(bad_urls[0])));
    tcase_add_test(tc, test_url_lengths);
    tc = tcase(s, "validate");
    tcase_add_loop_test(tc, test_validate_range, 0, N_RANGES);
    tcase_add_test(tc, test_validate_disabled_groups);
    tcase_add_test(tc, test_validate_bad_level_still_logs);
    tcase_add_loop_test(tc, test_validate_string, 0, N_STRINGS);
    tcase_add_test(tc, test_validate_lengths);
    tcase_add_test(tc, test_validate_host_null);
    return s;
}

int
main(void)
{
    return th_run_suite(config_suite(), CK_NORMAL);
}
