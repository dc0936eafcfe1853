#include "pc_arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pc_alloc.h"

struct pc_arena_chunk {
    struct pc_arena_chunk *next;
    size_t cap;
    size_t used;
    _Alignas(16) unsigned char data[];
};

enum { CHUNK_MIN = 4096 - sizeof(struct pc_arena_chunk) };

void *pc_arena_alloc(struct pc_arena *a, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    struct pc_arena_chunk *c = a->head;
    if (c == NULL || c->cap - c->used < size) {
        size_t cap = size > CHUNK_MIN ? size : CHUNK_MIN;
        c = pc_malloc(sizeof *c + cap);
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    a->used_bytes += size;
    memset(p, 0, size);
    return p;
}

char *pc_arena_strndup(struct pc_arena *a, const char *s, size_t len)
{
    char *d = pc_arena_alloc(a, len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *pc_arena_strdup(struct pc_arena *a, const char *s)
{
    return s != NULL ? pc_arena_strndup(a, s, strlen(s)) : NULL;
}

char *pc_arena_printf(struct pc_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *d = pc_arena_alloc(a, (size_t)(n < 0 ? 0 : n) + 1);
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

void pc_arena_free(struct pc_arena *a)
{
    struct pc_arena_chunk *c = a->head;
    while (c != NULL) {
        struct pc_arena_chunk *next = c->next;
        pc_free(c);
        c = next;
    }
    a->head = NULL;
    a->used_bytes = 0;
}
