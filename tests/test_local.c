/*
 * test_local.c: the request path through the public API on a real event
 * loop, with the local backend: exact admissions, the fields of results,
 * reset, cost, callbacks exactly once and never synchronous, shutdown with
 * checks pending, rl_free from inside a callback, every bad input (refused
 * as such even when overloaded or shutting down), the bound on pending
 * checks, the store's bound and sweep, and multi-limit checks (one state
 * per key, expiry, a store smaller than the check).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "helpers.h"

static struct event_base *base;
static int64_t now;

static void
setup(void)
{
    base = event_base_new();
    now = 1700000000000; /* an aligned second, in ms */
}

static void
teardown(void)
{
    event_base_free(base);
}

static rl_limiter *
new_local(rl_algorithm alg)
{
    rl_config cfg;
    rl_limiter *rl = NULL;

    th_local_config(&cfg, alg, &now);
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    return rl;
}

static int
check(rl_limiter *rl, const char *key, int64_t max, int64_t window,
      int64_t cost, struct th_rec *rec)
{
    int rc;

    th_in_submit = true;
    rc = rl_check_cost_async(rl, key, max, window, cost, th_check_cb, rec);
    th_in_submit = false;
    return rc;
}

/* Submits n unit checks in one tick and returns how many were admitted. */
static int
burst(rl_limiter *rl, const char *key, int n, int64_t max, int64_t window)
{
    struct th_rec *recs = calloc((size_t)n, sizeof(*recs));
    int i, allowed = 0;

    for (i = 0; i < n; i++)
        ck_assert_int_eq(check(rl, key, max, window, 1, &recs[i]), RL_OK);
    th_drain(base);
    for (i = 0; i < n; i++) {
        ck_assert_int_eq(recs[i].calls, 1);
        ck_assert(!recs[i].sync);
        ck_assert_int_eq(recs[i].r.status, RL_OK);
        ck_assert_int_eq(recs[i].r.source, RL_SOURCE_BACKEND);
        ck_assert_int_eq(recs[i].r.limit, max);
        allowed += recs[i].r.allowed;
    }
    free(recs);
    return allowed;
}

/* ---- admissions ---- */

START_TEST(burst_admits_exactly_max)
{
    rl_algorithm alg = (rl_algorithm)_i;
    rl_limiter *rl = new_local(alg);

    ck_assert_int_eq(burst(rl, "user:1", 1000, 100, 60000), 100);
    ck_assert_int_eq(burst(rl, "user:1", 10, 100, 60000), 0);
    ck_assert_int_eq(burst(rl, "user:2", 50, 100, 60000), 50);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_ALLOWED), 150);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_DENIED), 910);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_CHECKS_TOTAL), 1060);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_PENDING), 0);
    rl_free(rl);
}
END_TEST

START_TEST(fixed_window_fields)
{
    rl_limiter *rl = new_local(RL_FIXED_WINDOW);
    struct th_rec a = {0}, b = {0}, c = {0};

    now += 250;
    check(rl, "k", 2, 1000, 1, &a);
    check(rl, "k", 2, 1000, 1, &b);
    check(rl, "k", 2, 1000, 1, &c);
    th_drain(base);
    ck_assert(a.r.allowed && b.r.allowed && !c.r.allowed);
    ck_assert_int_eq(a.r.remaining, 1);
    ck_assert_int_eq(b.r.remaining, 0);
    ck_assert_int_eq(c.r.remaining, 0);
    ck_assert_int_eq(a.r.retry_after_ms, 0);
    ck_assert_int_eq(c.r.retry_after_ms, 750);
    ck_assert_int_eq(c.r.reset_ms, 750);
    ck_assert_str_eq(c.r.key, "k");
    now += 750; /* the next window */
    memset(&a, 0, sizeof(a));
    check(rl, "k", 2, 1000, 1, &a);
    th_drain(base);
    ck_assert(a.r.allowed);
    ck_assert_int_eq(a.r.remaining, 1);
    rl_free(rl);
}
END_TEST

