/*
 * algo.c: the front of the pure algorithms: the dispatch by rl_algorithm,
 * the release and copy of a state, peeks and groups (the C twins of the
 * scripts' call modes), and the names RATE_LIMIT_ALGORITHM uses.
 *
 * Each algorithm lives in its own file (algo_<name>.c), the C twin of
 * lua/<name>.lua; docs/algorithms.md is the specification both follow.
 * Nothing here reads a clock, does I/O or keeps a global that changes, so
 * the local backend, the fallback and the tests all get the same answers
 * for the same inputs.
 */
#include <stdlib.h>
#include <string.h>

#include "algo.h"

/* Indexed by rl_algorithm; the names of the algorithm table of API.md. */
static const char *const names[] = {
    [RL_SLIDING_WINDOW] = "sliding-window",
    [RL_TOKEN_BUCKET] = "token-bucket",
    [RL_FIXED_WINDOW] = "fixed-window",
    [RL_SLIDING_LOG] = "sliding-log",
    [RL_GCRA] = "gcra",
};

#define N_NAMES (sizeof(names) / sizeof(names[0]))

/*
 * Decides one check with the algorithm `alg`.  Returns what the algorithm
 * returns, or RL_ERR_INVALID (state and *out untouched) for a value that
 * is not an rl_algorithm.
 */
int
rl__algo_decide(rl_algorithm alg, rl_algo_state *st, int64_t now_ms,
                int64_t max, int64_t window, int64_t cost, rl_decision *out)
{
    switch (alg) {
    case RL_SLIDING_WINDOW:
        return rl__algo_sliding_window(st, now_ms, max, window, cost, out);
    case RL_TOKEN_BUCKET:
        return rl__algo_token_bucket(st, now_ms, max, window, cost, out);
    case RL_FIXED_WINDOW:
        return rl__algo_fixed_window(st, now_ms, max, window, cost, out);
    case RL_SLIDING_LOG:
        return rl__algo_sliding_log(st, now_ms, max, window, cost, out);
    case RL_GCRA:
        return rl__algo_gcra(st, now_ms, max, window, cost, out);
    }
    return RL_ERR_INVALID;
}

/* Frees the sliding log's ring, if any, and zeroes the state (fresh). */
void
rl__algo_state_clear(rl_algo_state *st)
{
    if (st->log) {
        free(st->log->e);
        free(st->log);
    }
    memset(st, 0, sizeof(*st));
}

/* ---- copies and peeks ---- */

int
rl__algo_state_copy(rl_algo_state *dst, const rl_algo_state *src)
{
    const struct rl_log *l = src->log;
    struct rl_log *c;

    *dst = *src;
    dst->log = NULL;
    if (!l)
        return RL_OK;
    c = malloc(sizeof(*c));
    if (!c)
        goto out_nomem;
    *c = *l;
    c->e = NULL;
    if (l->cap > 0) {
        c->e = malloc((size_t)l->cap * sizeof(*c->e));
        if (!c->e)
            goto out_free_log;
        memcpy(c->e, l->e, (size_t)l->cap * sizeof(*c->e));
    }
    dst->log = c;
    return RL_OK;

out_free_log:
    free(c);
out_nomem:
    memset(dst, 0, sizeof(*dst));
    return RL_ERR_NOMEM;
}

/* Decides on a copy, released before returning. */
int
rl__algo_peek(rl_algorithm alg, const rl_algo_state *st, int64_t now,
              int64_t max, int64_t window, int64_t cost, rl_decision *out)
{
    rl_algo_state c;
    int rc;

    rc = rl__algo_state_copy(&c, st);
    if (rc != RL_OK)
        return rc;
    rc = rl__algo_decide(alg, &c, now, max, window, cost, out);
    rl__algo_state_clear(&c);
    return rc;
}

/* ---- groups ---- */

/*
 * A group at work: one copy per distinct state (checks on one key share
 * it), on which the checks are decided before anything is kept.
 */
struct group {
    rl_algo_state copy[RL_CHECK_ALL_MAX];
    rl_algo_state *orig[RL_CHECK_ALL_MAX]; /* what copy[j] copies */
    size_t of[RL_CHECK_ALL_MAX];           /* check i decides on copy[of[i]] */
    size_t n;                              /* copies made */
};

static void
group_release(struct group *g)
{
    size_t j;

    for (j = 0; j < g->n; j++)
        rl__algo_state_clear(&g->copy[j]);
}

/*
 * Copies each distinct state of st[0..n-1] once.  RL_OK or RL_ERR_NOMEM
 * (the copies made so far are g's, to release).
 */
