/* The node-to-node peer link on raft_mux PEER connections: per-destination send queues with a
 * byte bound, one outbound connection per peer (redialled with backoff), batched writes per
 * loop pass, and resumable framing of inbound connections. See peer.h. */
#include "cluster/peer.h"

#include <string.h>

#include "cluster/raft_mux.h"
#include "common/pc_alloc.h"
#include "common/pc_bin.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_log.h"

#define PL_DEFAULT_QUEUE ((size_t)8 << 20)
#define PL_DEFAULT_FRAME ((size_t)4 << 20)
#define PL_DEFAULT_RECONNECT_MS 100u
#define PL_MAX_BACKOFF_MS 2000u
/* A link must stay up this long before a drop redials at once again: a peer that accepts and
 * then closes at once (a TLS pool refusing a plain node) is retried with a growing backoff,
 * not ten times a second. */
#define PL_STABLE_MS 1000u
#define PL_HDR 5                   /* u32 length + u8 type */
#define PL_CHUNK_SMALL 4096        /* first copy chunk of an empty queue: one reply is small */
#define PL_CHUNK ((size_t)64 << 10) /* later copy chunks: a burst fills few of them */
#define PL_MAX_IOV 1024            /* buffers per uv_write (IOV_MAX on Linux) */
#define PL_READ_MIN ((size_t)64 << 10)
#define PL_READ_KEEP ((size_t)1 << 20) /* a bigger idle read buffer is given back */
#define PL_READ_MAX ((size_t)1 << 30)  /* uv_buf_t lengths are unsigned */
#define PL_PING_MS 250  /* an idle up link carries a keepalive frame this often */
#define PL_TYPE_PING 0  /* the link's own frame type: never delivered to the handler */

/* Queued bytes for one destination. A copy chunk holds many whole frames back to back, so a
 * burst of small messages becomes a few large buffers; a shared chunk holds one frame header
 * and a reference to a body that other destinations share. */
struct pl_chunk {
    struct pl_chunk *next;
    struct pc_rbuf *body; /* shared chunk; NULL for a copy chunk */
    size_t len;           /* frame bytes in this chunk (shared: header + body) */
    size_t cap;           /* copy chunk: room in data */
    uint32_t msgs;        /* messages in this chunk */
    uint32_t pings;       /* keepalive frames in this chunk (not messages) */
    uint8_t hdr[PL_HDR];  /* shared chunk's frame header */
    char data[];
};

/* One uv_write in flight. node is NULL once the link it was written on went down: the
 * chunks are then only freed when libuv gives the request back. */
struct pl_write {
    uv_write_t req;
    struct pl_node *node;
    struct pl_chunk *chunks;
    size_t bytes;
    uint32_t msgs, pings;
};

enum pl_state {
    PL_WAITING, /* backoff timer running before the next dial */
    PL_DIALING, /* raft_mux_peer_connect pending */
    PL_UP,      /* outbound connection established */
    PL_CLOSED,  /* peer_link_close called */
};

struct pl_in;

/* Everything about one other node: our outbound link to it and its inbound link to us. */
struct pl_node {
    struct peer_link *pl;
    uint64_t id;
    char *address;
    enum pl_state state;
    bool ever_up;
    uint64_t up_ms;  /* uv_now when the outbound link last came up */
    bool dialing; /* req is pending (counted in pl->pending) */
    struct raft_mux_peer_connect req;
    uv_timer_t timer;
    unsigned backoff_ms;
    uv_stream_t *stream;           /* outbound, while up (TCP, or a TLS bridge's pipe) */
    struct pl_chunk *head, *tail;  /* not yet handed to uv_write */
    uint64_t queued_msgs;          /* frames in head..tail */
    size_t queued;                 /* frame bytes in head..tail + in `writing` */
    struct pl_write *writing;      /* at most one write in flight: keeps order trivial */
    struct pl_in *in;              /* its current inbound connection */
    uint64_t heard_ms;             /* uv_now when bytes last came from it; 0 = never */
    struct peer_stats st;
};

