/* Unit tests for pchat-bench's pieces: the latency histogram, the /proc readers and the
 * delivery scanner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

#include "cmd/pchat-bench/bench_hist.h"
#include "cmd/pchat-bench/bench_proc.h"
#include "cmd/pchat-bench/bench_scan.h"
#include "chat/xccos/xccos.h"
#include "common/pc_buf.h"

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

/* The scanner reads what the server's own encoder writes, or declines. */
static void scan_readsServerGrpchatOrDeclines(void **state)
{
    (void)state;
    struct xccos_msg m;
    xccos_msg_init(&m, XCCOS_KIND_GRPCHAT, XCCOS_OP_GRPCHAT);
    m.chat.chan_uri = "ma-chan://example.test/1234";
    m.chat.author = "sip:alice@example.test";
    m.chat.ts_us = 1700000000123456;
    m.chat.msg_id = 18446744073709551615ull;
    m.chat.text = "bench r1 a7 n42 t123 xxxx";
    struct pc_buf b = {0};
    xccos_encode(&m, &b);
    uint64_t id = 0;
    char text[64];
    assert_true(bench_scan_grpchat(b.data, b.len, &id, text, sizeof text));
    assert_true(id == 18446744073709551615ull);
    assert_string_equal(text, "bench r1 a7 n42 t123 xxxx");
    assert_false(bench_scan_grpchat(b.data, b.len, &id, text, 10)); /* text longer than cap */
    pc_buf_free(&b);

    m.chat.text = "fish & chips"; /* entities: the full decoder's job */
    xccos_encode(&m, &b);
    assert_false(bench_scan_grpchat(b.data, b.len, &id, text, sizeof text));
    pc_buf_free(&b);
    m.chat.text = "";
    xccos_encode(&m, &b);
    if (bench_scan_grpchat(b.data, b.len, &id, text, sizeof text))
        assert_string_equal(text, "");
    pc_buf_free(&b);
    xccos_msg_free(&m);

    static const char *const other[] = {
        "<xccos><rpl id=\"rpl:join\"/></xccos>",
        "<xccos><grpchat id=\"grpchat\" chanUri=\"x\"><chat>no id</chat></grpchat></xccos>",
        "<xccos><grpchat id=\"grpchat\" msgid=\"12a\"><chat>x</chat></grpchat></xccos>",
        "<xccos><grpchat id=\"grpchat\" msgid=\"99999999999999999999\"><chat>x</chat></grpchat>",
        "<xccos><grpchat id=\"grpchat\" msgid=\"5\"><chat>cut",
        "<xccos><grpchat msgid=\"5\"",
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        assert_false(bench_scan_grpchat(other[i], strlen(other[i]), &id, text, sizeof text));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hist_quantilesOfUniformValues),
        cmocka_unit_test(hist_exactForSmallValuesAndClampedToMinMax),
        cmocka_unit_test(hist_mergeAddsCounts),
        cmocka_unit_test(proc_readsOwnProcessAndParsesPidLists),
        cmocka_unit_test(scan_readsServerGrpchatOrDeclines),
    };
    return cmocka_run_group_tests_name("bench", tests, NULL, NULL);
}
