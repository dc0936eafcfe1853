/* XCCOS codec: typed command/reply/notice/chat structs <-> XML (libxml2 for decoding). */
#ifndef XCCOS_H
#define XCCOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/pc_arena.h"
#include "common/pc_buf.h"

/* The protocol is described in ../shared/protocol/XCCOS.md (and docs/XCCOS-NOTES.md for what
 * we learnt since). One envelope <xccos ver="1" envid="…"> carries exactly one child: a
 * command (client -> server), a reply, a notice (server -> client) or a chat message (both
 * directions). This module only converts between bytes and structs; it knows nothing of
 * sockets, rooms or storage. */

enum xccos_kind {
    XCCOS_KIND_CMD = 1, /* <cmd id="cmd:NAME"> */
    XCCOS_KIND_RPL,     /* <rpl id="rpl:NAME"> */
    XCCOS_KIND_NTC,     /* <ntc id="ntc:NAME"> */
    XCCOS_KIND_GRPCHAT, /* <grpchat id="grpchat"> */
};

/* Operation names without their "cmd:"/"rpl:"/"ntc:" prefix. The same value names a command
 * and its reply (XCCOS_OP_JOIN = cmd:join and rpl:join). */
enum xccos_op {
    XCCOS_OP_UNKNOWN = 0,
    XCCOS_OP_REQURI,          /* cmd/rpl: pool lookup (SIPE's phase 1) */
    XCCOS_OP_GETSERVERINFO,   /* cmd/rpl: server limits and time (Lync 2013) */
    XCCOS_OP_GETASSOCIATIONS, /* cmd/rpl: rooms I am member / manager of (Lync 2013) */
    XCCOS_OP_BJOIN,           /* cmd/rpl: join several rooms */
    XCCOS_OP_JOIN,            /* cmd/rpl: join one room; ntc:join: someone entered */
    XCCOS_OP_PART,            /* cmd/rpl: leave a room; ntc:part: someone left */
    XCCOS_OP_BCCONTEXT,       /* cmd/rpl: history ("back chat") */
    XCCOS_OP_GETINV,          /* cmd/rpl: pending invitations */
    XCCOS_OP_CHANSRCH,        /* cmd/rpl: room directory search */
    XCCOS_OP_GRPCHAT,         /* grpchat: a chat message (post or delivery) */
    XCCOS_OP_COUNT
};

/* Role keys of <aib key=…> as SIPE reads them. */
#define XCCOS_AIB_MEMBER 3984
#define XCCOS_AIB_MANAGER 12276

/* Result codes of <resp code=…>TEXT</resp>. Success is 200 with the text SUCCESS_OK. An error
 * reply (pchat's choice, see docs/XCCOS-NOTES.md) carries one of the codes below and a text
 * "TOKEN: readable detail", e.g. <resp code="404">ERR_NO_SUCH_ROOM: no room ma-chan://…</resp>;
 * SIPE shows the whole text to the user, our own client matches the token before the colon.
 * xccos_msg_set_error builds such a reply. */
#define XCCOS_RESP_OK 200
#define XCCOS_RESP_OK_TEXT "SUCCESS_OK"
#define XCCOS_RESP_BAD_REQUEST 400
#define XCCOS_RESP_FORBIDDEN 403
#define XCCOS_RESP_NOT_FOUND 404
#define XCCOS_RESP_TOO_LARGE 413
#define XCCOS_RESP_SERVER_ERROR 500
#define XCCOS_RESP_BUSY 503

