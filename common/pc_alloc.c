#include "pc_alloc.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* malloc_usable_size gives the real size of a block, so frees can be accounted without a
 * header in front of every allocation (which would break memory handed to libraries that
 * free it with free()). */
static atomic_size_t used_bytes;
static atomic_long fail_countdown;

static void *account(void *p)
{
    if (p != NULL)
        atomic_fetch_add_explicit(&used_bytes, malloc_usable_size(p), memory_order_relaxed);
    return p;
}

static void oom(size_t size)
{
    fprintf(stderr, "pchat: out of memory allocating %zu bytes; aborting\n", size);
    abort();
}

void *pc_try_malloc(size_t size)
{
    long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (n > 0 && atomic_fetch_sub(&fail_countdown, 1) == 1)
        return NULL;
    return account(malloc(size == 0 ? 1 : size));
}

void *pc_malloc(size_t size)
{
    void *p = account(malloc(size == 0 ? 1 : size));
    if (p == NULL)
        oom(size);
    return p;
}

void *pc_calloc(size_t count, size_t size)
{
    void *p = account(calloc(count == 0 ? 1 : count, size == 0 ? 1 : size));
    if (p == NULL)
        oom(count * size);
    return p;
}

void *pc_realloc(void *ptr, size_t size)
{
    size_t old = ptr != NULL ? malloc_usable_size(ptr) : 0;
    void *p = realloc(ptr, size == 0 ? 1 : size);
    if (p == NULL)
        oom(size);
    atomic_fetch_sub_explicit(&used_bytes, old, memory_order_relaxed);
    return account(p);
}

void pc_free(void *ptr)
{
    if (ptr == NULL)
        return;
    atomic_fetch_sub_explicit(&used_bytes, malloc_usable_size(ptr), memory_order_relaxed);
    free(ptr);
}

char *pc_strdup(const char *s)
{
    return pc_strndup(s, strlen(s));
}

char *pc_strndup(const char *s, size_t len)
{
    char *d = pc_malloc(len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

void *pc_memdup(const void *p, size_t len)
{
    void *d = pc_malloc(len);
    if (len > 0)
        memcpy(d, p, len);
    return d;
}

size_t pc_alloc_used(void)
{
    return atomic_load_explicit(&used_bytes, memory_order_relaxed);
}

void pc_alloc_fail_after(long n)
{
    atomic_store(&fail_countdown, n);
}

void pc_alloc_install_uv(void)
{
    uv_replace_allocator(pc_malloc, pc_realloc, pc_calloc, pc_free);
}
