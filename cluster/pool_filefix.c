/* Files a replica holds the record of but not all the bytes: a shard snapshot carries file
 * records, not contents (like it carries "messages up to N", not the messages). The
 * missing chunks are fetched from a peer replica one at a time (ROOM_REQ_FILE_FETCH) and
 * stored as they are: committed chunks never change, so any replica's copy is the copy.
 * Until a file is whole here, downloads through this node answer 503 (try another). */
#include "cluster/pool_int.h"
#include "cluster/roomfile.h"
#include "cluster/shard_fsm.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"
#include "storage/store.h"
#include "storage/store_keys.h"

#define FILEFIX_RETRY_MS 2000

struct pool_filefix {
    struct pool_filefix *next;
    struct cluster *cl;
    uint32_t group;
    uint64_t room_no, file_no;
    uint32_t chunk, chunks;
    bool reading;
    uint64_t retry_ms;
    unsigned misses;
};

static void filefix_remove(struct cluster *cl, struct pool_filefix *fx)
{
    for (struct pool_filefix **p = &cl->filefixes; *p != NULL; p = &(*p)->next)
        if (*p == fx) {
            *p = fx->next;
            pc_free(fx);
            return;
        }
}

static void add_missing(void *ctx, const struct room_file *file, uint32_t from)
{
    struct pool_shard *sh = ctx;
    struct cluster *cl = sh->pl;
    for (struct pool_filefix *fx = cl->filefixes; fx != NULL; fx = fx->next)
        if (fx->room_no == file->room_no && fx->file_no == file->file_no)
            return; /* already being repaired */
    struct pool_filefix *fx = pc_calloc(1, sizeof *fx);
    *fx = (struct pool_filefix){.next = cl->filefixes, .cl = cl, .group = sh->id,
                                .room_no = file->room_no,
                                .file_no = file->file_no, .chunk = from, .chunks = file->chunks};
    cl->filefixes = fx;
    pc_notice("cluster: file %016llx of room %llu lacks chunks %u..%u here: fetching them from "
              "a peer", (unsigned long long)file->file_no, (unsigned long long)file->room_no,
              from, file->chunks - 1);
}

void filefix_scan(struct cluster *cl, struct pool_shard *sh)
{
    /* Only groups whose snapshot brought file records: the scan reads every file's keys. */
    uint8_t k[8];
    struct pc_buf v = {0};
    size_t klen = store_key_filecheck(k, sh->id);
    bool marked = store_get(cl->st, STORE_CF_STATE, k, klen, &v) == 0;
    pc_buf_free(&v);
    if (!marked)
        return;
    struct pool_filefix *before = cl->filefixes;
    bool busy = false;
    for (struct pool_filefix *fx = before; fx != NULL && !busy; fx = fx->next)
        busy = fx->group == sh->id;
    if (shard_fsm_missing_files(sh->fsm, add_missing, sh) != 0) {
        pc_warn("cluster: shard %u: could not list the files to repair; next start retries",
                sh->id);
        return;
    }
    if (!busy && cl->filefixes == before) { /* nothing missing: done with this snapshot */
        struct store_batch *b = store_batch_new(cl->st);
        store_batch_delete(b, STORE_CF_STATE, k, klen);
        store_write(cl->st, b, false);
        store_batch_free(b);
    }
}

static bool file_exists(struct cluster *cl, uint64_t room_no, uint64_t file_no)
{
    struct pc_arena a = {0};
    struct room_file f;
    bool gone = cluster_file_get(cl, room_no, file_no, &f, &a) == PC_ENOTFOUND;
    pc_arena_free(&a);
    return !gone;
}

void filefix_check(struct cluster *cl, struct pool_shard *sh, uint64_t room_no, uint64_t file_no)
{
    struct pc_arena a = {0};
    struct room_file f;
    if (cluster_file_get(cl, room_no, file_no, &f, &a) == 0) {
        uint32_t from = roomfile_first_missing(cl->st, room_no, file_no, f.chunks);
        if (from < f.chunks)
            add_missing(sh, &f, from);
    }
    pc_arena_free(&a);
}

void filefix_purged(struct cluster *cl, uint64_t room_no)
{
    struct pool_filefix *fx = cl->filefixes, *next;
    for (; fx != NULL; fx = next) {
        next = fx->next;
        if (fx->room_no == room_no && !fx->reading && !file_exists(cl, room_no, fx->file_no))
            filefix_remove(cl, fx); /* one being read is dropped when its answer comes */
    }
}

static void fetched(void *arg, const struct room_res *res)
{
    struct pool_filefix *fx = arg;
    struct cluster *cl = fx->cl;
    fx->reading = false;
    if (cl->closing)
        return;
    /* Purged here meanwhile: a peer that has not applied the purge yet must not bring
     * the bytes back. */
    if (!file_exists(cl, fx->room_no, fx->file_no)) {
        filefix_remove(cl, fx);
        return;
    }
    if (res->status != 0 || res->data_len == 0 || res->data_len > CLUSTER_FILE_CHUNK) {
        /* This peer lacks it too (it installed a snapshot as well), or is unreachable. */
        if (++fx->misses == 5)
            pc_warn("cluster: no peer has sent chunk %u of file %016llx (room %llu) yet: %s",
                    fx->chunk, (unsigned long long)fx->file_no, (unsigned long long)fx->room_no,
                    res->status != 0 ? pc_strerror(res->status) : "empty answer");
        fx->retry_ms = pc_mono_ms() + FILEFIX_RETRY_MS;
        return;
    }
    struct store_batch *b = store_batch_new(cl->st);
    roomfile_put_chunk(b, fx->room_no, fx->file_no, fx->chunk, res->data, res->data_len);
    int rc = store_write(cl->st, b, false);
    store_batch_free(b);
    if (rc != 0) {
        fx->retry_ms = pc_mono_ms() + FILEFIX_RETRY_MS;
        return;
    }
    fx->misses = 0;
    fx->chunk = roomfile_first_missing(cl->st, fx->room_no, fx->file_no, fx->chunks);
    if (fx->chunk >= fx->chunks) {
        pc_notice("cluster: file %016llx of room %llu is whole here again",
                  (unsigned long long)fx->file_no, (unsigned long long)fx->room_no);
        struct pool_shard *sh = pool_shard_by_group(cl, fx->group);
        filefix_remove(cl, fx);
        if (sh != NULL)
            filefix_scan(cl, sh); /* the group's last one: clears its mark */
    }
}

void filefix_tick(struct cluster *cl, uint64_t now)
{
    struct pool_filefix *fx = cl->filefixes, *next;
    for (; fx != NULL; fx = next) {
        next = fx->next; /* fetched may run inside route_submit and remove fx */
        if (fx->reading || now < fx->retry_ms)
            continue;
        struct room_req req = {.kind = ROOM_REQ_FILE_FETCH, .room_no = fx->room_no,
                               .user = "system (file repair)", .file_no = fx->file_no,
                               .chunk = fx->chunk, .any_replica = true,
                               .replica_pick = fx->misses}; /* the next peer after a miss */
        fx->reading = true;
        if (route_submit(cl, &req, fetched, fx) != 0) {
            fx->reading = false;
            fx->retry_ms = now + FILEFIX_RETRY_MS;
        }
    }
}

void filefix_close(struct cluster *cl)
{
    while (cl->filefixes != NULL)
        filefix_remove(cl, cl->filefixes);
}
