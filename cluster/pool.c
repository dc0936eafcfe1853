/* The pool: cluster.h over one metadata raft group and S shard groups that every voter of
 * the pool replicates, one cluster port (raft_mux) and the peer link. A pool of one node
 * is the same code with one voter. This file starts and stops the pieces and runs the two
 * loop hooks: a prepare (once per loop pass: propose what the pass collected) and a tick
 * (retries and timeouts). docs/POOL.md has the protocol. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/cluster_tls.h"
#include "cluster/fsm_util.h"
#include "cluster/pool_int.h"
#include "cluster/roomfile.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"
#include "storage/store.h"

/* ---- lookups ------------------------------------------------------------------------------ */

struct pool_shard *pool_shard_by_group(struct cluster *cl, uint32_t group)
{
    return group >= 1 && group <= cl->n_shards ? &cl->shards[group - 1] : NULL;
}

struct pool_shard *pool_shard_of_room(struct cluster *cl, uint64_t room_no)
{
    const struct meta_room *rm = meta_room_by_no(cluster_meta(cl), room_no);
    return rm != NULL ? pool_shard_by_group(cl, rm->shard + 1) : NULL;
}

int pool_send(struct cluster *cl, uint64_t node, uint8_t type, const struct pc_buf *b)
{
    if (cl->peers == NULL)
        return PC_EUNAVAIL; /* closing */
    int rc = peer_send(cl->peers, node, type, b->data, b->len);
    if (rc != 0)
        pc_warn("cluster: %s to node %llu not sent: %s", pool_msg_type_name(type),
                (unsigned long long)node, pc_strerror(rc));
    return rc;
}

/* ---- peer link ------------------------------------------------------------------------------ */

static void on_peer_message(void *ctx, uint64_t from, uint8_t type, const void *p, size_t len)
{
    struct cluster *cl = ctx;
    if (cl->closing)
        return;
    struct pc_arena arena = {0};
    int rc = PC_EPROTO;
    switch (type) {
    case POOL_MSG_ROOM_REQ: {
        struct pool_room_req m;
        if ((rc = pool_room_req_decode(p, len, &arena, &m)) == 0)
            owner_request(cl, from, m.req_id, &m.req);
        break;
    }
    case POOL_MSG_ROOM_RES: {
        struct pool_room_res m;
        if ((rc = pool_room_res_decode(p, len, &arena, &m)) == 0)
            route_complete(cl, m.req_id, &m.res);
        break;
    }
    case POOL_MSG_ROOM_EVENT: {
        struct room_event ev;
        if ((rc = pool_room_event_decode(p, len, &arena, &ev)) == 0)
            route_event(cl, &ev);
        break;
    }
    case POOL_MSG_SUBSCRIBE: {
        struct pool_subscribe m;
        if ((rc = pool_subscribe_decode(p, len, &arena, &m)) == 0)
            owner_subscribe(cl, from, &m);
        break;
    }
    case POOL_MSG_RESYNC:
        if ((rc = pool_resync_decode(p, len)) == 0)
            route_answers_lost(cl, from);
        break;
    case POOL_MSG_META_REQ: {
        struct pool_meta_req m;
        if ((rc = pool_meta_req_decode(p, len, &m)) == 0) {
            meta_request(cl, from, &m);
            meta_op_clear(&m.op);
        }
        break;
    }
    case POOL_MSG_META_SYNC: {
        uint64_t req_id;
        if ((rc = pool_meta_sync_decode(p, len, &req_id)) == 0)
            meta_sync_request(cl, from, req_id);
        break;
    }
    case POOL_MSG_NODE_STATE: {
        unsigned flags;
        if ((rc = pool_node_state_decode(p, len, &flags)) == 0)
            disk_peer_state(cl, from, flags);
        break;
    }
    case POOL_MSG_META_RES: {
        struct pool_meta_res m;
        if ((rc = pool_meta_res_decode(p, len, NULL, &m)) == 0)
            meta_answer(cl, &m);
        break;
    }
    default:
        break;
    }
    if (rc != 0)
        pc_warn("cluster: bad %s message (type %u, %zu bytes) from node %llu: %s; dropped",
                pool_msg_type_name(type), type, len, (unsigned long long)from, pc_strerror(rc));
    pc_arena_free(&arena);
}

