/* Unit tests for chat/xccos: round trips of every message, SIPE's own samples, hostile
 * input, escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat/xccos/xccos.h"
#include "common/pc_alloc.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_time.h"

#define ROOM "ma-chan://example.com/8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b"
#define ROOM2 "ma-chan://example.com/0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"
#define ENV_OPEN "<xccos ver=\"1\" envid=\"7\" xmlns=\"urn:parlano:xml:ns:xccos\">"
#define ENV "<xccos ver=\"1\" envid=\"1804289383\" xmlns=\"urn:parlano:xml:ns:xccos\">"

/* ---- helpers -------------------------------------------------------------------------- */

/* Both NULL, or equal strings. */
#define assert_same_str(a, b)                                                               \
    do {                                                                                    \
        const char *a_ = (a), *b_ = (b);                                                    \
        if (a_ == NULL || b_ == NULL)                                                       \
            assert_ptr_equal(a_, b_);                                                       \
        else                                                                                \
            assert_string_equal(a_, b_);                                                    \
    } while (0)

static int decode_str(const char *xml, struct xccos_msg *m, char *err, size_t errlen)
{
    return xccos_decode(xml, strlen(xml), NULL, m, err, errlen);
}

static void must_decode(const char *xml, struct xccos_msg *m)
{
    char err[256];
    int rc = decode_str(xml, m, err, sizeof err);
    if (rc != 0)
        fail_msg("decode failed (%s): %s\n%s", pc_errname(rc), err, xml);
}

/* Encodes in, decodes the result into out and checks the envelope fields every message
 * shares. The caller compares the payload and frees out. */
static void round_trip(const struct xccos_msg *in, struct xccos_msg *out)
{
    struct pc_buf b = {0};
    xccos_encode(in, &b);
    must_decode(b.data, out);
    pc_buf_free(&b);
    assert_int_equal(out->kind, in->kind);
    assert_int_equal(out->op, in->op);
    assert_same_str(out->envid, in->envid != NULL ? in->envid : "0");
    assert_same_str(out->seqid, in->seqid != NULL ? in->seqid : "1");
    if (in->op == XCCOS_OP_UNKNOWN)
        assert_same_str(out->op_name, in->op_name);
}

static void encode_to(const struct xccos_msg *m, struct pc_buf *b)
{
    pc_buf_reset(b);
    xccos_encode(m, b);
}

static void assert_encodes_as(const struct xccos_msg *m, const char *expected)
{
    struct pc_buf b = {0};
    encode_to(m, &b);
    assert_string_equal(b.data, expected);
    pc_buf_free(&b);
}

static void check_chat(const struct xccos_chat *a, const struct xccos_chat *b)
{
    assert_same_str(a->chan_uri, b->chan_uri);
    assert_same_str(a->author, b->author);
    assert_true(a->ts_us == b->ts_us);
    assert_true(a->msg_id == b->msg_id);
    assert_same_str(a->text, b->text);
}

static void check_room(const struct xccos_room *a, const struct xccos_room *b)
{
    assert_same_str(a->uri, b->uri);
    assert_same_str(a->name, b->name);
    assert_same_str(a->description, b->description);
    assert_same_str(a->topic, b->topic);
    assert_int_equal(a->user_count, b->user_count);
    assert_int_equal(a->is_private, b->is_private);
    assert_int_equal(a->filepost, b->filepost);
    assert_int_equal(a->invite, b->invite);
    assert_int_equal(a->logged, b->logged);
    assert_same_str(a->member_ids, b->member_ids);
    assert_same_str(a->manager_ids, b->manager_ids);
    assert_int_equal(a->n_msgs, b->n_msgs);
    for (size_t i = 0; i < a->n_msgs; i++)
        check_chat(&a->msgs[i], &b->msgs[i]);
}

static void check_rooms(const struct xccos_msg *a, const struct xccos_msg *b)
{
    assert_int_equal(a->n_rooms, b->n_rooms);
    for (size_t i = 0; i < a->n_rooms; i++)
        check_room(&a->rooms[i], &b->rooms[i]);
}

static void check_reply_header(const struct xccos_msg *in, const struct xccos_msg *out)
{
    assert_same_str(out->cmd_seqid, in->cmd_seqid);
    assert_same_str(out->cmd_envid, in->cmd_envid);
    assert_int_equal(out->resp_code, in->resp_code);
    assert_same_str(out->resp_text, in->resp_text);
}

static void init_cmd(struct xccos_msg *m, enum xccos_op op)
{
    xccos_msg_init(m, XCCOS_KIND_CMD, op);
    m->envid = "1804289383";
    m->seqid = "1";
}

static void init_rpl(struct xccos_msg *m, enum xccos_op op)
{
    xccos_msg_init(m, XCCOS_KIND_RPL, op);
    m->envid = "10000000000001";
    m->seqid = "1";
    m->cmd_seqid = "1";
    m->cmd_envid = "1804289383";
    m->resp_code = XCCOS_RESP_OK;
    m->resp_text = XCCOS_RESP_OK_TEXT;
}

/* ---- round trips: commands ------------------------------------------------------------ */

static void roundTrip_cmdRequri(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    init_cmd(&in, XCCOS_OP_REQURI);
    round_trip(&in, &out);
    assert_string_equal(out.op_name, "cmd:requri");
    xccos_msg_free(&out);
}

static void roundTrip_cmdGetserverinfo(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    init_cmd(&in, XCCOS_OP_GETSERVERINFO);
    in.domain = "example.com";
    in.server.info_type = "123";
    round_trip(&in, &out);
    assert_string_equal(out.domain, "example.com");
    assert_string_equal(out.server.info_type, "123");
    xccos_msg_free(&out);
}

static void check_chanids(const struct xccos_msg *in, const struct xccos_msg *out)
{
    assert_int_equal(out->n_chanids, in->n_chanids);
    for (size_t i = 0; i < in->n_chanids; i++) {
        assert_string_equal(out->chanids[i].domain, in->chanids[i].domain);
        assert_string_equal(out->chanids[i].value, in->chanids[i].value);
    }
}

static void roundTrip_cmdJoin(void **state)
{
    (void)state;
    struct xccos_chanid ids[] = {{"example.com", "8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b"}};
    struct xccos_msg in, out;
    init_cmd(&in, XCCOS_OP_JOIN);
    in.chanids = ids;
    in.n_chanids = 1;
    round_trip(&in, &out);
    check_chanids(&in, &out);
    xccos_msg_free(&out);
}

static void roundTrip_cmdBjoin(void **state)
{
    (void)state;
    struct xccos_chanid ids[] = {{"example.com", "a"}, {"example.com", "b/c"}, {"other.org", "d"}};
    struct xccos_msg in, out;
    init_cmd(&in, XCCOS_OP_BJOIN);
    in.chanids = ids;
    in.n_chanids = 3;
    round_trip(&in, &out);
    check_chanids(&in, &out);
    xccos_msg_free(&out);
}

static void roundTrip_cmdPart(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    init_cmd(&in, XCCOS_OP_PART);
    in.chan_uri = ROOM;
    round_trip(&in, &out);
    assert_string_equal(out.chan_uri, ROOM);
    xccos_msg_free(&out);
}

static void roundTrip_cmdBccontextWithPaging(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    init_cmd(&in, XCCOS_OP_BCCONTEXT);
    in.chan_uri = ROOM;
    in.history_count = 25;
    in.history_before = 1234;
    round_trip(&in, &out);
    assert_string_equal(out.chan_uri, ROOM);
    assert_int_equal(out.history_count, 25);
    assert_true(out.history_before == 1234);
    xccos_msg_free(&out);

    in.history_before = 0; /* newest page: no msgid attribute at all */
    round_trip(&in, &out);
    assert_int_equal(out.history_count, 25);
    assert_true(out.history_before == 0);
    xccos_msg_free(&out);
}

static void roundTrip_cmdGetinv(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    init_cmd(&in, XCCOS_OP_GETINV);
    in.domain = "example.com";
    round_trip(&in, &out);
    assert_string_equal(out.domain, "example.com");
    xccos_msg_free(&out);
}

static void roundTrip_cmdChansrch(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    init_cmd(&in, XCCOS_OP_CHANSRCH);
    in.query = "Release & <train> \"q\" 'x'";
    in.query_type = "BYNAME";
    in.query_extended = true;
    round_trip(&in, &out);
    assert_string_equal(out.query, in.query);
    assert_string_equal(out.query_type, "BYNAME");
    assert_true(out.query_extended);
    xccos_msg_free(&out);
}

static void roundTrip_cmdGetassociations(void **state)
{
    (void)state;
    const char *kinds[] = {"member", "manager"};
    for (size_t i = 0; i < 2; i++) {
        struct xccos_msg in, out;
        init_cmd(&in, XCCOS_OP_GETASSOCIATIONS);
        in.assoc_kind = kinds[i];
        round_trip(&in, &out);
        assert_string_equal(out.assoc_kind, kinds[i]);
        xccos_msg_free(&out);
    }
}

static void roundTrip_unknownCommandKeepsItsName(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    init_cmd(&in, XCCOS_OP_UNKNOWN);
    in.op_name = "cmd:getpref";
    round_trip(&in, &out);
    assert_string_equal(out.op_name, "cmd:getpref");
    xccos_msg_free(&out);
}

