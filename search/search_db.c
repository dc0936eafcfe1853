/* The index file: schema, the indexer's statements, query connections. Runs on worker
 * threads only (and at open/close, when nothing else runs).
 *
 * msg       one row per indexed message: room, seq, time, author, the flags it was indexed
 *           with; id is its order key (search_key: newest first = highest id) and the rowid
 *           of its text in msg_text, so a query walks FTS5's matches in rowid order and
 *           stops after a page instead of sorting every match. UNIQUE(room, seq) makes
 *           indexing idempotent (a pass that died before its commit simply runs again).
 * msg_text  FTS5 over the text (unicode61: case-folded tokens), plus the room as a token
 *           ("r17") and the author, so that a search of a few rooms or authors is narrowed
 *           by the index itself rather than by walking every match. It keeps its own copy
 *           of the text so that a row can be deleted when the message is gone from the store.
 * mark      per room, the seq up to which every message is indexed (written in the same
 *           transaction as the rows, so a crash never skips or doubles a message).
 * floor     per room, the purge floor whose rows are already deleted. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "search/search_expr.h"
#include "search/search_int.h"

/* 2: rowids are order keys (search_key); 3: room and author tags in msg_text. A file of
 * another version is rebuilt. */
#define SCHEMA_VERSION 3

static const char *const schema =
    "CREATE TABLE IF NOT EXISTS msg(id INTEGER PRIMARY KEY, room INTEGER NOT NULL,"
    " seq INTEGER NOT NULL, ts INTEGER NOT NULL, author TEXT NOT NULL,"
    " flags INTEGER NOT NULL DEFAULT 0, UNIQUE(room, seq));"
    "CREATE VIRTUAL TABLE IF NOT EXISTS msg_text USING fts5(text, room_tag, author_tag,"
    " tokenize = 'unicode61');"
    "CREATE TABLE IF NOT EXISTS mark(room INTEGER PRIMARY KEY, seq INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS floor(room INTEGER PRIMARY KEY, seq INTEGER NOT NULL);";

int sdb_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    pc_warn("search: %s (in: %.60s…)", msg != NULL ? msg : sqlite3_errmsg(db), sql);
    sqlite3_free(msg);
    return PC_EIO;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK)
        return 0;
    pc_warn("search: cannot prepare %s: %s", sql, sqlite3_errmsg(db));
    return PC_EIO;
}

static void finalize_all(struct sdb *w)
{
    sqlite3_stmt **all[] = {&w->ins_msg, &w->ins_text, &w->find, &w->del_msg,
                            &w->del_text, &w->set_mark, &w->floor_text, &w->floor_msg,
                            &w->set_floor, &w->flags_of};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
}

static int prepare_all(struct sdb *w)
{
    int rc = 0;
    rc = rc ? rc : prepare(w->db, "INSERT OR IGNORE INTO msg(id, room, seq, ts, author, flags) "
                                  "VALUES (?, ?, ?, ?, ?, ?)", &w->ins_msg);
    rc = rc ? rc : prepare(w->db, "INSERT INTO msg_text(rowid, text, room_tag, author_tag) "
                                  "VALUES (?, ?, ?, ?)", &w->ins_text);
    rc = rc ? rc : prepare(w->db, "SELECT id FROM msg WHERE room = ? AND seq = ?", &w->find);
    rc = rc ? rc : prepare(w->db, "DELETE FROM msg WHERE id = ?", &w->del_msg);
    rc = rc ? rc : prepare(w->db, "DELETE FROM msg_text WHERE rowid = ?", &w->del_text);
    rc = rc ? rc : prepare(w->db, "INSERT OR REPLACE INTO mark(room, seq) VALUES (?, ?)",
                           &w->set_mark);
    rc = rc ? rc : prepare(w->db, "DELETE FROM msg_text WHERE rowid IN "
                                  "(SELECT id FROM msg WHERE room = ?1 AND seq <= ?2)", &w->floor_text);
    rc = rc ? rc : prepare(w->db, "DELETE FROM msg WHERE room = ?1 AND seq <= ?2", &w->floor_msg);
    rc = rc ? rc : prepare(w->db, "INSERT OR REPLACE INTO floor(room, seq) VALUES (?1, ?2)",
                           &w->set_floor);
    rc = rc ? rc : prepare(w->db, "SELECT flags FROM msg WHERE room = ? AND seq = ?", &w->flags_of);
    return rc;
}

/* WAL: queries read while the indexer writes. synchronous=NORMAL: a power loss may lose the
 * last transactions, and the marks with them, so they are simply indexed again. */
