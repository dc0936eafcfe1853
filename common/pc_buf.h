/* Growable byte buffers for output, and shared read-only byte blocks with a refcount. */
#ifndef PC_BUF_H
#define PC_BUF_H

#include <stdarg.h>
#include <stddef.h>

/* A growable buffer. `data` is always NUL-terminated (not counted in len), so a buffer
 * holding text can be passed as a C string. Zero-initialised = empty and valid. */
struct pc_buf {
    char *data;
    size_t len;
    size_t cap;
};

void pc_buf_reserve(struct pc_buf *b, size_t extra);
void pc_buf_append(struct pc_buf *b, const void *p, size_t len);
void pc_buf_puts(struct pc_buf *b, const char *s);
void pc_buf_putc(struct pc_buf *b, char c);
void pc_buf_printf(struct pc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pc_buf_vprintf(struct pc_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Drops the first n bytes (used by stream readers that consumed a message). */
void pc_buf_consume(struct pc_buf *b, size_t n);
void pc_buf_reset(struct pc_buf *b);
void pc_buf_free(struct pc_buf *b);
/* Gives the bytes away: returns data (caller pc_free()s it) and empties the buffer. */
char *pc_buf_steal(struct pc_buf *b, size_t *len);

/* An immutable byte block shared by many readers, e.g. one serialised chat delivery sent to
 * every participant: each writer takes a reference and drops it when its write is done. */
struct pc_rbuf {
    unsigned refs;
    size_t len;
    char data[];
};

/* Returns a block holding a copy of p (refcount 1). */
struct pc_rbuf *pc_rbuf_new(const void *p, size_t len);
/* Takes the buffer's bytes without copying when possible (refcount 1); b is emptied. */
struct pc_rbuf *pc_rbuf_from_buf(struct pc_buf *b);
struct pc_rbuf *pc_rbuf_ref(struct pc_rbuf *r);
void pc_rbuf_unref(struct pc_rbuf *r);

#endif
