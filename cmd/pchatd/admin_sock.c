#include "cmd/pchatd/admin_sock.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat/chat_admin.h"
#include "common/pc_alloc.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_log.h"

enum { MAX_REQUEST = 1 << 20 };

struct admin_sock {
    uv_pipe_t listener;
    uv_loop_t *loop;
    struct chat_service *svc;
    admin_local_fn local;
    void *local_ctx;
    char *path;
};

struct admin_conn {
    uv_pipe_t pipe;
    struct admin_sock *owner;
    struct pc_buf in;
    unsigned refs; /* the pipe + answers still to come */
    bool closed;
};

struct admin_write {
    uv_write_t req;
    struct admin_conn *conn;
    char *data;
};

static void conn_unref(struct admin_conn *c)
{
    if (--c->refs > 0)
        return;
    pc_buf_free(&c->in);
    pc_free(c);
}

static void conn_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

static void conn_close(struct admin_conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    uv_close((uv_handle_t *)&c->pipe, conn_closed);
}

static void write_done(uv_write_t *req, int status)
{
    (void)status;
    struct admin_write *w = (struct admin_write *)req;
    free(w->data); /* from json_dumps */
    conn_unref(w->conn);
    pc_free(w);
}

static void answer(void *arg, json_t *result)
{
    struct admin_conn *c = arg;
    if (!c->closed) {
        char *s = json_dumps(result, JSON_COMPACT);
        size_t n = strlen(s);
        s = realloc(s, n + 2);
        s[n] = '\n';
        s[n + 1] = '\0';
        struct admin_write *w = pc_calloc(1, sizeof *w);
        w->conn = c;
        w->data = s;
        c->refs++;
        uv_buf_t b = uv_buf_init(s, (unsigned)(n + 1));
        if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, write_done) != 0)
            write_done(&w->req, -1);
    }
    json_decref(result);
    conn_unref(c);
}

static void handle_line(struct admin_conn *c, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *req = json_loadb(line, len, 0, &jerr);
    c->refs++;
    if (req == NULL) {
        char msg[300];
        snprintf(msg, sizeof msg, "request is not valid JSON: %s (column %d)", jerr.text, jerr.column);
        answer(c, json_pack("{s:b, s:s}", "ok", 0, "error", msg));
        return;
    }
    json_t *op = json_object_get(req, "op");
    json_t *local = c->owner->local != NULL && json_is_string(op)
                        ? c->owner->local(c->owner->local_ctx, json_string_value(op), req)
                        : NULL;
    if (local != NULL)
        answer(c, local);
    else
        chat_admin_handle(c->owner->svc, "admin (local socket)", req, answer, c);
    json_decref(req);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct admin_conn *c = h->data;
    pc_buf_reserve(&c->in, 4096);
    buf->base = c->in.data + c->in.len;
    buf->len = c->in.cap - c->in.len - 1;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct admin_conn *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->in.len += (size_t)nread;
    char *nl;
    while ((nl = memchr(c->in.data, '\n', c->in.len)) != NULL) {
        size_t n = (size_t)(nl - c->in.data);
        handle_line(c, c->in.data, n);
        pc_buf_consume(&c->in, n + 1);
    }
    if (c->in.len > MAX_REQUEST) {
        pc_warn("admin: request over %d bytes; closing the connection", MAX_REQUEST);
        conn_close(c);
    }
}

static void on_connect(uv_stream_t *server, int status)
{
    struct admin_sock *a = server->data;
    if (status != 0)
        return;
    struct admin_conn *c = pc_calloc(1, sizeof *c);
    c->owner = a;
    c->refs = 1;
    uv_pipe_init(a->loop, &c->pipe, 0);
    c->pipe.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
        conn_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
}

static void listener_closed(uv_handle_t *h);

int admin_sock_start(uv_loop_t *loop, const char *path, struct chat_service *svc,
                     struct admin_sock **out)
{
    struct admin_sock *a = pc_calloc(1, sizeof *a);
    a->loop = loop;
    a->svc = svc;
    a->path = pc_strdup(path);
    unlink(path); /* a stale socket from a killed run */
    uv_pipe_init(loop, &a->listener, 0);
    a->listener.data = a;
    mode_t old = umask(0077);
    int rc = uv_pipe_bind(&a->listener, path);
    umask(old);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->listener, 16, on_connect);
    if (rc != 0) {
        pc_error("admin: cannot listen on %s: %s", path, uv_strerror(rc));
        uv_close((uv_handle_t *)&a->listener, listener_closed);
        *out = NULL;
        return PC_EIO;
    }
    pc_info("admin: pchatctl socket at %s", path);
    *out = a;
    return 0;
}

static void listener_closed(uv_handle_t *h)
{
    struct admin_sock *a = h->data;
    pc_free(a->path);
    pc_free(a);
}

void admin_sock_stop(struct admin_sock *a)
{
    unlink(a->path);
    if (!uv_is_closing((uv_handle_t *)&a->listener))
        uv_close((uv_handle_t *)&a->listener, listener_closed);
}

void admin_sock_set_local(struct admin_sock *a, admin_local_fn fn, void *ctx)
{
    a->local = fn;
    a->local_ctx = ctx;
}
