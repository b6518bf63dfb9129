/*
 * test_faults.c: real failures injected into a real redis-server while the
 * limiter works: SIGSTOP (Redis hangs) then SIGCONT, SIGKILL then a
 * restart on the same port, CLIENT KILL, DEBUG SLEEP longer than the
 * command timeout, a password changed under the limiter, checks in flight
 * when the server dies, back-pressure, and rl_free in the middle of it.
 * Each test counts callbacks (exactly one per accepted check, and none
 * later), checks status and source, and the return to Redis.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "fixture_redis.h"
#include "helpers.h"

#define TIMEOUT_MS 200

static struct event_base *base;
static struct fx_redis *srv;

struct tally {
    int calls, allowed;
    int by_source[3];
    int by_status[16]; /* index -status */
};

static void
tally_cb(const rl_result *r, void *arg)
{
    struct tally *t = arg;

    t->calls++;
    t->allowed += r->allowed;
    t->by_source[r->source]++;
    t->by_status[-r->status]++;
}

/*
 * rl_config.pipeline_depth of the limiters a test makes: the tests run
 * as loops over 0 and 1 set it from _i (with 1, checks that do not fill
 * a batch wait in the queue while a command is in flight, and must fail
 * over from there just the same).
 */
static int depth;

static void
setup(void)
{
    depth = 0;
    base = event_base_new();
    srv = fx_redis_start(NULL);
    ck_assert_ptr_nonnull(srv);
}

static void
teardown(void)
{
    fx_redis_stop(srv);
    event_base_free(base);
}

static rl_limiter *
new_limiter(rl_config *cfg)
{
    rl_limiter *rl = NULL;

    cfg->redis.host = srv->host;
    cfg->redis.port = srv->port;
    cfg->redis.command_timeout_ms = TIMEOUT_MS;
    cfg->redis.connect_timeout_ms = 300;
    cfg->log_level = RL_LOG_NONE;
    cfg->pipeline_depth = depth;
    ck_assert_int_eq(rl_new(base, cfg, &rl), RL_OK);
    return rl;
}

static rl_limiter *
new_default(void)
{
    rl_config cfg;

    rl_config_init(&cfg);
    cfg.algorithm = RL_FIXED_WINDOW;
    return new_limiter(&cfg);
}

static void
submit(rl_limiter *rl, const char *key, int n, struct tally *t)
{
    int i;

    for (i = 0; i < n; i++)
        ck_assert_int_eq(rl_check_async(rl, key, 1000000, 60000, tally_cb,
                                        t), RL_OK);
}

/* Submits n and waits for their n callbacks. */
static void
round_trip(rl_limiter *rl, int n, struct tally *t)
{
    int target = t->calls + n;

    submit(rl, "k", n, t);
    ck_assert(th_wait_for(base, &t->calls, target, 5000));
}

/* Waits ms and asserts no further callback arrived (exactly once). */
static void
assert_quiet(struct tally *t, int ms)
{
    int calls = t->calls;

    th_run_for(base, ms);
    ck_assert_int_eq(t->calls, calls);
}

/* Checks one at a time until Redis answers one; returns the ms it took. */
static int64_t
time_to_backend(rl_limiter *rl, int64_t limit_ms)
{
    int64_t start = th_mono_ms();
    struct tally t = {0};

    while (th_mono_ms() - start < limit_ms) {
        round_trip(rl, 1, &t);
        if (t.by_source[RL_SOURCE_BACKEND] > 0)
            return th_mono_ms() - start;
        th_run_for(base, 20);
    }
    return -1;
}

/* ---- Redis hangs ---- */

