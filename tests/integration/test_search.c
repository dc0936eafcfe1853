/* Full-text search (GET /api/search, docs/WEB.md) on a real 3-node pool: messages posted
 * over SIP are found through every node's own index (any/all/phrase, case, author, dates,
 * rooms, newest first, pages); closed and secret rooms stay closed to non-members; bad
 * queries get 400 with a reason; the index survives a node restart (and catches up with
 * what was posted meanwhile), keeps answering after the room's owner is killed, and is
 * rebuilt by the admin op (pchatctl index rebuild). One pool for the whole file: each step
 * builds on the previous one, which keeps it well under 30 s. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/pc_buf.h"
#include "common/pc_time.h"
#include "tests/lib/tl.h"

#define NODES 3
static struct tl_node pool[NODES];

/* ---- HTTP ----------------------------------------------------------------------------------- */

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    pc_buf_append(arg, p, size * n);
    return size * n;
}

/* GET path on node i as user (auth is off in this pool: any password); the status, and the
 * JSON answer in *out (json_decref it). user NULL = no credentials. */
static long get(int i, const char *user, const char *path, json_t **out)
{
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[2048];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", pool[i].web_port, path);
    struct pc_buf body = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    if (user != NULL) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, "any-password");
    }
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    json_t *j = body.len > 0 ? json_loadb(body.data, body.len, 0, NULL) : NULL;
    if (out != NULL)
        *out = j;
    else
        json_decref(j);
    pc_buf_free(&body);
    return status;
}

/* The hits' texts of a search, newest first, joined by '|' into buf; returns the count
 * (asserting 200). next gets the cursor or "". */
static int search(int i, const char *user, const char *query, char *buf, size_t cap, char *next,
                  size_t next_cap)
{
    char path[1500];
    snprintf(path, sizeof path, "/api/search?%s", query);
    json_t *j = NULL;
    long st = get(i, user, path, &j);
    if (st != 200)
        fprintf(stderr, "  search %s as %s on n%d: %ld %s\n", query, user, i + 1, st,
                json_string_value(json_object_get(j, "error")));
    assert_int_equal(st, 200);
    buf[0] = '\0';
    json_t *h;
    size_t k;
    json_array_foreach(json_object_get(j, "hits"), k, h)
    {
        size_t len = strlen(buf);
        snprintf(buf + len, cap - len, "%s%s", k > 0 ? "|" : "",
                 json_string_value(json_object_get(h, "text")));
    }
    int n = (int)json_array_size(json_object_get(j, "hits"));
    if (next != NULL) {
        const char *c = json_string_value(json_object_get(j, "next"));
        snprintf(next, next_cap, "%s", c != NULL ? c : "");
        assert_true(json_is_true(json_object_get(j, "more")) == (c != NULL));
    }
    json_decref(j);
    return n;
}

/* Waits (10 s at most) until a search on node i finds exactly want hits. */
static void wait_hits(int i, const char *user, const char *query, int want)
{
    char buf[4096];
    uint64_t deadline = pc_mono_ms() + 10000;
    int n;
    while ((n = search(i, user, query, buf, sizeof buf, NULL, 0)) != want && pc_mono_ms() < deadline)
        usleep(50000);
    if (n != want)
        fprintf(stderr, "  %s on n%d: %d hits (%s), want %d\n", query, i + 1, n, buf, want);
    assert_int_equal(n, want);
}

/* A search that must be refused with status, the error naming what was wrong. */
static void refused(int i, const char *user, const char *query, long status, const char *says)
{
    char path[1500];
    snprintf(path, sizeof path, "/api/search?%s", query);
    json_t *j = NULL;
    long st = get(i, user, path, &j);
    const char *err = json_string_value(json_object_get(j, "error"));
    if (st != status || err == NULL || strstr(err, says) == NULL)
        fprintf(stderr, "  %s: %ld %s (want %ld, '%s')\n", query, st, err ? err : "-", status, says);
    assert_int_equal(st, status);
    assert_non_null(err);
    assert_non_null(strstr(err, says));
    json_decref(j);
}

/* ---- SIP ------------------------------------------------------------------------------------ */

