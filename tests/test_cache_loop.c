/*
 * test_cache_loop.c: the decision cache of a limiter against a real
 * redis-server the fixture starts: a hot key denied once costs no Redis
 * command until its retry time (INFO commandstats), then goes back to
 * Redis; a changed limit, a lighter check, a reset and rl_cache_clear
 * bypass or drop it; the LRU bound holds under ten times more keys than
 * its size; the sweep drops expired entries; the warm-up by keys and by
 * patterns (SCAN) caches exactly the blocked keys and charges nothing,
 * counts only what it cached (not a peek answered too late), and is
 * refused RL_ERR_INVALID with a bad key even when overloaded.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "fixture_redis.h"
#include "helpers.h"

static struct event_base *base;
static struct fx_redis *srv;
static int64_t now;

static void
setup(void)
{
    base = event_base_new();
    srv = fx_redis_start(NULL);
    ck_assert_ptr_nonnull(srv);
    now = 1700000000000;
}

static void
teardown(void)
{
    fx_redis_stop(srv);
    event_base_free(base);
}

static rl_limiter *
new_limiter(rl_algorithm alg, bool cache, int64_t max_size)
{
    rl_config cfg;
    rl_limiter *rl = NULL;

    th_redis_config(&cfg, alg, srv->host, srv->port, &now);
    cfg.cache.enabled = cache;
    cfg.cache.max_size = max_size;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    return rl;
}

/* One check, waited for; its result in *out. */
static void
check1(rl_limiter *rl, const char *key, int64_t max, int64_t window,
       int64_t cost, rl_result *out)
{
    struct th_rec rec;

    memset(&rec, 0, sizeof(rec));
    th_in_submit = true;
    ck_assert_int_eq(rl_check_cost_async(rl, key, max, window, cost,
                                         th_check_cb, &rec), RL_OK);
    th_in_submit = false;
    ck_assert(th_wait_for(base, &rec.calls, 1, 5000));
    ck_assert_int_eq(rec.calls, 1);
    ck_assert(!rec.sync);
    *out = rec.r;
}

static long long
evalshas(void)
{
    return fx_redis_commandstat(srv, "evalsha");
}

/* ---- the hot key ---- */

START_TEST(hot_key_costs_no_command_until_its_retry_time)
{
    rl_limiter *rl = new_limiter((rl_algorithm)_i, true, 100);
    rl_result r;
    long long before;
    int i;

    for (i = 0; i < 5; i++) {
        check1(rl, "hot", 5, 1000, 1, &r);
        ck_assert(r.allowed);
    }
    check1(rl, "hot", 5, 1000, 1, &r);
    ck_assert(!r.allowed);
    ck_assert_int_eq(r.source, RL_SOURCE_BACKEND);
    ck_assert_int_gt(r.retry_after_ms, 0);
    before = evalshas();
    now += r.retry_after_ms - 1;
    for (i = 0; i < 1000; i++) {
        check1(rl, "hot", 5, 1000, 1, &r); /* once, from the loop */
        ck_assert_int_eq(r.source, RL_SOURCE_CACHE);
        ck_assert(!r.allowed);
        ck_assert_int_eq(r.status, RL_OK);
        ck_assert_int_eq(r.retry_after_ms, 1);
        ck_assert_int_eq(r.limit, 5);
    }
    ck_assert_int_eq(evalshas(), before);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_CACHE_HITS), 1000);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_SOURCE_CACHE), 1000);
    now += 1; /* the moment it could pass: back to Redis */
    check1(rl, "hot", 5, 1000, 1, &r);
    ck_assert_int_eq(r.source, RL_SOURCE_BACKEND);
    ck_assert_int_eq(evalshas(), before + 1);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_CACHE_MISSES), 7);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_CACHE_EXPIRED), 1);
    rl_free(rl);
}
END_TEST

