/*
 * test_store.c: the local store (src/store.c) on its own, at explicit
 * times: identity of keys, expiry to the millisecond, CLOCK eviction (which
 * key goes, exactly), delete, the incremental sweep and its budget, the
 * statistics, release of the sliding log and of long keys on every way
 * out, the slot array presized then doubling incrementally, the prefetch
 * calls, 100,000 keys, and the keyed hash (against OpenSSL's SipHash-1-3
 * and for its spread).  Hashes forced to collide (a test hook) show that
 * keys are told apart by algorithm, length and bytes, not by hash.  A
 * random sequence of operations is also played against a plain model of
 * the store: a list of keys, a clock hand over their positions.
 *
 * Under AddressSanitizer the sliding-log tests ask LeakSanitizer directly,
 * so that a state dropped without rl__algo_state_clear fails the test.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

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
#include "rl_private.h"

#define NEVER INT64_MAX
#define N_ALG (RL_GCRA + 1)

/* ---- helpers ---- */

static struct rl_store *
new_store(int64_t max_keys)
{
    struct rl_store *s = rl__store_new(max_keys);

    ck_assert_ptr_nonnull(s);
    return s;
}

static rl_algo_state *
get_s(struct rl_store *s, rl_algorithm alg, const char *key, int64_t now)
{
    rl_algo_state *st = rl__store_get(s, alg, key, strlen(key), now);

    if (st == NULL)
        ck_abort_msg("rl__store_get returned NULL");
    return st;
}

static bool
del_s(struct rl_store *s, rl_algorithm alg, const char *key)
{
    return rl__store_del(s, alg, key, strlen(key));
}

static bool
is_fresh(const rl_algo_state *st)
{
    static const rl_algo_state zero;

    return memcmp(st, &zero, sizeof(zero)) == 0;
}

static void
assert_stats(const struct rl_store *s, int64_t keys, int64_t evictions,
             int64_t expired)
{
    struct rl_store_stats st;

    rl__store_stats(s, &st);
    FAST_EQ(st.keys, keys);
    FAST_EQ(st.evictions, evictions);
    FAST_EQ(st.expired, expired);
    FAST_TRUE(rl__store_verify(s) >= 0);
}

static void
key_n(char *buf, size_t size, int i)
{
    snprintf(buf, size, "user:%d", i);
}

/* A deterministic generator, so that a failing sequence repeats. */
static uint64_t
rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void
assert_no_leak(void)
{
#ifdef HAVE_LSAN
    ck_assert_int_eq(__lsan_do_recoverable_leak_check(), 0);
#endif
}

/* ---- identity ---- */

START_TEST(test_get_fresh_then_same)
{
    struct rl_store *s = new_store(10);
    rl_algo_state *st, *again;

    st = get_s(s, RL_SLIDING_WINDOW, "a", 0);
    ck_assert(is_fresh(st));
    st->v[0] = 42;
    st->max = 7;
    again = get_s(s, RL_SLIDING_WINDOW, "a", 5000);
    ck_assert_ptr_eq(again, st);
    ck_assert_int_eq(again->v[0], 42);
    ck_assert_int_eq(again->max, 7);
    assert_stats(s, 1, 0, 0);
    rl__store_free(s);
}
END_TEST

START_TEST(test_new_bounds)
{
    struct rl_store *s;

    ck_assert_ptr_null(rl__store_new(0));
    ck_assert_ptr_null(rl__store_new(-1));
    s = new_store(INT64_MAX);
    get_s(s, RL_GCRA, "a", 0)->v[0] = 1;
    get_s(s, RL_GCRA, "b", 0)->v[0] = 2;
    ck_assert_int_eq(get_s(s, RL_GCRA, "a", 0)->v[0], 1);
    assert_stats(s, 2, 0, 0);
    rl__store_free(s);
    rl__store_free(NULL);
}
END_TEST

struct tkey {
    const char *p;
    size_t len;
};

#define TK(lit) { lit, sizeof(lit) - 1 }

START_TEST(test_keys_independent)
{
    static char big[4][RL_KEY_MAX];
    const struct tkey small[] = {
        TK("a"), TK("b"), TK("ab"), TK("abc"), TK("A"),
        TK("a\0b"), TK("a\0c"), TK("a\0"), TK("\0"), TK("\0\0"),
        TK("{tag}x"), TK("{tag}y"), TK("{tag} x"), TK("{tag}"), TK("{}"),
        TK("a b"), TK("a  b"), TK(" a"), TK("a\nb"), TK("a\r\nb"),
        TK("\n"), TK("\xc3\xa9"), TK("e\xcc\x81"), TK("\xe6\x97\xa5"),
        TK("\xf0\x9f\x98\x80"), TK("\xff"), TK("\xfe"), TK("user:1"),
        TK("user:10"), TK("12345678"), TK("123456789"), TK("1234567"),
    };
    struct tkey keys[64];
    size_t nk = 0, i;
    struct rl_store *s = new_store(1000);
    rl_algo_state *st;
    int alg;

    for (i = 0; i < sizeof(small) / sizeof(small[0]); i++)
        keys[nk++] = small[i];
    /* 1024-byte keys differing in the last byte, the first byte, and a
       1023-byte prefix. */
    memset(big, 'k', sizeof(big));
    big[1][RL_KEY_MAX - 1] = 'l';
    big[2][0] = 'j';
    keys[nk++] = (struct tkey){ big[0], RL_KEY_MAX };
    keys[nk++] = (struct tkey){ big[1], RL_KEY_MAX };
    keys[nk++] = (struct tkey){ big[2], RL_KEY_MAX };
    keys[nk++] = (struct tkey){ big[3], RL_KEY_MAX - 1 };

    for (alg = 0; alg < N_ALG; alg++) {
        for (i = 0; i < nk; i++) {
            st = rl__store_get(s, (rl_algorithm)alg, keys[i].p, keys[i].len,
                               0);
            ck_assert_ptr_nonnull(st);
            ck_assert_msg(is_fresh(st), "alg %d key %zu not fresh", alg, i);
            st->v[0] = alg * 1000 + (int64_t)i + 1;
        }
    }
    assert_stats(s, (int64_t)(N_ALG * nk), 0, 0);
    for (alg = 0; alg < N_ALG; alg++) {
        for (i = 0; i < nk; i++) {
            st = rl__store_get(s, (rl_algorithm)alg, keys[i].p, keys[i].len,
                               0);
            ck_assert_int_eq(st->v[0], alg * 1000 + (int64_t)i + 1);
        }
    }
    assert_stats(s, (int64_t)(N_ALG * nk), 0, 0);
    rl__store_free(s);
}
END_TEST

