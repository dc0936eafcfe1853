/* Chat-endpoint dialogs: INVITE/ACK/BYE/UPDATE/INFO in, INFO out, session expiry. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "chat/sip/sip_int.h"
#include "chat/sip/sip_msg.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_rand.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

const char *sip_dialog_user(const struct sip_dialog *dlg)
{
    return dlg->user;
}

const char *sip_dialog_peer(const struct sip_dialog *dlg)
{
    return dlg->conn->peer;
}

uint64_t sip_dialog_id(const struct sip_dialog *dlg)
{
    return dlg->id;
}

void *sip_dialog_data(const struct sip_dialog *dlg)
{
    return dlg->data;
}

void sip_dialog_set_data(struct sip_dialog *dlg, void *data)
{
    dlg->data = data;
}

static void dialog_free(struct sip_dialog *d)
{
    pc_free(d->call_id);
    pc_free(d->local_tag);
    pc_free(d->remote_tag);
    pc_free(d->remote_target);
    pc_free(d->fixed_headers);
    pc_free(d);
}

void sip_dialog_end(struct sip_dialog *dlg, const char *why)
{
    struct sip_conn *c = dlg->conn;
    struct sip_server *srv = c->srv;
    HASH_DEL(c->dialogs, dlg);
    srv->stats.dialogs_open--;
    pc_info("sip: chat session %llu of %s ended (%s)", (unsigned long long)dlg->id, dlg->user,
            why);
    if (dlg->announced)
        srv->h.dialog_end(srv->h.ctx, dlg);
    dialog_free(dlg);
}

void sip_conn_end_dialogs(struct sip_conn *c, const char *why)
{
    struct sip_dialog *d, *tmp;
    HASH_ITER(hh, c->dialogs, d, tmp)
        sip_dialog_end(d, why);
}

/* The dialog a request belongs to: same Call-ID on this connection, same remote tag. */
static struct sip_dialog *find_dialog(struct sip_conn *c, const osip_message_t *m, bool from_client)
{
    struct sip_dialog *d = NULL;
    const char *cid = m->call_id->number;
    char key[512];
    if (m->call_id->host != NULL)
        snprintf(key, sizeof key, "%s@%s", cid, m->call_id->host);
    else
        snprintf(key, sizeof key, "%s", cid != NULL ? cid : "");
    HASH_FIND_STR(c->dialogs, key, d);
    if (d == NULL)
        return NULL;
    osip_generic_param_t *tag = NULL;
    const osip_from_t *remote = from_client ? m->from : m->to;
    if (osip_from_param_get_byname((osip_from_t *)remote, "tag", &tag) < 0 || tag == NULL ||
        tag->gvalue == NULL || strcmp(tag->gvalue, d->remote_tag) != 0)
        return NULL;
    return d;
}

static char *call_id_string(const osip_message_t *m)
{
    char *s = NULL;
    if (osip_call_id_to_str(m->call_id, &s) != 0 || s == NULL)
        return pc_strdup("");
    char *r = pc_strdup(s);
    osip_free(s);
    return r;
}

/* Precomputes the From/To/Call-ID lines of every request we will send in the dialog: From is
 * the URI the client INVITEd with our tag (SIPE matches it case-insensitively against that
 * URI), To is the client's From header exactly as received (tag and epid included). */
static char *fixed_headers(const osip_message_t *invite, const char *local_tag)
{
    osip_to_t *to = NULL;
    osip_to_clone(invite->to, &to);
    osip_generic_param_t *t = NULL;
    if (osip_to_get_tag(to, &t) != 0)
        osip_to_set_tag(to, osip_strdup(local_tag));
    char *from_s = NULL, *to_s = NULL, *cid = NULL;
    osip_to_to_str(to, &from_s);
    osip_from_to_str(invite->from, &to_s);
    osip_call_id_to_str(invite->call_id, &cid);
    struct pc_buf b = {0};
    pc_buf_printf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\n", from_s ? from_s : "",
                  to_s ? to_s : "", cid ? cid : "");
    osip_free(from_s);
    osip_free(to_s);
    osip_free(cid);
    osip_to_free(to);
    return pc_buf_steal(&b, NULL);
}

