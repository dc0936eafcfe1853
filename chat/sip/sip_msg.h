/* libosip2 helpers: parse a framed message, read headers, build responses and requests. */
#ifndef SIP_MSG_H
#define SIP_MSG_H

#include <osipparser2/osip_parser.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/pc_buf.h"

/* Must run once per process before any parse (osip's parser tables; also routes osip's
 * trace output to our log at debug level). */
void sip_msg_global_init(void);

/* Parses one whole message (as framed by sip_frame). Returns PC_EPROTO with a reason in
 * errmsg when osip rejects it or a mandatory header (Via, From, To, Call-ID, CSeq) is
 * missing or inconsistent (CSeq method != request method). *out must be freed with
 * osip_message_free. */
int sip_msg_parse(const char *buf, size_t len, osip_message_t **out, char *errmsg, size_t errlen);

/* True if the framed message is a 2xx response ("SIP/2.0 2xx "). The server acts on no
 * success answer (sip_handle_response), and clients answer every delivered INFO with one,
 * so these skip libosip2 entirely. */
bool sip_msg_is_2xx(const char *buf, size_t len);

/* Appends "SIP/2.0 code reason" and the Via, From, To, Call-ID and CSeq lines of the raw
 * request buf (clean UTF-8 lines under 1 KiB only), but no Content-Length and no blank line:
 * an answer that needs no parse (a broken request; a client's 200 to a delivered INFO). */
void sip_msg_raw_response_head(struct pc_buf *out, const char *buf, size_t len, int code,
                               const char *reason);

/* First value of a header by name (case-insensitive; works for osip's "other" headers such
 * as Event, Expires, Supported, Session-Expires). NULL if absent. Borrowed from msg. */
const char *sip_msg_header(const osip_message_t *msg, const char *name);

/* "sip:user@host" of a From/To/Contact-like header, lower-cased, into buf. False if the URI
 * is not a sip/sips URI with a user part. */
bool sip_msg_uri_user_host(const osip_uri_t *uri, char *buf, size_t cap);

/* The message body (first body part) or NULL/0. */
const char *sip_msg_body(const osip_message_t *msg, size_t *len);

/* Builds the skeleton of a response to req: status line, copied Via list, From, To (with
 * to_tag added when the request's To has none and to_tag != NULL), Call-ID, CSeq. The caller
 * adds headers with osip_message_set_header and a body with sip_msg_set_body, then
 * serialises with sip_msg_serialize. */
osip_message_t *sip_msg_response(const osip_message_t *req, int code, const char *reason,
                                 const char *to_tag);

/* Sets body and Content-Type (NULL type = no Content-Type). */
void sip_msg_set_body(osip_message_t *msg, const char *type, const char *body, size_t len);

/* Serialises msg, always with an exact Content-Length (0 when bodiless), into out (appends). */
int sip_msg_serialize(osip_message_t *msg, struct pc_buf *out);

/* The standard reason phrase for a status code. */
const char *sip_reason(int code);

#endif