/*
 * With one hash key for every algorithm, (alg, key) and (alg', key) have
 * the same hash: told apart by the algorithm stored in the entry.
 */
START_TEST(test_same_hash_other_alg)
{
    struct rl_store *s = new_store(100);
    int alg;

    rl__store_test_hash(s, 1, 2, UINT64_MAX);
    ck_assert(rl__store_hash(s, RL_GCRA, "k", 1) ==
              rl__store_hash(s, RL_FIXED_WINDOW, "k", 1));
    for (alg = 0; alg < N_ALG; alg++)
        get_s(s, (rl_algorithm)alg, "k", 0)->v[0] = alg + 1;
    for (alg = 0; alg < N_ALG; alg++)
        ck_assert_int_eq(get_s(s, (rl_algorithm)alg, "k", 0)->v[0], alg + 1);
    assert_stats(s, N_ALG, 0, 0);
    ck_assert(del_s(s, RL_GCRA, "k"));
    ck_assert(!del_s(s, RL_GCRA, "k"));
    ck_assert_int_eq(get_s(s, RL_TOKEN_BUCKET, "k", 0)->v[0],
                     RL_TOKEN_BUCKET + 1);
    assert_stats(s, N_ALG - 1, 0, 0);
    rl__store_free(s);
}
END_TEST

/*
 * Keys of every length from 0 to RL_KEY_MAX, each with siblings that
 * differ in one byte (first, middle, last) or are one byte shorter, under
 * hashes cut to `mask`: with mask 0 every key has the same hash, so only
 * the comparison of lengths and bytes tells them apart.
 */
/* Sibling v of the key of len bytes: 0 all 'x', 1 first byte changed,
   2 middle byte changed, 3 last byte NUL. */
static void
sibling(char *buf, size_t len, size_t v)
{
    memset(buf, 'x', len);
    if (len == 0)
        return;
    if (v == 1)
        buf[0] = 'y';
    if (v == 2)
        buf[len / 2] ^= 0x40;
    if (v == 3)
        buf[len - 1] = '\0';
}

static void
collide(uint64_t mask)
{
    static const size_t lens[] = { 0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16,
                                   17, 24, 31, 33, 64, 255, RL_KEY_MAX };
    static char keys[sizeof(lens) / sizeof(lens[0])][4][RL_KEY_MAX];
    struct rl_store *s = new_store(1000);
    rl_algo_state *st;
    size_t nl = sizeof(lens) / sizeof(lens[0]), i, v, len, n = 0;
    int pass;

    rl__store_test_hash(s, 3, 4, mask);
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < nl; i++) {
            for (v = 0; v < 4; v++) {
                len = lens[i];
                if (len == 0 && v > 0)
                    continue;
                sibling(keys[i][v], len, v);
                st = rl__store_get(s, RL_GCRA, keys[i][v], len, 0);
                ck_assert_ptr_nonnull(st);
                if (pass == 0) {
                    ck_assert_msg(is_fresh(st), "len %zu v %zu", len, v);
                    st->v[0] = (int64_t)(i * 4 + v + 1);
                    n++;
                } else {
                    ck_assert_int_eq(st->v[0], (int64_t)(i * 4 + v + 1));
                }
            }
        }
        assert_stats(s, (int64_t)n, 0, 0);
    }
    /* Removal from the middle of one long probe run keeps the rest. */
    for (i = 1; i < nl; i += 2)
        ck_assert(rl__store_del(s, RL_GCRA, keys[i][1], lens[i]));
    assert_stats(s, (int64_t)(n - nl / 2), 0, 0);
    ck_assert_int_eq(rl__store_get(s, RL_GCRA, "", 0, 0)->v[0], 1);
    for (i = 1; i < nl; i++) {
        st = rl__store_get(s, RL_GCRA, keys[i][1], lens[i], 0);
        ck_assert_int_eq(st->v[0], i % 2 ? 0 : (int64_t)(i * 4 + 2));
        st = rl__store_get(s, RL_GCRA, keys[i][3], lens[i], 0);
        ck_assert_int_eq(st->v[0], (int64_t)(i * 4 + 4));
    }
    ck_assert_int_ge(rl__store_verify(s), 0);
    rl__store_free(s);
}

START_TEST(test_all_hashes_equal)
{
    collide(0);
}
END_TEST

START_TEST(test_few_hashes)
{
    collide(0x3);
    collide(0x80000001);
}
END_TEST

/* ---- expiry ---- */

START_TEST(test_expiry_exact)
{
    struct rl_store *s = new_store(10);
    rl_algo_state *st;

    st = get_s(s, RL_FIXED_WINDOW, "k", 0);
    st->v[0] = 5;
    rl__store_set_expiry(s, st, 1000);
    st = get_s(s, RL_FIXED_WINDOW, "k", 999);
    ck_assert_int_eq(st->v[0], 5);
    assert_stats(s, 1, 0, 0);
    st = get_s(s, RL_FIXED_WINDOW, "k", 1000);
    ck_assert(is_fresh(st));
    assert_stats(s, 1, 0, 1);
    /* Handed back fresh, the key does not expire again until told. */
    st->v[0] = 6;
    st = get_s(s, RL_FIXED_WINDOW, "k", INT64_C(1) << 50);
    ck_assert_int_eq(st->v[0], 6);
    assert_stats(s, 1, 0, 1);
    /* A later expiry replaces an earlier one. */
    rl__store_set_expiry(s, st, 2000);
    st = get_s(s, RL_FIXED_WINDOW, "k", 1500);
    rl__store_set_expiry(s, st, 3000);
    st = get_s(s, RL_FIXED_WINDOW, "k", 2999);
    ck_assert_int_eq(st->v[0], 6);
    st = get_s(s, RL_FIXED_WINDOW, "k", 3000);
    ck_assert(is_fresh(st));
    assert_stats(s, 1, 0, 2);
    rl__store_free(s);
}
END_TEST

/* ---- CLOCK eviction ---- */

/* Whether key is held, without touching it (del of an absent key is a
   no-op; a held key is put back with its marker, as a fresh key). */
static bool
absent(struct rl_store *s, rl_algorithm alg, const char *key)
{
    return !del_s(s, alg, key);
}

/*
 * With no gets but the ones that add keys, keys leave in the order they
 * were added: the hand sweeps the records in order and no bit is set.
 */
