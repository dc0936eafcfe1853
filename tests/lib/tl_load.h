/* Continuous posting for fault tests, logged in the format tests/checker reads. */
#ifndef TL_LOAD_H
#define TL_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/lib/tl.h"

/* A poster is one signed-in client that keeps up to `window` posts in flight in one room
 * and writes everything that happens to its log (see `pchat-check --help`): S when a post
 * is sent, A when its outcome is success (the SIP 200 or the echo of the post, whichever
 * comes first), F when it was refused (never committed: 403, 404, 503), U when the outcome
 * cannot be known (connection lost, 408/500/504), J when it joins and R for every delivery.
 * A poster whose connection dies reconnects to the next port of its list and rejoins. */
struct tl_poster;

struct tl_poster *tl_poster_new(const char *name, const char *user, const int *ports, size_t n_ports,
                                const char *room_uri, unsigned window, const char *log_path);
/* Runs every poster for ms milliseconds (posting while `posting` is true, else only
 * receiving). */
void tl_posters_run(struct tl_poster *const *p, size_t n, unsigned ms, bool posting);
/* Fills every poster's window and puts the posts on the wire without waiting for
 * answers (to kill a node while they are in flight). */
void tl_posters_fire(struct tl_poster *const *p, size_t n);
/* Waits until no post of any poster is in flight (or ms passed). True if drained. */
bool tl_posters_settle(struct tl_poster *const *p, size_t n, unsigned ms);
/* Counts for progress lines and assertions. */
struct tl_poster_stats {
    uint64_t sent, acked, refused, unknown, delivered, reconnects;
    uint64_t last_ack_ms; /* monotonic time of the newest acknowledgement */
};
void tl_poster_stats(const struct tl_poster *p, struct tl_poster_stats *out);
/* Closes the client and the log. */
void tl_poster_free(struct tl_poster *p);

/* Writes the full history of room as seen by a client on port (N line, then H lines
 * oldest first), paging backwards through bccontext. Returns the number of messages. */
size_t tl_dump_history(int port, const char *node_label, const char *room_uri, const char *path);

/* Runs $PCHAT_BUILD/bin/pchat-check with args (a shell word list); prints its output;
 * returns its exit status. */
int tl_check(const char *args);

#endif