START_TEST(changed_limit_lighter_check_reset_and_clear_bypass)
{
    rl_limiter *rl = new_limiter(RL_FIXED_WINDOW, true, 100);
    rl_cache_counts c;
    struct th_rec done = {0};
    rl_result r;
    int i;

    for (i = 0; i < 4; i++)
        check1(rl, "k", 4, 60000, 1, &r);
    check1(rl, "k", 4, 60000, 2, &r);          /* denied at cost 2 */
    ck_assert(!r.allowed);
    check1(rl, "k", 4, 60000, 3, &r);          /* heavier: cached */
    ck_assert_int_eq(r.source, RL_SOURCE_CACHE);
    check1(rl, "k", 4, 60000, 1, &r);          /* lighter: Redis */
    ck_assert_int_eq(r.source, RL_SOURCE_BACKEND);
    ck_assert(!r.allowed);
    check1(rl, "k", 4, 60000, 1, &r);          /* now cached at cost 1 */
    ck_assert_int_eq(r.source, RL_SOURCE_CACHE);
    check1(rl, "k", 5, 60000, 1, &r);          /* another max: Redis */
    ck_assert_int_eq(r.source, RL_SOURCE_BACKEND);
    ck_assert(r.allowed);                      /* and it forgets the key */
    check1(rl, "k", 4, 59000, 1, &r);          /* another window: Redis */
    ck_assert_int_eq(r.source, RL_SOURCE_BACKEND);
    ck_assert(!r.allowed);
    check1(rl, "k", 4, 59000, 1, &r);
    ck_assert_int_eq(r.source, RL_SOURCE_CACHE);
    ck_assert_int_eq(rl_reset_async(rl, "k", th_done_cb, &done), RL_OK);
    ck_assert(th_wait_for(base, &done.calls, 1, 5000));
    check1(rl, "k", 4, 59000, 1, &r);          /* reset: fresh in Redis */
    ck_assert_int_eq(r.source, RL_SOURCE_BACKEND);
    ck_assert(r.allowed);
    for (i = 0; i < 4; i++)
        check1(rl, "k", 4, 59000, 1, &r);
    ck_assert(!r.allowed);
    ck_assert_int_eq(rl_cache_stats(rl, &c), RL_OK);
    ck_assert_int_eq(c.size, 1);
    ck_assert_int_eq(rl_cache_clear(rl), RL_OK);
    ck_assert_int_eq(rl_cache_stats(rl, &c), RL_OK);
    ck_assert_int_eq(c.size, 0);
    check1(rl, "k", 4, 59000, 1, &r);
    ck_assert_int_eq(r.source, RL_SOURCE_BACKEND);
    ck_assert_int_eq(c.hits, 3);
    ck_assert_double_eq_tol(c.hit_rate,
                            3.0 / (double)(c.hits + c.misses), 1e-9);
    rl_free(rl);
}
END_TEST

/* 1,000 blocked keys through a cache of 100: it never holds more. */
START_TEST(lru_bound_under_ten_times_more_keys)
{
    rl_limiter *rl = new_limiter(RL_SLIDING_WINDOW, true, 100);
    rl_cache_counts c;
    struct th_rec rec[2000];
    char key[32];
    int i;

    memset(rec, 0, sizeof(rec));
    for (i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "lru:%d", i / 2);
        ck_assert_int_eq(rl_check_async(rl, key, 1, 60000, th_check_cb,
                                        &rec[i]), RL_OK);
    }
    for (i = 0; i < 2000; i++) {
        ck_assert(th_wait_for(base, &rec[i].calls, 1, 5000));
        ck_assert_int_eq(rec[i].r.allowed, i % 2 == 0);
    }
    ck_assert_int_eq(rl_cache_stats(rl, &c), RL_OK);
    ck_assert_int_eq(c.size, 100);
    ck_assert_int_eq(c.evictions, 900);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_CACHE_SIZE), 100);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_CACHE_EVICTIONS), 900);
    rl_free(rl);
}
END_TEST