START_TEST(cost_is_charged)
{
    rl_limiter *rl = new_local(RL_TOKEN_BUCKET);
    struct th_rec a = {0}, b = {0}, c = {0};

    check(rl, "k", 10, 1000, 7, &a);
    check(rl, "k", 10, 1000, 4, &b);
    check(rl, "k", 10, 1000, 3, &c);
    th_drain(base);
    ck_assert(a.r.allowed && !b.r.allowed && c.r.allowed);
    ck_assert_int_eq(a.r.remaining, 3);
    ck_assert_int_eq(c.r.remaining, 0);
    /* 4 tokens at 10 per 1000 ms: 3 were left, 1 more takes 100 ms. */
    ck_assert_int_eq(b.r.retry_after_ms, 100);
    rl_free(rl);
}
END_TEST

START_TEST(reset_forgets_the_key)
{
    rl_limiter *rl = new_local(RL_SLIDING_WINDOW);
    struct th_rec done = {0};

    ck_assert_int_eq(burst(rl, "k", 5, 3, 60000), 3);
    th_in_submit = true;
    ck_assert_int_eq(rl_reset_async(rl, "k", th_done_cb, &done), RL_OK);
    th_in_submit = false;
    ck_assert_int_eq(done.calls, 0);
    th_drain(base);
    ck_assert_int_eq(done.calls, 1);
    ck_assert(!done.sync);
    ck_assert_int_eq(done.status, RL_OK);
    ck_assert_int_eq(burst(rl, "k", 5, 3, 60000), 3);
    rl_free(rl);
}
END_TEST

START_TEST(limit_comes_with_each_check)
{
    rl_limiter *rl = new_local(RL_FIXED_WINDOW);

    ck_assert_int_eq(burst(rl, "k", 5, 3, 60000), 3);
    ck_assert_int_eq(burst(rl, "k", 5, 5, 60000), 2);
    rl_free(rl);
}
END_TEST

/* ---- keys ---- */

START_TEST(odd_keys_are_independent)
{
    static const char *const keys[] = {
        "a", "a ", " a", "{a}", "a}", "{a", "a\nb", "a\r\n", "ключ",
        "日本", "a:b", "a*b", "rate_limit:a", "%s%n",
    };
    size_t i, n = sizeof(keys) / sizeof(keys[0]);
    rl_limiter *rl = new_local(RL_FIXED_WINDOW);

    for (i = 0; i < n; i++)
        ck_assert_int_eq(burst(rl, keys[i], 3, 2, 60000), 2);
    rl_free(rl);
}
END_TEST

START_TEST(binary_keys_with_nul_bytes)
{
    rl_limiter *rl = new_local(RL_FIXED_WINDOW);
    struct th_rec a = {0}, b = {0}, c = {0};

    rl_check_key_async(rl, "x\0y", 3, 1, 1000, 1, th_check_cb, &a);
    rl_check_key_async(rl, "x\0z", 3, 1, 1000, 1, th_check_cb, &b);
    rl_check_key_async(rl, "x\0y", 3, 1, 1000, 1, th_check_cb, &c);
    th_drain(base);
    ck_assert(a.r.allowed && b.r.allowed && !c.r.allowed);
    ck_assert_uint_eq(a.r.key_len, 3);
    rl_free(rl);
}
END_TEST

START_TEST(longest_key)
{
    char key[RL_KEY_MAX + 2];
    rl_limiter *rl = new_local(RL_GCRA);
    struct th_rec a = {0};

    memset(key, 'k', sizeof(key));
    key[RL_KEY_MAX] = '\0';
    ck_assert_int_eq(check(rl, key, 1, 1000, 1, &a), RL_OK);
    key[RL_KEY_MAX] = 'k';
    key[RL_KEY_MAX + 1] = '\0';
    ck_assert_int_eq(check(rl, key, 1, 1000, 1, &a), RL_ERR_INVALID);
    th_drain(base);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_uint_eq(strlen(a.key), RL_KEY_MAX);
    rl_free(rl);
}
END_TEST

