/* Abandoned uploads: a client that stops half-way through an upload leaves chunks that are
 * committed on every replica and that no message announces; nothing else ever deletes
 * them. Every quarter of [cluster] abandoned_upload_s each shard's ready leader lists the
 * files of its rooms that have chunks but no record, and drops a file it has seen so for
 * longer than abandoned_upload_s with one FILE_DROP op. Apply keeps the chunks if a message
 * announced the file meanwhile, and the owner refuses to announce a file whose chunks are
 * gone (owner_file_complete), so a slow upload fails with a clear answer instead of leaving
 * a link to nothing. Sightings live in this node's memory only: a new leader starts
 * counting afresh, which only delays a drop. */
#include "cluster/pool_int.h"
#include "cluster/roomfile.h"
#include "cluster/shard_op.h"
#include "common/pc_alloc.h"
#include "common/pc_log.h"

struct upload_seen {
    struct upload_key {
        uint64_t room_no, file_no;
    } key;
    uint64_t first_ms;
    uint64_t sweep; /* the sweep that last saw it */
    UT_hash_handle hh;
};

struct sweep_ctx {
    struct cluster *cl;
    struct pool_shard *sh;
    const struct meta_room *rm;
    uint64_t now;
};

static void unannounced(void *arg, uint64_t file_no)
{
    struct sweep_ctx *x = arg;
    struct cluster *cl = x->cl;
    struct upload_key key = {x->rm->no, file_no};
    struct upload_seen *u;
    HASH_FIND(hh, cl->uploads_seen, &key, sizeof key, u);
    if (u == NULL) {
        u = pc_calloc(1, sizeof *u);
        u->key = key;
        u->first_ms = x->now;
        HASH_ADD(hh, cl->uploads_seen, key, sizeof key, u);
    }
    u->sweep = cl->uploads_sweep;
    if (x->now - u->first_ms < cl->cfg.abandoned_upload_ms)
        return;
    owner_queue(x->sh, 0, 0,
                (struct shard_op){.kind = SHARD_OP_FILE_DROP, .room_no = key.room_no,
                                  .file_no = file_no});
    cl->stats.uploads_abandoned++;
    pc_notice("cluster: room %s: dropping the chunks of file %016llx, an upload unfinished for "
              "%u s ([cluster] abandoned_upload_s)", x->rm->name, (unsigned long long)file_no,
              cl->cfg.abandoned_upload_ms / 1000);
    HASH_DEL(cl->uploads_seen, u);
    pc_free(u);
}

void uploads_tick(struct cluster *cl, uint64_t now)
{
    if (cl->cfg.abandoned_upload_ms == 0 || now < cl->uploads_due_ms)
        return;
    cl->uploads_due_ms = now + cl->cfg.abandoned_upload_ms / 4;
    cl->uploads_sweep++;
    struct meta_room *rm, *tmp;
    HASH_ITER(hh_no, cluster_meta(cl)->rooms_by_no, rm, tmp) {
        struct pool_shard *sh = pool_shard_by_group(cl, rm->shard + 1);
        if (sh == NULL || !group_ready_leader(sh->g))
            continue;
        struct sweep_ctx x = {cl, sh, rm, now};
        roomfile_unannounced(cl->st, rm->no, unannounced, &x);
    }
    /* Files not seen this time were announced, dropped, or are not ours to watch now. */
    struct upload_seen *u, *next;
    HASH_ITER(hh, cl->uploads_seen, u, next)
        if (u->sweep != cl->uploads_sweep) {
            HASH_DEL(cl->uploads_seen, u);
            pc_free(u);
        }
}

void uploads_free(struct cluster *cl)
{
    struct upload_seen *u, *next;
    HASH_ITER(hh, cl->uploads_seen, u, next) {
        HASH_DEL(cl->uploads_seen, u);
        pc_free(u);
    }
}

bool owner_file_complete(struct cluster *cl, const struct room_file *f)
{
    return roomfile_first_missing(cl->st, f->room_no, f->file_no, f->chunks) == f->chunks;
}
