/* The XML file adapter: Lync's compliance XML (Conversations / Conversation per room /
 * Messages / Message with Sender and DateTimeUTC, ../shared/reference/LYNC-PCHAT.md A.8),
 * written with libxml2's text writer (escaping is the library's job), one file per batch
 * or per room and batch, made durable before the batch is confirmed: temp file, fsync,
 * rename, fsync of the directory, all in a worker thread.
 *
 * Beyond Lync: every Message carries eventId (our stable id, for de-duplication after a
 * leader change re-delivered a batch), and the administrative types (ROOMCREATED, …) are
 * Messages too. */
#include <errno.h>
#include <fcntl.h>
#include <libxml/xmlwriter.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/pc_alloc.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"
#include "compliance/compl_adapter.h"

struct xml_file {
    char path[1024];
    struct pc_buf body;
};

struct xml_adapter {
    struct compl_adapter base;
    uv_loop_t *loop;
    char *dir;
    bool per_room;
    uint64_t seq; /* files written by this process (part of the names) */
    /* the delivery in flight */
    uv_work_t work;
    struct xml_file *files;
    size_t n_files;
    int rc;
    char why[1400];
    compl_done_cb done;
    void *done_arg;
    bool busy, freeing;
};

static void write_time(xmlTextWriterPtr w, const char *elem, int64_t ts_us)
{
    char iso[PC_ISO_LEN];
    pc_time_iso(ts_us, iso);
    xmlTextWriterStartElement(w, BAD_CAST elem);
    xmlTextWriterWriteFormatAttribute(w, BAD_CAST "since1970", "%lld", (long long)(ts_us / 1000));
    xmlTextWriterWriteAttribute(w, BAD_CAST "string", BAD_CAST iso);
    /* .NET ticks (100 ns since 0001-01-01), as Lync wrote them. */
    xmlTextWriterWriteFormatAttribute(w, BAD_CAST "long", "%lld",
                                      (long long)(ts_us * 10 + 621355968000000000LL));
    xmlTextWriterEndElement(w);
}

static void write_message(xmlTextWriterPtr w, const struct compl_rec *r)
{
    const struct compl_event *e = &r->ev;
    xmlTextWriterStartElement(w, BAD_CAST "Message");
    xmlTextWriterWriteAttribute(w, BAD_CAST "type", BAD_CAST compl_type_name(e->type));
    bool has_content = e->type != COMPL_JOIN && e->type != COMPL_PART;
    xmlTextWriterWriteAttribute(w, BAD_CAST "content",
                                BAD_CAST(has_content && e->content ? e->content : ""));
    if (e->type == COMPL_CHAT)
        xmlTextWriterWriteFormatAttribute(w, BAD_CAST "id", "%llu", (unsigned long long)e->seq);
    xmlTextWriterWriteAttribute(w, BAD_CAST "eventId", BAD_CAST r->id);
    xmlTextWriterWriteAttribute(w, BAD_CAST "node", BAD_CAST(e->node ? e->node : ""));
    const char *user = e->user ? e->user : "";
    const char *bare = strncmp(user, "sip:", 4) == 0 ? user + 4 : user;
    xmlTextWriterStartElement(w, BAD_CAST "Sender");
    xmlTextWriterWriteAttribute(w, BAD_CAST "UserName", BAD_CAST bare);
    xmlTextWriterWriteAttribute(w, BAD_CAST "id", BAD_CAST bare);
    xmlTextWriterWriteAttribute(w, BAD_CAST "email", BAD_CAST bare);
    xmlTextWriterWriteAttribute(w, BAD_CAST "internal", BAD_CAST "true");
    xmlTextWriterWriteAttribute(w, BAD_CAST "uri", BAD_CAST user);
    xmlTextWriterEndElement(w);
    write_time(w, "DateTimeUTC", e->ts_us);
    xmlTextWriterEndElement(w);
}

/* One Conversation: the events of one room (room_no) in recs, in their order. */
static void write_conversation(xmlTextWriterPtr w, const struct compl_rec *recs, size_t n,
                               uint64_t room_no)
{
    const struct compl_rec *first = NULL, *last = NULL;
    for (size_t i = 0; i < n; i++)
        if (recs[i].ev.room_no == room_no) {
            if (first == NULL)
                first = &recs[i];
            last = &recs[i];
        }
    xmlTextWriterStartElement(w, BAD_CAST "Conversation");
    xmlTextWriterStartElement(w, BAD_CAST "Channel");
    char uri[300] = "";
    if (first->ev.room_guid != NULL && first->ev.room_guid[0] != '\0')
        snprintf(uri, sizeof uri, "ma-chan://%s", first->ev.room_guid);
    xmlTextWriterWriteAttribute(w, BAD_CAST "uri", BAD_CAST uri);
    xmlTextWriterWriteAttribute(w, BAD_CAST "name",
                                BAD_CAST(first->ev.room_name ? first->ev.room_name : ""));
    xmlTextWriterEndElement(w);
    xmlTextWriterStartElement(w, BAD_CAST "FirstMessage");
    write_message(w, first);
    xmlTextWriterEndElement(w);
    xmlTextWriterStartElement(w, BAD_CAST "Messages");
    for (size_t i = 0; i < n; i++)
        if (recs[i].ev.room_no == room_no)
            write_message(w, &recs[i]);
    xmlTextWriterEndElement(w);
    write_time(w, "StartTimeUTC", first->ev.ts_us);
    write_time(w, "EndTimeUTC", last->ev.ts_us);
    xmlTextWriterEndElement(w);
}

