/* Unit tests for cluster/roomlog: per-room sequence numbers, stored message records and
 * history reads, against a real store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/roomlog.h"
#include "common/pc_arena.h"
#include "common/pc_bin.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_time.h"
#include "storage/store.h"
#include "storage/store_keys.h"

#define AUTHOR "sip:alice@example.test"

struct fixture {
    char dir[64];
    char db[96];
    struct store *st;
    struct roomlog log;
};

static void rm_rf(const char *path)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
}

static void open_store(struct fixture *fx)
{
    char err[256];
    struct store_options opt = {.create_if_missing = true, .block_cache_mb = 1};
    if (store_open(fx->db, &opt, &fx->st, err, sizeof err) != 0)
        fail_msg("store_open: %s", err);
    roomlog_init(&fx->log, fx->st);
}

static void close_store(struct fixture *fx)
{
    roomlog_free(&fx->log);
    store_close(fx->st);
    fx->st = NULL;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/pchat-roomlog-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->db, sizeof fx->db, "%s/db", fx->dir);
    open_store(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    close_store(fx);
    rm_rf(fx->dir);
    free(fx);
    return 0;
}

/* Appends n messages "<room>:<seq>" to room in one batch and commits it like the cluster
 * does (durable = last after the write). Returns the first seq. */
static uint64_t post(struct fixture *fx, uint64_t room, unsigned n)
{
    struct store_batch *b = store_batch_new(fx->st);
    uint64_t first = 0;
    for (unsigned i = 0; i < n; i++) {
        struct roomlog_room *r = roomlog_room(&fx->log, room);
        char text[48];
        snprintf(text, sizeof text, "%llu:%llu", (unsigned long long)room,
                 (unsigned long long)(r->last + 1));
        uint64_t seq = roomlog_append(&fx->log, b, room, (int64_t)(r->last + 1) * 1000, AUTHOR, text);
        if (i == 0)
            first = seq;
    }
    assert_int_equal(store_write(fx->st, b, false), 0);
    store_batch_free(b);
    struct roomlog_room *r = roomlog_room(&fx->log, room);
    r->durable = r->last;
    return first;
}

/* Reads history and checks it is exactly seqs first..last of room, oldest first. */
static void assert_history(struct store *st, uint64_t room, uint64_t before, uint64_t upto,
                           uint32_t count, uint64_t first, uint64_t last)
{
    struct pc_arena arena = {0};
    struct room_msg *msgs = NULL;
    size_t n = 99;
    assert_int_equal(roomlog_read(st, room, before, upto, count, &arena, &msgs, &n), 0);
    size_t want = last >= first ? (size_t)(last - first + 1) : 0;
    if (n != want)
        fail_msg("room %llu before %llu upto %llu count %u: %zu messages, expected %zu",
                 (unsigned long long)room, (unsigned long long)before, (unsigned long long)upto,
                 count, n, want);
    for (size_t i = 0; i < n; i++) {
        const struct room_msg *m = &msgs[i];
        char text[48];
        snprintf(text, sizeof text, "%llu:%llu", (unsigned long long)room,
                 (unsigned long long)(first + i));
        assert_true(m->room_no == room);
        assert_true(m->seq == first + i);
        assert_true(m->ts_us == (int64_t)(first + i) * 1000);
        assert_string_equal(m->author, AUTHOR);
        assert_string_equal(m->text, text);
    }
    pc_arena_free(&arena);
}

static void append_numbersFromOneWithoutGaps(void **state)
{
    struct fixture *fx = *state;
    struct roomlog_room *r = roomlog_room(&fx->log, 5);
    assert_true(r->last == 0 && r->durable == 0);

    struct store_batch *b = store_batch_new(fx->st);
    for (uint64_t want = 1; want <= 100; want++)
        assert_true(roomlog_append(&fx->log, b, 5, 0, AUTHOR, "x") == want);
    /* Rooms count independently. */
    assert_true(roomlog_append(&fx->log, b, 6, 0, AUTHOR, "x") == 1);
    assert_true(roomlog_append(&fx->log, b, 5, 0, AUTHOR, "x") == 101);
    /* Assigned is not durable: that is the caller's to say once the batch is written. */
    assert_true(r->last == 101 && r->durable == 0);
    assert_ptr_equal(roomlog_room(&fx->log, 5), r);

    /* Each append is the message plus the room's new last seq, in the same batch. */
    assert_int_equal(store_batch_count(b), 2 * 102);
    assert_int_equal(store_write(fx->st, b, false), 0);
    store_batch_free(b);
    uint8_t k[16];
    struct pc_buf v = {0};
    assert_int_equal(store_get(fx->st, STORE_CF_STATE, k, store_key_room_last(k, 5), &v), 0);
    assert_int_equal(v.len, 8);
    assert_true(pc_be64_read((const uint8_t *)v.data) == 101);
    store_key_msg(k, 5, 101);
    assert_int_equal(store_get(fx->st, STORE_CF_MSGS, k, STORE_MSG_KEY_LEN, &v), 0);
    store_key_msg(k, 5, 102);
    assert_int_equal(store_get(fx->st, STORE_CF_MSGS, k, STORE_MSG_KEY_LEN, &v), PC_ENOTFOUND);
    pc_buf_free(&v);
}

