/* Internals shared by the room service's source files in chat/. */
#ifndef CHAT_INT_H
#define CHAT_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uthash.h>

#include "chat/chat.h"
#include "chat/xccos/xccos.h"

/* A room this session has joined (or is joining). */
struct chat_joined {
    UT_hash_handle hh;
    uint64_t room_no;
    uint64_t join_seq;  /* last seq when the owner registered us: live delivery starts after */
    bool complete;      /* the owner answered the JOIN */
    bool backfilled;    /* the history that completes the join was served */
};

/* One client's chat dialog. Lives until the dialog ended and no request of it is in flight
 * (refs), so callbacks from the cluster never touch freed memory. */
struct chat_session {
    UT_hash_handle hh;        /* svc->sessions by id */
    struct chat_service *svc;
    struct sip_dialog *dlg;   /* NULL once the dialog ended */
    uint64_t id;
    char user[256];
    struct chat_joined *joined;
    unsigned refs;
    /* Until this node's metadata has caught up with the pool (cluster_meta_sync at session
     * start), the session's INFOs wait here in order, so that a client sees on any node
     * what it changed through another one. */
    bool synced;
    struct chat_held *held, **held_tail;
    /* A Lync 2013 client (it asked getserverinfo; SIPE never does): after rpl:bjoin the server
     * pushes each room's history, which SIPE would show twice (XCCOS.md §6). */
    bool pushes_history;
};

/* Sessions of this node in one room: the fan-out list for its deliveries. */
struct chat_room_subs {
    UT_hash_handle hh;
    uint64_t room_no;
    struct chat_session **sessions;
    size_t n, cap;
};

struct chat_service {
    uv_loop_t *loop;
    struct chat_config cfg;
    struct cluster *cl;
    struct chat_session *sessions;
    struct chat_room_subs *subs;
    uint64_t next_session_id;
    uint64_t next_envid;
    struct chat_stats stats;
    struct chat_user_limits *limits; /* per-user sessions and post rate (chat_limits.c) */
};

/* chat_limits.c: per-user limits of this node. */
struct chat_user_limits;
bool chat_limits_session_open(struct chat_service *svc, const char *user);
void chat_limits_session_close(struct chat_service *svc, const char *user);
bool chat_limits_may_post(struct chat_service *svc, const char *user);
void chat_limits_free(struct chat_service *svc);

/* A command being served: what the reply must reference, and the session it is for. */
struct chat_cmd {
    struct chat_session *s;  /* holds a reference */
    enum xccos_op op;
    char op_name[48];
    char envid[32];
    char seqid[16];
    struct sip_txn *txn;     /* grpchat only: answered when the post is committed */
};

/* chat_service.c */
void chat_session_ref(struct chat_session *s);
void chat_session_unref(struct chat_session *s);
struct chat_cmd *chat_cmd_new(struct chat_session *s, const struct xccos_msg *m);
void chat_cmd_free(struct chat_cmd *c);
/* Starts a reply to cmd (kind RPL, same op, commandid filled, resp 200). */
void chat_reply_init(const struct chat_cmd *cmd, struct xccos_msg *r);
/* Sends an envelope to one session (no-op if its dialog ended). */
void chat_send(struct chat_session *s, struct xccos_msg *m);
/* Sends an error reply for cmd: code + token + detail. */
void chat_reply_error(struct chat_cmd *cmd, int code, const char *token, const char *detail);
/* Maps a PC_E* status to an XCCOS error reply. */
void chat_reply_status(struct chat_cmd *cmd, int status, const char *detail);
/* Resolves a room URI ("ma-chan://domain/guid") or a chanid to a room; NULL if unknown. */
const struct meta_room *chat_room_by_uri(struct chat_service *svc, const char *uri);
const struct meta_room *chat_room_by_chanid(struct chat_service *svc, const char *domain,
                                            const char *value);
/* "ma-chan://<domain>/<guid>" into arena. */
const char *chat_room_uri(struct chat_service *svc, const struct meta_room *r, struct pc_arena *a);

/* chat_directory.c: commands answered from metadata alone. */
void chat_cmd_requri(struct chat_cmd *cmd, const struct xccos_msg *m);
void chat_cmd_getserverinfo(struct chat_cmd *cmd, const struct xccos_msg *m);
void chat_cmd_chansrch(struct chat_cmd *cmd, const struct xccos_msg *m);
void chat_cmd_getassociations(struct chat_cmd *cmd, const struct xccos_msg *m);
void chat_cmd_getinv(struct chat_cmd *cmd, const struct xccos_msg *m);
/* Fills a chanib the way chansrch/getassociations show rooms. */
void chat_room_listing(struct chat_service *svc, const struct meta_room *r, struct xccos_room *out,
                       struct pc_arena *a);

/* chat_rooms.c: entering, leaving, history, fan-out. */
void chat_cmd_join(struct chat_cmd *cmd, const struct xccos_msg *m);
void chat_cmd_part(struct chat_cmd *cmd, const struct xccos_msg *m);
void chat_cmd_bccontext(struct chat_cmd *cmd, const struct xccos_msg *m);
void chat_session_leave_all(struct chat_session *s);
void chat_room_event(void *ctx, const struct room_event *ev);
struct chat_joined *chat_joined_find(struct chat_session *s, uint64_t room_no);

/* chat_post.c */
void chat_post(struct chat_session *s, struct sip_txn *txn, const struct xccos_msg *m);

/* Settings where the pool's (config.set, struct meta_settings) override this node's file. */
unsigned chat_default_history(const struct chat_service *svc);
unsigned chat_participant_update_limit(const struct chat_service *svc);

#endif
