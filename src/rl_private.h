/*
 * rl_private.h: internal structures and the rl__ functions shared between
 * the files of the library.  Nothing here is installed.
 *
 * The life of one request (struct rl_req), whatever the backend:
 *
 *   rl_check_async -> validate -> rl__req_new -> backend->submit
 *     local:  queued on rl->submit_q, decided when the tick event runs
 *     redis:  queued on a node pipeline, flushed when the tick event runs,
 *             decided when the reply comes (or the deadline passes)
 *   -> rl__req_complete (the one completion path: result set, metrics
 *      counted, moved to rl->done_q) -> the tick event runs the callback
 *      -> rl__req_unref.
 *
 * The tick event is the one event_active()d event that both flushes the
 * submit queues and drains the completion queue, so callbacks never run
 * inside the call that submitted them.
 */
#ifndef RL_PRIVATE_H
#define RL_PRIVATE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "ratelimit.h"
#include "algo.h"

struct event;
struct rl_brk_loop;
struct rl_metrics_hub;
struct rl_cache;

/* ---- requests ---- */

enum rl_op {
    RL_OP_CHECK = 0,
    RL_OP_RESET = 1,
    RL_OP_PEEK = 2     /* a check decided but not charged (cache warm-up) */
};

enum rl_req_state {
    RL_REQ_QUEUED = 0, /* accepted, not yet given to a server */
    RL_REQ_SENT = 1,   /* written to Redis, awaiting the reply */
    RL_REQ_DONE = 2    /* result set, on done_q or delivered */
};

#define RL_REQ_INLINE_KEY 48

/* The largest batch.max (BATCH_MAX) accepted. */
#define RL_BATCH_MAX_MAX 1000

/* rl_req.mark: where a batch's chunk starts and ends (pipeline.c starts
   a new command at a START and ends it after an END). */
#define RL_MARK_START 1
#define RL_MARK_END 2

TAILQ_HEAD(rl_req_q, rl_req);
struct rl_group;

struct rl_req {
    TAILQ_ENTRY(rl_req) q;     /* submit_q, a pipeline queue, or done_q */
    TAILQ_ENTRY(rl_req) dl;    /* the deadline FIFO (Redis only) */
    struct rl_limiter *rl;
    int refs;                  /* the limiter's + one per outstanding reply */
    uint8_t op;                /* enum rl_op */
    uint8_t state;             /* enum rl_req_state */
    uint8_t on_dl;             /* linked on the deadline FIFO */
    uint8_t linked;            /* linked on a backend's queue (q) */
    uint8_t mark;              /* RL_MARK_* (batch chunks) */
    uint8_t unit;              /* the checks it carries to the backend:
                                  1, or n for the leader of an
                                  all-or-nothing group of n (group.c) */
    uint32_t grp_idx;          /* its index in grp */
    struct rl_group *grp;      /* the batch, multi-limit check or warm-up
                                  it belongs to, or NULL */
    int64_t max;
    int64_t window;
    int64_t cost;
    int64_t submit_ns;         /* monotonic, for latency */
    int64_t deadline_ms;       /* monotonic ms (Redis only) */
    uint64_t ticket;           /* the circuit breaker's, or 0 */
    union {
        rl_check_cb check;
        rl_done_cb done;
    } cb;
    void *arg;
    rl_result res;             /* filled by rl__req_complete */
    size_t keylen;
    char *key;                 /* keybuf, or malloc'd when longer; NUL
                                  terminated */
    char keybuf[RL_REQ_INLINE_KEY];
};

/* ---- the local store (store.c) ---- */

/*
 * The states of the local backend by (algorithm, key bytes), with expiry,
 * at most max_keys of them.  One thread; nothing here runs callbacks.
 * State pointers point into the store: valid until the next
 * rl__store_get, rl__store_get_hashed, rl__store_del, rl__store_sweep or
 * rl__store_free on the same store, any of which may drop that key.
 */
struct rl_store;

struct rl_store_stats {
    int64_t keys;
    int64_t evictions;
    int64_t expired;
};

/*
 * A store of at most max_keys keys (at most 2^31, whatever max_keys
 * says), keyed with a secret hash key drawn from the system.  NULL when
 * max_keys < 1, when out of memory, or when no random bytes are to be had
 * for the hash key.  Free with rl__store_free (NULL is allowed there).
 */
struct rl_store *rl__store_new(int64_t max_keys);
void rl__store_free(struct rl_store *s);

