/*
 * test_cache.c: the decision cache (src/cache.c) on its own, at explicit
 * times: what a hit answers, expiry to the millisecond (never an answer at
 * or after blocked_until), the limit and cost an entry answers for, put
 * replacing, del, clear, exact LRU eviction (which key goes), the bound
 * under ten times more keys than room, binary keys (NUL bytes, keys that
 * differ only after a NUL, the inline/copied boundary), the sweep and its
 * budget, next_expiry, the table doubling, forced hash collisions (a test
 * hook), the keyed hash, and release of copied keys on every way out.  A
 * random sequence of operations is also played against a plain model of
 * the cache (an array of entries, linear search, a use stamp for LRU),
 * checking every answer, next_expiry and the counts after every step.
 * Last, the Redis keys the warm-up reads back (src/keys.c): every key the
 * encoder writes decodes to its user key, and no other is taken.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#include "check_main.h"
#include "cache.h"
#include "redis.h"
#include "rl_private.h"

#define NEVER INT64_MAX
/* The limit most tests use. */
#define MAX 10
#define WIN 1000

/* ---- helpers ---- */

static struct rl_cache *
new_cache(int64_t max_size)
{
    struct rl_cache *c = rl__cache_new(max_size);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(rl__cache_verify(c), 0);
    return c;
}

static void
expect_tally(const struct rl_cache *c, int64_t hits, int64_t misses,
             int64_t size, int64_t evictions, int64_t expired)
{
    struct rl_cache_tally t;

    rl__cache_stats(c, &t);
    FAST_EQ(t.hits, hits);
    FAST_EQ(t.misses, misses);
    FAST_EQ(t.size, size);
    FAST_EQ(t.evictions, evictions);
    FAST_EQ(t.expired, expired);
}

/* A denial of string key k under (MAX, WIN, cost 1), reset 100 ms after. */
static void
put_s(struct rl_cache *c, const char *k, int64_t until)
{
    FAST_EQ(rl__cache_put(c, k, strlen(k), MAX, WIN, 1, until, until + 100),
            RL_OK);
}

static bool
look_lim(struct rl_cache *c, const char *k, int64_t max, int64_t window,
         int64_t cost, int64_t now)
{
    struct rl_cache_entry_info out;

    return rl__cache_lookup(c, k, strlen(k), max, window, cost, now, &out);
}

static bool
look_s(struct rl_cache *c, const char *k, int64_t now)
{
    return look_lim(c, k, MAX, WIN, 1, now);
}

/* A lookup of (key, keylen) under (MAX, WIN, 1) at now that must hit with
   these answers. */
static void
expect_hit(struct rl_cache *c, const void *key, size_t keylen, int64_t now,
           int64_t retry, int64_t reset)
{
    struct rl_cache_entry_info out = { -1, -1 };

    FAST_TRUE(rl__cache_lookup(c, key, keylen, MAX, WIN, 1, now, &out));
    FAST_EQ(out.retry_after_ms, retry);
    FAST_EQ(out.reset_ms, reset);
}

static bool
has(const struct rl_cache *c, const char *k)
{
    return rl__cache_peek(c, k, strlen(k), NULL, NULL, NULL, NULL, NULL);
}

static void
leak_check(void)
{
#ifdef HAVE_LSAN
    ck_assert_int_eq(__lsan_do_recoverable_leak_check(), 0);
#endif
}

/* ---- creation, answers, expiry ---- */

START_TEST(test_new_bounds)
{
    struct rl_cache *c;

    ck_assert_ptr_null(rl__cache_new(0));
    ck_assert_ptr_null(rl__cache_new(-1));
    ck_assert_ptr_null(rl__cache_new(INT64_MIN));
    rl__cache_free(NULL);
    c = new_cache(1);
    ck_assert_int_eq(rl__cache_next_expiry(c), NEVER);
    expect_tally(c, 0, 0, 0, 0, 0);
    rl__cache_free(c);
    /* Capped at 2^31, and nothing sized by max_size up front. */
    c = new_cache(INT64_MAX);
    put_s(c, "k", 100);
    ck_assert(look_s(c, "k", 50));
    rl__cache_free(c);
    c = new_cache(10000000);
    put_s(c, "k", 100);
    ck_assert(look_s(c, "k", 50));
    ck_assert_int_eq(rl__cache_verify(c), 0);
    rl__cache_free(c);
}
END_TEST

START_TEST(test_empty)
{
    struct rl_cache *c = new_cache(10);
    struct rl_cache_entry_info out = { -7, -7 };

    ck_assert(!rl__cache_lookup(c, "a", 1, MAX, WIN, 1, 0, &out));
    ck_assert_int_eq(out.retry_after_ms, -7);
    ck_assert(!rl__cache_del(c, "a", 1));
    ck_assert_int_eq(rl__cache_sweep(c, NEVER, 100), 0);
    ck_assert_int_eq(rl__cache_next_expiry(c), NEVER);
    rl__cache_clear(c);
    expect_tally(c, 0, 1, 0, 0, 0);
    ck_assert_int_eq(rl__cache_verify(c), 0);
    rl__cache_free(c);
}
END_TEST

