/* Administrators' changes to history on a 3-node pool (issue 7 item 3, Lync's
 * Remove-CsPersistentChatMessage and Clear-CsPersistentChatRoom): messages removed or
 * replaced by author, keywords and id, a room cleared up to a date, retention by count,
 * all seen the same through every node; and a node that was down during the changes and
 * catches up from a shard snapshot (no log entries left) shows them too once it owns the
 * room. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pc_time.h"
#include "tests/lib/tl.h"

#define NODES 3
#define NOTICE "This message was replaced by the Persistent Chat administrator."

static const char *pool_conf = "[cluster]\nshards = 2\nelection_timeout_ms = 1000\n"
                               "heartbeat_ms = 100\nsegment_size = 64k\nsnapshot_entries = 64\n";

struct pool {
    struct tl_node nodes[NODES];
    char lobby[256];
};

static void pool_up(struct pool *p, int first_port)
{
    memset(p, 0, sizeof *p);
    tl_pool_init(p->nodes, NODES, first_port, pool_conf);
    tl_pool_start(p->nodes, NODES);
    struct tl_client *c = tl_client_new(p->nodes[0].sip_port, "alice@example.test");
    assert_non_null(tl_room_uri(c, "Lobby", p->lobby, sizeof p->lobby));
    tl_client_close(c);
}

static void pool_down(struct pool *p)
{
    for (int k = 0; k < NODES; k++)
        tl_node_stop(&p->nodes[k]);
    for (int k = 0; k < NODES; k++)
        tl_node_cleanup(&p->nodes[k]);
}

/* The room's history through a client on port as "id:text|…", oldest first. */
static char *history(int port, const char *room_uri)
{
    struct tl_client *c = tl_client_new(port, "carol@example.test");
    struct pcc_event *ev = tl_history(c, room_uri, 200, 0);
    assert_non_null(ev);
    size_t cap = 1 << 16, len = 0;
    char *out = calloc(1, cap);
    if (ev->msg.n_rooms > 0)
        for (size_t i = 0; i < ev->msg.rooms[0].n_msgs; i++) {
            const struct xccos_chat *m = &ev->msg.rooms[0].msgs[i];
            len += (size_t)snprintf(out + len, cap - len, "%llu:%s|", (unsigned long long)m->msg_id,
                                    m->text);
        }
    pcc_event_free(ev);
    tl_client_close(c);
    return out;
}

