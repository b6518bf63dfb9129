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
#include <string.h>

#include <event2/event.h>

#include "group.h"

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
        rl__timer_add_ms(rl->sweep_ev, rl->cfg.local.sweep_interval_ms);
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

/* The limit this instance applies: its share of max while Redis is away
   (the local fallback), at least cost. */
static int64_t
share_of(const struct rl_limiter *rl, int64_t max, int64_t cost)
{
    if (rl->cfg.backend == RL_BACKEND_LOCAL || rl->instances <= 1)
        return max;
    max /= rl->instances;
    return max < cost ? cost : max;
}

static void
arm_sweep(struct rl_limiter *rl)
{
    if (!rl->sweep_armed) {
        rl->sweep_armed = true;
        rl__timer_add_ms(rl->sweep_ev, rl->cfg.local.sweep_interval_ms);
    }
}

static void
to_result(const rl_decision *d, rl_result *r)
{
    r->status = RL_OK;
    r->allowed = d->allowed;
    r->remaining = d->remaining;
    r->reset_ms = d->reset_ms;
    r->retry_after_ms = d->retry_after_ms;
    r->source = RL_SOURCE_BACKEND;
}

/* rl__local_decide on the key's state st, got at now (NULL: the store
   was out of memory). */
static int
decide_on(struct rl_limiter *rl, struct rl_req *req, rl_algo_state *st,
          int64_t now, rl_result *r)
{
    rl_decision d;
    int rc;

    if (st == NULL)
        return RL_ERR_NOMEM;
    rc = rl__algo_decide(rl->cfg.algorithm, st, now,
                         share_of(rl, req->max, req->cost), req->window,
                         req->cost, &d);
    if (rc != RL_OK)
        return rc;
    rl__store_set_expiry(rl->store, st, d.expire_at_ms);
    arm_sweep(rl);
    to_result(&d, r);
    return RL_OK;
}

int
rl__local_decide(struct rl_limiter *rl, struct rl_req *req, int64_t now,
                 rl_result *r)
{
    rl_algo_state *st;

    st = rl__store_get(rl->store, rl->cfg.algorithm, req->key, req->keylen,
                       now);
    return decide_on(rl, req, st, now, r);
}

void
rl__local_reset(struct rl_limiter *rl, struct rl_req *req)
{
    int alg;

    for (alg = RL_SLIDING_WINDOW; alg <= RL_GCRA; alg++)
        rl__store_del(rl->store, (rl_algorithm)alg, req->key, req->keylen);
}

/* ---- all-or-nothing groups ---- */

/*
 * A store pointer lives only until the next get, and the get of one key of
 * the group may drop another (a full store), so each distinct key's state
 * is taken out of the store first: moved, not copied (the store keeps the
 * fresh state, which owns nothing).  rl__algo_group makes the one copy the
 * all-or-nothing rule needs, and the states go back charged when the group
 * was admitted, untouched otherwise.
 */
struct group_work {
    rl_algo_state held[RL_CHECK_ALL_MAX];
    rl_algo_state *st[RL_CHECK_ALL_MAX];
    int64_t max[RL_CHECK_ALL_MAX], window[RL_CHECK_ALL_MAX];
    int64_t cost[RL_CHECK_ALL_MAX];
    rl_decision d[RL_CHECK_ALL_MAX];
    size_t first[RL_CHECK_ALL_MAX]; /* held c: its key's first item */
    size_t last[RL_CHECK_ALL_MAX];  /* and last item (its expiry) */
    size_t n_held;
};

/* The index of the first item of g with item i's key. */
static size_t
first_of_key(const struct rl_group *g, size_t i)
{
    size_t j;

    for (j = 0; j < i; j++)
        if (g->items[j].len == g->items[i].len &&
            memcmp(g->items[j].key, g->items[i].key, g->items[i].len) == 0)
            return j;
    return i;
}

/* Takes the state of each distinct key of g out of the store.  RL_OK or
   RL_ERR_NOMEM (the states taken so far are w's, to put back). */
static int
take_states(struct rl_limiter *rl, const struct rl_group *g, int64_t now,
            struct group_work *w)
{
    const struct rl_item *it;
    rl_algo_state *live;
    size_t i, j;

    for (i = 0; i < g->n; i++) {
        it = &g->items[i];
        w->max[i] = share_of(rl, it->max, it->cost);
        w->window[i] = it->window;
        w->cost[i] = it->cost;
        j = first_of_key(g, i);
        if (j < i) {
            w->st[i] = w->st[j];
            w->last[w->st[j] - w->held] = i;
            continue;
        }
        live = rl__store_get(rl->store, rl->cfg.algorithm, it->key, it->len,
                             now);
        if (live == NULL)
            return RL_ERR_NOMEM;
        w->held[w->n_held] = *live;
        memset(live, 0, sizeof(*live));
        w->first[w->n_held] = w->last[w->n_held] = i;
        w->st[i] = &w->held[w->n_held++];
    }
    return RL_OK;
}

/*
 * Moves the held states back into the store.  admitted: each gets the
 * expiry its key's last check set; else each keeps the expiry it had.
 */
static void
put_back(struct rl_limiter *rl, const struct rl_group *g, int64_t now,
         struct group_work *w, bool admitted)
{
    const struct rl_item *it;
    rl_algo_state *live;
    size_t c;

