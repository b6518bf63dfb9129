/*
 * pipeline.c: a node's pipeline.  Checks queued during one loop tick are
 * written together when the tick event runs: up to batch.max checks share
 * one EVALSHA of the algorithm's batch script, and every command of the
 * tick goes out in one write (hiredis buffers, the socket is written once
 * the loop polls).  A burst of N checks costs about N / batch.max commands.
 *
 * A batch holds a reference on each of its requests.  Its reply is checked
 * for shape and range before any number in it is trusted; a request that
 * completed meanwhile (deadline, shutdown) is skipped, so a late reply is
 * never delivered twice.  A NOSCRIPT reply means nothing ran: the script is
 * loaded again and the batch resent once.  Any other failure is final for
 * the batch (a command that may have run is never resent: that would
 * count twice); its checks are answered by the fallback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "redis.h"

struct rl_batch {
    struct rl_node *node;
    uint8_t op;         /* RL_OP_CHECK, RL_OP_PEEK: EVALSHA; RL_OP_RESET:
                           DEL */
    uint8_t retried;    /* resent once after NOSCRIPT */
    uint8_t grouped;    /* holds an all-or-nothing group */
    int n;
    struct rl_req *reqs[];
};

static void batch_reply_cb(redisAsyncContext *ac, void *reply, void *priv);

/* ---- formatting RESP ---- */

static int
cmd_reserve(struct rl_node *n, size_t more)
{
    size_t cap = n->cmd_cap ? n->cmd_cap : 4096;
    char *p;

    if (n->cmd_len + more <= n->cmd_cap)
        return RL_OK;
    while (cap < n->cmd_len + more)
        cap *= 2;
    p = realloc(n->cmd, cap);
    if (p == NULL)
        return RL_ERR_NOMEM;
    n->cmd = p;
    n->cmd_cap = cap;
    return RL_OK;
}

/* Two digits a step: "00" to "99". */
static const char digit_pairs[] =
    "00010203040506070809101112131415161718192021222324"
    "25262728293031323334353637383940414243444546474849"
    "50515253545556575859606162636465666768697071727374"
    "75767778798081828384858687888990919293949596979899";

/* Decimal digits of u: 1 to 20 (hiredis countDigits). */
static size_t
digits10(uint64_t u)
{
    size_t n = 1;

    for (;;) {
        if (u < 10)
            return n;
        if (u < 100)
            return n + 1;
        if (u < 1000)
            return n + 2;
        if (u < 10000)
            return n + 3;
        u /= 10000;
        n += 4;
    }
}

/*
 * Writes the len = digits10(u) digits of u at p.  The length is known
 * first, so they go straight to their place from the last, two per
 * division (Redis util.c ll2string): no reversal, half the divisions.
 */
static void
put_digits(char *p, uint64_t u, size_t len)
{
    unsigned d;

    while (u >= 100) {
        d = (unsigned)(u % 100) * 2;
        u /= 100;
        p[--len] = digit_pairs[d + 1];
        p[--len] = digit_pairs[d];
    }
    if (u >= 10) {
        p[1] = digit_pairs[u * 2 + 1];
        p[0] = digit_pairs[u * 2];
    } else {
        p[0] = (char)('0' + u);
    }
}

/* Writes v in decimal at p; returns the length. */
static size_t
fmt_i64(char *p, int64_t v)
{
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t neg = v < 0, len = digits10(u);

    p[0] = '-';             /* the first digit overwrites it when v >= 0 */
    put_digits(p + neg, u, len);
    return neg + len;
}

