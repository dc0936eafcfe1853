/* The indexer: every interval, one pass in libuv's thread pool finds what the store has
 * applied beyond the index's watermarks and indexes it in one SQLite transaction. The loop
 * only starts passes and reads their results, so posting never waits for indexing.
 *
 * What a pass reads, all from the store (RocksDB reads are thread-safe):
 *   state 'l' + room → the room's last seq: rooms with new messages;
 *   state 'b' + group + room + from → [from, to] still to be back-filled from a peer: the
 *     watermark stops below `from`, since those messages arrive later;
 *   msgs room + seq, forwards from the watermark.
 * Rooms are found by scanning 'l' (one short key per room) rather than through hooks in
 * the raft apply path, which stays exactly as it was. */
#include <string.h>

#include "common/pc_alloc.h"
#include "common/pc_bin.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"
#include "cluster/roomlog.h"
#include "storage/store.h"
#include "storage/store_keys.h"
#include "search/search_int.h"

struct mark_update {
    uint64_t room_no, seq;
    bool floor; /* a purge floor applied, not a watermark */
};

/* A room whose messages from `from` on are waiting for back-fill. */
struct hole {
    uint64_t room_no, from;
};

struct index_pass {
    uv_work_t req;
    struct search *s;
    bool init;                    /* the first pass: load the marks, count the rows */
    bool reset;                   /* rebuild: empty the index first */
    bool scan_edits;              /* look for removals/replacements too */
    uint64_t sequence;            /* the store's latest write when the pass started */
    struct search_stale *stale;   /* hits the store disagreed with */
    size_t n_stale;
    unsigned budget;              /* messages this pass may index */
    /* results */
    int rc;
    uint64_t indexed, lag;
    int64_t rows_delta;
    bool rows_known;              /* rows_abs holds the count before this pass's changes */
    uint64_t rows_abs;
    bool full;                    /* the budget ran out: run again at once */
    uint64_t elapsed_us;
    struct mark_update *updates;  /* applied to s->marks once committed */
    size_t n_updates, cap_updates;
};

int search_read_msg(struct store *st, uint64_t room_no, uint64_t seq, struct room_msg *m,
                    struct pc_arena *arena)
{
    uint8_t k[STORE_MSG_KEY_LEN];
    store_key_msg(k, room_no, seq);
    struct pc_buf v = {0};
    int rc = store_get(st, STORE_CF_MSGS, k, sizeof k, &v);
    if (rc == 0) {
        memset(m, 0, sizeof *m);
        rc = roomlog_decode_msg(v.data, v.len, m, arena);
        m->room_no = room_no;
        m->seq = seq;
    }
    pc_buf_free(&v);
    return rc;
}

/* ---- worker side ------------------------------------------------------------------------ */

static size_t holes_load(struct store *st, struct hole **out)
{
    uint8_t lo[1] = {STORE_TAG_BACKFILL}, hi[1] = {STORE_TAG_BACKFILL + 1};
    struct store_iter *it = store_iter_new(st, STORE_CF_STATE, lo, 1, hi, 1);
    struct hole *h = NULL;
    size_t n = 0, cap = 0;
    for (store_iter_first(it); store_iter_valid(it); store_iter_next(it)) {
        struct pc_str k = store_iter_key(it);
        if (k.len != 21)
            continue;
        uint64_t room = pc_be64_read((const uint8_t *)k.p + 5);
        uint64_t from = pc_be64_read((const uint8_t *)k.p + 13);
        size_t i = 0;
        while (i < n && h[i].room_no != room)
            i++;
        if (i < n) {
            if (from < h[i].from)
                h[i].from = from;
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            h = pc_realloc(h, cap * sizeof *h);
        }
        h[n++] = (struct hole){.room_no = room, .from = from};
    }
    store_iter_free(it);
    *out = h;
    return n;
}

static void note_mark(struct index_pass *p, uint64_t room_no, uint64_t seq, bool floor)
{
    if (p->n_updates == p->cap_updates) {
        p->cap_updates = p->cap_updates ? p->cap_updates * 2 : 64;
        p->updates = pc_realloc(p->updates, p->cap_updates * sizeof *p->updates);
    }
    p->updates[p->n_updates++] = (struct mark_update){room_no, seq, floor};
}

static uint64_t mark_of(struct search_mark *marks, uint64_t room_no)
{
    struct search_mark *m;
    HASH_FIND(hh, marks, &room_no, sizeof room_no, m);
    return m != NULL ? m->seq : 0;
}