/*
 * The state of (alg, key), created fresh when absent, and cleared (fresh)
 * when its expiry is at or before now_ms; marked as used.  When the store
 * is full, a new key first evicts one not used lately: CLOCK, the usual
 * approximation of least recently used (store.c): a key got since the
 * clock hand last passed it survives; without gets, keys leave in the
 * order they were added.  NULL only when out of memory.
 */
rl_algo_state *rl__store_get(struct rl_store *s, rl_algorithm alg,
                             const char *key, size_t keylen, int64_t now_ms);

/*
 * For a batch of gets, to overlap their cache misses: rl__store_prefetch
 * hashes (alg, key), starts loading its slot and returns the hash; some
 * gets later, rl__store_prefetch_record(hash) starts loading its record
 * (reading the slot, so best once that load arrived); some gets later
 * still, rl__store_get_hashed is rl__store_get with that hash.  The hash
 * belongs to (alg, key) and this store for the store's life: passing it
 * with another key or store is a bug.  Prefetching never changes what the
 * store holds.
 */
uint64_t rl__store_prefetch(struct rl_store *s, rl_algorithm alg,
                            const char *key, size_t keylen);
void rl__store_prefetch_record(struct rl_store *s, uint64_t hash);
rl_algo_state *rl__store_get_hashed(struct rl_store *s, rl_algorithm alg,
                                    const char *key, size_t keylen,
                                    uint64_t hash, int64_t now_ms);

/* Records when the state got by the last rl__store_get becomes fresh again
   (rl_decision.expire_at_ms): the key may be dropped from then on.  A key
   never given an expiry never expires. */
void rl__store_set_expiry(struct rl_store *s, rl_algo_state *st,
                          int64_t expire_at_ms);

/* Drops (alg, key); returns whether it was there. */
bool rl__store_del(struct rl_store *s, rl_algorithm alg, const char *key,
                   size_t keylen);

/*
 * Drops up to `budget` keys expired at now_ms; returns how many.  Bounded:
 * it looks at no more than 32 keys per key its budget lets it drop,
 * starting where the last call stopped, so that successive calls cover
 * the whole store.
 */
int64_t rl__store_sweep(struct rl_store *s, int64_t now_ms, int64_t budget);

/* Exact counts: keys held, evicted (full store) and dropped expired (by a
   get, the sweep, or making room) since rl__store_new. */
void rl__store_stats(const struct rl_store *s, struct rl_store_stats *out);

/* Fills buf with secret random bytes (getrandom, else OpenSSL); false
   when none are to be had: the hashed maps (store.c, cache.c) then refuse
   to exist rather than run unkeyed. */
bool rl__random_bytes(void *buf, size_t len);

/*
 * Test hooks (tests/test_store.c), not for use by the library.
 * rl__siphash13: SipHash-1-3 of data under the key (k0, k1).
 * rl__store_hash: the hash the store gives (alg, key).
 * rl__store_test_hash: every algorithm hashes with (k0, k1), and only the
 * bits of mask of each hash are kept (forced collisions); empty store
 * only.  rl__store_test_slots: the size of the slot array and, while it
 * doubles, of the old one (else 0).  rl__store_verify: the longest probe
 * distance, or -1 when an invariant does not hold.
 */
uint64_t rl__siphash13(uint64_t k0, uint64_t k1, const void *data,
                       size_t len);
uint64_t rl__store_hash(const struct rl_store *s, rl_algorithm alg,
                        const void *key, size_t keylen);
void rl__store_test_hash(struct rl_store *s, uint64_t k0, uint64_t k1,
                         uint64_t mask);
int64_t rl__store_test_slots(const struct rl_store *s, int64_t *old_slots);
int64_t rl__store_verify(const struct rl_store *s);

/* ---- backends ---- */

/*
 * A backend decides checks.  submit takes a request (state QUEUED) and
 * must eventually rl__req_complete it exactly once; flush runs from the
 * tick event (write what was queued this tick); shutdown completes every
 * request it still holds with RL_ERR_SHUTDOWN; destroy frees the rest.
 */
struct rl_backend_ops {
    const char *name;
    int (*init)(struct rl_limiter *rl);
    void (*submit)(struct rl_limiter *rl, struct rl_req *req);
    void (*flush)(struct rl_limiter *rl);
    void (*shutdown)(struct rl_limiter *rl);
    void (*destroy)(struct rl_limiter *rl);
    /* A request's deadline passed: unlink it if queued (it is completed
       by the caller).  NULL when the backend has no deadlines. */
    void (*expire)(struct rl_limiter *rl, struct rl_req *req);
    /* Requests sent to a server passed their deadline unanswered: the
       connections that carry them are stalled.  NULL: nothing to do. */
    void (*stalled)(struct rl_limiter *rl);
};

