/* The owner's half of administrators' history changes and of retention: it chooses the
 * messages from its store (a ready leader holds every committed message) and queues one
 * shard op per change, so that apply on every replica only executes the choice
 * (shard_edit.c). */

#include <string.h>
#include <strings.h>

#include "cluster/pool_int.h"
#include "cluster/roomlog.h"
#include "cluster/shard_op.h"
#include "cluster/shard_fsm.h"
#include "common/pc_alloc.h"
#include "common/pc_arena.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"
#include "storage/store.h"
#include "storage/store_keys.h"


static const char *find(const char *hay, const char *needle, bool case_sensitive)
{
    return case_sensitive ? strstr(hay, needle) : strcasestr(hay, needle);
}

/* Does text match the keywords (whitespace-separated words, or one phrase)? */
static bool keywords_match(const char *text, const struct room_edit *e)
{
    if (e->keywords == NULL || e->keywords[0] == '\0')
        return true;
    if (e->match == ROOM_MATCH_EXACT)
        return find(text, e->keywords, e->case_sensitive) != NULL;
    char *words = pc_strdup(e->keywords), *save = NULL;
    bool any = false, all = true;
    for (char *w = strtok_r(words, " \t\r\n", &save); w != NULL; w = strtok_r(NULL, " \t\r\n", &save)) {
        bool hit = find(text, w, e->case_sensitive) != NULL;
        any |= hit;
        all &= hit;
    }
    pc_free(words);
    return e->match == ROOM_MATCH_ALL ? all : any;
}

static bool selected(const struct room_msg *m, const struct room_edit *e)
{
    if (m->flags & ROOM_MSG_REMOVED)
        return false;
    if ((m->flags & ROOM_MSG_REPLACED) && !e->remove)
        return false; /* replaced already: doing it again would loop forever */
    if (e->seq != 0 && m->seq != e->seq)
        return false;
    if (e->from_us != 0 && m->ts_us < e->from_us)
        return false;
    if (e->author != NULL && e->author[0] != '\0' && strcasecmp(m->author, e->author) != 0)
        return false;
    return keywords_match(m->text, e);
}

/* What a shard op may carry (shard_op.h): a longer field would make every replica skip the
 * whole entry, other users' posts with it. */
static bool admin_fields_fit(const struct room_req *req)
{
    return req->user != NULL && strlen(req->user) <= SHARD_MAX_URI &&
           (req->text == NULL || strlen(req->text) <= SHARD_MAX_TEXT);
}

/* Strings and room identity of an administrator's op (freed by op_free). */
static struct shard_op admin_op(struct cluster *cl, enum shard_op_kind kind,
                                const struct room_req *req, uint64_t seq)
{
    const struct meta_room *rm = meta_room_by_no(cluster_meta(cl), req->room_no);
    return (struct shard_op){.kind = kind, .room_no = req->room_no, .target_seq = seq,
                             .ts_us = pc_wall_us(), .author = pc_strdup(req->user),
                             .text = pc_strdup(req->text != NULL ? req->text : ""),
                             .room_guid = pc_strdup(rm ? rm->guid : ""),
                             .room_name = pc_strdup(rm ? rm->name : ""),
                             .remove = req->edit->remove};
}