/* Error tokens and the code each goes with. */
#define XCCOS_ERR_PERMISSION "ERR_PERMISSION"           /* 403: not allowed on this room */
#define XCCOS_ERR_ROOM_DISABLED "ERR_ROOM_DISABLED"     /* 403: room exists but is disabled */
#define XCCOS_ERR_NO_SUCH_ROOM "ERR_NO_SUCH_ROOM"       /* 404: unknown room URI */
#define XCCOS_ERR_BAD_REQUEST "ERR_BAD_REQUEST"         /* 400: malformed command */
#define XCCOS_ERR_UNKNOWN_COMMAND "ERR_UNKNOWN_COMMAND" /* 400: command we do not implement */
#define XCCOS_ERR_SERVER "ERR_SERVER"                   /* 500: internal failure */
#define XCCOS_ERR_BUSY "ERR_BUSY"                       /* 503: overloaded, try later */
#define XCCOS_ERR_TOO_MANY_ROOMS "ERR_TOO_MANY_ROOMS"   /* 413: a bjoin over the room limit */

/* A room reference inside join/bjoin: <chanid key="0" domain="D" value="ID"/>. The room's
 * canonical URI is "ma-chan://D/ID". */
struct xccos_chanid {
    const char *domain;
    const char *value;
};

/* A user in a reply or notice: <uib id="…" uri="sip:…"/>. */
struct xccos_user {
    const char *id;  /* token referenced by aib values (rpl:join); may be NULL */
    const char *uri; /* "sip:user@domain", lower case */
};

/* A chat message: the grpchat envelope child, or <msg id="grpchat"> inside history. */
struct xccos_chat {
    const char *chan_uri; /* chanUri */
    const char *author;   /* author ("sip:…") */
    int64_t ts_us;        /* ts; 0 = absent */
    uint64_t msg_id;      /* per-room sequence number (our msgid attribute); 0 = absent */
    const char *text;     /* character data of <chat> (or <story>), entity-decoded, UTF-8 */
    bool story;           /* a post that came as <story>: a long post, which getserverinfo's
                             storySizeLimit bounds rather than messageSizeLimit */
};

/* A room as listed by chansrch / getassociations, or joined by join/bjoin (<chanib>). */
struct xccos_room {
    const char *uri;         /* "ma-chan://domain/id" */
    const char *name;
    const char *description; /* chansrch: description attribute */
    const char *topic;       /* join: topic attribute (we send the description) */
    /* chansrch extras */
    unsigned user_count;     /* info urn:parlano:ma:info:ucnt */
    bool is_private;         /* info urn:parlano:ma:info:visibilty = "private" */
    bool filepost, invite, logged; /* prop urn:parlano:ma:prop:… */
    /* join/bjoin: who is in the room, by uib id lists */
    const char *member_ids;  /* aib key=3984 value (comma-separated uib ids), may be NULL */
    const char *manager_ids; /* aib key=12276 value, may be NULL */
    /* bccontext reply: the room's messages, oldest first */
    struct xccos_chat *msgs;
    size_t n_msgs;
};

/* A room that could not be joined inside rpl:bjoin: <fib key="REASON" domain= value=/>. */
struct xccos_failed {
    const char *reason; /* e.g. "OPERATION_FAILED" */
    const char *domain;
    const char *value;
};

/* An invitation in rpl:getinv. */
struct xccos_invite {
    const char *chan_uri;
    const char *name;    /* room name */
    const char *inviter; /* "sip:…" */
    int64_t ts_us;
};

/* A notice that a user entered rooms (ntc:join) or left one (ntc:part). */
struct xccos_presence {
    const char *user_uri;
    const char *chan_uri;
    bool manager; /* ntc:join: aib key 12276 rather than 3984 */
};

struct xccos_server_info {
    const char *domain;
    const char *info_type;      /* infoType, echoed */
    int64_t server_time_us;
    unsigned search_limit;      /* searchLimit */
    unsigned message_size_limit;/* messageSizeLimit (characters) */
    unsigned story_size_limit;  /* storySizeLimit (characters) */
    const char *root_uri;       /* rootUri "ma-cat://domain/guid" */
    const char *db_version;     /* dbVersion guid */
};

/* One decoded (or to-be-encoded) envelope. Every pointer points into `arena` or into
 * memory the caller guarantees outlives the struct; xccos_msg_free releases the arena. */