START_TEST(test_hit_answers)
{
    struct rl_cache *c = new_cache(10);
    struct rl_cache_entry_info out = { -7, -7 };

    ck_assert_int_eq(rl__cache_put(c, "k", 1, MAX, WIN, 1, 2000, 2500),
                     RL_OK);
    expect_hit(c, "k", 1, 1000, 1000, 1500);
    expect_hit(c, "k", 1, 1999, 1, 501);
    expect_hit(c, "k", 1, -5, 2005, 2505);
    /* reset_at == blocked_until, and (not expected) earlier. */
    ck_assert_int_eq(rl__cache_put(c, "r", 1, MAX, WIN, 1, 2000, 2000),
                     RL_OK);
    expect_hit(c, "r", 1, 1500, 500, 500);
    ck_assert_int_eq(rl__cache_put(c, "e", 1, MAX, WIN, 1, 2000, 1000),
                     RL_OK);
    expect_hit(c, "e", 1, 1500, 500, 500);
    /* A miss leaves *out alone. */
    ck_assert(!rl__cache_lookup(c, "x", 1, MAX, WIN, 1, 1500, &out));
    ck_assert_int_eq(out.retry_after_ms, -7);
    ck_assert_int_eq(out.reset_ms, -7);
    expect_tally(c, 5, 1, 3, 0, 0);
    /* Far times saturate rather than overflow. */
    ck_assert_int_eq(rl__cache_put(c, "f", 1, MAX, WIN, 1, INT64_MAX - 1,
                                   INT64_MAX), RL_OK);
    expect_hit(c, "f", 1, -1000, INT64_MAX, INT64_MAX);
    rl__cache_free(c);
}
END_TEST

START_TEST(test_boundary_exact)
{
    struct rl_cache *c = new_cache(10);

    put_s(c, "k", 1000);
    ck_assert_int_eq(rl__cache_next_expiry(c), 1000);
    expect_hit(c, "k", 1, 999, 1, 101);
    expect_tally(c, 1, 0, 1, 0, 0);
    /* At blocked_until: no answer, dropped, counted expired. */
    ck_assert(!look_s(c, "k", 1000));
    expect_tally(c, 1, 1, 0, 0, 1);
    ck_assert(!has(c, "k"));
    ck_assert_int_eq(rl__cache_next_expiry(c), NEVER);
    ck_assert(!look_s(c, "k", 1000));
    expect_tally(c, 1, 2, 0, 0, 1);
    /* After it, likewise. */
    put_s(c, "k", 1000);
    ck_assert(!look_s(c, "k", 5000));
    expect_tally(c, 1, 3, 0, 0, 2);
    /* An expired entry is dropped whatever the limit of the check. */
    put_s(c, "k", 1000);
    ck_assert(!look_lim(c, "k", MAX + 1, WIN, 1, 1000));
    expect_tally(c, 1, 4, 0, 0, 3);
    ck_assert_int_eq(rl__cache_verify(c), 0);
    rl__cache_free(c);
}
END_TEST

START_TEST(test_limit_mismatch)
{
    struct rl_cache *c = new_cache(10);

    put_s(c, "k", 5000);
    ck_assert(!look_lim(c, "k", MAX + 1, WIN, 1, 100));
    ck_assert(!look_lim(c, "k", MAX - 1, WIN, 1, 100));
    ck_assert(!look_lim(c, "k", MAX, WIN + 1, 1, 100));
    ck_assert(!look_lim(c, "k", MAX, WIN - 1, 1, 100));
    /* Bypassed, not dropped. */
    expect_tally(c, 0, 4, 1, 0, 0);
    ck_assert(look_lim(c, "k", MAX, WIN, 1, 100));
    expect_tally(c, 1, 4, 1, 0, 0);
    rl__cache_free(c);
}
END_TEST

START_TEST(test_cost)
{
    struct rl_cache *c = new_cache(10);

    ck_assert_int_eq(rl__cache_put(c, "k", 1, MAX, WIN, 3, 5000, 6000),
                     RL_OK);
    ck_assert(!look_lim(c, "k", MAX, WIN, 1, 100));
    ck_assert(!look_lim(c, "k", MAX, WIN, 2, 100));
    expect_tally(c, 0, 2, 1, 0, 0);
    ck_assert(look_lim(c, "k", MAX, WIN, 3, 100));
    ck_assert(look_lim(c, "k", MAX, WIN, 4, 100));
    ck_assert(look_lim(c, "k", MAX, WIN, 1000, 100));
    expect_tally(c, 3, 2, 1, 0, 0);
    rl__cache_free(c);
}
END_TEST

START_TEST(test_put_replaces)
{
    struct rl_cache *c = new_cache(2);
    struct rl_cache_entry_info out;
    int64_t until, reset, max, window, cost;

    put_s(c, "k", 2000);
    put_s(c, "a", 2500);
    ck_assert_int_eq(rl__cache_put(c, "k", 1, 20, 60000, 5, 3000, 70000),
                     RL_OK);
    expect_tally(c, 0, 0, 2, 0, 0);
    ck_assert(rl__cache_peek(c, "k", 1, &until, &reset, &max, &window,
                             &cost));
    ck_assert_int_eq(until, 3000);
    ck_assert_int_eq(reset, 70000);
    ck_assert_int_eq(max, 20);
    ck_assert_int_eq(window, 60000);
    ck_assert_int_eq(cost, 5);
    ck_assert(!look_s(c, "k", 1000));
    ck_assert(rl__cache_lookup(c, "k", 1, 20, 60000, 5, 1000, &out));
    ck_assert_int_eq(out.retry_after_ms, 2000);
    ck_assert_int_eq(out.reset_ms, 69000);
    ck_assert_int_eq(rl__cache_next_expiry(c), 2500);
    /* An earlier block moves the next expiry back. */
    put_s(c, "k", 1200);
    ck_assert_int_eq(rl__cache_next_expiry(c), 1200);
    put_s(c, "k", 4000);
    ck_assert_int_eq(rl__cache_next_expiry(c), 2500);
    expect_tally(c, 1, 1, 2, 0, 0);
    ck_assert_int_eq(rl__cache_verify(c), 0);
    rl__cache_free(c);
}
END_TEST