static void mark_set(struct search_mark **marks, uint64_t room_no, uint64_t seq)
{
    struct search_mark *m;
    HASH_FIND(hh, *marks, &room_no, sizeof room_no, m);
    if (m == NULL) {
        m = pc_calloc(1, sizeof *m);
        m->room_no = room_no;
        HASH_ADD(hh, *marks, room_no, sizeof m->room_no, m);
    }
    m->seq = seq;
}

/* Indexes messages (mark, upto] of a room within the budget; returns the new mark. */
static uint64_t index_room(struct index_pass *p, uint64_t room_no, uint64_t mark, uint64_t upto)
{
    struct search *s = p->s;
    uint8_t lo[STORE_MSG_KEY_LEN], hi[STORE_MSG_KEY_LEN];
    store_key_msg(lo, room_no, mark + 1);
    store_key_msg(hi, room_no, upto + 1);
    struct store_iter *it = store_iter_new(s->st, STORE_CF_MSGS, lo, sizeof lo, hi, sizeof hi);
    struct pc_arena arena = {0};
    uint64_t reached = mark;
    bool stopped = false;
    for (store_iter_first(it); store_iter_valid(it) && p->rc == 0; store_iter_next(it)) {
        if (p->indexed >= p->budget) {
            p->full = stopped = true;
            break;
        }
        struct pc_str k = store_iter_key(it);
        struct pc_str v = store_iter_value(it);
        struct room_msg m = {0};
        if (k.len != STORE_MSG_KEY_LEN)
            continue;
        store_key_msg_parse((const uint8_t *)k.p, &m.room_no, &m.seq);
        reached = m.seq;
        if (roomlog_decode_msg(v.p, v.len, &m, &arena) != 0) {
            pc_warn("search: room %llu message %llu cannot be decoded: not indexed",
                    (unsigned long long)room_no, (unsigned long long)m.seq);
            continue;
        }
        unsigned flags = search_msg_flags(&m);
        if (!(flags & SEARCH_MSG_REMOVED)) {
            int rc = sdb_insert(&s->w, &m, flags);
            if (rc < 0)
                p->rc = rc;
            else
                p->rows_delta += rc;
        }
        p->indexed++;
    }
    /* Read to the end: the gaps after the last message (purged ones) are done too. */
    if (!stopped && p->rc == 0 && store_iter_status(it) == 0)
        reached = upto;
    store_iter_free(it);
    pc_arena_free(&arena);
    return reached > mark ? reached : mark;
}

/* The store no longer agrees with a row: drop it, and index again what the store has. */
static void reindex(struct index_pass *p, uint64_t room_no, uint64_t seq)
{
    struct search *s = p->s;
    int rc = sdb_delete(&s->w, room_no, seq);
    if (rc < 0) {
        p->rc = rc;
        return;
    }
    p->rows_delta -= rc;
    struct pc_arena arena = {0};
    struct room_msg m;
    if (search_read_msg(s->st, room_no, seq, &m, &arena) == 0 &&
        !(search_msg_flags(&m) & SEARCH_MSG_REMOVED)) {
        rc = sdb_insert(&s->w, &m, search_msg_flags(&m));
        if (rc < 0)
            p->rc = rc;
        else
            p->rows_delta += rc;
    }
    pc_arena_free(&arena);
}

/* Rows that queries found stale (removed, replaced, purged since they were indexed). */
static void fix_stale(struct index_pass *p)
{
    for (size_t i = 0; i < p->n_stale && p->rc == 0; i++)
        reindex(p, p->stale[i].room_no, p->stale[i].seq);
}

/* Purges raise a room's floor ('p' + room → seq): its rows up to there go, in one delete. */
static void apply_floors(struct index_pass *p)
{
    struct search *s = p->s;
    uint8_t lo[1] = {STORE_TAG_FLOOR}, hi[1] = {STORE_TAG_FLOOR + 1};
    struct store_iter *it = store_iter_new(s->st, STORE_CF_STATE, lo, 1, hi, 1);
    for (store_iter_first(it); store_iter_valid(it) && p->rc == 0; store_iter_next(it)) {
        struct pc_str k = store_iter_key(it), v = store_iter_value(it);
        if (k.len != 9 || v.len != 8)
            continue;
        uint64_t room = pc_be64_read((const uint8_t *)k.p + 1);
        uint64_t floor = pc_be64_read((const uint8_t *)v.p);
        if (floor <= mark_of(s->floors, room))
            continue;
        int rc = sdb_apply_floor(&s->w, room, floor);
        if (rc < 0)
            p->rc = rc;
        else {
            p->rows_delta -= rc;
            note_mark(p, room, floor, true);
        }
    }
    store_iter_free(it);
}