static void send_invite_ok(struct sip_conn *c, const osip_message_t *req, const char *tag)
{
    struct sip_server *srv = c->srv;
    osip_message_t *r = sip_msg_response(req, 200, NULL, tag);
    char v[SIP_URI_MAX + 64];
    snprintf(v, sizeof v, "<%s;transport=%s>", srv->chat_uri, sip_conn_transport_param(c));
    osip_message_set_header(r, "Contact", v);
    /* Without Session-Expires SIPE re-sends UPDATE back-to-back after any failed INFO
     * (XCCOS.md §4.1), so it is always present. */
    snprintf(v, sizeof v, "%u;refresher=uac", srv->cfg.session_expires_s);
    osip_message_set_header(r, "Session-Expires", v);
    osip_message_set_header(r, "Supported", "timer");
    osip_message_set_header(r, "Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE");
    char sdp[512];
    int n = snprintf(sdp, sizeof sdp,
                     "v=0\r\no=- 0 0 IN IP4 %s\r\ns=session\r\nc=IN IP4 %s\r\nt=0 0\r\n"
                     "m=message %d sip %s\r\n",
                     c->local_host, c->local_host, srv->cfg.tcp_port, srv->chat_uri);
    sip_msg_set_body(r, "application/sdp", sdp, (size_t)n);
    struct pc_buf out = {0};
    if (sip_msg_serialize(r, &out) == 0)
        sip_conn_send_buf(c, &out);
    pc_buf_free(&out);
    osip_message_free(r);
}

void sip_handle_invite(struct sip_conn *c, osip_message_t *req)
{
    struct sip_server *srv = c->srv;
    struct sip_dialog *d = find_dialog(c, req, true);
    if (d != NULL) {
        /* A re-INVITE refreshes the session; the answer is the same. */
        d->last_activity_ms = pc_mono_ms();
        send_invite_ok(c, req, d->local_tag);
        return;
    }
    char target[SIP_URI_MAX];
    if (!sip_msg_uri_user_host(req->req_uri, target, sizeof target) ||
        strcmp(target, srv->chat_uri) != 0) {
        pc_info("sip: INVITE from %s for %s: not the chat service", c->peer, target);
        sip_server_reply(c, req, 404, "Only the persistent chat service lives here", NULL);
        return;
    }
    char user[SIP_URI_MAX];
    if (!sip_conn_identity(c, req, user, sizeof user)) {
        sip_server_reply(c, req, 403, "Sign in (REGISTER) before starting a chat session", NULL);
        return;
    }
    enum sip_user_status st = srv->h.user_status(srv->h.ctx, user);
    if (st != SIP_USER_OK) {
        /* Refusing the INVITE (rather than accepting and BYE-ing) is what makes SIPE give up
         * cleanly for this login (XCCOS.md §3.2). */
        const char *why = st == SIP_USER_NO_CHAT ? "Persistent chat is not enabled for you"
                          : st == SIP_USER_DISABLED ? "Your account is disabled"
                                                    : "No such user";
        pc_info("sip: chat INVITE from %s refused: %s", user, why);
        sip_server_reply(c, req, 403, why, NULL);
        return;
    }
    osip_generic_param_t *ftag = NULL;
    if (osip_from_get_tag(req->from, &ftag) != 0 || ftag == NULL || ftag->gvalue == NULL) {
        sip_server_reply(c, req, 400, "From tag missing", NULL);
        return;
    }
    d = pc_calloc(1, sizeof *d);
    d->conn = c;
    d->id = ++srv->next_dialog_id;
    d->call_id = call_id_string(req);
    char tag[17];
    pc_random_hex(tag, 8);
    d->local_tag = pc_strdup(tag);
    d->remote_tag = pc_strdup(ftag->gvalue);
    osip_contact_t *ct = NULL;
    char *target_s = NULL;
    if (osip_message_get_contact(req, 0, &ct) >= 0 && ct != NULL && ct->url != NULL)
        osip_uri_to_str(ct->url, &target_s);
    else
        osip_uri_to_str(req->from->url, &target_s);
    d->remote_target = pc_strdup(target_s ? target_s : user);
    osip_free(target_s);
    d->fixed_headers = fixed_headers(req, d->local_tag);
    pc_strlcpy(d->user, user, sizeof d->user);
    d->local_cseq = 1000;
    d->last_activity_ms = pc_mono_ms();
    struct sip_dialog *dup = NULL;
    HASH_FIND_STR(c->dialogs, d->call_id, dup);
    if (dup != NULL) {
        /* Same Call-ID, different tag: a forked or confused client. */
        dialog_free(d);
        sip_server_reply(c, req, 481, "Call-ID already in use on this connection", NULL);
        return;
    }
    HASH_ADD_KEYPTR(hh, c->dialogs, d->call_id, strlen(d->call_id), d);
    srv->stats.dialogs_open++;
    int rc = srv->h.dialog_new(srv->h.ctx, d);
    if (rc != 0) {
        HASH_DEL(c->dialogs, d);
        srv->stats.dialogs_open--;
        dialog_free(d);
        sip_server_reply(c, req, rc == PC_EBUSY ? 503 : 403,
                         rc == PC_EBUSY ? "The chat service is busy, try again" : NULL, NULL);
        return;
    }
    d->announced = true;
    send_invite_ok(c, req, d->local_tag);
    pc_info("sip: chat session %llu opened for %s from %s", (unsigned long long)d->id, user,
            c->peer);
}

