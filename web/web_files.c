/* Files posted to rooms (docs/WEB.md): upload, list, download.
 *
 * An upload streams: its body is cut into CLUSTER_FILE_CHUNK pieces, each committed in the
 * room's shard group (ROOM_REQ_FILE_CHUNK) before more of the body is read beyond one more
 * chunk, so an upload holds at most one chunk buffer plus one chunk in flight whatever the
 * file's size. The body is paused until the sender is known and allowed to post in the
 * room. Once the body is in, the last chunk and then a POST carrying the file's record and
 * the message announcing it (a ma-filelink) commit; the answer is the file's record.
 *
 * A download reads the chunks from this node's store as the client takes the bytes. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat_acl.h"
#include "chat/chat_admin_int.h"
#include "cluster/cluster.h"
#include "common/pc_alloc.h"
#include "common/pc_arena.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_rand.h"
#include "common/pc_str.h"
#include "common/pc_time.h"
#include "web/web_int.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/* A file name as uploaded: not empty, at most CLUSTER_FILE_NAME_MAX bytes of UTF-8, no '/',
 * no control characters, not "." or "..". NULL when fine, else what is wrong. */
static const char *name_problem(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return "the file needs a name: POST /api/rooms/<room>/files?name=<file name>";
    size_t len = strlen(name);
    if (len > CLUSTER_FILE_NAME_MAX)
        return "the file name is too long (255 bytes at most)";
    if (!pc_utf8_valid(name, len))
        return "the file name is not valid UTF-8";
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        if (*p == '/')
            return "the file name may not contain '/'";
        if (*p < 0x20 || *p == 0x7f)
            return "the file name may not contain control characters";
    }
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return "the file name may not be '.' or '..'";
    return NULL;
}

/* Percent-encodes everything but the given safe characters and alphanumerics. */
static void pct_encode(struct pc_buf *b, const char *s, const char *safe)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            (*p < 0x80 && strchr(safe, *p) != NULL)) {
            pc_buf_putc(b, (char)*p);
        } else {
            pc_buf_putc(b, '%');
            pc_buf_putc(b, hex[*p >> 4]);
            pc_buf_putc(b, hex[*p & 15]);
        }
    }
}

/* "0123456789abcdef" → file number; false unless exactly 16 hex digits. */
static bool parse_file_id(const char *s, uint64_t *out)
{
    if (strlen(s) != 16)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return false;
        v = v << 4 | d;
    }
    *out = v;
    return true;
}

/* The room of a request and whether user may do action there: the room, or NULL with the
 * answer given (404 for a room the user may not know, 403 with the reason otherwise). */
static const struct meta_room *room_for(struct web_service *w, struct http_req *r,
                                        const char *ref, const char *user,
                                        enum chat_action action)
{
    const struct meta_room *room = chat_admin_find_room(w->svc, ref);
    const char *why = NULL;
    int rc = chat_acl_check(cluster_meta(w->cl), room, user, action, &why);
    if (rc == 0)
        return room;
    if (rc == PC_ENOTFOUND)
        http_reply_error(r, 404, "no room named '%s'", ref);
    else
        http_reply_error(r, 403, "%s",
                         why != NULL ? why
                                     : (action == CHAT_POST ? "you may not post in this room"
                                                            : "you may not enter this room"));
    return NULL;
}

static void reply_busy(struct http_req *r, const char *what)
{
    http_add_header(r, "Retry-After", "5");
    http_reply_error(r, 503, "%s", what);
}

/* ---- upload ------------------------------------------------------------------------------- */

struct upload {
    struct upload *next;       /* uploads waiting for or past authentication */
    struct web_service *w;
    struct http_req *r;        /* for finding it at authentication; NULL once the request ended */
    struct http_ticket *ticket;
    unsigned refs;             /* the request's (the body sink) + one per operation in flight */
    char user[sizeof ((struct web_identity *)0)->user];
    char *name;
    uint64_t room_no, file_no;
    char room_guid[PC_GUID_LEN];
    uint64_t max_bytes, total;
    char *buf;                 /* CLUSTER_FILE_CHUNK bytes, filled up to buf_len */
    size_t buf_len;
    uint32_t next_chunk;       /* chunks submitted */
    EVP_MD_CTX *sha;
    char sha_hex[2 * EVP_MAX_MD_SIZE + 1];
    bool authed;               /* the sender may upload here: the body is read */
    bool in_flight;            /* a chunk is being committed */
    bool body_done;            /* the whole body is in */
    bool posting;              /* the announcing POST is submitted */
    bool answered;             /* the request has its answer: drop the rest of the body */
};

