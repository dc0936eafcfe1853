/* The cluster port: one TCP listener per node shared by every raft group and the peer link. */
#ifndef RAFT_MUX_H
#define RAFT_MUX_H

#include <openssl/ssl.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* DESIGN.md §1/§2: a node runs many raft groups (metadata + shards) and a node-to-node peer
 * link, all on one port. Every connection starts with a preamble written by the dialling
 * side (big-endian):
 *
 *   u32 magic "PCMX" | u8 version (1) | u8 kind (1 raft, 2 peer) | u16 address length
 *   u64 raft group id (0 for peer) | u64 sender node id (non-zero) | address bytes
 *
 * The address is the sender's advertised cluster address; raft wants it for the
 * configuration and for raft_leader().
 *
 * Plain mode (no TLS context): the preamble is the first bytes on the TCP connection and is
 * taken on trust. The accepting side reads exactly the preamble for raft connections (raft
 * must see its own first byte), then hands the TCP stream to the group's raft_uv.
 *
 * TLS mode (cfg.tls set: every connection, both directions): the connection starts with a
 * TLS 1.3 handshake in which both sides present a certificate of the pool CA naming their
 * node id (cluster/cluster_tls.h); the preamble is then the first plaintext, and the
 * accepting side answers one verdict byte (RMX_VERDICT_*, raft_mux_int.h) before anything
 * else, so that a refused dialler fails its connect with the reason instead of seeing a
 * connection that dies. The acceptor refuses a handshake without a valid certificate, a
 * preamble whose sender is not the node its certificate names, and (both modes) a sender
 * the admit filter does not know; the dialler refuses an acceptor whose certificate names
 * another node than the one it meant to reach. Consumers never see TLS: they get the
 * plaintext end of a socketpair (a uv_pipe_t) from a TLS pipe (common/pc_tls_pipe.h)
 * whose other end carries the connection; raft's first byte is the first byte on it.
 *
 * A bad magic, version, kind, address, a group that is unknown or not started, a refused
 * identity, or a handshake and preamble that do not complete within preamble_timeout_ms
 * close the connection with a (rate-limited) log line; raft_uv on the other side simply
 * retries after its connect_retry_delay.
 *
 * Every TCP socket gets TCP_NODELAY (libraft never sets it; Nagle plus delayed ACK cost
 * ~40 ms tails, RAFT-ROCKSDB.md P4), and every outbound connect (with its handshake and
 * verdict) is bounded by connect_timeout_ms.
 *
 * Streams handed out (to raft or to the peer-link handler) are standalone blocks from
 * raft_malloc (a uv_tcp_t in plain mode, a uv_pipe_t in TLS mode), because raft releases
 * the ones it gets with raft_free; peer-link users release theirs the same way, through
 * raft_mux_handle_free.
 *
 * Single-threaded: everything runs on the loop given to raft_mux_create. */

struct raft_mux;

#define RAFT_MUX_ADDR_MAX 128 /* longest advertised address in a preamble */

struct raft_mux_config {
    uint64_t node_id;             /* this node; non-zero; sent in every peer preamble */
    const char *address;          /* advertised "a.b.c.d:port" or "[v6]:port" */
    const char *bind_address;     /* where to listen; NULL = address */
    unsigned connect_timeout_ms;  /* outbound connect + preamble write; 0 = 2000 */
    unsigned preamble_timeout_ms; /* inbound preamble must arrive within; 0 = 2000 */
    unsigned max_pending;         /* inbound connections still in their preamble; 0 = 256 */
    SSL_CTX *tls;                 /* NULL = plain; else mutual TLS with this context (built by
                                     cluster_tls_context; the mux takes its own reference) */
    unsigned raft_stall_ms;       /* outbound raft connections: see below; 0 = 2000 */
};

/* A partition blackholes packets: TCP keeps the connection and retransmits with exponential
 * backoff (0.2, 0.4, 0.8 ... s), so once the partition heals the next retransmission, and
 * with it every raft message queued behind, may still be seconds away (12.6 s after the
 * start of an 8 s partition). Raft would then miss elections it could win. So outbound raft
 * connections whose data stays unacknowledged for raft_stall_ms fail (TCP_USER_TIMEOUT):
 * raft_uv redials at once, and a fresh connection has no backoff to sit out. */

struct raft_mux_stats {
    uint64_t accepted;     /* inbound connections */
    uint64_t routed_raft;  /* handed to a raft group */
    uint64_t routed_peer;  /* handed to the peer-link handler */
    uint64_t rejected;     /* closed: bad/late preamble, unknown/closed group, no handler, and
                              every refusal counted below */
    uint64_t dials;        /* outbound connects started */
    uint64_t dials_ok;
    uint64_t dials_failed; /* refused, timed out or canceled (dials_refused included) */
    /* Refusals, for operators (/metrics pchat_cluster_refused_total{reason}): */
    uint64_t refused_tls;      /* inbound TLS handshake failed: no certificate, one from
                                  another CA, expired, or not TLS at all */
    uint64_t refused_identity; /* inbound: the certificate names no node, or another node
                                  than the preamble's sender */
    uint64_t refused_unknown;  /* inbound: the sender is not a node the admit filter knows */
    uint64_t dials_refused;    /* outbound: the acceptor's certificate failed our checks or
                                  named another node, or the acceptor refused us */
};