static void on_peer_link(void *ctx, uint64_t node, bool up)
{
    struct cluster *cl = ctx;
    if (cl->closing)
        return;
    pc_notice("cluster: peer link to node %llu %s", (unsigned long long)node, up ? "up" : "down");
    route_link(cl, node, up);
    owner_link(cl, node, up);
    disk_link(cl, node, up);
}

/* ---- loop hooks ----------------------------------------------------------------------------- */

static void prepare_cb(uv_prepare_t *h)
{
    struct cluster *cl = h->data;
    if (cl->closing)
        return;
    meta_prepare(cl);
    for (uint32_t i = 0; i < cl->n_shards; i++)
        owner_propose(&cl->shards[i]);
}

int cluster_shard_transfer(struct cluster *cl, uint32_t group, uint64_t node, uint64_t *leader,
                           const char **why)
{
    struct pool_shard *sh = pool_shard_by_group(cl, group);
    *leader = 0;
    *why = NULL;
    if (sh == NULL)
        return PC_ENOTFOUND;
    *leader = group_leader(sh->g, NULL);
    return handover_start(cl, sh->g, node, why);
}

/* Compliance events a late apply wrote below the adapters' cursors (meta_compl_sweep). */
static void compl_sweep(struct cluster *cl, uint64_t now)
{
    if (now < cl->compl_sweep_due_ms)
        return;
    cl->compl_sweep_due_ms = now + POOL_COMPL_SWEEP_MS;
    unsigned groups = meta_compl_sweep(cluster_meta(cl), cl->st);
    if (groups > 0)
        pc_debug("cluster: deleted taken compliance events left in %u raft group(s)", groups);
}

static void tick_cb(uv_timer_t *h)
{
    struct cluster *cl = h->data;
    if (cl->closing)
        return;
    uint64_t now = pc_mono_ms();
    disk_check(cl, now, false);
    route_tick(cl, now);
    meta_tick(cl, now);
    members_tick(cl);
    retention_tick(cl, now);
    uploads_tick(cl, now);
    filefix_tick(cl, now);
    compl_sweep(cl, now);
    /* Staggered by node id, so that two nodes do not move shards at the same moment. */
    if (++cl->ticks % POOL_BALANCE_TICKS == (cl->self * 37) % POOL_BALANCE_TICKS)
        balance(cl);
}

static void on_shard_leadership(void *ctx, struct group *g, bool ready)
{
    (void)g;
    owner_leadership(ctx, ready);
}

static void on_meta_leadership(void *ctx, struct group *g, bool ready)
{
    (void)g;
    meta_leadership(ctx, ready);
}

static void on_backfill_needed(void *ctx, uint64_t room_no, uint64_t from, uint64_t to)
{
    struct pool_shard *sh = ctx;
    route_backfill_needed(sh->pl, sh->id, room_no, from, to);
}

static void on_purged(void *ctx, uint64_t room_no, uint64_t floor)
{
    struct pool_shard *sh = ctx;
    backfill_purged(sh->pl, room_no, floor);
    filefix_purged(sh->pl, room_no);
}

static void on_files_check(void *ctx)
{
    struct pool_shard *sh = ctx;
    filefix_scan(sh->pl, sh);
}

static void backfill_listed(void *ctx, uint64_t room_no, uint64_t from, uint64_t to)
{
    on_backfill_needed(ctx, room_no, from, to);
}

/* ---- start ------------------------------------------------------------------------------------ */

static void attach_meta(void *fsm_ctx, struct raft *r)
{
    meta_fsm_attach(fsm_ctx, r);
}

