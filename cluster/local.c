/* The single-node owner: every room is local, commits are group-committed fsyncs.
 *
 * This implements cluster.h for one node without replication. Its shape is the one the
 * pool keeps: posts are collected during a loop pass and committed as one batch
 * (sequence numbers assigned in order, message + room counter + compliance event in one
 * WriteBatch), and a message is delivered and acknowledged only once that batch is
 * durable. With Raft (issue 3) the "write" becomes "propose and apply". */
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <uthash.h>

#include "cluster/cluster.h"
#include "cluster/roomlog.h"
#include "common/pc_alloc.h"
#include "common/pc_bin.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"
#include "compliance/compl_event.h"
#include "storage/store.h"
#include "storage/store_keys.h"

/* The local log of room operations is "group 1" in the compliance key space, so event ids
 * never collide with the metadata group's (group 0). */
enum { LOCAL_GROUP = 1, MAX_BATCH_POSTS = 4096 };

struct pending_post {
    TAILQ_ENTRY(pending_post) link;
    uint64_t room_no;
    char *user;
    char *text;
    room_cb cb;
    void *arg;
    uint64_t seq;
    int64_t ts_us;
};

/* A compliance event waiting for the next commit (join, part, read). */
struct pending_event {
    TAILQ_ENTRY(pending_event) link;
    struct pc_buf encoded;
    enum compl_type type;
};

struct meta_done {
    TAILQ_ENTRY(meta_done) link;
    meta_cb cb;
    void *arg;
    struct meta_result res;
};

struct roster_user {
    UT_hash_handle hh;
    char *user;
    unsigned sessions;
};

struct roster {
    UT_hash_handle hh;
    uint64_t room_no;
    struct roster_user *users;
};

TAILQ_HEAD(post_list, pending_post);
TAILQ_HEAD(event_list, pending_event);

struct cluster {
    uv_loop_t *loop;
    struct cluster_config cfg;
    char *node_label;
    struct store *st;
    struct meta meta;
    struct roomlog log;
    struct cluster_sink sink;
    struct roster *rosters;

    struct post_list pending;       /* waiting for the next batch */
    size_t n_pending;
    struct event_list events;       /* compliance events for the next batch */
    struct post_list inflight;      /* in the batch being written */
    struct event_list inflight_events;
    bool writing;
    struct store_batch *batch;
    int write_rc;
    uint64_t batch_no;              /* local log index, persisted */
    int64_t last_ts_us;             /* time stamps never go backwards on this node */
    uv_work_t work;
    uv_prepare_t prepare;
    TAILQ_HEAD(, meta_done) meta_done;

    bool closing;
    void (*close_cb)(void *);
    void *close_arg;
    struct cluster_stats stats;
};

/* ---- storage helpers -------------------------------------------------------------------- */

static uint64_t load_batch_no(struct store *st)
{
    uint8_t k[8];
    struct pc_buf v = {0};
    uint64_t n = 0;
    if (store_get(st, STORE_CF_STATE, k, store_key_applied(k, LOCAL_GROUP), &v) == 0 && v.len == 8)
        n = pc_be64_read((const uint8_t *)v.data);
    pc_buf_free(&v);
    return n;
}

static void put_batch_no(struct store_batch *b, uint64_t n)
{
    uint8_t k[8], v[8];
    pc_be64_write(v, n);
    store_batch_put(b, STORE_CF_STATE, k, store_key_applied(k, LOCAL_GROUP), v, 8);
}

/* ---- commit pipeline -------------------------------------------------------------------- */

static void write_work(uv_work_t *w)
{
    struct cluster *cl = w->data;
    cl->write_rc = store_write(cl->st, cl->batch, cl->cfg.fsync);
}

static void free_post(struct pending_post *p)
{
    pc_free(p->user);
    pc_free(p->text);
    pc_free(p);
}

static void maybe_finish_close(struct cluster *cl);

