/* A headless libpurple client with Debian's pidgin-sipe plugin: the real Lync-protocol
 * client code, driven without a UI. Two accounts sign in to two nodes of a pool, list the
 * rooms, join one, see its history, one posts, the other receives it and the poster sees
 * its own post exactly once (SIPE shows a post only when the server echoes it), then both
 * leave. One PASS/FAIL line per step; exit status 0 only if every step passed.
 *
 * Debian 12's libxml2 (2.9.14) calls none of the SAX1 callbacks SIPE registers in a handler
 * marked XML_SAX2_MAGIC, so SIPE would silently ignore every XML body (provisioning, every
 * rpl:) and group chat would never start. This program checks for that at start and, when
 * present, interposes xmlSAXUserParseMemory (exported from the executable, so the plugin
 * binds to it) to hand libxml2 such handlers as the plain SAX1 handlers they are. It says
 * so in its output.
 *
 * usage: purple_interop HOST:PORT HOST:PORT USER_A USER_B PASSWORD ROOM HISTORY_TEXT [tcp|tls]
 * With tls, the node's certificate prompt is accepted (as a user would, once). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <glib.h>
#include <libxml/parser.h>
#include <purple.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UI_ID "pchat-interop"

/* ---- the libxml2 SAX workaround ---------------------------------------------------------- */

typedef int (*sax_parse_fn)(xmlSAXHandlerPtr, void *, const char *, int);
static gboolean sax_workaround;

static sax_parse_fn real_sax_parse(void)
{
    static sax_parse_fn fn;
    if (fn == NULL)
        fn = (sax_parse_fn)dlsym(RTLD_NEXT, "xmlSAXUserParseMemory");
    return fn;
}

int xmlSAXUserParseMemory(xmlSAXHandlerPtr sax, void *user_data, const char *buffer, int size)
{
    if (sax_workaround && sax != NULL && sax->initialized == XML_SAX2_MAGIC &&
        sax->startElementNs == NULL && sax->endElementNs == NULL && sax->startElement != NULL) {
        xmlSAXHandler sax1 = *sax;
        sax1.initialized = 1; /* what it is: SAX1 callbacks only */
        return real_sax_parse()(&sax1, user_data, buffer, size);
    }
    return real_sax_parse()(sax, user_data, buffer, size);
}

static int probe_starts;
static void probe_start(void *ctx, const xmlChar *name, const xmlChar **attrs)
{
    (void)ctx;
    (void)name;
    (void)attrs;
    probe_starts++;
}

/* True when libxml2 ignores SAX1 callbacks in a SAX2-marked handler (SIPE's shape). */
static gboolean libxml2_drops_sipe_callbacks(void)
{
    xmlSAXHandler h;
    memset(&h, 0, sizeof h);
    h.startElement = probe_start;
    h.initialized = XML_SAX2_MAGIC;
    probe_starts = 0;
    real_sax_parse()(&h, NULL, "<a/>", 4);
    return probe_starts == 0;
}

/* ---- a glib event loop for libpurple ------------------------------------------------------ */

struct io_closure {
    PurpleInputFunction fn;
    gpointer data;
};

static gboolean io_invoke(GIOChannel *src, GIOCondition cond, gpointer data)
{
    struct io_closure *c = data;
    int cond_p = 0;
    if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR))
        cond_p |= PURPLE_INPUT_READ;
    if (cond & (G_IO_OUT | G_IO_HUP | G_IO_ERR | G_IO_NVAL))
        cond_p |= PURPLE_INPUT_WRITE;
    c->fn(c->data, g_io_channel_unix_get_fd(src), cond_p);
    return TRUE;
}

