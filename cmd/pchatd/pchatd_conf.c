#include "cmd/pchatd/pchatd_conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "common/pc_log.h"
#include "compliance/compl_event.h"

#define F(field) offsetof(struct pchatd_conf, field)
#define BIG 1000000000LL

const struct pc_conf_item pchatd_conf_table[] = {
    {"node", "id", PC_CONF_INT, F(node_id), "1", 1, 65535, "this node's id in the pool (1, 2, 3…)"},
    {"node", "name", PC_CONF_STR, F(node_name), "n1", 0, 0, "label in logs and metrics"},
    {"node", "data_dir", PC_CONF_STR, F(data_dir), "run/n1", 0, 0, "where RocksDB and raft data live"},
    {"node", "min_free_space", PC_CONF_SIZE, F(min_free_bytes), "256M", 0, 1LL << 50,
     "free space the data disk must keep: below it the node refuses new posts, uploads and "
     "changes (SIP 503 disk full) until space returns, before raft or RocksDB run out (0 = "
     "no guard)"},
    {"node", "log_level", PC_CONF_STR, F(log_level), "info", 0, 0, "debug, info, notice, warn or error"},
    {"node", "admin_socket", PC_CONF_STR, F(admin_socket), "", 0, 0,
     "unix socket for pchatctl (empty = <data_dir>/admin.sock)"},

    {"sip", "listen", PC_CONF_STR, F(sip_listen), "127.0.0.1", 0, 0, "IPv4 address to listen on"},
    {"sip", "advertise", PC_CONF_STR, F(sip_advertise), "", 0, 0,
     "address put in our Via/Contact headers (empty = listen)"},
    {"sip", "tcp_port", PC_CONF_INT, F(sip_tcp_port), "5060", 1, 65535, "SIP over TCP port"},
    {"sip", "tls_port", PC_CONF_INT, F(sip_tls_port), "5061", 0, 65535,
     "SIP over TLS port (0 = none; TLS also needs tls_cert and tls_key)"},
    {"sip", "tls_cert", PC_CONF_STR, F(sip_tls_cert), "", 0, 0,
     "PEM certificate chain for SIP over TLS (empty = no TLS)"},
    {"sip", "tls_key", PC_CONF_STR, F(sip_tls_key), "", 0, 0, "PEM private key of tls_cert"},
    {"sip", "domain", PC_CONF_STR, F(domain), "example.test", 0, 0, "SIP domain served"},
    {"sip", "chat_user", PC_CONF_STR, F(chat_user), "pchat", 0, 0,
     "user part of the chat service URI sip:<chat_user>@<domain>"},
    {"sip", "max_header_bytes", PC_CONF_SIZE, F(sip_max_header_bytes), "16k", 1024, 1 << 20,
     "longest SIP header block accepted"},
    {"sip", "max_body_bytes", PC_CONF_SIZE, F(sip_max_body_bytes), "64k", 1024, 16 << 20,
     "largest SIP body accepted (413 beyond)"},
    {"sip", "out_soft_bytes", PC_CONF_SIZE, F(sip_out_soft_bytes), "1M", 4096, 1LL << 32,
     "unsent bytes to a client above which its new commands get 503"},
    {"sip", "out_hard_bytes", PC_CONF_SIZE, F(sip_out_hard_bytes), "8M", 4096, 1LL << 32,
     "unsent bytes to a client above which it is disconnected"},
    {"sip", "max_pending_commands", PC_CONF_INT, F(sip_max_pending_commands), "256", 1, 100000,
     "unanswered INFOs per session before 503"},
    {"sip", "max_connections", PC_CONF_INT, F(sip_max_connections), "50000", 1, 1000000,
     "client connections per node"},
    {"sip", "register_expires", PC_CONF_INT, F(sip_register_expires), "3600", 60, 86400,
     "registration lifetime granted, seconds"},
    {"sip", "session_expires", PC_CONF_INT, F(sip_session_expires), "1800", 90, 86400,
     "chat session refresh interval (Session-Expires), seconds"},
    {"sip", "keepalive", PC_CONF_INT, F(sip_keepalive), "300", 10, 3600,
     "client keep-alive interval advertised, seconds"},
    {"sip", "retry_after", PC_CONF_INT, F(sip_retry_after), "5", 1, 3600, "Retry-After on 503, seconds"},
    {"sip", "header_timeout", PC_CONF_INT, F(sip_header_timeout), "30", 1, 3600,
     "a started message must arrive whole within this many seconds"},
    {"sip", "idle_timeout", PC_CONF_INT, F(sip_idle_timeout), "120", 1, 86400,
     "unregistered idle connections are closed after this many seconds"},

    {"auth", "mode", PC_CONF_STR, F(auth_mode), "off", 0, 0,
     "off (anyone of the domain, for tests) or digest (passwords)"},
    {"auth", "allow_unknown_users", PC_CONF_BOOL, F(auth_allow_unknown_users), "yes", 0, 0,
     "with mode = off: users not created with pchatctl may sign in"},

    {"cluster", "shards", PC_CONF_INT, F(cluster_shards), "16", 1, 4096,
     "number of room shards, fixed when the pool is created"},
    {"cluster", "listen", PC_CONF_STR, F(cluster_listen), "127.0.0.1:7600", 0, 0,
     "this node's cluster port (raft and node-to-node traffic), address:port"},
    {"cluster", "peers", PC_CONF_STR, F(cluster_peers), "", 0, 0,
     "the pool's voting nodes at creation, this one included: id=address:port, comma "
     "separated (empty = a pool of this node alone)"},
    {"cluster", "election_timeout_ms", PC_CONF_INT, F(cluster_election_ms), "1000", 100, 60000,
     "raft election timeout: a dead leader is replaced after about this long"},
    {"cluster", "heartbeat_ms", PC_CONF_INT, F(cluster_heartbeat_ms), "100", 10, 10000,
     "raft heartbeat interval (well below the election timeout)"},
    {"cluster", "segment_size", PC_CONF_SIZE, F(cluster_segment_bytes), "1M", 64 * 1024, 64 << 20,
     "raft log segment file size"},
    {"cluster", "join", PC_CONF_BOOL, F(cluster_join), "no", 0, 0,
     "yes on a node joining a running pool: it waits to be added (pchatctl node add) "
     "instead of creating a pool with [cluster] peers"},
    {"cluster", "balance", PC_CONF_BOOL, F(cluster_balance), "yes", 0, 0,
     "hand shard ownership to less loaded nodes so that every node owns its share"},
    {"cluster", "snapshot_entries", PC_CONF_INT, F(cluster_snapshot_entries), "1024", 16, 10000000,
     "raft entries between snapshots (bounds the raft log on disk)"},
    {"cluster", "retention_interval_ms", PC_CONF_INT, F(cluster_retention_interval_ms), "60000", 0,
     86400000, "how often the rooms' owners purge messages past their retention (rooms' and "
     "categories' retention_days / retention_messages; 0 = never)"},
    {"cluster", "abandoned_upload_s", PC_CONF_INT, F(cluster_abandoned_upload_s), "3600", 0, 2000000,
     "seconds after which the stored chunks of an upload that never finished are deleted "
     "(0 = never); a slower upload fails with 408"},
    {"cluster", "tls_ca", PC_CONF_STR, F(cluster_tls_ca), "", 0, 0,
     "PEM certificate of the pool CA: with tls_cert and tls_key, every cluster connection is "
     "mutual TLS 1.3 and only nodes with a certificate of this CA naming a pool member get in "
     "(empty = plain TCP, unauthenticated; deploy/pool-ca makes a CA and node certificates)"},
    {"cluster", "tls_cert", PC_CONF_STR, F(cluster_tls_cert), "", 0, 0,
     "PEM certificate (chain) of this node, issued by tls_ca with CN = pchat-node-<[node] id>"},
    {"cluster", "tls_key", PC_CONF_STR, F(cluster_tls_key), "", 0, 0,
     "PEM private key of tls_cert (unencrypted; keep it readable by pchatd only)"},
    {"cluster", "max_pending_posts", PC_CONF_INT, F(cluster_max_pending_posts), "20000", 1, 10000000,
     "posts waiting for commit before new ones get 503"},

    {"chat", "default_history", PC_CONF_INT, F(chat_default_history), "30", 1, 500,
     "messages sent to a joiner who does not ask for a count (Lync: 30)"},
    {"chat", "max_history", PC_CONF_INT, F(chat_max_history), "500", 1, 100000,
     "most messages one history request returns"},
    {"chat", "message_max_chars", PC_CONF_INT, F(chat_message_max_chars), "8000", 1, 1000000,
     "longest post accepted, in characters (announced as messageSizeLimit)"},
    {"chat", "story_max_chars", PC_CONF_INT, F(chat_story_max_chars), "16000", 1, 1000000,
     "longest story (a long post, <story>) accepted, in characters (announced as "
     "storySizeLimit)"},
    {"chat", "max_rooms_per_request", PC_CONF_INT, F(chat_max_rooms_per_request), "200", 1, 5000,
     "rooms one bjoin may name; a longer list is refused whole with a reason"},
    {"chat", "max_members_per_request", PC_CONF_INT, F(chat_max_members_per_request), "1000", 1,
     1000000, "users one list (members, managers, presenters, allowed…) of a room or category "
     "change may name; a longer list is refused whole with a reason"},
    {"chat", "post_rate", PC_CONF_INT, F(chat_post_rate), "0", 0, 100000,
     "posts per second one user may send through this node (0 = no limit)"},
    {"chat", "post_burst", PC_CONF_INT, F(chat_post_burst), "20", 1, 100000,
     "posts a user may send at once before post_rate applies"},
    {"chat", "max_sessions_per_user", PC_CONF_INT, F(chat_max_sessions_per_user), "0", 0, 100000,
     "chat sessions one user may hold on this node (0 = no limit)"},
    {"chat", "search_limit", PC_CONF_INT, F(chat_search_limit), "999", 1, 100000,
     "most rooms one room search returns"},
    {"chat", "participant_update_limit", PC_CONF_INT, F(chat_participant_update_limit), "1000", 0, 1000000,
     "rooms with more users send no roster or join/part notices"},

    {"compliance", "capture", PC_CONF_STR, F(compliance_capture), "none", 0, 0,
     "event classes recorded: none, lync, all, or a list (join,part,chat,backchat,…)"},
    {"compliance", "xml_dir", PC_CONF_STR, F(compliance_xml_dir), "", 0, 0,
     "XML adapter: write Lync-style compliance XML files here (empty = no XML adapter)"},
    {"compliance", "xml_per_room", PC_CONF_BOOL, F(compliance_xml_per_room), "no", 0, 0,
     "XML adapter: one file per room and batch (Lync's OneChatRoomPerOutputFile)"},
    {"compliance", "exec", PC_CONF_STR, F(compliance_exec), "", 0, 0,
     "exec adapter: a shell command that reads each batch as JSON lines on stdin and exits 0 "
     "once it has stored them (empty = no exec adapter)"},
    {"compliance", "interval", PC_CONF_INT, F(compliance_interval_s), "60", 1, 86400,
     "seconds between deliveries to the adapters (Lync's RunInterval, 15 min by default)"},
    {"compliance", "batch", PC_CONF_INT, F(compliance_batch), "1000", 1, 1000000,
     "events per delivery at most (a full batch is followed by the next one at once)"},

    {"search", "enabled", PC_CONF_BOOL, F(search_enabled), "yes", 0, 0,
     "full-text search of history (GET /api/search): an index of this node's messages in "
     "<data_dir>/search.sqlite, fed in the background"},
    {"search", "interval_ms", PC_CONF_INT, F(search_interval_ms), "200", 10, 60000,
     "how often the indexer looks for new messages"},
    {"search", "batch", PC_CONF_INT, F(search_batch), "2000", 10, 1000000,
     "messages indexed per transaction (a full batch is followed by the next one at once)"},
    {"search", "edits_interval_ms", PC_CONF_INT, F(search_edits_ms), "5000", 10, 3600000,
     "how often the index looks for administrators' removals and replacements (until then "
     "every hit is checked against the store anyway)"},

    {"web", "listen", PC_CONF_STR, F(web_listen), "127.0.0.1", 0, 0,
     "IPv4 address of the web services (room page, files, admin API, /metrics)"},
    {"web", "port", PC_CONF_INT, F(web_port), "8080", 0, 65535, "HTTP port (0 = none)"},
    {"web", "https_port", PC_CONF_INT, F(web_https_port), "8443", 0, 65535,
     "HTTPS port (0 = none; HTTPS also needs tls_cert and tls_key)"},
    {"web", "tls_cert", PC_CONF_STR, F(web_tls_cert), "", 0, 0,
     "PEM certificate chain for HTTPS (empty = no HTTPS)"},
    {"web", "tls_key", PC_CONF_STR, F(web_tls_key), "", 0, 0, "PEM private key of tls_cert"},
    {"web", "max_body", PC_CONF_SIZE, F(web_max_body), "1M", 1024, 64 << 20,
     "largest JSON request body (413 beyond); file uploads have max_file_size"},
    {"web", "max_file_size", PC_CONF_SIZE, F(web_max_file_bytes), "20000k", 1024, 1LL << 32,
     "largest file a user may upload to a room (Lync's MaxFileSizeKB: 20,000 KB)"},
    {"web", "token_minutes", PC_CONF_INT, F(web_token_minutes), "480", 1, 525600,
     "how long a web sign-in lasts"},
    {"web", "timeout", PC_CONF_INT, F(web_timeout), "30", 1, 3600,
     "idle HTTP connections are closed after this many seconds"},
    {"web", "max_connections", PC_CONF_INT, F(web_max_connections), "1000", 1, 100000,
     "HTTP connections per node"},
    {"web", "login_rate", PC_CONF_INT, F(web_login_rate), "10", 1, 100000,
     "password checks (sign-in, Basic headers) one client address may cause per second; "
     "beyond it 429 with Retry-After"},
    {"web", "login_burst", PC_CONF_INT, F(web_login_burst), "30", 1, 100000,
     "password checks one client address may cause at once before login_rate applies"},
    {"web", "login_concurrency", PC_CONF_INT, F(web_login_concurrency), "2", 1, 1024,
     "password checks (scrypt, in the shared thread pool) running at once on the node; "
     "beyond it 503 with Retry-After"},
    {"web", "metrics_public", PC_CONF_BOOL, F(web_metrics_public), "yes", 0, 0,
     "serve /metrics without credentials (no: administrators only)"},

    {"seed", "demo", PC_CONF_BOOL, F(seed_demo), "no", 0, 0,
     "on first start, create category General, open room Lobby, users alice, bob, carol"},
    {NULL, NULL, 0, 0, NULL, 0, 0, NULL},
};

