/* Shared by the files of web/ (internal). */
#ifndef WEB_INT_H
#define WEB_INT_H

#include <openssl/evp.h>
#include <stdbool.h>

#include "web/http.h"
#include "web/web.h"
#include "web/web_auth.h"

struct https_bridge;

struct web_service {
    uv_loop_t *loop;
    struct web_config cfg;
    struct chat_service *svc;
    struct cluster *cl;
    struct web_hooks hooks;
    struct web_auth auth;
    struct http_server *http;
    struct https_bridge *https;
    uint64_t uploads, downloads, upload_bytes, download_bytes;
};

enum web_route {
    ROUTE_NONE,
    ROUTE_PAGE,    /* GET /                         the room management page */
    ROUTE_HEALTH,  /* GET /healthz */
    ROUTE_METRICS, /* GET /metrics                  Prometheus text */
    ROUTE_LOGIN,   /* POST /api/login */
    ROUTE_ME,      /* GET /api/me */
    ROUTE_ADMIN,   /* POST /api/admin               {"op": …} as pchatctl sends */
    ROUTE_ROOMS,   /* GET, POST /api/rooms */
    ROUTE_ROOM,    /* GET, PUT|POST, DELETE /api/rooms/<ref> */
    ROUTE_FILES,   /* GET (list), POST (upload) /api/rooms/<ref>/files */
    ROUTE_FILE,    /* GET /api/rooms/<ref>/files/<id> */
    ROUTE_SEARCH,  /* GET /api/search?q=…         full-text search of history */
};

/* One request's state (http_data). */
struct web_req {
    struct web_service *w;
    enum web_route route;
    char room_ref[256];
    char file_ref[128];
    bool needs_auth, auth_pending, body_in;
    int auth_status;
    const char *auth_why;
    struct web_identity id;
    bool streaming; /* an upload: the body goes to web_files */
};

/* web_page.c */
void web_page_serve(struct http_req *r);
/* web_metrics.c */
void web_metrics(struct web_service *w, struct http_req *r);
void web_health(struct web_service *w, struct http_req *r);
/* web_files.c: an upload's headers are in (false: refused, answered); its sender is known
 * (q->auth_status says whether it may go on); GET list and downloads. */
bool web_files_upload_begin(struct web_service *w, struct http_req *r, struct web_req *q);
void web_files_auth_done(struct web_service *w, struct http_req *r, struct web_req *q);
void web_files_dispatch(struct web_service *w, struct http_req *r, struct web_req *q);
/* web_search.c: GET /api/search (the sender is known). */
void web_search_dispatch(struct web_service *w, struct http_req *r, struct web_req *q);
/* https_bridge.c: TLS (OpenSSL) in front of the HTTP server. */
int https_bridge_start(uv_loop_t *loop, const struct web_config *cfg, struct http_server *http,
                       struct https_bridge **out, char *err, size_t errlen);
void https_bridge_stop(struct https_bridge *b);

#endif
