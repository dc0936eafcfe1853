/* pchatctl drill kill-owner ROOM: a failover drill an operator can run against a pool
 * whose nodes' admin sockets are on this machine. It finds the room's owner, starts a probe
 * client on another node that posts one message at a time, kills (SIGKILL) or pauses
 * (SIGSTOP) the owner, measures how long posting stalls, and reads the room's history to
 * verify that every acknowledged probe post is there exactly once. */
#include "cmd/pchatctl/drill.h"

#include <glob.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "chat/client/pcc.h"
#include "chat/xccos/xccos.h"
#include "cmd/pchatctl/admin_client.h"
#include "common/pc_time.h"

#define MAX_NODES 16
#define MAX_POSTS 100000

struct drill_node {
    char sock[512];
    long long id, pid;
    char host[128];
    int port;
};

struct probe {
    uv_loop_t loop;
    struct pcc *c;
    char room_uri[256];
    char tag[64];                  /* unique per drill: the texts are "<tag>-<n>" */
    unsigned sent, acked, refused, unknown;
    unsigned char *ok;             /* per post: 1 acknowledged */
    uint32_t cseq;                 /* the post in flight (0 = none) */
    uint64_t post_ms, last_ack_ms, longest_gap_ms;
    uint64_t fault_ms, resumed_ms; /* the first ack of a post sent after the fault */
};

static int find_nodes(const char *sock, const char *list, struct drill_node *nodes)
{
    char pattern[1024];
    if (list != NULL) {
        snprintf(pattern, sizeof pattern, "%s", list);
    } else {
        /* The local pool layout: <run>/n<i>/admin.sock beside the given socket's node. */
        char copy[512];
        snprintf(copy, sizeof copy, "%s", sock);
        char *node_dir = dirname(copy);
        char parent[512];
        snprintf(parent, sizeof parent, "%s", node_dir);
        snprintf(pattern, sizeof pattern, "%s/n*/admin.sock", dirname(parent));
    }
    glob_t g;
    int n = 0;
    if (glob(pattern, 0, NULL, &g) != 0) {
        fprintf(stderr, "drill: no admin sockets match %s (pass --sockets GLOB)\n", pattern);
        return 0;
    }
    for (size_t i = 0; i < g.gl_pathc && n < MAX_NODES; i++) {
        json_t *req = json_pack("{s:s}", "op", "node.info");
        json_t *ans = admin_call(g.gl_pathv[i], req);
        json_decref(req);
        if (ans == NULL || !json_is_true(json_object_get(ans, "ok"))) {
            fprintf(stderr, "drill: %s does not answer; is that node running?\n", g.gl_pathv[i]);
            json_decref(ans);
            continue;
        }
        struct drill_node *d = &nodes[n++];
        snprintf(d->sock, sizeof d->sock, "%s", g.gl_pathv[i]);
        d->id = json_integer_value(json_object_get(ans, "node"));
        d->pid = json_integer_value(json_object_get(ans, "pid"));
        const char *sip = json_string_value(json_object_get(ans, "sip"));
        const char *colon = sip ? strrchr(sip, ':') : NULL;
        snprintf(d->host, sizeof d->host, "%.*s", colon ? (int)(colon - sip) : 0, sip ? sip : "");
        d->port = colon ? atoi(colon + 1) : 0;
        json_decref(ans);
    }
    globfree(&g);
    return n;
}

static long long room_owner(const char *sock, const char *room, char *uri, size_t cap)
{
    json_t *req = json_pack("{s:s, s:s}", "op", "room.get", "name", room);
    json_t *ans = admin_call(sock, req);
    json_decref(req);
    long long owner = -1;
    if (ans != NULL && json_is_true(json_object_get(ans, "ok"))) {
        json_t *r = json_object_get(ans, "room");
        owner = json_integer_value(json_object_get(r, "owner"));
        if (uri != NULL)
            snprintf(uri, cap, "%s", json_string_value(json_object_get(r, "uri")));
    } else if (ans != NULL) {
        fprintf(stderr, "drill: %s\n", json_string_value(json_object_get(ans, "error")));
    }
    json_decref(ans);
    return owner;
}