/* Posts through a fresh session on node i, retrying while the room's owner is elected. */
static void post(int i, const char *user, const char *room_name, const char *text)
{
    uint64_t deadline = pc_mono_ms() + 15000;
    for (;;) {
        struct tl_client *c = tl_client_new(pool[i].sip_port, user);
        char uri[300];
        const char *u = tl_room_uri(c, room_name, uri, sizeof uri);
        assert_non_null(u);
        struct pcc_event *e = tl_join(c, u);
        pcc_event_free(e);
        int st = tl_post(c, u, text);
        tl_client_close(c);
        if (st == 200)
            return;
        assert_true(pc_mono_ms() < deadline);
        usleep(200000);
    }
}

static void ctl(int i, const char *args)
{
    char out[8192];
    int rc = tl_pchatctl(&pool[i], out, sizeof out, args);
    if (rc != 0)
        fprintf(stderr, "  pchatctl %s: %s\n", args, out);
    assert_int_equal(rc, 0);
}

static int owner_of(const char *room)
{
    char out[8192], args[128];
    snprintf(args, sizeof args, "--json room get %s", room);
    for (int i = 0; i < NODES; i++) {
        if (pool[i].pid <= 0 || tl_pchatctl(&pool[i], out, sizeof out, args) != 0)
            continue;
        json_t *j = json_loads(out, 0, NULL);
        int owner = (int)json_integer_value(json_object_get(json_object_get(j, "room"), "owner"));
        json_decref(j);
        if (owner > 0)
            return owner;
    }
    return 0;
}