/* Uploads in progress on this node (a handful), found by their request at authentication. */
static struct upload *uploads;

static void upload_unref(struct upload *up)
{
    if (--up->refs > 0)
        return;
    if (up->sha != NULL)
        EVP_MD_CTX_free(up->sha);
    if (up->ticket != NULL)
        http_ticket_release(up->ticket);
    pc_free(up->buf);
    pc_free(up->name);
    pc_free(up);
}

static void upload_unlist(struct upload *up)
{
    for (struct upload **p = &uploads; *p != NULL; p = &(*p)->next) {
        if (*p == up) {
            *p = up->next;
            break;
        }
    }
    up->next = NULL;
}

static void fail(struct upload *up, struct http_req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(struct upload *up, struct http_req *r, unsigned status, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    up->answered = true;
    if (status == 503)
        http_add_header(r, "Retry-After", "5");
    http_reply_error(r, status, "%s", msg);
    /* A paused body goes on, to be read and dropped (or the connection closes). */
    http_resume_body(r);
}

/* A failure of the room's owner as the answer to the upload. */
static void fail_store(struct upload *up, struct http_req *r, int status)
{
    pc_notice("web: upload of '%s' to room %" PRIu64 " by %s failed: %s", up->name, up->room_no,
              up->user, pc_strerror(status));
    if (status == PC_ENOTFOUND)
        fail(up, r, 404, "the room was removed during the upload");
    else if (status == PC_ETIMEDOUT)
        fail(up, r, 408, "the upload took longer than the pool keeps unfinished uploads "
             "([cluster] abandoned_upload_s): its first chunks were deleted; upload it again");
    else if (status == PC_ENOSPC)
        fail(up, r, 503, "the room's owner has no space left to store the file; retry later");
    else
        fail(up, r, 503, "the room's owner could not store the file now (%s); retry",
             pc_strerror(status));
}

static void maybe_finish(struct upload *up, struct http_req *r);

static void chunk_done(void *arg, const struct room_res *res)
{
    struct upload *up = arg;
    up->in_flight = false;
    struct http_req *r = http_ticket_req(up->ticket);
    if (r != NULL && !up->answered) {
        if (res->status != 0)
            fail_store(up, r, res->status);
        else
            maybe_finish(up, r);
    }
    upload_unref(up);
}

/* Submits the buffered bytes as the next chunk (the cluster copies them: the buffer is free
 * again at once, but no further chunk goes before this one is committed). */
static void submit_chunk(struct upload *up, struct http_req *r)
{
    struct room_req rq = {.kind = ROOM_REQ_FILE_CHUNK,
                          .room_no = up->room_no,
                          .user = up->user,
                          .file_no = up->file_no,
                          .chunk = up->next_chunk,
                          .data = up->buf,
                          .data_len = up->buf_len};
    up->next_chunk++;
    up->buf_len = 0;
    up->in_flight = true;
    up->refs++;
    int rc = cluster_room_submit(up->w->cl, &rq, chunk_done, up);
    if (rc != 0) {
        up->in_flight = false;
        up->refs--;
        if (rc == PC_EBUSY)
            fail(up, r, 503, "the node is too busy to take the file now; retry");
        else
            fail_store(up, r, rc);
    }
}

static void post_done(void *arg, const struct room_res *res)
{
    struct upload *up = arg;
    struct web_service *w = up->w;
    struct http_req *r = http_ticket_req(up->ticket);
    char id[17];
    snprintf(id, sizeof id, "%016" PRIx64, up->file_no);
    if (res->status == 0) {
        if (r != NULL) { /* else the web service may be gone (stopped meanwhile) */
            w->uploads++;
            w->upload_bytes += up->total;
        }
        pc_info("web: %s uploaded '%s' (%" PRIu64 " bytes, file %s) to room %s, seq %" PRIu64,
                up->user, up->name, up->total, id, up->room_guid, res->seq);
    }
    if (r != NULL && !up->answered) {
        if (res->status != 0) {
            fail_store(up, r, res->status);
        } else {
            up->answered = true;
            char url[128], when[PC_ISO_LEN];
            snprintf(url, sizeof url, "/api/rooms/%s/files/%s", up->room_guid, id);
            pc_time_iso(res->ts_us, when);
            json_t *file = json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:s, s:s}", "id", id, "name",
                                     up->name, "size", (json_int_t)up->total, "sha256",
                                     up->sha_hex, "uploader", up->user, "seq",
                                     (json_int_t)res->seq, "time", when, "url", url);
            http_reply_json(r, 200, json_pack("{s:b, s:o}", "ok", 1, "file", file));
        }
    }
    upload_unref(up);
}

