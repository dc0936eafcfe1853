/* pchatctl drill: failover drills against a pool whose nodes run on this machine. */
#ifndef DRILL_H
#define DRILL_H

/* Kills the owner of room (SIGKILL, or SIGSTOP for stop_s seconds when stop_s > 0) while a
 * probe client on another node posts, and reports the outage and whether every
 * acknowledged post is in history once. sock: any node's admin socket; sockets: a glob of
 * every node's admin socket (NULL: the <run>/n<i>/admin.sock sockets beside sock). Returns 0 (no loss,
 * posting resumed), 1 (a violation) or 2 (the drill could not run). */
int drill_kill_owner(const char *sock, const char *sockets, const char *room, const char *user,
                     unsigned stop_s);

#endif