/* Writes "<c><v>\r\n" (array or bulk header) at p; returns its end. */
static char *
header_at(char *p, char c, int64_t v)
{
    *p++ = c;
    if (v >= 0 && v < 10)
        *p++ = (char)('0' + v);     /* most bulk lengths */
    else
        p += fmt_i64(p, v);
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* Appends "<c><v>\r\n".  The writers work on a local cursor: a store
   through char * could alias n->cmd_len and force it to be reloaded. */
static void
put_header(struct rl_node *n, char c, int64_t v)
{
    n->cmd_len = (size_t)(header_at(n->cmd + n->cmd_len, c, v) - n->cmd);
}

static void
put_bulk(struct rl_node *n, const char *s, size_t len)
{
    char *p = header_at(n->cmd + n->cmd_len, '$', (int64_t)len);

    memcpy(p, s, len);
    p += len;
    *p++ = '\r';
    *p++ = '\n';
    n->cmd_len = (size_t)(p - n->cmd);
}

/* Appends v as a bulk string, its digits written in place. */
static void
put_int(struct rl_node *n, int64_t v)
{
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char *p = header_at(n->cmd + n->cmd_len, '$',
                        (int64_t)((v < 0) + digits10(u)));

    p += fmt_i64(p, v);
    *p++ = '\r';
    *p++ = '\n';
    n->cmd_len = (size_t)(p - n->cmd);
}

/* Appends the Redis key of (alg, req's key), escaped (keys.c). */
static void
put_key(struct rl_node *n, rl_algorithm alg, const struct rl_req *req)
{
    char key[RL_REDIS_KEY_MAX];
    size_t len = rl__redis_key(n->rl->cfg.redis.key_prefix, alg, req->key,
                               req->keylen, key);

    put_bulk(n, key, len);
}

/* Whether every check of b has the max, window and cost of the first. */
static bool
limits_shared(const struct rl_batch *b)
{
    const struct rl_req *first = b->reqs[0], *req;
    int i;

    for (i = 1; i < b->n; i++) {
        req = b->reqs[i];
        if (req->max != first->max || req->window != first->window ||
            req->cost != first->cost)
            return false;
    }
    return true;
}

/*
 * Appends max, window and cost of each check of b (the scripts' first
 * form).  Checks of a batch often share one limit: a check with the three
 * numbers of the one before gets a copy of their bytes rather than three
 * conversions.
 */
static void
put_limits(struct rl_node *n, const struct rl_batch *b)
{
    const struct rl_req *req, *prev = NULL;
    size_t start = 0, len = 0;
    int i;

    for (i = 0; i < b->n; i++) {
        req = b->reqs[i];
        if (prev != NULL && req->max == prev->max &&
            req->window == prev->window && req->cost == prev->cost) {
            memcpy(n->cmd + n->cmd_len, n->cmd + start, len);
            n->cmd_len += len;
            continue;
        }
        start = n->cmd_len;
        put_int(n, req->max);
        put_int(n, req->window);
        put_int(n, req->cost);
        len = n->cmd_len - start;
        prev = req;
    }
}

/* Room for a batch: headers, keys escaped, numbers. */
static size_t
batch_room(const struct rl_batch *b)
{
    size_t room = 256;
    int i;

    for (i = 0; i < b->n; i++)
        room += RL_REDIS_KEY_MAX / 2 + 3 * b->reqs[i]->keylen + 3 * 32 + 64;
    return room;
}

/*
 * A hash of a user key's bytes for keys_distinct: 8 bytes per multiply,
 * unkeyed: keys made to collide only make keys_distinct give up, its
 * probes being bounded.  rl__siphash13 in its place cost about 100
 * instructions per check more (callgrind, W1: 2,085 against 1,997 in
 * all).
 */
static uint64_t
key_mix(const char *p, size_t len)
{
    uint64_t h = (uint64_t)len * UINT64_C(0x9e3779b97f4a7c15), m;

    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&m, p, 8);
        h = (h ^ m) * UINT64_C(0xff51afd7ed558ccd);
        h ^= h >> 32;
    }
    m = 0;
    memcpy(&m, p, len);
    h = (h ^ m) * UINT64_C(0xc4ceb9fe1a85ec53);
    return h ^ (h >> 29);
}

/* Probes before keys_distinct gives up (keys that hash alike), and its
   table: room for the largest batch at most half full. */
#define DISTINCT_PROBES 16
#define DISTINCT_SLOTS 2048
_Static_assert(DISTINCT_SLOTS >= 2 * RL_BATCH_MAX_MAX, "a batch fits");

