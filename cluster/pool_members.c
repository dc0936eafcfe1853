/* Pool membership. The metadata holds the pool's voting nodes (META_OP_NODES, written by
 * `pchatctl node add/remove`); until the first change it is the list the pool was created
 * with ([cluster] peers). Every node reconciles, twice a second, what it is responsible
 * for towards that list: its peer link dials every member; in each raft group it leads it
 * adds a missing member (raft catches it up, then makes it a voter) or removes a node that
 * left, one change at a time; and a node that is no longer a member hands the leadership of
 * its groups to the others, so that they can remove it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/pool_int.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"

enum { MEMBERS_MAX = 64, MEMBERS_TICKS = 25 };

struct member {
    uint64_t id;
    char address[128];
};

/* "1=a:1,2=b:2" -> members; malformed items are skipped (the list was validated when it
 * was written). */
static size_t parse(const char *s, struct member *out, size_t max)
{
    size_t n = 0;
    while (*s != '\0' && n < max) {
        char *end;
        unsigned long long id = strtoull(s, &end, 10);
        const char *comma = strchr(s, ',');
        size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);
        if (*end == '=' && id > 0 && (size_t)(end + 1 - s) < len) {
            out[n].id = id;
            snprintf(out[n].address, sizeof out[n].address, "%.*s", (int)(len - (size_t)(end + 1 - s)),
                     end + 1);
            n++;
        }
        s += len;
        if (*s == ',')
            s++;
    }
    return n;
}

static void format(const struct member *m, size_t n, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0, used = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%llu=%s", i ? "," : "",
                                 (unsigned long long)m[i].id, m[i].address);
}

/* The pool's membership now: the metadata's once set, else the creation list. */
static size_t current(const struct cluster *cl, struct member *out, size_t max)
{
    const struct meta *m = cluster_meta(cl);
    if (m->nodes[0] != '\0')
        return parse(m->nodes, out, max);
    size_t n = 0;
    for (size_t i = 0; i < cl->n_nodes && n < max; i++, n++) {
        out[n].id = cl->nodes[i].id;
        snprintf(out[n].address, sizeof out[n].address, "%s", cl->nodes[i].address);
    }
    return n;
}

static const struct member *find(const struct member *m, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (m[i].id == id)
            return &m[i];
    return NULL;
}

/* One step towards the membership in a group this node leads. */
static void reconcile_group(struct group *g, const struct member *m, size_t n)
{
    if (group_changing(g))
        return;
    struct group_member gm[MEMBERS_MAX];
    size_t gn = group_members(g, gm, MEMBERS_MAX);
    for (size_t i = 0; i < n; i++) {
        const struct group_member *have = NULL;
        for (size_t k = 0; k < gn && k < MEMBERS_MAX; k++)
            if (gm[k].id == m[i].id)
                have = &gm[k];
        if (have == NULL) {
            group_change(g, GROUP_ADD, m[i].id, m[i].address);
            return;
        }
        if (!have->voter) {
            group_change(g, GROUP_VOTER, m[i].id, NULL);
            return;
        }
    }
    for (size_t k = 0; k < gn && k < MEMBERS_MAX; k++)
        if (find(m, n, gm[k].id) == NULL) {
            group_change(g, GROUP_REMOVE, gm[k].id, NULL);
            return;
        }
}

/* A node that is no longer a member hands the group away: its new leader removes it. */
static void leave_group(struct cluster *cl, struct group *g)
{
    const char *why;
    if (handover_start(cl, g, 0, &why) == PC_EUNAVAIL)
        pc_debug("cluster: group %u: no longer a member, but %s", group_id(g), why);
}

void members_tick(struct cluster *cl)
{
    if (++cl->member_ticks % MEMBERS_TICKS != 0 || !cluster_meta_ready(cl))
        return;
    struct member m[MEMBERS_MAX];
    size_t n = current(cl, m, MEMBERS_MAX);
    bool member = find(m, n, cl->self) != NULL;
    for (size_t i = 0; i < n; i++)
        if (m[i].id != cl->self)
            peer_link_add(cl->peers, m[i].id, m[i].address); /* PC_EEXIST when known */
    for (uint32_t i = 0; i <= cl->n_shards; i++) {
        struct group *g = i == 0 ? cl->meta_g : cl->shards[i - 1].g;
        if (!group_ready_leader(g))
            continue;
        if (member)
            reconcile_group(g, m, n);
        else
            leave_group(cl, g);
    }
}

