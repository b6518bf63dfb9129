/*
 * test_breaker.c: the circuit breaker (src/breaker.c) on its own, at
 * explicit times: the parameter bounds, opening at exactly the consecutive
 * threshold, the failure-rate and slow-call-rate windows (minimum_calls,
 * eviction of the oldest outcome), the recovery deadline to the
 * millisecond, the half-open probes and their verdict, the doubled and
 * capped wait, the operator override, stale outcomes, cancelled tickets,
 * the exact sequence of transition callbacks and counts, and the cost of
 * allow and record against the window's size.  A random sequence of
 * operations is also played against a plain reference model.
 */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check_main.h"
#include "breaker.h"

/* ---- recording the transitions ---- */

#define MAX_EVENTS 64

struct event_rec {
    enum rl_brk_state from, to;
    char reason[128];
};

struct recorder {
    struct rl_breaker *b;
    int n;
    int bad_state;     /* callbacks that saw a state other than `to` */
    struct event_rec ev[MAX_EVENTS];
};

static struct recorder rec;

static void
on_transition(enum rl_brk_state from, enum rl_brk_state to,
              const char *reason, void *arg)
{
    struct recorder *r = arg;

    if (rl__breaker_state(r->b) != to)
        r->bad_state++;
    if (r->n < MAX_EVENTS) {
        r->ev[r->n].from = from;
        r->ev[r->n].to = to;
        snprintf(r->ev[r->n].reason, sizeof(r->ev[r->n].reason), "%s",
                 reason);
    }
    r->n++;
}

static struct rl_breaker_params
params(int64_t threshold, int64_t recovery)
{
    struct rl_breaker_params p;

    rl__breaker_params_init(&p);
    p.failure_threshold = threshold;
    p.recovery_timeout_ms = recovery;
    return p;
}

static void
setup(struct rl_breaker *b, const struct rl_breaker_params *p)
{
    memset(&rec, 0, sizeof(rec));
    rec.b = b;
    ck_assert_int_eq(rl__breaker_init(b, p, on_transition, &rec), RL_OK);
    ck_assert_int_eq(rl__breaker_state(b), RL_BRK_CLOSED);
    ck_assert_int_eq(rl__breaker_mode(b), RL_BRK_AUTO);
}

static void
expect_event(int i, enum rl_brk_state from, enum rl_brk_state to,
             const char *reason)
{
    ck_assert_int_gt(rec.n, i);
    ck_assert_int_eq(rec.ev[i].from, from);
    ck_assert_int_eq(rec.ev[i].to, to);
    ck_assert_str_eq(rec.ev[i].reason, reason);
    ck_assert_int_eq(rec.bad_state, 0);
}

/* One call let through and its outcome; fails the test if refused. */
static void
call(struct rl_breaker *b, bool ok, int64_t latency, int64_t now)
{
    uint64_t t = rl__breaker_allow(b, now);

    ck_assert_msg(t != RL_BRK_REFUSED, "refused at %lld", (long long)now);
    rl__breaker_record(b, t, ok, latency, now);
    ck_assert_int_eq(rl__breaker_verify(b), 0);
}

static void
call_fail(struct rl_breaker *b, int64_t now)
{
    call(b, false, 1, now);
}

static void
call_ok(struct rl_breaker *b, int64_t now)
{
    call(b, true, 1, now);
}

static struct rl_breaker_stats
stats(const struct rl_breaker *b)
{
    struct rl_breaker_stats s;

    rl__breaker_stats(b, &s);
    return s;
}

/* Opens b (closed, automatic) at now with failure_threshold failures. */
static void
trip_now(struct rl_breaker *b, int64_t now)
{
    int64_t i;

    for (i = 0; i < b->p.failure_threshold; i++)
        call_fail(b, now);
    ck_assert_int_eq(rl__breaker_state(b), RL_BRK_OPEN);
}

/* ---- parameters ---- */

START_TEST(test_params_defaults)
{
    struct rl_breaker_params p;
    struct rl_breaker b;

    rl__breaker_params_init(&p);
    ck_assert_int_eq(p.failure_threshold, 5);
    ck_assert_int_eq(p.recovery_timeout_ms, 30000);
    ck_assert_int_eq(p.max_recovery_timeout_ms, 0);
    ck_assert_int_eq(p.half_open_probes, 1);
    ck_assert_int_eq(p.failure_rate_pct, 0);
    ck_assert_int_eq(p.slow_call_rate_pct, 0);
    ck_assert_int_eq(p.slow_call_ms, 100);
    ck_assert_int_eq(p.window_size, 100);
    ck_assert_int_eq(p.minimum_calls, 20);
    ck_assert_int_eq(rl__breaker_params_validate(&p), RL_OK);
    setup(&b, &p);
    /* max 0 means 8 recovery timeouts. */
    ck_assert_int_eq(b.p.max_recovery_timeout_ms, 240000);
    ck_assert_int_eq(rl__breaker_next_deadline(&b), -1);
    ck_assert_int_eq(rl__breaker_verify(&b), 0);
}
END_TEST

struct bound {
    const char *name;
    size_t off;
    int64_t lo, hi;
};

#define B(f, lo, hi) { #f, offsetof(struct rl_breaker_params, f), lo, hi }

static const struct bound bounds[] = {
    B(failure_threshold, 1, 1000000),
    B(recovery_timeout_ms, 1, RL_BRK_TIMEOUT_MAX),
    B(half_open_probes, 1, RL_BRK_PROBES_MAX),
    B(window_size, 20, 1024),  /* lo: minimum_calls, 20 by default */
    B(minimum_calls, 1, 100),  /* hi: window_size, 100 by default */
    B(failure_rate_pct, 0, 100),
    B(slow_call_rate_pct, 0, 100),
    B(slow_call_ms, 1, RL_BRK_SLOW_MS_MAX),
};

static int
validate_with(size_t off, int64_t v)
{
    struct rl_breaker_params p;

    rl__breaker_params_init(&p);
    memcpy((char *)&p + off, &v, sizeof(v));
    return rl__breaker_params_validate(&p);
}

