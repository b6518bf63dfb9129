/*
 * limiter.c: the public entry points: rl_new and rl_free, the checks and
 * the reset, and the tick event that flushes what was submitted and runs
 * the callbacks of what completed.
 *
 * Shutdown completes, then frees: rl_free hands every pending request to
 * its backend's shutdown (RL_ERR_SHUTDOWN), runs the callbacks, then
 * releases everything.  Called from inside one of our callbacks it only
 * marks the limiter; the outermost frame of the tick frees it once the
 * callback returns.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/event.h>

#include "breaker_loop.h"
#include "cache_loop.h"
#include "group.h"
#include "metrics.h"

static void limiter_destroy(struct rl_limiter *rl);

/* ---- the tick ---- */

static void
tick_cb(int fd, short what, void *arg)
{
    struct rl_limiter *rl = arg;

    (void)fd;
    (void)what;
    rl->tick_armed = false;
    if (!rl->freeing)
        rl->backend->flush(rl);
    rl__brk_notify(rl);
    rl__req_deliver(rl);
    if (rl->freeing && rl->in_callback == 0)
        limiter_destroy(rl);
}

void
rl__tick_arm(struct rl_limiter *rl)
{
    if (rl->tick_armed || rl->tick_ev == NULL)
        return;
    rl->tick_armed = true;
    event_active(rl->tick_ev, EV_TIMEOUT, 0);
}

/* ---- creation ---- */

static int
dup_str(const char *s, char **copy, const char **field)
{
    *copy = NULL;
    if (s == NULL)
        return RL_OK;
    *copy = strdup(s);
    if (*copy == NULL)
        return RL_ERR_NOMEM;
    *field = *copy;
    return RL_OK;
}

/* Copies the strings of the configuration so the caller's may go. */
static int
own_strings(struct rl_limiter *rl)
{
    rl_config *c = &rl->cfg;

    if (dup_str(c->redis.url, &rl->s_url, &c->redis.url) ||
        dup_str(c->redis.host, &rl->s_host, &c->redis.host) ||
        dup_str(c->redis.username, &rl->s_username, &c->redis.username) ||
        dup_str(c->redis.password, &rl->s_password, &c->redis.password) ||
        dup_str(c->redis.cluster_nodes, &rl->s_cluster_nodes,
                &c->redis.cluster_nodes) ||
        dup_str(c->redis.key_prefix, &rl->s_key_prefix,
                &c->redis.key_prefix) ||
        dup_str(c->distributed.instance_id, &rl->s_instance_id,
                &c->distributed.instance_id))
        return RL_ERR_NOMEM;
    return RL_OK;
}

static int
pick_backend(struct rl_limiter *rl)
{
    if (rl->cfg.backend == RL_BACKEND_LOCAL)
        rl->backend = &rl__backend_local;
    else
        rl->backend = &rl__backend_redis;
    return RL_OK;
}

static int
limiter_setup(struct rl_limiter *rl)
{
    int rc;

    TAILQ_INIT(&rl->submit_q);
    TAILQ_INIT(&rl->done_q);
    TAILQ_INIT(&rl->dl_q);
    TAILQ_INIT(&rl->groups);
    TAILQ_INIT(&rl->groups_done);
    TAILQ_INIT(&rl->scans);
    rl->instances = 1;
    if (getrandom(&rl->rng, sizeof(rl->rng), GRND_NONBLOCK) !=
            (ssize_t)sizeof(rl->rng) || rl->rng == 0)
        rl->rng = (uint64_t)rl__mono_ns() | 1;
    rc = own_strings(rl);
    if (rc != RL_OK)
        return rc;
    rc = pick_backend(rl);
    if (rc != RL_OK)
        return rc;
    rl->tick_ev = event_new(rl->base, -1, 0, tick_cb, rl);
    if (rl->tick_ev == NULL)
        return RL_ERR_NOMEM;
    rc = rl__metrics_init(rl);
    if (rc != RL_OK)
        return rc;
    if (rl->cfg.backend == RL_BACKEND_LOCAL ||
        rl->cfg.fallback == RL_FALLBACK_LOCAL) {
        rc = rl__local_init(rl);
        if (rc != RL_OK)
            return rc;
    }
    rc = rl__cache_init(rl);
    if (rc != RL_OK)
        return rc;
    return rl->backend->init(rl);
}