static guint input_add(gint fd, PurpleInputCondition cond, PurpleInputFunction fn, gpointer data)
{
    struct io_closure *c = g_new0(struct io_closure, 1);
    c->fn = fn;
    c->data = data;
    int gcond = 0;
    if (cond & PURPLE_INPUT_READ)
        gcond |= G_IO_IN | G_IO_HUP | G_IO_ERR;
    if (cond & PURPLE_INPUT_WRITE)
        gcond |= G_IO_OUT | G_IO_HUP | G_IO_ERR | G_IO_NVAL;
    GIOChannel *ch = g_io_channel_unix_new(fd);
    guint id = g_io_add_watch_full(ch, G_PRIORITY_DEFAULT, gcond, io_invoke, c, g_free);
    g_io_channel_unref(ch);
    return id;
}

static PurpleEventLoopUiOps loop_ops = {
    g_timeout_add, g_source_remove, input_add, g_source_remove, NULL, g_timeout_add_seconds,
    NULL, NULL, NULL};

/* ---- requests: the only one expected is libpurple's prompt for an unknown certificate --- */

struct pending_action {
    PurpleRequestActionCb cb;
    void *user_data;
    int index;
};

static gboolean run_action(gpointer data)
{
    struct pending_action *a = data;
    a->cb(a->user_data, a->index);
    g_free(a);
    return G_SOURCE_REMOVE;
}

static void *request_action(const char *title, const char *primary, const char *secondary,
                            int default_action, PurpleAccount *account, const char *who,
                            PurpleConversation *conv, void *user_data, size_t action_count,
                            va_list actions)
{
    (void)title;
    (void)secondary;
    (void)default_action;
    (void)account;
    (void)who;
    (void)conv;
    struct pending_action *a = g_new0(struct pending_action, 1);
    a->user_data = user_data;
    a->index = -1;
    for (size_t i = 0; i < action_count; i++) {
        const char *label = va_arg(actions, const char *);
        PurpleRequestActionCb cb = va_arg(actions, PurpleRequestActionCb);
        if (a->index < 0 && label != NULL && strstr(label, "ccept") != NULL) {
            a->index = (int)i;
            a->cb = cb;
        }
    }
    printf("NOTE: %s prompt \"%s\"\n", a->cb ? "accepting" : "ignoring", primary ? primary : "");
    if (a->cb != NULL)
        g_idle_add(run_action, a); /* answered from the loop, as a UI would */
    else
        g_free(a);
    return a;
}

static void *request_action_with_icon(const char *title, const char *primary,
                                      const char *secondary, int default_action,
                                      PurpleAccount *account, const char *who,
                                      PurpleConversation *conv, gconstpointer icon_data,
                                      gsize icon_size, void *user_data, size_t action_count,
                                      va_list actions)
{
    (void)icon_data;
    (void)icon_size;
    return request_action(title, primary, secondary, default_action, account, who, conv,
                          user_data, action_count, actions);
}

static void close_request(PurpleRequestType type, void *handle)
{
    (void)type;
    (void)handle;
}

static PurpleRequestUiOps request_ops = {
    .request_action = request_action, .request_action_with_icon = request_action_with_icon,
    .close_request = close_request};

/* ---- the scenario -------------------------------------------------------------------------- */

struct side {
    const char *name, *server, *user;
    PurpleAccount *acc;
    PurpleConversation *conv;
    gboolean signed_on, joined, saw_history;
    int own_echoes, got_from_other;
};

static struct side A, B;
static const char *room_name, *history_text, *password, *transport = "tcp";
static char post_text[128], room_uri[256];
static GMainLoop *main_loop;
static int failures;
static PurpleRoomlist *roomlist;

static void step(gboolean ok, const char *what)
{
    printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
    fflush(stdout);
    if (!ok)
        failures++;
}

static struct side *side_of(PurpleAccount *acc)
{
    return acc == A.acc ? &A : acc == B.acc ? &B : NULL;
}

static gboolean tick(gpointer data)
{
    (void)data;
    return G_SOURCE_CONTINUE; /* wakes the loop so that deadlines are checked */
}

static gboolean wait_until(gboolean (*cond)(void), unsigned ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
    while (!cond() && g_get_monotonic_time() < end)
        g_main_context_iteration(NULL, TRUE);
    return cond();
}

