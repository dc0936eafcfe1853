/* Internals shared by the files of chat/sip (not for other modules). */
#ifndef SIP_INT_H
#define SIP_INT_H

#include <osipparser2/osip_parser.h>
#include <sys/queue.h>
#include <uthash.h>

#include "chat/sip/sip.h"
#include "chat/sip/sip_frame.h"
#include "common/pc_buf.h"

#define SIP_URI_MAX 256

struct sip_conn;

struct sip_dialog {
    UT_hash_handle hh;        /* in conn->dialogs, keyed by call_id */
    struct sip_conn *conn;
    uint64_t id;
    char *call_id;
    char *local_tag;          /* our To tag */
    char *remote_tag;         /* the client's From tag */
    char *remote_target;      /* request-URI for our INFOs: the client's Contact */
    char *fixed_headers;      /* "From: …\r\nTo: …\r\nCall-ID: …\r\n" of our requests */
    char user[SIP_URI_MAX];
    uint32_t local_cseq;
    uint64_t last_activity_ms;
    void *data;               /* the chat service's session */
    bool announced;           /* dialog_new accepted it: dialog_end is owed */
};

struct sip_txn {
    struct sip_conn *conn;    /* holds a reference; NULL once the conn closed */
    osip_message_t *req;      /* the INFO, kept to build the response */
    TAILQ_ENTRY(sip_txn) link;
};

/* One queued outgoing message: a header block and an optional shared body. */
struct sip_out {
    TAILQ_ENTRY(sip_out) link;
    struct pc_rbuf *parts[2];
};

struct ssl_st;
struct ssl_ctx_st;

struct sip_conn {
    uv_tcp_t tcp;
    struct ssl_st *ssl;       /* NULL on plain TCP */
    struct pc_buf tls_rx;     /* ciphertext just read (TLS only) */
    struct sip_server *srv;
    uint64_t id;
    unsigned refs;            /* socket + in-flight writes + pending txns */
    bool closing;
    char peer[64];
    char local_host[64];
    /* input */
    struct pc_buf in;
    struct sip_framer framer;
    uint64_t partial_since_ms; /* 0 when no message is half-received */
    uint64_t last_rx_ms;
    unsigned bad_messages;
    /* output, flushed once per loop iteration */
    TAILQ_HEAD(, sip_out) out;
    size_t out_queued_bytes;  /* not yet handed to the kernel */
    size_t out_inflight_bytes;
    bool in_flush_list;
    TAILQ_ENTRY(sip_conn) flush_link;
    /* identity bound by REGISTER */
    char user[SIP_URI_MAX];
    char tag[17];             /* our To tag for REGISTER/SUBSCRIBE answers on this connection */
    bool registered;
    char authenticated[SIP_URI_MAX]; /* the user whose Digest answer this connection gave */
    uint64_t reg_expires_ms;
    /* chat dialogs and pending INFO transactions */
    struct sip_dialog *dialogs;
    TAILQ_HEAD(, sip_txn) txns;
    unsigned n_txns;
    TAILQ_ENTRY(sip_conn) all_link;
};

struct sip_server {
    uv_loop_t *loop;
    struct sip_config cfg;
    struct sip_handlers h;
    uv_tcp_t listener;
    uv_tcp_t tls_listener;
    bool tls_on;
    struct ssl_ctx_st *tls_ctx;
    bool listening;
    uv_prepare_t flusher;
    uv_timer_t sweeper;
    unsigned open_handles;
    bool stopping;
    void (*stop_cb)(void *);
    void *stop_arg;
    char chat_uri[SIP_URI_MAX];
    unsigned char nonce_key[32]; /* nonces are HMACs of their time: no state to keep */
    char transport[8];        /* "TCP" in Via */
    char transport_param[8];  /* "tcp" in URIs */
    uint64_t next_conn_id;
    uint64_t next_dialog_id;
    uint64_t branch_counter;
    TAILQ_HEAD(, sip_conn) conns;
    TAILQ_HEAD(, sip_conn) flush_list;
    struct sip_stats stats;
};

/* sip_conn.c */
void sip_conn_send(struct sip_conn *c, struct pc_rbuf *hdr, struct pc_rbuf *body);
void sip_conn_send_buf(struct sip_conn *c, struct pc_buf *msg);
void sip_conn_close(struct sip_conn *c, const char *why);
void sip_conn_ref(struct sip_conn *c);
void sip_conn_unref(struct sip_conn *c);
size_t sip_conn_out_bytes(const struct sip_conn *c);

/* sip_server.c: one parsed message from a connection. */
void sip_server_dispatch(struct sip_conn *c, osip_message_t *msg);
/* Answers a message osip could not parse, copying what headers it can find. */
void sip_server_reply_unparsable(struct sip_conn *c, const char *buf, size_t len, int code,
                                 const char *reason);
void sip_server_reply(struct sip_conn *c, const osip_message_t *req, int code,
                      const char *reason, const char *to_tag);
void sip_server_sweep(struct sip_server *srv, uint64_t now_ms);

/* sip_tls.c: TLS through memory BIOs (the socket stays libuv's). */
int sip_tls_server_init(struct sip_server *srv, const char *cert, const char *key, char *err,
                        size_t errlen);
void sip_tls_server_free(struct sip_server *srv);
int sip_tls_conn_start(struct sip_conn *c);
void sip_tls_conn_free(struct sip_conn *c);
bool sip_tls_ready(const struct sip_conn *c);
/* Feeds ciphertext; the plaintext is appended to c->in. PC_ECLOSED / PC_EPROTO with why. */
int sip_tls_feed(struct sip_conn *c, const void *data, size_t len, char *why, size_t cap);
int sip_tls_encrypt(struct sip_conn *c, const void *data, size_t len);
void sip_tls_take_output(struct sip_conn *c, struct pc_buf *out);

/* "TCP"/"TLS" (Via), "tcp"/"tls" (URI transport=), and the port the client reached. */
const char *sip_conn_transport(const struct sip_conn *c);
const char *sip_conn_transport_param(const struct sip_conn *c);
int sip_conn_port(const struct sip_conn *c);

/* sip_auth.c: Digest over 407 for REGISTER. */
void sip_auth_init(struct sip_server *srv);
/* True when the REGISTER may proceed for user; otherwise it has been answered (407/403). */
bool sip_auth_register(struct sip_conn *c, osip_message_t *req, const char *user);

/* sip_register.c, sip_subscribe.c */
void sip_handle_register(struct sip_conn *c, osip_message_t *req);
void sip_handle_subscribe(struct sip_conn *c, osip_message_t *req);

/* sip_dialog.c */
void sip_handle_invite(struct sip_conn *c, osip_message_t *req);
void sip_handle_in_dialog(struct sip_conn *c, osip_message_t *req);
void sip_handle_response(struct sip_conn *c, osip_message_t *resp);
void sip_dialog_end(struct sip_dialog *dlg, const char *why);
void sip_conn_end_dialogs(struct sip_conn *c, const char *why);
void sip_conn_abandon_txns(struct sip_conn *c);

/* The identity used for requests on this connection: the registered user, or (without
 * registration) the From URI when it is in our domain. Writes into buf; false if none. */
bool sip_conn_identity(struct sip_conn *c, const osip_message_t *req, char *buf, size_t cap);

#endif