struct xccos_msg {
    enum xccos_kind kind;
    enum xccos_op op;
    const char *op_name; /* id attribute as received ("cmd:frobnicate"), for error replies */
    const char *envid;   /* envelope id, an opaque decimal string; may be NULL when encoding */
    const char *seqid;   /* seqid attribute (SIPE always sends "1") */

    /* Replies: which command they answer and how it went. */
    const char *cmd_seqid; /* <commandid seqid=…> */
    const char *cmd_envid; /* <commandid envid=…> */
    int resp_code;         /* <resp code=…>; 0 when absent */
    const char *resp_text; /* SUCCESS_OK or a readable error */

    /* Command parameters (kind CMD). */
    struct xccos_chanid *chanids; /* join, bjoin */
    size_t n_chanids;
    const char *chan_uri;         /* part, bccontext */
    unsigned history_count;       /* bccontext <bcq><last cnt=N/> */
    uint64_t history_before;      /* bccontext: messages with msg_id < this (0 = newest) */
    const char *query;            /* chansrch criteria */
    const char *query_type;       /* chansrch qtype ("BYNAME") */
    bool query_extended;          /* chansrch extended */
    const char *assoc_kind;       /* getassociations: "member" or "manager" */
    const char *domain;           /* getserverinfo/getinv domain */

    /* Reply payloads (kind RPL). */
    const char *uri;                  /* rpl:requri <uib uri> */
    struct xccos_user *users;         /* rpl:join/bjoin uib list */
    size_t n_users;
    struct xccos_room *rooms;         /* chanib list: join, bjoin, part, chansrch,
                                         getassociations, bccontext (first only) */
    size_t n_rooms;
    struct xccos_failed *failed;      /* rpl:bjoin fib list */
    size_t n_failed;
    struct xccos_invite *invites;     /* rpl:getinv */
    size_t n_invites;
    struct xccos_server_info server;  /* rpl:getserverinfo */

    /* Notices (kind NTC): ntc:join / ntc:part. */
    struct xccos_presence presence;

    /* Chat message (kind GRPCHAT). */
    struct xccos_chat chat;

    struct pc_arena arena;
};

/* Limits applied while decoding untrusted input. A field left 0 takes its default. */
struct xccos_limits {
    size_t max_bytes;     /* whole body; larger input is PC_ETOOBIG before parsing */
    size_t max_elements;  /* total elements; guards against wide documents */
    size_t max_depth;     /* nesting depth */
    size_t max_list;      /* chanid/chanib/msg/uib entries per list */
};

/* Defaults: 256 KiB, 20000 elements, depth 16, 5000 per list. */
extern const struct xccos_limits xccos_default_limits;

/* Decodes one envelope. The XML parser never loads external entities, never substitutes
 * entities, never touches the network, and rejects DTDs; bytes must be valid UTF-8.
 * `limits` NULL means xccos_default_limits. *out need not be initialised (its old contents
 * are overwritten, not freed). On success fills *out (caller must xccos_msg_free) and
 * returns 0. Errors:
 *   PC_ETOOBIG  input size, element count, nesting depth or a list exceeds the limits,
 *   PC_EPROTO   not well-formed XML, a DTD, NUL bytes, invalid UTF-8, not an xccos envelope,
 *               none or several of cmd/rpl/ntc/grpchat, a required attribute missing
 *               (grpchat chanUri, part/bccontext chanib uri, join chanid domain/value…),
 *               a number attribute that is not a decimal number,
 *   PC_ENOMEM   libxml2 could not allocate its parser;
 * in every case errmsg gets a one-line description fit for a log line and *out is freed.
 * An unknown command name is not an error: kind CMD, op XCCOS_OP_UNKNOWN, op_name set.
 * The name is what follows "cmd:", "rpl:" or "ntc:" in the id (any of the three, any case,
 * or none at all: the prefix is not checked against the element).
 * Lenient on purpose: unknown elements and attributes are ignored, and a `ts` that does
 * not parse as ISO 8601 reads as absent (0), because the server restamps posts anyway.
 * Where a field lives per operation (decode fills exactly what encode reads):
 *   cmd:getserverinfo  domain, server.info_type (server.domain mirrors domain)
 *   cmd:join/bjoin     chanids (at least one)        cmd:part       chan_uri
 *   cmd:bccontext      chan_uri, history_count, history_before
 *   cmd:getinv         domain                        cmd:chansrch   query, query_type,
 *   cmd:getassociations assoc_kind                                  query_extended
 *   rpl:*              cmd_seqid, cmd_envid, resp_code, resp_text, then
 *     requri uri; getserverinfo server; join/bjoin users, rooms, failed; part rooms (and
 *     chan_uri = first room); chansrch/getassociations/bccontext rooms; getinv invites
 *   ntc:join/bjoin/part presence                     grpchat        chat (a <story>
 *                                                    instead of <chat>: chat.story set)
 * Not thread-safe only in that libxml2 initialises itself on first use; call it from one
 * thread first (or call xmlInitParser at start-up). */
