/* pchatctl export / import (docs/EXPORT.md). */
#ifndef TRANSFER_H
#define TRANSFER_H

#include <jansson.h>
#include <stdbool.h>

/* How a request reaches the node: call returns the answer (json_decref it) or NULL with
 * the reason printed; it does not take the request. */
struct transfer_api {
    json_t *(*call)(void *ctx, json_t *req);
    void *ctx;
};

/* argv: the arguments after the verb. Return the process exit status. */
int transfer_export(const struct transfer_api *api, int argc, char **argv);
int transfer_import(const struct transfer_api *api, int argc, char **argv);

#endif