START_TEST(test_params_bounds)
{
    const struct bound *bd = &bounds[_i];

    ck_assert_msg(validate_with(bd->off, bd->lo) == RL_OK, "%s lo", bd->name);
    ck_assert_msg(validate_with(bd->off, bd->hi) == RL_OK, "%s hi", bd->name);
    ck_assert_msg(validate_with(bd->off, bd->lo - 1) == RL_ERR_INVALID,
                  "%s lo-1", bd->name);
    ck_assert_msg(validate_with(bd->off, bd->hi + 1) == RL_ERR_INVALID,
                  "%s hi+1", bd->name);
    ck_assert_msg(validate_with(bd->off, INT64_MIN) == RL_ERR_INVALID,
                  "%s min", bd->name);
}
END_TEST

START_TEST(test_params_max_wait)
{
    struct rl_breaker_params p = params(5, 1000);
    struct rl_breaker b, copy;

    p.max_recovery_timeout_ms = 999;
    ck_assert_int_eq(rl__breaker_params_validate(&p), RL_ERR_INVALID);
    memset(&b, 0xa5, sizeof(b));
    copy = b;
    /* Refused: b left untouched. */
    ck_assert_int_eq(rl__breaker_init(&b, &p, NULL, NULL), RL_ERR_INVALID);
    ck_assert_int_eq(memcmp(&b, &copy, sizeof(b)), 0);
    p.max_recovery_timeout_ms = 1000;
    ck_assert_int_eq(rl__breaker_params_validate(&p), RL_OK);
    p.max_recovery_timeout_ms = RL_BRK_TIMEOUT_MAX;
    ck_assert_int_eq(rl__breaker_params_validate(&p), RL_OK);
    p.max_recovery_timeout_ms = RL_BRK_TIMEOUT_MAX + 1;
    ck_assert_int_eq(rl__breaker_params_validate(&p), RL_ERR_INVALID);
    p.max_recovery_timeout_ms = -1;
    ck_assert_int_eq(rl__breaker_params_validate(&p), RL_ERR_INVALID);
    /* 8 x a long first wait is capped at the bound. */
    p = params(5, RL_BRK_TIMEOUT_MAX / 2);
    ck_assert_int_eq(rl__breaker_init(&b, &p, NULL, NULL), RL_OK);
    ck_assert_int_eq(b.p.max_recovery_timeout_ms, RL_BRK_TIMEOUT_MAX);
    /* minimum_calls beyond the window. */
    p = params(5, 1000);
    p.window_size = 10;
    p.minimum_calls = 11;
    ck_assert_int_eq(rl__breaker_params_validate(&p), RL_ERR_INVALID);
    p.minimum_calls = 10;
    ck_assert_int_eq(rl__breaker_params_validate(&p), RL_OK);
}
END_TEST

/* ---- consecutive failures ---- */

static const int64_t thresholds[] = {1, 2, 5, 17, 1000};

START_TEST(test_threshold_exact)
{
    int64_t n = thresholds[_i], i;
    struct rl_breaker_params p = params(n, 30000);
    struct rl_breaker b;
    char want[64];

    setup(&b, &p);
    for (i = 0; i < n - 1; i++)
        call_fail(&b, 100);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    ck_assert_int_eq(rec.n, 0);
    call_fail(&b, 100);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    ck_assert_int_eq(rec.n, 1);
    snprintf(want, sizeof(want), "%lld consecutive failures", (long long)n);
    expect_event(0, RL_BRK_CLOSED, RL_BRK_OPEN, want);
    ck_assert_int_eq(stats(&b).trips, 1);
    ck_assert_int_eq(stats(&b).transitions[RL_BRK_OPEN], 1);
    ck_assert_int_eq(stats(&b).transitions[RL_BRK_CLOSED], 0);
    ck_assert_int_eq(rl__breaker_next_deadline(&b), 30100);
    ck_assert(rl__breaker_allow(&b, 100) == RL_BRK_REFUSED);
    ck_assert_int_eq(stats(&b).refused, 1);
}
END_TEST

START_TEST(test_success_resets_count)
{
    struct rl_breaker_params p = params(5, 30000);
    struct rl_breaker b;
    int i;

    setup(&b, &p);
    for (i = 0; i < 4; i++)
        call_fail(&b, 0);
    call_ok(&b, 0);
    for (i = 0; i < 4; i++)
        call_fail(&b, 0);
    /* A denial by the limit is a success, with Redis's latency. */
    call(&b, true, 3, 0);
    for (i = 0; i < 4; i++)
        call_fail(&b, 0);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    ck_assert_int_eq(rec.n, 0);
    call_fail(&b, 0);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    expect_event(0, RL_BRK_CLOSED, RL_BRK_OPEN, "5 consecutive failures");
}
END_TEST

START_TEST(test_unrecorded_do_not_count)
{
    struct rl_breaker_params p = params(5, 30000);
    struct rl_breaker b;
    int i;

    setup(&b, &p);
    for (i = 0; i < 4; i++)
        call_fail(&b, 0);
    /* Calls answered without Redis (denied by cache, say): not recorded. */
    for (i = 0; i < 10000; i++)
        ck_assert(rl__breaker_allow(&b, i) != RL_BRK_REFUSED);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    ck_assert_int_eq(stats(&b).refused, 0);
    call_fail(&b, 0);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
}
END_TEST

/* ---- rates over the window ---- */

/* A breaker judged on rates only (the consecutive threshold far away). */
static void
setup_rates(struct rl_breaker *b, int64_t window, int64_t min_calls,
            int64_t fail_pct, int64_t slow_pct, int64_t slow_ms)
{
    struct rl_breaker_params p = params(RL_BRK_THRESHOLD_MAX, 1000);

    p.window_size = window;
    p.minimum_calls = min_calls;
    p.failure_rate_pct = fail_pct;
    p.slow_call_rate_pct = slow_pct;
    p.slow_call_ms = slow_ms;
    setup(b, &p);
}

/* Plays "FS.." outcomes (F failed, S succeeded) expecting no opening. */
static void
play(struct rl_breaker *b, const char *seq, int64_t now)
{
    for (; *seq != '\0'; seq++) {
        call(b, *seq == 'S', 1, now);
        ck_assert_msg(rl__breaker_state(b) == RL_BRK_CLOSED,
                      "opened early, at '%c' of ...%s", *seq, seq);
    }
}

