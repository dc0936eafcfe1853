/* /metrics in Prometheus' text format, and /healthz. Counters only go up (Prometheus
 * computes rates: posts/s is rate(pchat_posts_committed_total[1m])). */
#include <stdio.h>
#include <string.h>

#include "chat/chat.h"
#include "cluster/cluster.h"
#include "cluster/meta.h"
#include "common/pc_alloc.h"
#include "common/pc_loop_watch.h"
#include "web/web_int.h"

static void metric(struct pc_buf *b, const char *name, const char *type, const char *help,
                   unsigned long long value)
{
    pc_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, value);
}

static void header(struct pc_buf *b, const char *name, const char *type, const char *help)
{
    pc_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The event loop's pass times as a Prometheus histogram (pc_loop_watch.h). */
static void loop_passes(struct pc_buf *b)
{
    struct pc_loop_stats ls;
    pc_loop_watch_stats(&ls);
    header(b, "pchat_loop_pass_seconds", "histogram",
           "time the node's event loop spent per pass on callbacks (not waiting for I/O): every "
           "session of the node waits through a long pass");
    uint64_t cum = 0;
    for (int k = 0; k < PC_LOOP_WATCH_BUCKETS; k++) {
        cum += ls.bucket[k];
        pc_buf_printf(b, "pchat_loop_pass_seconds_bucket{le=\"%g\"} %llu\n",
                      pc_loop_watch_bounds_ms[k] / 1000.0, (unsigned long long)cum);
    }
    pc_buf_printf(b, "pchat_loop_pass_seconds_bucket{le=\"+Inf\"} %llu\n"
                     "pchat_loop_pass_seconds_sum %.6f\npchat_loop_pass_seconds_count %llu\n",
                  (unsigned long long)ls.passes, (double)ls.busy_us / 1e6,
                  (unsigned long long)ls.passes);
}

static void raft_groups(struct web_service *w, struct pc_buf *b)
{
    struct cluster_group_info g[257];
    size_t n = cluster_groups(w->cl, g, sizeof g / sizeof g[0]);
    if (n > sizeof g / sizeof g[0])
        n = sizeof g / sizeof g[0];
    static const struct {
        const char *name, *help;
    } m[] = {
        {"pchat_raft_term", "current raft term of the group (0 = metadata, 1.. = shards)"},
        {"pchat_raft_commit_index", "highest raft index known committed"},
        {"pchat_raft_applied_index", "highest raft index applied on this node"},
        {"pchat_raft_lag", "committed but not yet applied entries on this node"},
        {"pchat_raft_leader", "1 when this node leads the group"},
        {"pchat_raft_voters", "voters in the group's configuration"},
    };
    for (size_t k = 0; k < sizeof m / sizeof m[0]; k++) {
        header(b, m[k].name, "gauge", m[k].help);
        for (size_t i = 0; i < n; i++) {
            unsigned long long v = 0;
            switch (k) {
            case 0: v = g[i].term; break;
            case 1: v = g[i].commit_index; break;
            case 2: v = g[i].last_applied; break;
            case 3: v = g[i].commit_index > g[i].last_applied ? g[i].commit_index - g[i].last_applied : 0; break;
            case 4: v = strcmp(g[i].role, "leader") == 0; break;
            case 5: v = g[i].voters; break;
            }
            pc_buf_printf(b, "%s{group=\"%u\"} %llu\n", m[k].name, (unsigned)g[i].id, v);
        }
    }
}

static void peers(struct web_service *w, struct pc_buf *b)
{
    struct cluster_peer_info p[64];
    size_t n = cluster_peers(w->cl, p, 64);
    if (n > 64)
        n = 64;
    header(b, "pchat_peer_up", "gauge", "1 when the peer link to the node is connected");
    for (size_t i = 0; i < n; i++)
        pc_buf_printf(b, "pchat_peer_up{node=\"%llu\"} %d\n", (unsigned long long)p[i].id, p[i].up);
    header(b, "pchat_peer_messages_sent_total", "counter",
           "peer link messages sent (forwarded commands, replies, fan-out)");
    for (size_t i = 0; i < n; i++)
        pc_buf_printf(b, "pchat_peer_messages_sent_total{node=\"%llu\"} %llu\n",
                      (unsigned long long)p[i].id, (unsigned long long)p[i].sent);
    header(b, "pchat_peer_silence_downs_total", "counter",
           "times the peer link to the node was dropped because the node fell silent (cut off "
           "or stopped), before TCP would have noticed");
    for (size_t i = 0; i < n; i++)
        pc_buf_printf(b, "pchat_peer_silence_downs_total{node=\"%llu\"} %llu\n",
                      (unsigned long long)p[i].id, (unsigned long long)p[i].silence_downs);
    header(b, "pchat_peer_queued_bytes", "gauge", "bytes waiting to be sent to the node");
    for (size_t i = 0; i < n; i++)
        pc_buf_printf(b, "pchat_peer_queued_bytes{node=\"%llu\"} %zu\n", (unsigned long long)p[i].id,
                      p[i].queued_bytes);
}

/* The cluster port: whether it runs mutual TLS, and every connection it refused, by reason,
 * so that an alert can fire on a node trying to get in with a wrong certificate. */
static void cluster_port(struct web_service *w, struct pc_buf *b)
{
    struct cluster_port_stats cp;
    cluster_port_stats(w->cl, &cp);
    metric(b, "pchat_cluster_tls", "gauge",
           "1 when the cluster port runs mutual TLS with the pool CA ([cluster] tls_*), 0 when "
           "node-to-node traffic is plain and unauthenticated", cp.tls);
    metric(b, "pchat_cluster_connections_accepted_total", "counter",
           "connections accepted on the cluster port", cp.accepted);
    metric(b, "pchat_cluster_connections_rejected_total", "counter",
           "inbound cluster connections closed before use (junk, timeouts, groups not started, "
           "and every refusal below)", cp.rejected);
    header(b, "pchat_cluster_refused_total", "counter",
           "cluster connections refused: tls = no or invalid certificate or not TLS, identity = "
           "the certificate names no node or another node, unknown = not a pool member, "
           "dial = this node refused the node it dialled or was refused by it");
    pc_buf_printf(b, "pchat_cluster_refused_total{reason=\"tls\"} %llu\n"
                     "pchat_cluster_refused_total{reason=\"identity\"} %llu\n"
                     "pchat_cluster_refused_total{reason=\"unknown\"} %llu\n"
                     "pchat_cluster_refused_total{reason=\"dial\"} %llu\n",
                  (unsigned long long)cp.refused_tls, (unsigned long long)cp.refused_identity,
                  (unsigned long long)cp.refused_unknown, (unsigned long long)cp.dials_refused);
}

void web_metrics(struct web_service *w, struct http_req *r)
{
    struct pc_buf b = {0};
    struct chat_stats cs;
    struct cluster_stats ks;
    struct http_server_stats hs;
    chat_service_stats(w->svc, &cs);
    cluster_stats(w->cl, &ks);
    http_server_stats(w->http, &hs);
    metric(&b, "pchat_chat_sessions", "gauge", "chat sessions on this node", cs.sessions);
    metric(&b, "pchat_rooms", "gauge", "rooms in the pool", meta_room_count(cluster_meta(w->cl)));
    metric(&b, "pchat_commands_total", "counter", "XCCOS commands handled", cs.commands);
    metric(&b, "pchat_posts_accepted_total", "counter", "posts accepted from this node's sessions",
           cs.posts_accepted);
    header(&b, "pchat_posts_refused_total", "counter",
           "posts refused, by reason (no_room, not_allowed, not_joined, empty, too_large, "
           "rate_limit, queue_full, disk_full, failed)");
    for (int i = 0; i < CHAT_REFUSED_COUNT; i++)
        pc_buf_printf(&b, "pchat_posts_refused_total{reason=\"%s\"} %llu\n",
                      chat_refusal_name((enum chat_refusal)i),
                      (unsigned long long)cs.posts_refused_by[i]);
    metric(&b, "pchat_posts_rate_limited_total", "counter", "posts refused by [chat] post_rate",
           cs.posts_rate_limited);
    metric(&b, "pchat_posts_committed_total", "counter", "posts committed by shards this node owns",
           ks.posts_committed);
    metric(&b, "pchat_posts_failed_total", "counter", "posts whose commit failed", ks.posts_failed);
    metric(&b, "pchat_deliveries_total", "counter", "messages delivered to this node's sessions",
           cs.deliveries);
    metric(&b, "pchat_notices_total", "counter", "join/part notices sent", cs.notices);
    metric(&b, "pchat_bad_xccos_total", "counter", "malformed XCCOS bodies refused", cs.bad_xccos);
    metric(&b, "pchat_sessions_refused_total", "counter",
           "sessions refused by [chat] max_sessions_per_user", cs.sessions_refused);
    metric(&b, "pchat_requests_too_long_total", "counter",
           "bjoins and room/category changes refused whole for naming more rooms or users than "
           "[chat] max_rooms_per_request / max_members_per_request", cs.requests_too_long);
    metric(&b, "pchat_pending_posts", "gauge", "posts waiting for their commit", ks.pending_posts);
    metric(&b, "pchat_commit_batches_total", "counter", "raft entries proposed with posts",
           ks.commit_batches);
    metric(&b, "pchat_room_events_out_total", "counter", "room events fanned out to nodes",
           ks.events_out);
    metric(&b, "pchat_store_bytes", "gauge", "size of this node's RocksDB files", ks.store_bytes);
    header(&b, "pchat_store_memory_bytes", "gauge",
           "memory RocksDB holds: memtables (up to write_buffer_size per column family), the "
           "block cache (up to 32 MiB) and open tables' index and filter blocks");
    pc_buf_printf(&b, "pchat_store_memory_bytes{kind=\"memtables\"} %llu\n"
                      "pchat_store_memory_bytes{kind=\"block_cache\"} %llu\n"
                      "pchat_store_memory_bytes{kind=\"table_readers\"} %llu\n",
                  (unsigned long long)ks.store_memory.memtables,
                  (unsigned long long)ks.store_memory.block_cache,
                  (unsigned long long)ks.store_memory.table_readers);
    loop_passes(&b);
    metric(&b, "pchat_allocated_bytes", "gauge",
           "bytes this node allocated itself and has not freed (libuv's included; RocksDB's, "
           "SQLite's and OpenSSL's are not)", pc_alloc_used());
    metric(&b, "pchat_replay_skipped_messages_total", "counter",
           "messages this node's sessions missed because an owner did not replay them after "
           "a lost link: purged meanwhile, or an owner of a version before 2026-11-25 (which "
           "replayed only the newest 10,000)",
           ks.replay_skipped);
    metric(&b, "pchat_uploads_abandoned_total", "counter",
           "unfinished uploads whose chunks this node deleted as their shard's leader "
           "([cluster] abandoned_upload_s)", ks.uploads_abandoned);
    metric(&b, "pchat_store_disk_full", "gauge",
           "1 while this node refuses writes because its data disk is full ([node] min_free_space)",
           ks.disk_full);
    metric(&b, "pchat_store_disk_free_bytes", "gauge",
           "free space on the filesystem of the node's data_dir", ks.disk_free_bytes);
    metric(&b, "pchat_store_disk_size_bytes", "gauge",
           "size of the filesystem of the node's data_dir", ks.disk_total_bytes);
    metric(&b, "pchat_store_disk_full_events_total", "counter",
           "times this node entered the disk-full state", ks.disk_full_events);
    metric(&b, "pchat_writes_refused_disk_full_total", "counter",
           "posts, file chunks, edits and metadata changes this node refused as owner or leader "
           "because its data disk was full", ks.writes_refused_disk_full);
    metric(&b, "pchat_store_enospc_errors_total", "counter",
           "database operations that failed with no space left on device", ks.store_enospc);
    metric(&b, "pchat_store_writes_held_total", "counter",
           "database writes held back (retried later) because the data disk was below half of "
           "[node] min_free_space", ks.store_gated);
    metric(&b, "pchat_http_requests_total", "counter", "HTTP requests answered", hs.requests);
    metric(&b, "pchat_http_4xx_total", "counter", "HTTP answers 400-499", hs.responses_4xx);
    metric(&b, "pchat_http_5xx_total", "counter", "HTTP answers 500-599", hs.responses_5xx);
    metric(&b, "pchat_http_waiting", "gauge", "HTTP requests waiting for a commit", hs.waiting);
    header(&b, "pchat_http_timeouts_total", "counter",
           "HTTP connections closed after [web] timeout without progress: idle (no request), "
           "headers (slowloris), body");
    static const char *const phases[] = {"idle", "headers", "body"};
    for (int i = 0; i < 3; i++)
        pc_buf_printf(&b, "pchat_http_timeouts_total{kind=\"%s\"} %llu\n", phases[i],
                      (unsigned long long)hs.timeouts[i]);
    struct web_auth_stats as;
    web_auth_stats(&w->auth, &as);
    metric(&b, "pchat_web_password_checks_total", "counter",
           "passwords checked (sign-in and Basic headers; scrypt in the thread pool)", as.checks);
    metric(&b, "pchat_web_password_checks_running", "gauge",
           "password checks in the thread pool now", as.running);
    metric(&b, "pchat_web_logins_rate_limited_total", "counter",
           "password checks refused with 429: the client address was over [web] login_rate",
           as.refused_peer);
    metric(&b, "pchat_web_logins_busy_total", "counter",
           "password checks refused with 503: [web] login_concurrency checks were running",
           as.refused_busy);
    metric(&b, "pchat_file_uploads_total", "counter", "files uploaded through this node", w->uploads);
    metric(&b, "pchat_file_upload_bytes_total", "counter", "bytes uploaded", w->upload_bytes);
    metric(&b, "pchat_file_downloads_total", "counter", "files downloaded from this node",
           w->downloads);
    metric(&b, "pchat_file_download_bytes_total", "counter", "bytes downloaded", w->download_bytes);
    metric(&b, "pchat_meta_leader", "gauge", "1 when this node leads the metadata group",
           cluster_meta_leader(w->cl));
    raft_groups(w, &b);
    peers(w, &b);
    cluster_port(w, &b);
    if (w->hooks.metrics != NULL)
        w->hooks.metrics(w->hooks.ctx, &b);
    http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    pc_buf_free(&b);
}

/* 200 only when the node is a member of an initialised pool and serves clients: what a load
 * balancer should send clients to. */
void web_health(struct web_service *w, struct http_req *r)
{
    const char *why = NULL;
    if (w->hooks.serving != NULL && !w->hooks.serving(w->hooks.ctx))
        why = "not serving (starting or shutting down)";
    else if (!cluster_meta_ready(w->cl))
        why = "the pool's metadata is not available on this node yet";
    else {
        struct cluster_node nodes[64];
        char addr[64][128];
        size_t n = cluster_members(w->cl, nodes, addr, 64);
        bool member = false;
        for (size_t i = 0; i < n && i < 64; i++)
            member = member || nodes[i].id == cluster_node_id(w->cl);
        if (!member)
            why = "this node is not a member of the pool (waiting for node add?)";
    }
    if (why != NULL)
        http_reply_json(r, 503, json_pack("{s:b, s:s}", "ok", 0, "error", why));
    else
        http_reply_json(r, 200, json_pack("{s:b, s:I}", "ok", 1, "node",
                                          (json_int_t)cluster_node_id(w->cl)));
}
