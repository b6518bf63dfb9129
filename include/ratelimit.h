/*
 * ratelimit.h: the whole public API of libratelimit.
 *
 * libratelimit decides "may this request go through?" for servers built on
 * libevent.  A server calls rl_check_async() on its hot path and receives
 * the decision in a callback on the same event loop; nothing blocks.  The
 * state lives in Redis (shared by every process that uses the same Redis)
 * or, with RL_BACKEND_LOCAL, in an in-process store.
 *
 * Threading: one rl_limiter per event_base, used only from the thread that
 * runs that loop.  A multi-threaded server makes one limiter per loop.
 *
 * Callbacks: every call that returns RL_OK runs its callback exactly once,
 * always from the event loop and never from inside the call that submitted
 * it.  Every call that returns a non-zero code never runs its callback.
 *
 * Ownership: pointers handed to a callback are valid only during that call.
 * The library copies every string it keeps; it never frees the caller's
 * `arg` nor the event_base.
 */
#ifndef RATELIMIT_H
#define RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct evbuffer;

#if defined(RL_BUILDING_LIBRARY) && defined(__GNUC__)
#define RL_EXTERN __attribute__((visibility("default")))
#else
#define RL_EXTERN
#endif

/* ---- version ---- */

#define RL_VERSION_MAJOR 0
#define RL_VERSION_MINOR 1
#define RL_VERSION_PATCH 0
#define RL_VERSION_STRING "0.1.0"
/* One number that grows with every release: 0xMMmmpp. */
#define RL_VERSION_HEX \
    ((RL_VERSION_MAJOR << 16) | (RL_VERSION_MINOR << 8) | RL_VERSION_PATCH)

/* "MAJOR.MINOR.PATCH" of the library actually linked; static storage. */
RL_EXTERN const char *rl_version(void);

/* ---- return codes ---- */

/*
 * Every int function returns RL_OK (0) or one of these negative codes.
 * Codes are never reused or renumbered; new ones are added at the end.
 * A denial is a result (rl_result.allowed == false), never an error code.
 */
#define RL_ERRNO_MAP(XX)                                                     \
    XX(OK, 0, "success")                                                     \
    XX(ERR_INVALID, -1, "invalid argument or configuration")                 \
    XX(ERR_NOMEM, -2, "out of memory")                                       \
    XX(ERR_REDIS, -3, "Redis error or connection failure")                   \
    XX(ERR_TIMEOUT, -4, "no answer within the command timeout")              \
    XX(ERR_CIRCUIT_OPEN, -5, "circuit breaker open; Redis was not asked")    \
    XX(ERR_OVERLOAD, -6, "too many checks pending")                          \
    XX(ERR_SHUTDOWN, -7, "the limiter was freed while the check was pending")\
    XX(ERR_PROTOCOL, -8, "reply of the wrong shape or out of range")

enum {
#define RL_ENUM_ENTRY_(name, value, text) RL_##name = (value),
    RL_ERRNO_MAP(RL_ENUM_ENTRY_)
#undef RL_ENUM_ENTRY_
    RL_ERR_LAST_ = -9 /* one below the lowest code; not a code */
};

/* A static English sentence for a code; "unknown error" for other values. */
RL_EXTERN const char *rl_strerror(int code);

/* ---- enumerations ---- */

typedef enum {
    RL_BACKEND_REDIS = 0, /* shared state in Redis (default) */
    RL_BACKEND_LOCAL = 1  /* in-process store: this process only */
} rl_backend;

/* See docs/algorithms.md for the exact definition of every field. */
typedef enum {
    RL_SLIDING_WINDOW = 0, /* weighted count of this and the previous
                              fixed window <= max (default) */
    RL_TOKEN_BUCKET = 1,   /* capacity max, refilled continuously at max per
                              window */
    RL_FIXED_WINDOW = 2,   /* at most max per aligned window */
    RL_SLIDING_LOG = 3,    /* exact: at most max in any window_ms span */
    RL_GCRA = 4            /* emission interval window/max, burst max */
} rl_algorithm;

#define RL_ALGORITHM_COUNT 5 /* the algorithms are 0 .. this - 1 */

/* The name of an algorithm as RATE_LIMIT_ALGORITHM spells it
   ("sliding-window", ...; static), or NULL for another value. */
RL_EXTERN const char *rl_algorithm_name(int alg);
/* The algorithm of a name (exact, lower case) into *out: RL_OK, or
   RL_ERR_INVALID for an unknown name or NULL arguments. */
RL_EXTERN int rl_algorithm_parse(const char *name, rl_algorithm *out);

typedef enum {
    RL_FALLBACK_ALLOW = 0, /* fail open: allowed, remaining = max */
    RL_FALLBACK_DENY = 1,  /* fail closed */
    RL_FALLBACK_LOCAL = 2  /* the local store decides with this instance's
                              share of the limit */
} rl_fallback;

