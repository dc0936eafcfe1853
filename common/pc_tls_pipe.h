/* TLS on one TCP connection (OpenSSL memory BIOs on the loop) for a consumer that never sees TLS. */
#ifndef PC_TLS_PIPE_H
#define PC_TLS_PIPE_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* A pipe lives in two stages.
 *
 * Message stage: the owner connects or accepts the pipe's TCP handle, starts the handshake,
 * and then exchanges a few plaintext bytes through the pipe itself (the cluster port's
 * preamble and verdict). Callbacks: handshake, data, error. The owner ends it with
 * pc_tls_pipe_close, or turns it into a bridge.
 *
 * Bridge stage (pc_tls_pipe_bridge): a socketpair is made; the owner gets one end as a file
 * descriptor and gives it to the consumer (a uv_pipe_t for raft or the peer link, a plain
 * connection of the HTTP server); the pipe keeps the other end and moves bytes between it
 * and the TLS connection in both directions, with back-pressure (a side stops being read
 * while more than 1 MiB waits to be written to the other). From then on the pipe ends by
 * itself: when the consumer closes its end (close_notify is sent, queued ciphertext is
 * flushed, the TCP connection is shut down), when the peer closes (what was decrypted is
 * still delivered, then the consumer reads EOF and its writes fail), or on any error.
 *
 * Why a socketpair rather than a custom uv stream: libuv has no user-defined stream type,
 * and consumers such as raft_uv take a uv_stream_t they read, write, uv_close and free
 * themselves. The cost is one extra local hop per direction on the same loop.
 *
 * Single-threaded: everything on the loop given to pc_tls_pipe_new; callbacks are never
 * called from inside a pc_tls_pipe_* call. The process must ignore SIGPIPE (as pchatd does):
 * libuv writes with write(2), and a consumer or peer that went away must fail a write, not
 * end the process. */

struct pc_tls_pipe;

struct pc_tls_pipe_cbs {
    void *arg;
    /* Message stage: the handshake completed (the peer's certificate, if any, verified
     * against the SSL_CTX's settings). */
    void (*handshake)(struct pc_tls_pipe *tp, void *arg);
    /* Message stage: plaintext arrived. p is valid during the call. The callback may write,
     * bridge (the bytes that follow in the same read then go to the consumer, in order) or
     * close. */
    void (*data)(struct pc_tls_pipe *tp, void *arg, const void *p, size_t len);
    /* Message stage: the connection failed or ended: status PC_EPROTO (TLS: why is
     * OpenSSL's reason, with the certificate check's result when that failed), PC_ECLOSED
     * (the peer closed) or PC_EIO (socket error). Nothing more is read; the owner closes. */
    void (*error)(struct pc_tls_pipe *tp, void *arg, int status, const char *why);
    /* Fired once when the pipe is released (after pc_tls_pipe_close, or at a bridge's end),
     * with why NULL for a normal end, else a reason for the log. May be NULL. */
    void (*closed)(void *arg, const char *why);
};

/* Makes a pipe with an initialised, unconnected TCP handle and an SSL object of ctx in the
 * server (accept) or client (connect) role. ctx is reference-counted by OpenSSL: the caller
 * may free its own reference while pipes live. Returns 0 or PC_ENOMEM. */
int pc_tls_pipe_new(uv_loop_t *loop, SSL_CTX *ctx, bool server, const struct pc_tls_pipe_cbs *cbs,
                    struct pc_tls_pipe **out);

/* The TCP handle, to uv_accept into or uv_tcp_connect; owned by the pipe (do not close it,
 * do not change its data field). */
uv_tcp_t *pc_tls_pipe_tcp(struct pc_tls_pipe *tp);

/* The SSL object, e.g. to read the peer's certificate after the handshake. */
SSL *pc_tls_pipe_ssl(struct pc_tls_pipe *tp);

/* Once the TCP connection is up: starts reading and the handshake (a client sends its
 * hello). Returns 0 or PC_EIO. */
int pc_tls_pipe_start(struct pc_tls_pipe *tp);

/* Message stage, after the handshake callback: sends plaintext (copied). Returns 0 or
 * PC_EIO (the error callback will not fire for it: the owner closes). */
int pc_tls_pipe_write(struct pc_tls_pipe *tp, const void *p, size_t len);

/* Switches to the bridge stage. early (copied) goes to the consumer before anything else.
 * closed/arg replace the callbacks given at creation (no other callback fires any more).
 * On success *consumer_fd is the consumer's end (non-blocking, close-on-exec, now the
 * caller's). May be called before the handshake completed (the handshake then runs inside
 * the bridge, and the consumer's bytes wait for it). Returns 0, or PC_EIO (no socketpair:
 * the pipe is unchanged, still in the message stage). */
int pc_tls_pipe_bridge(struct pc_tls_pipe *tp, const void *early, size_t early_len,
                       void (*closed)(void *arg, const char *why), void *arg, int *consumer_fd);

/* Ends the pipe now in either stage (a bridge: until its closed callback fired): sends a
 * TLS close_notify when notify is true and the handshake completed (best effort), closes
 * both handles, then fires closed. No other callback fires after this call. */
void pc_tls_pipe_close(struct pc_tls_pipe *tp, bool notify);

/* OpenSSL's reason for the last failure on this thread, with the certificate check's
 * result for ssl if that failed; clears OpenSSL's error queue. */
void pc_tls_error(SSL *ssl, char *out, size_t cap);

#endif
