/* pchatctl's side of a node's admin API over HTTP(S) (docs/WEB.md: POST /api/admin). */
#ifndef ADMIN_HTTP_H
#define ADMIN_HTTP_H

#include <jansson.h>

struct admin_http {
    const char *url;      /* "http://127.0.0.1:8080" or "https://…" */
    const char *token;    /* Bearer token, or NULL */
    const char *user;     /* Basic credentials when there is no token */
    const char *password;
    const char *cacert;   /* PEM CA file for HTTPS (NULL: the system's CAs) */
};

/* Sends one request; the parsed answer (json_decref it), or NULL with the reason printed. */
json_t *admin_http_call(const struct admin_http *h, json_t *req);

#endif
