/*
 * test_algo.c: the pure algorithms of src/algo*.c against their
 * specification, docs/algorithms.md.
 *
 * Three kinds of tests.  Tables: sequences of checks at explicit times,
 * every output worked out by hand from the spec's formulas (each edge case
 * the spec lists has one).  Properties: thousands of sequences drawn from
 * a fixed-seed generator, checked against brute force (fixed window,
 * sliding log), against an exact rational model in __int128 (token bucket,
 * GCRA), and against the meaning of each output (retry_after_ms and
 * reset_ms are exact, remaining is what really remains, a state is fresh
 * from expire_at_ms on, a denial changes nothing, a group answers and
 * charges as its checks alone or not at all).  Helpers: the names, the
 * dispatch, the memory of the sliding log, copies, peeks, groups and
 * cost 0, and the Lua procedure for muldiv emulated in doubles.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "algo.h"

#define FW RL_FIXED_WINDOW
#define SW RL_SLIDING_WINDOW
#define TB RL_TOKEN_BUCKET
#define SL RL_SLIDING_LOG
#define GC RL_GCRA

#define ALLOW 1
#define DENY 0

#define YEAR_MS INT64_C(31536000000)
#define E9 INT64_C(1000000000)
#define E11 INT64_C(100000000000)

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif

/* ---- helpers ---- */

/*
 * Check's ck_assert records its location on every pass (a write to the
 * runner), far too slow for the millions of checks of the property loops;
 * REQUIRE costs nothing until it fails.
 */
#define REQUIRE(cond) do {                                               \
        if (!(cond))                                                     \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);        \
    } while (0)
#define REQUIRE_MSG(cond, ...) do {                                      \
        if (!(cond))                                                     \
            ck_abort_msg(__VA_ARGS__);                                   \
    } while (0)

static const rl_algorithm all_algs[] = { SW, TB, FW, SL, GC };

/* Decides one check; asserts RL_OK and the ranges every output keeps. */
static rl_decision
decide(rl_algorithm alg, rl_algo_state *st, int64_t now, int64_t max,
       int64_t window, int64_t cost)
{
    rl_decision d;
    int rc;

    memset(&d, 0xa5, sizeof(d));
    rc = rl__algo_decide(alg, st, now, max, window, cost, &d);
    REQUIRE(rc == RL_OK);
    REQUIRE(d.remaining >= 0 && d.remaining <= max);
    /* Something is in use after any check: what it took, or what made
       it fail (more than max - cost >= 0). */
    REQUIRE(d.reset_ms >= 1);
    REQUIRE(d.allowed ? d.retry_after_ms == 0 : d.retry_after_ms > 0);
    REQUIRE(d.expire_at_ms > now);
    REQUIRE(st->max == max && st->window == window);
    return d;
}

/* A deep copy (the sliding log's ring included). */
static void
state_copy(rl_algo_state *dst, const rl_algo_state *src)
{
    REQUIRE(rl__algo_state_copy(dst, src) == RL_OK);
}

/* The decision a copy of st would give (st unchanged). */
static rl_decision
probe(rl_algorithm alg, const rl_algo_state *st, int64_t now, int64_t max,
      int64_t window, int64_t cost)
{
    rl_algo_state c;
    rl_decision d;

    state_copy(&c, st);
    d = decide(alg, &c, now, max, window, cost);
    rl__algo_state_clear(&c);
    return d;
}

static int
same_decision(const rl_decision *a, const rl_decision *b)
{
    return a->allowed == b->allowed && a->remaining == b->remaining &&
           a->reset_ms == b->reset_ms &&
           a->retry_after_ms == b->retry_after_ms &&
           a->expire_at_ms == b->expire_at_ms;
}

/* One check of a table and what it must give. */
struct step {
    int64_t now, max, window, cost;
    int allowed;
    int64_t remaining, reset, retry, expire;
};

static void
run_steps(rl_algorithm alg, rl_algo_state *st, const struct step *s,
          size_t n, const char *name)
{
    rl_decision d;
    size_t i;

    for (i = 0; i < n; i++) {
        d = decide(alg, st, s[i].now, s[i].max, s[i].window, s[i].cost);
        ck_assert_msg(d.allowed == s[i].allowed &&
                      d.remaining == s[i].remaining &&
                      d.reset_ms == s[i].reset &&
                      d.retry_after_ms == s[i].retry &&
                      d.expire_at_ms == s[i].expire,
                      "%s step %zu: got allowed %d remaining %lld reset %lld"
                      " retry %lld expire %lld", name, i, (int)d.allowed,
                      (long long)d.remaining, (long long)d.reset_ms,
                      (long long)d.retry_after_ms,
                      (long long)d.expire_at_ms);
    }
}

#define RUN(alg, table) do {                                             \
        rl_algo_state st_;                                               \
        memset(&st_, 0, sizeof(st_));                                    \
        run_steps((alg), &st_, (table),                                  \
                  sizeof(table) / sizeof((table)[0]), #table);           \
        rl__algo_state_clear(&st_);                                      \
    } while (0)

/* ---- a fixed-seed generator (splitmix64) ---- */

static uint64_t rng;

