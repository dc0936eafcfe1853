/* pchat-check: consistency checker over client logs and node history dumps.
 * Shared data model of tests/checker/{main,parse,check}.c; the format and the checks are
 * documented in main.c's usage text (pchat-check --help). */
#ifndef PCHAT_CHECKER_H
#define PCHAT_CHECKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/pc_alloc.h"

#define uthash_malloc(sz) pc_malloc(sz)
#define uthash_free(ptr, sz) pc_free(ptr)
#include <uthash.h>

/* All strings point into a file's buffer (unescaped in place), which lives until the end. */

struct file {
    const char *name;
    char *buf;
    struct client *client; /* exactly one of these two is set once the first record is read */
    struct node *node;
};

/* One H record. */
struct entry {
    uint64_t seq;
    const char *author, *text;
    struct post *post;     /* the S with this room + text, or NULL (foreign) */
    struct entry *dup_of;  /* an earlier entry of the same post in the same node's history */
    unsigned long line;
};

/* One node's history of one room, in file order. */
struct hist {
    struct entry *v;
    size_t n, cap;
};

struct room {
    const char *name;
    struct hist *hist;   /* [nhist], indexed by node index; missing/empty = no history */
    size_t nhist;
    long ref;            /* reference node (longest history) or -1 when no node has the room */
    struct post *by_text; /* hh_text: the posts sent to this room, by text */
    UT_hash_handle hh;
};

enum outcome { OUT_NONE, OUT_ACKED, OUT_REFUSED, OUT_UNKNOWN };

struct post {
    struct client *client;
    struct room *room;
    const char *msgid, *text, *reason;
    unsigned long line, out_line; /* the S line, the A/F/U line (0 if none) */
    enum outcome out;
    uint64_t ack_seq;             /* 0 = not known */
    size_t nodes_present;         /* how many node histories hold it */
    struct entry *ref_entry;      /* where it sits in its room's reference history */
    struct entry *last_seen;      /* scratch for ck_index */
    size_t mark;                  /* scratch for ck_index and check 1 */
    uint64_t deliv_seq;           /* without node dumps: the seq it was first delivered at */
    const struct client *deliv_client;
    unsigned long deliv_line;
    UT_hash_handle hh_id, hh_text;
};

enum ev_kind { EV_JOIN, EV_RECV, EV_ACK };

/* A client record that check 3 replays in file order. */
struct event {
    enum ev_kind kind;
    unsigned long line;
    struct room *room;
    uint64_t seq;
    const char *author, *text; /* EV_RECV */
    struct post *post;         /* EV_ACK */
};

struct client {
    const char *name;
    const char *author; /* what history shows as the author of its posts (default: name) */
    struct file *file;
    struct post *by_id; /* hh_id */
    struct event *ev;
    size_t nev, cap;
    UT_hash_handle hh;
};

struct node {
    const char *name;
    struct file *file;
    size_t idx;
    UT_hash_handle hh;
};

struct checker {
    bool allow_lag, allow_gaps, allow_foreign, all;

    struct file **files;         /* each allocated alone: clients and nodes point to them */
    size_t nfiles;
    struct client *clients;     /* by name, insertion (= file) order */
    struct node *nodes_by_name;
    struct node **nodes;        /* by index */
    size_t nnodes, nodes_cap;
    struct room *rooms;         /* by name, first-seen order */
    struct post **posts;        /* in S order */
    size_t nposts, posts_cap;

    struct dseen *seen;         /* check 3 without node dumps: (room, seq) -> first delivery */

    size_t nclients, nrooms, acked, refused, unknown, committed_unknown, delivered;
    unsigned long violations;
};

/* parse.c: reads one file into ck; on bad input prints "pchat-check: FILE:LINE: what" to
 * stderr and returns false. */
bool ck_parse_file(struct checker *ck, const char *path);

/* check.c: after every file is read. */
void ck_index(struct checker *ck);
/* Runs checks 1-4; returns true if all hold. Prints each violation (only the first unless
 * ck->all). */
bool ck_run(struct checker *ck);

/* check.c: the "pchat-check: " prefix is the caller's. */
void ck_print_counts(const struct checker *ck, const char *prefix);

void ck_free(struct checker *ck);

/* Growth helper for the vectors above. */
static inline void *ck_grow(void *v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return v;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    *cap = c;
    return pc_realloc(v, c * elem);
}

#endif
