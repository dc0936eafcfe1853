/* pchatctl's side of a node's admin socket. */
#ifndef ADMIN_CLIENT_H
#define ADMIN_CLIENT_H

#include <jansson.h>

/* Sends one request line to the unix socket at path and reads the answer line (malloc'd).
 * Returns 0, or 2 with the reason printed to stderr. */
int admin_talk(const char *path, const char *request, char **answer);

/* Same with JSON: the parsed answer (caller json_decref's it), or NULL (reason printed). */
json_t *admin_call(const char *path, json_t *req);

#endif