typedef enum {
    RL_LOG_DEBUG = 0,
    RL_LOG_INFO = 1,
    RL_LOG_WARN = 2,
    RL_LOG_ERROR = 3,
    RL_LOG_NONE = 4 /* as a level: log nothing */
} rl_log_level;

typedef enum {
    RL_SOURCE_BACKEND = 0,  /* the configured backend: Redis, or the local
                               store when the backend is local */
    RL_SOURCE_CACHE = 1,    /* the local decision cache (known-blocked key) */
    RL_SOURCE_FALLBACK = 2  /* the fallback policy, because the backend could
                               not answer; status says why */
} rl_source;

/* ---- bounds of a check (docs/algorithms.md explains each) ---- */

#define RL_KEY_MAX 1024                      /* bytes of a key */
#define RL_MAX_REQUESTS_MAX 1000000000LL     /* max_requests <= 10^9 */
#define RL_WINDOW_MS_MAX 100000000000LL      /* window_ms <= 10^11 (3.17 y) */
#define RL_SLIDING_LOG_MAX 100000LL          /* max_requests, sliding log */

/* ---- the result of one check ---- */

typedef struct rl_result {
    int status;             /* RL_OK, or why the fallback answered */
    bool allowed;
    int64_t limit;          /* the check's max_requests */
    int64_t remaining;      /* >= 0, after this check */
    int64_t reset_ms;       /* until the whole limit is available again */
    int64_t retry_after_ms; /* 0 when allowed; else until this check could
                               pass */
    rl_source source;       /* who decided */
    const char *key;        /* the caller's key, valid during the callback;
                               NUL-terminated (a key with NUL bytes is cut
                               there: use key_len) */
    size_t key_len;         /* bytes of key */
    int64_t reserved_[4];
} rl_result;

/* The result of a check: const and valid only during the call. */
typedef void (*rl_check_cb)(const rl_result *result, void *arg);
/* Completion of an operation without a decision (reset): RL_OK or a code. */
typedef void (*rl_done_cb)(int status, void *arg);
/* A log line without newline, valid during the call; never has a password
   or a whole user key in it. */
typedef void (*rl_log_cb)(rl_log_level level, const char *msg, void *arg);
/* The time in milliseconds since the Unix epoch.  Tests and simulations
   set one in rl_config.clock to decide at explicit times; see there. */
typedef int64_t (*rl_clock_cb)(void *arg);

/* ---- configuration ---- */

/*
 * Nested groups are frozen once released: a field added later goes to the
 * tail of rl_config, out of its reserved space, never into a group.
 * Strings are borrowed until rl_new returns; the limiter copies them.
 */
typedef struct rl_redis_config {
    const char *url;            /* REDIS_URL: redis://[user:pass@]host[:port]
                                   [/db] or unix:///path; wins over the
                                   fields below it names.  NULL: unset */
    const char *host;           /* REDIS_HOST, "127.0.0.1" */
    int port;                   /* REDIS_PORT, 6379 */
    int db;                     /* REDIS_DB, 0 */
    const char *username;       /* REDIS_USERNAME, NULL (ACL user) */
    const char *password;       /* REDIS_PASSWORD, NULL (no AUTH) */
    const char *cluster_nodes;  /* REDIS_CLUSTER_NODES, NULL: standalone */
    int64_t connect_timeout_ms; /* REDIS_CONNECT_TIMEOUT, 1000 */
    int64_t command_timeout_ms; /* REDIS_COMMAND_TIMEOUT, 250 */
    const char *key_prefix;     /* RATE_LIMIT_KEY_PREFIX, "rate_limit" */
    int64_t ttl_buffer_s;       /* RATE_LIMIT_TTL_BUFFER, 10 seconds */
} rl_redis_config;

typedef enum {
    RL_BREAKER_CLOSED = 0,    /* checks go to Redis */
    RL_BREAKER_OPEN = 1,      /* checks answered by the fallback with
                                 RL_ERR_CIRCUIT_OPEN; Redis not asked */
    RL_BREAKER_HALF_OPEN = 2  /* a few probe checks go to Redis */
} rl_breaker_state;

/* A change of the breaker's state, from the event loop (never inside an
   rl_ call); reason is a short phrase valid during the call. */
typedef void (*rl_breaker_cb)(rl_breaker_state from, rl_breaker_state to,
                              const char *reason, void *arg);