static void signed_on(PurpleConnection *gc, gpointer data)
{
    (void)data;
    struct side *s = side_of(purple_connection_get_account(gc));
    if (s != NULL)
        s->signed_on = TRUE;
}

static void connection_error(PurpleConnection *gc, PurpleConnectionError err, const gchar *desc,
                             gpointer data)
{
    (void)data;
    (void)err;
    struct side *s = side_of(purple_connection_get_account(gc));
    printf("  %s: connection error: %s\n", s ? s->name : "?", desc);
}

static void chat_joined(PurpleConversation *conv, gpointer data)
{
    (void)data;
    struct side *s = side_of(purple_conversation_get_account(conv));
    if (s != NULL) {
        s->conv = conv;
        s->joined = TRUE;
    }
}

static void received_chat_msg(PurpleAccount *acc, char *sender, char *message,
                              PurpleConversation *conv, PurpleMessageFlags flags, gpointer data)
{
    (void)conv;
    (void)flags;
    (void)data;
    struct side *s = side_of(acc);
    if (s == NULL || message == NULL)
        return;
    if (strstr(message, history_text) != NULL)
        s->saw_history = TRUE;
    if (post_text[0] != '\0' && strstr(message, post_text) != NULL) {
        struct side *poster = &A;
        if (s == poster)
            s->own_echoes++;
        else
            s->got_from_other++;
    }
    (void)sender;
}

static gboolean both_signed_on(void) { return A.signed_on && B.signed_on; }
static gboolean roomlist_done(void) { return roomlist != NULL && !purple_roomlist_get_in_progress(roomlist); }
static gboolean both_joined(void) { return A.joined && B.joined; }
static gboolean history_seen(void) { return A.saw_history && B.saw_history; }
static gboolean post_arrived(void) { return B.got_from_other > 0 && A.own_echoes > 0; }
static gboolean never(void) { return FALSE; }

static PurpleAccount *make_account(struct side *s)
{
    PurpleAccount *acc = purple_account_new(s->user, "prpl-sipe");
    purple_account_set_password(acc, password);
    purple_account_set_remember_password(acc, FALSE);
    purple_account_set_string(acc, "server", s->server);
    purple_account_set_string(acc, "transport", transport);
    purple_accounts_add(acc);
    purple_account_set_enabled(acc, UI_ID, TRUE);
    return acc;
}

static void join(struct side *s)
{
    GHashTable *components = g_hash_table_new(g_str_hash, g_str_equal);
    g_hash_table_insert(components, "uri", room_uri);
    serv_join_chat(purple_account_get_connection(s->acc), components);
    g_hash_table_destroy(components);
}