/* An inbound connection: reads frames, never writes. */
struct pl_in {
    struct peer_link *pl;
    struct pl_node *node;
    uv_stream_t *stream; /* TCP, or a TLS bridge's pipe */
    uint8_t *buf; /* unparsed bytes start at buf[0] */
    size_t len, cap;
    size_t need; /* bytes the partial frame at buf[0] needs in all, once its length is known */
    bool closing;
    struct pl_in *prev, *next;
};

struct peer_link {
    uv_loop_t *loop;
    struct raft_mux *mux;
    uint64_t self_id;
    struct peer_handlers h;
    size_t max_queue;
    size_t max_frame;
    unsigned reconnect_ms;
    unsigned silence_down_ms;
    uint64_t last_ping_ms; /* uv_now of the last keepalive tick */
    struct pl_node *nodes;
    size_t n_nodes;
    struct pl_in *ins;
    uv_prepare_t flush; /* writes batched once per loop pass */
    uv_timer_t ping;    /* keepalives on idle links (peer_silence_ms) */
    bool flush_armed;
    uv_buf_t *iov; /* scratch for uv_write (libuv copies the array) */
    size_t iov_cap;
    char discard[256]; /* outbound connections receive nothing; junk is read here */
    bool closing;
    unsigned pending; /* dials and handle closes outstanding: pl lives until 0 */
    void (*close_cb)(void *arg);
    void *close_arg;
};

static struct pl_node *findNode(const struct peer_link *pl, uint64_t id)
{
    /* A pool has 3 to 7 nodes: a scan beats any index. */
    for (size_t i = 0; i < pl->n_nodes; i++)
        if (pl->nodes[i].id == id)
            return &pl->nodes[i];
    return NULL;
}

static void putHeader(uint8_t *p, size_t payload_len, uint8_t type)
{
    pc_be32_write(p, (uint32_t)(payload_len + 1));
    p[4] = type;
}

static void freeChunks(struct pl_chunk *c)
{
    while (c != NULL) {
        struct pl_chunk *next = c->next;
        pc_rbuf_unref(c->body);
        pc_free(c);
        c = next;
    }
}

static void maybeFinish(struct peer_link *pl)
{
    if (!pl->closing || pl->pending > 0)
        return;
    void (*cb)(void *) = pl->close_cb;
    void *arg = pl->close_arg;
    for (size_t i = 0; i < pl->n_nodes; i++)
        pc_free(pl->nodes[i].address);
    pc_free(pl->nodes);
    pc_free(pl->iov);
    pc_free(pl);
    if (cb != NULL)
        cb(arg);
}

static void flushCb(uv_prepare_t *p);

static void armFlush(struct peer_link *pl)
{
    if (pl->flush_armed || pl->closing)
        return;
    pl->flush_armed = true;
    uv_prepare_start(&pl->flush, flushCb);
}

/* ---- outbound ---------------------------------------------------------------------------- */

static void dial(struct pl_node *n);

static void timerCb(uv_timer_t *t)
{
    struct pl_node *n = t->data;
    if (n->state == PL_WAITING && !n->pl->closing)
        dial(n);
}

static void retryLater(struct pl_node *n)
{
    n->state = PL_WAITING;
    uv_timer_start(&n->timer, timerCb, n->backoff_ms, 0);
    n->backoff_ms = n->backoff_ms * 2 > PL_MAX_BACKOFF_MS ? PL_MAX_BACKOFF_MS : n->backoff_ms * 2;
}

static void outClosed(uv_handle_t *h)
{
    struct pl_node *n = h->data;
    struct peer_link *pl = n->pl;
    raft_mux_handle_free(h);
    pl->pending--;
    maybeFinish(pl);
}

static void closeOutStream(struct pl_node *n, uv_stream_t *stream)
{
    stream->data = n;
    n->pl->pending++;
    uv_close((uv_handle_t *)stream, outClosed);
}