START_TEST(test_failure_rate)
{
    struct rl_breaker b;

    setup_rates(&b, 10, 5, 50, 0, 1000);
    /* 2 of 4 (50%) but fewer than minimum_calls; then 2 of 5 (40%). */
    play(&b, "FSFSS", 0);
    call_fail(&b, 7);                       /* 3 of 6: 50% */
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    expect_event(0, RL_BRK_CLOSED, RL_BRK_OPEN,
                 "failure rate 50% over 6 calls");
    ck_assert_int_eq(rl__breaker_next_deadline(&b), 1007);
    ck_assert_int_eq(stats(&b).trips, 1);
}
END_TEST

START_TEST(test_failure_rate_reason)
{
    struct rl_breaker b;

    /* 13 failures in 21 calls: 61.9%, said 61% (rounded down). */
    setup_rates(&b, 21, 21, 60, 0, 1000);
    play(&b, "FSFSFSFSFSFSFSFSFFFF", 0);
    call_fail(&b, 0);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    expect_event(0, RL_BRK_CLOSED, RL_BRK_OPEN,
                 "failure rate 61% over 21 calls");
}
END_TEST

START_TEST(test_failure_rate_window_slides)
{
    struct rl_breaker b;

    setup_rates(&b, 4, 4, 50, 0, 1000);
    /* The first F leaves the window when the fifth call comes. */
    play(&b, "FSSSS", 0);              /* [S S S S] */
    play(&b, "F", 0);                  /* [S S S F]: 25% */
    call_fail(&b, 0);                       /* [S S F F]: 50% */
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    expect_event(0, RL_BRK_CLOSED, RL_BRK_OPEN,
                 "failure rate 50% over 4 calls");
}
END_TEST

START_TEST(test_failure_rate_off)
{
    struct rl_breaker b;
    int i;

    setup_rates(&b, 4, 1, 0, 0, 1000);
    for (i = 0; i < 1000; i++)
        call(&b, i % 3 == 0, 1, 0);    /* 2/3 failed, never 3 in a row */
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    ck_assert_int_eq(rec.n, 0);
}
END_TEST

START_TEST(test_slow_rate)
{
    struct rl_breaker b;

    setup_rates(&b, 4, 4, 0, 50, 100);
    /* 100 ms is not slower than slow_call_ms = 100. */
    call(&b, true, 101, 0);            /* [101] */
    call(&b, true, 100, 0);
    call(&b, true, 100, 0);
    call(&b, true, 100, 0);            /* 1 of 4 slow */
    call(&b, true, 101, 0);            /* the first slides out: 1 of 4 */
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    call(&b, true, 5000, 3);           /* 2 of 4 */
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    expect_event(0, RL_BRK_CLOSED, RL_BRK_OPEN,
                 "slow-call rate 50% over 4 calls");
    ck_assert_int_eq(rl__breaker_next_deadline(&b), 1003);
}
END_TEST

START_TEST(test_slow_rate_min_calls_and_failures)
{
    struct rl_breaker b;

    /* Failed calls count as slow too; nothing judged before 3 calls. */
    setup_rates(&b, 8, 3, 0, 100, 10);
    call(&b, false, 11, 0);
    call(&b, false, 250, 0);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    call(&b, false, 11, 0);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    expect_event(0, RL_BRK_CLOSED, RL_BRK_OPEN,
                 "slow-call rate 100% over 3 calls");
}
END_TEST

START_TEST(test_slow_rate_off)
{
    struct rl_breaker b;
    int i;

    setup_rates(&b, 4, 1, 0, 0, 10);
    for (i = 0; i < 100; i++)
        call(&b, true, 100000, 0);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
}
END_TEST

/* ---- recovery ---- */

START_TEST(test_recovery_exact_by_tick)
{
    struct rl_breaker_params p = params(3, 30000);
    struct rl_breaker b;

    setup(&b, &p);
    trip_now(&b, 1000);
    ck_assert_int_eq(rl__breaker_next_deadline(&b), 31000);
    rl__breaker_tick(&b, 30999);
    ck_assert(rl__breaker_allow(&b, 30999) == RL_BRK_REFUSED);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    ck_assert_int_eq(rec.n, 1);
    rl__breaker_tick(&b, 31000);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_HALF_OPEN);
    ck_assert_int_eq(rl__breaker_next_deadline(&b), -1);
    ck_assert_int_eq(rec.n, 2);
    expect_event(1, RL_BRK_OPEN, RL_BRK_HALF_OPEN, "recovery timeout");
    rl__breaker_tick(&b, 99999);       /* harmless */
    ck_assert_int_eq(rec.n, 2);
    ck_assert_int_eq(stats(&b).transitions[RL_BRK_HALF_OPEN], 1);
}
END_TEST

START_TEST(test_recovery_exact_by_allow)
{
    struct rl_breaker_params p = params(3, 30000);
    struct rl_breaker b;

    setup(&b, &p);
    trip_now(&b, 1000);
    /* No timer ran: the first check at the deadline goes half-open. */
    ck_assert(rl__breaker_allow(&b, 30999) == RL_BRK_REFUSED);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    ck_assert(rl__breaker_allow(&b, 31000) != RL_BRK_REFUSED);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_HALF_OPEN);
    expect_event(1, RL_BRK_OPEN, RL_BRK_HALF_OPEN, "recovery timeout");
}
END_TEST

/* The server answering again ends the wait at once, automatic only. */
START_TEST(test_server_back_ends_the_wait)
{
    struct rl_breaker_params p = params(3, 30000);
    struct rl_breaker b;

    setup(&b, &p);
    rl__breaker_server_back(&b);              /* closed: nothing */
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    trip_now(&b, 1000);
    rl__breaker_server_back(&b);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_HALF_OPEN);
    ck_assert_int_eq(rl__breaker_next_deadline(&b), -1);
    expect_event(1, RL_BRK_OPEN, RL_BRK_HALF_OPEN, "Redis answers again");
    ck_assert(rl__breaker_allow(&b, 1001) != RL_BRK_REFUSED);
    rl__breaker_server_back(&b);              /* half-open: nothing */
    ck_assert_int_eq(rec.n, 2);
    ck_assert_int_eq(rl__breaker_force(&b, RL_BRK_FORCE_OPEN, 1002), RL_OK);
    rl__breaker_server_back(&b);              /* forced: stays open */
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    ck_assert_int_eq(rl__breaker_verify(&b), 0);
}
END_TEST

/* ---- half-open probes ---- */