static void attach_shard(void *fsm_ctx, struct raft *r)
{
    shard_fsm_attach(fsm_ctx, r);
}

static void fill_group_config(struct cluster *cl, struct group_config *gc, uint32_t id, char *dir,
                              size_t dirlen, struct group_voter *voters)
{
    snprintf(dir, dirlen, "%s/raft/%u", cl->cfg.data_dir, id);
    for (size_t i = 0; i < cl->n_nodes; i++)
        voters[i] = (struct group_voter){cl->nodes[i].id, cl->nodes[i].address};
    *gc = (struct group_config){
        .id = id, .dir = dir, .self_id = cl->self, .self_address = cl->address,
        /* A joining node bootstraps nothing: the pool's leaders add it. */
        .voters = voters, .n_voters = cl->cfg.join ? 0 : cl->n_nodes, .election_ms = cl->cfg.election_ms,
        .heartbeat_ms = cl->cfg.heartbeat_ms, .segment_bytes = cl->cfg.segment_bytes,
        .snapshot_threshold = cl->cfg.snapshot_entries,
        .snapshot_trailing = cl->cfg.snapshot_entries / 4, .ctx = cl};
}

static int start_groups(struct cluster *cl, char *errmsg, size_t errlen)
{
    char dir[1024];
    struct group_voter *voters = pc_calloc(cl->n_nodes, sizeof *voters);
    struct group_config gc;
    fill_group_config(cl, &gc, 0, dir, sizeof dir, voters);
    gc.fsm = meta_fsm_raft(cl->meta_fsm);
    gc.stored_applied = fsm_stored_applied(cl->st, 0);
    gc.attach = attach_meta;
    gc.fsm_ctx = cl->meta_fsm;
    gc.leadership = on_meta_leadership;
    int rc = group_start(cl->loop, cl->mux, &gc, &cl->meta_g, errmsg, errlen);
    for (uint32_t i = 0; i < cl->n_shards && rc == 0; i++) {
        struct pool_shard *sh = &cl->shards[i];
        fill_group_config(cl, &gc, sh->id, dir, sizeof dir, voters);
        gc.fsm = shard_fsm_raft(sh->fsm);
        gc.stored_applied = fsm_stored_applied(cl->st, sh->id);
        gc.attach = attach_shard;
        gc.fsm_ctx = sh->fsm;
        gc.leadership = on_shard_leadership;
        gc.ctx = sh;
        rc = group_start(cl->loop, cl->mux, &gc, &sh->g, errmsg, errlen);
    }
    pc_free(voters);
    return rc;
}

static int create_fsms(struct cluster *cl, char *errmsg, size_t errlen)
{
    struct meta_fsm_config mc = {.st = cl->st, .compl_mask = cl->cfg.compliance_classes};
    int rc = meta_fsm_create(&mc, &cl->meta_fsm);
    if (rc != 0) {
        snprintf(errmsg, errlen, "the metadata in %s/db is unreadable (%s); restore a backup",
                 cl->cfg.data_dir, pc_strerror(rc));
        return rc;
    }
    const struct meta *m = meta_fsm_meta(cl->meta_fsm);
    if (m->domain[0] != '\0' && strcasecmp(m->domain, cl->cfg.domain) != 0) {
        snprintf(errmsg, errlen, "the data in %s belongs to domain %s, but the config says "
                 "domain = %s; fix the config or use another data_dir",
                 cl->cfg.data_dir, m->domain, cl->cfg.domain);
        return PC_EINVAL;
    }
    /* The shard count is fixed when the pool is created: the stored one wins. */
    cl->n_shards = m->shard_count != 0 ? m->shard_count : cl->cfg.shard_count;
    if (m->shard_count != 0 && m->shard_count != cl->cfg.shard_count)
        pc_warn("cluster: the pool has %u shards; [cluster] shards = %u is ignored",
                m->shard_count, cl->cfg.shard_count);
    cl->shards = pc_calloc(cl->n_shards, sizeof *cl->shards);
    for (uint32_t i = 0; i < cl->n_shards; i++) {
        struct pool_shard *sh = &cl->shards[i];
        sh->pl = cl;
        sh->id = i + 1;
        TAILQ_INIT(&sh->pending);
        struct shard_fsm_config sc = {.st = cl->st, .group = sh->id,
                                      .compl_mask = cl->cfg.compliance_classes,
                                      .applied = owner_applied,
                                      .backfill_needed = on_backfill_needed,
                                      .files_check = on_files_check, .purged = on_purged,
                                      .ctx = sh};
        rc = shard_fsm_create(&sc, &sh->fsm);
        if (rc != 0) {
            snprintf(errmsg, errlen, "shard %u: %s", sh->id, pc_strerror(rc));
            return rc;
        }
    }
    return 0;
}

