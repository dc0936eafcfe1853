/* Splits a TCP byte stream into whole SIP messages (start line, headers, Content-Length body). */
#ifndef SIP_FRAME_H
#define SIP_FRAME_H

#include <stddef.h>

struct sip_frame_limits {
    size_t max_header_bytes; /* start line + headers + blank line */
    size_t max_body_bytes;   /* Content-Length ceiling */
};

/* Resumable scan state for one connection; zero-initialised = start of a message. Holds
 * only offsets, so the caller may move or grow its buffer between calls. */
struct sip_framer {
    size_t skip;     /* CR/LF keep-alive bytes seen before the message */
    size_t scanned;  /* bytes of the header block already searched for CRLFCRLF */
};

/* Result of a complete frame: the message occupies buf[skip .. skip+header_len+body_len). */
struct sip_frame {
    size_t skip;        /* leading CR/LF bytes to drop (keep-alives, RFC 5626 pings) */
    size_t header_len;  /* start line .. blank line inclusive */
    size_t body_len;    /* Content-Length value */
    int has_length;     /* 0 if the message carried no Content-Length header */
};

/* Looks for the next whole message in buf[0..len).
 * Returns 0 and fills *frame when one is complete; the caller consumes
 * frame->skip + header_len + body_len bytes and calls again with a reset framer.
 * PC_EAGAIN: more bytes needed (state kept in *fr; only CR/LF may be consumed: frame->skip
 * is then also set so keep-alives can be dropped early).
 * PC_ETOOBIG: the header block or Content-Length passes the limits.
 * PC_EPROTO: Content-Length malformed or given twice with different values.
 * On errors the stream cannot be resynchronised: answer (413/400) and close. */
int sip_frame_next(struct sip_framer *fr, const char *buf, size_t len,
                   const struct sip_frame_limits *lim, struct sip_frame *frame);

#endif