/* Everything is committed in chunks: the file's record and its announcement. */
static void post_file(struct upload *up, struct http_req *r)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    EVP_DigestFinal_ex(up->sha, md, &md_len);
    for (unsigned i = 0; i < md_len; i++)
        snprintf(up->sha_hex + 2 * i, 3, "%02x", md[i]);
    struct room_file f = {.room_no = up->room_no,
                          .file_no = up->file_no,
                          .name = up->name,
                          .uploader = up->user,
                          .sha256 = up->sha_hex,
                          .size = up->total,
                          .chunks = up->next_chunk};
    /* One line: the uploader's short name, then the link Lync shows as the file. */
    const char *who = strncmp(up->user, "sip:", 4) == 0 ? up->user + 4 : up->user;
    size_t who_len = strcspn(who, "@");
    struct pc_buf text = {0};
    pc_buf_printf(&text, "%.*s shared %s (%" PRIu64 " bytes): ma-filelink://%s/%s/%016" PRIx64 "/",
                  (int)who_len, who, up->name, up->total, up->w->cfg.domain, up->room_guid,
                  up->file_no);
    pct_encode(&text, up->name, "-._~");
    struct room_req rq = {.kind = ROOM_REQ_POST,
                          .room_no = up->room_no,
                          .user = up->user,
                          .text = text.data,
                          .file = &f};
    up->posting = true;
    up->refs++;
    int rc = cluster_room_submit(up->w->cl, &rq, post_done, up);
    pc_buf_free(&text);
    if (rc != 0) {
        up->refs--;
        if (rc == PC_EBUSY)
            fail(up, r, 503, "the node is too busy to take the file now; retry");
        else
            fail_store(up, r, rc);
    }
}

/* Moves the upload on after each event: a full buffer goes out when no chunk is in flight
 * (the cluster copies it, so the buffer is free again at once); the body is read while the
 * buffer has room; once the body is all in and every chunk committed, the file is posted. */
static void maybe_finish(struct upload *up, struct http_req *r)
{
    if (up->answered || up->posting || !up->authed)
        return;
    if (!up->in_flight && (up->buf_len == CLUSTER_FILE_CHUNK || (up->body_done && up->buf_len > 0))) {
        submit_chunk(up, r);
        /* Its callback may have come at once and moved the upload on already. */
        if (up->answered || up->posting)
            return;
    }
    if (!up->body_done) {
        if (up->buf_len < CLUSTER_FILE_CHUNK)
            http_resume_body(r);
        return;
    }
    if (!up->in_flight && up->buf_len == 0)
        post_file(up, r);
}

