/*
 * test_group.c: the batch processor (rl_batch_async) and the atomic
 * multi-limit check (rl_check_all_async), against a real redis-server the
 * fixture starts, and on the local backend.  Results in request order
 * with per-item statuses, chunks of batch.size per EVALSHA (INFO
 * commandstats), the batch timeout with a stopped server, shutdown with a
 * batch in flight; a denied multi-limit check charges none of its limits,
 * also with processes racing, and fails over as one.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "fixture_redis.h"
#include "helpers.h"

#define MAXN 2048

static struct event_base *base;
static struct fx_redis *srv;
static int64_t now;

/* ---- a recorder of batch callbacks ---- */

struct brec {
    int calls;
    size_t n;
    bool sync;
    rl_result r[MAXN];
    char keys[MAXN][32];
};

static void
batch_cb(const rl_result *res, size_t n, void *arg)
{
    struct brec *b = arg;
    size_t i;

    b->calls++;
    b->n = n;
    if (th_in_submit)
        b->sync = true;     /* sticks: one synchronous call is enough */
    for (i = 0; i < n && i < MAXN; i++) {
        b->r[i] = res[i];
        snprintf(b->keys[i], sizeof(b->keys[i]), "%s", res[i].key);
        b->r[i].key = NULL;
    }
}

/* ---- fixture ---- */

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

static void
redis_config(rl_config *cfg, rl_algorithm alg)
{
    th_redis_config(cfg, alg, srv->host, srv->port, &now);
}

static rl_limiter *
new_limiter(rl_algorithm alg, bool local)
{
    rl_config cfg;
    rl_limiter *rl = NULL;

    if (local)
        th_local_config(&cfg, alg, &now);
    else
        redis_config(&cfg, alg);
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    return rl;
}

/*
 * rl_batch_async or rl_check_all_async (call) with th_in_submit set, so
 * that a callback run inside the call marks b->sync and wait_batch fails.
 */
static int
submit_to(int (*call)(rl_limiter *, const rl_request *, size_t,
                      rl_batch_cb, void *),
          rl_limiter *rl, const rl_request *reqs, size_t n, struct brec *b)
{
    int rc;

    th_in_submit = true;
    rc = call(rl, reqs, n, batch_cb, b);
    th_in_submit = false;
    return rc;
}

static void
wait_batch(struct brec *b, int calls)
{
    ck_assert(th_wait_for(base, &b->calls, calls, 5000));
    ck_assert_int_eq(b->calls, calls);
    ck_assert(!b->sync);
}

/* n single checks on key, in one tick: how many were admitted. */
static int
singles(rl_limiter *rl, const char *key, int n, int64_t max, int64_t window)
{
    struct th_rec rec[64];
    int i, allowed = 0, calls = 0;

    ck_assert_int_le(n, 64);
    memset(rec, 0, sizeof(rec));
    for (i = 0; i < n; i++)
        ck_assert_int_eq(rl_check_async(rl, key, max, window, th_check_cb,
                                        &rec[i]), RL_OK);
    for (i = 0; i < n; i++) {
        ck_assert(th_wait_for(base, &rec[i].calls, 1, 5000));
        calls += rec[i].calls;
        allowed += rec[i].r.allowed;
    }
    ck_assert_int_eq(calls, n);
    return allowed;
}

/* ---- the batch processor ---- */