static void write_done(uv_work_t *w, int status)
{
    struct cluster *cl = w->data;
    int rc = status != 0 ? PC_EIO : cl->write_rc;
    cl->writing = false;
    store_batch_clear(cl->batch);
    struct pending_post *p;
    struct pending_event *e;
    while ((e = TAILQ_FIRST(&cl->inflight_events)) != NULL) {
        TAILQ_REMOVE(&cl->inflight_events, e, link);
        pc_buf_free(&e->encoded);
        pc_free(e);
    }
    if (rc != 0) {
        /* Nothing of the batch is stored: hand the sequence numbers back. Only one batch
         * is ever in flight, so no later number was given out on top of these. */
        cl->batch_no--;
        TAILQ_FOREACH(p, &cl->inflight, link) {
            struct roomlog_room *r = roomlog_room(&cl->log, p->room_no);
            r->last = r->durable;
        }
        pc_error("cluster: commit of %s failed: %s; refusing those posts", "a batch",
                 pc_strerror(rc));
    }
    while ((p = TAILQ_FIRST(&cl->inflight)) != NULL) {
        TAILQ_REMOVE(&cl->inflight, p, link);
        struct room_res res = {.status = rc, .seq = p->seq, .ts_us = p->ts_us};
        if (rc == 0) {
            roomlog_room(&cl->log, p->room_no)->durable = p->seq;
            cl->stats.posts_committed++;
            struct room_msg msg = {p->room_no, p->seq, p->ts_us, p->user, p->text};
            struct room_event ev = {.kind = ROOM_EV_MESSAGE, .room_no = p->room_no, .msg = &msg};
            cl->sink.event(cl->sink.ctx, &ev);
            cl->stats.events_out++;
        } else {
            cl->stats.posts_failed++;
        }
        p->cb(p->arg, &res);
        free_post(p);
    }
    maybe_finish_close(cl);
}

/* Runs once per loop pass, before the loop blocks: turns everything that arrived during the
 * pass into one batch (one fsync for all of it). */
static void start_commit(struct cluster *cl)
{
    if (cl->writing || (TAILQ_EMPTY(&cl->pending) && TAILQ_EMPTY(&cl->events)))
        return;
    uint64_t index = ++cl->batch_no;
    uint32_t n_event = 0;
    size_t taken = 0;
    struct pending_post *p;
    while ((p = TAILQ_FIRST(&cl->pending)) != NULL && taken < MAX_BATCH_POSTS) {
        TAILQ_REMOVE(&cl->pending, p, link);
        cl->n_pending--;
        taken++;
        /* Time stamps never go backwards within a node, even if the wall clock does, so
         * history ordered by seq is also ordered by time. */
        int64_t now = pc_wall_us();
        cl->last_ts_us = now > cl->last_ts_us ? now : cl->last_ts_us + 1;
        p->ts_us = cl->last_ts_us;
        p->seq = roomlog_append(&cl->log, cl->batch, p->room_no, p->ts_us, p->user, p->text);
        const struct meta_room *room = meta_room_by_no(&cl->meta, p->room_no);
        struct compl_event ev = {.type = COMPL_CHAT, .ts_us = p->ts_us, .node = cl->node_label,
                                 .user = p->user, .room_no = p->room_no,
                                 .room_guid = room ? room->guid : "", .room_name = room ? room->name : "",
                                 .seq = p->seq, .content = p->text};
        compl_event_put(cl->batch, cl->cfg.compliance_classes, LOCAL_GROUP, index, n_event++, &ev);
        TAILQ_INSERT_TAIL(&cl->inflight, p, link);
    }
    struct pending_event *e;
    while ((e = TAILQ_FIRST(&cl->events)) != NULL) {
        TAILQ_REMOVE(&cl->events, e, link);
        uint8_t k[STORE_COMPL_KEY_LEN];
        store_key_compl(k, LOCAL_GROUP, index, n_event++);
        store_batch_put(cl->batch, STORE_CF_COMPL, k, sizeof k, e->encoded.data, e->encoded.len);
        TAILQ_INSERT_TAIL(&cl->inflight_events, e, link);
    }
    put_batch_no(cl->batch, index);
    cl->writing = true;
    cl->stats.commit_batches++;
    cl->work.data = cl;
    /* The fsync blocks for a millisecond or more: never on the loop thread. */
    uv_queue_work(cl->loop, &cl->work, write_work, write_done);
}

static void run_meta_callbacks(struct cluster *cl)
{
    struct meta_done *d;
    while ((d = TAILQ_FIRST(&cl->meta_done)) != NULL) {
        TAILQ_REMOVE(&cl->meta_done, d, link);
        d->cb(d->arg, &d->res);
        pc_free(d);
    }
}

static void prepare_cb(uv_prepare_t *h)
{
    struct cluster *cl = h->data;
    run_meta_callbacks(cl);
    start_commit(cl);
}

