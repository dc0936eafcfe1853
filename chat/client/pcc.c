/* pcc: SIP/XCCOS client. The sign-in follows SIPE 1.25 step by step (XCCOS.md §2, §3.1). */
#include "chat/client/pcc.h"
#include "chat/sip/sip_digest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chat/sip/sip_frame.h"
#include "chat/sip/sip_msg.h"
#include "common/pc_alloc.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_rand.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

enum pcc_state {
    ST_CONNECTING,
    ST_REGISTERING,
    ST_PROVISIONING,
    ST_INVITE1,      /* phase 1: INVITE the pool URI */
    ST_REQURI,       /* waiting for rpl:requri */
    ST_INVITE2,      /* phase 2: INVITE the URI requri named */
    ST_READY,
    ST_CLOSED,
};

struct dialog {
    char call_id[40];
    char local_tag[20];
    char remote_to[400];     /* To header value with the server's tag */
    char target[300];        /* request-URI: the server's Contact */
    uint32_t cseq;
};

struct pcc {
    uv_loop_t *loop;
    struct pcc_config cfg;
    enum pcc_state state;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_timer_t timer;
    unsigned open_handles;
    bool freeing;
    char user[256];
    char domain[128];
    char chat_uri[256];
    char epid[16];
    char local_addr[64];
    char reg_call_id[40];
    uint32_t reg_cseq;
    char auth_header[1024];  /* Proxy-Authorization for the next REGISTER ("" = none) */
    unsigned challenges;
    char from_tag[20];
    struct dialog d1, d2;    /* phase-1 and phase-2 chat dialogs */
    uint64_t next_envid;
    struct pc_buf in;
    struct pc_buf oks;       /* 200s to the INFOs of one read, written once at its end */
    struct sip_framer framer;
    TAILQ_HEAD(, pcc_event) events;
};

struct write_req {
    uv_write_t req;
    char *data;
};

void pcc_event_free(struct pcc_event *ev)
{
    if (ev == NULL)
        return;
    if (ev->kind == PCC_EV_XCCOS)
        xccos_msg_free(&ev->msg);
    pc_free(ev);
}

static void emit(struct pcc *c, struct pcc_event *ev)
{
    ev->at_ns = pc_mono_ns();
    if (c->freeing) {
        pcc_event_free(ev);
        return;
    }
    if (c->cfg.on_event != NULL)
        c->cfg.on_event(c->cfg.ctx, c, ev);
    else
        TAILQ_INSERT_TAIL(&c->events, ev, link);
}

static void emit_simple(struct pcc *c, enum pcc_event_kind kind, int status, const char *reason)
{
    struct pcc_event *ev = pc_calloc(1, sizeof *ev);
    ev->kind = kind;
    ev->status = status;
    pc_strlcpy(ev->reason, reason ? reason : "", sizeof ev->reason);
    emit(c, ev);
}

struct pcc_event *pcc_next_event(struct pcc *c)
{
    struct pcc_event *ev = TAILQ_FIRST(&c->events);
    if (ev != NULL)
        TAILQ_REMOVE(&c->events, ev, link);
    return ev;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static void handle_closed(uv_handle_t *h)
{
    struct pcc *c = h->data;
    if (--c->open_handles > 0)
        return;
    struct pcc_event *ev;
    while ((ev = pcc_next_event(c)) != NULL)
        pcc_event_free(ev);
    pc_buf_free(&c->in);
    pc_buf_free(&c->oks);
    pc_free(c);
}

static void fail(struct pcc *c, int status, const char *why)
{
    if (c->state == ST_CLOSED)
        return;
    c->state = ST_CLOSED;
    uv_timer_stop(&c->timer);
    uv_read_stop((uv_stream_t *)&c->tcp);
    emit_simple(c, PCC_EV_CLOSED, status, why);
}

void pcc_close(struct pcc *c, bool abrupt)
{
    (void)abrupt;
    c->freeing = true;
    c->state = ST_CLOSED;
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, handle_closed);
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, handle_closed);
}

bool pcc_ready(const struct pcc *c)
{
    return c->state == ST_READY;
}

const char *pcc_user(const struct pcc *c)
{
    return c->user;
}

const char *pcc_chat_uri(const struct pcc *c)
{
    return c->chat_uri;
}