/* Removals and replacements ('e' + room + seq → version, flags, notice): a row indexed with
 * other flags is indexed again. Edits are few, but they are never deleted, so this full
 * scan runs only every edits_ms; queries check every hit meanwhile anyway. */
static void apply_edits(struct index_pass *p)
{
    struct search *s = p->s;
    uint8_t lo[1] = {STORE_TAG_EDIT}, hi[1] = {STORE_TAG_EDIT + 1};
    struct store_iter *it = store_iter_new(s->st, STORE_CF_STATE, lo, 1, hi, 1);
    for (store_iter_first(it); store_iter_valid(it) && p->rc == 0; store_iter_next(it)) {
        struct pc_str k = store_iter_key(it), v = store_iter_value(it);
        if (k.len != 17 || v.len < 2)
            continue;
        uint64_t room = pc_be64_read((const uint8_t *)k.p + 1);
        uint64_t seq = pc_be64_read((const uint8_t *)k.p + 9);
        unsigned flags = (uint8_t)v.p[1], indexed;
        int rc = sdb_row_flags(&s->w, room, seq, &indexed);
        if (rc < 0)
            p->rc = rc;
        else if (rc == 1 && indexed != flags)
            reindex(p, room, seq);
    }
    store_iter_free(it);
}

static void index_rooms(struct index_pass *p)
{
    struct search *s = p->s;
    struct hole *holes = NULL;
    size_t n_holes = holes_load(s->st, &holes);
    uint8_t lo[1] = {STORE_TAG_ROOM_LAST}, hi[1] = {STORE_TAG_ROOM_LAST + 1};
    struct store_iter *it = store_iter_new(s->st, STORE_CF_STATE, lo, 1, hi, 1);
    for (store_iter_first(it); store_iter_valid(it) && p->rc == 0; store_iter_next(it)) {
        struct pc_str k = store_iter_key(it), v = store_iter_value(it);
        if (k.len != 9 || v.len != 8)
            continue;
        uint64_t room = pc_be64_read((const uint8_t *)k.p + 1);
        uint64_t last = pc_be64_read((const uint8_t *)v.p);
        uint64_t upto = last;
        for (size_t i = 0; i < n_holes; i++)
            if (holes[i].room_no == room && holes[i].from <= upto)
                upto = holes[i].from > 0 ? holes[i].from - 1 : 0;
        uint64_t mark = mark_of(s->marks, room), now = mark;
        if (upto > mark && !p->full) {
            now = index_room(p, room, mark, upto);
            if (now != mark) {
                if (sdb_set_mark(&s->w, room, now) != 0)
                    p->rc = PC_EIO;
                note_mark(p, room, now, false);
            }
        }
        if (last > now)
            p->lag += last - now;
    }
    store_iter_free(it);
    pc_free(holes);
}

static void pass_work(uv_work_t *req)
{
    struct index_pass *p = req->data;
    struct search *s = p->s;
    uint64_t t0 = pc_mono_ns();
    if (p->reset) {
        search_marks_free(&s->marks);
        search_marks_free(&s->floors);
        p->rc = sdb_reset(&s->w);
        if (p->rc != 0)
            return;
        p->rows_known = true;
        p->rows_abs = 0;
    } else if (p->init) {
        /* Here rather than at open: on a big index these take a while. */
        p->rc = sdb_load_marks(&s->w, "mark", &s->marks);
        if (p->rc == 0)
            p->rc = sdb_load_marks(&s->w, "floor", &s->floors);
        if (p->rc != 0)
            return;
        p->rows_known = true;
        p->rows_abs = sdb_rows(s->w.db);
    }
    if (sdb_exec(s->w.db, "BEGIN") != 0) {
        p->rc = PC_EIO;
        return;
    }
    fix_stale(p);
    if (p->rc == 0)
        apply_floors(p);
    if (p->rc == 0 && p->scan_edits)
        apply_edits(p);
    if (p->rc == 0)
        index_rooms(p);
    if (p->rc == 0 && sdb_exec(s->w.db, "COMMIT") != 0)
        p->rc = PC_EIO;
    if (p->rc != 0) {
        sdb_exec(s->w.db, "ROLLBACK");
        return;
    }
    for (size_t i = 0; i < p->n_updates; i++)
        mark_set(p->updates[i].floor ? &s->floors : &s->marks, p->updates[i].room_no,
                 p->updates[i].seq);
    p->elapsed_us = (pc_mono_ns() - t0) / 1000;
}