/*
 * Whether no user key comes twice in b: then the scripts' mode is 'U', and
 * Redis builds no map of each key's last check (lua/common.lua; about 6%
 * of its work per check under W1, for 60 to 70 instructions here).  An
 * open table of at least 2n slots; a probe run longer than
 * DISTINCT_PROBES, by chance or by keys made to hash alike, gives up and
 * answers no: '' is right for every batch, 'U' only spares work, so the
 * cost here stays linear whatever the keys.
 */
static bool
keys_distinct(const struct rl_batch *b)
{
    uint16_t slot[DISTINCT_SLOTS];
    const struct rl_req *req, *other;
    size_t mask = 1, at;
    int i, probes;

    if (b->n == 1)
        return true;
    if (b->n > RL_BATCH_MAX_MAX)
        return false;
    while (mask + 1 < 2 * (size_t)b->n)
        mask = 2 * mask + 1;
    memset(slot, 0, (mask + 1) * sizeof(slot[0]));
    for (i = 0; i < b->n; i++) {
        req = b->reqs[i];
        at = (size_t)key_mix(req->key, req->keylen) & mask;
        for (probes = 0; slot[at] != 0; probes++) {
            other = b->reqs[slot[at] - 1];
            if (probes == DISTINCT_PROBES ||
                (other->keylen == req->keylen &&
                 memcmp(other->key, req->key, req->keylen) == 0))
                return false;
            at = (at + 1) & mask;
        }
        slot[at] = (uint16_t)(i + 1);
    }
    return true;
}

/*
 * The scripts' mode (docs/algorithms.md): '' for independent checks ('U'
 * when no key comes twice), 'P' to peek, else the lengths of the batch's
 * all-or-nothing groups.
 */
static void
put_mode(struct rl_node *n, const struct rl_batch *b)
{
    size_t len = 0;
    int i, k;

    if (b->op == RL_OP_PEEK) {
        put_bulk(n, "P", 1);
        return;
    }
    if (!b->grouped) {
        put_bulk(n, "U", keys_distinct(b) ? 1 : 0);
        return;
    }
    for (i = 0; i < b->n; i += k) {
        k = b->reqs[i]->unit;
        len += (i > 0) + digits10((uint64_t)k);
    }
    put_header(n, '$', (int64_t)len);
    for (i = 0; i < b->n; i += k) {
        k = b->reqs[i]->unit;
        if (i > 0)
            n->cmd[n->cmd_len++] = ',';
        n->cmd_len += fmt_i64(n->cmd + n->cmd_len, k);
    }
    n->cmd[n->cmd_len++] = '\r';
    n->cmd[n->cmd_len++] = '\n';
}

/*
 * EVALSHA sha n key1..keyn now ttl_ms max1 window1 cost1 ... mode, or,
 * when every check shares one limit, EVALSHA sha n key1..keyn now ttl_ms
 * max window cost mode (lua/common.lua): three bulk strings fewer per
 * check for Redis to parse and for the script to hold.  `now` is empty
 * when Redis TIME decides (the default).
 */
static int
format_checks(struct rl_node *n, const struct rl_batch *b)
{
    struct rl_limiter *rl = n->rl;
    const struct rl_script *s = rl__script_for(rl->cfg.algorithm);
    bool shared = limits_shared(b);
    int i;

    n->cmd_len = 0;
    if (cmd_reserve(n, batch_room(b)) != RL_OK)
        return RL_ERR_NOMEM;
    put_header(n, '*', 3 + (int64_t)b->n + 2 + (shared ? 3 : 3 * b->n) + 1);
    put_bulk(n, "EVALSHA", 7);
    put_bulk(n, s->sha, 40);
    put_int(n, b->n);
    for (i = 0; i < b->n; i++)
        put_key(n, rl->cfg.algorithm, b->reqs[i]);
    if (rl->cfg.clock != NULL)
        put_int(n, rl__now_ms(rl));
    else
        put_bulk(n, "", 0);
    put_int(n, rl->cfg.redis.ttl_buffer_s * 1000);
    if (shared) { /* the scripts' second form: one triple for all */
        put_int(n, b->reqs[0]->max);
        put_int(n, b->reqs[0]->window);
        put_int(n, b->reqs[0]->cost);
    } else {
        put_limits(n, b);
    }
    put_mode(n, b);
    return RL_OK;
}