/* Names: CIRCUIT_BREAKER_<NAME> (e.g. CIRCUIT_BREAKER_HALF_OPEN_PROBES). */
typedef struct rl_breaker_config {
    bool enabled;                 /* ENABLED, false */
    int64_t failure_threshold;    /* FAILURE_THRESHOLD, 5: consecutive
                                     failures that open it */
    int64_t recovery_timeout_ms;  /* RECOVERY_TIMEOUT, 30000: open, then
                                     half-open after this */
    int64_t max_recovery_timeout_ms; /* MAX_RECOVERY_TIMEOUT, 0 (= 8 x the
                                     recovery timeout): cap of the wait,
                                     doubled after each failed probe */
    int64_t half_open_probes;     /* HALF_OPEN_PROBES, 1: probes that must
                                     succeed to close it */
    int64_t window_size;          /* WINDOW_SIZE, 100: most recent checks
                                     judged by the rates (<= 1024) */
    int64_t minimum_calls;        /* MINIMUM_CALLS, 20: checks in the window
                                     before a rate is judged */
    int64_t failure_rate_pct;     /* FAILURE_RATE, 0 (off): open when this
                                     percentage of the window failed */
    int64_t slow_call_rate_pct;   /* SLOW_CALL_RATE, 0 (off): open when this
                                     percentage was slower than ... */
    int64_t slow_call_ms;         /* SLOW_CALL_MS, 100 */
    rl_breaker_cb on_change;      /* NULL: none; every change is also
                                     logged (warn) and counted */
    void *on_change_arg;
} rl_breaker_config;

typedef struct rl_cache_config {
    bool enabled;                 /* CACHE_ENABLED, false */
    int64_t max_size;             /* CACHE_MAX_SIZE, 10000 */
    int64_t default_ttl_ms;       /* CACHE_DEFAULT_TTL, 300000 */
    int64_t cleanup_interval_ms;  /* CACHE_CLEANUP_INTERVAL, 600000 */
} rl_cache_config;

typedef struct rl_distributed_config {
    bool enabled;                 /* DISTRIBUTED_ENABLED, false */
    const char *instance_id;      /* INSTANCE_ID, NULL: random */
    int64_t sync_interval_ms;     /* SYNC_INTERVAL, 30000 */
    int64_t max_drift_ms;         /* MAX_DRIFT, 5000 */
} rl_distributed_config;

typedef struct rl_batch_config {
    int64_t concurrency;          /* BATCH_CONCURRENCY, 5 */
    int64_t size;                 /* BATCH_SIZE, 50 */
    int64_t timeout_ms;           /* BATCH_TIMEOUT, 10000 */
    int64_t max;                  /* BATCH_MAX, 64: checks sharing one
                                     EVALSHA when coalesced */
} rl_batch_config;

typedef struct rl_local_config {
    int64_t max_keys;             /* RATE_LIMIT_LOCAL_MAX_KEYS, 1000000:
                                     beyond, a key not used lately is
                                     evicted (CLOCK, approximate LRU) */
    int64_t sweep_interval_ms;    /* RATE_LIMIT_LOCAL_SWEEP_INTERVAL, 1000 */
} rl_local_config;

#define RL_CONFIG_RESERVED 31

typedef struct rl_config {
    rl_backend backend;           /* RATE_LIMIT_BACKEND, redis */
    rl_algorithm algorithm;       /* RATE_LIMIT_ALGORITHM, sliding-window */
    rl_fallback fallback;         /* RATE_LIMIT_FALLBACK, allow */
    int64_t max_pending;          /* RATE_LIMIT_MAX_PENDING, 100000 */
    rl_redis_config redis;
    rl_breaker_config circuit_breaker;
    rl_cache_config cache;
    rl_distributed_config distributed;
    rl_batch_config batch;
    rl_local_config local;
    rl_log_cb log_cb;             /* NULL: warnings and errors to stderr */
    void *log_arg;
    rl_log_level log_level;       /* RATE_LIMIT_LOG_LEVEL, warn */
    rl_clock_cb clock;            /* NULL: real time (and Redis TIME in
                                     the scripts).  Set: every decision,
                                     local or in Redis, is taken at the
                                     time it returns */
    void *clock_arg;
    int64_t pipeline_depth;       /* REDIS_PIPELINE_DEPTH, 0: with this
                                     many commands in flight to a Redis
                                     node, checks that do not fill a
                                     batch (batch.max) wait for a reply
                                     and leave together; full batches
                                     never wait.  0: nothing waits, each
                                     tick sends what it has */
    /* Fields added later come out of this space, one 8-byte slot each, so
       that binaries built against an older header keep working. */
    int64_t reserved_[RL_CONFIG_RESERVED];
} rl_config;

/* Fills every default of the table above.  cfg must not be NULL. */
RL_EXTERN void rl_config_init(rl_config *cfg);

/*
 * Overrides fields of cfg from the environment variables named above; an
 * unset (or empty) variable leaves its field alone.  Strings point into
 * the environment (borrowed: keep the environment unchanged until rl_new
 * returns).  Returns RL_OK, or RL_ERR_INVALID for a malformed value, with
 * the variable's name (never its value when it is a password) in the log
 * line sent to cfg->log_cb; parsing stops at the first malformed variable
 * and cfg is then left exactly as it was.  Booleans read true/false/1/0/
 * yes/no in any case; names (backend, algorithm, fallback, log level) are
 * exact lower case; numbers are decimal digits only.
 */