static void encode_answersUnknownCommandUnderReplyPrefix(void **state)
{
    (void)state;
    struct xccos_msg cmd, rpl;
    must_decode(ENV "<cmd id=\"cmd:frobnicate\" seqid=\"1\"><data/></cmd></xccos>", &cmd);
    init_rpl(&rpl, XCCOS_OP_UNKNOWN);
    rpl.envid = "7";
    rpl.op_name = cmd.op_name;
    rpl.cmd_envid = cmd.envid;
    xccos_msg_set_error(&rpl, XCCOS_RESP_BAD_REQUEST, XCCOS_ERR_UNKNOWN_COMMAND, "frobnicate");
    assert_encodes_as(&rpl, ENV_OPEN "<rpl id=\"rpl:frobnicate\" seqid=\"1\"><commandid seqid=\"1\""
                            " envid=\"1804289383\"/><resp code=\"400\">ERR_UNKNOWN_COMMAND: frobnicate"
                            "</resp><data/></rpl></xccos>");
    xccos_msg_free(&rpl);
    xccos_msg_free(&cmd);
}

/* ---- round trips: chat ---------------------------------------------------------------- */

static void roundTrip_grpchat(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    xccos_msg_init(&in, XCCOS_KIND_GRPCHAT, XCCOS_OP_GRPCHAT);
    in.envid = "10000000000042";
    in.chat = (struct xccos_chat){.chan_uri = ROOM, .author = "sip:alice@example.com",
                                  .ts_us = 1714726840531000, .msg_id = 987654321012ull,
                                  .text = "shipping it\r\nsecond line"};
    round_trip(&in, &out);
    check_chat(&in.chat, &out.chat);
    assert_string_equal(out.op_name, "grpchat");
    xccos_msg_free(&out);
}

/* A story (long post) travels in <story>; which element it came in decides its size limit. */
static void roundTrip_grpchatStory(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    xccos_msg_init(&in, XCCOS_KIND_GRPCHAT, XCCOS_OP_GRPCHAT);
    in.chat = (struct xccos_chat){.chan_uri = ROOM, .text = "a long post", .story = true};
    struct pc_buf b = {0};
    xccos_encode(&in, &b);
    pc_buf_append(&b, "", 1);
    assert_non_null(strstr(b.data, "<story>a long post</story>"));
    pc_buf_free(&b);
    round_trip(&in, &out);
    assert_true(out.chat.story);
    assert_string_equal(out.chat.text, "a long post");
    xccos_msg_free(&out);
    in.chat.story = false;
    round_trip(&in, &out);
    assert_false(out.chat.story);
    xccos_msg_free(&out);
}

/* ---- round trips: replies ------------------------------------------------------------- */

static void roundTrip_rplRequri(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    init_rpl(&in, XCCOS_OP_REQURI);
    in.uri = "sip:pchat@example.com";
    round_trip(&in, &out);
    check_reply_header(&in, &out);
    assert_string_equal(out.uri, in.uri);
    xccos_msg_free(&out);
}

static void roundTrip_rplGetserverinfo(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    init_rpl(&in, XCCOS_OP_GETSERVERINFO);
    in.server = (struct xccos_server_info){
        .info_type = "123", .server_time_us = 1714726840125000, .search_limit = 999,
        .message_size_limit = 512, .story_size_limit = 4096,
        .root_uri = "ma-cat://example.com/5a0c1f3e-0000-4000-8000-000000000001",
        .db_version = "9d1e0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b"};
    round_trip(&in, &out);
    check_reply_header(&in, &out);
    assert_string_equal(out.server.info_type, "123");
    assert_true(out.server.server_time_us == in.server.server_time_us);
    assert_int_equal(out.server.search_limit, 999);
    assert_int_equal(out.server.message_size_limit, 512);
    assert_int_equal(out.server.story_size_limit, 4096);
    assert_string_equal(out.server.root_uri, in.server.root_uri);
    assert_string_equal(out.server.db_version, in.server.db_version);
    xccos_msg_free(&out);
}

static void check_users(const struct xccos_msg *in, const struct xccos_msg *out)
{
    assert_int_equal(out->n_users, in->n_users);
    for (size_t i = 0; i < in->n_users; i++) {
        assert_same_str(out->users[i].id, in->users[i].id);
        assert_same_str(out->users[i].uri, in->users[i].uri);
    }
}

static void roundTrip_rplJoin(void **state)
{
    (void)state;
    struct xccos_user users[] = {{"1", "sip:alice@example.com"},
                                 {"2", "sip:bob@example.com"},
                                 {"3", "sip:carol@example.com"}};
    struct xccos_room room = {.uri = ROOM, .name = "Release train", .topic = "Friday cut-over",
                              .member_ids = "1,3", .manager_ids = "2"};
    struct xccos_msg in, out;
    init_rpl(&in, XCCOS_OP_JOIN);
    in.users = users;
    in.n_users = 3;
    in.rooms = &room;
    in.n_rooms = 1;
    round_trip(&in, &out);
    check_reply_header(&in, &out);
    check_users(&in, &out);
    check_rooms(&in, &out);
    assert_int_equal(out.n_failed, 0);
    xccos_msg_free(&out);
}

static void roundTrip_rplBjoinWithFailures(void **state)
{
    (void)state;
    struct xccos_user users[] = {{"1", "sip:alice@example.com"}};
    struct xccos_room rooms[] = {
        {.uri = ROOM, .name = "Release train", .member_ids = "1"},
        {.uri = ROOM2, .name = "Ops", .topic = "pager duty", .manager_ids = "1"},
    };
    struct xccos_failed failed[] = {{"OPERATION_FAILED", "example.com", "gone-room"}};
    struct xccos_msg in, out;
    init_rpl(&in, XCCOS_OP_BJOIN);
    in.users = users;
    in.n_users = 1;
    in.rooms = rooms;
    in.n_rooms = 2;
    in.failed = failed;
    in.n_failed = 1;
    round_trip(&in, &out);
    check_reply_header(&in, &out);
    check_users(&in, &out);
    check_rooms(&in, &out);
    assert_int_equal(out.n_failed, 1);
    assert_string_equal(out.failed[0].reason, "OPERATION_FAILED");
    assert_string_equal(out.failed[0].domain, "example.com");
    assert_string_equal(out.failed[0].value, "gone-room");
    xccos_msg_free(&out);
}

static void roundTrip_rplPart(void **state)
{
    (void)state;
    struct xccos_room room = {.uri = ROOM};
    struct xccos_msg in, out;
    init_rpl(&in, XCCOS_OP_PART);
    in.rooms = &room;
    in.n_rooms = 1;
    round_trip(&in, &out);
    check_reply_header(&in, &out);
    check_rooms(&in, &out);
    assert_string_equal(out.chan_uri, ROOM);
    xccos_msg_free(&out);

    /* A server may fill chan_uri instead of a room list. */
    init_rpl(&in, XCCOS_OP_PART);
    in.chan_uri = ROOM2;
    round_trip(&in, &out);
    assert_string_equal(out.chan_uri, ROOM2);
    xccos_msg_free(&out);
}

static struct xccos_room listed_rooms[] = {
    {.uri = ROOM, .name = "Release train", .description = "Coordination of weekly releases",
     .user_count = 3, .invite = true, .logged = true},
    {.uri = ROOM2, .name = "Secret <ops>", .description = "", .user_count = 0,
     .is_private = true, .filepost = true},
};

static void roundTrip_rplChansrch(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    init_rpl(&in, XCCOS_OP_CHANSRCH);
    in.rooms = listed_rooms;
    in.n_rooms = 2;
    round_trip(&in, &out);
    check_reply_header(&in, &out);
    check_rooms(&in, &out);
    xccos_msg_free(&out);
}

static void roundTrip_rplGetassociations(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    init_rpl(&in, XCCOS_OP_GETASSOCIATIONS);
    in.rooms = &listed_rooms[1];
    in.n_rooms = 1;
    round_trip(&in, &out);
    check_reply_header(&in, &out);
    check_rooms(&in, &out);
    xccos_msg_free(&out);
}

static void roundTrip_rplBccontext(void **state)
{
    (void)state;
    struct xccos_chat msgs[] = {
        {ROOM, "sip:bob@example.com", 1714726752125000, 41, "build is green"},
        {ROOM, "sip:alice@example.com", 1714726840000000, 42, "shipping it\r\nsecond line"},
        {ROOM, "sip:carol@example.com", 1714726900000001, 43, "<b>&amp;</b> 'quoted' \"too\""},
    };
    struct xccos_room room = {.uri = ROOM, .msgs = msgs, .n_msgs = 3};
    struct xccos_msg in, out;
    init_rpl(&in, XCCOS_OP_BCCONTEXT);
    in.rooms = &room;
    in.n_rooms = 1;
    round_trip(&in, &out);
    check_reply_header(&in, &out);
    check_rooms(&in, &out);
    xccos_msg_free(&out);
}

static void roundTrip_rplGetinv(void **state)
{
    (void)state;
    struct xccos_invite inv[] = {
        {ROOM, "Release train", "sip:bob@example.com", 1714726840000000},
        {ROOM2, "Ops", "sip:carol@example.com", 0},
    };
    struct xccos_msg in, out;
    init_rpl(&in, XCCOS_OP_GETINV);
    in.invites = inv;
    in.n_invites = 2;
    round_trip(&in, &out);
    check_reply_header(&in, &out);
    assert_int_equal(out.n_invites, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(out.invites[i].chan_uri, inv[i].chan_uri);
        assert_string_equal(out.invites[i].name, inv[i].name);
        assert_string_equal(out.invites[i].inviter, inv[i].inviter);
        assert_true(out.invites[i].ts_us == inv[i].ts_us);
    }
    xccos_msg_free(&out);
}