static int copy_nodes(struct cluster *cl, const struct cluster_config *cfg, char *errmsg,
                      size_t errlen)
{
    bool self_listed = false;
    cl->n_nodes = cfg->n_nodes > 0 ? cfg->n_nodes : 1;
    cl->nodes = pc_calloc(cl->n_nodes, sizeof *cl->nodes);
    if (cfg->n_nodes == 0) {
        cl->nodes[0] = (struct cluster_node){cl->self, pc_strdup(cl->address)};
        return 0;
    }
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        cl->nodes[i] = (struct cluster_node){cfg->nodes[i].id, pc_strdup(cfg->nodes[i].address)};
        if (cfg->nodes[i].id == cl->self) {
            self_listed = true;
            if (strcmp(cfg->nodes[i].address, cl->address) != 0) {
                snprintf(errmsg, errlen, "[cluster] peers lists node %llu at %s but this node's "
                         "[cluster] listen is %s; make them agree",
                         (unsigned long long)cl->self, cfg->nodes[i].address, cl->address);
                return PC_EINVAL;
            }
        }
    }
    if (!self_listed) {
        snprintf(errmsg, errlen, "[cluster] peers does not list this node (id %llu); add "
                 "%llu=%s", (unsigned long long)cl->self, (unsigned long long)cl->self, cl->address);
        return PC_EINVAL;
    }
    return 0;
}

static void free_pool(struct cluster *cl)
{
    disk_close(cl);
    for (uint32_t i = 0; cl->shards != NULL && i < cl->n_shards; i++)
        shard_fsm_destroy(cl->shards[i].fsm);
    pc_free(cl->shards);
    if (cl->meta_fsm != NULL)
        meta_fsm_destroy(cl->meta_fsm);
    store_close(cl->st);
    for (size_t i = 0; cl->nodes != NULL && i < cl->n_nodes; i++)
        pc_free((char *)cl->nodes[i].address);
    pc_free(cl->nodes);
    pc_free(cl->node_label);
    pc_free(cl->address);
    pc_free(cl);
}

int cluster_open(uv_loop_t *loop, const struct cluster_config *cfg, const struct cluster_sink *sink,
                 struct cluster **out, char *errmsg, size_t errlen)
{
    struct cluster *cl = pc_calloc(1, sizeof *cl);
    *out = NULL;
    cl->loop = loop;
    cl->cfg = *cfg;
    cl->sink = *sink;
    cl->self = cfg->node_id;
    cl->node_label = pc_strdup(cfg->node_label);
    cl->address = pc_strdup(cfg->address);
    cl->next_req_id = 1;
    cl->next_tag = 1;
    TAILQ_INIT(&cl->meta_out);
    TAILQ_INIT(&cl->meta_propose);
    int rc = copy_nodes(cl, cfg, errmsg, errlen);
    if (rc != 0)
        goto fail;