static void queue_event(struct cluster *cl, const struct compl_event *ev)
{
    if ((cl->cfg.compliance_classes & COMPL_CLASS(ev->type)) == 0)
        return;
    struct pending_event *e = pc_calloc(1, sizeof *e);
    e->type = ev->type;
    compl_event_encode(ev, &e->encoded);
    TAILQ_INSERT_TAIL(&cl->events, e, link);
}

/* ---- rosters (soft state: who is in which room) ---------------------------------------- */

static struct roster *roster_get(struct cluster *cl, uint64_t room_no, bool create)
{
    struct roster *r = NULL;
    HASH_FIND(hh, cl->rosters, &room_no, sizeof room_no, r);
    if (r == NULL && create) {
        r = pc_calloc(1, sizeof *r);
        r->room_no = room_no;
        HASH_ADD(hh, cl->rosters, room_no, sizeof r->room_no, r);
    }
    return r;
}

static void room_join(struct cluster *cl, const struct room_req *req, room_cb cb, void *arg)
{
    struct roster *r = roster_get(cl, req->room_no, true);
    struct roster_user *u = NULL;
    HASH_FIND_STR(r->users, req->user, u);
    bool entered = u == NULL;
    if (u == NULL) {
        u = pc_calloc(1, sizeof *u);
        u->user = pc_strdup(req->user);
        HASH_ADD_KEYPTR(hh, r->users, u->user, strlen(u->user), u);
    }
    u->sessions++;
    size_t n = HASH_COUNT(r->users), i = 0;
    struct room_presence *present = pc_malloc(n * sizeof *present);
    struct roster_user *it, *tmp;
    HASH_ITER(hh, r->users, it, tmp) {
        present[i].user = it->user;
        present[i].sessions = it->sessions;
        i++;
    }
    struct room_res res = {.seq = roomlog_room(&cl->log, req->room_no)->durable,
                           .present = present, .n_present = n};
    if (entered) {
        struct room_event ev = {.kind = ROOM_EV_ENTERED, .room_no = req->room_no, .user = req->user};
        cl->sink.event(cl->sink.ctx, &ev);
        const struct meta_room *room = meta_room_by_no(&cl->meta, req->room_no);
        struct compl_event ce = {.type = COMPL_JOIN, .ts_us = pc_wall_us(), .node = cl->node_label,
                                 .user = req->user, .room_no = req->room_no,
                                 .room_guid = room ? room->guid : "",
                                 .room_name = room ? room->name : "", .content = ""};
        queue_event(cl, &ce);
    }
    cb(arg, &res);
    pc_free(present);
}

static void room_part(struct cluster *cl, const struct room_req *req, room_cb cb, void *arg)
{
    struct roster *r = roster_get(cl, req->room_no, false);
    struct roster_user *u = NULL;
    if (r != NULL)
        HASH_FIND_STR(r->users, req->user, u);
    struct room_res res = {0};
    if (u == NULL) {
        res.status = PC_ENOTFOUND;
        cb(arg, &res);
        return;
    }
    if (--u->sessions == 0) {
        HASH_DEL(r->users, u);
        pc_free(u->user);
        pc_free(u);
        struct room_event ev = {.kind = ROOM_EV_LEFT, .room_no = req->room_no, .user = req->user};
        cl->sink.event(cl->sink.ctx, &ev);
        const struct meta_room *room = meta_room_by_no(&cl->meta, req->room_no);
        struct compl_event ce = {.type = COMPL_PART, .ts_us = pc_wall_us(), .node = cl->node_label,
                                 .user = req->user, .room_no = req->room_no,
                                 .room_guid = room ? room->guid : "",
                                 .room_name = room ? room->name : "", .content = ""};
        queue_event(cl, &ce);
        if (r->users == NULL) {
            HASH_DEL(cl->rosters, r);
            pc_free(r);
        }
    }
    cb(arg, &res);
}

