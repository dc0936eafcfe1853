/* libmicrohttpd driven by the libuv loop.
 *
 * The daemon runs in external mode with epoll: all of its sockets sit in one epoll fd, which
 * the loop watches with a uv_poll; when it turns readable, or when MHD's own timeout is due,
 * MHD_run does the work and returns. MHD calls the access handler several times per request
 * (headers, each piece of the body, the end); the struct http_req made on the first call
 * carries the request through them. An answer given later is stored in the request and the
 * suspended connection is resumed, which makes MHD call the handler again to queue it. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/pc_alloc.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_str.h"
#include "common/pc_time.h"
#include "web/http.h"

struct http_server {
    uv_loop_t *loop;
    struct MHD_Daemon *d;
    uv_poll_t poll;
    uv_timer_t timer;
    struct http_config cfg;
    struct http_handlers h;
    struct http_req *waiting; /* suspended requests (answer or body pending), for stop */
    struct http_server_stats stats;
    bool stopping;
};

/* What one connection (socket) is doing, for telling timeouts apart: libmicrohttpd closes a
 * connection that makes no progress for [web] timeout seconds but does not say so, so the
 * phase and the time of the last progress seen are kept here and read when it closes. */
enum http_phase {
    HTTP_IDLE,    /* no request line yet (new, or kept alive after an answer) */
    HTTP_HEADERS, /* request line in, headers not complete */
    HTTP_BODY,    /* headers in; body, or the client's reading of the answer, not done */
};

struct http_conn {
    enum http_phase phase;
    uint64_t progress_ms;
    bool timed_out; /* libmicrohttpd ended the request with TIMEOUT_REACHED */
};

struct http_ticket {
    struct http_req *req;
    unsigned refs; /* the request's and the holder's */
};

struct http_req {
    struct http_server *srv;
    struct MHD_Connection *conn;
    const char *method, *path;
    char peer[64];
    struct pc_buf body;
    bool too_big;
    bool headers_done, body_done, handled;
    bool suspended;
    struct http_req *next_waiting, **prev_waiting;
    struct http_body_sink sink;
    bool streaming, sink_paused;
    void *data;
    void (*free_data)(void *);
    struct MHD_Response *resp; /* the answer, not yet queued */
    unsigned status;
    struct { char *name, *value; } extra[8];
    unsigned n_extra;
    struct http_ticket *ticket;
};

static void schedule(struct http_server *s);

/* ---- connections and their timeouts -------------------------------------------------------- */

static struct http_conn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

static void conn_progress(struct MHD_Connection *conn, enum http_phase phase)
{
    struct http_conn *c = conn_of(conn);
    if (c != NULL) {
        c->phase = phase;
        c->progress_ms = pc_mono_ms();
    }
}

/* Whether the client still holds its end open: a client that closed (or reset) is gone by
 * its own choice, whatever it was doing. */
/* A connection closes. It timed out when libmicrohttpd said so (a request under way), or
 * when nothing progressed for the whole timeout: libmicrohttpd closes a quiet connection at
 * its timeout and not before, and its other reasons (a malformed request, headers too large)
 * answer at once. A client that closes by itself within 100 ms of the timeout is counted
 * too; asking the socket whether the client still had it open instead raced with the
 * client's own close under load. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *s = cls;
    (void)conn;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        struct http_conn *c = pc_calloc(1, sizeof *c);
        c->progress_ms = pc_mono_ms();
        *socket_context = c;
        return;
    }
    struct http_conn *c = *socket_context;
    if (c == NULL)
        return;
    uint64_t quiet_ms = pc_mono_ms() - c->progress_ms;
    /* (When the server stops it closes every connection: those are not timeouts.) */
    if (!s->stopping &&
        (c->timed_out || (s->cfg.timeout_s > 0 && quiet_ms + 100 >= s->cfg.timeout_s * 1000ull))) {
        static const char *const phase[] = {"idle", "in its headers", "in its body"};
        s->stats.timeouts[c->phase]++;
        pc_info("http: connection closed after %us without progress (%s)", s->cfg.timeout_s,
                phase[c->phase]);
    }
    pc_free(c);
    *socket_context = NULL;
}

/* The request line is in: the headers are now awaited. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)uri;
    conn_progress(conn, HTTP_HEADERS);
    return NULL; /* the access handler makes the request's state */
}

/* ---- the loop side ------------------------------------------------------------------------ */

static void run_mhd(struct http_server *s)
{
    if (s->d != NULL)
        MHD_run(s->d);
    schedule(s);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    run_mhd(p->data);
}

