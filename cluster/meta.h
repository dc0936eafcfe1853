/* Metadata state machine: categories, rooms and their ACLs, users, follows, invitations. */
#ifndef META_H
#define META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#include "common/pc_buf.h"
#include "common/pc_rand.h"

struct store;
struct store_batch;
struct meta;

/* This is the replicated metadata of DESIGN.md §2. Every node holds all of it in memory (it
 * is small) and in RocksDB's meta column family. It changes only through meta_apply, which
 * is deterministic: the same operations in the same order give every replica the same
 * state, whatever the node or the time (times travel inside the operations). */

enum meta_privacy { META_OPEN = 0, META_CLOSED = 1, META_SECRET = 2 };
enum meta_room_type { META_NORMAL = 0, META_AUDITORIUM = 1 };

/* A list of principals: user URIs ("sip:alice@example.test"), a whole domain
 * ("*@example.test") or everyone ("*"). */
struct meta_principals {
    char **items;
    size_t n;
};

struct meta_category {
    UT_hash_handle hh_no, hh_guid;
    uint64_t no;
    char guid[PC_GUID_LEN];
    char *name;
    char *description;
    struct meta_principals allowed; /* who may be in rooms of this category */
    struct meta_principals denied;  /* overrides allowed */
    struct meta_principals creators;/* who may create rooms here */
    bool file_upload;
    bool chat_history;              /* false: joiners get no backchat */
    bool invitations;
    /* Retention of its rooms' messages (0 = keep forever): older than keep_days days, and
     * beyond the newest keep_messages, are purged by the rooms' owners. */
    uint32_t keep_days;
    uint32_t keep_messages;
};

/* A room's own retention setting: the category's, none, or its own value. */
#define META_KEEP_INHERIT 0
#define META_KEEP_FOREVER UINT32_MAX

struct meta_room {
    UT_hash_handle hh_no, hh_guid, hh_name;
    uint64_t no;                    /* internal number, key prefix of the room's messages */
    char guid[PC_GUID_LEN];         /* the id in ma-chan://<domain>/<guid> */
    char *name;
    char *name_key;                 /* lower-cased name, unique */
    char *description;
    uint64_t category_no;
    enum meta_privacy privacy;
    enum meta_room_type type;
    bool disabled;
    bool invitations;
    struct meta_principals managers;
    struct meta_principals members;
    struct meta_principals presenters;
    char *creator;
    int64_t created_us;
    uint32_t shard;                 /* the shard (raft group) that owns the room's messages */
    uint32_t keep_days;             /* META_KEEP_INHERIT (the category's), META_KEEP_FOREVER */
    uint32_t keep_messages;         /*   or the room's own limit */
};

/* The room's effective retention (0 = none), the room's value overriding its category's. */
void meta_room_retention(const struct meta *m, const struct meta_room *rm, uint32_t *days,
                         uint32_t *messages);

struct meta_user {
    UT_hash_handle hh;
    char *uri;                      /* "sip:alice@example.test" */
    char *display_name;
    bool disabled;                  /* may not sign in */
    bool chat_enabled;              /* persistent chat policy */
    bool admin;                     /* CsPersistentChatAdministrator */
    char *password_hash;            /* NULL until a password is set */
};

struct meta_invite {
    uint64_t id;                    /* per user, increasing */
    uint64_t room_no;
    char *inviter;
    int64_t ts_us;
};

/* A compliance event's place in the replicated log: (raft group, index, n-th of entry). */
struct meta_compl_pos {
    uint32_t group;
    uint64_t index;
    uint32_t n;
};

/* A compliance adapter's cursors: the last event it has taken, per raft group. */
#define META_MAX_ADAPTERS 8
struct meta_compl_adapter {
    char name[64];
    struct meta_compl_pos *pos; /* pos[g] for group g = 0..shard_count; index 0 = none */
    size_t n_pos;
};

/* Pool-wide chat settings (Set-CsPersistentChatConfiguration). 0 / "" = each node's own
 * configuration file decides. */
