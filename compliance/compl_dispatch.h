/* The compliance dispatcher: on the metadata leader, hands the events of the replicated
 * compliance log to every configured adapter in batches, then advances the adapter's
 * replicated cursor (which deletes what every adapter took, on every replica). */
#ifndef COMPL_DISPATCH_H
#define COMPL_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct cluster;
struct compl_adapter;
struct compl_dispatch;

struct compl_dispatch_config {
    unsigned interval_ms; /* between two rounds when there is no full batch waiting */
    unsigned batch_size;  /* events per delivery at most */
};

/* Takes ownership of the adapters. Runs on every node; acts only while this node is the
 * metadata group's ready leader, so a new leader resumes from the replicated cursors. */
struct compl_dispatch *compl_dispatch_start(uv_loop_t *loop, struct cluster *cl,
                                            const struct compl_dispatch_config *cfg,
                                            struct compl_adapter **adapters, size_t n);
/* Stops; a delivery in flight completes (its cursor is not advanced: it is offered again
 * by the next leader, with the same event ids). */
void compl_dispatch_stop(struct compl_dispatch *d);

struct compl_adapter_status {
    const char *name;
    bool active;            /* this node dispatches (it is the metadata leader) */
    bool busy;              /* a batch is with the adapter or its cursor is being stored */
    uint64_t backlog;       /* events after the adapter's cursor in this node's log */
    uint64_t delivered;     /* events confirmed by this node's dispatcher since start */
    uint64_t batches, failures;
    unsigned retry_in_ms;   /* backoff after a failure (0 = none) */
    char last_error[300];
};
/* Fills up to max entries; returns the number of adapters. */
size_t compl_dispatch_status(struct compl_dispatch *d, struct compl_adapter_status *out, size_t max);

/* Events in this node's compliance log (every group), counted up to limit. */
uint64_t compl_dispatch_log_size(struct compl_dispatch *d, uint64_t limit);

#endif
