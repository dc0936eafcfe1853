/* The room service: XCCOS command handlers, sessions, authorisation, live delivery. */
#ifndef CHAT_H
#define CHAT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "chat/sip/sip.h"
#include "cluster/cluster.h"

/* The room service sits between the SIP transport (chat/sip) and the pool (cluster/): it
 * turns each XCCOS command into metadata reads and room requests, checks every command
 * against the room ACLs (chat_acl.h), and turns the owners' room events into deliveries to
 * this node's sessions, serialising each delivery once for all of them. */

struct chat_service;

struct chat_config {
    const char *domain;             /* "example.test" */
    const char *chat_uri;           /* "sip:pchat@example.test" */
    const char *node_label;
    const char *sip_address;        /* where clients reach this node, "127.0.0.1:5060" */
    unsigned default_history;       /* messages in a bccontext without cnt (Lync: 30) */
    unsigned max_history;           /* cap on any history request (Lync: 500) */
    unsigned message_max_chars;     /* longest post accepted (announced in getserverinfo) */
    unsigned story_max_chars;       /* longest story (<story>, a long post) accepted (idem) */
    unsigned max_rooms_per_request; /* rooms one bjoin may name (more: refused, not cut) */
    unsigned max_members_per_request; /* users one list of an admin/room request may name */
    unsigned search_limit;          /* most rooms one chansrch returns */
    unsigned participant_update_limit; /* rooms with more users get no roster/notices */
    bool allow_unknown_users;       /* authentication off: any user of the domain may sign in */
    unsigned post_rate;             /* posts per second per user on this node (0 = no limit) */
    unsigned post_burst;            /* posts a user may send at once before the rate applies */
    unsigned max_sessions_per_user; /* chat sessions per user on this node (0 = no limit) */
};

void chat_config_defaults(struct chat_config *cfg);

/* Creation happens in two steps because the cluster needs the service's sink and the
 * service needs the cluster: chat_service_new, cluster_open(…, chat_cluster_sink(svc)),
 * chat_service_attach. */
struct chat_service *chat_service_new(uv_loop_t *loop, const struct chat_config *cfg);
void chat_service_attach(struct chat_service *svc, struct cluster *cl);
struct sip_handlers chat_sip_handlers(struct chat_service *svc);
struct cluster_sink chat_cluster_sink(struct chat_service *svc);
/* Frees the service; every session must have ended (sip_server_stop does that). */
void chat_service_free(struct chat_service *svc);

/* Why a post was refused: the `reason` label of pchat_posts_refused_total, so operators
 * see which limit or fault turns posts away. */
enum chat_refusal {
    CHAT_REFUSED_NO_ROOM,    /* no_room: unknown room (or secret, for a non-member) */
    CHAT_REFUSED_NOT_ALLOWED,/* not_allowed: not a member, not a presenter, room disabled */
    CHAT_REFUSED_NOT_JOINED, /* not_joined: the session has not joined the room */
    CHAT_REFUSED_EMPTY,      /* empty: no text */
    CHAT_REFUSED_TOO_LARGE,  /* too_large: over message_max_chars or story_max_chars */
    CHAT_REFUSED_RATE_LIMIT, /* rate_limit: over [chat] post_rate */
    CHAT_REFUSED_QUEUE_FULL, /* queue_full: the owner's posts waiting for commit, or the
                                room service's queue, are full */
    CHAT_REFUSED_DISK_FULL,  /* disk_full: the owner's data disk is below its reserve */
    CHAT_REFUSED_FAILED,     /* failed: the owner could not store it (other errors) */
    CHAT_REFUSED_COUNT
};
/* "no_room", "rate_limit"…: the label value. */
const char *chat_refusal_name(enum chat_refusal why);

struct chat_stats {
    uint64_t sessions;
    uint64_t commands;
    uint64_t posts_accepted;
    uint64_t posts_refused;       /* every refusal, the sum of posts_refused_by */
    uint64_t posts_refused_by[CHAT_REFUSED_COUNT];
    uint64_t deliveries;
    uint64_t notices;
    uint64_t bad_xccos;
    uint64_t posts_rate_limited;  /* refused: the user posted faster than post_rate */
    uint64_t sessions_refused;    /* refused: max_sessions_per_user reached */
    uint64_t requests_too_long;   /* refused: a bjoin or a user list over its limit */
};
void chat_service_stats(const struct chat_service *svc, struct chat_stats *out);

#endif
