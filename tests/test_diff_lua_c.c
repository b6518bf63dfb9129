/*
 * test_diff_lua_c.c: the Lua scripts (lua/<name>.lua) against their C
 * twins (src/algo_<name>.c), in a real redis-server the fixture starts.
 *
 * docs/algorithms.md asks both twins for the same decision, to the unit,
 * from the same state, inputs and time.  Each test draws a long sequence
 * of checks from a fixed-seed generator: a few hot keys and many cold
 * ones, limits that change (max up to 10^9, windows from 1 ms to 10^11 ms,
 * cost up to max), a clock that stands, creeps, jumps and steps back.  The
 * sequence runs through rl__algo_decide (one rl_algo_state per user key)
 * and through EVALSHA of the script the library embeds (rl__script_for),
 * with the time explicit, and allowed, remaining, reset_ms and
 * retry_after_ms must be equal for every check.  Single checks, batches
 * of up to 64 (one key several times in a batch included), the Redis TIME
 * mode (where an unchanged state is not written and an unchanged expiry is
 * kept), a sliding log of thousands of entries, and the call modes
 * (docs/algorithms.md, section 10): groups of checks all or nothing
 * against rl__algo_group (with the time explicit and with Redis TIME),
 * peeks against decisions on copies (and no write on the server),
 * malformed modes refused.  After every command the PTTL of each key it
 * wrote must be expire_at - now + the TTL buffer, less the real time the
 * command and the PTTL took; at the end of a test each key holds the C
 * twin's state, encoded as docs/redis.md says.
 *
 * The buffer is an hour, so no key expires in real time during a test
 * and the Redis state stays the C state, whatever the simulated clock does.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "check_main.h"
#include "fixture_redis.h"
#include "redis.h"

#define N_HOT 4
#define N_KEYS 3000
#define BATCH_MAX 64
#define BUFFER_MS INT64_C(3600000)
#define PREFIX "rl-diff"

#define E6 INT64_C(1000000)
#define E9 INT64_C(1000000000)
#define YEAR_MS INT64_C(31536000000)
#define START_MS INT64_C(1700000000000)

/*
 * Check's ck_assert records every pass (a write to the runner), too slow
 * for the loops below; REQUIRE costs nothing until it fails.
 */
#define REQUIRE(cond) do {                                               \
        if (!(cond))                                                     \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);        \
    } while (0)

/* ---- a fixed-seed generator (splitmix64) ---- */

static uint64_t rng;