START_TEST(batch_results_in_order_with_a_bad_item)
{
    rl_limiter *rl = new_limiter(RL_FIXED_WINDOW, _i == 1);
    static struct brec b;
    rl_request reqs[10];
    char keys[10][24];
    int i;

    memset(&b, 0, sizeof(b));
    for (i = 0; i < 10; i++) {
        snprintf(keys[i], sizeof(keys[i]), "item:%d", i);
        reqs[i].key = keys[i];
        reqs[i].max_requests = i == 3 ? 0 : 4;  /* item 3 is out of bounds */
        reqs[i].window_ms = 60000;
        reqs[i].cost = i == 7 ? 3 : 1;          /* item 7 costs more */
    }
    ck_assert_int_eq(submit_to(rl_batch_async, rl, reqs, 10, &b), RL_OK);
    wait_batch(&b, 1);
    ck_assert_uint_eq(b.n, 10);
    for (i = 0; i < 10; i++) {
        ck_assert_str_eq(b.keys[i], keys[i]);
        if (i == 3) {
            ck_assert_int_eq(b.r[i].status, RL_ERR_INVALID);
            ck_assert_int_eq(b.r[i].source, RL_SOURCE_FALLBACK);
            ck_assert(!b.r[i].allowed);
            continue;
        }
        ck_assert_int_eq(b.r[i].status, RL_OK);
        ck_assert_int_eq(b.r[i].source, RL_SOURCE_BACKEND);
        ck_assert(b.r[i].allowed);
        ck_assert_int_eq(b.r[i].limit, 4);
        ck_assert_int_eq(b.r[i].remaining, i == 7 ? 1 : 3);
    }
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_BATCH_CALLS), 1);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_BATCH_ITEMS), 10);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_BATCH_ITEMS_OK), 9);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_PENDING), 0);
    rl_free(rl);
}
END_TEST

/* 1,000 items in chunks of 50, 5 in flight: exactly 20 EVALSHAs, exact
   admissions per key. */
START_TEST(batch_goes_in_chunks_of_batch_size)
{
    rl_config cfg;
    rl_limiter *rl = NULL;
    static struct brec b;
    static rl_request reqs[1000];
    static char keys[10][24];
    int i, allowed = 0;

    memset(&b, 0, sizeof(b));
    redis_config(&cfg, RL_SLIDING_WINDOW);
    cfg.batch.size = 50;
    cfg.batch.concurrency = 5;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    ck_assert_int_eq(singles(rl, "warm", 1, 5, 1000), 1); /* connected */
    ck_assert_int_eq(fx_redis_reset_stats(srv), 0);
    for (i = 0; i < 10; i++)
        snprintf(keys[i], sizeof(keys[i]), "chunk:%d", i);
    for (i = 0; i < 1000; i++) {
        reqs[i].key = keys[i % 10];
        reqs[i].max_requests = 60;
        reqs[i].window_ms = 60000;
        reqs[i].cost = 1;
    }
    ck_assert_int_eq(submit_to(rl_batch_async, rl, reqs, 1000, &b), RL_OK);
    wait_batch(&b, 1);
    for (i = 0; i < 1000; i++) {
        ck_assert_int_eq(b.r[i].status, RL_OK);
        allowed += b.r[i].allowed;
        /* the first 60 of each key pass, in order */
        ck_assert_int_eq(b.r[i].allowed, i / 10 < 60);
    }
    ck_assert_int_eq(allowed, 600);
    ck_assert_int_eq(fx_redis_commandstat(srv, "evalsha"), 20);
    rl_free(rl);
}
END_TEST

/* Redis stopped: the items past batch.timeout_ms complete through the
   fallback with RL_ERR_TIMEOUT, well before the command timeout. */
START_TEST(batch_timeout_with_a_stopped_server)
{
    rl_config cfg;
    rl_limiter *rl = NULL;
    static struct brec b;
    static rl_request reqs[300];
    int64_t t0;
    int i;

    memset(&b, 0, sizeof(b));
    redis_config(&cfg, RL_FIXED_WINDOW);
    cfg.redis.command_timeout_ms = 5000;
    cfg.batch.timeout_ms = 300;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    ck_assert_int_eq(singles(rl, "warm", 1, 5, 1000), 1);
    for (i = 0; i < 300; i++) {
        reqs[i].key = "stopped";
        reqs[i].max_requests = 1000;
        reqs[i].window_ms = 60000;
        reqs[i].cost = 1;
    }
    ck_assert_int_eq(fx_redis_pause(srv), 0);
    t0 = th_mono_ms();
    ck_assert_int_eq(submit_to(rl_batch_async, rl, reqs, 300, &b), RL_OK);
    wait_batch(&b, 1);
    ck_assert_int_lt(th_mono_ms() - t0, 2000);
    ck_assert_int_ge(th_mono_ms() - t0, 250);
    for (i = 0; i < 300; i++) {
        ck_assert_int_eq(b.r[i].status, RL_ERR_TIMEOUT);
        ck_assert_int_eq(b.r[i].source, RL_SOURCE_FALLBACK);
        ck_assert(b.r[i].allowed); /* the allow policy */
    }
    ck_assert_int_eq(fx_redis_resume(srv), 0);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_BATCH_ITEMS_OK), 0);
    rl_free(rl);
}
END_TEST

