/* Routes of the web services and who may use them. Every answer is JSON except the page,
 * /metrics and file downloads. The room management API and the admin API are thin: the
 * room service's chat_manage_handle and chat_admin_handle do the work and the checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chat/chat.h"
#include "chat/chat_admin.h"
#include "chat/chat_manage.h"
#include "cluster/cluster.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_str.h"
#include "web/web.h"
#include "web/web_int.h"

/* ---- answers of the room service --------------------------------------------------------- */

/* The HTTP status for an answer of chat_admin/chat_manage. */
static unsigned answer_status(json_t *answer)
{
    if (json_is_true(json_object_get(answer, "ok")))
        return 200;
    const char *reason = json_string_value(json_object_get(answer, "reason"));
    if (reason == NULL)
        return 400;
    if (strcmp(reason, "not_found") == 0)
        return 404;
    if (strcmp(reason, "denied") == 0)
        return 403;
    if (strcmp(reason, "unavailable") == 0)
        return 503;
    return 400;
}

static void answered(void *arg, json_t *answer)
{
    struct http_ticket *t = arg;
    struct http_req *r = http_ticket_req(t);
    if (r != NULL)
        http_reply_json(r, answer_status(answer), answer);
    else
        json_decref(answer);
    http_ticket_release(t);
}

/* ---- requests in flight ---------------------------------------------------------------------- */

