/* pcc: a SIP/XCCOS client on libuv that signs in the way SIPE does. */
#ifndef PCC_H
#define PCC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

#include "chat/xccos/xccos.h"

/* One pcc is one user on one TCP connection: REGISTER, provisioning SUBSCRIBE, INVITE to the
 * chat URI, the `cmd:requri` two-step, then XCCOS commands and posts as INFO. It answers
 * the server's INFOs with 200 and reports everything that happens as events, in order.
 * Used by the `pchat` command, by the tests and by the load generator. Loop thread only. */

struct pcc;

enum pcc_event_kind {
    PCC_EV_READY = 1,     /* signed in, chat session open */
    PCC_EV_SIP_RESPONSE,  /* final response to one of our INFOs (cseq, status, reason) */
    PCC_EV_XCCOS,         /* an XCCOS envelope from the server (reply, notice, grpchat) */
    PCC_EV_CLOSED,        /* the connection is gone (status = PC_E code, reason) */
};

struct pcc_event {
    TAILQ_ENTRY(pcc_event) link;
    enum pcc_event_kind kind;
    int status;           /* SIP status, or PC_E* for CLOSED */
    uint32_t cseq;        /* SIP_RESPONSE: the INFO it answers */
    char reason[200];     /* SIP reason phrase / ms-diagnostics reason / close reason */
    struct xccos_msg msg; /* XCCOS (owns its arena) */
    uint64_t at_ns;       /* arrival, monotonic */
};

void pcc_event_free(struct pcc_event *ev);

struct pcc_config {
    const char *host;       /* server IPv4 address */
    int port;
    const char *user;       /* "alice@example.test" or "sip:alice@example.test" */
    const char *password;   /* answers a 407 Digest challenge to REGISTER (NULL = none) */
    bool lync_flow;         /* Lync 2013: no requri two-step; getserverinfo first */
    bool no_auto_ok;        /* do not answer server INFOs (tests of slow consumers) */
    unsigned timeout_ms;    /* sign-in must complete within this (0 = 10 s) */
    /* Called for every event; NULL = events are queued for pcc_next_event. The callee owns
     * the event (pcc_event_free). */
    void (*on_event)(void *ctx, struct pcc *c, struct pcc_event *ev);
    void *ctx;
    /* Sees the XCCOS body of every server INFO first (at = arrival, monotonic ns); returning
     * true means it was handled and no event follows. A load generator reads its own
     * deliveries this way without building a document for each. NULL = none. */
    bool (*on_info_body)(void *ctx, const char *body, size_t len, uint64_t at_ns);
};

/* Starts connecting and signing in; READY or CLOSED follows. Never NULL. */
struct pcc *pcc_start(uv_loop_t *loop, const struct pcc_config *cfg);

/* Closes the connection (without BYE, like a crash, when abrupt; else BYE + REGISTER 0),
 * and frees the client once its handles are closed. No event is delivered after this. */
void pcc_close(struct pcc *c, bool abrupt);

bool pcc_ready(const struct pcc *c);
const char *pcc_user(const struct pcc *c);       /* "sip:alice@example.test" */
const char *pcc_chat_uri(const struct pcc *c);   /* from provisioning */
const char *pcc_domain(const struct pcc *c);

/* Sends an XCCOS command or post as INFO. Returns the INFO's CSeq (>0), which the
 * SIP_RESPONSE event carries; its envid is written to envid_out (if not NULL, 24 bytes)
 * so replies can be matched by commandid. 0 if not ready. */
uint32_t pcc_send(struct pcc *c, struct xccos_msg *m, char *envid_out);

/* Conveniences building the commands SIPE sends. */
uint32_t pcc_join(struct pcc *c, const char *const *room_uris, size_t n, char *envid_out);
uint32_t pcc_part(struct pcc *c, const char *room_uri, char *envid_out);
uint32_t pcc_history(struct pcc *c, const char *room_uri, unsigned count, uint64_t before,
                     char *envid_out);
uint32_t pcc_search(struct pcc *c, const char *criteria, char *envid_out);
uint32_t pcc_post(struct pcc *c, const char *room_uri, const char *text);
/* A story (Lync's long post): the text in <story> rather than <chat>. */
uint32_t pcc_post_story(struct pcc *c, const char *room_uri, const char *text);
uint32_t pcc_simple(struct pcc *c, enum xccos_op op, char *envid_out); /* getinv, getserverinfo… */

/* Sends body (any bytes) as an INFO in the chat dialog; returns its CSeq (bad-input tests). */
uint32_t pcc_send_body(struct pcc *c, const void *body, size_t len);

/* Sends raw bytes on the connection (bad-input tests). */
void pcc_send_raw(struct pcc *c, const void *data, size_t len);

/* Takes the oldest queued event, or NULL. */
struct pcc_event *pcc_next_event(struct pcc *c);

#endif