/* A restarted node continues each room's numbering where the store left it. */
static void append_continuesAfterReopen(void **state)
{
    struct fixture *fx = *state;
    post(fx, 1, 7);
    post(fx, 2, 3);
    close_store(fx);
    open_store(fx);
    struct roomlog_room *r = roomlog_room(&fx->log, 1);
    assert_true(r->last == 7 && r->durable == 7);
    assert_true(post(fx, 1, 2) == 8);
    assert_true(post(fx, 2, 1) == 4);
    assert_true(post(fx, 3, 1) == 1);
    assert_history(fx->st, 1, 0, 0, 100, 1, 9);
    assert_history(fx->st, 2, 0, 0, 100, 1, 4);
}

static void read_returnsNewestOldestFirst(void **state)
{
    struct fixture *fx = *state;
    /* Neighbouring rooms are interleaved in time and adjacent in key space. */
    for (int i = 0; i < 5; i++) {
        post(fx, 9, 2);
        post(fx, 10, 4);
        post(fx, 11, 1);
    }
    assert_history(fx->st, 10, 0, 0, 3, 18, 20);   /* the newest 3 of 20 */
    assert_history(fx->st, 10, 0, 0, 20, 1, 20);   /* exactly all */
    assert_history(fx->st, 10, 0, 0, 1000, 1, 20); /* more asked than there are */
    assert_history(fx->st, 9, 0, 0, 1, 10, 10);
    assert_history(fx->st, 11, 0, 0, 5, 1, 5);
    assert_history(fx->st, 12, 0, 0, 5, 1, 0); /* a room without messages */
}

static void read_honoursBeforeAndUpto(void **state)
{
    struct fixture *fx = *state;
    post(fx, 4, 30);
    post(fx, 5, 3);
    /* before: strictly older than (paging backwards through history). */
    assert_history(fx->st, 4, 11, 0, 5, 6, 10);
    assert_history(fx->st, 4, 3, 0, 5, 1, 2);
    assert_history(fx->st, 4, 1, 0, 5, 1, 0);
    assert_history(fx->st, 4, 1000, 0, 2, 29, 30);
    /* upto: at most this seq (a joiner sees history up to its join point). */
    assert_history(fx->st, 4, 0, 12, 4, 9, 12);
    assert_history(fx->st, 4, 0, 1, 4, 1, 1);
    assert_history(fx->st, 4, 0, 500, 2, 29, 30);
    /* Both: the tighter one wins, whichever it is. */
    assert_history(fx->st, 4, 20, 12, 3, 10, 12);
    assert_history(fx->st, 4, 8, 12, 3, 5, 7);
    assert_history(fx->st, 4, 13, 12, 30, 1, 12); /* before = upto + 1: the same bound */
}

static void read_countZeroReturnsNothing(void **state)
{
    struct fixture *fx = *state;
    post(fx, 1, 3);
    struct pc_arena arena = {0};
    struct room_msg *msgs = (struct room_msg *)&arena;
    size_t n = 99;
    assert_int_equal(roomlog_read(fx->st, 1, 0, 0, 0, &arena, &msgs, &n), 0);
    assert_null(msgs);
    assert_int_equal(n, 0);
    pc_arena_free(&arena);
}

/* Messages that fail their commit are never in the store, so history can never show them:
 * the caller hands the numbers back and they are used again. */
static void read_seesOnlyWrittenBatches(void **state)
{
    struct fixture *fx = *state;
    post(fx, 1, 2);
    struct store_batch *b = store_batch_new(fx->st);
    assert_true(roomlog_append(&fx->log, b, 1, 3000, AUTHOR, "lost") == 3);
    assert_history(fx->st, 1, 0, 0, 10, 1, 2);
    store_batch_free(b); /* the write "failed" */
    struct roomlog_room *r = roomlog_room(&fx->log, 1);
    r->last = r->durable;
    assert_true(post(fx, 1, 1) == 3);
    assert_history(fx->st, 1, 0, 0, 10, 1, 3);
}

