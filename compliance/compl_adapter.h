/* A compliance adapter: where the metadata leader hands batches of events (Lync's
 * IComplianceAdapter.Translate). Implementations live in compliance/adapters/. */
#ifndef COMPL_ADAPTER_H
#define COMPL_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>

#include "compliance/compl_log.h"

/* Called exactly once per deliver, from the loop: status 0 = the adapter has the batch (it
 * is durable on its side); otherwise why says what failed (the batch is offered again). */
typedef void (*compl_done_cb)(void *arg, int status, const char *why);

struct compl_adapter {
    const char *name; /* its cursor's name in the metadata: "xml", "exec" */
    /* Takes the batch (serialising it before returning: recs may be freed right after). */
    void (*deliver)(struct compl_adapter *a, const struct compl_rec *recs, size_t n,
                    compl_done_cb done, void *arg);
    /* Frees the adapter; a delivery in flight still calls done first (with its outcome). */
    void (*free)(struct compl_adapter *a);
};

struct uv_loop_s;

/* XML files in Lync's compliance shape, one per batch (per room and batch with per_room),
 * written atomically into dir (temp file, fsync, rename, fsync of dir). */
struct compl_adapter *compl_xml_adapter_new(struct uv_loop_s *loop, const char *dir, bool per_room);

/* Runs `sh -c command` per batch with the events as JSON lines on its standard input; exit
 * status 0 confirms the batch. A command that runs longer than timeout_s is killed. */
struct compl_adapter *compl_exec_adapter_new(struct uv_loop_s *loop, const char *command,
                                             unsigned timeout_s);

#endif
