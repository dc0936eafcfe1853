/* Unit tests for storage/store and store_keys: a real RocksDB in a temp dir — atomic batches,
 * column families, bounded iterators, persistence across reopen, and the key encodings
 * whose byte order must equal numeric order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_str.h"
#include "storage/store.h"
#include "storage/store_keys.h"

/* Each test gets its own temp dir with the database at <dir>/db. */
struct fixture {
    char dir[64];
    char db[96];
    struct store *st;
};

static const struct store_options CREATE = {.create_if_missing = true, .block_cache_mb = 1};
static const struct store_options EXISTING = {.create_if_missing = false};

static void rm_rf(const char *path)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
}

static struct store *must_open(const char *path, const struct store_options *opt)
{
    struct store *st = NULL;
    char err[512] = "";
    int rc = store_open(path, opt, &st, err, sizeof err);
    if (rc != 0)
        fail_msg("store_open(%s): %s: %s", path, pc_errname(rc), err);
    assert_non_null(st);
    return st;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/pchat-store-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->db, sizeof fx->db, "%s/db", fx->dir);
    fx->st = must_open(fx->db, &CREATE);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    store_close(fx->st);
    rm_rf(fx->dir);
    free(fx);
    return 0;
}

static void put1(struct store *st, enum store_cf cf, const char *k, const char *v)
{
    struct store_batch *b = store_batch_new(st);
    store_batch_put(b, cf, k, strlen(k), v, strlen(v));
    assert_int_equal(store_write(st, b, false), 0);
    store_batch_free(b);
}

/* Asserts key k holds exactly v (NULL = absent). */
static void assert_value(struct store *st, enum store_cf cf, const void *k, size_t klen,
                         const char *v)
{
    struct pc_buf out = {0};
    pc_buf_puts(&out, "stale content that must be replaced");
    int rc = store_get(st, cf, k, klen, &out);
    if (v == NULL) {
        assert_int_equal(rc, PC_ENOTFOUND);
    } else {
        assert_int_equal(rc, 0);
        assert_int_equal(out.len, strlen(v));
        assert_memory_equal(out.data, v, out.len);
    }
    pc_buf_free(&out);
}

#define assert_str_value(st, cf, k, v) assert_value((st), (cf), (k), strlen(k), (v))

static void open_createsAndReopenKeepsData(void **state)
{
    struct fixture *fx = *state;
    put1(fx->st, STORE_CF_META, "k", "v1");
    put1(fx->st, STORE_CF_FILES, "blob", "bytes");
    /* An unsynced write is still in the WAL, which reopen replays. */
    store_close(fx->st);
    fx->st = must_open(fx->db, &EXISTING);
    assert_str_value(fx->st, STORE_CF_META, "k", "v1");
    assert_str_value(fx->st, STORE_CF_FILES, "blob", "bytes");
    assert_int_equal(store_sync(fx->st), 0);
}