START_TEST(test_probes_close)
{
    struct rl_breaker_params p = params(2, 100);
    struct rl_breaker b;
    uint64_t t[3];
    int i;

    p.half_open_probes = 3;
    setup(&b, &p);
    trip_now(&b, 0);
    rl__breaker_tick(&b, 100);
    for (i = 0; i < 3; i++) {
        t[i] = rl__breaker_allow(&b, 100);
        ck_assert(t[i] != RL_BRK_REFUSED);
    }
    /* Only half_open_probes checks pass. */
    for (i = 0; i < 50; i++)
        ck_assert(rl__breaker_allow(&b, 100 + i) == RL_BRK_REFUSED);
    rl__breaker_record(&b, t[0], true, 1, 101);
    rl__breaker_record(&b, t[2], true, 1, 102);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_HALF_OPEN);
    ck_assert(rl__breaker_allow(&b, 103) == RL_BRK_REFUSED);
    rl__breaker_record(&b, t[1], true, 1, 104);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    expect_event(2, RL_BRK_HALF_OPEN, RL_BRK_CLOSED,
                 "probes succeeded (3)");
    ck_assert_int_eq(rec.n, 3);
    for (i = 0; i < 50; i++)
        ck_assert(rl__breaker_allow(&b, 105) != RL_BRK_REFUSED);
    /* Closed afresh: the consecutive count starts from zero. */
    call_fail(&b, 105);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    ck_assert_int_eq(stats(&b).transitions[RL_BRK_CLOSED], 1);
    ck_assert_int_eq(stats(&b).trips, 1);
    ck_assert_int_eq(rl__breaker_verify(&b), 0);
}
END_TEST

START_TEST(test_probe_failure_reopens_at_once)
{
    struct rl_breaker_params p = params(1, 100);
    struct rl_breaker b;
    uint64_t t[3];
    int i;

    p.half_open_probes = 3;
    setup(&b, &p);
    trip_now(&b, 0);
    for (i = 0; i < 3; i++)
        t[i] = rl__breaker_allow(&b, 100);
    rl__breaker_record(&b, t[0], true, 1, 110);
    rl__breaker_record(&b, t[1], false, 1, 120);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    expect_event(2, RL_BRK_HALF_OPEN, RL_BRK_OPEN,
                 "probe failed, waiting 200 ms");
    ck_assert_int_eq(rl__breaker_next_deadline(&b), 320);
    ck_assert_int_eq(stats(&b).trips, 2);
    /* The last probe's late success changes nothing. */
    rl__breaker_record(&b, t[2], true, 1, 130);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    ck_assert_int_eq(stats(&b).ignored, 1);
    ck_assert_int_eq(rec.n, 3);
}
END_TEST

/* Fails the probe of the half-open period due at *now; *now moves on. */
static void
fail_probe(struct rl_breaker *b, int64_t *now, int64_t want_wait)
{
    int64_t due = rl__breaker_next_deadline(b);
    char want[64];

    ck_assert_int_eq(due, *now);
    rl__breaker_tick(b, due - 1);
    ck_assert_int_eq(rl__breaker_state(b), RL_BRK_OPEN);
    rl__breaker_tick(b, due);
    call_fail(b, due + 5);
    snprintf(want, sizeof(want), "probe failed, waiting %lld ms",
             (long long)want_wait);
    expect_event(rec.n - 1, RL_BRK_HALF_OPEN, RL_BRK_OPEN, want);
    ck_assert_int_eq(rl__breaker_next_deadline(b), due + 5 + want_wait);
    *now = due + 5 + want_wait;
}

START_TEST(test_wait_doubles_capped_reset)
{
    struct rl_breaker_params p = params(1, 1000);
    struct rl_breaker b;
    int64_t now = 1000;

    p.max_recovery_timeout_ms = 5000;
    setup(&b, &p);
    trip_now(&b, 0);
    fail_probe(&b, &now, 2000);
    fail_probe(&b, &now, 4000);
    fail_probe(&b, &now, 5000);
    fail_probe(&b, &now, 5000);
    /* A successful probe closes and the wait goes back to 1000. */
    rl__breaker_tick(&b, now);
    call_ok(&b, now);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    call_fail(&b, now + 10);
    ck_assert_int_eq(rl__breaker_next_deadline(&b), now + 1010);
    now += 1010;
    fail_probe(&b, &now, 2000);
    ck_assert_int_eq(stats(&b).trips, 7);
}
END_TEST

START_TEST(test_wait_default_cap)
{
    struct rl_breaker_params p = params(1, 1000);
    struct rl_breaker b;
    int64_t now = 1000;

    setup(&b, &p);                     /* max 0: 8 x 1000 */
    trip_now(&b, 0);
    fail_probe(&b, &now, 2000);
    fail_probe(&b, &now, 4000);
    fail_probe(&b, &now, 8000);
    fail_probe(&b, &now, 8000);
}
END_TEST

START_TEST(test_slow_probe_fails_when_judged)
{
    struct rl_breaker_params p = params(1, 1000);
    struct rl_breaker b;

    p.slow_call_ms = 50;
    setup(&b, &p);
    /* Slow-call rate off: a slow probe is a success. */
    trip_now(&b, 0);
    rl__breaker_tick(&b, 1000);
    call(&b, true, 51, 1000);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    /* On: it fails. */
    p.slow_call_rate_pct = 100;
    p.minimum_calls = 100;
    setup(&b, &p);
    trip_now(&b, 0);
    rl__breaker_tick(&b, 1000);
    call(&b, true, 50, 1000);          /* not slower than 50 */
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    trip_now(&b, 2000);
    rl__breaker_tick(&b, 3000);
    call(&b, true, 51, 3000);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    expect_event(rec.n - 1, RL_BRK_HALF_OPEN, RL_BRK_OPEN,
                 "probe slow (51 ms), waiting 2000 ms");
}
END_TEST

