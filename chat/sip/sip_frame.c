#include "chat/sip/sip_frame.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "common/pc_err.h"

/* Finds "\r\n\r\n" in buf[from..len); returns the offset just past it, or 0. Bare "\n\n"
 * is accepted too (RFC 3261 §7.5 asks implementations to be lenient with line ends). */
static size_t find_header_end(const char *buf, size_t from, size_t len)
{
    for (size_t i = from; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Parses the value of a Content-Length line: optional blanks, digits, optional blanks. */
static int parse_length(const char *p, const char *end, size_t max, size_t *out)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == end || !isdigit((unsigned char)*p))
        return PC_EPROTO;
    size_t v = 0;
    while (p < end && isdigit((unsigned char)*p)) {
        if (v > (max + 1) / 10 + 1)
            return PC_ETOOBIG; /* stop before overflow; far beyond any limit anyway */
        v = v * 10 + (size_t)(*p - '0');
        p++;
    }
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
        p++;
    if (p != end)
        return PC_EPROTO;
    if (v > max)
        return PC_ETOOBIG;
    *out = v;
    return 0;
}

/* Walks the header lines of buf[0..hlen) and extracts Content-Length ("l" compact form). */
static int scan_content_length(const char *buf, size_t hlen, const struct sip_frame_limits *lim,
                               struct sip_frame *frame)
{
    const char *p = memchr(buf, '\n', hlen); /* skip the start line */
    const char *end = buf + hlen;
    frame->has_length = 0;
    frame->body_len = 0;
    while (p != NULL && ++p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon != NULL) {
            const char *name_end = colon;
            while (name_end > p && (name_end[-1] == ' ' || name_end[-1] == '\t'))
                name_end--;
            size_t nlen = (size_t)(name_end - p);
            if ((nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0) ||
                (nlen == 1 && (*p == 'l' || *p == 'L'))) {
                size_t v;
                int rc = parse_length(colon + 1, eol, lim->max_body_bytes, &v);
                if (rc != 0)
                    return rc;
                if (frame->has_length && v != frame->body_len)
                    return PC_EPROTO;
                frame->has_length = 1;
                frame->body_len = v;
            }
        }
        p = eol;
    }
    return 0;
}

int sip_frame_next(struct sip_framer *fr, const char *buf, size_t len,
                   const struct sip_frame_limits *lim, struct sip_frame *frame)
{
    /* Keep-alive CR/LF between messages is not part of any message. */
    while (fr->skip < len && (buf[fr->skip] == '\r' || buf[fr->skip] == '\n'))
        fr->skip++;
    frame->skip = fr->skip;
    if (fr->skip == len)
        return PC_EAGAIN;
    const char *msg = buf + fr->skip;
    size_t avail = len - fr->skip;
    /* Resume the search a few bytes back in case the terminator straddled two reads. */
    size_t from = fr->scanned > 3 ? fr->scanned - 3 : 0;
    size_t hend = find_header_end(msg, from, avail);
    if (hend == 0) {
        fr->scanned = avail;
        return avail > lim->max_header_bytes ? PC_ETOOBIG : PC_EAGAIN;
    }
    if (hend > lim->max_header_bytes)
        return PC_ETOOBIG;
    int rc = scan_content_length(msg, hend, lim, frame);
    if (rc != 0)
        return rc;
    frame->header_len = hend;
    fr->scanned = hend;
    if (avail - hend < frame->body_len)
        return PC_EAGAIN;
    fr->skip = 0;
    fr->scanned = 0;
    return 0;
}