static uint64_t
next(void)
{
    uint64_t z = (rng += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static int64_t
uniform(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(next() % (uint64_t)(hi - lo + 1));
}

static bool
chance(int percent)
{
    return next() % 100 < (uint64_t)percent;
}

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the run: server, script, C states ---- */

struct check {
    int key;
    int64_t max, window, cost;
};

struct limit {
    int64_t max, window;
};

/* One differential run of one algorithm. */
struct diff {
    rl_algorithm alg;
    redisContext *c;
    const struct rl_script *script;
    int64_t now;
    long step;                     /* commands sent, for messages */
    long allowed, denied;
    rl_algo_state st[N_KEYS];      /* the C twin's state per user key */
    struct limit lim[N_KEYS];      /* the limit each key has now */
    char *rkey[N_KEYS];            /* its Redis key (src/keys.c) */
    size_t rkeylen[N_KEYS];
};

static struct fx_redis *srv;

static void
setup(void)
{
    srv = fx_redis_start(NULL);
    ck_assert_ptr_nonnull(srv);
}

static void
teardown(void)
{
    fx_redis_stop(srv);
    srv = NULL;
}

/* Names of about 20 bytes; every seventh has a hash tag of its own. */
static void
key_name(int i, char *name, size_t size)
{
    if (i < N_HOT)
        snprintf(name, size, "hot-user:%011d", i);
    else if (i % 7 == 0)
        snprintf(name, size, "{grp%d}:cold:%08d", i % 5, i);
    else
        snprintf(name, size, "cold-user:%010d", i);
}

/* Connects, loads the algorithm's script, names the keys. */
static struct diff *
diff_new(rl_algorithm alg, uint64_t seed)
{
    struct diff *d = calloc(1, sizeof(*d));
    char name[64], buf[RL_REDIS_KEY_MAX];
    redisReply *r;
    int i;

    ck_assert_ptr_nonnull(d);
    rng = seed;
    d->alg = alg;
    d->now = START_MS;
    d->c = fx_redis_connect(srv, 10000);
    ck_assert_ptr_nonnull(d->c);
    rl__scripts_init();
    d->script = rl__script_for(alg);
    r = redisCommand(d->c, "SCRIPT LOAD %b", d->script->text,
                     d->script->len);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    /* The embedded text is the file byte for byte: same SHA-1 both ways. */
    ck_assert_str_eq(r->str, d->script->sha);
    freeReplyObject(r);
    for (i = 0; i < N_KEYS; i++) {
        key_name(i, name, sizeof(name));
        d->rkeylen[i] = rl__redis_key(PREFIX, alg, name, strlen(name), buf);
        d->rkey[i] = malloc(d->rkeylen[i]);
        ck_assert_ptr_nonnull(d->rkey[i]);
        memcpy(d->rkey[i], buf, d->rkeylen[i]);
    }
    return d;
}

static void
diff_free(struct diff *d)
{
    int i;

    for (i = 0; i < N_KEYS; i++) {
        rl__algo_state_clear(&d->st[i]);
        free(d->rkey[i]);
    }
    redisFree(d->c);
    free(d);
}

/* ---- drawing checks ---- */

static int64_t
draw_max(rl_algorithm alg)
{
    int64_t cap = alg == RL_SLIDING_LOG ? RL_SLIDING_LOG_MAX
                                        : RL_MAX_REQUESTS_MAX;
    int64_t m;
    int r = (int)(next() % 100);

    if (r < 40)
        m = uniform(1, 10);
    else if (r < 70)
        m = uniform(1, 1000);
    else if (r < 85)
        m = uniform(1, E6);
    else if (r < 95)
        m = uniform(1, RL_MAX_REQUESTS_MAX);
    else
        m = cap;
    return m < cap ? m : cap;
}

static int64_t
draw_window(void)
{
    int r = (int)(next() % 100);

    if (r < 15)
        return 1;
    if (r < 40)
        return uniform(1, 1000);
    if (r < 65)
        return uniform(1, E6);
    if (r < 80)
        return uniform(1, E9);
    if (r < 88)
        return YEAR_MS;
    if (r < 94)
        return RL_WINDOW_MS_MAX;
    return uniform(1, RL_WINDOW_MS_MAX);
}

static int64_t
draw_cost(int64_t max)
{
    int r = (int)(next() % 100);

    if (r < 60)
        return 1;
    if (r < 85)
        return uniform(1, max < 10 ? max : 10);
    if (r < 95)
        return uniform(1, max);
    return max;
}

/* Mostly a hot key. */
static int
draw_key(void)
{
    if (chance(60))
        return (int)uniform(0, N_HOT - 1);
    return (int)uniform(N_HOT, N_KEYS - 1);
}

/* A check of key with its limit, which changes now and then. */
static void
draw_check(struct diff *d, int key, struct check *ck)
{
    struct limit *l = &d->lim[key];

    if (l->max == 0 || chance(4)) {
        l->max = draw_max(d->alg);
        l->window = draw_window();
    }
    ck->key = key;
    ck->max = l->max;
    ck->window = l->window;
    ck->cost = draw_cost(l->max);
}

/*
 * The clock: stands, creeps, jumps up to a window of 10^11 ms, or steps
 * back; it stays within [0, RL_NOW_MAX] (at the top it stands).
 */
static void
advance(struct diff *d)
{
    int r = (int)(next() % 100);
    int64_t step;

    if (r < 25)
        step = 0;
    else if (r < 60)
        step = uniform(1, 10);
    else if (r < 80)
        step = uniform(1, 1000);
    else if (r < 90)
        step = uniform(1, E6);
    else if (r < 94)
        step = uniform(1, RL_WINDOW_MS_MAX);
    else if (r < 98)
        step = -uniform(1, 1000);
    else
        step = -uniform(1, 100 * E6);
    d->now += step;
    if (d->now < 0)
        d->now = 0;
    if (d->now > RL_NOW_MAX)
        d->now = RL_NOW_MAX;
}

/* ---- one EVALSHA ---- */

/* Whether the n checks share one max, window and cost. */
static bool
one_limit(const struct check *cks, int n)
{
    int i;

    for (i = 1; i < n; i++)
        if (cks[i].max != cks[0].max || cks[i].window != cks[0].window ||
            cks[i].cost != cks[0].cost)
            return false;
    return true;
}

/*
 * EVALSHA sha n key1..keyn now ttl_buffer_ms max1 window1 cost1 ...
 * [mode], as src/pipeline.c sends it; now_arg NULL means d->now, mode
 * NULL sends none.  Checks that share one limit, with a mode, go as
 * src/pipeline.c sends them then: one triple for all (lua/common.lua).
 * Returns the reply, whatever it is.
 */
static redisReply *
send_checks(struct diff *d, const struct check *cks, int n,
            const char *now_arg, const char *mode)
{
    const char *argv[6 + 4 * BATCH_MAX];
    size_t len[6 + 4 * BATCH_MAX];
    char num[3 + 3 * BATCH_MAX][24];
    int argc = 0, m = 0, i, triples;
    redisReply *r;

#define ARG(s, l) (argv[argc] = (s), len[argc] = (l), argc++)
#define NUM(v) (snprintf(num[m], sizeof(num[m]), "%" PRId64, (int64_t)(v)), \
                ARG(num[m], strlen(num[m])), m++)
    ARG("EVALSHA", 7);
    ARG(d->script->sha, 40);
    NUM(n);
    for (i = 0; i < n; i++)
        ARG(d->rkey[cks[i].key], d->rkeylen[cks[i].key]);
    if (now_arg)
        ARG(now_arg, strlen(now_arg));
    else
        NUM(d->now);
    NUM(BUFFER_MS);
    triples = mode != NULL && one_limit(cks, n) ? 1 : n;
    for (i = 0; i < triples; i++) {
        NUM(cks[i].max);
        NUM(cks[i].window);
        NUM(cks[i].cost);
    }
    if (mode)
        ARG(mode, strlen(mode));
#undef NUM
#undef ARG
    r = redisCommandArgv(d->c, argc, argv, len);
    REQUIRE(r != NULL);
    d->step++;
    return r;
}

/* send_checks, the reply checked for shape: 4n integers. */
static redisReply *
evalsha(struct diff *d, const struct check *cks, int n, const char *now_arg,
        const char *mode)
{
    redisReply *r = send_checks(d, cks, n, now_arg, mode);
    int i;

    if (r->type == REDIS_REPLY_ERROR)
        ck_abort_msg("%s: %s", d->script->name, r->str);
    REQUIRE(r->type == REDIS_REPLY_ARRAY);
    REQUIRE(r->elements == (size_t)n * 4);
    for (i = 0; i < 4 * n; i++)
        REQUIRE(r->element[i]->type == REDIS_REPLY_INTEGER);
    return r;
}

static bool
same(const rl_decision *w, redisReply **e)
{
    return e[0]->integer == (w->allowed ? 1 : 0) &&
           e[1]->integer == w->remaining && e[2]->integer == w->reset_ms &&
           e[3]->integer == w->retry_after_ms;
}

static void
require_same(const struct diff *d, const struct check *ck, int at,
             const rl_decision *w, redisReply **e)
{
    if (same(w, e))
        return;
    ck_abort_msg("%s, command %ld, check %d: key %d now %" PRId64
                 " max %" PRId64 " window %" PRId64 " cost %" PRId64
                 ": C %d %" PRId64 " %" PRId64 " %" PRId64
                 ", Lua %lld %lld %lld %lld", d->script->name, d->step, at,
                 ck->key, d->now, ck->max, ck->window, ck->cost,
                 w->allowed, w->remaining, w->reset_ms, w->retry_after_ms,
                 e[0]->integer, e[1]->integer, e[2]->integer,
                 e[3]->integer);
}

/*
 * The key's PTTL is expire_at - now + buffer, less the real time gone
 * since the command was sent (t0) and a ms of rounding.
 */
static void
require_pttl(struct diff *d, int key, int64_t expire_at, int64_t t0)
{
    int64_t want = expire_at - d->now + BUFFER_MS, waited;
    redisReply *r;

    r = redisCommand(d->c, "PTTL %b", d->rkey[key], d->rkeylen[key]);
    waited = mono_ms() - t0;
    REQUIRE(r != NULL && r->type == REDIS_REPLY_INTEGER);
    if (r->integer > want || r->integer < want - waited - 2)
        ck_abort_msg("%s, command %ld: key %d PTTL %lld, want %" PRId64
                     " (less up to %" PRId64 " ms)", d->script->name,
                     d->step, key, r->integer, want, waited + 2);
    freeReplyObject(r);
}

/*
 * Sends n checks at d->now with the mode (NULL: none) and requires Lua's
 * answers to be want[]; returns the real ms at which it sent them.
 */
static int64_t
require_answers(struct diff *d, const struct check *cks, int n,
                const char *mode, const rl_decision *want)
{
    int64_t t0 = mono_ms();
    redisReply *r = evalsha(d, cks, n, NULL, mode);
    int i;

    for (i = 0; i < n; i++)
        require_same(d, &cks[i], i, &want[i], r->element + 4 * i);
    freeReplyObject(r);
    return t0;
}

/*
 * Runs n checks at d->now through both twins, in order, as one EVALSHA
 * (with the mode given: NULL sends none, "" the empty one), and compares
 * every decision and the expiry of every key written.
 */
static void
run_batch(struct diff *d, const struct check *cks, int n, const char *mode)
{
    rl_decision want[BATCH_MAX];
    int64_t t0;
    int i, j;

    memset(want, 0, sizeof(want));
    for (i = 0; i < n; i++) {
        REQUIRE(rl__algo_decide(d->alg, &d->st[cks[i].key], d->now,
                                cks[i].max, cks[i].window, cks[i].cost,
                                &want[i]) == RL_OK);
        if (want[i].allowed)
            d->allowed++;
        else
            d->denied++;
    }
    t0 = require_answers(d, cks, n, mode, want);
    /* Each key's expiry comes from its last check of the batch. */
    for (i = 0; i < n; i++) {
        for (j = i + 1; j < n && cks[j].key != cks[i].key; j++)
            continue;
        if (j == n)
            require_pttl(d, cks[i].key, want[i].expire_at_ms, t0);
    }
}

/* ---- the stored state (docs/redis.md) ---- */

/* Reads a fixed-width decimal field of the sliding log. */
static int64_t
field(const char *p, int width)
{
    char buf[24];

    memcpy(buf, p, (size_t)width);
    buf[width] = '\0';
    return strtoll(buf, NULL, 10);
}

/*
 * Whether the sliding log v holds the C state's entries, sum, window and
 * oldest ts, as records head..n-1 and a trailer.
 */
static bool
log_matches(const rl_algo_state *st, const char *v, size_t len)
{
    const struct rl_log *l = st->log;
    const struct rl_log_entry *e;
    const char *tr = v + len - 46;
    int64_t head, n, i;

    if (len < 22 + 46 || (len - 46) % 22 != 0)
        return false;
    head = field(tr, 6);
    n = field(tr + 6, 6);
    if (n != (int64_t)(len - 46) / 22 || l == NULL ||
        n - head != (int64_t)l->len || field(tr + 12, 6) != l->sum ||
        field(tr + 18, 12) != st->window)
        return false;
    for (i = 0; i < n - head; i++) {
        e = &l->e[(l->head + i) % l->cap];
        if (field(v + (head + i) * 22, 16) != e->ts ||
            field(v + (head + i) * 22 + 16, 6) != e->cost)
            return false;
    }
    return field(tr + 30, 16) == l->e[l->head].ts;
}

/* Whether v (len bytes) is what the script stores for the C state. */
static bool
state_matches(const struct diff *d, const rl_algo_state *st, const char *v,
              size_t len)
{
    char want[128];

    if (v == NULL)
        return false;
    switch (d->alg) {
    case RL_FIXED_WINDOW:
        snprintf(want, sizeof(want), "%" PRId64 ":%" PRId64 ":%" PRId64,
                 st->v[0], st->v[1], st->window);
        break;
    case RL_SLIDING_WINDOW:
        snprintf(want, sizeof(want), "%" PRId64 ":%" PRId64 ":%" PRId64
                 ":%" PRId64, st->v[0], st->v[1], st->v[2], st->window);
        break;
    case RL_TOKEN_BUCKET:
        snprintf(want, sizeof(want), "%" PRId64 ":%" PRId64 ":%" PRId64
                 ":%" PRId64 ":%" PRId64, st->v[0], st->v[1], st->v[2],
                 st->max, st->window);
        break;
    case RL_GCRA:
        snprintf(want, sizeof(want), "%" PRId64 ":%" PRId64 ":%" PRId64,
                 st->v[0], st->v[1], st->max);
        break;
    case RL_SLIDING_LOG:
        return log_matches(st, v, len);
    }
    return strlen(want) == len && memcmp(want, v, len) == 0;
}

/* Reads a key's value: the reply (a nil one when there is none). */
static redisReply *
get_value(struct diff *d, int key)
{
    redisReply *r = redisCommand(d->c, "GET %b", d->rkey[key],
                                 d->rkeylen[key]);

    REQUIRE(r != NULL);
    REQUIRE(r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL);
    return r;
}

/* Every key the run used holds what the C twin holds. */
static void
require_states(struct diff *d)
{
    redisReply *r;
    int k;

    for (k = 0; k < N_KEYS; k++) {
        if (d->st[k].max == 0)
            continue;
        r = get_value(d, k);
        if (!state_matches(d, &d->st[k], r->str, r->len))
            ck_abort_msg("%s: key %d holds \"%.200s\"", d->script->name,
                         k, r->str ? r->str : "(nil)");
        freeReplyObject(r);
    }
}

/* Both outcomes came often enough for the comparison to mean something. */
static void
require_mixed(const struct diff *d)
{
    long total = d->allowed + d->denied;

    ck_assert_int_ge(d->allowed * 10, total);
    ck_assert_int_ge(d->denied * 20, total);
}

/* ---- the tests ---- */

/*
 * Single checks, one EVALSHA each: _i is 2 * algorithm + start, the
 * clock starting at 2023 or 5 * 10^12 ms below RL_NOW_MAX (it reaches the
 * top and stands there).
 */
START_TEST(single_checks)
{
    struct diff *d = diff_new((rl_algorithm)(_i / 2), 0xd1ff0000 + _i);
    struct check ck;
    int i;

    if (_i % 2)
        d->now = RL_NOW_MAX - 5000 * E9;
    for (i = 0; i < 4000; i++) {
        advance(d);
        draw_check(d, draw_key(), &ck);
        run_batch(d, &ck, 1, i % 2 ? "U" : NULL);
    }
    require_mixed(d);
    require_states(d);
    diff_free(d);
}
END_TEST

/* Whether key is one of the first n checks' keys. */
static bool
key_among(const struct check *cks, int n, int key)
{
    int i;

    for (i = 0; i < n; i++)
        if (cks[i].key == key)
            return true;
    return false;
}

/*
 * Batches of 1 to 64 checks at one time, keys often repeated; every third
 * batch gives all its checks one limit and goes with one triple for all.
 * Every fourth has no key twice and goes in mode 'U', as the client sends
 * such a batch (src/pipeline.c, keys_distinct).
 */
START_TEST(batches)
{
    struct diff *d = diff_new((rl_algorithm)_i, 0xd1ff0100 + _i);
    struct check cks[BATCH_MAX];
    int b, i, n, key, shared = 0, uniq = 0;
    bool distinct, one;

    for (b = 0; b < 240; b++) {
        advance(d);
        n = (int)uniform(1, BATCH_MAX);
        distinct = b % 4 == 1;
        one = b % 3 == 0; /* one limit for all: one triple */
        for (i = 0; i < n; i++) {
            if (distinct) {
                do
                    key = draw_key();
                while (key_among(cks, i, key));
            } else {
                key = i > 0 && chance(35) ? cks[uniform(0, i - 1)].key
                                          : draw_key();
            }
            draw_check(d, key, &cks[i]);
            if (one && i > 0) {
                cks[i].max = cks[0].max;
                cks[i].window = cks[0].window;
                cks[i].cost = cks[0].cost;
            }
        }
        shared += one && n > 1;
        uniq += distinct && n > 1;
        run_batch(d, cks, n, distinct ? "U" : one ? "" : NULL);
    }
    ck_assert_int_ge(shared, 60);
    ck_assert_int_ge(uniq, 50);
    require_mixed(d);
    require_states(d);
    diff_free(d);
}
END_TEST

/* Redis TIME as server time, read around the command. */
static int64_t
server_ms(struct diff *d)
{
    redisReply *r = redisCommand(d->c, "TIME");
    int64_t ms;

    REQUIRE(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    ms = strtoll(r->element[0]->str, NULL, 10) * 1000 +
         strtoll(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    return ms;
}

#define TIMED_MAX 3

/* EVALSHAs in TIME mode on one key, as the server and the test saw them. */
struct timed_run {
    int count;                           /* commands sent */
    const struct check *cks[TIMED_MAX];
    int n[TIMED_MAX];
    int64_t before[TIMED_MAX];           /* server time around each */
    int64_t after[TIMED_MAX];
    redisReply *r[TIMED_MAX];
    int64_t t0;                          /* real ms the last was sent */
    long long pttl;                      /* of the key, after the last */
    int64_t waited;                      /* real ms from t0 to the PTTL */
    redisReply *value;                   /* of the key, after the last */
};

/*
 * Whether the C twin, from a fresh state, run at now[b] for command b,
 * decides what Lua did and leaves the state Lua stored, and the key's
 * PTTL is what its last expire_at asks: less the time waited, give or take
 * the ms of an earlier write when the last command wrote nothing or kept
 * the expiry.
 */
static bool
c_agrees_at(struct diff *d, const struct timed_run *tr, const int64_t *now)
{
    rl_algo_state st;
    rl_decision w = {0};
    const struct check *ck;
    bool ok = true;
    int64_t want;
    int b, i;

    memset(&st, 0, sizeof(st));
    for (b = 0; b < tr->count && ok; b++) {
        for (i = 0; i < tr->n[b] && ok; i++) {
            ck = &tr->cks[b][i];
            REQUIRE(rl__algo_decide(d->alg, &st, now[b], ck->max,
                                    ck->window, ck->cost, &w) == RL_OK);
            ok = same(&w, tr->r[b]->element + 4 * i);
        }
    }
    ok = ok && state_matches(d, &st, tr->value->str, tr->value->len);
    rl__algo_state_clear(&st);
    want = w.expire_at_ms - now[tr->count - 1] + BUFFER_MS;
    return ok && tr->pttl <= want + 2 && tr->pttl >= want - tr->waited - 2;
}

/* Sends n checks with ARGV[1] empty, reading TIME before and after. */
static void
timed_send(struct diff *d, struct timed_run *tr, const struct check *cks,
           int n)
{
    int b = tr->count++;

    REQUIRE(b < TIMED_MAX);
    tr->cks[b] = cks;
    tr->n[b] = n;
    tr->before[b] = server_ms(d);
    tr->t0 = mono_ms();
    /* One check goes as the client sends it: mode 'U'. */
    tr->r[b] = evalsha(d, cks, n, "", n == 1 ? "U" : NULL);
    tr->after[b] = server_ms(d);
}

/*
 * Reads the key's PTTL and value, then looks for one ms per command,
 * within the TIME reads around it, at which the C twin agrees; frees the
 * run.
 */
static void
timed_verify(struct diff *d, struct timed_run *tr, int key, int round)
{
    int64_t now[TIMED_MAX];
    redisReply *p;
    bool found = false;
    int b;

    p = redisCommand(d->c, "PTTL %b", d->rkey[key], d->rkeylen[key]);
    tr->waited = mono_ms() - tr->t0;
    REQUIRE(p != NULL && p->type == REDIS_REPLY_INTEGER);
    tr->pttl = p->integer;
    freeReplyObject(p);
    tr->value = get_value(d, key);
    for (b = 0; b < tr->count; b++)
        now[b] = tr->before[b];
    /* An odometer over the candidate times. */
    while (!found) {
        found = c_agrees_at(d, tr, now);
        for (b = tr->count - 1; b >= 0 && ++now[b] > tr->after[b]; b--)
            now[b] = tr->before[b];
        if (b < 0)
            break;
    }
    if (!found)
        ck_abort_msg("%s, round %d: no times in [%" PRId64 ", %" PRId64
                     "] .. [%" PRId64 ", %" PRId64 "] give Lua's decisions, "
                     "value \"%.100s\" and PTTL %lld", d->script->name, round,
                     tr->before[0], tr->after[0], tr->before[tr->count - 1],
                     tr->after[tr->count - 1],
                     tr->value->str ? tr->value->str : "(nil)", tr->pttl);
    for (b = 0; b < tr->count; b++)
        freeReplyObject(tr->r[b]);
    freeReplyObject(tr->value);
}

/* Whether the server ran a write command (scripts' calls included). */
static long long
writes(void)
{
    return fx_redis_commandstat(srv, "set") +
           fx_redis_commandstat(srv, "setrange") +
           fx_redis_commandstat(srv, "pexpire");
}

/*
 * ARGV[1] empty: the script reads Redis TIME, once per run.  Per round, a
 * fresh key gets three checks in one EVALSHA (the third denied), then one
 * more check: both commands must match the C twin at one ms between the
 * TIME reads around each, and so must the key's value and PTTL.  A denial
 * that leaves the state as it was (same window) writes nothing.
 */
START_TEST(redis_time)
{
    struct diff *d = diff_new((rl_algorithm)_i, 0xd1ff0200 + _i);
    struct check first[3], second[1];
    struct timed_run tr;
    long long w0, skipped = 0;
    int round, i;

    /* round % 8: windows of 7 ms or a minute; the second command has the
       same limit, a new max, a new window, or a cost that passes. */
    for (round = 0; round < 40; round++) {
        for (i = 0; i < 3; i++) {
            first[i].key = N_HOT + round;
            first[i].max = 5;
            first[i].window = round % 2 ? 60000 : 7;
            first[i].cost = i == 2 ? 3 : 2;
        }
        second[0] = first[2];
        if (round % 8 / 2 == 1)
            second[0].max = 4;
        if (round % 8 / 2 == 2)
            second[0].window *= 2;
        if (round % 8 / 2 == 3)
            second[0].cost = 1;
        memset(&tr, 0, sizeof(tr));
        timed_send(d, &tr, first, 3);
        w0 = writes();
        timed_send(d, &tr, second, 1);
        if (round % 8 == 1 && writes() == w0)
            skipped++;
        timed_verify(d, &tr, first[0].key, round);
    }
    /* A denial within the minute under the same limit changes nothing
       (but the bucket's level, which moves with every ms); one of the
       five may straddle the minute. */
    if (d->alg != RL_TOKEN_BUCKET)
        ck_assert_int_ge(skipped, 4);
    diff_free(d);
}
END_TEST

/*
 * A key that comes twice in one call, with Redis TIME, after a change of
 * window to one of fewer digits whose first check lands on the expiry
 * the stored state had (window w after sw = 2w, the stored start w
 * before the new window's): the second check counts in the window the
 * first one left, and expire_at is the stored one, but the value is now
 * shorter than the one stored.  It must be written whole (SET), not over
 * the old one (SETRANGE, which would leave the old value's last byte).
 * The value Redis holds after the call is the C twin's, at one of the ms
 * between the TIME reads around the call.
 */
static const rl_algorithm setrange_algs[] = {RL_SLIDING_WINDOW,
                                             RL_FIXED_WINDOW};

START_TEST(shorter_value_after_a_window_change)
{
    struct diff *d = diff_new(setrange_algs[_i], 0xd1ff0400 + _i);
    const int64_t w = 50000, sw = 2 * w;
    struct check cks[2];
    rl_algo_state st0, st;
    rl_decision dec;
    redisReply *r, *v;
    int64_t before, after, t, s;
    char val[96];
    bool found = false;
    int i, key = N_HOT;

    /* Far enough from the end of the window for the call to stay in it. */
    for (i = 0; i < 40 && (server_ms(d) % w) > w - 3000; i++)
        usleep(100 * 1000);
    before = server_ms(d);
    ck_assert_int_le(before % w, w - 3000);
    s = before - before % w;
    memset(&st0, 0, sizeof(st0));
    st0.window = sw;
    st0.max = 1000; /* not fresh; the scripts keep no max for these two */
    if (d->alg == RL_FIXED_WINDOW) { /* expire_at: v0 + sw */
        st0.v[0] = s + w - sw;
        st0.v[1] = 10;
        snprintf(val, sizeof(val), "%" PRId64 ":10:%" PRId64, st0.v[0], sw);
    } else { /* sliding: v0 + 2 sw when cur > 0 */
        st0.v[0] = s + 2 * w - 2 * sw;
        st0.v[1] = 10;
        st0.v[2] = 10;
        snprintf(val, sizeof(val), "%" PRId64 ":10:10:%" PRId64, st0.v[0],
                 sw);
    }
    r = redisCommand(d->c, "SET %b %s PX 600000", d->rkey[key],
                     d->rkeylen[key], val);
    REQUIRE(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    for (i = 0; i < 2; i++) {
        cks[i].key = key;
        cks[i].max = 1000;
        cks[i].window = w;
        cks[i].cost = 1;
    }
    before = server_ms(d);
    r = evalsha(d, cks, 2, "", NULL);
    after = server_ms(d);
    v = get_value(d, key);
    for (t = before; t <= after && !found; t++) {
        memcpy(&st, &st0, sizeof(st));
        REQUIRE(rl__algo_decide(d->alg, &st, t, 1000, w, 1, &dec) == RL_OK);
        REQUIRE(rl__algo_decide(d->alg, &st, t, 1000, w, 1, &dec) == RL_OK);
        found = same(&dec, r->element + 4) &&
                state_matches(d, &st, v->str, v->len);
    }
    ck_assert_msg(found, "%s: stored \"%s\", then \"%.100s\"", d->script->name,
                  val, v->str ? v->str : "(nil)");
    freeReplyObject(v);
    freeReplyObject(r);
    diff_free(d);
}
END_TEST

/*
 * TIME mode across a window boundary: two checks pass in one window of
 * 200 ms; at the start of the next, a check is denied (the sliding
 * window's estimate still counts the previous window), then one passes.
 * The stored expiries change with the window: none may be kept.
 */
START_TEST(redis_time_rolls)
{
    struct diff *d = diff_new((rl_algorithm)_i, 0xd1ff0400 + _i);
    struct check first[2], second[1], third[1];
    struct timed_run tr;
    int64_t t;
    int round, i;

    for (round = 0; round < 3; round++) {
        for (i = 0; i < 2; i++) {
            first[i].key = N_HOT + round;
            first[i].max = 5;
            first[i].window = 200;
            first[i].cost = 2;
        }
        second[0] = first[0];
        second[0].cost = 3;
        third[0] = first[0];
        third[0].cost = 1;
        memset(&tr, 0, sizeof(tr));
        timed_send(d, &tr, first, 2);
        t = tr.after[0];
        while (server_ms(d) / 200 == t / 200)
            continue;
        timed_send(d, &tr, second, 1);
        timed_send(d, &tr, third, 1);
        timed_verify(d, &tr, first[0].key, round);
    }
    diff_free(d);
}
END_TEST

/* The integer reply of a command on one key ("PTTL", "STRLEN"). */
static long long
key_int(struct diff *d, const char *cmd, int key)
{
    redisReply *r = redisCommand(d->c, "%s %b", cmd, d->rkey[key],
                                 d->rkeylen[key]);
    long long v;

    REQUIRE(r != NULL && r->type == REDIS_REPLY_INTEGER);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

/* The sliding log's string: records of 22 bytes and a trailer of 46. */
static long long
log_records(struct diff *d, int key)
{
    long long len = key_int(d, "STRLEN", key);

    REQUIRE(len >= 22 + 46 && (len - 46) % 22 == 0);
    return (len - 46) / 22;
}

/* One phase of the long sliding log: a limit and how many commands. */
struct phase {
    int64_t max, window;
    int commands;
};

/*
 * A sliding log of thousands of entries: one key, busy, its log read in
 * chunks and cut as entries expire, through limit changes (a max below
 * the units in use makes every denial scan deep; a short window drops
 * thousands of entries at once), then logs of a few dozen entries that
 * are only partly read.  The stored records (expired ones not yet cut
 * included) never pass 1.5 times the entries.
 */
START_TEST(long_sliding_log)
{
    static const struct phase phases[] = {
        {5000, 10000, 1500}, {5000, 4000, 1000}, {2000, 4000, 800},
        {100000, 600000, 3000}, {3000, 600000, 600}, {7, 5, 300},
        {4000, 20000, 1000}, {60, 80, 1500}, {40, 120, 1500},
    };
    struct diff *d = diff_new(RL_SLIDING_LOG, 0xd1ff0300);
    struct check cks[4];
    const struct phase *ph;
    long long records, entries, most = 0;
    size_t p;
    int i, j, n;

    for (p = 0; p < sizeof(phases) / sizeof(phases[0]); p++) {
        ph = &phases[p];
        for (i = 0; i < ph->commands; i++) {
            d->now += uniform(0, 3);
            n = (int)uniform(1, 4);
            for (j = 0; j < n; j++) {
                cks[j].key = 0;
                cks[j].max = ph->max;
                cks[j].window = ph->window;
                cks[j].cost = chance(2) ? ph->max : uniform(1, 3);
            }
            run_batch(d, cks, n, NULL);
            records = log_records(d, 0);
            entries = d->st[0].log->len;
            if (2 * records > 3 * entries)
                ck_abort_msg("phase %zu: %lld records for %lld entries", p,
                             records, entries);
            if (entries > most)
                most = entries;
        }
    }
    ck_assert_int_ge(most, 2000);
    require_mixed(d);
    require_states(d);
    diff_free(d);
}
END_TEST

/* ---- the call modes: groups and peeks ---- */

/* Writes of any kind the server ran, scripts' calls included. */
static long long
any_writes(void)
{
    return writes() + fx_redis_commandstat(srv, "del");
}

/* Whether two C decisions give the same four answers. */
static bool
same_c(const rl_decision *a, const rl_decision *b)
{
    return a->allowed == b->allowed && a->remaining == b->remaining &&
           a->reset_ms == b->reset_ms &&
           a->retry_after_ms == b->retry_after_ms;
}

/*
 * Up to BATCH_MAX checks in groups of 1 to 8: a check takes a key of its
 * own group (40%), of an earlier group (20%) or a new draw (mostly a hot
 * key), so groups often share keys.  Returns the number of checks; the
 * sizes are sizes[0..*k-1].
 */
static int
draw_groups(struct diff *d, struct check *cks, int *sizes, int *k)
{
    int n = (int)uniform(1, BATCH_MAX), i = 0, g, j, key;

    *k = 0;
    while (i < n) {
        g = (int)uniform(1, 8);
        if (g > n - i)
            g = n - i;
        sizes[(*k)++] = g;
        for (j = i; j < i + g; j++) {
            if (j > i && chance(40))
                key = cks[uniform(i, j - 1)].key;
            else if (i > 0 && chance(20))
                key = cks[uniform(0, i - 1)].key;
            else
                key = draw_key();
            draw_check(d, key, &cks[j]);
        }
        i += g;
    }
    return n;
}

/*
 * Runs n checks as the groups sizes[0..k-1] through both twins: one
 * EVALSHA with the mode "g1,...,gk", and rl__algo_group per group.
 * Compares every answer, and the expiry of each key whose last check in
 * an admitted group wrote it.  Counts groups, admitted or denied.
 */
static void
run_groups(struct diff *d, const struct check *cks, int n, const int *sizes,
           int k)
{
    rl_algo_state *st[BATCH_MAX];
    int64_t max[BATCH_MAX], win[BATCH_MAX], cost[BATCH_MAX], t0;
    rl_decision want[BATCH_MAX];
    bool kept[BATCH_MAX], admitted = false;
    char mode[4 * BATCH_MAX];
    int a = 0, used = 0, g, i, j;

    for (i = 0; i < n; i++) {
        st[i] = &d->st[cks[i].key];
        max[i] = cks[i].max;
        win[i] = cks[i].window;
        cost[i] = cks[i].cost;
    }
    for (g = 0; g < k; a += sizes[g++]) {
        REQUIRE(rl__algo_group(d->alg, st + a, (size_t)sizes[g], d->now,
                               max + a, win + a, cost + a, want + a,
                               &admitted) == RL_OK);
        for (i = a; i < a + sizes[g]; i++)
            kept[i] = admitted;
        if (admitted)
            d->allowed++;
        else
            d->denied++;
        used += snprintf(mode + used, sizeof(mode) - (size_t)used, "%s%d",
                         g ? "," : "", sizes[g]);
    }
    t0 = require_answers(d, cks, n, mode, want);
    for (i = 0; i < n; i++) {
        for (j = i + 1; j < n && !(kept[j] && cks[j].key == cks[i].key); j++)
            continue;
        if (kept[i] && j == n)
            require_pttl(d, cks[i].key, want[i].expire_at_ms, t0);
    }
}

/*
 * Peeks n checks through both twins: one EVALSHA with the mode 'P', and
 * in C the checks decided in order on copies of the states (a key that
 * comes again sees what its earlier checks left), the first check of
 * each key by rl__algo_peek as well.  Every answer equal, the C states
 * unchanged, and the server ran no write.
 */
static void
run_peek(struct diff *d, const struct check *cks, int n)
{
    rl_algo_state copy[BATCH_MAX];
    rl_decision want[BATCH_MAX], p;
    int of[BATCH_MAX], ncopy = 0, i, j;
    const struct check *ck;
    long long w0;

    for (i = 0; i < n; i++) {
        ck = &cks[i];
        for (j = 0; j < i && cks[j].key != ck->key; j++)
            continue;
        of[i] = j < i ? of[j] : ncopy++;
        if (j == i) {
            REQUIRE(rl__algo_state_copy(&copy[of[i]], &d->st[ck->key]) ==
                    RL_OK);
            REQUIRE(rl__algo_peek(d->alg, &d->st[ck->key], d->now, ck->max,
                                  ck->window, ck->cost, &p) == RL_OK);
        }
        REQUIRE(rl__algo_decide(d->alg, &copy[of[i]], d->now, ck->max,
                                ck->window, ck->cost, &want[i]) == RL_OK);
        REQUIRE(j < i || same_c(&p, &want[i]));
        if (want[i].allowed)
            d->allowed++;
        else
            d->denied++;
    }
    w0 = any_writes();
    require_answers(d, cks, n, "P", want);
    REQUIRE(any_writes() == w0);
    for (i = 0; i < ncopy; i++)
        rl__algo_state_clear(&copy[i]);
}

/*
 * Random calls in the three modes: 60% groups of 1 to 8 checks that
 * often share keys, 25% peeks of the same shape, 15% the checks alone
 * with the mode '' sent; limits change, the clock jumps and steps back.
 * Both twins answer alike throughout, and at the end each key holds the
 * C twin's state.
 */
START_TEST(groups_and_peeks)
{
    struct diff *d = diff_new((rl_algorithm)_i, 0xd1ff0500 + _i);
    struct check cks[BATCH_MAX];
    int sizes[BATCH_MAX], b, n, k, r;

    for (b = 0; b < 400; b++) {
        advance(d);
        n = draw_groups(d, cks, sizes, &k);
        r = (int)uniform(0, 99);
        if (r < 60)
            run_groups(d, cks, n, sizes, k);
        else if (r < 85)
            run_peek(d, cks, n);
        else
            run_batch(d, cks, n, "");
    }
    require_mixed(d);
    require_states(d);
    diff_free(d);
}
END_TEST

#define SNAP_KEYS (N_HOT + 8)

/* What the server holds: DBSIZE, writes, keys 0..SNAP_KEYS-1. */
struct snapshot {
    long long dbsize, writes, pttl[SNAP_KEYS];
    redisReply *value[SNAP_KEYS];
    int64_t t0;
};

static long long
dbsize(struct diff *d)
{
    redisReply *r = redisCommand(d->c, "DBSIZE");
    long long n;

    REQUIRE(r != NULL && r->type == REDIS_REPLY_INTEGER);
    n = r->integer;
    freeReplyObject(r);
    return n;
}

static void
snap_take(struct diff *d, struct snapshot *s)
{
    int k;

    s->t0 = mono_ms();
    s->dbsize = dbsize(d);
    s->writes = any_writes();
    for (k = 0; k < SNAP_KEYS; k++) {
        s->pttl[k] = key_int(d, "PTTL", k);
        s->value[k] = get_value(d, k);
    }
}

/*
 * The server holds what it held: the same DBSIZE and values, each PTTL
 * less only the real time gone, and no write was run.  Frees s.
 */
static void
snap_require_same(struct diff *d, struct snapshot *s, const char *what)
{
    redisReply *v;
    long long ms, waited;
    int k;

    ck_assert_msg(any_writes() == s->writes, "%s: a write ran", what);
    ck_assert_msg(dbsize(d) == s->dbsize, "%s: DBSIZE changed", what);
    for (k = 0; k < SNAP_KEYS; k++) {
        v = get_value(d, k);
        ms = key_int(d, "PTTL", k);
        waited = mono_ms() - s->t0;
        ck_assert_msg(v->type == s->value[k]->type &&
                      v->len == s->value[k]->len &&
                      (v->len == 0 ||
                       memcmp(v->str, s->value[k]->str, v->len) == 0),
                      "%s: key %d changed", what, k);
        ck_assert_msg(s->pttl[k] < 0 ? ms == s->pttl[k]
                                     : ms <= s->pttl[k] &&
                                       ms >= s->pttl[k] - waited - 2,
                      "%s: key %d PTTL %lld, was %lld", what, k, ms,
                      s->pttl[k]);
        freeReplyObject(v);
        freeReplyObject(s->value[k]);
    }
}

/*
 * Gives keys 0..SNAP_KEYS-1 states (limit 5 per 1000 ms, the last four
 * keys fresh), then moves the clock 700 ms on: a check now would refill
 * the bucket and, 400 ms later, roll, prune or let go of every state.
 */
static void
snap_setup(struct diff *d)
{
    struct check cks[2 * SNAP_KEYS];
    int i;

    for (i = 0; i < 2 * (SNAP_KEYS - 4); i++) {
        cks[i].key = i % (SNAP_KEYS - 4);
        cks[i].max = 5;
        cks[i].window = 1000;
        cks[i].cost = i % 3 + 1;
    }
    run_batch(d, cks, 2 * (SNAP_KEYS - 4), NULL);
    d->now += 700;
}

/*
 * A peek writes nothing: over keys with states and fresh ones, checks
 * that pass and that are denied, keys repeated, new limits, the time
 * explicit (against the C twin) and Redis TIME, nothing on the server
 * changes: no write runs, DBSIZE, values and expiries stay.
 */
START_TEST(peek_writes_nothing)
{
    struct diff *d = diff_new((rl_algorithm)_i, 0xd1ff0600 + _i);
    struct check cks[3 * SNAP_KEYS];
    struct snapshot snap;
    redisReply *r;
    int i, round;

    snap_setup(d);
    snap_take(d, &snap);
    for (round = 0; round < 4; round++) {
        for (i = 0; i < 3 * SNAP_KEYS; i++) {
            cks[i].key = (int)uniform(0, SNAP_KEYS - 1);
            cks[i].max = round == 2 ? 3 : 5;
            cks[i].window = round == 3 ? 400 : 1000;
            cks[i].cost = uniform(1, cks[i].max);
        }
        run_peek(d, cks, 3 * SNAP_KEYS);
        r = evalsha(d, cks, 3 * SNAP_KEYS, "", "P");
        freeReplyObject(r);
        d->now += 400;
    }
    ck_assert_int_gt(d->allowed, 20);
    ck_assert_int_gt(d->denied, 20);
    snap_require_same(d, &snap, "peek");
    diff_free(d);
}
END_TEST

/*
 * A mode that is not '', 'U', 'P' or group lengths summing to n (digits,
 * each >= 1) is an error reply, and nothing is written; well-formed ones
 * run.
 */
START_TEST(bad_mode)
{
    static const char *const bad[] = {
        "0", "2", "4", "1,1", "1,1,2", "0,3", "3,0", "1,,2", ",3", "3,",
        ",", "a", "p", "PP", "P,3", "3P", "1.5,1.5", "-1,4", "+3", " 3",
        "3 ", "1;2", "0x3", "1e0,2", "2,1,0", "99999999999999999999",
        "u", "UU", "U,3", "3U", "PU",
    };
    static const char *const good[] = { "3", "1,2", "2,1", "1,1,1", "03" };
    struct diff *d = diff_new((rl_algorithm)_i, 0xd1ff0700 + _i);
    struct check cks[3];
    struct snapshot snap;
    redisReply *r;
    size_t i;

    snap_setup(d);
    for (i = 0; i < 3; i++) {
        cks[i].key = (int)i * 5;
        cks[i].max = 5;
        cks[i].window = 1000;
        cks[i].cost = 1;
    }
    snap_take(d, &snap);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = send_checks(d, cks, 3, NULL, bad[i]);
        ck_assert_msg(r->type == REDIS_REPLY_ERROR &&
                      strstr(r->str, "bad mode") != NULL,
                      "%s: mode \"%s\" ran", d->script->name, bad[i]);
        freeReplyObject(r);
    }
    snap_require_same(d, &snap, "bad mode");
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        r = evalsha(d, cks, 3, NULL, good[i]);
        freeReplyObject(r);
    }
    diff_free(d);
}
END_TEST

/* ---- groups with Redis TIME ---- */

#define TG_CMDS 3
#define TG_KEYS 3

/*
 * One command of a timed run: its checks on the run's keys (0..2), its
 * groups (k = 0: each check alone, no mode sent), the server time read
 * around it, and its reply.
 */
struct tg_cmd {
    struct check cks[4];
    int n, sizes[4], k;
    int64_t before, after;
    redisReply *r;
};

static void
tg_add(struct tg_cmd *cmd, int key, int64_t max, int64_t window,
       int64_t cost)
{
    struct check *ck = &cmd->cks[cmd->n++];

    ck->key = key;
    ck->max = max;
    ck->window = window;
    ck->cost = cost;
}

/*
 * Replays the commands in C, command c at now[c], groups through
 * rl__algo_group: whether every answer is Lua's and each key (rkeys[i],
 * state i) ends holding what Lua stored (vals[i]).
 */
static bool
tg_agrees(struct diff *d, const struct tg_cmd *cmds, const int64_t *now,
          const int *rkeys, redisReply **vals)
{
    rl_algo_state st[TG_KEYS], *p[4];
    int64_t max[4], win[4], cost[4];
    rl_decision w[4];
    const struct tg_cmd *cmd;
    bool ok = true, admitted;
    int c, i, g, a;

    memset(st, 0, sizeof(st));
    for (c = 0; c < TG_CMDS && ok; c++) {
        cmd = &cmds[c];
        for (i = 0; i < cmd->n; i++) {
            for (g = 0; rkeys[g] != cmd->cks[i].key; g++)
                continue;
            p[i] = &st[g];
            max[i] = cmd->cks[i].max;
            win[i] = cmd->cks[i].window;
            cost[i] = cmd->cks[i].cost;
        }
        for (i = 0; cmd->k == 0 && i < cmd->n; i++)
            REQUIRE(rl__algo_decide(d->alg, p[i], now[c], max[i], win[i],
                                    cost[i], &w[i]) == RL_OK);
        for (g = 0, a = 0; g < cmd->k; a += cmd->sizes[g++])
            REQUIRE(rl__algo_group(d->alg, p + a, (size_t)cmd->sizes[g],
                                   now[c], max + a, win + a, cost + a,
                                   w + a, &admitted) == RL_OK);
        for (i = 0; i < cmd->n && ok; i++)
            ok = same(&w[i], cmd->r->element + 4 * i);
    }
    for (i = 0; i < TG_KEYS; i++) {
        if (ok)
            ok = st[i].max == 0 ? vals[i]->type == REDIS_REPLY_NIL
                                : state_matches(d, &st[i], vals[i]->str,
                                                vals[i]->len);
        rl__algo_state_clear(&st[i]);
    }
    return ok;
}

/* Sends a command with ARGV[1] empty, reading TIME before and after. */
static void
tg_send(struct diff *d, struct tg_cmd *cmd)
{
    char mode[32];
    int used = 0, g;

    for (g = 0; g < cmd->k; g++)
        used += snprintf(mode + used, sizeof(mode) - (size_t)used, "%s%d",
                         g ? "," : "", cmd->sizes[g]);
    cmd->before = server_ms(d);
    cmd->r = evalsha(d, cmd->cks, cmd->n, "", cmd->k ? mode : NULL);
    cmd->after = server_ms(d);
}

/*
 * Groups with Redis TIME (ARGV[1] empty), as the library sends them.  Per
 * round, three fresh keys A, B, C and a limit of 5 per 7 ms or per
 * minute: A takes 2 and B 4, each alone; a group of A 3, B 2, C 1 (B
 * denies: nothing may be written); then groups A 3 + C 1 and B 1.  Some
 * ms between the TIME reads around each command must give, in C, every
 * answer Lua gave and the values Lua stored.
 */
START_TEST(groups_redis_time)
{
    struct diff *d = diff_new((rl_algorithm)_i, 0xd1ff0800 + _i);
    struct tg_cmd cmds[TG_CMDS];
    redisReply *vals[TG_KEYS];
    int64_t now[TG_CMDS], w;
    int rkeys[TG_KEYS], round, c, i, denied = 0;
    long long w0;
    bool found = false;

    for (round = 0; round < 12; round++) {
        w = round % 2 ? 60000 : 7;
        for (i = 0; i < TG_KEYS; i++)
            rkeys[i] = N_HOT + TG_KEYS * round + i;
        memset(cmds, 0, sizeof(cmds));
        tg_add(&cmds[0], rkeys[0], 5, w, 2);
        tg_add(&cmds[0], rkeys[1], 5, w, 4);
        tg_add(&cmds[1], rkeys[0], 5, w, 3);
        tg_add(&cmds[1], rkeys[1], 5, w, 2);
        tg_add(&cmds[1], rkeys[2], 5, w, 1);
        cmds[1].sizes[cmds[1].k++] = 3;
        tg_add(&cmds[2], rkeys[0], 5, w, 3);
        tg_add(&cmds[2], rkeys[2], 5, w, 1);
        tg_add(&cmds[2], rkeys[1], 5, w, 1);
        cmds[2].sizes[cmds[2].k++] = 2;
        cmds[2].sizes[cmds[2].k++] = 1;
        for (c = 0; c < TG_CMDS; c++) {
            w0 = any_writes();
            tg_send(d, &cmds[c]);
            if (c == 1 && cmds[1].r->element[4]->integer == 0) {
                ck_assert_msg(any_writes() == w0, "a denied group wrote");
                denied++;
            }
        }
        for (i = 0; i < TG_KEYS; i++)
            vals[i] = get_value(d, rkeys[i]);
        /* An odometer over the candidate times. */
        for (c = 0; c < TG_CMDS; c++)
            now[c] = cmds[c].before;
        for (found = false; !found;) {
            found = tg_agrees(d, cmds, now, rkeys, vals);
            for (c = TG_CMDS - 1; c >= 0 && ++now[c] > cmds[c].after; c--)
                now[c] = cmds[c].before;
            if (c < 0)
                break;
        }
        ck_assert_msg(found, "%s, round %d: no times give Lua's answers "
                      "and values", d->script->name, round);
        for (c = 0; c < TG_CMDS; c++)
            freeReplyObject(cmds[c].r);
        for (i = 0; i < TG_KEYS; i++)
            freeReplyObject(vals[i]);
    }
    /* Within a minute the group is denied every time. */
    ck_assert_int_ge(denied, 6);
    diff_free(d);
}
END_TEST

static Suite *
diff_suite(void)
{
    Suite *s = suite_create("diff_lua_c");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, single_checks, 0, 2 * (RL_GCRA + 1));
    tcase_add_loop_test(tc, batches, RL_SLIDING_WINDOW, RL_GCRA + 1);
    tcase_add_loop_test(tc, redis_time, RL_SLIDING_WINDOW, RL_GCRA + 1);
    tcase_add_loop_test(tc, shorter_value_after_a_window_change, 0, 2);
    tcase_add_loop_test(tc, redis_time_rolls, RL_SLIDING_WINDOW,
                        RL_GCRA + 1);
    tcase_add_test(tc, long_sliding_log);
    tcase_add_loop_test(tc, groups_and_peeks, RL_SLIDING_WINDOW, RL_GCRA + 1);
    tcase_add_loop_test(tc, peek_writes_nothing, RL_SLIDING_WINDOW,
                        RL_GCRA + 1);
    tcase_add_loop_test(tc, bad_mode, RL_SLIDING_WINDOW, RL_GCRA + 1);
    tcase_add_loop_test(tc, groups_redis_time, RL_SLIDING_WINDOW,
                        RL_GCRA + 1);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return fx_redis_available() ? th_run_suite(diff_suite(), CK_ENV) : 77;
}
