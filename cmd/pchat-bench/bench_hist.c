/* Log-linear buckets: values below 16 have a bucket each; above, bucket
 * (e - 3) * 16 + (the 4 bits below the leading one), e = floor(log2(v)). The layout is
 * contiguous, so index order is value order and quantiles are one linear walk. */
#include "cmd/pchat-bench/bench_hist.h"

#include <string.h>

static unsigned bucket_of(uint64_t v)
{
    if (v < BENCH_HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    return (e - BENCH_HIST_SUB_BITS + 1) * BENCH_HIST_SUB +
           (unsigned)((v >> (e - BENCH_HIST_SUB_BITS)) - BENCH_HIST_SUB);
}

/* Smallest value of bucket i, and the width of its range. */
static void bucket_range(unsigned i, uint64_t *low, uint64_t *width)
{
    if (i < BENCH_HIST_SUB) {
        *low = i;
        *width = 1;
        return;
    }
    unsigned e = i / BENCH_HIST_SUB + BENCH_HIST_SUB_BITS - 1;
    uint64_t sub = i % BENCH_HIST_SUB;
    *width = 1ull << (e - BENCH_HIST_SUB_BITS);
    *low = (BENCH_HIST_SUB + sub) * *width;
}

void bench_hist_reset(struct bench_hist *h)
{
    memset(h, 0, sizeof *h);
}

void bench_hist_record(struct bench_hist *h, uint64_t ns)
{
    if (h->count == 0 || ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
    h->count++;
    h->sum_ns += (double)ns;
    h->buckets[bucket_of(ns)]++;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min_ns < dst->min_ns)
        dst->min_ns = src->min_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
    dst->count += src->count;
    dst->sum_ns += src->sum_ns;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
}

uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min_ns;
    if (q >= 1)
        return h->max_ns;
    /* The rank of the q-quantile, 1-based, rounded up (p99 of 100 values is the 99th). */
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count)
        rank++;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t low, width;
            bucket_range(i, &low, &width);
            uint64_t mid = low + width / 2;
            if (mid < h->min_ns)
                mid = h->min_ns;
            if (mid > h->max_ns)
                mid = h->max_ns;
            return mid;
        }
    }
    return h->max_ns;
}

double bench_hist_mean(const struct bench_hist *h)
{
    return h->count ? h->sum_ns / (double)h->count : 0;
}
