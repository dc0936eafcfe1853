/* Client connections: accept, read and frame, queue and flush writes, close, sweep. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>

#include "chat/sip/sip_int.h"
#include "chat/sip/sip_msg.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_rand.h"
#include "common/pc_time.h"

/* Largest read buffer kept around when idle; bigger ones are given back. */
enum { READ_CHUNK = 16 * 1024, IDLE_BUF_KEEP = 64 * 1024, MAX_BAD_MESSAGES = 20 };

void sip_config_defaults(struct sip_config *cfg)
{
    cfg->domain = "example.test";
    cfg->chat_user = "pchat";
    cfg->max_header_bytes = 16 * 1024;
    cfg->max_body_bytes = 64 * 1024;
    cfg->out_soft_bytes = 1 << 20;
    cfg->out_hard_bytes = 8 << 20;
    cfg->max_pending_txns = 256;
    cfg->max_conns = 50000;
    cfg->register_expires_s = 3600;
    cfg->session_expires_s = 1800;
    cfg->keepalive_s = 300;
    cfg->retry_after_s = 5;
    cfg->header_timeout_s = 30;
    cfg->idle_timeout_s = 120;
}

void sip_conn_ref(struct sip_conn *c)
{
    c->refs++;
}

static void conn_free(struct sip_conn *c)
{
    struct sip_out *o;
    while ((o = TAILQ_FIRST(&c->out)) != NULL) {
        TAILQ_REMOVE(&c->out, o, link);
        pc_rbuf_unref(o->parts[0]);
        pc_rbuf_unref(o->parts[1]);
        pc_free(o);
    }
    pc_buf_free(&c->in);
    pc_buf_free(&c->tls_rx);
    if (c->ssl != NULL)
        sip_tls_conn_free(c);
    pc_free(c);
}

const char *sip_conn_transport(const struct sip_conn *c)
{
    return c->ssl != NULL ? "TLS" : "TCP";
}

const char *sip_conn_transport_param(const struct sip_conn *c)
{
    return c->ssl != NULL ? "tls" : "tcp";
}

int sip_conn_port(const struct sip_conn *c)
{
    return c->ssl != NULL ? c->srv->cfg.tls_port : c->srv->cfg.tcp_port;
}

void sip_conn_unref(struct sip_conn *c)
{
    if (--c->refs == 0)
        conn_free(c);
}

size_t sip_conn_out_bytes(const struct sip_conn *c)
{
    return c->out_queued_bytes + c->out_inflight_bytes;
}

/* Every handle of the server (listener, timers, connections) ends here; the server itself
 * is freed with its last handle once a stop was requested. */
static void handle_gone(struct sip_server *srv)
{
    if (--srv->open_handles > 0 || !srv->stopping)
        return;
    void (*cb)(void *) = srv->stop_cb;
    void *arg = srv->stop_arg;
    sip_tls_server_free(srv);
    pc_free(srv);
    if (cb != NULL)
        cb(arg);
}

static void handle_closed(uv_handle_t *h)
{
    struct sip_conn *c = h->data;
    struct sip_server *srv = c->srv;
    sip_conn_unref(c);
    handle_gone(srv);
}

void sip_conn_close(struct sip_conn *c, const char *why)
{
    if (c->closing)
        return;
    c->closing = true;
    struct sip_server *srv = c->srv;
    pc_info("sip: closing connection %s (%s%s%s)", c->peer, why,
            c->user[0] ? ", user " : "", c->user);
    TAILQ_REMOVE(&srv->conns, c, all_link);
    if (c->in_flush_list) {
        TAILQ_REMOVE(&srv->flush_list, c, flush_link);
        c->in_flush_list = false;
    }
    srv->stats.conns_open--;
    srv->stats.out_bytes_queued -= c->out_queued_bytes;
    c->out_queued_bytes = 0;
    /* Dialogs end first so the chat service stops sending to this connection. */
    sip_conn_end_dialogs(c, why);
    sip_conn_abandon_txns(c);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, handle_closed);
}

/* ---- output ---------------------------------------------------------------------------- */

struct write_req {
    uv_write_t req;
    struct sip_conn *conn;
    size_t bytes;
    size_t n;
    struct pc_rbuf *refs[];
};

static void schedule_flush(struct sip_conn *c)
{
    if (!c->in_flush_list) {
        TAILQ_INSERT_TAIL(&c->srv->flush_list, c, flush_link);
        c->in_flush_list = true;
    }
}