/* ---- the story ------------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    tl_pool_init(pool, NODES, tl_port_base() + 3,
                 "[cluster]\nshards = 4\nelection_timeout_ms = 1000\nheartbeat_ms = 100\n"
                 "[auth]\nmode = off\n[search]\ninterval_ms = 50\nedits_interval_ms = 200\n[web]\nmetrics_public = yes\n");
    tl_pool_start(pool, NODES);
    ctl(0, "room new Closed --category General --privacy closed "
           "--members alice@example.test,bob@example.test");
    ctl(0, "room new Secret --category General --privacy secret --members alice@example.test");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < NODES; i++) {
        if (pool[i].pid > 0)
            tl_node_stop(&pool[i]);
        tl_node_cleanup(&pool[i]);
    }
    return 0;
}

static void search_whatWhoWhenWhere(void **state)
{
    (void)state;
    post(0, "alice@example.test", "Lobby", "Release train leaves at noon");
    post(1, "bob@example.test", "Lobby", "the release notes are ready");
    post(2, "alice@example.test", "Lobby", "Nightly build failed again");
    post(0, "bob@example.test", "Lobby", "Build fixed, nightly green");
    post(1, "alice@example.test", "Lobby", "release candidate two is out");
    post(0, "alice@example.test", "Closed", "closed room tangerine notes");
    post(0, "alice@example.test", "Secret", "the launch code is tangerine");

    /* Every node indexes what it has applied, on its own, in the background (a follower
     * applies a shard's entries a heartbeat after its leader: wait for every room). */
    for (int i = 0; i < NODES; i++) {
        wait_hits(i, "alice", "q=tangerine", 2);
        wait_hits(i, "alice", "q=release+nightly", 5);
    }

    char buf[4096], next[100];
    /* any (the default) / all / phrase, newest first */
    assert_int_equal(search(1, "alice", "q=release", buf, sizeof buf, NULL, 0), 3);
    assert_string_equal(buf, "release candidate two is out|the release notes are ready|"
                             "Release train leaves at noon");
    assert_int_equal(search(1, "alice", "q=release+nightly", buf, sizeof buf, NULL, 0), 5);
    assert_int_equal(search(1, "alice", "q=release+notes&mode=all", buf, sizeof buf, NULL, 0), 1);
    assert_string_equal(buf, "the release notes are ready");
    assert_int_equal(search(1, "alice", "q=release%20notes&mode=phrase", buf, sizeof buf, NULL, 0), 1);
    assert_int_equal(search(1, "alice", "q=notes+release&mode=phrase", buf, sizeof buf, NULL, 0), 0);
    assert_int_equal(search(1, "alice", "q=nightly+build&mode=phrase", buf, sizeof buf, NULL, 0), 1);
    assert_string_equal(buf, "Nightly build failed again");
    assert_int_equal(search(1, "alice", "q=build+nightly&mode=phrase", buf, sizeof buf, NULL, 0), 0);
    assert_int_equal(search(1, "alice", "q=build+nightly&mode=all", buf, sizeof buf, NULL, 0), 2);
    /* prefixes */
    assert_int_equal(search(1, "alice", "q=relea*", buf, sizeof buf, NULL, 0), 3);
    /* case */
    assert_int_equal(search(2, "alice", "q=Release&case=1", buf, sizeof buf, NULL, 0), 1);
    assert_string_equal(buf, "Release train leaves at noon");
    assert_int_equal(search(2, "alice", "q=release&case=1", buf, sizeof buf, NULL, 0), 2);
    assert_int_equal(search(2, "alice", "q=Build+fixed&mode=phrase&case=1", buf, sizeof buf, NULL, 0), 1);
    assert_int_equal(search(2, "alice", "q=build+fixed&mode=phrase&case=1", buf, sizeof buf, NULL, 0), 0);
    /* authors (short names, addresses, several) */
    assert_int_equal(search(0, "alice", "q=release&author=bob", buf, sizeof buf, NULL, 0), 1);
    assert_string_equal(buf, "the release notes are ready");
    assert_int_equal(search(0, "alice", "q=release&author=sip:alice@example.test", buf, sizeof buf,
                            NULL, 0), 2);
    assert_int_equal(search(0, "alice", "q=release+nightly&author=bob,alice@example.test", buf,
                            sizeof buf, NULL, 0), 5);
    /* dates: the last hour holds everything, an hour ago nothing; whole days too */
    char hour_ago[PC_ISO_LEN], q[400];
    pc_time_iso(pc_wall_us() - 3600LL * 1000000, hour_ago);
    snprintf(q, sizeof q, "q=release&from=%s", hour_ago);
    assert_int_equal(search(0, "alice", q, buf, sizeof buf, NULL, 0), 3);
    snprintf(q, sizeof q, "q=release&to=%s", hour_ago);
    assert_int_equal(search(0, "alice", q, buf, sizeof buf, NULL, 0), 0);
    assert_int_equal(search(0, "alice", "q=release&from=2000-01-01&to=2000-01-02", buf, sizeof buf,
                            NULL, 0), 0);
    /* rooms: one, several, by URI */
    assert_int_equal(search(0, "alice", "q=notes", buf, sizeof buf, NULL, 0), 2);
    assert_int_equal(search(0, "alice", "q=notes&room=Lobby", buf, sizeof buf, NULL, 0), 1);
    assert_int_equal(search(0, "alice", "q=notes&room=Closed", buf, sizeof buf, NULL, 0), 1);
    assert_int_equal(search(0, "alice", "q=tangerine+notes&room=Closed,Secret", buf, sizeof buf,
                            NULL, 0), 2);
    /* pages: two, then the rest with the cursor */
    assert_int_equal(search(2, "alice", "q=release+nightly&limit=2", buf, sizeof buf, next,
                            sizeof next), 2);
    assert_string_equal(buf, "release candidate two is out|Build fixed, nightly green");
    assert_true(next[0] != '\0');
    char page[300];
    snprintf(page, sizeof page, "q=release+nightly&limit=2&before=%s", next);
    assert_int_equal(search(2, "alice", page, buf, sizeof buf, next, sizeof next), 2);
    assert_string_equal(buf, "Nightly build failed again|the release notes are ready");
    snprintf(page, sizeof page, "q=release+nightly&limit=2&before=%s", next);
    assert_int_equal(search(2, "alice", page, buf, sizeof buf, next, sizeof next), 1);
    assert_string_equal(buf, "Release train leaves at noon");
    assert_string_equal(next, "");
}

/* pchat search: the same search from the command line, one "hit" line each, "more" with
 * the cursor, "error" for a refusal. */
static void search_fromTheCommandLine(void **state)
{
    (void)state;
    char cmd[1024], out[8192];
    const char *b = getenv("PCHAT_BUILD") ? getenv("PCHAT_BUILD") : "build";
    snprintf(cmd, sizeof cmd, "%s/bin/pchat -u alice@example.test -w http://127.0.0.1:%d search "
             "--all --room Lobby --limit 1 release notes 2>&1; echo rc=$?", b, pool[0].web_port);
    FILE *f = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    pclose(f);
    if (strstr(out, "sip:bob@example.test: the release notes are ready") == NULL)
        fprintf(stderr, "  %s\n", out);
    assert_non_null(strstr(out, "hit Lobby #"));
    assert_non_null(strstr(out, "sip:bob@example.test: the release notes are ready"));
    assert_non_null(strstr(out, "rc=0"));
    snprintf(cmd, sizeof cmd, "%s/bin/pchat -u alice@example.test -w http://127.0.0.1:%d search "
             "--limit 2 release nightly 2>&1; echo rc=$?", b, pool[0].web_port);
    f = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    pclose(f);
    assert_non_null(strstr(out, "\nmore "));
    snprintf(cmd, sizeof cmd, "%s/bin/pchat -u alice@example.test -w http://127.0.0.1:%d search "
             "--from someday x 2>&1; echo rc=$?", b, pool[0].web_port);
    f = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    pclose(f);
    assert_non_null(strstr(out, "error from=someday is not a date"));
    assert_non_null(strstr(out, "rc=1"));
}

