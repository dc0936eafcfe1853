/* Unit tests for chat/sip/sip_frame: splitting a TCP byte stream into whole SIP messages,
 * however the bytes are cut up by the network, and refusing streams that cannot be framed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "chat/sip/sip_frame.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"

/* Small limits so that the "too big" paths are cheap to reach. */
static const struct sip_frame_limits LIM = {.max_header_bytes = 256, .max_body_bytes = 100};

#define HDR(cl)                                                                             \
    "INFO sip:pchat@example.test SIP/2.0\r\n"                                               \
    "Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK1\r\n"                                    \
    "Call-ID: abc\r\n" cl "\r\n"

static const char MSG1[] = HDR("Content-Length: 5\r\n") "hello";
static const char MSG1_HDR[] = HDR("Content-Length: 5\r\n");
static const char MSG2[] = HDR("l: 3\r\n") "abc";
static const char NO_LEN[] = HDR("");

/* Frames buf as one call on a fresh framer. */
static int frame_once(const char *buf, size_t len, struct sip_frame *f)
{
    struct sip_framer fr = {0};
    memset(f, 0xa5, sizeof *f); /* garbage, so that unset fields show */
    return sip_frame_next(&fr, buf, len, &LIM, f);
}

static int frame_str(const char *s, struct sip_frame *f)
{
    return frame_once(s, strlen(s), f);
}

/* A one-header message "X\r\n<line>\r\n\r\n" framed with the given Content-Length line. */
static int frame_with_length_line(const char *line)
{
    char buf[512];
    snprintf(buf, sizeof buf, "OPTIONS sip:a@b SIP/2.0\r\n%s\r\n\r\n", line);
    struct sip_frame f;
    return frame_once(buf, strlen(buf), &f);
}

static void frame_findsCompleteMessageWithBody(void **state)
{
    (void)state;
    struct sip_frame f;
    assert_int_equal(frame_str(MSG1, &f), 0);
    assert_int_equal(f.skip, 0);
    assert_int_equal(f.header_len, strlen(MSG1_HDR));
    assert_int_equal(f.body_len, 5);
    assert_int_equal(f.has_length, 1);
    assert_memory_equal(MSG1 + f.skip + f.header_len, "hello", 5);
}

/* The worst case for resumption: the stream arrives one byte per read. Every prefix must ask
 * for more, and the last byte must give exactly the frame a single read gives. */
static void frame_resumesWhenFedByteByByte(void **state)
{
    (void)state;
    struct sip_frame whole;
    assert_int_equal(frame_str(MSG1, &whole), 0);

    struct sip_framer fr = {0};
    struct pc_buf in = {0};
    size_t n = strlen(MSG1);
    for (size_t i = 0; i < n; i++) {
        pc_buf_append(&in, MSG1 + i, 1); /* may move the buffer: the framer keeps offsets */
        struct sip_frame f;
        int rc = sip_frame_next(&fr, in.data, in.len, &LIM, &f);
        if (i + 1 < n) {
            assert_int_equal(rc, PC_EAGAIN);
            assert_int_equal(f.skip, 0);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(f.skip, whole.skip);
            assert_int_equal(f.header_len, whole.header_len);
            assert_int_equal(f.body_len, whole.body_len);
            assert_int_equal(f.has_length, 1);
        }
    }
    /* A complete frame resets the framer for the next message. */
    assert_int_equal(fr.skip, 0);
    assert_int_equal(fr.scanned, 0);
    pc_buf_free(&in);
}

/* The blank line may be split anywhere across two reads. */
static void frame_findsTerminatorSplitAcrossReads(void **state)
{
    (void)state;
    size_t n = strlen(MSG1), hl = strlen(MSG1_HDR);
    for (size_t cut = hl - 5; cut <= hl; cut++) {
        struct sip_framer fr = {0};
        struct sip_frame f;
        assert_int_equal(sip_frame_next(&fr, MSG1, cut, &LIM, &f), PC_EAGAIN);
        assert_int_equal(sip_frame_next(&fr, MSG1, n, &LIM, &f), 0);
        assert_int_equal(f.header_len, hl);
        assert_int_equal(f.body_len, 5);
    }
}

