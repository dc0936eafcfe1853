/* Allocation wrappers: byte accounting for /metrics and a failure hook for tests. */
#ifndef PC_ALLOC_H
#define PC_ALLOC_H

#include <stddef.h>

/* pc_malloc & co. abort the process with a log line when the system is out of memory: a
 * chat node that cannot allocate a few bytes cannot keep any promise, and a clean crash
 * lets the pool fail over. Callers that can degrade gracefully (a big upload buffer) use
 * pc_try_malloc, which returns NULL instead. */
void *pc_malloc(size_t size);
void *pc_calloc(size_t count, size_t size);
void *pc_realloc(void *ptr, size_t size);
void *pc_try_malloc(size_t size);
void pc_free(void *ptr);
char *pc_strdup(const char *s);
char *pc_strndup(const char *s, size_t len);
void *pc_memdup(const void *p, size_t len);

/* Bytes currently allocated through these wrappers (all threads). */
size_t pc_alloc_used(void);

/* Test hook: make the Nth pc_try_malloc from now return NULL (0 disables). */
void pc_alloc_fail_after(long n);

/* Installs the wrappers into libuv (uv_replace_allocator) so its memory is counted too.
 * Must be called before any libuv handle is created. */
void pc_alloc_install_uv(void);

#endif
