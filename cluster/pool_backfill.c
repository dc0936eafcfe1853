/* Back-fill: after a shard snapshot install, the messages the snapshot only counted (it
 * carries no history, DESIGN.md §2) are read from another replica and stored here. */
#include "cluster/pool_int.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"

enum { BACKFILL_RETRY_MS = 1000 };

void route_backfill_needed(struct cluster *cl, uint32_t group, uint64_t room_no, uint64_t from,
                           uint64_t to)
{
    /* Runs inside raft (a snapshot install, or start-up): only record; the tick reads. */
    struct pool_backfill *bf = pc_calloc(1, sizeof *bf);
    *bf = (struct pool_backfill){.next = cl->backfills, .cl = cl, .group = group,
                                 .room_no = room_no, .from = from, .to = to};
    cl->backfills = bf;
    pc_notice("cluster: shard %u: messages %llu..%llu of room %llu to back-fill from a peer",
              group, (unsigned long long)from, (unsigned long long)to,
              (unsigned long long)room_no);
}

static void backfill_remove(struct cluster *cl, struct pool_backfill *bf)
{
    for (struct pool_backfill **p = &cl->backfills; *p != NULL; p = &(*p)->next)
        if (*p == bf) {
            *p = bf->next;
            pc_free(bf);
            return;
        }
}

static void backfill_done(void *arg, const struct room_res *res)
{
    struct pool_backfill *bf = arg;
    struct cluster *cl = bf->cl;
    bf->reading = false;
    if (cl->closing)
        return;
    if (bf->from > bf->to || (res->status == 0 && res->floor >= bf->to)) {
        /* Purged meanwhile, here (backfill_purged) or on the peer: the purge reaches this
         * replica through the log, and its 'b' record goes with it. */
        backfill_remove(cl, bf);
        return;
    }
    if (res->status == PC_ENOTFOUND) {
        /* This node's metadata does not know the room. Gone if it was created here once;
         * otherwise not applied here yet (a joining node can install a shard snapshot before
         * the metadata one): try again, or the hole stays until a restart. */
        if (bf->room_no <= cluster_meta(cl)->next_room_no) {
            backfill_remove(cl, bf);
            return;
        }
        bf->retry_ms = pc_mono_ms() + BACKFILL_RETRY_MS;
        return;
    }
    /* A purged peer has nothing below its floor: what it lacks there is gone here too
     * once the purge applies (backfill_purged). */
    if (res->status != 0 || res->n_msgs == 0) {
        bf->misses++;
        if (res->status == 0)
            pc_warn("cluster: shard %u: no peer holds messages %llu..%llu of room %llu yet",
                    bf->group, (unsigned long long)bf->from, (unsigned long long)bf->to,
                    (unsigned long long)bf->room_no);
        bf->retry_ms = pc_mono_ms() + BACKFILL_RETRY_MS;
        return;
    }
    struct pool_shard *sh = pool_shard_by_group(cl, bf->group);
    int left = shard_fsm_backfill_store(sh->fsm, bf->room_no, res->msgs, res->n_msgs);
    uint64_t lowest = res->msgs[0].seq; /* oldest first */
    if (left <= 0 || lowest <= bf->from) {
        if (left < 0)
            pc_error("cluster: shard %u: storing back-filled messages of room %llu failed: %s",
                     bf->group, (unsigned long long)bf->room_no, pc_strerror(left));
        else
            pc_notice("cluster: shard %u: room %llu back-filled", bf->group,
                      (unsigned long long)bf->room_no);
        backfill_remove(cl, bf);
        return;
    }
    bf->to = lowest - 1;
}

void backfill_tick(struct cluster *cl, uint64_t now)
{
    struct pool_backfill *bf = cl->backfills, *next;
    for (; bf != NULL; bf = next) {
        next = bf->next; /* backfill_done may run inside route_submit and remove bf */
        if (bf->reading || now < bf->retry_ms)
            continue;
        uint64_t want = bf->to - bf->from + 1;
        struct room_req req = {.kind = ROOM_REQ_HISTORY, .room_no = bf->room_no,
                               .user = "system (back-fill)",
                               .count = (uint32_t)(want < POOL_BACKFILL_PAGE ? want : POOL_BACKFILL_PAGE),
                               .before = bf->to + 1, .any_replica = true,
                               .replica_pick = bf->misses}; /* the next peer after a miss */
        bf->reading = true;
        if (route_submit(cl, &req, backfill_done, bf) != 0) {
            bf->reading = false;
            bf->retry_ms = now + BACKFILL_RETRY_MS;
        }
    }
}

bool backfill_hides(const struct cluster *cl, uint64_t room_no, uint64_t bound, uint32_t count,
                    const struct room_msg *msgs, size_t n)
{
    for (const struct pool_backfill *bf = cl->backfills; bf != NULL; bf = bf->next)
        if (bf->room_no == room_no && bf->from < bound && (n < count || msgs[0].seq <= bf->to))
            return true;
    return false;
}

void backfill_purged(struct cluster *cl, uint64_t room_no, uint64_t floor)
{
    struct pool_backfill *bf = cl->backfills, *next;
    for (; bf != NULL; bf = next) {
        next = bf->next;
        if (bf->room_no != room_no || bf->from > floor)
            continue;
        if (bf->to <= floor && !bf->reading)
            backfill_remove(cl, bf);
        else
            bf->from = floor + 1; /* a read in flight stores only what is still wanted */
    }
}

size_t cluster_backfills(const struct cluster *cl)
{
    size_t n = 0;
    for (const struct pool_backfill *bf = cl->backfills; bf != NULL; bf = bf->next)
        n++;
    return n;
}

bool backfill_pending(const struct cluster *cl, uint64_t room_no)
{
    for (const struct pool_backfill *bf = cl->backfills; bf != NULL; bf = bf->next)
        if (bf->room_no == room_no)
            return true;
    return false;
}

void backfill_close(struct cluster *cl)
{
    while (cl->backfills != NULL)
        backfill_remove(cl, cl->backfills);
}