/* False once pid is gone, a zombie, or stopped. */
static bool process_running(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')'); /* "pid (comm) S …" */
    char state = close_paren != NULL && close_paren[1] == ' ' ? close_paren[2] : '?';
    return state != 'Z' && state != 'X' && state != 'T' && state != 't';
}

/* Runs the loop for about ms, handling the probe's events. */
static void probe_spin(struct probe *p, unsigned ms, bool posting)
{
    uint64_t end = pc_mono_ms() + ms;
    do {
        uv_run(&p->loop, UV_RUN_NOWAIT);
        struct pcc_event *ev;
        while ((ev = pcc_next_event(p->c)) != NULL) {
            if (ev->kind == PCC_EV_SIP_RESPONSE && ev->cseq == p->cseq && p->cseq != 0) {
                uint64_t now = pc_mono_ms();
                if (ev->status == 200) {
                    p->ok[p->sent - 1] = 1;
                    p->acked++;
                    if (p->last_ack_ms != 0 && now - p->last_ack_ms > p->longest_gap_ms)
                        p->longest_gap_ms = now - p->last_ack_ms;
                    p->last_ack_ms = now;
                    if (p->fault_ms != 0 && p->resumed_ms == 0 && p->post_ms >= p->fault_ms)
                        p->resumed_ms = now;
                } else if (ev->status == 403 || ev->status == 404 || ev->status == 503) {
                    p->refused++;
                } else {
                    p->unknown++;
                }
                p->cseq = 0;
            }
            pcc_event_free(ev);
        }
        if (posting && p->cseq == 0 && pcc_ready(p->c) && p->sent < MAX_POSTS) {
            char text[128];
            snprintf(text, sizeof text, "%s-%u", p->tag, p->sent);
            p->cseq = pcc_post(p->c, p->room_uri, text);
            p->sent++;
            p->post_ms = pc_mono_ms();
        }
        usleep(500);
    } while (pc_mono_ms() < end);
}

/* Waits for the XCCOS reply with envid to the INFO with cseq; NULL on timeout or when the
 * INFO itself was refused (said on stderr). */
static struct pcc_event *probe_reply(struct probe *p, uint32_t cseq, const char *envid, unsigned ms)
{
    uint64_t end = pc_mono_ms() + ms;
    while (pc_mono_ms() < end) {
        uv_run(&p->loop, UV_RUN_NOWAIT);
        struct pcc_event *ev;
        while ((ev = pcc_next_event(p->c)) != NULL) {
            /* A reply names the command it answers in cmd_envid (its own envid is the
             * server's). */
            if (ev->kind == PCC_EV_XCCOS && ev->msg.cmd_envid != NULL &&
                strcmp(ev->msg.cmd_envid, envid) == 0)
                return ev;
            bool refused = ev->kind == PCC_EV_SIP_RESPONSE && ev->cseq == cseq && ev->status >= 300;
            bool closed = ev->kind == PCC_EV_CLOSED;
            if (refused || closed)
                fprintf(stderr, "drill: %s: %d %s\n", closed ? "connection closed" : "refused",
                        ev->status, ev->reason);
            pcc_event_free(ev);
            if (refused || closed)
                return NULL;
        }
        usleep(500);
    }
    return NULL;
}

