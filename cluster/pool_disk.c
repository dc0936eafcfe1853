/* The data disk guard. libraft 0.22.1's raft_uv never reports a full disk to us: a failed
 * segment allocation or write is retried every disk_retry ms, the append's callback waits
 * until then, and the instance only sets an internal "errored" flag nobody reads. RocksDB
 * turns an ENOSPC of its WAL into a background error. So this node watches free space
 * itself (statvfs of data_dir every POOL_DISK_CHECK_MS) and refuses the writes it would
 * propose (posts, file chunks, edits, metadata changes) while the disk holds less than
 * [node] min_free_space: they are answered PC_ENOSPC (SIP 503 with Retry-After, HTTP 507)
 * instead of waiting in a log that cannot grow. Reads, joins and deliveries go on. The
 * state ends by itself once free space is back above the bound plus a margin, so that a
 * disk hovering at the bound does not flap. A RocksDB write that failed with ENOSPC
 * anyway (the guard off, or something else filled the disk faster than we looked) enters
 * the state too. docs/OPERATIONS.md says what an operator sees and does. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cluster/group.h"
#include "cluster/peer.h"
#include "cluster/pool_int.h"
#include "cluster/pool_msg.h"
#include "common/pc_alloc.h"
#include "common/pc_log.h"
#include "common/pc_time.h"
#include "storage/store.h"

enum {
    DISK_MIN_MARGIN = 2 << 20,    /* free space above the bound before writes resume */
    DISK_ENOSPC_HOLD_MS = 2000,   /* a store ENOSPC keeps the state at least this long */
    DISK_SHED_MS = 3000,          /* while full, groups led here are handed away this often */
};

static void tell_peer(struct cluster *cl, uint64_t node)
{
    if (cl->peers == NULL)
        return;
    struct pc_buf b = {0};
    pool_node_state_encode(&b, cl->disk.full ? POOL_NODE_DISK_FULL : 0);
    pool_send(cl, node, POOL_MSG_NODE_STATE, &b);
    pc_buf_free(&b);
}

static void tell_peers(struct cluster *cl)
{
    for (size_t i = 0; i < cl->n_nodes; i++)
        if (cl->nodes[i].id != cl->self && peer_up(cl->peers, cl->nodes[i].id))
            tell_peer(cl, cl->nodes[i].id);
}

/* A full node leads nothing it can avoid: each group it leads goes to the other voter that
 * can take it over now and lags least (pool_handover.c: alive, room on its disk, log caught
 * up). With none, the node stays leader and refuses, and tries again DISK_SHED_MS later. */
static void shed_leadership(struct cluster *cl, uint64_t now)
{
    struct pool_disk *d = &cl->disk;
    if (now < d->shed_due_ms || cl->n_nodes < 2)
        return;
    d->shed_due_ms = now + DISK_SHED_MS;
    unsigned handed = 0;
    const char *why;
    for (uint32_t i = 0; i <= cl->n_shards; i++) {
        struct group *g = i == 0 ? cl->meta_g : cl->shards[i - 1].g;
        if (g != NULL && handover_start(cl, g, 0, &why) == 0)
            handed++;
    }
    if (handed > 0)
        pc_notice("disk: the data disk is full: handing leadership of %u raft group(s) to other "
                  "nodes, so that their rooms take posts meanwhile", handed);
}

static const char *human(uint64_t bytes, char *buf, size_t cap)
{
    if (bytes >= (1ull << 30))
        snprintf(buf, cap, "%.1f GiB", (double)bytes / (1ull << 30));
    else if (bytes >= (1ull << 20))
        snprintf(buf, cap, "%.1f MiB", (double)bytes / (1ull << 20));
    else
        snprintf(buf, cap, "%llu KiB", (unsigned long long)(bytes >> 10));
    return buf;
}

static uint64_t resume_bytes(const struct cluster *cl)
{
    uint64_t min = cl->cfg.min_free_bytes;
    uint64_t margin = min / 4 > DISK_MIN_MARGIN ? min / 4 : DISK_MIN_MARGIN;
    return min + margin;
}

