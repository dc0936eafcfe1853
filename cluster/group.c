/* One raft group on raft_uv over our multiplexed cluster port. Follows the recipe measured
 * in DESIGN.md §7 and the 0.22.1 pitfalls: transport version 1, a lowered capacity
 * threshold for small segments, one buffer per raft_apply, and our own barrier after an
 * election (0.22.1 does not always append a no-op), whose completion is the "ready" signal. */
#include "cluster/group.h"

#include <dirent.h>
#include <errno.h>
#include <raft/uv.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/raft_aio_reaper.h"
#include "cluster/raft_io_guard.h"
#include "cluster/raft_mux.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"

struct group {
    uv_loop_t *loop;
    struct group_config cfg;
    char dir[512];
    char address[128];
    struct raft raft;
    struct raft_io_guard io; /* raft_uv, kept out of libraft 0.22.1's snapshot crash */
    struct raft_uv_transport transport;
    /* Leadership is observed after every loop pass: raft has no state-change callback in
     * 0.22.1, and polling a field is cheaper than any timer. */
    uv_check_t watch;
    bool was_leader;
    bool ready;
    bool barrier_pending;
    struct raft_barrier barrier;
    bool changing;
    struct raft_change change;
    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
    int closes_left;
};

struct proposal {
    struct raft_apply req;
    group_apply_cb cb;
    void *arg;
};

uint32_t group_id(const struct group *g)
{
    return g->cfg.id;
}

bool group_ready_leader(const struct group *g)
{
    return g->ready && !g->closing;
}

uint64_t group_leader(const struct group *g, const char **address)
{
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader((struct raft *)&g->raft, &id, &addr);
    if (address != NULL)
        *address = addr;
    return id;
}

void group_status(const struct group *g, struct group_status *out)
{
    struct raft *r = (struct raft *)&g->raft;
    static const char *const roles[] = {"unavailable", "follower", "candidate", "leader"};
    int st = raft_state(r);
    out->role = st >= 0 && st <= 3 ? roles[st] : "unknown";
    out->leader = group_leader(g, NULL);
    out->term = raft_current_term(r);
    out->commit_index = raft_commit_index(r);
    out->last_applied = raft_last_applied(r);
    out->last_index = raft_last_index(r);
    out->voters = 0;
    for (unsigned i = 0; i < r->configuration.n; i++)
        out->voters += r->configuration.servers[i].role == RAFT_VOTER;
}

size_t group_members(const struct group *g, struct group_member *out, size_t max)
{
    const struct raft_configuration *c = &g->raft.configuration;
    for (unsigned i = 0; i < c->n && i < max; i++)
        out[i] = (struct group_member){c->servers[i].id, c->servers[i].address,
                                       c->servers[i].role == RAFT_VOTER};
    return c->n;
}

int group_lag(struct group *g, uint64_t node, uint64_t *lag)
{
    if (g->closing || !g->ready)
        return PC_ENOTLEADER;
    raft_index match = 0;
    int rv = raft_match_index(&g->raft, node, &match);
    if (rv != 0)
        return rv == RAFT_NOTLEADER ? PC_ENOTLEADER : PC_ENOTFOUND;
    raft_index last = raft_last_index(&g->raft);
    *lag = last > match ? last - match : 0;
    return 0;
}

bool group_changing(const struct group *g)
{
    return g->changing;
}

static void change_done(struct raft_change *req, int status)
{
    struct group *g = req->data;
    g->changing = false;
    if (status != 0 && !g->closing)
        pc_warn("cluster: group %u: configuration change failed: %s (retried)", g->cfg.id,
                raft_strerror(status));
}

int group_change(struct group *g, enum group_change_kind kind, uint64_t id, const char *address)
{
    if (g->closing || !g->ready)
        return PC_ENOTLEADER;
    if (g->changing)
        return PC_EBUSY;
    g->change.data = g;
    int rv;
    static const char *const what[] = {"adding", "promoting to voter", "removing"};
    if (kind == GROUP_ADD)
        rv = raft_add(&g->raft, &g->change, id, address, change_done);
    else if (kind == GROUP_VOTER)
        rv = raft_assign(&g->raft, &g->change, id, RAFT_VOTER, change_done);
    else
        rv = raft_remove(&g->raft, &g->change, id, change_done);
    if (rv != 0) {
        pc_warn("cluster: group %u: %s node %llu refused: %s", g->cfg.id, what[kind],
                (unsigned long long)id, raft_strerror(rv));
        return rv == RAFT_NOTLEADER ? PC_ENOTLEADER : PC_EBUSY;
    }
    g->changing = true;
    pc_notice("cluster: group %u: %s node %llu", g->cfg.id, what[kind], (unsigned long long)id);
    return 0;
}