/* Forgets the queue and detaches the write in flight; returns the frames dropped. */
static uint64_t dropQueue(struct pl_node *n)
{
    uint64_t dropped = n->queued_msgs;
    if (n->writing != NULL) {
        dropped += n->writing->msgs;
        n->writing->node = NULL;
        n->writing = NULL;
    }
    freeChunks(n->head);
    n->head = n->tail = NULL;
    n->queued_msgs = 0;
    n->queued = 0;
    return dropped;
}

/* The outbound connection failed: drop what was queued (it may be partly delivered; resending
 * could duplicate), tell the owner, redial after the backoff. */
static void outDown(struct pl_node *n, const char *why)
{
    struct peer_link *pl = n->pl;
    if (n->state != PL_UP)
        return;
    uint64_t dropped = dropQueue(n);
    n->st.dropped_down += dropped;
    pc_notice("peer link to node %llu (%s) down: %s; %llu queued messages dropped",
              (unsigned long long)n->id, n->address, why, (unsigned long long)dropped);
    closeOutStream(n, n->stream);
    n->stream = NULL;
    if (uv_now(pl->loop) - n->up_ms >= PL_STABLE_MS)
        n->backoff_ms = pl->reconnect_ms;
    retryLater(n);
    if (pl->h.link != NULL)
        pl->h.link(pl->h.ctx, n->id, false);
}

static void outAlloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct pl_node *n = h->data;
    (void)suggested;
    *buf = uv_buf_init(n->pl->discard, sizeof n->pl->discard);
}

/* We only read outbound connections to learn that they closed: the peer never writes on
 * them, so any byte means the other side is confused and the stream cannot be trusted. */
static void outRead(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pl_node *n = s->data;
    (void)buf;
    if (nread > 0)
        outDown(n, "peer wrote on our outbound connection");
    else if (nread < 0)
        outDown(n, nread == UV_EOF ? "closed by peer" : uv_strerror((int)nread));
}

static void connectCb(struct raft_mux_peer_connect *req, uv_stream_t *stream, int status)
{
    struct pl_node *n = req->data;
    struct peer_link *pl = n->pl;
    n->dialing = false;
    pl->pending--;
    if (pl->closing) {
        if (stream != NULL)
            closeOutStream(n, stream);
        maybeFinish(pl);
        return;
    }
    if (status != 0) {
        /* Debug only: a peer that is down is refused on every retry. */
        pc_debug("peer link: connect to node %llu (%s) failed: %s", (unsigned long long)n->id,
                 n->address, pc_strerror(status));
        retryLater(n);
        return;
    }
    /* The mux set keepalive and TCP_USER_TIMEOUT on the socket (the real one in TLS mode):
     * a peer that vanished without a FIN fails the link in seconds, not minutes. */
    stream->data = n;
    int rv = uv_read_start(stream, outAlloc, outRead);
    if (rv != 0) {
        pc_warn("peer link to node %llu: cannot read: %s", (unsigned long long)n->id,
                uv_strerror(rv));
        closeOutStream(n, stream);
        retryLater(n);
        return;
    }
    n->stream = stream;
    n->state = PL_UP;
    n->up_ms = uv_now(pl->loop);
    if (n->ever_up)
        n->st.reconnects++;
    n->ever_up = true;
    pc_info("peer link to node %llu (%s) up, %llu messages queued", (unsigned long long)n->id,
            n->address, (unsigned long long)n->queued_msgs);
    if (n->head != NULL)
        armFlush(pl);
    if (pl->h.link != NULL)
        pl->h.link(pl->h.ctx, n->id, true);
}

static void dial(struct pl_node *n)
{
    struct peer_link *pl = n->pl;
    n->state = PL_DIALING;
    n->req.data = n;
    int rv = raft_mux_peer_connect(pl->mux, &n->req, n->id, n->address, connectCb);
    if (rv != 0) {
        pc_debug("peer link: cannot dial node %llu (%s): %s", (unsigned long long)n->id,
                 n->address, pc_strerror(rv));
        retryLater(n);
        return;
    }
    n->dialing = true;
    pl->pending++;
}

