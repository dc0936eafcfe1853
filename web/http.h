/* HTTP on the node's libuv loop: libmicrohttpd in its external-poll mode (one epoll fd that
 * the loop watches), so the web services run on the same thread as SIP and raft and call the
 * room service directly. Requests may be answered later (after a raft commit): the server
 * suspends the connection until the answer comes. HTTPS is OpenSSL (web/https_bridge.c). */
#ifndef WEB_HTTP_H
#define WEB_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

struct http_server;
struct http_req;

/* A body consumer for one request (uploads): data gets each piece as it arrives and returns
 * how many bytes it took; taking fewer than len pauses the body (the connection is not read)
 * until http_resume_body. done is called once the whole body is in. free is called when the
 * request ends, finished or not. */
struct http_body_sink {
    size_t (*data)(struct http_req *r, void *ctx, const char *p, size_t len);
    void (*done)(struct http_req *r, void *ctx);
    void (*free)(void *ctx);
    void *ctx;
};

struct http_handlers {
    void *ctx;
    /* The headers are in. Refuse at once with http_reply (the body is then not read), set a
     * body sink with http_stream_body, or do nothing: the body is buffered (up to
     * max_body) and request is called. */
    void (*headers)(void *ctx, struct http_req *r);
    /* The whole request is in. Answer now or later with http_reply*. */
    void (*request)(void *ctx, struct http_req *r);
};

struct http_config {
    const char *host;        /* listen address, "127.0.0.1" or "0.0.0.0" */
    int port;                /* 0 = no plain HTTP listener */
    size_t max_body;         /* buffered bodies (JSON): larger ones get 413 */
    unsigned max_conns;
    unsigned timeout_s;      /* idle connection timeout (slowloris) */
};

int http_server_start(uv_loop_t *loop, const struct http_config *cfg,
                      const struct http_handlers *h, struct http_server **out, char *err,
                      size_t errlen);
/* Answers every request still waiting with 503 and stops. */
void http_server_stop(struct http_server *s);

/* Hands an accepted connection (e.g. the plaintext end of a TLS bridge) to the server. */
int http_server_add_connection(struct http_server *s, int fd, const struct sockaddr *peer,
                               socklen_t peer_len);

struct http_server_stats {
    uint64_t requests, responses_4xx, responses_5xx;
    /* Connections closed after [web] timeout without progress: idle (no request line),
     * in the headers, in the body (slowloris, or a client that stopped reading). */
    uint64_t timeouts[3];
    unsigned waiting; /* requests answered later, still waiting */
};
void http_server_stats(const struct http_server *s, struct http_server_stats *out);

/* ---- a request ------------------------------------------------------------------------------ */
const char *http_method(const struct http_req *r);
const char *http_path(const struct http_req *r);
const char *http_header(const struct http_req *r, const char *name);
const char *http_query(const struct http_req *r, const char *name);
/* The buffered body (request callback only); NUL-terminated, len without it. */
const char *http_body(const struct http_req *r, size_t *len);
/* The request's Content-Length, or -1 when not given (chunked). */
int64_t http_content_length(const struct http_req *r);
/* The client's address as text ("127.0.0.1"). */
const char *http_peer(const struct http_req *r);

/* Per-request data of the application, freed (free_fn) when the request ends. */
void http_set_data(struct http_req *r, void *data, void (*free_fn)(void *));
void *http_data(const struct http_req *r);

void http_stream_body(struct http_req *r, const struct http_body_sink *sink);
void http_resume_body(struct http_req *r);

/* ---- answers (exactly one per request) ---------------------------------------------------------- */
/* Extra header for the answer about to be given. */
void http_add_header(struct http_req *r, const char *name, const char *value);
void http_reply(struct http_req *r, unsigned status, const char *content_type, const void *body,
                size_t len);
/* Takes the reference to j. */
void http_reply_json(struct http_req *r, unsigned status, json_t *j);
/* {"ok": false, "error": <text>} */
void http_reply_error(struct http_req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A body produced piece by piece: read fills up to max bytes at offset and returns how many
 * (0 = end, -1 = error: the connection is cut). size may be -1 when unknown. */
typedef ssize_t (*http_reader)(void *ctx, uint64_t offset, char *buf, size_t max);
void http_reply_stream(struct http_req *r, unsigned status, const char *content_type,
                       int64_t size, http_reader read, void *ctx, void (*free_ctx)(void *));

/* A handle that outlives the request, for answers that come later: the callback of an
 * asynchronous operation gets the ticket, and http_ticket_req gives the request or NULL when
 * it ended meanwhile (client gone, server stopping). Release every ticket once. */
struct http_ticket;
struct http_ticket *http_ticket_new(struct http_req *r);
struct http_req *http_ticket_req(struct http_ticket *t);
void http_ticket_release(struct http_ticket *t);

#endif