/* ---- bad input ---- */

START_TEST(bad_input_is_refused_silently)
{
    rl_limiter *rl = new_local(RL_SLIDING_LOG);
    struct th_rec r = {0};
    char big[RL_KEY_MAX + 2];

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(rl_check_async(NULL, "k", 1, 1, th_check_cb, &r),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_async(rl, NULL, 1, 1, th_check_cb, &r),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_async(rl, "", 1, 1, th_check_cb, &r),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_async(rl, big, 1, 1, th_check_cb, &r),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_async(rl, "k", 0, 1, th_check_cb, &r),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_async(rl, "k", -5, 1, th_check_cb, &r),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_async(rl, "k", 1, 0, th_check_cb, &r),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_async(rl, "k", 1, -1, th_check_cb, &r),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_async(rl, "k", RL_SLIDING_LOG_MAX + 1, 1,
                                    th_check_cb, &r), RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_async(rl, "k", 1, RL_WINDOW_MS_MAX + 1,
                                    th_check_cb, &r), RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_cost_async(rl, "k", 5, 1, 0, th_check_cb, &r),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_cost_async(rl, "k", 5, 1, 6, th_check_cb, &r),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_async(rl, "k", 1, 1, NULL, &r),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_key_async(rl, "k", 0, 1, 1, 1, th_check_cb,
                                        &r), RL_ERR_INVALID);
    ck_assert_int_eq(rl_reset_async(rl, "k", NULL, &r), RL_ERR_INVALID);
    ck_assert_int_eq(rl_reset_async(rl, "", th_done_cb, &r), RL_ERR_INVALID);
    ck_assert_int_eq(rl_reset_async(NULL, "k", th_done_cb, &r),
                     RL_ERR_INVALID);
    th_drain(base);
    ck_assert_int_eq(r.calls, 0);
    /* Every refusal but the two without a limiter is counted. */
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_REFUSED), 15);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_CHECKS_TOTAL), 0);
    /* Nothing changed: the key is fresh. */
    ck_assert_int_eq(burst(rl, "k", 3, 2, 1000), 2);
    rl_free(rl);
}
END_TEST

START_TEST(rl_new_refuses_bad_arguments)
{
    rl_config cfg;
    rl_limiter *rl = (rl_limiter *)&cfg;
    struct th_log log = {{0}, 0};

    th_local_config(&cfg, RL_FIXED_WINDOW, &now);
    cfg.log_cb = th_log_cb;
    cfg.log_arg = &log;
    ck_assert_int_eq(rl_new(NULL, &cfg, &rl), RL_ERR_INVALID);
    ck_assert_ptr_null(rl);
    ck_assert_int_eq(rl_new(base, &cfg, NULL), RL_ERR_INVALID);
    cfg.max_pending = 0;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_ERR_INVALID);
    ck_assert_ptr_null(rl);
    ck_assert_int_ge(log.lines, 2);
    rl_free(NULL);
}
END_TEST

/* ---- callbacks ---- */

START_TEST(overload_refuses_past_max_pending)
{
    rl_config cfg;
    rl_limiter *rl = NULL;
    struct th_rec recs[6];
    int i;

    memset(recs, 0, sizeof(recs));
    th_local_config(&cfg, RL_FIXED_WINDOW, &now);
    cfg.max_pending = 5;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(check(rl, "k", 100, 1000, 1, &recs[i]), RL_OK);
    ck_assert_int_eq(check(rl, "k", 100, 1000, 1, &recs[5]),
                     RL_ERR_OVERLOAD);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_PENDING), 5);
    th_drain(base);
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(recs[i].calls, 1);
    ck_assert_int_eq(recs[5].calls, 0);
    ck_assert_int_eq(check(rl, "k", 100, 1000, 1, &recs[5]), RL_OK);
    th_drain(base);
    ck_assert_int_eq(recs[5].calls, 1);
    rl_free(rl);
}
END_TEST