/* Expired entries go at the sweep, every cleanup interval. */
START_TEST(sweep_drops_expired_entries)
{
    rl_config cfg;
    rl_limiter *rl = NULL;
    rl_cache_counts c;
    rl_result r;
    char key[16];
    int i;

    th_redis_config(&cfg, RL_FIXED_WINDOW, srv->host, srv->port, &now);
    cfg.cache.enabled = true;
    cfg.cache.cleanup_interval_ms = 50;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    for (i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "sw:%d", i);
        check1(rl, key, 1, 1000, 1, &r);
        check1(rl, key, 1, 1000, 1, &r);
        ck_assert(!r.allowed);
    }
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_CACHE_SIZE), 10);
    now += 1000;
    th_run_for(base, 200);
    ck_assert_int_eq(rl_cache_stats(rl, &c), RL_OK);
    ck_assert_int_eq(c.size, 0);
    ck_assert_int_eq(c.expired, 10);
    rl_free(rl);
}
END_TEST

START_TEST(no_cache_means_invalid)
{
    rl_limiter *rl = new_limiter(RL_FIXED_WINDOW, false, 100);
    rl_cache_counts c;
    rl_request k = {"a", 1, 1000, 1};
    const char *pat = "*";

    ck_assert_int_eq(rl_cache_stats(rl, &c), RL_ERR_INVALID);
    ck_assert_int_eq(rl_cache_clear(rl), RL_ERR_INVALID);
    ck_assert_int_eq(rl_cache_warm_async(rl, &k, 1, NULL, NULL),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_cache_warm_pattern_async(rl, &pat, 1, 1, 1000, 1,
                                                 10, NULL, NULL),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_CACHE_HITS), 0);
    rl_free(rl);
}
END_TEST

/* ---- warm-up ---- */

struct warm {
    int calls, status;
    size_t cached;
};

static void
warm_cb(int status, size_t cached, void *arg)
{
    struct warm *w = arg;

    w->calls++;
    w->status = status;
    w->cached = cached;
}

/* Blocks keys name:0 .. name:blocked-1 of n (max 3) with a cacheless
   limiter, and leaves the others with one check charged. */
static void
block_keys(const char *name, int n, int blocked)
{
    rl_limiter *rl = new_limiter(RL_SLIDING_WINDOW, false, 1);
    char key[32];
    rl_result r;
    int i, k;

    for (i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "%s:%d", name, i);
        for (k = 0; k < (i < blocked ? 3 : 1); k++)
            check1(rl, key, 3, 60000, 1, &r);
    }
    rl_free(rl);
}

START_TEST(warm_by_keys_caches_exactly_the_blocked)
{
    rl_limiter *rl;
    rl_request keys[20];
    char names[20][32];
    struct warm w = {0};
    long long before;
    rl_result r;
    int i;

    block_keys("wk", 20, 7);
    rl = new_limiter(RL_SLIDING_WINDOW, true, 100);
    for (i = 0; i < 20; i++) {
        snprintf(names[i], sizeof(names[i]), "wk:%d", i);
        keys[i].key = names[i];
        keys[i].max_requests = 3;
        keys[i].window_ms = 60000;
        keys[i].cost = 1;
    }
    th_in_submit = true;
    ck_assert_int_eq(rl_cache_warm_async(rl, keys, 20, warm_cb, &w), RL_OK);
    th_in_submit = false;
    ck_assert(th_wait_for(base, &w.calls, 1, 5000));
    ck_assert_int_eq(w.status, RL_OK);
    ck_assert_uint_eq(w.cached, 7);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_CACHE_SIZE), 7);
    before = evalshas();
    for (i = 0; i < 7; i++) {
        check1(rl, names[i], 3, 60000, 1, &r);
        ck_assert_int_eq(r.source, RL_SOURCE_CACHE);
    }
    ck_assert_int_eq(evalshas(), before);
    for (i = 7; i < 20; i++) {   /* the peek charged nothing: 2 left */
        check1(rl, names[i], 3, 60000, 1, &r);
        ck_assert_int_eq(r.source, RL_SOURCE_BACKEND);
        ck_assert(r.allowed);
        ck_assert_int_eq(r.remaining, 1);
    }
    rl_free(rl);
}
END_TEST

