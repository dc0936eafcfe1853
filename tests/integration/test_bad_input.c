/* Hostile and broken input, at the SIP and the XCCOS level: each case gets its precise error
 * (or a clean close), is logged, and the node keeps serving a bystander throughout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/pc_time.h"
#include "tests/lib/tl.h"

static struct tl_node node;
static char lobby[256];
static struct tl_client *bystander; /* joined to Lobby for the whole suite */
static struct tl_client *speaker;

static int setup(void **state)
{
    (void)state;
    tl_node_init(&node, tl_port_base() + 2, "[sip]\nheader_timeout = 2\nmax_body_bytes = 64k\n");
    tl_node_start(&node);
    bystander = tl_client_new(node.sip_port, "carol@example.test");
    speaker = tl_client_new(node.sip_port, "alice@example.test");
    assert_non_null(tl_room_uri(bystander, "Lobby", lobby, sizeof lobby));
    pcc_event_free(tl_join(bystander, lobby));
    pcc_event_free(tl_join(speaker, lobby));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_client_close(bystander);
    tl_client_close(speaker);
    tl_node_stop(&node);
    tl_node_cleanup(&node);
    return 0;
}

/* After every case: the node still delivers a post to the bystander. */
static void assert_node_serves(void)
{
    static int n;
    char text[64];
    snprintf(text, sizeof text, "still alive %d", ++n);
    assert_int_equal(tl_post(speaker, lobby, text), 200);
    struct pcc_event *ev = tl_wait_chat(bystander, lobby, text, 5000);
    assert_non_null(ev);
    pcc_event_free(ev);
    tl_drain(speaker);
}

/* ---- raw TCP ------------------------------------------------------------------------------ */

static int raw_connect(void)
{
    return tl_raw_connect(node.sip_port);
}

#define raw_send tl_raw_send
#define raw_read tl_raw_read

#define REQ_HEAD(method)                                                                      \
    method " sip:pchat@example.test SIP/2.0\r\n"                                              \
           "Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKbad\r\n"                               \
           "From: <sip:bob@example.test>;tag=1\r\n"                                           \
           "To: <sip:pchat@example.test>\r\n"                                                 \
           "Call-ID: bad-input\r\n"                                                           \
           "CSeq: 1 " method "\r\n"

struct raw_case {
    const char *name;
    const char *data;   /* sent as is */
    size_t repeat_body; /* if > 0: a body of this many 'x' bytes follows data */
    const char *expect; /* substring of the answer, NULL = no answer required */
    bool closes;        /* the server must close the connection */
};

static const struct raw_case raw_cases[] = {
    {"truncated headers, then hang up", "OPTIONS sip:pchat@example.test SIP/2.0\r\nVia: SIP/2.0/TCP x",
     0, NULL, false},
    {"huge Content-Length", REQ_HEAD("OPTIONS") "Content-Length: 999999999999\r\n\r\n", 0,
     "SIP/2.0 413", true},
    {"body over the limit", REQ_HEAD("INFO") "Content-Length: 100000\r\n\r\n", 100000, "SIP/2.0 413",
     true},
    {"non-numeric Content-Length", REQ_HEAD("OPTIONS") "Content-Length: ten\r\n\r\n", 0,
     "SIP/2.0 400", true},
    {"conflicting Content-Length", REQ_HEAD("OPTIONS") "Content-Length: 1\r\nl: 2\r\n\r\nxx", 0,
     "SIP/2.0 400", true},
    {"missing Call-ID", "OPTIONS sip:pchat@example.test SIP/2.0\r\nVia: SIP/2.0/TCP 1.2.3.4\r\n"
                        "From: <sip:bob@example.test>;tag=1\r\nTo: <sip:x@example.test>\r\n"
                        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
     0, "SIP/2.0 400", false},
    {"CSeq method differs", REQ_HEAD("OPTIONS") "Content-Length: 0\r\n\r\n", 0, NULL, false},
    {"binary garbage (a TLS hello on the TCP port)", "\x16\x03\x01\x02\x01\x01\xfc\x03\x03\r\n\r\n", 0,
     "SIP/2.0 400", false},
    {"INFO outside any dialog", REQ_HEAD("INFO") "Content-Length: 0\r\n\r\n", 0, "SIP/2.0 481", false},
    {"unknown method", REQ_HEAD("FROBNICATE") "Content-Length: 0\r\n\r\n", 0, "SIP/2.0 501", false},
    {"invalid UTF-8 in a header", REQ_HEAD("OPTIONS") "Subject: \xff\xfe\xc0\xaf\r\nContent-Length: 0\r\n\r\n",
     0, "SIP/2.0 200", false},
};