START_TEST(test_cancel)
{
    struct rl_breaker_params p = params(1, 100);
    struct rl_breaker b;
    uint64_t t, stale;

    p.half_open_probes = 1;
    setup(&b, &p);
    stale = rl__breaker_allow(&b, 0);
    rl__breaker_cancel(&b, stale);     /* closed: nothing */
    trip_now(&b, 0);
    t = rl__breaker_allow(&b, 100);
    ck_assert(t != RL_BRK_REFUSED);
    ck_assert(rl__breaker_allow(&b, 100) == RL_BRK_REFUSED);
    rl__breaker_cancel(&b, stale);     /* stale: nothing */
    ck_assert(rl__breaker_allow(&b, 100) == RL_BRK_REFUSED);
    rl__breaker_cancel(&b, RL_BRK_REFUSED);
    ck_assert(rl__breaker_allow(&b, 100) == RL_BRK_REFUSED);
    rl__breaker_cancel(&b, t);         /* the slot comes back, once */
    ck_assert_int_eq(rl__breaker_verify(&b), 0);
    rl__breaker_cancel(&b, t);
    ck_assert_int_eq(rl__breaker_verify(&b), 0);
    t = rl__breaker_allow(&b, 101);
    ck_assert(t != RL_BRK_REFUSED);
    ck_assert(rl__breaker_allow(&b, 101) == RL_BRK_REFUSED);
    rl__breaker_record(&b, t, true, 1, 102);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
}
END_TEST

/* ---- stale outcomes ---- */

START_TEST(test_stale_outcomes)
{
    struct rl_breaker_params p = params(1, 100);
    struct rl_breaker b;
    uint64_t old[4], probe, probe2;
    int i;

    setup(&b, &p);
    for (i = 0; i < 4; i++)
        old[i] = rl__breaker_allow(&b, 0);
    call_fail(&b, 0);                       /* threshold 1: open */
    /* Replies of calls sent before the opening: ignored in OPEN. */
    rl__breaker_record(&b, old[0], false, 1, 10);
    rl__breaker_record(&b, old[1], true, 1, 10);
    ck_assert_int_eq(rl__breaker_next_deadline(&b), 100);
    rl__breaker_tick(&b, 100);
    probe = rl__breaker_allow(&b, 100);
    ck_assert(probe != RL_BRK_REFUSED);
    /* In HALF-OPEN only the probe counts: an old success does not close,
       an old failure does not reopen. */
    rl__breaker_record(&b, old[2], true, 1, 101);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_HALF_OPEN);
    ck_assert_int_eq(rl__breaker_verify(&b), 0);
    ck_assert(rl__breaker_allow(&b, 101) == RL_BRK_REFUSED);
    rl__breaker_record(&b, probe, false, 1, 102);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    /* A probe of an earlier half-open period is stale in the next one. */
    rl__breaker_tick(&b, 302);
    probe2 = rl__breaker_allow(&b, 302);
    rl__breaker_record(&b, probe, true, 1, 303);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_HALF_OPEN);
    rl__breaker_record(&b, probe2, true, 1, 304);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    /* Closed again (threshold 1): an old failure does not reopen it. */
    rl__breaker_record(&b, old[3], false, 1, 305);
    rl__breaker_record(&b, probe2, false, 1, 305);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    ck_assert_int_eq(stats(&b).ignored, 6);
    call_fail(&b, 306);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    ck_assert_int_eq(rec.n, 6);
}
END_TEST

/* ---- operator override ---- */

START_TEST(test_force_open)
{
    struct rl_breaker_params p = params(2, 100);
    struct rl_breaker b;
    uint64_t t;
    int i;

    setup(&b, &p);
    t = rl__breaker_allow(&b, 0);
    ck_assert_int_eq(rl__breaker_force(&b, RL_BRK_FORCE_OPEN, 0), RL_OK);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    ck_assert_int_eq(rl__breaker_mode(&b), RL_BRK_FORCE_OPEN);
    expect_event(0, RL_BRK_CLOSED, RL_BRK_OPEN, "forced open");
    ck_assert_int_eq(stats(&b).trips, 0);
    ck_assert_int_eq(stats(&b).transitions[RL_BRK_OPEN], 1);
    ck_assert_int_eq(rl__breaker_next_deadline(&b), -1);
    rl__breaker_record(&b, t, true, 1, 1);
    /* It stays open, however long. */
    rl__breaker_tick(&b, INT64_MAX);
    for (i = 0; i < 10; i++)
        ck_assert(rl__breaker_allow(&b, INT64_MAX / 2 + i) ==
                  RL_BRK_REFUSED);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    /* Forcing the mode it is in: nothing. */
    ck_assert_int_eq(rl__breaker_force(&b, RL_BRK_FORCE_OPEN, 2), RL_OK);
    ck_assert_int_eq(rec.n, 1);
    ck_assert_int_eq(rl__breaker_force(&b, RL_BRK_AUTO, 3), RL_OK);
    ck_assert_int_eq(rl__breaker_mode(&b), RL_BRK_AUTO);
    expect_event(1, RL_BRK_OPEN, RL_BRK_CLOSED, "released");
    ck_assert(rl__breaker_allow(&b, 4) != RL_BRK_REFUSED);
    ck_assert_int_eq(rl__breaker_force(&b, RL_BRK_AUTO, 5), RL_OK);
    ck_assert_int_eq(rec.n, 2);
    ck_assert_int_eq(rl__breaker_verify(&b), 0);
}
END_TEST

START_TEST(test_force_open_when_open)
{
    struct rl_breaker_params p = params(1, 100);
    struct rl_breaker b;

    setup(&b, &p);
    trip_now(&b, 0);
    /* Already open: no transition, but no more deadline either. */
    ck_assert_int_eq(rl__breaker_force(&b, RL_BRK_FORCE_OPEN, 1), RL_OK);
    ck_assert_int_eq(rec.n, 1);
    ck_assert_int_eq(rl__breaker_next_deadline(&b), -1);
    rl__breaker_tick(&b, 1000);
    ck_assert(rl__breaker_allow(&b, 1000) == RL_BRK_REFUSED);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    /* From half-open, with a probe out: its outcome is then ignored. */
    ck_assert_int_eq(rl__breaker_force(&b, RL_BRK_AUTO, 1000), RL_OK);
    trip_now(&b, 1000);
    rl__breaker_tick(&b, 1100);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_HALF_OPEN);
    {
        uint64_t probe = rl__breaker_allow(&b, 1100);

        ck_assert_int_eq(rl__breaker_force(&b, RL_BRK_FORCE_OPEN, 1101),
                         RL_OK);
        expect_event(rec.n - 1, RL_BRK_HALF_OPEN, RL_BRK_OPEN,
                     "forced open");
        rl__breaker_record(&b, probe, true, 1, 1102);
        ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    }
    ck_assert_int_eq(stats(&b).trips, 2);
}
END_TEST