/* DEL of every algorithm's key of one user key (one hash tag). */
static int
format_reset(struct rl_node *n, const struct rl_req *req)
{
    int alg;

    n->cmd_len = 0;
    if (cmd_reserve(n, 6 * (RL_REDIS_KEY_MAX + 32)) != RL_OK)
        return RL_ERR_NOMEM;
    put_header(n, '*', 1 + (RL_GCRA + 1));
    put_bulk(n, "DEL", 3);
    for (alg = RL_SLIDING_WINDOW; alg <= RL_GCRA; alg++)
        put_key(n, (rl_algorithm)alg, req);
    return RL_OK;
}

/* ---- batches ---- */

static struct rl_batch *
batch_new(struct rl_node *n, uint8_t op, int cap)
{
    struct rl_batch *b = malloc(sizeof(*b) + (size_t)cap * sizeof(b->reqs[0]));

    if (b == NULL)
        return NULL;
    b->node = n;
    b->op = op;
    b->retried = 0;
    b->grouped = 0;
    b->n = 0;
    return b;
}

static void
batch_free(struct rl_batch *b)
{
    int i;

    for (i = 0; i < b->n; i++)
        rl__req_unref(b->reqs[i]);
    free(b);
}

/* Leaves out the requests that completed meanwhile (before a resend). */
static void
batch_drop_done(struct rl_batch *b)
{
    int i, kept = 0;

    for (i = 0; i < b->n; i++) {
        if (b->reqs[i]->state == RL_REQ_DONE)
            rl__req_unref(b->reqs[i]);
        else
            b->reqs[kept++] = b->reqs[i];
    }
    b->n = kept;
}

/* Completes every request of the batch still pending with `why`. */
static void
batch_fail(struct rl_batch *b, int why)
{
    struct rl_req *req;
    int i;

    for (i = 0; i < b->n; i++) {
        req = b->reqs[i];
        if (req->state == RL_REQ_DONE)
            continue;
        if (req->op == RL_OP_RESET)
            rl__req_complete(req, why, NULL);
        else
            rl__req_fallback(req, why);
    }
}

/* Writes the batch to the connection; on failure its requests fail. */
static void
batch_send(struct rl_node *n, struct rl_batch *b)
{
    struct rl_limiter *rl = n->rl;
    redisAsyncContext *ac = n->conn.ac;
    int rc;

    rc = b->op == RL_OP_RESET ? format_reset(n, b->reqs[0])
                              : format_checks(n, b);
    if (rc == RL_OK && ac != NULL &&
        redisAsyncFormattedCommand(ac, batch_reply_cb, b, n->cmd,
                                   n->cmd_len) == REDIS_OK) {
        n->inflight++;
        rl->ctr.v[RL_METRIC_INFLIGHT]++;
        rl->ctr.v[RL_METRIC_REDIS_COMMANDS]++;
        if (b->op != RL_OP_RESET) {
            rl->ctr.v[RL_METRIC_REDIS_EVALSHA]++;
            rl->ctr.v[RL_METRIC_BATCHES]++;
            rl->ctr.v[RL_METRIC_BATCHED_CHECKS] += b->n;
        }
        return;
    }
    batch_fail(b, rc == RL_OK ? RL_ERR_REDIS : rc);
    batch_free(b);
}

/* ---- replies ---- */

static bool
in_range(const redisReply *e, int64_t lo, int64_t hi)
{
    return e->type == REDIS_REPLY_INTEGER && e->integer >= lo &&
           e->integer <= hi;
}

/*
 * Whether four numbers are a decision a check of req could get.  The
 * durations are within two windows of the check, except GCRA's: its TAT
 * is kept across a change of limit and read from an earlier now when the
 * clock steps back (docs/algorithms.md, section 6), so they are bounded
 * only by the furthest TAT any check can set, now + window at most.
 */
