/* Full-text search over room history: a derived, per-node, rebuildable index (SQLite FTS5
 * in <data_dir>/search.sqlite) fed asynchronously from the messages this node has applied.
 *
 * Posting never waits for it: an indexer wakes every interval, looks in the store for rooms
 * whose last seq passed its watermark, and indexes the new messages in libuv's thread pool.
 * Queries run there too. The index is never trusted on its own: every hit is re-read from
 * the store before it is returned (removed, replaced or purged messages are dropped and the
 * stale rows fixed lazily), so search agrees with history without hooks in the raft apply
 * path. Who may search which rooms is the caller's business (search_rooms.c does it with
 * chat_acl for every front end). */
#ifndef SEARCH_H
#define SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct store;
struct search;

/* Bounds a client cannot exceed (the HTTP route answers 400 beyond them). */
#define SEARCH_QUERY_MAX 256   /* bytes of the search string */
#define SEARCH_WORDS_MAX 16    /* words in it */
#define SEARCH_AUTHORS_MAX 16
#define SEARCH_LIMIT_MAX 100   /* hits per page */
#define SEARCH_LIMIT_DEFAULT 20

enum search_mode {
    SEARCH_ANY = 0, /* at least one of the words */
    SEARCH_ALL,     /* every word, anywhere in the message */
    SEARCH_PHRASE,  /* the words next to each other, in this order */
};

struct search_config {
    const char *path;      /* the SQLite file (created; rebuilt from scratch if unreadable) */
    unsigned interval_ms;  /* indexer wake-up period (200) */
    unsigned batch;        /* messages per indexing transaction (2000) */
    unsigned edits_ms;     /* how often removals/replacements are looked for (5000) */
};

/* Opens the index (creating it) and starts the indexer on loop. Reads the store from the
 * thread pool: the store must outlive search_stop's callback. PC_EIO with a reason in err
 * when the file cannot be created at all. */
int search_open(uv_loop_t *loop, struct store *st, const struct search_config *cfg,
                struct search **out, char *err, size_t errlen);

/* Stops the indexer, waits for work in flight, closes the file, frees s, then calls cb. */
void search_stop(struct search *s, void (*cb)(void *arg), void *arg);

/* Throws the index away and builds it again from the store, in the background. */
void search_rebuild(struct search *s);

/* Position in the newest-first order — a page starts below it. The order key of a message
 * is its time in microseconds × 1024 plus 10 bits of a hash of (room, seq) (search_key), so
 * that FTS5 walks matches newest first by rowid without sorting them, and the same message
 * has the same key on every node (two messages of one microsecond whose hashes collide get
 * the next free key: only then may a cursor differ between nodes). */
struct search_cursor {
    int64_t key;
};
int64_t search_key(int64_t ts_us, uint64_t room_no, uint64_t seq);

struct search_request {
    const char *text;               /* the words (see search_expr.h for the syntax) */
    enum search_mode mode;
    bool case_sensitive;
    const char *const *authors;     /* "sip:alice@example.test"; none = anyone */
    size_t n_authors;
    const uint64_t *rooms;          /* the rooms to search (already authorised); at least one */
    size_t n_rooms;
    int64_t from_us, to_us;         /* inclusive time range; 0 = open */
    bool has_before;
    struct search_cursor before;    /* only hits strictly older (a page's cursor) */
    unsigned limit;                 /* 1..SEARCH_LIMIT_MAX */
};

struct search_hit {
    uint64_t room_no, seq;
    int64_t ts_us;
    int64_t key;                    /* its place in the order (the cursor after it) */
    const char *author;
    const char *text;               /* as the store has it now */
};

struct search_result {
    int status;                     /* 0, PC_EINVAL (error says what), PC_EIO, PC_EUNAVAIL */
    const char *error;
    const struct search_hit *hits;  /* newest first; valid during the callback */
    size_t n_hits;
    bool more;                      /* another page may follow: ask again with `next` */
    struct search_cursor next;
    uint64_t lag;                   /* messages not yet indexed when the query ran */
    unsigned scanned;               /* index rows looked at (for tuning) */
};

typedef void (*search_cb)(void *arg, const struct search_result *res);

/* Runs a query in the thread pool; cb fires once, on the loop. Returns PC_EINVAL (with the
 * reason in err, nothing called) for a query that cannot be searched, PC_EUNAVAIL while
 * stopping, PC_EBUSY when too many queries wait. The request is copied. */
int search_run(struct search *s, const struct search_request *req, search_cb cb, void *arg,
               char *err, size_t errlen);

struct search_stats {
    uint64_t lag;            /* messages not yet in the index at the end of the last pass */
    uint64_t behind_ms;      /* 0 when the index has seen every write to the store, else
                                the time since the last pass ended: a bound on how old the
                                newest indexed message may be */
    uint64_t indexed;        /* messages indexed since start */
    uint64_t rows;           /* messages in the index */
    uint64_t queries;        /* queries answered */
    uint64_t dropped_stale;  /* hits dropped because the store disagreed */
    uint64_t rebuilds;
    uint64_t passes;
    bool rebuilding;         /* a rebuild was asked and has not caught up yet */
    double last_rate;        /* messages/s of the last pass that indexed a full batch */
};
void search_stats(struct search *s, struct search_stats *out);

#endif