static void on_timer(uv_timer_t *t)
{
    run_mhd(t->data);
}

/* MHD says how long until it must run again (connection timeouts, resumed connections). */
static void schedule(struct http_server *s)
{
    if (s->d == NULL)
        return;
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(s->d, &ms) != MHD_YES)
        ms = 1000;
    if (ms > 1000)
        ms = 1000;
    uv_timer_start(&s->timer, on_timer, (uint64_t)ms, 0);
}

/* ---- requests ---------------------------------------------------------------------------- */

static void unwait(struct http_req *r)
{
    if (r->prev_waiting != NULL) {
        *r->prev_waiting = r->next_waiting;
        if (r->next_waiting != NULL)
            r->next_waiting->prev_waiting = r->prev_waiting;
        r->prev_waiting = NULL;
        r->next_waiting = NULL;
    }
}

/* MHD refuses to stop with suspended connections: every one is listed. */
static void suspend(struct http_req *r)
{
    if (r->suspended)
        return;
    if (r->srv->stopping) { /* MHD must not stop with suspended connections: answer now */
        if (r->resp == NULL && !r->handled)
            http_reply_error(r, 503, "the node is shutting down; try another node of the pool");
        return;
    }
    r->suspended = true;
    struct http_server *s = r->srv;
    r->next_waiting = s->waiting;
    if (s->waiting != NULL)
        s->waiting->prev_waiting = &r->next_waiting;
    s->waiting = r;
    r->prev_waiting = &s->waiting;
    MHD_suspend_connection(r->conn);
}

static void resume(struct http_req *r)
{
    if (!r->suspended)
        return;
    r->suspended = false;
    unwait(r);
    MHD_resume_connection(r->conn);
    uv_timer_start(&r->srv->timer, on_timer, 0, 0);
}