extern const struct rl_backend_ops rl__backend_local;
extern const struct rl_backend_ops rl__backend_redis;

/* ---- local.c ---- */

/* Creates the store and its sweep timer (local backend, local fallback). */
int rl__local_init(struct rl_limiter *rl);
void rl__local_destroy(struct rl_limiter *rl);
/*
 * Decides a check on the local store at `now` (ms) with the
 * instance's share of req->max; fills *r (source RL_SOURCE_BACKEND).
 * Returns RL_OK or RL_ERR_NOMEM.
 */
int rl__local_decide(struct rl_limiter *rl, struct rl_req *req, int64_t now,
                     rl_result *r);
/* Forgets every algorithm's state of req's key. */
void rl__local_reset(struct rl_limiter *rl, struct rl_req *req);
/*
 * Decides an all-or-nothing group on the local store at now (the
 * instance's share of each limit), into r[0..g->n) (source
 * RL_SOURCE_BACKEND).  RL_OK or RL_ERR_NOMEM (nothing charged).
 */
int rl__local_group(struct rl_limiter *rl, struct rl_group *g, int64_t now,
                    rl_result *r);

/* ---- the limiter ---- */

TAILQ_HEAD(rl_group_q, rl_group);
struct rl_scan;
TAILQ_HEAD(rl_scan_q, rl_scan);

struct rl_counters {
    int64_t v[RL_METRIC_COUNT_];
};

struct rl_limiter {
    struct event_base *base;
    rl_config cfg;             /* strings below point into owned copies */
    char *s_url, *s_host, *s_username, *s_password, *s_cluster_nodes;
    char *s_key_prefix, *s_instance_id;

    const struct rl_backend_ops *backend;
    void *backend_data;

    struct event *tick_ev;     /* flushes submit queues, drains done_q */
    bool tick_armed;
    struct rl_req_q submit_q;  /* local backend: decided at the tick */
    struct rl_req_q done_q;    /* completed, callback not yet run */
    struct rl_req_q dl_q;      /* deadline FIFO: all share one timeout, so
                                  submission order is deadline order */
    struct event *dl_ev;       /* one timer, on the head of dl_q */
    bool dl_armed;

    struct rl_store *store;    /* local backend and local fallback */
    struct event *sweep_ev;    /* local store sweep; internal (weak) */
    bool sweep_armed;

    struct rl_req *free_reqs;  /* recycled requests, linked by q.tqe_next */
    int64_t n_free_reqs;

    int in_callback;           /* > 0 while running user callbacks */
    bool freeing;              /* rl_free called: refuse, then free */

    uint64_t rng;              /* xorshift state: back-off jitter */
    int64_t log_gate_ms;       /* rl__log_limited: next line allowed */
    int64_t log_suppressed;
    int64_t instances;         /* live instances sharing the limit (the
                                  local fallback's divisor); 1 for now */

    struct rl_group_q groups;      /* batches and multi-limit checks */
    struct rl_group_q groups_done; /* every slot filled: callback due */
    struct rl_scan_q scans;        /* cache warm-ups walking Redis */

    struct rl_cache *cache;    /* the decision cache (cache_loop.c), or
                                  NULL */
    struct event *cache_ev;    /* its sweep; internal (weak) */
    bool cache_armed;

    struct rl_brk_loop *brk;   /* circuit breaker, or NULL */
    struct rl_metrics_hub *hub; /* metrics.c */

    struct rl_counters ctr;
};

/* ---- limiter.c ---- */

/* Makes sure the tick event runs soon (once, however often called). */
void rl__tick_arm(struct rl_limiter *rl);
/* Gives an accepted check to the decision cache, else to the backend. */
void rl__check_submit(struct rl_limiter *rl, struct rl_req *req);

/* ---- warm.c ---- */

/* rl_free: every warm-up still walking Redis reports RL_ERR_SHUTDOWN. */
void rl__warm_shutdown(struct rl_limiter *rl);

/* ---- request.c ---- */

/* A request for key, with one reference (the limiter's).  NULL: NOMEM. */
struct rl_req *rl__req_new(struct rl_limiter *rl, enum rl_op op,
                           const char *key, size_t keylen);
