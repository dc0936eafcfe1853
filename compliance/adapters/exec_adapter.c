/* The exec adapter: an operator's command takes each batch as JSON lines on its standard
 * input (one object per event, built with jansson) and confirms it with exit status 0.
 * Fields: id, type, time (ISO 8601), ts_us, node, user, room (number), room_id (GUID),
 * room_name, seq (CHAT and message changes), content. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "common/pc_alloc.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"
#include "compliance/compl_adapter.h"

struct exec_adapter {
    struct compl_adapter base;
    uv_loop_t *loop;
    char *command;
    unsigned timeout_s;
    /* the delivery in flight */
    uv_process_t proc;
    uv_pipe_t in;
    uv_write_t write;
    uv_timer_t timer;
    struct pc_buf body;
    int64_t exit_status;
    int term_signal;
    int handles_open;
    bool exited, timed_out, busy, freeing;
    compl_done_cb done;
    void *done_arg;
};

static void append_line(struct pc_buf *out, const struct compl_rec *r)
{
    const struct compl_event *e = &r->ev;
    char iso[PC_ISO_LEN];
    pc_time_iso(e->ts_us, iso);
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:s, s:s, s:s}", "id", r->id, "type",
                          compl_type_name(e->type), "time", iso, "ts_us", (json_int_t)e->ts_us,
                          "node", e->node ? e->node : "", "user", e->user ? e->user : "", "room",
                          (json_int_t)e->room_no, "room_id", e->room_guid ? e->room_guid : "",
                          "room_name", e->room_name ? e->room_name : "", "content",
                          e->content ? e->content : "");
    if (e->seq != 0)
        json_object_set_new(o, "seq", json_integer((json_int_t)e->seq));
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    pc_buf_puts(out, line);
    pc_buf_putc(out, '\n');
    free(line);
    json_decref(o);
}

static void finish(struct exec_adapter *x)
{
    if (--x->handles_open > 0)
        return;
    pc_buf_free(&x->body);
    x->busy = false;
    int rc = 0;
    char why[300] = "";
    if (x->timed_out) {
        rc = PC_ETIMEDOUT;
        snprintf(why, sizeof why, "'%s' did not finish within %u s (killed)", x->command,
                 x->timeout_s);
    } else if (x->term_signal != 0) {
        rc = PC_EIO;
        snprintf(why, sizeof why, "'%s' was killed by signal %d", x->command, x->term_signal);
    } else if (x->exit_status != 0) {
        rc = PC_EIO;
        snprintf(why, sizeof why, "'%s' exited with status %lld", x->command,
                 (long long)x->exit_status);
    }
    x->done(x->done_arg, rc, rc == 0 ? NULL : why);
    if (x->freeing) {
        pc_free(x->command);
        pc_free(x);
    }
}

static void handle_closed(uv_handle_t *h)
{
    finish(h->data);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int signal)
{
    struct exec_adapter *x = p->data;
    x->exit_status = status;
    x->term_signal = signal;
    x->exited = true;
    uv_close((uv_handle_t *)&x->proc, handle_closed);
    uv_close((uv_handle_t *)&x->timer, handle_closed);
    if (!uv_is_closing((uv_handle_t *)&x->in))
        uv_close((uv_handle_t *)&x->in, handle_closed);
}

static void on_written(uv_write_t *w, int status)
{
    struct exec_adapter *x = w->data;
    (void)status; /* a command that stops reading early says so with its exit status */
    if (!uv_is_closing((uv_handle_t *)&x->in))
        uv_close((uv_handle_t *)&x->in, handle_closed); /* EOF for the command */
}

static void on_timeout(uv_timer_t *t)
{
    struct exec_adapter *x = t->data;
    if (!x->exited) {
        x->timed_out = true;
        uv_process_kill(&x->proc, SIGKILL);
    }
}

static void deliver(struct compl_adapter *a, const struct compl_rec *recs, size_t n,
                    compl_done_cb done, void *arg)
{
    struct exec_adapter *x = (struct exec_adapter *)a;
    pc_buf_reset(&x->body);
    for (size_t i = 0; i < n; i++)
        append_line(&x->body, &recs[i]);
    x->done = done;
    x->done_arg = arg;
    x->exited = x->timed_out = false;
    x->exit_status = 0;
    x->term_signal = 0;
    uv_pipe_init(x->loop, &x->in, 0);
    x->in.data = x;
    char *args[] = {"/bin/sh", "-c", x->command, NULL};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&x->in},
        {.flags = UV_INHERIT_FD, .data.fd = 1},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
    };
    uv_process_options_t opt = {.file = "/bin/sh", .args = args, .exit_cb = on_exit_cb,
                                .stdio = stdio, .stdio_count = 3};
    x->proc.data = x;
    int rv = uv_spawn(x->loop, &x->proc, &opt);
    if (rv != 0) {
        /* Nothing ran: report on the next loop pass through the pipe's close. */
        char why[300];
        snprintf(why, sizeof why, "cannot run '%s': %s", x->command, uv_strerror(rv));
        pc_buf_free(&x->body);
        uv_close((uv_handle_t *)&x->proc, NULL);
        uv_close((uv_handle_t *)&x->in, NULL);
        done(arg, PC_EIO, why);
        return;
    }
    x->busy = true;
    x->handles_open = 3; /* process, pipe, timer */
    uv_timer_init(x->loop, &x->timer);
    x->timer.data = x;
    uv_timer_start(&x->timer, on_timeout, (uint64_t)x->timeout_s * 1000, 0);
    uv_buf_t buf = uv_buf_init(x->body.data, (unsigned)x->body.len);
    x->write.data = x;
    if (uv_write(&x->write, (uv_stream_t *)&x->in, &buf, 1, on_written) != 0)
        uv_close((uv_handle_t *)&x->in, handle_closed);
}

static void exec_free(struct compl_adapter *a)
{
    struct exec_adapter *x = (struct exec_adapter *)a;
    if (x->busy) {
        x->freeing = true;
        return;
    }
    pc_buf_free(&x->body);
    pc_free(x->command);
    pc_free(x);
}

struct compl_adapter *compl_exec_adapter_new(uv_loop_t *loop, const char *command,
                                             unsigned timeout_s)
{
    struct exec_adapter *x = pc_calloc(1, sizeof *x);
    x->base.name = "exec";
    x->base.deliver = deliver;
    x->base.free = exec_free;
    x->loop = loop;
    x->command = pc_strdup(command);
    x->timeout_s = timeout_s ? timeout_s : 60;
    return &x->base;
}