static void roundTrip_rplErrorCarriesCodeAndToken(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    init_rpl(&in, XCCOS_OP_JOIN);
    xccos_msg_set_error(&in, XCCOS_RESP_NOT_FOUND, XCCOS_ERR_NO_SUCH_ROOM, "no room " ROOM);
    assert_string_equal(in.resp_text, "ERR_NO_SUCH_ROOM: no room " ROOM);
    round_trip(&in, &out);
    check_reply_header(&in, &out);
    assert_int_equal(out.n_rooms, 0);
    xccos_msg_free(&out);
    xccos_msg_free(&in);
}

/* ---- round trips: notices ------------------------------------------------------------- */

static void roundTrip_ntcJoin(void **state)
{
    (void)state;
    for (int manager = 0; manager <= 1; manager++) {
        struct xccos_msg in, out;
        xccos_msg_init(&in, XCCOS_KIND_NTC, XCCOS_OP_JOIN);
        in.presence = (struct xccos_presence){"sip:dave@example.com", ROOM, manager};
        round_trip(&in, &out);
        assert_string_equal(out.presence.user_uri, "sip:dave@example.com");
        assert_string_equal(out.presence.chan_uri, ROOM);
        assert_int_equal(out.presence.manager, manager);
        xccos_msg_free(&out);
    }
}

static void roundTrip_ntcPart(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    xccos_msg_init(&in, XCCOS_KIND_NTC, XCCOS_OP_PART);
    in.presence = (struct xccos_presence){"sip:dave@example.com", ROOM2, false};
    round_trip(&in, &out);
    assert_string_equal(out.presence.user_uri, "sip:dave@example.com");
    assert_string_equal(out.presence.chan_uri, ROOM2);
    xccos_msg_free(&out);
}

/* ---- exact shapes --------------------------------------------------------------------- */

static void encode_writesCommandsInSipeShape(void **state)
{
    (void)state;
    struct xccos_msg m;
    init_cmd(&m, XCCOS_OP_REQURI);
    m.envid = "7";
    assert_encodes_as(&m, ENV_OPEN "<cmd id=\"cmd:requri\" seqid=\"1\"><data/></cmd></xccos>");

    struct xccos_chanid ids[] = {{"example.com", "a"}, {"example.com", "b"}};
    init_cmd(&m, XCCOS_OP_BJOIN);
    m.envid = "7";
    m.chanids = ids;
    m.n_chanids = 2;
    assert_encodes_as(&m, ENV_OPEN "<cmd id=\"cmd:bjoin\" seqid=\"1\"><data>"
                          "<chanid key=\"0\" domain=\"example.com\" value=\"a\"/>"
                          "<chanid key=\"1\" domain=\"example.com\" value=\"b\"/>"
                          "</data></cmd></xccos>");

    init_cmd(&m, XCCOS_OP_BCCONTEXT);
    m.envid = "7";
    m.chan_uri = ROOM;
    m.history_count = 25;
    assert_encodes_as(&m, ENV_OPEN "<cmd id=\"cmd:bccontext\" seqid=\"1\"><data><chanib uri=\"" ROOM
                          "\"/><bcq><last cnt=\"25\"/></bcq></data></cmd></xccos>");

    init_cmd(&m, XCCOS_OP_CHANSRCH);
    m.envid = "7";
    assert_encodes_as(&m, ENV_OPEN "<cmd id=\"cmd:chansrch\" seqid=\"1\"><data><qib qtype=\"BYNAME\""
                          " criteria=\"\" extended=\"false\"/></data></cmd></xccos>");

    init_cmd(&m, XCCOS_OP_GETINV);
    m.envid = "7";
    m.domain = "example.com";
    assert_encodes_as(&m, ENV_OPEN "<cmd id=\"cmd:getinv\" seqid=\"1\"><data><inv inviteId=\"1\""
                          " domain=\"example.com\"/></data></cmd></xccos>");

    init_cmd(&m, XCCOS_OP_GETSERVERINFO);
    m.envid = "7";
    m.domain = "example.com";
    m.server.info_type = "123";
    assert_encodes_as(&m, ENV_OPEN "<cmd id=\"cmd:getserverinfo\" seqid=\"1\"><data><sib"
                          " domain=\"example.com\" infoType=\"123\"/></data></cmd></xccos>");
}

static void encode_writesRepliesInSipeShape(void **state)
{
    (void)state;
    struct xccos_msg m;
    init_rpl(&m, XCCOS_OP_REQURI);
    m.envid = "7";
    m.uri = "sip:pchat@example.com";
    assert_encodes_as(&m, ENV_OPEN "<rpl id=\"rpl:requri\" seqid=\"1\"><commandid seqid=\"1\""
                          " envid=\"1804289383\"/><resp code=\"200\">SUCCESS_OK</resp><data>"
                          "<uib uri=\"sip:pchat@example.com\"/></data></rpl></xccos>");

    struct xccos_user users[] = {{"1", "sip:alice@example.com"}, {"2", "sip:bob@example.com"}};
    struct xccos_room room = {.uri = ROOM, .name = "Release train", .topic = "Friday",
                              .member_ids = "1", .manager_ids = ""};
    init_rpl(&m, XCCOS_OP_JOIN);
    m.envid = "7";
    m.users = users;
    m.n_users = 2;
    m.rooms = &room;
    m.n_rooms = 1;
    assert_encodes_as(&m, ENV_OPEN "<rpl id=\"rpl:join\" seqid=\"1\"><commandid seqid=\"1\""
                          " envid=\"1804289383\"/><resp code=\"200\">SUCCESS_OK</resp><data>"
                          "<uib id=\"1\" uri=\"sip:alice@example.com\"/>"
                          "<uib id=\"2\" uri=\"sip:bob@example.com\"/>"
                          "<chanib uri=\"" ROOM "\" name=\"Release train\" topic=\"Friday\">"
                          "<aib key=\"3984\" value=\"1\"/></chanib></data></rpl></xccos>");

    init_rpl(&m, XCCOS_OP_CHANSRCH);
    m.envid = "7";
    m.rooms = &listed_rooms[0];
    m.n_rooms = 1;
    assert_encodes_as(&m, ENV_OPEN "<rpl id=\"rpl:chansrch\" seqid=\"1\"><commandid seqid=\"1\""
                          " envid=\"1804289383\"/><resp code=\"200\">SUCCESS_OK</resp><data>"
                          "<chanib uri=\"" ROOM "\" name=\"Release train\""
                          " description=\"Coordination of weekly releases\">"
                          "<info id=\"urn:parlano:ma:info:ucnt\">3</info>"
                          "<info id=\"urn:parlano:ma:info:visibilty\">public</info>"
                          "<prop id=\"urn:parlano:ma:prop:filepost\">false</prop>"
                          "<prop id=\"urn:parlano:ma:prop:invite\">true</prop>"
                          "<prop id=\"urn:parlano:ma:prop:logged\">true</prop>"
                          "</chanib></data></rpl></xccos>");

    struct xccos_chat msg = {NULL, "sip:bob@example.com", 1714726752125000, 41, "green"};
    struct xccos_room hist = {.uri = ROOM, .msgs = &msg, .n_msgs = 1};
    init_rpl(&m, XCCOS_OP_BCCONTEXT);
    m.envid = "7";
    m.cmd_seqid = m.cmd_envid = NULL;
    m.rooms = &hist;
    m.n_rooms = 1;
    assert_encodes_as(&m, ENV_OPEN "<rpl id=\"rpl:bccontext\" seqid=\"1\"><resp code=\"200\">"
                          "SUCCESS_OK</resp><data><chanib uri=\"" ROOM "\"><msg id=\"grpchat\""
                          " chanUri=\"" ROOM "\" author=\"sip:bob@example.com\""
                          " ts=\"2024-05-03T08:59:12.1250000Z\" msgid=\"41\"><chat>green</chat>"
                          "</msg></chanib></data></rpl></xccos>");

    init_rpl(&m, XCCOS_OP_GETSERVERINFO);
    m.envid = "7";
    m.cmd_seqid = m.cmd_envid = NULL;
    m.server = (struct xccos_server_info){.info_type = "123",
                                          .server_time_us = 1714726840000000,
                                          .search_limit = 999, .message_size_limit = 512,
                                          .story_size_limit = 4096, .root_uri = "ma-cat://e/g",
                                          .db_version = "v"};
    assert_encodes_as(&m, ENV_OPEN "<rpl id=\"rpl:getserverinfo\" seqid=\"1\"><resp code=\"200\">"
                          "SUCCESS_OK</resp><data><sib infoType=\"123\""
                          " serverTime=\"2024-05-03T09:00:40.0000000Z\" searchLimit=\"999\""
                          " messageSizeLimit=\"512\" storySizeLimit=\"4096\""
                          " rootUri=\"ma-cat://e/g\" dbVersion=\"v\"/></data></rpl></xccos>");

    init_rpl(&m, XCCOS_OP_PART);
    m.envid = "7";
    m.cmd_seqid = m.cmd_envid = NULL;
    m.chan_uri = ROOM;
    m.resp_code = XCCOS_RESP_FORBIDDEN;
    m.resp_text = XCCOS_ERR_PERMISSION ": not a member";
    assert_encodes_as(&m, ENV_OPEN "<rpl id=\"rpl:part\" seqid=\"1\"><resp code=\"403\">"
                          "ERR_PERMISSION: not a member</resp><data><chanib uri=\"" ROOM
                          "\"/></data></rpl></xccos>");
}

