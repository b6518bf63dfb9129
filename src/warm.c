/*
 * warm.c: filling the decision cache before traffic comes.
 *
 * rl_cache_warm_async peeks at the keys it is given: each becomes a check
 * sent with the script's peek mode (decided, never charged, nothing
 * written), in chunks like a batch (group.c), and a key Redis finds
 * blocked for its limit is cached as any denial would be (cache_loop.c).
 *
 * rl_cache_warm_pattern_async finds the keys first: a job walks Redis with
 * SCAN (never KEYS, which would stop the server) over the Redis keys of
 * this limiter's prefix and algorithm, decodes each back into its user key
 * (keys.c), keeps those matching one of the glob patterns, peeks at them,
 * and goes on until the walk ends or preload_max keys were found.  One
 * SCAN or one peek group is out at a time; a SCAN has the command timeout
 * as its deadline.  The job's callback runs once, from the loop.
 */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "group.h"
#include "metrics.h"
#include "redis.h"

#define SCAN_COUNT "1000"   /* keys Redis looks at per SCAN step */

/* ---- warm-up by keys ---- */

static int
warm_start(struct rl_limiter *rl, const rl_request *keys, size_t n,
           rl_warm_cb cb, void *arg)
{
    struct rl_group *g;
    int rc;

    rc = rl__group_new(rl, RL_GRP_WARM, keys, n, &g);
    if (rc != RL_OK)
        return rc;
    g->wcb = cb;
    g->arg = arg;
    return rl__group_start(g);
}

RL_EXTERN int
rl_cache_warm_async(rl_limiter *rl, const rl_request *keys, size_t n,
                    rl_warm_cb cb, void *arg)
{
    if (rl == NULL || rl->cache == NULL || keys == NULL || cb == NULL ||
        n == 0 || n > RL_BATCH_ITEMS_MAX)
        return RL_ERR_INVALID;
    return warm_start(rl, keys, n, cb, arg);
}

/* ---- the SCAN job ---- */

struct rl_scan {
    TAILQ_ENTRY(rl_scan) link;  /* rl->scans while not finished */
    struct rl_limiter *rl;
    char **patterns;
    size_t n_patterns;
    int64_t max, window, cost;
    size_t preload_max;
    size_t found, cached;
    char cursor[24];
    char *match;
    size_t match_len;
    rl_warm_cb cb;
    void *arg;
    struct event *timer;        /* the SCAN's deadline, or a failure to
                                   report from the loop */
    int status;                 /* the verdict once finished */
    int64_t waited_ms;          /* for the connection, before a SCAN */
    bool finished;              /* the callback ran (or is running) */
    bool scan_out;              /* a SCAN reply is awaited */
    bool peeking;               /* a peek group is out */
};

static void scan_next(struct rl_scan *j);

static void
job_free(struct rl_scan *j)
{
    size_t i;

    for (i = 0; i < j->n_patterns; i++)
        free(j->patterns[i]);
    free(j->patterns);
    free(j->match);
    free(j);
}

/* Frees the job once nothing can call back into it. */
static void
job_release(struct rl_scan *j)
{
    if (j->finished && !j->scan_out && !j->peeking)
        job_free(j);
}

/* Runs the callback once; the job goes when its last reply is in. */
static void
finish(struct rl_scan *j, int status)
{
    struct rl_limiter *rl = j->rl;

    if (j->finished)
        return;
    j->finished = true;
    TAILQ_REMOVE(&rl->scans, j, link);
    if (j->timer != NULL)
        event_free(j->timer);
    j->timer = NULL;
    rl->in_callback++;
    j->cb(status, j->cached, j->arg);
    rl->in_callback--;
    job_release(j);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rl_scan *j = arg;

    (void)fd;
    (void)what;
    if (j->scan_out)
        j->rl->ctr.v[RL_METRIC_TIMEOUTS]++;
    if (j->scan_out || j->status != RL_OK)
        finish(j, j->scan_out ? RL_ERR_TIMEOUT : j->status);
    else
        scan_next(j); /* the connection may be ready now */
}