bool pchatd_conf_validate(const struct pchatd_conf *c, char *err, size_t errlen)
{
    if (pc_log_level_parse(c->log_level) < 0) {
        snprintf(err, errlen, "[node] log_level = '%s': expected debug, info, notice, warn or error",
                 c->log_level);
        return false;
    }
    if (strcmp(c->auth_mode, "off") != 0 && strcmp(c->auth_mode, "digest") != 0) {
        snprintf(err, errlen, "[auth] mode = '%s': expected off or digest", c->auth_mode);
        return false;
    }
    unsigned mask;
    if (!compl_classes_parse(c->compliance_capture, &mask)) {
        snprintf(err, errlen, "[compliance] capture = '%s': expected none, lync, all or a list of "
                 "join, part, chat, backchat, fileupload, filedownload…", c->compliance_capture);
        return false;
    }
    if ((c->web_tls_cert[0] != '\0') != (c->web_tls_key[0] != '\0')) {
        snprintf(err, errlen, "[web] tls_cert and tls_key go together: set both for HTTPS, or "
                 "neither");
        return false;
    }
    int cluster_tls = (c->cluster_tls_ca[0] != '\0') + (c->cluster_tls_cert[0] != '\0') +
                      (c->cluster_tls_key[0] != '\0');
    if (cluster_tls != 0 && cluster_tls != 3) {
        snprintf(err, errlen, "[cluster] tls_ca, tls_cert and tls_key go together: set all three "
                 "for mutual TLS between nodes (missing: %s%s%s), or none",
                 c->cluster_tls_ca[0] ? "" : "tls_ca ", c->cluster_tls_cert[0] ? "" : "tls_cert ",
                 c->cluster_tls_key[0] ? "" : "tls_key");
        return false;
    }
    if (c->web_tls_cert[0] != '\0' && c->web_https_port == 0) {
        snprintf(err, errlen, "[web] tls_cert is set but https_port = 0: set a port for HTTPS");
        return false;
    }
    /* The domain and chat user go into SIP URIs and XML unescaped: keep them plain. */
    const char *names[2] = {c->domain, c->chat_user};
    const char *opts[2] = {"[sip] domain", "[sip] chat_user"};
    for (int i = 0; i < 2; i++) {
        const char *p = names[i];
        if (*p == '\0') {
            snprintf(err, errlen, "%s must not be empty", opts[i]);
            return false;
        }
        for (; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
                  *p == '_')) {
                snprintf(err, errlen, "%s = '%s': use lower-case letters, digits, '-', '.', '_'",
                         opts[i], names[i]);
                return false;
            }
    }
    struct cluster_node *nodes = NULL;
    size_t n_nodes = 0;
    if (!pchatd_conf_peers(c, &nodes, &n_nodes, err, errlen))
        return false;
    pchatd_conf_peers_free(nodes, n_nodes);
    if (c->cluster_heartbeat_ms * 2 > c->cluster_election_ms) {
        snprintf(err, errlen, "[cluster] heartbeat_ms = %d must be at most half of "
                 "election_timeout_ms = %d", c->cluster_heartbeat_ms, c->cluster_election_ms);
        return false;
    }
    if (c->sip_out_soft_bytes > c->sip_out_hard_bytes) {
        snprintf(err, errlen, "[sip] out_soft_bytes must not exceed out_hard_bytes");
        return false;
    }
    return true;
}