    char path[1024];
    snprintf(path, sizeof path, "%s/db", cfg->data_dir);
    mkdir(cfg->data_dir, 0750);
    struct store_options so = {.create_if_missing = true};
    rc = store_open(path, &so, &cl->st, errmsg, errlen);
    if (rc != 0)
        goto fail;
    store_set_free_floor(cl->st, cfg->min_free_bytes / 2); /* pool_disk.c: the last line */
    rc = create_fsms(cl, errmsg, errlen);
    if (rc != 0)
        goto fail;

    SSL_CTX *tls = NULL;
    if (cfg->tls_cert != NULL && cfg->tls_cert[0] != '\0') {
        rc = cluster_tls_context(cfg->tls_ca, cfg->tls_cert, cfg->tls_key, cl->self, &tls,
                                 errmsg, errlen);
        if (rc != 0)
            goto fail;
        char what[512];
        cluster_tls_describe(tls, what, sizeof what);
        pc_notice("cluster: mutual TLS on the cluster port with the pool CA %s; this node's %s",
                  cfg->tls_ca, what);
    } else {
        pc_warn("cluster: THE CLUSTER PORT %s IS NOT AUTHENTICATED: raft and node-to-node "
                "traffic go in clear text, and anyone who can reach the port can pose as a "
                "pool node. Set [cluster] tls_ca, tls_cert and tls_key (docs/OPERATIONS.md, "
                "deploy/pool-ca)", cl->address);
    }
    /* A raft message stuck longer than two election timeouts is worth nothing: the
     * connection is dropped and redialled instead (raft_mux.h). */
    unsigned stall_ms = 2 * (cfg->election_ms ? cfg->election_ms : GROUP_ELECTION_MS);
    struct raft_mux_config mc = {.node_id = cl->self, .address = cl->address, .tls = tls,
                                 .raft_stall_ms = stall_ms > 2000 ? stall_ms : 2000};
    rc = raft_mux_create(loop, &mc, &cl->mux);
    SSL_CTX_free(tls); /* the mux holds its own reference */
    if (rc != 0) {
        snprintf(errmsg, errlen, "cannot listen on the cluster port %s (%s): is another node "
                 "using it? set [cluster] listen", cl->address, pc_strerror(rc));
        goto fail;
    }
    raft_mux_set_admit(cl->mux, members_admit, cl);
    struct peer_addr *pa = pc_calloc(cl->n_nodes, sizeof *pa);
    for (size_t i = 0; i < cl->n_nodes; i++)
        pa[i] = (struct peer_addr){cl->nodes[i].id, cl->nodes[i].address};
    /* A peer silent that long is cut off, as raft would judge it (peer.h). */
    struct peer_link_config pc = {.self_id = cl->self, .peers = pa, .n_peers = cl->n_nodes,
                                  .silence_down_ms = mc.raft_stall_ms};
    struct peer_handlers ph = {.ctx = cl, .message = on_peer_message, .link = on_peer_link};
    rc = peer_link_start(loop, cl->mux, &pc, &ph, &cl->peers);
    pc_free(pa);
    if (rc != 0) {
        snprintf(errmsg, errlen, "peer link: %s", pc_strerror(rc));
        goto fail;
    }
    rc = start_groups(cl, errmsg, errlen);
    if (rc != 0)
        goto fail; /* raft groups half started: the process exits, nothing is torn down */
    for (uint32_t i = 0; i < cl->n_shards; i++) {
        shard_fsm_backfill_list(cl->shards[i].fsm, backfill_listed, &cl->shards[i]);
        filefix_scan(cl, &cl->shards[i]); /* a repair a restart interrupted */
    }