/* Reads the room's history back to the drill's first post; counts each post seen. */
static int verify(struct probe *p, unsigned *seen)
{
    uint64_t before = 0;
    /* Pages of 100: a page's XML stays well under a SIP body limit of 64 KiB. */
    for (int page = 0; page < 2000; page++) {
        char envid[32];
        uint32_t cseq = pcc_history(p->c, p->room_uri, 100, before, envid);
        struct pcc_event *ev = probe_reply(p, cseq, envid, 10000);
        if (ev == NULL || ev->msg.n_rooms == 0) {
            fprintf(stderr, "drill: history page %d: %s\n", page,
                    ev == NULL ? "no answer within 10 s" : "an answer without the room");
            pcc_event_free(ev);
            return -1;
        }
        const struct xccos_room *r = &ev->msg.rooms[0];
        size_t n = r->n_msgs;
        bool first_seen = false;
        for (size_t i = 0; i < n; i++) {
            const char *t = r->msgs[i].text;
            size_t tl = strlen(p->tag);
            if (t == NULL || strncmp(t, p->tag, tl) != 0 || t[tl] != '-')
                continue;
            unsigned k = (unsigned)atoi(t + tl + 1);
            if (k < p->sent)
                seen[k]++;
            first_seen = first_seen || k == 0;
        }
        uint64_t oldest = n > 0 ? r->msgs[0].msg_id : 0;
        pcc_event_free(ev);
        if (first_seen || n == 0 || oldest <= 1)
            return 0;
        before = oldest;
    }
    return 0;
}

