/* Leadership handovers: the balancer, a full data disk, a node leaving the pool and the
 * operator's `shard transfer` hand a raft group's leadership to another node (raft_transfer).
 *
 * While a transfer runs, the leader refuses proposals (libraft 0.22.1: raft_apply answers
 * RAFT_NOTLEADER) until the target has won an election, or until an election timeout has
 * passed and raft gives up; there is no way to cancel it sooner. A target that cannot take
 * over at once therefore stops the group's rooms for a whole election timeout, for nothing,
 * and the balancer tries again 5 s later. The chaos run showed it: a cut-off follower whose
 * peer connection still looked up (TCP notices only after 10 s) was given shards again and
 * again. So a target must be, right now:
 *   - a voter of the group, other than this node;
 *   - alive: its peer link up and the node heard from within POOL_SILENT_MS (every live
 *     node speaks at least every 250 ms, cluster/peer.c);
 *   - not short of disk (it would refuse what it proposes);
 *   - caught up in that group's log (raft's match index for it within a healthy pipeline of
 *     the leader's last entry), so that raft sends it TimeoutNow at once instead of first
 *     replicating to it while the rooms wait. */
#include "cluster/pool_int.h"

#include "common/pc_err.h"
#include "common/pc_log.h"

enum {
    HANDOVER_MAX_MEMBERS = 64,
    /* Entries a fit target may lack: what a busy leader has in flight (a few per group). */
    HANDOVER_MAX_LAG = 16,
};

bool pool_node_alive(const struct cluster *cl, uint64_t node)
{
    if (node == cl->self)
        return true;
    return cl->peers != NULL && peer_up(cl->peers, node) &&
           peer_silence_ms(cl->peers, node) <= POOL_SILENT_MS;
}

static bool is_voter(const struct group *g, uint64_t node)
{
    struct group_member m[HANDOVER_MAX_MEMBERS];
    size_t n = group_members(g, m, HANDOVER_MAX_MEMBERS);
    for (size_t i = 0; i < n && i < HANDOVER_MAX_MEMBERS; i++)
        if (m[i].id == node)
            return m[i].voter;
    return false;
}

/* Why node cannot take g over from this node now (NULL: it can); *lag = its lag. */
static const char *unfit(struct cluster *cl, struct group *g, uint64_t node, uint64_t *lag)
{
    *lag = UINT64_MAX;
    if (node == cl->self || !is_voter(g, node))
        return "it is not another voter of the group";
    if (!pool_node_alive(cl, node))
        return "it is not reachable";
    if (disk_node_full(cl, node))
        return "its data disk is full";
    if (group_lag(g, node, lag) != 0)
        return "raft knows nothing of its log yet";
    if (*lag > HANDOVER_MAX_LAG)
        return "its log is behind";
    return NULL;
}

const char *handover_unfit(struct cluster *cl, struct group *g, uint64_t node)
{
    uint64_t lag;
    return unfit(cl, g, node, &lag);
}

/* The fit voter that lags least, or 0. */
static uint64_t fittest(struct cluster *cl, struct group *g)
{
    struct group_member m[HANDOVER_MAX_MEMBERS];
    size_t n = group_members(g, m, HANDOVER_MAX_MEMBERS);
    uint64_t best = 0, best_lag = UINT64_MAX;
    for (size_t i = 0; i < n && i < HANDOVER_MAX_MEMBERS; i++) {
        uint64_t lag;
        if (unfit(cl, g, m[i].id, &lag) == NULL && (best == 0 || lag < best_lag)) {
            best = m[i].id;
            best_lag = lag;
        }
    }
    return best;
}

int handover_start(struct cluster *cl, struct group *g, uint64_t node, const char **why)
{
    *why = NULL;
    if (!group_ready_leader(g))
        return PC_ENOTLEADER;
    if (node == 0) {
        node = fittest(cl, g);
        if (node == 0) {
            *why = "no other voter is reachable with its log caught up";
            return PC_EUNAVAIL;
        }
    } else if ((*why = handover_unfit(cl, g, node)) != NULL) {
        return node == cl->self || !is_voter(g, node) ? PC_ENOTFOUND : PC_EUNAVAIL;
    }
    return group_transfer(g, node);
}