static void handle_info(struct sip_conn *c, struct sip_dialog *d, osip_message_t *req)
{
    struct sip_server *srv = c->srv;
    if (sip_conn_out_bytes(c) > srv->cfg.out_soft_bytes || c->n_txns >= srv->cfg.max_pending_txns) {
        /* The client is not reading what we send, or floods us: push back. */
        sip_server_reply(c, req, 503, "Too many requests in progress on this session", NULL);
        return;
    }
    size_t len = 0;
    const char *body = sip_msg_body(req, &len);
    const char *ctype = NULL;
    if (req->content_type != NULL)
        ctype = req->content_type->type;
    if (len > 0 && ctype != NULL && strcasecmp(ctype, "text") != 0 &&
        strcasecmp(ctype, "application") != 0) {
        sip_server_reply(c, req, 415, NULL, NULL);
        return;
    }
    struct sip_txn *t = pc_calloc(1, sizeof *t);
    t->conn = c;
    sip_conn_ref(c);
    osip_message_clone(req, &t->req);
    TAILQ_INSERT_TAIL(&c->txns, t, link);
    c->n_txns++;
    srv->h.info(srv->h.ctx, d, t, body != NULL ? body : "", len);
}

void sip_handle_in_dialog(struct sip_conn *c, osip_message_t *req)
{
    const char *m = req->sip_method;
    struct sip_dialog *d = find_dialog(c, req, true);
    if (strcmp(m, "ACK") == 0) {
        return; /* 2xx ACKs need no answer; an ACK for nothing is ignored too */
    }
    if (d == NULL) {
        sip_server_reply(c, req, 481, NULL, NULL);
        return;
    }
    d->last_activity_ms = pc_mono_ms();
    if (strcmp(m, "BYE") == 0) {
        sip_server_reply(c, req, 200, NULL, NULL);
        sip_dialog_end(d, "BYE from client");
    } else if (strcmp(m, "UPDATE") == 0) {
        osip_message_t *r = sip_msg_response(req, 200, NULL, NULL);
        char v[32];
        snprintf(v, sizeof v, "%u;refresher=uac", c->srv->cfg.session_expires_s);
        osip_message_set_header(r, "Session-Expires", v);
        struct pc_buf out = {0};
        if (sip_msg_serialize(r, &out) == 0)
            sip_conn_send_buf(c, &out);
        pc_buf_free(&out);
        osip_message_free(r);
    } else if (strcmp(m, "CANCEL") == 0) {
        /* INVITEs are answered at once, so there is never anything left to cancel. */
        sip_server_reply(c, req, 481, NULL, NULL);
    } else {
        handle_info(c, d, req);
    }
}

