/* Unit tests for search/: the search string → FTS5 expression, the exact-case post-filter,
 * cursors; and the indexer against a real store and loop (watermarks stop below a range
 * that waits for back-fill, purged messages are dropped from answers, rebuild). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/roomlog.h"
#include "common/pc_bin.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_time.h"
#include "search/search.h"
#include "search/search_expr.h"
#include "storage/store.h"
#include "storage/store_keys.h"

/* ---- expressions --------------------------------------------------------------------------- */

static const char *expr(const char *text, enum search_mode mode)
{
    static struct pc_buf out;
    static char err[200];
    pc_buf_reset(&out);
    if (search_expr_build(text, mode, &out, err, sizeof err) != 0)
        return err;
    return out.data;
}

static void expr_modes(void **state)
{
    (void)state;
    assert_string_equal(expr("hello", SEARCH_ANY), "\"hello\"");
    assert_string_equal(expr("  hello \t world ", SEARCH_ANY), "\"hello\" OR \"world\"");
    assert_string_equal(expr("hello world", SEARCH_ALL), "\"hello\" AND \"world\"");
    assert_string_equal(expr("hello world", SEARCH_PHRASE), "\"hello world\"");
    assert_string_equal(expr("deploy* now", SEARCH_ANY), "\"deploy\"* OR \"now\"");
    assert_string_equal(expr("brave new wor*", SEARCH_PHRASE), "\"brave new wor\"*");
}

/* Nothing typed is FTS5 syntax: quotes are doubled inside one quoted string per word. */
static void expr_quotesEverything(void **state)
{
    (void)state;
    assert_string_equal(expr("say \"hi\"", SEARCH_ANY), "\"say\" OR \"\"\"hi\"\"\"");
    assert_string_equal(expr("NEAR(a b) OR col:x", SEARCH_ALL),
                        "\"NEAR(a\" AND \"b)\" AND \"OR\" AND \"col:x\"");
    /* words without letters or digits are dropped (FTS5 would see an empty phrase) */
    assert_string_equal(expr("hello !!! - world", SEARCH_ALL), "\"hello\" AND \"world\"");
    assert_string_equal(expr("grüße", SEARCH_ANY), "\"grüße\"");
}

