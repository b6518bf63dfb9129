/*
 * test_histogram.c: the log-linear histogram alone (src/histogram.c): the
 * bucket map is dense, monotonic and within 1/32 of each value; quantiles
 * of known distributions are within the promised error of the exact ones;
 * min and max are exact; the 1 us and 60 s edges; values past 60 s clamp;
 * counts below powers of two are exact; merge and diff undo each other.
 */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "histogram.h"

static struct rl_hist h;

static void
setup(void)
{
    rl__hist_init(&h);
}

/* ---- the bucket map ---- */

/*
 * Whether v lies in its bucket and the bucket is narrow enough.  Loops
 * call ck_assert only on failure: every ck_assert writes to the runner.
 */
static bool
bucket_ok(uint64_t v)
{
    unsigned b = rl__hist_bucket(v);
    uint64_t low = rl__hist_bucket_low(b), width = rl__hist_bucket_width(b);

    if (b >= RL_HIST_BUCKETS || low > v || v >= low + width)
        return false;
    if (v >= 64)
        return width * 32 <= low; /* at most 1/32 of the value */
    return width == 1;
}

START_TEST(buckets_are_dense_and_ordered)
{
    unsigned prev = 0, b;
    uint64_t v;

    for (v = 0; v <= (1u << 20); v++) {
        b = rl__hist_bucket(v);
        if ((b != prev && b != prev + 1) || !bucket_ok(v))
            ck_abort_msg("value %llu, bucket %u", (unsigned long long)v, b);
        prev = b;
    }
    for (b = 0; b < RL_HIST_BUCKETS; b++) {
        v = rl__hist_bucket_low(b);
        if (rl__hist_bucket(v) != b || !bucket_ok(v) ||
            (v > 0 && rl__hist_bucket(v - 1) != b - 1) ||
            !bucket_ok(v + rl__hist_bucket_width(b) - 1))
            ck_abort_msg("bucket %u, low %llu", b, (unsigned long long)v);
    }
    ck_assert_uint_eq(rl__hist_bucket(RL_HIST_MAX), RL_HIST_BUCKETS - 1);
}
END_TEST

START_TEST(powers_of_two_are_bucket_edges)
{
    int k;

    for (k = 0; k <= 25; k++)
        ck_assert_uint_eq(rl__hist_bucket_low(
                              rl__hist_bucket((uint64_t)1 << k)),
                          (uint64_t)1 << k);
}
END_TEST

/* ---- quantiles against exact ones ---- */

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* The exact q-quantile: rank ceil(q n) of the sorted values. */
static uint64_t
exact(const uint64_t *sorted, size_t n, double q)
{
    size_t rank = (size_t)(q * (double)n);

    if ((double)rank < q * (double)n || rank == 0)
        rank++;
    return sorted[rank - 1];
}

/* Every quantile is within 1/64 of the exact one (the middle of a bucket
   no wider than 1/32 of its lower bound). */
static void
check_quantiles(uint64_t *vals, size_t n)
{
    static const double qs[] = {0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9,
                                0.99, 0.999, 0.9999};
    uint64_t got, want, diff;
    size_t i;

    for (i = 0; i < n; i++)
        rl__hist_record(&h, vals[i]);
    qsort(vals, n, sizeof(*vals), cmp_u64);
    ck_assert_uint_eq(h.count, n);
    ck_assert_uint_eq(h.min, vals[0]);
    ck_assert_uint_eq(h.max, vals[n - 1]);
    ck_assert_uint_eq(rl__hist_quantile(&h, 0), vals[0]);
    ck_assert_uint_eq(rl__hist_quantile(&h, 1), vals[n - 1]);
    for (i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        got = rl__hist_quantile(&h, qs[i]);
        want = exact(vals, n, qs[i]);
        diff = got > want ? got - want : want - got;
        ck_assert_msg(diff * 64 <= want, "q %g: got %llu, exact %llu",
                      qs[i], (unsigned long long)got,
                      (unsigned long long)want);
    }
}

static uint64_t rng = 88172645463325252ULL;

static uint64_t
next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

START_TEST(uniform_distribution)
{
    size_t n = 200000, i;
    uint64_t *v = malloc(n * sizeof(*v)), sum = 0;

    for (i = 0; i < n; i++) {
        v[i] = 1 + next() % 100000;
        sum += v[i];
    }
    check_quantiles(v, n);
    ck_assert_uint_eq(h.sum, sum);
    free(v);
}
END_TEST

/* Latency-like: most fast, a long tail over six decades. */
START_TEST(log_uniform_distribution)
{
    size_t n = 200000, i;
    uint64_t *v = malloc(n * sizeof(*v));

    for (i = 0; i < n; i++)
        v[i] = (uint64_t)1 << (next() % 25) | (next() % 1024);
    check_quantiles(v, n);
    free(v);
}
END_TEST

