/* pchatd: one node of a pchat pool. */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "chat/chat.h"
#include "chat/chat_admin.h"
#include "chat/sip/sip.h"
#include "cluster/cluster.h"
#include "cluster/cluster_tls.h"
#include "cmd/pchatd/admin_sock.h"
#include "cmd/pchatd/pchatd_conf.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_loop_watch.h"
#include "common/pc_log.h"
#include "compliance/compl_adapter.h"
#include "compliance/compl_dispatch.h"
#include "compliance/compl_event.h"
#include "search/search.h"
#include "web/web.h"

struct node {
    uv_loop_t loop;
    struct pchatd_conf conf;
    struct chat_service *svc;
    struct cluster *cl;
    struct sip_server *sip;
    struct admin_sock *admin;
    struct web_service *web;
    struct compl_dispatch *compliance;
    struct search *search;
    uv_signal_t sigterm, sigint;
    bool stopping;
    int exit_code;
    size_t seed_step;
    uv_timer_t seed_timer;
    bool seed_timer_on;
    uv_timer_t trim_timer;
    bool trim_timer_on;
    struct cluster_node *nodes;
    size_t n_nodes;
    char chat_uri[300];
    char sip_address[300];
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: pchatd [-c FILE] [-o section.name=value]… [--print-config] [--check-config]\n"
            "  -c FILE            configuration file (see deploy/pchatd.conf.example)\n"
            "  -o sec.name=value  override one option, e.g. -o sip.tcp_port=5070\n"
            "  --print-config     print the effective configuration and exit\n"
            "  --check-config     validate the configuration and exit\n");
}

/* ---- shutdown: SIP first (no new work), then the cluster (commit what is pending) -------- */

static void cluster_closed(void *arg)
{
    struct node *n = arg;
    n->cl = NULL;
    chat_service_free(n->svc);
    n->svc = NULL;
    uv_close((uv_handle_t *)&n->sigterm, NULL);
    uv_close((uv_handle_t *)&n->sigint, NULL);
    pc_notice("pchatd: stopped");
}

/* The index reads the store from worker threads: it stops before the store closes. */
static void search_stopped(void *arg)
{
    struct node *n = arg;
    n->search = NULL;
    cluster_close(n->cl, cluster_closed, n);
}

static void close_cluster(struct node *n)
{
    if (n->search != NULL)
        search_stop(n->search, search_stopped, n);
    else
        cluster_close(n->cl, cluster_closed, n);
}

static void sip_stopped(void *arg)
{
    struct node *n = arg;
    n->sip = NULL;
    if (n->compliance != NULL) {
        compl_dispatch_stop(n->compliance); /* its last callbacks come during cluster_close */
        n->compliance = NULL;
    }
    close_cluster(n);
}

static void stop(struct node *n, const char *why)
{
    if (n->stopping)
        return;
    n->stopping = true;
    pc_notice("pchatd: stopping (%s)", why);
    if (n->admin != NULL)
        admin_sock_stop(n->admin);
    if (n->web != NULL) {
        web_service_stop(n->web);
        n->web = NULL;
    }
    if (n->seed_timer_on) {
        n->seed_timer_on = false;
        uv_close((uv_handle_t *)&n->seed_timer, NULL);
    }
    pc_loop_watch_stop();
    if (n->trim_timer_on) {
        n->trim_timer_on = false;
        uv_close((uv_handle_t *)&n->trim_timer, NULL);
    }
    if (n->sip != NULL)
        sip_server_stop(n->sip, sip_stopped, n);
    else if (n->cl != NULL)
        close_cluster(n);
}

