/* Room service glue: sessions, the SIP callbacks, command dispatch and reply helpers. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "chat/chat_int.h"
#include "chat/chat_passwd.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_str.h"

unsigned chat_default_history(const struct chat_service *svc)
{
    unsigned pool = cluster_meta(svc->cl)->settings.default_history;
    return pool != 0 ? pool : svc->cfg.default_history;
}

unsigned chat_participant_update_limit(const struct chat_service *svc)
{
    unsigned pool = cluster_meta(svc->cl)->settings.participant_update_limit;
    return pool != 0 ? pool : svc->cfg.participant_update_limit;
}

void chat_config_defaults(struct chat_config *cfg)
{
    cfg->default_history = 30;
    cfg->max_history = 500;
    cfg->message_max_chars = 8000;
    /* Lync announces stories 8 times longer than messages (4096 vs 512); ours stay within
     * one SIP body ([sip] max_body_bytes 64k) even in 3-byte characters. */
    cfg->story_max_chars = 16000;
    cfg->max_rooms_per_request = 200;
    cfg->max_members_per_request = 1000;
    cfg->search_limit = 999;
    cfg->participant_update_limit = 1000;
    cfg->allow_unknown_users = false;
    cfg->post_rate = 0;
    cfg->post_burst = 20;
    cfg->max_sessions_per_user = 0;
}

/* ---- sessions ------------------------------------------------------------------------- */

void chat_session_ref(struct chat_session *s)
{
    s->refs++;
}

void chat_session_unref(struct chat_session *s)
{
    if (--s->refs > 0)
        return;
    struct chat_joined *j, *tmp;
    HASH_ITER(hh, s->joined, j, tmp) {
        HASH_DEL(s->joined, j);
        pc_free(j);
    }
    pc_free(s);
}

struct chat_cmd *chat_cmd_new(struct chat_session *s, const struct xccos_msg *m)
{
    struct chat_cmd *c = pc_calloc(1, sizeof *c);
    c->s = s;
    chat_session_ref(s);
    c->op = m->op;
    pc_strlcpy(c->op_name, m->op_name != NULL ? m->op_name : "", sizeof c->op_name);
    pc_strlcpy(c->envid, m->envid != NULL ? m->envid : "0", sizeof c->envid);
    pc_strlcpy(c->seqid, m->seqid != NULL ? m->seqid : "1", sizeof c->seqid);
    return c;
}

void chat_cmd_free(struct chat_cmd *c)
{
    chat_session_unref(c->s);
    pc_free(c);
}

void chat_reply_init(const struct chat_cmd *cmd, struct xccos_msg *r)
{
    xccos_msg_init(r, XCCOS_KIND_RPL, cmd->op);
    /* Unknown commands are answered under their own name so the client can match it. */
    if (cmd->op == XCCOS_OP_UNKNOWN) {
        const char *name = cmd->op_name;
        if (strncasecmp(name, "cmd:", 4) == 0)
            name += 4;
        r->op_name = pc_arena_printf(&r->arena, "rpl:%s", name);
    }
    r->seqid = cmd->seqid;
    r->cmd_seqid = cmd->seqid;
    r->cmd_envid = cmd->envid;
    r->resp_code = XCCOS_RESP_OK;
    r->resp_text = XCCOS_RESP_OK_TEXT;
}

void chat_send(struct chat_session *s, struct xccos_msg *m)
{
    if (s->dlg == NULL)
        return;
    char envid[24];
    snprintf(envid, sizeof envid, "%llu", (unsigned long long)++s->svc->next_envid);
    m->envid = envid;
    struct pc_buf b = {0};
    xccos_encode(m, &b);
    struct pc_rbuf *body = pc_rbuf_from_buf(&b);
    pc_buf_free(&b);
    sip_dialog_send_info(s->dlg, body);
    pc_rbuf_unref(body);
    m->envid = NULL;
}

void chat_reply_error(struct chat_cmd *cmd, int code, const char *token, const char *detail)
{
    struct xccos_msg r;
    chat_reply_init(cmd, &r);
    xccos_msg_set_error(&r, code, token, detail);
    chat_send(cmd->s, &r);
    xccos_msg_free(&r);
}

