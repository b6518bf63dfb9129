/*
 * config.c: the defaults of rl_config, and the one place its ranges are
 * checked.
 *
 * rl_config_init writes every default of the API table.  rl__config_validate
 * is run by rl_new and by rl_config_from_env, so a configuration built in
 * code and one read from the environment meet the same rules, and each
 * refusal names both the field and its variable ("redis.port (REDIS_PORT)").
 *
 * Rules beyond the API table, and why:
 *   - every field is checked, also in a group that is not enabled: a bad
 *     value waiting there is still a mistake, found before it is switched on;
 *   - durations are at most 10^11 ms (RL_WINDOW_MS_MAX) and counts at most
 *     10^9, so that "now + duration" and "count * size" never overflow;
 *   - the key prefix is 1..128 bytes with neither '{' nor '}' (a brace would
 *     move the Redis Cluster hash tag of every key) and no control bytes;
 *   - a host is a name, an IPv4 address or a bare IPv6 address; with neither
 *     a URL nor cluster nodes it is required;
 *   - cluster nodes are host:port[,host:port...] ([v6]:port for IPv6), no
 *     spaces, no empty entry, and the db must then be 0 (Redis Cluster has
 *     only database 0);
 *   - a user name or password, when set, is not empty (NULL means none);
 *   - the instance id is 1..128 bytes without control bytes.
 * Log lines never show a URL or a password; other strings are shown only
 * when short and printable.
 */
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "rl_private.h"

#define PREFIX_MAX 128
#define INSTANCE_ID_MAX 128
#define DURATION_MAX RL_WINDOW_MS_MAX
#define COUNT_MAX 1000000000LL
#define NODE_MAX 300 /* bytes of one cluster entry: [v6 or name]:port */
#define SHOW_MAX 64  /* bytes of a value shown in a log line */

_Static_assert(sizeof(rl_backend) == sizeof(int) &&
                   sizeof(rl_algorithm) == sizeof(int) &&
                   sizeof(rl_fallback) == sizeof(int) &&
                   sizeof(rl_log_level) == sizeof(int),
               "the enums of rl_config are read as int");

/* ---- defaults ---- */

RL_EXTERN void
rl_config_init(rl_config *cfg)
{
    if (cfg == NULL)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->backend = RL_BACKEND_REDIS;
    cfg->algorithm = RL_SLIDING_WINDOW;
    cfg->fallback = RL_FALLBACK_ALLOW;
    cfg->max_pending = 100000;
    cfg->redis.host = "127.0.0.1";
    cfg->redis.port = 6379;
    cfg->redis.db = 0;
    cfg->redis.connect_timeout_ms = 1000;
    cfg->redis.command_timeout_ms = 250;
    cfg->redis.key_prefix = "rate_limit";
    cfg->redis.ttl_buffer_s = 10;
    cfg->circuit_breaker.failure_threshold = 5;
    cfg->circuit_breaker.recovery_timeout_ms = 30000;
    cfg->circuit_breaker.max_recovery_timeout_ms = 0;
    cfg->circuit_breaker.half_open_probes = 1;
    cfg->circuit_breaker.window_size = 100;
    cfg->circuit_breaker.minimum_calls = 20;
    cfg->circuit_breaker.slow_call_ms = 100;
    cfg->cache.max_size = 10000;
    cfg->cache.default_ttl_ms = 300000;
    cfg->cache.cleanup_interval_ms = 600000;
    cfg->distributed.sync_interval_ms = 30000;
    cfg->distributed.max_drift_ms = 5000;
    cfg->batch.concurrency = 5;
    cfg->batch.size = 50;
    cfg->batch.timeout_ms = 10000;
    cfg->batch.max = 64;
    cfg->pipeline_depth = 0;
    cfg->local.max_keys = 1000000;
    cfg->local.sweep_interval_ms = 1000;
    cfg->log_level = RL_LOG_WARN;
}

/* ---- reporting ---- */