START_TEST(test_force_closed)
{
    struct rl_breaker_params p = params(3, 100);
    struct rl_breaker b;
    int i;

    setup(&b, &p);
    trip_now(&b, 0);
    ck_assert_int_eq(rl__breaker_force(&b, RL_BRK_FORCE_CLOSED, 1), RL_OK);
    expect_event(1, RL_BRK_OPEN, RL_BRK_CLOSED, "forced closed");
    ck_assert_int_eq(rl__breaker_next_deadline(&b), -1);
    /* Failures are not judged while forced closed. */
    for (i = 0; i < 100; i++)
        call_fail(&b, 2);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    ck_assert_int_eq(stats(&b).ignored, 100);
    /* Released: same state, no transition, counts start afresh. */
    ck_assert_int_eq(rl__breaker_force(&b, RL_BRK_AUTO, 3), RL_OK);
    ck_assert_int_eq(rec.n, 2);
    call_fail(&b, 4);
    call_fail(&b, 4);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    call_fail(&b, 4);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    ck_assert_int_eq(rl__breaker_next_deadline(&b), 104);
    /* Forced open, then forced closed directly. */
    ck_assert_int_eq(rl__breaker_force(&b, RL_BRK_FORCE_OPEN, 5), RL_OK);
    ck_assert_int_eq(rl__breaker_force(&b, RL_BRK_FORCE_CLOSED, 6), RL_OK);
    expect_event(rec.n - 1, RL_BRK_OPEN, RL_BRK_CLOSED, "forced closed");
    ck_assert_int_eq(rl__breaker_force(&b, 3, 7), RL_ERR_INVALID);
    ck_assert_int_eq(rl__breaker_force(&b, -1, 7), RL_ERR_INVALID);
    ck_assert_int_eq(rl__breaker_mode(&b), RL_BRK_FORCE_CLOSED);
    ck_assert_int_eq(rl__breaker_verify(&b), 0);
}
END_TEST

/* ---- the whole sequence of callbacks ---- */

START_TEST(test_callback_sequence)
{
    struct rl_breaker_params p = params(2, 1000);
    struct rl_breaker b;
    struct rl_breaker_stats s;

    p.max_recovery_timeout_ms = 1500;
    setup(&b, &p);
    trip_now(&b, 0);                               /* 0 */
    rl__breaker_tick(&b, 1000);                    /* 1 */
    call_fail(&b, 1000);                                /* 2: wait 1500 */
    rl__breaker_tick(&b, 2500);                    /* 3 */
    call_ok(&b, 2500);                             /* 4 */
    rl__breaker_force(&b, RL_BRK_FORCE_OPEN, 2600);  /* 5 */
    rl__breaker_force(&b, RL_BRK_AUTO, 2700);        /* 6 */
    rl__breaker_force(&b, RL_BRK_FORCE_CLOSED, 2800);
    rl__breaker_force(&b, RL_BRK_AUTO, 2900);
    ck_assert_int_eq(rec.n, 7);
    expect_event(0, RL_BRK_CLOSED, RL_BRK_OPEN, "2 consecutive failures");
    expect_event(1, RL_BRK_OPEN, RL_BRK_HALF_OPEN, "recovery timeout");
    expect_event(2, RL_BRK_HALF_OPEN, RL_BRK_OPEN,
                 "probe failed, waiting 1500 ms");
    expect_event(3, RL_BRK_OPEN, RL_BRK_HALF_OPEN, "recovery timeout");
    expect_event(4, RL_BRK_HALF_OPEN, RL_BRK_CLOSED, "probes succeeded (1)");
    expect_event(5, RL_BRK_CLOSED, RL_BRK_OPEN, "forced open");
    expect_event(6, RL_BRK_OPEN, RL_BRK_CLOSED, "released");
    s = stats(&b);
    ck_assert_int_eq(s.transitions[RL_BRK_CLOSED], 2);
    ck_assert_int_eq(s.transitions[RL_BRK_OPEN], 3);
    ck_assert_int_eq(s.transitions[RL_BRK_HALF_OPEN], 2);
    ck_assert_int_eq(s.trips, 2);
    ck_assert_int_eq(s.ignored, 0);
}
END_TEST

START_TEST(test_no_callback)
{
    struct rl_breaker_params p = params(1, 10);
    struct rl_breaker b;
    uint64_t t;

    ck_assert_int_eq(rl__breaker_init(&b, &p, NULL, NULL), RL_OK);
    t = rl__breaker_allow(&b, 0);
    rl__breaker_record(&b, t, false, 1, 0);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_OPEN);
    rl__breaker_tick(&b, 10);
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_HALF_OPEN);
    ck_assert_int_eq(stats(&b).transitions[RL_BRK_HALF_OPEN], 1);
    ck_assert_str_eq(rl__breaker_state_name(RL_BRK_HALF_OPEN), "half-open");
    ck_assert_str_eq(rl__breaker_state_name(RL_BRK_OPEN), "open");
    ck_assert_str_eq(rl__breaker_state_name(RL_BRK_CLOSED), "closed");
    ck_assert_str_eq(rl__breaker_state_name(7), "unknown");
}
END_TEST

/* ---- cost against the window's size ---- */

static int64_t
cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define COST_CALLS 1000000
#define COST_REPS 7

/* Outcome i of the cost runs: mixed, never two failures or two slow
   calls in a row, so that no window of 2 or more slots opens. */
static bool
cost_failed(int64_t i)
{
    return i % 3 == 0;
}

static int64_t
cost_latency(int64_t i)
{
    return i % 5 == 0 ? 5000 : 1;
}

/*
 * The least CPU time of COST_REPS runs of COST_CALLS allows (what 0) or
 * records (what 1) on a closed breaker judging both rates, whose window
 * of `window` slots is full of mixed outcomes.
 */