int drill_kill_owner(const char *sock, const char *sockets, const char *room, const char *user,
                     unsigned stop_s)
{
    struct drill_node nodes[MAX_NODES];
    int n = find_nodes(sock, sockets, nodes);
    if (n < 2) {
        fprintf(stderr, "drill: needs at least 2 running nodes with reachable admin sockets "
                "(found %d)\n", n);
        return 2;
    }
    static struct probe p;
    memset(&p, 0, sizeof p);
    long long owner = room_owner(nodes[0].sock, room, p.room_uri, sizeof p.room_uri);
    for (int i = 0; owner == 0 && i < 100; i++) { /* an election may be running */
        usleep(100000);
        owner = room_owner(nodes[0].sock, room, p.room_uri, sizeof p.room_uri);
    }
    if (owner <= 0) {
        fprintf(stderr, "drill: room %s has no known owner right now; try again\n", room);
        return 2;
    }
    struct drill_node *victim = NULL, *probe_node = NULL;
    for (int i = 0; i < n; i++) {
        if (nodes[i].id == owner)
            victim = &nodes[i];
        else if (probe_node == NULL)
            probe_node = &nodes[i];
    }
    if (victim == NULL || probe_node == NULL) {
        fprintf(stderr, "drill: the owner (node %lld) is not among the local nodes\n", owner);
        return 2;
    }
    snprintf(p.tag, sizeof p.tag, "drill%ld%llu", (long)getpid(), (unsigned long long)pc_mono_ms());
    p.ok = calloc(MAX_POSTS, 1);
    uv_loop_init(&p.loop);
    struct pcc_config pc = {.host = probe_node->host, .port = probe_node->port, .user = user};
    p.c = pcc_start(&p.loop, &pc);
    printf("drill: room %s is owned by node %lld (pid %lld); probe %s on node %lld (%s:%d)\n",
           room, owner, victim->pid, user, probe_node->id, probe_node->host, probe_node->port);
    uint64_t deadline = pc_mono_ms() + 10000;
    while (!pcc_ready(p.c) && pc_mono_ms() < deadline)
        probe_spin(&p, 10, false);
    int rc = 2;
    if (!pcc_ready(p.c)) {
        fprintf(stderr, "drill: the probe could not sign in to node %lld\n", probe_node->id);
        goto out;
    }
    char envid[32];
    const char *uris[1] = {p.room_uri};
    uint32_t cseq = pcc_join(p.c, uris, 1, envid);
    struct pcc_event *ev = probe_reply(&p, cseq, envid, 10000);
    if (ev == NULL || ev->msg.n_failed > 0) {
        fprintf(stderr, "drill: the probe could not join %s\n", room);
        pcc_event_free(ev);
        goto out;
    }
    pcc_event_free(ev);
    /* A session's first history read ends where its live delivery began (the join): read
     * it now, so that the verification below sees everything. */
    cseq = pcc_history(p.c, p.room_uri, 1, 0, envid);
    pcc_event_free(probe_reply(&p, cseq, envid, 10000));

    probe_spin(&p, 1000, true);
    unsigned acked_before = p.acked;
    printf("drill: %u posts acknowledged in 1 s before the fault\n", acked_before);
    /* Ownership may have moved meanwhile (an election, the balancer): aim at the owner now. */
    long long now_owner = room_owner(probe_node->sock, room, NULL, 0);
    if (now_owner != owner) {
        victim = NULL;
        for (int i = 0; i < n; i++)
            if (nodes[i].id == now_owner && &nodes[i] != probe_node)
                victim = &nodes[i];
        if (victim == NULL) {
            fprintf(stderr, "drill: the owner moved to node %lld (the probe's node, or not a "
                    "local one) during the warm-up; run the drill again\n", now_owner);
            goto out;
        }
        printf("drill: the owner moved to node %lld during the warm-up; aiming at it\n", now_owner);
    }
    kill((pid_t)victim->pid, stop_s ? SIGSTOP : SIGKILL);
    /* The signal takes effect a moment later: the clock starts once the node is gone (or
     * stopped), so that no post the node still served counts as "resumed". */
    while (process_running((pid_t)victim->pid))
        usleep(200);
    uint64_t t0 = pc_mono_ms();
    p.fault_ms = t0;
    printf("drill: %s node %lld\n", stop_s ? "SIGSTOP" : "SIGKILL", victim->id);
    p.longest_gap_ms = 0;
    while (p.resumed_ms == 0 && pc_mono_ms() - t0 < 30000)
        probe_spin(&p, 10, true);
    uint64_t outage = p.resumed_ms != 0 ? p.resumed_ms - t0 : 0;
    if (stop_s) {
        probe_spin(&p, stop_s * 1000 > outage ? (unsigned)(stop_s * 1000 - outage) : 0, true);
        kill((pid_t)victim->pid, SIGCONT);
        printf("drill: SIGCONT node %lld after %u s\n", victim->id, stop_s);
    }
    probe_spin(&p, 2000, true);
    while (p.cseq != 0 && pc_mono_ms() - t0 < 60000)
        probe_spin(&p, 10, false);
    if (p.resumed_ms == 0)
        printf("drill: posting did NOT resume within 30 s\n");
    else
        printf("drill: posting resumed %llu ms after the fault (longest gap between "
               "acknowledgements: %llu ms)\n", (unsigned long long)outage,
               (unsigned long long)p.longest_gap_ms);
    long long new_owner = room_owner(probe_node->sock, room, NULL, 0);
    printf("drill: owner now: node %lld\n", new_owner);
    printf("drill: %u posts sent, %u acknowledged, %u refused (never stored), %u outcome "
           "unknown\n", p.sent, p.acked, p.refused, p.unknown);

    unsigned *seen = calloc(p.sent + 1, sizeof *seen);
    unsigned lost = 0, dup = 0;
    if (verify(&p, seen) != 0) {
        fprintf(stderr, "drill: could not read the room's history to verify\n");
    } else {
        for (unsigned k = 0; k < p.sent; k++) {
            if (p.ok[k] && seen[k] == 0)
                lost++;
            if (seen[k] > 1)
                dup++;
        }
        printf("drill: history check: %u acknowledged posts lost, %u duplicated: %s\n", lost, dup,
               lost == 0 && dup == 0 ? "OK" : "VIOLATION");
        rc = lost == 0 && dup == 0 && p.resumed_ms != 0 ? 0 : 1;
    }
    free(seen);
    if (!stop_s)
        printf("drill: node %lld was killed: start it again (deploy/pool start, or systemctl "
               "start pchatd@…); it catches up by itself\n", victim->id);
out:
    pcc_close(p.c, false);
    for (int i = 0; i < 50; i++)
        uv_run(&p.loop, UV_RUN_NOWAIT);
    uv_loop_close(&p.loop);
    free(p.ok);
    return rc;
}