struct meta_settings {
    uint32_t default_history;          /* DefaultChatHistory: messages a joiner gets */
    uint32_t participant_update_limit; /* ParticipantUpdateLimit: rosters stop above it */
    uint32_t max_file_kb;              /* MaxFileSizeKB: largest file upload */
    char removal_notice[512];          /* text replacing a message an administrator replaces */
};

/* The whole metadata state of a node. */
struct meta {
    struct meta_category *cats_by_no, *cats_by_guid;
    struct meta_room *rooms_by_no, *rooms_by_guid, *rooms_by_name;
    struct meta_user *users;
    struct meta_user_extra *extras; /* follows and invitations per user */
    uint64_t next_category_no;
    uint64_t next_room_no;
    uint32_t shard_count;
    uint64_t applied_index;         /* last operation applied (raft index, or a counter) */
    char domain[128];
    char nodes[1024];               /* the pool's voting nodes "1=addr,2=addr" ("" = the
                                       nodes the pool was created with, from config) */
    struct meta_compl_adapter adapters[META_MAX_ADAPTERS]; /* registered compliance adapters */
    size_t n_adapters;
    unsigned compl_mask;            /* compliance event classes recorded by apply */
    struct meta_settings settings;
};

/* ---- operations ----------------------------------------------------------------------- */

enum meta_op_kind {
    META_OP_CATEGORY_PUT = 1, /* create (no == 0) or replace a category */
    META_OP_CATEGORY_DEL,     /* remove an empty category */
    META_OP_ROOM_PUT,         /* create (no == 0) or replace a room */
    META_OP_ROOM_DEL,
    META_OP_USER_PUT,         /* create or replace a user */
    META_OP_USER_DEL,
    META_OP_FOLLOW,           /* user follows (flag) or unfollows a room */
    META_OP_INVITE,           /* add an invitation for a user */
    META_OP_INIT,             /* set domain and shard count of a new pool (once) */
    META_OP_NODES,            /* replace the pool's membership (nodes), if it still is prev */
    META_OP_COMPL_CURSOR,     /* adapter took events up to positions (registers it first) */
    META_OP_COMPL_FORGET,     /* drop an adapter: its cursors no longer hold events back */
    META_OP_SETTINGS,         /* replace the pool-wide chat settings */
};

/* One metadata change, as proposed by a node and applied on every replica. The records are
 * complete: a PUT replaces the whole stored record. */
struct meta_op {
    enum meta_op_kind kind;
    int64_t ts_us;                  /* proposer's clock, the only time apply may use */
    char actor[256];                /* who asked (for compliance and errors) */
    char node[32];                  /* the node that proposed it (for compliance) */
    struct meta_category cat;       /* CATEGORY_PUT / DEL (no) */
    struct meta_room room;          /* ROOM_PUT / DEL (no) */
    struct meta_user user;          /* USER_PUT / DEL (uri) */
    uint64_t room_no;               /* FOLLOW / INVITE */
    char target_user[256];          /* FOLLOW / INVITE */
    bool flag;                      /* FOLLOW: true = follow */
    uint32_t shard_count;           /* INIT */
    char domain[128];               /* INIT */
    char nodes[1024];               /* NODES: the new membership "1=addr,2=addr" */
    char prev_nodes[1024];          /* NODES: the membership it replaces (compare-and-set) */
    char adapter[64];               /* COMPL_CURSOR / COMPL_FORGET */
    struct meta_compl_pos *positions; /* COMPL_CURSOR, owned (meta_op_clear frees it) */
    size_t n_positions;
    struct meta_settings settings;  /* SETTINGS */
};

/* Result of applying an operation. */
struct meta_result {
    int status;                     /* 0 or PC_E*: EEXIST (duplicate name), ENOTFOUND,
                                       EINVAL (bad record), EBUSY (category not empty) */
    char errmsg[160];               /* human text for status != 0 */
    uint64_t no;                    /* number assigned to a created room/category */
};