static int64_t
cost(int64_t window, int what)
{
    struct rl_breaker_params p = params(RL_BRK_THRESHOLD_MAX, 1000);
    struct rl_breaker b;
    volatile uint64_t sink = 0;
    int64_t best = INT64_MAX, t0, i, n = 0;
    int r;

    p.window_size = window;
    p.minimum_calls = window;
    p.failure_rate_pct = 100;
    p.slow_call_rate_pct = 100;
    ck_assert_int_eq(rl__breaker_init(&b, &p, NULL, NULL), RL_OK);
    for (n = 0; n < 2 * window; n++)
        rl__breaker_record(&b, b.epoch, !cost_failed(n),
                           cost_latency(n), 0);
    for (r = 0; r < COST_REPS; r++) {
        t0 = cpu_ns();
        for (i = 0; i < COST_CALLS; i++) {
            if (what == 0) {
                sink += rl__breaker_allow(&b, i);
            } else {
                rl__breaker_record(&b, b.epoch, !cost_failed(n),
                                   cost_latency(n), n);
                n++;
            }
        }
        t0 = cpu_ns() - t0;
        best = t0 < best ? t0 : best;
    }
    ck_assert_int_eq(rl__breaker_state(&b), RL_BRK_CLOSED);
    ck_assert_int_eq(b.win_len, window);
    (void)sink;
    return best;
}

/*
 * A loop over the window's slots makes a 1024-slot window hundreds of
 * times dearer than a 2-slot one (2: the least that these outcomes do not
 * open); O(1) keeps them within noise.  The least of several runs of
 * thread CPU time keeps scheduling out of it.
 */
START_TEST(test_constant_cost)
{
    int64_t small = cost(2, _i), big = cost(RL_BRK_WINDOW_MAX, _i);

    ck_assert_msg(big < 5 * small + 2000000,
                  "%s: %lld ns with 2 slots, %lld ns with 1024",
                  _i == 0 ? "allow" : "record", (long long)small,
                  (long long)big);
}
END_TEST

/* ---- against a reference model ---- */

/*
 * The model keeps the window as a plain array, oldest first, recounted on
 * every outcome, and tells stale outcomes by the period number it gave
 * out, not by the breaker's tickets.
 */
struct model {
    struct rl_breaker_params p;
    int64_t max_wait;
    int state, mode;
    int64_t period, until, wait, consec, out, ok;
    int n;
    bool f[RL_BRK_WINDOW_MAX], s[RL_BRK_WINDOW_MAX];
    int64_t trips, trans[RL_BRK_N_STATES];
};

static void
m_go(struct model *m, int to)
{
    m->state = to;
    m->period++;
    m->consec = m->out = m->ok = 0;
    m->n = 0;
    m->trans[to]++;
}

static void
m_trip(struct model *m, int64_t now, int64_t wait)
{
    m->wait = wait;
    m->until = now + wait;
    m->trips++;
    m_go(m, RL_BRK_OPEN);
}

static void
m_push(struct model *m, bool failed, bool slow)
{
    if (m->n == m->p.window_size) {
        memmove(m->f, m->f + 1, (size_t)(m->n - 1) * sizeof(bool));
        memmove(m->s, m->s + 1, (size_t)(m->n - 1) * sizeof(bool));
        m->n--;
    }
    m->f[m->n] = failed;
    m->s[m->n] = slow;
    m->n++;
}

static void
m_closed(struct model *m, bool failed, bool slow, int64_t now)
{
    int64_t nf = 0, ns = 0;
    int i;

    m_push(m, failed, slow);
    m->consec = failed ? m->consec + 1 : 0;
    for (i = 0; i < m->n; i++) {
        nf += m->f[i];
        ns += m->s[i];
    }
    if (m->consec >= m->p.failure_threshold ||
        (m->n >= m->p.minimum_calls &&
         ((m->p.failure_rate_pct && nf * 100 >= m->p.failure_rate_pct * m->n)
          || (m->p.slow_call_rate_pct &&
              ns * 100 >= m->p.slow_call_rate_pct * m->n))))
        m_trip(m, now, m->wait);
}

static void
m_record(struct model *m, int64_t period, bool ok, int64_t lat, int64_t now)
{
    bool slow = lat > m->p.slow_call_ms;
    int64_t w;

    if (period != m->period || m->mode != RL_BRK_AUTO)
        return;
    if (m->state == RL_BRK_CLOSED) {
        m_closed(m, !ok, slow, now);
    } else if (m->state == RL_BRK_HALF_OPEN && m->ok < m->out) {
        if (!ok || (slow && m->p.slow_call_rate_pct)) {
            w = m->wait * 2 < m->max_wait ? m->wait * 2 : m->max_wait;
            m_trip(m, now, w);
        } else if (++m->ok == m->p.half_open_probes) {
            m->wait = m->p.recovery_timeout_ms;
            m_go(m, RL_BRK_CLOSED);
        }
    }
}

static void
m_tick(struct model *m, int64_t now)
{
    if (m->state == RL_BRK_OPEN && m->mode == RL_BRK_AUTO && now >= m->until)
        m_go(m, RL_BRK_HALF_OPEN);
}

/* The period given to the call, or 0: refused. */
static int64_t
m_allow(struct model *m, int64_t now)
{
    m_tick(m, now);
    if (m->state == RL_BRK_CLOSED)
        return m->period;
    if (m->state == RL_BRK_HALF_OPEN && m->out < m->p.half_open_probes) {
        m->out++;
        return m->period;
    }
    return 0;
}

static void
m_force(struct model *m, int mode)
{
    int to = mode == RL_BRK_FORCE_OPEN ? RL_BRK_OPEN : RL_BRK_CLOSED;

    if (m->mode == mode)
        return;
    m->mode = mode;
    m->wait = m->p.recovery_timeout_ms;
    if (m->state != to) {
        m_go(m, to);
    } else {
        m->period++;
        m->consec = m->out = m->ok = 0;
        m->n = 0;
    }
}

struct pending {
    uint64_t ticket;
    int64_t period;
};

#define MAX_PENDING 64

static uint64_t rng_state;

static uint64_t
rnd(uint64_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state % n;
}

