/* Files posted to rooms (being written). */
#include "web/web_int.h"

bool web_files_upload_begin(struct web_service *w, struct http_req *r, struct web_req *q)
{
    (void)w;
    (void)q;
    http_reply_error(r, 501, "file upload is not available yet");
    return false;
}

void web_files_auth_done(struct web_service *w, struct http_req *r, struct web_req *q)
{
    (void)w;
    (void)q;
    http_reply_error(r, 501, "file upload is not available yet");
}

void web_files_dispatch(struct web_service *w, struct http_req *r, struct web_req *q)
{
    (void)w;
    (void)q;
    http_reply_error(r, 501, "files are not available yet");
}