static void encode_writesNoticesAndChatInSipeShape(void **state)
{
    (void)state;
    struct xccos_msg m;
    xccos_msg_init(&m, XCCOS_KIND_NTC, XCCOS_OP_JOIN);
    m.envid = "7";
    m.presence = (struct xccos_presence){"sip:dave@example.com", ROOM, false};
    assert_encodes_as(&m, ENV_OPEN "<ntc id=\"ntc:join\" seqid=\"1\"><data><uib"
                          " uri=\"sip:dave@example.com\"><aib key=\"3984\" domain=\"example.com\""
                          " value=\"8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b\"/></uib></data></ntc>"
                          "</xccos>");

    xccos_msg_init(&m, XCCOS_KIND_NTC, XCCOS_OP_PART);
    m.envid = "7";
    m.presence = (struct xccos_presence){"sip:dave@example.com", ROOM, false};
    assert_encodes_as(&m, ENV_OPEN "<ntc id=\"ntc:part\" seqid=\"1\"><data><chanib uri=\"" ROOM
                          "\"><uib uri=\"sip:dave@example.com\"/></chanib></data></ntc></xccos>");

    xccos_msg_init(&m, XCCOS_KIND_GRPCHAT, XCCOS_OP_GRPCHAT);
    m.envid = "7";
    m.chat = (struct xccos_chat){ROOM, "sip:alice@example.com", 1714726840531000, 42,
                                 "shipping it\r\nsecond line"};
    assert_encodes_as(&m, ENV_OPEN "<grpchat id=\"grpchat\" seqid=\"1\" chanUri=\"" ROOM
                          "\" author=\"sip:alice@example.com\" ts=\"2024-05-03T09:00:40.5310000Z\""
                          " msgid=\"42\"><chat>shipping it&#13;\nsecond line</chat></grpchat>"
                          "</xccos>");
}

/* ---- SIPE's samples (XCCOS.md), verbatim apart from the envelope ---------------------- */

static void check_requri_cmd(const struct xccos_msg *m)
{
    assert_int_equal(m->kind, XCCOS_KIND_CMD);
    assert_int_equal(m->op, XCCOS_OP_REQURI);
    assert_string_equal(m->envid, "1804289383");
    assert_string_equal(m->seqid, "1");
}

static void check_requri_rpl(const struct xccos_msg *m)
{
    assert_int_equal(m->kind, XCCOS_KIND_RPL);
    assert_int_equal(m->op, XCCOS_OP_REQURI);
    assert_string_equal(m->cmd_envid, "1804289383");
    assert_int_equal(m->resp_code, 200);
    assert_string_equal(m->resp_text, "SUCCESS_OK");
    assert_string_equal(m->uri, "sip:pchat@example.com");
}

static void check_bjoin_cmd(const struct xccos_msg *m)
{
    assert_int_equal(m->op, XCCOS_OP_BJOIN);
    assert_int_equal(m->n_chanids, 2);
    assert_string_equal(m->chanids[0].domain, "example.com");
    assert_string_equal(m->chanids[0].value, "8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b");
    assert_string_equal(m->chanids[1].value, "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d");
}

static void check_join_cmd(const struct xccos_msg *m)
{
    assert_int_equal(m->op, XCCOS_OP_JOIN);
    assert_int_equal(m->n_chanids, 1);
    assert_string_equal(m->chanids[0].domain, "example.com");
    assert_string_equal(m->chanids[0].value, "8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b");
}

static void check_join_rpl(const struct xccos_msg *m)
{
    assert_int_equal(m->kind, XCCOS_KIND_RPL);
    assert_int_equal(m->op, XCCOS_OP_JOIN);
    assert_int_equal(m->n_users, 3);
    assert_string_equal(m->users[1].id, "2");
    assert_string_equal(m->users[1].uri, "sip:bob@example.com");
    assert_int_equal(m->n_rooms, 1);
    assert_string_equal(m->rooms[0].uri, ROOM);
    assert_string_equal(m->rooms[0].name, "Release train");
    assert_string_equal(m->rooms[0].topic, "Friday cut-over");
    assert_string_equal(m->rooms[0].member_ids, "1,3");
    assert_string_equal(m->rooms[0].manager_ids, "2");
}

static void check_bccontext_cmd(const struct xccos_msg *m)
{
    assert_int_equal(m->op, XCCOS_OP_BCCONTEXT);
    assert_string_equal(m->chan_uri, ROOM);
    assert_int_equal(m->history_count, 25);
    assert_true(m->history_before == 0);
}

static void check_bccontext_rpl(const struct xccos_msg *m)
{
    assert_int_equal(m->op, XCCOS_OP_BCCONTEXT);
    assert_int_equal(m->n_rooms, 1);
    const struct xccos_room *r = &m->rooms[0];
    assert_int_equal(r->n_msgs, 2);
    assert_string_equal(r->msgs[0].author, "sip:bob@example.com");
    assert_string_equal(r->msgs[0].text, "build is green");
    assert_true(r->msgs[0].ts_us == 1714726752125000);
    assert_string_equal(r->msgs[1].chan_uri, ROOM);
    assert_string_equal(r->msgs[1].text, "shipping it");
    assert_true(r->msgs[1].ts_us == 1714726840000000);
}

static void check_grpchat_post(const struct xccos_msg *m)
{
    assert_int_equal(m->kind, XCCOS_KIND_GRPCHAT);
    assert_int_equal(m->op, XCCOS_OP_GRPCHAT);
    assert_string_equal(m->chat.chan_uri, ROOM);
    assert_string_equal(m->chat.author, "sip:alice@example.com");
    assert_true(m->chat.ts_us == 1714726840000000);
    /* SIPE joins lines with a literal CRLF; the XML parser hands us LF. */
    assert_string_equal(m->chat.text, "shipping it\nsecond line");
}

static void check_grpchat_delivery(const struct xccos_msg *m)
{
    assert_int_equal(m->kind, XCCOS_KIND_GRPCHAT);
    assert_string_equal(m->envid, "10000000000042");
    assert_true(m->chat.ts_us == 1714726840531000);
    assert_string_equal(m->chat.text, "shipping it\nsecond line");
}

static void check_chansrch_cmd(const struct xccos_msg *m)
{
    assert_int_equal(m->op, XCCOS_OP_CHANSRCH);
    assert_string_equal(m->query_type, "BYNAME");
    assert_string_equal(m->query, "");
    assert_false(m->query_extended);
}

static void check_chansrch_rpl(const struct xccos_msg *m)
{
    assert_int_equal(m->op, XCCOS_OP_CHANSRCH);
    assert_int_equal(m->n_rooms, 1);
    const struct xccos_room *r = &m->rooms[0];
    assert_string_equal(r->name, "Release train");
    assert_string_equal(r->description, "Coordination of weekly releases");
    assert_int_equal(r->user_count, 3);
    assert_false(r->is_private);
    assert_false(r->filepost);
    assert_true(r->invite);
    assert_true(r->logged);
}

static void check_getinv_cmd(const struct xccos_msg *m)
{
    assert_int_equal(m->op, XCCOS_OP_GETINV);
    assert_string_equal(m->domain, "example.com");
}

static void check_getinv_rpl(const struct xccos_msg *m)
{
    assert_int_equal(m->op, XCCOS_OP_GETINV);
    assert_string_equal(m->envid, "10000000000001");
    assert_string_equal(m->cmd_envid, "1804289384");
    assert_int_equal(m->resp_code, 200);
    assert_int_equal(m->n_invites, 0);
}

static void check_part_cmd(const struct xccos_msg *m)
{
    assert_int_equal(m->kind, XCCOS_KIND_CMD);
    assert_int_equal(m->op, XCCOS_OP_PART);
    assert_string_equal(m->chan_uri, ROOM);
}

static void check_part_rpl(const struct xccos_msg *m)
{
    assert_int_equal(m->kind, XCCOS_KIND_RPL);
    assert_int_equal(m->op, XCCOS_OP_PART);
    assert_string_equal(m->chan_uri, ROOM);
}

static void check_ntc_join(const struct xccos_msg *m)
{
    assert_int_equal(m->kind, XCCOS_KIND_NTC);
    assert_int_equal(m->op, XCCOS_OP_JOIN);
    assert_string_equal(m->presence.user_uri, "sip:dave@example.com");
    assert_string_equal(m->presence.chan_uri, ROOM);
    assert_false(m->presence.manager);
}

static void check_ntc_part(const struct xccos_msg *m)
{
    assert_int_equal(m->kind, XCCOS_KIND_NTC);
    assert_int_equal(m->op, XCCOS_OP_PART);
    assert_string_equal(m->presence.user_uri, "sip:dave@example.com");
    assert_string_equal(m->presence.chan_uri, ROOM);
}

static void check_getserverinfo_cmd(const struct xccos_msg *m)
{
    assert_int_equal(m->op, XCCOS_OP_GETSERVERINFO);
    assert_string_equal(m->domain, "example.com");
    assert_string_equal(m->server.info_type, "123");
}

struct sample {
    const char *name;
    const char *xml;
    void (*check)(const struct xccos_msg *m);
};

