/* Internals shared by raft_mux.c (listener, inbound routing), raft_mux_dial.c (outbound
 * connects) and raft_mux_raft.c (the raft_uv_transport). Not for other modules. */
#ifndef RAFT_MUX_INT_H
#define RAFT_MUX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uthash.h>
#include <uv.h>

#include "cluster/raft_mux.h"

#define RMX_MAGIC 0x50434d58u /* "PCMX" */
#define RMX_VERSION 1
#define RMX_KIND_RAFT 1
#define RMX_KIND_PEER 2
#define RMX_FIXED_LEN 24 /* preamble without the address */
#define RMX_PREAMBLE_MAX (RMX_FIXED_LEN + RAFT_MUX_ADDR_MAX)
/* A peer-link inbound read may take this much past its preamble in the same read, so the
 * first frame usually arrives together with the preamble (raft streams never over-read). */
#define RMX_PEER_SLACK 4096

struct rmx_preamble {
    unsigned kind;
    uint64_t group;
    uint64_t sender;
    char address[RAFT_MUX_ADDR_MAX + 1];
};

/* Encodes into out (RMX_PREAMBLE_MAX bytes); returns the length. address must be at most
 * RAFT_MUX_ADDR_MAX bytes (checked by callers). */
size_t rmx_preamble_encode(uint8_t *out, unsigned kind, uint64_t group, uint64_t sender,
                           const char *address);

/* Checks the fixed part (RMX_FIXED_LEN bytes); on success sets *total to the full preamble
 * length. Returns NULL or a reason for the log. */
const char *rmx_preamble_check_fixed(const uint8_t *p, size_t *total);

/* Decodes a complete preamble whose fixed part passed the check. Returns NULL or a reason. */
const char *rmx_preamble_decode(const uint8_t *p, size_t len, struct rmx_preamble *out);

/* Parses "a.b.c.d:port" or "[v6]:port" (port 1..65535). Returns 0 or PC_EINVAL. */
int rmx_parse_address(const char *address, struct sockaddr_storage *sa);

/* One raft group's transport state (t->impl). */
struct rmx_group {
    UT_hash_handle hh;
    uint64_t group; /* hash key */
    struct raft_mux *m;
    struct raft_uv_transport *t;
    raft_id id;
    char address[RAFT_MUX_ADDR_MAX + 1];
    raft_uv_accept_cb accept_cb; /* set by listen (raft_start), cleared by close */
    raft_uv_transport_close_cb close_cb;
    bool closing;
    unsigned n_dials; /* outbound connects whose raft callback has not fired yet */
};

struct rmx_dial;
/* Fired exactly once, after every handle and request of the dial is finished, so the owner
 * may free the dial inside. tcp is non-NULL only with status 0. */
typedef void (*rmx_dial_done_cb)(struct rmx_dial *d, uv_tcp_t *tcp, int status);

/* An outbound connect: connect, TCP_NODELAY, write the preamble, hand over. Embedded in the
 * owner's allocation. */
struct rmx_dial {
    struct raft_mux *m;
    uv_tcp_t *tcp; /* raft_malloc'd: raft frees what it gets with raft_free */
    uv_connect_t connect;
    uv_write_t write;
    uint8_t preamble[RMX_PREAMBLE_MAX];
    size_t preamble_len;
    uint64_t deadline; /* uv_now() ms */
    bool closing;
    int status; /* why it is closing */
    rmx_dial_done_cb done;
    struct rmx_dial *prev, *next; /* m->dials */
};

/* Starts a dial whose preamble is already filled in. Returns 0 (done will fire) or a pc_err
 * code (it will not). */
int rmx_dial_start(struct raft_mux *m, struct rmx_dial *d, const char *address,
                   rmx_dial_done_cb done);
/* Makes a pending dial finish with status (done fires from the close callback). No-op if it
 * is already finishing. */
void rmx_dial_fail(struct rmx_dial *d, int status);

struct rmx_in; /* inbound connection reading its preamble (raft_mux.c) */

struct raft_mux {
    uv_loop_t *loop;
    uint64_t node_id;
    char address[RAFT_MUX_ADDR_MAX + 1];
    unsigned connect_timeout_ms, preamble_timeout_ms, max_pending, raft_stall_ms;
    uv_tcp_t listener;
    uv_timer_t sweep; /* enforces preamble and connect deadlines while any are pending */
    bool closing;
    unsigned pending_closes; /* handles being closed that still point at the mux */
    void (*close_cb)(void *arg);
    void *close_arg;
    struct rmx_group *groups; /* uthash by group id */
    unsigned n_transports;    /* raft_mux_transport_init'ed, not yet _close'd */
    struct rmx_in *ins;
    unsigned n_ins;
    struct rmx_dial *dials;
    raft_mux_peer_accept_cb peer_cb;
    void *peer_arg;
    struct raft_mux_stats stats;
    /* Rejection log rate limit: a flood of junk connections must not flood the log. */
    uint64_t log_window;
    unsigned log_count, log_suppressed;
};

/* Starts the sweep timer if it is not running (something with a deadline was added). */
void rmx_sweep_arm(struct raft_mux *m);
/* Fails dials past their deadline (raft_mux_dial.c; called by the sweep). */
void rmx_dial_sweep(struct raft_mux *m, uint64_t now);
/* A closing handle that points at the mux finished closing: account for it. */
void rmx_handle_closed(struct raft_mux *m);
/* Logs a rejected/failed connection at `level`, at most a few lines per second. */
void rmx_log_limited(struct raft_mux *m, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