static void msg_encodingRoundTripsAndRejectsDamage(void **state)
{
    (void)state;
    struct pc_buf b = {0};
    struct pc_arena arena = {0};
    struct room_msg m;
    roomlog_encode_msg(-42, AUTHOR, "h\xc3\xa9llo", &b);
    assert_int_equal(roomlog_decode_msg(b.data, b.len, &m, &arena), 0);
    assert_true(m.ts_us == -42);
    assert_string_equal(m.author, AUTHOR);
    assert_string_equal(m.text, "h\xc3\xa9llo");
    /* Every truncation is corrupt; so is an unknown version. */
    for (size_t len = 0; len < b.len; len++)
        assert_int_equal(roomlog_decode_msg(b.data, len, &m, &arena), PC_ECORRUPT);
    b.data[0] = 2;
    assert_int_equal(roomlog_decode_msg(b.data, b.len, &m, &arena), PC_ECORRUPT);
    /* An empty text is a message too. */
    pc_buf_reset(&b);
    roomlog_encode_msg(0, AUTHOR, "", &b);
    assert_int_equal(roomlog_decode_msg(b.data, b.len, &m, &arena), 0);
    assert_string_equal(m.text, "");
    pc_buf_free(&b);
    pc_arena_free(&arena);
}

/* A damaged record makes the read fail rather than return a wrong message. */
static void read_reportsCorruptRecords(void **state)
{
    struct fixture *fx = *state;
    post(fx, 1, 3);
    struct store_batch *b = store_batch_new(fx->st);
    uint8_t k[STORE_MSG_KEY_LEN];
    store_key_msg(k, 1, 2);
    store_batch_put(b, STORE_CF_MSGS, k, sizeof k, "\x09junk", 5);
    assert_int_equal(store_write(fx->st, b, false), 0);
    store_batch_free(b);
    struct pc_arena arena = {0};
    struct room_msg *msgs = NULL;
    size_t n = 0;
    assert_int_equal(roomlog_read(fx->st, 1, 0, 0, 10, &arena, &msgs, &n), PC_ECORRUPT);
    assert_int_equal(n, 0);
    /* Above the damage, history still reads. */
    assert_int_equal(roomlog_read(fx->st, 1, 0, 0, 1, &arena, &msgs, &n), 0);
    assert_int_equal(n, 1);
    assert_true(msgs[0].seq == 3);
    pc_arena_free(&arena);
}

/* Paged history (issue 7 item 5) on a room of a million messages between two busy
 * neighbours: any page, from the newest back to the very first, is one seek and a walk of
 * the page (the key order), never a scan from the start. The times are printed, not
 * asserted (figures belong to benchmarks). */
static void read_pagesAnywhereInAMillion(void **state)
{
    struct fixture *fx = *state;
    const unsigned total = 1000000, per_batch = 20000;
    post(fx, 6, 100);
    for (unsigned i = 0; i < total / per_batch; i++)
        post(fx, 7, per_batch);
    post(fx, 8, 100);
    assert_int_equal(store_sync(fx->st), 0);
    static const uint64_t befores[] = {0, 999951, 500001, 1001, 51};
    for (size_t i = 0; i < sizeof befores / sizeof befores[0]; i++) {
        uint64_t t0 = pc_mono_ns();
        uint64_t last = befores[i] ? befores[i] - 1 : total;
        assert_history(fx->st, 7, befores[i], 0, 50, last - 49, last);
        fprintf(stderr, "  page of 50 before id %llu: %.0f us\n",
                (unsigned long long)befores[i], (double)(pc_mono_ns() - t0) / 1000.0);
    }
    assert_history(fx->st, 7, 21, 0, 50, 1, 20); /* the oldest, shorter page */
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(append_numbersFromOneWithoutGaps),
        T(append_continuesAfterReopen),
        T(read_returnsNewestOldestFirst),
        T(read_honoursBeforeAndUpto),
        T(read_countZeroReturnsNothing),
        T(read_seesOnlyWrittenBatches),
        cmocka_unit_test(msg_encodingRoundTripsAndRejectsDamage),
        T(read_reportsCorruptRecords),
        T(read_pagesAnywhereInAMillion),
    };
#undef T
    return cmocka_run_group_tests_name("roomlog", tests, NULL, NULL);
}