START_TEST(sigstop_times_out_then_recovers)
{
    rl_limiter *rl;
    struct tally t = {0}, w = {0};
    int64_t start;

    depth = _i;
    rl = new_default();

    round_trip(rl, 1, &w);
    ck_assert_int_eq(w.by_source[RL_SOURCE_BACKEND], 1);
    ck_assert_int_eq(fx_redis_pause(srv), 0);
    start = th_mono_ms();
    submit(rl, "k", 50, &t);
    ck_assert(th_wait_for(base, &t.calls, 50, 3000));
    ck_assert_int_lt(th_mono_ms() - start, TIMEOUT_MS + 300);
    ck_assert_int_eq(t.by_status[-RL_ERR_TIMEOUT], 50);
    ck_assert_int_eq(t.by_source[RL_SOURCE_FALLBACK], 50);
    ck_assert_int_eq(t.allowed, 50);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_TIMEOUTS), 50);
    ck_assert_int_eq(fx_redis_resume(srv), 0);
    assert_quiet(&t, 300); /* the late replies are dropped */
    ck_assert_int_ge(time_to_backend(rl, 1500), 0);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_PENDING), 0);
    rl_free(rl);
}
END_TEST

START_TEST(debug_sleep_longer_than_the_timeout)
{
    rl_limiter *rl = new_default();
    struct tally t = {0}, w = {0};
    redisContext *side = fx_redis_connect(srv, 1000);
    int done = 0;

    round_trip(rl, 1, &w);
    ck_assert_ptr_nonnull(side);
    redisAppendCommand(side, "DEBUG SLEEP 0.6");
    while (!done)
        ck_assert_int_eq(redisBufferWrite(side, &done), REDIS_OK);
    th_run_for(base, 20);
    submit(rl, "k", 30, &t);
    ck_assert(th_wait_for(base, &t.calls, 30, 3000));
    ck_assert_int_eq(t.by_status[-RL_ERR_TIMEOUT], 30);
    assert_quiet(&t, 700);
    ck_assert_int_ge(time_to_backend(rl, 1000), 0);
    redisFree(side);
    rl_free(rl);
}
END_TEST

/* ---- Redis dies ---- */

START_TEST(sigkill_then_restart_on_the_same_port)
{
    rl_limiter *rl;
    struct tally t = {0}, w = {0};
    int64_t back;

    depth = _i;
    rl = new_default();

    round_trip(rl, 1, &w);
    ck_assert_int_eq(fx_redis_kill(srv), 0);
    th_run_for(base, 50);
    round_trip(rl, 20, &t);
    ck_assert_int_eq(t.calls, 20);
    ck_assert_int_eq(t.by_status[-RL_ERR_REDIS], 20);
    ck_assert_int_eq(t.by_source[RL_SOURCE_FALLBACK], 20);
    ck_assert_int_eq(fx_redis_restart(srv), 0);
    /* Back-off is capped at 2 s: Redis decides again within that plus
       the connect time; the script is loaded again by the handshake. */
    back = time_to_backend(rl, 3000);
    ck_assert_int_ge(back, 0);
    ck_assert_int_ge(rl_metric(rl, RL_METRIC_REDIS_RECONNECTS), 1);
    ck_assert_int_eq(fx_redis_commandstat(srv, "evalsha"), 1);
    rl_free(rl);
}
END_TEST

/* Checks sent and unanswered when the server dies complete with
   RL_ERR_REDIS and are never sent again (they may have counted). */
START_TEST(in_flight_checks_are_never_resent)
{
    rl_limiter *rl;
    struct tally t = {0}, w = {0};

    depth = _i;
    rl = new_default();

    round_trip(rl, 1, &w);
    ck_assert_int_eq(fx_redis_pause(srv), 0);
    submit(rl, "k", 100, &t);
    th_run_for(base, 30); /* written, unanswered */
    ck_assert_int_eq(t.calls, 0);
    ck_assert_int_eq(fx_redis_kill(srv), 0);
    ck_assert(th_wait_for(base, &t.calls, 100, 2000));
    ck_assert_int_eq(t.by_status[-RL_ERR_REDIS], 100);
    ck_assert_int_eq(fx_redis_restart(srv), 0);
    ck_assert_int_ge(time_to_backend(rl, 3000), 0);
    /* One EVALSHA: the probe of time_to_backend, nothing resent. */
    ck_assert_int_eq(fx_redis_commandstat(srv, "evalsha"), 1);
    assert_quiet(&t, 100);
    rl_free(rl);
}
END_TEST