const char *pcc_domain(const struct pcc *c)
{
    return c->domain;
}

/* ---- output ---------------------------------------------------------------------------- */

static void write_done(uv_write_t *req, int status)
{
    (void)status;
    struct write_req *w = (struct write_req *)req;
    pc_free(w->data);
    pc_free(w);
}

static void send_buf(struct pcc *c, struct pc_buf *b)
{
    if (c->state == ST_CLOSED || uv_is_closing((uv_handle_t *)&c->tcp)) {
        pc_buf_free(b);
        return;
    }
    struct write_req *w = pc_calloc(1, sizeof *w);
    size_t len;
    w->data = pc_buf_steal(b, &len);
    uv_buf_t ub = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, write_done) != 0) {
        pc_free(w->data);
        pc_free(w);
    }
}

void pcc_send_raw(struct pcc *c, const void *data, size_t len)
{
    struct pc_buf b = {0};
    pc_buf_append(&b, data, len);
    send_buf(c, &b);
}

/* Common header block of SIPE's requests (XCCOS.md §1.3); branch only outside a dialog. */
static void request_head(struct pcc *c, struct pc_buf *b, const char *method, const char *ruri,
                         const char *call_id, uint32_t cseq, const char *from_tag,
                         const char *to, bool branch)
{
    char br[40] = "";
    if (branch) {
        char rnd[17];
        pc_random_hex(rnd, 8);
        snprintf(br, sizeof br, ";branch=z9hG4bK%s", rnd);
    }
    pc_buf_printf(b,
                  "%s %s SIP/2.0\r\n"
                  "Via: SIP/2.0/TCP %s%s\r\n"
                  "From: <%s>;tag=%s;epid=%s\r\n"
                  "To: %s\r\n"
                  "Max-Forwards: 70\r\n"
                  "CSeq: %u %s\r\n"
                  "User-Agent: pchat/0.1\r\n"
                  "Call-ID: %s\r\n",
                  method, ruri, c->local_addr, br, c->user, from_tag, c->epid, to, cseq, method,
                  call_id);
}

static void finish(struct pcc *c, struct pc_buf *b, const char *ctype, const char *body, size_t len)
{
    if (ctype != NULL)
        pc_buf_printf(b, "Content-Type: %s\r\n", ctype);
    pc_buf_printf(b, "Content-Length: %zu\r\n\r\n", len);
    if (len > 0)
        pc_buf_append(b, body, len);
    send_buf(c, b);
}

static void send_register(struct pcc *c, unsigned expires)
{
    struct pc_buf b = {0};
    char to[300];
    snprintf(to, sizeof to, "<%s>", c->user);
    char ruri[200];
    snprintf(ruri, sizeof ruri, "sip:%s", c->domain);
    request_head(c, &b, "REGISTER", ruri, c->reg_call_id, ++c->reg_cseq, c->from_tag, to, true);
    pc_buf_printf(&b,
                  "Contact: <sip:%s;transport=tcp;ms-opaque=d3470f2e1d>;methods=\"INVITE, MESSAGE, "
                  "INFO, SUBSCRIBE, OPTIONS, BYE, CANCEL, NOTIFY, ACK, REFER, BENOTIFY\";proxy=replace;"
                  "+sip.instance=\"<urn:uuid:4c1d7a52-0b9e-5d33-8f21-%s>\"\r\n"
                  "Supported: gruu-10, adhoclist, msrtc-event-categories, com.microsoft.msrtc.presence\r\n"
                  "Event: registration\r\nAllow-Events: presence\r\nms-keep-alive: UAC;hop-hop=yes\r\n",
                  c->local_addr, c->epid);
    if (expires == 0)
        pc_buf_puts(&b, "Expires: 0\r\n");
    if (c->auth_header[0] != '\0')
        pc_buf_printf(&b, "Proxy-Authorization: %s\r\n", c->auth_header);
    finish(c, &b, NULL, NULL, 0);
}

/* Answers a 407 Digest challenge to REGISTER (RFC 2617, qop=auth), as SIPE does; false
 * when there is no password or no usable challenge. */