static void req_free(struct http_req *r)
{
    unwait(r);
    if (r->streaming && r->sink.free != NULL)
        r->sink.free(r->sink.ctx);
    if (r->free_data != NULL)
        r->free_data(r->data);
    if (r->resp != NULL)
        MHD_destroy_response(r->resp);
    for (unsigned i = 0; i < r->n_extra; i++) {
        pc_free(r->extra[i].name);
        pc_free(r->extra[i].value);
    }
    if (r->ticket != NULL) {
        r->ticket->req = NULL;
        http_ticket_release(r->ticket);
    }
    pc_buf_free(&r->body);
    pc_free(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls;
    struct http_conn *c = conn_of(conn);
    if (c != NULL && why == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
        c->timed_out = true;
    else
        conn_progress(conn, HTTP_IDLE); /* answered: kept alive for the next request */
    if (*con_cls != NULL)
        req_free(*con_cls);
    *con_cls = NULL;
}

static enum MHD_Result queue_answer(struct http_req *r)
{
    for (unsigned i = 0; i < r->n_extra; i++)
        MHD_add_response_header(r->resp, r->extra[i].name, r->extra[i].value);
    enum MHD_Result ok = MHD_queue_response(r->conn, r->status, r->resp);
    MHD_destroy_response(r->resp);
    r->resp = NULL;
    r->handled = true;
    r->srv->stats.requests++;
    if (r->status >= 500)
        r->srv->stats.responses_5xx++;
    else if (r->status >= 400)
        r->srv->stats.responses_4xx++;
    return ok;
}


/* One piece of the body: buffered, or given to the sink (which may pause the body). */
static void take_body(struct http_req *r, const char *data, size_t *size)
{
    if (r->streaming) {
        size_t took = r->sink.data(r, r->sink.ctx, data, *size);
        if (took > *size || r->resp != NULL)
            took = *size; /* an answer ends the body's use: drop what is left */
        *size -= took;
        if (*size > 0) {
            r->sink_paused = true;
            suspend(r);
        }
        return;
    }
    if (!r->too_big && r->body.len + *size <= r->srv->cfg.max_body)
        pc_buf_append(&r->body, data, *size);
    else
        r->too_big = true; /* read and dropped: the answer is 413 at the end */
    *size = 0;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    struct http_server *s = cls;
    struct http_req *r = *con_cls;
    conn_progress(conn, HTTP_BODY);
    if (r == NULL) {
        r = pc_calloc(1, sizeof *r);
        r->srv = s;
        r->conn = conn;
        r->method = method;
        r->path = url;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci != NULL && ci->client_addr != NULL && ci->client_addr->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, r->peer,
                      sizeof r->peer);
        else
            snprintf(r->peer, sizeof r->peer, "local");
        *con_cls = r;
        r->headers_done = true;
        if (s->stopping)
            http_reply_error(r, 503, "the node is shutting down; try another node of the pool");
        else
            s->h.headers(s->h.ctx, r);
        if (r->resp != NULL)
            return queue_answer(r);
        return MHD_YES;
    }
    if (r->handled)
        return MHD_YES;
    if (*upload_size > 0) {
        if (r->resp != NULL)
            *upload_size = 0; /* answered already (a refused upload): the rest is dropped */
        else
            take_body(r, upload_data, upload_size);
        return MHD_YES;
    }
    if (!r->body_done) {
        r->body_done = true;
        bool answered = r->resp != NULL; /* while the body was still coming */
        if (answered)
            pc_debug("http: %s %s answered before its body ended", r->method, r->path);
        else if (r->too_big)
            http_reply_error(r, 413, "the request body is larger than %zu bytes",
                             s->cfg.max_body);
        else if (r->streaming && r->sink.done != NULL)
            r->sink.done(r, r->sink.ctx);
        else if (!r->streaming)
            s->h.request(s->h.ctx, r);
        if (r->resp == NULL && !r->handled) {
            suspend(r); /* until the answer comes (or answered at once when stopping) */
            if (r->resp == NULL)
                return MHD_YES;
        }
    }
    if (r->resp != NULL)
        return queue_answer(r);
    return MHD_YES; /* resumed without an answer yet (a paused body went on): keep waiting */
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    pc_info("http: %s", line);
}

int http_server_start(uv_loop_t *loop, const struct http_config *cfg,
                      const struct http_handlers *h, struct http_server **out, char *err,
                      size_t errlen)
{
    struct http_server *s = pc_calloc(1, sizeof *s);
    s->loop = loop;
    s->cfg = *cfg;
    s->h = *h;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port)};
    if (inet_pton(AF_INET, cfg->host, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "[web] listen '%s' is not an IPv4 address", cfg->host);
        pc_free(s);
        return PC_EINVAL;
    }
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (cfg->port == 0)
        flags |= MHD_USE_NO_LISTEN_SOCKET;
    s->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_access, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_CONNECTION_LIMIT, cfg->max_conns,
                            MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                            MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_END);
    if (s->d == NULL) {
        snprintf(err, errlen, "cannot listen for HTTP on %s:%d (in use? set [web] port)",
                 cfg->host, cfg->port);
        pc_free(s);
        return PC_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
    uv_poll_init(loop, &s->poll, di->epoll_fd);
    s->poll.data = s;
    uv_poll_start(&s->poll, UV_READABLE, on_poll);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    schedule(s);
    *out = s;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    if (h == (uv_handle_t *)&s->timer)
        pc_free(s);
}

void http_server_stop(struct http_server *s)
{
    s->stopping = true;
    while (s->waiting != NULL) {
        struct http_req *r = s->waiting;
        if (r->resp == NULL && !r->handled)
            http_reply_error(r, 503, "the node is shutting down; try another node of the pool");
        resume(r); /* (answering resumed it already, unless it had an answer) */
    }
    for (int i = 0; i < 3; i++)
        MHD_run(s->d); /* queue the answers of the resumed requests */
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, NULL);
    uv_timer_stop(&s->timer);
    MHD_stop_daemon(s->d);
    s->d = NULL;
    uv_close((uv_handle_t *)&s->timer, on_closed);
}

int http_server_add_connection(struct http_server *s, int fd, const struct sockaddr *peer,
                               socklen_t peer_len)
{
    if (MHD_add_connection(s->d, fd, peer, peer_len) != MHD_YES)
        return PC_EIO;
    uv_timer_start(&s->timer, on_timer, 0, 0);
    return 0;
}

void http_server_stats(const struct http_server *s, struct http_server_stats *out)
{
    *out = s->stats;
    out->waiting = 0;
    for (const struct http_req *r = s->waiting; r != NULL; r = r->next_waiting)
        out->waiting += r->body_done;
}

/* ---- request accessors -------------------------------------------------------------------- */

const char *http_method(const struct http_req *r) { return r->method; }
const char *http_path(const struct http_req *r) { return r->path; }
const char *http_peer(const struct http_req *r) { return r->peer; }
void *http_data(const struct http_req *r) { return r->data; }

