/* The node-to-node peer link: ordered, framed messages between pool nodes over raft_mux PEER
 * connections (forwarded commands, their replies, fan-out deliveries; DESIGN.md §1, §4). */
#ifndef PEER_H
#define PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct raft_mux;
struct pc_rbuf;

/* Model. Every node keeps ONE outbound connection per other node for what it sends: dialled
 * at start, redialled with backoff when it drops. Inbound connections only receive. So the
 * messages from one sender to one destination arrive in peer_send order, with no
 * duplicates; a link going down may lose what was queued or in flight at that moment (the
 * `link` handler says so), never reorder it.
 *
 * Frame on the wire: u32 big-endian length of (type + payload) | u8 type | payload; type 0
 * is the link's keepalive (no payload), the others are the caller's. Writes
 * are batched per loop pass (one uv_write of many buffers per destination, from a
 * uv_prepare), so a burst of sends costs a few syscalls, not one per message.
 *
 * Messages sent while the link is not up (start-up, reconnecting) are queued, up to
 * max_queue_bytes, and written in order once it is up. A caller that would rather fail fast
 * than wait for a dead peer checks peer_up() first.
 *
 * Inbound connections are accepted only from node ids in the configured peer list. A new
 * inbound connection from a node replaces (closes) the older one: the sender has only one
 * outbound connection, so the old one is dead (typically half-open after a restart).
 *
 * Single-threaded: everything runs on the loop given to peer_link_start. Handlers are only
 * ever called from the loop, never inside a peer_* call, and never after peer_link_close. */

struct peer_link;

struct peer_addr {
    uint64_t id;
    const char *address; /* "127.0.0.1:7600" */
};

struct peer_link_config {
    uint64_t self_id;
    const struct peer_addr *peers; /* copied; may include self: ignored */
    size_t n_peers;
    size_t max_queue_bytes; /* per destination, frames queued or in flight; 0 = 8 MiB */
    unsigned reconnect_ms;  /* backoff start; 0 = 100 ms, doubling to 2 s (back to the start
                               once a link stayed up 1 s) */
    size_t max_frame_bytes; /* type + payload; 0 = 4 MiB; a bigger (or empty) inbound frame
                               is a protocol error: the connection is closed and logged */
    unsigned silence_down_ms; /* a peer heard from since our link to it came up, and silent
                                 this long since, is taken as cut off: the link goes down
                                 (and is redialled) at once instead of after TCP's 10 s.
                                 0 = never (TCP alone decides) */
};

struct peer_handlers {
    void *ctx;
    /* One whole message from node `from`, in the order that node sent it. payload is valid
     * during the call. May call any peer_* function, including peer_link_close. */
    void (*message)(void *ctx, uint64_t from, uint8_t type, const void *payload, size_t len);
    /* Our outbound link to `node` went up or down (down: everything queued to it was
     * dropped). May be NULL. */
    void (*link)(void *ctx, uint64_t node, bool up);
};

/* Registers as the mux's peer handler and dials every peer. Returns 0, or PC_EINVAL (no
 * self id, a peer without id/address, duplicate ids, no message handler). */
int peer_link_start(uv_loop_t *loop, struct raft_mux *mux, const struct peer_link_config *cfg,
                    const struct peer_handlers *h, struct peer_link **out);

/* At most this many other nodes. */
#define PL_MAX_NODES 64

/* Adds a node that joined the pool and dials it. Returns 0; PC_EEXIST (known already);
 * PC_EINVAL (self, id 0, no address, closing); PC_ETOOBIG (PL_MAX_NODES reached). A node
 * that leaves the pool stays a peer until the restart (the link just stays down). */
int peer_link_add(struct peer_link *pl, uint64_t id, const char *address);

/* Queues one message for node (payload copied). Returns 0; PC_EINVAL (type 0: the link's
 * own keepalive); PC_EUNAVAIL (unknown node, self, or the link is closing); PC_EBUSY (the queue would pass max_queue_bytes: the caller
 * answers 503); PC_ETOOBIG (1 + len over max_frame_bytes: the peer would refuse it). Never
 * calls a handler inline. */
int peer_send(struct peer_link *pl, uint64_t node, uint8_t type, const void *payload, size_t len);

/* Same with a shared refcounted body (fan-out: serialised once, sent to many nodes). Takes
 * its own reference on success; the caller keeps (and drops) its own. */
int peer_send_shared(struct peer_link *pl, uint64_t node, uint8_t type, struct pc_rbuf *body);

/* True while the outbound connection to node is established. That connection may look up
 * for seconds after the peer was cut off (TCP gives up on unacknowledged data only after
 * 10 s): peer_silence_ms says whether the peer still speaks. */
bool peer_up(const struct peer_link *pl, uint64_t node);

/* Milliseconds since bytes last arrived from node (UINT64_MAX: never, or unknown node).
 * Every live peer sends at least every 250 ms (keepalive frames of type 0 on idle links,
 * which the link consumes), so more than about a second means it is cut off or stopped. */
uint64_t peer_silence_ms(const struct peer_link *pl, uint64_t node);

struct peer_stats {
    uint64_t sent;         /* messages written to the socket */
    uint64_t received;     /* messages delivered to the handler */
    uint64_t bytes_out;    /* frame bytes written (headers included) */
    uint64_t bytes_in;     /* frame bytes delivered (headers included) */
    uint64_t dropped_busy; /* peer_send refusals with PC_EBUSY */
    uint64_t reconnects;   /* link ups after the first */
    uint64_t dropped_down; /* messages queued or in flight when the link went down */
    uint64_t bad_frames;   /* inbound connections from node closed for a protocol error */
    uint64_t silence_downs; /* links taken down as the peer fell silent (silence_down_ms) */
    size_t queued_bytes;   /* frame bytes queued or in flight now */
};

/* Zeroes *out for an unknown node. */
void peer_link_stats(const struct peer_link *pl, uint64_t node, struct peer_stats *out);

/* Stops reconnecting, closes every connection (dropping what is queued), unregisters from
 * the mux, then calls cb(arg) (may be NULL) from the loop and frees pl. Call before
 * raft_mux_close. No handler fires once this is called. */
void peer_link_close(struct peer_link *pl, void (*cb)(void *arg), void *arg);

#endif