/* rl_free with a batch half sent: one callback, every item answered. */
START_TEST(free_with_a_batch_in_flight)
{
    rl_limiter *rl = new_limiter(RL_TOKEN_BUCKET, false);
    static struct brec b;
    static rl_request reqs[1000];
    int i;

    memset(&b, 0, sizeof(b));
    for (i = 0; i < 1000; i++) {
        reqs[i].key = "going";
        reqs[i].max_requests = 10;
        reqs[i].window_ms = 1000;
        reqs[i].cost = 1;
    }
    ck_assert_int_eq(submit_to(rl_batch_async, rl, reqs, 1000, &b), RL_OK);
    rl_free(rl);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_uint_eq(b.n, 1000);
    for (i = 0; i < 1000; i++)
        ck_assert_int_eq(b.r[i].status, RL_ERR_SHUTDOWN);
    th_drain(base);
    ck_assert_int_eq(b.calls, 1);
}
END_TEST

START_TEST(refused_calls_never_call_back)
{
    rl_limiter *rl = new_limiter(RL_GCRA, true);
    static struct brec b;
    rl_request ok = {"k", 5, 1000, 1}, bad = {"k", 5, 0, 1};
    rl_request two[2] = {{"a", 5, 1000, 1}, {"", 5, 1000, 1}};

    memset(&b, 0, sizeof(b));
    th_in_submit = true;
    ck_assert_int_eq(rl_batch_async(NULL, &ok, 1, batch_cb, &b),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_batch_async(rl, NULL, 1, batch_cb, &b),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_batch_async(rl, &ok, 0, batch_cb, &b),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_batch_async(rl, &ok, 1, NULL, &b), RL_ERR_INVALID);
    ck_assert_int_eq(rl_batch_async(rl, &ok, RL_BATCH_ITEMS_MAX + 1,
                                    batch_cb, &b), RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_all_async(rl, &bad, 1, batch_cb, &b),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_all_async(rl, two, 2, batch_cb, &b),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_all_async(rl, &ok, RL_CHECK_ALL_MAX + 1,
                                        batch_cb, &b), RL_ERR_INVALID);
    th_in_submit = false;
    th_run_for(base, 20);
    ck_assert_int_eq(b.calls, 0);
    ck_assert(!b.sync);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_REFUSED), 7); /* NULL: none */
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_PENDING), 0);
    rl_free(rl);
}
END_TEST

/* ---- the multi-limit check ---- */

/*
 * Limits a (max 5), b (max 2), c (max 10) on one hash tag.  Five checks:
 * two admitted, three denied by b alone.  Then a has exactly 3 left and c
 * exactly 8: the denied checks charged nothing.  _i: algorithm * 2 +
 * local.
 */