START_TEST(test_del)
{
    struct rl_cache *c = new_cache(10);

    put_s(c, "a", 100);
    put_s(c, "b", 200);
    ck_assert(rl__cache_del(c, "a", 1));
    ck_assert(!rl__cache_del(c, "a", 1));
    ck_assert(!rl__cache_del(c, "zz", 2));
    ck_assert_int_eq(rl__cache_next_expiry(c), 200);
    ck_assert(!look_s(c, "a", 50));
    ck_assert(look_s(c, "b", 50));
    expect_tally(c, 1, 1, 1, 0, 0);
    ck_assert(rl__cache_del(c, "b", 1));
    ck_assert_int_eq(rl__cache_next_expiry(c), NEVER);
    expect_tally(c, 1, 1, 0, 0, 0);
    ck_assert_int_eq(rl__cache_verify(c), 0);
    rl__cache_free(c);
}
END_TEST

/* Fills c with n keys "key-<i>" blocked until base + i. */
static void
fill(struct rl_cache *c, int n, int64_t base)
{
    char k[32];
    int i;

    for (i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "key-%d", i);
        put_s(c, k, base + i);
    }
}

START_TEST(test_clear)
{
    struct rl_cache *c = new_cache(100000);
    char k[32];
    int i;

    fill(c, 5000, 1000);
    ck_assert(look_s(c, "key-7", 0));
    ck_assert(!look_s(c, "nope", 0));
    rl__cache_clear(c);
    expect_tally(c, 1, 1, 0, 0, 0);
    ck_assert_int_eq(rl__cache_next_expiry(c), NEVER);
    ck_assert_int_eq(rl__cache_verify(c), 0);
    for (i = 0; i < 5000; i += 7) {
        snprintf(k, sizeof(k), "key-%d", i);
        FAST_TRUE(!look_s(c, k, 0));
    }
    fill(c, 3000, 2000);
    ck_assert_int_eq(rl__cache_next_expiry(c), 2000);
    ck_assert(look_s(c, "key-2999", 0));
    ck_assert_int_eq(rl__cache_verify(c), 0);
    rl__cache_clear(c);
    rl__cache_clear(c);
    expect_tally(c, 2, 1 + 715, 0, 0, 0);
    rl__cache_free(c);
}
END_TEST

/* ---- eviction ---- */

START_TEST(test_lru_order)
{
    struct rl_cache *c = new_cache(3);

    put_s(c, "a", 1000);
    put_s(c, "b", 1000);
    put_s(c, "c", 1000);
    ck_assert(look_s(c, "a", 0));           /* recency: a c b */
    put_s(c, "d", 1000);                    /* evicts b: d a c */
    ck_assert(!has(c, "b"));
    ck_assert(has(c, "a") && has(c, "c") && has(c, "d"));
    expect_tally(c, 1, 0, 3, 1, 0);
    /* A bypassed entry is not made recent. */
    ck_assert(!look_lim(c, "c", MAX + 1, WIN, 1, 0));
    put_s(c, "e", 1000);                    /* evicts c: e d a */
    ck_assert(!has(c, "c"));
    ck_assert(has(c, "a") && has(c, "d") && has(c, "e"));
    /* Neither is one a lighter check bypassed. */
    put_s(c, "a", 1000);                    /* replaced: a e d */
    ck_assert(!look_lim(c, "d", MAX, WIN, 0, 0));
    put_s(c, "f", 1000);                    /* evicts d: f a e */
    ck_assert(!has(c, "d"));
    ck_assert(has(c, "a") && has(c, "e") && has(c, "f"));
    expect_tally(c, 1, 2, 3, 3, 0);
    ck_assert_int_eq(rl__cache_verify(c), 0);
    rl__cache_free(c);
}
END_TEST

START_TEST(test_evict_expired_counts_eviction)
{
    struct rl_cache *c = new_cache(1);

    put_s(c, "a", 10);
    put_s(c, "b", 20);
    ck_assert(!has(c, "a"));
    ck_assert_int_eq(rl__cache_next_expiry(c), 20);
    expect_tally(c, 0, 0, 1, 1, 0);
    /* A put of the key held replaces it, evicting nothing. */
    put_s(c, "b", 30);
    expect_tally(c, 0, 0, 1, 1, 0);
    rl__cache_free(c);
}
END_TEST

START_TEST(test_bound_10x)
{
    struct rl_cache *c = new_cache(1000);
    struct rl_cache_tally t;
    char k[32];
    int i;

    for (i = 0; i < 10000; i++) {
        snprintf(k, sizeof(k), "key-%d", i);
        put_s(c, k, 1000000);
        rl__cache_stats(c, &t);
        FAST_EQ(t.size, i < 1000 ? i + 1 : 1000);
        FAST_EQ(t.evictions, i < 1000 ? 0 : i - 999);
    }
    ck_assert_int_eq(rl__cache_verify(c), 0);
    for (i = 0; i < 10000; i++) {
        snprintf(k, sizeof(k), "key-%d", i);
        FAST_EQ(look_s(c, k, 0), i >= 9000);
    }
    expect_tally(c, 1000, 9000, 1000, 9000, 0);
    rl__cache_free(c);
}
END_TEST

/* The table doubles (incrementally) from 1024 buckets to 2^18 under the
   puts, every key staying found all the while. */