static void rawInput_getsPreciseAnswersAndNodeSurvives(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof raw_cases / sizeof raw_cases[0]; i++) {
        const struct raw_case *c = &raw_cases[i];
        int fd = raw_connect();
        raw_send(fd, c->data, strlen(c->data));
        if (c->repeat_body > 0) {
            char *body = malloc(c->repeat_body);
            memset(body, 'x', c->repeat_body);
            raw_send(fd, body, c->repeat_body);
            free(body);
        }
        char buf[8192];
        bool closed;
        raw_read(fd, buf, sizeof buf, c->closes ? 3000 : 500, &closed);
        if (c->expect != NULL && strstr(buf, c->expect) == NULL)
            fail_msg("case '%s': expected '%s', got '%.200s'", c->name, c->expect, buf);
        if (c->closes && !closed)
            fail_msg("case '%s': the server should have closed the connection", c->name);
        close(fd);
        assert_node_serves();
    }
    assert_true(tl_node_log_contains(&node, "message larger than the configured limit"));
    assert_true(tl_node_log_contains(&node, "malformed SIP message"));
}

static void cseqMismatch_isRejected(void **state)
{
    (void)state;
    int fd = raw_connect();
    const char *m = "OPTIONS sip:pchat@example.test SIP/2.0\r\nVia: SIP/2.0/TCP 1.2.3.4;branch=z9hG4bK1\r\n"
                    "From: <sip:bob@example.test>;tag=1\r\nTo: <sip:x@example.test>\r\nCall-ID: m\r\n"
                    "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    raw_send(fd, m, strlen(m));
    char buf[4096];
    bool closed;
    raw_read(fd, buf, sizeof buf, 1000, &closed);
    assert_non_null(strstr(buf, "SIP/2.0 400"));
    assert_non_null(strstr(buf, "CSeq"));
    close(fd);
}

static void pipelinedAndFragmentedInput_isFramedExactly(void **state)
{
    (void)state;
    int fd = raw_connect();
    char all[4096] = "";
    for (int i = 1; i <= 5; i++) {
        char m[512];
        snprintf(m, sizeof m,
                 "\r\nOPTIONS sip:pchat@example.test SIP/2.0\r\nVia: SIP/2.0/TCP 1.2.3.4;branch=z9hG4bK%d\r\n"
                 "From: <sip:bob@example.test>;tag=1\r\nTo: <sip:pchat@example.test>\r\nCall-ID: p%d\r\n"
                 "CSeq: %d OPTIONS\r\nContent-Length: 0\r\n\r\n", i, i, i);
        strcat(all, m);
    }
    /* Byte by byte for the first message, then the rest in one write. */
    size_t first = strlen(all) / 5;
    for (size_t i = 0; i < first; i++)
        raw_send(fd, all + i, 1);
    raw_send(fd, all + first, strlen(all) - first);
    char buf[16384];
    bool closed;
    raw_read(fd, buf, sizeof buf, 1000, &closed);
    int answers = 0;
    for (char *p = buf; (p = strstr(p, "SIP/2.0 200 OK")) != NULL; p++)
        answers++;
    assert_int_equal(answers, 5);
    for (int i = 1; i <= 5; i++) {
        char want[32];
        snprintf(want, sizeof want, "CSeq: %d OPTIONS", i);
        assert_non_null(strstr(buf, want));
    }
    close(fd);
}

static void slowloris_isClosedAfterHeaderTimeout(void **state)
{
    (void)state;
    int fd = raw_connect();
    raw_send(fd, "OPTIONS sip:pchat@example.test SIP/2.0\r\nVia: ", 45);
    char buf[256];
    bool closed;
    raw_read(fd, buf, sizeof buf, 5000, &closed);
    assert_true(closed);
    close(fd);
    assert_true(tl_node_log_contains(&node, "incomplete message"));
    assert_node_serves();
}

/* ---- XCCOS inside a real dialog ----------------------------------------------------------- */

struct xccos_case {
    const char *name;
    const char *body;
    int sip_status;        /* expected SIP answer to the INFO */
    int resp_code;         /* if sip 200: expected <resp code> of the reply; 0 = none */
    const char *resp_text; /* substring of resp text */
};

#define ENV "<xccos ver=\"1\" envid=\"77\" xmlns=\"urn:parlano:xml:ns:xccos\">"