static int
group_copy(struct group *g, rl_algo_state *const st[], size_t n)
{
    size_t i, j;
    int rc;

    g->n = 0;
    for (i = 0; i < n; i++) {
        for (j = 0; j < g->n && g->orig[j] != st[i]; j++)
            continue;
        if (j == g->n) {
            rc = rl__algo_state_copy(&g->copy[j], st[i]);
            if (rc != RL_OK)
                return rc;
            g->orig[j] = st[i];
            g->n++;
        }
        g->of[i] = j;
    }
    return RL_OK;
}

/* The charged copies replace the states; the copies then own nothing. */
static void
group_keep(struct group *g)
{
    size_t j;

    for (j = 0; j < g->n; j++) {
        rl__algo_state_clear(g->orig[j]);
        *g->orig[j] = g->copy[j];
        memset(&g->copy[j], 0, sizeof(g->copy[j]));
    }
}

/*
 * When a state, untouched, may be dropped: a check of cost 0 with the
 * limit that wrote it tells (the state's own expiry); a fresh one now.
 */
static int
untouched_expiry(rl_algorithm alg, const rl_algo_state *st, int64_t now,
                 int64_t *expire_at)
{
    rl_decision d;
    int rc;

    *expire_at = now;
    if (st->max == 0)
        return RL_OK;
    rc = rl__algo_peek(alg, st, now, st->max, st->window, 0, &d);
    if (rc == RL_OK)
        *expire_at = d.expire_at_ms;
    return rc;
}

/*
 * The results of a denied group: the deniers keep their decisions (dec),
 * the others get a check of cost 0 on the untouched state.
 */
static int
group_denied(rl_algorithm alg, const struct group *g, size_t n, int64_t now,
             const int64_t max[], const int64_t window[],
             const rl_decision dec[], rl_decision out[])
{
    int64_t expire[RL_CHECK_ALL_MAX];
    size_t i, j;
    int rc = RL_OK;

    for (j = 0; j < g->n && rc == RL_OK; j++)
        rc = untouched_expiry(alg, g->orig[j], now, &expire[j]);
    for (i = 0; i < n && rc == RL_OK; i++) {
        out[i] = dec[i];
        if (!dec[i].allowed)
            continue;
        rc = rl__algo_peek(alg, g->orig[g->of[i]], now, max[i], window[i], 0,
                           &out[i]);
        out[i].allowed = false;
        out[i].retry_after_ms = 0;
    }
    if (rc != RL_OK)
        return rc;
    for (i = 0; i < n; i++)
        out[i].expire_at_ms = expire[g->of[i]];
    return RL_OK;
}

/*
 * Decides every check on the copies, in order; keeps the copies when all
 * admit, else computes the denied results from the untouched states.
 */
int
rl__algo_group(rl_algorithm alg, rl_algo_state *const st[], size_t n,
               int64_t now, const int64_t max[], const int64_t window[],
               const int64_t cost[], rl_decision out[], bool *admitted)
{
    struct group g;
    rl_decision dec[RL_CHECK_ALL_MAX];
    bool all = true;
    size_t i;
    int rc;

    if (n > RL_CHECK_ALL_MAX || rl__algo_name(alg) == NULL)
        return RL_ERR_INVALID;
    rc = group_copy(&g, st, n);
    for (i = 0; i < n && rc == RL_OK; i++) {
        rc = rl__algo_decide(alg, &g.copy[g.of[i]], now, max[i], window[i],
                             cost[i], &dec[i]);
        all = all && dec[i].allowed;
    }
    if (rc != RL_OK)
        goto out_release;
    if (all) {
        group_keep(&g);
        for (i = 0; i < n; i++)
            out[i] = dec[i];
    } else {
        rc = group_denied(alg, &g, n, now, max, window, dec, out);
    }
    if (rc == RL_OK)
        *admitted = all;
out_release:
    group_release(&g);
    return rc;
}

/* ---- names ---- */

const char *
rl__algo_name(rl_algorithm alg)
{
    if ((unsigned)alg >= N_NAMES)
        return NULL;
    return names[alg];
}

/* Exact, case-sensitive match of one of the names above. */
int
rl__algo_parse(const char *name, rl_algorithm *out)
{
    size_t i;

    if (!name)
        return RL_ERR_INVALID;
    for (i = 0; i < N_NAMES; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (rl_algorithm)i;
            return RL_OK;
        }
    }
    return RL_ERR_INVALID;
}

/* ---- the public names ---- */

RL_EXTERN const char *
rl_algorithm_name(int alg)
{
    return rl__algo_name((rl_algorithm)alg);
}

RL_EXTERN int
rl_algorithm_parse(const char *name, rl_algorithm *out)
{
    if (out == NULL)
        return RL_ERR_INVALID;
    return rl__algo_parse(name, out);
}