RL_EXTERN int rl_config_from_env(rl_config *cfg);

/* ---- lifecycle ---- */

typedef struct rl_limiter rl_limiter; /* opaque */

/*
 * Creates a limiter on `base` from `cfg` (NULL: every default).  The base
 * must outlive the limiter.  Returns RL_OK and *out, or RL_ERR_INVALID
 * (bad configuration, said in the log), RL_ERR_NOMEM.  *out is NULL on
 * failure.
 */
RL_EXTERN int rl_new(struct event_base *base, const rl_config *cfg,
                     rl_limiter **out);

/*
 * Completes every pending check with RL_ERR_SHUTDOWN (source fallback),
 * every pending reset with RL_ERR_SHUTDOWN, stops every timer and frees
 * the limiter.  Callbacks run inside rl_free.  Safe to call from inside
 * one of this limiter's callbacks: the limiter is then freed when that
 * callback returns.  rl_free(NULL) does nothing.
 */
RL_EXTERN void rl_free(rl_limiter *rl);

/* ---- checks ---- */

/*
 * Asks whether one request on `key` may pass a limit of `max_requests` per
 * `window_ms` milliseconds; same as rl_check_cost_async with cost 1.
 *
 * key: bytes up to the first NUL, 1..RL_KEY_MAX of them; copied.
 * Returns RL_OK (cb runs exactly once, later, from the loop), or, with no
 * callback ever: RL_ERR_INVALID (NULL limiter or callback, empty or
 * over-long key, max or window out of bounds), RL_ERR_OVERLOAD (max_pending
 * checks pending), RL_ERR_SHUTDOWN (rl_free was called), RL_ERR_NOMEM.
 */
RL_EXTERN int rl_check_async(rl_limiter *rl, const char *key,
                             int64_t max_requests, int64_t window_ms,
                             rl_check_cb cb, void *arg);

/*
 * As rl_check_async, charging `cost` units (1 <= cost <= max_requests).
 * Limits come with every check, so they can change at run time; state is
 * kept per (algorithm, key).
 */
RL_EXTERN int rl_check_cost_async(rl_limiter *rl, const char *key,
                                  int64_t max_requests, int64_t window_ms,
                                  int64_t cost, rl_check_cb cb, void *arg);

/*
 * As rl_check_cost_async with an explicit key length, for keys holding
 * NUL bytes.  key_len: 1..RL_KEY_MAX.
 */
RL_EXTERN int rl_check_key_async(rl_limiter *rl, const void *key,
                                 size_t key_len, int64_t max_requests,
                                 int64_t window_ms, int64_t cost,
                                 rl_check_cb cb, void *arg);

/*
 * Forgets the state of `key` (every algorithm), so its next check starts a
 * fresh limit.  cb gets RL_OK or the reason it failed.  Same return codes
 * and callback rules as rl_check_async.
 */
RL_EXTERN int rl_reset_async(rl_limiter *rl, const char *key, rl_done_cb cb,
                             void *arg);

/* ---- many checks in one call ---- */

/* One check of a batch or of a multi-limit check; borrowed by the call
   (keys copied), so the array may go once the call returns. */
typedef struct rl_request {
    const char *key;          /* 1..RL_KEY_MAX bytes up to the first NUL */
    int64_t max_requests;
    int64_t window_ms;
    int64_t cost;             /* 1..max_requests (0 is read as 1) */
} rl_request;

/* The results of a batch or multi-limit check, one per request in request
   order; the array and its keys are valid only during the call. */
typedef void (*rl_batch_cb)(const rl_result *results, size_t n, void *arg);

#define RL_BATCH_ITEMS_MAX 100000   /* requests of one rl_batch_async */
#define RL_CHECK_ALL_MAX 64         /* limits of one rl_check_all_async */

/*
 * Checks n independent requests (1..RL_BATCH_ITEMS_MAX) and calls cb once
 * with every result, in order.  Each item has its own status: an item out
 * of bounds gets RL_ERR_INVALID in its slot (source fallback, denied) and
 * does not sink the batch.  At most batch.size items go per Redis command
 * and batch.concurrency of the batch's commands are in flight at once;
 * items still unanswered batch.timeout_ms after the call complete through
 * the fallback with RL_ERR_TIMEOUT.  The decision cache answers items it
 * knows are blocked.  Returns RL_OK (cb runs exactly once, later), or,
 * with no callback: RL_ERR_INVALID (NULL limiter, requests or callback,
 * n out of range), RL_ERR_OVERLOAD (the items would pass max_pending),
 * RL_ERR_SHUTDOWN, RL_ERR_NOMEM.
 */
RL_EXTERN int rl_batch_async(rl_limiter *rl, const rl_request *reqs,
                             size_t n, rl_batch_cb cb, void *arg);