static bool
decision_valid(const struct rl_req *req, redisReply **e)
{
    int64_t span = 2 * req->window;

    if (req->rl->cfg.algorithm == RL_GCRA)
        span = RL_NOW_MAX + RL_WINDOW_MS_MAX;

    return in_range(e[0], 0, 1) && in_range(e[1], 0, req->max) &&
           in_range(e[2], 0, span) && in_range(e[3], 0, span);
}

/*
 * Whether the k decisions at e are those of one all-or-nothing unit (a
 * check alone when k is 1): one verdict; admitted, none waits; denied,
 * at least one limit denied on its own (retry_after > 0).
 */
static bool
unit_valid(struct rl_req *const *reqs, int k, redisReply **e)
{
    bool allowed = e[0]->integer == 1, waits = false;
    int i;

    for (i = 0; i < k; i++) {
        if (!decision_valid(reqs[i], e + 4 * i) ||
            (e[4 * i]->integer == 1) != allowed)
            return false;
        if (e[4 * i + 3]->integer > 0)
            waits = true;
    }
    return allowed != waits;
}

static bool
decisions_valid(const struct rl_batch *b, redisReply **e)
{
    int i = 0, k;

    while (i < b->n) {
        k = b->reqs[i]->unit;
        if (i + k > b->n || !unit_valid(b->reqs + i, k, e + 4 * i))
            return false;
        i += k;
    }
    return true;
}

static void
apply_decisions(struct rl_batch *b, const redisReply *reply)
{
    redisReply **e = reply->element;
    struct rl_req *req;
    rl_result r;
    int i;

    if (reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != (size_t)b->n * 4 || !decisions_valid(b, e))
        goto out_protocol;
    memset(&r, 0, sizeof(r));
    r.source = RL_SOURCE_BACKEND;
    for (i = 0; i < b->n; i++) {
        req = b->reqs[i];
        r.allowed = e[4 * i]->integer == 1;
        r.remaining = e[4 * i + 1]->integer;
        r.reset_ms = e[4 * i + 2]->integer;
        r.retry_after_ms = e[4 * i + 3]->integer;
        rl__req_complete(req, RL_OK, &r);
    }
    return;

out_protocol:
    rl__log_limited(b->node->rl, RL_LOG_ERROR,
                    "redis: a reply of the wrong shape for %d checks", b->n);
    batch_fail(b, RL_ERR_PROTOCOL);
}

static bool
is_noscript(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR &&
           strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

static void
reload_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rl_node *n = priv;

    (void)ac;
    (void)reply;
    n->reloading = false;
}

/* NOSCRIPT: nothing ran.  Load the script and resend the batch once. */
static bool
retry_noscript(struct rl_batch *b)
{
    struct rl_node *n = b->node;
    struct rl_limiter *rl = n->rl;
    const struct rl_script *s = rl__script_for(rl->cfg.algorithm);

    rl->ctr.v[RL_METRIC_REDIS_NOSCRIPT]++;
    if (b->retried || n->conn.ac == NULL)
        return false;
    b->retried = 1;
    batch_drop_done(b);
    if (b->n == 0) {
        batch_free(b);
        return true;
    }
    if (!n->reloading) {
        if (redisAsyncCommand(n->conn.ac, reload_reply_cb, n,
                              "SCRIPT LOAD %b", s->text, s->len) != REDIS_OK)
            return false;
        n->reloading = true;
        rl->ctr.v[RL_METRIC_REDIS_COMMANDS]++;
        rl__log(rl, RL_LOG_WARN, "redis: script %s was flushed; loading it "
                "again", s->name);
    }
    batch_send(n, b);
    return true;
}