/* Proposes the membership with node id added (address) or removed (address NULL). */
static int change(struct cluster *cl, uint64_t id, const char *address, meta_cb cb, void *arg,
                  char *err, size_t errlen)
{
    struct member m[MEMBERS_MAX];
    size_t n = current(cl, m, MEMBERS_MAX);
    const struct member *has = find(m, n, id);
    if (address != NULL) {
        if (has != NULL) {
            snprintf(err, errlen, "node %llu is a member already (at %s)", (unsigned long long)id,
                     has->address);
            return PC_EEXIST;
        }
        for (size_t i = 0; i < n; i++)
            if (strcmp(m[i].address, address) == 0) {
                snprintf(err, errlen, "node %llu uses %s already", (unsigned long long)m[i].id,
                         address);
                return PC_EEXIST;
            }
        if (n >= MEMBERS_MAX || n >= PL_MAX_NODES) {
            snprintf(err, errlen, "a pool has at most %d nodes", PL_MAX_NODES);
            return PC_ETOOBIG;
        }
        m[n].id = id;
        snprintf(m[n].address, sizeof m[n].address, "%s", address);
        n++;
    } else {
        if (has == NULL) {
            snprintf(err, errlen, "node %llu is not a member of the pool", (unsigned long long)id);
            return PC_ENOTFOUND;
        }
        if (n == 1) {
            snprintf(err, errlen, "node %llu is the last member: a pool needs one",
                     (unsigned long long)id);
            return PC_EINVAL;
        }
        size_t i = (size_t)(has - m);
        memmove(&m[i], &m[i + 1], (n - i - 1) * sizeof m[0]);
        n--;
    }
    struct meta_op op = {.kind = META_OP_NODES, .ts_us = pc_wall_us()};
    snprintf(op.actor, sizeof op.actor, "admin");
    snprintf(op.node, sizeof op.node, "%s", cl->node_label);
    snprintf(op.prev_nodes, sizeof op.prev_nodes, "%s", cluster_meta(cl)->nodes);
    format(m, n, op.nodes, sizeof op.nodes);
    int rc = cluster_meta_submit(cl, &op, cb, arg);
    if (rc != 0)
        snprintf(err, errlen, "the metadata is not reachable now: %s", pc_strerror(rc));
    return rc;
}

int cluster_node_add(struct cluster *cl, uint64_t id, const char *address, meta_cb cb, void *arg,
                     char *err, size_t errlen)
{
    return change(cl, id, address, cb, arg, err, errlen);
}

int cluster_node_remove(struct cluster *cl, uint64_t id, meta_cb cb, void *arg, char *err,
                        size_t errlen)
{
    return change(cl, id, NULL, cb, arg, err, errlen);
}

/* Who may use this node's cluster port: DESIGN.md §3.7, "node-to-node traffic only from pool
 * members". Known are:
 *  - the pool's members (the metadata's list once set, else [cluster] peers, which also lists
 *    the pool a joining node is about to join);
 *  - every node in a raft configuration this node holds: a node being added (there before
 *    it votes) or removed (still there while it hands its leaderships over).
 * Anyone else is refused, with one exception: while this node knows no metadata leader
 * (starting, cut off, or never added yet), its own view may be stale, and a member added
 * meanwhile must still reach it or it could never catch up (if that member leads the
 * metadata group, it is the only one that would send the change). Such a node admits any
 * node the transport authenticated (with TLS: a certificate of the pool CA naming it) until
 * it hears from a leader again; once it has one, its view is the leader's within a heartbeat. */
bool members_admit(void *arg, uint64_t id)
{
    struct cluster *cl = arg;
    struct member m[MEMBERS_MAX];
    size_t n = current(cl, m, MEMBERS_MAX);
    if (find(m, n, id) != NULL)
        return true;
    struct group_member gm[MEMBERS_MAX];
    for (uint32_t i = 0; i <= cl->n_shards; i++) {
        const struct group *g = i == 0 ? cl->meta_g : cl->shards[i - 1].g;
        if (g == NULL)
            continue; /* not started yet */
        size_t gn = group_members(g, gm, MEMBERS_MAX);
        for (size_t k = 0; k < gn && k < MEMBERS_MAX; k++)
            if (gm[k].id == id)
                return true;
    }
    struct group_status st = {0};
    if (cl->meta_g != NULL)
        group_status(cl->meta_g, &st);
    if (st.leader == 0) {
        pc_debug("cluster: admitting node %llu although not a member as this node knows it: "
                 "no metadata leader known, so that view may be stale",
                 (unsigned long long)id);
        return true;
    }
    return false;
}

size_t cluster_members(const struct cluster *cl, struct cluster_node *out, char (*addr)[128],
                       size_t max)
{
    struct member m[MEMBERS_MAX];
    size_t n = current(cl, m, MEMBERS_MAX);
    for (size_t i = 0; i < n && i < max; i++) {
        snprintf(addr[i], 128, "%s", m[i].address);
        out[i] = (struct cluster_node){m[i].id, addr[i]};
    }
    return n;
}
