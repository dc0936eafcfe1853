/* Retention (issue 7): every shard's ready leader looks at its rooms now and then and, where
 * a room keeps only N days or the last N messages (meta_room_retention), proposes one PURGE
 * up to the newest message that is out of bounds. The choice of seq is the leader's, so
 * every replica deletes exactly the same messages; the purge is one small op among the
 * posts (a delete range at apply), so posting never waits for it. */
#include "cluster/pool_int.h"
#include "cluster/shard_fsm.h"
#include "cluster/shard_op.h"
#include "common/pc_alloc.h"
#include "common/pc_log.h"
#include "common/pc_time.h"

#define DAY_US (86400LL * 1000000)

static void sweep_room(struct cluster *cl, struct pool_shard *sh, const struct meta_room *rm,
                       int64_t now_us)
{
    uint32_t days, keep;
    meta_room_retention(cluster_meta(cl), rm, &days, &keep);
    if (days == 0 && keep == 0)
        return;
    uint64_t floor = shard_fsm_room_floor(sh->fsm, rm->no), last = shard_fsm_room_last(sh->fsm, rm->no);
    uint64_t upto = floor;
    if (keep != 0 && last > keep)
        upto = last - keep;
    if (days != 0) {
        uint64_t by_age = owner_purge_seq(cl, rm->no, floor, last, now_us - (int64_t)days * DAY_US);
        if (by_age > upto)
            upto = by_age;
    }
    if (upto <= floor)
        return;
    char why[96];
    snprintf(why, sizeof why, "retention (%u days, %u messages)", days, keep);
    owner_queue(sh, 0, 0,
                (struct shard_op){.kind = SHARD_OP_PURGE, .room_no = rm->no, .target_seq = upto,
                                  .ts_us = now_us, .author = pc_strdup("system (retention)"),
                                  .text = pc_strdup(why), .room_guid = pc_strdup(rm->guid),
                                  .room_name = pc_strdup(rm->name)});
    pc_info("cluster: room %s: retention purges messages %llu to %llu", rm->name,
            (unsigned long long)floor + 1, (unsigned long long)upto);
}

void retention_tick(struct cluster *cl, uint64_t now)
{
    if (cl->cfg.retention_interval_ms == 0 || now < cl->retention_due_ms)
        return;
    cl->retention_due_ms = now + cl->cfg.retention_interval_ms;
    const struct meta *m = cluster_meta(cl);
    int64_t now_us = pc_wall_us();
    struct meta_room *rm, *tmp;
    HASH_ITER(hh_no, m->rooms_by_no, rm, tmp) {
        struct pool_shard *sh = pool_shard_by_group(cl, rm->shard + 1);
        /* Not a back-filling room: the leader could not see what it lacks. */
        if (sh == NULL || !group_ready_leader(sh->g) || backfill_pending(cl, rm->no))
            continue;
        sweep_room(cl, sh, rm, now_us);
    }
}