    if (cfg->min_free_bytes == 0)
        pc_warn("disk: [node] min_free_space = 0: nothing stops writes before the data disk is "
                "full, and RocksDB aborts the process when its log cannot be written; set it "
                "(default 256M)");
    disk_check(cl, pc_mono_ms(), true); /* a node started on a full disk refuses writes at once */
    uv_prepare_init(loop, &cl->prepare);
    cl->prepare.data = cl;
    uv_prepare_start(&cl->prepare, prepare_cb);
    uv_timer_init(loop, &cl->tick);
    cl->tick.data = cl;
    uv_timer_start(&cl->tick, tick_cb, POOL_TICK_MS, POOL_TICK_MS);
    pc_notice("cluster: node %llu (%s) on %s: %zu voter(s), %u shards, data in %s",
              (unsigned long long)cl->self, cl->node_label, cl->address, cl->n_nodes, cl->n_shards,
              cfg->data_dir);
    *out = cl;
    return 0;
fail:
    if (cl->mux == NULL)
        free_pool(cl);
    /* Otherwise handles are live on the loop: the process is about to exit anyway. */
    return rc;
}

/* ---- close ------------------------------------------------------------------------------------ */

static void mux_closed(void *arg)
{
    struct cluster *cl = arg;
    void (*cb)(void *) = cl->close_cb;
    void *cb_arg = cl->close_arg;
    free_pool(cl);
    if (cb != NULL)
        cb(cb_arg);
}

static void group_closed(void *arg)
{
    struct cluster *cl = arg;
    if (--cl->groups_left > 0)
        return;
    /* Every group is closed, so every transport is released: the mux can go. */
    if (raft_mux_close(cl->mux, mux_closed, cl) != 0) {
        pc_error("cluster: the cluster port could not be closed cleanly");
        mux_closed(cl);
    }
}

static void handle_closed(uv_handle_t *h)
{
    struct cluster *cl = h->data;
    if (--cl->handles_left > 0)
        return;
    /* Both loop hooks are closed: now the peer link, then every group. */
    peer_link_close(cl->peers, NULL, NULL);
    cl->peers = NULL;
    cl->groups_left = 1 + (int)cl->n_shards;
    group_close(cl->meta_g, group_closed, cl);
    for (uint32_t i = 0; i < cl->n_shards; i++)
        group_close(cl->shards[i].g, group_closed, cl);
}

void cluster_close(struct cluster *cl, void (*cb)(void *arg), void *arg)
{
    if (cl->closing)
        return;
    cl->closing = true;
    cl->close_cb = cb;
    cl->close_arg = arg;
    /* The groups are freed before the cluster port closes: the admit filter must not look
     * at them any more. Connections that arrive meanwhile are refused as not served (their
     * groups are closing, the peer link is gone), which is what they are. */
    raft_mux_set_admit(cl->mux, NULL, NULL);
    /* Callers are answered first (nothing more is proposed), then the pieces close in the
     * reverse order of their start. */
    route_close(cl);
    meta_close(cl);
    owner_close(cl);
    cl->handles_left = 2;
    uv_close((uv_handle_t *)&cl->prepare, handle_closed);
    uv_close((uv_handle_t *)&cl->tick, handle_closed);
}

/* ---- reads --------------------------------------------------------------------------------- */

const struct meta *cluster_meta(const struct cluster *cl)
{
    return meta_fsm_meta(cl->meta_fsm);
}

struct store *cluster_store(const struct cluster *cl)
{
    return cl->st;
}

uint64_t cluster_node_id(const struct cluster *cl)
{
    return cl->self;
}

uint64_t cluster_room_owner(struct cluster *cl, uint64_t room_no)
{
    struct pool_shard *sh = pool_shard_of_room(cl, room_no);
    return sh != NULL ? group_leader(sh->g, NULL) : 0;
}

bool cluster_meta_ready(const struct cluster *cl)
{
    return cluster_meta(cl)->domain[0] != '\0';
}

bool cluster_meta_leader(const struct cluster *cl)
{
    return !cl->closing && group_ready_leader(cl->meta_g);
}

unsigned cluster_room_users(const struct cluster *cl, uint64_t room_no)
{
    return route_room_users(cl, room_no);
}

