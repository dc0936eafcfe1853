/* Digest authentication on REGISTER (issue 4 item 3, XCCOS.md §2.2): a challenge without
 * credentials, a refusal for a wrong password or a user without one, sign-in with the right
 * one, SIPE's uri="(null)" quirk accepted, a forged nonce re-challenged, and no
 * password ever stored or logged in clear. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat/sip/sip_digest.h"
#include "tests/lib/tl.h"

static struct tl_node node;

static int setup(void **state)
{
    (void)state;
    tl_node_init(&node, tl_port_base() + 6, "[auth]\nmode = digest\n");
    tl_node_start(&node);
    char out[512];
    assert_int_equal(tl_pchatctl(&node, out, sizeof out,
                                 "user passwd alice@example.test --password correct-horse"), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_node_stop(&node);
    tl_node_cleanup(&node);
    return 0;
}

static void signIn_needsTheRightPassword(void **state)
{
    (void)state;
    char why[200];
    struct tl_client *c = tl_client_try(node.sip_port, "alice@example.test", why, sizeof why);
    assert_null(c);
    assert_non_null(strstr(why, "407"));

    c = tl_client_try_password(node.sip_port, "alice@example.test", "wrong-horse", why, sizeof why);
    assert_null(c);
    assert_non_null(strstr(why, "403 Wrong user name or password"));

    c = tl_client_try_password(node.sip_port, "bob@example.test", "anything-at-all", why, sizeof why);
    assert_null(c);
    assert_non_null(strstr(why, "No password is set"));

    c = tl_client_try_password(node.sip_port, "alice@example.test", "correct-horse", why, sizeof why);
    assert_non_null(c);
    char lobby[256];
    assert_non_null(tl_room_uri(c, "Lobby", lobby, sizeof lobby));
    tl_client_close(c);

    /* Neither the log nor the store holds the password. */
    assert_false(tl_node_log_contains(&node, "correct-horse"));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "grep -rqa correct-horse %s/data", node.dir);
    assert_int_not_equal(system(cmd), 0);
}

static const char *header_value(const char *msg, const char *name, char *out, size_t cap)
{
    const char *p = strstr(msg, name);
    if (p == NULL)
        return NULL;
    p += strlen(name);
    size_t n = strcspn(p, "\r\n");
    snprintf(out, cap, "%.*s", (int)n, p);
    return out;
}

static void register_with(int fd, const char *auth, unsigned cseq)
{
    char msg[2048];
    int n = snprintf(msg, sizeof msg,
                     "REGISTER sip:example.test SIP/2.0\r\n"
                     "Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKauth%u\r\n"
                     "From: <sip:alice@example.test>;tag=a1\r\n"
                     "To: <sip:alice@example.test>\r\n"
                     "Call-ID: auth-test\r\n"
                     "CSeq: %u REGISTER\r\n"
                     "Contact: <sip:127.0.0.1:9;transport=tcp>\r\n"
                     "%s%s%s"
                     "Content-Length: 0\r\n\r\n",
                     cseq, cseq, auth ? "Proxy-Authorization: " : "", auth ? auth : "",
                     auth ? "\r\n" : "");
    tl_raw_send(fd, msg, (size_t)n);
}

/* SIPE answers with uri="(null)" and computes A2 over it; a forged nonce or a stale one
 * gets a new challenge, not a sign-in. */
static void sipeQuirks_andForgedNonces(void **state)
{
    (void)state;
    int fd = tl_raw_connect(node.sip_port);
    char buf[8192], hdr[512], nonce[128];
    bool closed;
    register_with(fd, NULL, 1);
    tl_raw_read(fd, buf, sizeof buf, 2000, &closed);
    assert_non_null(strstr(buf, "SIP/2.0 407"));
    assert_non_null(header_value(buf, "Proxy-Authenticate: ", hdr, sizeof hdr));
    assert_non_null(strstr(hdr, "realm=\"example.test\""));
    assert_non_null(strstr(hdr, "qop=\"auth\""));
    const char *nq = strstr(hdr, "nonce=\"");
    assert_non_null(nq);
    snprintf(nonce, sizeof nonce, "%.*s", (int)strcspn(nq + 7, "\""), nq + 7);

    char ha1[SIP_DIGEST_HEX], resp[SIP_DIGEST_HEX], auth[1024];
    sip_digest_ha1("alice@example.test", "example.test", "correct-horse", ha1);

    /* A forged nonce: challenged again. */
    sip_digest_response(ha1, "1234-abcdef", "00000001", "c0ffee", "auth", "REGISTER", "(null)", resp);
    snprintf(auth, sizeof auth, "Digest username=\"alice@example.test\", realm=\"example.test\", "
             "nonce=\"1234-abcdef\", uri=\"(null)\", response=\"%s\", qop=auth, nc=00000001, "
             "cnonce=\"c0ffee\"", resp);
    register_with(fd, auth, 2);
    tl_raw_read(fd, buf, sizeof buf, 2000, &closed);
    assert_non_null(strstr(buf, "SIP/2.0 407"));

    /* The real nonce with SIPE's uri="(null)": signed in. */
    sip_digest_response(ha1, nonce, "00000001", "c0ffee", "auth", "REGISTER", "(null)", resp);
    snprintf(auth, sizeof auth, "Digest username=\"alice@example.test\", realm=\"example.test\", "
             "nonce=\"%s\", uri=\"(null)\", response=\"%s\", qop=auth, nc=00000001, "
             "cnonce=\"c0ffee\"", nonce, resp);
    register_with(fd, auth, 2); /* SIPE re-sends with the same CSeq */
    tl_raw_read(fd, buf, sizeof buf, 2000, &closed);
    assert_non_null(strstr(buf, "SIP/2.0 200"));
    assert_non_null(strstr(buf, "Supported: msrtc-event-categories"));

    /* Bound to the connection: a refresh is not challenged again. */
    register_with(fd, NULL, 3);
    tl_raw_read(fd, buf, sizeof buf, 2000, &closed);
    assert_non_null(strstr(buf, "SIP/2.0 200"));
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(signIn_needsTheRightPassword),
        cmocka_unit_test(sipeQuirks_andForgedNonces),
    };
    return cmocka_run_group_tests_name("auth", tests, setup, teardown);
}
