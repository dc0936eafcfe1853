/* The local admin socket: newline-delimited JSON requests from pchatctl. */
#ifndef ADMIN_SOCK_H
#define ADMIN_SOCK_H

#include <jansson.h>
#include <uv.h>

#include "chat/chat.h"

struct admin_sock;

/* Listens on a unix socket at path (mode 0600: whoever can open it is an administrator).
 * Each line received is one JSON request for chat_admin_handle; each answer is one line. */
int admin_sock_start(uv_loop_t *loop, const char *path, struct chat_service *svc,
                     struct admin_sock **out);
void admin_sock_stop(struct admin_sock *a);

/* Operations the node itself answers before the room service sees the request (e.g.
 * compliance.status): return an answer to take the request, NULL to pass it on. */
typedef json_t *(*admin_local_fn)(void *ctx, const char *op, json_t *req);
void admin_sock_set_local(struct admin_sock *a, admin_local_fn fn, void *ctx);

#endif