static void open_reportsPathAndReasonOnFailure(void **state)
{
    struct fixture *fx = *state;
    struct store *st = (struct store *)fx;
    char err[512] = "";
    char path[160];

    /* Missing database without create_if_missing. */
    snprintf(path, sizeof path, "%s/absent", fx->dir);
    assert_int_equal(store_open(path, &EXISTING, &st, err, sizeof err), PC_EIO);
    assert_ptr_equal(st, (struct store *)fx); /* *out untouched on failure */
    assert_non_null(strstr(err, "cannot open the database at "));
    assert_non_null(strstr(err, path));
    assert_null(strchr(err, '\n'));

    /* A path below a regular file can never be created. */
    snprintf(path, sizeof path, "%s/file", fx->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/file/db", fx->dir);
    err[0] = '\0';
    assert_int_equal(store_open(path, &CREATE, &st, err, sizeof err), PC_EIO);
    assert_non_null(strstr(err, path));

    /* The database is locked by the open handle in the fixture. */
    err[0] = '\0';
    assert_int_equal(store_open(fx->db, &CREATE, &st, err, sizeof err), PC_EIO);
    assert_non_null(strstr(err, fx->db));
    assert_non_null(strstr(err, "lock"));

    /* A short buffer gets a truncated, terminated message. */
    char small[16];
    assert_int_equal(store_open(fx->db, &CREATE, &st, small, sizeof small), PC_EIO);
    assert_int_equal(strlen(small), sizeof small - 1);
}

/* Nothing of a batch is visible before store_write, all of it after. */
static void batch_isAtomicAcrossColumnFamilies(void **state)
{
    struct fixture *fx = *state;
    put1(fx->st, STORE_CF_META, "old", "x");
    struct store_batch *b = store_batch_new(fx->st);
    assert_int_equal(store_batch_count(b), 0);
    store_batch_put(b, STORE_CF_META, "a", 1, "meta-a", 6);
    store_batch_put(b, STORE_CF_STATE, "a", 1, "state-a", 7);
    store_batch_put(b, STORE_CF_COMPL, "c", 1, "", 0); /* empty value is a value */
    store_batch_delete(b, STORE_CF_META, "old", 3);
    assert_int_equal(store_batch_count(b), 4);

    assert_str_value(fx->st, STORE_CF_META, "a", NULL);
    assert_str_value(fx->st, STORE_CF_META, "old", "x");
    assert_int_equal(store_write(fx->st, b, true), 0);
    /* Same key, different families, different values. */
    assert_str_value(fx->st, STORE_CF_META, "a", "meta-a");
    assert_str_value(fx->st, STORE_CF_STATE, "a", "state-a");
    assert_str_value(fx->st, STORE_CF_MSGS, "a", NULL);
    assert_str_value(fx->st, STORE_CF_COMPL, "c", "");
    assert_str_value(fx->st, STORE_CF_META, "old", NULL);

    /* A cleared batch writes nothing. */
    store_batch_clear(b);
    store_batch_put(b, STORE_CF_META, "a", 1, "changed", 7);
    store_batch_clear(b);
    assert_int_equal(store_batch_count(b), 0);
    assert_int_equal(store_write(fx->st, b, false), 0);
    assert_str_value(fx->st, STORE_CF_META, "a", "meta-a");

    /* Later operations in a batch win over earlier ones on the same key. */
    store_batch_put(b, STORE_CF_META, "z", 1, "first", 5);
    store_batch_put(b, STORE_CF_META, "z", 1, "second", 6);
    assert_int_equal(store_write(fx->st, b, false), 0);
    assert_str_value(fx->st, STORE_CF_META, "z", "second");
    store_batch_free(b);
}

static void batch_deleteRangeIsHalfOpen(void **state)
{
    struct fixture *fx = *state;
    struct store_batch *b = store_batch_new(fx->st);
    const char *keys[] = {"k1", "k2", "k3", "k4"};
    for (int i = 0; i < 4; i++)
        store_batch_put(b, STORE_CF_STATE, keys[i], 2, "v", 1);
    assert_int_equal(store_write(fx->st, b, false), 0);
    store_batch_clear(b);
    store_batch_delete_range(b, STORE_CF_STATE, "k2", 2, "k4", 2);
    assert_int_equal(store_write(fx->st, b, false), 0);
    store_batch_free(b);
    assert_str_value(fx->st, STORE_CF_STATE, "k1", "v");
    assert_str_value(fx->st, STORE_CF_STATE, "k2", NULL);
    assert_str_value(fx->st, STORE_CF_STATE, "k3", NULL);
    assert_str_value(fx->st, STORE_CF_STATE, "k4", "v");
}

/* Collects the seqs an iterator yields from its current position, forwards or backwards. */
static size_t collect_seqs(struct store_iter *it, bool backwards, uint64_t *out, size_t max)
{
    size_t n = 0;
    for (; store_iter_valid(it) && n < max; backwards ? store_iter_prev(it) : store_iter_next(it)) {
        struct pc_str k = store_iter_key(it);
        assert_int_equal(k.len, STORE_MSG_KEY_LEN);
        uint64_t room, seq;
        store_key_msg_parse((const uint8_t *)k.p, &room, &seq);
        assert_true(room == 7);
        struct pc_str v = store_iter_value(it);
        char want[32];
        snprintf(want, sizeof want, "m%llu", (unsigned long long)seq);
        assert_true(pc_str_eq(v, pc_str_c(want)));
        out[n++] = seq;
    }
    assert_int_equal(store_iter_status(it), 0);
    return n;
}

/* The message-log access pattern: rooms 6, 7 and 8 side by side, iteration bounded to room 7. */
static void iter_staysWithinBounds(void **state)
{
    struct fixture *fx = *state;
    struct store_batch *b = store_batch_new(fx->st);
    for (uint64_t room = 6; room <= 8; room++)
        for (uint64_t seq = 1; seq <= 300; seq += 1 + seq / 50) {
            uint8_t k[STORE_MSG_KEY_LEN];
            char v[32];
            store_key_msg(k, room, seq);
            snprintf(v, sizeof v, "m%llu", (unsigned long long)seq);
            store_batch_put(b, STORE_CF_MSGS, k, sizeof k, v, strlen(v));
        }
    assert_int_equal(store_write(fx->st, b, false), 0);
    store_batch_free(b);

    uint8_t lo[STORE_MSG_KEY_LEN], hi[STORE_MSG_KEY_LEN], at[STORE_MSG_KEY_LEN];
    store_key_msg(lo, 7, 0);
    store_key_msg(hi, 7, 5);
    struct store_iter *it = store_iter_new(fx->st, STORE_CF_MSGS, lo, sizeof lo, hi, sizeof hi);
    memset(lo, 0xff, sizeof lo); /* the bounds were copied */
    memset(hi, 0, sizeof hi);
    uint64_t seqs[400];
    store_iter_first(it);
    assert_int_equal(collect_seqs(it, false, seqs, 400), 4);
    assert_true(seqs[0] == 1 && seqs[1] == 2 && seqs[2] == 3 && seqs[3] == 4);
    store_iter_last(it);
    assert_int_equal(collect_seqs(it, true, seqs, 400), 4);
    assert_true(seqs[0] == 4 && seqs[3] == 1);
    store_iter_free(it);

    /* The whole room: upper bound = next room's first key. */
    store_key_msg(lo, 7, 0);
    store_key_msg(hi, 8, 0);
    it = store_iter_new(fx->st, STORE_CF_MSGS, lo, sizeof lo, hi, sizeof hi);
    store_iter_last(it);
    size_t n = collect_seqs(it, true, seqs, 400);
    assert_true(seqs[0] > 250);
    for (size_t i = 1; i < n; i++)
        assert_true(seqs[i] < seqs[i - 1]);

    /* seek: first key >= target; seek_for_prev: last key <= target. 59 is absent (only
     * even seqs from 50 to 98), so they land on either side of it. */
    store_key_msg(at, 7, 59);
    store_iter_seek(it, at, sizeof at);
    assert_int_equal(collect_seqs(it, false, seqs, 1), 1);
    assert_true(seqs[0] == 60);
    store_iter_seek_for_prev(it, at, sizeof at);
    assert_int_equal(collect_seqs(it, true, seqs, 1), 1);
    assert_true(seqs[0] == 58);
    store_key_msg(at, 7, 58); /* present: both land on it */
    store_iter_seek_for_prev(it, at, sizeof at);
    assert_int_equal(collect_seqs(it, true, seqs, 1), 1);
    assert_true(seqs[0] == 58);
    /* Past the last key of the range: nothing, even though room 8 follows. */
    store_key_msg(at, 7, 1000);
    store_iter_seek(it, at, sizeof at);
    assert_false(store_iter_valid(it));
    store_iter_free(it);
}

/* An iterator sees the database as it was when created. */
static void iter_unboundedSeesWholeFamilyInOrder(void **state)
{
    struct fixture *fx = *state;
    put1(fx->st, STORE_CF_META, "b", "2");
    put1(fx->st, STORE_CF_META, "a", "1");
    put1(fx->st, STORE_CF_META, "c", "3");
    put1(fx->st, STORE_CF_STATE, "0", "other family");
    struct store_iter *it = store_iter_new(fx->st, STORE_CF_META, NULL, 0, NULL, 0);
    put1(fx->st, STORE_CF_META, "d", "written after the iterator");
    struct pc_buf seen = {0};
    for (store_iter_first(it); store_iter_valid(it); store_iter_next(it)) {
        struct pc_str k = store_iter_key(it), v = store_iter_value(it);
        pc_buf_append(&seen, k.p, k.len);
        pc_buf_append(&seen, v.p, v.len);
    }
    assert_int_equal(store_iter_status(it), 0);
    assert_string_equal(seen.data, "a1b2c3");
    store_iter_free(it);
    pc_buf_free(&seen);
}

/* Keys are big-endian so that RocksDB's bytewise order is numeric order: stored in a
 * scrambled order, messages come back sorted by (room, seq). */
static void keys_sortNumericallyInTheStore(void **state)
{
    struct fixture *fx = *state;
    const uint64_t seqs[] = {256, 1, 65536, 255, 2, UINT64_MAX - 1, 257, 0x100000000ull};
    const size_t n = sizeof seqs / sizeof seqs[0];
    struct store_batch *b = store_batch_new(fx->st);
    for (size_t i = 0; i < n; i++) {
        uint8_t k[STORE_MSG_KEY_LEN];
        store_key_msg(k, 0x100 + (i % 2), seqs[i]); /* rooms 256 and 257, interleaved */
        store_batch_put(b, STORE_CF_MSGS, k, sizeof k, "", 0);
    }
    assert_int_equal(store_write(fx->st, b, false), 0);
    store_batch_free(b);

    struct store_iter *it = store_iter_new(fx->st, STORE_CF_MSGS, NULL, 0, NULL, 0);
    uint64_t prev_room = 0, prev_seq = 0;
    size_t got = 0;
    for (store_iter_first(it); store_iter_valid(it); store_iter_next(it), got++) {
        uint64_t room, seq;
        store_key_msg_parse((const uint8_t *)store_iter_key(it).p, &room, &seq);
        assert_true(room > prev_room || (room == prev_room && seq > prev_seq));
        prev_room = room;
        prev_seq = seq;
    }
    assert_int_equal(got, n);
    store_iter_free(it);
}

static void keys_haveDocumentedLayout(void **state)
{
    (void)state;
    uint8_t k[STORE_KEY_MAX], k2[STORE_KEY_MAX];

    assert_int_equal(store_key_tag_u64(k, STORE_TAG_ROOM, 0x0102030405060708ull), 9);
    assert_memory_equal(k, "r\x01\x02\x03\x04\x05\x06\x07\x08", 9);

    assert_int_equal(store_key_user(k, "sip:a@b"), 8);
    assert_memory_equal(k, "usip:a@b", 8);

    size_t n = store_key_user_room(k, STORE_TAG_FOLLOW, "sip:a@b", 258);
    assert_int_equal(n, 1 + 7 + 1 + 8);
    assert_memory_equal(k, "fsip:a@b\0\0\0\0\0\0\0\x01\x02", n);

    assert_int_equal(store_key_global(k, "next_room_no"), 13);
    assert_memory_equal(k, "gnext_room_no", 13);

    assert_int_equal(store_key_applied(k, 0x01020304), 5);
    assert_memory_equal(k, "a\x01\x02\x03\x04", 5);
    assert_int_equal(store_key_room_last(k, 1), 9);
    assert_memory_equal(k, "l\0\0\0\0\0\0\0\x01", 9);

    /* Byte order = numeric order, across byte boundaries. */
    store_key_tag_u64(k, STORE_TAG_CATEGORY, 255);
    store_key_tag_u64(k2, STORE_TAG_CATEGORY, 256);
    assert_true(memcmp(k, k2, 9) < 0);
    store_key_msg(k, 1, UINT64_MAX);
    store_key_msg(k2, 2, 0);
    assert_true(memcmp(k, k2, STORE_MSG_KEY_LEN) < 0);

    /* A user's follow keys are contiguous and sorted by room; a longer URI sharing a
     * prefix ("sip:a@bc") does not sort in between, thanks to the 0x00 separator. */
    uint8_t f1[STORE_KEY_MAX], f2[STORE_KEY_MAX], f3[STORE_KEY_MAX];
    size_t l1 = store_key_user_room(f1, STORE_TAG_FOLLOW, "sip:a@b", 9);
    size_t l2 = store_key_user_room(f2, STORE_TAG_FOLLOW, "sip:a@b", 300);
    size_t l3 = store_key_user_room(f3, STORE_TAG_FOLLOW, "sip:a@bc", 1);
    assert_true(memcmp(f1, f2, l1) < 0 && l1 == l2);
    assert_true(memcmp(f2, f3, l2 < l3 ? l2 : l3) < 0);
}

static void keys_roundTripMessageAndComplianceKeys(void **state)
{
    (void)state;
    uint8_t k[STORE_COMPL_KEY_LEN], k2[STORE_COMPL_KEY_LEN];
    uint64_t room, seq, index;
    uint32_t group, nth;
    store_key_msg(k, 0xfedcba9876543210ull, 42);
    store_key_msg_parse(k, &room, &seq);
    assert_true(room == 0xfedcba9876543210ull && seq == 42);

    store_key_compl(k, 3, 0x1122334455667788ull, 0xa0b0c0d0u);
    assert_memory_equal(k, "\0\0\0\x03\x11\x22\x33\x44\x55\x66\x77\x88\xa0\xb0\xc0\xd0", 16);
    store_key_compl_parse(k, &group, &index, &nth);
    assert_int_equal(group, 3);
    assert_true(index == 0x1122334455667788ull);
    assert_true(nth == 0xa0b0c0d0u);
    /* Event ids order by (group, index, n). */
    store_key_compl(k, 1, 5, 300);
    store_key_compl(k2, 1, 6, 0);
    assert_true(memcmp(k, k2, sizeof k) < 0);
}

static void checkpoint_isAnOpenableCopy(void **state)
{
    struct fixture *fx = *state;
    put1(fx->st, STORE_CF_META, "kept", "yes");
    char cp[160];
    snprintf(cp, sizeof cp, "%s/checkpoint", fx->dir);
    assert_int_equal(store_checkpoint(fx->st, cp), 0);
    /* A later write goes to the original only. */
    put1(fx->st, STORE_CF_META, "later", "x");
    assert_int_not_equal(store_checkpoint(fx->st, cp), 0); /* dir must not exist */
    struct store *copy = must_open(cp, &EXISTING);
    assert_str_value(copy, STORE_CF_META, "kept", "yes");
    assert_str_value(copy, STORE_CF_META, "later", NULL);
    store_close(copy);
}

static void cfNames_matchLayout(void **state)
{
    (void)state;
    assert_string_equal(store_cf_name(STORE_CF_META), "meta");
    assert_string_equal(store_cf_name(STORE_CF_MSGS), "msgs");
    assert_string_equal(store_cf_name(STORE_CF_STATE), "state");
    assert_string_equal(store_cf_name(STORE_CF_COMPL), "compl");
    assert_string_equal(store_cf_name(STORE_CF_FILES), "files");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(open_createsAndReopenKeepsData, setup, teardown),
        cmocka_unit_test_setup_teardown(open_reportsPathAndReasonOnFailure, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_isAtomicAcrossColumnFamilies, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_deleteRangeIsHalfOpen, setup, teardown),
        cmocka_unit_test_setup_teardown(iter_staysWithinBounds, setup, teardown),
        cmocka_unit_test_setup_teardown(iter_unboundedSeesWholeFamilyInOrder, setup, teardown),
        cmocka_unit_test_setup_teardown(keys_sortNumericallyInTheStore, setup, teardown),
        cmocka_unit_test(keys_haveDocumentedLayout),
        cmocka_unit_test(keys_roundTripMessageAndComplianceKeys),
        cmocka_unit_test_setup_teardown(checkpoint_isAnOpenableCopy, setup, teardown),
        cmocka_unit_test(cfNames_matchLayout),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