void sip_conn_send(struct sip_conn *c, struct pc_rbuf *hdr, struct pc_rbuf *body)
{
    if (c->closing) {
        pc_rbuf_unref(hdr);
        pc_rbuf_unref(body);
        return;
    }
    struct sip_out *o = pc_malloc(sizeof *o);
    o->parts[0] = hdr;
    o->parts[1] = body;
    size_t n = hdr->len + (body != NULL ? body->len : 0);
    TAILQ_INSERT_TAIL(&c->out, o, link);
    c->out_queued_bytes += n;
    c->srv->stats.out_bytes_queued += n;
    schedule_flush(c);
}

void sip_conn_send_buf(struct sip_conn *c, struct pc_buf *msg)
{
    sip_conn_send(c, pc_rbuf_from_buf(msg), NULL);
}

static void write_done(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct sip_conn *c = w->conn;
    for (size_t i = 0; i < w->n; i++)
        pc_rbuf_unref(w->refs[i]);
    c->out_inflight_bytes -= w->bytes;
    if (status != 0 && !c->closing)
        sip_conn_close(c, uv_strerror(status));
    pc_free(w);
    sip_conn_unref(c);
}

/* Hands everything queued on c to the kernel in one uv_write (libuv tries the write at once
 * and keeps the rest queued). The buffers stay referenced until the write completes. */
static void write_cipher(struct sip_conn *c, struct pc_buf *cipher, size_t plain_bytes);

/* TLS: the queued plaintext is encrypted into one buffer; nothing leaves before the
 * handshake is done (the client always speaks first, so this only delays, never loses). */
static void conn_flush_tls(struct sip_conn *c)
{
    if (!sip_tls_ready(c) || TAILQ_EMPTY(&c->out))
        return;
    struct sip_out *o;
    int rc = 0;
    while ((o = TAILQ_FIRST(&c->out)) != NULL) {
        TAILQ_REMOVE(&c->out, o, link);
        for (int i = 0; i < 2; i++)
            if (o->parts[i] != NULL) {
                if (rc == 0)
                    rc = sip_tls_encrypt(c, o->parts[i]->data, o->parts[i]->len);
                pc_rbuf_unref(o->parts[i]);
            }
        pc_free(o);
    }
    struct pc_buf cipher = {0};
    sip_tls_take_output(c, &cipher);
    size_t plain = c->out_queued_bytes;
    c->srv->stats.out_bytes_queued -= c->out_queued_bytes;
    c->out_queued_bytes = 0;
    if (rc != 0) {
        pc_buf_free(&cipher);
        sip_conn_close(c, "TLS encryption failed");
        return;
    }
    write_cipher(c, &cipher, plain);
}

static void conn_flush(struct sip_conn *c)
{
    if (c->ssl != NULL) {
        conn_flush_tls(c);
        return;
    }
    size_t parts = 0;
    struct sip_out *o;
    TAILQ_FOREACH(o, &c->out, link)
        parts += o->parts[1] != NULL ? 2 : 1;
    if (parts == 0)
        return;
    struct write_req *w = pc_malloc(sizeof *w + parts * sizeof w->refs[0]);
    uv_buf_t stackbufs[64];
    uv_buf_t *bufs = parts <= 64 ? stackbufs : pc_malloc(parts * sizeof *bufs);
    size_t n = 0;
    while ((o = TAILQ_FIRST(&c->out)) != NULL) {
        TAILQ_REMOVE(&c->out, o, link);
        for (int i = 0; i < 2; i++) {
            if (o->parts[i] == NULL)
                continue;
            bufs[n] = uv_buf_init(o->parts[i]->data, (unsigned)o->parts[i]->len);
            w->refs[n++] = o->parts[i];
        }
        pc_free(o);
    }
    w->conn = c;
    w->n = n;
    w->bytes = c->out_queued_bytes;
    c->srv->stats.out_bytes_queued -= c->out_queued_bytes;
    c->out_inflight_bytes += c->out_queued_bytes;
    c->out_queued_bytes = 0;
    sip_conn_ref(c);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, (unsigned)n, write_done);
    if (bufs != stackbufs)
        pc_free(bufs);
    if (rc != 0) {
        /* The callback never fires: undo here. */
        w->req.handle = NULL;
        write_done(&w->req, rc);
    }
}

/* Writes a buffer of TLS records (handshake or data); plain_bytes of queued plaintext it
 * carries count as in flight until written. */