/*
 * Admits a request that must pass n limits (1..RL_CHECK_ALL_MAX) all or
 * nothing: every limit is checked and, only if every one admits, all are
 * charged, atomically in one script call (one Redis round trip).  cb gets
 * one result per limit in order; `allowed` is the overall verdict in each.
 * When denied, a limit that denied on its own has retry_after_ms > 0, the
 * others 0, and each `remaining` and `reset_ms` is its limit's state,
 * uncharged.  Under Redis Cluster the call is atomic when the keys share
 * one hash tag: write the same "{tag}" in every key (docs/redis.md).
 * Same return codes as rl_batch_async; an invalid item refuses the whole
 * call (RL_ERR_INVALID, no callback).
 */
RL_EXTERN int rl_check_all_async(rl_limiter *rl, const rl_request *reqs,
                                 size_t n, rl_batch_cb cb, void *arg);

/* ---- the decision cache (Redis backend, cache.enabled) ---- */

/* The cache's counts since rl_new (rl_cache_clear keeps them). */
typedef struct rl_cache_counts {
    int64_t hits;             /* checks answered by the cache */
    int64_t misses;           /* checks it could not answer */
    double hit_rate;          /* hits / (hits + misses), 0 when none */
    int64_t size;             /* entries held now (<= cache.max_size) */
    int64_t evictions;        /* entries dropped for room (LRU) */
    int64_t expired;          /* entries dropped at their expiry */
    int64_t reserved_[4];
} rl_cache_counts;

/* The counts into *out.  RL_OK, or RL_ERR_INVALID (NULL, or no cache). */
RL_EXTERN int rl_cache_stats(const rl_limiter *rl, rl_cache_counts *out);

/* Drops every entry; the next checks go to Redis.  RL_OK or
   RL_ERR_INVALID (NULL, or no cache). */
RL_EXTERN int rl_cache_clear(rl_limiter *rl);

/* The end of a warm-up: RL_OK or why it stopped; `cached`: entries it
   added (keys found blocked). */
typedef void (*rl_warm_cb)(int status, size_t cached, void *arg);

/*
 * Reads the state of n keys (1..RL_BATCH_ITEMS_MAX, each with its limit)
 * from Redis without charging them, and caches those a check of that cost
 * would be denied now.  cb runs once, from the loop.  Returns RL_OK, or,
 * with no callback: RL_ERR_INVALID (no cache, bad arguments or item),
 * RL_ERR_SHUTDOWN, RL_ERR_OVERLOAD (the peeks in flight would pass
 * max_pending), RL_ERR_NOMEM.
 */
RL_EXTERN int rl_cache_warm_async(rl_limiter *rl, const rl_request *keys,
                                  size_t n, rl_warm_cb cb, void *arg);

/*
 * As rl_cache_warm_async for the keys that match any of n glob patterns
 * (fnmatch(3) over user keys), found by walking Redis with SCAN (never
 * KEYS), at most preload_max keys, all with the one limit given.
 */
RL_EXTERN int rl_cache_warm_pattern_async(rl_limiter *rl,
                                          const char *const *patterns,
                                          size_t n, int64_t max_requests,
                                          int64_t window_ms, int64_t cost,
                                          size_t preload_max, rl_warm_cb cb,
                                          void *arg);

/* ---- circuit breaker (Redis backend, circuit_breaker.enabled) ---- */

/* Operator override modes for rl_breaker_force. */
typedef enum {
    RL_BREAKER_AUTO = 0,         /* the state machine decides (default) */
    RL_BREAKER_FORCE_OPEN = 1,   /* every check to the fallback, until
                                    released with RL_BREAKER_AUTO */
    RL_BREAKER_FORCE_CLOSED = 2  /* every check to Redis, until released */
} rl_breaker_mode;

/*
 * The breaker's state into *out.  Returns RL_OK, or RL_ERR_INVALID when
 * rl or out is NULL or the limiter has no breaker (not enabled, or the
 * local backend).
 */
RL_EXTERN int rl_breaker_get(const rl_limiter *rl, rl_breaker_state *out);

/* Forces the breaker open or closed, or releases it (a fresh closed
   state).  RL_OK, or RL_ERR_INVALID (no breaker, unknown mode). */
RL_EXTERN int rl_breaker_force(rl_limiter *rl, rl_breaker_mode mode);

/* ---- metrics (the hub grows; ids are never renumbered) ---- */