static const struct sample samples[] = {
    {"cmd:requri", ENV "<cmd id=\"cmd:requri\" seqid=\"1\"><data/></cmd></xccos>",
     check_requri_cmd},
    {"rpl:requri",
     ENV "<rpl id=\"rpl:requri\" seqid=\"1\"><commandid seqid=\"1\" envid=\"1804289383\"/>\n"
         "  <resp code=\"200\">SUCCESS_OK</resp>\n"
         "  <data><uib uri=\"sip:pchat@example.com\"/></data></rpl></xccos>",
     check_requri_rpl},
    {"cmd:bjoin",
     ENV "<cmd id=\"cmd:bjoin\" seqid=\"1\"><data>\n"
         "  <chanid key=\"0\" domain=\"example.com\" value=\"8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b\"/>\n"
         "  <chanid key=\"1\" domain=\"example.com\" value=\"0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d\"/>\n"
         "</data></cmd></xccos>",
     check_bjoin_cmd},
    {"cmd:join",
     ENV "<cmd id=\"cmd:join\" seqid=\"1\"><data><chanid key=\"0\" domain=\"example.com\" "
         "value=\"8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b\"/></data></cmd></xccos>",
     check_join_cmd},
    {"rpl:join",
     ENV "<rpl id=\"rpl:join\" seqid=\"1\"><commandid seqid=\"1\" envid=\"1804289390\"/>\n"
         "  <resp code=\"200\">SUCCESS_OK</resp>\n"
         "  <data>\n"
         "    <uib id=\"1\" uri=\"sip:alice@example.com\"/>\n"
         "    <uib id=\"2\" uri=\"sip:bob@example.com\"/>\n"
         "    <uib id=\"3\" uri=\"sip:carol@example.com\"/>\n"
         "    <chanib uri=\"ma-chan://example.com/8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b\"\n"
         "            name=\"Release train\" topic=\"Friday cut-over\">\n"
         "      <aib key=\"3984\"  value=\"1,3\"/>\n"
         "      <aib key=\"12276\" value=\"2\"/>\n"
         "    </chanib>\n"
         "  </data></rpl></xccos>",
     check_join_rpl},
    {"cmd:bccontext",
     ENV "<cmd id=\"cmd:bccontext\" seqid=\"1\"><data>\n"
         "  <chanib uri=\"ma-chan://example.com/8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b\"/>\n"
         "  <bcq><last cnt=\"25\"/></bcq>\n"
         "</data></cmd></xccos>",
     check_bccontext_cmd},
    {"rpl:bccontext",
     ENV "<rpl id=\"rpl:bccontext\" seqid=\"1\"><commandid seqid=\"1\" envid=\"1804289391\"/>\n"
         "  <resp code=\"200\">SUCCESS_OK</resp>\n"
         "  <data>\n"
         "    <chanib uri=\"ma-chan://example.com/8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b\">\n"
         "      <msg id=\"grpchat\" chanUri=\"ma-chan://example.com/8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b\"\n"
         "           author=\"sip:bob@example.com\" ts=\"2024-05-03T08:59:12.1250000Z\"><chat>build is green</chat></msg>\n"
         "      <msg id=\"grpchat\" chanUri=\"ma-chan://example.com/8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b\"\n"
         "           author=\"sip:alice@example.com\" ts=\"2024-05-03T09:00:40Z\"><chat>shipping it</chat></msg>\n"
         "    </chanib>\n"
         "  </data></rpl></xccos>",
     check_bccontext_rpl},
    {"grpchat post",
     ENV "<grpchat id=\"grpchat\" seqid=\"1\" chanUri=\"ma-chan://example.com/8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b\"\n"
         "         author=\"sip:alice@example.com\" ts=\"2024-05-03T09:00:40Z\"><chat>shipping it\r\n"
         "second line</chat></grpchat></xccos>",
     check_grpchat_post},
    {"grpchat delivery",
     "<xccos ver=\"1\" envid=\"10000000000042\" xmlns=\"urn:parlano:xml:ns:xccos\"><grpchat id=\"grpchat\" seqid=\"1\"\n"
     "  chanUri=\"ma-chan://example.com/8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b\"\n"
     "  author=\"sip:alice@example.com\" ts=\"2024-05-03T09:00:40.5310000Z\"><chat>shipping it\n"
     "second line</chat></grpchat></xccos>",
     check_grpchat_delivery},
    {"cmd:chansrch",
     ENV "<cmd id=\"cmd:chansrch\" seqid=\"1\"><data><qib qtype=\"BYNAME\" criteria=\"\" "
         "extended=\"false\"/></data></cmd></xccos>",
     check_chansrch_cmd},
    {"rpl:chansrch",
     ENV "<rpl id=\"rpl:chansrch\" seqid=\"1\"><commandid seqid=\"1\" envid=\"1804289395\"/>\n"
         "  <resp code=\"200\">SUCCESS_OK</resp>\n"
         "  <data>\n"
         "    <chanib uri=\"ma-chan://example.com/8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b\"\n"
         "            name=\"Release train\" description=\"Coordination of weekly releases\">\n"
         "      <info id=\"urn:parlano:ma:info:ucnt\">3</info>\n"
         "      <info id=\"urn:parlano:ma:info:visibilty\">public</info>\n"
         "      <prop id=\"urn:parlano:ma:prop:filepost\">false</prop>\n"
         "      <prop id=\"urn:parlano:ma:prop:invite\">true</prop>\n"
         "      <prop id=\"urn:parlano:ma:prop:logged\">true</prop>\n"
         "    </chanib>\n"
         "  </data></rpl></xccos>",
     check_chansrch_rpl},
    {"cmd:getinv",
     ENV "<cmd id=\"cmd:getinv\" seqid=\"1\"><data><inv inviteId=\"1\" "
         "domain=\"example.com\"/></data></cmd></xccos>",
     check_getinv_cmd},
    {"rpl:getinv",
     "<xccos ver=\"1\" envid=\"10000000000001\" xmlns=\"urn:parlano:xml:ns:xccos\"><rpl "
     "id=\"rpl:getinv\" seqid=\"1\"><commandid seqid=\"1\" envid=\"1804289384\"/><resp "
     "code=\"200\">SUCCESS_OK</resp><data/></rpl></xccos>",
     check_getinv_rpl},
    {"cmd:part",
     ENV "<cmd id=\"cmd:part\" seqid=\"1\"><data><chanib "
         "uri=\"ma-chan://example.com/8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b\"/></data></cmd></xccos>",
     check_part_cmd},
    {"rpl:part",
     ENV "<rpl id=\"rpl:part\" seqid=\"1\"><commandid seqid=\"1\" envid=\"1804289396\"/>"
         "<resp code=\"200\">SUCCESS_OK</resp><data><chanib "
         "uri=\"ma-chan://example.com/8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b\"/></data></rpl></xccos>",
     check_part_rpl},
    {"ntc:join",
     ENV "<ntc id=\"ntc:join\" seqid=\"1\"><data>\n"
         "  <uib uri=\"sip:dave@example.com\">\n"
         "    <aib key=\"3984\" domain=\"example.com\" value=\"8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b\"/>\n"
         "  </uib>\n"
         "</data></ntc></xccos>",
     check_ntc_join},
    {"ntc:part",
     ENV "<ntc id=\"ntc:part\" seqid=\"1\"><data>\n"
         "  <chanib uri=\"ma-chan://example.com/8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b\">\n"
         "    <uib uri=\"sip:dave@example.com\"/>\n"
         "  </chanib>\n"
         "</data></ntc></xccos>",
     check_ntc_part},
    {"cmd:getserverinfo",
     ENV "<cmd id=\"cmd:getserverinfo\" seqid=\"1\"><data><sib domain=\"example.com\" "
         "infoType=\"123\"/></data></cmd></xccos>",
     check_getserverinfo_cmd},
};

/* Removes whitespace-only runs between tags, i.e. the indentation the samples carry. */
static char *strip_indentation(const char *s)
{
    size_t n = strlen(s);
    char *out = pc_malloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '>') {
            size_t j = i + 1;
            while (j < n && strchr(" \t\r\n", s[j]) != NULL)
                j++;
            if (j < n && s[j] == '<') {
                *o++ = '>';
                i = j - 1;
                continue;
            }
        }
        *o++ = s[i];
    }
    *o = '\0';
    return out;
}

static void decode_acceptsSipeSamplesAsIndented(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        struct xccos_msg m;
        print_message("sample %s\n", samples[i].name);
        must_decode(samples[i].xml, &m);
        samples[i].check(&m);
        xccos_msg_free(&m);
    }
}

static void decode_acceptsSipeSamplesWithoutWhitespace(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char *compact = strip_indentation(samples[i].xml);
        struct xccos_msg m;
        print_message("sample %s\n", samples[i].name);
        must_decode(compact, &m);
        samples[i].check(&m);
        xccos_msg_free(&m);
        pc_free(compact);
    }
}

/* ---- decoding rules ------------------------------------------------------------------- */

static void decode_unknownCommandIsNotAnError(void **state)
{
    (void)state;
    struct xccos_msg m;
    must_decode(ENV "<cmd id=\"cmd:frobnicate\" seqid=\"1\"><data><x y=\"z\"/></data></cmd></xccos>",
                &m);
    assert_int_equal(m.kind, XCCOS_KIND_CMD);
    assert_int_equal(m.op, XCCOS_OP_UNKNOWN);
    assert_string_equal(m.op_name, "cmd:frobnicate");
    xccos_msg_free(&m);

    /* grpchat is not a command name, and notices exist only for membership. */
    must_decode(ENV "<cmd id=\"cmd:grpchat\"/></xccos>", &m);
    assert_int_equal(m.op, XCCOS_OP_UNKNOWN);
    xccos_msg_free(&m);
    must_decode(ENV "<ntc id=\"ntc:roomchanged\"><data/></ntc></xccos>", &m);
    assert_int_equal(m.kind, XCCOS_KIND_NTC);
    assert_int_equal(m.op, XCCOS_OP_UNKNOWN);
    xccos_msg_free(&m);
}

