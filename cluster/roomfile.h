/* Files of rooms in the store: the record written with the announcing message, and the
 * chunks committed before it (storage/KEYS.md, `files`). */
#ifndef ROOMFILE_H
#define ROOMFILE_H

#include "cluster/cluster.h"

struct store;
struct store_batch;
struct pc_arena;

/* Puts the file's record into batch. */
void roomfile_put(struct store_batch *b, const struct room_file *f);
void roomfile_put_chunk(struct store_batch *b, uint64_t room_no, uint64_t file_no,
                        uint32_t chunk, const void *data, size_t len);

int roomfile_get(struct store *st, uint64_t room_no, uint64_t file_no, struct room_file *out,
                 struct pc_arena *arena);
int roomfile_list(struct store *st, uint64_t room_no,
                  void (*cb)(void *ctx, const struct room_file *f), void *ctx);
int roomfile_chunk(struct store *st, uint64_t room_no, uint64_t file_no, uint32_t chunk,
                   struct pc_buf *out);
/* The first of the file's chunks not stored here (chunks when none is missing). */
uint32_t roomfile_first_missing(struct store *st, uint64_t room_no, uint64_t file_no,
                                uint32_t chunks);
/* Deletes every chunk of the file (not its record) in batch. */
void roomfile_drop_chunks(struct store_batch *b, uint64_t room_no, uint64_t file_no);
/* Calls cb for every file of the room that has chunks here but no record (an upload in
 * progress or abandoned): one seek per file, whatever its size. */
int roomfile_unannounced(struct store *st, uint64_t room_no,
                         void (*cb)(void *ctx, uint64_t file_no), void *ctx);
/* A record's stored bytes pass the decoder (a snapshot's are checked before they are put). */
bool roomfile_record_valid(const void *p, size_t len);

#endif
