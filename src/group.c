/*
 * group.c: checks that travel together and answer with one callback: the
 * batch processor (rl_batch_async), the atomic multi-limit check
 * (rl_check_all_async) and the cache warm-up's reads (warm.c).
 *
 * A group owns a copy of its items (keys in one arena) and an array of
 * results.  Each item becomes an ordinary request (request.c) with
 * req->grp set, so every answer still goes through the one completion
 * path; when such a request is delivered, its result is copied into the
 * group's slot instead of running a callback, and the group's callback
 * runs once the last slot is filled, from the tick.
 *
 * A batch is fed to the backend a window at a time: chunks of batch.size
 * items, each marked so that the pipeline sends it as one command, at
 * most batch.concurrency chunks in flight; one timer bounds the whole
 * batch (batch.timeout_ms).  A multi-limit check is one all-or-nothing
 * unit: its first request (the leader, req->unit = n) is the only one the
 * backend queues and times; the others ride along in the same script call
 * and, on failure, the fallback answers them all together.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cache_loop.h"
#include "group.h"

/* ---- creation ---- */

/* An item's key length and cost as a group keeps them: a NULL key is
   empty (validation refuses it), a cost of 0 is 1. */
static size_t
req_keylen(const rl_request *r)
{
    return r->key != NULL ? strnlen(r->key, RL_KEY_MAX + 1) : 0;
}

static int64_t
req_cost(const rl_request *r)
{
    return r->cost == 0 ? 1 : r->cost;
}

/* One allocation: the group, its items, results, requests and keys. */
static struct rl_group *
group_alloc(struct rl_limiter *rl, const rl_request *reqs, size_t n)
{
    struct rl_group *g;
    size_t keys = 0, i, sz;
    char *p;

    for (i = 0; i < n; i++)
        keys += req_keylen(&reqs[i]) + 1;
    sz = sizeof(*g) + n * (sizeof(g->items[0]) + sizeof(g->res[0]) +
                           sizeof(g->reqs[0])) + keys;
    g = calloc(1, sz);
    if (g == NULL)
        return NULL;
    g->rl = rl;
    g->n = n;
    g->items = (struct rl_item *)(g + 1);
    g->res = (rl_result *)(g->items + n);
    g->reqs = (struct rl_req **)(g->res + n);
    p = (char *)(g->reqs + n);
    for (i = 0; i < n; i++) {
        g->items[i].key = p;
        g->items[i].len = req_keylen(&reqs[i]);
        if (reqs[i].key != NULL)
            memcpy(p, reqs[i].key, g->items[i].len);
        p[g->items[i].len] = '\0';
        p += g->items[i].len + 1;
        g->items[i].max = reqs[i].max_requests;
        g->items[i].window = reqs[i].window_ms;
        g->items[i].cost = req_cost(&reqs[i]);
    }
    return g;
}

/* Whether r is a check the limiter accepts, read as group_alloc copies
   it. */
static bool
request_valid(const struct rl_limiter *rl, const rl_request *r)
{
    return rl__validate_check(rl->cfg.algorithm, r->key, req_keylen(r),
                              r->max_requests, r->window_ms,
                              req_cost(r)) == RL_OK;
}

int
rl__group_new(struct rl_limiter *rl, enum rl_grp_kind kind,
              const rl_request *reqs, size_t n, struct rl_group **out)
{
    const rl_batch_config *bc = &rl->cfg.batch;
    size_t room = (size_t)(bc->concurrency * bc->size), i;
    struct rl_group *g;

    *out = NULL;
    /* A bad call first: it can never pass, whatever the limiter's state,
       and a caller told OVERLOAD or SHUTDOWN would retry it. */
    if (kind != RL_GRP_BATCH)
        for (i = 0; i < n; i++)
            if (!request_valid(rl, &reqs[i]))
                return RL_ERR_INVALID; /* all or nothing: the whole call */
    if (kind == RL_GRP_ALL || room > n)
        room = n; /* at most this many of its requests pending at once */
    if (rl->freeing)
        return RL_ERR_SHUTDOWN;
    if (rl->ctr.v[RL_METRIC_PENDING] + (int64_t)room > rl->cfg.max_pending)
        return RL_ERR_OVERLOAD;
    g = group_alloc(rl, reqs, n);
    if (g == NULL)
        return RL_ERR_NOMEM;
    g->kind = (uint8_t)kind;
    g->left = n;
    if (kind == RL_GRP_BATCH) /* a bad item is answered in its slot */
        for (i = 0; i < n; i++)
            g->items[i].invalid = !request_valid(rl, &reqs[i]);
    TAILQ_INSERT_TAIL(&rl->groups, g, link);
    *out = g;
    return RL_OK;
}