/* rl_check_all_async with a bad item (or a bad call) of the kinds the
   tests below make: an empty key, a window of 0, cost over max. */
static const rl_request bad_all[3][2] = {
    {{"a", 5, 1000, 1}, {"", 5, 1000, 1}},
    {{"a", 5, 1000, 1}, {"b", 5, 0, 1}},
    {{"a", 5, 1000, 6}, {"b", 5, 1000, 1}},
};

static void
never_cb(const rl_result *res, size_t n, void *arg)
{
    (void)res;
    (void)n;
    (*(int *)arg)++;
}

/* Every kind of bad call on rl: each refused RL_ERR_INVALID; how many
   were not. */
static int
bad_calls(rl_limiter *rl, int *calls)
{
    rl_request ok = {"a", 5, 1000, 1};
    int i, wrong = 0;

    for (i = 0; i < 3; i++)
        wrong += rl_check_all_async(rl, bad_all[i], 2, never_cb, calls) !=
                 RL_ERR_INVALID;
    wrong += rl_check_all_async(rl, NULL, 1, never_cb, calls) !=
             RL_ERR_INVALID;
    wrong += rl_check_all_async(rl, &ok, 0, never_cb, calls) !=
             RL_ERR_INVALID;
    wrong += rl_check_all_async(rl, &ok, 1, NULL, calls) != RL_ERR_INVALID;
    wrong += rl_batch_async(rl, NULL, 1, never_cb, calls) != RL_ERR_INVALID;
    wrong += rl_check_async(rl, "", 5, 1000, th_check_cb, NULL) !=
             RL_ERR_INVALID;
    wrong += rl_check_cost_async(rl, "a", 5, 1000, 6, th_check_cb, NULL) !=
             RL_ERR_INVALID;
    wrong += rl_reset_async(rl, "", th_done_cb, NULL) != RL_ERR_INVALID;
    return wrong;
}

/*
 * A bad call is RL_ERR_INVALID however busy the limiter is, never
 * RL_ERR_OVERLOAD: the caller must learn that the call can never pass,
 * not retry it.  max_pending 1, one check pending.  A batch with a bad
 * item is a good call (the item is answered in its slot): overloaded.
 */
START_TEST(bad_call_is_invalid_when_overloaded)
{
    rl_config cfg;
    rl_limiter *rl = NULL;
    struct th_rec pending = {0};
    rl_request ok = {"a", 5, 1000, 1};
    int calls = 0;

    th_local_config(&cfg, RL_FIXED_WINDOW, &now);
    cfg.max_pending = 1;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    ck_assert_int_eq(check(rl, "k", 5, 1000, 1, &pending), RL_OK);
    ck_assert_int_eq(rl_check_all_async(rl, &ok, 1, never_cb, &calls),
                     RL_ERR_OVERLOAD);
    ck_assert_int_eq(bad_calls(rl, &calls), 0);
    ck_assert_int_eq(rl_batch_async(rl, bad_all[0], 2, never_cb, &calls),
                     RL_ERR_OVERLOAD);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_PENDING), 1);
    th_drain(base);
    ck_assert_int_eq(pending.calls, 1);
    ck_assert_int_eq(calls, 0);
    rl_free(rl);
}
END_TEST

struct bad_in_cb {
    rl_limiter *rl;
    int calls;      /* never_cb's */
    int wrong;      /* bad calls not refused RL_ERR_INVALID */
};

static void
free_then_bad_cb(const rl_result *r, void *arg)
{
    struct bad_in_cb *b = arg;

    (void)r;
    rl_free(b->rl);
    b->wrong = bad_calls(b->rl, &b->calls);
}

