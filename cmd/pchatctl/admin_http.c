/* One POST to /api/admin with libcurl; the node answers JSON for errors too. */
#include "cmd/pchatctl/admin_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pc_buf.h"

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    pc_buf_append(arg, p, size * n);
    return size * n;
}

json_t *admin_http_call(const struct admin_http *h, json_t *req)
{
    char url[1024], auth[1024];
    snprintf(url, sizeof url, "%s/api/admin", h->url);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        fprintf(stderr, "pchatctl: libcurl failed to start\n");
        return NULL;
    }
    char *body = json_dumps(req, JSON_COMPACT);
    struct pc_buf answer = {0};
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (h->token != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", h->token);
        headers = curl_slist_append(headers, auth);
    } else if (h->user != NULL) {
        curl_easy_setopt(c, CURLOPT_USERNAME, h->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, h->password != NULL ? h->password : "");
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (h->cacert != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, h->cacert);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    free(body);
    json_t *ans = NULL;
    if (rc != CURLE_OK) {
        fprintf(stderr, "pchatctl: cannot reach %s: %s (is the node running? is [web] port "
                "right?)\n", url, curl_easy_strerror(rc));
    } else {
        ans = answer.len > 0 ? json_loadb((const char *)answer.data, answer.len, 0, NULL) : NULL;
        if (ans == NULL)
            fprintf(stderr, "pchatctl: %s answered HTTP %ld without JSON\n", url, status);
    }
    pc_buf_free(&answer);
    return ans;
}