static void decode_matchesNamesLikeSipe(void **state)
{
    (void)state;
    struct xccos_msg m;
    char err[200];
    /* Attribute names and id values are case-insensitive. */
    must_decode(ENV "<cmd ID=\"CMD:Join\" SeqId=\"1\"><data><chanid KEY=\"0\" Domain=\"example.com\""
                    " VALUE=\"x\"/></data></cmd></xccos>",
                &m);
    assert_int_equal(m.op, XCCOS_OP_JOIN);
    assert_string_equal(m.op_name, "CMD:Join");
    assert_string_equal(m.chanids[0].value, "x");
    xccos_msg_free(&m);
    /* An id without prefix names the operation all the same. */
    must_decode(ENV "<cmd id=\"part\"><data><chanib uri=\"" ROOM "\"/></data></cmd></xccos>", &m);
    assert_int_equal(m.op, XCCOS_OP_PART);
    xccos_msg_free(&m);
    /* SIPE's spelling of the getserverinfo reply. */
    must_decode(ENV "<rpl id=\"rpl:getservinfo\"><resp code=\"200\">SUCCESS_OK</resp></rpl></xccos>",
                &m);
    assert_int_equal(m.op, XCCOS_OP_GETSERVERINFO);
    xccos_msg_free(&m);
    /* Element names are case-sensitive: <DATA> is not <data>, so the join lacks its room. */
    assert_int_equal(decode_str(ENV "<cmd id=\"cmd:join\"><DATA><chanid domain=\"e\" value=\"x\"/>"
                                    "</DATA></cmd></xccos>",
                                &m, err, sizeof err),
                     PC_EPROTO);
    /* History msgs other than id="grpchat" (exact case) are skipped. */
    must_decode(ENV "<rpl id=\"rpl:bccontext\"><resp code=\"200\">SUCCESS_OK</resp><data><chanib"
                    " uri=\"" ROOM "\"><msg id=\"GRPCHAT\" chanUri=\"" ROOM "\"><chat>a</chat></msg>"
                    "<msg id=\"grpchat\" chanUri=\"" ROOM "\"><chat>b</chat></msg></chanib></data>"
                    "</rpl></xccos>",
                &m);
    assert_int_equal(m.rooms[0].n_msgs, 1);
    assert_string_equal(m.rooms[0].msgs[0].text, "b");
    xccos_msg_free(&m);
}

static void decode_acceptsPrefixedOrMissingNamespace(void **state)
{
    (void)state;
    struct xccos_msg m;
    must_decode("<x:xccos xmlns:x=\"urn:parlano:xml:ns:xccos\""
                " xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" ver=\"1\" envid=\"5\">"
                "<x:cmd id=\"cmd:requri\" seqid=\"1\"><x:data/></x:cmd></x:xccos>",
                &m);
    assert_int_equal(m.op, XCCOS_OP_REQURI);
    assert_string_equal(m.envid, "5");
    xccos_msg_free(&m);
    must_decode("<xccos ver=\"1\" envid=\"6\"><cmd id=\"cmd:requri\" seqid=\"1\"/></xccos>", &m);
    assert_int_equal(m.op, XCCOS_OP_REQURI);
    xccos_msg_free(&m);
}

static void decode_getassociationsIsLenientAboutShape(void **state)
{
    (void)state;
    static const struct {
        const char *data;
        const char *kind;
    } cases[] = {
        {"<data><assoc role=\"member\"/></data>", "member"},
        {"<data><assoc role=\"manager\"/></data>", "manager"},
        {"<data><foo><bar kind=\"Managers\"/></foo></data>", "manager"},
        {"<data><assoc role=\"MANAG\"/></data>", "manager"},
        {"<data/>", "member"},
        {"", "member"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char xml[256];
        snprintf(xml, sizeof xml, ENV "<cmd id=\"cmd:getassociations\" seqid=\"1\">%s</cmd></xccos>",
                 cases[i].data);
        struct xccos_msg m;
        must_decode(xml, &m);
        assert_int_equal(m.op, XCCOS_OP_GETASSOCIATIONS);
        assert_string_equal(m.assoc_kind, cases[i].kind);
        xccos_msg_free(&m);
    }
}

static void decode_readsCdataAndIgnoresEncodingDeclaration(void **state)
{
    (void)state;
    struct xccos_msg m;
    must_decode("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>" ENV "<grpchat chanUri=\"" ROOM
                "\"><chat>h\xc3\xa9llo <![CDATA[<b>&amp;</b>]]></chat></grpchat></xccos>",
                &m);
    assert_string_equal(m.chat.text, "h\xc3\xa9llo <b>&amp;</b>");
    xccos_msg_free(&m);
}

static void decode_readsUnparsableTimestampAsAbsent(void **state)
{
    (void)state;
    struct xccos_msg m;
    must_decode(ENV "<grpchat chanUri=\"" ROOM "\" ts=\"yesterday\"><chat>x</chat></grpchat></xccos>",
                &m);
    assert_true(m.chat.ts_us == 0);
    xccos_msg_free(&m);
}

/* ---- hostile and broken input --------------------------------------------------------- */

struct bad {
    const char *name;
    const char *xml;
    int rc;
};

#define XXE_DOC                                                                             \
    "<?xml version=\"1.0\"?><!DOCTYPE xccos [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"  \
    ENV "<grpchat id=\"grpchat\" chanUri=\"" ROOM "\" author=\"sip:a@example.com\"><chat>"   \
    "&xxe;</chat></grpchat></xccos>"

#define BILLION_LAUGHS                                                                      \
    "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"                           \
    "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"                  \
    "<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">"        \
    "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"        \
    "<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">"        \
    "<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">"        \
    "<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">"        \
    "<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">"        \
    "<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">"        \
    "<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">]>"      \
    ENV "<grpchat chanUri=\"" ROOM "\"><chat>&lol9;</chat></grpchat></xccos>"

static const struct bad bad_inputs[] = {
    {"empty", "", PC_EPROTO},
    {"whitespace only", "  \r\n ", PC_EPROTO},
    {"truncated", ENV "<cmd id=\"cmd:requri\" seqid=\"1\"><data/></cmd>", PC_EPROTO},
    {"not well-formed", ENV "<cmd id=\"cmd:requri\"><data></cmd></xccos>", PC_EPROTO},
    {"unquoted attribute", ENV "<cmd id=cmd:requri/></xccos>", PC_EPROTO},
    {"text after root", ENV "<cmd id=\"cmd:requri\"/></xccos>junk", PC_EPROTO},
    {"wrong root", "<xccosx><cmd id=\"cmd:requri\"/></xccosx>", PC_EPROTO},
    {"root in foreign namespace", "<xccos xmlns=\"urn:evil\"><cmd id=\"cmd:requri\"/></xccos>",
     PC_EPROTO},
    {"undeclared prefix", "<x:xccos><cmd id=\"cmd:requri\"/></x:xccos>", PC_EPROTO},
    {"no payload", ENV "<foo/></xccos>", PC_EPROTO},
    {"upper-case payload name", ENV "<CMD id=\"cmd:requri\"/></xccos>", PC_EPROTO},
    {"two child kinds", ENV "<cmd id=\"cmd:requri\"/><rpl id=\"rpl:requri\"/></xccos>", PC_EPROTO},
    {"two commands", ENV "<cmd id=\"cmd:requri\"/><cmd id=\"cmd:getinv\"/></xccos>", PC_EPROTO},
    {"cmd without id", ENV "<cmd seqid=\"1\"><data/></cmd></xccos>", PC_EPROTO},
    {"grpchat without chanUri",
     ENV "<grpchat id=\"grpchat\" author=\"sip:a@example.com\"><chat>x</chat></grpchat></xccos>",
     PC_EPROTO},
    {"grpchat without chat", ENV "<grpchat chanUri=\"" ROOM "\"/></xccos>", PC_EPROTO},
    {"history msg without chanUri",
     ENV "<rpl id=\"rpl:bccontext\"><data><chanib uri=\"" ROOM "\"><msg id=\"grpchat\">"
         "<chat>x</chat></msg></chanib></data></rpl></xccos>",
     PC_EPROTO},
    {"join without chanid", ENV "<cmd id=\"cmd:join\"><data/></cmd></xccos>", PC_EPROTO},
    {"chanid without value",
     ENV "<cmd id=\"cmd:join\"><data><chanid key=\"0\" domain=\"e\"/></data></cmd></xccos>",
     PC_EPROTO},
    {"part without chanib", ENV "<cmd id=\"cmd:part\"><data/></cmd></xccos>", PC_EPROTO},
    {"bccontext without uri",
     ENV "<cmd id=\"cmd:bccontext\"><data><chanib/><bcq><last cnt=\"5\"/></bcq></data></cmd>"
         "</xccos>",
     PC_EPROTO},
    {"cnt not a number",
     ENV "<cmd id=\"cmd:bccontext\"><data><chanib uri=\"" ROOM "\"/><bcq><last cnt=\"abc\"/>"
         "</bcq></data></cmd></xccos>",
     PC_EPROTO},
    {"cnt negative",
     ENV "<cmd id=\"cmd:bccontext\"><data><chanib uri=\"" ROOM "\"/><bcq><last cnt=\"-1\"/>"
         "</bcq></data></cmd></xccos>",
     PC_EPROTO},
    {"cnt overflows",
     ENV "<cmd id=\"cmd:bccontext\"><data><chanib uri=\"" ROOM "\"/><bcq><last "
         "cnt=\"99999999999\"/></bcq></data></cmd></xccos>",
     PC_EPROTO},
    {"msgid with junk",
     ENV "<grpchat chanUri=\"" ROOM "\" msgid=\"12x\"><chat>x</chat></grpchat></xccos>",
     PC_EPROTO},
    {"resp code not a number",
     ENV "<rpl id=\"rpl:join\"><resp code=\"ok\">SUCCESS_OK</resp></rpl></xccos>", PC_EPROTO},
    {"ucnt not a number",
     ENV "<rpl id=\"rpl:chansrch\"><data><chanib uri=\"" ROOM "\"><info "
         "id=\"urn:parlano:ma:info:ucnt\">many</info></chanib></data></rpl></xccos>",
     PC_EPROTO},
    {"ntc:join without aib",
     ENV "<ntc id=\"ntc:join\"><data><uib uri=\"sip:a@example.com\"/></data></ntc></xccos>",
     PC_EPROTO},
    {"undefined entity", ENV "<grpchat chanUri=\"" ROOM "\"><chat>&xxe;</chat></grpchat></xccos>",
     PC_EPROTO},
    {"external entity", XXE_DOC, PC_EPROTO},
    {"external parameter entity",
     "<!DOCTYPE xccos [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]>" ENV
     "<cmd id=\"cmd:requri\"/></xccos>",
     PC_EPROTO},
    {"external DTD over the network",
     "<!DOCTYPE xccos SYSTEM \"http://127.0.0.1:9/x.dtd\">" ENV "<cmd id=\"cmd:requri\"/></xccos>",
     PC_EPROTO},
    {"billion laughs", BILLION_LAUGHS, PC_EPROTO},
    {"invalid UTF-8", ENV "<grpchat chanUri=\"" ROOM "\"><chat>\xc3\x28</chat></grpchat></xccos>",
     PC_EPROTO},
    {"overlong UTF-8 '<'", ENV "<grpchat chanUri=\"" ROOM "\"><chat>\xc0\xbc</chat></grpchat></xccos>",
     PC_EPROTO},
    {"UTF-16 surrogate", ENV "<grpchat chanUri=\"" ROOM "\"><chat>\xed\xa0\x80</chat></grpchat></xccos>",
     PC_EPROTO},
    {"control character", ENV "<grpchat chanUri=\"" ROOM "\"><chat>\x01</chat></grpchat></xccos>",
     PC_EPROTO},
};