static bool answer_challenge(struct pcc *c, osip_message_t *m)
{
    osip_proxy_authenticate_t *pa = NULL;
    osip_message_get_proxy_authenticate(m, 0, &pa);
    if (c->cfg.password == NULL || pa == NULL || ++c->challenges > 3)
        return false;
    char realm[128], nonce[128], qop[32], cnonce[17], ha1[SIP_DIGEST_HEX], resp[SIP_DIGEST_HEX];
    sip_digest_unquote(osip_proxy_authenticate_get_realm(pa), realm, sizeof realm);
    sip_digest_unquote(osip_proxy_authenticate_get_nonce(pa), nonce, sizeof nonce);
    sip_digest_unquote(osip_proxy_authenticate_get_qop_options(pa), qop, sizeof qop);
    const char *bare = strncmp(c->user, "sip:", 4) == 0 ? c->user + 4 : c->user;
    pc_random_hex(cnonce, 8);
    char uri[200];
    snprintf(uri, sizeof uri, "sip:%s", c->domain);
    sip_digest_ha1(bare, realm, c->cfg.password, ha1);
    sip_digest_response(ha1, nonce, "00000001", cnonce, qop[0] ? "auth" : NULL, "REGISTER", uri, resp);
    if (qop[0] != '\0')
        snprintf(c->auth_header, sizeof c->auth_header,
                 "Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", "
                 "response=\"%s\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"%s\"",
                 bare, realm, nonce, uri, resp, cnonce);
    else
        snprintf(c->auth_header, sizeof c->auth_header,
                 "Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", "
                 "response=\"%s\", algorithm=MD5", bare, realm, nonce, uri, resp);
    send_register(c, 3600);
    return true;
}

static void send_subscribe(struct pcc *c)
{
    static const char doc[] =
        "<provisioningGroupList xmlns=\"http://schemas.microsoft.com/2006/09/sip/provisioninggrouplist\">"
        " <provisioningGroup name=\"ServerConfiguration\"/> <provisioningGroup name=\"meetingPolicy\"/>"
        " <provisioningGroup name=\"persistentChatConfiguration\"/> <provisioningGroup name=\"ucPolicy\"/>"
        "</provisioningGroupList>";
    struct pc_buf b = {0};
    char to[300], cid[40], tag[17];
    snprintf(to, sizeof to, "<%s>", c->user);
    pc_random_hex(cid, 16);
    pc_random_hex(tag, 8);
    request_head(c, &b, "SUBSCRIBE", c->user, cid, 1, tag, to, true);
    pc_buf_printf(&b,
                  "Event: vnd-microsoft-provisioning-v2\r\n"
                  "Accept: application/vnd-microsoft-roaming-provisioning-v2+xml\r\n"
                  "Supported: com.microsoft.autoextend\r\nSupported: ms-benotify\r\n"
                  "Proxy-Require: ms-benotify\r\nSupported: ms-piggyback-first-notify\r\n"
                  "Expires: 0\r\nContact: <%s;opaque=user:epid:%s;gruu>\r\n",
                  c->user, c->epid);
    finish(c, &b, "application/vnd-microsoft-roaming-provisioning-v2+xml", doc, sizeof doc - 1);
}

static void send_invite(struct pcc *c, struct dialog *d, const char *uri)
{
    memset(d, 0, sizeof *d);
    pc_random_hex(d->call_id, 16);
    pc_random_hex(d->local_tag, 8);
    snprintf(d->target, sizeof d->target, "%s", uri);
    d->cseq = 1;
    static const char sdp[] = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\n"
                              "t=0 0\r\nm=message 5060 sip null\r\n"
                              "a=accept-types:text/plain text/html application/im-iscomposing+xml\r\n";
    struct pc_buf b = {0};
    char to[300];
    snprintf(to, sizeof to, "<%s>", uri);
    request_head(c, &b, "INVITE", uri, d->call_id, 1, d->local_tag, to, false);
    pc_buf_printf(&b, "Supported: ms-sender\r\nContact: <%s;opaque=user:epid:%s;gruu>\r\n", c->user,
                  c->epid);
    finish(c, &b, "application/sdp", sdp, sizeof sdp - 1);
}

