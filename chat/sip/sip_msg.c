#include "chat/sip/sip_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_str.h"

__attribute__((format(printf, 4, 0))) static void osip_trace_to_log(const char *file, int line,
                                                                   osip_trace_level_t level,
                                                                   const char *fmt, va_list ap)
{
    (void)file;
    (void)line;
    (void)level;
    if (pc_log_min_level <= PC_LOG_DEBUG) {
        char msg[512];
        vsnprintf(msg, sizeof msg, fmt, ap);
        pc_debug("osip: %s", msg);
    }
}

void sip_msg_global_init(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    parser_init();
    osip_trace_initialize_func(OSIP_INFO4, osip_trace_to_log);
}

/* Finds header lines by (full or compact) name in raw text. */
static bool is_header(const char *line, size_t len, const char *full, char compact)
{
    size_t n = strlen(full);
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return false;
    size_t nlen = (size_t)(colon - line);
    while (nlen > 0 && (line[nlen - 1] == ' ' || line[nlen - 1] == '\t'))
        nlen--;
    return (nlen == n && strncasecmp(line, full, n) == 0) ||
           (nlen == 1 && (line[0] | 0x20) == compact);
}

void sip_msg_raw_response_head(struct pc_buf *out, const char *buf, size_t len, int code,
                               const char *reason)
{
    pc_buf_printf(out, "SIP/2.0 %d %s\r\n", code, reason);
    const char *end = buf + len;
    const char *p = memchr(buf, '\n', len);
    while (p != NULL && ++p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL || eol == p || (eol == p + 1 && *p == '\r'))
            break; /* end of headers */
        size_t l = (size_t)(eol - p);
        if (is_header(p, l, "Via", 'v') || is_header(p, l, "From", 'f') ||
            is_header(p, l, "To", 't') || is_header(p, l, "Call-ID", 'i') ||
            is_header(p, l, "CSeq", 0)) {
            size_t copy = l;
            if (copy > 0 && p[copy - 1] == '\r')
                copy--;
            /* Raw header lines can hold anything; only printable bytes are echoed. */
            bool clean = pc_utf8_valid(p, copy) && memchr(p, '\0', copy) == NULL;
            if (clean && copy < 1024) {
                pc_buf_append(out, p, copy);
                pc_buf_puts(out, "\r\n");
            }
        }
        p = eol;
    }
}

bool sip_msg_is_2xx(const char *buf, size_t len)
{
    return len >= 12 && memcmp(buf, "SIP/2.0 2", 9) == 0 && buf[9] >= '0' && buf[9] <= '9' &&
           buf[10] >= '0' && buf[10] <= '9' && buf[11] == ' ';
}

int sip_msg_parse(const char *buf, size_t len, osip_message_t **out, char *errmsg, size_t errlen)
{
    osip_message_t *m = NULL;
    *out = NULL;
    if (osip_message_init(&m) != 0) {
        snprintf(errmsg, errlen, "out of memory");
        return PC_ENOMEM;
    }
    if (osip_message_parse(m, buf, len) != 0) {
        snprintf(errmsg, errlen, "malformed SIP message");
        goto err;
    }
    if (osip_list_size(&m->vias) == 0 || m->from == NULL || m->to == NULL ||
        m->call_id == NULL || m->cseq == NULL || m->cseq->number == NULL ||
        m->cseq->method == NULL) {
        snprintf(errmsg, errlen, "missing mandatory header (Via, From, To, Call-ID or CSeq)");
        goto err;
    }
    if (m->from->url == NULL || m->to->url == NULL) {
        snprintf(errmsg, errlen, "From or To without a URI");
        goto err;
    }
    unsigned long long cseq;
    if (!pc_parse_u64(m->cseq->number, 0, 0xffffffffu, &cseq)) {
        snprintf(errmsg, errlen, "CSeq number is not a 32-bit integer");
        goto err;
    }
    if (MSG_IS_REQUEST(m)) {
        if (m->req_uri == NULL || m->sip_method == NULL ||
            strcmp(m->sip_method, m->cseq->method) != 0) {
            snprintf(errmsg, errlen, "request method and CSeq method differ");
            goto err;
        }
    }
    *out = m;
    return 0;
err:
    osip_message_free(m);
    return PC_EPROTO;
}