static void room_history(struct cluster *cl, const struct room_req *req, room_cb cb, void *arg)
{
    struct pc_arena arena = {0};
    struct room_msg *msgs = NULL;
    size_t n = 0;
    uint32_t count = req->count < cl->cfg.max_history ? req->count : cl->cfg.max_history;
    /* Only durable messages are in the store, so history never shows a message that could
     * still be lost. */
    int rc = roomlog_read(cl->st, req->room_no, req->before, req->upto, count, &arena, &msgs, &n);
    struct room_res res = {.status = rc, .msgs = msgs, .n_msgs = n};
    if (rc == 0 && req->record_read) {
        const struct meta_room *room = meta_room_by_no(&cl->meta, req->room_no);
        char content[64];
        snprintf(content, sizeof content, "%zu messages", n);
        struct compl_event ce = {.type = COMPL_BACKCHAT, .ts_us = pc_wall_us(), .node = cl->node_label,
                                 .user = req->user, .room_no = req->room_no,
                                 .room_guid = room ? room->guid : "",
                                 .room_name = room ? room->name : "", .content = content};
        queue_event(cl, &ce);
    }
    cb(arg, &res);
    pc_arena_free(&arena);
}

/* ---- interface ---------------------------------------------------------------------------- */

int cluster_room_submit(struct cluster *cl, const struct room_req *req, room_cb cb, void *arg)
{
    if (cl->closing)
        return PC_EUNAVAIL;
    switch (req->kind) {
    case ROOM_REQ_POST: {
        if (cl->n_pending >= cl->cfg.max_pending_posts)
            return PC_EBUSY;
        struct pending_post *p = pc_calloc(1, sizeof *p);
        p->room_no = req->room_no;
        p->user = pc_strdup(req->user);
        p->text = pc_strdup(req->text);
        p->cb = cb;
        p->arg = arg;
        TAILQ_INSERT_TAIL(&cl->pending, p, link);
        cl->n_pending++;
        return 0;
    }
    case ROOM_REQ_JOIN:
        room_join(cl, req, cb, arg);
        return 0;
    case ROOM_REQ_PART:
        room_part(cl, req, cb, arg);
        return 0;
    case ROOM_REQ_HISTORY:
        room_history(cl, req, cb, arg);
        return 0;
    }
    return PC_EINVAL;
}

int cluster_meta_submit(struct cluster *cl, const struct meta_op *op, meta_cb cb, void *arg)
{
    if (cl->closing)
        return PC_EUNAVAIL;
    struct meta_done *d = pc_calloc(1, sizeof *d);
    d->cb = cb;
    d->arg = arg;
    struct store_batch *b = store_batch_new(cl->st);
    meta_apply(&cl->meta, cl->meta.applied_index + 1, op, b, &d->res);
    /* Metadata changes are rare: a synchronous durable write keeps them simple. */
    int rc = store_write(cl->st, b, true);
    store_batch_free(b);
    if (rc != 0) {
        /* Memory already holds the change: reload it from the store so both agree again. */
        meta_free(&cl->meta);
        unsigned mask = cl->cfg.compliance_classes;
        if (meta_load(&cl->meta, cl->st) != 0)
            pc_error("cluster: metadata could not be reloaded after a failed write");
        cl->meta.compl_mask = mask;
        d->res.status = rc;
        snprintf(d->res.errmsg, sizeof d->res.errmsg, "the change could not be stored: %s",
                 pc_strerror(rc));
    }
    /* Callbacks run from the loop, never inside the caller's stack. */
    TAILQ_INSERT_TAIL(&cl->meta_done, d, link);
    return 0;
}

unsigned cluster_room_users(const struct cluster *cl, uint64_t room_no)
{
    struct roster *r = NULL;
    HASH_FIND(hh, cl->rosters, &room_no, sizeof room_no, r);
    return r != NULL ? HASH_COUNT(r->users) : 0;
}

const struct meta *cluster_meta(const struct cluster *cl)
{
    return &cl->meta;
}

struct store *cluster_store(const struct cluster *cl)
{
    return cl->st;
}

void cluster_stats(const struct cluster *cl, struct cluster_stats *out)
{
    *out = cl->stats;
    out->pending_posts = cl->n_pending;
    out->store_bytes = 0;
    for (int cf = 0; cf < STORE_CF_COUNT; cf++)
        out->store_bytes += store_property(cl->st, (enum store_cf)cf, "rocksdb.total-sst-files-size");
}

