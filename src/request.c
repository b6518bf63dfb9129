/*
 * request.c: the one request lifecycle shared by every backend.
 *
 * A request is allocated when a check is accepted, holds a copy of the key
 * and the caller's callback, and is released after its callback ran.  Its
 * result is set once, by rl__req_complete, the single completion path:
 * every answer (backend, cache, fallback, timeout, shutdown) goes through
 * it, is counted there, and waits on done_q until the tick event runs the
 * callback.  A request may be referenced by an outstanding Redis reply
 * after it completed (a timeout): the reference count keeps it allocated
 * until that reply is dropped, and its DONE state makes the late reply a
 * no-op.
 *
 * Requests are recycled through a small free list so that the hot path
 * does not call malloc for keys that fit inline.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "breaker_loop.h"
#include "cache_loop.h"
#include "group.h"
#include "metrics.h"

#define RL_REQ_POOL_MAX 4096

/* ---- allocation ---- */

static struct rl_req *
req_alloc(struct rl_limiter *rl)
{
    struct rl_req *req = rl->free_reqs;

    if (req != NULL) {
        rl->free_reqs = TAILQ_NEXT(req, q);
        rl->n_free_reqs--;
        return req;
    }
    return malloc(sizeof(*req));
}

struct rl_req *
rl__req_new(struct rl_limiter *rl, enum rl_op op, const char *key,
            size_t keylen)
{
    struct rl_req *req = req_alloc(rl);

    if (req == NULL)
        return NULL;
    req->key = req->keybuf;
    if (keylen >= sizeof(req->keybuf)) {
        req->key = malloc(keylen + 1);
        if (req->key == NULL) {
            free(req);
            return NULL;
        }
    }
    memcpy(req->key, key, keylen);
    req->key[keylen] = '\0';
    req->keylen = keylen;
    req->rl = rl;
    req->refs = 1;
    req->op = (uint8_t)op;
    req->state = RL_REQ_QUEUED;
    req->on_dl = 0;
    req->linked = 0;
    req->mark = 0;
    req->unit = 1;
    req->grp_idx = 0;
    req->grp = NULL;
    req->max = req->window = req->cost = 0;
    req->deadline_ms = 0;
    req->ticket = 0;
    req->submit_ns = rl__mono_ns();
    return req;
}

void
rl__req_ref(struct rl_req *req)
{
    req->refs++;
}

void
rl__req_unref(struct rl_req *req)
{
    struct rl_limiter *rl = req->rl;

    if (--req->refs > 0)
        return;
    if (req->key != req->keybuf)
        free(req->key);
    if (rl->n_free_reqs >= RL_REQ_POOL_MAX || rl->freeing) {
        free(req);
        return;
    }
    TAILQ_NEXT(req, q) = rl->free_reqs;
    rl->free_reqs = req;
    rl->n_free_reqs++;
}

void
rl__req_pool_free(struct rl_limiter *rl)
{
    struct rl_req *req;

    while (rl->free_reqs != NULL) {
        req = rl->free_reqs;
        rl->free_reqs = TAILQ_NEXT(req, q);
        free(req);
    }
    rl->n_free_reqs = 0;
}

/* ---- completion ---- */

static void
count_result(struct rl_limiter *rl, const rl_result *r)
{
    int64_t *v = rl->ctr.v;

    v[r->allowed ? RL_METRIC_ALLOWED : RL_METRIC_DENIED]++;
    v[RL_METRIC_SOURCE_BACKEND + (int)r->source]++;
}

bool
rl__req_complete(struct rl_req *req, int status, const rl_result *r)
{
    struct rl_limiter *rl = req->rl;

    if (req->state == RL_REQ_DONE)
        return false;
    req->state = RL_REQ_DONE;
    if (req->on_dl) {
        TAILQ_REMOVE(&rl->dl_q, req, dl);
        req->on_dl = 0;
    }
    if (req->ticket != 0)
        rl__brk_record(req, status);
    if (req->op != RL_OP_RESET) {
        req->res = *r;
        req->res.limit = req->max;
        req->res.key = req->key;
        req->res.key_len = req->keylen;
        if (rl->cache != NULL && status == RL_OK &&
            r->source == RL_SOURCE_BACKEND)
            rl__cache_learn(req);
        if (req->op == RL_OP_CHECK)
            count_result(rl, &req->res);
    }
    req->res.status = status;
    TAILQ_INSERT_TAIL(&rl->done_q, req, q);
    rl__tick_arm(rl);
    return true;
}

void
rl__policy_result(const struct rl_limiter *rl, int64_t max, int64_t window,
                  rl_result *r)
{
    memset(r, 0, sizeof(*r));
    r->source = RL_SOURCE_FALLBACK;
    if (rl->cfg.fallback == RL_FALLBACK_DENY) {
        r->allowed = false;
        r->remaining = 0;
        r->reset_ms = window;
        r->retry_after_ms = window < 1000 ? window : 1000;
    } else {
        r->allowed = true;
        r->remaining = max;
    }
}