static void decode_rejectsBadInput(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_inputs / sizeof bad_inputs[0]; i++) {
        struct xccos_msg m;
        char err[200];
        int rc = decode_str(bad_inputs[i].xml, &m, err, sizeof err);
        if (rc != bad_inputs[i].rc)
            fail_msg("%s: got %s (%s), want %s", bad_inputs[i].name, pc_errname(rc), err,
                     pc_errname(bad_inputs[i].rc));
        /* A failed decode leaves nothing to free and a printable one-line reason. */
        assert_null(m.arena.head);
        assert_true(err[0] != '\0');
        assert_null(strchr(err, '\n'));
    }
}

/* Reads the first line of a file, so a test can prove it never leaked into output. */
static void first_line(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(buf, (int)len, f) == NULL)
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
}

static void decode_rejectsExternalEntity(void **state)
{
    (void)state;
    char secret[256];
    first_line("/etc/passwd", secret, sizeof secret);
    struct xccos_msg m;
    char err[512];
    assert_int_equal(decode_str(XXE_DOC, &m, err, sizeof err), PC_EPROTO);
    assert_null(m.chat.text);
    assert_null(strstr(err, "root:"));
    if (secret[0] != '\0')
        assert_null(strstr(err, secret));
    /* The same document without the byte-level DOCTYPE check would still find no entity. */
    assert_int_equal(decode_str(ENV "<grpchat chanUri=\"" ROOM "\"><chat>&xxe;</chat></grpchat>"
                                    "</xccos>",
                                &m, err, sizeof err),
                     PC_EPROTO);
    assert_null(strstr(err, "root:"));
}

static void decode_rejectsBillionLaughsQuickly(void **state)
{
    (void)state;
    struct xccos_msg m;
    char err[200];
    uint64_t t0 = pc_mono_ms();
    assert_int_equal(decode_str(BILLION_LAUGHS, &m, err, sizeof err), PC_EPROTO);
    assert_true(pc_mono_ms() - t0 < 1000);
    assert_non_null(strstr(err, "DTD"));
}

static void decode_rejectsNulByte(void **state)
{
    (void)state;
    static const char doc[] = ENV "<grpchat chanUri=\"" ROOM "\"><chat>a\0b</chat></grpchat></xccos>";
    struct xccos_msg m;
    char err[200];
    assert_int_equal(xccos_decode(doc, sizeof doc - 1, NULL, &m, err, sizeof err), PC_EPROTO);
}

static void decode_rejectsHugeInput(void **state)
{
    (void)state;
    size_t n = xccos_default_limits.max_bytes + 1;
    struct pc_buf b = {0};
    pc_buf_puts(&b, ENV "<grpchat chanUri=\"" ROOM "\"><chat>");
    while (b.len < n)
        pc_buf_putc(&b, 'x');
    pc_buf_puts(&b, "</chat></grpchat></xccos>");
    struct xccos_msg m;
    char err[200];
    assert_int_equal(xccos_decode(b.data, b.len, NULL, &m, err, sizeof err), PC_ETOOBIG);
    /* A caller's tighter limit applies too. */
    struct xccos_limits lim = {.max_bytes = 64};
    const char *small = ENV "<cmd id=\"cmd:requri\" seqid=\"1\"><data/></cmd></xccos>";
    assert_int_equal(xccos_decode(small, strlen(small), &lim, &m, err, sizeof err), PC_ETOOBIG);
    pc_buf_free(&b);
}

/* <xccos><cmd><data> then `extra` nested elements inside data. */
static void nested_doc(struct pc_buf *b, size_t extra)
{
    pc_buf_reset(b);
    pc_buf_puts(b, ENV "<cmd id=\"cmd:requri\" seqid=\"1\"><data>");
    for (size_t i = 0; i < extra; i++)
        pc_buf_puts(b, "<a>");
    for (size_t i = 0; i < extra; i++)
        pc_buf_puts(b, "</a>");
    pc_buf_puts(b, "</data></cmd></xccos>");
}

static void decode_rejectsDepthBomb(void **state)
{
    (void)state;
    struct pc_buf b = {0};
    struct xccos_msg m;
    char err[200];
    size_t depth = xccos_default_limits.max_depth;
    nested_doc(&b, depth - 3); /* exactly at the limit: fine */
    assert_int_equal(xccos_decode(b.data, b.len, NULL, &m, err, sizeof err), 0);
    xccos_msg_free(&m);
    nested_doc(&b, depth - 2);
    assert_int_equal(xccos_decode(b.data, b.len, NULL, &m, err, sizeof err), PC_ETOOBIG);
    nested_doc(&b, 30000); /* far deeper than libxml2's own limit of 256 */
    assert_int_equal(xccos_decode(b.data, b.len, NULL, &m, err, sizeof err), PC_ETOOBIG);
    /* Unclosed nesting is cut off the same way before the parser notices it is broken. */
    pc_buf_reset(&b);
    pc_buf_puts(&b, ENV);
    for (int i = 0; i < 30000; i++)
        pc_buf_puts(&b, "<a>");
    assert_int_equal(xccos_decode(b.data, b.len, NULL, &m, err, sizeof err), PC_ETOOBIG);
    pc_buf_free(&b);
}

static void decode_rejectsTooManyElements(void **state)
{
    (void)state;
    struct pc_buf b = {0};
    pc_buf_puts(&b, ENV "<cmd id=\"cmd:requri\" seqid=\"1\"><data>");
    for (size_t i = 0; i < xccos_default_limits.max_elements; i++)
        pc_buf_puts(&b, "<a/>");
    pc_buf_puts(&b, "</data></cmd></xccos>");
    struct xccos_msg m;
    char err[200];
    assert_int_equal(xccos_decode(b.data, b.len, NULL, &m, err, sizeof err), PC_ETOOBIG);
    pc_buf_free(&b);
}

static void decode_rejectsTooManyListEntries(void **state)
{
    (void)state;
    struct xccos_limits lim = {.max_list = 3};
    struct pc_buf b = {0};
    struct xccos_msg m;
    char err[200];
    static const char *heads[] = {"<cmd id=\"cmd:bjoin\"><data>", "<rpl id=\"rpl:join\"><data>"};
    static const char *tails[] = {"</data></cmd>", "</data></rpl>"};
    static const char *entries[] = {
        "<chanid key=\"0\" domain=\"e\" value=\"v\"/>",
        "<uib id=\"1\" uri=\"sip:a@e\"/>",
    };
    for (size_t i = 0; i < 2; i++) {
        for (int n = 3; n <= 4; n++) {
            pc_buf_reset(&b);
            pc_buf_puts(&b, ENV);
            pc_buf_puts(&b, heads[i]);
            for (int k = 0; k < n; k++)
                pc_buf_puts(&b, entries[i]);
            pc_buf_puts(&b, tails[i]);
            pc_buf_puts(&b, "</xccos>");
            int rc = xccos_decode(b.data, b.len, &lim, &m, err, sizeof err);
            assert_int_equal(rc, n <= 3 ? 0 : PC_ETOOBIG);
            xccos_msg_free(&m);
        }
    }
    /* History messages are a list too. */
    pc_buf_reset(&b);
    pc_buf_puts(&b, ENV "<rpl id=\"rpl:bccontext\"><data><chanib uri=\"" ROOM "\">");
    for (int k = 0; k < 4; k++)
        pc_buf_puts(&b, "<msg id=\"grpchat\" chanUri=\"" ROOM "\"><chat>x</chat></msg>");
    pc_buf_puts(&b, "</chanib></data></rpl></xccos>");
    assert_int_equal(xccos_decode(b.data, b.len, &lim, &m, err, sizeof err), PC_ETOOBIG);
    pc_buf_free(&b);
}

