/* Compliance on a 3-node pool under continuous posting: the exec adapter fails for a
 * while, the metadata leader (the dispatcher) is killed mid-run and restarted. At the end
 * both adapters' outputs hold every acknowledged post as a CHAT event exactly once after
 * de-duplication by event id, each room's events in log order, both adapters the same
 * events, and every node's compliance log is empty (issue 5, DESIGN.md §3.6). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/pc_time.h"
#include "tests/lib/tl.h"
#include "tests/lib/tl_load.h"

#define NODES 3
#define POSTERS 6

struct ids {
    char **v;
    size_t n, cap;
};

static bool ids_has(const struct ids *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], id) == 0)
            return true;
    return false;
}

static void ids_add(struct ids *s, const char *id)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = strdup(id);
}

static void ids_free(struct ids *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static int node_json(struct tl_node *n, const char *args, json_t **out)
{
    char buf[16384];
    int rc = tl_pchatctl(n, buf, sizeof buf, args);
    *out = rc == 0 ? json_loads(buf, 0, NULL) : NULL;
    return rc;
}

static long long meta_leader(struct tl_node *n)
{
    json_t *j;
    if (node_json(n, "--json pool status", &j) != 0 || j == NULL)
        return 0;
    long long l = json_integer_value(json_object_get(json_array_get(json_object_get(j, "groups"), 0), "leader"));
    json_decref(j);
    return l;
}

/* True when this node's compliance log is empty and, if it dispatches, nothing is left. */
static bool drained(struct tl_node *n)
{
    json_t *j;
    if (node_json(n, "--json compliance status", &j) != 0 || j == NULL)
        return false;
    bool ok = json_integer_value(json_object_get(j, "log_events")) == 0;
    json_t *a;
    size_t i;
    json_array_foreach(json_object_get(j, "adapters"), i, a)
        ok = ok && json_integer_value(json_object_get(a, "backlog")) == 0;
    json_decref(j);
    return ok;
}

/* The acknowledged posts' texts, from the posters' logs (pchat-check format). */
static void acked_texts(char logs[][320], int n, struct ids *out)
{
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(logs[i], "r");
        assert_non_null(f);
        char line[4096];
        struct ids sent_ids = {0}, sent_texts = {0};
        while (fgets(line, sizeof line, f) != NULL) {
            line[strcspn(line, "\n")] = '\0';
            char *save = NULL, *kind = strtok_r(line, "\t", &save);
            if (kind == NULL)
                continue;
            if (strcmp(kind, "S") == 0) {
                strtok_r(NULL, "\t", &save); /* room */
                char *id = strtok_r(NULL, "\t", &save), *text = strtok_r(NULL, "\t", &save);
                ids_add(&sent_ids, id ? id : "");
                ids_add(&sent_texts, text ? text : "");
            } else if (strcmp(kind, "A") == 0) {
                char *id = strtok_r(NULL, "\t", &save);
                for (size_t k = 0; id != NULL && k < sent_ids.n; k++)
                    if (strcmp(sent_ids.v[k], id) == 0)
                        ids_add(out, sent_texts.v[k]);
            }
        }
        fclose(f);
        ids_free(&sent_ids);
        ids_free(&sent_texts);
    }
}

