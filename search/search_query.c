/* Queries: the FTS5 candidates, newest first, each verified against the store before it is
 * returned. Runs in libuv's thread pool with a read-only connection of its own (WAL: it
 * never waits for the indexer). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/pc_alloc.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"
#include "search/search_expr.h"
#include "search/search_int.h"

/* Index rows one query may look at: a page of very rare matches among many dropped ones
 * ends early with `more` set, rather than walking the whole index. */
#define SCAN_MAX 2000

struct query_job {
    uv_work_t req;
    struct query_job *queued;     /* the next in s->waiting */
    struct search *s;
    search_cb cb;
    void *arg;
    struct search_request q;      /* strings and arrays below are this job's copies */
    char *text;
    char *expr;
    char **authors;
    uint64_t *rooms;
    uint64_t lag;
    /* results */
    struct pc_arena arena;
    struct search_hit *hits;
    size_t n_hits;
    bool more;
    struct search_cursor next;
    unsigned scanned;
    int status;
    char error[200];
    struct search_stale *stale;
    size_t n_stale, cap_stale;
    uint64_t t0_ns;
    bool dispatched;              /* handed to the thread pool (else answered from the queue) */
};

static sqlite3 *reader_take(struct search *s)
{
    sqlite3 *db = NULL;
    uv_mutex_lock(&s->readers_lock);
    if (s->n_readers > 0)
        db = s->readers[--s->n_readers];
    uv_mutex_unlock(&s->readers_lock);
    return db != NULL ? db : sdb_open_reader(s->path);
}

static void reader_give(struct search *s, sqlite3 *db)
{
    uv_mutex_lock(&s->readers_lock);
    if (s->n_readers < SEARCH_READERS_MAX) {
        s->readers[s->n_readers++] = db;
        db = NULL;
    }
    uv_mutex_unlock(&s->readers_lock);
    if (db != NULL)
        sqlite3_close(db);
}

static void add_stale(struct query_job *j, uint64_t room_no, uint64_t seq)
{
    if (j->n_stale == j->cap_stale) {
        j->cap_stale = j->cap_stale ? j->cap_stale * 2 : 16;
        j->stale = pc_realloc(j->stale, j->cap_stale * sizeof *j->stale);
    }
    j->stale[j->n_stale++] = (struct search_stale){room_no, seq};
}

/* The SQL for this request. msg_text drives (CROSS JOIN fixes the loop order) and is walked
 * by rowid, which is the order key, from the newest down: a page costs about its own
 * size, however many messages match. Room numbers come from the metadata and are written
 * in; the other values are bound. */
static void build_sql(const struct query_job *j, struct pc_buf *sql)
{
    const struct search_request *q = &j->q;
    pc_buf_puts(sql, "SELECT msg_text.rowid, m.room, m.seq, m.flags FROM msg_text CROSS JOIN msg m"
                     " ON m.id = msg_text.rowid WHERE msg_text MATCH ?1 AND m.room IN (");
    for (size_t i = 0; i < q->n_rooms; i++)
        pc_buf_printf(sql, "%s%" PRIu64, i > 0 ? "," : "", q->rooms[i]);
    pc_buf_puts(sql, ")");
    if (q->n_authors > 0) {
        pc_buf_puts(sql, " AND m.author IN (");
        for (size_t i = 0; i < q->n_authors; i++)
            pc_buf_printf(sql, "%s?%zu", i > 0 ? "," : "", 10 + i);
        pc_buf_puts(sql, ")");
    }
    if (q->from_us != 0)
        pc_buf_puts(sql, " AND msg_text.rowid >= ?2");
    if (q->to_us != 0)
        pc_buf_puts(sql, " AND msg_text.rowid <= ?3");
    if (q->has_before)
        pc_buf_puts(sql, " AND msg_text.rowid < ?4");
    pc_buf_puts(sql, " ORDER BY msg_text.rowid DESC");
}