START_TEST(test_clock_insertion_order)
{
    struct rl_store *s = new_store(100);
    rl_algo_state *st;
    char k[32];
    int i;

    for (i = 0; i < 110; i++) {
        key_n(k, sizeof(k), i);
        st = get_s(s, RL_TOKEN_BUCKET, k, i);
        ck_assert(is_fresh(st));
        st->v[0] = i + 1;
        assert_stats(s, i < 100 ? i + 1 : 100, i < 100 ? 0 : i - 99, 0);
    }
    for (i = 0; i < 10; i++) {
        key_n(k, sizeof(k), i);
        ck_assert_msg(absent(s, RL_TOKEN_BUCKET, k), "%s not evicted", k);
    }
    /* The 100 newest are all there; getting them sets every bit. */
    for (i = 10; i < 110; i++) {
        key_n(k, sizeof(k), i);
        ck_assert_int_eq(get_s(s, RL_TOKEN_BUCKET, k, 200)->v[0], i + 1);
    }
    assert_stats(s, 100, 10, 0);
    /* Every key was got since the hand last passed: it clears all 100
       bits in one turn and evicts where it stands, user:10 (records 1-10
       were reused by user:100-109), then user:11 next to it. */
    get_s(s, RL_TOKEN_BUCKET, "new", 300);
    assert_stats(s, 100, 11, 0);
    ck_assert(absent(s, RL_TOKEN_BUCKET, "user:10"));
    get_s(s, RL_TOKEN_BUCKET, "new2", 300);
    assert_stats(s, 100, 12, 0);
    ck_assert(absent(s, RL_TOKEN_BUCKET, "user:11"));
    ck_assert(del_s(s, RL_TOKEN_BUCKET, "user:12"));
    rl__store_free(s);
}
END_TEST

START_TEST(test_touch_protects)
{
    struct rl_store *s = new_store(3);

    get_s(s, RL_GCRA, "a", 0)->v[0] = 1;
    get_s(s, RL_GCRA, "b", 0)->v[0] = 2;
    get_s(s, RL_GCRA, "c", 0)->v[0] = 3;
    ck_assert_int_eq(get_s(s, RL_GCRA, "a", 1)->v[0], 1);
    get_s(s, RL_GCRA, "d", 2)->v[0] = 4;
    assert_stats(s, 3, 1, 0);
    ck_assert(absent(s, RL_GCRA, "b"));
    ck_assert_int_eq(get_s(s, RL_GCRA, "a", 3)->v[0], 1);
    ck_assert_int_eq(get_s(s, RL_GCRA, "c", 3)->v[0], 3);
    ck_assert_int_eq(get_s(s, RL_GCRA, "d", 3)->v[0], 4);
    assert_stats(s, 3, 1, 0);
    rl__store_free(s);
}
END_TEST

/*
 * A key got since the hand last passed survives that pass, and only that
 * one: the pass clears its bit.  Records 1..8 hold k0..k7, and k1, k3, k4
 * are got.  Each new key n<j> takes the record of the key it evicts.
 */
START_TEST(test_clock_second_chance)
{
    static const char *const gone[] = { "k0", "k2", "k5", "k6", "k7", "n0" };
    static const char *const kept[] = { "k3", "k4", "n1", "n2", "n3", "n4",
                                        "n5" };
    struct rl_store *s = new_store(8);
    char k[8];
    size_t i;

    for (i = 0; i < 8; i++) {
        snprintf(k, sizeof(k), "k%zu", i);
        get_s(s, RL_FIXED_WINDOW, k, 0)->v[0] = (int64_t)i + 1;
    }
    get_s(s, RL_FIXED_WINDOW, "k1", 0);
    get_s(s, RL_FIXED_WINDOW, "k3", 0);
    get_s(s, RL_FIXED_WINDOW, "k4", 0);
    /* n0 evicts k0; n1 passes k1, evicts k2; n2 passes k3 and k4, evicts
       k5; n3 and n4 evict k6 and k7; the hand wraps: n5 evicts n0, never
       got since it was added. */
    for (i = 0; i < 6; i++) {
        snprintf(k, sizeof(k), "n%zu", i);
        get_s(s, RL_FIXED_WINDOW, k, 0)->v[0] = 100 + (int64_t)i;
    }
    assert_stats(s, 8, 6, 0);
    for (i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
        ck_assert_msg(absent(s, RL_FIXED_WINDOW, gone[i]), "%s", gone[i]);
    /* The pass cleared k1's bit: the next key evicts it. */
    get_s(s, RL_FIXED_WINDOW, "n6", 0);
    assert_stats(s, 8, 7, 0);
    ck_assert(absent(s, RL_FIXED_WINDOW, "k1"));
    for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
        ck_assert_int_eq(get_s(s, RL_FIXED_WINDOW, kept[i], 0)->v[0],
                         kept[i][0] == 'k' ? kept[i][1] - '0' + 1
                                           : 100 + kept[i][1] - '0');
    }
    assert_stats(s, 8, 7, 0);
    rl__store_free(s);
}
END_TEST

/* More keys than a bitmap word, every one got: one new key clears every
   bit, around, and evicts the key where the hand started. */
START_TEST(test_clock_full_turn)
{
    struct rl_store *s = new_store(200);
    char k[32];
    int i;

    for (i = 0; i < 200; i++) {
        key_n(k, sizeof(k), i);
        get_s(s, RL_GCRA, k, 0)->v[0] = i + 1;
    }
    for (i = 199; i >= 0; i--) {
        key_n(k, sizeof(k), i);
        get_s(s, RL_GCRA, k, 0);
    }
    get_s(s, RL_GCRA, "x", 0);
    assert_stats(s, 200, 1, 0);
    ck_assert(absent(s, RL_GCRA, "user:0"));
    get_s(s, RL_GCRA, "y", 0);
    assert_stats(s, 200, 2, 0);
    ck_assert(absent(s, RL_GCRA, "user:1"));
    for (i = 2; i < 200; i++) {
        key_n(k, sizeof(k), i);
        FAST_EQ(get_s(s, RL_GCRA, k, 0)->v[0], i + 1);
    }
    assert_stats(s, 200, 2, 0);
    rl__store_free(s);
}
END_TEST

START_TEST(test_full_drops_expired_victim_as_expired)
{
    struct rl_store *s = new_store(2);
    rl_algo_state *st;

    st = get_s(s, RL_SLIDING_WINDOW, "a", 0);
    rl__store_set_expiry(s, st, 100);
    get_s(s, RL_SLIDING_WINDOW, "b", 0);
    get_s(s, RL_SLIDING_WINDOW, "c", 100);
    assert_stats(s, 2, 0, 1);
    ck_assert(absent(s, RL_SLIDING_WINDOW, "a"));
    get_s(s, RL_SLIDING_WINDOW, "a", 100);
    assert_stats(s, 2, 1, 1);
    ck_assert(absent(s, RL_SLIDING_WINDOW, "b"));
    rl__store_free(s);
}
END_TEST

/* ---- delete ---- */

