/* Internals shared by raft_mux.c (listener, inbound routing), raft_mux_dial.c (outbound
 * connects), raft_mux_auth.c (TLS stages, identity checks, refusals) and raft_mux_raft.c
 * (the raft_uv_transport). Not for other modules. */
#ifndef RAFT_MUX_INT_H
#define RAFT_MUX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uthash.h>
#include <uv.h>

#include "cluster/raft_mux.h"

struct pc_tls_pipe;

#define RMX_MAGIC 0x50434d58u /* "PCMX" */
#define RMX_VERSION 1
#define RMX_KIND_RAFT 1
#define RMX_KIND_PEER 2
#define RMX_FIXED_LEN 24 /* preamble without the address */
#define RMX_PREAMBLE_MAX (RMX_FIXED_LEN + RAFT_MUX_ADDR_MAX)
/* A peer-link inbound read may take this much past its preamble in the same read, so the
 * first frame usually arrives together with the preamble (raft streams never over-read). */
#define RMX_PEER_SLACK 4096

/* TLS mode: the acceptor's one-byte answer to a preamble. Anything but OK is followed by
 * the end of the connection; the dialler logs why (NOT_SERVED at debug level: normal while
 * groups start and stop). */
enum rmx_verdict {
    RMX_VERDICT_OK = 0,
    RMX_VERDICT_BAD_PREAMBLE = 1,
    RMX_VERDICT_NOT_SERVED = 2, /* unknown or stopped group, no peer handler, shutting down */
    RMX_VERDICT_IDENTITY = 3,   /* the certificate names another node than the preamble */
    RMX_VERDICT_UNKNOWN = 4,    /* the sender is not a node this pool knows */
};

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

/* An inbound connection until its preamble is complete (raft_mux.c; TLS stage in
 * raft_mux_auth.c). */
struct rmx_in {
    struct raft_mux *m;
    uv_tcp_t *tcp;          /* plain: raft_malloc'd, it may end up in raft's hands */
    struct pc_tls_pipe *tp; /* TLS: owns the TCP connection; in is freed when tp is */
    uint64_t cert_node;     /* TLS: the node the peer's certificate names (0: none) */
    bool handshaken;        /* TLS: the handshake completed */
    uint64_t deadline;
    size_t got;    /* bytes in buf */
    size_t need;   /* preamble length: RMX_FIXED_LEN until the fixed part is checked */
    unsigned kind; /* 0 until the fixed part is checked */
    char peer[64]; /* remote ip:port for logs */
    uint8_t buf[RMX_PREAMBLE_MAX + RMX_PEER_SLACK];
    struct rmx_in *prev, *next;
};

/* Closes in's connection and releases in (now, or with its TLS pipe), counting it as
 * rejected; verdict goes to a TLS dialler first. why is logged at level, rate-limited. */
void rmx_in_reject(struct rmx_in *in, int level, enum rmx_verdict verdict, const char *why);
/* A preamble of in->need bytes is in in->buf, early bytes follow it: check, route, hand over
 * (raft_mux.c). */
void rmx_in_preamble(struct rmx_in *in, const uint8_t *early, size_t early_len);
/* Checks the fixed part once RMX_FIXED_LEN bytes are in. Returns false after rejecting. */
bool rmx_in_check_fixed(struct rmx_in *in);

struct rmx_dial;
/* Fired exactly once, after every handle and request of the dial is finished, so the owner
 * may free the dial inside. stream is non-NULL only with status 0. */
typedef void (*rmx_dial_done_cb)(struct rmx_dial *d, uv_stream_t *stream, int status);

/* An outbound connect: connect, TCP_NODELAY, (TLS: handshake,) write the preamble, (TLS:
 * read the verdict,) hand over. Embedded in the owner's allocation. */
struct rmx_dial {
    struct raft_mux *m;
    uv_tcp_t *tcp;          /* plain: raft_malloc'd: raft frees what it gets with raft_free */
    struct pc_tls_pipe *tp; /* TLS: owns the TCP connection */
    uint64_t expect;        /* the node we mean to reach (0 = unknown: any pool node) */
    bool keepalive;         /* peer link: detect a vanished peer (TCP keepalive, user timeout) */
    unsigned stall_ms;      /* raft: fail once data stays unacknowledged this long (raft_mux.h) */
    char address[RAFT_MUX_ADDR_MAX + 1];
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

/* Starts a dial whose preamble (and expect, keepalive) is already filled in. Returns 0 (done
 * will fire, from the loop, even when the connect fails at once) or PC_ECLOSED, PC_EINVAL,
 * PC_ENOMEM (it will not). */
int rmx_dial_start(struct raft_mux *m, struct rmx_dial *d, const char *address,
                   rmx_dial_done_cb done);
/* Makes a pending dial finish with status (done fires from the close callback). No-op if it
 * is already finishing. */
void rmx_dial_fail(struct rmx_dial *d, int status);
/* The dial's connection is complete (plain: preamble written; TLS: accepted) and stream is
 * the consumer's: unlink and hand over (raft_mux_dial.c). */
void rmx_dial_succeed(struct rmx_dial *d, uv_stream_t *stream);
/* Every handle of a failing dial is closed: report it to the owner (raft_mux_dial.c). */
void rmx_dial_closed(struct rmx_dial *d);

/* ---- TLS stages (raft_mux_auth.c) --------------------------------------------------------- */

/* Accepts a pending connection of the listener into a new TLS pipe for in (in->tp). Returns
 * 0 or a pc_err code: with in->tp NULL the caller frees in, otherwise in belongs to the
 * pipe's close path already. */
int rmx_tls_accept(struct rmx_in *in, uv_stream_t *listener);
/* TLS: whether the certificate names the preamble's sender; false after counting and
 * logging the refusal. */
bool rmx_in_identity(struct rmx_in *in, const struct rmx_preamble *p);
/* Hands an accepted TLS connection over: verdict OK, bridge, early bytes first. Returns the
 * consumer's stream, or NULL after rejecting in. */
uv_stream_t *rmx_tls_in_handover(struct rmx_in *in, const uint8_t *early, size_t early_len);
/* Makes d's TLS pipe (d->tp), whose TCP handle d then connects. Returns 0 or PC_ENOMEM. */
int rmx_tls_dial_new(struct rmx_dial *d);
/* d's TCP connection is up: handshake, preamble and verdict follow. Returns 0 or PC_EIO. */
int rmx_tls_dial_connected(struct rmx_dial *d);
/* Closes d's TLS pipe; d's close path runs from its closed callback. */
void rmx_tls_dial_close(struct rmx_dial *d);
/* A raft_malloc'd uv_pipe_t on fd (the consumer's end of a bridge), or NULL (fd closed). */
uv_stream_t *rmx_consumer_stream(struct raft_mux *m, int fd);

/* A refusal worth an operator's attention: one log line per (kind, who) every
 * RMX_REFUSE_LOG_MS at most, with how many were not logged in between. */
#define RMX_REFUSE_LOG_MS 10000
void rmx_refuse_log(struct raft_mux *m, unsigned kind, uint64_t who, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

struct rmx_refusal { /* one remembered refusal for rmx_refuse_log */
    unsigned kind;
    uint64_t who;
    uint64_t last_ms;
    unsigned unlogged;
};
#define RMX_REFUSALS 32

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
    bool (*admit)(void *arg, uint64_t node_id);
    void *admit_arg;
    SSL_CTX *tls; /* our reference; NULL = plain */
    struct raft_mux_stats stats;
    struct rmx_refusal refusals[RMX_REFUSALS];
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
