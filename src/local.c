/*
 * local.c: the embedded local backend.  Decisions are taken in this
 * process by the C algorithms on the in-process store (store.c); the same
 * code answers for the "local" fallback policy while Redis is away, then
 * with this instance's share of the limit.
 *
 * Checks queue on rl->submit_q and are decided together when the tick event
 * runs, at one timestamp per tick, so a decision never happens inside the
 * call that submitted it.  A weak timer sweeps expired keys in bounded
 * steps; it never keeps an otherwise idle loop running.
 */
#include <event2/event.h>

#include "rl_private.h"

#define SWEEP_BUDGET 4096

/* ---- store and sweep ---- */

static void
sweep_cb(int fd, short what, void *arg)
{
    struct rl_limiter *rl = arg;
    struct rl_store_stats st;

    (void)fd;
    (void)what;
    rl->sweep_armed = false;
    rl__store_sweep(rl->store, rl__now_ms(rl), SWEEP_BUDGET);
    rl__store_stats(rl->store, &st);
    if (st.keys > 0) {
        rl->sweep_armed = true;
        rl__weak_timer_add(rl->sweep_ev, rl->cfg.local.sweep_interval_ms);
    }
}

int
rl__local_init(struct rl_limiter *rl)
{
    rl->store = rl__store_new(rl->cfg.local.max_keys);
    if (rl->store == NULL)
        return RL_ERR_NOMEM;
    rl->sweep_ev = rl__weak_timer_new(rl->base, sweep_cb, rl);
    if (rl->sweep_ev == NULL)
        return RL_ERR_NOMEM;
    return RL_OK;
}

void
rl__local_destroy(struct rl_limiter *rl)
{
    if (rl->sweep_ev != NULL)
        event_free(rl->sweep_ev);
    rl->sweep_ev = NULL;
    if (rl->store != NULL)
        rl__store_free(rl->store);
    rl->store = NULL;
}

/* ---- decisions ---- */

int
rl__local_decide(struct rl_limiter *rl, struct rl_req *req, int64_t now,
                 rl_result *r)
{
    int64_t max = req->max;
    rl_algo_state *st;
    rl_decision d;
    int rc;

    if (rl->cfg.backend != RL_BACKEND_LOCAL && rl->instances > 1) {
        max = req->max / rl->instances;
        if (max < req->cost)
            max = req->cost;
    }
    st = rl__store_get(rl->store, rl->cfg.algorithm, req->key, req->keylen,
                       now);
    if (st == NULL)
        return RL_ERR_NOMEM;
    rc = rl__algo_decide(rl->cfg.algorithm, st, now, max, req->window,
                         req->cost, &d);
    if (rc != RL_OK)
        return rc;
    rl__store_set_expiry(rl->store, st, d.expire_at_ms);
    if (!rl->sweep_armed) {
        rl->sweep_armed = true;
        rl__weak_timer_add(rl->sweep_ev, rl->cfg.local.sweep_interval_ms);
    }
    r->status = RL_OK;
    r->allowed = d.allowed;
    r->remaining = d.remaining;
    r->reset_ms = d.reset_ms;
    r->retry_after_ms = d.retry_after_ms;
    r->source = RL_SOURCE_BACKEND;
    return RL_OK;
}

void
rl__local_reset(struct rl_limiter *rl, struct rl_req *req)
{
    int alg;

    for (alg = RL_SLIDING_WINDOW; alg <= RL_GCRA; alg++)
        rl__store_del(rl->store, (rl_algorithm)alg, req->key, req->keylen);
}

/* ---- the backend ---- */

static int
local_init(struct rl_limiter *rl)
{
    (void)rl; /* the limiter creates the store for every local use */
    return RL_OK;
}

static void
local_submit(struct rl_limiter *rl, struct rl_req *req)
{
    TAILQ_INSERT_TAIL(&rl->submit_q, req, q);
    rl__tick_arm(rl);
}

static void
local_flush(struct rl_limiter *rl)
{
    struct rl_req *req;
    rl_result r;
    int64_t now;

    if (TAILQ_EMPTY(&rl->submit_q))
        return;
    now = rl__now_ms(rl);
    while (!TAILQ_EMPTY(&rl->submit_q)) {
        req = TAILQ_FIRST(&rl->submit_q);
        TAILQ_REMOVE(&rl->submit_q, req, q);
        if (req->op == RL_OP_RESET) {
            rl__local_reset(rl, req);
            rl__req_complete(req, RL_OK, NULL);
            continue;
        }
        if (rl__local_decide(rl, req, now, &r) != RL_OK) {
            rl__req_fallback(req, RL_ERR_NOMEM);
            continue;
        }
        rl__req_complete(req, RL_OK, &r);
    }
}

static void
local_shutdown(struct rl_limiter *rl)
{
    struct rl_req *req;

    while (!TAILQ_EMPTY(&rl->submit_q)) {
        req = TAILQ_FIRST(&rl->submit_q);
        TAILQ_REMOVE(&rl->submit_q, req, q);
        rl__req_fallback(req, RL_ERR_SHUTDOWN);
    }
}

static void
local_destroy(struct rl_limiter *rl)
{
    (void)rl;
}

const struct rl_backend_ops rl__backend_local = {
    .name = "local",
    .init = local_init,
    .submit = local_submit,
    .flush = local_flush,
    .shutdown = local_shutdown,
    .destroy = local_destroy,
};