START_TEST(test_grow)
{
    struct rl_cache *c = new_cache(200000);
    char k[32];
    int i;

    for (i = 0; i < 200000; i++) {
        snprintf(k, sizeof(k), "key-%d", i);
        put_s(c, k, 1000000 + i);
        if (i % 9973 == 0)
            ck_assert_int_eq(rl__cache_verify(c), 0);
        if (i % 7 == 0) {
            snprintf(k, sizeof(k), "key-%d", i / 2);
            FAST_TRUE(look_s(c, k, 0));
        }
    }
    ck_assert_int_eq(rl__cache_verify(c), 0);
    for (i = 0; i < 200000; i++) {
        snprintf(k, sizeof(k), "key-%d", i);
        FAST_TRUE(look_s(c, k, 0));
    }
    ck_assert_int_eq(rl__cache_next_expiry(c), 1000000);
    expect_tally(c, 200000 + 28572, 0, 200000, 0, 0);
    rl__cache_free(c);
}
END_TEST

/* ---- keys ---- */

START_TEST(test_binary_keys)
{
    static const struct {
        const char *b;
        size_t len;
    } k[] = {
        { "a\0b", 3 }, { "a\0c", 3 }, { "a", 1 }, { "a\0", 2 },
        { "\0", 1 }, { "\0\0", 2 }, { "\0a", 2 }, { "a\0\0", 3 },
    };
    struct rl_cache *c = new_cache(100);
    size_t i, n = sizeof(k) / sizeof(k[0]);

    for (i = 0; i < n; i++)
        ck_assert_int_eq(rl__cache_put(c, k[i].b, k[i].len, MAX, WIN, 1,
                                       100 + (int64_t)i, 100 + (int64_t)i),
                         RL_OK);
    expect_tally(c, 0, 0, (int64_t)n, 0, 0);
    for (i = 0; i < n; i++)
        expect_hit(c, k[i].b, k[i].len, 0, 100 + (int64_t)i,
                   100 + (int64_t)i);
    ck_assert(rl__cache_del(c, "a\0c", 3));
    ck_assert(!rl__cache_lookup(c, "a\0c", 3, MAX, WIN, 1, 0,
                                &(struct rl_cache_entry_info){ 0, 0 }));
    expect_hit(c, "a\0b", 3, 0, 100, 100);
    expect_hit(c, "a\0", 2, 0, 103, 103);
    ck_assert_int_eq(rl__cache_verify(c), 0);
    rl__cache_free(c);
}
END_TEST

/* Keys of each length around the inline limit and up to 1024, all NUL
   but their last byte, in pairs that differ only in that byte. */
START_TEST(test_long_keys)
{
    static const size_t lens[] = { 1, 8, 47, 48, 55, 56, 57, 64, 100, 1023,
                                   1024 };
    struct rl_cache *c = new_cache(100);
    unsigned char buf[1024], other[1024];
    size_t i, n = sizeof(lens) / sizeof(lens[0]);
    int64_t t;

    memset(buf, 0, sizeof(buf));
    for (i = 0; i < n; i++) {
        buf[lens[i] - 1] = 1;
        t = 1000 + 10 * (int64_t)i;
        ck_assert_int_eq(rl__cache_put(c, buf, lens[i], MAX, WIN, 1, t, t),
                         RL_OK);
        buf[lens[i] - 1] = 2;
        ck_assert_int_eq(rl__cache_put(c, buf, lens[i], MAX, WIN, 1, t + 1,
                                       t + 1), RL_OK);
        buf[lens[i] - 1] = 0;
    }
    expect_tally(c, 0, 0, 2 * (int64_t)n, 0, 0);
    for (i = 0; i < n; i++) {
        /* Copied: the caller's buffer changes, the entries do not. */
        memset(other, 0, sizeof(other));
        t = 1000 + 10 * (int64_t)i;
        other[lens[i] - 1] = 1;
        expect_hit(c, other, lens[i], 0, t, t);
        other[lens[i] - 1] = 2;
        expect_hit(c, other, lens[i], 0, t + 1, t + 1);
        other[lens[i] - 1] = 3;
        ck_assert(!rl__cache_peek(c, other, lens[i], NULL, NULL, NULL,
                                  NULL, NULL));
    }
    ck_assert_int_eq(rl__cache_verify(c), 0);
    rl__cache_free(c);
}
END_TEST

/* Every way an entry leaves frees its copied key (LeakSanitizer asked). */
START_TEST(test_long_keys_freed)
{
    struct rl_cache *c = new_cache(2);
    char k[300];
    int i;

    memset(k, 'x', sizeof(k));
    for (i = 0; i < 8; i++) {
        k[0] = (char)('a' + i);
        ck_assert_int_eq(rl__cache_put(c, k, sizeof(k), MAX, WIN, 1,
                                       100 + i, 200), RL_OK);
    }
    k[0] = 'h';                                     /* replaced */
    ck_assert_int_eq(rl__cache_put(c, k, sizeof(k), MAX, WIN, 1, 500, 500),
                     RL_OK);
    ck_assert(rl__cache_del(c, k, sizeof(k)));      /* deleted */
    k[0] = 'g';                                     /* expired, lookup */
    ck_assert(!rl__cache_lookup(c, k, sizeof(k), MAX, WIN, 1, 1000,
                                &(struct rl_cache_entry_info){ 0, 0 }));
    expect_tally(c, 0, 1, 0, 6, 1);
    fill(c, 2, 10);
    k[0] = 'z';
    ck_assert_int_eq(rl__cache_put(c, k, sizeof(k), MAX, WIN, 1, 5, 5),
                     RL_OK);
    ck_assert_int_eq(rl__cache_sweep(c, 5, 10), 1); /* swept */
    ck_assert_int_eq(rl__cache_put(c, k, sizeof(k), MAX, WIN, 1, 5, 5),
                     RL_OK);
    rl__cache_clear(c);                             /* cleared */
    leak_check();
    ck_assert_int_eq(rl__cache_put(c, k, sizeof(k), MAX, WIN, 1, 5, 5),
                     RL_OK);
    rl__cache_free(c);                              /* freed */
    leak_check();
}
END_TEST

