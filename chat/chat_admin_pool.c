/* The pool's administrative operations: its state (pool.status, node.info, node.list),
 * membership (node.add, node.remove) and shard ownership (shard.transfer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat/chat_admin_int.h"
#include "chat/chat_int.h"
#include "cluster/cluster.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"

/* The pool as this node sees it: every raft group and every peer link. */
static json_t *pool_status_json(struct chat_service *svc)
{
    size_t n = cluster_groups(svc->cl, NULL, 0);
    struct cluster_group_info *groups = pc_calloc(n, sizeof *groups);
    cluster_groups(svc->cl, groups, n);
    json_t *gl = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct cluster_group_info *g = &groups[i];
        json_array_append_new(gl, json_pack("{s:I, s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                                            "group", (json_int_t)g->id, "kind",
                                            g->id == 0 ? "metadata" : "shard", "role", g->role,
                                            "ready", g->ready, "voters", (json_int_t)g->voters,
                                            "leader", (json_int_t)g->leader,
                                            "term", (json_int_t)g->term, "commit",
                                            (json_int_t)g->commit_index, "applied",
                                            (json_int_t)g->last_applied, "last_index",
                                            (json_int_t)g->last_index, "lag",
                                            (json_int_t)(g->commit_index - g->last_applied)));
    }
    pc_free(groups);
    struct cluster_peer_info peers[64];
    size_t np = cluster_peers(svc->cl, peers, 64);
    json_t *pl = json_array();
    for (size_t i = 0; i < np && i < 64; i++)
        json_array_append_new(pl, json_pack("{s:I, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "node",
                                            (json_int_t)peers[i].id, "address", peers[i].address,
                                            "up", peers[i].up, "sent", (json_int_t)peers[i].sent,
                                            "received", (json_int_t)peers[i].received,
                                            "reconnects", (json_int_t)peers[i].reconnects,
                                            "silence_downs", (json_int_t)peers[i].silence_downs,
                                            "dropped", (json_int_t)peers[i].dropped,
                                            "queued_bytes", (json_int_t)peers[i].queued_bytes));
    return json_pack("{s:b, s:I, s:s, s:b, s:o, s:o, s:I}", "ok", 1, "node",
                     (json_int_t)cluster_node_id(svc->cl), "domain", cluster_meta(svc->cl)->domain,
                     "initialised", cluster_meta_ready(svc->cl), "groups", gl, "peers", pl,
                     "backfills", (json_int_t)cluster_backfills(svc->cl));
}

/* Who this node is, for tools that act on the node's process (pchatctl drill). */
static json_t *node_info_json(struct chat_service *svc)
{
    return json_pack("{s:b, s:I, s:s, s:I, s:s, s:s}", "ok", 1, "node",
                     (json_int_t)cluster_node_id(svc->cl), "name", svc->cfg.node_label, "pid",
                     (json_int_t)getpid(), "sip", svc->cfg.sip_address ? svc->cfg.sip_address : "",
                     "domain", svc->cfg.domain);
}

/* Moves a shard's ownership: {"name": shard group (1..S), "node": target (optional)}. */
static json_t *shard_transfer_json(struct chat_service *svc, json_t *req)
{
    const char *group_s = str_field(req, "name"), *node_s = str_field(req, "node");
    char *end = NULL;
    long group = group_s != NULL ? strtol(group_s, &end, 10) : 0;
    if (group_s == NULL || *end != '\0' || group < 1)
        return error_answer("shard.transfer needs the shard group number (1..S, see "
                            "'pool status'), e.g. pchatctl shard transfer 3 --node 2");
    long node = node_s != NULL ? strtol(node_s, &end, 10) : 0;
    if (node_s != NULL && (*end != '\0' || node < 1))
        return error_answer("--node must be a node id, e.g. --node 2");
    uint64_t leader = 0;
    const char *why = NULL;
    int rc = cluster_shard_transfer(svc->cl, (uint32_t)group, (uint64_t)node, &leader, &why);
    if (rc == PC_ENOTLEADER)
        return error_answer("node %llu owns shard group %ld, not this one: run the command "
                            "against node %llu's admin socket", (unsigned long long)leader,
                            group, (unsigned long long)leader);
    if (rc == PC_ENOTFOUND)
        return error_answer("shard group %ld is not in this pool, or the target node is not "
                            "one of its voters (see 'pool status')", group);
    if (rc == PC_EUNAVAIL && node != 0)
        return error_answer("node %ld cannot take shard group %ld over now: %s; try again in a "
                            "moment", node, group, why);
    if (rc == PC_EUNAVAIL)
        return error_answer("shard group %ld stays here: %s; try again in a moment", group, why);
    if (rc != 0)
        return error_answer("shard group %ld is being moved already; try again in a moment", group);
    return json_pack("{s:b, s:s}", "ok", 1, "result", "transfer started");
}