static void writeCb(uv_write_t *req, int status)
{
    struct pl_write *w = req->data;
    struct pl_node *n = w->node;
    if (n != NULL) {
        n->writing = NULL;
        n->queued -= w->bytes;
        if (status == 0) {
            n->st.sent += w->msgs;
            n->st.bytes_out += w->bytes - (size_t)w->pings * PL_HDR;
            if (n->head != NULL)
                armFlush(n->pl);
        } else {
            n->st.dropped_down += w->msgs;
            outDown(n, uv_strerror(status));
        }
    }
    freeChunks(w->chunks);
    pc_free(w);
}

/* Hands everything queued for n (up to PL_MAX_IOV buffers) to one uv_write. */
static void writeBatch(struct pl_node *n)
{
    struct peer_link *pl = n->pl;
    struct pl_write *w = pc_calloc(1, sizeof *w);
    struct pl_chunk *c = n->head, *last = NULL;
    size_t niov = 0;
    if (pl->iov == NULL) {
        pl->iov_cap = PL_MAX_IOV;
        pl->iov = pc_malloc(pl->iov_cap * sizeof *pl->iov);
    }
    while (c != NULL && niov + 2 <= pl->iov_cap) {
        if (c->body != NULL) {
            pl->iov[niov++] = uv_buf_init((char *)c->hdr, PL_HDR);
            if (c->body->len > 0)
                pl->iov[niov++] = uv_buf_init(c->body->data, (unsigned)c->body->len);
        } else {
            pl->iov[niov++] = uv_buf_init(c->data, (unsigned)c->len);
        }
        w->bytes += c->len;
        w->msgs += c->msgs;
        w->pings += c->pings;
        last = c;
        c = c->next;
    }
    w->chunks = n->head;
    last->next = NULL;
    n->head = c;
    if (c == NULL)
        n->tail = NULL;
    n->queued_msgs -= w->msgs;
    w->node = n;
    w->req.data = w;
    n->writing = w;
    int rv = uv_write(&w->req, n->stream, pl->iov, (unsigned)niov, writeCb);
    if (rv != 0) {
        /* The callback will not fire: account as writeCb would, then free. */
        n->writing = NULL;
        n->queued -= w->bytes;
        n->st.dropped_down += w->msgs;
        freeChunks(w->chunks);
        pc_free(w);
        outDown(n, uv_strerror(rv));
    }
}

/* Runs once per loop pass, right before the loop polls, while anything waits to be written:
 * every send since the last pass leaves in one write per destination. */
static void flushCb(uv_prepare_t *p)
{
    struct peer_link *pl = p->data;
    pl->flush_armed = false;
    uv_prepare_stop(p);
    for (size_t i = 0; i < pl->n_nodes && !pl->closing; i++) {
        struct pl_node *n = &pl->nodes[i];
        if (n->state == PL_UP && n->writing == NULL && n->head != NULL)
            writeBatch(n);
    }
}

/* Checks the bounds shared by both send forms; on success a frame of PL_HDR + len fits. */
static int admit(struct peer_link *pl, uint64_t node, size_t len, struct pl_node **out)
{
    struct pl_node *n = pl->closing ? NULL : findNode(pl, node);
    if (n == NULL)
        return PC_EUNAVAIL;
    if (len >= pl->max_frame)
        return PC_ETOOBIG;
    if (n->queued + PL_HDR + len > pl->max_queue) {
        n->st.dropped_busy++;
        return PC_EBUSY;
    }
    *out = n;
    return 0;
}

static void enqueue(struct pl_node *n, struct pl_chunk *c)
{
    if (n->tail != NULL)
        n->tail->next = c;
    else
        n->head = c;
    n->tail = c;
}

static void queued(struct pl_node *n, size_t frame)
{
    n->queued += frame;
    if (n->state == PL_UP && n->writing == NULL)
        armFlush(n->pl);
}

/* Appends one frame to n's queue, in the last copy chunk when it fits. The counters are
 * about messages: a keepalive (type PL_TYPE_PING) is not one. */