static const struct xccos_case xccos_cases[] = {
    {"malformed XML", ENV "<cmd id=\"cmd:chansrch\"><data>", 400, 0, NULL},
    {"not XCCOS", "<html><body>hi</body></html>", 400, 0, NULL},
    {"billion laughs",
     "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;"
     "&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]>" ENV
     "<grpchat id=\"grpchat\" chanUri=\"x\"><chat>&c;</chat></grpchat></xccos>",
     400, 0, NULL},
    {"external entity",
     "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>" ENV
     "<grpchat id=\"grpchat\" chanUri=\"x\"><chat>&e;</chat></grpchat></xccos>",
     400, 0, NULL},
    {"invalid UTF-8", ENV "<grpchat id=\"grpchat\" chanUri=\"x\"><chat>\xc3\x28</chat></grpchat></xccos>",
     400, 0, NULL},
    {"reply sent by a client", ENV "<rpl id=\"rpl:join\" seqid=\"1\"><resp code=\"200\">OK</resp></rpl></xccos>",
     400, 0, NULL},
    {"unknown command", ENV "<cmd id=\"cmd:frobnicate\" seqid=\"1\"><data/></cmd></xccos>", 200, 400,
     "ERR_UNKNOWN_COMMAND"},
    {"unknown room", ENV "<cmd id=\"cmd:join\" seqid=\"1\"><data><chanid key=\"0\" domain=\"example.test\" "
                         "value=\"no-such-room\"/></data></cmd></xccos>",
     200, 404, "ERR_NO_SUCH_ROOM"},
    {"room of another domain", ENV "<cmd id=\"cmd:bccontext\" seqid=\"1\"><data><chanib uri=\"ma-chan://evil.test/x\"/>"
                                   "<bcq><last cnt=\"5\"/></bcq></data></cmd></xccos>",
     200, 404, "ERR_NO_SUCH_ROOM"},
    {"post to unknown room", ENV "<grpchat id=\"grpchat\" seqid=\"1\" chanUri=\"ma-chan://example.test/nope\" "
                                 "author=\"sip:alice@example.test\"><chat>hi</chat></grpchat></xccos>",
     404, 0, NULL},
    {"empty body", "", 400, 0, NULL},
};

static void xccosInput_getsPreciseAnswersAndNodeSurvives(void **state)
{
    (void)state;
    struct tl_client *c = tl_client_new(node.sip_port, "bob@example.test");
    for (size_t i = 0; i < sizeof xccos_cases / sizeof xccos_cases[0]; i++) {
        const struct xccos_case *x = &xccos_cases[i];
        uint32_t cseq = pcc_send_body(c->pcc, x->body, strlen(x->body));
        assert_true(cseq > 0);
        char reason[200];
        int status = tl_wait_sip(c, cseq, 5000, reason, sizeof reason);
        if (status != x->sip_status)
            fail_msg("case '%s': SIP %d (%s), expected %d", x->name, status, reason, x->sip_status);
        if (x->resp_code != 0) {
            struct pcc_event *ev = tl_wait_reply(c, "77", 5000);
            if (ev->msg.resp_code != x->resp_code || strstr(ev->msg.resp_text, x->resp_text) == NULL)
                fail_msg("case '%s': resp %d '%s'", x->name, ev->msg.resp_code, ev->msg.resp_text);
            pcc_event_free(ev);
        }
        assert_node_serves();
    }
    assert_true(tl_node_log_contains(&node, "bad XCCOS"));
    /* The external entity's target never leaked into any answer or log. */
    assert_false(tl_node_log_contains(&node, "root:x:0:0"));
    tl_client_close(c);
}

/* ---- the log ------------------------------------------------------------------------------ */

/* A line a client would like to forge into the log: a fake ERROR line after CR LF. */
#define FORGED "2026-01-01T00:00:00.000Z ERROR  t0 FORGED"