/* pchatctl on node n; asserts success; the answer's integer field (or -1). */
static long long ctl(struct tl_node *n, const char *args, const char *field)
{
    char out[16384], cmd[1024];
    snprintf(cmd, sizeof cmd, "--json %s", args);
    int rc = tl_pchatctl(n, out, sizeof out, cmd);
    if (rc != 0)
        fprintf(stderr, "pchatctl %s: %s\n", args, out);
    assert_int_equal(rc, 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    json_t *v = field ? json_object_get(j, field) : NULL;
    long long r = json_is_integer(v) ? json_integer_value(v) : -1;
    json_decref(j);
    return r;
}

/* pchatctl on node n, which must succeed (its output is shown when it does not). */
static void run_ok(struct tl_node *n, const char *args)
{
    char out[8192];
    int rc = tl_pchatctl(n, out, sizeof out, args);
    if (rc != 0)
        fprintf(stderr, "pchatctl %s: %s\n", args, out);
    assert_int_equal(rc, 0);
}

static void __attribute__((format(printf, 3, 4))) post(struct tl_client *c, const char *room,
                                                        const char *fmt, ...)
{
    char text[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    assert_int_equal(tl_post(c, room, text), 200);
}

/* Waits (up to 15 s: retention runs every 200 ms, but the machine may be busy) until the
 * history through node k starts with want_head and contains want_part; asserts it. */
static void wait_history(struct pool *p, int k, const char *want_head, const char *want_part)
{
    uint64_t deadline = pc_mono_ms() + 15000;
    char *got = NULL;
    for (;;) {
        free(got);
        got = history(p->nodes[k].sip_port, p->lobby);
        bool ok = strncmp(got, want_head, strlen(want_head)) == 0 && strstr(got, want_part) != NULL;
        if (ok || pc_mono_ms() > deadline)
            break;
        tl_spin(200);
    }
    if (strncmp(got, want_head, strlen(want_head)) != 0 || strstr(got, want_part) == NULL)
        fprintf(stderr, "node %d history: %.400s\n  want %s…%s\n", k + 1, got, want_head, want_part);
    assert_memory_equal(got, want_head, strlen(want_head));
    assert_non_null(strstr(got, want_part));
    free(got);
}

/* Polls until every node's history equals want (the owner answers, but each node routes). */
static void expect_everywhere(struct pool *p, const char *want)
{
    for (int k = 0; k < NODES; k++) {
        if (p->nodes[k].pid == 0)
            continue;
        char *got = history(p->nodes[k].sip_port, p->lobby);
        if (strcmp(got, want) != 0)
            fprintf(stderr, "node %d history:\n  got  %s\n  want %s\n", k + 1, got, want);
        assert_string_equal(got, want);
        free(got);
    }
}

static void removeReplaceAndClear_seenThroughEveryNode(void **state)
{
    (void)state;
    struct pool p;
    pool_up(&p, tl_port_base() + 10);
    struct tl_client *a = tl_client_new(p.nodes[0].sip_port, "alice@example.test");
    struct tl_client *b = tl_client_new(p.nodes[1].sip_port, "bob@example.test");
    pcc_event_free(tl_join(a, p.lobby));
    pcc_event_free(tl_join(b, p.lobby));
    post(a, p.lobby, "alice one %d", 1);        /* 1 */
    post(b, p.lobby, "bob spam %d", 2);         /* 2 */
    post(a, p.lobby, "the Launch code is %d", 3); /* 3 */
    post(b, p.lobby, "bob spam %d", 4);         /* 4 */
    post(a, p.lobby, "alice five %d", 5);       /* 5 */

    /* Bad requests are refused with a reason and change nothing. */
    char out[4096];
    assert_int_equal(tl_pchatctl(&p.nodes[0], out, sizeof out, "message remove Lobby"), 1);
    assert_non_null(strstr(out, "say which messages"));
    assert_int_equal(tl_pchatctl(&p.nodes[0], out, sizeof out,
                                 "message remove Nowhere --user bob"), 1);
    assert_non_null(strstr(out, "no room named"));
    assert_int_equal(tl_pchatctl(&p.nodes[0], out, sizeof out,
                                 "message remove Lobby --keywords x --match some"), 1);
    assert_int_equal(tl_pchatctl(&p.nodes[0], out, sizeof out,
                                 "message remove Lobby --to yesterday"), 1);
    assert_non_null(strstr(out, "must be a date"));

    /* Bob's posts removed (through node 2), the launch code replaced (case-insensitive
     * keyword, through node 3), message 1 replaced by id with a notice of our own. */
    assert_int_equal(ctl(&p.nodes[1], "message remove Lobby --user bob --remove yes", "changed"), 2);
    assert_int_equal(ctl(&p.nodes[2], "message remove Lobby --keywords launch", "changed"), 1);
    assert_int_equal(ctl(&p.nodes[2], "message remove Lobby --keywords LAUNCH --case_sensitive yes",
                         "changed"), 0);
    assert_int_equal(ctl(&p.nodes[0], "message remove Lobby --id 1 --notice withdrawn", "changed"), 1);
    expect_everywhere(&p, "1:withdrawn|3:" NOTICE "|5:alice five 5|");

    /* Posting goes on with the next id; a clear up to a date keeps what came after it. */
    tl_spin(20);
    char cut[PC_ISO_LEN], args[256];
    pc_time_iso(pc_wall_us(), cut);
    tl_spin(20);
    post(b, p.lobby, "after the cut %d", 6);
    snprintf(args, sizeof args, "room clear Lobby --end_date %s", cut);
    assert_int_equal(ctl(&p.nodes[1], args, "purged_up_to"), 5);
    assert_int_equal(ctl(&p.nodes[1], args, "purged_up_to"), 5); /* again: nothing more */
    expect_everywhere(&p, "6:after the cut 6|");
    assert_int_equal(tl_pchatctl(&p.nodes[0], out, sizeof out, "room clear Lobby"), 1);
    assert_non_null(strstr(out, "end_date"));

    /* Live clients keep going; the changes survive a restart of the whole pool. */
    post(a, p.lobby, "still here %d", 7);
    tl_client_close(a);
    tl_client_close(b);
    for (int k = 0; k < NODES; k++)
        tl_node_stop(&p.nodes[k]);
    tl_pool_start(p.nodes, NODES);
    expect_everywhere(&p, "6:after the cut 6|7:still here 7|");

    /* The pool-wide settings (Set-CsPersistentChatConfiguration): set through one node,
     * served by all; the removal notice is the next replacement's default. */
    assert_int_equal(tl_pchatctl(&p.nodes[0], out, sizeof out,
                                 "config set --default_chat_history 501"), 1);
    assert_non_null(strstr(out, "default_chat_history"));
    assert_int_equal(tl_pchatctl(&p.nodes[0], out, sizeof out,
                                 "config set --default_chat_history 5 --max_file_size_kb 64 "
                                 "--removal_notice Moderated"), 0);
    for (int k = 0; k < NODES; k++) {
        json_t *j = NULL, *cfg = NULL;
        /* The other nodes apply the change a moment later. */
        for (int tries = 0; tries < 40; tries++, tl_spin(50)) {
            json_decref(j);
            assert_int_equal(tl_pchatctl(&p.nodes[k], out, sizeof out, "--json config get"), 0);
            j = json_loads(out, 0, NULL);
            cfg = json_object_get(j, "config");
            if (json_integer_value(json_object_get(cfg, "default_chat_history")) == 5)
                break;
        }
        assert_int_equal(json_integer_value(json_object_get(cfg, "default_chat_history")), 5);
        assert_int_equal(json_integer_value(json_object_get(cfg, "max_file_size_kb")), 64);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "pool"),
                                                              "removal_notice")), "Moderated");
        json_decref(j);
    }
    assert_int_equal(ctl(&p.nodes[2], "message remove Lobby --id 7", "changed"), 1);
    expect_everywhere(&p, "6:after the cut 6|7:Moderated|");
    assert_int_equal(tl_pchatctl(&p.nodes[0], out, sizeof out,
                                 "config set --default_chat_history default"), 0);
    pool_down(&p);
}

