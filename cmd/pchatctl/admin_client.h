/* pchatctl's side of a node's admin socket. */
#ifndef ADMIN_CLIENT_H
#define ADMIN_CLIENT_H

#include <jansson.h>

/* Sends one JSON request line to the node's unix socket at path and reads the answer line:
 * the parsed answer (the caller json_decref's it), or NULL with the reason printed. */
json_t *admin_call(const char *path, json_t *req);

#endif