START_TEST(warm_by_pattern_walks_with_scan)
{
    const char *pats[2] = {"user:*", "vip:?"};
    rl_limiter *rl;
    struct warm w = {0};
    rl_result r;

    block_keys("user", 30, 5);
    block_keys("other", 10, 3);
    block_keys("vip", 12, 12);   /* vip:0 .. vip:9 match "vip:?" */
    ck_assert_int_eq(fx_redis_reset_stats(srv), 0);
    rl = new_limiter(RL_SLIDING_WINDOW, true, 1000);
    ck_assert_int_eq(rl_cache_warm_pattern_async(rl, pats, 2, 3, 60000, 1,
                                                 1000, warm_cb, &w), RL_OK);
    ck_assert(th_wait_for(base, &w.calls, 1, 10000));
    ck_assert_int_eq(w.status, RL_OK);
    ck_assert_uint_eq(w.cached, 5 + 10);
    ck_assert_int_gt(fx_redis_commandstat(srv, "scan"), 0);
    ck_assert_int_eq(fx_redis_commandstat(srv, "keys"), 0);
    check1(rl, "user:4", 3, 60000, 1, &r);
    ck_assert_int_eq(r.source, RL_SOURCE_CACHE);
    check1(rl, "other:0", 3, 60000, 1, &r);
    ck_assert_int_eq(r.source, RL_SOURCE_BACKEND);
    check1(rl, "vip:10", 3, 60000, 1, &r);
    ck_assert_int_eq(r.source, RL_SOURCE_BACKEND);
    rl_free(rl);

    /* bounded by preload_max: at most 4 keys looked at */
    memset(&w, 0, sizeof(w));
    rl = new_limiter(RL_SLIDING_WINDOW, true, 1000);
    ck_assert_int_eq(rl_cache_warm_pattern_async(rl, pats, 1, 3, 60000, 1,
                                                 4, warm_cb, &w), RL_OK);
    ck_assert(th_wait_for(base, &w.calls, 1, 10000));
    ck_assert_int_eq(w.status, RL_OK);
    ck_assert_uint_le(w.cached, 4);
    ck_assert_int_le(rl_metric(rl, RL_METRIC_CACHE_SIZE), 4);
    rl_free(rl);
}
END_TEST

/*
 * Starts a warm-up of key and runs the loop one step at a time until
 * Redis ran its peek, then stops: true when the reply is left unread (no
 * callback, nothing cached).  One step may take more than one turn of
 * the loop, so the reply may have been read already: then the warm-up is
 * finished and false returned.
 */
static bool
peek_left_unread(rl_limiter *rl, const rl_request *key, struct warm *w)
{
    long long before = evalshas();
    int64_t end = th_mono_ms() + 2000;

    memset(w, 0, sizeof(*w));
    ck_assert_int_eq(rl_cache_warm_async(rl, key, 1, warm_cb, w), RL_OK);
    while (evalshas() == before && th_mono_ms() < end) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(2000);
    }
    ck_assert_int_eq(evalshas(), before + 1);
    if (w->calls == 0 && rl_metric(rl, RL_METRIC_CACHE_SIZE) == 0)
        return true;
    ck_assert(th_wait_for(base, &w->calls, 1, 5000));
    ck_assert_int_eq(rl_cache_clear(rl), RL_OK);
    return false;
}

/*
 * A peek answered too late to be worth keeping caches nothing, and the
 * warm-up must not count it: `cached` is what the cache holds.  Redis TIME
 * decides (no test clock), so the block is real time: a 300 ms sliding
 * log.  Once Redis ran the peek, the test sleeps 400 ms with the reply
 * unread: the block ended before the answer came in.  (Tried again with
 * a fresh key when the reply was read too soon.)
 */