/* Node 3 is down while messages are edited and purged and the log moves far past it: it
 * comes back through a shard snapshot, which carries the floor and the edits, and the
 * messages it lacked are back-filled from a peer with the edits applied. */
static void nodeDownDuringChanges_catchesUpFromSnapshot(void **state)
{
    (void)state;
    struct pool p;
    pool_up(&p, tl_port_base() + 10);
    struct tl_client *a = tl_client_new(p.nodes[0].sip_port, "alice@example.test");
    pcc_event_free(tl_join(a, p.lobby));
    for (int i = 1; i <= 10; i++)
        post(a, p.lobby, "early %d", i);
    tl_node_stop(&p.nodes[2]);
    for (int i = 11; i <= 20; i++)
        post(a, p.lobby, i == 15 ? "secret %d" : "late %d", i);
    assert_int_equal(ctl(&p.nodes[0], "message remove Lobby --id 3 --remove yes", "changed"), 1);
    assert_int_equal(ctl(&p.nodes[0], "message remove Lobby --keywords secret", "changed"), 1);
    char args[256], cut[PC_ISO_LEN];
    /* Clear up to message 5's time: the room's messages 1-5 go. */
    struct tl_client *r = tl_client_new(p.nodes[0].sip_port, "carol@example.test");
    struct pcc_event *ev = tl_history(r, p.lobby, 200, 0);
    assert_true(ev->msg.n_rooms == 1 && ev->msg.rooms[0].n_msgs >= 5);
    int64_t t5 = 0;
    for (size_t i = 0; i < ev->msg.rooms[0].n_msgs; i++)
        if (ev->msg.rooms[0].msgs[i].msg_id == 5)
            t5 = ev->msg.rooms[0].msgs[i].ts_us;
    assert_true(t5 > 0);
    pcc_event_free(ev);
    tl_client_close(r);
    pc_time_iso(t5, cut);
    snprintf(args, sizeof args, "room clear Lobby --end_date %s", cut);
    assert_int_equal(ctl(&p.nodes[0], args, "purged_up_to"), 5);
    /* Enough entries for the leader to snapshot and drop the log node 3 would need. */
    for (int i = 21; i <= 160; i++)
        post(a, p.lobby, "filler %d", i);
    tl_client_close(a);
    tl_node_start(&p.nodes[2]);
    /* Hand the room to node 3: its history then comes from its own store. */
    char out[8192];
    assert_int_equal(tl_pchatctl(&p.nodes[0], out, sizeof out, "--json room get Lobby"), 0);
    json_t *j = json_loads(out, 0, NULL);
    int shard = (int)json_integer_value(json_object_get(json_object_get(j, "room"), "shard"));
    json_decref(j);
    uint64_t deadline = pc_mono_ms() + 20000;
    for (;;) {
        snprintf(args, sizeof args, "shard transfer %d --node 3", shard + 1);
        for (int k = 0; k < NODES; k++)
            tl_pchatctl(&p.nodes[k], out, sizeof out, args);
        tl_spin(300);
        assert_int_equal(tl_pchatctl(&p.nodes[0], out, sizeof out, "--json room get Lobby"), 0);
        j = json_loads(out, 0, NULL);
        int owner = (int)json_integer_value(json_object_get(json_object_get(j, "room"), "owner"));
        json_decref(j);
        if (owner == 3)
            break;
        assert_true(pc_mono_ms() < deadline);
    }
    /* its messages 11-160 came through a snapshot install and a back-fill */
    char *got = NULL;
    deadline = pc_mono_ms() + 10000;
    for (;;) {
        free(got);
        got = history(p.nodes[2].sip_port, p.lobby);
        if (strncmp(got, "6:early 6|", 10) == 0 || pc_mono_ms() > deadline)
            break;
        tl_spin(200); /* the back-fill may still be running: history answers "unavailable" */
    }
    static const char head[] = "6:early 6|7:early 7|8:early 8|9:early 9|10:early 10|11:late 11|";
    if (strncmp(got, head, strlen(head)) != 0 ||
        strstr(got, "15:" NOTICE "|16:late 16|") == NULL ||
        strstr(got, "secret") != NULL)
        fprintf(stderr, "node 3 history: %.600s\n", got);
    assert_memory_equal(got, head, strlen(head));
    assert_true(tl_node_log_contains(&p.nodes[2], "back-filled"));
    assert_non_null(strstr(got, "15:" NOTICE "|16:late 16|"));
    assert_null(strstr(got, "secret"));
    free(got);
    pool_down(&p);
}

