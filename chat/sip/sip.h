/* SIP over TCP on libuv: registrar, provisioning, chat-endpoint dialogs and INFO transport. */
#ifndef SIP_H
#define SIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/pc_buf.h"

/* What this module does for the chat service, and what it leaves to it:
 *  - accepts client connections, frames and parses SIP (libosip2), answers REGISTER,
 *    SUBSCRIBE (in-band provisioning), OPTIONS, and the chat endpoint's
 *    INVITE/ACK/BYE/UPDATE/CANCEL itself, with the header shapes SIPE and Lync need
 *    (../shared/protocol/XCCOS.md §1–§4);
 *  - hands every INFO received in a chat dialog to the chat service as a transaction that
 *    the service must answer exactly once (sip_txn_reply), now or later;
 *  - sends the service's XCCOS bodies to a client as INFO requests inside the dialog, down
 *    the client's own connection.
 * It knows nothing about rooms. Everything runs on the loop thread. */

struct sip_server;
struct sip_dialog; /* one chat session: an INVITE dialog with the chat endpoint */
struct sip_txn;    /* one received INFO waiting for its final response */

struct sip_config {
    const char *domain;          /* SIP domain served, e.g. "example.test" */
    const char *chat_user;       /* user part of the chat service URI: sip:<chat_user>@<domain> */
    const char *listen_host;     /* IPv4 address to bind */
    int tcp_port;                /* 0 = no plain TCP listener */
    const char *advertised_host; /* host put in our Via/Contact; NULL = listen_host */
    const char *node_label;      /* for logs and Server header */
    size_t max_header_bytes;     /* per message */
    size_t max_body_bytes;       /* per message */
    size_t out_soft_bytes;       /* queued output above which new commands get 503 */
    size_t out_hard_bytes;       /* queued output above which the connection is dropped */
    unsigned max_pending_txns;   /* unanswered INFOs per connection before 503 */
    unsigned max_conns;          /* connections per node before new ones are refused */
    unsigned register_expires_s; /* Expires granted to REGISTER */
    unsigned session_expires_s;  /* Session-Expires on the chat INVITE 200 */
    unsigned keepalive_s;        /* ms-keep-alive timeout advertised */
    unsigned retry_after_s;      /* Retry-After on 503 */
    unsigned header_timeout_s;   /* a started message must be complete within this */
    unsigned idle_timeout_s;     /* unregistered connections idle this long are closed */
    bool auth_digest;            /* REGISTER is challenged (407 Digest, realm = domain) */
    int tls_port;                /* 0 = no TLS listener */
    const char *tls_cert;        /* PEM certificate chain for TLS */
    const char *tls_key;         /* its PEM private key */
};

/* Sets every field to its default (ports and host excluded). */
void sip_config_defaults(struct sip_config *cfg);

/* The chat service's view of a user, asked at REGISTER and INVITE time. */
enum sip_user_status {
    SIP_USER_OK,       /* may sign in and use persistent chat */
    SIP_USER_UNKNOWN,  /* no such user: REGISTER gets 404 */
    SIP_USER_DISABLED, /* account disabled: REGISTER gets 403 with the reason */
    SIP_USER_NO_CHAT,  /* signed in, but persistent chat not enabled by policy */
};

struct sip_handlers {
    void *ctx;
    /* Status of a user ("sip:alice@example.test", lower case). */
    enum sip_user_status (*user_status)(void *ctx, const char *user_uri);
    /* The user's Digest HA1 (32 hex digits) for realm = domain; false when the user has no
     * password (sign-in is then refused under auth_digest). May be NULL without auth. */
    bool (*password_ha1)(void *ctx, const char *user_uri, char ha1[33]);
    /* A chat INVITE was accepted at the SIP level for the connection's user. Return 0 to
     * answer 200, PC_EBUSY for 503, PC_EDENIED for 403. */
    int (*dialog_new)(void *ctx, struct sip_dialog *dlg);
    /* An INFO arrived in the dialog. body is borrowed for the call only. The service must
     * eventually call sip_txn_reply(txn, …) exactly once (also if the dialog ends first). */
    void (*info)(void *ctx, struct sip_dialog *dlg, struct sip_txn *txn, const char *body,
                 size_t len);
    /* The dialog is gone (BYE, connection loss, 481/487 from the client, session expiry).
     * Called once; the dialog pointer is invalid after the call. */
    void (*dialog_end)(void *ctx, struct sip_dialog *dlg);
};

struct sip_stats {
    uint64_t conns_open;
    uint64_t conns_accepted;
    uint64_t conns_refused;
    uint64_t dialogs_open;
    uint64_t requests_in;
    uint64_t infos_out;
    uint64_t replies_503;
    uint64_t bad_messages;
    uint64_t slow_consumers_dropped;
    uint64_t timeouts_idle;       /* closed: connected, unregistered and silent idle_timeout */
    uint64_t timeouts_incomplete; /* closed: a message's header or body not complete within
                                     header_timeout (slowloris) */
    uint64_t out_bytes_queued; /* across connections, now */
};

/* Starts listening. On failure returns a PC_E* code and logs why (port in use…). */
int sip_server_start(uv_loop_t *loop, const struct sip_config *cfg,
                     const struct sip_handlers *h, struct sip_server **out);

/* Closes the listener and every connection (without BYE: see XCCOS.md §4.2), ends every
 * dialog (dialog_end fires), frees the server once all its handles are closed, then calls
 * cb. srv must not be used after this call. */
void sip_server_stop(struct sip_server *srv, void (*cb)(void *arg), void *arg);

void sip_server_stats(const struct sip_server *srv, struct sip_stats *out);

/* The chat service URI, "sip:pchat@example.test". */
const char *sip_server_chat_uri(const struct sip_server *srv);

/* Final response to an INFO. code 200, or an error (403, 404, 503…) with an optional reason
 * shown to the user (XCCOS.md §4.1: SIPE displays the reason of a failed grpchat). For 503
 * a Retry-After header is added. Frees the transaction. Safe after the dialog or the
 * connection ended: then it only frees. */
void sip_txn_reply(struct sip_txn *txn, int code, const char *reason);

/* Dialog accessors. */
const char *sip_dialog_user(const struct sip_dialog *dlg);  /* "sip:alice@example.test" */
const char *sip_dialog_peer(const struct sip_dialog *dlg);  /* "127.0.0.1:40312" for logs */
uint64_t sip_dialog_id(const struct sip_dialog *dlg);       /* unique per node run */
void *sip_dialog_data(const struct sip_dialog *dlg);
void sip_dialog_set_data(struct sip_dialog *dlg, void *data);

/* Sends an INFO with body (text/plain XCCOS) in the dialog. The body is shared: a reference
 * is taken and dropped when written, so one serialised delivery can go to many dialogs.
 * Returns PC_ECLOSED if the dialog's connection is closing, PC_EBUSY if its output passed
 * the hard bound (the connection is then dropped as a slow consumer). */
int sip_dialog_send_info(struct sip_dialog *dlg, struct pc_rbuf *body);

#endif
