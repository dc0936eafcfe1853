/* Password checks on the web services are bounded per client address (issue 9 item 3): a
 * flood of Basic headers or sign-ins gets 429 with Retry-After once the address is over
 * [web] login_rate / login_burst, instead of queueing scrypt runs in the thread pool that
 * raft's disk work and file I/O share; tokens keep working meanwhile; the limit is counted
 * in /metrics and lifts after Retry-After. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/pc_buf.h"
#include "tests/lib/tl.h"

static struct tl_node node;
static char admin[700];

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    pc_buf_append(ud, p, size * n);
    return size * n;
}

/* method path; auth "basic:user:password", a whole Authorization value, or NULL. The body
 * and headers of the answer go to body/headers (NUL-terminated) when not NULL. */
static long http(const char *method, const char *path, const char *auth, const char *json,
                 struct pc_buf *body, struct pc_buf *headers)
{
    CURL *c = curl_easy_init();
    struct pc_buf b = {0}, h = {0};
    char url[512], hdr[800];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", node.web_port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    struct curl_slist *sl = NULL;
    if (auth != NULL && strncmp(auth, "basic:", 6) == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, auth + 6);
    } else if (auth != NULL) {
        snprintf(hdr, sizeof hdr, "Authorization: %s", auth);
        sl = curl_slist_append(sl, hdr);
    }
    if (json != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
        sl = curl_slist_append(sl, "Content-Type: application/json");
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(sl);
    curl_easy_cleanup(c);
    pc_buf_append(&b, "", 1);
    pc_buf_append(&h, "", 1);
    if (body != NULL)
        *body = b;
    else
        pc_buf_free(&b);
    if (headers != NULL)
        *headers = h;
    else
        pc_buf_free(&h);
    return status;
}

static long long metric(const char *name)
{
    struct pc_buf b;
    assert_int_equal(http("GET", "/metrics", NULL, NULL, &b, NULL), 200);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(b.data, key);
    long long v = p != NULL ? strtoll(p + strlen(key), NULL, 10) : -1;
    pc_buf_free(&b);
    return v;
}

static void passwordFlood_gets429WithRetryAfter_tokensStillWork(void **state)
{
    (void)state;
    /* The burst (3) goes through to the password check (401: wrong password)... */
    for (int i = 0; i < 3; i++)
        assert_int_equal(http("GET", "/api/me", "basic:alice:wrong", NULL, NULL, NULL), 401);
    /* ...then the address is over its rate: 429, Retry-After, a reason that says what to do. */
    struct pc_buf body, headers;
    long st = http("GET", "/api/me", "basic:alice:wrong", NULL, &body, &headers);
    fprintf(stderr, "  4th Basic request in a row: %ld %s", st, body.data);
    assert_int_equal(st, 429);
    assert_non_null(strcasestr(headers.data, "\nRetry-After: "));
    assert_non_null(strstr(body.data, "too many sign-in attempts"));
    pc_buf_free(&body);
    pc_buf_free(&headers);
    /* The right password is refused as well (no check runs), and so is POST /api/login. */
    assert_int_equal(http("GET", "/api/me", "basic:alice:alice-secret-1", NULL, NULL, NULL), 429);
    assert_int_equal(http("POST", "/api/login", NULL,
                          "{\"user\":\"alice\",\"password\":\"alice-secret-1\"}", NULL, NULL),
                     429);
    /* A token needs no password check: it still works. */
    assert_int_equal(http("GET", "/api/me", admin, NULL, NULL, NULL), 200);
    assert_true(metric("pchat_web_logins_rate_limited_total") >= 3);
    assert_true(metric("pchat_web_password_checks_total") >= 3);
    /* After Retry-After (the bucket refills at 2 per second) checks run again. */
    usleep(1100 * 1000);
    assert_int_equal(http("GET", "/api/me", "basic:alice:alice-secret-1", NULL, NULL, NULL), 200);
    assert_true(tl_node_log_contains(&node, "too many sign-in attempts"));
}

static int setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tl_node_init(&node, tl_port_base() + 9,
                 "[auth]\nmode = digest\n[web]\nlogin_rate = 2\nlogin_burst = 3\n");
    tl_node_start(&node);
    char token[600];
    tl_admin_token(&node, token, sizeof token);
    snprintf(admin, sizeof admin, "Bearer %s", token);
    assert_int_equal(http("POST", "/api/admin", admin,
                          "{\"op\":\"user.passwd\",\"user\":\"alice@example.test\","
                          "\"password\":\"alice-secret-1\"}", NULL, NULL),
                     200);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_node_stop(&node);
    tl_node_cleanup(&node);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(passwordFlood_gets429WithRetryAfter_tokensStillWork),
    };
    return cmocka_run_group_tests_name("login_limit", tests, setup, teardown);
}
