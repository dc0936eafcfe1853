/* The local admin socket: newline-delimited JSON requests from pchatctl. */
#ifndef ADMIN_SOCK_H
#define ADMIN_SOCK_H

#include <uv.h>

#include "chat/chat.h"

struct admin_sock;

/* Listens on a unix socket at path (mode 0600: whoever can open it is an administrator).
 * Each line received is one JSON request for chat_admin_handle; each answer is one line. */
int admin_sock_start(uv_loop_t *loop, const char *path, struct chat_service *svc,
                     struct admin_sock **out);
void admin_sock_stop(struct admin_sock *a);

#endif