static void decode_rejectsEveryTruncation(void **state)
{
    (void)state;
    struct xccos_user users[] = {{"1", "sip:h\xc3\xa9l\xc3\xa8ne@example.com"}};
    struct xccos_room room = {.uri = ROOM, .name = "R\xc3\xa9lease", .member_ids = "1"};
    struct xccos_msg in;
    init_rpl(&in, XCCOS_OP_JOIN);
    in.users = users;
    in.n_users = 1;
    in.rooms = &room;
    in.n_rooms = 1;
    struct pc_buf b = {0};
    encode_to(&in, &b);
    for (size_t n = 0; n < b.len; n++) {
        struct xccos_msg m;
        char err[200];
        int rc = xccos_decode(b.data, n, NULL, &m, err, sizeof err);
        if (rc != PC_EPROTO)
            fail_msg("prefix of %zu bytes: got %s", n, pc_errname(rc));
    }
    pc_buf_free(&b);
}

/* libxml2 prints to stderr by default; a server must not let clients write to its log. */
static void decode_printsNothingOnStderr(void **state)
{
    (void)state;
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    assert_true(saved >= 0 && tmp != NULL);
    dup2(fileno(tmp), 2);
    for (size_t i = 0; i < sizeof bad_inputs / sizeof bad_inputs[0]; i++) {
        struct xccos_msg m;
        char err[200];
        (void)decode_str(bad_inputs[i].xml, &m, err, sizeof err);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    struct stat st;
    int rc = fstat(fileno(tmp), &st);
    fclose(tmp);
    assert_int_equal(rc, 0);
    assert_int_equal(st.st_size, 0);
}

/* ---- escaping ------------------------------------------------------------------------- */

static void escape_writesEntitiesForMarkupAndCr(void **state)
{
    (void)state;
    struct pc_buf b = {0};
    xccos_escape(&b, "<&>\"'\r\n\t h\xc3\xa9");
    assert_string_equal(b.data, "&lt;&amp;&gt;&quot;&apos;&#13;\n\t h\xc3\xa9");
    pc_buf_reset(&b);
    xccos_escape_attr(&b, "a\r\n\tb");
    assert_string_equal(b.data, "a&#13;&#10;&#9;b");
    pc_buf_reset(&b);
    xccos_escape(&b, NULL);
    assert_int_equal(b.len, 0);
    pc_buf_free(&b);
}

static void escape_roundTripsSpecialCharactersExactly(void **state)
{
    (void)state;
    const char *text = "a & b < c > d \" e ' f\r\ng\rh\ni\tj  h\xc3\xa9llo \xe2\x82\xac "
                       "\xf0\x9f\x98\x80 &amp; ]]> <![CDATA[x]]>";
    /* In element text (chat) and in attributes (author, room name, search criteria). */
    struct xccos_msg in, out;
    xccos_msg_init(&in, XCCOS_KIND_GRPCHAT, XCCOS_OP_GRPCHAT);
    in.chat = (struct xccos_chat){.chan_uri = ROOM, .author = text, .text = text};
    round_trip(&in, &out);
    assert_string_equal(out.chat.text, text);
    assert_string_equal(out.chat.author, text);
    xccos_msg_free(&out);

    init_cmd(&in, XCCOS_OP_CHANSRCH);
    in.query = text;
    round_trip(&in, &out);
    assert_string_equal(out.query, text);
    xccos_msg_free(&out);

    struct xccos_chat msg = {ROOM, "sip:a@example.com", 0, 1, text};
    struct xccos_room room = {.uri = ROOM, .msgs = &msg, .n_msgs = 1};
    init_rpl(&in, XCCOS_OP_BCCONTEXT);
    in.rooms = &room;
    in.n_rooms = 1;
    in.resp_text = text;
    round_trip(&in, &out);
    assert_string_equal(out.rooms[0].msgs[0].text, text);
    assert_string_equal(out.resp_text, text);
    xccos_msg_free(&out);
}

static void escape_replacesWhatXmlCannotCarry(void **state)
{
    (void)state;
    struct xccos_msg in, out;
    xccos_msg_init(&in, XCCOS_KIND_GRPCHAT, XCCOS_OP_GRPCHAT);
    /* A control character, a stray continuation byte, a truncated sequence, U+FFFE. */
    in.chat = (struct xccos_chat){.chan_uri = ROOM, .text = "a\x01" "b\x80" "c\xe2\x82" "d\xef\xbf\xbe"};
    round_trip(&in, &out);
    assert_string_equal(out.chat.text, "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd"
                                       "d\xef\xbf\xbd");
    xccos_msg_free(&out);
}

/* ---- helpers of the API --------------------------------------------------------------- */

static void splitChanUri_acceptsOnlyCanonicalRoomUris(void **state)
{
    (void)state;
    struct pc_arena a = {0};
    const char *domain, *id;
    assert_true(xccos_split_chan_uri(ROOM, &a, &domain, &id));
    assert_string_equal(domain, "example.com");
    assert_string_equal(id, "8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b");
    assert_true(xccos_split_chan_uri("ma-chan://d/a/b", &a, &domain, &id));
    assert_string_equal(id, "a/b");
    assert_false(xccos_split_chan_uri("MA-CHAN://d/x", &a, &domain, &id));
    assert_false(xccos_split_chan_uri("ma-chan://d", &a, &domain, &id));
    assert_false(xccos_split_chan_uri("ma-chan://d/", &a, &domain, &id));
    assert_false(xccos_split_chan_uri("ma-chan:///x", &a, &domain, &id));
    assert_false(xccos_split_chan_uri(NULL, &a, &domain, &id));
    pc_arena_free(&a);
}

static void opName_namesEveryOperation(void **state)
{
    (void)state;
    assert_string_equal(xccos_op_name(XCCOS_OP_JOIN), "join");
    assert_string_equal(xccos_op_name(XCCOS_OP_BCCONTEXT), "bccontext");
    assert_string_equal(xccos_op_name(XCCOS_OP_UNKNOWN), "unknown");
    assert_string_equal(xccos_op_name(XCCOS_OP_COUNT), "unknown");
    for (int op = 0; op < XCCOS_OP_COUNT; op++)
        assert_non_null(xccos_op_name((enum xccos_op)op));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundTrip_cmdRequri),
        cmocka_unit_test(roundTrip_cmdGetserverinfo),
        cmocka_unit_test(roundTrip_cmdJoin),
        cmocka_unit_test(roundTrip_cmdBjoin),
        cmocka_unit_test(roundTrip_cmdPart),
        cmocka_unit_test(roundTrip_cmdBccontextWithPaging),
        cmocka_unit_test(roundTrip_cmdGetinv),
        cmocka_unit_test(roundTrip_cmdChansrch),
        cmocka_unit_test(roundTrip_cmdGetassociations),
        cmocka_unit_test(roundTrip_unknownCommandKeepsItsName),
        cmocka_unit_test(encode_answersUnknownCommandUnderReplyPrefix),
        cmocka_unit_test(roundTrip_grpchat),
        cmocka_unit_test(roundTrip_grpchatStory),
        cmocka_unit_test(roundTrip_rplRequri),
        cmocka_unit_test(roundTrip_rplGetserverinfo),
        cmocka_unit_test(roundTrip_rplJoin),
        cmocka_unit_test(roundTrip_rplBjoinWithFailures),
        cmocka_unit_test(roundTrip_rplPart),
        cmocka_unit_test(roundTrip_rplChansrch),
        cmocka_unit_test(roundTrip_rplGetassociations),
        cmocka_unit_test(roundTrip_rplBccontext),
        cmocka_unit_test(roundTrip_rplGetinv),
        cmocka_unit_test(roundTrip_rplErrorCarriesCodeAndToken),
        cmocka_unit_test(roundTrip_ntcJoin),
        cmocka_unit_test(roundTrip_ntcPart),
        cmocka_unit_test(encode_writesCommandsInSipeShape),
        cmocka_unit_test(encode_writesRepliesInSipeShape),
        cmocka_unit_test(encode_writesNoticesAndChatInSipeShape),
        cmocka_unit_test(decode_acceptsSipeSamplesAsIndented),
        cmocka_unit_test(decode_acceptsSipeSamplesWithoutWhitespace),
        cmocka_unit_test(decode_unknownCommandIsNotAnError),
        cmocka_unit_test(decode_matchesNamesLikeSipe),
        cmocka_unit_test(decode_acceptsPrefixedOrMissingNamespace),
        cmocka_unit_test(decode_getassociationsIsLenientAboutShape),
        cmocka_unit_test(decode_readsCdataAndIgnoresEncodingDeclaration),
        cmocka_unit_test(decode_readsUnparsableTimestampAsAbsent),
        cmocka_unit_test(decode_rejectsBadInput),
        cmocka_unit_test(decode_rejectsExternalEntity),
        cmocka_unit_test(decode_rejectsBillionLaughsQuickly),
        cmocka_unit_test(decode_rejectsNulByte),
        cmocka_unit_test(decode_rejectsHugeInput),
        cmocka_unit_test(decode_rejectsDepthBomb),
        cmocka_unit_test(decode_rejectsTooManyElements),
        cmocka_unit_test(decode_rejectsTooManyListEntries),
        cmocka_unit_test(decode_rejectsEveryTruncation),
        cmocka_unit_test(decode_printsNothingOnStderr),
        cmocka_unit_test(escape_writesEntitiesForMarkupAndCr),
        cmocka_unit_test(escape_roundTripsSpecialCharactersExactly),
        cmocka_unit_test(escape_replacesWhatXmlCannotCarry),
        cmocka_unit_test(splitChanUri_acceptsOnlyCanonicalRoomUris),
        cmocka_unit_test(opName_namesEveryOperation),
    };
    return cmocka_run_group_tests_name("xccos", tests, NULL, NULL);
}