/* ---- one SCAN step ---- */

static bool
matches(const struct rl_scan *j, const char *key)
{
    size_t i;

    for (i = 0; i < j->n_patterns; i++)
        if (fnmatch(j->patterns[i], key, 0) == 0)
            return true;
    return false;
}

static void
peeks_done(int status, size_t cached, void *arg)
{
    struct rl_scan *j = arg;

    j->peeking = false;
    j->cached += cached;
    if (j->finished) {
        job_release(j);
        return;
    }
    if (status != RL_OK)
        finish(j, status);
    else if (strcmp(j->cursor, "0") == 0 || j->found >= j->preload_max)
        finish(j, RL_OK);
    else
        scan_next(j);
}

/* Appends the user key of Redis key e to reqs when a pattern takes it;
   keys holds the decoded bytes (RL_KEY_MAX + 1 per entry). */
static void
take_key(struct rl_scan *j, const redisReply *e, rl_request *reqs,
         char *keys, size_t *n)
{
    char *key = keys + *n * (RL_KEY_MAX + 1);
    size_t len;

    if (e->type != REDIS_REPLY_STRING || j->found >= j->preload_max)
        return;
    len = rl__redis_key_decode(j->rl->cfg.redis.key_prefix,
                               j->rl->cfg.algorithm, e->str, e->len, key);
    if (len == 0 || memchr(key, '\0', len) != NULL)
        return;
    key[len] = '\0';
    if (!matches(j, key))
        return;
    reqs[*n].key = key;
    reqs[*n].max_requests = j->max;
    reqs[*n].window_ms = j->window;
    reqs[*n].cost = j->cost;
    (*n)++;
    j->found++;
}

/* Peeks at the keys of one SCAN reply's page that match; RL_OK when
   there were none or the peeks are out. */
static int
peek_page(struct rl_scan *j, const redisReply *page)
{
    rl_request *reqs;
    char *keys;
    size_t i, n = 0;
    int rc = RL_OK;

    if (page->elements == 0)
        return RL_OK;
    reqs = malloc(page->elements * sizeof(*reqs));
    keys = malloc(page->elements * (RL_KEY_MAX + 1));
    if (reqs == NULL || keys == NULL) {
        rc = RL_ERR_NOMEM;
        goto out_free;
    }
    for (i = 0; i < page->elements; i++)
        take_key(j, page->element[i], reqs, keys, &n);
    if (n > 0) {
        rc = warm_start(j->rl, reqs, n, peeks_done, j);
        j->peeking = rc == RL_OK;
    }
out_free:
    free(reqs);
    free(keys);
    return rc;
}

static bool
page_valid(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
           r->element[0]->type == REDIS_REPLY_STRING &&
           r->element[0]->len > 0 && r->element[0]->len < 24 &&
           strspn(r->element[0]->str, "0123456789") ==
               r->element[0]->len &&
           r->element[1]->type == REDIS_REPLY_ARRAY;
}

static void
scan_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rl_scan *j = priv;
    redisReply *r = reply;
    int rc;

    (void)ac;
    j->scan_out = false;
    if (j->finished) {
        job_release(j);
        return; /* timed out, or the limiter is gone */
    }
    evtimer_del(j->timer);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        finish(j, RL_ERR_REDIS);
        return;
    }
    if (!page_valid(r)) {
        finish(j, RL_ERR_PROTOCOL);
        return;
    }
    memcpy(j->cursor, r->element[0]->str, r->element[0]->len);
    j->cursor[r->element[0]->len] = '\0';
    rc = peek_page(j, r->element[1]);
    if (rc != RL_OK)
        finish(j, rc);
    else if (!j->peeking)
        peeks_done(RL_OK, 0, j);
}