static int configure(sqlite3 *db)
{
    sqlite3_busy_timeout(db, 5000);
    return sdb_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                       " PRAGMA journal_size_limit = 4194304;");
}

static int try_open(struct sdb *w, const char *path, char *why, size_t whylen)
{
    snprintf(why, whylen, "cannot open it");
    memset(w, 0, sizeof *w);
    if (sqlite3_open_v2(path, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                          SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        return PC_EIO;
    if (configure(w->db) != 0)
        return PC_EIO;
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(w->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version != 0 && version != SCHEMA_VERSION) {
        snprintf(why, whylen, "made by index version %d, this node uses %d", version,
                 SCHEMA_VERSION);
        return PC_ECORRUPT;
    }
    snprintf(why, whylen, "%s", sqlite3_errmsg(w->db));
    char sql[1200];
    snprintf(sql, sizeof sql, "BEGIN; %s PRAGMA user_version = %d; COMMIT;", schema,
             SCHEMA_VERSION);
    if (sdb_exec(w->db, sql) != 0)
        return PC_EIO;
    /* A quick structural check: a damaged file is rebuilt rather than half-used. */
    if (sdb_exec(w->db, "SELECT count(*) FROM mark; SELECT id FROM msg LIMIT 1;") != 0)
        return PC_ECORRUPT;
    return prepare_all(w);
}

int sdb_open(struct sdb *w, const char *path, char *err, size_t errlen)
{
    char why[200];
    if (try_open(w, path, why, sizeof why) == 0)
        return 0;
    if (w->db != NULL && sqlite3_errcode(w->db) != SQLITE_OK)
        snprintf(why, sizeof why, "%s", sqlite3_errmsg(w->db));
    pc_warn("search: the index %s cannot be used (%s): rebuilding it from the store", path, why);
    sdb_close(w);
    char aux[1100];
    unlink(path);
    snprintf(aux, sizeof aux, "%s-wal", path);
    unlink(aux);
    snprintf(aux, sizeof aux, "%s-shm", path);
    unlink(aux);
    if (try_open(w, path, why, sizeof why) == 0)
        return 0;
    snprintf(err, errlen, "cannot create the search index %s: %s (check that the data "
             "directory is writable)", path, w->db != NULL ? sqlite3_errmsg(w->db) : "open failed");
    sdb_close(w);
    return PC_EIO;
}

void sdb_close(struct sdb *w)
{
    finalize_all(w);
    if (w->db != NULL)
        sqlite3_close(w->db);
    w->db = NULL;
}

sqlite3 *sdb_open_reader(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        pc_warn("search: cannot open %s for reading: %s", path,
                db != NULL ? sqlite3_errmsg(db) : "open failed");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

int sdb_reset(struct sdb *w)
{
    /* Dropping is much faster than deleting row by row from FTS5. */
    finalize_all(w);
    char sql[1200];
    snprintf(sql, sizeof sql,
             "BEGIN; DROP TABLE IF EXISTS msg_text; DROP TABLE IF EXISTS msg;"
             " DROP TABLE IF EXISTS mark; DROP TABLE IF EXISTS floor; %s COMMIT;", schema);
    int rc = sdb_exec(w->db, sql);
    if (rc != 0)
        sdb_exec(w->db, "ROLLBACK");
    int rc2 = prepare_all(w);
    return rc != 0 ? rc : rc2;
}

static int step_done(sqlite3 *db, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return 0;
    pc_warn("search: %s", sqlite3_errmsg(db));
    return PC_EIO;
}

static int row_id(struct sdb *w, uint64_t room_no, uint64_t seq, sqlite3_int64 *id)
{
    sqlite3_bind_int64(w->find, 1, (sqlite3_int64)room_no);
    sqlite3_bind_int64(w->find, 2, (sqlite3_int64)seq);
    int rc = sqlite3_step(w->find);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(w->find, 0);
    sqlite3_reset(w->find);
    sqlite3_clear_bindings(w->find);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : PC_EIO;
}

int sdb_insert(struct sdb *w, const struct room_msg *m, unsigned flags)
{
    sqlite3_int64 id;
    int rc = row_id(w, m->room_no, m->seq, &id);
    if (rc != 0)
        return rc < 0 ? rc : 0; /* indexed already */
    /* The key, or the next free one (INSERT OR IGNORE: a taken id changes nothing). */
    id = search_key(m->ts_us, m->room_no, m->seq);
    for (int tries = 0; tries < 1024; tries++, id++) {
        sqlite3_bind_int64(w->ins_msg, 1, id);
        sqlite3_bind_int64(w->ins_msg, 2, (sqlite3_int64)m->room_no);
        sqlite3_bind_int64(w->ins_msg, 3, (sqlite3_int64)m->seq);
        sqlite3_bind_int64(w->ins_msg, 4, m->ts_us);
        sqlite3_bind_text(w->ins_msg, 5, m->author, -1, SQLITE_STATIC);
        sqlite3_bind_int(w->ins_msg, 6, (int)flags);
        if (step_done(w->db, w->ins_msg) != 0)
            return PC_EIO;
        if (sqlite3_changes(w->db) == 0)
            continue;
        char tag[32];
        search_room_tag(m->room_no, tag, sizeof tag);
        sqlite3_bind_int64(w->ins_text, 1, id);
        sqlite3_bind_text(w->ins_text, 2, m->text, -1, SQLITE_STATIC);
        sqlite3_bind_text(w->ins_text, 3, tag, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(w->ins_text, 4, m->author, -1, SQLITE_STATIC);
        return step_done(w->db, w->ins_text) == 0 ? 1 : PC_EIO;
    }
    pc_warn("search: no free key for room %llu message %llu: not indexed",
            (unsigned long long)m->room_no, (unsigned long long)m->seq);
    return 0;
}

int sdb_delete(struct sdb *w, uint64_t room_no, uint64_t seq)
{
    sqlite3_int64 id = 0;
    int rc = row_id(w, room_no, seq, &id);
    if (rc <= 0)
        return rc;
    sqlite3_bind_int64(w->del_text, 1, id);
    sqlite3_bind_int64(w->del_msg, 1, id);
    if (step_done(w->db, w->del_text) != 0 || step_done(w->db, w->del_msg) != 0)
        return PC_EIO;
    return 1;
}

int sdb_set_mark(struct sdb *w, uint64_t room_no, uint64_t seq)
{
    sqlite3_bind_int64(w->set_mark, 1, (sqlite3_int64)room_no);
    sqlite3_bind_int64(w->set_mark, 2, (sqlite3_int64)seq);
    return step_done(w->db, w->set_mark);
}

int sdb_apply_floor(struct sdb *w, uint64_t room_no, uint64_t seq)
{
    sqlite3_stmt *st[] = {w->floor_text, w->floor_msg, w->set_floor};
    int deleted = 0;
    for (size_t i = 0; i < 3; i++) {
        sqlite3_bind_int64(st[i], 1, (sqlite3_int64)room_no);
        sqlite3_bind_int64(st[i], 2, (sqlite3_int64)seq);
        if (step_done(w->db, st[i]) != 0)
            return PC_EIO;
        if (i == 1)
            deleted = sqlite3_changes(w->db);
    }
    return deleted;
}

int sdb_row_flags(struct sdb *w, uint64_t room_no, uint64_t seq, unsigned *flags)
{
    sqlite3_bind_int64(w->flags_of, 1, (sqlite3_int64)room_no);
    sqlite3_bind_int64(w->flags_of, 2, (sqlite3_int64)seq);
    int rc = sqlite3_step(w->flags_of);
    if (rc == SQLITE_ROW)
        *flags = (unsigned)sqlite3_column_int(w->flags_of, 0);
    sqlite3_reset(w->flags_of);
    sqlite3_clear_bindings(w->flags_of);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : PC_EIO;
}

uint64_t sdb_rows(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    uint64_t n = 0;
    /* max(id) would be cheaper but wrong after deletions; count(*) uses the smallest index. */
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM msg", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

void search_marks_free(struct search_mark **marks)
{
    struct search_mark *m, *tmp;
    HASH_ITER(hh, *marks, m, tmp) {
        HASH_DEL(*marks, m);
        pc_free(m);
    }
}

int sdb_load_marks(struct sdb *w, const char *table, struct search_mark **marks)
{
    search_marks_free(marks);
    sqlite3_stmt *st = NULL;
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT room, seq FROM %s", table);
    if (sqlite3_prepare_v2(w->db, sql, -1, &st, NULL) != SQLITE_OK)
        return PC_EIO;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct search_mark *m = pc_calloc(1, sizeof *m);
        m->room_no = (uint64_t)sqlite3_column_int64(st, 0);
        m->seq = (uint64_t)sqlite3_column_int64(st, 1);
        HASH_ADD(hh, *marks, room_no, sizeof m->room_no, m);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : PC_EIO;
}
