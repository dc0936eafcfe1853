#include "pc_buf.h"

#include <stdio.h>
#include <string.h>

#include "pc_alloc.h"

void pc_buf_reserve(struct pc_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap != 0 ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = pc_realloc(b->data, cap);
    b->cap = cap;
}

void pc_buf_append(struct pc_buf *b, const void *p, size_t len)
{
    pc_buf_reserve(b, len);
    if (len > 0)
        memcpy(b->data + b->len, p, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void pc_buf_puts(struct pc_buf *b, const char *s)
{
    pc_buf_append(b, s, strlen(s));
}

void pc_buf_putc(struct pc_buf *b, char c)
{
    pc_buf_append(b, &c, 1);
}

void pc_buf_vprintf(struct pc_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    pc_buf_reserve(b, 64);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    if (n >= 0 && (size_t)n >= b->cap - b->len) {
        pc_buf_reserve(b, (size_t)n);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
    }
    va_end(ap2);
    if (n > 0)
        b->len += (size_t)n;
}

void pc_buf_printf(struct pc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pc_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void pc_buf_consume(struct pc_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data != NULL)
        b->data[b->len] = '\0';
}

void pc_buf_reset(struct pc_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void pc_buf_free(struct pc_buf *b)
{
    pc_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *pc_buf_steal(struct pc_buf *b, size_t *len)
{
    if (b->data == NULL)
        pc_buf_reserve(b, 0);
    char *d = b->data;
    if (len != NULL)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

struct pc_rbuf *pc_rbuf_new(const void *p, size_t len)
{
    struct pc_rbuf *r = pc_malloc(sizeof *r + len + 1);
    r->refs = 1;
    r->len = len;
    if (len > 0)
        memcpy(r->data, p, len);
    r->data[len] = '\0';
    return r;
}

struct pc_rbuf *pc_rbuf_from_buf(struct pc_buf *b)
{
    struct pc_rbuf *r = pc_rbuf_new(b->data, b->len);
    pc_buf_reset(b);
    return r;
}

struct pc_rbuf *pc_rbuf_ref(struct pc_rbuf *r)
{
    r->refs++;
    return r;
}

void pc_rbuf_unref(struct pc_rbuf *r)
{
    if (r != NULL && --r->refs == 0)
        pc_free(r);
}