START_TEST(test_del)
{
    struct rl_store *s = new_store(10);
    rl_algo_state *st;

    get_s(s, RL_SLIDING_WINDOW, "a", 0)->v[0] = 1;
    get_s(s, RL_GCRA, "a", 0)->v[0] = 2;
    ck_assert(!del_s(s, RL_TOKEN_BUCKET, "a"));
    ck_assert(!rl__store_del(s, RL_SLIDING_WINDOW, "a\0", 2));
    ck_assert(!del_s(s, RL_SLIDING_WINDOW, "b"));
    assert_stats(s, 2, 0, 0);
    ck_assert(del_s(s, RL_SLIDING_WINDOW, "a"));
    assert_stats(s, 1, 0, 0);
    ck_assert(!del_s(s, RL_SLIDING_WINDOW, "a"));
    ck_assert_int_eq(get_s(s, RL_GCRA, "a", 0)->v[0], 2);
    st = get_s(s, RL_SLIDING_WINDOW, "a", 0);
    ck_assert(is_fresh(st));
    assert_stats(s, 2, 0, 0);
    rl__store_free(s);
}
END_TEST

/* ---- sweep ---- */

START_TEST(test_sweep_only_expired)
{
    struct rl_store *s = new_store(1000);
    rl_algo_state *st;
    int64_t n, total = 0;
    char k[32];
    int i, calls;

    for (i = 0; i < 100; i++) {
        key_n(k, sizeof(k), i);
        st = get_s(s, RL_SLIDING_WINDOW, k, 0);
        st->v[0] = i + 1;
        if (i < 50)
            rl__store_set_expiry(s, st, 1000);
        else if (i < 80)
            rl__store_set_expiry(s, st, 1001);
    }
    ck_assert_int_eq(rl__store_sweep(s, 999, INT64_MAX), 0);
    assert_stats(s, 100, 0, 0);
    ck_assert_int_eq(rl__store_sweep(s, 1000, INT64_MAX), 50);
    assert_stats(s, 50, 0, 50);
    ck_assert_int_eq(rl__store_sweep(s, 1000, INT64_MAX), 0);
    for (i = 0; i < 50; i++) {
        key_n(k, sizeof(k), i);
        ck_assert(!del_s(s, RL_SLIDING_WINDOW, k));
    }
    for (i = 50; i < 100; i++) {
        key_n(k, sizeof(k), i);
        ck_assert_int_eq(get_s(s, RL_SLIDING_WINDOW, k, 1000)->v[0], i + 1);
    }
    /* A small budget: never more per call, all of them over a few calls. */
    for (calls = 0; calls < 20 && total < 30; calls++) {
        n = rl__store_sweep(s, 1001, 7);
        ck_assert_int_ge(n, 0);
        ck_assert_int_le(n, 7);
        total += n;
    }
    ck_assert_int_eq(total, 30);
    ck_assert_int_eq(rl__store_sweep(s, 1001, INT64_MAX), 0);
    assert_stats(s, 20, 0, 80);
    for (i = 80; i < 100; i++) {
        key_n(k, sizeof(k), i);
        ck_assert_int_eq(get_s(s, RL_SLIDING_WINDOW, k, 1001)->v[0], i + 1);
    }
    rl__store_free(s);
}
END_TEST

START_TEST(test_sweep_budget_exact)
{
    struct rl_store *s = new_store(1000);
    char k[32];
    int i;

    ck_assert_int_eq(rl__store_sweep(s, 10, 100), 0);
    for (i = 0; i < 200; i++) {
        key_n(k, sizeof(k), i);
        rl__store_set_expiry(s, get_s(s, RL_GCRA, k, 0), 10);
    }
    ck_assert_int_eq(rl__store_sweep(s, 10, 0), 0);
    ck_assert_int_eq(rl__store_sweep(s, 10, -5), 0);
    ck_assert_int_eq(rl__store_sweep(s, 9, 100), 0);
    assert_stats(s, 200, 0, 0);
    /* Every key is expired, and 16 per call lets the sweep look at all
       200 keys: exactly 16 each time. */
    for (i = 0; i < 12; i++) {
        ck_assert_int_eq(rl__store_sweep(s, 10, 16), 16);
        assert_stats(s, 200 - 16 * (i + 1), 0, 16 * (i + 1));
    }
    ck_assert_int_eq(rl__store_sweep(s, 10, 16), 8);
    ck_assert_int_eq(rl__store_sweep(s, 10, 16), 0);
    assert_stats(s, 0, 0, 200);
    rl__store_free(s);
}
END_TEST

/*
 * With budget 1 a call looks at a few dozen keys only, so finding 40
 * expired keys among 4,000 takes the cursor around the store over many
 * calls (more calls than keys found: the work per call is bounded); a
 * sweep that restarted from the beginning would not find them all.
 */
START_TEST(test_sweep_walks_table)
{
    struct rl_store *s = new_store(10000);
    rl_algo_state *st;
    int64_t n, total = 0;
    char k[32];
    int i, calls;

    for (i = 0; i < 4000; i++) {
        key_n(k, sizeof(k), i);
        st = get_s(s, RL_FIXED_WINDOW, k, 0);
        if (i % 100 == 0)
            rl__store_set_expiry(s, st, 50);
        else
            rl__store_set_expiry(s, st, 5000);
    }
    for (calls = 0; calls < 2000 && total < 40; calls++) {
        n = rl__store_sweep(s, 60, 1);
        ck_assert_int_le(n, 1);
        total += n;
    }
    ck_assert_int_eq(total, 40);
    ck_assert_int_gt(calls, 40);
    assert_stats(s, 3960, 0, 40);
    for (i = 0; i < 4000; i += 100) {
        key_n(k, sizeof(k), i);
        ck_assert(!del_s(s, RL_FIXED_WINDOW, k));
    }
    rl__store_free(s);
}
END_TEST

/* ---- statistics ---- */