/* Retention by count under continuous posting: the category keeps 30, the room overrides
 * it with 10, and once posting stops every node shows exactly the newest 10, ids
 * contiguous; the room set back to "inherit" keeps the category's 30 from then on. */
/* Waits (up to 15 s) until every node's replica of the room list shows Lobby's
 * retention_messages as want. Retention acts on the owner's replica of the settings, which
 * learns of a change up to a heartbeat after the admin's answer: posting before then could
 * see the old limit applied to the new messages. */
static void wait_retention_everywhere(struct pool *p, const char *want)
{
    for (int k = 0; k < NODES; k++) {
        uint64_t deadline = pc_mono_ms() + 15000;
        char out[16384], got[64] = "";
        for (;;) {
            assert_int_equal(tl_pchatctl(&p->nodes[k], out, sizeof out, "--json room get Lobby"), 0);
            json_t *j = json_loads(out, 0, NULL);
            json_t *v = json_object_get(json_object_get(j, "room"), "retention_messages");
            if (json_is_string(v))
                snprintf(got, sizeof got, "%s", json_string_value(v));
            else if (json_is_integer(v))
                snprintf(got, sizeof got, "%lld", (long long)json_integer_value(v));
            json_decref(j);
            if (strcmp(got, want) == 0 || pc_mono_ms() > deadline)
                break;
            tl_spin(50);
        }
        if (strcmp(got, want) != 0)
            fprintf(stderr, "node %d: Lobby's retention_messages is %s, want %s\n", k + 1, got, want);
        assert_string_equal(got, want);
    }
}

