/*
 * histogram.c: the log-linear histogram behind the latency metrics: fixed
 * memory, O(1) record, bounded relative error, in the manner of HdrHistogram
 * (Gil Tene) and of the log-linear histograms of Circonus and DDSketch.
 *
 * Buckets.  Values are integers (microseconds for latencies) from 0 to
 * RL_HIST_MAX = 58 * 2^20 = 60,817,408 (60.8 s); larger ones are clamped
 * to it.  Let e be the position of the highest set bit of v and
 * s = max(0, e - 5).  Then
 *
 *     bucket(v) = 32 * s + (v >> s)
 *
 *   - v < 64 (s = 0): one bucket per value, exact: 0, 1, ..., 63 us;
 *   - 2^e <= v < 2^(e+1), e >= 6: the octave is cut into 32 buckets of
 *     width 2^s, numbered 32 * s + 32 ... 32 * s + 63.
 *
 * Consecutive octaves follow without a gap (the last bucket of one plus
 * one is the first of the next), so the index is a dense array subscript:
 * bucket(RL_HIST_MAX) = 32 * 20 + 58 = 698, hence 699 buckets of 8 bytes
 * (5.5 KiB).  RL_HIST_MAX being the lower bound of the top bucket, that
 * bucket holds the clamped values and nothing else: they are counted
 * without a counter of their own.  A
 * bucket's width is at most 1/32 of its lower bound; the value reported
 * for a bucket is its middle, within 1/64 (1.6%) of any value in it, and
 * quantiles are further kept within the exact min and max.  Recording is
 * a clamp, a count-leading-zeros, a subtraction, two shifts, an increment
 * and the count, sum, min and max: no division, no floating point, no
 * loop.
 *
 * Bucket edges fall on every power of two, so a Prometheus `le` bound of
 * 2^k microseconds is answered exactly (rl__hist_count_below).
 */
#include <string.h>

#include "histogram.h"

_Static_assert(RL_HIST_BUCKETS == 32 * 20 + (RL_HIST_MAX >> 20) + 1,
               "RL_HIST_BUCKETS must be bucket(RL_HIST_MAX) + 1");

void
rl__hist_init(struct rl_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void
rl__hist_merge(struct rl_hist *dst, const struct rl_hist *src)
{
    unsigned i;

    for (i = 0; i < RL_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

void
rl__hist_diff(struct rl_hist *out, const struct rl_hist *now,
              const struct rl_hist *then)
{
    unsigned i;

    for (i = 0; i < RL_HIST_BUCKETS; i++)
        out->b[i] = now->b[i] - then->b[i];
    out->count = now->count - then->count;
    out->sum = now->sum - then->sum;
    out->min = now->min;
    out->max = now->max;
}

/* ---- bucket edges ---- */

static unsigned
bucket_shift(unsigned b)
{
    return b < 2 * RL_HIST_SUB ? 0 : (b >> RL_HIST_SUB_BITS) - 1;
}

uint64_t
rl__hist_bucket_low(unsigned b)
{
    unsigned s = bucket_shift(b);

    if (s == 0)
        return b;
    return (uint64_t)((b & (RL_HIST_SUB - 1)) | RL_HIST_SUB) << s;
}

uint64_t
rl__hist_bucket_width(unsigned b)
{
    return (uint64_t)1 << bucket_shift(b);
}

/* ---- reading ---- */

uint64_t
rl__hist_quantile(const struct rl_hist *h, double q)
{
    uint64_t rank, seen = 0, v;
    double want;
    unsigned i;

    if (h->count == 0)
        return 0;
    if (!(q > 0))
        return h->min;
    if (q >= 1)
        return h->max;
    want = q * (double)h->count;
    rank = (uint64_t)want; /* ceil, without libm */
    if ((double)rank < want || rank < 1)
        rank++;
    for (i = 0; i < RL_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank)
            break;
    }
    if (i == RL_HIST_BUCKETS)
        return h->max;
    v = rl__hist_bucket_low(i) + (rl__hist_bucket_width(i) - 1) / 2;
    if (v < h->min)
        v = h->min;
    if (v > h->max)
        v = h->max;
    return v;
}

uint64_t
rl__hist_count_below(const struct rl_hist *h, uint64_t bound)
{
    unsigned end, i;
    uint64_t n = 0;

    if (bound > RL_HIST_MAX)
        return h->count;
    end = rl__hist_bucket(bound);
    for (i = 0; i < end; i++)
        n += h->b[i];
    return n;
}