const char *sip_msg_header(const osip_message_t *msg, const char *name)
{
    osip_header_t *h = NULL;
    if (osip_message_header_get_byname(msg, name, 0, &h) < 0 || h == NULL)
        return NULL;
    return h->hvalue != NULL ? h->hvalue : "";
}

bool sip_msg_uri_user_host(const osip_uri_t *uri, char *buf, size_t cap)
{
    if (uri == NULL || uri->scheme == NULL || uri->username == NULL || uri->host == NULL)
        return false;
    if (strcasecmp(uri->scheme, "sip") != 0 && strcasecmp(uri->scheme, "sips") != 0)
        return false;
    int n = snprintf(buf, cap, "sip:%s@%s", uri->username, uri->host);
    if (n < 0 || (size_t)n >= cap)
        return false;
    pc_str_lower(buf);
    return true;
}

const char *sip_msg_body(const osip_message_t *msg, size_t *len)
{
    osip_body_t *b = NULL;
    if (osip_message_get_body(msg, 0, &b) < 0 || b == NULL || b->body == NULL) {
        *len = 0;
        return NULL;
    }
    *len = b->length;
    return b->body;
}

osip_message_t *sip_msg_response(const osip_message_t *req, int code, const char *reason,
                                 const char *to_tag)
{
    osip_message_t *r = NULL;
    osip_message_init(&r);
    osip_message_set_version(r, osip_strdup("SIP/2.0"));
    osip_message_set_status_code(r, code);
    osip_message_set_reason_phrase(r, osip_strdup(reason != NULL ? reason : sip_reason(code)));
    osip_list_clone(&req->vias, &r->vias, (int (*)(void *, void **))osip_via_clone);
    osip_from_clone(req->from, &r->from);
    osip_to_clone(req->to, &r->to);
    osip_call_id_clone(req->call_id, &r->call_id);
    osip_cseq_clone(req->cseq, &r->cseq);
    osip_generic_param_t *tag = NULL;
    if (to_tag != NULL && osip_to_get_tag(r->to, &tag) != 0)
        osip_to_set_tag(r->to, osip_strdup(to_tag));
    return r;
}

void sip_msg_set_body(osip_message_t *msg, const char *type, const char *body, size_t len)
{
    if (type != NULL)
        osip_message_set_content_type(msg, type);
    if (len > 0)
        osip_message_set_body(msg, body, len);
}

int sip_msg_serialize(osip_message_t *msg, struct pc_buf *out)
{
    size_t blen = 0;
    sip_msg_body(msg, &blen);
    char cl[24];
    snprintf(cl, sizeof cl, "%zu", blen);
    if (msg->content_length != NULL) {
        osip_content_length_free(msg->content_length);
        msg->content_length = NULL;
    }
    osip_message_set_content_length(msg, cl);
    char *s = NULL;
    size_t n = 0;
    if (osip_message_to_str(msg, &s, &n) != 0 || s == NULL)
        return PC_EPROTO;
    pc_buf_append(out, s, n);
    osip_free(s);
    return 0;
}

const char *sip_reason(int code)
{
    switch (code) {
    case 100: return "Trying";
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 413: return "Request Entity Too Large";
    case 415: return "Unsupported Media Type";
    case 420: return "Bad Extension";
    case 481: return "Call/Transaction Does Not Exist";
    case 486: return "Busy Here";
    case 487: return "Request Terminated";
    case 488: return "Not Acceptable Here";
    case 489: return "Bad Event";
    case 500: return "Server Internal Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Server Time-out";
    case 505: return "Version Not Supported";
    case 513: return "Message Too Large";
    }
    return code < 300 ? "OK" : "Error";
}
