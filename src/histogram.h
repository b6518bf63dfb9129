/*
 * histogram.h: a fixed-size log-linear histogram of non-negative integer
 * values (latencies in microseconds, for the metrics hub), with an O(1)
 * record that has no floating point and no branch but the clamp.
 *
 * histogram.c explains the buckets.  In short: values below 64 have a
 * bucket each; above, every power of two is cut into 32 buckets of equal
 * width, so a bucket is never wider than 1/32 of its lower bound and the
 * value reported for it (its middle) is within 1.6% of every value in it.
 * Values at or above RL_HIST_MAX (60.8 s in microseconds) are recorded as
 * RL_HIST_MAX, in the top bucket, which holds nothing else.
 *
 * One thread: nothing here locks.  A histogram is plain memory: zero it
 * with rl__hist_init, copy it with memcpy.
 */
#ifndef RL_HISTOGRAM_H
#define RL_HISTOGRAM_H

#include <stdint.h>

#define RL_HIST_SUB_BITS 5                      /* 32 buckets per octave */
#define RL_HIST_SUB (1u << RL_HIST_SUB_BITS)
#define RL_HIST_MAX (58ULL << 20)               /* 60.8 s, in us: the
                                                   lower bound of a bucket */
#define RL_HIST_BUCKETS 699                     /* rl__hist_bucket(MAX)+1 */

/* count and sum are kept apart: side by side, compilers pair their
   updates into slower vector code. */
struct rl_hist {
    uint64_t count;             /* values recorded */
    uint64_t min;               /* UINT64_MAX while empty */
    uint64_t sum;               /* of the values (clamped ones as MAX) */
    uint64_t max;               /* 0 while empty */
    uint64_t b[RL_HIST_BUCKETS]; /* the last: values clamped to MAX */
};

/*
 * The bucket of v (v <= RL_HIST_MAX): with e the position of v's highest
 * set bit and s = max(0, e - 5), the bucket is 32 * s + (v >> s).
 */
static inline unsigned
rl__hist_bucket(uint64_t v)
{
    unsigned e = 63u - (unsigned)__builtin_clzll(v | 1);
    unsigned s = e > RL_HIST_SUB_BITS ? e - RL_HIST_SUB_BITS : 0;

    return (s << RL_HIST_SUB_BITS) + (unsigned)(v >> s);
}

/* Records one value: about 20 instructions, no floating point. */
static inline void
rl__hist_record(struct rl_hist *h, uint64_t v)
{
    v = v < RL_HIST_MAX ? v : RL_HIST_MAX;
    h->b[rl__hist_bucket(v)]++;
    h->count++;
    h->min = v < h->min ? v : h->min;
    h->sum += v;
    h->max = v > h->max ? v : h->max;
}

/* How many values were RL_HIST_MAX or more (recorded as RL_HIST_MAX). */
static inline uint64_t
rl__hist_clamped(const struct rl_hist *h)
{
    return h->b[RL_HIST_BUCKETS - 1];
}

/* An empty histogram. */
void rl__hist_init(struct rl_hist *h);

/* dst += src, bucket by bucket (min and max included). */
void rl__hist_merge(struct rl_hist *dst, const struct rl_hist *src);

/*
 * out = now - then, where `then` is an earlier copy of the same
 * histogram: what was recorded in between.  min and max cannot be
 * subtracted; out keeps now's, which still bound what is in out.
 */
void rl__hist_diff(struct rl_hist *out, const struct rl_hist *now,
                   const struct rl_hist *then);

/* The smallest value of bucket b, and the number of values in it. */
uint64_t rl__hist_bucket_low(unsigned b);
uint64_t rl__hist_bucket_width(unsigned b);

/*
 * The q-quantile (0 <= q <= 1): the value of rank ceil(q * count) (at
 * least 1) in sorted order, reported as the middle of its bucket, kept
 * within [min, max]; so q = 0 gives min and q = 1 gives max.  0 when
 * empty.
 */
uint64_t rl__hist_quantile(const struct rl_hist *h, double q);

/*
 * How many values are below `bound`: exact when bound is the lower bound
 * of a bucket (every power of two is), else the count of the buckets
 * wholly below it.
 */
uint64_t rl__hist_count_below(const struct rl_hist *h, uint64_t bound);

#endif /* RL_HISTOGRAM_H */
