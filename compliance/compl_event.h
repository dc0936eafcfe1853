/* Compliance events: the model, their binary form, and how they are added to a batch. */
#ifndef COMPL_EVENT_H
#define COMPL_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/pc_buf.h"

struct store_batch;

/* Event types. The first six are Lync's compliance message types (JOIN, PART, CHAT,
 * BACKCHAT, FILEUPLOAD, FILEDOWNLOAD); the rest cover administration. */
enum compl_type {
    COMPL_JOIN = 1,
    COMPL_PART,
    COMPL_CHAT,
    COMPL_BACKCHAT,     /* a user read history */
    COMPL_FILEUPLOAD,
    COMPL_FILEDOWNLOAD,
    COMPL_ROOM_CREATED,
    COMPL_ROOM_CHANGED,
    COMPL_ROOM_DELETED,
    COMPL_MEMBERSHIP,   /* members/managers/presenters changed */
    COMPL_MSG_REMOVED,
    COMPL_MSG_REPLACED,
    COMPL_PURGED,       /* history cleared up to a date or by retention */
    COMPL_TYPE_MAX
};

#define COMPL_CLASS(t) (1u << (t))
/* What Lync captured: join, part, post, read, files. */
#define COMPL_CLASSES_LYNC                                                                   \
    (COMPL_CLASS(COMPL_JOIN) | COMPL_CLASS(COMPL_PART) | COMPL_CLASS(COMPL_CHAT) |          \
     COMPL_CLASS(COMPL_BACKCHAT) | COMPL_CLASS(COMPL_FILEUPLOAD) | COMPL_CLASS(COMPL_FILEDOWNLOAD))
#define COMPL_CLASSES_ALL (((1u << COMPL_TYPE_MAX) - 1) & ~1u)

struct compl_event {
    enum compl_type type;
    int64_t ts_us;
    const char *node;      /* node where the action happened */
    const char *user;      /* acting user URI */
    uint64_t room_no;      /* 0 when not about a room */
    const char *room_guid; /* kept with the event: the room may be gone when it is read */
    const char *room_name;
    uint64_t seq;          /* CHAT/REMOVED/REPLACED: the message's sequence number */
    const char *content;   /* CHAT text, file name, or a description of the change */
};

/* "JOIN", "CHAT"… (Lync's names where Lync had the type). */
const char *compl_type_name(enum compl_type t);
/* Parses a comma-separated class list ("join,part,chat", "lync", "all", "none") into a mask. */
bool compl_classes_parse(const char *list, unsigned *mask);

void compl_event_encode(const struct compl_event *ev, struct pc_buf *out);
/* Decodes untrusted bytes; strings are copied into arena. PC_ECORRUPT on any defect. */
struct pc_arena;
int compl_event_decode(const void *in, size_t len, struct compl_event *ev, struct pc_arena *arena);

/* Adds the event to a batch under key (group, index, n): the same on every replica, which
 * is what makes the event id stable. Does nothing when the type's class is not in mask. */
void compl_event_put(struct store_batch *b, unsigned mask, uint32_t group, uint64_t index,
                     uint32_t n, const struct compl_event *ev);

/* The event id derived from its key: "<group>-<index>-<n>". buf: 48 bytes. */
void compl_event_id(uint32_t group, uint64_t index, uint32_t n, char *buf);

#endif