/* ---- loop side -------------------------------------------------------------------------- */

static void start_pass(struct search *s);

static void pass_done(uv_work_t *req, int status)
{
    struct index_pass *p = req->data;
    struct search *s = p->s;
    s->pass = NULL;
    struct search_stats *st = &s->stats;
    st->passes++;
    if (status != 0 || p->rc != 0) {
        pc_warn("search: indexing pass failed (%s); it is retried",
                status != 0 ? uv_strerror(status) : pc_strerror(p->rc));
        /* Rolled back: the marks were not touched; the stale hits wait for the next pass. */
        search_add_stale(s, p->stale, p->n_stale);
        if (p->reset)
            s->rebuild_asked = true;
    } else {
        st->indexed += p->indexed;
        st->lag = p->lag;
        if (p->rows_known)
            st->rows = p->rows_abs;
        if (p->init || p->reset)
            s->marks_loaded = true;
        if (p->rows_delta < 0 && (uint64_t)-p->rows_delta > st->rows)
            st->rows = 0;
        else
            st->rows = (uint64_t)((int64_t)st->rows + p->rows_delta);
        if (p->full && p->elapsed_us > 0)
            st->last_rate = (double)p->indexed * 1e6 / (double)p->elapsed_us;
        if (st->rebuilding && !s->rebuild_asked && p->lag == 0)
            st->rebuilding = false;
    }
    bool again = p->rc == 0 && status == 0 && (p->full || s->rebuild_asked || s->n_stale > 0);
    /* Everything written before the pass began is indexed: until the store changes, a pass
     * would find nothing (an idle node does no work at all). */
    s->seen_valid = p->rc == 0 && status == 0 && !p->full;
    s->last_pass_end_ms = pc_mono_ms();
    s->seen_sequence = p->sequence;
    if (p->scan_edits && p->rc == 0 && status == 0) {
        s->edits_valid = true;
        s->edits_sequence = p->sequence;
    }
    pc_free(p->stale);
    pc_free(p->updates);
    pc_free(p);
    if (s->stopping) {
        search_maybe_finish(s);
        return;
    }
    if (again)
        start_pass(s);
}

static void start_pass(struct search *s)
{
    if (s->pass != NULL || s->stopping)
        return;
    uint64_t sequence = store_latest_sequence(s->st), now = pc_mono_ms();
    bool edits_due = now - s->last_edit_scan_ms >= s->cfg.edits_ms &&
                     !(s->edits_valid && s->edits_sequence == sequence);
    if (s->seen_valid && sequence == s->seen_sequence && !edits_due && !s->rebuild_asked &&
        s->n_stale == 0)
        return;
    struct index_pass *p = pc_calloc(1, sizeof *p);
    p->sequence = sequence;
    if (edits_due) {
        p->scan_edits = true;
        s->last_edit_scan_ms = now;
    }
    p->s = s;
    p->req.data = p;
    p->budget = s->cfg.batch;
    p->init = !s->marks_loaded;
    p->reset = s->rebuild_asked;
    s->rebuild_asked = false;
    if (p->reset) {
        /* Stale hits refer to rows about to vanish anyway. */
        s->n_stale = 0;
        s->stats.rebuilds++;
    }
    p->stale = s->stale;
    p->n_stale = s->n_stale;
    s->stale = NULL;
    s->n_stale = s->cap_stale = 0;
    s->pass = p;
    int rc = uv_queue_work(s->loop, &p->req, pass_work, pass_done);
    if (rc != 0) {
        pc_warn("search: cannot queue an indexing pass: %s", uv_strerror(rc));
        s->pass = NULL;
        search_add_stale(s, p->stale, p->n_stale);
        pc_free(p->stale);
        pc_free(p);
    }
}

static void on_tick(uv_timer_t *t)
{
    start_pass(t->data);
}

void search_index_start(struct search *s)
{
    s->timer.data = s;
    uv_timer_start(&s->timer, on_tick, 0, s->cfg.interval_ms);
}

void search_add_stale(struct search *s, const struct search_stale *st, size_t n)
{
    /* Bounded: past it, stale rows wait for the next query that meets them. */
    if (n == 0 || s->n_stale + n > 100000)
        return;
    if (s->n_stale + n > s->cap_stale) {
        s->cap_stale = (s->n_stale + n) * 2;
        s->stale = pc_realloc(s->stale, s->cap_stale * sizeof *s->stale);
    }
    memcpy(s->stale + s->n_stale, st, n * sizeof *st);
    s->n_stale += n;
}