static void expr_refusals(void **state)
{
    (void)state;
    assert_non_null(strstr(expr("", SEARCH_ANY), "at least one word"));
    assert_non_null(strstr(expr(NULL, SEARCH_ANY), "at least one word"));
    assert_non_null(strstr(expr(" \t\n", SEARCH_ANY), "at least one word"));
    assert_non_null(strstr(expr("*** !!", SEARCH_ANY), "no letters or digits"));
    assert_non_null(strstr(expr("ok k*", SEARCH_ANY), "'k*' is too short a prefix"));
    char long_text[SEARCH_QUERY_MAX + 2];
    memset(long_text, 'a', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    assert_non_null(strstr(expr(long_text, SEARCH_ANY), "too long"));
    assert_non_null(strstr(expr("a b c d e f g h i j k l m n o p q", SEARCH_ANY), "too many words"));
    assert_string_equal(expr("a b c d e f g h i j k l m n o p", SEARCH_ANY),
                        "\"a\" OR \"b\" OR \"c\" OR \"d\" OR \"e\" OR \"f\" OR \"g\" OR \"h\" OR "
                        "\"i\" OR \"j\" OR \"k\" OR \"l\" OR \"m\" OR \"n\" OR \"o\" OR \"p\"");
}

static void scope_roomsAndAuthors(void **state)
{
    (void)state;
    struct pc_buf out = {0};
    uint64_t rooms[40];
    for (int i = 0; i < 40; i++)
        rooms[i] = (uint64_t)i + 1;
    const char *authors[] = {"sip:bob@example.test", "sip:odd\"name@x"};
    search_expr_scope(&out, "\"a\" OR \"b\"", rooms, 2, authors, 2);
    assert_string_equal(out.data, "{text} : (\"a\" OR \"b\") AND {room_tag} : (\"r1\" OR \"r2\") AND "
                                  "{author_tag} : (\"sip:bob@example.test\" OR \"sip:odd\"\"name@x\")");
    /* Many rooms: the SQL filter alone (an OR of hundreds of tags costs more than it saves). */
    search_expr_scope(&out, "\"a\"", rooms, 40, NULL, 0);
    assert_string_equal(out.data, "{text} : (\"a\")");
    pc_buf_free(&out);
}

static void accepts_caseSensitive(void **state)
{
    (void)state;
    const char *t = "Release train leaves at noon, release\tnotes  Ready";
    /* case-insensitive searches trust FTS5 */
    assert_true(search_expr_accepts(t, "whatever", SEARCH_ALL, false));
    /* whole words, exact case */
    assert_true(search_expr_accepts(t, "Release", SEARCH_ANY, true));
    assert_true(search_expr_accepts(t, "release", SEARCH_ANY, true));
    assert_false(search_expr_accepts(t, "RELEASE", SEARCH_ANY, true));
    assert_false(search_expr_accepts(t, "Relea", SEARCH_ANY, true));
    assert_true(search_expr_accepts(t, "Relea*", SEARCH_ANY, true));
    assert_false(search_expr_accepts(t, "rain", SEARCH_ANY, true)); /* inside "train" */
    assert_true(search_expr_accepts(t, "noon", SEARCH_ANY, true));  /* before a comma */
    /* any / all */
    assert_true(search_expr_accepts(t, "NOON noon", SEARCH_ANY, true));
    assert_false(search_expr_accepts(t, "NOON noon", SEARCH_ALL, true));
    assert_true(search_expr_accepts(t, "Ready noon", SEARCH_ALL, true));
    /* phrases: as typed; white space runs match any white space run */
    assert_true(search_expr_accepts(t, "release notes Ready", SEARCH_PHRASE, true));
    assert_false(search_expr_accepts(t, "release notes ready", SEARCH_PHRASE, true));
    assert_false(search_expr_accepts(t, "notes release", SEARCH_PHRASE, true));
    assert_true(search_expr_accepts(t, "leaves at no*", SEARCH_PHRASE, true));
    assert_false(search_expr_accepts(t, "leaves at no", SEARCH_PHRASE, true));
    assert_false(search_expr_accepts("", "x", SEARCH_ANY, true));
}

static void cursor_roundTrip(void **state)
{
    (void)state;
    struct search_cursor c = {.key = search_key(1795550801822902, 17, 123456)}, d;
    char buf[80];
    search_cursor_format(&c, buf, sizeof buf);
    assert_true(search_cursor_parse(buf, &d));
    assert_int_equal(c.key, d.key);
    assert_false(search_cursor_parse("", &d));
    assert_false(search_cursor_parse("0", &d));
    assert_false(search_cursor_parse("12x", &d));
    assert_false(search_cursor_parse("-12", &d));
    assert_false(search_cursor_parse("99999999999999999999999", &d));
}

/* Keys order by time first, the same message gets the same key, the low bits spread. */
static void key_ordersByTime(void **state)
{
    (void)state;
    int64_t t = 1795550801822902;
    assert_true(search_key(t, 1, 1) / 1024 == t);
    assert_true(search_key(t + 1, 999, 999) > search_key(t, 1, 1));
    assert_int_equal(search_key(t, 5, 7), search_key(t, 5, 7));
    int distinct = 0;
    for (uint64_t seq = 1; seq <= 64; seq++)
        distinct += search_key(t, 1, seq) != search_key(t, 1, seq + 1);
    assert_true(distinct > 60);
    /* A bound far in the future (to=8767-12-31, found by fuzz_http) saturates rather than
     * overflowing, and still sorts after every real time. */
    int64_t far = 213000000000000000LL;
    assert_true(search_key(far, 1, 1) > search_key(t, 999, 999));
    assert_true(search_key(INT64_MAX, 1, 1) > 0);
}

/* ---- the indexer on a real store ---------------------------------------------------------- */

struct fixture {
    char dir[64];
    char db[96];
    char index[96];
    struct store *st;
    struct roomlog log;
    uv_loop_t loop;
    struct search *s;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/pchat-search-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->db, sizeof fx->db, "%s/db", fx->dir);
    snprintf(fx->index, sizeof fx->index, "%s/search.sqlite", fx->dir);
    char err[256];
    struct store_options opt = {.create_if_missing = true, .block_cache_mb = 1};
    if (store_open(fx->db, &opt, &fx->st, err, sizeof err) != 0)
        fail_msg("store_open: %s", err);
    roomlog_init(&fx->log, fx->st);
    uv_loop_init(&fx->loop);
    struct search_config cfg = {.path = fx->index, .interval_ms = 10, .batch = 7};
    if (search_open(&fx->loop, fx->st, &cfg, &fx->s, err, sizeof err) != 0)
        fail_msg("search_open: %s", err);
    *state = fx;
    return 0;
}