START_TEST(client_kill_reconnects)
{
    rl_limiter *rl = new_default();
    struct tally w = {0};
    redisReply *r;

    round_trip(rl, 1, &w);
    r = fx_redis_cmd(srv, "CLIENT KILL TYPE normal");
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    ck_assert_int_ge(time_to_backend(rl, 3000), 0);
    ck_assert_int_ge(rl_metric(rl, RL_METRIC_REDIS_RECONNECTS), 1);
    rl_free(rl);
}
END_TEST

START_TEST(password_changed_under_the_limiter)
{
    struct fx_redis_opts o = {.requirepass = "first-pw"};
    rl_config cfg;
    rl_limiter *rl;
    struct tally t = {0}, w = {0};
    redisReply *r;

    teardown();
    base = event_base_new();
    srv = fx_redis_start(&o);
    ck_assert_ptr_nonnull(srv);
    rl_config_init(&cfg);
    cfg.redis.password = "first-pw";
    rl = new_limiter(&cfg);
    round_trip(rl, 1, &w);
    ck_assert_int_eq(w.by_source[RL_SOURCE_BACKEND], 1);
    r = fx_redis_cmd(srv, "CONFIG SET requirepass second-pw");
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    /* The fixture re-authenticates with the password it knows. */
    free(srv->pass);
    srv->pass = strdup("second-pw");
    r = fx_redis_cmd(srv, "CLIENT KILL TYPE normal");
    if (r != NULL)
        freeReplyObject(r);
    th_run_for(base, 100);
    round_trip(rl, 10, &t);
    ck_assert_int_eq(t.by_status[-RL_ERR_REDIS], 10);
    ck_assert_int_eq(t.by_source[RL_SOURCE_FALLBACK], 10);
    r = fx_redis_cmd(srv, "CONFIG SET requirepass first-pw");
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    free(srv->pass);
    srv->pass = strdup("first-pw");
    ck_assert_int_ge(time_to_backend(rl, 3000), 0);
    rl_free(rl);
}
END_TEST

/* ---- the circuit breaker ---- */

struct changes {
    int n;
    rl_breaker_state to[16];
};

static void
on_change(rl_breaker_state from, rl_breaker_state to, const char *reason,
          void *arg)
{
    struct changes *c = arg;

    (void)from;
    ck_assert_ptr_nonnull(reason);
    if (c->n < 16)
        c->to[c->n] = to;
    c->n++;
}

START_TEST(breaker_opens_then_recovers)
{
    rl_config cfg;
    rl_limiter *rl;
    struct tally t = {0}, u = {0}, w = {0};
    struct changes ch = {0};
    rl_breaker_state st;
    int64_t start, back;
    long long evalsha;

    rl_config_init(&cfg);
    cfg.circuit_breaker.enabled = true;
    cfg.circuit_breaker.failure_threshold = 5;
    cfg.circuit_breaker.recovery_timeout_ms = 400;
    cfg.circuit_breaker.on_change = on_change;
    cfg.circuit_breaker.on_change_arg = &ch;
    rl = new_limiter(&cfg);
    round_trip(rl, 1, &w);
    ck_assert_int_eq(rl_breaker_get(rl, &st), RL_OK);
    ck_assert_int_eq(st, RL_BREAKER_CLOSED);
    ck_assert_int_eq(fx_redis_pause(srv), 0);
    /* Five timeouts trip it: exactly at the threshold. */
    round_trip(rl, 5, &t);
    ck_assert_int_eq(t.by_status[-RL_ERR_TIMEOUT], 5);
    ck_assert_int_eq(rl_breaker_get(rl, &st), RL_OK);
    ck_assert_int_eq(st, RL_BREAKER_OPEN);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_BREAKER_TRIPS), 1);
    /* Open: answered at once, Redis not asked. */
    start = th_mono_ms();
    round_trip(rl, 100, &u);
    ck_assert_int_lt(th_mono_ms() - start, 50);
    ck_assert_int_eq(u.by_status[-RL_ERR_CIRCUIT_OPEN], 100);
    ck_assert_int_eq(u.by_source[RL_SOURCE_FALLBACK], 100);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_BREAKER_REFUSED), 100);
    ck_assert_int_eq(fx_redis_resume(srv), 0);
    th_run_for(base, 50);
    fx_redis_reset_stats(srv);
    evalsha = fx_redis_commandstat(srv, "evalsha");
    ck_assert_int_eq(evalsha, 0);
    /* Back to Redis within the recovery timeout plus one second. */
    back = time_to_backend(rl, 400 + 1000);
    ck_assert_int_ge(back, 0);
    ck_assert_int_eq(rl_breaker_get(rl, &st), RL_OK);
    ck_assert_int_eq(st, RL_BREAKER_CLOSED);
    th_run_for(base, 10);
    ck_assert_int_eq(ch.n, 3);
    ck_assert_int_eq(ch.to[0], RL_BREAKER_OPEN);
    ck_assert_int_eq(ch.to[1], RL_BREAKER_HALF_OPEN);
    ck_assert_int_eq(ch.to[2], RL_BREAKER_CLOSED);
    rl_free(rl);
}
END_TEST