static void write_cipher(struct sip_conn *c, struct pc_buf *cipher, size_t plain_bytes)
{
    if (cipher->len == 0) {
        pc_buf_free(cipher);
        return;
    }
    struct write_req *w = pc_malloc(sizeof *w + sizeof w->refs[0]);
    struct pc_rbuf *rb = pc_rbuf_from_buf(cipher);
    pc_buf_free(cipher);
    w->conn = c;
    w->n = 1;
    w->refs[0] = rb;
    w->bytes = plain_bytes;
    c->out_inflight_bytes += plain_bytes;
    sip_conn_ref(c);
    uv_buf_t b = uv_buf_init(rb->data, (unsigned)rb->len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_done);
    if (rc != 0) {
        w->req.handle = NULL;
        write_done(&w->req, rc);
    }
}

static void flush_all(uv_prepare_t *p)
{
    struct sip_server *srv = p->data;
    struct sip_conn *c;
    while ((c = TAILQ_FIRST(&srv->flush_list)) != NULL) {
        TAILQ_REMOVE(&srv->flush_list, c, flush_link);
        c->in_flush_list = false;
        conn_flush(c);
    }
}

/* ---- input ----------------------------------------------------------------------------- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct sip_conn *c = h->data;
    struct pc_buf *b = c->ssl != NULL ? &c->tls_rx : &c->in;
    if (c->ssl != NULL)
        b->len = 0; /* ciphertext is handed to OpenSSL at once */
    pc_buf_reserve(b, READ_CHUNK);
    buf->base = b->data + b->len;
    buf->len = b->cap - b->len - 1; /* keep room for the NUL pc_buf maintains */
}