static void barrier_done(struct raft_barrier *req, int status)
{
    struct group *g = req->data;
    g->barrier_pending = false;
    if (g->closing)
        return;
    if (status == 0 && raft_state(&g->raft) == RAFT_LEADER) {
        g->ready = true;
        pc_notice("cluster: group %u: leader for term %llu, ready (applied %llu)", g->cfg.id,
                  (unsigned long long)raft_current_term(&g->raft),
                  (unsigned long long)raft_last_applied(&g->raft));
        g->cfg.leadership(g->cfg.ctx, g, true);
    }
    /* A failed barrier means leadership was lost meanwhile: the watch will notice. */
}

static void watch_cb(uv_check_t *h)
{
    struct group *g = h->data;
    if (g->closing)
        return;
    bool leader = raft_state(&g->raft) == RAFT_LEADER;
    if (leader && !g->was_leader && !g->barrier_pending) {
        g->barrier.data = g;
        int rv = raft_barrier(&g->raft, &g->barrier, barrier_done);
        if (rv == 0)
            g->barrier_pending = true;
        else
            pc_warn("cluster: group %u: barrier after election failed: %s", g->cfg.id,
                    raft_strerror(rv));
        g->was_leader = rv == 0; /* retried next pass if it failed */
    } else if (!leader && g->was_leader) {
        g->was_leader = false;
        if (g->ready) {
            g->ready = false;
            pc_notice("cluster: group %u: no longer leader (term %llu)", g->cfg.id,
                      (unsigned long long)raft_current_term(&g->raft));
            g->cfg.leadership(g->cfg.ctx, g, false);
        }
    }
}

static void apply_done(struct raft_apply *req, int status, void *result)
{
    struct proposal *p = req->data;
    int rc = 0;
    if (status == RAFT_LEADERSHIPLOST || status == RAFT_SHUTDOWN)
        rc = PC_EUNKNOWN; /* appended, maybe replicated: a new leader may still commit it */
    else if (status == RAFT_NOTLEADER)
        rc = PC_ENOTLEADER;
    else if (status != 0)
        rc = PC_EIO;
    p->cb(p->arg, rc, rc == 0 ? result : NULL);
    pc_free(p);
}

int group_propose(struct group *g, struct raft_buffer buf, group_apply_cb cb, void *arg)
{
    if (g->closing || !g->ready) {
        raft_free(buf.base);
        return PC_ENOTLEADER;
    }
    struct proposal *p = pc_calloc(1, sizeof *p);
    p->cb = cb;
    p->arg = arg;
    p->req.data = p;
    int rv = raft_apply(&g->raft, &p->req, &buf, 1, apply_done);
    if (rv == 0)
        return 0;
    pc_free(p);
    /* Refusals before raft touched the buffer leave it ours; later failures mean raft
     * already freed it and the instance is no longer trustworthy (0.22.1, see REPORT). */
    if (rv == RAFT_NOTLEADER || rv == RAFT_NOSPACE || rv == RAFT_CANTCHANGE) {
        raft_free(buf.base);
        if (rv == RAFT_NOSPACE) {
            /* raft_apply checks the disk's free space against the capacity threshold
             * (below) before appending: nothing was appended. */
            pc_error("cluster: group %u: raft refused the entry: %s (its log in %s cannot "
                     "grow; free space on that disk)", g->cfg.id, raft_errmsg(&g->raft), g->dir);
            return PC_ENOSPC;
        }
        return rv == RAFT_NOTLEADER ? PC_ENOTLEADER : PC_EIO;
    }
    pc_error("cluster: group %u: raft_apply failed: %s; this node must be restarted", g->cfg.id,
             raft_strerror(rv));
    return PC_EIO;
}

