/* REGISTER: binds a user to the connection and answers with what SIPE and Lync need. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "chat/sip/sip_int.h"
#include "chat/sip/sip_msg.h"
#include "common/pc_log.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

/* Requested lifetime: Expires header, else the first Contact's expires parameter, else -1. */
static long requested_expires(const osip_message_t *req)
{
    unsigned long long v;
    const char *e = sip_msg_header(req, "Expires");
    if (e != NULL && pc_parse_u64(e, 0, 0x7fffffff, &v))
        return (long)v;
    osip_contact_t *ct = NULL;
    osip_generic_param_t *p = NULL;
    if (osip_message_get_contact(req, 0, &ct) >= 0 && ct != NULL &&
        osip_contact_param_get_byname(ct, "expires", &p) >= 0 && p != NULL && p->gvalue != NULL &&
        pc_parse_u64(p->gvalue, 0, 0x7fffffff, &v))
        return (long)v;
    return -1;
}

/* Echoes the client's Contact with our expiry and, when it names a +sip.instance, a GRUU:
 * SIPE then uses that GRUU as its Contact (XCCOS.md §2.1). */
static void add_contact(osip_message_t *r, const osip_message_t *req, const char *user,
                        unsigned expires)
{
    osip_contact_t *ct = NULL;
    if (osip_message_get_contact(req, 0, &ct) < 0 || ct == NULL || ct->url == NULL)
        return;
    char *s = NULL;
    if (osip_contact_to_str(ct, &s) != 0 || s == NULL)
        return;
    struct pc_buf v = {0};
    pc_buf_puts(&v, s);
    osip_free(s);
    osip_generic_param_t *inst = NULL;
    if (osip_contact_param_get_byname(ct, "expires", &inst) < 0)
        pc_buf_printf(&v, ";expires=%u", expires);
    inst = NULL;
    if (osip_contact_param_get_byname(ct, "+sip.instance", &inst) >= 0 && inst != NULL &&
        inst->gvalue != NULL) {
        char epid[32] = "0";
        osip_generic_param_t *ep = NULL;
        if (osip_from_param_get_byname(req->from, "epid", &ep) >= 0 && ep != NULL &&
            ep->gvalue != NULL)
            pc_strlcpy(epid, ep->gvalue, sizeof epid);
        for (char *p = epid; *p; p++)
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
                *p = 'x';
        pc_buf_printf(&v, ";gruu=\"%s;opaque=user:epid:%s;gruu\"", user, epid);
    }
    osip_message_set_header(r, "Contact", v.data);
    pc_buf_free(&v);
}

void sip_handle_register(struct sip_conn *c, osip_message_t *req)
{
    struct sip_server *srv = c->srv;
    char user[SIP_URI_MAX];
    if (!sip_msg_uri_user_host(req->to->url, user, sizeof user)) {
        sip_server_reply(c, req, 400, "To is not a sip: URI with a user part", c->tag);
        return;
    }
    const char *at = strchr(user, '@');
    if (at == NULL || strcasecmp(at + 1, srv->cfg.domain) != 0) {
        pc_info("sip: REGISTER for %s refused: not in domain %s", user, srv->cfg.domain);
        sip_server_reply(c, req, 403, "This server only serves its own SIP domain", c->tag);
        return;
    }
    if (c->registered && strcmp(c->user, user) != 0) {
        sip_server_reply(c, req, 403, "This connection is already signed in as another user",
                         c->tag);
        return;
    }
    long expires = requested_expires(req);
    if (expires == 0) {
        c->registered = false;
        osip_message_t *r = sip_msg_response(req, 200, NULL, c->tag);
        osip_message_set_header(r, "Expires", "0");
        struct pc_buf out = {0};
        if (sip_msg_serialize(r, &out) == 0)
            sip_conn_send_buf(c, &out);
        pc_buf_free(&out);
        osip_message_free(r);
        pc_info("sip: %s signed out from %s", user, c->peer);
        return;
    }
    /* Who is asking is settled before anything about the account is revealed. */
    if (!sip_auth_register(c, req, user))
        return;
    switch (srv->h.user_status(srv->h.ctx, user)) {
    case SIP_USER_UNKNOWN:
        pc_info("sip: REGISTER from %s for unknown user %s", c->peer, user);
        sip_server_reply(c, req, 404, "No such user on this server", c->tag);
        return;
    case SIP_USER_DISABLED:
        pc_info("sip: REGISTER from %s for disabled user %s", c->peer, user);
        sip_server_reply(c, req, 403, "Your account is disabled; ask your administrator", c->tag);
        return;
    default:
        break;
    }
    unsigned granted = srv->cfg.register_expires_s;
    if (expires > 0 && (unsigned long)expires < granted)
        granted = expires < 60 ? 60 : (unsigned)expires;
    pc_strlcpy(c->user, user, sizeof c->user);
    c->registered = true;
    c->reg_expires_ms = pc_mono_ms() + granted * 1000ull;

    osip_message_t *r = sip_msg_response(req, 200, NULL, c->tag);
    char num[64];
    add_contact(r, req, user, granted);
    snprintf(num, sizeof num, "%u", granted);
    osip_message_set_header(r, "Expires", num);
    /* Each of these must be its own line, written exactly so (XCCOS.md §1.2, §2.1). */
    osip_message_set_header(r, "Allow-Events", "vnd-microsoft-provisioning-v2");
    osip_message_set_header(r, "Supported", "msrtc-event-categories");
    osip_message_set_header(r, "Supported", "adhoclist");
    snprintf(num, sizeof num, "UAS; tcp=no; hop-hop=yes; end-end=no; timeout=%u",
             srv->cfg.keepalive_s);
    osip_message_set_header(r, "ms-keep-alive", num);
    osip_message_set_header(r, "Server", "RTC/5.0 pchatd/0.1");
    struct pc_buf out = {0};
    if (sip_msg_serialize(r, &out) == 0)
        sip_conn_send_buf(c, &out);
    pc_buf_free(&out);
    osip_message_free(r);
    pc_info("sip: %s registered from %s for %us", user, c->peer, granted);
}