RL_EXTERN int
rl_new(struct event_base *base, const rl_config *cfg, rl_limiter **out)
{
    struct rl_limiter *rl;
    rl_config defaults;
    int rc;

    if (out == NULL)
        return RL_ERR_INVALID;
    *out = NULL;
    if (cfg == NULL) {
        rl_config_init(&defaults);
        cfg = &defaults;
    }
    if (base == NULL) {
        rl__log_cfg(cfg->log_cb, cfg->log_arg, cfg->log_level, RL_LOG_ERROR,
                    "rl_new: the event_base is NULL");
        return RL_ERR_INVALID;
    }
    rc = rl__config_validate(cfg);
    if (rc != RL_OK)
        return rc;
    rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return RL_ERR_NOMEM;
    rl->base = base;
    rl->cfg = *cfg;
    rc = limiter_setup(rl);
    if (rc != RL_OK) {
        limiter_destroy(rl);
        return rc;
    }
    *out = rl;
    return RL_OK;
}

/* ---- shutdown ---- */

static void
limiter_destroy(struct rl_limiter *rl)
{
    if (rl->backend != NULL)
        rl->backend->destroy(rl);
    if (rl->tick_ev != NULL)
        event_free(rl->tick_ev);
    while (!TAILQ_EMPTY(&rl->groups)) /* none once rl_free delivered */
        rl__group_discard(TAILQ_FIRST(&rl->groups));
    rl__cache_destroy(rl);
    rl__local_destroy(rl);
    rl__metrics_destroy(rl);
    rl__req_pool_free(rl);
    free(rl->s_url);
    free(rl->s_host);
    free(rl->s_username);
    free(rl->s_password);
    free(rl->s_cluster_nodes);
    free(rl->s_key_prefix);
    free(rl->s_instance_id);
    free(rl);
}

RL_EXTERN void
rl_free(rl_limiter *rl)
{
    if (rl == NULL || rl->freeing)
        return;
    rl->freeing = true;
    rl->backend->shutdown(rl);
    if (rl->in_callback > 0) {
        rl__tick_arm(rl); /* which frees it once the callback returns */
        return;
    }
    rl__req_deliver(rl);
    limiter_destroy(rl);
}

/* ---- checks ---- */

static int
refuse(struct rl_limiter *rl, int code)
{
    rl->ctr.v[RL_METRIC_REFUSED]++;
    return code;
}

/* Accepts a request: a pending one more, not yet given to a backend. */
static int
accept_req(struct rl_limiter *rl, enum rl_op op, const void *key, size_t keylen,
       struct rl_req **out)
{
    struct rl_req *req;

    if (rl->freeing)
        return refuse(rl, RL_ERR_SHUTDOWN);
    if (rl->ctr.v[RL_METRIC_PENDING] >= rl->cfg.max_pending)
        return refuse(rl, RL_ERR_OVERLOAD);
    req = rl__req_new(rl, op, key, keylen);
    if (req == NULL)
        return refuse(rl, RL_ERR_NOMEM);
    rl->ctr.v[RL_METRIC_PENDING]++;
    *out = req;
    return RL_OK;
}

RL_EXTERN int
rl_check_key_async(rl_limiter *rl, const void *key, size_t key_len,
                   int64_t max_requests, int64_t window_ms, int64_t cost,
                   rl_check_cb cb, void *arg)
{
    struct rl_req *req;
    int rc;

    if (rl == NULL)
        return RL_ERR_INVALID;
    if (cb == NULL ||
        rl__validate_check(rl->cfg.algorithm, key, key_len, max_requests,
                           window_ms, cost) != RL_OK)
        return refuse(rl, RL_ERR_INVALID);
    rc = accept_req(rl, RL_OP_CHECK, key, key_len, &req);
    if (rc != RL_OK)
        return rc;
    req->max = max_requests;
    req->window = window_ms;
    req->cost = cost;
    req->cb.check = cb;
    req->arg = arg;
    rl->ctr.v[RL_METRIC_CHECKS_TOTAL]++;
    rl__check_submit(rl, req);
    return RL_OK;
}

void
rl__check_submit(struct rl_limiter *rl, struct rl_req *req)
{
    if (rl->cache != NULL && req->op == RL_OP_CHECK &&
        rl__cache_answer(rl, req))
        return;
    rl->backend->submit(rl, req);
}

