/* Unit tests for common/: binary codec, buffers, UTF-8, time formats, arena. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "common/pc_alloc.h"
#include "common/pc_arena.h"
#include "common/pc_bin.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_loop_watch.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

static void bin_roundTripsEveryType(void **state)
{
    (void)state;
    struct pc_buf b = {0};
    pc_bin_put_u8(&b, 7);
    pc_bin_put_uv(&b, 0);
    pc_bin_put_uv(&b, 300);
    pc_bin_put_uv(&b, UINT64_MAX);
    pc_bin_put_sv(&b, -5);
    pc_bin_put_sv(&b, INT64_MIN);
    pc_bin_put_be64(&b, 0x0102030405060708ull);
    pc_bin_put_str(&b, "héllo");
    pc_bin_put_str(&b, NULL);

    struct pc_bin_reader r;
    pc_bin_reader_init(&r, b.data, b.len);
    assert_int_equal(pc_bin_get_u8(&r), 7);
    assert_int_equal(pc_bin_get_uv(&r), 0);
    assert_int_equal(pc_bin_get_uv(&r), 300);
    assert_true(pc_bin_get_uv(&r) == UINT64_MAX);
    assert_int_equal(pc_bin_get_sv(&r), -5);
    assert_true(pc_bin_get_sv(&r) == INT64_MIN);
    assert_true(pc_bin_get_be64(&r) == 0x0102030405060708ull);
    char *s = pc_bin_get_str(&r, 100);
    assert_string_equal(s, "héllo");
    pc_free(s);
    s = pc_bin_get_str(&r, 100);
    assert_string_equal(s, "");
    pc_free(s);
    assert_true(pc_bin_at_end(&r));
    pc_buf_free(&b);
}

static void bin_rejectsTruncatedAndOversizedInput(void **state)
{
    (void)state;
    struct pc_buf b = {0};
    pc_bin_put_str(&b, "abcdef");
    /* Every strict prefix must fail cleanly and never read past the end. */
    for (size_t n = 0; n < b.len; n++) {
        struct pc_bin_reader r;
        pc_bin_reader_init(&r, b.data, n);
        char *s = pc_bin_get_str(&r, 100);
        assert_int_equal(r.err, PC_ECORRUPT);
        assert_string_equal(s, "");
        pc_free(s);
    }
    struct pc_bin_reader r;
    pc_bin_reader_init(&r, b.data, b.len);
    char *s = pc_bin_get_str(&r, 3);
    assert_int_equal(r.err, PC_ECORRUPT);
    pc_free(s);
    /* An 11-byte varint is corrupt. */
    const uint8_t bad[11] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    pc_bin_reader_init(&r, bad, sizeof bad);
    pc_bin_get_uv(&r);
    assert_int_equal(r.err, PC_ECORRUPT);
    pc_buf_free(&b);
}

static void buf_growsAndConsumes(void **state)
{
    (void)state;
    struct pc_buf b = {0};
    for (int i = 0; i < 1000; i++)
        pc_buf_printf(&b, "%d,", i);
    assert_true(b.len > 3000);
    assert_int_equal(strncmp(b.data, "0,1,2,", 6), 0);
    pc_buf_consume(&b, 2);
    assert_int_equal(strncmp(b.data, "1,2,", 4), 0);
    assert_int_equal(b.data[b.len], '\0');
    pc_buf_free(&b);
}