/* All keys in one chain, then in four: told apart by length and bytes. */
START_TEST(test_collisions)
{
    struct rl_cache *c = new_cache(50);
    char k[32];
    int i;

    rl__cache_test_hash(c, 1, 2, 0);
    ck_assert_int_eq(rl__cache_hash(c, "x", 1), 0);
    fill(c, 60, 1000);
    expect_tally(c, 0, 0, 50, 10, 0);
    for (i = 0; i < 60; i++) {
        snprintf(k, sizeof(k), "key-%d", i);
        FAST_EQ(look_s(c, k, 0), i >= 10);
    }
    for (i = 20; i < 60; i += 3) {
        snprintf(k, sizeof(k), "key-%d", i);
        FAST_TRUE(rl__cache_del(c, k, strlen(k)));
    }
    ck_assert_int_eq(rl__cache_verify(c), 0);
    /* Keys 10..30 expired, 20, 23, 26 and 29 deleted. */
    ck_assert_int_eq(rl__cache_sweep(c, 1030, 100), 21 - 4);
    ck_assert_int_eq(rl__cache_verify(c), 0);
    rl__cache_free(c);

    c = new_cache(3000);
    rl__cache_test_hash(c, 3, 4, 3);
    fill(c, 2000, 0);
    ck_assert_int_eq(rl__cache_verify(c), 0);
    for (i = 0; i < 2000; i++) {
        snprintf(k, sizeof(k), "key-%d", i);
        FAST_TRUE(rl__cache_peek(c, k, strlen(k), NULL, NULL, NULL, NULL,
                                 NULL));
    }
    rl__cache_free(c);
}
END_TEST

START_TEST(test_hash_keyed)
{
    struct rl_cache *a = new_cache(10), *b = new_cache(10);
    static const char key[] = "user:42\0tail";

    /* Two caches draw two secrets (fails once in 2^64 runs). */
    ck_assert_uint_ne(rl__cache_hash(a, key, sizeof(key)),
                      rl__cache_hash(b, key, sizeof(key)));
    rl__cache_test_hash(a, 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL,
                        UINT64_MAX);
    ck_assert_uint_eq(rl__cache_hash(a, key, sizeof(key)),
                      rl__siphash13(0x0706050403020100ULL,
                                    0x0f0e0d0c0b0a0908ULL, key,
                                    sizeof(key)));
    rl__cache_free(a);
    rl__cache_free(b);
}
END_TEST

/* ---- the sweep, next_expiry ---- */

START_TEST(test_sweep_budget)
{
    static const int64_t until[10] = { 15, 11, 19, 10, 13, 17, 12, 18, 14,
                                       16 };
    struct rl_cache *c = new_cache(100);
    char k[32];
    int i;

    for (i = 0; i < 10; i++) {
        snprintf(k, sizeof(k), "k%d", (int)until[i]);
        put_s(c, k, until[i]);
    }
    ck_assert_int_eq(rl__cache_next_expiry(c), 10);
    ck_assert_int_eq(rl__cache_sweep(c, 9, 100), 0);
    ck_assert_int_eq(rl__cache_sweep(c, 14, 3), 3);
    ck_assert(!has(c, "k10") && !has(c, "k11") && !has(c, "k12"));
    ck_assert(has(c, "k13") && has(c, "k14"));
    expect_tally(c, 0, 0, 7, 0, 3);
    ck_assert_int_eq(rl__cache_next_expiry(c), 13);
    ck_assert_int_eq(rl__cache_sweep(c, 14, 0), 0);
    ck_assert_int_eq(rl__cache_sweep(c, 14, -1), 0);
    /* blocked_until == now is expired; now + 1 is not. */
    ck_assert_int_eq(rl__cache_sweep(c, 14, 100), 2);
    ck_assert(has(c, "k15"));
    ck_assert_int_eq(rl__cache_next_expiry(c), 15);
    ck_assert_int_eq(rl__cache_sweep(c, 1000, 2), 2);
    ck_assert_int_eq(rl__cache_next_expiry(c), 17);
    ck_assert_int_eq(rl__cache_sweep(c, 1000, INT64_MAX), 3);
    ck_assert_int_eq(rl__cache_next_expiry(c), NEVER);
    expect_tally(c, 0, 0, 0, 0, 10);
    ck_assert_int_eq(rl__cache_verify(c), 0);
    rl__cache_free(c);
}
END_TEST

START_TEST(test_next_expiry)
{
    struct rl_cache *c = new_cache(3);

    put_s(c, "a", 300);
    put_s(c, "b", 200);
    put_s(c, "c", 100);
    ck_assert_int_eq(rl__cache_next_expiry(c), 100);
    ck_assert(rl__cache_del(c, "c", 1));            /* deleted */
    ck_assert_int_eq(rl__cache_next_expiry(c), 200);
    ck_assert(!look_s(c, "b", 250));                /* expired, lookup */
    ck_assert_int_eq(rl__cache_next_expiry(c), 300);
    put_s(c, "b", 50);
    put_s(c, "c", 400);
    ck_assert_int_eq(rl__cache_next_expiry(c), 50);
    ck_assert(look_s(c, "a", 0));
    put_s(c, "d", 500);                             /* evicts b */
    ck_assert(!has(c, "b"));
    ck_assert_int_eq(rl__cache_next_expiry(c), 300);
    put_s(c, "a", 600);                             /* replaced, later */
    ck_assert_int_eq(rl__cache_next_expiry(c), 400);
    ck_assert_int_eq(rl__cache_verify(c), 0);
    rl__cache_free(c);
}
END_TEST