/* Clients pipeline: one read may hold two whole messages and the start of a third. */
static void frame_splitsPipelinedMessages(void **state)
{
    (void)state;
    struct pc_buf in = {0};
    pc_buf_puts(&in, MSG1);
    pc_buf_puts(&in, MSG2);
    pc_buf_puts(&in, "INFO sip:x"); /* partial third */

    struct sip_framer fr = {0};
    struct sip_frame f;
    assert_int_equal(sip_frame_next(&fr, in.data, in.len, &LIM, &f), 0);
    assert_int_equal(f.skip + f.header_len + f.body_len, strlen(MSG1));
    pc_buf_consume(&in, f.skip + f.header_len + f.body_len);

    assert_int_equal(sip_frame_next(&fr, in.data, in.len, &LIM, &f), 0);
    assert_int_equal(f.body_len, 3);
    assert_int_equal(f.skip + f.header_len + f.body_len, strlen(MSG2));
    assert_memory_equal(in.data + f.header_len, "abc", 3);
    pc_buf_consume(&in, f.skip + f.header_len + f.body_len);

    assert_int_equal(sip_frame_next(&fr, in.data, in.len, &LIM, &f), PC_EAGAIN);
    assert_string_equal(in.data, "INFO sip:x");
    pc_buf_free(&in);
}

/* RFC 5626 keep-alives (CRLF CRLF) between messages belong to no message; alone they are
 * reported as droppable while more input is awaited. */
static void frame_skipsLeadingKeepAlives(void **state)
{
    (void)state;
    struct sip_frame f;
    assert_int_equal(frame_str("\r\n\r\n", &f), PC_EAGAIN);
    assert_int_equal(f.skip, 4);
    assert_int_equal(frame_str("\r\n\r\n\n", &f), PC_EAGAIN);
    assert_int_equal(f.skip, 5);

    char buf[512];
    snprintf(buf, sizeof buf, "\r\n\r\n%s", MSG1);
    assert_int_equal(frame_str(buf, &f), 0);
    assert_int_equal(f.skip, 4);
    assert_int_equal(f.header_len, strlen(MSG1_HDR));
    assert_int_equal(f.body_len, 5);

    /* Keep-alive then a partial message: the CRLFs may still be dropped early. */
    assert_int_equal(frame_str("\r\nINFO sip:x SIP/2.0\r\n", &f), PC_EAGAIN);
    assert_int_equal(f.skip, 2);
}

static void frame_acceptsCompactAndCaseInsensitiveLength(void **state)
{
    (void)state;
    struct sip_frame f;
    assert_int_equal(frame_str(MSG2, &f), 0);
    assert_int_equal(f.body_len, 3);
    assert_int_equal(f.has_length, 1);

    assert_int_equal(frame_str("OPTIONS sip:a@b SIP/2.0\r\nL:2\r\n\r\nok", &f), 0);
    assert_int_equal(f.body_len, 2);
    assert_int_equal(frame_str("OPTIONS sip:a@b SIP/2.0\r\ncontent-LENGTH \t:  4 \r\n\r\nbody", &f), 0);
    assert_int_equal(f.body_len, 4);
    /* Headers that merely start like it are not it. */
    assert_int_equal(frame_str("OPTIONS sip:a@b SIP/2.0\r\nLength: 9\r\nlx: 9\r\n"
                               "Content-Lengthy: 9\r\n\r\n", &f), 0);
    assert_int_equal(f.has_length, 0);
    assert_int_equal(f.body_len, 0);
}

/* A message without Content-Length is framed with an empty body (the caller decides whether
 * to complain); whatever follows is the next message. */
static void frame_withoutLengthHasEmptyBody(void **state)
{
    (void)state;
    char buf[512];
    snprintf(buf, sizeof buf, "%s%s", NO_LEN, MSG1);
    struct sip_frame f;
    assert_int_equal(frame_str(buf, &f), 0);
    assert_int_equal(f.has_length, 0);
    assert_int_equal(f.body_len, 0);
    assert_int_equal(f.header_len, strlen(NO_LEN));
}

/* The Content-Length in the body of a message is data, not a header. */
static void frame_ignoresLengthInsideBody(void **state)
{
    (void)state;
    const char *m = "MESSAGE sip:a@b SIP/2.0\r\nl: 24\r\n\r\n\r\n\r\nContent-Length: 99\r\n";
    struct sip_frame f;
    assert_int_equal(frame_str(m, &f), 0);
    assert_int_equal(f.body_len, 24);
    assert_int_equal(f.skip + f.header_len + f.body_len, strlen(m));
}