static void transfer_done(struct raft_transfer *req)
{
    struct group *g = req->data;
    uint64_t leader = g->closing ? 0 : group_leader(g, NULL);
    if (g->closing) {
        /* nothing to say: the group is going away */
    } else if (leader == req->id) {
        pc_notice("cluster: group %u: leadership transfer finished; leader is now node %llu",
                  g->cfg.id, (unsigned long long)leader);
    } else {
        /* raft gives up after an election timeout; proposals waited that long. */
        pc_notice("cluster: group %u: node %llu did not take the leadership over within the "
                  "election timeout; the leader is node %llu",
                  g->cfg.id, (unsigned long long)req->id, (unsigned long long)leader);
    }
    pc_free(req);
}

int group_transfer(struct group *g, uint64_t node)
{
    if (g->closing || !g->ready)
        return PC_ENOTLEADER;
    if (raft_transferee(&g->raft) != 0)
        return PC_EBUSY;
    if (node == g->cfg.self_id)
        return PC_ENOTFOUND;
    struct raft_transfer *req = pc_calloc(1, sizeof *req);
    req->data = g;
    int rv = raft_transfer(&g->raft, req, node, transfer_done);
    if (rv == 0) {
        pc_notice("cluster: group %u: handing leadership to node %llu", g->cfg.id,
                  (unsigned long long)node);
        return 0;
    }
    pc_free(req);
    return rv == RAFT_NOTLEADER ? PC_ENOTLEADER : rv == RAFT_BADID ? PC_ENOTFOUND : PC_EBUSY;
}

static int mkdir_p(const char *path)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

/* Refuses a segment file that ends inside an entry batch (it was cut short: truncated, or a
 * copy stopped early). raft_uv 0.22.1 treats that as an I/O error and, for an open segment,
 * frees the file's buffer twice on that path: the process aborts inside raft_start without
 * a word. A batch that is complete but damaged is left to raft_uv (it cuts an open segment
 * there, or refuses a closed one); so is anything else it reports itself. Format: u64
 * version (1; 0 = an open segment never written), then batches of u32 crc, u32 crc, u64 n,
 * n × (u64 term, u8 type, 3 unused, u32 size), then the entries' data. */
static int check_segments(const char *dir, char *errmsg, size_t errlen)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0; /* raft_init says what is wrong with the directory */
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        bool open = strncmp(e->d_name, "open-", 5) == 0;
        bool closed = !open && e->d_name[0] >= '0' && e->d_name[0] <= '9' &&
                      strchr(e->d_name, '-') != NULL && strchr(e->d_name, '.') == NULL;
        if (!open && !closed)
            continue;
        char path[700];
        snprintf(path, sizeof path, "%.420s/%.270s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL)
            continue;
        struct stat st;
        uint64_t size = fstat(fileno(f), &st) == 0 ? (uint64_t)st.st_size : 0;
        uint64_t version = 0, off = 8;
        if (size < 8 || fread(&version, 8, 1, f) != 1 || version != 1) {
            fclose(f);
            continue;
        }
        while (off < size) {
            uint8_t pre[16];
            if (size - off < sizeof pre) {
                if (closed)
                    goto short_file;
                break; /* the zeroed rest of a preallocated open segment */
            }
            if (fseek(f, (long)off, SEEK_SET) != 0 || fread(pre, 1, sizeof pre, f) != sizeof pre)
                break;
            uint64_t n;
            memcpy(&n, pre + 8, 8);
            if (n == 0 || n > (64u << 20) / 32)
                break; /* the end of an open segment, or damage raft_uv reports itself */
            uint64_t data = 0, header_end = off + 16 + 16 * n;
            if (header_end > size)
                goto short_file;
            for (uint64_t i = 0; i < n; i++) {
                uint8_t eh[16];
                uint32_t len;
                if (fread(eh, 1, sizeof eh, f) != sizeof eh)
                    goto short_file;
                memcpy(&len, eh + 12, 4);
                data += len;
            }
            if (header_end + data > size)
                goto short_file;
            off = header_end + data;
            continue;
        short_file:
            snprintf(errmsg, errlen, "raft segment file %s ends inside the entry batch that "
                     "starts at byte %llu (the file has %llu bytes): it was cut short "
                     "(truncated, or copied incompletely), and entries in it may be committed",
                     path, (unsigned long long)off, (unsigned long long)size);
            rc = PC_ECORRUPT;
            break;
        }
        fclose(f);
    }
    closedir(d);
    return rc;
}