static void appendFrame(struct pl_node *n, uint8_t type, const void *payload, size_t len)
{
    uint32_t msgs = type == PL_TYPE_PING ? 0 : 1;
    size_t frame = PL_HDR + len;
    struct pl_chunk *c = n->tail;
    if (c == NULL || c->body != NULL || c->cap - c->len < frame) {
        size_t cap = n->head == NULL ? PL_CHUNK_SMALL : PL_CHUNK;
        if (cap < frame)
            cap = frame;
        c = pc_malloc(sizeof *c + cap);
        c->next = NULL;
        c->body = NULL;
        c->len = 0;
        c->cap = cap;
        c->msgs = 0;
        c->pings = 0;
        enqueue(n, c);
    }
    putHeader((uint8_t *)c->data + c->len, len, type);
    if (len > 0)
        memcpy(c->data + c->len + PL_HDR, payload, len);
    c->len += frame;
    c->msgs += msgs;
    c->pings += 1 - msgs;
    n->queued_msgs += msgs;
    queued(n, frame);
}

int peer_send(struct peer_link *pl, uint64_t node, uint8_t type, const void *payload, size_t len)
{
    struct pl_node *n;
    if (type == PL_TYPE_PING)
        return PC_EINVAL;
    int rv = admit(pl, node, len, &n);
    if (rv != 0)
        return rv;
    appendFrame(n, type, payload, len);
    return 0;
}

int peer_send_shared(struct peer_link *pl, uint64_t node, uint8_t type, struct pc_rbuf *body)
{
    struct pl_node *n;
    if (type == PL_TYPE_PING)
        return PC_EINVAL;
    int rv = admit(pl, node, body->len, &n);
    if (rv != 0)
        return rv;
    struct pl_chunk *c = pc_malloc(sizeof *c);
    c->next = NULL;
    c->body = pc_rbuf_ref(body);
    c->len = PL_HDR + body->len;
    c->cap = 0;
    c->msgs = 1;
    c->pings = 0;
    putHeader(c->hdr, body->len, type);
    enqueue(n, c);
    n->queued_msgs++;
    queued(n, c->len);
    return 0;
}

/* The peer spoke while this link was up and has been quiet for silence_down_ms since: both
 * directions are most likely cut (a partition, a stopped process), and what we write sits
 * in the kernel until TCP gives up. A peer never heard during this link's life (its own
 * link to us not up yet, after a heal) is left to TCP: tearing our link down would not
 * help it. */
static bool silentSinceUp(const struct pl_node *n)
{
    const struct peer_link *pl = n->pl;
    return pl->silence_down_ms != 0 && n->heard_ms > n->up_ms &&
           uv_now(pl->loop) - n->heard_ms >= pl->silence_down_ms;
}

/* A connection that looks up may carry nothing (the peer is cut off or stopped: TCP only
 * gives up after the cluster port's user timeout, raft_mux_dial.c). The receiving side can tell, if every live peer
 * speaks often: an idle up link sends a keepalive every PL_PING_MS, and peer_silence_ms
 * says how long a peer has been quiet. A link with something queued or being written
 * sends no keepalive: its own bytes prove it alive when they arrive. */
static void pingCb(uv_timer_t *t)
{
    struct peer_link *pl = t->data;
    /* Timers run before the loop reads its sockets: right after this node was itself
     * stopped or stalled, every peer looks silent though its bytes are waiting to be read.
     * Judge silence only on a tick that came on time. */
    uint64_t now = uv_now(pl->loop);
    bool on_time = now - pl->last_ping_ms <= 2 * PL_PING_MS;
    pl->last_ping_ms = now;
    for (size_t i = 0; i < pl->n_nodes && !pl->closing; i++) {
        struct pl_node *n = &pl->nodes[i];
        if (n->state == PL_UP && on_time && silentSinceUp(n)) {
            char why[96];
            snprintf(why, sizeof why, "nothing heard from the peer for %llu ms",
                     (unsigned long long)(uv_now(pl->loop) - n->heard_ms));
            outDown(n, why);
            n->st.silence_downs++;
        } else if (n->state == PL_UP && n->head == NULL && n->writing == NULL) {
            appendFrame(n, PL_TYPE_PING, NULL, 0);
        }
    }
}