void chat_reply_status(struct chat_cmd *cmd, int status, const char *detail)
{
    switch (status) {
    case PC_ENOTFOUND:
        chat_reply_error(cmd, XCCOS_RESP_NOT_FOUND, XCCOS_ERR_NO_SUCH_ROOM, detail);
        break;
    case PC_EDENIED:
        chat_reply_error(cmd, XCCOS_RESP_FORBIDDEN, XCCOS_ERR_PERMISSION, detail);
        break;
    case PC_EDISABLED:
        chat_reply_error(cmd, XCCOS_RESP_FORBIDDEN, XCCOS_ERR_ROOM_DISABLED, detail);
        break;
    case PC_EINVAL:
    case PC_EPROTO:
        chat_reply_error(cmd, XCCOS_RESP_BAD_REQUEST, XCCOS_ERR_BAD_REQUEST, detail);
        break;
    case PC_EBUSY:
    case PC_EUNAVAIL:
        chat_reply_error(cmd, XCCOS_RESP_BUSY, XCCOS_ERR_BUSY,
                         detail ? detail : "the chat service is busy, try again shortly");
        break;
    default:
        chat_reply_error(cmd, XCCOS_RESP_SERVER_ERROR, XCCOS_ERR_SERVER,
                         detail ? detail : pc_strerror(status));
    }
}

/* ---- room addressing ------------------------------------------------------------------ */

const struct meta_room *chat_room_by_chanid(struct chat_service *svc, const char *domain,
                                            const char *value)
{
    if (domain == NULL || value == NULL || strcasecmp(domain, svc->cfg.domain) != 0)
        return NULL;
    return meta_room_by_guid(cluster_meta(svc->cl), value);
}

const struct meta_room *chat_room_by_uri(struct chat_service *svc, const char *uri)
{
    struct pc_arena a = {0};
    const char *domain, *id;
    const struct meta_room *r = NULL;
    if (uri != NULL && xccos_split_chan_uri(uri, &a, &domain, &id))
        r = chat_room_by_chanid(svc, domain, id);
    pc_arena_free(&a);
    return r;
}

const char *chat_room_uri(struct chat_service *svc, const struct meta_room *r, struct pc_arena *a)
{
    /* One canonical spelling everywhere: SIPE compares room URIs byte for byte. */
    return pc_arena_printf(a, "ma-chan://%s/%s", svc->cfg.domain, r->guid);
}

/* ---- SIP callbacks ---------------------------------------------------------------------- */

static enum sip_user_status user_status(void *ctx, const char *uri)
{
    struct chat_service *svc = ctx;
    const struct meta_user *u = meta_user(cluster_meta(svc->cl), uri);
    if (u == NULL)
        return svc->cfg.allow_unknown_users ? SIP_USER_OK : SIP_USER_UNKNOWN;
    if (u->disabled)
        return SIP_USER_DISABLED;
    return u->chat_enabled ? SIP_USER_OK : SIP_USER_NO_CHAT;
}

/* An INFO that arrived before the session's metadata sync completed. */
struct chat_held {
    struct chat_held *next;
    struct sip_txn *txn;
    size_t len;
    char body[];
};

static void handle_info(struct chat_service *svc, struct chat_session *s, struct sip_txn *txn,
                        const char *body, size_t len);

static void session_synced(void *arg, const struct meta_result *res)
{
    (void)res;
    struct chat_session *s = arg;
    s->synced = true;
    struct chat_held *h;
    while ((h = s->held) != NULL) {
        s->held = h->next;
        if (s->dlg != NULL)
            handle_info(s->svc, s, h->txn, h->body, h->len);
        else
            sip_txn_reply(h->txn, 481, "The chat session has ended");
        pc_free(h);
    }
    s->held_tail = &s->held;
    chat_session_unref(s);
}

static bool password_ha1(void *ctx, const char *uri, char ha1[33])
{
    struct chat_service *svc = ctx;
    const struct meta_user *u = meta_user(cluster_meta(svc->cl), uri);
    return u != NULL && u->password_hash != NULL && chat_passwd_ha1(u->password_hash, ha1);
}

static int dialog_new(void *ctx, struct sip_dialog *dlg)
{
    struct chat_service *svc = ctx;
    if (!chat_limits_session_open(svc, sip_dialog_user(dlg))) {
        pc_notice("chat: %s already holds %u chat sessions on this node: one more refused",
                  sip_dialog_user(dlg), svc->cfg.max_sessions_per_user);
        return PC_EDENIED;
    }
    struct chat_session *s = pc_calloc(1, sizeof *s);
    s->svc = svc;
    s->dlg = dlg;
    s->id = ++svc->next_session_id;
    s->refs = 1;
    pc_strlcpy(s->user, sip_dialog_user(dlg), sizeof s->user);
    HASH_ADD(hh, svc->sessions, id, sizeof s->id, s);
    sip_dialog_set_data(dlg, s);
    svc->stats.sessions++;
    s->held_tail = &s->held;
    chat_session_ref(s); /* held by the sync until it completes */
    if (cluster_meta_sync(svc->cl, session_synced, s) != 0) {
        s->synced = true;
        chat_session_unref(s);
    }
    return 0;
}