const char *http_header(const struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_query(const struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_body(const struct http_req *r, size_t *len)
{
    *len = r->body.len;
    return r->body.len > 0 ? (const char *)r->body.data : "";
}

int64_t http_content_length(const struct http_req *r)
{
    const char *v = http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (v == NULL)
        return -1;
    char *end;
    long long n = strtoll(v, &end, 10);
    return end != v && *end == '\0' && n >= 0 ? (int64_t)n : -1;
}

void http_set_data(struct http_req *r, void *data, void (*free_fn)(void *))
{
    r->data = data;
    r->free_data = free_fn;
}

void http_stream_body(struct http_req *r, const struct http_body_sink *sink)
{
    r->sink = *sink;
    r->streaming = true;
}

void http_resume_body(struct http_req *r)
{
    if (r->sink_paused) {
        r->sink_paused = false;
        resume(r);
    }
}

/* ---- answers ------------------------------------------------------------------------------ */

void http_add_header(struct http_req *r, const char *name, const char *value)
{
    if (r->n_extra == sizeof r->extra / sizeof r->extra[0])
        return;
    r->extra[r->n_extra].name = pc_strdup(name);
    r->extra[r->n_extra].value = pc_strdup(value);
    r->n_extra++;
}

static void answer(struct http_req *r, unsigned status, struct MHD_Response *resp)
{
    if (r->resp != NULL || r->handled) { /* a second answer is a bug: keep the first */
        pc_warn("http: %s %s answered twice (status %u ignored)", r->method, r->path, status);
        MHD_destroy_response(resp);
        return;
    }
    r->resp = resp;
    r->status = status;
    resume(r);
}

void http_reply(struct http_req *r, unsigned status, const char *content_type, const void *body,
                size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    answer(r, status, resp);
}

void http_reply_json(struct http_req *r, unsigned status, json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) { /* json_pack refused a string (not UTF-8): a bug, never a crash */
        pc_error("http: %s %s: an answer could not be made into JSON", r->method, r->path);
        static const char fallback[] = "{\"ok\":false,\"error\":\"internal error\"}\n";
        http_reply(r, 500, "application/json", fallback, sizeof fallback - 1);
        return;
    }
    size_t n = strlen(text);
    struct pc_buf b = {0};
    pc_buf_append(&b, text, n);
    pc_buf_append(&b, "\n", 1);
    free(text);
    http_reply(r, status, "application/json", b.data, b.len);
    pc_buf_free(&b);
}

void http_reply_error(struct http_req *r, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pc_utf8_sanitize(msg); /* paths and names from the client, possibly cut mid-character */
    if (status >= 500 || status == 413)
        pc_info("http: %s %s from %s: %u %s", r->method, r->path, r->peer, status, msg);
    http_reply_json(r, status, json_pack("{s:b, s:s}", "ok", 0, "error", msg));
}

struct stream_ctx {
    http_reader read;
    void *ctx;
    void (*free_ctx)(void *);
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream_ctx *sc = cls;
    ssize_t n = sc->read(sc->ctx, pos, buf, max);
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return n < 0 ? MHD_CONTENT_READER_END_WITH_ERROR : n;
}

static void stream_free(void *cls)
{
    struct stream_ctx *sc = cls;
    if (sc->free_ctx != NULL)
        sc->free_ctx(sc->ctx);
    pc_free(sc);
}

void http_reply_stream(struct http_req *r, unsigned status, const char *content_type,
                       int64_t size, http_reader read, void *ctx, void (*free_ctx)(void *))
{
    struct stream_ctx *sc = pc_calloc(1, sizeof *sc);
    sc->read = read;
    sc->ctx = ctx;
    sc->free_ctx = free_ctx;
    struct MHD_Response *resp = MHD_create_response_from_callback(
        size < 0 ? MHD_SIZE_UNKNOWN : (uint64_t)size, 64 * 1024, stream_read, sc, stream_free);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    answer(r, status, resp);
}

/* ---- tickets ------------------------------------------------------------------------------ */

struct http_ticket *http_ticket_new(struct http_req *r)
{
    if (r->ticket == NULL) {
        r->ticket = pc_calloc(1, sizeof *r->ticket);
        r->ticket->req = r;
        r->ticket->refs = 1;
    }
    r->ticket->refs++;
    return r->ticket;
}

struct http_req *http_ticket_req(struct http_ticket *t)
{
    return t->req;
}

void http_ticket_release(struct http_ticket *t)
{
    if (--t->refs == 0)
        pc_free(t);
}