RL_EXTERN int
rl_check_cost_async(rl_limiter *rl, const char *key, int64_t max_requests,
                    int64_t window_ms, int64_t cost, rl_check_cb cb,
                    void *arg)
{
    return rl_check_key_async(rl, key, key ? strlen(key) : 0, max_requests,
                              window_ms, cost, cb, arg);
}

RL_EXTERN int
rl_check_async(rl_limiter *rl, const char *key, int64_t max_requests,
               int64_t window_ms, rl_check_cb cb, void *arg)
{
    return rl_check_key_async(rl, key, key ? strlen(key) : 0, max_requests,
                              window_ms, 1, cb, arg);
}

RL_EXTERN int
rl_reset_async(rl_limiter *rl, const char *key, rl_done_cb cb, void *arg)
{
    struct rl_req *req;
    size_t keylen = key ? strlen(key) : 0;
    int rc;

    if (rl == NULL)
        return RL_ERR_INVALID;
    if (cb == NULL || key == NULL || keylen == 0 || keylen > RL_KEY_MAX)
        return refuse(rl, RL_ERR_INVALID);
    rc = accept_req(rl, RL_OP_RESET, key, keylen, &req);
    if (rc != RL_OK)
        return rc;
    req->cb.done = cb;
    req->arg = arg;
    rl->ctr.v[RL_METRIC_RESETS]++;
    rl__cache_forget(rl, key, keylen);
    if (rl->store != NULL && rl->cfg.backend != RL_BACKEND_LOCAL)
        rl__local_reset(rl, req); /* the local fallback's share too */
    rl->backend->submit(rl, req);
    return RL_OK;
}

/* ---- many checks in one call ---- */

/* Accepts a group and starts it; RL_OK, or a code counted as refused. */
static int
submit_group(struct rl_limiter *rl, enum rl_grp_kind kind,
             const rl_request *reqs, size_t n, rl_batch_cb cb, void *arg)
{
    struct rl_group *g;
    int rc;

    rc = rl__group_new(rl, kind, reqs, n, &g);
    if (rc != RL_OK)
        return refuse(rl, rc);
    g->cb = cb;
    g->arg = arg;
    rc = rl__group_start(g);
    return rc == RL_OK ? RL_OK : refuse(rl, rc);
}

RL_EXTERN int
rl_batch_async(rl_limiter *rl, const rl_request *reqs, size_t n,
               rl_batch_cb cb, void *arg)
{
    int rc;

    if (rl == NULL)
        return RL_ERR_INVALID;
    if (reqs == NULL || cb == NULL || n == 0 || n > RL_BATCH_ITEMS_MAX)
        return refuse(rl, RL_ERR_INVALID);
    rc = submit_group(rl, RL_GRP_BATCH, reqs, n, cb, arg);
    if (rc == RL_OK) {
        rl->ctr.v[RL_METRIC_BATCH_CALLS]++;
        rl->ctr.v[RL_METRIC_BATCH_ITEMS] += (int64_t)n;
    }
    return rc;
}

RL_EXTERN int
rl_check_all_async(rl_limiter *rl, const rl_request *reqs, size_t n,
                   rl_batch_cb cb, void *arg)
{
    int rc;

    if (rl == NULL)
        return RL_ERR_INVALID;
    if (reqs == NULL || cb == NULL || n == 0 || n > RL_CHECK_ALL_MAX)
        return refuse(rl, RL_ERR_INVALID);
    rc = submit_group(rl, RL_GRP_ALL, reqs, n, cb, arg);
    if (rc == RL_OK)
        rl->ctr.v[RL_METRIC_MULTI_CALLS]++;
    return rc;
}

/* ---- metrics ---- */

RL_EXTERN int64_t
rl_metric(const rl_limiter *rl, int id)
{
    struct rl_store_stats st;

    if (rl == NULL || id < 0 || id >= RL_METRIC_COUNT_)
        return -1;
    if (id >= RL_METRIC_LOCAL_KEYS && id <= RL_METRIC_LOCAL_EXPIRED) {
        if (rl->store == NULL)
            return 0;
        rl__store_stats(rl->store, &st);
        if (id == RL_METRIC_LOCAL_KEYS)
            return st.keys;
        return id == RL_METRIC_LOCAL_EVICTIONS ? st.evictions : st.expired;
    }
    if (id >= RL_METRIC_CACHE_HITS && id <= RL_METRIC_CACHE_EXPIRED)
        return rl__cache_metric(rl, id);
    return rl->ctr.v[id];
}
