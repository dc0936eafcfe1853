/* Internals shared by the XCCOS codec's own files (xccos.c, xccos_decode.c,
 * xccos_encode.c); no other module includes this. */
#ifndef XCCOS_INT_H
#define XCCOS_INT_H

#include <stdbool.h>

#include "chat/xccos/xccos.h"
#include "common/pc_str.h"

/* Namespace of the envelope; SIPE and Lync both declare it as the default namespace. */
#define XCCOS_NS "urn:parlano:xml:ns:xccos"

/* Room URI prefix, case-sensitive: SIPE compares room URIs byte for byte. */
#define XCCOS_CHAN_PREFIX "ma-chan://"

/* chansrch chanib children. "visibilty" is misspelt on the wire and SIPE matches exactly
 * that spelling, so it must stay. */
#define XCCOS_INFO_UCNT "urn:parlano:ma:info:ucnt"
#define XCCOS_INFO_VISIBILITY "urn:parlano:ma:info:visibilty"
#define XCCOS_PROP_FILEPOST "urn:parlano:ma:prop:filepost"
#define XCCOS_PROP_INVITE "urn:parlano:ma:prop:invite"
#define XCCOS_PROP_LOGGED "urn:parlano:ma:prop:logged"

/* Maps the NAME part of an id ("join" of "cmd:join"), compared case-insensitively as SIPE
 * does, to an operation that exists for `kind`; XCCOS_OP_UNKNOWN otherwise. */
enum xccos_op xccos_op_lookup(enum xccos_kind kind, const char *name);

/* The NAME part of an id: what follows a leading "cmd:", "rpl:" or "ntc:" (any case), or
 * the whole id when it has none of them. The prefix is not checked against the element it
 * sits on: decoder and encoder agree on this one rule, so a decoded unknown op re-encodes
 * to the same op, and a reply to "cmd:frob" can be sent as "rpl:frob". */
const char *xccos_id_name(const char *id);

/* Finds domain and id of "ma-chan://domain/id" without copying. Both parts are non-empty;
 * id is everything after the first '/' behind the domain (SIPE splits the same way). */
bool xccos_chan_uri_parts(const char *uri, struct pc_str *domain, struct pc_str *id);

#endif