/* Nor RL_ERR_SHUTDOWN: a bad call inside a callback after rl_free. */
START_TEST(bad_call_is_invalid_when_shutting_down)
{
    struct bad_in_cb b = {new_local(RL_FIXED_WINDOW), 0, -1};

    ck_assert_int_eq(rl_check_async(b.rl, "k", 5, 1000, free_then_bad_cb,
                                    &b), RL_OK);
    th_drain(base);
    ck_assert_int_eq(b.wrong, 0);
    ck_assert_int_eq(b.calls, 0);
}
END_TEST

START_TEST(free_completes_pending_with_shutdown)
{
    rl_limiter *rl = new_local(RL_FIXED_WINDOW);
    struct th_rec recs[10], done = {0};
    int i;

    memset(recs, 0, sizeof(recs));
    for (i = 0; i < 10; i++)
        ck_assert_int_eq(check(rl, "k", 5, 1000, 1, &recs[i]), RL_OK);
    ck_assert_int_eq(rl_reset_async(rl, "k", th_done_cb, &done), RL_OK);
    rl_free(rl);
    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(recs[i].calls, 1);
        ck_assert_int_eq(recs[i].r.status, RL_ERR_SHUTDOWN);
        ck_assert_int_eq(recs[i].r.source, RL_SOURCE_FALLBACK);
    }
    ck_assert_int_eq(done.calls, 1);
    ck_assert_int_eq(done.status, RL_ERR_SHUTDOWN);
    th_drain(base);
    ck_assert_int_eq(recs[0].calls, 1);
}
END_TEST

struct free_in_cb {
    rl_limiter *rl;
    int calls;
    int refused;
};

static void
free_inside_cb(const rl_result *r, void *arg)
{
    struct free_in_cb *f = arg;

    (void)r;
    f->calls++;
    if (f->calls == 3) {
        rl_free(f->rl);
        if (rl_check_async(f->rl, "k", 1, 1, free_inside_cb, f) ==
            RL_ERR_SHUTDOWN)
            f->refused++;
        rl_free(f->rl); /* a second call inside is harmless */
    }
}

START_TEST(free_inside_a_callback)
{
    struct free_in_cb f = {new_local(RL_FIXED_WINDOW), 0, 0};
    int i;

    for (i = 0; i < 10; i++)
        ck_assert_int_eq(rl_check_async(f.rl, "k", 5, 1000, free_inside_cb,
                                        &f), RL_OK);
    th_drain(base);
    ck_assert_int_eq(f.calls, 10);
    ck_assert_int_eq(f.refused, 1);
}
END_TEST

struct chain {
    rl_limiter *rl;
    int calls;
    bool in_cb;
    bool nested;
};

static void
chain_cb(const rl_result *r, void *arg)
{
    struct chain *c = arg;

    (void)r;
    if (c->in_cb)
        c->nested = true;
    c->in_cb = true;
    c->calls++;
    if (c->calls < 100)
        ck_assert_int_eq(rl_check_async(c->rl, "k", 5, 1000, chain_cb, c),
                         RL_OK);
    c->in_cb = false;
}

/* A check submitted from a callback runs later, never nested. */
START_TEST(submit_from_callback_does_not_recurse)
{
    struct chain c = {new_local(RL_GCRA), 0, false, false};
    int spins = 0;

    ck_assert_int_eq(rl_check_async(c.rl, "k", 5, 1000, chain_cb, &c),
                     RL_OK);
    while (c.calls < 100 && spins++ < 1000)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(c.calls, 100);
    ck_assert(!c.nested);
    rl_free(c.rl);
}
END_TEST

/* ---- the store ---- */

START_TEST(store_is_bounded)
{
    rl_config cfg;
    rl_limiter *rl = NULL;
    char key[32];
    struct th_rec rec;
    int i;

    th_local_config(&cfg, RL_FIXED_WINDOW, &now);
    cfg.local.max_keys = 100;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    for (i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        ck_assert_int_eq(check(rl, key, 5, 60000, 1, &rec), RL_OK);
        if (i % 50 == 49)
            th_drain(base);
    }
    th_drain(base);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_LOCAL_KEYS), 100);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_LOCAL_EVICTIONS), 900);
    rl_free(rl);
}
END_TEST