static void on_signal(uv_signal_t *h, int signum)
{
    stop(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- demo content for a fresh deployment ----------------------------------------------- */

/* The demo content, one admin request per step; NULL when done. */
static json_t *seed_request(size_t step, const char *domain)
{
    char all[160], user[160];
    snprintf(all, sizeof all, "*@%s", domain);
    static const char *users[][2] = {{"alice", "Alice"}, {"bob", "Bob"}, {"carol", "Carol"}};
    switch (step) {
    case 0:
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "op", "category.new", "name", "General",
                         "description", "Rooms for everyone", "allowed", all, "creators", all,
                         "file_upload", 1);
    case 1:
        return json_pack("{s:s, s:s, s:s, s:s, s:s}", "op", "room.new", "name", "Lobby", "category",
                         "General", "privacy", "open", "description",
                         "Say hello: everyone is welcome here");
    case 2:
    case 3:
    case 4:
        snprintf(user, sizeof user, "%s@%s", users[step - 2][0], domain);
        return json_pack("{s:s, s:s, s:s}", "op", "user.add", "user", user, "display_name",
                         users[step - 2][1]);
    case 5:
        snprintf(user, sizeof user, "admin@%s", domain);
        return json_pack("{s:s, s:s, s:s, s:b}", "op", "user.add", "user", user, "display_name",
                         "Administrator", "admin", 1);
    }
    return NULL;
}

static void seed_next(struct node *n);

static void seed_done(void *arg, json_t *answer)
{
    struct node *n = arg;
    if (!json_is_true(json_object_get(answer, "ok")))
        pc_warn("seed: %s", json_string_value(json_object_get(answer, "error")));
    json_decref(answer);
    n->seed_step++;
    seed_next(n);
}

static void seed_next(struct node *n)
{
    json_t *req = seed_request(n->seed_step, n->conf.domain);
    if (req == NULL) {
        pc_notice("seed: demo category General, room Lobby and users alice, bob, carol, admin "
                  "created");
        return;
    }
    chat_admin_handle(n->svc, "system (seed)", req, seed_done, n);
    json_decref(req);
}

/* The demo content is created once per pool, by the metadata leader, as soon as the pool
 * is initialised; every other node only reports it present (tests and deploy/pool wait for
 * that line). */
static void seed_poll(uv_timer_t *t)
{
    struct node *n = t->data;
    if (n->stopping || !cluster_meta_ready(n->cl))
        return;
    bool present = meta_category_by_name(cluster_meta(n->cl), "General") != NULL;
    if (!present && !cluster_meta_leader(n->cl))
        return;
    n->seed_timer_on = false;
    uv_close((uv_handle_t *)&n->seed_timer, NULL);
    if (present)
        pc_notice("seed: demo content present (category General, room Lobby)");
    else
        seed_next(n);
}

static void seed_when_ready(struct node *n)
{
    if (!n->conf.seed_demo)
        return;
    uv_timer_init(&n->loop, &n->seed_timer);
    n->seed_timer.data = n;
    n->seed_timer_on = true;
    uv_timer_start(&n->seed_timer, seed_poll, 0, 20);
}

/* A loop pass this long delays every session of the node as much: worth a line in the log
 * (the pass-time histogram is in /metrics and pchatctl stats either way). */
#define LOOP_WARN_MS 100

/* glibc keeps freed heap memory resident: over a 50-minute soak the free part of the heap
 * grew from 16 to 27 MiB per node while the node's own allocations stayed at 4 MiB. Once a
 * minute the free pages go back to the system (a walk of the heap: well under a
 * millisecond at this size). */
static void trim_memory(uv_timer_t *t)
{
    (void)t;
    malloc_trim(0);
}

static void trim_memory_every_minute(struct node *n)
{
    uv_timer_init(&n->loop, &n->trim_timer);
    n->trim_timer_on = true;
    uv_timer_start(&n->trim_timer, trim_memory, 60000, 60000);
}

/* ---- compliance ------------------------------------------------------------------------ */

static void start_compliance(struct node *n)
{
    struct pchatd_conf *c = &n->conf;
    struct compl_adapter *adapters[2];
    size_t k = 0;
    if (c->compliance_xml_dir[0] != '\0')
        adapters[k++] = compl_xml_adapter_new(&n->loop, c->compliance_xml_dir, c->compliance_xml_per_room);
    if (c->compliance_exec[0] != '\0')
        adapters[k++] = compl_exec_adapter_new(&n->loop, c->compliance_exec, 60);
    if (k == 0) {
        if (strcmp(c->compliance_capture, "none") != 0)
            pc_warn("compliance: events are captured (%s) but no adapter is configured "
                    "([compliance] xml_dir or exec): they accumulate until one is",
                    c->compliance_capture);
        return;
    }
    struct compl_dispatch_config dc = {.interval_ms = (unsigned)c->compliance_interval_s * 1000,
                                       .batch_size = (unsigned)c->compliance_batch};
    n->compliance = compl_dispatch_start(&n->loop, n->cl, &dc, adapters, k);
}

/* index.status / index.rebuild: the node's own search index (pchatctl index …). */
static json_t *index_admin(struct node *n, const char *op)
{
    if (n->search == NULL)
        return json_pack("{s:b, s:s}", "ok", 0, "error",
                         "this node has no search index ([search] enabled = no, or it could "
                         "not be opened: see the node's log)");
    if (strcmp(op, "index.rebuild") == 0)
        search_rebuild(n->search);
    struct search_stats st;
    search_stats(n->search, &st);
    char file[1100];
    snprintf(file, sizeof file, "%s/search.sqlite", n->conf.data_dir);
    return json_pack("{s:b, s:{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:f}}", "ok", 1, "index",
                     "file", file, "rebuilding", st.rebuilding, "messages",
                     (json_int_t)st.rows, "lag_messages", (json_int_t)st.lag, "behind_ms",
                     (json_int_t)st.behind_ms, "indexed_total",
                     (json_int_t)st.indexed, "queries_total", (json_int_t)st.queries,
                     "rebuilds_total", (json_int_t)st.rebuilds, "last_rate_msgs_per_s",
                     st.last_rate);
}

/* config.get: the node's chat settings; compliance.status: the adapters as this node sees
 * them, and its log size; index.*: its search index. */
static json_t *local_admin(void *ctx, const char *op, json_t *req)
{
    (void)req;
    struct node *n = ctx;
    if (strncmp(op, "index.", 6) == 0) {
        if (strcmp(op, "index.status") != 0 && strcmp(op, "index.rebuild") != 0)
            return json_pack("{s:b, s:s}", "ok", 0, "error",
                             "unknown index operation: use index status or index rebuild");
        return index_admin(n, op);
    }
    if (strcmp(op, "config.get") == 0) {
        /* Get-CsPersistentChatConfiguration: what this node serves with (set in its config
         * file; every node of a pool should agree). */
        const struct pchatd_conf *c = &n->conf;
        const struct meta_settings *pool = &cluster_meta(n->cl)->settings;
        /* "config": what this node serves with, the pool's settings (config.set) taking
         * precedence over its file; "pool": those settings (0 = not set). */
        return json_pack("{s:b, s:{s:i, s:i, s:i, s:I, s:i, s:i, s:i, s:i, s:s, s:s}, s:o}", "ok", 1,
                         "config", "default_chat_history",
                         pool->default_history ? (int)pool->default_history : c->chat_default_history,
                         "max_history", c->chat_max_history, "participant_update_limit",
                         pool->participant_update_limit ? (int)pool->participant_update_limit
                                                        : c->chat_participant_update_limit,
                         "max_file_size_kb",
                         (json_int_t)(pool->max_file_kb ? pool->max_file_kb
                                                        : c->web_max_file_bytes / 1024),
                         "message_max_chars", c->chat_message_max_chars, "story_max_chars",
                         c->chat_story_max_chars, "max_rooms_per_request",
                         c->chat_max_rooms_per_request, "post_rate",
                         c->chat_post_rate, "auth_mode", c->auth_mode, "compliance_capture",
                         c->compliance_capture, "pool", chat_settings_json(pool));
    }
    if (strcmp(op, "compliance.status") != 0)
        return NULL;
    json_t *list = json_array();
    uint64_t log = 0;
    if (n->compliance != NULL) {
        struct compl_adapter_status st[4];
        size_t k = compl_dispatch_status(n->compliance, st, 4);
        for (size_t i = 0; i < k && i < 4; i++)
            json_array_append_new(list, json_pack("{s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:s}",
                                                  "adapter", st[i].name, "active", st[i].active,
                                                  "busy", st[i].busy, "backlog", (json_int_t)st[i].backlog,
                                                  "delivered", (json_int_t)st[i].delivered,
                                                  "batches", (json_int_t)st[i].batches,
                                                  "failures", (json_int_t)st[i].failures,
                                                  "retry_in_ms", (json_int_t)st[i].retry_in_ms,
                                                  "last_error", st[i].last_error));
        log = compl_dispatch_log_size(n->compliance, 100000000);
    }
    return json_pack("{s:b, s:o, s:I, s:b}", "ok", 1, "adapters", list, "log_events", (json_int_t)log,
                     "dispatching_here", cluster_meta_leader(n->cl));
}

static void search_metrics(struct node *n, struct pc_buf *b)
{
    if (n->search == NULL)
        return;
    struct search_stats st;
    search_stats(n->search, &st);
    pc_buf_printf(b,
                  "# HELP pchat_search_index_lag_messages applied messages not yet in this node's "
                  "search index\n# TYPE pchat_search_index_lag_messages gauge\n"
                  "pchat_search_index_lag_messages %llu\n"
                  "# HELP pchat_search_index_behind_ms 0 when this node's search index has seen "
                  "every write to its store, else ms since the indexer's last pass\n"
                  "# TYPE pchat_search_index_behind_ms gauge\npchat_search_index_behind_ms %llu\n"
                  "# HELP pchat_search_index_messages messages in this node's search index\n"
                  "# TYPE pchat_search_index_messages gauge\npchat_search_index_messages %llu\n"
                  "# HELP pchat_search_indexed_total messages indexed since the node started\n"
                  "# TYPE pchat_search_indexed_total counter\npchat_search_indexed_total %llu\n"
                  "# HELP pchat_search_queries_total searches answered\n"
                  "# TYPE pchat_search_queries_total counter\npchat_search_queries_total %llu\n"
                  "# HELP pchat_search_stale_dropped_total hits dropped because the store no longer "
                  "had them as indexed (removed, replaced, purged)\n"
                  "# TYPE pchat_search_stale_dropped_total counter\n"
                  "pchat_search_stale_dropped_total %llu\n",
                  (unsigned long long)st.lag, (unsigned long long)st.behind_ms,
                  (unsigned long long)st.rows,
                  (unsigned long long)st.indexed, (unsigned long long)st.queries,
                  (unsigned long long)st.dropped_stale);
}

/* /metrics: what only the node knows (its SIP server and compliance dispatcher). */
static void node_metrics(void *ctx, struct pc_buf *b)
{
    struct node *n = ctx;
    if (n->sip != NULL) {
        struct sip_stats ss;
        sip_server_stats(n->sip, &ss);
        pc_buf_printf(b,
                      "# HELP pchat_sip_connections SIP client connections open\n"
                      "# TYPE pchat_sip_connections gauge\npchat_sip_connections %llu\n"
                      "# HELP pchat_sip_connections_refused_total connections refused (limits)\n"
                      "# TYPE pchat_sip_connections_refused_total counter\n"
                      "pchat_sip_connections_refused_total %llu\n"
                      "# HELP pchat_sip_requests_total SIP requests received\n"
                      "# TYPE pchat_sip_requests_total counter\npchat_sip_requests_total %llu\n"
                      "# HELP pchat_sip_503_total SIP 503 answers (back-pressure)\n"
                      "# TYPE pchat_sip_503_total counter\npchat_sip_503_total %llu\n"
                      "# HELP pchat_sip_bad_messages_total malformed SIP messages refused\n"
                      "# TYPE pchat_sip_bad_messages_total counter\npchat_sip_bad_messages_total %llu\n"
                      "# HELP pchat_sip_out_queued_bytes bytes queued to clients\n"
                      "# TYPE pchat_sip_out_queued_bytes gauge\npchat_sip_out_queued_bytes %llu\n"
                      "# HELP pchat_sip_timeouts_total SIP connections closed by a timeout: idle "
                      "([sip] idle_timeout, never registered), incomplete (a message's header or "
                      "body not in within [sip] header_timeout)\n"
                      "# TYPE pchat_sip_timeouts_total counter\n"
                      "pchat_sip_timeouts_total{kind=\"idle\"} %llu\n"
                      "pchat_sip_timeouts_total{kind=\"incomplete\"} %llu\n",
                      (unsigned long long)ss.conns_open, (unsigned long long)ss.conns_refused,
                      (unsigned long long)ss.requests_in, (unsigned long long)ss.replies_503,
                      (unsigned long long)ss.bad_messages, (unsigned long long)ss.out_bytes_queued,
                      (unsigned long long)ss.timeouts_idle,
                      (unsigned long long)ss.timeouts_incomplete);
    }
    if (n->compliance != NULL) {
        struct compl_adapter_status st[4];
        size_t k = compl_dispatch_status(n->compliance, st, 4);
        pc_buf_printf(b, "# HELP pchat_compliance_backlog events not yet taken by the adapter "
                         "(as the dispatching leader counts them)\n"
                         "# TYPE pchat_compliance_backlog gauge\n");
        for (size_t i = 0; i < k && i < 4; i++)
            pc_buf_printf(b, "pchat_compliance_backlog{adapter=\"%s\"} %llu\n", st[i].name,
                          (unsigned long long)st[i].backlog);
        pc_buf_printf(b, "# HELP pchat_compliance_failures_total failed deliveries to the adapter\n"
                         "# TYPE pchat_compliance_failures_total counter\n");
        for (size_t i = 0; i < k && i < 4; i++)
            pc_buf_printf(b, "pchat_compliance_failures_total{adapter=\"%s\"} %llu\n", st[i].name,
                          (unsigned long long)st[i].failures);
        pc_buf_printf(b, "# HELP pchat_compliance_log_events events in this node's compliance log\n"
                         "# TYPE pchat_compliance_log_events gauge\npchat_compliance_log_events %llu\n",
                      (unsigned long long)compl_dispatch_log_size(n->compliance, 100000000));
    }
    search_metrics(n, b);
}

static bool node_serving(void *ctx)
{
    struct node *n = ctx;
    return !n->stopping && n->sip != NULL;
}

static int start_web(struct node *n)
{
    struct pchatd_conf *c = &n->conf;
    if (c->web_port == 0 && c->web_tls_cert[0] == '\0')
        return 0;
    struct web_config wc = {.listen = c->web_listen, .port = c->web_port,
                            .https_port = c->web_https_port, .tls_cert = c->web_tls_cert,
                            .tls_key = c->web_tls_key, .data_dir = c->data_dir,
                            .domain = c->domain, .auth_off = strcmp(c->auth_mode, "off") == 0,
                            .token_minutes = (unsigned)c->web_token_minutes,
                            .max_body = c->web_max_body, .max_conns = (unsigned)c->web_max_connections,
                            .timeout_s = (unsigned)c->web_timeout,
                            .login_rate = (unsigned)c->web_login_rate,
                            .login_burst = (unsigned)c->web_login_burst,
                            .login_concurrency = (unsigned)c->web_login_concurrency,
                            .metrics_public = c->web_metrics_public,
                            .max_file_bytes = c->web_max_file_bytes};
    struct web_hooks hooks = {.ctx = n, .admin_local = local_admin, .metrics = node_metrics,
                              .serving = node_serving, .search = n->search};
    char err[512];
    int rc = web_service_start(&n->loop, &wc, n->svc, n->cl, &hooks, &n->web, err, sizeof err);
    if (rc != 0)
        pc_error("pchatd: %s", err);
    return rc;
}

/* ---- start-up ---------------------------------------------------------------------------- */

/* The index is derived data: a node whose index cannot be opened still serves chat. */
static void start_search(struct node *n)
{
    const struct pchatd_conf *c = &n->conf;
    if (!c->search_enabled)
        return;
    char path[1100], err[512];
    snprintf(path, sizeof path, "%s/search.sqlite", c->data_dir);
    struct search_config sc = {.path = path, .interval_ms = (unsigned)c->search_interval_ms,
                               .batch = (unsigned)c->search_batch,
                               .edits_ms = (unsigned)c->search_edits_ms};
    if (search_open(&n->loop, cluster_store(n->cl), &sc, &n->search, err, sizeof err) != 0)
        pc_error("pchatd: search disabled on this node: %s", err);
}

static int start(struct node *n)
{
    struct pchatd_conf *c = &n->conf;
    char err[2048];
    snprintf(n->chat_uri, sizeof n->chat_uri, "sip:%s@%s", c->chat_user, c->domain);

    struct chat_config cc;
    chat_config_defaults(&cc);
    cc.domain = c->domain;
    cc.chat_uri = n->chat_uri;
    cc.node_label = c->node_name;
    snprintf(n->sip_address, sizeof n->sip_address, "%s:%d",
             c->sip_advertise[0] ? c->sip_advertise : c->sip_listen, c->sip_tcp_port);
    cc.sip_address = n->sip_address;
    cc.default_history = (unsigned)c->chat_default_history;
    cc.max_history = (unsigned)c->chat_max_history;
    cc.message_max_chars = (unsigned)c->chat_message_max_chars;
    cc.story_max_chars = (unsigned)c->chat_story_max_chars;
    cc.max_rooms_per_request = (unsigned)c->chat_max_rooms_per_request;
    cc.max_members_per_request = (unsigned)c->chat_max_members_per_request;
    cc.search_limit = (unsigned)c->chat_search_limit;
    cc.post_rate = (unsigned)c->chat_post_rate;
    cc.post_burst = (unsigned)c->chat_post_burst;
    cc.max_sessions_per_user = (unsigned)c->chat_max_sessions_per_user;
    cc.participant_update_limit = (unsigned)c->chat_participant_update_limit;
    cc.allow_unknown_users = strcmp(c->auth_mode, "off") == 0 && c->auth_allow_unknown_users;
    n->svc = chat_service_new(&n->loop, &cc);

    unsigned classes = 0;
    compl_classes_parse(c->compliance_capture, &classes);
    if (!pchatd_conf_peers(c, &n->nodes, &n->n_nodes, err, sizeof err)) {
        pc_error("pchatd: %s", err);
        return PC_EINVAL;
    }
    struct cluster_config kc = {.node_label = c->node_name, .data_dir = c->data_dir,
                                .node_id = (uint64_t)c->node_id, .address = c->cluster_listen,
                                .nodes = n->nodes, .n_nodes = n->n_nodes,
                                .election_ms = (unsigned)c->cluster_election_ms,
                                .heartbeat_ms = (unsigned)c->cluster_heartbeat_ms,
                                .segment_bytes = (unsigned)c->cluster_segment_bytes,
                                .snapshot_entries = (unsigned)c->cluster_snapshot_entries,
                                .balance = c->cluster_balance,
                                .join = c->cluster_join,
                                .max_pending_posts = (unsigned)c->cluster_max_pending_posts,
                                .retention_interval_ms = (unsigned)c->cluster_retention_interval_ms,
                                .abandoned_upload_ms = (unsigned)c->cluster_abandoned_upload_s * 1000u,
                                .max_history = (unsigned)c->chat_max_history,
                                .shard_count = (uint32_t)c->cluster_shards, .domain = c->domain,
                                .compliance_classes = classes,
                                .min_free_bytes = c->min_free_bytes,
                                .tls_ca = c->cluster_tls_ca, .tls_cert = c->cluster_tls_cert,
                                .tls_key = c->cluster_tls_key};
    struct cluster_sink sink = chat_cluster_sink(n->svc);
    int rc = cluster_open(&n->loop, &kc, &sink, &n->cl, err, sizeof err);
    if (rc != 0) {
        pc_error("pchatd: %s", err);
        return rc;
    }
    chat_service_attach(n->svc, n->cl);
    start_search(n);

    struct sip_config sc;
    sip_config_defaults(&sc);
    sc.domain = c->domain;
    sc.chat_user = c->chat_user;
    sc.listen_host = c->sip_listen;
    sc.advertised_host = c->sip_advertise[0] ? c->sip_advertise : NULL;
    sc.tcp_port = c->sip_tcp_port;
    sc.node_label = c->node_name;
    sc.max_header_bytes = c->sip_max_header_bytes;
    sc.max_body_bytes = c->sip_max_body_bytes;
    sc.out_soft_bytes = c->sip_out_soft_bytes;
    sc.out_hard_bytes = c->sip_out_hard_bytes;
    sc.max_pending_txns = (unsigned)c->sip_max_pending_commands;
    sc.max_conns = (unsigned)c->sip_max_connections;
    sc.register_expires_s = (unsigned)c->sip_register_expires;
    sc.session_expires_s = (unsigned)c->sip_session_expires;
    sc.keepalive_s = (unsigned)c->sip_keepalive;
    sc.retry_after_s = (unsigned)c->sip_retry_after;
    sc.header_timeout_s = (unsigned)c->sip_header_timeout;
    sc.idle_timeout_s = (unsigned)c->sip_idle_timeout;
    sc.auth_digest = strcmp(c->auth_mode, "digest") == 0;
    sc.tls_port = c->sip_tls_port;
    sc.tls_cert = c->sip_tls_cert;
    sc.tls_key = c->sip_tls_key;
    struct sip_handlers h = chat_sip_handlers(n->svc);
    rc = sip_server_start(&n->loop, &sc, &h, &n->sip);
    if (rc != 0)
        return rc;

    char sock[1024];
    if (c->admin_socket[0] != '\0')
        snprintf(sock, sizeof sock, "%s", c->admin_socket);
    else
        snprintf(sock, sizeof sock, "%s/admin.sock", c->data_dir);
    rc = admin_sock_start(&n->loop, sock, n->svc, &n->admin);
    if (rc != 0)
        return rc;
    admin_sock_set_local(n->admin, local_admin, n);
    start_compliance(n);
    rc = start_web(n);
    if (rc != 0)
        return rc;
    if (strcmp(c->auth_mode, "off") == 0)
        pc_warn("pchatd: AUTHENTICATION IS OFF: anyone who can reach port %d may sign in as any "
                "user of %s. Set [auth] mode = digest for real use.", c->sip_tcp_port, c->domain);
    seed_when_ready(n);
    trim_memory_every_minute(n);
    pc_notice("pchatd: node %s ready: %s via sip:%s:%d;transport=tcp", c->node_name, n->chat_uri,
              c->sip_listen, c->sip_tcp_port);
    return 0;
}

/* --check-config: what the node would load at start, loaded now, so that a bad file is
 * named before the node is started. */
static bool check_files(const struct pchatd_conf *c)
{
    if (c->cluster_tls_cert[0] == '\0') {
        printf("pchatd: configuration ok; WARNING: no [cluster] tls_ca/tls_cert/tls_key: the "
               "cluster port will be plain, unauthenticated TCP\n");
        return true;
    }
    SSL_CTX *ctx = NULL;
    char err[1024], what[512];
    if (cluster_tls_context(c->cluster_tls_ca, c->cluster_tls_cert, c->cluster_tls_key,
                            (uint64_t)c->node_id, &ctx, err, sizeof err) != 0) {
        fprintf(stderr, "pchatd: %s\n", err);
        return false;
    }
    cluster_tls_describe(ctx, what, sizeof what);
    SSL_CTX_free(ctx);
    printf("pchatd: configuration ok; cluster TLS: node %d, %s, pool CA %s\n", c->node_id, what,
           c->cluster_tls_ca);
    return true;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"print-config", no_argument, NULL, 'P'},
        {"check-config", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* RocksDB's memtable arena blocks (MiBs each) are freed when a memtable is flushed, but
     * glibc's sliding mmap threshold moves them onto the heap, where freed memory stays
     * resident: the soak saw 290 MiB free but kept per node after the first flush. A fixed
     * threshold keeps big blocks mmapped, so a free gives them back to the system. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    const char *path = NULL;
    bool print = false, check = false;
    const char *overrides[64];
    int n_over = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:o:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 'o':
            if (n_over < 64)
                overrides[n_over++] = optarg;
            break;
        case 'P': print = true; break;
        case 'C': check = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    static struct node n;
    char err[512];
    if (!pchatd_conf_load(&n.conf, path, err, sizeof err)) {
        fprintf(stderr, "pchatd: %s\n", err);
        pchatd_conf_free(&n.conf);
        return 2;
    }
    for (int i = 0; i < n_over; i++)
        if (!pc_conf_set(pchatd_conf_table, &n.conf, overrides[i], err, sizeof err)) {
            fprintf(stderr, "pchatd: -o %s\n", err);
            pchatd_conf_free(&n.conf);
            return 2;
        }
    /* Validated once all overrides are in: options that go together (the cluster's TLS
     * files) may be given one -o at a time. */
    if (n_over > 0 && !pchatd_conf_validate(&n.conf, err, sizeof err)) {
        fprintf(stderr, "pchatd: -o: %s\n", err);
        pchatd_conf_free(&n.conf);
        return 2;
    }
    if (print)
        pc_conf_print(pchatd_conf_table, &n.conf, stdout);
    if (check && !check_files(&n.conf)) {
        pchatd_conf_free(&n.conf);
        return 2;
    }
    if (print || check) {
        pchatd_conf_free(&n.conf);
        return 0;
    }
    pc_log_init(n.conf.node_name, (enum pc_log_level)pc_log_level_parse(n.conf.log_level));
    signal(SIGPIPE, SIG_IGN);
    cluster_disk_wait(n.conf.data_dir, n.conf.min_free_bytes);
    uv_loop_init(&n.loop);
    int watch_rc = pc_loop_watch_start(&n.loop, LOOP_WARN_MS);
    if (watch_rc != 0)
        pc_warn("pchatd: no event-loop pass times (%s); pchatctl stats will show none",
                uv_strerror(watch_rc));
    uv_signal_init(&n.loop, &n.sigterm);
    uv_signal_init(&n.loop, &n.sigint);
    n.sigterm.data = n.sigint.data = &n;
    uv_signal_start(&n.sigterm, on_signal, SIGTERM);
    uv_signal_start(&n.sigint, on_signal, SIGINT);
    if (start(&n) != 0) {
        n.exit_code = 1;
        stop(&n, "start-up failed");
        if (n.cl == NULL) {
            /* A cluster that failed half-way (raft groups started) leaves handles on the
             * loop that nothing will close: exit without waiting for them. */
            pchatd_conf_peers_free(n.nodes, n.n_nodes);
            pchatd_conf_free(&n.conf);
            return n.exit_code;
        }
    }
    uv_run(&n.loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&n.loop);
    if (rc != 0)
        pc_error("pchatd: handles left open at exit (%s)", uv_strerror(rc));
    pchatd_conf_peers_free(n.nodes, n.n_nodes);
    pchatd_conf_free(&n.conf);
    return n.exit_code;
}