static void stopped(void *arg)
{
    *(bool *)arg = true;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    bool done = false;
    search_stop(fx->s, stopped, &done);
    while (!done)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    roomlog_free(&fx->log);
    store_close(fx->st);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", fx->dir);
    free(fx);
    return 0;
}

static void post(struct fixture *fx, uint64_t room, const char *text)
{
    struct store_batch *b = store_batch_new(fx->st);
    roomlog_append(&fx->log, b, room, pc_wall_us(), "sip:alice@example.test", text);
    assert_int_equal(store_write(fx->st, b, false), 0);
    store_batch_free(b);
}

/* Runs the loop until the index has caught up with `lag` messages left (5 s at most). */
static void settle(struct fixture *fx, uint64_t lag, uint64_t indexed)
{
    struct search_stats st;
    uint64_t deadline = pc_mono_ms() + 5000;
    do {
        uv_run(&fx->loop, UV_RUN_ONCE);
        search_stats(fx->s, &st);
    } while ((st.lag != lag || st.indexed < indexed) && pc_mono_ms() < deadline);
    assert_int_equal(st.lag, lag);
}

struct answer {
    bool done;
    int status;
    size_t n;
    char texts[1024];
};

static void answered(void *arg, const struct search_result *res)
{
    struct answer *a = arg;
    a->done = true;
    a->status = res->status;
    a->n = res->n_hits;
    a->texts[0] = '\0';
    for (size_t i = 0; i < res->n_hits; i++) {
        size_t len = strlen(a->texts);
        snprintf(a->texts + len, sizeof a->texts - len, "%s%s", i ? "|" : "", res->hits[i].text);
    }
}

static size_t ask(struct fixture *fx, const char *text, uint64_t room, char *texts, size_t cap)
{
    struct search_request q = {.text = text, .mode = SEARCH_ANY, .rooms = &room, .n_rooms = 1,
                               .limit = 20};
    struct answer a = {0};
    char err[200];
    assert_int_equal(search_run(fx->s, &q, answered, &a, err, sizeof err), 0);
    while (!a.done)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(a.status, 0);
    snprintf(texts, cap, "%s", a.texts);
    return a.n;
}

static void index_stopsBelowBackfill(void **state)
{
    struct fixture *fx = *state;
    char texts[1024];
    for (int i = 1; i <= 20; i++) {
        char t[64];
        snprintf(t, sizeof t, "apple number %d", i);
        post(fx, 5, t);
    }
    post(fx, 6, "a pear");
    /* Batches of 7: several passes, the lag reaching 0. */
    settle(fx, 0, 21);
    assert_int_equal(ask(fx, "apple", 5, texts, sizeof texts), 20);
    assert_int_equal(ask(fx, "pear", 6, texts, sizeof texts), 1);

    /* A snapshot install says room 5 has messages up to 30, of which 21..30 are still to be
     * back-filled: 'l' moves to 30, a 'b' record covers [21, 30]. */
    struct store_batch *b = store_batch_new(fx->st);
    uint8_t k[32], v[8];
    pc_be64_write(v, 30);
    store_batch_put(b, STORE_CF_STATE, k, store_key_room_last(k, 5), v, 8);
    store_batch_put(b, STORE_CF_STATE, k, store_key_backfill(k, 2, 5, 21), v, 8);
    assert_int_equal(store_write(fx->st, b, false), 0);
    store_batch_clear(b);
    settle(fx, 10, 21);
    /* Back-fill brings 21..25 first: the record shrinks to [26, 30]. */
    struct pc_buf val = {0};
    for (uint64_t seq = 21; seq <= 25; seq++) {
        pc_buf_reset(&val);
        char t[64];
        snprintf(t, sizeof t, "apple late %llu", (unsigned long long)seq);
        roomlog_encode_msg(pc_wall_us(), "sip:bob@example.test", t, &val);
        store_key_msg(k, 5, seq);
        store_batch_put(b, STORE_CF_MSGS, k, STORE_MSG_KEY_LEN, val.data, val.len);
    }
    store_batch_delete(b, STORE_CF_STATE, k, store_key_backfill(k, 2, 5, 21));
    store_batch_put(b, STORE_CF_STATE, k, store_key_backfill(k, 2, 5, 26), v, 8);
    assert_int_equal(store_write(fx->st, b, false), 0);
    store_batch_clear(b);
    settle(fx, 5, 26);
    assert_int_equal(ask(fx, "late", 5, texts, sizeof texts), 5);
    /* The rest arrives and the record goes: everything is in. */
    for (uint64_t seq = 26; seq <= 30; seq++) {
        pc_buf_reset(&val);
        roomlog_encode_msg(pc_wall_us(), "sip:bob@example.test", "apple very late", &val);
        store_key_msg(k, 5, seq);
        store_batch_put(b, STORE_CF_MSGS, k, STORE_MSG_KEY_LEN, val.data, val.len);
    }
    store_batch_delete(b, STORE_CF_STATE, k, store_key_backfill(k, 2, 5, 26));
    assert_int_equal(store_write(fx->st, b, false), 0);
    store_batch_free(b);
    pc_buf_free(&val);
    settle(fx, 0, 31);
    assert_int_equal(ask(fx, "late", 5, texts, sizeof texts), 10);
}

