/* `pchat search`: full-text search of room history. XCCOS has no message-search command
 * (SIPE knows none; chansrch searches room names), so this goes to a node's web services,
 * GET /api/search, signed in with the same user and password as the SIP session. */
#ifndef PCHAT_SEARCH_CLI_H
#define PCHAT_SEARCH_CLI_H

/* argv = the words after "search" (options first). url: "http://127.0.0.1:8080". Prints one
 * line per hit ("hit ROOM #SEQ TIME AUTHOR: TEXT"), then "more CURSOR" when another page
 * exists, or "error …". Returns the exit status (0 ok, 1 refused, 2 usage or transport). */
int pchat_search(const char *url, const char *user, const char *password, int argc, char **argv);

#endif
