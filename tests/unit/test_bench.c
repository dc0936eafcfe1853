/* Unit tests for pchat-bench's pieces: the latency histogram and the /proc readers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

#include "cmd/pchat-bench/bench_hist.h"
#include "cmd/pchat-bench/bench_proc.h"

/* Within the histogram's promise: half a bucket, 1/32 of the value. */
static void assert_close(uint64_t got, uint64_t want)
{
    uint64_t diff = got > want ? got - want : want - got;
    if (diff * 32 > want + 32)
        fail_msg("got %llu, want %llu (±3%%)", (unsigned long long)got, (unsigned long long)want);
}

static void hist_quantilesOfUniformValues(void **state)
{
    (void)state;
    static struct bench_hist h;
    bench_hist_reset(&h);
    /* 1 µs … 100 ms in 1 µs steps: the q-quantile is q * 100 ms. */
    for (uint64_t v = 1; v <= 100000; v++)
        bench_hist_record(&h, v * 1000);
    assert_int_equal(h.count, 100000);
    assert_int_equal(h.min_ns, 1000);
    assert_int_equal(h.max_ns, 100000000);
    assert_close(bench_hist_quantile(&h, 0.5), 50000000);
    assert_close(bench_hist_quantile(&h, 0.9), 90000000);
    assert_close(bench_hist_quantile(&h, 0.99), 99000000);
    assert_int_equal(bench_hist_quantile(&h, 1.0), 100000000);
    assert_int_equal(bench_hist_quantile(&h, 0.0), 1000);
    assert_close((uint64_t)bench_hist_mean(&h), 50000500);
}

static void hist_exactForSmallValuesAndClampedToMinMax(void **state)
{
    (void)state;
    static struct bench_hist h;
    bench_hist_reset(&h);
    assert_int_equal(bench_hist_quantile(&h, 0.5), 0); /* empty */
    for (uint64_t v = 0; v < 16; v++)
        bench_hist_record(&h, v);
    assert_int_equal(bench_hist_quantile(&h, 0.5), 7); /* below 16 every value has a bucket */
    bench_hist_reset(&h);
    bench_hist_record(&h, 1000003);
    /* One value: every quantile is that value, not its bucket's midpoint. */
    assert_int_equal(bench_hist_quantile(&h, 0.5), 1000003);
    assert_int_equal(bench_hist_quantile(&h, 0.99), 1000003);
    bench_hist_record(&h, UINT64_MAX); /* the top bucket exists */
    assert_int_equal(bench_hist_quantile(&h, 1.0), UINT64_MAX);
}

static void hist_mergeAddsCounts(void **state)
{
    (void)state;
    static struct bench_hist a, b;
    bench_hist_reset(&a);
    bench_hist_reset(&b);
    for (int i = 0; i < 90; i++)
        bench_hist_record(&a, 1000000);
    for (int i = 0; i < 10; i++)
        bench_hist_record(&b, 50000000);
    bench_hist_merge(&a, &b);
    assert_int_equal(a.count, 100);
    assert_close(bench_hist_quantile(&a, 0.9), 1000000);
    assert_close(bench_hist_quantile(&a, 0.91), 50000000);
    assert_int_equal(a.max_ns, 50000000);
}

static void proc_readsOwnProcessAndParsesPidLists(void **state)
{
    (void)state;
    struct bench_proc_sample s;
    assert_true(bench_proc_sample(getpid(), &s));
    assert_true(s.rss_kb > 0);
    assert_true(s.hwm_kb >= s.rss_kb);
    assert_false(bench_proc_sample(0, &s));
    pid_t pids[3];
    char why[100];
    assert_int_equal(bench_proc_parse_pids("12,345,6789", pids, 3, why, sizeof why), 3);
    assert_int_equal(pids[1], 345);
    assert_int_equal(bench_proc_parse_pids("12,x", pids, 3, why, sizeof why), -1);
    assert_non_null(strstr(why, "'x'"));
    assert_int_equal(bench_proc_parse_pids("1,2,3,4", pids, 3, why, sizeof why), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hist_quantilesOfUniformValues),
        cmocka_unit_test(hist_exactForSmallValuesAndClampedToMinMax),
        cmocka_unit_test(hist_mergeAddsCounts),
        cmocka_unit_test(proc_readsOwnProcessAndParsesPidLists),
    };
    return cmocka_run_group_tests_name("bench", tests, NULL, NULL);
}