static void
random_params(struct rl_breaker_params *p)
{
    uint64_t k;

    rl__breaker_params_init(p);
    p->failure_threshold = 1 + (int64_t)rnd(8);
    p->recovery_timeout_ms = 1 + (int64_t)rnd(50);
    p->max_recovery_timeout_ms = rnd(2) ? 0
        : p->recovery_timeout_ms + (int64_t)rnd(300);
    p->half_open_probes = 1 + (int64_t)rnd(4);
    k = rnd(3);
    p->window_size = 1 + (int64_t)rnd(k == 0 ? 8 : k == 1 ? 130
                                                   : RL_BRK_WINDOW_MAX);
    p->minimum_calls = 1 + (int64_t)rnd((uint64_t)p->window_size);
    p->failure_rate_pct = rnd(3) ? (int64_t)rnd(101) : 0;
    p->slow_call_rate_pct = rnd(3) ? (int64_t)rnd(101) : 0;
    p->slow_call_ms = 1 + (int64_t)rnd(20);
    if (rnd(4) == 0)
        p->failure_threshold = RL_BRK_THRESHOLD_MAX;
}

/* One random operation on both; the pending calls are shared. */
static void
random_step(struct rl_breaker *b, struct model *m, struct pending *pend,
            int *npend, int64_t *now)
{
    uint64_t op = rnd(100);
    int k;

    if (op < 40 && *npend < MAX_PENDING) {
        uint64_t t = rl__breaker_allow(b, *now);
        int64_t per = m_allow(m, *now);

        FAST_EQ(t != RL_BRK_REFUSED, per != 0);
        if (t != RL_BRK_REFUSED) {
            pend[*npend].ticket = t;
            pend[*npend].period = per;
            (*npend)++;
        }
    } else if (op < 85 && *npend > 0) {
        bool ok = rnd(3) != 0;
        int64_t lat = (int64_t)rnd(40);

        k = (int)rnd((uint64_t)*npend);
        if (rnd(20) == 0) {
            rl__breaker_cancel(b, pend[k].ticket);
            if (pend[k].period == m->period && m->state == RL_BRK_HALF_OPEN
                && m->out > m->ok)
                m->out--;
        } else {
            rl__breaker_record(b, pend[k].ticket, ok, lat, *now);
            m_record(m, pend[k].period, ok, lat, *now);
        }
        pend[k] = pend[--(*npend)];
    } else if (op < 97) {
        *now += (int64_t)rnd(30);
        rl__breaker_tick(b, *now);
        m_tick(m, *now);
    } else {
        int mode = rnd(3) == 0 ? RL_BRK_AUTO : (int)rnd(3);

        FAST_EQ(rl__breaker_force(b, mode, *now), RL_OK);
        m_force(m, mode);
    }
}

static void
compare(const struct rl_breaker *b, const struct model *m)
{
    struct rl_breaker_stats s;
    int i;

    rl__breaker_stats(b, &s);
    FAST_EQ(rl__breaker_verify(b), 0);
    FAST_EQ(rl__breaker_state(b), m->state);
    FAST_EQ(rl__breaker_mode(b), m->mode);
    FAST_EQ(rl__breaker_next_deadline(b),
                     m->state == RL_BRK_OPEN && m->mode == RL_BRK_AUTO
                         ? m->until : -1);
    FAST_EQ(s.trips, m->trips);
    for (i = 0; i < RL_BRK_N_STATES; i++)
        FAST_EQ(s.transitions[i], m->trans[i]);
    FAST_EQ(rec.n, m->trans[0] + m->trans[1] + m->trans[2]);
    FAST_EQ(b->win_len, m->n);
}

START_TEST(test_model_random)
{
    struct rl_breaker b;
    struct model m;
    struct pending pend[MAX_PENDING];
    int npend = 0, step;
    int64_t now = 1000;

    rng_state = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)_i * 0x2545f4914f6cdd1dULL);
    memset(&m, 0, sizeof(m));
    random_params(&m.p);
    setup(&b, &m.p);
    m.max_wait = b.p.max_recovery_timeout_ms;
    m.period = 1;
    m.wait = m.p.recovery_timeout_ms;
    for (step = 0; step < 20000; step++) {
        random_step(&b, &m, pend, &npend, &now);
        compare(&b, &m);
    }
    /* A run that never opened by failures would test little. */
    if (m.p.failure_threshold <= 4)
        ck_assert_int_gt(m.trips, 0);
    ck_assert_int_gt(m.trans[RL_BRK_OPEN], 0);
}
END_TEST

/* ---- main ---- */

static Suite *
breaker_suite(void)
{
    Suite *s = suite_create("breaker");
    TCase *tc = tcase_create("core");
    TCase *pr = tcase_create("properties");
    int nb = (int)(sizeof(bounds) / sizeof(bounds[0]));
    int nt = (int)(sizeof(thresholds) / sizeof(thresholds[0]));

    tcase_add_test(tc, test_params_defaults);
    tcase_add_loop_test(tc, test_params_bounds, 0, nb);
    tcase_add_test(tc, test_params_max_wait);
    tcase_add_loop_test(tc, test_threshold_exact, 0, nt);
    tcase_add_test(tc, test_success_resets_count);
    tcase_add_test(tc, test_unrecorded_do_not_count);
    tcase_add_test(tc, test_failure_rate);
    tcase_add_test(tc, test_failure_rate_reason);
    tcase_add_test(tc, test_failure_rate_window_slides);
    tcase_add_test(tc, test_failure_rate_off);
    tcase_add_test(tc, test_slow_rate);
    tcase_add_test(tc, test_slow_rate_min_calls_and_failures);
    tcase_add_test(tc, test_slow_rate_off);
    tcase_add_test(tc, test_recovery_exact_by_tick);
    tcase_add_test(tc, test_recovery_exact_by_allow);
    tcase_add_test(tc, test_server_back_ends_the_wait);
    tcase_add_test(tc, test_probes_close);
    tcase_add_test(tc, test_probe_failure_reopens_at_once);
    tcase_add_test(tc, test_wait_doubles_capped_reset);
    tcase_add_test(tc, test_wait_default_cap);
    tcase_add_test(tc, test_slow_probe_fails_when_judged);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_stale_outcomes);
    tcase_add_test(tc, test_force_open);
    tcase_add_test(tc, test_force_open_when_open);
    tcase_add_test(tc, test_force_closed);
    tcase_add_test(tc, test_callback_sequence);
    tcase_add_test(tc, test_no_callback);
    suite_add_tcase(s, tc);

    tcase_add_loop_test(pr, test_constant_cost, 0, 2);
    tcase_add_loop_test(pr, test_model_random, 0, 40);
    tcase_set_timeout(pr, 120);
    suite_add_tcase(s, pr);
    return s;
}

int
main(void)
{
    return th_run_suite(breaker_suite(), CK_ENV);
}
