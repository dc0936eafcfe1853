/* Test harness: real pchatd processes on loopback and synchronous SIP/XCCOS clients. */
#ifndef TL_H
#define TL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "chat/client/pcc.h"

/* Integration tests start the real daemon (from $PCHAT_BUILD/bin, so the ASan run tests the
 * ASan binary) with its own data directory and ports, talk real SIP to it, and stop it with
 * SIGTERM, failing the test if it does not exit cleanly (which under ASan includes leaks). */

struct tl_node {
    pid_t pid;
    int sip_port;
    int web_port;        /* HTTP: SIP port + TL_WEB_PORT_OFFSET */
    char dir[256];       /* temp dir: config, data, log */
    char log_path[300];
    char admin_path[300];
    char conf_path[300];
    long log_mark;       /* log size when it was last started */
};

/* A node's cluster port is its SIP port + this (SIP ports stay below base + 50). */
#define TL_CLUSTER_PORT_OFFSET 50
/* …and its HTTP port SIP port + this (a test process's ports span base .. base + 149). */
#define TL_WEB_PORT_OFFSET 100

/* A port base unique to this test process (tests may run side by side). */
int tl_port_base(void);

/* Creates a temp dir and writes a config for one node on port; extra_conf is appended to
 * the file verbatim (INI lines, may be NULL). Does not start it. With
 * PCHAT_TEST_CLUSTER_TLS=1 in the environment, [cluster] tls_* lines follow (a test pool CA,
 * the certificate of the node id extra_conf gives), so that any pool test runs over mutual
 * TLS. */
void tl_node_init(struct tl_node *n, int sip_port, const char *extra_conf);
/* Starts pchatd and waits (up to 10 s) until it accepts SIP connections. */
void tl_node_start(struct tl_node *n);
/* Starts pchatd without waiting / waits until the started one is ready. */
void tl_node_spawn(struct tl_node *n);
void tl_node_wait_ready(struct tl_node *n, unsigned ms);
/* n nodes of one pool: node i+1 on SIP port first_sip_port + i, cluster port + 50, named
 * n1, n2…; extra_conf appended to each config. Then all started together. */
void tl_pool_init(struct tl_node *nodes, int n, int first_sip_port, const char *extra_conf);
void tl_pool_start(struct tl_node *nodes, int n);
/* SIGTERM, wait; asserts exit status 0. */
void tl_node_stop(struct tl_node *n);
/* SIGKILL, wait (no checks: a crash by design). */
void tl_node_kill(struct tl_node *n);
/* Removes the temp dir (after stop). */
void tl_node_cleanup(struct tl_node *n);
/* Prints the last lines of the node's log to stderr (on failures). */
void tl_node_dump_log(const struct tl_node *n);
/* True if the log written since the node's last start contains s. */
bool tl_node_log_contains_since(const struct tl_node *n, const char *s);
/* True if the node's log contains s. */
bool tl_node_log_contains(const struct tl_node *n, const char *s);
/* The value of a metric in the node's /metrics, name with its labels as printed
 * ("pchat_http_timeouts_total{kind=\"idle\"}"); -1 when absent or unreachable. */
long long tl_metric(const struct tl_node *n, const char *name);
/* The node's local administrator token (data/admin.token), without its newline. */
void tl_admin_token(const struct tl_node *n, char *out, size_t cap);
/* Runs `pchatctl -S admin.sock args…` and returns its exit status; output into out. */
int tl_pchatctl(const struct tl_node *n, char *out, size_t cap, const char *args);

/* ---- clients ---------------------------------------------------------------------------- */

struct tl_event_list;

struct tl_client {
    struct pcc *pcc;
    struct tl_event_list *pending; /* events seen but not yet consumed by a wait */
    char user[128];
};

/* The loop every client of the test runs on. */
uv_loop_t *tl_loop(void);
/* Clients connect to 127.0.0.1:port, unless this maps port to another host (an address
 * literal), e.g. a node in a network namespace (tests/chaos). */
void tl_client_host(int port, const char *host);
/* Connects and signs in user on port, asserting READY within 10 s. */
struct tl_client *tl_client_new(int port, const char *user);
/* Same, but returns NULL with the CLOSED reason in why instead of failing. */
struct tl_client *tl_client_try(int port, const char *user, char *why, size_t cap);
/* Same, answering a Digest challenge with password (the string must outlive the client). */
struct tl_client *tl_client_try_password(int port, const char *user, const char *password,
                                         char *why, size_t cap);
void tl_client_close(struct tl_client *c);

/* Waits for the reply to the command sent with envid; asserts it arrives within ms.
 * The caller frees the event with pcc_event_free. */
struct pcc_event *tl_wait_reply(struct tl_client *c, const char *envid, unsigned ms);
/* Waits for the final SIP response to the INFO with cseq; returns its status (0 on timeout). */
int tl_wait_sip(struct tl_client *c, uint32_t cseq, unsigned ms, char *reason, size_t cap);
/* Waits for a grpchat delivery in room whose text is text (NULL = any); NULL on timeout. */
struct pcc_event *tl_wait_chat(struct tl_client *c, const char *room_uri, const char *text,
                               unsigned ms);
/* Waits for ntc:join (entered = true) or ntc:part about user. */
struct pcc_event *tl_wait_notice(struct tl_client *c, bool entered, const char *user, unsigned ms);
/* True if no grpchat/ntc event arrives within ms (consumes nothing). */
bool tl_quiet(struct tl_client *c, unsigned ms);
/* Drops every pending event. */
void tl_drain(struct tl_client *c);
/* Waits for the connection to close; returns the CLOSED event's status (0 on timeout). */
int tl_wait_closed(struct tl_client *c, unsigned ms);

/* Commands with their replies (asserting a reply arrives). */
struct pcc_event *tl_search(struct tl_client *c, const char *criteria);
/* Finds a room's URI by exact name through chansrch; NULL if not visible. Copy into buf. */
const char *tl_room_uri(struct tl_client *c, const char *name, char *buf, size_t cap);
struct pcc_event *tl_join(struct tl_client *c, const char *room_uri);
struct pcc_event *tl_history(struct tl_client *c, const char *room_uri, unsigned count,
                             uint64_t before);
/* Posts and waits for the SIP verdict; returns the status. */
int tl_post(struct tl_client *c, const char *room_uri, const char *text);

/* ---- raw TCP, for what a well-behaved client would never send ---------------------------- */

/* Connects to 127.0.0.1:port (asserting success); returns the socket. */
int tl_raw_connect(int port);
/* Sends everything (stops quietly if the server closed first: a valid answer). */
void tl_raw_send(int fd, const char *data, size_t len);
/* Reads what arrives within ms into buf (NUL-terminated); *closed if the server closed. */
size_t tl_raw_read(int fd, char *buf, size_t cap, unsigned ms, bool *closed);

/* Runs the loop for ms milliseconds (lets I/O happen without waiting for anything). */
void tl_spin(unsigned ms);

#endif
