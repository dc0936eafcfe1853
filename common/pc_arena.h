/* Bump allocator for objects that die together (one decoded message, one request). */
#ifndef PC_ARENA_H
#define PC_ARENA_H

#include <stddef.h>

struct pc_arena_chunk;

/* Zero-initialised = empty and valid. Memory comes from pc_malloc in chunks; everything is
 * released at once by pc_arena_free. Not thread-safe. */
struct pc_arena {
    struct pc_arena_chunk *head;
    size_t used_bytes; /* total handed out, for limits */
};

void *pc_arena_alloc(struct pc_arena *a, size_t size);   /* zeroed, 16-byte aligned */
char *pc_arena_strdup(struct pc_arena *a, const char *s); /* NULL -> NULL */
char *pc_arena_strndup(struct pc_arena *a, const char *s, size_t len);
char *pc_arena_printf(struct pc_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pc_arena_free(struct pc_arena *a);

#endif