/* The node's whole log (NUL-terminated, caller frees). */
static char *read_log(size_t *len)
{
    FILE *f = fopen(node.log_path, "rb");
    assert_non_null(f);
    char *buf = malloc(4 << 20);
    *len = fread(buf, 1, (4 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* An HTTP request on a raw connection; returns the answer's status line. */
static void http_raw(const char *request, char *answer, size_t cap)
{
    int fd = tl_raw_connect(node.web_port);
    tl_raw_send(fd, request, strlen(request));
    bool closed;
    tl_raw_read(fd, answer, cap, 2000, &closed);
    answer[strcspn(answer, "\r\n")] = '\0';
    close(fd);
}

/* User input carrying CR, LF and ESC reaches the log through the XCCOS command name, a
 * post's room URI, a SIP header, the admin API's op and an HTTP path; in every case the
 * line is written with those bytes escaped (\x0d, \x0a, \x1b), so nobody can forge a
 * line or drive an operator's terminal. */
static void userInput_neverReachesTheLogRaw(void **state)
{
    (void)state;
    struct tl_client *c = tl_client_new(node.sip_port, "bob@example.test");
    const char *bodies[] = {
        ENV "<cmd id=\"cmd:evil&#13;&#10;" FORGED " cmd\" seqid=\"1\"><data/></cmd></xccos>",
        ENV "<grpchat id=\"grpchat\" seqid=\"1\" chanUri=\"ma-chan://example.test/x&#13;&#10;"
            FORGED " post\"><chat>hi</chat></grpchat></xccos>",
    };
    for (size_t i = 0; i < 2; i++) {
        char reason[200];
        tl_wait_sip(c, pcc_send_body(c->pcc, bodies[i], strlen(bodies[i])), 5000, reason,
                    sizeof reason);
    }
    tl_drain(c);
    tl_client_close(c);
    /* SIP: a request whose header carries the bytes (refused as malformed, and logged). */
    int fd = tl_raw_connect(node.sip_port);
    const char *sip = "OPTIONS sip:example.test SIP/2.0\r\nVia: SIP/2.0/TCP x\x1b[31m\r\n"
                      "From: <sip:evil\x1b]0;owned\x07@example.test>\r\nContent-Length: 0\r\n\r\n";
    tl_raw_send(fd, sip, strlen(sip));
    char buf[2048];
    bool closed;
    tl_raw_read(fd, buf, sizeof buf, 1000, &closed);
    close(fd);
    /* HTTP: the admin API's op (logged with the caller), and a path. */
    char token[600], req[2048], answer[256];
    tl_admin_token(&node, token, sizeof token);
    const char *json = "{\"op\":\"evil\\r\\n" FORGED " admin\\u001b[31m\"}";
    snprintf(req, sizeof req, "POST /api/admin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s"
             "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", token, strlen(json), json);
    http_raw(req, answer, sizeof answer);
    fprintf(stderr, "  admin op with CR LF ESC: %s\n", answer);
    http_raw("GET /%0D%0A" "2026-01-01T00:00:00.000Z%20ERROR%20%20t0%20FORGED%1B[31m HTTP/1.1\r\n"
             "Host: x\r\nConnection: close\r\n\r\n", answer, sizeof answer);
    fprintf(stderr, "  path with CR LF ESC: %s\n", answer);
    tl_spin(200);

    size_t len;
    char *log = read_log(&len);
    /* What an operator sees (already escaped, so safe to print). */
    for (char *line = strtok(log, "\n"); line != NULL; line = strtok(NULL, "\n"))
        if (strstr(line, "FORGED") != NULL || strstr(line, "evil") != NULL)
            fprintf(stderr, "  log: %.200s\n", line);
    free(log);
    log = read_log(&len);
    assert_null(memchr(log, '\r', len));
    assert_null(memchr(log, 0x1b, len));
    assert_null(memchr(log, 0x07, len));
    assert_null(strstr(log, "\n" FORGED));
    /* …and the input is there, escaped, so an operator still sees what was sent. */
    assert_non_null(strstr(log, "unknown command 'cmd:evil\\x0d\\x0a2026-01-01T")); /* cut at 47 */
    assert_non_null(strstr(log, "x\\x0d\\x0a" FORGED " post"));
    assert_non_null(strstr(log, "evil\\x0d\\x0a" FORGED " admin\\x1b[31m"));
    free(log);
    assert_node_serves();
}

static void disconnectMidMessage_leavesNodeServing(void **state)
{
    (void)state;
    struct tl_client *c = tl_client_new(node.sip_port, "bob@example.test");
    const char *half = "INFO sip:pchat@example.test SIP/2.0\r\nVia: SIP/2.0/TCP 1.2.3.4\r\nContent-Length: 500\r\n\r\n<xccos";
    pcc_send_raw(c->pcc, half, strlen(half));
    tl_spin(100);
    tl_client_close(c);
    assert_node_serves();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rawInput_getsPreciseAnswersAndNodeSurvives),
        cmocka_unit_test(cseqMismatch_isRejected),
        cmocka_unit_test(pipelinedAndFragmentedInput_isFramedExactly),
        cmocka_unit_test(slowloris_isClosedAfterHeaderTimeout),
        cmocka_unit_test(xccosInput_getsPreciseAnswersAndNodeSurvives),
        cmocka_unit_test(disconnectMidMessage_leavesNodeServing),
        cmocka_unit_test(userInput_neverReachesTheLogRaw),
    };
    return cmocka_run_group_tests_name("bad_input", tests, setup, teardown);
}