/* One hot key looked up a million times (the benchmark's case; the loop
   to measure under callgrind). */
START_TEST(test_hot_key)
{
    static const char key[] = "rl:{user:1234567}:fixed_window";
    struct rl_cache *c = new_cache(10000);
    struct rl_cache_entry_info out;
    int64_t now;
    int n = 0;

    fill(c, 5000, 1000000);
    ck_assert_int_eq(rl__cache_put(c, key, sizeof(key) - 1, 100, 60000, 1,
                                   2000000, 2000000), RL_OK);
    for (now = 0; now < 1000000; now++)
        n += rl__cache_lookup(c, key, sizeof(key) - 1, 100, 60000, 1, now,
                              &out);
    ck_assert_int_eq(n, 1000000);
    ck_assert_int_eq(out.retry_after_ms, 1000001);
    expect_tally(c, 1000000, 0, 5001, 0, 0);
    rl__cache_free(c);
}
END_TEST

/* ---- against a model ---- */

#define M_POOL 4096
#define M_KEYLEN 1024

static uint64_t
rnd(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * UINT64_C(2685821657736338717);
}

struct m_key {
    size_t len;
    unsigned char b[M_KEYLEN];
};

struct m_ent {
    int key;                 /* index in the pool */
    int64_t until, reset, max, window, cost;
    uint64_t used;           /* larger: used more recently */
};

struct model {
    struct m_key pool[M_POOL];
    int n_pool;
    struct m_ent e[M_POOL];
    int n;
    int max_size;
    uint64_t clock;
    int64_t hits, misses, evictions, expired;
};

/* Key i: short mostly, some around the inline limit, some long; bytes
   often NUL; every other key is the one before with its last byte
   changed.  All distinct. */
static void
m_make_key(struct model *m, int i, uint64_t *x)
{
    static const size_t lens[] = { 1, 2, 3, 5, 8, 13, 16, 30, 55, 56, 57,
                                   200, 1024 };
    struct m_key *k = &m->pool[i];
    size_t j;

    if (i % 2 == 1) {
        *k = m->pool[i - 1];
        k->b[k->len - 1] ^= (unsigned char)(1 + rnd(x) % 255);
        return;
    }
    k->len = lens[rnd(x) % (sizeof(lens) / sizeof(lens[0]))];
    for (j = 0; j < k->len; j++)
        k->b[j] = rnd(x) % 3 == 0 ? 0 : (unsigned char)rnd(x);
}