/* The members with, for each, whether this node's link to it is up. */
static json_t *node_list_json(struct chat_service *svc)
{
    struct cluster_node nodes[64];
    char addr[64][128];
    size_t n = cluster_members(svc->cl, nodes, addr, 64);
    struct cluster_peer_info peers[64];
    size_t np = cluster_peers(svc->cl, peers, 64);
    json_t *list = json_array();
    for (size_t i = 0; i < n && i < 64; i++) {
        bool self = nodes[i].id == cluster_node_id(svc->cl), up = self;
        for (size_t k = 0; k < np && k < 64; k++)
            if (peers[k].id == nodes[i].id)
                up = peers[k].up;
        json_array_append_new(list, json_pack("{s:I, s:s, s:b, s:b}", "node",
                                              (json_int_t)nodes[i].id, "address", nodes[i].address,
                                              "this", self, "reachable", up));
    }
    return json_pack("{s:b, s:o}", "ok", 1, "nodes", list);
}

struct node_change {
    chat_admin_cb cb;
    void *arg;
    char what[96];
};

static void node_change_done(void *arg, const struct meta_result *res)
{
    struct node_change *nc = arg;
    if (res->status != 0) {
        nc->cb(nc->arg, error_answer("%s failed: %s", nc->what, res->errmsg));
    } else {
        pc_notice("admin: %s done", nc->what);
        nc->cb(nc->arg, json_pack("{s:b, s:s}", "ok", 1, "result",
                                  strncmp(nc->what, "node.", 5) == 0
                                      ? "membership changed; 'pool status' shows the groups follow"
                                      : "done"));
    }
    pc_free(nc);
}

/* node.add {"name": id, "address": "host:port"} / node.remove {"name": id} */
static void node_change(struct chat_service *svc, bool add, json_t *req, chat_admin_cb cb,
                        void *arg)
{
    const char *id_s = str_field(req, "name"), *address = str_field(req, "address");
    char *end = NULL;
    long long id = id_s != NULL ? strtoll(id_s, &end, 10) : 0;
    if (id_s == NULL || *end != '\0' || id < 1 || id > 65535) {
        cb(arg, error_answer("node.%s needs the node id (1..65535), e.g. pchatctl node %s 4%s",
                             add ? "add" : "remove", add ? "add" : "remove",
                             add ? " --address 10.0.0.4:7600" : ""));
        return;
    }
    const char *colon = address != NULL ? strrchr(address, ':') : NULL;
    if (add && (colon == NULL || colon == address || atoi(colon + 1) <= 0 || atoi(colon + 1) > 65535)) {
        cb(arg, error_answer("node.add needs --address HOST:PORT, the new node's [cluster] listen"));
        return;
    }
    struct node_change *nc = pc_calloc(1, sizeof *nc);
    nc->cb = cb;
    nc->arg = arg;
    snprintf(nc->what, sizeof nc->what, "node.%s %lld", add ? "add" : "remove", id);
    char err[300];
    int rc = add ? cluster_node_add(svc->cl, (uint64_t)id, address, node_change_done, nc, err, sizeof err)
                 : cluster_node_remove(svc->cl, (uint64_t)id, node_change_done, nc, err, sizeof err);
    if (rc != 0) {
        cb(arg, error_answer("%s: %s", nc->what, err));
        pc_free(nc);
    }
}

/* compliance.forget {"name": adapter}: an adapter taken out of service must stop holding
 * the log back (events are deleted once every registered adapter took them). */
static void compliance_forget(struct chat_service *svc, json_t *req, chat_admin_cb cb, void *arg)
{
    const char *name = str_field(req, "name");
    if (name == NULL || name[0] == '\0') {
        cb(arg, error_answer("compliance.forget needs the adapter's name (xml or exec, see "
                             "'compliance status')"));
        return;
    }
    struct node_change *nc = pc_calloc(1, sizeof *nc);
    nc->cb = cb;
    nc->arg = arg;
    snprintf(nc->what, sizeof nc->what, "compliance.forget %s", name);
    struct meta_op op = {.kind = META_OP_COMPL_FORGET, .ts_us = pc_wall_us()};
    snprintf(op.adapter, sizeof op.adapter, "%s", name);
    snprintf(op.actor, sizeof op.actor, "admin");
    snprintf(op.node, sizeof op.node, "%s", svc->cfg.node_label);
    int rc = cluster_meta_submit(svc->cl, &op, node_change_done, nc);
    if (rc != 0) {
        cb(arg, error_answer("%s: the pool cannot accept changes right now (%s)", nc->what,
                             pc_strerror(rc)));
        pc_free(nc);
    }
}

bool chat_admin_pool(struct chat_service *svc, const char *op, json_t *req, chat_admin_cb cb,
                     void *arg)
{
    if (strcmp(op, "pool.status") == 0)
        cb(arg, pool_status_json(svc));
    else if (strcmp(op, "node.info") == 0)
        cb(arg, node_info_json(svc));
    else if (strcmp(op, "node.list") == 0)
        cb(arg, node_list_json(svc));
    else if (strcmp(op, "node.add") == 0 || strcmp(op, "node.remove") == 0)
        node_change(svc, op[5] == 'a', req, cb, arg);
    else if (strcmp(op, "shard.transfer") == 0)
        cb(arg, shard_transfer_json(svc, req));
    else if (strcmp(op, "compliance.forget") == 0)
        compliance_forget(svc, req, cb, arg);
    else
        return false;
    return true;
}