/* "host:port" with a numeric port 1..65535 and a non-empty host. */
static bool valid_address(const char *a)
{
    const char *colon = strrchr(a, ':');
    if (colon == NULL || colon == a)
        return false;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    return *end == '\0' && colon[1] != '\0' && port >= 1 && port <= 65535;
}

bool pchatd_conf_peers(const struct pchatd_conf *c, struct cluster_node **out, size_t *n,
                       char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!valid_address(c->cluster_listen)) {
        snprintf(err, errlen, "[cluster] listen = '%s': expected address:port, e.g. "
                 "10.0.0.1:7600", c->cluster_listen);
        return false;
    }
    char *list = strdup(c->cluster_peers), *save = NULL;
    bool ok = true;
    for (char *item = strtok_r(list, ", \t", &save); item != NULL && ok;
         item = strtok_r(NULL, ", \t", &save)) {
        char *eq = strchr(item, '=');
        char *end = NULL;
        long id = eq != NULL ? strtol(item, &end, 10) : 0;
        if (eq == NULL || end != eq || id < 1 || id > 65535 || !valid_address(eq + 1)) {
            snprintf(err, errlen, "[cluster] peers: '%s' is not id=address:port (e.g. "
                     "2=10.0.0.2:7600, id 1..65535)", item);
            ok = false;
            break;
        }
        for (size_t i = 0; i < *n; i++)
            if ((*out)[i].id == (uint64_t)id) {
                snprintf(err, errlen, "[cluster] peers: node id %ld is listed twice", id);
                ok = false;
            }
        *out = realloc(*out, (*n + 1) * sizeof **out);
        (*out)[(*n)++] = (struct cluster_node){(uint64_t)id, strdup(eq + 1)};
    }
    free(list);
    bool self = *n == 0;
    for (size_t i = 0; i < *n && ok; i++)
        if ((*out)[i].id == (uint64_t)c->node_id) {
            self = true;
            if (strcmp((*out)[i].address, c->cluster_listen) != 0) {
                snprintf(err, errlen, "[cluster] peers gives this node (id %d) the address %s "
                         "but [cluster] listen = %s; make them agree", c->node_id,
                         (*out)[i].address, c->cluster_listen);
                ok = false;
            }
        }
    if (ok && !self) {
        snprintf(err, errlen, "[cluster] peers does not list this node: add %d=%s", c->node_id,
                 c->cluster_listen);
        ok = false;
    }
    if (!ok) {
        pchatd_conf_peers_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return ok;
}

void pchatd_conf_peers_free(struct cluster_node *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)nodes[i].address);
    free(nodes);
}

bool pchatd_conf_load(struct pchatd_conf *c, const char *path, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    pc_conf_defaults(pchatd_conf_table, c);
    if (path != NULL && !pc_conf_load(pchatd_conf_table, c, path, err, errlen))
        return false;
    return pchatd_conf_validate(c, err, errlen);
}

void pchatd_conf_free(struct pchatd_conf *c)
{
    pc_conf_free(pchatd_conf_table, c);
}