static void process_input(struct sip_conn *c)
{
    const struct sip_frame_limits lim = {c->srv->cfg.max_header_bytes, c->srv->cfg.max_body_bytes};
    while (!c->closing) {
        struct sip_frame f;
        int rc = sip_frame_next(&c->framer, c->in.data, c->in.len, &lim, &f);
        if (rc == PC_EAGAIN) {
            /* Drop keep-alive CRLFs right away so an idle buffer stays empty. */
            if (f.skip > 0) {
                pc_buf_consume(&c->in, f.skip);
                c->framer.skip = 0;
                c->framer.scanned = 0;
            }
            break;
        }
        if (rc != 0) {
            c->srv->stats.bad_messages++;
            int code = rc == PC_ETOOBIG ? 413 : 400;
            const char *why = rc == PC_ETOOBIG ? "message larger than the configured limit"
                                               : "malformed or conflicting Content-Length";
            pc_warn("sip: %s from %s: answering %d and closing", why, c->peer, code);
            sip_server_reply_unparsable(c, c->in.data + f.skip, c->in.len - f.skip, code, why);
            flush_all(&c->srv->flusher);
            sip_conn_close(c, why);
            return;
        }
        const char *msg = c->in.data + f.skip;
        size_t len = f.header_len + f.body_len;
        osip_message_t *m = NULL;
        char err[128];
        c->srv->stats.requests_in++;
        if (sip_msg_is_2xx(msg, len)) {
            /* A client's 200 to a delivery: parsing it cost 12 % of the node's time per
             * delivered message, for nothing. */
        } else if (sip_msg_parse(msg, len, &m, err, sizeof err) != 0) {
            c->srv->stats.bad_messages++;
            pc_warn("sip: %s from %s: answering 400", err, c->peer);
            sip_server_reply_unparsable(c, msg, len, 400, err);
            if (++c->bad_messages > MAX_BAD_MESSAGES) {
                sip_conn_close(c, "too many malformed messages");
                return;
            }
        } else if (!f.has_length && f.body_len == 0 && MSG_IS_REQUEST(m) &&
                   strcmp(m->sip_method, "ACK") != 0) {
            /* RFC 3261 §18.3: Content-Length is mandatory on stream transports. Without it
             * the next message boundary is a guess, so say so and carry on as if it were 0. */
            pc_warn("sip: %s without Content-Length from %s", m->sip_method, c->peer);
            sip_server_dispatch(c, m);
        } else {
            sip_server_dispatch(c, m);
        }
        if (m != NULL)
            osip_message_free(m);
        pc_buf_consume(&c->in, f.skip + len);
    }
    c->partial_since_ms = c->in.len > 0 ? (c->partial_since_ms ? c->partial_since_ms : pc_mono_ms()) : 0;
    if (c->in.len == 0 && c->in.cap > IDLE_BUF_KEEP)
        pc_buf_free(&c->in);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct sip_conn *c = s->data;
    if (nread < 0) {
        sip_conn_close(c, nread == UV_EOF ? "peer closed" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0)
        return;
    if (c->ssl != NULL) {
        char why[300];
        int rc = sip_tls_feed(c, c->tls_rx.data, (size_t)nread, why, sizeof why);
        struct pc_buf out = {0};
        sip_tls_take_output(c, &out); /* handshake records, alerts */
        write_cipher(c, &out, 0);
        if (rc != 0) {
            if (rc == PC_EPROTO)
                pc_warn("sip: %s from %s", why, c->peer);
            sip_conn_close(c, why);
            return;
        }
        if (!TAILQ_EMPTY(&c->out))
            schedule_flush(c); /* what waited for the handshake */
    } else {
        c->in.len += (size_t)nread;
        c->in.data[c->in.len] = '\0';
    }
    c->last_rx_ms = pc_mono_ms();
    sip_conn_ref(c); /* dispatch may close the connection */
    process_input(c);
    sip_conn_unref(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct sip_server *srv = server->data;
    if (status != 0) {
        pc_warn("sip: accept failed: %s", uv_strerror(status));
        return;
    }
    struct sip_conn *c = pc_calloc(1, sizeof *c);
    c->srv = srv;
    c->refs = 1;
    c->id = ++srv->next_conn_id;
    pc_random_hex(c->tag, 8);
    TAILQ_INIT(&c->out);
    TAILQ_INIT(&c->txns);
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    srv->open_handles++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, handle_closed);
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(c->peer, sizeof c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_INET) {
        char ip[INET_ADDRSTRLEN];
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        uv_ip4_name(sin, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, ntohs(sin->sin_port));
    }
    len = sizeof ss;
    snprintf(c->local_host, sizeof c->local_host, "%s",
             srv->cfg.advertised_host ? srv->cfg.advertised_host : srv->cfg.listen_host);
    TAILQ_INSERT_TAIL(&srv->conns, c, all_link);
    srv->stats.conns_open++;
    srv->stats.conns_accepted++;
    c->last_rx_ms = pc_mono_ms();
    if (srv->stats.conns_open > srv->cfg.max_conns) {
        srv->stats.conns_refused++;
        pc_warn("sip: refusing %s: %u connections is the configured maximum", c->peer,
                srv->cfg.max_conns);
        sip_conn_close(c, "too many connections");
        return;
    }
    if (server == (uv_stream_t *)&srv->tls_listener && sip_tls_conn_start(c) != 0) {
        sip_conn_close(c, "cannot start TLS");
        return;
    }
    /* Chat traffic is many small messages: never let Nagle hold one back. */
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    pc_debug("sip: connection %s accepted", c->peer);
}

/* ---- timers and lifecycle ------------------------------------------------------------- */

static void sweep_cb(uv_timer_t *t)
{
    struct sip_server *srv = t->data;
    uint64_t now = pc_mono_ms();
    struct sip_conn *c, *next;
    for (c = TAILQ_FIRST(&srv->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, all_link);
        if (c->partial_since_ms != 0 &&
            now - c->partial_since_ms > srv->cfg.header_timeout_s * 1000ull) {
            pc_warn("sip: %s sent an incomplete message for %us: closing", c->peer,
                    srv->cfg.header_timeout_s);
            srv->stats.timeouts_incomplete++;
            sip_conn_close(c, "incomplete message timed out");
            continue;
        }
        if (!c->registered && c->dialogs == NULL &&
            now - c->last_rx_ms > srv->cfg.idle_timeout_s * 1000ull) {
            pc_info("sip: %s idle without registration for %us: closing", c->peer,
                    srv->cfg.idle_timeout_s);
            srv->stats.timeouts_idle++;
            sip_conn_close(c, "idle without registration");
            continue;
        }
        if (c->registered && now > c->reg_expires_ms + 60000) {
            sip_conn_close(c, "registration expired");
            continue;
        }
    }
    sip_server_sweep(srv, now);
}

static void server_handle_closed(uv_handle_t *h)
{
    handle_gone(h->data);
}

static void setup_handle(struct sip_server *srv, uv_handle_t *h)
{
    h->data = srv;
    srv->open_handles++;
}

int sip_server_start(uv_loop_t *loop, const struct sip_config *cfg,
                     const struct sip_handlers *h, struct sip_server **out)
{
    sip_msg_global_init();
    struct sip_server *srv = pc_calloc(1, sizeof *srv);
    srv->loop = loop;
    srv->cfg = *cfg;
    srv->h = *h;
    TAILQ_INIT(&srv->conns);
    TAILQ_INIT(&srv->flush_list);
    snprintf(srv->chat_uri, sizeof srv->chat_uri, "sip:%s@%s", cfg->chat_user, cfg->domain);
    snprintf(srv->transport, sizeof srv->transport, "TCP");
    snprintf(srv->transport_param, sizeof srv->transport_param, "tcp");
    sip_auth_init(srv);

    struct sockaddr_in addr;
    int rc = uv_ip4_addr(cfg->listen_host, cfg->tcp_port, &addr);
    if (rc != 0) {
        pc_error("sip: listen address '%s' is not an IPv4 address", cfg->listen_host);
        pc_free(srv);
        return PC_EINVAL;
    }
    if (cfg->tls_port > 0 && cfg->tls_cert != NULL && cfg->tls_cert[0] != '\0') {
        char err[600];
        if (sip_tls_server_init(srv, cfg->tls_cert, cfg->tls_key ? cfg->tls_key : "", err,
                                sizeof err) != 0) {
            pc_error("sip: %s", err);
            pc_free(srv);
            return PC_EINVAL;
        }
        srv->tls_on = true;
    }
    uv_tcp_init(loop, &srv->listener);
    setup_handle(srv, (uv_handle_t *)&srv->listener);
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 1024, on_connection);
    if (rc != 0) {
        pc_error("sip: cannot listen on %s:%d: %s (is another process using the port?)",
                 cfg->listen_host, cfg->tcp_port, uv_strerror(rc));
        srv->stopping = true;
        uv_close((uv_handle_t *)&srv->listener, server_handle_closed);
        *out = NULL;
        return PC_EIO;
    }
    if (srv->tls_on) {
        struct sockaddr_in taddr;
        uv_ip4_addr(cfg->listen_host, cfg->tls_port, &taddr);
        uv_tcp_init(loop, &srv->tls_listener);
        setup_handle(srv, (uv_handle_t *)&srv->tls_listener);
        rc = uv_tcp_bind(&srv->tls_listener, (const struct sockaddr *)&taddr, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&srv->tls_listener, 1024, on_connection);
        if (rc != 0) {
            pc_error("sip: cannot listen on %s:%d (TLS): %s (is another process using the port?)",
                     cfg->listen_host, cfg->tls_port, uv_strerror(rc));
            srv->stopping = true;
            uv_close((uv_handle_t *)&srv->tls_listener, server_handle_closed);
            uv_close((uv_handle_t *)&srv->listener, server_handle_closed);
            *out = NULL;
            return PC_EIO;
        }
        pc_notice("sip: listening on %s:%d (TLS)", cfg->listen_host, cfg->tls_port);
    }
    srv->listening = true;
    uv_prepare_init(loop, &srv->flusher);
    setup_handle(srv, (uv_handle_t *)&srv->flusher);
    uv_prepare_start(&srv->flusher, flush_all);
    uv_timer_init(loop, &srv->sweeper);
    setup_handle(srv, (uv_handle_t *)&srv->sweeper);
    uv_timer_start(&srv->sweeper, sweep_cb, 1000, 1000);
    pc_notice("sip: listening on %s:%d (TCP), chat service %s", cfg->listen_host, cfg->tcp_port,
              srv->chat_uri);
    *out = srv;
    return 0;
}

void sip_server_stop(struct sip_server *srv, void (*cb)(void *arg), void *arg)
{
    srv->stopping = true;
    srv->stop_cb = cb;
    srv->stop_arg = arg;
    srv->listening = false;
    struct sip_conn *c;
    flush_all(&srv->flusher);
    while ((c = TAILQ_FIRST(&srv->conns)) != NULL)
        sip_conn_close(c, "server stopping");
    uv_close((uv_handle_t *)&srv->listener, server_handle_closed);
    if (srv->tls_on)
        uv_close((uv_handle_t *)&srv->tls_listener, server_handle_closed);
    uv_close((uv_handle_t *)&srv->flusher, server_handle_closed);
    uv_close((uv_handle_t *)&srv->sweeper, server_handle_closed);
}

void sip_server_stats(const struct sip_server *srv, struct sip_stats *out)
{
    *out = srv->stats;
}

const char *sip_server_chat_uri(const struct sip_server *srv)
{
    return srv->chat_uri;
}