int group_start(uv_loop_t *loop, struct raft_mux *mux, const struct group_config *cfg,
                struct group **out, char *errmsg, size_t errlen)
{
    struct group *g = pc_calloc(1, sizeof *g);
    g->loop = loop;
    g->cfg = *cfg;
    snprintf(g->dir, sizeof g->dir, "%s", cfg->dir);
    snprintf(g->address, sizeof g->address, "%s", cfg->self_address);
    g->cfg.dir = g->dir;
    g->cfg.self_address = g->address;
    g->cfg.voters = NULL;
    unsigned seg = cfg->segment_bytes ? cfg->segment_bytes : 1024 * 1024;
    int rv;
    const char *stage = "raft directory";
    if (mkdir_p(g->dir) != 0) {
        snprintf(errmsg, errlen, "cannot create raft directory %s: %s", g->dir, strerror(errno));
        pc_free(g);
        return PC_EIO;
    }
    char why[1600];
    if (check_segments(g->dir, why, sizeof why) != 0) {
        snprintf(errmsg, errlen, "group %u: cannot load the raft log in %s: %s. Starting "
                 "without it could drop committed entries, so the node stops. In a pool of 3 "
                 "or more nodes, repair it from the others: stop this node, move this group's "
                 "raft directory away, start the node (it fetches the log from the group's "
                 "leader; docs/OPERATIONS.md). A single node: restore a backup",
                 cfg->id, g->dir, why);
        pc_free(g);
        return PC_ECORRUPT;
    }
    rv = raft_mux_transport_init(&g->transport, mux, cfg->id);
    if (rv != 0) {
        snprintf(errmsg, errlen, "group %u: cluster port transport: %s", cfg->id, pc_strerror(rv));
        pc_free(g);
        return rv;
    }
    raft_aio_reaper_start(); /* segment closes must not stop the loop (raft_aio_reaper.h) */
    stage = "raft_uv_init";
    rv = raft_uv_init(&g->io.io, loop, g->dir, &g->transport);
    if (rv != 0) {
        snprintf(errmsg, errlen, "group %u: %s on %s: %s", cfg->id, stage, g->dir, g->io.io.errmsg);
        raft_mux_transport_close(&g->transport);
        pc_free(g);
        return PC_EIO;
    }
    raft_uv_set_segment_size(&g->io.io, seg);
    raft_uv_set_connect_retry_delay(&g->io.io, 100);
    /* On ENOSPC raft_uv 0.22.1 neither fails nor reports: it retries the segment allocation
     * or write after this delay (5 s by default) while the append waits. A shorter delay
     * makes a node whose disk got space back catch up sooner (cluster/pool_disk.c). */
    raft_uv_set_disk_retry(&g->io.io, cfg->disk_retry_ms ? cfg->disk_retry_ms : 1000);
    /* With auto-recovery (the default) a corrupt closed segment, when it is the last one, is
     * renamed "corrupt-…" together with every open segment, and start goes on without their
     * entries: committed entries dropped without a word. Off, start fails and names the
     * file; a torn tail of an open segment is still cut off (a write that never completed),
     * and the check after raft_start below catches a cut that took applied entries. */
    raft_uv_set_auto_recovery(&g->io.io, false);
    raft_io_guard_init(&g->io, loop);
    rv = raft_init(&g->raft, &g->io.io, cfg->fsm, cfg->self_id, g->address);
    if (rv != 0) {
        snprintf(errmsg, errlen, "group %u: raft_init: %s", cfg->id, raft_errmsg(&g->raft));
        goto fail_io;
    }
    g->raft.data = g;
    if (cfg->attach != NULL)
        cfg->attach(cfg->fsm_ctx, &g->raft);
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (size_t i = 0; i < cfg->n_voters; i++)
        raft_configuration_add(&conf, cfg->voters[i].id, cfg->voters[i].address, RAFT_VOTER);
    /* No voters: a node joining an existing pool waits to be added by the leaders. */
    rv = cfg->n_voters > 0 ? raft_bootstrap(&g->raft, &conf) : 0;
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) { /* CANTBOOTSTRAP: state exists, a restart */
        snprintf(errmsg, errlen, "group %u: bootstrap: %s", cfg->id, raft_errmsg(&g->raft));
        goto fail_raft;
    }
    raft_set_election_timeout(&g->raft, cfg->election_ms ? cfg->election_ms : GROUP_ELECTION_MS);
    raft_set_heartbeat_timeout(&g->raft, cfg->heartbeat_ms ? cfg->heartbeat_ms : 50);
    raft_set_pre_vote(&g->raft, true);
    raft_set_snapshot_threshold(&g->raft, cfg->snapshot_threshold ? cfg->snapshot_threshold : 1024);
    raft_set_snapshot_trailing(&g->raft, cfg->snapshot_trailing ? cfg->snapshot_trailing : 256);
    /* The default threshold (4 MiB) exceeds what small segments ever leave free: without
     * this every raft_apply fails with RAFT_NOSPACE (REPORT pitfall 1). */
    raft_set_capacity_threshold(&g->raft, (unsigned short)(seg / 1024 > 65535 ? 65535 : seg / 1024));
    rv = raft_start(&g->raft);
    if (rv != 0) {
        snprintf(errmsg, errlen, "group %u: cannot load the raft log in %s: %s. %s", cfg->id,
                 g->dir, raft_errmsg(&g->raft),
                 rv == RAFT_CORRUPT || strstr(raft_errmsg(&g->raft), "segment") != NULL
                     ? "The named segment file is damaged (torn or truncated); starting without "
                       "it could drop committed entries, so the node stops. In a pool of 3 or "
                       "more nodes, repair it from the others: stop this node, move this "
                       "group's raft directory away, start the node (it fetches the log from "
                       "the group's leader; docs/OPERATIONS.md). A single node: restore a "
                       "backup"
                     : "Check the directory's permissions and the disk");
        goto fail_raft;
    }
    if (raft_last_index(&g->raft) < cfg->stored_applied) {
        /* The log lost entries this node had applied, so they were committed: raft_uv cut
         * an open segment at a torn or damaged entry. With other voters the group's leader
         * holds them and sends them again (the FSM skips what its store has): say so and go
         * on. Alone, nobody has them, and new entries would reuse their indexes, which the
         * FSM skips as applied: refuse. */
        unsigned voters = 0;
        for (unsigned i = 0; i < g->raft.configuration.n; i++)
            voters += g->raft.configuration.servers[i].role == RAFT_VOTER;
        if (voters <= 1) {
            snprintf(errmsg, errlen, "group %u: the raft log in %s ends at index %llu, but this "
                     "node had applied up to index %llu: a segment file was cut (torn or "
                     "truncated) and committed entries are missing; this node is the group's "
                     "only voter, so nobody else holds them. Restore the data directory from "
                     "a backup", cfg->id, g->dir,
                     (unsigned long long)raft_last_index(&g->raft),
                     (unsigned long long)cfg->stored_applied);
            goto fail_raft;
        }
        pc_warn("cluster: group %u: the raft log in %s ends at index %llu, but this node had "
                "applied up to index %llu: entries are missing from the log (a leader killed "
                "before its own write of entries its followers had already stored, a segment "
                "file cut or damaged, or the directory moved away for repair). They are "
                "committed on the group's other voters; this node fetches them from the leader "
                "and skips re-applying them",
                cfg->id, g->dir, (unsigned long long)raft_last_index(&g->raft),
                (unsigned long long)cfg->stored_applied);
    }
    uv_check_init(loop, &g->watch);
    g->watch.data = g;
    uv_check_start(&g->watch, watch_cb);
    *out = g;
    return 0;

fail_raft:
    /* raft_close is asynchronous; a failed start ends the process anyway, so the group is
     * left to the exit path rather than torn down half-way. */
    return PC_EIO;
fail_io:
    raft_uv_close(&g->io.io);
    raft_mux_transport_close(&g->transport);
    pc_free(g);
    return PC_EIO;
}

static void close_step(struct group *g)
{
    if (--g->closes_left > 0)
        return;
    void (*cb)(void *) = g->close_cb;
    void *arg = g->close_arg;
    pc_free(g);
    if (cb != NULL)
        cb(arg);
}

static void watch_closed(uv_handle_t *h)
{
    close_step(h->data);
}

static void raft_closed(struct raft *r)
{
    struct group *g = r->data;
    raft_uv_close(&g->io.io);
    raft_mux_transport_close(&g->transport);
    close_step(g);
}

void group_close(struct group *g, void (*cb)(void *arg), void *arg)
{
    if (g->closing)
        return;
    g->closing = true;
    g->ready = false;
    g->close_cb = cb;
    g->close_arg = arg;
    g->closes_left = 2;
    uv_close((uv_handle_t *)&g->watch, watch_closed);
    raft_io_guard_close(&g->io);
    raft_close(&g->raft, raft_closed);
}