static void send_in_dialog(struct pcc *c, struct dialog *d, const char *method, uint32_t cseq,
                           const char *ctype, const char *body, size_t len)
{
    struct pc_buf b = {0};
    request_head(c, &b, method, d->target, d->call_id, cseq, d->local_tag, d->remote_to, false);
    finish(c, &b, ctype, body, len);
}

uint32_t pcc_send(struct pcc *c, struct xccos_msg *m, char *envid_out)
{
    if (c->state != ST_READY && !(c->state == ST_REQURI && m->op == XCCOS_OP_REQURI))
        return 0;
    struct dialog *d = c->state == ST_READY ? &c->d2 : &c->d1;
    char envid[24];
    snprintf(envid, sizeof envid, "%llu", (unsigned long long)++c->next_envid);
    m->envid = envid;
    if (m->seqid == NULL)
        m->seqid = "1";
    struct pc_buf body = {0};
    xccos_encode(m, &body);
    m->envid = NULL;
    uint32_t cseq = ++d->cseq;
    send_in_dialog(c, d, "INFO", cseq, "text/plain", body.data, body.len);
    pc_buf_free(&body);
    if (envid_out != NULL)
        memcpy(envid_out, envid, strlen(envid) + 1);
    return cseq;
}

uint32_t pcc_send_body(struct pcc *c, const void *body, size_t len)
{
    if (c->state != ST_READY)
        return 0;
    uint32_t cseq = ++c->d2.cseq;
    send_in_dialog(c, &c->d2, "INFO", cseq, "text/plain", body, len);
    return cseq;
}

/* ---- conveniences -------------------------------------------------------------------------- */

uint32_t pcc_simple(struct pcc *c, enum xccos_op op, char *envid_out)
{
    struct xccos_msg m;
    xccos_msg_init(&m, XCCOS_KIND_CMD, op);
    if (op == XCCOS_OP_GETINV || op == XCCOS_OP_GETSERVERINFO)
        m.domain = c->domain;
    if (op == XCCOS_OP_GETSERVERINFO)
        m.server.info_type = "123";
    uint32_t r = pcc_send(c, &m, envid_out);
    xccos_msg_free(&m);
    return r;
}

uint32_t pcc_join(struct pcc *c, const char *const *uris, size_t n, char *envid_out)
{
    struct xccos_msg m;
    xccos_msg_init(&m, XCCOS_KIND_CMD, n == 1 ? XCCOS_OP_JOIN : XCCOS_OP_BJOIN);
    m.chanids = pc_arena_alloc(&m.arena, (n + 1) * sizeof *m.chanids);
    for (size_t i = 0; i < n; i++) {
        const char *dom = "", *id = "";
        if (!xccos_split_chan_uri(uris[i], &m.arena, &dom, &id))
            dom = id = "";
        m.chanids[i].domain = dom;
        m.chanids[i].value = id;
    }
    m.n_chanids = n;
    uint32_t r = pcc_send(c, &m, envid_out);
    xccos_msg_free(&m);
    return r;
}

uint32_t pcc_part(struct pcc *c, const char *room_uri, char *envid_out)
{
    struct xccos_msg m;
    xccos_msg_init(&m, XCCOS_KIND_CMD, XCCOS_OP_PART);
    m.chan_uri = room_uri;
    uint32_t r = pcc_send(c, &m, envid_out);
    xccos_msg_free(&m);
    return r;
}

uint32_t pcc_history(struct pcc *c, const char *room_uri, unsigned count, uint64_t before,
                     char *envid_out)
{
    struct xccos_msg m;
    xccos_msg_init(&m, XCCOS_KIND_CMD, XCCOS_OP_BCCONTEXT);
    m.chan_uri = room_uri;
    m.history_count = count;
    m.history_before = before;
    uint32_t r = pcc_send(c, &m, envid_out);
    xccos_msg_free(&m);
    return r;
}

uint32_t pcc_search(struct pcc *c, const char *criteria, char *envid_out)
{
    struct xccos_msg m;
    xccos_msg_init(&m, XCCOS_KIND_CMD, XCCOS_OP_CHANSRCH);
    m.query = criteria;
    m.query_type = "BYNAME";
    uint32_t r = pcc_send(c, &m, envid_out);
    xccos_msg_free(&m);
    return r;
}

