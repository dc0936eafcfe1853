/* grpchat: a user posts into a room. */
#include <stdio.h>
#include <string.h>

#include "chat/chat_acl.h"
#include "chat/chat_int.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_str.h"

static const char *const refusal_names[CHAT_REFUSED_COUNT] = {
    [CHAT_REFUSED_NO_ROOM] = "no_room",       [CHAT_REFUSED_NOT_ALLOWED] = "not_allowed",
    [CHAT_REFUSED_NOT_JOINED] = "not_joined", [CHAT_REFUSED_EMPTY] = "empty",
    [CHAT_REFUSED_TOO_LARGE] = "too_large",   [CHAT_REFUSED_RATE_LIMIT] = "rate_limit",
    [CHAT_REFUSED_QUEUE_FULL] = "queue_full", [CHAT_REFUSED_DISK_FULL] = "disk_full",
    [CHAT_REFUSED_FAILED] = "failed",
};

const char *chat_refusal_name(enum chat_refusal why)
{
    return why < CHAT_REFUSED_COUNT ? refusal_names[why] : "failed";
}

/* Every refusal goes through here, so the total and the per-reason counts agree. */
static void refuse(struct chat_service *svc, struct sip_txn *txn, enum chat_refusal why,
                   int status, const char *text)
{
    svc->stats.posts_refused++;
    svc->stats.posts_refused_by[why]++;
    sip_txn_reply(txn, status, text);
}

/* A post on its way to the room's owner: the answer needs the service to count a refusal.
 * The service outlives every request in flight (the cluster completes them on close). */
struct post_call {
    struct chat_service *svc;
    struct sip_txn *txn;
};

/* The post's fate is told by the SIP answer to its INFO (the only signal SIPE shows, XCCOS.md
 * §4.1), so that answer waits for the commit: 200 means the message is durable and was
 * delivered back to its author; 500 means the outcome is unknown (the owner failed
 * mid-replication); anything else means it was not stored. */
static void post_done(void *arg, const struct room_res *res)
{
    struct post_call *pc = arg;
    struct chat_service *svc = pc->svc;
    struct sip_txn *txn = pc->txn;
    pc_free(pc);
    switch (res->status) {
    case 0:
        sip_txn_reply(txn, 200, NULL);
        break;
    case PC_ENOTFOUND:
        refuse(svc, txn, CHAT_REFUSED_NO_ROOM, 404, "The room no longer exists");
        break;
    case PC_EUNKNOWN:
        /* The room's owner failed while the message was being replicated: it is either
         * committed (and will show in the room) or lost, and nobody can tell yet. Not a
         * refusal, so not counted as one. */
        sip_txn_reply(txn, 500, "The room moved to another server while your message was in "
                                "flight; check the room before sending it again");
        break;
    case PC_EBUSY:
        /* The owner's queue of posts waiting for their commit is full ([cluster]
         * max_pending_posts): nothing was stored. */
        refuse(svc, txn, CHAT_REFUSED_QUEUE_FULL, 503,
               "The chat server is busy: too many messages are waiting to be stored; this one "
               "was not stored, send it again in a moment");
        break;
    case PC_ENOSPC:
        /* The owner's data disk is below its reserve (cluster/pool_disk.c): nothing was
         * stored. Retry-After comes with every 503. */
        refuse(svc, txn, CHAT_REFUSED_DISK_FULL, 503,
               "Disk full: the chat server cannot store messages right now and did not store "
               "this one; send it again later");
        break;
    default:
        refuse(svc, txn, CHAT_REFUSED_FAILED, 503,
               "The message could not be stored; please send it again");
    }
}

/* A post or a story longer than its limit (both announced in getserverinfo): refused with
 * the figures, and logged, since a client that keeps sending them is misconfigured. */
static bool size_ok(struct chat_session *s, struct sip_txn *txn, const struct xccos_msg *m,
                    size_t chars)
{
    struct chat_service *svc = s->svc;
    bool story = m->chat.story;
    unsigned limit = story ? svc->cfg.story_max_chars : svc->cfg.message_max_chars;
    if (chars <= limit)
        return true;
    char why[160];
    snprintf(why, sizeof why, "%s too long: %zu characters, the limit is %u", story ? "Story" :
             "Message", chars, limit);
    pc_info("chat: post by %s to %s refused: %s ([chat] %s)", s->user, m->chat.chan_uri, why,
            story ? "story_max_chars" : "message_max_chars");
    refuse(svc, txn, CHAT_REFUSED_TOO_LARGE, 413, why);
    return false;
}

void chat_post(struct chat_session *s, struct sip_txn *txn, const struct xccos_msg *m)
{
    struct chat_service *svc = s->svc;
    const struct meta *meta = cluster_meta(svc->cl);
    const struct meta_room *rm = chat_room_by_uri(svc, m->chat.chan_uri);
    const char *why = NULL;
    int rc = chat_acl_check(meta, rm, s->user, CHAT_POST, &why);
    if (rc != 0) {
        pc_info("chat: post by %s to %s refused: %s", s->user,
                m->chat.chan_uri ? m->chat.chan_uri : "(no room)", why ? why : "no such room");
        if (rc == PC_ENOTFOUND)
            refuse(svc, txn, CHAT_REFUSED_NO_ROOM, 404, "No such room");
        else
            refuse(svc, txn, CHAT_REFUSED_NOT_ALLOWED, 403, why);
        return;
    }
    struct chat_joined *j = chat_joined_find(s, rm->no);
    if (j == NULL || !j->complete) {
        refuse(svc, txn, CHAT_REFUSED_NOT_JOINED, 403, "Join the room before posting to it");
        return;
    }
    const char *text = m->chat.text != NULL ? m->chat.text : "";
    size_t chars = pc_utf8_count(text, strlen(text));
    if (chars == 0) {
        refuse(svc, txn, CHAT_REFUSED_EMPTY, 400, "Empty message");
        return;
    }
    if (!size_ok(s, txn, m, chars))
        return;
    if (!chat_limits_may_post(svc, s->user)) {
        char why_buf[160];
        snprintf(why_buf, sizeof why_buf, "Posting too fast: at most %u messages per second "
                 "(bursts of %u); wait a moment", svc->cfg.post_rate, svc->cfg.post_burst);
        refuse(svc, txn, CHAT_REFUSED_RATE_LIMIT, 503, why_buf);
        return;
    }
    /* The author is whoever the session authenticated as, whatever the XML claimed. */
    struct room_req req = {.kind = ROOM_REQ_POST, .room_no = rm->no, .user = s->user, .text = text};
    struct post_call *pc = pc_malloc(sizeof *pc);
    *pc = (struct post_call){.svc = svc, .txn = txn};
    rc = cluster_room_submit(svc->cl, &req, post_done, pc);
    if (rc != 0) {
        pc_free(pc);
        enum chat_refusal why_not = rc == PC_EBUSY    ? CHAT_REFUSED_QUEUE_FULL
                                    : rc == PC_ENOSPC ? CHAT_REFUSED_DISK_FULL
                                                      : CHAT_REFUSED_FAILED;
        refuse(svc, txn, why_not, 503, "The chat service is busy; please send the message again");
        return;
    }
    svc->stats.posts_accepted++;
}