START_TEST(small_counts_and_ties)
{
    uint64_t v[] = {7, 7, 7, 1000, 1000, 5000000};

    check_quantiles(v, sizeof(v) / sizeof(v[0]));
    ck_assert_uint_eq(rl__hist_quantile(&h, 0.5), 7);
}
END_TEST

/* ---- edges ---- */

START_TEST(one_microsecond_and_sixty_seconds)
{
    rl__hist_record(&h, 1);
    ck_assert_uint_eq(rl__hist_quantile(&h, 0.5), 1);
    ck_assert_uint_eq(h.min, 1);
    rl__hist_record(&h, 60000000);
    ck_assert_uint_eq(h.max, 60000000);
    ck_assert_uint_eq(rl__hist_quantile(&h, 0.99), 60000000);
    ck_assert_uint_eq(rl__hist_quantile(&h, 0.5), 1);
    ck_assert_uint_eq(rl__hist_clamped(&h), 0);
    ck_assert_uint_eq(h.sum, 1 + 60000000);
    rl__hist_record(&h, RL_HIST_MAX - 1);
    ck_assert_uint_eq(rl__hist_clamped(&h), 0);
    rl__hist_record(&h, RL_HIST_MAX);
    ck_assert_uint_eq(rl__hist_clamped(&h), 1);
}
END_TEST

START_TEST(overflow_clamps)
{
    rl__hist_record(&h, 100000000);   /* 100 s */
    rl__hist_record(&h, UINT64_MAX);
    rl__hist_record(&h, 10);
    ck_assert_uint_eq(h.count, 3);
    ck_assert_uint_eq(rl__hist_clamped(&h), 2);
    ck_assert_uint_eq(h.max, RL_HIST_MAX);
    ck_assert_uint_eq(h.sum, 10 + 2 * RL_HIST_MAX);
    ck_assert_uint_eq(h.b[RL_HIST_BUCKETS - 1], 2);
    ck_assert_uint_eq(rl__hist_quantile(&h, 1), RL_HIST_MAX);
}
END_TEST

START_TEST(zero_and_empty)
{
    ck_assert_uint_eq(rl__hist_quantile(&h, 0.5), 0);
    ck_assert_uint_eq(rl__hist_count_below(&h, 1024), 0);
    rl__hist_record(&h, 0);
    ck_assert_uint_eq(h.b[0], 1);
    ck_assert_uint_eq(rl__hist_quantile(&h, 0.99), 0);
}
END_TEST

/* ---- counts below a bound, merge, diff ---- */

START_TEST(count_below_powers_of_two_is_exact)
{
    size_t n = 50000, i;
    uint64_t *v = malloc(n * sizeof(*v)), want;
    int k;

    for (i = 0; i < n; i++) {
        v[i] = next() % (1u << (next() % 27));
        rl__hist_record(&h, v[i]);
    }
    for (k = 0; k <= 26; k++) {
        for (want = 0, i = 0; i < n; i++)
            want += v[i] < ((uint64_t)1 << k);
        ck_assert_uint_eq(rl__hist_count_below(&h, (uint64_t)1 << k), want);
    }
    ck_assert_uint_eq(rl__hist_count_below(&h, RL_HIST_MAX + 1), n);
    free(v);
}
END_TEST

START_TEST(merge_and_diff)
{
    static struct rl_hist a, b, sum, back;
    int i;

    rl__hist_init(&a);
    rl__hist_init(&b);
    for (i = 0; i < 1000; i++) {
        rl__hist_record(&a, next() % 5000);
        rl__hist_record(&b, next() % 90000000);
    }
    sum = a;
    rl__hist_merge(&sum, &b);
    ck_assert_uint_eq(sum.count, 2000);
    ck_assert_uint_eq(sum.sum, a.sum + b.sum);
    ck_assert_uint_eq(sum.min, a.min < b.min ? a.min : b.min);
    ck_assert_uint_eq(sum.max, RL_HIST_MAX);
    ck_assert_uint_eq(rl__hist_clamped(&sum), rl__hist_clamped(&b));
    rl__hist_diff(&back, &sum, &a);
    ck_assert_mem_eq(back.b, b.b, sizeof(b.b));
    ck_assert_uint_eq(back.count, b.count);
    ck_assert_uint_eq(back.sum, b.sum);

}
END_TEST

static Suite *
histogram_suite(void)
{
    Suite *s = suite_create("histogram");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, buckets_are_dense_and_ordered);
    tcase_add_test(tc, powers_of_two_are_bucket_edges);
    tcase_add_test(tc, uniform_distribution);
    tcase_add_test(tc, log_uniform_distribution);
    tcase_add_test(tc, small_counts_and_ties);
    tcase_add_test(tc, one_microsecond_and_sixty_seconds);
    tcase_add_test(tc, overflow_clamps);
    tcase_add_test(tc, zero_and_empty);
    tcase_add_test(tc, count_below_powers_of_two_is_exact);
    tcase_add_test(tc, merge_and_diff);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return th_run_suite(histogram_suite(), CK_NORMAL);
}
