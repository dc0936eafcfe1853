/* grpchat: a user posts into a room. */
#include <stdio.h>
#include <string.h>

#include "chat/chat_acl.h"
#include "chat/chat_int.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_str.h"

/* The post's fate is told by the SIP answer to its INFO (the only signal SIPE shows, XCCOS.md
 * §4.1), so that answer waits for the commit: 200 means the message is durable and was
 * delivered back to its author; 500 means the outcome is unknown (the owner failed
 * mid-replication); anything else means it was not stored. */
static void post_done(void *arg, const struct room_res *res)
{
    struct sip_txn *txn = arg;
    switch (res->status) {
    case 0:
        sip_txn_reply(txn, 200, NULL);
        break;
    case PC_ENOTFOUND:
        sip_txn_reply(txn, 404, "The room no longer exists");
        break;
    case PC_EUNKNOWN:
        /* The room's owner failed while the message was being replicated: it is either
         * committed (and will show in the room) or lost, and nobody can tell yet. */
        sip_txn_reply(txn, 500, "The room moved to another server while your message was in "
                                "flight; check the room before sending it again");
        break;
    case PC_EBUSY:
        /* The owner's queue of posts waiting for their commit is full ([cluster]
         * max_pending_posts): nothing was stored. */
        sip_txn_reply(txn, 503, "The chat server is busy: too many messages are waiting to be "
                                "stored; this one was not stored, send it again in a moment");
        break;
    case PC_ENOSPC:
        /* The owner's data disk is below its reserve (cluster/pool_disk.c): nothing was
         * stored. Retry-After comes with every 503. */
        sip_txn_reply(txn, 503, "Disk full: the chat server cannot store messages right now "
                                "and did not store this one; send it again later");
        break;
    default:
        sip_txn_reply(txn, 503, "The message could not be stored; please send it again");
    }
}

void chat_post(struct chat_session *s, struct sip_txn *txn, const struct xccos_msg *m)
{
    struct chat_service *svc = s->svc;
    const struct meta *meta = cluster_meta(svc->cl);
    const struct meta_room *rm = chat_room_by_uri(svc, m->chat.chan_uri);
    const char *why = NULL;
    int rc = chat_acl_check(meta, rm, s->user, CHAT_POST, &why);
    if (rc != 0) {
        svc->stats.posts_refused++;
        pc_info("chat: post by %s to %s refused: %s", s->user,
                m->chat.chan_uri ? m->chat.chan_uri : "(no room)", why ? why : "no such room");
        sip_txn_reply(txn, rc == PC_ENOTFOUND ? 404 : 403, rc == PC_ENOTFOUND ? "No such room" : why);
        return;
    }
    struct chat_joined *j = chat_joined_find(s, rm->no);
    if (j == NULL || !j->complete) {
        svc->stats.posts_refused++;
        sip_txn_reply(txn, 403, "Join the room before posting to it");
        return;
    }
    const char *text = m->chat.text != NULL ? m->chat.text : "";
    size_t chars = pc_utf8_count(text, strlen(text));
    if (chars == 0) {
        svc->stats.posts_refused++;
        sip_txn_reply(txn, 400, "Empty message");
        return;
    }
    if (chars > svc->cfg.message_max_chars) {
        svc->stats.posts_refused++;
        char why_buf[128];
        snprintf(why_buf, sizeof why_buf, "Message too long: %zu characters, the limit is %u",
                 chars, svc->cfg.message_max_chars);
        sip_txn_reply(txn, 413, why_buf);
        return;
    }
    if (!chat_limits_may_post(svc, s->user)) {
        svc->stats.posts_refused++;
        char why_buf[160];
        snprintf(why_buf, sizeof why_buf, "Posting too fast: at most %u messages per second "
                 "(bursts of %u); wait a moment", svc->cfg.post_rate, svc->cfg.post_burst);
        sip_txn_reply(txn, 503, why_buf);
        return;
    }
    /* The author is whoever the session authenticated as, whatever the XML claimed. */
    struct room_req req = {.kind = ROOM_REQ_POST, .room_no = rm->no, .user = s->user, .text = text};
    rc = cluster_room_submit(svc->cl, &req, post_done, txn);
    if (rc != 0) {
        svc->stats.posts_refused++;
        sip_txn_reply(txn, 503, "The chat service is busy; please send the message again");
        return;
    }
    svc->stats.posts_accepted++;
}