static void
scan_next(struct rl_scan *j)
{
    const char *argv[6] = {"SCAN", j->cursor, "MATCH", j->match, "COUNT",
                           SCAN_COUNT};
    size_t len[6];
    int i;

    if (j->rl->freeing) {
        finish(j, RL_ERR_SHUTDOWN);
        return;
    }
    for (i = 0; i < 6; i++)
        len[i] = strlen(argv[i]);
    len[3] = j->match_len;
    if (rl__redis_command(j->rl, scan_reply_cb, j, 6, argv, len) != RL_OK) {
        /* Connecting (a limiter just made): wait for it, a while. */
        if (rl__redis_conn_state(j->rl) == RL_REDIS_CONNECTING &&
            j->waited_ms < j->rl->cfg.redis.connect_timeout_ms) {
            j->waited_ms += 10;
            rl__timer_add_ms(j->timer, 10);
            return;
        }
        j->status = RL_ERR_REDIS;
        rl__timer_add_ms(j->timer, 0); /* reported from the loop */
        return;
    }
    j->scan_out = true;
    rl__timer_add_ms(j->timer, j->rl->cfg.redis.command_timeout_ms);
}

/* ---- warm-up by patterns ---- */

static int
copy_patterns(struct rl_scan *j, const char *const *patterns, size_t n)
{
    size_t i;

    j->patterns = calloc(n, sizeof(*j->patterns));
    if (j->patterns == NULL)
        return RL_ERR_NOMEM;
    j->n_patterns = n;
    for (i = 0; i < n; i++) {
        if (patterns[i] == NULL)
            return RL_ERR_INVALID;
        j->patterns[i] = strdup(patterns[i]);
        if (j->patterns[i] == NULL)
            return RL_ERR_NOMEM;
    }
    return RL_OK;
}

static int
job_setup(struct rl_scan *j, const char *const *patterns, size_t n)
{
    const char *prefix = j->rl->cfg.redis.key_prefix;
    int rc = copy_patterns(j, patterns, n);

    if (rc != RL_OK)
        return rc;
    j->match = malloc(2 * strlen(prefix) + 8);
    if (j->match == NULL)
        return RL_ERR_NOMEM;
    j->match_len = rl__redis_key_match(prefix, j->rl->cfg.algorithm,
                                       j->match);
    j->match[j->match_len] = '\0';
    j->timer = evtimer_new(j->rl->base, timer_cb, j);
    return j->timer == NULL ? RL_ERR_NOMEM : RL_OK;
}

RL_EXTERN int
rl_cache_warm_pattern_async(rl_limiter *rl, const char *const *patterns,
                            size_t n, int64_t max_requests,
                            int64_t window_ms, int64_t cost,
                            size_t preload_max, rl_warm_cb cb, void *arg)
{
    struct rl_scan *j;
    int rc;

    if (rl == NULL || rl->cache == NULL || patterns == NULL || n == 0 ||
        cb == NULL || preload_max == 0 ||
        rl__validate_check(rl->cfg.algorithm, "k", 1, max_requests,
                           window_ms, cost == 0 ? 1 : cost) != RL_OK)
        return RL_ERR_INVALID;
    if (rl->freeing)
        return RL_ERR_SHUTDOWN;
    j = calloc(1, sizeof(*j));
    if (j == NULL)
        return RL_ERR_NOMEM;
    j->rl = rl;
    j->max = max_requests;
    j->window = window_ms;
    j->cost = cost == 0 ? 1 : cost;
    j->preload_max = preload_max;
    j->cb = cb;
    j->arg = arg;
    strcpy(j->cursor, "0");
    rc = job_setup(j, patterns, n);
    if (rc != RL_OK) {
        if (j->timer != NULL)
            event_free(j->timer);
        job_free(j);
        return rc;
    }
    TAILQ_INSERT_TAIL(&rl->scans, j, link);
    scan_next(j);
    return RL_OK;
}

/* rl_free: every job still walking reports RL_ERR_SHUTDOWN. */
void
rl__warm_shutdown(struct rl_limiter *rl)
{
    while (!TAILQ_EMPTY(&rl->scans))
        finish(TAILQ_FIRST(&rl->scans), RL_ERR_SHUTDOWN);
}