/* Binds and listens right away, so that peers' connects are answered (and rejected per group
 * until its raft_start) while the local groups are still initialising. Returns 0 or
 * PC_EINVAL (bad config) / PC_EIO (bind/listen failed, logged; the half-made handles are
 * released by the next uv_run, so uv_loop_close still succeeds after one). */
int raft_mux_create(uv_loop_t *loop, const struct raft_mux_config *cfg, struct raft_mux **out);

/* Closes the listener, every connection still in its preamble and every pending peer
 * connect (their callbacks fire with PC_ECANCELED), then calls cb(arg) (may be NULL) and frees
 * the mux. Every raft transport must have been released with raft_mux_transport_close first
 * (i.e. after each group's raft_close callback): otherwise returns PC_EBUSY and does nothing.
 * Connections already handed over are not touched. */
int raft_mux_close(struct raft_mux *m, void (*cb)(void *arg), void *arg);

const struct raft_mux_stats *raft_mux_stats(const struct raft_mux *m);

/* Makes tcp fail once data written on it stayed unacknowledged for stall_ms
 * (TCP_USER_TIMEOUT), and, with keepalive_s > 0, probe the peer after that many idle
 * seconds. Best effort: an error only loses the earlier detection. */
void raft_mux_tcp_stall_limit(uv_tcp_t *tcp, unsigned stall_ms, unsigned keepalive_s);

/* uv_close_cb that frees a handle received from this module (raft_malloc'd). */
void raft_mux_handle_free(uv_handle_t *handle);

/* Which sender node ids may use the port: admit(arg, id) is asked for every inbound
 * connection once its preamble (and in TLS mode its certificate) is in; false refuses it
 * (counted in refused_unknown, logged). NULL (the default) admits every id. The filter runs
 * on the loop and must not call into the mux. */
void raft_mux_set_admit(struct raft_mux *m, bool (*admit)(void *arg, uint64_t node_id),
                        void *arg);

/* True when the port runs mutual TLS. */
bool raft_mux_tls(const struct raft_mux *m);

/* ---- raft groups ------------------------------------------------------------------------- */

/* Fills `t` as the raft_uv transport of raft group `group_id` (t->version = 1, state in
 * t->impl; raft owns t->data). Pass it to raft_uv_init. Returns 0, PC_EEXIST (group already
 * has a transport on this mux) or PC_ECLOSED (mux closing). */
int raft_mux_transport_init(struct raft_uv_transport *t, struct raft_mux *m, uint64_t group_id);

/* Releases the transport. Call after the group's raft_close callback (raft has then closed
 * the transport), or if raft_init never ran. Safe to call twice. */
void raft_mux_transport_close(struct raft_uv_transport *t);

/* ---- peer link --------------------------------------------------------------------------- */

struct raft_mux_peer_accept {
    uint64_t node_id;    /* sender's node id from its preamble (TLS: and its certificate) */
    const char *address; /* sender's advertised address; valid during the callback */
    uv_stream_t *stream; /* connected, not reading, data = NULL; now yours: uv_close it with
                            raft_mux_handle_free (or raft_free it in your own close
                            callback) */
    const void *data;    /* bytes that arrived after the preamble (plain mode; in TLS mode
                            they are the stream's first bytes); valid during the callback */
    size_t len;
};

typedef void (*raft_mux_peer_accept_cb)(void *arg, const struct raft_mux_peer_accept *acc);

/* Registers the handler for inbound peer-link connections (NULL unregisters; connections are
 * then closed and logged). */
void raft_mux_set_peer_handler(struct raft_mux *m, raft_mux_peer_accept_cb cb, void *arg);

struct raft_mux_peer_connect;

/* status 0: stream is connected, the preamble is written (TLS: and accepted), data = NULL,
 * and it is yours (close it with raft_mux_handle_free). Otherwise stream is NULL and status
 * is PC_EUNAVAIL (refused/unreachable/reset), PC_EDENIED (TLS: an identity refused either
 * way, logged), PC_ETIMEDOUT or PC_ECANCELED. */
typedef void (*raft_mux_peer_connect_cb)(struct raft_mux_peer_connect *req, uv_stream_t *stream,
                                         int status);

struct raft_mux_peer_connect {
    void *data;                  /* yours */
    raft_mux_peer_connect_cb cb; /* set by raft_mux_peer_connect */
    void *priv_;                 /* the module's; NULL once cb has fired */
};

/* Dials node node_id's cluster port at address and writes a PEER preamble carrying this
 * node's id and address (TLS: the acceptor's certificate must name node_id). The socket gets
 * TCP keepalive and a TCP_USER_TIMEOUT, so that a peer that vanished without a FIN is noticed
 * in seconds. Returns 0 and then cb fires exactly once, always from the loop (never inside
 * this call; a connect the kernel refuses at once also fails through cb); req must live
 * until then. Returns PC_EINVAL (unparsable address), PC_ECLOSED or PC_ENOMEM without ever
 * firing cb. */
int raft_mux_peer_connect(struct raft_mux *m, struct raft_mux_peer_connect *req,
                          uint64_t node_id, const char *address, raft_mux_peer_connect_cb cb);

/* Cancels a pending connect: its cb fires later with PC_ECANCELED (unless it already
 * fired). */
void raft_mux_peer_connect_cancel(struct raft_mux_peer_connect *req);

#endif