int main(int argc, char **argv)
{
    if (argc != 8 && argc != 9) {
        fprintf(stderr, "usage: purple_interop HOST:PORT HOST:PORT USER_A USER_B PASSWORD ROOM "
                        "HISTORY_TEXT [tcp|tls]\n");
        return 2;
    }
    if (argc == 9)
        transport = argv[8];
    A = (struct side){.name = "A", .server = argv[1], .user = argv[3]};
    B = (struct side){.name = "B", .server = argv[2], .user = argv[4]};
    password = argv[5];
    room_name = argv[6];
    history_text = argv[7];

    sax_workaround = libxml2_drops_sipe_callbacks();
    printf("NOTE: libxml2 %s %s SIPE's SAX callbacks%s\n", xmlParserVersion,
           sax_workaround ? "drops" : "calls",
           sax_workaround ? ": interposing xmlSAXUserParseMemory (SAX1 handlers passed as SAX1)"
                          : "");

    gchar *home = g_dir_make_tmp("pchat-purple-XXXXXX", NULL);
    purple_util_set_user_dir(home);
    purple_debug_set_enabled(getenv("PCHAT_PURPLE_DEBUG") != NULL);
    purple_eventloop_set_ui_ops(&loop_ops);
    purple_request_set_ui_ops(&request_ops);
    if (!purple_core_init(UI_ID)) {
        step(FALSE, "libpurple starts");
        return 1;
    }
    purple_set_blist(purple_blist_new());
    purple_plugins_probe(G_MODULE_SUFFIX);
    if (purple_find_prpl("prpl-sipe") == NULL) {
        step(FALSE, "the SIPE plugin (pidgin-sipe) is installed");
        return 1;
    }
    main_loop = g_main_loop_new(NULL, FALSE);
    g_timeout_add(50, tick, NULL);
    static int handle;
    purple_signal_connect(purple_connections_get_handle(), "signed-on", &handle,
                          PURPLE_CALLBACK(signed_on), NULL);
    purple_signal_connect(purple_connections_get_handle(), "connection-error", &handle,
                          PURPLE_CALLBACK(connection_error), NULL);
    purple_signal_connect(purple_conversations_get_handle(), "chat-joined", &handle,
                          PURPLE_CALLBACK(chat_joined), NULL);
    purple_signal_connect(purple_conversations_get_handle(), "received-chat-msg", &handle,
                          PURPLE_CALLBACK(received_chat_msg), NULL);

    A.acc = make_account(&A);
    B.acc = make_account(&B);
    step(wait_until(both_signed_on, 20000), "both accounts sign in (A and B on different nodes)");

    if (both_signed_on()) {
        /* SIPE refuses a room list until its group chat session is up (provisioning,
         * requri, INVITE of the chat server), which follows sign-in by a moment. */
        gboolean listed = FALSE;
        for (int attempt = 0; attempt < 40 && !listed; attempt++) {
            if (roomlist != NULL)
                purple_roomlist_unref(roomlist);
            roomlist = purple_roomlist_get_list(purple_account_get_connection(A.acc));
            if (roomlist != NULL)
                purple_roomlist_ref(roomlist); /* SIPE drops its reference when done */
            listed = roomlist != NULL && wait_until(roomlist_done, 10000) && roomlist->rooms != NULL;
            if (!listed)
                wait_until(never, 250);
        }
        for (GList *r = listed ? roomlist->rooms : NULL; r != NULL; r = r->next) {
            PurpleRoomlistRoom *room = r->data;
            if (strcmp(purple_roomlist_room_get_name(room), room_name) == 0) {
                GList *fields = purple_roomlist_room_get_fields(room);
                if (fields != NULL && fields->data != NULL)
                    g_strlcpy(room_uri, fields->data, sizeof room_uri);
            }
        }
        step(room_uri[0] != '\0', "the room list (chansrch) lists the room");
    }
    if (room_uri[0] != '\0') {
        join(&A);
        join(&B);
        step(wait_until(both_joined, 10000), "both join the room");
        step(wait_until(history_seen, 10000), "both see the room's history (bccontext)");
    }
    if (both_joined()) {
        snprintf(post_text, sizeof post_text, "interop-%u", (unsigned)g_random_int());
        purple_conv_chat_send(PURPLE_CONV_CHAT(A.conv), post_text);
        step(wait_until(post_arrived, 10000), "B receives A's post; A sees it come back");
        wait_until(never, 1000); /* a duplicate echo would arrive within this */
        printf("  echoes seen by A: %d, copies received by B: %d\n", A.own_echoes, B.got_from_other);
        step(A.own_echoes == 1 && B.got_from_other == 1, "the post is shown exactly once to each");
        purple_conversation_destroy(A.conv);
        purple_conversation_destroy(B.conv);
        wait_until(never, 500);
        step(purple_account_is_connected(A.acc) && purple_account_is_connected(B.acc),
             "both leave the room and stay signed in");
    }
    purple_account_set_enabled(A.acc, UI_ID, FALSE);
    purple_account_set_enabled(B.acc, UI_ID, FALSE);
    wait_until(never, 300);
    printf("RESULT: %s (%d step(s) failed)\n", failures == 0 ? "PASS" : "FAIL", failures);
    return failures == 0 ? 0 : 1;
}
