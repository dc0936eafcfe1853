/* SUBSCRIBE: the in-band provisioning document that switches persistent chat on. */
#include <stdio.h>
#include <string.h>

#include "chat/sip/sip_int.h"
#include "chat/sip/sip_msg.h"
#include "common/pc_log.h"

#define PROVISIONING_EVENT "vnd-microsoft-provisioning-v2"
#define PROVISIONING_TYPE "application/vnd-microsoft-roaming-provisioning-v2+xml"

static void provisioning_document(struct sip_server *srv, bool enabled, struct pc_buf *doc)
{
    /* SIPE uses EnablePersistentChat's text raw (must be exactly "true") and takes
     * DefaultPersistentChatPoolUri; ServerConfiguration is omitted on purpose, since each of its
     * URLs makes SIPE start unrelated traffic (XCCOS.md §2.4). The domain and user come from
     * validated configuration and need no escaping. */
    pc_buf_printf(doc,
                  "<provisionGroupList xmlns=\"http://schemas.microsoft.com/2006/09/sip/"
                  "provisiongrouplist-notification\">"
                  "<provisionGroup name=\"persistentChatConfiguration\"><propertyEntryList>"
                  "<property name=\"EnablePersistentChat\">%s</property>"
                  "<property name=\"DefaultPersistentChatPoolUri\">%s</property>"
                  "<property name=\"PersistentChatPoolUris\">%s</property>"
                  "</propertyEntryList></provisionGroup></provisionGroupList>",
                  enabled ? "true" : "false", srv->chat_uri, srv->chat_uri);
}

void sip_handle_subscribe(struct sip_conn *c, osip_message_t *req)
{
    struct sip_server *srv = c->srv;
    const char *event = sip_msg_header(req, "Event");
    char user[SIP_URI_MAX];
    if (!sip_conn_identity(c, req, user, sizeof user)) {
        sip_server_reply(c, req, 403, "Register first", NULL);
        return;
    }
    if (event == NULL || strncmp(event, PROVISIONING_EVENT, strlen(PROVISIONING_EVENT)) != 0 ||
        (event[strlen(PROVISIONING_EVENT)] != '\0' && event[strlen(PROVISIONING_EVENT)] != ';')) {
        /* We only advertise provisioning-v2 in Allow-Events, so other packages are
         * unexpected; 489 is the standard "not supported" answer. */
        pc_debug("sip: SUBSCRIBE %s from %s: 489", event ? event : "(no Event)", user);
        sip_server_reply(c, req, 489, NULL, c->tag);
        return;
    }
    bool enabled = srv->h.user_status(srv->h.ctx, user) == SIP_USER_OK;
    /* Answered once, piggy-backed in the 200, with Expires 0: each further document would
     * make SIPE start group chat again (XCCOS.md §2.4). */
    osip_message_t *r = sip_msg_response(req, 200, NULL, c->tag);
    osip_message_set_header(r, "Event", PROVISIONING_EVENT);
    osip_message_set_header(r, "ms-piggyback-cseq", req->cseq->number);
    osip_message_set_header(r, "Expires", "0");
    char contact[SIP_URI_MAX + 32];
    snprintf(contact, sizeof contact, "<%s;transport=%s>", srv->chat_uri, sip_conn_transport_param(c));
    osip_message_set_header(r, "Contact", contact);
    struct pc_buf doc = {0};
    provisioning_document(srv, enabled, &doc);
    sip_msg_set_body(r, PROVISIONING_TYPE, doc.data, doc.len);
    struct pc_buf out = {0};
    if (sip_msg_serialize(r, &out) == 0)
        sip_conn_send_buf(c, &out);
    pc_buf_free(&out);
    pc_buf_free(&doc);
    osip_message_free(r);
    pc_info("sip: provisioned %s (persistent chat %s)", user, enabled ? "enabled" : "disabled");
}