START_TEST(test_stats_exact)
{
    struct rl_store *s = new_store(5);
    rl_algo_state *st;
    char k[32];
    int i;

    assert_stats(s, 0, 0, 0);
    for (i = 0; i < 7; i++) {
        key_n(k, sizeof(k), i);
        st = get_s(s, RL_SLIDING_WINDOW, k, 0);
        rl__store_set_expiry(s, st, 100 + i);
    }
    assert_stats(s, 5, 2, 0);
    get_s(s, RL_SLIDING_WINDOW, "user:2", 102);     /* expired on get */
    assert_stats(s, 5, 2, 1);
    ck_assert_int_eq(rl__store_sweep(s, 104, INT64_MAX), 2); /* 3 and 4 */
    assert_stats(s, 3, 2, 3);
    ck_assert(del_s(s, RL_SLIDING_WINDOW, "user:5"));
    assert_stats(s, 2, 2, 3);
    /* Records 1-5 held user:5, 6, 2, 3, 4; x, y and z refill the holes,
       the last freed first: records 1 (user:5), 5 and 4 (the sweep's). */
    get_s(s, RL_SLIDING_WINDOW, "x", 104);
    get_s(s, RL_SLIDING_WINDOW, "y", 104);
    get_s(s, RL_SLIDING_WINDOW, "z", 104);
    assert_stats(s, 5, 2, 3);
    /* The hand, at record 3 since user:6 was added, passes user:2 (got at
       102) and evicts z, never got since it was added; then y. */
    get_s(s, RL_SLIDING_WINDOW, "w", 104);
    assert_stats(s, 5, 3, 3);
    ck_assert(absent(s, RL_SLIDING_WINDOW, "z"));
    get_s(s, RL_SLIDING_WINDOW, "v", 104);
    assert_stats(s, 5, 4, 3);
    ck_assert(absent(s, RL_SLIDING_WINDOW, "y"));
    ck_assert(del_s(s, RL_SLIDING_WINDOW, "user:6"));
    ck_assert(del_s(s, RL_SLIDING_WINDOW, "user:2"));
    ck_assert(del_s(s, RL_SLIDING_WINDOW, "x"));
    assert_stats(s, 2, 4, 3);
    rl__store_free(s);
}
END_TEST

/* ---- the sliding log is released on every way out ---- */

/* A state of `key` with a malloc'd sliding log, expiring when it says. */
static rl_algo_state *
log_state(struct rl_store *s, const char *key, int64_t now)
{
    rl_algo_state *st = get_s(s, RL_SLIDING_LOG, key, now);
    rl_decision d;
    int i;

    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(rl__algo_decide(RL_SLIDING_LOG, st, now + i, 10,
                                         1000, 1, &d), RL_OK);
    }
    ck_assert_ptr_nonnull(st->log);
    ck_assert_int_gt(d.expire_at_ms, now + 4);
    rl__store_set_expiry(s, st, d.expire_at_ms);
    return st;
}

START_TEST(test_log_freed_on_eviction)
{
    struct rl_store *s = new_store(1);

    log_state(s, "a", 0);
    get_s(s, RL_SLIDING_LOG, "b", 1);
    assert_stats(s, 1, 1, 0);
    assert_no_leak();
    rl__store_free(s);
}
END_TEST

START_TEST(test_log_freed_on_expiry)
{
    struct rl_store *s = new_store(10);
    rl_algo_state *st;

    log_state(s, "a", 0);
    st = get_s(s, RL_SLIDING_LOG, "a", INT64_C(1) << 40);
    ck_assert(is_fresh(st));
    assert_stats(s, 1, 0, 1);
    assert_no_leak();
    /* Also when a full store drops an expired LRU key. */
    rl__store_free(s);
    s = new_store(1);
    log_state(s, "a", 0);
    get_s(s, RL_SLIDING_LOG, "b", INT64_C(1) << 40);
    assert_stats(s, 1, 0, 1);
    assert_no_leak();
    rl__store_free(s);
}
END_TEST

START_TEST(test_log_freed_on_sweep)
{
    struct rl_store *s = new_store(10);

    log_state(s, "a", 0);
    log_state(s, "b", 0);
    ck_assert_int_eq(rl__store_sweep(s, INT64_C(1) << 40, 10), 2);
    assert_stats(s, 0, 0, 2);
    assert_no_leak();
    rl__store_free(s);
}
END_TEST

START_TEST(test_log_freed_on_del_and_free)
{
    struct rl_store *s = new_store(10);

    log_state(s, "a", 0);
    ck_assert(del_s(s, RL_SLIDING_LOG, "a"));
    assert_no_leak();
    log_state(s, "b", 0);
    log_state(s, "c", 0);
    rl__store_free(s);
    assert_no_leak();
}
END_TEST

/* ---- scale ---- */

START_TEST(test_100k_keys)
{
    enum { N = 100000 };
    struct rl_store *s = new_store(N);
    rl_algo_state *st;
    uint64_t x = 88172645463325252ULL;
    char k[32];
    int i, j;

    for (i = 0; i < N; i++) {
        key_n(k, sizeof(k), i);
        st = get_s(s, RL_SLIDING_WINDOW, k, 0);
        FAST_TRUE(is_fresh(st));
        st->v[0] = i + 1;
    }
    assert_stats(s, N, 0, 0);
    for (i = 0; i < N; i++) {
        key_n(k, sizeof(k), i);
        FAST_EQ(get_s(s, RL_SLIDING_WINDOW, k, 0)->v[0], i + 1);
    }
    for (i = 0; i < 10 * N; i++) {
        j = (int)(rnd(&x) % N);
        key_n(k, sizeof(k), j);
        FAST_EQ(get_s(s, RL_SLIDING_WINDOW, k, 0)->v[0], j + 1);
    }
    /* Well spread: at a load of 100,000 / 2^18, linear probing's longest
       run stays in the tens. */
    ck_assert_int_lt(rl__store_verify(s), 64);
    assert_stats(s, N, 0, 0);
    rl__store_free(s);
}
END_TEST

/* ---- the slot array: presized, then doubling a bit per get ---- */

static int64_t
slots_of(const struct rl_store *s, int64_t *old)
{
    return rl__store_test_slots(s, old);
}

START_TEST(test_presized)
{
    struct rl_store *s;
    int64_t old;

    /* Room for max_keys at a load of 3/4, up to 65,536 keys. */
    s = new_store(1);
    ck_assert_int_eq(slots_of(s, &old), 16);
    rl__store_free(s);
    s = new_store(1000);
    ck_assert_int_eq(slots_of(s, &old), 2048);
    rl__store_free(s);
    s = new_store(49152);
    ck_assert_int_eq(slots_of(s, &old), 65536);
    rl__store_free(s);
    s = new_store(49153);
    ck_assert_int_eq(slots_of(s, &old), 131072);
    rl__store_free(s);
    s = new_store(INT64_MAX);
    ck_assert_int_eq(slots_of(s, &old), 131072);
    ck_assert_int_eq(old, 0);
    rl__store_free(s);
}
END_TEST

enum { G_FULL = 98304 }; /* keys 131,072 slots hold at a load of 3/4 */

/* Adds user:from .. user:to-1, each with v[0] = its number + 1. */
static void
add_range(struct rl_store *s, int from, int to, int64_t now)
{
    char k[32];
    int i;

    for (i = from; i < to; i++) {
        key_n(k, sizeof(k), i);
        get_s(s, RL_SLIDING_WINDOW, k, now)->v[0] = i + 1;
    }
}

