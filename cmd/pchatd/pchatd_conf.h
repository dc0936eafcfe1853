/* pchatd's configuration: every option, its default and its bounds, in one table. */
#ifndef PCHATD_CONF_H
#define PCHATD_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "common/pc_conf.h"

struct pchatd_conf {
    /* [node] */
    int node_id;
    char *node_name;
    char *data_dir;
    size_t min_free_bytes;
    char *log_level;
    char *admin_socket;
    /* [sip] */
    char *sip_listen;
    char *sip_advertise;
    int sip_tcp_port;
    int sip_tls_port;
    char *sip_tls_cert;
    char *sip_tls_key;
    char *domain;
    char *chat_user;
    size_t sip_max_header_bytes;
    size_t sip_max_body_bytes;
    size_t sip_out_soft_bytes;
    size_t sip_out_hard_bytes;
    int sip_max_pending_commands;
    int sip_max_connections;
    int sip_register_expires;
    int sip_session_expires;
    int sip_keepalive;
    int sip_retry_after;
    int sip_header_timeout;
    int sip_idle_timeout;
    /* [auth] */
    char *auth_mode;
    bool auth_allow_unknown_users;
    /* [cluster] */
    int cluster_shards;
    char *cluster_listen;
    char *cluster_peers;
    int cluster_election_ms;
    int cluster_heartbeat_ms;
    size_t cluster_segment_bytes;
    int cluster_snapshot_entries;
    bool cluster_balance;
    bool cluster_join;
    int cluster_max_pending_posts;
    int cluster_retention_interval_ms;
    int cluster_abandoned_upload_s;
    char *cluster_tls_ca;
    char *cluster_tls_cert;
    char *cluster_tls_key;
    /* [chat] */
    int chat_default_history;
    int chat_max_history;
    int chat_message_max_chars;
    int chat_story_max_chars;
    int chat_max_rooms_per_request;
    int chat_max_members_per_request;
    int chat_search_limit;
    int chat_post_rate;
    int chat_post_burst;
    int chat_max_sessions_per_user;
    int chat_participant_update_limit;
    /* [compliance] */
    char *compliance_capture;
    char *compliance_xml_dir;
    bool compliance_xml_per_room;
    char *compliance_exec;
    int compliance_interval_s;
    int compliance_batch;
    /* [search] */
    bool search_enabled;
    int search_interval_ms;
    int search_batch;
    int search_edits_ms;
    /* [web] */
    char *web_listen;
    int web_port;
    int web_https_port;
    char *web_tls_cert;
    char *web_tls_key;
    size_t web_max_body;
    size_t web_max_file_bytes;
    int web_token_minutes;
    int web_timeout;
    int web_login_rate, web_login_burst, web_login_concurrency;
    int web_max_connections;
    bool web_metrics_public;
    /* [seed] */
    bool seed_demo;
};

extern const struct pc_conf_item pchatd_conf_table[];

/* Defaults, then the file (if path != NULL), then cross-field checks. */
bool pchatd_conf_load(struct pchatd_conf *c, const char *path, char *err, size_t errlen);
/* Checks that only the whole configuration can judge (e.g. auth mode names). */
bool pchatd_conf_validate(const struct pchatd_conf *c, char *err, size_t errlen);
void pchatd_conf_free(struct pchatd_conf *c);

/* [cluster] peers as a node list (malloc'd; free with pchatd_conf_peers_free); an empty
 * list gives n = 0. False with a reason naming the option on a malformed list. */
struct cluster_node;
bool pchatd_conf_peers(const struct pchatd_conf *c, struct cluster_node **out, size_t *n,
                       char *err, size_t errlen);
void pchatd_conf_peers_free(struct cluster_node *nodes, size_t n);

#endif