typedef enum {
    RL_METRIC_CHECKS_TOTAL = 0,     /* checks accepted */
    RL_METRIC_ALLOWED = 1,          /* callbacks with allowed == true */
    RL_METRIC_DENIED = 2,           /* callbacks with allowed == false */
    RL_METRIC_SOURCE_BACKEND = 3,   /* answered by the backend */
    RL_METRIC_SOURCE_CACHE = 4,     /* answered by the decision cache */
    RL_METRIC_SOURCE_FALLBACK = 5,  /* answered by the fallback */
    RL_METRIC_REFUSED = 6,          /* calls refused with a code */
    RL_METRIC_PENDING = 7,          /* gauge: accepted, not yet completed */
    RL_METRIC_LOCAL_KEYS = 8,       /* gauge: keys in the local store */
    RL_METRIC_LOCAL_EVICTIONS = 9,  /* local keys evicted (CLOCK bound) */
    RL_METRIC_LOCAL_EXPIRED = 10,   /* local keys dropped at expiry */
    RL_METRIC_RESETS = 11,          /* resets accepted */
    RL_METRIC_REDIS_COMMANDS = 12,  /* commands sent to Redis */
    RL_METRIC_REDIS_EVALSHA = 13,   /* EVALSHA commands sent */
    RL_METRIC_REDIS_NOSCRIPT = 14,  /* NOSCRIPT replies (script reloaded) */
    RL_METRIC_REDIS_RECONNECTS = 15,/* connections made after the first */
    RL_METRIC_REDIS_ERRORS = 16,    /* error replies and failed commands */
    RL_METRIC_TIMEOUTS = 17,        /* checks past their deadline */
    RL_METRIC_BATCHES = 18,         /* coalesced batches sent */
    RL_METRIC_BATCHED_CHECKS = 19,  /* checks carried by those batches */
    RL_METRIC_INFLIGHT = 20,        /* gauge: commands awaiting a reply */
    RL_METRIC_BREAKER_STATE = 21,   /* gauge: rl_breaker_state */
    RL_METRIC_BREAKER_TRIPS = 22,   /* openings caused by failures */
    RL_METRIC_BREAKER_TRANSITIONS = 23, /* changes of state */
    RL_METRIC_BREAKER_REFUSED = 24, /* checks answered CIRCUIT_OPEN */
    /* Checks delivered, by result and source (the metrics hub). */
    RL_METRIC_ALLOWED_BACKEND = 25, /* allowed by the backend */
    RL_METRIC_DENIED_BACKEND = 26,  /* denied by the backend */
    RL_METRIC_ALLOWED_CACHE = 27,   /* allowed by the decision cache */
    RL_METRIC_DENIED_CACHE = 28,    /* denied by the decision cache */
    RL_METRIC_ALLOWED_FALLBACK = 29,/* allowed by the fallback policy */
    RL_METRIC_DENIED_FALLBACK = 30, /* denied by the fallback policy */
    /* Checks delivered with this status (why the fallback answered). */
    RL_METRIC_STATUS_INVALID = 31,  /* RL_ERR_INVALID */
    RL_METRIC_STATUS_NOMEM = 32,    /* RL_ERR_NOMEM */
    RL_METRIC_STATUS_REDIS = 33,    /* RL_ERR_REDIS */
    RL_METRIC_STATUS_TIMEOUT = 34,  /* RL_ERR_TIMEOUT */
    RL_METRIC_STATUS_CIRCUIT_OPEN = 35, /* RL_ERR_CIRCUIT_OPEN */
    RL_METRIC_STATUS_OVERLOAD = 36, /* RL_ERR_OVERLOAD */
    RL_METRIC_STATUS_SHUTDOWN = 37, /* RL_ERR_SHUTDOWN */
    RL_METRIC_STATUS_PROTOCOL = 38, /* RL_ERR_PROTOCOL */
    RL_METRIC_ALERTS_ACTIVE = 39,   /* gauge: alerts firing now */
    RL_METRIC_CACHE_HITS = 40,      /* checks answered by the cache */
    RL_METRIC_CACHE_MISSES = 41,    /* checks the cache could not answer */
    RL_METRIC_CACHE_SIZE = 42,      /* gauge: entries in the cache */
    RL_METRIC_CACHE_EVICTIONS = 43, /* entries dropped for room (LRU) */
    RL_METRIC_CACHE_EXPIRED = 44,   /* entries dropped at their expiry */
    RL_METRIC_BATCH_CALLS = 45,     /* rl_batch_async calls accepted */
    RL_METRIC_BATCH_ITEMS = 46,     /* items of those batches */
    RL_METRIC_BATCH_ITEMS_OK = 47,  /* items answered with RL_OK */
    RL_METRIC_MULTI_CALLS = 48,     /* rl_check_all_async calls accepted */
    RL_METRIC_MULTI_DENIED = 49,    /* of those, denied */
    RL_METRIC_COUNT_                /* not a metric */
} rl_metric_id;

/* The current value of one metric; -1 for an unknown id or NULL limiter. */
RL_EXTERN int64_t rl_metric(const rl_limiter *rl, int id);

/* The metric's name as exported (static), or NULL for an unknown id. */
RL_EXTERN const char *rl_metric_name(int id);

/* ---- metrics hub ---- */