/* ---- results ---- */

static void
slot_key(struct rl_group *g, size_t i)
{
    g->res[i].key = g->items[i].key;
    g->res[i].key_len = g->items[i].len;
    g->res[i].limit = g->items[i].max;
}

/* An item answered without a request: out of bounds (denied), or no
   memory for its request (the fallback policy's allow or deny). */
static void
slot_direct(struct rl_group *g, size_t i, int status)
{
    rl_result *r = &g->res[i];
    const struct rl_item *it = &g->items[i];

    if (status == RL_ERR_INVALID)
        memset(r, 0, sizeof(*r));
    else
        rl__policy_result(g->rl, it->max, it->window, r);
    r->status = status;
    r->source = RL_SOURCE_FALLBACK;
    slot_key(g, i);
    g->left--;
}

/* Queues the group's callback on the tick (every slot is filled). */
static void
group_ready(struct rl_group *g)
{
    struct rl_limiter *rl = g->rl;

    TAILQ_REMOVE(&rl->groups, g, link);
    TAILQ_INSERT_TAIL(&rl->groups_done, g, link);
    rl__tick_arm(rl);
}

/* ---- feeding a batch ---- */

/* The request of item i, accepted: QUEUED, not yet given to a backend. */
static struct rl_req *
item_req(struct rl_group *g, size_t i)
{
    const struct rl_item *it = &g->items[i];
    struct rl_limiter *rl = g->rl;
    struct rl_req *req;

    req = rl__req_new(rl, g->kind == RL_GRP_WARM ? RL_OP_PEEK : RL_OP_CHECK,
                      it->key, it->len);
    if (req == NULL)
        return NULL;
    req->max = it->max;
    req->window = it->window;
    req->cost = it->cost;
    req->grp = g;
    req->grp_idx = (uint32_t)i;
    g->reqs[i] = req;
    g->live++;
    rl->ctr.v[RL_METRIC_PENDING]++;
    if (g->kind != RL_GRP_WARM)
        rl->ctr.v[RL_METRIC_CHECKS_TOTAL]++;
    return req;
}

/* Submits items [from, to) as one chunk (one command). */
static void
submit_chunk(struct rl_group *g, size_t from, size_t to)
{
    struct rl_limiter *rl = g->rl;
    struct rl_req *req, *last = NULL;
    size_t i;

    for (i = from; i < to; i++) {
        if (g->items[i].invalid) {
            slot_direct(g, i, RL_ERR_INVALID);
            continue;
        }
        req = item_req(g, i);
        if (req == NULL) {
            slot_direct(g, i, RL_ERR_NOMEM);
            continue;
        }
        if (last == NULL)
            req->mark |= RL_MARK_START;
        last = req;
    }
    if (last != NULL)
        last->mark |= RL_MARK_END;
    /* Marked first, submitted after: a chunk goes out whole. */
    for (i = from; i < to; i++) {
        req = g->reqs[i];
        if (req == NULL)
            continue;
        if (rl->freeing || g->timed_out)
            rl__req_fallback(req, rl->freeing ? RL_ERR_SHUTDOWN
                                              : RL_ERR_TIMEOUT);
        else
            rl__check_submit(rl, req);
    }
}

/* Submits chunks while fewer than batch.concurrency are in flight. */
static void
feed(struct rl_group *g)
{
    const rl_batch_config *bc = &g->rl->cfg.batch;
    size_t size = (size_t)bc->size, to;

    while (g->next < g->n &&
           (g->live == 0 || g->live + size <= (size_t)bc->concurrency * size)) {
        to = g->next + size < g->n ? g->next + size : g->n;
        submit_chunk(g, g->next, to);
        g->next = to;
    }
}

/* ---- the batch's timeout ---- */

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rl_group *g = arg;
    struct rl_limiter *rl = g->rl;
    struct rl_req *req;
    size_t i;

    (void)fd;
    (void)what;
    g->timed_out = true;
    for (i = 0; i < g->next; i++) {
        req = g->reqs[i];
        if (req == NULL || req->state == RL_REQ_DONE)
            continue;
        if (rl->backend->expire != NULL)
            rl->backend->expire(rl, req);
        rl->ctr.v[RL_METRIC_TIMEOUTS]++;
        rl__req_fallback(req, RL_ERR_TIMEOUT);
    }
    feed(g); /* the rest: answered by the fallback at once */
    if (g->left == 0 && g->live == 0)
        group_ready(g);
}