static void retention_keepsNewest_whilePosting(void **state)
{
    (void)state;
    struct pool p;
    memset(&p, 0, sizeof p);
    char conf[512];
    snprintf(conf, sizeof conf, "%sretention_interval_ms = 200\n", pool_conf);
    tl_pool_init(p.nodes, NODES, tl_port_base() + 10, conf);
    tl_pool_start(p.nodes, NODES);
    struct tl_client *a = tl_client_new(p.nodes[0].sip_port, "alice@example.test");
    assert_non_null(tl_room_uri(a, "Lobby", p.lobby, sizeof p.lobby));
    pcc_event_free(tl_join(a, p.lobby));
    char out[4096];
    assert_int_equal(tl_pchatctl(&p.nodes[0], out, sizeof out,
                                 "category set General --retention_messages 30"), 0);
    assert_int_equal(tl_pchatctl(&p.nodes[1], out, sizeof out,
                                 "room set Lobby --retention_messages 10"), 0);
    assert_int_equal(tl_pchatctl(&p.nodes[1], out, sizeof out,
                                 "room set Lobby --retention_messages many"), 1);
    assert_non_null(strstr(out, "inherit"));
    wait_retention_everywhere(&p, "10");
    for (int i = 1; i <= 60; i++)
        post(a, p.lobby, "m%d", i);
    wait_history(&p, 0, "51:m51|", "|60:m60|"); /* a few retention passes */
    expect_everywhere(&p, "51:m51|52:m52|53:m53|54:m54|55:m55|56:m56|57:m57|58:m58|59:m59|60:m60|");
    assert_int_equal(tl_pchatctl(&p.nodes[2], out, sizeof out,
                                 "room set Lobby --retention_messages inherit"), 0);
    wait_retention_everywhere(&p, "inherit");
    for (int i = 61; i <= 100; i++)
        post(a, p.lobby, "m%d", i);
    wait_history(&p, 2, "71:m71|72:m72|", "|100:m100|");
    tl_client_close(a);
    pool_down(&p);
}

/* The lines of an export file after its header (which carries the time of the export). */
static char *export_body(struct tl_node *n, const char *path, const char *extra)
{
    char args[1024], out[4096];
    snprintf(args, sizeof args, "export -o %s %s", path, extra);
    int rc = tl_pchatctl(n, out, sizeof out, args);
    if (rc != 0)
        fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    assert_non_null(strstr(buf, "{\"format\":\"pchat-export\",\"version\":1"));
    char *body = strchr(buf, '\n');
    assert_non_null(body);
    assert_non_null(strstr(body, "{\"record\":\"end\""));
    return strdup(body + 1);
}

/* Export from a 3-node pool, import into a fresh node: exporting that node gives the same
 * stream (room ids, ACLs, retention, message ids, times, authors, edits and the purged
 * start); importing again, there or into the source, changes nothing. */
