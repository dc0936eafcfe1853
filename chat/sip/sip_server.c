/* Request dispatch by method, generic replies, identity of a connection. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "chat/sip/sip_int.h"
#include "chat/sip/sip_msg.h"
#include "common/pc_log.h"
#include "common/pc_rand.h"
#include "common/pc_str.h"

#define ALLOW_METHODS "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, REGISTER, SUBSCRIBE"

void sip_server_reply(struct sip_conn *c, const osip_message_t *req, int code,
                      const char *reason, const char *to_tag)
{
    osip_message_t *r = sip_msg_response(req, code, reason, to_tag);
    if (code == 503) {
        char ra[16];
        snprintf(ra, sizeof ra, "%u", c->srv->cfg.retry_after_s);
        osip_message_set_header(r, "Retry-After", ra);
        c->srv->stats.replies_503++;
    }
    if (code == 405)
        osip_message_set_header(r, "Allow", ALLOW_METHODS);
    if (code >= 400 && reason != NULL && strcmp(reason, sip_reason(code)) != 0) {
        /* ms-diagnostics carries the reason SIPE shows in its error dialogs. */
        char diag[300];
        snprintf(diag, sizeof diag, "%d;reason=\"%.200s\";source=\"%s\"", 20000 + code % 1000,
                 reason, c->srv->cfg.domain);
        for (char *p = diag; *p; p++)
            if (*p == '\r' || *p == '\n')
                *p = ' ';
        osip_message_set_header(r, "ms-diagnostics", diag);
    }
    struct pc_buf out = {0};
    if (sip_msg_serialize(r, &out) == 0)
        sip_conn_send_buf(c, &out);
    pc_buf_free(&out);
    osip_message_free(r);
}

void sip_server_reply_unparsable(struct sip_conn *c, const char *buf, size_t len, int code,
                                 const char *reason)
{
    /* Only requests get an answer; a broken response is just logged. */
    if (len < 8 || strncmp(buf, "SIP/", 4) == 0)
        return;
    struct pc_buf out = {0};
    sip_msg_raw_response_head(&out, buf, len, code, sip_reason(code));
    char warn[256];
    snprintf(warn, sizeof warn, "399 %s \"%s\"", c->srv->cfg.domain, reason);
    pc_buf_printf(&out, "Warning: %s\r\nContent-Length: 0\r\n\r\n", warn);
    sip_conn_send_buf(c, &out);
    pc_buf_free(&out);
}

bool sip_conn_identity(struct sip_conn *c, const osip_message_t *req, char *buf, size_t cap)
{
    if (c->registered)
        return pc_strlcpy(buf, c->user, cap);
    /* Without a registration (SIPp scripts, Lync edge cases) the From URI stands for the
     * user, but only inside our own domain. */
    char from[SIP_URI_MAX];
    if (!sip_msg_uri_user_host(req->from->url, from, sizeof from))
        return false;
    const char *at = strchr(from, '@');
    if (at == NULL || strcasecmp(at + 1, c->srv->cfg.domain) != 0)
        return false;
    return pc_strlcpy(buf, from, cap);
}

static void handle_options(struct sip_conn *c, osip_message_t *req)
{
    osip_message_t *r = sip_msg_response(req, 200, NULL, NULL);
    osip_message_set_header(r, "Allow", ALLOW_METHODS);
    osip_message_set_header(r, "Accept", "text/plain, application/sdp");
    osip_message_set_header(r, "Supported", "timer");
    struct pc_buf out = {0};
    if (sip_msg_serialize(r, &out) == 0)
        sip_conn_send_buf(c, &out);
    pc_buf_free(&out);
    osip_message_free(r);
}

void sip_server_dispatch(struct sip_conn *c, osip_message_t *msg)
{
    if (MSG_IS_RESPONSE(msg)) {
        sip_handle_response(c, msg);
        return;
    }
    const char *m = msg->sip_method;
    if (strcmp(m, "REGISTER") == 0)
        sip_handle_register(c, msg);
    else if (strcmp(m, "SUBSCRIBE") == 0)
        sip_handle_subscribe(c, msg);
    else if (strcmp(m, "INVITE") == 0)
        sip_handle_invite(c, msg);
    else if (strcmp(m, "ACK") == 0 || strcmp(m, "BYE") == 0 || strcmp(m, "INFO") == 0 ||
             strcmp(m, "UPDATE") == 0 || strcmp(m, "CANCEL") == 0)
        sip_handle_in_dialog(c, msg);
    else if (strcmp(m, "OPTIONS") == 0)
        handle_options(c, msg);
    else if (strcmp(m, "SERVICE") == 0 || strcmp(m, "NOTIFY") == 0)
        /* Lync publishes presence with SERVICE; nothing here needs it, and refusing it
         * makes clients show errors. */
        sip_server_reply(c, msg, 200, NULL, NULL);
    else if (strcmp(m, "MESSAGE") == 0 || strcmp(m, "PUBLISH") == 0 || strcmp(m, "REFER") == 0)
        sip_server_reply(c, msg, 405, NULL, NULL);
    else
        sip_server_reply(c, msg, 501, NULL, NULL);
}