void disk_check(struct cluster *cl, uint64_t now, bool force)
{
    struct pool_disk *d = &cl->disk;
    if (!force && now < d->next_check_ms)
        return;
    d->next_check_ms = now + POOL_DISK_CHECK_MS;

    char f0[32];
    bool store_enospc = false;
    uint64_t enospc = store_enospc_count(cl->st);
    const char *noted = d->noted;
    d->noted = NULL;
    if (enospc != d->enospc_seen || noted != NULL) {
        d->enospc_seen = enospc;
        d->enospc_until_ms = now + DISK_ENOSPC_HOLD_MS;
        store_enospc = true;
    }

    struct statvfs sv;
    if (statvfs(cl->cfg.data_dir, &sv) != 0) {
        if (!d->statvfs_failed)
            pc_warn("disk: cannot read the free space of %s (%s); the disk-full guard only "
                    "reacts to failed writes until it can", cl->cfg.data_dir, strerror(errno));
        d->statvfs_failed = true;
    } else {
        d->statvfs_failed = false;
        d->free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
        d->total_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
    }

    /* The last line: at half the reserve no store write happens at all, so RocksDB never
     * writes its WAL into a full disk (it would abort). A follower still receives entries
     * from the others' leaders; applying the next one fails here and ends the process
     * (fsm_store_failed: libraft 0.22.1 cannot take a failed apply back), and the next
     * start waits for space (cluster_disk_wait). Open again with the margin. */
    if (cl->cfg.min_free_bytes > 0 && !d->statvfs_failed) {
        uint64_t floor = cl->cfg.min_free_bytes / 2;
        bool close = d->free_bytes < floor;
        bool open = d->free_bytes >= floor + DISK_MIN_MARGIN;
        if (close && !d->gate_closed) {
            d->gate_closed = true;
            store_set_write_gate(cl->st, true);
            pc_error("disk: the data disk of %s is down to %s free, below half of [node] "
                     "min_free_space: this node stops writing to its database; the next entry "
                     "it has to store ends the process (status 75), and it starts again once "
                     "space is freed (it waits for it, then catches up)", cl->cfg.data_dir,
                     human(d->free_bytes, f0, sizeof f0));
        } else if (open && d->gate_closed) {
            d->gate_closed = false;
            store_set_write_gate(cl->st, false);
            pc_notice("disk: the node writes to its database again (%s free)",
                      human(d->free_bytes, f0, sizeof f0));
        }
    }

    char f[32], t[32], m[32];
    if (d->full && !d->statvfs_failed && !store_enospc && now >= d->enospc_until_ms &&
        d->free_bytes >= resume_bytes(cl)) {
        d->full = false;
        pc_notice("disk: space is back on the data disk of %s (%s free of %s): writes are "
                  "accepted again after %.1f s of refusing them (%llu refused)", cl->cfg.data_dir,
                  human(d->free_bytes, f, sizeof f), human(d->total_bytes, t, sizeof t),
                  (double)(now - d->full_since_ms) / 1000.0, (unsigned long long)d->refused);
        tell_peers(cl);
        return;
    }
    if (d->full) {
        shed_leadership(cl, now);
        return;
    }
    bool low = cl->cfg.min_free_bytes > 0 && !d->statvfs_failed &&
               d->free_bytes < cl->cfg.min_free_bytes;
    if (!low && !store_enospc)
        return;
    d->full = true;
    d->full_since_ms = now;
    d->events++;
    if (low)
        pc_error("disk: DISK FULL: the data disk of %s has %s free of %s, below [node] "
                 "min_free_space = %s; this node refuses new posts, uploads and changes "
                 "(SIP 503 \"disk full\") until space returns. Free space on that "
                 "filesystem: writes resume by themselves, no restart needed",
                 cl->cfg.data_dir, human(d->free_bytes, f, sizeof f),
                 human(d->total_bytes, t, sizeof t),
                 human(cl->cfg.min_free_bytes, m, sizeof m));
    else
        pc_error("disk: DISK FULL: %s in %s (%s free); this node refuses new posts, uploads "
                 "and changes (SIP 503 \"disk full\") until space returns. Free space on "
                 "that filesystem, and raise [node] min_free_space so that the guard acts "
                 "first", noted != NULL ? noted : "a database write failed with \"no space "
                 "left on device\"", cl->cfg.data_dir, human(d->free_bytes, f, sizeof f));
    tell_peers(cl);
    d->shed_due_ms = 0;
    shed_leadership(cl, now);
}

void disk_peer_state(struct cluster *cl, uint64_t node, unsigned flags)
{
    struct pool_disk *d = &cl->disk;
    bool full = (flags & POOL_NODE_DISK_FULL) != 0;
    size_t i = 0;
    while (i < d->n_full_peers && d->full_peers[i] != node)
        i++;
    bool was = i < d->n_full_peers;
    if (full && !was) {
        d->full_peers = pc_realloc(d->full_peers, (d->n_full_peers + 1) * sizeof *d->full_peers);
        d->full_peers[d->n_full_peers++] = node;
    } else if (!full && was) {
        d->full_peers[i] = d->full_peers[--d->n_full_peers];
    }
    if (full != was)
        pc_notice("disk: node %llu says its data disk %s", (unsigned long long)node,
                  full ? "is full: it refuses writes and gets no shard by balancing"
                       : "has space again");
}

void disk_link(struct cluster *cl, uint64_t node, bool up)
{
    if (!up)
        disk_peer_state(cl, node, 0); /* it tells again when it is back */
    else if (cl->disk.full)
        tell_peer(cl, node);
}

bool disk_node_full(const struct cluster *cl, uint64_t node)
{
    if (node == cl->self)
        return cl->disk.full;
    for (size_t i = 0; i < cl->disk.n_full_peers; i++)
        if (cl->disk.full_peers[i] == node)
            return true;
    return false;
}

void disk_close(struct cluster *cl)
{
    pc_free(cl->disk.full_peers);
    cl->disk.full_peers = NULL;
    cl->disk.n_full_peers = 0;
}

void disk_note_enospc(struct cluster *cl, const char *what)
{
    cl->disk.noted = what;
    disk_check(cl, pc_mono_ms(), true);
}

bool disk_refuse_write(struct cluster *cl)
{
    if (!cl->disk.full)
        return false;
    cl->disk.refused++;
    return true;
}

void cluster_disk_wait(const char *data_dir, uint64_t min_free_bytes)
{
    uint64_t need = min_free_bytes / 2 + DISK_MIN_MARGIN, waited_s = 0;
    char f[32], m[32];
    while (min_free_bytes > 0) {
        struct statvfs sv;
        if (statvfs(data_dir, &sv) != 0)
            return; /* a missing data_dir is created and reported later */
        uint64_t free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
        if (free_bytes >= need) {
            if (waited_s > 0)
                pc_notice("disk: %s free on the data disk of %s after %llu s: starting",
                          human(free_bytes, f, sizeof f), data_dir,
                          (unsigned long long)waited_s);
            return;
        }
        if (waited_s % 60 == 0)
            pc_error("disk: the data disk of %s has %s free, less than half of [node] "
                     "min_free_space (%s): the node waits for free space before it opens its "
                     "database (it would not have room to apply what it missed). Free space on "
                     "that filesystem", data_dir, human(free_bytes, f, sizeof f),
                     human(min_free_bytes, m, sizeof m));
        sleep(1);
        waited_s++;
    }
}