START_TEST(denied_multi_limit_charges_nothing)
{
    rl_algorithm alg = (rl_algorithm)(_i / 2);
    rl_limiter *rl = new_limiter(alg, _i % 2 == 1);
    static struct brec b;
    rl_request lim[3] = {{"{u1}a", 5, 60000, 1}, {"{u1}b", 2, 60000, 1},
                         {"{u1}c", 10, 60000, 1}};
    int i;

    memset(&b, 0, sizeof(b));
    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(submit_to(rl_check_all_async, rl, lim, 3, &b),
                         RL_OK);
        wait_batch(&b, i + 1);
        ck_assert_uint_eq(b.n, 3);
        ck_assert_int_eq(b.r[0].allowed, i < 2);
        ck_assert_int_eq(b.r[1].allowed, i < 2);
        ck_assert_int_eq(b.r[2].allowed, i < 2);
        ck_assert_int_eq(b.r[0].status, RL_OK);
        ck_assert_int_eq(b.r[0].source, RL_SOURCE_BACKEND);
        ck_assert_str_eq(b.keys[1], "{u1}b");
        if (i >= 2) {
            ck_assert_int_eq(b.r[0].retry_after_ms, 0);
            ck_assert_int_gt(b.r[1].retry_after_ms, 0);
            ck_assert_int_eq(b.r[2].retry_after_ms, 0);
            ck_assert_int_eq(b.r[0].remaining, 3); /* uncharged */
            ck_assert_int_eq(b.r[2].remaining, 8);
        }
    }
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_MULTI_CALLS), 5);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_MULTI_DENIED), 3);
    ck_assert_int_eq(singles(rl, "{u1}a", 10, 5, 60000), 3);
    ck_assert_int_eq(singles(rl, "{u1}c", 20, 10, 60000), 8);
    rl_free(rl);
}
END_TEST

/* One multi-limit check is one EVALSHA, even among other checks. */
START_TEST(multi_limit_is_one_script_call)
{
    rl_limiter *rl = new_limiter(RL_SLIDING_WINDOW, false);
    static struct brec b;
    rl_request lim[4] = {{"{t}g", 100, 1000, 1}, {"{t}u", 10, 1000, 1},
                         {"{t}e", 50, 1000, 2}, {"{t}u", 10, 1000, 1}};
    struct th_rec rec = {0};

    memset(&b, 0, sizeof(b));
    ck_assert_int_eq(singles(rl, "warm", 1, 5, 1000), 1);
    ck_assert_int_eq(fx_redis_reset_stats(srv), 0);
    ck_assert_int_eq(rl_check_async(rl, "solo", 5, 1000, th_check_cb, &rec),
                     RL_OK);
    ck_assert_int_eq(submit_to(rl_check_all_async, rl, lim, 4, &b), RL_OK);
    wait_batch(&b, 1);
    ck_assert(th_wait_for(base, &rec.calls, 1, 5000));
    ck_assert_int_eq(fx_redis_commandstat(srv, "evalsha"), 1);
    ck_assert(b.r[0].allowed && b.r[3].allowed);
    ck_assert_int_eq(b.r[1].remaining, 9);  /* {t}u twice: 10 - 1 */
    ck_assert_int_eq(b.r[3].remaining, 8);  /*            then - 1 */
    ck_assert_int_eq(b.r[2].remaining, 48);
    rl_free(rl);
}
END_TEST

/*
 * One racing process (index i): 60 multi-limit checks on the global limit
 * and its own, on a fresh loop.  Its exit status: how many it admitted,
 * or 255 when a check was refused, called back synchronously or not at
 * all.
 */
static int
race_child(int i)
{
    static struct brec b;
    char user[24];
    rl_request lim[2] = {{"{race}global", 100, 60000, 1},
                         {user, 40, 60000, 1}};
    rl_config cfg;
    rl_limiter *rl = NULL;
    int k, got, refused = 0;

    event_base_free(base);
    base = event_base_new();
    snprintf(user, sizeof(user), "{race}u%d", i);
    redis_config(&cfg, RL_FIXED_WINDOW);
    if (rl_new(base, &cfg, &rl) != RL_OK)
        return 255;
    for (k = 0; k < 60; k++)
        refused += submit_to(rl_check_all_async, rl, lim, 2, &b) != RL_OK;
    th_wait_for(base, &b.calls, 60, 10000);
    got = (int)rl_metric(rl, RL_METRIC_MULTI_CALLS) -
          (int)rl_metric(rl, RL_METRIC_MULTI_DENIED);
    rl_free(rl);
    return b.calls == 60 && !b.sync && refused == 0 ? got : 255;
}