static void bind_all(const struct query_job *j, sqlite3_stmt *st)
{
    const struct search_request *q = &j->q;
    sqlite3_bind_text(st, 1, j->expr, -1, SQLITE_STATIC);
    /* Time bounds as key bounds: every key of a microsecond lies in [us·1024, us·1024+1023]. */
    if (q->from_us != 0)
        sqlite3_bind_int64(st, 2, search_key(q->from_us, 0, 0) & ~(int64_t)1023);
    if (q->to_us != 0)
        sqlite3_bind_int64(st, 3, (search_key(q->to_us, 0, 0) & ~(int64_t)1023) + 1023);
    if (q->has_before)
        sqlite3_bind_int64(st, 4, q->before.key);
    for (size_t i = 0; i < q->n_authors; i++)
        sqlite3_bind_text(st, (int)(10 + i), j->authors[i], -1, SQLITE_STATIC);
}

/* One candidate against the store: the hit to return, or NULL (dropped; stale rows noted). */
static bool verify(struct query_job *j, int64_t key, uint64_t room, uint64_t seq,
                   unsigned indexed_flags, struct search_hit *out)
{
    struct room_msg m;
    int rc = search_read_msg(j->s->st, room, seq, &m, &j->arena);
    if (rc == PC_ENOTFOUND) {
        add_stale(j, room, seq); /* purged (or its room removed) */
        return false;
    }
    if (rc != 0)
        return false;
    unsigned flags = search_msg_flags(&m);
    if ((flags & SEARCH_MSG_REMOVED) || flags != indexed_flags) {
        /* Removed: its row goes. Replaced since it was indexed: the row is indexed again
         * with the new text, and this hit (found by the old words) is not one. */
        add_stale(j, room, seq);
        return false;
    }
    if (!search_expr_accepts(m.text, j->q.text, j->q.mode, j->q.case_sensitive))
        return false;
    *out = (struct search_hit){.room_no = room, .seq = seq, .ts_us = m.ts_us, .key = key,
                               .author = m.author, .text = m.text};
    return true;
}

static void query_work(uv_work_t *req)
{
    struct query_job *j = req->data;
    unsigned limit = j->q.limit;
    sqlite3 *db = reader_take(j->s);
    if (db == NULL) {
        j->status = PC_EIO;
        snprintf(j->error, sizeof j->error, "the search index cannot be opened (see the log)");
        return;
    }
    struct pc_buf sql = {0};
    build_sql(j, &sql);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql.data, -1, &st, NULL) != SQLITE_OK) {
        j->status = PC_EIO;
        snprintf(j->error, sizeof j->error, "search failed: %s", sqlite3_errmsg(db));
        pc_warn("search: %s in %s", sqlite3_errmsg(db), sql.data);
        pc_buf_free(&sql);
        reader_give(j->s, db);
        return;
    }
    pc_buf_free(&sql);
    bind_all(j, st);
    /* One hit more than asked, to know whether another page exists. */
    j->hits = pc_arena_alloc(&j->arena, (limit + 1) * sizeof *j->hits);
    struct search_cursor last = {0};
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t key = sqlite3_column_int64(st, 0);
        uint64_t room = (uint64_t)sqlite3_column_int64(st, 1);
        uint64_t seq = (uint64_t)sqlite3_column_int64(st, 2);
        last.key = key;
        j->scanned++;
        if (verify(j, key, room, seq, (unsigned)sqlite3_column_int(st, 3), &j->hits[j->n_hits]) &&
            ++j->n_hits > limit)
            break;
        if (j->scanned >= SCAN_MAX && j->n_hits < limit)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        j->status = PC_EIO;
        snprintf(j->error, sizeof j->error, "search failed: %s", sqlite3_errmsg(db));
    } else if (j->n_hits > limit) {
        j->n_hits = limit;
        j->more = true;
        j->next.key = j->hits[limit - 1].key;
    } else if (rc == SQLITE_ROW) {
        /* The scan cap: go on from the last row looked at. */
        j->more = true;
        j->next = last;
    }
    sqlite3_finalize(st);
    reader_give(j->s, db);
}

static void job_free(struct query_job *j)
{
    pc_arena_free(&j->arena);
    for (size_t i = 0; i < j->q.n_authors; i++)
        pc_free(j->authors[i]);
    pc_free(j->authors);
    pc_free(j->rooms);
    pc_free(j->text);
    pc_free(j->expr);
    pc_free(j->stale);
    pc_free(j);
}

static void query_done(uv_work_t *req, int status);

static int dispatch(struct search *s, struct query_job *j)
{
    int rc = uv_queue_work(s->loop, &j->req, query_work, query_done);
    if (rc == 0) {
        s->queries_in_pool++;
        j->dispatched = true;
    }
    return rc;
}

