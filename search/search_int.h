/* Shared by the files of search/ (internal). Threads: the loop owns everything except what
 * is marked "worker": that belongs to the one indexing pass in flight (there is never more
 * than one), and the loop does not touch it while a pass runs. */
#ifndef SEARCH_INT_H
#define SEARCH_INT_H

#include <sqlite3.h>
#include <stdint.h>
#include <uthash.h>

#include "cluster/cluster.h"
#include "common/pc_arena.h"
#include "search/search.h"

/* An administrator's removal/replacement (cluster.h) as this module reads it. */
#define SEARCH_MSG_REMOVED ROOM_MSG_REMOVED
#define SEARCH_MSG_REPLACED ROOM_MSG_REPLACED
static inline unsigned search_msg_flags(const struct room_msg *m)
{
    return m->flags;
}

/* ---- search_db.c: the SQLite file ------------------------------------------------------ */

/* The indexer's connection with its prepared statements. */
struct sdb {
    sqlite3 *db;
    sqlite3_stmt *ins_msg, *ins_text, *find, *del_msg, *del_text, *set_mark;
    sqlite3_stmt *floor_text, *floor_msg, *set_floor, *flags_of;
};

/* Opens the file for writing, creating the schema; a file that cannot be used (corrupt,
 * another schema version) is deleted and created again: it is derived data. */
int sdb_open(struct sdb *w, const char *path, char *err, size_t errlen);
void sdb_close(struct sdb *w);
/* A read-only connection for queries (NULL on failure, logged). */
sqlite3 *sdb_open_reader(const char *path);
/* Empties the index (rebuild). */
int sdb_reset(struct sdb *w);
int sdb_exec(sqlite3 *db, const char *sql);
/* Adds a message: 1, or 0 when (room, seq) is there already; PC_EIO. */
int sdb_insert(struct sdb *w, const struct room_msg *m, unsigned flags);
/* Removes a message's row: 1, or 0 when there was none; PC_EIO. */
int sdb_delete(struct sdb *w, uint64_t room_no, uint64_t seq);
int sdb_set_mark(struct sdb *w, uint64_t room_no, uint64_t seq);
/* A purge raised the room's floor: removes its rows up to seq; returns how many, or PC_EIO. */
int sdb_apply_floor(struct sdb *w, uint64_t room_no, uint64_t seq);
/* The flags a message was indexed with: 1 (in *flags), 0 when it has no row, PC_EIO. */
int sdb_row_flags(struct sdb *w, uint64_t room_no, uint64_t seq, unsigned *flags);
uint64_t sdb_rows(sqlite3 *db);

/* Per room: every message up to seq is in the index (worker). */
struct search_mark {
    UT_hash_handle hh;
    uint64_t room_no;
    uint64_t seq;
};
/* Loads table "mark" (watermarks) or "floor" (purge floors applied) into a hash. */
int sdb_load_marks(struct sdb *w, const char *table, struct search_mark **marks);
void search_marks_free(struct search_mark **marks);

/* ---- the service ------------------------------------------------------------------------ */

/* A hit the store disagreed with: fixed by the next indexing pass. */
struct search_stale {
    uint64_t room_no, seq;
};

#define SEARCH_READERS_MAX 8
#define SEARCH_QUERIES_MAX 64
/* Queries in libuv's thread pool at once. The pool (4 threads) also serves password checks
 * and whatever libraft hands it, so search takes at most two of its threads (this and the
 * indexing pass); a query takes about a millisecond, the others wait in s->waiting. */
#define SEARCH_QUERIES_IN_POOL 1

struct query_job;

struct search {
    uv_loop_t *loop;
    struct store *st;
    struct search_config cfg;
    char *path;
    uv_timer_t timer;
    struct sdb w;                  /* worker */
    struct search_mark *marks;     /* worker */
    struct search_mark *floors;    /* worker: purge floors already applied to the index */
    bool marks_loaded;
    uint64_t last_edit_scan_ms;
    uint64_t seen_sequence;        /* the store's sequence number the last pass saw */
    bool seen_valid;
    uint64_t last_pass_end_ms;
    uint64_t edits_sequence;       /* … and the last edit scan */
    bool edits_valid;
    struct index_pass *pass;       /* the pass in flight, or NULL */
    bool rebuild_asked;
    struct search_stale *stale;    /* waiting for the next pass */
    size_t n_stale, cap_stale;
    uv_mutex_t readers_lock;       /* idle query connections, shared by worker threads */
    sqlite3 *readers[SEARCH_READERS_MAX];
    size_t n_readers;
    unsigned queries_running;      /* accepted and not yet answered */
    unsigned queries_in_pool;
    struct query_job *waiting, *waiting_tail;
    bool stopping;
    void (*stop_cb)(void *arg);
    void *stop_arg;
    struct search_stats stats;
};

/* search_query.c: answers every query still waiting (stopping). */
void search_queries_cancel(struct search *s);

/* search_index.c */
void search_index_start(struct search *s);
/* Called when a pass or query ends while stopping: finishes the stop once nothing runs. */
void search_maybe_finish(struct search *s);
void search_add_stale(struct search *s, const struct search_stale *st, size_t n);

/* Reads message (room, seq) from the store into m (strings in arena). PC_ENOTFOUND when the
 * store does not have it (purged, or not back-filled yet). Thread-safe. */
int search_read_msg(struct store *st, uint64_t room_no, uint64_t seq, struct room_msg *m,
                    struct pc_arena *arena);

#endif