START_TEST(sweep_drops_expired_keys_and_lets_the_loop_end)
{
    rl_config cfg;
    rl_limiter *rl = NULL;
    char key[32];
    struct th_rec rec;
    int i;

    th_local_config(&cfg, RL_FIXED_WINDOW, &now);
    cfg.local.sweep_interval_ms = 20;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    for (i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        check(rl, key, 5, 1000, 1, &rec);
    }
    /* Nothing else is pending: dispatch must return although the store
       holds 50 keys and the sweep timer is armed. */
    ck_assert_int_eq(event_base_dispatch(base), 1);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_LOCAL_KEYS), 50);
    now += 1000; /* every window ended */
    th_run_for(base, 100);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_LOCAL_KEYS), 0);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_LOCAL_EXPIRED), 50);
    rl_free(rl);
}
END_TEST

/* ---- multi-limit checks (rl_check_all_async) ---- */

struct all_rec {
    int calls;
    bool sync;
    size_t n;
    rl_result r[8];
};

static void
all_cb(const rl_result *res, size_t n, void *arg)
{
    struct all_rec *a = arg;
    size_t i;

    a->calls++;
    a->sync = a->sync || th_in_submit;
    a->n = n;
    for (i = 0; i < n && i < 8; i++) {
        a->r[i] = res[i];
        a->r[i].key = NULL;
    }
}

/* One multi-limit check of n limits, waited for: its results in *a. */
static void
check_all(rl_limiter *rl, const rl_request *lim, size_t n,
          struct all_rec *a)
{
    memset(a, 0, sizeof(*a));
    th_in_submit = true;
    ck_assert_int_eq(rl_check_all_async(rl, lim, n, all_cb, a), RL_OK);
    th_in_submit = false;
    th_drain(base);
    ck_assert_int_eq(a->calls, 1);
    ck_assert(!a->sync);
    ck_assert_uint_eq(a->n, n);
}

/*
 * A key named twice in one check is one state, charged once per naming;
 * a denied check charges none of its keys.  a (max 10) twice and b (max
 * 2): two checks pass (a: 9 then 8, 7 then 6), the third is denied by b
 * alone and a keeps its 6.
 */
START_TEST(check_all_one_state_per_key)
{
    rl_limiter *rl = new_local((rl_algorithm)_i);
    rl_request lim[3] = {{"{g}a", 10, 60000, 1}, {"{g}b", 2, 60000, 1},
                         {"{g}a", 10, 60000, 1}};
    struct all_rec a;
    int k;

    for (k = 0; k < 2; k++) {
        check_all(rl, lim, 3, &a);
        ck_assert(a.r[0].allowed && a.r[1].allowed && a.r[2].allowed);
        ck_assert_int_eq(a.r[0].source, RL_SOURCE_BACKEND);
        ck_assert_int_eq(a.r[0].remaining, 9 - 2 * k);
        ck_assert_int_eq(a.r[2].remaining, 8 - 2 * k);
        ck_assert_int_eq(a.r[1].remaining, 1 - k);
    }
    check_all(rl, lim, 3, &a);
    ck_assert(!a.r[0].allowed && !a.r[1].allowed && !a.r[2].allowed);
    ck_assert_int_eq(a.r[0].retry_after_ms, 0);
    ck_assert_int_gt(a.r[1].retry_after_ms, 0);
    ck_assert_int_eq(a.r[0].remaining, 6);
    ck_assert_int_eq(a.r[2].remaining, 6);
    ck_assert_int_eq(burst(rl, "{g}a", 10, 10, 60000), 6);
    ck_assert_int_eq(burst(rl, "{g}b", 3, 2, 60000), 0);
    rl_free(rl);
}
END_TEST

/*
 * The keys of a multi-limit check expire as a single check's would,
 * whether it passed or not: once the window is over the sweep drops them
 * all.
 */