static uint32_t post(struct pcc *c, const char *room_uri, const char *text, bool story)
{
    struct xccos_msg m;
    xccos_msg_init(&m, XCCOS_KIND_GRPCHAT, XCCOS_OP_GRPCHAT);
    m.chat.chan_uri = room_uri;
    m.chat.author = c->user;
    m.chat.text = text;
    m.chat.story = story;
    /* SIPE sends whole seconds; the server replaces the time anyway. */
    m.chat.ts_us = pc_wall_us() / 1000000 * 1000000;
    uint32_t r = pcc_send(c, &m, NULL);
    xccos_msg_free(&m);
    return r;
}

uint32_t pcc_post(struct pcc *c, const char *room_uri, const char *text)
{
    return post(c, room_uri, text, false);
}

uint32_t pcc_post_story(struct pcc *c, const char *room_uri, const char *text)
{
    return post(c, room_uri, text, true);
}

/* ---- input ------------------------------------------------------------------------------- */

static void reply_ok(struct pcc *c, osip_message_t *req)
{
    osip_message_t *r = sip_msg_response(req, 200, NULL, NULL);
    struct pc_buf b = {0};
    if (sip_msg_serialize(r, &b) == 0)
        send_buf(c, &b);
    pc_buf_free(&b);
    osip_message_free(r);
}

static bool call_is(const osip_message_t *m, const char *cid)
{
    return m->call_id != NULL && m->call_id->number != NULL && strcmp(m->call_id->number, cid) == 0;
}

/* Records the server's To (with tag) and Contact from a 200 to our INVITE, then ACKs. */
static void dialog_confirmed(struct pcc *c, struct dialog *d, osip_message_t *m)
{
    char *to = NULL;
    osip_to_to_str(m->to, &to);
    snprintf(d->remote_to, sizeof d->remote_to, "%s", to ? to : "");
    osip_free(to);
    osip_contact_t *ct = NULL;
    if (osip_message_get_contact(m, 0, &ct) >= 0 && ct != NULL && ct->url != NULL) {
        char *u = NULL;
        osip_uri_to_str(ct->url, &u);
        if (u != NULL)
            snprintf(d->target, sizeof d->target, "%s", u);
        osip_free(u);
    }
    send_in_dialog(c, d, "ACK", 1, NULL, NULL, 0);
}

static void provisioning(struct pcc *c, osip_message_t *m)
{
    size_t len;
    const char *body = sip_msg_body(m, &len);
    char *doc = pc_strndup(body ? body : "", body ? len : 0);
    /* The document is tiny; a search for the two properties SIPE reads is enough here. */
    bool enabled = strstr(doc, "\"EnablePersistentChat\">true<") != NULL;
    const char *key = "\"DefaultPersistentChatPoolUri\">";
    const char *p = strstr(doc, key);
    if (p != NULL) {
        p += strlen(key);
        const char *e = strchr(p, '<');
        if (e != NULL && (size_t)(e - p) < sizeof c->chat_uri)
            snprintf(c->chat_uri, sizeof c->chat_uri, "%.*s", (int)(e - p), p);
    }
    pc_free(doc);
    if (!enabled || c->chat_uri[0] == '\0') {
        fail(c, PC_EDISABLED, "persistent chat is not enabled for this user");
        return;
    }
    c->state = ST_INVITE1;
    send_invite(c, &c->d1, c->chat_uri);
}

static const char *reason_of(osip_message_t *m, char *buf, size_t cap)
{
    const char *diag = sip_msg_header(m, "ms-diagnostics");
    const char *r = diag != NULL ? strstr(diag, "reason=\"") : NULL;
    if (r != NULL) {
        r += 8;
        const char *e = strchr(r, '"');
        snprintf(buf, cap, "%.*s", e ? (int)(e - r) : (int)strlen(r), r);
    } else {
        snprintf(buf, cap, "%s", m->reason_phrase ? m->reason_phrase : "");
    }
    return buf;
}