void rl__req_ref(struct rl_req *req);
/* Drops one reference; the last one recycles the request. */
void rl__req_unref(struct rl_req *req);
/*
 * The one completion path.  Sets the result (for checks: *r with status
 * and source as given; for resets: status), counts it, and queues the
 * callback on done_q.  A request already DONE is left alone (a late reply
 * after its deadline): returns false then, true when it completed it.
 */
bool rl__req_complete(struct rl_req *req, int status, const rl_result *r);
/* Completes a check through the fallback policy with `why` (!= RL_OK);
   a request of an all-or-nothing group completes the whole group. */
void rl__req_fallback(struct rl_req *req, int why);
/* The allow or deny policy's answer for a check of (max, window) that
   no one decided (source fallback; status left 0 for the caller). */
void rl__policy_result(const struct rl_limiter *rl, int64_t max,
                       int64_t window, rl_result *r);
/* The fallback policy's results for every item of an all-or-nothing
   group (one verdict), into r[0..g->n). */
void rl__fallback_group(struct rl_limiter *rl, struct rl_group *g,
                        rl_result *r);
/*
 * Deadlines (Redis backend): the request must complete within the command
 * timeout of its submission.  rl__req_deadline_start puts it on the FIFO;
 * rl__req_complete takes it off; when the deadline passes, the backend's
 * `expire` hook takes the request off its queues and the fallback answers
 * with RL_ERR_TIMEOUT.
 */
int rl__deadline_init(struct rl_limiter *rl);
void rl__deadline_start(struct rl_req *req);
void rl__deadline_destroy(struct rl_limiter *rl);

/* Runs the callbacks queued on done_q (from the tick event). */
void rl__req_deliver(struct rl_limiter *rl);
/* Frees the recycled requests. */
void rl__req_pool_free(struct rl_limiter *rl);

/* ---- validate.c ---- */

/* RL_OK or RL_ERR_INVALID: the bounds of one check (docs/algorithms.md). */
int rl__validate_check(rl_algorithm alg, const void *key, size_t keylen,
                       int64_t max, int64_t window, int64_t cost);

/* ---- config.c / env.c / url.c ---- */

/* RL_OK, or RL_ERR_INVALID with the reason (the field's name) logged
   through cfg->log_cb: every field of cfg within its documented range. */
int rl__config_validate(const rl_config *cfg);

/* Parsed REDIS_URL. Strings are malloc'd; rl__redis_url_clear frees. */
struct rl_redis_url {
    char *host;        /* NULL for unix sockets */
    int port;
    char *unix_path;   /* NULL for TCP */
    char *username;
    char *password;
    int db;            /* -1: not given */
};

/* Parses redis://[user:pass@]host[:port][/db] or unix:///path[?db=N].
   A missing port is 6379 (0 for a unix socket); out may be NULL to only
   check the URL (nothing is allocated then).  Returns RL_OK or
   RL_ERR_INVALID (or RL_ERR_NOMEM). */
int rl__redis_url_parse(const char *url, struct rl_redis_url *out);
void rl__redis_url_clear(struct rl_redis_url *u);

/* ---- log.c ---- */

void rl__log(const struct rl_limiter *rl, rl_log_level level,
             const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* As rl__log, at most once a second (repeating failures). */
void rl__log_limited(struct rl_limiter *rl, rl_log_level level,
                     const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* As rl__log, for the time before a limiter exists (config parsing). */
void rl__logv_cfg(rl_log_cb cb, void *arg, rl_log_level min,
                  rl_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));
void rl__log_cfg(rl_log_cb cb, void *arg, rl_log_level min,
                 rl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---- time.c ---- */

/* Wall-clock ms since the epoch: the configured clock, or real time. */
int64_t rl__now_ms(const struct rl_limiter *rl);
/* Monotonic nanoseconds (latency, deadlines). */
int64_t rl__mono_ns(void);
/* The configured clock when set, else monotonic ms: the metrics hub's and
   the decision cache's clock, which a step of real time must not move. */
int64_t rl__steady_ms(const struct rl_limiter *rl);

/* ---- timer.c ---- */

/*
 * A timer event that does not keep an otherwise idle event_base_dispatch
 * running (libevent's internal-event flag), for housekeeping such as the
 * local store sweep.  Returns NULL when out of memory.
 */
struct event *rl__weak_timer_new(struct event_base *base,
                                 void (*cb)(int, short, void *), void *arg);
/* (Re)arms any timer event to fire in ms milliseconds. */
void rl__timer_add_ms(struct event *ev, int64_t ms);

#endif /* RL_PRIVATE_H */
