/* pchat search [--all|--phrase] [--case] [--author A,B] [--room R,S] [--from D] [--to D]
 *              [--limit N] [--before CURSOR] WORDS…  (search_cli.h) */
#include "cmd/pchat/search_cli.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pc_buf.h"

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    pc_buf_append(arg, p, size * n);
    return size * n;
}

static void add_param(CURL *c, struct pc_buf *url, const char *name, const char *value)
{
    char *esc = curl_easy_escape(c, value, 0);
    pc_buf_printf(url, "%s%s=%s", strchr(url->data, '?') != NULL ? "&" : "?", name,
                  esc != NULL ? esc : "");
    curl_free(esc);
}

static int usage(void)
{
    fprintf(stderr, "usage: pchat -u USER [-p PASSWORD] [-w URL] search [--all|--phrase] [--case]\n"
            "         [--author A,B] [--room R,S] [--from DATE] [--to DATE] [--limit N]\n"
            "         [--before CURSOR] WORDS…\n"
            "  --all      every word (default: any of them)   --phrase  the words in this order\n"
            "  --case     match case                          DATE      2026-11-24[T13:48:56Z]\n"
            "  --before   the CURSOR printed on the \"more\" line of the previous page\n");
    return 2;
}

static void print_hits(json_t *ans)
{
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(ans, "hits"), i, h)
    {
        printf("hit %s #%lld %s %s: %s\n", json_string_value(json_object_get(h, "room")),
               (long long)json_integer_value(json_object_get(h, "seq")),
               json_string_value(json_object_get(h, "time")),
               json_string_value(json_object_get(h, "author")),
               json_string_value(json_object_get(h, "text")));
    }
    const char *next = json_string_value(json_object_get(ans, "next"));
    if (next != NULL)
        printf("more %s\n", next);
}

int pchat_search(const char *url, const char *user, const char *password, int argc, char **argv)
{
    CURL *c = curl_easy_init();
    if (c == NULL) {
        fprintf(stderr, "pchat: libcurl failed to start\n");
        return 2;
    }
    struct pc_buf u = {0}, words = {0}, body = {0};
    pc_buf_printf(&u, "%s/api/search", url);
    int i = 0, status = 0;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *o = argv[i] + 2;
        if (strcmp(o, "all") == 0 || strcmp(o, "phrase") == 0)
            add_param(c, &u, "mode", o);
        else if (strcmp(o, "case") == 0)
            add_param(c, &u, "case", "1");
        else if ((strcmp(o, "author") == 0 || strcmp(o, "room") == 0 || strcmp(o, "from") == 0 ||
                  strcmp(o, "to") == 0 || strcmp(o, "limit") == 0 || strcmp(o, "before") == 0) &&
                 i + 1 < argc)
            add_param(c, &u, o, argv[++i]);
        else if (o[0] == '\0') {
            i++; /* "--": words follow */
            break;
        } else {
            status = usage();
            goto out;
        }
    }
    for (; i < argc; i++)
        pc_buf_printf(&words, "%s%s", words.len > 0 ? " " : "", argv[i]);
    add_param(c, &u, "q", words.len > 0 ? words.data : "");
    curl_easy_setopt(c, CURLOPT_URL, u.data);
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERNAME, user);
    curl_easy_setopt(c, CURLOPT_PASSWORD, password != NULL ? password : "");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    long http_status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http_status);
    json_t *ans = rc == CURLE_OK && body.len > 0 ? json_loadb(body.data, body.len, 0, NULL) : NULL;
    if (rc != CURLE_OK) {
        fprintf(stderr, "pchat: cannot reach %s: %s (give the node's web address with -w URL)\n",
                url, curl_easy_strerror(rc));
        status = 2;
    } else if (ans == NULL) {
        printf("error HTTP %ld from %s (not a pchat node?)\n", http_status, url);
        status = 1;
    } else if (!json_is_true(json_object_get(ans, "ok"))) {
        printf("error %s\n", json_string_value(json_object_get(ans, "error")));
        status = 1;
    } else {
        print_hits(ans);
    }
    json_decref(ans);
out:
    curl_easy_cleanup(c);
    pc_buf_free(&u);
    pc_buf_free(&words);
    pc_buf_free(&body);
    return status;
}