static bool
m_same(const struct m_key *a, const struct m_key *b)
{
    return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

static void
m_init(struct model *m, int max_size, int n_pool, uint64_t *x)
{
    int i, j;

    memset(m, 0, sizeof(*m));
    m->max_size = max_size;
    m->n_pool = n_pool;
    for (i = 0; i < n_pool; i++) {
        do {
            m_make_key(m, i, x);
            for (j = 0; j < i && !m_same(&m->pool[j], &m->pool[i]); j++)
                ;
        } while (j < i);
    }
}

/* The model's entry of key k, or -1. */
static int
m_find(const struct model *m, int k)
{
    int i;

    for (i = 0; i < m->n; i++)
        if (m->e[i].key == k)
            return i;
    return -1;
}

static void
m_remove(struct model *m, int i)
{
    m->e[i] = m->e[--m->n];
}

static void
m_check(const struct model *m, const struct rl_cache *c)
{
    int64_t min = NEVER;
    int i;

    for (i = 0; i < m->n; i++)
        if (m->e[i].until < min)
            min = m->e[i].until;
    /* Never later than the earliest; this cache is exact. */
    FAST_TRUE(rl__cache_next_expiry(c) <= min);
    FAST_EQ(rl__cache_next_expiry(c), min);
    expect_tally(c, m->hits, m->misses, m->n, m->evictions, m->expired);
}

/* A random limit and cost from a few, so that they match now and then. */
static void
m_limit(uint64_t *x, int64_t *max, int64_t *window, int64_t *cost)
{
    *max = 10 + 10 * (int64_t)(rnd(x) % 2);
    *window = 1000 + 1000 * (int64_t)(rnd(x) % 2);
    *cost = 1 + (int64_t)(rnd(x) % 3);
}

static void
m_lookup(struct model *m, struct rl_cache *c, int k, int64_t now,
         uint64_t *x)
{
    struct rl_cache_entry_info out;
    int64_t max, window, cost;
    int i = m_find(m, k);
    struct m_ent *e = i >= 0 ? &m->e[i] : NULL;
    bool hit;

    m_limit(x, &max, &window, &cost);
    hit = rl__cache_lookup(c, m->pool[k].b, m->pool[k].len, max, window,
                           cost, now, &out);
    if (e != NULL && now >= e->until) {
        m_remove(m, i);
        m->expired++;
        e = NULL;
    }
    if (e == NULL || e->max != max || e->window != window ||
        cost < e->cost) {
        FAST_TRUE(!hit);
        m->misses++;
        return;
    }
    FAST_TRUE(hit);
    FAST_EQ(out.retry_after_ms, e->until - now);
    FAST_EQ(out.reset_ms, e->reset > e->until ? e->reset - now
                                              : e->until - now);
    e->used = ++m->clock;
    m->hits++;
}

static void
m_evict(struct model *m)
{
    int i, lru = 0;

    for (i = 1; i < m->n; i++)
        if (m->e[i].used < m->e[lru].used)
            lru = i;
    m_remove(m, lru);
    m->evictions++;
}

static void
m_put(struct model *m, struct rl_cache *c, int k, int64_t now,
      int64_t ttl, uint64_t *x)
{
    struct m_ent n = { .key = k };
    int i = m_find(m, k);

    m_limit(x, &n.max, &n.window, &n.cost);
    n.until = now + 1 + (int64_t)(rnd(x) % (uint64_t)ttl);
    n.reset = n.until + (int64_t)(rnd(x) % 100);
    FAST_EQ(rl__cache_put(c, m->pool[k].b, m->pool[k].len, n.max, n.window,
                          n.cost, n.until, n.reset), RL_OK);
    n.used = ++m->clock;
    if (i >= 0) {
        m->e[i] = n;
        return;
    }
    if (m->n == m->max_size)
        m_evict(m);
    m->e[m->n++] = n;
}

static void
m_del(struct model *m, struct rl_cache *c, int k)
{
    int i = m_find(m, k);

    FAST_EQ(rl__cache_del(c, m->pool[k].b, m->pool[k].len), i >= 0);
    if (i >= 0)
        m_remove(m, i);
}

/*
 * The sweep drops min(budget, expired) entries, the earliest first; among
 * equal expiries the model cannot tell which, so it asks the cache
 * (peek) which went, and checks that none kept expired earlier.
 */
static void
m_sweep(struct model *m, struct rl_cache *c, int64_t now, int64_t budget)
{
    int64_t n_exp = 0, dropped, gone = 0, gone_max = INT64_MIN;
    int64_t kept_min = NEVER;
    int i;

    for (i = 0; i < m->n; i++)
        n_exp += m->e[i].until <= now;
    dropped = rl__cache_sweep(c, now, budget);
    FAST_EQ(dropped, budget < n_exp ? (budget > 0 ? budget : 0) : n_exp);
    for (i = m->n - 1; i >= 0; i--) {
        const struct m_key *k = &m->pool[m->e[i].key];

        if (rl__cache_peek(c, k->b, k->len, NULL, NULL, NULL, NULL, NULL)) {
            if (m->e[i].until <= now && m->e[i].until < kept_min)
                kept_min = m->e[i].until;
            continue;
        }
        FAST_TRUE(m->e[i].until <= now);
        if (m->e[i].until > gone_max)
            gone_max = m->e[i].until;
        m_remove(m, i);
        gone++;
    }
    FAST_EQ(gone, dropped);
    FAST_TRUE(gone_max <= kept_min);
    m->expired += dropped;
}

struct m_config {
    int max_size;
    int n_pool;
    int64_t ttl;             /* blocks last 1..ttl ms */
    uint64_t mask;           /* hash bits kept */
    int clears;              /* per 10,000 steps */
    int steps;
    uint64_t seed;
};

static const struct m_config m_configs[] = {
    { 64, 200, 400, UINT64_MAX, 2, 100000, 0x2545f4914f6cdd1dULL },
    { 64, 200, 400, 7, 2, 100000, 0x9e3779b97f4a7c15ULL },
    { 1, 5, 10, UINT64_MAX, 2, 20000, 0xd1b54a32d192ed03ULL },
    /* Grows its table from 1024 buckets to 2048. */
    { 2000, 4000, 20000, UINT64_MAX, 0, 100000, 0x8cb92ba72f3d8dd7ULL },
};

/* One random step: mostly lookups and puts, some deletions, sweeps, the
   passing of time, rarely a clear. */
static void
m_step(struct model *m, struct rl_cache *c, const struct m_config *cf,
       int64_t *now, uint64_t *x)
{
    int op = (int)(rnd(x) % 10000);
    int k = (int)(rnd(x) % (uint64_t)m->n_pool);

    if (op < 4500) {
        m_lookup(m, c, k, *now, x);
    } else if (op < 7500) {
        m_put(m, c, k, *now, cf->ttl, x);
    } else if (op < 8300) {
        m_del(m, c, k);
    } else if (op < 8800) {
        m_sweep(m, c, *now, (int64_t)(rnd(x) % 6) - 1);
    } else if (op < 10000 - cf->clears) {
        *now += (int64_t)(rnd(x) % 6);
    } else {
        rl__cache_clear(c);
        m->n = 0;
    }
}

START_TEST(test_against_model)
{
    static struct model m;
    const struct m_config *cf = &m_configs[_i];
    struct rl_cache *c = new_cache(cf->max_size);
    uint64_t x = cf->seed;
    int64_t now = 1000;
    int step;

    m_init(&m, cf->max_size, cf->n_pool, &x);
    if (cf->mask != UINT64_MAX)
        rl__cache_test_hash(c, rnd(&x), rnd(&x), cf->mask);
    for (step = 0; step < cf->steps; step++) {
        m_step(&m, c, cf, &now, &x);
        m_check(&m, c);
        if (step % 997 == 0)
            FAST_EQ(rl__cache_verify(c), 0);
    }
    ck_assert_int_eq(rl__cache_verify(c), 0);
    ck_assert_int_gt(m.hits, 100);
    ck_assert_int_gt(m.misses, 1000);
    ck_assert_int_gt(m.expired, 100);
    if (cf->max_size > 1)
        ck_assert_int_gt(m.evictions, 100);
    rl__cache_free(c);
}
END_TEST

/* ---- the Redis keys the warm-up decodes (src/keys.c) ---- */

#define KP "rl"

/* rl__redis_key_decode of the NUL-terminated Redis key rkey, for KP and
   the sliding window; buf holds the user key. */
static size_t
decode(const char *rkey, char *buf)
{
    return rl__redis_key_decode(KP, RL_SLIDING_WINDOW, rkey, strlen(rkey),
                                buf);
}

/*
 * Every key the encoder writes decodes back to its user key, for every
 * algorithm: hash tags of every shape, bytes that are escaped, NUL bytes,
 * the longest key.  The empty key (which no check can have) comes out as
 * 0, which is also the answer for "not a key of ours".
 */
START_TEST(test_key_round_trip)
{
    static const struct { const char *k; size_t len; } keys[] = {
        {"a", 1}, {"user:42", 7}, {"{user:42}:minute", 16}, {"{}", 2},
        {"}{", 2}, {"{a}{b}", 6}, {"{a", 2}, {"a}", 2}, {"a b", 3},
        {"%", 1}, {"%41", 3}, {"a:fw:b", 6}, {"\x00\x01\xff\x7f", 4},
        {"{\x00}x", 4}, {"{ }", 3}, {"*?[\\]", 5},
    };
    static char rkey[RL_REDIS_KEY_MAX], buf[RL_KEY_MAX], longest[RL_KEY_MAX];
    size_t i, n;
    int alg;

    memset(longest, 0xff, sizeof(longest));
    longest[0] = '{';
    longest[RL_KEY_MAX - 1] = '}';
    for (alg = RL_SLIDING_WINDOW; alg <= RL_GCRA; alg++) {
        for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            n = rl__redis_key(KP, (rl_algorithm)alg, keys[i].k, keys[i].len,
                              rkey);
            memset(buf, 0x5a, sizeof(buf));
            ck_assert_uint_eq(rl__redis_key_decode(KP, (rl_algorithm)alg,
                                                   rkey, n, buf),
                              keys[i].len);
            ck_assert(memcmp(buf, keys[i].k, keys[i].len) == 0);
        }
        n = rl__redis_key(KP, (rl_algorithm)alg, longest, RL_KEY_MAX, rkey);
        ck_assert_uint_eq(rl__redis_key_decode(KP, (rl_algorithm)alg, rkey,
                                               n, buf), RL_KEY_MAX);
        ck_assert(memcmp(buf, longest, RL_KEY_MAX) == 0);
    }
    n = rl__redis_key(KP, RL_SLIDING_WINDOW, "", 0, rkey);
    ck_assert_uint_eq(rl__redis_key_decode(KP, RL_SLIDING_WINDOW, rkey, n,
                                           buf), 0);
}
END_TEST