static void
batch_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rl_batch *b = priv;
    struct rl_node *n = b->node;
    struct rl_limiter *rl = n->rl;
    redisReply *r = reply;

    (void)ac;
    n->inflight--;
    rl->ctr.v[RL_METRIC_INFLIGHT]--;
    if (rl->cfg.pipeline_depth > 0 && !TAILQ_EMPTY(&n->queue))
        rl__tick_arm(rl); /* what waited for a reply (queue_waits) */
    if (r != NULL)
        n->stalled_since_ms = 0; /* the connection answers */
    if (r == NULL) {
        batch_fail(b, rl->freeing ? RL_ERR_SHUTDOWN : RL_ERR_REDIS);
    } else if (r->type == REDIS_REPLY_ERROR) {
        if (is_noscript(r) && b->op != RL_OP_RESET && retry_noscript(b))
            return;
        rl->ctr.v[RL_METRIC_REDIS_ERRORS]++;
        rl__log_limited(rl, RL_LOG_ERROR, "redis: %.200s", r->str);
        batch_fail(b, RL_ERR_REDIS);
    } else if (b->op == RL_OP_RESET) {
        if (b->reqs[0]->state != RL_REQ_DONE)
            rl__req_complete(b->reqs[0], r->type == REDIS_REPLY_INTEGER
                                             ? RL_OK : RL_ERR_PROTOCOL, NULL);
    } else {
        apply_decisions(b, r);
    }
    batch_free(b);
}

/* ---- the node's queue ---- */

void
rl__node_queue(struct rl_node *n, struct rl_req *req)
{
    if (n->conn.state == RL_CONN_BACKOFF && req->ticket != 0 &&
        rl_metric(n->rl, RL_METRIC_BREAKER_STATE) == RL_BREAKER_HALF_OPEN)
        rl__conn_kick(&n->conn); /* a probe: find out whether Redis is back */
    if (n->conn.state == RL_CONN_BACKOFF) {
        /* A known outage: answer now rather than at the deadline. */
        if (req->op == RL_OP_RESET)
            rl__req_complete(req, RL_ERR_REDIS, NULL);
        else
            rl__req_fallback(req, RL_ERR_REDIS);
        return;
    }
    TAILQ_INSERT_TAIL(&n->queue, req, q);
    n->queued += req->unit;
    req->linked = 1;
    rl__tick_arm(n->rl);
}

void
rl__node_unqueue(struct rl_node *n, struct rl_req *req)
{
    TAILQ_REMOVE(&n->queue, req, q);
    n->queued -= req->unit;
    req->linked = 0;
}

static void
batch_add(struct rl_batch *b, struct rl_req *req)
{
    req->state = RL_REQ_SENT;
    rl__req_ref(req);
    b->reqs[b->n++] = req;
}

/*
 * Takes up to batch.max checks (or one reset) off the queue.  An
 * all-or-nothing group goes whole into one command (its leader is queued,
 * the others ride along), even past batch.max when it is alone; a batch's
 * chunk starts a command of its own and ends it.
 */
static struct rl_batch *
batch_take(struct rl_node *n)
{
    struct rl_req *req = TAILQ_FIRST(&n->queue);
    int max = (int)n->rl->cfg.batch.max, k, i;
    struct rl_batch *b;

    b = batch_new(n, req->op, req->op == RL_OP_RESET ? 1
                              : max > RL_CHECK_ALL_MAX ? max
                              : RL_CHECK_ALL_MAX);
    if (b == NULL)
        return NULL;
    while (req != NULL && req->op == b->op) {
        k = req->unit;
        if (b->n > 0 && (b->n + k > max || (req->mark & RL_MARK_START)))
            break;
        rl__node_unqueue(n, req);
        batch_add(b, req);
        for (i = 1; i < k; i++)
            batch_add(b, req->grp->reqs[i]);
        if (k > 1)
            b->grouped = 1;
        if (b->op == RL_OP_RESET || (req->mark & RL_MARK_END))
            break;
        req = TAILQ_FIRST(&n->queue);
    }
    return b;
}

/*
 * Whether what is queued waits for a reply rather than leaving now: with
 * pipeline_depth commands in flight, checks that do not fill a batch wait
 * (and leave as one when a reply comes back, batch_reply_cb); a full
 * batch never does.  Under load this grows the batches that small ticks
 * make, and with them the checks one EVALSHA serves; with nothing in
 * flight nothing waits.
 */