static size_t sink_data(struct http_req *r, void *ctx, const char *p, size_t len)
{
    struct upload *up = ctx;
    if (up->answered)
        return len; /* read and dropped */
    if (!up->authed) {
        struct web_req *q = http_data(r);
        if (q != NULL && !q->auth_pending && q->auth_status != 0) {
            up->answered = true; /* web.c answered 401 */
            return len;
        }
        return 0; /* paused until the sender is known */
    }
    size_t took = 0;
    while (took < len && !up->answered) {
        if (up->buf_len == CLUSTER_FILE_CHUNK) {
            if (up->in_flight)
                break; /* paused until the chunk in flight is committed */
            submit_chunk(up, r);
            continue;
        }
        size_t n = len - took;
        if (n > CLUSTER_FILE_CHUNK - up->buf_len)
            n = CLUSTER_FILE_CHUNK - up->buf_len;
        if (up->total + n > up->max_bytes) {
            fail(up, r, 413, "the file is larger than %" PRIu64 " KB, the limit (config.set "
                 "max_file_size_kb, or [web] max_file_size)",
                 up->max_bytes / 1024);
            break;
        }
        memcpy(up->buf + up->buf_len, p + took, n);
        EVP_DigestUpdate(up->sha, p + took, n);
        up->buf_len += n;
        up->total += n;
        took += n;
    }
    if (up->answered)
        return len;
    if (up->buf_len == CLUSTER_FILE_CHUNK && !up->in_flight)
        submit_chunk(up, r);
    return up->answered ? len : took;
}

static void sink_done(struct http_req *r, void *ctx)
{
    struct upload *up = ctx;
    up->body_done = true;
    maybe_finish(up, r);
}

/* MaxFileSizeKB: the pool's setting (config.set) or this node's [web] max_file_size. */
static uint64_t max_file_bytes(const struct web_service *w)
{
    uint32_t kb = cluster_meta(w->cl)->settings.max_file_kb;
    return kb != 0 ? (uint64_t)kb * 1024 : w->cfg.max_file_bytes;
}

static void sink_free(void *ctx)
{
    struct upload *up = ctx;
    upload_unlist(up);
    up->r = NULL;
    upload_unref(up);
}

bool web_files_upload_begin(struct web_service *w, struct http_req *r, struct web_req *q)
{
    const char *name = http_query(r, "name");
    const char *problem = name_problem(name);
    if (problem != NULL) {
        http_reply_error(r, 400, "%s", problem);
        return false;
    }
    int64_t length = http_content_length(r);
    uint64_t max = max_file_bytes(w);
    if (length >= 0 && (uint64_t)length > max) {
        http_reply_error(r, 413, "the file is larger than %" PRIu64
                                 " KB, the limit (config.set max_file_size_kb, or [web] "
                                 "max_file_size)", max / 1024);
        return false;
    }
    struct upload *up = pc_calloc(1, sizeof *up);
    up->w = w;
    up->r = r;
    up->refs = 1;
    up->ticket = http_ticket_new(r);
    up->name = pc_strdup(name);
    up->max_bytes = max;
    up->next = uploads;
    uploads = up;
    struct http_body_sink sink = {
        .data = sink_data, .done = sink_done, .free = sink_free, .ctx = up};
    http_stream_body(r, &sink);
    q->streaming = true;
    return true;
}

void web_files_auth_done(struct web_service *w, struct http_req *r, struct web_req *q)
{
    struct upload *up = uploads;
    while (up != NULL && up->r != r)
        up = up->next;
    if (up == NULL) {
        http_reply_error(r, 500, "internal error: the upload is lost");
        return;
    }
    if (q->auth_status != 0) {
        up->answered = true;
        http_add_header(r, "WWW-Authenticate", "Bearer realm=\"pchat\"");
        http_reply_error(r, 401, "%s", q->auth_why != NULL ? q->auth_why : "sign in first");
        http_resume_body(r);
        return;
    }
    pc_strlcpy(up->user, q->id.user, sizeof up->user);
    const struct meta_room *room = room_for(w, r, q->room_ref, up->user, CHAT_POST);
    if (room == NULL) {
        up->answered = true;
        http_resume_body(r);
        return;
    }
    const struct meta_category *cat = meta_category_by_no(cluster_meta(w->cl), room->category_no);
    if (cat == NULL || !cat->file_upload) {
        up->answered = true;
        http_reply_error(r, 403, "file uploads are turned off for rooms of category %s",
                         cat != NULL ? cat->name : "(none)");
        http_resume_body(r);
        return;
    }
    up->room_no = room->no;
    memcpy(up->room_guid, room->guid, sizeof up->room_guid);
    do
        up->file_no = pc_random_u64(); /* 0 is no file */
    while (up->file_no == 0);
    up->buf = pc_malloc(CLUSTER_FILE_CHUNK);
    up->sha = EVP_MD_CTX_new();
    if (up->sha == NULL || EVP_DigestInit_ex(up->sha, EVP_sha256(), NULL) != 1) {
        up->answered = true;
        http_reply_error(r, 500, "internal error: no SHA-256");
        http_resume_body(r);
        return;
    }
    up->authed = true;
    pc_info("web: %s uploads '%s' to room %s from %s", up->user, up->name, room->name,
            http_peer(r));
    maybe_finish(up, r);
}