    for (c = 0; c < w->n_held; c++) {
        it = &g->items[w->first[c]];
        live = rl__store_get(rl->store, rl->cfg.algorithm, it->key, it->len,
                             now);
        if (live == NULL) {
            rl__algo_state_clear(&w->held[c]); /* out of memory: lost */
            continue;
        }
        rl__algo_state_clear(live);
        *live = w->held[c];
        if (admitted)
            rl__store_set_expiry(rl->store, live,
                                 w->d[w->last[c]].expire_at_ms);
    }
    w->n_held = 0;
    if (admitted)
        arm_sweep(rl);
}

int
rl__local_group(struct rl_limiter *rl, struct rl_group *g, int64_t now,
                rl_result *r)
{
    struct group_work w;
    bool admitted = false;
    size_t i;
    int rc;

    w.n_held = 0;
    rc = take_states(rl, g, now, &w);
    if (rc == RL_OK)
        rc = rl__algo_group(rl->cfg.algorithm, w.st, g->n, now, w.max,
                            w.window, w.cost, w.d, &admitted);
    put_back(rl, g, now, &w, rc == RL_OK && admitted);
    if (rc != RL_OK)
        return rc;
    for (i = 0; i < g->n; i++)
        to_result(&w.d[i], &r[i]);
    return RL_OK;
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
    req->linked = 1;
    rl__tick_arm(rl);
}

static void
local_expire(struct rl_limiter *rl, struct rl_req *req)
{
    if (req->linked) {
        TAILQ_REMOVE(&rl->submit_q, req, q);
        req->linked = 0;
    }
}

/* Decides the all-or-nothing group led by req at now. */
static void
flush_group(struct rl_limiter *rl, struct rl_req *req, int64_t now)
{
    struct rl_group *g = req->grp;
    rl_result r[RL_CHECK_ALL_MAX];
    size_t i;

    if (rl__local_group(rl, g, now, r) != RL_OK) {
        rl__req_fallback(req, RL_ERR_NOMEM);
        return;
    }
    for (i = 0; i < g->n; i++)
        rl__req_complete(g->reqs[i], RL_OK, &r[i]);
}

/*
 * local_flush looks ahead in the submit queue so that the cache misses of
 * a tick's checks overlap instead of adding up: a check's key is hashed
 * and its slot prefetched LOOKAHEAD requests before its decision, its
 * record STAGE2 requests before.  Prefetching never changes the store.
 */
#define LOOKAHEAD 16 /* a power of two */
#define STAGE2 8

/* The look-ahead's first stage for req: the hash of its key, its slot
   prefetched (0 for a reset, which has no single key to look up). */
static inline uint64_t
ahead_hash(struct rl_limiter *rl, const struct rl_req *req)
{
    if (req->op != RL_OP_CHECK)
        return 0;
    return rl__store_prefetch(rl->store, rl->cfg.algorithm, req->key,
                              req->keylen);
}

/* Decides req (off the queue) at now; hash: ahead_hash's. */
static void
flush_one(struct rl_limiter *rl, struct rl_req *req, uint64_t hash,
          int64_t now)
{
    rl_algo_state *st;
    rl_result r;

    if (req->op == RL_OP_RESET) {
        rl__local_reset(rl, req);
        rl__req_complete(req, RL_OK, NULL);
        return;
    }
    if (req->unit > 1) {
        flush_group(rl, req, now);
        return;
    }
    st = rl__store_get_hashed(rl->store, rl->cfg.algorithm, req->key,
                              req->keylen, hash, now);
    if (decide_on(rl, req, st, now, &r) != RL_OK)
        rl__req_fallback(req, RL_ERR_NOMEM);
    else
        rl__req_complete(req, RL_OK, &r);
}

/*
 * Decides every queued request in submission order at one timestamp,
 * each on the state its predecessors left.  n0 requests were decided and
 * n1 hashed, `next` is the next to hash (NULL: the end of the queue);
 * requests leave the queue at the head only, so `next` stays on it.
 * Should one be added after the look-ahead reached the end, the
 * look-ahead starts again from the head.
 */
static void
local_flush(struct rl_limiter *rl)
{
    uint64_t hash[LOOKAHEAD];
    struct rl_req *req, *next = NULL;
    unsigned n0 = 0, n1 = 0;
    int64_t now;

    if (TAILQ_EMPTY(&rl->submit_q))
        return;
    now = rl__now_ms(rl);
    while (!TAILQ_EMPTY(&rl->submit_q)) {
        req = TAILQ_FIRST(&rl->submit_q);
        if (n1 == n0)
            next = req;
        while (next != NULL && n1 - n0 < LOOKAHEAD) {
            hash[n1++ % LOOKAHEAD] = ahead_hash(rl, next);
            next = TAILQ_NEXT(next, q);
        }
        if (n1 - n0 > STAGE2)
            rl__store_prefetch_record(rl->store,
                                      hash[(n0 + STAGE2) % LOOKAHEAD]);
        TAILQ_REMOVE(&rl->submit_q, req, q);
        req->linked = 0;
        flush_one(rl, req, hash[n0++ % LOOKAHEAD], now);
    }
}

static void
local_shutdown(struct rl_limiter *rl)
{
    struct rl_req *req;

    while (!TAILQ_EMPTY(&rl->submit_q)) {
        req = TAILQ_FIRST(&rl->submit_q);
        TAILQ_REMOVE(&rl->submit_q, req, q);
        req->linked = 0;
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
    .expire = local_expire,
};