START_TEST(warm_counts_only_what_it_cached)
{
    rl_config cfg;
    rl_limiter *rl = NULL;
    rl_request key = {NULL, 1, 300, 1};
    char name[24];
    struct warm w;
    rl_result r;
    int tries = 0;

    th_redis_config(&cfg, RL_SLIDING_LOG, srv->host, srv->port, NULL);
    cfg.cache.enabled = true;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    do {
        ck_assert_int_lt(tries, 10);
        snprintf(name, sizeof(name), "late:%d", tries++);
        key.key = name;
        check1(rl, name, 1, 300, 1, &r);    /* blocked for 300 ms */
        ck_assert(r.allowed);
    } while (!peek_left_unread(rl, &key, &w));
    usleep(400 * 1000);
    ck_assert(th_wait_for(base, &w.calls, 1, 5000));
    ck_assert_int_eq(w.status, RL_OK);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_CACHE_SIZE), 0);
    ck_assert_uint_eq(w.cached, 0);
    rl_free(rl);
}
END_TEST

/* A warm-up with a bad key is RL_ERR_INVALID even when the limiter is
   overloaded (max_pending 1, one check in flight), never OVERLOAD. */
START_TEST(bad_warm_up_is_invalid_when_overloaded)
{
    rl_config cfg;
    rl_limiter *rl = NULL;
    rl_request keys[2] = {{"a", 3, 60000, 1}, {"", 3, 60000, 1}};
    struct th_rec rec = {0};
    struct warm w = {0};

    th_redis_config(&cfg, RL_SLIDING_WINDOW, srv->host, srv->port, &now);
    cfg.cache.enabled = true;
    cfg.max_pending = 1;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    ck_assert_int_eq(rl_check_async(rl, "k", 3, 60000, th_check_cb, &rec),
                     RL_OK);
    ck_assert_int_eq(rl_cache_warm_async(rl, keys, 1, warm_cb, &w),
                     RL_ERR_OVERLOAD);
    ck_assert_int_eq(rl_cache_warm_async(rl, keys, 2, warm_cb, &w),
                     RL_ERR_INVALID);
    ck_assert(th_wait_for(base, &rec.calls, 1, 5000));
    th_run_for(base, 20);
    ck_assert_int_eq(w.calls, 0);
    rl_free(rl);
}
END_TEST

/* rl_free while a pattern warm-up walks: its callback runs once. */
START_TEST(free_during_a_warm_up)
{
    const char *pat = "*";
    rl_limiter *rl;
    struct warm w = {0};

    block_keys("fw", 5, 5);
    rl = new_limiter(RL_SLIDING_WINDOW, true, 1000);
    th_run_for(base, 50); /* connected */
    ck_assert_int_eq(rl_cache_warm_pattern_async(rl, &pat, 1, 3, 60000, 1,
                                                 100, warm_cb, &w), RL_OK);
    rl_free(rl);
    ck_assert_int_eq(w.calls, 1);
    ck_assert_int_eq(w.status, RL_ERR_SHUTDOWN);
    th_run_for(base, 50);
    ck_assert_int_eq(w.calls, 1);
}
END_TEST

static Suite *
cache_loop_suite(void)
{
    Suite *s = suite_create("cache_loop");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, hot_key_costs_no_command_until_its_retry_time,
                        RL_SLIDING_WINDOW, RL_GCRA + 1);
    tcase_add_test(tc, changed_limit_lighter_check_reset_and_clear_bypass);
    tcase_add_test(tc, lru_bound_under_ten_times_more_keys);
    tcase_add_test(tc, sweep_drops_expired_entries);
    tcase_add_test(tc, no_cache_means_invalid);
    tcase_add_test(tc, warm_by_keys_caches_exactly_the_blocked);
    tcase_add_test(tc, warm_by_pattern_walks_with_scan);
    tcase_add_test(tc, warm_counts_only_what_it_cached);
    tcase_add_test(tc, bad_warm_up_is_invalid_when_overloaded);
    tcase_add_test(tc, free_during_a_warm_up);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    if (!fx_redis_available())
        return 77; /* automake: SKIP */
    return th_run_suite(cache_loop_suite(), CK_NORMAL);
}