/*
 * Redis keys the encoder never writes are refused, even when they could
 * be read as some user key: that user key's state lives under another
 * Redis key, so the warm-up would peek at a key it did not find (or at
 * one key twice).
 */
START_TEST(test_key_decode_refuses_non_canonical)
{
    static const char *const bad[] = {
        KP ":sw:{%41}",         /* a plain byte escaped */
        KP ":sw:{a%2fb}",       /* lowercase hex */
        KP ":sw:{a b}",         /* a space not escaped */
        KP ":sw:{\x7f}",        /* nor DEL */
        KP ":sw:{\xc3\xa9}",    /* nor bytes past ASCII */
        KP ":sw:{a%}",          /* an escape cut short */
        KP ":sw:{a%4}",
        KP ":sw:{a%4G}",
        KP ":sw:{x}abc",        /* a tag that is not the key's own */
        KP ":sw:{abc}abc",      /* a key without a tag, written with one */
        KP ":sw:{%7Bt%7Dk}",    /* a key with a tag, written without */
        KP ":sw:{}",            /* the empty key */
        KP ":sw:{}x",
        KP ":sw:{a",            /* no closing brace */
        KP ":sw:a",             /* no opening brace */
        KP ":fw:{a}",           /* another algorithm */
        "other:sw:{a}",         /* another prefix */
        KP ":sw:",
        "",
    };
    char buf[RL_KEY_MAX];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(decode(bad[i], buf) == 0, "accepted \"%s\"", bad[i]);
    /* The canonical twins of some of the above are taken. */
    ck_assert_uint_eq(decode(KP ":sw:{A}", buf), 1);
    ck_assert_uint_eq(decode(KP ":sw:{a%20b}", buf), 3);
    ck_assert_uint_eq(decode(KP ":sw:{t}%7Bt%7Dk", buf), 4);
    ck_assert(memcmp(buf, "{t}k", 4) == 0);
}
END_TEST

/* ---- the runner ---- */

static Suite *
cache_suite(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("core");
    TCase *rm = tcase_create("model");

    tcase_add_test(tc, test_new_bounds);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_hit_answers);
    tcase_add_test(tc, test_boundary_exact);
    tcase_add_test(tc, test_limit_mismatch);
    tcase_add_test(tc, test_cost);
    tcase_add_test(tc, test_put_replaces);
    tcase_add_test(tc, test_del);
    tcase_add_test(tc, test_clear);
    tcase_add_test(tc, test_lru_order);
    tcase_add_test(tc, test_evict_expired_counts_eviction);
    tcase_add_test(tc, test_bound_10x);
    tcase_add_test(tc, test_grow);
    tcase_add_test(tc, test_binary_keys);
    tcase_add_test(tc, test_long_keys);
    tcase_add_test(tc, test_long_keys_freed);
    tcase_add_test(tc, test_collisions);
    tcase_add_test(tc, test_hash_keyed);
    tcase_add_test(tc, test_sweep_budget);
    tcase_add_test(tc, test_next_expiry);
    tcase_add_test(tc, test_hot_key);
    tcase_add_test(tc, test_key_round_trip);
    tcase_add_test(tc, test_key_decode_refuses_non_canonical);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tcase_add_loop_test(rm, test_against_model, 0,
                        (int)(sizeof(m_configs) / sizeof(m_configs[0])));
    tcase_set_timeout(rm, 120);
    suite_add_tcase(s, rm);
    return s;
}

int
main(void)
{
    return th_run_suite(cache_suite(), CK_ENV);
}
