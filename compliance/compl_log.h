/* The compliance log as the dispatcher reads it: every raft group's events, in log order,
 * from the node's store (they are written there by the same applies as their actions). */
#ifndef COMPL_LOG_H
#define COMPL_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "compliance/compl_event.h"

struct store;
struct pc_arena;

/* One event with its place in the log. */
struct compl_rec {
    uint32_t group;
    uint64_t index;
    uint32_t n;
    char id[48];           /* "<group>-<index>-<n>", stable on every replica */
    struct compl_event ev; /* strings in the reader's arena */
};

/* Reads up to max events of group that come after (after_index, after_n), in log order.
 * Returns how many (into out), or PC_E* (a corrupt event: PC_ECORRUPT names it in the log
 * and is skipped, never blocks the ones behind it). */
int compl_log_read(struct store *st, uint32_t group, uint64_t after_index, uint32_t after_n,
                   size_t max, struct pc_arena *arena, struct compl_rec *out);

/* How many events of group come after the position, counting up to limit. */
size_t compl_log_count(struct store *st, uint32_t group, uint64_t after_index, uint32_t after_n,
                       size_t limit);

/* Events of every group in the store, counted up to limit. */
uint64_t compl_log_count_all(struct store *st, uint64_t limit);

#endif