/*
 * Four processes race 60 multi-limit checks each on a global limit of 100
 * and a per-process limit of 40: exactly 100 admitted in all, and the
 * global limit holds exactly the admitted ones (nothing charged by the
 * denied).
 */
START_TEST(processes_racing_multi_limit)
{
    pid_t pid[4];
    int i, st, got, admitted = 0;
    rl_limiter *rl;

    for (i = 0; i < 4; i++) {
        pid[i] = fork();
        ck_assert_int_ge(pid[i], 0);
        if (pid[i] == 0)
            _exit(race_child(i));
    }
    for (i = 0; i < 4; i++) {
        ck_assert_int_eq(waitpid(pid[i], &st, 0), pid[i]);
        ck_assert(WIFEXITED(st));
        got = WEXITSTATUS(st);
        ck_assert_int_ge(got, 0);
        ck_assert_int_le(got, 40);
        admitted += got;
    }
    ck_assert_int_eq(admitted, 100);
    rl = new_limiter(RL_FIXED_WINDOW, false);
    ck_assert_int_eq(singles(rl, "{race}global", 5, 100, 60000), 0);
    rl_free(rl);
}
END_TEST

/* Redis gone: the multi-limit check fails over as one, one callback. */
START_TEST(multi_limit_fails_over_as_one)
{
    rl_config cfg;
    rl_limiter *rl = NULL;
    static struct brec b;
    rl_request lim[3] = {{"{f}a", 5, 1000, 1}, {"{f}b", 1, 1000, 1},
                         {"{f}c", 3, 1000, 1}};
    int i;

    memset(&b, 0, sizeof(b));
    redis_config(&cfg, RL_FIXED_WINDOW);
    cfg.fallback = _i == 0 ? RL_FALLBACK_DENY : RL_FALLBACK_LOCAL;
    cfg.redis.command_timeout_ms = 200;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    ck_assert_int_eq(singles(rl, "warm", 1, 5, 1000), 1);
    ck_assert_int_eq(fx_redis_pause(srv), 0);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(submit_to(rl_check_all_async, rl, lim, 3, &b),
                         RL_OK);
        wait_batch(&b, i + 1);
        ck_assert_int_eq(b.r[0].source, RL_SOURCE_FALLBACK);
        ck_assert_int_ne(b.r[0].status, RL_OK);
        ck_assert_int_eq(b.r[1].status, b.r[0].status);
        /* deny: all denied; local: the first passes, then b denies */
        ck_assert_int_eq(b.r[0].allowed, _i == 1 && i == 0);
        ck_assert_int_eq(b.r[1].allowed, b.r[0].allowed);
        ck_assert_int_eq(b.r[2].allowed, b.r[0].allowed);
    }
    ck_assert_int_eq(fx_redis_resume(srv), 0);
    rl_free(rl);
}
END_TEST

static Suite *
group_suite(void)
{
    Suite *s = suite_create("group");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, batch_results_in_order_with_a_bad_item, 0, 2);
    tcase_add_test(tc, batch_goes_in_chunks_of_batch_size);
    tcase_add_test(tc, batch_timeout_with_a_stopped_server);
    tcase_add_test(tc, free_with_a_batch_in_flight);
    tcase_add_test(tc, refused_calls_never_call_back);
    tcase_add_loop_test(tc, denied_multi_limit_charges_nothing, 0,
                        2 * (RL_GCRA + 1));
    tcase_add_test(tc, multi_limit_is_one_script_call);
    tcase_add_test(tc, processes_racing_multi_limit);
    tcase_add_loop_test(tc, multi_limit_fails_over_as_one, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return fx_redis_available() ? th_run_suite(group_suite(), CK_NORMAL) : 77;
}