static void exportImport_roundTrip_isIdempotent(void **state)
{
    (void)state;
    struct pool p;
    pool_up(&p, tl_port_base() + 10);
    char out[4096];
    run_ok(&p.nodes[0], "category new Projects --retention_days 400 --creators sip:bob@example.test");
    run_ok(&p.nodes[0], "room new Plans --category Projects --privacy secret "
                        "--members sip:alice@example.test,sip:bob@example.test --managers sip:bob@example.test --retention_messages 1000");
    struct tl_client *a = tl_client_new(p.nodes[1].sip_port, "alice@example.test");
    char plans[256];
    assert_non_null(tl_room_uri(a, "Plans", plans, sizeof plans));
    pcc_event_free(tl_join(a, p.lobby));
    pcc_event_free(tl_join(a, plans));
    for (int i = 1; i <= 8; i++)
        post(a, p.lobby, "lobby <%d> & \"quoted\" \xe2\x98\x95", i);
    for (int i = 1; i <= 520; i++) /* more than one page (500) of export and import */
        post(a, plans, "plan %d", i);
    tl_client_close(a);
    assert_int_equal(ctl(&p.nodes[0], "message remove Lobby --id 2 --remove yes", "changed"), 1);
    assert_int_equal(ctl(&p.nodes[0], "message remove Lobby --id 3", "changed"), 1);
    assert_int_equal(ctl(&p.nodes[0], "message remove Plans --id 1", "changed"), 1);
    /* Lobby's first message purged: the export starts at 2. */
    struct tl_client *r = tl_client_new(p.nodes[0].sip_port, "alice@example.test");
    struct pcc_event *ev = tl_history(r, p.lobby, 1, 2);
    char cut[PC_ISO_LEN], args[1024];
    pc_time_iso(ev->msg.rooms[0].msgs[0].ts_us, cut);
    pcc_event_free(ev);
    tl_client_close(r);
    snprintf(args, sizeof args, "room clear Lobby --end_date %s", cut);
    assert_int_equal(ctl(&p.nodes[0], args, "purged_up_to"), 1);

    char path_a[600], path_b[600];
    snprintf(path_a, sizeof path_a, "%s/a.jsonl", p.nodes[0].dir);
    snprintf(path_b, sizeof path_b, "%s/b.jsonl", p.nodes[0].dir);
    char *a1 = export_body(&p.nodes[0], path_a, "");
    assert_non_null(strstr(a1, "\"id\":2,\"time\""));
    assert_non_null(strstr(a1, "\"state\":\"removed\""));
    /* Lobby's message 1 is purged: only Plans' (replaced) is there. */
    const char *one_id = strstr(a1, "\"id\":1,\"time\":");
    assert_non_null(one_id);
    assert_null(strstr(one_id + 1, "\"id\":1,\"time\":"));

    /* A fresh node without demo content. */
    struct tl_node b;
    tl_node_init(&b, tl_port_base() + 20, "[seed]\ndemo = no\n");
    tl_node_spawn(&b);
    uint64_t deadline = pc_mono_ms() + 10000; /* no demo line to wait for: ask it */
    while (tl_pchatctl(&b, out, sizeof out, "category list") != 0)
        assert_true(pc_mono_ms() < deadline);
    snprintf(args, sizeof args, "import %s", path_a);
    int rc = tl_pchatctl(&b, out, sizeof out, args);
    if (rc != 0)
        fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 0);
    char *b1 = export_body(&b, path_b, "");
    if (strcmp(a1, b1) != 0)
        fprintf(stderr, "source:\n%.3000s\ncopy:\n%.3000s\n", a1, b1);
    assert_string_equal(a1, b1);
    /* Again, into the copy and into the source: nothing changes. */
    assert_int_equal(tl_pchatctl(&b, out, sizeof out, args), 0);
    char *b2 = export_body(&b, path_b, "");
    assert_string_equal(a1, b2);
    assert_int_equal(tl_pchatctl(&p.nodes[2], out, sizeof out, args), 0);
    char *a2 = export_body(&p.nodes[1], path_b, "");
    assert_string_equal(a1, a2);
    /* One room, by date: only Plans' messages up to now, no other room. */
    char *one = export_body(&b, path_b, "--room Plans --to now");
    assert_null(strstr(one, "\"name\":\"Lobby\""));
    assert_non_null(strstr(one, "plan 520"));
    /* The copy goes its own way (a post there takes id 521), and so does the source: the
     * source's 521 is another message, and the import refuses it instead of dropping it. */
    struct tl_client *bc = tl_client_new(b.sip_port, "alice@example.test");
    char plans_b[256];
    assert_non_null(tl_room_uri(bc, "Plans", plans_b, sizeof plans_b));
    assert_string_equal(plans_b, plans);
    pcc_event_free(tl_join(bc, plans_b));
    post(bc, plans_b, "only in the copy %d", 521);
    tl_client_close(bc);
    struct tl_client *ac = tl_client_new(p.nodes[0].sip_port, "bob@example.test");
    pcc_event_free(tl_join(ac, plans));
    post(ac, plans, "only in the source %d", 521);
    tl_client_close(ac);
    free(export_body(&p.nodes[0], path_a, "--room Plans"));
    snprintf(args, sizeof args, "import %s", path_a);
    assert_int_equal(tl_pchatctl(&b, out, sizeof out, args), 1);
    assert_non_null(strstr(out, "already hold other messages"));
    /* A broken file stops with the line that is wrong. */
    FILE *f = fopen(path_b, "w");
    fputs("{\"format\":\"pchat-export\",\"version\":1}\n{\"record\":\"room\"\n", f);
    fclose(f);
    snprintf(args, sizeof args, "import %s", path_b);
    assert_int_equal(tl_pchatctl(&b, out, sizeof out, args), 1);
    assert_non_null(strstr(out, "line 2"));
    free(a1);
    free(a2);
    free(b1);
    free(b2);
    free(one);
    tl_node_stop(&b);
    tl_node_cleanup(&b);
    pool_down(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(removeReplaceAndClear_seenThroughEveryNode),
        cmocka_unit_test(nodeDownDuringChanges_catchesUpFromSnapshot),
        cmocka_unit_test(retention_keepsNewest_whilePosting),
        cmocka_unit_test(exportImport_roundTrip_isIdempotent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