static bool
queue_waits(const struct rl_node *n)
{
    const rl_config *cfg = &n->rl->cfg;

    return cfg->pipeline_depth > 0 && n->inflight >= cfg->pipeline_depth &&
           n->queued < cfg->batch.max;
}

void
rl__node_flush(struct rl_node *n)
{
    struct rl_batch *b;
    struct rl_req *req;

    if (n->conn.state != RL_CONN_READY)
        return; /* they wait for the connection, within their deadline */
    while (!TAILQ_EMPTY(&n->queue) && !queue_waits(n)) {
        b = batch_take(n);
        if (b == NULL) {
            req = TAILQ_FIRST(&n->queue);
            rl__node_unqueue(n, req);
            rl__req_fallback(req, RL_ERR_NOMEM);
            continue;
        }
        batch_send(n, b);
    }
}

void
rl__node_ready(struct rl_node *n)
{
    n->stalled_since_ms = 0;
    rl__node_flush(n);
}

void
rl__node_down(struct rl_node *n, int why)
{
    struct rl_req *req;

    while (!TAILQ_EMPTY(&n->queue)) {
        req = TAILQ_FIRST(&n->queue);
        rl__node_unqueue(n, req);
        if (req->op == RL_OP_RESET)
            rl__req_complete(req, why, NULL);
        else
            rl__req_fallback(req, why);
    }
}

/* ---- handshake ---- */

static void
handshake_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rl_conn *c = priv;
    redisReply *r = reply;
    char why[200];

    if (c->ac != ac || c->state != RL_CONN_CONNECTING)
        return; /* a context we gave up on */
    if (r == NULL)
        return; /* the disconnect callback reports it */
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "handshake refused: %.150s", r->str);
        rl__conn_fail(c, why);
        return;
    }
    if (--c->handshake_left == 0)
        rl__conn_ready(c);
}

static int
send_handshake(struct rl_conn *c, redisAsyncContext *ac, const char *fmt,
               const char *a, size_t alen, const char *b, size_t blen)
{
    int rc;

    if (b != NULL)
        rc = redisAsyncCommand(ac, handshake_reply_cb, c, fmt, a, alen, b,
                               blen);
    else if (a != NULL)
        rc = redisAsyncCommand(ac, handshake_reply_cb, c, fmt, a, alen);
    else
        rc = redisAsyncCommand(ac, handshake_reply_cb, c, fmt);
    if (rc != REDIS_OK)
        return RL_ERR_REDIS;
    c->handshake_left++;
    c->node->rl->ctr.v[RL_METRIC_REDIS_COMMANDS]++;
    return RL_OK;
}

int
rl__node_handshake(struct rl_node *n, redisAsyncContext *ac)
{
    const rl_redis_config *rc = &n->rl->cfg.redis;
    const struct rl_script *s = rl__script_for(n->rl->cfg.algorithm);
    struct rl_conn *c = &n->conn;
    char db[24];
    int err = RL_OK;

    c->handshake_left = 0;
    n->reloading = false;
    if (rc->password != NULL && rc->username != NULL)
        err = send_handshake(c, ac, "AUTH %b %b", rc->username,
                             strlen(rc->username), rc->password,
                             strlen(rc->password));
    else if (rc->password != NULL)
        err = send_handshake(c, ac, "AUTH %b", rc->password,
                             strlen(rc->password), NULL, 0);
    if (err == RL_OK && rc->db != 0) {
        snprintf(db, sizeof(db), "%d", rc->db);
        err = send_handshake(c, ac, "SELECT %b", db, strlen(db), NULL, 0);
    }
    if (err == RL_OK)
        err = send_handshake(c, ac, "SCRIPT LOAD %b", s->text, s->len, NULL,
                             0);
    return err;
}

void
rl__node_free(struct rl_node *n)
{
    rl__conn_close(&n->conn);
    free(n->cmd);
    free(n->host);
    free(n->unix_path);
    free(n);
}