static int
arm_timeout(struct rl_group *g)
{
    g->timer = evtimer_new(g->rl->base, timeout_cb, g);
    if (g->timer == NULL)
        return RL_ERR_NOMEM;
    rl__timer_add_ms(g->timer, g->rl->cfg.batch.timeout_ms);
    return RL_OK;
}

/* ---- starting ---- */

/* The multi-limit check: every request made first, then the leader goes
   to the backend with the others riding along. */
static void
start_all(struct rl_group *g)
{
    size_t i;

    for (i = 0; i < g->n; i++) {
        if (item_req(g, i) != NULL)
            continue;
        while (i-- > 0) {
            g->reqs[i]->grp = NULL;
            g->rl->ctr.v[RL_METRIC_PENDING]--;
            g->rl->ctr.v[RL_METRIC_CHECKS_TOTAL]--; /* item_req counted it */
            rl__req_unref(g->reqs[i]);
        }
        g->live = 0;
        for (i = 0; i < g->n; i++)
            slot_direct(g, i, RL_ERR_NOMEM);
        return;
    }
    g->reqs[0]->unit = (uint8_t)g->n;
    g->rl->backend->submit(g->rl, g->reqs[0]);
}

int
rl__group_start(struct rl_group *g)
{
    if (g->kind == RL_GRP_BATCH && arm_timeout(g) != RL_OK) {
        rl__group_discard(g);
        return RL_ERR_NOMEM;
    }
    if (g->kind == RL_GRP_ALL)
        start_all(g);
    else
        feed(g);
    if (g->left == 0 && g->live == 0)
        group_ready(g);
    return RL_OK;
}

/* Frees a group that never started, or left at rl_free. */
void
rl__group_discard(struct rl_group *g)
{
    TAILQ_REMOVE(&g->rl->groups, g, link);
    if (g->timer != NULL)
        event_free(g->timer);
    free(g);
}

/* ---- completion ---- */

void
rl__group_item_done(struct rl_req *req)
{
    struct rl_group *g = req->grp;
    size_t i = req->grp_idx;

    g->res[i] = req->res;
    slot_key(g, i);
    g->reqs[i] = NULL;
    g->left--;
    g->live--;
    if (g->left == 0 && g->live == 0)
        group_ready(g);
    else if (g->kind != RL_GRP_ALL)
        feed(g);
}

static void
count_finish(struct rl_group *g)
{
    int64_t *v = g->rl->ctr.v;
    size_t i;

    if (g->kind == RL_GRP_BATCH) {
        for (i = 0; i < g->n; i++)
            if (g->res[i].status == RL_OK)
                v[RL_METRIC_BATCH_ITEMS_OK]++;
    } else if (g->kind == RL_GRP_ALL && !g->res[0].allowed) {
        v[RL_METRIC_MULTI_DENIED]++;
    }
}

/* The warm-up's verdict: the first failure, else RL_OK. */
static int
warm_status(const struct rl_group *g)
{
    size_t i;

    for (i = 0; i < g->n; i++)
        if (g->res[i].status != RL_OK)
            return g->res[i].status;
    return RL_OK;
}

/* Runs the callback of every group whose slots are all filled. */
void
rl__group_deliver(struct rl_limiter *rl)
{
    struct rl_group *g;

    while (!TAILQ_EMPTY(&rl->groups_done)) {
        g = TAILQ_FIRST(&rl->groups_done);
        TAILQ_REMOVE(&rl->groups_done, g, link);
        if (g->timer != NULL)
            event_free(g->timer);
        count_finish(g);
        rl->in_callback++;
        if (g->kind == RL_GRP_WARM)
            g->wcb(warm_status(g), g->cached, g->arg);
        else
            g->cb(g->res, g->n, g->arg);
        rl->in_callback--;
        free(g);
    }
}

/* ---- the multi-limit check's fallback ---- */

/*
 * A request of an all-or-nothing group failed (timeout, Redis down,
 * breaker open, shutdown): every request of the group still pending is
 * answered together, with one verdict, and taken off the backend's queue.
 */
void
rl__group_fallback(struct rl_group *g, int why)
{
    struct rl_limiter *rl = g->rl;
    rl_result r[RL_CHECK_ALL_MAX];
    struct rl_req *req;
    size_t i;

    for (i = 0; i < g->n; i++) {
        req = g->reqs[i];
        if (req != NULL && rl->backend->expire != NULL)
            rl->backend->expire(rl, req);
    }
    rl__fallback_group(rl, g, r);
    for (i = 0; i < g->n; i++) {
        req = g->reqs[i];
        if (req != NULL && req->state != RL_REQ_DONE)
            rl__req_complete(req, why, &r[i]);
    }
}
