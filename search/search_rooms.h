/* The rooms a search may cover for a user (every front end asks here). */
#ifndef SEARCH_ROOMS_H
#define SEARCH_ROOMS_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/meta.h"

#define SEARCH_ROOMS_NAMED_MAX 64

/* refs: comma-separated room names or ma-chan:// URIs, or NULL/"" for every room the user
 * may read. On success *rooms (pc_free it) holds at least one room number. Errors, with a
 * message for the user in err: PC_ENOTFOUND (no such room, or one the user may not know
 * about; or no readable room at all), PC_EDENIED (visible but not readable: closed room,
 * disabled room), PC_EINVAL (malformed list). */
int search_rooms_for(const struct meta *m, const char *user, const char *refs, uint64_t **rooms,
                     size_t *n, char *err, size_t errlen);

#endif