static void search_onlyRoomsTheUserMayRead(void **state)
{
    (void)state;
    char buf[4096];
    /* carol: in neither room. The secret room does not exist for her, the closed one is
     * visible but not readable; searching everything simply leaves both out. */
    assert_int_equal(search(1, "carol", "q=tangerine", buf, sizeof buf, NULL, 0), 0);
    assert_int_equal(search(1, "carol", "q=launch+code&mode=phrase", buf, sizeof buf, NULL, 0), 0);
    refused(1, "carol", "q=tangerine&room=Secret", 404, "no room named 'Secret'");
    refused(1, "carol", "q=tangerine&room=Closed", 403, "members only");
    /* bob: member of Closed, not of Secret */
    assert_int_equal(search(2, "bob", "q=tangerine", buf, sizeof buf, NULL, 0), 1);
    assert_string_equal(buf, "closed room tangerine notes");
    refused(2, "bob", "q=tangerine&room=Secret", 404, "no room named");
    /* and nobody without signing in */
    assert_int_equal(get(0, NULL, "/api/search?q=tangerine", NULL), 401);
}

static void search_badQueries(void **state)
{
    (void)state;
    refused(0, "alice", "q=", 400, "at least one word");
    refused(0, "alice", "limit=3", 400, "at least one word");
    refused(0, "alice", "q=%20%20", 400, "at least one word");
    refused(0, "alice", "q=!!!", 400, "no letters or digits");
    char q[1200] = "q=";
    for (int i = 0; i < 300; i++)
        strcat(q, "a");
    refused(0, "alice", q, 400, "too long");
    refused(0, "alice", "q=a+b+c+d+e+f+g+h+i+j+k+l+m+n+o+p+q", 400, "too many words");
    refused(0, "alice", "q=release&from=yesterday", 400, "from=yesterday is not a date");
    refused(0, "alice", "q=release&to=2026-13-45", 400, "is not a date");
    refused(0, "alice", "q=release&from=2026-02-01&to=2026-01-01", 400, "from is after to");
    refused(0, "alice", "q=release&mode=fuzzy", 400, "mode=fuzzy");
    refused(0, "alice", "q=release&limit=0", 400, "limit=0");
    refused(0, "alice", "q=release&limit=1000", 400, "limit=1000");
    refused(0, "alice", "q=release&case=maybe", 400, "case=maybe");
    refused(0, "alice", "q=release&before=abc", 400, "not a cursor");
    refused(0, "alice", "q=release&room=Nowhere", 404, "no room named 'Nowhere'");
    /* FTS5 syntax is searched as text, never run */
    char buf[4096];
    assert_int_equal(search(0, "alice", "q=%22release%22+OR+NEAR(x)+col:y", buf, sizeof buf, NULL, 0), 3);
}

static void search_survivesRestartAndFailover(void **state)
{
    (void)state;
    /* Node 2 stops; a message is posted meanwhile; restarted, it indexes what it missed. */
    tl_node_stop(&pool[1]);
    pool[1].pid = 0;
    post(0, "alice@example.test", "Lobby", "posted while node two was away");
    tl_node_start(&pool[1]);
    wait_hits(1, "alice", "q=release+nightly", 5);
    wait_hits(1, "alice", "q=away", 1);

    /* The room's owner dies: the others still answer, and index what is posted next. */
    int owner = owner_of("Lobby");
    assert_true(owner >= 1 && owner <= NODES);
    fprintf(stderr, "  killing Lobby's owner n%d\n", owner);
    tl_node_kill(&pool[owner - 1]);
    pool[owner - 1].pid = 0;
    int other = owner % NODES; /* 0-based index of a survivor */
    post(other, "bob@example.test", "Lobby", "kiwi after the failover");
    for (int i = 0; i < NODES; i++) {
        if (pool[i].pid <= 0)
            continue;
        wait_hits(i, "alice", "q=kiwi", 1);
        wait_hits(i, "alice", "q=release+nightly", 5);
    }
    tl_node_start(&pool[owner - 1]);
    wait_hits(owner - 1, "alice", "q=kiwi", 1);
}