/* ---- list --------------------------------------------------------------------------------- */

struct list_ctx {
    json_t *files;
    const char *room_guid;
};

static void list_one(void *ctx, const struct room_file *f)
{
    struct list_ctx *lc = ctx;
    char id[17], when[PC_ISO_LEN], url[128];
    snprintf(id, sizeof id, "%016" PRIx64, f->file_no);
    snprintf(url, sizeof url, "/api/rooms/%s/files/%s", lc->room_guid, id);
    pc_time_iso(f->ts_us, when);
    json_array_append_new(
        lc->files,
        json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:s}", "id", id, "name",
                  f->name ? f->name : "", "size", (json_int_t)f->size, "sha256",
                  f->sha256 ? f->sha256 : "", "uploader", f->uploader ? f->uploader : "", "time",
                  when, "seq", (json_int_t)f->seq, "url", url));
}

static int by_seq(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "seq"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "seq"));
    return x < y ? -1 : x > y;
}

static void list_files(struct web_service *w, struct http_req *r, const struct meta_room *room)
{
    struct list_ctx lc = {.files = json_array(), .room_guid = room->guid};
    int rc = cluster_files(w->cl, room->no, list_one, &lc);
    if (rc < 0) {
        json_decref(lc.files);
        http_reply_error(r, 503, "this node cannot read the room's files now (%s); retry",
                         pc_strerror(rc));
        return;
    }
    /* Oldest first, whatever order the store keeps them in (by file number). */
    size_t n = json_array_size(lc.files);
    json_t **v = pc_calloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(lc.files, i));
    qsort(v, n, sizeof *v, by_seq);
    json_array_clear(lc.files);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(lc.files, v[i]);
    pc_free(v);
    http_reply_json(r, 200, json_pack("{s:b, s:o}", "ok", 1, "files", lc.files));
}

/* ---- download ----------------------------------------------------------------------------- */

struct download {
    struct cluster *cl;
    uint64_t room_no, file_no, size;
    uint32_t chunks;
    int64_t cached;            /* index of the chunk in buf, -1 = none */
    struct pc_buf buf;
};

static void download_free(void *ctx)
{
    struct download *d = ctx;
    pc_buf_free(&d->buf);
    pc_free(d);
}

static ssize_t download_read(void *ctx, uint64_t offset, char *out, size_t max)
{
    struct download *d = ctx;
    if (offset >= d->size)
        return 0;
    uint64_t idx = offset / CLUSTER_FILE_CHUNK;
    uint64_t start = idx * CLUSTER_FILE_CHUNK;
    if ((int64_t)idx != d->cached) {
        pc_buf_reset(&d->buf);
        d->cached = -1;
        int rc = cluster_file_chunk(d->cl, d->room_no, d->file_no, (uint32_t)idx, &d->buf);
        uint64_t want = d->size - start < CLUSTER_FILE_CHUNK ? d->size - start : CLUSTER_FILE_CHUNK;
        if (rc != 0 || d->buf.len < want) {
            pc_warn("web: file %016" PRIx64 " of room %" PRIu64 ": chunk %" PRIu64
                    " %s (%zu bytes): download cut",
                    d->file_no, d->room_no, idx, rc != 0 ? pc_strerror(rc) : "is short",
                    d->buf.len);
            return -1;
        }
        d->cached = (int64_t)idx;
    }
    size_t at = (size_t)(offset - start);
    if (at >= d->buf.len)
        return -1;
    size_t n = d->buf.len - at;
    if (n > max)
        n = max;
    if (n > d->size - offset)
        n = (size_t)(d->size - offset);
    memcpy(out, d->buf.data + at, n);
    return (ssize_t)n;
}

static void read_recorded(void *arg, const struct room_res *res)
{
    char *what = arg;
    if (res->status != 0)
        pc_notice("web: the download record of %s failed: %s", what, pc_strerror(res->status));
    pc_free(what);
}