static void index_dropsPurgedAndRebuilds(void **state)
{
    struct fixture *fx = *state;
    char texts[1024];
    post(fx, 9, "kiwi one");
    post(fx, 9, "kiwi two");
    post(fx, 9, "kiwi three");
    settle(fx, 0, 3);
    assert_int_equal(ask(fx, "kiwi", 9, texts, sizeof texts), 3);
    assert_string_equal(texts, "kiwi three|kiwi two|kiwi one");
    /* A purge deletes message 2 from the store: the hit is dropped at once, its row later. */
    struct store_batch *b = store_batch_new(fx->st);
    uint8_t k[STORE_MSG_KEY_LEN];
    store_key_msg(k, 9, 2);
    store_batch_delete(b, STORE_CF_MSGS, k, sizeof k);
    assert_int_equal(store_write(fx->st, b, false), 0);
    store_batch_free(b);
    assert_int_equal(ask(fx, "kiwi", 9, texts, sizeof texts), 2);
    assert_string_equal(texts, "kiwi three|kiwi one");
    struct search_stats st;
    search_stats(fx->s, &st);
    assert_int_equal(st.dropped_stale, 1);
    uint64_t deadline = pc_mono_ms() + 5000;
    do {
        uv_run(&fx->loop, UV_RUN_ONCE);
        search_stats(fx->s, &st);
    } while (st.rows != 2 && pc_mono_ms() < deadline);
    assert_int_equal(st.rows, 2);
    /* Rebuild: from nothing back to what the store has. */
    search_rebuild(fx->s);
    deadline = pc_mono_ms() + 5000;
    do {
        uv_run(&fx->loop, UV_RUN_ONCE);
        search_stats(fx->s, &st);
    } while (st.rebuilding && pc_mono_ms() < deadline);
    assert_false(st.rebuilding);
    assert_int_equal(st.rebuilds, 1);
    assert_int_equal(st.rows, 2);
    assert_int_equal(ask(fx, "kiwi", 9, texts, sizeof texts), 2);
}

static void count_answer(void *arg, const struct search_result *res)
{
    int *n = arg;
    (*n)++;
    assert_true(res->status == 0 || res->status == PC_EUNAVAIL);
}

/* Queries wait their turn for the thread pool; stopping answers every one of them. */
static void queries_waitingAtStopAreAnswered(void **state)
{
    struct fixture *fx = *state;
    post(fx, 3, "grape");
    settle(fx, 0, 1);
    uint64_t room = 3;
    struct search_request q = {.text = "grape", .rooms = &room, .n_rooms = 1, .limit = 5};
    char err[200];
    int answered_n = 0;
    for (int i = 0; i < 10; i++)
        assert_int_equal(search_run(fx->s, &q, count_answer, &answered_n, err, sizeof err), 0);
    bool done = false;
    search_stop(fx->s, stopped, &done);
    while (!done)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(answered_n, 10);
    /* teardown stops it again: give it a fresh one */
    char e[256];
    struct search_config cfg = {.path = fx->index, .interval_ms = 10, .batch = 7};
    assert_int_equal(search_open(&fx->loop, fx->st, &cfg, &fx->s, e, sizeof e), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(expr_modes),
        cmocka_unit_test(expr_quotesEverything),
        cmocka_unit_test(expr_refusals),
        cmocka_unit_test(scope_roomsAndAuthors),
        cmocka_unit_test(accepts_caseSensitive),
        cmocka_unit_test(cursor_roundTrip),
        cmocka_unit_test(key_ordersByTime),
        cmocka_unit_test_setup_teardown(index_stopsBelowBackfill, setup, teardown),
        cmocka_unit_test_setup_teardown(index_dropsPurgedAndRebuilds, setup, teardown),
        cmocka_unit_test_setup_teardown(queries_waitingAtStopAreAnswered, setup, teardown),
    };
    return cmocka_run_group_tests_name("search", tests, NULL, NULL);
}
