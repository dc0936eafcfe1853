/* Internals of the metadata state machine shared by cluster/meta*.c. */
#ifndef META_INT_H
#define META_INT_H

#include "cluster/meta.h"
#include "common/pc_bin.h"
#include "common/pc_str.h"

/* Per-user state that is not part of the user record: followed rooms and invitations. */
struct meta_user_extra {
    UT_hash_handle hh;
    char *uri;
    uint64_t *follows; /* sorted room numbers */
    size_t n_follows;
    struct meta_invite *invites;
    size_t n_invites;
    uint64_t next_invite_id;
};

void meta_category_encode(const struct meta_category *c, struct pc_buf *b);
int meta_category_decode(struct pc_bin_reader *r, struct meta_category *c);
void meta_room_encode(const struct meta_room *rm, struct pc_buf *b);
int meta_room_decode(struct pc_bin_reader *r, struct meta_room *rm);
void meta_settings_encode(const struct meta_settings *s, struct pc_buf *b);
int meta_settings_decode(struct pc_bin_reader *r, struct meta_settings *s);
void meta_user_encode(const struct meta_user *u, struct pc_buf *b);
int meta_user_decode(struct pc_bin_reader *r, struct meta_user *u);

/* Compliance cursors (meta_compl.c). */
void meta_apply_compl_cursor(struct meta *m, const struct meta_op *op, struct store_batch *b,
                             struct meta_result *res);
void meta_apply_compl_forget(struct meta *m, const struct meta_op *op, struct store_batch *b,
                             struct meta_result *res);
int meta_load_compl_cursor(struct meta *m, struct pc_str key, struct pc_str val);
void meta_free_compl(struct meta *m);
__attribute__((format(printf, 3, 4))) void meta_fail(struct meta_result *res, int status,
                                                     const char *fmt, ...);

#endif
