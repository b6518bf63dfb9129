/*
 * cache_loop.c: the decision cache of a limiter.  When Redis denies a key,
 * the key is remembered as blocked for its limit until the moment a check
 * could pass again (now + retry_after, measured from when the check was
 * submitted, so never later than that moment); checks on it before then
 * are answered here, denied, with no Redis command.  The map itself
 * (cache.c) is a bounded LRU with expiry; this file gives it the
 * limiter's clock, the sweep timer and the public calls.
 *
 * Accuracy rules (README, "Decision cache"): an entry answers only checks
 * of the same max and window and a cost at least its own; it never
 * outlives the moment its check could pass, nor cache.default_ttl_ms; a
 * reset, an admission by Redis of the same key, or rl_cache_clear drops
 * it.  Answers come from the cache only while Redis decides: fallback
 * answers teach it nothing.
 *
 * The clock is monotonic (the configured clock when one is set), so a
 * wall-clock step neither lengthens nor cuts a block.
 */
#include <string.h>

#include <event2/event.h>

#include "cache.h"
#include "cache_loop.h"
#include "group.h"

/* ---- the clock (rl__steady_ms) ---- */

/* When req was submitted, on the cache's clock. */
static int64_t
submit_ms(const struct rl_limiter *rl, const struct rl_req *req)
{
    if (rl->cfg.clock != NULL)
        return rl__now_ms(rl);
    return req->submit_ns / 1000000;
}

/* ---- the sweep ---- */

static void
arm_sweep(struct rl_limiter *rl)
{
    if (rl->cache_armed)
        return;
    rl->cache_armed = true;
    rl__timer_add_ms(rl->cache_ev, rl->cfg.cache.cleanup_interval_ms);
}

static void
sweep_cb(int fd, short what, void *arg)
{
    struct rl_limiter *rl = arg;

    (void)fd;
    (void)what;
    rl->cache_armed = false;
    rl__cache_sweep(rl->cache, rl__steady_ms(rl), rl->cfg.cache.max_size);
    if (rl__cache_size(rl->cache) > 0)
        arm_sweep(rl);
}

int
rl__cache_init(struct rl_limiter *rl)
{
    if (!rl->cfg.cache.enabled || rl->cfg.backend == RL_BACKEND_LOCAL)
        return RL_OK;
    rl->cache = rl__cache_new(rl->cfg.cache.max_size);
    if (rl->cache == NULL)
        return RL_ERR_NOMEM;
    rl->cache_ev = rl__weak_timer_new(rl->base, sweep_cb, rl);
    return rl->cache_ev == NULL ? RL_ERR_NOMEM : RL_OK;
}

void
rl__cache_destroy(struct rl_limiter *rl)
{
    if (rl->cache_ev != NULL)
        event_free(rl->cache_ev);
    rl->cache_ev = NULL;
    rl__cache_free(rl->cache);
    rl->cache = NULL;
}

/* ---- the check path ---- */

bool
rl__cache_answer(struct rl_limiter *rl, struct rl_req *req)
{
    struct rl_cache_entry_info e;
    rl_result r;

    if (!rl__cache_lookup(rl->cache, req->key, req->keylen, req->max,
                          req->window, req->cost, submit_ms(rl, req), &e))
        return false;
    r.status = RL_OK;
    r.allowed = false;
    r.remaining = 0;
    r.reset_ms = e.reset_ms;
    r.retry_after_ms = e.retry_after_ms;
    r.source = RL_SOURCE_CACHE;
    rl__req_complete(req, RL_OK, &r);
    return true;
}

void
rl__cache_learn(struct rl_req *req)
{
    struct rl_limiter *rl = req->rl;
    const rl_result *r = &req->res;
    int64_t base, until, now, reset;

    if (r->allowed) {
        rl__cache_del(rl->cache, req->key, req->keylen);
        return;
    }
    if (r->retry_after_ms <= 0)
        return; /* a multi-limit check denied by another limit */
    base = submit_ms(rl, req);
    now = rl__steady_ms(rl);
    until = base + r->retry_after_ms;
    if (until > now + rl->cfg.cache.default_ttl_ms)
        until = now + rl->cfg.cache.default_ttl_ms;
    if (until <= now)
        return; /* the answer came too late to be worth keeping */
    reset = base + (r->reset_ms > r->retry_after_ms ? r->reset_ms
                                                   : r->retry_after_ms);
    if (rl__cache_put(rl->cache, req->key, req->keylen, req->max,
                      req->window, req->cost, until, reset) != RL_OK)
        return;
    arm_sweep(rl);
    /* A warm-up reports what it added: counted here, where it is known. */
    if (req->grp != NULL && req->grp->kind == RL_GRP_WARM)
        req->grp->cached++;
}

void
rl__cache_forget(struct rl_limiter *rl, const char *key, size_t keylen)
{
    if (rl->cache != NULL)
        rl__cache_del(rl->cache, key, keylen);
}

/* ---- the public calls ---- */

RL_EXTERN int
rl_cache_stats(const rl_limiter *rl, rl_cache_counts *out)
{
    struct rl_cache_tally t;

    if (rl == NULL || out == NULL || rl->cache == NULL)
        return RL_ERR_INVALID;
    rl__cache_stats(rl->cache, &t);
    memset(out, 0, sizeof(*out));
    out->hits = t.hits;
    out->misses = t.misses;
    out->size = t.size;
    out->evictions = t.evictions;
    out->expired = t.expired;
    if (t.hits + t.misses > 0)
        out->hit_rate = (double)t.hits / (double)(t.hits + t.misses);
    return RL_OK;
}

RL_EXTERN int
rl_cache_clear(rl_limiter *rl)
{
    if (rl == NULL || rl->cache == NULL)
        return RL_ERR_INVALID;
    rl__cache_clear(rl->cache);
    return RL_OK;
}

/* The cache's counters for rl_metric (0 without a cache). */
int64_t
rl__cache_metric(const struct rl_limiter *rl, int id)
{
    struct rl_cache_tally t;

    if (rl->cache == NULL)
        return 0;
    rl__cache_stats(rl->cache, &t);
    switch (id) {
    case RL_METRIC_CACHE_HITS:
        return t.hits;
    case RL_METRIC_CACHE_MISSES:
        return t.misses;
    case RL_METRIC_CACHE_SIZE:
        return t.size;
    case RL_METRIC_CACHE_EVICTIONS:
        return t.evictions;
    default:
        return t.expired;
    }
}