static void dialog_end(void *ctx, struct sip_dialog *dlg)
{
    struct chat_service *svc = ctx;
    struct chat_session *s = sip_dialog_data(dlg);
    if (s == NULL)
        return;
    s->dlg = NULL;
    chat_session_leave_all(s);
    HASH_DEL(svc->sessions, s);
    svc->stats.sessions--;
    chat_limits_session_close(svc, s->user);
    chat_session_unref(s);
}

static void dispatch(struct chat_session *s, const struct xccos_msg *m)
{
    struct chat_cmd *cmd = chat_cmd_new(s, m);
    s->svc->stats.commands++;
    switch (m->op) {
    case XCCOS_OP_REQURI: chat_cmd_requri(cmd, m); break;
    case XCCOS_OP_GETSERVERINFO: chat_cmd_getserverinfo(cmd, m); break;
    case XCCOS_OP_CHANSRCH: chat_cmd_chansrch(cmd, m); break;
    case XCCOS_OP_GETASSOCIATIONS: chat_cmd_getassociations(cmd, m); break;
    case XCCOS_OP_GETINV: chat_cmd_getinv(cmd, m); break;
    case XCCOS_OP_JOIN:
    case XCCOS_OP_BJOIN: chat_cmd_join(cmd, m); return; /* frees cmd when done */
    case XCCOS_OP_PART: chat_cmd_part(cmd, m); return;
    case XCCOS_OP_BCCONTEXT: chat_cmd_bccontext(cmd, m); return;
    default:
        pc_info("chat: %s sent unknown command '%s'", s->user, cmd->op_name);
        chat_reply_error(cmd, XCCOS_RESP_BAD_REQUEST, XCCOS_ERR_UNKNOWN_COMMAND,
                         "this server does not implement that command");
    }
    chat_cmd_free(cmd);
}

static void info(void *ctx, struct sip_dialog *dlg, struct sip_txn *txn, const char *body,
                 size_t len)
{
    struct chat_service *svc = ctx;
    struct chat_session *s = sip_dialog_data(dlg);
    if (!s->synced) {
        struct chat_held *h = pc_malloc(sizeof *h + len + 1);
        h->next = NULL;
        h->txn = txn;
        h->len = len;
        memcpy(h->body, body, len);
        h->body[len] = '\0';
        *s->held_tail = h;
        s->held_tail = &h->next;
        return;
    }
    handle_info(svc, s, txn, body, len);
}

static void handle_info(struct chat_service *svc, struct chat_session *s, struct sip_txn *txn,
                        const char *body, size_t len)
{
    struct xccos_msg m;
    char err[160];
    int rc = xccos_decode(body, len, &xccos_default_limits, &m, err, sizeof err);
    if (rc != 0) {
        svc->stats.bad_xccos++;
        pc_warn("chat: bad XCCOS from %s at %s: %s", s->user, sip_dialog_peer(s->dlg), err);
        char reason[200];
        snprintf(reason, sizeof reason, "Malformed XCCOS: %s", err);
        sip_txn_reply(txn, rc == PC_ETOOBIG ? 413 : 400, reason);
        return;
    }
    if (m.kind == XCCOS_KIND_GRPCHAT) {
        /* The post's SIP answer is its verdict: sent once committed (or refused). */
        chat_post(s, txn, &m);
    } else if (m.kind == XCCOS_KIND_CMD) {
        sip_txn_reply(txn, 200, NULL);
        dispatch(s, &m);
    } else {
        sip_txn_reply(txn, 400, "Clients send commands and chat messages, not replies or notices");
    }
    xccos_msg_free(&m);
}

struct sip_handlers chat_sip_handlers(struct chat_service *svc)
{
    return (struct sip_handlers){.ctx = svc, .user_status = user_status,
                                 .password_ha1 = password_ha1, .dialog_new = dialog_new,
                                 .info = info, .dialog_end = dialog_end};
}

struct cluster_sink chat_cluster_sink(struct chat_service *svc)
{
    return (struct cluster_sink){.ctx = svc, .event = chat_room_event};
}

struct chat_service *chat_service_new(uv_loop_t *loop, const struct chat_config *cfg)
{
    struct chat_service *svc = pc_calloc(1, sizeof *svc);
    svc->loop = loop;
    svc->cfg = *cfg;
    return svc;
}

void chat_service_attach(struct chat_service *svc, struct cluster *cl)
{
    svc->cl = cl;
}

void chat_service_free(struct chat_service *svc)
{
    struct chat_room_subs *r, *tmp;
    HASH_ITER(hh, svc->subs, r, tmp) {
        HASH_DEL(svc->subs, r);
        pc_free(r->sessions);
        pc_free(r);
    }
    chat_limits_free(svc);
    pc_free(svc);
}

void chat_service_stats(const struct chat_service *svc, struct chat_stats *out)
{
    *out = svc->stats;
}