int xccos_decode(const char *body, size_t len, const struct xccos_limits *limits,
                 struct xccos_msg *out, char *errmsg, size_t errlen);

/* Appends the XML of msg (one <xccos> envelope, no XML declaration) to out, in exactly the
 * element shapes of XCCOS.md. Fields that are NULL/0 are omitted, with these defaults:
 * `envid` NULL means "0", `seqid` NULL means "1"; a reply's resp_code 0 is sent as 200 and
 * resp_text NULL as SUCCESS_OK (for 200) or ""; chansrch qtype NULL is "BYNAME" and
 * criteria NULL is ""; getassociations assoc_kind NULL is "member"; a history msg without
 * chanUri takes its room's uri; rpl:part without rooms sends chan_uri. Op UNKNOWN sends
 * the name in op_name under the element's own prefix (a reply to a decoded "cmd:frob" whose
 * op_name is copied goes out as "rpl:frob") with an empty <data/>. Text is
 * escaped; bytes that are not valid UTF-8 or not allowed in XML become U+FFFD. */
void xccos_encode(const struct xccos_msg *msg, struct pc_buf *out);

/* Initialises an empty message for encoding. */
void xccos_msg_init(struct xccos_msg *msg, enum xccos_kind kind, enum xccos_op op);
void xccos_msg_free(struct xccos_msg *msg);

/* "join", "bccontext"… for logs. */
const char *xccos_op_name(enum xccos_op op);

/* Splits "ma-chan://domain/id" into domain and id (pointers into arena); false if the URI
 * does not have that shape. */
bool xccos_split_chan_uri(const char *uri, struct pc_arena *arena, const char **domain,
                          const char **id);

/* Appends s to out with & < > " ' escaped (also CR as &#13; so a CRLF survives parsing).
 * For element text. Bytes that are not valid UTF-8, control characters XML 1.0 cannot carry
 * (below 0x20 except TAB/LF/CR) and U+FFFE/U+FFFF are written as U+FFFD, so the output is
 * always well-formed. s NULL appends nothing. */
void xccos_escape(struct pc_buf *out, const char *s);

/* Like xccos_escape, for attribute values: also writes LF and TAB as &#10; and &#9;, which a
 * parser would otherwise normalise to spaces. */
void xccos_escape_attr(struct pc_buf *out, const char *s);

/* Turns msg into an error reply: resp_code = code, resp_text = "TOKEN: detail" (just TOKEN
 * when detail is NULL), copied into msg->arena. E.g.
 * xccos_msg_set_error(&r, XCCOS_RESP_NOT_FOUND, XCCOS_ERR_NO_SUCH_ROOM, "no room ma-chan://…"). */
void xccos_msg_set_error(struct xccos_msg *msg, int code, const char *token, const char *detail);

#endif