/*
 * Redis killed and restarted while the breaker is open with a long
 * recovery timeout: the new connection ends the wait, and Redis decides
 * again within a second, not 30.
 */
START_TEST(breaker_ends_its_wait_when_redis_is_back)
{
    rl_config cfg;
    rl_limiter *rl;
    struct tally t = {0}, w = {0};
    rl_breaker_state st;
    int64_t back;

    rl_config_init(&cfg);
    cfg.circuit_breaker.enabled = true;
    cfg.circuit_breaker.failure_threshold = 3;
    cfg.circuit_breaker.recovery_timeout_ms = 30000;
    rl = new_limiter(&cfg);
    round_trip(rl, 1, &w);
    ck_assert_int_eq(fx_redis_kill(srv), 0);
    round_trip(rl, 3, &t);
    ck_assert_int_eq(t.by_status[-RL_ERR_REDIS], 3);
    ck_assert_int_eq(rl_breaker_get(rl, &st), RL_OK);
    ck_assert_int_eq(st, RL_BREAKER_OPEN);
    ck_assert_int_eq(fx_redis_restart(srv), 0);
    back = time_to_backend(rl, 3000);
    ck_assert_int_ge(back, 0);
    ck_assert_int_lt(back, 3000);
    ck_assert_int_eq(rl_breaker_get(rl, &st), RL_OK);
    ck_assert_int_eq(st, RL_BREAKER_CLOSED);
    rl_free(rl);
}
END_TEST

START_TEST(breaker_forced_by_the_operator)
{
    rl_config cfg;
    rl_limiter *rl;
    struct tally t = {0}, w = {0};
    rl_breaker_state st;

    rl_config_init(&cfg);
    cfg.circuit_breaker.enabled = true;
    rl = new_limiter(&cfg);
    round_trip(rl, 1, &w);
    ck_assert_int_eq(rl_breaker_force(rl, RL_BREAKER_FORCE_OPEN), RL_OK);
    round_trip(rl, 10, &t);
    ck_assert_int_eq(t.by_status[-RL_ERR_CIRCUIT_OPEN], 10);
    ck_assert_int_eq(rl_breaker_force(rl, RL_BREAKER_AUTO), RL_OK);
    ck_assert_int_eq(rl_breaker_get(rl, &st), RL_OK);
    ck_assert_int_eq(st, RL_BREAKER_CLOSED);
    round_trip(rl, 10, &t);
    ck_assert_int_eq(t.by_source[RL_SOURCE_BACKEND], 10);
    ck_assert_int_eq(rl_breaker_force(rl, (rl_breaker_mode)7),
                     RL_ERR_INVALID);
    rl_free(rl);
    rl = new_default();
    ck_assert_int_eq(rl_breaker_get(rl, &st), RL_ERR_INVALID);
    rl_free(rl);
}
END_TEST