/* Whether the slot array is doubling (old slots left to move). */
static bool
doubling(const struct rl_store *s)
{
    int64_t old;

    return rl__store_test_slots(s, &old) == 262144 && old == 131072;
}

/* After test_grows_incrementally: every key it did not drop is there,
   with its value. */
static void
check_survivors(struct rl_store *s)
{
    char k[32];
    int i;

    for (i = 21; i < G_FULL + 1030; i++) {
        key_n(k, sizeof(k), i);
        if ((i < 50001 || i >= 51000 || i % 2 == 0) &&
            (i < G_FULL - 1000 || i >= G_FULL || (G_FULL - 1 - i) % 2 == 1))
            FAST_EQ(get_s(s, RL_SLIDING_WINDOW, k, 20)->v[0], i + 1);
    }
}

/*
 * The first key beyond what the presized array holds starts the doubling;
 * while it lasts, keys in either array are found, deleted, swept and
 * evicted.  Each get moves 16 old slots or more (whole clusters), so
 * 8,192 gets move all 131,072.  A fixed hash secret makes the clusters,
 * hence how far the move is at each step, the same every run.
 */
START_TEST(test_grows_incrementally)
{
    struct rl_store *s = new_store(G_FULL + 10);
    int64_t old, gets = 0;
    char k[32];
    int i;

    rl__store_test_hash(s, 0x0123456789abcdefULL, 0xfedcba9876543210ULL,
                        UINT64_MAX);
    add_range(s, 0, G_FULL, 0);
    for (i = 0; i < 1000; i += 2) {
        key_n(k, sizeof(k), G_FULL - 1 - i);
        rl__store_set_expiry(s, get_s(s, RL_SLIDING_WINDOW, k, 0), 5);
    }
    ck_assert_int_eq(slots_of(s, &old), 131072);
    ck_assert_int_eq(old, 0);
    add_range(s, G_FULL, G_FULL + 1, 0);
    ck_assert(doubling(s));
    ck_assert_int_ge(rl__store_verify(s), 0);
    for (i = 50001; i < 51000; i += 2) {
        key_n(k, sizeof(k), i);
        ck_assert(del_s(s, RL_SLIDING_WINDOW, k));
    }
    ck_assert_int_eq(rl__store_sweep(s, 5, INT64_MAX), 500);
    assert_stats(s, G_FULL + 1 - 1000, 0, 500);
    for (i = 0; i < 2000; i++, gets++) {
        key_n(k, sizeof(k), i * 24);
        FAST_EQ(get_s(s, RL_SLIDING_WINDOW, k, 0)->v[0], i * 24 + 1);
    }
    ck_assert(doubling(s));
    ck_assert_int_ge(rl__store_verify(s), 0);
    /* 1,000 keys refill the holes, 9 more fill the store, 20 more evict
       user:1 to user:20 (the hand passes user:0, got above). */
    add_range(s, G_FULL + 1, G_FULL + 1030, 10);
    gets += 1029;
    assert_stats(s, G_FULL + 10, 20, 500);
    ck_assert(doubling(s));
    for (i = 1; i <= 20; i++) {
        key_n(k, sizeof(k), i);
        ck_assert(absent(s, RL_SLIDING_WINDOW, k));
    }
    ck_assert_int_ge(rl__store_verify(s), 0);
    for (; gets < 8192; gets++)
        get_s(s, RL_SLIDING_WINDOW, "user:0", 20);
    ck_assert_int_eq(slots_of(s, &old), 262144);
    ck_assert_int_eq(old, 0);
    ck_assert_int_ge(rl__store_verify(s), 0);
    check_survivors(s);
    assert_stats(s, G_FULL + 10, 20, 500);
    rl__store_free(s);
}
END_TEST

/* ---- prefetching ---- */

START_TEST(test_prefetch)
{
    struct rl_store *s = new_store(G_FULL + 1);
    rl_algo_state *st;
    uint64_t h;
    char k[32];
    int i, n;

    add_range(s, 0, G_FULL + 1, 0);
    ck_assert(doubling(s));
    /* Prefetching changes nothing. */
    for (i = 0; i < 1000; i++) {
        key_n(k, sizeof(k), i * 3);
        h = rl__store_prefetch(s, RL_SLIDING_WINDOW, k, strlen(k));
        rl__store_prefetch_record(s, h);
        rl__store_prefetch_record(s, h * 3);
    }
    assert_stats(s, G_FULL + 1, 0, 0);
    ck_assert(doubling(s));
    /* Its hash is the store's, and a get with it is a get: for held keys
       (either array) and new ones, which evict user:0, user:1, ... but
       for the odd multiples of 7, got before the hand reaches them. */
    for (i = 0; i < 2000; i++) {
        if (i % 2)
            key_n(k, sizeof(k), i * 7);
        else
            snprintf(k, sizeof(k), "new:%d", i);
        h = rl__store_prefetch(s, RL_SLIDING_WINDOW, k, strlen(k));
        FAST_TRUE(h == rl__store_hash(s, RL_SLIDING_WINDOW, k, strlen(k)));
        rl__store_prefetch_record(s, h);
        st = rl__store_get_hashed(s, RL_SLIDING_WINDOW, k, strlen(k), h, 0);
        FAST_EQ(st->v[0], i % 2 ? i * 7 + 1 : 0);
        FAST_TRUE(st == get_s(s, RL_SLIDING_WINDOW, k, 0));
    }
    assert_stats(s, G_FULL + 1, 1000, 0);
    for (i = 0, n = 0; n <= 1000; i++) {
        key_n(k, sizeof(k), i);
        if (i % 7 == 0 && i / 7 % 2 == 1) {
            FAST_TRUE(!absent(s, RL_SLIDING_WINDOW, k));
        } else {
            FAST_EQ(absent(s, RL_SLIDING_WINDOW, k), n < 1000);
            n++;
        }
    }
    rl__store_free(s);
}
END_TEST

/* ---- long keys (a malloc'd copy) ---- */