void owner_edit(struct pool_shard *sh, uint64_t origin, uint64_t req_id, const struct room_req *req)
{
    struct cluster *cl = sh->pl;
    const struct room_edit *e = req->edit;
    if (!admin_fields_fit(req)) {
        owner_answer(cl, origin, req_id, &(struct room_res){.status = PC_EINVAL});
        return;
    }
    /* A room still being back-filled here has holes the owner cannot choose from: the
     * asker retries (a back-fill takes moments). */
    if (backfill_pending(cl, req->room_no)) {
        owner_answer(cl, origin, req_id, &(struct room_res){.status = PC_ENOTOWNER});
        return;
    }
    uint64_t floor = shard_fsm_room_floor(sh->fsm, req->room_no);
    uint64_t from = e->seq != 0 ? e->seq : (e->after > floor ? e->after : floor) + 1;
    uint8_t lo[STORE_MSG_KEY_LEN], hi[STORE_MSG_KEY_LEN];
    store_key_msg(lo, req->room_no, from);
    store_key_msg(hi, req->room_no, e->seq != 0 ? e->seq + 1 : UINT64_MAX);
    struct store_iter *it = store_iter_new(cl->st, STORE_CF_MSGS, lo, sizeof lo, hi, sizeof hi);
    uint64_t *seqs = NULL, scanned = 0, stopped = 0;
    size_t n = 0;
    for (store_iter_first(it); store_iter_valid(it) && n < ROOM_EDIT_MAX; store_iter_next(it)) {
        if (++scanned > ROOM_EDIT_SCAN) {
            stopped = from + scanned - 2; /* the last one looked at: the next round goes on */
            break;
        }
        struct pc_str k = store_iter_key(it), v = store_iter_value(it);
        struct pc_arena a = {0};
        struct room_msg m = {0};
        if (k.len != STORE_MSG_KEY_LEN || roomlog_decode_msg(v.p, v.len, &m, &a) != 0) {
            pc_arena_free(&a);
            continue;
        }
        store_key_msg_parse((const uint8_t *)k.p, &m.room_no, &m.seq);
        /* Times grow with seqs (the proposer never stamps backwards): stop past the range. */
        bool past = e->to_us != 0 && m.ts_us > e->to_us;
        if (!past && selected(&m, e)) {
            seqs = pc_realloc(seqs, (n + 1) * sizeof *seqs);
            seqs[n++] = m.seq;
        }
        pc_arena_free(&a);
        if (past)
            break;
    }
    int rc = store_iter_status(it);
    store_iter_free(it);
    if (rc != 0 || n == 0) {
        owner_answer(cl, origin, req_id, &(struct room_res){.status = rc, .floor = stopped});
        pc_free(seqs);
        return;
    }
    /* One op per message; the last carries the request, answered once it is applied
     * (ops of one shard commit in order, so every other is applied by then). */
    for (size_t i = 0; i < n; i++) {
        bool last = i + 1 == n;
        struct pool_op *o = owner_queue(sh, last ? origin : 0, last ? req_id : 0,
                                        admin_op(cl, SHARD_OP_EDIT, req, seqs[i]));
        o->answer_seq = n;
        o->answer_floor = stopped;
    }
    pc_free(seqs);
}

uint64_t owner_purge_seq(struct cluster *cl, uint64_t room_no, uint64_t floor, uint64_t last,
                         int64_t to_us)
{
    /* The newest message stamped at or before to_us: a binary search over seqs, each probe
     * a seek to the first stored message at or after it (purged or missing seqs have no
     * key), so the cost is logarithmic whatever the room's size. */
    uint8_t lo[STORE_MSG_KEY_LEN], hi[STORE_MSG_KEY_LEN];
    store_key_msg(lo, room_no, floor + 1);
    store_key_msg(hi, room_no, last + 1);
    struct store_iter *it = store_iter_new(cl->st, STORE_CF_MSGS, lo, sizeof lo, hi, sizeof hi);
    uint64_t a = floor + 1, b = last, found = floor;
    while (a <= b && b != 0) {
        uint64_t mid = a + (b - a) / 2;
        uint8_t k[STORE_MSG_KEY_LEN];
        store_key_msg(k, room_no, mid);
        store_iter_seek(it, k, sizeof k);
        struct pc_arena ar = {0};
        struct room_msg m = {0};
        bool ok = store_iter_valid(it) && store_iter_key(it).len == STORE_MSG_KEY_LEN;
        if (ok) {
            struct pc_str v = store_iter_value(it);
            store_key_msg_parse((const uint8_t *)store_iter_key(it).p, &m.room_no, &m.seq);
            ok = m.seq <= b && roomlog_decode_msg(v.p, v.len, &m, &ar) == 0;
        }
        if (ok && m.ts_us <= to_us) {
            found = m.seq;
            a = m.seq + 1;
        } else {
            b = mid - 1;
        }
        pc_arena_free(&ar);
    }
    store_iter_free(it);
    return found;
}