/* ---- inbound ----------------------------------------------------------------------------- */

static void inClosed(uv_handle_t *h)
{
    struct pl_in *in = h->data;
    struct peer_link *pl = in->pl;
    if (in->prev != NULL)
        in->prev->next = in->next;
    else
        pl->ins = in->next;
    if (in->next != NULL)
        in->next->prev = in->prev;
    raft_mux_handle_free(h);
    pc_free(in->buf);
    pc_free(in);
    pl->pending--;
    maybeFinish(pl);
}

static void inClose(struct pl_in *in)
{
    if (in->closing)
        return;
    in->closing = true;
    if (in->node->in == in)
        in->node->in = NULL;
    in->pl->pending++;
    uv_close((uv_handle_t *)in->stream, inClosed);
}

/* Delivers every whole frame in the buffer and keeps the partial one at its start, so framing
 * resumes across any TCP fragmentation. Stops as soon as a handler closes the link. */
static void inParse(struct pl_in *in)
{
    struct peer_link *pl = in->pl;
    struct pl_node *n = in->node;
    size_t off = 0;
    in->need = 0;
    while (!in->closing && !pl->closing && in->len - off >= 4) {
        uint32_t flen = pc_be32_read(in->buf + off);
        if (flen == 0 || flen > pl->max_frame) {
            n->st.bad_frames++;
            pc_warn("peer link: closing connection from node %llu: frame of %lu bytes (limit "
                    "%zu)",
                    (unsigned long long)n->id, (unsigned long)flen, pl->max_frame);
            inClose(in);
            return;
        }
        if (in->len - off - 4 < flen) {
            in->need = 4 + (size_t)flen;
            break;
        }
        const uint8_t *f = in->buf + off + 4;
        off += 4 + (size_t)flen;
        if (f[0] == PL_TYPE_PING)
            continue; /* heard_ms is all it is for */
        n->st.received++;
        n->st.bytes_in += 4 + (size_t)flen;
        pl->h.message(pl->h.ctx, n->id, f[0], f + 1, flen - 1);
    }
    if (in->closing || pl->closing)
        return;
    if (off > 0) {
        memmove(in->buf, in->buf + off, in->len - off);
        in->len -= off;
    }
    if (in->len == 0 && in->cap > PL_READ_KEEP) {
        /* After a big frame: do not hold megabytes per idle connection. */
        pc_free(in->buf);
        in->buf = NULL;
        in->cap = 0;
    }
}

static void inReserve(struct pl_in *in, size_t want)
{
    if (in->cap >= want)
        return;
    size_t cap = in->cap * 2 > want ? in->cap * 2 : want;
    in->buf = pc_realloc(in->buf, cap);
    in->cap = cap;
}

static void inAlloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct pl_in *in = h->data;
    (void)suggested;
    /* Room for a whole pending frame at once (a 1 MiB frame is read in big reads, not 64K
     * ones) and at least PL_READ_MIN more. */
    size_t want = in->len + PL_READ_MIN;
    if (in->need > want)
        want = in->need;
    inReserve(in, want);
    size_t room = in->cap - in->len;
    if (room > PL_READ_MAX)
        room = PL_READ_MAX;
    *buf = uv_buf_init((char *)in->buf + in->len, (unsigned)room);
}

static void inRead(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pl_in *in = s->data;
    (void)buf;
    if (nread < 0) {
        pc_info("peer link: connection from node %llu closed: %s",
                (unsigned long long)in->node->id,
                nread == UV_EOF ? "end of stream" : uv_strerror((int)nread));
        inClose(in);
        return;
    }
    in->len += (size_t)nread;
    in->node->heard_ms = uv_now(in->pl->loop);
    inParse(in);
}