START_TEST(test_long_keys_freed)
{
    static char key[4][RL_KEY_MAX];
    static const size_t lens[] = { 56, 57, 200, RL_KEY_MAX };
    struct rl_store *s = new_store(2);
    size_t i;

    for (i = 0; i < 4; i++)
        memset(key[i], 'a' + (int)i, sizeof(key[i]));
    /* Evicted: a full store of 2 sees 4 keys. */
    for (i = 0; i < 4; i++)
        rl__store_get(s, RL_GCRA, key[i], lens[i], 0)->v[0] = (int64_t)i + 1;
    assert_stats(s, 2, 2, 0);
    ck_assert_int_eq(rl__store_get(s, RL_GCRA, key[3], lens[3], 0)->v[0], 4);
    ck_assert_int_eq(rl__store_get(s, RL_GCRA, key[2], lens[2], 0)->v[0], 3);
    /* A shorter prefix is another key. */
    ck_assert(!rl__store_del(s, RL_GCRA, key[3], lens[3] - 1));
    assert_no_leak();
    /* Deleted, swept, and freed with the store. */
    ck_assert(rl__store_del(s, RL_GCRA, key[3], lens[3]));
    rl__store_set_expiry(s, rl__store_get(s, RL_GCRA, key[2], lens[2], 0), 1);
    ck_assert_int_eq(rl__store_sweep(s, 1, 10), 1);
    assert_stats(s, 0, 2, 1);
    assert_no_leak();
    rl__store_get(s, RL_GCRA, key[1], lens[1], 0);
    rl__store_free(s);
    assert_no_leak();
}
END_TEST

/* ---- the hash ---- */

static uint64_t
openssl_siphash13(const unsigned char key[16], const void *data, size_t len)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    EVP_MAC_CTX *ctx;
    unsigned int c_rounds = 1, d_rounds = 3;
    size_t size = 8, outl = 0;
    unsigned char out[8];
    uint64_t v = 0;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
        OSSL_PARAM_construct_uint(OSSL_MAC_PARAM_C_ROUNDS, &c_rounds),
        OSSL_PARAM_construct_uint(OSSL_MAC_PARAM_D_ROUNDS, &d_rounds),
        OSSL_PARAM_construct_end()
    };
    int i;

    ck_assert_ptr_nonnull(mac);
    ctx = EVP_MAC_CTX_new(mac);
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(EVP_MAC_init(ctx, key, 16, params), 1);
    ck_assert_int_eq(EVP_MAC_update(ctx, data, len), 1);
    ck_assert_int_eq(EVP_MAC_final(ctx, out, &outl, sizeof(out)), 1);
    ck_assert_uint_eq(outl, 8);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    for (i = 7; i >= 0; i--)
        v = (v << 8) | out[i];
    return v;
}