/*
 * Beyond the counters above, the limiter keeps the latency of every check
 * (submit to callback, in a log-linear histogram: about 2% relative error
 * from 1 microsecond to 60.8 s), rates over a sliding window (the last 10
 * whole seconds and the current one, in 1-second slots, kept by the
 * limiter's clock: rl_config.clock when set, else the monotonic clock),
 * named alerts on those rates and latencies, and a health verdict.  All of
 * it is read from the loop's thread, like everything else.  Checks are
 * counted here when their callback runs.
 */

#define RL_METRICS_MAX 128   /* room for ids in rl_metrics.values */

/* Latency of checks, from the call that submitted each to its callback,
   in microseconds.  Frozen: new figures go to the tail of rl_metrics. */
typedef struct rl_latency {
    int64_t count;          /* checks recorded */
    int64_t sum_us;         /* of their latencies (mean: sum_us / count) */
    int64_t min_us;         /* exact; 0 when count is 0 */
    int64_t max_us;         /* exact (up to 60.8 s); 0 when count is 0 */
    int64_t p50_us;         /* quantiles, within about 2% */
    int64_t p90_us;
    int64_t p99_us;
    int64_t p999_us;
    int64_t clamped;        /* checks of 60.8 s or more, counted as
                               60.8 s */
} rl_latency;

/* What happened in the sliding window ending at at_ms.  Frozen. */
typedef struct rl_rates {
    int64_t at_ms;          /* the limiter's clock when computed */
    int64_t window_ms;      /* the span covered: 10 s to 11 s, less just
                               after rl_new */
    int64_t checks;         /* checks delivered in the window */
    int64_t denied;         /* of them, denied */
    int64_t errors;         /* of them, the backend failed: status
                               RL_ERR_REDIS, _TIMEOUT, _PROTOCOL, _NOMEM */
    int64_t fallback;       /* of them, answered by the fallback policy
                               (any status, RL_ERR_CIRCUIT_OPEN too) */
    double denial_rate;     /* denied / checks; 0 without checks */
    double error_rate;      /* errors / checks */
    double fallback_rate;   /* fallback / checks */
    double checks_per_second; /* checks / window */
    double latency_p99_ms;  /* over the window's checks */
    double latency_avg_ms;
} rl_rates;

/*
 * A snapshot of every metric, filled by rl_metrics_get.  Fields added
 * later come out of reserved_, so binaries built against an older header
 * keep working.
 */
typedef struct rl_metrics {
    int n_values;           /* ids filled: RL_METRIC_COUNT_ of the library */
    int64_t values[RL_METRICS_MAX]; /* by rl_metric_id, as rl_metric(); 0
                                       past n_values */
    rl_latency latency;     /* every check since rl_new */
    rl_latency latency_by_source[3]; /* indexed by rl_source */
    rl_rates rates;         /* the sliding window */
    bool latency_enabled;   /* see rl_metrics_enable */
    int64_t reserved_[32];
} rl_metrics;

/*
 * Fills *out with every counter and gauge, the latencies and the window's
 * rates, as of now.  Returns RL_OK, or RL_ERR_INVALID when rl or out is
 * NULL.  Cheap enough to call every second: no allocation, a few
 * microseconds.
 */
RL_EXTERN int rl_metrics_get(rl_limiter *rl, rl_metrics *out);

/*
 * Turns the recording of latencies on (the default) or off.  Counters and
 * rates are kept either way: they cost a few instructions per check; the
 * latency histogram a few dozen.  RL_OK, or RL_ERR_INVALID (NULL rl).
 */
RL_EXTERN int rl_metrics_enable(rl_limiter *rl, bool on);

/* ---- alerts ---- */

/* What an alert watches; every one over the sliding window. */
typedef enum {
    RL_ALERT_DENIAL_RATE = 0,        /* rl_rates.denial_rate, 0..1 */
    RL_ALERT_ERROR_RATE = 1,         /* rl_rates.error_rate, 0..1 */
    RL_ALERT_FALLBACK_RATE = 2,      /* rl_rates.fallback_rate, 0..1 */
    RL_ALERT_CHECKS_PER_SECOND = 3,  /* rl_rates.checks_per_second */
    RL_ALERT_LATENCY_P99_MS = 4,     /* rl_rates.latency_p99_ms */
    RL_ALERT_LATENCY_AVG_MS = 5,     /* rl_rates.latency_avg_ms */
    RL_ALERT_METRIC_COUNT_           /* not a metric */
} rl_alert_metric;

#define RL_ALERTS_MAX 32      /* alerts per limiter */
#define RL_ALERT_NAME_MAX 63  /* bytes of an alert's name */

/*
 * An alert fired (fired true: the value went above the threshold) or
 * cleared (fired false: it fell to 90% of the threshold or below).  From
 * the event loop, never inside an rl_ call; name is valid during the call.
 * The callback may add or remove alerts and may call rl_free.
 */