void sip_txn_reply(struct sip_txn *t, int code, const char *reason)
{
    struct sip_conn *c = t->conn;
    if (c != NULL) {
        TAILQ_REMOVE(&c->txns, t, link);
        c->n_txns--;
        if (!c->closing)
            sip_server_reply(c, t->req, code, reason, NULL);
        sip_conn_unref(c);
    }
    osip_message_free(t->req);
    pc_free(t);
}

void sip_conn_abandon_txns(struct sip_conn *c)
{
    struct sip_txn *t;
    while ((t = TAILQ_FIRST(&c->txns)) != NULL) {
        TAILQ_REMOVE(&c->txns, t, link);
        c->n_txns--;
        t->conn = NULL;
        sip_conn_unref(c);
    }
}

int sip_dialog_send_info(struct sip_dialog *d, struct pc_rbuf *body)
{
    struct sip_conn *c = d->conn;
    struct sip_server *srv = c->srv;
    if (c->closing)
        return PC_ECLOSED;
    if (sip_conn_out_bytes(c) > srv->cfg.out_hard_bytes) {
        srv->stats.slow_consumers_dropped++;
        pc_warn("sip: %s at %s does not read its deliveries (%zu bytes queued): dropping the "
                "connection; the client will reconnect and re-join",
                d->user, c->peer, sip_conn_out_bytes(c));
        sip_conn_close(c, "slow consumer");
        return PC_EBUSY;
    }
    struct pc_buf h = {0};
    pc_buf_reserve(&h, 512);
    pc_buf_printf(&h,
                  "INFO %s SIP/2.0\r\n"
                  "Via: SIP/2.0/%s %s:%d;branch=z9hG4bKpc%llx.%llx\r\n"
                  "Max-Forwards: 70\r\n"
                  "%s"
                  "CSeq: %u INFO\r\n"
                  "Content-Type: text/plain\r\n"
                  "Content-Length: %zu\r\n\r\n",
                  d->remote_target, sip_conn_transport(c), c->local_host, sip_conn_port(c),
                  (unsigned long long)c->id, (unsigned long long)++srv->branch_counter,
                  d->fixed_headers, ++d->local_cseq, body->len);
    sip_conn_send(c, pc_rbuf_from_buf(&h), pc_rbuf_ref(body));
    pc_buf_free(&h);
    srv->stats.infos_out++;
    return 0;
}

void sip_handle_response(struct sip_conn *c, osip_message_t *resp)
{
    /* Our only requests are INFOs in chat dialogs. A 481/487/408 (or any failure) means
     * the client no longer has the dialog (XCCOS.md §3.3): forget it, never send on it again. */
    int code = resp->status_code;
    if (code < 300)
        return;
    struct sip_dialog *d = find_dialog(c, resp, false);
    if (d == NULL)
        return;
    char why[64];
    snprintf(why, sizeof why, "client answered %d to our INFO", code);
    sip_dialog_end(d, why);
}

void sip_server_sweep(struct sip_server *srv, uint64_t now_ms)
{
    /* Dialogs the client stopped refreshing are forgotten without a BYE (XCCOS.md §4.3):
     * the next request on them gets 481, from which SIPE recovers. */
    uint64_t limit = 2ull * srv->cfg.session_expires_s * 1000;
    struct sip_conn *c, *next;
    for (c = TAILQ_FIRST(&srv->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, all_link);
        struct sip_dialog *d, *tmp;
        HASH_ITER(hh, c->dialogs, d, tmp)
            if (now_ms - d->last_activity_ms > limit)
                sip_dialog_end(d, "session expired");
    }
}