static void frame_acceptsBareLineFeeds(void **state)
{
    (void)state;
    struct sip_frame f;
    assert_int_equal(frame_str("OPTIONS sip:a@b SIP/2.0\nl: 2\n\nhi", &f), 0);
    assert_int_equal(f.header_len, strlen("OPTIONS sip:a@b SIP/2.0\nl: 2\n\n"));
    assert_int_equal(f.body_len, 2);
}

static void frame_rejectsConflictingLengths(void **state)
{
    (void)state;
    assert_int_equal(frame_with_length_line("Content-Length: 5\r\nl: 6"), PC_EPROTO);
    assert_int_equal(frame_with_length_line("Content-Length: 0\r\nContent-Length: 1"), PC_EPROTO);
    /* Repeating the same value is redundant, not contradictory. */
    struct sip_frame f;
    assert_int_equal(frame_str("OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\nContent-Length: 3\r\n\r\nabc", &f), 0);
    assert_int_equal(f.body_len, 3);
}

static void frame_rejectsNonNumericLength(void **state)
{
    (void)state;
    const char *bad[] = {"Content-Length: abc", "Content-Length:", "Content-Length:   ",
                         "Content-Length: -1", "Content-Length: +5", "Content-Length: 5x",
                         "Content-Length: 5 5", "l: 0x10", "Content-Length: 1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = frame_with_length_line(bad[i]);
        if (rc != PC_EPROTO)
            fail_msg("'%s' gave %s, expected PC_EPROTO", bad[i], pc_errname(rc));
    }
}

/* A declared body beyond the limit is refused before any of it is buffered, however large
 * the number (no overflow into a small value). */
static void frame_rejectsBodyOverLimit(void **state)
{
    (void)state;
    assert_int_equal(frame_with_length_line("Content-Length: 101"), PC_ETOOBIG);
    assert_int_equal(frame_with_length_line("Content-Length: 1000"), PC_ETOOBIG);
    assert_int_equal(frame_with_length_line("Content-Length: 99999999999999999999999999999"),
                     PC_ETOOBIG);
    assert_int_equal(frame_with_length_line("l: 18446744073709551617"), PC_ETOOBIG); /* 2^64+1 */
    /* Exactly the limit is fine: it waits for the body. */
    assert_int_equal(frame_with_length_line("Content-Length: 100"), PC_EAGAIN);
    assert_int_equal(frame_with_length_line("Content-Length: 000000000000000000000100"), PC_EAGAIN);
}

static void frame_rejectsHeaderBlockOverLimit(void **state)
{
    (void)state;
    char buf[1024];
    /* No blank line yet, but already more than the limit: give up without waiting. */
    memset(buf, 'a', 300);
    struct sip_frame f;
    assert_int_equal(frame_once(buf, LIM.max_header_bytes, &f), PC_EAGAIN);
    assert_int_equal(frame_once(buf, LIM.max_header_bytes + 1, &f), PC_ETOOBIG);

    /* A complete header block one byte too long, and one exactly at the limit. */
    const char *start = "OPTIONS sip:a@b SIP/2.0\r\nX: ";
    for (size_t total = LIM.max_header_bytes; total <= LIM.max_header_bytes + 1; total++) {
        size_t pad = total - strlen(start) - 4;
        snprintf(buf, sizeof buf, "%s%.*s\r\n\r\n", start, (int)pad,
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        assert_int_equal(strlen(buf), total);
        int rc = frame_str(buf, &f);
        if (total == LIM.max_header_bytes) {
            assert_int_equal(rc, 0);
            assert_int_equal(f.header_len, total);
        } else {
            assert_int_equal(rc, PC_ETOOBIG);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame_findsCompleteMessageWithBody),
        cmocka_unit_test(frame_resumesWhenFedByteByByte),
        cmocka_unit_test(frame_findsTerminatorSplitAcrossReads),
        cmocka_unit_test(frame_splitsPipelinedMessages),
        cmocka_unit_test(frame_skipsLeadingKeepAlives),
        cmocka_unit_test(frame_acceptsCompactAndCaseInsensitiveLength),
        cmocka_unit_test(frame_withoutLengthHasEmptyBody),
        cmocka_unit_test(frame_ignoresLengthInsideBody),
        cmocka_unit_test(frame_acceptsBareLineFeeds),
        cmocka_unit_test(frame_rejectsConflictingLengths),
        cmocka_unit_test(frame_rejectsNonNumericLength),
        cmocka_unit_test(frame_rejectsBodyOverLimit),
        cmocka_unit_test(frame_rejectsHeaderBlockOverLimit),
    };
    return cmocka_run_group_tests_name("sip_frame", tests, NULL, NULL);
}