/* Starts waiting queries while the pool share allows. */
static void dispatch_waiting(struct search *s)
{
    while (s->waiting != NULL && s->queries_in_pool < SEARCH_QUERIES_IN_POOL && !s->stopping) {
        struct query_job *j = s->waiting;
        s->waiting = j->queued;
        if (s->waiting == NULL)
            s->waiting_tail = NULL;
        int rc = dispatch(s, j);
        if (rc != 0) {
            j->status = PC_EIO;
            snprintf(j->error, sizeof j->error, "cannot start the search: %s", uv_strerror(rc));
            query_done(&j->req, 0);
        }
    }
}

static void query_done(uv_work_t *req, int status)
{
    struct query_job *j = req->data;
    struct search *s = j->s;
    s->queries_running--;
    if (j->dispatched)
        s->queries_in_pool--;
    s->stats.queries++;
    s->stats.dropped_stale += j->n_stale;
    search_add_stale(s, j->stale, j->n_stale);
    struct search_result res = {.status = status != 0 ? PC_EIO : j->status,
                                .error = j->error[0] ? j->error : NULL,
                                .hits = j->hits, .n_hits = j->n_hits, .more = j->more,
                                .next = j->next, .lag = j->lag, .scanned = j->scanned};
    if (status != 0)
        res.n_hits = 0;
    pc_debug("search: %zu hits of %u rows in %.1f ms", res.n_hits, res.scanned,
             (double)(pc_mono_ns() - j->t0_ns) / 1e6);
    j->cb(j->arg, &res);
    job_free(j);
    if (s->stopping)
        search_maybe_finish(s);
    else
        dispatch_waiting(s);
}

void search_queries_cancel(struct search *s)
{
    while (s->waiting != NULL) {
        struct query_job *j = s->waiting;
        s->waiting = j->queued;
        j->status = PC_EUNAVAIL;
        snprintf(j->error, sizeof j->error, "the node is shutting down: search another node");
        query_done(&j->req, 0);
    }
    s->waiting_tail = NULL;
}

int search_run(struct search *s, const struct search_request *req, search_cb cb, void *arg,
               char *err, size_t errlen)
{
    if (s->stopping) {
        snprintf(err, errlen, "the node is shutting down: search another node");
        return PC_EUNAVAIL;
    }
    if (s->queries_running >= SEARCH_QUERIES_MAX) {
        snprintf(err, errlen, "too many searches running on this node: retry in a moment");
        return PC_EBUSY;
    }
    if (req->limit == 0 || req->limit > SEARCH_LIMIT_MAX || req->n_rooms == 0 ||
        req->n_authors > SEARCH_AUTHORS_MAX) {
        snprintf(err, errlen, "a search needs 1..%d results per page, at least one room and "
                 "at most %d authors", SEARCH_LIMIT_MAX, SEARCH_AUTHORS_MAX);
        return PC_EINVAL;
    }
    struct pc_buf words = {0}, expr = {0};
    int rc = search_expr_build(req->text, req->mode, &words, err, errlen);
    if (rc != 0) {
        pc_buf_free(&words);
        return rc;
    }
    search_expr_scope(&expr, words.data, req->rooms, req->n_rooms, req->authors, req->n_authors);
    pc_buf_free(&words);
    struct query_job *j = pc_calloc(1, sizeof *j);
    j->s = s;
    j->cb = cb;
    j->arg = arg;
    j->q = *req;
    j->expr = pc_buf_steal(&expr, NULL);
    j->text = pc_strdup(req->text);
    j->q.text = j->text;
    j->authors = pc_calloc(req->n_authors + 1, sizeof *j->authors);
    for (size_t i = 0; i < req->n_authors; i++)
        j->authors[i] = pc_strdup(req->authors[i]);
    j->q.authors = (const char *const *)j->authors;
    j->rooms = pc_memdup(req->rooms, req->n_rooms * sizeof *req->rooms);
    j->q.rooms = j->rooms;
    j->lag = s->stats.lag;
    j->t0_ns = pc_mono_ns();
    j->req.data = j;
    s->queries_running++;
    if (s->waiting_tail != NULL)
        s->waiting_tail->queued = j;
    else
        s->waiting = j;
    s->waiting_tail = j;
    dispatch_waiting(s);
    return 0;
}
