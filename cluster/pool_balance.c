/* Shard balancing. Raft elects whoever times out first, so one node may end up owning most
 * shards (and doing most of the work). Each node gives away, now and then, one shard it
 * leads beyond its share ⌈S/N⌉ to a less loaded node: only a quiet one (no proposal for
 * POOL_BALANCE_QUIET_MS), since a transfer stalls its rooms for a moment and may turn
 * in-flight proposals into "outcome unknown" answers; and only to a node that can take it
 * over at once (pool_handover.c), or the rooms would wait an election timeout for nothing. */
#include "cluster/pool_int.h"

#include "common/pc_alloc.h"
#include "common/pc_log.h"
#include "common/pc_time.h"

/* Whether every node is alive with room on its disk: while one is away it would get
 * nothing (or, back, everything), and a full one hands its shards away (pool_disk.c). */
static bool all_fit(const struct cluster *cl)
{
    for (size_t k = 0; k < cl->n_nodes; k++)
        if (!pool_node_alive(cl, cl->nodes[k].id) || disk_node_full(cl, cl->nodes[k].id))
            return false;
    return true;
}

/* The least loaded node under its share that can take sh over now (index), or -1. */
static int target_for(struct cluster *cl, struct pool_shard *sh, const unsigned *count,
                      unsigned share)
{
    int best = -1;
    for (size_t k = 0; k < cl->n_nodes; k++) {
        if (cl->nodes[k].id == cl->self || count[k] + 1 > share ||
            (best >= 0 && count[k] >= count[best]))
            continue;
        const char *why = handover_unfit(cl, sh->g, cl->nodes[k].id);
        if (why != NULL) {
            pc_debug("cluster: balancing: shard group %u not to node %llu: %s", sh->id,
                     (unsigned long long)cl->nodes[k].id, why);
            continue;
        }
        best = (int)k;
    }
    return best;
}

void balance(struct cluster *cl)
{
    if (!cl->cfg.balance || cl->n_nodes < 2 || !all_fit(cl))
        return;
    unsigned *count = pc_calloc(cl->n_nodes, sizeof *count);
    size_t self_i = 0;
    for (size_t k = 0; k < cl->n_nodes; k++)
        if (cl->nodes[k].id == cl->self)
            self_i = k;
    for (uint32_t i = 0; i < cl->n_shards; i++) {
        uint64_t leader = group_leader(cl->shards[i].g, NULL);
        for (size_t k = 0; k < cl->n_nodes; k++)
            if (cl->nodes[k].id == leader)
                count[k]++;
    }
    unsigned share = (cl->n_shards + (unsigned)cl->n_nodes - 1) / (unsigned)cl->n_nodes;
    for (uint32_t i = 0; i < cl->n_shards && count[self_i] > share; i++) {
        struct pool_shard *sh = &cl->shards[i];
        if (!group_ready_leader(sh->g) || sh->inflight > 0 || sh->n_pending > 0 ||
            pc_mono_ms() - sh->proposed_ms < POOL_BALANCE_QUIET_MS)
            continue;
        int k = target_for(cl, sh, count, share);
        if (k < 0)
            continue;
        const char *why;
        if (handover_start(cl, sh->g, cl->nodes[k].id, &why) == 0)
            pc_notice("cluster: balancing: this node owns %u of %u shards (share %u); shard "
                      "group %u goes to node %llu (owns %u)", count[self_i], cl->n_shards, share,
                      sh->id, (unsigned long long)cl->nodes[k].id, count[k]);
        break;
    }
    pc_free(count);
}