/* The fallback policy's answer for a check the backend cannot decide. */
void
rl__req_fallback(struct rl_req *req, int why)
{
    struct rl_limiter *rl = req->rl;
    rl_result r;

    if (req->grp != NULL && req->grp->kind == RL_GRP_ALL &&
        req->grp->n > 1) {
        rl__group_fallback(req->grp, why);
        return;
    }
    if (req->op == RL_OP_CHECK && rl->cfg.fallback == RL_FALLBACK_LOCAL &&
        rl->store != NULL &&
        rl__local_decide(rl, req, rl__now_ms(rl), &r) == RL_OK) {
        r.source = RL_SOURCE_FALLBACK;
        rl__req_complete(req, why, &r);
        return;
    }
    rl__policy_result(rl, req->max, req->window, &r);
    rl__req_complete(req, why, &r);
}

void
rl__fallback_group(struct rl_limiter *rl, struct rl_group *g, rl_result *r)
{
    size_t i;

    if (rl->cfg.fallback == RL_FALLBACK_LOCAL && rl->store != NULL &&
        rl__local_group(rl, g, rl__now_ms(rl), r) == RL_OK) {
        for (i = 0; i < g->n; i++)
            r[i].source = RL_SOURCE_FALLBACK;
        return;
    }
    for (i = 0; i < g->n; i++)
        rl__policy_result(rl, g->items[i].max, g->items[i].window,
                          &r[i]);
}

/* ---- delivery ---- */

static void
run_callback(struct rl_limiter *rl, struct rl_req *req)
{
    rl->in_callback++;
    if (req->op == RL_OP_CHECK)
        req->cb.check(&req->res, req->arg);
    else
        req->cb.done(req->res.status, req->arg);
    rl->in_callback--;
}

void
rl__req_deliver(struct rl_limiter *rl)
{
    struct rl_req *req;

    rl__metrics_deliver_begin(rl);
    do {
        while (!TAILQ_EMPTY(&rl->done_q)) {
            req = TAILQ_FIRST(&rl->done_q);
            TAILQ_REMOVE(&rl->done_q, req, q);
            rl->ctr.v[RL_METRIC_PENDING]--;
            rl__metrics_record(rl, req);
            if (req->grp != NULL)
                rl__group_item_done(req);
            else
                run_callback(rl, req);
            rl__req_unref(req);
        }
        rl__group_deliver(rl);
    } while (!TAILQ_EMPTY(&rl->done_q));
}

/* ---- deadlines ---- */

static void
dl_arm(struct rl_limiter *rl, int64_t now_ms)
{
    struct rl_req *head = TAILQ_FIRST(&rl->dl_q);
    int64_t wait = head->deadline_ms - now_ms;
    struct timeval tv;

    if (wait < 0)
        wait = 0;
    tv.tv_sec = (time_t)(wait / 1000);
    tv.tv_usec = (suseconds_t)((wait % 1000) * 1000);
    evtimer_add(rl->dl_ev, &tv);
    rl->dl_armed = true;
}

static void
dl_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rl_limiter *rl = arg;
    int64_t now = rl__mono_ns() / 1000000;
    struct rl_req *req;
    bool stalled = false;

    (void)fd;
    (void)what;
    rl->dl_armed = false;
    while (!TAILQ_EMPTY(&rl->dl_q)) {
        req = TAILQ_FIRST(&rl->dl_q);
        if (req->deadline_ms > now) {
            dl_arm(rl, now);
            break;
        }
        if (req->state == RL_REQ_SENT)
            stalled = true;
        if (rl->backend->expire != NULL)
            rl->backend->expire(rl, req);
        rl->ctr.v[RL_METRIC_TIMEOUTS]++;
        if (req->op == RL_OP_RESET)
            rl__req_complete(req, RL_ERR_TIMEOUT, NULL);
        else
            rl__req_fallback(req, RL_ERR_TIMEOUT);
    }
    /* A command unanswered past its deadline: whatever follows it on the
       connection waits behind it, so the connection is given up. */
    if (stalled && rl->backend->stalled != NULL)
        rl->backend->stalled(rl);
}

int
rl__deadline_init(struct rl_limiter *rl)
{
    rl->dl_ev = evtimer_new(rl->base, dl_cb, rl);
    return rl->dl_ev == NULL ? RL_ERR_NOMEM : RL_OK;
}

void
rl__deadline_start(struct rl_req *req)
{
    struct rl_limiter *rl = req->rl;

    req->deadline_ms = req->submit_ns / 1000000 +
                       rl->cfg.redis.command_timeout_ms;
    TAILQ_INSERT_TAIL(&rl->dl_q, req, dl);
    req->on_dl = 1;
    if (!rl->dl_armed)
        dl_arm(rl, req->submit_ns / 1000000);
}

void
rl__deadline_destroy(struct rl_limiter *rl)
{
    if (rl->dl_ev != NULL)
        event_free(rl->dl_ev);
    rl->dl_ev = NULL;
}