static uint64_t
rnd(void)
{
    uint64_t z = (rng += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static int64_t
rnd_in(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

/* Spread over the orders of magnitude of [1, hi]. */
static int64_t
rnd_log(int64_t hi)
{
    int bits = 0;
    int64_t top;

    while (bits < 62 && (INT64_C(1) << (bits + 1)) <= hi)
        bits++;
    top = INT64_C(1) << rnd_in(0, bits);
    top = top * 2 - 1 < hi ? top * 2 - 1 : hi;
    return rnd_in(1, top);
}

static int64_t
rnd_cost(int64_t max)
{
    switch (rnd() % 4) {
    case 0:
    case 1:
        return 1;
    case 2:
        return rnd_log(max);
    default:
        return rnd() % 8 == 0 ? max : rnd_in(1, max);
    }
}

/* A limit of any scale; the sliding log's max kept <= 200 for speed. */
static void
rnd_limit(rl_algorithm alg, int64_t *max, int64_t *window)
{
    switch (rnd() % 4) {
    case 0:
        *max = rnd_in(1, 10);
        *window = rnd_in(1, 50);
        break;
    case 1:
        *max = rnd_in(1, 1000);
        *window = rnd_in(1, 100000);
        break;
    case 2:
        *max = rnd_log(RL_MAX_REQUESTS_MAX);
        *window = rnd_log(RL_WINDOW_MS_MAX);
        break;
    default:
        *max = rnd() % 2 ? 1 : RL_MAX_REQUESTS_MAX;
        *window = rnd() % 2 ? 1 : RL_WINDOW_MS_MAX;
        break;
    }
    if (alg == SL && *max > 200)
        *max = 1 + *max % 200;
}

/* The next time: often the same ms, mostly within the window. */
static int64_t
rnd_step(int64_t window)
{
    switch (rnd() % 6) {
    case 0:
    case 1:
        return 0;
    case 2:
        return rnd_in(1, window / 10 + 1);
    case 3:
    case 4:
        return rnd_in(0, window + 1);
    default:
        return rnd_in(0, 2 * window + 2);
    }
}

/* ---- names and dispatch ---- */

START_TEST(test_names)
{
    static const char *const expect[] = {
        "sliding-window", "token-bucket", "fixed-window", "sliding-log",
        "gcra"
    };
    rl_algorithm a = RL_GCRA;
    size_t i;

    for (i = 0; i < 5; i++) {
        ck_assert_str_eq(rl__algo_name((rl_algorithm)i), expect[i]);
        ck_assert_int_eq(rl__algo_parse(expect[i], &a), RL_OK);
        ck_assert_int_eq(a, (rl_algorithm)i);
    }
    ck_assert_ptr_null(rl__algo_name((rl_algorithm)5));
    ck_assert_ptr_null(rl__algo_name((rl_algorithm)-1));
    a = RL_GCRA;
    ck_assert_int_eq(rl__algo_parse(NULL, &a), RL_ERR_INVALID);
    ck_assert_int_eq(rl__algo_parse("", &a), RL_ERR_INVALID);
    ck_assert_int_eq(rl__algo_parse("Sliding-Window", &a), RL_ERR_INVALID);
    ck_assert_int_eq(rl__algo_parse("token_bucket", &a), RL_ERR_INVALID);
    ck_assert_int_eq(rl__algo_parse("gcra ", &a), RL_ERR_INVALID);
    ck_assert_int_eq(a, RL_GCRA);
}
END_TEST

/*
 * The dispatch reaches each algorithm: after max units at 0 with a
 * window of 10, each leaves its own state, and answers a check at 5 as
 * its own formulas say.
 */
START_TEST(test_dispatch)
{
    static const int64_t expect_retry[] = {
        [SW] = 11, [TB] = 1, [FW] = 5, [SL] = 5, [GC] = 1
    };
    static const int64_t expect_v[][3] = {
        [SW] = { 0, 0, 10 }, [TB] = { 0, 0, 0 }, [FW] = { 0, 10, 0 },
        [SL] = { 0, 0, 0 }, [GC] = { 10, 0, 0 }
    };
    rl_algorithm alg;
    rl_algo_state st;
    rl_decision d;
    size_t i;

    for (i = 0; i < 5; i++) {
        alg = all_algs[i];
        memset(&st, 0, sizeof(st));
        decide(alg, &st, 0, 10, 10, 10);
        ck_assert(st.v[0] == expect_v[alg][0] &&
                  st.v[1] == expect_v[alg][1] &&
                  st.v[2] == expect_v[alg][2]);
        ck_assert((st.log != NULL) == (alg == SL));
        d = decide(alg, &st, 5, 10, 10, 6);
        ck_assert(!d.allowed);
        ck_assert_int_eq(d.retry_after_ms, expect_retry[alg]);
        rl__algo_state_clear(&st);
    }
    memset(&st, 0, sizeof(st));
    memset(&d, 0x5a, sizeof(d));
    ck_assert_int_eq(rl__algo_decide((rl_algorithm)7, &st, 0, 1, 1, 1, &d),
                     RL_ERR_INVALID);
    ck_assert_int_eq(st.max, 0);
    ck_assert_int_eq(d.remaining, (int64_t)0x5a5a5a5a5a5a5a5aLL);
}
END_TEST

/* ---- fixed window ---- */

START_TEST(test_fw_table)
{
    static const struct step t[] = {
        /* now max window cost | allowed remaining reset retry expire */
        { 0, 3, 10, 1, ALLOW, 2, 10, 0, 10 },
        { 5, 3, 10, 2, ALLOW, 0, 5, 0, 10 },
        { 9, 3, 10, 1, DENY, 0, 1, 1, 10 },
        { 10, 3, 10, 3, ALLOW, 0, 10, 0, 20 },  /* on the boundary */
        { 19, 3, 10, 1, DENY, 0, 1, 1, 20 },
        { 25, 3, 10, 1, ALLOW, 2, 5, 0, 30 },
        { 100, 3, 10, 2, ALLOW, 1, 10, 0, 110 },
    };
    static const struct step one[] = {  /* max 1, window 1 ms */
        { 0, 1, 1, 1, ALLOW, 0, 1, 0, 1 },
        { 0, 1, 1, 1, DENY, 0, 1, 1, 1 },
        { 1, 1, 1, 1, ALLOW, 0, 1, 0, 2 },
        { 1, 1, 1, 1, DENY, 0, 1, 1, 2 },
        { 7, 1, 1, 1, ALLOW, 0, 1, 0, 8 },
    };
    static const struct step cost_max[] = {
        { 39, 5, 20, 5, ALLOW, 0, 1, 0, 40 },
        { 39, 5, 20, 1, DENY, 0, 1, 1, 40 },
        { 40, 5, 20, 5, ALLOW, 0, 20, 0, 60 },
        { 59, 5, 20, 5, DENY, 0, 1, 1, 60 },
    };
    /* A year of 365 days, max 10^9; 1700000000000 is 2023-11-14. */
    static const struct step year[] = {
        { 1700000000000, E9, YEAR_MS, E9, ALLOW, 0, 2944000000, 0,
          1702944000000 },
        { 1700000000001, E9, YEAR_MS, 1, DENY, 0, 2943999999, 2943999999,
          1702944000000 },
        { 1702944000000, E9, YEAR_MS, 1, ALLOW, E9 - 1, YEAR_MS, 0,
          1702944000000 + YEAR_MS },
    };
    /* The largest window at the largest time. */
    static const struct step huge[] = {
        { RL_NOW_MAX, E9, E11, E9 - 1, ALLOW, 1, 93157377, 0,
          1125900000000000 },
        { RL_NOW_MAX, E9, E11, 2, DENY, 1, 93157377, 93157377,
          1125900000000000 },
        { RL_NOW_MAX, E9, E11, 1, ALLOW, 0, 93157377, 0, 1125900000000000 },
    };

    RUN(FW, t);
    RUN(FW, one);
    RUN(FW, cost_max);
    RUN(FW, year);
    RUN(FW, huge);
}
END_TEST

START_TEST(test_fw_limit_change)
{
    static const struct step t[] = {
        { 0, 2, 10, 2, ALLOW, 0, 10, 0, 10 },
        { 1, 5, 10, 2, ALLOW, 1, 9, 0, 10 },    /* max bigger: count kept */
        { 2, 3, 10, 1, DENY, 0, 8, 8, 10 },     /* smaller: 4 > 3 in use */
        { 3, 5, 100, 1, ALLOW, 0, 97, 0, 100 }, /* window bigger: carried */
        { 50, 5, 20, 1, DENY, 0, 10, 10, 60 },  /* smaller: carried */
        { 60, 5, 20, 1, ALLOW, 4, 20, 0, 80 },  /* its window ended */
        { 200, 5, 7, 1, ALLOW, 4, 3, 0, 203 },  /* change after expiry */
    };

    RUN(FW, t);
}
END_TEST

/* A clock that steps back stands still at the window already seen. */
START_TEST(test_fw_backward_clock)
{
    static const struct step t[] = {
        { 25, 2, 10, 1, ALLOW, 1, 5, 0, 30 },
        { 15, 2, 10, 1, ALLOW, 0, 10, 0, 30 },
        { 16, 2, 10, 1, DENY, 0, 10, 10, 30 },
        { 30, 2, 10, 1, ALLOW, 1, 10, 0, 40 },
    };

    RUN(FW, t);
}
END_TEST

/* ---- sliding window ---- */

START_TEST(test_sw_table)
{
    static const struct step t[] = {
        { 0, 10, 100, 5, ALLOW, 5, 200, 0, 200 },
        { 50, 10, 100, 5, ALLOW, 0, 150, 0, 200 },
        /* est 10; next window from 110: ceil(10 * 90 / 100) = 9 */
        { 99, 10, 100, 1, DENY, 0, 101, 11, 200 },
        /* boundary: prev 10 weighs whole; this window from 110 */
        { 100, 10, 100, 1, DENY, 0, 100, 10, 200 },
        { 110, 10, 100, 1, ALLOW, 0, 190, 0, 300 },
        /* est 1 + ceil(10 * 50 / 100) = 6 */
        { 150, 10, 100, 3, ALLOW, 1, 150, 0, 300 },
        /* est 4 + ceil(4.9) = 9; passes at 160: 4 + 4 + 2 = 10 */
        { 151, 10, 100, 2, DENY, 1, 149, 9, 300 },
        /* rolled once: prev 4, est ceil(4 * 50 / 100) = 2 */
        { 250, 10, 100, 1, ALLOW, 7, 150, 0, 400 },
        /* rolled twice: both zero */
        { 500, 10, 100, 1, ALLOW, 9, 200, 0, 700 },
    };
    static const struct step cost_max[] = {
        { 0, 5, 10, 5, ALLOW, 0, 20, 0, 20 },
        { 10, 5, 10, 5, DENY, 0, 10, 10, 20 },
        { 19, 5, 10, 5, DENY, 4, 1, 1, 20 },   /* est ceil(0.5) = 1 */
        { 20, 5, 10, 5, ALLOW, 0, 20, 0, 40 },
    };
    static const struct step one[] = {  /* max 1, window 1 ms */
        { 0, 1, 1, 1, ALLOW, 0, 2, 0, 2 },
        { 1, 1, 1, 1, DENY, 0, 1, 1, 2 },
        { 2, 1, 1, 1, ALLOW, 0, 2, 0, 4 },
        { 2, 1, 1, 1, DENY, 0, 2, 2, 4 },
    };
    /* prev * (w - e) = 10^20 > 2^64: only muldiv gets these right. */
    static const struct step huge[] = {
        { 0, E9, E11, E9, ALLOW, 0, 2 * E11, 0, 2 * E11 },
        { E11 + 1, E9, E11, 1, DENY, 0, E11 - 1, 99, 2 * E11 },
        { E11 + 99, E9, E11, 1, DENY, 0, E11 - 99, 1, 2 * E11 },
        { E11 + 100, E9, E11, 1, ALLOW, 0, 2 * E11 - 100, 0, 3 * E11 },
    };
    static const struct step year[] = {
        { 1700000000000, 1000, YEAR_MS, 1000, ALLOW, 0, 2944000000 + YEAR_MS,
          0, 1702944000000 + YEAR_MS },
        /* next year, 1 ms in: ceil(1000 * (Y - 1) / Y) = 1000 */
        { 1702944000001, 1000, YEAR_MS, 1, DENY, 0, YEAR_MS - 1, 31535999,
          1702944000000 + YEAR_MS },
        { 1702944000000 + 31536000, 1000, YEAR_MS, 1, ALLOW, 0,
          2 * YEAR_MS - 31536000, 0, 1702944000000 + 2 * YEAR_MS },
    };

    RUN(SW, t);
    RUN(SW, cost_max);
    RUN(SW, one);
    RUN(SW, huge);
    RUN(SW, year);
}
END_TEST

START_TEST(test_sw_limit_change)
{
    static const struct step t[] = {
        { 0, 10, 100, 8, ALLOW, 2, 200, 0, 200 },
        /* max smaller: 8 in use > 5; next window, ceil(8*50/100) = 4 */
        { 10, 5, 100, 1, DENY, 0, 190, 140, 200 },
        { 20, 20, 100, 1, ALLOW, 11, 180, 0, 200 }, /* max bigger */
        /* window bigger: old est ceil(9 * 50 / 100) = 5 becomes cur */
        { 150, 20, 1000, 1, ALLOW, 14, 1850, 0, 2000 },
        /* window smaller: old est 6 becomes cur of [160, 170) */
        { 160, 20, 10, 1, ALLOW, 13, 20, 0, 180 },
        /* change at the expiry time: as fresh */
        { 180, 20, 50, 1, ALLOW, 19, 70, 0, 250 },
    };

    RUN(SW, t);
}
END_TEST

START_TEST(test_sw_backward_clock)
{
    static const struct step t[] = {
        { 105, 2, 10, 1, ALLOW, 1, 15, 0, 120 },
        { 95, 2, 10, 1, ALLOW, 0, 20, 0, 120 },  /* taken as 100 */
        /* next window: ceil(2 * (10 - e) / 10) <= 1 from e = 5 */
        { 99, 2, 10, 1, DENY, 0, 20, 15, 120 },
    };

    RUN(SW, t);
}
END_TEST

/* ---- token bucket and GCRA (the same admissions, same outputs) ---- */

/* max 4 per 10 ms: a token every 2.5 ms. */
static const struct step bucket_t[] = {
    { 0, 4, 10, 1, ALLOW, 3, 3, 0, 3 },
    { 0, 4, 10, 3, ALLOW, 0, 10, 0, 10 },
    { 1, 4, 10, 1, DENY, 0, 9, 2, 10 },     /* level 0.4 */
    { 3, 4, 10, 1, ALLOW, 0, 10, 0, 13 },   /* 1.2 - 1 = 0.2 */
    { 4, 4, 10, 2, DENY, 0, 9, 4, 13 },     /* 0.6: 2 at 8 (2.2) */
    { 7, 4, 10, 2, DENY, 1, 6, 1, 13 },     /* 1.8 */
    { 8, 4, 10, 2, ALLOW, 0, 10, 0, 18 },
    { 100, 4, 10, 4, ALLOW, 0, 10, 0, 110 },
};

static const struct step bucket_edges[] = {
    /* cost = max, refill half way */
    { 0, 5, 1000, 5, ALLOW, 0, 1000, 0, 1000 },
    { 500, 5, 1000, 5, DENY, 2, 500, 500, 1000 },
    { 1000, 5, 1000, 5, ALLOW, 0, 1000, 0, 2000 },
    /* max 1, window 1 ms (elapsed >= window: full) */
    { 5000, 1, 1, 1, ALLOW, 0, 1, 0, 5001 },
};

static const struct step bucket_one[] = {
    { 0, 1, 1, 1, ALLOW, 0, 1, 0, 1 },
    { 0, 1, 1, 1, DENY, 0, 1, 1, 1 },
    { 1, 1, 1, 1, ALLOW, 0, 1, 0, 2 },
};

/* 10^9 per 10^11 ms: a token every 100 ms; products near 10^20. */
static const struct step bucket_huge[] = {
    { 0, E9, E11, E9, ALLOW, 0, E11, 0, E11 },
    { 150, E9, E11, 1, ALLOW, 0, E11 - 50, 0, E11 + 100 },
    { 151, E9, E11, 1, DENY, 0, E11 - 51, 49, E11 + 100 },
    { 200, E9, E11, 1, ALLOW, 0, E11, 0, E11 + 200 },
    { RL_NOW_MAX, E9, E11, E9, ALLOW, 0, E11, 0, RL_NOW_MAX + E11 },
};

/* 1000 per year: a token every 31536000 ms. */
static const struct step bucket_year[] = {
    { 0, 1000, YEAR_MS, 1000, ALLOW, 0, YEAR_MS, 0, YEAR_MS },
    { 31536000, 1000, YEAR_MS, 1, ALLOW, 0, YEAR_MS, 0,
      31536000 + YEAR_MS },
    { 31536001, 1000, YEAR_MS, 1, DENY, 0, YEAR_MS - 1, 31535999,
      31536000 + YEAR_MS },
};

START_TEST(test_tb_table)
{
    RUN(TB, bucket_t);
    RUN(TB, bucket_edges);
    RUN(TB, bucket_one);
    RUN(TB, bucket_huge);
    RUN(TB, bucket_year);
}
END_TEST

START_TEST(test_gcra_table)
{
    RUN(GC, bucket_t);
    RUN(GC, bucket_edges);
    RUN(GC, bucket_one);
    RUN(GC, bucket_huge);
    RUN(GC, bucket_year);
}
END_TEST

/* The units in use stay in use; a fraction of 1/old window is dropped. */
START_TEST(test_tb_limit_change)
{
    static const struct step t[] = {
        { 0, 10, 100, 6, ALLOW, 4, 60, 0, 60 },
        { 0, 20, 100, 1, ALLOW, 13, 35, 0, 35 },  /* 4 + 10 - 1 */
        { 0, 5, 100, 1, DENY, 0, 100, 20, 100 },  /* 13 - 15 < 0: 0 */
        /* window 50: level 0.5 refilled under the old limit, dropped */
        { 10, 5, 50, 1, DENY, 0, 50, 10, 60 },
        { 20, 5, 50, 1, ALLOW, 0, 50, 0, 70 },
        /* full under the old limit, so full under the new one */
        { 1000, 100, 50, 1, ALLOW, 99, 1, 0, 1001 },
    };

    RUN(TB, t);
}
END_TEST

/* TAT (the time the limit is whole again) is kept; frac rounds up. */
START_TEST(test_gcra_limit_change)
{
    static const struct step t[] = {
        { 0, 4, 10, 1, ALLOW, 3, 3, 0, 3 },       /* TAT 2.5 */
        /* max 3: TAT 3, + 10/3: 6 + 1/3; (10 - 6.33) * 3 / 10 = 1.1 */
        { 0, 3, 10, 1, ALLOW, 1, 7, 0, 7 },
        /* window 5: 6.33 + 5/3 = 8 > 0 + 5; passes at 3 */
        { 0, 3, 5, 1, DENY, 0, 7, 3, 7 },
        /* max 30 per 100: TAT 7, + 10 * 100 / 30: 40.33, 17.9 left */
        { 0, 30, 100, 10, ALLOW, 17, 41, 0, 41 },
        /* at the expiry time, with another limit: as fresh */
        { 41, 1, 1, 1, ALLOW, 0, 1, 0, 42 },
    };
    /* Where the token bucket keeps 6 units in use, GCRA keeps 60 ms. */
    static const struct step differs[] = {
        { 0, 10, 100, 6, ALLOW, 4, 60, 0, 60 },
        { 0, 20, 100, 1, ALLOW, 7, 65, 0, 65 },
    };

    RUN(GC, t);
    RUN(GC, differs);
}
END_TEST

START_TEST(test_bucket_backward_clock)
{
    static const struct step tb[] = {
        { 100, 4, 10, 4, ALLOW, 0, 10, 0, 110 },
        { 90, 4, 10, 1, DENY, 0, 10, 3, 110 },    /* stands at 100 */
        { 103, 4, 10, 1, ALLOW, 0, 10, 0, 113 },
    };
    /* GCRA keeps no time but TAT: from 90, TAT 110 is 20 ahead. */
    static const struct step gc[] = {
        { 100, 4, 10, 4, ALLOW, 0, 10, 0, 110 },
        { 90, 4, 10, 1, DENY, 0, 20, 13, 110 },
        { 103, 4, 10, 1, ALLOW, 0, 10, 0, 113 },
    };

    RUN(TB, tb);
    RUN(GC, gc);
}
END_TEST

/* ---- sliding log ---- */

START_TEST(test_sl_table)
{
    static const struct step t[] = {
        { 0, 3, 10, 1, ALLOW, 2, 10, 0, 10 },
        { 0, 3, 10, 1, ALLOW, 1, 10, 0, 10 },     /* merged: (0, 2) */
        { 5, 3, 10, 1, ALLOW, 0, 10, 0, 15 },
        { 9, 3, 10, 1, DENY, 0, 6, 1, 15 },       /* (0, 2) goes at 10 */
        { 10, 3, 10, 2, ALLOW, 0, 10, 0, 20 },    /* on the boundary */
        { 14, 3, 10, 1, DENY, 0, 6, 1, 20 },
        { 15, 3, 10, 3, DENY, 1, 5, 5, 20 },      /* needs (10, 2) gone */
        { 30, 3, 10, 3, ALLOW, 0, 10, 0, 40 },
    };
    static const struct step one[] = {
        { 0, 1, 1, 1, ALLOW, 0, 1, 0, 1 },
        { 0, 1, 1, 1, DENY, 0, 1, 1, 1 },
        { 1, 1, 1, 1, ALLOW, 0, 1, 0, 2 },
    };
    static const struct step cost_max[] = {
        { 7, 4, YEAR_MS, 4, ALLOW, 0, YEAR_MS, 0, 7 + YEAR_MS },
        { 7 + YEAR_MS - 1, 4, YEAR_MS, 4, DENY, 0, 1, 1, 7 + YEAR_MS },
        { 7 + YEAR_MS, 4, YEAR_MS, 4, ALLOW, 0, YEAR_MS, 0,
          7 + 2 * YEAR_MS },
    };
    static const struct step huge[] = {
        { RL_NOW_MAX - 1, RL_SLIDING_LOG_MAX, E11, RL_SLIDING_LOG_MAX - 1,
          ALLOW, 1, E11, 0, RL_NOW_MAX - 1 + E11 },
        { RL_NOW_MAX, RL_SLIDING_LOG_MAX, E11, 2, DENY, 1, E11 - 1, E11 - 1,
          RL_NOW_MAX - 1 + E11 },
    };

    RUN(SL, t);
    RUN(SL, one);
    RUN(SL, cost_max);
    RUN(SL, huge);
}
END_TEST

START_TEST(test_sl_limit_change)
{
    static const struct step t[] = {
        { 0, 5, 10, 3, ALLOW, 2, 10, 0, 10 },
        { 2, 5, 10, 2, ALLOW, 0, 10, 0, 12 },
        { 3, 4, 10, 1, DENY, 0, 9, 7, 12 },       /* max smaller */
        { 3, 8, 10, 1, ALLOW, 2, 10, 0, 13 },     /* max bigger */
        /* window 4: (0, 3) expired under it, the rest kept */
        { 5, 8, 4, 1, ALLOW, 4, 4, 0, 9 },
        /* window 100: what had expired under 4 stays gone */
        { 7, 8, 100, 5, ALLOW, 2, 100, 0, 107 },
        { 50, 8, 100, 3, DENY, 2, 57, 55, 107 },
    };

    RUN(SL, t);
}
END_TEST

START_TEST(test_sl_backward_clock)
{
    static const struct step t[] = {
        { 5, 2, 10, 1, ALLOW, 1, 10, 0, 15 },
        { 3, 2, 10, 1, ALLOW, 0, 10, 0, 15 },     /* at 5, merged */
        { 4, 2, 10, 1, DENY, 0, 10, 10, 15 },
    };

    RUN(SL, t);
}
END_TEST

/*
 * The largest log: RL_SLIDING_LOG_MAX entries, all in one year-long
 * window; the ring holds no more than max entries, and shrinks again once
 * they expire.
 */
START_TEST(test_sl_full_ring)
{
    rl_algo_state st;
    rl_decision d;
    int64_t i, m = RL_SLIDING_LOG_MAX;

    memset(&st, 0, sizeof(st));
    for (i = 0; i < m; i++) {
        d = decide(SL, &st, 1000 + i, m, YEAR_MS, 1);
        ck_assert(d.allowed);
        ck_assert_int_eq(d.remaining, m - 1 - i);
    }
    ck_assert_int_eq(st.log->len, m);
    ck_assert_int_le(st.log->cap, m);
    d = decide(SL, &st, 1000 + m, m, YEAR_MS, 1);
    ck_assert(!d.allowed);
    ck_assert_int_eq(d.retry_after_ms, YEAR_MS - m);
    d = decide(SL, &st, 1000 + YEAR_MS + m / 2, m, YEAR_MS, 1);
    ck_assert(d.allowed);
    ck_assert_int_eq(d.remaining, m / 2);
    d = decide(SL, &st, 1000 + 2 * YEAR_MS, m, YEAR_MS, 1);
    ck_assert(d.allowed);
    ck_assert_int_eq(d.remaining, m - 2);
    ck_assert_int_eq(st.log->len, 2);
    ck_assert_int_le(st.log->cap, 8);
    rl__algo_state_clear(&st);
    ck_assert_ptr_null(st.log);
    ck_assert_int_eq(st.max, 0);
}
END_TEST

/* Caps the address space at what is mapped now plus 256 KiB. */
static int
limit_memory(struct rlimit *rl)
{
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (!f)
        return -1;
    if (fscanf(f, "%ld", &pages) != 1)
        pages = -1;
    fclose(f);
    if (pages < 0)
        return -1;
    rl->rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) +
                   (rlim_t)(256 * 1024);
    return setrlimit(RLIMIT_AS, rl);
}

/*
 * In a child: fills a log of 40000 entries (a ring of 65536), caps the
 * memory, and adds entries until the ring must grow and cannot.
 */
static int
nomem_child(void)
{
    rl_algo_state st, before;
    struct rl_log log_before;
    rl_decision d, d0;
    struct rlimit rl;
    int64_t i, n = 40000;
    int rc = RL_OK;

    memset(&st, 0, sizeof(st));
    for (i = 0; i < n; i++)
        rl__algo_sliding_log(&st, i, RL_SLIDING_LOG_MAX, E11, 1, &d);
    if (st.log->len != n)
        return 2;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || limit_memory(&rl) != 0)
        return 3;
    for (; i < RL_SLIDING_LOG_MAX && rc == RL_OK; i++) {
        before = st;
        log_before = *st.log;
        memset(&d, 0x5a, sizeof(d));
        d0 = d;
        rc = rl__algo_sliding_log(&st, i, RL_SLIDING_LOG_MAX, E11, 1, &d);
    }
    if (rc != RL_ERR_NOMEM)
        return 6;
    if (memcmp(&before, &st, sizeof(st)) != 0 ||
        memcmp(&log_before, st.log, sizeof(log_before)) != 0 ||
        st.log->len != i - 1 || memcmp(&d, &d0, sizeof(d)) != 0)
        return 7;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        return 8;
    rc = rl__algo_sliding_log(&st, i, RL_SLIDING_LOG_MAX, E11, 1, &d);
    if (rc != RL_OK || !d.allowed || st.log->len != i)
        return 9;
    rl__algo_state_clear(&st);
    return 0;
}

#define NOMEM_CHILD_ENV "RL_TEST_ALGO_NOMEM_CHILD"

/*
 * Growing the ring fails: RL_ERR_NOMEM, state and decision untouched.  The
 * child is this program run afresh (main sees NOMEM_CHILD_ENV), so that no
 * memory freed by earlier tests can serve the growth.
 */
START_TEST(test_sl_nomem)
{
    pid_t pid;
    int status = 0;

    if (UNDER_ASAN)
        return; /* the sanitizer's shadow memory defeats RLIMIT_AS */
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setenv(NOMEM_CHILD_ENV, "1", 1);
        execl("/proc/self/exe", "test_algo", (char *)NULL);
        _exit(127);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

/* ---- every algorithm: a denial changes nothing ---- */

/* The admitted units, as each state encodes them. */
static int64_t
in_use(rl_algorithm alg, const rl_algo_state *st)
{
    switch (alg) {
    case FW:
        return st->v[1];
    case SW:
        return st->v[2];
    case TB:
        return -st->v[0];
    case SL:
        return st->log ? st->log->sum : 0;
    case GC:
        return st->v[0] * st->max + st->v[1];
    }
    return 0;
}

START_TEST(test_denied_keeps_count)
{
    rl_algorithm alg = all_algs[_i];
    rl_algo_state st;
    rl_decision d;
    int64_t before;

    memset(&st, 0, sizeof(st));
    decide(alg, &st, 1000, 10, 100, 7);
    before = in_use(alg, &st);
    d = decide(alg, &st, 1000, 10, 100, 4);
    ck_assert(!d.allowed);
    ck_assert_int_eq(in_use(alg, &st), before);
    d = decide(alg, &st, 1000, 10, 100, 3);
    ck_assert(d.allowed);
    ck_assert_int_eq(d.remaining, 0);
    rl__algo_state_clear(&st);
}
END_TEST

/* ---- copies, peeks, groups and cost 0 (section 10) ---- */

/* Whether two states hold the same numbers and the same log entries. */
static bool
state_equal(const rl_algo_state *a, const rl_algo_state *b)
{
    uint32_t n = a->log ? a->log->len : 0, i;
    const struct rl_log_entry *x, *y;

    if (memcmp(a->v, b->v, sizeof(a->v)) != 0 || a->max != b->max ||
        a->window != b->window || n != (b->log ? b->log->len : 0))
        return false;
    if (n > 0 && a->log->sum != b->log->sum)
        return false;
    for (i = 0; i < n; i++) {
        x = &a->log->e[(a->log->head + i) % a->log->cap];
        y = &b->log->e[(b->log->head + i) % b->log->cap];
        if (x->ts != y->ts || x->cost != y->cost)
            return false;
    }
    return true;
}

/* Asserts every field of a decision. */
static void
assert_decision(const rl_decision *d, int allowed, int64_t remaining,
                int64_t reset, int64_t retry, int64_t expire,
                const char *what)
{
    ck_assert_msg(d->allowed == allowed && d->remaining == remaining &&
                  d->reset_ms == reset && d->retry_after_ms == retry &&
                  d->expire_at_ms == expire,
                  "%s: got allowed %d remaining %lld reset %lld retry %lld"
                  " expire %lld", what, (int)d->allowed,
                  (long long)d->remaining, (long long)d->reset_ms,
                  (long long)d->retry_after_ms, (long long)d->expire_at_ms);
}

/* rl__algo_decide without decide()'s bounds, which cost 0 may leave. */
static rl_decision
decide_raw(rl_algorithm alg, rl_algo_state *st, int64_t now, int64_t max,
           int64_t window, int64_t cost)
{
    rl_decision d;

    memset(&d, 0xa5, sizeof(d));
    REQUIRE(rl__algo_decide(alg, st, now, max, window, cost, &d) == RL_OK);
    return d;
}

/*
 * A copy is deep: the original and the copy decide apart (if they shared
 * the log, the second check of cost 5 would be denied).
 */
START_TEST(test_state_copy)
{
    rl_algorithm alg = all_algs[_i];
    rl_algo_state st, c;
    rl_decision a, b;

    memset(&st, 0, sizeof(st));
    ck_assert_int_eq(rl__algo_state_copy(&c, &st), RL_OK);
    ck_assert(c.max == 0 && c.log == NULL);
    decide(alg, &st, 0, 10, 100, 3);
    decide(alg, &st, 5, 10, 100, 2);
    ck_assert_int_eq(rl__algo_state_copy(&c, &st), RL_OK);
    ck_assert(state_equal(&c, &st));
    if (alg == SL)
        ck_assert(c.log != st.log && c.log->e != st.log->e &&
                  c.log->len == 2);
    a = decide(alg, &c, 5, 10, 100, 5);
    b = decide(alg, &st, 5, 10, 100, 5);
    ck_assert(a.allowed && same_decision(&a, &b));
    ck_assert(state_equal(&c, &st));
    rl__algo_state_clear(&c);
    rl__algo_state_clear(&st);
}
END_TEST

/* A peek answers what a check would, and leaves the state as it was. */
START_TEST(test_peek)
{
    rl_algorithm alg = all_algs[_i];
    rl_algo_state st, before;
    rl_decision p, d;

    memset(&st, 0, sizeof(st));
    decide(alg, &st, 0, 10, 100, 7);
    state_copy(&before, &st);
    memset(&p, 0, sizeof(p));
    ck_assert_int_eq(rl__algo_peek(alg, &st, 0, 10, 100, 4, &p), RL_OK);
    ck_assert(!p.allowed && p.retry_after_ms > 0);
    ck_assert(state_equal(&st, &before));
    ck_assert_int_eq(rl__algo_peek(alg, &st, 0, 10, 100, 3, &p), RL_OK);
    ck_assert(p.allowed && p.remaining == 0);
    ck_assert(state_equal(&st, &before));
    d = decide(alg, &st, 0, 10, 100, 3);
    ck_assert(same_decision(&p, &d));
    ck_assert_int_eq(rl__algo_peek((rl_algorithm)9, &st, 10, 10, 100, 1, &p),
                     RL_ERR_INVALID);
    rl__algo_state_clear(&before);
    rl__algo_state_clear(&st);
}
END_TEST

/*
 * Cost 0 on a fresh state: everything left, nothing in use, no log
 * allocated.  After 8 of 10 units at 0, cost 0 with max 5 at 10: denied
 * where 8 units stay in use (fixed and sliding window, log), passing
 * where the bucket's converted level or GCRA's TAT allows it.  At 500
 * every state has let go: as fresh.
 */
START_TEST(test_cost_zero)
{
    static const struct {
        int allowed;
        int64_t remaining, reset, retry, expire;
    } smaller[] = {
        [SW] = { DENY, 0, 190, 128, 200 },
        [TB] = { ALLOW, 0, 100, 0, 110 },
        [FW] = { DENY, 0, 90, 90, 100 },
        [SL] = { DENY, 0, 90, 90, 100 },
        [GC] = { ALLOW, 1, 70, 0, 80 },
    };
    rl_algorithm alg = all_algs[_i];
    rl_algo_state st;
    rl_decision d;

    memset(&st, 0, sizeof(st));
    d = decide_raw(alg, &st, 1000, 10, 100, 0);
    assert_decision(&d, ALLOW, 10, 0, 0, 1000, "fresh");
    ck_assert_ptr_null(st.log);
    rl__algo_state_clear(&st);

    decide(alg, &st, 0, 10, 100, 8);
    d = decide_raw(alg, &st, 10, 5, 100, 0);
    assert_decision(&d, smaller[alg].allowed, smaller[alg].remaining,
                    smaller[alg].reset, smaller[alg].retry,
                    smaller[alg].expire, "smaller max");
    d = decide_raw(alg, &st, 500, 5, 100, 0);
    assert_decision(&d, ALLOW, 5, 0, 0, 500, "all expired");
    if (alg == SL)
        ck_assert_int_eq(st.log->len, 0);
    d = decide(alg, &st, 500, 5, 100, 5);
    assert_decision(&d, ALLOW, 0, alg == SW ? 200 : 100, 0,
                    alg == SW ? 700 : 600, "then as fresh");
    rl__algo_state_clear(&st);
}
END_TEST

/*
 * The three keys of the group tests: A (10 per 100 ms) took 2 and B (5
 * per 100 ms) took 4 at 1000; C is fresh.  What each algorithm answers
 * at 1010 for A and B with cost 0 (A0, B0: remaining, reset), for B's own
 * denial of cost 2 (rem, reset, retry), and when A and B let go.
 */
struct group_want {
    int64_t a0_rem, a0_reset, b_reset, b_retry, a_exp, b_exp;
    int64_t a2_rem, a2_reset, a2_retry; /* A's second check of cost 5 */
    int64_t a_rem_after;                /* A's check of cost 1 after */
};

static const struct group_want group_want[] = {
    [SW] = { 8, 190, 190, 115, 1200, 1200, 3, 190, 119, 7 },
    [TB] = { 9, 10, 70, 10, 1020, 1080, 4, 60, 10, 8 },
    [FW] = { 8, 90, 90, 90, 1100, 1100, 3, 90, 90, 7 },
    [SL] = { 8, 90, 90, 90, 1100, 1100, 3, 100, 90, 7 },
    [GC] = { 9, 10, 70, 10, 1020, 1080, 4, 60, 10, 8 },
};

/* A, B and C of the group tests, and copies of them. */
struct abc {
    rl_algo_state s[3], before[3];
};

static void
abc_setup(rl_algorithm alg, struct abc *k)
{
    int i;

    memset(k, 0, sizeof(*k));
    decide(alg, &k->s[0], 1000, 10, 100, 2);
    decide(alg, &k->s[1], 1000, 5, 100, 4);
    for (i = 0; i < 3; i++)
        state_copy(&k->before[i], &k->s[i]);
}

/* The group left every state as it was. */
static void
abc_untouched(const struct abc *k)
{
    int i;

    for (i = 0; i < 3; i++)
        ck_assert_msg(state_equal(&k->s[i], &k->before[i]),
                      "state %d changed", i);
}

/*
 * rl__algo_group at 1010 on k's states key[0..2], windows of 100 ms;
 * returns whether the group was admitted.
 */
static bool
abc_group(rl_algorithm alg, struct abc *k, const int key[3],
          const int64_t max[3], const int64_t cost[3], rl_decision out[3])
{
    static const int64_t win[] = { 100, 100, 100 };
    rl_algo_state *st[3];
    bool admitted = false;
    int i;

    for (i = 0; i < 3; i++)
        st[i] = &k->s[key[i]];
    ck_assert_int_eq(rl__algo_group(alg, st, 3, 1010, max, win, cost, out,
                                    &admitted), RL_OK);
    return admitted;
}

static void
abc_clear(struct abc *k)
{
    int i;

    for (i = 0; i < 3; i++) {
        rl__algo_state_clear(&k->s[i]);
        rl__algo_state_clear(&k->before[i]);
    }
}

/*
 * A group of three limits whose second denies: nothing charged (checks
 * after it see the states of before), the retry on the denier only, the
 * others' remaining uncharged.
 */
START_TEST(test_group_denied)
{
    static const int key[] = { 0, 1, 2 };
    static const int64_t max[] = { 10, 5, 10 }, cost[] = { 3, 2, 2 };
    const struct group_want *w = &group_want[all_algs[_i]];
    struct abc k;
    rl_decision out[3], d;

    abc_setup(all_algs[_i], &k);
    ck_assert(!abc_group(all_algs[_i], &k, key, max, cost, out));
    assert_decision(&out[0], DENY, w->a0_rem, w->a0_reset, 0, w->a_exp,
                    "A, uncharged");
    assert_decision(&out[1], DENY, 1, w->b_reset, w->b_retry, w->b_exp,
                    "B, the denier");
    assert_decision(&out[2], DENY, 10, 0, 0, 1010, "C, fresh");
    abc_untouched(&k);
    d = decide(all_algs[_i], &k.s[0], 1010, 10, 100, 1);
    ck_assert(d.allowed && d.remaining == w->a_rem_after);
    d = decide(all_algs[_i], &k.s[1], 1010, 5, 100, 1);
    ck_assert(d.allowed && d.remaining == 0);
    d = decide(all_algs[_i], &k.s[2], 1010, 10, 100, 1);
    ck_assert(d.allowed && d.remaining == 9);
    abc_clear(&k);
}
END_TEST

/*
 * One key twice in a group: the second check sees the first's charge.
 * A, 5 then 5, and C, 1: the second A check denies on what the first
 * took, keeps its own answer; the first gets A's uncharged one.  Then A,
 * 3 then 3, and C, 2: all admitted, exactly as three checks alone.
 */
START_TEST(test_group_same_key)
{
    static const int key[] = { 0, 0, 2 };
    static const int64_t max[] = { 10, 10, 10 };
    static const int64_t cost_denied[] = { 5, 5, 1 }, cost_ok[] = { 3, 3, 2 };
    static const int64_t a2_after[] = { [SW] = 2, [TB] = 3, [FW] = 2,
                                        [SL] = 2, [GC] = 3 };
    rl_algorithm alg = all_algs[_i];
    const struct group_want *w = &group_want[alg];
    struct abc k;
    rl_decision out[3], want;
    int i;

    abc_setup(alg, &k);
    ck_assert(!abc_group(alg, &k, key, max, cost_denied, out));
    assert_decision(&out[0], DENY, w->a0_rem, w->a0_reset, 0, w->a_exp,
                    "A first, uncharged");
    assert_decision(&out[1], DENY, w->a2_rem, w->a2_reset, w->a2_retry,
                    w->a_exp, "A second, the denier");
    assert_decision(&out[2], DENY, 10, 0, 0, 1010, "C");
    abc_untouched(&k);

    ck_assert(abc_group(alg, &k, key, max, cost_ok, out));
    ck_assert_int_eq(out[1].remaining, a2_after[alg]);
    for (i = 0; i < 3; i++) {
        want = decide(alg, &k.before[key[i]], 1010, max[i], 100,
                      cost_ok[i]);
        ck_assert_msg(same_decision(&out[i], &want), "check %d", i);
    }
    ck_assert(state_equal(&k.s[0], &k.before[0]) &&
              state_equal(&k.s[2], &k.before[2]));
    abc_clear(&k);
}
END_TEST

/* Bad arguments: nothing done. */
START_TEST(test_group_invalid)
{
    rl_algo_state s, *st[RL_CHECK_ALL_MAX + 1];
    int64_t v[RL_CHECK_ALL_MAX + 1];
    rl_decision out[RL_CHECK_ALL_MAX + 1];
    bool admitted = false;
    size_t i;

    memset(&s, 0, sizeof(s));
    for (i = 0; i <= RL_CHECK_ALL_MAX; i++) {
        st[i] = &s;
        v[i] = 1;
    }
    ck_assert_int_eq(rl__algo_group(SW, st, RL_CHECK_ALL_MAX + 1, 0, v, v, v,
                                    out, &admitted), RL_ERR_INVALID);
    ck_assert_int_eq(rl__algo_group((rl_algorithm)9, st, 1, 0, v, v, v, out,
                                    &admitted), RL_ERR_INVALID);
    ck_assert(!admitted && s.max == 0);
    ck_assert_int_eq(rl__algo_group(SW, st, 0, 0, v, v, v, out, &admitted),
                     RL_OK);
    ck_assert(admitted);
    ck_assert_int_eq(rl__algo_group(SW, st, RL_CHECK_ALL_MAX, 0, v, v, v,
                                    out, &admitted), RL_OK);
    ck_assert(!admitted && s.max == 0);
    /* The second unit check denies (one unit per 2 ms, section 9). */
    ck_assert(!out[0].allowed && out[0].remaining == 1 &&
              out[1].remaining == 0 && out[1].retry_after_ms == 2);
}
END_TEST

/* ---- properties ---- */

struct adm {
    int64_t ts, cost;
};

/* Units admitted at ts in [lo, hi). */
static int64_t
units_in(const struct adm *a, size_t n, int64_t lo, int64_t hi)
{
    int64_t sum = 0;
    size_t i;

    for (i = 0; i < n; i++)
        if (a[i].ts >= lo && a[i].ts < hi)
            sum += a[i].cost;
    return sum;
}

/* Brute force: the decision the admissions so far imply. */
static void
brute_check(rl_algorithm alg, const struct adm *a, size_t n, int64_t now,
            int64_t max, int64_t w, int64_t cost, const rl_decision *d)
{
    int64_t lo = alg == FW ? now - now % w : now - w + 1;
    int64_t hi = alg == FW ? lo + w : now + 1;
    int64_t used = units_in(a, n, lo, hi);
    int64_t after = used + (d->allowed ? cost : 0);

    REQUIRE(d->allowed == (used + cost <= max));
    REQUIRE(d->remaining == (max - after > 0 ? max - after : 0));
}

/* No aligned window (fixed) or w-span (log) holds more than max. */
static void
brute_spans(rl_algorithm alg, const struct adm *a, size_t n, int64_t max,
            int64_t w)
{
    size_t i;

    for (i = 0; i < n; i++) {
        int64_t lo = alg == FW ? a[i].ts - a[i].ts % w : a[i].ts;

        REQUIRE(units_in(a, n, lo, lo + w) <= max);
        if (alg == FW)
            REQUIRE(units_in(a, n, a[i].ts, a[i].ts + w) <= 2 * max);
    }
}

static void
brute_sequence(rl_algorithm alg, int64_t max, int64_t w, size_t steps)
{
    struct adm *a = calloc(steps, sizeof(*a));
    rl_algo_state st;
    rl_decision d;
    int64_t now = rnd_in(0, 1000), cost;
    size_t i, n = 0;

    REQUIRE(a != NULL);
    memset(&st, 0, sizeof(st));
    for (i = 0; i < steps; i++) {
        now += rnd_step(w) / (rnd() % 3 + 1);
        cost = rnd_cost(max);
        d = decide(alg, &st, now, max, w, cost);
        brute_check(alg, a, n, now, max, w, cost, &d);
        if (d.allowed) {
            a[n].ts = now;
            a[n++].cost = cost;
        }
    }
    brute_spans(alg, a, n, max, w);
    rl__algo_state_clear(&st);
    free(a);
}

START_TEST(test_prop_brute_force)
{
    rl_algorithm alg = _i == 0 ? FW : SL;
    int k;

    rng = 0x5eed0001 + (uint64_t)_i;
    for (k = 0; k < 3000; k++)
        brute_sequence(alg, rnd_in(1, 12), rnd_in(1, 40), 80);
}
END_TEST

/* Long logs: the ring grows, wraps and shrinks under brute force. */
START_TEST(test_prop_sl_long)
{
    int k;

    rng = 0x5eed0002;
    for (k = 0; k < 12; k++)
        brute_sequence(SL, rnd_in(100, 3000), rnd_in(50, 5000), 2500);
}
END_TEST

/* Checks retry_after and reset of d (at now) on copies of st. */
static void
check_exact_times(rl_algorithm alg, const rl_algo_state *st, int64_t now,
                  int64_t max, int64_t w, int64_t cost, const rl_decision *d)
{
    rl_decision p;

    if (!d->allowed) {
        p = probe(alg, st, now + d->retry_after_ms - 1, max, w, cost);
        REQUIRE_MSG(!p.allowed, "passes 1 ms before retry_after");
        p = probe(alg, st, now + d->retry_after_ms, max, w, cost);
        REQUIRE_MSG(p.allowed, "denied at retry_after");
    }
    if (d->reset_ms > 0) {
        p = probe(alg, st, now + d->reset_ms - 1, max, w, max);
        REQUIRE_MSG(!p.allowed, "whole limit 1 ms before reset");
    }
    p = probe(alg, st, now + d->reset_ms, max, w, max);
    REQUIRE_MSG(p.allowed, "whole limit not there at reset");
}

/* From expire_at on, st answers any check as a fresh state does. */
static void
check_expiry(rl_algorithm alg, const rl_algo_state *st,
             const rl_decision *d, int64_t max, int64_t w)
{
    rl_algo_state fresh;
    rl_decision a, b;
    int64_t when = d->expire_at_ms + (rnd() % 2 ? 0 : rnd_step(w));
    int64_t cost;

    if (rnd() % 2)
        rnd_limit(alg, &max, &w);
    cost = rnd_cost(max);
    memset(&fresh, 0, sizeof(fresh));
    a = probe(alg, st, when, max, w, cost);
    b = decide(alg, &fresh, when, max, w, cost);
    REQUIRE_MSG(same_decision(&a, &b), "not fresh at expire_at");
    rl__algo_state_clear(&fresh);
}

/* Runs random sequences, with limit changes; fn checks each decision. */
typedef void (*decision_fn)(rl_algorithm alg, const rl_algo_state *before,
                            const rl_algo_state *after, int64_t now,
                            int64_t max, int64_t w, int64_t cost,
                            bool changed, const rl_decision *d);

static int64_t
random_sequences(rl_algorithm alg, int count, int steps, decision_fn fn)
{
    rl_algo_state st, before;
    rl_decision d;
    int64_t now, max, w, cost, denied = 0;
    bool changed;
    int k, i;

    for (k = 0; k < count; k++) {
        memset(&st, 0, sizeof(st));
        rnd_limit(alg, &max, &w);
        now = rnd_in(0, INT64_C(1) << 48);
        for (i = 0; i < steps; i++) {
            changed = rnd() % 10 == 0;
            if (changed)
                rnd_limit(alg, &max, &w);
            now += rnd_step(w);
            cost = rnd_cost(max);
            state_copy(&before, &st);
            d = decide(alg, &st, now, max, w, cost);
            denied += !d.allowed;
            fn(alg, &before, &st, now, max, w, cost, changed, &d);
            rl__algo_state_clear(&before);
        }
        rl__algo_state_clear(&st);
    }
    return denied;
}

static void
exact_times_fn(rl_algorithm alg, const rl_algo_state *before,
               const rl_algo_state *after, int64_t now, int64_t max,
               int64_t w, int64_t cost, bool changed, const rl_decision *d)
{
    (void)before;
    (void)changed;
    check_exact_times(alg, after, now, max, w, cost, d);
    check_expiry(alg, after, d, max, w);
}

START_TEST(test_prop_exact_times)
{
    rng = 0x5eed0100 + (uint64_t)_i;
    ck_assert_int_gt(random_sequences(all_algs[_i], 1500, 40,
                                      exact_times_fn), 3000);
}
END_TEST

/* After any check, exactly `remaining` unit checks pass at the same ms. */
static void
remaining_fn(rl_algorithm alg, const rl_algo_state *before,
             const rl_algo_state *after, int64_t now, int64_t max,
             int64_t w, int64_t cost, bool changed, const rl_decision *d)
{
    rl_algo_state c;
    int64_t n = 0;

    (void)before;
    (void)cost;
    (void)changed;
    if (max > 60)
        return;
    state_copy(&c, after);
    while (n <= d->remaining && decide(alg, &c, now, max, w, 1).allowed)
        n++;
    REQUIRE_MSG(n == d->remaining, "%lld unit checks pass, remaining %lld",
                (long long)n, (long long)d->remaining);
    rl__algo_state_clear(&c);
}

START_TEST(test_prop_remaining)
{
    rng = 0x5eed0200 + (uint64_t)_i;
    ck_assert_int_gt(random_sequences(all_algs[_i], 1500, 40,
                                      remaining_fn), 3000);
}
END_TEST

/* A denial (same limit) leaves a state that answers as the one before. */
static void
denial_fn(rl_algorithm alg, const rl_algo_state *before,
          const rl_algo_state *after, int64_t now, int64_t max, int64_t w,
          int64_t cost, bool changed, const rl_decision *d)
{
    rl_decision a, b;
    int64_t when = now + rnd_step(w);

    if (d->allowed || changed || before->max == 0)
        return;
    cost = rnd_cost(max);
    a = probe(alg, before, when, max, w, cost);
    b = probe(alg, after, when, max, w, cost);
    REQUIRE_MSG(same_decision(&a, &b), "a denial changed the state");
}

START_TEST(test_prop_denial_neutral)
{
    rng = 0x5eed0300 + (uint64_t)_i;
    ck_assert_int_gt(random_sequences(all_algs[_i], 1500, 40, denial_fn),
                     3000);
}
END_TEST

/*
 * The exact model of the token bucket: the level as a rational with
 * denominator w, in __int128 (max * w reaches 10^20).
 */
struct bucket_ref {
    __int128 lvl; /* level * w */
    int64_t last;
};

static void
bucket_ref_check(struct bucket_ref *b, int64_t now, int64_t max, int64_t w,
                 int64_t cost, rl_decision *out)
{
    __int128 full = (__int128)max * w, need = (__int128)cost * w;

    b->lvl += (__int128)max * (now - b->last);
    if (b->lvl > full)
        b->lvl = full;
    b->last = now;
    out->allowed = b->lvl >= need;
    if (out->allowed)
        b->lvl -= need;
    out->remaining = (int64_t)(b->lvl / w);
    out->retry_after_ms = out->allowed ? 0 :
                          (int64_t)((need - b->lvl + max - 1) / max);
    out->reset_ms = (int64_t)((full - b->lvl + max - 1) / max);
    out->expire_at_ms = now + out->reset_ms;
}

START_TEST(test_prop_bucket_reference)
{
    rl_algo_state tb, gc;
    struct bucket_ref ref;
    rl_decision r, a, b;
    int64_t max, w, now, cost, denied = 0;
    int k, i;

    rng = 0x5eed0400;
    for (k = 0; k < 3000; k++) {
        memset(&tb, 0, sizeof(tb));
        memset(&gc, 0, sizeof(gc));
        rnd_limit(TB, &max, &w);
        now = rnd_in(0, INT64_C(1) << 48);
        ref.lvl = (__int128)max * w;
        ref.last = now;
        for (i = 0; i < 50; i++) {
            now += rnd_step(w) / (rnd() % 4 + 1);
            cost = rnd_cost(max);
            bucket_ref_check(&ref, now, max, w, cost, &r);
            a = decide(TB, &tb, now, max, w, cost);
            b = decide(GC, &gc, now, max, w, cost);
            REQUIRE_MSG(same_decision(&a, &r), "token bucket != model");
            REQUIRE_MSG(same_decision(&b, &r), "GCRA != model");
            denied += !r.allowed;
        }
    }
    ck_assert_int_gt(denied, 10000);
}
END_TEST

/* ---- muldiv, and its Lua procedure emulated in doubles ---- */

static double
lua_divmod(double x, double c, double *r)
{
    double q = floor(x / c);

    *r = x - q * c;
    if (*r < 0) {
        q = q - 1;
        *r = *r + c;
    } else if (*r >= c) {
        q = q + 1;
        *r = *r - c;
    }
    return q;
}

static double
lua_muldiv(double a, double b, double c, double *r)
{
    double ah = floor(a / 32768), al = a - ah * 32768, q1, r1, q2;

    q1 = lua_divmod(ah * b, c, &r1);
    q2 = lua_divmod(r1 * 32768 + al * b, c, r);
    return q1 * 32768 + q2;
}

static void
muldiv_case(int64_t a, int64_t b, int64_t c)
{
    unsigned __int128 p = (unsigned __int128)a * (unsigned __int128)b;
    int64_t r, q;
    double lr, lq;

    if (p / (unsigned __int128)c >= (unsigned __int128)1 << 53)
        return; /* outside the contract: the quotient must fit 2^53 */
    q = rl__muldiv(a, b, c, &r);
    REQUIRE(q == (int64_t)(p / (unsigned __int128)c));
    REQUIRE(r == (int64_t)(p % (unsigned __int128)c));
    REQUIRE(rl__muldiv(a, b, c, NULL) == q);
    lq = lua_muldiv((double)a, (double)b, (double)c, &lr);
    REQUIRE_MSG(lq == (double)q && lr == (double)r,
                  "Lua muldiv(%lld, %lld, %lld)", (long long)a,
                  (long long)b, (long long)c);
}

START_TEST(test_muldiv)
{
    static const int64_t as[] = {
        0, 1, 2, 32767, 32768, 32769, 999999999, 1000000000,
        (INT64_C(1) << 30) - 1
    };
    static const int64_t bs[] = {
        0, 1, 2, 32768, 99999999999, E11, (INT64_C(1) << 37) - 1
    };
    static const int64_t cs[] = {
        1, 2, 3, 7, 32768, 999999937, E9, E11, (INT64_C(1) << 37) - 1
    };
    size_t i, j, k;

    for (i = 0; i < sizeof(as) / sizeof(as[0]); i++)
        for (j = 0; j < sizeof(bs) / sizeof(bs[0]); j++)
            for (k = 0; k < sizeof(cs) / sizeof(cs[0]); k++)
                muldiv_case(as[i], bs[j], cs[k]);
    rng = 0x5eed0500;
    for (i = 0; i < 200000; i++)
        muldiv_case(rnd_in(0, (INT64_C(1) << 30) - 1),
                    rnd_in(0, (INT64_C(1) << 37) - 1),
                    rnd() % 2 ? rnd_in(1, (INT64_C(1) << 37) - 1)
                              : rnd_log(INT64_C(1) << 37));
}
END_TEST

/* ---- groups against checks alone ---- */

#define GROUP_KEYS 4
#define GROUP_MAX 8

/* A group of random checks on GROUP_KEYS keys, and the states before. */
struct rgroup {
    int n, key[GROUP_MAX];
    rl_algo_state *st[GROUP_MAX];
    int64_t max[GROUP_MAX], win[GROUP_MAX], cost[GROUP_MAX];
    rl_algo_state before[GROUP_KEYS], alone[GROUP_KEYS];
};

/* What a denied group answers for check i (dec: its decision alone). */
static void
check_denied(rl_algorithm alg, const struct rgroup *g, int i, int64_t now,
             const rl_decision *dec, const rl_decision *out)
{
    const rl_algo_state *b = &g->before[g->key[i]];
    rl_decision p, own;
    int64_t expire = now;

    REQUIRE(!out->allowed);
    if (b->max != 0) {
        REQUIRE(rl__algo_peek(alg, b, now, b->max, b->window, 0, &own) ==
                RL_OK);
        expire = own.expire_at_ms;
    }
    REQUIRE(out->expire_at_ms == expire);
    if (!dec->allowed) {
        REQUIRE(out->remaining == dec->remaining &&
                out->reset_ms == dec->reset_ms &&
                out->retry_after_ms == dec->retry_after_ms);
        return;
    }
    REQUIRE(rl__algo_peek(alg, b, now, g->max[i], g->win[i], 0, &p) == RL_OK);
    REQUIRE(out->remaining == p.remaining && out->reset_ms == p.reset_ms &&
            out->retry_after_ms == 0);
}

/*
 * Runs one random group through rl__algo_group and the same checks alone
 * on copies; returns whether it was admitted.
 */
static bool
group_round(rl_algorithm alg, rl_algo_state *keys, const int64_t *lmax,
            const int64_t *lwin, int64_t now)
{
    struct rgroup g;
    rl_decision out[GROUP_MAX], dec[GROUP_MAX];
    bool admitted = false, all = true;
    int i, k;

    g.n = (int)rnd_in(1, GROUP_MAX);
    for (i = 0; i < g.n; i++) {
        k = g.key[i] = (int)rnd_in(0, GROUP_KEYS - 1);
        g.st[i] = &keys[k];
        g.max[i] = lmax[k];
        g.win[i] = lwin[k];
        g.cost[i] = rnd_cost(lmax[k]);
    }
    for (k = 0; k < GROUP_KEYS; k++) {
        state_copy(&g.before[k], &keys[k]);
        state_copy(&g.alone[k], &keys[k]);
    }
    for (i = 0; i < g.n; i++) {
        dec[i] = decide(alg, &g.alone[g.key[i]], now, g.max[i], g.win[i],
                        g.cost[i]);
        all = all && dec[i].allowed;
    }
    REQUIRE(rl__algo_group(alg, g.st, (size_t)g.n, now, g.max, g.win, g.cost,
                           out, &admitted) == RL_OK);
    REQUIRE(admitted == all);
    for (i = 0; i < g.n; i++) {
        if (all)
            REQUIRE(same_decision(&out[i], &dec[i]));
        else
            check_denied(alg, &g, i, now, &dec[i], &out[i]);
    }
    for (k = 0; k < GROUP_KEYS; k++) {
        REQUIRE(state_equal(&keys[k], all ? &g.alone[k] : &g.before[k]));
        rl__algo_state_clear(&g.before[k]);
        rl__algo_state_clear(&g.alone[k]);
    }
    return all;
}

/*
 * Random groups of 1..8 checks on four keys (so often one key twice),
 * limits changing: an admitted group answers and charges exactly as its
 * checks alone would; a denied one leaves every state as it was, its
 * deniers answer as alone, the others as a check of cost 0 on the state
 * before.  A group of one answers as the check alone.
 */
START_TEST(test_prop_group)
{
    rl_algorithm alg = all_algs[_i];
    rl_algo_state keys[GROUP_KEYS];
    int64_t lmax[GROUP_KEYS], lwin[GROUP_KEYS], now;
    long admitted = 0, rounds = 20000, r;
    int k;

    rng = 0x5eed0500 + (uint64_t)_i;
    memset(keys, 0, sizeof(keys));
    now = rnd_in(0, INT64_C(1) << 40);
    for (k = 0; k < GROUP_KEYS; k++)
        rnd_limit(alg, &lmax[k], &lwin[k]);
    for (r = 0; r < rounds; r++) {
        k = (int)rnd_in(0, GROUP_KEYS - 1);
        if (rnd() % 10 == 0)
            rnd_limit(alg, &lmax[k], &lwin[k]);
        now += rnd_step(lwin[k] < 1000000 ? lwin[k] : 1000000);
        admitted += group_round(alg, keys, lmax, lwin, now);
        if (r % 100 == 99)
            for (k = 0; k < GROUP_KEYS; k++)
                rl__algo_state_clear(&keys[k]);
    }
    for (k = 0; k < GROUP_KEYS; k++)
        rl__algo_state_clear(&keys[k]);
    ck_assert_int_gt(admitted, rounds / 10);
    ck_assert_int_gt(rounds - admitted, rounds / 10);
}
END_TEST

/* ---- the runner ---- */

static Suite *
algo_suite(void)
{
    Suite *s = suite_create("algo");
    TCase *tc = tcase_create("tables");
    TCase *pr = tcase_create("properties");

    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_dispatch);
    tcase_add_test(tc, test_fw_table);
    tcase_add_test(tc, test_fw_limit_change);
    tcase_add_test(tc, test_fw_backward_clock);
    tcase_add_test(tc, test_sw_table);
    tcase_add_test(tc, test_sw_limit_change);
    tcase_add_test(tc, test_sw_backward_clock);
    tcase_add_test(tc, test_tb_table);
    tcase_add_test(tc, test_gcra_table);
    tcase_add_test(tc, test_tb_limit_change);
    tcase_add_test(tc, test_gcra_limit_change);
    tcase_add_test(tc, test_bucket_backward_clock);
    tcase_add_test(tc, test_sl_table);
    tcase_add_test(tc, test_sl_limit_change);
    tcase_add_test(tc, test_sl_backward_clock);
    tcase_add_test(tc, test_sl_full_ring);
    tcase_add_test(tc, test_sl_nomem);
    tcase_add_loop_test(tc, test_denied_keeps_count, 0, 5);
    tcase_add_loop_test(tc, test_state_copy, 0, 5);
    tcase_add_loop_test(tc, test_peek, 0, 5);
    tcase_add_loop_test(tc, test_cost_zero, 0, 5);
    tcase_add_loop_test(tc, test_group_denied, 0, 5);
    tcase_add_loop_test(tc, test_group_same_key, 0, 5);
    tcase_add_test(tc, test_group_invalid);
    tcase_add_test(tc, test_muldiv);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tcase_add_loop_test(pr, test_prop_brute_force, 0, 2);
    tcase_add_test(pr, test_prop_sl_long);
    tcase_add_loop_test(pr, test_prop_exact_times, 0, 5);
    tcase_add_loop_test(pr, test_prop_remaining, 0, 5);
    tcase_add_loop_test(pr, test_prop_denial_neutral, 0, 5);
    tcase_add_test(pr, test_prop_bucket_reference);
    tcase_add_loop_test(pr, test_prop_group, 0, 5);
    tcase_set_timeout(pr, 300);
    suite_add_tcase(s, pr);
    return s;
}

int
main(void)
{
    if (getenv(NOMEM_CHILD_ENV))
        return nomem_child();
    return th_run_suite(algo_suite(), CK_ENV);
}