START_TEST(check_all_keys_expire)
{
    rl_config cfg;
    rl_limiter *rl = NULL;
    rl_request lim[2] = {{"x", 1, 1000, 1}, {"y", 2, 1000, 1}};
    struct all_rec a;

    th_local_config(&cfg, (rl_algorithm)_i, &now);
    cfg.local.sweep_interval_ms = 20;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    check_all(rl, lim, 2, &a);
    ck_assert(a.r[0].allowed);
    check_all(rl, lim, 2, &a);
    ck_assert(!a.r[0].allowed);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_LOCAL_KEYS), 2);
    now += 2000;
    th_run_for(base, 100);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_LOCAL_KEYS), 0);
    check_all(rl, lim, 2, &a);
    ck_assert(a.r[0].allowed && a.r[1].allowed);
    ck_assert_int_eq(a.r[1].remaining, 1);
    rl_free(rl);
}
END_TEST

/*
 * More keys in one check than the store holds: each check still gets its
 * one answer, the store keeps its bound, and under the sanitizers no
 * state (nor sliding log) is leaked or freed twice.  Each key put back
 * evicts another, so every check here starts fresh: p (max 2) passes
 * each time.
 */
START_TEST(check_all_in_a_full_store)
{
    rl_config cfg;
    rl_limiter *rl = NULL;
    rl_request lim[3] = {{"p", 2, 1000, 1}, {"q", 5, 1000, 1},
                         {"r", 5, 1000, 1}};
    struct all_rec a;
    int k;

    th_local_config(&cfg, (rl_algorithm)_i, &now);
    cfg.local.max_keys = 2;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    for (k = 0; k < 4; k++) {
        check_all(rl, lim, 3, &a);
        ck_assert(a.r[0].allowed && a.r[1].allowed && a.r[2].allowed);
        ck_assert_int_eq(a.r[0].remaining, 1);
        ck_assert_int_eq(a.r[2].remaining, 4);
        ck_assert_int_eq(rl_metric(rl, RL_METRIC_LOCAL_KEYS), 2);
    }
    rl_free(rl);
}
END_TEST

static Suite *
local_suite(void)
{
    Suite *s = suite_create("local");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, burst_admits_exactly_max, RL_SLIDING_WINDOW,
                        RL_GCRA + 1);
    tcase_add_test(tc, fixed_window_fields);
    tcase_add_test(tc, cost_is_charged);
    tcase_add_test(tc, reset_forgets_the_key);
    tcase_add_test(tc, limit_comes_with_each_check);
    tcase_add_test(tc, odd_keys_are_independent);
    tcase_add_test(tc, binary_keys_with_nul_bytes);
    tcase_add_test(tc, longest_key);
    tcase_add_test(tc, bad_input_is_refused_silently);
    tcase_add_test(tc, rl_new_refuses_bad_arguments);
    tcase_add_test(tc, overload_refuses_past_max_pending);
    tcase_add_test(tc, bad_call_is_invalid_when_overloaded);
    tcase_add_test(tc, bad_call_is_invalid_when_shutting_down);
    tcase_add_test(tc, free_completes_pending_with_shutdown);
    tcase_add_test(tc, free_inside_a_callback);
    tcase_add_test(tc, submit_from_callback_does_not_recurse);
    tcase_add_test(tc, store_is_bounded);
    tcase_add_test(tc, sweep_drops_expired_keys_and_lets_the_loop_end);
    tcase_add_loop_test(tc, check_all_one_state_per_key, RL_SLIDING_WINDOW,
                        RL_GCRA + 1);
    tcase_add_loop_test(tc, check_all_keys_expire, RL_SLIDING_WINDOW,
                        RL_GCRA + 1);
    tcase_add_loop_test(tc, check_all_in_a_full_store, RL_SLIDING_WINDOW,
                        RL_GCRA + 1);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return th_run_suite(local_suite(), CK_NORMAL);
}