typedef void (*rl_alert_cb)(const char *name, double value,
                            double threshold, bool fired, void *arg);

/*
 * Watches `metric` (rl_alert_metric) under `name` (1..RL_ALERT_NAME_MAX
 * bytes, copied): once a second, while any alert exists, every alert is
 * evaluated on the window; one whose value is above `threshold` fires,
 * and clears only once the value is at or below 90% of the threshold, so
 * that it does not flap.  Active alerts are listed by rl_health_get.  The
 * timer that evaluates them does not keep an idle loop running.
 * Returns RL_OK; RL_ERR_INVALID (NULL rl or name, bad length, name in use,
 * unknown metric, threshold negative or not finite, a rate's threshold
 * above 1); RL_ERR_OVERLOAD (RL_ALERTS_MAX alerts exist); RL_ERR_NOMEM.
 */
RL_EXTERN int rl_alert_add(rl_limiter *rl, const char *name, int metric,
                           double threshold);

/* Removes the alert `name` (no callback, even when it was active).
   RL_OK, or RL_ERR_INVALID (NULL argument, no such alert). */
RL_EXTERN int rl_alert_remove(rl_limiter *rl, const char *name);

/* Sets the callback told of alerts firing and clearing (NULL: none; they
   are still logged, at warn and info).  RL_OK or RL_ERR_INVALID. */
RL_EXTERN int rl_alert_callback_set(rl_limiter *rl, rl_alert_cb cb,
                                    void *arg);

/* The metric's name ("denial_rate", ...; static), or NULL if unknown. */
RL_EXTERN const char *rl_alert_metric_name(int metric);

/* ---- health ---- */

typedef enum {
    RL_HEALTH_HEALTHY = 0,
    RL_HEALTH_DEGRADED = 1,   /* answering, not as configured: the fallback
                                 answered in the window, the breaker is
                                 half-open, Redis is being connected, or an
                                 alert is active */
    RL_HEALTH_UNHEALTHY = 2   /* the breaker is open or Redis unreachable */
} rl_health_status;

typedef enum {
    RL_REDIS_NONE = 0,         /* the local backend: no Redis */
    RL_REDIS_CONNECTED = 1,
    RL_REDIS_CONNECTING = 2,   /* the first connection, or a reconnection,
                                  is under way */
    RL_REDIS_DISCONNECTED = 3  /* unreachable; a reconnection will follow */
} rl_redis_state;

#define RL_HEALTH_REASONS_MAX 8
#define RL_HEALTH_REASON_LEN 96

/* The verdict of rl_health_get.  Fields added later come out of
   reserved_. */
typedef struct rl_health {
    rl_health_status status;
    int redis_state;          /* rl_redis_state; -1 when not known */
    int breaker_state;        /* rl_breaker_state; -1 without a breaker */
    int alerts_active;        /* alerts firing now */
    int n_reasons;            /* reasons[0 .. n_reasons - 1] */
    char reasons[RL_HEALTH_REASONS_MAX][RL_HEALTH_REASON_LEN];
                              /* why not healthy, one short sentence each,
                                 worst first; the last says how many more
                                 when they do not fit */
    int64_t reserved_[16];
} rl_health;

/* Fills *out with the limiter's health now.  RL_OK or RL_ERR_INVALID. */
RL_EXTERN int rl_health_get(rl_limiter *rl, rl_health *out);

/* "healthy", "degraded", "unhealthy" (static), or NULL. */
RL_EXTERN const char *rl_health_status_name(int status);

/* ---- export ---- */

/*
 * Appends every metric to `out` in the Prometheus text exposition format
 * (version 0.0.4): names prefixed ratelimit_, HELP and TYPE lines,
 * counters ending _total, decisions as ratelimit_checks_total{result,
 * source}, the latency as the histogram ratelimit_check_duration_seconds
 * (by source; le bounds at powers of two microseconds), gauges for the
 * rest.  The caller owns out (an evbuffer from evbuffer_new).  RL_OK,
 * RL_ERR_INVALID (NULL argument), RL_ERR_NOMEM (out may then hold part).
 */
RL_EXTERN int rl_metrics_prometheus(rl_limiter *rl, struct evbuffer *out);

/* The same numbers as one JSON object (counters by rl_metric_name,
   latency, rates, health, alerts).  Same codes as rl_metrics_prometheus. */
RL_EXTERN int rl_metrics_json(rl_limiter *rl, struct evbuffer *out);

/*
 * Logs a one-line summary (checks, rates, latency, health; never a key or
 * a password) at info level through the limiter's log every interval_ms;
 * 0 stops it.  The timer does not keep an idle loop running.  RL_OK,
 * RL_ERR_INVALID (NULL rl, negative interval).
 */
RL_EXTERN int rl_metrics_report_every(rl_limiter *rl, int64_t interval_ms);

#ifdef __cplusplus
}
#endif

#endif /* RATELIMIT_H */