static void on_response(struct pcc *c, osip_message_t *m)
{
    int code = m->status_code;
    const char *method = m->cseq->method;
    char why[200], detail[100];
    if (code < 200)
        return;
    if (strcmp(method, "REGISTER") == 0 && c->state == ST_REGISTERING) {
        if (code == 407 && answer_challenge(c, m))
            return;
        if (code != 200) {
            snprintf(why, sizeof why, "sign-in refused: %d %s", code, reason_of(m, detail, sizeof detail));
            fail(c, code == 404 ? PC_ENOTFOUND : PC_EDENIED, why);
            return;
        }
        c->state = ST_PROVISIONING;
        send_subscribe(c);
    } else if (strcmp(method, "SUBSCRIBE") == 0 && c->state == ST_PROVISIONING) {
        if (code != 200) {
            fail(c, PC_EPROTO, "provisioning refused");
            return;
        }
        provisioning(c, m);
    } else if (strcmp(method, "INVITE") == 0) {
        struct dialog *d = call_is(m, c->d1.call_id) ? &c->d1 : &c->d2;
        if (code != 200) {
            snprintf(why, sizeof why, "chat session refused: %d %s", code,
                     reason_of(m, detail, sizeof detail));
            fail(c, code == 503 ? PC_EBUSY : PC_EDENIED, why);
            return;
        }
        dialog_confirmed(c, d, m);
        if (c->state == ST_INVITE1 && !c->cfg.lync_flow) {
            c->state = ST_REQURI;
            pcc_simple(c, XCCOS_OP_REQURI, NULL);
        } else if (c->state == ST_INVITE1 || c->state == ST_INVITE2) {
            if (c->state == ST_INVITE1)
                c->d2 = c->d1;
            c->state = ST_READY;
            uv_timer_stop(&c->timer);
            emit_simple(c, PCC_EV_READY, 0, NULL);
        }
    } else if (strcmp(method, "INFO") == 0 && c->state == ST_READY && call_is(m, c->d2.call_id)) {
        struct pcc_event *ev = pc_calloc(1, sizeof *ev);
        ev->kind = PCC_EV_SIP_RESPONSE;
        ev->status = code;
        unsigned long long cs = 0;
        pc_parse_u64(m->cseq->number, 0, 0xffffffffu, &cs);
        ev->cseq = (uint32_t)cs;
        reason_of(m, ev->reason, sizeof ev->reason);
        emit(c, ev);
    }
}

static void on_xccos(struct pcc *c, const char *body, size_t len)
{
    struct pcc_event *ev = pc_calloc(1, sizeof *ev);
    ev->kind = PCC_EV_XCCOS;
    char err[160];
    if (xccos_decode(body, len, &xccos_default_limits, &ev->msg, err, sizeof err) != 0) {
        pc_warn("pcc: undecodable XCCOS from the server: %s", err);
        pc_free(ev);
        return;
    }
    if (c->state == ST_REQURI && ev->msg.kind == XCCOS_KIND_RPL && ev->msg.op == XCCOS_OP_REQURI) {
        /* SIPE's two-step: leave the lookup dialog, INVITE the URI we were given. */
        const char *uri = ev->msg.uri != NULL ? ev->msg.uri : c->chat_uri;
        char target[256];
        snprintf(target, sizeof target, "%s", uri);
        send_in_dialog(c, &c->d1, "BYE", ++c->d1.cseq, NULL, NULL, 0);
        c->state = ST_INVITE2;
        send_invite(c, &c->d2, target);
        pcc_event_free(ev);
        return;
    }
    emit(c, ev);
}