int cluster_room_submit(struct cluster *cl, const struct room_req *req, room_cb cb, void *arg)
{
    if (cl->closing)
        return PC_EUNAVAIL;
    return route_submit(cl, req, cb, arg);
}

void cluster_stats(const struct cluster *cl, struct cluster_stats *out)
{
    *out = cl->stats;
    out->pending_posts = cl->n_fwd_posts;
    out->store_bytes = 0;
    for (int cf = 0; cf < STORE_CF_COUNT; cf++)
        out->store_bytes += store_property(cl->st, (enum store_cf)cf, "rocksdb.total-sst-files-size");
    out->disk_free_bytes = cl->disk.free_bytes;
    out->disk_total_bytes = cl->disk.total_bytes;
    out->disk_full = cl->disk.full;
    out->disk_full_events = cl->disk.events;
    out->writes_refused_disk_full = cl->disk.refused;
    out->store_enospc = store_enospc_count(cl->st);
    out->store_gated = store_gated_count(cl->st);
    store_memory(cl->st, &out->store_memory);
}

static void group_info(const struct group *g, struct cluster_group_info *out)
{
    struct group_status st;
    group_status(g, &st);
    *out = (struct cluster_group_info){.id = group_id(g), .role = st.role,
                                       .ready = group_ready_leader(g), .voters = st.voters,
                                       .leader = st.leader,
                                       .term = st.term, .commit_index = st.commit_index,
                                       .last_applied = st.last_applied, .last_index = st.last_index};
}

size_t cluster_groups(const struct cluster *cl, struct cluster_group_info *out, size_t max)
{
    size_t n = 1 + cl->n_shards;
    for (size_t i = 0; i < n && i < max; i++)
        group_info(i == 0 ? cl->meta_g : cl->shards[i - 1].g, &out[i]);
    return n;
}

size_t cluster_peers(const struct cluster *cl, struct cluster_peer_info *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < cl->n_nodes; i++) {
        if (cl->nodes[i].id == cl->self)
            continue;
        if (n < max) {
            struct peer_stats ps;
            peer_link_stats(cl->peers, cl->nodes[i].id, &ps);
            out[n] = (struct cluster_peer_info){
                .id = cl->nodes[i].id, .address = cl->nodes[i].address,
                .up = peer_up(cl->peers, cl->nodes[i].id), .sent = ps.sent,
                .received = ps.received, .reconnects = ps.reconnects,
                .silence_downs = ps.silence_downs,
                .dropped = ps.dropped_busy + ps.dropped_down, .queued_bytes = ps.queued_bytes};
        }
        n++;
    }
    return n;
}

void cluster_port_stats(const struct cluster *cl, struct cluster_port_stats *out)
{
    const struct raft_mux_stats *m = raft_mux_stats(cl->mux);
    *out = (struct cluster_port_stats){.tls = raft_mux_tls(cl->mux), .accepted = m->accepted,
                                       .rejected = m->rejected, .dials = m->dials,
                                       .dials_failed = m->dials_failed,
                                       .refused_tls = m->refused_tls,
                                       .refused_identity = m->refused_identity,
                                       .refused_unknown = m->refused_unknown,
                                       .dials_refused = m->dials_refused};
}

/* ---- files (local reads: every replica stores what its shards committed) ---------------- */

int cluster_files(struct cluster *cl, uint64_t room_no,
                  void (*cb)(void *ctx, const struct room_file *f), void *ctx)
{
    return roomfile_list(cl->st, room_no, cb, ctx);
}

int cluster_file_get(struct cluster *cl, uint64_t room_no, uint64_t file_no,
                     struct room_file *out, struct pc_arena *arena)
{
    return roomfile_get(cl->st, room_no, file_no, out, arena);
}

int cluster_file_chunk(struct cluster *cl, uint64_t room_no, uint64_t file_no, uint32_t chunk,
                       struct pc_buf *out)
{
    return roomfile_chunk(cl->st, room_no, file_no, chunk, out);
}