static uint64_t
le64(const unsigned char *p)
{
    uint64_t v = 0;
    int i;

    for (i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

START_TEST(test_hash_is_siphash13)
{
    unsigned char key[16], msg[1100];
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    size_t len, i;
    int round;

    for (round = 0; round < 3; round++) {
        for (i = 0; i < sizeof(key); i++)
            key[i] = (unsigned char)(round == 0 ? i : rnd(&x));
        for (i = 0; i < sizeof(msg); i++)
            msg[i] = (unsigned char)(round == 0 ? i : rnd(&x));
        for (len = 0; len <= 80; len++) {
            ck_assert_msg(rl__siphash13(le64(key), le64(key + 8), msg, len) ==
                          openssl_siphash13(key, msg, len),
                          "round %d length %zu", round, len);
        }
        for (len = 1020; len <= sizeof(msg); len++) {
            ck_assert(rl__siphash13(le64(key), le64(key + 8), msg, len) ==
                      openssl_siphash13(key, msg, len));
        }
    }
}
END_TEST

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* Chi-square of n values spread over 1024 bins. */
static double
chi2_1024(const uint64_t *h, size_t n, int shift)
{
    static unsigned bins[1024];
    double e = (double)n / 1024, chi = 0;
    size_t i;

    memset(bins, 0, sizeof(bins));
    for (i = 0; i < n; i++)
        bins[(h[i] >> shift) & 1023]++;
    for (i = 0; i < 1024; i++)
        chi += (bins[i] - e) * (bins[i] - e) / e;
    return chi;
}

START_TEST(test_hash_distribution)
{
    enum { N = 65536 };
    static uint64_t h[N];
    struct rl_store *s = new_store(N), *s2 = new_store(N);
    unsigned ones[64] = { 0 };
    char k[32];
    int i, b;

    for (i = 0; i < N; i++) {
        key_n(k, sizeof(k), i);
        h[i] = rl__store_hash(s, RL_SLIDING_WINDOW, k, strlen(k));
        for (b = 0; b < 64; b++)
            ones[b] += (h[i] >> b) & 1;
    }
    /* Every bit is set half the time (sd 128: 1,000 is ~8 sd). */
    for (b = 0; b < 64; b++) {
        ck_assert_msg(ones[b] > N / 2 - 1000 && ones[b] < N / 2 + 1000,
                      "bit %d set %u times", b, ones[b]);
    }
    /* Low bits (the slot index) and high bits spread evenly: chi-square
       with 1023 degrees of freedom, mean 1023, sd 45. */
    for (b = 0; b <= 54; b += 9)
        ck_assert_double_lt(chi2_1024(h, N, b), 1023 + 8 * 45);
    /* No collisions among sequential keys. */
    qsort(h, N, sizeof(h[0]), cmp_u64);
    for (i = 1; i < N; i++)
        FAST_TRUE(h[i] != h[i - 1]);
    /* The store hashes with SipHash-1-3 under its key ... */
    rl__store_test_hash(s2, 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL,
                        UINT64_MAX);
    ck_assert(rl__store_hash(s2, RL_SLIDING_LOG, "user:7", 6) ==
              rl__siphash13(0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL,
                            "user:7", 6));
    rl__store_free(s2);
    s2 = new_store(N);
    /* ... which is secret per store and per algorithm. */
    ck_assert(rl__store_hash(s, RL_GCRA, "k", 1) !=
              rl__store_hash(s2, RL_GCRA, "k", 1));
    ck_assert(rl__store_hash(s, RL_GCRA, "k", 1) !=
              rl__store_hash(s, RL_SLIDING_LOG, "k", 1));
    ck_assert(rl__store_hash(s, RL_GCRA, "k", 1) ==
              rl__store_hash(s, RL_GCRA, "k", 1));
    rl__store_free(s);
    rl__store_free(s2);
}
END_TEST

/* ---- against a model ---- */

/*
 * The model holds at most `max` of M_KEYS key ids in plain arrays: the
 * key at each record position, a reference flag per position, a stack of
 * free positions (the last freed is reused first), a clock hand and a
 * sweep cursor over the positions, moved as store.c's file head says.
 */
#define M_KEYS 400
#define M_RECS 256 /* positions, >= max + 1 */

struct model {
    int max;
    bool present[M_KEYS];
    int pos[M_KEYS];
    int64_t marker[M_KEYS];
    int64_t expire[M_KEYS];
    int at[M_RECS];          /* the key id at each position, -1: free */
    bool ref[M_RECS];
    int free_pos[M_RECS];
    int n_free, n_recs, hand, cursor;
    int64_t keys, evictions, expired;
};

/* Key id i is the name "m<i/2>" under one of two algorithms. */
static rl_algorithm
m_alg(int i)
{
    return i % 2 ? RL_GCRA : RL_SLIDING_WINDOW;
}

static void
m_name(char *buf, size_t size, int i)
{
    snprintf(buf, size, "m%d", i / 2);
}

static void
m_init(struct model *m, int max)
{
    memset(m, 0, sizeof(*m));
    memset(m->at, -1, sizeof(m->at));
    m->max = max;
    m->n_recs = m->hand = m->cursor = 1;
}

static void
m_release(struct model *m, int r)
{
    m->present[m->at[r]] = false;
    m->at[r] = -1;
    m->ref[r] = false;
    m->free_pos[m->n_free++] = r;
    m->keys--;
}

/* The position of a key about to be added; a full store evicts the first
   key from the hand on whose flag is clear, clearing those it passes. */
static int
m_make_room(struct model *m, int64_t now)
{
    int r;

    if (m->keys < m->max) {
        m->keys++;
        return m->n_free > 0 ? m->free_pos[--m->n_free] : m->n_recs++;
    }
    for (;;) {
        if (m->hand >= m->n_recs)
            m->hand = 1;
        r = m->hand++;
        if (!m->ref[r])
            break;
        m->ref[r] = false;
    }
    if (m->expire[m->at[r]] <= now)
        m->expired++;
    else
        m->evictions++;
    m->present[m->at[r]] = false;
    return r;
}

static void
m_get(struct model *m, struct rl_store *s, int i, int64_t now, uint64_t *x)
{
    rl_algo_state *st;
    char k[32];

    m_name(k, sizeof(k), i);
    if (m->present[i]) {
        m->ref[m->pos[i]] = true;
        if (m->expire[i] <= now) {
            m->expired++;
            m->marker[i] = 0;
            m->expire[i] = NEVER;
        }
    } else {
        m->pos[i] = m_make_room(m, now);
        m->at[m->pos[i]] = i;
        m->present[i] = true;
        m->marker[i] = 0;
        m->expire[i] = NEVER;
    }
    st = get_s(s, m_alg(i), k, now);
    FAST_EQ(st->v[0], m->marker[i]);
    m->marker[i] = (int64_t)(rnd(x) >> 2) + 1;
    st->v[0] = m->marker[i];
    if (rnd(x) % 2) {
        m->expire[i] = now + (int64_t)(rnd(x) % 40);
        rl__store_set_expiry(s, st, m->expire[i]);
    }
}

/* The sweep: from the cursor, at most 32 positions per key the budget
   lets it drop. */
static int64_t
m_sweep(struct model *m, int64_t now, int64_t budget)
{
    int64_t limit = m->n_recs - 1, seen, n = 0;

    if (budget < 1)
        return 0;
    if (budget < limit / 32)
        limit = budget * 32;
    for (seen = 0; seen < limit && n < budget; seen++) {
        if (m->cursor >= m->n_recs)
            m->cursor = 1;
        if (m->at[m->cursor] >= 0 && m->expire[m->at[m->cursor]] <= now) {
            m_release(m, m->cursor);
            n++;
        }
        m->cursor++;
    }
    m->expired += n;
    return n;
}

static void
m_del(struct model *m, struct rl_store *s, int i)
{
    char k[32];

    m_name(k, sizeof(k), i);
    FAST_EQ(del_s(s, m_alg(i), k), m->present[i]);
    if (m->present[i])
        m_release(m, m->pos[i]);
}

/* A random sequence of gets, deletions and sweeps over `nkeys` key ids,
   on a store of `max` keys, checked step by step against the model. */
static void
against_model(int max, int nkeys, uint64_t x)
{
    static struct model m;
    struct rl_store *s = new_store(max);
    int64_t now = 0, budget;
    int step, i, op;

    m_init(&m, max);
    for (step = 0; step < 50000; step++) {
        now += (int64_t)(rnd(&x) % 3);
        i = (int)(rnd(&x) % (uint64_t)nkeys);
        op = (int)(rnd(&x) % 100);
        if (op < 80) {
            m_get(&m, s, i, now, &x);
        } else if (op < 92) {
            m_del(&m, s, i);
        } else {
            budget = (int64_t)(rnd(&x) % 4);
            FAST_EQ(rl__store_sweep(s, now, budget), m_sweep(&m, now, budget));
            if (rnd(&x) % 2)
                FAST_EQ(rl__store_sweep(s, now, INT64_MAX),
                        m_sweep(&m, now, INT64_MAX));
        }
        assert_stats(s, m.keys, m.evictions, m.expired);
    }
    ck_assert_int_gt(m.evictions, 100);
    ck_assert_int_gt(m.expired, 100);
    rl__store_free(s);
}

START_TEST(test_against_model)
{
    against_model(64, 300, 0x2545f4914f6cdd1dULL);
    against_model(150, 400, 0x9e3779b97f4a7c15ULL);
}
END_TEST

/* ---- the runner ---- */

static Suite *
store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_get_fresh_then_same);
    tcase_add_test(tc, test_new_bounds);
    tcase_add_test(tc, test_keys_independent);
    tcase_add_test(tc, test_same_hash_other_alg);
    tcase_add_test(tc, test_all_hashes_equal);
    tcase_add_test(tc, test_few_hashes);
    tcase_add_test(tc, test_expiry_exact);
    tcase_add_test(tc, test_clock_insertion_order);
    tcase_add_test(tc, test_touch_protects);
    tcase_add_test(tc, test_clock_second_chance);
    tcase_add_test(tc, test_clock_full_turn);
    tcase_add_test(tc, test_full_drops_expired_victim_as_expired);
    tcase_add_test(tc, test_del);
    tcase_add_test(tc, test_sweep_only_expired);
    tcase_add_test(tc, test_sweep_budget_exact);
    tcase_add_test(tc, test_sweep_walks_table);
    tcase_add_test(tc, test_stats_exact);
    tcase_add_test(tc, test_log_freed_on_eviction);
    tcase_add_test(tc, test_log_freed_on_expiry);
    tcase_add_test(tc, test_log_freed_on_sweep);
    tcase_add_test(tc, test_log_freed_on_del_and_free);
    tcase_add_test(tc, test_100k_keys);
    tcase_add_test(tc, test_presized);
    tcase_add_test(tc, test_grows_incrementally);
    tcase_add_test(tc, test_prefetch);
    tcase_add_test(tc, test_long_keys_freed);
    tcase_add_test(tc, test_hash_is_siphash13);
    tcase_add_test(tc, test_hash_distribution);
    tcase_add_test(tc, test_against_model);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return th_run_suite(store_suite(), CK_NORMAL);
}