/* Serialises op (for raft entries and peer links) / parses it from untrusted bytes. A
 * decoded op owns its strings: free with meta_op_clear. */
void meta_op_encode(const struct meta_op *op, struct pc_buf *out);
int meta_op_decode(const void *p, size_t len, struct meta_op *op);
void meta_op_clear(struct meta_op *op);

/* ---- state ---------------------------------------------------------------------------- */

/* Loads the whole metadata from the store (meta column family) into m. */
int meta_load(struct meta *m, struct store *st);
void meta_free(struct meta *m);

/* Applies op at position index: validates it against the current state, adds the record
 * changes (and applied index) to batch, and updates m. Deterministic. A rejected operation
 * (res->status != 0) changes nothing but the applied index. The caller writes the batch;
 * if that write fails, the node's state is no longer trustworthy and it must stop. */
void meta_apply(struct meta *m, uint64_t index, const struct meta_op *op,
                struct store_batch *batch, struct meta_result *res);

/* Lookups (NULL when absent). Pointers stay valid until the next meta_apply. */
struct meta_room *meta_room_by_no(const struct meta *m, uint64_t no);
struct meta_room *meta_room_by_guid(const struct meta *m, const char *guid);
struct meta_room *meta_room_by_name(const struct meta *m, const char *name);
struct meta_category *meta_category_by_no(const struct meta *m, uint64_t no);
struct meta_category *meta_category_by_guid(const struct meta *m, const char *guid);
struct meta_category *meta_category_by_name(const struct meta *m, const char *name);
struct meta_user *meta_user(const struct meta *m, const char *uri);
bool meta_follows(const struct meta *m, const char *user, uint64_t room_no);
/* Invitations of user with id > after_id, oldest first; returns the count (at most max). */
size_t meta_invites(const struct meta *m, const char *user, uint64_t after_id,
                    const struct meta_invite **out, size_t max);
size_t meta_room_count(const struct meta *m);

/* Principal matching: exact URI, "*@domain" or "*". Case-insensitive. */
bool meta_principals_match(const struct meta_principals *p, const char *user_uri);
void meta_principals_add(struct meta_principals *p, const char *item);
void meta_principals_copy(struct meta_principals *dst, const struct meta_principals *src);
void meta_principals_clear(struct meta_principals *p);
/* Parses "a, b c" (comma/space separated) into p (appends); false on a malformed entry. */
bool meta_principals_parse(struct meta_principals *p, const char *list, char *err, size_t errlen);

/* Deep copies and frees of records (for building ops from current state). */
void meta_room_copy(struct meta_room *dst, const struct meta_room *src);
void meta_room_clear(struct meta_room *r);
void meta_category_copy(struct meta_category *dst, const struct meta_category *src);
void meta_category_clear(struct meta_category *c);
void meta_user_copy(struct meta_user *dst, const struct meta_user *src);
void meta_user_clear(struct meta_user *u);

/* The registered adapter called name, or NULL. */
const struct meta_compl_adapter *meta_compl_adapter(const struct meta *m, const char *name);
/* The position up to which every registered adapter has taken group's events (what may be
 * deleted); {group, 0, 0} when none or when no adapter is registered. */
struct meta_compl_pos meta_compl_taken(const struct meta *m, uint32_t group);
/* Adds to b the deletion of group's events up to meta_compl_taken (nothing when none). */
void meta_compl_delete_taken(const struct meta *m, uint32_t group, struct store_batch *b);
/* Deletes from st, now, the events every adapter took that are still stored (written by an
 * apply after the cursor's): a seek per group, a write only where something is left.
 * Returns how many groups had some. */
unsigned meta_compl_sweep(const struct meta *m, struct store *st);

/* The shard a room's messages belong to: a pure function of its GUID. */
uint32_t meta_shard_of(const char *guid, uint32_t shard_count);

const char *meta_privacy_name(enum meta_privacy p);
bool meta_privacy_parse(const char *s, enum meta_privacy *out);

#endif