static void utf8_acceptsValidRejectsInvalid(void **state)
{
    (void)state;
    assert_true(pc_utf8_valid("plain", 5));
    assert_true(pc_utf8_valid("h\xc3\xa9", 3));
    assert_true(pc_utf8_valid("\xf0\x9f\x98\x80", 4));
    assert_false(pc_utf8_valid("\xc3", 1));             /* truncated */
    assert_false(pc_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(pc_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(pc_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(pc_utf8_valid("\xff", 1));
    assert_int_equal(pc_utf8_count("h\xc3\xa9", 3), 2);
}

static void time_formatsAndParsesIso(void **state)
{
    (void)state;
    char buf[PC_ISO_LEN];
    pc_time_iso(1714726840531000, buf);
    assert_string_equal(buf, "2024-05-03T09:00:40.5310000Z");
    int64_t us;
    assert_true(pc_time_parse_iso("2024-05-03T09:00:40.531Z", &us));
    assert_true(us == 1714726840531000);
    assert_true(pc_time_parse_iso("2024-05-03T09:00:40Z", &us));
    assert_true(pc_time_parse_iso("2024-05-03", &us));
    assert_false(pc_time_parse_iso("2024-13-03", &us));
    assert_false(pc_time_parse_iso("yesterday", &us));
    assert_false(pc_time_parse_iso("2024-05-03T09:00:40Zjunk", &us));
}

static void arena_allocatesAlignedZeroedMemory(void **state)
{
    (void)state;
    struct pc_arena a = {0};
    for (int i = 0; i < 2000; i++) {
        char *p = pc_arena_alloc(&a, (size_t)(i % 37) + 1);
        assert_int_equal((uintptr_t)p % 16, 0);
        for (int j = 0; j < i % 37 + 1; j++)
            assert_int_equal(p[j], 0);
    }
    char *big = pc_arena_alloc(&a, 100000);
    big[99999] = 1;
    assert_string_equal(pc_arena_printf(&a, "%s-%d", "x", 5), "x-5");
    pc_arena_free(&a);
}

static void str_parsesNumbersStrictly(void **state)
{
    (void)state;
    unsigned long long v;
    assert_true(pc_parse_u64("42", 0, 100, &v) && v == 42);
    assert_false(pc_parse_u64("42x", 0, 100, &v));
    assert_false(pc_parse_u64("-1", 0, 100, &v));
    assert_false(pc_parse_u64("101", 0, 100, &v));
    assert_false(pc_parse_u64("", 0, 100, &v));
    assert_false(pc_parse_u64("99999999999999999999999", 0, UINT64_MAX, &v));
}

static void spin_40ms(uv_timer_t *t)
{
    (void)t;
    uint64_t until = pc_mono_ms() + 40;
    while (pc_mono_ms() < until)
        ;
}

static void close_timer(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, NULL);
}

/* A callback that blocks for 40 ms is one pass of at least 40 ms; the 300 ms the loop then
 * waits for its next timer is waiting, in no pass. */
static void loopWatch_countsCallbacksNotWaiting(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    assert_int_equal(pc_loop_watch_start(&loop, 0), 0);
    uv_timer_t spin, later;
    uv_timer_init(&loop, &spin);
    uv_timer_init(&loop, &later);
    uv_timer_start(&spin, spin_40ms, 20, 0); /* not in the first pass, which is not counted */
    uv_timer_start(&later, close_timer, 360, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&spin, NULL);
    pc_loop_watch_stop();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);

    struct pc_loop_stats ls;
    pc_loop_watch_stats(&ls);
    assert_true(ls.passes >= 2);
    assert_true(ls.longest_us >= 38000); /* the spin's clock has whole milliseconds */
    assert_true(ls.longest_us < 250000);
    assert_true(ls.busy_us < 250000);
    uint64_t over_25ms = 0, total = 0;
    for (int k = 0; k <= PC_LOOP_WATCH_BUCKETS; k++) {
        total += ls.bucket[k];
        if (k >= 5) /* buckets above 25 ms */
            over_25ms += ls.bucket[k];
    }
    assert_int_equal(pc_loop_watch_bounds_ms[4], 25);
    assert_int_equal(total, ls.passes);
    assert_true(over_25ms >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bin_roundTripsEveryType),
        cmocka_unit_test(bin_rejectsTruncatedAndOversizedInput),
        cmocka_unit_test(buf_growsAndConsumes),
        cmocka_unit_test(utf8_acceptsValidRejectsInvalid),
        cmocka_unit_test(time_formatsAndParsesIso),
        cmocka_unit_test(arena_allocatesAlignedZeroedMemory),
        cmocka_unit_test(str_parsesNumbersStrictly),
        cmocka_unit_test(loopWatch_countsCallbacksNotWaiting),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
