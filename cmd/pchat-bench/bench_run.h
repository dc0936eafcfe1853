/* bench_run: the load of pchat-bench: many pcc sessions on one loop that sign in, join
 * rooms, fetch history and post, and the counters and histograms of what happened. */
#ifndef BENCH_RUN_H
#define BENCH_RUN_H

#include "common/pc_loop_watch.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cmd/pchat-bench/bench_hist.h"
#include "cmd/pchat-bench/bench_proc.h"

#define BENCH_MAX_NODES 9
/* Rooms whose deliveries are checked against their membership (completeness). */
#define BENCH_MAX_ROOMS 1024

struct bench_config {
    const char *label;             /* scenario name in the report */
    const char *host;              /* the nodes' address (loopback) */
    int ports[BENCH_MAX_NODES];    /* SIP TCP port of each node; session i uses ports[i % n] */
    size_t n_ports;
    pid_t pids[BENCH_MAX_NODES];   /* the node on ports[j] is pids[j] (0 = unknown) */
    size_t n_pids;
    unsigned users;                /* sessions, one user each */
    unsigned rooms;                /* user i joins room (i % rooms); 0 = sign in only */
    const char *room_prefix;       /* rooms are <prefix>-1 … <prefix>-R (made beforehand) */
    const char *user_prefix;       /* users are <prefix><i>@<domain> */
    const char *domain;
    bool closed_loop;              /* saturation: `window` posts in flight per user */
    double rate;                   /* open loop: posts per second per user */
    unsigned window;               /* closed loop: posts in flight per user (1…64) */
    unsigned posters;              /* users that post (first of each room first); 0 = all */
    double duration_s;             /* posting time, warm-up included; 0 = no posting */
    double warmup_s;               /* posts intended before this are not counted */
    double idle_s;                 /* hold the sessions this long after joining (RSS) */
    unsigned msg_bytes;            /* length of each post's text */
    unsigned history;              /* after joining, ask this many messages (0 = none) */
    unsigned connect_window;       /* sign-ins in progress at once */
    unsigned join_window;          /* joins (+ history) in progress at once */
    unsigned signin_timeout_ms;
    double drain_s;                /* after posting, wait this long at most for stragglers */
    /* Several processes may share one workload (pchat-bench --procs): this one runs the
     * sessions i with i % n_procs == proc_index. They share run_id (posts are tagged
     * with it) and start posting together: each writes 'R' to sync_out once its sessions
     * have joined and waits for the start time (8 bytes, pc_mono_ns) on sync_in (-1 =
     * alone, no waiting). */
    unsigned n_procs, proc_index;
    const char *run_id;            /* 8 hex digits; NULL = pick one */
    int sync_in, sync_out;
};

/* Everything measured; rates are over the measured window (duration - warm-up). */
struct bench_node_result {
    pid_t pid;
    int port;
    unsigned sessions;                 /* signed-in sessions on this node */
    struct bench_proc_sample before;   /* before the first sign-in */
    struct bench_proc_sample signed_in;/* after sign-in + join + idle */
    struct bench_proc_sample post0, post1; /* around the measured posting window */
};

struct bench_result {
    char run_id[9];
    unsigned signed_in, signin_failed, joined, join_failed, closed;
    struct bench_hist signin, join, history, join_history;
    uint64_t history_msgs;            /* messages returned by all history requests */
    uint64_t sent, acked, sip_ok, busy_503, post_errors, lost;
    uint64_t delivered, expected_deliveries, seq_gaps, seq_dups, other_deliveries;
    /* What arrived inside the measured window, whenever it was posted: the rates. (The
     * counts above follow the posts made in the window to their last delivery, which
     * overstates a rate the receivers cannot keep up with.) */
    uint64_t delivered_in_window, acked_in_window;
    uint64_t room_acked[BENCH_MAX_ROOMS];   /* acknowledged posts per room */
    unsigned room_members[BENCH_MAX_ROOMS]; /* sessions joined per room */
    struct bench_hist delivery;       /* intended send → arrival at every recipient */
    struct bench_hist ack;            /* intended send → the author's own copy */
    /* Fairness: each session's mean post→delivery latency, posting and listening sessions
     * apart (a room whose listeners lag far behind its posters shows here). */
    struct bench_hist session_mean_posters, session_mean_listeners;
    double measured_s;                /* the posting window the rates are over */
    double wall_s;                    /* the whole run */
    uint64_t bench_cpu_ns;            /* this process, during the measured window */
    /* This process's own event-loop passes in the measured window (pc_loop_watch.h): a
     * long pass delays every delivery it holds, which the latencies above then include. */
    struct pc_loop_stats bench_loop;
    size_t n_nodes;
    struct bench_node_result nodes[BENCH_MAX_NODES];
    char error[256];                  /* why the run stopped early ("" = it did not) */
};

/* Runs the whole workload on a private loop, printing progress lines to stderr about
 * once a second. Returns 0 when the run completed (it may still report errors), -1 with
 * res->error set when it could not (no session signed in, a room is missing…). */
int bench_run(const struct bench_config *cfg, struct bench_result *res);

/* Adds the counts of src (another process's share of the same run) to dst; dst keeps its
 * own node samples and window where it has them (process 0 samples the nodes). */
void bench_result_merge(struct bench_result *dst, const struct bench_result *src);
/* Computes what needs every process's counts: the deliveries expected from the posts
 * acknowledged and the rooms' memberships. Call once, after merging. */
void bench_result_finish(struct bench_result *res, unsigned rooms);

#endif