/* Content-Disposition: attachment; filename="<ASCII, quotes escaped>";
 * filename*=UTF-8''<percent-encoded> (RFC 6266). */
static void disposition(struct pc_buf *b, const char *name)
{
    pc_buf_puts(b, "attachment; filename=\"");
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            pc_buf_putc(b, '\\');
            pc_buf_putc(b, (char)*p);
        } else if (*p < 0x20 || *p >= 0x7f) {
            pc_buf_putc(b, '_');
        } else {
            pc_buf_putc(b, (char)*p);
        }
    }
    pc_buf_puts(b, "\"; filename*=UTF-8''");
    pct_encode(b, name, "!#$&+-.^_`|~");
}

static void download(struct web_service *w, struct http_req *r, struct web_req *q,
                     const struct meta_room *room)
{
    uint64_t file_no;
    if (!parse_file_id(q->file_ref, &file_no)) {
        http_reply_error(r, 404, "no such file in this room (a file id is 16 hex digits)");
        return;
    }
    struct pc_arena arena = {0};
    struct room_file f;
    memset(&f, 0, sizeof f);
    int rc = cluster_file_get(w->cl, room->no, file_no, &f, &arena);
    if (rc == PC_ENOTFOUND) {
        pc_arena_free(&arena);
        http_reply_error(r, 404, "no such file in this room");
        return;
    }
    if (rc != 0) {
        pc_arena_free(&arena);
        http_reply_error(r, 503, "this node cannot read the file now (%s); retry",
                         pc_strerror(rc));
        return;
    }
    struct download *d = pc_calloc(1, sizeof *d);
    d->cl = w->cl;
    d->room_no = room->no;
    d->file_no = file_no;
    d->size = f.size;
    d->chunks = f.chunks;
    d->cached = -1;
    /* A node that installed a snapshot after the upload has the record but not the bytes. */
    if (f.size > 0) {
        rc = cluster_file_chunk(w->cl, room->no, file_no, 0, &d->buf);
        if (rc != 0) {
            download_free(d);
            pc_arena_free(&arena);
            if (rc == PC_ENOTFOUND)
                reply_busy(r, "this node does not hold the file's data yet (it installed a "
                              "snapshot); try another node of the pool");
            else
                reply_busy(r, "this node cannot read the file now; retry");
            return;
        }
        d->cached = 0;
    }
    if (strcmp(http_method(r), "GET") == 0) {
        struct room_req rq = {.kind = ROOM_REQ_FILE_READ,
                              .room_no = room->no,
                              .user = q->id.user,
                              .file_no = file_no,
                              .file = &f};
        char *what = pc_strdup(q->file_ref);
        rc = cluster_room_submit(w->cl, &rq, read_recorded, what);
        if (rc != 0) {
            pc_notice("web: the download record of %s failed: %s", what, pc_strerror(rc));
            pc_free(what);
        }
        w->downloads++;
        w->download_bytes += f.size;
        pc_info("web: %s downloads '%s' (%" PRIu64 " bytes) of room %s from %s", q->id.user,
                f.name != NULL ? f.name : "", f.size, room->name, http_peer(r));
    }
    struct pc_buf cd = {0};
    disposition(&cd, f.name != NULL ? f.name : "file");
    http_add_header(r, "Content-Disposition", cd.data);
    http_add_header(r, "Cache-Control", "private, no-store");
    pc_buf_free(&cd);
    if (f.sha256 != NULL) {
        char digest[100];
        snprintf(digest, sizeof digest, "\"%s\"", f.sha256);
        http_add_header(r, "ETag", digest);
    }
    pc_arena_free(&arena);
    http_reply_stream(r, 200, "application/octet-stream", (int64_t)d->size, download_read, d,
                      download_free);
}

void web_files_dispatch(struct web_service *w, struct http_req *r, struct web_req *q)
{
    const struct meta_room *room = room_for(w, r, q->room_ref, q->id.user, CHAT_JOIN);
    if (room == NULL)
        return;
    if (q->route == ROUTE_FILES)
        list_files(w, r, room);
    else
        download(w, r, q, room);
}