/* A whole document with the conversations of the given rooms (NULL = every room). */
static int render(const struct compl_rec *recs, size_t n, const uint64_t *only_room,
                  struct pc_buf *out)
{
    xmlBufferPtr buf = xmlBufferCreate();
    xmlTextWriterPtr w = xmlNewTextWriterMemory(buf, 0);
    if (w == NULL) {
        xmlBufferFree(buf);
        return PC_ENOMEM;
    }
    xmlTextWriterSetIndent(w, 1);
    xmlTextWriterStartDocument(w, NULL, "UTF-8", NULL);
    xmlTextWriterStartElement(w, BAD_CAST "Conversations");
    for (size_t i = 0; i < n; i++) {
        uint64_t room = recs[i].ev.room_no;
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = recs[k].ev.room_no == room;
        if (seen || (only_room != NULL && room != *only_room))
            continue;
        write_conversation(w, recs, n, room);
    }
    xmlTextWriterEndElement(w);
    int rc = xmlTextWriterEndDocument(w) < 0 ? PC_EIO : 0;
    xmlFreeTextWriter(w);
    if (rc == 0)
        pc_buf_append(out, xmlBufferContent(buf), (size_t)xmlBufferLength(buf));
    xmlBufferFree(buf);
    return rc;
}

/* ---- durable write (worker thread) ----------------------------------------------------- */

static int write_durably(const char *dir, const struct xml_file *f, char *why, size_t cap)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", f->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(why, cap, "cannot create %s: %s", tmp, strerror(errno));
        return PC_EIO;
    }
    size_t off = 0;
    while (off < f->body.len) {
        ssize_t w = write(fd, f->body.data + off, f->body.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(why, cap, "cannot write %s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return errno == ENOSPC ? PC_ENOSPC : PC_EIO;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        snprintf(why, cap, "cannot flush %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return PC_EIO;
    }
    if (rename(tmp, f->path) != 0) {
        snprintf(why, cap, "cannot rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return PC_EIO;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* the rename itself must survive a crash */
        close(dfd);
    }
    return 0;
}

static void work_cb(uv_work_t *w)
{
    struct xml_adapter *x = w->data;
    x->rc = 0;
    if (mkdir(x->dir, 0750) != 0 && errno != EEXIST) {
        snprintf(x->why, sizeof x->why, "cannot create %s: %s", x->dir, strerror(errno));
        x->rc = PC_EIO;
        return;
    }
    for (size_t i = 0; i < x->n_files && x->rc == 0; i++)
        x->rc = write_durably(x->dir, &x->files[i], x->why, sizeof x->why);
}

static void free_files(struct xml_adapter *x)
{
    for (size_t i = 0; i < x->n_files; i++)
        pc_buf_free(&x->files[i].body);
    pc_free(x->files);
    x->files = NULL;
    x->n_files = 0;
}

static void after_work_cb(uv_work_t *w, int status)
{
    struct xml_adapter *x = w->data;
    if (status != 0 && x->rc == 0) {
        x->rc = PC_EIO;
        snprintf(x->why, sizeof x->why, "the write was canceled");
    }
    free_files(x);
    x->busy = false;
    x->done(x->done_arg, x->rc, x->rc == 0 ? NULL : x->why);
    if (x->freeing) {
        pc_free(x->dir);
        pc_free(x);
    }
}

static void add_file(struct xml_adapter *x, const struct compl_rec *recs, size_t n,
                     const uint64_t *room, const char *stamp)
{
    struct xml_file *f = &x->files[x->n_files];
    memset(f, 0, sizeof *f);
    if (room != NULL)
        snprintf(f->path, sizeof f->path, "%s/pchat-compliance-%s-%06llu-room%llu.xml", x->dir,
                 stamp, (unsigned long long)x->seq, (unsigned long long)*room);
    else
        snprintf(f->path, sizeof f->path, "%s/pchat-compliance-%s-%06llu.xml", x->dir, stamp,
                 (unsigned long long)x->seq);
    if (render(recs, n, room, &f->body) == 0)
        x->n_files++;
    else
        pc_buf_free(&f->body);
}

static void deliver(struct compl_adapter *a, const struct compl_rec *recs, size_t n,
                    compl_done_cb done, void *arg)
{
    struct xml_adapter *x = (struct xml_adapter *)a;
    x->seq++;
    char stamp[32];
    time_t now = (time_t)(pc_wall_us() / 1000000);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    x->files = pc_calloc(n + 1, sizeof *x->files);
    if (!x->per_room) {
        add_file(x, recs, n, NULL, stamp);
    } else {
        for (size_t i = 0; i < n; i++) {
            bool seen = false;
            for (size_t k = 0; k < i && !seen; k++)
                seen = recs[k].ev.room_no == recs[i].ev.room_no;
            if (!seen)
                add_file(x, recs, n, &recs[i].ev.room_no, stamp);
        }
    }
    x->done = done;
    x->done_arg = arg;
    x->busy = true;
    x->work.data = x;
    uv_queue_work(x->loop, &x->work, work_cb, after_work_cb);
}

static void xml_free(struct compl_adapter *a)
{
    struct xml_adapter *x = (struct xml_adapter *)a;
    if (x->busy) {
        x->freeing = true; /* after_work_cb finishes it */
        return;
    }
    pc_free(x->dir);
    pc_free(x);
}

struct compl_adapter *compl_xml_adapter_new(uv_loop_t *loop, const char *dir, bool per_room)
{
    struct xml_adapter *x = pc_calloc(1, sizeof *x);
    x->base.name = "xml";
    x->base.deliver = deliver;
    x->base.free = xml_free;
    x->loop = loop;
    x->dir = pc_strdup(dir);
    x->per_room = per_room;
    return &x->base;
}