static void bad(const rl_config *cfg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Logs "invalid configuration: ..." at error level through cfg's log. */
static void
bad(const rl_config *cfg, const char *fmt, ...)
{
    rl_log_level min = cfg->log_level;
    char msg[400];
    va_list ap;

    if ((int)min < RL_LOG_DEBUG || (int)min > RL_LOG_NONE)
        min = RL_LOG_WARN; /* itself invalid: still say why */
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rl__log_cfg(cfg->log_cb, cfg->log_arg, min, RL_LOG_ERROR,
                "invalid configuration: %s", msg);
}

/* s quoted in buf when short printable text without '@', else a stand-in. */
static const char *
show(const char *s, char *buf, size_t n)
{
    size_t i, len = strlen(s);

    if (len > SHOW_MAX || len + 3 > n || strchr(s, '@'))
        return "(not shown)";
    for (i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"')
            return "(not shown)";
    snprintf(buf, n, "\"%s\"", s);
    return buf;
}

static bool
has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* ---- numbers and enums ---- */

enum ftype {
    T_ENUM,
    T_INT,
    T_I64
};

struct range {
    const char *field;
    const char *var;
    size_t off;
    enum ftype type;
    int64_t min, max;
};

#define R(f, v, t, lo, hi) {#f, v, offsetof(rl_config, f), t, lo, hi}

static const struct range ranges[] = {
    R(backend, "RATE_LIMIT_BACKEND", T_ENUM, 0, 1),
    R(algorithm, "RATE_LIMIT_ALGORITHM", T_ENUM, 0, 4),
    R(fallback, "RATE_LIMIT_FALLBACK", T_ENUM, 0, 2),
    R(log_level, "RATE_LIMIT_LOG_LEVEL", T_ENUM, 0, 4),
    R(max_pending, "RATE_LIMIT_MAX_PENDING", T_I64, 1, COUNT_MAX),
    R(redis.port, "REDIS_PORT", T_INT, 1, 65535),
    R(redis.db, "REDIS_DB", T_INT, 0, INT_MAX),
    R(redis.connect_timeout_ms, "REDIS_CONNECT_TIMEOUT", T_I64, 1,
      DURATION_MAX),
    R(redis.command_timeout_ms, "REDIS_COMMAND_TIMEOUT", T_I64, 1,
      DURATION_MAX),
    R(redis.ttl_buffer_s, "RATE_LIMIT_TTL_BUFFER", T_I64, 0,
      DURATION_MAX / 1000),
    R(circuit_breaker.failure_threshold,
      "CIRCUIT_BREAKER_FAILURE_THRESHOLD", T_I64, 1, 1000000),
    R(circuit_breaker.recovery_timeout_ms,
      "CIRCUIT_BREAKER_RECOVERY_TIMEOUT", T_I64, 1, DURATION_MAX),
    R(circuit_breaker.max_recovery_timeout_ms,
      "CIRCUIT_BREAKER_MAX_RECOVERY_TIMEOUT", T_I64, 0, DURATION_MAX),
    R(circuit_breaker.half_open_probes,
      "CIRCUIT_BREAKER_HALF_OPEN_PROBES", T_I64, 1, 1000),
    R(circuit_breaker.window_size, "CIRCUIT_BREAKER_WINDOW_SIZE", T_I64, 1,
      1024),
    R(circuit_breaker.minimum_calls, "CIRCUIT_BREAKER_MINIMUM_CALLS", T_I64,
      1, 1024),
    R(circuit_breaker.failure_rate_pct, "CIRCUIT_BREAKER_FAILURE_RATE",
      T_I64, 0, 100),
    R(circuit_breaker.slow_call_rate_pct, "CIRCUIT_BREAKER_SLOW_CALL_RATE",
      T_I64, 0, 100),
    R(circuit_breaker.slow_call_ms, "CIRCUIT_BREAKER_SLOW_CALL_MS", T_I64, 1,
      DURATION_MAX),
    R(cache.max_size, "CACHE_MAX_SIZE", T_I64, 1, COUNT_MAX),
    R(cache.default_ttl_ms, "CACHE_DEFAULT_TTL", T_I64, 1, DURATION_MAX),
    R(cache.cleanup_interval_ms, "CACHE_CLEANUP_INTERVAL", T_I64, 1,
      DURATION_MAX),
    R(distributed.sync_interval_ms, "SYNC_INTERVAL", T_I64, 1, DURATION_MAX),
    R(distributed.max_drift_ms, "MAX_DRIFT", T_I64, 0, DURATION_MAX),
    R(batch.concurrency, "BATCH_CONCURRENCY", T_I64, 1, COUNT_MAX),
    R(batch.size, "BATCH_SIZE", T_I64, 1, COUNT_MAX),
    R(batch.timeout_ms, "BATCH_TIMEOUT", T_I64, 1, DURATION_MAX),
    R(batch.max, "BATCH_MAX", T_I64, 1, RL_BATCH_MAX_MAX),
    R(pipeline_depth, "REDIS_PIPELINE_DEPTH", T_I64, 0, COUNT_MAX),
    R(local.max_keys, "RATE_LIMIT_LOCAL_MAX_KEYS", T_I64, 1, COUNT_MAX),
    R(local.sweep_interval_ms, "RATE_LIMIT_LOCAL_SWEEP_INTERVAL", T_I64, 1,
      DURATION_MAX),
};

static int64_t
range_value(const rl_config *cfg, const struct range *r)
{
    const char *p = (const char *)cfg + r->off;
    int64_t v64;
    int v;

    if (r->type == T_I64) {
        memcpy(&v64, p, sizeof(v64));
        return v64;
    }
    memcpy(&v, p, sizeof(v));
    return v;
}

static int
check_ranges(const rl_config *cfg)
{
    const struct range *r;
    int64_t v;

    for (r = ranges; r < ranges + sizeof(ranges) / sizeof(ranges[0]); r++) {
        v = range_value(cfg, r);
        if (v >= r->min && v <= r->max)
            continue;
        if (r->type == T_ENUM)
            bad(cfg, "%s (%s) = %lld is not one of its values", r->field,
                r->var, (long long)v);
        else
            bad(cfg, "%s (%s) = %lld is out of range %lld..%lld", r->field,
                r->var, (long long)v, (long long)r->min, (long long)r->max);
        return RL_ERR_INVALID;
    }
    return RL_OK;
}

/* ---- strings ---- */

static int
check_prefix(const rl_config *cfg)
{
    const char *p = cfg->redis.key_prefix;
    const char *what = NULL;
    char buf[SHOW_MAX + 3];

    if (p == NULL || p[0] == '\0')
        what = "must not be empty";
    else if (strlen(p) > PREFIX_MAX)
        what = "is longer than 128 bytes";
    else if (strpbrk(p, "{}"))
        what = "must not hold '{' or '}' (it would move the Redis hash tag)";
    else if (has_control(p))
        what = "must not hold control characters";
    if (what == NULL)
        return RL_OK;
    bad(cfg, "redis.key_prefix (RATE_LIMIT_KEY_PREFIX) %s %s",
        p ? show(p, buf, sizeof(buf)) : "NULL", what);
    return RL_ERR_INVALID;
}

/* Whether s is a host name, an IPv4 or a bare IPv6 address. */
static bool
host_ok(const char *s, size_t len)
{
    char url[NODE_MAX + 16];
    bool v6 = memchr(s, ':', len) != NULL;

    if (len == 0 || len > NODE_MAX || strpbrk(s, "@/?#[]"))
        return false;
    snprintf(url, sizeof(url), v6 ? "redis://[%.*s]" : "redis://%.*s",
             (int)len, s);
    return rl__redis_url_parse(url, NULL) == RL_OK;
}

static int
check_host(const rl_config *cfg)
{
    const char *h = cfg->redis.host;
    char buf[SHOW_MAX + 3];

    if (h == NULL) {
        if (cfg->redis.url || cfg->redis.cluster_nodes)
            return RL_OK;
        bad(cfg, "redis.host (REDIS_HOST) is NULL with neither a URL nor "
                 "cluster nodes");
        return RL_ERR_INVALID;
    }
    if (host_ok(h, strlen(h)))
        return RL_OK;
    bad(cfg, "redis.host (REDIS_HOST) %s is not a host name or address",
        show(h, buf, sizeof(buf)));
    return RL_ERR_INVALID;
}

/* The URL itself is never logged: it may hold a password. */
static int
check_url(const rl_config *cfg)
{
    const char *u = cfg->redis.url;

    if (u == NULL || rl__redis_url_parse(u, NULL) == RL_OK)
        return RL_OK;
    if (strncasecmp(u, "rediss://", 9) == 0)
        bad(cfg, "redis.url (REDIS_URL): TLS (rediss://) is not supported "
                 "(the URL is not shown: it may hold a password)");
    else
        bad(cfg, "redis.url (REDIS_URL) is not redis://[user:password@]host"
                 "[:port][/db] nor unix:///path[?db=N] (the URL is not "
                 "shown: it may hold a password)");
    return RL_ERR_INVALID;
}

/* One "host:port" or "[v6]:port" of the cluster list, len bytes at s. */
static bool
node_ok(const char *s, size_t len)
{
    char url[NODE_MAX + 16];
    const char *colon = NULL, *bracket = NULL, *p;

    if (len == 0 || len > NODE_MAX)
        return false;
    for (p = s; p < s + len; p++) {
        if (*p == '@' || *p == '/' || *p == '?' || *p == '#')
            return false;
        if (*p == ':')
            colon = p;
        if (*p == ']')
            bracket = p;
    }
    if (colon == NULL || (bracket && colon < bracket))
        return false; /* no port */
    snprintf(url, sizeof(url), "redis://%.*s", (int)len, s);
    return rl__redis_url_parse(url, NULL) == RL_OK;
}

static int
check_cluster(const rl_config *cfg)
{
    const char *s = cfg->redis.cluster_nodes;
    char buf[SHOW_MAX + 3];
    size_t len;
    int n;

    if (s == NULL)
        return RL_OK;
    for (n = 1;; n++) {
        len = strcspn(s, ",");
        if (!node_ok(s, len)) {
            bad(cfg, "redis.cluster_nodes (REDIS_CLUSTER_NODES) %s: entry "
                     "%d is not host:port",
                show(cfg->redis.cluster_nodes, buf, sizeof(buf)), n);
            return RL_ERR_INVALID;
        }
        if (s[len] == '\0')
            break;
        s += len + 1;
    }
    if (cfg->redis.db == 0)
        return RL_OK;
    bad(cfg, "redis.db (REDIS_DB) = %d: Redis Cluster has only database 0",
        cfg->redis.db);
    return RL_ERR_INVALID;
}

static int
check_auth(const rl_config *cfg)
{
    if (cfg->redis.username && cfg->redis.username[0] == '\0') {
        bad(cfg, "redis.username (REDIS_USERNAME) is empty; NULL means "
                 "none");
        return RL_ERR_INVALID;
    }
    if (cfg->redis.password && cfg->redis.password[0] == '\0') {
        bad(cfg, "redis.password (REDIS_PASSWORD) is empty; NULL means "
                 "no AUTH");
        return RL_ERR_INVALID;
    }
    return RL_OK;
}

static int
check_instance_id(const rl_config *cfg)
{
    const char *id = cfg->distributed.instance_id;
    size_t len;

    if (id == NULL)
        return RL_OK;
    len = strlen(id);
    if (len >= 1 && len <= INSTANCE_ID_MAX && !has_control(id))
        return RL_OK;
    bad(cfg, "distributed.instance_id (INSTANCE_ID) of %zu bytes: must be "
             "1..128 bytes without control characters", len);
    return RL_ERR_INVALID;
}

/* ---- entry point ---- */

/*
 * RL_OK, or RL_ERR_INVALID with one log line naming the first field out of
 * its range (also for a NULL cfg, without a log line).
 */
int
rl__config_validate(const rl_config *cfg)
{
    if (cfg == NULL)
        return RL_ERR_INVALID;
    if (check_ranges(cfg) != RL_OK || check_prefix(cfg) != RL_OK ||
        check_host(cfg) != RL_OK || check_url(cfg) != RL_OK ||
        check_cluster(cfg) != RL_OK || check_auth(cfg) != RL_OK ||
        check_instance_id(cfg) != RL_OK)
        return RL_ERR_INVALID;
    return RL_OK;
}