static void search_rebuildAndMetrics(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(tl_pchatctl(&pool[2], out, sizeof out, "--json index rebuild"), 0);
    assert_non_null(strstr(out, "\"rebuilding\": true"));
    /* Searches go on while it rebuilds; it ends with everything back. */
    wait_hits(2, "alice", "q=release+nightly+tangerine+kiwi+away", 9);
    uint64_t deadline = pc_mono_ms() + 10000;
    for (;;) {
        assert_int_equal(tl_pchatctl(&pool[2], out, sizeof out, "--json index status"), 0);
        if (strstr(out, "\"rebuilding\": false") != NULL || pc_mono_ms() > deadline)
            break;
        usleep(50000);
    }
    assert_non_null(strstr(out, "\"rebuilding\": false"));
    assert_non_null(strstr(out, "\"rebuilds_total\": 1"));
    assert_non_null(strstr(out, "\"lag_messages\": 0"));
    /* The lag is a metric. */
    CURL *c = curl_easy_init();
    struct pc_buf body = {0};
    char url[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", pool[2].web_port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    assert_non_null(strstr(body.data, "\npchat_search_index_lag_messages 0\n"));
    assert_non_null(strstr(body.data, "\npchat_search_index_messages 9\n"));
    pc_buf_free(&body);
}

/* Messages in node i's index (pchatctl index status). */
static long long index_messages(int i)
{
    char out[8192];
    assert_int_equal(tl_pchatctl(&pool[i], out, sizeof out, "--json index status"), 0);
    json_t *j = json_loads(out, 0, NULL);
    long long n = json_integer_value(json_object_get(json_object_get(j, "index"), "messages"));
    json_decref(j);
    return n;
}

/* Administrators' removals, replacements and clears (message.remove, room.clear) show in
 * every node's answers: removed and purged messages are never returned (each hit is checked
 * against the store), a replacement is found by its notice, and the rows go. */
static void search_followsRemovalsAndClears(void **state)
{
    (void)state;
    char buf[4096];
    ctl(0, "room new Edits --category General --privacy open");
    post(0, "alice@example.test", "Edits", "mango alpha");
    post(1, "bob@example.test", "Edits", "mango beta");
    post(2, "alice@example.test", "Edits", "mango gamma");
    post(0, "carol@example.test", "Edits", "papaya old news");
    for (int i = 0; i < NODES; i++)
        wait_hits(i, "alice", "q=mango+papaya&room=Edits", 4);

    ctl(0, "message remove --room Edits --keywords gamma --remove true");
    for (int i = 0; i < NODES; i++) {
        wait_hits(i, "alice", "q=mango&room=Edits", 2);
        wait_hits(i, "carol", "q=gamma", 0);
    }
    ctl(1, "message remove --room Edits --keywords beta --notice 'redacted by the admin'");
    for (int i = 0; i < NODES; i++) {
        /* Found by its notice without anyone meeting the old row first. */
        wait_hits(i, "bob", "q=redacted", 1);
        assert_int_equal(search(i, "bob", "q=redacted", buf, sizeof buf, NULL, 0), 1);
        assert_string_equal(buf, "redacted by the admin");
        wait_hits(i, "bob", "q=beta", 0);
    }
    long long before = index_messages(2);
    ctl(2, "room clear --room Edits --end_date now");
    for (int i = 0; i < NODES; i++)
        wait_hits(i, "alice", "q=mango+papaya+redacted&room=Edits", 0);
    uint64_t deadline = pc_mono_ms() + 10000;
    while (index_messages(2) > before - 3 && pc_mono_ms() < deadline)
        usleep(50000);
    assert_true(index_messages(2) <= before - 3);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(search_whatWhoWhenWhere),
        cmocka_unit_test(search_fromTheCommandLine),
        cmocka_unit_test(search_onlyRoomsTheUserMayRead),
        cmocka_unit_test(search_badQueries),
        cmocka_unit_test(search_survivesRestartAndFailover),
        cmocka_unit_test(search_rebuildAndMetrics),
        cmocka_unit_test(search_followsRemovalsAndClears),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