static void acceptCb(void *arg, const struct raft_mux_peer_accept *acc)
{
    struct peer_link *pl = arg;
    struct pl_node *n = pl->closing ? NULL : findNode(pl, acc->node_id);
    if (n == NULL) {
        /* DESIGN.md §3.7: node-to-node traffic only from pool members. */
        pc_warn("peer link: refusing connection from node %llu (%s): not a peer",
                (unsigned long long)acc->node_id, acc->address);
        uv_close((uv_handle_t *)acc->stream, raft_mux_handle_free);
        return;
    }
    struct pl_in *in = pc_calloc(1, sizeof *in);
    in->pl = pl;
    in->node = n;
    in->stream = acc->stream;
    in->stream->data = in;
    in->next = pl->ins;
    if (pl->ins != NULL)
        pl->ins->prev = in;
    pl->ins = in;
    if (n->in != NULL) {
        /* The sender keeps one outbound connection, so an older one is dead (half-open
         * after its restart). Reading both could deliver old bytes after new ones. */
        pc_info("peer link: node %llu reconnected; closing its previous connection",
                (unsigned long long)n->id);
        inClose(n->in);
    }
    n->in = in;
    n->heard_ms = uv_now(pl->loop);
    pc_info("peer link: connection from node %llu (%s)", (unsigned long long)n->id,
            acc->address);
    if (acc->len > 0) {
        inReserve(in, acc->len + PL_READ_MIN);
        memcpy(in->buf, acc->data, acc->len);
        in->len = acc->len;
        inParse(in);
    }
    if (in->closing)
        return;
    int rv = uv_read_start(in->stream, inAlloc, inRead);
    if (rv != 0) {
        pc_warn("peer link: cannot read from node %llu: %s", (unsigned long long)n->id,
                uv_strerror(rv));
        inClose(in);
    }
}

/* ---- life cycle -------------------------------------------------------------------------- */

static struct pl_node *addNode(struct peer_link *pl, uint64_t id, const char *address)
{
    struct pl_node *n = &pl->nodes[pl->n_nodes++];
    n->pl = pl;
    n->id = id;
    n->address = pc_strdup(address);
    n->backoff_ms = pl->reconnect_ms;
    uv_timer_init(pl->loop, &n->timer);
    n->timer.data = n;
    return n;
}

static int checkConfig(const struct peer_link_config *cfg, size_t *n_out)
{
    size_t count = 0;
    if (cfg->self_id == 0 || (cfg->n_peers > 0 && cfg->peers == NULL))
        return PC_EINVAL;
    for (size_t i = 0; i < cfg->n_peers; i++) {
        const struct peer_addr *p = &cfg->peers[i];
        if (p->id == 0)
            return PC_EINVAL;
        if (p->id == cfg->self_id)
            continue;
        if (p->address == NULL || p->address[0] == '\0')
            return PC_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (cfg->peers[j].id == p->id)
                return PC_EINVAL;
        count++;
    }
    *n_out = count;
    return 0;
}

