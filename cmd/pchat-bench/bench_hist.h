/* bench_hist: a small log-linear latency histogram (nanoseconds) for pchat-bench. */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

/* 16 linear sub-buckets per power of two: a quantile is reported as its bucket's midpoint,
 * within 1/32 (about 3 %) of the true value, from 1 ns up to 2^64 ns, in a fixed 7.8 KiB array with
 * no allocation, so recording costs a few instructions on the load generator's hot path. */
#define BENCH_HIST_SUB_BITS 4
#define BENCH_HIST_SUB (1u << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_BUCKETS ((64 - BENCH_HIST_SUB_BITS + 1) * BENCH_HIST_SUB)

struct bench_hist {
    uint64_t count;
    uint64_t min_ns, max_ns; /* exact */
    double sum_ns;           /* for the mean */
    uint64_t buckets[BENCH_HIST_BUCKETS];
};

void bench_hist_reset(struct bench_hist *h);
void bench_hist_record(struct bench_hist *h, uint64_t ns);
/* Adds every value of src to dst. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/* The value at quantile q (0..1): the midpoint of the bucket holding it, clamped to the
 * exact min/max. 0 when empty. */
uint64_t bench_hist_quantile(const struct bench_hist *h, double q);
double bench_hist_mean(const struct bench_hist *h);

#endif
