/* The node's web services: the room management page and its API, file upload/download,
 * the admin API (what pchatctl uses), /metrics and /healthz. One server per node, on the
 * node's loop; see docs/WEB.md for the endpoints. */
#ifndef WEB_H
#define WEB_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "common/pc_buf.h"

struct chat_service;
struct cluster;
struct search;
struct web_service;

struct web_config {
    const char *listen;        /* IPv4 address */
    int port;                  /* HTTP; 0 = none */
    int https_port;            /* HTTPS (OpenSSL); used when tls_cert is set */
    const char *tls_cert, *tls_key;
    const char *data_dir;      /* the signing key and the local admin token live here */
    const char *domain;        /* SIP domain: "alice" signs in as sip:alice@<domain> */
    bool auth_off;             /* [auth] mode = off: known users sign in without password */
    unsigned token_minutes;    /* lifetime of a sign-in token */
    size_t max_body;           /* JSON request bodies */
    unsigned max_conns;
    unsigned timeout_s;
    bool metrics_public;       /* /metrics without credentials */
    uint64_t max_file_bytes;   /* uploads (Lync: 20,000 KB) */
    /* Password checks (sign-in, Basic headers) per client address: login_rate per second,
     * bursts of login_burst (429 beyond); at most login_concurrency at once (503 beyond).
     * login_rate 0 = the defaults (10, 30, 2). */
    unsigned login_rate, login_burst, login_concurrency;
};

/* What the node adds that the web service cannot know by itself. */
struct web_hooks {
    void *ctx;
    /* Admin operations answered by the node (compliance.status): an answer, or NULL. */
    json_t *(*admin_local)(void *ctx, const char *op, json_t *req);
    /* Appends the node's own metrics (compliance backlog …) in Prometheus text format. */
    void (*metrics)(void *ctx, struct pc_buf *out);
    /* Whether the node serves clients (SIP listening, not shutting down). */
    bool (*serving)(void *ctx);
    /* The node's message index for GET /api/search (NULL: the node has none). */
    struct search *search;
};

int web_service_start(uv_loop_t *loop, const struct web_config *cfg, struct chat_service *svc,
                      struct cluster *cl, const struct web_hooks *hooks,
                      struct web_service **out, char *err, size_t errlen);
void web_service_stop(struct web_service *w);

#endif