int peer_link_start(uv_loop_t *loop, struct raft_mux *mux, const struct peer_link_config *cfg,
                    const struct peer_handlers *h, struct peer_link **out)
{
    size_t count;
    if (loop == NULL || mux == NULL || cfg == NULL || h == NULL || h->message == NULL ||
        out == NULL)
        return PC_EINVAL;
    int rv = checkConfig(cfg, &count);
    if (rv == 0 && count > PL_MAX_NODES)
        rv = PC_EINVAL;
    if (rv != 0) {
        pc_error("peer link: invalid configuration (node ids must be non-zero and unique, "
                 "every peer needs an address)");
        return rv;
    }
    struct peer_link *pl = pc_calloc(1, sizeof *pl);
    pl->loop = loop;
    pl->mux = mux;
    pl->self_id = cfg->self_id;
    pl->h = *h;
    pl->max_queue = cfg->max_queue_bytes ? cfg->max_queue_bytes : PL_DEFAULT_QUEUE;
    pl->max_frame = cfg->max_frame_bytes ? cfg->max_frame_bytes : PL_DEFAULT_FRAME;
    if (pl->max_frame > UINT32_MAX)
        pl->max_frame = UINT32_MAX; /* the length field is 32 bits */
    pl->reconnect_ms = cfg->reconnect_ms ? cfg->reconnect_ms : PL_DEFAULT_RECONNECT_MS;
    pl->silence_down_ms = cfg->silence_down_ms;
    /* Fixed capacity: handles point into this array, so it never moves (peer_link_add). */
    pl->nodes = pc_calloc(PL_MAX_NODES, sizeof *pl->nodes);
    uv_prepare_init(loop, &pl->flush);
    pl->flush.data = pl;
    uv_timer_init(loop, &pl->ping);
    pl->ping.data = pl;
    pl->last_ping_ms = uv_now(loop);
    uv_timer_start(&pl->ping, pingCb, PL_PING_MS, PL_PING_MS);
    for (size_t i = 0; i < cfg->n_peers; i++)
        if (cfg->peers[i].id != cfg->self_id)
            addNode(pl, cfg->peers[i].id, cfg->peers[i].address);
    raft_mux_set_peer_handler(mux, acceptCb, pl);
    for (size_t i = 0; i < pl->n_nodes; i++)
        dial(&pl->nodes[i]);
    *out = pl;
    return 0;
}

int peer_link_add(struct peer_link *pl, uint64_t id, const char *address)
{
    if (pl->closing || id == 0 || id == pl->self_id || address == NULL || address[0] == '\0')
        return PC_EINVAL;
    if (findNode(pl, id) != NULL)
        return PC_EEXIST;
    if (pl->n_nodes >= PL_MAX_NODES)
        return PC_ETOOBIG;
    dial(addNode(pl, id, address));
    pc_notice("peer link: node %llu at %s added", (unsigned long long)id, address);
    return 0;
}

bool peer_up(const struct peer_link *pl, uint64_t node)
{
    const struct pl_node *n = findNode(pl, node);
    return n != NULL && n->state == PL_UP;
}

uint64_t peer_silence_ms(const struct peer_link *pl, uint64_t node)
{
    const struct pl_node *n = findNode(pl, node);
    if (n == NULL || n->heard_ms == 0)
        return UINT64_MAX;
    uint64_t now = uv_now(pl->loop);
    return now > n->heard_ms ? now - n->heard_ms : 0;
}

void peer_link_stats(const struct peer_link *pl, uint64_t node, struct peer_stats *out)
{
    const struct pl_node *n = findNode(pl, node);
    memset(out, 0, sizeof *out);
    if (n == NULL)
        return;
    *out = n->st;
    out->queued_bytes = n->queued;
}

static void handleClosed(uv_handle_t *h)
{
    struct peer_link *pl = h->data;
    pl->pending--;
    maybeFinish(pl);
}

void peer_link_close(struct peer_link *pl, void (*cb)(void *arg), void *arg)
{
    if (pl->closing)
        return;
    pl->closing = true;
    pl->close_cb = cb;
    pl->close_arg = arg;
    raft_mux_set_peer_handler(pl->mux, NULL, NULL);
    for (size_t i = 0; i < pl->n_nodes; i++) {
        struct pl_node *n = &pl->nodes[i];
        n->state = PL_CLOSED;
        dropQueue(n);
        if (n->dialing)
            raft_mux_peer_connect_cancel(&n->req); /* connectCb still fires: counted */
        if (n->stream != NULL) {
            closeOutStream(n, n->stream);
            n->stream = NULL;
        }
        n->timer.data = pl;
        pl->pending++;
        uv_close((uv_handle_t *)&n->timer, handleClosed);
    }
    for (struct pl_in *in = pl->ins; in != NULL; in = in->next)
        inClose(in); /* stays listed until inClosed: the walk is safe */
    pl->pending++;
    uv_close((uv_handle_t *)&pl->flush, handleClosed);
    pl->pending++;
    uv_close((uv_handle_t *)&pl->ping, handleClosed);
}