static int init_pool(struct cluster *cl, char *errmsg, size_t errlen)
{
    if (cl->meta.domain[0] != '\0') {
        if (strcasecmp(cl->meta.domain, cl->cfg.domain) != 0) {
            snprintf(errmsg, errlen, "the data in %s belongs to domain %s, but the config says "
                     "domain = %s; fix the config or use another data_dir",
                     cl->cfg.data_dir, cl->meta.domain, cl->cfg.domain);
            return PC_EINVAL;
        }
        return 0;
    }
    struct meta_op op = {.kind = META_OP_INIT, .ts_us = pc_wall_us(),
                         .shard_count = cl->cfg.shard_count};
    snprintf(op.domain, sizeof op.domain, "%s", cl->cfg.domain);
    snprintf(op.actor, sizeof op.actor, "system");
    struct store_batch *b = store_batch_new(cl->st);
    struct meta_result res;
    meta_apply(&cl->meta, cl->meta.applied_index + 1, &op, b, &res);
    int rc = store_write(cl->st, b, true);
    store_batch_free(b);
    if (rc != 0)
        snprintf(errmsg, errlen, "cannot initialise the store: %s", pc_strerror(rc));
    return rc;
}

int cluster_open(uv_loop_t *loop, const struct cluster_config *cfg, const struct cluster_sink *sink,
                 struct cluster **out, char *errmsg, size_t errlen)
{
    struct cluster *cl = pc_calloc(1, sizeof *cl);
    cl->loop = loop;
    cl->cfg = *cfg;
    cl->node_label = pc_strdup(cfg->node_label);
    cl->sink = *sink;
    TAILQ_INIT(&cl->pending);
    TAILQ_INIT(&cl->events);
    TAILQ_INIT(&cl->inflight);
    TAILQ_INIT(&cl->inflight_events);
    TAILQ_INIT(&cl->meta_done);

    char path[1024];
    snprintf(path, sizeof path, "%s/db", cfg->data_dir);
    mkdir(cfg->data_dir, 0750);
    struct store_options so = {.create_if_missing = true};
    int rc = store_open(path, &so, &cl->st, errmsg, errlen);
    if (rc != 0)
        goto err;
    rc = meta_load(&cl->meta, cl->st);
    if (rc != 0) {
        snprintf(errmsg, errlen, "the metadata in %s is unreadable (%s); restore a backup",
                 path, pc_strerror(rc));
        goto err;
    }
    cl->meta.compl_mask = cfg->compliance_classes;
    rc = init_pool(cl, errmsg, errlen);
    if (rc != 0)
        goto err;
    roomlog_init(&cl->log, cl->st);
    cl->batch = store_batch_new(cl->st);
    cl->batch_no = load_batch_no(cl->st);
    uv_prepare_init(loop, &cl->prepare);
    cl->prepare.data = cl;
    uv_prepare_start(&cl->prepare, prepare_cb);
    pc_notice("cluster: single-node store at %s open (%zu rooms, domain %s, fsync %s)", path,
              meta_room_count(&cl->meta), cl->meta.domain, cfg->fsync ? "on" : "OFF");
    *out = cl;
    return 0;
err:
    meta_free(&cl->meta);
    store_close(cl->st);
    pc_free(cl->node_label);
    pc_free(cl);
    *out = NULL;
    return rc;
}

static void prepare_closed(uv_handle_t *h)
{
    struct cluster *cl = h->data;
    void (*cb)(void *) = cl->close_cb;
    void *arg = cl->close_arg;
    store_batch_free(cl->batch);
    roomlog_free(&cl->log);
    meta_free(&cl->meta);
    store_close(cl->st);
    struct roster *r, *rt;
    HASH_ITER(hh, cl->rosters, r, rt) {
        struct roster_user *u, *ut;
        HASH_ITER(hh, r->users, u, ut) {
            HASH_DEL(r->users, u);
            pc_free(u->user);
            pc_free(u);
        }
        HASH_DEL(cl->rosters, r);
        pc_free(r);
    }
    pc_free(cl->node_label);
    pc_free(cl);
    if (cb != NULL)
        cb(arg);
}

static void maybe_finish_close(struct cluster *cl)
{
    if (!cl->closing || cl->writing)
        return;
    /* Commit what is still pending first: those posts may already have been answered 200
     * at the SIP level, so they must not be dropped. */
    if (!TAILQ_EMPTY(&cl->pending) || !TAILQ_EMPTY(&cl->events)) {
        start_commit(cl);
        return;
    }
    run_meta_callbacks(cl);
    if (!uv_is_closing((uv_handle_t *)&cl->prepare))
        uv_close((uv_handle_t *)&cl->prepare, prepare_closed);
}

void cluster_close(struct cluster *cl, void (*cb)(void *arg), void *arg)
{
    cl->closing = true;
    cl->close_cb = cb;
    cl->close_arg = arg;
    maybe_finish_close(cl);
}