/* ---- back-pressure and shutdown ---- */

START_TEST(overload_when_redis_hangs)
{
    rl_config cfg;
    rl_limiter *rl;
    struct tally t = {0}, w = {0};
    int i, refused = 0;

    depth = _i;

    rl_config_init(&cfg);
    cfg.max_pending = 100;
    rl = new_limiter(&cfg);
    round_trip(rl, 1, &w);
    ck_assert_int_eq(fx_redis_pause(srv), 0);
    for (i = 0; i < 150; i++)
        if (rl_check_async(rl, "k", 10, 1000, tally_cb, &t) ==
            RL_ERR_OVERLOAD)
            refused++;
    ck_assert_int_eq(refused, 50);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_PENDING), 100);
    ck_assert(th_wait_for(base, &t.calls, 100, 3000));
    ck_assert_int_eq(t.by_status[-RL_ERR_TIMEOUT], 100);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_PENDING), 0);
    ck_assert_int_eq(fx_redis_resume(srv), 0);
    assert_quiet(&t, 100);
    rl_free(rl);
}
END_TEST

START_TEST(free_with_checks_in_flight_and_queued)
{
    rl_limiter *rl;
    struct tally t = {0}, w = {0};

    depth = _i;
    rl = new_default();

    round_trip(rl, 1, &w);
    ck_assert_int_eq(fx_redis_pause(srv), 0);
    submit(rl, "k", 70, &t);
    th_run_for(base, 30);   /* 70 in flight */
    submit(rl, "k", 30, &t); /* 30 queued, not yet written */
    ck_assert_int_eq(t.calls, 0);
    rl_free(rl);
    ck_assert_int_eq(t.calls, 100);
    ck_assert_int_eq(t.by_status[-RL_ERR_SHUTDOWN], 100);
    ck_assert_int_eq(t.by_source[RL_SOURCE_FALLBACK], 100);
    ck_assert_int_eq(fx_redis_resume(srv), 0);
    th_run_for(base, 100);
    ck_assert_int_eq(t.calls, 100);
}
END_TEST

START_TEST(free_during_reconnection)
{
    rl_limiter *rl = new_default();
    struct tally t = {0}, w = {0};

    round_trip(rl, 1, &w);
    ck_assert_int_eq(fx_redis_kill(srv), 0);
    th_run_for(base, 60);
    submit(rl, "k", 10, &t);
    rl_free(rl);
    ck_assert_int_eq(t.calls, 10);
    th_run_for(base, 100);
    ck_assert_int_eq(t.calls, 10);
    /* Nothing of the limiter is left on the loop. */
    ck_assert_int_eq(event_base_loop(base, EVLOOP_NONBLOCK), 1);
}
END_TEST

static Suite *
faults_suite(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, sigstop_times_out_then_recovers, 0, 2);
    tcase_add_test(tc, debug_sleep_longer_than_the_timeout);
    tcase_add_loop_test(tc, sigkill_then_restart_on_the_same_port, 0, 2);
    tcase_add_loop_test(tc, in_flight_checks_are_never_resent, 0, 2);
    tcase_add_test(tc, client_kill_reconnects);
    tcase_add_test(tc, password_changed_under_the_limiter);
    tcase_add_test(tc, breaker_opens_then_recovers);
    tcase_add_test(tc, breaker_ends_its_wait_when_redis_is_back);
    tcase_add_test(tc, breaker_forced_by_the_operator);
    tcase_add_loop_test(tc, overload_when_redis_hangs, 0, 2);
    tcase_add_loop_test(tc, free_with_checks_in_flight_and_queued, 0, 2);
    tcase_add_test(tc, free_during_reconnection);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return fx_redis_available() ? th_run_suite(faults_suite(), CK_NORMAL) : 77;
}
