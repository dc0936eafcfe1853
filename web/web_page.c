/* The room management page: one HTML file with its script inline, built into the binary
 * (no files to install, no build step: edit web/static/index.html and rebuild). */
#include "web/web_int.h"

/* .incbin puts the file's bytes into the object; the Makefile makes this object depend on
 * the HTML file. */
__asm__(".section .rodata\n"
        ".global web_page_html\n"
        "web_page_html:\n"
        ".incbin \"web/static/index.html\"\n"
        ".global web_page_html_end\n"
        "web_page_html_end:\n"
        ".byte 0\n"
        ".previous\n");
extern const char web_page_html[], web_page_html_end[];

void web_page_serve(struct http_req *r)
{
    /* The page talks to this node only; it may not be framed by other sites. */
    http_add_header(r, "Content-Security-Policy",
                    "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src "
                    "'unsafe-inline' 'self'; frame-ancestors 'none'");
    http_reply(r, 200, "text/html; charset=utf-8", web_page_html,
               (size_t)(web_page_html_end - web_page_html));
}