void owner_purge(struct pool_shard *sh, uint64_t origin, uint64_t req_id, const struct room_req *req)
{
    struct cluster *cl = sh->pl;
    if (!admin_fields_fit(req)) {
        owner_answer(cl, origin, req_id, &(struct room_res){.status = PC_EINVAL});
        return;
    }
    /* A room still being back-filled here has holes the owner cannot choose from: the
     * asker retries (a back-fill takes moments). */
    if (backfill_pending(cl, req->room_no)) {
        owner_answer(cl, origin, req_id, &(struct room_res){.status = PC_ENOTOWNER});
        return;
    }
    uint64_t floor = shard_fsm_room_floor(sh->fsm, req->room_no);
    uint64_t upto = owner_purge_seq(cl, req->room_no, floor,
                                    shard_fsm_room_last(sh->fsm, req->room_no), req->edit->to_us);
    if (upto <= floor) {
        owner_answer(cl, origin, req_id, &(struct room_res){.seq = floor});
        return;
    }
    struct pool_op *o = owner_queue(sh, origin, req_id, admin_op(cl, SHARD_OP_PURGE, req, upto));
    o->answer_seq = upto;
}

/* An import is refused whole when it would not store what it says: ids taken by other
 * messages (compared by time and author), or ids that do not follow the room's last one.
 * Checked here, before anything reaches the log, since apply can only skip. */
static int import_check(struct cluster *cl, struct pool_shard *sh, const struct room_req *req)
{
    uint64_t last = shard_fsm_room_last(sh->fsm, req->room_no);
    uint64_t floor = shard_fsm_room_floor(sh->fsm, req->room_no);
    for (size_t i = 0; i < req->n_msgs; i++) {
        const struct room_msg *m = &req->msgs[i];
        if (m->seq == 0 || m->seq == UINT64_MAX || m->author == NULL || m->author[0] == '\0' ||
            strlen(m->author) > SHARD_MAX_URI || strlen(m->text) > SHARD_MAX_TEXT ||
            (i > 0 && m->seq != req->msgs[i - 1].seq + 1))
            return PC_EINVAL;
        if (m->seq > last) {
            if (m->seq != last + 1 && last != floor)
                return PC_EINVAL; /* a hole inside the room's history */
            break; /* the rest follow it */
        }
        if (m->seq <= floor)
            continue;
        struct pc_arena a = {0};
        struct room_msg *have = NULL;
        size_t n = 0;
        int rc = roomlog_read(cl->st, req->room_no, 0, m->seq, 1, &a, &have, &n);
        bool other = rc == 0 && n == 1 && have[0].seq == m->seq &&
                     (have[0].ts_us != m->ts_us || strcmp(have[0].author, m->author) != 0);
        pc_arena_free(&a);
        if (other)
            return PC_EEXIST;
    }
    return 0;
}

void owner_import(struct pool_shard *sh, uint64_t origin, uint64_t req_id, const struct room_req *req)
{
    struct cluster *cl = sh->pl;
    int rc = import_check(cl, sh, req);
    if (rc != 0) {
        owner_answer(cl, origin, req_id, &(struct room_res){.status = rc});
        return;
    }
    const struct meta_room *rm = meta_room_by_no(cluster_meta(cl), req->room_no);
    for (size_t i = 0; i < req->n_msgs; i++) {
        const struct room_msg *m = &req->msgs[i];
        bool last = i + 1 == req->n_msgs;
        owner_queue(sh, last ? origin : 0, last ? req_id : 0,
                    (struct shard_op){.kind = SHARD_OP_IMPORT, .room_no = req->room_no,
                                      .target_seq = m->seq, .ts_us = m->ts_us,
                                      .author = pc_strdup(m->author), .text = pc_strdup(m->text),
                                      .room_guid = pc_strdup(rm ? rm->guid : ""),
                                      .room_name = pc_strdup(rm ? rm->name : ""),
                                      .flags = m->flags});
    }
}