static void compliance_survivesAdapterFailureAndLeaderDeath(void **state)
{
    (void)state;
    static struct tl_node nodes[NODES];
    char dir[256], flag[300], conf[2048];
    snprintf(dir, sizeof dir, "/tmp/pchat-compl-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(flag, sizeof flag, "%s/adapter-down", dir);
    snprintf(conf, sizeof conf,
             "[cluster]\nshards = 4\nelection_timeout_ms = 1000\nheartbeat_ms = 100\n"
             "segment_size = 256k\nsnapshot_entries = 256\n"
             "[compliance]\ncapture = all\ninterval = 1\nbatch = 300\nxml_dir = %s/xml\n"
             "exec = test ! -e %s && cat >> %s/events.jsonl\n",
             dir, flag, dir);
    tl_pool_init(nodes, NODES, tl_port_base() + 40, conf);
    tl_pool_start(nodes, NODES);
    struct tl_client *probe = tl_client_new(nodes[0].sip_port, "alice@example.test");
    char lobby[256];
    assert_non_null(tl_room_uri(probe, "Lobby", lobby, sizeof lobby));
    tl_client_close(probe);

    static const char *users[] = {"alice@example.test", "bob@example.test", "carol@example.test"};
    struct tl_poster *p[POSTERS];
    char logs[POSTERS][320];
    for (int i = 0; i < POSTERS; i++) {
        int ports[NODES];
        for (int k = 0; k < NODES; k++)
            ports[k] = nodes[(i / 2 + k) % NODES].sip_port;
        char name[16];
        snprintf(name, sizeof name, "p%d", i + 1);
        snprintf(logs[i], sizeof logs[i], "%s/%s.log", dir, name);
        p[i] = tl_poster_new(name, users[i % 3], ports, NODES, lobby, 4, logs[i]);
    }
    tl_posters_run(p, POSTERS, 2000, true);
    FILE *f = fopen(flag, "w"); /* the exec adapter's archive goes down */
    fclose(f);
    tl_posters_run(p, POSTERS, 2000, true);

    long long leader = meta_leader(&nodes[0]);
    assert_true(leader >= 1 && leader <= NODES);
    /* The dispatcher says the exec adapter is failing, and keeps the XML one going. */
    json_t *st;
    assert_int_equal(node_json(&nodes[leader - 1], "--json compliance status", &st), 0);
    json_t *ad;
    size_t ai;
    bool exec_failing = false;
    json_array_foreach(json_object_get(st, "adapters"), ai, ad)
        if (strcmp(json_string_value(json_object_get(ad, "adapter")), "exec") == 0)
            exec_failing = json_integer_value(json_object_get(ad, "failures")) > 0 &&
                           json_integer_value(json_object_get(ad, "backlog")) > 0 &&
                           strstr(json_string_value(json_object_get(ad, "last_error")), "exited") != NULL;
    json_decref(st);
    assert_true(exec_failing);
    tl_node_kill(&nodes[leader - 1]); /* the dispatcher, probably mid-delivery */
    fprintf(stderr, "  killed the metadata leader (node %lld) while the exec adapter was down\n",
            leader);
    tl_posters_run(p, POSTERS, 2000, true);
    unlink(flag); /* the archive is back */
    tl_node_spawn(&nodes[leader - 1]);
    tl_node_wait_ready(&nodes[leader - 1], 20000);
    tl_posters_run(p, POSTERS, 2000, true);
    assert_true(tl_posters_settle(p, POSTERS, 15000));
    for (int i = 0; i < POSTERS; i++)
        tl_poster_free(p[i]); /* their sessions end: PART events */

    /* Every node's log drains: the adapters took everything, the cursors deleted it. */
    uint64_t t0 = pc_mono_ms();
    bool all = false;
    while (!all && pc_mono_ms() - t0 < 40000) {
        all = true;
        for (int k = 0; k < NODES; k++)
            all = all && drained(&nodes[k]);
        if (!all)
            usleep(200000);
    }
    fprintf(stderr, "  compliance log empty on every node after %llu ms\n",
            (unsigned long long)(pc_mono_ms() - t0));
    assert_true(all);

    /* The exec adapter's output, de-duplicated by id, in delivery order. */
    char path[400];
    snprintf(path, sizeof path, "%s/events.jsonl", dir);
    FILE *jf = fopen(path, "r");
    assert_non_null(jf);
    struct ids seen = {0}, chat_texts = {0};
    size_t lines = 0, dups = 0, joins = 0, parts = 0;
    uint64_t last_seq = 0;
    char line[65536];
    while (fgets(line, sizeof line, jf) != NULL) {
        json_t *e = json_loads(line, 0, NULL);
        assert_non_null(e);
        lines++;
        const char *id = json_string_value(json_object_get(e, "id"));
        const char *type = json_string_value(json_object_get(e, "type"));
        if (ids_has(&seen, id)) {
            dups++;
            json_decref(e);
            continue;
        }
        ids_add(&seen, id);
        if (strcmp(type, "CHAT") == 0) {
            uint64_t seq = (uint64_t)json_integer_value(json_object_get(e, "seq"));
            if (seq <= last_seq)
                fail_msg("CHAT seq %llu after %llu: not in room order", (unsigned long long)seq,
                         (unsigned long long)last_seq);
            last_seq = seq;
            ids_add(&chat_texts, json_string_value(json_object_get(e, "content")));
        }
        joins += strcmp(type, "JOIN") == 0;
        parts += strcmp(type, "PART") == 0;
        json_decref(e);
    }
    fclose(jf);

    struct ids acked = {0};
    acked_texts(logs, POSTERS, &acked);
    size_t missing = 0;
    for (size_t i = 0; i < acked.n; i++)
        if (!ids_has(&chat_texts, acked.v[i]))
            missing++;
    fprintf(stderr, "  exec adapter: %zu lines, %zu events (%zu re-delivered), %zu CHAT, %zu JOIN, "
            "%zu PART; %zu acknowledged posts, %zu missing\n", lines, seen.n, dups, chat_texts.n,
            joins, parts, acked.n, missing);
    assert_int_equal(missing, 0);
    assert_true(acked.n > 100 && joins > 0 && parts > 0);

    /* The XML adapter holds the same events. */
    snprintf(path, sizeof path, "%s/xml", dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct ids xml = {0};
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strstr(de->d_name, ".xml") == NULL || strstr(de->d_name, ".tmp") != NULL)
            continue;
        char file[700];
        snprintf(file, sizeof file, "%s/%s", path, de->d_name);
        xmlDocPtr doc = xmlReadFile(file, NULL, XML_PARSE_NONET);
        assert_non_null(doc);
        for (xmlNodePtr conv = xmlDocGetRootElement(doc)->children; conv; conv = conv->next)
            for (xmlNodePtr c = conv->children; c; c = c->next) {
                if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "Messages") != 0)
                    continue;
                for (xmlNodePtr m = c->children; m; m = m->next) {
                    if (m->type != XML_ELEMENT_NODE)
                        continue;
                    xmlChar *id = xmlGetProp(m, BAD_CAST "eventId");
                    if (id != NULL && !ids_has(&xml, (const char *)id))
                        ids_add(&xml, (const char *)id);
                    xmlFree(id);
                }
            }
        xmlFreeDoc(doc);
    }
    closedir(d);
    fprintf(stderr, "  XML adapter: %zu distinct events\n", xml.n);
    assert_int_equal(xml.n, seen.n);
    for (size_t i = 0; i < seen.n; i++)
        assert_true(ids_has(&xml, seen.v[i]));

    ids_free(&seen);
    ids_free(&chat_texts);
    ids_free(&acked);
    ids_free(&xml);
    for (int k = 0; k < NODES; k++)
        tl_node_stop(&nodes[k]);
    for (int k = 0; k < NODES; k++)
        tl_node_cleanup(&nodes[k]);
    if (getenv("PCHAT_TEST_KEEP") == NULL) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(compliance_survivesAdapterFailureAndLeaderDeath),
    };
    return cmocka_run_group_tests_name("compliance", tests, NULL, NULL);
}