static json_t *body_json(struct http_req *r, bool need)
{
    size_t len;
    const char *body = http_body(r, &len);
    if (len == 0 && !need)
        return json_object();
    json_error_t e;
    json_t *j = json_loadb(body, len, 0, &e);
    if (j == NULL) {
        http_reply_error(r, 400, "the body is not JSON (%s at line %d, column %d)", e.text, e.line,
                         e.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_reply_error(r, 400, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* The request is in and its sender known: do it. */
static void dispatch(struct web_service *w, struct http_req *r, struct web_req *q)
{
    const char *method = http_method(r);
    const char *user = q->id.user;
    json_t *req = NULL;
    switch (q->route) {
    case ROUTE_ME:
    case ROUTE_ROOMS:
        if (q->route == ROUTE_ROOMS && strcmp(method, "POST") == 0) {
            if ((req = body_json(r, true)) == NULL)
                return;
            json_object_set_new(req, "op", json_string("room.new"));
        } else {
            req = json_pack("{s:s}", "op", q->route == ROUTE_ME ? "me" : "rooms");
        }
        chat_manage_handle(w->svc, user, req, answered, http_ticket_new(r));
        break;
    case ROUTE_ROOM:
        if (strcmp(method, "GET") == 0) {
            req = json_pack("{s:s}", "op", "room.get");
        } else if (strcmp(method, "DELETE") == 0) {
            req = json_pack("{s:s}", "op", "room.remove");
        } else {
            if ((req = body_json(r, true)) == NULL)
                return;
            json_object_set_new(req, "op", json_string("room.set"));
        }
        json_object_set_new(req, "name", json_string(q->room_ref));
        chat_manage_handle(w->svc, user, req, answered, http_ticket_new(r));
        break;
    case ROUTE_ADMIN: {
        if ((req = body_json(r, true)) == NULL)
            return;
        const char *op = json_string_value(json_object_get(req, "op"));
        json_t *local = op != NULL && w->hooks.admin_local != NULL
                            ? w->hooks.admin_local(w->hooks.ctx, op, req)
                            : NULL;
        pc_info("web: admin %s by %s from %s", op ? op : "(none)", user, http_peer(r));
        if (local != NULL)
            answered(http_ticket_new(r), local);
        else
            chat_admin_handle(w->svc, user, req, answered, http_ticket_new(r));
        break;
    }
    case ROUTE_FILES:
    case ROUTE_FILE:
        web_files_dispatch(w, r, q);
        break;
    case ROUTE_METRICS:
        web_metrics(w, r);
        break;
    case ROUTE_SEARCH:
        web_search_dispatch(w, r, q);
        break;
    default:
        http_reply_error(r, 404, "no such endpoint");
        break;
    }
    json_decref(req);
}

/* ---- authentication ------------------------------------------------------------------------ */


static void auth_done(struct web_service *w, struct http_req *r, struct web_req *q)
{
    if (q->auth_status != 0) {
        http_add_header(r, "WWW-Authenticate", "Bearer realm=\"pchat\"");
        http_reply_error(r, 401, "%s", q->auth_why);
        return;
    }
    if ((q->route == ROUTE_ADMIN || q->route == ROUTE_METRICS) && !q->id.admin) {
        http_reply_error(r, 403, "%s is for administrators (user set --admin yes)",
                         q->route == ROUTE_ADMIN ? "the admin API" : "/metrics");
        return;
    }
    if (q->streaming) {
        web_files_auth_done(w, r, q);
        return;
    }
    if (q->body_in)
        dispatch(w, r, q);
}

/* A password check refused before it ran: the address is over its rate (429) or the node
 * runs as many checks as it allows (503). */
static void password_refused(struct http_req *r, int status, unsigned retry_s)
{
    char ra[16];
    snprintf(ra, sizeof ra, "%u", retry_s);
    http_add_header(r, "Retry-After", ra);
    if (status == 429) {
        pc_notice("web: password check refused for %s: too many sign-in attempts", http_peer(r));
        http_reply_error(r, 429, "too many sign-in attempts from your address: password checks "
                         "are limited per address ([web] login_rate); retry in %u s, or sign in "
                         "once (POST /api/login) and use the token", retry_s);
    } else {
        http_reply_error(r, 503, "the server is checking as many passwords as it allows at once "
                         "([web] login_concurrency); retry in %u s", retry_s);
    }
}

/* The password check ended; the request (and so this service) may be gone meanwhile. */
static void password_checked(void *arg, bool ok, const char *user)
{
    struct http_ticket *t = arg;
    struct http_req *r = http_ticket_req(t);
    if (r != NULL) {
        struct web_req *q = http_data(r);
        q->auth_pending = false;
        q->auth_status = 401;
        q->auth_why = "unknown user or wrong password";
        if (ok)
            q->auth_status = web_auth_identify(&q->w->auth, cluster_meta(q->w->cl), user, &q->id,
                                               &q->auth_why);
        auth_done(q->w, r, q);
    }
    http_ticket_release(t);
}

/* "Authorization: Bearer <token>" (the page, pchatctl) or "Basic <user:password>" (curl -u). */
static void authenticate(struct web_service *w, struct http_req *r, struct web_req *q)
{
    const char *h = http_header(r, "Authorization");
    q->auth_status = 401;
    q->auth_why = "sign in first (POST /api/login), or send Authorization: Basic";
    if (h == NULL) {
        auth_done(w, r, q);
        return;
    }
    if (strncasecmp(h, "Bearer ", 7) == 0) {
        q->auth_status = web_auth_bearer(&w->auth, cluster_meta(w->cl), h + 7, &q->id,
                                         &q->auth_why);
        auth_done(w, r, q);
        return;
    }
    if (strncasecmp(h, "Basic ", 6) == 0) {
        unsigned char plain[600];
        size_t len = strlen(h + 6);
        int n = len < 790 ? EVP_DecodeBlock(plain, (const unsigned char *)h + 6, (int)len) : -1;
        char *colon = n > 0 ? memchr(plain, ':', (size_t)n) : NULL;
        if (colon == NULL) {
            q->auth_why = "malformed Basic credentials";
            auth_done(w, r, q);
            return;
        }
        /* EVP_DecodeBlock counts the padding's zero bytes: the password ends at the first NUL. */
        plain[n] = '\0';
        *colon = '\0';
        q->auth_pending = true;
        struct http_ticket *t = http_ticket_new(r);
        unsigned retry_s;
        int status = web_auth_password(&w->auth, cluster_meta(w->cl), http_peer(r),
                                       (char *)plain, colon + 1, password_checked, t, &retry_s);
        OPENSSL_cleanse(plain, sizeof plain);
        if (status != 0) {
            q->auth_pending = false;
            q->auth_status = status;
            http_ticket_release(t);
            password_refused(r, status, retry_s);
        }
        return;
    }
    q->auth_why = "unsupported Authorization scheme (use Bearer or Basic)";
    auth_done(w, r, q);
}

/* POST /api/login {"user": …, "password": …} → {"token": …, "expires": …} */
static void login_checked(void *arg, bool ok, const char *user)
{
    struct http_ticket *t = arg;
    struct http_req *r = http_ticket_req(t);
    if (r != NULL) {
        struct web_req *q = http_data(r);
        struct web_identity id;
        const char *why = "unknown user or wrong password";
        int status = ok ? web_auth_identify(&q->w->auth, cluster_meta(q->w->cl), user, &id, &why)
                        : 401;
        if (status != 0) {
            pc_notice("web: sign-in refused from %s: %s", http_peer(r), why);
            http_reply_error(r, status, "%s", why);
        } else {
            char token[512];
            int64_t expires;
            web_auth_token(&q->w->auth, id.user, &expires, token, sizeof token);
            pc_info("web: %s signed in from %s", id.user, http_peer(r));
            http_reply_json(r, 200, json_pack("{s:b, s:s, s:s, s:b, s:I}", "ok", 1, "token", token,
                                              "user", id.user, "admin", id.admin, "expires",
                                              (json_int_t)expires));
        }
    }
    http_ticket_release(t);
}

static void login(struct web_service *w, struct http_req *r)
{
    json_t *j = body_json(r, true);
    if (j == NULL)
        return;
    const char *user = json_string_value(json_object_get(j, "user"));
    const char *password = json_string_value(json_object_get(j, "password"));
    if (user == NULL || user[0] == '\0' || password == NULL || strlen(user) > 256 ||
        strlen(password) > 1024) {
        json_decref(j);
        http_reply_error(r, 400, "sign-in needs \"user\" and \"password\"");
        return;
    }
    struct http_ticket *t = http_ticket_new(r);
    unsigned retry_s;
    int status = web_auth_password(&w->auth, cluster_meta(w->cl), http_peer(r), user, password,
                                   login_checked, t, &retry_s);
    json_decref(j);
    if (status != 0) {
        http_ticket_release(t);
        password_refused(r, status, retry_s);
    }
}

/* ---- routing ------------------------------------------------------------------------------ */

/* Splits /api/rooms/<ref>[/files[/<id>]]. */
static enum web_route route_of(const char *path, struct web_req *q)
{
    if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)
        return ROUTE_PAGE;
    if (strcmp(path, "/healthz") == 0)
        return ROUTE_HEALTH;
    if (strcmp(path, "/metrics") == 0)
        return ROUTE_METRICS;
    if (strcmp(path, "/api/login") == 0)
        return ROUTE_LOGIN;
    if (strcmp(path, "/api/me") == 0)
        return ROUTE_ME;
    if (strcmp(path, "/api/admin") == 0)
        return ROUTE_ADMIN;
    if (strcmp(path, "/api/rooms") == 0)
        return ROUTE_ROOMS;
    if (strcmp(path, "/api/search") == 0)
        return ROUTE_SEARCH;
    if (strncmp(path, "/api/rooms/", 11) != 0)
        return ROUTE_NONE;
    const char *ref = path + 11;
    const char *slash = strchr(ref, '/');
    size_t n = slash != NULL ? (size_t)(slash - ref) : strlen(ref);
    if (n == 0 || n >= sizeof q->room_ref)
        return ROUTE_NONE;
    memcpy(q->room_ref, ref, n);
    q->room_ref[n] = '\0';
    if (slash == NULL)
        return ROUTE_ROOM;
    if (strcmp(slash, "/files") == 0)
        return ROUTE_FILES;
    if (strncmp(slash, "/files/", 7) == 0 && slash[7] != '\0' &&
        strlen(slash + 7) < sizeof q->file_ref) {
        pc_strlcpy(q->file_ref, slash + 7, sizeof q->file_ref);
        return ROUTE_FILE;
    }
    return ROUTE_NONE;
}

static bool method_ok(enum web_route route, const char *m)
{
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0, post = strcmp(m, "POST") == 0;
    switch (route) {
    case ROUTE_PAGE:
    case ROUTE_HEALTH:
    case ROUTE_METRICS:
    case ROUTE_ME:
    case ROUTE_FILE:
    case ROUTE_SEARCH:
        return get;
    case ROUTE_LOGIN:
    case ROUTE_ADMIN:
        return post;
    case ROUTE_ROOMS:
    case ROUTE_FILES:
        return get || post;
    case ROUTE_ROOM:
        return get || post || strcmp(m, "PUT") == 0 || strcmp(m, "DELETE") == 0;
    case ROUTE_NONE:
        return true;
    }
    return false;
}

static void on_headers(void *ctx, struct http_req *r)
{
    struct web_service *w = ctx;
    struct web_req *q = pc_calloc(1, sizeof *q);
    q->w = w;
    http_set_data(r, q, pc_free);
    q->route = route_of(http_path(r), q);
    if (q->route == ROUTE_NONE) {
        http_reply_error(r, 404, "no such endpoint: %s (see docs/WEB.md)", http_path(r));
        return;
    }
    if (!method_ok(q->route, http_method(r))) {
        http_reply_error(r, 405, "%s is not allowed on %s", http_method(r), http_path(r));
        return;
    }
    if (q->route == ROUTE_FILES && strcmp(http_method(r), "POST") == 0) {
        if (!web_files_upload_begin(w, r, q))
            return;
    }
    switch (q->route) {
    case ROUTE_PAGE:
    case ROUTE_HEALTH:
    case ROUTE_LOGIN:
        return;
    case ROUTE_METRICS:
        if (w->cfg.metrics_public)
            return;
        break;
    default:
        break;
    }
    q->needs_auth = true;
    authenticate(w, r, q);
}

static void on_request(void *ctx, struct http_req *r)
{
    struct web_service *w = ctx;
    struct web_req *q = http_data(r);
    q->body_in = true;
    switch (q->route) {
    case ROUTE_PAGE:
        web_page_serve(r);
        return;
    case ROUTE_HEALTH:
        web_health(w, r);
        return;
    case ROUTE_LOGIN:
        login(w, r);
        return;
    default:
        break;
    }
    if (q->needs_auth && q->auth_pending)
        return; /* dispatched when the password check ends */
    dispatch(w, r, q);
}

/* ---- life cycle ----------------------------------------------------------------------------- */

int web_service_start(uv_loop_t *loop, const struct web_config *cfg, struct chat_service *svc,
                      struct cluster *cl, const struct web_hooks *hooks,
                      struct web_service **out, char *err, size_t errlen)
{
    struct web_service *w = pc_calloc(1, sizeof *w);
    w->loop = loop;
    w->cfg = *cfg;
    w->svc = svc;
    w->cl = cl;
    if (hooks != NULL)
        w->hooks = *hooks;
    if (!web_auth_init(&w->auth, loop, cfg->data_dir, cfg->domain, cfg->auth_off,
                       cfg->token_minutes, err, errlen)) {
        pc_free(w);
        return PC_EIO;
    }
    if (cfg->login_rate > 0)
        web_auth_set_limits(&w->auth, cfg->login_rate, cfg->login_burst, cfg->login_concurrency);
    struct http_config hc = {.host = cfg->listen, .port = cfg->port, .max_body = cfg->max_body,
                             .max_conns = cfg->max_conns, .timeout_s = cfg->timeout_s};
    struct http_handlers h = {.ctx = w, .headers = on_headers, .request = on_request};
    int rc = http_server_start(loop, &hc, &h, &w->http, err, errlen);
    if (rc == 0 && cfg->tls_cert != NULL && cfg->tls_cert[0] != '\0')
        rc = https_bridge_start(loop, cfg, w->http, &w->https, err, errlen);
    if (rc != 0) {
        if (w->http != NULL)
            http_server_stop(w->http);
        pc_free(w);
        return rc;
    }
    pc_notice("web: http://%s:%d/ (room management, admin API, /metrics)%s", cfg->listen,
              cfg->port, w->https != NULL ? ", and HTTPS" : "");
    *out = w;
    return 0;
}

void web_service_stop(struct web_service *w)
{
    if (w->https != NULL)
        https_bridge_stop(w->https);
    http_server_stop(w->http);
    web_auth_close(&w->auth);
    pc_free(w);
}