static void on_request(struct pcc *c, osip_message_t *m)
{
    const char *method = m->sip_method; /* INFOs never get here: read_cb answers them */
    if (strcmp(method, "BYE") == 0) {
        reply_ok(c, m);
        if (call_is(m, c->d2.call_id))
            fail(c, PC_ECLOSED, "the server ended the chat session");
    } else if (strcmp(method, "ACK") != 0) {
        reply_ok(c, m);
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct pcc *c = h->data;
    pc_buf_reserve(&c->in, 16384);
    buf->base = c->in.data + c->in.len;
    buf->len = c->in.cap - c->in.len - 1;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct pcc *c = s->data;
    if (nread < 0) {
        fail(c, PC_ECLOSED, nread == UV_EOF ? "server closed the connection" : uv_strerror((int)nread));
        return;
    }
    c->in.len += (size_t)nread;
    const struct sip_frame_limits lim = {1 << 20, 16 << 20};
    while (c->state != ST_CLOSED) {
        struct sip_frame f;
        int rc = sip_frame_next(&c->framer, c->in.data, c->in.len, &lim, &f);
        if (rc == PC_EAGAIN)
            break;
        if (rc != 0) {
            fail(c, PC_EPROTO, "unparsable stream from the server");
            return;
        }
        size_t len = f.header_len + f.body_len;
        const char *msg = c->in.data + f.skip;
        osip_message_t *m = NULL;
        char err[128];
        if (len > 5 && memcmp(msg, "INFO ", 5) == 0) {
            /* A delivery: answered from its raw text, only the body decoded. libosip2's
             * parse and answer took a third of a load generator's time per delivery, and a
             * write per 200 another quarter. */
            if (!c->cfg.no_auto_ok) {
                sip_msg_raw_response_head(&c->oks, msg, len, 200, "OK");
                pc_buf_puts(&c->oks, "Content-Length: 0\r\n\r\n");
            }
            const char *body = msg + f.header_len;
            if (f.body_len > 0 &&
                (c->cfg.on_info_body == NULL ||
                 !c->cfg.on_info_body(c->cfg.ctx, body, f.body_len, pc_mono_ns())))
                on_xccos(c, body, f.body_len);
        } else if (sip_msg_parse(msg, len, &m, err, sizeof err) == 0) {
            if (MSG_IS_RESPONSE(m))
                on_response(c, m);
            else
                on_request(c, m);
            osip_message_free(m);
        } else {
            pc_warn("pcc: bad SIP message from the server: %s", err);
        }
        pc_buf_consume(&c->in, f.skip + len);
    }
    if (c->oks.len > 0)
        send_buf(c, &c->oks);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct pcc *c = req->data;
    if (c->freeing)
        return;
    if (status != 0) {
        char why[128];
        snprintf(why, sizeof why, "cannot connect to %s:%d: %s", c->cfg.host, c->cfg.port,
                 uv_strerror(status));
        fail(c, PC_ECLOSED, why);
        return;
    }
    struct sockaddr_in sin;
    int len = sizeof sin;
    char ip[INET_ADDRSTRLEN] = "127.0.0.1";
    if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&sin, &len) == 0)
        uv_ip4_name(&sin, ip, sizeof ip);
    snprintf(c->local_addr, sizeof c->local_addr, "%s:%d", ip, ntohs(sin.sin_port));
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    c->state = ST_REGISTERING;
    send_register(c, 3600);
}

static void on_timeout(uv_timer_t *t)
{
    struct pcc *c = t->data;
    fail(c, PC_ETIMEDOUT, "sign-in did not complete in time");
}

struct pcc *pcc_start(uv_loop_t *loop, const struct pcc_config *cfg)
{
    sip_msg_global_init();
    struct pcc *c = pc_calloc(1, sizeof *c);
    c->loop = loop;
    c->cfg = *cfg;
    TAILQ_INIT(&c->events);
    if (strncasecmp(cfg->user, "sip:", 4) == 0)
        snprintf(c->user, sizeof c->user, "%s", cfg->user);
    else
        snprintf(c->user, sizeof c->user, "sip:%s", cfg->user);
    pc_str_lower(c->user);
    const char *at = strchr(c->user, '@');
    snprintf(c->domain, sizeof c->domain, "%s", at ? at + 1 : "");
    pc_random_hex(c->epid, 6);
    pc_random_hex(c->reg_call_id, 16);
    pc_random_hex(c->from_tag, 8);
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->connect_req.data = c;
    /* Timers count from the loop's cached time, which is stale when the caller has been
     * busy away from the loop (a test doing blocking I/O): the sign-in would then time out
     * before it started. */
    uv_update_time(loop);
    uv_timer_start(&c->timer, on_timeout, cfg->timeout_ms ? cfg->timeout_ms : 10000, 0);
    struct sockaddr_in addr;
    int rc = uv_ip4_addr(cfg->host, cfg->port, &addr);
    if (rc == 0)
        rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&addr, on_connect);
    if (rc != 0) {
        c->state = ST_CLOSED;
        emit_simple(c, PCC_EV_CLOSED, PC_EINVAL, "bad server address");
    }
    if (at == NULL) {
        fail(c, PC_EINVAL, "user must be user@domain");
    }
    return c;
}
